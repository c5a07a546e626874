//! The disk backend (SQLite): every operation, TTLs, patterns exactly as the core matcher (and so Redis) reads
//! them, the byte bound with least-recently-used eviction, persistence across a restart, two OS processes on one
//! file, `#[cached]` on top, and failing open when the file goes bad.

use std::sync::atomic::{AtomicUsize, Ordering::SeqCst};
use std::sync::OnceLock;
use std::time::Duration;

use cachette::{
    cached, Backend, BackendError, Bytes, Cache, CasOutcome, DiskBackend, GlobMatcher, KeyTtl,
    SetMode,
};

fn b(text: &str) -> Bytes {
    Bytes::copy_from_slice(text.as_bytes())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_operation() {
    let dir = tempfile::tempdir().unwrap();
    let disk = DiskBackend::builder(dir.path()).open().unwrap();
    disk.ping().await.unwrap();
    assert_eq!(disk.get("k").await.unwrap(), None);
    assert!(disk.set("k", b("v1"), None, SetMode::Always).await.unwrap());
    assert!(!disk
        .set("k", b("v2"), None, SetMode::IfAbsent)
        .await
        .unwrap());
    assert!(disk
        .set("k", b("v3"), None, SetMode::IfPresent)
        .await
        .unwrap());
    assert!(!disk
        .set("none", b("x"), None, SetMode::IfPresent)
        .await
        .unwrap());
    assert_eq!(disk.get("k").await.unwrap(), Some(b("v3")));
    disk.set_many(&[("m1", b("1")), ("m2", b("2"))], None)
        .await
        .unwrap();
    assert_eq!(
        disk.get_many(&["m1", "x", "m2"]).await.unwrap(),
        vec![Some(b("1")), None, Some(b("2"))]
    );
    assert_eq!(disk.delete_many(&["m1", "m2", "x"]).await.unwrap(), 2);
    assert!(disk.delete("k").await.unwrap());
    assert!(!disk.delete("k").await.unwrap());

    assert_eq!(
        disk.incr("n", 5, Some(Duration::from_secs(100)))
            .await
            .unwrap(),
        5
    );
    assert_eq!(disk.incr("n", -7, None).await.unwrap(), -2);
    assert!(
        matches!(disk.ttl("n").await.unwrap(), KeyTtl::Remaining(d) if d > Duration::from_secs(90))
    );
    disk.set("text", b("abc"), None, SetMode::Always)
        .await
        .unwrap();
    assert!(matches!(
        disk.incr("text", 1, None).await,
        Err(BackendError::WrongType(_))
    ));

    disk.set(
        "t",
        b("v"),
        Some(Duration::from_millis(150)),
        SetMode::Always,
    )
    .await
    .unwrap();
    assert_eq!(disk.get("t").await.unwrap(), Some(b("v")));
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert_eq!(disk.get("t").await.unwrap(), None);
    assert_eq!(disk.ttl("t").await.unwrap(), KeyTtl::Missing);
    disk.set("p", b("v"), Some(Duration::from_secs(5)), SetMode::Always)
        .await
        .unwrap();
    assert!(disk.expire("p", Duration::from_secs(50)).await.unwrap());
    assert!(disk.persist("p").await.unwrap());
    assert_eq!(disk.ttl("p").await.unwrap(), KeyTtl::Persistent);

    let (_, token) = disk.gets("p").await.unwrap().unwrap();
    assert_eq!(
        disk.cas("p", b("w"), token, None).await.unwrap(),
        CasOutcome::Stored
    );
    assert_eq!(
        disk.cas("p", b("x"), token, None).await.unwrap(),
        CasOutcome::Exists
    );
    assert_eq!(
        disk.cas("none", b("x"), token, None).await.unwrap(),
        CasOutcome::NotFound
    );

    assert!(disk
        .set("lock", b("me"), None, SetMode::IfAbsent)
        .await
        .unwrap());
    assert!(!disk.unlock("lock", b"you").await.unwrap());
    assert!(disk.unlock("lock", b"me").await.unwrap());

    disk.clear().await.unwrap();
    assert!(disk.scan("*").await.unwrap().is_empty());
    assert_eq!(disk.used_bytes().await.unwrap(), 0);
}

/// Keys with every kind of character a glob treats specially; patterns built from them and from glob syntax.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn patterns_match_exactly_what_the_core_matcher_matches() {
    let dir = tempfile::tempdir().unwrap();
    let disk = DiskBackend::builder(dir.path()).open().unwrap();
    let keys = [
        "user:1",
        "user:12",
        "user:2:name",
        "User:1",
        "a*b",
        "a?b",
        "a[b]",
        "a\\b",
        "a]b",
        "x^y",
        "ключ:1",
        "",
        "user:",
        "abc",
        "a-c",
        "a]",
        "[",
        "*",
    ];
    for key in keys {
        disk.set(key, b("v"), None, SetMode::Always).await.unwrap();
    }
    let patterns = [
        "*",
        "user:*",
        "user:?",
        "user:[12]*",
        "user:[^1]*",
        "[Uu]ser:1",
        r"a\*b",
        r"a\?b",
        r"a\[b\]",
        r"a\\b",
        "a[*?]b",
        "a[a-c]c",
        "a[^a-c]c",
        "[",
        "a]*",
        r"\*",
        "*:*",
        "ключ:*",
        "?",
        "",
        "[a",
        r"a[\]]b",
        "x^y",
    ];
    for pattern in patterns {
        let matcher = GlobMatcher::new(pattern);
        let mut expected: Vec<&str> = keys
            .iter()
            .copied()
            .filter(|k| matcher.is_match(k))
            .collect();
        let mut found = disk.scan(pattern).await.unwrap();
        expected.sort_unstable();
        found.sort_unstable();
        assert_eq!(found, expected, "pattern {pattern:?}");
    }
    assert_eq!(disk.delete_match("user:*").await.unwrap(), 4);
    assert_eq!(disk.get("user:1").await.unwrap(), None);
    assert_eq!(disk.get("User:1").await.unwrap(), Some(b("v")));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_byte_bound_evicts_the_least_recently_used() {
    let dir = tempfile::tempdir().unwrap();
    let disk = DiskBackend::builder(dir.path())
        .max_bytes(64 * 1024)
        .open()
        .unwrap();
    let value = Bytes::from(vec![7u8; 1000]);
    disk.set("keep", value.clone(), None, SetMode::Always)
        .await
        .unwrap();
    for i in 0..200 {
        disk.set(&format!("k{i}"), value.clone(), None, SetMode::Always)
            .await
            .unwrap();
        if i % 20 == 0 {
            // Read more than a second apart from its write: the read is recorded and keeps it.
            tokio::time::sleep(Duration::from_millis(1_100)).await;
            assert!(disk.get("keep").await.unwrap().is_some(), "kept at {i}");
        }
        if i == 40 {
            break;
        }
    }
    for i in 41..200 {
        disk.set(&format!("k{i}"), value.clone(), None, SetMode::Always)
            .await
            .unwrap();
        if i % 30 == 0 {
            tokio::time::sleep(Duration::from_millis(1_100)).await;
            assert!(disk.get("keep").await.unwrap().is_some(), "kept at {i}");
        }
    }
    let used = disk.used_bytes().await.unwrap();
    assert!(used <= 64 * 1024, "{used} bytes held");
    assert!(
        disk.get("k0").await.unwrap().is_none(),
        "the oldest unread entry went first"
    );
    assert!(disk.get("k199").await.unwrap().is_some());
    assert!(
        disk.get("keep").await.unwrap().is_some(),
        "the entry read all along stayed"
    );
}

static CACHE: OnceLock<Cache> = OnceLock::new();
static RUNS: AtomicUsize = AtomicUsize::new(0);

#[cached(ttl = "1h", key = "square:{x}", cache = CACHE.get().expect("disk cache set up"))]
async fn square(x: u64) -> u64 {
    RUNS.fetch_add(1, SeqCst);
    x * x
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn survives_a_restart_and_serves_cached_functions() {
    let dir = tempfile::tempdir().unwrap();
    let url = format!("disk://{}?max_bytes=1048576", dir.path().display());
    {
        let cache = cachette::Setup::new(url.clone()).build().await.unwrap();
        cache.set("persisted", &"still here", None).await.unwrap();
    } // the cache and its connection are gone, as in a restart
    let cache = cachette::Setup::new(url).build().await.unwrap();
    assert_eq!(
        cache.get::<String>("persisted").await.unwrap().as_deref(),
        Some("still here")
    );
    let _ = CACHE.set(cache);
    assert_eq!(square(7).await, 49);
    assert_eq!(square(7).await, 49);
    assert_eq!(RUNS.load(SeqCst), 1);
}

/// Run by `two_processes_share_one_file` in a child process: writes its keys and checks the parent's.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn child_process_writer() {
    let Ok(dir) = std::env::var("DISK_TEST_CHILD_DIR") else {
        return; // only as a child
    };
    let disk = DiskBackend::builder(&dir).open().unwrap();
    for i in 0..200 {
        disk.set(&format!("child:{i}"), b("c"), None, SetMode::Always)
            .await
            .unwrap();
        disk.incr("shared:counter", 1, None).await.unwrap();
    }
    assert_eq!(disk.get("parent:0").await.unwrap(), Some(b("p")));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_processes_share_one_file() {
    let dir = tempfile::tempdir().unwrap();
    let disk = DiskBackend::builder(dir.path()).open().unwrap();
    disk.set("parent:0", b("p"), None, SetMode::Always)
        .await
        .unwrap();
    let child = std::process::Command::new(std::env::current_exe().unwrap())
        .args(["--exact", "child_process_writer", "--nocapture"])
        .env("DISK_TEST_CHILD_DIR", dir.path())
        .spawn()
        .unwrap();
    // Both processes increment one counter at the same time.
    for _ in 0..200 {
        disk.incr("shared:counter", 1, None).await.unwrap();
    }
    let status = tokio::task::spawn_blocking(move || child.wait_with_output().unwrap().status)
        .await
        .unwrap();
    assert!(status.success(), "the child process failed");
    assert_eq!(
        disk.get("shared:counter").await.unwrap(),
        Some(b("400")),
        "no lost increment"
    );
    assert_eq!(disk.scan("child:*").await.unwrap().len(), 200);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_broken_file_fails_open() {
    let dir = tempfile::tempdir().unwrap();
    let disk = DiskBackend::builder(dir.path()).open().unwrap();
    let cache = Cache::builder().backend(disk.clone()).build();
    cache.set("k", &1u8, None).await.unwrap();
    // Another process replaces the file with garbage.
    drop(cache);
    std::fs::write(
        disk.path(),
        b"this is not a database, it is a cache that went bad",
    )
    .unwrap();
    let _ = std::fs::remove_file(disk.path().with_extension("sqlite3-wal"));
    let cache = Cache::builder().backend(disk).build();
    let value = cache.get_or_set("k2", None, || async { 5u8 }).await;
    assert_eq!(value, 5, "the body ran; no panic, no error for the caller");
}
