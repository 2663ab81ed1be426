//! JSON request bodies: 415 for the wrong media type, 413 over the size limit, 400 with
//! line and column for broken JSON, and 422 with the JSON path of the bad field.

use axum::body::Bytes;
use axum::extract::{FromRequest, OptionalFromRequest, Request};
use axum::http::{StatusCode, header};
use serde::de::DeserializeOwned;
use serde_json::error::Category;
use tdev_domain::validation::ValidationErrors;

use crate::problem::ApiError;

/// The body size limit in force, put in request extensions by [`crate::app::finish`] so
/// that a 413 can say what the limit is.
#[derive(Debug, Clone, Copy)]
pub struct BodyLimit(pub usize);

/// A JSON body, parsed with the path of any bad field reported.
#[derive(Debug, Clone)]
pub struct ApiJson<T>(pub T);

impl<T: DeserializeOwned, S: Send + Sync> FromRequest<S> for ApiJson<T> {
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &S) -> Result<Self, Self::Rejection> {
        if !is_json(req.headers()) {
            return Err(ApiError::UnsupportedMediaType);
        }
        let bytes = read_body(req, state).await?;
        parse(&bytes).map(ApiJson)
    }
}

/// An optional body: absent (no content type, nothing sent) is `None`.
impl<T: DeserializeOwned, S: Send + Sync> OptionalFromRequest<S> for ApiJson<T> {
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &S) -> Result<Option<Self>, Self::Rejection> {
        let has_type = req.headers().contains_key(header::CONTENT_TYPE);
        if has_type && !is_json(req.headers()) {
            return Err(ApiError::UnsupportedMediaType);
        }
        let bytes = read_body(req, state).await?;
        if bytes.iter().all(u8::is_ascii_whitespace) && !has_type {
            return Ok(None);
        }
        if !has_type {
            return Err(ApiError::UnsupportedMediaType);
        }
        parse(&bytes).map(|v| Some(ApiJson(v)))
    }
}

async fn read_body<S: Send + Sync>(req: Request, state: &S) -> Result<Bytes, ApiError> {
    let limit = req.extensions().get::<BodyLimit>().map_or(0, |l| l.0);
    Bytes::from_request(req, state).await.map_err(|rejection| {
        if rejection.status() == StatusCode::PAYLOAD_TOO_LARGE {
            ApiError::PayloadTooLarge { limit }
        } else {
            ApiError::MalformedJson(rejection.body_text())
        }
    })
}

fn is_json(headers: &axum::http::HeaderMap) -> bool {
    let Some(value) = headers.get(header::CONTENT_TYPE).and_then(|v| v.to_str().ok()) else {
        return false;
    };
    let essence = value.split(';').next().unwrap_or("").trim().to_ascii_lowercase();
    essence == "application/json" || (essence.starts_with("application/") && essence.ends_with("+json"))
}

/// Parses JSON into `T`, mapping errors to 400 (syntax) or 422 (shape) with a JSON path.
/// A struct is read from an object only, never from a list of its fields
/// ([`tdev_domain::strict`]).
pub fn parse<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, ApiError> {
    let value = tdev_domain::strict::value_from_slice(bytes).map_err(|e| shape_or_syntax(e, "$".into()))?;
    serde_path_to_error::deserialize(tdev_domain::strict::Strict(&value)).map_err(|e| {
        let path = json_path(&e.path().to_string());
        shape_or_syntax(e.into_inner(), path)
    })
}

fn shape_or_syntax(error: serde_json::Error, path: String) -> ApiError {
    let full = error.to_string();
    let message = full.rfind(" at line ").map_or(full.as_str(), |i| &full[..i]).to_owned();
    match error.classify() {
        Category::Data => {
            // serde reports a missing field at its parent; point at the field itself.
            let field = message.strip_prefix("missing field `").and_then(|rest| rest.split('`').next());
            let path = match field {
                Some(name) if path == "$" => format!("$.{name}"),
                Some(name) => format!("{path}.{name}"),
                None => path,
            };
            ApiError::Validation(ValidationErrors::single(path, message))
        }
        Category::Syntax | Category::Eof | Category::Io => {
            ApiError::MalformedJson(format!("line {} column {}: {message}", error.line(), error.column()))
        }
    }
}

/// serde_path_to_error writes `a.b[1]`, and `.` for the root; we write `$.a.b[1]`.
fn json_path(raw: &str) -> String {
    match raw {
        "" | "." => "$".into(),
        _ if raw.starts_with('[') => format!("${raw}"),
        _ => format!("$.{raw}"),
    }
}

#[cfg(test)]
mod tests {
    use serde::Deserialize;

    use super::*;

    #[derive(Debug, Deserialize)]
    #[serde(deny_unknown_fields)]
    #[allow(dead_code)]
    struct Body {
        name: String,
        limits: Vec<Limit>,
    }

    #[derive(Debug, Deserialize)]
    #[allow(dead_code)]
    struct Limit {
        capacity: u32,
    }

    fn problem_of(text: &str) -> (u16, Vec<String>) {
        let problem = parse::<Body>(text.as_bytes()).unwrap_err().problem();
        (problem.status, problem.errors.into_iter().map(|e| e.path).collect())
    }

    #[test]
    fn wrong_types_point_at_the_field() {
        let (status, paths) =
            problem_of(r#"{"name": "x", "limits": [{"capacity": 1}, {"capacity": "lots"}]}"#);
        assert_eq!((status, paths), (422, vec!["$.limits[1].capacity".to_string()]));
    }

    #[test]
    fn missing_and_unknown_fields_point_at_the_field() {
        assert_eq!(problem_of(r#"{"limits": []}"#), (422, vec!["$.name".to_string()]));
        assert_eq!(
            problem_of(r#"{"name": "x", "limits": [], "extra": 1}"#),
            (422, vec!["$.extra".to_string()])
        );
        assert_eq!(
            problem_of(r#"{"name": "x", "limits": [{}]}"#),
            (422, vec!["$.limits[0].capacity".to_string()])
        );
    }

    #[test]
    fn a_struct_sent_as_a_list_of_its_fields_is_refused() {
        assert_eq!(problem_of(r#"["x", []]"#), (422, vec!["$".to_string()]));
        assert_eq!(problem_of(r#"{"name": "x", "limits": [[1]]}"#), (422, vec!["$.limits[0]".to_string()]));
        assert_eq!(problem_of(r#"{"name": "x", "name": "y", "limits": []}"#).0, 422);
    }

    #[test]
    fn broken_json_is_a_400_with_line_and_column() {
        let problem = parse::<Body>(b"{\n  \"name\": ").unwrap_err().problem();
        assert_eq!(problem.status, 400);
        assert!(problem.detail.starts_with("line 2 column"), "{}", problem.detail);
        let trailing = parse::<Body>(br#"{"name": "x", "limits": []} x"#).unwrap_err().problem();
        assert_eq!(trailing.status, 400);
    }
}
