//! Redis glob patterns (`*`, `?`, `[abc]`, `[^a]`, `[a-z]`, `\x`) for backends that match keys themselves.
//!
//! The memory backend must select exactly the keys Redis' `KEYS`/`SCAN MATCH` would, so this follows Redis'
//! own matcher (`stringmatchlen` in `util.c`) rule for rule rather than a general glob crate, whose dialects
//! differ (`{a,b}` alternation, `[!a]`, `**`, unclosed classes are errors). Redis matches bytes, not characters:
//! `?` takes one byte of a multi-byte UTF-8 character, and class ranges compare bytes as C's signed `char`.
//! `tests/glob_vs_redis.rs` checks it against a real `redis-server` on thousands of random patterns and keys.

/// A Redis glob pattern.
///
/// Every string is a valid pattern (Redis has no syntax errors: an unclosed `[` class runs to the end, a trailing
/// `\` is literal), so building one cannot fail.
///
/// ```
/// let m = cache_core::GlobMatcher::new("user:*:[0-9]");
/// assert!(m.is_match("user:alice:7"));
/// assert!(!m.is_match("post:1:7"));
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GlobMatcher {
    pattern: Box<[u8]>,
}

/// Redis gives up (no match) beyond this many nested `*` expansions, as protection against abusive patterns.
const MAX_NESTING: usize = 1000;

impl GlobMatcher {
    /// A matcher for `pattern`.
    ///
    /// ```
    /// assert!(cache_core::GlobMatcher::new("a?c").is_match("abc"));
    /// ```
    pub fn new(pattern: &str) -> Self {
        Self {
            pattern: pattern.as_bytes().into(),
        }
    }

    /// Whether `key` matches, byte for byte as Redis would decide.
    ///
    /// ```
    /// let m = cache_core::GlobMatcher::new("h[^e]llo");
    /// assert!(m.is_match("hallo"));
    /// assert!(!m.is_match("hello"));
    /// ```
    pub fn is_match(&self, key: &str) -> bool {
        self.is_match_bytes(key.as_bytes())
    }

    /// `text` with its glob metacharacters escaped, so that as a pattern it matches only itself (a key prefix
    /// in a scan pattern, for example).
    ///
    /// ```
    /// let pattern = cache_core::GlobMatcher::escape("a*b[1]") + "*";
    /// assert!(cache_core::GlobMatcher::new(&pattern).is_match("a*b[1]:x"));
    /// assert!(!cache_core::GlobMatcher::new(&pattern).is_match("axb1:x"));
    /// ```
    pub fn escape(text: &str) -> String {
        let mut out = String::with_capacity(text.len());
        escape_into(&mut out, text);
        out
    }

    /// [`GlobMatcher::is_match`] for keys that are not UTF-8.
    ///
    /// ```
    /// assert!(cache_core::GlobMatcher::new("a?").is_match_bytes(b"a\xff"));
    /// ```
    pub fn is_match_bytes(&self, key: &[u8]) -> bool {
        // `KEYS *` and `SCAN MATCH *` take every key without matching, the empty key included (which the
        // matcher itself would refuse).
        if *self.pattern == *b"*" {
            return true;
        }
        let mut give_up = false;
        matches(&self.pattern, key, &mut give_up, 0)
    }
}

/// Appends `text` to `out` with `*`, `?`, `[`, `]` and `\` escaped.
pub(crate) fn escape_into(out: &mut String, text: &str) {
    for c in text.chars() {
        if matches!(c, '*' | '?' | '[' | ']' | '\\') {
            out.push('\\');
        }
        out.push(c);
    }
}

/// C's `char` on the platforms Redis runs on is signed: bytes from 0x80 up compare below ASCII in ranges.
fn signed(byte: u8) -> i8 {
    byte as i8
}

/// `p` without its first byte; an empty pattern stays empty (an unclosed class has consumed it all).
fn rest(p: &[u8]) -> &[u8] {
    p.get(1..).unwrap_or_default()
}

/// One step of Redis' matcher. `give_up` is set once the rest of a pattern after a `*` matched nowhere in the
/// rest of the key: then no earlier `*` can help either (it only moves the rest further right), which keeps the
/// work polynomial.
fn matches(mut p: &[u8], mut s: &[u8], give_up: &mut bool, nesting: usize) -> bool {
    if nesting > MAX_NESTING {
        return false;
    }
    while !p.is_empty() && !s.is_empty() {
        match p[0] {
            b'*' => {
                while p.get(1) == Some(&b'*') {
                    p = &p[1..];
                }
                if p.len() == 1 {
                    return true;
                }
                while !s.is_empty() {
                    if matches(&p[1..], s, give_up, nesting + 1) {
                        return true;
                    }
                    if *give_up {
                        return false;
                    }
                    s = &s[1..];
                }
                *give_up = true;
                return false;
            }
            b'?' => s = &s[1..],
            b'[' => {
                p = &p[1..];
                let negate = p.first() == Some(&b'^');
                if negate {
                    p = &p[1..];
                }
                let mut found = false;
                loop {
                    match p {
                        [b'\\', escaped, ..] => {
                            p = &p[1..];
                            if *escaped == s[0] {
                                found = true;
                            }
                        }
                        [b']', ..] => break,
                        // Unclosed: the class ends with the pattern.
                        [] => break,
                        [start, b'-', end, ..] => {
                            let (mut low, mut high) = (signed(*start), signed(*end));
                            if low > high {
                                std::mem::swap(&mut low, &mut high);
                            }
                            let c = signed(s[0]);
                            p = &p[2..];
                            if (low..=high).contains(&c) {
                                found = true;
                            }
                        }
                        [c, ..] => {
                            if *c == s[0] {
                                found = true;
                            }
                        }
                    }
                    p = rest(p);
                }
                if found == negate {
                    return false;
                }
                s = &s[1..];
            }
            first => {
                // `\x` matches `x`; a trailing `\` matches itself.
                let literal = if first == b'\\' && p.len() >= 2 {
                    p = &p[1..];
                    p[0]
                } else {
                    first
                };
                if literal != s[0] {
                    return false;
                }
                s = &s[1..];
            }
        }
        p = rest(p);
        if s.is_empty() {
            while p.first() == Some(&b'*') {
                p = &p[1..];
            }
            break;
        }
    }
    p.is_empty() && s.is_empty()
}

#[cfg(test)]
mod tests {
    use super::GlobMatcher;

    fn m(pattern: &str, key: &str) -> bool {
        GlobMatcher::new(pattern).is_match(key)
    }

    #[test]
    fn redis_semantics() {
        assert!(m("a*", "a/b:c"));
        assert!(m("*", ""), "`*` alone is every key, as in KEYS and SCAN");
        assert!(!m("**", ""), "other patterns never match the empty key");
        assert!(m("a**b", "axxb"));
        assert!(m("{x}", "{x}"));
        assert!(m("a,b", "a,b"));
        assert!(m("[^a]b", "cb"));
        assert!(!m("[^a]b", "ab"));
        assert!(m("a\\*", "a*"));
        assert!(!m("a\\*", "ab"));
        assert!(m("h[a-c]llo", "hbllo"));
        assert!(m("h[c-a]llo", "hbllo"), "reversed ranges are swapped");
        assert!(!m("a[", "a["), "an unclosed, empty class matches nothing");
        assert!(
            m("a[^", "ab"),
            "an unclosed, empty negated class matches anything"
        );
        assert!(m("a[bc", "ab"), "an unclosed class runs to the end");
        assert!(m("a\\", "a\\"), "a trailing backslash is literal");
        assert!(m("[\\]]", "]"));
        assert!(
            !m("[]a]", "a") && !m("[]a]", "]"),
            "`]` right after `[` closes an empty class"
        );
        assert!(!m("?", ""));
        assert!(m("??", "é"), "? takes one byte");
        assert!(!m("?", "é"));
    }

    #[test]
    fn high_bytes_sort_below_ascii_in_ranges_like_cs_signed_char() {
        // In "[é-a]" the range is 0xA9-'a', and 0xA9 is -87 as a signed char: the range covers 'A' (65).
        assert!(m("[é-a]", "A"));
        assert!(!m("[a-z]*", "é"));
    }

    #[test]
    fn pathological_patterns_finish() {
        let key = "a".repeat(5000);
        let pattern = "*a".repeat(2000) + "b";
        assert!(!m(&pattern, &key));
        let deep = "*?".repeat(1500);
        assert!(
            !m(&deep, &key),
            "beyond Redis' nesting limit nothing matches"
        );
    }

    proptest::proptest! {
        #[test]
        fn never_panics(pattern in "[a*?\\[\\]^\\\\-]{0,12}", key in "[a\\]\\[\\\\-]{0,12}") {
            let _ = m(&pattern, &key);
        }
    }
}
