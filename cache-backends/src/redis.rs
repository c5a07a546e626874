//! [`RedisBackend`]: the [`Backend`] contract over Redis (single server, cluster or sentinel) with
//! [fred](https://docs.rs/fred).
//!
//! # Failure model
//!
//! A cache must never take the application down with it, so the backend is built to **fail open and fail fast**:
//!
//! - [`RedisBackendBuilder::build`] never waits longer than the connect timeout. If Redis is down at start-up the
//!   backend is returned anyway (a warning is logged) and fred keeps reconnecting in the background under the
//!   reconnect policy.
//! - Every command is sent with fred's per-command `fail_fast` option: while no connection is up a command fails at
//!   once with [`BackendError::Connection`] instead of queueing until a reconnect.
//! - Every command has a short timeout (default [`DEFAULT_COMMAND_TIMEOUT`], 500 ms): a cache read that takes
//!   longer than that is worth less than running the body, and a stuck server must not stall every request. Raise
//!   it for large values or far-away servers.
//!   Commands already in flight when a server dies can still wait out that timeout (and so can callers sharing
//!   their result); everything sent afterwards fails fast.
//! - Wrap the backend in a [`CircuitBreaker`](crate::CircuitBreaker) (the URL [`setup`](fn@crate::setup) does it by
//!   default) so that a server that *accepts* connections but does not answer costs one timeout per cooldown
//!   rather than one per call.
//!
//! # Keys
//!
//! An optional key prefix is prepended to every key and stripped from [`Backend::scan`] results, so several
//! applications can share one database; [`Backend::clear`] deletes only the prefix (with `SCAN` + `UNLINK`, never
//! `KEYS`). Values are stored exactly as given, so `redis-cli GET <prefix><key>` shows what the cache wrote.
//!
//! **Prefixes must not overlap.** `clear` and `delete_match("*")` delete every key that *starts with* the
//! prefix: with prefix `app` they also delete the keys of an application using `apple:`, and with `app:` those
//! of one using `app:b:`. End every prefix with a separator (`app:`; a prefix without one is warned about when
//! the backend is built, and `clear` refuses it) and give no application a prefix that starts with another's.
//!
//! # Cluster
//!
//! Multi-key commands (`MGET`, `DEL`) are split per hash slot and sent concurrently; `SCAN` visits every primary.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use bytes::Bytes;
use cache_core::{
    Backend, BackendError, Capabilities, CasOutcome, CasToken, GlobMatcher, KeyTtl, RateAlgorithm,
    RateDecision, RateRule, SetMode,
};
use fred::clients::{Client, Pool};
use fred::error::{Error as FredError, ErrorKind};
use fred::interfaces::{ClientLike, ClusterInterface, KeysInterface, LuaInterface, SetsInterface};
use fred::types::config::{Config, Options, ReconnectPolicy, Server, ServerConfig};
use fred::types::scripts::Script;
use fred::types::{Builder, CustomCommand, Expiration, FromValue, Key, SetOptions, Value};
use futures_util::future::join_all;

use crate::SetupError;

/// Command timeout unless configured otherwise: short, because a slow cache is worse than no cache.
pub const DEFAULT_COMMAND_TIMEOUT: Duration = Duration::from_millis(500);
/// TCP connect timeout (and the longest [`RedisBackendBuilder::build`] waits for the first connection) unless
/// configured otherwise.
pub const DEFAULT_CONNECT_TIMEOUT: Duration = Duration::from_secs(1);
/// Connections in the pool unless configured otherwise.
pub const DEFAULT_POOL_SIZE: usize = 4;
/// `COUNT` hint for each `SCAN` page unless configured otherwise.
pub const DEFAULT_SCAN_COUNT: u32 = 1_000;

/// Creates the key only when it does not exist: `EXISTS` before `INCRBY` tells creation apart from an existing
/// value that happens to equal `by`.
const INCR_LUA: &str = r"
local existed = redis.call('EXISTS', KEYS[1])
local value = redis.call('INCRBY', KEYS[1], ARGV[1])
if existed == 0 then redis.call('PEXPIRE', KEYS[1], ARGV[2]) end
return value
";

/// Compare-and-delete: only the holder of the token may release a lock.
/// SADD, then the set's TTL: `ARGV[1]` < 0 makes it persistent; otherwise a new set gets the TTL and an existing
/// one only ever has it extended (a persistent set stays persistent), so a tag outlives every member.
const SET_ADD_LUA: &str = r"
local existed = redis.call('EXISTS', KEYS[1])
redis.call('SADD', KEYS[1], unpack(ARGV, 2))
local ttl = tonumber(ARGV[1])
if ttl < 0 then
  redis.call('PERSIST', KEYS[1])
  return 1
end
local current = redis.call('PTTL', KEYS[1])
if existed == 0 or (current >= 0 and current < ttl) then
  redis.call('PEXPIRE', KEYS[1], ttl)
end
return 1
";

/// `GET` plus the CAS token: the first 64 bits of the value's SHA-1, in hex. Every value this library writes
/// starts with an envelope holding its write time and a checksum, so two writes differ in their bytes unless
/// they store the same value in the same millisecond — and then the state a compare-and-set sees is the same.
const GETS_LUA: &str = r"
local value = redis.call('GET', KEYS[1])
if not value then return false end
return {value, string.sub(redis.sha1hex(value), 1, 16)}
";

/// Compare-and-set against a token of `GETS_LUA`: 0 not found, 1 changed since, 2 stored. `ARGV[3]` is the
/// TTL in ms, 0 for none.
const CAS_LUA: &str = r"
local value = redis.call('GET', KEYS[1])
if not value then return 0 end
if string.sub(redis.sha1hex(value), 1, 16) ~= ARGV[2] then return 1 end
local ttl = tonumber(ARGV[3])
if ttl > 0 then
  redis.call('SET', KEYS[1], ARGV[1], 'PX', ttl)
else
  redis.call('SET', KEYS[1], ARGV[1])
end
return 2
";

/// `PERSIST` answering whether the key exists (`PERSIST` alone answers 0 for a key that has no TTL).
const PERSIST_LUA: &str = r"
if redis.call('EXISTS', KEYS[1]) == 0 then return 0 end
redis.call('PERSIST', KEYS[1])
return 1
";

/// One fixed-window rate-limit check: `ARGV[1]` the limit, `ARGV[2]` the period in ms. Refused calls are not
/// counted. Replies `{allowed (0/1), remaining, ms until the window resets}`.
const RATE_FIXED_LUA: &str = r"
local limit = tonumber(ARGV[1])
local period = tonumber(ARGV[2])
local count = tonumber(redis.call('GET', KEYS[1]) or '0') or 0
local allowed = 0
if count < limit then
  count = redis.call('INCR', KEYS[1])
  allowed = 1
end
local ttl = redis.call('PTTL', KEYS[1])
if ttl < 0 then
  redis.call('PEXPIRE', KEYS[1], period)
  ttl = period
end
if allowed == 1 then return {1, limit - count, ttl} end
return {0, 0, ttl}
";

/// One sliding-window rate-limit check on a sorted set of the allowed calls' times (server clock, ms): calls
/// older than one period are dropped, then the call is allowed if fewer than `ARGV[1]` remain. `ARGV[3]` makes
/// the member unique. Replies like `RATE_FIXED_LUA`; refused, the ms until the oldest call leaves the window.
const RATE_SLIDING_LUA: &str = r"
local limit = tonumber(ARGV[1])
local period = tonumber(ARGV[2])
local time = redis.call('TIME')
local now = tonumber(time[1]) * 1000 + math.floor(tonumber(time[2]) / 1000)
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now - period)
local count = redis.call('ZCARD', KEYS[1])
if count >= limit then
  local oldest = redis.call('ZRANGE', KEYS[1], 0, 0, 'WITHSCORES')
  local reset = period
  if oldest[2] then reset = tonumber(oldest[2]) + period - now end
  if reset < 1 then reset = 1 end
  return {0, 0, reset}
end
redis.call('ZADD', KEYS[1], now, now .. ':' .. ARGV[3])
redis.call('PEXPIRE', KEYS[1], period)
return {1, limit - count - 1, period}
";

const UNLOCK_LUA: &str = r"
if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) else return 0 end
";

/// A [`Backend`] on Redis. Cheap to clone (an `Arc` inside); clones share the connection pool.
///
/// # Example
/// ```no_run
/// use cache_backends::RedisBackend;
/// use cache_core::{Backend, SetMode};
/// use std::time::Duration;
/// # #[tokio::main]
/// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
/// let redis = RedisBackend::builder()
///     .url("redis://127.0.0.1:6379/0")
///     .key_prefix("myapp:")
///     .build()
///     .await?;
/// redis.set("greeting", "hello".into(), Some(Duration::from_secs(60)), SetMode::Always).await?;
/// assert_eq!(redis.get("greeting").await?.as_deref(), Some(&b"hello"[..]));
/// # Ok(()) }
/// ```
#[derive(Clone)]
pub struct RedisBackend {
    inner: Arc<Inner>,
}

struct Inner {
    pool: Pool,
    options: Options,
    /// One client per pooled connection with `options` applied, made once: a command clones neither the client
    /// (a shared reference-count write) nor the options.
    clients: Box<[fred::clients::WithOptions<Client>]>,
    /// Picks the next of `clients`, round robin as `Pool::next_connected` does.
    next_client: std::sync::atomic::AtomicUsize,
    prefix: String,
    /// `prefix` with glob metacharacters escaped, for `SCAN MATCH`.
    prefix_glob: String,
    clustered: bool,
    clear_all: bool,
    scan_count: u32,
    command_timeout: Duration,
    incr_script: Script,
    unlock_script: Script,
    set_add_script: Script,
    gets_script: Script,
    cas_script: Script,
    persist_script: Script,
    rate_fixed_script: Script,
    rate_sliding_script: Script,
}

impl Drop for Inner {
    fn drop(&mut self) {
        // Without QUIT the pool's reconnect tasks would keep running (and retrying a dead server) forever.
        if let Ok(runtime) = tokio::runtime::Handle::try_current() {
            let pool = self.pool.clone();
            runtime.spawn(async move {
                let _ = pool.quit().await;
            });
        }
    }
}

impl std::fmt::Debug for RedisBackend {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RedisBackend")
            .field("prefix", &self.inner.prefix)
            .field("clustered", &self.inner.clustered)
            .field("pool_size", &self.inner.pool.size())
            .field("command_timeout", &self.inner.command_timeout)
            .finish_non_exhaustive()
    }
}

/// Configures and connects a [`RedisBackend`].
///
/// # Example
/// ```no_run
/// use cache_backends::RedisBackend;
/// use std::time::Duration;
/// # #[tokio::main]
/// # async fn main() -> Result<(), cache_backends::SetupError> {
/// let redis = RedisBackend::builder()
///     .url("redis://127.0.0.1:7000")
///     .url("redis://127.0.0.1:7001")
///     .cluster(true)
///     .pool_size(8)
///     .command_timeout(Duration::from_millis(250))
///     .build()
///     .await?;
/// # let _ = redis; Ok(()) }
/// ```
#[derive(Debug, Clone)]
pub struct RedisBackendBuilder {
    urls: Vec<String>,
    pool_size: usize,
    command_timeout: Duration,
    connect_timeout: Duration,
    prefix: String,
    cluster: Option<bool>,
    reconnect: ReconnectPolicy,
    clear_all: bool,
    scan_count: u32,
}

impl Default for RedisBackendBuilder {
    fn default() -> Self {
        Self {
            urls: Vec::new(),
            pool_size: DEFAULT_POOL_SIZE,
            command_timeout: DEFAULT_COMMAND_TIMEOUT,
            connect_timeout: DEFAULT_CONNECT_TIMEOUT,
            prefix: String::new(),
            cluster: None,
            // Retry forever: a cache that gave up reconnecting would silently stay a no-op until restart.
            reconnect: ReconnectPolicy::new_exponential(0, 100, 1_000, 2),
            clear_all: false,
            scan_count: DEFAULT_SCAN_COUNT,
        }
    }
}

impl RedisBackendBuilder {
    /// Adds a server URL in fred's syntax: `redis://[[user:]password@]host[:port][/db]`, `rediss://…` (needs the
    /// `tls` feature), `redis-cluster://host:port`, `redis-sentinel://host:port/db?sentinelServiceName=name`.
    /// With [`cluster(true)`](Self::cluster) each URL adds a seed node; credentials, database and TLS come from the
    /// first one. Without any URL the builder connects to `redis://127.0.0.1:6379`.
    ///
    /// # Example
    /// ```
    /// let builder = cache_backends::RedisBackend::builder().url("redis://cache.internal:6379/2");
    /// # let _ = builder;
    /// ```
    pub fn url(mut self, url: impl Into<String>) -> Self {
        self.urls.push(url.into());
        self
    }

    /// Adds several URLs; see [`url`](Self::url).
    ///
    /// # Example
    /// ```
    /// let builder = cache_backends::RedisBackend::builder()
    ///     .urls(["redis://10.0.0.1:7000", "redis://10.0.0.2:7000"])
    ///     .cluster(true);
    /// # let _ = builder;
    /// ```
    pub fn urls<I, S>(mut self, urls: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        self.urls.extend(urls.into_iter().map(Into::into));
        self
    }

    /// Connections in the pool (default 4, at least 1). Commands are spread over the connected ones.
    ///
    /// # Example
    /// ```
    /// let builder = cache_backends::RedisBackend::builder().pool_size(16);
    /// # let _ = builder;
    /// ```
    pub fn pool_size(mut self, size: usize) -> Self {
        self.pool_size = size.max(1);
        self
    }

    /// Longest wait for one command (default 500 ms); past it the call fails with [`BackendError::Timeout`] and a
    /// cached function runs its body instead.
    ///
    /// # Example
    /// ```
    /// let builder = cache_backends::RedisBackend::builder()
    ///     .command_timeout(std::time::Duration::from_millis(100));
    /// # let _ = builder;
    /// ```
    pub fn command_timeout(mut self, timeout: Duration) -> Self {
        self.command_timeout = timeout;
        self
    }

    /// TCP (and TLS) connect timeout, also the longest [`build`](Self::build) waits for the first connection
    /// (default 1 s).
    ///
    /// # Example
    /// ```
    /// let builder = cache_backends::RedisBackend::builder()
    ///     .connect_timeout(std::time::Duration::from_secs(3));
    /// # let _ = builder;
    /// ```
    pub fn connect_timeout(mut self, timeout: Duration) -> Self {
        self.connect_timeout = timeout;
        self
    }

    /// Prepends `prefix` to every key (default: none). [`Backend::clear`] then removes only keys under it.
    ///
    /// End it with a separator such as `:` and keep it from being the start of another application's prefix on
    /// the same server: `clear` deletes everything that starts with it (see the module docs).
    ///
    /// # Example
    /// ```
    /// let builder = cache_backends::RedisBackend::builder().key_prefix("billing:");
    /// # let _ = builder;
    /// ```
    pub fn key_prefix(mut self, prefix: impl Into<String>) -> Self {
        self.prefix = prefix.into();
        self
    }

    /// Treats the URLs as seeds of a Redis Cluster (default: only when the URL scheme says so, e.g.
    /// `redis-cluster://`).
    ///
    /// # Example
    /// ```
    /// let builder = cache_backends::RedisBackend::builder().url("redis://10.0.0.1:7000").cluster(true);
    /// # let _ = builder;
    /// ```
    pub fn cluster(mut self, cluster: bool) -> Self {
        self.cluster = Some(cluster);
        self
    }

    /// How to reconnect after a connection breaks (default: forever, exponential backoff 100 ms … 1 s).
    ///
    /// # Example
    /// ```
    /// use fred::types::config::ReconnectPolicy;
    /// let builder = cache_backends::RedisBackend::builder()
    ///     .reconnect_policy(ReconnectPolicy::new_constant(0, 500));
    /// # let _ = builder;
    /// ```
    pub fn reconnect_policy(mut self, policy: ReconnectPolicy) -> Self {
        self.reconnect = policy;
        self
    }

    /// Lets [`Backend::clear`] run `FLUSHDB` on every primary, dropping keys the cache does not own. Off by default:
    /// `clear` then deletes only keys under the key prefix and refuses to run without one.
    ///
    /// # Example
    /// ```
    /// // A database dedicated to the cache.
    /// let builder = cache_backends::RedisBackend::builder().url("redis://127.0.0.1/5").clear_all(true);
    /// # let _ = builder;
    /// ```
    pub fn clear_all(mut self, clear_all: bool) -> Self {
        self.clear_all = clear_all;
        self
    }

    /// `COUNT` hint for each `SCAN` page (default 1000).
    ///
    /// # Example
    /// ```
    /// let builder = cache_backends::RedisBackend::builder().scan_count(500);
    /// # let _ = builder;
    /// ```
    pub fn scan_count(mut self, count: u32) -> Self {
        self.scan_count = count.max(1);
        self
    }

    /// The reconnect policy configured (for the client-side tier's own connection).
    pub(crate) fn reconnect_policy_value(&self) -> ReconnectPolicy {
        self.reconnect.clone()
    }

    /// The connect timeout configured (for the client-side tier's own connection).
    pub(crate) fn connect_timeout_value(&self) -> Duration {
        self.connect_timeout
    }

    /// fred's configuration for these settings (the client-side tier opens its tracking connection with it).
    pub(crate) fn fred_config(&self) -> Result<Config, SetupError> {
        let default_url = "redis://127.0.0.1:6379".to_owned();
        let first = self.urls.first().unwrap_or(&default_url);
        let bad_url = |url: &str, error: FredError| SetupError::InvalidUrl {
            url: url.to_owned(),
            reason: error.details().to_owned(),
        };
        if first.starts_with("rediss") && !cfg!(feature = "tls") {
            return Err(SetupError::FeatureDisabled {
                feature: "tls",
                what: "rediss:// URLs",
            });
        }
        let mut config = if self.cluster == Some(true) {
            Config::from_url_clustered(first)
        } else {
            Config::from_url(first)
        }
        .map_err(|e| bad_url(first, e))?;

        let extra = &self.urls[self.urls.len().min(1)..];
        match &mut config.server {
            ServerConfig::Clustered { hosts, .. } => {
                for url in extra {
                    let seed = Config::from_url_clustered(url).map_err(|e| bad_url(url, e))?;
                    if let ServerConfig::Clustered { hosts: more, .. } = seed.server {
                        hosts.extend(more);
                    }
                }
            }
            _ if !extra.is_empty() => {
                return Err(SetupError::InvalidOption {
                    name: "urls".into(),
                    value: self.urls.join(","),
                    reason: "several URLs need cluster mode (cluster(true) or redis-cluster://)"
                        .into(),
                });
            }
            _ => {}
        }
        // Keep reconnecting in the background when the first connection fails: the application must start even
        // when Redis does not.
        config.fail_fast = false;
        Ok(config)
    }

    /// Creates the connection pool and waits at most the connect timeout for it to connect.
    ///
    /// Fails only on configuration errors (bad URL, TLS feature missing). An unreachable server is not an error:
    /// the backend is returned, logs a warning, fails every command fast and connects as soon as it can.
    ///
    /// # Example
    /// ```no_run
    /// # #[tokio::main]
    /// # async fn main() -> Result<(), cache_backends::SetupError> {
    /// let redis = cache_backends::RedisBackend::builder().url("redis://127.0.0.1:6379").build().await?;
    /// # let _ = redis; Ok(()) }
    /// ```
    pub async fn build(self) -> Result<RedisBackend, SetupError> {
        let config = self.fred_config()?;
        let clustered = config.server.is_clustered();
        let connect_timeout = self.connect_timeout;
        let command_timeout = self.command_timeout;
        let pool = Builder::from_config(config)
            .with_connection_config(|c| {
                c.connection_timeout = connect_timeout;
                c.internal_command_timeout = connect_timeout.max(command_timeout);
                // A cache command is not worth retrying after a broken connection: the caller falls back anyway.
                c.max_command_attempts = 1;
            })
            .with_performance_config(|p| {
                // Applies to what per-command options do not reach (scans, internal commands).
                p.default_command_timeout = command_timeout;
            })
            .set_policy(self.reconnect.clone())
            .build_pool(self.pool_size)
            .map_err(|e| SetupError::Redis(e.details().to_owned()))?;

        if !self.prefix.is_empty() && !ends_with_separator(&self.prefix) {
            tracing::warn!(
                prefix = self.prefix,
                "cache key prefix does not end with a separator such as ':'; clear() and delete_match(\"*\") would \
                 also reach every other prefix that starts with it, so clear() refuses to run"
            );
        }
        drop(pool.connect_pool());
        match tokio::time::timeout(connect_timeout, pool.wait_for_connect()).await {
            Ok(Ok(())) => tracing::debug!(clustered, "redis backend connected"),
            Ok(Err(error)) => tracing::warn!(
                %error,
                "redis is not reachable yet; cache calls fail fast until it is"
            ),
            Err(_) => tracing::warn!(
                timeout = ?connect_timeout,
                "redis did not connect within the connect timeout; cache calls fail fast until it does"
            ),
        }

        let options = Options {
            timeout: Some(command_timeout),
            fail_fast: true,
            max_attempts: Some(1),
            ..Options::default()
        };
        let clients = pool
            .clients()
            .iter()
            .map(|client| client.with_options(&options))
            .collect();
        Ok(RedisBackend {
            inner: Arc::new(Inner {
                pool,
                options,
                clients,
                next_client: std::sync::atomic::AtomicUsize::new(0),
                prefix_glob: GlobMatcher::escape(&self.prefix),
                prefix: self.prefix,
                clustered,
                clear_all: self.clear_all,
                scan_count: self.scan_count,
                command_timeout,
                incr_script: Script::from_lua(INCR_LUA),
                unlock_script: Script::from_lua(UNLOCK_LUA),
                set_add_script: Script::from_lua(SET_ADD_LUA),
                gets_script: Script::from_lua(GETS_LUA),
                cas_script: Script::from_lua(CAS_LUA),
                persist_script: Script::from_lua(PERSIST_LUA),
                rate_fixed_script: Script::from_lua(RATE_FIXED_LUA),
                rate_sliding_script: Script::from_lua(RATE_SLIDING_LUA),
            }),
        })
    }
}

impl RedisBackend {
    /// Starts configuring a backend.
    ///
    /// # Example
    /// ```
    /// let builder = cache_backends::RedisBackend::builder().url("redis://127.0.0.1:6379");
    /// # let _ = builder;
    /// ```
    pub fn builder() -> RedisBackendBuilder {
        RedisBackendBuilder::default()
    }

    /// The fred connection pool, for commands this crate does not wrap. Keys passed to it are *not* prefixed.
    ///
    /// # Example
    /// ```no_run
    /// use fred::interfaces::KeysInterface;
    /// # #[tokio::main]
    /// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// let redis = cache_backends::RedisBackend::builder().key_prefix("app:").build().await?;
    /// let raw: Option<String> = redis.pool().get("app:greeting").await?;
    /// # let _ = raw; Ok(()) }
    /// ```
    pub fn pool(&self) -> &Pool {
        &self.inner.pool
    }

    /// The key prefix (empty when none).
    ///
    /// # Example
    /// ```no_run
    /// # #[tokio::main]
    /// # async fn main() -> Result<(), cache_backends::SetupError> {
    /// let redis = cache_backends::RedisBackend::builder().key_prefix("app:").build().await?;
    /// assert_eq!(redis.key_prefix(), "app:");
    /// # Ok(()) }
    /// ```
    pub fn key_prefix(&self) -> &str {
        &self.inner.prefix
    }

    /// Whether the backend talks to a Redis Cluster.
    ///
    /// # Example
    /// ```no_run
    /// # #[tokio::main]
    /// # async fn main() -> Result<(), cache_backends::SetupError> {
    /// let redis = cache_backends::RedisBackend::builder().build().await?;
    /// assert!(!redis.is_cluster());
    /// # Ok(()) }
    /// ```
    pub fn is_cluster(&self) -> bool {
        self.inner.clustered
    }

    /// Whether at least one pooled connection is up right now.
    ///
    /// # Example
    /// ```no_run
    /// # #[tokio::main]
    /// # async fn main() -> Result<(), cache_backends::SetupError> {
    /// let redis = cache_backends::RedisBackend::builder().build().await?;
    /// if !redis.is_connected() {
    ///     eprintln!("running without a cache for now");
    /// }
    /// # Ok(()) }
    /// ```
    pub fn is_connected(&self) -> bool {
        self.inner.pool.clients().iter().any(|c| c.is_connected())
    }

    /// The full Redis key for a cache key.
    fn full_key(&self, key: &str) -> String {
        let mut full = String::with_capacity(self.inner.prefix.len() + key.len());
        full.push_str(&self.inner.prefix);
        full.push_str(key);
        full
    }

    fn connection(&self) -> &Client {
        self.inner.pool.next_connected()
    }

    /// The next connected client of the pool with the command options applied (the next one at all when none is
    /// connected: its command then fails fast).
    fn client(&self) -> &fred::clients::WithOptions<Client> {
        // Never empty: fred refuses to build a pool of size 0.
        let clients = &self.inner.clients;
        let mut index = self
            .inner
            .next_client
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed)
            % clients.len();
        for _ in 0..clients.len() {
            if clients[index].is_connected() {
                break;
            }
            index = (index + 1) % clients.len();
        }
        &clients[index]
    }

    fn node_client(&self, node: &Server) -> fred::clients::WithOptions<Client> {
        let options = Options {
            cluster_node: Some(node.clone()),
            ..self.inner.options.clone()
        };
        self.connection().with_options(&options)
    }

    fn err(&self, error: FredError) -> BackendError {
        map_error(&error, self.inner.command_timeout)
    }

    /// The primaries to visit for keyspace-wide commands; `None` stands for "the one server".
    fn primaries(&self) -> Result<Vec<Option<Server>>, BackendError> {
        if !self.inner.clustered {
            return Ok(vec![None]);
        }
        let routing = self.connection().cached_cluster_state().ok_or_else(|| {
            BackendError::Connection("cluster routing table not known yet".into())
        })?;
        let nodes = routing.unique_primary_nodes();
        if nodes.is_empty() {
            return Err(BackendError::Connection("cluster has no primaries".into()));
        }
        Ok(nodes.into_iter().map(Some).collect())
    }

    /// Groups key indexes by hash slot; a single group outside cluster mode, where multi-key commands always work.
    fn slot_groups<'k>(&self, keys: &'k [String]) -> Vec<Vec<(usize, &'k String)>> {
        if !self.inner.clustered {
            return vec![keys.iter().enumerate().collect()];
        }
        let mut groups: HashMap<u16, Vec<(usize, &String)>> = HashMap::new();
        for (index, key) in keys.iter().enumerate() {
            groups
                .entry(fred::util::redis_keyslot(key.as_bytes()))
                .or_default()
                .push((index, key));
        }
        groups.into_values().collect()
    }

    /// Runs a script by SHA and falls back to `EVAL` when the server (or cluster node) has not cached it yet.
    async fn run_script<R: FromValue>(
        &self,
        script: &Script,
        key: String,
        args: Vec<Value>,
    ) -> Result<R, BackendError> {
        let client = self.client();
        match client
            .evalsha::<R, _, _, _>(script.sha1().clone(), key.clone(), args.clone())
            .await
        {
            Err(error) if error.details().starts_with("NOSCRIPT") => {
                let lua = script.lua().cloned().unwrap_or_default();
                client
                    .eval::<R, _, _, _>(lua, key, args)
                    .await
                    .map_err(|e| self.err(e))
            }
            other => other.map_err(|e| self.err(e)),
        }
    }

    /// Deletes full (already prefixed) keys, split per slot on a cluster. Returns how many existed.
    async fn unlink_full(&self, keys: Vec<String>) -> Result<u64, BackendError> {
        if keys.is_empty() {
            return Ok(0);
        }
        let groups = self.slot_groups(&keys);
        let requests = groups.into_iter().map(|group| {
            let batch: Vec<Key> = group
                .into_iter()
                .map(|(_, k)| Key::from(k.as_str()))
                .collect();
            async move { self.client().unlink::<u64, _>(batch).await }
        });
        let mut deleted = 0;
        for result in join_all(requests).await {
            deleted += result.map_err(|e| self.err(e))?;
        }
        Ok(deleted)
    }

    /// Walks `SCAN MATCH` over every primary, handing each non-empty page of full keys to `page`; returns the sum
    /// of what `page` returned.
    async fn scan_pages<F, Fut>(&self, pattern: &str, mut page: F) -> Result<u64, BackendError>
    where
        F: FnMut(Vec<String>) -> Fut,
        Fut: std::future::Future<Output = Result<u64, BackendError>>,
    {
        let mut total = 0;
        let full_pattern = format!("{}{}", self.inner.prefix_glob, pattern);
        for node in self.primaries()? {
            let mut cursor = "0".to_owned();
            loop {
                let client = match &node {
                    Some(node) => self.node_client(node),
                    None => self.client().clone(),
                };
                let reply: Value = client
                    .scan_page(
                        cursor.clone(),
                        full_pattern.clone(),
                        Some(self.inner.scan_count),
                        None,
                    )
                    .await
                    .map_err(|e| self.err(e))?;
                let (next, keys) = parse_scan_reply(reply)?;
                if !keys.is_empty() {
                    total += page(keys).await?;
                }
                if next == "0" {
                    break;
                }
                cursor = next;
            }
        }
        Ok(total)
    }
}

/// Splits a `SCAN` reply into the next cursor and the keys; keys that are not UTF-8 cannot be cache keys and are
/// skipped.
fn parse_scan_reply(reply: Value) -> Result<(String, Vec<String>), BackendError> {
    let malformed = || BackendError::Other("malformed SCAN reply".into());
    let Value::Array(mut parts) = reply else {
        return Err(malformed());
    };
    if parts.len() != 2 {
        return Err(malformed());
    }
    let keys = parts.pop().ok_or_else(malformed)?;
    let cursor = parts
        .pop()
        .and_then(|c| c.as_string())
        .ok_or_else(malformed)?;
    let keys = match keys {
        Value::Array(keys) => keys.into_iter().filter_map(|k| k.into_string()).collect(),
        _ => return Err(malformed()),
    };
    Ok((cursor, keys))
}

/// Whether a key prefix ends with a separator (ASCII punctuation such as `:`), so that no other application's
/// prefix can merely continue its last word (`app` / `apple:`).
/// `GETS_LUA`'s reply: nil, or the value and its token in hex.
fn parse_gets_reply(reply: Value) -> Result<Option<(Bytes, CasToken)>, BackendError> {
    let unexpected = || BackendError::Other("unexpected reply to the gets script".to_owned());
    let parts = match reply {
        Value::Null => return Ok(None),
        Value::Array(parts) => parts,
        _ => return Err(unexpected()),
    };
    let [value, token] = <[Value; 2]>::try_from(parts).map_err(|_| unexpected())?;
    let value = match value {
        Value::Bytes(b) => b,
        Value::String(s) => s.into_inner(),
        _ => return Err(unexpected()),
    };
    let token = token
        .as_str()
        .and_then(|hex| u64::from_str_radix(&hex, 16).ok())
        .ok_or_else(unexpected)?;
    Ok(Some((value, CasToken::new(token))))
}

fn ends_with_separator(prefix: &str) -> bool {
    prefix
        .chars()
        .last()
        .is_some_and(|c| c.is_ascii_punctuation())
}

/// Redis TTLs are whole milliseconds: round up so a short TTL never becomes "no TTL" or an invalid `PX 0`.
fn millis(ttl: Duration) -> i64 {
    let mut ms = ttl.as_millis();
    if !ttl.subsec_nanos().is_multiple_of(1_000_000) {
        ms += 1;
    }
    i64::try_from(ms.max(1)).unwrap_or(i64::MAX)
}

/// Sorts fred's errors into the cache's error kinds.
fn map_error(error: &FredError, timeout: Duration) -> BackendError {
    let details = error.details();
    let server_says = |prefix: &str| details.starts_with(prefix) || details.contains(prefix);
    if server_says("WRONGTYPE") || details.contains("not an integer") {
        return BackendError::WrongType(details.to_owned());
    }
    match error.kind() {
        ErrorKind::Timeout => BackendError::Timeout(timeout),
        ErrorKind::IO | ErrorKind::Canceled | ErrorKind::Backpressure | ErrorKind::Auth => {
            BackendError::Connection(format!("{}: {details}", error.kind().to_str()))
        }
        ErrorKind::Cluster if server_says("CLUSTERDOWN") => {
            BackendError::Connection(details.to_owned())
        }
        ErrorKind::InvalidArgument | ErrorKind::InvalidCommand | ErrorKind::Parse => {
            BackendError::Invalid(details.to_owned())
        }
        _ if details.contains("Connection closed") || details.contains("not connected") => {
            BackendError::Connection(details.to_owned())
        }
        _ => BackendError::Other(format!("{}: {details}", error.kind().to_str())),
    }
}

#[async_trait]
impl Backend for RedisBackend {
    async fn get(&self, key: &str) -> Result<Option<Bytes>, BackendError> {
        self.client()
            .get::<Option<Bytes>, _>(self.full_key(key))
            .await
            .map_err(|e| self.err(e))
    }

    async fn get_many(&self, keys: &[&str]) -> Result<Vec<Option<Bytes>>, BackendError> {
        if keys.is_empty() {
            return Ok(Vec::new());
        }
        let full: Vec<String> = keys.iter().map(|k| self.full_key(k)).collect();
        let groups = self.slot_groups(&full);
        let requests = groups.into_iter().map(|group| async move {
            let batch: Vec<Key> = group.iter().map(|(_, k)| Key::from(k.as_str())).collect();
            let values = self
                .client()
                .mget::<Vec<Option<Bytes>>, _>(batch)
                .await
                .map_err(|e| self.err(e))?;
            if values.len() != group.len() {
                return Err(BackendError::Other(format!(
                    "MGET returned {} values for {} keys",
                    values.len(),
                    group.len()
                )));
            }
            Ok(group.into_iter().map(|(i, _)| i).zip(values))
        });
        let mut out = vec![None; keys.len()];
        for result in join_all(requests).await {
            for (index, value) in result? {
                out[index] = value;
            }
        }
        Ok(out)
    }

    async fn set(
        &self,
        key: &str,
        value: Bytes,
        ttl: Option<Duration>,
        mode: SetMode,
    ) -> Result<bool, BackendError> {
        let options = match mode {
            SetMode::Always => None,
            SetMode::IfAbsent => Some(SetOptions::NX),
            SetMode::IfPresent => Some(SetOptions::XX),
            // A mode added after this backend was written: refuse rather than guess.
            other => {
                return Err(BackendError::Invalid(format!(
                    "set mode {other:?} is not supported"
                )))
            }
        };
        let reply: Value = self
            .client()
            .set(
                self.full_key(key),
                value,
                ttl.map(|t| Expiration::PX(millis(t))),
                options,
                false,
            )
            .await
            .map_err(|e| self.err(e))?;
        // NX/XX answer nil when they did not write.
        Ok(!reply.is_null())
    }

    async fn set_many(
        &self,
        entries: &[(&str, Bytes)],
        ttl: Option<Duration>,
    ) -> Result<(), BackendError> {
        if entries.is_empty() {
            return Ok(());
        }
        let expiration = ttl.map(|t| Expiration::PX(millis(t)));
        // One pipeline: each SET is routed to its own node on a cluster, and every key gets its TTL atomically
        // (MSET + PEXPIRE would leave a window of immortal keys).
        let pipeline = self
            .connection()
            .pipeline()
            .with_options(&self.inner.options);
        for (key, value) in entries {
            let _: () = pipeline
                .set(
                    self.full_key(key),
                    value.clone(),
                    expiration.clone(),
                    None,
                    false,
                )
                .await
                .map_err(|e| self.err(e))?;
        }
        for result in pipeline.try_all::<Value>().await {
            result.map_err(|e| self.err(e))?;
        }
        Ok(())
    }

    async fn delete(&self, key: &str) -> Result<bool, BackendError> {
        let deleted: u64 = self
            .client()
            .del(self.full_key(key))
            .await
            .map_err(|e| self.err(e))?;
        Ok(deleted > 0)
    }

    async fn delete_many(&self, keys: &[&str]) -> Result<u64, BackendError> {
        let full: Vec<String> = keys.iter().map(|k| self.full_key(k)).collect();
        self.unlink_full(full).await
    }

    async fn delete_match(&self, pattern: &str) -> Result<u64, BackendError> {
        // Delete page by page so memory stays bounded by one page whatever the key count.
        self.scan_pages(pattern, |keys| self.unlink_full(keys))
            .await
    }

    async fn scan(&self, pattern: &str) -> Result<Vec<String>, BackendError> {
        let mut found = Vec::new();
        let prefix_len = self.inner.prefix.len();
        self.scan_pages(pattern, |keys| {
            found.extend(
                keys.into_iter()
                    .filter_map(|k| k.get(prefix_len..).map(str::to_owned)),
            );
            std::future::ready(Ok(0))
        })
        .await?;
        // A key can show up twice when it was rehashed during the scan.
        found.sort_unstable();
        found.dedup();
        Ok(found)
    }

    async fn incr(&self, key: &str, by: i64, ttl: Option<Duration>) -> Result<i64, BackendError> {
        match ttl {
            None => self
                .client()
                .incr_by::<i64, _>(self.full_key(key), by)
                .await
                .map_err(|e| self.err(e)),
            Some(ttl) => {
                self.run_script(
                    &self.inner.incr_script,
                    self.full_key(key),
                    vec![Value::Integer(by), Value::Integer(millis(ttl))],
                )
                .await
            }
        }
    }

    async fn expire(&self, key: &str, ttl: Duration) -> Result<bool, BackendError> {
        self.client()
            .pexpire::<bool, _>(self.full_key(key), millis(ttl), None)
            .await
            .map_err(|e| self.err(e))
    }

    async fn ttl(&self, key: &str) -> Result<KeyTtl, BackendError> {
        let ms: i64 = self
            .client()
            .pttl(self.full_key(key))
            .await
            .map_err(|e| self.err(e))?;
        Ok(match ms {
            -2 => KeyTtl::Missing,
            -1 => KeyTtl::Persistent,
            ms => KeyTtl::Remaining(Duration::from_millis(u64::try_from(ms).unwrap_or(0))),
        })
    }

    async fn persist(&self, key: &str) -> Result<bool, BackendError> {
        let existed: i64 = self
            .run_script(&self.inner.persist_script, self.full_key(key), Vec::new())
            .await?;
        Ok(existed > 0)
    }

    async fn gets(&self, key: &str) -> Result<Option<(Bytes, CasToken)>, BackendError> {
        let reply: Value = self
            .run_script(&self.inner.gets_script, self.full_key(key), Vec::new())
            .await?;
        parse_gets_reply(reply)
    }

    async fn cas(
        &self,
        key: &str,
        value: Bytes,
        token: CasToken,
        ttl: Option<Duration>,
    ) -> Result<CasOutcome, BackendError> {
        let outcome: i64 = self
            .run_script(
                &self.inner.cas_script,
                self.full_key(key),
                vec![
                    Value::Bytes(value),
                    Value::String(format!("{:016x}", token.get()).into()),
                    Value::Integer(ttl.map_or(0, millis)),
                ],
            )
            .await?;
        Ok(match outcome {
            0 => CasOutcome::NotFound,
            1 => CasOutcome::Exists,
            _ => CasOutcome::Stored,
        })
    }

    async fn unlock(&self, key: &str, token: &[u8]) -> Result<bool, BackendError> {
        let deleted: i64 = self
            .run_script(
                &self.inner.unlock_script,
                self.full_key(key),
                vec![Value::Bytes(Bytes::copy_from_slice(token))],
            )
            .await?;
        Ok(deleted > 0)
    }

    async fn rate_limit(&self, key: &str, rule: RateRule) -> Result<RateDecision, BackendError> {
        let (script, unique) = match rule.algorithm {
            RateAlgorithm::Fixed => (&self.inner.rate_fixed_script, String::new()),
            RateAlgorithm::Sliding => {
                let mut bytes = [0u8; 8];
                // Two calls in one millisecond need distinct members; without randomness, a count still makes
                // them distinct within this process, and another process's call at the same millisecond and
                // count is the only collision left (it would count once).
                if getrandom::fill(&mut bytes).is_err() {
                    static COUNT: std::sync::atomic::AtomicU64 =
                        std::sync::atomic::AtomicU64::new(0);
                    bytes = COUNT
                        .fetch_add(1, std::sync::atomic::Ordering::Relaxed)
                        .to_le_bytes();
                }
                (
                    &self.inner.rate_sliding_script,
                    format!("{:016x}", u64::from_le_bytes(bytes)),
                )
            }
        };
        let limit = i64::try_from(rule.limit).unwrap_or(i64::MAX);
        let period = i64::try_from(rule.period_ms()).unwrap_or(i64::MAX);
        let reply: Vec<i64> = self
            .run_script(
                script,
                self.full_key(key),
                vec![
                    Value::Integer(limit),
                    Value::Integer(period),
                    Value::String(unique.into()),
                ],
            )
            .await?;
        match reply[..] {
            [allowed, remaining, reset] => Ok(RateDecision {
                allowed: allowed == 1,
                remaining: u64::try_from(remaining).unwrap_or(0),
                reset_after: Duration::from_millis(u64::try_from(reset).unwrap_or(0)),
            }),
            _ => Err(BackendError::Other(format!(
                "unexpected rate-limit reply from Redis: {reply:?}"
            ))),
        }
    }

    async fn ping(&self) -> Result<(), BackendError> {
        let _: Value = self.client().ping(None).await.map_err(|e| self.err(e))?;
        Ok(())
    }

    async fn clear(&self) -> Result<(), BackendError> {
        if self.inner.clear_all {
            for node in self.primaries()? {
                let client = match &node {
                    Some(node) => self.node_client(node),
                    None => self.client().clone(),
                };
                let _: Value = client
                    .custom(
                        CustomCommand::new_static(
                            "FLUSHDB",
                            fred::types::ClusterHash::Random,
                            false,
                        ),
                        Vec::<Value>::new(),
                    )
                    .await
                    .map_err(|e| self.err(e))?;
            }
            return Ok(());
        }
        if self.inner.prefix.is_empty() {
            return Err(BackendError::Invalid(
                "clear without a key prefix would delete every key in the database; set a key prefix or enable \
                 clear_all on a database dedicated to the cache"
                    .into(),
            ));
        }
        if !ends_with_separator(&self.inner.prefix) {
            return Err(BackendError::Invalid(format!(
                "clear with key prefix {:?} would also delete the keys of every prefix that starts with it \
                 ({:?}…); end the prefix with a separator such as ':' or enable clear_all on a database \
                 dedicated to the cache",
                self.inner.prefix,
                format!("{}x", self.inner.prefix),
            )));
        }
        self.delete_match("*").await.map(|_| ())
    }

    async fn set_add(
        &self,
        key: &str,
        members: &[&str],
        ttl: Option<Duration>,
    ) -> Result<(), BackendError> {
        if members.is_empty() {
            return Ok(());
        }
        let mut args = Vec::with_capacity(members.len() + 1);
        args.push(Value::Integer(ttl.map_or(-1, millis)));
        args.extend(members.iter().map(|m| Value::from(*m)));
        let _: i64 = self
            .run_script(&self.inner.set_add_script, self.full_key(key), args)
            .await?;
        Ok(())
    }

    async fn set_members(&self, key: &str) -> Result<Vec<String>, BackendError> {
        self.client()
            .smembers::<Vec<String>, _>(self.full_key(key))
            .await
            .map_err(|e| self.err(e))
    }

    async fn set_remove(&self, key: &str, members: &[&str]) -> Result<u64, BackendError> {
        if members.is_empty() {
            return Ok(0);
        }
        let members: Vec<Value> = members.iter().map(|m| Value::from(*m)).collect();
        self.client()
            .srem::<u64, _, _>(self.full_key(key), members)
            .await
            .map_err(|e| self.err(e))
    }

    fn name(&self) -> &'static str {
        "redis"
    }

    fn capabilities(&self) -> Capabilities {
        Capabilities::SCAN
            | Capabilities::COUNTERS
            | Capabilities::SETS
            | Capabilities::TTL
            | Capabilities::LOCKS
            | Capabilities::CAS
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn millis_rounds_up_and_never_zero() {
        assert_eq!(millis(Duration::ZERO), 1);
        assert_eq!(millis(Duration::from_micros(1)), 1);
        assert_eq!(millis(Duration::from_micros(1_500)), 2);
        assert_eq!(millis(Duration::from_secs(3)), 3_000);
    }

    #[test]
    fn glob_escaping() {
        assert_eq!(GlobMatcher::escape("app:"), "app:");
        assert_eq!(GlobMatcher::escape("a*b?[c]\\"), "a\\*b\\?\\[c\\]\\\\");
    }

    #[test]
    fn error_mapping() {
        let t = Duration::from_millis(5);
        let e = FredError::new(ErrorKind::Timeout, "Request timed out.");
        assert!(matches!(map_error(&e, t), BackendError::Timeout(d) if d == t));
        let e = FredError::new(ErrorKind::Canceled, "Connection closed unexpectedly.");
        assert!(matches!(map_error(&e, t), BackendError::Connection(_)));
        let e = FredError::new(
            ErrorKind::InvalidArgument,
            "WRONGTYPE Operation against a key holding the wrong kind of value",
        );
        assert!(matches!(map_error(&e, t), BackendError::WrongType(_)));
        let e = FredError::new(
            ErrorKind::Unknown,
            "ERR value is not an integer or out of range",
        );
        assert!(matches!(map_error(&e, t), BackendError::WrongType(_)));
        let e = FredError::new(ErrorKind::IO, "connection refused");
        assert!(matches!(map_error(&e, t), BackendError::Connection(_)));
    }

    #[test]
    fn scan_reply_parsing() {
        let reply = Value::Array(vec![
            Value::from("17"),
            Value::Array(vec![Value::from("a"), Value::from("b")]),
        ]);
        let (cursor, keys) = parse_scan_reply(reply).unwrap();
        assert_eq!(cursor, "17");
        assert_eq!(keys, ["a", "b"]);
        assert!(parse_scan_reply(Value::Null).is_err());
    }

    #[test]
    fn rediss_without_tls_feature_is_a_clear_error() {
        let result = RedisBackend::builder()
            .url("rediss://127.0.0.1:6380")
            .fred_config();
        if cfg!(feature = "tls") {
            assert!(result.is_ok());
        } else {
            assert!(matches!(result, Err(SetupError::FeatureDisabled { .. })));
        }
    }

    #[test]
    fn several_urls_need_cluster_mode() {
        let result = RedisBackend::builder()
            .urls(["redis://127.0.0.1:7000", "redis://127.0.0.1:7001"])
            .fred_config();
        assert!(matches!(result, Err(SetupError::InvalidOption { .. })));
        let config = RedisBackend::builder()
            .urls(["redis://127.0.0.1:7000", "redis://127.0.0.1:7001"])
            .cluster(true)
            .fred_config()
            .unwrap();
        match config.server {
            ServerConfig::Clustered { hosts, .. } => assert_eq!(hosts.len(), 2),
            other => panic!("expected cluster config, got {other:?}"),
        }
    }
}
