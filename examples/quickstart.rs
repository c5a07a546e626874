//! Quickstart: cached async fns on the in-memory default — no server needed.
//!
//! Run with `cargo run --example quickstart`.

use std::time::Duration;

use cachette::{cached, context, invalidates};
use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Serialize, Deserialize)]
struct User {
    id: u64,
    name: String,
}

/// Pretends to be a slow database query.
#[cached(
    ttl = "10m",
    key = "user:{id}",
    companions(invalidate, invalidate_all, key)
)]
async fn get_user(id: u64) -> Result<User, String> {
    tokio::time::sleep(Duration::from_millis(200)).await;
    Ok(User {
        id,
        name: format!("user-{id}"),
    })
}

/// Every argument becomes part of the default key: `quickstart:search:query=rust:page=1`.
#[cached(ttl = "1h30m")]
async fn search(query: &str, page: u32) -> Vec<String> {
    tokio::time::sleep(Duration::from_millis(100)).await;
    vec![format!("{query} result {page}")]
}

/// After it succeeds, the cached entry of `get_user(id)` is dropped.
#[invalidates(get_user(id))]
async fn rename_user(id: u64, name: &str) -> Result<(), String> {
    println!("  (renamed user {id} to {name})");
    Ok(())
}

async fn timed<T>(label: &str, fut: impl std::future::Future<Output = T>) -> T {
    let started = std::time::Instant::now();
    let (out, hits) = context::detect(fut).await;
    let verdict = if hits.is_empty() { "miss" } else { "hit " };
    println!(
        "{verdict} {label:<24} {:>7.1?}  keys from cache: {:?}",
        started.elapsed(),
        hits.keys()
    );
    out
}

#[tokio::main]
async fn main() {
    timed("get_user(42)", get_user(42)).await.ok();
    timed("get_user(42)", get_user(42)).await.ok();
    timed("search(\"rust\", 1)", search("rust", 1)).await;
    timed("search(\"rust\", 1)", search("rust", 1)).await;
    timed("rename_user(42)", rename_user(42, "ada")).await.ok();
    timed("get_user(42)", get_user(42)).await.ok();
    let fresh = context::disabling(
        context::Ops::GET,
        timed("get_user(42) no-cache", get_user(42)),
    );
    fresh.await.ok();
    println!("the key of get_user(7) is {:?}", get_user_key(7));
}
