//! Strategies: plain async functions that take a rendered key, options and the body future.
//!
//! The macros only render the key and call one of these, so each behaviour here is tested without macros.

use std::future::Future;
use std::time::Duration;

use bytes::Bytes;

use crate::cache::Cache;
use crate::context::{self, Hit, Ops};
use crate::envelope::EnvelopeMeta;
use crate::error::CacheError;
use crate::metrics::Metrics;
use crate::shape::Shape;
use crate::singleflight::{self, Outcome, Role};

/// The name [`detect`](crate::context::detect) reports for hits of [`cached`].
pub const CACHED: &str = "cached";

/// A predicate on a function's output deciding whether it is stored.
pub type Condition<Out> = fn(&Out) -> bool;

/// Returns the cached value of `key` or runs `body`, storing its result when the shape and `condition` allow.
///
/// - Honours the current [`context`](crate::context): disabled reads run the body (and still store unless writes
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
    _shape: S,
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
    let flags = context::flags();
    if flags.invalidate_further {
        if flags.allows(Ops::DELETE) {
            if let Err(error) = cache.delete(&key).await {
                if let Ok(out) = S::on_backend_error(error) {
                    return out;
                }
            }
        }
    } else if flags.allows(Ops::GET) {
        match cache.read_entry::<S::Stored>(&key).await {
            Ok(Some((meta, value))) if flags.max_age.is_none_or(|max| meta.age() < max) => {
                Metrics::inc(&cache.metrics_ref().hits);
                if flags.detecting {
                    context::record_hit(|| hit(&key, CACHED, &meta, false));
                }
                return S::rebuild(value);
            }
            Ok(_) => {}
            Err(error) => {
                if let Ok(out) = S::on_backend_error(error) {
                    return out;
                }
            }
        }
        Metrics::inc(&cache.metrics_ref().misses);
        return run_single_flight::<S, Out, Fut>(cache, key, ttl, condition, flags, body).await;
    }
    let (out, _) = run_and_store::<S, Out, Fut>(cache, &key, ttl, condition, flags, body).await;
    out
}

async fn run_single_flight<S, Out, Fut>(
    cache: &Cache,
    key: String,
    ttl: Option<Duration>,
    condition: Option<Condition<Out>>,
    flags: context::Flags,
    body: Fut,
) -> Out
where
    S: Shape<Out>,
    Fut: Future<Output = Out>,
{
    loop {
        match cache.inner.flights.join(&key) {
            Role::Leader(leader) => {
                let (out, stored) =
                    run_and_store::<S, Out, Fut>(cache, &key, ttl, condition, flags, body).await;
                leader.finish(stored);
                return out;
            }
            Role::Follower(rx) => match singleflight::wait(rx).await {
                Outcome::Shared(bytes) => {
                    if let Some((_, value)) = cache.decode_or_miss::<S::Stored>(&key, &bytes) {
                        return S::rebuild(value);
                    }
                    break;
                }
                Outcome::NotShared => break,
                Outcome::Abandoned => {
                    // Another waiter may have taken over and finished already: its value is in the cache.
                    if let Ok(Some((_, value))) = cache.read_entry::<S::Stored>(&key).await {
                        return S::rebuild(value);
                    }
                }
            },
        }
    }
    // The leader's result was not cacheable (an `Err`, a failed condition): compute our own.
    let (out, _) = run_and_store::<S, Out, Fut>(cache, &key, ttl, condition, flags, body).await;
    out
}

/// Runs the body and stores the result if it is cacheable; returns the output and the stored bytes.
async fn run_and_store<S, Out, Fut>(
    cache: &Cache,
    key: &str,
    ttl: Option<Duration>,
    condition: Option<Condition<Out>>,
    flags: context::Flags,
    body: Fut,
) -> (Out, Option<Bytes>)
where
    S: Shape<Out>,
    Fut: Future<Output = Out>,
{
    let out = body.await;
    if condition.is_some_and(|accept| !accept(&out)) {
        return (out, None);
    }
    let Some(value) = S::stored(&out) else {
        return (out, None);
    };
    let bytes = match cache.encode(value, EnvelopeMeta::new(cache.codec(), ttl)) {
        Ok(bytes) => bytes,
        Err(error) => {
            tracing::warn!(key, %error, "value not cached: it cannot be encoded");
            return (out, None);
        }
    };
    if flags.allows(Ops::SET) {
        match cache.write_bytes(key, bytes.clone(), ttl).await {
            Ok(()) => Metrics::inc(&cache.metrics_ref().stores),
            Err(error) => {
                if let Ok(strict) = S::on_backend_error(error) {
                    return (strict, None);
                }
            }
        }
    }
    (out, Some(bytes))
}

fn hit(key: &str, strategy: &'static str, meta: &EnvelopeMeta, stale: bool) -> Hit {
    Hit {
        key: key.to_owned(),
        strategy,
        ttl: meta.remaining_ttl(),
        age: meta.age(),
        stale,
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
    _shape: S,
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
    let flags = context::flags();
    run_and_store::<S, Out, Fut>(cache, &key, ttl, condition, flags, body)
        .await
        .0
}

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
