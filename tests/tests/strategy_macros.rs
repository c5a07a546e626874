//! End-to-end tests of the strategy macros (`#[cache_early]`, `#[cache_failover]`, `soft_ttl`, `#[cache_hit]`,
//! `lock = true` / `#[cache_locked]`, `time_condition`, `tags`) on in-memory caches, and of early refresh, locks
//! and tags across several `Cache` instances sharing one real Redis. Every function counts its body runs; the
//! strategy that served a value is observed with `context::detect`.
//!
//! Each test has its own cache (`cache = ...`), so tests never see each other's entries.

use std::sync::atomic::{AtomicUsize, Ordering::SeqCst};
use std::sync::{Arc, LazyLock};
use std::time::Duration;

use cachette::context::detect;
use cachette::{cache_early, cache_failover, cache_hit, cache_locked, cached, invalidates, Cache};

fn sleep(ms: u64) -> tokio::time::Sleep {
    tokio::time::sleep(Duration::from_millis(ms))
}

/// The strategy and stale flag of the only hit `detect` saw, or `None` when the body ran.
fn served_by(detected: &cachette::context::Detected) -> Option<(&'static str, bool)> {
    match detected.hits() {
        [] => None,
        [hit] => Some((hit.strategy, hit.stale)),
        more => panic!("expected at most one hit, got {}", more.len()),
    }
}

// ---------------------------------------------------------------------------------------------------------------
// #[cache_early]

static EARLY_CACHE: LazyLock<Cache> = LazyLock::new(Cache::memory);
static EARLY_RUNS: AtomicUsize = AtomicUsize::new(0);

/// Returns how many times the body ran, so a refreshed value is told apart from the first.
#[cache_early(ttl = "60s", early_ttl = "300ms", cache = EARLY_CACHE, companions(invalidate, invalidate_all, key, set, peek))]
async fn rates(base: String) -> u64 {
    let _ = base;
    let run = EARLY_RUNS.fetch_add(1, SeqCst) as u64 + 1;
    sleep(50).await;
    run
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn early_serves_the_old_value_and_refreshes_once_in_the_background() {
    assert_eq!(rates_key("eur".into()), "strategy_macros:rates:base=eur");
    let (first, detected) = detect(rates("eur".into())).await;
    assert_eq!((first, served_by(&detected)), (1, None));
    let (again, detected) = detect(rates("eur".into())).await;
    assert_eq!((again, served_by(&detected)), (1, Some(("early", false))));

    sleep(350).await;
    let callers: Vec<_> = (0..20).map(|_| tokio::spawn(rates("eur".into()))).collect();
    for caller in callers {
        assert_eq!(
            caller.await.unwrap(),
            1,
            "past early_ttl every caller still gets the stored value at once"
        );
    }
    sleep(200).await;
    assert_eq!(EARLY_RUNS.load(SeqCst), 2, "exactly one background refresh");
    assert_eq!(
        rates("eur".into()).await,
        2,
        "the refreshed value is served"
    );

    // Companions work as with #[cached]; `_set` keeps the early deadline.
    assert_eq!(rates_peek("eur".into()).await, Some(2));
    rates_set("usd".into(), &40).await.unwrap();
    assert_eq!(rates("usd".into()).await, 40);
    sleep(350).await;
    assert_eq!(rates("usd".into()).await, 40, "served while it refreshes");
    sleep(200).await;
    assert_eq!(
        rates("usd".into()).await,
        3,
        "a value stored by `_set` is refreshed early too"
    );
    assert!(rates_invalidate("usd".into()).await);
    assert_eq!(rates_peek("usd".into()).await, None);
}

static EARLY_DEFAULT_CACHE: LazyLock<Cache> = LazyLock::new(Cache::memory);
static EARLY_DEFAULT_RUNS: AtomicUsize = AtomicUsize::new(0);

/// No `early_ttl`: a third of the 900 ms ttl, 300 ms.
#[cache_early(ttl = "900ms", cache = EARLY_DEFAULT_CACHE)]
async fn default_early() -> usize {
    EARLY_DEFAULT_RUNS.fetch_add(1, SeqCst) + 1
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn early_ttl_defaults_to_a_third_of_ttl() {
    assert_eq!(default_early().await, 1);
    sleep(100).await;
    assert_eq!(default_early().await, 1);
    sleep(50).await;
    assert_eq!(
        EARLY_DEFAULT_RUNS.load(SeqCst),
        1,
        "no refresh before a third of the ttl"
    );
    sleep(250).await;
    assert_eq!(default_early().await, 1);
    sleep(100).await;
    assert_eq!(
        EARLY_DEFAULT_RUNS.load(SeqCst),
        2,
        "refreshed after a third of the ttl"
    );
}

static EARLY_FG_CACHE: LazyLock<Cache> = LazyLock::new(Cache::memory);
static EARLY_FG_RUNS: AtomicUsize = AtomicUsize::new(0);

/// `background = false`: borrowed arguments are fine, the winner recomputes inline.
#[cache_early(ttl = "60s", early_ttl = "100ms", background = false, cache = EARLY_FG_CACHE)]
async fn early_fg(name: &str) -> String {
    format!("{name}{}", EARLY_FG_RUNS.fetch_add(1, SeqCst))
}

#[tokio::test]
async fn early_foreground_gives_the_winner_the_fresh_value() {
    assert_eq!(early_fg("a").await, "a0");
    assert_eq!(early_fg("a").await, "a0");
    sleep(150).await;
    let (fresh, detected) = detect(early_fg("a")).await;
    assert_eq!((fresh.as_str(), served_by(&detected)), ("a1", None));
    assert_eq!(early_fg("a").await, "a1");
}

// ---------------------------------------------------------------------------------------------------------------
// #[cache_failover]

static FAILOVER_CACHE: LazyLock<Cache> = LazyLock::new(Cache::memory);
static FAILOVER_RUNS: AtomicUsize = AtomicUsize::new(0);

/// `on` as a closure with an inferred argument type.
#[cache_failover(ttl = "1h", cache = FAILOVER_CACHE, skip(outcome), on = |e| e.contains("timeout"), companions(invalidate, invalidate_all, peek))]
async fn weather(city: &str, outcome: Result<u64, &str>) -> Result<u64, String> {
    FAILOVER_RUNS.fetch_add(1, SeqCst);
    let _ = city;
    outcome.map_err(str::to_owned)
}

fn is_unavailable(error: &std::io::Error) -> bool {
    error.kind() == std::io::ErrorKind::TimedOut
}

/// `on` as a path, on an `io::Result`.
#[cache_failover(cache = FAILOVER_CACHE, skip(fail), on = is_unavailable)]
async fn read_config(name: &str, fail: Option<std::io::ErrorKind>) -> std::io::Result<String> {
    match fail {
        Some(kind) => Err(std::io::Error::new(kind, "nope")),
        None => Ok(format!("{name}=1")),
    }
}

type ApiResult<T> = Result<T, String>;

/// An alias not named `Result`, no `on`: every error falls back.
#[cache_failover(cache = FAILOVER_CACHE, result = true, skip(ok))]
async fn quote(symbol: String, ok: bool) -> ApiResult<u32> {
    let _ = symbol;
    if ok {
        Ok(7)
    } else {
        Err("down".into())
    }
}

#[tokio::test]
async fn failover_serves_the_last_ok_for_chosen_errors() {
    assert_eq!(
        weather("oslo", Err("timeout")).await,
        Err("timeout".to_owned()),
        "nothing stored yet: the error"
    );
    assert_eq!(weather("oslo", Ok(20)).await, Ok(20));
    assert_eq!(
        weather("oslo", Ok(21)).await,
        Ok(21),
        "the body always runs"
    );
    let (out, detected) = detect(weather("oslo", Err("timeout"))).await;
    assert_eq!(
        (out, served_by(&detected)),
        (Ok(21), Some(("failover", true)))
    );
    assert_eq!(
        weather("oslo", Err("bad request")).await,
        Err("bad request".to_owned()),
        "`on` rejects this error"
    );
    assert_eq!(FAILOVER_RUNS.load(SeqCst), 5);
    assert_eq!(weather_peek("oslo", Ok(0)).await, Some(21));

    assert_eq!(read_config("a", None).await.unwrap(), "a=1");
    let timed_out = read_config("a", Some(std::io::ErrorKind::TimedOut)).await;
    assert_eq!(timed_out.unwrap(), "a=1");
    let denied = read_config("a", Some(std::io::ErrorKind::PermissionDenied)).await;
    assert_eq!(
        denied.unwrap_err().kind(),
        std::io::ErrorKind::PermissionDenied
    );

    assert_eq!(quote("X".into(), true).await, Ok(7));
    assert_eq!(quote("X".into(), false).await, Ok(7));
}

// ---------------------------------------------------------------------------------------------------------------
// soft_ttl

static SOFT_CACHE: LazyLock<Cache> = LazyLock::new(Cache::memory);

#[cached(ttl = "1s", soft_ttl = "200ms", cache = SOFT_CACHE, skip(outcome))]
async fn profile(id: u64, outcome: Result<u64, &'static str>) -> Result<u64, String> {
    let _ = id;
    outcome.map_err(str::to_owned)
}

#[tokio::test]
async fn soft_ttl_recomputes_and_serves_stale_on_error() {
    assert_eq!(profile(1, Ok(1)).await, Ok(1));
    let (out, detected) = detect(profile(1, Ok(2))).await;
    assert_eq!(
        (out, served_by(&detected)),
        (Ok(1), Some(("cached", false))),
        "before soft_ttl: a plain hit"
    );
    sleep(250).await;
    let (out, detected) = detect(profile(1, Err("down"))).await;
    assert_eq!(
        (out, served_by(&detected)),
        (Ok(1), Some(("soft", true))),
        "after soft_ttl a failed recomputation serves the stale value"
    );
    assert_eq!(
        profile(1, Ok(3)).await,
        Ok(3),
        "a successful one replaces it"
    );
    assert_eq!(profile(1, Ok(4)).await, Ok(3));
    sleep(1_100).await;
    assert_eq!(
        profile(1, Err("down")).await,
        Err("down".to_owned()),
        "past ttl nothing is served"
    );
}

// ---------------------------------------------------------------------------------------------------------------
// #[cache_hit]

static HIT_CACHE: LazyLock<Cache> = LazyLock::new(Cache::memory);
static HIT_RUNS: AtomicUsize = AtomicUsize::new(0);

#[cache_hit(ttl = "1h", hits = 3, cache = HIT_CACHE)]
async fn leaderboard(game: u64) -> usize {
    let _ = game;
    HIT_RUNS.fetch_add(1, SeqCst)
}

static HIT_UPDATE_RUNS: AtomicUsize = AtomicUsize::new(0);

#[cache_hit(ttl = "1h", hits = 3, update_after = 2, cache = HIT_CACHE)]
async fn ranking(game: u64) -> usize {
    let _ = game;
    HIT_UPDATE_RUNS.fetch_add(1, SeqCst)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hit_limited_entries_recompute_after_their_hits() {
    let mut seen = Vec::new();
    for _ in 0..6 {
        seen.push(leaderboard(1).await);
    }
    assert_eq!(
        seen,
        vec![0, 0, 0, 0, 1, 1],
        "a miss, three hits, then a fresh value"
    );
    let (_, detected) = detect(leaderboard(1)).await;
    assert_eq!(served_by(&detected), Some(("hits", false)));

    assert_eq!(ranking(1).await, 0);
    assert_eq!(ranking(1).await, 0);
    assert_eq!(
        ranking(1).await,
        0,
        "the 2nd hit serves and refreshes in the background"
    );
    sleep(200).await;
    assert_eq!(ranking(1).await, 1, "refreshed");
    assert_eq!(HIT_UPDATE_RUNS.load(SeqCst), 2);
}

// ---------------------------------------------------------------------------------------------------------------
// lock = true, #[cache_locked]

static LOCK_CACHE: LazyLock<Cache> = LazyLock::new(Cache::memory);
static LOCK_RUNS: AtomicUsize = AtomicUsize::new(0);
static LOCKED_RUNS: AtomicUsize = AtomicUsize::new(0);

#[cached(ttl = "1m", lock = true, lock_ttl = "5s", lock_wait = "2s", cache = LOCK_CACHE, companions(invalidate, invalidate_all, key))]
async fn report(month: u32) -> u32 {
    LOCK_RUNS.fetch_add(1, SeqCst);
    sleep(100).await;
    month * 10
}

#[cache_locked(ttl = "1m", cache = LOCK_CACHE)]
async fn summary(month: u32) -> u32 {
    LOCKED_RUNS.fetch_add(1, SeqCst);
    sleep(100).await;
    month + 1
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn locks_run_a_cold_body_once() {
    let callers: Vec<_> = (0..50)
        .map(|i| {
            tokio::spawn(async move {
                if i % 2 == 0 {
                    report(3).await
                } else {
                    summary(3).await
                }
            })
        })
        .collect();
    for (i, caller) in callers.into_iter().enumerate() {
        assert_eq!(caller.await.unwrap(), if i % 2 == 0 { 30 } else { 4 });
    }
    assert_eq!(LOCK_RUNS.load(SeqCst), 1);
    assert_eq!(LOCKED_RUNS.load(SeqCst), 1);
    let (v, detected) = detect(report(3)).await;
    assert_eq!((v, served_by(&detected)), (30, Some(("cached", false))));
    assert_eq!(report_key(3), "strategy_macros:report:month=3");
    summary_invalidate(3).await;
    assert_eq!(summary(3).await, 4);
    assert_eq!(LOCKED_RUNS.load(SeqCst), 2);
}

// ---------------------------------------------------------------------------------------------------------------
// time_condition

static TIME_CACHE: LazyLock<Cache> = LazyLock::new(Cache::memory);
static TIME_RUNS: AtomicUsize = AtomicUsize::new(0);

#[cached(time_condition = "50ms", cache = TIME_CACHE)]
async fn lookup(slow: bool) -> usize {
    if slow {
        sleep(60).await;
    }
    TIME_RUNS.fetch_add(1, SeqCst)
}

static TIME_EARLY_RUNS: AtomicUsize = AtomicUsize::new(0);

#[cache_early(ttl = "1m", time_condition = Duration::from_millis(50), cache = TIME_CACHE)]
async fn early_lookup(slow: bool) -> usize {
    if slow {
        sleep(60).await;
    }
    TIME_EARLY_RUNS.fetch_add(1, SeqCst)
}

#[tokio::test]
async fn time_condition_stores_only_slow_results() {
    assert_eq!(lookup(false).await, 0);
    assert_eq!(lookup(false).await, 1, "fast: not stored");
    assert_eq!(lookup(true).await, 2);
    assert_eq!(lookup(true).await, 2, "slow: stored");
    assert_eq!(early_lookup(false).await, 0);
    assert_eq!(early_lookup(false).await, 1);
    assert_eq!(early_lookup(true).await, 2);
    assert_eq!(early_lookup(true).await, 2);
}

// ---------------------------------------------------------------------------------------------------------------
// tags

static TAG_CACHE: LazyLock<Cache> = LazyLock::new(Cache::memory);
static TAG_RUNS: AtomicUsize = AtomicUsize::new(0);

struct User {
    id: u64,
}

#[cached(cache = TAG_CACHE, key = "profile:{user.id}", tags = ["user:{user.id}", "profiles"], companions(invalidate, invalidate_all, set, peek))]
async fn user_profile(user: &User) -> String {
    TAG_RUNS.fetch_add(1, SeqCst);
    format!("profile {}", user.id)
}

#[cache_failover(cache = TAG_CACHE, key = "orders:{user_id}", tags = ["user:{user_id}"], companions(invalidate, invalidate_all, refresh, peek))]
async fn user_orders(user_id: u64) -> Result<Vec<u64>, String> {
    TAG_RUNS.fetch_add(1, SeqCst);
    Ok(vec![user_id])
}

#[invalidates(cache = TAG_CACHE, tag = "user:{id}")]
async fn rename_user(id: u64, fail: bool) -> Result<(), String> {
    if fail {
        Err("rejected".into())
    } else {
        Ok(())
    }
}

#[tokio::test]
async fn tags_group_entries_for_deletion() {
    let (one, two) = (User { id: 1 }, User { id: 2 });
    user_profile(&one).await;
    user_profile(&two).await;
    user_orders(1).await.unwrap();
    assert_eq!(TAG_RUNS.load(SeqCst), 3);
    user_profile(&one).await;
    assert_eq!(TAG_RUNS.load(SeqCst), 3);

    rename_user(1, true).await.unwrap_err();
    user_profile(&one).await;
    assert_eq!(TAG_RUNS.load(SeqCst), 3, "an `Err` invalidates nothing");

    rename_user(1, false).await.unwrap();
    assert_eq!(user_profile_peek(&one).await, None);
    assert_eq!(user_orders_peek(1).await, None);
    assert_eq!(
        user_profile_peek(&two).await.as_deref(),
        Some("profile 2"),
        "other tags stay"
    );

    assert_eq!(TAG_CACHE.delete_tags(&["profiles"]).await.unwrap(), 1);
    assert_eq!(user_profile_peek(&two).await, None);

    // `_set` and `_refresh` register the tags too.
    user_profile_set(&User { id: 3 }, &"set".to_owned())
        .await
        .unwrap();
    user_orders_refresh(3).await.unwrap();
    assert_eq!(TAG_CACHE.delete_tags(&["user:3"]).await.unwrap(), 2);
}

// ---------------------------------------------------------------------------------------------------------------
// Several processes on one Redis (skipped without redis-server)

/// `n` caches with separate connections to the shared test Redis, under a prefix unique to the test.
async fn redis_caches(test: &str, n: usize) -> Option<Vec<Cache>> {
    let server = test_support::shared_redis()?;
    let mut caches = Vec::new();
    for _ in 0..n {
        let backend = cachette::RedisBackend::builder()
            .url(server.url())
            .key_prefix(format!("strategy_macros:{test}:"))
            .build()
            .await
            .expect("connect to the test redis");
        caches.push(Cache::builder().backend(backend).build());
    }
    Some(caches)
}

/// One "process": its own connection, the shared run counter.
struct Service {
    cache: Cache,
    runs: Arc<AtomicUsize>,
}

impl Service {
    /// `self: Arc<Self>`: the background refresh owns the service.
    #[cache_early(ttl = "60s", early_ttl = "300ms", cache = self.cache, companions(invalidate, invalidate_all, key, set, peek))]
    async fn rates(self: Arc<Self>, base: String) -> usize {
        let _ = base;
        let run = self.runs.fetch_add(1, SeqCst) + 1;
        sleep(100).await;
        run
    }

    #[cache_locked(ttl = "60s", lock_ttl = "5s", cache = self.cache)]
    async fn cold(&self, id: u64) -> u64 {
        self.runs.fetch_add(1, SeqCst);
        sleep(200).await;
        id * 2
    }

    #[cached(ttl = "60s", cache = self.cache, tags = ["user:{user_id}"], companions(invalidate, invalidate_all, peek))]
    async fn account(&self, user_id: u64, account_id: u64) -> u64 {
        self.runs.fetch_add(1, SeqCst);
        user_id * 100 + account_id
    }

    #[invalidates(cache = self.cache, tag = "user:{user_id}")]
    async fn close_accounts(&self, user_id: u64) {
        let _ = user_id;
    }
}

fn services(caches: Vec<Cache>) -> Vec<Arc<Service>> {
    let runs = Arc::new(AtomicUsize::new(0));
    caches
        .into_iter()
        .map(|cache| {
            Arc::new(Service {
                cache,
                runs: runs.clone(),
            })
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redis_early_refreshes_once_across_instances() {
    let Some(caches) = redis_caches("early", 3).await else {
        return;
    };
    let services = services(caches);
    let runs = services[0].runs.clone();
    assert_eq!(services[0].clone().rates("eur".into()).await, 1);
    sleep(350).await;
    let mut callers = Vec::new();
    for service in &services {
        for _ in 0..20 {
            callers.push(tokio::spawn(service.clone().rates("eur".into())));
        }
    }
    for caller in callers {
        assert_eq!(caller.await.unwrap(), 1);
    }
    sleep(300).await;
    assert_eq!(
        runs.load(SeqCst),
        2,
        "3 instances x 20 callers: exactly one background refresh"
    );
    let (v, detected) = detect(services[2].clone().rates("eur".into())).await;
    assert_eq!((v, served_by(&detected)), (2, Some(("early", false))));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redis_lock_runs_a_cold_body_once_across_instances() {
    let Some(caches) = redis_caches("locked", 3).await else {
        return;
    };
    let services = services(caches);
    let mut callers = Vec::new();
    for service in &services {
        for _ in 0..100 {
            let service = service.clone();
            callers.push(tokio::spawn(async move { service.cold(21).await }));
        }
    }
    for caller in callers {
        assert_eq!(caller.await.unwrap(), 42);
    }
    assert_eq!(
        services[0].runs.load(SeqCst),
        1,
        "3 instances x 100 callers ran the body once"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redis_tags_are_shared_across_instances() {
    let Some(caches) = redis_caches("tags", 2).await else {
        return;
    };
    let services = services(caches);
    let (a, b) = (&services[0], &services[1]);
    assert_eq!(a.account(1, 1).await, 101);
    assert_eq!(a.account(1, 2).await, 102);
    assert_eq!(a.account(2, 1).await, 201);
    assert_eq!(b.account(1, 1).await, 101, "served from the shared Redis");
    assert_eq!(a.runs.load(SeqCst), 3);

    b.close_accounts(1).await;
    assert_eq!(a.account_peek(1, 1).await, None);
    assert_eq!(a.account_peek(1, 2).await, None);
    assert_eq!(a.account_peek(2, 1).await, Some(201), "other tags stay");
    assert_eq!(a.cache.delete_tags(&["user:2"]).await.unwrap(), 1);
    assert_eq!(b.account_peek(2, 1).await, None);
}

// ---------------------------------------------------------------------------------------------------------------
// companions = false (trait impls): the body stays inline, the strategy is the same

static TRAIT_CACHE: LazyLock<Cache> = LazyLock::new(Cache::memory);

trait Source {
    async fn fetch(self: Arc<Self>, id: u64, up: bool) -> Result<u64, String>;
    async fn rate(self: Arc<Self>, id: u64) -> u64;
}

struct Upstream {
    runs: AtomicUsize,
}

impl Source for Upstream {
    #[cache_failover(companions = false, cache = TRAIT_CACHE, skip(up))]
    async fn fetch(self: Arc<Self>, id: u64, up: bool) -> Result<u64, String> {
        self.runs.fetch_add(1, SeqCst);
        if up {
            Ok(id)
        } else {
            Err("down".into())
        }
    }

    #[cache_early(ttl = "60s", early_ttl = "100ms", companions = false, cache = TRAIT_CACHE)]
    async fn rate(self: Arc<Self>, id: u64) -> u64 {
        id + self.runs.fetch_add(1, SeqCst) as u64
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn strategies_work_without_companions() {
    let upstream = Arc::new(Upstream {
        runs: AtomicUsize::new(0),
    });
    assert_eq!(upstream.clone().fetch(1, true).await, Ok(1));
    let (out, detected) = detect(upstream.clone().fetch(1, false)).await;
    assert_eq!(
        (out, served_by(&detected)),
        (Ok(1), Some(("failover", true)))
    );
    assert_eq!(upstream.clone().rate(10).await, 12);
    sleep(150).await;
    assert_eq!(upstream.clone().rate(10).await, 12);
    sleep(100).await;
    assert_eq!(
        upstream.clone().rate(10).await,
        13,
        "refreshed in the background"
    );
}
