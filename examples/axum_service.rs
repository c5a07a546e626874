//! An axum service whose "database" call is cached, with the three cache layers installed.
//!
//! `cargo run --example axum_service`, then `curl -i http://127.0.0.1:3000/users/1` (twice, then with
//! `-H 'Cache-Control: no-cache'`). `PORT` changes the port.

use std::collections::HashMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::extract::{Path, State};
use axum::routing::get;
use axum::Router;
use cachette::http::{CacheControlLayer, DetectLayer, EtagLayer};
use cachette::{cached, invalidates, Cache};
use tower::ServiceBuilder;

/// Stands in for a slow database; counts its queries so a cache hit is visible.
#[derive(Default)]
pub struct Db {
    pub queries: AtomicUsize,
    /// Requests that reached the `GET` handler (a `304` from the ETag layer does not).
    pub handled: AtomicUsize,
    names: Mutex<HashMap<u64, String>>,
}

impl Db {
    async fn user(&self, id: u64) -> String {
        let query = self.queries.fetch_add(1, Ordering::SeqCst) + 1;
        tokio::time::sleep(Duration::from_millis(20)).await;
        let names = self
            .names
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        let name = names
            .get(&id)
            .cloned()
            .unwrap_or_else(|| format!("user {id}"));
        format!("{name} (query #{query})")
    }
}

#[derive(Clone)]
struct App {
    cache: Cache,
    db: Arc<Db>,
}

impl App {
    /// The cached call: `user:<id>` for 30 s, in the app's cache.
    #[cached(ttl = "30s", key = "user:{id}", cache = self.cache)]
    async fn user(&self, id: u64) -> String {
        self.db.user(id).await
    }

    /// Writes the database, then drops the cached `user:<id>`.
    #[invalidates(self.user(id))]
    async fn rename(&self, id: u64, name: String) {
        let mut names = self.db.names.lock().unwrap_or_else(|p| p.into_inner());
        names.insert(id, name);
    }
}

async fn show(State(app): State<App>, Path(id): Path<u64>) -> String {
    app.db.handled.fetch_add(1, Ordering::SeqCst);
    app.user(id).await
}

/// Renames a user: reads it (through the cache), then writes and invalidates.
async fn rename(State(app): State<App>, Path(id): Path<u64>, name: String) -> String {
    let old = app.user(id).await;
    app.rename(id, name).await;
    format!("renamed {old}")
}

/// The service: routes, state and the cache layers (outermost first).
pub fn app(cache: Cache, db: Arc<Db>) -> Router {
    let layers = ServiceBuilder::new()
        .layer(CacheControlLayer::new()) // Cache-Control / Clear-Site-Data → this request's cache context
        .layer(DetectLayer::new()) // X-From-Cache-Keys, Age, Cache-Control on hits
        .layer(EtagLayer::new().cache(cache.clone())); // ETag, 304 while the cached entries are unchanged
    Router::new()
        .route("/users/{id}", get(show).post(rename))
        .with_state(App { cache, db })
        .layer(layers)
}

#[tokio::main]
async fn main() -> std::io::Result<()> {
    let port: u16 = std::env::var("PORT")
        .ok()
        .and_then(|p| p.parse().ok())
        .unwrap_or(3000);
    let listener = tokio::net::TcpListener::bind(("127.0.0.1", port)).await?;
    println!("listening on http://{}", listener.local_addr()?);
    axum::serve(listener, app(Cache::memory(), Arc::default())).await
}
