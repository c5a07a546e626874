//! Regions: `#[cached(region = "…")]` reads the region table on every call — on/off switch, TTL and cache — so a
//! reinstalled table changes behaviour without a rebuild; the names are collected at link time.

use std::collections::HashMap;
use std::sync::atomic::{AtomicUsize, Ordering::SeqCst};
use std::sync::LazyLock;
use std::time::Duration;

use cachette::regions::{self, Region};
use cachette::{cache_early, cached, Cache};

static USERS_RUNS: AtomicUsize = AtomicUsize::new(0);
static REPORT_RUNS: AtomicUsize = AtomicUsize::new(0);
static REGION_CACHE: LazyLock<Cache> = LazyLock::new(Cache::memory);

#[cached(region = "users", key = "user:{id}", companions(key, invalidate))]
async fn user(id: u64) -> String {
    USERS_RUNS.fetch_add(1, SeqCst);
    format!("user {id}")
}

#[cache_early(region = "reports", ttl = "1h")]
async fn report(month: u32) -> String {
    REPORT_RUNS.fetch_add(1, SeqCst);
    format!("report {month}")
}

fn table(users_on: bool, users_ttl: Option<Duration>) -> HashMap<String, Region> {
    HashMap::from([
        (
            "users".to_owned(),
            Region::new(users_on, users_ttl).with_cache(REGION_CACHE.clone()),
        ),
        ("reports".to_owned(), Region::new(true, None)),
    ])
}

#[tokio::test]
async fn a_region_switches_caching_and_ttl_at_call_time() {
    // Both names the functions use are known before anything is installed.
    assert_eq!(regions::referenced(), ["reports", "users"]);
    assert_eq!(regions::missing_from(&HashMap::new()), ["reports", "users"]);
    assert!(regions::missing_from(&table(true, None)).is_empty());

    // Caching off: every call runs the body, nothing reaches the cache.
    regions::install(table(false, None));
    user(1).await;
    user(1).await;
    assert_eq!(USERS_RUNS.load(SeqCst), 2);
    assert_eq!(
        REGION_CACHE.get::<String>(&user_key(1)).await.unwrap(),
        None
    );

    // Reinstalled with caching on and a 1 s TTL: the second call is a hit, in the region's own cache.
    regions::install(table(true, Some(Duration::from_secs(1))));
    user(1).await;
    user(1).await;
    assert_eq!(USERS_RUNS.load(SeqCst), 3);
    let (meta, _) = REGION_CACHE
        .get_with_meta::<String>(&user_key(1))
        .await
        .unwrap()
        .expect("stored in the region's cache");
    let remaining = meta.remaining_ttl();
    assert!(
        remaining.is_some_and(|ttl| ttl <= Duration::from_secs(1)),
        "{remaining:?}"
    );

    // Off again: the stored entry is not read.
    regions::install(table(false, None));
    user(1).await;
    assert_eq!(USERS_RUNS.load(SeqCst), 4);

    // The other strategies take regions too.
    regions::install(table(true, None));
    report(3).await;
    report(3).await;
    assert_eq!(REPORT_RUNS.load(SeqCst), 1);
}
