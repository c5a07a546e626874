//! The Prometheus example (`examples/metrics.rs`) really exports: its exporter is installed, its cached fn is
//! called, and `/metrics` is scraped over HTTP with a real client.

#[path = "../../examples/metrics.rs"]
mod example;

use std::net::{SocketAddr, TcpListener};
use std::time::{Duration, Instant};

use http_body_util::{BodyExt, Empty};
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|listener| listener.local_addr())
        .map(|addr| addr.port())
        .expect("a free loopback port")
}

async fn scrape(addr: SocketAddr) -> Option<String> {
    let client = Client::builder(TokioExecutor::new()).build_http::<Empty<bytes::Bytes>>();
    let uri = format!("http://{addr}/metrics").parse().ok()?;
    let response = client.get(uri).await.ok()?;
    let body = response.into_body().collect().await.ok()?.to_bytes();
    String::from_utf8(body.to_vec()).ok()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_prometheus_example_exports_hits_and_misses_of_a_named_fn() {
    let addr = SocketAddr::from(([127, 0, 0, 1], free_port()));
    example::install_exporter(addr).expect("exporter installed");

    assert_eq!(example::price(7).await, 700); // miss: the body runs
    assert_eq!(example::price(7).await, 700); // hit
    assert_eq!(example::price(7).await, 700); // hit

    let function = "metrics_example::example::price";
    let deadline = Instant::now() + Duration::from_secs(10);
    let text = loop {
        match scrape(addr).await {
            Some(text) if text.contains("cache_calls_total") => break text,
            _ if Instant::now() > deadline => panic!("no cache metrics on http://{addr}/metrics"),
            _ => tokio::time::sleep(Duration::from_millis(50)).await,
        }
    };
    assert_eq!(
        test_support::calls_total(&text, function, "cached", "hit"),
        2,
        "{text}"
    );
    assert_eq!(
        test_support::calls_total(&text, function, "cached", "miss"),
        1,
        "{text}"
    );
    assert!(
        text.contains(&format!(
            "cache_body_duration_seconds_count{{fn=\"{function}\"}} 1"
        )),
        "{text}"
    );
}
