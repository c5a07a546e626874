//! [`EtagLayer`]: strong ETags for successful responses, and `304 Not Modified` without running the handler
//! while the cache entries a response was built from are unchanged.

use std::sync::Arc;
use std::task::{Context as TaskContext, Poll};
use std::time::Duration;

use ::http::header::{CONTENT_LENGTH, ETAG, IF_NONE_MATCH, VARY};
use ::http::request::Parts;
use ::http::{HeaderMap, HeaderValue, Method, Request, Response, StatusCode};
use http_body::Body;
use serde::de::IgnoredAny;
use serde::{Deserialize, Serialize};
use tower::{Layer, Service};

use super::{default_methods, BoxFuture, EtagBody};
use crate::cache::{global, Cache};
use crate::context::{self, Detected, Hit, Ops};

/// The strategy name [`detect`](crate::context::detect) reports for the entries behind a `304` that
/// [`EtagLayer`] answered without running the handler.
///
/// ```
/// assert_eq!(cache_core::http::ETAG_STRATEGY, "etag");
/// ```
pub const ETAG_STRATEGY: &str = "etag";

/// Derives the cache key under which a request's ETag is remembered; `None` leaves the request alone.
///
/// ```
/// use std::sync::Arc;
/// let by_path: cache_core::http::EtagKeyFn = Arc::new(|parts: &http::request::Parts| {
///     Some(format!("etag:{}", parts.uri.path()))
/// });
/// ```
pub type EtagKeyFn = Arc<dyn Fn(&Parts) -> Option<String> + Send + Sync>;

/// Default limit of the body size [`EtagLayer`] reads to hash.
const DEFAULT_MAX_BODY: usize = 1 << 20;

/// What is remembered about the last response served from cache for one request key.
#[derive(Debug, Serialize, Deserialize)]
struct Record {
    /// The full entity tag, quotes included.
    etag: String,
    /// The cache entries the response was served from: each key with the fingerprint of the entry read.
    entries: Vec<(String, u64)>,
    /// The request headers the response varied on (lowercase names) and a hash of their values.
    vary: Vec<String>,
    vary_hash: u64,
}

/// Adds a strong `ETag` (a hash of the body) to `2xx` responses and answers conditional requests with `304 Not
/// Modified`, without running the handler when possible.
///
/// For each request with one of the configured methods (default `GET`, `HEAD`):
/// 1. If it has `If-None-Match` (a list, `W/` weak tags, or `*`) that matches the ETag remembered for its key,
///    and every cache entry that response was served from is still the very entry it was served from (same
///    bytes: compared by [`fingerprint`](crate::EnvelopeMeta::fingerprint), so any rewrite — an invalidation
///    and recompute, a `no-cache` refresh, `_set`, an early or soft-TTL refresh — counts as a change), is
///    readable and is young enough for the request's `max-age`, the answer is `304` with that `ETag`: the
///    handler does not run. The entries are
///    reported to an enclosing [`detect`](crate::context::detect) (strategy [`ETAG_STRATEGY`]), so a
///    [`DetectLayer`](super::DetectLayer) around this layer describes them. Skipped when the request's context
///    disables cache reads or invalidates (see [`CacheControlLayer`](super::CacheControlLayer)).
/// 2. Otherwise the handler runs inside [`detect`](crate::context::detect). A `2xx` response to `GET` whose body
///    is at most [`max_body_size`](EtagLayer::max_body_size) bytes gets an `ETag` (an `ETag` the handler set
///    itself is kept, and its body is not read); a longer body streams through untouched, without one.
/// 3. If the response was served from cache (at least one hit, none stale) and writes are not disabled, its
///    ETag and hit keys are remembered under the request's key (default `etag:GET:<path?query>`; `HEAD` shares
///    `GET`'s) for the shortest remaining TTL of the hits. A response's `Vary` header is honoured: a later
///    request must have the same values of those headers; `Vary: *` is never remembered.
/// 4. If the request's `If-None-Match` matches the response's ETag, the response becomes a `304` with the same
///    headers and no body.
///
/// Invalidating or rewriting any entry the response was built from (with `#[invalidates]`, `Cache::delete`, a
/// refresh, …) therefore makes the next conditional request run the handler again; it answers `304` only if the
/// new response hashes to the same ETag.
///
/// The shortcut in step 1 assumes a response depends only on the request (its key, and the headers it names in
/// `Vary`) and on the cached values it read. Responses that also use uncached data, or cache misses next to hits
/// in one response, can be answered `304` after that data changed; give such routes a
/// [`key_fn`](EtagLayer::key_fn) that returns `None`. The layer's [`cache`](EtagLayer::cache) must be the cache
/// holding those entries (the default, [`global`], is the one the macros use).
///
/// ```
/// use cache_core::http::EtagLayer;
/// use http_body_util::Full;
/// use tower::{service_fn, ServiceBuilder, ServiceExt};
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() {
/// let cache = cache_core::Cache::memory();
/// let db = cache.clone();
/// let service = ServiceBuilder::new()
///     .layer(EtagLayer::new().cache(cache.clone()))
///     .service(service_fn(move |_req: http::Request<()>| {
///         let db = db.clone();
///         async move {
///             let v: String = db.get_or_set("page", None, || async { "content".to_string() }).await;
///             Ok::<_, std::convert::Infallible>(http::Response::new(Full::new(bytes::Bytes::from(v))))
///         }
///     }));
/// let get = |etag: Option<&str>| {
///     let mut request = http::Request::get("/page");
///     if let Some(etag) = etag {
///         request = request.header("if-none-match", etag);
///     }
///     service.clone().oneshot(request.body(()).unwrap())
/// };
/// get(None).await.unwrap(); // computes and stores "page"
/// let hit = get(None).await.unwrap(); // served from cache: its ETag is remembered
/// let etag = hit.headers()["etag"].to_str().unwrap().to_owned();
/// assert_eq!(get(Some(&etag)).await.unwrap().status(), http::StatusCode::NOT_MODIFIED);
/// cache.delete("page").await.unwrap();
/// let after = get(Some(&etag)).await.unwrap(); // the handler runs again: same content, so still a 304
/// assert_eq!(after.status(), http::StatusCode::NOT_MODIFIED);
/// # }
/// ```
#[derive(Clone)]
pub struct EtagLayer {
    config: Arc<Config>,
}

#[derive(Clone)]
struct Config {
    cache: Option<Cache>,
    methods: Arc<[Method]>,
    max_body: usize,
    key_fn: EtagKeyFn,
}

impl std::fmt::Debug for EtagLayer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EtagLayer")
            .field("cache", &self.config.cache)
            .field("methods", &self.config.methods)
            .field("max_body_size", &self.config.max_body)
            .finish_non_exhaustive()
    }
}

impl Default for EtagLayer {
    fn default() -> Self {
        Self {
            config: Arc::new(Config {
                cache: None,
                methods: default_methods(),
                max_body: DEFAULT_MAX_BODY,
                key_fn: Arc::new(default_key),
            }),
        }
    }
}

/// `etag:<method>:<path?query>`, with `HEAD` sharing `GET`'s key: both must carry the same validators.
fn default_key(parts: &Parts) -> Option<String> {
    let method = if parts.method == Method::HEAD {
        &Method::GET
    } else {
        &parts.method
    };
    let target = parts.uri.path_and_query().map_or("/", |p| p.as_str());
    Some(format!("etag:{method}:{target}"))
}

impl EtagLayer {
    /// A layer for `GET` and `HEAD` on the [`global`] cache, hashing bodies up to 1 MiB.
    ///
    /// ```
    /// let layer = cache_core::http::EtagLayer::new();
    /// ```
    pub fn new() -> Self {
        Self::default()
    }

    fn config(&mut self) -> &mut Config {
        Arc::make_mut(&mut self.config)
    }

    /// The cache holding both the remembered ETags and the entries responses are built from. Default: the
    /// [`global`] cache at the time of each request.
    ///
    /// ```
    /// let layer = cache_core::http::EtagLayer::new().cache(cache_core::Cache::memory());
    /// ```
    pub fn cache(mut self, cache: Cache) -> Self {
        self.config().cache = Some(cache);
        self
    }

    /// The request methods handled (replaces the default `GET`, `HEAD`). ETags are computed for `GET` only
    /// (a `HEAD` response has no body to hash); other methods only use remembered ETags.
    ///
    /// ```
    /// let layer = cache_core::http::EtagLayer::new().methods([http::Method::GET]);
    /// ```
    pub fn methods(mut self, methods: impl IntoIterator<Item = Method>) -> Self {
        self.config().methods = methods.into_iter().collect();
        self
    }

    /// The largest body read into memory to hash (default 1 MiB); a longer one gets no ETag and is streamed.
    ///
    /// ```
    /// let layer = cache_core::http::EtagLayer::new().max_body_size(64 * 1024);
    /// ```
    pub fn max_body_size(mut self, bytes: usize) -> Self {
        self.config().max_body = bytes;
        self
    }

    /// How a request's remembered-ETag key is derived (default `etag:<method>:<path?query>`). Return `None` for
    /// requests that should get no remembered ETag, and include whatever else the response depends on (a user
    /// id, a tenant) that is not named in its `Vary` header.
    ///
    /// ```
    /// let layer = cache_core::http::EtagLayer::new().key_fn(|parts| {
    ///     let user = parts.headers.get("x-user")?.to_str().ok()?;
    ///     Some(format!("etag:{user}:{}", parts.uri))
    /// });
    /// ```
    pub fn key_fn(
        mut self,
        key_fn: impl Fn(&Parts) -> Option<String> + Send + Sync + 'static,
    ) -> Self {
        self.config().key_fn = Arc::new(key_fn);
        self
    }
}

impl<S> Layer<S> for EtagLayer {
    type Service = EtagService<S>;

    fn layer(&self, inner: S) -> Self::Service {
        EtagService {
            inner,
            config: self.config.clone(),
        }
    }
}

/// The service of [`EtagLayer`].
///
/// ```
/// use tower::Layer;
/// let service = cache_core::http::EtagLayer::new().layer(tower::service_fn(|_req: http::Request<()>| async {
///     Ok::<_, std::convert::Infallible>(http::Response::new(http_body_util::Empty::<bytes::Bytes>::new()))
/// }));
/// ```
#[derive(Clone)]
pub struct EtagService<S> {
    inner: S,
    config: Arc<Config>,
}

impl<S: std::fmt::Debug> std::fmt::Debug for EtagService<S> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EtagService")
            .field("inner", &self.inner)
            .finish_non_exhaustive()
    }
}

impl<S, ReqB, ResB> Service<Request<ReqB>> for EtagService<S>
where
    S: Service<Request<ReqB>, Response = Response<ResB>> + Clone + Send + 'static,
    S::Future: Send + 'static,
    S::Error: Send + 'static,
    ReqB: Send + 'static,
    ResB: Body + Send + 'static,
    ResB::Error: Send,
{
    type Response = Response<EtagBody<ResB>>;
    type Error = S::Error;
    type Future = BoxFuture<Result<Self::Response, S::Error>>;

    fn poll_ready(&mut self, cx: &mut TaskContext<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, request: Request<ReqB>) -> Self::Future {
        if !self.config.methods.contains(request.method()) {
            let future = self.inner.call(request);
            return Box::pin(async move { Ok(future.await?.map(EtagBody::passthrough)) });
        }
        // The clone that was driven to readiness handles this request (tower's usual pattern), since the inner
        // service may not be called at all.
        let clone = self.inner.clone();
        let inner = std::mem::replace(&mut self.inner, clone);
        let config = self.config.clone();
        Box::pin(handle(inner, config, request))
    }
}

async fn handle<S, ReqB, ResB>(
    mut inner: S,
    config: Arc<Config>,
    request: Request<ReqB>,
) -> Result<Response<EtagBody<ResB>>, S::Error>
where
    S: Service<Request<ReqB>, Response = Response<ResB>>,
    ResB: Body,
{
    // Read the context here, in the future: this is where the enclosing layers' scopes are installed.
    let flags = context::flags();
    let cache = config.cache.clone().unwrap_or_else(global);
    let (parts, body) = request.into_parts();
    let key = (config.key_fn)(&parts);
    let condition = IfNoneMatch::parse(&parts.headers);
    let is_get = parts.method == Method::GET;
    let request_headers = key.as_ref().map(|_| parts.headers.clone());
    let request = Request::from_parts(parts, body);

    if let (Some(key), Some(condition), Some(headers)) = (&key, &condition, &request_headers)
        && flags.allows(Ops::GET)
        && !flags.invalidate_further
        && let Some(etag) = remembered(&cache, key, condition, headers, flags.max_age).await
    {
        return Ok(not_modified(HeaderMap::new(), etag));
    }

    let (result, detected) = context::detect(inner.call(request)).await;
    let response = result?;
    if !is_get || !response.status().is_success() {
        return Ok(response.map(EtagBody::passthrough));
    }
    let (mut head, body) = response.into_parts();
    let (body, etag) = match head.headers.get(ETAG) {
        Some(etag) => (EtagBody::passthrough(body), Some(etag.clone())),
        None => {
            let (body, hash) = EtagBody::read_ahead(body, config.max_body).await;
            let etag = hash.and_then(|h| HeaderValue::try_from(format!("\"{h:032x}\"")).ok());
            if let Some(etag) = &etag {
                head.headers.insert(ETAG, etag.clone());
            }
            (body, etag)
        }
    };
    let Some(etag) = etag else {
        return Ok(Response::from_parts(head, body));
    };
    if let (Some(key), Some(headers)) = (&key, &request_headers)
        && flags.allows(Ops::SET)
    {
        remember(&cache, key, &etag, &detected, headers, &head.headers).await;
    }
    if condition.is_some_and(|c| c.matches(etag.as_bytes())) {
        return Ok(not_modified(head.headers, etag));
    }
    Ok(Response::from_parts(head, body))
}

/// A `304` carrying the headers the `200` would have had (RFC 9110 §15.4.5), without the body's length.
fn not_modified<B: Body>(mut headers: HeaderMap, etag: HeaderValue) -> Response<EtagBody<B>> {
    headers.remove(CONTENT_LENGTH);
    headers.insert(ETAG, etag);
    let mut response = Response::new(EtagBody::empty());
    *response.status_mut() = StatusCode::NOT_MODIFIED;
    *response.headers_mut() = headers;
    response
}

/// The remembered ETag of `key` if `condition` matches it and every entry behind it is still there and young
/// enough; each such entry is reported as a hit.
async fn remembered(
    cache: &Cache,
    key: &str,
    condition: &IfNoneMatch,
    request_headers: &HeaderMap,
    max_age: Option<Duration>,
) -> Option<HeaderValue> {
    let (_, record): (_, Record) = cache.read_entry(key).await.ok().flatten()?;
    if !condition.matches(record.etag.as_bytes())
        || vary_hash(&record.vary, request_headers) != record.vary_hash
    {
        return None;
    }
    let mut hits = Vec::with_capacity(record.entries.len());
    for (entry, fingerprint) in &record.entries {
        // Decoding into `IgnoredAny` checks the entry is a readable, unexpired value of ours without knowing
        // its type, and yields its age, remaining TTL and fingerprint.
        let (meta, _) = cache.read_entry::<IgnoredAny>(entry).await.ok().flatten()?;
        // Existing is not enough: a rewritten entry (same key, new value) must not revalidate the old ETag.
        if meta.fingerprint() != *fingerprint {
            return None;
        }
        let age = meta.age();
        if max_age.is_some_and(|max| age >= max) {
            return None;
        }
        hits.push(Hit {
            key: entry.clone(),
            strategy: ETAG_STRATEGY,
            ttl: meta.remaining_ttl(),
            age,
            stale: false,
            fingerprint: *fingerprint,
        });
    }
    let etag = HeaderValue::try_from(record.etag).ok()?;
    for hit in hits {
        context::record_hit(|| hit);
    }
    Some(etag)
}

/// Remembers `etag` for `key` when the response was served from cache, for as long as its entries live.
async fn remember(
    cache: &Cache,
    key: &str,
    etag: &HeaderValue,
    detected: &Detected,
    request_headers: &HeaderMap,
    response_headers: &HeaderMap,
) {
    // Only a response built entirely from fresh cache entries can be revalidated by checking those entries: a
    // value computed for it (a miss) is not tracked by the record, so its later change would go unnoticed.
    let hits = detected.hits();
    if hits.is_empty() || hits.iter().any(|h| h.stale) || !detected.misses().is_empty() {
        return;
    }
    let Ok(etag) = etag.to_str() else { return };
    let Some(vary) = vary_names(response_headers) else {
        return;
    };
    let ttl = hits.iter().filter_map(|h| h.ttl).min();
    if ttl.is_some_and(|t| t.is_zero()) {
        return;
    }
    let mut entries: Vec<(String, u64)> = Vec::with_capacity(hits.len());
    for hit in hits {
        let entry = (hit.key.clone(), hit.fingerprint);
        if !entries.contains(&entry) {
            entries.push(entry);
        }
    }
    let record = Record {
        etag: etag.to_owned(),
        vary_hash: vary_hash(&vary, request_headers),
        vary,
        entries,
    };
    // Best effort: without the record, the next conditional request just runs the handler.
    if let Err(error) = cache.store_internal(key, &record, ttl).await {
        tracing::debug!(key, %error, "ETag not remembered");
    }
}

/// The lowercase header names of the response's `Vary`; `None` for `Vary: *` (varies on everything).
fn vary_names(headers: &HeaderMap) -> Option<Vec<String>> {
    let mut names = Vec::new();
    for line in headers.get_all(VARY) {
        for name in String::from_utf8_lossy(line.as_bytes()).split(',') {
            let name = name.trim().to_ascii_lowercase();
            if name == "*" {
                return None;
            }
            if !name.is_empty() && !names.contains(&name) {
                names.push(name);
            }
        }
    }
    names.sort();
    Some(names)
}

fn vary_hash(names: &[String], headers: &HeaderMap) -> u64 {
    let mut hasher = xxhash_rust::xxh3::Xxh3::new();
    for name in names {
        hasher.update(name.as_bytes());
        for value in headers.get_all(name.as_str()) {
            hasher.update(&[0]);
            hasher.update(value.as_bytes());
        }
        hasher.update(&[1]);
    }
    hasher.digest()
}

/// A parsed `If-None-Match`: `*` or a list of opaque tags (without quotes or `W/`).
#[derive(Debug, Default, PartialEq, Eq)]
struct IfNoneMatch {
    any: bool,
    tags: Vec<Vec<u8>>,
}

impl IfNoneMatch {
    /// `None` without the header or without anything recognisable in it.
    fn parse(headers: &HeaderMap) -> Option<Self> {
        let mut parsed = Self::default();
        for line in headers.get_all(IF_NONE_MATCH) {
            let mut rest = line.as_bytes();
            loop {
                rest = rest.trim_ascii_start();
                while let Some(after) = rest.strip_prefix(b",") {
                    rest = after.trim_ascii_start();
                }
                if rest.is_empty() {
                    break;
                }
                if let Some(after) = rest.strip_prefix(b"*") {
                    parsed.any = true;
                    rest = after;
                    continue;
                }
                let tag = rest.strip_prefix(b"W/").unwrap_or(rest);
                if let Some(after) = tag.strip_prefix(b"\"")
                    && let Some(end) = after.iter().position(|b| *b == b'"')
                {
                    parsed.tags.push(after[..end].to_vec());
                    rest = &after[end + 1..];
                    continue;
                }
                // Not a tag: skip to the next list item.
                match rest.iter().position(|b| *b == b',') {
                    Some(comma) => rest = &rest[comma + 1..],
                    None => break,
                }
            }
        }
        (parsed.any || !parsed.tags.is_empty()).then_some(parsed)
    }

    /// Weak comparison (RFC 9110 §13.1.2): opaque tags equal, `W/` ignored on both sides.
    fn matches(&self, etag: &[u8]) -> bool {
        if self.any {
            return true;
        }
        let etag = etag.strip_prefix(b"W/").unwrap_or(etag);
        let opaque = etag
            .strip_prefix(b"\"")
            .and_then(|e| e.strip_suffix(b"\""))
            .unwrap_or(etag);
        self.tags.iter().any(|tag| tag == opaque)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(lines: &[&[u8]]) -> Option<IfNoneMatch> {
        let mut headers = HeaderMap::new();
        for line in lines {
            headers.append(IF_NONE_MATCH, HeaderValue::from_bytes(line).unwrap());
        }
        IfNoneMatch::parse(&headers)
    }

    #[test]
    fn if_none_match_lists() {
        let parsed = parse(&[b"\"a\", W/\"b,c\"", b" junk, \"d\"junk , W/x, \"e"]).unwrap();
        assert_eq!(
            parsed.tags,
            vec![b"a".to_vec(), b"b,c".to_vec(), b"d".to_vec()]
        );
        assert!(!parsed.any);
        assert!(parsed.matches(b"\"b,c\""));
        assert!(parsed.matches(b"W/\"a\""));
        assert!(!parsed.matches(b"\"e\""));
        assert!(parse(&[b"*"]).unwrap().matches(b"\"anything\""));
        for junk in [
            &b""[..],
            b",",
            b"W/",
            b"\"",
            b"\xff\xff",
            b"W/\"unterminated",
        ] {
            assert_eq!(parse(&[junk]), None, "{junk:?}");
        }
    }

    #[test]
    fn vary() {
        let mut response = HeaderMap::new();
        response.append(VARY, HeaderValue::from_static("Accept-Language, accept"));
        assert_eq!(
            vary_names(&response),
            Some(vec!["accept".to_string(), "accept-language".to_string()])
        );
        response.append(VARY, HeaderValue::from_static("*"));
        assert_eq!(vary_names(&response), None);
        let names = vec!["accept".to_string()];
        let mut a = HeaderMap::new();
        a.insert("accept", HeaderValue::from_static("text/html"));
        let mut b = HeaderMap::new();
        b.insert("accept", HeaderValue::from_static("application/json"));
        assert_ne!(vary_hash(&names, &a), vary_hash(&names, &b));
        assert_eq!(vary_hash(&names, &a), vary_hash(&names, &a.clone()));
    }
}
