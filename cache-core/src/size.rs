//! How much memory a decoded value holds: the charge of the memory backend's decoded copies.
//!
//! The heap size of an arbitrary `T` is not knowable without a trait on every user type (what `deepsize` or
//! `get-size` need), but every cached value is `Serialize`. Walking it through a serializer that writes nothing
//! shows its shape: which strings, vectors and maps it owns and how long they are, and the primitive types
//! inside them. From that the estimate adds up what Rust's usual layouts take (`String` and `Vec` headers of 24
//! bytes, elements at their natural size and alignment, hash tables at their worst load) and what the
//! allocator adds per allocation. Where the shape leaves a choice open (an `Option` that is `None`, an enum
//! variant, field order) it takes the larger answer, so the estimate errs towards charging too much.

use std::mem::size_of;

use serde::ser::{self, Serialize};

/// Bytes the estimate assumes behind a decoded `T`: the allocation holding it plus everything it owns.
#[cfg(test)]
pub(crate) fn decoded_size<T: Serialize>(value: &T) -> usize {
    decoded_size_beside(value, 0)
}

/// [`decoded_size`] of a `value` boxed together with `beside` more bytes of plain data (an envelope's metadata).
pub(crate) fn decoded_size_beside<T: Serialize>(value: &T, beside: usize) -> usize {
    let mut probe = Probe { heap: 0 };
    // The walk itself cannot fail; a user `Serialize` that refuses is charged like an empty value.
    let _ = value.serialize(&mut probe);
    allocation(size_of::<T>().saturating_add(beside)).saturating_add(probe.heap)
}

/// What the allocator takes for a request of `n` bytes: glibc's chunks carry an 8-byte header, are rounded to
/// 16 bytes and are at least 32; other allocators round similarly or better.
pub(crate) fn allocation(n: usize) -> usize {
    if n == 0 {
        return 0;
    }
    n.saturating_add(8).next_multiple_of(16).max(32)
}

/// The inline footprint of a value as part of its parent: size and alignment.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Layout {
    size: usize,
    align: usize,
}

impl Layout {
    const fn of<T>() -> Self {
        Self {
            size: size_of::<T>(),
            align: std::mem::align_of::<T>(),
        }
    }

    /// The stride of this value in an array.
    fn stride(self) -> usize {
        self.size.next_multiple_of(self.align.max(1))
    }

    /// The larger of two candidate layouts for the same slot.
    fn max(self, other: Layout) -> Layout {
        Layout {
            size: self.size.max(other.size),
            align: self.align.max(other.align),
        }
    }

    /// This value behind an enum tag (`Option::Some`, a data-carrying variant), without assuming a niche.
    fn tagged(self) -> Layout {
        let align = self.align.max(1);
        Layout {
            size: self.size.saturating_add(align),
            align,
        }
    }
}

/// An owned string or vector: pointer, capacity, length.
const VEC_HEADER: Layout = Layout::of::<Vec<u8>>();
/// A hash map with its hasher state (the larger of std's map headers).
const MAP_HEADER: Layout = Layout::of::<std::collections::HashMap<u8, u8>>();
/// What an unknown `None` takes inline: its type is not seen, so assume a word.
const UNKNOWN: Layout = Layout::of::<usize>();

/// The serializer: returns each value's inline layout and adds what it owns to `heap`.
struct Probe {
    heap: usize,
}

impl Probe {
    fn owned_bytes(&mut self, len: usize) -> Layout {
        self.heap = self.heap.saturating_add(allocation(len));
        VEC_HEADER
    }
}

/// Never raised by the probe itself; `Serialize` impls may raise one through `ser::Error::custom`.
#[derive(Debug)]
struct Refused;

impl std::fmt::Display for Refused {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("the value refused to serialize")
    }
}

impl std::error::Error for Refused {}

impl ser::Error for Refused {
    fn custom<M: std::fmt::Display>(_: M) -> Self {
        Refused
    }
}

/// Fields laid out one after another, each at its alignment (Rust may reorder to pad less; this never
/// charges less than the real layout).
struct Fields<'a> {
    probe: &'a mut Probe,
    offset: usize,
    align: usize,
    tag: bool,
}

impl<'a> Fields<'a> {
    fn new(probe: &'a mut Probe, tag: bool) -> Self {
        Self {
            probe,
            offset: 0,
            align: 1,
            tag,
        }
    }

    fn add<T: Serialize + ?Sized>(&mut self, value: &T) -> Result<(), Refused> {
        let field = value.serialize(&mut *self.probe)?;
        let align = field.align.max(1);
        self.offset = self
            .offset
            .next_multiple_of(align)
            .saturating_add(field.size);
        self.align = self.align.max(align);
        Ok(())
    }

    fn finish(self) -> Layout {
        let layout = Layout {
            size: self.offset.next_multiple_of(self.align),
            align: self.align,
        };
        if self.tag {
            layout.tagged()
        } else {
            layout
        }
    }
}

/// Elements of a vector or map: all of one type, so the widest element seen is the element layout.
struct Elements<'a> {
    probe: &'a mut Probe,
    count: usize,
    element: Option<Layout>,
    map: bool,
}

impl<'a> Elements<'a> {
    fn new(probe: &'a mut Probe, map: bool) -> Self {
        Self {
            probe,
            count: 0,
            element: None,
            map,
        }
    }

    fn add<T: Serialize + ?Sized>(&mut self, value: &T) -> Result<(), Refused> {
        let layout = value.serialize(&mut *self.probe)?;
        self.element = Some(self.element.map_or(layout, |seen| seen.max(layout)));
        self.count += 1;
        Ok(())
    }

    fn finish(self) -> Layout {
        let stride = self.element.map_or(0, Layout::stride);
        if !self.map {
            self.probe.owned_bytes(self.count.saturating_mul(stride));
            return VEC_HEADER;
        }
        // Keys and values were added as separate elements: a slot holds one of each. A hash table keeps at
        // most 7/8 of a power-of-two number of slots full, plus a control byte per slot; a B-tree node is at
        // least about half full, which costs less.
        let entries = self.count / 2;
        let slots = (entries.saturating_mul(8) / 7 + 1).next_power_of_two();
        let slot = stride.saturating_mul(2).saturating_add(1);
        self.probe.owned_bytes(slots.saturating_mul(slot));
        MAP_HEADER
    }
}

macro_rules! primitives {
    ($($method:ident: $ty:ty),* $(,)?) => {$(
        fn $method(self, _: $ty) -> Result<Layout, Refused> {
            Ok(Layout::of::<$ty>())
        }
    )*};
}

impl<'a> ser::Serializer for &'a mut Probe {
    type Ok = Layout;
    type Error = Refused;
    type SerializeSeq = Elements<'a>;
    type SerializeTuple = Fields<'a>;
    type SerializeTupleStruct = Fields<'a>;
    type SerializeTupleVariant = Fields<'a>;
    type SerializeMap = Elements<'a>;
    type SerializeStruct = Fields<'a>;
    type SerializeStructVariant = Fields<'a>;

    primitives!(
        serialize_bool: bool,
        serialize_i8: i8,
        serialize_i16: i16,
        serialize_i32: i32,
        serialize_i64: i64,
        serialize_i128: i128,
        serialize_u8: u8,
        serialize_u16: u16,
        serialize_u32: u32,
        serialize_u64: u64,
        serialize_u128: u128,
        serialize_f32: f32,
        serialize_f64: f64,
        serialize_char: char,
    );

    fn serialize_str(self, v: &str) -> Result<Layout, Refused> {
        Ok(self.owned_bytes(v.len()))
    }

    fn serialize_bytes(self, v: &[u8]) -> Result<Layout, Refused> {
        Ok(self.owned_bytes(v.len()))
    }

    fn serialize_none(self) -> Result<Layout, Refused> {
        Ok(UNKNOWN)
    }

    fn serialize_some<T: Serialize + ?Sized>(self, value: &T) -> Result<Layout, Refused> {
        Ok(value.serialize(self)?.tagged())
    }

    fn serialize_unit(self) -> Result<Layout, Refused> {
        Ok(Layout::of::<()>())
    }

    fn serialize_unit_struct(self, _: &'static str) -> Result<Layout, Refused> {
        Ok(Layout::of::<()>())
    }

    fn serialize_unit_variant(
        self,
        _: &'static str,
        _: u32,
        _: &'static str,
    ) -> Result<Layout, Refused> {
        Ok(Layout::of::<u8>())
    }

    fn serialize_newtype_struct<T: Serialize + ?Sized>(
        self,
        _: &'static str,
        value: &T,
    ) -> Result<Layout, Refused> {
        value.serialize(self)
    }

    fn serialize_newtype_variant<T: Serialize + ?Sized>(
        self,
        _: &'static str,
        _: u32,
        _: &'static str,
        value: &T,
    ) -> Result<Layout, Refused> {
        Ok(value.serialize(self)?.tagged())
    }

    fn serialize_seq(self, _: Option<usize>) -> Result<Elements<'a>, Refused> {
        Ok(Elements::new(self, false))
    }

    fn serialize_tuple(self, _: usize) -> Result<Fields<'a>, Refused> {
        Ok(Fields::new(self, false))
    }

    fn serialize_tuple_struct(self, _: &'static str, _: usize) -> Result<Fields<'a>, Refused> {
        Ok(Fields::new(self, false))
    }

    fn serialize_tuple_variant(
        self,
        _: &'static str,
        _: u32,
        _: &'static str,
        _: usize,
    ) -> Result<Fields<'a>, Refused> {
        Ok(Fields::new(self, true))
    }

    fn serialize_map(self, _: Option<usize>) -> Result<Elements<'a>, Refused> {
        Ok(Elements::new(self, true))
    }

    fn serialize_struct(self, _: &'static str, _: usize) -> Result<Fields<'a>, Refused> {
        Ok(Fields::new(self, false))
    }

    fn serialize_struct_variant(
        self,
        _: &'static str,
        _: u32,
        _: &'static str,
        _: usize,
    ) -> Result<Fields<'a>, Refused> {
        Ok(Fields::new(self, true))
    }
}

impl ser::SerializeSeq for Elements<'_> {
    type Ok = Layout;
    type Error = Refused;
    fn serialize_element<T: Serialize + ?Sized>(&mut self, value: &T) -> Result<(), Refused> {
        self.add(value)
    }
    fn end(self) -> Result<Layout, Refused> {
        Ok(self.finish())
    }
}

impl ser::SerializeMap for Elements<'_> {
    type Ok = Layout;
    type Error = Refused;
    fn serialize_key<T: Serialize + ?Sized>(&mut self, key: &T) -> Result<(), Refused> {
        self.add(key)
    }
    fn serialize_value<T: Serialize + ?Sized>(&mut self, value: &T) -> Result<(), Refused> {
        self.add(value)
    }
    fn end(self) -> Result<Layout, Refused> {
        Ok(self.finish())
    }
}

macro_rules! fields {
    ($($trait:ident :: $method:ident),*) => {$(
        impl ser::$trait for Fields<'_> {
            type Ok = Layout;
            type Error = Refused;
            fn $method<T: Serialize + ?Sized>(&mut self, value: &T) -> Result<(), Refused> {
                self.add(value)
            }
            fn end(self) -> Result<Layout, Refused> {
                Ok(self.finish())
            }
        }
    )*};
}
fields!(
    SerializeTuple::serialize_element,
    SerializeTupleStruct::serialize_field,
    SerializeTupleVariant::serialize_field
);

macro_rules! named_fields {
    ($($trait:ident),*) => {$(
        impl ser::$trait for Fields<'_> {
            type Ok = Layout;
            type Error = Refused;
            fn serialize_field<T: Serialize + ?Sized>(
                &mut self,
                _: &'static str,
                value: &T,
            ) -> Result<(), Refused> {
                self.add(value)
            }
            fn end(self) -> Result<Layout, Refused> {
                Ok(self.finish())
            }
        }
    )*};
}
named_fields!(SerializeStruct, SerializeStructVariant);

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::{BTreeMap, HashMap};

    /// What the allocations behind a value really take, computed by hand from std's layouts.
    fn at_least(value: usize, real: usize) {
        assert!(value >= real, "estimated {value} < real {real}");
    }

    #[test]
    fn vectors_of_small_integers_are_charged_at_their_decoded_width() {
        let v: Vec<u64> = (0..1000).map(|i| i % 100).collect();
        // MessagePack stores these in one byte each; decoded, each takes eight.
        let estimate = decoded_size(&v);
        at_least(estimate, 24 + 8000);
        assert!(estimate < 24 + 8000 + 100, "{estimate}");
    }

    #[test]
    fn strings_and_nested_collections() {
        let words: Vec<String> = (0..100).map(|i| format!("word number {i}")).collect();
        let heap: usize = words.iter().map(|w| w.len()).sum();
        at_least(decoded_size(&words), 24 + 100 * 24 + heap);
        let nested: Vec<Vec<u8>> = vec![vec![]; 50];
        at_least(decoded_size(&nested), 24 + 50 * 24);
        let options: Vec<Option<u64>> = vec![None, Some(1), None];
        at_least(decoded_size(&options), 24 + 3 * 16);
        let map: HashMap<u64, String> = (0..100).map(|i| (i, i.to_string())).collect();
        at_least(decoded_size(&map), 48 + 100 * (8 + 24));
        let tree: BTreeMap<u32, u32> = (0..100).map(|i| (i, i)).collect();
        at_least(decoded_size(&tree), 24 + 100 * 8);
    }

    #[test]
    fn structs_and_enums_count_their_fields() {
        #[derive(serde::Serialize)]
        struct User {
            id: u64,
            name: String,
            tags: Vec<String>,
            kind: Kind,
        }
        #[derive(serde::Serialize)]
        enum Kind {
            Admin { since: u64 },
        }
        let user = User {
            id: 1,
            name: "ada lovelace".into(),
            tags: vec!["a".into(), "b".into()],
            kind: Kind::Admin { since: 3 },
        };
        at_least(decoded_size(&user), size_of::<User>() + 12 + 2 * 24 + 2);
        assert_eq!(allocation(0), 0);
        assert_eq!(allocation(1), 32);
        assert_eq!(allocation(40), 48);
    }
}
