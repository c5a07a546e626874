//! `disk:///path/to/dir?max_bytes=…` URLs (feature `disk`).

use std::any::Any;
use std::sync::Arc;

use async_trait::async_trait;
use cache_core::Backend;

use super::options::{take_parsed, Options};
use super::registry::{BackendSpec, Scheme, UrlParts};
use super::SetupError;

pub(crate) const SCHEME: Scheme = Scheme {
    names: &["disk"],
    feature: "disk",
    parse: if cfg!(feature = "disk") {
        Some(parse)
    } else {
        None
    },
};

/// A parsed `disk://` URL.
///
/// # Example
/// ```
/// # #[cfg(feature = "disk")] {
/// let parsed = cache_backends::parse_url("disk:///var/cache/myapp?max_bytes=1048576").unwrap();
/// let disk = parsed.spec::<cache_backends::DiskUrl>().unwrap();
/// assert_eq!((disk.dir.as_str(), disk.max_bytes), ("/var/cache/myapp", Some(1_048_576)));
/// # }
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct DiskUrl {
    /// The directory holding `cache.sqlite3`.
    pub dir: String,
    /// `max_bytes`: the byte bound (unbounded when absent).
    pub max_bytes: Option<u64>,
}

fn parse(url: &UrlParts<'_>, options: &mut Options) -> Result<Box<dyn BackendSpec>, SetupError> {
    if !url.authority.is_empty() {
        return Err(
            url.invalid("disk:// takes an absolute directory and no host: disk:///var/cache/myapp")
        );
    }
    if url.path.trim_matches('/').is_empty() {
        return Err(url.invalid("no directory: disk:///var/cache/myapp"));
    }
    let dir = format!("/{}", url.path.trim_end_matches('/'));
    let dir = percent_decode(&dir).map_err(|reason| url.invalid(reason))?;
    Ok(Box::new(DiskUrl {
        dir,
        max_bytes: take_parsed::<u64>(options, "max_bytes")?,
    }))
}

/// `%XX` escapes in the path (spaces and the like), as UTF-8.
fn percent_decode(path: &str) -> Result<String, &'static str> {
    let mut out = Vec::with_capacity(path.len());
    let mut bytes = path.bytes();
    while let Some(b) = bytes.next() {
        if b != b'%' {
            out.push(b);
            continue;
        }
        let hex = [bytes.next(), bytes.next()];
        let [Some(hi), Some(lo)] = hex else {
            return Err("a % in the path must start an escape such as %20");
        };
        let digit = |c: u8| (c as char).to_digit(16);
        match (digit(hi), digit(lo)) {
            (Some(hi), Some(lo)) => out.push((hi * 16 + lo) as u8),
            _ => return Err("a % in the path must start an escape such as %20"),
        }
    }
    String::from_utf8(out).map_err(|_| "the path is not UTF-8")
}

#[async_trait]
impl BackendSpec for DiskUrl {
    async fn connect(&self) -> Result<Arc<dyn Backend>, SetupError> {
        #[cfg(feature = "disk")]
        {
            let mut builder = crate::DiskBackend::builder(&self.dir);
            if let Some(max) = self.max_bytes {
                builder = builder.max_bytes(max);
            }
            builder
                .open()
                .map(|backend| Arc::new(backend) as Arc<dyn Backend>)
                .map_err(|e| SetupError::InvalidUrl {
                    url: format!("disk://{}", self.dir),
                    reason: e.to_string(),
                })
        }
        #[cfg(not(feature = "disk"))]
        {
            Err(SetupError::FeatureDisabled {
                what: "disk:// URLs",
                feature: "disk",
            })
        }
    }

    fn as_any(&self) -> &dyn Any {
        self
    }
}
