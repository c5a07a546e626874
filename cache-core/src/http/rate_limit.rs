//! [`RateLimitLayer`]: a rate limit per client (or any key derived from the request), answering `429 Too Many
//! Requests` with `Retry-After` once it is used up.

use std::sync::Arc;
use std::task::{Context as TaskContext, Poll};

use ::http::header::RETRY_AFTER;
use ::http::request::Parts;
use ::http::{HeaderValue, Request, Response, StatusCode};
use tower::{Layer, Service};

use super::BoxFuture;
use crate::cache::Cache;
use crate::toolkit::RateRule;

/// Derives a request's rate-limit key; `None` leaves the request unlimited.
pub type RateKeyFn = Arc<dyn Fn(&Parts) -> Option<String> + Send + Sync>;

/// Limits requests per key (from [`RateLimitLayer::new`]'s function of the request) with a [`RateRule`] kept in
/// the cache's backend, so every instance of the service shares the limit. A request over it gets `429` with
/// `Retry-After` (whole seconds, rounded up) and the inner service is not called. A backend failure lets requests
/// through (fail-open, logged and counted).
///
/// ```
/// use cache_core::http::RateLimitLayer;
/// use http_body_util::Empty;
/// use std::time::Duration;
/// use tower::{service_fn, ServiceBuilder, ServiceExt};
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() {
/// let per_client = |parts: &http::request::Parts| {
///     parts.headers.get("x-client").and_then(|v| v.to_str().ok()).map(str::to_owned)
/// };
/// let service = ServiceBuilder::new()
///     .layer(RateLimitLayer::new(1, Duration::from_secs(60), per_client).cache(cache_core::Cache::memory()))
///     .service(service_fn(|_req: http::Request<()>| async {
///         Ok::<_, std::convert::Infallible>(http::Response::new(Empty::<bytes::Bytes>::new()))
///     }));
/// let request = || http::Request::get("/").header("x-client", "a").body(()).unwrap();
/// assert_eq!(service.clone().oneshot(request()).await.unwrap().status(), 200);
/// let refused = service.clone().oneshot(request()).await.unwrap();
/// assert_eq!(refused.status(), 429);
/// assert_eq!(refused.headers()["retry-after"], "60");
/// # }
/// ```
#[derive(Clone)]
pub struct RateLimitLayer {
    cache: Option<Cache>,
    rule: RateRule,
    key: RateKeyFn,
}

impl std::fmt::Debug for RateLimitLayer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RateLimitLayer")
            .field("rule", &self.rule)
            .finish_non_exhaustive()
    }
}

impl RateLimitLayer {
    /// `limit` requests per `period` (fixed windows) per key; `key` returns `None` for requests it does not
    /// limit. Keys are stored as `rate_limit:<key>` in the global cache unless [`RateLimitLayer::cache`] names
    /// another.
    ///
    /// ```
    /// let layer = cache_core::http::RateLimitLayer::new(100, std::time::Duration::from_secs(60), |parts| {
    ///     Some(parts.uri.path().to_owned())
    /// });
    /// ```
    pub fn new<F>(limit: u64, period: std::time::Duration, key: F) -> Self
    where
        F: Fn(&Parts) -> Option<String> + Send + Sync + 'static,
    {
        Self {
            cache: None,
            rule: RateRule::fixed(limit, period),
            key: Arc::new(key),
        }
    }

    /// Counts with `rule` instead (e.g. [`RateRule::sliding`]).
    ///
    /// ```
    /// use cache_core::{http::RateLimitLayer, RateRule};
    /// use std::time::Duration;
    /// let layer = RateLimitLayer::new(100, Duration::from_secs(60), |_| Some("all".into()))
    ///     .rule(RateRule::sliding(100, Duration::from_secs(60)));
    /// ```
    pub fn rule(mut self, rule: RateRule) -> Self {
        self.rule = rule;
        self
    }

    /// Keeps the limits in `cache` instead of the global one.
    ///
    /// ```
    /// let layer = cache_core::http::RateLimitLayer::new(1, std::time::Duration::from_secs(1), |_| None)
    ///     .cache(cache_core::Cache::memory());
    /// ```
    pub fn cache(mut self, cache: Cache) -> Self {
        self.cache = Some(cache);
        self
    }
}

impl<S> Layer<S> for RateLimitLayer {
    type Service = RateLimitService<S>;

    fn layer(&self, inner: S) -> Self::Service {
        RateLimitService {
            inner,
            layer: self.clone(),
        }
    }
}

/// The service of [`RateLimitLayer`].
///
/// ```
/// use cache_core::http::RateLimitLayer;
/// use tower::Layer;
/// let service = RateLimitLayer::new(1, std::time::Duration::from_secs(1), |_| None).layer(tower::service_fn(
///     |_req: http::Request<()>| async { Ok::<_, std::convert::Infallible>(http::Response::new(String::new())) },
/// ));
/// ```
#[derive(Clone, Debug)]
pub struct RateLimitService<S> {
    inner: S,
    layer: RateLimitLayer,
}

impl<S, ReqB, ResB> Service<Request<ReqB>> for RateLimitService<S>
where
    S: Service<Request<ReqB>, Response = Response<ResB>> + Clone + Send + 'static,
    S::Future: Send + 'static,
    ReqB: Send + 'static,
    ResB: Default + 'static,
{
    type Response = Response<ResB>;
    type Error = S::Error;
    type Future = BoxFuture<Result<Response<ResB>, S::Error>>;

    fn poll_ready(&mut self, cx: &mut TaskContext<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, request: Request<ReqB>) -> Self::Future {
        let (parts, body) = request.into_parts();
        let key = (self.layer.key)(&parts);
        let request = Request::from_parts(parts, body);
        let Some(key) = key else {
            return Box::pin(self.inner.call(request));
        };
        // The service that was polled ready serves this request; the clone is left for the next one.
        let clone = self.inner.clone();
        let mut inner = std::mem::replace(&mut self.inner, clone);
        let cache = self.layer.cache.clone();
        let rule = self.layer.rule;
        Box::pin(async move {
            let cache = cache.unwrap_or_else(crate::cache::global);
            match cache
                .rate_limit_with(&format!("rate_limit:{key}"), rule)
                .await
            {
                Ok(_) => inner.call(request).await,
                Err(limited) => {
                    let mut response = Response::new(ResB::default());
                    *response.status_mut() = StatusCode::TOO_MANY_REQUESTS;
                    let secs = limited.retry_after.as_secs()
                        + u64::from(limited.retry_after.subsec_nanos() > 0);
                    response
                        .headers_mut()
                        .insert(RETRY_AFTER, HeaderValue::from(secs.max(1)));
                    Ok(response)
                }
            }
        })
    }
}
