//! Reading a squad document: JSON or YAML text, bounded before it is parsed, checked
//! against its shape and rules with every problem reported at once.

use serde_json::Value;

use super::model::Squad;
use crate::validation::ValidationErrors;
use crate::workflow::Format;

/// The largest squad document: a thousand members at a few hundred bytes each.
pub const MAX_BYTES: usize = 1024 * 1024;

/// Why a text is not a squad.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SquadError {
    /// Not JSON (or YAML) at all, or over [`MAX_BYTES`]: the message says where.
    #[error("{0}")]
    Unreadable(String),
    /// A document, but not a valid squad: every problem with its JSON path.
    #[error("{0}")]
    Invalid(ValidationErrors),
}

/// A checked squad and its stored form: the document as JSON with every default written
/// out, so a stored version says all it means, and the JSON and YAML spellings of one
/// squad are stored alike.
#[derive(Debug, Clone, PartialEq)]
pub struct Loaded {
    pub squad: Squad,
    pub definition: Value,
}

/// Parses and checks a squad document sent as `format`.
pub fn load(text: &str, format: Format) -> Result<Loaded, SquadError> {
    if text.len() > MAX_BYTES {
        return Err(SquadError::Unreadable(format!(
            "the squad document is {} bytes; the limit is {MAX_BYTES}",
            text.len()
        )));
    }
    let document = match format {
        Format::Json => {
            crate::strict::value_from_slice(text.as_bytes()).map_err(|e| format!("not JSON: {e}"))
        }
        Format::Yaml => crate::yaml::value_from_str(text).map_err(|e| format!("not YAML: {e}")),
    }
    .map_err(SquadError::Unreadable)?;
    from_value(&document)
}

/// Checks a document already read (and the stored form, read back).
pub fn from_value(document: &Value) -> Result<Loaded, SquadError> {
    let squad: Squad = crate::strict::shape::read(document).map_err(SquadError::Invalid)?;
    let definition = serde_json::to_value(&squad)
        .map_err(|e| SquadError::Unreadable(format!("the squad could not be written back as JSON: {e}")))?;
    Ok(Loaded { squad, definition })
}

/// [`load`] off the async runtime, within [`crate::bounded::DOCUMENT_BUDGET`].
pub async fn load_off_runtime(text: String, format: Format) -> Result<Loaded, SquadError> {
    crate::bounded::off_runtime(crate::bounded::DOCUMENT_BUDGET, move || load(&text, format))
        .await
        .unwrap_or_else(|unfinished| {
            Err(SquadError::Unreadable(format!("the squad could not be read: {unfinished}")))
        })
}
