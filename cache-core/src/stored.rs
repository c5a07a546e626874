//! The stored form of a typed value: encode it (codec, envelope, value layers) and decode it back.

use bytes::Bytes;
use serde::de::DeserializeOwned;
use serde::Serialize;

use crate::codec::Codec;
use crate::envelope::EnvelopeMeta;
use crate::error::CacheError;
use crate::layer::ValueLayers;

/// How one cache turns values into stored bytes and back: the codec of new writes and the value layers.
#[derive(Debug, Clone, Default)]
pub(crate) struct StoredForm {
    /// Unique per cache built (namespace views share their cache's): decoded copies in the memory backend are
    /// served only to readers of the form that decoded them.
    pub(crate) id: u64,
    pub(crate) codec: Codec,
    pub(crate) layers: ValueLayers,
}

/// A fresh [`StoredForm::id`]; 0 is never handed out.
pub(crate) fn next_form_id() -> u64 {
    static NEXT: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(1);
    NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed)
}

impl StoredForm {
    /// Encodes `value` for storage under `key`: envelope + payload, through the value layers.
    pub(crate) fn encode<T: Serialize + ?Sized>(
        &self,
        key: &str,
        value: &T,
        meta: EnvelopeMeta,
    ) -> Result<Bytes, CacheError> {
        let mut out = Vec::with_capacity(64);
        meta.encode(&mut out, |out| {
            self.codec.encode(value, out).map_err(CacheError::Encode)
        })?;
        if !self.layers.is_empty() {
            out = self.layers.seal(key, out);
        }
        // Exactly as long as the value: `Bytes` keeps a vector's spare capacity alive, and the memory backend's
        // byte bound charges lengths.
        Ok(Bytes::from(out.into_boxed_slice()))
    }

    /// Decodes the bytes stored under `key`, through the value layers; every failure is an error, never a
    /// panic.
    pub(crate) fn decode<T: DeserializeOwned>(
        &self,
        key: &str,
        bytes: &[u8],
    ) -> Result<(EnvelopeMeta, T), CacheError> {
        if self.layers.is_empty() {
            return decode_envelope(bytes);
        }
        let opened = self.layers.open(key, bytes)?;
        decode_envelope(&opened)
    }
}

impl StoredForm {
    /// The stored bytes of `key` with the envelope changed by `change` and the payload untouched (not decoded),
    /// sealed again by the value layers. `None` for a value past its envelope's expiry, which must not come back.
    pub(crate) fn restamp(
        &self,
        key: &str,
        bytes: &[u8],
        change: impl FnOnce(&mut EnvelopeMeta),
    ) -> Result<Option<Bytes>, CacheError> {
        let opened = self.layers.open(key, bytes)?;
        let (mut meta, payload) = EnvelopeMeta::read(&opened)?;
        if meta.is_expired() {
            return Ok(None);
        }
        change(&mut meta);
        let mut out = Vec::with_capacity(opened.len() + 16);
        meta.encode(&mut out, |out| {
            out.extend_from_slice(payload);
            Ok::<(), CacheError>(())
        })?;
        if !self.layers.is_empty() {
            out = self.layers.seal(key, out);
        }
        Ok(Some(Bytes::from(out.into_boxed_slice())))
    }
}

fn decode_envelope<T: DeserializeOwned>(bytes: &[u8]) -> Result<(EnvelopeMeta, T), CacheError> {
    let (meta, payload) = EnvelopeMeta::read(bytes)?;
    let value = meta.codec.decode(payload).map_err(CacheError::Decode)?;
    Ok((meta, value))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips_and_rejects_foreign_bytes() {
        let form = StoredForm::default();
        let bytes = form
            .encode(
                "k",
                &vec![1u32, 2, 3],
                EnvelopeMeta::new(Codec::MessagePack, None),
            )
            .unwrap();
        let (_, value): (_, Vec<u32>) = form.decode("k", &bytes).unwrap();
        assert_eq!(value, [1, 2, 3]);
        assert!(form.decode::<Vec<u32>>("k", b"not ours").is_err());
    }
}
