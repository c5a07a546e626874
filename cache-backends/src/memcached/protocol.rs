//! The memcached meta protocol (memcached >= 1.6): requests written into a buffer, replies parsed from one.
//!
//! Pure functions over bytes, no I/O, so the parser is tested against arbitrary and mutated input
//! (`tests` below): whatever the server — or something that is not a memcached server — sends, the parser
//! answers a reply, "need more bytes" or a [`ProtocolError`], and never panics or reads past what it was given.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use bytes::{Buf, Bytes, BytesMut};

/// A reply line longer than this is not memcached talking: the connection is dropped.
pub(crate) const MAX_LINE: usize = 8 * 1024;
/// Values larger than this are refused (memcached's own item limit is 1 MiB by default, at most 1 GiB).
pub(crate) const MAX_VALUE: usize = 1 << 30;
/// memcached reads an expiry above 30 days as an absolute Unix time.
const RELATIVE_TTL_LIMIT: u64 = 30 * 24 * 3600;

/// Why bytes from the server are not a meta-protocol reply.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub(crate) enum ProtocolError {
    #[error("reply line longer than {MAX_LINE} bytes")]
    LineTooLong,
    #[error("malformed reply: {0}")]
    Malformed(String),
}

/// Flags the server returned with a reply (the ones this client asks for).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(crate) struct ReplyFlags {
    /// `c`: the item's CAS value.
    pub(crate) cas: Option<u64>,
    /// `t`: remaining TTL in seconds, -1 for none.
    pub(crate) ttl: Option<i64>,
    /// `O`: the opaque token the request carried.
    pub(crate) opaque: Option<u32>,
}

/// One reply.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Reply {
    /// `VA <size> <flags>` and the data block.
    Value(Bytes, ReplyFlags),
    /// `HD <flags>`: success without a value.
    Done(ReplyFlags),
    /// `EN`: miss.
    Miss,
    /// `NS`: not stored (add on an existing key, replace on a missing one).
    NotStored,
    /// `EX`: the CAS value did not match.
    Exists,
    /// `NF`: not found.
    NotFound,
    /// `MN`: the end of a pipeline.
    Noop,
    /// `VERSION <text>`.
    Version(String),
    /// `ERROR`, `CLIENT_ERROR …` or `SERVER_ERROR …`.
    Error(String),
}

/// Parses one reply from the front of `buf`, removing it. `Ok(None)`: the reply is not complete yet.
pub(crate) fn parse_reply(buf: &mut BytesMut) -> Result<Option<Reply>, ProtocolError> {
    let Some(line_end) = buf.windows(2).position(|w| w == b"\r\n") else {
        if buf.len() > MAX_LINE {
            return Err(ProtocolError::LineTooLong);
        }
        return Ok(None);
    };
    if line_end > MAX_LINE {
        return Err(ProtocolError::LineTooLong);
    }
    let line = std::str::from_utf8(&buf[..line_end])
        .map_err(|_| ProtocolError::Malformed("reply line is not UTF-8".into()))?;
    let mut words = line.split(' ');
    let code = words.next().unwrap_or_default();
    let reply = match code {
        "VA" => {
            let size: usize = words
                .next()
                .and_then(|s| s.parse().ok())
                .filter(|s| *s <= MAX_VALUE)
                .ok_or_else(|| malformed(line))?;
            let flags = parse_flags(words, line)?;
            let total = line_end + 2 + size + 2;
            if buf.len() < total {
                return Ok(None);
            }
            if &buf[total - 2..total] != b"\r\n" {
                return Err(ProtocolError::Malformed(
                    "value block not followed by CRLF".into(),
                ));
            }
            buf.advance(line_end + 2);
            let data = buf.split_to(size).freeze();
            buf.advance(2);
            return Ok(Some(Reply::Value(data, flags)));
        }
        "HD" => Reply::Done(parse_flags(words, line)?),
        "EN" => Reply::Miss,
        "NS" => Reply::NotStored,
        "EX" => Reply::Exists,
        "NF" => Reply::NotFound,
        "MN" => Reply::Noop,
        "VERSION" => Reply::Version(line["VERSION".len()..].trim().to_owned()),
        "ERROR" | "CLIENT_ERROR" | "SERVER_ERROR" => Reply::Error(line.to_owned()),
        _ => return Err(malformed(line)),
    };
    buf.advance(line_end + 2);
    Ok(Some(reply))
}

fn malformed(line: &str) -> ProtocolError {
    let shown: String = line.chars().take(80).collect();
    ProtocolError::Malformed(shown)
}

fn parse_flags<'a>(
    words: impl Iterator<Item = &'a str>,
    line: &str,
) -> Result<ReplyFlags, ProtocolError> {
    let mut flags = ReplyFlags::default();
    for word in words.filter(|w| !w.is_empty()) {
        let mut chars = word.chars();
        let flag = chars.next();
        let token = chars.as_str();
        match flag {
            Some('c') => flags.cas = Some(token.parse().map_err(|_| malformed(line))?),
            Some('t') => flags.ttl = Some(token.parse().map_err(|_| malformed(line))?),
            Some('O') => flags.opaque = Some(token.parse().map_err(|_| malformed(line))?),
            // Flags this client did not ask for (k, f, s, W, X, Z, …) are ignored.
            _ => {}
        }
    }
    Ok(flags)
}

/// The `T` token for a TTL: whole seconds rounded up, plus one, and a Unix time for TTLs over 30 days, which
/// memcached would otherwise read as one.
///
/// The extra second: memcached's clock ticks in whole seconds, and an item expires when the tick reaches its
/// expiry, so `T1` written just before a tick lives a few milliseconds. A lock, a rate-limit window or a circuit
/// state must never end before its TTL (two lock holders at once); living up to two seconds longer is harmless —
/// cached values carry their own expiry in the envelope, and reads drop them on time.
pub(crate) fn ttl_token(ttl: Option<Duration>) -> u64 {
    let Some(ttl) = ttl else { return 0 };
    let secs = ttl.as_secs() + u64::from(ttl.subsec_nanos() > 0) + 1;
    if secs <= RELATIVE_TTL_LIMIT {
        return secs;
    }
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    now.saturating_add(secs)
}

/// Writes requests into a buffer. Keys must already be valid memcached keys (the backend's key mangler sees to
/// that): no whitespace or control bytes, at most 250 bytes.
pub(crate) struct Requests<'b>(pub(crate) &'b mut BytesMut);

impl Requests<'_> {
    fn line(&mut self, parts: &[&[u8]]) {
        for (i, part) in parts.iter().enumerate() {
            if i > 0 {
                self.0.extend_from_slice(b" ");
            }
            self.0.extend_from_slice(part);
        }
        self.0.extend_from_slice(b"\r\n");
    }

    /// `mg <key> <flags>`; flags as in the protocol (`v`, `c`, `t`, `q`, `O<n>`, `T<ttl>`).
    pub(crate) fn meta_get(&mut self, key: &str, flags: &str) {
        self.line(&[b"mg", key.as_bytes(), flags.as_bytes()]);
    }

    /// `ms <key> <len> <flags>` and the data block.
    pub(crate) fn meta_set(&mut self, key: &str, value: &[u8], flags: &str) {
        let len = value.len().to_string();
        self.line(&[b"ms", key.as_bytes(), len.as_bytes(), flags.as_bytes()]);
        self.0.extend_from_slice(value);
        self.0.extend_from_slice(b"\r\n");
    }

    /// `md <key> <flags>`.
    pub(crate) fn meta_delete(&mut self, key: &str, flags: &str) {
        self.line(&[b"md", key.as_bytes(), flags.as_bytes()]);
    }

    /// `ma <key> <flags>`.
    pub(crate) fn meta_arithmetic(&mut self, key: &str, flags: &str) {
        self.line(&[b"ma", key.as_bytes(), flags.as_bytes()]);
    }

    /// `mn`: ends a pipeline of quiet requests.
    pub(crate) fn noop(&mut self) {
        self.line(&[b"mn"]);
    }

    /// `version`.
    pub(crate) fn version(&mut self) {
        self.line(&[b"version"]);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn parse_all(input: &[u8], chunk: usize) -> Result<Vec<Reply>, ProtocolError> {
        let mut buf = BytesMut::new();
        let mut out = Vec::new();
        for piece in input.chunks(chunk.max(1)) {
            buf.extend_from_slice(piece);
            while let Some(reply) = parse_reply(&mut buf)? {
                out.push(reply);
            }
        }
        Ok(out)
    }

    const SAMPLE: &[u8] =
        b"VA 5 c42 t-1 O7\r\nhello\r\nHD c9\r\nEN\r\nNS\r\nEX\r\nNF\r\nMN\r\nVERSION 1.6.18\r\n\
VA 0\r\n\r\nCLIENT_ERROR bad data chunk\r\nHD t120 k\r\n";

    #[test]
    fn parses_every_reply_kind() {
        let replies = parse_all(SAMPLE, SAMPLE.len()).unwrap();
        assert_eq!(
            replies,
            vec![
                Reply::Value(
                    Bytes::from_static(b"hello"),
                    ReplyFlags {
                        cas: Some(42),
                        ttl: Some(-1),
                        opaque: Some(7)
                    }
                ),
                Reply::Done(ReplyFlags {
                    cas: Some(9),
                    ..Default::default()
                }),
                Reply::Miss,
                Reply::NotStored,
                Reply::Exists,
                Reply::NotFound,
                Reply::Noop,
                Reply::Version("1.6.18".into()),
                Reply::Value(Bytes::new(), ReplyFlags::default()),
                Reply::Error("CLIENT_ERROR bad data chunk".into()),
                Reply::Done(ReplyFlags {
                    ttl: Some(120),
                    ..Default::default()
                }),
            ]
        );
    }

    #[test]
    fn a_value_holding_crlf_is_read_by_length() {
        let replies = parse_all(b"VA 4\r\n\r\n\r\n\r\nEN\r\n", 3).unwrap();
        assert_eq!(
            replies[0],
            Reply::Value(Bytes::from_static(b"\r\n\r\n"), ReplyFlags::default())
        );
        assert_eq!(replies[1], Reply::Miss);
    }

    #[test]
    fn bad_input_is_an_error_not_a_panic() {
        for bad in [
            &b"VA x\r\n"[..],
            b"VA 3\r\nabcXY",
            b"WHAT\r\n",
            b"HD cX\r\n",
            b"VA 99999999999999999999\r\n",
            b"\xff\xfe\r\n",
        ] {
            assert!(parse_all(bad, bad.len()).is_err(), "{bad:?}");
        }
        assert_eq!(
            parse_all(&[b'a'; MAX_LINE + 1], 100),
            Err(ProtocolError::LineTooLong)
        );
    }

    #[test]
    fn ttl_tokens() {
        assert_eq!(ttl_token(None), 0);
        // Regression: `T1` for a 1 ms TTL expired at memcached's next clock tick, maybe a few ms later, so a lock
        // or rate-limit window could end long before its TTL. One extra second makes the shortest life the TTL.
        assert_eq!(ttl_token(Some(Duration::from_millis(1))), 2);
        assert_eq!(ttl_token(Some(Duration::from_millis(1500))), 3);
        assert_eq!(
            ttl_token(Some(Duration::from_secs(RELATIVE_TTL_LIMIT - 1))),
            RELATIVE_TTL_LIMIT
        );
        let far = ttl_token(Some(Duration::from_secs(RELATIVE_TTL_LIMIT)));
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap()
            .as_secs();
        assert!(far > now + RELATIVE_TTL_LIMIT && far <= now + RELATIVE_TTL_LIMIT + 5);
    }

    proptest! {
        #![proptest_config(ProptestConfig { cases: 4_000, ..ProptestConfig::default() })]

        /// Arbitrary bytes, in arbitrary pieces: a reply, "more", or an error — never a panic.
        #[test]
        fn fuzz_arbitrary_bytes(input in proptest::collection::vec(any::<u8>(), 0..600), chunk in 1usize..64) {
            let _ = parse_all(&input, chunk);
        }

        /// Valid replies with bytes flipped, cut or inserted: never a panic; and the untouched stream parses to
        /// the same replies however it is split.
        #[test]
        fn fuzz_mutated_replies(at in 0usize..SAMPLE.len(), byte in any::<u8>(), cut in 0usize..SAMPLE.len(), chunk in 1usize..40) {
            let mut flipped = SAMPLE.to_vec();
            flipped[at] = byte;
            let _ = parse_all(&flipped, chunk);
            let _ = parse_all(&SAMPLE[..cut], chunk);
            let mut inserted = SAMPLE.to_vec();
            inserted.insert(at, byte);
            let _ = parse_all(&inserted, chunk);
            prop_assert_eq!(parse_all(SAMPLE, chunk).unwrap(), parse_all(SAMPLE, SAMPLE.len()).unwrap());
        }

        /// Any value, framed as the server frames it, comes back byte for byte.
        #[test]
        fn fuzz_values_round_trip(value in proptest::collection::vec(any::<u8>(), 0..300), cas in any::<u64>(), chunk in 1usize..50) {
            let mut wire = format!("VA {} c{cas}\r\n", value.len()).into_bytes();
            wire.extend_from_slice(&value);
            wire.extend_from_slice(b"\r\nMN\r\n");
            let replies = parse_all(&wire, chunk).unwrap();
            prop_assert_eq!(replies, vec![
                Reply::Value(Bytes::from(value), ReplyFlags { cas: Some(cas), ..Default::default() }),
                Reply::Noop,
            ]);
        }
    }
}
