//! `#[cached_many]`: a slice-of-ids fn cached per id — one body call with only the missing ids, results in
//! request order, overlapping concurrent calls computing each id once, on memory and on a real redis-server.

use std::collections::HashMap;
use std::sync::{LazyLock, Mutex, OnceLock};
use std::time::Duration;

use cachette::{cached_many, Cache, RedisBackend};

static MEMORY: LazyLock<Cache> = LazyLock::new(Cache::memory);
static REDIS: OnceLock<Cache> = OnceLock::new();
/// The ids of each body call, per fn.
type Calls = HashMap<&'static str, Vec<Vec<u64>>>;
static CALLS: LazyLock<Mutex<Calls>> = LazyLock::new(Default::default);

fn record(name: &'static str, ids: &[u64]) {
    CALLS
        .lock()
        .unwrap()
        .entry(name)
        .or_default()
        .push(ids.to_vec());
}

fn calls(name: &str) -> Vec<Vec<u64>> {
    CALLS.lock().unwrap().get(name).cloned().unwrap_or_default()
}

#[cached_many(ttl = "10m", key = "user:{ids}", cache = MEMORY)]
async fn names(ids: &[u64]) -> Vec<String> {
    record("names", ids);
    tokio::time::sleep(Duration::from_millis(50)).await;
    ids.iter().map(|id| format!("user {id}")).collect()
}

#[cached_many(cache = REDIS.get().expect("redis cache set up"))]
async fn scores(ids: &[u64]) -> Vec<u64> {
    record("scores", ids);
    tokio::time::sleep(Duration::from_millis(50)).await;
    ids.iter().map(|id| id * 10).collect()
}

/// Returns one value too few: the call falls back to the body, uncached.
#[cached_many(key = "short:{ids}", cache = MEMORY)]
async fn short(ids: &[u64]) -> Vec<u64> {
    record("short", ids);
    ids.iter().skip(1).copied().collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn only_missing_ids_reach_the_body_in_one_call() {
    assert_eq!(names(&[1, 2]).await, ["user 1", "user 2"]);
    assert_eq!(
        names(&[2, 3, 1, 3]).await,
        ["user 2", "user 3", "user 1", "user 3"]
    );
    assert_eq!(calls("names"), [vec![1, 2], vec![3]]);
    assert_eq!(
        MEMORY.get::<String>("user:3").await.unwrap().as_deref(),
        Some("user 3")
    );

    // Overlapping concurrent calls: each id computed once.
    let (a, b) = tokio::join!(
        tokio::spawn(async { names(&[10, 11, 12]).await }),
        tokio::spawn(async { names(&[11, 12, 13]).await })
    );
    assert_eq!(a.unwrap(), ["user 10", "user 11", "user 12"]);
    assert_eq!(b.unwrap(), ["user 11", "user 12", "user 13"]);
    let mut computed: Vec<u64> = calls("names").into_iter().skip(2).flatten().collect();
    computed.sort_unstable();
    assert_eq!(computed, [10, 11, 12, 13], "an id computed twice");

    // A body with the wrong count: the answer is the body's, nothing is stored.
    assert_eq!(short(&[1, 2]).await, [2]);
    assert_eq!(MEMORY.get::<u64>("short:1").await.unwrap(), None);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn per_id_entries_on_redis() {
    let Some(server) = test_support::RedisServer::start() else {
        return;
    };
    let backend = RedisBackend::builder()
        .url(server.url())
        .build()
        .await
        .unwrap();
    let _ = REDIS.set(Cache::builder().backend(backend).build());
    assert_eq!(scores(&[1, 2]).await, [10, 20]);
    assert_eq!(scores(&[2, 3]).await, [20, 30]);
    assert_eq!(calls("scores"), [vec![1, 2], vec![3]]);
    let keys = server.command(&["KEYS", "*scores*"]).unwrap();
    assert!(keys.contains("cached_many:scores:ids=3"), "{keys}");
}
