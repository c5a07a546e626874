//! Distributed single-flight (cashews `locked`): across processes sharing a backend, a cold key runs its body
//! once, guarded by a lock in the backend.

use std::future::Future;
use std::time::{Duration, Instant};

use bytes::Bytes;

use super::{
    lookup, reread, run_and_store, run_single_flight, served, Fill, Lookup, Options, Reread,
    CACHED, LOCK_SUFFIX,
};
use crate::backend::{Capabilities, SetMode};
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
    let mut bytes = [0u8; 16];
    if getrandom::fill(&mut bytes).is_err() {
        // The OS refused randomness (practically never). A token only has to differ from every other holder's:
        // this process, this moment and a per-process count make it unique enough to never release another's.
        static COUNT: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos() as u64);
        let count = COUNT.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        bytes[..8].copy_from_slice(&(nanos ^ (u64::from(std::process::id()) << 32)).to_le_bytes());
        bytes[8..].copy_from_slice(&count.to_le_bytes());
    }
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// Takes the lock at `lock_key` for `ttl`. Returns its token, or `None` if someone else holds it.
pub(crate) async fn acquire(
    cache: &Cache,
    lock_key: &str,
    ttl: Duration,
) -> Result<Option<String>, CacheError> {
    let backend = cache.backend_for(lock_key);
    // Without compare-and-delete the lock could only be freed by its TTL: every other caller would wait it out.
    if !backend.capabilities().contains(Capabilities::LOCKS) {
        let error = backend.unsupported(Capabilities::LOCKS);
        cache.note_backend_error("lock", lock_key, &error);
        return Err(error.into());
    }
    let token = new_token();
    let taken = backend
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

/// A lock taken in the backend, released by [`HeldLock::release`] — or, if its holder panics or is cancelled
/// first, by `Drop` in a spawned task, so other callers and processes do not wait out its TTL.
pub(crate) struct HeldLock {
    cache: Cache,
    key: String,
    /// `None` once released.
    token: Option<String>,
}

impl HeldLock {
    /// Takes the lock at `lock_key` for `ttl`; `Ok(None)` if someone else holds it.
    pub(crate) async fn acquire(
        cache: &Cache,
        lock_key: String,
        ttl: Duration,
    ) -> Result<Option<Self>, CacheError> {
        Ok(acquire(cache, &lock_key, ttl).await?.map(|token| Self {
            cache: cache.clone(),
            key: lock_key,
            token: Some(token),
        }))
    }

    /// Releases the lock now (compare-and-delete: a lock that expired and was taken by another holder stays).
    pub(crate) async fn release(mut self) {
        if let Some(token) = self.token.take() {
            release(&self.cache, &self.key, &token).await;
        }
    }

    /// Like [`HeldLock::release`], reporting whether the lock was still ours and any backend error.
    pub(crate) async fn release_checked(mut self) -> Result<bool, CacheError> {
        let Some(token) = self.token.take() else {
            return Ok(false);
        };
        self.cache.unlock(&self.key, &token).await
    }

    pub(crate) fn key(&self) -> &str {
        &self.key
    }

    /// The token, until released.
    pub(crate) fn token(&self) -> Option<&str> {
        self.token.as_deref()
    }

    pub(crate) fn cache(&self) -> &Cache {
        &self.cache
    }
}

impl Drop for HeldLock {
    fn drop(&mut self) {
        let Some(token) = self.token.take() else {
            return;
        };
        match tokio::runtime::Handle::try_current() {
            Ok(runtime) => {
                let cache = self.cache.clone();
                let key = std::mem::take(&mut self.key);
                runtime.spawn(async move { release(&cache, &key, &token).await });
            }
            Err(_) => tracing::warn!(
                key = self.key,
                "lock dropped outside a Tokio runtime; it is freed when its TTL passes"
            ),
        }
    }
}

/// Like [`cached`](super::cached), but a miss is computed once across every process sharing the backend.
///
/// Within a process, concurrent callers of a missing key join one in-process single flight, as with
/// [`cached`](super::cached). Its leader takes a lock next to the key (`SET NX` with a random token and
/// `lock.ttl`), re-checks the cache, runs `body`, stores and releases the lock (compare-and-delete). Leaders in
/// other processes poll for the value every `lock.poll`; when the lock vanishes without a value (its holder
/// failed or died and the TTL passed) they race for it again; after `lock.wait` they compute without it. A
/// holder that panics or is cancelled releases the lock at once (in a spawned task), so nobody waits for its
/// TTL. A backend failure fails open.
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
    let span = crate::telemetry::call_span(options.call, &key);
    crate::telemetry::in_span(span, async move {
        let flags = context::flags();
        let reread = match lookup::<S, Out>(cache, &key, flags, options.call).await {
            Lookup::Hit(meta, value) => {
                served(cache, &key, CACHED, &meta, false, flags, options.call);
                return S::rebuild(value);
            }
            Lookup::Strict(out) => return out,
            Lookup::Miss(Fill::Alone) => {
                // Fresh data was asked for: no waiting on others.
                return super::run_and_store::<S, Out, Fut>(cache, &key, &options, flags, body)
                    .await
                    .0;
            }
            Lookup::Miss(Fill::Coalesce(reread)) => reread,
        };
        let lead = |body| lead_locked::<S, Out, Fut>(cache, &key, &options, flags, lock, body);
        run_single_flight::<S, Out, Fut, _, _>(
            cache,
            key.clone(),
            &options,
            flags,
            reread,
            body,
            lead,
        )
        .await
    })
    .await
}

/// The in-process leader's part of [`locked`]: win the lock in the backend (or find the value another process
/// stored), compute and store. Returns the output and the bytes to share with in-process followers.
async fn lead_locked<S, Out, Fut>(
    cache: &Cache,
    key: &str,
    options: &Options<Out>,
    flags: context::Flags,
    lock: LockOptions,
    body: Fut,
) -> (Out, Option<Bytes>)
where
    S: Shape<Out>,
    Fut: Future<Output = Out>,
{
    let lock_key = format!("{key}{LOCK_SUFFIX}");
    let waiting_since = Instant::now();
    let held = loop {
        match HeldLock::acquire(cache, lock_key.clone(), lock.ttl).await {
            Ok(Some(held)) => {
                // Another holder may have stored the value between our miss and our lock.
                if let Some((bytes, meta, value)) =
                    reread::<S, Out>(cache, key, flags, Reread::Any).await
                {
                    held.release().await;
                    served(cache, key, LOCKED, &meta, false, flags, options.call);
                    return (S::rebuild(value), Some(bytes));
                }
                break Some(held);
            }
            Ok(None) if waiting_since.elapsed() < lock.wait => {
                tokio::time::sleep(lock.poll).await;
                if let Some((bytes, meta, value)) =
                    reread::<S, Out>(cache, key, flags, Reread::Any).await
                {
                    served(cache, key, LOCKED, &meta, false, flags, options.call);
                    return (S::rebuild(value), Some(bytes));
                }
            }
            Ok(None) => {
                tracing::warn!(key, "gave up waiting for the lock; computing without it");
                break None;
            }
            Err(_) => break None,
        }
    };
    let (out, shared) = run_and_store::<S, Out, Fut>(cache, key, options, flags, body).await;
    if let Some(held) = held {
        held.release().await;
    }
    (out, shared)
}

impl Cache {
    /// Releases the lock `key` if `token` still holds it (compare-and-delete). Returns whether it did. A
    /// [`LockGuard`](crate::LockGuard) does this by itself; this is for tokens kept elsewhere.
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
