//! Redis-style glob patterns (`*`, `?`, `[abc]`, `[^a]`, `\x`) for backends that match keys themselves.

use globset::{GlobBuilder, GlobMatcher as Compiled};

use crate::backend::BackendError;

/// A compiled Redis-style glob.
///
/// Redis and globset agree on `*`, `?`, classes and backslash escapes; they differ on `{a,b}` (an alternation in
/// globset, plain text in Redis), on `[^…]` (globset spells it `[!…]`) and on `**` (a path wildcard in globset).
/// [`GlobMatcher::new`] rewrites those so the memory backend matches exactly what Redis `SCAN MATCH` would.
#[derive(Debug, Clone)]
pub struct GlobMatcher {
    inner: Compiled,
}

impl GlobMatcher {
    /// Compiles a Redis-style pattern.
    ///
    /// ```
    /// let m = cache_core::GlobMatcher::new("user:*:[0-9]").unwrap();
    /// assert!(m.is_match("user:alice:7"));
    /// assert!(!m.is_match("post:1:7"));
    /// ```
    pub fn new(pattern: &str) -> Result<Self, BackendError> {
        let translated = translate(pattern);
        let glob = GlobBuilder::new(&translated)
            .literal_separator(false)
            .backslash_escape(true)
            .build()
            .map_err(|e| BackendError::Invalid(format!("bad glob pattern {pattern:?}: {e}")))?;
        Ok(Self {
            inner: glob.compile_matcher(),
        })
    }

    /// Whether `key` matches.
    ///
    /// ```
    /// assert!(cache_core::GlobMatcher::new("a?c").unwrap().is_match("abc"));
    /// ```
    pub fn is_match(&self, key: &str) -> bool {
        self.inner.is_match(key)
    }
}

fn translate(pattern: &str) -> String {
    let mut out = String::with_capacity(pattern.len() + 8);
    let mut chars = pattern.chars().peekable();
    let mut in_class = false;
    while let Some(c) = chars.next() {
        match c {
            '\\' => {
                out.push('\\');
                match chars.next() {
                    Some(next) => out.push(next),
                    // A trailing backslash escapes nothing in Redis; match it literally.
                    None => out.push('\\'),
                }
            }
            '[' if !in_class => {
                in_class = true;
                out.push('[');
                if chars.peek() == Some(&'^') {
                    chars.next();
                    out.push('!');
                }
            }
            ']' if in_class => {
                in_class = false;
                out.push(']');
            }
            '*' if !in_class => {
                while chars.peek() == Some(&'*') {
                    chars.next();
                }
                out.push('*');
            }
            '{' | '}' | ',' if !in_class => {
                out.push('[');
                out.push(c);
                out.push(']');
            }
            _ => out.push(c),
        }
    }
    if in_class {
        // Unclosed class: Redis treats the rest literally as a class; close it so globset accepts it.
        out.push(']');
    }
    out
}

#[cfg(test)]
mod tests {
    use super::GlobMatcher;

    #[test]
    fn redis_semantics() {
        let m = |p: &str, k: &str| GlobMatcher::new(p).unwrap().is_match(k);
        assert!(m("a*", "a/b:c"));
        assert!(m("a**b", "axxb"));
        assert!(m("{x}", "{x}"));
        assert!(m("a,b", "a,b"));
        assert!(m("[^a]b", "cb"));
        assert!(!m("[^a]b", "ab"));
        assert!(m("a\\*", "a*"));
        assert!(!m("a\\*", "ab"));
        assert!(m("h[a-c]llo", "hbllo"));
    }
}
