//! `cache_calls_total{result}` tells hits, misses, stale values and backend errors apart, per function, on a real
//! redis-server (killed for the error case), read through a Prometheus recorder local to the test.

use std::sync::LazyLock;
use std::time::Duration;

use cachette::{cached, Cache, RedisBackend};
use metrics_exporter_prometheus::PrometheusBuilder;
use tokio::sync::OnceCell;

static REDIS: OnceCell<Cache> = OnceCell::const_new();
static SERVER: LazyLock<Option<test_support::RedisServer>> =
    LazyLock::new(test_support::RedisServer::start);

#[cached(key = "price:{id}", cache = REDIS.get().expect("cache set up"))]
async fn price(id: u64) -> u64 {
    id * 100
}

#[cached(ttl = "1h", soft_ttl = "50ms", key = "stock:{id}", cache = REDIS.get().expect("cache set up"))]
async fn stock(id: u64, fail: bool) -> Result<u64, String> {
    if fail {
        Err("warehouse down".into())
    } else {
        Ok(id)
    }
}

#[test]
fn calls_are_counted_as_hit_miss_stale_and_error() {
    let Some(server) = SERVER.as_ref() else {
        return;
    };
    let recorder = PrometheusBuilder::new().build_recorder();
    let handle = recorder.handle();
    metrics::with_local_recorder(&recorder, || {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        runtime.block_on(async {
            let backend = RedisBackend::builder()
                .url(server.url())
                .command_timeout(Duration::from_millis(200))
                .build()
                .await
                .expect("redis backend");
            let _ = REDIS.set(Cache::builder().backend(backend).build());

            assert_eq!(price(1).await, 100); // miss
            assert_eq!(price(1).await, 100); // hit
            assert_eq!(stock(3, false).await, Ok(3)); // miss
            tokio::time::sleep(Duration::from_millis(120)).await;
            assert_eq!(stock(3, true).await, Ok(3)); // soft-expired, body fails: stale
            server.kill();
            assert_eq!(price(2).await, 200); // backend down: fail-open, counted as an error
        });
    });
    let text = handle.render();
    assert_eq!(
        test_support::calls_total(&text, "metrics_results::price", "cached", "miss"),
        1,
        "{text}"
    );
    assert_eq!(
        test_support::calls_total(&text, "metrics_results::price", "cached", "hit"),
        1,
        "{text}"
    );
    assert_eq!(
        test_support::calls_total(&text, "metrics_results::price", "cached", "error"),
        1,
        "{text}"
    );
    assert_eq!(
        test_support::calls_total(&text, "metrics_results::stock", "soft", "miss"),
        1,
        "{text}"
    );
    assert_eq!(
        test_support::calls_total(&text, "metrics_results::stock", "soft", "stale"),
        1,
        "{text}"
    );
    assert!(
        text.lines().any(
            |line| line.starts_with("cache_backend_errors_total{backend=\"redis\",op=\"get\"}")
        ),
        "{text}"
    );
}
