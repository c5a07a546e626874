//! Transactions (cashews `cache.transaction()`): the cache writes made inside one are buffered, visible to reads
//! inside it, and applied together when it succeeds — or dropped when it fails, panics or is cancelled.
//!
//! A transaction belongs to a [`context`](crate::context) scope, so it covers every cache written inside it (and
//! tasks started with [`context::spawn`](crate::context::spawn)); a transaction started inside another joins the
//! outer one, which alone commits. Buffered: `set`, `add`, `set_many`, `delete`, `delete_many`, `delete_match` and
//! the values cached functions store. Not buffered — they act at once, as they must to mean anything: counters,
//! compare-and-set, locks, rate limits, namespace clears, tag indexes (a tag index entry for a value that was
//! never committed is harmless: it names a missing key).

use std::collections::HashMap;
use std::future::Future;
use std::sync::atomic::{AtomicUsize, Ordering::Relaxed};
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use parking_lot::Mutex;

use crate::backend::SetMode;
use crate::cache::Cache;
use crate::glob::GlobMatcher;
use crate::toolkit::LockGuard;

/// How a transaction isolates its writes (cashews' `TransactionMode`).
///
/// ```
/// assert_eq!(cache_core::TransactionMode::default(), cache_core::TransactionMode::Fast);
/// ```
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum TransactionMode {
    /// Buffer and apply at commit; concurrent transactions writing one key both apply, the last commit winning.
    #[default]
    Fast,
    /// Also lock each written key (a lock shared by every process using the backend) from its first write until
    /// commit or rollback, so `Locked` transactions writing the same key run one after the other. Plain writes
    /// outside transactions are not held up.
    Locked,
}

/// Transactions running in this process: while there are none, reads and writes skip the scope lookup.
static ACTIVE: AtomicUsize = AtomicUsize::new(0);

/// One buffered write, in order.
enum Write {
    Set {
        cache: usize,
        key: String,
        bytes: Bytes,
        ttl: Option<Duration>,
        mode: SetMode,
    },
    Delete {
        cache: usize,
        key: String,
    },
    DeleteMatch {
        cache: usize,
        pattern: String,
    },
}

#[derive(Default)]
struct State {
    /// Set once committed or rolled back: later writes (from a task that outlived it) go straight through.
    closed: bool,
    log: Vec<Write>,
    /// The latest buffered value of each (cache, key): `None` for deleted, with the position of that write in
    /// `log`, so a later `delete_match` is seen to cover it.
    latest: HashMap<(usize, String), (usize, Option<Bytes>)>,
    patterns: Vec<(usize, usize, GlobMatcher)>,
    caches: HashMap<usize, Cache>,
    locks: HashMap<(usize, String), Option<LockGuard>>,
}

/// A transaction in progress; see the module docs.
pub(crate) struct Transaction {
    mode: TransactionMode,
    lock_ttl: Duration,
    lock_wait: Duration,
    state: Mutex<State>,
}

fn cache_id(cache: &Cache) -> usize {
    cache.identity()
}

impl Transaction {
    /// What this transaction holds for `key` of `cache`: `Some(Some(bytes))` written, `Some(None)` deleted,
    /// `None` untouched (read the backend).
    fn pending(&self, cache: &Cache, key: &str) -> Option<Option<Bytes>> {
        let id = cache_id(cache);
        let state = self.state.lock();
        if state.closed {
            return None;
        }
        let written = state.latest.get(&(id, key.to_owned()));
        let since = written.map_or(0, |(position, _)| position + 1);
        let matched_later = state
            .patterns
            .iter()
            .any(|(position, c, glob)| *c == id && *position >= since && glob.is_match(key));
        if matched_later {
            return Some(None);
        }
        written.map(|(_, value)| value.clone())
    }

    /// Takes the key's transaction lock in `Locked` mode (once per key). A lock that cannot be had in time, or a
    /// backend that fails, leaves the write unlocked (fail-open, logged).
    async fn lock_key(&self, cache: &Cache, key: &str) {
        if self.mode != TransactionMode::Locked {
            return;
        }
        let slot = (cache_id(cache), key.to_owned());
        {
            let mut state = self.state.lock();
            if state.closed || state.locks.contains_key(&slot) {
                return;
            }
            // Claimed before waiting, so a concurrent write of the same key in this transaction does not wait for
            // the lock this one is taking.
            state.locks.insert(slot.clone(), None);
        }
        let lock_key = format!("{key}:__tx_lock");
        let guard = match cache
            .lock(&lock_key, self.lock_ttl)
            .timeout(self.lock_wait)
            .await
        {
            Ok(guard) => guard,
            Err(error) => {
                tracing::warn!(key, %error, "transaction lock not taken; writing without it");
                return;
            }
        };
        let mut state = self.state.lock();
        if state.closed {
            // Finished while this write waited (a task that outlived the transaction): nothing to hold the lock
            // for; the guard's drop releases it.
            drop(state);
            drop(guard);
            return;
        }
        state.locks.insert(slot, Some(guard));
    }

    /// Buffers a write unless the transaction is already closed; returns whether it did.
    fn push(&self, cache: &Cache, write: Write) -> bool {
        let mut state = self.state.lock();
        if state.closed {
            return false;
        }
        let id = cache_id(cache);
        state.caches.entry(id).or_insert_with(|| cache.clone());
        let position = state.log.len();
        match &write {
            Write::Set { key, bytes, .. } => {
                state
                    .latest
                    .insert((id, key.clone()), (position, Some(bytes.clone())));
            }
            Write::Delete { key, .. } => {
                state.latest.insert((id, key.clone()), (position, None));
            }
            Write::DeleteMatch { pattern, .. } => {
                state
                    .patterns
                    .push((position, id, GlobMatcher::new(pattern)));
            }
        }
        state.log.push(write);
        true
    }

    /// Applies the buffered writes in order (failures are logged and counted by each cache, as everywhere), then
    /// releases the locks.
    async fn commit(&self) {
        let (log, caches, locks) = {
            let mut state = self.state.lock();
            state.closed = true;
            (
                std::mem::take(&mut state.log),
                std::mem::take(&mut state.caches),
                std::mem::take(&mut state.locks),
            )
        };
        for write in log {
            let (id, result) = match write {
                Write::Set {
                    cache,
                    key,
                    bytes,
                    ttl,
                    mode,
                } => (
                    cache,
                    match caches.get(&cache) {
                        Some(c) => c.write_direct(&key, bytes, ttl, mode).await.map(|_| ()),
                        None => Ok(()),
                    },
                ),
                Write::Delete { cache, key } => (
                    cache,
                    match caches.get(&cache) {
                        Some(c) => c.delete_direct(&key).await.map(|_| ()),
                        None => Ok(()),
                    },
                ),
                Write::DeleteMatch { cache, pattern } => (
                    cache,
                    match caches.get(&cache) {
                        Some(c) => c.delete_match_direct(&pattern).await.map(|_| ()),
                        None => Ok(()),
                    },
                ),
            };
            if let Err(error) = result {
                // Already logged and counted by the cache; the transaction goes on with the next write.
                tracing::debug!(cache = id, %error, "a transaction write failed at commit");
            }
        }
        release(locks).await;
    }

    async fn rollback(&self) {
        let locks = {
            let mut state = self.state.lock();
            state.closed = true;
            state.log.clear();
            state.latest.clear();
            state.patterns.clear();
            std::mem::take(&mut state.locks)
        };
        release(locks).await;
    }
}

async fn release(locks: HashMap<(usize, String), Option<LockGuard>>) {
    for guard in locks.into_values().flatten() {
        // A failed release is logged by the cache; the lock's TTL frees it.
        let _ = guard.release().await;
    }
}

/// Whether any transaction runs in this process: one relaxed load of a rarely written word, so the read and write
/// paths pay nothing else while none does.
#[inline]
pub(crate) fn any_running() -> bool {
    ACTIVE.load(Relaxed) != 0
}

/// Whether the current scope runs a transaction (cheap when none runs anywhere in the process).
pub(crate) fn in_scope() -> bool {
    current().is_some()
}

/// The transaction of the current scope, if one is running.
#[inline]
fn current() -> Option<Arc<Transaction>> {
    if !any_running() {
        return None;
    }
    crate::context::transaction_in_scope()
}

/// What the current transaction holds for `key` of `cache` (see [`Transaction::pending`]). Inlined so the read
/// paths pay one relaxed load while no transaction runs.
#[inline]
pub(crate) fn pending(cache: &Cache, key: &str) -> Option<Option<Bytes>> {
    current()?.pending(cache, key)
}

/// Buffers a set in the current transaction. `None` when there is none: write to the backend.
pub(crate) async fn buffer_set(
    cache: &Cache,
    key: &str,
    bytes: Bytes,
    ttl: Option<Duration>,
    mode: SetMode,
) -> Option<bool> {
    let tx = current()?;
    let written = match (mode, tx.pending(cache, key)) {
        (SetMode::Always, _) => true,
        (SetMode::IfAbsent, Some(value)) => value.is_none(),
        (SetMode::IfPresent, Some(value)) => value.is_some(),
        // Untouched by the transaction: the backend decides now; commit applies it in the same mode, so a key
        // written meanwhile by someone else is not overwritten by an `add`.
        (mode, None) => {
            let exists = cache.exists_direct(key).await;
            matches!(
                (mode, exists),
                (SetMode::IfAbsent, false) | (SetMode::IfPresent, true)
            )
        }
    };
    if !written {
        return Some(false);
    }
    tx.lock_key(cache, key).await;
    let mode = match mode {
        // An add after a delete in this transaction: the key is absent as far as the transaction is concerned.
        SetMode::IfAbsent if tx.pending(cache, key).is_some() => SetMode::Always,
        other => other,
    };
    let write = Write::Set {
        cache: cache_id(cache),
        key: key.to_owned(),
        bytes,
        ttl,
        mode,
    };
    tx.push(cache, write).then_some(true)
}

/// Buffers a delete in the current transaction; returns whether the key existed as the transaction sees it.
/// `None` when there is none.
pub(crate) async fn buffer_delete(cache: &Cache, key: &str) -> Option<bool> {
    let tx = current()?;
    let existed = match tx.pending(cache, key) {
        Some(value) => value.is_some(),
        None => cache.exists_direct(key).await,
    };
    tx.lock_key(cache, key).await;
    let write = Write::Delete {
        cache: cache_id(cache),
        key: key.to_owned(),
    };
    tx.push(cache, write).then_some(existed)
}

/// Buffers a `delete_match` in the current transaction. `None` when there is none.
pub(crate) fn buffer_delete_match(cache: &Cache, pattern: &str) -> Option<()> {
    let tx = current()?;
    let write = Write::DeleteMatch {
        cache: cache_id(cache),
        pattern: pattern.to_owned(),
    };
    tx.push(cache, write).then_some(())
}

/// Starts transactions; see [`Cache::transaction`] and [`context::transaction`](crate::context::transaction).
///
/// ```
/// use cache_core::TransactionMode;
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() {
/// let cache = cache_core::Cache::memory();
/// let tx = cache.transaction(TransactionMode::Locked).lock_ttl(std::time::Duration::from_secs(5));
/// tx.run(async { cache.set("k", &1u8, None).await }).await.unwrap();
/// # }
/// ```
#[derive(Debug, Clone, Copy)]
#[must_use = "a transaction runs only through `run`"]
pub struct TransactionBuilder {
    mode: TransactionMode,
    lock_ttl: Duration,
    lock_wait: Duration,
}

impl Default for TransactionBuilder {
    fn default() -> Self {
        Self {
            mode: TransactionMode::Fast,
            lock_ttl: Duration::from_secs(10),
            lock_wait: Duration::from_secs(10),
        }
    }
}

impl TransactionBuilder {
    /// In `Locked` mode: how long a key's lock lives if its holder dies (default 10 s).
    ///
    /// ```
    /// # let cache = cache_core::Cache::memory();
    /// let tx = cache.transaction(cache_core::TransactionMode::Locked).lock_ttl(std::time::Duration::from_secs(30));
    /// ```
    pub fn lock_ttl(mut self, ttl: Duration) -> Self {
        self.lock_ttl = ttl;
        self
    }

    /// In `Locked` mode: how long a write waits for another transaction's lock on its key (default 10 s); then
    /// it writes without it, with a warning.
    ///
    /// ```
    /// # let cache = cache_core::Cache::memory();
    /// let tx = cache.transaction(cache_core::TransactionMode::Locked).lock_wait(std::time::Duration::from_secs(1));
    /// ```
    pub fn lock_wait(mut self, wait: Duration) -> Self {
        self.lock_wait = wait;
        self
    }

    /// Runs `fut` as a transaction: its cache writes are applied when it returns `Ok`, dropped when it returns
    /// `Err`, panics or is cancelled. Inside another transaction, `fut` joins it instead.
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() {
    /// let cache = cache_core::Cache::memory();
    /// let failed: Result<(), &str> = cache.transaction(Default::default()).run(async {
    ///     cache.set("order:1", &"paid", None).await.unwrap();
    ///     assert_eq!(cache.get::<String>("order:1").await.unwrap().as_deref(), Some("paid"));
    ///     Err("payment declined")
    /// }).await;
    /// assert!(failed.is_err());
    /// assert_eq!(cache.get::<String>("order:1").await.unwrap(), None, "rolled back");
    /// # }
    /// ```
    pub async fn run<T, E, F>(self, fut: F) -> Result<T, E>
    where
        F: Future<Output = Result<T, E>>,
    {
        if in_scope() {
            return fut.await;
        }
        let tx = Arc::new(Transaction {
            mode: self.mode,
            lock_ttl: self.lock_ttl,
            lock_wait: self.lock_wait,
            state: Mutex::new(State::default()),
        });
        let _active = Active::enter();
        let out = crate::context::with_transaction(tx.clone(), fut).await;
        match &out {
            Ok(_) => tx.commit().await,
            Err(_) => tx.rollback().await,
        }
        out
    }
}

/// Counts a running transaction in [`ACTIVE`] until dropped (also on panic and cancellation).
struct Active;

impl Active {
    fn enter() -> Self {
        ACTIVE.fetch_add(1, Relaxed);
        Active
    }
}

impl Drop for Active {
    fn drop(&mut self) {
        ACTIVE.fetch_sub(1, Relaxed);
    }
}

impl Cache {
    /// A transaction in `mode`, run by [`TransactionBuilder::run`]: the cache writes inside it are buffered, seen
    /// by reads inside it, and applied together on `Ok`. It covers every cache written inside it, not only this
    /// one; counters, compare-and-set, locks and rate limits act at once.
    ///
    /// ```
    /// use cache_core::TransactionMode;
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() {
    /// let cache = cache_core::Cache::memory();
    /// cache.transaction(TransactionMode::Fast).run(async {
    ///     cache.set("a", &1u8, None).await?;
    ///     cache.set("b", &2u8, None).await?;
    ///     Ok::<_, cache_core::CacheError>(())
    /// }).await.unwrap();
    /// assert_eq!(cache.get::<u8>("b").await.unwrap(), Some(2));
    /// # }
    /// ```
    pub fn transaction(&self, mode: TransactionMode) -> TransactionBuilder {
        TransactionBuilder {
            mode,
            ..TransactionBuilder::default()
        }
    }
}
