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

#[cfg(test)]
mod tests {
    use serde::Deserialize;
    use serde_json::json;

    use super::*;

    #[derive(Debug, Deserialize, PartialEq)]
    #[serde(deny_unknown_fields)]
    struct Body {
        name: String,
        #[serde(default)]
        tags: Vec<String>,
        count: Option<u8>,
        target: Target,
    }

    #[derive(Debug, Deserialize, PartialEq)]
    #[serde(tag = "kind", rename_all = "snake_case", deny_unknown_fields)]
    enum Target {
        Http {
            url: String,
        },
        #[serde(alias = "bedrock-agent")]
        BedrockAgent {
            agent_id: String,
        },
    }

    const TARGET: Tagged = Tagged {
        tag: "kind",
        what: "target kind",
        object: "a target",
        variants: &[
            Variant { name: "http", aliases: &[], fields: &[Field::required("url", Shape::Str)] },
            Variant {
                name: "bedrock_agent",
                aliases: &["bedrock-agent"],
                fields: &[Field::required("agent_id", Shape::Str)],
            },
        ],
    };

    const BODY: Shape = Shape::Object(&Object {
        what: "a body",
        fields: &[
            Field::required("name", Shape::Str),
            Field::optional(
                "tags",
                Shape::List(&Shape::Enum(&Enum { what: "tag", values: &["red", "green"], aliases: &[] })),
            ),
            Field::optional("count", Shape::Nullable(&Shape::Int { min: 0.0, max: 255.0 })),
            Field::required("target", Shape::Tagged(&TARGET)),
        ],
    });

    impl Shaped for Body {
        fn shape() -> &'static Shape {
            &BODY
        }
    }

    fn problems(value: Value) -> Vec<(String, String)> {
        read::<Body>(&value)
            .unwrap_err()
            .errors()
            .iter()
            .map(|e| (e.path.clone(), e.message.clone()))
            .collect()
    }

    #[test]
    fn a_body_of_the_right_shape_reads_and_an_alias_is_accepted() {
        let body: Body =
            read(&json!({"name": "x", "count": null, "target": {"kind": "bedrock-agent", "agent_id": "a"}}))
                .unwrap();
        assert_eq!(body.target, Target::BedrockAgent { agent_id: "a".into() });
        let body: Body = read(
            &json!({"name": "x", "count": 3.0, "tags": ["red"], "target": {"kind": "http", "url": "u"}}),
        )
        .unwrap();
        assert_eq!(body.count, Some(3));
    }

    #[test]
    fn every_problem_is_listed_with_its_path_and_near_misses_are_suggested() {
        let found = problems(json!({
            "nmae": "x",
            "tags": ["red", "gren", 3],
            "count": 300,
            "zzzzzz": 1,
            "target": {"kind": "htp", "url": 5},
        }));
        // In the document's order where serde_json keeps it (`preserve_order`), else by key.
        let mut paths: Vec<&str> = found.iter().map(|(p, _)| p.as_str()).collect();
        paths.sort_unstable();
        assert_eq!(
            paths,
            ["$.count", "$.name", "$.nmae", "$.tags[1]", "$.tags[2]", "$.target.kind", "$.zzzzzz"]
        );
        let message = |path: &str| found.iter().find(|(p, _)| p == path).unwrap().1.clone();
        assert_eq!(
            message("$.nmae"),
            "unknown field \"nmae\" (did you mean \"name\"?); a body has only name, tags, count, target"
        );
        assert!(!message("$.zzzzzz").contains("did you mean"), "{}", message("$.zzzzzz"));
        assert_eq!(
            message("$.tags[1]"),
            "unknown tag \"gren\" (did you mean \"green\"?); expected one of \"red\", \"green\""
        );
        assert_eq!(message("$.tags[2]"), "must be one of \"red\", \"green\", not a number");
        assert_eq!(message("$.count"), "must be a whole number from 0 to 255, not 300");
        assert!(
            message("$.target.kind").contains("(did you mean \"http\"?)"),
            "{}",
            message("$.target.kind")
        );
        assert_eq!(message("$.name"), "is required");
    }

    #[test]
    fn a_variant_s_fields_are_checked_and_a_missing_tag_is_named() {
        let found = problems(json!({"name": "x", "target": {"kind": "http", "ulr": "u"}}));
        assert_eq!(
            found[0],
            (
                "$.target.ulr".to_string(),
                "unknown field \"ulr\" (did you mean \"url\"?); a target of kind \"http\" has only kind, url"
                    .to_string()
            )
        );
        assert_eq!(found[1].0, "$.target.url");
        let found = problems(json!({"name": "x", "target": {"url": "u"}}));
        assert_eq!(
            found,
            [("$.target.kind".to_string(), "is required: one of \"http\", \"bedrock_agent\"".to_string())]
        );
        let found = problems(json!({"name": "x", "target": "http"}));
        assert_eq!(found, [("$.target".to_string(), "must be an object, not a string".to_string())]);
    }

    #[test]
    fn odd_keys_are_quoted_in_paths_and_long_text_is_cut() {
        let long = "k".repeat(10_000);
        let found =
            problems(json!({"name": "x", "target": {"kind": "http", "url": "u"}, "a b": 1, long.clone(): 2}));
        assert_eq!(found[0].0, "$[\"a b\"]");
        assert!(found[1].0.len() < 200 && found[1].1.len() < 400, "{found:?}");
    }

    #[test]
    fn the_report_is_bounded_whatever_the_body() {
        let many: serde_json::Map<String, Value> = (0..50_000).map(|i| (format!("x{i}"), json!(i))).collect();
        let mut body = json!({"name": "x", "target": {"kind": "http", "url": "u"}});
        body.as_object_mut().unwrap().extend(many);
        let found = problems(body);
        assert_eq!(found.len(), crate::validation::MAX_REPORTED + 1);
    }

    #[test]
    fn a_null_optional_body_reads_as_none() {
        assert_eq!(read::<Option<Body>>(&Value::Null).unwrap(), None);
        assert!(read::<Option<Body>>(&json!({})).is_err());
    }

    /// serde's own field names of a struct, as its derived `Deserialize` announces them.
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

    fn shape_fields(shape: &Shape) -> Vec<&'static str> {
        match shape {
            Shape::Object(object) => object.fields.iter().map(|f| f.name).collect(),
            other => panic!("not an object: {other:?}"),
        }
    }

    #[test]
    fn every_request_shape_names_the_fields_serde_reads() {
        fn agree<T: Shaped>() {
            let mut ours = shape_fields(T::shape());
            let mut theirs = serde_fields::<T>();
            ours.sort_unstable();
            theirs.sort_unstable();
            assert_eq!(ours, theirs, "{}", std::any::type_name::<T>());
        }
        agree::<crate::agents::NewAgentRequest>();
        agree::<crate::agents::AgentUpdate>();
        agree::<crate::messaging::SendMessageRequest>();
        agree::<crate::events::NewSubscription>();
        agree::<crate::auth::NewApiKeyRequest>();
        agree::<crate::auth::TokenRequest>();
        agree::<crate::deploy::AgentSpec>();
    }

    #[test]
    fn the_sets_of_names_are_the_domain_s_own() {
        let Shape::Enum(scopes) = crate::auth::SCOPE else { panic!() };
        let all: Vec<&str> = crate::auth::Scope::ALL.iter().map(|s| s.as_str()).collect();
        assert_eq!(scopes.values, all);
        let Shape::Tagged(targets) = crate::agents::AGENT_TARGET else { panic!() };
        for variant in targets.variants {
            let mut body = serde_json::Map::new();
            body.insert("kind".into(), json!(variant.name));
            for field in variant.fields.iter().filter(|f| f.required) {
                body.insert(field.name.into(), json!("arn:x"));
            }
            let target: crate::agents::AgentTarget = read_target(&Value::Object(body.clone()));
            assert_eq!(target.kind(), variant.name);
            for alias in variant.aliases {
                body.insert("kind".into(), json!(alias));
                assert_eq!(read_target(&Value::Object(body.clone())).kind(), variant.name);
            }
        }
    }

    fn read_target(value: &Value) -> crate::agents::AgentTarget {
        assert!(check(value, &crate::agents::AGENT_TARGET).is_empty(), "{value}");
        serde::Deserialize::deserialize(super::super::Strict(value)).unwrap()
    }
}
