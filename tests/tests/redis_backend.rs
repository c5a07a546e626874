//! Every `Backend` operation of `RedisBackend` against a real `redis-server` (started by `test_support` on a free
//! port), plus the `Cache` layer on top of it. Each test uses its own key prefix on the shared server; tests that
//! flush, kill or restart a server start their own.

use std::time::{Duration, Instant};

use bytes::Bytes;
use cachette::fred::interfaces::KeysInterface;
use cachette::RedisBackend;
use cachette::{Backend, BackendError, Cache, KeyTtl, SetMode};
use serde::{Deserialize, Serialize};
use test_support::{shared_redis, RedisServer};

fn init_tracing() {
    let _ = tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::from_default_env())
        .with_test_writer()
        .try_init();
}

/// A backend on the shared server under `prefix`; `None` (test skipped) without redis-server.
async fn backend(prefix: &str) -> Option<(RedisBackend, &'static RedisServer)> {
    init_tracing();
    let server = shared_redis()?;
    let backend = RedisBackend::builder()
        .url(server.url())
        .key_prefix(prefix)
        .build()
        .await
        .expect("backend builds");
    backend.ping().await.expect("redis answers");
    Some((backend, server))
}

fn b(text: &str) -> Bytes {
    Bytes::copy_from_slice(text.as_bytes())
}

fn pttl(server: &RedisServer, key: &str) -> i64 {
    server
        .command(&["PTTL", key])
        .expect("PTTL")
        .parse()
        .expect("integer reply")
}

#[tokio::test]
async fn get_set_delete_round_trip() {
    let Some((redis, _)) = backend("t-basic:").await else {
        return;
    };
    assert_eq!(redis.name(), "redis");
    assert_eq!(redis.get("k").await.unwrap(), None);
    assert!(redis
        .set("k", b("v1"), None, SetMode::Always)
        .await
        .unwrap());
    assert_eq!(redis.get("k").await.unwrap(), Some(b("v1")));
    // Binary values go through untouched.
    let binary = Bytes::from_static(&[0, 159, 146, 150, 255, b'\r', b'\n']);
    redis
        .set("bin", binary.clone(), None, SetMode::Always)
        .await
        .unwrap();
    assert_eq!(redis.get("bin").await.unwrap(), Some(binary));
    assert!(redis.delete("k").await.unwrap());
    assert!(!redis.delete("k").await.unwrap());
    assert_eq!(redis.get("k").await.unwrap(), None);
}

#[tokio::test]
async fn ttl_is_really_set() {
    let Some((redis, server)) = backend("t-ttl:").await else {
        return;
    };
    redis
        .set(
            "long",
            b("v"),
            Some(Duration::from_secs(30)),
            SetMode::Always,
        )
        .await
        .unwrap();
    let raw = pttl(server, "t-ttl:long");
    assert!((25_000..=30_000).contains(&raw), "PTTL {raw}");
    match redis.ttl("long").await.unwrap() {
        KeyTtl::Remaining(d) => {
            assert!(d > Duration::from_secs(25) && d <= Duration::from_secs(30))
        }
        other => panic!("expected a remaining TTL, got {other:?}"),
    }

    redis
        .set("forever", b("v"), None, SetMode::Always)
        .await
        .unwrap();
    assert_eq!(redis.ttl("forever").await.unwrap(), KeyTtl::Persistent);
    assert_eq!(pttl(server, "t-ttl:forever"), -1);
    assert_eq!(redis.ttl("nothing").await.unwrap(), KeyTtl::Missing);

    redis
        .set(
            "short",
            b("v"),
            Some(Duration::from_millis(150)),
            SetMode::Always,
        )
        .await
        .unwrap();
    assert!(redis.get("short").await.unwrap().is_some());
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(redis.get("short").await.unwrap(), None, "Redis expired it");

    // A sub-millisecond TTL must not become "no TTL" or an invalid PX 0.
    redis
        .set(
            "tiny",
            b("v"),
            Some(Duration::from_micros(10)),
            SetMode::Always,
        )
        .await
        .unwrap();
    assert_ne!(redis.ttl("tiny").await.unwrap(), KeyTtl::Persistent);
}

#[tokio::test]
async fn set_modes_nx_and_xx() {
    let Some((redis, server)) = backend("t-modes:").await else {
        return;
    };
    assert!(!redis
        .set("k", b("x"), None, SetMode::IfPresent)
        .await
        .unwrap());
    assert_eq!(
        redis.get("k").await.unwrap(),
        None,
        "XX on a missing key writes nothing"
    );
    assert!(redis
        .set(
            "k",
            b("first"),
            Some(Duration::from_secs(60)),
            SetMode::IfAbsent
        )
        .await
        .unwrap());
    assert!(!redis
        .set("k", b("second"), None, SetMode::IfAbsent)
        .await
        .unwrap());
    assert_eq!(
        redis.get("k").await.unwrap(),
        Some(b("first")),
        "NX kept the value"
    );
    assert!(
        pttl(server, "t-modes:k") > 0,
        "the NX write carried its TTL"
    );
    assert!(redis
        .set("k", b("third"), None, SetMode::IfPresent)
        .await
        .unwrap());
    assert_eq!(redis.get("k").await.unwrap(), Some(b("third")));
}

#[tokio::test]
async fn get_many_set_many_delete_many() {
    let Some((redis, server)) = backend("t-many:").await else {
        return;
    };
    assert_eq!(
        redis.get_many(&[]).await.unwrap(),
        Vec::<Option<Bytes>>::new()
    );
    let keys: Vec<String> = (0..50).map(|i| format!("k{i}")).collect();
    let entries: Vec<(&str, Bytes)> = keys
        .iter()
        .map(|k| (k.as_str(), b(&format!("v-{k}"))))
        .collect();
    redis
        .set_many(&entries, Some(Duration::from_secs(60)))
        .await
        .unwrap();
    let ttl = pttl(server, "t-many:k7");
    assert!(
        (50_000..=60_000).contains(&ttl),
        "set_many set the TTL: {ttl}"
    );

    let wanted = ["k3", "missing-1", "k49", "k0", "missing-2"];
    let got = redis.get_many(&wanted).await.unwrap();
    assert_eq!(
        got,
        vec![
            Some(b("v-k3")),
            None,
            Some(b("v-k49")),
            Some(b("v-k0")),
            None
        ]
    );

    redis.set_many(&[("plain", b("p"))], None).await.unwrap();
    assert_eq!(redis.ttl("plain").await.unwrap(), KeyTtl::Persistent);

    let refs: Vec<&str> = keys.iter().map(String::as_str).chain(["missing"]).collect();
    assert_eq!(redis.delete_many(&refs).await.unwrap(), 50);
    assert_eq!(redis.delete_many(&[]).await.unwrap(), 0);
    assert!(redis
        .get_many(&["k1", "k2"])
        .await
        .unwrap()
        .iter()
        .all(Option::is_none));
}

#[tokio::test]
async fn scan_and_delete_match_over_many_pages() {
    let Some((redis, _)) = backend("t-scan:").await else {
        return;
    };
    // A small page forces many SCAN round trips (and the default page size of 1000 is covered by 2500 keys).
    let paged = RedisBackend::builder()
        .url(shared_redis().map(|s| s.url()).unwrap_or_default())
        .key_prefix("t-scan:")
        .scan_count(100)
        .build()
        .await
        .unwrap();
    let keys: Vec<String> = (0..2_500).map(|i| format!("item:{i}")).collect();
    for chunk in keys.chunks(500) {
        let entries: Vec<(&str, Bytes)> = chunk.iter().map(|k| (k.as_str(), b("x"))).collect();
        redis
            .set_many(&entries, Some(Duration::from_secs(120)))
            .await
            .unwrap();
    }
    redis
        .set("other:1", b("x"), None, SetMode::Always)
        .await
        .unwrap();
    redis
        .set("other:2", b("x"), None, SetMode::Always)
        .await
        .unwrap();

    let mut found = redis.scan("item:*").await.unwrap();
    assert_eq!(found.len(), 2_500);
    found.sort();
    let mut expected = keys.clone();
    expected.sort();
    assert_eq!(
        found, expected,
        "scan strips the prefix and finds every key"
    );
    assert_eq!(paged.scan("item:*").await.unwrap().len(), 2_500);
    assert_eq!(redis.scan("item:1?").await.unwrap().len(), 10);
    assert_eq!(redis.scan("nothing:*").await.unwrap(), Vec::<String>::new());

    assert_eq!(paged.delete_match("item:*").await.unwrap(), 2_500);
    assert!(redis.scan("item:*").await.unwrap().is_empty());
    let mut rest = redis.scan("*").await.unwrap();
    rest.sort();
    assert_eq!(
        rest,
        ["other:1", "other:2"],
        "delete_match left the other keys alone"
    );
}

#[tokio::test]
async fn incr_applies_ttl_only_on_create() {
    let Some((redis, server)) = backend("t-incr:").await else {
        return;
    };
    assert_eq!(
        redis
            .incr("n", 5, Some(Duration::from_secs(10)))
            .await
            .unwrap(),
        5
    );
    let first = pttl(server, "t-incr:n");
    assert!((5_000..=10_000).contains(&first), "TTL on create: {first}");
    assert_eq!(
        redis
            .incr("n", 3, Some(Duration::from_secs(100)))
            .await
            .unwrap(),
        8
    );
    assert!(
        pttl(server, "t-incr:n") <= 10_000,
        "an existing key keeps its TTL"
    );
    assert_eq!(redis.incr("n", -10, None).await.unwrap(), -2);

    // An existing persistent counter equal to `by` is not "created" by the increment.
    redis
        .set("zero", b("0"), None, SetMode::Always)
        .await
        .unwrap();
    assert_eq!(
        redis
            .incr("zero", 0, Some(Duration::from_secs(10)))
            .await
            .unwrap(),
        0
    );
    assert_eq!(redis.ttl("zero").await.unwrap(), KeyTtl::Persistent);

    assert_eq!(redis.incr("plain", 1, None).await.unwrap(), 1);
    assert_eq!(redis.ttl("plain").await.unwrap(), KeyTtl::Persistent);

    redis
        .set("text", b("abc"), None, SetMode::Always)
        .await
        .unwrap();
    for ttl in [None, Some(Duration::from_secs(1))] {
        let error = redis.incr("text", 1, ttl).await.unwrap_err();
        assert!(matches!(error, BackendError::WrongType(_)), "{error:?}");
    }
    server.command(&["RPUSH", "t-incr:list", "a"]).unwrap();
    let error = redis.get("list").await.unwrap_err();
    assert!(matches!(error, BackendError::WrongType(_)), "{error:?}");
}

#[tokio::test]
async fn expire_and_ttl() {
    let Some((redis, _)) = backend("t-expire:").await else {
        return;
    };
    assert!(!redis
        .expire("missing", Duration::from_secs(5))
        .await
        .unwrap());
    redis.set("k", b("v"), None, SetMode::Always).await.unwrap();
    assert!(redis.expire("k", Duration::from_secs(5)).await.unwrap());
    match redis.ttl("k").await.unwrap() {
        KeyTtl::Remaining(d) => assert!(d <= Duration::from_secs(5) && d > Duration::from_secs(2)),
        other => panic!("{other:?}"),
    }
    assert!(redis.expire("k", Duration::from_millis(50)).await.unwrap());
    tokio::time::sleep(Duration::from_millis(150)).await;
    assert_eq!(redis.ttl("k").await.unwrap(), KeyTtl::Missing);
}

#[tokio::test]
async fn unlock_is_compare_and_delete() {
    let Some((redis, _)) = backend("t-lock:").await else {
        return;
    };
    let token = b"token-1234";
    assert!(redis
        .set(
            "lock",
            Bytes::from_static(token),
            Some(Duration::from_secs(30)),
            SetMode::IfAbsent
        )
        .await
        .unwrap());
    assert!(!redis
        .set(
            "lock",
            b("other"),
            Some(Duration::from_secs(30)),
            SetMode::IfAbsent
        )
        .await
        .unwrap());
    assert!(!redis.unlock("lock", b"wrong").await.unwrap());
    assert_eq!(
        redis.get("lock").await.unwrap(),
        Some(Bytes::from_static(token))
    );
    assert!(redis.unlock("lock", token).await.unwrap());
    assert_eq!(redis.get("lock").await.unwrap(), None);
    assert!(!redis.unlock("lock", token).await.unwrap());

    // The script is cached by SHA; after SCRIPT FLUSH the backend falls back to EVAL.
    if let Some(server) = shared_redis() {
        server.command(&["SCRIPT", "FLUSH"]).unwrap();
    }
    redis
        .set("lock", b("t"), None, SetMode::Always)
        .await
        .unwrap();
    assert!(redis.unlock("lock", b"t").await.unwrap());
}

#[tokio::test]
async fn clear_removes_only_the_prefix() {
    let Some((a, server)) = backend("t-clear-a:").await else {
        return;
    };
    let (other, _) = backend("t-clear-b:").await.unwrap();
    for i in 0..1_500 {
        a.set(&format!("k{i}"), b("x"), None, SetMode::Always)
            .await
            .unwrap();
    }
    other
        .set("k1", b("x"), None, SetMode::Always)
        .await
        .unwrap();
    server.command(&["SET", "t-clear-raw", "x"]).unwrap();
    a.clear().await.unwrap();
    assert!(a.scan("*").await.unwrap().is_empty());
    assert_eq!(other.get("k1").await.unwrap(), Some(b("x")));
    assert_eq!(server.command(&["GET", "t-clear-raw"]).unwrap(), "x");

    let unprefixed = RedisBackend::builder()
        .url(server.url())
        .build()
        .await
        .unwrap();
    let error = unprefixed.clear().await.unwrap_err();
    assert!(matches!(error, BackendError::Invalid(_)), "{error:?}");
    assert_eq!(server.command(&["GET", "t-clear-raw"]).unwrap(), "x");
}

#[tokio::test]
async fn clear_all_flushes_a_dedicated_database() {
    init_tracing();
    let Some(server) = RedisServer::start() else {
        return;
    };
    let redis = RedisBackend::builder()
        .url(server.url())
        .clear_all(true)
        .build()
        .await
        .unwrap();
    server.command(&["SET", "foreign", "x"]).unwrap();
    redis
        .set("mine", b("x"), None, SetMode::Always)
        .await
        .unwrap();
    redis.clear().await.unwrap();
    assert_eq!(server.command(&["DBSIZE"]).unwrap(), "0");
}

#[tokio::test]
async fn prefix_with_glob_characters_matches_only_itself() {
    let Some((weird, _)) = backend("t-we*ird[1]:").await else {
        return;
    };
    let (lookalike, _) = backend("t-weXXird1:").await.unwrap();
    weird.set("a", b("1"), None, SetMode::Always).await.unwrap();
    lookalike
        .set("b", b("2"), None, SetMode::Always)
        .await
        .unwrap();
    assert_eq!(weird.scan("*").await.unwrap(), ["a"]);
    weird.clear().await.unwrap();
    assert_eq!(lookalike.get("b").await.unwrap(), Some(b("2")));
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
struct Account {
    id: u64,
    owner: String,
}

fn account() -> Account {
    Account {
        id: 7,
        owner: "ada".into(),
    }
}

#[tokio::test]
async fn cache_keys_are_stored_as_written() {
    let Some((redis, _)) = backend("t-keys:").await else {
        return;
    };
    let cache = Cache::builder().backend(redis.clone()).build();
    cache
        .set("user:42:7", &account(), Some(Duration::from_secs(60)))
        .await
        .unwrap();
    // What `redis-cli GET t-keys:user:42:7` would show: the key as written, under the backend prefix.
    let raw: Option<Bytes> = redis.pool().get("t-keys:user:42:7").await.unwrap();
    assert!(raw.is_some_and(|r| !r.is_empty()));
    assert_eq!(redis.scan("user:*").await.unwrap(), ["user:42:7"]);
    assert_eq!(
        cache.get::<Account>("user:42:7").await.unwrap(),
        Some(account())
    );
}

#[tokio::test]
async fn foreign_and_corrupt_bytes_read_as_misses_and_are_overwritten() {
    let Some((redis, server)) = backend("t-corrupt:").await else {
        return;
    };
    let cache = Cache::builder().backend(redis.clone()).build();

    // A real entry, truncated by "another client".
    cache.set("truncated", &account(), None).await.unwrap();
    let whole: Option<Bytes> = redis.pool().get("t-corrupt:truncated").await.unwrap();
    let whole = whole.expect("stored");
    let cut = whole.slice(..whole.len() / 2);
    let _: () = redis
        .pool()
        .set("t-corrupt:truncated", cut.clone(), None, None, false)
        .await
        .unwrap();

    server
        .command(&["SET", "t-corrupt:garbage", "not an envelope"])
        .unwrap();
    server
        .command(&["SET", "t-corrupt:json", r#"{"id":7,"owner":"ada"}"#])
        .unwrap();
    let _: () = redis
        .pool()
        .set(
            "t-corrupt:binary",
            Bytes::from_static(&[0xff; 64]),
            None,
            None,
            false,
        )
        .await
        .unwrap();
    server.command(&["SET", "t-corrupt:empty", ""]).unwrap();

    for key in ["truncated", "garbage", "json", "binary", "empty"] {
        assert_eq!(
            cache.get::<Account>(key).await.unwrap(),
            None,
            "{key} reads as a miss"
        );
        let mut ran = false;
        let value = cache
            .get_or_set(key, Some(Duration::from_secs(60)), || {
                ran = true;
                async { account() }
            })
            .await;
        assert!(ran, "{key}: the body ran");
        assert_eq!(value, account());
        assert_eq!(
            cache.get::<Account>(key).await.unwrap(),
            Some(account()),
            "{key} was overwritten with a readable entry"
        );
    }

    // A stored value of another type is a miss too.
    cache.set("typed", &"a string", None).await.unwrap();
    assert_eq!(cache.get::<Account>("typed").await.unwrap(), None);
}

#[tokio::test]
async fn cache_get_or_set_hits_redis() {
    let Some((redis, _)) = backend("t-cache:").await else {
        return;
    };
    let cache = Cache::builder().backend(redis).build();
    let first = cache
        .get_or_set("answer", Some(Duration::from_secs(60)), || async { 42u32 })
        .await;
    let second = cache
        .get_or_set("answer", Some(Duration::from_secs(60)), || async {
            panic!("served from Redis, the body must not run")
        })
        .await;
    assert_eq!((first, second), (42, 42));
    let metrics = cache.metrics();
    assert_eq!(
        (metrics.hits, metrics.backend_errors),
        (1, 0),
        "{metrics:?}"
    );
}

#[tokio::test]
async fn down_at_start_up_fails_fast_then_connects() {
    init_tracing();
    let Some(server) = RedisServer::start() else {
        return;
    };
    server.kill();
    let started = Instant::now();
    let redis = RedisBackend::builder()
        .url(server.url())
        .connect_timeout(Duration::from_millis(300))
        .command_timeout(Duration::from_millis(500))
        .key_prefix("t-down:")
        .build()
        .await
        .expect("an unreachable server is not a set-up error");
    let build_time = started.elapsed();
    assert!(
        build_time < Duration::from_secs(3),
        "build waited {build_time:?}"
    );
    assert!(!redis.is_connected());

    let started = Instant::now();
    let error = redis.get("k").await.unwrap_err();
    let failed_after = started.elapsed();
    assert!(matches!(error, BackendError::Connection(_)), "{error:?}");
    assert!(
        failed_after < Duration::from_millis(250),
        "failed after {failed_after:?}"
    );

    let cache = Cache::builder().backend(redis.clone()).build();
    assert_eq!(cache.get_or_set("k", None, || async { 1u8 }).await, 1);
    assert!(cache.metrics().backend_errors > 0);

    server.restart();
    let deadline = Instant::now() + Duration::from_secs(10);
    while redis.ping().await.is_err() {
        assert!(Instant::now() < deadline, "backend never reconnected");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    println!(
        "down at start-up: build took {build_time:?}, first call failed after {failed_after:?}, reconnected"
    );
    redis.set("k", b("v"), None, SetMode::Always).await.unwrap();
    assert_eq!(redis.get("k").await.unwrap(), Some(b("v")));
}

#[tokio::test]
async fn setup_urls_build_working_caches() {
    let Some(server) = shared_redis() else { return };
    init_tracing();
    let url = format!(
        "{}/0?prefix=t-setup:&pool_size=2&command_timeout=300ms&connect_timeout=1s",
        server.url()
    );
    let cache = cachette::build_cache(&url).await.unwrap();
    assert_eq!(cache.backend_for("k").name(), "redis");
    cache.set("k", &5u8, None).await.unwrap();
    assert!(server.command(&["EXISTS", "t-setup:k"]).unwrap() == "1");

    // Route one prefix to memory, the rest to Redis.
    let cache = cachette::Setup::new(url.clone())
        .route("local:", "mem://?size=100")
        .build()
        .await
        .unwrap();
    assert_eq!(cache.backend_for("local:x").name(), "memory");
    assert_eq!(cache.backend_for("remote:x").name(), "redis");

    let error = cachette::build_cache(&format!("{}?pool_sise=2", server.url()))
        .await
        .unwrap_err();
    assert!(error.to_string().contains("pool_sise"), "{error}");

    let installed = cachette::setup(&url).await.unwrap();
    installed.set("global", &1u8, None).await.unwrap();
    assert_eq!(
        cachette::global().get::<u8>("global").await.unwrap(),
        Some(1)
    );
}

#[tokio::test]
async fn sentinel_url_reaches_the_primary() {
    init_tracing();
    let Some(sentinel) = test_support::RedisSentinel::start() else {
        return;
    };
    let cache = cachette::build_cache(&format!("{}&prefix=t-sentinel:", sentinel.url()))
        .await
        .unwrap();
    cache.set("k", &3u8, None).await.unwrap();
    assert_eq!(cache.get::<u8>("k").await.unwrap(), Some(3));
    assert_eq!(
        sentinel
            .primary()
            .command(&["EXISTS", "t-sentinel:k"])
            .unwrap(),
        "1"
    );
}

#[tokio::test]
async fn sets_index_members_and_only_extend_their_ttl() {
    let Some((backend, server)) = backend("sets:").await else {
        return;
    };
    backend
        .set_add("tag", &["a", "b"], Some(Duration::from_secs(5)))
        .await
        .unwrap();
    let first = pttl(server, "sets:tag");
    assert!(
        first > 0 && first <= 5_000,
        "a new set takes the TTL: {first}"
    );
    backend
        .set_add("tag", &["c"], Some(Duration::from_millis(100)))
        .await
        .unwrap();
    assert!(
        pttl(server, "sets:tag") > 1_000,
        "a shorter TTL never shortens the set"
    );
    backend
        .set_add("tag", &["d"], Some(Duration::from_secs(60)))
        .await
        .unwrap();
    assert!(pttl(server, "sets:tag") > 50_000, "a longer TTL extends it");
    backend.set_add("tag", &["e"], None).await.unwrap();
    assert_eq!(
        pttl(server, "sets:tag"),
        -1,
        "a member without TTL makes the index persistent"
    );
    let mut members = backend.set_members("tag").await.unwrap();
    members.sort();
    assert_eq!(members, vec!["a", "b", "c", "d", "e"]);
    assert_eq!(backend.set_remove("tag", &["a", "zz"]).await.unwrap(), 1);
    assert!(backend.set_members("missing").await.unwrap().is_empty());
    backend
        .set("plain", b("v"), None, SetMode::Always)
        .await
        .unwrap();
    assert!(matches!(
        backend.set_add("plain", &["x"], None).await,
        Err(BackendError::WrongType(_))
    ));
}

/// `suppress(true)`: typed operations on a failing backend answer neutrally instead of erroring, and each
/// failure is counted; without it they report the error.
#[tokio::test]
async fn suppress_turns_backend_failures_into_neutral_answers() {
    init_tracing();
    let Some(server) = RedisServer::start() else {
        return;
    };
    let redis = RedisBackend::builder()
        .url(server.url())
        .key_prefix("t-suppress:")
        .command_timeout(Duration::from_millis(300))
        .build()
        .await
        .unwrap();
    let suppressing = Cache::builder()
        .backend(redis.clone())
        .suppress(true)
        .build();
    let strict = Cache::builder().backend(redis.clone()).build();
    suppressing.set("k", &1u8, None).await.unwrap();
    server.kill();

    assert!(strict.get::<u8>("k").await.unwrap_err().is_backend());
    assert_eq!(suppressing.get::<u8>("k").await.unwrap(), None);
    assert_eq!(
        suppressing.get_many::<u8>(&["k", "j"]).await.unwrap(),
        vec![None, None]
    );
    suppressing.set("k", &2u8, None).await.unwrap();
    suppressing.set_many(&[("k", &2u8)], None).await.unwrap();
    assert!(!suppressing.delete("k").await.unwrap());
    assert_eq!(suppressing.delete_many(&["k"]).await.unwrap(), 0);
    assert_eq!(suppressing.delete_match("*").await.unwrap(), 0);
    assert!(suppressing.scan("*").await.unwrap().is_empty());
    assert!(!suppressing
        .expire("k", Duration::from_secs(1))
        .await
        .unwrap());
    assert_eq!(suppressing.ttl("k").await.unwrap(), KeyTtl::Missing);
    assert!(
        suppressing.incr("n", 1, None).await.is_err(),
        "a counter has no neutral answer"
    );
    assert!(
        suppressing.ping().await.is_err(),
        "the health check is never suppressed"
    );
    assert!(suppressing.metrics().backend_errors >= 10);
}

/// Regression: with prefix `app`, `clear()` also deleted the keys of an application using `apple:`.
#[tokio::test]
async fn clear_refuses_a_prefix_without_a_separator_and_setup_warns() {
    let Some(server) = shared_redis() else { return };
    let logs = test_support::CapturedLogs::default();
    let subscriber = tracing_subscriber::fmt()
        .with_writer(logs.clone())
        .with_ansi(false)
        .finish();
    let guard = tracing::subscriber::set_default(subscriber);
    let app = RedisBackend::builder()
        .url(server.url())
        .key_prefix("t-sep")
        .build()
        .await
        .unwrap();
    drop(guard);
    assert!(
        logs.text().contains("does not end with a separator"),
        "no warning at setup: {}",
        logs.text()
    );
    let (other, _) = backend("t-separate:").await.unwrap();
    other.set("k", b("x"), None, SetMode::Always).await.unwrap();
    app.set("k", b("x"), None, SetMode::Always).await.unwrap();
    let error = app.clear().await.unwrap_err();
    assert!(matches!(error, BackendError::Invalid(_)), "{error:?}");
    assert!(error.to_string().contains("separator"), "{error}");
    assert_eq!(
        other.get("k").await.unwrap(),
        Some(b("x")),
        "the other app's key survives"
    );
    assert_eq!(app.get("k").await.unwrap(), Some(b("x")));

    let separated = RedisBackend::builder()
        .url(server.url())
        .key_prefix("t-sep:")
        .build()
        .await
        .unwrap();
    separated
        .set("k", b("x"), None, SetMode::Always)
        .await
        .unwrap();
    separated.clear().await.unwrap();
    assert_eq!(separated.get("k").await.unwrap(), None);
    assert_eq!(other.get("k").await.unwrap(), Some(b("x")));
}

/// Regression: corrupted values that still decoded were served from Redis too. 1–8 flipped bits in stored
/// entries: every read is a miss, never another value.
#[tokio::test]
async fn corrupted_entries_on_redis_are_misses() {
    let Some((redis, _)) = backend("t-flips:").await else {
        return;
    };
    let cache = Cache::builder().backend(redis.clone()).build();
    let mut state = 0x9E37_79B9_7F4A_7C15u64;
    let mut next = move || {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        state
    };
    for round in 0..1_000u64 {
        let key = format!("k{}", round % 50);
        let value = Account {
            id: round,
            owner: format!("owner-{round}"),
        };
        cache.set(&key, &value, None).await.unwrap();
        let mut bytes = redis.get(&key).await.unwrap().unwrap().to_vec();
        let flips = 1 + next() % 8;
        let mut flipped = std::collections::HashSet::new();
        while (flipped.len() as u64) < flips {
            flipped.insert(next() as usize % (bytes.len() * 8));
        }
        for bit in flipped {
            bytes[bit / 8] ^= 1 << (bit % 8);
        }
        redis
            .set(&key, bytes.into(), None, SetMode::Always)
            .await
            .unwrap();
        assert_eq!(
            cache.get::<Account>(&key).await.unwrap(),
            None,
            "round {round}"
        );
    }
    assert!(cache.metrics().decode_errors >= 1_000);
}

#[tokio::test]
async fn a_unix_socket_url_reaches_the_server() {
    init_tracing();
    let Some(server) = RedisServer::start_with_unix_socket() else {
        return;
    };
    let url = format!("unix://{}?prefix=t-unix:", server.unix_socket().display());
    let cache = cachette::Setup::new(url)
        .build()
        .await
        .expect("connects over the socket");
    cache.set("k", &"over a socket", None).await.unwrap();
    assert_eq!(
        cache.get::<String>("k").await.unwrap().as_deref(),
        Some("over a socket")
    );
    // The same key over TCP: it is one server.
    assert_eq!(server.command(&["EXISTS", "t-unix:k"]).unwrap(), "1");
}
