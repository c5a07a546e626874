//! Failover (cashews `failover`): always call the body; when it fails, serve the last good value.

use std::future::Future;

use super::{run_and_store, served, Options};
use crate::cache::Cache;
use crate::context::{self, Ops};
use crate::shape::{OkOnly, Storable};

/// The name [`detect`](crate::context::detect) reports for values served by [`failover`].
pub const FAILOVER: &str = "failover";

/// Runs `body`; stores every `Ok`; when it returns an `Err` that `accept` accepts (default: any), returns the
/// last stored `Ok` for `key` instead, reported to `detect` as stale. With nothing stored, the error is returned.
///
/// ```
/// use cache_core::{strategy::{self, Options}, Cache};
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() {
/// let cache = Cache::memory();
/// let ok = strategy::failover(&cache, "w".into(), Options::ttl(None), None, async { Ok::<u8, String>(20) }).await;
/// let down = strategy::failover(&cache, "w".into(), Options::ttl(None), None, async { Err::<u8, _>("timeout".to_string()) }).await;
/// assert_eq!((ok, down), (Ok(20), Ok(20)));
/// # }
/// ```
pub async fn failover<T, E, Fut>(
    cache: &Cache,
    key: String,
    options: Options<Result<T, E>>,
    accept: Option<fn(&E) -> bool>,
    body: Fut,
) -> Result<T, E>
where
    T: Storable,
    Fut: Future<Output = Result<T, E>>,
{
    let span = crate::telemetry::call_span(options.call, &key);
    crate::telemetry::in_span(span, async move {
        let flags = context::flags();
        let (out, _) = run_and_store::<OkOnly, _, _>(cache, &key, &options, flags, body).await;
        // The body's own answer is a miss; a served fallback counts as stale (in `served`).
        let error = match out {
            Ok(value) => {
                crate::telemetry::call(options.call, "miss");
                return Ok(value);
            }
            Err(error) => error,
        };
        if accept.is_some_and(|accept| !accept(&error)) || !flags.allows(Ops::GET) {
            crate::telemetry::call(options.call, "miss");
            return Err(error);
        }
        match cache.read_entry::<T>(&key).await {
            Ok(Some((meta, value))) => {
                tracing::info!(key, "body failed; serving the last good value");
                served(cache, &key, FAILOVER, &meta, true, flags, options.call);
                Ok(value)
            }
            _ => {
                crate::telemetry::call(options.call, "miss");
                Err(error)
            }
        }
    })
    .await
}
