//! A small JSON reader for bodies to open. `serde_json::Value` will not do: compatibility
//! signatures need object members in the order received, and canonical numbers need floats
//! parsed correctly rounded (serde_json's default float parsing is not) and integers of
//! any size kept as written.

/// A parsed JSON value.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Json {
    Null,
    Bool(bool),
    /// An integer (a number without fraction or exponent) that fits `i64`.
    Int(i64),
    /// A larger positive integer that fits `u64`.
    UInt(u64),
    /// An integer too large for either, as written.
    BigInt(String),
    /// Any other number, correctly rounded. Never infinite or NaN.
    Float(f64),
    String(String),
    Array(Vec<Json>),
    /// Members in the order received; keys are unique.
    Object(Vec<(String, Json)>),
}

/// Why a text is not JSON (or not JSON this reader accepts).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{what} at byte {offset}")]
pub struct SyntaxError {
    pub what: &'static str,
    pub offset: usize,
}

/// Objects and arrays nest at most this deep (as in serde_json), so that a hostile body
/// cannot exhaust the stack.
const MAX_DEPTH: usize = 128;

/// Parses one JSON value, with optional whitespace around it. Duplicate object keys, lone
/// surrogate escapes and numbers beyond `f64` are refused.
pub(crate) fn parse(text: &str) -> Result<Json, SyntaxError> {
    let mut parser = Parser { text, bytes: text.as_bytes(), pos: 0, depth: 0 };
    parser.skip_whitespace();
    let value = parser.value()?;
    parser.skip_whitespace();
    if parser.pos != parser.bytes.len() {
        return Err(parser.error("trailing characters"));
    }
    Ok(value)
}

impl Json {
    /// The value as `serde_json` holds it: integers beyond `u64`/`i64` become floats, as
    /// when serde_json parses them.
    pub(crate) fn into_value(self) -> Result<serde_json::Value, &'static str> {
        use serde_json::Value;
        Ok(match self {
            Json::Null => Value::Null,
            Json::Bool(b) => Value::Bool(b),
            Json::Int(i) => Value::from(i),
            Json::UInt(u) => Value::from(u),
            Json::BigInt(digits) => {
                let float: f64 = digits.parse().map_err(|_| "bad integer")?;
                Value::Number(serde_json::Number::from_f64(float).ok_or("integer out of range")?)
            }
            Json::Float(f) => Value::Number(serde_json::Number::from_f64(f).ok_or("number out of range")?),
            Json::String(s) => Value::String(s),
            Json::Array(items) => {
                Value::Array(items.into_iter().map(Json::into_value).collect::<Result<_, _>>()?)
            }
            Json::Object(members) => {
                let mut map = serde_json::Map::new();
                for (key, value) in members {
                    map.insert(key, value.into_value()?);
                }
                Value::Object(map)
            }
        })
    }
}

struct Parser<'a> {
    text: &'a str,
    bytes: &'a [u8],
    pos: usize,
    depth: usize,
}

impl Parser<'_> {
    fn error(&self, what: &'static str) -> SyntaxError {
        SyntaxError { what, offset: self.pos }
    }

    fn skip_whitespace(&mut self) {
        while let Some(b' ' | b'\t' | b'\n' | b'\r') = self.bytes.get(self.pos) {
            self.pos += 1;
        }
    }

    fn peek(&self) -> Option<u8> {
        self.bytes.get(self.pos).copied()
    }

    fn expect(&mut self, byte: u8, what: &'static str) -> Result<(), SyntaxError> {
        if self.peek() == Some(byte) {
            self.pos += 1;
            Ok(())
        } else {
            Err(self.error(what))
        }
    }

    fn value(&mut self) -> Result<Json, SyntaxError> {
        match self.peek() {
            Some(b'{') => self.object(),
            Some(b'[') => self.array(),
            Some(b'"') => self.string().map(Json::String),
            Some(b't') => self.literal("true", Json::Bool(true)),
            Some(b'f') => self.literal("false", Json::Bool(false)),
            Some(b'n') => self.literal("null", Json::Null),
            Some(b'-' | b'0'..=b'9') => self.number(),
            Some(_) => Err(self.error("expected a value")),
            None => Err(self.error("unexpected end")),
        }
    }

    fn literal(&mut self, word: &'static str, value: Json) -> Result<Json, SyntaxError> {
        if self.bytes[self.pos..].starts_with(word.as_bytes()) {
            self.pos += word.len();
            Ok(value)
        } else {
            Err(self.error("expected a value"))
        }
    }

    fn nest(&mut self) -> Result<(), SyntaxError> {
        self.depth += 1;
        if self.depth > MAX_DEPTH { Err(self.error("nested too deep")) } else { Ok(()) }
    }

    fn object(&mut self) -> Result<Json, SyntaxError> {
        self.nest()?;
        self.pos += 1;
        let mut members: Vec<(String, Json)> = Vec::new();
        self.skip_whitespace();
        if self.peek() == Some(b'}') {
            self.pos += 1;
            self.depth -= 1;
            return Ok(Json::Object(members));
        }
        loop {
            if self.peek() != Some(b'"') {
                return Err(self.error("expected a key"));
            }
            let key_at = self.pos;
            let key = self.string()?;
            self.skip_whitespace();
            self.expect(b':', "expected ':'")?;
            self.skip_whitespace();
            let value = self.value()?;
            if members.len() < 16 && members.iter().any(|(k, _)| *k == key) {
                return Err(SyntaxError { what: "duplicate key", offset: key_at });
            }
            members.push((key, value));
            if !self.another(b'}', "expected ',' or '}'")? {
                break;
            }
        }
        if members.len() > 16 {
            let mut keys: Vec<&str> = members.iter().map(|(k, _)| k.as_str()).collect();
            keys.sort_unstable();
            if keys.windows(2).any(|pair| pair[0] == pair[1]) {
                return Err(self.error("duplicate key"));
            }
        }
        self.depth -= 1;
        Ok(Json::Object(members))
    }

    fn array(&mut self) -> Result<Json, SyntaxError> {
        self.nest()?;
        self.pos += 1;
        let mut items = Vec::new();
        self.skip_whitespace();
        if self.peek() == Some(b']') {
            self.pos += 1;
            self.depth -= 1;
            return Ok(Json::Array(items));
        }
        loop {
            items.push(self.value()?);
            if !self.another(b']', "expected ',' or ']'")? {
                break;
            }
        }
        self.depth -= 1;
        Ok(Json::Array(items))
    }

    /// After a member or an item: whether another follows (a comma, taken) or the
    /// container ends (`close`, taken).
    #[inline]
    fn another(&mut self, close: u8, expected: &'static str) -> Result<bool, SyntaxError> {
        self.skip_whitespace();
        match self.peek() {
            Some(b',') => {
                self.pos += 1;
                self.skip_whitespace();
                Ok(true)
            }
            Some(c) if c == close => {
                self.pos += 1;
                Ok(false)
            }
            _ => Err(self.error(expected)),
        }
    }

    /// At the opening quote.
    fn string(&mut self) -> Result<String, SyntaxError> {
        self.pos += 1;
        let start = self.pos;
        // Fast path: no escapes.
        self.pos = plain_run_end(self.bytes, self.pos);
        if self.peek() == Some(b'"') {
            let s = self.text[start..self.pos].to_owned();
            self.pos += 1;
            return Ok(s);
        }
        let mut out = String::with_capacity(self.pos - start + 16);
        out.push_str(&self.text[start..self.pos]);
        loop {
            let run = self.pos;
            self.pos = plain_run_end(self.bytes, self.pos);
            out.push_str(&self.text[run..self.pos]);
            match self.peek() {
                Some(b'"') => {
                    self.pos += 1;
                    return Ok(out);
                }
                Some(b'\\') => {
                    self.pos += 1;
                    self.escape(&mut out)?;
                }
                Some(_) => return Err(self.error("control character in a string")),
                None => return Err(self.error("unterminated string")),
            }
        }
    }

    /// After a backslash.
    fn escape(&mut self, out: &mut String) -> Result<(), SyntaxError> {
        let Some(b) = self.peek() else { return Err(self.error("unterminated string")) };
        self.pos += 1;
        let c = match b {
            b'"' => '"',
            b'\\' => '\\',
            b'/' => '/',
            b'b' => '\u{8}',
            b'f' => '\u{c}',
            b'n' => '\n',
            b'r' => '\r',
            b't' => '\t',
            b'u' => {
                let unit = self.hex4()?;
                match unit {
                    0xD800..=0xDBFF => {
                        if !self.bytes[self.pos..].starts_with(b"\\u") {
                            return Err(self.error("lone surrogate"));
                        }
                        self.pos += 2;
                        let low = self.hex4()?;
                        if !(0xDC00..=0xDFFF).contains(&low) {
                            return Err(self.error("lone surrogate"));
                        }
                        let code = 0x10000 + ((u32::from(unit) - 0xD800) << 10) + (u32::from(low) - 0xDC00);
                        char::from_u32(code).ok_or_else(|| self.error("lone surrogate"))?
                    }
                    0xDC00..=0xDFFF => return Err(self.error("lone surrogate")),
                    _ => char::from_u32(u32::from(unit)).ok_or_else(|| self.error("bad escape"))?,
                }
            }
            _ => return Err(self.error("bad escape")),
        };
        out.push(c);
        Ok(())
    }

    fn hex4(&mut self) -> Result<u16, SyntaxError> {
        let digits = self.bytes.get(self.pos..self.pos + 4).ok_or_else(|| self.error("bad escape"))?;
        let mut unit = 0u16;
        for &d in digits {
            let v = (d as char).to_digit(16).ok_or_else(|| self.error("bad escape"))?;
            unit = unit << 4 | v as u16;
        }
        self.pos += 4;
        Ok(unit)
    }

    fn digits(&mut self) -> usize {
        let start = self.pos;
        while let Some(b'0'..=b'9') = self.peek() {
            self.pos += 1;
        }
        self.pos - start
    }

    fn number(&mut self) -> Result<Json, SyntaxError> {
        let start = self.pos;
        if self.peek() == Some(b'-') {
            self.pos += 1;
        }
        match self.peek() {
            Some(b'0') => self.pos += 1,
            Some(b'1'..=b'9') => {
                self.digits();
            }
            _ => return Err(self.error("bad number")),
        }
        let mut integer = true;
        if self.peek() == Some(b'.') {
            self.pos += 1;
            integer = false;
            if self.digits() == 0 {
                return Err(self.error("bad number"));
            }
        }
        if let Some(b'e' | b'E') = self.peek() {
            self.pos += 1;
            integer = false;
            if let Some(b'+' | b'-') = self.peek() {
                self.pos += 1;
            }
            if self.digits() == 0 {
                return Err(self.error("bad number"));
            }
        }
        let text = &self.text[start..self.pos];
        if integer {
            if let Ok(i) = text.parse::<i64>() {
                return Ok(Json::Int(i));
            }
            if let Ok(u) = text.parse::<u64>() {
                return Ok(Json::UInt(u));
            }
            return Ok(Json::BigInt(text.to_owned()));
        }
        // Rust's float parsing is correctly rounded, as Python's is.
        match text.parse::<f64>() {
            Ok(f) if f.is_finite() => Ok(Json::Float(f)),
            _ => Err(SyntaxError { what: "number out of range", offset: start }),
        }
    }
}

/// The end of the run of bytes from `from` that a JSON string holds as they are: the
/// index of the first `"`, `\\` or control character (below 0x20), or the length.
pub(crate) fn plain_run_end(bytes: &[u8], from: usize) -> usize {
    const ONES: u64 = u64::from_ne_bytes([0x01; 8]);
    const HIGH: u64 = u64::from_ne_bytes([0x80; 8]);
    // Whether any byte of `word` is zero / below 0x20 (exact as a yes or no).
    let has_zero = |word: u64| word.wrapping_sub(ONES) & !word & HIGH != 0;
    let has_control = |word: u64| word.wrapping_sub(ONES * 0x20) & !word & HIGH != 0;
    let mut at = from;
    // Eight bytes at a time while none is special.
    while let Some(chunk) = bytes.get(at..at + 8) {
        let word = u64::from_ne_bytes(chunk.try_into().expect("8 bytes"));
        if has_zero(word ^ (ONES * u64::from(b'"')))
            || has_zero(word ^ (ONES * u64::from(b'\\')))
            || has_control(word)
        {
            break;
        }
        at += 8;
    }
    while let Some(&b) = bytes.get(at) {
        if b == b'"' || b == b'\\' || b < 0x20 {
            break;
        }
        at += 1;
    }
    at
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_values_keeping_member_order() {
        let json = parse(r#" {"b": [1, -2, 1.5e3, 18446744073709551615, 100000000000000000000], "a": {"z": null, "y": true}} "#)
            .unwrap();
        let Json::Object(members) = &json else { panic!() };
        assert_eq!(members[0].0, "b");
        assert_eq!(
            members[0].1,
            Json::Array(vec![
                Json::Int(1),
                Json::Int(-2),
                Json::Float(1500.0),
                Json::UInt(u64::MAX),
                Json::BigInt("100000000000000000000".into())
            ])
        );
        assert_eq!(
            members[1],
            ("a".into(), Json::Object(vec![("z".into(), Json::Null), ("y".into(), Json::Bool(true))]))
        );
    }

    #[test]
    fn plain_runs_end_at_the_first_special_byte() {
        let text = "abcdefghijklmnopqrstuvwxyzé😀0123456789";
        assert_eq!(plain_run_end(text.as_bytes(), 0), text.len());
        for special in ['"', '\\', '\u{0}', '\u{1f}', '\n'] {
            for at in 0..30 {
                let mut s: Vec<char> = text.chars().collect();
                s.insert(at, special);
                let s: String = s.into_iter().collect();
                let expected = s.char_indices().nth(at).unwrap().0;
                assert_eq!(plain_run_end(s.as_bytes(), 0), expected, "{s:?}");
                assert_eq!(plain_run_end(s.as_bytes(), expected), expected);
            }
        }
    }

    #[test]
    fn decodes_escapes_and_surrogate_pairs() {
        let json = parse(r#""a\"\\\/\b\f\n\r\t\u00e9\ud83d\ude00é""#).unwrap();
        assert_eq!(json, Json::String("a\"\\/\u{8}\u{c}\n\r\t\u{e9}\u{1F600}é".into()));
    }

    #[test]
    fn refuses_what_is_not_json() {
        for bad in [
            "",
            "{",
            "[1,]",
            "{\"a\":1,}",
            "01",
            "1.",
            ".5",
            "1e",
            "+1",
            "\"\\ud800\"",
            "\"\\udc00\"",
            "\"a\u{1}\"",
            "\"\\x\"",
            "1e400",
            "{\"a\":1,\"a\":2}",
            "nul",
            "[] []",
            "NaN",
        ] {
            assert!(parse(bad).is_err(), "{bad:?} parsed");
        }
        assert!(parse(&"[".repeat(129)).is_err());
        assert!(parse(&format!("{}{}", "[".repeat(128), "]".repeat(128))).is_ok());
        let many: Vec<String> = (0..40).map(|i| format!("\"k{}\":{i}", i % 39)).collect();
        assert!(parse(&format!("{{{}}}", many.join(","))).is_err());
    }
}
