//! Timing and error counts of every backend operation.

use std::future::Future;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::time::Instant;

use super::wrap::{BackendLayer, Op};
use crate::backend::BackendError;

const OPS: [Op; 21] = [
    Op::Get,
    Op::GetMany,
    Op::Set,
    Op::SetMany,
    Op::Delete,
    Op::DeleteMany,
    Op::DeleteMatch,
    Op::Scan,
    Op::Incr,
    Op::Expire,
    Op::Ttl,
    Op::Unlock,
    Op::RateLimit,
    Op::Persist,
    Op::Gets,
    Op::Cas,
    Op::Ping,
    Op::Clear,
    Op::SetAdd,
    Op::SetMembers,
    Op::SetRemove,
];

fn index(op: Op) -> usize {
    OPS.iter().position(|o| *o == op).unwrap_or(0)
}

#[derive(Default)]
struct Counters {
    calls: AtomicU64,
    errors: AtomicU64,
    micros: AtomicU64,
}

/// Counts calls, errors and time per operation of the backend it wraps, and logs each failure with `tracing`
/// (a `debug` event per call at the `cache_core::backend` target, a `warn` per failure).
///
/// ```
/// use cache_core::layer::{LayeredExt, Observe, Op};
/// use cache_core::{Backend, MemoryBackend, SetMode};
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), cache_core::BackendError> {
/// let backend = MemoryBackend::default().layered(Observe::new());
/// backend.set("k", "v".into(), None, SetMode::Always).await?;
/// backend.get("k").await?;
/// let gets = backend.layer().stats(Op::Get);
/// assert_eq!((gets.calls, gets.errors), (1, 0));
/// # Ok(()) }
/// ```
#[derive(Default)]
pub struct Observe {
    counters: [Counters; OPS.len()],
}

impl std::fmt::Debug for Observe {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Observe").finish_non_exhaustive()
    }
}

/// What [`Observe`] counted for one operation.
///
/// ```
/// let stats = cache_core::layer::Observe::new().stats(cache_core::layer::Op::Set);
/// assert_eq!(stats.calls, 0);
/// ```
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct OpStats {
    /// Calls made.
    pub calls: u64,
    /// Calls that failed.
    pub errors: u64,
    /// Time spent in the calls, in microseconds.
    pub total_micros: u64,
}

impl Observe {
    /// Counters at zero.
    ///
    /// ```
    /// let layer = cache_core::layer::Observe::new();
    /// # let _ = layer;
    /// ```
    pub fn new() -> Self {
        Self::default()
    }

    /// What was counted for `op` so far.
    ///
    /// ```
    /// use cache_core::layer::{Observe, Op};
    /// assert_eq!(Observe::new().stats(Op::Get).errors, 0);
    /// ```
    pub fn stats(&self, op: Op) -> OpStats {
        let c = &self.counters[index(op)];
        OpStats {
            calls: c.calls.load(Relaxed),
            errors: c.errors.load(Relaxed),
            total_micros: c.micros.load(Relaxed),
        }
    }
}

impl BackendLayer for Observe {
    async fn around<'a, T: Send + 'a>(
        &'a self,
        op: Op,
        call: impl Future<Output = Result<T, BackendError>> + Send + 'a,
    ) -> Result<T, BackendError> {
        let started = Instant::now();
        let result = call.await;
        let micros = u64::try_from(started.elapsed().as_micros()).unwrap_or(u64::MAX);
        let counters = &self.counters[index(op)];
        counters.calls.fetch_add(1, Relaxed);
        counters.micros.fetch_add(micros, Relaxed);
        match &result {
            Ok(_) => {
                tracing::debug!(target: "cache_core::backend", op = op.as_str(), micros, "backend call")
            }
            Err(error) => {
                counters.errors.fetch_add(1, Relaxed);
                tracing::warn!(target: "cache_core::backend", op = op.as_str(), micros, %error, "backend call failed");
            }
        }
        result
    }
}
