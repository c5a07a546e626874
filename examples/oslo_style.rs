//! oslo.cache's quick start, rebuilt: a settings file picks the backend and configures the region
//! `feature-name`; the memoized function prints its line once however often it is called.
//!
//! `cargo run --example oslo_style` (settings: `examples/oslo_style.toml`, or the path in `CACHE_SETTINGS`;
//! `CACHE__*` variables override it, e.g. `CACHE__REGIONS__FEATURE_NAME__CACHING=false`).

use cachette::{cached, Config, ConfigError};

/// Memoized in the region `feature-name`: its TTL and on/off switch come from the settings.
#[cached(region = "feature-name")]
pub async fn expensive_operation(x: u64) -> u64 {
    println!("Calculating result for {x}");
    x * x
}

/// Loads the settings and installs the global cache and the regions.
pub async fn configure(path: &str) -> Result<(), ConfigError> {
    Config::from_file(path)?.install().await.map(drop)
}

// The tests include this file as a module; `main` is only the example's.
#[allow(dead_code)]
#[tokio::main]
async fn main() -> Result<(), ConfigError> {
    let path = std::env::var("CACHE_SETTINGS")
        .unwrap_or_else(|_| concat!(env!("CARGO_MANIFEST_DIR"), "/oslo_style.toml").to_owned());
    configure(&path).await?;
    println!("{}", expensive_operation(5).await);
    println!("{}", expensive_operation(5).await);
    Ok(())
}
