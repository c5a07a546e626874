//! Tower middleware (works with axum, hyper and any tower stack) that connects HTTP requests to the cache
//! [`context`](crate::context). Enabled by the `http` feature.
//!
//! - [`CacheControlLayer`]: the request's `Cache-Control` (`no-cache`, `no-store`, `max-age=N`), `Pragma:
//!   no-cache` and `Clear-Site-Data: "cache"` switch cache reads/writes off for that request only.
//! - [`DetectLayer`]: a response header listing the keys the response was served from
//!   (`X-From-Cache-Keys` by default), plus `Age` and `Cache-Control: max-age`.
//! - [`EtagLayer`]: strong `ETag`s for successful responses; a conditional request whose ETag is still backed
//!   by the same cache entries gets `304 Not Modified` without running the handler.
//! - [`RateLimitLayer`]: a shared rate limit per client (any key derived from the request); `429` with
//!   `Retry-After` once it is used up.
//!
//! Install them outermost first, in this order, so each sees the scope of the one before:
//!
//! ```
//! use cache_core::http::{CacheControlLayer, DetectLayer, EtagLayer};
//! use http_body_util::Full;
//! use tower::{service_fn, ServiceBuilder, ServiceExt};
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() {
//! let cache = cache_core::Cache::memory();
//! let db = cache.clone();
//! let service = ServiceBuilder::new()
//!     .layer(CacheControlLayer::new())
//!     .layer(DetectLayer::new())
//!     .layer(EtagLayer::new().cache(cache.clone()))
//!     .service(service_fn(move |_req: http::Request<()>| {
//!         let db = db.clone();
//!         async move {
//!             let name: String = db.get_or_set("user:1", None, || async { "ada".to_string() }).await;
//!             Ok::<_, std::convert::Infallible>(http::Response::new(Full::new(bytes::Bytes::from(name))))
//!         }
//!     }));
//! let request = || http::Request::get("/users/1").body(()).unwrap();
//! let first = service.clone().oneshot(request()).await.unwrap();
//! assert!(first.headers().get("x-from-cache-keys").is_none());
//! let second = service.clone().oneshot(request()).await.unwrap();
//! assert_eq!(second.headers()["x-from-cache-keys"], "user:1");
//! # }
//! ```
//!
//! The scopes cover the handler's future — everything it awaits until it returns the response — but not a
//! response body that is streamed afterwards, and not work the inner service does synchronously inside
//! `Service::call` (axum handlers run inside the future, so they are covered).

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;

use ::http::Method;

mod body;
mod cache_control;
mod detect;
mod etag;
mod rate_limit;

pub use body::EtagBody;
pub use cache_control::{CacheControlLayer, CacheControlService, RequestDirectives};
pub use detect::{DetectLayer, DetectService, DEFAULT_KEYS_HEADER};
pub use etag::{EtagKeyFn, EtagLayer, EtagService, ETAG_STRATEGY};
pub use rate_limit::{RateKeyFn, RateLimitLayer, RateLimitService};

/// The future of every service here: boxed, because the context scopes wrap the inner future in types that
/// cannot be named.
///
/// ```
/// let future: cache_core::http::BoxFuture<u8> = Box::pin(async { 1 });
/// ```
pub type BoxFuture<T> = Pin<Box<dyn Future<Output = T> + Send + 'static>>;

/// The methods a layer applies to unless told otherwise: `GET` and `HEAD`, the ones whose responses are
/// read-only and so may come from cache.
fn default_methods() -> Arc<[Method]> {
    Arc::from([Method::GET, Method::HEAD])
}
