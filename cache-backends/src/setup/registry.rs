//! The scheme registry: which backend a cache URL names.
//!
//! Each backend module describes its schemes with one [`Scheme`] and adds it to [`SCHEMES`] — one line; setup
//! finds the parser by scheme, and a backend compiled out of this build still answers with the cargo feature
//! that would bring it.

use std::any::Any;
use std::sync::Arc;

use async_trait::async_trait;
use cache_core::Backend;

use super::options::Options;
use super::SetupError;

/// Every backend's URL schemes. Adding a backend adds its line here.
const SCHEMES: &[&Scheme] = &[
    &super::memory::SCHEME,
    &super::null::SCHEME,
    &super::disk::SCHEME,
    &super::etcd::SCHEME,
    &super::memcached::SCHEME,
    &super::redis::SCHEME,
];

/// A backend, as a URL described it: parsed and validated, not connected.
///
/// # Example
/// ```
/// let parsed = cache_backends::parse_url("mem://?size=10").unwrap();
/// assert!(parsed.backend.as_any().is::<cache_backends::MemoryUrl>());
/// ```
#[async_trait]
pub trait BackendSpec: std::fmt::Debug + Send + Sync + 'static {
    /// Connects (or builds) the backend.
    async fn connect(&self) -> Result<Arc<dyn Backend>, SetupError>;

    /// `self`, for [`CacheUrl::spec`](super::CacheUrl::spec).
    fn as_any(&self) -> &dyn Any;
}

/// A URL split into the parts every scheme shares. The query is already in the options.
///
/// # Example
/// ```
/// # use cache_backends::UrlParts;
/// let parts = UrlParts { url: "redis://h:1/2", scheme: "redis", authority: "h:1", path: "2" };
/// assert_eq!(parts.authority, "h:1");
/// ```
#[derive(Debug, Clone, Copy)]
pub struct UrlParts<'a> {
    /// The whole URL, for error messages.
    pub url: &'a str,
    /// The scheme, lower case.
    pub scheme: &'a str,
    /// Between `://` and the first `/` (credentials and hosts).
    pub authority: &'a str,
    /// After the first `/`, before `?`.
    pub path: &'a str,
}

impl UrlParts<'_> {
    /// An [`SetupError::InvalidUrl`] for this URL.
    ///
    /// # Example
    /// ```
    /// # use cache_backends::UrlParts;
    /// let parts = UrlParts { url: "x://", scheme: "x", authority: "", path: "" };
    /// assert!(parts.invalid("no host").to_string().contains("no host"));
    /// ```
    pub fn invalid(&self, reason: &str) -> SetupError {
        SetupError::InvalidUrl {
            url: self.url.to_owned(),
            reason: reason.to_owned(),
        }
    }
}

/// Parses one scheme's URLs: takes the options it understands out of `options` (what is left is an error).
pub(crate) type ParseFn =
    fn(&UrlParts<'_>, &mut Options) -> Result<Box<dyn BackendSpec>, SetupError>;

/// The schemes of one backend and how to parse them.
///
/// # Example
/// ```
/// assert!(cache_backends::known_schemes().contains(&"mem"));
/// ```
#[derive(Debug)]
pub struct Scheme {
    pub(crate) names: &'static [&'static str],
    /// The cargo feature that compiles the backend in.
    pub(crate) feature: &'static str,
    /// `None` when the feature is off in this build.
    pub(crate) parse: Option<ParseFn>,
}

/// Every scheme a URL may use, including those of backends compiled out of this build.
///
/// # Example
/// ```
/// let known = cache_backends::known_schemes();
/// assert!(known.contains(&"redis") && known.contains(&"redis-cluster"));
/// ```
pub fn known_schemes() -> Vec<&'static str> {
    SCHEMES
        .iter()
        .flat_map(|s| s.names.iter().copied())
        .collect()
}

/// The parser of `scheme`, or why there is none.
pub(crate) fn find(scheme: &str) -> Result<ParseFn, SetupError> {
    let Some(entry) = SCHEMES.iter().find(|s| s.names.contains(&scheme)) else {
        return Err(SetupError::UnsupportedScheme {
            scheme: scheme.to_owned(),
            known: known_schemes(),
        });
    };
    entry.parse.ok_or(SetupError::FeatureDisabled {
        feature: entry.feature,
        what: entry.names[0],
    })
}
