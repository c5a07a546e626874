//! [`FallbackBackend`]: move a cache to a new cluster without a cold start (pymemcache's `FallbackClient`,
//! improved).
//!
//! Reads try the new backend, then the old one; writes go to the new one; deletes go to both, old first, so a
//! deleted key cannot come back from the old cluster (pymemcache's client deletes only from the new one). With
//! warm-up (on by default) a hit in the old backend is copied into the new one — only if the new one has
//! nothing under the key yet, and removed again if the old value changed meanwhile — so the new cluster fills
//! with the keys actually read, and the old one can be retired once [`FallbackBackend::stats`] shows it is no
//! longer read.
//!
//! The old backend is best effort: its failures are logged and read as misses, and never fail a call, except a
//! delete, which must reach it.

use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use bytes::Bytes;
use cache_core::{Backend, BackendError, Capabilities, CasOutcome, CasToken, KeyTtl, SetMode};

/// A new backend in front of the old one it replaces.
///
/// # Example
/// ```
/// use cache_backends::FallbackBackend;
/// use cache_core::{Backend, MemoryBackend, SetMode};
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), cache_core::BackendError> {
/// let (old, new) = (MemoryBackend::default(), MemoryBackend::default());
/// old.set("user:1", "ann".into(), None, SetMode::Always).await?;
/// let migrating = FallbackBackend::new(new, old);
/// assert_eq!(migrating.get("user:1").await?.as_deref(), Some(&b"ann"[..])); // from the old one…
/// assert_eq!(migrating.new_backend().get("user:1").await?.as_deref(), Some(&b"ann"[..])); // …copied over
/// assert_eq!(migrating.stats().copied, 1);
/// # Ok(()) }
/// ```
pub struct FallbackBackend {
    new: Arc<dyn Backend>,
    old: Arc<dyn Backend>,
    warm_up: bool,
    retire_on_write: bool,
    old_hits: AtomicU64,
    copied: AtomicU64,
}

/// What a [`FallbackBackend`] has done so far: when `old_hits` stops growing, the old backend can go.
///
/// ```
/// let stats = cache_backends::FallbackStats::default();
/// assert_eq!(stats.old_hits, 0);
/// ```
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct FallbackStats {
    /// Reads the new backend missed and the old one answered.
    pub old_hits: u64,
    /// Values copied from the old backend into the new one.
    pub copied: u64,
}

impl std::fmt::Debug for FallbackBackend {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FallbackBackend")
            .field("new", &self.new.name())
            .field("old", &self.old.name())
            .field("warm_up", &self.warm_up)
            .finish_non_exhaustive()
    }
}

impl FallbackBackend {
    /// `new` in front of `old`, with warm-up and retire-on-write on.
    ///
    /// # Example
    /// ```
    /// let migrating = cache_backends::FallbackBackend::new(
    ///     cache_core::MemoryBackend::default(),
    ///     cache_core::MemoryBackend::default(),
    /// );
    /// # let _ = migrating;
    /// ```
    pub fn new(new: impl Backend, old: impl Backend) -> Self {
        Self::from_arcs(Arc::new(new), Arc::new(old))
    }

    /// [`FallbackBackend::new`] for backends already shared (what `setup` builds).
    ///
    /// # Example
    /// ```
    /// use std::sync::Arc;
    /// let new: Arc<dyn cache_core::Backend> = Arc::new(cache_core::MemoryBackend::default());
    /// let old: Arc<dyn cache_core::Backend> = Arc::new(cache_core::MemoryBackend::default());
    /// let migrating = cache_backends::FallbackBackend::from_arcs(new, old);
    /// # let _ = migrating;
    /// ```
    pub fn from_arcs(new: Arc<dyn Backend>, old: Arc<dyn Backend>) -> Self {
        Self {
            new,
            old,
            warm_up: true,
            retire_on_write: true,
            old_hits: AtomicU64::new(0),
            copied: AtomicU64::new(0),
        }
    }

    /// Whether a hit in the old backend is copied into the new one (default on).
    ///
    /// # Example
    /// ```
    /// let migrating = cache_backends::FallbackBackend::new(
    ///     cache_core::MemoryBackend::default(),
    ///     cache_core::MemoryBackend::default(),
    /// ).warm_up(false);
    /// # let _ = migrating;
    /// ```
    pub fn warm_up(mut self, on: bool) -> Self {
        self.warm_up = on;
        self
    }

    /// Whether a write also deletes the key from the old backend (default on). The written value lives in the
    /// new backend; without this, the old backend's earlier value would be read again once the new one expires
    /// or evicts it. Off saves the old backend a delete per write.
    ///
    /// # Example
    /// ```
    /// let migrating = cache_backends::FallbackBackend::new(
    ///     cache_core::MemoryBackend::default(),
    ///     cache_core::MemoryBackend::default(),
    /// ).retire_on_write(false);
    /// # let _ = migrating;
    /// ```
    pub fn retire_on_write(mut self, on: bool) -> Self {
        self.retire_on_write = on;
        self
    }

    /// The backend being moved to.
    ///
    /// # Example
    /// ```
    /// let migrating = cache_backends::FallbackBackend::new(
    ///     cache_core::MemoryBackend::default(),
    ///     cache_core::NullBackend::new("retired"),
    /// );
    /// assert_eq!(migrating.new_backend().name(), "memory");
    /// ```
    pub fn new_backend(&self) -> &Arc<dyn Backend> {
        &self.new
    }

    /// The backend being retired.
    ///
    /// # Example
    /// ```
    /// let migrating = cache_backends::FallbackBackend::new(
    ///     cache_core::MemoryBackend::default(),
    ///     cache_core::NullBackend::new("retired"),
    /// );
    /// assert_eq!(migrating.old_backend().name(), "null");
    /// ```
    pub fn old_backend(&self) -> &Arc<dyn Backend> {
        &self.old
    }

    /// Old-backend hits and copies so far.
    ///
    /// # Example
    /// ```
    /// let migrating = cache_backends::FallbackBackend::new(
    ///     cache_core::MemoryBackend::default(),
    ///     cache_core::MemoryBackend::default(),
    /// );
    /// assert_eq!(migrating.stats(), cache_backends::FallbackStats::default());
    /// ```
    pub fn stats(&self) -> FallbackStats {
        FallbackStats {
            old_hits: self.old_hits.load(Relaxed),
            copied: self.copied.load(Relaxed),
        }
    }

    /// The old backend's value for `key`; its failures read as misses.
    async fn old_get(&self, key: &str) -> Option<Bytes> {
        match self.old.get(key).await {
            Ok(value) => value,
            Err(error) => {
                tracing::warn!(key, %error, "old cache backend failed; read as a miss");
                None
            }
        }
    }

    /// An old hit: counted, and copied into the new backend when warming up.
    async fn found_in_old(&self, key: &str, value: &Bytes) {
        self.old_hits.fetch_add(1, Relaxed);
        if !self.warm_up {
            return;
        }
        let ttl = if self.old.capabilities().contains(Capabilities::TTL) {
            match self.old.ttl(key).await {
                Ok(KeyTtl::Remaining(left)) => Some(left),
                Ok(KeyTtl::Persistent) => None,
                // Gone meanwhile (or unknown): nothing to copy.
                Ok(KeyTtl::Missing) | Ok(_) | Err(_) => return,
            }
        } else {
            // The value's own envelope still expires it on time; the backend TTL only frees memory.
            None
        };
        // Only into an empty slot: a value written to the new backend meanwhile is newer.
        match self
            .new
            .set(key, value.clone(), ttl, SetMode::IfAbsent)
            .await
        {
            Ok(true) => {}
            Ok(false) => return,
            Err(error) => {
                tracing::warn!(key, %error, "copying a value into the new cache backend failed");
                return;
            }
        }
        // Deleted or rewritten in the old backend while we copied: the copy must not outlive it. (Deletes reach
        // the old backend first, so any delete racing this copy is either seen here or reaches the copy.)
        if self.old_get(key).await.as_ref() != Some(value) {
            let _ = self.new.delete(key).await;
            return;
        }
        self.copied.fetch_add(1, Relaxed);
    }

    async fn retire(&self, keys: &[&str]) {
        if !self.retire_on_write {
            return;
        }
        if let Err(error) = self.old.delete_many(keys).await {
            tracing::warn!(%error, "deleting overwritten keys from the old cache backend failed");
        }
    }
}

#[async_trait]
impl Backend for FallbackBackend {
    async fn get(&self, key: &str) -> Result<Option<Bytes>, BackendError> {
        if let Some(value) = self.new.get(key).await? {
            return Ok(Some(value));
        }
        let Some(value) = self.old_get(key).await else {
            return Ok(None);
        };
        self.found_in_old(key, &value).await;
        Ok(Some(value))
    }

    async fn get_many(&self, keys: &[&str]) -> Result<Vec<Option<Bytes>>, BackendError> {
        let mut values = self.new.get_many(keys).await?;
        let missing: Vec<usize> = (0..keys.len()).filter(|&i| values[i].is_none()).collect();
        if missing.is_empty() {
            return Ok(values);
        }
        let missing_keys: Vec<&str> = missing.iter().map(|&i| keys[i]).collect();
        let old = match self.old.get_many(&missing_keys).await {
            Ok(old) => old,
            Err(error) => {
                tracing::warn!(%error, "old cache backend failed; read as misses");
                return Ok(values);
            }
        };
        for (&i, value) in missing.iter().zip(old) {
            if let Some(value) = value {
                self.found_in_old(keys[i], &value).await;
                values[i] = Some(value);
            }
        }
        Ok(values)
    }

    async fn set(
        &self,
        key: &str,
        value: Bytes,
        ttl: Option<Duration>,
        mode: SetMode,
    ) -> Result<bool, BackendError> {
        let written = self.new.set(key, value, ttl, mode).await?;
        if written {
            self.retire(&[key]).await;
        }
        Ok(written)
    }

    async fn set_many(
        &self,
        entries: &[(&str, Bytes)],
        ttl: Option<Duration>,
    ) -> Result<(), BackendError> {
        self.new.set_many(entries, ttl).await?;
        let keys: Vec<&str> = entries.iter().map(|(k, _)| *k).collect();
        self.retire(&keys).await;
        Ok(())
    }

    async fn delete(&self, key: &str) -> Result<bool, BackendError> {
        // Old first (see the warm-up copy's check); the new one even when the old one fails, whose error is then
        // reported: the delete did not reach everywhere.
        let in_old = self.old.delete(key).await;
        let in_new = self.new.delete(key).await?;
        Ok(in_old? || in_new)
    }

    async fn delete_many(&self, keys: &[&str]) -> Result<u64, BackendError> {
        let in_old = self.old.delete_many(keys).await;
        let in_new = self.new.delete_many(keys).await?;
        Ok(in_old?.max(in_new))
    }

    async fn delete_match(&self, pattern: &str) -> Result<u64, BackendError> {
        let in_old = if self.old.capabilities().contains(Capabilities::SCAN) {
            self.old.delete_match(pattern).await?
        } else {
            0
        };
        Ok(self.new.delete_match(pattern).await?.max(in_old))
    }

    async fn scan(&self, pattern: &str) -> Result<Vec<String>, BackendError> {
        self.new.scan(pattern).await
    }

    async fn incr(&self, key: &str, by: i64, ttl: Option<Duration>) -> Result<i64, BackendError> {
        self.new.incr(key, by, ttl).await
    }

    async fn expire(&self, key: &str, ttl: Duration) -> Result<bool, BackendError> {
        self.new.expire(key, ttl).await
    }

    async fn ttl(&self, key: &str) -> Result<KeyTtl, BackendError> {
        self.new.ttl(key).await
    }

    async fn persist(&self, key: &str) -> Result<bool, BackendError> {
        self.new.persist(key).await
    }

    async fn gets(&self, key: &str) -> Result<Option<(Bytes, CasToken)>, BackendError> {
        if let Some(found) = self.new.gets(key).await? {
            return Ok(Some(found));
        }
        // A value only the old backend holds is copied over first, so an update starts from it.
        if let Some(value) = self.old_get(key).await {
            self.found_in_old(key, &value).await;
        }
        self.new.gets(key).await
    }

    async fn cas(
        &self,
        key: &str,
        value: Bytes,
        token: CasToken,
        ttl: Option<Duration>,
    ) -> Result<CasOutcome, BackendError> {
        self.new.cas(key, value, token, ttl).await
    }

    async fn unlock(&self, key: &str, token: &[u8]) -> Result<bool, BackendError> {
        self.new.unlock(key, token).await
    }

    async fn ping(&self) -> Result<(), BackendError> {
        if let Err(error) = self.old.ping().await {
            tracing::warn!(%error, "old cache backend does not answer");
        }
        self.new.ping().await
    }

    async fn clear(&self) -> Result<(), BackendError> {
        self.new.clear().await
    }

    async fn set_add(
        &self,
        key: &str,
        members: &[&str],
        ttl: Option<Duration>,
    ) -> Result<(), BackendError> {
        self.new.set_add(key, members, ttl).await
    }

    async fn set_members(&self, key: &str) -> Result<Vec<String>, BackendError> {
        self.new.set_members(key).await
    }

    async fn set_remove(&self, key: &str, members: &[&str]) -> Result<u64, BackendError> {
        self.new.set_remove(key, members).await
    }

    fn name(&self) -> &'static str {
        self.new.name()
    }

    fn capabilities(&self) -> Capabilities {
        self.new.capabilities()
    }
}
