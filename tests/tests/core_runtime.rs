//! End-to-end behaviour of the runtime through the public API, without macros: single-flight, panics,
//! context scopes, unreadable stored bytes, prefix routing.

use std::sync::atomic::{AtomicUsize, Ordering::SeqCst};
use std::sync::Arc;
use std::time::Duration;

use cachette::context::{self, Ops};
use cachette::{Backend, Cache, MemoryBackend, SetMode};
use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
struct Account {
    id: u64,
    owner: String,
}

fn account(id: u64) -> Account {
    Account {
        id,
        owner: format!("owner-{id}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_thousand_cold_callers_run_the_body_once() {
    let cache = Cache::memory();
    let runs = Arc::new(AtomicUsize::new(0));
    let tasks: Vec<_> = (0..1_000)
        .map(|_| {
            let (cache, runs) = (cache.clone(), runs.clone());
            tokio::spawn(async move {
                cache
                    .get_or_set("account:1", None, || async {
                        runs.fetch_add(1, SeqCst);
                        tokio::time::sleep(Duration::from_millis(50)).await;
                        account(1)
                    })
                    .await
            })
        })
        .collect();
    for task in tasks {
        assert_eq!(task.await.unwrap(), account(1));
    }
    assert_eq!(runs.load(SeqCst), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_panicking_body_releases_the_waiters() {
    let cache = Cache::memory();
    let runs = Arc::new(AtomicUsize::new(0));
    let leader = {
        let (cache, runs) = (cache.clone(), runs.clone());
        tokio::spawn(async move {
            cache
                .get_or_set("k", None, || async {
                    runs.fetch_add(1, SeqCst);
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    panic!("body failed");
                    #[allow(unreachable_code)]
                    0u32
                })
                .await
        })
    };
    tokio::time::sleep(Duration::from_millis(20)).await;
    let waiters: Vec<_> = (0..10)
        .map(|_| {
            let (cache, runs) = (cache.clone(), runs.clone());
            tokio::spawn(async move {
                cache
                    .get_or_set("k", None, || async {
                        runs.fetch_add(1, SeqCst);
                        7u32
                    })
                    .await
            })
        })
        .collect();
    assert!(
        leader.await.is_err(),
        "the leader's panic propagates to its own caller"
    );
    for w in waiters {
        let got = tokio::time::timeout(Duration::from_secs(5), w)
            .await
            .expect("waiter hung");
        assert_eq!(got.unwrap(), 7);
    }
    // The panicking run, then exactly one waiter took over; the other nine shared its result.
    assert_eq!(runs.load(SeqCst), 2);
}

#[tokio::test]
async fn a_cancelled_leader_releases_the_waiters() {
    let cache = Cache::memory();
    let slow = cache.get_or_set("k", None, || async {
        tokio::time::sleep(Duration::from_secs(60)).await;
        1u32
    });
    // Poll the leader briefly, then drop it mid-flight.
    let _ = tokio::time::timeout(Duration::from_millis(20), slow).await;
    let v = tokio::time::timeout(
        Duration::from_secs(2),
        cache.get_or_set("k", None, || async { 2u32 }),
    )
    .await
    .expect("no waiter may hang on a cancelled leader");
    assert_eq!(v, 2);
}

#[tokio::test]
async fn nested_cached_calls_do_not_deadlock() {
    let cache = Cache::memory();
    let inner = |c: Cache| async move { c.get_or_set("inner", None, || async { 1u32 }).await };
    let c2 = cache.clone();
    let outer = cache.get_or_set("outer", None, || async move { inner(c2).await + 1 });
    let v = tokio::time::timeout(Duration::from_secs(2), outer)
        .await
        .unwrap();
    assert_eq!(v, 2);
    assert_eq!(cache.get::<u32>("inner").await.unwrap(), Some(1));
}

#[tokio::test]
async fn errors_are_not_shared_or_stored() {
    let cache = Cache::memory();
    let attempt = |n: u32| {
        cachette::strategy::cached(
            cachette::shape::OkOnly,
            &cache,
            "r".into(),
            None,
            None,
            async move {
                if n == 0 {
                    Err::<u32, String>("down".into())
                } else {
                    Ok(n)
                }
            },
        )
    };
    assert_eq!(attempt(0).await, Err("down".to_string()));
    assert_eq!(attempt(5).await, Ok(5));
    assert_eq!(attempt(6).await, Ok(5), "the Ok is cached");
}

#[tokio::test]
async fn entries_expire_after_their_ttl() {
    let cache = Cache::memory();
    let ttl = Some(Duration::from_millis(150));
    assert_eq!(cache.get_or_set("t", ttl, || async { 1u8 }).await, 1);
    assert_eq!(cache.get_or_set("t", ttl, || async { 2u8 }).await, 1);
    tokio::time::sleep(Duration::from_millis(250)).await;
    assert_eq!(cache.get_or_set("t", ttl, || async { 3u8 }).await, 3);
}

#[tokio::test]
async fn disabled_get_runs_the_body_and_still_stores() {
    let cache = Cache::memory();
    cache.set("k", &1u32, None).await.unwrap();
    let v = context::disabling(Ops::GET, cache.get_or_set("k", None, || async { 2u32 })).await;
    assert_eq!(v, 2);
    assert_eq!(cache.get::<u32>("k").await.unwrap(), Some(2));
    let v = context::disabling(
        Ops::GET | Ops::SET,
        cache.get_or_set("k", None, || async { 3u32 }),
    )
    .await;
    assert_eq!(v, 3);
    assert_eq!(
        cache.get::<u32>("k").await.unwrap(),
        Some(2),
        "SET disabled: nothing written"
    );
}

#[tokio::test]
async fn a_child_scope_never_changes_its_parent() {
    let cache = Cache::memory();
    context::disabling(Ops::GET, async {
        context::disabling(Ops::SET, cache.get_or_set("child", None, || async { 1u8 })).await;
        assert!(
            !context::is_disabled(Ops::SET),
            "the child's disabled SET leaked into the parent"
        );
        cache.get_or_set("parent", None, || async { 2u8 }).await;
    })
    .await;
    assert_eq!(cache.get::<u8>("child").await.unwrap(), None);
    assert_eq!(
        cache.get::<u8>("parent").await.unwrap(),
        Some(2),
        "the parent still stores"
    );
    assert!(!context::is_disabled(Ops::GET));
}

#[tokio::test]
async fn detect_records_hits_of_joined_futures_and_nests() {
    let cache = Cache::memory();
    cache
        .set("a", &1u8, Some(Duration::from_secs(30)))
        .await
        .unwrap();
    cache.set("b", &2u8, None).await.unwrap();
    let ((outer_values, inner), outer) = context::detect(async {
        let joined = futures::future::join3(
            cache.get_or_set("a", None, || async { 0u8 }),
            cache.get_or_set("b", None, || async { 0u8 }),
            cache.get_or_set("c", None, || async { 3u8 }),
        )
        .await;
        let (_, inner) = context::detect(cache.get_or_set("b", None, || async { 0u8 })).await;
        (joined, inner)
    })
    .await;
    assert_eq!(outer_values, (1, 2, 3));
    let mut keys = outer.keys();
    keys.sort();
    assert_eq!(keys, vec!["a", "b", "b"]);
    assert_eq!(inner.keys(), vec!["b"]);
    let hit_a = outer.hits().iter().find(|h| h.key == "a").unwrap();
    assert_eq!(hit_a.strategy, "cached");
    assert!(hit_a.ttl.unwrap() <= Duration::from_secs(30));
    assert!(outer
        .hits()
        .iter()
        .find(|h| h.key == "b")
        .unwrap()
        .ttl
        .is_none());
}

#[tokio::test]
async fn detect_follows_spawned_work_only_when_carried() {
    let cache = Cache::memory();
    cache.set("k", &1u8, None).await.unwrap();
    let (_, detected) = context::detect(async {
        let c = cache.clone();
        tokio::spawn(async move { c.get_or_set("k", None, || async { 0u8 }).await })
            .await
            .unwrap();
        let c = cache.clone();
        context::spawn(async move { c.get_or_set("k", None, || async { 0u8 }).await })
            .await
            .unwrap();
    })
    .await;
    assert_eq!(detected.keys(), vec!["k"], "only the carried task reports");
}

#[tokio::test]
async fn invalidate_further_deletes_on_read_and_stores_fresh() {
    let cache = Cache::memory();
    cache.set("k", &1u8, None).await.unwrap();
    let v = context::invalidate_further(cache.get_or_set("k", None, || async { 2u8 })).await;
    assert_eq!(v, 2);
    assert_eq!(cache.get_or_set("k", None, || async { 3u8 }).await, 2);
}

#[tokio::test]
async fn undecodable_stored_bytes_are_a_miss_and_get_overwritten() {
    let backend = Arc::new(MemoryBackend::default());
    let cache = Cache::builder().backend_arc(backend.clone()).build();
    for garbage in [
        &b"plain text"[..],
        b"",
        b"\xCA",
        b"\xCA\x01\x01\x00\x00",
        b"\xCA\x09rest-of-it!!",
    ] {
        backend
            .set("acct", garbage.into(), None, SetMode::Always)
            .await
            .unwrap();
        let got = cache
            .get_or_set("acct", None, || async { account(9) })
            .await;
        assert_eq!(got, account(9));
        assert_eq!(
            cache.get::<Account>("acct").await.unwrap(),
            Some(account(9)),
            "overwritten"
        );
    }
    // A value of another type under the key (a changed struct) is a miss too.
    cache.set("acct", &"not an account", None).await.unwrap();
    assert_eq!(cache.get::<Account>("acct").await.unwrap(), None);
    assert_eq!(
        cache
            .get_or_set("acct", None, || async { account(3) })
            .await,
        account(3)
    );
    assert!(cache.metrics().decode_errors >= 6);
}

#[tokio::test]
async fn json_and_msgpack_values_read_back_through_either_cache() {
    let backend: Arc<dyn Backend> = Arc::new(MemoryBackend::default());
    let json = Cache::builder()
        .backend_arc(backend.clone())
        .codec(cachette::Codec::Json)
        .build();
    let msgpack = Cache::builder().backend_arc(backend.clone()).build();
    json.set("j", &account(1), None).await.unwrap();
    msgpack.set("m", &account(2), None).await.unwrap();
    assert_eq!(msgpack.get::<Account>("j").await.unwrap(), Some(account(1)));
    assert_eq!(json.get::<Account>("m").await.unwrap(), Some(account(2)));
    let raw = backend.get("j").await.unwrap().unwrap();
    assert!(
        raw.ends_with(br#"{"id":1,"owner":"owner-1"}"#),
        "JSON payload readable after the header"
    );
}

#[tokio::test]
async fn prefix_routes_send_keys_to_their_backend() {
    let users = Arc::new(MemoryBackend::default());
    let rest = Arc::new(MemoryBackend::default());
    let cache = Cache::builder()
        .backend_arc(rest.clone())
        .route("user:", users.clone())
        .route("user:admin:", Arc::new(MemoryBackend::default()))
        .build();
    cache.set("user:1", &1u8, None).await.unwrap();
    cache.set("post:1", &2u8, None).await.unwrap();
    cache.set("user:admin:1", &3u8, None).await.unwrap();
    assert!(users.get("user:1").await.unwrap().is_some());
    assert!(rest.get("user:1").await.unwrap().is_none());
    assert!(rest.get("post:1").await.unwrap().is_some());
    assert!(
        users.get("user:admin:1").await.unwrap().is_none(),
        "the longest prefix wins"
    );
    assert_eq!(
        cache
            .get_many::<u8>(&["user:1", "post:1", "user:admin:1", "x"])
            .await
            .unwrap(),
        vec![Some(1), Some(2), Some(3), None]
    );
    assert_eq!(cache.delete_match("user:*").await.unwrap(), 2);
    assert_eq!(cache.delete_many(&["post:1", "user:1"]).await.unwrap(), 1);
}

#[tokio::test]
async fn typed_helpers_cover_the_operation_set() {
    let cache = Cache::memory();
    cache
        .set_many(&[("a", &1u32), ("b", &2u32)], Some(Duration::from_secs(60)))
        .await
        .unwrap();
    assert_eq!(
        cache.get_many::<u32>(&["a", "b", "c"]).await.unwrap(),
        vec![Some(1), Some(2), None]
    );
    assert!(matches!(
        cache.ttl("a").await.unwrap(),
        cachette::KeyTtl::Remaining(_)
    ));
    assert!(cache.expire("a", Duration::from_millis(50)).await.unwrap());
    assert_eq!(cache.incr("n", 5, None).await.unwrap(), 5);
    let mut keys = cache.scan("*").await.unwrap();
    keys.sort();
    assert_eq!(keys, vec!["a", "b", "n"]);
    tokio::time::sleep(Duration::from_millis(80)).await;
    assert_eq!(cache.get::<u32>("a").await.unwrap(), None);
    cache.clear().await.unwrap();
    assert!(cache.scan("*").await.unwrap().is_empty());
}

#[tokio::test]
async fn set_global_replaces_the_default() {
    let mine = Cache::memory();
    cachette::set_global(mine.clone());
    cachette::global().set("g", &1u8, None).await.unwrap();
    assert_eq!(mine.get::<u8>("g").await.unwrap(), Some(1));
}

/// Regression (single-flight takeover race): after an abandoned leader, a waiter could read the cache (miss),
/// the new leader store and unregister, and the waiter then lead and run the body a third time. Looped so the
/// interleaving is actually hit: without the re-check after winning leadership this failed within a few dozen
/// rounds on a 2-core machine.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn after_an_abandoned_leader_exactly_one_waiter_runs_the_body() {
    for round in 0..300 {
        let cache = Cache::memory();
        let runs = Arc::new(AtomicUsize::new(0));
        // The waiters start once the leader's body runs: on a loaded machine a fixed delay let a waiter lead.
        let (started, leading) = tokio::sync::oneshot::channel::<()>();
        let leader = {
            let (cache, runs) = (cache.clone(), runs.clone());
            tokio::spawn(async move {
                cache
                    .get_or_set("k", None, || async {
                        runs.fetch_add(1, SeqCst);
                        let _ = started.send(());
                        tokio::time::sleep(Duration::from_millis(2)).await;
                        panic!("body failed");
                        #[allow(unreachable_code)]
                        0u32
                    })
                    .await
            })
        };
        leading.await.expect("the leader's body starts");
        let waiters: Vec<_> = (0..8)
            .map(|_| {
                let (cache, runs) = (cache.clone(), runs.clone());
                tokio::spawn(async move {
                    cache
                        .get_or_set("k", None, || async {
                            runs.fetch_add(1, SeqCst);
                            7u32
                        })
                        .await
                })
            })
            .collect();
        assert!(leader.await.is_err());
        for w in waiters {
            assert_eq!(w.await.unwrap(), 7);
        }
        assert_eq!(runs.load(SeqCst), 2, "round {round}");
    }
}

/// The same race without a panic: a caller whose read missed just before another leader stored and left must
/// not compute the key again. Every round, 8 concurrent cold callers run the body exactly once.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_caller_that_missed_just_before_a_store_does_not_recompute() {
    let cache = Cache::memory();
    for round in 0..500 {
        let key = format!("k{round}");
        let runs = Arc::new(AtomicUsize::new(0));
        let callers: Vec<_> = (0..8)
            .map(|_| {
                let (cache, runs, key) = (cache.clone(), runs.clone(), key.clone());
                tokio::spawn(async move {
                    cache
                        .get_or_set(&key, None, || async {
                            runs.fetch_add(1, SeqCst);
                            round
                        })
                        .await
                })
            })
            .collect();
        for c in callers {
            assert_eq!(c.await.unwrap(), round);
        }
        assert_eq!(runs.load(SeqCst), 1, "round {round}");
    }
}

/// Regression: a body asking for its own key became a follower of itself and hung forever.
#[tokio::test]
async fn a_body_that_asks_for_its_own_key_does_not_deadlock() {
    let cache = Cache::memory();
    let inner_cache = cache.clone();
    let outer = cache.get_or_set("k", None, || async move {
        let inner: u32 = inner_cache.get_or_set("k", None, || async { 1 }).await;
        inner + 1
    });
    let v = tokio::time::timeout(Duration::from_secs(5), outer)
        .await
        .expect("same-key recursion hung");
    assert_eq!(v, 2);
    assert_eq!(
        cache.get::<u32>("k").await.unwrap(),
        Some(2),
        "the outer value is stored"
    );

    // Also through a task the body spawns with its context, and on other keys as before.
    let spawner = cache.clone();
    let outer = cache.get_or_set("s", None, || async move {
        let c = spawner.clone();
        let inner =
            context::spawn(async move { c.get_or_set("s", None, || async { 10u32 }).await })
                .await
                .unwrap();
        let other: u32 = spawner.get_or_set("other", None, || async { 5 }).await;
        inner + other
    });
    let v = tokio::time::timeout(Duration::from_secs(5), outer)
        .await
        .expect("same-key recursion through a spawned task hung");
    assert_eq!(v, 15);
    assert_eq!(cache.get::<u32>("other").await.unwrap(), Some(5));
}

/// Regression: the typed API ignored the context (`invalidate_further`, disabled ops) and typed reads were not
/// counted in the metrics.
#[tokio::test]
async fn typed_operations_honour_the_scope_and_are_counted() {
    let cache = Cache::memory();
    cache.set("k", &1u8, None).await.unwrap();

    let read = context::invalidate_further(cache.get::<u8>("k"))
        .await
        .unwrap();
    assert_eq!(read, None, "a read inside invalidate_further misses");
    assert_eq!(
        cache.get::<u8>("k").await.unwrap(),
        None,
        "and deleted the entry"
    );

    cache
        .set_many(&[("a", &1u8), ("b", &2u8)], None)
        .await
        .unwrap();
    let read = context::invalidate_further(cache.get_many::<u8>(&["a", "b"])).await;
    assert_eq!(read.unwrap(), vec![None, None]);
    assert_eq!(
        cache.get_many::<u8>(&["a", "b"]).await.unwrap(),
        vec![None, None]
    );

    cache.set("k", &1u8, None).await.unwrap();
    let read = context::disabling(Ops::GET, cache.get::<u8>("k"))
        .await
        .unwrap();
    assert_eq!(read, None);
    assert_eq!(
        cache.get::<u8>("k").await.unwrap(),
        Some(1),
        "a disabled read deletes nothing"
    );
    let old = context::with_max_age(Duration::ZERO, cache.get::<u8>("k"))
        .await
        .unwrap();
    assert_eq!(old, None, "max-age applies to typed reads");

    context::disabling(Ops::SET, async {
        cache.set("s", &1u8, None).await.unwrap();
        cache.set_many(&[("t", &1u8)], None).await.unwrap();
        assert!(!cache.expire("k", Duration::from_millis(1)).await.unwrap());
    })
    .await;
    assert_eq!(
        cache.get_many::<u8>(&["s", "t"]).await.unwrap(),
        vec![None, None]
    );
    assert_eq!(cache.ttl("k").await.unwrap(), cachette::KeyTtl::Persistent);

    context::disabling(Ops::DELETE, async {
        assert!(!cache.delete("k").await.unwrap());
        assert_eq!(cache.delete_many(&["k"]).await.unwrap(), 0);
        assert_eq!(cache.delete_match("*").await.unwrap(), 0);
        cache.clear().await.unwrap();
    })
    .await;
    assert_eq!(
        cache.get::<u8>("k").await.unwrap(),
        Some(1),
        "nothing was deleted"
    );

    let disabled = context::disabling(Ops::INCR, cache.incr("n", 1, None)).await;
    assert!(
        matches!(disabled, Err(cachette::CacheError::Disabled(ops)) if ops == Ops::INCR),
        "{disabled:?}"
    );
    assert_eq!(
        cache.incr("n", 1, None).await.unwrap(),
        1,
        "nothing was counted while disabled"
    );

    let before = cache.metrics();
    cache.get::<u8>("k").await.unwrap();
    cache.get::<u8>("missing").await.unwrap();
    cache.get_many::<u8>(&["k", "missing"]).await.unwrap();
    let after = cache.metrics();
    assert_eq!(
        (after.hits - before.hits, after.misses - before.misses),
        (2, 2)
    );
}

/// Regression: a loop of memory hits never yielded, so other tasks on the same worker (timers, I/O) starved.
#[tokio::test(flavor = "current_thread")]
async fn a_loop_of_memory_hits_lets_other_tasks_run() {
    let cache = Cache::memory();
    cache.get_or_set("k", None, || async { 1u8 }).await;
    let ran = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let flag = ran.clone();
    tokio::spawn(async move { flag.store(true, SeqCst) });
    let mut hits = 0;
    while !ran.load(SeqCst) && hits < 100_000 {
        cache.get_or_set("k", None, || async { 2u8 }).await;
        cache.get::<u8>("k").await.unwrap();
        hits += 1;
    }
    assert!(
        ran.load(SeqCst),
        "the other task never ran during {hits} hits"
    );
}

/// Regression: corrupted values that still decoded were served. Flip 1–8 random bits of stored entries: every
/// read is a miss (counted), never a different value.
#[tokio::test]
async fn corrupted_entries_are_misses_never_wrong_values() {
    let backend = Arc::new(MemoryBackend::default());
    let cache = Cache::builder().backend_arc(backend.clone()).build();
    let mut state = 0x2545_F491_4F6C_DD1Du64;
    let mut next = move || {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        state
    };
    for round in 0..5_000u64 {
        let key = format!("acct:{round}");
        cache.set(&key, &account(round), None).await.unwrap();
        let mut bytes = backend.get(&key).await.unwrap().unwrap().to_vec();
        let flips = 1 + next() % 8;
        let mut flipped = std::collections::HashSet::new();
        while (flipped.len() as u64) < flips {
            flipped.insert(next() as usize % (bytes.len() * 8));
        }
        for bit in flipped {
            bytes[bit / 8] ^= 1 << (bit % 8);
        }
        backend
            .set(&key, bytes.into(), None, SetMode::Always)
            .await
            .unwrap();
        assert_eq!(
            cache.get::<Account>(&key).await.unwrap(),
            None,
            "round {round}"
        );
        let got = cache
            .get_or_set(&key, None, || async { account(round) })
            .await;
        assert_eq!(got, account(round), "round {round}");
    }
    assert!(cache.metrics().decode_errors >= 5_000);
}

/// A miss costs one backend read: the leader reads the key again only if another flight ended since its own
/// read (a leader may have stored it in between), not on every miss — on Redis that second read was a round trip
/// per miss.
#[tokio::test]
async fn a_cold_miss_reads_the_backend_once() {
    use cachette::layer::{LayeredExt, Observe, Op};
    let observed = Arc::new(cachette::MemoryBackend::default().layered(Observe::new()));
    let cache = Cache::builder().backend(observed.clone()).build();
    for i in 0..10u32 {
        let v = cache
            .get_or_set(&format!("cold:{i}"), None, || async move { i })
            .await;
        assert_eq!(v, i);
    }
    assert_eq!(observed.layer().stats(Op::Get).calls, 10);
    assert_eq!(observed.layer().stats(Op::Set).calls, 10);
}
