//! A serde `Serializer` that writes canonical JSON straight into bytes.
//!
//! It writes what `serde_json::to_value` followed by the sorted writer wrote before for every
//! value without floats (the tests hold the two to the same bytes), without building a
//! `Value` tree. A float is refused wherever it stands — the old path let NaN and infinities
//! through as `null`, a float map key through as text, and a float member through when a
//! later member of the same name replaced it; none of our types holds a float. Scalars and
//! arrays go straight to the output, and an object writes its members' keys and values into
//! one scratch buffer, then emits them sorted by key bytes (the last of equal keys wins, as a
//! `Value` map's insert did).

use super::CanonicalError;
use serde::ser::{self, Impossible, Serialize};
use std::ops::Range;

/// The struct name serde_json's `RawValue` serializes under: its one field is JSON text.
const RAW_VALUE: &str = "$serde_json::private::RawValue";

pub(super) struct Writer<'a> {
    pub(super) out: &'a mut Vec<u8>,
}

fn string(out: &mut Vec<u8>, text: &str) -> Result<(), CanonicalError> {
    serde_json::to_writer(out, text)?;
    Ok(())
}

/// `{"variant":`, the opening of an externally tagged variant with content.
fn open_variant(out: &mut Vec<u8>, variant: &str) -> Result<(), CanonicalError> {
    out.push(b'{');
    string(out, variant)?;
    out.push(b':');
    Ok(())
}

fn integer(out: &mut Vec<u8>, n: impl itoa::Integer) {
    out.extend_from_slice(itoa::Buffer::new().format(n).as_bytes());
}

fn float(v: impl std::fmt::Display) -> Result<(), CanonicalError> {
    Err(CanonicalError::Float(v.to_string()))
}

/// An integer beyond 64 bits has no JSON number in serde_json's `Value` either.
fn wide<T: TryInto<i64> + TryInto<u64> + Copy + std::fmt::Display>(
    out: &mut Vec<u8>,
    n: T,
) -> Result<(), CanonicalError> {
    if let Ok(v) = TryInto::<u64>::try_into(n) {
        integer(out, v);
    } else if let Ok(v) = TryInto::<i64>::try_into(n) {
        integer(out, v);
    } else {
        return Err(ser::Error::custom(format_args!("{n} does not fit a 64-bit integer")));
    }
    Ok(())
}

/// `serialize_<int>` methods that write the integer's decimal text.
macro_rules! integers {
    ($($method:ident: $ty:ty),*) => {$(
        fn $method(self, v: $ty) -> Result<(), CanonicalError> {
            integer(self.out, v);
            Ok(())
        }
    )*};
}

/// `serialize_f32` and `serialize_f64`: canonical JSON has no floats.
macro_rules! floats {
    () => {
        fn serialize_f32(self, v: f32) -> Result<(), CanonicalError> {
            float(v)
        }
        fn serialize_f64(self, v: f64) -> Result<(), CanonicalError> {
            float(v)
        }
    };
}

/// A compound's serde trait whose one method forwards to `target`, and whose `end` closes it.
macro_rules! forward_compound {
    ($ty:ident, $trait:ident, $method:ident, ($($arg:ident: $arg_ty:ty),*) => $target:ident) => {
        impl ser::$trait for $ty<'_> {
            type Ok = ();
            type Error = CanonicalError;
            fn $method<T: ?Sized + Serialize>(&mut self, $($arg: $arg_ty,)* value: &T) -> Result<(), CanonicalError> {
                self.$target($($arg,)* value)
            }
            fn end(self) -> Result<(), CanonicalError> {
                self.close()
            }
        }
    };
}

impl<'a> ser::Serializer for Writer<'a> {
    type Ok = ();
    type Error = CanonicalError;
    type SerializeSeq = Array<'a>;
    type SerializeTuple = Array<'a>;
    type SerializeTupleStruct = Array<'a>;
    type SerializeTupleVariant = Array<'a>;
    type SerializeMap = Object<'a>;
    type SerializeStruct = Object<'a>;
    type SerializeStructVariant = Object<'a>;

    fn serialize_bool(self, v: bool) -> Result<(), CanonicalError> {
        self.out.extend_from_slice(if v { b"true" } else { b"false" });
        Ok(())
    }
    integers!(serialize_i8: i8, serialize_i16: i16, serialize_i32: i32, serialize_i64: i64);
    integers!(serialize_u8: u8, serialize_u16: u16, serialize_u32: u32, serialize_u64: u64);
    fn serialize_i128(self, v: i128) -> Result<(), CanonicalError> {
        wide(self.out, v)
    }
    fn serialize_u128(self, v: u128) -> Result<(), CanonicalError> {
        wide(self.out, v)
    }
    floats!();
    fn serialize_char(self, v: char) -> Result<(), CanonicalError> {
        string(self.out, v.encode_utf8(&mut [0; 4]))
    }
    fn serialize_str(self, v: &str) -> Result<(), CanonicalError> {
        string(self.out, v)
    }
    fn serialize_bytes(self, v: &[u8]) -> Result<(), CanonicalError> {
        use ser::SerializeSeq;
        let mut array = self.serialize_seq(Some(v.len()))?;
        for b in v {
            array.serialize_element(b)?;
        }
        array.end()
    }
    fn serialize_none(self) -> Result<(), CanonicalError> {
        self.serialize_unit()
    }
    fn serialize_some<T: ?Sized + Serialize>(self, value: &T) -> Result<(), CanonicalError> {
        value.serialize(self)
    }
    fn serialize_unit(self) -> Result<(), CanonicalError> {
        self.out.extend_from_slice(b"null");
        Ok(())
    }
    fn serialize_unit_struct(self, _: &'static str) -> Result<(), CanonicalError> {
        self.serialize_unit()
    }
    fn serialize_unit_variant(self, _: &'static str, _: u32, variant: &'static str) -> Result<(), CanonicalError> {
        string(self.out, variant)
    }
    fn serialize_newtype_struct<T: ?Sized + Serialize>(self, _: &'static str, value: &T) -> Result<(), CanonicalError> {
        value.serialize(self)
    }
    fn serialize_newtype_variant<T: ?Sized + Serialize>(
        self,
        _: &'static str,
        _: u32,
        variant: &'static str,
        value: &T,
    ) -> Result<(), CanonicalError> {
        open_variant(self.out, variant)?;
        value.serialize(Writer { out: &mut *self.out })?;
        self.out.push(b'}');
        Ok(())
    }
    fn serialize_seq(self, _: Option<usize>) -> Result<Array<'a>, CanonicalError> {
        self.out.push(b'[');
        Ok(Array { out: self.out, first: true, close: b"]" })
    }
    fn serialize_tuple(self, len: usize) -> Result<Array<'a>, CanonicalError> {
        self.serialize_seq(Some(len))
    }
    fn serialize_tuple_struct(self, _: &'static str, len: usize) -> Result<Array<'a>, CanonicalError> {
        self.serialize_seq(Some(len))
    }
    fn serialize_tuple_variant(
        self,
        _: &'static str,
        _: u32,
        variant: &'static str,
        _: usize,
    ) -> Result<Array<'a>, CanonicalError> {
        open_variant(self.out, variant)?;
        self.out.push(b'[');
        Ok(Array { out: self.out, first: true, close: b"]}" })
    }
    fn serialize_map(self, len: Option<usize>) -> Result<Object<'a>, CanonicalError> {
        Ok(Object::new(self.out, len.unwrap_or(8), false))
    }
    fn serialize_struct(self, name: &'static str, len: usize) -> Result<Object<'a>, CanonicalError> {
        let mut object = Object::new(self.out, len, false);
        object.raw = name == RAW_VALUE;
        Ok(object)
    }
    fn serialize_struct_variant(
        self,
        _: &'static str,
        _: u32,
        variant: &'static str,
        len: usize,
    ) -> Result<Object<'a>, CanonicalError> {
        open_variant(self.out, variant)?;
        Ok(Object::new(self.out, len, true))
    }
}

pub(super) struct Array<'a> {
    out: &'a mut Vec<u8>,
    first: bool,
    close: &'static [u8],
}

impl Array<'_> {
    fn element<T: ?Sized + Serialize>(&mut self, value: &T) -> Result<(), CanonicalError> {
        if !std::mem::take(&mut self.first) {
            self.out.push(b',');
        }
        value.serialize(Writer { out: &mut *self.out })
    }
    fn close(self) -> Result<(), CanonicalError> {
        self.out.extend_from_slice(self.close);
        Ok(())
    }
}

forward_compound!(Array, SerializeSeq, serialize_element, () => element);
forward_compound!(Array, SerializeTuple, serialize_element, () => element);
forward_compound!(Array, SerializeTupleStruct, serialize_field, () => element);
forward_compound!(Array, SerializeTupleVariant, serialize_field, () => element);

/// Members an object keeps inline before its list of members goes to the heap: more than
/// any object of ours has but the record body, which the ledger writes by hand.
const MEMBERS_INLINE: usize = 8;
/// Scratch buffers kept per thread for the objects being written: one per level of nesting
/// in use at once, so a few; more are allocated and dropped.
const SCRATCH_POOL_MAX: usize = 8;
/// A scratch buffer larger than this is dropped, not kept: a large object does not pin its
/// memory in the pool.
const SCRATCH_KEPT_BYTES_MAX: usize = 16 << 10;

thread_local! {
    /// Cleared scratch buffers, reused by the next objects written on this thread: an object
    /// used to allocate its scratch and its member list, and a record's command and event
    /// hold several objects each (the allocator was a tenth of `audit verify`'s time).
    static SCRATCH_POOL: std::cell::RefCell<Vec<Vec<u8>>> = const { std::cell::RefCell::new(Vec::new()) };
}

fn scratch_taken(capacity: usize) -> Vec<u8> {
    // `try_with`: a value encoded while this thread's locals are torn down gets a fresh buffer.
    let pooled = SCRATCH_POOL.try_with(|pool| pool.borrow_mut().pop()).ok().flatten();
    pooled.unwrap_or_else(|| Vec::with_capacity(capacity))
}

fn scratch_given_back(mut scratch: Vec<u8>) {
    if scratch.capacity() > SCRATCH_KEPT_BYTES_MAX {
        return;
    }
    scratch.clear();
    let _ = SCRATCH_POOL.try_with(|pool| {
        let mut pool = pool.borrow_mut();
        if pool.len() < SCRATCH_POOL_MAX {
            pool.push(scratch);
        }
    });
}

/// An object being written: each member's raw key and canonical value in `scratch` (a
/// buffer from this thread's pool, given back when the object is dropped), emitted sorted at
/// the end.
pub(super) struct Object<'a> {
    out: &'a mut Vec<u8>,
    scratch: Vec<u8>,
    members: smallvec::SmallVec<[(Range<usize>, Range<usize>); MEMBERS_INLINE]>,
    key: Range<usize>,
    /// A struct variant: `{"variant":{…}}` needs one more brace.
    variant: bool,
    /// A `RawValue`: its text is parsed and written canonically, as `serde_json::to_value` did.
    raw: bool,
}

impl<'a> Object<'a> {
    fn new(out: &'a mut Vec<u8>, members: usize, variant: bool) -> Self {
        let (scratch, members) = (scratch_taken(members * 32), smallvec::SmallVec::with_capacity(members));
        Object { out, scratch, members, key: 0..0, variant, raw: false }
    }

    fn value<T: ?Sized + Serialize>(&mut self, value: &T) -> Result<(), CanonicalError> {
        let start = self.scratch.len();
        value.serialize(Writer { out: &mut self.scratch })?;
        self.members.push((self.key.clone(), start..self.scratch.len()));
        Ok(())
    }

    fn field<T: ?Sized + Serialize>(&mut self, key: &str, value: &T) -> Result<(), CanonicalError> {
        if self.raw {
            return value.serialize(KeyWriter { out: &mut self.scratch });
        }
        let start = self.scratch.len();
        self.scratch.extend_from_slice(key.as_bytes());
        self.key = start..self.scratch.len();
        self.value(value)
    }

    fn close(mut self) -> Result<(), CanonicalError> {
        if self.raw {
            let value: serde_json::Value = serde_json::from_slice(&self.scratch)?;
            return value.serialize(Writer { out: &mut *self.out });
        }
        let scratch = &self.scratch;
        // Stable, so among equal keys the last written stays last; it is the one kept.
        self.members.sort_by(|a, b| scratch[a.0.clone()].cmp(&scratch[b.0.clone()]));
        self.out.push(b'{');
        let mut first = true;
        for (i, (key, value)) in self.members.iter().enumerate() {
            if self.members.get(i + 1).is_some_and(|next| scratch[next.0.clone()] == scratch[key.clone()]) {
                continue;
            }
            if !std::mem::take(&mut first) {
                self.out.push(b',');
            }
            let key = std::str::from_utf8(&scratch[key.clone()]).expect("keys are written from str");
            string(self.out, key)?;
            self.out.push(b':');
            self.out.extend_from_slice(&scratch[value.clone()]);
        }
        self.out.extend_from_slice(if self.variant { b"}}" } else { b"}" });
        Ok(())
    }
}

impl Drop for Object<'_> {
    fn drop(&mut self) {
        scratch_given_back(std::mem::take(&mut self.scratch));
    }
}

impl ser::SerializeMap for Object<'_> {
    type Ok = ();
    type Error = CanonicalError;
    fn serialize_key<T: ?Sized + Serialize>(&mut self, key: &T) -> Result<(), CanonicalError> {
        let start = self.scratch.len();
        key.serialize(KeyWriter { out: &mut self.scratch })?;
        self.key = start..self.scratch.len();
        Ok(())
    }
    fn serialize_value<T: ?Sized + Serialize>(&mut self, value: &T) -> Result<(), CanonicalError> {
        self.value(value)
    }
    fn end(self) -> Result<(), CanonicalError> {
        self.close()
    }
}

forward_compound!(Object, SerializeStruct, serialize_field, (key: &'static str) => field);
forward_compound!(Object, SerializeStructVariant, serialize_field, (key: &'static str) => field);

/// A map key, written raw (unescaped) for sorting: what serde_json's `Value` takes as a key —
/// strings, characters, booleans and integers as their text, unit variants as their name.
struct KeyWriter<'a> {
    out: &'a mut Vec<u8>,
}

fn not_a_key() -> CanonicalError {
    ser::Error::custom("a map key must be a string")
}

impl ser::Serializer for KeyWriter<'_> {
    type Ok = ();
    type Error = CanonicalError;
    type SerializeSeq = Impossible<(), CanonicalError>;
    type SerializeTuple = Impossible<(), CanonicalError>;
    type SerializeTupleStruct = Impossible<(), CanonicalError>;
    type SerializeTupleVariant = Impossible<(), CanonicalError>;
    type SerializeMap = Impossible<(), CanonicalError>;
    type SerializeStruct = Impossible<(), CanonicalError>;
    type SerializeStructVariant = Impossible<(), CanonicalError>;

    fn serialize_bool(self, v: bool) -> Result<(), CanonicalError> {
        self.out.extend_from_slice(if v { b"true" } else { b"false" });
        Ok(())
    }
    floats!();
    integers!(serialize_i8: i8, serialize_i16: i16, serialize_i32: i32, serialize_i64: i64, serialize_i128: i128);
    integers!(serialize_u8: u8, serialize_u16: u16, serialize_u32: u32, serialize_u64: u64, serialize_u128: u128);
    fn serialize_char(self, v: char) -> Result<(), CanonicalError> {
        self.out.extend_from_slice(v.encode_utf8(&mut [0; 4]).as_bytes());
        Ok(())
    }
    fn serialize_str(self, v: &str) -> Result<(), CanonicalError> {
        self.out.extend_from_slice(v.as_bytes());
        Ok(())
    }
    fn serialize_bytes(self, _: &[u8]) -> Result<(), CanonicalError> {
        Err(not_a_key())
    }
    fn serialize_none(self) -> Result<(), CanonicalError> {
        Err(not_a_key())
    }
    fn serialize_some<T: ?Sized + Serialize>(self, _: &T) -> Result<(), CanonicalError> {
        Err(not_a_key())
    }
    fn serialize_unit(self) -> Result<(), CanonicalError> {
        Err(not_a_key())
    }
    fn serialize_unit_struct(self, _: &'static str) -> Result<(), CanonicalError> {
        Err(not_a_key())
    }
    fn serialize_unit_variant(self, _: &'static str, _: u32, variant: &'static str) -> Result<(), CanonicalError> {
        self.serialize_str(variant)
    }
    fn serialize_newtype_struct<T: ?Sized + Serialize>(self, _: &'static str, value: &T) -> Result<(), CanonicalError> {
        value.serialize(self)
    }
    fn serialize_newtype_variant<T: ?Sized + Serialize>(
        self,
        _: &'static str,
        _: u32,
        _: &'static str,
        _: &T,
    ) -> Result<(), CanonicalError> {
        Err(not_a_key())
    }
    fn serialize_seq(self, _: Option<usize>) -> Result<Self::SerializeSeq, CanonicalError> {
        Err(not_a_key())
    }
    fn serialize_tuple(self, _: usize) -> Result<Self::SerializeTuple, CanonicalError> {
        Err(not_a_key())
    }
    fn serialize_tuple_struct(self, _: &'static str, _: usize) -> Result<Self::SerializeTupleStruct, CanonicalError> {
        Err(not_a_key())
    }
    fn serialize_tuple_variant(
        self,
        _: &'static str,
        _: u32,
        _: &'static str,
        _: usize,
    ) -> Result<Self::SerializeTupleVariant, CanonicalError> {
        Err(not_a_key())
    }
    fn serialize_map(self, _: Option<usize>) -> Result<Self::SerializeMap, CanonicalError> {
        Err(not_a_key())
    }
    fn serialize_struct(self, _: &'static str, _: usize) -> Result<Self::SerializeStruct, CanonicalError> {
        Err(not_a_key())
    }
    fn serialize_struct_variant(
        self,
        _: &'static str,
        _: u32,
        _: &'static str,
        _: usize,
    ) -> Result<Self::SerializeStructVariant, CanonicalError> {
        Err(not_a_key())
    }
}
