//! `#[cached]` end to end on a real Redis: readable keys, TTLs on every write, hits, invalidation.

use std::sync::atomic::{AtomicUsize, Ordering::SeqCst};
use std::sync::OnceLock;

use cachette::{cached, context, invalidates, Cache};
use serde::{Deserialize, Serialize};
use test_support::{shared_redis, RedisServer};

static CACHE: OnceLock<Cache> = OnceLock::new();
static RUNS: AtomicUsize = AtomicUsize::new(0);

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
struct User {
    id: u64,
    name: String,
}

#[cached(ttl = "60s", cache = CACHE.get().expect("set up by the test"))]
async fn get_user(id: u64, name: &str) -> Result<User, String> {
    RUNS.fetch_add(1, SeqCst);
    Ok(User {
        id,
        name: name.to_owned(),
    })
}

#[invalidates(get_user(id, name))]
async fn rename(id: u64, name: &str) -> Result<(), String> {
    let _ = (id, name);
    Ok(())
}

async fn redis_cache() -> Option<&'static RedisServer> {
    let server = shared_redis()?;
    let backend = cachette::RedisBackend::builder()
        .url(server.url())
        .key_prefix("app:")
        .build()
        .await
        .expect("connect to the test redis");
    let _ = CACHE.set(Cache::builder().backend(backend).build());
    Some(server)
}

#[tokio::test]
async fn cached_fns_on_redis_store_readable_keys_with_ttls() {
    let Some(server) = redis_cache().await else {
        return;
    };
    let (first, detected) = context::detect(get_user(7, "bob:x")).await;
    assert!(detected.is_empty());
    let (second, detected) = context::detect(get_user(7, "bob:x")).await;
    assert_eq!(first, second);
    assert_eq!(
        RUNS.load(SeqCst),
        1,
        "the second call was served from Redis"
    );

    // The key as redis-cli shows it: prefix, module path, fn name, arguments (the `:` in the value escaped).
    let key = "app:redis_macros:get_user:id=7:name=bob%3Ax";
    assert_eq!(
        detected.keys(),
        vec!["redis_macros:get_user:id=7:name=bob%3Ax"]
    );
    assert_eq!(
        server.command(&["EXISTS", key]).unwrap(),
        "1",
        "key {key} is in Redis"
    );
    let pttl: i64 = server.command(&["PTTL", key]).unwrap().parse().unwrap();
    assert!(
        pttl > 0 && pttl <= 60_000,
        "TTL set on the write: {pttl} ms"
    );

    rename(7, "bob:x").await.unwrap();
    assert_eq!(
        server.command(&["EXISTS", key]).unwrap(),
        "0",
        "#[invalidates] deleted it"
    );
    get_user(7, "bob:x").await.unwrap();
    assert_eq!(RUNS.load(SeqCst), 2);
}
