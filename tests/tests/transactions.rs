//! Transactions (cashews `cache.transaction()`) on memory and on a real redis-server: writes buffered and seen
//! inside, applied on `Ok`, dropped on `Err`, panic and cancellation; nesting joins the outer transaction;
//! `Locked` mode serialises transactions writing one key, across two instances.

use std::sync::atomic::{AtomicUsize, Ordering::SeqCst};
use std::sync::Arc;
use std::time::{Duration, Instant};

use cachette::{context, Backend, Cache, CacheError, MemoryBackend, RedisBackend, TransactionMode};

/// Two caches over each store (two connections for Redis), under a prefix unique to the test.
async fn stores(test: &str) -> Vec<(&'static str, [Cache; 2])> {
    let memory: Arc<dyn Backend> = Arc::new(MemoryBackend::default());
    let mut sets = vec![(
        "memory",
        [
            Cache::builder().backend_arc(memory.clone()).build(),
            Cache::builder().backend_arc(memory).build(),
        ],
    )];
    if let Some(server) = test_support::shared_redis() {
        let mut pair = Vec::new();
        for _ in 0..2 {
            let backend = RedisBackend::builder()
                .url(server.url())
                .key_prefix(format!("{test}:"))
                .build()
                .await
                .expect("connect to the test redis");
            pair.push(Cache::builder().backend(backend).build());
        }
        let [a, b]: [Cache; 2] = pair.try_into().ok().unwrap();
        sets.push(("redis", [a, b]));
    }
    sets
}

async fn text(cache: &Cache, key: &str) -> Option<String> {
    cache.get::<String>(key).await.unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn writes_are_seen_inside_applied_on_ok_and_dropped_on_err() {
    for (store, [cache, other]) in stores("tx_basic").await {
        cache.set("k", "old", None).await.unwrap();
        cache.set("gone", "here", None).await.unwrap();
        let committed = context::transaction(async {
            cache.set("k", "new", None).await?;
            assert!(cache.delete("gone").await?, "{store}: existed");
            cache
                .set_many(&[("m1", &"one"), ("m2", &"two")], None)
                .await?;
            // Inside: the transaction's own writes.
            assert_eq!(text(&cache, "k").await.as_deref(), Some("new"), "{store}");
            assert_eq!(text(&cache, "gone").await, None, "{store}");
            let many = cache.get_many::<String>(&["m1", "k", "gone"]).await?;
            assert_eq!(
                many,
                [Some("one".into()), Some("new".into()), None],
                "{store}"
            );
            // Outside (another task, another instance): nothing yet.
            let outside = {
                let other = other.clone();
                tokio::spawn(async move { (text(&other, "k").await, text(&other, "gone").await) })
            };
            assert_eq!(
                outside.await.unwrap(),
                (Some("old".into()), Some("here".into())),
                "{store}"
            );
            Ok::<_, CacheError>(7)
        })
        .await;
        assert_eq!(committed.unwrap(), 7, "{store}");
        assert_eq!(text(&other, "k").await.as_deref(), Some("new"), "{store}");
        assert_eq!(text(&other, "gone").await, None, "{store}");
        assert_eq!(text(&other, "m2").await.as_deref(), Some("two"), "{store}");

        let failed: Result<(), &str> = context::transaction(async {
            cache.set("k", "rolled back", None).await.unwrap();
            cache.delete("m1").await.unwrap();
            Err("declined")
        })
        .await;
        assert_eq!(failed, Err("declined"), "{store}");
        assert_eq!(text(&other, "k").await.as_deref(), Some("new"), "{store}");
        assert_eq!(text(&other, "m1").await.as_deref(), Some("one"), "{store}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn computed_values_are_buffered_too() {
    for (store, [cache, other]) in stores("tx_computed").await {
        let runs = AtomicUsize::new(0);
        let compute = || async {
            runs.fetch_add(1, SeqCst);
            "computed".to_owned()
        };
        let failed: Result<(), ()> = context::transaction(async {
            assert_eq!(cache.get_or_set("c", None, compute).await, "computed");
            // Served from the transaction's buffer: the body ran once.
            assert_eq!(cache.get_or_set("c", None, compute).await, "computed");
            Err(())
        })
        .await;
        assert!(failed.is_err());
        assert_eq!(runs.load(SeqCst), 1, "{store}");
        assert_eq!(text(&other, "c").await, None, "{store}: rolled back");
        context::transaction(async { Ok::<_, ()>(cache.get_or_set("c", None, compute).await) })
            .await
            .unwrap();
        assert_eq!(
            text(&other, "c").await.as_deref(),
            Some("computed"),
            "{store}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nested_transactions_join_the_outer_one() {
    for (store, [cache, other]) in stores("tx_nested").await {
        let outer: Result<(), &str> = context::transaction(async {
            let inner: Result<(), &str> = context::transaction(async {
                cache.set("inner", "1", None).await.unwrap();
                Ok(())
            })
            .await;
            inner.unwrap();
            // Joined: not applied when the inner one returned.
            assert_eq!(text(&other, "inner").await, None, "{store}");
            cache.set("outer", "1", None).await.unwrap();
            Err("outer failed")
        })
        .await;
        assert!(outer.is_err());
        assert_eq!(
            (text(&other, "inner").await, text(&other, "outer").await),
            (None, None),
            "{store}"
        );

        let outer: Result<(), ()> = cache
            .transaction(TransactionMode::Fast)
            .run(async {
                let _: Result<(), ()> = context::transaction(async {
                    cache.set("inner", "2", None).await.unwrap();
                    Err(())
                })
                .await;
                Ok(())
            })
            .await;
        assert!(outer.is_ok());
        assert_eq!(
            text(&other, "inner").await.as_deref(),
            Some("2"),
            "{store}: the outer one committed"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn panics_and_cancellation_apply_nothing() {
    for (store, [cache, other]) in stores("tx_abort").await {
        let c = cache.clone();
        let panicked = tokio::spawn(async move {
            let _: Result<(), ()> = context::transaction(async {
                c.set("p", "1", None).await.unwrap();
                panic!("the transaction's work failed");
            })
            .await;
        })
        .await;
        assert!(panicked.unwrap_err().is_panic(), "{store}");
        let cancelled = tokio::time::timeout(
            Duration::from_millis(100),
            context::transaction(async {
                cache.set("c", "1", None).await.unwrap();
                tokio::time::sleep(Duration::from_secs(10)).await;
                Ok::<_, ()>(())
            }),
        )
        .await;
        assert!(cancelled.is_err(), "{store}");
        assert_eq!(
            (text(&other, "p").await, text(&other, "c").await),
            (None, None),
            "{store}"
        );
        // And later writes, outside any transaction, go straight through.
        cache.set("after", "1", None).await.unwrap();
        assert_eq!(text(&other, "after").await.as_deref(), Some("1"), "{store}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn delete_match_is_applied_at_commit_and_seen_inside() {
    for (store, [cache, other]) in stores("tx_match").await {
        cache.set("user:1", "a", None).await.unwrap();
        cache.set("user:2", "b", None).await.unwrap();
        context::transaction(async {
            cache.delete_match("user:*").await?;
            assert_eq!(text(&cache, "user:1").await, None, "{store}");
            cache.set("user:3", "c", None).await?;
            assert_eq!(
                text(&cache, "user:3").await.as_deref(),
                Some("c"),
                "{store}: written after the match"
            );
            assert_eq!(
                text(&other, "user:1").await.as_deref(),
                Some("a"),
                "{store}: not yet"
            );
            Ok::<_, CacheError>(())
        })
        .await
        .unwrap();
        assert_eq!(text(&other, "user:1").await, None, "{store}");
        assert_eq!(text(&other, "user:2").await, None, "{store}");
        assert_eq!(
            text(&other, "user:3").await.as_deref(),
            Some("c"),
            "{store}"
        );
    }
}

/// Transaction A writes `seat` and holds on for 300 ms; B, started 50 ms later on another instance, writes it too.
/// Returns how long B's write took and the value left.
async fn two_writers(mode: TransactionMode, a: &Cache, b: &Cache) -> (Duration, Option<String>) {
    let first = {
        let a = a.clone();
        tokio::spawn(async move {
            a.transaction(mode)
                .run(async {
                    a.set("seat", "A", None).await?;
                    tokio::time::sleep(Duration::from_millis(300)).await;
                    Ok::<_, CacheError>(())
                })
                .await
        })
    };
    tokio::time::sleep(Duration::from_millis(50)).await;
    let write_took = b
        .transaction(mode)
        .run(async {
            let started = Instant::now();
            b.set("seat", "B", None).await?;
            Ok::<_, CacheError>(started.elapsed())
        })
        .await
        .unwrap();
    first.await.unwrap().unwrap();
    (write_took, text(a, "seat").await)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn locked_transactions_writing_one_key_run_one_after_the_other() {
    for (store, [a, b]) in stores("tx_locked").await {
        let (took, seat) = two_writers(TransactionMode::Locked, &a, &b).await;
        assert!(
            took >= Duration::from_millis(200),
            "{store}: B wrote while A held the key ({took:?})"
        );
        assert_eq!(seat.as_deref(), Some("B"), "{store}: B committed last");
        a.delete("seat").await.unwrap();
        // Fast mode: no waiting; A commits last and wins.
        let (took, seat) = two_writers(TransactionMode::Fast, &a, &b).await;
        assert!(took < Duration::from_millis(200), "{store}: {took:?}");
        assert_eq!(seat.as_deref(), Some("A"), "{store}");
    }
}

/// Regression: two concurrent writes of one key inside one `Locked` transaction each took the key's lock, so the
/// second waited for the first — held by its own transaction — for the whole lock wait (10 s).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_locked_transaction_never_waits_for_its_own_lock() {
    for (store, [cache, other]) in stores("tx_own_lock").await {
        let started = Instant::now();
        cache
            .transaction(TransactionMode::Locked)
            .run(async {
                let (a, b) = tokio::join!(cache.set("k", "1", None), cache.set("k", "2", None));
                a.and(b)
            })
            .await
            .unwrap();
        assert!(
            started.elapsed() < Duration::from_secs(3),
            "{store}: {:?}",
            started.elapsed()
        );
        assert!(text(&other, "k").await.is_some(), "{store}");
        // Released at commit: another locked transaction writes it at once.
        let started = Instant::now();
        other
            .transaction(TransactionMode::Locked)
            .run(async { other.set("k", "3", None).await })
            .await
            .unwrap();
        assert!(
            started.elapsed() < Duration::from_secs(3),
            "{store}: {:?}",
            started.elapsed()
        );
    }
}
