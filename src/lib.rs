//! Async-first caching for Rust services: annotate async fns, switch the cache off per request, see which keys
//! were hits — with the resilience (early refresh, failover, soft TTL, stampede locks, a circuit breaker) built in.
//!
//! ```toml
//! [dependencies]
//! cachette = "0.1"   # features: redis (default), tls, http, compress, sign, metrics, config, etcd, memcached, disk
//! ```
//!
//! ```
//! use cachette::{cached, context};
//!
//! #[cached(ttl = "10m", key = "user:{id}")]
//! async fn user_name(id: u64) -> String {
//!     format!("user {id}") // a slow query, in real life
//! }
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() {
//! let (name, hits) = context::detect(user_name(7)).await; // computed and stored
//! assert!(hits.is_empty());
//! let (again, hits) = context::detect(user_name(7)).await; // served from the cache
//! assert_eq!((again, hits.keys()), (name, vec!["user:7"]));
//! # }
//! ```
//!
//! Without set-up, the macros use an in-memory cache ([`global`]); [`setup()`](fn@setup) installs another one from a
//! URL (`redis://…`, `mem://?size=…`) with layers such as compression, signing and a circuit breaker.
//!
//! - Attribute macros: [`cached`], [`cache_early`], [`cache_failover`], [`cache_hit`], [`cache_locked`],
//!   [`cached_many`] and [`invalidates`]; each has a runnable example on its page, the [`guide`] a tour. Every
//!   behaviour behind them is a plain async function in [`strategy`]. They take sync `fn`s too.
//! - The service toolkit: [`locked`](macro@locked), [`rate_limit`](macro@rate_limit),
//!   [`circuit_breaker`](macro@circuit_breaker) (guards that cache nothing),
//!   [`Cache::lock`], [`Cache::rate_limit`] and [`Cache::transaction`].
//! - [`Cache`]: a cheap handle over a [`Backend`] (bytes in, bytes out) with a [`Codec`] and a versioned envelope.
//! - [`context`]: per-task scopes to disable operations and detect hits; with the `http` feature, tower layers that
//!   map request headers onto them (`http` module).
//! - Backends: [`MemoryBackend`] (the embedded default) and, with the `redis` feature (default), `RedisBackend`.
//!
//! This crate re-exports `cache-core` (the runtime and macros) and `cache-backends` (Redis, the circuit breaker and
//! URL set-up); depend on it alone.
//!
//! | feature | what it turns on |
//! | --- | --- |
//! | `redis` (default) | `RedisBackend` over fred: `redis://`, `redis+cluster://`, `redis+sentinel://`, `unix://` URLs |
//! | `tls` | `rediss://` URLs (rustls) |
//! | `http` | tower/axum layers: per-request cache control, hit headers, ETags (`http` module) |
//! | `compress` | `layer::Compress` and the `compress=lz4` URL option |
//! | `sign` | `layer::Sign` and the `secret=env:NAME` URL option |
//! | `metrics` | counters and histograms through the `metrics` facade ([`telemetry`]) |
//! | `etcd` | `EtcdBackend` and `etcd://` URLs (etcd v3 through its JSON gateway) |
//! | `memcached` | `MemcachedBackend` and `memcached://` URLs (meta protocol, pymemcache-compatible hashing) |
//! | `disk` | `DiskBackend` and `disk://` URLs (SQLite, bundled; survives restarts, shared by processes) |
//! | `config` | settings from a TOML file and `CACHE__*` variables, with regions (`Config`) |

#![warn(missing_docs)]
#![cfg_attr(docsrs, feature(doc_cfg))]

pub mod guide;

pub use cache_core::*;

pub use cache_backends::setup;
#[cfg(feature = "redis")]
pub use cache_backends::{
    backplane, client_side, fred, redis, ClientSideBackend, ClientSideOptions, RedisBackend,
    RedisBackendBuilder, RedisBackplane,
};
pub use cache_backends::{
    breaker, build_cache, circuit_breaker, fallback, known_schemes, parse_url, setup_with_prefix,
    BackendSpec, Breaker, BreakerState, CacheUrl, CircuitBreaker, CircuitBreakerBuilder, DiskUrl,
    EtcdUrl, FallbackBackend, FallbackStats, LayerOptions, MemcachedUrl, MemoryUrl, NullUrl,
    RedisUrl, Scheme, Setup, SetupError, TieredUrl, UrlParts,
};
#[cfg(feature = "config")]
pub use cache_backends::{config, CacheSection, Config, ConfigError, RegionSection, Scalar};
#[cfg(feature = "disk")]
pub use cache_backends::{disk, DiskBackend, DiskBackendBuilder};
#[cfg(feature = "etcd")]
pub use cache_backends::{etcd, EtcdBackend, EtcdBackendBuilder};
#[cfg(feature = "memcached")]
pub use cache_backends::{memcached, MemcachedBackend, MemcachedBackendBuilder};
pub use cache_backends::{tiered, TieredBackend, TieredOptions};
