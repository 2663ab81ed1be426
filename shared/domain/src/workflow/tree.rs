//! A generic document tree that both JSON and YAML parse into, so that one walk can check
//! every field and report every problem (a typed serde pass stops at the first).
//!
//! Unlike `serde_json::Value` it keeps object keys in file order, keeps repeated keys (so
//! the walk can report them instead of silently keeping the last) and borrows strings
//! from the text when it can.

use std::borrow::Cow;
use std::fmt;

use serde::de::{
    self, DeserializeSeed, Deserializer, EnumAccess, MapAccess, SeqAccess, VariantAccess, Visitor,
};
use serde_json::Number;

pub(super) type Entry<'a> = (Cow<'a, str>, Node<'a>);

#[derive(Debug, Clone, PartialEq)]
pub(super) enum Node<'a> {
    Null,
    Bool(bool),
    Number(Number),
    Str(Cow<'a, str>),
    Seq(Vec<Node<'a>>),
    Map(Vec<Entry<'a>>),
    /// Something YAML can say and a workflow cannot (a tag, an infinite number, a bad
    /// merge): reported by the walk where it is used, with its path.
    Invalid(&'static str),
}

impl Node<'_> {
    /// What the node is, for "must be a string, not a number" messages.
    pub(super) fn kind(&self) -> &'static str {
        match self {
            Node::Null => "null",
            Node::Bool(_) => "a boolean",
            Node::Number(_) => "a number",
            Node::Str(_) => "a string",
            Node::Seq(_) => "a list",
            Node::Map(_) => "an object",
            Node::Invalid(_) => "invalid",
        }
    }
}

/// The tree as JSON. Keys are sorted (serde_json's map), and of a repeated key the last
/// is kept; a node a workflow cannot hold becomes `null` (a document that validated holds
/// none where it is read).
pub(super) fn to_value(node: &Node<'_>) -> serde_json::Value {
    use serde_json::Value;
    match node {
        Node::Null | Node::Invalid(_) => Value::Null,
        Node::Bool(b) => Value::Bool(*b),
        Node::Number(n) => Value::Number(n.clone()),
        Node::Str(s) => Value::String(s.as_ref().to_owned()),
        Node::Seq(items) => Value::Array(items.iter().map(to_value).collect()),
        Node::Map(entries) => {
            Value::Object(entries.iter().map(|(k, v)| (k.as_ref().to_owned(), to_value(v))).collect())
        }
    }
}

/// A JSON value as a tree, borrowing its strings: how a stored canonical form is read
/// back without printing and parsing it again. Its depth is that of a document that
/// parsed (the parsers' recursion limits bound it).
pub(super) fn from_value(value: &serde_json::Value) -> Node<'_> {
    use serde_json::Value;
    match value {
        Value::Null => Node::Null,
        Value::Bool(b) => Node::Bool(*b),
        Value::Number(n) => Node::Number(n.clone()),
        Value::String(s) => Node::Str(Cow::Borrowed(s)),
        Value::Array(items) => Node::Seq(items.iter().map(from_value).collect()),
        Value::Object(map) => {
            Node::Map(map.iter().map(|(k, v)| (Cow::Borrowed(k.as_str()), from_value(v))).collect())
        }
    }
}

/// Parses JSON text into a tree.
pub(super) fn from_json(text: &str) -> Result<Node<'_>, serde_json::Error> {
    let mut deserializer = serde_json::Deserializer::from_str(text);
    let node = NodeSeed { scratch: &mut Scratch::default() }.deserialize(&mut deserializer)?;
    deserializer.end()?;
    Ok(node)
}

/// Parses YAML text (one document) into a tree.
pub(super) fn from_yaml(text: &str) -> Result<Node<'_>, crate::yaml::YamlError> {
    let deserializer = crate::yaml::deserializer(text)?;
    Ok(NodeSeed { scratch: &mut Scratch::default() }.deserialize(deserializer)?)
}

/// Shared stacks that lists and objects collect into while they are read, so that each
/// is then allocated once at its exact size instead of growing: a large workflow has
/// hundreds of thousands of small ones.
#[derive(Default)]
struct Scratch<'de> {
    items: Vec<Node<'de>>,
    entries: Vec<Entry<'de>>,
}

struct NodeSeed<'s, 'de> {
    scratch: &'s mut Scratch<'de>,
}

impl<'de> DeserializeSeed<'de> for NodeSeed<'_, 'de> {
    type Value = Node<'de>;

    fn deserialize<D: Deserializer<'de>>(self, deserializer: D) -> Result<Self::Value, D::Error> {
        deserializer.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for NodeSeed<'_, 'de> {
    type Value = Node<'de>;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("any JSON value")
    }

    fn visit_bool<E>(self, v: bool) -> Result<Self::Value, E> {
        Ok(Node::Bool(v))
    }

    fn visit_i64<E>(self, v: i64) -> Result<Self::Value, E> {
        Ok(Node::Number(v.into()))
    }

    fn visit_u64<E>(self, v: u64) -> Result<Self::Value, E> {
        Ok(Node::Number(v.into()))
    }

    fn visit_f64<E>(self, v: f64) -> Result<Self::Value, E> {
        Ok(Number::from_f64(v).map_or(Node::Invalid("must be a finite number"), Node::Number))
    }

    fn visit_borrowed_str<E>(self, v: &'de str) -> Result<Self::Value, E> {
        Ok(Node::Str(Cow::Borrowed(v)))
    }

    fn visit_str<E>(self, v: &str) -> Result<Self::Value, E> {
        Ok(Node::Str(Cow::Owned(v.to_owned())))
    }

    fn visit_string<E>(self, v: String) -> Result<Self::Value, E> {
        Ok(Node::Str(Cow::Owned(v)))
    }

    fn visit_unit<E>(self) -> Result<Self::Value, E> {
        Ok(Node::Null)
    }

    fn visit_none<E>(self) -> Result<Self::Value, E> {
        Ok(Node::Null)
    }

    fn visit_some<D: Deserializer<'de>>(self, deserializer: D) -> Result<Self::Value, D::Error> {
        self.deserialize(deserializer)
    }

    /// YAML's tags (`!name value`) arrive as enums.
    fn visit_enum<A: EnumAccess<'de>>(self, data: A) -> Result<Self::Value, A::Error> {
        let (_, variant): (de::IgnoredAny, _) = data.variant()?;
        variant.newtype_variant_seed(NodeSeed { scratch: self.scratch })?;
        Ok(Node::Invalid("YAML tags (`!name`) are not supported"))
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Self::Value, A::Error> {
        let start = self.scratch.items.len();
        while let Some(item) = seq.next_element_seed(NodeSeed { scratch: &mut *self.scratch })? {
            self.scratch.items.push(item);
        }
        Ok(Node::Seq(self.scratch.items.drain(start..).collect()))
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
        let start = self.scratch.entries.len();
        while let Some(key) = map.next_key_seed(KeySeed)? {
            let value = map.next_value_seed(NodeSeed { scratch: &mut *self.scratch })?;
            self.scratch.entries.push((key, value));
        }
        Ok(Node::Map(self.scratch.entries.drain(start..).collect()))
    }
}

/// Object keys, borrowed from the text when they have no escapes.
struct KeySeed;

impl<'de> DeserializeSeed<'de> for KeySeed {
    type Value = Cow<'de, str>;

    fn deserialize<D: Deserializer<'de>>(self, deserializer: D) -> Result<Self::Value, D::Error> {
        deserializer.deserialize_str(self)
    }
}

impl<'de> Visitor<'de> for KeySeed {
    type Value = Cow<'de, str>;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a string key")
    }

    fn visit_borrowed_str<E>(self, v: &'de str) -> Result<Self::Value, E> {
        Ok(Cow::Borrowed(v))
    }

    fn visit_str<E: de::Error>(self, v: &str) -> Result<Self::Value, E> {
        Ok(Cow::Owned(v.to_owned()))
    }

    fn visit_string<E>(self, v: String) -> Result<Self::Value, E> {
        Ok(Cow::Owned(v))
    }
}

/// Applies YAML merge keys (`<<: *defaults`), which PyYAML honoured in the old system's
/// files: the mapping's own keys win, then the merged mappings' in the order listed.
pub(super) fn apply_merge_keys(node: &mut Node<'_>) {
    match node {
        Node::Seq(items) => items.iter_mut().for_each(apply_merge_keys),
        Node::Map(entries) => {
            if let Some(position) = entries.iter().position(|(key, _)| key == "<<") {
                let (key, merged) = entries.remove(position);
                let sources = match merged {
                    Node::Map(source) => Some(vec![source]),
                    Node::Seq(items) => items
                        .into_iter()
                        .map(|item| match item {
                            Node::Map(source) => Some(source),
                            _ => None,
                        })
                        .collect(),
                    _ => None,
                };
                match sources {
                    Some(sources) => {
                        for (key, value) in sources.into_iter().flatten() {
                            if !entries.iter().any(|(existing, _)| *existing == key) {
                                entries.push((key, value));
                            }
                        }
                    }
                    None => entries
                        .push((key, Node::Invalid("a merge key (<<) takes a mapping or a list of mappings"))),
                }
            }
            entries.iter_mut().for_each(|(_, value)| apply_merge_keys(value));
        }
        _ => {}
    }
}
