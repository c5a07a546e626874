//! A tour of the attribute macros, with runnable examples of each.
//!
//! Every caching macro takes the common options `ttl`, `key`, `prefix`, `skip(..)`, `cache`, `condition`,
//! `time_condition`, `tags`, `result`, `companions`, `in_impl` and `crate`, and generates the companions asked
//! for with `companions(...)` (`NAME_key`, `NAME_invalidate`, `NAME_invalidate_all`, `NAME_refresh`, `NAME_set`,
//! `NAME_peek`, `NAME_uncached`; by default the two `#[invalidates]` calls, `_invalidate` and `_invalidate_all`).
//! The strategy only decides what happens between reading the cache and running the body. The
//! full option tables are on the macros ([`cached`](crate::cached), [`cache_early`](crate::cache_early),
//! [`cache_failover`](crate::cache_failover), [`cache_hit`](crate::cache_hit),
//! [`cache_locked`](crate::cache_locked), [`invalidates`](crate::invalidates)); the service toolkit's guards
//! ([`locked`](macro@crate::locked), [`rate_limit`](macro@crate::rate_limit), [`circuit_breaker`](macro@crate::circuit_breaker))
//! cache nothing and come last.
//!
//! The examples use an explicit in-memory cache (`cache = CACHE`); without `cache = ...` the macros use the
//! global cache ([`global`](crate::global)).
//!
//! # `#[cached]`: key templates, default keys, companions
//!
//! ```
//! use std::sync::LazyLock;
//! use cachette::{cached, Cache};
//!
//! static CACHE: LazyLock<Cache> = LazyLock::new(Cache::memory);
//!
//! pub struct User { pub id: u64 }
//!
//! #[cached(ttl = "3h", key = "user:{user.id}:{account_id}", cache = CACHE, companions(invalidate, invalidate_all, key))]
//! async fn get_user_account(user: &User, account_id: u64) -> Result<String, std::io::Error> {
//!     Ok(format!("account {account_id} of {}", user.id))
//! }
//!
//! #[cached(ttl = "10m", cache = CACHE, companions(invalidate, invalidate_all, key, refresh, set, peek))]
//! async fn get_user(id: u64) -> Option<String> {
//!     Some(format!("user {id}"))
//! }
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() {
//! let user = User { id: 42 };
//! assert_eq!(get_user_account_key(&user, 7), "user:42:7");
//! let (account, hits) = cachette::context::detect(get_user_account(&user, 7)).await;
//! assert!(account.is_ok() && hits.is_empty()); // computed
//! let (_, hits) = cachette::context::detect(get_user_account(&user, 7)).await;
//! assert_eq!(hits.keys(), ["user:42:7"]); // served from the cache
//!
//! // The default key: module path, function name, every argument.
//! assert!(get_user_key(7).ends_with(":get_user:id=7"));
//! get_user_set(7, &Some("bob".to_owned())).await.unwrap();
//! assert_eq!(get_user(7).await.as_deref(), Some("bob"));
//! assert_eq!(get_user_peek(7).await, Some(Some("bob".to_owned())));
//! assert!(get_user_invalidate(7).await);
//! assert_eq!(get_user_peek(7).await, None);
//! assert_eq!(get_user_refresh(8).await.as_deref(), Some("user 8")); // runs and stores, never reads
//! assert_eq!(get_user_invalidate_all().await, 1);
//! # }
//! ```
//!
//! # `#[invalidates]`
//!
//! After the body succeeds, drops the entries named by the targets.
//!
//! ```
//! use std::sync::LazyLock;
//! use cachette::{cached, invalidates, Cache};
//!
//! static CACHE: LazyLock<Cache> = LazyLock::new(Cache::memory);
//!
//! #[cached(cache = CACHE, companions(invalidate, invalidate_all, peek))]
//! async fn account_name(id: u64) -> String {
//!     format!("account {id}")
//! }
//!
//! #[invalidates(account_name(id))]
//! async fn rename_account(id: u64, name: &str) -> Result<(), String> {
//!     let _ = name; // write to the database here
//!     Ok(())
//! }
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() {
//! account_name(1).await;
//! assert!(account_name_peek(1).await.is_some());
//! rename_account(1, "savings").await.unwrap();
//! assert_eq!(account_name_peek(1).await, None);
//! # }
//! ```
//!
//! # `#[cache_early]`: refresh before expiry
//!
//! After `early_ttl` (default: a third of `ttl`) the stored value is still served, and one caller — one across
//! every process sharing the backend — refreshes it in the background. The refresh outlives the call, so the
//! arguments are owned (`String`, not `&str`); `background = false` makes the winner recompute inline instead.
//!
//! ```
//! use std::sync::atomic::{AtomicU64, Ordering};
//! use std::sync::LazyLock;
//! use std::time::Duration;
//! use cachette::{cache_early, Cache};
//!
//! static CACHE: LazyLock<Cache> = LazyLock::new(Cache::memory);
//! static VERSION: AtomicU64 = AtomicU64::new(0);
//!
//! #[cache_early(ttl = "10s", early_ttl = "100ms", cache = CACHE)]
//! async fn exchange_rate(base: String) -> u64 {
//!     let _ = base;
//!     VERSION.fetch_add(1, Ordering::SeqCst) + 1
//! }
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() {
//! assert_eq!(exchange_rate("EUR".into()).await, 1);
//! tokio::time::sleep(Duration::from_millis(150)).await;
//! assert_eq!(exchange_rate("EUR".into()).await, 1); // still served; a refresh starts
//! tokio::time::sleep(Duration::from_millis(50)).await;
//! let (rate, hits) = cachette::context::detect(exchange_rate("EUR".into())).await;
//! assert_eq!((rate, hits.hits()[0].strategy), (2, "early"));
//! # }
//! ```
//!
//! # `#[cache_failover]`: the last good value when the body fails
//!
//! The body always runs; an `Ok` is stored, an `Err` accepted by `on` (default: every error) returns the last
//! stored `Ok` instead.
//!
//! ```
//! use std::sync::LazyLock;
//! use cachette::{cache_failover, Cache};
//!
//! static CACHE: LazyLock<Cache> = LazyLock::new(Cache::memory);
//!
//! #[cache_failover(ttl = "2h", cache = CACHE, skip(up), on = |e| e.contains("timeout"))]
//! async fn forecast(city: &str, up: bool) -> Result<i32, String> {
//!     let _ = city;
//!     if up { Ok(21) } else { Err("timeout".to_owned()) }
//! }
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() {
//! assert_eq!(forecast("Oslo", true).await, Ok(21));
//! let (out, hits) = cachette::context::detect(forecast("Oslo", false)).await;
//! assert_eq!(out, Ok(21));
//! assert!(hits.hits()[0].stale && hits.hits()[0].strategy == "failover");
//! # }
//! ```
//!
//! # `soft_ttl`: stale on error
//!
//! After `soft_ttl` the next call recomputes; if that returns `Err`, the stale value is served until `ttl`.
//!
//! ```
//! use std::sync::LazyLock;
//! use std::time::Duration;
//! use cachette::{cached, Cache};
//!
//! static CACHE: LazyLock<Cache> = LazyLock::new(Cache::memory);
//!
//! #[cached(ttl = "1h", soft_ttl = "100ms", cache = CACHE, skip(up))]
//! async fn settings(tenant: u64, up: bool) -> Result<String, String> {
//!     if up { Ok(format!("settings of {tenant}")) } else { Err("db down".to_owned()) }
//! }
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() {
//! settings(1, true).await.unwrap();
//! tokio::time::sleep(Duration::from_millis(150)).await;
//! let (out, hits) = cachette::context::detect(settings(1, false)).await;
//! assert_eq!(out.as_deref(), Ok("settings of 1"));
//! assert_eq!((hits.hits()[0].strategy, hits.hits()[0].stale), ("soft", true));
//! # }
//! ```
//!
//! # `#[cache_hit]`: a limited number of hits
//!
//! ```
//! use std::sync::atomic::{AtomicU64, Ordering};
//! use std::sync::LazyLock;
//! use cachette::{cache_hit, Cache};
//!
//! static CACHE: LazyLock<Cache> = LazyLock::new(Cache::memory);
//! static RUNS: AtomicU64 = AtomicU64::new(0);
//!
//! #[cache_hit(ttl = "1h", hits = 2, cache = CACHE)]
//! async fn leaderboard(game: u64) -> u64 {
//!     let _ = game;
//!     RUNS.fetch_add(1, Ordering::SeqCst)
//! }
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() {
//! let mut seen = Vec::new();
//! for _ in 0..4 {
//!     seen.push(leaderboard(1).await);
//! }
//! assert_eq!(seen, [0, 0, 0, 1]); // computed, served twice, recomputed
//! # }
//! ```
//!
//! # `lock = true` / `#[cache_locked]`: one computation across processes
//!
//! A missing key is computed once across every process sharing the backend; the others wait for the stored
//! value (at most `lock_wait`). The lock lives `lock_ttl`, default 10 s.
//!
//! ```
//! use std::sync::atomic::{AtomicU64, Ordering};
//! use std::sync::LazyLock;
//! use cachette::{cached, Cache};
//!
//! static CACHE: LazyLock<Cache> = LazyLock::new(Cache::memory);
//! static RUNS: AtomicU64 = AtomicU64::new(0);
//!
//! #[cached(ttl = "1h", lock = true, lock_ttl = "30s", lock_wait = "5s", cache = CACHE)]
//! async fn monthly_report(month: u32) -> String {
//!     RUNS.fetch_add(1, Ordering::SeqCst);
//!     tokio::time::sleep(std::time::Duration::from_millis(50)).await;
//!     format!("report {month}")
//! }
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() {
//! let reports = futures::future::join_all((0..10).map(|_| monthly_report(5))).await;
//! assert!(reports.iter().all(|r| r == "report 5"));
//! assert_eq!(RUNS.load(Ordering::SeqCst), 1);
//! # }
//! ```
//!
//! # `time_condition`: cache only slow results
//!
//! ```
//! use std::sync::atomic::{AtomicU64, Ordering};
//! use std::sync::LazyLock;
//! use cachette::{cached, Cache};
//!
//! static CACHE: LazyLock<Cache> = LazyLock::new(Cache::memory);
//! static RUNS: AtomicU64 = AtomicU64::new(0);
//!
//! #[cached(time_condition = "20ms", cache = CACHE)]
//! async fn search(query: &str) -> u64 {
//!     if query.len() > 3 {
//!         tokio::time::sleep(std::time::Duration::from_millis(30)).await;
//!     }
//!     RUNS.fetch_add(1, Ordering::SeqCst)
//! }
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() {
//! assert_eq!((search("ab").await, search("ab").await), (0, 1)); // fast: not stored
//! assert_eq!((search("slow").await, search("slow").await), (2, 2)); // slow: stored
//! # }
//! ```
//!
//! # `tags`: drop groups of entries
//!
//! Each tag is a template like `key`. [`Cache::delete_tags`](crate::Cache::delete_tags) or
//! `#[invalidates(tag = "...")]` removes every entry stored under a tag.
//!
//! ```
//! use std::sync::LazyLock;
//! use cachette::{cached, invalidates, Cache};
//!
//! static CACHE: LazyLock<Cache> = LazyLock::new(Cache::memory);
//!
//! #[cached(cache = CACHE, tags = ["user:{user_id}", "profiles"], companions(invalidate, invalidate_all, peek))]
//! async fn profile(user_id: u64) -> String {
//!     format!("profile {user_id}")
//! }
//!
//! #[cached(cache = CACHE, tags = ["user:{user_id}"], companions(invalidate, invalidate_all, peek))]
//! async fn orders(user_id: u64) -> Vec<u64> {
//!     vec![user_id]
//! }
//!
//! #[invalidates(cache = CACHE, tag = "user:{user_id}")]
//! async fn delete_user(user_id: u64) -> Result<(), String> {
//!     let _ = user_id;
//!     Ok(())
//! }
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() {
//! profile(1).await;
//! orders(1).await;
//! profile(2).await;
//! delete_user(1).await.unwrap();
//! assert_eq!((profile_peek(1).await, orders_peek(1).await), (None, None));
//! assert!(profile_peek(2).await.is_some());
//! assert_eq!(CACHE.delete_tags(&["profiles"]).await.unwrap(), 1);
//! # }
//! ```
//!
//! # `#[locked]`: a mutex shared by every instance
//!
//! Nothing is cached: callers that find the lock held get `Err(Locked)` (`wait = false`), or queue up
//! (`wait = true`, the default) until `timeout`.
//!
//! ```
//! use std::sync::LazyLock;
//! use cachette::{locked, Cache, Locked};
//!
//! static CACHE: LazyLock<Cache> = LazyLock::new(Cache::memory);
//!
//! #[derive(Debug)]
//! enum JobError { Busy }
//! impl From<Locked> for JobError { fn from(_: Locked) -> Self { JobError::Busy } }
//!
//! #[locked(cache = CACHE, key = "nightly:{day}", ttl = "30s", wait = false)]
//! async fn nightly(day: u32) -> Result<u32, JobError> {
//!     tokio::time::sleep(std::time::Duration::from_millis(50)).await;
//!     Ok(day)
//! }
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() {
//! let (a, b) = tokio::join!(nightly(1), nightly(1));
//! assert!(a.is_ok() != b.is_ok(), "one ran, the other found it held");
//! assert_eq!(nightly(1).await.unwrap(), 1, "released when the holder returned");
//! # }
//! ```
//!
//! # `#[rate_limit]`: calls per period
//!
//! ```
//! use std::sync::LazyLock;
//! use cachette::{rate_limit, Cache, RateLimited};
//!
//! static CACHE: LazyLock<Cache> = LazyLock::new(Cache::memory);
//!
//! fn slow_down(limited: RateLimited) -> String {
//!     format!("try again in {}s", limited.retry_after.as_secs().max(1))
//! }
//!
//! #[rate_limit(cache = CACHE, limit = 2, period = "1m", key = "user:{user}", algorithm = "sliding", action = slow_down)]
//! async fn export(user: u64) -> String {
//!     format!("export of {user}")
//! }
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() {
//! assert_eq!(export(1).await, "export of 1");
//! assert_eq!(export(1).await, "export of 1");
//! assert!(export(1).await.starts_with("try again"));
//! assert_eq!(export(2).await, "export of 2");
//! # }
//! ```
//!
//! # `#[circuit_breaker]`: stop calling what keeps failing
//!
//! ```
//! use std::sync::LazyLock;
//! use cachette::{circuit_breaker, Cache, CircuitOpen};
//!
//! static CACHE: LazyLock<Cache> = LazyLock::new(Cache::memory);
//!
//! #[derive(Debug, PartialEq)]
//! enum PayError { Declined, Open }
//! impl From<CircuitOpen> for PayError { fn from(_: CircuitOpen) -> Self { PayError::Open } }
//!
//! #[circuit_breaker(cache = CACHE, errors_rate = 0.5, period = "1m", min_calls = 4, ttl = "30s")]
//! async fn charge(ok: bool) -> Result<(), PayError> {
//!     if ok { Ok(()) } else { Err(PayError::Declined) }
//! }
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() {
//! for ok in [true, false, true, false] {
//!     let _ = charge(ok).await;
//! }
//! assert_eq!(charge(true).await, Err(PayError::Open), "2 of 4 failed: open for 30 s");
//! # }
//! ```
//!
//! # Factory timeouts: `soft_timeout`, `hard_timeout`, `ttl_jitter`
//!
//! ```
//! use std::sync::LazyLock;
//! use std::time::Duration;
//! use cachette::{cached, strategy::FactoryTimedOut, Cache};
//!
//! static CACHE: LazyLock<Cache> = LazyLock::new(Cache::memory);
//!
//! #[derive(Debug, PartialEq)]
//! enum RateError { Slow }
//! impl From<FactoryTimedOut> for RateError { fn from(_: FactoryTimedOut) -> Self { RateError::Slow } }
//!
//! #[cached(cache = CACHE, ttl = "1h", soft_ttl = "10m", soft_timeout = "100ms", hard_timeout = "200ms", ttl_jitter = "1m")]
//! async fn rate(delay_ms: u64) -> Result<u32, RateError> {
//!     tokio::time::sleep(Duration::from_millis(delay_ms)).await;
//!     Ok(108)
//! }
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() {
//! assert_eq!(rate(5_000).await, Err(RateError::Slow), "nothing stale to serve: gave up after 200 ms");
//! assert_eq!(rate(0).await, Ok(108));
//! # }
//! ```
//!
//! # Sync functions
//!
//! `#[cached]` on a plain `fn`: a memory cache needs no runtime (see [`cached`](crate::cached) for remote backends).
//!
//! ```
//! use std::sync::LazyLock;
//! use cachette::{cached, invalidates, Cache};
//!
//! static CACHE: LazyLock<Cache> = LazyLock::new(Cache::memory);
//!
//! #[cached(cache = CACHE, key = "template:{name}", companions(invalidate, invalidate_all, peek))]
//! fn compile_template(name: String) -> usize {
//!     name.len()
//! }
//!
//! #[invalidates(cache = CACHE, compile_template(name.clone()))] // the body takes `name` by value
//! fn edit_template(name: String) -> Result<(), String> {
//!     let _ = name;
//!     Ok(())
//! }
//!
//! assert_eq!(compile_template("home".into()), 4);
//! assert_eq!(compile_template_peek("home".into()), Some(4));
//! edit_template("home".into()).unwrap();
//! assert_eq!(compile_template_peek("home".into()), None);
//! ```
