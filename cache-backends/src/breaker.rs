//! A circuit breaker around any [`Backend`]: stop waiting on a backend that keeps failing, probe it again later.
//!
//! States:
//!
//! - **closed** — every call goes through; consecutive failures are counted and any success resets the count;
//! - **open** — after [`failure_threshold`](CircuitBreakerBuilder::failure_threshold) consecutive failures every
//!   call fails at once with [`BackendError::CircuitOpen`] for [`cooldown`](CircuitBreakerBuilder::cooldown);
//! - **half-open** — once the cooldown has passed exactly one call (the probe) goes through while the others keep
//!   failing fast; a successful probe closes the breaker, a failed one opens it for another cooldown.
//!
//! Only failures that say the backend is unhealthy count: [`BackendError::Connection`], [`BackendError::Timeout`],
//! [`BackendError::Other`] and an inner [`BackendError::CircuitOpen`]. [`BackendError::Invalid`] and
//! [`BackendError::WrongType`] are answers from a healthy backend and count as successes.
//!
//! The state is a handful of atomics, so a closed breaker costs two atomic loads per call.

use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use cache_core::layer::{BackendLayer, Layered, Op};
use cache_core::{Backend, BackendError};

/// Consecutive failures that open the breaker unless configured otherwise.
pub const DEFAULT_FAILURE_THRESHOLD: u32 = 5;
/// How long an open breaker rejects calls before it lets a probe through, unless configured otherwise.
pub const DEFAULT_COOLDOWN: Duration = Duration::from_secs(1);

/// The state a [`CircuitBreaker`] is in.
///
/// # Example
/// ```
/// use cache_backends::{circuit_breaker, BreakerState};
/// use cache_core::MemoryBackend;
///
/// let breaker = circuit_breaker(MemoryBackend::builder().max_entries(10).build());
/// assert_eq!(breaker.layer().state(), BreakerState::Closed);
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum BreakerState {
    /// Calls go through.
    Closed,
    /// Calls fail fast with [`BackendError::CircuitOpen`] until the cooldown has passed.
    Open,
    /// The cooldown has passed: the next call (or the one in flight) probes the backend.
    HalfOpen,
}

/// The circuit breaker layer: fails fast while the backend it wraps is unhealthy. See the [module docs](self)
/// for the states; [`CircuitBreaker`] is a backend wrapped in one.
///
/// # Example
/// ```
/// use std::time::Duration;
/// use cache_backends::Breaker;
/// use cache_core::{Backend, MemoryBackend};
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), cache_core::BackendError> {
/// let backend = Breaker::builder()
///     .failure_threshold(3)
///     .cooldown(Duration::from_millis(500))
///     .wrap(MemoryBackend::builder().max_entries(1_000).build());
/// backend.set("k", "v".into(), None, Default::default()).await?;
/// assert_eq!(backend.layer().opens(), 0);
/// # Ok(()) }
/// ```
pub struct Breaker {
    threshold: u32,
    cooldown: Duration,
    /// Reference point for `opened_at`, so the open instant fits in an atomic.
    epoch: Instant,
    consecutive_failures: AtomicU32,
    /// Milliseconds since `epoch` (+1) at which the breaker last opened; 0 while closed.
    opened_at: AtomicU64,
    probe_in_flight: AtomicBool,
    opens: AtomicU64,
    rejected: AtomicU64,
}

/// A backend wrapped in a [`Breaker`] (see `cache_core::layer::Layered`): the breaker is
/// [`layer()`](Layered::layer), the backend [`inner()`](Layered::inner).
///
/// # Example
/// ```
/// use cache_backends::{circuit_breaker, BreakerState};
/// let backend = circuit_breaker(cache_core::MemoryBackend::default());
/// assert_eq!(backend.layer().state(), BreakerState::Closed);
/// ```
pub type CircuitBreaker<B> = Layered<Breaker, B>;

/// Wraps `backend` in a breaker with the default settings (5 failures, 1 s cooldown).
///
/// # Example
/// ```
/// use cache_core::{Backend, MemoryBackend};
/// let backend = cache_backends::circuit_breaker(MemoryBackend::default());
/// assert_eq!(backend.inner().name(), "memory");
/// ```
pub fn circuit_breaker<B: Backend>(backend: B) -> CircuitBreaker<B> {
    CircuitBreakerBuilder::default().wrap(backend)
}

impl std::fmt::Debug for Breaker {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Breaker")
            .field("state", &self.state())
            .field("threshold", &self.threshold)
            .field("cooldown", &self.cooldown)
            .field("opens", &self.opens())
            .finish_non_exhaustive()
    }
}

/// Configures a [`CircuitBreaker`].
///
/// # Example
/// ```
/// use std::time::Duration;
/// use cache_backends::Breaker;
/// use cache_core::MemoryBackend;
///
/// let breaker = Breaker::builder()
///     .failure_threshold(10)
///     .cooldown(Duration::from_secs(2))
///     .wrap(MemoryBackend::builder().max_entries(100).build());
/// # let _ = breaker;
/// ```
#[derive(Debug, Clone)]
pub struct CircuitBreakerBuilder {
    threshold: u32,
    cooldown: Duration,
}

impl Default for CircuitBreakerBuilder {
    fn default() -> Self {
        Self {
            threshold: DEFAULT_FAILURE_THRESHOLD,
            cooldown: DEFAULT_COOLDOWN,
        }
    }
}

impl CircuitBreakerBuilder {
    /// Consecutive failures that open the breaker (default 5; 0 is treated as 1).
    ///
    /// # Example
    /// ```
    /// let builder = cache_backends::Breaker::builder().failure_threshold(3);
    /// # let _ = builder;
    /// ```
    pub fn failure_threshold(mut self, failures: u32) -> Self {
        self.threshold = failures.max(1);
        self
    }

    /// How long the breaker stays open before letting one probe through (default 1 s).
    ///
    /// # Example
    /// ```
    /// let builder = cache_backends::Breaker::builder().cooldown(std::time::Duration::from_secs(5));
    /// # let _ = builder;
    /// ```
    pub fn cooldown(mut self, cooldown: Duration) -> Self {
        self.cooldown = cooldown;
        self
    }

    /// Wraps `backend` in a breaker with these settings.
    ///
    /// # Example
    /// ```
    /// use cache_core::MemoryBackend;
    /// let breaker = cache_backends::Breaker::builder().wrap(MemoryBackend::builder().build());
    /// # let _ = breaker;
    /// ```
    pub fn wrap<B: Backend>(self, backend: B) -> CircuitBreaker<B> {
        Layered::new(self.build(), backend)
    }

    /// The breaker layer itself, to wrap a backend with `cache_core::layer::LayeredExt::layered`.
    ///
    /// # Example
    /// ```
    /// use cache_core::layer::LayeredExt;
    /// let backend = cache_core::MemoryBackend::default().layered(cache_backends::Breaker::builder().build());
    /// # let _ = backend;
    /// ```
    pub fn build(self) -> Breaker {
        Breaker {
            threshold: self.threshold,
            cooldown: self.cooldown,
            epoch: Instant::now(),
            consecutive_failures: AtomicU32::new(0),
            opened_at: AtomicU64::new(0),
            probe_in_flight: AtomicBool::new(false),
            opens: AtomicU64::new(0),
            rejected: AtomicU64::new(0),
        }
    }
}

/// How a call was let through.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Admission {
    Normal,
    Probe,
}

/// Releases the probe slot even when the probing future is dropped half-way; otherwise a cancelled probe would keep
/// the breaker open forever.
struct ProbeSlot<'a> {
    flag: &'a AtomicBool,
}

impl Drop for ProbeSlot<'_> {
    fn drop(&mut self) {
        self.flag.store(false, Ordering::Release);
    }
}

impl Breaker {
    /// Starts configuring a breaker.
    ///
    /// # Example
    /// ```
    /// let builder = cache_backends::Breaker::builder().failure_threshold(3);
    /// # let _ = builder;
    /// ```
    pub fn builder() -> CircuitBreakerBuilder {
        CircuitBreakerBuilder::default()
    }

    /// The current state.
    ///
    /// # Example
    /// ```
    /// use cache_backends::{circuit_breaker, BreakerState};
    /// let breaker = circuit_breaker(cache_core::MemoryBackend::builder().build());
    /// assert_eq!(breaker.layer().state(), BreakerState::Closed);
    /// ```
    pub fn state(&self) -> BreakerState {
        let opened = self.opened_at.load(Ordering::Acquire);
        if opened == 0 {
            BreakerState::Closed
        } else if self.now_ms().saturating_sub(opened) < self.cooldown_ms() {
            BreakerState::Open
        } else {
            BreakerState::HalfOpen
        }
    }

    /// How many times the breaker went from closed to open.
    ///
    /// # Example
    /// ```
    /// let breaker = cache_backends::circuit_breaker(cache_core::MemoryBackend::builder().build());
    /// assert_eq!(breaker.layer().opens(), 0);
    /// ```
    pub fn opens(&self) -> u64 {
        self.opens.load(Ordering::Relaxed)
    }

    /// How many calls were refused with [`BackendError::CircuitOpen`] without reaching the backend.
    ///
    /// # Example
    /// ```
    /// let breaker = cache_backends::circuit_breaker(cache_core::MemoryBackend::builder().build());
    /// assert_eq!(breaker.layer().rejected(), 0);
    /// ```
    pub fn rejected(&self) -> u64 {
        self.rejected.load(Ordering::Relaxed)
    }

    fn now_ms(&self) -> u64 {
        // +1 keeps 0 free to mean "closed".
        u64::try_from(self.epoch.elapsed().as_millis())
            .unwrap_or(u64::MAX - 1)
            .saturating_add(1)
    }

    fn cooldown_ms(&self) -> u64 {
        u64::try_from(self.cooldown.as_millis()).unwrap_or(u64::MAX)
    }

    fn admit(&self) -> Result<(Admission, Option<ProbeSlot<'_>>), BackendError> {
        let opened = self.opened_at.load(Ordering::Acquire);
        if opened == 0 {
            return Ok((Admission::Normal, None));
        }
        if self.now_ms().saturating_sub(opened) >= self.cooldown_ms()
            && self
                .probe_in_flight
                .compare_exchange(false, true, Ordering::AcqRel, Ordering::Acquire)
                .is_ok()
        {
            tracing::debug!("circuit breaker half-open: probing");
            report_state(BreakerState::HalfOpen);
            return Ok((
                Admission::Probe,
                Some(ProbeSlot {
                    flag: &self.probe_in_flight,
                }),
            ));
        }
        self.rejected.fetch_add(1, Ordering::Relaxed);
        Err(BackendError::CircuitOpen)
    }

    fn on_success(&self) {
        // Read before writing: on the healthy path nothing changes, and an unconditional write would move these
        // cache lines between cores on every call.
        if self.consecutive_failures.load(Ordering::Relaxed) != 0 {
            self.consecutive_failures.store(0, Ordering::Relaxed);
        }
        // Any answer from the backend proves it is reachable, so an in-flight call that started before the breaker
        // opened may close it too.
        if self.opened_at.load(Ordering::Acquire) != 0
            && self.opened_at.swap(0, Ordering::AcqRel) != 0
        {
            tracing::info!("circuit breaker closed: backend answers again");
            report_state(BreakerState::Closed);
        }
    }

    fn on_failure(&self, admission: Admission, error: &BackendError) {
        let failures = self
            .consecutive_failures
            .fetch_add(1, Ordering::Relaxed)
            .saturating_add(1);
        match admission {
            Admission::Probe => {
                self.opened_at.store(self.now_ms(), Ordering::Release);
                report_state(BreakerState::Open);
                tracing::debug!(
                        %error,
                    "circuit breaker probe failed; staying open"
                );
            }
            Admission::Normal if failures >= self.threshold => {
                if self
                    .opened_at
                    .compare_exchange(0, self.now_ms(), Ordering::AcqRel, Ordering::Acquire)
                    .is_ok()
                {
                    self.opens.fetch_add(1, Ordering::Relaxed);
                    report_state(BreakerState::Open);
                    tracing::warn!(
                                failures,
                        cooldown = ?self.cooldown,
                        %error,
                        "circuit breaker open: failing fast"
                    );
                }
            }
            Admission::Normal => {}
        }
    }

    async fn call<T, F>(&self, op: F) -> Result<T, BackendError>
    where
        F: std::future::Future<Output = Result<T, BackendError>>,
    {
        let (admission, _slot) = self.admit()?;
        let result = op.await;
        match &result {
            Err(error) if counts_as_failure(error) => self.on_failure(admission, error),
            _ => self.on_success(),
        }
        result
    }
}

fn counts_as_failure(error: &BackendError) -> bool {
    !matches!(
        error,
        BackendError::Invalid(_) | BackendError::WrongType(_) | BackendError::Unsupported { .. }
    )
}

impl BackendLayer for Breaker {
    /// A breaker neither rewrites keys nor needs to see local hits: the cache may serve a client-side tier's
    /// copies through it.
    fn passes_local_copies(&self) -> bool {
        true
    }

    fn around<'a, T: Send + 'a>(
        &'a self,
        _op: Op,
        call: impl std::future::Future<Output = Result<T, BackendError>> + Send + 'a,
    ) -> impl std::future::Future<Output = Result<T, BackendError>> + Send + 'a {
        self.call(call)
    }
}

/// With the `metrics` feature: the gauge `cache_breaker_state` (0 closed, 1 half-open, 2 open) after each
/// transition. One series per process: with several breakers, it shows the last transition of any of them.
fn report_state(state: BreakerState) {
    #[cfg(feature = "metrics")]
    metrics::gauge!("cache_breaker_state").set(match state {
        BreakerState::Closed => 0.0,
        BreakerState::HalfOpen => 1.0,
        BreakerState::Open => 2.0,
    });
    #[cfg(not(feature = "metrics"))]
    let _ = state;
}

#[cfg(test)]
mod tests {
    use super::*;
    use async_trait::async_trait;
    use bytes::Bytes;
    use cache_core::{Capabilities, KeyTtl, SetMode};
    use std::sync::atomic::AtomicUsize;
    use std::sync::Arc;

    /// A backend whose health the test flips; counts the calls that reached it.
    #[derive(Default)]
    struct Flaky {
        down: AtomicBool,
        calls: AtomicUsize,
        hang: AtomicBool,
    }

    /// The breaker owns its backend; the test keeps another handle to flip the health.
    struct Handle(Arc<Flaky>);

    impl std::ops::Deref for Handle {
        type Target = Flaky;
        fn deref(&self) -> &Flaky {
            &self.0
        }
    }

    impl Flaky {
        fn result<T>(&self, ok: T) -> Result<T, BackendError> {
            self.calls.fetch_add(1, Ordering::SeqCst);
            if self.down.load(Ordering::SeqCst) {
                Err(BackendError::Connection("refused".into()))
            } else {
                Ok(ok)
            }
        }
    }

    #[async_trait]
    impl Backend for Handle {
        async fn get(&self, _key: &str) -> Result<Option<Bytes>, BackendError> {
            if self.hang.load(Ordering::SeqCst) {
                std::future::pending::<()>().await;
            }
            self.result(None)
        }
        async fn get_many(&self, keys: &[&str]) -> Result<Vec<Option<Bytes>>, BackendError> {
            self.result(vec![None; keys.len()])
        }
        async fn set(
            &self,
            _key: &str,
            _value: Bytes,
            _ttl: Option<Duration>,
            _mode: SetMode,
        ) -> Result<bool, BackendError> {
            self.result(true)
        }
        async fn set_many(
            &self,
            _entries: &[(&str, Bytes)],
            _ttl: Option<Duration>,
        ) -> Result<(), BackendError> {
            self.result(())
        }
        async fn delete(&self, _key: &str) -> Result<bool, BackendError> {
            self.result(false)
        }
        async fn delete_many(&self, _keys: &[&str]) -> Result<u64, BackendError> {
            self.result(0)
        }
        async fn delete_match(&self, _pattern: &str) -> Result<u64, BackendError> {
            self.result(0)
        }
        async fn scan(&self, _pattern: &str) -> Result<Vec<String>, BackendError> {
            self.result(Vec::new())
        }
        async fn incr(
            &self,
            _key: &str,
            _by: i64,
            _ttl: Option<Duration>,
        ) -> Result<i64, BackendError> {
            self.calls.fetch_add(1, Ordering::SeqCst);
            Err(BackendError::WrongType("not an integer".into()))
        }
        async fn expire(&self, _key: &str, _ttl: Duration) -> Result<bool, BackendError> {
            self.result(false)
        }
        async fn ttl(&self, _key: &str) -> Result<KeyTtl, BackendError> {
            self.result(KeyTtl::Missing)
        }
        async fn unlock(&self, _key: &str, _token: &[u8]) -> Result<bool, BackendError> {
            self.result(false)
        }
        async fn ping(&self) -> Result<(), BackendError> {
            self.result(())
        }
        async fn clear(&self) -> Result<(), BackendError> {
            self.result(())
        }
        fn capabilities(&self) -> Capabilities {
            Capabilities::all()
        }
    }

    fn breaker(flaky: &Arc<Flaky>, cooldown_ms: u64) -> CircuitBreaker<Handle> {
        Breaker::builder()
            .failure_threshold(3)
            .cooldown(Duration::from_millis(cooldown_ms))
            .wrap(Handle(Arc::clone(flaky)))
    }

    #[tokio::test]
    async fn opens_after_threshold_and_fails_fast() {
        let flaky = Arc::new(Flaky::default());
        let b = breaker(&flaky, 60_000);
        flaky.down.store(true, Ordering::SeqCst);
        for _ in 0..3 {
            assert!(matches!(b.get("k").await, Err(BackendError::Connection(_))));
        }
        assert_eq!(b.layer().state(), BreakerState::Open);
        assert_eq!(b.layer().opens(), 1);
        for _ in 0..10 {
            assert!(matches!(b.get("k").await, Err(BackendError::CircuitOpen)));
        }
        assert_eq!(
            flaky.calls.load(Ordering::SeqCst),
            3,
            "open breaker must not call the backend"
        );
        assert_eq!(b.layer().rejected(), 10);
    }

    #[tokio::test]
    async fn success_resets_the_failure_count() {
        let flaky = Arc::new(Flaky::default());
        let b = breaker(&flaky, 60_000);
        for _ in 0..5 {
            flaky.down.store(true, Ordering::SeqCst);
            let _ = b.get("k").await;
            let _ = b.get("k").await;
            flaky.down.store(false, Ordering::SeqCst);
            b.get("k").await.ok();
        }
        assert_eq!(b.layer().state(), BreakerState::Closed);
        assert_eq!(b.layer().opens(), 0);
    }

    #[tokio::test]
    async fn half_open_probe_closes_on_success_and_reopens_on_failure() {
        let flaky = Arc::new(Flaky::default());
        let b = breaker(&flaky, 50);
        flaky.down.store(true, Ordering::SeqCst);
        for _ in 0..3 {
            let _ = b.ping().await;
        }
        assert_eq!(b.layer().state(), BreakerState::Open);
        tokio::time::sleep(Duration::from_millis(70)).await;
        assert_eq!(b.layer().state(), BreakerState::HalfOpen);
        // Failed probe: open for another cooldown.
        assert!(matches!(b.ping().await, Err(BackendError::Connection(_))));
        assert_eq!(b.layer().state(), BreakerState::Open);
        assert!(matches!(b.ping().await, Err(BackendError::CircuitOpen)));
        tokio::time::sleep(Duration::from_millis(70)).await;
        flaky.down.store(false, Ordering::SeqCst);
        b.ping().await.ok();
        assert_eq!(b.layer().state(), BreakerState::Closed);
        assert_eq!(b.layer().opens(), 1, "a failed probe is not a new opening");
    }

    #[tokio::test]
    async fn only_one_probe_at_a_time_and_cancelled_probe_frees_the_slot() {
        let flaky = Arc::new(Flaky::default());
        let b = Arc::new(breaker(&flaky, 10));
        flaky.down.store(true, Ordering::SeqCst);
        for _ in 0..3 {
            let _ = b.get("k").await;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
        flaky.hang.store(true, Ordering::SeqCst);
        let probing = {
            let b = Arc::clone(&b);
            tokio::spawn(async move { b.get("k").await })
        };
        tokio::time::sleep(Duration::from_millis(20)).await;
        assert!(matches!(b.get("k").await, Err(BackendError::CircuitOpen)));
        probing.abort();
        let _ = probing.await;
        flaky.hang.store(false, Ordering::SeqCst);
        flaky.down.store(false, Ordering::SeqCst);
        assert!(
            b.get("k").await.is_ok(),
            "the slot of a cancelled probe is free again"
        );
        assert_eq!(b.layer().state(), BreakerState::Closed);
    }

    #[tokio::test]
    async fn answers_from_a_healthy_backend_do_not_count() {
        let flaky = Arc::new(Flaky::default());
        let b = breaker(&flaky, 60_000);
        for _ in 0..10 {
            assert!(matches!(
                b.incr("k", 1, None).await,
                Err(BackendError::WrongType(_))
            ));
        }
        assert_eq!(b.layer().state(), BreakerState::Closed);
    }
}
