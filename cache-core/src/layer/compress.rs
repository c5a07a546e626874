//! LZ4 compression of values above a size threshold.

use std::borrow::Cow;

use super::{LayerError, ValueLayer};

/// Marks a compressed value; the envelope starts with another byte, the signing layer with a third.
const MARKER: u8 = 0xC4;
/// Marker + the original length (u32, little endian).
const HEADER: usize = 5;

/// Compresses values of at least `min_size` bytes with LZ4 (`lz4_flex`); smaller ones are stored as they are.
///
/// Readers tell the two apart by a marker byte, so a cache that turns compression on (or off, keeping the layer
/// with a huge threshold) still reads every value written before. A compressed value that claims to expand
/// beyond `max_size` (64 MiB by default) is refused rather than allocated: whoever can write to the backend
/// must not be able to make readers allocate gigabytes.
///
/// ```
/// use cache_core::{layer::Compress, Cache};
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() {
/// let cache = Cache::builder().value_layer(Compress::new(1024)).build();
/// cache.set("page", &"x".repeat(100_000), None).await.unwrap();
/// assert_eq!(cache.get::<String>("page").await.unwrap().map(|p| p.len()), Some(100_000));
/// # }
/// ```
#[derive(Debug, Clone)]
pub struct Compress {
    min_size: usize,
    max_size: usize,
}

impl Compress {
    /// Compresses values of `min_size` bytes and more.
    ///
    /// ```
    /// let layer = cache_core::layer::Compress::new(1024);
    /// # let _ = layer;
    /// ```
    pub fn new(min_size: usize) -> Self {
        Self {
            min_size,
            max_size: 64 << 20,
        }
    }

    /// The largest decompressed size accepted on reads (default 64 MiB).
    ///
    /// ```
    /// let layer = cache_core::layer::Compress::new(1024).max_size(1 << 30);
    /// # let _ = layer;
    /// ```
    pub fn max_size(mut self, max_size: usize) -> Self {
        self.max_size = max_size;
        self
    }
}

impl ValueLayer for Compress {
    fn name(&self) -> &'static str {
        "compress"
    }

    fn seal(&self, _key: &str, value: Vec<u8>) -> Vec<u8> {
        let Ok(len) = u32::try_from(value.len()) else {
            return value;
        };
        if value.len() < self.min_size {
            return value;
        }
        let mut out =
            Vec::with_capacity(HEADER + lz4_flex::block::get_maximum_output_size(value.len()));
        out.push(MARKER);
        out.extend_from_slice(&len.to_le_bytes());
        out.extend_from_slice(&lz4_flex::block::compress(&value));
        // Incompressible data stays as it was: smaller, and no decompression on reads.
        if out.len() >= value.len() {
            return value;
        }
        out
    }

    fn open<'a>(&self, _key: &str, stored: &'a [u8]) -> Result<Cow<'a, [u8]>, LayerError> {
        if stored.first() != Some(&MARKER) {
            return Ok(Cow::Borrowed(stored));
        }
        let refuse = |reason| LayerError::new("compress", reason);
        let len_bytes: [u8; 4] = stored
            .get(1..HEADER)
            .and_then(|b| b.try_into().ok())
            .ok_or_else(|| refuse("truncated header"))?;
        let len = u32::from_le_bytes(len_bytes) as usize;
        if len > self.max_size {
            return Err(refuse("claims a size above max_size"));
        }
        let value = lz4_flex::block::decompress(&stored[HEADER..], len)
            .map_err(|_| refuse("not valid LZ4 data"))?;
        if value.len() != len {
            return Err(refuse("decompressed to another length than recorded"));
        }
        Ok(Cow::Owned(value))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips_and_leaves_small_or_incompressible_values_alone() {
        let layer = Compress::new(64);
        let big = b"abc".repeat(1000);
        let sealed = layer.seal("k", big.clone());
        assert_eq!(sealed[0], MARKER);
        assert!(sealed.len() < big.len() / 10);
        assert_eq!(layer.open("k", &sealed).unwrap().as_ref(), big.as_slice());
        let small = b"short".to_vec();
        assert_eq!(layer.seal("k", small.clone()), small);
        let mut state = 0x9e37_79b9_7f4a_7c15u64;
        let noise: Vec<u8> = (0..4096)
            .map(|_| {
                state ^= state << 13;
                state ^= state >> 7;
                state ^= state << 17;
                (state >> 24) as u8
            })
            .collect();
        assert!(
            layer.seal("k", noise.clone()) == noise,
            "incompressible data is stored as is"
        );
    }

    #[test]
    fn refuses_truncated_corrupt_or_oversized_data() {
        let layer = Compress::new(0).max_size(10_000);
        let sealed = layer.seal("k", vec![7u8; 5000]);
        assert!(layer.open("k", &sealed[..3]).is_err());
        assert!(layer.open("k", &sealed[..sealed.len() - 1]).is_err());
        let mut bomb = sealed.clone();
        bomb[1..5].copy_from_slice(&u32::MAX.to_le_bytes());
        assert_eq!(
            layer.open("k", &bomb).unwrap_err().reason,
            "claims a size above max_size"
        );
        for i in HEADER..sealed.len() {
            let mut flipped = sealed.clone();
            flipped[i] ^= 0x55;
            // Never a panic; either an error or some bytes (the envelope's checksum catches the rest).
            let _ = layer.open("k", &flipped);
        }
    }
}
