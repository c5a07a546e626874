//! The header stored in front of every value.
//!
//! Layout (little endian): `magic 0xCA`, `version 2`, `codec id`, `flags`, `checksum` (u64), `created_at` (u64 ms
//! since the Unix epoch), then `expires_at` (u64 ms) if flag `EXPIRES`, then `refresh_at` (u64 ms) if flag
//! `REFRESH`, then the payload. Wall-clock times (not `Instant`) so several processes sharing Redis agree on them.
//! The payload comes last so a JSON value stays readable with `redis-cli`.
//!
//! The checksum is xxh3-64 over every byte after it, seeded with the four bytes before it, so a flipped bit
//! anywhere (header or payload), a truncation or appended bytes make the value unreadable instead of a wrong
//! answer. It guards against corruption, not against an attacker who can write to the backend: that needs a
//! keyed MAC.
//!
//! Anything that is not a well-formed envelope of this version — bytes another client wrote, a truncated or
//! corrupted value, an older or newer version — decodes to an error, which strategies turn into a miss.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use crate::codec::Codec;

const MAGIC: u8 = 0xCA;
/// Version 1 had no checksum; its values read as misses and are overwritten on the next store.
const VERSION: u8 = 2;
const FLAG_EXPIRES: u8 = 0b01;
const FLAG_REFRESH: u8 = 0b10;
const KNOWN_FLAGS: u8 = FLAG_EXPIRES | FLAG_REFRESH;
/// Magic, version, codec, flags.
const PREAMBLE_LEN: usize = 4;
/// Where the checksum ends: it covers everything from here on.
const CHECKED_FROM: usize = PREAMBLE_LEN + 8;
const FIXED_LEN: usize = CHECKED_FROM + 8;

/// Metadata of a stored value, read from its envelope.
///
/// Built with [`EnvelopeMeta::new`]; the fields are public to read.
///
/// # Example
/// ```
/// use cache_core::{Codec, EnvelopeMeta};
/// use std::time::Duration;
/// let meta = EnvelopeMeta::new(Codec::Json, Some(Duration::from_secs(60)));
/// assert!(meta.remaining_ttl().unwrap() <= Duration::from_secs(60));
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct EnvelopeMeta {
    /// The codec of the payload.
    pub codec: Codec,
    /// When the value was stored, in ms since the Unix epoch.
    pub created_at_ms: u64,
    /// When the value expires, in ms since the Unix epoch.
    pub expires_at_ms: Option<u64>,
    /// When strategies with a refresh deadline (early, soft) should recompute, in ms since the Unix epoch.
    pub refresh_at_ms: Option<u64>,
    /// The checksum read from storage; 0 for metadata of a value not (yet) stored.
    checksum: u64,
}

/// Why stored bytes are not a value of ours.
///
/// ```
/// use cache_core::EnvelopeError;
/// assert_eq!(EnvelopeError::Version(1).to_string(), "unsupported envelope version 1");
/// ```
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum EnvelopeError {
    /// Shorter than the fixed header or than its flags promise.
    #[error("truncated envelope")]
    Truncated,
    /// Not written by this library.
    #[error("not a cache envelope (bad magic byte)")]
    Foreign,
    /// Written by a newer or older, incompatible version.
    #[error("unsupported envelope version {0}")]
    Version(u8),
    /// Unknown codec or flags.
    #[error("unknown codec id {0} or flags")]
    Unknown(u8),
    /// The bytes do not match their checksum: corrupted (or appended to) after they were written.
    #[error("envelope checksum mismatch (corrupted value)")]
    Checksum,
}

pub(crate) fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}

fn add_ms(base: u64, d: Duration) -> u64 {
    base.saturating_add(u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
}

impl EnvelopeMeta {
    /// Metadata for a value stored now that lives `ttl` (or forever).
    ///
    /// ```
    /// let meta = cache_core::EnvelopeMeta::new(cache_core::Codec::MessagePack, None);
    /// assert_eq!(meta.expires_at_ms, None);
    /// ```
    pub fn new(codec: Codec, ttl: Option<Duration>) -> Self {
        let now = now_ms();
        Self {
            codec,
            created_at_ms: now,
            expires_at_ms: ttl.map(|t| add_ms(now, t)),
            refresh_at_ms: None,
            checksum: 0,
        }
    }

    /// Sets the refresh deadline to `after` from the creation time.
    ///
    /// ```
    /// use std::time::Duration;
    /// let meta = cache_core::EnvelopeMeta::new(cache_core::Codec::Json, None)
    ///     .with_refresh_after(Duration::from_secs(5));
    /// assert!(!meta.needs_refresh());
    /// ```
    pub fn with_refresh_after(mut self, after: Duration) -> Self {
        self.refresh_at_ms = Some(add_ms(self.created_at_ms, after));
        self
    }

    /// How long ago the value was stored (zero if the clock went backwards).
    ///
    /// ```
    /// let meta = cache_core::EnvelopeMeta::new(cache_core::Codec::Json, None);
    /// assert!(meta.age() < std::time::Duration::from_secs(1));
    /// ```
    pub fn age(&self) -> Duration {
        Duration::from_millis(now_ms().saturating_sub(self.created_at_ms))
    }

    /// Time left before the value expires; `None` for a value without expiry.
    ///
    /// ```
    /// let meta = cache_core::EnvelopeMeta::new(cache_core::Codec::Json, None);
    /// assert_eq!(meta.remaining_ttl(), None);
    /// ```
    pub fn remaining_ttl(&self) -> Option<Duration> {
        self.expires_at_ms
            .map(|at| Duration::from_millis(at.saturating_sub(now_ms())))
    }

    /// Whether the refresh deadline has passed.
    ///
    /// ```
    /// let meta = cache_core::EnvelopeMeta::new(cache_core::Codec::Json, None)
    ///     .with_refresh_after(std::time::Duration::ZERO);
    /// assert!(meta.needs_refresh());
    /// ```
    pub fn needs_refresh(&self) -> bool {
        self.refresh_at_ms.is_some_and(|at| now_ms() >= at)
    }

    /// Identifies the exact stored bytes this metadata was read from (their checksum, which covers the creation
    /// time and the payload): two reads with the same fingerprint read the same entry, byte for byte. 0 for
    /// metadata that was not read from storage.
    ///
    /// ```
    /// let meta = cache_core::EnvelopeMeta::new(cache_core::Codec::Json, None);
    /// assert_eq!(meta.fingerprint(), 0);
    /// ```
    pub fn fingerprint(&self) -> u64 {
        self.checksum
    }

    /// Appends a complete envelope to `out` (which must be empty): this header, then what `payload` appends,
    /// then seals both with the checksum.
    pub(crate) fn encode<E>(
        &self,
        out: &mut Vec<u8>,
        payload: impl FnOnce(&mut Vec<u8>) -> Result<(), E>,
    ) -> Result<(), E> {
        debug_assert!(out.is_empty(), "the checksum covers the whole buffer");
        let mut flags = 0;
        if self.expires_at_ms.is_some() {
            flags |= FLAG_EXPIRES;
        }
        if self.refresh_at_ms.is_some() {
            flags |= FLAG_REFRESH;
        }
        out.extend_from_slice(&[MAGIC, VERSION, self.codec.id(), flags]);
        out.extend_from_slice(&[0; 8]);
        out.extend_from_slice(&self.created_at_ms.to_le_bytes());
        for value in [self.expires_at_ms, self.refresh_at_ms]
            .into_iter()
            .flatten()
        {
            out.extend_from_slice(&value.to_le_bytes());
        }
        payload(out)?;
        let sum = checksum(out);
        out[PREAMBLE_LEN..CHECKED_FROM].copy_from_slice(&sum.to_le_bytes());
        Ok(())
    }

    /// Splits stored bytes into metadata and payload.
    pub(crate) fn read(bytes: &[u8]) -> Result<(Self, &[u8]), EnvelopeError> {
        if bytes.first().is_some_and(|b| *b != MAGIC) {
            return Err(EnvelopeError::Foreign);
        }
        // Before the length check: an older version's header may be shorter, and should say so.
        if let Some(&version) = bytes.get(1).filter(|v| **v != VERSION) {
            return Err(EnvelopeError::Version(version));
        }
        let Some((head, mut rest)) = bytes.split_first_chunk::<FIXED_LEN>() else {
            return Err(EnvelopeError::Truncated);
        };
        let [_, _, codec, flags, c0, c1, c2, c3, c4, c5, c6, c7, created @ ..] = *head;
        let stored_sum = u64::from_le_bytes([c0, c1, c2, c3, c4, c5, c6, c7]);
        if checksum(bytes) != stored_sum {
            return Err(EnvelopeError::Checksum);
        }
        let codec = Codec::from_id(codec).ok_or(EnvelopeError::Unknown(codec))?;
        if flags & !KNOWN_FLAGS != 0 {
            return Err(EnvelopeError::Unknown(flags));
        }
        let mut take = |present: bool| -> Result<Option<u64>, EnvelopeError> {
            if !present {
                return Ok(None);
            }
            let (value, tail) = rest
                .split_first_chunk::<8>()
                .ok_or(EnvelopeError::Truncated)?;
            rest = tail;
            Ok(Some(u64::from_le_bytes(*value)))
        };
        let expires_at_ms = take(flags & FLAG_EXPIRES != 0)?;
        let refresh_at_ms = take(flags & FLAG_REFRESH != 0)?;
        let meta = Self {
            codec,
            created_at_ms: u64::from_le_bytes(created),
            expires_at_ms,
            refresh_at_ms,
            checksum: stored_sum,
        };
        Ok((meta, rest))
    }

    /// Whether the value has passed its own expiry (a backend normally drops it first; this guards backends
    /// whose clocks or TTL resolution differ).
    pub(crate) fn is_expired(&self) -> bool {
        self.expires_at_ms.is_some_and(|at| now_ms() >= at)
    }
}

/// xxh3-64 of everything after the checksum field, seeded with the preamble (magic, version, codec, flags) so
/// those bytes are covered too. `bytes` is at least [`FIXED_LEN`] long.
fn checksum(bytes: &[u8]) -> u64 {
    let mut preamble = [0; PREAMBLE_LEN];
    preamble.copy_from_slice(&bytes[..PREAMBLE_LEN]);
    xxhash_rust::xxh3::xxh3_64_with_seed(
        &bytes[CHECKED_FROM..],
        u64::from(u32::from_le_bytes(preamble)),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sealed(meta: &EnvelopeMeta, payload: &[u8]) -> Vec<u8> {
        let mut out = Vec::new();
        meta.encode(&mut out, |out| {
            out.extend_from_slice(payload);
            Ok::<(), ()>(())
        })
        .unwrap();
        out
    }

    #[test]
    fn round_trip_with_every_flag() {
        let meta = EnvelopeMeta::new(Codec::Json, Some(Duration::from_secs(10)))
            .with_refresh_after(Duration::from_secs(3));
        let out = sealed(&meta, b"payload");
        let (read, payload) = EnvelopeMeta::read(&out).unwrap();
        assert_eq!(
            read,
            EnvelopeMeta {
                checksum: read.checksum,
                ..meta
            }
        );
        assert_ne!(read.fingerprint(), 0);
        assert_eq!(payload, b"payload");
    }

    #[test]
    fn garbage_is_an_error_not_a_panic() {
        let good = sealed(
            &EnvelopeMeta::new(Codec::MessagePack, Some(Duration::from_secs(1))),
            b"",
        );
        for cut in 0..good.len() {
            let r = EnvelopeMeta::read(&good[..cut]);
            assert!(r.is_err(), "prefix of {cut} bytes accepted");
        }
        assert_eq!(
            EnvelopeMeta::read(b"hello").unwrap_err(),
            EnvelopeError::Foreign
        );
        let mut future = good.clone();
        future[1] = 9;
        assert_eq!(
            EnvelopeMeta::read(&future).unwrap_err(),
            EnvelopeError::Version(9)
        );
        let mut codec = good.clone();
        codec[2] = 77;
        assert_eq!(
            EnvelopeMeta::read(&codec).unwrap_err(),
            EnvelopeError::Checksum,
            "a changed byte is corruption first"
        );
        // A well-sealed envelope with an unknown codec (a future one).
        let sum = checksum(&codec);
        codec[PREAMBLE_LEN..CHECKED_FROM].copy_from_slice(&sum.to_le_bytes());
        assert_eq!(
            EnvelopeMeta::read(&codec).unwrap_err(),
            EnvelopeError::Unknown(77)
        );
    }

    /// Regression: values with flipped bits that still decoded were served (issue: corrupt but decodable
    /// values). Every single-bit flip, and every multi-bit flip tried, is now rejected.
    #[test]
    fn every_bit_flip_and_any_appended_byte_is_rejected() {
        let meta = EnvelopeMeta::new(Codec::Json, Some(Duration::from_secs(60)))
            .with_refresh_after(Duration::from_secs(5));
        let good = sealed(&meta, br#"{"id":1,"name":"alice"}"#);
        assert!(EnvelopeMeta::read(&good).is_ok());
        for bit in 0..good.len() * 8 {
            let mut bad = good.clone();
            bad[bit / 8] ^= 1 << (bit % 8);
            assert!(
                EnvelopeMeta::read(&bad).is_err(),
                "flip of bit {bit} accepted"
            );
        }
        let mut state = 0x9E37_79B9_7F4A_7C15u64;
        for flips in 2..=8 {
            for _ in 0..2_000 {
                let mut bad = good.clone();
                let mut flipped = std::collections::HashSet::new();
                while flipped.len() < flips {
                    state ^= state << 13;
                    state ^= state >> 7;
                    state ^= state << 17;
                    flipped.insert(state as usize % (good.len() * 8));
                }
                for bit in flipped {
                    bad[bit / 8] ^= 1 << (bit % 8);
                }
                assert!(EnvelopeMeta::read(&bad).is_err(), "{flips} flips accepted");
            }
        }
        for tail in [&b"\0"[..], b"garbage", b"}"] {
            let mut longer = good.clone();
            longer.extend_from_slice(tail);
            assert_eq!(
                EnvelopeMeta::read(&longer).unwrap_err(),
                EnvelopeError::Checksum
            );
        }
    }

    #[test]
    fn version_one_values_are_unreadable() {
        // A version-1 header (no checksum) in front of a JSON payload, as the previous release wrote it.
        let mut old = vec![MAGIC, 1, Codec::Json.id(), 0];
        old.extend_from_slice(&now_ms().to_le_bytes());
        old.extend_from_slice(b"1");
        assert_eq!(
            EnvelopeMeta::read(&old).unwrap_err(),
            EnvelopeError::Version(1)
        );
    }
}
