//! A deserializer over a parsed JSON value that reads a struct only from an object.
//!
//! serde's derived `Deserialize` also accepts a struct written as a list of its fields in
//! order (`[["read"], 5]` for `{"scopes": ["read"], "ttl_seconds": 5}`), which skips
//! `deny_unknown_fields` and every name check. No client of this API means that, so
//! request bodies are read through [`Strict`], which refuses the list form at any depth.
//! Everything else behaves as `serde_json::Value`'s own deserializer. The JSON bodies of
//! every route and deploy specs are read this way, after [`shape`] has checked them.

pub mod shape;

use serde::de::value::{MapDeserializer, SeqDeserializer};
use serde::de::{
    self, DeserializeSeed, Deserializer, EnumAccess, IntoDeserializer, Unexpected, VariantAccess, Visitor,
};
use serde::forward_to_deserialize_any;
use serde_json::{Error, Value};

/// Reads JSON text into a value, refusing an object that repeats a key (which a struct
/// read straight from the text would refuse as a duplicate field, and `Value` would
/// silently resolve to the last).
pub fn value_from_slice(bytes: &[u8]) -> Result<Value, Error> {
    let mut deserializer = serde_json::Deserializer::from_slice(bytes);
    let value = UniqueKeys.deserialize(&mut deserializer)?;
    deserializer.end()?;
    Ok(value)
}

/// Reads any self-describing format (YAML) into a JSON value, refusing repeated keys.
pub fn value_from<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Value, D::Error> {
    UniqueKeys.deserialize(deserializer)
}

struct UniqueKeys;

impl<'de> DeserializeSeed<'de> for UniqueKeys {
    type Value = Value;

    fn deserialize<D: Deserializer<'de>>(self, deserializer: D) -> Result<Value, D::Error> {
        deserializer.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for UniqueKeys {
    type Value = Value;

    fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("any JSON value")
    }

    fn visit_bool<E>(self, v: bool) -> Result<Value, E> {
        Ok(Value::Bool(v))
    }

    fn visit_i64<E>(self, v: i64) -> Result<Value, E> {
        Ok(Value::from(v))
    }

    fn visit_u64<E>(self, v: u64) -> Result<Value, E> {
        Ok(Value::from(v))
    }

    fn visit_f64<E>(self, v: f64) -> Result<Value, E> {
        Ok(serde_json::Number::from_f64(v).map_or(Value::Null, Value::Number))
    }

    fn visit_str<E>(self, v: &str) -> Result<Value, E> {
        Ok(Value::String(v.to_owned()))
    }

    fn visit_string<E>(self, v: String) -> Result<Value, E> {
        Ok(Value::String(v))
    }

    fn visit_unit<E>(self) -> Result<Value, E> {
        Ok(Value::Null)
    }

    fn visit_seq<A: de::SeqAccess<'de>>(self, mut seq: A) -> Result<Value, A::Error> {
        let mut items = Vec::new();
        while let Some(item) = seq.next_element_seed(UniqueKeys)? {
            items.push(item);
        }
        Ok(Value::Array(items))
    }

    fn visit_map<A: de::MapAccess<'de>>(self, mut map: A) -> Result<Value, A::Error> {
        let mut entries = serde_json::Map::new();
        while let Some(key) = map.next_key::<String>()? {
            let value = map.next_value_seed(UniqueKeys)?;
            if entries.contains_key(&key) {
                return Err(de::Error::custom(format_args!("duplicate field `{key}`")));
            }
            entries.insert(key, value);
        }
        Ok(Value::Object(entries))
    }
}

/// A JSON value to deserialize from, with structs only from objects.
#[derive(Clone, Copy)]
pub struct Strict<'a>(pub &'a Value);

fn unexpected(value: &Value) -> Unexpected<'_> {
    match value {
        Value::Null => Unexpected::Unit,
        Value::Bool(b) => Unexpected::Bool(*b),
        Value::Number(n) => match (n.as_u64(), n.as_i64()) {
            (Some(u), _) => Unexpected::Unsigned(u),
            (None, Some(i)) => Unexpected::Signed(i),
            _ => Unexpected::Float(n.as_f64().unwrap_or(f64::NAN)),
        },
        Value::String(s) => Unexpected::Str(s),
        Value::Array(_) => Unexpected::Seq,
        Value::Object(_) => Unexpected::Map,
    }
}

impl<'de> IntoDeserializer<'de, Error> for Strict<'de> {
    type Deserializer = Self;

    fn into_deserializer(self) -> Self {
        self
    }
}

impl<'de> Deserializer<'de> for Strict<'de> {
    type Error = Error;

    fn deserialize_any<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Error> {
        match self.0 {
            Value::Null => visitor.visit_unit(),
            Value::Bool(b) => visitor.visit_bool(*b),
            Value::Number(n) => match (n.as_u64(), n.as_i64(), n.as_f64()) {
                (Some(u), _, _) => visitor.visit_u64(u),
                (None, Some(i), _) => visitor.visit_i64(i),
                (None, None, Some(f)) => visitor.visit_f64(f),
                _ => Err(de::Error::custom("a number out of range")),
            },
            Value::String(s) => visitor.visit_borrowed_str(s),
            Value::Array(items) => {
                let mut seq = SeqDeserializer::new(items.iter().map(Strict));
                let value = visitor.visit_seq(&mut seq)?;
                seq.end()?;
                Ok(value)
            }
            Value::Object(entries) => {
                let mut map = MapDeserializer::new(entries.iter().map(|(k, v)| (k.as_str(), Strict(v))));
                let value = visitor.visit_map(&mut map)?;
                map.end()?;
                Ok(value)
            }
        }
    }

    fn deserialize_option<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Error> {
        match self.0 {
            Value::Null => visitor.visit_none(),
            _ => visitor.visit_some(self),
        }
    }

    fn deserialize_newtype_struct<V: Visitor<'de>>(
        self,
        _name: &'static str,
        visitor: V,
    ) -> Result<V::Value, Error> {
        visitor.visit_newtype_struct(self)
    }

    fn deserialize_struct<V: Visitor<'de>>(
        self,
        _name: &'static str,
        _fields: &'static [&'static str],
        visitor: V,
    ) -> Result<V::Value, Error> {
        match self.0 {
            Value::Object(_) => self.deserialize_any(visitor),
            other => Err(de::Error::invalid_type(unexpected(other), &visitor)),
        }
    }

    fn deserialize_enum<V: Visitor<'de>>(
        self,
        _name: &'static str,
        _variants: &'static [&'static str],
        visitor: V,
    ) -> Result<V::Value, Error> {
        match self.0 {
            Value::String(variant) => visitor.visit_enum(Variant { name: variant, value: None }),
            Value::Object(entries) => match entries.iter().next() {
                Some((name, value)) if entries.len() == 1 => {
                    visitor.visit_enum(Variant { name, value: Some(value) })
                }
                _ => Err(de::Error::invalid_type(Unexpected::Map, &"a string or an object with one key")),
            },
            other => Err(de::Error::invalid_type(unexpected(other), &"a string or an object with one key")),
        }
    }

    fn deserialize_i8<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Error> {
        whole_number(self, visitor)
    }

    fn deserialize_i16<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Error> {
        whole_number(self, visitor)
    }

    fn deserialize_i32<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Error> {
        whole_number(self, visitor)
    }

    fn deserialize_i64<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Error> {
        whole_number(self, visitor)
    }

    fn deserialize_u8<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Error> {
        whole_number(self, visitor)
    }

    fn deserialize_u16<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Error> {
        whole_number(self, visitor)
    }

    fn deserialize_u32<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Error> {
        whole_number(self, visitor)
    }

    fn deserialize_u64<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Error> {
        whole_number(self, visitor)
    }

    /// A name (the `kind` of an internally tagged enum) is text: serde would also take a
    /// variant's number (`{"kind": 0}`).
    fn deserialize_identifier<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Error> {
        match self.0 {
            Value::String(name) => visitor.visit_borrowed_str(name),
            other => Err(de::Error::invalid_type(unexpected(other), &"a name")),
        }
    }

    forward_to_deserialize_any! {
        bool i128 u128 f32 f64 char str string bytes byte_buf
        unit unit_struct seq tuple tuple_struct map ignored_any
    }
}

/// An integer field also reads a whole number written with a fraction (`2.0`): JSON (and
/// JSON Schema's `integer`) has one kind of number, and clients whose numbers are all
/// floats write integers that way. Anything else reads as `Value` reads it.
fn whole_number<'de, V: Visitor<'de>>(strict: Strict<'de>, visitor: V) -> Result<V::Value, Error> {
    /// 2^64: the first whole float past `u64::MAX`.
    const PAST_U64: f64 = 18_446_744_073_709_551_616.0;
    let whole = match strict.0 {
        Value::Number(n) if !n.is_u64() && !n.is_i64() => n.as_f64().filter(|f| f.fract() == 0.0),
        _ => None,
    };
    match whole {
        Some(f) if (0.0..PAST_U64).contains(&f) => visitor.visit_u64(f as u64),
        Some(f) if f >= i64::MIN as f64 && f < 0.0 => visitor.visit_i64(f as i64),
        _ => strict.deserialize_any(visitor),
    }
}

/// An enum written `"name"` or `{"name": value}`.
struct Variant<'de> {
    name: &'de str,
    value: Option<&'de Value>,
}

impl<'de> EnumAccess<'de> for Variant<'de> {
    type Error = Error;
    type Variant = Self;

    fn variant_seed<S: DeserializeSeed<'de>>(self, seed: S) -> Result<(S::Value, Self), Error> {
        let name = seed.deserialize(de::value::BorrowedStrDeserializer::<Error>::new(self.name))?;
        Ok((name, self))
    }
}

impl<'de> VariantAccess<'de> for Variant<'de> {
    type Error = Error;

    fn unit_variant(self) -> Result<(), Error> {
        match self.value {
            None | Some(Value::Null) => Ok(()),
            Some(other) => Err(de::Error::invalid_type(unexpected(other), &"a unit variant")),
        }
    }

    fn newtype_variant_seed<S: DeserializeSeed<'de>>(self, seed: S) -> Result<S::Value, Error> {
        match self.value {
            Some(value) => seed.deserialize(Strict(value)),
            None => Err(de::Error::invalid_type(Unexpected::UnitVariant, &"a newtype variant")),
        }
    }

    fn tuple_variant<V: Visitor<'de>>(self, _len: usize, visitor: V) -> Result<V::Value, Error> {
        match self.value {
            Some(value) => Strict(value).deserialize_seq(visitor),
            None => Err(de::Error::invalid_type(Unexpected::UnitVariant, &"a tuple variant")),
        }
    }

    fn struct_variant<V: Visitor<'de>>(
        self,
        fields: &'static [&'static str],
        visitor: V,
    ) -> Result<V::Value, Error> {
        match self.value {
            Some(value) => Strict(value).deserialize_struct("", fields, visitor),
            None => Err(de::Error::invalid_type(Unexpected::UnitVariant, &"a struct variant")),
        }
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use serde::Deserialize;
    use serde_json::json;

    use super::*;

    #[derive(Debug, PartialEq, Deserialize)]
    #[serde(deny_unknown_fields)]
    struct Token {
        scopes: Option<Vec<String>>,
        ttl_seconds: Option<u32>,
        limit: Option<Limit>,
    }

    #[derive(Debug, PartialEq, Deserialize)]
    struct Limit {
        capacity: u32,
    }

    #[derive(Debug, PartialEq, Deserialize)]
    #[serde(rename_all = "snake_case")]
    enum Kind {
        Plain,
        Wrapped(u8),
        Shaped { a: bool },
    }

    #[derive(Debug, PartialEq, Deserialize)]
    #[serde(tag = "kind", rename_all = "snake_case")]
    enum Tagged {
        Http { url: String },
    }

    fn read<T: serde::de::DeserializeOwned>(value: Value) -> Result<T, Error> {
        T::deserialize(Strict(&value))
    }

    #[test]
    fn a_struct_is_read_from_an_object_only_at_any_depth() {
        let token: Token =
            read(json!({"scopes": ["read"], "ttl_seconds": 5, "limit": {"capacity": 1}})).unwrap();
        assert_eq!(token.limit, Some(Limit { capacity: 1 }));
        let refused = read::<Token>(json!([["read"], 5])).unwrap_err().to_string();
        assert!(refused.contains("invalid type: sequence, expected struct Token"), "{refused}");
        assert!(read::<Token>(json!({"limit": [1]})).is_err());
        assert!(read::<Vec<Limit>>(json!([[1]])).is_err());
    }

    #[test]
    fn a_repeated_key_is_refused() {
        let error = value_from_slice(br#"{"a": {"b": 1, "b": 2}}"#).unwrap_err();
        assert!(error.to_string().starts_with("duplicate field `b`"), "{error}");
        assert_eq!(
            value_from_slice(br#"{"a": [{"b": 1}, {"b": 2}]}"#).unwrap(),
            json!({"a": [{"b": 1}, {"b": 2}]})
        );
        assert!(value_from_slice(b"{} x").is_err());
    }

    #[test]
    fn everything_else_reads_as_serde_json_reads_it() {
        let cases = [
            json!({"scopes": null, "ttl_seconds": 7}),
            json!({"scopes": ["a", "b"]}),
            json!({"ttl_seconds": -1}),
            json!({"ttl_seconds": 1.5}),
            json!({"ttl_seconds": "5"}),
            json!({"other": 1}),
            json!({}),
            json!(null),
        ];
        for case in cases {
            let ours = read::<Token>(case.clone()).map_err(|e| e.to_string());
            let theirs = serde_json::from_value::<Token>(case.clone()).map_err(|e| e.to_string());
            assert_eq!(ours, theirs, "{case}");
        }
        assert_eq!(read::<Kind>(json!("plain")).unwrap(), Kind::Plain);
        assert_eq!(read::<Kind>(json!({"wrapped": 3})).unwrap(), Kind::Wrapped(3));
        assert_eq!(read::<Kind>(json!({"shaped": {"a": true}})).unwrap(), Kind::Shaped { a: true });
        assert!(read::<Kind>(json!({"shaped": [true]})).is_err());
        assert_eq!(
            read::<Tagged>(json!({"kind": "http", "url": "x"})).unwrap(),
            Tagged::Http { url: "x".into() }
        );
        let by_number = read::<Tagged>(json!({"kind": 0, "url": "x"})).unwrap_err().to_string();
        assert!(by_number.contains("expected a name"), "{by_number}");
        let map: BTreeMap<String, Value> = read(json!({"a": [1, {"b": null}]})).unwrap();
        assert_eq!(map["a"], json!([1, {"b": null}]));
        let big: u64 = read(json!(u64::MAX)).unwrap();
        assert_eq!(big, u64::MAX);
    }

    #[test]
    fn a_whole_number_written_with_a_fraction_is_an_integer() {
        let token: Token = read(json!({"ttl_seconds": 5.0})).unwrap();
        assert_eq!(token.ttl_seconds, Some(5));
        assert_eq!(read::<i32>(json!(-3.0)).unwrap(), -3);
        for refused in [json!(1.5), json!(-1.0), json!(4294967296.0), json!(1e300)] {
            assert!(read::<u32>(refused.clone()).is_err(), "{refused}");
        }
        assert_eq!(read::<Value>(json!(2.0)).unwrap(), json!(2.0), "only integer fields change");
    }
}
