//! YAML from callers: the one way the system reads it, bounded before libyaml runs.
//!
//! libyaml keeps a list of possible "simple keys" per flow level and revisits it for every
//! token, so deeply nested flow collections cost time quadratic in their depth: a 1 MiB
//! body of `[` took about 50 s. Depth is bounded anyway (serde stops at 128 levels), but
//! only after libyaml has read the whole input. So the text is scanned first, in one pass
//! without recursion, and refused when its flow collections nest deeper than
//! [`MAX_FLOW_NESTING`] or it holds more than [`MAX_ALIASES`] aliases (each alias is a
//! copy of its anchor's whole subtree once deserialized).

use serde::de::DeserializeOwned;

/// Flow collections (`[…]`, `{…}`) inside flow collections. A document's block structure
/// is bounded separately by serde's own depth limit.
pub const MAX_FLOW_NESTING: usize = 64;
/// Aliases (`*name`) in one document.
pub const MAX_ALIASES: usize = 10_000;

/// Why a YAML text was refused before parsing.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum YamlShapeError {
    #[error("line {line}: flow collections nest deeper than {MAX_FLOW_NESTING} levels")]
    TooDeep { line: usize },
    #[error("line {line}: more than {MAX_ALIASES} aliases")]
    TooManyAliases { line: usize },
}

/// Checks the bounds above in one pass: quoted scalars and comments are skipped; a `[`
/// or `{` inside a plain scalar may count as an opening, which can only err towards
/// refusing a document that is within bounds in some exotic spelling.
pub fn check(text: &str) -> Result<(), YamlShapeError> {
    let bytes = text.as_bytes();
    let (mut depth, mut aliases, mut line) = (0usize, 0usize, 1usize);
    let mut i = 0;
    // Whether the previous byte lets a `#` start a comment (start, or whitespace).
    let mut after_space = true;
    while i < bytes.len() {
        let b = bytes[i];
        match b {
            b'\n' => line += 1,
            b'#' if after_space => {
                while i < bytes.len() && bytes[i] != b'\n' {
                    i += 1;
                }
                continue;
            }
            b'"' | b'\''
                if after_space || matches!(bytes.get(i.wrapping_sub(1)), Some(b'[' | b'{' | b',' | b':')) =>
            {
                let end = skip_quoted(bytes, i);
                line += bytes[i..end].iter().filter(|&&c| c == b'\n').count();
                i = end;
                after_space = false;
                continue;
            }
            b'[' | b'{' => {
                depth += 1;
                if depth > MAX_FLOW_NESTING {
                    return Err(YamlShapeError::TooDeep { line });
                }
            }
            b']' | b'}' => depth = depth.saturating_sub(1),
            b'*' if after_space || matches!(bytes.get(i.wrapping_sub(1)), Some(b'[' | b'{' | b',')) => {
                aliases += 1;
                if aliases > MAX_ALIASES {
                    return Err(YamlShapeError::TooManyAliases { line });
                }
            }
            _ => {}
        }
        after_space = b.is_ascii_whitespace();
        i += 1;
    }
    Ok(())
}

/// The index past the quoted scalar starting at `start`; unterminated runs to the end.
fn skip_quoted(bytes: &[u8], start: usize) -> usize {
    let quote = bytes[start];
    let mut i = start + 1;
    while i < bytes.len() {
        match bytes[i] {
            b'\\' if quote == b'"' => i += 2,
            // '' is an escaped quote inside a single-quoted scalar.
            b'\'' if quote == b'\'' && bytes.get(i + 1) == Some(&b'\'') => i += 2,
            b if b == quote => return i + 1,
            _ => i += 1,
        }
    }
    bytes.len()
}

/// An error from reading YAML: the bounds, or libyaml's and serde's own.
#[derive(Debug, thiserror::Error)]
pub enum YamlError {
    #[error(transparent)]
    Shape(#[from] YamlShapeError),
    #[error(transparent)]
    Parse(#[from] yaml_serde::Error),
}

impl YamlError {
    /// Where libyaml found the problem (line, column), when it says.
    pub fn location(&self) -> Option<(usize, usize)> {
        match self {
            YamlError::Shape(YamlShapeError::TooDeep { line } | YamlShapeError::TooManyAliases { line }) => {
                Some((*line, 1))
            }
            YamlError::Parse(e) => e.location().map(|at| (at.line(), at.column())),
        }
    }
}

/// Reads one YAML document into `T`, within the bounds.
pub fn from_str<T: DeserializeOwned>(text: &str) -> Result<T, YamlError> {
    check(text)?;
    Ok(yaml_serde::from_str(text)?)
}

/// Reads one YAML document into a JSON value, within the bounds, refusing repeated keys.
pub fn value_from_str(text: &str) -> Result<serde_json::Value, YamlError> {
    let deserializer = deserializer(text)?;
    Ok(crate::strict::value_from(deserializer)?)
}

/// The deserializer for one YAML document, within the bounds, for callers that read it
/// with a seed of their own.
pub fn deserializer(text: &str) -> Result<yaml_serde::Deserializer<'_>, YamlShapeError> {
    check(text)?;
    Ok(yaml_serde::Deserializer::from_str(text))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn deep_flow_nesting_is_refused_before_parsing() {
        let text = "[".repeat(1024 * 1024);
        assert_eq!(check(&text), Err(YamlShapeError::TooDeep { line: 1 }));
        let text = format!("a:\n  b: {}", "{x: ".repeat(100));
        assert_eq!(check(&text), Err(YamlShapeError::TooDeep { line: 2 }));
        let ok = format!("{}1{}", "[".repeat(MAX_FLOW_NESTING), "]".repeat(MAX_FLOW_NESTING));
        assert_eq!(check(&ok), Ok(()));
    }

    #[test]
    fn quoted_scalars_and_comments_do_not_count() {
        let text = format!(
            "a: '{}'\nb: \"{}\\\"\" # {}\nc: 'it''s [' \n",
            "[".repeat(200),
            "{".repeat(200),
            "[".repeat(200)
        );
        assert_eq!(check(&text), Ok(()));
    }

    #[test]
    fn too_many_aliases_are_refused() {
        let mut text = String::from("a: &x 1\nb: [");
        text.push_str(&vec!["*x"; MAX_ALIASES + 1].join(", "));
        text.push(']');
        assert_eq!(check(&text), Err(YamlShapeError::TooManyAliases { line: 2 }));
        // `*` inside a plain scalar (a glob, a product) is not an alias.
        assert_eq!(check("pattern: a*b\nglob: 'x*'\n"), Ok(()));
    }
}
