//! Rate limits kept in the backend (cashews `rate_limit` and `slice_rate_limit`), so every process sharing it
//! counts against one limit.
//!
//! Each check is one atomic step in the backend: Redis runs one Lua script per check (server clock); every other
//! backend with compare-and-set reads the state, decides and writes it back only if nobody changed it meanwhile,
//! retrying otherwise (wall clock), so concurrent callers never both take the last slot.

use std::time::Duration;

use super::now_ms;

use bytes::Bytes;

use crate::backend::{Backend, BackendError, Capabilities, CasOutcome, SetMode};
use crate::cache::Cache;

/// How calls are counted within the period.
///
/// ```
/// assert_eq!(cache_core::RateAlgorithm::default(), cache_core::RateAlgorithm::Fixed);
/// ```
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash)]
pub enum RateAlgorithm {
    /// Fixed windows of one period starting at the first call: cheap (one counter), but a burst at the end of one
    /// window and the start of the next may let up to twice the limit through within one period.
    #[default]
    Fixed,
    /// A sliding window (cashews' `slice_rate_limit`): at most `limit` calls in any span of one period. Keeps one
    /// timestamp per allowed call of the last period.
    Sliding,
}

/// `limit` calls per `period`, counted by `algorithm`.
///
/// ```
/// use cache_core::{RateAlgorithm, RateRule};
/// use std::time::Duration;
/// let rule = RateRule::sliding(100, Duration::from_secs(60));
/// assert_eq!((rule.limit, rule.algorithm), (100, RateAlgorithm::Sliding));
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct RateRule {
    /// Calls allowed per period.
    pub limit: u64,
    /// The period.
    pub period: Duration,
    /// How calls are counted.
    pub algorithm: RateAlgorithm,
}

impl RateRule {
    /// A fixed-window rule.
    ///
    /// ```
    /// let rule = cache_core::RateRule::fixed(10, std::time::Duration::from_secs(1));
    /// assert_eq!(rule.algorithm, cache_core::RateAlgorithm::Fixed);
    /// ```
    pub fn fixed(limit: u64, period: Duration) -> Self {
        Self {
            limit,
            period,
            algorithm: RateAlgorithm::Fixed,
        }
    }

    /// A sliding-window rule.
    ///
    /// ```
    /// let rule = cache_core::RateRule::sliding(10, std::time::Duration::from_secs(1));
    /// assert_eq!(rule.algorithm, cache_core::RateAlgorithm::Sliding);
    /// ```
    pub fn sliding(limit: u64, period: Duration) -> Self {
        Self {
            limit,
            period,
            algorithm: RateAlgorithm::Sliding,
        }
    }

    /// The period in whole milliseconds, at least 1: what backends count in.
    ///
    /// ```
    /// let rule = cache_core::RateRule::fixed(1, std::time::Duration::from_micros(10));
    /// assert_eq!(rule.period_ms(), 1);
    /// ```
    pub fn period_ms(&self) -> u64 {
        u64::try_from(self.period.as_millis())
            .unwrap_or(u64::MAX)
            .max(1)
    }
}

/// A backend's answer to one rate-limit check (see [`Backend::rate_limit`]).
///
/// ```
/// let d = cache_core::RateDecision { allowed: true, remaining: 4, reset_after: std::time::Duration::from_secs(1) };
/// assert!(d.allowed);
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RateDecision {
    /// Whether this call was counted and may go ahead.
    pub allowed: bool,
    /// Calls still allowed in the current period after this one.
    pub remaining: u64,
    /// Allowed: when the current window resets. Refused: when the next call may be allowed.
    pub reset_after: Duration,
}

/// An allowed call of [`Cache::rate_limit`].
///
/// ```
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() {
/// let cache = cache_core::Cache::memory();
/// let left = cache.rate_limit("ip:1", 3, std::time::Duration::from_secs(60)).await.unwrap();
/// assert_eq!(left.remaining, 2);
/// # }
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Remaining {
    /// Calls still allowed in the current period.
    pub remaining: u64,
    /// When the current window resets.
    pub reset_after: Duration,
    /// `true` when the backend failed and the call was let through unchecked (fail-open; logged and counted).
    pub unchecked: bool,
}

/// A call refused by a rate limit. `#[rate_limit]` functions return it as their error: their error type
/// implements `From<RateLimited>` (or the function names an `action`).
///
/// ```
/// let e = cache_core::RateLimited { key: "ip:1".into(), limit: 3, retry_after: std::time::Duration::from_secs(2) };
/// assert_eq!(e.to_string(), "rate limit of 3 calls exceeded for \"ip:1\"; retry after 2s");
/// ```
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("rate limit of {limit} calls exceeded for {key:?}; retry after {retry_after:?}")]
pub struct RateLimited {
    /// The limit's key.
    pub key: String,
    /// Calls allowed per period.
    pub limit: u64,
    /// When the next call may be allowed.
    pub retry_after: Duration,
}

impl Cache {
    /// Counts one call against `limit` calls per `period` under `key` (a fixed window; see
    /// [`Cache::rate_limit_with`] for a sliding one), shared by every process using the backend. A backend
    /// failure lets the call through ([`Remaining::unchecked`]), logged and counted like any cache failure.
    ///
    /// ```
    /// use std::time::Duration;
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() {
    /// let cache = cache_core::Cache::memory();
    /// for _ in 0..3 {
    ///     cache.rate_limit("login:ada", 3, Duration::from_secs(60)).await.unwrap();
    /// }
    /// let refused = cache.rate_limit("login:ada", 3, Duration::from_secs(60)).await.unwrap_err();
    /// assert!(refused.retry_after <= Duration::from_secs(60));
    /// # }
    /// ```
    pub async fn rate_limit(
        &self,
        key: &str,
        limit: u64,
        period: Duration,
    ) -> Result<Remaining, RateLimited> {
        self.rate_limit_with(key, RateRule::fixed(limit, period))
            .await
    }

    /// [`Cache::rate_limit`] with any [`RateRule`].
    ///
    /// ```
    /// use cache_core::RateRule;
    /// use std::time::Duration;
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() {
    /// let cache = cache_core::Cache::memory();
    /// let rule = RateRule::sliding(1, Duration::from_secs(60));
    /// assert!(cache.rate_limit_with("export", rule).await.is_ok());
    /// assert!(cache.rate_limit_with("export", rule).await.is_err());
    /// # }
    /// ```
    pub async fn rate_limit_with(
        &self,
        key: &str,
        rule: RateRule,
    ) -> Result<Remaining, RateLimited> {
        match self.backend_for(key).rate_limit(key, rule).await {
            Ok(decision) if decision.allowed => Ok(Remaining {
                remaining: decision.remaining,
                reset_after: decision.reset_after,
                unchecked: false,
            }),
            Ok(decision) => Err(RateLimited {
                key: key.to_owned(),
                limit: rule.limit,
                retry_after: decision.reset_after,
            }),
            Err(error) => {
                self.note_backend_error("rate_limit", key, &error);
                Ok(Remaining {
                    remaining: rule.limit,
                    reset_after: rule.period,
                    unchecked: true,
                })
            }
        }
    }
}

/// How often a compare-and-set check re-reads after losing a race before it reports a conflict (a failure, so the
/// call fails open). Every round has a winner, and losers back off with jitter, so a crowd of `n` concurrent
/// callers of one key needs about `n` rounds at worst.
const CAS_ATTEMPTS: u32 = 1_000;

/// The state of one limit as stored by [`check_by_cas`]: a tag byte, then little-endian `u64`s in milliseconds
/// since the Unix epoch. Fixed: window start and count. Sliding: the allowed calls' times, oldest first.
#[derive(Debug, PartialEq, Eq)]
enum State {
    Fixed { start: u64, count: u64 },
    Sliding(Vec<u64>),
}

const FIXED_TAG: u8 = b'F';
const SLIDING_TAG: u8 = b'S';

impl State {
    fn empty(algorithm: RateAlgorithm) -> Self {
        match algorithm {
            RateAlgorithm::Fixed => State::Fixed { start: 0, count: 0 },
            RateAlgorithm::Sliding => State::Sliding(Vec::new()),
        }
    }

    /// The stored state, or an empty one when the bytes are not a state of this algorithm (another writer's
    /// value under the key, or the rule changed): a limit never fails on what it finds, it starts over.
    fn decode(bytes: &[u8], algorithm: RateAlgorithm) -> Self {
        let numbers = |rest: &[u8]| -> Option<Vec<u64>> {
            if !rest.len().is_multiple_of(8) {
                return None;
            }
            Some(
                rest.chunks_exact(8)
                    .map(|chunk| {
                        let mut word = [0u8; 8];
                        word.copy_from_slice(chunk);
                        u64::from_le_bytes(word)
                    })
                    .collect(),
            )
        };
        let parsed = match (algorithm, bytes.split_first()) {
            (RateAlgorithm::Fixed, Some((&FIXED_TAG, rest))) => {
                numbers(rest).and_then(|n| match n[..] {
                    [start, count] => Some(State::Fixed { start, count }),
                    _ => None,
                })
            }
            (RateAlgorithm::Sliding, Some((&SLIDING_TAG, rest))) => {
                numbers(rest).filter(|n| n.is_sorted()).map(State::Sliding)
            }
            _ => None,
        };
        parsed.unwrap_or_else(|| State::empty(algorithm))
    }

    fn encode(&self) -> Bytes {
        let (tag, numbers): (u8, Vec<u64>) = match self {
            State::Fixed { start, count } => (FIXED_TAG, vec![*start, *count]),
            State::Sliding(times) => (SLIDING_TAG, times.clone()),
        };
        let mut out = Vec::with_capacity(1 + numbers.len() * 8);
        out.push(tag);
        for n in numbers {
            out.extend_from_slice(&n.to_le_bytes());
        }
        out.into()
    }

    /// Decides a call at `now`: the decision, and the state to store with its TTL (`None`: refused, nothing to
    /// write).
    fn check(&self, now: u64, rule: RateRule) -> (RateDecision, Option<(State, Duration)>) {
        let period = rule.period_ms();
        let refused = |reset: u64| RateDecision {
            allowed: false,
            remaining: 0,
            reset_after: Duration::from_millis(reset.max(1)),
        };
        match self {
            &State::Fixed { start, count } => {
                let (start, count) = if now >= start.saturating_add(period) || start > now {
                    (now, 0)
                } else {
                    (start, count)
                };
                let reset = start.saturating_add(period) - now;
                if count >= rule.limit {
                    return (refused(reset), None);
                }
                let decision = RateDecision {
                    allowed: true,
                    remaining: rule.limit - count - 1,
                    reset_after: Duration::from_millis(reset),
                };
                let next = State::Fixed {
                    start,
                    count: count + 1,
                };
                (decision, Some((next, Duration::from_millis(reset.max(1)))))
            }
            State::Sliding(times) => {
                // A call at `t` counts while `t > now - period`, as in the Redis script.
                let horizon = now.saturating_sub(period);
                let mut times: Vec<u64> = times
                    .iter()
                    .copied()
                    .filter(|&t| t > horizon && t <= now)
                    .collect();
                let count = times.len() as u64;
                if count >= rule.limit {
                    let oldest = times.first().copied().unwrap_or(now);
                    return (refused(oldest.saturating_add(period) - now), None);
                }
                times.push(now);
                let decision = RateDecision {
                    allowed: true,
                    remaining: rule.limit - count - 1,
                    reset_after: Duration::from_millis(period),
                };
                (
                    decision,
                    Some((State::Sliding(times), Duration::from_millis(period))),
                )
            }
        }
    }
}

/// [`Backend::rate_limit`] for any backend with compare-and-set: read, decide, write back only if unchanged.
///
/// ```
/// use cache_core::{Backend, MemoryBackend, RateRule};
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() {
/// let memory = MemoryBackend::default();
/// let rule = RateRule::fixed(1, std::time::Duration::from_secs(60));
/// assert!(cache_core::check_rate_by_cas(&memory, "k", rule).await.unwrap().allowed);
/// assert!(!cache_core::check_rate_by_cas(&memory, "k", rule).await.unwrap().allowed);
/// # }
/// ```
pub async fn check_rate_by_cas<B: Backend + ?Sized>(
    backend: &B,
    key: &str,
    rule: RateRule,
) -> Result<RateDecision, BackendError> {
    if !backend.capabilities().contains(Capabilities::CAS) {
        return Err(backend.unsupported(Capabilities::CAS));
    }
    for attempt in 0..CAS_ATTEMPTS {
        let current = backend.gets(key).await?;
        let state = current.as_ref().map_or_else(
            || State::empty(rule.algorithm),
            |(bytes, _)| State::decode(bytes, rule.algorithm),
        );
        let (decision, next) = state.check(now_ms(), rule);
        let Some((next, ttl)) = next else {
            return Ok(decision);
        };
        let written = match current {
            None => {
                backend
                    .set(key, next.encode(), Some(ttl), SetMode::IfAbsent)
                    .await?
            }
            Some((_, token)) => {
                backend.cas(key, next.encode(), token, Some(ttl)).await? == CasOutcome::Stored
            }
        };
        if written {
            return Ok(decision);
        }
        crate::compare_and_set::back_off(attempt).await;
    }
    Err(BackendError::Other(format!(
        "rate limit {key:?}: {CAS_ATTEMPTS} conflicting writes in a row"
    )))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fixed_window_counts_then_refuses_then_resets() {
        let rule = RateRule::fixed(2, Duration::from_millis(100));
        let (first, next) = State::empty(rule.algorithm).check(1_000, rule);
        assert_eq!((first.allowed, first.remaining), (true, 1));
        let (state, _) = next.unwrap();
        let (second, next) = state.check(1_050, rule);
        assert_eq!((second.allowed, second.remaining), (true, 0));
        let (state, _) = next.unwrap();
        let (third, none) = State::decode(&state.encode(), rule.algorithm).check(1_060, rule);
        assert!(!third.allowed && none.is_none());
        assert_eq!(third.reset_after, Duration::from_millis(40));
        let (fourth, _) = state.check(1_100, rule);
        assert_eq!(
            (fourth.allowed, fourth.remaining),
            (true, 1),
            "a new window"
        );
    }

    #[test]
    fn sliding_window_never_allows_more_than_the_limit_in_any_period() {
        let rule = RateRule::sliding(3, Duration::from_millis(100));
        let mut state = State::empty(rule.algorithm);
        let mut allowed = Vec::new();
        for now in (0..1_000).step_by(7) {
            let (decision, next) = state.check(10_000 + now, rule);
            if decision.allowed {
                allowed.push(10_000 + now);
            }
            state = match next {
                Some((next, _)) => State::decode(&next.encode(), rule.algorithm),
                None => state,
            };
        }
        for (i, t) in allowed.iter().enumerate() {
            let within = allowed[i..].iter().take_while(|&&u| u < t + 100).count();
            assert!(within <= 3, "{within} calls within one period from {t}");
        }
        // Fixed windows would let 3 through at 99 and 3 more at 100; sliding lets about 3 per 100 ms.
        assert!((28..=33).contains(&allowed.len()), "{}", allowed.len());
    }

    #[test]
    fn foreign_or_other_algorithm_bytes_start_over() {
        let rule = RateRule::sliding(1, Duration::from_secs(1));
        assert_eq!(
            State::decode(b"garbage", rule.algorithm),
            State::Sliding(vec![])
        );
        let fixed = State::Fixed { start: 5, count: 9 }.encode();
        assert_eq!(
            State::decode(&fixed, rule.algorithm),
            State::Sliding(vec![])
        );
        assert_eq!(
            State::decode(&fixed[..5], RateAlgorithm::Fixed),
            State::Fixed { start: 0, count: 0 }
        );
        let unsorted = State::Sliding(vec![9, 3]).encode();
        assert_eq!(
            State::decode(&unsorted, rule.algorithm),
            State::Sliding(vec![])
        );
    }
}
