//! [`CacheControlLayer`]: the client's request headers decide, per request, whether the cache is read or written.

use std::future::Future;
use std::sync::Arc;
use std::task::{Context as TaskContext, Poll};
use std::time::Duration;

use ::http::header::{CACHE_CONTROL, PRAGMA};
use ::http::{HeaderMap, HeaderName, Method, Request};
use tower::{Layer, Service};

use super::{default_methods, BoxFuture};
use crate::context::{self, Ops};

/// `Clear-Site-Data` is not in `http`'s list of standard headers.
static CLEAR_SITE_DATA: HeaderName = HeaderName::from_static("clear-site-data");

/// What a request's headers ask of the cache, parsed leniently: unknown directives, bad values and undecodable
/// bytes are ignored, never an error.
///
/// | request header                              | effect                                                       |
/// |---------------------------------------------|--------------------------------------------------------------|
/// | `Cache-Control: no-cache` (or `Pragma: no-cache` without `Cache-Control`) | reads off: fresh values, still stored |
/// | `Cache-Control: no-store`, `max-age=0`      | reads and writes off                                         |
/// | `Cache-Control: max-age=N`                  | values `N` seconds old or older are misses                   |
/// | `Clear-Site-Data: "cache"` (or `"*"`)       | every entry read is deleted and recomputed                   |
///
/// ```
/// use cache_core::context::Ops;
/// use cache_core::http::RequestDirectives;
/// let mut headers = http::HeaderMap::new();
/// headers.append("cache-control", "No-Cache, max-age=60".parse().unwrap());
/// headers.append("cache-control", "bogus=,, max-age=30".parse().unwrap());
/// let d = RequestDirectives::from_headers(&headers);
/// assert_eq!(d.disabled, Ops::GET);
/// assert_eq!(d.max_age, Some(std::time::Duration::from_secs(30)));
/// assert!(!d.clear);
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct RequestDirectives {
    /// Operations switched off for the request.
    pub disabled: Ops,
    /// The oldest a cached value may be to be served (`max-age=N` with `N > 0`; the smallest if repeated).
    pub max_age: Option<Duration>,
    /// Whether entries read should be invalidated (`Clear-Site-Data: "cache"`).
    pub clear: bool,
}

impl RequestDirectives {
    /// Parses the `Cache-Control`, `Pragma` and `Clear-Site-Data` request headers (every line of each).
    ///
    /// ```
    /// use cache_core::context::Ops;
    /// let mut headers = http::HeaderMap::new();
    /// headers.insert("cache-control", "max-age=0".parse().unwrap());
    /// let d = cache_core::http::RequestDirectives::from_headers(&headers);
    /// assert_eq!(d.disabled, Ops::GET | Ops::SET);
    /// ```
    pub fn from_headers(headers: &HeaderMap) -> Self {
        let mut directives = Self::default();
        let mut saw_cache_control = false;
        for (name, value) in list_items(headers, &CACHE_CONTROL) {
            saw_cache_control = true;
            match name.as_str() {
                "no-cache" => directives.disabled |= Ops::GET,
                "no-store" => directives.disabled |= Ops::GET | Ops::SET,
                "max-age" => match value.as_deref().and_then(parse_seconds) {
                    // max-age=0: nothing cached is fresh enough, and the client does not want this response
                    // kept either (cashews maps it to no-store as well).
                    Some(0) => directives.disabled |= Ops::GET | Ops::SET,
                    Some(secs) => {
                        let age = Duration::from_secs(secs);
                        directives.max_age = Some(directives.max_age.map_or(age, |m| m.min(age)));
                    }
                    None => {}
                },
                _ => {}
            }
        }
        // RFC 9111 §5.4: `Pragma: no-cache` counts only when the request has no `Cache-Control`.
        if !saw_cache_control && list_items(headers, &PRAGMA).any(|(name, _)| name == "no-cache") {
            directives.disabled |= Ops::GET;
        }
        directives.clear =
            list_items(headers, &CLEAR_SITE_DATA).any(|(name, _)| name == "cache" || name == "*");
        directives
    }

    /// Whether the request asks for nothing special.
    ///
    /// ```
    /// assert!(cache_core::http::RequestDirectives::default().is_empty());
    /// ```
    pub fn is_empty(&self) -> bool {
        *self == Self::default()
    }
}

/// The comma-separated items of every line of `name`, as (lowercased name without quotes, raw value) pairs.
/// Items with an empty name are skipped. Bytes that are not UTF-8 are replaced, which can only make an item
/// unrecognised.
fn list_items<'a>(
    headers: &'a HeaderMap,
    name: &'a HeaderName,
) -> impl Iterator<Item = (String, Option<String>)> + 'a {
    headers.get_all(name).iter().flat_map(|line| {
        String::from_utf8_lossy(line.as_bytes())
            .split(',')
            .filter_map(|item| {
                let (name, value) = match item.split_once('=') {
                    Some((name, value)) => (name, Some(unquote(value).to_owned())),
                    None => (item, None),
                };
                let name = unquote(name).to_ascii_lowercase();
                (!name.is_empty()).then_some((name, value))
            })
            .collect::<Vec<_>>()
    })
}

fn unquote(s: &str) -> &str {
    let s = s.trim();
    s.strip_prefix('"')
        .and_then(|s| s.strip_suffix('"'))
        .unwrap_or(s)
        .trim()
}

/// Delta-seconds (RFC 9111 §1.2.2): digits only; a value too large saturates instead of being rejected.
fn parse_seconds(value: &str) -> Option<u64> {
    if value.is_empty() || !value.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    Some(value.parse().unwrap_or(u64::MAX))
}

/// Applies the request's cache directives to the cache [`context`](crate::context) of the handler.
///
/// Only requests with one of the configured methods (default `GET` and `HEAD`) are affected; a `POST` with
/// `Cache-Control: no-store` runs as usual. Clients can make every request recompute its values this way, so
/// expose it where that load is acceptable (behind authentication or a rate limit).
///
/// ```
/// use cache_core::http::CacheControlLayer;
/// use tower::{service_fn, ServiceBuilder, ServiceExt};
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() {
/// let cache = cache_core::Cache::memory();
/// cache.set("greeting", &"cached", None).await.unwrap();
/// let service = ServiceBuilder::new()
///     .layer(CacheControlLayer::new())
///     .service(service_fn(move |_req: http::Request<()>| {
///         let cache = cache.clone();
///         async move {
///             let v: String = cache.get_or_set("greeting", None, || async { "fresh".to_string() }).await;
///             Ok::<_, std::convert::Infallible>(v)
///         }
///     }));
/// let request = http::Request::get("/").header("cache-control", "no-cache").body(()).unwrap();
/// assert_eq!(service.clone().oneshot(request).await.unwrap(), "fresh");
/// let request = http::Request::get("/").body(()).unwrap();
/// assert_eq!(service.oneshot(request).await.unwrap(), "fresh"); // the fresh value was stored
/// # }
/// ```
#[derive(Debug, Clone)]
pub struct CacheControlLayer {
    methods: Arc<[Method]>,
}

impl Default for CacheControlLayer {
    fn default() -> Self {
        Self {
            methods: default_methods(),
        }
    }
}

impl CacheControlLayer {
    /// A layer for `GET` and `HEAD` requests.
    ///
    /// ```
    /// let layer = cache_core::http::CacheControlLayer::new();
    /// ```
    pub fn new() -> Self {
        Self::default()
    }

    /// The request methods whose directives are honoured (replaces the default `GET`, `HEAD`).
    ///
    /// ```
    /// use http::Method;
    /// let layer = cache_core::http::CacheControlLayer::new().methods([Method::GET, Method::POST]);
    /// ```
    pub fn methods(mut self, methods: impl IntoIterator<Item = Method>) -> Self {
        self.methods = methods.into_iter().collect();
        self
    }
}

impl<S> Layer<S> for CacheControlLayer {
    type Service = CacheControlService<S>;

    fn layer(&self, inner: S) -> Self::Service {
        CacheControlService {
            inner,
            methods: self.methods.clone(),
        }
    }
}

/// The service of [`CacheControlLayer`].
///
/// ```
/// use cache_core::http::CacheControlLayer;
/// use tower::Layer;
/// let service = CacheControlLayer::new().layer(tower::service_fn(|_req: http::Request<()>| async {
///     Ok::<_, std::convert::Infallible>(())
/// }));
/// ```
#[derive(Debug, Clone)]
pub struct CacheControlService<S> {
    inner: S,
    methods: Arc<[Method]>,
}

impl<S, B> Service<Request<B>> for CacheControlService<S>
where
    S: Service<Request<B>>,
    S::Future: Send + 'static,
{
    type Response = S::Response;
    type Error = S::Error;
    type Future = BoxFuture<Result<S::Response, S::Error>>;

    fn poll_ready(&mut self, cx: &mut TaskContext<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, request: Request<B>) -> Self::Future {
        let directives = if self.methods.contains(request.method()) {
            RequestDirectives::from_headers(request.headers())
        } else {
            RequestDirectives::default()
        };
        let future = self.inner.call(request);
        if directives.is_empty() {
            return Box::pin(future);
        }
        Box::pin(directives.scope(future))
    }
}

impl RequestDirectives {
    /// Runs `fut` in a child of the current cache context with these directives applied.
    ///
    /// ```
    /// use cache_core::context::{is_disabled, Ops};
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() {
    /// let d = cache_core::http::RequestDirectives { disabled: Ops::GET, ..Default::default() };
    /// assert!(d.scope(async { is_disabled(Ops::GET) }).await);
    /// # }
    /// ```
    pub async fn scope<F: Future>(self, fut: F) -> F::Output {
        // The context helpers derive their scope when they are called, so each one is called inside the future
        // of the one around it (at poll time, in the caller's scope) rather than all up front in `call`, where
        // they would each derive from the empty scope and replace, not extend, one another.
        let disabled = self.disabled;
        let inner = async move {
            let innermost = async move { context::disabling(disabled, fut).await };
            match self.max_age {
                Some(max_age) => context::with_max_age(max_age, innermost).await,
                None => innermost.await,
            }
        };
        if self.clear {
            context::invalidate_further(inner).await
        } else {
            inner.await
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(lines: &[(&str, &[u8])]) -> RequestDirectives {
        let mut headers = HeaderMap::new();
        for (name, value) in lines {
            headers.append(
                HeaderName::from_bytes(name.as_bytes()).unwrap(),
                ::http::HeaderValue::from_bytes(value).unwrap(),
            );
        }
        RequestDirectives::from_headers(&headers)
    }

    #[test]
    fn directives() {
        assert_eq!(parse(&[("cache-control", b"no-cache")]).disabled, Ops::GET);
        assert_eq!(
            parse(&[("cache-control", b"NO-STORE")]).disabled,
            Ops::GET | Ops::SET
        );
        assert_eq!(
            parse(&[("cache-control", b" max-age = \"0\" ")]).disabled,
            Ops::GET | Ops::SET
        );
        let d = parse(&[
            ("cache-control", b"max-age=10, max-age=5"),
            ("cache-control", b"max-age=7"),
        ]);
        assert_eq!(
            (d.disabled, d.max_age),
            (Ops::empty(), Some(Duration::from_secs(5)))
        );
        assert_eq!(
            parse(&[("cache-control", b"max-age=99999999999999999999999")]).max_age,
            Some(Duration::from_secs(u64::MAX))
        );
        assert!(parse(&[("clear-site-data", b"\"cookies\", \"cache\"")]).clear);
        assert!(parse(&[("clear-site-data", b"\"*\"")]).clear);
        assert!(!parse(&[("clear-site-data", b"\"cookies\"")]).clear);
    }

    #[test]
    fn pragma_only_without_cache_control() {
        assert_eq!(parse(&[("pragma", b"no-cache")]).disabled, Ops::GET);
        assert_eq!(
            parse(&[("pragma", b"no-cache"), ("cache-control", b"max-age=5")]).disabled,
            Ops::empty()
        );
    }

    #[test]
    fn garbage_is_ignored() {
        for junk in [
            &b""[..],
            b",,,",
            b"=",
            b"max-age",
            b"max-age=",
            b"max-age=-1",
            b"max-age=1e3",
            b"max-age=\"",
            b"\"",
            b"no-cachex",
            b"\xff\xfe no-cache-ish",
        ] {
            assert!(parse(&[("cache-control", junk)]).is_empty(), "{junk:?}");
        }
        assert_eq!(
            parse(&[("cache-control", b"\xff, no-cache")]).disabled,
            Ops::GET
        );
    }
}
