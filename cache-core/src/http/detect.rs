//! [`DetectLayer`]: tells the client which cache keys a response was served from, and how fresh it is.

use std::sync::Arc;
use std::task::{Context as TaskContext, Poll};
use std::time::Duration;

use ::http::header::{AGE, CACHE_CONTROL};
use ::http::{HeaderMap, HeaderName, HeaderValue, Method, Request, Response};
use percent_encoding::{utf8_percent_encode, AsciiSet, CONTROLS};
use tower::{Layer, Service};

use super::{default_methods, BoxFuture};
use crate::context::{self, Detected};

/// The header [`DetectLayer`] writes unless told otherwise.
///
/// ```
/// assert_eq!(cache_core::http::DEFAULT_KEYS_HEADER, "x-from-cache-keys");
/// ```
pub const DEFAULT_KEYS_HEADER: &str = "x-from-cache-keys";

/// Percent-encoded in the keys header so a key can never be split (`,`), trimmed (space) or rejected as a header
/// value (controls; non-ASCII is always encoded). Rendered argument values are escaped already, but literal
/// template text and keys passed to `Cache::get_or_set` are not.
const HEADER_ESCAPED: &AsciiSet = &CONTROLS.add(b' ').add(b'"').add(b'%').add(b',');

/// Runs the handler inside [`context::detect`] and describes its cache hits in the response headers.
///
/// When at least one value was served from cache:
/// - the keys header (default [`DEFAULT_KEYS_HEADER`]) lists the distinct keys in the order they were served,
///   separated by `", "`, with `%`, `,`, space, `"`, control and non-ASCII characters percent-encoded;
/// - `Age`: the age of the oldest value served, in whole seconds;
/// - `Cache-Control: max-age=A+R` where `A` is that `Age` and `R` the shortest remaining TTL of the values
///   served (`0` if one was served stale, by failover). HTTP caches subtract `Age` from `max-age`, so a
///   downstream copy goes stale exactly when the first underlying entry expires. Values without a TTL do not
///   limit it; if none has one, no `Cache-Control` is written.
///
/// `Age` and `Cache-Control` are left alone when the handler already set `Cache-Control`: the handler's
/// freshness policy wins, and adding an `Age` would silently shorten it. This differs from cashews'
/// `CacheRequestControlMiddleware`, which overwrites `Cache-Control` with `private, max-age=<remaining TTL of the
/// first hit>`, writes that same number into `Age` (which makes the response stale on arrival), and sends
/// `Cache-Control: no-cache` when there was no hit; here a response without hits is left untouched.
///
/// The keys header exposes key names (which may contain ids): meant for debugging and observability; rename or
/// strip it at the edge if clients should not see it.
///
/// ```
/// use cache_core::http::DetectLayer;
/// use tower::{service_fn, ServiceBuilder, ServiceExt};
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() {
/// let cache = cache_core::Cache::memory();
/// cache.set("user:1", &"ada", Some(std::time::Duration::from_secs(30))).await.unwrap();
/// let service = ServiceBuilder::new()
///     .layer(DetectLayer::new().header_name(http::HeaderName::from_static("x-cache-keys")))
///     .service(service_fn(move |_req: http::Request<()>| {
///         let cache = cache.clone();
///         async move {
///             let name: String = cache.get_or_set("user:1", None, || async { unreachable!() }).await;
///             Ok::<_, std::convert::Infallible>(http::Response::new(name))
///         }
///     }));
/// let response = service.oneshot(http::Request::get("/").body(()).unwrap()).await.unwrap();
/// assert_eq!(response.headers()["x-cache-keys"], "user:1");
/// assert_eq!(response.headers()["age"], "0");
/// let cache_control = response.headers()["cache-control"].to_str().unwrap();
/// assert!(cache_control == "max-age=30" || cache_control == "max-age=29");
/// # }
/// ```
#[derive(Debug, Clone)]
pub struct DetectLayer {
    config: Arc<Config>,
}

#[derive(Debug, Clone)]
struct Config {
    header: HeaderName,
    methods: Arc<[Method]>,
    freshness: bool,
    private: bool,
}

impl Default for DetectLayer {
    fn default() -> Self {
        Self {
            config: Arc::new(Config {
                header: HeaderName::from_static(DEFAULT_KEYS_HEADER),
                methods: default_methods(),
                freshness: true,
                private: false,
            }),
        }
    }
}

impl DetectLayer {
    /// A layer for `GET` and `HEAD` requests writing [`DEFAULT_KEYS_HEADER`], `Age` and `Cache-Control`.
    ///
    /// ```
    /// let layer = cache_core::http::DetectLayer::new();
    /// ```
    pub fn new() -> Self {
        Self::default()
    }

    fn config(&mut self) -> &mut Config {
        // Layers are configured once, before they are cloned into services, so this rarely copies.
        Arc::make_mut(&mut self.config)
    }

    /// The header listing the keys (default `x-from-cache-keys`).
    ///
    /// ```
    /// use http::HeaderName;
    /// let layer = cache_core::http::DetectLayer::new().header_name(HeaderName::from_static("x-cache-hits"));
    /// ```
    pub fn header_name(mut self, name: HeaderName) -> Self {
        self.config().header = name;
        self
    }

    /// The request methods whose responses are described (replaces the default `GET`, `HEAD`).
    ///
    /// ```
    /// use http::Method;
    /// let layer = cache_core::http::DetectLayer::new().methods([Method::GET, Method::POST]);
    /// ```
    pub fn methods(mut self, methods: impl IntoIterator<Item = Method>) -> Self {
        self.config().methods = methods.into_iter().collect();
        self
    }

    /// Whether to write `Age` and `Cache-Control` on hits (default `true`).
    ///
    /// ```
    /// let layer = cache_core::http::DetectLayer::new().freshness_headers(false);
    /// ```
    pub fn freshness_headers(mut self, enabled: bool) -> Self {
        self.config().freshness = enabled;
        self
    }

    /// Whether the written `Cache-Control` is `private, max-age=…` (only the client may keep it) rather than
    /// `max-age=…`. Turn it on when cached values are specific to the user. Default `false`.
    ///
    /// ```
    /// let layer = cache_core::http::DetectLayer::new().private(true);
    /// ```
    pub fn private(mut self, private: bool) -> Self {
        self.config().private = private;
        self
    }
}

impl<S> Layer<S> for DetectLayer {
    type Service = DetectService<S>;

    fn layer(&self, inner: S) -> Self::Service {
        DetectService {
            inner,
            config: self.config.clone(),
        }
    }
}

/// The service of [`DetectLayer`].
///
/// ```
/// use tower::Layer;
/// let service = cache_core::http::DetectLayer::new().layer(tower::service_fn(|_req: http::Request<()>| async {
///     Ok::<_, std::convert::Infallible>(http::Response::new(()))
/// }));
/// ```
#[derive(Debug, Clone)]
pub struct DetectService<S> {
    inner: S,
    config: Arc<Config>,
}

impl<S, ReqB, ResB> Service<Request<ReqB>> for DetectService<S>
where
    S: Service<Request<ReqB>, Response = Response<ResB>>,
    S::Future: Send + 'static,
    S::Error: 'static,
    ResB: 'static,
{
    type Response = Response<ResB>;
    type Error = S::Error;
    type Future = BoxFuture<Result<Response<ResB>, S::Error>>;

    fn poll_ready(&mut self, cx: &mut TaskContext<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, request: Request<ReqB>) -> Self::Future {
        if !self.config.methods.contains(request.method()) {
            return Box::pin(self.inner.call(request));
        }
        let config = self.config.clone();
        let future = self.inner.call(request);
        Box::pin(async move {
            let (result, detected) = context::detect(future).await;
            let mut response = result?;
            describe(&config, &detected, response.headers_mut());
            Ok(response)
        })
    }
}

fn describe(config: &Config, detected: &Detected, headers: &mut HeaderMap) {
    if detected.is_empty() {
        return;
    }
    if let Some(value) = keys_header(detected) {
        headers.insert(config.header.clone(), value);
    }
    if !config.freshness || headers.contains_key(CACHE_CONTROL) {
        return;
    }
    let hits = detected.hits();
    let age = hits
        .iter()
        .map(|h| h.age)
        .max()
        .unwrap_or_default()
        .as_secs();
    headers.insert(AGE, HeaderValue::from(age));
    let fresh_for = hits
        .iter()
        .filter_map(|h| if h.stale { Some(Duration::ZERO) } else { h.ttl })
        .min();
    if let Some(fresh_for) = fresh_for {
        let max_age = age.saturating_add(fresh_for.as_secs());
        let prefix = if config.private { "private, " } else { "" };
        if let Ok(value) = HeaderValue::try_from(format!("{prefix}max-age={max_age}")) {
            headers.insert(CACHE_CONTROL, value);
        }
    }
}

/// The distinct keys, escaped and joined; `None` only if the value is somehow not a valid header value.
fn keys_header(detected: &Detected) -> Option<HeaderValue> {
    let mut seen: Vec<&str> = Vec::new();
    for key in detected.keys() {
        if !seen.contains(&key) {
            seen.push(key);
        }
    }
    let joined = seen
        .iter()
        .map(|key| utf8_percent_encode(key, HEADER_ESCAPED).to_string())
        .collect::<Vec<_>>()
        .join(", ");
    HeaderValue::try_from(joined).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn keys_are_escaped_and_deduplicated() {
        let cache = crate::Cache::memory();
        for key in ["a,b", "ü %", "a,b"] {
            cache.set(key, &1u8, None).await.unwrap();
        }
        let (_, detected) = context::detect(async {
            for key in ["a,b", "ü %", "a,b"] {
                cache.get_or_set(key, None, || async { 0u8 }).await;
            }
        })
        .await;
        let value = keys_header(&detected).unwrap();
        assert_eq!(value, "a%2Cb, %C3%BC%20%25");
    }
}
