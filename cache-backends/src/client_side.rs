//! Client-side caching on Redis (`redis://…?client_side=true`, cashews' `client_side=True`): a local copy of
//! what this process read, kept consistent with Redis by RESP3 client tracking.
//!
//! A dedicated connection runs `CLIENT TRACKING ON BCAST PREFIX <key prefix> NOLOOP`: Redis then tells it about
//! every change to a key under the prefix — by any client, this process's own pool included, and when a key
//! expires or is evicted — and the local copy of that key is dropped.
//!
//! Never a copy that may have missed an invalidation:
//!
//! - The local tier is used only while tracking is armed. fred does not re-arm tracking after a reconnect, so on
//!   every connection event of the tracking connection (error, unresponsive, reconnect) the local copies are
//!   dropped and bypassed until `CLIENT TRACKING` succeeded again; a lagging invalidation stream (messages lost
//!   in fred's channel) drops every copy.
//! - A read that misses locally stores Redis' answer only if no invalidation of that key (or of everything) was
//!   handled meanwhile (the invalidation epochs it shares with the tiered cache).
//! - Local copies live at most `local_ttl` (default 60 s) and never past the value's own expiry, which the
//!   cache checks on every read; Redis also sends an invalidation when a key expires.
//!
//! A server that refuses `CLIENT TRACKING` (managed Redis with the command disabled, RESP2 only) gives a plain
//! Redis backend and one warning. Redis Cluster is refused with a clear error: every primary would need its own
//! tracking connection re-armed across failovers and resharding, which fred does not do; use a tiered cache
//! with a backplane there.

use std::sync::atomic::{AtomicBool, Ordering::SeqCst};
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use bytes::Bytes;
use cache_core::{
    Backend, BackendError, Capabilities, CasOutcome, CasToken, KeyTtl, MemoryBackend, SetMode,
};
use fred::clients::Client;
use fred::interfaces::{ClientLike, EventInterface, TrackingInterface};
use fred::types::config::Config;
use fred::types::{Builder, RespVersion};
use tokio::sync::broadcast::error::RecvError;
use tokio::task::JoinHandle;

use crate::epochs::Epochs;
use crate::{RedisBackend, SetupError};

/// How long a local copy is kept at most, unless configured otherwise.
pub const DEFAULT_LOCAL_TTL: Duration = Duration::from_secs(60);
/// Local copies kept at most, unless configured otherwise.
pub const DEFAULT_LOCAL_ENTRIES: usize = 10_000;

/// Redis with a local copy of what was read, kept consistent by client tracking. Build it with
/// [`ClientSideBackend::connect`] or from a `redis://…?client_side=true` URL.
///
/// # Example
/// ```no_run
/// # #[tokio::main]
/// # async fn main() -> Result<(), cache_backends::SetupError> {
/// let redis = cache_backends::RedisBackend::builder().url("redis://127.0.0.1:6379").key_prefix("app:");
/// let backend = cache_backends::ClientSideBackend::connect(redis, Default::default()).await?;
/// let cache = cache_core::Cache::builder().backend_arc(backend).build();
/// # let _ = cache; Ok(()) }
/// ```
pub struct ClientSideBackend {
    inner: Arc<Shared>,
    tasks: Vec<JoinHandle<()>>,
}

/// Settings of the local tier of a [`ClientSideBackend`].
///
/// ```
/// let options = cache_backends::ClientSideOptions {
///     local_ttl: std::time::Duration::from_secs(30),
///     ..Default::default()
/// };
/// # let _ = options;
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ClientSideOptions {
    /// The longest a local copy is kept ([`DEFAULT_LOCAL_TTL`]).
    pub local_ttl: Duration,
    /// The most local copies kept ([`DEFAULT_LOCAL_ENTRIES`]).
    pub local_entries: usize,
}

impl Default for ClientSideOptions {
    fn default() -> Self {
        Self {
            local_ttl: DEFAULT_LOCAL_TTL,
            local_entries: DEFAULT_LOCAL_ENTRIES,
        }
    }
}

struct Shared {
    redis: RedisBackend,
    tracker: Client,
    local: MemoryBackend,
    /// Tracking is on and no invalidation can have been missed since the local copies were last dropped.
    armed: AtomicBool,
    epochs: Epochs,
    prefix: String,
    local_ttl: Duration,
    /// The outcome of the latest attempt to arm tracking (none yet: `None`).
    attempts: tokio::sync::watch::Sender<Option<Result<(), fred::error::Error>>>,
}

impl std::fmt::Debug for ClientSideBackend {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ClientSideBackend")
            .field("prefix", &self.inner.prefix)
            .field("armed", &self.inner.armed.load(SeqCst))
            .finish_non_exhaustive()
    }
}

impl Drop for ClientSideBackend {
    fn drop(&mut self) {
        for task in &self.tasks {
            task.abort();
        }
        let tracker = self.inner.tracker.clone();
        if let Ok(runtime) = tokio::runtime::Handle::try_current() {
            runtime.spawn(async move {
                let _ = tracker.quit().await;
            });
        }
    }
}

impl Shared {
    fn invalidate(&self, key: &str) {
        self.epochs.invalidate(&self.local, key);
    }

    fn invalidate_everything(&self) {
        self.epochs.invalidate_everything(&self.local);
    }

    fn disarm(&self, why: &str) {
        if self.armed.swap(false, SeqCst) {
            tracing::warn!(
                why,
                "client-side cache bypassed until Redis tracking is re-armed"
            );
        }
        self.invalidate_everything();
    }

    async fn arm(&self) -> Result<(), fred::error::Error> {
        self.disarm("re-arming tracking");
        let prefixes: Vec<String> = if self.prefix.is_empty() {
            Vec::new()
        } else {
            vec![self.prefix.clone()]
        };
        self.tracker
            .start_tracking(prefixes, true, false, false, true)
            .await?;
        self.invalidate_everything();
        self.armed.store(true, SeqCst);
        Ok(())
    }

    fn local_key<'k>(&self, key: &'k str) -> Option<&'k str> {
        key.strip_prefix(self.prefix.as_str())
    }
}

impl ClientSideBackend {
    /// Connects Redis as `redis` describes it plus a tracking connection, and arms tracking. A server that
    /// refuses tracking gives the plain Redis backend (one warning); a cluster is an error.
    ///
    /// # Example
    /// See [`ClientSideBackend`].
    pub async fn connect(
        redis: crate::RedisBackendBuilder,
        options: ClientSideOptions,
    ) -> Result<Arc<dyn Backend>, SetupError> {
        let mut config: Config = redis.fred_config()?;
        let connect_timeout = redis.connect_timeout_value();
        let reconnect = redis.reconnect_policy_value();
        let backend = redis.build().await?;
        if backend.is_cluster() {
            return Err(SetupError::InvalidOption {
                name: "client_side".into(),
                value: "true".into(),
                reason: "client-side caching is not offered on Redis Cluster (tracking would have to be re-armed on \
                         every primary across failovers and resharding); use a tiered cache with a backplane"
                    .into(),
            });
        }
        config.version = RespVersion::RESP3;
        let tracker = Builder::from_config(config)
            .with_connection_config(|c| c.connection_timeout = connect_timeout)
            .set_policy(reconnect)
            .build()
            .map_err(|e| SetupError::Redis(e.to_string()))?;
        let shared = Arc::new(Shared {
            prefix: backend.key_prefix().to_owned(),
            redis: backend.clone(),
            tracker: tracker.clone(),
            local: MemoryBackend::builder()
                .max_entries(options.local_entries)
                .build(),
            armed: AtomicBool::new(false),
            epochs: Epochs::new(),
            local_ttl: options.local_ttl,
            attempts: tokio::sync::watch::channel(None).0,
        });
        let tasks = vec![watch_invalidations(&shared), watch_connection(&shared)];
        // Connects in the background (and reconnects under the Redis builder's policy); every (re)connect,
        // the first included, makes the connection watcher arm tracking.
        let mut attempts = shared.attempts.subscribe();
        let _connection = tracker.connect();
        let armed = tokio::time::timeout(connect_timeout, async {
            loop {
                if let Some(outcome) = attempts.borrow_and_update().clone() {
                    return outcome;
                }
                if attempts.changed().await.is_err() {
                    return Err(fred::error::Error::new_canceled());
                }
            }
        })
        .await;
        match armed {
            Ok(Ok(())) => {}
            Ok(Err(error)) if refused(&error) => {
                tracing::warn!(%error, "Redis refuses CLIENT TRACKING; client-side caching is off, plain Redis is used");
                for task in &tasks {
                    task.abort();
                }
                let _ = tracker.quit().await;
                return Ok(Arc::new(backend));
            }
            // Not reachable yet: the reconnect watcher arms tracking once it is.
            Ok(Err(error)) => {
                tracing::warn!(%error, "Redis tracking not armed yet; local copies bypassed")
            }
            Err(_) => tracing::warn!(
                "Redis tracking not armed within the connect timeout; local copies bypassed"
            ),
        }
        Ok(Arc::new(ClientSideBackend {
            inner: shared,
            tasks,
        }))
    }

    /// Whether local copies are being served (tracking armed).
    ///
    /// # Example
    /// ```no_run
    /// # async fn f(backend: &cache_backends::ClientSideBackend) {
    /// assert!(backend.is_armed());
    /// # }
    /// ```
    pub fn is_armed(&self) -> bool {
        self.inner.armed.load(SeqCst)
    }

    /// How many local copies are held.
    ///
    /// # Example
    /// ```no_run
    /// # async fn f(backend: &cache_backends::ClientSideBackend) {
    /// println!("{} local copies", backend.local_len());
    /// # }
    /// ```
    pub fn local_len(&self) -> usize {
        self.inner.local.len()
    }
}

fn refused(error: &fred::error::Error) -> bool {
    let text = error.details().to_ascii_lowercase();
    [
        "unknown command",
        "noperm",
        "no permissions",
        "resp3",
        "unknown subcommand",
        "hello",
    ]
    .iter()
    .any(|needle| text.contains(needle))
}

/// Drops local copies as Redis reports changes; drops everything when messages were lost.
fn watch_invalidations(shared: &Arc<Shared>) -> JoinHandle<()> {
    let mut rx = shared.tracker.invalidation_rx();
    let shared = Arc::downgrade(shared);
    tokio::spawn(async move {
        loop {
            let message = rx.recv().await;
            let Some(shared) = shared.upgrade() else {
                return;
            };
            match message {
                Ok(invalidation) if invalidation.keys.is_empty() => shared.invalidate_everything(),
                Ok(invalidation) => {
                    for key in &invalidation.keys {
                        match key.as_str().and_then(|k| shared.local_key(k)) {
                            Some(local) => shared.invalidate(local),
                            None => shared.invalidate_everything(),
                        }
                    }
                }
                Err(RecvError::Lagged(missed)) => {
                    tracing::warn!(
                        missed,
                        "Redis invalidations lagged; every local copy dropped"
                    );
                    shared.invalidate_everything();
                }
                Err(RecvError::Closed) => {
                    shared.disarm("the invalidation stream closed");
                    return;
                }
            }
        }
    })
}

/// Disarms on every connection event of the tracking connection and re-arms after each (re)connect.
fn watch_connection(shared: &Arc<Shared>) -> JoinHandle<()> {
    let mut reconnects = shared.tracker.reconnect_rx();
    let mut errors = shared.tracker.error_rx();
    let mut unresponsive = shared.tracker.unresponsive_rx();
    let shared = Arc::downgrade(shared);
    tokio::spawn(async move {
        loop {
            tokio::select! {
                event = reconnects.recv() => {
                    let Some(shared) = shared.upgrade() else { return };
                    if matches!(event, Err(RecvError::Closed)) { return; }
                    let outcome = shared.arm().await;
                    if let Err(error) = &outcome {
                        tracing::warn!(%error, "arming Redis tracking failed; local copies bypassed");
                    }
                    shared.attempts.send_replace(Some(outcome));
                }
                event = errors.recv() => {
                    let Some(shared) = shared.upgrade() else { return };
                    if matches!(event, Err(RecvError::Closed)) { return; }
                    shared.disarm("the tracking connection reported an error");
                }
                event = unresponsive.recv() => {
                    let Some(shared) = shared.upgrade() else { return };
                    if matches!(event, Err(RecvError::Closed)) { return; }
                    shared.disarm("the tracking connection is unresponsive");
                }
            }
        }
    })
}

impl ClientSideBackend {
    fn redis(&self) -> &RedisBackend {
        &self.inner.redis
    }

    /// A read from Redis, kept locally unless an invalidation of the key was handled meanwhile.
    async fn fetch(&self, key: &str) -> Result<Option<Bytes>, BackendError> {
        let shared = &self.inner;
        let before = shared.epochs.of(key);
        let value = self.redis().get(key).await?;
        if let Some(value) = &value {
            let armed = || shared.armed.load(SeqCst);
            shared
                .epochs
                .fill(&shared.local, key, value, shared.local_ttl, before, armed);
        }
        Ok(value)
    }

    /// Runs a write to Redis with the local copy of `key` dropped before and after it.
    async fn writing<T>(
        &self,
        key: &str,
        write: impl std::future::Future<Output = Result<T, BackendError>>,
    ) -> Result<T, BackendError> {
        self.inner.invalidate(key);
        let result = write.await;
        self.inner.invalidate(key);
        result
    }
}

#[async_trait]
impl Backend for ClientSideBackend {
    async fn get(&self, key: &str) -> Result<Option<Bytes>, BackendError> {
        if self.inner.armed.load(SeqCst)
            && let Some(value) = self.inner.local.get_sync(key)
        {
            return Ok(Some(value));
        }
        self.fetch(key).await
    }

    async fn get_many(&self, keys: &[&str]) -> Result<Vec<Option<Bytes>>, BackendError> {
        let mut out = Vec::with_capacity(keys.len());
        for key in keys {
            out.push(self.get(key).await?);
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
        self.writing(key, self.redis().set(key, value, ttl, mode))
            .await
    }

    async fn set_many(
        &self,
        entries: &[(&str, Bytes)],
        ttl: Option<Duration>,
    ) -> Result<(), BackendError> {
        for (key, _) in entries {
            self.inner.invalidate(key);
        }
        let result = self.redis().set_many(entries, ttl).await;
        for (key, _) in entries {
            self.inner.invalidate(key);
        }
        result
    }

    async fn delete(&self, key: &str) -> Result<bool, BackendError> {
        self.writing(key, self.redis().delete(key)).await
    }

    async fn delete_many(&self, keys: &[&str]) -> Result<u64, BackendError> {
        let result = self.redis().delete_many(keys).await;
        for key in keys {
            self.inner.invalidate(key);
        }
        result
    }

    async fn delete_match(&self, pattern: &str) -> Result<u64, BackendError> {
        let result = self.redis().delete_match(pattern).await;
        self.inner.invalidate_everything();
        result
    }

    async fn scan(&self, pattern: &str) -> Result<Vec<String>, BackendError> {
        self.redis().scan(pattern).await
    }

    async fn incr(&self, key: &str, by: i64, ttl: Option<Duration>) -> Result<i64, BackendError> {
        self.writing(key, self.redis().incr(key, by, ttl)).await
    }

    async fn expire(&self, key: &str, ttl: Duration) -> Result<bool, BackendError> {
        self.writing(key, self.redis().expire(key, ttl)).await
    }

    async fn ttl(&self, key: &str) -> Result<KeyTtl, BackendError> {
        self.redis().ttl(key).await
    }

    async fn persist(&self, key: &str) -> Result<bool, BackendError> {
        self.writing(key, self.redis().persist(key)).await
    }

    async fn gets(&self, key: &str) -> Result<Option<(Bytes, CasToken)>, BackendError> {
        self.redis().gets(key).await
    }

    async fn cas(
        &self,
        key: &str,
        value: Bytes,
        token: CasToken,
        ttl: Option<Duration>,
    ) -> Result<CasOutcome, BackendError> {
        self.writing(key, self.redis().cas(key, value, token, ttl))
            .await
    }

    async fn unlock(&self, key: &str, token: &[u8]) -> Result<bool, BackendError> {
        self.writing(key, self.redis().unlock(key, token)).await
    }

    async fn rate_limit(
        &self,
        key: &str,
        rule: cache_core::RateRule,
    ) -> Result<cache_core::RateDecision, BackendError> {
        self.writing(key, self.redis().rate_limit(key, rule)).await
    }

    async fn ping(&self) -> Result<(), BackendError> {
        self.redis().ping().await
    }

    async fn clear(&self) -> Result<(), BackendError> {
        let result = self.redis().clear().await;
        self.inner.invalidate_everything();
        result
    }

    async fn set_add(
        &self,
        key: &str,
        members: &[&str],
        ttl: Option<Duration>,
    ) -> Result<(), BackendError> {
        self.redis().set_add(key, members, ttl).await
    }

    async fn set_members(&self, key: &str) -> Result<Vec<String>, BackendError> {
        self.redis().set_members(key).await
    }

    async fn set_remove(&self, key: &str, members: &[&str]) -> Result<u64, BackendError> {
        self.redis().set_remove(key, members).await
    }

    fn name(&self) -> &'static str {
        "redis"
    }

    fn local_copies(&self) -> Option<&MemoryBackend> {
        self.inner.armed.load(SeqCst).then_some(&self.inner.local)
    }

    fn capabilities(&self) -> Capabilities {
        self.redis().capabilities()
    }
}
