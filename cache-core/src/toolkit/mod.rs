//! The service toolkit beside the cache (cashews' "gentleman's set"): locks shared across processes, rate limits
//! and a circuit breaker for a function's own errors, all kept in the cache's backend.

pub(crate) mod circuit;
mod lock;
mod rate_limit;

/// Wall-clock milliseconds since the Unix epoch: the clock limits and circuits share with other processes
/// (a monotonic clock is per process).
pub(crate) fn now_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
}

pub use circuit::CircuitOpen;
pub use lock::{LockGuard, LockRequest, Locked};
pub use rate_limit::{
    check_rate_by_cas, RateAlgorithm, RateDecision, RateLimited, RateRule, Remaining,
};
