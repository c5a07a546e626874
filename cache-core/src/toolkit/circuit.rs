//! A circuit breaker for a function's own errors (cashews `circuit_breaker`), with its counters in the backend so
//! every instance sharing it opens and closes together.
//!
//! Calls and errors are counted per fixed window of one `period` (wall clock). When a window has seen at least
//! `min_calls` calls and its error share reaches `errors_rate`, the circuit opens for `ttl`: calls fail with
//! [`CircuitOpen`] without running. Then, for `half_open_ttl`, it is half-open: a share of the calls
//! (`half_open_ratio`) runs; the first success closes it, the first error opens it again.
//!
//! (This guards a function; the backend breaker in `cache-backends` guards the cache's own backend.)

use std::future::Future;
use std::time::Duration;

use super::now_ms;

use bytes::Bytes;

use crate::backend::SetMode;
use crate::cache::Cache;

/// When a [`circuit_breaker`] opens and for how long.
///
/// ```
/// use cache_core::strategy::CircuitOptions;
/// use std::time::Duration;
/// let o = CircuitOptions::new(0.05, Duration::from_secs(60)).min_calls(10).ttl(Duration::from_secs(30));
/// assert_eq!(o.min_calls, 10);
/// ```
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct CircuitOptions {
    /// The share of failed calls (0.0–1.0) within one period that opens the circuit.
    pub errors_rate: f64,
    /// The counting window.
    pub period: Duration,
    /// Calls a window must have seen before its error share counts.
    pub min_calls: u64,
    /// How long the circuit stays open.
    pub ttl: Duration,
    /// How long it is half-open after that.
    pub half_open_ttl: Duration,
    /// The share of calls (0.0–1.0) let through while half-open.
    pub half_open_ratio: f64,
}

impl CircuitOptions {
    /// Opens at `errors_rate` within `period`; `min_calls` 10, open for 30 s, then half-open for 10 s letting a
    /// tenth of the calls through.
    ///
    /// ```
    /// let o = cache_core::strategy::CircuitOptions::new(0.5, std::time::Duration::from_secs(10));
    /// assert_eq!(o.half_open_ratio, 0.1);
    /// ```
    pub fn new(errors_rate: f64, period: Duration) -> Self {
        Self {
            errors_rate,
            period,
            min_calls: 10,
            ttl: Duration::from_secs(30),
            half_open_ttl: Duration::from_secs(10),
            half_open_ratio: 0.1,
        }
    }

    /// Sets `min_calls`.
    ///
    /// ```
    /// # use cache_core::strategy::CircuitOptions;
    /// assert_eq!(CircuitOptions::new(0.5, std::time::Duration::from_secs(1)).min_calls(3).min_calls, 3);
    /// ```
    pub fn min_calls(mut self, min_calls: u64) -> Self {
        self.min_calls = min_calls;
        self
    }

    /// Sets how long the circuit stays open.
    ///
    /// ```
    /// # use cache_core::strategy::CircuitOptions;
    /// # use std::time::Duration;
    /// assert_eq!(CircuitOptions::new(0.5, Duration::from_secs(1)).ttl(Duration::from_secs(2)).ttl, Duration::from_secs(2));
    /// ```
    pub fn ttl(mut self, ttl: Duration) -> Self {
        self.ttl = ttl;
        self
    }

    /// Sets how long it is half-open.
    ///
    /// ```
    /// # use cache_core::strategy::CircuitOptions;
    /// # use std::time::Duration;
    /// let o = CircuitOptions::new(0.5, Duration::from_secs(1)).half_open_ttl(Duration::from_secs(5));
    /// assert_eq!(o.half_open_ttl, Duration::from_secs(5));
    /// ```
    pub fn half_open_ttl(mut self, half_open_ttl: Duration) -> Self {
        self.half_open_ttl = half_open_ttl;
        self
    }

    /// Sets the share of calls let through while half-open.
    ///
    /// ```
    /// # use cache_core::strategy::CircuitOptions;
    /// let o = CircuitOptions::new(0.5, std::time::Duration::from_secs(1)).half_open_ratio(0.5);
    /// assert_eq!(o.half_open_ratio, 0.5);
    /// ```
    pub fn half_open_ratio(mut self, ratio: f64) -> Self {
        self.half_open_ratio = ratio;
        self
    }
}

/// A call refused because the circuit is open (or half-open and this call was not let through).
/// `#[circuit_breaker]` functions return it as their error: their error type implements `From<CircuitOpen>`.
///
/// ```
/// let e = cache_core::CircuitOpen { key: "payments".into() };
/// assert_eq!(e.to_string(), "circuit \"payments\" is open; the call was not made");
/// ```
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("circuit {key:?} is open; the call was not made")]
pub struct CircuitOpen {
    /// The circuit's key.
    pub key: String,
}

/// The circuit's state keys next to `key`.
struct Keys {
    open: String,
    half: String,
    calls: String,
    errors: String,
}

impl Keys {
    fn new(key: &str, period: Duration) -> Self {
        let period = u64::try_from(period.as_millis()).unwrap_or(u64::MAX).max(1);
        let window = now_ms() / period;
        Self {
            open: format!("{key}:open"),
            half: format!("{key}:half_open"),
            calls: format!("{key}:calls:{window}"),
            errors: format!("{key}:errors:{window}"),
        }
    }
}

/// Whether this call goes ahead, and as what.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Pass {
    Closed,
    /// Half-open and let through: its outcome closes or reopens the circuit.
    Probe,
    Refused,
}

fn chance(ratio: f64) -> bool {
    let mut bytes = [0u8; 8];
    if getrandom::fill(&mut bytes).is_err() {
        // Without randomness, let the probe through: a half-open circuit must be able to close.
        return true;
    }
    (u64::from_le_bytes(bytes) as f64 / u64::MAX as f64) < ratio
}

/// Runs `body` behind the circuit `key` (see the module docs). A backend failure lets the call through and does
/// not count it (fail-open; logged and counted by the cache).
///
/// ```
/// use cache_core::{strategy::{circuit_breaker, CircuitOptions}, CircuitOpen, Cache};
/// use std::time::Duration;
/// #[derive(Debug, PartialEq)]
/// enum Error { Down, Open }
/// impl From<CircuitOpen> for Error { fn from(_: CircuitOpen) -> Self { Error::Open } }
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() {
/// let cache = Cache::memory();
/// let options = CircuitOptions::new(0.5, Duration::from_secs(60)).min_calls(2);
/// for _ in 0..2 {
///     let r: Result<(), Error> = circuit_breaker(&cache, "payments", options, async { Err(Error::Down) }).await;
///     assert_eq!(r, Err(Error::Down));
/// }
/// let r: Result<(), Error> = circuit_breaker(&cache, "payments", options, async { Ok(()) }).await;
/// assert_eq!(r, Err(Error::Open), "open: the body did not run");
/// # }
/// ```
pub async fn circuit_breaker<T, E, Fut>(
    cache: &Cache,
    key: &str,
    options: CircuitOptions,
    body: Fut,
) -> Result<T, E>
where
    E: From<CircuitOpen>,
    Fut: Future<Output = Result<T, E>>,
{
    let keys = Keys::new(key, options.period);
    let pass = admit(cache, &keys, options).await;
    if pass == Pass::Refused {
        return Err(E::from(CircuitOpen {
            key: key.to_owned(),
        }));
    }
    let out = body.await;
    record(cache, &keys, options, pass, out.is_err()).await;
    out
}

async fn admit(cache: &Cache, keys: &Keys, options: CircuitOptions) -> Pass {
    let backend = cache.backend_for(&keys.open);
    match backend.get_many(&[&keys.open, &keys.half]).await {
        Ok(found) => {
            let now = now_ms();
            let live = |marker: &Option<Bytes>| marker.as_deref().is_some_and(|m| until(m) > now);
            match (live(&found[0]), found.get(1).is_some_and(live)) {
                (true, _) => Pass::Refused,
                (false, true) if chance(options.half_open_ratio) => Pass::Probe,
                (false, true) => Pass::Refused,
                (false, false) => Pass::Closed,
            }
        }
        Err(error) => {
            cache.note_backend_error("circuit_breaker", &keys.open, &error);
            Pass::Closed
        }
    }
}

async fn record(cache: &Cache, keys: &Keys, options: CircuitOptions, pass: Pass, failed: bool) {
    let result = match (pass, failed) {
        (Pass::Probe, true) => open(cache, keys, options).await,
        (Pass::Probe, false) => close(cache, keys).await,
        (_, failed) => count(cache, keys, options, failed).await,
    };
    if let Err(error) = result {
        cache.note_backend_error("circuit_breaker", &keys.open, &error);
    }
}

async fn count(
    cache: &Cache,
    keys: &Keys,
    options: CircuitOptions,
    failed: bool,
) -> Result<(), crate::BackendError> {
    let backend = cache.backend_for(&keys.calls);
    // The counters outlive their window a little, so a window's last calls still see its totals.
    let keep = Some(options.period.saturating_mul(2));
    let calls = backend.incr(&keys.calls, 1, keep).await?;
    if !failed {
        return Ok(());
    }
    let errors = cache
        .backend_for(&keys.errors)
        .incr(&keys.errors, 1, keep)
        .await?;
    let calls = u64::try_from(calls).unwrap_or(0);
    let errors = u64::try_from(errors).unwrap_or(0);
    if calls >= options.min_calls.max(1) && errors as f64 >= options.errors_rate * calls as f64 {
        tracing::warn!(
            circuit = keys.open.trim_end_matches(":open"),
            calls,
            errors,
            "circuit opened"
        );
        open(cache, keys, options).await?;
    }
    Ok(())
}

/// A state marker: the time it ends, in ms since the Unix epoch. Read against the clock rather than trusted to the
/// backend's TTL, which may be coarser (memcached counts whole seconds).
fn marker(lasts: Duration) -> Bytes {
    let until = now_ms().saturating_add(u64::try_from(lasts.as_millis()).unwrap_or(u64::MAX));
    Bytes::from(until.to_string())
}

/// When a marker ends; a marker that is not ours (unreadable) counts as live until the backend drops it.
fn until(marker: &[u8]) -> u64 {
    std::str::from_utf8(marker)
        .ok()
        .and_then(|text| text.parse().ok())
        .unwrap_or(u64::MAX)
}

async fn open(
    cache: &Cache,
    keys: &Keys,
    options: CircuitOptions,
) -> Result<(), crate::BackendError> {
    let half_lasts = options.ttl.saturating_add(options.half_open_ttl);
    cache
        .backend_for(&keys.half)
        .set(
            &keys.half,
            marker(half_lasts),
            Some(half_lasts),
            SetMode::Always,
        )
        .await?;
    cache
        .backend_for(&keys.open)
        .set(
            &keys.open,
            marker(options.ttl),
            Some(options.ttl),
            SetMode::Always,
        )
        .await?;
    // The window that opened it starts over, so the circuit does not reopen on old errors once it closes.
    cache
        .backend_for(&keys.calls)
        .delete_many(&[&keys.calls, &keys.errors])
        .await?;
    Ok(())
}

async fn close(cache: &Cache, keys: &Keys) -> Result<(), crate::BackendError> {
    tracing::info!(
        circuit = keys.open.trim_end_matches(":open"),
        "circuit closed"
    );
    cache
        .backend_for(&keys.half)
        .delete_many(&[&keys.half, &keys.calls, &keys.errors])
        .await?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn half_open_lets_about_its_share_through_and_open_none() {
        let cache = Cache::memory();
        let options = CircuitOptions::new(0.5, Duration::from_secs(60)).half_open_ratio(0.3);
        let keys = Keys::new("c", options.period);
        let minute = Duration::from_secs(60);
        let backend = cache.backend_for(&keys.half);
        backend
            .set(&keys.half, marker(minute), Some(minute), SetMode::Always)
            .await
            .unwrap();
        let mut probes = 0;
        for _ in 0..2_000 {
            match admit(&cache, &keys, options).await {
                Pass::Probe => probes += 1,
                Pass::Refused => {}
                Pass::Closed => panic!("half-open is not closed"),
            }
        }
        // 600 expected; the bounds are seven standard deviations either side.
        assert!((450..=750).contains(&probes), "{probes} probes of 2000");
        backend
            .set(&keys.open, marker(minute), Some(minute), SetMode::Always)
            .await
            .unwrap();
        for _ in 0..100 {
            assert_eq!(admit(&cache, &keys, options).await, Pass::Refused);
        }
    }

    #[tokio::test]
    async fn a_marker_past_its_time_counts_as_gone_whatever_the_backend_ttl() {
        let cache = Cache::memory();
        let options = CircuitOptions::new(0.5, Duration::from_secs(60));
        let keys = Keys::new("d", options.period);
        // The backend keeps it for an hour (a coarse TTL); the marker itself ended a second ago.
        let ended = now_ms() - 1_000;
        cache
            .backend_for(&keys.open)
            .set(
                &keys.open,
                Bytes::from(ended.to_string()),
                Some(Duration::from_secs(3600)),
                SetMode::Always,
            )
            .await
            .unwrap();
        assert_eq!(admit(&cache, &keys, options).await, Pass::Closed);
    }
}
