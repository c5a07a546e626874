//! The service toolkit — locks, rate limits, the circuit breaker — on memory, a real redis-server and a real
//! memcached, with several `Cache`s over one store standing in for several instances, and two OS processes on one
//! Redis for the cross-process cases.

use std::io::{BufRead, BufReader};
use std::sync::atomic::{AtomicUsize, Ordering::SeqCst};
use std::sync::Arc;
use std::time::{Duration, Instant};

use cachette::{
    circuit_breaker, locked, rate_limit, Backend, Cache, CacheError, CircuitOpen, Locked,
    MemcachedBackend, MemoryBackend, RateLimited, RateRule, RedisBackend,
};

#[derive(Debug)]
enum AppError {
    Locked(Locked),
    Limited(RateLimited),
    Open(CircuitOpen),
    Failed,
}

impl From<Locked> for AppError {
    fn from(e: Locked) -> Self {
        AppError::Locked(e)
    }
}
impl From<RateLimited> for AppError {
    fn from(e: RateLimited) -> Self {
        AppError::Limited(e)
    }
}
impl From<CircuitOpen> for AppError {
    fn from(e: CircuitOpen) -> Self {
        AppError::Open(e)
    }
}

/// Two caches over each store, under a prefix unique to the test. Keeps the memcached server alive.
struct Stores {
    _memcached: Option<test_support::MemcachedServer>,
    sets: Vec<(&'static str, [Cache; 2])>,
}

async fn redis_cache(url: &str, prefix: &str) -> Cache {
    let backend = RedisBackend::builder()
        .url(url)
        .key_prefix(prefix)
        .command_timeout(Duration::from_secs(2))
        .build()
        .await
        .expect("connect to the test redis");
    Cache::builder().backend(backend).build()
}

async fn stores(test: &str) -> Stores {
    let memory: Arc<dyn Backend> = Arc::new(MemoryBackend::default());
    let mut sets = vec![(
        "memory",
        [
            Cache::builder().backend_arc(memory.clone()).build(),
            Cache::builder().backend_arc(memory).build(),
        ],
    )];
    if let Some(server) = test_support::shared_redis() {
        let prefix = format!("{test}:");
        sets.push((
            "redis",
            [
                redis_cache(&server.url(), &prefix).await,
                redis_cache(&server.url(), &prefix).await,
            ],
        ));
    }
    let memcached = test_support::MemcachedServer::start();
    if let Some(server) = &memcached {
        let cache = || {
            Cache::builder()
                .backend(
                    MemcachedBackend::builder()
                        .servers([server.address()])
                        .prefix(format!("{test}:"))
                        .build(),
                )
                .build()
        };
        sets.push(("memcached", [cache(), cache()]));
    }
    Stores {
        _memcached: memcached,
        sets,
    }
}

/// How much longer than its TTL a key may live in `store`: memcached counts whole seconds and pads a TTL by one
/// so it never ends early.
fn expiry_slack(store: &str) -> Duration {
    if store == "memcached" {
        Duration::from_secs(2)
    } else {
        Duration::ZERO
    }
}

/// Counts runs and the most that ever ran at once.
#[derive(Default)]
struct Ledger {
    runs: AtomicUsize,
    running: AtomicUsize,
    most: AtomicUsize,
}

impl Ledger {
    async fn run(&self, how_long: Duration) {
        self.runs.fetch_add(1, SeqCst);
        let now = self.running.fetch_add(1, SeqCst) + 1;
        self.most.fetch_max(now, SeqCst);
        tokio::time::sleep(how_long).await;
        self.running.fetch_sub(1, SeqCst);
    }
}

#[locked(cache = cache, key = "job:{id}", ttl = "10s", wait = false)]
async fn exclusive(cache: &Cache, id: u32, ledger: &Ledger) -> Result<u32, AppError> {
    ledger.run(Duration::from_millis(300)).await;
    Ok(id)
}

#[locked(cache = cache, key = "serial", ttl = "10s", timeout = "60s")]
async fn serialised(cache: &Cache, ledger: &Ledger) -> Result<(), AppError> {
    ledger.run(Duration::from_millis(5)).await;
    Ok(())
}

#[locked(cache = cache, key = "panicky", ttl = "30s", wait = false)]
async fn panics(cache: Cache) -> Result<(), AppError> {
    panic!("the holder failed");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn locked_without_waiting_runs_one_of_ten_and_refuses_the_rest() {
    for (store, caches) in stores("lock_nowait").await.sets {
        let ledger = Ledger::default();
        let calls = (0..10).map(|i| exclusive(&caches[i % 2], 7, &ledger));
        let results = futures::future::join_all(calls).await;
        let ran: Vec<_> = results.iter().filter(|r| r.is_ok()).collect();
        let refused = results
            .iter()
            .filter(|r| matches!(r, Err(AppError::Locked(l)) if l.key == "lock:job:7"))
            .count();
        assert_eq!((ran.len(), refused), (1, 9), "{store}: {results:?}");
        assert_eq!(ledger.runs.load(SeqCst), 1, "{store}");
        // Released once the holder returned: the next call runs.
        assert_eq!(
            exclusive(&caches[1], 7, &ledger).await.unwrap(),
            7,
            "{store}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn locked_with_waiting_runs_all_twenty_one_at_a_time() {
    for (store, caches) in stores("lock_wait").await.sets {
        let ledger = Ledger::default();
        let calls = (0..20).map(|i| serialised(&caches[i % 2], &ledger));
        let results = futures::future::join_all(calls).await;
        assert!(results.iter().all(Result::is_ok), "{store}: {results:?}");
        assert_eq!(ledger.runs.load(SeqCst), 20, "{store}");
        assert_eq!(ledger.most.load(SeqCst), 1, "{store}: two ran at once");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_panicking_holder_releases_its_lock() {
    for (store, caches) in stores("lock_panic").await.sets {
        let joined = tokio::spawn(panics(caches[0].clone())).await;
        assert!(joined.unwrap_err().is_panic(), "{store}");
        // The lock lives 30 s; released by the guard's drop, another instance gets it at once.
        let deadline = Instant::now() + Duration::from_secs(2);
        loop {
            match caches[1]
                .try_lock("lock:panicky", Duration::from_secs(5))
                .await
            {
                Ok(Some(_)) => break,
                Ok(None) if Instant::now() < deadline => {
                    tokio::time::sleep(Duration::from_millis(10)).await;
                }
                other => panic!("{store}: the panicked holder's lock was not released: {other:?}"),
            }
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn lock_waits_times_out_extends_and_releases() {
    for (store, caches) in stores("lock_api").await.sets {
        let guard = caches[0]
            .lock("api", Duration::from_millis(400))
            .await
            .unwrap();
        let started = Instant::now();
        let timed_out = caches[1]
            .lock("api", Duration::from_secs(5))
            .timeout(Duration::from_millis(100))
            .await;
        assert!(
            matches!(&timed_out, Err(CacheError::Locked(l)) if l.waited >= Duration::from_millis(100)),
            "{store}: {timed_out:?}"
        );
        assert!(started.elapsed() < Duration::from_secs(1), "{store}");
        // Extended past its first TTL: still held after it.
        assert!(
            guard.extend(Duration::from_secs(5)).await.unwrap(),
            "{store}"
        );
        tokio::time::sleep(Duration::from_millis(600)).await;
        assert!(
            caches[1]
                .try_lock("api", Duration::from_secs(5))
                .await
                .unwrap()
                .is_none(),
            "{store}"
        );
        // A waiter gets it as soon as it is released.
        let waiter = {
            let cache = caches[1].clone();
            tokio::spawn(async move {
                let started = Instant::now();
                let guard = cache
                    .lock("api", Duration::from_secs(5))
                    .poll(Duration::from_millis(5))
                    .await;
                (guard.map(|g| g.key().to_owned()), started.elapsed())
            })
        };
        tokio::time::sleep(Duration::from_millis(100)).await;
        assert!(guard.release().await.unwrap(), "{store}");
        let (got, waited) = waiter.await.unwrap();
        assert_eq!(got.unwrap(), "api", "{store}");
        assert!(waited < Duration::from_secs(2), "{store}: {waited:?}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_expired_lock_taken_by_another_is_neither_extended_nor_released_by_the_old_holder() {
    for (store, caches) in stores("lock_expired").await.sets {
        let old = caches[0]
            .try_lock("stolen", Duration::from_millis(100))
            .await
            .unwrap()
            .unwrap();
        tokio::time::sleep(Duration::from_millis(1_100) + expiry_slack(store)).await;
        let new = caches[1]
            .try_lock("stolen", Duration::from_secs(30))
            .await
            .unwrap();
        let new = new.unwrap_or_else(|| panic!("{store}: the expired lock was still held"));
        assert!(
            !old.extend(Duration::from_secs(30)).await.unwrap(),
            "{store}"
        );
        assert!(!old.release().await.unwrap(), "{store}");
        assert!(
            caches[0]
                .try_lock("stolen", Duration::from_secs(1))
                .await
                .unwrap()
                .is_none(),
            "{store}"
        );
        assert!(new.release().await.unwrap(), "{store}");
    }
}

/// Child process of `a_killed_holder_process_frees_the_lock_after_its_ttl`: takes the lock, says so, and hangs
/// until it is killed. A no-op when run as an ordinary test.
#[tokio::test]
async fn child_lock_holder() {
    let (Ok(url), Ok(prefix)) = (
        std::env::var("LOCK_CHILD_URL"),
        std::env::var("LOCK_CHILD_PREFIX"),
    ) else {
        return;
    };
    let cache = redis_cache(&url, &prefix).await;
    let guard = cache
        .try_lock("orphan", Duration::from_secs(2))
        .await
        .unwrap()
        .unwrap();
    println!("LOCKED");
    std::mem::forget(guard);
    tokio::time::sleep(Duration::from_secs(60)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_killed_holder_process_frees_the_lock_after_its_ttl() {
    let Some(server) = test_support::shared_redis() else {
        return;
    };
    let prefix = "lock_killed:";
    let mut child = std::process::Command::new(std::env::current_exe().unwrap())
        .args(["--exact", "child_lock_holder", "--nocapture"])
        .env("LOCK_CHILD_URL", server.url())
        .env("LOCK_CHILD_PREFIX", prefix)
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let stdout = child.stdout.take().unwrap();
    let locked_line = tokio::task::spawn_blocking(move || {
        BufReader::new(stdout)
            .lines()
            .map_while(Result::ok)
            .any(|line| line.contains("LOCKED"))
    });
    assert!(locked_line.await.unwrap(), "the child never took the lock");
    let locked_at = Instant::now();
    child.kill().unwrap();
    child.wait().unwrap();
    let cache = redis_cache(&server.url(), prefix).await;
    assert!(
        cache
            .try_lock("orphan", Duration::from_secs(5))
            .await
            .unwrap()
            .is_none(),
        "the dead holder's lock lives until its TTL"
    );
    loop {
        if cache
            .try_lock("orphan", Duration::from_secs(5))
            .await
            .unwrap()
            .is_some()
        {
            break;
        }
        assert!(
            locked_at.elapsed() < Duration::from_secs(4),
            "the dead holder's lock outlived its 2 s TTL"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert!(
        locked_at.elapsed() >= Duration::from_millis(1_500),
        "freed before its TTL"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fixed_window_allows_the_limit_then_refuses_until_the_window_resets() {
    for (store, caches) in stores("rate_fixed").await.sets {
        let period = Duration::from_secs(1);
        for left in (0..5).rev() {
            let allowed = caches[left as usize % 2]
                .rate_limit("ip:1", 5, period)
                .await;
            assert_eq!(allowed.map(|r| r.remaining), Ok(left), "{store}");
        }
        let refused = caches[0].rate_limit("ip:1", 5, period).await.unwrap_err();
        assert_eq!(
            (refused.key.as_str(), refused.limit),
            ("ip:1", 5),
            "{store}"
        );
        assert!(
            refused.retry_after <= period && !refused.retry_after.is_zero(),
            "{store}: {refused:?}"
        );
        // Another key has its own limit.
        assert!(
            caches[1].rate_limit("ip:2", 5, period).await.is_ok(),
            "{store}"
        );
        tokio::time::sleep(refused.retry_after + Duration::from_millis(50)).await;
        assert_eq!(
            caches[1]
                .rate_limit("ip:1", 5, period)
                .await
                .map(|r| r.remaining),
            Ok(4),
            "{store}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sliding_window_counts_the_last_period_not_the_calendar() {
    for (store, caches) in stores("rate_sliding").await.sets {
        let rule = RateRule::sliding(3, Duration::from_millis(800));
        let first = Instant::now();
        for i in 0..3 {
            assert!(
                caches[i % 2].rate_limit_with("export", rule).await.is_ok(),
                "{store}"
            );
        }
        tokio::time::sleep(Duration::from_millis(400)).await;
        let refused = caches[0].rate_limit_with("export", rule).await.unwrap_err();
        assert!(
            refused.retry_after <= Duration::from_millis(800),
            "{store}: {refused:?}"
        );
        // Still within 800 ms of the first three: refused, and refusals are not counted.
        assert!(
            caches[1].rate_limit_with("export", rule).await.is_err(),
            "{store}"
        );
        let wait = Duration::from_millis(850).saturating_sub(first.elapsed());
        tokio::time::sleep(wait).await;
        assert!(
            caches[1].rate_limit_with("export", rule).await.is_ok(),
            "{store}: the first calls left the window"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_calls_on_two_instances_never_exceed_the_limit_in_sum() {
    for (store, caches) in stores("rate_sum").await.sets {
        for rule in [
            RateRule::fixed(30, Duration::from_secs(30)),
            RateRule::sliding(30, Duration::from_secs(30)),
        ] {
            let key = format!("sum:{:?}", rule.algorithm);
            let calls = (0..100).map(|i| caches[i % 2].rate_limit_with(&key, rule));
            let results = futures::future::join_all(calls).await;
            let allowed: Vec<_> = results.iter().filter_map(|r| r.as_ref().ok()).collect();
            assert_eq!(allowed.len(), 30, "{store} {rule:?}");
            assert!(
                allowed.iter().all(|r| !r.unchecked),
                "{store} {rule:?}: a check failed open"
            );
        }
    }
}

/// Child process of `two_processes_share_one_limit`: counts its allowed calls and prints them.
#[tokio::test]
async fn child_rate_limiter() {
    let Ok(url) = std::env::var("RATE_CHILD_URL") else {
        return;
    };
    let cache = redis_cache(&url, "rate_processes:").await;
    let rule = RateRule::sliding(50, Duration::from_secs(30));
    let mut allowed = 0;
    for _ in 0..100 {
        allowed += usize::from(cache.rate_limit_with("shared", rule).await.is_ok());
    }
    println!("ALLOWED {allowed}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_processes_share_one_limit() {
    let Some(server) = test_support::shared_redis() else {
        return;
    };
    let child = std::process::Command::new(std::env::current_exe().unwrap())
        .args(["--exact", "child_rate_limiter", "--nocapture"])
        .env("RATE_CHILD_URL", server.url())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let cache = redis_cache(&server.url(), "rate_processes:").await;
    let rule = RateRule::sliding(50, Duration::from_secs(30));
    let mut mine = 0;
    for _ in 0..100 {
        mine += usize::from(cache.rate_limit_with("shared", rule).await.is_ok());
    }
    let output = tokio::task::spawn_blocking(move || child.wait_with_output().unwrap())
        .await
        .unwrap();
    let text = String::from_utf8_lossy(&output.stdout);
    let theirs: usize = text
        .lines()
        .find_map(|line| line.strip_prefix("ALLOWED "))
        .and_then(|n| n.trim().parse().ok())
        .unwrap_or_else(|| panic!("no count from the child: {text}"));
    assert_eq!(mine + theirs, 50, "mine {mine}, theirs {theirs}");
}

#[rate_limit(cache = cache, limit = 2, period = "1m", key = "login:{user}")]
async fn login(cache: &Cache, user: &str, ledger: &Ledger) -> Result<String, AppError> {
    ledger.runs.fetch_add(1, SeqCst);
    Ok(format!("hello {user}"))
}

fn too_many(limited: RateLimited) -> String {
    format!("slow down ({}s)", limited.retry_after.as_secs().max(1))
}

#[rate_limit(cache = cache, limit = 1, period = "1m", algorithm = "sliding", action = too_many)]
async fn greet(cache: &Cache) -> String {
    "hi".to_owned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rate_limited_fns_refuse_without_running_the_body() {
    for (store, caches) in stores("rate_macro").await.sets {
        let ledger = Ledger::default();
        assert_eq!(
            login(&caches[0], "ada", &ledger).await.unwrap(),
            "hello ada",
            "{store}"
        );
        assert!(login(&caches[1], "ada", &ledger).await.is_ok(), "{store}");
        let refused = login(&caches[0], "ada", &ledger).await;
        assert!(
            matches!(&refused, Err(AppError::Limited(l)) if l.key == "rate_limit:login:ada"),
            "{store}: {refused:?}"
        );
        assert_eq!(ledger.runs.load(SeqCst), 2, "{store}");
        assert!(
            login(&caches[0], "bob", &ledger).await.is_ok(),
            "{store}: per user"
        );
        assert_eq!(greet(&caches[0]).await, "hi", "{store}");
        assert!(greet(&caches[1]).await.starts_with("slow down"), "{store}");
    }
}

#[circuit_breaker(
    cache = cache,
    key = "payments",
    errors_rate = 0.5,
    period = "1h",
    min_calls = 4,
    ttl = "700ms",
    half_open_ttl = "30s",
    half_open_ratio = 1.0
)]
async fn pay(cache: &Cache, fail: bool, ledger: &Ledger) -> Result<u32, AppError> {
    ledger.runs.fetch_add(1, SeqCst);
    if fail {
        Err(AppError::Failed)
    } else {
        Ok(1)
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_circuit_opens_for_every_instance_then_probes_and_closes() {
    for (store, caches) in stores("circuit").await.sets {
        let ledger = Ledger::default();
        let runs = || ledger.runs.load(SeqCst);
        let (a, b) = (&caches[0], &caches[1]);
        // One failure in three calls: under `min_calls`, and under the rate.
        assert!(pay(a, false, &ledger).await.is_ok(), "{store}");
        assert!(
            matches!(pay(b, true, &ledger).await, Err(AppError::Failed)),
            "{store}"
        );
        assert!(pay(a, false, &ledger).await.is_ok(), "{store}");
        // The fourth call is the second failure: 2 of 4, the rate reached: open.
        assert!(
            matches!(pay(b, true, &ledger).await, Err(AppError::Failed)),
            "{store}"
        );
        assert_eq!(runs(), 4, "{store}");
        let refused = pay(a, false, &ledger).await;
        assert!(
            matches!(&refused, Err(AppError::Open(o)) if o.key == "circuit:payments"),
            "{store}: {refused:?}"
        );
        assert!(
            matches!(pay(b, false, &ledger).await, Err(AppError::Open(_))),
            "{store}: open for B too"
        );
        assert_eq!(runs(), 4, "{store}: an open circuit runs nothing");
        // Half-open: a probe runs; its failure opens the circuit again.
        tokio::time::sleep(Duration::from_millis(800)).await;
        assert!(
            matches!(pay(b, true, &ledger).await, Err(AppError::Failed)),
            "{store}"
        );
        assert!(
            matches!(pay(a, false, &ledger).await, Err(AppError::Open(_))),
            "{store}: reopened"
        );
        // Half-open again: a successful probe closes it, with fresh counts.
        tokio::time::sleep(Duration::from_millis(800)).await;
        assert!(pay(a, false, &ledger).await.is_ok(), "{store}");
        assert!(
            matches!(pay(b, true, &ledger).await, Err(AppError::Failed)),
            "{store}"
        );
        assert!(
            pay(b, false, &ledger).await.is_ok(),
            "{store}: closed; one failure does not reopen it"
        );
        assert_eq!(runs(), 8, "{store}");
    }
}

/// A tiny axum service behind `RateLimitLayer` (3 requests a minute per `x-client`), on a free loopback port.
async fn limited_server(cache: Cache) -> (String, tokio::task::JoinHandle<()>) {
    use cachette::http::RateLimitLayer;
    let per_client = |parts: &axum::http::request::Parts| {
        parts
            .headers
            .get("x-client")
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned)
    };
    let app = axum::Router::new()
        .route("/", axum::routing::get(|| async { "ok" }))
        .layer(RateLimitLayer::new(3, Duration::from_secs(60), per_client).cache(cache));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    let task = tokio::spawn(async move {
        axum::serve(listener, app).await.unwrap();
    });
    (base, task)
}

async fn get(base: &str, client: &str) -> (u16, Option<String>) {
    use http_body_util::Empty;
    use hyper_util::client::legacy::Client;
    let http =
        Client::builder(hyper_util::rt::TokioExecutor::new()).build_http::<Empty<bytes::Bytes>>();
    let request = axum::http::Request::get(format!("{base}/"))
        .header("x-client", client)
        .body(Empty::new())
        .unwrap();
    let response = http.request(request).await.unwrap();
    let retry_after = response
        .headers()
        .get("retry-after")
        .map(|v| v.to_str().unwrap().to_owned());
    (response.status().as_u16(), retry_after)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_services_behind_the_layer_share_each_clients_limit() {
    for (store, caches) in stores("rate_http").await.sets {
        let [one, two] = caches;
        let (first, first_task) = limited_server(one).await;
        let (second, second_task) = limited_server(two).await;
        assert_eq!(get(&first, "a").await, (200, None), "{store}");
        assert_eq!(get(&second, "a").await, (200, None), "{store}");
        assert_eq!(get(&first, "a").await, (200, None), "{store}");
        for base in [&first, &second] {
            let (status, retry_after) = get(base, "a").await;
            assert_eq!(status, 429, "{store}");
            let secs: u64 = retry_after.expect("Retry-After").parse().unwrap();
            assert!((1..=60).contains(&secs), "{store}: {secs}");
        }
        assert_eq!(
            get(&second, "b").await,
            (200, None),
            "{store}: each client has its own limit"
        );
        first_task.abort();
        second_task.abort();
    }
}

struct Reports {
    cache: Cache,
    ledger: Ledger,
}

impl Reports {
    #[locked(cache = self.cache, ttl = "10s", wait = false)]
    async fn rebuild(&self) -> Result<(), AppError> {
        self.ledger.run(Duration::from_millis(200)).await;
        Ok(())
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_locked_method_is_keyed_by_its_type_and_name() {
    let reports = Reports {
        cache: Cache::memory(),
        ledger: Ledger::default(),
    };
    let (first, second) = tokio::join!(reports.rebuild(), reports.rebuild());
    let refused = match (first, second) {
        (Ok(()), Err(AppError::Locked(l))) | (Err(AppError::Locked(l)), Ok(())) => l,
        other => panic!("{other:?}"),
    };
    assert!(
        refused.key.starts_with("lock:") && refused.key.ends_with("Reports::rebuild"),
        "{}",
        refused.key
    );
    assert_eq!(reports.ledger.runs.load(SeqCst), 1);
}
