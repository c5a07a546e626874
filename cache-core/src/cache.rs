//! The [`Cache`] handle, its builder and the process-wide default.

use std::sync::{Arc, LazyLock};
use std::time::Duration;

use arc_swap::ArcSwap;
use bytes::Bytes;
use parking_lot::Mutex;
use serde::de::DeserializeOwned;
use serde::Serialize;
use tracing::Instrument;

use crate::backend::{Backend, BackendError, Capabilities, KeyTtl, SetMode};
use crate::codec::Codec;
use crate::context::{self, Flags, Ops};
use crate::envelope::EnvelopeMeta;
use crate::error::CacheError;
use crate::layer::{ValueLayer, ValueLayers};
use crate::memory::{MemoryBackend, TypedRead};
use crate::metrics::{Metrics, MetricsSnapshot};
use crate::namespace::{NamespaceVersion, NamespacedBackend, DEFAULT_NAMESPACE_REFRESH};
use crate::router::{embedded_memory, Router};
use crate::shape::Storable;
use crate::singleflight::SingleFlight;
use crate::size::decoded_size_beside;
use crate::stored::StoredForm;
use crate::telemetry;
use crate::transaction;

/// A cheap-to-clone handle to a cache: one backend (or several, routed by key prefix), a codec, and counters.
///
/// Typed operations return `Result<_, CacheError>` (or, with [`CacheBuilder::suppress`], a neutral answer on a
/// backend failure); [`Cache::get_or_set`] and cached functions fail open instead (a broken backend makes them
/// compute the value).
///
/// Every typed operation honours the current [`context`](crate::context) scope, as cached functions do:
///
/// | operation | switched off by | answer when switched off |
/// | --- | --- | --- |
/// | `get`, `get_with_meta`, `get_many`, `ttl`, `scan` | `Ops::GET` | a miss (`None`, `KeyTtl::Missing`, no keys) |
/// | the reads above inside [`invalidate_further`](crate::context::invalidate_further) | — | the key is deleted (unless `Ops::DELETE` is off), then a miss |
/// | `get`, `get_with_meta`, `get_many` inside [`with_max_age`](crate::context::with_max_age) | — | older values are misses |
/// | `set`, `set_many`, `expire` | `Ops::SET` | nothing written (`expire` answers `false`) |
/// | `delete`, `delete_many`, `delete_match`, `delete_tags`, `clear` | `Ops::DELETE` | nothing deleted (`false` / `0`) |
/// | `incr` | `Ops::INCR` | [`CacheError::Disabled`]: a counter has no neutral value |
///
/// Locks ([`Cache::lock`], [`Cache::unlock`]) and [`Cache::ping`] are never switched off: a disabled lock would
/// silently stop excluding. Typed reads count as hits and misses in [`Cache::metrics`]; they are not reported to
/// [`detect`](crate::context::detect), which describes cached functions.
///
/// ```
/// use cache_core::Cache;
/// use std::time::Duration;
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), cache_core::CacheError> {
/// let cache = Cache::memory();
/// cache.set("answer", &42u32, Some(Duration::from_secs(60))).await?;
/// assert_eq!(cache.get::<u32>("answer").await?, Some(42));
/// let v = cache.get_or_set("other", None, || async { 7u32 }).await;
/// assert_eq!(v, 7);
/// # Ok(()) }
/// ```
#[derive(Clone)]
pub struct Cache {
    pub(crate) inner: Arc<Inner>,
}

pub(crate) struct Inner {
    router: Router,
    form: StoredForm,
    pub(crate) strict: bool,
    suppress: bool,
    /// Shared with the cache's namespace views, so their hits and misses count here too.
    pub(crate) metrics: Arc<Metrics>,
    pub(crate) flights: SingleFlight,
    /// Set on a namespace view: its version, which `clear` bumps.
    namespace: Option<Arc<NamespaceVersion>>,
    /// The namespace views handed out, by name, so each keeps the version it read.
    namespaces: Mutex<lru::LruCache<String, Cache>>,
    namespace_refresh: Duration,
}

/// Namespace views kept per cache; more are rebuilt on use (and read their version once more).
const NAMESPACE_VIEWS: usize = 10_000;

impl std::fmt::Debug for Cache {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Cache")
            .field("backend", &self.inner.router.default_backend().name())
            .field("routes", &self.inner.router.routes())
            .field("codec", &self.inner.form.codec)
            .field("strict", &self.inner.strict)
            .field("suppress", &self.inner.suppress)
            .finish()
    }
}

/// Configures a [`Cache`].
///
/// ```
/// use cache_core::{Cache, Codec, MemoryBackend};
/// use std::sync::Arc;
/// let sessions = Arc::new(MemoryBackend::builder().max_entries(100).build());
/// let cache = Cache::builder()
///     .backend(MemoryBackend::builder().max_entries(10_000).build())
///     .route("session:", sessions)
///     .codec(Codec::Json)
///     .build();
/// ```
pub struct CacheBuilder {
    default: Option<Arc<dyn Backend>>,
    routes: Vec<(String, Arc<dyn Backend>)>,
    codec: Codec,
    strict: bool,
    suppress: bool,
    required: Capabilities,
    layers: ValueLayers,
    namespace_refresh: Duration,
}

impl Default for CacheBuilder {
    fn default() -> Self {
        Self {
            default: None,
            routes: Vec::new(),
            codec: Codec::default(),
            strict: false,
            suppress: false,
            required: Capabilities::empty(),
            layers: ValueLayers::default(),
            namespace_refresh: DEFAULT_NAMESPACE_REFRESH,
        }
    }
}

impl CacheBuilder {
    /// The backend for every key no route claims. Default: an in-memory backend of
    /// [`MemoryBackend::DEFAULT_MAX_ENTRIES`] entries.
    pub fn backend(self, backend: impl Backend) -> Self {
        self.backend_arc(Arc::new(backend))
    }

    /// Like [`CacheBuilder::backend`] for a backend that is already shared.
    pub fn backend_arc(mut self, backend: Arc<dyn Backend>) -> Self {
        self.default = Some(backend);
        self
    }

    /// Sends keys starting with `prefix` to `backend` (like cashews' `setup(url, prefix=...)`).
    pub fn route(mut self, prefix: impl Into<String>, backend: Arc<dyn Backend>) -> Self {
        self.routes.push((prefix.into(), backend));
        self
    }

    /// The codec for values written from now on (reads follow each value's envelope). Default MessagePack.
    pub fn codec(mut self, codec: Codec) -> Self {
        self.codec = codec;
        self
    }

    /// Strict mode: [`Cache::get_or_set`] returns backend failures as errors (see
    /// [`Cache::try_get_or_set`]) instead of failing open. Default off.
    pub fn strict(mut self, strict: bool) -> Self {
        self.strict = strict;
        self
    }

    /// Suppress backend failures in the typed API (cashews' `suppress`): a read on a failing backend answers
    /// a miss (`Ok(None)`, no keys, `KeyTtl::Missing`), a write or delete answers "nothing done" (`Ok(())`,
    /// `Ok(false)`, `Ok(0)`). Each failure is still logged and counted in
    /// [`MetricsSnapshot::backend_errors`]. [`Cache::incr`], locks and [`Cache::ping`] keep reporting errors
    /// (they have no neutral answer). Default off. Cached functions and [`Cache::get_or_set`] fail open either
    /// way.
    ///
    /// ```
    /// let cache = cache_core::Cache::builder().suppress(true).build();
    /// assert!(cache.is_suppressing());
    /// ```
    pub fn suppress(mut self, suppress: bool) -> Self {
        self.suppress = suppress;
        self
    }

    /// Adds a value layer ([`layer::Compress`](crate::layer), [`layer::Sign`](crate::layer), or your own
    /// [`ValueLayer`]): values pass the layers in the order they were added on their way to the backend, and in
    /// reverse on the way back. Add signing last, so values are authenticated before anything else reads them.
    ///
    /// ```
    /// use std::borrow::Cow;
    /// use cache_core::layer::{LayerError, ValueLayer};
    /// struct Identity;
    /// impl ValueLayer for Identity {
    ///     fn name(&self) -> &'static str { "identity" }
    ///     fn seal(&self, _key: &str, value: Vec<u8>) -> Vec<u8> { value }
    ///     fn open<'a>(&self, _key: &str, stored: &'a [u8]) -> Result<Cow<'a, [u8]>, LayerError> {
    ///         Ok(Cow::Borrowed(stored))
    ///     }
    /// }
    /// let cache = cache_core::Cache::builder().value_layer(Identity).build();
    /// # let _ = cache;
    /// ```
    pub fn value_layer(mut self, layer: impl ValueLayer) -> Self {
        self.layers.push(Arc::new(layer));
        self
    }

    /// How long a [`Cache::namespace`] view reuses the namespace version it read before reading it again
    /// (default [`DEFAULT_NAMESPACE_REFRESH`], 1 s). A clear through a view is seen at once by that view and by
    /// every view of the same name from this cache; other processes see it within this window, so it is how
    /// long they may still serve the namespace's entries from before the clear. Zero reads the version on every
    /// operation (one more round trip each).
    ///
    /// ```
    /// let cache = cache_core::Cache::builder().namespace_refresh(std::time::Duration::from_millis(100)).build();
    /// # let _ = cache;
    /// ```
    pub fn namespace_refresh(mut self, refresh: Duration) -> Self {
        self.namespace_refresh = refresh;
        self
    }

    /// Capabilities every backend of this cache must have, checked by [`CacheBuilder::try_build`]: for
    /// example [`Capabilities::SETS`] when cached functions use tags, [`Capabilities::LOCKS`] for `lock = true`,
    /// [`Capabilities::SCAN`] for `invalidate_all` and `delete_match`.
    ///
    /// ```
    /// use cache_core::{Cache, Capabilities};
    /// let cache = Cache::builder().require(Capabilities::SETS | Capabilities::LOCKS).try_build().unwrap();
    /// # let _ = cache;
    /// ```
    pub fn require(mut self, capabilities: Capabilities) -> Self {
        self.required |= capabilities;
        self
    }

    /// Builds the cache after checking that every backend (the default one and each route's) has the
    /// capabilities given to [`CacheBuilder::require`]; the error names the first backend that lacks one and
    /// what it lacks.
    ///
    /// ```
    /// use cache_core::{Cache, Capabilities, CacheError, BackendError};
    /// assert!(Cache::builder().require(Capabilities::SCAN).try_build().is_ok());
    /// let null = || Cache::builder().backend(cache_core::NullBackend::new("off in tests"));
    /// assert!(matches!(
    ///     null().require(Capabilities::COUNTERS).try_build(),
    ///     Err(CacheError::Backend(BackendError::Unsupported { backend: "null", .. }))
    /// ));
    /// ```
    pub fn try_build(self) -> Result<Cache, CacheError> {
        let required = self.required;
        let cache = self.build();
        cache.require(required)?;
        Ok(cache)
    }

    /// Builds the cache. Capabilities given to [`CacheBuilder::require`] are not checked here (use
    /// [`CacheBuilder::try_build`]); an operation a backend cannot do answers [`BackendError::Unsupported`]
    /// when it is used.
    ///
    /// ```
    /// let cache = cache_core::Cache::builder().build();
    /// # let _ = cache;
    /// ```
    pub fn build(self) -> Cache {
        Cache {
            inner: Arc::new(Inner {
                router: Router::new(
                    self.default
                        .unwrap_or_else(|| Arc::new(MemoryBackend::default())),
                    self.routes,
                ),
                form: StoredForm {
                    id: crate::stored::next_form_id(),
                    codec: self.codec,
                    layers: self.layers,
                },
                strict: self.strict,
                suppress: self.suppress,
                metrics: Arc::default(),
                flights: SingleFlight::default(),
                namespace: None,
                namespaces: Mutex::new(lru::LruCache::new(NAMESPACE_VIEWS_NONZERO)),
                namespace_refresh: self.namespace_refresh,
            }),
        }
    }
}

/// Where [`Cache::read_route`] says a read is served from.
#[derive(Clone, Copy)]
pub(crate) enum ReadRoute<'a> {
    /// The current transaction holds a pending write (or delete) of the key; [`Cache::read_typed_at`] reads it.
    Pending,
    /// The embedded memory backend, whose reads never wait.
    Memory(&'a MemoryBackend),
    /// Any other backend.
    Backend(&'a Arc<dyn Backend>),
}

/// A memory read never waits, so a loop of hits would never return to the scheduler and could starve timers
/// and other tasks on its worker. Like Tokio's own primitives, each read takes a unit of the task's cooperative
/// budget and yields once it is used up (outside a Tokio runtime this does nothing).
pub(crate) async fn consume_budget() {
    tokio::task::coop::consume_budget().await;
}

static GLOBAL: LazyLock<ArcSwap<Inner>> = LazyLock::new(|| ArcSwap::new(Cache::memory().inner));

/// The process-wide default cache the macros use when no `cache = ...` is given: until [`set_global`] is
/// called, a bounded in-memory cache ([`MemoryBackend::DEFAULT_MAX_ENTRIES`] entries).
///
/// ```
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() {
/// cache_core::global().set("k", &1u8, None).await.unwrap();
/// # }
/// ```
pub fn global() -> Cache {
    Cache {
        inner: GLOBAL.load_full(),
    }
}

/// Replaces the process-wide default cache. Calls already running keep the cache they started with.
///
/// ```
/// let cache = cache_core::Cache::builder().build();
/// cache_core::set_global(cache);
/// ```
pub fn set_global(cache: Cache) {
    GLOBAL.store(cache.inner);
}

impl Cache {
    /// Starts configuring a cache.
    pub fn builder() -> CacheBuilder {
        CacheBuilder::default()
    }

    /// A cache on a fresh in-memory backend with default bounds.
    pub fn memory() -> Cache {
        Self::builder().build()
    }

    /// What every backend of this cache can do: the capabilities the default backend and all routes share.
    ///
    /// ```
    /// use cache_core::{Cache, Capabilities};
    /// assert!(Cache::memory().capabilities().contains(Capabilities::SETS));
    /// ```
    pub fn capabilities(&self) -> Capabilities {
        self.inner.router.capabilities()
    }

    /// Checks that every backend of this cache has `capabilities`; the error names the first backend that lacks
    /// one and what it lacks.
    ///
    /// ```
    /// use cache_core::{Cache, Capabilities};
    /// assert!(Cache::memory().require(Capabilities::COUNTERS).is_ok());
    /// let null = Cache::builder().backend(cache_core::NullBackend::new("off in tests")).build();
    /// assert_eq!(
    ///     null.require(Capabilities::COUNTERS).unwrap_err().to_string(),
    ///     "the null backend cannot keep counters"
    /// );
    /// ```
    pub fn require(&self, capabilities: Capabilities) -> Result<(), BackendError> {
        self.inner.router.require(capabilities)
    }

    /// The backend that holds `key`.
    ///
    /// ```
    /// assert_eq!(cache_core::Cache::memory().backend_for("k").name(), "memory");
    /// ```
    pub fn backend_for(&self, key: &str) -> &Arc<dyn Backend> {
        self.inner.router.backend_for(key)
    }

    /// Every distinct backend (the default one first), for operations over all keys.
    fn backends(&self) -> impl Iterator<Item = &Arc<dyn Backend>> {
        self.inner.router.backends()
    }

    /// The codec used for writes.
    pub fn codec(&self) -> Codec {
        self.inner.form.codec
    }

    /// Whether this cache is strict (see [`CacheBuilder::strict`]).
    pub fn is_strict(&self) -> bool {
        self.inner.strict
    }

    /// Whether backend failures of the typed API are suppressed (see [`CacheBuilder::suppress`]).
    ///
    /// ```
    /// assert!(!cache_core::Cache::memory().is_suppressing());
    /// ```
    pub fn is_suppressing(&self) -> bool {
        self.inner.suppress
    }

    /// The counters so far.
    pub fn metrics(&self) -> MetricsSnapshot {
        self.inner.metrics.snapshot()
    }

    pub(crate) fn metrics_ref(&self) -> &Metrics {
        &self.inner.metrics
    }

    /// Encodes a value into its stored form under `key` (see [`StoredForm::encode`]).
    pub(crate) fn encode<T: Serialize + ?Sized>(
        &self,
        key: &str,
        value: &T,
        meta: EnvelopeMeta,
    ) -> Result<Bytes, CacheError> {
        self.inner.form.encode(key, value, meta)
    }

    /// Reads and decodes one entry. Undecodable bytes are counted and logged, and read as `None`.
    pub(crate) async fn read_entry<T: DeserializeOwned>(
        &self,
        key: &str,
    ) -> Result<Option<(EnvelopeMeta, T)>, CacheError> {
        self.read_bytes_from(self.backend_for(key), key).await
    }

    /// Reads and decodes one entry from the backend that holds it.
    async fn read_bytes_from<T: DeserializeOwned>(
        &self,
        backend: &Arc<dyn Backend>,
        key: &str,
    ) -> Result<Option<(EnvelopeMeta, T)>, CacheError> {
        let Some(bytes) = self.read_raw_from(backend, key).await? else {
            return Ok(None);
        };
        Ok(self.decode_or_miss(key, &bytes))
    }

    /// The stored bytes of `key`, undecoded (failures logged and counted).
    pub(crate) async fn read_raw(&self, key: &str) -> Result<Option<Bytes>, CacheError> {
        self.read_raw_from(self.backend_for(key), key).await
    }

    async fn read_raw_from(
        &self,
        backend: &Arc<dyn Backend>,
        key: &str,
    ) -> Result<Option<Bytes>, CacheError> {
        if let Some(pending) = self.transaction_read(key) {
            return Ok(pending);
        }
        if let Some(local) = backend.local_copies()
            && let Ok(Some(bytes)) = local.get_now(key)
        {
            consume_budget().await;
            return Ok(Some(bytes));
        }
        let read = match self.inner.router.as_memory(backend) {
            Some(memory) => {
                consume_budget().await;
                memory.get_now(key)
            }
            None => {
                let started = telemetry::backend_timer();
                let read = backend
                    .get(key)
                    .instrument(telemetry::backend_span(backend.name(), "get"))
                    .await;
                telemetry::backend_duration(backend.name(), "get", started);
                read
            }
        };
        Ok(read.inspect_err(|e| self.note_backend_error("get", key, e))?)
    }

    /// [`Cache::read_entry`] for the strategies' hit path: on a memory backend a hit clones the
    /// entry's decoded copy instead of decoding its bytes (see `MemoryBackend::get_typed`).
    pub(crate) async fn read_typed<T>(
        &self,
        key: &str,
    ) -> Result<Option<(EnvelopeMeta, T)>, CacheError>
    where
        T: Serialize + DeserializeOwned + Clone + Send + Sync + 'static,
    {
        self.read_typed_at(self.read_route(key), key).await
    }

    /// Where a read of `key` is served from. The strategies' hit path matches [`ReadRoute::Memory`] itself (taking
    /// the cooperative budget, [`consume_budget`], and calling [`Cache::read_memory_typed`]) instead of building
    /// [`Cache::read_typed_at`]'s future; the route is looked up once either way.
    #[inline(always)]
    pub(crate) fn read_route(&self, key: &str) -> ReadRoute<'_> {
        if self.transaction_read(key).is_some() {
            return ReadRoute::Pending;
        }
        match self.inner.router.route(key) {
            Ok(memory) => ReadRoute::Memory(memory),
            Err(backend) => ReadRoute::Backend(backend),
        }
    }

    /// [`Cache::read_typed`] along a route from [`Cache::read_route`].
    pub(crate) async fn read_typed_at<T>(
        &self,
        route: ReadRoute<'_>,
        key: &str,
    ) -> Result<Option<(EnvelopeMeta, T)>, CacheError>
    where
        T: Serialize + DeserializeOwned + Clone + Send + Sync + 'static,
    {
        let backend = match route {
            ReadRoute::Pending => {
                let pending = self.transaction_read(key).flatten();
                return Ok(pending.and_then(|bytes| self.decode_or_miss(key, &bytes)));
            }
            ReadRoute::Memory(memory) => {
                consume_budget().await;
                return self.read_memory_typed(memory, key);
            }
            ReadRoute::Backend(backend) => backend,
        };
        if let Some(local) = backend.local_copies() {
            // A local copy of a remote value: a hit is served like a memory hit; anything else asks the backend.
            let read = local.get_typed::<(EnvelopeMeta, T), _>(key, self.inner.form.id, |bytes| {
                let entry = self.decode_or_miss::<T>(key, bytes)?;
                let size = decoded_size_beside(&entry.1, std::mem::size_of::<EnvelopeMeta>());
                Some((entry, size))
            });
            if let Ok(TypedRead::Hit(entry)) = read {
                consume_budget().await;
                return Ok(Some(entry));
            }
        }
        self.read_bytes_from(backend, key).await
    }

    /// [`Cache::read_typed`] on the embedded memory backend `memory`, which never waits.
    #[inline]
    pub(crate) fn read_memory_typed<T>(
        &self,
        memory: &MemoryBackend,
        key: &str,
    ) -> Result<Option<(EnvelopeMeta, T)>, CacheError>
    where
        T: Serialize + DeserializeOwned + Clone + Send + Sync + 'static,
    {
        let read = memory.get_typed::<(EnvelopeMeta, T), _>(key, self.inner.form.id, |bytes| {
            // Undecodable bytes are counted and logged here, and read as a miss.
            let entry = self.decode_or_miss::<T>(key, bytes)?;
            let size = decoded_size_beside(&entry.1, std::mem::size_of::<EnvelopeMeta>());
            Some((entry, size))
        });
        match read {
            Ok(TypedRead::Hit(entry)) => Ok(Some(entry)),
            Ok(TypedRead::Miss | TypedRead::Unreadable) => Ok(None),
            Err(error) => {
                self.note_backend_error("get", key, &error);
                Err(error.into())
            }
        }
    }

    /// What the current transaction holds for `key`: `Some(None)` deleted in it, `None` untouched (or no
    /// transaction).
    #[inline]
    fn transaction_read(&self, key: &str) -> Option<Option<Bytes>> {
        transaction::pending(self, key)
    }

    /// Whether every backend of this cache is the embedded memory backend, whose operations never wait: then
    /// sync callers drive them on their own thread.
    pub(crate) fn all_embedded_memory(&self) -> bool {
        self.backends()
            .all(|backend| embedded_memory(backend).is_some())
    }

    /// Identifies this cache (namespace views are caches of their own) for the transaction buffers.
    pub(crate) fn identity(&self) -> usize {
        Arc::as_ptr(&self.inner) as usize
    }

    /// Whether `key` holds a value in the backend, bypassing any transaction; a failed read says no.
    pub(crate) async fn exists_direct(&self, key: &str) -> bool {
        matches!(self.backend_for(key).get(key).await, Ok(Some(_)))
    }

    pub(crate) fn decode_or_miss<T: DeserializeOwned>(
        &self,
        key: &str,
        bytes: &[u8],
    ) -> Option<(EnvelopeMeta, T)> {
        match self.inner.form.decode::<T>(key, bytes) {
            Ok((meta, _)) if meta.is_expired() => None,
            Ok(entry) => Some(entry),
            Err(error) => {
                self.inner.metrics.decode_error();
                tracing::warn!(key, %error, "unreadable cached value treated as a miss");
                None
            }
        }
    }

    /// A cache call a sync caller could not make (see `sync_run`): logged and counted like a backend failure.
    pub(crate) fn note_refused(&self, error: &CacheError) {
        self.inner.metrics.backend_error();
        tracing::warn!(%error, "cache not used");
    }

    pub(crate) fn note_backend_error(
        &self,
        op: &'static str,
        key: &str,
        error: &dyn std::fmt::Display,
    ) {
        self.inner.metrics.backend_error();
        telemetry::backend_error(self.backend_for(key).name(), op);
        tracing::warn!(op, key, %error, "cache backend error");
    }

    pub(crate) async fn write_bytes(
        &self,
        key: &str,
        bytes: Bytes,
        ttl: Option<Duration>,
    ) -> Result<(), CacheError> {
        self.write_bytes_mode(key, bytes, ttl, SetMode::Always)
            .await
            .map(|_| ())
    }

    /// Writes stored bytes in `mode` (into the current transaction, if one runs); returns whether they were
    /// written.
    pub(crate) async fn write_bytes_mode(
        &self,
        key: &str,
        bytes: Bytes,
        ttl: Option<Duration>,
        mode: SetMode,
    ) -> Result<bool, CacheError> {
        if transaction::any_running()
            && let Some(written) =
                transaction::buffer_set(self, key, bytes.clone(), ttl, mode).await
        {
            return Ok(written);
        }
        self.write_direct(key, bytes, ttl, mode).await
    }

    /// [`Cache::write_bytes_mode`] straight to the backend.
    pub(crate) async fn write_direct(
        &self,
        key: &str,
        bytes: Bytes,
        ttl: Option<Duration>,
        mode: SetMode,
    ) -> Result<bool, CacheError> {
        let op = match mode {
            SetMode::IfAbsent => "add",
            _ => "set",
        };
        let backend = self.backend_for(key);
        let started = telemetry::backend_timer();
        let written = backend
            .set(key, bytes, ttl, mode)
            .instrument(telemetry::backend_span(backend.name(), op))
            .await
            .inspect_err(|e| self.note_backend_error(op, key, e))?;
        telemetry::backend_duration(backend.name(), op, started);
        Ok(written)
    }

    /// The stored bytes of `key` with their envelope changed by `change` and the payload kept: `None` when
    /// they are not a readable envelope (through the value layers) or have expired.
    pub(crate) fn restamp(
        &self,
        key: &str,
        bytes: &[u8],
        change: impl FnOnce(&mut EnvelopeMeta),
    ) -> Option<Bytes> {
        self.inner
            .form
            .restamp(key, bytes, change)
            .inspect_err(
                |error| tracing::warn!(key, %error, "unreadable cached value left as it is"),
            )
            .ok()
            .flatten()
    }

    /// Encodes and writes a value, outside any scope and uncounted: for the library's own records.
    pub(crate) async fn store_internal<T: Serialize + ?Sized>(
        &self,
        key: &str,
        value: &T,
        ttl: Option<Duration>,
    ) -> Result<(), CacheError> {
        let bytes = self.encode(key, value, EnvelopeMeta::new(self.inner.form.codec, ttl))?;
        self.write_bytes(key, bytes, ttl).await
    }

    /// Deletes one key, outside any scope: for strategies, which apply the scope themselves. Inside a
    /// transaction, buffered.
    pub(crate) async fn delete_internal(&self, key: &str) -> Result<bool, CacheError> {
        if transaction::any_running()
            && let Some(existed) = transaction::buffer_delete(self, key).await
        {
            return Ok(existed);
        }
        self.delete_direct(key).await
    }

    /// Deletes one key straight in the backend.
    pub(crate) async fn delete_direct(&self, key: &str) -> Result<bool, CacheError> {
        let backend = self.backend_for(key);
        let started = telemetry::backend_timer();
        let deleted = backend
            .delete(key)
            .instrument(telemetry::backend_span(backend.name(), "delete"))
            .await
            .inspect_err(|e| self.note_backend_error("delete", key, e))?;
        telemetry::backend_duration(backend.name(), "delete", started);
        Ok(deleted)
    }

    /// [`Cache::incr`] outside any scope: for strategies, which apply the scope themselves.
    pub(crate) async fn incr_internal(
        &self,
        key: &str,
        by: i64,
        ttl: Option<Duration>,
    ) -> Result<i64, CacheError> {
        Ok(self
            .backend_for(key)
            .incr(key, by, ttl)
            .await
            .inspect_err(|e| self.note_backend_error("incr", key, e))?)
    }

    async fn delete_many_internal(&self, keys: &[&str]) -> Result<u64, CacheError> {
        if transaction::in_scope() {
            let mut deleted = 0;
            for key in keys {
                deleted += u64::from(self.delete_internal(key).await?);
            }
            return Ok(deleted);
        }
        let mut deleted = 0;
        for (backend, positions) in self.group_by_backend(keys) {
            let subset: Vec<&str> = positions.iter().map(|&i| keys[i]).collect();
            deleted += backend
                .delete_many(&subset)
                .await
                .inspect_err(|e| self.note_backend_error("delete_many", subset[0], e))?;
        }
        Ok(deleted)
    }

    /// With [`CacheBuilder::suppress`], a backend failure becomes `neutral` (it was logged and counted where it
    /// happened).
    pub(crate) fn suppressed<T>(
        &self,
        result: Result<T, CacheError>,
        neutral: T,
    ) -> Result<T, CacheError> {
        match result {
            Err(error) if self.inner.suppress && error.is_backend() => Ok(neutral),
            other => other,
        }
    }

    /// Applies the scope to a typed read of `keys`: inside `invalidate_further` they are deleted and missed, with
    /// reads switched off they are missed. Returns whether to read them; the misses are counted.
    async fn scoped_read(&self, keys: &[&str], flags: Flags) -> Result<bool, CacheError> {
        if flags.invalidate_further && flags.allows(Ops::DELETE) {
            self.suppressed(self.delete_many_internal(keys).await, 0)?;
        }
        if flags.invalidate_further || !flags.allows(Ops::GET) {
            for _ in keys {
                self.inner.metrics.miss();
            }
            return Ok(false);
        }
        Ok(true)
    }

    /// Whether a read value is usable under the scope's `max_age`; counts the hit or miss.
    fn count_read(&self, meta: Option<&EnvelopeMeta>, flags: Flags) -> bool {
        let usable = meta.is_some_and(|meta| flags.max_age.is_none_or(|max| meta.age() < max));
        if usable {
            self.inner.metrics.hit();
        } else {
            self.inner.metrics.miss();
        }
        usable
    }

    /// Reads a value. A value that does not decode as `T` (foreign bytes, another type or version) is `None`.
    ///
    /// On the memory backend a hit is a clone of the entry's decoded copy (made by the first read, shared with
    /// cached functions reading the same key as the same type), not a decode.
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() {
    /// let cache = cache_core::Cache::memory();
    /// assert_eq!(cache.get::<String>("missing").await.unwrap(), None);
    /// # }
    /// ```
    pub async fn get<T: Storable>(&self, key: &str) -> Result<Option<T>, CacheError> {
        Ok(self.get_with_meta(key).await?.map(|(_, v)| v))
    }

    /// Reads a value with its metadata (age, remaining TTL).
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() {
    /// let cache = cache_core::Cache::memory();
    /// cache.set("k", &1u8, Some(std::time::Duration::from_secs(9))).await.unwrap();
    /// let (meta, v) = cache.get_with_meta::<u8>("k").await.unwrap().unwrap();
    /// assert_eq!(v, 1);
    /// assert!(meta.remaining_ttl().unwrap().as_secs() <= 9);
    /// # }
    /// ```
    pub async fn get_with_meta<T: Storable>(
        &self,
        key: &str,
    ) -> Result<Option<(EnvelopeMeta, T)>, CacheError> {
        let flags = context::flags();
        if !self.scoped_read(&[key], flags).await? {
            return Ok(None);
        }
        let entry = self.suppressed(self.read_typed(key).await, None)?;
        let usable = self.count_read(entry.as_ref().map(|(meta, _)| meta), flags);
        Ok(entry.filter(|_| usable))
    }

    /// Reads many values, one round trip per backend.
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() {
    /// let cache = cache_core::Cache::memory();
    /// cache.set("a", &1u8, None).await.unwrap();
    /// assert_eq!(cache.get_many::<u8>(&["a", "b"]).await.unwrap(), vec![Some(1), None]);
    /// # }
    /// ```
    pub async fn get_many<T: DeserializeOwned>(
        &self,
        keys: &[&str],
    ) -> Result<Vec<Option<T>>, CacheError> {
        let mut out: Vec<Option<T>> = keys.iter().map(|_| None).collect();
        let flags = context::flags();
        if !self.scoped_read(keys, flags).await? {
            return Ok(out);
        }
        if transaction::in_scope() {
            // One key at a time, each seeing the transaction's own writes first.
            for (slot, key) in out.iter_mut().zip(keys) {
                let entry = self.suppressed(self.read_entry::<T>(key).await, None)?;
                if self.count_read(entry.as_ref().map(|(meta, _)| meta), flags) {
                    *slot = entry.map(|(_, v)| v);
                }
            }
            return Ok(out);
        }
        for (backend, positions) in self.group_by_backend(keys) {
            let subset: Vec<&str> = positions.iter().map(|&i| keys[i]).collect();
            let read = backend
                .get_many(&subset)
                .await
                .map_err(CacheError::from)
                .inspect_err(|e| self.note_backend_error("get_many", subset[0], e));
            let Some(values) = self.suppressed(read.map(Some), None)? else {
                for _ in &subset {
                    self.inner.metrics.miss();
                }
                continue;
            };
            for ((position, key), bytes) in positions.into_iter().zip(subset).zip(values) {
                let entry = bytes.and_then(|b| self.decode_or_miss::<T>(key, &b));
                if self.count_read(entry.as_ref().map(|(meta, _)| meta), flags) {
                    out[position] = entry.map(|(_, v)| v);
                }
            }
        }
        Ok(out)
    }

    /// The positions of `keys`, grouped by the backend that holds them (each key routed once; groups in the order
    /// their first key appears).
    pub(crate) fn group_by_backend<'a>(
        &'a self,
        keys: &[&str],
    ) -> Vec<(&'a Arc<dyn Backend>, Vec<usize>)> {
        let mut groups: Vec<(&Arc<dyn Backend>, Vec<usize>)> = Vec::new();
        for (position, key) in keys.iter().enumerate() {
            let backend = self.backend_for(key);
            match groups.iter_mut().find(|(b, _)| Arc::ptr_eq(b, backend)) {
                Some((_, positions)) => positions.push(position),
                None => groups.push((backend, vec![position])),
            }
        }
        groups
    }

    /// Stores a value for `ttl` (or until evicted).
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() {
    /// let cache = cache_core::Cache::memory();
    /// cache.set("k", &vec![1, 2], Some(std::time::Duration::from_secs(5))).await.unwrap();
    /// # }
    /// ```
    pub async fn set<T: Serialize + ?Sized>(
        &self,
        key: &str,
        value: &T,
        ttl: Option<Duration>,
    ) -> Result<(), CacheError> {
        if context::is_disabled(Ops::SET) {
            return Ok(());
        }
        self.suppressed(self.store_internal(key, value, ttl).await, ())
    }

    /// Stores a value only if `key` holds none (memcached's and dogpile's `add`, Redis `SET NX`); `Ok(true)` when it
    /// was stored, `Ok(false)` when the key already had a value (or writes are disabled in this scope).
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() {
    /// let cache = cache_core::Cache::memory();
    /// assert!(cache.add("k", &1u8, None).await.unwrap());
    /// assert!(!cache.add("k", &2u8, None).await.unwrap());
    /// assert_eq!(cache.get::<u8>("k").await.unwrap(), Some(1));
    /// # }
    /// ```
    pub async fn add<T: Serialize + ?Sized>(
        &self,
        key: &str,
        value: &T,
        ttl: Option<Duration>,
    ) -> Result<bool, CacheError> {
        if context::is_disabled(Ops::SET) {
            return Ok(false);
        }
        let added = async {
            let bytes = self.encode(key, value, EnvelopeMeta::new(self.inner.form.codec, ttl))?;
            self.write_bytes_mode(key, bytes, ttl, SetMode::IfAbsent)
                .await
        };
        self.suppressed(added.await, false)
    }

    /// Stores many values with one TTL, one round trip per backend.
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() {
    /// let cache = cache_core::Cache::memory();
    /// cache.set_many(&[("a", &1u8), ("b", &2u8)], None).await.unwrap();
    /// assert_eq!(cache.get::<u8>("b").await.unwrap(), Some(2));
    /// # }
    /// ```
    pub async fn set_many<T: Serialize>(
        &self,
        entries: &[(&str, &T)],
        ttl: Option<Duration>,
    ) -> Result<(), CacheError> {
        if context::is_disabled(Ops::SET) {
            return Ok(());
        }
        if transaction::in_scope() {
            for (key, value) in entries {
                self.suppressed(self.store_internal(key, value, ttl).await, ())?;
            }
            return Ok(());
        }
        let keys: Vec<&str> = entries.iter().map(|(k, _)| *k).collect();
        for (backend, positions) in self.group_by_backend(&keys) {
            let mut batch = Vec::with_capacity(positions.len());
            for position in positions {
                let (key, value) = entries[position];
                let meta = EnvelopeMeta::new(self.inner.form.codec, ttl);
                batch.push((key, self.encode(key, value, meta)?));
            }
            let written = backend
                .set_many(&batch, ttl)
                .await
                .map_err(CacheError::from)
                .inspect_err(|e| self.note_backend_error("set_many", batch[0].0, e));
            self.suppressed(written, ())?;
        }
        Ok(())
    }

    /// Deletes one key. Returns whether it existed.
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() {
    /// let cache = cache_core::Cache::memory();
    /// assert!(!cache.delete("nothing").await.unwrap());
    /// # }
    /// ```
    pub async fn delete(&self, key: &str) -> Result<bool, CacheError> {
        if context::is_disabled(Ops::DELETE) {
            return Ok(false);
        }
        self.suppressed(self.delete_internal(key).await, false)
    }

    /// Deletes many keys. Returns how many existed.
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() {
    /// let cache = cache_core::Cache::memory();
    /// cache.set("a", &1u8, None).await.unwrap();
    /// assert_eq!(cache.delete_many(&["a", "b"]).await.unwrap(), 1);
    /// # }
    /// ```
    pub async fn delete_many(&self, keys: &[&str]) -> Result<u64, CacheError> {
        if context::is_disabled(Ops::DELETE) {
            return Ok(0);
        }
        self.suppressed(self.delete_many_internal(keys).await, 0)
    }

    /// Deletes every key matching a Redis-style glob, on every backend. Returns how many were deleted.
    ///
    /// On a backend with a key prefix the pattern applies below the prefix; a prefix that is itself a prefix of
    /// another application's prefix on the same server (`app:` and `app:b:`) lets `"*"` reach that
    /// application's keys too — give each application a prefix that no other one starts with.
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() {
    /// let cache = cache_core::Cache::memory();
    /// cache.set("user:1", &1u8, None).await.unwrap();
    /// cache.set("user:2", &2u8, None).await.unwrap();
    /// assert_eq!(cache.delete_match("user:*").await.unwrap(), 2);
    /// # }
    /// ```
    pub async fn delete_match(&self, pattern: &str) -> Result<u64, CacheError> {
        if context::is_disabled(Ops::DELETE) {
            return Ok(0);
        }
        if transaction::any_running() && transaction::buffer_delete_match(self, pattern).is_some() {
            // Deleted at commit; nothing is deleted yet.
            return Ok(0);
        }
        self.delete_match_direct(pattern).await
    }

    /// [`Cache::delete_match`] straight in the backends.
    pub(crate) async fn delete_match_direct(&self, pattern: &str) -> Result<u64, CacheError> {
        let mut deleted = 0;
        for backend in self.backends() {
            let result = backend
                .delete_match(pattern)
                .await
                .map_err(CacheError::from)
                .inspect_err(|e| self.note_backend_error("delete_match", pattern, e));
            deleted += self.suppressed(result, 0)?;
        }
        Ok(deleted)
    }

    /// Lists the keys matching a Redis-style glob, on every backend.
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() {
    /// let cache = cache_core::Cache::memory();
    /// cache.set("user:1", &1u8, None).await.unwrap();
    /// assert_eq!(cache.scan("user:*").await.unwrap(), vec!["user:1".to_string()]);
    /// # }
    /// ```
    pub async fn scan(&self, pattern: &str) -> Result<Vec<String>, CacheError> {
        let mut keys = Vec::new();
        if context::is_disabled(Ops::GET) {
            return Ok(keys);
        }
        for backend in self.backends() {
            let result = backend
                .scan(pattern)
                .await
                .map_err(CacheError::from)
                .inspect_err(|e| self.note_backend_error("scan", pattern, e));
            keys.extend(self.suppressed(result, Vec::new())?);
        }
        Ok(keys)
    }

    /// Adds `by` to a counter (created at 0 with `ttl` if missing) and returns the new value. Counters are plain
    /// decimal text, not envelopes, so several processes and Redis itself can update them.
    ///
    /// Inside a scope that disables [`Ops::INCR`] nothing is counted and the answer is
    /// [`CacheError::Disabled`].
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() {
    /// let cache = cache_core::Cache::memory();
    /// assert_eq!(cache.incr("hits", 2, None).await.unwrap(), 2);
    /// # }
    /// ```
    pub async fn incr(&self, key: &str, by: i64, ttl: Option<Duration>) -> Result<i64, CacheError> {
        if context::is_disabled(Ops::INCR) {
            return Err(CacheError::Disabled(Ops::INCR));
        }
        self.incr_internal(key, by, ttl).await
    }

    /// Sets a key's TTL. Returns whether it was set (the key exists, and writes are not switched off).
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() {
    /// let cache = cache_core::Cache::memory();
    /// assert!(!cache.expire("k", std::time::Duration::from_secs(1)).await.unwrap());
    /// # }
    /// ```
    pub async fn expire(&self, key: &str, ttl: Duration) -> Result<bool, CacheError> {
        if context::is_disabled(Ops::SET) {
            return Ok(false);
        }
        let result = self
            .backend_for(key)
            .expire(key, ttl)
            .await
            .map_err(CacheError::from)
            .inspect_err(|e| self.note_backend_error("expire", key, e));
        self.suppressed(result, false)
    }

    /// A key's remaining lifetime.
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() {
    /// let cache = cache_core::Cache::memory();
    /// assert_eq!(cache.ttl("k").await.unwrap(), cache_core::KeyTtl::Missing);
    /// # }
    /// ```
    pub async fn ttl(&self, key: &str) -> Result<KeyTtl, CacheError> {
        if context::is_disabled(Ops::GET) {
            return Ok(KeyTtl::Missing);
        }
        let result = self
            .backend_for(key)
            .ttl(key)
            .await
            .map_err(CacheError::from)
            .inspect_err(|e| self.note_backend_error("ttl", key, e));
        self.suppressed(result, KeyTtl::Missing)
    }

    /// Checks every backend answers. Never switched off by a scope nor suppressed: it is the health check.
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() {
    /// cache_core::Cache::memory().ping().await.unwrap();
    /// # }
    /// ```
    pub async fn ping(&self) -> Result<(), CacheError> {
        for backend in self.backends() {
            backend.ping().await?;
        }
        Ok(())
    }

    /// Removes every key of every backend (a prefixed backend removes only its own keys; see
    /// [`Cache::delete_match`] about prefixes that overlap).
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() {
    /// cache_core::Cache::memory().clear().await.unwrap();
    /// # }
    /// ```
    pub async fn clear(&self) -> Result<(), CacheError> {
        if context::is_disabled(Ops::DELETE) {
            return Ok(());
        }
        if let Some(namespace) = &self.inner.namespace {
            // One bump, however many backends the view routes to.
            let result = namespace
                .bump()
                .await
                .map(|_| ())
                .map_err(CacheError::from)
                .inspect_err(|e| self.note_backend_error("clear", namespace.name(), e));
            return self.suppressed(result, ());
        }
        for backend in self.backends() {
            let result = backend
                .clear()
                .await
                .map_err(CacheError::from)
                .inspect_err(|e| self.note_backend_error("clear", "*", e));
            self.suppressed(result, ())?;
        }
        Ok(())
    }
}

impl Cache {
    /// A view of this cache inside namespace `name` (the multi-tenant recipe): the same backends, codec and
    /// settings, with every key stored under the namespace's current version. [`Cache::clear`] on the view
    /// clears the namespace alone with one atomic increment — no key scan, no flush, O(1) on every backend
    /// (memcached included) — and its old entries are never read again, expiring by their TTL.
    ///
    /// Views are cheap and kept by name (the last 10 000), so `cache.namespace(&tenant)` on every request reuses
    /// the version read before; it is read again after [`CacheBuilder::namespace_refresh`] (1 s by default),
    /// which bounds how long *another process* may keep serving a namespace it did not clear. Namespaces nest.
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), cache_core::CacheError> {
    /// let cache = cache_core::Cache::memory();
    /// let (a, b) = (cache.namespace("tenant:a"), cache.namespace("tenant:b"));
    /// a.set("orders", &3u32, None).await?;
    /// b.set("orders", &5u32, None).await?;
    /// a.clear().await?;
    /// assert_eq!(a.get::<u32>("orders").await?, None);
    /// assert_eq!(b.get::<u32>("orders").await?, Some(5));
    /// assert_eq!(cache.get::<u32>("orders").await?, None); // the views' keys are their own
    /// # Ok(()) }
    /// ```
    pub fn namespace(&self, name: &str) -> Cache {
        if let Some(view) = self.inner.namespaces.lock().get(name) {
            return view.clone();
        }
        let counter = crate::namespace::counter_key(name);
        let version = Arc::new(NamespaceVersion::new(
            name,
            self.backend_for(&counter).clone(),
            self.inner.namespace_refresh,
        ));
        let router = self.inner.router.map(|backend| {
            Arc::new(NamespacedBackend::new(version.clone(), backend.clone())) as Arc<dyn Backend>
        });
        let view = Cache {
            inner: Arc::new(Inner {
                router,
                form: self.inner.form.clone(),
                strict: self.inner.strict,
                suppress: self.inner.suppress,
                metrics: self.inner.metrics.clone(),
                flights: SingleFlight::default(),
                namespace: Some(version),
                namespaces: Mutex::new(lru::LruCache::new(NAMESPACE_VIEWS_NONZERO)),
                namespace_refresh: self.inner.namespace_refresh,
            }),
        };
        // Two callers racing here build two views; the first one stored is the one reused.
        self.inner
            .namespaces
            .lock()
            .get_or_insert(name.to_owned(), || view)
            .clone()
    }

    /// The namespace this cache is a view of ([`Cache::namespace`]), if it is one.
    ///
    /// ```
    /// let cache = cache_core::Cache::memory();
    /// assert_eq!(cache.namespace("t1").namespace_name(), Some("t1"));
    /// assert_eq!(cache.namespace_name(), None);
    /// ```
    pub fn namespace_name(&self) -> Option<&str> {
        self.inner.namespace.as_deref().map(NamespaceVersion::name)
    }
}

const NAMESPACE_VIEWS_NONZERO: std::num::NonZeroUsize =
    match std::num::NonZeroUsize::new(NAMESPACE_VIEWS) {
        Some(n) => n,
        None => std::num::NonZeroUsize::MIN,
    };

#[cfg(test)]
mod tests {
    use super::*;
    use crate::layer::{LayeredExt, Observe};

    /// Counts its decodes.
    #[derive(Debug, Clone, PartialEq, Serialize)]
    struct Counted(u32);

    static DECODES: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);

    impl<'de> serde::Deserialize<'de> for Counted {
        fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
            DECODES.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
            u32::deserialize(d).map(Counted)
        }
    }

    #[tokio::test]
    async fn get_on_memory_serves_the_decoded_copy() {
        let cache = Cache::memory();
        cache.set("k", &Counted(7), None).await.unwrap();
        for _ in 0..5 {
            assert_eq!(cache.get::<Counted>("k").await.unwrap(), Some(Counted(7)));
        }
        assert_eq!(
            DECODES.load(std::sync::atomic::Ordering::SeqCst),
            1,
            "decoded once, then cloned"
        );
        // A new value replaces the copy.
        cache.set("k", &Counted(8), None).await.unwrap();
        assert_eq!(cache.get::<Counted>("k").await.unwrap(), Some(Counted(8)));
        assert_eq!(DECODES.load(std::sync::atomic::Ordering::SeqCst), 2);
    }

    #[test]
    fn the_fast_path_sees_a_memory_backend_but_never_through_a_layer() {
        let plain: Arc<dyn Backend> = Arc::new(MemoryBackend::default());
        let shared: Arc<dyn Backend> = Arc::new(Arc::new(MemoryBackend::default()));
        let layered: Arc<dyn Backend> = Arc::new(MemoryBackend::default().layered(Observe::new()));
        assert!(embedded_memory(&plain).is_some());
        assert!(embedded_memory(&shared).is_some());
        assert!(embedded_memory(&layered).is_none());
    }
}
