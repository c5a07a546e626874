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
                // end is checked after it.
                let mut decoder = rmp_serde::Deserializer::from_read_ref(bytes);
                let value = T::deserialize(&mut decoder).map_err(|e| self.error(e))?;
                if at_end(&mut decoder) {
                    Ok(value)
                } else {
                    Err(self.error("unexpected bytes after the value"))
                }
            }
            Codec::Json => serde_json::from_slice(bytes).map_err(|e| self.error(e)),
        }
    }
}

/// Whether `decoder` has consumed all of its bytes. The decoder gives no access to what is left, so it is asked
/// for one more value with a visitor that accepts none: only a marker that cannot be read because no byte is left
/// comes back as an end-of-input marker error (the visitor never descends into what follows, so no inner read
/// can fail that way). Costs one failed read, where walking the value's markers a second time cost a pass over
/// the whole value.
fn at_end<'de, R: rmp_serde::decode::ReadSlice<'de>>(
    decoder: &mut rmp_serde::Deserializer<R>,
) -> bool {
    struct NoValue;
    impl serde::de::Visitor<'_> for NoValue {
        type Value = ();
        fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
            f.write_str("the end of the input")
        }
    }
    matches!(
        serde::Deserializer::deserialize_any(decoder, NoValue),
        Err(rmp_serde::decode::Error::InvalidMarkerRead(e)) if e.kind() == std::io::ErrorKind::UnexpectedEof
    )
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

        /// Any value we write decodes back; bytes after it are reported; a value cut short is rejected.
        #[test]
        fn one_value_and_nothing_else_decodes(value in sample(), tail in proptest::collection::vec(any::<u8>(), 0..8)) {
            let mut bytes = Vec::new();
            Codec::MessagePack.encode(&value, &mut bytes).unwrap();
            prop_assert_eq!(Codec::MessagePack.decode::<Sample>(&bytes).unwrap(), value);
            let encoded = bytes.len();
            prop_assert!(Codec::MessagePack.decode::<Sample>(&bytes[..encoded - 1]).is_err());
            bytes.extend_from_slice(&tail);
            prop_assert_eq!(Codec::MessagePack.decode::<Sample>(&bytes).is_err(), !tail.is_empty());
        }

        /// Arbitrary bytes: never a panic.
        #[test]
        fn arbitrary_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..256)) {
            let _ = Codec::MessagePack.decode::<Sample>(&bytes);
        }
    }

    /// Trailing bytes that are themselves a cut value (an array missing its items, a length field cut short, a
    /// string missing its bytes, the reserved marker) are still trailing bytes, not the end.
    #[test]
    fn cut_trailing_values_are_reported() {
        let mut value = Vec::new();
        Codec::MessagePack.encode(&7u8, &mut value).unwrap();
        for tail in [
            &[0x91][..],
            &[0xdd, 0xff, 0xff, 0xff, 0xff, 0x01],
            &[0xdc, 0x00],
            &[0xdb, 0xff, 0xff, 0xff, 0xff, 0x61],
            &[0xa3, 0x61],
            &[0xc7, 0x05, 0x01],
            &[0xc1],
            &[0xc0],
        ] {
            let bytes = [value.as_slice(), tail].concat();
            assert!(
                Codec::MessagePack.decode::<u8>(&bytes).is_err(),
                "{tail:x?} after the value was not reported"
            );
        }
        assert_eq!(Codec::MessagePack.decode::<u8>(&value).unwrap(), 7);
    }
}
