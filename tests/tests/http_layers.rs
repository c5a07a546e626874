//! The HTTP layers end to end: the example's axum service on a real loopback socket, driven by a real HTTP client.

#[allow(dead_code)] // the example's `main`
#[path = "../../examples/axum_service.rs"]
mod service;

use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use cachette::Cache;
use http_body_util::{BodyExt, Full};
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;
use service::Db;

struct Server {
    base: String,
    cache: Cache,
    db: Arc<Db>,
    client: Client<HttpConnector, Full<Bytes>>,
    task: tokio::task::JoinHandle<()>,
}

#[derive(Debug)]
struct Reply {
    status: u16,
    headers: axum::http::HeaderMap,
    body: String,
}

impl Reply {
    fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl Server {
    /// The example's app on a fresh cache, served on a free loopback port.
    async fn start() -> Server {
        let cache = Cache::memory();
        let db = Arc::new(Db::default());
        let app = service::app(cache.clone(), db.clone());
        Server::serve(app, cache, db).await
    }

    /// Any app, served on a free loopback port.
    async fn serve(app: axum::Router, cache: Cache, db: Arc<Db>) -> Server {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let base = format!("http://{}", listener.local_addr().unwrap());
        let task = tokio::spawn(async move {
            axum::serve(listener, app).await.unwrap();
        });
        let client = Client::builder(TokioExecutor::new()).build_http();
        Server {
            base,
            cache,
            db,
            client,
            task,
        }
    }

    async fn send(&self, method: &str, path: &str, headers: &[(&str, &str)], body: &str) -> Reply {
        let mut request = axum::http::Request::builder()
            .method(method)
            .uri(format!("{}{path}", self.base));
        for (name, value) in headers {
            request = request.header(*name, *value);
        }
        let request = request
            .body(Full::new(Bytes::from(body.to_owned())))
            .unwrap();
        let response = tokio::time::timeout(Duration::from_secs(10), self.client.request(request))
            .await
            .expect("the server answers within 10 s")
            .unwrap();
        let status = response.status().as_u16();
        let headers = response.headers().clone();
        let body = response.into_body().collect().await.unwrap().to_bytes();
        Reply {
            status,
            headers,
            body: String::from_utf8(body.to_vec()).unwrap(),
        }
    }

    async fn get(&self, path: &str, headers: &[(&str, &str)]) -> Reply {
        self.send("GET", path, headers, "").await
    }

    fn queries(&self) -> usize {
        self.db.queries.load(Ordering::SeqCst)
    }

    fn handled(&self) -> usize {
        self.db.handled.load(Ordering::SeqCst)
    }
}

#[tokio::test]
async fn second_get_is_a_hit_with_its_key_age_and_freshness() {
    let server = Server::start().await;
    let first = server.get("/users/1", &[]).await;
    assert_eq!(
        (first.status, first.body.as_str()),
        (200, "user 1 (query #1)")
    );
    assert_eq!(
        first.header("x-from-cache-keys"),
        None,
        "a miss has no keys header"
    );
    assert_eq!(first.header("age"), None);
    assert_eq!(first.header("cache-control"), None);

    // Unparseable directives are ignored, not errors.
    let second = server
        .get("/users/1", &[("cache-control", "max-age=abc, ,=,")])
        .await;
    assert_eq!(
        (second.status, second.body.as_str()),
        (200, "user 1 (query #1)")
    );
    assert_eq!(second.header("x-from-cache-keys"), Some("user:1"));
    assert_eq!(second.header("age"), Some("0"));
    let cache_control = second.header("cache-control").unwrap();
    assert!(
        ["max-age=29", "max-age=30"].contains(&cache_control),
        "{cache_control}"
    );
    assert_eq!(server.queries(), 1);

    // HEAD is described like GET (axum answers it with the GET handler, without the body).
    let head = server.send("HEAD", "/users/1", &[], "").await;
    assert_eq!((head.status, head.body.as_str()), (200, ""));
    assert_eq!(head.header("x-from-cache-keys"), Some("user:1"));
    assert_eq!(server.queries(), 1);

    let other = server.get("/users/2", &[]).await;
    assert_eq!(other.body, "user 2 (query #2)");
    assert_eq!(other.header("x-from-cache-keys"), None);
}

#[tokio::test]
async fn no_cache_computes_a_fresh_value_that_is_stored() {
    let server = Server::start().await;
    server.get("/users/1", &[]).await;
    let fresh = server
        .get("/users/1", &[("cache-control", "No-Cache")])
        .await;
    assert_eq!(fresh.body, "user 1 (query #2)");
    assert_eq!(fresh.header("x-from-cache-keys"), None);
    let next = server.get("/users/1", &[]).await;
    assert_eq!(next.body, "user 1 (query #2)");
    assert_eq!(next.header("x-from-cache-keys"), Some("user:1"));
    // HTTP/1.0 `Pragma: no-cache` as well.
    let pragma = server.get("/users/1", &[("pragma", "no-cache")]).await;
    assert_eq!(pragma.body, "user 1 (query #3)");
    assert_eq!(server.queries(), 3);
}

/// `no-store` and `max-age=0` neither read nor write the cache.
#[tokio::test]
async fn no_store_and_max_age_zero_neither_read_nor_write() {
    for directive in ["no-store", "max-age=0", "public, MAX-AGE=0"] {
        let server = Server::start().await;
        // Cold: computed and not stored.
        let cold = server
            .get("/users/1", &[("cache-control", directive)])
            .await;
        assert_eq!(cold.body, "user 1 (query #1)", "{directive}");
        assert_eq!(
            server.cache.ttl("user:1").await.unwrap(),
            cachette::KeyTtl::Missing
        );
        // Warm: the stored value is neither served nor replaced.
        server.get("/users/1", &[]).await;
        let bypass = server
            .get("/users/1", &[("cache-control", directive)])
            .await;
        assert_eq!(bypass.body, "user 1 (query #3)", "{directive}");
        assert_eq!(bypass.header("x-from-cache-keys"), None);
        let cached = server.get("/users/1", &[]).await;
        assert_eq!(cached.body, "user 1 (query #2)", "{directive}");
        assert_eq!(server.queries(), 3, "{directive}");
    }
}

#[tokio::test]
async fn max_age_rejects_older_values() {
    let server = Server::start().await;
    server.get("/users/1", &[]).await;
    let young_enough = server
        .get("/users/1", &[("cache-control", "max-age=60")])
        .await;
    assert_eq!(young_enough.body, "user 1 (query #1)");
    tokio::time::sleep(Duration::from_millis(1100)).await;
    // Several lines: the smallest max-age wins.
    let too_old = server
        .get(
            "/users/1",
            &[
                ("cache-control", "max-age=60"),
                ("cache-control", "max-age=1"),
            ],
        )
        .await;
    assert_eq!(too_old.body, "user 1 (query #2)");
    assert_eq!(too_old.header("x-from-cache-keys"), None);
    // max-age=N only rejects; the fresh value was stored.
    let next = server.get("/users/1", &[]).await;
    assert_eq!(next.body, "user 1 (query #2)");
}

#[tokio::test]
async fn clear_site_data_cache_invalidates_what_the_request_reads() {
    let server = Server::start().await;
    server.get("/users/1", &[]).await;
    let cleared = server
        .get("/users/1", &[("clear-site-data", "\"cookies\", \"cache\"")])
        .await;
    assert_eq!(cleared.body, "user 1 (query #2)");
    let next = server.get("/users/1", &[]).await;
    assert_eq!(next.body, "user 1 (query #2)");
    assert_eq!(next.header("x-from-cache-keys"), Some("user:1"));
    let wildcard = server
        .get("/users/1", &[("clear-site-data", "\"*\"")])
        .await;
    assert_eq!(wildcard.body, "user 1 (query #3)");
}

#[tokio::test]
async fn if_none_match_gets_304_without_the_handler_until_invalidated() {
    let server = Server::start().await;
    let miss = server.get("/users/1", &[]).await;
    let etag = miss.header("etag").unwrap().to_owned();
    let hit = server.get("/users/1", &[]).await;
    assert_eq!(
        hit.header("etag"),
        Some(etag.as_str()),
        "same body, same ETag"
    );
    assert_eq!(server.handled(), 2);

    // Weak comparison, in a list with garbage around it.
    let condition = format!("junk, \"nope\", W/{etag}");
    let not_modified = server
        .get("/users/1", &[("if-none-match", &condition)])
        .await;
    assert_eq!(not_modified.status, 304);
    assert_eq!(not_modified.body, "");
    assert_eq!(not_modified.header("etag"), Some(etag.as_str()));
    assert_eq!(not_modified.header("x-from-cache-keys"), Some("user:1"));
    assert_eq!(server.handled(), 2, "the handler did not run");
    let star = server.get("/users/1", &[("if-none-match", "*")]).await;
    assert_eq!(star.status, 304);
    let head = server
        .send("HEAD", "/users/1", &[("if-none-match", &etag)], "")
        .await;
    assert_eq!(head.status, 304, "HEAD shares GET's validators");
    assert_eq!(server.handled(), 2);

    // A request that does not want cached data runs the handler.
    let no_cache = server
        .get(
            "/users/1",
            &[("if-none-match", &etag), ("cache-control", "no-cache")],
        )
        .await;
    assert_eq!(
        (no_cache.status, no_cache.body.as_str()),
        (200, "user 1 (query #2)")
    );
    assert_eq!(server.handled(), 3);
    let etag = no_cache.header("etag").unwrap().to_owned();
    // The new value is a hit again: its ETag is remembered.
    server.get("/users/1", &[]).await;
    assert_eq!(
        server
            .get("/users/1", &[("if-none-match", &etag)])
            .await
            .status,
        304
    );
    assert_eq!(server.handled(), 4);

    // Invalidating the underlying entry makes the next conditional request run the handler.
    assert!(server.cache.delete("user:1").await.unwrap());
    let after = server.get("/users/1", &[("if-none-match", &etag)]).await;
    assert_eq!(
        (after.status, after.body.as_str()),
        (200, "user 1 (query #3)")
    );
    assert_ne!(after.header("etag"), Some(etag.as_str()));
    assert_eq!(server.handled(), 5);

    // Same through the service's own write path.
    server.get("/users/1", &[]).await;
    let etag = after.header("etag").unwrap().to_owned();
    assert_eq!(
        server
            .get("/users/1", &[("if-none-match", &etag)])
            .await
            .status,
        304
    );
    server.send("POST", "/users/1", &[], "ada").await;
    let renamed = server.get("/users/1", &[("if-none-match", &etag)]).await;
    assert_eq!(
        (renamed.status, renamed.body.as_str()),
        (200, "ada (query #4)")
    );
}

/// Regression: the ETag layer checked only that the entries behind a remembered ETag still existed, so after
/// an invalidation and recompute (or a `no-cache` refresh, or any rewrite) the old ETag still got a `304`.
#[tokio::test]
async fn an_old_etag_is_not_revalidated_after_its_entry_was_rewritten() {
    let server = Server::start().await;

    // Invalidation through the service's write path, then a plain GET recomputes the entry.
    server.get("/users/1", &[]).await;
    let hit = server.get("/users/1", &[]).await;
    let old = hit.header("etag").unwrap().to_owned();
    server.send("POST", "/users/1", &[], "ada").await;
    let fresh = server.get("/users/1", &[]).await;
    let new = fresh.header("etag").unwrap().to_owned();
    assert_ne!(new, old, "the body changed");
    let conditional = server.get("/users/1", &[("if-none-match", &old)]).await;
    assert_eq!(
        (conditional.status, conditional.body.as_str()),
        (200, fresh.body.as_str()),
        "the old ETag must not get a 304 for changed content"
    );
    assert_eq!(conditional.header("etag"), Some(new.as_str()));

    // A `no-cache` refresh rewrites the entry in place.
    server.get("/users/2", &[]).await;
    let old = server
        .get("/users/2", &[])
        .await
        .header("etag")
        .unwrap()
        .to_owned();
    let refreshed = server
        .get("/users/2", &[("cache-control", "no-cache")])
        .await;
    let new = refreshed.header("etag").unwrap().to_owned();
    assert_ne!(new, old);
    let conditional = server.get("/users/2", &[("if-none-match", &old)]).await;
    assert_eq!(conditional.status, 200, "no 304 after a no-cache refresh");
    assert_eq!(conditional.header("etag"), Some(new.as_str()));
    assert_eq!(conditional.body, refreshed.body);

    // Any other writer of the entry (`_set`, a refresh, another process) likewise.
    server.get("/users/3", &[]).await;
    let old = server
        .get("/users/3", &[])
        .await
        .header("etag")
        .unwrap()
        .to_owned();
    server
        .cache
        .set(
            "user:3",
            "rewritten elsewhere",
            Some(Duration::from_secs(30)),
        )
        .await
        .unwrap();
    let conditional = server.get("/users/3", &[("if-none-match", &old)]).await;
    assert_eq!(
        (conditional.status, conditional.body.as_str()),
        (200, "rewritten elsewhere")
    );
    // While the entry stays the same, its ETag keeps revalidating.
    let current = conditional.header("etag").unwrap().to_owned();
    server.get("/users/3", &[]).await;
    let revalidated = server.get("/users/3", &[("if-none-match", &current)]).await;
    assert_eq!(revalidated.status, 304);
}

#[tokio::test]
async fn post_is_not_affected_by_default() {
    let server = Server::start().await;
    server.get("/users/1", &[]).await;
    let headers = [
        ("cache-control", "no-store"),
        ("clear-site-data", "\"cache\""),
    ];
    let post = server.send("POST", "/users/1", &headers, "ada").await;
    // The handler's cached read was a hit despite the headers, and POST responses are not described.
    assert_eq!(post.body, "renamed user 1 (query #1)");
    assert_eq!(post.header("x-from-cache-keys"), None);
    assert_eq!(post.header("etag"), None);
    assert_eq!(server.queries(), 1);
    assert_eq!(server.get("/users/1", &[]).await.body, "ada (query #2)");
}

/// Every request's context is its own: 50 concurrent requests, every other one with `no-cache`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_requests_do_not_share_their_context() {
    let server = Arc::new(Server::start().await);
    server.get("/users/1", &[]).await;
    let requests = (0..50).map(|i| {
        let server = server.clone();
        async move {
            let no_cache = i % 2 == 0;
            let headers: &[(&str, &str)] = if no_cache {
                &[("cache-control", "no-cache")]
            } else {
                &[]
            };
            (no_cache, server.get("/users/1", headers).await)
        }
    });
    let replies = futures::future::join_all(requests).await;
    let mut fresh_queries = Vec::new();
    for (no_cache, reply) in &replies {
        assert_eq!(reply.status, 200);
        let query: usize = reply
            .body
            .strip_prefix("user 1 (query #")
            .and_then(|rest| rest.strip_suffix(')'))
            .and_then(|n| n.parse().ok())
            .unwrap_or_else(|| panic!("unexpected body {:?}", reply.body));
        if *no_cache {
            assert_eq!(reply.header("x-from-cache-keys"), None, "{reply:?}");
            fresh_queries.push(query);
        } else {
            assert_eq!(
                reply.header("x-from-cache-keys"),
                Some("user:1"),
                "{reply:?}"
            );
        }
    }
    // Each no-cache request ran its own query; no plain request did.
    fresh_queries.sort_unstable();
    fresh_queries.dedup();
    assert_eq!(fresh_queries.len(), 25);
    assert!(fresh_queries.iter().all(|q| *q > 1));
    assert_eq!(server.queries(), 26);
}

/// A response built from a cache hit and a value computed for it (never stored) must not be revalidated from
/// the cache alone: the computed part can change while the cached entry stays.
#[tokio::test]
async fn responses_with_computed_parts_are_not_answered_304_from_the_cache() {
    use cachette::http::{CacheControlLayer, DetectLayer, EtagLayer};
    use std::sync::atomic::AtomicUsize;

    let cache = Cache::memory();
    let version = Arc::new(AtomicUsize::new(0));
    let handler = {
        let (cache, version) = (cache.clone(), version.clone());
        move || {
            let (cache, version) = (cache.clone(), version.clone());
            async move {
                let name: String = cache
                    .get_or_set("name", None, || async { "ada".to_string() })
                    .await;
                // Computed through the cache on every request but never stored (the condition refuses it).
                let live = cachette::strategy::cached(
                    cachette::shape::Plain,
                    &cache,
                    "live".into(),
                    None,
                    Some(|_: &usize| false),
                    async { version.load(Ordering::SeqCst) },
                )
                .await;
                format!("{name} v{live}")
            }
        }
    };
    let app = axum::Router::new()
        .route("/mixed", axum::routing::get(handler))
        .layer(
            tower::ServiceBuilder::new()
                .layer(CacheControlLayer::new())
                .layer(DetectLayer::new())
                .layer(EtagLayer::new().cache(cache.clone())),
        );
    let server = Server::serve(app, cache, Arc::new(Db::default())).await;
    server.get("/mixed", &[]).await;
    let second = server.get("/mixed", &[]).await;
    assert_eq!(
        second.header("x-from-cache-keys"),
        Some("name"),
        "the name is a hit"
    );
    let etag = second.header("etag").expect("an ETag").to_owned();
    version.store(1, Ordering::SeqCst);
    let third = server
        .get("/mixed", &[("if-none-match", etag.as_str())])
        .await;
    assert_eq!(third.status, 200, "the computed part changed: no 304");
    assert_eq!(third.body, "ada v1");
}
