//! `RedisBackend` on a real three-primary Redis Cluster: multi-key operations across many hash slots, and
//! keyspace walks (scan, delete_match, clear) that must visit every primary.

use std::collections::HashSet;
use std::sync::OnceLock;
use std::time::Duration;

use bytes::Bytes;
use cachette::fred::util::redis_keyslot;
use cachette::RedisBackend;
use cachette::{Backend, KeyTtl, SetMode};
use test_support::{redis_command, RedisCluster};

fn cluster() -> Option<&'static RedisCluster> {
    static CLUSTER: OnceLock<Option<RedisCluster>> = OnceLock::new();
    CLUSTER.get_or_init(RedisCluster::start).as_ref()
}

async fn backend(prefix: &str) -> Option<(RedisBackend, &'static RedisCluster)> {
    let _ = tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::from_default_env())
        .with_test_writer()
        .try_init();
    let cluster = cluster()?;
    let backend = RedisBackend::builder()
        .urls(cluster.node_urls())
        .cluster(true)
        .key_prefix(prefix)
        .build()
        .await
        .expect("cluster backend builds");
    assert!(backend.is_cluster());
    backend.ping().await.expect("cluster answers");
    Some((backend, cluster))
}

/// Keys whose full name (with `prefix`) is held by each node, counted with a raw `SCAN` on that node.
fn keys_per_node(cluster: &RedisCluster, pattern: &str) -> Vec<usize> {
    cluster
        .processes()
        .iter()
        .map(|node| {
            // `redis_command` does not decode arrays; count keys through a Lua script on the node instead.
            let script = "local n, c = 0, '0' repeat local r = redis.call('SCAN', c, 'MATCH', ARGV[1], 'COUNT', 1000) \
                          c = r[1] n = n + #r[2] until c == '0' return n";
            redis_command(node.port(), &["EVAL", script, "0", pattern])
                .expect("EVAL on node")
                .parse()
                .expect("integer")
        })
        .collect()
}

#[tokio::test]
async fn multi_key_operations_across_slots() {
    let Some((redis, _)) = backend("c-many:").await else {
        return;
    };
    let keys: Vec<String> = (0..600).map(|i| format!("user:{i}")).collect();
    let slots: HashSet<u16> = keys
        .iter()
        .map(|k| redis_keyslot(format!("c-many:{k}").as_bytes()))
        .collect();
    assert!(
        slots.len() > 300,
        "keys spread over many slots: {}",
        slots.len()
    );

    let entries: Vec<(&str, Bytes)> = keys
        .iter()
        .map(|k| (k.as_str(), Bytes::from(format!("value-{k}"))))
        .collect();
    redis
        .set_many(&entries, Some(Duration::from_secs(60)))
        .await
        .unwrap();
    assert!(matches!(
        redis.ttl("user:599").await.unwrap(),
        KeyTtl::Remaining(_)
    ));

    let mut wanted: Vec<&str> = keys.iter().map(String::as_str).collect();
    wanted.insert(100, "absent:1");
    wanted.push("absent:2");
    let got = redis.get_many(&wanted).await.unwrap();
    assert_eq!(got.len(), wanted.len());
    for (key, value) in wanted.iter().zip(&got) {
        if key.starts_with("absent") {
            assert_eq!(value, &None, "{key}");
        } else {
            assert_eq!(
                value.as_deref(),
                Some(format!("value-{key}").as_bytes()),
                "{key}"
            );
        }
    }

    let refs: Vec<&str> = keys.iter().map(String::as_str).collect();
    assert_eq!(redis.delete_many(&refs[..300]).await.unwrap(), 300);
    let got = redis.get_many(&refs).await.unwrap();
    assert_eq!(got.iter().filter(|v| v.is_some()).count(), 300);
    assert_eq!(redis.delete_many(&refs).await.unwrap(), 300);
}

#[tokio::test]
async fn scan_delete_match_and_clear_visit_every_primary() {
    let Some((redis, cluster)) = backend("c-scan:").await else {
        return;
    };
    let (other, _) = backend("c-other:").await.unwrap();
    let keys: Vec<String> = (0..3_000).map(|i| format!("item:{i}")).collect();
    for chunk in keys.chunks(500) {
        let entries: Vec<(&str, Bytes)> = chunk
            .iter()
            .map(|k| (k.as_str(), Bytes::from_static(b"x")))
            .collect();
        redis.set_many(&entries, None).await.unwrap();
    }
    other
        .set("keep", Bytes::from_static(b"x"), None, SetMode::Always)
        .await
        .unwrap();
    let per_node = keys_per_node(cluster, "c-scan:item:*");
    assert_eq!(per_node.iter().sum::<usize>(), 3_000);
    assert!(
        per_node.iter().all(|&n| n > 0),
        "every primary holds keys: {per_node:?}"
    );

    let found: HashSet<String> = redis.scan("item:*").await.unwrap().into_iter().collect();
    assert_eq!(found.len(), 3_000);
    assert!(found.contains("item:0") && found.contains("item:2999"));

    assert_eq!(redis.delete_match("item:1*").await.unwrap(), 1_111);
    assert_eq!(redis.scan("item:*").await.unwrap().len(), 3_000 - 1_111);

    redis.clear().await.unwrap();
    assert_eq!(keys_per_node(cluster, "c-scan:*"), vec![0, 0, 0]);
    assert_eq!(other.get("keep").await.unwrap().as_deref(), Some(&b"x"[..]));
}

#[tokio::test]
async fn scripts_and_single_key_commands_on_every_node() {
    let Some((redis, _)) = backend("c-single:").await else {
        return;
    };
    // Enough keys to land on all three primaries.
    for i in 0..30 {
        let key = format!("counter:{i}");
        assert_eq!(
            redis
                .incr(&key, 2, Some(Duration::from_secs(30)))
                .await
                .unwrap(),
            2
        );
        assert!(matches!(
            redis.ttl(&key).await.unwrap(),
            KeyTtl::Remaining(_)
        ));
        let lock = format!("lock:{i}");
        assert!(redis
            .set(
                &lock,
                Bytes::from_static(b"tok"),
                Some(Duration::from_secs(30)),
                SetMode::IfAbsent
            )
            .await
            .unwrap());
        assert!(!redis.unlock(&lock, b"nope").await.unwrap());
        assert!(redis.unlock(&lock, b"tok").await.unwrap());
        assert!(redis.expire(&key, Duration::from_secs(5)).await.unwrap());
        assert!(redis.delete(&key).await.unwrap());
    }
}

#[tokio::test]
async fn setup_url_for_a_cluster() {
    let Some(cluster) = cluster() else { return };
    let cache = cachette::build_cache(&format!("{}?prefix=c-setup:", cluster.url()))
        .await
        .unwrap();
    for i in 0..50u32 {
        let key = format!("k{i}");
        assert_eq!(cache.get_or_set(&key, None, || async move { i }).await, i);
    }
    for i in 0..50u32 {
        assert_eq!(cache.get::<u32>(&format!("k{i}")).await.unwrap(), Some(i));
    }
    let keys: Vec<String> = (0..50).map(|i| format!("k{i}")).collect();
    let refs: Vec<&str> = keys.iter().map(String::as_str).collect();
    let values = cache.get_many::<u32>(&refs).await.unwrap();
    assert!(values.iter().all(Option::is_some));
    assert_eq!(cache.metrics().backend_errors, 0);
    cache.clear().await.unwrap();
}
