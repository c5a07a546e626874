//! Cache metrics on a Prometheus endpoint: the library reports through the `metrics` facade, the service picks
//! the exporter (here `metrics-exporter-prometheus`).
//!
//! `cargo run --example metrics --features metrics`, then `curl -s http://127.0.0.1:9000/metrics | grep cache_`
//! (`PORT` changes the port):
//!
//! ```text
//! cache_calls_total{fn="metrics::price",strategy="cached",result="miss"} 3
//! cache_calls_total{fn="metrics::price",strategy="cached",result="hit"} 27
//! cache_body_duration_seconds{fn="metrics::price",quantile="0.5"} 0.0101...
//! ```

use std::net::SocketAddr;
use std::time::Duration;

use cachette::cached;
use metrics_exporter_prometheus::{BuildError, PrometheusBuilder};

/// A cached "price lookup": every call is counted in `cache_calls_total{fn, strategy, result}`.
#[cached(ttl = "1m")]
pub async fn price(item: u64) -> u64 {
    tokio::time::sleep(Duration::from_millis(10)).await;
    item * 100
}

/// Installs the Prometheus exporter as the process's `metrics` recorder, serving `/metrics` on `addr`. Must run
/// inside a Tokio runtime (the exporter's HTTP server is a task on it).
pub fn install_exporter(addr: SocketAddr) -> Result<(), BuildError> {
    PrometheusBuilder::new().with_http_listener(addr).install()
}

// The tests include this file as a module and call the functions above; `main` is only the example's.
#[allow(dead_code)]
#[tokio::main]
async fn main() -> Result<(), BuildError> {
    let port: u16 = std::env::var("PORT")
        .ok()
        .and_then(|p| p.parse().ok())
        .unwrap_or(9000);
    let addr = SocketAddr::from(([127, 0, 0, 1], port));
    install_exporter(addr)?;
    println!("metrics on http://{addr}/metrics");
    loop {
        for item in 0..3 {
            price(item).await;
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
}
