//! Backend layers through a cache: key prefixes that keep tenants apart on one store (memory and a real Redis),
//! hashing of keys a backend cannot hold, and per-operation observation.

use std::sync::Arc;

use cachette::layer::{KeyMangler, LayeredExt, Observe, Op};
use cachette::{Backend, BackendError, Cache, CacheError, Capabilities, MemoryBackend};

async fn tenants_stay_apart(shared: Arc<dyn Backend>) {
    let a = Cache::builder()
        .backend(
            shared
                .clone()
                .layered(KeyMangler::new().prefix("tenant-a:")),
        )
        .build();
    let b = Cache::builder()
        .backend(
            shared
                .clone()
                .layered(KeyMangler::new().prefix("tenant-b:")),
        )
        .build();
    a.set("user:1", &"ada", None).await.unwrap();
    b.set("user:1", &"bob", None).await.unwrap();
    b.set("user:2", &"cy", None).await.unwrap();
    assert_eq!(
        a.get::<String>("user:1").await.unwrap().as_deref(),
        Some("ada")
    );
    assert_eq!(
        b.get::<String>("user:1").await.unwrap().as_deref(),
        Some("bob")
    );
    assert_eq!(a.scan("user:*").await.unwrap(), vec!["user:1".to_string()]);
    assert!(
        shared.get("tenant-a:user:1").await.unwrap().is_some(),
        "stored under the prefix"
    );

    assert_eq!(a.delete_match("user:*").await.unwrap(), 1);
    assert_eq!(
        b.get::<String>("user:1").await.unwrap().as_deref(),
        Some("bob")
    );
    a.set("user:9", &"zed", None).await.unwrap();
    a.clear().await.unwrap();
    assert_eq!(a.get::<String>("user:9").await.unwrap(), None);
    let mut left = b.scan("*").await.unwrap();
    left.sort();
    assert_eq!(
        left,
        ["user:1", "user:2"],
        "clearing tenant a left tenant b alone"
    );

    // Tags: the index lives under the prefix too, and its members are found again through it.
    a.set("profile:1", &1u8, None).await.unwrap();
    let tagged = cachette::strategy::Options::<u8>::ttl(None).tags(vec!["user:1".into()]);
    cachette::strategy::store_with(cachette::shape::Plain, &a, "profile:1", &tagged, &1u8)
        .await
        .unwrap();
    assert_eq!(a.delete_tags(&["user:1"]).await.unwrap(), 1);
    assert_eq!(a.get::<u8>("profile:1").await.unwrap(), None);
    b.clear().await.unwrap();
}

#[tokio::test]
async fn prefixes_keep_tenants_apart_on_memory() {
    tenants_stay_apart(Arc::new(MemoryBackend::default())).await;
}

#[tokio::test]
async fn prefixes_keep_tenants_apart_on_redis() {
    let Some(server) = test_support::shared_redis() else {
        return;
    };
    let redis = cachette::RedisBackend::builder()
        .url(server.url())
        .key_prefix("t-backend-layers:")
        .build()
        .await
        .expect("backend builds");
    tenants_stay_apart(Arc::new(redis)).await;
}

#[tokio::test]
async fn keys_a_backend_cannot_hold_are_hashed_and_scans_refused() {
    let shared = Arc::new(MemoryBackend::default());
    let cache = Cache::builder()
        .backend(shared.clone().layered(KeyMangler::memcached()))
        .build();
    let long = format!("search:{}", "q".repeat(1000));
    cache.set(&long, &1u32, None).await.unwrap();
    cache.set("with space", &2u32, None).await.unwrap();
    assert_eq!(cache.get::<u32>(&long).await.unwrap(), Some(1));
    assert_eq!(cache.get::<u32>("with space").await.unwrap(), Some(2));
    let stored = shared.scan("*").await.unwrap();
    assert!(
        stored.iter().all(|k| k.len() <= 250 && !k.contains(' ')),
        "{stored:?}"
    );
    assert!(!cache.capabilities().contains(Capabilities::SCAN));
    let error = cache.delete_match("search:*").await.unwrap_err();
    assert!(
        matches!(
            error,
            CacheError::Backend(BackendError::Unsupported { capability, .. }) if capability == Capabilities::SCAN
        ),
        "{error:?}"
    );
    assert!(Cache::builder()
        .backend(MemoryBackend::default().layered(KeyMangler::memcached()))
        .require(Capabilities::SCAN)
        .try_build()
        .is_err());
}

#[tokio::test]
async fn observe_counts_calls_and_errors_per_operation() {
    let observed = Arc::new(MemoryBackend::default().layered(Observe::new()));
    let cache = Cache::builder().backend(observed.clone()).build();
    cache.set("k", &1u8, None).await.unwrap();
    cache.get::<u8>("k").await.unwrap();
    cache.get::<u8>("missing").await.unwrap();
    assert!(cache.incr("k", 1, None).await.is_err(), "not an integer");
    let stats = observed.layer();
    assert_eq!(stats.stats(Op::Set).calls, 1);
    assert_eq!(stats.stats(Op::Get).calls, 2);
    assert_eq!(
        (stats.stats(Op::Incr).calls, stats.stats(Op::Incr).errors),
        (1, 1)
    );
}
