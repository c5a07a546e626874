//! What cached calls and backend commands report to the outside: `tracing` spans (always, at debug level) and,
//! with the `metrics` feature, counters and histograms through the [`metrics`](https://docs.rs/metrics) facade.
//!
//! The library installs no exporter: a service picks one (Prometheus, OpenTelemetry, StatsD, …) and every series
//! below appears there.
//!
//! | series | kind | labels |
//! | --- | --- | --- |
//! | `cache_calls_total` | counter | `fn`, `strategy`, `result` = `hit`, `stale`, `miss` or `error` (the backend failed on the read; fail-open, the body ran) |
//! | `cache_body_duration_seconds` | histogram | `fn` — how long the body took (a miss, an error or a refresh) |
//! | `cache_backend_errors_total` | counter | `backend`, `op` |
//! | `cache_backend_duration_seconds` | histogram | `backend`, `op` — every backend command but the in-memory backend's lock-free hit path |
//!
//! `fn` is the cached function's path (`my_app::users::get_user`), `strategy` the macro's (`cached`, `early`,
//! `failover`, `hit`, `locked`, `soft`); calls through [`Cache::get_or_set`](crate::Cache::get_or_set) and the
//! strategy functions without a name report `fn = ""`. `cachette`'s circuit breaker adds the gauge
//! `cache_breaker_state{backend}` (0 closed, 1 half-open, 2 open).
//!
//! Spans follow OpenTelemetry's names where they exist: `cache.call` (fields `cache.fn`, `cache.key`,
//! `cache.strategy`, `cache.hit`) around a cached call, `cache.backend` (`db.system.name`, `db.operation.name`)
//! around a backend command.
//!
//! ```
//! # #[cfg(feature = "metrics")] {
//! // What a cached call reports, seen through a `metrics` recorder (a Prometheus exporter in a service).
//! use cache_core::telemetry::CALLS_TOTAL;
//! assert_eq!(CALLS_TOTAL, "cache_calls_total");
//! # }
//! ```

use std::time::Duration;

/// `cache_calls_total{fn, strategy, result}`.
pub const CALLS_TOTAL: &str = "cache_calls_total";
/// `cache_body_duration_seconds{fn}`.
pub const BODY_DURATION: &str = "cache_body_duration_seconds";
/// `cache_backend_errors_total{backend, op}`.
pub const BACKEND_ERRORS_TOTAL: &str = "cache_backend_errors_total";
/// `cache_backend_duration_seconds{backend, op}`.
pub const BACKEND_DURATION: &str = "cache_backend_duration_seconds";

/// The name and strategy a cached call reports under.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(crate) struct CallName {
    pub(crate) function: &'static str,
    pub(crate) strategy: &'static str,
}

/// One finished cached call.
#[inline]
pub(crate) fn call(name: CallName, result: &'static str) {
    #[cfg(feature = "metrics")]
    metrics::counter!(CALLS_TOTAL, "fn" => name.function, "strategy" => name.strategy, "result" => result)
        .increment(1);
    #[cfg(not(feature = "metrics"))]
    let _ = (name, result);
}

/// The body of a cached call ran for `took`.
#[inline]
pub(crate) fn body_duration(name: CallName, took: Duration) {
    #[cfg(feature = "metrics")]
    metrics::histogram!(BODY_DURATION, "fn" => name.function).record(took.as_secs_f64());
    #[cfg(not(feature = "metrics"))]
    let _ = (name, took);
}

/// A backend command failed.
#[inline]
pub(crate) fn backend_error(backend: &'static str, op: &'static str) {
    #[cfg(feature = "metrics")]
    metrics::counter!(BACKEND_ERRORS_TOTAL, "backend" => backend, "op" => op).increment(1);
    #[cfg(not(feature = "metrics"))]
    let _ = (backend, op);
}

/// Starts timing a backend command: `None` without the `metrics` feature, so nothing reads the clock.
#[inline]
pub(crate) fn backend_timer() -> Option<std::time::Instant> {
    #[cfg(feature = "metrics")]
    return Some(std::time::Instant::now());
    #[cfg(not(feature = "metrics"))]
    None
}

/// A backend command timed with [`backend_timer`] finished.
#[inline]
pub(crate) fn backend_duration(
    backend: &'static str,
    op: &'static str,
    started: Option<std::time::Instant>,
) {
    #[cfg(feature = "metrics")]
    if let Some(started) = started {
        metrics::histogram!(BACKEND_DURATION, "backend" => backend, "op" => op)
            .record(started.elapsed().as_secs_f64());
    }
    #[cfg(not(feature = "metrics"))]
    let _ = (backend, op, started);
}

/// The debug-level span around one backend command (a disabled span when nothing listens at debug level).
#[inline]
pub(crate) fn backend_span(backend: &'static str, op: &'static str) -> tracing::Span {
    if !tracing::level_enabled!(tracing::Level::DEBUG) {
        return tracing::Span::none();
    }
    tracing::debug_span!(
        "cache.backend",
        db.system.name = backend,
        db.operation.name = op
    )
}

/// Runs `future` inside `span` when there is one (a disabled span otherwise, whose enter and exit are a check
/// of an empty option).
///
/// A plain fn returning the wrapper, not an `async fn` with a branch per case: that would hold `future` twice in
/// its state (as the argument and in the branch that awaits it), doubling the size of every cached call's future
/// and the bytes copied each time it moves.
#[inline]
pub(crate) fn in_span<F: std::future::Future>(
    span: Option<tracing::Span>,
    future: F,
) -> tracing::instrument::Instrumented<F> {
    tracing::Instrument::instrument(future, span.unwrap_or_else(tracing::Span::none))
}

/// Records on the current `cache.call` span whether the call was served from the cache.
#[inline]
pub(crate) fn record_hit(hit: bool) {
    // Without a debug-level subscriber there is no span to record on: skip the task-local lookup.
    if tracing::level_enabled!(tracing::Level::DEBUG) {
        tracing::Span::current().record("cache.hit", hit);
    }
}

/// The debug-level span around one cached call, `None` when nothing listens at debug level (one atomic load: the
/// hit path then runs without a span at all); `cache.hit` is recorded when the call is served or computed.
#[inline]
pub(crate) fn call_span(name: CallName, key: &str) -> Option<tracing::Span> {
    if !tracing::level_enabled!(tracing::Level::DEBUG) {
        return None;
    }
    Some(tracing::debug_span!(
        "cache.call",
        "cache.fn" = name.function,
        cache.key = key,
        cache.strategy = name.strategy,
        cache.hit = tracing::field::Empty,
    ))
}
