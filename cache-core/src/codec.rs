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
                // `rmp_serde::from_slice` stops after one value and ignores what follows; reading through a
                // slice that the decoder advances shows whether anything is left.
                let mut rest = bytes;
                let value = T::deserialize(&mut rmp_serde::Deserializer::new(&mut rest))
                    .map_err(|e| self.error(e))?;
                if !rest.is_empty() {
                    return Err(self.error(format_args!(
                        "{} unexpected bytes after the value",
                        rest.len()
                    )));
                }
                Ok(value)
            }
            Codec::Json => serde_json::from_slice(bytes).map_err(|e| self.error(e)),
        }
    }
}
