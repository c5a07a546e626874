//! Locks shared by every process using a backend (cashews `cache.lock`, `@locked`): a named mutex with a TTL, so a
//! holder that dies frees it when the TTL passes.
//!
//! A lock is a key holding a random token, taken with `SET NX` and released with compare-and-delete, so a holder
//! whose lock expired and was taken by someone else never releases the new holder's lock.

use std::future::{Future, IntoFuture};
use std::pin::Pin;
use std::time::{Duration, Instant};

use crate::backend::{Capabilities, CasOutcome};
use crate::cache::Cache;
use crate::error::CacheError;
use crate::strategy::lock::HeldLock;

/// The lock was held by another caller: at once for [`Cache::try_lock`] and `#[locked(wait = false)]`, or for the
/// whole timeout of [`Cache::lock`].
///
/// `#[locked]` functions return it as their error: their error type implements `From<Locked>`.
///
/// ```
/// let e = cache_core::Locked { key: "job".into(), waited: std::time::Duration::ZERO };
/// assert_eq!(e.to_string(), "lock \"job\" is held by another caller");
/// ```
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("lock {key:?} is held by another caller{}", waited_for(*.waited))]
pub struct Locked {
    /// The lock's key.
    pub key: String,
    /// How long the caller waited for it (zero when it did not wait).
    pub waited: Duration,
}

fn waited_for(waited: Duration) -> String {
    if waited.is_zero() {
        String::new()
    } else {
        format!(" (waited {waited:?})")
    }
}

/// A lock taken with [`Cache::lock`] or [`Cache::try_lock`]. Dropping it releases the lock (compare-and-delete,
/// in a spawned task when dropped inside a Tokio runtime, including when its holder panics or is cancelled);
/// [`LockGuard::release`] releases it now and says whether it was still held.
///
/// ```
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() {
/// let cache = cache_core::Cache::memory();
/// let guard = cache.try_lock("job", std::time::Duration::from_secs(30)).await.unwrap().unwrap();
/// assert!(cache.try_lock("job", std::time::Duration::from_secs(30)).await.unwrap().is_none());
/// assert!(guard.release().await.unwrap());
/// assert!(cache.try_lock("job", std::time::Duration::from_secs(30)).await.unwrap().is_some());
/// # }
/// ```
#[must_use = "dropping the guard releases the lock at once"]
pub struct LockGuard {
    held: HeldLock,
}

impl std::fmt::Debug for LockGuard {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LockGuard")
            .field("key", &self.held.key())
            .finish_non_exhaustive()
    }
}

impl LockGuard {
    /// The lock's key.
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() {
    /// let cache = cache_core::Cache::memory();
    /// let guard = cache.try_lock("job", std::time::Duration::from_secs(5)).await.unwrap().unwrap();
    /// assert_eq!(guard.key(), "job");
    /// # }
    /// ```
    pub fn key(&self) -> &str {
        self.held.key()
    }

    /// The random token the lock's key holds while this guard owns it.
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() {
    /// let cache = cache_core::Cache::memory();
    /// let guard = cache.try_lock("job", std::time::Duration::from_secs(5)).await.unwrap().unwrap();
    /// assert_eq!(guard.token().len(), 32);
    /// # }
    /// ```
    pub fn token(&self) -> &str {
        self.held.token().unwrap_or_default()
    }

    /// Gives the lock a new TTL from now, if this guard still holds it (compare-and-set: a lock that expired and
    /// was taken by another caller is left alone). Returns whether it did. Needs a backend with compare-and-set.
    ///
    /// ```
    /// use std::time::Duration;
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() {
    /// let cache = cache_core::Cache::memory();
    /// let guard = cache.try_lock("job", Duration::from_millis(50)).await.unwrap().unwrap();
    /// assert!(guard.extend(Duration::from_secs(30)).await.unwrap());
    /// tokio::time::sleep(Duration::from_millis(100)).await;
    /// assert!(cache.try_lock("job", Duration::from_secs(1)).await.unwrap().is_none(), "still held");
    /// # }
    /// ```
    pub async fn extend(&self, ttl: Duration) -> Result<bool, CacheError> {
        let key = self.held.key();
        let Some(token) = self.held.token() else {
            return Ok(false);
        };
        let cache = self.held.cache();
        let backend = cache.backend_for(key);
        if !backend.capabilities().contains(Capabilities::CAS) {
            return Err(backend.unsupported(Capabilities::CAS).into());
        }
        // Two holders never race here: only the token's owner gets past the comparison, and a CAS conflict means
        // the key changed hands (or expired) in between, which is "not held" too.
        let Some((value, cas)) = backend
            .gets(key)
            .await
            .inspect_err(|e| cache.note_backend_error("extend", key, e))?
        else {
            return Ok(false);
        };
        if value.as_ref() != token.as_bytes() {
            return Ok(false);
        }
        let outcome = backend
            .cas(key, value, cas, Some(ttl))
            .await
            .inspect_err(|e| cache.note_backend_error("extend", key, e))?;
        Ok(outcome == CasOutcome::Stored)
    }

    /// Releases the lock now. Returns whether this guard still held it (`false`: it had expired, and may have
    /// been taken by another caller, whose lock stays).
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() {
    /// let cache = cache_core::Cache::memory();
    /// let guard = cache.try_lock("job", std::time::Duration::from_secs(5)).await.unwrap().unwrap();
    /// assert!(guard.release().await.unwrap());
    /// # }
    /// ```
    pub async fn release(self) -> Result<bool, CacheError> {
        self.held.release_checked().await
    }
}

/// The future of [`Cache::lock`]: waits for the lock, polling, up to its timeout (by default the lock's TTL, the
/// longest a dead holder can keep it).
///
/// ```
/// use std::time::Duration;
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() {
/// let cache = cache_core::Cache::memory();
/// let held = cache.lock("job", Duration::from_secs(30)).await.unwrap();
/// let waited = cache.lock("job", Duration::from_secs(30)).timeout(Duration::from_millis(100)).await;
/// assert!(matches!(waited, Err(cache_core::CacheError::Locked(_))));
/// drop(held);
/// # }
/// ```
#[must_use = "a lock request does nothing until awaited"]
pub struct LockRequest<'a> {
    cache: &'a Cache,
    key: &'a str,
    ttl: Duration,
    timeout: Duration,
    poll: Duration,
}

impl LockRequest<'_> {
    /// Waits at most `timeout` for the lock; then the request fails with [`CacheError::Locked`].
    ///
    /// ```
    /// # use std::time::Duration;
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() {
    /// let cache = cache_core::Cache::memory();
    /// let guard = cache.lock("job", Duration::from_secs(5)).timeout(Duration::from_secs(1)).await.unwrap();
    /// # drop(guard);
    /// # }
    /// ```
    pub fn timeout(mut self, timeout: Duration) -> Self {
        self.timeout = timeout;
        self
    }

    /// Checks the lock every `poll` while waiting (default 50 ms; each check is one backend call).
    ///
    /// ```
    /// # use std::time::Duration;
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() {
    /// let cache = cache_core::Cache::memory();
    /// let guard = cache.lock("job", Duration::from_secs(5)).poll(Duration::from_millis(5)).await.unwrap();
    /// # drop(guard);
    /// # }
    /// ```
    pub fn poll(mut self, poll: Duration) -> Self {
        self.poll = poll.max(Duration::from_millis(1));
        self
    }
}

impl<'a> IntoFuture for LockRequest<'a> {
    type Output = Result<LockGuard, CacheError>;
    type IntoFuture = Pin<Box<dyn Future<Output = Self::Output> + Send + 'a>>;

    fn into_future(self) -> Self::IntoFuture {
        Box::pin(async move {
            let started = Instant::now();
            loop {
                if let Some(guard) = self.cache.try_lock(self.key, self.ttl).await? {
                    return Ok(guard);
                }
                let waited = started.elapsed();
                if waited >= self.timeout {
                    return Err(CacheError::Locked(Locked {
                        key: self.key.to_owned(),
                        waited,
                    }));
                }
                tokio::time::sleep(self.poll.min(self.timeout - waited)).await;
            }
        })
    }
}

impl Cache {
    /// Takes the lock `key` for `ttl`, waiting while another caller (in any process sharing the backend) holds
    /// it — by default up to `ttl`, see [`LockRequest::timeout`]. Fails with [`CacheError::Locked`] when the wait
    /// times out, and with the backend's error when it fails (a backend without compare-and-delete refuses with
    /// [`BackendError::Unsupported`](crate::BackendError::Unsupported) before writing anything).
    ///
    /// ```
    /// use std::time::Duration;
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() {
    /// let cache = cache_core::Cache::memory();
    /// let guard = cache.lock("nightly-report", Duration::from_secs(60)).await.unwrap();
    /// // ... only one caller at a time gets here ...
    /// guard.release().await.unwrap();
    /// # }
    /// ```
    pub fn lock<'a>(&'a self, key: &'a str, ttl: Duration) -> LockRequest<'a> {
        LockRequest {
            cache: self,
            key,
            ttl,
            timeout: ttl,
            poll: Duration::from_millis(50),
        }
    }

    /// Takes the lock `key` for `ttl` if nobody holds it; `Ok(None)` if somebody does.
    ///
    /// ```
    /// use std::time::Duration;
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() {
    /// let cache = cache_core::Cache::memory();
    /// let first = cache.try_lock("job", Duration::from_secs(5)).await.unwrap();
    /// assert!(first.is_some());
    /// assert!(cache.try_lock("job", Duration::from_secs(5)).await.unwrap().is_none());
    /// # }
    /// ```
    pub async fn try_lock(
        &self,
        key: &str,
        ttl: Duration,
    ) -> Result<Option<LockGuard>, CacheError> {
        Ok(HeldLock::acquire(self, key.to_owned(), ttl)
            .await?
            .map(|held| LockGuard { held }))
    }
}
