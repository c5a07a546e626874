//! Async-first caching for Rust services: annotate async fns, switch the cache off per request, see which keys
//! were hits.
//!
//! This is the runtime behind the [`cachette`](https://docs.rs/cachette) facade; depend on `cachette`, which
//! re-exports everything here (the macros expand to `::cachette::__private` paths).
//!
//! - Attribute macros (re-exported from `cache-macros`): [`cached`] (with `soft_ttl`, `lock`, `time_condition`,
//!   `tags`), [`cache_early`], [`cache_failover`], [`cache_hit`], [`cache_locked`] and [`invalidates`]; `cachette`'s
//!   `guide` module has a runnable example of each. Every behaviour behind them is a plain async function in
//!   [`strategy`]. Beside the cache, the service toolkit: [`locked`](macro@locked),
//!   [`rate_limit`](macro@rate_limit) and [`circuit_breaker`](macro@circuit_breaker) (with [`Cache::lock`],
//!   [`Cache::rate_limit`], [`strategy::circuit_breaker`]) and [`Cache::transaction`].
//! - [`Cache`]: a cheap handle over a [`Backend`] (bytes in, bytes out) with a [`Codec`] and a versioned
//!   envelope; [`global`] is the default the macros use — a bounded in-memory cache until [`set_global`].
//! - [`context`]: per-task scopes to disable operations and detect hits; with the `http` feature, tower layers
//!   that map request headers onto them (`http` module).
//! - [`MemoryBackend`]: the embedded default; Redis and others live in `cache-backends`.
//!
//! ```
//! use cache_core::Cache;
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() {
//! let cache = Cache::memory();
//! let (v, hits) = cache_core::context::detect(cache.get_or_set("k", None, || async { 1u8 })).await;
//! assert_eq!((v, hits.is_empty()), (1, true));
//! # }
//! ```

#![warn(missing_docs)]
#![cfg_attr(docsrs, feature(doc_cfg))]

mod backend;
mod cache;
mod codec;
mod compare_and_set;
pub mod conditions;
pub mod context;
mod envelope;
mod error;
mod glob;
#[cfg(feature = "http")]
pub mod http;
mod key;
pub mod layer;
mod memory;
mod metrics;
mod namespace;
mod null;
pub mod regions;
mod router;
pub mod shape;
mod singleflight;
mod size;
mod stored;
pub mod strategy;
mod sync_run;
pub mod telemetry;
mod toolkit;
mod transaction;

#[doc(hidden)]
#[path = "private.rs"]
pub mod __private;

pub use backend::{Backend, BackendError, Capabilities, CasOutcome, CasToken, KeyTtl, SetMode};
pub use cache::{global, set_global, Cache, CacheBuilder};
pub use codec::{Codec, CodecError};
pub use compare_and_set::UPDATE_ATTEMPTS;
pub use envelope::{EnvelopeError, EnvelopeMeta};
pub use error::CacheError;
pub use glob::GlobMatcher;
pub use key::{render_key, KeyArg, KeyBuilder, KeyFormat, KeyWriter};
pub use memory::{MemoryBackend, MemoryBackendBuilder};
pub use metrics::MetricsSnapshot;
pub use namespace::DEFAULT_NAMESPACE_REFRESH;
pub use null::NullBackend;
pub use shape::Storable;
pub use strategy::FactoryTimedOut;
pub use toolkit::{
    check_rate_by_cas, CircuitOpen, LockGuard, LockRequest, Locked, RateAlgorithm, RateDecision,
    RateLimited, RateRule, Remaining,
};
pub use transaction::{TransactionBuilder, TransactionMode};

pub use async_trait::async_trait;
pub use bytes::Bytes;
pub use cache_macros::{
    cache_early, cache_failover, cache_hit, cache_locked, cached, cached_many, circuit_breaker,
    invalidates, locked, rate_limit,
};
