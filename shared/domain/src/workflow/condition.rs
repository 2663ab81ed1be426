//! Condition steps' CEL expressions, bounded before the `cel` crate sees them.
//!
//! The `cel` crate parses and evaluates recursively, and its own depth limit does not keep
//! it inside a thread's stack: twelve nested parentheses, twelve nested lists or a chain
//! of 10,000 `+` aborted the process. So an expression is scanned first, in one pass and
//! without recursion: its length, its nesting of brackets, its number of operators and
//! its nesting of comprehensions (`map`, `filter`, `all`, `exists`, `exists_one`, whose
//! cost multiplies when nested) are each checked against [`ExpressionLimits`]. Only then
//! is it compiled or run, on a large stack ([`crate::bounded::on_large_stack`]).

use std::fmt;

/// Bounds on a CEL expression. The worst expressions within them (32 nested brackets,
/// 257 terms of one sum, both at once) were measured to need at most 16 MiB of stack in
/// a debug build, a sixteenth of [`crate::bounded::STACK_BYTES`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ExpressionLimits {
    pub max_bytes: usize,
    /// Brackets inside brackets: `(`, `[` and `{`.
    pub max_nesting: usize,
    /// Operators and member accesses (`+`, `&&`, `.`, `?`, …), each a node of the tree.
    pub max_operators: usize,
    /// Comprehensions inside comprehensions.
    pub max_comprehension_nesting: usize,
}

impl ExpressionLimits {
    pub const DEFAULT: ExpressionLimits = ExpressionLimits {
        max_bytes: 4096,
        max_nesting: 32,
        max_operators: 256,
        max_comprehension_nesting: 2,
    };
}

/// Why an expression is refused before it is compiled.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TooComplex {
    pub what: &'static str,
    pub max: usize,
    pub found: usize,
}

impl fmt::Display for TooComplex {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "has {} {}, more than the limit of {}", self.found, self.what, self.max)
    }
}

/// Checks `text` against `limits` in one pass over its characters (strings and comments
/// skipped).
pub fn check(text: &str, limits: &ExpressionLimits) -> Result<(), TooComplex> {
    let over = |what, max, found| if found > max { Err(TooComplex { what, max, found }) } else { Ok(()) };
    over("bytes", limits.max_bytes, text.len())?;
    let bytes = text.as_bytes();
    let (mut depth, mut deepest, mut operators) = (0usize, 0usize, 0usize);
    // The bracket depth at which each open comprehension's argument list started.
    let mut comprehensions: Vec<usize> = Vec::new();
    let mut deepest_comprehension = 0usize;
    let mut i = 0;
    while i < bytes.len() {
        let b = bytes[i];
        match b {
            b'"' | b'\'' => {
                i = skip_string(bytes, i);
                continue;
            }
            b'/' if bytes.get(i + 1) == Some(&b'/') => {
                while i < bytes.len() && bytes[i] != b'\n' {
                    i += 1;
                }
                continue;
            }
            b'(' | b'[' | b'{' => {
                depth += 1;
                deepest = deepest.max(depth);
                if b == b'(' && is_comprehension_call(&bytes[..i]) {
                    comprehensions.push(depth);
                    deepest_comprehension = deepest_comprehension.max(comprehensions.len());
                }
            }
            b')' | b']' | b'}' => {
                if comprehensions.last() == Some(&depth) {
                    comprehensions.pop();
                }
                depth = depth.saturating_sub(1);
            }
            b'+' | b'-' | b'*' | b'/' | b'%' | b'!' | b'<' | b'>' | b'=' | b'&' | b'|' | b'?' | b':'
            | b'.' | b',' => operators += 1,
            _ => {}
        }
        i += 1;
    }
    over("nested brackets", limits.max_nesting, deepest)?;
    over("operators", limits.max_operators, operators)?;
    over("nested comprehensions", limits.max_comprehension_nesting, deepest_comprehension)?;
    Ok(())
}

/// The index just past the string literal starting at `start` (a quote, possibly
/// tripled); an unterminated string runs to the end.
fn skip_string(bytes: &[u8], start: usize) -> usize {
    let quote = bytes[start];
    let triple = bytes.get(start..start + 3) == Some(&[quote, quote, quote][..]);
    let mut i = start + if triple { 3 } else { 1 };
    // A raw string (r'…') has no escapes.
    let raw = start > 0 && matches!(bytes[start - 1], b'r' | b'R');
    while i < bytes.len() {
        match bytes[i] {
            b'\\' if !raw => i += 2,
            b if b == quote => {
                if !triple {
                    return i + 1;
                }
                if bytes.get(i..i + 3) == Some(&[quote, quote, quote][..]) {
                    return i + 3;
                }
                i += 1;
            }
            b'\n' if !triple => return i + 1,
            _ => i += 1,
        }
    }
    bytes.len()
}

/// Whether the text before an opening parenthesis ends in `.map`, `.filter`, `.all`,
/// `.exists` or `.exists_one` (spaces allowed).
fn is_comprehension_call(before: &[u8]) -> bool {
    let trimmed = before.trim_ascii_end();
    let start = trimmed.iter().rposition(|b| !(b.is_ascii_alphanumeric() || *b == b'_')).map_or(0, |p| p + 1);
    let name = &trimmed[start..];
    let dotted = trimmed[..start].trim_ascii_end().ends_with(b".");
    dotted && matches!(name, b"map" | b"filter" | b"all" | b"exists" | b"exists_one")
}

/// Checks and compiles `text`; the error says what is wrong, for a field error.
pub fn compile(text: &str) -> Result<cel::Program, String> {
    check(text, &ExpressionLimits::DEFAULT).map_err(|e| e.to_string())?;
    crate::bounded::on_large_stack(|| {
        cel::Program::compile(text).map_err(|e| format!("is not a CEL expression: {e}"))
    })
}

/// Checks, compiles and runs a condition with the step's inputs as `inputs`.
pub fn evaluate(text: &str, inputs: &serde_json::Map<String, serde_json::Value>) -> Result<bool, String> {
    check(text, &ExpressionLimits::DEFAULT).map_err(|e| format!("the condition {e}"))?;
    crate::bounded::on_large_stack(|| {
        let program =
            cel::Program::compile(text).map_err(|e| format!("the condition does not compile: {e}"))?;
        let mut context = cel::Context::default();
        context
            .add_variable("inputs", inputs)
            .map_err(|e| format!("the inputs cannot be given to CEL: {e}"))?;
        match program.execute(&context) {
            Ok(cel::Value::Bool(result)) => Ok(result),
            Ok(other) => Err(format!("the condition gave {other:?}, not true or false")),
            Err(e) => Err(format!("the condition failed: {e}")),
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn nested(open: &str, close: &str, n: usize) -> String {
        format!("{}1{}", open.repeat(n), close.repeat(n))
    }

    #[test]
    fn inputs_that_aborted_the_process_are_refused_or_handled() {
        // Each of these overflowed a 2 MiB stack (a tokio worker's) before the bounds;
        // now each compiles on its own large stack or is refused before compiling.
        let answers = std::thread::Builder::new()
            .stack_size(2 * 1024 * 1024)
            .spawn(|| {
                [nested("(", ")", 12), nested("[", "]", 12), vec!["1"; 10_000].join("+")]
                    .map(|text| compile(&text).map(|_| ()))
            })
            .unwrap()
            .join()
            .expect("no overflow");
        assert!(answers[0].is_ok() && answers[1].is_ok(), "{answers:?}");
        assert!(answers[2].as_ref().unwrap_err().contains("bytes"));
        assert!(compile(&vec!["1"; 1_000].join("+")).unwrap_err().contains("operators"));
        assert!(compile(&nested("(", ")", 33)).unwrap_err().contains("nested brackets"));
    }

    #[test]
    fn the_worst_bounded_expressions_compile_and_run_within_the_large_stack() {
        let limits = ExpressionLimits::DEFAULT;
        let deepest = [
            nested("(", ")", limits.max_nesting),
            nested("[", "]", limits.max_nesting),
            format!("{}1{}", "{1:".repeat(limits.max_nesting), "}".repeat(limits.max_nesting)),
            vec!["1"; limits.max_operators + 1].join("+"),
            format!("{}true", "!".repeat(limits.max_operators)),
            format!("{}1{}", "-(".repeat(limits.max_nesting), ")".repeat(limits.max_nesting)),
        ];
        for text in deepest {
            assert!(check(&text, &limits).is_ok(), "{text}");
            let inputs = serde_json::Map::new();
            // Compiles, and evaluates to an answer or an error: never a crash.
            let _ = compile(&text);
            let _ = evaluate(&text, &inputs);
        }
    }

    #[test]
    fn strings_and_comments_do_not_count() {
        let limits = ExpressionLimits::DEFAULT;
        let text = format!("inputs.s == '{}' // {}\n&& true", "(".repeat(100), "[".repeat(100));
        assert_eq!(check(&text, &limits), Ok(()));
        let escaped = format!(r#"inputs.s == "\"{}" && r'\' == '\\'"#, "((".repeat(50));
        assert_eq!(check(&escaped, &limits), Ok(()));
        assert_eq!(check(&format!("'''{}'''", "[".repeat(100)), &limits), Ok(()));
    }

    #[test]
    fn nested_comprehensions_are_bounded() {
        let limits = ExpressionLimits::DEFAULT;
        assert_eq!(check("inputs.l.exists(x, x > 1)", &limits), Ok(()));
        assert_eq!(check("inputs.l.all(x, inputs.m.exists(y, y == x))", &limits), Ok(()));
        let three = "inputs.l.all(x, inputs.l.all(y, inputs.l . exists (z, z == x + y)))";
        let refused = check(three, &limits).unwrap_err();
        assert_eq!((refused.what, refused.found), ("nested comprehensions", 3));
        // Siblings are not nested.
        assert_eq!(check("inputs.l.all(x, x > 0) && inputs.l.map(x, x).exists(x, x > 1)", &limits), Ok(()));
    }

    #[test]
    fn conditions_evaluate_against_the_inputs() {
        let inputs = serde_json::json!({"score": 0.9, "tags": ["a", "b"]});
        let inputs = inputs.as_object().unwrap();
        assert_eq!(evaluate("inputs.score > 0.5 && 'a' in inputs.tags", inputs), Ok(true));
        assert!(evaluate("inputs.score", inputs).unwrap_err().contains("not true or false"));
    }
}
