//! Tags: delete groups of entries by a label, through an index kept in the backend — no keyspace scan.

use std::time::Duration;

use crate::cache::Cache;
use crate::error::CacheError;

/// The backend key of a tag's index set.
///
/// ```
/// assert_eq!(cache_core::strategy::tag_key("user:42"), "__tag:user:42");
/// ```
pub fn tag_key(tag: &str) -> String {
    format!("__tag:{tag}")
}

/// Adds `key` to each tag's index, before the value is written: a value whose tags are not all indexed could
/// never be deleted by tag, and would be served stale after [`delete_tags`]. On failure (a backend without
/// [`Capabilities::SETS`](crate::Capabilities::SETS), or down) the error is logged, counted and returned, and
/// the caller does not store the value.
pub(crate) async fn register(
    cache: &Cache,
    key: &str,
    tags: &[String],
    ttl: Option<Duration>,
) -> Result<(), CacheError> {
    for tag in tags {
        let index = tag_key(tag);
        cache
            .backend_for(&index)
            .set_add(&index, &[key], ttl)
            .await
            .inspect_err(|e| cache.note_backend_error("tag", &index, e))?;
    }
    Ok(())
}

/// Deletes every entry stored under any of `tags`, and the tags' indexes. Returns how many entries existed.
///
/// ```
/// use cache_core::{strategy::{self, Options}, shape::Plain, Cache};
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() {
/// let cache = Cache::memory();
/// let tagged = Options::ttl(None).tags(vec!["user:1".into()]);
/// strategy::cached_with(Plain, &cache, "profile:1".into(), tagged, async { 1u8 }).await;
/// assert_eq!(strategy::delete_tags(&cache, &["user:1"]).await.unwrap(), 1);
/// assert_eq!(cache.get::<u8>("profile:1").await.unwrap(), None);
/// # }
/// ```
pub async fn delete_tags(cache: &Cache, tags: &[&str]) -> Result<u64, CacheError> {
    let mut deleted = 0;
    // Like every delete: switched off in a scope that disables deletes (index included).
    if crate::context::is_disabled(crate::context::Ops::DELETE) {
        return Ok(deleted);
    }
    for tag in tags {
        let index = tag_key(tag);
        let backend = cache.backend_for(&index);
        let members = backend
            .set_members(&index)
            .await
            .inspect_err(|e| cache.note_backend_error("tag_members", &index, e))?;
        let members: Vec<&str> = members.iter().map(String::as_str).collect();
        if !members.is_empty() {
            deleted += cache.delete_many(&members).await?;
        }
        backend
            .delete(&index)
            .await
            .inspect_err(|e| cache.note_backend_error("delete", &index, e))?;
    }
    Ok(deleted)
}

impl Cache {
    /// Deletes every entry stored under any of `tags` (see [`delete_tags`]).
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() {
    /// assert_eq!(cache_core::Cache::memory().delete_tags(&["nothing"]).await.unwrap(), 0);
    /// # }
    /// ```
    pub async fn delete_tags(&self, tags: &[&str]) -> Result<u64, CacheError> {
        delete_tags(self, tags).await
    }
}
