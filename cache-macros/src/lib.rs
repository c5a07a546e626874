//! Attribute macros for [`cachette`](https://docs.rs/cachette): [`macro@cached`] and [`macro@invalidates`], and
//! the strategies [`macro@cache_early`], [`macro@cache_failover`], [`macro@cache_hit`] and [`macro@cache_locked`].
//!
//! This crate only parses, validates and expands; everything that runs lives in `cachette::__private`
//! (strategies, key rendering, the global cache). Use the macros through `cachette`, which re-exports them:
//! `use cachette::{cached, invalidates};`. The examples below run as doctests against `cachette`.
//!
//! Every caching macro goes through the same option parser (`attr`), key renderer (`template`) and companion
//! generator (`expand_cached`); a strategy only changes which `__private` function `NAME` calls and with which
//! extra arguments.
//!
//! Modules, one concern each:
//! - `attr`: the attribute arguments (`ttl = "3h"`, `skip(a)`, targets, ...) into typed options;
//! - `ttl`: compile-time validation of TTL literals;
//! - `template`: key templates (`"user:{user.id}:<id:hash>"`): parsing, name checks, rendering code;
//! - `item`: the annotated function: attributes, visibility and signature parsed, the body kept as tokens;
//! - `sig`: the annotated function's signature (receiver, arguments, patterns, return shape);
//! - `expand_cached` (every caching macro), `expand_invalidates`: code generation;
//! - `errors`: combining spanned errors, suggestions.

extern crate proc_macro;

mod attr;
mod errors;
mod expand_cached;
mod expand_guard;
mod expand_invalidates;
mod expand_many;
mod item;
mod sig;
mod template;
mod ttl;

use proc_macro::TokenStream;

use crate::attr::{CachedOptions, MacroKind};
use crate::errors::{error_output, Errors};

/// Where to report "this is not a function": the item's name or keyword.
/// Runs one macro: parse the options and the function (reporting both sets of errors), then expand. On error the
/// function is emitted unchanged next to the errors.
fn run<O>(
    attr: TokenStream,
    item: TokenStream,
    macro_name: &str,
    parse: impl syn::parse::Parser<Output = O>,
    expand: fn(O, item::FnItem) -> syn::Result<proc_macro2::TokenStream>,
) -> TokenStream {
    let item = proc_macro2::TokenStream::from(item);
    let mut errors = Errors::default();
    let options = errors.ok(parse.parse(attr));
    let function = errors.ok(item::parse_fn(item.clone(), macro_name));
    let result = match (options, function) {
        (Some(options), Some(function)) => expand(options, function),
        _ => errors.finish().map(|()| proc_macro2::TokenStream::new()),
    };
    match result {
        Ok(tokens) => tokens.into(),
        Err(error) => error_output(error, item).into(),
    }
}

/// Caches the result of an `async fn`.
///
/// ```
/// use cachette::cached;
/// # #[derive(Clone, serde::Serialize, serde::Deserialize)] pub struct Account { id: u64 }
/// # pub struct User { id: u64 }
/// # #[derive(Debug)] pub struct DbError;
/// # mod db { pub async fn load_account(_: u64, id: u64) -> Result<super::Account, super::DbError> { Ok(super::Account { id }) } }
///
/// #[cached(ttl = "3h", key = "user:{user.id}:{account_id}")]
/// async fn get_user_account(user: &User, account_id: u64) -> Result<Account, DbError> {
///     db::load_account(user.id, account_id).await
/// }
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() {
/// # let user = User { id: 1 };
/// let (first, hits) = cachette::context::detect(get_user_account(&user, 7)).await; // runs the body
/// assert!(first.is_ok() && hits.is_empty());
/// let (_, hits) = cachette::context::detect(get_user_account(&user, 7)).await; // from the cache
/// assert_eq!(hits.keys(), ["user:1:7"]);
/// # }
/// ```
///
/// The first call runs the body and stores the result; later calls with the same key get the stored value
/// until it expires. Backend failures never reach the caller (the body runs instead, the error is logged), except
/// with `strict = true`.
///
/// # Where it goes
///
/// On an `async fn` with a body: free functions, methods (`&self`, `&mut self`, `self`, `self: Arc<Self>`),
/// associated functions, generic functions, reference and `impl Trait` arguments and destructuring patterns
/// (`(a, b): (u32, u32)`; the bound names `a` and `b` are what the key sees). Not on `const`, `unsafe` or
/// `extern` functions, and not on functions returning `impl Trait`.
///
/// What is stored — the return value, or for a `Result` its `Ok` type (and its `Err` type too with `cache_err`) —
/// must be `Serialize + DeserializeOwned + Clone + Send + Sync + 'static` (`cachette::Storable`): usually
/// `#[derive(Clone, Serialize, Deserialize)]`. `Clone` because the memory backend hands out clones of a decoded
/// copy instead of decoding on every hit. The returned future must be `Send`, and every argument that is part of
/// the key must implement `cachette::KeyArg`. A missing derive is one error at the return type,
/// with `Storable`'s message naming the derives.
///
/// # Options
///
/// | option | meaning |
/// |---|---|
/// | `ttl = "1h30m"` | how long an entry lives: a [humantime](https://docs.rs/humantime) string (`"90s"`, `"500ms"`, `"3h"`), checked at compile time; integer seconds (`ttl = 60`); or any expression of a type implementing `IntoTtl` (`Duration`, `Option<Duration>`, integer seconds), evaluated on every call. Without `ttl` entries never expire (they are still evicted by a bounded backend). Zero is an error. |
/// | `key = "user:{id}"` | a key template, see below. Without it the default key is used. |
/// | `prefix = "users"` | puts `users:` in front of the key (default or template). |
/// | `skip(a, b)` | leaves arguments out of the default key (for connections, clients, loggers, ...). |
/// | `cache = EXPR` | the cache to use instead of the global one: anything that derefs to `&Cache`, e.g. a `static LazyLock<Cache>`, an `Arc<Cache>`, a `Cache`, or `self.cache` in a method. Evaluated on every call. |
/// | `condition = path` | `fn(&Out) -> bool` (a function path or a non-capturing closure) deciding whether a result is stored, e.g. `cachette::conditions::not_none`. |
/// | `cache_err = true` | for `Result`: store `Err` too (both types must be serializable). |
/// | `strict = true` | for `Result`: backend errors are returned as `Err(E::from(CacheError))` instead of failing open; `E: From<CacheError>` is required. Stores `Ok` only. |
/// | `result = true/false` | says whether the return type is a `Result` when the syntax can't tell (a type alias not named `Result`). |
/// | `companions(key, peek, ...)` | which companion functions to generate (see below); default `invalidate` and `invalidate_all`. `companions = true`: all of them; `companions = false`: none (needed in trait impls, where extra methods are not allowed). |
/// | `in_impl = true` | says that a function without `self` and without `Self` in its signature is an associated function (inside an `impl` block). |
/// | `crate = path` | where `cachette` is, for renamed dependencies (default `::cachette`). |
/// | `region = "feature-name"` | the region (`cachette::regions`, filled by `cachette::Config` from a settings file) decides at call time: caching off → the body runs and the cache is not touched; its TTL replaces `ttl`; its own cache replaces `cache`. Names are collected at link time so installing settings without the region fails. |
/// | `namespace = "tenant:{tenant_id}"` | entries live in that namespace of the cache (`Cache::namespace`, the multi-tenant recipe); the template renders like a key. Clearing the namespace (`#[invalidates(namespace = ...)]`) drops them all in O(1) on every backend, memcached included. `NAME_invalidate_all` is not generated (clear the namespace instead). |
/// | `time_condition = "1s"` | stores only results whose body took at least this long (cheap results are not worth a round trip). A duration literal or a `Duration` expression. |
/// | `tags = ["user:{user.id}", "users"]` | registers the entry under these tags, each a key template with the same placeholders as `key`; `cache.delete_tags(&["user:42"])` or `#[invalidates(tag = "user:{id}")]` drops every entry of a tag. |
/// | `soft_ttl = "10m"` | soft expiry (cashews' `soft_ttl`): after it the next call recomputes; if that returns `Err` (or fails the condition) the stale value is served, until `ttl`. Needs `ttl`, must be shorter than it. Reported to `detect` as strategy `"soft"`, stale. |
/// | `lock = true` | fills a missing key once across every process sharing the backend (see [`macro@cache_locked`]); with `lock_ttl = "5s"` (default **10 s**) and `lock_wait = "2s"` (default: `lock_ttl`). Not with `soft_ttl`. |
/// | `soft_timeout = "100ms"` | with `soft_ttl` (FusionCache's factory timeouts): a stale value waits at most this long for its recomputation, then is served while the recomputation finishes in the background and stores its result. |
/// | `hard_timeout = "2s"` | a call waits at most this long for the body, stale value or not; then it returns `Err(E::from(FactoryTimedOut))` (so `E: From<FactoryTimedOut>`) and the body still finishes and stores in the background. With either timeout the body runs on its own task: arguments must be owned (`Send + 'static`). Not with `lock`. |
/// | `ttl_jitter = "1m"` | each stored value's TTL gets a random extra of up to this, so keys stored together do not expire together. |
///
/// Boolean options may be written as bare flags (`#[cached(strict)]`). The common options (every row above but
/// `cache_err`, `strict`, `soft_ttl` and `lock*`) are shared by every caching macro.
///
/// What is stored depends on the return type, read syntactically: a type whose last path segment is `Result`
/// (`Result<T, E>`, `io::Result<T>`, `anyhow::Result<T>`) caches `Ok` only; everything else, including `Option`
/// (where `None` is cached too unless a `condition` says otherwise), is stored whole.
///
/// # Keys
///
/// The **default key** is the module path, the function name and every argument not skipped:
/// `my_app::users:get_user:id=42:name=bob`. For associated functions and methods the module path is replaced by
/// the path of the `Self` type (from `std::any::type_name`), so two impls in one module never share entries:
/// `my_app::users::UserRepo:get:id=42`. `self` itself is never part of the key. Argument values are rendered
/// through `cachette::KeyArg` and escaped, so `("a:b", "c")` and `("a", "b:c")` give different keys and no
/// value can contain a glob character. An argument type without `KeyArg` is a compile error at that argument:
/// implement `KeyArg`, `skip` it, or name some of its fields in a template.
///
/// A **key template** is literal text with placeholders, written `{expr}` or `<expr>`:
///
/// ```
/// # use cachette::cached;
/// # pub struct User { id: u64, name: String }
/// # impl User { fn name(&self) -> &str { &self.name } }
/// # pub struct Repo { tenant: String }
/// #[cached(key = "user:{user.id}:{account_id}", companions(key))] // field paths
/// async fn account(user: &User, account_id: u64) -> u64 { account_id }
///
/// #[cached(key = "user:<user.name().len()>:<account_id>", companions(key))] // the other spelling, methods
/// async fn by_name(user: &User, account_id: u64) -> u64 { account_id }
///
/// #[cached(key = "search:{query:lower}:{page:hash}", companions(key))] // format specs
/// async fn search(query: &str, page: u32) -> Vec<String> { vec![] }
///
/// impl Repo {
///     #[cached(key = "tenant:{self.tenant}:{id}", companions(key))] // `self` fields, in methods
///     async fn get(&self, id: u64) -> u64 { id }
/// }
///
/// let user = User { id: 42, name: "ada".into() };
/// assert_eq!(account_key(&user, 7), "user:42:7");
/// assert_eq!(by_name_key(&user, 7), "user:3:7");
/// assert!(search_key("Rust", 1).starts_with("search:rust:"));
/// assert_eq!(Repo { tenant: "acme".into() }.get_key(5), "tenant:acme:5");
/// ```
///
/// `expr` starts with an argument name (or `self`), followed by fields (`user.id`, `pair.0`) and method calls
/// without arguments (`user.name()`). The optional spec is `:hash` (the value's SHA-256 digest truncated to 128 bits, as 32 hex
/// digits: collision-resistant even against whoever controls the value), `:lower`,
/// `:upper` or `:len`. `{{`, `}}`, `<<` and `>>` are literal braces. Unknown names, bad specs and unclosed
/// placeholders are compile errors. A template that mentions `self` makes the key-level companions take `&self`.
///
/// # Companion functions
///
/// Next to `NAME`, with the same visibility (as sibling associated functions for methods), the macro generates
/// the companions listed in `companions(...)`; without the option, `NAME_invalidate` and `NAME_invalidate_all`
/// (what `#[invalidates(NAME(..))]` calls). `NAME` and its companions share one private key function, so the key
/// is rendered by the same code everywhere.
///
/// | companion | what it does |
/// |---|---|
/// | `NAME_key(args) -> String` | the key for these arguments |
/// | `NAME_invalidate(args)` → `bool` | removes the entry for these arguments; the key is computed on the call and the returned `impl Future + Send + 'static` borrows nothing |
/// | `NAME_invalidate_soft(args)` → `bool` | marks the entry stale (dogpile's soft invalidation, `Cache::mark_stale`): still readable; the next call recomputes it while calls arriving meanwhile get the stale value |
/// | `NAME_invalidate_all()` → `u64` | removes every entry of the function (a glob: `module::path:NAME:*`, or the template with each placeholder as `*`) |
/// | `async NAME_refresh(receiver, args) -> Out` | runs the body and stores the result, without reading the cache |
/// | `async NAME_set(args, value: &Stored) -> Result<(), CacheError>` | stores a value as if the body had returned it (`Stored` is the `Ok` type for `Result`s, the output otherwise) |
/// | `async NAME_peek(args) -> Option<Stored>` | the cached value, if any; never runs the body |
/// | `async NAME_uncached(receiver, args) -> Out` | the original body, bypassing the cache |
///
/// In methods, `_key`, `_invalidate`, `_invalidate_all`, `_set` and `_peek` take `&self` only when the `cache`
/// expression or the key template mentions `self`; otherwise they are called as `Self::NAME_key(..)`.
/// `_refresh` and `_uncached` take the original receiver.
///
/// ```
/// use cachette::cached;
///
/// #[cached(ttl = "10m", companions(key, set, peek, invalidate, invalidate_all, refresh, uncached))]
/// async fn get_user(id: u64) -> String {
///     format!("user {id}")
/// }
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), cachette::CacheError> {
/// assert!(get_user_key(7).ends_with(":get_user:id=7")); // "my_app:get_user:id=7"
/// get_user_set(7, &"bob".to_owned()).await?;
/// assert_eq!(get_user_peek(7).await.as_deref(), Some("bob"));
/// assert_eq!(get_user(7).await, "bob");
/// assert_eq!(get_user_uncached(7).await, "user 7"); // the body; nothing read or stored
/// assert!(get_user_invalidate(7).await);
/// assert_eq!(get_user_refresh(7).await, "user 7"); // runs the body and stores
/// assert_eq!(get_user_invalidate_all().await, 1);
/// # Ok(()) }
/// ```
///
/// # Expansion
///
/// ```text
/// async fn NAME(args) -> Out {
///     let cache = /* cache = EXPR, or global() */;
///     let key = __NAME_key(&args);
///     cachette::__private::cached_with(Shape, &cache, key, options, __NAME_uncached(args)).await
/// }
/// fn __NAME_key(&args) -> String { /* rendered with cachette::__private::KeyBuilder */ }
/// async fn __NAME_uncached(args) -> Out { /* the original body, as written */ }
/// // + the companions asked for, each calling __NAME_key
/// ```
///
/// The body is not parsed, only moved: a syntax error in it is reported by rustc alone.
///
/// The options become an `Options` value: `Options::ttl(ttl)` followed by `.condition(f)`,
/// `.time_condition(d)` and `.tags(vec)` when given, and `NAME` calls `__private::cached_with(shape, &cache, key,
/// options, body)` (`soft(.., soft_ttl, body)` with `soft_ttl`, `locked(.., LockOptions::new(lock_ttl)
/// .wait(lock_wait), body)` with `lock`).
///
/// Associated functions without `self` and without `Self` in their signature can't be told apart from free
/// functions syntactically: mark them `in_impl = true`. In trait impls use `companions = false`; the body then
/// stays inside `NAME`.
///
/// # Sync functions
///
/// On a non-async `fn`, `NAME` and its companions are sync too (`NAME_invalidate(..) -> bool`, `NAME_peek(..) ->
/// Option<T>`, …); they block on the async strategy (`ttl`, `soft_ttl` and the common options; not `lock`,
/// factory timeouts or `region`):
///
/// - on a cache whose backends are all in memory, on the calling thread, with or without a Tokio runtime;
/// - on a remote backend, from a thread outside any runtime (a small runtime of the library drives the call),
///   from a multi-thread runtime's worker or `spawn_blocking` (through `block_in_place`), but **not** on the thread
///   of a current-thread runtime, which cannot make progress while it blocks: there the cache is not used — the
///   body runs, the refusal (`CacheError::WouldBlock`) is logged and counted, and a `strict` fn returns it.
///
/// ```
/// use std::sync::LazyLock;
/// use cachette::{cached, Cache};
/// static CACHE: LazyLock<Cache> = LazyLock::new(Cache::memory);
///
/// #[cached(cache = CACHE, ttl = "1m", companions(peek, invalidate, invalidate_all))]
/// fn parse_config(text: String) -> usize {
///     text.lines().count()
/// }
///
/// assert_eq!(parse_config("a\nb".into()), 2); // no runtime needed
/// assert_eq!(parse_config_peek("a\nb".into()), Some(2));
/// assert!(parse_config_invalidate("a\nb".into()));
/// ```
#[proc_macro_attribute]
pub fn cached(attr: TokenStream, item: TokenStream) -> TokenStream {
    caching(attr, item, MacroKind::Cached)
}

/// The caching macros share one parser, one key renderer and one companion generator; `kind` picks the
/// accepted options and the strategy.
fn caching(attr: TokenStream, item: TokenStream, kind: MacroKind) -> TokenStream {
    run(
        attr,
        item,
        kind.name(),
        move |input: syn::parse::ParseStream<'_>| CachedOptions::parse_for(input, kind),
        expand_cached::expand,
    )
}

/// Caches with early refresh (cashews' `early`): a value older than `early_ttl` is still served, and one caller
/// refreshes it in the background.
///
/// ```
/// # use cachette::cache_early;
/// # #[derive(Debug)] pub struct HttpError;
/// #[cache_early(ttl = "10m", early_ttl = "7m")]
/// async fn exchange_rate(base: String) -> Result<f64, HttpError> {
///     Ok(if base == "eur" { 1.08 } else { 1.0 })
/// }
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() {
/// assert_eq!(exchange_rate("eur".into()).await.unwrap(), 1.08);
/// # }
/// ```
///
/// - `ttl` is required; `early_ttl` defaults to **a third of `ttl`** (as in cashews) and must be shorter than
///   `ttl`.
/// - One refresh at a time per key across every process sharing the backend (a lock next to the key); a refresh
///   that returns `Err` keeps the old value. A miss computes in the foreground, like `#[cached]`.
/// - The refresh is spawned on the Tokio runtime, so the body must be `Send + 'static`: arguments are taken by
///   value (`String`, not `&str`; `self: Arc<Self>`, not `&self`). A borrowed argument is a compile error at the
///   argument. `background = false` lifts that: the caller that wins the refresh recomputes inline and gets the
///   fresh value.
/// - Reported to `detect` as strategy `"early"`.
///
/// Options: those of [`macro@cached`] except `soft_ttl` and `lock*`, plus `early_ttl` and `background`. Same
/// companions. `NAME` calls `__private::early(shape, &cache, key, options, early_ttl, body)`
/// (`early_foreground` without background).
#[proc_macro_attribute]
pub fn cache_early(attr: TokenStream, item: TokenStream) -> TokenStream {
    caching(attr, item, MacroKind::Early)
}

/// Failover (cashews' `failover`): the body always runs; when it returns `Err`, the last `Ok` for the same key is
/// returned instead.
///
/// ```
/// # use cachette::cache_failover;
/// #[derive(Debug)]
/// pub enum HttpError { Timeout, NotFound }
///
/// #[cache_failover(ttl = "2h", on = is_timeout)]
/// async fn temperature(city: &str, fail: bool) -> Result<i32, HttpError> {
///     if fail { Err(HttpError::Timeout) } else { Ok(21) }
/// }
///
/// fn is_timeout(error: &HttpError) -> bool { matches!(error, HttpError::Timeout) }
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() {
/// assert_eq!(temperature("oslo", false).await.unwrap(), 21);
/// # }
/// ```
///
/// - The return type must be a `Result` (`result = true` for an alias not named `Result`); every `Ok` is stored
///   for `ttl` (default: until evicted).
/// - `on = predicate`: a `fn(&E) -> bool` path or non-capturing closure choosing which errors fall back (default:
///   every error); others are returned as they are. With nothing stored the error is returned.
/// - A served fallback is reported to `detect` as strategy `"failover"`, stale.
///
/// Options: the common options of [`macro@cached`] plus `on` (no `cache_err`/`strict`: only `Ok` is stored).
/// `NAME` calls `__private::failover(&cache, key, options, on, body)`.
#[proc_macro_attribute]
pub fn cache_failover(attr: TokenStream, item: TokenStream) -> TokenStream {
    caching(attr, item, MacroKind::Failover)
}

/// Hit-limited entries (cashews' `hit`): a value is served at most `hits` times, then recomputed.
///
/// ```
/// # use cachette::cache_hit;
/// #[cache_hit(ttl = "1h", hits = 100, update_after = 80)]
/// async fn leaderboard(game: u64) -> Vec<(String, u32)> {
///     vec![(format!("player of game {game}"), 99)]
/// }
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() {
/// assert_eq!(leaderboard(1).await.len(), 1);
/// # }
/// ```
///
/// - `hits` is required (integer literal or `u64` expression). With `update_after` (less than `hits`), that hit
///   also starts a background refresh that resets the count. The count lives in the backend next to the value.
/// - The refresh is spawned, so arguments are taken by value as with [`macro@cache_early`] (a compile error at
///   a borrowed argument).
/// - Reported to `detect` as strategy `"hits"`.
///
/// Options: those of [`macro@cached`] except `soft_ttl` and `lock*`, plus `hits` and `update_after`. `NAME`
/// calls `__private::hits(shape, &cache, key, options, hits, update_after, body)`.
#[proc_macro_attribute]
pub fn cache_hit(attr: TokenStream, item: TokenStream) -> TokenStream {
    caching(attr, item, MacroKind::Hit)
}

/// Distributed single flight (cashews' `locked`), sugar for `#[cached(lock = true, ...)]`: across processes
/// sharing a backend, a missing key runs its body once; the others wait for the stored value.
///
/// ```
/// # use cachette::cache_locked;
/// #[cache_locked(ttl = "1h", lock_ttl = "30s", lock_wait = "5s")]
/// async fn monthly_report(month: u32) -> String {
///     format!("report for month {month}")
/// }
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() {
/// assert_eq!(monthly_report(3).await, "report for month 3");
/// # }
/// ```
///
/// - `lock_ttl`: how long the lock lives, so how long a holder that died blocks the others. Default **10 s**, not
///   `ttl` as in cashews: a lock as long as a 3 h ttl would block waiters for hours if its holder died.
/// - `lock_wait`: the longest a waiter waits before computing without the lock (default: `lock_ttl`).
/// - Hits are reported to `detect` as strategy `"cached"`, values a waiter found after waiting as `"locked"`.
///
/// Options: those of [`macro@cached`] except `soft_ttl` and `lock`, plus `lock_ttl` and `lock_wait`. `NAME`
/// calls `__private::locked(shape, &cache, key, options, LockOptions::new(lock_ttl).wait(lock_wait), body)`.
#[proc_macro_attribute]
pub fn cache_locked(attr: TokenStream, item: TokenStream) -> TokenStream {
    caching(attr, item, MacroKind::Locked)
}

/// Caches a fn that takes a slice of ids and returns one value per id, **per id** (dogpile.cache's
/// `cache_multiple_on_arguments`): a call with ids some of which are cached runs the body once, with only the
/// missing ids, and concurrent calls with overlapping ids compute each id once ([`Cache::get_or_set_many`]).
///
/// ```
/// use cachette::cached_many;
///
/// #[cached_many(ttl = "10m", key = "user:{ids}")] // in the key, the slice argument stands for one id
/// async fn user_names(ids: &[u64]) -> Vec<String> {
///     println!("loading {ids:?}"); // SELECT … WHERE id = ANY($1)
///     ids.iter().map(|id| format!("user {id}")).collect()
/// }
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() {
/// assert_eq!(user_names(&[1, 2]).await, ["user 1", "user 2"]);
/// assert_eq!(user_names(&[2, 3, 1]).await, ["user 2", "user 3", "user 1"]); // loads only [3]
/// # }
/// ```
///
/// The fn takes exactly one argument `ids: &[T]` (`T: Clone + KeyArg`) and returns `Vec<V>` with `V` a storable
/// value (`Serialize + DeserializeOwned + Clone + Send + Sync + 'static`), one per id in order. Options: `ttl`,
/// `key` (a template in which the argument's name is one element; default `module::path:NAME:ids=<id>`),
/// `prefix`, `cache = EXPR`, `crate = path`. A body that returns a different number of values than ids is run
/// again for all ids and its result returned uncached. Backend failures fail open, as everywhere.
///
/// [`Cache::get_or_set_many`]: https://docs.rs/cachette/latest/cachette/struct.Cache.html#method.get_or_set_many
#[proc_macro_attribute]
pub fn cached_many(attr: TokenStream, item: TokenStream) -> TokenStream {
    run(
        attr,
        item,
        "cached_many",
        <expand_many::ManyOptions as syn::parse::Parse>::parse,
        expand_many::expand,
    )
}

/// Removes cache entries after an `async fn` succeeded.
///
/// ```
/// use cachette::{cached, invalidates};
/// # pub struct User { id: u64 }
/// # #[derive(Debug)] pub struct DbError;
///
/// #[cached(key = "user:{user.id}:account:{account_id}")]
/// async fn get_user_account(user: &User, account_id: u64) -> String {
///     format!("account {account_id}")
/// }
///
/// #[cached]
/// async fn list_accounts(user_id: u64) -> Vec<u64> {
///     vec![7]
/// }
///
/// #[invalidates(get_user_account(&user, account_id), list_accounts(..), "search:*")]
/// async fn rename_account(user: &User, account_id: u64, name: &str) -> Result<(), DbError> {
///     Ok(()) // write `name` to the database here
/// }
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() {
/// # let user = User { id: 1 };
/// get_user_account(&user, 7).await; // stored
/// rename_account(&user, 7, "savings").await.unwrap(); // dropped again
/// let (_, hits) = cachette::context::detect(get_user_account(&user, 7)).await;
/// assert!(hits.is_empty());
/// # }
/// ```
///
/// After the body returns `Ok` (for any return type that isn't a `Result`: after it returns), every target is
/// invalidated, in order. Targets are written in terms of the annotated function's arguments:
///
/// | target | removes |
/// |---|---|
/// | `get_user(&user, id)` | the entry `get_user(&user, id)` would use (calls `get_user_invalidate(&user, id)`) |
/// | `Self::get_user(id)`, `self.get_user(id)`, `users::get_user(id)` | the same for methods and paths (the last segment or the method gets `_invalidate`) |
/// | `get_user(..)` | every entry of `get_user` (calls `get_user_invalidate_all()`) |
/// | `"user:{id}:*"` | every key matching the glob pattern: literal text is kept as is (so `*`, `?` and `[..]` are wildcards) and placeholders are the escaped argument values, as in `#[cached]` key templates |
/// | `tag = "user:{id}"`, `tags = ["user:{id}", "users"]` | every entry registered under these tags (`#[cached(tags = [...])]`); the templates render like keys |
/// | `namespace = "tenant:{tenant_id}"` | clears that namespace (`Cache::namespace(..).clear()`): every entry stored in it, by any function, in O(1) |
///
/// The targets are evaluated **before** the body runs (the key of each entry is rendered then), so the body may
/// consume the arguments; the deletions happen after it. An argument the body needs by value must be cloned in
/// the target: `get_user(name.clone())`. Invalidation is fail-open: a backend error is logged, never returned.
///
/// Options: `cache = EXPR` (the cache for pattern targets; default the global cache — function targets use the
/// cache of their own `#[cached]`), `result = true/false` (whether the return type is a `Result`, when the
/// syntax can't tell) and `crate = path`.
///
/// The method form `self.get_user(id)` requires the companion to take `&self` (its `cache` or key mentions
/// `self`); otherwise write `Self::get_user(id)`.
///
/// On a sync `fn` the body runs as written and the deletions run after it on the sync runner of `cache` (see
/// [`macro@cached`]'s "Sync functions"); its function targets must be sync cached fns.
#[proc_macro_attribute]
pub fn invalidates(attr: TokenStream, item: TokenStream) -> TokenStream {
    run(
        attr,
        item,
        "invalidates",
        <attr::InvalidatesArgs as syn::parse::Parse>::parse,
        expand_invalidates::expand,
    )
}

/// Runs an async fn holding a lock shared by every process using the cache's backend (cashews `@locked`): a
/// mutex, caching nothing.
///
/// ```
/// use cachette::{locked, Locked};
/// # #[derive(Debug)] pub enum JobError { Busy(Locked) }
/// # impl From<Locked> for JobError { fn from(e: Locked) -> Self { JobError::Busy(e) } }
/// #[locked(key = "report:{day}", ttl = "30s", wait = false)]
/// async fn build_report(day: u32) -> Result<String, JobError> {
///     Ok(format!("report {day}"))
/// }
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() {
/// assert_eq!(build_report(7).await.unwrap(), "report 7");
/// # }
/// ```
///
/// - `key`: a template over the arguments (default: the fn's path), stored as `lock:<key>`.
/// - `ttl` (default 30 s): the longest a holder that died keeps the lock.
/// - `wait = true` (the default): callers queue up, polling, so runs never overlap; after `timeout` (default:
///   `ttl`) a caller gives up with `Err(Locked)`. `wait = false`: a caller that finds the lock held gets
///   `Err(Locked)` at once.
/// - The fn returns `Result<T, E>` with `E: From<Locked>`. The lock is released when the body returns, panics
///   or is cancelled (compare-and-delete, so an expired lock taken by another caller stays theirs).
/// - `cache = EXPR`, `crate = path` as for [`macro@cached`]. A backend failure runs the body without the lock
///   (fail-open, logged and counted); a backend that cannot compare-and-delete is a failure of that kind.
#[proc_macro_attribute]
pub fn locked(attr: TokenStream, item: TokenStream) -> TokenStream {
    guard(attr, item, expand_guard::GuardKind::Locked)
}

/// Limits how often an async fn runs, shared by every process using the cache's backend (cashews
/// `rate_limit` / `slice_rate_limit`).
///
/// ```
/// use cachette::{rate_limit, RateLimited};
/// # #[derive(Debug)] pub enum ApiError { TooMany(RateLimited) }
/// # impl From<RateLimited> for ApiError { fn from(e: RateLimited) -> Self { ApiError::TooMany(e) } }
/// #[rate_limit(limit = 2, period = "1m", key = "ip:{ip}")]
/// async fn login(ip: String) -> Result<&'static str, ApiError> {
///     Ok("welcome")
/// }
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() {
/// assert!(login("10.0.0.1".into()).await.is_ok());
/// assert!(login("10.0.0.1".into()).await.is_ok());
/// assert!(matches!(login("10.0.0.1".into()).await, Err(ApiError::TooMany(_))));
/// assert!(login("10.0.0.2".into()).await.is_ok());
/// # }
/// ```
///
/// - `limit` calls per `period` (both required), counted under `key` (a template over the arguments; default:
///   the fn's path, one limit for all callers), stored as `rate_limit:<key>`.
/// - `algorithm = "fixed"` (the default: a counter per window) or `"sliding"` (at most `limit` calls in any span
///   of one `period`). Atomic on every backend: one Lua script per call on Redis, compare-and-set elsewhere.
/// - Over the limit the body does not run: the fn returns `Err(E::from(RateLimited))`, so `E: From<RateLimited>`;
///   or `action = path` names a `fn(RateLimited) -> Out` whose output is returned instead (any return type).
/// - `cache = EXPR`, `crate = path` as for [`macro@cached`]. A backend failure lets the call through (fail-open,
///   logged and counted).
#[proc_macro_attribute]
pub fn rate_limit(attr: TokenStream, item: TokenStream) -> TokenStream {
    guard(attr, item, expand_guard::GuardKind::RateLimit)
}

/// Stops calling an async fn while it keeps failing (cashews `circuit_breaker`), with counters in the cache's
/// backend so every instance opens together.
///
/// ```
/// use cachette::{circuit_breaker, CircuitOpen};
/// # #[derive(Debug)] pub enum PayError { Down, Open(CircuitOpen) }
/// # impl From<CircuitOpen> for PayError { fn from(e: CircuitOpen) -> Self { PayError::Open(e) } }
/// #[circuit_breaker(errors_rate = 0.5, period = "1m", min_calls = 2, ttl = "30s", half_open_ttl = "10s")]
/// async fn charge(fail: bool) -> Result<u32, PayError> {
///     if fail { Err(PayError::Down) } else { Ok(1) }
/// }
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() {
/// assert!(matches!(charge(true).await, Err(PayError::Down)));
/// assert!(matches!(charge(true).await, Err(PayError::Down)));
/// assert!(matches!(charge(false).await, Err(PayError::Open(_))), "open: the body does not run");
/// # }
/// ```
///
/// - Calls and `Err`s are counted per window of `period`; once a window has `min_calls` calls (default 10) and
///   at least `errors_rate` of them failed, the circuit opens for `ttl` (default 30 s): calls return
///   `Err(E::from(CircuitOpen))` without running, so `E: From<CircuitOpen>`.
/// - Then, for `half_open_ttl` (default 10 s), it is half-open: `half_open_ratio` of the calls (default 0.1) run;
///   the first success closes it, the first error opens it again.
/// - `key` (a template; default: the fn's path; stored as `circuit:<key>:…`), `cache = EXPR`, `crate = path` as
///   for [`macro@cached`]. A backend failure lets the call through uncounted (fail-open, logged and counted).
#[proc_macro_attribute]
pub fn circuit_breaker(attr: TokenStream, item: TokenStream) -> TokenStream {
    guard(attr, item, expand_guard::GuardKind::CircuitBreaker)
}

fn guard(attr: TokenStream, item: TokenStream, kind: expand_guard::GuardKind) -> TokenStream {
    run(
        attr,
        item,
        kind.name(),
        move |input: syn::parse::ParseStream<'_>| {
            expand_guard::GuardOptions::parse_for(input, kind)
        },
        expand_guard::expand,
    )
}
