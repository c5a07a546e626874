//! The null backend: stores nothing, so every read misses and cached functions run their bodies on every call.
//!
//! What caching switched off looks like without changing code (oslo.cache's `dogpile.cache.null`): the same
//! `#[cached]` functions and `Cache` calls run, and nothing is kept. Building one logs one warning naming why it
//! is active, so a cache that was switched off by accident shows up in the logs.

use std::time::Duration;

use async_trait::async_trait;
use bytes::Bytes;

use crate::backend::{Backend, BackendError, Capabilities, CasOutcome, CasToken, KeyTtl, SetMode};

/// A backend that keeps nothing: reads miss, writes are accepted and forgotten, deletes find nothing.
///
/// It answers as a store whose entries vanish at once: `set` reports success (an `IfAbsent` write too, since
/// nothing is ever present; an `IfPresent` write never), `scan`/`delete_match` find nothing, `ttl` says missing.
/// It claims no counters and no locks: nothing it holds could count or exclude, so strategies that need them
/// fall back as on any backend without them.
///
/// # Example
/// ```
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() {
/// use cache_core::{Cache, NullBackend};
/// let cache = Cache::builder().backend(NullBackend::new("caching is disabled in the settings")).build();
/// cache.set("k", &1u8, None).await.unwrap();
/// assert_eq!(cache.get::<u8>("k").await.unwrap(), None);
/// # }
/// ```
#[derive(Debug, Clone)]
pub struct NullBackend {
    reason: String,
}

impl NullBackend {
    /// A null backend, logging one warning with `reason` (why caching is off: "`enabled = false` in
    /// settings.toml", "null:// URL", …).
    pub fn new(reason: impl Into<String>) -> NullBackend {
        let reason = reason.into();
        tracing::warn!(
            reason = %reason,
            "cache backend is null: nothing is cached and every cached function runs its body"
        );
        NullBackend { reason }
    }

    /// Why this backend is active, as given to [`NullBackend::new`].
    ///
    /// # Example
    /// ```
    /// let null = cache_core::NullBackend::new("null:// URL");
    /// assert_eq!(null.reason(), "null:// URL");
    /// ```
    pub fn reason(&self) -> &str {
        &self.reason
    }
}

#[async_trait]
impl Backend for NullBackend {
    async fn get(&self, _key: &str) -> Result<Option<Bytes>, BackendError> {
        Ok(None)
    }

    async fn set(
        &self,
        _key: &str,
        _value: Bytes,
        _ttl: Option<Duration>,
        mode: SetMode,
    ) -> Result<bool, BackendError> {
        Ok(mode != SetMode::IfPresent)
    }

    async fn delete(&self, _key: &str) -> Result<bool, BackendError> {
        Ok(false)
    }

    async fn persist(&self, _key: &str) -> Result<bool, BackendError> {
        Ok(false)
    }

    async fn gets(&self, _key: &str) -> Result<Option<(Bytes, CasToken)>, BackendError> {
        Ok(None)
    }

    async fn cas(
        &self,
        _key: &str,
        _value: Bytes,
        _token: CasToken,
        _ttl: Option<Duration>,
    ) -> Result<CasOutcome, BackendError> {
        Ok(CasOutcome::NotFound)
    }

    async fn delete_match(&self, _pattern: &str) -> Result<u64, BackendError> {
        Ok(0)
    }

    async fn scan(&self, _pattern: &str) -> Result<Vec<String>, BackendError> {
        Ok(Vec::new())
    }

    async fn expire(&self, _key: &str, _ttl: Duration) -> Result<bool, BackendError> {
        Ok(false)
    }

    async fn ttl(&self, _key: &str) -> Result<KeyTtl, BackendError> {
        Ok(KeyTtl::Missing)
    }

    async fn set_add(
        &self,
        _key: &str,
        _members: &[&str],
        _ttl: Option<Duration>,
    ) -> Result<(), BackendError> {
        Ok(())
    }

    async fn set_members(&self, _key: &str) -> Result<Vec<String>, BackendError> {
        Ok(Vec::new())
    }

    async fn set_remove(&self, _key: &str, _members: &[&str]) -> Result<u64, BackendError> {
        Ok(0)
    }

    async fn ping(&self) -> Result<(), BackendError> {
        Ok(())
    }

    async fn clear(&self) -> Result<(), BackendError> {
        Ok(())
    }

    fn name(&self) -> &'static str {
        "null"
    }

    fn capabilities(&self) -> Capabilities {
        Capabilities::SCAN | Capabilities::TTL | Capabilities::SETS | Capabilities::CAS
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn keeps_nothing() {
        let null = NullBackend::new("test");
        assert!(null
            .set("k", Bytes::from_static(b"v"), None, SetMode::Always)
            .await
            .unwrap());
        assert_eq!(null.get("k").await.unwrap(), None);
        assert!(null
            .set("k", Bytes::from_static(b"v"), None, SetMode::IfAbsent)
            .await
            .unwrap());
        assert!(!null
            .set("k", Bytes::from_static(b"v"), None, SetMode::IfPresent)
            .await
            .unwrap());
        assert!(!null.delete("k").await.unwrap());
        assert_eq!(null.scan("*").await.unwrap(), Vec::<String>::new());
        assert_eq!(null.ttl("k").await.unwrap(), KeyTtl::Missing);
    }
}
