//! The etcd backend on a real `etcd` started by the test support: get/set/delete, set-if-absent and -present,
//! TTLs through leases, prefix deletes and scans (other globs: the typed capability error), `setup` from an
//! `etcd://` URL with `#[cached]` on top, and fail-open when etcd is gone.

use std::sync::atomic::{AtomicUsize, Ordering::SeqCst};
use std::sync::OnceLock;
use std::time::Duration;

use cachette::{cached, Backend, BackendError, Bytes, Cache, Capabilities, EtcdBackend, SetMode};

static CACHE: OnceLock<Cache> = OnceLock::new();
static RUNS: AtomicUsize = AtomicUsize::new(0);

#[cached(ttl = "1h", cache = CACHE.get().expect("etcd cache set up"))]
async fn square(x: u64) -> u64 {
    RUNS.fetch_add(1, SeqCst);
    x * x
}

fn b(text: &str) -> Bytes {
    Bytes::copy_from_slice(text.as_bytes())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn etcd_stores_expires_and_deletes_by_prefix() {
    let Some(etcd) = test_support::EtcdServer::start() else {
        return;
    };
    let backend = EtcdBackend::builder()
        .endpoint(etcd.endpoint())
        .prefix("t/")
        .command_timeout(Duration::from_secs(2))
        .build();
    backend.ping().await.unwrap();

    assert_eq!(backend.get("k").await.unwrap(), None);
    assert!(backend
        .set("k", b("v1"), None, SetMode::Always)
        .await
        .unwrap());
    assert_eq!(backend.get("k").await.unwrap(), Some(b("v1")));
    assert!(!backend
        .set("k", b("v2"), None, SetMode::IfAbsent)
        .await
        .unwrap());
    assert!(backend
        .set("k", b("v3"), None, SetMode::IfPresent)
        .await
        .unwrap());
    assert_eq!(backend.get("k").await.unwrap(), Some(b("v3")));
    assert!(!backend
        .set("absent", b("x"), None, SetMode::IfPresent)
        .await
        .unwrap());
    assert!(backend
        .set("absent", b("x"), None, SetMode::IfAbsent)
        .await
        .unwrap());
    assert!(backend.delete("k").await.unwrap());
    assert!(!backend.delete("k").await.unwrap());

    // TTL through a lease: gone within ttl + slack (1 s + 1 s).
    backend
        .set(
            "short",
            b("x"),
            Some(Duration::from_secs(1)),
            SetMode::Always,
        )
        .await
        .unwrap();
    assert!(backend.get("short").await.unwrap().is_some());
    tokio::time::sleep(Duration::from_millis(2600)).await;
    assert_eq!(backend.get("short").await.unwrap(), None);

    // Prefix patterns; other globs are the capability error.
    for key in ["user:1", "user:2", "users", "other"] {
        backend
            .set(key, b("x"), None, SetMode::Always)
            .await
            .unwrap();
    }
    let mut users = backend.scan("user:*").await.unwrap();
    users.sort();
    assert_eq!(users, ["user:1", "user:2"]);
    assert_eq!(backend.delete_match("user:*").await.unwrap(), 2);
    assert_eq!(backend.get("users").await.unwrap(), Some(b("x")));
    assert!(matches!(
        backend.delete_match("user:*:x").await,
        Err(BackendError::Unsupported { backend: "etcd", capability }) if capability == Capabilities::SCAN
    ));
    backend.clear().await.unwrap();
    assert_eq!(backend.get("other").await.unwrap(), None);

    // Through setup, with a cached fn on top; invalidate_all is a prefix delete.
    let cache = cachette::Setup::new(format!("{}?prefix=app/", etcd.url()))
        .require_connection(true)
        .build()
        .await
        .unwrap();
    let _ = CACHE.set(cache.clone());
    assert_eq!(square(4).await, 16);
    assert_eq!(square(4).await, 16);
    assert_eq!(RUNS.load(SeqCst), 1);
    assert_eq!(square_invalidate_all().await, 1);
    assert_eq!(square(4).await, 16);
    assert_eq!(RUNS.load(SeqCst), 2);

    // etcd gone: cached fns still answer (fail-open), within the command timeout.
    etcd.process().kill();
    let started = std::time::Instant::now();
    assert_eq!(square(5).await, 25);
    assert!(
        started.elapsed() < Duration::from_secs(3),
        "{:?}",
        started.elapsed()
    );
}
