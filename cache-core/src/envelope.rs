//! The header stored in front of every value.
//!
//! Layout (little endian): `magic 0xCA`, `version 1`, `codec id`, `flags`, `created_at` (u64 ms since the Unix
//! epoch), then `expires_at` (u64 ms) if flag `EXPIRES`, then `refresh_at` (u64 ms) if flag `REFRESH`, then the
//! payload. Wall-clock times (not `Instant`) so several processes sharing Redis agree on them.
//!
//! Anything that is not a well-formed envelope of this version — bytes another client wrote, a truncated value, a
//! future version — decodes to an error, which strategies turn into a miss.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use crate::codec::Codec;

const MAGIC: u8 = 0xCA;
const VERSION: u8 = 1;
const FLAG_EXPIRES: u8 = 0b01;
const FLAG_REFRESH: u8 = 0b10;
const KNOWN_FLAGS: u8 = FLAG_EXPIRES | FLAG_REFRESH;
const FIXED_LEN: usize = 4 + 8;

/// Metadata of a stored value, read from its envelope.
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
}

/// Why stored bytes are not a value of ours.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
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

    /// Appends the header to `out`; the payload follows it.
    pub(crate) fn write(&self, out: &mut Vec<u8>) {
        let mut flags = 0;
        if self.expires_at_ms.is_some() {
            flags |= FLAG_EXPIRES;
        }
        if self.refresh_at_ms.is_some() {
            flags |= FLAG_REFRESH;
        }
        out.extend_from_slice(&[MAGIC, VERSION, self.codec.id(), flags]);
        out.extend_from_slice(&self.created_at_ms.to_le_bytes());
        for value in [self.expires_at_ms, self.refresh_at_ms]
            .into_iter()
            .flatten()
        {
            out.extend_from_slice(&value.to_le_bytes());
        }
    }

    /// Splits stored bytes into metadata and payload.
    pub(crate) fn read(bytes: &[u8]) -> Result<(Self, &[u8]), EnvelopeError> {
        if bytes.first().is_some_and(|b| *b != MAGIC) {
            return Err(EnvelopeError::Foreign);
        }
        let Some((head, mut rest)) = bytes.split_first_chunk::<FIXED_LEN>() else {
            return Err(EnvelopeError::Truncated);
        };
        let [_, version, codec, flags, created @ ..] = *head;
        if version != VERSION {
            return Err(EnvelopeError::Version(version));
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
        };
        Ok((meta, rest))
    }

    /// Whether the value has passed its own expiry (a backend normally drops it first; this guards backends
    /// whose clocks or TTL resolution differ).
    pub(crate) fn is_expired(&self) -> bool {
        self.expires_at_ms.is_some_and(|at| now_ms() >= at)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_with_every_flag() {
        let meta = EnvelopeMeta::new(Codec::Json, Some(Duration::from_secs(10)))
            .with_refresh_after(Duration::from_secs(3));
        let mut out = Vec::new();
        meta.write(&mut out);
        out.extend_from_slice(b"payload");
        let (read, payload) = EnvelopeMeta::read(&out).unwrap();
        assert_eq!(read, meta);
        assert_eq!(payload, b"payload");
    }

    #[test]
    fn garbage_is_an_error_not_a_panic() {
        let mut good = Vec::new();
        EnvelopeMeta::new(Codec::MessagePack, Some(Duration::from_secs(1))).write(&mut good);
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
            EnvelopeError::Unknown(77)
        );
    }
}
