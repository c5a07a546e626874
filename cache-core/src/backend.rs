//! The storage contract every backend implements: bytes in, bytes out.
//!
//! Backends know nothing about codecs, envelopes or strategies; [`Cache`](crate::Cache) layers those on top. The
//! trait is object safe so a [`Cache`](crate::Cache) can hold any backend as `Arc<dyn Backend>`.

use std::time::Duration;

use async_trait::async_trait;
use bytes::Bytes;

/// When a [`Backend::set`] writes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
#[non_exhaustive]
pub enum SetMode {
    /// Always write (Redis `SET`).
    #[default]
    Always,
    /// Write only when the key does not exist (Redis `SET NX`); the building block of locks.
    IfAbsent,
    /// Write only when the key already exists (Redis `SET XX`).
    IfPresent,
}

/// What [`Backend::ttl`] knows about a key's lifetime.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum KeyTtl {
    /// The key does not exist (or has expired).
    Missing,
    /// The key exists and never expires.
    Persistent,
    /// The key exists and expires after this long.
    Remaining(Duration),
}

/// A failure of the storage layer.
///
/// Strategies treat every `BackendError` the same way — fail open (run the body, log, count) unless the cache is
/// strict — so the variants exist for logs, metrics and users who call backends directly.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum BackendError {
    /// The backend could not be reached or the connection broke.
    #[error("connection error: {0}")]
    Connection(String),
    /// The backend did not answer within its command timeout.
    #[error("timed out after {0:?}")]
    Timeout(Duration),
    /// A circuit breaker is open: the backend failed repeatedly and is not being called for now.
    #[error("circuit breaker open; backend not called")]
    CircuitOpen,
    /// The backend refused the operation or the arguments (for example a malformed glob).
    #[error("invalid request: {0}")]
    Invalid(String),
    /// The stored value is not of the kind the operation needs (for example `incr` on a non-integer).
    #[error("wrong type: {0}")]
    WrongType(String),
    /// The backend does not implement this operation.
    #[error("operation not supported by this backend: {0}")]
    Unsupported(&'static str),
    /// Anything else the backend reported.
    #[error("backend error: {0}")]
    Other(String),
}

/// An async key-value store of bytes with TTLs.
///
/// Keys are UTF-8 strings; values are opaque bytes. Glob patterns use Redis syntax (`*`, `?`, `[abc]`, `[^a]`,
/// `\` escapes one character).
///
/// # Example
/// ```
/// use cache_core::{Backend, MemoryBackend, SetMode};
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), cache_core::BackendError> {
/// let backend = MemoryBackend::builder().max_entries(1_000).build();
/// backend.set("greeting", "hello".into(), None, SetMode::Always).await?;
/// assert_eq!(backend.get("greeting").await?.as_deref(), Some(&b"hello"[..]));
/// # Ok(()) }
/// ```
#[async_trait]
pub trait Backend: Send + Sync + 'static {
    /// Reads one value.
    async fn get(&self, key: &str) -> Result<Option<Bytes>, BackendError>;

    /// Reads many values in one round trip; the result has one slot per key, in order.
    async fn get_many(&self, keys: &[&str]) -> Result<Vec<Option<Bytes>>, BackendError>;

    /// Writes one value with an optional TTL. Returns whether it was written (always `true` for
    /// [`SetMode::Always`]).
    async fn set(
        &self,
        key: &str,
        value: Bytes,
        ttl: Option<Duration>,
        mode: SetMode,
    ) -> Result<bool, BackendError>;

    /// Writes many values, all with the same optional TTL, in one round trip where the backend allows.
    async fn set_many(
        &self,
        entries: &[(&str, Bytes)],
        ttl: Option<Duration>,
    ) -> Result<(), BackendError>;

    /// Deletes one key. Returns whether it existed.
    async fn delete(&self, key: &str) -> Result<bool, BackendError>;

    /// Deletes many keys. Returns how many existed.
    async fn delete_many(&self, keys: &[&str]) -> Result<u64, BackendError>;

    /// Deletes every key matching a glob pattern. Returns how many were deleted.
    async fn delete_match(&self, pattern: &str) -> Result<u64, BackendError>;

    /// Lists the keys matching a glob pattern (order unspecified).
    async fn scan(&self, pattern: &str) -> Result<Vec<String>, BackendError>;

    /// Adds `by` to the integer stored at `key` (a missing key counts as 0) and returns the new value. `ttl` is
    /// applied only when this call created the key.
    async fn incr(&self, key: &str, by: i64, ttl: Option<Duration>) -> Result<i64, BackendError>;

    /// Sets a key's TTL. Returns whether the key exists.
    async fn expire(&self, key: &str, ttl: Duration) -> Result<bool, BackendError>;

    /// Reports a key's remaining lifetime.
    async fn ttl(&self, key: &str) -> Result<KeyTtl, BackendError>;

    /// Deletes `key` only if its value equals `token` (compare-and-delete; releases a lock taken with
    /// [`SetMode::IfAbsent`]). Returns whether it was deleted.
    async fn unlock(&self, key: &str, token: &[u8]) -> Result<bool, BackendError>;

    /// Checks that the backend answers.
    async fn ping(&self) -> Result<(), BackendError>;

    /// Removes every key this backend owns (a prefixed backend removes only its prefix).
    async fn clear(&self) -> Result<(), BackendError>;

    /// Adds `members` to the set stored at `key` (the index behind tags), creating it if missing. With a `ttl`, a
    /// new set expires after it and an existing one lives at least that long from now (expiry is only ever
    /// extended; a persistent set stays persistent); without one the set becomes persistent. So a tag index
    /// outlives every member registered under it.
    ///
    /// The default implementation reports [`BackendError::Unsupported`].
    async fn set_add(
        &self,
        key: &str,
        members: &[&str],
        ttl: Option<Duration>,
    ) -> Result<(), BackendError> {
        let _ = (key, members, ttl);
        Err(BackendError::Unsupported("set_add"))
    }

    /// The members of the set stored at `key` (empty if missing).
    ///
    /// The default implementation reports [`BackendError::Unsupported`].
    async fn set_members(&self, key: &str) -> Result<Vec<String>, BackendError> {
        let _ = key;
        Err(BackendError::Unsupported("set_members"))
    }

    /// Removes `members` from the set stored at `key`. Returns how many were members.
    ///
    /// The default implementation reports [`BackendError::Unsupported`].
    async fn set_remove(&self, key: &str, members: &[&str]) -> Result<u64, BackendError> {
        let _ = (key, members);
        Err(BackendError::Unsupported("set_remove"))
    }

    /// The embedded memory backend behind this one, if it is one. [`Cache`](crate::Cache) reads it directly —
    /// without the boxed future of this trait, and without decoding on hits of cached functions. Other backends
    /// keep the default `None`.
    ///
    /// ```
    /// use cache_core::{Backend, MemoryBackend};
    /// assert!(MemoryBackend::default().as_memory().is_some());
    /// ```
    fn as_memory(&self) -> Option<&crate::MemoryBackend> {
        None
    }

    /// A short name for logs and metrics, such as `"memory"` or `"redis"`.
    fn name(&self) -> &'static str {
        "backend"
    }
}
