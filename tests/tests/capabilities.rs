//! Backends state their capabilities; a cache that needs one a backend lacks says so with a typed error that
//! names the backend and the capability — when it is built, or when the operation is used — never by quietly
//! answering a miss or keeping a value it could not index.

use std::collections::HashMap;
use std::sync::atomic::{AtomicUsize, Ordering::SeqCst};
use std::sync::{Arc, LazyLock, Mutex};
use std::time::Duration;

use bytes::Bytes;
use cachette::{
    async_trait, cached, Backend, BackendError, Cache, CacheError, Capabilities, MemoryBackend,
    SetMode,
};

/// The smallest backend there is: a map with the required operations only, like a store without scans, sets,
/// counters or TTL read-back (memcached lacks most of these).
#[derive(Default)]
struct MinimalBackend {
    entries: Mutex<HashMap<String, Bytes>>,
}

#[async_trait]
impl Backend for MinimalBackend {
    async fn get(&self, key: &str) -> Result<Option<Bytes>, BackendError> {
        Ok(self.entries.lock().unwrap().get(key).cloned())
    }
    async fn set(
        &self,
        key: &str,
        value: Bytes,
        _ttl: Option<Duration>,
        mode: SetMode,
    ) -> Result<bool, BackendError> {
        let mut entries = self.entries.lock().unwrap();
        let write = match mode {
            SetMode::IfAbsent => !entries.contains_key(key),
            SetMode::IfPresent => entries.contains_key(key),
            _ => true,
        };
        if write {
            entries.insert(key.to_owned(), value);
        }
        Ok(write)
    }
    async fn delete(&self, key: &str) -> Result<bool, BackendError> {
        Ok(self.entries.lock().unwrap().remove(key).is_some())
    }
    async fn ping(&self) -> Result<(), BackendError> {
        Ok(())
    }
    async fn clear(&self) -> Result<(), BackendError> {
        self.entries.lock().unwrap().clear();
        Ok(())
    }
    fn name(&self) -> &'static str {
        "minimal"
    }
    fn capabilities(&self) -> Capabilities {
        Capabilities::empty()
    }
}

fn minimal_cache() -> Cache {
    Cache::builder().backend(MinimalBackend::default()).build()
}

fn is_unsupported(error: &CacheError, wanted: Capabilities) -> bool {
    matches!(
        error,
        CacheError::Backend(BackendError::Unsupported { backend: "minimal", capability }) if *capability == wanted
    )
}

#[test]
fn a_cache_that_requires_a_missing_capability_fails_to_build_naming_it() {
    let error = Cache::builder()
        .backend(MinimalBackend::default())
        .require(Capabilities::SETS | Capabilities::TTL)
        .try_build()
        .expect_err("the minimal backend keeps no sets");
    assert!(
        is_unsupported(&error, Capabilities::SETS | Capabilities::TTL),
        "{error:?}"
    );
    assert_eq!(
        error.to_string(),
        "the minimal backend cannot keep sets (tag indexes), read or change a key's TTL"
    );

    // Routes count too: the default memory backend has sets, the routed one does not.
    let routed = Cache::builder()
        .backend(MemoryBackend::default())
        .route("session:", Arc::new(MinimalBackend::default()))
        .require(Capabilities::SCAN)
        .try_build();
    assert!(matches!(routed, Err(e) if is_unsupported(&e, Capabilities::SCAN)));
    let cache = Cache::builder()
        .backend(MemoryBackend::default())
        .route("session:", Arc::new(MinimalBackend::default()))
        .build();
    assert_eq!(cache.capabilities(), Capabilities::empty());
    assert!(Cache::memory()
        .capabilities()
        .contains(Capabilities::SETS | Capabilities::LOCKS));
}

#[tokio::test]
async fn operations_a_backend_lacks_answer_a_typed_error() {
    let cache = minimal_cache();
    cache.set("user:1", &1u32, None).await.unwrap();
    assert_eq!(cache.get::<u32>("user:1").await.unwrap(), Some(1));
    let error = cache.delete_match("user:*").await.unwrap_err();
    assert!(is_unsupported(&error, Capabilities::SCAN), "{error:?}");
    let error = cache.incr("hits", 1, None).await.unwrap_err();
    assert!(is_unsupported(&error, Capabilities::COUNTERS), "{error:?}");
    let error = cache.delete_tags(&["user:1"]).await.unwrap_err();
    assert!(is_unsupported(&error, Capabilities::SETS), "{error:?}");
    // The default multi-key operations work one key at a time.
    cache
        .set_many(&[("a", &1u8), ("b", &2u8)], None)
        .await
        .unwrap();
    assert_eq!(
        cache.get_many::<u8>(&["a", "b", "c"]).await.unwrap(),
        vec![Some(1), Some(2), None]
    );
    assert_eq!(cache.delete_many(&["a", "b", "c"]).await.unwrap(), 2);
}

static MINIMAL: LazyLock<Cache> = LazyLock::new(minimal_cache);
static PROFILE_RUNS: AtomicUsize = AtomicUsize::new(0);

#[cached(cache = MINIMAL, key = "profile:{id}", tags = ["user:{id}"])]
async fn profile(id: u32) -> String {
    PROFILE_RUNS.fetch_add(1, SeqCst);
    format!("profile {id}")
}

#[tokio::test]
async fn a_tagged_value_is_not_stored_where_its_tag_cannot_be_indexed() {
    // Stored without its index, the value could never be deleted by tag: `delete_tags` would leave it to be
    // served stale. So it is not stored at all; each call runs the body, and the failure is counted.
    assert_eq!(profile(7).await, "profile 7");
    assert_eq!(profile(7).await, "profile 7");
    assert_eq!(PROFILE_RUNS.load(SeqCst), 2);
    assert_eq!(MINIMAL.get::<String>("profile:7").await.unwrap(), None);
    assert!(
        MINIMAL.metrics().backend_errors >= 2,
        "{:?}",
        MINIMAL.metrics()
    );
}

static LOCKED_RUNS: AtomicUsize = AtomicUsize::new(0);

#[cached(cache = MINIMAL, key = "report:{id}", lock = true)]
async fn locked_report(id: u32) -> u32 {
    LOCKED_RUNS.fetch_add(1, SeqCst);
    id * 2
}

#[tokio::test]
async fn a_lock_on_a_backend_without_locks_is_refused_not_held_until_its_ttl() {
    // Without compare-and-delete a taken lock could only expire: every other caller would wait out its TTL.
    let error = MINIMAL
        .lock("job", Duration::from_secs(30))
        .await
        .unwrap_err();
    assert!(is_unsupported(&error, Capabilities::LOCKS), "{error:?}");
    assert_eq!(
        MINIMAL.get::<String>("job").await.unwrap(),
        None,
        "nothing was written"
    );
    // `lock = true` fails open: the body runs and answers at once.
    let started = std::time::Instant::now();
    assert_eq!(locked_report(4).await, 8);
    assert_eq!(locked_report(4).await, 8);
    assert!(started.elapsed() < Duration::from_secs(5));
    assert!(LOCKED_RUNS.load(SeqCst) >= 1);
}
