//! `#[cached]` and `#[invalidates]` on sync fns: the memory backend without any runtime; a real redis-server from
//! a plain thread and from a multi-thread runtime; refused (the body runs, nothing deadlocks) on the thread of a
//! current-thread runtime.

use std::sync::atomic::{AtomicUsize, Ordering::SeqCst};
use std::sync::{LazyLock, OnceLock};
use std::time::Duration;

use cachette::{cached, invalidates, Cache, CacheError, RedisBackend};

static MEMORY: LazyLock<Cache> = LazyLock::new(Cache::memory);
/// The arguments `square`'s body ran with (tests run in parallel: each counts its own).
static SQUARES: std::sync::Mutex<Vec<u64>> = std::sync::Mutex::new(Vec::new());

fn runs_of(x: u64) -> usize {
    SQUARES.lock().unwrap().iter().filter(|&&y| y == x).count()
}

#[cached(cache = MEMORY, key = "square:{x}", companions(invalidate, invalidate_all, peek, set, refresh))]
fn square(x: u64) -> u64 {
    SQUARES.lock().unwrap().push(x);
    x * x
}

#[invalidates(cache = MEMORY, square(x))]
fn update_square(x: u64) -> Result<(), String> {
    if x == 0 {
        return Err("zero".into());
    }
    Ok(())
}

#[test]
fn memory_without_any_runtime() {
    assert!(tokio::runtime::Handle::try_current().is_err());
    assert_eq!(square(3), 9);
    assert_eq!(square(3), 9);
    assert_eq!(runs_of(3), 1, "the second call was a hit");
    assert_eq!(square_peek(3), Some(9));
    assert!(square_invalidate(3));
    assert_eq!(square_peek(3), None);
    square_set(3, &10).unwrap();
    assert_eq!(square(3), 10, "the value set");
    assert_eq!(square_refresh(3), 9);
    assert_eq!(square_peek(3), Some(9));
    // `#[invalidates]` on a sync fn: after a successful body only.
    update_square(0).unwrap_err();
    assert_eq!(square_peek(3), Some(9));
    update_square(3).unwrap();
    assert_eq!(square_peek(3), None);
    assert_eq!(square(4), 16);
    assert!(square_invalidate_all() >= 1);
    assert_eq!(square_peek(4), None);
}

static CUBES: AtomicUsize = AtomicUsize::new(0);

#[cached(cache = MEMORY, key = "cube:{x}")]
fn cube(x: u64) -> u64 {
    CUBES.fetch_add(1, SeqCst);
    x * x * x
}

#[tokio::test(flavor = "current_thread")]
async fn memory_from_inside_a_current_thread_runtime() {
    assert_eq!(cube(11), 1331);
    assert_eq!(cube(11), 1331);
    assert_eq!(CUBES.load(SeqCst), 1);
}

static REDIS: OnceLock<Cache> = OnceLock::new();
/// The ids `lookup`'s body ran with (tests run in parallel: each counts its own ids).
static LOOKUPS: std::sync::Mutex<Vec<u64>> = std::sync::Mutex::new(Vec::new());

fn lookups_of(id: u64) -> usize {
    LOOKUPS.lock().unwrap().iter().filter(|&&y| y == id).count()
}

#[cached(cache = REDIS.get().expect("set by the test"), key = "lookup:{id}", ttl = "1m")]
fn lookup(id: u64) -> String {
    LOOKUPS.lock().unwrap().push(id);
    format!("user {id}")
}

#[derive(Debug)]
enum AppError {
    Cache(CacheError),
}

impl From<CacheError> for AppError {
    fn from(e: CacheError) -> Self {
        AppError::Cache(e)
    }
}

#[cached(cache = REDIS.get().expect("set by the test"), key = "strict:{id}", ttl = "1m", strict = true)]
fn strict_lookup(id: u64) -> Result<u64, AppError> {
    Ok(id)
}

/// The Redis cache on the shared test server, created on (and driven by) a runtime that keeps running on its own
/// threads, as in a service whose sync code runs beside its async code.
fn redis_runtime() -> Option<&'static tokio::runtime::Runtime> {
    static RUNTIME: OnceLock<tokio::runtime::Runtime> = OnceLock::new();
    let server = test_support::shared_redis()?;
    let runtime = RUNTIME.get_or_init(|| {
        tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .unwrap()
    });
    REDIS.get_or_init(|| {
        runtime.block_on(async {
            let backend = RedisBackend::builder()
                .url(server.url())
                .key_prefix("sync_fns:")
                .build()
                .await
                .unwrap();
            Cache::builder().backend(backend).build()
        })
    });
    Some(runtime)
}

#[test]
fn redis_from_a_plain_thread_and_from_a_multi_thread_runtime() {
    let Some(runtime) = redis_runtime() else {
        return;
    };
    let cache = REDIS.get().unwrap();
    runtime.block_on(cache.delete_match("lookup:*")).unwrap();
    // A plain thread: no runtime on it.
    let first = std::thread::spawn(|| lookup(1)).join().unwrap();
    assert_eq!(first, "user 1");
    assert_eq!(lookup(1), "user 1", "a hit from this thread too");
    assert_eq!(lookups_of(1), 1);
    assert_eq!(
        runtime
            .block_on(cache.get::<String>("lookup:1"))
            .unwrap()
            .as_deref(),
        Some("user 1"),
        "stored in Redis"
    );
    // A worker of a multi-thread runtime, and a blocking-pool thread.
    let on_worker = runtime.block_on(async { tokio::spawn(async { lookup(2) }).await.unwrap() });
    let on_blocking =
        runtime.block_on(async { tokio::task::spawn_blocking(|| lookup(2)).await.unwrap() });
    assert_eq!(
        (on_worker.as_str(), on_blocking.as_str()),
        ("user 2", "user 2")
    );
    assert_eq!(lookups_of(2), 1, "the blocking-pool call was a hit");
}

#[test]
fn redis_on_a_current_thread_runtime_is_refused_not_deadlocked() {
    let Some(_) = redis_runtime() else {
        return;
    };
    let cache = REDIS.get().unwrap();
    let errors_before = cache.metrics().backend_errors;
    let single = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let started = std::time::Instant::now();
    let (a, b) = single.block_on(async { (lookup(3), lookup(3)) });
    assert_eq!((a.as_str(), b.as_str()), ("user 3", "user 3"));
    assert_eq!(
        lookups_of(3),
        2,
        "refused: the body ran each time, uncached"
    );
    assert!(started.elapsed() < Duration::from_secs(5));
    assert!(
        cache.metrics().backend_errors - errors_before >= 2,
        "each refusal counted"
    );
    // Strict mode hands the refusal back as the error.
    let strict = single.block_on(async { strict_lookup(1) });
    assert!(
        matches!(strict, Err(AppError::Cache(CacheError::WouldBlock))),
        "{strict:?}"
    );
}
