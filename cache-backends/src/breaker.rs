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

use async_trait::async_trait;
use bytes::Bytes;
use cache_core::{Backend, BackendError, Capabilities, KeyTtl, SetMode};

/// Consecutive failures that open the breaker unless configured otherwise.
pub const DEFAULT_FAILURE_THRESHOLD: u32 = 5;
/// How long an open breaker rejects calls before it lets a probe through, unless configured otherwise.
pub const DEFAULT_COOLDOWN: Duration = Duration::from_secs(1);

/// The state a [`CircuitBreaker`] is in.
///
/// # Example
/// ```
/// use cache_backends::{BreakerState, CircuitBreaker};
/// use cache_core::MemoryBackend;
///
/// let breaker = CircuitBreaker::new(MemoryBackend::builder().max_entries(10).build());
/// assert_eq!(breaker.state(), BreakerState::Closed);
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

/// Wraps a [`Backend`] and fails fast while it is unhealthy. See the [module docs](self) for the states.
///
/// # Example
/// ```
/// use std::time::Duration;
/// use cache_backends::CircuitBreaker;
/// use cache_core::{Backend, MemoryBackend};
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), cache_core::BackendError> {
/// let backend = CircuitBreaker::builder()
///     .failure_threshold(3)
///     .cooldown(Duration::from_millis(500))
///     .wrap(MemoryBackend::builder().max_entries(1_000).build());
/// backend.set("k", "v".into(), None, Default::default()).await?;
/// assert_eq!(backend.opens(), 0);
/// # Ok(()) }
/// ```
pub struct CircuitBreaker<B> {
    inner: B,
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

impl<B> std::fmt::Debug for CircuitBreaker<B> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CircuitBreaker")
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
/// use cache_backends::CircuitBreaker;
/// use cache_core::MemoryBackend;
///
/// let breaker = CircuitBreaker::builder()
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
    /// let builder = cache_backends::CircuitBreaker::builder().failure_threshold(3);
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
    /// let builder = cache_backends::CircuitBreaker::builder().cooldown(std::time::Duration::from_secs(5));
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
    /// let breaker = cache_backends::CircuitBreaker::builder().wrap(MemoryBackend::builder().build());
    /// # let _ = breaker;
    /// ```
    pub fn wrap<B: Backend>(self, backend: B) -> CircuitBreaker<B> {
        CircuitBreaker {
            inner: backend,
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

impl<B: Backend> CircuitBreaker<B> {
    /// Wraps `backend` with the default settings (5 failures, 1 s cooldown).
    ///
    /// # Example
    /// ```
    /// use cache_core::MemoryBackend;
    /// let breaker = cache_backends::CircuitBreaker::new(MemoryBackend::builder().build());
    /// # let _ = breaker;
    /// ```
    pub fn new(backend: B) -> Self {
        CircuitBreakerBuilder::default().wrap(backend)
    }
}

// A concrete impl so `CircuitBreaker::builder()` needs no type annotation (like `HashMap::new`).
impl CircuitBreaker<()> {
    /// Starts configuring a breaker; [`CircuitBreakerBuilder::wrap`] picks the backend type.
    ///
    /// # Example
    /// ```
    /// let builder = cache_backends::CircuitBreaker::builder();
    /// # let _ = builder;
    /// ```
    pub fn builder() -> CircuitBreakerBuilder {
        CircuitBreakerBuilder::default()
    }
}

impl<B> CircuitBreaker<B> {
    /// The wrapped backend.
    ///
    /// # Example
    /// ```
    /// use cache_core::{Backend, MemoryBackend};
    /// let breaker = cache_backends::CircuitBreaker::new(MemoryBackend::builder().build());
    /// assert_eq!(breaker.inner().name(), "memory");
    /// ```
    pub fn inner(&self) -> &B {
        &self.inner
    }

    /// The current state.
    ///
    /// # Example
    /// ```
    /// use cache_backends::{BreakerState, CircuitBreaker};
    /// let breaker = CircuitBreaker::new(cache_core::MemoryBackend::builder().build());
    /// assert_eq!(breaker.state(), BreakerState::Closed);
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
    /// let breaker = cache_backends::CircuitBreaker::new(cache_core::MemoryBackend::builder().build());
    /// assert_eq!(breaker.opens(), 0);
    /// ```
    pub fn opens(&self) -> u64 {
        self.opens.load(Ordering::Relaxed)
    }

    /// How many calls were refused with [`BackendError::CircuitOpen`] without reaching the backend.
    ///
    /// # Example
    /// ```
    /// let breaker = cache_backends::CircuitBreaker::new(cache_core::MemoryBackend::builder().build());
    /// assert_eq!(breaker.rejected(), 0);
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
            tracing::debug!(
                backend = std::any::type_name::<B>(),
                "circuit breaker half-open: probing"
            );
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
            tracing::info!(
                backend = std::any::type_name::<B>(),
                "circuit breaker closed: backend answers again"
            );
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
                tracing::debug!(
                    backend = std::any::type_name::<B>(),
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
                    tracing::warn!(
                        backend = std::any::type_name::<B>(),
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

#[async_trait]
impl<B: Backend> Backend for CircuitBreaker<B> {
    async fn get(&self, key: &str) -> Result<Option<Bytes>, BackendError> {
        self.call(self.inner.get(key)).await
    }

    async fn get_many(&self, keys: &[&str]) -> Result<Vec<Option<Bytes>>, BackendError> {
        self.call(self.inner.get_many(keys)).await
    }

    async fn set(
        &self,
        key: &str,
        value: Bytes,
        ttl: Option<Duration>,
        mode: SetMode,
    ) -> Result<bool, BackendError> {
        self.call(self.inner.set(key, value, ttl, mode)).await
    }

    async fn set_many(
        &self,
        entries: &[(&str, Bytes)],
        ttl: Option<Duration>,
    ) -> Result<(), BackendError> {
        self.call(self.inner.set_many(entries, ttl)).await
    }

    async fn delete(&self, key: &str) -> Result<bool, BackendError> {
        self.call(self.inner.delete(key)).await
    }

    async fn delete_many(&self, keys: &[&str]) -> Result<u64, BackendError> {
        self.call(self.inner.delete_many(keys)).await
    }

    async fn delete_match(&self, pattern: &str) -> Result<u64, BackendError> {
        self.call(self.inner.delete_match(pattern)).await
    }

    async fn scan(&self, pattern: &str) -> Result<Vec<String>, BackendError> {
        self.call(self.inner.scan(pattern)).await
    }

    async fn incr(&self, key: &str, by: i64, ttl: Option<Duration>) -> Result<i64, BackendError> {
        self.call(self.inner.incr(key, by, ttl)).await
    }

    async fn expire(&self, key: &str, ttl: Duration) -> Result<bool, BackendError> {
        self.call(self.inner.expire(key, ttl)).await
    }

    async fn ttl(&self, key: &str) -> Result<KeyTtl, BackendError> {
        self.call(self.inner.ttl(key)).await
    }

    async fn unlock(&self, key: &str, token: &[u8]) -> Result<bool, BackendError> {
        self.call(self.inner.unlock(key, token)).await
    }

    async fn ping(&self) -> Result<(), BackendError> {
        self.call(self.inner.ping()).await
    }

    async fn clear(&self) -> Result<(), BackendError> {
        self.call(self.inner.clear()).await
    }

    async fn set_add(
        &self,
        key: &str,
        members: &[&str],
        ttl: Option<Duration>,
    ) -> Result<(), BackendError> {
        self.call(self.inner.set_add(key, members, ttl)).await
    }

    async fn set_members(&self, key: &str) -> Result<Vec<String>, BackendError> {
        self.call(self.inner.set_members(key)).await
    }

    async fn set_remove(&self, key: &str, members: &[&str]) -> Result<u64, BackendError> {
        self.call(self.inner.set_remove(key, members)).await
    }

    fn name(&self) -> &'static str {
        self.inner.name()
    }

    fn capabilities(&self) -> Capabilities {
        self.inner.capabilities()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
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
        CircuitBreaker::builder()
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
        assert_eq!(b.state(), BreakerState::Open);
        assert_eq!(b.opens(), 1);
        for _ in 0..10 {
            assert!(matches!(b.get("k").await, Err(BackendError::CircuitOpen)));
        }
        assert_eq!(
            flaky.calls.load(Ordering::SeqCst),
            3,
            "open breaker must not call the backend"
        );
        assert_eq!(b.rejected(), 10);
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
        assert_eq!(b.state(), BreakerState::Closed);
        assert_eq!(b.opens(), 0);
    }

    #[tokio::test]
    async fn half_open_probe_closes_on_success_and_reopens_on_failure() {
        let flaky = Arc::new(Flaky::default());
        let b = breaker(&flaky, 50);
        flaky.down.store(true, Ordering::SeqCst);
        for _ in 0..3 {
            let _ = b.ping().await;
        }
        assert_eq!(b.state(), BreakerState::Open);
        tokio::time::sleep(Duration::from_millis(70)).await;
        assert_eq!(b.state(), BreakerState::HalfOpen);
        // Failed probe: open for another cooldown.
        assert!(matches!(b.ping().await, Err(BackendError::Connection(_))));
        assert_eq!(b.state(), BreakerState::Open);
        assert!(matches!(b.ping().await, Err(BackendError::CircuitOpen)));
        tokio::time::sleep(Duration::from_millis(70)).await;
        flaky.down.store(false, Ordering::SeqCst);
        b.ping().await.ok();
        assert_eq!(b.state(), BreakerState::Closed);
        assert_eq!(b.opens(), 1, "a failed probe is not a new opening");
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
        assert_eq!(b.state(), BreakerState::Closed);
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
        assert_eq!(b.state(), BreakerState::Closed);
    }
}
