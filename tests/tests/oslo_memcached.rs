//! The oslo.cache quick start (`examples/oslo_style.rs`) on memcached by editing one line of its settings file:
//! `backend = "memory"` becomes a `memcached://` URL, and the function is computed once and then served from the
//! real memcached server.

#[path = "../../examples/oslo_style.rs"]
mod oslo_style;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_oslo_quick_start_runs_on_memcached_by_editing_one_line() {
    let Some(server) = test_support::MemcachedServer::start() else {
        return;
    };
    let shipped = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../examples/oslo_style.toml"
    ))
    .unwrap();
    let edited = shipped.replace(
        "backend = \"memory\"",
        &format!("backend = \"{}\"", server.url()),
    );
    assert_ne!(edited, shipped, "the example's file has the backend line");
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("oslo_style.toml");
    std::fs::write(&path, edited).unwrap();

    oslo_style::configure(path.to_str().unwrap()).await.unwrap();
    assert_eq!(oslo_style::expensive_operation(5).await, 25);
    let (again, hits) = cachette::context::detect(oslo_style::expensive_operation(5)).await;
    assert_eq!(
        (again, hits.is_empty()),
        (25, false),
        "the second call is a hit"
    );
    assert_ne!(
        server.stats().unwrap()["curr_items"],
        "0",
        "stored in memcached"
    );
}
