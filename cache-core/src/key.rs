//! Rendering function arguments into cache keys.
//!
//! Keys stay human readable (`app::users:get_user:id=42:name=bob`) and unambiguous: user values are escaped so
//! they can never contain the characters that separate or glob-match key parts. `a:b` + `c` and `a` + `b:c`
//! give different keys, and a pattern such as `user:*` can never be steered by a value.

use std::borrow::Cow;
use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::fmt::Write as _;
use std::rc::Rc;
use std::sync::Arc;

use percent_encoding::{AsciiSet, CONTROLS};

/// Characters a rendered value never contains raw: separators of keys and of our own sequence/tuple/option
/// rendering, glob metacharacters (for Redis `SCAN MATCH` and `delete_match`), whitespace (memcached forbids it)
/// and `%` itself. Non-ASCII text is percent-encoded as UTF-8 too.
const ESCAPED: &AsciiSet = &CONTROLS
    .add(b' ')
    .add(b'"')
    .add(b'%')
    .add(b'(')
    .add(b')')
    .add(b'*')
    .add(b',')
    .add(b':')
    .add(b'=')
    .add(b'?')
    .add(b'[')
    .add(b'\\')
    .add(b']')
    .add(b'{')
    .add(b'}')
    .add(b'~');

/// A value that can be part of a cache key.
///
/// Implemented for strings, integers, floats, `bool`, `char`, `Option`, references and smart pointers,
/// slices/`Vec`/arrays, `BTreeMap`/`BTreeSet`, tuples up to six and `Duration`. For your own types, write a
/// field (or several) through the [`KeyWriter`]:
///
/// ```
/// use cache_core::{KeyArg, KeyWriter};
/// struct User { id: u64, name: String }
/// impl KeyArg for User {
///     fn write_key(&self, out: &mut KeyWriter<'_>) {
///         self.id.write_key(out);
///     }
/// }
/// assert_eq!(cache_core::render_key(&User { id: 7, name: "x".into() }), "7");
/// ```
#[diagnostic::on_unimplemented(
    message = "`{Self}` cannot be rendered into a cache key",
    label = "this value becomes part of the cache key",
    note = "implement `cache_core::KeyArg` for it, leave the argument out with `skip(name)`, or name some of its fields in a `key = \"...\"` template"
)]
pub trait KeyArg {
    /// Writes this value's key form.
    fn write_key(&self, out: &mut KeyWriter<'_>);

    /// What the `:len` format spec shows: element count for collections, character count for text; for other
    /// values the length of the rendered form.
    fn key_len(&self) -> usize {
        render_key(self).chars().count()
    }
}

/// Where a [`KeyArg`] writes: escapes everything written through [`KeyWriter::text`].
///
/// ```
/// let mut key = String::new();
/// cache_core::KeyWriter::new(&mut key).text("a:b c");
/// assert_eq!(key, "a%3Ab%20c");
/// ```
#[derive(Debug)]
pub struct KeyWriter<'a> {
    out: &'a mut String,
}

impl<'a> KeyWriter<'a> {
    /// Writes into `out`.
    ///
    /// ```
    /// let mut s = String::new();
    /// let _w = cache_core::KeyWriter::new(&mut s);
    /// ```
    pub fn new(out: &'a mut String) -> Self {
        Self { out }
    }

    /// Writes user text, escaped. An empty string is written as `""` so it differs from a missing value.
    ///
    /// ```
    /// let mut s = String::new();
    /// cache_core::KeyWriter::new(&mut s).text("");
    /// assert_eq!(s, "\"\"");
    /// ```
    pub fn text(&mut self, s: &str) {
        if s.is_empty() {
            self.out.push_str("\"\"");
            return;
        }
        // Text that needs no escaping comes out as a single borrowed chunk.
        self.out
            .extend(percent_encoding::utf8_percent_encode(s, ESCAPED));
    }

    /// Writes a value through its `Display` form, escaped.
    ///
    /// ```
    /// let mut s = String::new();
    /// cache_core::KeyWriter::new(&mut s).display(&1.5f64);
    /// assert_eq!(s, "1.5");
    /// ```
    pub fn display(&mut self, value: &dyn std::fmt::Display) {
        self.text(&value.to_string());
    }

    /// Writes a number: its `Display` form (digits, `-`, `.`, `NaN`, `inf`) never needs escaping, so it is written
    /// without the temporary string [`KeyWriter::display`] needs.
    fn number(&mut self, value: &dyn std::fmt::Display) {
        let _ = write!(self.out, "{value}");
    }

    /// Writes an integer: digits and `-` never need escaping, and `itoa` formats without `core::fmt`.
    fn integer(&mut self, value: impl itoa::Integer) {
        self.out.push_str(itoa::Buffer::new().format(value));
    }

    /// Writes structure characters of our own rendering (never user data).
    fn raw(&mut self, s: &str) {
        self.out.push_str(s);
    }

    fn seq<'v, T: KeyArg + 'v + ?Sized>(&mut self, items: impl IntoIterator<Item = &'v T>) {
        self.raw("[");
        for (i, item) in items.into_iter().enumerate() {
            if i > 0 {
                self.raw(",");
            }
            item.write_key(self);
        }
        self.raw("]");
    }
}

/// Renders one value the way a key template would.
///
/// ```
/// assert_eq!(cache_core::render_key(&vec!["a,b", "c"]), "[a%2Cb,c]");
/// assert_eq!(cache_core::render_key(&None::<u8>), "~");
/// ```
pub fn render_key<T: KeyArg + ?Sized>(value: &T) -> String {
    let mut out = String::new();
    value.write_key(&mut KeyWriter::new(&mut out));
    out
}

impl KeyArg for str {
    fn write_key(&self, out: &mut KeyWriter<'_>) {
        out.text(self);
    }
    fn key_len(&self) -> usize {
        self.chars().count()
    }
}

impl KeyArg for String {
    fn write_key(&self, out: &mut KeyWriter<'_>) {
        out.text(self);
    }
    fn key_len(&self) -> usize {
        self.chars().count()
    }
}

impl KeyArg for char {
    fn write_key(&self, out: &mut KeyWriter<'_>) {
        out.text(self.encode_utf8(&mut [0; 4]));
    }
}

impl KeyArg for bool {
    fn write_key(&self, out: &mut KeyWriter<'_>) {
        out.raw(if *self { "true" } else { "false" });
    }
}

impl KeyArg for () {
    fn write_key(&self, out: &mut KeyWriter<'_>) {
        out.raw("()");
    }
}

macro_rules! display_key_arg {
    ($method:ident: $($t:ty),*) => {$(
        impl KeyArg for $t {
            fn write_key(&self, out: &mut KeyWriter<'_>) {
                out.$method(self);
            }
        }
    )*};
}
display_key_arg!(number: f32, f64);

macro_rules! integer_key_arg {
    ($($t:ty),*) => {$(
        impl KeyArg for $t {
            fn write_key(&self, out: &mut KeyWriter<'_>) {
                out.integer(*self);
            }
        }
    )*};
}
integer_key_arg!(u8, u16, u32, u64, u128, usize, i8, i16, i32, i64, i128, isize);

macro_rules! nonzero_key_arg {
    ($($t:ty),*) => {$(
        impl KeyArg for $t {
            fn write_key(&self, out: &mut KeyWriter<'_>) {
                self.get().write_key(out);
            }
        }
    )*};
}
nonzero_key_arg!(
    std::num::NonZeroU32,
    std::num::NonZeroU64,
    std::num::NonZeroUsize
);
display_key_arg!(display: std::net::IpAddr, std::net::Ipv4Addr, std::net::Ipv6Addr, std::net::SocketAddr);

impl KeyArg for std::time::Duration {
    fn write_key(&self, out: &mut KeyWriter<'_>) {
        out.number(&format_args!("{}ms", self.as_millis()));
    }
}

impl KeyArg for std::path::Path {
    fn write_key(&self, out: &mut KeyWriter<'_>) {
        out.text(&self.to_string_lossy());
    }
}

impl KeyArg for std::path::PathBuf {
    fn write_key(&self, out: &mut KeyWriter<'_>) {
        out.text(&self.to_string_lossy());
    }
}

impl<T: KeyArg> KeyArg for Option<T> {
    fn write_key(&self, out: &mut KeyWriter<'_>) {
        match self {
            Some(value) => {
                // `~` is escaped in text, so only a nested `None` (an `Option` inside, or a custom type whose
                // first field is one) can make a value's form start with `~`. Marking exactly those with one more
                // `~` keeps `None`, `Some(None)`, `Some(Some(None))` apart, while `Some(5)` still renders `5`.
                let start = out.out.len();
                value.write_key(out);
                if out.out[start..].starts_with('~') {
                    out.out.insert(start, '~');
                }
            }
            None => out.raw("~"),
        }
    }
}

macro_rules! forward_key_arg {
    ($($ty:ty),*) => {$(
        impl<T: KeyArg + ?Sized> KeyArg for $ty {
            fn write_key(&self, out: &mut KeyWriter<'_>) {
                (**self).write_key(out)
            }
            fn key_len(&self) -> usize {
                (**self).key_len()
            }
        }
    )*};
}
forward_key_arg!(&T, &mut T, Box<T>, Rc<T>, Arc<T>);

impl<T: KeyArg + ToOwned + ?Sized> KeyArg for Cow<'_, T> {
    fn write_key(&self, out: &mut KeyWriter<'_>) {
        (**self).write_key(out)
    }
    fn key_len(&self) -> usize {
        (**self).key_len()
    }
}

macro_rules! seq_key_arg {
    ($([$($g:tt)*] $ty:ty),*) => {$(
        impl<$($g)*> KeyArg for $ty {
            fn write_key(&self, out: &mut KeyWriter<'_>) {
                out.seq(self.iter())
            }
            fn key_len(&self) -> usize {
                self.len()
            }
        }
    )*};
}
seq_key_arg!(
    [T: KeyArg] [T],
    [T: KeyArg] Vec<T>,
    [T: KeyArg] VecDeque<T>,
    [T: KeyArg, const N: usize] [T; N],
    [T: KeyArg] BTreeSet<T>
);

impl<K: KeyArg, V: KeyArg> KeyArg for BTreeMap<K, V> {
    fn write_key(&self, out: &mut KeyWriter<'_>) {
        out.raw("{");
        for (i, (k, v)) in self.iter().enumerate() {
            if i > 0 {
                out.raw(",");
            }
            k.write_key(out);
            out.raw("=");
            v.write_key(out);
        }
        out.raw("}");
    }
    fn key_len(&self) -> usize {
        self.len()
    }
}

macro_rules! tuple_key_arg {
    ($($name:ident . $idx:tt),+) => {
        impl<$($name: KeyArg),+> KeyArg for ($($name,)+) {
            fn write_key(&self, out: &mut KeyWriter<'_>) {
                out.raw("(");
                let mut _first = true;
                $(
                    if !_first { out.raw(","); }
                    _first = false;
                    self.$idx.write_key(out);
                )+
                out.raw(")");
            }
        }
    };
}
tuple_key_arg!(A.0);
tuple_key_arg!(A.0, B.1);
tuple_key_arg!(A.0, B.1, C.2);
tuple_key_arg!(A.0, B.1, C.2, D.3);
tuple_key_arg!(A.0, B.1, C.2, D.3, E.4);
tuple_key_arg!(A.0, B.1, C.2, D.3, E.4, F.5);

/// A format spec in a key template placeholder (`{name:hash}`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum KeyFormat {
    /// `:hash` — the first 128 bits of the SHA-256 digest of the rendered value, as 32 lowercase hex digits.
    ///
    /// A cryptographic hash, so whoever controls the value cannot steer it onto another value's key (a 64-bit
    /// non-cryptographic hash can be collided with about 2^32 work). The digest of a given rendering never
    /// changes between releases.
    Hash,
    /// `:lower` — the rendered value in ASCII lower case.
    Lower,
    /// `:upper` — the rendered value in ASCII upper case.
    Upper,
    /// `:len` — [`KeyArg::key_len`].
    Len,
}

/// Builds one key (or glob pattern) in one `String`; what the macros expand to.
///
/// ```
/// use cache_core::{KeyBuilder, KeyFormat};
/// let mut kb = KeyBuilder::new();
/// kb.literal("user:");
/// kb.value("a:b");
/// kb.literal(":");
/// kb.formatted("Bob", KeyFormat::Lower);
/// assert_eq!(kb.finish(), "user:a%3Ab:bob");
/// ```
#[derive(Debug, Default)]
pub struct KeyBuilder {
    buf: String,
}

impl KeyBuilder {
    /// An empty key.
    pub fn new() -> Self {
        Self {
            buf: String::with_capacity(48),
        }
    }

    /// Appends template text as is.
    pub fn literal(&mut self, s: &str) {
        self.buf.push_str(s);
    }

    /// Appends a rendered, escaped value.
    pub fn value<T: KeyArg + ?Sized>(&mut self, value: &T) {
        value.write_key(&mut KeyWriter::new(&mut self.buf));
    }

    /// Appends a value through a format spec.
    pub fn formatted<T: KeyArg + ?Sized>(&mut self, value: &T, format: KeyFormat) {
        match format {
            KeyFormat::Len => {
                let _ = write!(self.buf, "{}", value.key_len());
            }
            KeyFormat::Hash => {
                use sha2::Digest as _;
                let digest = sha2::Sha256::digest(render_key(value).as_bytes());
                for byte in &digest[..16] {
                    let _ = write!(self.buf, "{byte:02x}");
                }
            }
            KeyFormat::Lower => self.buf.push_str(&render_key(value).to_ascii_lowercase()),
            KeyFormat::Upper => self.buf.push_str(&render_key(value).to_ascii_uppercase()),
        }
    }

    /// Appends literal text to a glob pattern, escaping the glob metacharacters in it.
    ///
    /// ```
    /// let mut kb = cache_core::KeyBuilder::new();
    /// kb.glob_literal("a*b");
    /// kb.wildcard();
    /// assert_eq!(kb.finish(), "a\\*b*");
    /// ```
    pub fn glob_literal(&mut self, s: &str) {
        crate::glob::escape_into(&mut self.buf, s);
    }

    /// Appends `*` to a glob pattern.
    pub fn wildcard(&mut self) {
        self.buf.push('*');
    }

    /// The key.
    pub fn finish(self) -> String {
        self.buf
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn values_cannot_forge_separators() {
        let a = (render_key("a:b"), render_key("c"));
        let b = (render_key("a"), render_key("b:c"));
        assert_ne!(format!("{}:{}", a.0, a.1), format!("{}:{}", b.0, b.1));
        assert_ne!(render_key(&vec!["a,b"]), render_key(&vec!["a", "b"]));
        assert_ne!(
            render_key(&Vec::<String>::new()),
            render_key(&vec![String::new()])
        );
        assert_ne!(render_key(&None::<&str>), render_key(&Some("~")));
        assert_ne!(render_key(&Some("")), render_key(&None::<&str>));
        assert_eq!(
            render_key(&Some(5u8)),
            "5",
            "a plain Some renders its value"
        );
    }

    #[test]
    fn nested_options_do_not_collide() {
        let values: [Option<Option<Option<u8>>>; 4] =
            [None, Some(None), Some(Some(None)), Some(Some(Some(1)))];
        let keys: Vec<String> = values.iter().map(render_key).collect();
        assert_eq!(keys, ["~", "~~", "~~~", "1"]);
        assert_ne!(
            render_key(&vec![None, Some(None::<u8>)]),
            render_key(&vec![Some(None::<u8>), None])
        );
        assert_ne!(
            render_key(&(None::<Option<u8>>,)),
            render_key(&(Some(None::<u8>),))
        );
        assert_eq!(render_key("*?[]\\"), "%2A%3F%5B%5D%5C");
    }

    /// Text made of the characters our own rendering uses, so that a collision would be found if escaping or
    /// the structure marks were ambiguous.
    fn tricky_text() -> impl proptest::strategy::Strategy<Value = String> {
        proptest::string::string_regex("[a~,:=()\\[\\]{}\"% ~*]{0,4}").expect("a valid regex")
    }

    /// Checks that no two distinct values in `values` render to the same key.
    fn assert_injective<T: KeyArg + PartialEq + std::fmt::Debug>(values: &[T]) {
        let mut seen: std::collections::HashMap<String, &T> = std::collections::HashMap::new();
        for value in values {
            let key = render_key(value);
            if let Some(other) = seen.insert(key.clone(), value) {
                assert_eq!(
                    other, value,
                    "{other:?} and {value:?} share the key {key:?}"
                );
            }
        }
    }

    proptest::proptest! {
        #[test]
        fn distinct_arguments_never_share_a_key(
            options in proptest::collection::vec(proptest::option::of(proptest::option::of(proptest::option::of(tricky_text()))), 0..32),
            pairs in proptest::collection::vec((proptest::option::of(tricky_text()), proptest::option::of(proptest::option::of(-3i8..3))), 0..32),
            lists in proptest::collection::vec(proptest::collection::vec(proptest::option::of(proptest::option::of(tricky_text())), 0..4), 0..32),
            maps in proptest::collection::vec(proptest::collection::btree_map(tricky_text(), proptest::option::of(proptest::collection::vec(tricky_text(), 0..3)), 0..3), 0..32),
            triples in proptest::collection::vec((tricky_text(), proptest::option::of(proptest::option::of(proptest::bool::ANY)), proptest::collection::btree_set(tricky_text(), 0..3)), 0..32),
        ) {
            assert_injective(&options);
            assert_injective(&pairs);
            assert_injective(&lists);
            assert_injective(&maps);
            assert_injective(&triples);
        }
    }

    #[test]
    fn readable_and_stable() {
        assert_eq!(render_key("alice"), "alice");
        assert_eq!(render_key(&42u64), "42");
        assert_eq!(render_key(&-3i32), "-3");
        for (value, text) in [
            (0i64, "0"),
            (7, "7"),
            (-10, "-10"),
            (i64::MIN, "-9223372036854775808"),
        ] {
            assert_eq!(render_key(&value), text);
        }
        assert_eq!(render_key(&u64::MAX), "18446744073709551615");
        assert_eq!(render_key(&i8::MIN), "-128");
        assert_eq!(render_key(&std::num::NonZeroU32::new(12).unwrap()), "12");
        assert_eq!(render_key(&usize::MAX), usize::MAX.to_string());
        assert_eq!(render_key(&true), "true");
        assert_eq!(render_key(&(1u8, "x")), "(1,x)");
        assert_eq!(render_key(&std::time::Duration::from_secs(2)), "2000ms");
        assert_eq!(render_key("ünï"), "%C3%BCn%C3%AF");
        let mut kb = KeyBuilder::new();
        kb.formatted("hello", KeyFormat::Hash);
        // The first half of SHA-256("hello"): this value must never change between releases.
        assert_eq!(kb.finish(), "2cf24dba5fb0a30e26e83b2ac5b9e29e");
        let mut kb = KeyBuilder::new();
        kb.formatted(&vec![1, 2, 3], KeyFormat::Len);
        kb.formatted("añb", KeyFormat::Len);
        assert_eq!(kb.finish(), "33");
    }
}
