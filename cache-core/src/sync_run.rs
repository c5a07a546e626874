//! Driving the async cache from sync functions (`#[cached]` on a non-async `fn`).
//!
//! - A cache whose backends are all the embedded memory backend never waits: its futures run to completion on the
//!   calling thread, with or without a Tokio runtime, and without joining in-process single flights (a sync
//!   caller blocks its thread, so it must never wait for a flight that only its own thread could finish).
//! - A remote backend needs a runtime. On a thread outside any runtime, a small runtime owned by the library
//!   drives the call (the backend's connections stay on the runtime that made them). Inside a multi-thread runtime
//!   the call runs under [`tokio::task::block_in_place`], which hands the worker's other tasks to other threads
//!   first. On the thread of a current-thread runtime nothing can make progress while it blocks: the call is
//!   refused with [`CacheError::WouldBlock`] and the body runs uncached (logged and counted).

use std::future::Future;
use std::sync::OnceLock;

use tokio::runtime::{Handle, Runtime, RuntimeFlavor};

use crate::cache::Cache;
use crate::context;
use crate::error::CacheError;

/// How a sync caller drives one cache call; from [`sync_runner`].
#[doc(hidden)]
#[derive(Debug)]
pub enum SyncRunner {
    /// Memory only: poll on this thread.
    Memory,
    /// Inside a multi-thread runtime: `block_in_place` + `Handle::block_on`.
    InPlace(Handle),
    /// No runtime on this thread: the library's own runtime.
    Owned(&'static Runtime),
}

/// The library's runtime for sync callers on threads outside any runtime: one worker, built on first use.
fn owned_runtime() -> Result<&'static Runtime, CacheError> {
    static RUNTIME: OnceLock<Option<Runtime>> = OnceLock::new();
    RUNTIME
        .get_or_init(|| {
            tokio::runtime::Builder::new_multi_thread()
                .worker_threads(1)
                .thread_name("cachette-sync")
                .enable_all()
                .build()
                .inspect_err(
                    |error| tracing::error!(%error, "cannot start the runtime for sync cached fns"),
                )
                .ok()
        })
        .as_ref()
        .ok_or_else(|| {
            CacheError::Backend(crate::BackendError::Other(
                "no runtime for sync cache calls".into(),
            ))
        })
}

/// How a sync caller on this thread can use `cache`, or why it cannot ([`CacheError::WouldBlock`]).
///
/// ```
/// let cache = cache_core::Cache::memory();
/// let runner = cache_core::__private::sync_runner(&cache).unwrap();
/// assert_eq!(runner.block_on(async { 1 + 1 }), 2);
/// ```
pub fn sync_runner(cache: &Cache) -> Result<SyncRunner, CacheError> {
    if cache.all_embedded_memory() {
        return Ok(SyncRunner::Memory);
    }
    match Handle::try_current() {
        Ok(handle) if handle.runtime_flavor() == RuntimeFlavor::MultiThread => {
            Ok(SyncRunner::InPlace(handle))
        }
        Ok(_) => Err(CacheError::WouldBlock),
        Err(_) => owned_runtime().map(SyncRunner::Owned),
    }
}

impl SyncRunner {
    /// Runs `fut` to completion on this thread, in the caller's [`context`] scope.
    pub fn block_on<F: Future>(self, fut: F) -> F::Output {
        let scope = context::current();
        match self {
            SyncRunner::Memory => futures_executor::block_on(tokio::task::unconstrained(
                scope.scope(context::alone(fut)),
            )),
            SyncRunner::InPlace(handle) => {
                tokio::task::block_in_place(|| handle.block_on(scope.scope(fut)))
            }
            SyncRunner::Owned(runtime) => runtime.block_on(scope.scope(fut)),
        }
    }
}

/// A sync call the cache could not serve (see [`sync_runner`]): logged and counted; strict shapes return the
/// error, others run `body` uncached.
pub fn refused<S, Out>(cache: &Cache, error: CacheError, body: impl FnOnce() -> Out) -> Out
where
    S: crate::shape::Shape<Out>,
{
    note_refused(cache, &error);
    match S::on_backend_error(error) {
        Ok(out) => out,
        Err(_) => body(),
    }
}

/// A sync companion or invalidation the cache could not run: logged and counted, as [`refused`] does.
pub fn note_refused(cache: &Cache, error: &CacheError) {
    cache.note_refused(error);
}
