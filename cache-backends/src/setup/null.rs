//! `null://` URLs: caching switched off without changing code (every read misses, nothing is stored).

use std::any::Any;
use std::sync::Arc;

use async_trait::async_trait;
use cache_core::{Backend, NullBackend};

use super::options::Options;
use super::registry::{BackendSpec, Scheme, UrlParts};
use super::SetupError;

pub(crate) const SCHEME: Scheme = Scheme {
    names: &["null"],
    feature: "default",
    parse: Some(parse),
};

/// A parsed `null://` URL: the [`NullBackend`], which logs one warning when it is built.
///
/// # Example
/// ```
/// let parsed = cache_backends::parse_url("null://").unwrap();
/// assert!(parsed.spec::<cache_backends::NullUrl>().is_some());
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct NullUrl {}

fn parse(url: &UrlParts<'_>, _options: &mut Options) -> Result<Box<dyn BackendSpec>, SetupError> {
    if !url.authority.is_empty() || !url.path.is_empty() {
        return Err(url.invalid("null:// takes no host or path"));
    }
    Ok(Box::new(NullUrl {}))
}

#[async_trait]
impl BackendSpec for NullUrl {
    async fn connect(&self) -> Result<Arc<dyn Backend>, SetupError> {
        Ok(Arc::new(NullBackend::new("the cache URL is null://")))
    }

    fn as_any(&self) -> &dyn Any {
        self
    }
}
