//! Hit-limited entries (cashews `hit`): serve a value at most `max_hits` times, optionally refreshing it in the
//! background after `update_after` hits.

use std::future::Future;

use super::{fill, lookup, served, spawn_refresh, Fill, Lookup, Options, Reread, HITS_SUFFIX};
use crate::cache::Cache;
use crate::context::{self, Ops};
use crate::shape::Shape;

/// The name [`detect`](crate::context::detect) reports for hits of [`hits`].
pub const HITS: &str = "hits";

/// Serves `key` at most `max_hits` times; the next call recomputes and stores afresh. With `update_after`, the
/// `update_after`-th hit also starts a background refresh (so `body` must be `Send + 'static`), which resets the
/// count. The count lives in the backend next to the value, so processes sharing a backend share it.
///
/// ```
/// use cache_core::{strategy::{self, Options}, shape::Plain, Cache};
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() {
/// let cache = Cache::memory();
/// let mut seen = Vec::new();
/// for i in 0..4u8 {
///     seen.push(strategy::hits(Plain, &cache, "k".into(), Options::ttl(None), 2, None, async move { i }).await);
/// }
/// assert_eq!(seen, vec![0, 0, 0, 3]); // a miss, two hits, then recomputed
/// # }
/// ```
pub async fn hits<S, Out, Fut>(
    _shape: S,
    cache: &Cache,
    key: String,
    options: Options<Out>,
    max_hits: u64,
    update_after: Option<u64>,
    body: Fut,
) -> Out
where
    S: Shape<Out> + Send + 'static,
    Out: Send + 'static,
    Fut: Future<Output = Out> + Send + 'static,
{
    let span = crate::telemetry::call_span(options.call, &key);
    crate::telemetry::in_span(span, async move {
        let flags = context::flags();
        let call = options.call;
        let counter = format!("{key}{HITS_SUFFIX}");
        let how = match lookup::<S, Out>(cache, &key, flags, options.call).await {
            Lookup::Hit(meta, value) => {
                // A counter failure fails open: the value is served and counting resumes when the backend does.
                let count = if flags.allows(Ops::INCR) {
                    cache
                        .incr_internal(&counter, 1, options.ttl)
                        .await
                        .unwrap_or(0)
                } else {
                    0
                };
                let count = u64::try_from(count).unwrap_or(0);
                if count <= max_hits {
                    if update_after == Some(count) && flags.allows(Ops::SET) {
                        let counter = counter.clone();
                        spawn_refresh::<S, Out, Fut, _, _>(
                            cache,
                            key.clone(),
                            options,
                            HITS,
                            body,
                            |cache, _, stored| async move {
                                if stored {
                                    let _ = cache.delete_internal(&counter).await;
                                }
                            },
                        );
                    }
                    served(cache, &key, HITS, &meta, false, flags, call);
                    return S::rebuild(value);
                }
                // Used up: recompute like a miss, unless a value stored since is there by then.
                crate::telemetry::call(call, "miss");
                Fill::Coalesce(Reread::Except(meta.fingerprint()))
            }
            Lookup::Strict(out) => return out,
            Lookup::Miss(how) => how,
        };
        let out = fill::<S, Out, Fut>(cache, key, &options, flags, how, body).await;
        if S::stored(&out).is_some() && flags.allows(Ops::SET) {
            let _ = cache.delete_internal(&counter).await;
        }
        out
    })
    .await
}
