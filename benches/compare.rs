//! Our cached functions against their peers, in one process run, on one value type and one key shape.
//!
//! ```text
//! cargo bench --bench compare             # full run (a few minutes)
//! cargo bench --bench compare -- --quick  # smoke run (< 60 s including redis-server start-up)
//! cargo bench --bench compare -- --quick --eviction  # only the hit-ratio table and bytes per entry
//! cargo bench --bench compare -- --quick --remote memcached  # only the memcached (or redis) rows
//! valgrind --tool=callgrind target/release/deps/compare-* --profile-memcached 6000 ours  # (or raw) instructions
//! strace -f -c target/release/deps/compare-* --profile-memcached 100000 ours 64  # syscalls with 64 tasks
//! valgrind --tool=callgrind target/release/deps/compare-* --profile-redis 6000 ours  # (or raw): vs fred
//! ```
//!
//! Prints a human table, then one `RATIO <name> <value>` line per comparison (ours / peer for times, peer / ours
//! for throughputs: lower is better for us either way), `SCALING hit_memory_2_threads <x>` (and
//! `cache_get_memory_2_threads` for `Cache::get`),
//! `STAMPEDE body_runs <n>`, and `HIT_RATIO <trace> ours <%> lru <%> best_peer <%> gap <points>` per eviction
//! scenario (see `eviction.rs`). The Redis rows run against a redis-server the bench starts itself on a free loopback
//! port; without the binary they print a loud SKIP line.
//!
//! A hand-rolled timing loop rather than criterion: every row is "warm up, then the median of several timed runs
//! of a fixed number of calls", which is what the ratios need, and the whole comparison stays one binary and one
//! table.

#[path = "eviction.rs"]
mod eviction;

use std::future::Future;
use std::hint::black_box;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Barrier, LazyLock};
use std::time::{Duration, Instant};

use cachette::fred;
use cachette::RedisBackend;
use cachette::{Cache, KeyBuilder, MemoryBackend};
use fred::interfaces::{ClientLike, KeysInterface};
use fred::types::Expiration;
use serde::{Deserialize, Serialize};

/// The value every contender caches: a small struct with a few strings, like a typical row or API object.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
struct Profile {
    id: u64,
    name: String,
    email: String,
    city: String,
}

fn make_profile(id: u64) -> Profile {
    Profile {
        id,
        name: format!("user-{id}"),
        email: format!("user-{id}@example.com"),
        city: "Amsterdam".to_owned(),
    }
}

/// Distinct keys the hit loops cycle through (all warm).
const KEYS: u64 = 1024;
const TTL: Duration = Duration::from_secs(3600);

/// How long and how often to measure.
#[derive(Clone, Copy)]
struct Plan {
    quick: bool,
    /// Calls per timed run of an in-memory hit loop.
    hit_iters: u64,
    /// Timed runs per row (the median is reported).
    runs: usize,
    /// Calls per timed run of a Redis row.
    redis_ops: u64,
    redis_runs: usize,
    /// Sequential cold calls per timed run of the miss rows.
    miss_ops: u64,
}

impl Plan {
    fn from_args() -> Plan {
        let quick = std::env::args().any(|a| a == "--quick");
        if quick {
            Plan {
                quick,
                hit_iters: 100_000,
                runs: 3,
                redis_ops: 10_000,
                // Three, not two: one-task Redis latency on a shared 2-core machine is bimodal, and the median of
                // two samples is just the slower one.
                redis_runs: 3,
                miss_ops: 1_000,
            }
        } else {
            Plan {
                quick,
                hit_iters: 1_000_000,
                runs: 7,
                redis_ops: 100_000,
                redis_runs: 5,
                miss_ops: 5_000,
            }
        }
    }
}

// ---------------------------------------------------------------------------------------------------------------
// The contenders.
// ---------------------------------------------------------------------------------------------------------------

static MEMORY: LazyLock<Cache> = LazyLock::new(|| {
    Cache::builder()
        .backend(MemoryBackend::builder().max_entries(100_000).build())
        .build()
});

/// Set once the Redis server is up; the cached fn on Redis reads it like `cache = REDIS` would.
static REDIS: std::sync::OnceLock<Cache> = std::sync::OnceLock::new();

static BODY_RUNS: AtomicU64 = AtomicU64::new(0);

/// The key exactly as `#[cached]` renders it for `fn get_profile(id: u64)` in this module (`module_path!()`,
/// `:get_profile`, then `:id=` and the escaped argument), so the peers that take a key get the same one.
fn profile_key(name: &str, id: u64) -> String {
    let mut kb = KeyBuilder::new();
    kb.literal(module_path!());
    kb.literal(name);
    kb.literal(":id=");
    kb.value(&id);
    kb.finish()
}

/// Ours on the in-memory backend.
#[cachette::cached(ttl = "1h", cache = MEMORY)]
async fn get_profile(id: u64) -> Profile {
    BODY_RUNS.fetch_add(1, Ordering::Relaxed);
    make_profile(id)
}

/// `Cache::get` of the value `get_profile` stored for `id` (warm), with the key rendered the same way.
async fn cache_get_profile(id: u64) -> Profile {
    let key = profile_key(":get_profile", id);
    MEMORY
        .get::<Profile>(&key)
        .await
        .ok()
        .flatten()
        .expect("warm key")
}

/// Ours on Redis: the same function with another cache.
#[cachette::cached(ttl = "1h", cache = REDIS.get().expect("redis cache set up"))]
async fn get_profile_redis(id: u64) -> Profile {
    make_profile(id)
}

/// Redis with client-side caching (tracking), set once the Redis server is up.
static CLIENT_SIDE: std::sync::OnceLock<Cache> = std::sync::OnceLock::new();

/// Ours on client-side Redis: the same function with another cache.
#[cachette::cached(ttl = "1h", cache = CLIENT_SIDE.get().expect("client-side cache set up"))]
async fn get_profile_client_side(id: u64) -> Profile {
    make_profile(id)
}

/// The disk backend, in a temporary directory made when the bench starts.
static DISK: std::sync::OnceLock<Cache> = std::sync::OnceLock::new();

/// Ours on the disk backend (SQLite): the same function with another cache.
#[cachette::cached(ttl = "1h", cache = DISK.get().expect("disk cache set up"))]
async fn get_profile_disk(id: u64) -> Profile {
    make_profile(id)
}

/// Set once the memcached server is up.
static MEMCACHED: std::sync::OnceLock<Cache> = std::sync::OnceLock::new();

/// Ours on memcached: the same function with another cache.
#[cachette::cached(ttl = "1h", cache = MEMCACHED.get().expect("memcached cache set up"))]
async fn get_profile_memcached(id: u64) -> Profile {
    make_profile(id)
}

/// The raw peer for memcached: the same connection set-up as our backend (a pool of `MEMCACHED_POOL` connections
/// to one server, a connection taken per call) and one meta-protocol `mg <key> v` + rmp-serde decode per call,
/// without anything a cache adds (routing, key checks, envelope, timeouts).
struct RawMemcached {
    idle: std::sync::Mutex<Vec<tokio::io::BufStream<tokio::net::TcpStream>>>,
    slots: tokio::sync::Semaphore,
    address: String,
}

const MEMCACHED_POOL: usize = 8;

impl RawMemcached {
    fn new(address: String) -> Self {
        Self {
            idle: std::sync::Mutex::new(Vec::new()),
            slots: tokio::sync::Semaphore::new(MEMCACHED_POOL),
            address,
        }
    }

    async fn call(&self, request: &[u8]) -> Option<Vec<u8>> {
        use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt};
        let _slot = self.slots.acquire().await.unwrap();
        let idle = self.idle.lock().unwrap().pop();
        let mut conn = match idle {
            Some(conn) => conn,
            None => {
                let stream = tokio::net::TcpStream::connect(&self.address).await.unwrap();
                stream.set_nodelay(true).unwrap();
                tokio::io::BufStream::new(stream)
            }
        };
        conn.write_all(request).await.unwrap();
        conn.flush().await.unwrap();
        let mut line = String::new();
        conn.read_line(&mut line).await.unwrap();
        let value = match line.strip_prefix("VA ") {
            Some(rest) => {
                let size: usize = rest.split_whitespace().next().unwrap().parse().unwrap();
                let mut data = vec![0; size + 2];
                conn.read_exact(&mut data).await.unwrap();
                data.truncate(size);
                Some(data)
            }
            None => None,
        };
        self.idle.lock().unwrap().push(conn);
        value
    }
}

/// Raw meta protocol: `mg` + decode; on a miss the body, encode and `ms` with the same TTL.
async fn peer_memcached(raw: &RawMemcached, id: u64) -> Profile {
    let key = profile_key(":get_profile_mc_raw", id);
    if let Some(data) = raw.call(format!("mg {key} v\r\n").as_bytes()).await {
        if let Ok(v) = rmp_serde::from_slice(&data) {
            return v;
        }
    }
    let v = make_profile(id);
    let bytes = rmp_serde::to_vec_named(&v).unwrap();
    let mut request = format!("ms {key} {} T{}\r\n", bytes.len(), TTL.as_secs()).into_bytes();
    request.extend_from_slice(&bytes);
    request.extend_from_slice(b"\r\n");
    raw.call(&request).await;
    v
}

/// A slow body for the stampede: long enough that every caller arrives while it runs.
async fn slow_body(id: u64) -> Profile {
    BODY_RUNS.fetch_add(1, Ordering::Relaxed);
    tokio::time::sleep(Duration::from_millis(200)).await;
    make_profile(id)
}

#[cachette::cached(ttl = "1h", cache = MEMORY)]
async fn slow_profile(id: u64) -> Profile {
    slow_body(id).await
}

#[cachette::cached(ttl = "1h", cache = REDIS.get().expect("redis cache set up"))]
async fn slow_profile_redis(id: u64) -> Profile {
    slow_body(id).await
}

/// The `cached` crate's own attribute on an async fn, with a size bound and a TTL like ours.
#[cached::proc_macro::cached(max_size = 100_000, ttl_secs = 3600)]
async fn peer_cached(id: u64) -> Profile {
    make_profile(id)
}

static MOKA: LazyLock<moka::future::Cache<String, Profile>> = LazyLock::new(|| {
    moka::future::Cache::builder()
        .max_capacity(100_000)
        .time_to_live(TTL)
        .build()
});

async fn peer_moka(id: u64) -> Profile {
    MOKA.get_with(
        profile_key(":get_profile", id),
        async move { make_profile(id) },
    )
    .await
}

static QUICK: LazyLock<quick_cache::sync::Cache<String, Profile>> =
    LazyLock::new(|| quick_cache::sync::Cache::new(100_000));

async fn peer_quick_cache(id: u64) -> Profile {
    let key = profile_key(":get_profile", id);
    if let Some(v) = QUICK.get(&key) {
        return v;
    }
    let v = make_profile(id);
    QUICK.insert(key, v.clone());
    v
}

/// The machine's own 2-thread ceiling for work like a hit: render the key and decode the value from a thread-local
/// buffer, touching nothing another thread touches. Scaling is judged against this, not against 2.0: on a
/// virtualised 2-core machine even share-nothing code may scale far below 2x.
async fn share_nothing(id: u64) -> Profile {
    thread_local! {
        static STORED: Vec<u8> = rmp_serde::to_vec_named(&make_profile(0)).unwrap();
    }
    black_box(profile_key(":get_profile", id));
    STORED.with(|bytes| rmp_serde::from_slice(bytes).unwrap())
}

/// Raw fred: GET + rmp-serde decode; on a miss the body, encode and SET with the same TTL.
async fn peer_fred(pool: &fred::clients::Pool, id: u64) -> Profile {
    let key = profile_key(":get_profile_fred", id);
    let raw: Option<bytes::Bytes> = pool.get(&key).await.unwrap();
    if let Some(raw) = raw {
        if let Ok(v) = rmp_serde::from_slice(&raw) {
            return v;
        }
    }
    let v = make_profile(id);
    let bytes = rmp_serde::to_vec_named(&v).unwrap();
    let _: () = pool
        .set(
            &key,
            bytes.as_slice(),
            Some(Expiration::EX(TTL.as_secs() as i64)),
            None,
            false,
        )
        .await
        .unwrap();
    v
}

/// Raw fred GET + decode with the per-command options our Redis backend sends (timeout, fail fast, one attempt):
/// splits the gap between ours and raw fred into "what the backend's options cost" and "what cache-core costs".
async fn peer_fred_with_options(pool: &fred::clients::Pool, id: u64) -> Profile {
    let options = fred::types::config::Options {
        timeout: Some(Duration::from_millis(500)),
        fail_fast: true,
        max_attempts: Some(1),
        ..Default::default()
    };
    let key = profile_key(":get_profile_fred", id);
    let raw: Option<bytes::Bytes> = pool
        .next_connected()
        .with_options(&options)
        .get(&key)
        .await
        .unwrap();
    rmp_serde::from_slice(&raw.unwrap()).unwrap()
}

// ---------------------------------------------------------------------------------------------------------------
// Timing.
// ---------------------------------------------------------------------------------------------------------------

fn median(mut xs: Vec<f64>) -> f64 {
    xs.sort_by(|a, b| a.total_cmp(b));
    xs[xs.len() / 2]
}

/// `n` sequential hits over the warm keys on `rt`: ours, or the raw peer's (`--profile-memcached`,
/// `--profile-redis`), for callgrind.
fn sequential_hits<Ours, Raw>(
    rt: &tokio::runtime::Runtime,
    n: u64,
    raw_peer: bool,
    ours: impl Fn(u64) -> Ours,
    raw: impl Fn(u64) -> Raw,
) where
    Ours: Future<Output = Profile>,
    Raw: Future<Output = Profile>,
{
    rt.block_on(async {
        for i in 0..n {
            let id = black_box(i % KEYS);
            if raw_peer {
                black_box(raw(id).await);
            } else {
                black_box(ours(id).await);
            }
        }
    });
}

fn current_thread() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
}

/// One sampler per contender; each call takes one timed sample.
type Sampler<'a> = Box<dyn FnMut(u64) -> f64 + 'a>;

/// Medians of interleaved samples: one warm-up sample of `iters / 4` each, then `runs` rounds of one sample per
/// contender in turn. Interleaving matters on a shared 2-core machine: background load drifts over seconds, and
/// measuring A fully before B would charge the drift to one of them.
fn interleaved(runs: usize, iters: u64, samplers: &mut [Sampler<'_>]) -> Vec<f64> {
    for sample in samplers.iter_mut() {
        sample((iters / 4).max(1));
    }
    let mut samples = vec![Vec::with_capacity(runs); samplers.len()];
    for _ in 0..runs {
        for (sample, out) in samplers.iter_mut().zip(&mut samples) {
            out.push(sample(iters));
        }
    }
    samples.into_iter().map(median).collect()
}

/// A sampler of ns per call of `f` in one task on a single-threaded runtime.
fn hit_ns<'a, F, Fut>(f: F) -> Sampler<'a>
where
    F: Fn(u64) -> Fut + 'a,
    Fut: Future<Output = Profile>,
{
    let rt = current_thread();
    Box::new(move |iters| {
        rt.block_on(async {
            let start = Instant::now();
            for i in 0..iters {
                black_box(f(black_box(i % KEYS)).await);
            }
            start.elapsed().as_nanos() as f64 / iters as f64
        })
    })
}

/// A sampler of calls per second of `f` on `threads` OS threads, each running its own single-threaded runtime and
/// cycling the keys from a different offset (so the threads do not walk the same entries in lock step).
fn hit_throughput<'a, F, Fut>(threads: usize, f: F) -> Sampler<'a>
where
    F: Fn(u64) -> Fut + Sync + 'a,
    Fut: Future<Output = Profile>,
{
    Box::new(move |iters| {
        let barrier = Barrier::new(threads + 1);
        std::thread::scope(|s| {
            for t in 0..threads as u64 {
                let (f, barrier) = (&f, &barrier);
                s.spawn(move || {
                    let rt = current_thread();
                    barrier.wait();
                    rt.block_on(async {
                        for i in 0..iters {
                            black_box(f(black_box((i + t * KEYS / 2) % KEYS)).await);
                        }
                    });
                    barrier.wait();
                });
            }
            barrier.wait();
            let start = Instant::now();
            barrier.wait();
            (threads as u64 * iters) as f64 / start.elapsed().as_secs_f64()
        })
    })
}

/// A sampler of calls per second with `concurrency` tasks on `rt` (2 workers) sharing the calls.
fn concurrent_throughput<'a, F, Fut>(
    rt: &'a tokio::runtime::Runtime,
    concurrency: u64,
    f: F,
) -> Sampler<'a>
where
    F: Fn(u64) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = Profile> + Send + 'static,
{
    let f = Arc::new(f);
    Box::new(move |ops| {
        rt.block_on(async {
            let per_task = ops.div_ceil(concurrency);
            let start = Instant::now();
            let tasks: Vec<_> = (0..concurrency)
                .map(|t| {
                    let f = f.clone();
                    tokio::spawn(async move {
                        for i in 0..per_task {
                            black_box(f((t * 31 + i) % KEYS).await);
                        }
                    })
                })
                .collect();
            for task in tasks {
                task.await.unwrap();
            }
            (per_task * concurrency) as f64 / start.elapsed().as_secs_f64()
        })
    })
}

/// A sampler of µs per sequential cold call (every call uses an id never used before), run in one spawned task so
/// it polls on a worker like the throughput rows do.
fn miss_us<'a, F, Fut>(
    rt: &'a tokio::runtime::Runtime,
    next_id: &'a Arc<AtomicU64>,
    f: F,
) -> Sampler<'a>
where
    F: Fn(u64) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = Profile> + Send + 'static,
{
    let f = Arc::new(f);
    Box::new(move |ops| {
        let (f, next_id) = (f.clone(), next_id.clone());
        rt.block_on(async move {
            tokio::spawn(async move {
                let start = Instant::now();
                for _ in 0..ops {
                    black_box(f(next_id.fetch_add(1, Ordering::Relaxed)).await);
                }
                start.elapsed().as_secs_f64() * 1e6 / ops as f64
            })
            .await
            .unwrap()
        })
    })
}

// ---------------------------------------------------------------------------------------------------------------
// Report.
// ---------------------------------------------------------------------------------------------------------------

#[derive(Default)]
struct Report {
    rows: Vec<(String, String, String)>,
    lines: Vec<String>,
}

impl Report {
    fn row(&mut self, what: impl Into<String>, contender: impl Into<String>, value: String) {
        let (what, contender) = (what.into(), contender.into());
        eprintln!("  {what:<34} {contender:<26} {value}");
        self.rows.push((what, contender, value));
    }

    fn ratio(&mut self, name: &str, value: f64) {
        self.lines.push(format!("RATIO {name} {value:.2}"));
    }

    fn print(&self) {
        println!();
        println!(
            "| {:<34} | {:<26} | {:>22} |",
            "benchmark", "contender", "result"
        );
        println!("|{:-<36}|{:-<28}|{:->24}|", "", "", "");
        for (what, contender, value) in &self.rows {
            println!("| {what:<34} | {contender:<26} | {value:>22} |");
        }
        println!();
        for line in &self.lines {
            println!("{line}");
        }
    }
}

fn ns(v: f64) -> String {
    format!("{v:.0} ns/call")
}

fn ops(v: f64) -> String {
    if v >= 1e6 {
        format!("{:.2} M calls/s", v / 1e6)
    } else {
        format!("{:.0} k calls/s", v / 1e3)
    }
}

fn main() {
    let plan = Plan::from_args();
    // `--profile-hit N [quick]`: only our in-memory hit loop (or quick_cache's), N calls, for callgrind/perf.
    let args: Vec<String> = std::env::args().collect();
    if let Some(i) = args.iter().position(|a| a == "--profile-hit") {
        let n = args
            .get(i + 1)
            .and_then(|n| n.parse().ok())
            .unwrap_or(1_000_000u64);
        // `--profile-hit N quick`: quick_cache's get + clone on the same keys instead, for the same count.
        let quick = args.get(i + 2).is_some_and(|w| w == "quick");
        current_thread().block_on(async {
            for i in 0..n {
                if quick {
                    black_box(peer_quick_cache(black_box(i % KEYS)).await);
                } else {
                    black_box(get_profile(black_box(i % KEYS)).await);
                }
            }
        });
        return;
    }
    // `--profile-memcached N ours|raw`: N sequential memcached hits, ours or the raw `mg` peer, for callgrind
    // (instructions per hit; the wall time of one task is the network's).
    if let Some(i) = args.iter().position(|a| a == "--profile-memcached") {
        let n: u64 = args
            .get(i + 1)
            .and_then(|n| n.parse().ok())
            .unwrap_or(10_000);
        let raw_peer = args.get(i + 2).is_some_and(|w| w == "raw");
        let Some(server) = test_support::MemcachedServer::start() else {
            return;
        };
        set_memcached_cache(&server);
        let raw = Arc::new(RawMemcached::new(server.address()));
        let tasks: u64 = args.get(i + 3).and_then(|n| n.parse().ok()).unwrap_or(1);
        if tasks > 1 {
            // `… N ours|raw TASKS`: N hits spread over TASKS tasks on the two-worker runtime of the throughput
            // rows, for `strace -c` / `perf stat` (syscalls and CPU per hit under concurrency).
            let rt = tokio::runtime::Builder::new_multi_thread()
                .worker_threads(2)
                .enable_all()
                .build()
                .unwrap();
            let mut sample = if raw_peer {
                concurrent_throughput(&rt, tasks, move |id| {
                    let r = raw.clone();
                    async move { peer_memcached(&r, id).await }
                })
            } else {
                concurrent_throughput(&rt, tasks, get_profile_memcached)
            };
            eprintln!("{:.0} calls/s", sample(n));
            return;
        }
        sequential_hits(
            &current_thread(),
            n,
            raw_peer,
            get_profile_memcached,
            |id| peer_memcached(&raw, id),
        );
        return;
    }
    // `--profile-redis N ours|raw`: N sequential Redis hits, ours or raw fred GET + decode, for callgrind
    // (instructions per hit beside fred's own).
    if let Some(i) = args.iter().position(|a| a == "--profile-redis") {
        let n: u64 = args
            .get(i + 1)
            .and_then(|n| n.parse().ok())
            .unwrap_or(10_000);
        let raw_peer = args.get(i + 2).is_some_and(|w| w == "raw");
        let Some(server) = test_support::RedisServer::start() else {
            return;
        };
        let rt = current_thread();
        let pool = rt.block_on(async {
            let backend = RedisBackend::builder()
                .url(server.url())
                .build()
                .await
                .unwrap();
            let pool = backend.pool().clone();
            let _ = REDIS.set(Cache::builder().backend(backend).build());
            pool.wait_for_connect().await.unwrap();
            for id in 0..KEYS {
                let v = get_profile_redis(id).await;
                assert_eq!(v, peer_fred(&pool, id).await);
            }
            pool
        });
        sequential_hits(&rt, n, raw_peer, get_profile_redis, |id| {
            peer_fred(&pool, id)
        });
        return;
    }
    // `--rss <contender>`: the child process of the bytes-per-entry row.
    if let Some(i) = args.iter().position(|a| a == "--rss") {
        eviction::rss_child(args.get(i + 1).map_or("ours", String::as_str));
        return;
    }
    // `--remote redis|memcached`: only that store's rows, for repeated runs of one comparison.
    if let Some(i) = args.iter().position(|a| a == "--remote") {
        let mut report = Report::default();
        match args.get(i + 1).map(String::as_str) {
            Some("redis") => redis_rows(plan, &mut report),
            Some("memcached") => memcached_rows(plan, &mut report),
            other => panic!("--remote redis|memcached, not {other:?}"),
        }
        report.print();
        return;
    }
    // `--eviction`: only the hit-ratio table and bytes per entry.
    if args.iter().any(|a| a == "--eviction") {
        let mut report = Report::default();
        eviction::hit_ratio_rows(plan.quick, &mut report);
        eviction::bytes_per_entry_rows(&mut report);
        report.print();
        return;
    }
    let started = Instant::now();
    let mut report = Report::default();
    eprintln!(
        "compare: {} run, {} logical CPUs",
        if plan.quick { "quick" } else { "full" },
        std::thread::available_parallelism().map_or(0, |n| n.get())
    );

    // ----- in-memory hit path -----
    {
        // Warm every contender with every key, and check they agree on the value.
        let rt = current_thread();
        rt.block_on(async {
            for id in 0..KEYS {
                let v = get_profile(id).await;
                assert_eq!(v, peer_cached(id).await);
                assert_eq!(v, peer_moka(id).await);
                assert_eq!(v, peer_quick_cache(id).await);
            }
        });
        let [ours, cached, moka, quick] = interleaved(
            plan.runs,
            plan.hit_iters,
            &mut [
                hit_ns(get_profile),
                hit_ns(peer_cached),
                hit_ns(peer_moka),
                hit_ns(peer_quick_cache),
            ],
        )[..] else {
            unreachable!()
        };
        report.row("hit, memory, 1 task", "ours (cached fn)", ns(ours));
        report.row("hit, memory, 1 task", "cached #[cached]", ns(cached));
        report.row("hit, memory, 1 task", "moka get_with", ns(moka));
        report.row("hit, memory, 1 task", "quick_cache get", ns(quick));
        report.ratio("hit_memory_vs_cached", ours / cached);
        report.ratio("hit_memory_vs_moka", ours / moka);
        report.ratio("hit_memory_vs_quick_cache", ours / quick);

        let scaling = |f: &mut [Sampler<'_>]| {
            let t = interleaved(plan.runs, plan.hit_iters, f);
            (t[0], t[1])
        };
        let (one, two) = scaling(&mut [
            hit_throughput(1, get_profile),
            hit_throughput(2, get_profile),
        ]);
        report.row("hit, memory, 1 thread", "ours (cached fn)", ops(one));
        report.row("hit, memory, 2 threads", "ours (cached fn)", ops(two));
        report.row(
            "hit, memory, 2-thread scaling",
            "ours (cached fn)",
            format!("{:.2}x", two / one),
        );
        report
            .lines
            .push(format!("SCALING hit_memory_2_threads {:.2}", two / one));
        // `Cache::get::<T>` on the same cache and keys (the keys `get_profile` stored), without the cached fn.
        let (one, two) = scaling(&mut [
            hit_throughput(1, cache_get_profile),
            hit_throughput(2, cache_get_profile),
        ]);
        report.row("hit, memory, 1 thread", "ours (Cache::get)", ops(one));
        report.row("hit, memory, 2 threads", "ours (Cache::get)", ops(two));
        report.row(
            "hit, memory, 2-thread scaling",
            "ours (Cache::get)",
            format!("{:.2}x", two / one),
        );
        report.lines.push(format!(
            "SCALING cache_get_memory_2_threads {:.2}",
            two / one
        ));
        let (one, two) = scaling(&mut [
            hit_throughput(1, share_nothing),
            hit_throughput(2, share_nothing),
        ]);
        report.row(
            "hit, memory, 2-thread scaling",
            "share-nothing reference",
            format!("{:.2}x", two / one),
        );
        report
            .lines
            .push(format!("SCALING share_nothing_2_threads {:.2}", two / one));
        if !plan.quick {
            // The peers' scaling, for context (not part of the quick run's time budget).
            for (name, (one, two)) in [
                (
                    "cached #[cached]",
                    scaling(&mut [
                        hit_throughput(1, peer_cached),
                        hit_throughput(2, peer_cached),
                    ]),
                ),
                (
                    "moka get_with",
                    scaling(&mut [hit_throughput(1, peer_moka), hit_throughput(2, peer_moka)]),
                ),
                (
                    "quick_cache get",
                    scaling(&mut [
                        hit_throughput(1, peer_quick_cache),
                        hit_throughput(2, peer_quick_cache),
                    ]),
                ),
            ] {
                report.row(
                    "hit, memory, 2-thread scaling",
                    name,
                    format!("{:.2}x", two / one),
                );
            }
        }
    }

    // ----- stampede -----
    {
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .unwrap();
        let runs = rt.block_on(stampede(slow_profile, 10_000));
        report.row(
            "stampede, memory, 10 000 callers",
            "ours: body runs",
            runs.to_string(),
        );
        report.lines.push(format!("STAMPEDE body_runs {runs}"));
    }

    // ----- disk -----
    {
        let dir = std::env::temp_dir().join(format!("cachette-bench-disk-{}", std::process::id()));
        let disk = cachette::DiskBackend::builder(&dir).open().unwrap();
        let _ = DISK.set(Cache::builder().backend(disk).build());
        current_thread().block_on(async {
            for id in 0..KEYS {
                get_profile_disk(id).await;
            }
        });
        let [memory, disk] = interleaved(
            plan.runs,
            plan.hit_iters / 20,
            &mut [hit_ns(get_profile), hit_ns(get_profile_disk)],
        )[..] else {
            unreachable!()
        };
        report.row("hit, disk, 1 task", "ours on disk (SQLite)", ns(disk));
        report.row("hit, disk, 1 task", "ours in memory", ns(memory));
        report.ratio("hit_disk_vs_memory", disk / memory);
        let _ = std::fs::remove_dir_all(&dir);
    }

    // ----- eviction quality, memory per entry -----
    eviction::hit_ratio_rows(plan.quick, &mut report);
    eviction::bytes_per_entry_rows(&mut report);

    // ----- Redis, memcached -----
    redis_rows(plan, &mut report);
    memcached_rows(plan, &mut report);

    report.print();
    eprintln!("compare: done in {:.1} s", started.elapsed().as_secs_f64());
}

/// 10 000 concurrent cold callers of one key; returns how many times the body ran.
async fn stampede<F, Fut>(f: F, callers: u64) -> u64
where
    F: Fn(u64) -> Fut,
    Fut: Future<Output = Profile> + Send + 'static,
{
    BODY_RUNS.store(0, Ordering::SeqCst);
    let id = 7_000_000 + rand_id();
    let tasks: Vec<_> = (0..callers).map(|_| tokio::spawn(f(id))).collect();
    for task in tasks {
        assert_eq!(task.await.unwrap().id, id);
    }
    BODY_RUNS.load(Ordering::SeqCst)
}

/// Ids for cold keys, distinct between runs of the bench against one server.
fn rand_id() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_micros() as u64 % 1_000_000)
        * 1_000_000
}

/// Our cache on `server`, with the raw peer's pool size, for `get_profile_memcached`.
fn set_memcached_cache(server: &test_support::MemcachedServer) {
    let backend = cachette::MemcachedBackend::builder()
        .servers([server.address()])
        .pool_size(MEMCACHED_POOL)
        .build();
    let _ = MEMCACHED.set(Cache::builder().backend(backend).build());
}

fn memcached_rows(plan: Plan, report: &mut Report) {
    let Some(server) = test_support::MemcachedServer::start() else {
        eprintln!("SKIP: memcached is not installed: the memcached rows were NOT measured");
        report.row("memcached rows", "SKIPPED", "memcached missing".into());
        return;
    };
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    set_memcached_cache(&server);
    let raw = Arc::new(RawMemcached::new(server.address()));
    rt.block_on(async {
        for id in 0..KEYS {
            let v = get_profile_memcached(id).await;
            assert_eq!(v, peer_memcached(&raw, id).await);
        }
    });
    for concurrency in [1u64, 64] {
        let r = raw.clone();
        let [ours, peer] = interleaved(
            plan.redis_runs,
            plan.redis_ops,
            &mut [
                concurrent_throughput(&rt, concurrency, get_profile_memcached),
                concurrent_throughput(&rt, concurrency, move |id| {
                    let r = r.clone();
                    async move { peer_memcached(&r, id).await }
                }),
            ],
        )[..] else {
            unreachable!()
        };
        let what = format!("hit, memcached, {concurrency} tasks");
        report.row(what.clone(), "ours (cached fn)", ops(ours));
        report.row(what, "raw mg + rmp-serde", ops(peer));
        report.ratio(
            &format!("memcached_hit_{concurrency}_vs_raw_mg"),
            peer / ours,
        );
    }
    drop(rt);
    drop(server);
}

fn redis_rows(plan: Plan, report: &mut Report) {
    let Some(server) = test_support::RedisServer::start() else {
        eprintln!("SKIP: redis-server is not installed: the Redis rows (hit, miss, stampede) were NOT measured");
        report.row("redis rows", "SKIPPED", "redis-server missing".into());
        return;
    };
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let backend = rt.block_on(async {
        RedisBackend::builder()
            .url(server.url())
            .build()
            .await
            .unwrap()
    });
    let pool = backend.pool().clone();
    let _ = REDIS.set(Cache::builder().backend(backend).build());
    rt.block_on(async {
        pool.wait_for_connect().await.unwrap();
        for id in 0..KEYS {
            let v = get_profile_redis(id).await;
            assert_eq!(v, peer_fred(&pool, id).await);
        }
    });

    for concurrency in [1u64, 64, 256] {
        let (p, q) = (pool.clone(), pool.clone());
        let [ours, fred, fred_options] = interleaved(
            plan.redis_runs,
            plan.redis_ops,
            &mut [
                concurrent_throughput(&rt, concurrency, get_profile_redis),
                concurrent_throughput(&rt, concurrency, move |id| {
                    let p = p.clone();
                    async move { peer_fred(&p, id).await }
                }),
                concurrent_throughput(&rt, concurrency, move |id| {
                    let q = q.clone();
                    async move { peer_fred_with_options(&q, id).await }
                }),
            ],
        )[..] else {
            unreachable!()
        };
        let what = format!("hit, redis, {concurrency} tasks");
        report.row(what.clone(), "ours (cached fn)", ops(ours));
        report.row(what.clone(), "fred GET + rmp-serde", ops(fred));
        report.row(what, "fred GET + backend options", ops(fred_options));
        report.ratio(&format!("redis_hit_{concurrency}_vs_fred"), fred / ours);
    }

    // Client-side caching: a hit served by the local copy, beside a memory hit and a plain Redis hit.
    let tracked = rt.block_on(async {
        let builder = RedisBackend::builder().url(server.url()).key_prefix("cs:");
        cachette::ClientSideBackend::connect(builder, Default::default())
            .await
            .unwrap()
    });
    let _ = CLIENT_SIDE.set(Cache::builder().backend_arc(tracked).build());
    rt.block_on(async {
        for id in 0..KEYS {
            get_profile_client_side(id).await;
            get_profile_client_side(id).await;
        }
    });
    let [client_side, memory, plain] = interleaved(
        plan.runs,
        plan.hit_iters / 10,
        &mut [
            hit_ns(get_profile_client_side),
            hit_ns(get_profile),
            hit_ns(get_profile_redis),
        ],
    )[..] else {
        unreachable!()
    };
    report.row(
        "hit, client-side redis, 1 task",
        "ours, client-side",
        ns(client_side),
    );
    report.row("hit, client-side redis, 1 task", "ours, memory", ns(memory));
    report.row(
        "hit, client-side redis, 1 task",
        "ours, plain redis",
        ns(plain),
    );
    report.ratio("hit_client_side_vs_memory", client_side / memory);
    // How many client-side hits one plain Redis hit costs (a ratio below 0.01 would print as 0.00).
    report.ratio("hit_plain_redis_vs_client_side", plain / client_side);

    let next_id = Arc::new(AtomicU64::new(1_000_000 + rand_id()));
    let p = pool.clone();
    let [ours, fred] = interleaved(
        plan.redis_runs,
        plan.miss_ops,
        &mut [
            miss_us(&rt, &next_id, get_profile_redis),
            miss_us(&rt, &next_id, move |id| {
                let p = p.clone();
                async move { peer_fred(&p, id).await }
            }),
        ],
    )[..] else {
        unreachable!()
    };
    report.row(
        "miss, redis, 1 task",
        "ours (cached fn)",
        format!("{ours:.1} µs/call"),
    );
    report.row(
        "miss, redis, 1 task",
        "fred GET + body + SET",
        format!("{fred:.1} µs/call"),
    );
    report.ratio("redis_miss_vs_fred", ours / fred);

    let runs = rt.block_on(stampede(slow_profile_redis, 10_000));
    report.row(
        "stampede, redis, 10 000 callers",
        "ours: body runs",
        runs.to_string(),
    );
    drop(rt);
    drop(server);
}
