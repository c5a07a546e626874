//! `memcached://host:port[,host:port…]?prefix=…` URLs (feature `memcached`).

use std::any::Any;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use cache_core::Backend;

use super::options::{take_bounded, take_duration, take_parsed, take_string, Options};
use super::registry::{BackendSpec, Scheme, UrlParts};
use super::SetupError;

pub(crate) const SCHEME: Scheme = Scheme {
    names: &["memcached"],
    feature: "memcached",
    parse: if cfg!(feature = "memcached") {
        Some(parse)
    } else {
        None
    },
};

/// A parsed `memcached://` URL.
///
/// # Example
/// ```
/// # #[cfg(feature = "memcached")] {
/// let parsed = cache_backends::parse_url("memcached://10.0.0.1:11211,10.0.0.2?prefix=app:&dead_timeout=30s").unwrap();
/// let memcached = parsed.spec::<cache_backends::MemcachedUrl>().unwrap();
/// assert_eq!(memcached.servers, ["10.0.0.1:11211", "10.0.0.2:11211"]);
/// assert_eq!(memcached.dead_timeout, Some(std::time::Duration::from_secs(30)));
/// # }
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct MemcachedUrl {
    /// The servers as `host:port` (11211 when left out), in the order given.
    pub servers: Vec<String>,
    /// `prefix`: prepended to every key, not part of what picks the server (as pymemcache's `key_prefix`).
    pub prefix: Option<String>,
    /// `pool_size`: connections per server (default 8).
    pub pool_size: Option<usize>,
    /// `command_timeout` (default 500 ms).
    pub command_timeout: Option<Duration>,
    /// `retry_attempts` (default 2).
    pub retry_attempts: Option<u32>,
    /// `retry_timeout` (default 1 s).
    pub retry_timeout: Option<Duration>,
    /// `dead_timeout` (default 60 s).
    pub dead_timeout: Option<Duration>,
}

fn parse(url: &UrlParts<'_>, options: &mut Options) -> Result<Box<dyn BackendSpec>, SetupError> {
    if !url.path.trim_end_matches('/').is_empty() {
        return Err(url.invalid("memcached:// takes no path; set a key prefix with ?prefix=app:"));
    }
    let mut servers = Vec::new();
    for host in url.authority.split(',').filter(|h| !h.is_empty()) {
        let server = match host.rsplit_once(':') {
            Some((name, port)) => {
                port.parse::<u16>()
                    .map_err(|_| url.invalid(&format!("bad port in {host:?}")))?;
                if name.is_empty() {
                    return Err(url.invalid(&format!("no host name in {host:?}")));
                }
                host.to_owned()
            }
            None => format!("{host}:11211"),
        };
        if servers.contains(&server) {
            return Err(url.invalid(&format!("{server} is listed twice")));
        }
        servers.push(server);
    }
    if servers.is_empty() {
        return Err(url.invalid("no server: memcached://host:11211[,host:11211…]"));
    }
    Ok(Box::new(MemcachedUrl {
        servers,
        prefix: take_string(options, "prefix"),
        pool_size: take_bounded(options, "pool_size", 1, 1024)?,
        command_timeout: take_duration(options, "command_timeout")?,
        retry_attempts: take_parsed::<u32>(options, "retry_attempts")?,
        retry_timeout: take_duration(options, "retry_timeout")?,
        dead_timeout: take_duration(options, "dead_timeout")?,
    }))
}

#[async_trait]
impl BackendSpec for MemcachedUrl {
    async fn connect(&self) -> Result<Arc<dyn Backend>, SetupError> {
        #[cfg(feature = "memcached")]
        {
            let mut builder = crate::MemcachedBackend::builder().servers(self.servers.clone());
            if let Some(prefix) = &self.prefix {
                builder = builder.prefix(prefix);
            }
            if let Some(size) = self.pool_size {
                builder = builder.pool_size(size);
            }
            if let Some(timeout) = self.command_timeout {
                builder = builder.command_timeout(timeout);
            }
            if let Some(attempts) = self.retry_attempts {
                builder = builder.retry_attempts(attempts);
            }
            if let Some(timeout) = self.retry_timeout {
                builder = builder.retry_timeout(timeout);
            }
            if let Some(timeout) = self.dead_timeout {
                builder = builder.dead_timeout(timeout);
            }
            Ok(Arc::new(builder.build()))
        }
        #[cfg(not(feature = "memcached"))]
        {
            Err(SetupError::FeatureDisabled {
                what: "memcached:// URLs",
                feature: "memcached",
            })
        }
    }

    fn as_any(&self) -> &dyn Any {
        self
    }
}
