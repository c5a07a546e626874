//! Compare-and-set on [`Cache`]: `gets`, `cas`, the `update` loop built on them, and the envelope rewrites that
//! need them (`persist`).

use std::time::Duration;

use bytes::Bytes;
use serde::de::DeserializeOwned;
use serde::Serialize;
use tracing::Instrument;

use crate::backend::{CasOutcome, CasToken, SetMode};
use crate::cache::Cache;
use crate::context::{self, Ops};
use crate::envelope::EnvelopeMeta;
use crate::error::CacheError;
use crate::telemetry;

/// How many times [`Cache::update`] reads and tries again after losing a race before it gives up with
/// [`CacheError::Conflict`].
pub const UPDATE_ATTEMPTS: u32 = 100;

/// What a compare-and-set read found under a key.
enum Found<T> {
    Missing,
    /// Present: the decoded value (`None` when the bytes are unreadable or expired by their envelope, which an
    /// update overwrites) and the token of the bytes.
    Present(Option<(EnvelopeMeta, T)>, CasToken),
}

impl Cache {
    async fn gets_found<T: DeserializeOwned>(&self, key: &str) -> Result<Found<T>, CacheError> {
        let backend = self.backend_for(key);
        let started = telemetry::backend_timer();
        let read = backend
            .gets(key)
            .instrument(telemetry::backend_span(backend.name(), "gets"))
            .await
            .inspect_err(|e| self.note_backend_error("gets", key, e))?;
        telemetry::backend_duration(backend.name(), "gets", started);
        Ok(match read {
            None => Found::Missing,
            Some((bytes, token)) => Found::Present(self.decode_or_miss(key, &bytes), token),
        })
    }

    async fn cas_bytes(
        &self,
        key: &str,
        bytes: Bytes,
        token: CasToken,
        ttl: Option<Duration>,
    ) -> Result<CasOutcome, CacheError> {
        let backend = self.backend_for(key);
        let started = telemetry::backend_timer();
        let outcome = backend
            .cas(key, bytes, token, ttl)
            .instrument(telemetry::backend_span(backend.name(), "cas"))
            .await
            .inspect_err(|e| self.note_backend_error("cas", key, e))?;
        telemetry::backend_duration(backend.name(), "cas", started);
        Ok(outcome)
    }

    /// Reads a value with a token for [`Cache::cas`] (memcached's `gets`). `None` when the key is missing or its
    /// value is not a readable `T`, or reads are switched off in this scope. Needs
    /// [`Capabilities::CAS`](crate::Capabilities::CAS): memory, Redis, memcached and etcd have it.
    ///
    /// ```
    /// use cache_core::{Cache, CasOutcome};
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), cache_core::CacheError> {
    /// let cache = Cache::memory();
    /// cache.set("stock", &10u32, None).await?;
    /// let (stock, token) = cache.gets::<u32>("stock").await?.unwrap();
    /// assert_eq!(cache.cas("stock", &(stock - 1), token, None).await?, CasOutcome::Stored);
    /// // The token is spent: the value changed since it was read.
    /// assert_eq!(cache.cas("stock", &0u32, token, None).await?, CasOutcome::Exists);
    /// assert_eq!(cache.get::<u32>("stock").await?, Some(9));
    /// # Ok(()) }
    /// ```
    pub async fn gets<T: DeserializeOwned>(
        &self,
        key: &str,
    ) -> Result<Option<(T, CasToken)>, CacheError> {
        if context::is_disabled(Ops::GET) {
            self.inner.metrics.miss();
            return Ok(None);
        }
        match self.gets_found::<T>(key).await? {
            Found::Present(Some((_, value)), token) => {
                self.inner.metrics.hit();
                Ok(Some((value, token)))
            }
            _ => {
                self.inner.metrics.miss();
                Ok(None)
            }
        }
    }

    /// Stores `value` only if `key` still holds what [`Cache::gets`] read with `token`: `Stored`, `Exists` (it
    /// changed since; nothing written) or `NotFound` (it is gone; nothing written). The TTL is `ttl` from now.
    /// With writes switched off in this scope it answers [`CacheError::Disabled`]: a compare-and-set has no
    /// neutral answer.
    ///
    /// ```
    /// use cache_core::{Cache, CasOutcome};
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), cache_core::CacheError> {
    /// let cache = Cache::memory();
    /// cache.set("k", &1u8, None).await?;
    /// let (_, token) = cache.gets::<u8>("k").await?.unwrap();
    /// cache.delete("k").await?;
    /// assert_eq!(cache.cas("k", &2u8, token, None).await?, CasOutcome::NotFound);
    /// # Ok(()) }
    /// ```
    pub async fn cas<T: Serialize + ?Sized>(
        &self,
        key: &str,
        value: &T,
        token: CasToken,
        ttl: Option<Duration>,
    ) -> Result<CasOutcome, CacheError> {
        if context::is_disabled(Ops::SET) {
            return Err(CacheError::Disabled(Ops::SET));
        }
        let bytes = self.encode(key, value, EnvelopeMeta::new(self.codec(), ttl))?;
        self.cas_bytes(key, bytes, token, ttl).await
    }

    /// Replaces the value of `key` with `change(current)` atomically: reads it with [`Cache::gets`], stores the
    /// result with [`Cache::cas`] (or, for a missing key, [`Cache::add`]), and starts again when another writer
    /// got there first — at most [`UPDATE_ATTEMPTS`] times, then [`CacheError::Conflict`]. `change` sees `None`
    /// for a missing key or one holding no readable `T`, and may run several times. Returns the value stored.
    /// Switched off reads or writes in this scope answer [`CacheError::Disabled`].
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), cache_core::CacheError> {
    /// let cache = cache_core::Cache::memory();
    /// let ttl = Some(std::time::Duration::from_secs(60));
    /// let seen = cache.update("visitors", ttl, |v: Option<Vec<String>>| {
    ///     let mut v = v.unwrap_or_default();
    ///     v.push("ada".into());
    ///     v
    /// }).await?;
    /// assert_eq!(seen, ["ada"]);
    /// # Ok(()) }
    /// ```
    pub async fn update<T, F>(
        &self,
        key: &str,
        ttl: Option<Duration>,
        mut change: F,
    ) -> Result<T, CacheError>
    where
        T: Serialize + DeserializeOwned,
        F: FnMut(Option<T>) -> T,
    {
        for op in [Ops::GET, Ops::SET] {
            if context::is_disabled(op) {
                return Err(CacheError::Disabled(op));
            }
        }
        for attempt in 0..UPDATE_ATTEMPTS {
            let stored = match self.gets_found::<T>(key).await? {
                Found::Missing => {
                    let new = change(None);
                    let bytes = self.encode(key, &new, EnvelopeMeta::new(self.codec(), ttl))?;
                    let added = self
                        .write_bytes_mode(key, bytes, ttl, SetMode::IfAbsent)
                        .await?;
                    added.then_some(new)
                }
                Found::Present(current, token) => {
                    let new = change(current.map(|(_, value)| value));
                    let bytes = self.encode(key, &new, EnvelopeMeta::new(self.codec(), ttl))?;
                    let outcome = self.cas_bytes(key, bytes, token, ttl).await?;
                    (outcome == CasOutcome::Stored).then_some(new)
                }
            };
            if let Some(new) = stored {
                return Ok(new);
            }
            back_off(attempt).await;
        }
        Err(CacheError::Conflict {
            key: key.to_owned(),
            attempts: UPDATE_ATTEMPTS,
        })
    }

    /// Removes the TTL of `key`: the value lives until deleted or evicted (dogpile's and Redis' `persist`). The
    /// value's envelope is rewritten without its expiry through compare-and-set, so every reader agrees.
    /// Returns whether the key holds a readable value; `false` with writes switched off in this scope.
    ///
    /// ```
    /// use std::time::Duration;
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), cache_core::CacheError> {
    /// let cache = cache_core::Cache::memory();
    /// cache.set("config", &"v1", Some(Duration::from_secs(5))).await?;
    /// assert!(cache.persist("config").await?);
    /// assert_eq!(cache.ttl("config").await?, cache_core::KeyTtl::Persistent);
    /// let (meta, _) = cache.get_with_meta::<String>("config").await?.unwrap();
    /// assert_eq!(meta.remaining_ttl(), None);
    /// # Ok(()) }
    /// ```
    pub async fn persist(&self, key: &str) -> Result<bool, CacheError> {
        if context::is_disabled(Ops::SET) {
            return Ok(false);
        }
        let rewritten = self
            .rewrite_envelope(key, |meta| meta.expires_at_ms = None)
            .await;
        self.suppressed(rewritten, false)
    }

    /// Marks the value of `key` stale — dogpile's soft invalidation, `invalidate(hard=False)`: it stays
    /// readable, and the next cached-function call for it recomputes while callers arriving meanwhile are
    /// served the stale value instead of waiting (with `early`/`soft_ttl` functions it is simply due for their
    /// refresh). Plain reads ([`Cache::get`]) still return it. Returns whether a readable value was marked;
    /// `false` with deletes switched off in this scope. Needs [`Capabilities::CAS`](crate::Capabilities::CAS).
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), cache_core::CacheError> {
    /// let cache = cache_core::Cache::memory();
    /// cache.set("report", &"v1", None).await?;
    /// assert!(cache.mark_stale("report").await?);
    /// let (meta, value) = cache.get_with_meta::<String>("report").await?.unwrap();
    /// assert!(meta.needs_refresh() && value == "v1");
    /// let fresh: String = cache.get_or_set("report", None, || async { "v2".to_string() }).await;
    /// assert_eq!(fresh, "v2");
    /// # Ok(()) }
    /// ```
    pub async fn mark_stale(&self, key: &str) -> Result<bool, CacheError> {
        if context::is_disabled(Ops::DELETE) {
            return Ok(false);
        }
        let now = crate::envelope::now_ms();
        let marked = self
            .rewrite_envelope(key, |meta| {
                meta.refresh_at_ms = Some(meta.refresh_at_ms.map_or(now, |at| at.min(now)));
            })
            .await;
        self.suppressed(marked, false)
    }

    /// Rewrites the envelope of the value under `key` with `change`, keeping its payload, through
    /// compare-and-set (retried like [`Cache::update`]). The key's backend TTL follows the rewritten envelope's
    /// expiry. Returns whether a readable value was there.
    pub(crate) async fn rewrite_envelope(
        &self,
        key: &str,
        change: impl Fn(&mut EnvelopeMeta),
    ) -> Result<bool, CacheError> {
        for attempt in 0..UPDATE_ATTEMPTS {
            let backend = self.backend_for(key);
            let Some((bytes, token)) = backend
                .gets(key)
                .await
                .inspect_err(|e| self.note_backend_error("gets", key, e))?
            else {
                return Ok(false);
            };
            let mut ttl = None;
            let Some(rewritten) = self.restamp(key, &bytes, |meta| {
                change(meta);
                ttl = meta
                    .remaining_ttl()
                    .map(|left| left.max(Duration::from_millis(1)));
            }) else {
                return Ok(false);
            };
            match self.cas_bytes(key, rewritten, token, ttl).await? {
                CasOutcome::Stored => return Ok(true),
                CasOutcome::NotFound => return Ok(false),
                CasOutcome::Exists => back_off(attempt).await,
            }
        }
        Err(CacheError::Conflict {
            key: key.to_owned(),
            attempts: UPDATE_ATTEMPTS,
        })
    }
}

/// After a lost race: yield at first, then sleep a little longer each time, with jitter so the losers of one
/// round do not collide again in the next.
pub(crate) async fn back_off(attempt: u32) {
    if attempt < 2 {
        tokio::task::yield_now().await;
        return;
    }
    let mut jitter = [0u8; 2];
    // Without randomness the fixed part of the delay still spreads retries; jitter only helps.
    let _ = getrandom::fill(&mut jitter);
    let micros = u64::from(attempt.min(20)) * 50 + u64::from(u16::from_le_bytes(jitter)) % 500;
    tokio::time::sleep(Duration::from_micros(micros)).await;
}
