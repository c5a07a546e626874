//! Every strategy on the memory backend and on a real Redis, including several `Cache` instances sharing one
//! backend as stand-ins for several processes.

use std::sync::atomic::{AtomicUsize, Ordering::SeqCst};
use std::sync::Arc;
use std::time::{Duration, Instant};

use cachette::context::{self, Ops};
use cachette::shape::{OkOnly, Plain};
use cachette::strategy::{self, LockOptions, Options};
use cachette::{Backend, Cache, MemoryBackend};

#[derive(Clone, Copy, Debug)]
enum Kind {
    Memory,
    Redis,
}

/// `n` caches over one store. Memory: one shared backend. Redis: `n` separate connections to the test server,
/// under a prefix unique to the test so tests sharing the server never see each other's keys.
async fn instances(kind: Kind, test: &str, n: usize) -> Option<Vec<Cache>> {
    match kind {
        Kind::Memory => {
            let backend: Arc<dyn Backend> = Arc::new(MemoryBackend::default());
            Some(
                (0..n)
                    .map(|_| Cache::builder().backend_arc(backend.clone()).build())
                    .collect(),
            )
        }
        Kind::Redis => {
            let server = test_support::shared_redis()?;
            let mut caches = Vec::new();
            for _ in 0..n {
                let backend = cachette::RedisBackend::builder()
                    .url(server.url())
                    .key_prefix(format!("{test}:"))
                    .command_timeout(Duration::from_secs(2))
                    .build()
                    .await
                    .expect("connect to the test redis");
                caches.push(Cache::builder().backend(backend).build());
            }
            Some(caches)
        }
    }
}

macro_rules! on_both_backends {
    ($($name:ident),* $(,)?) => {
        mod memory {
            $(#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn $name() { super::$name(super::Kind::Memory).await })*
        }
        mod redis {
            $(#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn $name() { super::$name(super::Kind::Redis).await })*
        }
    };
}

on_both_backends!(
    early_refreshes_once_in_the_background_across_instances,
    early_failed_refresh_keeps_the_old_value,
    early_foreground_gives_the_winner_the_fresh_value,
    failover_serves_the_last_ok_and_propagates_without_one,
    soft_ttl_recomputes_and_serves_stale_on_error,
    hit_limited_entries_recompute_after_their_hits,
    distributed_lock_runs_a_cold_body_once,
    dead_lock_holder_delays_others_by_at_most_the_lock_ttl,
    a_lock_holder_that_panics_or_is_cancelled_releases_the_lock_at_once,
    time_condition_stores_only_slow_results,
    tag_deletion_removes_exactly_the_tagged_entries,
    strategies_report_to_detect_and_honour_disabling,
);

fn ttl(secs: u64) -> Options<u64> {
    Options::ttl(Some(Duration::from_secs(secs)))
}

async fn early_refreshes_once_in_the_background_across_instances(kind: Kind) {
    let Some(caches) = instances(kind, "early_once", 3).await else {
        return;
    };
    let refreshes = Arc::new(AtomicUsize::new(0));
    let early_ttl = Duration::from_millis(300);
    let call = |cache: Cache, value: u64, refreshes: Arc<AtomicUsize>| async move {
        strategy::early(
            Plain,
            &cache,
            "rates".into(),
            ttl(60),
            early_ttl,
            async move {
                refreshes.fetch_add(1, SeqCst);
                tokio::time::sleep(Duration::from_millis(100)).await;
                value
            },
        )
        .await
    };
    assert_eq!(call(caches[0].clone(), 1, refreshes.clone()).await, 1);
    refreshes.store(0, SeqCst);
    tokio::time::sleep(early_ttl + Duration::from_millis(50)).await;
    // 3 "processes" x 20 concurrent callers past the early deadline: all get the old value at once.
    let mut tasks = Vec::new();
    for cache in &caches {
        for _ in 0..20 {
            tasks.push(tokio::spawn(call(cache.clone(), 2, refreshes.clone())));
        }
    }
    for t in tasks {
        assert_eq!(t.await.unwrap(), 1, "callers keep getting the stored value");
    }
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(refreshes.load(SeqCst), 1, "exactly one background refresh");
    assert_eq!(
        call(caches[2].clone(), 3, refreshes.clone()).await,
        2,
        "the refreshed value is served"
    );
}

async fn early_failed_refresh_keeps_the_old_value(kind: Kind) {
    let Some(caches) = instances(kind, "early_fail", 1).await else {
        return;
    };
    let cache = &caches[0];
    let early_ttl = Duration::from_millis(100);
    let call = |ok: bool| {
        strategy::early(
            OkOnly,
            cache,
            "k".into(),
            Options::ttl(Some(Duration::from_secs(60))),
            early_ttl,
            async move {
                if ok {
                    Ok::<u64, String>(1)
                } else {
                    Err("upstream down".to_string())
                }
            },
        )
    };
    assert_eq!(call(true).await, Ok(1));
    tokio::time::sleep(Duration::from_millis(150)).await;
    assert_eq!(call(false).await, Ok(1));
    tokio::time::sleep(Duration::from_millis(100)).await;
    assert_eq!(
        cache.get::<u64>("k").await.unwrap(),
        Some(1),
        "the failed refresh left the value"
    );
}

async fn early_foreground_gives_the_winner_the_fresh_value(kind: Kind) {
    let Some(caches) = instances(kind, "early_fg", 1).await else {
        return;
    };
    let cache = &caches[0];
    let early_ttl = Duration::from_millis(100);
    let call = |v: u64| {
        strategy::early_foreground(
            Plain,
            cache,
            "k".into(),
            ttl(60),
            early_ttl,
            async move { v },
        )
    };
    assert_eq!(call(1).await, 1);
    assert_eq!(call(2).await, 1);
    tokio::time::sleep(Duration::from_millis(150)).await;
    assert_eq!(
        call(3).await,
        3,
        "the caller that wins the refresh computes in the foreground"
    );
    assert_eq!(call(4).await, 3);
}

async fn failover_serves_the_last_ok_and_propagates_without_one(kind: Kind) {
    let Some(caches) = instances(kind, "failover", 1).await else {
        return;
    };
    let cache = &caches[0];
    let opts = || Options::ttl(Some(Duration::from_secs(60)));
    let call = |r: Result<u64, String>, accept: Option<fn(&String) -> bool>| {
        strategy::failover(cache, "w".into(), opts(), accept, async move { r })
    };
    assert_eq!(
        call(Err("down".into()), None).await,
        Err("down".into()),
        "nothing stored: the error"
    );
    assert_eq!(call(Ok(20), None).await, Ok(20));
    assert_eq!(call(Ok(21), None).await, Ok(21), "the body always runs");
    let (out, detected) = context::detect(call(Err("timeout".into()), None)).await;
    assert_eq!(out, Ok(21));
    assert!(detected.hits()[0].stale);
    assert_eq!(detected.hits()[0].strategy, "failover");
    let only_timeouts: fn(&String) -> bool = |e| e.contains("timeout");
    assert_eq!(
        call(Err("bad request".into()), Some(only_timeouts)).await,
        Err("bad request".into())
    );
}

async fn soft_ttl_recomputes_and_serves_stale_on_error(kind: Kind) {
    let Some(caches) = instances(kind, "soft", 1).await else {
        return;
    };
    let cache = &caches[0];
    let soft = Duration::from_millis(200);
    let call = |r: Result<u64, String>, hard_ms: u64| {
        strategy::soft(
            OkOnly,
            cache,
            "s".into(),
            Options::ttl(Some(Duration::from_millis(hard_ms))),
            soft,
            async move { r },
        )
    };
    assert_eq!(call(Ok(1), 1_000).await, Ok(1));
    assert_eq!(
        call(Ok(2), 1_000).await,
        Ok(1),
        "before the soft deadline: cached"
    );
    tokio::time::sleep(Duration::from_millis(250)).await;
    let (out, detected) = context::detect(call(Err("down".into()), 1_000)).await;
    assert_eq!(
        out,
        Ok(1),
        "after the soft deadline an error serves the stale value"
    );
    assert!(detected.hits()[0].stale);
    assert_eq!(
        call(Ok(3), 1_000).await,
        Ok(3),
        "after the soft deadline success recomputes"
    );
    assert_eq!(call(Ok(4), 400).await, Ok(3));
    tokio::time::sleep(Duration::from_millis(1_100)).await;
    assert_eq!(
        call(Err("down".into()), 400).await,
        Err("down".into()),
        "past the hard TTL nothing is served"
    );
}

async fn hit_limited_entries_recompute_after_their_hits(kind: Kind) {
    let Some(caches) = instances(kind, "hits", 1).await else {
        return;
    };
    let cache = &caches[0];
    let runs = Arc::new(AtomicUsize::new(0));
    let call = |update_after: Option<u64>| {
        let runs = runs.clone();
        strategy::hits(
            Plain,
            cache,
            "h".into(),
            ttl(60),
            3,
            update_after,
            async move { runs.fetch_add(1, SeqCst) as u64 },
        )
    };
    let mut seen = Vec::new();
    for _ in 0..6 {
        seen.push(call(None).await);
    }
    assert_eq!(
        seen,
        vec![0, 0, 0, 0, 1, 1],
        "a miss, three hits, then a fresh value"
    );
    // update_after: the 2nd hit refreshes in the background and resets the count.
    cache.delete("h").await.unwrap();
    runs.store(10, SeqCst);
    assert_eq!(call(Some(2)).await, 10);
    assert_eq!(call(Some(2)).await, 10);
    assert_eq!(call(Some(2)).await, 10);
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert_eq!(call(Some(2)).await, 11, "refreshed in the background");
    assert_eq!(runs.load(SeqCst), 12);
}

async fn distributed_lock_runs_a_cold_body_once(kind: Kind) {
    let Some(caches) = instances(kind, "lock_once", 3).await else {
        return;
    };
    let runs = Arc::new(AtomicUsize::new(0));
    let lock = LockOptions::new(Duration::from_secs(5)).poll(Duration::from_millis(20));
    let mut tasks = Vec::new();
    for cache in &caches {
        for _ in 0..100 {
            let (cache, runs) = (cache.clone(), runs.clone());
            tasks.push(tokio::spawn(async move {
                strategy::locked(Plain, &cache, "cold".into(), ttl(60), lock, async move {
                    runs.fetch_add(1, SeqCst);
                    tokio::time::sleep(Duration::from_millis(200)).await;
                    42u64
                })
                .await
            }));
        }
    }
    for t in tasks {
        assert_eq!(t.await.unwrap(), 42);
    }
    assert_eq!(
        runs.load(SeqCst),
        1,
        "3 instances x 100 callers ran the body once"
    );
}

async fn dead_lock_holder_delays_others_by_at_most_the_lock_ttl(kind: Kind) {
    let Some(caches) = instances(kind, "lock_dead", 2).await else {
        return;
    };
    let lock_ttl = Duration::from_millis(800);
    let lock = LockOptions::new(lock_ttl)
        .wait(Duration::from_secs(10))
        .poll(Duration::from_millis(20));
    // Another process took the lock next to the key and died: nothing will ever unlock it.
    let guard = caches[0].try_lock("k:__lock", lock_ttl).await.unwrap();
    assert!(guard.is_some());
    // Dying means never releasing: the guard must not run its drop.
    std::mem::forget(guard);
    let started = Instant::now();
    let v = strategy::locked(Plain, &caches[1], "k".into(), ttl(60), lock, async { 7u64 }).await;
    let waited = started.elapsed();
    assert_eq!(v, 7);
    assert!(
        waited <= lock_ttl + Duration::from_millis(500),
        "waited {waited:?} for a dead holder"
    );
}

/// Regression: a holder that panicked or was cancelled left its lock for the whole TTL, so every caller in
/// every process waited it out and then each ran the body itself.
async fn a_lock_holder_that_panics_or_is_cancelled_releases_the_lock_at_once(kind: Kind) {
    let Some(caches) = instances(kind, "lock_released", 2).await else {
        return;
    };
    let lock = LockOptions::new(Duration::from_secs(10)).poll(Duration::from_millis(20));
    let runs = Arc::new(AtomicUsize::new(0));
    let holder = {
        let (cache, runs) = (caches[0].clone(), runs.clone());
        tokio::spawn(async move {
            strategy::locked(Plain, &cache, "p".into(), ttl(60), lock, async move {
                runs.fetch_add(1, SeqCst);
                tokio::time::sleep(Duration::from_millis(100)).await;
                panic!("body failed");
                #[allow(unreachable_code)]
                0u64
            })
            .await
        })
    };
    tokio::time::sleep(Duration::from_millis(30)).await;
    let started = Instant::now();
    let callers: Vec<_> = (0..19)
        .map(|i| {
            let (cache, runs) = (caches[i % 2].clone(), runs.clone());
            tokio::spawn(async move {
                strategy::locked(Plain, &cache, "p".into(), ttl(60), lock, async move {
                    runs.fetch_add(1, SeqCst);
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    7u64
                })
                .await
            })
        })
        .collect();
    assert!(holder.await.is_err(), "the panic reaches its own caller");
    for caller in callers {
        let got = tokio::time::timeout(Duration::from_secs(8), caller)
            .await
            .expect("a caller waited out the lock TTL");
        assert_eq!(got.unwrap(), 7);
    }
    let waited = started.elapsed();
    assert!(waited < Duration::from_secs(3), "callers waited {waited:?}");
    assert_eq!(
        runs.load(SeqCst),
        2,
        "the panicking run, then one run shared by all 19 callers of both instances"
    );

    // A holder whose future is dropped mid-body (a cancelled request) releases the lock too.
    let holder = strategy::locked(Plain, &caches[0], "c".into(), ttl(60), lock, async {
        tokio::time::sleep(Duration::from_secs(60)).await;
        0u64
    });
    let _ = tokio::time::timeout(Duration::from_millis(100), holder).await;
    let started = Instant::now();
    let v = strategy::locked(Plain, &caches[1], "c".into(), ttl(60), lock, async { 5u64 }).await;
    assert_eq!(v, 5);
    let waited = started.elapsed();
    assert!(
        waited < Duration::from_secs(2),
        "waited {waited:?} after a cancelled holder"
    );
}

async fn time_condition_stores_only_slow_results(kind: Kind) {
    let Some(caches) = instances(kind, "time_cond", 1).await else {
        return;
    };
    let cache = &caches[0];
    let opts = || ttl(60).time_condition(Duration::from_millis(50));
    strategy::cached_with(Plain, cache, "fast".into(), opts(), async { 1u64 }).await;
    strategy::cached_with(Plain, cache, "slow".into(), opts(), async {
        tokio::time::sleep(Duration::from_millis(60)).await;
        2u64
    })
    .await;
    assert_eq!(cache.get::<u64>("fast").await.unwrap(), None);
    assert_eq!(cache.get::<u64>("slow").await.unwrap(), Some(2));
}

async fn tag_deletion_removes_exactly_the_tagged_entries(kind: Kind) {
    let Some(caches) = instances(kind, "tags", 1).await else {
        return;
    };
    let cache = &caches[0];
    let store = |key: &'static str, tags: Vec<String>| {
        strategy::cached_with(Plain, cache, key.into(), ttl(60).tags(tags), async { 1u64 })
    };
    store("profile:1", vec!["user:1".into()]).await;
    store("orders:1", vec!["user:1".into(), "orders".into()]).await;
    store("orders:2", vec!["user:2".into(), "orders".into()]).await;
    store("plain", vec![]).await;
    assert_eq!(cache.delete_tags(&["user:1"]).await.unwrap(), 2);
    for (key, present) in [
        ("profile:1", false),
        ("orders:1", false),
        ("orders:2", true),
        ("plain", true),
    ] {
        assert_eq!(
            cache.get::<u64>(key).await.unwrap().is_some(),
            present,
            "{key}"
        );
    }
    assert_eq!(
        cache.delete_tags(&["orders"]).await.unwrap(),
        1,
        "orders:1 was already gone"
    );
    assert_eq!(cache.get::<u64>("orders:2").await.unwrap(), None);
}

async fn strategies_report_to_detect_and_honour_disabling(kind: Kind) {
    let Some(caches) = instances(kind, "detect", 1).await else {
        return;
    };
    let cache = &caches[0];
    let early = |v: u64| {
        strategy::early(
            Plain,
            cache,
            "e".into(),
            ttl(60),
            Duration::from_secs(30),
            async move { v },
        )
    };
    early(1).await;
    let (v, detected) = context::detect(early(2)).await;
    assert_eq!(v, 1);
    let hit = &detected.hits()[0];
    assert_eq!(
        (hit.key.as_str(), hit.strategy, hit.stale),
        ("e", "early", false)
    );
    assert!(hit.ttl.unwrap() <= Duration::from_secs(60));
    assert_eq!(
        context::disabling(Ops::GET, early(3)).await,
        3,
        "disabled reads compute"
    );
    assert_eq!(early(4).await, 3, "and the fresh value was stored");
    let lock = LockOptions::new(Duration::from_secs(1));
    let locked =
        |v: u64| strategy::locked(Plain, cache, "l".into(), ttl(60), lock, async move { v });
    locked(1).await;
    assert_eq!(context::disabling(Ops::GET | Ops::SET, locked(2)).await, 2);
    let (v, detected) = context::detect(locked(3)).await;
    assert_eq!((v, detected.keys()), (1, vec!["l"]));
}
