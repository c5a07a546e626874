//! Factory timeouts (FusionCache): with a stale value, a slow recomputation serves it after the soft timeout and
//! finishes in the background; without one, the hard timeout gives a typed error and the result is still stored.
//! On memory and on the tiered cache over a real redis-server.

use std::sync::atomic::{AtomicUsize, Ordering::SeqCst};
use std::sync::Arc;
use std::time::{Duration, Instant};

use cachette::strategy::{FactoryTimedOut, FactoryTimeouts};
use cachette::{Cache, RedisBackend, TieredBackend, TieredOptions};
use test_support::RedisServer;

const HOUR: Duration = Duration::from_secs(3600);
const SOFT_TTL: Duration = Duration::from_millis(200);
const SLOW: Duration = Duration::from_millis(1000);
/// For the cold key: long enough that the value stored in the background is still fresh when read back.
const COLD_SOFT_TTL: Duration = Duration::from_millis(1500);

async fn scenario(cache: Cache) {
    let runs = Arc::new(AtomicUsize::new(0));
    let body = |value: u32, delay: Duration| {
        let runs = runs.clone();
        move || async move {
            runs.fetch_add(1, SeqCst);
            tokio::time::sleep(delay).await;
            value
        }
    };
    let soft = FactoryTimeouts::default().soft(Duration::from_millis(100));

    // Nothing stored: a soft timeout has nothing to serve, so the caller waits for the value.
    let got = cache
        .get_or_set_timed(
            "ft:k",
            HOUR,
            SOFT_TTL,
            soft,
            body(1, Duration::from_millis(300)),
        )
        .await;
    assert_eq!(got, Ok(1));
    // Fresh: served, the body does not run.
    let got = cache
        .get_or_set_timed("ft:k", HOUR, SOFT_TTL, soft, body(9, Duration::ZERO))
        .await;
    assert_eq!((got, runs.load(SeqCst)), (Ok(1), 1));

    // Past the soft ttl with a slow recomputation: the stale value once the soft timeout passed, long before the
    // body ends ...
    tokio::time::sleep(SOFT_TTL + Duration::from_millis(50)).await;
    let started = Instant::now();
    let got = cache
        .get_or_set_timed("ft:k", HOUR, SOFT_TTL, soft, body(2, SLOW))
        .await;
    assert_eq!(got, Ok(1));
    assert!(
        started.elapsed() < SLOW - Duration::from_millis(200),
        "the caller waited for the slow body: {:?}",
        started.elapsed()
    );
    // ... and the recomputation finishes in the background and stores its value.
    tokio::time::sleep(SLOW + Duration::from_millis(300)).await;
    assert_eq!(cache.get::<u32>("ft:k").await.unwrap(), Some(2));
    assert_eq!(runs.load(SeqCst), 2);

    // Nothing stored and a hard timeout: a typed error in time, and the body's result is stored when it ends.
    let hard = soft.hard(Duration::from_millis(300));
    let started = Instant::now();
    let got = cache
        .get_or_set_timed("ft:cold", HOUR, COLD_SOFT_TTL, hard, body(3, SLOW))
        .await;
    assert_eq!(got, Err(FactoryTimedOut(Duration::from_millis(300))));
    assert!(
        started.elapsed() < SLOW - Duration::from_millis(200),
        "the hard timeout did not stop the wait: {:?}",
        started.elapsed()
    );
    tokio::time::sleep(SLOW).await;
    let got = cache
        .get_or_set_timed(
            "ft:cold",
            HOUR,
            COLD_SOFT_TTL,
            hard,
            body(4, Duration::ZERO),
        )
        .await;
    assert_eq!((got, runs.load(SeqCst)), (Ok(3), 3));

    // A recomputation faster than the soft timeout returns the new value, not the stale one.
    tokio::time::sleep(COLD_SOFT_TTL + Duration::from_millis(50)).await;
    let got = cache
        .get_or_set_timed(
            "ft:cold",
            HOUR,
            COLD_SOFT_TTL,
            hard,
            body(5, Duration::from_millis(10)),
        )
        .await;
    assert_eq!(got, Ok(5));

    // A scope that disables reads is never served a stale value: it waits for the recomputation.
    tokio::time::sleep(COLD_SOFT_TTL + Duration::from_millis(50)).await;
    let got = cachette::context::disabling(
        cachette::context::Ops::GET,
        cache.get_or_set_timed(
            "ft:cold",
            HOUR,
            COLD_SOFT_TTL,
            soft,
            body(6, Duration::from_millis(300)),
        ),
    )
    .await;
    assert_eq!(got, Ok(6));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn on_memory() {
    scenario(Cache::memory()).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn on_the_tiered_cache_over_redis() {
    let Some(server) = RedisServer::start() else {
        return;
    };
    let l2 = RedisBackend::builder()
        .url(server.url())
        .key_prefix("ft:")
        .build()
        .await
        .unwrap();
    let tiered = TieredBackend::new(Arc::new(l2), None, TieredOptions::default());
    scenario(Cache::builder().backend(tiered).build()).await;
}

#[derive(Debug, PartialEq)]
enum RateError {
    TimedOut(FactoryTimedOut),
}

impl From<FactoryTimedOut> for RateError {
    fn from(e: FactoryTimedOut) -> Self {
        RateError::TimedOut(e)
    }
}

static MACRO_RUNS: AtomicUsize = AtomicUsize::new(0);

/// What the next run of `exchange_rate` returns and how long it takes.
static NEXT: std::sync::Mutex<(u32, Duration)> = std::sync::Mutex::new((0, Duration::ZERO));

fn next(value: u32, delay: Duration) {
    *NEXT.lock().unwrap() = (value, delay);
}

/// The cache the macro tests' functions use, switched between scenarios.
static CURRENT: std::sync::Mutex<Option<Cache>> = std::sync::Mutex::new(None);

fn current() -> Cache {
    CURRENT
        .lock()
        .unwrap()
        .clone()
        .unwrap_or_else(Cache::memory)
}

#[cachette::cached(
    cache = current(),
    key = "rate:{currency}",
    ttl = "1h",
    soft_ttl = "400ms",
    soft_timeout = "100ms",
    hard_timeout = "400ms"
)]
async fn exchange_rate(currency: String) -> Result<u32, RateError> {
    MACRO_RUNS.fetch_add(1, SeqCst);
    let (value, delay) = *NEXT.lock().unwrap();
    tokio::time::sleep(delay).await;
    Ok(value)
}

async fn macro_scenario(cache: Cache) {
    MACRO_RUNS.store(0, SeqCst);
    *CURRENT.lock().unwrap() = Some(cache);
    let call = || exchange_rate("eur".into());
    // Cold and slower than the hard timeout: the typed error, and the value lands in the background.
    next(1, Duration::from_millis(600));
    let started = Instant::now();
    assert_eq!(
        call().await,
        Err(RateError::TimedOut(FactoryTimedOut(Duration::from_millis(
            400
        ))))
    );
    assert!(started.elapsed() < Duration::from_millis(590));
    tokio::time::sleep(Duration::from_millis(300)).await;
    next(9, Duration::ZERO);
    assert_eq!(
        call().await,
        Ok(1),
        "stored by the run that outlived its caller"
    );
    assert_eq!(MACRO_RUNS.load(SeqCst), 1);
    // Stale (past the soft ttl) and slow: the stale value after the soft timeout; the fresh one later.
    tokio::time::sleep(Duration::from_millis(450)).await;
    next(2, Duration::from_millis(300));
    let started = Instant::now();
    assert_eq!(call().await, Ok(1));
    assert!(
        started.elapsed() < Duration::from_millis(290),
        "{:?}",
        started.elapsed()
    );
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(
        call().await,
        Ok(2),
        "stored by the run that finished in the background"
    );
    assert_eq!(MACRO_RUNS.load(SeqCst), 2);
}

/// A plain Redis cache on `server`.
async fn redis_cache(server: &RedisServer) -> Cache {
    let redis = RedisBackend::builder()
        .url(server.url())
        .build()
        .await
        .unwrap();
    Cache::builder().backend(redis).build()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn macro_timeouts_on_memory_and_redis() {
    macro_scenario(Cache::memory()).await;
    let Some(server) = RedisServer::start() else {
        return;
    };
    macro_scenario(redis_cache(&server).await).await;
}

#[cachette::cached(cache = JITTERED.get().unwrap(), key = "jitter:{id}", ttl = "100s", ttl_jitter = "50s")]
async fn jittered(id: u32) -> u32 {
    id
}

static JITTERED: std::sync::OnceLock<Cache> = std::sync::OnceLock::new();

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ttl_jitter_spreads_expiry_over_the_jitter() {
    let Some(server) = RedisServer::start() else {
        return;
    };
    JITTERED.set(redis_cache(&server).await).unwrap();
    for id in 0..40 {
        jittered(id).await;
    }
    let mut ttls = Vec::new();
    for id in 0..40 {
        let reply = server.command(&["PTTL", &format!("jitter:{id}")]).unwrap();
        ttls.push(reply.trim().parse::<u64>().unwrap());
    }
    assert!(
        ttls.iter().all(|&ms| (98_000..=150_000).contains(&ms)),
        "{ttls:?}"
    );
    let (min, max) = (ttls.iter().min().unwrap(), ttls.iter().max().unwrap());
    assert!(
        max - min > 20_000,
        "40 TTLs within {} ms of each other: not spread",
        max - min
    );
}
