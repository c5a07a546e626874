//! Moving to a new memcached cluster with `FallbackBackend` (pymemcache's FallbackClient, improved), end to end
//! on two real memcached servers: warm the old one, switch, the bodies run 0 times for keys warm in the old
//! cluster, the new one fills, deletes reach both, and the old one is retired.

use std::sync::atomic::{AtomicUsize, Ordering::SeqCst};
use std::sync::Arc;
use std::time::Duration;

use arc_swap::ArcSwap;
use cachette::{cached, Backend, Cache, FallbackBackend, MemcachedBackend, SetMode};
use test_support::MemcachedServer;

static CURRENT: std::sync::LazyLock<ArcSwap<Cache>> =
    std::sync::LazyLock::new(|| ArcSwap::from_pointee(Cache::memory()));
static RUNS: AtomicUsize = AtomicUsize::new(0);

#[cached(ttl = "1h", key = "profile:{id}", cache = **CURRENT.load())]
async fn profile(id: u32) -> String {
    RUNS.fetch_add(1, SeqCst);
    format!("profile {id}")
}

fn on(server: &MemcachedServer) -> MemcachedBackend {
    MemcachedBackend::builder()
        .servers([server.address()])
        .command_timeout(Duration::from_secs(1))
        .build()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn warm_old_switch_fill_new_retire_old() {
    let (Some(old), Some(new)) = (MemcachedServer::start(), MemcachedServer::start()) else {
        return;
    };
    // 1. The service runs on the old cluster and warms it.
    CURRENT.store(Arc::new(Cache::builder().backend(on(&old)).build()));
    for id in 0..100 {
        profile(id).await;
    }
    assert_eq!(RUNS.swap(0, SeqCst), 100);

    // 2. Switch to the new cluster in front of the old one (here through a URL, as a deploy would).
    let url = format!("{}?fallback={}", new.url(), old.url());
    let migrating = cachette::Setup::new(url).build().await.unwrap();
    CURRENT.store(Arc::new(migrating.clone()));
    for id in 0..100 {
        assert_eq!(profile(id).await, format!("profile {id}"));
    }
    assert_eq!(
        RUNS.load(SeqCst),
        0,
        "every key warm in the old cluster was served from it"
    );
    // The new cluster filled with what was read.
    let new_backend = on(&new);
    for id in 0..100 {
        assert!(
            new_backend
                .get(&format!("profile:{id}"))
                .await
                .unwrap()
                .is_some(),
            "profile:{id} copied"
        );
    }

    // 3. Deletes reach both: a deleted key cannot come back from the old cluster.
    profile_invalidate(7).await;
    assert!(on(&old).get("profile:7").await.unwrap().is_none());
    assert!(new_backend.get("profile:7").await.unwrap().is_none());
    profile(7).await;
    assert_eq!(RUNS.swap(0, SeqCst), 1);

    // 4. Retire the old cluster: the new one alone serves everything.
    CURRENT.store(Arc::new(Cache::builder().backend(on(&new)).build()));
    old.process().kill();
    for id in 0..100 {
        profile(id).await;
    }
    assert_eq!(RUNS.load(SeqCst), 0, "the new cluster holds every key");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn writes_go_to_the_new_backend_and_retire_the_old_value() {
    let (Some(old), Some(new)) = (MemcachedServer::start(), MemcachedServer::start()) else {
        return;
    };
    let migrating = FallbackBackend::new(on(&new), on(&old));
    on(&old)
        .set("k", "old".into(), None, SetMode::Always)
        .await
        .unwrap();
    migrating
        .set("k", "new".into(), None, SetMode::Always)
        .await
        .unwrap();
    assert_eq!(
        on(&new).get("k").await.unwrap().as_deref(),
        Some(&b"new"[..])
    );
    // Without the old value, an eviction in the new cluster can only cause a miss, never the old value.
    assert_eq!(on(&old).get("k").await.unwrap(), None);
    // A copy never overwrites a newer value in the new backend.
    on(&old)
        .set("j", "old".into(), None, SetMode::Always)
        .await
        .unwrap();
    on(&new)
        .set("j", "newer".into(), None, SetMode::Always)
        .await
        .unwrap();
    assert_eq!(
        migrating.get("j").await.unwrap().as_deref(),
        Some(&b"newer"[..])
    );
    // The old cluster down: reads that miss in the new one are misses, not errors.
    old.process().kill();
    assert_eq!(migrating.get("absent").await.unwrap(), None);
    assert_eq!(migrating.stats().old_hits, 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn from_a_settings_file() {
    let (Some(old), Some(new)) = (MemcachedServer::start(), MemcachedServer::start()) else {
        return;
    };
    on(&old)
        .set("cfg", "from old".into(), None, SetMode::Always)
        .await
        .unwrap();
    let text = format!(
        "[cache]\nbackend = \"{}\"\n[cache.backend_arguments]\nfallback = \"{}\"\n",
        new.url(),
        old.url()
    );
    let config = cachette::Config::from_toml_str(&text, "migration.toml").unwrap();
    let cache = config.install().await.unwrap();
    let backend = cache.backend_for("cfg");
    assert_eq!(
        backend.get("cfg").await.unwrap().as_deref(),
        Some(&b"from old"[..])
    );
    assert_eq!(
        on(&new).get("cfg").await.unwrap().as_deref(),
        Some(&b"from old"[..])
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_delete_with_the_old_cluster_down_still_deletes_from_the_new_one_and_says_it_failed() {
    let (Some(old), Some(new)) = (MemcachedServer::start(), MemcachedServer::start()) else {
        return;
    };
    let migrating = FallbackBackend::new(on(&new), on(&old));
    migrating
        .set("k", "v".into(), None, SetMode::Always)
        .await
        .unwrap();
    old.process().kill();
    assert!(
        migrating.delete("k").await.is_err(),
        "the delete did not reach the old cluster"
    );
    assert_eq!(
        on(&new).get("k").await.unwrap(),
        None,
        "but it reached the new one"
    );
}
