//! `Cache::get_or_set_many` (dogpile's `get_or_create_multi`): one body call for the missing keys, request order
//! kept, single flight per key across overlapping concurrent requests — on memory and on a real redis-server.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use cachette::{Cache, CacheError, RedisBackend};

/// Counts how often each key was computed and how many body calls there were.
#[derive(Clone, Default)]
struct Ledger(Arc<Mutex<(usize, HashMap<String, usize>)>>);

impl Ledger {
    async fn compute(&self, keys: Vec<String>) -> Vec<String> {
        {
            let mut ledger = self.0.lock().unwrap();
            ledger.0 += 1;
            for key in &keys {
                *ledger.1.entry(key.clone()).or_default() += 1;
            }
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
        keys.iter().map(|key| format!("value of {key}")).collect()
    }
    fn calls(&self) -> usize {
        self.0.lock().unwrap().0
    }
    fn max_per_key(&self) -> usize {
        self.0
            .lock()
            .unwrap()
            .1
            .values()
            .copied()
            .max()
            .unwrap_or(0)
    }
}

fn expected(keys: &[&str]) -> Vec<String> {
    keys.iter().map(|key| format!("value of {key}")).collect()
}

async fn one_call_in_order(cache: &Cache) {
    cache
        .set("m:2", &"cached two".to_owned(), None)
        .await
        .unwrap();
    let ledger = Ledger::default();
    let keys = ["m:3", "m:1", "m:2", "m:3"];
    let values = cache
        .get_or_set_many(&keys, None, |missing| {
            let ledger = ledger.clone();
            async move {
                assert_eq!(missing, ["m:3", "m:1"], "only the missing keys, each once");
                ledger.compute(missing).await
            }
        })
        .await
        .unwrap();
    assert_eq!(
        values,
        ["value of m:3", "value of m:1", "cached two", "value of m:3"]
    );
    assert_eq!(ledger.calls(), 1);
    // Stored: the next request computes nothing.
    let again: Vec<String> = cache
        .get_or_set_many(&keys, None, |missing| async move {
            panic!("nothing should be missing, got {missing:?}")
        })
        .await
        .unwrap();
    assert_eq!(again, values);
}

async fn overlapping_requests_compute_each_key_once(cache: &Cache) {
    let ledger = Ledger::default();
    let first: Vec<String> = (1..=6).map(|i| format!("o:{i}")).collect();
    let second: Vec<String> = (4..=9).map(|i| format!("o:{i}")).collect();
    let first_keys: Vec<&str> = first.iter().map(String::as_str).collect();
    let second_keys: Vec<&str> = second.iter().map(String::as_str).collect();
    let run = |keys: Vec<&'static str>| {
        let ledger = ledger.clone();
        let cache = cache.clone();
        tokio::spawn(async move {
            cache
                .get_or_set_many(&keys, Some(Duration::from_secs(60)), |missing| {
                    let ledger = ledger.clone();
                    async move { ledger.compute(missing).await }
                })
                .await
        })
    };
    let leak = |keys: Vec<&str>| -> Vec<&'static str> {
        keys.into_iter()
            .map(|key| &*Box::leak(key.to_owned().into_boxed_str()))
            .collect()
    };
    let (a, b) = tokio::join!(
        run(leak(first_keys.clone())),
        run(leak(second_keys.clone()))
    );
    assert_eq!(a.unwrap().unwrap(), expected(&first_keys));
    assert_eq!(b.unwrap().unwrap(), expected(&second_keys));
    assert_eq!(ledger.max_per_key(), 1, "a key computed twice");
    assert!(ledger.calls() <= 2, "{} body calls", ledger.calls());
}

async fn a_body_with_the_wrong_count_is_an_error(cache: &Cache) {
    let error = cache
        .get_or_set_many(&["w:1", "w:2"], None, |_| async {
            vec!["only one".to_owned()]
        })
        .await
        .unwrap_err();
    assert!(
        matches!(
            error,
            CacheError::BodyMismatch {
                expected: 2,
                got: 1
            }
        ),
        "{error}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn on_memory() {
    let cache = Cache::memory();
    one_call_in_order(&cache).await;
    overlapping_requests_compute_each_key_once(&cache).await;
    a_body_with_the_wrong_count_is_an_error(&cache).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn on_redis_and_fail_open_when_it_is_gone() {
    let Some(server) = test_support::RedisServer::start() else {
        return;
    };
    let backend = RedisBackend::builder()
        .url(server.url())
        .command_timeout(Duration::from_millis(300))
        .build()
        .await
        .unwrap();
    let cache = Cache::builder().backend(backend).build();
    one_call_in_order(&cache).await;
    overlapping_requests_compute_each_key_once(&cache).await;
    a_body_with_the_wrong_count_is_an_error(&cache).await;
    assert_eq!(
        server.command(&["EXISTS", "o:5"]).unwrap(),
        "1",
        "stored in Redis"
    );

    server.kill();
    let values = cache
        .get_or_set_many(&["gone:1", "gone:2"], None, |missing| async move {
            missing
                .iter()
                .map(|key| format!("value of {key}"))
                .collect::<Vec<_>>()
        })
        .await
        .unwrap();
    assert_eq!(values, expected(&["gone:1", "gone:2"]));
}
