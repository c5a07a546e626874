//! Distributed single-flight (cashews `locked`): across processes sharing a backend, a cold key runs its body
//! once, guarded by a lock in the backend.

use std::future::Future;
use std::time::{Duration, Instant};

use rand::Rng;

use super::{encode_output, lookup, persist, served, Lookup, Options, Stored, CACHED, LOCK_SUFFIX};
use crate::backend::SetMode;
use crate::cache::Cache;
use crate::context;
use crate::error::CacheError;
use crate::shape::Shape;

/// The name [`detect`](crate::context::detect) reports for values a waiter of [`locked`] found stored.
pub const LOCKED: &str = "locked";

/// How [`locked`] waits for another process's computation.
///
/// ```
/// use cache_core::strategy::LockOptions;
/// use std::time::Duration;
/// let opts = LockOptions::new(Duration::from_secs(5)).wait(Duration::from_secs(2));
/// ```
#[derive(Debug, Clone, Copy)]
pub struct LockOptions {
    /// The lock's TTL: a holder that dies blocks the others at most this long.
    pub ttl: Duration,
    /// The longest a waiter waits before computing without the lock.
    pub wait: Duration,
    /// How often a waiter checks for the value.
    pub poll: Duration,
}

impl LockOptions {
    /// A lock that lives `ttl`; waiters wait up to `ttl` too and poll every 50 ms.
    pub fn new(ttl: Duration) -> Self {
        Self {
            ttl,
            wait: ttl,
            poll: Duration::from_millis(50),
        }
    }

    /// Sets the longest wait.
    pub fn wait(mut self, wait: Duration) -> Self {
        self.wait = wait;
        self
    }

    /// Sets the polling interval.
    pub fn poll(mut self, poll: Duration) -> Self {
        self.poll = poll;
        self
    }
}

fn new_token() -> String {
    let bytes: [u8; 16] = rand::rng().random();
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// Takes the lock at `lock_key` for `ttl`. Returns its token, or `None` if someone else holds it.
pub(crate) async fn acquire(
    cache: &Cache,
    lock_key: &str,
    ttl: Duration,
) -> Result<Option<String>, CacheError> {
    let token = new_token();
    let taken = cache
        .backend_for(lock_key)
        .set(lock_key, token.clone().into(), Some(ttl), SetMode::IfAbsent)
        .await
        .inspect_err(|e| cache.note_backend_error("lock", lock_key, e))?;
    Ok(taken.then_some(token))
}

/// Releases a lock if we still hold it (compare-and-delete). Failures are logged; the TTL frees it anyway.
pub(crate) async fn release(cache: &Cache, lock_key: &str, token: &str) {
    if let Err(e) = cache
        .backend_for(lock_key)
        .unlock(lock_key, token.as_bytes())
        .await
    {
        cache.note_backend_error("unlock", lock_key, &e);
    }
}

/// Like [`cached`](super::cached), but a miss is computed once across every process sharing the backend.
///
/// The first caller takes a lock next to the key (`SET NX` with a random token and `lock.ttl`), re-checks the
/// cache, runs `body`, stores and releases the lock (compare-and-delete). The others poll for the value every
/// `lock.poll`; when the lock vanishes without a value (its holder failed or died and the TTL passed) they race
/// for it again; after `lock.wait` they compute without it. A backend failure fails open.
///
/// ```
/// use cache_core::{strategy::{self, LockOptions, Options}, shape::Plain, Cache};
/// use std::time::Duration;
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() {
/// let cache = Cache::memory();
/// let lock = LockOptions::new(Duration::from_secs(5));
/// let v = strategy::locked(Plain, &cache, "report".into(), Options::ttl(None), lock, async { 42u32 }).await;
/// assert_eq!(v, 42);
/// # }
/// ```
pub async fn locked<S, Out, Fut>(
    _shape: S,
    cache: &Cache,
    key: String,
    options: Options<Out>,
    lock: LockOptions,
    body: Fut,
) -> Out
where
    S: Shape<Out>,
    Fut: Future<Output = Out>,
{
    let flags = context::flags();
    match lookup::<S, Out>(cache, &key, flags).await {
        Lookup::Hit(meta, value) => {
            served(cache, &key, CACHED, &meta, false, flags);
            return S::rebuild(value);
        }
        Lookup::Strict(out) => return out,
        Lookup::Miss { coalesce: false } => {
            // Fresh data was asked for: no waiting on others.
            return super::run_and_store::<S, Out, Fut>(cache, &key, &options, flags, body)
                .await
                .0;
        }
        Lookup::Miss { coalesce: true } => {}
    }
    let lock_key = format!("{key}{LOCK_SUFFIX}");
    let waiting_since = Instant::now();
    let token = loop {
        match acquire(cache, &lock_key, lock.ttl).await {
            Ok(Some(token)) => {
                // Another holder may have stored the value between our miss and our lock.
                if let Ok(Some((meta, value))) = cache.read_entry::<S::Stored>(&key).await {
                    release(cache, &lock_key, &token).await;
                    served(cache, &key, LOCKED, &meta, false, flags);
                    return S::rebuild(value);
                }
                break Some(token);
            }
            Ok(None) if waiting_since.elapsed() < lock.wait => {
                tokio::time::sleep(lock.poll).await;
                if let Ok(Some((meta, value))) = cache.read_entry::<S::Stored>(&key).await {
                    served(cache, &key, LOCKED, &meta, false, flags);
                    return S::rebuild(value);
                }
            }
            Ok(None) => {
                tracing::warn!(key, "gave up waiting for the lock; computing without it");
                break None;
            }
            Err(_) => break None,
        }
    };
    let started = Instant::now();
    let out = body.await;
    let bytes = encode_output::<S, Out>(cache, &key, &options, &out, started.elapsed());
    let stored = persist::<S, Out>(cache, &key, &options, flags, bytes).await;
    if let Some(token) = token {
        release(cache, &lock_key, &token).await;
    }
    match stored {
        Stored::Strict(strict) => strict,
        Stored::Bytes(_) => out,
    }
}

impl Cache {
    /// Takes a lock named `key` in the backend for `ttl` (`SET NX` with a random token). Returns the token to
    /// pass to [`Cache::unlock`], or `None` if it is held.
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() {
    /// let cache = cache_core::Cache::memory();
    /// let token = cache.lock("job", std::time::Duration::from_secs(5)).await.unwrap().unwrap();
    /// assert!(cache.lock("job", std::time::Duration::from_secs(5)).await.unwrap().is_none());
    /// assert!(cache.unlock("job", &token).await.unwrap());
    /// # }
    /// ```
    pub async fn lock(&self, key: &str, ttl: Duration) -> Result<Option<String>, CacheError> {
        acquire(self, key, ttl).await
    }

    /// Releases a lock taken with [`Cache::lock`] if `token` still holds it. Returns whether it did.
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() {
    /// let cache = cache_core::Cache::memory();
    /// assert!(!cache.unlock("job", "not-mine").await.unwrap());
    /// # }
    /// ```
    pub async fn unlock(&self, key: &str, token: &str) -> Result<bool, CacheError> {
        Ok(self
            .backend_for(key)
            .unlock(key, token.as_bytes())
            .await
            .inspect_err(|e| self.note_backend_error("unlock", key, e))?)
    }
}
