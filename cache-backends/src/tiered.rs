//! A tiered cache (FusionCache's L1 + L2 + backplane): a memory tier in each process in front of a shared
//! backend, kept consistent across processes by a backplane.
//!
//! - Reads try L1, then L2 (filling L1 with the value, for at most `l1_ttl`).
//! - Writes and deletes go to L2 and drop the L1 copy here; the backplane tells every other process to drop
//!   its copy. Without a backplane another process's copy lives until its `l1_ttl` — choose a short one then.
//! - While the backplane is down (disconnected, not yet subscribed) L1 is bypassed, so no copy that may have
//!   missed an invalidation is served while L2 answers.
//! - Fail-safe: with `max_stale`, L1 keeps copies that long past their freshness (and while the backplane is
//!   down); when L2 fails they keep being served (logged), so an L2 outage does not turn into a stampede on the
//!   source. A value past its own TTL is never served (the cache checks every value's expiry).
//! - TTL jitter: `jitter` spreads the TTLs written to L2 (and L1) by up to that fraction, so entries written
//!   together do not all expire together.
//! - Auto-recovery: L2 writes and deletes that fail are queued (bounded, oldest dropped first) and replayed in
//!   order once L2 answers again, so L2 converges to what this process wrote.
//!
//! Fills race invalidations the way client-side caching's do, and are guarded the same way: a read notes the
//! key's invalidation epoch before asking L2 and keeps the answer only if no invalidation came meanwhile.

use std::collections::VecDeque;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering::SeqCst};
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use bytes::Bytes;
use cache_core::{
    Backend, BackendError, Capabilities, CasOutcome, CasToken, KeyTtl, MemoryBackend, SetMode,
};
use parking_lot::Mutex;
use tokio::task::JoinHandle;

use crate::epochs::Epochs;

/// What a backplane carries between processes.
///
/// ```
/// let message = cache_backends::tiered::BackplaneMessage::Key("user:1".into());
/// assert_eq!(message, cache_backends::tiered::BackplaneMessage::Key("user:1".into()));
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum BackplaneMessage {
    /// Drop the local copy of this key.
    Key(String),
    /// Drop every local copy.
    Everything,
}

/// What a backplane tells the tier it feeds.
///
/// ```
/// let event = cache_backends::tiered::BackplaneEvent::Down;
/// assert!(matches!(event, cache_backends::tiered::BackplaneEvent::Down));
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum BackplaneEvent {
    /// Another process changed something.
    Message(BackplaneMessage),
    /// Messages flow (again): local copies may be served.
    Up,
    /// Messages may have been lost: drop and bypass local copies until `Up`.
    Down,
}

/// Carries invalidations between the processes sharing an L2 (FusionCache's backplane). `RedisBackplane`
/// uses Redis pub/sub; implement this for another transport (NATS, a database's notifications, …).
///
/// ```
/// use cache_backends::tiered::{Backplane, BackplaneEvent, BackplaneMessage};
/// use cache_core::BackendError;
/// use tokio::sync::broadcast;
///
/// /// A backplane for the processes… of one process: for tests.
/// struct InProcess(broadcast::Sender<BackplaneEvent>);
///
/// #[cache_core::async_trait]
/// impl Backplane for InProcess {
///     async fn publish(&self, message: BackplaneMessage) -> Result<(), BackendError> {
///         let _ = self.0.send(BackplaneEvent::Message(message));
///         Ok(())
///     }
///     fn events(&self) -> broadcast::Receiver<BackplaneEvent> {
///         self.0.subscribe()
///     }
/// }
/// ```
#[async_trait]
pub trait Backplane: Send + Sync + 'static {
    /// Tells the other processes. A backplane should not hand a process its own messages back (they would drop
    /// the copy it just wrote, which fail-safe may need).
    async fn publish(&self, message: BackplaneMessage) -> Result<(), BackendError>;

    /// The events for this process: messages from the others, and whether messages flow.
    fn events(&self) -> tokio::sync::broadcast::Receiver<BackplaneEvent>;

    /// Whether messages flow now (a tier without this knowledge assumes they do once it sees `Up`).
    fn is_up(&self) -> bool {
        true
    }
}

/// The tier's settings.
///
/// ```
/// use std::time::Duration;
/// let options = cache_backends::tiered::TieredOptions {
///     l1_ttl: Duration::from_secs(30),
///     max_stale: Duration::from_secs(300),
///     jitter: 0.1,
///     ..Default::default()
/// };
/// # let _ = options;
/// ```
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct TieredOptions {
    /// How long an L1 copy is fresh (default 5 minutes; with no backplane, how long another process's write
    /// can go unseen here).
    pub l1_ttl: Duration,
    /// Fail-safe: how long past its freshness an L1 copy is kept to serve while L2 fails (default 0: off).
    pub max_stale: Duration,
    /// TTL jitter: TTLs written are shortened by a random fraction up to this (0 to 1; default 0).
    pub jitter: f64,
    /// Failed L2 writes kept for replay (default 10 000; 0 turns auto-recovery off).
    pub recovery_queue: usize,
    /// How often a non-empty replay queue probes L2 (default 1 s).
    pub recovery_interval: Duration,
    /// L1 entries at most (default 10 000).
    pub l1_entries: usize,
}

impl Default for TieredOptions {
    fn default() -> Self {
        Self {
            l1_ttl: Duration::from_secs(300),
            max_stale: Duration::ZERO,
            jitter: 0.0,
            recovery_queue: 10_000,
            recovery_interval: Duration::from_secs(1),
            l1_entries: 10_000,
        }
    }
}

/// An L2 write that failed, for replay.
#[derive(Debug, Clone)]
enum Pending {
    Set(String, Bytes, Option<Duration>),
    Delete(String),
}

/// L1 memory in front of any L2 backend, with an optional backplane. Build it with [`TieredBackend::new`].
///
/// # Example
/// ```
/// use std::sync::Arc;
/// use cache_backends::tiered::{TieredBackend, TieredOptions};
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), cache_core::CacheError> {
/// let l2: Arc<dyn cache_core::Backend> = Arc::new(cache_core::MemoryBackend::default()); // Redis, memcached, disk…
/// let tiered = TieredBackend::new(l2, None, TieredOptions::default());
/// let cache = cache_core::Cache::builder().backend(tiered).build();
/// cache.set("k", &1u8, None).await?;
/// assert_eq!(cache.get::<u8>("k").await?, Some(1));
/// # Ok(()) }
/// ```
pub struct TieredBackend {
    shared: Arc<Shared>,
    tasks: Vec<JoinHandle<()>>,
}

struct Shared {
    l1: MemoryBackend,
    l2: Arc<dyn Backend>,
    backplane: Option<Arc<dyn Backplane>>,
    options: TieredOptions,
    /// The backplane is up (or there is none): L1 copies may be served.
    usable: AtomicBool,
    epochs: Epochs,
    queue: Mutex<VecDeque<Pending>>,
    /// Writes this replay queue has dropped because it was full.
    dropped: AtomicU64,
}

impl std::fmt::Debug for TieredBackend {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TieredBackend")
            .field("l2", &self.shared.l2.name())
            .field("backplane", &self.shared.backplane.is_some())
            .field("options", &self.shared.options)
            .finish_non_exhaustive()
    }
}

impl Drop for TieredBackend {
    fn drop(&mut self) {
        for task in &self.tasks {
            task.abort();
        }
    }
}

impl Shared {
    fn epoch(&self, key: &str) -> u64 {
        self.epochs.of(key)
    }

    fn drop_local(&self, key: &str) {
        self.epochs.invalidate(&self.l1, key);
    }

    fn drop_everything(&self) {
        self.epochs.invalidate_everything(&self.l1);
    }

    /// `ttl` shortened by a random part of the jitter fraction.
    fn jittered(&self, ttl: Option<Duration>) -> Option<Duration> {
        let jitter = self.options.jitter.clamp(0.0, 1.0);
        let ttl = ttl?;
        if jitter == 0.0 {
            return Some(ttl);
        }
        let mut bytes = [0u8; 4];
        let _ = getrandom::fill(&mut bytes);
        let unit = f64::from(u32::from_le_bytes(bytes)) / f64::from(u32::MAX);
        Some(
            ttl.mul_f64(1.0 - jitter * unit)
                .max(Duration::from_millis(1)),
        )
    }

    /// How long an L1 copy of a value with L2 TTL `ttl` is kept: fresh for at most `l1_ttl` (never past the
    /// value's TTL), then `max_stale` more for fail-safe.
    fn l1_lifetime(&self, ttl: Option<Duration>) -> Duration {
        let fresh = ttl.map_or(self.options.l1_ttl, |t| t.min(self.options.l1_ttl));
        fresh + self.options.max_stale
    }

    /// An L1 copy and whether it may be served as a hit. A copy past its freshness, or one kept while the
    /// backplane is down (it may have missed an invalidation), is only for fail-safe: served when L2 fails.
    fn local(&self, key: &str) -> Option<(Bytes, bool)> {
        let usable = self.usable.load(SeqCst);
        if !usable && self.options.max_stale.is_zero() {
            return None;
        }
        let (value, left) = self.l1.get_with_ttl_sync(key)?;
        let fresh = usable && left.is_none_or(|left| left > self.options.max_stale);
        Some((value, fresh))
    }

    fn fill(&self, key: &str, value: &Bytes, ttl: Option<Duration>, before: u64) {
        let usable = || self.usable.load(SeqCst);
        self.epochs
            .fill(&self.l1, key, value, self.l1_lifetime(ttl), before, usable);
    }

    fn queue(&self, pending: Pending) {
        if self.options.recovery_queue == 0 {
            return;
        }
        let mut queue = self.queue.lock();
        // A newer write of a key supersedes a queued one (same order of effects, less to replay).
        let key = match &pending {
            Pending::Set(key, ..) | Pending::Delete(key) => key.clone(),
        };
        queue.retain(|p| !matches!(p, Pending::Set(k, ..) | Pending::Delete(k) if *k == key));
        if queue.len() >= self.options.recovery_queue {
            queue.pop_front();
            self.dropped.fetch_add(1, SeqCst);
        }
        queue.push_back(pending);
    }

    async fn publish(&self, message: BackplaneMessage) {
        if let Some(backplane) = &self.backplane
            && let Err(error) = backplane.publish(message).await
        {
            tracing::warn!(%error, "backplane publish failed; other processes keep their copies until l1_ttl");
        }
    }

    /// Replays queued writes in order while L2 answers.
    async fn replay(&self) {
        loop {
            let Some(next) = self.queue.lock().front().cloned() else {
                return;
            };
            let result = match &next {
                Pending::Set(key, value, ttl) => self
                    .l2
                    .set(key, value.clone(), *ttl, SetMode::Always)
                    .await
                    .map(drop),
                Pending::Delete(key) => self.l2.delete(key).await.map(drop),
            };
            if result.is_err() {
                return;
            }
            let mut queue = self.queue.lock();
            // Only if it is still the head (a newer write of the key may have replaced it meanwhile).
            let same = match (queue.front(), &next) {
                (Some(Pending::Set(a, ..)), Pending::Set(b, ..)) => a == b,
                (Some(Pending::Delete(a)), Pending::Delete(b)) => a == b,
                _ => false,
            };
            if same {
                queue.pop_front();
            }
        }
    }
}

impl TieredBackend {
    /// A tier over `l2`, with `backplane` to hear about other processes' writes (none: L1 copies live their
    /// `l1_ttl`). Spawns the backplane listener and the replay loop on the current Tokio runtime.
    ///
    /// # Example
    /// See [`TieredBackend`].
    pub fn new(
        l2: Arc<dyn Backend>,
        backplane: Option<Arc<dyn Backplane>>,
        options: TieredOptions,
    ) -> TieredBackend {
        let usable = backplane.as_ref().is_none_or(|b| b.is_up());
        let shared = Arc::new(Shared {
            l1: MemoryBackend::builder()
                .max_entries(options.l1_entries)
                .build(),
            l2,
            backplane,
            options,
            usable: AtomicBool::new(usable),
            epochs: Epochs::new(),
            queue: Mutex::new(VecDeque::new()),
            dropped: AtomicU64::new(0),
        });
        let mut tasks = vec![spawn_replay(&shared)];
        if let Some(backplane) = &shared.backplane {
            tasks.push(spawn_listener(&shared, backplane.events()));
        }
        TieredBackend { shared, tasks }
    }

    /// Failed L2 writes waiting for replay.
    ///
    /// # Example
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() {
    /// let l2: std::sync::Arc<dyn cache_core::Backend> = std::sync::Arc::new(cache_core::MemoryBackend::default());
    /// let tiered = cache_backends::tiered::TieredBackend::new(l2, None, Default::default());
    /// assert_eq!(tiered.pending_writes(), 0);
    /// # }
    /// ```
    pub fn pending_writes(&self) -> usize {
        self.shared.queue.lock().len()
    }

    /// Whether L1 copies are being served (the backplane is up, or there is none).
    ///
    /// # Example
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() {
    /// let l2: std::sync::Arc<dyn cache_core::Backend> = std::sync::Arc::new(cache_core::MemoryBackend::default());
    /// let tiered = cache_backends::tiered::TieredBackend::new(l2, None, Default::default());
    /// assert!(tiered.is_local_tier_on());
    /// # }
    /// ```
    pub fn is_local_tier_on(&self) -> bool {
        self.shared.usable.load(SeqCst)
    }

    /// How many L1 copies are held.
    ///
    /// # Example
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() {
    /// let l2: std::sync::Arc<dyn cache_core::Backend> = std::sync::Arc::new(cache_core::MemoryBackend::default());
    /// let tiered = cache_backends::tiered::TieredBackend::new(l2, None, Default::default());
    /// assert_eq!(tiered.local_len(), 0);
    /// # }
    /// ```
    pub fn local_len(&self) -> usize {
        self.shared.l1.len()
    }

    /// A write to L2: on failure, queued for replay (and reported as done: L1 and the queue hold it).
    async fn write_l2(&self, pending: Pending) -> Result<bool, BackendError> {
        let shared = &self.shared;
        let result = match &pending {
            Pending::Set(key, value, ttl) => {
                shared
                    .l2
                    .set(key, value.clone(), *ttl, SetMode::Always)
                    .await
            }
            Pending::Delete(key) => shared.l2.delete(key).await,
        };
        match result {
            Ok(done) => Ok(done),
            Err(error) if shared.options.recovery_queue > 0 && is_outage(&error) => {
                tracing::warn!(%error, "L2 write failed; queued for replay once L2 is back");
                shared.queue(pending);
                Ok(true)
            }
            Err(error) => Err(error),
        }
    }
}

fn is_outage(error: &BackendError) -> bool {
    matches!(
        error,
        BackendError::Connection(_) | BackendError::Timeout(_) | BackendError::CircuitOpen
    )
}

fn spawn_replay(shared: &Arc<Shared>) -> JoinHandle<()> {
    let weak = Arc::downgrade(shared);
    let interval = shared.options.recovery_interval;
    tokio::spawn(async move {
        loop {
            tokio::time::sleep(interval).await;
            let Some(shared) = weak.upgrade() else { return };
            if !shared.queue.lock().is_empty() {
                shared.replay().await;
            }
        }
    })
}

fn spawn_listener(
    shared: &Arc<Shared>,
    mut events: tokio::sync::broadcast::Receiver<BackplaneEvent>,
) -> JoinHandle<()> {
    use tokio::sync::broadcast::error::RecvError;
    let weak = Arc::downgrade(shared);
    tokio::spawn(async move {
        loop {
            let event = events.recv().await;
            let Some(shared) = weak.upgrade() else { return };
            match event {
                Ok(BackplaneEvent::Message(BackplaneMessage::Key(key))) => shared.drop_local(&key),
                Ok(BackplaneEvent::Message(BackplaneMessage::Everything)) => {
                    shared.drop_everything()
                }
                Ok(BackplaneEvent::Up) => {
                    shared.drop_everything();
                    shared.usable.store(true, SeqCst);
                }
                Ok(BackplaneEvent::Down) => {
                    shared.usable.store(false, SeqCst);
                    shared.epochs.bump_all();
                    if shared.options.max_stale.is_zero() {
                        shared.l1.clear_sync();
                    }
                    tracing::warn!("backplane down: local copies bypassed (kept only for fail-safe) until it is back");
                }
                Err(RecvError::Lagged(_)) => shared.drop_everything(),
                Err(RecvError::Closed) => {
                    shared.usable.store(false, SeqCst);
                    shared.drop_everything();
                    return;
                }
            }
        }
    })
}

#[async_trait]
impl Backend for TieredBackend {
    async fn get(&self, key: &str) -> Result<Option<Bytes>, BackendError> {
        let shared = &self.shared;
        let local = shared.local(key);
        if let Some((value, true)) = &local {
            return Ok(Some(value.clone()));
        }
        let before = shared.epoch(key);
        match shared.l2.get(key).await {
            Ok(Some(value)) => {
                shared.fill(key, &value, None, before);
                Ok(Some(value))
            }
            Ok(None) => {
                shared.drop_local(key);
                Ok(None)
            }
            Err(error) => match local {
                // Fail-safe: L2 is failing, the stale copy keeps serving.
                Some((stale, false)) => {
                    tracing::warn!(key, %error, "L2 failed; serving the local copy (fail-safe)");
                    Ok(Some(stale))
                }
                _ => Err(error),
            },
        }
    }

    async fn set(
        &self,
        key: &str,
        value: Bytes,
        ttl: Option<Duration>,
        mode: SetMode,
    ) -> Result<bool, BackendError> {
        let shared = &self.shared;
        let ttl = shared.jittered(ttl);
        shared.drop_local(key);
        // Noted before the write: another process's invalidation arriving while it runs means its value may be
        // newer than ours, so ours is not kept locally.
        let before = shared.epoch(key);
        let written = if mode == SetMode::Always {
            self.write_l2(Pending::Set(key.to_owned(), value.clone(), ttl))
                .await?
        } else {
            shared.l2.set(key, value.clone(), ttl, mode).await?
        };
        if written {
            shared.fill(key, &value, ttl, before);
            shared.publish(BackplaneMessage::Key(key.to_owned())).await;
        }
        Ok(written)
    }

    async fn delete(&self, key: &str) -> Result<bool, BackendError> {
        self.shared.drop_local(key);
        let deleted = self.write_l2(Pending::Delete(key.to_owned())).await;
        self.shared.drop_local(key);
        self.shared
            .publish(BackplaneMessage::Key(key.to_owned()))
            .await;
        deleted
    }

    async fn delete_match(&self, pattern: &str) -> Result<u64, BackendError> {
        let result = self.shared.l2.delete_match(pattern).await;
        self.shared.drop_everything();
        self.shared.publish(BackplaneMessage::Everything).await;
        result
    }

    async fn scan(&self, pattern: &str) -> Result<Vec<String>, BackendError> {
        self.shared.l2.scan(pattern).await
    }

    async fn incr(&self, key: &str, by: i64, ttl: Option<Duration>) -> Result<i64, BackendError> {
        self.shared.drop_local(key);
        let result = self.shared.l2.incr(key, by, ttl).await;
        self.shared.drop_local(key);
        self.shared
            .publish(BackplaneMessage::Key(key.to_owned()))
            .await;
        result
    }

    async fn expire(&self, key: &str, ttl: Duration) -> Result<bool, BackendError> {
        self.shared.drop_local(key);
        let result = self.shared.l2.expire(key, ttl).await;
        self.shared
            .publish(BackplaneMessage::Key(key.to_owned()))
            .await;
        result
    }

    async fn ttl(&self, key: &str) -> Result<KeyTtl, BackendError> {
        self.shared.l2.ttl(key).await
    }

    async fn persist(&self, key: &str) -> Result<bool, BackendError> {
        self.shared.drop_local(key);
        let result = self.shared.l2.persist(key).await;
        self.shared
            .publish(BackplaneMessage::Key(key.to_owned()))
            .await;
        result
    }

    async fn gets(&self, key: &str) -> Result<Option<(Bytes, CasToken)>, BackendError> {
        self.shared.l2.gets(key).await
    }

    async fn cas(
        &self,
        key: &str,
        value: Bytes,
        token: CasToken,
        ttl: Option<Duration>,
    ) -> Result<CasOutcome, BackendError> {
        self.shared.drop_local(key);
        let result = self.shared.l2.cas(key, value, token, ttl).await;
        self.shared.drop_local(key);
        self.shared
            .publish(BackplaneMessage::Key(key.to_owned()))
            .await;
        result
    }

    async fn unlock(&self, key: &str, token: &[u8]) -> Result<bool, BackendError> {
        self.shared.l2.unlock(key, token).await
    }

    async fn rate_limit(
        &self,
        key: &str,
        rule: cache_core::RateRule,
    ) -> Result<cache_core::RateDecision, BackendError> {
        // Limits are shared state of L2; an L1 copy of a counter would only go stale.
        self.shared.l2.rate_limit(key, rule).await
    }

    async fn ping(&self) -> Result<(), BackendError> {
        self.shared.l2.ping().await
    }

    async fn clear(&self) -> Result<(), BackendError> {
        let result = self.shared.l2.clear().await;
        self.shared.drop_everything();
        self.shared.publish(BackplaneMessage::Everything).await;
        result
    }

    async fn set_add(
        &self,
        key: &str,
        members: &[&str],
        ttl: Option<Duration>,
    ) -> Result<(), BackendError> {
        self.shared.l2.set_add(key, members, ttl).await
    }

    async fn set_members(&self, key: &str) -> Result<Vec<String>, BackendError> {
        self.shared.l2.set_members(key).await
    }

    async fn set_remove(&self, key: &str, members: &[&str]) -> Result<u64, BackendError> {
        self.shared.l2.set_remove(key, members).await
    }

    fn name(&self) -> &'static str {
        self.shared.l2.name()
    }

    fn local_copies(&self) -> Option<&MemoryBackend> {
        // Served directly only when every L1 copy is fresh by construction (no fail-safe stale copies).
        (self.shared.options.max_stale.is_zero() && self.shared.usable.load(SeqCst))
            .then_some(&self.shared.l1)
    }

    fn capabilities(&self) -> Capabilities {
        self.shared.l2.capabilities()
    }
}
