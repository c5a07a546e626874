//! Key mangling: a prefix, and keys a backend cannot store replaced by a readable head and a hash.

use std::borrow::Cow;
use std::fmt::Write as _;

use sha2::{Digest, Sha256};

use super::wrap::BackendLayer;
use crate::backend::Capabilities;
use crate::glob::GlobMatcher;

/// Separates a hashed key's readable head from its hash. A key that contains it is always hashed, so a key
/// that passes through unchanged never looks like a hashed one.
const HASH_MARK: &str = "~#";
const HASH_MARK_BYTES: &[u8; 2] = b"~#";
/// Hex digits of the hash: SHA-256 truncated to 128 bits.
const HASH_HEX: usize = 32;

/// Rewrites keys on their way to the backend: prepends a prefix, and replaces keys that are too long or hold
/// bytes the backend forbids by a readable head plus a SHA-256 hash (memcached: at most 250 bytes, no
/// whitespace or control characters; dogpile.cache's `sha1_mangle_key` does the same).
///
/// Hashed keys cannot be found by a glob pattern, so a mangler that may hash removes
/// [`Capabilities::SCAN`] from the backend; with only a prefix, scans and pattern deletes work and see keys
/// without it. `clear` deletes only the prefix's keys.
///
/// ```
/// use cache_core::layer::KeyMangler;
/// let mangler = KeyMangler::new().prefix("app:").hash_over(40);
/// assert_eq!(mangler.key_for("user:1"), "app:user:1");
/// let long = mangler.key_for(&"x".repeat(100));
/// assert!(long.len() <= 40 && long.starts_with("app:x") && long.contains("~#"));
/// ```
#[derive(Debug, Clone, Default)]
pub struct KeyMangler {
    prefix: String,
    max_len: Option<usize>,
    hash_unsafe: bool,
}

impl KeyMangler {
    /// A mangler that changes nothing until configured.
    ///
    /// ```
    /// assert_eq!(cache_core::layer::KeyMangler::new().key_for("k"), "k");
    /// ```
    pub fn new() -> Self {
        Self::default()
    }

    /// What memcached needs: keys of at most 250 bytes without whitespace or control characters.
    ///
    /// ```
    /// let mangler = cache_core::layer::KeyMangler::memcached();
    /// assert!(!mangler.key_for("a key with spaces").contains(' '));
    /// ```
    pub fn memcached() -> Self {
        Self::new().hash_over(250).hash_unsafe_bytes(true)
    }

    /// Prepends `prefix` to every key. End it with a separator (`app:`): a prefix is also what `clear`
    /// deletes, and `app` would take `apple:…` with it.
    ///
    /// ```
    /// assert_eq!(cache_core::layer::KeyMangler::new().prefix("app:").key_for("k"), "app:k");
    /// ```
    pub fn prefix(mut self, prefix: impl Into<String>) -> Self {
        self.prefix = prefix.into();
        self
    }

    /// Hashes keys whose full form (prefix included) would be longer than `max_len` bytes. At least
    /// `prefix + 34` bytes are kept, enough for the hash.
    ///
    /// ```
    /// let mangler = cache_core::layer::KeyMangler::new().hash_over(64);
    /// assert_eq!(mangler.key_for(&"k".repeat(300)).len(), 64);
    /// ```
    pub fn hash_over(mut self, max_len: usize) -> Self {
        self.max_len = Some(max_len);
        self
    }

    /// Hashes keys holding whitespace, control characters or non-ASCII bytes (memcached's text protocol
    /// forbids the first two).
    ///
    /// ```
    /// let mangler = cache_core::layer::KeyMangler::new().hash_unsafe_bytes(true);
    /// assert!(mangler.key_for("a b").starts_with("a~#"));
    /// ```
    pub fn hash_unsafe_bytes(mut self, on: bool) -> Self {
        self.hash_unsafe = on;
        self
    }

    fn may_hash(&self) -> bool {
        self.max_len.is_some() || self.hash_unsafe
    }

    /// Whether `key` holds a byte the backend forbids or our hash mark (a key that looks hashed must not
    /// collide with one that is). One pass without early exit: keys are short, and a branch-free loop over all
    /// bytes is cheaper than two searches (this runs on every call).
    fn needs_hash(&self, key: &str) -> bool {
        let bytes = key.as_bytes();
        let [mark_first, mark_second] = *HASH_MARK_BYTES;
        // Slices zipped and folded without early exit compile to vector code.
        let forbidden = self.hash_unsafe
            && bytes
                .iter()
                // not in 0x21..=0x7e: space, control or non-ASCII
                .fold(false, |found, &b| found | (b.wrapping_sub(0x21) >= 0x5e));
        let mark = || {
            let next = bytes.get(1..).unwrap_or_default();
            bytes.iter().zip(next).fold(false, |found, (&b, &after)| {
                found | ((b == mark_first) & (after == mark_second))
            })
        };
        forbidden || mark()
    }

    fn unsafe_byte(&self, b: u8) -> bool {
        self.hash_unsafe && (b <= b' ' || b >= 0x7f)
    }

    /// The key the backend stores for `key`.
    ///
    /// ```
    /// let mangler = cache_core::layer::KeyMangler::new().prefix("p:").hash_over(50);
    /// assert_ne!(mangler.key_for(&"a".repeat(60)), mangler.key_for(&"a".repeat(61)));
    /// ```
    pub fn key_for(&self, key: &str) -> String {
        self.map(key).into_owned()
    }

    fn map<'k>(&self, key: &'k str) -> Cow<'k, str> {
        let too_long = self
            .max_len
            .is_some_and(|max| self.prefix.len() + key.len() > max);
        let hash = self.may_hash() && (too_long || self.needs_hash(key));
        if !hash {
            if self.prefix.is_empty() {
                return Cow::Borrowed(key);
            }
            return Cow::Owned(format!("{}{key}", self.prefix));
        }
        let room = self.max_len.map_or(usize::MAX, |max| {
            max.saturating_sub(self.prefix.len() + HASH_MARK.len() + HASH_HEX)
        });
        // The readable head: the key up to its first unsafe byte or hash mark, cut at a character boundary.
        let mut head_end = key
            .bytes()
            .position(|b| self.unsafe_byte(b))
            .unwrap_or(key.len())
            .min(key.find(HASH_MARK).unwrap_or(key.len()))
            .min(room);
        while !key.is_char_boundary(head_end) {
            head_end -= 1;
        }
        let mut out =
            String::with_capacity(self.prefix.len() + head_end + HASH_MARK.len() + HASH_HEX);
        out.push_str(&self.prefix);
        out.push_str(&key[..head_end]);
        out.push_str(HASH_MARK);
        for byte in &Sha256::digest(key.as_bytes())[..HASH_HEX / 2] {
            let _ = write!(out, "{byte:02x}");
        }
        Cow::Owned(out)
    }

    fn escaped_prefix(&self) -> String {
        GlobMatcher::escape(&self.prefix)
    }
}

impl BackendLayer for KeyMangler {
    fn key<'k>(&self, key: &'k str) -> Cow<'k, str> {
        self.map(key)
    }

    fn pattern<'p>(&self, pattern: &'p str) -> Cow<'p, str> {
        if self.prefix.is_empty() {
            return Cow::Borrowed(pattern);
        }
        Cow::Owned(format!("{}{pattern}", self.escaped_prefix()))
    }

    fn unkey(&self, key: String) -> Option<String> {
        key.strip_prefix(&self.prefix).map(str::to_owned)
    }

    fn owned_keys(&self) -> Option<Cow<'_, str>> {
        (!self.prefix.is_empty()).then(|| Cow::Owned(format!("{}*", self.escaped_prefix())))
    }

    fn capabilities(&self, inner: Capabilities) -> Capabilities {
        if self.may_hash() {
            inner - Capabilities::SCAN
        } else {
            inner
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hashed_keys_are_bounded_readable_and_never_collide_with_plain_ones() {
        let m = KeyMangler::new()
            .prefix("app:")
            .hash_over(60)
            .hash_unsafe_bytes(true);
        assert_eq!(m.key_for("user:1"), "app:user:1");
        let long = "user:".to_owned() + &"é".repeat(100);
        let mapped = m.key_for(&long);
        assert!(mapped.len() <= 60, "{mapped}");
        assert!(
            mapped.starts_with("app:user:~#"),
            "the head stops at the first unsafe byte: {mapped}"
        );
        assert!(m.key_for("a b").bytes().all(|b| b > b' ' && b < 0x7f));
        // A plain key that looks like a hashed one is hashed too, so the two never meet.
        let hashed = m.key_for("a b");
        let lookalike = hashed.strip_prefix("app:").unwrap();
        assert_ne!(m.key_for(lookalike), hashed);
        assert_ne!(m.key_for(&"a".repeat(100)), m.key_for(&"a".repeat(101)));
        assert_eq!(
            KeyMangler::memcached().key_for(&"k".repeat(1000)).len(),
            250
        );
    }

    #[test]
    fn hashing_removes_scan_and_a_prefix_keeps_it() {
        let all = Capabilities::all();
        assert!(!KeyMangler::memcached()
            .capabilities(all)
            .contains(Capabilities::SCAN));
        assert_eq!(KeyMangler::new().prefix("a:").capabilities(all), all);
        let m = KeyMangler::new().prefix("a*:");
        assert_eq!(m.pattern("user:*"), "a\\*:user:*");
        assert_eq!(m.unkey("a*:user:1".into()).as_deref(), Some("user:1"));
        assert_eq!(m.unkey("b:user:1".into()), None);
    }

    proptest::proptest! {
        /// The one-pass check agrees with its definition: a forbidden byte (space, control, non-ASCII) when
        /// unsafe bytes are hashed, or the hash mark anywhere.
        #[test]
        fn the_one_pass_check_matches_its_definition(
            key in "[a ~#!}\\u{0}\\u{1f}\\u{7f}\\u{80}é]{0,12}",
            hash_unsafe in proptest::bool::ANY,
        ) {
            let m = KeyMangler::new().hash_unsafe_bytes(hash_unsafe);
            let expected = key.contains(HASH_MARK) || key.bytes().any(|b| m.unsafe_byte(b));
            proptest::prop_assert_eq!(m.needs_hash(&key), expected);
        }
    }
}
