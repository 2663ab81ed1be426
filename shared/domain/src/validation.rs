//! Field-level validation errors, reported all at once with the JSON path of each field.

use std::fmt;

use serde::Serialize;

/// One bad field: `path` is a JSON path from the document root (`$.scopes[1]`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct FieldError {
    pub path: String,
    pub message: String,
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

#[cfg(test)]
mod tests {
    use super::*;

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
}
