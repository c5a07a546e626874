//! The memcached backend on real `memcached` servers started by the test support: every operation, TTLs over
//! 30 days, keys memcached cannot hold, compare-and-set, pymemcache-compatible distribution over 10 servers,
//! a server killed under load, cancelled calls, and every server down.

use std::sync::atomic::{AtomicUsize, Ordering::SeqCst};
use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};

use cachette::{
    cached, Backend, BackendError, Bytes, Cache, Capabilities, CasOutcome, KeyTtl,
    MemcachedBackend, SetMode,
};
use test_support::MemcachedServer;

fn b(text: &str) -> Bytes {
    Bytes::copy_from_slice(text.as_bytes())
}

fn backend(servers: &[&MemcachedServer]) -> MemcachedBackend {
    MemcachedBackend::builder()
        .servers(servers.iter().map(|s| s.address()))
        .command_timeout(Duration::from_secs(2))
        .build()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_operation_on_one_server() {
    let Some(server) = MemcachedServer::start() else {
        return;
    };
    let mc = backend(&[&server]);
    mc.ping().await.unwrap();

    assert_eq!(mc.get("k").await.unwrap(), None);
    assert!(mc.set("k", b("v1"), None, SetMode::Always).await.unwrap());
    assert_eq!(mc.get("k").await.unwrap(), Some(b("v1")));
    // add / replace
    assert!(!mc.set("k", b("v2"), None, SetMode::IfAbsent).await.unwrap());
    assert!(mc
        .set("k", b("v3"), None, SetMode::IfPresent)
        .await
        .unwrap());
    assert!(!mc
        .set("nope", b("x"), None, SetMode::IfPresent)
        .await
        .unwrap());
    assert!(mc
        .set("new", b("x"), None, SetMode::IfAbsent)
        .await
        .unwrap());
    assert_eq!(mc.get("k").await.unwrap(), Some(b("v3")));

    // Values with CR LF and every byte value survive.
    let binary: Vec<u8> = (0..=255u8).chain(*b"\r\nEND\r\n").collect();
    mc.set("bin", Bytes::from(binary.clone()), None, SetMode::Always)
        .await
        .unwrap();
    assert_eq!(mc.get("bin").await.unwrap().as_deref(), Some(&binary[..]));

    // multi-get keeps order and reports misses; set_many and delete_many.
    mc.set_many(&[("m1", b("1")), ("m2", b("2"))], None)
        .await
        .unwrap();
    assert_eq!(
        mc.get_many(&["m1", "missing", "m2"]).await.unwrap(),
        vec![Some(b("1")), None, Some(b("2"))]
    );
    assert_eq!(mc.delete_many(&["m1", "m2", "missing"]).await.unwrap(), 2);
    assert!(mc.delete("k").await.unwrap());
    assert!(!mc.delete("k").await.unwrap());

    // Counters: created with the TTL, incremented, decremented (stopping at 0), non-numbers refused.
    assert_eq!(
        mc.incr("ctr", 5, Some(Duration::from_secs(100)))
            .await
            .unwrap(),
        5
    );
    assert_eq!(mc.incr("ctr", 3, None).await.unwrap(), 8);
    assert_eq!(mc.incr("ctr", -2, None).await.unwrap(), 6);
    assert_eq!(mc.incr("ctr", -100, None).await.unwrap(), 0);
    assert!(
        matches!(mc.ttl("ctr").await.unwrap(), KeyTtl::Remaining(d) if d > Duration::from_secs(90))
    );
    assert!(matches!(
        mc.incr("bin", 1, None).await,
        Err(BackendError::WrongType(_))
    ));
    assert_eq!(mc.get("ctr").await.unwrap(), Some(b("0")));

    // TTLs: set, read back, touched, removed; one over 30 days is sent as an absolute time, not read as one.
    mc.set("t", b("v"), Some(Duration::from_secs(60)), SetMode::Always)
        .await
        .unwrap();
    assert!(
        matches!(mc.ttl("t").await.unwrap(), KeyTtl::Remaining(d) if d <= Duration::from_secs(60))
    );
    assert!(mc.expire("t", Duration::from_secs(600)).await.unwrap());
    assert!(
        matches!(mc.ttl("t").await.unwrap(), KeyTtl::Remaining(d) if d > Duration::from_secs(500))
    );
    assert!(mc.persist("t").await.unwrap());
    assert_eq!(mc.ttl("t").await.unwrap(), KeyTtl::Persistent);
    let forty_days = Duration::from_secs(40 * 24 * 3600);
    mc.set("long", b("v"), Some(forty_days), SetMode::Always)
        .await
        .unwrap();
    assert_eq!(
        mc.get("long").await.unwrap(),
        Some(b("v")),
        "a 40-day TTL must not expire at once"
    );
    assert!(
        matches!(mc.ttl("long").await.unwrap(), KeyTtl::Remaining(d) if d > forty_days - Duration::from_secs(10))
    );
    assert!(!mc.expire("missing", Duration::from_secs(1)).await.unwrap());
    assert_eq!(mc.ttl("missing").await.unwrap(), KeyTtl::Missing);
    mc.set(
        "short",
        b("v"),
        Some(Duration::from_millis(300)),
        SetMode::Always,
    )
    .await
    .unwrap();
    tokio::time::sleep(Duration::from_millis(2100)).await;
    assert_eq!(
        mc.get("short").await.unwrap(),
        None,
        "a sub-second TTL is one second, not forever"
    );

    // No key scan: the typed capability error, never flush_all.
    assert!(matches!(
        mc.delete_match("*").await,
        Err(BackendError::Unsupported {
            capability: Capabilities::SCAN,
            ..
        })
    ));
    assert!(matches!(
        mc.clear().await,
        Err(BackendError::Unsupported { .. })
    ));
    assert_eq!(server.stats().unwrap()["cmd_flush"], "0");

    // Locks: compare-and-delete.
    assert!(mc
        .set("lock", b("me"), None, SetMode::IfAbsent)
        .await
        .unwrap());
    assert!(!mc.unlock("lock", b"you").await.unwrap());
    assert!(mc.unlock("lock", b"me").await.unwrap());
    assert_eq!(mc.get("lock").await.unwrap(), None);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn keys_memcached_cannot_hold_are_mangled() {
    let Some(server) = MemcachedServer::start() else {
        return;
    };
    let cache = Cache::builder().backend(backend(&[&server])).build();
    let long = "k".repeat(300);
    let spaced = "user name with spaces";
    let unicode = "ключ:\u{1F600}";
    for (i, key) in [long.as_str(), spaced, unicode].into_iter().enumerate() {
        cache.set(key, &i, None).await.unwrap();
    }
    for (i, key) in [long.as_str(), spaced, unicode].into_iter().enumerate() {
        assert_eq!(cache.get::<usize>(key).await.unwrap(), Some(i), "{key}");
    }
    // Two long keys sharing their first 250 bytes stay apart.
    let other = format!("{}x", "k".repeat(299));
    assert_eq!(cache.get::<usize>(&other).await.unwrap(), None);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn compare_and_set_outcomes() {
    let Some(server) = MemcachedServer::start() else {
        return;
    };
    let cache = Cache::builder().backend(backend(&[&server])).build();
    assert!(cache.capabilities().contains(Capabilities::CAS));
    cache.set("stock", &10u32, None).await.unwrap();
    let (stock, token) = cache.gets::<u32>("stock").await.unwrap().unwrap();
    assert_eq!(stock, 10);
    assert_eq!(
        cache.cas("stock", &9u32, token, None).await.unwrap(),
        CasOutcome::Stored
    );
    assert_eq!(
        cache.cas("stock", &8u32, token, None).await.unwrap(),
        CasOutcome::Exists
    );
    let (_, fresh) = cache.gets::<u32>("stock").await.unwrap().unwrap();
    cache.delete("stock").await.unwrap();
    assert_eq!(
        cache.cas("stock", &7u32, fresh, None).await.unwrap(),
        CasOutcome::NotFound
    );
    assert_eq!(cache.get::<u32>("stock").await.unwrap(), None);
}

/// pymemcache 4.0.0's `RendezvousHash` over the nodes `127.0.0.1:11211` … `127.0.0.1:11220` assigned `key:0` …
/// `key:999` to these node indexes (one digit per key), computed with pymemcache itself:
/// `"".join(str(nodes.index(RendezvousHash(nodes).get_node(f"key:{i}"))) for i in range(1000))`.
const PYMEMCACHE_ASSIGNMENT: &str = "2697089547011869368884926120371353413840690727902510965290385301828400463490257849386213847260538487748410546291543909694610814200337584520360461847970401395179484704455877543283447166715447829084981816472736422977529680915122576234276196120168783441760384064903227473378096804056037173844671051139555677436289575091335366934894990129998900673423530101141297220051675023466180516194051277890617795560987176509795494209480516185134624335656333688805348176987464527612778833236393238035300900105227095092647033188793440218504950811161874463249005188666989524730776440785238106100893061065204524449749073588206721518645173572467628161685342962957590329375694856894352696101404255155371481351179177379138296928594847551953757275646081802051687076814071766581020602955110796595890386744323421039638645692721365766705670130641937740613718941839219653956824910517195414242277509752377752458984325389010891445374490967214007630332148866362857920176946036527862573272558739430670204147597494897916552579649433";

#[test]
fn the_same_server_as_pymemcache_for_every_key() {
    let nodes: Vec<String> = (0..10)
        .map(|i| format!("127.0.0.1:{}", 11211 + i))
        .collect();
    let mc = MemcachedBackend::builder().servers(nodes.clone()).build();
    for (i, expected) in PYMEMCACHE_ASSIGNMENT.chars().enumerate() {
        let key = format!("key:{i}");
        let expected = &nodes[expected.to_digit(10).unwrap() as usize];
        assert_eq!(mc.server_for(&key), Some(expected.as_str()), "{key}");
    }
    // More keys of other shapes, also from pymemcache 4.0.0.
    for (key, port) in [
        ("user:1", 11213),
        ("user:2", 11211),
        ("session:abc", 11214),
        ("a", 11219),
        ("", 11216),
        ("product:42:price", 11211),
        ("tenant:7:orders", 11216),
        ("k:12345", 11218),
    ] {
        assert_eq!(
            mc.server_for(key),
            Some(format!("127.0.0.1:{port}").as_str()),
            "{key}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ten_servers_share_the_keys_and_a_removed_one_moves_a_tenth() {
    let servers: Vec<MemcachedServer> = (0..10).filter_map(|_| MemcachedServer::start()).collect();
    if servers.len() < 10 {
        return;
    }
    let all: Vec<&MemcachedServer> = servers.iter().collect();
    let mc = backend(&all);
    let keys: Vec<String> = (0..1_000).map(|i| format!("key:{i}")).collect();
    for key in &keys {
        mc.set(key, b(key), None, SetMode::Always).await.unwrap();
    }
    // Each key is on the server the ring names, and only there; every server holds some.
    let singles: Vec<MemcachedBackend> = servers.iter().map(|s| backend(&[s])).collect();
    let mut per_server = vec![0; 10];
    for key in &keys {
        let owner = mc.server_for(key).unwrap();
        for (i, (server, single)) in servers.iter().zip(&singles).enumerate() {
            let held = single.get(key).await.unwrap().is_some();
            assert_eq!(
                held,
                server.address() == owner,
                "{key} on {}",
                server.address()
            );
            per_server[i] += usize::from(held);
        }
    }
    assert!(
        per_server.iter().all(|n| (50..=150).contains(n)),
        "{per_server:?}"
    );

    // Without the fourth server: only its keys move.
    let nine: Vec<&MemcachedServer> = servers
        .iter()
        .enumerate()
        .filter(|(i, _)| *i != 3)
        .map(|(_, s)| s)
        .collect();
    let smaller = backend(&nine);
    let moved = keys
        .iter()
        .filter(|k| mc.server_for(k) != smaller.server_for(k))
        .count();
    assert_eq!(
        moved, per_server[3],
        "exactly the removed server's keys move"
    );
    assert!((60..=140).contains(&moved), "{moved}");
    let still_hit = {
        let mut n = 0;
        for key in &keys {
            n += usize::from(smaller.get(key).await.unwrap().is_some());
        }
        n
    };
    assert_eq!(still_hit, 1_000 - moved);
}

static POOL: OnceLock<Cache> = OnceLock::new();
static BODY_RUNS: AtomicUsize = AtomicUsize::new(0);

#[cached(ttl = "1h", key = "item:{id}", cache = POOL.get().expect("pool cache set up"))]
async fn item(id: u32) -> u32 {
    BODY_RUNS.fetch_add(1, SeqCst);
    id * 2
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_server_killed_under_load_costs_only_its_keys_and_comes_back() {
    let servers: Vec<MemcachedServer> = (0..3).filter_map(|_| MemcachedServer::start()).collect();
    if servers.len() < 3 {
        return;
    }
    let mc = MemcachedBackend::builder()
        .servers(servers.iter().map(|s| s.address()))
        .command_timeout(Duration::from_millis(300))
        .retry_attempts(2)
        .retry_timeout(Duration::from_millis(200))
        .dead_timeout(Duration::from_secs(2))
        .build();
    let probe = mc.clone();
    POOL.set(Cache::builder().backend(mc).build()).unwrap();
    for id in 0..300 {
        assert_eq!(item(id).await, id * 2);
    }
    assert_eq!(BODY_RUNS.load(SeqCst), 300);
    let victim = &servers[1];
    let victims_keys: Vec<u32> = (0..300)
        .filter(|id| probe.server_for(&format!("item:{id}")) == Some(victim.address().as_str()))
        .collect();
    assert!(!victims_keys.is_empty());

    victim.process().kill();
    BODY_RUNS.store(0, SeqCst);
    let load = |round: u32| {
        let tasks: Vec<_> = (0..32u32)
            .map(|t| {
                tokio::spawn(async move {
                    let started = Instant::now();
                    for i in 0..10 {
                        let id = (t * 10 + i + round) % 300;
                        assert_eq!(item(id).await, id * 2, "never a wrong value");
                    }
                    started.elapsed()
                })
            })
            .collect();
        futures::future::join_all(tasks)
    };
    for result in load(0).await {
        // 0 failed calls (a panic would surface here); no call waited much longer than the command timeout.
        let took = result.unwrap();
        assert!(took < Duration::from_secs(5), "a task took {took:?}");
    }
    let runs = BODY_RUNS.load(SeqCst);
    assert!(runs >= 1, "the dead server's keys were recomputed");
    // Bodies ran for the dead server's keys (each at most once per call) and, once it left the ring, for the
    // keys moved to the others; the others' keys stayed hits.
    let calls_on_victims_keys = (0..32u32)
        .flat_map(|t| (0..10).map(move |i| (t * 10 + i) % 300))
        .filter(|id| victims_keys.contains(id))
        .count();
    assert!(
        runs <= calls_on_victims_keys,
        "{runs} body runs for {calls_on_victims_keys} calls on its keys"
    );

    // Back after the dead timeout: used again.
    victim.process().restart().unwrap();
    tokio::time::sleep(Duration::from_millis(2_500)).await;
    let key = format!("item:{}", victims_keys[0]);
    let _ = item(victims_keys[0]).await;
    let _ = item(victims_keys[0]).await;
    assert_eq!(probe.server_for(&key), Some(victim.address().as_str()));
    let single = backend(&[victim]);
    assert!(
        single.get(&key).await.unwrap().is_some(),
        "the restarted server holds its key again"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cancelled_call_never_leaves_its_reply_for_the_next() {
    let Some(server) = MemcachedServer::start() else {
        return;
    };
    let mc = MemcachedBackend::builder()
        .servers([server.address()])
        .pool_size(1)
        .command_timeout(Duration::from_secs(2))
        .build();
    let big = Bytes::from(vec![b'a'; 512 * 1024]);
    mc.set("big", big.clone(), None, SetMode::Always)
        .await
        .unwrap();
    mc.set("small", b("small"), None, SetMode::Always)
        .await
        .unwrap();
    let mut abandoned_calls = 0;
    for round in 0..60u64 {
        // Send the read of the big value, poll it once or twice (nothing or part of the reply read), give up,
        // then read another key on the pool's one connection. A first poll that already read the whole reply
        // (the server was quick) abandons nothing; enough rounds must abandon a call for the test to mean it.
        let mut abandoned = Box::pin(mc.get("big"));
        if futures::poll!(abandoned.as_mut()).is_ready() {
            continue;
        }
        abandoned_calls += 1;
        if round % 2 == 1 {
            tokio::time::sleep(Duration::from_millis(1 + round % 3)).await;
            let _ = futures::poll!(abandoned.as_mut());
        }
        drop(abandoned);
        let small = mc.get("small").await.unwrap();
        assert!(
            small.as_deref() == Some(&b"small"[..]),
            "round {round}: another call's reply was read"
        );
    }
    assert!(
        abandoned_calls >= 10,
        "only {abandoned_calls} calls were abandoned mid-way"
    );
    assert_eq!(mc.get("big").await.unwrap(), Some(big));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_server_down_means_misses_fast_and_bodies_run() {
    let servers: Vec<MemcachedServer> = (0..2).filter_map(|_| MemcachedServer::start()).collect();
    if servers.len() < 2 {
        return;
    }
    let all: Vec<&MemcachedServer> = servers.iter().collect();
    let mc = MemcachedBackend::builder()
        .servers(all.iter().map(|s| s.address()))
        .command_timeout(Duration::from_millis(200))
        .build();
    let cache = Cache::builder().backend(mc).build();
    cache.set("k", &1u8, None).await.unwrap();
    for server in &servers {
        server.process().kill();
    }
    let runs = Arc::new(AtomicUsize::new(0));
    for _ in 0..20 {
        let started = Instant::now();
        let runs = runs.clone();
        let value = cache
            .get_or_set("k", None, || async move {
                runs.fetch_add(1, SeqCst);
                2u8
            })
            .await;
        assert_eq!(value, 2);
        assert!(
            started.elapsed() < Duration::from_millis(700),
            "{:?}",
            started.elapsed()
        );
    }
    assert_eq!(runs.load(SeqCst), 20);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn setup_from_a_url() {
    let servers: Vec<MemcachedServer> = (0..2).filter_map(|_| MemcachedServer::start()).collect();
    if servers.len() < 2 {
        return;
    }
    let url = format!(
        "memcached://{},{}?prefix=app:&pool_size=2&command_timeout=1s&dead_timeout=5s",
        servers[0].address(),
        servers[1].address()
    );
    let cache = cachette::Setup::new(url)
        .require_connection(true)
        .build()
        .await
        .unwrap();
    cache.set("hello", &"world", None).await.unwrap();
    assert_eq!(
        cache.get::<String>("hello").await.unwrap().as_deref(),
        Some("world")
    );
    let prefixed = servers.iter().map(|s| backend(&[s])).collect::<Vec<_>>();
    let mut found = 0;
    for single in &prefixed {
        found += usize::from(single.get("app:hello").await.unwrap().is_some());
    }
    assert_eq!(found, 1, "stored once, under the prefix");
}

/// A server that stops answering (hung, not gone: its connections stay open) costs each call at most about its
/// command timeout, and the cache fails open; once it answers again, so does the cache.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_hung_server_times_calls_out_and_the_cache_fails_open() {
    let Some(server) = MemcachedServer::start() else {
        return;
    };
    let mc = MemcachedBackend::builder()
        .servers([server.address()])
        .command_timeout(Duration::from_millis(200))
        // Marked dead after its timeouts, as pymemcache does; retried soon for the test.
        .retry_timeout(Duration::from_millis(200))
        .dead_timeout(Duration::from_secs(1))
        .build();
    let cache = Cache::builder().backend(mc).build();
    cache.set("k", &1u8, None).await.unwrap();
    assert_eq!(cache.get::<u8>("k").await.unwrap(), Some(1));
    server.process().pause();
    let calls: Vec<_> = (0..16)
        .map(|_| {
            let cache = cache.clone();
            tokio::spawn(async move {
                let started = Instant::now();
                let value = cache.get_or_set("k", None, || async { 2u8 }).await;
                (value, started.elapsed())
            })
        })
        .collect();
    for call in calls {
        let (value, took) = call.await.unwrap();
        assert_eq!(value, 2, "failed open: the body ran");
        assert!(
            took >= Duration::from_millis(150),
            "answered by a hung server? {took:?}"
        );
        assert!(
            took < Duration::from_millis(1_000),
            "waited {took:?} for a 200 ms timeout"
        );
    }
    server.process().resume();
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        if let Ok(Some(1)) = cache.get::<u8>("k").await {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the server answers again, the cache does not"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// A multi-thread runtime with one worker: the runtime a test moves the backend to.
fn one_worker_runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .unwrap()
}

/// A connection opened on a runtime that is kept but no longer driven (a start-up runtime left idle) and then
/// used from another runtime: nothing drives the first runtime's timers or sockets, so the call must be timed
/// by the runtime it runs on, and the next call opens a connection there.
#[test]
fn a_call_from_another_runtime_times_out_even_if_the_first_is_idle() {
    let Some(server) = MemcachedServer::start() else {
        return;
    };
    let mc = MemcachedBackend::builder()
        .servers([server.address()])
        .command_timeout(Duration::from_millis(200))
        .retry_timeout(Duration::from_millis(50))
        .build();
    let cache = Cache::builder().backend(mc).build();
    let idle = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    idle.block_on(cache.set("k", &1u8, None)).unwrap();
    let second = one_worker_runtime();
    let started = Instant::now();
    let first = second.block_on(async {
        tokio::time::timeout(Duration::from_secs(5), cache.get::<u8>("k")).await
    });
    assert!(
        first.is_ok(),
        "the call hung on the idle runtime's connection"
    );
    assert!(
        started.elapsed() < Duration::from_secs(2),
        "{:?}",
        started.elapsed()
    );
    let answered = second.block_on(async {
        for _ in 0..50 {
            if let Ok(Some(1)) = cache.get::<u8>("k").await {
                return true;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        false
    });
    assert!(
        answered,
        "no answer from a connection of the second runtime"
    );
    drop(idle);
}

/// A backend first used on one runtime and then, that runtime gone, on another (tests, sync callers): its calls
/// still answer, and still time out on a hung server.
#[test]
fn timeouts_still_fire_after_the_first_runtime_is_gone() {
    let Some(server) = MemcachedServer::start() else {
        return;
    };
    let mc = MemcachedBackend::builder()
        .servers([server.address()])
        .command_timeout(Duration::from_millis(200))
        .retry_timeout(Duration::from_millis(100))
        .dead_timeout(Duration::from_millis(300))
        .build();
    let cache = Cache::builder().backend(mc).build();
    let first = one_worker_runtime();
    first.block_on(cache.set("k", &1u8, None)).unwrap();
    drop(first);
    std::thread::sleep(Duration::from_millis(300));
    let second = one_worker_runtime();
    // Connections made on the first runtime fail on this one; the next call opens one here.
    second.block_on(async {
        let mut last = None;
        for _ in 0..50 {
            match cache.get::<u8>("k").await {
                Ok(Some(1)) => return,
                other => last = Some(format!("{other:?}")),
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        panic!("no answer on the second runtime: {last:?}");
    });
    server.process().pause();
    let started = Instant::now();
    let read = second.block_on(async {
        tokio::time::timeout(Duration::from_secs(5), cache.get::<u8>("k")).await
    });
    server.process().resume();
    let read = read.expect("the call itself timed out, not the test's guard");
    assert!(
        read.is_err() || read.as_ref().is_ok_and(Option::is_none),
        "{read:?}"
    );
    assert!(
        started.elapsed() < Duration::from_secs(1),
        "{:?}",
        started.elapsed()
    );
}
