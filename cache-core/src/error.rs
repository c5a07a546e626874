//! The error type of the typed [`Cache`](crate::Cache) API.

use crate::backend::BackendError;
use crate::codec::CodecError;
use crate::context::Ops;
use crate::envelope::EnvelopeError;

/// What went wrong in a [`Cache`](crate::Cache) operation.
///
/// Cached functions never see these unless they opted into strict mode: by default a failing backend makes them
/// run their body instead (fail-open).
///
/// # Example
/// ```
/// use cache_core::{BackendError, CacheError};
/// let err = CacheError::from(BackendError::CircuitOpen);
/// assert!(err.is_backend());
/// ```
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum CacheError {
    /// The backend failed.
    #[error(transparent)]
    Backend(#[from] BackendError),
    /// A value could not be encoded for storage.
    #[error("cannot encode value: {0}")]
    Encode(#[source] CodecError),
    /// Stored bytes are not a readable value of the requested type.
    #[error("cannot decode stored value: {0}")]
    Decode(#[source] CodecError),
    /// Stored bytes are not one of our envelopes (foreign, truncated, corrupted or another version).
    #[error("stored value is not readable: {0}")]
    Envelope(#[from] EnvelopeError),
    /// A value layer refused the stored bytes (a bad signature, corrupt compressed data, …).
    #[error(transparent)]
    Layer(#[from] crate::layer::LayerError),
    /// A `compute` of [`Cache::get_or_set_many`](crate::Cache::get_or_set_many) returned a different number of
    /// values than it was given keys.
    #[error("get_or_set_many: compute returned {got} values for {expected} keys")]
    BodyMismatch {
        /// How many keys it was given.
        expected: usize,
        /// How many values it returned.
        got: usize,
    },
    /// [`Cache::update`](crate::Cache::update) lost the race to other writers of the key this many times in a
    /// row and gave up.
    #[error("update of {key:?} gave up after {attempts} conflicting writes")]
    Conflict {
        /// The key.
        key: String,
        /// How many times it read and tried to write.
        attempts: u32,
    },
    /// The operation is switched off in the current [`context`](crate::context) scope and has no neutral
    /// answer (see [`Cache::incr`](crate::Cache::incr)).
    #[error("cache operation {0:?} is disabled in this scope")]
    Disabled(Ops),
    /// A sync cached function on a remote backend was called on the thread of a current-thread Tokio runtime:
    /// blocking that thread for the backend would deadlock the runtime, so the cache was not used (the body ran).
    /// Call it from a multi-thread runtime, from `spawn_blocking`, or from a thread outside any runtime — or make it
    /// `async`.
    #[error(
        "a sync cached fn on a remote backend cannot block the thread of a current-thread Tokio runtime (it would \
         deadlock); call it from a multi-thread runtime, `spawn_blocking` or a plain thread, or make it async"
    )]
    WouldBlock,
    /// [`Cache::lock`](crate::Cache::lock) waited its whole timeout while another caller held the lock.
    #[error(transparent)]
    Locked(#[from] crate::toolkit::Locked),
}

impl CacheError {
    /// Whether the backend (not the data) failed.
    ///
    /// ```
    /// # use cache_core::{BackendError, CacheError};
    /// assert!(CacheError::Backend(BackendError::Timeout(std::time::Duration::from_millis(5))).is_backend());
    /// ```
    pub fn is_backend(&self) -> bool {
        matches!(self, CacheError::Backend(_))
    }
}
