//! Strategies: plain async functions that take a rendered key, options and the body future.
//!
//! The macros only render the key and call one of these, so each behaviour here is tested without macros.

use std::future::Future;
use std::time::{Duration, Instant};

use bytes::Bytes;

mod early;
mod failover;
mod hits;
pub(crate) mod lock;
mod many;
mod soft;
mod tags;
mod timeouts;

pub use crate::toolkit::circuit::{circuit_breaker, CircuitOptions};
pub use early::{early, early_foreground, EARLY};
pub use failover::{failover, FAILOVER};
pub use hits::{hits, HITS};
pub use lock::{locked, LockOptions, LOCKED};
pub use soft::{soft, SOFT};
pub use tags::{delete_tags, tag_key};
pub use timeouts::{timed, FactoryTimedOut, FactoryTimeouts};

use crate::cache::{Cache, ReadRoute};
use crate::context::{self, Hit, Ops};
use crate::envelope::EnvelopeMeta;
use crate::error::CacheError;
use crate::shape::{Plain, Shape};
use crate::singleflight::{self, Outcome, Role};
use crate::telemetry::{self, CallName};

/// The name [`detect`](crate::context::detect) reports for hits of [`cached`].
pub const CACHED: &str = "cached";

/// The name [`detect`](crate::context::detect) reports for a value marked stale ([`Cache::mark_stale`]) and
/// served while another caller recomputes it (or because that recomputation failed).
pub const STALE: &str = "stale";

/// A predicate on a function's output deciding whether it is stored.
pub type Condition<Out> = fn(&Out) -> bool;

/// What every strategy needs to know about storing a result.
///
/// ```
/// use cache_core::strategy::Options;
/// use std::time::Duration;
/// let opts: Options<Option<u8>> = Options::ttl(Some(Duration::from_secs(60)))
///     .condition(cache_core::conditions::not_none)
///     .time_condition(Duration::from_millis(100))
///     .tags(vec!["user:1".into()]);
/// ```
#[derive(Debug, Clone)]
pub struct Options<Out> {
    /// How long stored values live; `None` means until evicted.
    pub ttl: Option<Duration>,
    /// Store only outputs this accepts.
    pub condition: Option<Condition<Out>>,
    /// Store only results whose body took at least this long.
    pub min_duration: Option<Duration>,
    /// Tags to register the key under (see [`delete_tags`]).
    pub tags: Vec<String>,
    /// Refresh deadline written into the envelope (early and soft strategies).
    pub(crate) refresh_after: Option<Duration>,
    /// What the call reports to metrics and spans (see [`crate::telemetry`]).
    pub(crate) call: CallName,
}

impl<Out> Options<Out> {
    /// Options with a TTL and nothing else.
    pub fn ttl(ttl: Option<Duration>) -> Self {
        Self {
            ttl,
            condition: None,
            min_duration: None,
            tags: Vec::new(),
            refresh_after: None,
            call: CallName::default(),
        }
    }

    /// Names the call for metrics and spans: the function's path and the strategy (see [`crate::telemetry`]).
    /// The macros set it.
    #[doc(hidden)]
    pub fn named(mut self, function: &'static str, strategy: &'static str) -> Self {
        self.call = CallName { function, strategy };
        self
    }

    /// Adds a condition on the output.
    pub fn condition(mut self, condition: Condition<Out>) -> Self {
        self.condition = Some(condition);
        self
    }

    /// Adds a condition on the body's duration (cashews' `time_condition`).
    pub fn time_condition(mut self, min_duration: Duration) -> Self {
        self.min_duration = Some(min_duration);
        self
    }

    /// Spreads expiry (FusionCache's jitter): this call's TTL gets a random extra of up to `max`, so values of
    /// many keys stored at once (a deploy, a cache flush) do not all expire at once and stampede the database.
    ///
    /// ```
    /// use cache_core::strategy::Options;
    /// use std::time::Duration;
    /// let hour = Duration::from_secs(3600);
    /// let opts = Options::<u8>::ttl(Some(hour)).ttl_jitter(Duration::from_secs(60));
    /// let ttl = opts.ttl.unwrap();
    /// assert!(ttl >= hour && ttl < hour + Duration::from_secs(60));
    /// ```
    pub fn ttl_jitter(mut self, max: Duration) -> Self {
        if let Some(ttl) = self.ttl {
            let mut bytes = [0u8; 8];
            // Without randomness there is nothing to spread with: the TTL stays as given.
            if getrandom::fill(&mut bytes).is_ok() {
                let unit = u64::from_le_bytes(bytes) as f64 / (u64::MAX as f64 + 1.0);
                self.ttl = Some(ttl.saturating_add(max.mul_f64(unit)));
            }
        }
        self
    }

    /// Registers stored keys under these tags.
    pub fn tags(mut self, tags: Vec<String>) -> Self {
        self.tags = tags;
        self
    }

    fn with_refresh_after(mut self, after: Duration) -> Self {
        self.refresh_after = Some(after);
        self
    }

    /// Writes a refresh deadline into stored envelopes. The early and soft strategies set it themselves; the
    /// macros' `_refresh` and `_set` companions of such functions set it so a value they store keeps its
    /// deadline.
    #[doc(hidden)]
    pub fn refresh_after(self, after: Duration) -> Self {
        self.with_refresh_after(after)
    }
}

/// Returns the cached value of `key` or runs `body`, storing its result when the shape and `condition` allow.
///
/// - Honours the current [`crate::context`]: disabled reads run the body (and still store unless writes
///   are disabled), `invalidate_further` deletes first, `max_age` rejects older values, hits are recorded for
///   `detect`.
/// - Concurrent callers of one missing key in this process share one body run; a panicking or cancelled runner
///   hands the work to a waiter.
/// - Fails open: backend errors are logged and counted and the body runs, unless the shape is strict.
///
/// ```
/// use cache_core::{strategy, shape::Plain, Cache};
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() {
/// let cache = Cache::memory();
/// let a = strategy::cached(Plain, &cache, "k".into(), None, None, async { 1u8 }).await;
/// let b = strategy::cached(Plain, &cache, "k".into(), None, None, async { 2u8 }).await;
/// assert_eq!((a, b), (1, 1));
/// # }
/// ```
pub async fn cached<S, Out, Fut>(
    shape: S,
    cache: &Cache,
    key: String,
    ttl: Option<Duration>,
    condition: Option<Condition<Out>>,
    body: Fut,
) -> Out
where
    S: Shape<Out>,
    Fut: Future<Output = Out>,
{
    let options = Options {
        condition,
        ..Options::ttl(ttl)
    };
    cached_with(shape, cache, key, options, body).await
}

/// [`cached`] with every storing option (time condition, tags) in [`Options`].
///
/// ```
/// use cache_core::{strategy::{self, Options}, shape::Plain, Cache};
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() {
/// let cache = Cache::memory();
/// let opts = Options::ttl(None).tags(vec!["t".into()]);
/// strategy::cached_with(Plain, &cache, "k".into(), opts, async { 1u8 }).await;
/// assert_eq!(strategy::delete_tags(&cache, &["t"]).await.unwrap(), 1);
/// # }
/// ```
pub fn cached_with<S, Out, Fut>(
    _shape: S,
    cache: &Cache,
    key: String,
    options: Options<Out>,
    body: Fut,
) -> impl Future<Output = Out>
where
    S: Shape<Out>,
    Fut: Future<Output = Out>,
{
    // A plain fn returning the call's future, not an `async fn` awaiting it: one state machine less, and one copy
    // of it less, on every call.
    cached_call::<S, Out, Fut, false>(cache, key, options, body)
}

/// [`cached_with`]: a usable hit is served here; anything else goes to [`cached_rest`]. With a debug-level
/// subscriber listening, the call re-runs itself (`SPANNED`) boxed inside its span; without one the hit path has
/// no `Instrumented` around it.
async fn cached_call<S, Out, Fut, const SPANNED: bool>(
    cache: &Cache,
    key: String,
    options: Options<Out>,
    body: Fut,
) -> Out
where
    S: Shape<Out>,
    Fut: Future<Output = Out>,
{
    if !SPANNED && let Some(span) = crate::telemetry::call_span(options.call, &key) {
        let call = cached_call::<S, Out, Fut, true>(cache, key, options, body);
        return Box::pin(tracing::Instrument::instrument(call, span)).await;
    }
    let flags = context::flags();
    match lookup::<S, Out>(cache, &key, flags, options.call).await {
        Lookup::Hit(meta, value) if !meta.needs_refresh() => {
            served(cache, &key, CACHED, &meta, false, flags, options.call);
            S::rebuild(value)
        }
        // Boxed: the miss path's state (body, encode, write, single flight) is several kilobytes, and held inline
        // it would make every hit's future that large, copied at each await that moves it.
        found => {
            Box::pin(cached_rest::<S, Out, Fut>(
                cache, key, options, flags, found, body,
            ))
            .await
        }
    }
}

/// [`cached_with`] after a lookup that found no usable hit: a stale value, a strict shape's error, or a miss.
async fn cached_rest<S, Out, Fut>(
    cache: &Cache,
    key: String,
    options: Options<Out>,
    flags: context::Flags,
    found: Lookup<S::Stored, Out>,
    body: Fut,
) -> Out
where
    S: Shape<Out>,
    Fut: Future<Output = Out>,
{
    match found {
        Lookup::Hit(meta, value) if meta.needs_refresh() => {
            // Marked stale (`Cache::mark_stale`, dogpile's soft invalidation): the first caller recomputes,
            // callers arriving meanwhile get the stale value instead of waiting.
            if cache.inner.flights.is_running(&key) {
                served(cache, &key, STALE, &meta, true, flags, options.call);
                return S::rebuild(value);
            }
            let how = Fill::Coalesce(Reread::Except(meta.fingerprint()));
            let out = fill::<S, Out, Fut>(cache, key.clone(), &options, flags, how, body).await;
            if S::stored(&out).is_some() {
                crate::telemetry::call(options.call, "miss");
                return out;
            }
            tracing::info!(
                key,
                "recomputation of a stale value failed; serving the stale value"
            );
            served(cache, &key, STALE, &meta, true, flags, options.call);
            S::rebuild(value)
        }
        Lookup::Hit(meta, value) => {
            served(cache, &key, CACHED, &meta, false, flags, options.call);
            S::rebuild(value)
        }
        Lookup::Strict(out) => out,
        Lookup::Miss(how) => fill::<S, Out, Fut>(cache, key, &options, flags, how, body).await,
    }
}

/// Joins the in-process single flight of `key`: the leader runs `lead(body)`, which returns the output and the
/// stored bytes to share; followers wait and decode those bytes. A leader first re-reads the key (see
/// [`Fill::Coalesce`]), since another leader may have stored it after this caller's own read. A body that asks
/// for its own key (directly or through [`context::spawn`]) would wait for itself: that call runs uncached.
pub(crate) async fn run_single_flight<S, Out, Fut, Lead, LeadFut>(
    cache: &Cache,
    key: String,
    options: &Options<Out>,
    flags: context::Flags,
    rejected: Reread,
    body: Fut,
    lead: Lead,
) -> Out
where
    S: Shape<Out>,
    Fut: Future<Output = Out>,
    Lead: FnOnce(Fut) -> LeadFut,
    LeadFut: Future<Output = (Out, Option<Bytes>)>,
{
    let table = cache.inner.flights.id();
    if context::is_leading(table, &key) {
        tracing::warn!(
            key,
            "a cached body asked for its own key; computing that call uncached instead of waiting for itself"
        );
        return body.await;
    }
    loop {
        match cache.inner.flights.join(&key) {
            Role::Leader(leader) => {
                let rejected = match rejected {
                    Reread::AnySince(epoch) if cache.inner.flights.ended() == epoch => Reread::Skip,
                    other => other,
                };
                if let Some((bytes, _, value)) =
                    reread::<S, Out>(cache, &key, flags, rejected).await
                {
                    // Stored by a leader that finished after our read: computed for us, like a follower's.
                    leader.finish(Some(bytes));
                    context::record_miss(&key, true);
                    return S::rebuild(value);
                }
                let (out, shared) = context::leading(table, &key, lead(body)).await;
                leader.finish(shared);
                return out;
            }
            Role::Follower(rx) => match singleflight::wait(rx).await {
                Outcome::Shared(bytes) => {
                    if let Some((_, value)) = cache.decode_or_miss::<S::Stored>(&key, &bytes) {
                        // Computed for us by the leader: fresh, not a hit. The leader reports whether it stored.
                        context::record_miss(&key, true);
                        return S::rebuild(value);
                    }
                    break;
                }
                Outcome::NotShared => break,
                // Lead, or follow whoever took over; a new leader re-reads first, so a value another waiter
                // stored meanwhile is not computed again.
                Outcome::Abandoned => {}
            },
        }
    }
    // The leader's result was not cacheable (an `Err`, a failed condition): compute our own.
    let (out, _) = run_and_store::<S, Out, Fut>(cache, &key, options, flags, body).await;
    out
}

/// Which stored entry a leader's re-read may return.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Reread {
    /// Skip the re-read: the caller's own read failed, and a second failure would only add its timeout.
    Skip,
    /// Any readable entry young enough for the scope's `max_age`.
    Any,
    /// Like `Any`, but only if a flight of this cache ended since the caller read [`SingleFlight::ended`]
    /// (this value) before its own read: otherwise no leader can have stored the key in between, and a second
    /// read would only cost a round trip on every miss.
    ///
    /// [`SingleFlight::ended`]: crate::singleflight::SingleFlight::ended
    AnySince(u64),
    /// Like `Any`, but not the entry with this fingerprint: the caller read it and could not use it (past a soft
    /// deadline, used up); only a value stored since then will do.
    Except(u64),
}

/// Reads `key` again for a caller about to compute it: the stored bytes (to share with followers), their
/// metadata and the value, if there is an entry `rejected` allows.
pub(crate) async fn reread<S, Out>(
    cache: &Cache,
    key: &str,
    flags: context::Flags,
    rejected: Reread,
) -> Option<(Bytes, EnvelopeMeta, S::Stored)>
where
    S: Shape<Out>,
{
    if rejected == Reread::Skip {
        return None;
    }
    let bytes = cache.read_raw(key).await.ok().flatten()?;
    let (meta, value) = cache.decode_or_miss::<S::Stored>(key, &bytes)?;
    // `AnySince` was settled by the caller; here it reads like `Any`.
    let usable = flags.max_age.is_none_or(|max| meta.age() < max)
        && rejected != Reread::Except(meta.fingerprint());
    usable.then_some((bytes, meta, value))
}

/// Runs the body and stores the result if it is cacheable; returns the output and the stored bytes.
pub(crate) async fn run_and_store<S, Out, Fut>(
    cache: &Cache,
    key: &str,
    options: &Options<Out>,
    flags: context::Flags,
    body: Fut,
) -> (Out, Option<Bytes>)
where
    S: Shape<Out>,
    Fut: Future<Output = Out>,
{
    let started = Instant::now();
    let out = body.await;
    let took = started.elapsed();
    telemetry::body_duration(options.call, took);
    telemetry::record_hit(false);
    let bytes = encode_output::<S, Out>(cache, key, options, &out, took);
    match persist::<S, Out>(cache, key, options, flags, bytes).await {
        Stored::Bytes(bytes) => (out, bytes),
        Stored::Strict(strict) => (strict, None),
    }
}

pub(crate) enum Stored<Out> {
    /// What was stored (or would have been, with writes disabled); `None` when not cacheable.
    Bytes(Option<Bytes>),
    /// A strict shape's report of a backend failure, to return instead of the output.
    Strict(Out),
}

/// Encodes an output if the shape and options accept it. Synchronous on purpose: holding `&Out` across an await
/// would make every cached future require `Out: Sync`.
pub(crate) fn encode_output<S, Out>(
    cache: &Cache,
    key: &str,
    options: &Options<Out>,
    out: &Out,
    took: Duration,
) -> Option<Bytes>
where
    S: Shape<Out>,
{
    if options.condition.is_some_and(|accept| !accept(out))
        || options.min_duration.is_some_and(|min| took < min)
    {
        return None;
    }
    let value = S::stored(out)?;
    cache
        .encode(key, value, envelope(cache, options))
        .inspect_err(|error| tracing::warn!(key, %error, "value not cached: it cannot be encoded"))
        .ok()
}

/// The envelope of a value stored now under `options`: its TTL and, for early/soft values, its refresh deadline.
fn envelope<Out>(cache: &Cache, options: &Options<Out>) -> EnvelopeMeta {
    let meta = EnvelopeMeta::new(cache.codec(), options.ttl);
    match options.refresh_after {
        Some(after) => meta.with_refresh_after(after),
        None => meta,
    }
}

/// Writes encoded bytes (unless writes are disabled) and registers tags.
pub(crate) async fn persist<S, Out>(
    cache: &Cache,
    key: &str,
    options: &Options<Out>,
    flags: context::Flags,
    bytes: Option<Bytes>,
) -> Stored<Out>
where
    S: Shape<Out>,
{
    let Some(bytes) = bytes else {
        context::record_miss(key, false);
        return Stored::Bytes(None);
    };
    let mut written = false;
    if flags.allows(Ops::SET) {
        let stored = match tags::register(cache, key, &options.tags, options.ttl).await {
            Ok(()) => cache.write_bytes(key, bytes.clone(), options.ttl).await,
            Err(error) => Err(error),
        };
        match stored {
            Ok(()) => {
                written = true;
                cache.metrics_ref().store();
            }
            Err(error) => {
                if let Ok(strict) = S::on_backend_error(error) {
                    context::record_miss(key, false);
                    return Stored::Strict(strict);
                }
            }
        }
    }
    context::record_miss(key, written);
    Stored::Bytes(Some(bytes))
}

/// The read half every strategy shares.
pub(crate) enum Lookup<Stored, Out> {
    /// A usable stored value.
    Hit(EnvelopeMeta, Stored),
    /// Nothing usable: compute as told.
    Miss(Fill),
    /// A strict shape's report of a backend failure.
    Strict(Out),
}

/// How a miss is computed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Fill {
    /// On our own, without joining other callers: fresh data was asked for (reads disabled, invalidating).
    Alone,
    /// In the in-process single flight of the key; its leader re-reads the key first as told.
    Coalesce(Reread),
}

/// Reads `key` as the current context allows: `invalidate_further` deletes it, a disabled `GET` skips the read,
/// `max_age` rejects older values, unreadable values and backend failures are misses (or strict errors).
pub(crate) async fn lookup<S, Out>(
    cache: &Cache,
    key: &str,
    flags: context::Flags,
    call: CallName,
) -> Lookup<S::Stored, Out>
where
    S: Shape<Out>,
{
    if flags.invalidate_further {
        if flags.allows(Ops::DELETE) {
            // Boxed, like the miss path: a rare branch must not grow every hit's future.
            if let Err(error) = Box::pin(cache.delete_internal(key)).await {
                telemetry::call(call, "error");
                if let Ok(out) = S::on_backend_error(error) {
                    return Lookup::Strict(out);
                }
                return Lookup::Miss(Fill::Alone);
            }
        }
        telemetry::call(call, "miss");
        return Lookup::Miss(Fill::Alone);
    }
    if !flags.allows(Ops::GET) {
        telemetry::call(call, "miss");
        return Lookup::Miss(Fill::Alone);
    }
    // The embedded memory backend never waits: read it here rather than through `read_typed`'s future, one
    // state machine less on every memory hit.
    let (epoch, read) = match cache.read_route(key) {
        ReadRoute::Memory(memory) => {
            crate::cache::consume_budget().await;
            let epoch = cache.inner.flights.ended();
            (epoch, cache.read_memory_typed::<S::Stored>(memory, key))
        }
        route => {
            let epoch = cache.inner.flights.ended();
            (epoch, cache.read_typed_at::<S::Stored>(route, key).await)
        }
    };
    let reread = match read {
        Ok(Some((meta, value))) if flags.max_age.is_none_or(|max| meta.age() < max) => {
            return Lookup::Hit(meta, value);
        }
        Ok(_) => {
            telemetry::call(call, "miss");
            Reread::AnySince(epoch)
        }
        Err(error) => {
            telemetry::call(call, "error");
            match S::on_backend_error(error) {
                Ok(out) => return Lookup::Strict(out),
                Err(_) => Reread::Skip,
            }
        }
    };
    cache.metrics_ref().miss();
    if flags.alone {
        return Lookup::Miss(Fill::Alone);
    }
    Lookup::Miss(Fill::Coalesce(reread))
}

/// The miss half every strategy shares: compute (coalesced in-process when allowed) and store.
pub(crate) async fn fill<S, Out, Fut>(
    cache: &Cache,
    key: String,
    options: &Options<Out>,
    flags: context::Flags,
    how: Fill,
    body: Fut,
) -> Out
where
    S: Shape<Out>,
    Fut: Future<Output = Out>,
{
    match how {
        Fill::Coalesce(reread) => {
            let lead = |body| run_and_store::<S, Out, Fut>(cache, &key, options, flags, body);
            run_single_flight::<S, Out, Fut, _, _>(
                cache,
                key.clone(),
                options,
                flags,
                reread,
                body,
                lead,
            )
            .await
        }
        Fill::Alone => {
            run_and_store::<S, Out, Fut>(cache, &key, options, flags, body)
                .await
                .0
        }
    }
}

pub(crate) fn hit(key: &str, strategy: &'static str, meta: &EnvelopeMeta, stale: bool) -> Hit {
    Hit {
        key: key.to_owned(),
        strategy,
        ttl: meta.remaining_ttl(),
        age: meta.age(),
        stale,
        fingerprint: meta.fingerprint(),
    }
}

/// Runs `body` and stores its result (if cacheable) without reading the cache first.
///
/// ```
/// use cache_core::{strategy, shape::Plain, Cache};
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() {
/// let cache = Cache::memory();
/// cache.set("k", &1u8, None).await.unwrap();
/// assert_eq!(strategy::refresh(Plain, &cache, "k".into(), None, None, async { 2u8 }).await, 2);
/// assert_eq!(cache.get::<u8>("k").await.unwrap(), Some(2));
/// # }
/// ```
pub async fn refresh<S, Out, Fut>(
    shape: S,
    cache: &Cache,
    key: String,
    ttl: Option<Duration>,
    condition: Option<Condition<Out>>,
    body: Fut,
) -> Out
where
    S: Shape<Out>,
    Fut: Future<Output = Out>,
{
    let options = Options {
        condition,
        ..Options::ttl(ttl)
    };
    refresh_with(shape, cache, key, options, body).await
}

/// Recomputes `key` on the Tokio runtime, outside the caller's context scope (a refresh serves later callers, not
/// this one), and stores the result. A result that is not cacheable keeps the stored value and is logged. `then`
/// runs afterwards with whether the refresh stored, to release locks or reset counters.
pub(crate) fn spawn_refresh<S, Out, Fut, Then, ThenFut>(
    cache: &Cache,
    key: String,
    options: Options<Out>,
    strategy: &'static str,
    body: Fut,
    then: Then,
) where
    S: Shape<Out> + Send + 'static,
    Out: Send + 'static,
    Fut: Future<Output = Out> + Send + 'static,
    Then: FnOnce(Cache, String, bool) -> ThenFut + Send + 'static,
    ThenFut: Future<Output = ()> + Send,
{
    let cache = cache.clone();
    tokio::spawn(async move {
        let (out, _) =
            run_and_store::<S, Out, Fut>(&cache, &key, &options, context::Flags::default(), body)
                .await;
        let stored = S::stored(&out).is_some();
        if !stored {
            tracing::warn!(
                key,
                strategy,
                "background refresh failed; keeping the stored value"
            );
        }
        then(cache, key, stored).await;
    });
}

/// [`refresh`] with every storing option: time condition, tags and the refresh deadline of early/soft values.
///
/// ```
/// use cache_core::{strategy::{self, Options}, shape::Plain, Cache};
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() {
/// let cache = Cache::memory();
/// let opts = Options::ttl(None).tags(vec!["t".into()]);
/// assert_eq!(strategy::refresh_with(Plain, &cache, "k".into(), opts, async { 2u8 }).await, 2);
/// assert_eq!(cache.delete_tags(&["t"]).await.unwrap(), 1);
/// # }
/// ```
pub async fn refresh_with<S, Out, Fut>(
    _shape: S,
    cache: &Cache,
    key: String,
    options: Options<Out>,
    body: Fut,
) -> Out
where
    S: Shape<Out>,
    Fut: Future<Output = Out>,
{
    let span = crate::telemetry::call_span(options.call, &key);
    crate::telemetry::in_span(span, async move {
        run_and_store::<S, Out, Fut>(cache, &key, &options, context::flags(), body)
            .await
            .0
    })
    .await
}

/// [`store`] with the options that shape a stored entry: its ttl, tags and refresh deadline. The condition and
/// time condition are about body runs and are not applied.
///
/// ```
/// use cache_core::{strategy::{self, Options}, shape::Plain, Cache};
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() {
/// let cache = Cache::memory();
/// let opts = Options::<u8>::ttl(None).tags(vec!["t".into()]);
/// strategy::store_with::<Plain, u8>(Plain, &cache, "k", &opts, &5).await.unwrap();
/// assert_eq!(cache.delete_tags(&["t"]).await.unwrap(), 1);
/// # }
/// ```
pub async fn store_with<S: Shape<Out>, Out>(
    _shape: S,
    cache: &Cache,
    key: &str,
    options: &Options<Out>,
    value: &S::Stored,
) -> Result<(), CacheError> {
    let bytes = cache.encode(key, value, envelope(cache, options))?;
    tags::register(cache, key, &options.tags, options.ttl).await?;
    cache.write_bytes(key, bytes, options.ttl).await?;
    Ok(())
}

/// Records a hit for `detect` and the metrics.
pub(crate) fn served(
    cache: &Cache,
    key: &str,
    strategy: &'static str,
    meta: &EnvelopeMeta,
    stale: bool,
    flags: context::Flags,
    call: CallName,
) {
    cache.metrics_ref().hit();
    telemetry::call(call, if stale { "stale" } else { "hit" });
    telemetry::record_hit(true);
    // Without a `detect` scope (known from the flags already read) the hit path skips a task-local access.
    if flags.detecting {
        context::record_hit(|| hit(key, strategy, meta, stale));
    }
}

/// Suffixes of the helper keys strategies keep next to a value. They stay beside the value's key so a prefix
/// route sends them to the same backend. Keys ending in these are reserved.
pub(crate) const LOCK_SUFFIX: &str = ":__lock";
pub(crate) const HITS_SUFFIX: &str = ":__hits";

/// Reads the stored value of `key` without running anything; `None` on a miss, an unreadable value or a backend
/// failure (logged).
///
/// ```
/// use cache_core::{strategy, shape::Plain, Cache};
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() {
/// let cache = Cache::memory();
/// assert_eq!(strategy::peek::<Plain, u8>(Plain, &cache, "k").await, None);
/// # }
/// ```
pub async fn peek<S: Shape<Out>, Out>(_shape: S, cache: &Cache, key: &str) -> Option<S::Stored> {
    match cache.read_entry::<S::Stored>(key).await {
        Ok(entry) => entry.map(|(_, v)| v),
        Err(_) => None,
    }
}

/// Stores `value` under `key` as a cached function would.
///
/// ```
/// use cache_core::{strategy, shape::Plain, Cache};
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() {
/// let cache = Cache::memory();
/// strategy::store::<Plain, u8>(Plain, &cache, "k", None, &5).await.unwrap();
/// assert_eq!(cache.get::<u8>("k").await.unwrap(), Some(5));
/// # }
/// ```
pub async fn store<S: Shape<Out>, Out>(
    _shape: S,
    cache: &Cache,
    key: &str,
    ttl: Option<Duration>,
    value: &S::Stored,
) -> Result<(), CacheError> {
    cache.set(key, value, ttl).await
}

/// Deletes `key`, honouring a disabled `DELETE` in the current scope. Fails open: `false` on a backend failure
/// (logged).
///
/// ```
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() {
/// let cache = cache_core::Cache::memory();
/// cache.set("k", &1u8, None).await.unwrap();
/// assert!(cache_core::strategy::invalidate(&cache, "k").await);
/// # }
/// ```
pub async fn invalidate(cache: &Cache, key: &str) -> bool {
    if context::is_disabled(Ops::DELETE) {
        return false;
    }
    cache.delete(key).await.unwrap_or(false)
}

/// Marks `key` stale (dogpile's `invalidate(hard=False)`, see [`Cache::mark_stale`]), honouring a disabled
/// `DELETE`. Fails open: `false` on a backend failure or a backend without compare-and-set.
///
/// ```
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() {
/// let cache = cache_core::Cache::memory();
/// cache.set("k", &1u8, None).await.unwrap();
/// assert!(cache_core::strategy::invalidate_soft(&cache, "k").await);
/// # }
/// ```
pub async fn invalidate_soft(cache: &Cache, key: &str) -> bool {
    if context::is_disabled(Ops::DELETE) {
        return false;
    }
    cache.mark_stale(key).await.unwrap_or(false)
}

/// Deletes every key matching a glob, honouring a disabled `DELETE`. Fails open: 0 on a backend failure.
///
/// ```
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() {
/// let cache = cache_core::Cache::memory();
/// cache.set("a:1", &1u8, None).await.unwrap();
/// assert_eq!(cache_core::strategy::invalidate_matching(&cache, "a:*").await, 1);
/// # }
/// ```
pub async fn invalidate_matching(cache: &Cache, pattern: &str) -> u64 {
    if context::is_disabled(Ops::DELETE) {
        return 0;
    }
    cache.delete_match(pattern).await.unwrap_or(0)
}

impl Cache {
    /// Returns the cached value for `key`, or runs `compute`, stores its result for `ttl` and returns it.
    ///
    /// Concurrent callers of one missing key share one `compute` run. Fails open: if the backend fails, the
    /// value is computed and returned anyway (the failure is logged and counted). Honours the
    /// [`context`](crate::context) scope like cached functions do.
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() {
    /// let cache = cache_core::Cache::memory();
    /// let v: String = cache.get_or_set("greeting", None, || async { "hi".to_string() }).await;
    /// assert_eq!(v, "hi");
    /// # }
    /// ```
    pub async fn get_or_set<T, F, Fut>(&self, key: &str, ttl: Option<Duration>, compute: F) -> T
    where
        T: crate::shape::Storable,
        F: FnOnce() -> Fut,
        Fut: Future<Output = T>,
    {
        cached(Plain, self, key.to_owned(), ttl, None, async move {
            compute().await
        })
        .await
    }

    /// Like [`Cache::get_or_set`], but a backend failure is returned as an error instead of computing the value
    /// when the cache is [strict](crate::CacheBuilder::strict); a non-strict cache fails open and never errors here.
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() {
    /// let cache = cache_core::Cache::builder().strict(true).build();
    /// let v = cache.try_get_or_set("k", None, || async { 1u8 }).await.unwrap();
    /// assert_eq!(v, 1);
    /// # }
    /// ```
    pub async fn try_get_or_set<T, F, Fut>(
        &self,
        key: &str,
        ttl: Option<Duration>,
        compute: F,
    ) -> Result<T, CacheError>
    where
        T: crate::shape::Storable,
        F: FnOnce() -> Fut,
        Fut: Future<Output = T>,
    {
        if self.is_strict() {
            cached(
                crate::shape::StrictOk,
                self,
                key.to_owned(),
                ttl,
                None,
                async move { Ok::<T, CacheError>(compute().await) },
            )
            .await
        } else {
            Ok(self.get_or_set(key, ttl, compute).await)
        }
    }
}
