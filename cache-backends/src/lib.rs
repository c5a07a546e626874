//! Backends for [`cache_core`]: Redis over [fred](https://docs.rs/fred), a circuit breaker for any backend, and
//! URL-driven set-up.
//!
//! ```no_run
//! # #[tokio::main]
//! # async fn main() -> Result<(), cache_backends::SetupError> {
//! // Redis with a key prefix, a 250 ms command timeout and the default circuit breaker, installed as the global
//! // cache that `#[cached]` functions use.
//! cache_backends::setup("redis://127.0.0.1:6379/0?prefix=myapp:&command_timeout=250ms").await?;
//! # Ok(()) }
//! ```
//!
//! Cargo features: `redis` (default) enables [`RedisBackend`]; `tls` adds `rediss://` via rustls; `memcached`
//! enables [`MemcachedBackend`]; `etcd` the etcd backend; `config` settings files.

#![warn(missing_docs)]
#![cfg_attr(docsrs, feature(doc_cfg))]

#[cfg(feature = "redis")]
pub mod backplane;
pub mod breaker;
#[cfg(feature = "redis")]
pub mod client_side;
#[cfg(feature = "config")]
pub mod config;
#[cfg(feature = "disk")]
pub mod disk;
mod epochs;
#[cfg(feature = "etcd")]
pub mod etcd;
pub mod fallback;
#[cfg(feature = "memcached")]
pub mod memcached;
#[cfg(feature = "redis")]
pub mod redis;
pub mod setup;
pub mod tiered;

#[cfg(feature = "redis")]
pub use backplane::RedisBackplane;
pub use breaker::{circuit_breaker, Breaker, BreakerState, CircuitBreaker, CircuitBreakerBuilder};
#[cfg(feature = "redis")]
pub use client_side::{ClientSideBackend, ClientSideOptions};
#[cfg(feature = "config")]
pub use config::{CacheSection, Config, ConfigError, RegionSection, Scalar};
#[cfg(feature = "disk")]
pub use disk::{DiskBackend, DiskBackendBuilder};
#[cfg(feature = "etcd")]
pub use etcd::{EtcdBackend, EtcdBackendBuilder};
pub use fallback::{FallbackBackend, FallbackStats};
#[cfg(feature = "memcached")]
pub use memcached::{MemcachedBackend, MemcachedBackendBuilder};
#[cfg(feature = "redis")]
pub use redis::{RedisBackend, RedisBackendBuilder};
pub use setup::{
    build_cache, known_schemes, parse_url, setup, setup_with_prefix, BackendSpec, CacheUrl,
    DiskUrl, EtcdUrl, LayerOptions, MemcachedUrl, MemoryUrl, NullUrl, RedisUrl, Scheme, Setup,
    SetupError, TieredUrl, UrlParts,
};
pub use tiered::{TieredBackend, TieredOptions};

/// The fred crate this backend is built on, for its configuration types (such as
/// [`ReconnectPolicy`](fred::types::config::ReconnectPolicy)) and raw commands through [`RedisBackend::pool`].
#[cfg(feature = "redis")]
pub use fred;
