//! The memory backend under many threads at once: gets, sets, deletes, short TTLs, compare-and-set and
//! eviction mixed on shared keys, under both bounds. What a user relies on: a read returns a value written to
//! that key (never another key's, never a torn one), an expired entry is never served, no increment is lost,
//! and the bounds hold whenever the threads stop.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use cachette::{Backend, CasOutcome, MemoryBackend, SetMode};

const THREADS: usize = 4;
const KEYS: usize = 2_000;
const MAX_ENTRIES: usize = 1_024;
const MAX_BYTES: usize = 1 << 20;

/// A value that names its key and the write that made it, padded to a size that varies with the write, so a
/// value read under the wrong key or half-written shows.
fn value_for(key: &str, writer: usize, n: usize) -> Bytes {
    let head = format!("{key}|{writer}|{n}|");
    let pad = (n * 7 + writer * 13) % 600;
    let mut v = head.into_bytes();
    v.extend(std::iter::repeat_n(b'x', pad));
    v.push(b'#');
    Bytes::from(v)
}

fn check_value(key: &str, bytes: &[u8]) {
    let text = std::str::from_utf8(bytes).expect("values are UTF-8");
    let mut parts = text.splitn(4, '|');
    assert_eq!(parts.next(), Some(key), "a value of another key: {text:?}");
    let writer: usize = parts.next().and_then(|w| w.parse().ok()).expect("writer");
    let n: usize = parts
        .next()
        .and_then(|w| w.parse().ok())
        .expect("write number");
    let rest = parts.next().expect("padding");
    let pad = (n * 7 + writer * 13) % 600;
    assert_eq!(rest.len(), pad + 1, "a torn value under {key:?}");
    assert!(rest.ends_with('#'), "a torn value under {key:?}");
}

/// A small xorshift so each thread walks its own reproducible mix of operations.
fn next(state: &mut u64) -> u64 {
    *state ^= *state << 13;
    *state ^= *state >> 7;
    *state ^= *state << 17;
    *state
}

#[test]
fn mixed_operations_on_shared_keys_keep_values_and_bounds() {
    let backend = Arc::new(
        MemoryBackend::builder()
            .max_entries(MAX_ENTRIES)
            .max_bytes(MAX_BYTES)
            .build(),
    );
    let rt = tokio::runtime::Builder::new_current_thread()
        .build()
        .expect("runtime");
    let deadline = Instant::now() + Duration::from_secs(3);
    std::thread::scope(|s| {
        for writer in 0..THREADS {
            let backend = backend.clone();
            s.spawn(move || {
                let rt = tokio::runtime::Builder::new_current_thread()
                    .build()
                    .expect("runtime");
                let mut state = 0x9E37_79B9_7F4A_7C15 ^ (writer as u64 + 1);
                let mut n = 0;
                while Instant::now() < deadline {
                    n += 1;
                    let key = format!("k{}", next(&mut state) as usize % KEYS);
                    rt.block_on(async {
                        match next(&mut state) % 10 {
                            0..=3 => {
                                if let Some(v) = backend.get(&key).await.expect("get") {
                                    check_value(&key, &v);
                                }
                            }
                            4..=5 => {
                                let ttl = Some(Duration::from_secs(60));
                                let v = value_for(&key, writer, n);
                                backend
                                    .set(&key, v, ttl, SetMode::Always)
                                    .await
                                    .expect("set");
                            }
                            6 => {
                                // Short-lived entries: expiry races with reads and eviction.
                                let v = value_for(&key, writer, n);
                                let ttl = Some(Duration::from_millis(5));
                                backend
                                    .set(&key, v, ttl, SetMode::Always)
                                    .await
                                    .expect("set");
                            }
                            7 => {
                                backend.delete(&key).await.expect("delete");
                            }
                            8 => {
                                if let Some((v, token)) = backend.gets(&key).await.expect("gets") {
                                    check_value(&key, &v);
                                    let new = value_for(&key, writer, n);
                                    backend.cas(&key, new, token, None).await.expect("cas");
                                }
                            }
                            _ => {
                                if let Some(v) = backend.get_sync(&key) {
                                    check_value(&key, &v);
                                }
                            }
                        }
                    });
                }
            });
        }
    });
    assert!(
        backend.len() <= MAX_ENTRIES,
        "{} entries held, bound {MAX_ENTRIES}",
        backend.len()
    );
    assert!(
        backend.used_bytes() <= MAX_BYTES,
        "{} bytes charged, bound {MAX_BYTES}",
        backend.used_bytes()
    );
    // Every entry left is intact and under its own key.
    rt.block_on(async {
        for key in backend.scan("*").await.expect("scan") {
            if let Some(v) = backend.get(&key).await.expect("get") {
                check_value(&key, &v);
            }
        }
    });
}

#[test]
fn expired_entries_are_never_served_while_other_threads_write() {
    let backend = Arc::new(MemoryBackend::builder().max_entries(100_000).build());
    let stop = AtomicBool::new(false);
    std::thread::scope(|s| {
        // Background writers keep every shard busy with inserts, evictions and sweeps.
        for writer in 0..2 {
            let (backend, stop) = (backend.clone(), &stop);
            s.spawn(move || {
                let mut n = 0;
                while !stop.load(Ordering::Relaxed) {
                    n += 1;
                    let key = format!("noise{}", n % 5_000);
                    backend.set_sync(
                        &key,
                        value_for(&key, writer, n),
                        Some(Duration::from_millis(1)),
                    );
                }
            });
        }
        let ttl = Duration::from_millis(30);
        for round in 0..20 {
            let key = format!("short{round}");
            backend.set_sync(&key, value_for(&key, 9, round), Some(ttl));
            let written = Instant::now();
            // The expiry clock is coarse (a few ms), so wait well past the TTL before asserting absence.
            std::thread::sleep(ttl + Duration::from_millis(40));
            assert!(written.elapsed() > ttl);
            assert_eq!(backend.get_sync(&key), None, "{key} served after its TTL");
        }
        stop.store(true, Ordering::Relaxed);
    });
}

#[test]
fn concurrent_increments_and_cas_updates_lose_nothing() {
    let backend = Arc::new(MemoryBackend::builder().max_entries(10_000).build());
    const PER_THREAD: i64 = 2_000;
    std::thread::scope(|s| {
        for _ in 0..THREADS {
            let backend = backend.clone();
            s.spawn(move || {
                let rt = tokio::runtime::Builder::new_current_thread()
                    .build()
                    .expect("runtime");
                rt.block_on(async {
                    for _ in 0..PER_THREAD {
                        backend.incr("counter", 1, None).await.expect("incr");
                        // A compare-and-set read-modify-write loop, as `Cache::update` does it.
                        loop {
                            let Some((v, token)) = backend.gets("cas").await.expect("gets") else {
                                let first = Bytes::from_static(b"1");
                                if backend
                                    .set("cas", first, None, SetMode::IfAbsent)
                                    .await
                                    .expect("add")
                                {
                                    break;
                                }
                                continue;
                            };
                            let n: i64 = std::str::from_utf8(&v)
                                .expect("utf8")
                                .parse()
                                .expect("number");
                            let new = Bytes::from((n + 1).to_string());
                            match backend.cas("cas", new, token, None).await.expect("cas") {
                                CasOutcome::Stored => break,
                                CasOutcome::Exists | CasOutcome::NotFound => continue,
                            }
                        }
                    }
                });
            });
        }
    });
    let total = PER_THREAD * THREADS as i64;
    assert_eq!(
        backend.get_sync("counter").as_deref(),
        Some(total.to_string().as_bytes())
    );
    assert_eq!(
        backend.get_sync("cas").as_deref(),
        Some(total.to_string().as_bytes())
    );
}
