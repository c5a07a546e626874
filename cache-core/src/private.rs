//! Entry points for the code the macros generate. Not a public API: names and signatures may change in any
//! release.

pub use std::option::Option;
pub use std::result::Result;
pub use std::string::String;
pub use std::time::Duration;

pub use crate::cache::{global, Cache};
pub use crate::error::CacheError;
pub use crate::key::{KeyArg, KeyBuilder, KeyFormat};
pub use crate::shape::{OkOnly, Plain, Shape, Storable, StrictOk};
pub use crate::strategy::{
    cached, cached_with, early, early_foreground, failover, hits, invalidate, invalidate_matching,
    invalidate_soft, locked, peek, refresh, refresh_with, soft, store, store_with, timed,
    FactoryTimeouts, LockOptions, Options,
};
pub use std::vec::Vec;

pub use crate::strategy::{circuit_breaker, CircuitOptions};
pub use crate::sync_run::{note_refused, refused, sync_runner, SyncRunner};
pub use crate::toolkit::RateRule;

/// `#[locked]`: runs `body` holding the lock `key` — waiting up to `timeout` for it with `wait`, else refusing at
/// once with `Err(Locked)`. A backend failure runs the body without the lock (fail-open; logged and counted).
pub async fn guard_locked<T, E, Fut>(
    cache: &Cache,
    key: String,
    ttl: Duration,
    wait: bool,
    timeout: Duration,
    body: Fut,
) -> Result<T, E>
where
    E: From<crate::toolkit::Locked>,
    Fut: std::future::Future<Output = Result<T, E>>,
{
    let taken = if wait {
        cache.lock(&key, ttl).timeout(timeout).await.map(Some)
    } else {
        cache.try_lock(&key, ttl).await
    };
    let guard = match taken {
        Ok(Some(guard)) => Some(guard),
        Ok(None) => {
            return Err(E::from(crate::toolkit::Locked {
                key,
                waited: Duration::ZERO,
            }))
        }
        Err(CacheError::Locked(locked)) => return Err(E::from(locked)),
        // Already logged and counted by the cache.
        Err(_) => None,
    };
    let out = body.await;
    if let Some(guard) = guard {
        // A failed release is logged by the cache; the lock's TTL frees it.
        let _ = guard.release().await;
    }
    out
}

/// `#[rate_limit]`: counts the call against `rule` under `key`; a refused call gives `refused(RateLimited)`
/// without running `body`. A backend failure lets the call through (fail-open; logged and counted).
pub async fn guard_rate_limit<Out, Fut, R>(
    cache: &Cache,
    key: String,
    rule: RateRule,
    body: Fut,
    refused: R,
) -> Out
where
    Fut: std::future::Future<Output = Out>,
    R: FnOnce(crate::toolkit::RateLimited) -> Out,
{
    match cache.rate_limit_with(&key, rule).await {
        Ok(_) => body.await,
        Err(limited) => refused(limited),
    }
}

/// Names the error type of a `Result` output, so a failover predicate written as a closure (`on = |e| ...`)
/// gets a concrete argument type even when the return type is an alias such as `io::Result<T>`.
pub trait ResultTypes {
    /// The `T` of `Result<T, E>`.
    type Ok;
    /// The `E` of `Result<T, E>`.
    type Err;
}

impl<T, E> ResultTypes for Result<T, E> {
    type Ok = T;
    type Err = E;
}

/// Checks the stored type on its own, before a strategy's `Shape` bound does: rustc then reports a missing bound
/// with [`Storable`]'s message (naming the derives) instead of serde's, and drops the strategy's duplicate.
#[inline(always)]
pub fn assert_storable<T: Storable>() {}

/// Deletes every entry stored under any of `tags` (`#[invalidates(tag = "...")]`). Honours a disabled `DELETE`
/// in the current scope. Fails open: a backend failure is logged and counted by the cache, and reads as 0.
pub async fn invalidate_tags(cache: &Cache, tags: &[String]) -> u64 {
    if crate::context::is_disabled(crate::context::Ops::DELETE) {
        return 0;
    }
    let tags: Vec<&str> = tags.iter().map(String::as_str).collect();
    cache.delete_tags(&tags).await.unwrap_or(0)
}

/// Clears namespace `name` of `cache` (`#[invalidates(namespace = "...")]`). Honours a disabled `DELETE` in the
/// current scope. Fails open: a backend failure is logged and counted by the cache, and reads as `false`.
pub async fn clear_namespace(cache: &Cache, name: &str) -> bool {
    cache.namespace(name).clear().await.is_ok()
}

/// Makes a missing [`KeyArg`] impl point at the argument the macro spans this call with.
#[inline(always)]
pub fn assert_key_arg<T: KeyArg + ?Sized>(_: &T) {}

/// Anything a `ttl = <expr>` may evaluate to.
pub trait IntoTtl {
    /// The TTL; `None` means no expiry.
    fn into_ttl(self) -> Option<Duration>;
}

impl IntoTtl for Duration {
    fn into_ttl(self) -> Option<Duration> {
        Some(self)
    }
}

impl IntoTtl for Option<Duration> {
    fn into_ttl(self) -> Option<Duration> {
        self
    }
}

macro_rules! seconds_ttl {
    ($($t:ty),*) => {$(
        impl IntoTtl for $t {
            /// Whole seconds; a negative number means "already expired" (zero TTL).
            #[allow(unused_comparisons)]
            fn into_ttl(self) -> Option<Duration> {
                Some(Duration::from_secs(if self < 0 { 0 } else { self as u64 }))
            }
        }
    )*};
}
seconds_ttl!(u64, u32, usize, i64, i32);

/// Converts a `ttl = <expr>` value.
pub fn ttl<T: IntoTtl>(value: T) -> Option<Duration> {
    value.into_ttl()
}

pub use crate::regions::{
    call_settings as region_settings, CallSettings as RegionSettings, REFERENCED as REGIONS,
};
pub use linkme;
