//! `get_or_set_many`: dogpile's `get_or_create_multi` — many keys, one body call for the missing ones, single
//! flight per key across concurrent callers.

use std::collections::HashMap;
use std::future::Future;
use std::time::Duration;

use bytes::Bytes;

use crate::cache::Cache;
use crate::context::{self, Ops};
use crate::envelope::EnvelopeMeta;
use crate::error::CacheError;
use crate::shape::Storable;
use crate::singleflight::{self, Leader, Outcome, Role};

impl Cache {
    /// Returns the values of `keys` in request order, computing the missing ones with one call of `compute`.
    ///
    /// `compute` gets the keys to compute (each once, in request order) and returns their values in that order.
    /// Keys another caller is computing right now are not computed again: this call waits for that caller's
    /// values (single flight per key, as [`Cache::get_or_set`]). `compute` runs a second time only for keys
    /// whose other caller stored nothing (its result was not cacheable, or it was cancelled). Fails open: a
    /// backend failure is logged and the values are computed. The only error is a `compute` that returns a
    /// different number of values than keys ([`CacheError::BodyMismatch`]).
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() {
    /// let cache = cache_core::Cache::memory();
    /// cache.set("user:2", &"bob".to_owned(), None).await.unwrap();
    /// let names = cache
    ///     .get_or_set_many(&["user:1", "user:2", "user:3"], None, |missing| async move {
    ///         assert_eq!(missing, ["user:1", "user:3"]); // one call, only what the cache lacks
    ///         missing.iter().map(|key| format!("name of {key}")).collect::<Vec<String>>()
    ///     })
    ///     .await
    ///     .unwrap();
    /// assert_eq!(names, ["name of user:1", "bob", "name of user:3"]);
    /// # }
    /// ```
    pub async fn get_or_set_many<T, F, Fut>(
        &self,
        keys: &[&str],
        ttl: Option<Duration>,
        compute: F,
    ) -> Result<Vec<T>, CacheError>
    where
        T: Storable,
        F: Fn(Vec<String>) -> Fut,
        Fut: Future<Output = Vec<T>>,
    {
        // Each distinct key once: a key asked for twice must not wait for its own flight.
        let mut position: HashMap<&str, usize> = HashMap::new();
        let mut unique: Vec<&str> = Vec::new();
        for key in keys {
            position.entry(key).or_insert_with(|| {
                unique.push(key);
                unique.len() - 1
            });
        }
        let flags = context::flags();
        let epoch = self.inner.flights.ended();
        // Fail open: an unreadable backend (already logged and counted) leaves every key to compute.
        let mut values: Vec<Option<T>> = self
            .get_many::<T>(&unique)
            .await
            .unwrap_or_else(|_| unique.iter().map(|_| None).collect());

        let mut leading: Vec<(usize, Leader<'_>)> = Vec::new();
        let mut following = Vec::new();
        for (i, key) in unique.iter().enumerate() {
            if values[i].is_none() {
                match self.inner.flights.join(key) {
                    Role::Leader(leader) => leading.push((i, leader)),
                    Role::Follower(rx) => following.push((i, rx)),
                }
            }
        }
        // A flight that ended since our read may have stored some of the keys we now lead.
        if flags.allows(Ops::GET) && self.inner.flights.ended() != epoch {
            let mut still = Vec::new();
            for (i, leader) in leading {
                match self.read_raw(unique[i]).await {
                    Ok(Some(bytes)) => match self.decode_or_miss::<T>(unique[i], &bytes) {
                        Some((_, value)) => {
                            values[i] = Some(value);
                            leader.finish(Some(bytes));
                        }
                        None => still.push((i, leader)),
                    },
                    _ => still.push((i, leader)),
                }
            }
            leading = still;
        }
        self.compute_and_store(&unique, &mut values, leading, ttl, flags, &compute)
            .await?;

        // Then the keys other callers were computing: after ours, so two callers waiting on each other's keys
        // both finish.
        let mut leftover = Vec::new();
        for (i, rx) in following {
            match singleflight::wait(rx).await {
                Outcome::Shared(bytes) => match self.decode_or_miss::<T>(unique[i], &bytes) {
                    Some((_, value)) => {
                        context::record_miss(unique[i], true);
                        values[i] = Some(value);
                    }
                    None => leftover.push(i),
                },
                Outcome::NotShared | Outcome::Abandoned => leftover.push(i),
            }
        }
        if !leftover.is_empty() {
            let leading = leftover
                .into_iter()
                .filter_map(|i| match self.inner.flights.join(unique[i]) {
                    Role::Leader(leader) => Some((i, leader)),
                    // Yet another caller took it over; computing it here as well is correct, just not shared.
                    Role::Follower(_) => None,
                })
                .collect::<Vec<_>>();
            self.compute_and_store(&unique, &mut values, leading, ttl, flags, &compute)
                .await?;
            let rest: Vec<usize> = (0..unique.len()).filter(|&i| values[i].is_none()).collect();
            if !rest.is_empty() {
                let keys: Vec<String> = rest.iter().map(|&i| unique[i].to_owned()).collect();
                let computed = compute(keys).await;
                if computed.len() != rest.len() {
                    return Err(CacheError::BodyMismatch {
                        expected: rest.len(),
                        got: computed.len(),
                    });
                }
                for (i, value) in rest.into_iter().zip(computed) {
                    values[i] = Some(value);
                }
            }
        }
        keys.iter()
            .map(|key| {
                let value = position.get(key).and_then(|&i| values[i].clone());
                // Every position was filled above: read, shared, or computed.
                value.ok_or(CacheError::BodyMismatch {
                    expected: keys.len(),
                    got: 0,
                })
            })
            .collect()
    }

    /// Runs `compute` once for the keys in `leading`, stores the values (fail-open) and hands each leader's
    /// followers the stored bytes.
    async fn compute_and_store<'a, T, F, Fut>(
        &'a self,
        unique: &[&str],
        values: &mut [Option<T>],
        leading: Vec<(usize, Leader<'a>)>,
        ttl: Option<Duration>,
        flags: context::Flags,
        compute: &F,
    ) -> Result<(), CacheError>
    where
        T: Storable,
        F: Fn(Vec<String>) -> Fut,
        Fut: Future<Output = Vec<T>>,
    {
        if leading.is_empty() {
            return Ok(());
        }
        let keys: Vec<String> = leading.iter().map(|(i, _)| unique[*i].to_owned()).collect();
        let computed = compute(keys).await;
        if computed.len() != leading.len() {
            // The leaders drop unfinished: their followers take over.
            return Err(CacheError::BodyMismatch {
                expected: leading.len(),
                got: computed.len(),
            });
        }
        let mut entries: Vec<(usize, Leader<'a>, Option<Bytes>)> = Vec::new();
        for ((i, leader), value) in leading.into_iter().zip(computed) {
            let meta = EnvelopeMeta::new(self.codec(), ttl);
            let bytes = self
                .encode(unique[i], &value, meta)
                .inspect_err(|error| {
                    tracing::warn!(key = unique[i], %error, "value not cached: it cannot be encoded")
                })
                .ok();
            values[i] = Some(value);
            entries.push((i, leader, bytes));
        }
        let stored = flags.allows(Ops::SET) && {
            let writes: Vec<(&str, Bytes)> = entries
                .iter()
                .filter_map(|(i, _, bytes)| Some((unique[*i], bytes.clone()?)))
                .collect();
            self.write_many_bytes(&writes, ttl).await
        };
        for (i, leader, bytes) in entries {
            context::record_miss(unique[i], stored && bytes.is_some());
            leader.finish(bytes);
        }
        Ok(())
    }

    /// Writes encoded entries, one `set_many` per backend; failures are logged and counted. Whether all were
    /// written.
    async fn write_many_bytes(&self, entries: &[(&str, Bytes)], ttl: Option<Duration>) -> bool {
        let keys: Vec<&str> = entries.iter().map(|(key, _)| *key).collect();
        let mut all = true;
        for (backend, positions) in self.group_by_backend(&keys) {
            let subset: Vec<(&str, Bytes)> =
                positions.iter().map(|&i| entries[i].clone()).collect();
            match backend.set_many(&subset, ttl).await {
                Ok(()) => {
                    for _ in &subset {
                        self.metrics_ref().store();
                    }
                }
                Err(error) => {
                    self.note_backend_error("set_many", subset[0].0, &error);
                    all = false;
                }
            }
        }
        all
    }
}
