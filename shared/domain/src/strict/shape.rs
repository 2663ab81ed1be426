//! The one error style of every JSON (and YAML) request body: every problem of its shape
//! at once, each with its JSON path, and a "did you mean" for a near miss.
//!
//! serde stops at the first problem. So a body is first walked against a small
//! description of its type, a [`Shape`], which finds every unknown field (with the
//! nearest known name), every missing required field, every value of the wrong type and
//! every value outside a fixed set (with the nearest allowed one); only a body of the
//! right shape is then read into its type (through [`super::Strict`]), and the type's
//! own rules (an id's pattern, a URL's scheme) are checked on that.
//!
//! A shape is written beside its type and says what serde accepts: `required` for a
//! field that is neither an `Option` nor `#[serde(default)]`, [`Shape::Nullable`] for an
//! `Option`. Should the two ever disagree, serde's own first error is still reported
//! (with its path), so a body is never let through that the type refuses; the tests in
//! `shapes` compare every struct's field names with serde's.
//!
//! The walk visits each value once and keeps no more than [`crate::validation::MAX_REPORTED`]
//! messages, so its work is bounded by the body's size.

use serde::de::DeserializeOwned;
use serde_json::Value;

use crate::validation::{ValidationErrors, unknown_field, unknown_value};

/// What a JSON value must look like.
#[derive(Debug, Clone, Copy)]
pub enum Shape {
    /// Anything (a payload, an inline document).
    Any,
    Str,
    Bool,
    /// Any number.
    Num,
    /// A whole number from `min` to `max` (`3.0` counts as whole).
    Int {
        min: f64,
        max: f64,
    },
    /// `null`, or the inner shape (an `Option`).
    Nullable(&'static Shape),
    List(&'static Shape),
    /// An object with any keys, each value of the inner shape.
    Map(&'static Shape),
    Object(&'static Object),
    /// A string out of a fixed set.
    Enum(&'static Enum),
    /// An object whose `tag` field names its variant (serde's internally tagged enum).
    Tagged(&'static Tagged),
    /// An object with exactly one key, which names the variant (serde's externally
    /// tagged enum): `{"s3": {...}}`.
    OneKey(&'static Object),
}

impl Shape {
    /// A whole number that fits a `u32`.
    pub const U32: Shape = Shape::Int { min: 0.0, max: u32::MAX as f64 };
    /// A whole number that fits a `usize` on every target we build for (`u64`).
    pub const COUNT: Shape = Shape::Int { min: 0.0, max: u64::MAX as f64 };

    fn noun(&self) -> String {
        match self {
            Shape::Any => "anything".into(),
            Shape::Str => "a string".into(),
            Shape::Bool => "a boolean".into(),
            Shape::Num => "a number".into(),
            Shape::Int { min, max } => format!("a whole number from {min} to {max}"),
            Shape::Nullable(inner) => format!("{} or null", inner.noun()),
            Shape::List(_) => "a list".into(),
            Shape::Map(_) | Shape::Object(_) | Shape::Tagged(_) | Shape::OneKey(_) => "an object".into(),
            Shape::Enum(e) => format!("one of {}", quoted(e.values)),
        }
    }
}

/// An object with a fixed set of fields. `what` names it in messages (`an agent`).
#[derive(Debug, Clone, Copy)]
pub struct Object {
    pub what: &'static str,
    pub fields: &'static [Field],
}

#[derive(Debug, Clone, Copy)]
pub struct Field {
    pub name: &'static str,
    pub shape: Shape,
    pub required: bool,
}

impl Field {
    /// A field that must be given.
    pub const fn required(name: &'static str, shape: Shape) -> Self {
        Self { name, shape, required: true }
    }

    /// A field that may be left out.
    pub const fn optional(name: &'static str, shape: Shape) -> Self {
        Self { name, shape, required: false }
    }
}

/// A string out of a fixed set. `what` names it in messages (`agent status`); an alias
/// is accepted as well, but never suggested.
#[derive(Debug, Clone, Copy)]
pub struct Enum {
    pub what: &'static str,
    pub values: &'static [&'static str],
    pub aliases: &'static [&'static str],
}

/// An object whose `tag` field names its variant.
#[derive(Debug, Clone, Copy)]
pub struct Tagged {
    pub tag: &'static str,
    /// What the tag's value is called in messages: `target kind`.
    pub what: &'static str,
    /// What the object is called: `a target`.
    pub object: &'static str,
    pub variants: &'static [Variant],
}

#[derive(Debug, Clone, Copy)]
pub struct Variant {
    pub name: &'static str,
    /// Other spellings accepted on input (`bedrock-agent` for `bedrock_agent`).
    pub aliases: &'static [&'static str],
    /// Its fields, other than the tag.
    pub fields: &'static [Field],
}

/// A request body type with its shape.
pub trait Shaped: DeserializeOwned {
    fn shape() -> &'static Shape;

    /// The type's own rules, checked on a value that reads (paths under `$`), so that a
    /// report holds them beside any problem of the shape. Those that need the world (a
    /// clock, a store) are checked again by the service.
    fn rules(&self) -> ValidationErrors {
        ValidationErrors::new()
    }

    /// Whether `null` reads (as `None`).
    fn nullable() -> bool {
        false
    }
}

/// An optional body: `null` is `None`.
impl<T: Shaped> Shaped for Option<T> {
    fn shape() -> &'static Shape {
        T::shape()
    }

    fn rules(&self) -> ValidationErrors {
        self.as_ref().map(T::rules).unwrap_or_default()
    }

    fn nullable() -> bool {
        true
    }
}

/// Every problem of `value`'s shape, with paths under `$`.
pub fn check(value: &Value, shape: &Shape) -> ValidationErrors {
    let mut errors = ValidationErrors::new();
    let mut path = String::from("$");
    walk(value, shape, &mut path, &mut errors);
    errors
}

/// Reads `value` into `T`, reporting every problem at once: those of its shape and,
/// where the value still reads once its unknown and unreadable optional fields are set
/// aside, the type's own
/// [`Shaped::rules`] at every path the shape left alone.
pub fn read<T: Shaped>(value: &Value) -> Result<T, ValidationErrors> {
    if T::nullable() && value.is_null() {
        return typed(value);
    }
    let mut errors = check(value, T::shape());
    let read = if errors.is_empty() {
        typed::<T>(value)?
    } else {
        let mut known = value.clone();
        prune(&mut known, T::shape());
        match typed::<T>(&known) {
            Ok(read) => read,
            Err(_) => return Err(errors),
        }
    };
    let shaped: Vec<String> = errors.errors().iter().map(|e| e.path.clone()).collect();
    for rule in read.rules().errors() {
        let overlaps = |path: &String| rule.path.starts_with(path.as_str()) || path.starts_with(&rule.path);
        if !shaped.iter().any(overlaps) {
            errors.add(rule.path.clone(), rule.message.clone());
        }
    }
    errors.into_result(read)
}

/// Takes out every key the shape does not know, and every optional field that is not of
/// its shape, at any depth.
fn prune(value: &mut Value, shape: &Shape) {
    match (shape, value) {
        (Shape::Nullable(inner), value) => prune(value, inner),
        (Shape::List(item), Value::Array(items)) => items.iter_mut().for_each(|v| prune(v, item)),
        (Shape::Map(item), Value::Object(entries)) => entries.values_mut().for_each(|v| prune(v, item)),
        (Shape::Object(object) | Shape::OneKey(object), Value::Object(entries)) => {
            prune_fields(entries, object.fields, None)
        }
        (Shape::Tagged(tagged), Value::Object(entries)) => {
            let name = entries.get(tagged.tag).and_then(Value::as_str).unwrap_or_default().to_owned();
            if let Some(chosen) =
                tagged.variants.iter().find(|v| v.name == name || v.aliases.contains(&name.as_str()))
            {
                prune_fields(entries, chosen.fields, Some(tagged.tag));
            }
        }
        _ => {}
    }
}

fn prune_fields(entries: &mut serde_json::Map<String, Value>, known: &[Field], tag: Option<&str>) {
    entries.retain(|key, _| Some(key.as_str()) == tag || known.iter().any(|f| f.name == key));
    for field in known {
        if let Some(value) = entries.get_mut(field.name) {
            prune(value, &field.shape);
            // An optional field that still does not read is set aside too (its problem is
            // reported already), so that the rules of everything else still run — but not
            // a tagged one: its tag chooses which rules apply, and its default would
            // bring the rules of a kind the caller did not ask for.
            if !field.required
                && !matches!(field.shape, Shape::Tagged(_))
                && !check(value, &field.shape).is_empty()
            {
                entries.remove(field.name);
            }
        }
    }
}

/// serde's read, its first problem with its path.
fn typed<T: DeserializeOwned>(value: &Value) -> Result<T, ValidationErrors> {
    serde_path_to_error::deserialize(super::Strict(value)).map_err(|e| {
        let path = serde_path(&e.path().to_string());
        let error = e.into_inner();
        let full = error.to_string();
        let message = full.rfind(" at line ").map_or(full.as_str(), |i| &full[..i]);
        // serde reports a missing field at its parent; point at the field itself.
        match message.strip_prefix("missing field `").and_then(|rest| rest.split('`').next()) {
            Some(name) => ValidationErrors::single(format!("{path}.{name}"), "is required"),
            None => ValidationErrors::single(path, message),
        }
    })
}

/// serde_path_to_error writes `a.b[1]`, and `.` for the root; we write `$.a.b[1]`.
fn serde_path(raw: &str) -> String {
    match raw {
        "" | "." => "$".into(),
        _ if raw.starts_with('[') => format!("${raw}"),
        _ => format!("$.{raw}"),
    }
}

fn walk(value: &Value, shape: &Shape, path: &mut String, errors: &mut ValidationErrors) {
    match (shape, value) {
        (Shape::Any, _)
        | (Shape::Nullable(_), Value::Null)
        | (Shape::Str, Value::String(_))
        | (Shape::Bool, Value::Bool(_))
        | (Shape::Num, Value::Number(_)) => {}
        (Shape::Nullable(inner), _) => walk(value, inner, path, errors),
        (Shape::Int { min, max }, Value::Number(n)) => {
            let whole = n.as_f64().is_some_and(|f| f.fract() == 0.0 && f >= *min && f <= *max);
            if !whole {
                errors.add(path.as_str(), format!("must be {}, not {n}", shape.noun()));
            }
        }
        (Shape::List(item), Value::Array(items)) => {
            for (i, value) in items.iter().enumerate() {
                let len = path.len();
                path.push_str(&format!("[{i}]"));
                walk(value, item, path, errors);
                path.truncate(len);
            }
        }
        (Shape::Map(item), Value::Object(entries)) => {
            for (key, value) in entries {
                at_key(path, key, |path| walk(value, item, path, errors));
            }
        }
        (Shape::Object(object), Value::Object(entries)) => {
            fields(entries, object.fields, None, object.what, path, errors);
        }
        (Shape::OneKey(object), Value::Object(entries)) => {
            let names: Vec<&str> = object.fields.iter().map(|f| f.name).collect();
            if entries.len() != 1 {
                errors.add(path.as_str(), format!("must have exactly one of {}", names.join(", ")));
            }
            fields(entries, object.fields, None, object.what, path, errors);
        }
        (Shape::Enum(set), Value::String(text)) => {
            if !set.values.contains(&text.as_str()) && !set.aliases.contains(&text.as_str()) {
                errors.add(path.as_str(), unknown_value(set.what, &shown(text), set.values));
            }
        }
        (Shape::Tagged(tagged), Value::Object(entries)) => variant(tagged, entries, path, errors),
        (expected, other) => {
            errors.add(path.as_str(), format!("must be {}, not {}", expected.noun(), kind(other)))
        }
    }
}

fn variant(
    tagged: &Tagged,
    entries: &serde_json::Map<String, Value>,
    path: &mut String,
    errors: &mut ValidationErrors,
) {
    let names: Vec<&str> = tagged.variants.iter().map(|v| v.name).collect();
    let chosen = match entries.get(tagged.tag) {
        None => {
            at_key(path, tagged.tag, |path| {
                errors.add(path.as_str(), format!("is required: one of {}", quoted(&names)))
            });
            return;
        }
        Some(Value::String(name)) => {
            let found = tagged.variants.iter().find(|v| v.name == name || v.aliases.contains(&name.as_str()));
            if found.is_none() {
                at_key(path, tagged.tag, |path| {
                    errors.add(path.as_str(), unknown_value(tagged.what, &shown(name), &names))
                });
            }
            found
        }
        Some(other) => {
            at_key(path, tagged.tag, |path| {
                errors.add(path.as_str(), format!("must be one of {}, not {}", quoted(&names), kind(other)))
            });
            None
        }
    };
    // With no known variant, its fields are unknown: nothing more can be said of them.
    if let Some(chosen) = chosen {
        let what = format!("{} of {} {:?}", tagged.object, tagged.tag, chosen.name);
        fields(entries, chosen.fields, Some(tagged.tag), &what, path, errors);
    }
}

/// Checks an object's fields: unknown keys (with the nearest known name), each known
/// one's value, and every required one present.
fn fields(
    entries: &serde_json::Map<String, Value>,
    known: &[Field],
    tag: Option<&'static str>,
    what: &str,
    path: &mut String,
    errors: &mut ValidationErrors,
) {
    for (key, value) in entries {
        if Some(key.as_str()) == tag {
            continue;
        }
        match known.iter().find(|f| f.name == key) {
            Some(field) => at_key(path, key, |path| walk(value, &field.shape, path, errors)),
            None => at_key(path, key, |path| {
                let names: Vec<&str> = tag.into_iter().chain(known.iter().map(|f| f.name)).collect();
                errors.add(path.as_str(), unknown_field(&shown(key), &names, what))
            }),
        }
    }
    for field in known.iter().filter(|f| f.required && !entries.contains_key(f.name)) {
        at_key(path, field.name, |path| errors.add(path.as_str(), "is required"));
    }
}

/// Runs `f` with `key` appended to `path`: `.key`, or `["key"]` for one that is not an
/// identifier.
fn at_key(path: &mut String, key: &str, f: impl FnOnce(&mut String)) {
    let len = path.len();
    let mut chars = key.chars();
    let plain = key.len() <= 100
        && chars.next().is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_');
    if plain {
        path.push('.');
        path.push_str(key);
    } else {
        path.push('[');
        path.push_str(&serde_json::to_string(&shown(key)).unwrap_or_default());
        path.push(']');
    }
    f(path);
    path.truncate(len);
}

/// Caller text as a message quotes it: at most 100 characters.
fn shown(text: &str) -> String {
    match text.char_indices().nth(100) {
        Some((cut, _)) => format!("{}…", &text[..cut]),
        None => text.to_owned(),
    }
}

fn quoted(values: &[&str]) -> String {
    values.iter().map(|v| format!("{v:?}")).collect::<Vec<_>>().join(", ")
}

fn kind(value: &Value) -> &'static str {
    match value {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "a list",
        Value::Object(_) => "an object",
    }
}

/// Asserts that `T`'s shape names exactly the fields its derived `Deserialize` reads: each
/// area checks its request bodies with it.
#[cfg(test)]
pub(crate) fn assert_names_serde_fields<T: Shaped>() {
    let mut ours = match T::shape() {
        Shape::Object(object) => object.fields.iter().map(|f| f.name).collect::<Vec<_>>(),
        other => panic!("not an object: {other:?}"),
    };
    let mut theirs = serde_fields::<T>();
    ours.sort_unstable();
    theirs.sort_unstable();
    assert_eq!(ours, theirs, "{}", std::any::type_name::<T>());
}

/// serde's own field names of a struct, as its derived `Deserialize` announces them.
#[cfg(test)]
fn serde_fields<T: DeserializeOwned>() -> Vec<&'static str> {
    struct Probe(std::cell::Cell<&'static [&'static str]>);
    impl<'de> serde::Deserializer<'de> for &Probe {
        type Error = serde::de::value::Error;
        fn deserialize_any<V: serde::de::Visitor<'de>>(self, _: V) -> Result<V::Value, Self::Error> {
            Err(serde::de::Error::custom("not a struct"))
        }
        fn deserialize_struct<V: serde::de::Visitor<'de>>(
            self,
            _: &'static str,
            fields: &'static [&'static str],
            _: V,
        ) -> Result<V::Value, Self::Error> {
            self.0.set(fields);
            Err(serde::de::Error::custom("probed"))
        }
        serde::forward_to_deserialize_any! {
            bool i8 i16 i32 i64 i128 u8 u16 u32 u64 u128 f32 f64 char str string bytes byte_buf
            option unit unit_struct newtype_struct seq tuple tuple_struct map enum identifier ignored_any
        }
    }
    let probe = Probe(std::cell::Cell::new(&[]));
    let _ = T::deserialize(&probe);
    probe.0.get().to_vec()
}

#[cfg(test)]
mod tests;
