//! Factory timeouts (FusionCache's soft and hard timeouts): a slow recomputation does not hold callers up when a
//! stale value can serve them, and never holds them longer than a hard limit.
//!
//! The recomputation runs as its own task, so a caller that stops waiting does not cancel it: it finishes in the
//! background and stores its result for the next caller (FusionCache's background completion).

use std::future::Future;
use std::time::{Duration, Instant};

use super::{cached_with, soft, Options};
use crate::cache::Cache;
use crate::context::{self, Ops};
use crate::shape::{Plain, Shape, Storable};

/// How long callers wait for a recomputation before they give up on it (see [`Cache::get_or_set_timed`]).
///
/// ```
/// use cache_core::strategy::FactoryTimeouts;
/// use std::time::Duration;
/// let t = FactoryTimeouts::default()
///     .soft(Duration::from_millis(100))
///     .hard(Duration::from_secs(2));
/// assert_eq!(t.soft, Some(Duration::from_millis(100)));
/// ```
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct FactoryTimeouts {
    /// With a stale value at hand: wait this long for the recomputation, then serve the stale value. Without one,
    /// it does nothing (there is nothing else to serve).
    pub soft: Option<Duration>,
    /// Wait at most this long, stale value or not; then the caller gets [`FactoryTimedOut`].
    pub hard: Option<Duration>,
}

impl FactoryTimeouts {
    /// Sets the soft timeout.
    ///
    /// ```
    /// # use cache_core::strategy::FactoryTimeouts;
    /// # use std::time::Duration;
    /// assert!(FactoryTimeouts::default().soft(Duration::from_millis(50)).soft.is_some());
    /// ```
    pub fn soft(mut self, after: Duration) -> Self {
        self.soft = Some(after);
        self
    }

    /// Sets the hard timeout.
    ///
    /// ```
    /// # use cache_core::strategy::FactoryTimeouts;
    /// # use std::time::Duration;
    /// assert!(FactoryTimeouts::default().hard(Duration::from_secs(1)).hard.is_some());
    /// ```
    pub fn hard(mut self, after: Duration) -> Self {
        self.hard = Some(after);
        self
    }
}

/// A caller waited for a recomputation as long as its hard timeout allowed and had no value to return. The
/// recomputation goes on in the background and stores its result.
///
/// ```
/// let e = cache_core::strategy::FactoryTimedOut(std::time::Duration::from_secs(1));
/// assert_eq!(e.to_string(), "computing the value took longer than the hard timeout (1s)");
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("computing the value took longer than the hard timeout ({0:?})")]
pub struct FactoryTimedOut(pub Duration);

impl Cache {
    /// [`soft`](crate::strategy::soft) caching with factory timeouts: a value younger than `soft_ttl` is served;
    /// an older one (kept until `ttl`) is recomputed, and while that runs the caller waits at most
    /// `timeouts.soft` before it is served the stale value, and at most `timeouts.hard` in any case. The
    /// recomputation runs on its own task in the current [`context`] scope (so callers that stop waiting do not
    /// cancel it) and stores its result when it finishes; concurrent callers share one recomputation.
    ///
    /// ```
    /// use cache_core::{strategy::FactoryTimeouts, Cache};
    /// use std::time::Duration;
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() {
    /// let cache = Cache::memory();
    /// let limits = FactoryTimeouts::default().soft(Duration::from_millis(100));
    /// let hour = Duration::from_secs(3600);
    /// let v = cache.get_or_set_timed("rates", hour, Duration::ZERO, limits, || async { 1u32 }).await;
    /// assert_eq!(v, Ok(1));
    /// // Past its soft ttl and the recomputation is slow: the stale value after 100 ms.
    /// let slow = || async {
    ///     tokio::time::sleep(Duration::from_secs(5)).await;
    ///     2u32
    /// };
    /// assert_eq!(cache.get_or_set_timed("rates", hour, Duration::ZERO, limits, slow).await, Ok(1));
    /// # }
    /// ```
    pub async fn get_or_set_timed<T, F, Fut>(
        &self,
        key: &str,
        ttl: Duration,
        soft_ttl: Duration,
        timeouts: FactoryTimeouts,
        compute: F,
    ) -> Result<T, FactoryTimedOut>
    where
        T: Storable,
        F: FnOnce() -> Fut,
        Fut: Future<Output = T> + Send + 'static,
    {
        timed(
            Plain,
            self,
            key.to_owned(),
            Options::ttl(Some(ttl)),
            Some(soft_ttl),
            timeouts,
            compute(),
        )
        .await
    }

    /// The stored value of `key`, stale or not, if the current scope may read it (reads enabled, young enough
    /// for its `max_age`). A failed read is `None`: the caller keeps waiting for the recomputation.
    async fn stale_value<T: serde::de::DeserializeOwned>(&self, key: &str) -> Option<T> {
        if context::is_disabled(Ops::GET) {
            return None;
        }
        let max_age = context::flags().max_age;
        match self.read_entry::<T>(key).await {
            Ok(Some((meta, value))) if max_age.is_none_or(|max| meta.age() < max) => Some(value),
            _ => None,
        }
    }
}

/// [`cached_with`](super::cached_with) (or, with a `soft_ttl`, [`soft`](super::soft)) with factory timeouts, for
/// any [`Shape`]: see [`Cache::get_or_set_timed`]. The `#[cached(soft_timeout = …, hard_timeout = …)]` strategy.
///
/// ```
/// use cache_core::{shape::OkOnly, strategy::{self, FactoryTimeouts, FactoryTimedOut, Options}, Cache};
/// use std::time::Duration;
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() {
/// let cache = Cache::memory();
/// let limits = FactoryTimeouts::default().hard(Duration::from_millis(50));
/// let slow = async {
///     tokio::time::sleep(Duration::from_secs(5)).await;
///     Ok::<u8, ()>(1)
/// };
/// let out = strategy::timed(OkOnly, &cache, "k".into(), Options::ttl(None), None, limits, slow).await;
/// assert_eq!(out, Err(FactoryTimedOut(Duration::from_millis(50))));
/// # }
/// ```
pub async fn timed<S, Out, Fut>(
    shape: S,
    cache: &Cache,
    key: String,
    options: Options<Out>,
    soft_ttl: Option<Duration>,
    timeouts: FactoryTimeouts,
    body: Fut,
) -> Result<Out, FactoryTimedOut>
where
    S: Shape<Out> + Send + 'static,
    Out: Send + 'static,
    Fut: Future<Output = Out> + Send + 'static,
{
    let started = Instant::now();
    let task_cache = cache.clone();
    let task_key = key.clone();
    let mut task = context::spawn(async move {
        match soft_ttl {
            Some(soft_ttl) => soft(shape, &task_cache, task_key, options, soft_ttl, body).await,
            None => cached_with(shape, &task_cache, task_key, options, body).await,
        }
    });
    if let Some(soft_limit) = timeouts
        .soft
        .filter(|s| timeouts.hard.is_none_or(|h| *s < h))
    {
        if let Ok(joined) = tokio::time::timeout(soft_limit, &mut task).await {
            return finished(joined, started);
        }
        if let Some(stale) = cache.stale_value::<S::Stored>(&key).await {
            tracing::info!(
                key,
                ?soft_limit,
                "recomputation past its soft timeout; serving the stale value while it finishes"
            );
            return Ok(S::rebuild(stale));
        }
    }
    match timeouts.hard {
        Some(hard) => {
            let left = hard.saturating_sub(started.elapsed());
            match tokio::time::timeout(left, &mut task).await {
                Ok(joined) => finished(joined, started),
                Err(_) => {
                    tracing::warn!(
                        key,
                        ?hard,
                        "recomputation past its hard timeout; it finishes in the background"
                    );
                    Err(FactoryTimedOut(hard))
                }
            }
        }
        None => finished(task.await, started),
    }
}

/// The recomputation's output; a panic in it is the caller's panic, as if it had run inline.
fn finished<T>(
    joined: Result<T, tokio::task::JoinError>,
    started: Instant,
) -> Result<T, FactoryTimedOut> {
    match joined {
        Ok(value) => Ok(value),
        Err(error) if error.is_panic() => std::panic::resume_unwind(error.into_panic()),
        // Only a runtime shutting down cancels the task: the caller got no value within the time it waited.
        Err(error) => {
            tracing::warn!(%error, "recomputation cancelled by its runtime shutting down");
            Err(FactoryTimedOut(started.elapsed()))
        }
    }
}
