//! Counters every [`Cache`](crate::Cache) keeps.

use std::sync::atomic::{AtomicU64, Ordering::Relaxed};

#[derive(Debug, Default)]
pub(crate) struct Metrics {
    pub hits: AtomicU64,
    pub misses: AtomicU64,
    pub stores: AtomicU64,
    pub backend_errors: AtomicU64,
    pub decode_errors: AtomicU64,
}

impl Metrics {
    pub(crate) fn inc(counter: &AtomicU64) {
        counter.fetch_add(1, Relaxed);
    }

    pub(crate) fn snapshot(&self) -> MetricsSnapshot {
        MetricsSnapshot {
            hits: self.hits.load(Relaxed),
            misses: self.misses.load(Relaxed),
            stores: self.stores.load(Relaxed),
            backend_errors: self.backend_errors.load(Relaxed),
            decode_errors: self.decode_errors.load(Relaxed),
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
