//! Build a [`Cache`] from a URL, optionally install it as the process-wide default.
//!
//! # URLs
//!
//! | URL | backend |
//! | --- | --- |
//! | `mem://?size=10000&max_bytes=67108864` | in-process LRU ([`MemoryBackend`](cache_core::MemoryBackend)) |
//! | `redis://[user:password@]host[:port][/db]` | one Redis server |
//! | `rediss://…` | the same over TLS (cargo feature `tls`) |
//! | `redis+cluster://host:port,host:port` or `redis://host:port?cluster=true` | Redis Cluster (seed nodes) |
//! | `redis+sentinel://host:port,host:port[/db]?service_name=mymaster` | Redis behind Sentinel |
//! | `unix:///path/to/redis.sock` (or `redis+unix://`) | one Redis server on a unix socket |
//! | `memcached://host:port[,host:port…]` | memcached servers, keys spread by rendezvous hashing (feature `memcached`) |
//! | `etcd://host:port` | etcd v3 through its JSON gateway (feature `etcd`) |
//! | `disk:///path/to/dir?max_bytes=N` | SQLite in that directory (feature `disk`) |
//! | `tiered+<any of the above>://…?l1_ttl=30s&max_stale=5m&jitter=0.1` | a memory tier in front (`TieredBackend`); a Redis pub/sub backplane on the same server for Redis, or `backplane=redis://…` |
//! | `null://` | stores nothing: caching off by configuration |
//!
//! `rediss+cluster://` and `rediss+sentinel://` combine TLS with the other two; fred's own spellings
//! `redis-cluster://`, `rediss-cluster://`, `redis-sentinel://` and `rediss-sentinel://` work too, and `?db=N`
//! may name the database instead of the path. An unknown scheme is an error listing the known ones
//! ([`known_schemes`]); a scheme whose backend's cargo feature is off names the feature.
//!
//! # Adding a backend
//!
//! A backend brings one module that parses its URLs into a [`BackendSpec`] and one line in the registry
//! (`setup/registry.rs`, `SCHEMES`):
//!
//! ```ignore
//! // setup/disk.rs
//! pub(crate) const SCHEME: Scheme = Scheme { names: &["disk"], feature: "disk", parse: Some(parse) };
//! fn parse(url: &UrlParts<'_>, options: &mut Options) -> Result<Box<dyn BackendSpec>, SetupError> {
//!     Ok(Box::new(DiskUrl { dir: format!("/{}", url.path), max_bytes: take_parsed(options, "max_bytes")? }))
//! }
//! #[async_trait]
//! impl BackendSpec for DiskUrl {
//!     async fn connect(&self) -> Result<Arc<dyn Backend>, SetupError> { Ok(Arc::new(DiskBackend::open(&self.dir)?)) }
//!     fn as_any(&self) -> &dyn Any { self }
//! }
//! // setup/registry.rs
//! const SCHEMES: &[&Scheme] = &[&super::memory::SCHEME, &super::redis::SCHEME, &super::disk::SCHEME];
//! ```
//!
//! # Options (query string)
//!
//! | option | applies to | meaning |
//! | --- | --- | --- |
//! | `size` | `mem` | maximum number of entries, 1 to 2^32 (memory is taken as entries arrive, not up front) |
//! | `max_bytes` | `mem` | memory bound of the entries, 1 to 2^48 (see `MemoryBackendBuilder::max_bytes`) |
//! | `pool_size` | Redis | connections in the pool (default 4) |
//! | `command_timeout` | Redis | e.g. `500ms` (default), `2s` |
//! | `connect_timeout` | Redis | e.g. `1s` (default) |
//! | `prefix` | Redis | key prefix of this cache; `clear` removes only it |
//! | `db` | Redis | database number, instead of the path |
//! | `cluster` | Redis | `true` treats the hosts as cluster seeds |
//! | `service_name` | Sentinel | the monitored primary's name (required) |
//! | `clear_all` | Redis | `true` lets `clear` run `FLUSHDB` (dedicated databases only) |
//! | `breaker` | Redis | `false` disables the circuit breaker (on by default) |
//! | `breaker_failures` | Redis | consecutive failures that open the breaker (default 5) |
//! | `breaker_cooldown` | Redis | how long the breaker stays open (default `1s`) |
//! | `prefix`, `pool_size`, `command_timeout` | memcached | as for Redis (pool default 8 per server); `prefix` does not pick the server, as pymemcache's `key_prefix` |
//! | `retry_attempts`, `retry_timeout`, `dead_timeout` | memcached | pymemcache's failing-server policy (defaults 2, `1s`, `60s`) |
//! | `fallback` | all (main URL) | the URL of the backend being replaced, percent-encoded when it has options of its own: reads that miss go there, deletes reach both (`FallbackBackend`; migration recipe in the README) |
//! | `fallback_warm` | with `fallback` | `false`: do not copy the old backend's hits into the new one (default `true`) |
//! | `strict` | all | `true` makes backend errors reach callers instead of failing open |
//! | `compress` | all (main URL) | `lz4`: compress values from `compress_min` bytes (`cache_core::layer::Compress`) |
//! | `compress_min` | all (main URL) | the smallest value compressed, in bytes (default 1024) |
//! | `secret` | all (main URL) | `env:NAME`: sign values with the secret in that environment variable (`cache_core::layer::Sign`); a secret written into the URL itself is refused, URLs end up in logs |
//! | `old_secrets` | all (main URL) | `env:A,env:B`: earlier secrets still accepted on reads (rotation) |
//! | `observe` | all | `true` counts and logs every backend operation (`cache_core::layer::Observe`: a `debug` event per call, a `warn` per failure) |
//! | `hash_keys_over` | all | keys longer than this many bytes are stored as a readable head + hash (`cache_core::layer::KeyMangler`; the backend loses pattern scans) |
//!
//! Anything else is a [`SetupError`] naming the problem: a typo must not silently fall back to defaults.

use std::sync::Arc;
use std::time::Duration;

use cache_core::layer::{KeyMangler, LayeredExt, Observe};
use cache_core::{Backend, BackendError, Cache, CacheBuilder, Capabilities};

mod disk;
mod etcd;
mod memcached;
mod memory;
mod null;
mod options;
mod redis;
mod registry;

pub use disk::DiskUrl;
pub use etcd::EtcdUrl;
pub use memcached::MemcachedUrl;
pub use memory::MemoryUrl;
pub use null::NullUrl;
pub use redis::RedisUrl;
pub use registry::{known_schemes, BackendSpec, Scheme, UrlParts};

use options::{take_bool, take_bounded, take_string};

/// Why a cache could not be set up from its configuration.
///
/// # Example
/// ```
/// use cache_backends::{parse_url, SetupError};
/// let error = parse_url("redis://127.0.0.1?pool_sise=4").unwrap_err();
/// assert!(matches!(error, SetupError::UnknownOption { .. }));
/// assert!(error.to_string().contains("pool_sise"));
/// ```
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum SetupError {
    /// [`Setup::require_connection`] was set and a backend did not answer at start-up.
    #[error("cache backend {url} is unreachable: {reason}")]
    Unreachable {
        /// The backend's URL, password hidden.
        url: String,
        /// The ping's error, or the timeout.
        reason: String,
    },
    /// The URL does not parse.
    #[error("invalid cache URL {url:?}: {reason}")]
    InvalidUrl {
        /// The URL as given.
        url: String,
        /// What is wrong with it.
        reason: String,
    },
    /// A backend of the configuration lacks a capability [`Setup::require`] asked for.
    #[error("the {backend} backend cannot {}, which this cache requires", capability.describe())]
    MissingCapability {
        /// The backend's name (`"redis"`, `"memory"`, …).
        backend: &'static str,
        /// What it lacks.
        capability: Capabilities,
    },
    /// The scheme names no backend this crate knows.
    #[error("unsupported cache URL scheme {scheme:?}; known schemes: {}", known.join(", "))]
    UnsupportedScheme {
        /// The scheme as written.
        scheme: String,
        /// Every scheme the registry knows.
        known: Vec<&'static str>,
    },
    /// A query option this scheme does not know.
    #[error("unknown option {name:?} for {scheme}:// cache URLs")]
    UnknownOption {
        /// The option as written.
        name: String,
        /// The URL scheme.
        scheme: String,
    },
    /// A known option with a value that does not parse or is out of range.
    #[error("invalid value {value:?} for option {name:?}: {reason}")]
    InvalidOption {
        /// The option.
        name: String,
        /// The value as written.
        value: String,
        /// What is wrong with it.
        reason: String,
    },
    /// The URL needs a cargo feature of `cache-backends` that is not enabled.
    #[error("{what} need the {feature:?} cargo feature of cache-backends")]
    FeatureDisabled {
        /// The feature to enable.
        feature: &'static str,
        /// What needs it.
        what: &'static str,
    },
    /// The Redis client refused the configuration.
    #[error("redis client configuration: {0}")]
    Redis(String),
}

/// A cache URL, parsed and validated but not connected.
///
/// # Example
/// ```
/// use cache_backends::{parse_url, MemoryUrl};
/// let parsed = parse_url("mem://?size=500&strict=true").unwrap();
/// assert!(parsed.strict);
/// assert_eq!(parsed.spec::<MemoryUrl>().and_then(|m| m.max_entries), Some(500));
/// ```
#[derive(Debug)]
#[non_exhaustive]
pub struct CacheUrl {
    /// What to connect to, as the scheme's parser described it.
    pub backend: Box<dyn BackendSpec>,
    /// `strict`: backend errors reach callers.
    pub strict: bool,
    /// The layer options.
    pub layers: LayerOptions,
    /// `fallback=<url>`: the backend being replaced, read when this one misses ([`FallbackBackend`](crate::FallbackBackend)).
    pub fallback: Option<Box<CacheUrl>>,
    /// `fallback_warm=false` turns off copying the old backend's hits into the new one.
    pub fallback_warm_up: bool,
    /// `tiered+<scheme>://…`: a memory tier in front of this backend ([`TieredBackend`](crate::TieredBackend)).
    pub tiered: Option<TieredUrl>,
}

/// The tier of a `tiered+<scheme>://…` URL.
///
/// # Example
/// ```
/// let parsed = cache_backends::parse_url("tiered+mem://?l1_ttl=30s&jitter=0.1").unwrap();
/// let tier = parsed.tiered.unwrap();
/// assert_eq!(tier.options.l1_ttl, std::time::Duration::from_secs(30));
/// ```
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub struct TieredUrl {
    /// `l1_ttl`, `max_stale`, `jitter`, `l1_size`.
    pub options: crate::TieredOptions,
    /// `backplane`: a `redis://` URL for the pub/sub backplane; for a Redis L2 its own server by default.
    pub backplane: Option<String>,
    /// `backplane_name`: the channel suffix shared by the processes of one cache (default `default`).
    pub backplane_name: String,
}

/// The layer options of a cache URL, which every scheme accepts (see the [module docs](self)).
///
/// # Example
/// ```
/// let parsed = cache_backends::parse_url("mem://?compress=lz4&compress_min=256&hash_keys_over=200").unwrap();
/// assert_eq!(parsed.layers.compress_min, Some(256));
/// assert_eq!(parsed.layers.hash_keys_over, Some(200));
/// ```
#[derive(Debug, Clone, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct LayerOptions {
    /// `compress=lz4`: the smallest value compressed (`compress_min`, default 1024).
    pub compress_min: Option<usize>,
    /// `secret=env:NAME`: the environment variable holding the signing secret. Read when the cache is built.
    pub secret_env: Option<String>,
    /// `old_secrets=env:A,env:B`: variables holding earlier secrets, accepted on reads.
    pub old_secret_envs: Vec<String>,
    /// `hash_keys_over`: keys longer than this are hashed.
    pub hash_keys_over: Option<usize>,
    /// `observe=true`: count and log every backend operation (`cache_core::layer::Observe`).
    pub observe: bool,
}

impl LayerOptions {
    /// Whether any option applies to the whole cache (values), which only the main URL may set.
    fn has_value_layers(&self) -> bool {
        self.compress_min.is_some() || self.secret_env.is_some() || !self.old_secret_envs.is_empty()
    }
}

impl LayerOptions {
    /// Adds the value layers these options ask for to `builder`: compression first, signing last (outermost),
    /// so nothing is decompressed before it is verified.
    // `mut` is unused when both layer features are compiled out.
    #[allow(unused_mut)]
    fn add_value_layers(&self, mut builder: CacheBuilder) -> Result<CacheBuilder, SetupError> {
        if let Some(min) = self.compress_min {
            #[cfg(feature = "compress")]
            {
                builder = builder.value_layer(cache_core::layer::Compress::new(min));
            }
            #[cfg(not(feature = "compress"))]
            {
                let _ = min;
                return Err(SetupError::FeatureDisabled {
                    feature: "compress",
                    what: "the compress option",
                });
            }
        }
        if let Some(var) = &self.secret_env {
            #[cfg(feature = "sign")]
            {
                let invalid = |e: cache_core::layer::LayerError| SetupError::InvalidOption {
                    name: "secret".into(),
                    value: format!("env:{var}"),
                    reason: e.to_string(),
                };
                let mut sign = cache_core::layer::Sign::new(secret_from_env("secret", var)?)
                    .map_err(invalid)?;
                for old in &self.old_secret_envs {
                    sign = sign
                        .accept_old(secret_from_env("old_secrets", old)?)
                        .map_err(invalid)?;
                }
                builder = builder.value_layer(sign);
            }
            #[cfg(not(feature = "sign"))]
            {
                let _ = var;
                return Err(SetupError::FeatureDisabled {
                    feature: "sign",
                    what: "the secret option",
                });
            }
        }
        Ok(builder)
    }
}

/// Default `compress_min`: smaller values rarely shrink enough to pay for decompression.
const DEFAULT_COMPRESS_MIN: usize = 1024;

fn take_layer_options(options: &mut Vec<(String, String)>) -> Result<LayerOptions, SetupError> {
    let invalid = |name: &str, value: &str, reason: &str| SetupError::InvalidOption {
        name: name.to_owned(),
        value: value.to_owned(),
        reason: reason.to_owned(),
    };
    let compress = take_string(options, "compress");
    let compress_min = take_bounded(options, "compress_min", 1, u32::MAX as usize)?;
    let compress_min = match (compress.as_deref(), compress_min) {
        (Some("lz4"), min) => Some(min.unwrap_or(DEFAULT_COMPRESS_MIN)),
        (Some(other), _) => return Err(invalid("compress", other, "the one algorithm is lz4")),
        (None, Some(min)) => {
            return Err(invalid(
                "compress_min",
                &min.to_string(),
                "needs compress=lz4",
            ))
        }
        (None, None) => None,
    };
    let env_name = |name: &str, value: &str| -> Result<String, SetupError> {
        match value.strip_prefix("env:") {
            Some(var) if !var.is_empty() => Ok(var.to_owned()),
            _ => Err(invalid(
                name,
                // Never echo what may be a secret.
                "…",
                "give the name of an environment variable, like env:CACHE_SECRET; a secret written into the URL \
                 would end up in logs",
            )),
        }
    };
    let secret_env = take_string(options, "secret")
        .map(|v| env_name("secret", &v))
        .transpose()?;
    let old_secret_envs = take_string(options, "old_secrets")
        .map(|v| {
            v.split(',')
                .map(|one| env_name("old_secrets", one.trim()))
                .collect::<Result<Vec<_>, _>>()
        })
        .transpose()?
        .unwrap_or_default();
    if secret_env.is_none() && !old_secret_envs.is_empty() {
        return Err(invalid(
            "old_secrets",
            "…",
            "needs secret=env:NAME for new values",
        ));
    }
    // A hashed key keeps at least its 34-byte hash mark; less room would leave no readable head.
    let hash_keys_over = take_bounded(options, "hash_keys_over", 64, 1 << 20)?;
    let observe = take_bool(options, "observe")?.unwrap_or(false);
    Ok(LayerOptions {
        compress_min,
        secret_env,
        old_secret_envs,
        hash_keys_over,
        observe,
    })
}

/// The signing secret in environment variable `var` (for `option`).
#[cfg(feature = "sign")]
fn secret_from_env(option: &str, var: &str) -> Result<String, SetupError> {
    match std::env::var(var) {
        Ok(secret) if !secret.is_empty() => Ok(secret),
        _ => Err(SetupError::InvalidOption {
            name: option.to_owned(),
            value: format!("env:{var}"),
            reason: format!("the environment variable {var} is not set"),
        }),
    }
}

/// Parses and validates a cache URL without connecting. See the [module docs](self) for the syntax.
///
/// # Example
/// ```
/// use cache_backends::{parse_url, RedisUrl};
/// let parsed = parse_url("redis+cluster://10.0.0.1:7000,10.0.0.2:7000?prefix=app:&command_timeout=250ms").unwrap();
/// let redis = parsed.spec::<RedisUrl>().unwrap();
/// assert!(redis.cluster);
/// assert_eq!(redis.hosts, ["10.0.0.1:7000", "10.0.0.2:7000"]);
/// assert_eq!(redis.prefix.as_deref(), Some("app:"));
/// ```
pub fn parse_url(url: &str) -> Result<CacheUrl, SetupError> {
    let invalid = |reason: &str| SetupError::InvalidUrl {
        url: url.to_owned(),
        reason: reason.to_owned(),
    };
    let (scheme, rest) = url
        .split_once("://")
        .ok_or_else(|| invalid("missing scheme (like redis:// or mem://)"))?;
    let scheme = scheme.to_ascii_lowercase();
    if let Some(inner) = scheme.strip_prefix("tiered+") {
        return parse_tiered(url, inner, rest);
    }
    let (before_query, query) = match rest.split_once('?') {
        Some((a, q)) => (a, q),
        None => (rest, ""),
    };
    let (authority, path) = match before_query.split_once('/') {
        Some((a, p)) => (a, p),
        None => (before_query, ""),
    };
    let mut options: Vec<(String, String)> = form_urlencoded::parse(query.as_bytes())
        .map(|(k, v)| (k.into_owned(), v.into_owned()))
        .collect();
    let parse = registry::find(&scheme)?;
    // Options every scheme shares are taken here, once; the scheme's parser takes its own, and what is left
    // is an error.
    let strict = take_bool(&mut options, "strict")?.unwrap_or(false);
    let layers = take_layer_options(&mut options)?;
    let fallback = match take_string(&mut options, "fallback") {
        Some(old) => {
            let old = parse_url(&old)?;
            if old.layers.has_value_layers() || old.fallback.is_some() {
                return Err(invalid(
                    "the fallback URL takes neither value layers (compress, secret: those of the main URL apply) \
                     nor a fallback of its own",
                ));
            }
            Some(Box::new(old))
        }
        None => None,
    };
    let fallback_warm_up = match take_bool(&mut options, "fallback_warm")? {
        Some(_) if fallback.is_none() => return Err(invalid("fallback_warm needs fallback=<url>")),
        value => value.unwrap_or(true),
    };
    let backend = parse(
        &UrlParts {
            url,
            scheme: &scheme,
            authority,
            path,
        },
        &mut options,
    )?;
    if let Some((name, _)) = options.into_iter().next() {
        return Err(SetupError::UnknownOption { name, scheme });
    }
    Ok(CacheUrl {
        backend,
        strict,
        layers,
        fallback,
        fallback_warm_up,
        tiered: None,
    })
}

/// `tiered+<scheme>://…`: the inner URL with the tier's options taken out of it.
fn parse_tiered(url: &str, inner_scheme: &str, rest: &str) -> Result<CacheUrl, SetupError> {
    let invalid = |reason: String| SetupError::InvalidUrl {
        url: url.to_owned(),
        reason,
    };
    let (before_query, query) = rest.split_once('?').unwrap_or((rest, ""));
    let mut tier_options = crate::TieredOptions::default();
    let (mut backplane, mut backplane_name) = (None, "default".to_owned());
    let mut inner_query = form_urlencoded::Serializer::new(String::new());
    for (name, value) in form_urlencoded::parse(query.as_bytes()) {
        let duration = |value: &str| {
            humantime::parse_duration(value).map_err(|e| SetupError::InvalidOption {
                name: name.to_string(),
                value: value.to_owned(),
                reason: e.to_string(),
            })
        };
        match name.as_ref() {
            "l1_ttl" => tier_options.l1_ttl = duration(&value)?,
            "max_stale" => tier_options.max_stale = duration(&value)?,
            "jitter" => {
                tier_options.jitter = value
                    .parse::<f64>()
                    .ok()
                    .filter(|j| (0.0..=1.0).contains(j))
                    .ok_or_else(|| SetupError::InvalidOption {
                        name: "jitter".into(),
                        value: value.to_string(),
                        reason: "a fraction between 0 and 1".into(),
                    })?;
            }
            "l1_size" => {
                tier_options.l1_entries = value.parse().map_err(|_| SetupError::InvalidOption {
                    name: "l1_size".into(),
                    value: value.to_string(),
                    reason: "a number of entries".into(),
                })?;
            }
            "backplane" => backplane = Some(value.into_owned()),
            "backplane_name" => backplane_name = value.into_owned(),
            _ => {
                inner_query.append_pair(&name, &value);
            }
        }
    }
    let inner_query = inner_query.finish();
    let inner_url = if inner_query.is_empty() {
        format!("{inner_scheme}://{before_query}")
    } else {
        format!("{inner_scheme}://{before_query}?{inner_query}")
    };
    let mut parsed = parse_url(&inner_url)?;
    if parsed.tiered.is_some() {
        return Err(invalid("a tier in front of a tier".into()));
    }
    if backplane.is_none() && inner_scheme.starts_with("redis") && !inner_scheme.contains("cluster")
    {
        // The L2's own server carries the backplane: its URL without the options.
        backplane = Some(format!(
            "{}://{before_query}",
            inner_scheme.replace("+sentinel", "")
        ));
    }
    parsed.tiered = Some(TieredUrl {
        options: tier_options,
        backplane,
        backplane_name,
    });
    Ok(parsed)
}

impl CacheUrl {
    /// Connects the backend this URL describes (Redis wrapped in a [`CircuitBreaker`](crate::CircuitBreaker)
    /// unless `breaker=false`).
    ///
    /// # Example
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), cache_backends::SetupError> {
    /// let backend = cache_backends::parse_url("mem://?size=100")?.connect().await?;
    /// assert_eq!(backend.name(), "memory");
    /// # Ok(()) }
    /// ```
    pub async fn connect(&self) -> Result<Arc<dyn Backend>, SetupError> {
        let mut backend = self.connect_backend().await?;
        if let Some(max) = self.layers.hash_keys_over {
            backend = Arc::new(backend.layered(KeyMangler::new().hash_over(max)));
        }
        // Outermost, so it sees what the cache asks for (keys before hashing).
        if self.layers.observe {
            backend = Arc::new(backend.layered(Observe::new()));
        }
        Ok(backend)
    }

    async fn connect_backend(&self) -> Result<Arc<dyn Backend>, SetupError> {
        let backend = self.connect_fallback().await?;
        let Some(tier) = &self.tiered else {
            return Ok(backend);
        };
        let backplane: Option<Arc<dyn crate::tiered::Backplane>> = match &tier.backplane {
            #[cfg(feature = "redis")]
            Some(url) => Some(crate::RedisBackplane::connect(url, &tier.backplane_name).await?),
            #[cfg(not(feature = "redis"))]
            Some(_) => {
                return Err(SetupError::FeatureDisabled {
                    feature: "redis",
                    what: "a Redis backplane",
                })
            }
            None => None,
        };
        Ok(Arc::new(crate::TieredBackend::new(
            backend,
            backplane,
            tier.options,
        )))
    }

    async fn connect_fallback(&self) -> Result<Arc<dyn Backend>, SetupError> {
        let backend = self.backend.connect().await?;
        let Some(old) = &self.fallback else {
            return Ok(backend);
        };
        let old = Box::pin(old.connect()).await?;
        Ok(Arc::new(
            crate::FallbackBackend::from_arcs(backend, old).warm_up(self.fallback_warm_up),
        ))
    }

    /// The backend description as its concrete type (a [`MemoryUrl`], a [`RedisUrl`], …), if it is one.
    ///
    /// # Example
    /// ```
    /// let parsed = cache_backends::parse_url("redis://cache:6380/2").unwrap();
    /// let redis = parsed.spec::<cache_backends::RedisUrl>().unwrap();
    /// assert_eq!(redis.database, Some(2));
    /// ```
    pub fn spec<T: 'static>(&self) -> Option<&T> {
        self.backend.as_any().downcast_ref::<T>()
    }
}

/// Builds a [`Cache`] from a main URL plus optional per-prefix routes to other backends.
///
/// # Example
/// ```no_run
/// # #[tokio::main]
/// # async fn main() -> Result<(), cache_backends::SetupError> {
/// // Sessions in Redis, everything else in process memory; installed as the global default.
/// let cache = cache_backends::Setup::new("mem://?size=10000")
///     .route("session:", "redis://127.0.0.1:6379/1?prefix=sessions:")
///     .install()
///     .await?;
/// # let _ = cache; Ok(()) }
/// ```
#[derive(Debug, Clone)]
pub struct Setup {
    url: String,
    routes: Vec<(String, String)>,
    required: Capabilities,
    require_connection: bool,
}

/// How long start-up waits for a backend's answer to a ping.
const CONNECTION_CHECK: Duration = Duration::from_secs(2);

/// Pings a freshly connected backend. Unreachable: an error when `required`, else one warning (on stderr too when
/// no tracing subscriber is installed, so a missing server is never silent).
async fn check_connection(
    url: &str,
    backend: &Arc<dyn Backend>,
    required: bool,
) -> Result<(), SetupError> {
    let reason = match tokio::time::timeout(CONNECTION_CHECK, backend.ping()).await {
        Ok(Ok(())) => return Ok(()),
        Ok(Err(error)) => error.to_string(),
        Err(_) => format!("no answer within {CONNECTION_CHECK:?}"),
    };
    let url = redact(url);
    if required {
        return Err(SetupError::Unreachable { url, reason });
    }
    tracing::warn!(
        url,
        reason,
        "cache backend unreachable at start-up; cached functions run their bodies until it answers"
    );
    if !tracing::dispatcher::has_been_set() {
        eprintln!(
            "warning: cache backend {url} unreachable at start-up ({reason}); cached functions run their bodies \
             until it answers"
        );
    }
    Ok(())
}

/// `url` without its password, for messages: `scheme://user:***@host…`.
fn redact(url: &str) -> String {
    let Some((scheme, rest)) = url.split_once("://") else {
        return url.to_owned();
    };
    let authority_end = rest.find(['/', '?', '#']).unwrap_or(rest.len());
    let (authority, tail) = rest.split_at(authority_end);
    match authority.rsplit_once('@') {
        Some((userinfo, host)) if userinfo.contains(':') => {
            let user = userinfo.split(':').next().unwrap_or_default();
            format!("{scheme}://{user}:***@{host}{tail}")
        }
        _ => url.to_owned(),
    }
}

impl Setup {
    /// Starts from the main URL: keys no route claims go to its backend.
    ///
    /// # Example
    /// ```
    /// let setup = cache_backends::Setup::new("redis://127.0.0.1:6379");
    /// # let _ = setup;
    /// ```
    pub fn new(url: impl Into<String>) -> Self {
        Self {
            url: url.into(),
            routes: Vec::new(),
            required: Capabilities::empty(),
            require_connection: false,
        }
    }

    /// Fail at start-up with [`SetupError::Unreachable`] when a backend does not answer a ping within 2 s. Without
    /// it (the default) the cache starts anyway, logs one warning (also on stderr when no tracing subscriber is
    /// installed) and cached functions run their bodies until the backend answers.
    ///
    /// # Example
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() {
    /// // Nothing listens on port 1.
    /// let url = "redis://127.0.0.1:1?connect_timeout=200ms";
    /// let error = cache_backends::Setup::new(url).require_connection(true).build().await.unwrap_err();
    /// assert!(matches!(error, cache_backends::SetupError::Unreachable { .. }), "{error}");
    /// assert!(cache_backends::Setup::new(url).build().await.is_ok()); // starts, with a warning
    /// # }
    /// ```
    pub fn require_connection(mut self, required: bool) -> Self {
        self.require_connection = required;
        self
    }

    /// Capabilities every configured backend must have (see `CacheBuilder::require`): [`Setup::build`] and
    /// [`Setup::install`] fail with [`SetupError::MissingCapability`] otherwise, before anything is cached.
    ///
    /// # Example
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() {
    /// use cache_core::Capabilities;
    /// let ok = cache_backends::Setup::new("mem://").require(Capabilities::SETS).build().await;
    /// assert!(ok.is_ok());
    /// let error = cache_backends::Setup::new("null://").require(Capabilities::COUNTERS).build().await.unwrap_err();
    /// assert_eq!(error.to_string(), "the null backend cannot keep counters, which this cache requires");
    /// # }
    /// ```
    pub fn require(mut self, capabilities: Capabilities) -> Self {
        self.required |= capabilities;
        self
    }

    /// Sends keys starting with `prefix` to the backend of `url` (see `CacheBuilder::route`). The `strict` option
    /// belongs to the main URL only.
    ///
    /// # Example
    /// ```
    /// let setup = cache_backends::Setup::new("redis://127.0.0.1:6379").route("local:", "mem://?size=100");
    /// # let _ = setup;
    /// ```
    pub fn route(mut self, prefix: impl Into<String>, url: impl Into<String>) -> Self {
        self.routes.push((prefix.into(), url.into()));
        self
    }

    /// The configured [`CacheBuilder`], for settings URLs do not cover (codec, …).
    ///
    /// # Example
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), cache_backends::SetupError> {
    /// let cache = cache_backends::Setup::new("mem://").builder().await?.build();
    /// # let _ = cache; Ok(()) }
    /// ```
    pub async fn builder(self) -> Result<CacheBuilder, SetupError> {
        let main = parse_url(&self.url)?;
        let routes = self
            .routes
            .iter()
            .map(|(prefix, url)| {
                let parsed = parse_url(url)?;
                if parsed.strict {
                    return Err(SetupError::InvalidOption {
                        name: "strict".into(),
                        value: "true".into(),
                        reason: "strict applies to the whole cache; set it on the main URL".into(),
                    });
                }
                if parsed.layers.has_value_layers() {
                    return Err(SetupError::InvalidOption {
                        name: "compress/secret".into(),
                        value: url.clone(),
                        reason: "value layers apply to the whole cache; set them on the main URL"
                            .into(),
                    });
                }
                Ok((prefix.clone(), parsed))
            })
            .collect::<Result<Vec<_>, _>>()?;
        let main_backend = main.connect().await?;
        check_connection(&self.url, &main_backend, self.require_connection).await?;
        let mut builder = main.layers.add_value_layers(
            Cache::builder()
                .backend_arc(main_backend)
                .strict(main.strict),
        )?;
        for ((prefix, parsed), (_, url)) in routes.into_iter().zip(&self.routes) {
            let backend = parsed.connect().await?;
            check_connection(url, &backend, self.require_connection).await?;
            builder = builder.route(prefix, backend);
        }
        Ok(builder)
    }

    /// Builds the cache without installing it anywhere.
    ///
    /// # Example
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), cache_backends::SetupError> {
    /// let cache = cache_backends::Setup::new("mem://?size=100").build().await?;
    /// # let _ = cache; Ok(()) }
    /// ```
    pub async fn build(self) -> Result<Cache, SetupError> {
        let required = self.required;
        let cache = self.builder().await?.build();
        match cache.require(required) {
            Err(BackendError::Unsupported {
                backend,
                capability,
            }) => Err(SetupError::MissingCapability {
                backend,
                capability,
            }),
            // `require` reports nothing else.
            _ => Ok(cache),
        }
    }

    /// Builds the cache and installs it as the process-wide default (`cache_core::set_global`) that cached
    /// functions use.
    ///
    /// # Example
    /// ```no_run
    /// # #[tokio::main]
    /// # async fn main() -> Result<(), cache_backends::SetupError> {
    /// cache_backends::Setup::new("redis://127.0.0.1:6379").install().await?;
    /// # Ok(()) }
    /// ```
    pub async fn install(self) -> Result<Cache, SetupError> {
        let cache = self.build().await?;
        cache_core::set_global(cache.clone());
        Ok(cache)
    }
}

/// Builds a cache for `url` and installs it as the process-wide default. See the [module docs](self) for URLs.
///
/// # Example
/// ```no_run
/// # #[tokio::main]
/// # async fn main() -> Result<(), cache_backends::SetupError> {
/// cache_backends::setup("redis://127.0.0.1:6379/0?prefix=myapp:").await?;
/// # Ok(()) }
/// ```
pub async fn setup(url: &str) -> Result<Cache, SetupError> {
    Setup::new(url).install().await
}

/// Builds a cache for `url` without installing it. See the [module docs](self) for URLs.
///
/// # Example
/// ```
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), cache_backends::SetupError> {
/// let cache = cache_backends::build_cache("mem://?size=1000").await?;
/// # let _ = cache; Ok(()) }
/// ```
pub async fn build_cache(url: &str) -> Result<Cache, SetupError> {
    Setup::new(url).build().await
}

/// Like [`setup`], but keys starting with `prefix` go to the backend of `prefix_url`.
///
/// # Example
/// ```no_run
/// # #[tokio::main]
/// # async fn main() -> Result<(), cache_backends::SetupError> {
/// cache_backends::setup_with_prefix("redis://127.0.0.1:6379", "local:", "mem://?size=1000").await?;
/// # Ok(()) }
/// ```
pub async fn setup_with_prefix(
    url: &str,
    prefix: &str,
    prefix_url: &str,
) -> Result<Cache, SetupError> {
    Setup::new(url).route(prefix, prefix_url).install().await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn redact_hides_passwords_only() {
        assert_eq!(
            redact("redis://u:secret@h:1/0?x=1"),
            "redis://u:***@h:1/0?x=1"
        );
        assert_eq!(redact("redis://:secret@h:1"), "redis://:***@h:1");
        assert_eq!(redact("redis://h:1/0"), "redis://h:1/0");
        assert_eq!(redact("mem://?size=1"), "mem://?size=1");
    }
    use std::time::Duration;

    fn redis(url: &str) -> RedisUrl {
        match parse_url(url) {
            Ok(parsed) => match parsed.spec::<RedisUrl>() {
                Some(r) => r.clone(),
                None => panic!("{url}: not a Redis URL: {parsed:?}"),
            },
            Err(e) => panic!("{url}: {e}"),
        }
    }

    #[test]
    fn fred_spellings_unix_sockets_and_db_option() {
        let r = redis("redis-cluster://h1:7000,h2:7000");
        assert!(r.cluster && !r.tls);
        let r = redis("rediss-cluster://h1:7000");
        assert!(r.cluster && r.tls);
        let r = redis("redis-sentinel://s1:26379,s2:26379?service_name=main&db=3");
        assert_eq!(
            (r.sentinel_service.as_deref(), r.database),
            (Some("main"), Some(3))
        );
        assert_eq!(redis("redis://h?db=4").database, Some(4));
        assert_eq!(redis("redis://h/4?db=4").database, Some(4));
        assert!(matches!(
            parse_url("redis://h/4?db=5"),
            Err(SetupError::InvalidUrl { reason, .. }) if reason.contains("different databases")
        ));
        assert!(
            parse_url("redis-cluster://h?db=2").is_err(),
            "a cluster has only db 0"
        );
        let r = redis("unix:///run/redis/redis.sock?prefix=app:");
        assert_eq!(r.unix_socket.as_deref(), Some("/run/redis/redis.sock"));
        assert!(r.hosts.is_empty());
        assert_eq!(
            redis("redis+unix:///tmp/r.sock").unix_socket.as_deref(),
            Some("/tmp/r.sock")
        );
        assert!(parse_url("unix://").is_err());
        assert!(parse_url("unix://host/tmp/r.sock").is_err());
    }

    #[test]
    fn unknown_schemes_list_the_known_ones() {
        let error = parse_url("memcache://h:11211").unwrap_err();
        let SetupError::UnsupportedScheme { scheme, known } = &error else {
            panic!("{error:?}");
        };
        assert_eq!(scheme, "memcache");
        for name in [
            "mem",
            "memory",
            "redis",
            "rediss",
            "redis-cluster",
            "redis+sentinel",
            "unix",
        ] {
            assert!(known.contains(&name), "{name} missing from {known:?}");
        }
        assert!(
            error
                .to_string()
                .contains("known schemes: mem, memory, null, disk, etcd, memcached, redis"),
            "{error}"
        );
        for url in [
            "mem://?pool_size=3",
            "redis://h?size=3",
            "unix:///s?cluster_mode=1",
        ] {
            assert!(
                matches!(parse_url(url), Err(SetupError::UnknownOption { .. })),
                "{url}"
            );
        }
    }

    #[test]
    fn memory_urls() {
        let parsed = parse_url("mem://?size=10&max_bytes=2048").unwrap();
        assert_eq!(
            parsed.spec::<MemoryUrl>(),
            Some(&MemoryUrl {
                max_entries: Some(10),
                max_bytes: Some(2048)
            })
        );
        assert!(!parsed.strict);
        assert!(parse_url("mem://").is_ok());
        assert!(matches!(
            parse_url("mem://?size=ten"),
            Err(SetupError::InvalidOption { name, .. }) if name == "size"
        ));
        // Sizes from configuration are bounded: they once reached a hash table's capacity check and panicked.
        for url in [
            "mem://?size=18446744073709551615",
            "mem://?size=4294967297",
            "mem://?size=0",
            "mem://?max_bytes=18446744073709551615",
        ] {
            let error = parse_url(url).unwrap_err();
            assert!(
                matches!(&error, SetupError::InvalidOption { reason, .. } if reason.contains("between")),
                "{url}: {error}"
            );
        }
        assert!(parse_url("mem://?size=18446744073709551616").is_err());
        assert!(parse_url("mem://?size=4294967296&max_bytes=1024").is_ok());
        assert!(matches!(
            parse_url("mem://?pool_size=3"),
            Err(SetupError::UnknownOption { name, .. }) if name == "pool_size"
        ));
    }

    #[test]
    fn redis_urls() {
        let r = redis("redis://user:pw@cache:6380/3?pool_size=8&command_timeout=250ms&connect_timeout=2s&prefix=a:b:");
        assert_eq!(r.hosts, ["cache:6380"]);
        assert_eq!(r.userinfo.as_deref(), Some("user:pw"));
        assert_eq!(r.database, Some(3));
        assert_eq!(r.pool_size, Some(8));
        assert_eq!(r.command_timeout, Some(Duration::from_millis(250)));
        assert_eq!(r.connect_timeout, Some(Duration::from_secs(2)));
        assert_eq!(r.prefix.as_deref(), Some("a:b:"));
        assert!(r.breaker && !r.cluster && !r.tls);

        let r = redis("redis://h1:7000?cluster=true&breaker=false");
        assert!(r.cluster && !r.breaker);
        let r = redis("rediss+cluster://h1:7000,h2:7001");
        assert!(r.cluster && r.tls);
        assert_eq!(r.hosts.len(), 2);
        let r = redis("redis+sentinel://s1:26379,s2:26379/1?service_name=main");
        assert_eq!(r.sentinel_service.as_deref(), Some("main"));
        assert_eq!(r.database, Some(1));
        assert!(parse_url("redis://h?strict=true").unwrap().strict);
    }

    #[test]
    fn layer_options_parse_and_refuse_what_they_cannot_honour() {
        let parsed = parse_url(
            "redis://h?compress=lz4&secret=env:CACHE_SECRET&old_secrets=env:A,env:B&hash_keys_over=200",
        )
        .unwrap();
        assert_eq!(parsed.layers.compress_min, Some(DEFAULT_COMPRESS_MIN));
        assert_eq!(parsed.layers.secret_env.as_deref(), Some("CACHE_SECRET"));
        assert_eq!(parsed.layers.old_secret_envs, ["A", "B"]);
        assert_eq!(parsed.layers.hash_keys_over, Some(200));
        assert!(!parsed.layers.observe);
        assert!(parse_url("mem://?observe=true").unwrap().layers.observe);
        for (url, name) in [
            ("mem://?compress=zstd", "compress"),
            ("mem://?compress_min=10", "compress_min"),
            ("mem://?secret=hunter2hunter2hunter2", "secret"),
            ("mem://?old_secrets=env:A", "old_secrets"),
            ("mem://?hash_keys_over=10", "hash_keys_over"),
        ] {
            match parse_url(url) {
                Err(SetupError::InvalidOption { name: n, value, .. }) => {
                    assert_eq!(n, name, "{url}");
                    assert!(
                        !value.contains("hunter2"),
                        "a secret is never echoed: {value}"
                    );
                }
                other => panic!("{url}: {other:?}"),
            }
        }
    }

    #[tokio::test]
    async fn layer_options_build_a_compressing_signing_hashing_cache() {
        // SAFETY: set_var races only with environment reads that bypass std's lock (C code calling getenv). This
        // crate's unit tests run none: they connect to IP literals (no resolver), and std serializes the rest.
        unsafe {
            std::env::set_var(
                "CACHE_SETUP_TEST_SECRET",
                "0123456789abcdef0123456789abcdef",
            )
        };
        let cache = Setup::new(
            "mem://?compress=lz4&compress_min=64&secret=env:CACHE_SETUP_TEST_SECRET&hash_keys_over=100",
        )
        .build()
        .await
        .unwrap();
        let long_key = "k".repeat(300);
        let page = "abc".repeat(1000);
        cache.set(&long_key, &page, None).await.unwrap();
        assert_eq!(
            cache.get::<String>(&long_key).await.unwrap().as_ref(),
            Some(&page)
        );
        assert!(
            !cache.capabilities().contains(Capabilities::SCAN),
            "keys may be hashed"
        );
        // Tampering through the backend reads as a miss: the value is signed.
        let backend = cache.backend_for(&long_key);
        backend
            .set(
                &long_key,
                bytes::Bytes::from_static(b"forged"),
                None,
                Default::default(),
            )
            .await
            .unwrap();
        assert_eq!(cache.get::<String>(&long_key).await.unwrap(), None);

        let missing = Setup::new("mem://?secret=env:CACHE_SETUP_TEST_UNSET")
            .build()
            .await;
        assert!(
            matches!(&missing, Err(SetupError::InvalidOption { reason, .. }) if reason.contains("not set")),
            "{missing:?}"
        );
        let on_route = Setup::new("mem://")
            .route("a:", "mem://?compress=lz4")
            .build()
            .await;
        assert!(matches!(on_route, Err(SetupError::InvalidOption { .. })));
    }

    #[test]
    fn bad_urls_name_the_problem() {
        let cases = [
            ("ftp://x", "unsupported"),
            ("localhost:6379", "missing scheme"),
            ("redis://h?command_timeout=fast", "command_timeout"),
            ("redis://h?pool_sise=2", "pool_sise"),
            ("redis://h/db", "database number"),
            ("redis://a:1,b:2", "several hosts"),
            ("redis+cluster://a:1/2", "database 0"),
            ("redis+sentinel://a:1", "service_name"),
            ("redis://h?breaker=maybe", "breaker"),
            ("redis://", "no host"),
        ];
        for (url, needle) in cases {
            let message = parse_url(url).unwrap_err().to_string();
            assert!(message.contains(needle), "{url}: {message}");
        }
    }
}
