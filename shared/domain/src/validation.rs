//! Field-level validation errors, reported all at once with the JSON path of each field.

use std::fmt;

use serde::Serialize;

/// One bad field: `path` is a JSON path from the document root (`$.scopes[1]`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, utoipa::ToSchema)]
pub struct FieldError {
    pub path: String,
    pub message: String,
}

/// What an id or a name may not contain, as a field error says it.
pub const UNSAFE_TEXT: &str = "must not contain control, bidirectional or invisible formatting characters";

/// The first character no id or name may hold: controls (C0, C1 and DEL) and the
/// invisible formatting characters that reorder or hide text — bidirectional marks,
/// embeddings, overrides (U+202E) and isolates, zero-width spaces and joiners, word
/// joiners and the byte-order mark — so that a name in a log, a terminal or a console
/// reads as what it is.
pub fn unsafe_char(text: &str) -> Option<char> {
    text.chars().find(|&c| {
        c.is_control()
            || matches!(c,
                '\u{061C}' | '\u{180E}' | '\u{200B}'..='\u{200F}' | '\u{2028}'..='\u{202E}'
                | '\u{2060}'..='\u{2069}' | '\u{FEFF}' | '\u{FFF9}'..='\u{FFFB}')
    })
}

/// At most this many problems are listed in one report; the rest are counted. A report
/// stays readable and small whatever the input (99,000 bad aliases once made 10.7 MB).
pub const MAX_REPORTED: usize = 100;

/// Every problem found in one input, in the order they were found: the first
/// [`MAX_REPORTED`] listed, then one entry counting the rest.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ValidationErrors(Vec<FieldError>, usize);

impl ValidationErrors {
    pub fn new() -> Self {
        Self::default()
    }

    pub fn single(path: impl Into<String>, message: impl Into<String>) -> Self {
        let mut errors = Self::new();
        errors.add(path, message);
        errors
    }

    pub fn add(&mut self, path: impl Into<String>, message: impl Into<String>) {
        if self.1 == 0 && self.0.len() < MAX_REPORTED {
            self.0.push(FieldError { path: path.into(), message: message.into() });
            return;
        }
        self.1 += 1;
        let count = FieldError { path: "$".into(), message: format!("{} more problems, not listed", self.1) };
        if self.1 == 1 {
            self.0.push(count);
        } else if let Some(last) = self.0.last_mut() {
            *last = count;
        }
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// The problems listed, and past [`MAX_REPORTED`] a last entry at `$` counting the rest.
    pub fn errors(&self) -> &[FieldError] {
        &self.0
    }

    /// `Ok(value)` when nothing was added, else `Err(self)`.
    pub fn into_result<T>(self, value: T) -> Result<T, Self> {
        if self.is_empty() { Ok(value) } else { Err(self) }
    }
}

impl fmt::Display for ValidationErrors {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let parts: Vec<String> = self.0.iter().map(|e| format!("{}: {}", e.path, e.message)).collect();
        f.write_str(&parts.join("; "))
    }
}

impl std::error::Error for ValidationErrors {}

/// The candidate a near miss most likely meant: the closest by Damerau–Levenshtein
/// distance (a swap of two neighbours counts once, so `agnet` is one edit from `agent`),
/// if it is at most 2 edits away and fewer edits than the word has characters. Matching
/// ignores ASCII case, `-` versus `_`, and surrounding blanks, since those are the usual
/// slips (`Agent_ID`, `max-attempts`).
pub fn did_you_mean<'c>(word: &str, candidates: &[&'c str]) -> Option<&'c str> {
    fn fold(text: &str) -> String {
        text.trim().chars().map(|c| if c == '-' { '_' } else { c.to_ascii_lowercase() }).collect()
    }
    // Only short words are compared: the distance is quadratic, and a long word is no slip.
    if word.len() > 64 {
        return None;
    }
    let folded = fold(word);
    let len = folded.chars().count();
    candidates
        .iter()
        .filter(|c| **c != word)
        .map(|c| (strsim::damerau_levenshtein(&folded, &fold(c)), *c))
        .filter(|(distance, _)| *distance <= 2 && *distance < len)
        .min_by_key(|(distance, _)| *distance)
        .map(|(_, c)| c)
}

/// ` (did you mean "x"?)` when [`did_you_mean`] finds one, else nothing.
pub fn suggestion(word: &str, candidates: &[&str]) -> String {
    did_you_mean(word, candidates).map(|c| format!(" (did you mean {c:?}?)")).unwrap_or_default()
}

/// The one wording of an unknown field: `unknown field "agnet_id" (did you mean
/// "agent_id"?); a step has only id, name, …`. `what` names the object (`a step`).
pub fn unknown_field(key: &str, names: &[&str], what: &str) -> String {
    format!("unknown field {key:?}{}; {what} has only {}", suggestion(key, names), names.join(", "))
}

/// The one wording of a value outside a fixed set: `unknown target kind "htp" (did you
/// mean "http"?); expected one of "http", "lambda"`. `what` names the value (`target kind`).
pub fn unknown_value(what: &str, value: &str, allowed: &[&str]) -> String {
    let quoted: Vec<String> = allowed.iter().map(|a| format!("{a:?}")).collect();
    format!("unknown {what} {value:?}{}; expected one of {}", suggestion(value, allowed), quoted.join(", "))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn controls_and_invisible_formatting_are_unsafe_in_names() {
        for bad in [
            "a\u{202E}b",
            "tab\there",
            "nul\0",
            "\u{200B}",
            "x\u{2066}",
            "\u{FEFF}id",
            "del\u{7F}",
            "c1\u{85}",
        ] {
            assert!(unsafe_char(bad).is_some(), "{bad:?}");
        }
        for good in ["etl-2024", "Ünïcödé name", "名前", "a b.c:d/e", "emoji 🚀"] {
            assert_eq!(unsafe_char(good), None, "{good:?}");
        }
    }

    #[test]
    fn a_report_lists_the_first_problems_and_counts_the_rest() {
        let mut errors = ValidationErrors::new();
        for i in 0..MAX_REPORTED + 5000 {
            errors.add(format!("$.steps[{i}]"), "bad");
        }
        assert_eq!(errors.errors().len(), MAX_REPORTED + 1);
        assert_eq!(errors.errors()[MAX_REPORTED - 1].path, format!("$.steps[{}]", MAX_REPORTED - 1));
        let last = &errors.errors()[MAX_REPORTED];
        assert_eq!((last.path.as_str(), last.message.as_str()), ("$", "5000 more problems, not listed"));
    }
    #[test]
    fn near_misses_are_suggested_and_far_ones_are_not() {
        let kinds = ["http", "lambda", "agent"];
        assert_eq!(did_you_mean("htp", &kinds), Some("http"));
        assert_eq!(did_you_mean("agnet", &kinds), Some("agent"));
        assert_eq!(did_you_mean("LAMBDA", &kinds), Some("lambda"));
        assert_eq!(did_you_mean("max-attempts", &["max_attempts"]), Some("max_attempts"));
        assert_eq!(did_you_mean("ftp", &kinds), Some("http"));
        assert_eq!(did_you_mean("xyz", &kinds), None);
        assert_eq!(did_you_mean("a", &["b"]), None, "a one-letter word is never a slip of another");
        assert_eq!(did_you_mean("http", &kinds), None, "an exact match is not a suggestion");
        assert_eq!(did_you_mean(&"x".repeat(10_000), &kinds), None);
        assert_eq!(
            unknown_value("target kind", "htp", &["http", "lambda"]),
            "unknown target kind \"htp\" (did you mean \"http\"?); expected one of \"http\", \"lambda\""
        );
        assert_eq!(
            unknown_field("nmae", &["id", "name"], "an agent"),
            "unknown field \"nmae\" (did you mean \"name\"?); an agent has only id, name"
        );
    }
}
