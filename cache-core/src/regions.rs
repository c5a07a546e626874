//! Regions (dogpile.cache / oslo.cache): named groups of cached functions whose on/off switch, TTL and backend
//! come from configuration at call time, so operators change them without a rebuild.
//!
//! `#[cached(region = "feature-name")]` reads the region on every call: with caching off the body runs and the
//! cache is never touched; otherwise the region's TTL (or the function's own `ttl`) and the region's cache (or the
//! function's `cache = …`, or the global one) apply. [`install`] replaces the whole table at once, so a reload
//! takes effect on the next call. `cachette`'s `Config` fills it from a settings file.
//!
//! Every region a function names is collected at link time ([`referenced`]), so installing a table that lacks one
//! is an error listing them, not a surprise on first call.
//!
//! ```
//! use std::collections::HashMap;
//! use std::time::Duration;
//! use cache_core::regions::{self, Region};
//!
//! let mut table = HashMap::new();
//! table.insert("users".to_owned(), Region::new(true, Some(Duration::from_secs(7200))));
//! regions::install(table);
//! assert_eq!(regions::get("users").map(|r| r.ttl), Some(Some(Duration::from_secs(7200))));
//! ```

use std::collections::HashMap;
use std::sync::{Arc, LazyLock};
use std::time::Duration;

use arc_swap::ArcSwap;

use crate::cache::Cache;

/// One region's settings.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct Region {
    /// `caching = false` (or caching disabled as a whole): bodies run, the cache is not touched.
    pub caching: bool,
    /// The TTL of the region's entries; `None` leaves the function's own `ttl`.
    pub ttl: Option<Duration>,
    /// The region's own cache; `None` leaves the function's `cache = …` or the global cache.
    pub cache: Option<Cache>,
}

impl Region {
    /// A region on the function's (or the global) cache.
    ///
    /// # Example
    /// ```
    /// let off = cache_core::regions::Region::new(false, None);
    /// assert!(!off.caching);
    /// ```
    pub fn new(caching: bool, ttl: Option<Duration>) -> Region {
        Region {
            caching,
            ttl,
            cache: None,
        }
    }

    /// The region with its own cache.
    ///
    /// # Example
    /// ```
    /// let region = cache_core::regions::Region::new(true, None).with_cache(cache_core::Cache::memory());
    /// assert!(region.cache.is_some());
    /// ```
    pub fn with_cache(mut self, cache: Cache) -> Region {
        self.cache = Some(cache);
        self
    }
}

static TABLE: LazyLock<ArcSwap<HashMap<String, Region>>> =
    LazyLock::new(|| ArcSwap::from_pointee(HashMap::new()));

/// Replaces the region table; calls from then on use the new settings.
///
/// # Example
/// ```
/// cache_core::regions::install(std::collections::HashMap::new());
/// assert!(cache_core::regions::get("anything").is_none());
/// ```
pub fn install(table: HashMap<String, Region>) {
    TABLE.store(Arc::new(table));
}

/// The current settings of region `name`, if installed.
///
/// # Example
/// ```
/// assert!(cache_core::regions::get("never-installed").is_none());
/// ```
pub fn get(name: &str) -> Option<Region> {
    TABLE.load().get(name).cloned()
}

/// Every region name a `#[cached(region = "…")]` function in this program refers to (collected at link time),
/// sorted, without duplicates.
///
/// # Example
/// ```
/// let names = cache_core::regions::referenced();
/// assert!(names.windows(2).all(|w| w[0] < w[1]));
/// ```
pub fn referenced() -> Vec<&'static str> {
    let mut names: Vec<&'static str> = REFERENCED.iter().copied().collect();
    names.sort_unstable();
    names.dedup();
    names
}

/// Of the regions the program refers to, those `table` lacks.
///
/// # Example
/// ```
/// let missing = cache_core::regions::missing_from(&std::collections::HashMap::new());
/// assert_eq!(missing, cache_core::regions::referenced());
/// ```
pub fn missing_from(table: &HashMap<String, Region>) -> Vec<&'static str> {
    referenced()
        .into_iter()
        .filter(|name| !table.contains_key(*name))
        .collect()
}

/// The link-time registry the macros add each region name to.
#[doc(hidden)]
#[linkme::distributed_slice]
pub static REFERENCED: [&'static str];

/// What one call of a region function does, read from the table once per call.
#[doc(hidden)]
pub struct CallSettings {
    /// Whether to use the cache at all.
    pub caching: bool,
    /// The region's TTL, if it sets one.
    pub ttl: Option<Duration>,
    /// The region's cache, if it has its own.
    pub cache: Option<Cache>,
}

/// The settings of `name` for one call. A region missing from the table (nothing installed, or a table that
/// skipped the check of [`missing_from`]) runs the body uncached and logs an error once per region.
#[doc(hidden)]
pub fn call_settings(name: &'static str) -> CallSettings {
    match TABLE.load().get(name) {
        Some(region) => CallSettings {
            caching: region.caching,
            ttl: region.ttl,
            cache: region.cache.clone(),
        },
        None => {
            warn_missing(name);
            CallSettings {
                caching: false,
                ttl: None,
                cache: None,
            }
        }
    }
}

fn warn_missing(name: &'static str) {
    static WARNED: LazyLock<parking_lot::Mutex<Vec<&'static str>>> =
        LazyLock::new(Default::default);
    let mut warned = WARNED.lock();
    if !warned.contains(&name) {
        warned.push(name);
        tracing::error!(
            region = name,
            "cache region is not configured; its functions run uncached until it is installed"
        );
    }
}
