//! Layers: what stands between a [`Cache`](crate::Cache) and its storage.
//!
//! Two kinds, for two jobs:
//!
//! - **Backend layers** ([`BackendLayer`], applied with [`LayeredExt::layered`]) wrap a backend in another that
//!   rewrites keys ([`KeyMangler`]), watches operations ([`Observe`]) or guards them (the circuit breaker in
//!   `cache-backends`). A layer writes only the hooks it needs; [`Layered`] applies them to every operation.
//! - **Value layers** ([`ValueLayer`], added with [`CacheBuilder::value_layer`](crate::CacheBuilder::value_layer))
//!   transform stored bytes: compression (`Compress`, feature `compress`) and signing (`Sign`, feature
//!   `sign`).
//!
//! A value layer sees each value after it was encoded (envelope and payload) on its way to the backend, and
//! before it is decoded on its way back; what it writes it alone reads. Layers live in the cache rather than
//! around the backend so that the memory backend's fast path — a decoded copy of each entry, kept for the next
//! hit — is made from bytes that went through every layer: a copy exists only after its bytes were verified and
//! decompressed, and any write to the entry (tampering included) drops it.
//!
//! Layers run in the order they were added when sealing and in reverse when opening. Each marks its output with
//! a leading byte of its own, distinct from the envelope's, so a layer recognises values written before it was
//! configured (compression reads them as they are; signing rejects them). Put signing last (outermost): then
//! nothing is decompressed or decoded before it is authenticated.

#[cfg(feature = "compress")]
mod compress;
mod keys;
mod observe;
#[cfg(feature = "sign")]
mod sign;
mod wrap;

use std::borrow::Cow;
use std::sync::Arc;

#[cfg(feature = "compress")]
pub use compress::Compress;
pub use keys::KeyMangler;
pub use observe::{Observe, OpStats};
#[cfg(feature = "sign")]
pub use sign::Sign;
pub use wrap::{BackendLayer, Layered, LayeredExt, Op};

/// Why a value layer refused stored bytes. The value reads as a miss (logged, counted in
/// [`MetricsSnapshot::decode_errors`](crate::MetricsSnapshot::decode_errors)).
///
/// ```
/// let error = cache_core::layer::LayerError::new("sign", "bad signature");
/// assert_eq!(error.to_string(), "sign layer rejected the stored value: bad signature");
/// ```
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{layer} layer rejected the stored value: {reason}")]
pub struct LayerError {
    /// The layer's name.
    pub layer: &'static str,
    /// What was wrong.
    pub reason: &'static str,
}

impl LayerError {
    /// An error of `layer` for `reason`.
    ///
    /// ```
    /// let error = cache_core::layer::LayerError::new("compress", "truncated");
    /// assert_eq!(error.layer, "compress");
    /// ```
    pub fn new(layer: &'static str, reason: &'static str) -> Self {
        Self { layer, reason }
    }
}

/// A transformation of stored values, undone on reads.
///
/// ```
/// use std::borrow::Cow;
/// use cache_core::layer::{LayerError, ValueLayer};
///
/// /// Stores values reversed (a toy: real layers compress, sign or encrypt).
/// struct Reverse;
///
/// impl ValueLayer for Reverse {
///     fn name(&self) -> &'static str {
///         "reverse"
///     }
///     fn seal(&self, _key: &str, mut value: Vec<u8>) -> Vec<u8> {
///         value.reverse();
///         value
///     }
///     fn open<'a>(&self, _key: &str, stored: &'a [u8]) -> Result<Cow<'a, [u8]>, LayerError> {
///         Ok(Cow::Owned(stored.iter().rev().copied().collect()))
///     }
/// }
///
/// let cache = cache_core::Cache::builder().value_layer(Reverse).build();
/// # let _ = cache;
/// ```
pub trait ValueLayer: Send + Sync + 'static {
    /// A short name for logs and errors.
    fn name(&self) -> &'static str;

    /// Transforms `value`, about to be stored under `key`.
    fn seal(&self, key: &str, value: Vec<u8>) -> Vec<u8>;

    /// Undoes [`ValueLayer::seal`] for bytes read from `key`, or refuses them.
    fn open<'a>(&self, key: &str, stored: &'a [u8]) -> Result<Cow<'a, [u8]>, LayerError>;
}

/// The value layers of one cache, in the order they seal.
#[derive(Clone, Default)]
pub(crate) struct ValueLayers {
    layers: Vec<Arc<dyn ValueLayer>>,
}

impl ValueLayers {
    pub(crate) fn push(&mut self, layer: Arc<dyn ValueLayer>) {
        self.layers.push(layer);
    }

    pub(crate) fn is_empty(&self) -> bool {
        self.layers.is_empty()
    }

    pub(crate) fn seal(&self, key: &str, mut value: Vec<u8>) -> Vec<u8> {
        for layer in &self.layers {
            value = layer.seal(key, value);
        }
        value
    }

    pub(crate) fn open<'a>(
        &self,
        key: &str,
        stored: &'a [u8],
    ) -> Result<Cow<'a, [u8]>, LayerError> {
        let mut bytes = Cow::Borrowed(stored);
        for layer in self.layers.iter().rev() {
            bytes = match bytes {
                Cow::Borrowed(b) => layer.open(key, b)?,
                Cow::Owned(b) => Cow::Owned(layer.open(key, &b)?.into_owned()),
            };
        }
        Ok(bytes)
    }
}

impl std::fmt::Debug for ValueLayers {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_list()
            .entries(self.layers.iter().map(|l| l.name()))
            .finish()
    }
}
