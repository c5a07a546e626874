//! `etcd://host:port?prefix=…&command_timeout=…` URLs (feature `etcd`).

use std::any::Any;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use cache_core::Backend;

use super::options::{take_string, Options};
use super::registry::{BackendSpec, Scheme, UrlParts};
use super::SetupError;

pub(crate) const SCHEME: Scheme = Scheme {
    names: &["etcd"],
    feature: "etcd",
    parse: if cfg!(feature = "etcd") {
        Some(parse)
    } else {
        None
    },
};

/// A parsed `etcd://` URL.
///
/// # Example
/// ```
/// # #[cfg(feature = "etcd")] {
/// let parsed = cache_backends::parse_url("etcd://127.0.0.1:2379?prefix=app/").unwrap();
/// let etcd = parsed.spec::<cache_backends::EtcdUrl>().unwrap();
/// assert_eq!((etcd.endpoint.as_str(), etcd.prefix.as_str()), ("http://127.0.0.1:2379", "app/"));
/// # }
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct EtcdUrl {
    /// `http://host:port` of the JSON gateway.
    pub endpoint: String,
    /// `prefix`: where the keys live (default `cache/`).
    pub prefix: String,
    /// `command_timeout` (default 500 ms).
    pub command_timeout: Duration,
}

fn parse(url: &UrlParts<'_>, options: &mut Options) -> Result<Box<dyn BackendSpec>, SetupError> {
    if url.authority.is_empty() || url.authority.contains(',') {
        return Err(url.invalid("etcd:// needs one host:port, e.g. etcd://127.0.0.1:2379"));
    }
    if !url.path.is_empty() {
        return Err(url.invalid("etcd:// takes no path; set the key prefix with ?prefix=app/"));
    }
    let command_timeout = match take_string(options, "command_timeout") {
        Some(text) => humantime::parse_duration(&text).map_err(|e| SetupError::InvalidOption {
            name: "command_timeout".into(),
            value: text.clone(),
            reason: e.to_string(),
        })?,
        None => Duration::from_millis(500),
    };
    Ok(Box::new(EtcdUrl {
        endpoint: format!("http://{}", url.authority),
        prefix: take_string(options, "prefix").unwrap_or_else(|| "cache/".to_owned()),
        command_timeout,
    }))
}

#[async_trait]
impl BackendSpec for EtcdUrl {
    async fn connect(&self) -> Result<Arc<dyn Backend>, SetupError> {
        #[cfg(feature = "etcd")]
        {
            Ok(Arc::new(
                crate::EtcdBackend::builder()
                    .endpoint(&self.endpoint)
                    .prefix(&self.prefix)
                    .command_timeout(self.command_timeout)
                    .build(),
            ))
        }
        #[cfg(not(feature = "etcd"))]
        {
            Err(SetupError::FeatureDisabled {
                what: "etcd",
                feature: "etcd",
            })
        }
    }

    fn as_any(&self) -> &dyn Any {
        self
    }
}
