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

/// Identifies the stored value a [`Backend::gets`] read, for a later [`Backend::cas`]: memcached's `cas unique`,
/// the memory backend's write counter, a digest of the stored bytes on Redis. Opaque; compare it only with
/// another token of the same backend and key.
///
/// ```
/// use cache_core::CasToken;
/// assert_eq!(CasToken::new(7).get(), 7);
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct CasToken(u64);

impl CasToken {
    /// A token from a backend's own version number.
    ///
    /// ```
    /// assert_eq!(cache_core::CasToken::new(1), cache_core::CasToken::new(1));
    /// ```
    pub const fn new(version: u64) -> Self {
        Self(version)
    }

    /// The backend's version number.
    ///
    /// ```
    /// assert_eq!(cache_core::CasToken::new(3).get(), 3);
    /// ```
    pub const fn get(self) -> u64 {
        self.0
    }
}

/// What a compare-and-set did (memcached's `STORED` / `EXISTS` / `NOT_FOUND`).
///
/// ```
/// assert_ne!(cache_core::CasOutcome::Stored, cache_core::CasOutcome::Exists);
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum CasOutcome {
    /// The value was still the one read: the new value is stored.
    Stored,
    /// The value changed since it was read: nothing was written.
    Exists,
    /// The key is gone (deleted or expired): nothing was written.
    NotFound,
}

bitflags::bitflags! {
    /// What a backend can do beyond reading, writing and deleting keys.
    ///
    /// Every backend stores bytes under keys with a TTL ([`Backend::get`], [`Backend::set`] in every
    /// [`SetMode`], [`Backend::delete`], …). The rest is optional — memcached has no key scan and no sets, a disk
    /// store no atomic counters — so each backend states what it has, the operations it lacks answer
    /// [`BackendError::Unsupported`] naming it and the capability, and a [`Cache`](crate::Cache) can check a
    /// configuration up front with [`CacheBuilder::require`](crate::CacheBuilder::require).
    ///
    /// ```
    /// use cache_core::{Backend, Capabilities, MemoryBackend};
    /// let memory = MemoryBackend::default();
    /// assert!(memory.capabilities().contains(Capabilities::SCAN | Capabilities::SETS));
    /// assert_eq!(Capabilities::SETS.describe(), "keep sets (tag indexes)");
    /// ```
    #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
    pub struct Capabilities: u16 {
        /// [`Backend::scan`] and [`Backend::delete_match`]: find keys by glob pattern.
        const SCAN = 1;
        /// [`Backend::incr`]: atomic counters.
        const COUNTERS = 1 << 1;
        /// [`Backend::set_add`], [`Backend::set_members`], [`Backend::set_remove`]: the indexes behind tags.
        const SETS = 1 << 2;
        /// [`Backend::gets`] and [`Backend::cas`]: compare-and-set on a value read earlier (memcached `gets`/`cas`).
        const CAS = 1 << 3;
        /// [`Backend::ttl`], [`Backend::expire`] and [`Backend::persist`]: read back and change a key's lifetime.
        const TTL = 1 << 4;
        /// [`Backend::unlock`]: compare-and-delete, which with [`SetMode::IfAbsent`] makes a lock.
        const LOCKS = 1 << 5;
    }
}

impl Capabilities {
    /// What the capabilities let a backend do, in words for error messages.
    ///
    /// ```
    /// use cache_core::Capabilities;
    /// assert_eq!((Capabilities::SCAN | Capabilities::LOCKS).describe(), "scan keys by pattern, hold locks");
    /// ```
    pub fn describe(self) -> String {
        let words: Vec<&str> = self
            .iter()
            .map(|one| match one {
                Capabilities::SCAN => "scan keys by pattern",
                Capabilities::COUNTERS => "keep counters",
                Capabilities::SETS => "keep sets (tag indexes)",
                Capabilities::CAS => "compare-and-set",
                Capabilities::TTL => "read or change a key's TTL",
                Capabilities::LOCKS => "hold locks",
                _ => "do something this version does not know",
            })
            .collect();
        words.join(", ")
    }
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
    /// The backend lacks a capability the operation needs (see [`Backend::capabilities`]).
    #[error("the {backend} backend cannot {}", capability.describe())]
    Unsupported {
        /// [`Backend::name`] of the backend asked.
        backend: &'static str,
        /// What it lacks.
        capability: Capabilities,
    },
    /// Anything else the backend reported.
    #[error("backend error: {0}")]
    Other(String),
}

/// Any backend as `dyn Any`, so that the cache can recognise its own embedded memory backend behind a
/// `dyn Backend` (and read it without the boxed futures of this trait) while the contract names no backend
/// type. Implemented for every type; nothing to write.
#[doc(hidden)]
pub trait AsAny: std::any::Any {
    /// `self` as `dyn Any`.
    fn as_any(&self) -> &dyn std::any::Any;
}

impl<T: std::any::Any> AsAny for T {
    fn as_any(&self) -> &dyn std::any::Any {
        self
    }
}

/// An async key-value store of bytes with TTLs.
///
/// Keys are UTF-8 strings; values are opaque bytes. Glob patterns use Redis syntax (`*`, `?`, `[abc]`, `[^a]`,
/// `\` escapes one character).
///
/// A backend writes `get`, `set`, `delete`, `ping`, `clear`, `name` and [`Backend::capabilities`], plus the
/// operations of the capabilities it states; the multi-key operations have one-by-one defaults to override
/// where the store has a batch command, and every optional operation it leaves out answers
/// [`BackendError::Unsupported`].
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
pub trait Backend: AsAny + Send + Sync + 'static {
    /// Reads one value.
    async fn get(&self, key: &str) -> Result<Option<Bytes>, BackendError>;

    /// Reads many values in one round trip; the result has one slot per key, in order.
    ///
    /// The default reads them one by one; backends with a multi-key read override it.
    async fn get_many(&self, keys: &[&str]) -> Result<Vec<Option<Bytes>>, BackendError> {
        let mut values = Vec::with_capacity(keys.len());
        for key in keys {
            values.push(self.get(key).await?);
        }
        Ok(values)
    }

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
    ///
    /// The default writes them one by one.
    async fn set_many(
        &self,
        entries: &[(&str, Bytes)],
        ttl: Option<Duration>,
    ) -> Result<(), BackendError> {
        for (key, value) in entries {
            self.set(key, value.clone(), ttl, SetMode::Always).await?;
        }
        Ok(())
    }

    /// Deletes one key. Returns whether it existed.
    async fn delete(&self, key: &str) -> Result<bool, BackendError>;

    /// Deletes many keys. Returns how many existed.
    ///
    /// The default deletes them one by one.
    async fn delete_many(&self, keys: &[&str]) -> Result<u64, BackendError> {
        let mut deleted = 0;
        for key in keys {
            deleted += u64::from(self.delete(key).await?);
        }
        Ok(deleted)
    }

    /// Deletes every key matching a glob pattern. Returns how many were deleted.
    ///
    /// Needs [`Capabilities::SCAN`]; the default answers [`BackendError::Unsupported`].
    async fn delete_match(&self, pattern: &str) -> Result<u64, BackendError> {
        let _ = pattern;
        Err(self.unsupported(Capabilities::SCAN))
    }

    /// Lists the keys matching a glob pattern (order unspecified).
    ///
    /// Needs [`Capabilities::SCAN`]; the default answers [`BackendError::Unsupported`].
    async fn scan(&self, pattern: &str) -> Result<Vec<String>, BackendError> {
        let _ = pattern;
        Err(self.unsupported(Capabilities::SCAN))
    }

    /// Adds `by` to the integer stored at `key` (a missing key counts as 0) and returns the new value. `ttl` is
    /// applied only when this call created the key.
    ///
    /// Needs [`Capabilities::COUNTERS`]; the default answers [`BackendError::Unsupported`].
    async fn incr(&self, key: &str, by: i64, ttl: Option<Duration>) -> Result<i64, BackendError> {
        let _ = (key, by, ttl);
        Err(self.unsupported(Capabilities::COUNTERS))
    }

    /// Sets a key's TTL. Returns whether the key exists.
    ///
    /// Needs [`Capabilities::TTL`]; the default answers [`BackendError::Unsupported`].
    async fn expire(&self, key: &str, ttl: Duration) -> Result<bool, BackendError> {
        let _ = (key, ttl);
        Err(self.unsupported(Capabilities::TTL))
    }

    /// Reports a key's remaining lifetime.
    ///
    /// Needs [`Capabilities::TTL`]; the default answers [`BackendError::Unsupported`].
    async fn ttl(&self, key: &str) -> Result<KeyTtl, BackendError> {
        let _ = key;
        Err(self.unsupported(Capabilities::TTL))
    }

    /// Removes a key's TTL: it lives until deleted or evicted (Redis `PERSIST`). Returns whether the key exists.
    ///
    /// Needs [`Capabilities::TTL`]; the default answers [`BackendError::Unsupported`].
    async fn persist(&self, key: &str) -> Result<bool, BackendError> {
        let _ = key;
        Err(self.unsupported(Capabilities::TTL))
    }

    /// Reads one value with a token identifying it, for [`Backend::cas`] (memcached `gets`).
    ///
    /// Needs [`Capabilities::CAS`]; the default answers [`BackendError::Unsupported`].
    async fn gets(&self, key: &str) -> Result<Option<(Bytes, CasToken)>, BackendError> {
        let _ = key;
        Err(self.unsupported(Capabilities::CAS))
    }

    /// Writes `value` only if the key still holds the value `token` was read with (memcached `cas`). A
    /// successful write sets the key's TTL to `ttl` (none: persistent).
    ///
    /// Needs [`Capabilities::CAS`]; the default answers [`BackendError::Unsupported`].
    async fn cas(
        &self,
        key: &str,
        value: Bytes,
        token: CasToken,
        ttl: Option<Duration>,
    ) -> Result<CasOutcome, BackendError> {
        let _ = (key, value, token, ttl);
        Err(self.unsupported(Capabilities::CAS))
    }

    /// Deletes `key` only if its value equals `token` (compare-and-delete; releases a lock taken with
    /// [`SetMode::IfAbsent`]). Returns whether it was deleted.
    ///
    /// Needs [`Capabilities::LOCKS`]; the default answers [`BackendError::Unsupported`].
    async fn unlock(&self, key: &str, token: &[u8]) -> Result<bool, BackendError> {
        let _ = (key, token);
        Err(self.unsupported(Capabilities::LOCKS))
    }

    /// Counts one call against the rate limit `rule` kept under `key`, atomically: concurrent callers in any
    /// process never both take the last slot. Refused calls are not counted.
    ///
    /// The default reads, decides and writes back with compare-and-set ([`check_rate_by_cas`](crate::check_rate_by_cas),
    /// wall clock, needs [`Capabilities::CAS`]); a backend that can do it in one step (Redis: one Lua script)
    /// overrides it.
    async fn rate_limit(
        &self,
        key: &str,
        rule: crate::RateRule,
    ) -> Result<crate::RateDecision, BackendError> {
        crate::check_rate_by_cas(self, key, rule).await
    }

    /// Checks that the backend answers.
    async fn ping(&self) -> Result<(), BackendError>;

    /// Removes every key this backend owns (a prefixed backend removes only its prefix).
    async fn clear(&self) -> Result<(), BackendError>;

    /// Adds `members` to the set stored at `key` (the index behind tags), creating it if missing. With a `ttl`, a
    /// new set expires after it and an existing one lives at least that long from now (expiry is only ever
    /// extended; a persistent set stays persistent); without one the set becomes persistent. So a tag index
    /// outlives every member registered under it.
    ///
    /// Needs [`Capabilities::SETS`]; the default answers [`BackendError::Unsupported`].
    async fn set_add(
        &self,
        key: &str,
        members: &[&str],
        ttl: Option<Duration>,
    ) -> Result<(), BackendError> {
        let _ = (key, members, ttl);
        Err(self.unsupported(Capabilities::SETS))
    }

    /// The members of the set stored at `key` (empty if missing).
    ///
    /// Needs [`Capabilities::SETS`]; the default answers [`BackendError::Unsupported`].
    async fn set_members(&self, key: &str) -> Result<Vec<String>, BackendError> {
        let _ = key;
        Err(self.unsupported(Capabilities::SETS))
    }

    /// Removes `members` from the set stored at `key`. Returns how many were members.
    ///
    /// Needs [`Capabilities::SETS`]; the default answers [`BackendError::Unsupported`].
    async fn set_remove(&self, key: &str, members: &[&str]) -> Result<u64, BackendError> {
        let _ = (key, members);
        Err(self.unsupported(Capabilities::SETS))
    }

    /// A short name for logs and metrics, such as `"memory"` or `"redis"`.
    fn name(&self) -> &'static str {
        "backend"
    }

    /// Local copies of remote values that are safe to serve right now (a client-side tier while its
    /// invalidations are flowing): the cache reads them first, keeping a decoded copy beside each as it does for
    /// its memory backend, and asks the backend itself on a miss. `None` (the default): no such tier.
    #[doc(hidden)]
    fn local_copies(&self) -> Option<&crate::MemoryBackend> {
        None
    }

    /// What this backend can do beyond reading, writing and deleting keys. Its operations outside these answer
    /// [`BackendError::Unsupported`].
    ///
    /// ```
    /// use cache_core::{Backend, Capabilities, MemoryBackend};
    /// assert!(MemoryBackend::default().capabilities().contains(Capabilities::COUNTERS));
    /// ```
    fn capabilities(&self) -> Capabilities;

    /// The error for an operation that needs `capability`, naming this backend.
    ///
    /// ```
    /// use cache_core::{Backend, BackendError, Capabilities, NullBackend};
    /// let error = NullBackend::new("off").unsupported(Capabilities::COUNTERS);
    /// assert!(matches!(error, BackendError::Unsupported { backend: "null", .. }));
    /// assert_eq!(error.to_string(), "the null backend cannot keep counters");
    /// ```
    fn unsupported(&self, capability: Capabilities) -> BackendError {
        BackendError::Unsupported {
            backend: self.name(),
            capability,
        }
    }
}

/// The boxed future of a [`Backend`] method, as `async_trait` declares it.
type Forwarded<'a, T> =
    std::pin::Pin<Box<dyn std::future::Future<Output = Result<T, BackendError>> + Send + 'a>>;

/// Writes `Backend` methods of `Arc<B>` that return `(**self).method(..)`: the `async_trait` signature spelled
/// out (every reference's lifetime named, as the trait declares it) so the inner future is returned as it is.
macro_rules! forward_to_inner {
    ($(fn $name:ident<$($lt:lifetime),*>($($arg:ident: $ty:ty),*) -> $out:ty;)*) => {$(
        fn $name<'life0, $($lt,)* 'async_trait>(
            &'life0 self,
            $($arg: $ty),*
        ) -> Forwarded<'async_trait, $out>
        where
            'life0: 'async_trait,
            $($lt: 'async_trait,)*
            Self: 'async_trait,
        {
            (**self).$name($($arg),*)
        }
    )*};
}

/// A shared backend is a backend: layers can wrap an `Arc<dyn Backend>` (what `setup` builds) or a backend
/// that is also used elsewhere.
///
/// ```
/// use std::sync::Arc;
/// use cache_core::layer::{KeyMangler, LayeredExt};
/// use cache_core::{Backend, MemoryBackend};
/// let shared: Arc<dyn Backend> = Arc::new(MemoryBackend::default());
/// let tenant_a = shared.clone().layered(KeyMangler::new().prefix("a:"));
/// assert_eq!(tenant_a.name(), "memory");
/// ```
///
/// Each method hands back the inner backend's own boxed future rather than boxing a second future around it:
/// `Cache` holds its backends as `Arc<dyn Backend>`, so with `async fn` forwarders every backend call would
/// allocate twice and poll one level deeper.
impl<B: Backend + ?Sized> Backend for std::sync::Arc<B> {
    forward_to_inner! {
        fn get<'life1>(key: &'life1 str) -> Option<Bytes>;
        fn get_many<'life1, 'life2>(keys: &'life1 [&'life2 str]) -> Vec<Option<Bytes>>;
        fn set<'life1>(key: &'life1 str, value: Bytes, ttl: Option<Duration>, mode: SetMode) -> bool;
        fn set_many<'life1, 'life2>(entries: &'life1 [(&'life2 str, Bytes)], ttl: Option<Duration>) -> ();
        fn delete<'life1>(key: &'life1 str) -> bool;
        fn delete_many<'life1, 'life2>(keys: &'life1 [&'life2 str]) -> u64;
        fn delete_match<'life1>(pattern: &'life1 str) -> u64;
        fn scan<'life1>(pattern: &'life1 str) -> Vec<String>;
        fn incr<'life1>(key: &'life1 str, by: i64, ttl: Option<Duration>) -> i64;
        fn expire<'life1>(key: &'life1 str, ttl: Duration) -> bool;
        fn ttl<'life1>(key: &'life1 str) -> KeyTtl;
        fn persist<'life1>(key: &'life1 str) -> bool;
        fn gets<'life1>(key: &'life1 str) -> Option<(Bytes, CasToken)>;
        fn cas<'life1>(key: &'life1 str, value: Bytes, token: CasToken, ttl: Option<Duration>) -> CasOutcome;
        fn unlock<'life1, 'life2>(key: &'life1 str, token: &'life2 [u8]) -> bool;
        fn rate_limit<'life1>(key: &'life1 str, rule: crate::RateRule) -> crate::RateDecision;
        fn ping<>() -> ();
        fn clear<>() -> ();
        fn set_add<'life1, 'life2, 'life3>(key: &'life1 str, members: &'life2 [&'life3 str], ttl: Option<Duration>) -> ();
        fn set_members<'life1>(key: &'life1 str) -> Vec<String>;
        fn set_remove<'life1, 'life2, 'life3>(key: &'life1 str, members: &'life2 [&'life3 str]) -> u64;
    }
    fn name(&self) -> &'static str {
        (**self).name()
    }
    fn local_copies(&self) -> Option<&crate::MemoryBackend> {
        (**self).local_copies()
    }
    fn capabilities(&self) -> Capabilities {
        (**self).capabilities()
    }
}
