//! Invalidation epochs for the local tiers (client-side Redis, tiered): how a read that missed locally knows
//! whether an invalidation of its key was handled while it asked the remote backend.
//!
//! A read notes [`Epochs::of`] its key before asking, stores the answer locally, then checks the epoch again and
//! drops what it stored if it moved. An invalidation bumps the epoch first and drops the local copy second. So
//! whichever order the two interleave in, a copy that an invalidation should have removed is removed.

use std::sync::atomic::{AtomicU64, Ordering::SeqCst};
use std::time::Duration;

use bytes::Bytes;
use cache_core::MemoryBackend;

/// Epochs are kept per slot of keys: a slot's counter moves when any of its keys is invalidated.
const SLOTS: usize = 1024;

pub(crate) struct Epochs {
    /// Moves when every local copy is dropped.
    everything: AtomicU64,
    slots: Box<[AtomicU64]>,
}

impl Epochs {
    pub(crate) fn new() -> Self {
        Self {
            everything: AtomicU64::new(0),
            slots: (0..SLOTS).map(|_| AtomicU64::new(0)).collect(),
        }
    }

    fn slot(&self, key: &str) -> &AtomicU64 {
        &self.slots[(xxhash_rust::xxh3::xxh3_64(key.as_bytes()) as usize) % SLOTS]
    }

    /// The epoch of `key` now.
    pub(crate) fn of(&self, key: &str) -> u64 {
        self.everything.load(SeqCst) + self.slot(key).load(SeqCst)
    }

    /// Drops the local copy of `key`, moving its epoch first.
    pub(crate) fn invalidate(&self, local: &MemoryBackend, key: &str) {
        self.slot(key).fetch_add(1, SeqCst);
        local.delete_sync(key);
    }

    /// Moves every epoch (the local copies are the caller's to drop or keep).
    pub(crate) fn bump_all(&self) {
        self.everything.fetch_add(1, SeqCst);
    }

    /// Drops every local copy, moving every epoch first.
    pub(crate) fn invalidate_everything(&self, local: &MemoryBackend) {
        self.bump_all();
        local.clear_sync();
    }

    /// Stores `value` locally for `ttl` unless `key`'s epoch moved since `before` or `usable` says the local
    /// tier is off (checked after storing: see the module docs).
    pub(crate) fn fill(
        &self,
        local: &MemoryBackend,
        key: &str,
        value: &Bytes,
        ttl: Duration,
        before: u64,
        usable: impl Fn() -> bool,
    ) {
        if !usable() {
            return;
        }
        local.set_sync(key, value.clone(), Some(ttl));
        if self.of(key) != before || !usable() {
            local.delete_sync(key);
        }
    }
}
