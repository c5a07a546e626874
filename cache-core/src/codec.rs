//! Serialising values to bytes: MessagePack (the default) and JSON.

use serde::de::DeserializeOwned;
use serde::Serialize;

/// How values are turned into bytes.
///
/// The codec is recorded in every stored value's envelope, so a cache reads values written with either codec.
///
/// # Example
/// ```
/// use cache_core::Codec;
/// let mut bytes = Vec::new();
/// Codec::Json.encode(&vec![1, 2], &mut bytes).unwrap();
/// assert_eq!(bytes, b"[1,2]");
/// assert_eq!(Codec::Json.decode::<Vec<i32>>(&bytes).unwrap(), vec![1, 2]);
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
#[non_exhaustive]
pub enum Codec {
    /// MessagePack via `rmp-serde`, structs as maps so added, removed or reordered fields are detected or
    /// tolerated the way serde's derive decides. Compact and fast; the default.
    #[default]
    MessagePack,
    /// JSON via `serde_json`: larger and slower, readable with `redis-cli`.
    Json,
}

/// A value could not be encoded or decoded.
#[derive(Debug, thiserror::Error)]
#[error("{codec:?} codec: {message}")]
pub struct CodecError {
    /// The codec that failed.
    pub codec: Codec,
    /// What went wrong.
    pub message: String,
}

impl Codec {
    pub(crate) fn id(self) -> u8 {
        match self {
            Codec::MessagePack => 1,
            Codec::Json => 2,
        }
    }

    pub(crate) fn from_id(id: u8) -> Option<Self> {
        match id {
            1 => Some(Codec::MessagePack),
            2 => Some(Codec::Json),
            _ => None,
        }
    }

    fn error(self, e: impl std::fmt::Display) -> CodecError {
        CodecError {
            codec: self,
            message: e.to_string(),
        }
    }

    /// Appends the encoding of `value` to `out`.
    ///
    /// ```
    /// let mut out = Vec::new();
    /// cache_core::Codec::MessagePack.encode(&42u8, &mut out).unwrap();
    /// assert_eq!(out, [42]);
    /// ```
    pub fn encode<T: Serialize + ?Sized>(
        self,
        value: &T,
        out: &mut Vec<u8>,
    ) -> Result<(), CodecError> {
        match self {
            Codec::MessagePack => {
                rmp_serde::encode::write_named(out, value).map_err(|e| self.error(e))
            }
            Codec::Json => serde_json::to_writer(out, value).map_err(|e| self.error(e)),
        }
    }

    /// Decodes a value; anything that is not a complete, valid encoding of `T` is an error, never a panic —
    /// including a valid encoding followed by more bytes.
    ///
    /// ```
    /// use cache_core::Codec;
    /// assert!(Codec::Json.decode::<u32>(b"not json").is_err());
    /// assert!(Codec::MessagePack.decode::<u8>(&[7]).is_ok());
    /// assert!(Codec::MessagePack.decode::<u8>(&[7, 7]).is_err());
    /// ```
    pub fn decode<T: DeserializeOwned>(self, bytes: &[u8]) -> Result<T, CodecError> {
        match self {
            Codec::MessagePack => {
                // Decoded from the slice in place: strings and byte arrays are read without first being copied
                // into the decoder's buffer (the `Read`-based decoder did that, which was an eighth of a
                // memcached hit's instructions). It stops after one value and ignores what follows, so the
                // value's length is checked separately.
                let value = T::deserialize(&mut rmp_serde::Deserializer::from_read_ref(bytes))
                    .map_err(|e| self.error(e))?;
                match msgpack_value_len(bytes) {
                    Some(len) if len == bytes.len() => Ok(value),
                    Some(len) => Err(self.error(format_args!(
                        "{} unexpected bytes after the value",
                        bytes.len() - len
                    ))),
                    None => Err(self.error("truncated MessagePack value")),
                }
            }
            Codec::Json => serde_json::from_slice(bytes).map_err(|e| self.error(e)),
        }
    }
}

/// The length of the first MessagePack value in `bytes`, walking its markers without decoding anything; `None`
/// when it is cut short or uses the reserved marker. Every step consumes at least its marker byte, so a length
/// field claiming more items than there are bytes ends the walk at the end of `bytes`.
fn msgpack_value_len(bytes: &[u8]) -> Option<usize> {
    let be = |at: usize, width: usize| -> Option<u64> {
        let field = bytes.get(at..at.checked_add(width)?)?;
        Some(field.iter().fold(0u64, |n, b| (n << 8) | u64::from(*b)))
    };
    let mut pos = 0usize;
    let mut pending: u64 = 1;
    while pending > 0 {
        pending -= 1;
        let marker = *bytes.get(pos)?;
        pos += 1;
        // (bytes of length field, fixed payload bytes, whether the length field counts payload bytes or items)
        let (skip, items): (u64, u64) = match marker {
            0x00..=0x7f | 0xe0..=0xff | 0xc0 | 0xc2 | 0xc3 => (0, 0),
            0x80..=0x8f => (0, 2 * u64::from(marker & 0x0f)),
            0x90..=0x9f => (0, u64::from(marker & 0x0f)),
            0xa0..=0xbf => (u64::from(marker & 0x1f), 0),
            0xc4 | 0xd9 => (1 + be(pos, 1)?, 0),
            0xc5 | 0xda => (2 + be(pos, 2)?, 0),
            0xc6 | 0xdb => (4 + be(pos, 4)?, 0),
            // ext: length, type byte, data
            0xc7 => (1 + 1 + be(pos, 1)?, 0),
            0xc8 => (2 + 1 + be(pos, 2)?, 0),
            0xc9 => (4 + 1 + be(pos, 4)?, 0),
            0xca => (4, 0),
            0xcb => (8, 0),
            0xcc | 0xd0 => (1, 0),
            0xcd | 0xd1 => (2, 0),
            0xce | 0xd2 => (4, 0),
            0xcf | 0xd3 => (8, 0),
            // fixext 1, 2, 4, 8, 16: type byte and data
            0xd4 => (2, 0),
            0xd5 => (3, 0),
            0xd6 => (5, 0),
            0xd7 => (9, 0),
            0xd8 => (17, 0),
            0xdc => (2, be(pos, 2)?),
            0xdd => (4, be(pos, 4)?),
            0xde => (2, 2 * be(pos, 2)?),
            0xdf => (4, 2 * be(pos, 4)?),
            0xc1 => return None,
        };
        pos = pos.checked_add(usize::try_from(skip).ok()?)?;
        if pos > bytes.len() {
            return None;
        }
        pending = pending.checked_add(items)?;
    }
    Some(pos)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    type Sample = Vec<(
        String,
        u64,
        i64,
        Option<f64>,
        Vec<u8>,
        std::collections::BTreeMap<String, bool>,
    )>;

    /// Small values of every MessagePack kind the codec writes: strings, unsigned and negative integers, floats,
    /// nil, binary, maps, arrays.
    fn sample() -> impl Strategy<Value = Sample> {
        use proptest::collection::{btree_map, vec};
        vec(
            (
                ".{0,12}",
                any::<u64>(),
                any::<i64>(),
                proptest::option::of(-1e12..1e12f64),
                vec(any::<u8>(), 0..300),
                btree_map(".{0,6}", any::<bool>(), 0..4),
            ),
            0..5,
        )
    }

    proptest! {
        #![proptest_config(ProptestConfig { cases: 500, ..ProptestConfig::default() })]

        /// Any value we write has exactly its encoded length, and bytes after it are reported.
        #[test]
        fn the_walk_measures_every_encoded_value(value in sample(), tail in proptest::collection::vec(any::<u8>(), 0..8)) {
            let mut bytes = Vec::new();
            Codec::MessagePack.encode(&value, &mut bytes).unwrap();
            prop_assert_eq!(msgpack_value_len(&bytes), Some(bytes.len()));
            prop_assert_eq!(Codec::MessagePack.decode::<Sample>(&bytes).unwrap(), value);
            let encoded = bytes.len();
            bytes.extend_from_slice(&tail);
            prop_assert_eq!(msgpack_value_len(&bytes), Some(encoded));
            prop_assert_eq!(Codec::MessagePack.decode::<Sample>(&bytes).is_err(), !tail.is_empty());
            prop_assert!(msgpack_value_len(&bytes[..encoded - 1]).is_none());
        }

        /// Arbitrary bytes: never a panic, never a length past the end.
        #[test]
        fn the_walk_never_overruns(bytes in proptest::collection::vec(any::<u8>(), 0..256)) {
            if let Some(len) = msgpack_value_len(&bytes) {
                prop_assert!(len <= bytes.len());
            }
            let _ = Codec::MessagePack.decode::<Sample>(&bytes);
        }
    }

    #[test]
    fn huge_claimed_lengths_end_at_the_end() {
        // array32 claiming 4 billion items, map32 likewise, str32 of 4 GB: all cut short.
        for bytes in [
            &[0xdd, 0xff, 0xff, 0xff, 0xff, 0x01][..],
            &[0xdf, 0xff, 0xff, 0xff, 0xff],
            &[0xdb, 0xff, 0xff, 0xff, 0xff, 0x61],
        ] {
            assert_eq!(msgpack_value_len(bytes), None);
        }
    }
}
