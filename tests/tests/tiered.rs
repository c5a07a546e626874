//! The tiered cache (L1 memory + L2 + backplane) on a real redis-server: two instances see each other's writes
//! through the Redis pub/sub backplane (the delay is measured and printed), local hits do not reach L2,
//! fail-safe serves L1 while L2 is down, TTL jitter spreads expiries, failed L2 writes are replayed in order once
//! L2 is back.

use std::sync::Arc;
use std::time::{Duration, Instant};

use cachette::{
    Backend, Cache, KeyTtl, RedisBackend, RedisBackplane, TieredBackend, TieredOptions,
};
use test_support::RedisServer;

async fn l2(server: &RedisServer) -> Arc<dyn Backend> {
    Arc::new(
        RedisBackend::builder()
            .url(server.url())
            .key_prefix("t:")
            .command_timeout(Duration::from_millis(300))
            .connect_timeout(Duration::from_millis(300))
            .build()
            .await
            .unwrap(),
    )
}

async fn instance(server: &RedisServer, options: TieredOptions) -> (Cache, Arc<TieredBackend>) {
    let backplane = RedisBackplane::connect(&server.url(), "tests")
        .await
        .unwrap();
    let tiered = Arc::new(TieredBackend::new(
        l2(server).await,
        Some(backplane),
        options,
    ));
    (Cache::builder().backend_arc(tiered.clone()).build(), tiered)
}

fn gets(server: &RedisServer) -> u64 {
    test_support::redis_command_calls(server.port(), "get")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_instances_see_each_other_through_the_backplane() {
    let Some(server) = RedisServer::start() else {
        return;
    };
    let (a, a_tier) = instance(&server, TieredOptions::default()).await;
    let (b, _b_tier) = instance(&server, TieredOptions::default()).await;
    assert!(a_tier.is_local_tier_on());
    b.set("k", &0u32, None).await.unwrap();
    // Let B's message reach A first: arriving after A's read, it would (rightly) drop A's fresh copy.
    tokio::time::sleep(Duration::from_millis(50)).await;
    assert_eq!(a.get::<u32>("k").await.unwrap(), Some(0));
    let before = gets(&server);
    for _ in 0..10 {
        assert_eq!(a.get::<u32>("k").await.unwrap(), Some(0));
    }
    assert_eq!(gets(&server), before, "L1 hits never reach L2");

    let mut delays = Vec::with_capacity(1_000);
    for i in 1..=1_000u32 {
        b.set("k", &i, None).await.unwrap();
        let written = Instant::now();
        while a.get::<u32>("k").await.unwrap() != Some(i) {
            assert!(
                written.elapsed() < Duration::from_secs(2),
                "A never saw write {i}"
            );
            tokio::task::yield_now().await;
        }
        delays.push(written.elapsed());
    }
    delays.sort_unstable();
    eprintln!(
        "tiered backplane invalidation delay over 1000 writes: p50 {:?}, p99 {:?}, max {:?}",
        delays[499], delays[989], delays[999]
    );
    b.delete("k").await.unwrap();
    let deadline = Instant::now() + Duration::from_secs(2);
    while a.get::<u32>("k").await.unwrap().is_some() {
        assert!(Instant::now() < deadline, "the delete never reached A");
        tokio::task::yield_now().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fail_safe_serves_l1_while_l2_is_down_and_never_while_it_answers() {
    let Some(server) = RedisServer::start() else {
        return;
    };
    let options = TieredOptions {
        l1_ttl: Duration::from_millis(100),
        max_stale: Duration::from_secs(30),
        ..Default::default()
    };
    let (a, _tier) = instance(&server, options).await;
    a.set("k", &"v1", None).await.unwrap();
    tokio::time::sleep(Duration::from_millis(150)).await; // the L1 copy is stale now
                                                          // L2 answers: the stale copy is not served; L2's value is.
    server.command(&["SET", "t:k", "not an envelope"]).unwrap();
    assert_eq!(
        a.get::<String>("k").await.unwrap(),
        None,
        "L2's (unreadable) value, not the stale copy"
    );
    a.set("k", &"v2", None).await.unwrap();
    tokio::time::sleep(Duration::from_millis(150)).await;
    server.kill();
    // L2 down: the stale copy keeps serving (fail-safe).
    assert_eq!(a.get::<String>("k").await.unwrap().as_deref(), Some("v2"));
    // Nothing local for another key: the failure shows.
    assert!(a.get::<String>("other").await.is_err());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn jitter_spreads_the_ttls_written() {
    let Some(server) = RedisServer::start() else {
        return;
    };
    let options = TieredOptions {
        jitter: 0.5,
        ..Default::default()
    };
    let tier = TieredBackend::new(l2(&server).await, None, options);
    let l2 = l2(&server).await;
    let mut ttls = Vec::new();
    for i in 0..100 {
        let key = format!("j{i}");
        tier.set(
            &key,
            "v".into(),
            Some(Duration::from_secs(100)),
            cachette::SetMode::Always,
        )
        .await
        .unwrap();
        match l2.ttl(&key).await.unwrap() {
            KeyTtl::Remaining(left) => ttls.push(left.as_secs_f64()),
            other => panic!("{other:?}"),
        }
    }
    let (min, max) = ttls
        .iter()
        .fold((f64::MAX, 0f64), |(lo, hi), t| (lo.min(*t), hi.max(*t)));
    assert!(min >= 49.0 && max <= 100.0, "{min}..{max}");
    assert!(max - min > 20.0, "TTLs not spread: {min}..{max}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn failed_l2_writes_are_replayed_in_order_once_l2_is_back() {
    let Some(server) = RedisServer::start() else {
        return;
    };
    let options = TieredOptions {
        recovery_interval: Duration::from_millis(100),
        ..Default::default()
    };
    let tier = Arc::new(TieredBackend::new(l2(&server).await, None, options));
    let cache = Cache::builder().backend_arc(tier.clone()).build();
    cache.set("gone", &"old", None).await.unwrap();
    server.kill();
    tokio::time::sleep(Duration::from_millis(100)).await;
    cache.set("k", &"first", None).await.unwrap();
    cache.set("k", &"second", None).await.unwrap();
    cache.delete("gone").await.unwrap();
    assert_eq!(tier.pending_writes(), 2, "one write per key, the newest");
    // This process still reads what it wrote.
    assert_eq!(
        cache.get::<String>("k").await.unwrap().as_deref(),
        Some("second")
    );
    server.restart();
    let deadline = Instant::now() + Duration::from_secs(10);
    while tier.pending_writes() > 0 {
        assert!(Instant::now() < deadline, "the queue was never replayed");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let fresh = Cache::builder().backend_arc(l2(&server).await).build();
    assert_eq!(
        fresh.get::<String>("k").await.unwrap().as_deref(),
        Some("second")
    );
    assert_eq!(fresh.get::<String>("gone").await.unwrap(), None);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn from_a_tiered_url() {
    let Some(server) = RedisServer::start() else {
        return;
    };
    let url = format!(
        "tiered+{}?prefix=u:&l1_ttl=10s&jitter=0.1&backplane_name=urltest",
        server.url()
    );
    let a = cachette::Setup::new(url.clone()).build().await.unwrap();
    let b = cachette::Setup::new(url).build().await.unwrap();
    a.set("k", &1u8, None).await.unwrap();
    assert_eq!(b.get::<u8>("k").await.unwrap(), Some(1));
    a.set("k", &2u8, None).await.unwrap();
    let deadline = Instant::now() + Duration::from_secs(2);
    while b.get::<u8>("k").await.unwrap() != Some(2) {
        assert!(Instant::now() < deadline, "B kept its copy");
        tokio::task::yield_now().await;
    }
    assert!(
        server.command(&["GET", "u:k"]).unwrap().len() > 1,
        "stored in Redis under the prefix"
    );
    assert!(cachette::parse_url("tiered+mem://?jitter=2").is_err());
    assert!(cachette::parse_url("tiered+tiered+mem://").is_err());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dead_backplane_never_holds_up_a_write() {
    let (Some(redis), Some(memcached)) =
        (RedisServer::start(), test_support::MemcachedServer::start())
    else {
        return;
    };
    let backplane = RedisBackplane::connect(&redis.url(), "dead").await.unwrap();
    let l2: Arc<dyn Backend> = Arc::new(
        cachette::MemcachedBackend::builder()
            .servers([memcached.address()])
            .build(),
    );
    let tier = Arc::new(TieredBackend::new(
        l2,
        Some(backplane),
        TieredOptions::default(),
    ));
    let cache = Cache::builder().backend_arc(tier.clone()).build();
    redis.kill();
    let started = Instant::now();
    cache.set("k", &1u8, None).await.unwrap();
    assert!(
        started.elapsed() < Duration::from_secs(2),
        "the write waited {:?}",
        started.elapsed()
    );
    // With the backplane down the local tier is bypassed; L2 (memcached) still answers.
    let deadline = Instant::now() + Duration::from_secs(5);
    while tier.is_local_tier_on() {
        assert!(
            Instant::now() < deadline,
            "the tier never noticed its backplane was down"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(cache.get::<u8>("k").await.unwrap(), Some(1));
}
