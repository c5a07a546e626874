//! Kill and restart a real `redis-server` under load: cached calls must keep returning the right values, must not
//! wait out the command timeout while Redis is down (circuit breaker + fail-fast), and must be served from Redis
//! again soon after it comes back. Run with `--nocapture` to see the figures.

use std::sync::atomic::{AtomicBool, AtomicU64, AtomicU8, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use cachette::{circuit_breaker, RedisBackend};
use cachette::{Backend, Cache};
use test_support::RedisServer;

const TASKS: usize = 32;
const KEYS: u64 = 64;
const COMMAND_TIMEOUT: Duration = Duration::from_millis(500);

const UP: u8 = 0;
const DOWN: u8 = 1;
const RESTARTED: u8 = 2;

fn expected(key: u64) -> u64 {
    key * 1_000 + 7
}

#[derive(Default)]
struct Figures {
    calls: [AtomicU64; 3],
    wrong: AtomicU64,
    down_latencies: Mutex<Vec<Duration>>,
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    if sorted.is_empty() {
        return Duration::ZERO;
    }
    let index = ((sorted.len() - 1) as f64 * p).round() as usize;
    sorted[index.min(sorted.len() - 1)]
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn kill_and_restart_under_load() {
    let _ = tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::from_default_env())
        .with_test_writer()
        .try_init();
    let Some(server) = RedisServer::start() else {
        return;
    };
    let server = Arc::new(server);

    let redis = RedisBackend::builder()
        .url(server.url())
        .key_prefix("failover:")
        .command_timeout(COMMAND_TIMEOUT)
        .build()
        .await
        .expect("backend builds");
    // The same wrapping `cachette::setup` applies by default.
    let breaker = Arc::new(circuit_breaker(redis));
    let backend: Arc<dyn Backend> = breaker.clone();
    let cache = Cache::builder().backend_arc(backend).build();

    let phase = Arc::new(AtomicU8::new(UP));
    let stop = Arc::new(AtomicBool::new(false));
    let figures = Arc::new(Figures::default());
    let started = Instant::now();

    let workers: Vec<_> = (0..TASKS)
        .map(|task| {
            let (cache, phase, stop, figures) =
                (cache.clone(), phase.clone(), stop.clone(), figures.clone());
            tokio::spawn(async move {
                let mut n = task as u64;
                // Bounded: the main task stops the workers; the cap only guards against a runaway loop.
                for _ in 0..100_000 {
                    if stop.load(Ordering::Relaxed) {
                        break;
                    }
                    n = n
                        .wrapping_mul(6364136223846793005)
                        .wrapping_add(1442695040888963407);
                    let key = (n >> 33) % KEYS;
                    let phase_at_start = phase.load(Ordering::Relaxed);
                    let t0 = Instant::now();
                    let value = cache
                        .get_or_set(
                            &format!("item:{key}"),
                            Some(Duration::from_secs(60)),
                            || async move { expected(key) },
                        )
                        .await;
                    let took = t0.elapsed();
                    figures.calls[usize::from(phase_at_start)].fetch_add(1, Ordering::Relaxed);
                    if value != expected(key) {
                        figures.wrong.fetch_add(1, Ordering::Relaxed);
                    }
                    if phase_at_start == DOWN && phase.load(Ordering::Relaxed) == DOWN {
                        figures
                            .down_latencies
                            .lock()
                            .unwrap_or_else(|p| p.into_inner())
                            .push(took);
                    }
                    tokio::time::sleep(Duration::from_millis(5)).await;
                }
            })
        })
        .collect();

    tokio::time::sleep(Duration::from_secs(2)).await;
    let hits_before_kill = cache.metrics().hits;
    assert!(hits_before_kill > 0, "Redis serves hits before the kill");

    let killer = server.clone();
    tokio::task::spawn_blocking(move || killer.kill())
        .await
        .unwrap();
    phase.store(DOWN, Ordering::Relaxed);
    let killed_at = Instant::now();
    tokio::time::sleep(Duration::from_secs(2)).await;

    let restarter = server.clone();
    tokio::task::spawn_blocking(move || restarter.restart())
        .await
        .unwrap();
    let hits_at_restart = cache.metrics().hits;
    phase.store(RESTARTED, Ordering::Relaxed);
    let restarted_at = Instant::now();
    let down_for = restarted_at - killed_at;

    // Hits resume: within 10 s some call is served from Redis again.
    let mut first_hit_after = None;
    while restarted_at.elapsed() < Duration::from_secs(10) {
        if cache.metrics().hits > hits_at_restart {
            first_hit_after = Some(restarted_at.elapsed());
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    // Keep the load on a little longer so the figures show a steady state after the restart.
    let settle = Duration::from_secs(2).saturating_sub(restarted_at.elapsed());
    tokio::time::sleep(settle).await;
    let hits_at_end = cache.metrics().hits;
    stop.store(true, Ordering::Relaxed);
    for worker in workers {
        worker.await.expect("no worker panicked");
    }

    let metrics = cache.metrics();
    let calls: Vec<u64> = figures
        .calls
        .iter()
        .map(|c| c.load(Ordering::Relaxed))
        .collect();
    let wrong = figures.wrong.load(Ordering::Relaxed);
    let mut down = figures
        .down_latencies
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .clone();
    down.sort();
    let (p50, p90, max) = (
        percentile(&down, 0.5),
        percentile(&down, 0.9),
        percentile(&down, 1.0),
    );

    println!("failover: {TASKS} tasks over {:?}", started.elapsed());
    println!(
        "failover: calls up={} down={} after-restart={} total={}; wrong values={wrong}",
        calls[0],
        calls[1],
        calls[2],
        calls.iter().sum::<u64>()
    );
    let slow = down.iter().filter(|d| **d >= COMMAND_TIMEOUT / 2).count();
    println!(
        "failover: redis down for {down_for:?}; latency while down p50={p50:?} p90={p90:?} max={max:?} \
         (command timeout {COMMAND_TIMEOUT:?}, {} samples, {slow} took >= timeout/2)",
        down.len()
    );
    println!(
        "failover: breaker opened {} time(s), rejected {} call(s); backend errors counted {}",
        breaker.layer().opens(),
        breaker.layer().rejected(),
        metrics.backend_errors
    );
    println!(
        "failover: time to first hit after restart {first_hit_after:?}; hits before kill {hits_before_kill}, \
         at restart {hits_at_restart}, at end {hits_at_end}"
    );

    assert_eq!(wrong, 0, "every call returned the right value");
    assert!(
        calls[1] > 0 && !down.is_empty(),
        "calls were made while Redis was down"
    );
    assert!(
        p50 < COMMAND_TIMEOUT / 2,
        "calls while down must not wait for the command timeout: p50 {p50:?}"
    );
    assert!(
        metrics.backend_errors > 0,
        "the outage was noticed and counted"
    );
    assert!(
        first_hit_after.is_some(),
        "no value was served from Redis within 10 s of the restart"
    );
    assert!(hits_at_end > hits_at_restart);
}
