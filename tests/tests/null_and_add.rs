//! `null://`: caching switched off by configuration (every call runs the body, one warning says why), and
//! `Cache::add` (set if absent) on memory and on a real redis-server.

use std::sync::atomic::{AtomicUsize, Ordering::SeqCst};
use std::sync::OnceLock;

use cachette::{cached, Cache, RedisBackend, Setup};

static NULL_CACHE: OnceLock<Cache> = OnceLock::new();
static RUNS: AtomicUsize = AtomicUsize::new(0);

#[cached(ttl = "1h", cache = NULL_CACHE.get().expect("null cache set up"))]
async fn expensive(x: u64) -> u64 {
    RUNS.fetch_add(1, SeqCst);
    x * x
}

#[test]
fn a_null_url_caches_nothing_and_warns_once_naming_why() {
    let ((), text) = test_support::run_capturing_logs(async {
        let cache = Setup::new("null://").build().await.expect("null:// builds");
        let _ = NULL_CACHE.set(cache.clone());
        for _ in 0..3 {
            assert_eq!(expensive(5).await, 25);
        }
        cache.set("k", &1u8, None).await.unwrap();
        assert_eq!(cache.get::<u8>("k").await.unwrap(), None);
        assert!(cache.add("k", &1u8, None).await.unwrap());
    });
    assert_eq!(RUNS.load(SeqCst), 3, "every call ran the body");
    let warnings: Vec<&str> = text
        .lines()
        .filter(|line| line.contains("cache backend is null"))
        .collect();
    assert_eq!(warnings.len(), 1, "{text}");
    assert!(warnings[0].contains("null://"), "{text}");
}

async fn add_semantics(cache: &Cache) {
    assert!(cache.add("add:k", &"first", None).await.unwrap());
    assert!(!cache.add("add:k", &"second", None).await.unwrap());
    assert_eq!(
        cache.get::<String>("add:k").await.unwrap().as_deref(),
        Some("first")
    );
    cache.delete("add:k").await.unwrap();
    assert!(cache.add("add:k", &"third", None).await.unwrap());
    assert_eq!(
        cache.get::<String>("add:k").await.unwrap().as_deref(),
        Some("third")
    );
    // Writes switched off in this scope: nothing is added.
    let skipped = cachette::context::disabling(
        cachette::context::Ops::SET,
        cache.add("add:other", &1u8, None),
    );
    assert!(!skipped.await.unwrap());
    assert_eq!(cache.get::<u8>("add:other").await.unwrap(), None);
}

#[tokio::test]
async fn add_stores_only_when_absent_in_memory() {
    add_semantics(&Cache::memory()).await;
}

#[tokio::test]
async fn add_stores_only_when_absent_on_redis() {
    let Some(server) = test_support::RedisServer::start() else {
        return;
    };
    let backend = RedisBackend::builder()
        .url(server.url())
        .build()
        .await
        .unwrap();
    add_semantics(&Cache::builder().backend(backend).build()).await;
}
