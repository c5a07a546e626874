//! Namespaces (the multi-tenant recipe) on memory, a real redis-server and a real memcached: one tenant cleared
//! → its entries miss and the others' still hit, with no FLUSHDB / flush_all and no key scan; two applications
//! (prefixes) on one server stay apart; another process sees a clear within the refresh window; the macros'
//! `namespace = "tenant:{tenant_id}"` on `#[cached]` and `#[invalidates]`.

use std::sync::atomic::{AtomicUsize, Ordering::SeqCst};
use std::sync::OnceLock;
use std::time::Duration;

use cachette::{cached, invalidates, Cache, MemcachedBackend, RedisBackend};

async fn redis(server: &test_support::RedisServer, prefix: &str) -> Cache {
    let backend = RedisBackend::builder()
        .url(server.url())
        .key_prefix(prefix)
        .build()
        .await
        .unwrap();
    Cache::builder()
        .backend(backend)
        .namespace_refresh(Duration::from_millis(200))
        .build()
}

fn memcached(server: &test_support::MemcachedServer, prefix: &str) -> Cache {
    let backend = MemcachedBackend::builder()
        .servers([server.address()])
        .prefix(prefix)
        .build();
    Cache::builder()
        .backend(backend)
        .namespace_refresh(Duration::from_millis(200))
        .build()
}

/// Tenant A cleared: A's entries miss, B's hit; the root cache's keys are untouched.
async fn one_tenant_cleared(cache: &Cache) {
    let (a, b) = (cache.namespace("tenant:a"), cache.namespace("tenant:b"));
    for i in 0..20u32 {
        a.set(&format!("order:{i}"), &i, None).await.unwrap();
        b.set(&format!("order:{i}"), &(i + 100), None)
            .await
            .unwrap();
    }
    cache.set("order:0", &999u32, None).await.unwrap();
    assert_eq!(a.get::<u32>("order:3").await.unwrap(), Some(3));
    a.clear().await.unwrap();
    for i in 0..20u32 {
        let key = format!("order:{i}");
        assert_eq!(
            a.get::<u32>(&key).await.unwrap(),
            None,
            "A's {key} after A's clear"
        );
        assert_eq!(
            b.get::<u32>(&key).await.unwrap(),
            Some(i + 100),
            "B's {key}"
        );
    }
    assert_eq!(cache.get::<u32>("order:0").await.unwrap(), Some(999));
    // A fresh view of the same name sees the clear too, and A works as before afterwards.
    assert_eq!(
        cache
            .namespace("tenant:a")
            .get::<u32>("order:1")
            .await
            .unwrap(),
        None
    );
    a.set("order:1", &7u32, None).await.unwrap();
    assert_eq!(
        cache
            .namespace("tenant:a")
            .get::<u32>("order:1")
            .await
            .unwrap(),
        Some(7)
    );
}

/// Two applications (key prefixes) on one server: clearing app 1's tenant leaves app 2's same-named tenant.
async fn two_apps_apart(app1: &Cache, app2: &Cache) {
    app1.namespace("tenant:1")
        .set("k", &1u8, None)
        .await
        .unwrap();
    app2.namespace("tenant:1")
        .set("k", &2u8, None)
        .await
        .unwrap();
    app1.namespace("tenant:1").clear().await.unwrap();
    assert_eq!(
        app1.namespace("tenant:1").get::<u8>("k").await.unwrap(),
        None
    );
    assert_eq!(
        app2.namespace("tenant:1").get::<u8>("k").await.unwrap(),
        Some(2)
    );
}

/// Another process (another `Cache` on the same server) sees a clear once its refresh window has passed.
async fn other_instance_within_refresh(writer: &Cache, reader: &Cache) {
    writer
        .namespace("tenant:x")
        .set("k", &1u8, None)
        .await
        .unwrap();
    assert_eq!(
        reader.namespace("tenant:x").get::<u8>("k").await.unwrap(),
        Some(1)
    );
    writer.namespace("tenant:x").clear().await.unwrap();
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(
        reader.namespace("tenant:x").get::<u8>("k").await.unwrap(),
        None
    );
}

#[tokio::test]
async fn memory() {
    let cache = Cache::memory();
    one_tenant_cleared(&cache).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn on_redis() {
    let Some(server) = test_support::RedisServer::start() else {
        return;
    };
    let cache = redis(&server, "app1:").await;
    one_tenant_cleared(&cache).await;
    two_apps_apart(&cache, &redis(&server, "app2:").await).await;
    other_instance_within_refresh(&cache, &redis(&server, "app1:").await).await;
    let stats = server.command(&["INFO", "commandstats"]).unwrap();
    assert!(
        !stats.contains("cmdstat_flushdb") && !stats.contains("cmdstat_flushall"),
        "{stats}"
    );
    assert!(
        !stats.contains("cmdstat_scan") && !stats.contains("cmdstat_keys"),
        "{stats}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn on_memcached() {
    let Some(server) = test_support::MemcachedServer::start() else {
        return;
    };
    let cache = memcached(&server, "app1:");
    one_tenant_cleared(&cache).await;
    two_apps_apart(&cache, &memcached(&server, "app2:")).await;
    other_instance_within_refresh(&cache, &memcached(&server, "app1:")).await;
    assert_eq!(server.stats().unwrap()["cmd_flush"], "0");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_lost_counter_never_brings_old_entries_back() {
    let Some(server) = test_support::MemcachedServer::start() else {
        return;
    };
    let cache = Cache::builder()
        .backend(
            MemcachedBackend::builder()
                .servers([server.address()])
                .build(),
        )
        .namespace_refresh(Duration::ZERO)
        .build();
    let tenant = cache.namespace("tenant:9");
    tenant.set("k", &1u8, None).await.unwrap();
    tenant.clear().await.unwrap();
    // memcached evicts the counter (simulated): the version starts again, above every earlier one.
    cache.delete("__ns:tenant:9").await.unwrap();
    assert_eq!(tenant.get::<u8>("k").await.unwrap(), None);
}

static CACHE: OnceLock<Cache> = OnceLock::new();
static RUNS: AtomicUsize = AtomicUsize::new(0);

fn cache() -> &'static Cache {
    CACHE.get_or_init(Cache::memory)
}

#[cached(ttl = "1h", key = "orders:{user}", namespace = "tenant:{tenant_id}", cache = cache())]
async fn orders(tenant_id: u32, user: &str) -> Vec<String> {
    RUNS.fetch_add(1, SeqCst);
    vec![format!("{tenant_id}/{user}/1")]
}

#[invalidates(namespace = "tenant:{tenant_id}", cache = cache())]
async fn import_orders(tenant_id: u32) -> Result<(), String> {
    let _ = tenant_id;
    Ok(())
}

#[invalidates(orders(tenant_id, user), cache = cache())]
async fn cancel_order(tenant_id: u32, user: &str) {
    let _ = (tenant_id, user);
}

#[tokio::test]
async fn the_macros_cache_and_clear_per_namespace() {
    assert_eq!(orders(1, "ann").await, ["1/ann/1"]);
    assert_eq!(orders(2, "ann").await, ["2/ann/1"]);
    assert_eq!(orders(1, "ann").await, ["1/ann/1"]);
    assert_eq!(RUNS.load(SeqCst), 2, "one run per tenant");
    assert!(cache()
        .namespace("tenant:1")
        .get::<Vec<String>>("orders:ann")
        .await
        .unwrap()
        .is_some());
    // Tenant 1's import clears tenant 1 only.
    import_orders(1).await.unwrap();
    orders(1, "ann").await;
    orders(2, "ann").await;
    assert_eq!(
        RUNS.load(SeqCst),
        3,
        "tenant 1 recomputed, tenant 2 still cached"
    );
    // The per-entry companion works inside the namespace.
    cancel_order(2, "ann").await;
    orders(2, "ann").await;
    assert_eq!(RUNS.load(SeqCst), 4);
}
