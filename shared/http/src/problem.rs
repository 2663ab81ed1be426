//! Errors as `application/problem+json` (RFC 9457), with a stable `type` per kind.

use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::Serialize;
use tdev_domain::agents::RegistryError;
use tdev_domain::auth::AuthError;
use tdev_domain::deploy::DeployRequestError;
use tdev_domain::events::EventError;
use tdev_domain::messaging::MessagingError;
use tdev_domain::ports::StoreError;
use tdev_domain::runs::EngineError;
use tdev_domain::squads::SquadError;
use tdev_domain::validation::{FieldError, ValidationErrors};
use tdev_domain::workflow::{LimitKind, ParseError, WorkflowError};
use utoipa::ToSchema;

pub const CONTENT_TYPE: &str = "application/problem+json";

/// The body of every error response.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct Problem {
    /// A stable URN naming the kind of problem, e.g. `urn:tdev:problem:validation`.
    #[serde(rename = "type")]
    pub kind: String,
    pub title: String,
    pub status: u16,
    pub detail: String,
    /// For validation problems: each bad field's JSON path and what is wrong with it.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    #[schema(value_type = Vec<Object>)]
    pub errors: Vec<FieldError>,
    /// The record this occurrence left behind, e.g. the failed deployment of a rejected spec.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub instance: Option<String>,
    /// For a 415: every media type the route takes.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub accepted: Vec<String>,
}

/// The media types of a JSON body (and any `application/<x>+json`).
pub const JSON_TYPES: &[&str] = &["application/json"];
/// The media types of a document body (a workflow, an agent spec): JSON or YAML.
pub const DOCUMENT_TYPES: &[&str] =
    &["application/json", "application/yaml", "application/x-yaml", "text/yaml", "text/x-yaml"];

/// Everything a handler can fail with. Handlers return `Result<_, ApiError>`.
#[derive(Debug)]
pub enum ApiError {
    /// The body is not JSON at all (400), with the line and column.
    MalformedJson(String),
    /// The body is JSON but not the right shape, or fails validation (422).
    Validation(ValidationErrors),
    /// A validation failure that left a record behind (422, with `instance`).
    Rejected {
        errors: ValidationErrors,
        instance: String,
    },
    Unauthenticated {
        code: String,
        detail: String,
    },
    Forbidden(String),
    /// No route for the path.
    NotFound(String),
    /// No such thing by that name: `path` is where the name was given, `$.path.id` for
    /// the route's `{id}` (`$.path.<parameter>`), or a body field's path.
    NoSuch {
        path: String,
        message: String,
    },
    MethodNotAllowed,
    Conflict(String),
    PayloadTooLarge {
        limit: usize,
    },
    /// The body's content type is not one of `accepted`.
    UnsupportedMediaType {
        accepted: &'static [&'static str],
    },
    /// The path and query are longer than [`crate::app::MAX_URI_BYTES`] (414).
    UriTooLong,
    RateLimited {
        retry_after_secs: u64,
    },
    /// A dependency is down (503). The cause is logged, never sent.
    Unavailable(String),
    /// A bug (500). The cause is logged, never sent.
    Internal(String),
}

impl ApiError {
    fn parts(&self) -> (StatusCode, &'static str, &'static str) {
        use ApiError::*;
        match self {
            MalformedJson(_) => (StatusCode::BAD_REQUEST, "malformed-json", "Malformed JSON"),
            Validation(_) | Rejected { .. } => {
                (StatusCode::UNPROCESSABLE_ENTITY, "validation", "Invalid request")
            }
            Unauthenticated { .. } => (StatusCode::UNAUTHORIZED, "unauthenticated", "Not authenticated"),
            Forbidden(_) => (StatusCode::FORBIDDEN, "forbidden", "Forbidden"),
            NotFound(_) | NoSuch { .. } => (StatusCode::NOT_FOUND, "not-found", "Not found"),
            MethodNotAllowed => (StatusCode::METHOD_NOT_ALLOWED, "method-not-allowed", "Method not allowed"),
            Conflict(_) => (StatusCode::CONFLICT, "conflict", "Conflict"),
            PayloadTooLarge { .. } => {
                (StatusCode::PAYLOAD_TOO_LARGE, "payload-too-large", "Payload too large")
            }
            UnsupportedMediaType { .. } => {
                (StatusCode::UNSUPPORTED_MEDIA_TYPE, "unsupported-media-type", "Unsupported media type")
            }
            UriTooLong => (StatusCode::URI_TOO_LONG, "uri-too-long", "URI too long"),
            RateLimited { .. } => (StatusCode::TOO_MANY_REQUESTS, "rate-limited", "Too many requests"),
            Unavailable(_) => (StatusCode::SERVICE_UNAVAILABLE, "unavailable", "Service unavailable"),
            Internal(_) => (StatusCode::INTERNAL_SERVER_ERROR, "internal", "Internal error"),
        }
    }

    pub fn problem(&self) -> Problem {
        let (status, slug, title) = self.parts();
        let detail = match self {
            ApiError::MalformedJson(d)
            | ApiError::Forbidden(d)
            | ApiError::NotFound(d)
            | ApiError::Conflict(d) => d.clone(),
            ApiError::Unauthenticated { detail, .. } => detail.clone(),
            ApiError::NoSuch { message, .. } => message.clone(),
            ApiError::Validation(e) | ApiError::Rejected { errors: e, .. } => {
                format!("{} invalid field(s): {e}", e.errors().len())
            }
            ApiError::MethodNotAllowed => "this path does not accept that method".into(),
            ApiError::PayloadTooLarge { limit } => {
                let kind = LimitKind::MaxBytes;
                format!(
                    "the body exceeds the limit of {limit} bytes (set by {}, the template parameter {})",
                    kind.setting(),
                    kind.parameter()
                )
            }
            ApiError::UnsupportedMediaType { accepted } => {
                format!("send the body as {}", accepted.join(", "))
            }
            ApiError::UriTooLong => {
                format!("the path and query exceed the limit of {} bytes", crate::app::MAX_URI_BYTES)
            }
            ApiError::RateLimited { retry_after_secs } => {
                format!("rate limit reached; retry after {retry_after_secs} s")
            }
            ApiError::Unavailable(_) => "a backing service is unavailable; retry later".into(),
            ApiError::Internal(_) => "an unexpected error occurred; it has been logged".into(),
        };
        let errors = match self {
            ApiError::Validation(e) | ApiError::Rejected { errors: e, .. } => e.errors().to_vec(),
            ApiError::MalformedJson(d) => vec![FieldError { path: "$".into(), message: d.clone() }],
            ApiError::NoSuch { path, message } => {
                vec![FieldError { path: path.clone(), message: message.clone() }]
            }
            _ => Vec::new(),
        };
        Problem {
            kind: format!("urn:tdev:problem:{slug}"),
            title: title.into(),
            status: status.as_u16(),
            detail,
            errors,
            instance: match self {
                ApiError::Rejected { instance, .. } => Some(instance.clone()),
                _ => None,
            },
            accepted: match self {
                ApiError::UnsupportedMediaType { accepted } => {
                    accepted.iter().map(|t| t.to_string()).collect()
                }
                _ => Vec::new(),
            },
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        match &self {
            ApiError::Internal(cause) => tracing::error!(cause = %cause, "internal error"),
            ApiError::Unavailable(cause) => tracing::warn!(cause = %cause, "dependency unavailable"),
            _ => {}
        }
        let problem = self.problem();
        let status = StatusCode::from_u16(problem.status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
        let body = serde_json::to_vec(&problem).unwrap_or_default();
        let mut response = (status, body).into_response();
        let headers = response.headers_mut();
        headers.insert(header::CONTENT_TYPE, HeaderValue::from_static(CONTENT_TYPE));
        match &self {
            ApiError::RateLimited { retry_after_secs } => {
                headers.insert(header::RETRY_AFTER, HeaderValue::from(*retry_after_secs));
            }
            ApiError::Unauthenticated { code, .. } => {
                let challenge = format!(r#"Bearer realm="t-developer", error="{}""#, oauth_error(code));
                if let Ok(value) = HeaderValue::from_str(&challenge) {
                    headers.insert(header::WWW_AUTHENTICATE, value);
                }
            }
            _ => {}
        }
        response
    }
}

/// RFC 6750: `invalid_request` for a missing credential, `invalid_token` for a bad one.
fn oauth_error(code: &str) -> &'static str {
    match code {
        "missing_credentials" | "ambiguous_credentials" | "unsupported_scheme" => "invalid_request",
        _ => "invalid_token",
    }
}

impl ApiError {
    /// A 404 for a thing named at `path` (`$.path.id`).
    pub fn no_such(path: impl Into<String>, message: impl Into<String>) -> Self {
        ApiError::NoSuch { path: path.into(), message: message.into() }
    }
}

/// Where a route's `{id}` is, in a 404's `errors[]`.
pub const PATH_ID: &str = "$.path.id";

impl From<ValidationErrors> for ApiError {
    fn from(errors: ValidationErrors) -> Self {
        ApiError::Validation(errors)
    }
}

impl From<StoreError> for ApiError {
    fn from(error: StoreError) -> Self {
        match error {
            StoreError::NotFound => ApiError::NotFound("no such record".into()),
            StoreError::Conflict(detail) => ApiError::Conflict(detail),
            StoreError::Unavailable(source) => ApiError::Unavailable(error_chain(source.as_ref())),
            StoreError::Corrupt(detail) => ApiError::Internal(detail),
        }
    }
}

/// An error and every cause under it: SDK errors keep their useful text in the sources.
fn error_chain(error: &(dyn std::error::Error + 'static)) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    text
}

impl From<RegistryError> for ApiError {
    fn from(error: RegistryError) -> Self {
        match error {
            RegistryError::Invalid(errors) => ApiError::Validation(errors),
            RegistryError::Duplicate(_) => ApiError::Conflict(error.to_string()),
            RegistryError::NotFound(_) => ApiError::no_such(PATH_ID, error.to_string()),
            RegistryError::Store(error) => error.into(),
        }
    }
}

impl From<MessagingError> for ApiError {
    fn from(error: MessagingError) -> Self {
        match error {
            MessagingError::Invalid(errors) => ApiError::Validation(errors),
            MessagingError::UnknownAgent { path, id } => {
                ApiError::no_such(path, format!("no agent with id {id:?}"))
            }
            MessagingError::DeadLetterNotFound { ref path, .. } => {
                ApiError::no_such(path.clone(), error.to_string())
            }
            MessagingError::Misconfigured(detail) => ApiError::Internal(detail),
            MessagingError::Store(error) => error.into(),
        }
    }
}

impl From<EventError> for ApiError {
    fn from(error: EventError) -> Self {
        match error {
            EventError::Invalid(errors) => ApiError::Validation(errors),
            EventError::SubscriptionNotFound(_) => ApiError::no_such(PATH_ID, error.to_string()),
            EventError::Store(error) => error.into(),
        }
    }
}

impl From<WorkflowError> for ApiError {
    fn from(error: WorkflowError) -> Self {
        let mut errors = ValidationErrors::new();
        match error {
            WorkflowError::Parse(parse) => {
                for problem in parse.into_errors() {
                    match problem {
                        // Text that is not JSON or YAML at all is a malformed body.
                        ParseError::Syntax { line, column, message } => {
                            return ApiError::MalformedJson(format!(
                                "line {line} column {column}: {message}"
                            ));
                        }
                        ParseError::Limit(limit) => errors.add(limit.path(), limit.to_string()),
                        ParseError::Field(field) => errors.add(field.path, field.message),
                    }
                }
            }
            WorkflowError::Cycles(cycles) => {
                for cycle in cycles.0 {
                    errors.add("$.dependencies", cycle.to_string());
                }
            }
        }
        ApiError::Validation(errors)
    }
}

impl From<SquadError> for ApiError {
    fn from(error: SquadError) -> Self {
        match error {
            SquadError::Unreadable(message) => ApiError::MalformedJson(message),
            SquadError::Invalid(errors) => ApiError::Validation(errors),
        }
    }
}

impl From<EngineError> for ApiError {
    fn from(error: EngineError) -> Self {
        match error {
            EngineError::NotFound { .. } | EngineError::RunNotFound(_) | EngineError::TaskNotFound(_) => {
                ApiError::no_such(PATH_ID, error.to_string())
            }
            EngineError::Invalid(errors) => ApiError::Validation(errors),
            EngineError::InvalidWorkflow(error) => error.into(),
            EngineError::AlreadyEnded { .. } => ApiError::Conflict(error.to_string()),
            EngineError::Corrupt(detail) => ApiError::Internal(detail),
            EngineError::Store(error) => error.into(),
        }
    }
}

impl From<AuthError> for ApiError {
    fn from(error: AuthError) -> Self {
        match error {
            AuthError::Unauthenticated(failure) => {
                ApiError::Unauthenticated { code: failure.code().to_owned(), detail: failure.to_string() }
            }
            AuthError::Forbidden(detail) => ApiError::Forbidden(detail),
            AuthError::Invalid(errors) => ApiError::Validation(errors),
            AuthError::KeyNotFound => ApiError::no_such(PATH_ID, "no such API key"),
            AuthError::Misconfigured(detail) => ApiError::Internal(detail),
            AuthError::Store(error) => error.into(),
        }
    }
}

impl From<DeployRequestError> for ApiError {
    fn from(error: DeployRequestError) -> Self {
        match error {
            DeployRequestError::Invalid { errors, deployment: Some(id) } => {
                ApiError::Rejected { errors, instance: format!("/v1/deployments/{id}") }
            }
            DeployRequestError::Invalid { errors, deployment: None } => ApiError::Validation(errors),
            DeployRequestError::Busy { .. } | DeployRequestError::KeyReused(_) => {
                ApiError::Conflict(error.to_string())
            }
            DeployRequestError::NotFound(_) => ApiError::no_such(PATH_ID, error.to_string()),
            DeployRequestError::NothingToRollBack(detail) => {
                ApiError::Validation(ValidationErrors::single("$.to_version", detail))
            }
            DeployRequestError::Store(error) => error.into(),
        }
    }
}
