//! Redis from a setup URL, with the strategies: a plain cached fn, early refresh and a stampede lock.
//!
//! `cargo run --example redis --features redis` (Redis at `REDIS_URL`, default `redis://127.0.0.1:6379/0`).

use std::time::Duration;

use cachette::{cache_early, cached, context, invalidates, SetupError};

/// Cached in Redis for 10 minutes under `user:<id>`.
#[cached(ttl = "10m", key = "user:{id}")]
pub async fn user_name(id: u64) -> String {
    tokio::time::sleep(Duration::from_millis(50)).await; // a slow query
    format!("user {id}")
}

/// Served from the cache for an hour; after 40 minutes one caller refreshes it in the background.
#[cache_early(ttl = "1h", early_ttl = "40m")]
pub async fn exchange_rate(base: String) -> Result<f64, String> {
    Ok(if base == "EUR" { 1.08 } else { 1.0 })
}

/// Across every process sharing the Redis, a missing report is computed once; the others wait for it.
#[cached(ttl = "1h", lock = true, lock_ttl = "30s")]
pub async fn monthly_report(month: u32) -> String {
    tokio::time::sleep(Duration::from_millis(100)).await;
    format!("report for month {month}")
}

/// Drops `user_name(id)`'s entry after the rename succeeds.
#[invalidates(user_name(id))]
pub async fn rename_user(id: u64, name: &str) -> Result<(), String> {
    let _ = name; // write to the database here
    Ok(())
}

/// Installs the Redis cache from `url` as the global default, then makes a few calls; returns whether each of
/// them was served from the cache.
pub async fn run(url: &str) -> Result<Vec<(&'static str, bool)>, SetupError> {
    // Keys get the `example:` prefix; commands time out after 250 ms, and the cache fails open if Redis is down.
    let separator = if url.contains('?') { '&' } else { '?' };
    let url = format!("{url}{separator}prefix=example:&command_timeout=250ms");
    cachette::Setup::new(url).install().await?;
    let mut served = Vec::new();
    for label in ["user_name(1)", "user_name(1) again"] {
        let (_, hits) = context::detect(user_name(1)).await;
        served.push((label, !hits.is_empty()));
    }
    let (_, hits) = context::detect(exchange_rate("EUR".into())).await;
    served.push(("exchange_rate(EUR)", !hits.is_empty()));
    let (_, hits) = context::detect(monthly_report(3)).await;
    served.push(("monthly_report(3)", !hits.is_empty()));
    rename_user(1, "ada").await.ok();
    let (_, hits) = context::detect(user_name(1)).await;
    served.push(("user_name(1) after rename", !hits.is_empty()));
    Ok(served)
}

// The tests include this file as a module and call `run`; `main` is only the example's.
#[allow(dead_code)]
#[tokio::main]
async fn main() -> Result<(), SetupError> {
    let url = std::env::var("REDIS_URL").unwrap_or_else(|_| "redis://127.0.0.1:6379/0".into());
    for (call, hit) in run(&url).await? {
        println!("{:<28} {}", call, if hit { "hit" } else { "miss" });
    }
    Ok(())
}
