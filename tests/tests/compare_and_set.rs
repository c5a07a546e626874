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
