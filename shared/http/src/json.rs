//! JSON request bodies: 415 for the wrong media type (listing the ones taken), 413 over
//! the size limit, 400 with line and column for broken JSON, and 422 listing every problem
//! of the body's shape, each with its JSON path ([`tdev_domain::strict::shape`]).

use axum::body::Bytes;
use axum::extract::{FromRequest, OptionalFromRequest, Request};
use axum::http::{StatusCode, header};
use serde_json::error::Category;
use tdev_domain::strict::shape::Shaped;
use tdev_domain::validation::ValidationErrors;

use crate::problem::{ApiError, JSON_TYPES};

/// The body size limit in force, put in request extensions by [`crate::app::finish`] so
/// that a 413 can say what the limit is.
#[derive(Debug, Clone, Copy)]
pub struct BodyLimit(pub usize);

/// A JSON body, parsed with the path of any bad field reported.
#[derive(Debug, Clone)]
pub struct ApiJson<T>(pub T);

impl<T: Shaped, S: Send + Sync> FromRequest<S> for ApiJson<T> {
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &S) -> Result<Self, Self::Rejection> {
        if !is_json(req.headers()) {
            return Err(ApiError::UnsupportedMediaType { accepted: JSON_TYPES });
        }
        let bytes = read_body(req, state).await?;
        parse(&bytes).map(ApiJson)
    }
}

/// An optional body: absent (no content type, nothing sent) is `None`.
impl<T: Shaped, S: Send + Sync> OptionalFromRequest<S> for ApiJson<T> {
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &S) -> Result<Option<Self>, Self::Rejection> {
        let has_type = req.headers().contains_key(header::CONTENT_TYPE);
        if has_type && !is_json(req.headers()) {
            return Err(ApiError::UnsupportedMediaType { accepted: JSON_TYPES });
        }
        let bytes = read_body(req, state).await?;
        if bytes.iter().all(u8::is_ascii_whitespace) && !has_type {
            return Ok(None);
        }
        if !has_type {
            return Err(ApiError::UnsupportedMediaType { accepted: JSON_TYPES });
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

/// Parses JSON into `T`: 400 for text that is not JSON (with line and column), else 422
/// listing every problem of its shape with its path. A struct is read from an object only,
/// never from a list of its fields ([`tdev_domain::strict`]).
pub fn parse<T: Shaped>(bytes: &[u8]) -> Result<T, ApiError> {
    let value = tdev_domain::strict::value_from_slice(bytes).map_err(|error| {
        let full = error.to_string();
        let message = full.rfind(" at line ").map_or(full.as_str(), |i| &full[..i]);
        match error.classify() {
            // A repeated key.
            Category::Data => ApiError::Validation(ValidationErrors::single("$", message)),
            Category::Syntax | Category::Eof | Category::Io => {
                ApiError::MalformedJson(format!("line {} column {}: {message}", error.line(), error.column()))
            }
        }
    })?;
    Ok(tdev_domain::strict::shape::read(&value)?)
}

#[cfg(test)]
mod tests {
    use serde::Deserialize;
    use tdev_domain::strict::shape::{Field, Object, Shape};

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

    impl Shaped for Body {
        fn shape() -> &'static Shape {
            static SHAPE: Shape = Shape::Object(&Object {
                what: "a body",
                fields: &[
                    Field::required("name", Shape::Str),
                    Field::required(
                        "limits",
                        Shape::List(&Shape::Object(&Object {
                            what: "a limit",
                            fields: &[Field::required("capacity", Shape::U32)],
                        })),
                    ),
                ],
            });
            &SHAPE
        }
    }

    #[test]
    fn every_problem_is_listed_at_once() {
        let (status, mut paths) =
            problem_of(r#"{"nmae": "x", "limits": [{"capacity": -1}, {}], "extra": 1}"#);
        assert_eq!(status, 422);
        paths.sort_unstable();
        assert_eq!(paths, ["$.extra", "$.limits[0].capacity", "$.limits[1].capacity", "$.name", "$.nmae"]);
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
