//! Eviction quality and memory per entry (issue "Performance" items 3 and 5): hit ratios on a Zipf trace and on a
//! scan-heavy one for our memory backend, moka (W-TinyLFU), quick_cache (S3-FIFO) and a plain LRU; and resident
//! bytes per entry, each contender measured in a child process of its own so allocations do not mix.

use std::num::NonZeroUsize;

use bytes::Bytes;
use cachette::MemoryBackend;
use rand::SeedableRng;
use rand_distr::{Distribution, Zipf};

use super::Report;

/// The key universe of the traces.
const UNIVERSE: u64 = 1_000_000;

/// A trace: key ids in access order.
fn zipf_trace(len: usize, seed: u64) -> Vec<u64> {
    let mut rng = rand::rngs::SmallRng::seed_from_u64(seed);
    let zipf = Zipf::new(UNIVERSE as f64, 0.9).expect("valid Zipf parameters");
    (0..len).map(|_| zipf.sample(&mut rng) as u64 - 1).collect()
}

/// The Zipf trace with a sequential scan of never-repeated keys every 50 000 accesses (20 000 keys each): what a
/// report or a crawler does to a cache. Scan resistance keeps the hot set; a plain LRU loses it.
fn scan_trace(len: usize, seed: u64) -> Vec<u64> {
    let mut out = Vec::with_capacity(len + len / 2);
    let mut next_scan_key = UNIVERSE;
    for (i, id) in zipf_trace(len, seed).into_iter().enumerate() {
        if i % 50_000 == 0 && i > 0 {
            out.extend(next_scan_key..next_scan_key + 20_000);
            next_scan_key += 20_000;
        }
        out.push(id);
    }
    out
}

fn key(id: u64) -> String {
    format!("k:{id}")
}

/// Hit ratio (percent) of `trace` with get-then-insert-on-miss: `access` looks a key up, inserts it on a miss
/// and says whether it was a hit.
fn ratio(trace: &[u64], mut access: impl FnMut(String) -> bool) -> f64 {
    let hits = trace.iter().filter(|&&id| access(key(id))).count();
    hits as f64 * 100.0 / trace.len() as f64
}

fn ratio_ours(trace: &[u64], capacity: usize) -> f64 {
    let cache = MemoryBackend::builder().max_entries(capacity).build();
    let value = Bytes::from_static(b"v");
    ratio(trace, |key| {
        let hit = cache.get_sync(&key).is_some();
        if !hit {
            cache.set_sync(&key, value.clone(), None);
        }
        hit
    })
}

fn ratio_moka(trace: &[u64], capacity: usize) -> f64 {
    let rt = tokio::runtime::Builder::new_current_thread()
        .build()
        .expect("a runtime");
    rt.block_on(async {
        let cache: moka::future::Cache<String, u8> = moka::future::Cache::new(capacity as u64);
        let mut hits = 0usize;
        for (i, &id) in trace.iter().enumerate() {
            let key = key(id);
            if cache.get(&key).await.is_some() {
                hits += 1;
            } else {
                cache.insert(key, 1).await;
            }
            // moka applies its policy in batches; keep them small so the ratio is its policy's, not its lag's.
            if i % 512 == 0 {
                cache.run_pending_tasks().await;
            }
        }
        hits as f64 * 100.0 / trace.len() as f64
    })
}

fn ratio_quick_cache(trace: &[u64], capacity: usize) -> f64 {
    let cache: quick_cache::sync::Cache<String, u8> = quick_cache::sync::Cache::new(capacity);
    ratio(trace, |key| {
        let hit = cache.get(&key).is_some();
        if !hit {
            cache.insert(key, 1);
        }
        hit
    })
}

fn ratio_lru(trace: &[u64], capacity: usize) -> f64 {
    let mut cache = lru::LruCache::new(NonZeroUsize::new(capacity.max(1)).expect("nonzero"));
    ratio(trace, |key| {
        let hit = cache.get(&key).is_some();
        if !hit {
            cache.put(key, 1u8);
        }
        hit
    })
}

/// The hit-ratio table: two traces × capacities of 1 % and 10 % of the universe.
pub(crate) fn hit_ratio_rows(quick: bool, report: &mut Report) {
    let len = if quick { 1_000_000 } else { 3_000_000 };
    let traces = [
        ("zipf 0.9", zipf_trace(len, 7)),
        ("zipf 0.9 + scans", scan_trace(len, 7)),
    ];
    for (name, trace) in &traces {
        for percent in [1u64, 10] {
            let capacity = (UNIVERSE * percent / 100) as usize;
            let what = format!("hit ratio, {name}, {percent}% cap");
            let ours = ratio_ours(trace, capacity);
            let moka = ratio_moka(trace, capacity);
            let quick_cache = ratio_quick_cache(trace, capacity);
            let lru = ratio_lru(trace, capacity);
            for (contender, value) in [
                ("ours (memory backend)", ours),
                ("moka (W-TinyLFU)", moka),
                ("quick_cache (S3-FIFO)", quick_cache),
                ("plain LRU", lru),
            ] {
                report.row(what.as_str(), contender, format!("{value:.2} %"));
            }
            let best = moka.max(quick_cache).max(lru);
            let slug = format!(
                "{}_{percent}pct",
                if name.contains("scan") {
                    "scan"
                } else {
                    "zipf"
                }
            );
            report.lines.push(format!(
                "HIT_RATIO {slug} ours {ours:.2} lru {lru:.2} best_peer {best:.2} gap {:.2}",
                best - ours
            ));
        }
    }
}

/// Entries for the memory-per-entry measurement.
const ENTRIES: u64 = 1_000_000;

fn resident_bytes() -> u64 {
    let statm = std::fs::read_to_string("/proc/self/statm").unwrap_or_default();
    let pages: u64 = statm
        .split_whitespace()
        .nth(1)
        .and_then(|p| p.parse().ok())
        .unwrap_or(0);
    pages * 4096
}

/// In a child process (`--rss <contender>`): fills one contender with 1 M entries (key `k:<id>`, a 100-byte
/// value) and prints `RSS_PER_ENTRY <bytes>`.
pub(crate) fn rss_child(contender: &str) {
    let value = Bytes::from(vec![7u8; 100]);
    let before = resident_bytes();
    let keep: Box<dyn std::any::Any> = match contender {
        "ours" => {
            let cache = MemoryBackend::builder()
                .max_entries(ENTRIES as usize * 2)
                .build();
            for id in 0..ENTRIES {
                cache.set_sync(&key(id), value.clone(), None);
            }
            Box::new(cache)
        }
        "moka" => {
            let cache: moka::sync::Cache<String, Bytes> = moka::sync::Cache::new(ENTRIES * 2);
            for id in 0..ENTRIES {
                // Its own copy of the bytes, like the others (a shared `Bytes` would be counted once).
                cache.insert(key(id), Bytes::copy_from_slice(&value));
            }
            cache.run_pending_tasks();
            Box::new(cache)
        }
        "quick_cache" => {
            let cache: quick_cache::sync::Cache<String, Bytes> =
                quick_cache::sync::Cache::new(ENTRIES as usize * 2);
            for id in 0..ENTRIES {
                cache.insert(key(id), Bytes::copy_from_slice(&value));
            }
            Box::new(cache)
        }
        other => panic!("unknown contender {other}"),
    };
    let after = resident_bytes();
    drop(std::hint::black_box(keep));
    println!(
        "RSS_PER_ENTRY {:.1}",
        (after.saturating_sub(before)) as f64 / ENTRIES as f64
    );
}

/// Bytes of resident memory per entry for each contender, each in a child process of this binary.
pub(crate) fn bytes_per_entry_rows(report: &mut Report) {
    let exe = std::env::current_exe().expect("the bench knows its own path");
    let mut measured = Vec::new();
    for contender in ["ours", "moka", "quick_cache"] {
        let output = std::process::Command::new(&exe)
            .args(["--rss", contender])
            .output()
            .expect("run the measurement child");
        let text = String::from_utf8_lossy(&output.stdout);
        let Some(bytes) = text
            .lines()
            .find_map(|l| l.strip_prefix("RSS_PER_ENTRY "))
            .and_then(|v| v.trim().parse::<f64>().ok())
        else {
            eprintln!(
                "bytes per entry: {contender} printed nothing: {}",
                String::from_utf8_lossy(&output.stderr)
            );
            continue;
        };
        report.row(
            "bytes per entry, 1 M × 100 B",
            contender,
            format!("{bytes:.0} B"),
        );
        measured.push((contender, bytes));
    }
    if let (Some((_, ours)), Some(leanest)) = (
        measured.iter().find(|(c, _)| *c == "ours"),
        measured
            .iter()
            .filter(|(c, _)| *c != "ours")
            .map(|(_, b)| *b)
            .reduce(f64::min),
    ) {
        report.ratio("bytes_per_entry_vs_leanest_peer", ours / leanest);
    }
}
