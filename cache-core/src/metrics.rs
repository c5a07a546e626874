//! Counters every [`Cache`](crate::Cache) keeps.
//!
//! Every hit bumps a counter, so on the hit path a single shared `AtomicU64` would be a cache line that all threads
//! write: each increment steals the line from the other cores (and, living inside the cache's shared state, also
//! the read-mostly fields next to it). The counters are therefore striped: each thread adds to its own
//! cache-line-sized stripe and a snapshot sums the stripes.

use std::cell::Cell;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering::Relaxed};

/// Stripes per cache. More than the cores of most machines that run one service, few enough that a snapshot stays
/// cheap; threads beyond that share stripes (still correct, only contended again).
const STRIPES: usize = 16;

/// One thread's counters, alone on its cache lines (128 bytes: adjacent-line prefetch pairs 64-byte lines).
#[derive(Debug, Default)]
#[repr(align(128))]
struct Stripe {
    hits: AtomicU64,
    misses: AtomicU64,
    stores: AtomicU64,
    backend_errors: AtomicU64,
    decode_errors: AtomicU64,
}

#[derive(Debug)]
pub(crate) struct Metrics {
    stripes: Box<[Stripe]>,
}

impl Default for Metrics {
    fn default() -> Self {
        Self {
            stripes: (0..STRIPES).map(|_| Stripe::default()).collect(),
        }
    }
}

/// The stripe of the current thread: assigned round-robin on its first increment, so threads spread evenly.
fn stripe_index() -> usize {
    static NEXT: AtomicUsize = AtomicUsize::new(0);
    thread_local! {
        static INDEX: Cell<usize> = const { Cell::new(usize::MAX) };
    }
    INDEX
        .try_with(|index| {
            let mut i = index.get();
            if i == usize::MAX {
                i = NEXT.fetch_add(1, Relaxed) % STRIPES;
                index.set(i);
            }
            i
        })
        // During thread-local destruction: any stripe is correct.
        .unwrap_or(0)
}

impl Metrics {
    fn mine(&self) -> &Stripe {
        // `stripe_index() < STRIPES == stripes.len()`, so this never goes out of bounds.
        &self.stripes[stripe_index() % self.stripes.len()]
    }

    pub(crate) fn hit(&self) {
        self.mine().hits.fetch_add(1, Relaxed);
    }

    pub(crate) fn miss(&self) {
        self.mine().misses.fetch_add(1, Relaxed);
    }

    pub(crate) fn store(&self) {
        self.mine().stores.fetch_add(1, Relaxed);
    }

    pub(crate) fn backend_error(&self) {
        self.mine().backend_errors.fetch_add(1, Relaxed);
    }

    pub(crate) fn decode_error(&self) {
        self.mine().decode_errors.fetch_add(1, Relaxed);
    }

    pub(crate) fn snapshot(&self) -> MetricsSnapshot {
        let sum = |field: fn(&Stripe) -> &AtomicU64| {
            self.stripes.iter().map(|s| field(s).load(Relaxed)).sum()
        };
        MetricsSnapshot {
            hits: sum(|s| &s.hits),
            misses: sum(|s| &s.misses),
            stores: sum(|s| &s.stores),
            backend_errors: sum(|s| &s.backend_errors),
            decode_errors: sum(|s| &s.decode_errors),
        }
    }
}

/// A point-in-time copy of a cache's counters.
///
/// ```
/// let cache = cache_core::Cache::memory();
/// assert_eq!(cache.metrics().hits, 0);
/// ```
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct MetricsSnapshot {
    /// Values served from the cache by cached functions and `get_or_set`.
    pub hits: u64,
    /// Lookups that found nothing usable.
    pub misses: u64,
    /// Values written by cached functions and `get_or_set`.
    pub stores: u64,
    /// Backend failures that were absorbed (fail-open) or returned.
    pub backend_errors: u64,
    /// Stored bytes that could not be decoded (foreign, truncated, another version or type) and were treated as
    /// misses.
    pub decode_errors: u64,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stripes_add_up_across_threads() {
        let metrics = Metrics::default();
        std::thread::scope(|s| {
            for _ in 0..(STRIPES + 3) {
                s.spawn(|| {
                    for _ in 0..1000 {
                        metrics.hit();
                    }
                    metrics.miss();
                });
            }
        });
        let snapshot = metrics.snapshot();
        assert_eq!(snapshot.hits, (STRIPES as u64 + 3) * 1000);
        assert_eq!(snapshot.misses, STRIPES as u64 + 3);
        assert_eq!(snapshot.stores, 0);
    }
}
