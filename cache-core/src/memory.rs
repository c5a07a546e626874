//! The embedded in-memory backend: a sharded LRU with per-entry TTLs, bounded by entry count and optionally by
//! total bytes.

use std::any::Any;
use std::collections::{HashSet, VecDeque};
use std::time::Duration;

use clock::Instant;

use async_trait::async_trait;
use bytes::Bytes;
use lru::LruCache;
use parking_lot::Mutex;

use crate::backend::{Backend, BackendError, Capabilities, CasOutcome, CasToken, KeyTtl, SetMode};
use crate::glob::GlobMatcher;

/// Per-entry bookkeeping the byte bound charges on top of key and value lengths: the LRU node (key and value
/// headers, expiry, links: 144 bytes as allocated), its hash-table slot at the table's lowest load (about 40),
/// the shared header `Bytes` allocates for a value read at least once (32), and the allocator's rounding of the
/// key and value buffers (up to 2 x 24). Measured by `tests/memory_bounds.rs`.
const ENTRY_OVERHEAD: usize = 272;

/// Shards keep lock hold times short and let threads work in parallel; each holds at least this many entries so
/// a small cache is not cut into shards too small to be fair LRUs.
const MIN_ENTRIES_PER_SHARD: usize = 256;
const MAX_SHARDS: usize = 16;
/// Likewise for the byte bound: a shard's share of it must hold many entries, or big values would evict
/// everything in their shard while other shards sit half empty.
const MIN_BYTES_PER_SHARD: usize = 64 * 1024;

/// A bounded, thread-safe in-memory [`Backend`].
///
/// Entries expire lazily on access; in addition every shard sweeps out expired entries after a number of writes
/// proportional to its size, so expired entries never pile up even when they are never read again.
///
/// # Example
/// ```
/// use cache_core::{Backend, MemoryBackend, SetMode};
/// use std::time::Duration;
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), cache_core::BackendError> {
/// let backend = MemoryBackend::builder().max_entries(10_000).max_bytes(64 << 20).build();
/// backend.set("k", "v".into(), Some(Duration::from_secs(60)), SetMode::Always).await?;
/// assert!(backend.get("k").await?.is_some());
/// # Ok(()) }
/// ```
pub struct MemoryBackend {
    shards: Box<[Mutex<Shard>]>,
    /// `shards.len() - 1`; the shard count is a power of two.
    shard_mask: usize,
}

/// Configures a [`MemoryBackend`].
///
/// # Example
/// ```
/// let backend = cache_core::MemoryBackend::builder().max_entries(500).build();
/// ```
#[derive(Debug, Clone)]
pub struct MemoryBackendBuilder {
    max_entries: usize,
    max_bytes: Option<usize>,
}

impl Default for MemoryBackendBuilder {
    fn default() -> Self {
        Self {
            max_entries: MemoryBackend::DEFAULT_MAX_ENTRIES,
            max_bytes: None,
        }
    }
}

impl MemoryBackendBuilder {
    /// The most entries kept. Default 10 000. Zero is treated as one.
    ///
    /// Eviction is S3-FIFO-like: new keys wait in a small FIFO (a tenth of the cache) and leave it unless read
    /// meanwhile, so keys read once (a scan) never flush the keys read often; the main part is an LRU whose
    /// entries earn second chances by being read. On a Zipf-distributed trace it keeps as many hits as moka's
    /// W-TinyLFU and quick_cache's S3-FIFO, several points more than a plain LRU (`benches/compare.rs
    /// --eviction`). Hashes of keys recently evicted unread are kept too (8 bytes each plus their table slot, at
    /// most one per entry held), so a key that comes back goes straight to the main part.
    ///
    /// Memory grows with the entries actually held, not with this bound: a large `max_entries` costs nothing
    /// up front.
    ///
    /// ```
    /// let backend = cache_core::MemoryBackend::builder().max_entries(100_000_000).max_bytes(1 << 20).build();
    /// assert!(backend.is_empty());
    /// ```
    pub fn max_entries(mut self, max_entries: usize) -> Self {
        self.max_entries = max_entries.max(1);
        self
    }

    /// An upper bound on the memory the entries hold. Unbounded by default.
    ///
    /// Each entry is charged its key and value lengths, a fixed overhead for its bookkeeping (LRU node, table
    /// slot, allocator rounding), and, once a cached function has read it, an estimate of the decoded copy kept
    /// beside the bytes (see `get_typed`): the size Rust's layouts give the value's strings, vectors, maps and
    /// fields, erring high. A `Vec<u64>` of small numbers takes one byte per element stored and eight decoded,
    /// and is charged both. What is not charged: the shard tables' spare capacity after entries are evicted,
    /// and memory held by values a caller still owns after reading them. Kept within the bound, the process
    /// stays within about 1.5 x `max_bytes` of its size without the cache (`tests/memory_bounds.rs`).
    ///
    /// ```
    /// let backend = cache_core::MemoryBackend::builder().max_bytes(16 * 1024 * 1024).build();
    /// ```
    pub fn max_bytes(mut self, max_bytes: usize) -> Self {
        self.max_bytes = Some(max_bytes);
        self
    }

    /// Builds the backend.
    ///
    /// ```
    /// let backend = cache_core::MemoryBackend::builder().build();
    /// ```
    pub fn build(self) -> MemoryBackend {
        let by_bytes = self
            .max_bytes
            .map_or(MAX_SHARDS, |b| b / MIN_BYTES_PER_SHARD);
        let wanted = (self.max_entries / MIN_ENTRIES_PER_SHARD)
            .min(by_bytes)
            .clamp(1, MAX_SHARDS);
        // Round down to a power of two so a mask picks the shard.
        let count = 1usize << (usize::BITS - 1 - wanted.leading_zeros());
        let per_shard_entries = self.max_entries.div_ceil(count);
        let per_shard_bytes = self.max_bytes.map(|b| b.div_ceil(count));
        let shards = (0..count)
            .map(|_| Mutex::new(Shard::new(per_shard_entries, per_shard_bytes)))
            .collect();
        MemoryBackend {
            shards,
            shard_mask: count - 1,
        }
    }
}

impl Default for MemoryBackend {
    fn default() -> Self {
        Self::builder().build()
    }
}

impl std::fmt::Debug for MemoryBackend {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MemoryBackend")
            .field("shards", &self.shards.len())
            .field("len", &self.len())
            .finish()
    }
}

impl MemoryBackend {
    /// The entry bound used when none is given.
    pub const DEFAULT_MAX_ENTRIES: usize = 10_000;

    /// Starts configuring a backend.
    ///
    /// ```
    /// let backend = cache_core::MemoryBackend::builder().max_entries(1_000).build();
    /// ```
    pub fn builder() -> MemoryBackendBuilder {
        MemoryBackendBuilder::default()
    }

    /// Entries currently held, including expired ones not yet swept.
    ///
    /// ```
    /// assert_eq!(cache_core::MemoryBackend::default().len(), 0);
    /// ```
    pub fn len(&self) -> usize {
        self.shards.iter().map(|s| s.lock().map.len()).sum()
    }

    /// Whether no entries are held.
    ///
    /// ```
    /// assert!(cache_core::MemoryBackend::default().is_empty());
    /// ```
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Bytes currently charged against the byte bound.
    ///
    /// ```
    /// assert_eq!(cache_core::MemoryBackend::default().used_bytes(), 0);
    /// ```
    pub fn used_bytes(&self) -> usize {
        self.shards.iter().map(|s| s.lock().bytes).sum()
    }

    /// Drops every expired entry now (normally done incrementally on writes).
    ///
    /// ```
    /// cache_core::MemoryBackend::default().purge_expired();
    /// ```
    pub fn purge_expired(&self) {
        let now = clock::now();
        for shard in self.shards.iter() {
            shard.lock().sweep(now);
        }
    }

    /// [`Backend::get`] without the async wrapper (the memory backend never waits): for backends that keep a
    /// local tier in memory. A set under the key reads as absent.
    ///
    /// ```
    /// let memory = cache_core::MemoryBackend::default();
    /// memory.set_sync("k", "v".into(), None);
    /// assert_eq!(memory.get_sync("k").as_deref(), Some(&b"v"[..]));
    /// ```
    pub fn get_sync(&self, key: &str) -> Option<Bytes> {
        self.get_now(key).ok().flatten()
    }

    /// [`MemoryBackend::get_sync`] with the entry's remaining TTL (`None`: no expiry).
    ///
    /// ```
    /// let memory = cache_core::MemoryBackend::default();
    /// memory.set_sync("k", "v".into(), Some(std::time::Duration::from_secs(60)));
    /// let (_, left) = memory.get_with_ttl_sync("k").unwrap();
    /// assert!(left.unwrap() <= std::time::Duration::from_secs(60));
    /// ```
    pub fn get_with_ttl_sync(&self, key: &str) -> Option<(Bytes, Option<Duration>)> {
        let now = clock::now();
        let mut shard = self.shard(key).lock();
        let entry = shard.live(key, now)?;
        let value = entry.value.bytes(key).ok()?.clone();
        Some((value, entry.expires_at.map(|at| clock::until(at, now))))
    }

    /// [`Backend::set`] (always writing) without the async wrapper.
    ///
    /// ```
    /// let memory = cache_core::MemoryBackend::default();
    /// memory.set_sync("k", "v".into(), Some(std::time::Duration::from_secs(1)));
    /// assert_eq!(memory.len(), 1);
    /// ```
    pub fn set_sync(&self, key: &str, value: Bytes, ttl: Option<Duration>) {
        let now = clock::now();
        self.shard(key)
            .lock()
            .insert(key, Value::Bytes(value), deadline(now, ttl), now);
    }

    /// [`Backend::delete`] without the async wrapper. Returns whether a live entry was removed.
    ///
    /// ```
    /// let memory = cache_core::MemoryBackend::default();
    /// assert!(!memory.delete_sync("k"));
    /// ```
    pub fn delete_sync(&self, key: &str) -> bool {
        let now = clock::now();
        self.shard(key)
            .lock()
            .remove(key)
            .is_some_and(|e| e.is_live(now))
    }

    /// [`Backend::clear`] without the async wrapper.
    ///
    /// ```
    /// let memory = cache_core::MemoryBackend::default();
    /// memory.set_sync("k", "v".into(), None);
    /// memory.clear_sync();
    /// assert!(memory.is_empty());
    /// ```
    pub fn clear_sync(&self) {
        for shard in self.shards.iter() {
            let mut shard = shard.lock();
            shard.map.clear();
            shard.bytes = 0;
        }
    }

    /// [`Backend::get`] without the boxed future: the memory backend never waits, and the cache's hit path calls
    /// this directly.
    pub(crate) fn get_now(&self, key: &str) -> Result<Option<Bytes>, BackendError> {
        let now = clock::now();
        let mut shard = self.shard(key).lock();
        shard.live_value(key, now)
    }

    /// Reads `key` as a `T`: a clone of the entry's decoded copy when it holds one of type `T`, otherwise
    /// `decode` of its bytes, whose result is kept beside them for the next read. Decoding runs outside the shard
    /// lock; its result is kept only if the entry still holds the same bytes.
    ///
    /// `decode` returns the value and the bytes to charge for its copy (see `size::decoded_size_beside`).
    ///
    /// `form` identifies how the reader decodes (its codec and value layers): a copy decoded by one reader is
    /// served only to readers of the same form, so a cache that verifies signatures is never handed a value
    /// another cache over the same backend decoded without checking them.
    pub(crate) fn get_typed<T, D>(
        &self,
        key: &str,
        form: u64,
        decode: D,
    ) -> Result<TypedRead<T>, BackendError>
    where
        T: Clone + Send + Sync + 'static,
        D: FnOnce(&[u8]) -> Option<(T, usize)>,
    {
        let now = clock::now();
        let shard = self.shard(key);
        let bytes = {
            let mut shard = shard.lock();
            let Some(entry) = shard.map.get_mut(key) else {
                return Ok(TypedRead::Miss);
            };
            if !entry.is_live(now) {
                shard.remove(key);
                return Ok(TypedRead::Miss);
            }
            entry.touched();
            let copy = entry
                .decoded
                .as_ref()
                .filter(|_| entry.decoded_form == form)
                .and_then(|d| d.downcast_ref::<T>());
            if let Some(value) = copy {
                return Ok(TypedRead::Hit(value.clone()));
            }
            entry.value.bytes(key)?.clone()
        };
        let Some((value, size)) = decode(&bytes) else {
            return Ok(TypedRead::Unreadable);
        };
        let mut guard = shard.lock();
        let shard = &mut *guard;
        if let Some(entry) = shard.map.peek_mut(key) {
            let same = matches!(&entry.value, Value::Bytes(b) if b.as_ptr() == bytes.as_ptr() && b.len() == bytes.len());
            if same {
                let before = charge(key, entry);
                entry.decoded = Some(Box::new(value.clone()));
                entry.decoded_form = form;
                entry.decoded_bytes = size;
                shard.bytes = shard.bytes - before + charge(key, entry);
                shard.evict_over_budget();
            }
        }
        Ok(TypedRead::Hit(value))
    }

    fn shard(&self, key: &str) -> &Mutex<Shard> {
        let hash = xxhash_rust::xxh3::xxh3_64(key.as_bytes()) as usize;
        &self.shards[hash & self.shard_mask]
    }
}

struct Entry {
    value: Value,
    expires_at: Option<Instant>,
    /// A decoded copy of `value`, kept by [`MemoryBackend::get_typed`] so the next read of the same type clones
    /// it instead of decoding the bytes again. It lives and dies with the entry: any write replaces the entry.
    decoded: Option<Box<dyn Any + Send + Sync>>,
    /// What `decoded` is charged: its estimated size, 0 without one.
    decoded_bytes: usize,
    /// The form (codec and value layers) of the reader that decoded `decoded`; see `get_typed`.
    decoded_form: u64,
    /// Which write of its shard made this entry: the compare-and-set token ([`Backend::gets`]).
    version: u64,
    /// Reads since it was last passed over by eviction, up to [`MAX_HITS`]: its second chances.
    hits: u8,
}

/// The most second chances an entry can earn (two bits, as in S3-FIFO and CLOCK-Pro's frequency counters).
const MAX_HITS: u8 = 3;

/// The most entries one eviction passes over before it evicts the least recent regardless. Each pass spends a
/// read, so passes cost O(1) per read amortised; the bound only caps one insert's worst case.
const MAX_SECOND_CHANCES: usize = 1024;

impl Entry {
    fn touched(&mut self) {
        self.hits = (self.hits + 1).min(MAX_HITS);
    }
}

/// What [`MemoryBackend::get_typed`] found.
pub(crate) enum TypedRead<T> {
    Hit(T),
    Miss,
    /// The bytes are there but `decode` rejected them.
    Unreadable,
}

/// Like Redis, a key holds either a string of bytes or a set (the index behind tags).
enum Value {
    Bytes(Bytes),
    Set(HashSet<String>),
}

impl Value {
    fn charge(&self) -> usize {
        match self {
            Value::Bytes(b) => b.len(),
            // Each member: its text, and a `String` slot in the hash table at the table's lowest load.
            Value::Set(members) => members
                .iter()
                .map(|m| crate::size::allocation(m.len()) + 56)
                .sum(),
        }
    }

    fn bytes(&self, key: &str) -> Result<&Bytes, BackendError> {
        match self {
            Value::Bytes(b) => Ok(b),
            Value::Set(_) => Err(wrong_type(key, "a set")),
        }
    }
}

fn wrong_type(key: &str, what: &str) -> BackendError {
    BackendError::WrongType(format!("value at {key:?} is {what}"))
}

impl Entry {
    fn is_live(&self, now: Instant) -> bool {
        self.expires_at.is_none_or(|at| at > now)
    }
}

/// A shard's entries, kept S3-FIFO style: new keys enter a small FIFO (a tenth of the shard); one read there
/// earns a move to the main queue when the small one overflows, no read sends the key out and its hash to a ghost
/// list, and a key written again while its hash is in the ghost list goes straight to main. Main is an LRU whose
/// entries get second chances for their reads (see [`Store::pop_victim`]). So keys read once (a scan, a crawler)
/// pass through a tenth of the cache instead of flushing it, and keys read often stay.
///
/// Both queues are unbounded as far as `lru` knows (a bounded one allocates its full capacity up front); the
/// shard enforces its bounds.
struct Store {
    small: LruCache<String, Entry>,
    main: LruCache<String, Entry>,
    /// Hashes of keys evicted from `small` unread, oldest first, with a set to look them up.
    ghost: VecDeque<u64>,
    ghost_set: HashSet<u64>,
    small_target: usize,
}

fn key_hash(key: &str) -> u64 {
    xxhash_rust::xxh3::xxh3_64(key.as_bytes())
}

impl Store {
    fn new(max_entries: usize) -> Self {
        Self {
            small: LruCache::unbounded(),
            main: LruCache::unbounded(),
            ghost: VecDeque::new(),
            ghost_set: HashSet::new(),
            small_target: (max_entries / 10).max(1),
        }
    }

    fn len(&self) -> usize {
        self.small.len() + self.main.len()
    }

    fn clear(&mut self) {
        self.small.clear();
        self.main.clear();
        self.ghost.clear();
        self.ghost_set.clear();
    }

    /// Without touching the order.
    fn get(&self, key: &str) -> Option<&Entry> {
        self.main.peek(key).or_else(|| self.small.peek(key))
    }

    /// A read: promoted in main's LRU order; the small queue is a FIFO, so no move there.
    fn get_mut(&mut self, key: &str) -> Option<&mut Entry> {
        // One lookup for a hit in main (the common case): the fields are borrowed apart.
        let Self { main, small, .. } = self;
        match main.get_mut(key) {
            Some(entry) => Some(entry),
            None => small.peek_mut(key),
        }
    }

    fn peek_mut(&mut self, key: &str) -> Option<&mut Entry> {
        let Self { main, small, .. } = self;
        match main.peek_mut(key) {
            Some(entry) => Some(entry),
            None => small.peek_mut(key),
        }
    }

    fn pop_entry(&mut self, key: &str) -> Option<(String, Entry)> {
        self.main
            .pop_entry(key)
            .or_else(|| self.small.pop_entry(key))
    }

    /// Inserts or replaces; returns the entry replaced.
    fn push(&mut self, key: String, entry: Entry) -> Option<(String, Entry)> {
        if self.main.contains(key.as_str()) {
            return self.main.push(key, entry);
        }
        if self.small.contains(key.as_str()) {
            return self.small.push(key, entry);
        }
        let hash = key_hash(&key);
        if self.ghost_set.remove(&hash) {
            // Evicted unread not long ago and wanted again: it is worth a place in main. (Its hash stays in the
            // FIFO until it ages out; by then it may stand for nothing, which only ends a later ghost early.)
            return self.main.push(key, entry);
        }
        self.small.push(key, entry)
    }

    fn iter(&self) -> impl Iterator<Item = (&String, &Entry)> {
        self.main.iter().chain(self.small.iter())
    }

    /// The entry to evict. From the small FIFO while it holds more than its tenth (or main is empty): its oldest
    /// key moves to main if it was read, else it goes, remembered in the ghost list. From main otherwise: the
    /// least recently used key not read since eviction last passed it; one read meanwhile buys a second chance
    /// (moved to the recent end, the read forgotten). Passes over at most [`MAX_SECOND_CHANCES`] entries.
    fn pop_victim(&mut self) -> Option<(String, Entry)> {
        for _ in 0..MAX_SECOND_CHANCES {
            if self.small.len() > self.small_target || self.main.is_empty() {
                let (key, mut entry) = self.small.pop_lru()?;
                if entry.hits > 0 {
                    entry.hits = 0;
                    self.main.push(key, entry);
                    continue;
                }
                self.remember(&key);
                return Some((key, entry));
            }
            let (_, oldest) = self.main.peek_lru()?;
            if oldest.hits == 0 {
                return self.main.pop_lru();
            }
            let (key, mut entry) = self.main.pop_lru()?;
            entry.hits -= 1;
            self.main.push(key, entry);
        }
        self.main.pop_lru().or_else(|| self.small.pop_lru())
    }

    /// Adds an evicted key's hash to the ghost list, which holds at most as many hashes as there are entries.
    fn remember(&mut self, key: &str) {
        let hash = key_hash(key);
        if self.ghost_set.insert(hash) {
            self.ghost.push_back(hash);
        }
        let limit = self.len().max(64);
        while self.ghost.len() > limit {
            if let Some(old) = self.ghost.pop_front() {
                self.ghost_set.remove(&old);
            }
        }
    }
}

struct Shard {
    map: Store,
    max_entries: usize,
    bytes: usize,
    max_bytes: Option<usize>,
    writes_since_sweep: usize,
    /// Counts writes, numbering entries for compare-and-set; a key always lives in the same shard.
    writes: u64,
}

fn charge(key: &str, entry: &Entry) -> usize {
    key.len() + entry.value.charge() + entry.decoded_bytes + ENTRY_OVERHEAD
}

impl Shard {
    fn new(max_entries: usize, max_bytes: Option<usize>) -> Self {
        Self {
            map: Store::new(max_entries.max(1)),
            max_entries: max_entries.max(1),
            bytes: 0,
            max_bytes,
            writes_since_sweep: 0,
            writes: 0,
        }
    }

    /// A live entry's value, promoted in the LRU order; an expired one is removed on the way. One lookup on a
    /// hit, which is the hot path.
    fn live_value(&mut self, key: &str, now: Instant) -> Result<Option<Bytes>, BackendError> {
        match self.map.get_mut(key) {
            Some(entry) if entry.is_live(now) => {
                entry.touched();
                return entry.value.bytes(key).cloned().map(Some);
            }
            Some(_) => {}
            None => return Ok(None),
        }
        self.remove(key);
        Ok(None)
    }

    /// A live entry, promoted in the LRU order; an expired one is removed on the way.
    fn live(&mut self, key: &str, now: Instant) -> Option<&mut Entry> {
        let expired = !self.map.get(key)?.is_live(now);
        if expired {
            self.remove(key);
            return None;
        }
        let entry = self.map.get_mut(key)?;
        entry.touched();
        Some(entry)
    }

    fn remove(&mut self, key: &str) -> Option<Entry> {
        let (k, entry) = self.map.pop_entry(key)?;
        self.bytes -= charge(&k, &entry);
        Some(entry)
    }

    fn insert(&mut self, key: &str, value: Value, expires_at: Option<Instant>, now: Instant) {
        self.writes += 1;
        let entry = Entry {
            value,
            expires_at,
            decoded: None,
            decoded_bytes: 0,
            decoded_form: 0,
            version: self.writes,
            hits: 0,
        };
        self.bytes += charge(key, &entry);
        if let Some((old_key, old)) = self.map.push(key.to_owned(), entry) {
            // The previous value of this key.
            self.bytes -= charge(&old_key, &old);
        }
        while self.map.len() > self.max_entries {
            match self.map.pop_victim() {
                Some((k, e)) => self.bytes -= charge(&k, &e),
                None => break,
            }
        }
        self.evict_over_budget();
        self.writes_since_sweep += 1;
        // A full sweep costs O(len); doing it once per len/2 writes keeps it O(1) amortised per write.
        if self.writes_since_sweep >= (self.map.len() / 2).max(64) {
            self.sweep(now);
        }
    }

    fn evict_over_budget(&mut self) {
        if let Some(max) = self.max_bytes {
            while self.bytes > max {
                match self.map.pop_victim() {
                    Some((k, e)) => self.bytes -= charge(&k, &e),
                    None => break,
                }
            }
        }
    }

    fn sweep(&mut self, now: Instant) {
        self.writes_since_sweep = 0;
        let expired: Vec<String> = self
            .map
            .iter()
            .filter(|(_, e)| !e.is_live(now))
            .map(|(k, _)| k.clone())
            .collect();
        for key in expired {
            self.remove(&key);
        }
    }
}

fn deadline(now: Instant, ttl: Option<Duration>) -> Option<Instant> {
    ttl.and_then(|ttl| clock::after(now, ttl))
}

/// The backend's expiry clock: the kernel's coarse monotonic clock (`CLOCK_MONOTONIC_COARSE` on Linux), read in a
/// few nanoseconds instead of the tens a precise `Instant::now()` costs on every hit. Its resolution is a few
/// milliseconds (4 ms measured on the development machine), so entries expire within that of their TTL.
mod clock {
    use std::time::Duration;

    pub(super) type Instant = coarsetime::Instant;

    /// Longer TTLs mean "practically forever": the coarse clock's fixed-point durations hold 2^32 seconds.
    const FOREVER: Duration = Duration::from_secs(100 * 365 * 24 * 3600);

    pub(super) fn now() -> Instant {
        // Not `Instant::now()`: that also writes a process-wide "recent" timestamp, a shared write per hit.
        coarsetime::Instant::now_without_cache_update()
    }

    /// `ttl` after `now`; `None` when it is too far away to matter.
    pub(super) fn after(now: Instant, ttl: Duration) -> Option<Instant> {
        if ttl >= FOREVER {
            return None;
        }
        now.checked_add(coarsetime::Duration::from(ttl))
    }

    /// How long from `now` until `at` (zero once passed).
    pub(super) fn until(at: Instant, now: Instant) -> Duration {
        if at > now {
            (at - now).into()
        } else {
            Duration::ZERO
        }
    }
}

#[async_trait]
impl Backend for MemoryBackend {
    async fn get(&self, key: &str) -> Result<Option<Bytes>, BackendError> {
        self.get_now(key)
    }

    async fn get_many(&self, keys: &[&str]) -> Result<Vec<Option<Bytes>>, BackendError> {
        let now = clock::now();
        keys.iter()
            .map(|key| {
                let mut shard = self.shard(key).lock();
                // A set under one of the keys is not a value: read it as absent, like Redis MGET does.
                Ok(shard.live_value(key, now).unwrap_or(None))
            })
            .collect()
    }

    async fn set(
        &self,
        key: &str,
        value: Bytes,
        ttl: Option<Duration>,
        mode: SetMode,
    ) -> Result<bool, BackendError> {
        let now = clock::now();
        let mut shard = self.shard(key).lock();
        let exists = shard.live(key, now).is_some();
        let write = match mode {
            SetMode::Always => true,
            SetMode::IfAbsent => !exists,
            SetMode::IfPresent => exists,
        };
        if write {
            shard.insert(key, Value::Bytes(value), deadline(now, ttl), now);
        }
        Ok(write)
    }

    async fn set_many(
        &self,
        entries: &[(&str, Bytes)],
        ttl: Option<Duration>,
    ) -> Result<(), BackendError> {
        let now = clock::now();
        for (key, value) in entries {
            let mut shard = self.shard(key).lock();
            shard.insert(key, Value::Bytes(value.clone()), deadline(now, ttl), now);
        }
        Ok(())
    }

    async fn delete(&self, key: &str) -> Result<bool, BackendError> {
        Ok(self.delete_sync(key))
    }

    async fn delete_many(&self, keys: &[&str]) -> Result<u64, BackendError> {
        let mut deleted = 0;
        for key in keys {
            if self.delete(key).await? {
                deleted += 1;
            }
        }
        Ok(deleted)
    }

    async fn delete_match(&self, pattern: &str) -> Result<u64, BackendError> {
        let matcher = GlobMatcher::new(pattern);
        let now = clock::now();
        let mut deleted = 0;
        for shard in self.shards.iter() {
            let mut shard = shard.lock();
            let doomed: Vec<String> = shard
                .map
                .iter()
                .filter(|(k, _)| matcher.is_match(k))
                .map(|(k, _)| k.clone())
                .collect();
            for key in doomed {
                if shard.remove(&key).is_some_and(|e| e.is_live(now)) {
                    deleted += 1;
                }
            }
        }
        Ok(deleted)
    }

    async fn scan(&self, pattern: &str) -> Result<Vec<String>, BackendError> {
        let matcher = GlobMatcher::new(pattern);
        let now = clock::now();
        let mut keys = Vec::new();
        for shard in self.shards.iter() {
            let shard = shard.lock();
            keys.extend(
                shard
                    .map
                    .iter()
                    .filter(|(k, e)| e.is_live(now) && matcher.is_match(k))
                    .map(|(k, _)| k.clone()),
            );
        }
        Ok(keys)
    }

    async fn incr(&self, key: &str, by: i64, ttl: Option<Duration>) -> Result<i64, BackendError> {
        let now = clock::now();
        let mut shard = self.shard(key).lock();
        // Stored as decimal text, like Redis, so `get` of a counter reads the same on every backend.
        let (current, expires_at) = match shard.live(key, now) {
            Some(entry) => {
                let parsed = std::str::from_utf8(entry.value.bytes(key)?)
                    .ok()
                    .and_then(|s| s.parse::<i64>().ok())
                    .ok_or_else(|| wrong_type(key, "not an integer"))?;
                (parsed, entry.expires_at)
            }
            None => (0, deadline(now, ttl)),
        };
        let next = current
            .checked_add(by)
            .ok_or_else(|| BackendError::Invalid(format!("increment of {key:?} overflows")))?;
        shard.insert(
            key,
            Value::Bytes(Bytes::from(next.to_string())),
            expires_at,
            now,
        );
        Ok(next)
    }

    async fn expire(&self, key: &str, ttl: Duration) -> Result<bool, BackendError> {
        let now = clock::now();
        let mut shard = self.shard(key).lock();
        match shard.live(key, now) {
            Some(entry) => {
                entry.expires_at = deadline(now, Some(ttl));
                Ok(true)
            }
            None => Ok(false),
        }
    }

    async fn ttl(&self, key: &str) -> Result<KeyTtl, BackendError> {
        let now = clock::now();
        let mut shard = self.shard(key).lock();
        Ok(match shard.live(key, now) {
            None => KeyTtl::Missing,
            Some(Entry {
                expires_at: None, ..
            }) => KeyTtl::Persistent,
            Some(Entry {
                expires_at: Some(at),
                ..
            }) => KeyTtl::Remaining(clock::until(*at, now)),
        })
    }

    async fn persist(&self, key: &str) -> Result<bool, BackendError> {
        let now = clock::now();
        let mut shard = self.shard(key).lock();
        match shard.live(key, now) {
            Some(entry) => {
                entry.expires_at = None;
                Ok(true)
            }
            None => Ok(false),
        }
    }

    async fn gets(&self, key: &str) -> Result<Option<(Bytes, CasToken)>, BackendError> {
        let now = clock::now();
        let mut shard = self.shard(key).lock();
        match shard.live(key, now) {
            Some(entry) => Ok(Some((
                entry.value.bytes(key)?.clone(),
                CasToken::new(entry.version),
            ))),
            None => Ok(None),
        }
    }

    async fn cas(
        &self,
        key: &str,
        value: Bytes,
        token: CasToken,
        ttl: Option<Duration>,
    ) -> Result<CasOutcome, BackendError> {
        let now = clock::now();
        let mut shard = self.shard(key).lock();
        let Some(entry) = shard.live(key, now) else {
            return Ok(CasOutcome::NotFound);
        };
        if entry.version != token.get() {
            return Ok(CasOutcome::Exists);
        }
        // Replacing the entry drops its decoded copy with its old bytes.
        shard.insert(key, Value::Bytes(value), deadline(now, ttl), now);
        Ok(CasOutcome::Stored)
    }

    async fn unlock(&self, key: &str, token: &[u8]) -> Result<bool, BackendError> {
        let now = clock::now();
        let mut shard = self.shard(key).lock();
        let owned = shard
            .live(key, now)
            .is_some_and(|e| matches!(&e.value, Value::Bytes(b) if b.as_ref() == token));
        if owned {
            shard.remove(key);
        }
        Ok(owned)
    }

    async fn set_add(
        &self,
        key: &str,
        members: &[&str],
        ttl: Option<Duration>,
    ) -> Result<(), BackendError> {
        let now = clock::now();
        let mut shard = self.shard(key).lock();
        let existing = match shard.live(key, now).map(|e| e.expires_at) {
            Some(expires_at) => match shard.remove(key).map(|e| e.value) {
                Some(Value::Set(set)) => Some((set, expires_at)),
                Some(Value::Bytes(bytes)) => {
                    // Put the value back untouched before reporting the type clash.
                    shard.insert(key, Value::Bytes(bytes), expires_at, now);
                    return Err(wrong_type(key, "not a set"));
                }
                None => None,
            },
            None => None,
        };
        let wanted = deadline(now, ttl);
        let (mut set, expires_at) = match existing {
            // No TTL: persistent. A new set takes the TTL; an existing one only ever lives longer, so a tag
            // outlives every member registered under it.
            None => (HashSet::new(), wanted),
            Some((set, _)) if ttl.is_none() => (set, None),
            Some((set, None)) => (set, None),
            Some((set, Some(at))) => (set, wanted.map(|w| w.max(at))),
        };
        set.extend(members.iter().map(|m| (*m).to_owned()));
        shard.insert(key, Value::Set(set), expires_at, now);
        Ok(())
    }

    async fn set_members(&self, key: &str) -> Result<Vec<String>, BackendError> {
        let now = clock::now();
        let mut shard = self.shard(key).lock();
        match shard.live(key, now).map(|e| &e.value) {
            None => Ok(Vec::new()),
            Some(Value::Set(set)) => Ok(set.iter().cloned().collect()),
            Some(Value::Bytes(_)) => Err(wrong_type(key, "not a set")),
        }
    }

    async fn set_remove(&self, key: &str, members: &[&str]) -> Result<u64, BackendError> {
        let now = clock::now();
        let mut shard = self.shard(key).lock();
        let removed = match shard.live(key, now).map(|e| &mut e.value) {
            None => return Ok(0),
            Some(Value::Set(set)) => members.iter().filter(|m| set.remove(**m)).count(),
            Some(Value::Bytes(_)) => return Err(wrong_type(key, "not a set")),
        };
        // Members shrank: recompute the charge by re-inserting, and drop an empty set like Redis does.
        if let Some(entry) = shard.remove(key)
            && matches!(&entry.value, Value::Set(s) if !s.is_empty())
        {
            shard.insert(key, entry.value, entry.expires_at, now);
        }
        Ok(removed as u64)
    }

    async fn ping(&self) -> Result<(), BackendError> {
        Ok(())
    }

    async fn clear(&self) -> Result<(), BackendError> {
        self.clear_sync();
        Ok(())
    }

    fn name(&self) -> &'static str {
        "memory"
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

    fn b(s: &str) -> Bytes {
        Bytes::copy_from_slice(s.as_bytes())
    }

    #[test]
    fn keys_read_often_outlive_a_scan_of_keys_read_once() {
        // One shard's worth, so eviction order is one LRU's.
        let m = MemoryBackend::builder().max_entries(100).build();
        for i in 0..50 {
            m.set_sync(&format!("hot:{i}"), b("v"), None);
            for _ in 0..2 {
                assert!(m.get_sync(&format!("hot:{i}")).is_some());
            }
        }
        // A scan as large as the whole cache, of keys written once.
        for i in 0..100 {
            m.set_sync(&format!("scan:{i}"), b("v"), None);
        }
        let kept = (0..50)
            .filter(|i| m.get_sync(&format!("hot:{i}")).is_some())
            .count();
        // A plain LRU keeps none of them.
        assert_eq!(kept, 50, "hot keys lost to the scan");
        assert!(m.len() <= 100);
        // A new working set, read as much, replaces them once they are no longer read.
        for i in 0..400 {
            let key = format!("new:{i}");
            m.set_sync(&key, b("v"), None);
            m.get_sync(&key);
            m.get_sync(&key);
        }
        let left = (0..50)
            .filter(|i| m.get_sync(&format!("hot:{i}")).is_some())
            .count();
        assert_eq!(left, 0);
    }

    #[test]
    fn without_reads_eviction_is_least_recently_written_first() {
        let m = MemoryBackend::builder().max_entries(64).build();
        for i in 0..64 {
            m.set_sync(&format!("a:{i}"), b("v"), None);
        }
        for i in 0..8 {
            m.set_sync(&format!("b:{i}"), b("v"), None);
        }
        let gone: Vec<usize> = (0..64)
            .filter(|i| m.get_sync(&format!("a:{i}")).is_none())
            .collect();
        assert_eq!(gone, (0..8).collect::<Vec<_>>());
    }

    #[tokio::test]
    async fn set_modes_follow_existence() {
        let m = MemoryBackend::default();
        assert!(!m.set("k", b("1"), None, SetMode::IfPresent).await.unwrap());
        assert!(m.set("k", b("1"), None, SetMode::IfAbsent).await.unwrap());
        assert!(!m.set("k", b("2"), None, SetMode::IfAbsent).await.unwrap());
        assert!(m.set("k", b("3"), None, SetMode::IfPresent).await.unwrap());
        assert_eq!(m.get("k").await.unwrap(), Some(b("3")));
    }

    #[tokio::test]
    async fn entries_expire_and_ttl_reports_it() {
        let m = MemoryBackend::default();
        m.set(
            "k",
            b("v"),
            Some(Duration::from_millis(40)),
            SetMode::Always,
        )
        .await
        .unwrap();
        m.set("p", b("v"), None, SetMode::Always).await.unwrap();
        assert!(
            matches!(m.ttl("k").await.unwrap(), KeyTtl::Remaining(d) if d <= Duration::from_millis(40))
        );
        assert_eq!(m.ttl("p").await.unwrap(), KeyTtl::Persistent);
        tokio::time::sleep(Duration::from_millis(60)).await;
        assert_eq!(m.get("k").await.unwrap(), None);
        assert_eq!(m.ttl("k").await.unwrap(), KeyTtl::Missing);
        // An expired entry is not "deleted", and an expired lock cannot be released by its old token.
        assert!(!m.delete("k").await.unwrap());
    }

    #[tokio::test]
    async fn expired_entries_are_swept_without_reads() {
        let m = MemoryBackend::builder().max_entries(100_000).build();
        for i in 0..1_000 {
            m.set(
                &format!("old{i}"),
                b("v"),
                Some(Duration::from_millis(10)),
                SetMode::Always,
            )
            .await
            .unwrap();
        }
        tokio::time::sleep(Duration::from_millis(30)).await;
        for i in 0..2_000 {
            m.set(&format!("new{i}"), b("v"), None, SetMode::Always)
                .await
                .unwrap();
        }
        // Every shard has seen more than max(64, len/2) writes since the old entries expired.
        assert_eq!(m.scan("old*").await.unwrap().len(), 0);
        assert!(m.len() < 3_000, "expired entries piled up: {}", m.len());
    }

    #[tokio::test]
    async fn bounded_by_entries_and_bytes() {
        let m = MemoryBackend::builder().max_entries(10).build();
        for i in 0..100 {
            m.set(&format!("k{i}"), b("v"), None, SetMode::Always)
                .await
                .unwrap();
        }
        assert_eq!(m.len(), 10);
        assert!(m.get("k99").await.unwrap().is_some());
        assert!(m.get("k0").await.unwrap().is_none());

        let m = MemoryBackend::builder()
            .max_bytes(10 * (ENTRY_OVERHEAD + 2 + 100))
            .build();
        for i in 0..100 {
            m.set(
                &format!("k{i}"),
                Bytes::from(vec![0u8; 100]),
                None,
                SetMode::Always,
            )
            .await
            .unwrap();
        }
        assert!(m.used_bytes() <= 10 * (ENTRY_OVERHEAD + 2 + 100));
        assert!(m.get("k99").await.unwrap().is_some());
    }

    #[tokio::test]
    async fn glob_delete_and_scan() {
        let m = MemoryBackend::default();
        for k in ["user:1", "user:2", "user:10", "post:1", "user\\*x", "us?r"] {
            m.set(k, b("v"), None, SetMode::Always).await.unwrap();
        }
        let mut found = m.scan("user:?").await.unwrap();
        found.sort();
        assert_eq!(found, vec!["user:1", "user:2"]);
        assert_eq!(m.scan("user:[12]*").await.unwrap().len(), 3);
        assert_eq!(m.scan("user:[^1]").await.unwrap(), vec!["user:2"]);
        assert_eq!(m.scan("us\\?r").await.unwrap(), vec!["us?r"]);
        assert_eq!(m.delete_match("user:*").await.unwrap(), 3);
        let mut rest = m.scan("*").await.unwrap();
        rest.sort();
        assert_eq!(rest, vec!["post:1", "us?r", "user\\*x"]);
    }

    #[tokio::test]
    async fn incr_creates_with_ttl_and_rejects_non_integers() {
        let m = MemoryBackend::default();
        assert_eq!(
            m.incr("c", 5, Some(Duration::from_secs(60))).await.unwrap(),
            5
        );
        assert_eq!(m.incr("c", -2, None).await.unwrap(), 3);
        assert!(matches!(m.ttl("c").await.unwrap(), KeyTtl::Remaining(_)));
        assert_eq!(m.get("c").await.unwrap(), Some(b("3")));
        m.set("s", b("abc"), None, SetMode::Always).await.unwrap();
        assert!(matches!(
            m.incr("s", 1, None).await,
            Err(BackendError::WrongType(_))
        ));
    }

    #[tokio::test]
    async fn sets_hold_members_and_extend_their_ttl() {
        let m = MemoryBackend::default();
        m.set_add("tag", &["a", "b"], Some(Duration::from_millis(50)))
            .await
            .unwrap();
        m.set_add("tag", &["b", "c"], Some(Duration::from_secs(60)))
            .await
            .unwrap();
        m.set_add("tag", &["d"], Some(Duration::from_millis(1)))
            .await
            .unwrap();
        let mut members = m.set_members("tag").await.unwrap();
        members.sort();
        assert_eq!(members, vec!["a", "b", "c", "d"]);
        assert!(
            matches!(m.ttl("tag").await.unwrap(), KeyTtl::Remaining(d) if d > Duration::from_secs(50))
        );
        assert_eq!(m.set_remove("tag", &["a", "x"]).await.unwrap(), 1);
        assert!(matches!(
            m.get("tag").await,
            Err(BackendError::WrongType(_))
        ));
        m.set("plain", b("v"), None, SetMode::Always).await.unwrap();
        assert!(matches!(
            m.set_add("plain", &["a"], None).await,
            Err(BackendError::WrongType(_))
        ));
        assert_eq!(m.get("plain").await.unwrap(), Some(b("v")));
        assert_eq!(m.set_remove("tag", &["b", "c", "d"]).await.unwrap(), 3);
        assert_eq!(m.ttl("tag").await.unwrap(), KeyTtl::Missing);
    }

    #[tokio::test]
    async fn typed_reads_decode_once_per_write_and_never_serve_a_stale_copy() {
        let m = MemoryBackend::builder().max_bytes(1 << 20).build();
        let decodes = std::cell::Cell::new(0);
        let read = |key: &str| -> Option<String> {
            match m
                .get_typed::<String, _>(key, 0, |bytes| {
                    decodes.set(decodes.get() + 1);
                    let text = std::str::from_utf8(bytes).ok()?.to_owned();
                    let size = crate::size::decoded_size_beside(&text, 0);
                    Some((text, size))
                })
                .unwrap()
            {
                TypedRead::Hit(v) => Some(v),
                TypedRead::Miss | TypedRead::Unreadable => None,
            }
        };
        m.set("k", b("one"), None, SetMode::Always).await.unwrap();
        let bytes_before = m.used_bytes();
        assert_eq!(read("k").as_deref(), Some("one"));
        assert!(m.used_bytes() > bytes_before, "the decoded copy is charged");
        assert_eq!(read("k").as_deref(), Some("one"));
        assert_eq!(decodes.get(), 1, "the second read clones the decoded copy");
        m.set("k", b("two"), None, SetMode::Always).await.unwrap();
        assert_eq!(
            read("k").as_deref(),
            Some("two"),
            "a write drops the old copy"
        );
        assert_eq!(decodes.get(), 2);
        // Another type decodes from the bytes and keeps its own copy.
        let len = m
            .get_typed::<usize, _>("k", 0, |bytes| Some((bytes.len(), 8)))
            .unwrap();
        assert!(matches!(len, TypedRead::Hit(3)));
        assert!(matches!(
            m.get_typed::<usize, _>("k", 0, |_| None).unwrap(),
            TypedRead::Hit(3)
        ));
        assert!(matches!(
            m.get_typed::<u8, _>("k", 0, |_| None).unwrap(),
            TypedRead::Unreadable
        ));
        m.delete("k").await.unwrap();
        assert_eq!(
            m.used_bytes(),
            0,
            "charges of decoded copies are released with the entry"
        );
        assert_eq!(read("k"), None);
        m.set(
            "t",
            b("x"),
            Some(Duration::from_millis(20)),
            SetMode::Always,
        )
        .await
        .unwrap();
        assert_eq!(read("t").as_deref(), Some("x"));
        tokio::time::sleep(Duration::from_millis(40)).await;
        assert_eq!(read("t"), None, "a decoded copy expires with its entry");
    }

    #[tokio::test]
    async fn unlock_is_compare_and_delete() {
        let m = MemoryBackend::default();
        m.set(
            "lock",
            b("me"),
            Some(Duration::from_secs(5)),
            SetMode::IfAbsent,
        )
        .await
        .unwrap();
        assert!(!m.unlock("lock", b"you").await.unwrap());
        assert!(m.get("lock").await.unwrap().is_some());
        assert!(m.unlock("lock", b"me").await.unwrap());
        assert!(m.get("lock").await.unwrap().is_none());
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
    async fn concurrent_use_from_many_tasks() {
        let m = std::sync::Arc::new(MemoryBackend::builder().max_entries(100_000).build());
        let tasks: Vec<_> = (0..16)
            .map(|t| {
                let m = m.clone();
                tokio::spawn(async move {
                    for i in 0..500 {
                        let key = format!("t{t}:{i}");
                        m.set(&key, Bytes::from(key.clone()), None, SetMode::Always)
                            .await
                            .unwrap();
                        m.incr("shared", 1, None).await.unwrap();
                        assert_eq!(m.get(&key).await.unwrap().as_deref(), Some(key.as_bytes()));
                    }
                })
            })
            .collect();
        for t in tasks {
            t.await.unwrap();
        }
        assert_eq!(m.get("shared").await.unwrap(), Some(b("8000")));
        assert_eq!(m.len(), 16 * 500 + 1);
    }
}
