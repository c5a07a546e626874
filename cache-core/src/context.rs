//! Per-task cache control: switch operations off for a scope, record which keys were served from cache.
//!
//! Scopes live in a `tokio::task_local!`, so they follow a future wherever it is polled, nest, and never leak:
//! a child scope is a new immutable value and the parent's stays as it was. Futures joined inside one scope
//! (`join!`, `join_all`) share it. Tasks started with `tokio::spawn` do not inherit it by themselves; use
//! [`spawn`] or [`Context::scope`] to carry it over.
//!
//! ```
//! use cache_core::context::{self, Ops};
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() {
//! let cache = cache_core::Cache::memory();
//! cache.set("k", &1u32, None).await.unwrap();
//! let (value, hits) = context::detect(cache.get_or_set("k", None, || async { 2u32 })).await;
//! assert_eq!((value, hits.keys()), (1, vec!["k"]));
//! // Reads disabled: the body runs and its fresh value is stored.
//! let fresh = context::disabling(Ops::GET, cache.get_or_set("k", None, || async { 3u32 })).await;
//! assert_eq!(fresh, 3);
//! assert_eq!(cache.get::<u32>("k").await.unwrap(), Some(3));
//! # }
//! ```

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use parking_lot::Mutex;

bitflags::bitflags! {
    /// Cache operations a scope can switch off.
    ///
    /// ```
    /// use cache_core::context::Ops;
    /// let reads_and_writes = Ops::GET | Ops::SET;
    /// assert!(reads_and_writes.contains(Ops::SET));
    /// ```
    #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
    pub struct Ops: u8 {
        /// Reads: a disabled read is a miss, so the body runs.
        const GET = 1;
        /// Writes of computed values.
        const SET = 1 << 1;
        /// Deletes and invalidations.
        const DELETE = 1 << 2;
        /// Counters (`incr`), as used by hit-count and rate strategies.
        const INCR = 1 << 3;
        /// Everything.
        const ALL = Self::GET.bits() | Self::SET.bits() | Self::DELETE.bits() | Self::INCR.bits();
    }
}

/// One key served from cache inside a [`detect`] scope.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Hit {
    /// The full key.
    pub key: String,
    /// The strategy that served it (`"cached"`, `"early"`, `"failover"`, …).
    pub strategy: &'static str,
    /// Time left before the entry expires, if it expires.
    pub ttl: Option<Duration>,
    /// How long ago the value was stored.
    pub age: Duration,
    /// Whether the value was served although it is past a freshness deadline (failover, soft TTL).
    pub stale: bool,
    /// Identifies the exact stored entry that was served ([`EnvelopeMeta::fingerprint`]): a later read with
    /// the same fingerprint read the same bytes. The ETag layer compares these before answering `304`.
    ///
    /// [`EnvelopeMeta::fingerprint`]: crate::EnvelopeMeta::fingerprint
    pub fingerprint: u64,
}

/// A key whose value was computed (not served from cache) inside a [`detect`] scope.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Miss {
    /// The full key.
    pub key: String,
    /// Whether the computed value was written to the cache.
    pub stored: bool,
}

/// The keys served from cache while a [`detect`] scope ran, in the order they were served, and the keys that
/// were computed instead.
///
/// ```
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() {
/// let (_, detected) = cache_core::context::detect(async {}).await;
/// assert!(detected.is_empty());
/// # }
/// ```
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Detected {
    hits: Vec<Hit>,
    misses: Vec<Miss>,
}

impl Detected {
    /// The keys, in the order they were served (a key served twice appears twice).
    pub fn keys(&self) -> Vec<&str> {
        self.hits.iter().map(|h| h.key.as_str()).collect()
    }

    /// Every hit with its details.
    pub fn hits(&self) -> &[Hit] {
        &self.hits
    }

    /// Whether nothing was served from cache.
    pub fn is_empty(&self) -> bool {
        self.hits.is_empty()
    }

    /// The keys whose values were computed rather than served from cache (by this scope's own calls, or shared
    /// with it by a concurrent caller of the same key), in order.
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() {
    /// let cache = cache_core::Cache::memory();
    /// let (_, detected) = cache_core::context::detect(cache.get_or_set("k", None, || async { 1u8 })).await;
    /// assert_eq!(detected.misses()[0].key, "k");
    /// assert!(detected.misses()[0].stored);
    /// # }
    /// ```
    pub fn misses(&self) -> &[Miss] {
        &self.misses
    }

    /// Whether `key` was served from cache.
    pub fn contains(&self, key: &str) -> bool {
        self.hits.iter().any(|h| h.key == key)
    }
}

#[derive(Default)]
struct Detector {
    hits: Mutex<Vec<Hit>>,
    misses: Mutex<Vec<Miss>>,
}

/// The state of one scope. Immutable once installed: children copy and change it.
#[derive(Default, Clone)]
struct Scope {
    disabled: Ops,
    invalidate_further: bool,
    max_age: Option<Duration>,
    detectors: Vec<Arc<Detector>>,
    /// The single flights this task leads, as (flight table, key): a call for one of them from inside its own
    /// body would wait for itself.
    leading: Vec<(usize, String)>,
    /// The transaction this scope's cache writes are buffered in.
    transaction: Option<Arc<crate::transaction::Transaction>>,
    /// Misses compute on their own instead of joining in-process single flights (sync callers, which block
    /// their thread and so could wait for a flight that only their own thread can finish).
    alone: bool,
}

tokio::task_local! {
    static SCOPE: Arc<Scope>;
}

/// What strategies need to know about the current scope, copied out in one task-local access.
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct Flags {
    pub disabled: Ops,
    pub invalidate_further: bool,
    pub max_age: Option<Duration>,
    /// Whether a `detect` scope is listening: without one a hit skips the second task-local access.
    pub detecting: bool,
    /// Whether misses skip the in-process single flight.
    pub alone: bool,
}

impl Flags {
    pub(crate) fn allows(&self, op: Ops) -> bool {
        !self.disabled.intersects(op)
    }
}

pub(crate) fn flags() -> Flags {
    SCOPE
        .try_with(|s| Flags {
            disabled: s.disabled,
            invalidate_further: s.invalidate_further,
            max_age: s.max_age,
            detecting: !s.detectors.is_empty(),
            alone: s.alone,
        })
        .unwrap_or_default()
}

pub(crate) fn record_hit(hit: impl FnOnce() -> Hit) {
    let _ = SCOPE.try_with(|s| {
        if s.detectors.is_empty() {
            return;
        }
        let hit = hit();
        for detector in &s.detectors {
            detector.hits.lock().push(hit.clone());
        }
    });
}

pub(crate) fn record_miss(key: &str, stored: bool) {
    let _ = SCOPE.try_with(|s| {
        for detector in &s.detectors {
            detector.misses.lock().push(Miss {
                key: key.to_owned(),
                stored,
            });
        }
    });
}

/// Runs `fut` as the leader of `key`'s single flight in the table identified by `table`, so that a call for the
/// same key from inside it (same task, or a task started with [`spawn`]) is recognised by [`is_leading`].
pub(crate) fn leading<F: Future>(
    table: usize,
    key: &str,
    fut: F,
) -> impl Future<Output = F::Output> + use<F> {
    SCOPE.scope(child(|s| s.leading.push((table, key.to_owned()))), fut)
}

/// Whether the current scope is inside the body of the single flight for `key` in `table`.
pub(crate) fn is_leading(table: usize, key: &str) -> bool {
    SCOPE
        .try_with(|s| s.leading.iter().any(|(t, k)| *t == table && k == key))
        .unwrap_or(false)
}

/// Runs `fut` so that its misses compute on their own, without joining in-process single flights.
pub(crate) fn alone<F: Future>(fut: F) -> impl Future<Output = F::Output> {
    SCOPE.scope(child(|s| s.alone = true), fut)
}

/// The transaction of the current scope.
pub(crate) fn transaction_in_scope() -> Option<Arc<crate::transaction::Transaction>> {
    SCOPE.try_with(|s| s.transaction.clone()).ok().flatten()
}

/// Runs `fut` with its cache writes buffered in `tx`.
pub(crate) fn with_transaction<F: Future>(
    tx: Arc<crate::transaction::Transaction>,
    fut: F,
) -> impl Future<Output = F::Output> {
    SCOPE.scope(child(|s| s.transaction = Some(tx)), fut)
}

/// Runs `fut` as a [`TransactionMode::Fast`](crate::TransactionMode::Fast) transaction (see
/// [`Cache::transaction`](crate::Cache::transaction)): the cache writes inside it are applied when it returns
/// `Ok`, dropped when it returns `Err`, panics or is cancelled; inside another transaction it joins that one.
///
/// ```
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() {
/// let cache = cache_core::Cache::memory();
/// let done = cache_core::context::transaction(async {
///     cache.set("a", &1u8, None).await?;
///     cache.delete("b").await?;
///     Ok::<_, cache_core::CacheError>("done")
/// }).await;
/// assert_eq!(done.unwrap(), "done");
/// assert_eq!(cache.get::<u8>("a").await.unwrap(), Some(1));
/// # }
/// ```
pub async fn transaction<T, E, F>(fut: F) -> Result<T, E>
where
    F: Future<Output = Result<T, E>>,
{
    crate::transaction::TransactionBuilder::default()
        .run(fut)
        .await
}

fn current_scope() -> Arc<Scope> {
    SCOPE.try_with(Arc::clone).unwrap_or_default()
}

fn child(change: impl FnOnce(&mut Scope)) -> Arc<Scope> {
    let mut scope = (*current_scope()).clone();
    change(&mut scope);
    Arc::new(scope)
}

/// Runs `fut` with the operations in `ops` switched off (in addition to those the enclosing scope switched off).
///
/// A disabled `GET` means cached functions run their body; unless `SET` is disabled too, the fresh value is
/// stored. The scope is derived from the context where `disabling` is called.
///
/// ```
/// use cache_core::context::{disabling, Ops};
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() {
/// let cache = cache_core::Cache::memory();
/// disabling(Ops::SET, cache.get_or_set("k", None, || async { 1u8 })).await;
/// assert_eq!(cache.get::<u8>("k").await.unwrap(), None);
/// # }
/// ```
pub fn disabling<F: Future>(ops: Ops, fut: F) -> impl Future<Output = F::Output> {
    SCOPE.scope(child(|s| s.disabled |= ops), fut)
}

/// Runs `fut` with the operations in `ops` switched back on inside a scope that disabled them.
///
/// ```
/// use cache_core::context::{disabling, enabling, is_disabled, Ops};
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() {
/// disabling(Ops::ALL, async {
///     assert!(is_disabled(Ops::GET));
///     enabling(Ops::GET, async { assert!(!is_disabled(Ops::GET)) }).await;
/// }).await;
/// # }
/// ```
pub fn enabling<F: Future>(ops: Ops, fut: F) -> impl Future<Output = F::Output> {
    SCOPE.scope(child(|s| s.disabled -= ops), fut)
}

/// Whether any of `ops` is switched off in the current scope.
///
/// ```
/// assert!(!cache_core::context::is_disabled(cache_core::context::Ops::GET));
/// ```
pub fn is_disabled(ops: Ops) -> bool {
    !flags().allows(ops)
}

/// Runs `fut` so that every cache read inside it deletes the entry and misses; fresh values are stored again.
/// What HTTP `Clear-Site-Data: "cache"` maps to.
///
/// ```
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() {
/// let cache = cache_core::Cache::memory();
/// cache.set("k", &1u8, None).await.unwrap();
/// let v = cache_core::context::invalidate_further(cache.get_or_set("k", None, || async { 2u8 })).await;
/// assert_eq!(v, 2);
/// # }
/// ```
pub fn invalidate_further<F: Future>(fut: F) -> impl Future<Output = F::Output> {
    SCOPE.scope(child(|s| s.invalidate_further = true), fut)
}

/// Runs `fut` so that cached values whose age is not below `max_age` are treated as misses (HTTP
/// `Cache-Control: max-age`: fresh while age < max-age, so `Duration::ZERO` never serves from cache).
///
/// ```
/// use std::time::Duration;
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() {
/// let cache = cache_core::Cache::memory();
/// cache.set("k", &1u8, None).await.unwrap();
/// let v = cache_core::context::with_max_age(Duration::ZERO, cache.get_or_set("k", None, || async { 2u8 })).await;
/// assert_eq!(v, 2);
/// # }
/// ```
pub fn with_max_age<F: Future>(max_age: Duration, fut: F) -> impl Future<Output = F::Output> {
    SCOPE.scope(
        child(|s| s.max_age = Some(s.max_age.map_or(max_age, |m| m.min(max_age)))),
        fut,
    )
}

/// Runs `fut` and returns its output with the keys served from cache while it ran.
///
/// Nested `detect` scopes each see the hits of their own future (an outer scope sees the inner ones too).
///
/// ```
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() {
/// let cache = cache_core::Cache::memory();
/// cache.set("a", &1u8, None).await.unwrap();
/// let (_, hits) = cache_core::context::detect(async {
///     tokio::join!(
///         cache.get_or_set("a", None, || async { 0u8 }),
///         cache.get_or_set("b", None, || async { 0u8 }),
///     )
/// }).await;
/// assert_eq!(hits.keys(), vec!["a"]);
/// # }
/// ```
pub async fn detect<F: Future>(fut: F) -> (F::Output, Detected) {
    let detector = Arc::new(Detector::default());
    let scope = child(|s| s.detectors.push(detector.clone()));
    let output = SCOPE.scope(scope, fut).await;
    let hits = std::mem::take(&mut *detector.hits.lock());
    let misses = std::mem::take(&mut *detector.misses.lock());
    (output, Detected { hits, misses })
}

/// A captured scope, to carry into work that runs elsewhere (spawned tasks, other runtimes).
///
/// ```
/// use cache_core::context::{self, Ops};
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() {
/// context::disabling(Ops::GET, async {
///     let ctx = context::current();
///     let inside = tokio::spawn(ctx.scope(async { context::is_disabled(Ops::GET) }));
///     assert!(inside.await.unwrap());
/// }).await;
/// # }
/// ```
#[derive(Clone, Default)]
pub struct Context {
    scope: Arc<Scope>,
}

impl std::fmt::Debug for Context {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Context")
            .field("disabled", &self.scope.disabled)
            .field("invalidate_further", &self.scope.invalidate_further)
            .field("max_age", &self.scope.max_age)
            .field("detectors", &self.scope.detectors.len())
            .finish()
    }
}

/// Captures the current scope.
pub fn current() -> Context {
    Context {
        scope: current_scope(),
    }
}

impl Context {
    /// Runs `fut` inside this captured scope.
    pub fn scope<F: Future>(&self, fut: F) -> impl Future<Output = F::Output> + use<F> {
        SCOPE.scope(self.scope.clone(), fut)
    }
}

/// `tokio::spawn` that carries the current scope into the new task, so its cache calls are disabled/detected
/// like the caller's.
///
/// ```
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() {
/// let cache = cache_core::Cache::memory();
/// cache.set("k", &1u8, None).await.unwrap();
/// let (_, hits) = cache_core::context::detect(async {
///     let c = cache.clone();
///     cache_core::context::spawn(async move { c.get_or_set("k", None, || async { 0u8 }).await })
///         .await
///         .unwrap()
/// }).await;
/// assert_eq!(hits.keys(), vec!["k"]);
/// # }
/// ```
pub fn spawn<F>(fut: F) -> tokio::task::JoinHandle<F::Output>
where
    F: Future + Send + 'static,
    F::Output: Send + 'static,
{
    tokio::spawn(current().scope(fut))
}

/// Runs `commit` and, only if it succeeds, spawns `refresh` in the current context: the dogpile recipe that
/// refreshes a cached read once the database transaction that changed it has committed. A failed (or rolled
/// back) commit refreshes nothing. Works with any database crate: pass its commit future.
///
/// ```
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() {
/// use cache_core::context::refresh_after_commit;
/// let cache = cache_core::Cache::memory();
/// let refresh = {
///     let cache = cache.clone();
///     async move { cache.set("user:1", &"grace".to_owned(), None).await.unwrap() }
/// };
/// // `tx.commit()` in real code; here a commit that succeeded.
/// refresh_after_commit(async { Ok::<(), String>(()) }, refresh).await.unwrap();
/// tokio::task::yield_now().await;
/// assert_eq!(cache.get::<String>("user:1").await.unwrap().as_deref(), Some("grace"));
///
/// let failed = refresh_after_commit(async { Err::<(), _>("serialization failure") }, async { unreachable!() });
/// assert!(failed.await.is_err());
/// # }
/// ```
pub async fn refresh_after_commit<T, E, C, R>(commit: C, refresh: R) -> Result<T, E>
where
    C: Future<Output = Result<T, E>>,
    R: Future + Send + 'static,
    R::Output: Send + 'static,
{
    let committed = commit.await?;
    spawn(refresh);
    Ok(committed)
}
