//! memcached as a cache backend (feature `memcached`, scheme `memcached://host:port[,host:port…]`), speaking
//! the meta protocol (`mg`/`ms`/`md`/`ma`/`mn`; memcached 1.6 or newer) over tokio.
//!
//! Why a client of our own: no existing crate is async, maintained and multi-server at once (`async-memcached`
//! holds one connection and no pool; `memcache`'s async client is marked experimental). This one is small:
//! `protocol` (requests and a parser tested with arbitrary and mutated input), `connection` (a pool per
//! server; a cancelled call closes its connection rather than leave a reply behind), `ring` (rendezvous
//! hashing compatible with pymemcache, and pymemcache's failing/dead server handling).
//!
//! # What works on memcached
//!
//! Reads, writes in every [`SetMode`] (`add`, `replace`), deletes, counters (`ma`; memcached counters are
//! unsigned: a decrement stops at 0), TTLs (read back with `mg … t`, changed with `mg … T`; over 30 days sent
//! as an absolute time, as memcached requires), compare-and-set (`mg … c` / `ms … C`) and locks (compare-and-
//! delete through CAS). So do the strategies built on them: `#[cached]` with `soft_ttl`, `lock`, early refresh,
//! failover, hit counting, `Cache::update`.
//!
//! memcached cannot list keys: `scan`, `delete_match`, `clear` and with them `_invalidate_all`, and tags (which
//! keep sets) answer [`BackendError::Unsupported`]. Invalidate a group of keys with a namespace
//! ([`Cache::namespace`](cache_core::Cache::namespace)) instead: one counter per namespace, O(1) to bump.
//!
//! # Keys
//!
//! Keys are prefixed (`prefix`) and, when longer than 250 bytes or holding whitespace, control or non-ASCII
//! bytes, replaced by a readable head and a SHA-256 hash ([`KeyMangler::memcached`]). The server is chosen from
//! the key *before* the prefix, as pymemcache does, so both clients agree on where a key lives.

mod connection;
mod protocol;
mod ring;

use std::borrow::Cow;
use std::sync::Arc;
use std::time::{Duration, Instant};

use async_trait::async_trait;
use bytes::{Bytes, BytesMut};
use cache_core::layer::{BackendLayer, KeyMangler};
use cache_core::{Backend, BackendError, Capabilities, CasOutcome, CasToken, KeyTtl, SetMode};
use futures_util::future::join_all;

use connection::Pool;
use protocol::{ttl_token, Reply, Requests};
use ring::{Admission, FailurePolicy, Health};

/// Command timeout unless configured otherwise.
pub const DEFAULT_COMMAND_TIMEOUT: Duration = Duration::from_millis(500);
/// Connections per server unless configured otherwise.
pub const DEFAULT_POOL_SIZE: usize = 8;

/// A [`Backend`] on one or more memcached servers. Cheap to clone; clones share the connections.
///
/// # Example
/// ```no_run
/// use cache_backends::MemcachedBackend;
/// # #[tokio::main]
/// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
/// let backend = MemcachedBackend::builder()
///     .servers(["10.0.0.1:11211", "10.0.0.2:11211"])
///     .prefix("myapp:")
///     .build();
/// let cache = cache_core::Cache::builder().backend(backend).build();
/// cache.set("greeting", &"hello", None).await?;
/// # Ok(()) }
/// ```
#[derive(Clone)]
pub struct MemcachedBackend {
    inner: Arc<Inner>,
}

struct Inner {
    servers: Vec<Server>,
    keys: KeyMangler,
    timeout: Duration,
    policy: FailurePolicy,
}

struct Server {
    /// `host:port` as configured: the name rendezvous hashing scores.
    node: String,
    pool: Pool,
    health: Health,
}

impl std::fmt::Debug for MemcachedBackend {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let nodes: Vec<&str> = self.inner.servers.iter().map(|s| s.node.as_str()).collect();
        f.debug_struct("MemcachedBackend")
            .field("servers", &nodes)
            .field("timeout", &self.inner.timeout)
            .finish_non_exhaustive()
    }
}

/// Configures a [`MemcachedBackend`].
///
/// # Example
/// ```
/// use std::time::Duration;
/// let backend = cache_backends::MemcachedBackend::builder()
///     .servers(["127.0.0.1:11211"])
///     .pool_size(4)
///     .command_timeout(Duration::from_millis(200))
///     .retry_attempts(2)
///     .retry_timeout(Duration::from_secs(1))
///     .dead_timeout(Duration::from_secs(60))
///     .build();
/// # let _ = backend;
/// ```
#[derive(Debug, Clone)]
pub struct MemcachedBackendBuilder {
    servers: Vec<String>,
    prefix: String,
    pool_size: usize,
    timeout: Duration,
    policy: FailurePolicy,
}

impl MemcachedBackend {
    /// A builder: `127.0.0.1:11211`, no prefix, [`DEFAULT_POOL_SIZE`] connections per server,
    /// [`DEFAULT_COMMAND_TIMEOUT`], pymemcache's failure policy (2 retries 1 s apart, 60 s out of the ring).
    ///
    /// # Example
    /// ```
    /// let backend = cache_backends::MemcachedBackend::builder().build();
    /// # let _ = backend;
    /// ```
    pub fn builder() -> MemcachedBackendBuilder {
        MemcachedBackendBuilder {
            servers: vec!["127.0.0.1:11211".to_owned()],
            prefix: String::new(),
            pool_size: DEFAULT_POOL_SIZE,
            timeout: DEFAULT_COMMAND_TIMEOUT,
            policy: FailurePolicy::default(),
        }
    }

    /// The server that holds `key` (`host:port`), or `None` while every server is out of the ring.
    ///
    /// # Example
    /// ```
    /// let backend = cache_backends::MemcachedBackend::builder().servers(["a:1", "b:2"]).build();
    /// assert!(matches!(backend.server_for("user:1"), Some("a:1" | "b:2")));
    /// ```
    pub fn server_for(&self, key: &str) -> Option<&str> {
        self.route(key).map(|s| s.node.as_str())
    }

    fn route(&self, key: &str) -> Option<&Server> {
        let servers = &self.inner.servers;
        if let [only] = servers.as_slice() {
            return only
                .health
                .in_ring(&self.inner.policy, Instant::now)
                .then_some(only);
        }
        // One clock reading for the whole ring, and only if some server is in trouble.
        let now = std::cell::OnceCell::new();
        let live = servers
            .iter()
            .enumerate()
            .filter(|(_, s)| {
                s.health
                    .in_ring(&self.inner.policy, || *now.get_or_init(Instant::now))
            })
            .map(|(i, s)| (i, s.node.as_str()));
        ring::pick(live, key).map(|i| &servers[i])
    }

    fn wire_key<'k>(&self, key: &'k str) -> Cow<'k, str> {
        BackendLayer::key(&self.inner.keys, key)
    }

    /// Runs one exchange with the server of `key`; `None` when the server is skipped (failing, or no server in
    /// the ring): the caller answers its neutral value, as pymemcache does.
    async fn call(
        &self,
        server: &Server,
        request: impl FnOnce(&mut BytesMut),
        done: impl FnMut(Reply) -> Result<bool, BackendError>,
    ) -> Option<Result<(), BackendError>> {
        let policy = &self.inner.policy;
        if server.health.admit(policy, Instant::now) == Admission::Skip {
            tracing::debug!(server = %server.node, "memcached server failing; call skipped");
            return None;
        }
        let result = server.pool.run(request, self.inner.timeout, done).await;
        match &result {
            Err(BackendError::Connection(_) | BackendError::Timeout(_)) => {
                server.pool.drop_idle();
                server.health.failed(policy, Instant::now());
            }
            _ => server.health.succeeded(),
        }
        Some(result)
    }

    /// One request with one reply to the server of `key`: the reply, or `None` when the call was skipped.
    async fn one(
        &self,
        key: &str,
        write: impl FnOnce(&mut Requests<'_>, &str),
    ) -> Result<Option<Reply>, BackendError> {
        let Some(server) = self.route(key) else {
            return Ok(None);
        };
        let wire_key = self.wire_key(key);
        let mut answer = None;
        let result = self
            .call(
                server,
                |buf| write(&mut Requests(buf), &wire_key),
                |reply| {
                    answer = Some(reply);
                    Ok(true)
                },
            )
            .await;
        match result {
            None => Ok(None),
            Some(Err(error)) => Err(error),
            Some(Ok(())) => match answer {
                Some(Reply::Error(message)) => Err(server_error(&message)),
                other => Ok(other),
            },
        }
    }

    /// Positions of `keys` grouped by the server that holds them (skipping keys no server holds).
    fn group<'s>(&'s self, keys: &[&str]) -> Vec<(&'s Server, Vec<usize>)> {
        let mut groups: Vec<(&Server, Vec<usize>)> = Vec::new();
        for (i, key) in keys.iter().enumerate() {
            let Some(server) = self.route(key) else {
                continue;
            };
            match groups.iter_mut().find(|(s, _)| std::ptr::eq(*s, server)) {
                Some((_, positions)) => positions.push(i),
                None => groups.push((server, vec![i])),
            }
        }
        groups
    }
}

fn server_error(message: &str) -> BackendError {
    if message.contains("non-numeric") {
        BackendError::WrongType(message.to_owned())
    } else {
        BackendError::Other(format!("memcached: {message}"))
    }
}

fn unexpected(reply: &Reply) -> BackendError {
    BackendError::Other(format!("unexpected memcached reply {reply:?}"))
}

impl MemcachedBackendBuilder {
    /// The servers, as `host:port` (port 11211 when left out). Give every client the same list, spelled the
    /// same way: the names are what the hashing scores.
    ///
    /// # Example
    /// ```
    /// let builder = cache_backends::MemcachedBackend::builder().servers(["10.0.0.1:11211", "10.0.0.2"]);
    /// # let _ = builder;
    /// ```
    pub fn servers<I, S>(mut self, servers: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        self.servers = servers
            .into_iter()
            .map(|s| {
                let s = s.into();
                if s.rsplit_once(':')
                    .is_some_and(|(_, port)| port.parse::<u16>().is_ok())
                {
                    s
                } else {
                    format!("{s}:11211")
                }
            })
            .collect();
        self
    }

    /// Prepended to every key (end it with a separator: `app:`). Like pymemcache's `key_prefix`, it is not
    /// part of what picks the server.
    ///
    /// # Example
    /// ```
    /// let builder = cache_backends::MemcachedBackend::builder().prefix("app:");
    /// # let _ = builder;
    /// ```
    pub fn prefix(mut self, prefix: impl Into<String>) -> Self {
        self.prefix = prefix.into();
        self
    }

    /// Connections per server (default [`DEFAULT_POOL_SIZE`]); calls beyond it wait for one, within the
    /// command timeout.
    ///
    /// # Example
    /// ```
    /// let builder = cache_backends::MemcachedBackend::builder().pool_size(16);
    /// # let _ = builder;
    /// ```
    pub fn pool_size(mut self, size: usize) -> Self {
        self.pool_size = size.max(1);
        self
    }

    /// How long one call may take, waiting for a connection and connecting included (default
    /// [`DEFAULT_COMMAND_TIMEOUT`]).
    ///
    /// # Example
    /// ```
    /// let builder = cache_backends::MemcachedBackend::builder().command_timeout(std::time::Duration::from_millis(100));
    /// # let _ = builder;
    /// ```
    pub fn command_timeout(mut self, timeout: Duration) -> Self {
        self.timeout = timeout;
        self
    }

    /// How many retries a failing server gets before it leaves the ring (pymemcache's `retry_attempts`,
    /// default 2; 0 removes it at its first failure).
    ///
    /// # Example
    /// ```
    /// let builder = cache_backends::MemcachedBackend::builder().retry_attempts(0);
    /// # let _ = builder;
    /// ```
    pub fn retry_attempts(mut self, attempts: u32) -> Self {
        self.policy.retry_attempts = attempts;
        self
    }

    /// How long calls to a failing server are skipped before the next retry (pymemcache's `retry_timeout`,
    /// default 1 s).
    ///
    /// # Example
    /// ```
    /// let builder = cache_backends::MemcachedBackend::builder().retry_timeout(std::time::Duration::from_millis(500));
    /// # let _ = builder;
    /// ```
    pub fn retry_timeout(mut self, timeout: Duration) -> Self {
        self.policy.retry_timeout = timeout;
        self
    }

    /// How long a dead server stays out of the ring before it is tried again (pymemcache's `dead_timeout`,
    /// default 60 s).
    ///
    /// # Example
    /// ```
    /// let builder = cache_backends::MemcachedBackend::builder().dead_timeout(std::time::Duration::from_secs(10));
    /// # let _ = builder;
    /// ```
    pub fn dead_timeout(mut self, timeout: Duration) -> Self {
        self.policy.dead_timeout = timeout;
        self
    }

    /// Builds the backend. Nothing is connected yet: connections open on first use, so a server that is
    /// down at start-up costs misses, not a failed start.
    ///
    /// # Example
    /// ```
    /// let backend = cache_backends::MemcachedBackend::builder().build();
    /// # let _ = backend;
    /// ```
    pub fn build(self) -> MemcachedBackend {
        let servers = self
            .servers
            .into_iter()
            .map(|node| Server {
                pool: Pool::new(node.clone(), self.pool_size),
                node,
                health: Health::default(),
            })
            .collect();
        MemcachedBackend {
            inner: Arc::new(Inner {
                servers,
                keys: KeyMangler::memcached().prefix(self.prefix),
                timeout: self.timeout,
                policy: self.policy,
            }),
        }
    }
}

fn mode_flag(mode: SetMode) -> &'static str {
    match mode {
        SetMode::IfAbsent => "ME",
        SetMode::IfPresent => "MR",
        _ => "MS",
    }
}

#[async_trait]
impl Backend for MemcachedBackend {
    async fn get(&self, key: &str) -> Result<Option<Bytes>, BackendError> {
        match self.one(key, |r, k| r.meta_get(k, "v")).await? {
            Some(Reply::Value(data, _)) => Ok(Some(data)),
            None | Some(Reply::Miss) => Ok(None),
            Some(other) => Err(unexpected(&other)),
        }
    }

    async fn get_many(&self, keys: &[&str]) -> Result<Vec<Option<Bytes>>, BackendError> {
        let mut out: Vec<Option<Bytes>> = vec![None; keys.len()];
        let batches = self.group(keys).into_iter().map(|(server, positions)| {
            async move {
                let positions = &positions;
                let request = |buf: &mut BytesMut| {
                    let mut requests = Requests(buf);
                    for &i in positions {
                        // Quiet: misses send nothing; `mn` marks the end. The opaque is the key's position.
                        requests.meta_get(&self.wire_key(keys[i]), &format!("v q O{i}"));
                    }
                    requests.noop();
                };
                let mut found: Vec<(usize, Bytes)> = Vec::new();
                let mut failure = None;
                let result = self
                    .call(server, request, |reply| match reply {
                        Reply::Noop => Ok(true),
                        Reply::Value(data, flags) => {
                            let slot = flags.opaque.map(|o| o as usize);
                            match slot.filter(|s| positions.contains(s)) {
                                Some(slot) => found.push((slot, data)),
                                None => {
                                    return Err(BackendError::Other(
                                        "memcached answered a multi-get with an unknown opaque"
                                            .into(),
                                    ))
                                }
                            }
                            Ok(false)
                        }
                        Reply::Error(message) => {
                            failure = Some(server_error(&message));
                            Ok(false)
                        }
                        other => Err(unexpected(&other)),
                    })
                    .await;
                match (result, failure) {
                    (Some(Err(error)), _) | (_, Some(error)) => Err(error),
                    _ => Ok(found),
                }
            }
        });
        for batch in join_all(batches).await {
            for (slot, data) in batch? {
                out[slot] = Some(data);
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
        let flags = format!("T{} {}", ttl_token(ttl), mode_flag(mode));
        match self.one(key, |r, k| r.meta_set(k, &value, &flags)).await? {
            Some(Reply::Done(_)) => Ok(true),
            None | Some(Reply::NotStored | Reply::NotFound) => Ok(false),
            Some(other) => Err(unexpected(&other)),
        }
    }

    async fn set_many(
        &self,
        entries: &[(&str, Bytes)],
        ttl: Option<Duration>,
    ) -> Result<(), BackendError> {
        let keys: Vec<&str> = entries.iter().map(|(k, _)| *k).collect();
        let flags = format!("T{} q", ttl_token(ttl));
        let flags = &flags;
        let batches = self.group(&keys).into_iter().map(|(server, positions)| {
            let request = move |buf: &mut BytesMut| {
                let mut requests = Requests(buf);
                for &i in &positions {
                    let (key, value) = &entries[i];
                    requests.meta_set(&self.wire_key(key), value, flags);
                }
                requests.noop();
            };
            async move {
                let mut failure = None;
                // Quiet sets answer only when something went wrong.
                let result = self
                    .call(server, request, |reply| match reply {
                        Reply::Noop => Ok(true),
                        Reply::Error(message) => {
                            failure = Some(server_error(&message));
                            Ok(false)
                        }
                        _ => Ok(false),
                    })
                    .await;
                match (result, failure) {
                    (Some(Err(error)), _) | (_, Some(error)) => Err(error),
                    _ => Ok(()),
                }
            }
        });
        join_all(batches).await.into_iter().collect()
    }

    async fn delete(&self, key: &str) -> Result<bool, BackendError> {
        match self.one(key, |r, k| r.meta_delete(k, "")).await? {
            Some(Reply::Done(_)) => Ok(true),
            None | Some(Reply::NotFound) => Ok(false),
            Some(other) => Err(unexpected(&other)),
        }
    }

    async fn delete_many(&self, keys: &[&str]) -> Result<u64, BackendError> {
        let batches = self.group(keys).into_iter().map(|(server, positions)| {
            let expected = positions.len();
            let request = move |buf: &mut BytesMut| {
                let mut requests = Requests(buf);
                for &i in &positions {
                    requests.meta_delete(&self.wire_key(keys[i]), "");
                }
            };
            async move {
                let (mut replies, mut deleted) = (0, 0);
                let result = self
                    .call(server, request, |reply| {
                        replies += 1;
                        match reply {
                            Reply::Done(_) => deleted += 1,
                            Reply::NotFound | Reply::Error(_) => {}
                            other => return Err(unexpected(&other)),
                        }
                        Ok(replies == expected)
                    })
                    .await;
                match result {
                    Some(Err(error)) => Err(error),
                    _ => Ok(deleted),
                }
            }
        });
        let mut total = 0;
        for batch in join_all(batches).await {
            total += batch?;
        }
        Ok(total)
    }

    async fn incr(&self, key: &str, by: i64, ttl: Option<Duration>) -> Result<i64, BackendError> {
        // memcached counters are unsigned 64-bit: a decrement stops at 0. `N` creates a missing counter
        // with `J` as its value and the TTL; the delta applies only to an existing one.
        let (mode, initial) = if by >= 0 { ("MI", by) } else { ("MD", 0) };
        let flags = format!(
            "N{} J{initial} D{} {mode} v",
            ttl_token(ttl),
            by.unsigned_abs()
        );
        match self.one(key, |r, k| r.meta_arithmetic(k, &flags)).await? {
            Some(Reply::Value(data, _)) => std::str::from_utf8(&data)
                .ok()
                .and_then(|s| s.trim().parse::<i64>().ok())
                .ok_or_else(|| {
                    BackendError::WrongType(format!("memcached counter {key:?} is beyond i64"))
                }),
            None => Err(BackendError::Connection(
                "memcached server for this key is failing".into(),
            )),
            Some(other) => Err(unexpected(&other)),
        }
    }

    async fn expire(&self, key: &str, ttl: Duration) -> Result<bool, BackendError> {
        let flags = format!("T{}", ttl_token(Some(ttl)));
        match self.one(key, |r, k| r.meta_get(k, &flags)).await? {
            Some(Reply::Done(_)) => Ok(true),
            None | Some(Reply::Miss) => Ok(false),
            Some(other) => Err(unexpected(&other)),
        }
    }

    async fn persist(&self, key: &str) -> Result<bool, BackendError> {
        match self.one(key, |r, k| r.meta_get(k, "T0")).await? {
            Some(Reply::Done(_)) => Ok(true),
            None | Some(Reply::Miss) => Ok(false),
            Some(other) => Err(unexpected(&other)),
        }
    }

    async fn ttl(&self, key: &str) -> Result<KeyTtl, BackendError> {
        match self.one(key, |r, k| r.meta_get(k, "t")).await? {
            Some(Reply::Done(flags)) => Ok(match flags.ttl {
                // Less the second `ttl_token` adds, so a TTL reads back as at most what was set.
                Some(secs) if secs >= 0 => {
                    KeyTtl::Remaining(Duration::from_secs(secs.unsigned_abs().saturating_sub(1)))
                }
                _ => KeyTtl::Persistent,
            }),
            None | Some(Reply::Miss) => Ok(KeyTtl::Missing),
            Some(other) => Err(unexpected(&other)),
        }
    }

    async fn gets(&self, key: &str) -> Result<Option<(Bytes, CasToken)>, BackendError> {
        match self.one(key, |r, k| r.meta_get(k, "v c")).await? {
            Some(Reply::Value(data, flags)) => {
                let cas = flags.cas.ok_or_else(|| {
                    BackendError::Other("memcached sent no CAS value for mg … c".into())
                })?;
                Ok(Some((data, CasToken::new(cas))))
            }
            None | Some(Reply::Miss) => Ok(None),
            Some(other) => Err(unexpected(&other)),
        }
    }

    async fn cas(
        &self,
        key: &str,
        value: Bytes,
        token: CasToken,
        ttl: Option<Duration>,
    ) -> Result<CasOutcome, BackendError> {
        let flags = format!("T{} C{}", ttl_token(ttl), token.get());
        match self.one(key, |r, k| r.meta_set(k, &value, &flags)).await? {
            Some(Reply::Done(_)) => Ok(CasOutcome::Stored),
            Some(Reply::Exists) => Ok(CasOutcome::Exists),
            None | Some(Reply::NotFound | Reply::NotStored) => Ok(CasOutcome::NotFound),
            Some(other) => Err(unexpected(&other)),
        }
    }

    async fn unlock(&self, key: &str, token: &[u8]) -> Result<bool, BackendError> {
        let Some((held, cas)) = self.gets(key).await? else {
            return Ok(false);
        };
        if held.as_ref() != token {
            return Ok(false);
        }
        // Deleted only if nobody wrote the key since it was read.
        let flags = format!("C{}", cas.get());
        match self.one(key, |r, k| r.meta_delete(k, &flags)).await? {
            Some(Reply::Done(_)) => Ok(true),
            None | Some(Reply::Exists | Reply::NotFound) => Ok(false),
            Some(other) => Err(unexpected(&other)),
        }
    }

    async fn ping(&self) -> Result<(), BackendError> {
        for server in &self.inner.servers {
            let mut version = None;
            let result = server
                .pool
                .run(
                    |buf| Requests(buf).version(),
                    self.inner.timeout,
                    |reply| {
                        version = Some(reply);
                        Ok(true)
                    },
                )
                .await;
            match (result, version) {
                (Err(error), _) => return Err(error),
                (Ok(()), Some(Reply::Version(_))) => {}
                (Ok(()), other) => {
                    return Err(BackendError::Other(format!(
                        "{} answered version with {other:?}",
                        server.pool.address()
                    )))
                }
            }
        }
        Ok(())
    }

    async fn clear(&self) -> Result<(), BackendError> {
        // `flush_all` would clear every application sharing the servers; memcached cannot find one prefix's keys.
        Err(self.unsupported(Capabilities::SCAN))
    }

    fn name(&self) -> &'static str {
        "memcached"
    }

    fn capabilities(&self) -> Capabilities {
        Capabilities::COUNTERS | Capabilities::TTL | Capabilities::CAS | Capabilities::LOCKS
    }
}
