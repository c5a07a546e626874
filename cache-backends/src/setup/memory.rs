//! `mem://` URLs: the in-process LRU.

use std::any::Any;
use std::sync::Arc;

use async_trait::async_trait;
use cache_core::{Backend, MemoryBackend};

use super::options::{take_bounded, Options};
use super::registry::{BackendSpec, Scheme, UrlParts};
use super::SetupError;

pub(crate) const SCHEME: Scheme = Scheme {
    names: &["mem", "memory"],
    feature: "default",
    parse: Some(parse),
};

/// The largest `size` a `mem://` URL accepts: 2^32 entries take hundreds of GiB, more than any machine holds.
/// Larger numbers are typos or overflow probes, not configurations.
const MAX_MEMORY_ENTRIES: usize = 1 << 32;
/// The largest `max_bytes` a `mem://` URL accepts: 2^48 bytes (256 TiB).
const MAX_MEMORY_BYTES: usize = 1 << 48;

/// A parsed `mem://` URL.
///
/// # Example
/// ```
/// let parsed = cache_backends::parse_url("mem://?size=10&max_bytes=2048").unwrap();
/// let memory = parsed.spec::<cache_backends::MemoryUrl>().unwrap();
/// assert_eq!((memory.max_entries, memory.max_bytes), (Some(10), Some(2048)));
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct MemoryUrl {
    /// `size`: maximum number of entries.
    pub max_entries: Option<usize>,
    /// `max_bytes`: memory bound of the entries.
    pub max_bytes: Option<usize>,
}

fn parse(url: &UrlParts<'_>, options: &mut Options) -> Result<Box<dyn BackendSpec>, SetupError> {
    if !url.authority.is_empty() || !url.path.is_empty() {
        return Err(url.invalid("mem:// takes no host or path, only options: mem://?size=N"));
    }
    Ok(Box::new(MemoryUrl {
        max_entries: take_bounded(options, "size", 1, MAX_MEMORY_ENTRIES)?,
        max_bytes: take_bounded(options, "max_bytes", 1, MAX_MEMORY_BYTES)?,
    }))
}

#[async_trait]
impl BackendSpec for MemoryUrl {
    async fn connect(&self) -> Result<Arc<dyn Backend>, SetupError> {
        let mut builder = MemoryBackend::builder();
        if let Some(n) = self.max_entries {
            builder = builder.max_entries(n);
        }
        if let Some(n) = self.max_bytes {
            builder = builder.max_bytes(n);
        }
        Ok(Arc::new(builder.build()))
    }

    fn as_any(&self) -> &dyn Any {
        self
    }
}
