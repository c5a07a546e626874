//! The service toolkit beside the cache (cashews' "gentleman's set"): locks shared across processes, rate limits
//! and a circuit breaker for a function's own errors, all kept in the cache's backend.

pub(crate) mod circuit;
mod lock;
mod rate_limit;

pub use circuit::CircuitOpen;
pub use lock::{LockGuard, LockRequest, Locked};
pub use rate_limit::{
    check_rate_by_cas, RateAlgorithm, RateDecision, RateLimited, RateRule, Remaining,
};
