//! Reading agents' answers, and saying briefly what came back when it is not usable.

use serde_json::{Map, Value};

/// At most this many characters of an answer go into an error message: enough to see
/// what went wrong, not so many that a run's error record fills up with an HTML page.
pub(crate) const EXCERPT_CHARS: usize = 200;

/// `text` cut to [`EXCERPT_CHARS`] characters, with `…` when it was cut.
pub(crate) fn excerpt(text: &str) -> String {
    let text = text.trim();
    match text.char_indices().nth(EXCERPT_CHARS) {
        Some((end, _)) => format!("{}…", &text[..end]),
        None => text.to_owned(),
    }
}

/// [`excerpt`] of bytes that ought to be text; invalid UTF-8 shows as `�`.
pub(crate) fn bytes_excerpt(bytes: &[u8]) -> String {
    if bytes.iter().all(u8::is_ascii_whitespace) {
        return "an empty body".to_owned();
    }
    excerpt(&String::from_utf8_lossy(bytes))
}

/// The answer as a JSON object; else what it is, for the error message ("an empty body",
/// "a JSON array: [1,2]", "a body that is not JSON: <html>…").
pub(crate) fn json_object(bytes: &[u8]) -> Result<Map<String, Value>, String> {
    if bytes.iter().all(u8::is_ascii_whitespace) {
        return Err("an empty body".to_owned());
    }
    match serde_json::from_slice::<Value>(bytes) {
        Ok(Value::Object(object)) => Ok(object),
        Ok(other) => {
            Err(format!("a JSON {} instead of an object: {}", kind(&other), excerpt(&other.to_string())))
        }
        Err(_) => Err(format!("a body that is not JSON: {}", bytes_excerpt(bytes))),
    }
}

fn kind(value: &Value) -> &'static str {
    match value {
        Value::Null => "null",
        Value::Bool(_) => "boolean",
        Value::Number(_) => "number",
        Value::String(_) => "string",
        Value::Array(_) => "array",
        Value::Object(_) => "object",
    }
}

/// The payload as bytes to send. A `Value` always serializes (its map keys are strings),
/// but the error is kept rather than assumed away.
pub(crate) fn to_bytes(payload: &Value) -> Result<Vec<u8>, tdev_domain::agents::InvokeError> {
    serde_json::to_vec(payload).map_err(|e| {
        tdev_domain::agents::InvokeError::Rejected(format!("the payload does not serialize as JSON: {e}"))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_short_text_is_kept_whole() {
        assert_eq!(excerpt("  hello \n"), "hello");
    }

    #[test]
    fn a_long_text_is_cut_on_a_character_boundary() {
        let text = "é".repeat(EXCERPT_CHARS + 50);
        let cut = excerpt(&text);
        assert_eq!(cut.chars().count(), EXCERPT_CHARS + 1);
        assert!(cut.ends_with('…'));
    }

    #[test]
    fn an_object_is_the_answer() {
        let object = json_object(br#"{"a": 1}"#);
        assert_eq!(object, Ok(Map::from_iter([("a".to_owned(), Value::from(1))])));
    }

    #[test]
    fn anything_else_says_what_it_is() {
        assert_eq!(json_object(b" \n"), Err("an empty body".to_owned()));
        assert_eq!(json_object(b"[1, 2]"), Err("a JSON array instead of an object: [1,2]".to_owned()));
        assert_eq!(json_object(b"\"hi\""), Err("a JSON string instead of an object: \"hi\"".to_owned()));
        assert_eq!(json_object(b"<html>"), Err("a body that is not JSON: <html>".to_owned()));
        assert_eq!(json_object(b"\xff{"), Err("a body that is not JSON: \u{fffd}{".to_owned()));
    }
}
