//! End-to-end tests of `#[cached]` and `#[invalidates]` through the public API, on the global cache and on
//! explicit in-memory caches. Every function counts its body runs; hits are observed with `context::detect`.
//!
//! Tests share the process-wide global cache, so each test uses its own functions (and keys).

use std::sync::atomic::{AtomicUsize, Ordering::SeqCst};
use std::sync::{Arc, LazyLock};
use std::time::Duration;

use cachette::context::detect;
use cachette::{cached, invalidates, Cache, CacheError, KeyArg, MemoryBackend};
use serde::{Deserialize, Serialize};

fn memory_cache() -> Cache {
    Cache::builder()
        .backend(MemoryBackend::builder().build())
        .build()
}

fn assert_send<T: Send>(value: T) -> T {
    value
}

static STATIC_CACHE: LazyLock<Cache> = LazyLock::new(memory_cache);

// ---------------------------------------------------------------------------------------------------------------
// Free functions, default keys

static SQUARE_RUNS: AtomicUsize = AtomicUsize::new(0);

/// Squares (kept doc comment).
#[cached(companions(invalidate, invalidate_all, key))]
async fn square(x: u64) -> u64 {
    SQUARE_RUNS.fetch_add(1, SeqCst);
    x * x
}

#[tokio::test]
async fn free_fn_caches_on_the_global_cache() {
    assert_eq!(square_key(3), "cached_macro:square:x=3");
    let (first, hits) = detect(square(3)).await;
    assert_eq!((first, hits.keys().len()), (9, 0));
    let (second, hits) = detect(assert_send(square(3))).await;
    assert_eq!(second, 9);
    assert_eq!(hits.keys(), ["cached_macro:square:x=3"]);
    assert_eq!(SQUARE_RUNS.load(SeqCst), 1);
    assert_eq!(square(4).await, 16);
    assert_eq!(SQUARE_RUNS.load(SeqCst), 2);
}

static JOIN_RUNS: AtomicUsize = AtomicUsize::new(0);

#[cached(cache = STATIC_CACHE, companions(invalidate, invalidate_all, key))]
async fn join(a: &str, b: &str) -> String {
    JOIN_RUNS.fetch_add(1, SeqCst);
    format!("{a}{b}")
}

#[tokio::test]
async fn default_keys_are_readable_and_escaped() {
    let left = join_key("a:b", "c");
    let right = join_key("a", "b:c");
    assert_ne!(left, right);
    assert!(left.starts_with("cached_macro:join:a="), "{left}");
    assert!(left.contains(":b=c"), "{left}");
    assert_eq!(join("a:b", "c").await, "a:bc");
    assert_eq!(join("a", "b:c").await, "ab:c");
    assert_eq!(JOIN_RUNS.load(SeqCst), 2, "distinct keys, two runs");
    let (_, hits) = detect(join("a", "b:c")).await;
    assert_eq!(hits.keys(), [right.as_str()]);
    assert_eq!(JOIN_RUNS.load(SeqCst), 2);
    assert_eq!(
        STATIC_CACHE.get::<String>(&left).await.unwrap().as_deref(),
        Some("a:bc")
    );
}

static SKIP_RUNS: AtomicUsize = AtomicUsize::new(0);

struct Connection;

#[cached(cache = STATIC_CACHE, skip(conn, _trace), companions(invalidate, invalidate_all, key))]
async fn with_skips(conn: &Connection, id: u32, _trace: bool) -> u32 {
    let _ = conn;
    SKIP_RUNS.fetch_add(1, SeqCst);
    id
}

#[tokio::test]
async fn skip_leaves_arguments_out() {
    assert_eq!(
        with_skips_key(&Connection, 5, true),
        "cached_macro:with_skips:id=5"
    );
    with_skips(&Connection, 5, true).await;
    with_skips(&Connection, 5, false).await;
    assert_eq!(SKIP_RUNS.load(SeqCst), 1);
}

#[cached(cache = STATIC_CACHE, companions(invalidate, invalidate_all, key, peek))]
async fn pattern_args((a, b): (u32, u32), mut c: u32, _: u8) -> u32 {
    c += 1;
    a + b + c
}

#[tokio::test]
async fn pattern_arguments_are_keyed_by_their_bindings() {
    assert_eq!(
        pattern_args_key((1, 2), 3, 0),
        "cached_macro:pattern_args:a=1:b=2:c=3"
    );
    assert_eq!(pattern_args((1, 2), 3, 0).await, 7);
    assert_eq!(pattern_args_peek((1, 2), 3, 9).await, Some(7));
}

// ---------------------------------------------------------------------------------------------------------------
// Generic functions, `impl Trait` arguments

static GENERIC_RUNS: AtomicUsize = AtomicUsize::new(0);

#[cached(cache = STATIC_CACHE, companions(invalidate, invalidate_all, key))]
async fn describe<T>(value: T, label: impl AsRef<str> + KeyArg + Send) -> String
where
    T: KeyArg + std::fmt::Display + Send,
{
    GENERIC_RUNS.fetch_add(1, SeqCst);
    format!("{}={value}", label.as_ref())
}

#[tokio::test]
async fn generic_functions() {
    assert_eq!(describe(1u8, "n").await, "n=1");
    assert_eq!(describe(1u8, "n").await, "n=1");
    assert_eq!(describe("x", String::from("s")).await, "s=x");
    assert_eq!(GENERIC_RUNS.load(SeqCst), 2);
    assert_eq!(
        describe_key(7i64, "l"),
        "cached_macro:describe:value=7:label=l"
    );
    assert_eq!(describe_invalidate_all().await, 2);
}

// ---------------------------------------------------------------------------------------------------------------
// Methods

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
struct Account {
    id: u64,
    owner: String,
}

struct Repo {
    cache: Cache,
    tenant: u32,
    runs: AtomicUsize,
}

impl Repo {
    fn new(cache: Cache, tenant: u32) -> Self {
        Self {
            cache,
            tenant,
            runs: AtomicUsize::new(0),
        }
    }

    #[cached(cache = self.cache, companions(invalidate, invalidate_all, key, peek))]
    async fn account(&self, id: u64) -> Account {
        self.runs.fetch_add(1, SeqCst);
        Account {
            id,
            owner: format!("tenant{}", self.tenant),
        }
    }

    #[cached(cache = self.cache, key = "tenant:{self.tenant}:account:{id}", companions(invalidate, invalidate_all, key))]
    async fn tenant_account(&self, id: u64) -> Account {
        self.runs.fetch_add(1, SeqCst);
        Account {
            id,
            owner: format!("tenant{}", self.tenant),
        }
    }

    #[cached(cache = STATIC_CACHE, companions(invalidate, invalidate_all, key, uncached))]
    async fn bump(&mut self, by: u32) -> u32 {
        self.tenant += by;
        self.tenant
    }

    #[cached(cache = STATIC_CACHE)]
    async fn shared(self: Arc<Self>, id: u64) -> u64 {
        self.runs.fetch_add(1, SeqCst);
        id + u64::from(self.tenant)
    }

    #[cached(cache = STATIC_CACHE, companions(invalidate, invalidate_all, peek))]
    async fn lookup(id: u64) -> Option<Self> {
        let _ = id;
        None
    }

    #[cached(cache = STATIC_CACHE, in_impl, companions(invalidate, invalidate_all, key))]
    async fn version() -> u32 {
        3
    }

    #[invalidates(self.account(id), self.tenant_account(id))]
    async fn rename(&self, id: u64) -> Result<(), std::io::Error> {
        let _ = id;
        Ok(())
    }
}

// Cached values are `Clone` (the memory backend hands out clones of a decoded copy).
impl Clone for Repo {
    fn clone(&self) -> Self {
        Self {
            cache: self.cache.clone(),
            tenant: self.tenant,
            runs: AtomicUsize::new(self.runs.load(SeqCst)),
        }
    }
}

impl Serialize for Repo {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        self.tenant.serialize(serializer)
    }
}

impl<'de> Deserialize<'de> for Repo {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        Ok(Repo::new(memory_cache(), u32::deserialize(deserializer)?))
    }
}

#[tokio::test]
async fn methods_never_put_self_in_the_key() {
    let cache = memory_cache();
    let first = Repo::new(cache.clone(), 1);
    let second = Repo::new(cache.clone(), 2);
    assert_eq!(first.account_key(5), "cached_macro::Repo:account:id=5");
    assert_eq!(first.account_key(5), second.account_key(5));
    assert_eq!(first.account(5).await.owner, "tenant1");
    // Same key, same cache: the second repo gets the first one's entry.
    let (account, hits) = detect(second.account(5)).await;
    assert_eq!(account.owner, "tenant1");
    assert_eq!(hits.keys(), ["cached_macro::Repo:account:id=5"]);
    assert_eq!(second.runs.load(SeqCst), 0);

    assert!(first.rename(5).await.is_ok());
    assert_eq!(first.account_peek(5).await, None);
    assert_eq!(second.account(5).await.owner, "tenant2");
}

#[tokio::test]
async fn methods_with_self_in_the_template() {
    let cache = memory_cache();
    let repo = Repo::new(cache.clone(), 7);
    assert_eq!(repo.tenant_account_key(3), "tenant:7:account:3");
    repo.tenant_account(3).await;
    repo.tenant_account(3).await;
    assert_eq!(repo.runs.load(SeqCst), 1);
    assert_eq!(
        cache
            .get::<Account>("tenant:7:account:3")
            .await
            .unwrap()
            .map(|a| a.id),
        Some(3)
    );
    assert!(repo.rename(3).await.is_ok());
    assert_eq!(
        cache.get::<Account>("tenant:7:account:3").await.unwrap(),
        None
    );
}

#[tokio::test]
async fn other_receivers_and_associated_functions() {
    let mut repo = Repo::new(memory_cache(), 1);
    assert_eq!(repo.bump(1).await, 2);
    assert_eq!(repo.bump(1).await, 2, "cached: the body did not run again");
    assert_eq!(repo.tenant, 2);
    assert_eq!(Repo::bump_key(1), "cached_macro::Repo:bump:by=1");
    assert_eq!(repo.bump_uncached(1).await, 3);

    let shared = Arc::new(Repo::new(memory_cache(), 10));
    assert_eq!(shared.clone().shared(1).await, 11);
    assert_eq!(shared.clone().shared(1).await, 11);
    assert_eq!(shared.runs.load(SeqCst), 1);

    assert!(Repo::lookup(1).await.is_none());
    assert!(
        Repo::lookup_peek(1).await.is_some(),
        "None is cached for Option outputs"
    );
    assert_eq!(Repo::version().await, 3);
    assert_eq!(Repo::version_key(), "cached_macro::Repo:version");
    assert_eq!(Repo::version_invalidate_all().await, 1);
}

trait Loader {
    async fn load(&self, id: u64) -> u64;
}

struct TraitImpl;

static TRAIT_RUNS: AtomicUsize = AtomicUsize::new(0);

impl Loader for TraitImpl {
    #[cached(cache = STATIC_CACHE, companions = false, ttl = 60)]
    async fn load(&self, id: u64) -> u64 {
        TRAIT_RUNS.fetch_add(1, SeqCst);
        if id == 0 {
            return 100;
        }
        id
    }
}

#[tokio::test]
async fn trait_impls_without_companions() {
    assert_eq!(TraitImpl.load(0).await, 100);
    assert_eq!(TraitImpl.load(0).await, 100);
    assert_eq!(TRAIT_RUNS.load(SeqCst), 1);
    assert_eq!(
        STATIC_CACHE
            .get::<u64>("cached_macro::TraitImpl:load:id=0")
            .await
            .unwrap(),
        Some(100)
    );
}

// ---------------------------------------------------------------------------------------------------------------
// Templates

struct User {
    id: u64,
    name: String,
}

impl User {
    fn name(&self) -> &str {
        &self.name
    }
}

#[cached(cache = STATIC_CACHE, key = "user:{user.id}:<user.name()>:{{literal}}", companions(invalidate, invalidate_all, key))]
async fn user_label(user: &User) -> String {
    format!("{}#{}", user.name, user.id)
}

#[cached(cache = STATIC_CACHE, key = "fmt:{name:lower}:{name:upper}:{name:len}:<name:hash>:{user.name().len()}", companions(invalidate, invalidate_all, key))]
async fn formatted(name: &str, user: &User) -> usize {
    name.len() + user.name.len()
}

#[tokio::test]
async fn templates() {
    let user = User {
        id: 42,
        name: "Bob:x".into(),
    };
    assert_eq!(user_label_key(&user), "user:42:Bob%3Ax:{literal}");
    assert_eq!(user_label(&user).await, "Bob:x#42");
    let (_, hits) = detect(user_label(&user)).await;
    assert_eq!(hits.keys(), ["user:42:Bob%3Ax:{literal}"]);

    let key = formatted_key("MiXed", &user);
    let parts: Vec<&str> = key.split(':').collect();
    assert_eq!(parts[..4], ["fmt", "mixed", "MIXED", "5"]);
    // The first 128 bits of SHA-256("MiXed"), as 32 hex digits; pinned, since keys must not change.
    assert_eq!(parts[4], "cfbdbabca0591efc210165ad146240fa", "{key}");
    assert_eq!(parts[5], "5");
    assert_eq!(formatted_invalidate_all().await, 0);
    formatted("MiXed", &user).await;
    assert_eq!(formatted_invalidate_all().await, 1);
}

// ---------------------------------------------------------------------------------------------------------------
// TTL

static TTL_RUNS: AtomicUsize = AtomicUsize::new(0);

#[cached(cache = STATIC_CACHE, ttl = "200ms")]
async fn short_lived(x: u32) -> u32 {
    TTL_RUNS.fetch_add(1, SeqCst);
    x
}

static DYNAMIC_TTL_RUNS: AtomicUsize = AtomicUsize::new(0);

#[cached(cache = STATIC_CACHE, ttl = Duration::from_millis(u64::from(ms)))]
async fn dynamic_ttl(ms: u32) -> u32 {
    DYNAMIC_TTL_RUNS.fetch_add(1, SeqCst);
    ms
}

#[tokio::test]
async fn ttl_expires_entries() {
    short_lived(1).await;
    short_lived(1).await;
    assert_eq!(TTL_RUNS.load(SeqCst), 1);
    dynamic_ttl(200).await;
    dynamic_ttl(200).await;
    assert_eq!(DYNAMIC_TTL_RUNS.load(SeqCst), 1);
    tokio::time::sleep(Duration::from_millis(450)).await;
    short_lived(1).await;
    assert_eq!(TTL_RUNS.load(SeqCst), 2, "expired after 200ms");
    dynamic_ttl(200).await;
    assert_eq!(DYNAMIC_TTL_RUNS.load(SeqCst), 2, "expired after 200ms");
}

// ---------------------------------------------------------------------------------------------------------------
// Result and Option outputs

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
struct AppError(String);

impl From<CacheError> for AppError {
    fn from(error: CacheError) -> Self {
        AppError(error.to_string())
    }
}

static RESULT_RUNS: AtomicUsize = AtomicUsize::new(0);

#[cached(cache = STATIC_CACHE, companions(invalidate, invalidate_all, peek))]
async fn fallible(fail: bool) -> Result<u32, AppError> {
    RESULT_RUNS.fetch_add(1, SeqCst);
    if fail {
        Err(AppError("nope".into()))
    } else {
        Ok(1)
    }
}

static CACHE_ERR_RUNS: AtomicUsize = AtomicUsize::new(0);

#[cached(cache = STATIC_CACHE, cache_err = true, companions(invalidate, invalidate_all, peek))]
async fn fallible_cached(fail: bool) -> Result<u32, AppError> {
    CACHE_ERR_RUNS.fetch_add(1, SeqCst);
    if fail {
        Err(AppError("nope".into()))
    } else {
        Ok(1)
    }
}

#[cached(cache = STATIC_CACHE, strict = true, companions(invalidate, invalidate_all, peek))]
async fn strict_fn(x: u32) -> Result<u32, AppError> {
    Ok(x)
}

type Outcome = Result<u32, AppError>;

#[cached(cache = STATIC_CACHE, result = true, companions(invalidate, invalidate_all, peek))]
async fn aliased(x: u32) -> Outcome {
    Err(AppError(x.to_string()))
}

#[tokio::test]
async fn results_cache_ok_only_unless_told() {
    assert!(fallible(true).await.is_err());
    assert!(fallible(true).await.is_err());
    assert_eq!(RESULT_RUNS.load(SeqCst), 2, "Err is not cached");
    assert_eq!(fallible(false).await, Ok(1));
    assert_eq!(fallible(false).await, Ok(1));
    assert_eq!(RESULT_RUNS.load(SeqCst), 3);
    assert_eq!(fallible_peek(false).await, Some(1), "Stored is the Ok type");

    assert!(fallible_cached(true).await.is_err());
    assert!(fallible_cached(true).await.is_err());
    assert_eq!(
        CACHE_ERR_RUNS.load(SeqCst),
        1,
        "Err is cached with cache_err"
    );
    assert_eq!(
        fallible_cached_peek(true).await,
        Some(Err(AppError("nope".into())))
    );

    assert_eq!(strict_fn(4).await, Ok(4));
    assert_eq!(strict_fn_peek(4).await, Some(4));
    assert!(aliased(1).await.is_err());
    assert_eq!(aliased_peek(1).await, None, "result = true: Err not cached");
}

#[cached(cache = STATIC_CACHE, companions(invalidate, invalidate_all, key))]
async fn describe_filter(filter: Option<Option<u32>>) -> String {
    format!("{filter:?}")
}

#[tokio::test]
async fn nested_options_get_their_own_entries() {
    // `None` and `Some(None)` once rendered the same key, so one call returned the other's value.
    assert_ne!(describe_filter_key(None), describe_filter_key(Some(None)));
    assert_eq!(describe_filter(None).await, "None");
    assert_eq!(describe_filter(Some(None)).await, "Some(None)");
    assert_eq!(describe_filter(Some(Some(3))).await, "Some(Some(3))");
    assert_eq!(describe_filter(None).await, "None");
}

static OPTION_RUNS: AtomicUsize = AtomicUsize::new(0);

#[cached(cache = STATIC_CACHE, condition = cachette::conditions::not_none)]
async fn maybe(x: u32) -> Option<u32> {
    OPTION_RUNS.fetch_add(1, SeqCst);
    (x > 0).then_some(x)
}

static OPTION_ALL_RUNS: AtomicUsize = AtomicUsize::new(0);

#[cached(cache = STATIC_CACHE)]
async fn maybe_all(x: u32) -> Option<u32> {
    OPTION_ALL_RUNS.fetch_add(1, SeqCst);
    (x > 0).then_some(x)
}

// `is_multiple_of` is newer than the workspace's rust-version (1.85).
#[allow(clippy::manual_is_multiple_of)]
#[cached(cache = STATIC_CACHE, condition = |v: &u32| *v % 2 == 0, companions(invalidate, invalidate_all, peek))]
async fn evens(x: u32) -> u32 {
    x
}

#[tokio::test]
async fn options_and_conditions() {
    assert_eq!(maybe(0).await, None);
    assert_eq!(maybe(0).await, None);
    assert_eq!(
        OPTION_RUNS.load(SeqCst),
        2,
        "None is not stored with not_none"
    );
    assert_eq!(maybe(2).await, Some(2));
    assert_eq!(maybe(2).await, Some(2));
    assert_eq!(OPTION_RUNS.load(SeqCst), 3);

    assert_eq!(maybe_all(0).await, None);
    assert_eq!(maybe_all(0).await, None);
    assert_eq!(OPTION_ALL_RUNS.load(SeqCst), 1, "None is cached by default");

    evens(1).await;
    evens(2).await;
    assert_eq!(evens_peek(1).await, None);
    assert_eq!(evens_peek(2).await, Some(2));
}

// ---------------------------------------------------------------------------------------------------------------
// Companions

static COMPANION_RUNS: AtomicUsize = AtomicUsize::new(0);

#[cached(cache = STATIC_CACHE, prefix = "comp", ttl = "1h", companions(invalidate, invalidate_all, key, refresh, set, peek, uncached))]
async fn companion(id: u64) -> Result<Account, AppError> {
    COMPANION_RUNS.fetch_add(1, SeqCst);
    Ok(Account {
        id,
        owner: "body".into(),
    })
}

#[tokio::test]
async fn every_companion() {
    let key = companion_key(1);
    assert_eq!(key, "comp:cached_macro:companion:id=1");
    assert_eq!(companion_peek(1).await, None);

    companion_set(
        1,
        &Account {
            id: 1,
            owner: "set".into(),
        },
    )
    .await
    .unwrap();
    assert_eq!(companion_peek(1).await.map(|a| a.owner), Some("set".into()));
    assert_eq!(companion(1).await.unwrap().owner, "set");
    assert_eq!(COMPANION_RUNS.load(SeqCst), 0);

    assert_eq!(companion_uncached(1).await.unwrap().owner, "body");
    assert_eq!(COMPANION_RUNS.load(SeqCst), 1);
    assert_eq!(
        companion_peek(1).await.map(|a| a.owner),
        Some("set".into()),
        "uncached stores nothing"
    );

    assert_eq!(companion_refresh(1).await.unwrap().owner, "body");
    assert_eq!(COMPANION_RUNS.load(SeqCst), 2);
    assert_eq!(
        companion_peek(1).await.map(|a| a.owner),
        Some("body".into()),
        "refresh stores"
    );

    // The future owns its key: the argument may go away before it is awaited.
    let invalidation = {
        let id = 1;
        assert_send(companion_invalidate(id))
    };
    assert!(invalidation.await);
    assert!(!companion_invalidate(1).await);
    assert_eq!(companion_peek(1).await, None);

    companion(1).await.unwrap();
    companion(2).await.unwrap();
    assert_eq!(companion_invalidate_all().await, 2);
    assert_eq!(companion_peek(2).await, None);
}

// ---------------------------------------------------------------------------------------------------------------
// #[invalidates]

static PROFILE_RUNS: AtomicUsize = AtomicUsize::new(0);

#[cached(cache = STATIC_CACHE, key = "profile:{user.id}:{field}", companions(invalidate, invalidate_all, peek))]
async fn profile(user: &User, field: &str) -> String {
    PROFILE_RUNS.fetch_add(1, SeqCst);
    format!("{}.{field}", user.id)
}

#[cached(cache = STATIC_CACHE, key = "feed:{user_id}:{page}", companions(invalidate, invalidate_all, peek))]
async fn feed(user_id: u64, page: u32) -> Vec<u64> {
    vec![user_id, u64::from(page)]
}

#[cached(cache = STATIC_CACHE, companions(invalidate, invalidate_all, peek))]
async fn counter(n: u32) -> u32 {
    n
}

#[invalidates(profile(&user, "name"))]
async fn rename_user(user: User, new_name: String) -> Result<User, AppError> {
    if new_name.is_empty() {
        return Err(AppError("empty".into()));
    }
    Ok(User {
        name: new_name,
        ..user
    })
}

#[invalidates(counter(..), "feed:{user_id}:*", cache = STATIC_CACHE)]
async fn reset(user_id: u64) {
    let _ = user_id;
}

#[invalidates(profile(&user, "name"), profile(&user, "mail"), feed(user.id, 1))]
async fn forget(user: User) -> Result<(), AppError> {
    drop(user);
    Ok(())
}

#[tokio::test]
async fn invalidates_by_arguments_only_on_success() {
    let user = User {
        id: 9,
        name: "a".into(),
    };
    profile(&user, "name").await;
    assert!(profile_peek(&user, "name").await.is_some());

    let user = User {
        id: 9,
        name: "a".into(),
    };
    assert!(rename_user(user, String::new()).await.is_err());
    let user = User {
        id: 9,
        name: "a".into(),
    };
    assert!(
        profile_peek(&user, "name").await.is_some(),
        "Err: nothing invalidated"
    );

    let renamed = assert_send(rename_user(user, "b".into())).await.unwrap();
    assert_eq!(
        profile_peek(&renamed, "name").await,
        None,
        "Ok: invalidated"
    );
}

#[tokio::test]
async fn invalidates_all_and_by_template() {
    counter(1).await;
    counter(2).await;
    feed(5, 1).await;
    feed(5, 2).await;
    feed(6, 1).await;
    reset(5).await;
    assert_eq!(counter_peek(1).await, None);
    assert_eq!(counter_peek(2).await, None);
    assert_eq!(feed_peek(5, 1).await, None);
    assert_eq!(feed_peek(5, 2).await, None);
    assert_eq!(
        feed_peek(6, 1).await,
        Some(vec![6, 1]),
        "other users' feeds stay"
    );
}

#[tokio::test]
async fn invalidates_several_targets() {
    let user = User {
        id: 77,
        name: "x".into(),
    };
    profile(&user, "name").await;
    profile(&user, "mail").await;
    profile(&user, "other").await;
    feed(77, 1).await;
    forget(User {
        id: 77,
        name: "x".into(),
    })
    .await
    .unwrap();
    assert_eq!(profile_peek(&user, "name").await, None);
    assert_eq!(profile_peek(&user, "mail").await, None);
    assert!(profile_peek(&user, "other").await.is_some());
    assert_eq!(feed_peek(77, 1).await, None);
}

// ---------------------------------------------------------------------------------------------------------------
// Explicit caches

static LAZY_RUNS: AtomicUsize = AtomicUsize::new(0);

static ARC_CACHE: LazyLock<Arc<Cache>> = LazyLock::new(|| Arc::new(memory_cache()));

#[cached(cache = ARC_CACHE, companions(invalidate, invalidate_all, key))]
async fn on_arc(x: u8) -> u8 {
    LAZY_RUNS.fetch_add(1, SeqCst);
    x
}

#[cached(cache = memory_cache(), companions(invalidate, invalidate_all, peek))]
async fn fresh_cache_each_call(x: u8) -> u8 {
    x
}

#[tokio::test]
async fn explicit_cache_expressions() {
    on_arc(1).await;
    on_arc(1).await;
    assert_eq!(LAZY_RUNS.load(SeqCst), 1);
    assert_eq!(ARC_CACHE.get::<u8>(&on_arc_key(1)).await.unwrap(), Some(1));
    assert_eq!(
        cachette::global().get::<u8>(&on_arc_key(1)).await.unwrap(),
        None,
        "not on the global cache"
    );
    assert_eq!(fresh_cache_each_call(3).await, 3);
    assert_eq!(fresh_cache_each_call_peek(3).await, None);
}
