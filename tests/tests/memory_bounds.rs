//! The memory backend's bounds, measured as what they are for: the process's resident memory.
//!
//! Each scenario runs in a child process of this binary (`--scenario NAME`), so that one scenario's heap does
//! not count against the next; the child prints how much its resident set grew and the parent checks it. A
//! plain test harness would run the scenarios on threads of one process and measure them all at once.
//!
//! Linux only (`/proc/self/statm`); elsewhere it prints a SKIP line.

use std::process::{Child, Command, Stdio};
use std::time::Duration;

use cachette::{Cache, MemoryBackend};

const MIB: usize = 1 << 20;
/// The byte bound of the filled caches.
const BOUND: usize = 32 * MIB;
/// Entries written by the filling scenarios: many times what fits, so eviction runs for most of them.
const INSERTS: usize = 1_000_000;

fn main() {
    let args: Vec<String> = std::env::args().collect();
    if let Some(i) = args.iter().position(|a| a == "--scenario") {
        let name = args.get(i + 1).map(String::as_str).unwrap_or_default();
        let growth = run_scenario(name);
        println!("RSS_GROWTH {growth}");
        return;
    }
    if args.iter().any(|a| a == "--list") {
        // What `cargo test -- --list` asks of a test binary.
        println!("memory_bounds: test");
        return;
    }
    if !cfg!(target_os = "linux") {
        eprintln!("SKIP: memory_bounds measures /proc/self/statm, which only Linux has");
        return;
    }
    let checks: [(&str, usize, &str); 3] = [
        (
            "huge_max_entries",
            16 * MIB,
            "a cache with max_entries(100_000_000) must not allocate for entries it does not hold",
        ),
        (
            "strings",
            BOUND * 3 / 2,
            "1 M string values under a 32 MiB bound",
        ),
        (
            "small_int_vectors",
            BOUND * 3 / 2,
            "1 M Vec<u64> values of small numbers (1 byte stored, 8 decoded) under a 32 MiB bound",
        ),
    ];
    // The children run side by side: each measures only its own process.
    let children: Vec<_> = checks
        .iter()
        .map(|(name, _, _)| (*name, start_child(name)))
        .collect();
    let mut failures = Vec::new();
    for ((name, limit, what), (_, child)) in checks.into_iter().zip(children) {
        let growth = finish_child(name, child);
        println!(
            "memory_bounds {name}: resident memory grew {:.1} MiB (limit {:.1} MiB)",
            growth as f64 / MIB as f64,
            limit as f64 / MIB as f64
        );
        if growth > limit {
            failures.push(format!(
                "{name}: {what}: grew {growth} bytes, more than {limit}"
            ));
        }
    }
    assert!(failures.is_empty(), "{failures:#?}");
    println!("test result: ok. 3 scenarios passed");
}

fn start_child(name: &str) -> Child {
    let exe = std::env::current_exe().expect("the test binary knows its own path");
    Command::new(exe)
        .args(["--scenario", name])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("the test binary runs itself")
}

fn finish_child(name: &str, child: Child) -> usize {
    let output = child
        .wait_with_output()
        .expect("the scenario's output is readable");
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success(),
        "scenario {name} failed: {}\n{stdout}{}",
        output.status,
        String::from_utf8_lossy(&output.stderr)
    );
    stdout
        .lines()
        .find_map(|line| line.strip_prefix("RSS_GROWTH "))
        .and_then(|n| n.trim().parse().ok())
        .unwrap_or_else(|| panic!("scenario {name} printed no RSS_GROWTH line:\n{stdout}"))
}

/// Resident set size of this process in bytes.
fn resident_bytes() -> usize {
    let statm = std::fs::read_to_string("/proc/self/statm").expect("Linux has /proc/self/statm");
    let pages: usize = statm
        .split_whitespace()
        .nth(1)
        .and_then(|n| n.parse().ok())
        .expect("statm's second field is the resident page count");
    // SAFETY: sysconf has no preconditions.
    let page = unsafe { libc::sysconf(libc::_SC_PAGESIZE) } as usize;
    pages * page
}

fn bounded_cache(max_entries: usize) -> Cache {
    Cache::builder()
        .backend(
            MemoryBackend::builder()
                .max_entries(max_entries)
                .max_bytes(BOUND)
                .build(),
        )
        .build()
}

fn run_scenario(name: &str) -> usize {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("a Tokio runtime");
    runtime.block_on(async {
        match name {
            "huge_max_entries" => {
                let before = resident_bytes();
                let cache = bounded_cache(100_000_000);
                let _: u64 = cache.get_or_set("one", None, || async { 1 }).await;
                resident_bytes().saturating_sub(before)
            }
            "strings" => fill(|i| format!("{i:0>100}")).await,
            "small_int_vectors" => {
                fill(|i| {
                    (0..64)
                        .map(|j| ((i + j) % 100) as u64)
                        .collect::<Vec<u64>>()
                })
                .await
            }
            other => panic!("unknown scenario {other:?}"),
        }
    })
}

/// Writes `INSERTS` entries through the cached-function path and reads each back once, so that every entry
/// also holds its decoded copy; returns how much resident memory grew.
async fn fill<T, F>(value: F) -> usize
where
    T: serde::Serialize + serde::de::DeserializeOwned + Clone + Send + Sync + 'static,
    F: Fn(usize) -> T,
{
    // Far more entries than the byte bound lets in, so that the byte bound is what bounds.
    let cache = bounded_cache(1_000_000);
    let before = resident_bytes();
    for i in 0..INSERTS {
        let key = format!("entry:{i}");
        let stored: T = cache
            .get_or_set(&key, Some(Duration::from_secs(3600)), || async { value(i) })
            .await;
        let again: T = cache
            .get_or_set(&key, Some(Duration::from_secs(3600)), || async {
                unreachable!("the entry was just stored")
            })
            .await;
        drop((stored, again));
    }
    let growth = resident_bytes().saturating_sub(before);
    assert!(
        cache.metrics().hits >= INSERTS as u64 / 2,
        "the second read of each entry hit: {:?}",
        cache.metrics()
    );
    growth
}
