//! Soft TTL (cashews `soft_ttl`): recompute after the soft deadline; if that fails, serve the stale value until
//! the hard TTL.

use std::future::Future;
use std::time::Duration;

use super::{fill, lookup, served, Fill, Lookup, Options, Reread, CACHED};
use crate::cache::Cache;
use crate::context;
use crate::shape::Shape;

/// The name [`detect`](crate::context::detect) reports for stale values served by [`soft`].
pub const SOFT: &str = "soft";

/// Serves `key` while younger than `soft_ttl`; after that the next callers recompute (coalesced in-process) and
/// store the fresh value. If the recomputation is not cacheable — an `Err` of a `Result` function — the stale
/// value is served instead (reported as stale), until the hard `options.ttl` removes it.
///
/// ```
/// use cache_core::{strategy::{self, Options}, shape::OkOnly, Cache};
/// use std::time::Duration;
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() {
/// let cache = Cache::memory();
/// let opts = || Options::ttl(Some(Duration::from_secs(3600)));
/// let first = strategy::soft(OkOnly, &cache, "k".into(), opts(), Duration::ZERO, async { Ok::<u8, ()>(1) }).await;
/// let failed = strategy::soft(OkOnly, &cache, "k".into(), opts(), Duration::ZERO, async { Err::<u8, ()>(()) }).await;
/// assert_eq!((first, failed), (Ok(1), Ok(1)));
/// # }
/// ```
pub async fn soft<S, Out, Fut>(
    _shape: S,
    cache: &Cache,
    key: String,
    options: Options<Out>,
    soft_ttl: Duration,
    body: Fut,
) -> Out
where
    S: Shape<Out>,
    Fut: Future<Output = Out>,
{
    let span = crate::telemetry::call_span(options.call, &key);
    crate::telemetry::in_span(span, async move {
        let options = options.with_refresh_after(soft_ttl);
        let flags = context::flags();
        let (stale, how) = match lookup::<S, Out>(cache, &key, flags, options.call).await {
            Lookup::Hit(meta, value) if !meta.needs_refresh() => {
                served(cache, &key, CACHED, &meta, false, flags, options.call);
                return S::rebuild(value);
            }
            Lookup::Hit(meta, value) => {
                let how = Fill::Coalesce(Reread::Except(meta.fingerprint()));
                (Some((meta, value)), how)
            }
            Lookup::Strict(out) => return out,
            Lookup::Miss(how) => (None, how),
        };
        let out = fill::<S, Out, Fut>(cache, key.clone(), &options, flags, how, body).await;
        match stale {
            Some((meta, value)) if S::stored(&out).is_none() => {
                tracing::info!(key, "recomputation failed; serving the stale value");
                served(cache, &key, SOFT, &meta, true, flags, options.call);
                S::rebuild(value)
            }
            Some(_) => {
                // Soft-expired and recomputed: the call missed (`lookup` counted only true misses).
                crate::telemetry::call(options.call, "miss");
                out
            }
            None => out,
        }
    })
    .await
}
