//! Namespaces: the multi-tenant recipe. A namespace's keys carry its current version, kept in the backend under
//! one counter per namespace; clearing the namespace bumps the counter, so its old entries stop being read (and
//! expire by their TTL) — O(1), no key scan, no `FLUSHDB`/`flush_all`, on every backend.
//!
//! Layout: the counter of namespace `N` is `__ns:N`; its entries are `__ns:N:<version>:<key>`. A counter that
//! disappears (evicted by memcached, say) starts again from the current time in milliseconds, which is above
//! every version it had handed out before (unless it was cleared more than once per millisecond on average
//! since it was created), so a lost counter never brings old entries back.

use std::sync::Arc;
use std::time::{Duration, Instant};

use async_trait::async_trait;
use bytes::Bytes;
use parking_lot::Mutex;

use crate::backend::{Backend, BackendError, Capabilities, CasOutcome, CasToken, KeyTtl, SetMode};
use crate::envelope::now_ms;
use crate::glob::GlobMatcher;

/// How long a namespace's version is reused before it is read again, unless the builder says otherwise
/// ([`CacheBuilder::namespace_refresh`](crate::CacheBuilder::namespace_refresh)).
pub const DEFAULT_NAMESPACE_REFRESH: Duration = Duration::from_secs(1);

/// The version of one namespace: where its counter lives and the last version read.
pub(crate) struct NamespaceVersion {
    name: String,
    counter_key: String,
    /// The backend holding the counter (the one the parent cache routes the counter key to).
    holder: Arc<dyn Backend>,
    refresh: Duration,
    /// The version and its key prefix, and when they were read.
    current: Mutex<Option<(Arc<str>, Instant)>>,
}

impl NamespaceVersion {
    pub(crate) fn new(name: &str, holder: Arc<dyn Backend>, refresh: Duration) -> Self {
        Self {
            name: name.to_owned(),
            counter_key: counter_key(name),
            holder,
            refresh,
            current: Mutex::new(None),
        }
    }

    pub(crate) fn name(&self) -> &str {
        &self.name
    }

    /// The key prefix of the current version: reused for `refresh`, then read from the backend again.
    async fn prefix(&self) -> Result<Arc<str>, BackendError> {
        if let Some((prefix, read_at)) = &*self.current.lock()
            && read_at.elapsed() < self.refresh
        {
            return Ok(prefix.clone());
        }
        let version = self.read_or_start().await?;
        Ok(self.remember(version))
    }

    fn remember(&self, version: u64) -> Arc<str> {
        let prefix: Arc<str> = format!("{}:{version}:", self.counter_key).into();
        *self.current.lock() = Some((prefix.clone(), Instant::now()));
        prefix
    }

    async fn read(&self) -> Result<Option<u64>, BackendError> {
        let Some(bytes) = self.holder.get(&self.counter_key).await? else {
            return Ok(None);
        };
        std::str::from_utf8(&bytes)
            .ok()
            .and_then(|text| text.trim().parse::<u64>().ok())
            .map(Some)
            .ok_or_else(|| {
                BackendError::WrongType(format!(
                    "namespace counter {:?} does not hold a number",
                    self.counter_key
                ))
            })
    }

    async fn read_or_start(&self) -> Result<u64, BackendError> {
        if let Some(version) = self.read().await? {
            return Ok(version);
        }
        let start = Bytes::from(now_ms().to_string());
        self.holder
            .set(&self.counter_key, start, None, SetMode::IfAbsent)
            .await?;
        // Whoever created it first, this is the version now.
        self.read().await?.ok_or_else(|| {
            BackendError::Other(format!("namespace counter {:?} vanished", self.counter_key))
        })
    }

    /// Moves the namespace to a new version: its entries so far are no longer read. Returns the new version.
    pub(crate) async fn bump(&self) -> Result<u64, BackendError> {
        let current = self.read_or_start().await?;
        let next = if self.holder.capabilities().contains(Capabilities::COUNTERS) {
            let next = self.holder.incr(&self.counter_key, 1, None).await?;
            u64::try_from(next).map_err(|_| {
                BackendError::WrongType(format!(
                    "namespace counter {:?} is negative",
                    self.counter_key
                ))
            })?
        } else {
            // Without atomic counters two clears at once may both write `current + 1`: either way the old
            // entries are gone, which is all a clear promises.
            let next = current + 1;
            self.holder
                .set(
                    &self.counter_key,
                    Bytes::from(next.to_string()),
                    None,
                    SetMode::Always,
                )
                .await?;
            next
        };
        self.remember(next);
        Ok(next)
    }
}

/// The counter key of namespace `name`.
pub(crate) fn counter_key(name: &str) -> String {
    format!("__ns:{name}")
}

/// A backend seen through a namespace: every key gets the namespace's current version in front.
pub(crate) struct NamespacedBackend {
    version: Arc<NamespaceVersion>,
    inner: Arc<dyn Backend>,
}

impl NamespacedBackend {
    pub(crate) fn new(version: Arc<NamespaceVersion>, inner: Arc<dyn Backend>) -> Self {
        Self { version, inner }
    }

    async fn key(&self, key: &str) -> Result<String, BackendError> {
        let prefix = self.version.prefix().await?;
        Ok(format!("{prefix}{key}"))
    }

    async fn keys(&self, keys: &[&str]) -> Result<Vec<String>, BackendError> {
        let prefix = self.version.prefix().await?;
        Ok(keys.iter().map(|k| format!("{prefix}{k}")).collect())
    }
}

fn refs(keys: &[String]) -> Vec<&str> {
    keys.iter().map(String::as_str).collect()
}

#[async_trait]
impl Backend for NamespacedBackend {
    async fn get(&self, key: &str) -> Result<Option<Bytes>, BackendError> {
        self.inner.get(&self.key(key).await?).await
    }

    async fn get_many(&self, keys: &[&str]) -> Result<Vec<Option<Bytes>>, BackendError> {
        let mapped = self.keys(keys).await?;
        self.inner.get_many(&refs(&mapped)).await
    }

    async fn set(
        &self,
        key: &str,
        value: Bytes,
        ttl: Option<Duration>,
        mode: SetMode,
    ) -> Result<bool, BackendError> {
        self.inner
            .set(&self.key(key).await?, value, ttl, mode)
            .await
    }

    async fn set_many(
        &self,
        entries: &[(&str, Bytes)],
        ttl: Option<Duration>,
    ) -> Result<(), BackendError> {
        let keys: Vec<&str> = entries.iter().map(|(k, _)| *k).collect();
        let mapped = self.keys(&keys).await?;
        let entries: Vec<(&str, Bytes)> = mapped
            .iter()
            .zip(entries)
            .map(|(k, (_, v))| (k.as_str(), v.clone()))
            .collect();
        self.inner.set_many(&entries, ttl).await
    }

    async fn delete(&self, key: &str) -> Result<bool, BackendError> {
        self.inner.delete(&self.key(key).await?).await
    }

    async fn delete_many(&self, keys: &[&str]) -> Result<u64, BackendError> {
        let mapped = self.keys(keys).await?;
        self.inner.delete_many(&refs(&mapped)).await
    }

    async fn delete_match(&self, pattern: &str) -> Result<u64, BackendError> {
        let prefix = self.version.prefix().await?;
        let pattern = format!("{}{pattern}", GlobMatcher::escape(&prefix));
        self.inner.delete_match(&pattern).await
    }

    async fn scan(&self, pattern: &str) -> Result<Vec<String>, BackendError> {
        let prefix = self.version.prefix().await?;
        let full = format!("{}{pattern}", GlobMatcher::escape(&prefix));
        let found = self.inner.scan(&full).await?;
        Ok(found
            .into_iter()
            .filter_map(|k| k.strip_prefix(&*prefix).map(str::to_owned))
            .collect())
    }

    async fn incr(&self, key: &str, by: i64, ttl: Option<Duration>) -> Result<i64, BackendError> {
        self.inner.incr(&self.key(key).await?, by, ttl).await
    }

    async fn expire(&self, key: &str, ttl: Duration) -> Result<bool, BackendError> {
        self.inner.expire(&self.key(key).await?, ttl).await
    }

    async fn ttl(&self, key: &str) -> Result<KeyTtl, BackendError> {
        self.inner.ttl(&self.key(key).await?).await
    }

    async fn persist(&self, key: &str) -> Result<bool, BackendError> {
        self.inner.persist(&self.key(key).await?).await
    }

    async fn gets(&self, key: &str) -> Result<Option<(Bytes, CasToken)>, BackendError> {
        self.inner.gets(&self.key(key).await?).await
    }

    async fn cas(
        &self,
        key: &str,
        value: Bytes,
        token: CasToken,
        ttl: Option<Duration>,
    ) -> Result<CasOutcome, BackendError> {
        self.inner
            .cas(&self.key(key).await?, value, token, ttl)
            .await
    }

    async fn unlock(&self, key: &str, token: &[u8]) -> Result<bool, BackendError> {
        self.inner.unlock(&self.key(key).await?, token).await
    }

    async fn rate_limit(
        &self,
        key: &str,
        rule: crate::RateRule,
    ) -> Result<crate::RateDecision, BackendError> {
        self.inner.rate_limit(&self.key(key).await?, rule).await
    }

    async fn ping(&self) -> Result<(), BackendError> {
        self.inner.ping().await
    }

    /// Clearing a namespace is bumping its version.
    async fn clear(&self) -> Result<(), BackendError> {
        self.version.bump().await.map(|_| ())
    }

    async fn set_add(
        &self,
        key: &str,
        members: &[&str],
        ttl: Option<Duration>,
    ) -> Result<(), BackendError> {
        // Members are the cache's own keys (a tag's entries); they are mapped when they are used as keys.
        self.inner
            .set_add(&self.key(key).await?, members, ttl)
            .await
    }

    async fn set_members(&self, key: &str) -> Result<Vec<String>, BackendError> {
        self.inner.set_members(&self.key(key).await?).await
    }

    async fn set_remove(&self, key: &str, members: &[&str]) -> Result<u64, BackendError> {
        self.inner.set_remove(&self.key(key).await?, members).await
    }

    fn name(&self) -> &'static str {
        self.inner.name()
    }

    fn capabilities(&self) -> Capabilities {
        self.inner.capabilities()
    }
}
