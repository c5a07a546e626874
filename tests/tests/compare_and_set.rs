//! Compare-and-set on `Cache` — `gets`, `cas`, `update`, `persist` — on memory, a real redis-server and a real
//! memcached: the outcomes, and 8 tasks x 500 increments through `update` ending at exactly 4 000.

use std::time::Duration;

use cachette::{Cache, CasOutcome, KeyTtl, MemcachedBackend, RedisBackend};

async fn redis_cache(server: &test_support::RedisServer) -> Cache {
    let backend = RedisBackend::builder()
        .url(server.url())
        .command_timeout(Duration::from_secs(2))
        .build()
        .await
        .unwrap();
    Cache::builder().backend(backend).build()
}

fn memcached_cache(server: &test_support::MemcachedServer) -> Cache {
    let backend = MemcachedBackend::builder()
        .servers([server.address()])
        .command_timeout(Duration::from_secs(2))
        .build();
    Cache::builder().backend(backend).build()
}

async fn outcomes(cache: &Cache) {
    assert_eq!(cache.gets::<u32>("cas:k").await.unwrap(), None);
    cache.set("cas:k", &1u32, None).await.unwrap();
    let (one, token) = cache.gets::<u32>("cas:k").await.unwrap().unwrap();
    assert_eq!(one, 1);
    // Another writer in between: the token is stale.
    cache.set("cas:k", &5u32, None).await.unwrap();
    assert_eq!(
        cache.cas("cas:k", &2u32, token, None).await.unwrap(),
        CasOutcome::Exists
    );
    assert_eq!(cache.get::<u32>("cas:k").await.unwrap(), Some(5));
    let (five, token) = cache.gets::<u32>("cas:k").await.unwrap().unwrap();
    assert_eq!(five, 5);
    let ttl = Some(Duration::from_secs(60));
    assert_eq!(
        cache.cas("cas:k", &6u32, token, ttl).await.unwrap(),
        CasOutcome::Stored
    );
    assert_eq!(cache.get::<u32>("cas:k").await.unwrap(), Some(6));
    assert!(
        matches!(cache.ttl("cas:k").await.unwrap(), KeyTtl::Remaining(d) if d <= Duration::from_secs(60))
    );
    // Rewriting the same value is still a new write: an old token does not match it.
    let (_, token) = cache.gets::<u32>("cas:k").await.unwrap().unwrap();
    tokio::time::sleep(Duration::from_millis(5)).await;
    cache.set("cas:k", &6u32, None).await.unwrap();
    assert_eq!(
        cache.cas("cas:k", &7u32, token, None).await.unwrap(),
        CasOutcome::Exists
    );
    let (_, token) = cache.gets::<u32>("cas:k").await.unwrap().unwrap();
    cache.delete("cas:k").await.unwrap();
    assert_eq!(
        cache.cas("cas:k", &8u32, token, None).await.unwrap(),
        CasOutcome::NotFound
    );
    assert_eq!(cache.get::<u32>("cas:k").await.unwrap(), None);

    // persist: the backend TTL and the envelope's expiry both go.
    cache
        .set("cas:p", &"v", Some(Duration::from_secs(30)))
        .await
        .unwrap();
    assert!(cache.persist("cas:p").await.unwrap());
    assert_eq!(cache.ttl("cas:p").await.unwrap(), KeyTtl::Persistent);
    let (meta, value) = cache
        .get_with_meta::<String>("cas:p")
        .await
        .unwrap()
        .unwrap();
    assert_eq!((meta.remaining_ttl(), value.as_str()), (None, "v"));
    assert!(!cache.persist("cas:missing").await.unwrap());
}

/// 8 tasks x 500 read-modify-write increments through `update`: no increment lost, none doubled.
async fn concurrent_updates(cache: &Cache) {
    cache.delete("cas:counter").await.unwrap();
    let tasks: Vec<_> = (0..8)
        .map(|_| {
            let cache = cache.clone();
            tokio::spawn(async move {
                for _ in 0..500 {
                    cache
                        .update("cas:counter", None, |n: Option<u64>| n.unwrap_or(0) + 1)
                        .await
                        .unwrap();
                }
            })
        })
        .collect();
    for task in tasks {
        task.await.unwrap();
    }
    assert_eq!(cache.get::<u64>("cas:counter").await.unwrap(), Some(4_000));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn memory() {
    let cache = Cache::memory();
    outcomes(&cache).await;
    concurrent_updates(&cache).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redis() {
    let Some(server) = test_support::RedisServer::start() else {
        return;
    };
    let cache = redis_cache(&server).await;
    outcomes(&cache).await;
    concurrent_updates(&cache).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn memcached() {
    let Some(server) = test_support::MemcachedServer::start() else {
        return;
    };
    let cache = memcached_cache(&server);
    outcomes(&cache).await;
    concurrent_updates(&cache).await;
}

#[tokio::test]
async fn update_sees_unreadable_bytes_as_none_and_overwrites_them() {
    use cachette::{Backend, MemoryBackend, SetMode};
    let memory = std::sync::Arc::new(MemoryBackend::default());
    memory
        .set("k", "not an envelope".into(), None, SetMode::Always)
        .await
        .unwrap();
    let cache = Cache::builder().backend_arc(memory).build();
    let stored = cache
        .update("k", None, |v: Option<u32>| v.map_or(100, |v| v + 1))
        .await
        .unwrap();
    assert_eq!(stored, 100);
    assert_eq!(cache.get::<u32>("k").await.unwrap(), Some(100));
}

#[tokio::test]
async fn update_refuses_when_switched_off() {
    use cachette::context::{disabling, Ops};
    let cache = Cache::memory();
    let refused = disabling(Ops::SET, cache.update("k", None, |_: Option<u8>| 1)).await;
    assert!(matches!(refused, Err(cachette::CacheError::Disabled(_))));
    assert_eq!(cache.get::<u8>("k").await.unwrap(), None);
}

mod soft_invalidation {
    use std::sync::atomic::{AtomicUsize, Ordering::SeqCst};
    use std::sync::OnceLock;
    use std::time::Duration;

    use cachette::{cached, context, Cache};

    static CACHE: OnceLock<Cache> = OnceLock::new();
    static RUNS: AtomicUsize = AtomicUsize::new(0);

    #[cached(ttl = "1h", key = "report:{id}", companions(invalidate_soft), cache = CACHE.get().expect("cache set up"))]
    async fn report(id: u32) -> String {
        let run = RUNS.fetch_add(1, SeqCst) + 1;
        tokio::time::sleep(Duration::from_millis(200)).await;
        format!("report {id} v{run}")
    }

    /// dogpile's `invalidate(hard=False)`: the value stays readable, the next caller regenerates while the callers
    /// arriving meanwhile get the stale value, and afterwards everyone reads the new one.
    async fn scenario(cache: Cache) {
        let _ = CACHE.set(cache.clone());
        assert_eq!(report(1).await, "report 1 v1");
        assert!(report_invalidate_soft(1).await);
        assert_eq!(
            cache.get::<String>("report:1").await.unwrap().as_deref(),
            Some("report 1 v1")
        );
        let regenerating = tokio::spawn(report(1));
        tokio::time::sleep(Duration::from_millis(50)).await;
        // While it runs, others are served the stale value at once, and told it is stale.
        let started = std::time::Instant::now();
        let (stale, hits) = context::detect(report(1)).await;
        assert_eq!(stale, "report 1 v1");
        assert!(
            started.elapsed() < Duration::from_millis(100),
            "a stale reader waited"
        );
        assert_eq!(hits.keys(), ["report:1"]);
        assert_eq!(regenerating.await.unwrap(), "report 1 v2");
        assert_eq!(report(1).await, "report 1 v2");
        assert_eq!(RUNS.load(SeqCst), 2, "one regeneration");
        // Nothing to mark: false.
        assert!(!report_invalidate_soft(99).await);
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn on_memory() {
        scenario(Cache::memory()).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mark_stale_on_redis_and_memcached_keeps_the_value_and_its_ttl() {
    let (Some(redis), Some(memcached)) = (
        test_support::RedisServer::start(),
        test_support::MemcachedServer::start(),
    ) else {
        return;
    };
    for cache in [redis_cache(&redis).await, memcached_cache(&memcached)] {
        cache
            .set("s", &"v", Some(Duration::from_secs(100)))
            .await
            .unwrap();
        assert!(cache.mark_stale("s").await.unwrap());
        let (meta, value) = cache.get_with_meta::<String>("s").await.unwrap().unwrap();
        assert!(meta.needs_refresh());
        assert_eq!(value, "v");
        assert!(meta.remaining_ttl().unwrap() > Duration::from_secs(90));
        assert!(
            matches!(cache.ttl("s").await.unwrap(), KeyTtl::Remaining(d) if d > Duration::from_secs(90))
        );
        let fresh: String = cache
            .get_or_set("s", None, || async { "w".to_string() })
            .await;
        assert_eq!(fresh, "w");
        assert!(!cache.mark_stale("missing").await.unwrap());
    }
}
