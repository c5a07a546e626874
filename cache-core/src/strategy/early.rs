//! Early refresh (cashews `early`): after `early_ttl`, one caller recomputes while everyone keeps getting the
//! stored value.

use std::future::Future;
use std::time::Duration;

use super::lock::HeldLock;
use super::{
    encode_output, fill, lookup, persist, served, spawn_refresh, Lookup, Options, Stored,
    LOCK_SUFFIX,
};
use crate::cache::Cache;
use crate::context::{self, Ops};
use crate::shape::Shape;

/// The name [`detect`](crate::context::detect) reports for hits of [`early`] and [`early_foreground`].
pub const EARLY: &str = "early";

/// How long the refresh lock lives: long enough for a refresh, never longer than the window in which one is
/// useful, so a refresher that dies only delays the next attempt.
fn refresh_lock_ttl(ttl: Option<Duration>, early_ttl: Duration) -> Duration {
    let window = ttl.map_or(early_ttl, |t| t.saturating_sub(early_ttl));
    window.clamp(Duration::from_secs(1), Duration::from_secs(60))
}

/// Wins the refresh of `key` if it is still due: takes the refresh lock in the backend (so one refresher across
/// processes) and re-reads the entry, because another refresher may have just finished.
async fn win_refresh<S: Shape<Out>, Out>(
    cache: &Cache,
    key: &str,
    ttl: Option<Duration>,
    early_ttl: Duration,
) -> Option<HeldLock> {
    let lock_key = format!("{key}{LOCK_SUFFIX}");
    let held = HeldLock::acquire(cache, lock_key, refresh_lock_ttl(ttl, early_ttl))
        .await
        .ok()
        .flatten()?;
    match cache.read_entry::<S::Stored>(key).await {
        Ok(Some((meta, _))) if !meta.needs_refresh() => {
            held.release().await;
            None
        }
        _ => Some(held),
    }
}

/// Serves `key` and refreshes it in the background once it is older than `early_ttl`.
///
/// The value lives `options.ttl`; a hit past `early_ttl` lets the first caller that wins a lock in the backend
/// spawn `body` on the Tokio runtime and store its result; every caller, the winner included, gets the stored
/// value at once. A refresh whose result is not cacheable (an `Err`) keeps the old value and is logged. A miss
/// computes in the foreground like [`cached`](super::cached). Because the refresh outlives the call, `body` must
/// be `Send + 'static` (own its arguments); [`early_foreground`] has no such bound.
///
/// ```
/// use cache_core::{strategy::{self, Options}, shape::Plain, Cache};
/// use std::time::Duration;
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() {
/// let cache = Cache::memory();
/// let opts = Options::ttl(Some(Duration::from_secs(600)));
/// let v = strategy::early(Plain, &cache, "rates".into(), opts, Duration::from_secs(420), async { 1.1f64 }).await;
/// assert_eq!(v, 1.1);
/// # }
/// ```
pub async fn early<S, Out, Fut>(
    _shape: S,
    cache: &Cache,
    key: String,
    options: Options<Out>,
    early_ttl: Duration,
    body: Fut,
) -> Out
where
    S: Shape<Out> + Send + 'static,
    Out: Send + 'static,
    Fut: Future<Output = Out> + Send + 'static,
{
    let span = crate::telemetry::call_span(options.call, &key);
    crate::telemetry::in_span(span, async move {
        let options = options.with_refresh_after(early_ttl);
        let flags = context::flags();
        let call = options.call;
        match lookup::<S, Out>(cache, &key, flags, options.call).await {
            Lookup::Hit(meta, value) => {
                if meta.needs_refresh()
                    && flags.allows(Ops::SET)
                    && let Some(held) =
                        win_refresh::<S, Out>(cache, &key, options.ttl, early_ttl).await
                {
                    // A refresh that panics drops `held` with its task, which releases the lock too.
                    spawn_refresh::<S, Out, Fut, _, _>(
                        cache,
                        key.clone(),
                        options,
                        EARLY,
                        body,
                        |_, _, _| held.release(),
                    );
                }
                served(cache, &key, EARLY, &meta, false, flags, call);
                S::rebuild(value)
            }
            Lookup::Strict(out) => out,
            Lookup::Miss(how) => fill::<S, Out, Fut>(cache, key, &options, flags, how, body).await,
        }
    })
    .await
}

/// Like [`early`], but the caller that wins the refresh recomputes in the foreground and gets the fresh value
/// (the others keep getting the stored one). No `'static` bound on `body`.
///
/// ```
/// use cache_core::{strategy::{self, Options}, shape::Plain, Cache};
/// use std::time::Duration;
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() {
/// let cache = Cache::memory();
/// let name = String::from("eur");
/// let opts = Options::ttl(Some(Duration::from_secs(600)));
/// let v = strategy::early_foreground(Plain, &cache, "rates".into(), opts, Duration::from_secs(420), async {
///     name.len()
/// })
/// .await;
/// assert_eq!(v, 3);
/// # }
/// ```
pub async fn early_foreground<S, Out, Fut>(
    _shape: S,
    cache: &Cache,
    key: String,
    options: Options<Out>,
    early_ttl: Duration,
    body: Fut,
) -> Out
where
    S: Shape<Out>,
    Fut: Future<Output = Out>,
{
    let span = crate::telemetry::call_span(options.call, &key);
    crate::telemetry::in_span(span, async move {
        let options = options.with_refresh_after(early_ttl);
        let flags = context::flags();
        match lookup::<S, Out>(cache, &key, flags, options.call).await {
            Lookup::Hit(meta, value) => {
                if meta.needs_refresh()
                    && flags.allows(Ops::SET)
                    && let Some(held) =
                        win_refresh::<S, Out>(cache, &key, options.ttl, early_ttl).await
                {
                    // The winner computes in the foreground: its call counts as a miss.
                    crate::telemetry::call(options.call, "miss");
                    let started = std::time::Instant::now();
                    let out = body.await;
                    let took = started.elapsed();
                    crate::telemetry::body_duration(options.call, took);
                    let bytes = encode_output::<S, Out>(cache, &key, &options, &out, took);
                    let stored = persist::<S, Out>(cache, &key, &options, flags, bytes).await;
                    held.release().await;
                    match stored {
                        Stored::Strict(strict) => return strict,
                        Stored::Bytes(Some(_)) => return out,
                        Stored::Bytes(None) if S::stored(&out).is_some() => return out,
                        Stored::Bytes(None) => {
                            tracing::warn!(key, "early refresh failed; serving the stored value");
                        }
                    }
                }
                served(cache, &key, EARLY, &meta, false, flags, options.call);
                S::rebuild(value)
            }
            Lookup::Strict(out) => out,
            Lookup::Miss(how) => fill::<S, Out, Fut>(cache, key, &options, flags, how, body).await,
        }
    })
    .await
}
