//! Client-side caching on a real redis-server: two instances (two `Cache`s, and two OS processes) see each
//! other's writes through tracking invalidations (the delay is measured and printed); local hits do not reach
//! Redis; Redis killed and restarted never yields a stale read and the local tier is bypassed while tracking is
//! down; a server refusing CLIENT gives plain Redis with a warning.

use std::sync::Arc;
use std::time::{Duration, Instant};

use cachette::{Backend, Cache, ClientSideBackend, ClientSideOptions, RedisBackend};
use test_support::RedisServer;

async fn client_side(server: &RedisServer) -> Arc<dyn Backend> {
    let redis = RedisBackend::builder()
        .url(server.url())
        .key_prefix("cs:")
        .command_timeout(Duration::from_millis(500));
    ClientSideBackend::connect(redis, ClientSideOptions::default())
        .await
        .unwrap()
}

fn tier(backend: &Arc<dyn Backend>) -> &ClientSideBackend {
    (**backend)
        .as_any()
        .downcast_ref::<ClientSideBackend>()
        .expect("a client-side backend")
}

async fn wait_until(what: &str, mut done: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(10);
    while !done() {
        assert!(Instant::now() < deadline, "timed out waiting until {what}");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

fn gets(server: &RedisServer) -> u64 {
    test_support::redis_command_calls(server.port(), "get")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn another_instance_write_is_seen_at_once_and_local_hits_skip_redis() {
    let Some(server) = RedisServer::start() else {
        return;
    };
    let (a_backend, b_backend) = (client_side(&server).await, client_side(&server).await);
    wait_until("both armed", || {
        tier(&a_backend).is_armed() && tier(&b_backend).is_armed()
    })
    .await;
    let a = Cache::builder().backend_arc(a_backend.clone()).build();
    let b = Cache::builder().backend_arc(b_backend.clone()).build();

    b.set("k", &0u32, None).await.unwrap();
    // Let B's invalidation reach A first: arriving after A's read, it would (rightly) drop A's fresh copy.
    tokio::time::sleep(Duration::from_millis(50)).await;
    assert_eq!(a.get::<u32>("k").await.unwrap(), Some(0));
    let before = gets(&server);
    for _ in 0..10 {
        assert_eq!(a.get::<u32>("k").await.unwrap(), Some(0));
    }
    assert_eq!(gets(&server), before, "local hits never reach Redis");
    assert!(tier(&a_backend).local_len() >= 1);

    // 1 000 writes by B; after each, how long until A reads the new value.
    let mut delays = Vec::with_capacity(1_000);
    for i in 1..=1_000u32 {
        b.set("k", &i, None).await.unwrap();
        let written = Instant::now();
        loop {
            if a.get::<u32>("k").await.unwrap() == Some(i) {
                break;
            }
            assert!(
                written.elapsed() < Duration::from_secs(2),
                "A never saw write {i}"
            );
            tokio::task::yield_now().await;
        }
        delays.push(written.elapsed());
    }
    delays.sort_unstable();
    eprintln!(
        "client-side invalidation delay over 1000 writes: p50 {:?}, p99 {:?}, max {:?}",
        delays[499], delays[989], delays[999]
    );
    // Deletes invalidate too.
    b.delete("k").await.unwrap();
    wait_until("the delete reached A", || {
        futures::executor::block_on(a.get::<u32>("k"))
            .unwrap()
            .is_none()
    })
    .await;
}

/// Run by `another_process_write_is_seen` as a child process: writes through plain Redis.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn child_process_writer() {
    let Ok(url) = std::env::var("CLIENT_SIDE_CHILD_URL") else {
        return; // only as a child
    };
    let redis = RedisBackend::builder()
        .url(url)
        .key_prefix("cs:")
        .build()
        .await
        .unwrap();
    let cache = Cache::builder().backend(redis).build();
    cache
        .set("shared", &"from the other process", None)
        .await
        .unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn another_process_write_is_seen() {
    let Some(server) = RedisServer::start() else {
        return;
    };
    let backend = client_side(&server).await;
    wait_until("armed", || tier(&backend).is_armed()).await;
    let cache = Cache::builder().backend_arc(backend.clone()).build();
    cache.set("shared", &"before", None).await.unwrap();
    assert_eq!(
        cache.get::<String>("shared").await.unwrap().as_deref(),
        Some("before")
    );
    assert_eq!(
        cache.get::<String>("shared").await.unwrap().as_deref(),
        Some("before")
    );
    let status = std::process::Command::new(std::env::current_exe().unwrap())
        .args(["--exact", "child_process_writer"])
        .env("CLIENT_SIDE_CHILD_URL", server.url())
        .status()
        .unwrap();
    assert!(status.success());
    let deadline = Instant::now() + Duration::from_secs(2);
    loop {
        let seen = cache.get::<String>("shared").await.unwrap();
        if seen.as_deref() == Some("from the other process") {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the other process's write was never seen: {seen:?}"
        );
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redis_restarted_never_yields_a_stale_read() {
    let Some(server) = RedisServer::start() else {
        return;
    };
    let backend = client_side(&server).await;
    wait_until("armed", || tier(&backend).is_armed()).await;
    let cache = Cache::builder().backend_arc(backend.clone()).build();
    cache.set("k", &"old", None).await.unwrap();
    // Let the write's own invalidation arrive first: arriving after the read, it would drop the fresh copy.
    tokio::time::sleep(Duration::from_millis(50)).await;
    assert_eq!(
        cache.get::<String>("k").await.unwrap().as_deref(),
        Some("old")
    );
    assert!(tier(&backend).local_len() >= 1);

    server.kill();
    wait_until("tracking disarmed", || !tier(&backend).is_armed()).await;
    // While tracking is down the local copy is not served: the read goes to (dead) Redis.
    assert!(
        cache.get::<String>("k").await.is_err(),
        "no local copy while tracking is down"
    );
    assert_eq!(tier(&backend).local_len(), 0);

    // The restarted server lost the key (it keeps nothing on disk): the old copy must not come back.
    server.restart();
    wait_until("re-armed", || tier(&backend).is_armed()).await;
    // Tracking is re-armed on its own connection; the command connection may still be reconnecting and fail a
    // read (never a stale answer). Retry until it answers: that answer must be a miss.
    let restarted = Instant::now();
    let after_restart = loop {
        match cache.get::<String>("k").await {
            Ok(value) => break value,
            Err(error) if restarted.elapsed() < Duration::from_secs(5) => {
                eprintln!("read after the restart failed, retrying: {error}");
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
            Err(error) => panic!("Redis did not answer within 5 s of its restart: {error}"),
        }
    };
    assert_eq!(after_restart, None);
    cache.set("k", &"new", None).await.unwrap();
    assert_eq!(
        cache.get::<String>("k").await.unwrap().as_deref(),
        Some("new")
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_server_refusing_client_tracking_gives_plain_redis_with_a_warning() {
    let Some(server) = RedisServer::start() else {
        return;
    };
    server
        .command(&[
            "ACL", "SETUSER", "limited", "on", ">pw", "~*", "+@all", "-client",
        ])
        .unwrap();
    let url = format!("redis://limited:pw@127.0.0.1:{}", server.port());
    let (backend, logs) = {
        let logs = test_support::CapturedLogs::default();
        let subscriber = tracing_subscriber::fmt()
            .with_ansi(false)
            .with_writer(logs.clone())
            .finish();
        let _guard = tracing::subscriber::set_default(subscriber);
        let redis = RedisBackend::builder().url(url);
        let backend = ClientSideBackend::connect(redis, ClientSideOptions::default())
            .await
            .unwrap();
        (backend, logs.text())
    };
    assert!(
        (*backend)
            .as_any()
            .downcast_ref::<ClientSideBackend>()
            .is_none(),
        "plain Redis"
    );
    assert!(logs.contains("refuses CLIENT TRACKING"), "{logs}");
    let cache = Cache::builder().backend_arc(backend).build();
    cache.set("k", &1u8, None).await.unwrap();
    assert_eq!(cache.get::<u8>("k").await.unwrap(), Some(1));
}

#[tokio::test]
async fn client_side_urls() {
    assert!(cachette::parse_url("redis://127.0.0.1?client_side=true&local_ttl=5s").is_ok());
    assert!(cachette::parse_url("redis+cluster://127.0.0.1:7000?client_side=true").is_err());
    assert!(cachette::parse_url("redis://127.0.0.1?local_ttl=5s").is_err());
}

static A: std::sync::OnceLock<Cache> = std::sync::OnceLock::new();

#[cachette::cached(ttl = "1h", key = "profile:{id}", cache = A.get().expect("A set up"))]
async fn profile(id: u32) -> String {
    format!("computed {id}")
}

/// Cached functions read local copies through the typed fast path (a decoded copy per entry): another
/// instance's write must still be seen.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cached_functions_see_another_instance_write() {
    let Some(server) = RedisServer::start() else {
        return;
    };
    let (a_backend, b_backend) = (client_side(&server).await, client_side(&server).await);
    wait_until("both armed", || {
        tier(&a_backend).is_armed() && tier(&b_backend).is_armed()
    })
    .await;
    let _ = A.set(Cache::builder().backend_arc(a_backend.clone()).build());
    let b = Cache::builder().backend_arc(b_backend).build();
    assert_eq!(profile(1).await, "computed 1");
    assert_eq!(profile(1).await, "computed 1"); // a local hit, decoded copy kept
    for round in 0..20 {
        let written = format!("written by B, round {round}");
        b.set("profile:1", &written, None).await.unwrap();
        let deadline = Instant::now() + Duration::from_secs(2);
        while profile(1).await != written {
            assert!(
                Instant::now() < deadline,
                "A's cached fn kept serving its old copy in round {round}"
            );
            tokio::task::yield_now().await;
        }
    }
}

/// `setup` with `client_side=true`: the backend sits behind the default circuit breaker, and the cache still
/// serves its local copies (the breaker passes them through) and sees other instances' writes.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn from_a_url_behind_the_breaker() {
    let Some(server) = RedisServer::start() else {
        return;
    };
    let url = format!(
        "{}?prefix=url:&client_side=true&local_ttl=30s",
        server.url()
    );
    let a = cachette::Setup::new(url.clone()).build().await.unwrap();
    let b = cachette::Setup::new(url).build().await.unwrap();
    assert!(
        a.backend_for("k").local_copies().is_some(),
        "armed and visible through the breaker"
    );
    b.set("k", &1u8, None).await.unwrap();
    tokio::time::sleep(Duration::from_millis(50)).await;
    assert_eq!(a.get::<u8>("k").await.unwrap(), Some(1));
    let before = gets(&server);
    assert_eq!(a.get::<u8>("k").await.unwrap(), Some(1));
    assert_eq!(gets(&server), before, "a local hit");
    b.set("k", &2u8, None).await.unwrap();
    let deadline = Instant::now() + Duration::from_secs(2);
    while a.get::<u8>("k").await.unwrap() != Some(2) {
        assert!(Instant::now() < deadline, "A kept its copy");
        tokio::task::yield_now().await;
    }
}
