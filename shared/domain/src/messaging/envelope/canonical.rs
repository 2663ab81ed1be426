//! Canonical JSON: the exact text an envelope's signature covers (and the plaintext of an
//! encrypted payload). It is what Python prints with
//! `json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False)`; the
//! rules are in the [envelope module docs](super#canonical-json).
//!
//! Also the text a compatibility signature covers:
//! `json.dumps(sorted(message.items()), separators=(",", ":"))` ([`python_sorted_items`]).

use std::fmt::Write as _;

use serde_json::Value;

pub use super::json::SyntaxError;
use super::json::{self, Json};

/// The canonical JSON of `value`.
pub fn to_canonical(value: &Value) -> String {
    let mut out = String::new();
    write_value(&mut out, value);
    out
}

/// The canonical JSON of the JSON `text`.
pub fn canonicalize(text: &str) -> Result<String, SyntaxError> {
    let value = json::parse(text)?;
    let mut out = String::with_capacity(text.len());
    write_json(&mut out, &value, Style::Canonical);
    Ok(out)
}

/// What an existing (compatibility mode) producer signs for the JSON object `text`:
/// Python's `json.dumps(sorted(obj.items()), separators=(",", ":"))`, an array of
/// `[key, value]` pairs sorted by key, nested objects in the order received, non-ASCII
/// escaped.
pub fn python_sorted_items(text: &str) -> Result<String, SyntaxError> {
    let Json::Object(members) = json::parse(text)? else {
        return Err(SyntaxError { what: "not an object", offset: 0 });
    };
    let mut out = String::with_capacity(text.len());
    write_sorted_items(&mut out, &members, None);
    Ok(out)
}

/// How to write a [`Json`] value.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Style {
    /// Keys sorted at every depth, non-ASCII raw.
    Canonical,
    /// Python's `json.dumps(value, separators=(",", ":"))`: members in the order
    /// received, non-ASCII (and DEL) escaped as `\uXXXX`.
    PythonDefault,
}

pub(crate) fn write_json(out: &mut String, value: &Json, style: Style) {
    match value {
        Json::Null => out.push_str("null"),
        Json::Bool(true) => out.push_str("true"),
        Json::Bool(false) => out.push_str("false"),
        Json::Int(i) => write_int(out, *i),
        Json::UInt(u) => write_int(out, *u),
        Json::BigInt(digits) => out.push_str(digits),
        Json::Float(f) => write_f64(out, *f),
        Json::String(s) => write_str(out, s, style == Style::PythonDefault),
        Json::Array(items) => write_seq(out, ARRAY, items, |out, item| write_json(out, item, style)),
        Json::Object(members) => match style {
            Style::Canonical => write_sorted_members(out, members, None),
            Style::PythonDefault => write_seq(out, OBJECT, members, |out, (key, value)| {
                write_str(out, key, true);
                out.push(':');
                write_json(out, value, style);
            }),
        },
    }
}

/// The canonical object of `members` less the one named `except`.
pub(crate) fn write_sorted_members(out: &mut String, members: &[(String, Json)], except: Option<&str>) {
    let mut sorted: Vec<&(String, Json)> =
        members.iter().filter(|(k, _)| Some(k.as_str()) != except).collect();
    if !sorted.is_sorted_by(|a, b| a.0 <= b.0) {
        sorted.sort_unstable_by(|a, b| a.0.cmp(&b.0));
    }
    write_seq(out, OBJECT, sorted, |out, (key, value)| {
        write_str(out, key, false);
        out.push(':');
        write_json(out, value, Style::Canonical);
    });
}

/// `json.dumps(sorted(obj.items()), separators=(",", ":"))` of the object `members` less
/// the one named `except`.
pub(crate) fn write_sorted_items(out: &mut String, members: &[(String, Json)], except: Option<&str>) {
    let mut sorted: Vec<&(String, Json)> =
        members.iter().filter(|(k, _)| Some(k.as_str()) != except).collect();
    sorted.sort_unstable_by(|a, b| a.0.cmp(&b.0));
    write_seq(out, ARRAY, sorted, |out, (key, value)| {
        out.push('[');
        write_str(out, key, true);
        out.push(',');
        write_json(out, value, Style::PythonDefault);
        out.push(']');
    });
}

/// The canonical JSON of a `serde_json` value.
pub(crate) fn write_value(out: &mut String, value: &Value) {
    match value {
        Value::Null => out.push_str("null"),
        Value::Bool(true) => out.push_str("true"),
        Value::Bool(false) => out.push_str("false"),
        Value::Number(n) => {
            if let Some(i) = n.as_i64() {
                write_int(out, i);
            } else if let Some(u) = n.as_u64() {
                write_int(out, u);
            } else if let Some(f) = n.as_f64() {
                write_f64(out, f);
            } else {
                // Only with serde_json's `arbitrary_precision`, which this workspace
                // does not enable.
                out.push_str(&n.to_string());
            }
        }
        Value::String(s) => write_str(out, s, false),
        Value::Array(items) => write_seq(out, ARRAY, items, write_value),
        Value::Object(map) => write_map(out, map),
    }
}

/// The canonical JSON of a `serde_json` object.
pub(crate) fn write_map(out: &mut String, map: &serde_json::Map<String, Value>) {
    // Sorted again in case serde_json's `preserve_order` is ever enabled.
    let mut sorted: Vec<(&String, &Value)> = map.iter().collect();
    if !sorted.is_sorted_by(|a, b| a.0 <= b.0) {
        sorted.sort_unstable_by(|a, b| a.0.cmp(b.0));
    }
    write_seq(out, OBJECT, sorted, |out, (key, value)| {
        write_str(out, key, false);
        out.push(':');
        write_value(out, value);
    });
}

const ARRAY: (char, char) = ('[', ']');
const OBJECT: (char, char) = ('{', '}');

/// `open`, each item as `write` writes it with a comma between, `close`.
fn write_seq<T>(
    out: &mut String,
    (open, close): (char, char),
    items: impl IntoIterator<Item = T>,
    mut write: impl FnMut(&mut String, T),
) {
    out.push(open);
    for (i, item) in items.into_iter().enumerate() {
        if i > 0 {
            out.push(',');
        }
        write(out, item);
    }
    out.push(close);
}

fn write_int(out: &mut String, i: impl std::fmt::Display) {
    let _ = write!(out, "{i}");
}

/// A JSON string as Python's `json.dumps` writes it: `\"`, `\\`, `\n`, `\r`, `\t`, `\b`,
/// `\f`, other control characters as `\u00xx`; with `ascii` (Python's default
/// `ensure_ascii=True`) also DEL and every non-ASCII character as `\uxxxx` (astral ones as
/// a surrogate pair), all hex lowercase.
pub(crate) fn write_str(out: &mut String, s: &str, ascii: bool) {
    out.push('"');
    let bytes = s.as_bytes();
    let (mut i, mut run) = (0, 0);
    while i < bytes.len() {
        if !ascii {
            i = json::plain_run_end(bytes, i);
            if i == bytes.len() {
                break;
            }
        }
        let b = bytes[i];
        if b >= 0x20 && b != b'"' && b != b'\\' && (b < 0x7f || !ascii) {
            i += 1;
            continue;
        }
        out.push_str(&s[run..i]);
        match b {
            b'"' => out.push_str("\\\""),
            b'\\' => out.push_str("\\\\"),
            b'\n' => out.push_str("\\n"),
            b'\r' => out.push_str("\\r"),
            b'\t' => out.push_str("\\t"),
            0x08 => out.push_str("\\b"),
            0x0c => out.push_str("\\f"),
            0x80.. => {
                let c = s[i..].chars().next().expect("a char starts here");
                let mut units = [0u16; 2];
                for unit in c.encode_utf16(&mut units) {
                    write_unit(out, *unit);
                }
                i += c.len_utf8();
                run = i;
                continue;
            }
            _ => write_unit(out, u16::from(b)),
        }
        i += 1;
        run = i;
    }
    out.push_str(&s[run..]);
    out.push('"');
}

fn write_unit(out: &mut String, unit: u16) {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    out.push_str("\\u");
    for shift in [12, 8, 4, 0] {
        out.push(HEX[usize::from((unit >> shift) & 0xf)] as char);
    }
}

/// A finite float as Python's `repr` writes it: the shortest digits that round-trip; fixed
/// notation when the decimal exponent is -4 to 15 (with `.0` when integral), otherwise
/// `d[.ddd]e±XX` (at least two exponent digits).
pub(crate) fn write_f64(out: &mut String, x: f64) {
    debug_assert!(x.is_finite(), "JSON has no non-finite numbers");
    if x == 0.0 {
        out.push_str(if x.is_sign_negative() { "-0.0" } else { "0.0" });
        return;
    }
    let mut buffer = ryu::Buffer::new();
    let shortest = buffer.format_finite(x);
    // ryu's own layout varies (`1e16`, `1.5e-5`, `0.0001`, `123.0`): take its digits and
    // decimal exponent, then lay them out as Python does.
    let (negative, shortest) = match shortest.strip_prefix('-') {
        Some(rest) => (true, rest),
        None => (false, shortest),
    };
    let (mantissa, exponent) = match shortest.split_once(['e', 'E']) {
        Some((m, e)) => (m, e.parse::<i32>().expect("ryu writes a decimal exponent")),
        None => (shortest, 0),
    };
    let mut digits = [0u8; 32];
    let (mut len, mut before_point) = (0usize, None);
    for b in mantissa.bytes() {
        if b == b'.' {
            before_point = Some(len);
        } else {
            digits[len] = b;
            len += 1;
        }
    }
    let mut before_point = before_point.unwrap_or(len) as i32;
    let leading_zeros = digits[..len].iter().take_while(|&&d| d == b'0').count();
    before_point -= leading_zeros as i32;
    let trailing_zeros = digits[leading_zeros..len].iter().rev().take_while(|&&d| d == b'0').count();
    let digits = &digits[leading_zeros..len - trailing_zeros];
    // x = 0.d1d2d3... * 10^point
    let point = before_point + exponent;
    let n = digits.len() as i32;
    let digits = std::str::from_utf8(digits).expect("ASCII digits");
    if negative {
        out.push('-');
    }
    if -4 < point && point <= 16 {
        if point <= 0 {
            out.push_str("0.");
            out.extend(std::iter::repeat_n('0', (-point) as usize));
            out.push_str(digits);
        } else if point >= n {
            out.push_str(digits);
            out.extend(std::iter::repeat_n('0', (point - n) as usize));
            out.push_str(".0");
        } else {
            out.push_str(&digits[..point as usize]);
            out.push('.');
            out.push_str(&digits[point as usize..]);
        }
    } else {
        out.push_str(&digits[..1]);
        if n > 1 {
            out.push('.');
            out.push_str(&digits[1..]);
        }
        let e = point - 1;
        let _ = write!(out, "e{}{:02}", if e < 0 { '-' } else { '+' }, e.unsigned_abs());
    }
}

#[cfg(test)]
pub(super) mod tests {
    use proptest::prelude::*;
    use serde_json::{Value, json};

    use super::*;

    /// Arbitrary JSON: every kind of value, awkward strings and floats included.
    pub(crate) fn arbitrary_json() -> impl Strategy<Value = Value> {
        let leaf = prop_oneof![
            Just(Value::Null),
            any::<bool>().prop_map(Value::Bool),
            any::<i64>().prop_map(Value::from),
            any::<u64>().prop_map(Value::from),
            any::<f64>().prop_filter("finite", |f| f.is_finite()).prop_map(Value::from),
            (-1e6f64..1e6).prop_map(Value::from),
            "\\PC*|[\\x00-\\x1f\"\\\\\\x7f]*".prop_map(Value::String),
        ];
        leaf.prop_recursive(4, 48, 6, |inner| {
            prop_oneof![
                prop::collection::vec(inner.clone(), 0..6).prop_map(Value::Array),
                prop::collection::vec(("\\PC{0,6}", inner), 0..6)
                    .prop_map(|members| Value::Object(members.into_iter().collect())),
            ]
        })
    }

    fn float(x: f64) -> String {
        let mut out = String::new();
        write_f64(&mut out, x);
        out
    }

    #[test]
    fn floats_print_as_python_repr() {
        // Each pair: the value, and what CPython 3.11's repr printed for it.
        let table: &[(f64, &str)] = &[
            (1.0, "1.0"),
            (0.1, "0.1"),
            (1e16, "1e+16"),
            (1e15, "1000000000000000.0"),
            (0.0001, "0.0001"),
            (0.00001, "1e-05"),
            (1.5e-05, "1.5e-05"),
            (1234.5, "1234.5"),
            (-0.0, "-0.0"),
            (0.0, "0.0"),
            (5e-324, "5e-324"),
            (1.7976931348623157e308, "1.7976931348623157e+308"),
            (123456789012345678.0, "1.2345678901234568e+17"),
            (0.30000000000000004, "0.30000000000000004"),
            (2.5e-7, "2.5e-07"),
            (1e100, "1e+100"),
            (9007199254740993.0, "9007199254740992.0"),
            (1e22, "1e+22"),
            (12345678901234567.0, "1.2345678901234568e+16"),
            (-1.5e-300, "-1.5e-300"),
            (100.0, "100.0"),
            (123e-20, "1.23e-18"),
            (2.2250738585072014e-308, "2.2250738585072014e-308"),
            (0.1 + 0.7, "0.7999999999999999"),
            (1.0 / 3.0, "0.3333333333333333"),
            (-42.125, "-42.125"),
        ];
        for (x, python) in table {
            assert_eq!(float(*x), *python, "{x:e}");
        }
    }

    #[test]
    fn strings_escape_as_python() {
        let s = "a\u{7f}\u{0}\u{1f} é😀\"\\/\u{8}\u{c}\n\r\t\u{2028}";
        let mut raw = String::new();
        write_str(&mut raw, s, false);
        assert_eq!(raw, "\"a\u{7f}\\u0000\\u001f é😀\\\"\\\\/\\b\\f\\n\\r\\t\u{2028}\"");
        let mut ascii = String::new();
        write_str(&mut ascii, s, true);
        assert_eq!(ascii, r#""a\u007f\u0000\u001f \u00e9\ud83d\ude00\"\\/\b\f\n\r\t\u2028""#);
    }

    #[test]
    fn canonical_sorts_keys_at_every_depth_by_code_point() {
        let text = r#"{ "b": 1, "a": {"é": 2.50, "z": [true, null, {"y": 1E2, "x": -0}]}, "B": "x", "aa": 1e400000000000000000000000e0 }"#;
        assert!(canonicalize(text).is_err(), "1e400... is out of range");
        let text = r#"{ "b": 1, "a": {"é": 2.50, "z": [true, null, {"y": 1E2, "x": -0}]}, "B": "x", "aa": 100000000000000000000 }"#;
        assert_eq!(
            canonicalize(text).unwrap(),
            r#"{"B":"x","a":{"z":[true,null,{"x":0,"y":100.0}],"é":2.5},"aa":100000000000000000000,"b":1}"#
        );
        assert_eq!(
            python_sorted_items(text).unwrap(),
            r#"[["B","x"],["a",{"\u00e9":2.5,"z":[true,null,{"y":100.0,"x":0}]}],["aa",100000000000000000000],["b",1]]"#
        );
    }

    proptest! {
        #[test]
        fn canonical_is_a_fixed_point_and_round_trips(value in arbitrary_json()) {
            let canonical = to_canonical(&value);
            prop_assert_eq!(&canonicalize(&canonical).unwrap(), &canonical);
            let back = json::parse(&canonical).unwrap().into_value().unwrap();
            prop_assert_eq!(&back, &value);
            // Whatever serde_json prints (its own float layout, escapes) reads back to the
            // same canonical text.
            prop_assert_eq!(&canonicalize(&serde_json::to_string_pretty(&value).unwrap()).unwrap(), &canonical);
        }

        #[test]
        fn canonical_ignores_member_order(members in prop::collection::vec(("[a-zé]{0,3}", any::<i32>()), 0..8)) {
            let mut unique: Vec<(String, i32)> = Vec::new();
            for (k, v) in members {
                if !unique.iter().any(|(u, _)| *u == k) {
                    unique.push((k, v));
                }
            }
            let text = |pairs: &[(String, i32)]| {
                let inner: Vec<String> = pairs.iter().map(|(k, v)| format!("{}:{v}", json!(k))).collect();
                format!("{{{}}}", inner.join(","))
            };
            let forward = canonicalize(&text(&unique)).unwrap();
            unique.reverse();
            prop_assert_eq!(canonicalize(&text(&unique)).unwrap(), forward);
        }

        #[test]
        fn floats_round_trip_through_their_python_form(bits in any::<u64>()) {
            let x = f64::from_bits(bits);
            prop_assume!(x.is_finite());
            let printed = float(x);
            prop_assert_eq!(printed.parse::<f64>().unwrap().to_bits(), x.to_bits());
        }
    }
}
