//! Backend layers: a backend wrapped in another that changes only some of what it does (dogpile.cache's
//! ProxyBackend, tower's `Layer`).

use std::borrow::Cow;
use std::future::Future;
use std::time::Duration;

use async_trait::async_trait;
use bytes::Bytes;

use crate::backend::{Backend, BackendError, Capabilities, CasOutcome, CasToken, KeyTtl, SetMode};

/// A backend operation, as seen by [`BackendLayer::around`].
///
/// ```
/// assert_eq!(cache_core::layer::Op::Get.as_str(), "get");
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Op {
    /// [`Backend::get`]
    Get,
    /// [`Backend::get_many`]
    GetMany,
    /// [`Backend::set`]
    Set,
    /// [`Backend::set_many`]
    SetMany,
    /// [`Backend::delete`]
    Delete,
    /// [`Backend::delete_many`]
    DeleteMany,
    /// [`Backend::delete_match`]
    DeleteMatch,
    /// [`Backend::scan`]
    Scan,
    /// [`Backend::incr`]
    Incr,
    /// [`Backend::expire`]
    Expire,
    /// [`Backend::ttl`]
    Ttl,
    /// [`Backend::unlock`]
    Unlock,
    /// [`Backend::rate_limit`]
    RateLimit,
    /// [`Backend::persist`]
    Persist,
    /// [`Backend::gets`]
    Gets,
    /// [`Backend::cas`]
    Cas,
    /// [`Backend::ping`]
    Ping,
    /// [`Backend::clear`]
    Clear,
    /// [`Backend::set_add`]
    SetAdd,
    /// [`Backend::set_members`]
    SetMembers,
    /// [`Backend::set_remove`]
    SetRemove,
}

impl Op {
    /// The operation's name, for logs and metrics.
    ///
    /// ```
    /// assert_eq!(cache_core::layer::Op::DeleteMatch.as_str(), "delete_match");
    /// ```
    pub fn as_str(self) -> &'static str {
        match self {
            Op::Get => "get",
            Op::GetMany => "get_many",
            Op::Set => "set",
            Op::SetMany => "set_many",
            Op::Delete => "delete",
            Op::DeleteMany => "delete_many",
            Op::DeleteMatch => "delete_match",
            Op::Scan => "scan",
            Op::Incr => "incr",
            Op::Expire => "expire",
            Op::Ttl => "ttl",
            Op::Unlock => "unlock",
            Op::RateLimit => "rate_limit",
            Op::Persist => "persist",
            Op::Gets => "gets",
            Op::Cas => "cas",
            Op::Ping => "ping",
            Op::Clear => "clear",
            Op::SetAdd => "set_add",
            Op::SetMembers => "set_members",
            Op::SetRemove => "set_remove",
        }
    }
}

/// What a layer changes about the backend it wraps. Every hook has a default that changes nothing, so a layer
/// writes only the hooks it needs; [`Layered`] applies them to every operation.
///
/// ```
/// use std::future::Future;
/// use cache_core::layer::{BackendLayer, LayeredExt, Op};
/// use cache_core::{Backend, BackendError, MemoryBackend};
///
/// /// Logs every failed operation.
/// struct LogFailures;
///
/// impl BackendLayer for LogFailures {
///     fn around<'a, T: Send + 'a>(
///         &'a self,
///         op: Op,
///         call: impl Future<Output = Result<T, BackendError>> + Send + 'a,
///     ) -> impl Future<Output = Result<T, BackendError>> + Send + 'a {
///         async move {
///             let result = call.await;
///             if let Err(error) = &result {
///                 eprintln!("{} failed: {error}", op.as_str());
///             }
///             result
///         }
///     }
/// }
///
/// let backend = MemoryBackend::default().layered(LogFailures);
/// assert_eq!(backend.name(), "memory");
/// ```
pub trait BackendLayer: Send + Sync + 'static {
    /// The name the wrapped backend reports; `None` keeps the inner backend's.
    fn name(&self) -> Option<&'static str> {
        None
    }

    /// The key the inner backend sees for `key`.
    fn key<'k>(&self, key: &'k str) -> Cow<'k, str> {
        Cow::Borrowed(key)
    }

    /// The glob pattern the inner backend sees for `pattern` (scans and pattern deletes).
    fn pattern<'p>(&self, pattern: &'p str) -> Cow<'p, str> {
        Cow::Borrowed(pattern)
    }

    /// The key a caller sees for `key` found by a scan of the inner backend; `None` leaves it out.
    fn unkey(&self, key: String) -> Option<String> {
        Some(key)
    }

    /// The pattern of the keys this layer owns, when they are not all of the inner backend's: then `clear`
    /// deletes only those (a prefix's keys) instead of clearing the inner backend.
    fn owned_keys(&self) -> Option<Cow<'_, str>> {
        None
    }

    /// Whether the cache may read the inner backend's local copies (see `Backend::local_copies`) past this
    /// layer. Only for layers that neither rewrite keys nor need to see every read (a circuit breaker); the
    /// default is no.
    fn passes_local_copies(&self) -> bool {
        false
    }

    /// What the wrapped backend can do, given what the inner one can.
    fn capabilities(&self, inner: Capabilities) -> Capabilities {
        inner
    }

    /// Runs every operation: where breakers, timing and logging go. The default just runs it.
    fn around<'a, T: Send + 'a>(
        &'a self,
        op: Op,
        call: impl Future<Output = Result<T, BackendError>> + Send + 'a,
    ) -> impl Future<Output = Result<T, BackendError>> + Send + 'a {
        let _ = op;
        call
    }
}

/// A backend wrapped in a [`BackendLayer`]; itself a [`Backend`], so layers stack.
///
/// The cache's memory fast path never reaches through it to a memory backend inside: a layer that
/// rewrites keys or watches operations must see every read. Value transformations that keep the fast path are
/// [`ValueLayer`](super::ValueLayer)s.
///
/// ```
/// use cache_core::layer::{KeyMangler, LayeredExt};
/// use cache_core::{Backend, MemoryBackend};
/// let backend = MemoryBackend::default().layered(KeyMangler::new().prefix("app:"));
/// assert_eq!(backend.inner().name(), "memory");
/// ```
#[derive(Debug)]
pub struct Layered<L, B> {
    layer: L,
    inner: B,
}

impl<L: BackendLayer, B: Backend> Layered<L, B> {
    /// `inner` wrapped in `layer` (also [`LayeredExt::layered`]).
    ///
    /// ```
    /// use cache_core::layer::{KeyMangler, Layered};
    /// let backend = Layered::new(KeyMangler::new().prefix("a:"), cache_core::MemoryBackend::default());
    /// # let _ = backend;
    /// ```
    pub fn new(layer: L, inner: B) -> Self {
        Self { layer, inner }
    }

    /// The layer.
    ///
    /// ```
    /// use cache_core::layer::{KeyMangler, LayeredExt};
    /// let backend = cache_core::MemoryBackend::default().layered(KeyMangler::new().prefix("a:"));
    /// assert_eq!(backend.layer().key_for("k"), "a:k");
    /// ```
    pub fn layer(&self) -> &L {
        &self.layer
    }

    /// The wrapped backend.
    ///
    /// ```
    /// use cache_core::layer::{KeyMangler, LayeredExt};
    /// use cache_core::Backend;
    /// let backend = cache_core::MemoryBackend::default().layered(KeyMangler::new());
    /// assert_eq!(backend.inner().name(), "memory");
    /// ```
    pub fn inner(&self) -> &B {
        &self.inner
    }
}

/// `backend.layered(l)`: wraps any backend in a [`BackendLayer`].
///
/// ```
/// use cache_core::layer::{KeyMangler, LayeredExt};
/// let backend = cache_core::MemoryBackend::default().layered(KeyMangler::new().prefix("app:"));
/// let cache = cache_core::Cache::builder().backend(backend).build();
/// # let _ = cache;
/// ```
pub trait LayeredExt: Backend + Sized {
    /// This backend wrapped in `layer`.
    fn layered<L: BackendLayer>(self, layer: L) -> Layered<L, Self> {
        Layered::new(layer, self)
    }
}

impl<B: Backend> LayeredExt for B {}

#[async_trait]
impl<L: BackendLayer, B: Backend> Backend for Layered<L, B> {
    async fn get(&self, key: &str) -> Result<Option<Bytes>, BackendError> {
        let key = self.layer.key(key);
        self.layer.around(Op::Get, self.inner.get(&key)).await
    }

    async fn get_many(&self, keys: &[&str]) -> Result<Vec<Option<Bytes>>, BackendError> {
        let mapped: Vec<Cow<'_, str>> = keys.iter().map(|k| self.layer.key(k)).collect();
        let mapped: Vec<&str> = mapped.iter().map(|k| k.as_ref()).collect();
        self.layer
            .around(Op::GetMany, self.inner.get_many(&mapped))
            .await
    }

    async fn set(
        &self,
        key: &str,
        value: Bytes,
        ttl: Option<Duration>,
        mode: SetMode,
    ) -> Result<bool, BackendError> {
        let key = self.layer.key(key);
        self.layer
            .around(Op::Set, self.inner.set(&key, value, ttl, mode))
            .await
    }

    async fn set_many(
        &self,
        entries: &[(&str, Bytes)],
        ttl: Option<Duration>,
    ) -> Result<(), BackendError> {
        let keys: Vec<Cow<'_, str>> = entries.iter().map(|(k, _)| self.layer.key(k)).collect();
        let mapped: Vec<(&str, Bytes)> = keys
            .iter()
            .zip(entries)
            .map(|(k, (_, v))| (k.as_ref(), v.clone()))
            .collect();
        self.layer
            .around(Op::SetMany, self.inner.set_many(&mapped, ttl))
            .await
    }

    async fn delete(&self, key: &str) -> Result<bool, BackendError> {
        let key = self.layer.key(key);
        self.layer.around(Op::Delete, self.inner.delete(&key)).await
    }

    async fn delete_many(&self, keys: &[&str]) -> Result<u64, BackendError> {
        let mapped: Vec<Cow<'_, str>> = keys.iter().map(|k| self.layer.key(k)).collect();
        let mapped: Vec<&str> = mapped.iter().map(|k| k.as_ref()).collect();
        self.layer
            .around(Op::DeleteMany, self.inner.delete_many(&mapped))
            .await
    }

    async fn delete_match(&self, pattern: &str) -> Result<u64, BackendError> {
        if !self.capabilities().contains(Capabilities::SCAN) {
            return Err(self.unsupported(Capabilities::SCAN));
        }
        let pattern = self.layer.pattern(pattern);
        self.layer
            .around(Op::DeleteMatch, self.inner.delete_match(&pattern))
            .await
    }

    async fn scan(&self, pattern: &str) -> Result<Vec<String>, BackendError> {
        if !self.capabilities().contains(Capabilities::SCAN) {
            return Err(self.unsupported(Capabilities::SCAN));
        }
        let pattern = self.layer.pattern(pattern);
        let found = self
            .layer
            .around(Op::Scan, self.inner.scan(&pattern))
            .await?;
        Ok(found
            .into_iter()
            .filter_map(|k| self.layer.unkey(k))
            .collect())
    }

    async fn incr(&self, key: &str, by: i64, ttl: Option<Duration>) -> Result<i64, BackendError> {
        let key = self.layer.key(key);
        self.layer
            .around(Op::Incr, self.inner.incr(&key, by, ttl))
            .await
    }

    async fn expire(&self, key: &str, ttl: Duration) -> Result<bool, BackendError> {
        let key = self.layer.key(key);
        self.layer
            .around(Op::Expire, self.inner.expire(&key, ttl))
            .await
    }

    async fn ttl(&self, key: &str) -> Result<KeyTtl, BackendError> {
        let key = self.layer.key(key);
        self.layer.around(Op::Ttl, self.inner.ttl(&key)).await
    }

    async fn unlock(&self, key: &str, token: &[u8]) -> Result<bool, BackendError> {
        let key = self.layer.key(key);
        self.layer
            .around(Op::Unlock, self.inner.unlock(&key, token))
            .await
    }

    async fn rate_limit(
        &self,
        key: &str,
        rule: crate::RateRule,
    ) -> Result<crate::RateDecision, BackendError> {
        let key = self.layer.key(key);
        self.layer
            .around(Op::RateLimit, self.inner.rate_limit(&key, rule))
            .await
    }

    async fn persist(&self, key: &str) -> Result<bool, BackendError> {
        let key = self.layer.key(key);
        self.layer
            .around(Op::Persist, self.inner.persist(&key))
            .await
    }

    async fn gets(&self, key: &str) -> Result<Option<(Bytes, CasToken)>, BackendError> {
        let key = self.layer.key(key);
        self.layer.around(Op::Gets, self.inner.gets(&key)).await
    }

    async fn cas(
        &self,
        key: &str,
        value: Bytes,
        token: CasToken,
        ttl: Option<Duration>,
    ) -> Result<CasOutcome, BackendError> {
        let key = self.layer.key(key);
        self.layer
            .around(Op::Cas, self.inner.cas(&key, value, token, ttl))
            .await
    }

    async fn ping(&self) -> Result<(), BackendError> {
        self.layer.around(Op::Ping, self.inner.ping()).await
    }

    async fn clear(&self) -> Result<(), BackendError> {
        match self.layer.owned_keys() {
            Some(pattern) => {
                let cleared = async { self.inner.delete_match(&pattern).await.map(|_| ()) };
                self.layer.around(Op::Clear, cleared).await
            }
            None => self.layer.around(Op::Clear, self.inner.clear()).await,
        }
    }

    async fn set_add(
        &self,
        key: &str,
        members: &[&str],
        ttl: Option<Duration>,
    ) -> Result<(), BackendError> {
        // Members are the cache's own keys (a tag's entries); they are mapped when they are used as keys.
        let key = self.layer.key(key);
        self.layer
            .around(Op::SetAdd, self.inner.set_add(&key, members, ttl))
            .await
    }

    async fn set_members(&self, key: &str) -> Result<Vec<String>, BackendError> {
        let key = self.layer.key(key);
        self.layer
            .around(Op::SetMembers, self.inner.set_members(&key))
            .await
    }

    async fn set_remove(&self, key: &str, members: &[&str]) -> Result<u64, BackendError> {
        let key = self.layer.key(key);
        self.layer
            .around(Op::SetRemove, self.inner.set_remove(&key, members))
            .await
    }

    fn name(&self) -> &'static str {
        self.layer.name().unwrap_or_else(|| self.inner.name())
    }

    fn local_copies(&self) -> Option<&crate::MemoryBackend> {
        if self.layer.passes_local_copies() {
            self.inner.local_copies()
        } else {
            None
        }
    }

    fn capabilities(&self) -> Capabilities {
        self.layer.capabilities(self.inner.capabilities())
    }
}
