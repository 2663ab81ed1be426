//! A document in the request body (a workflow, an agent spec): JSON or YAML, by its
//! content type.

use crate::ApiError;
use crate::json::BodyLimit;
use axum::body::Bytes;
use axum::extract::{FromRequest, Request};
use axum::http::{StatusCode, header};
use tdev_domain::workflow::Format;

pub struct Document {
    pub text: String,
    pub format: Format,
}

impl<S: Send + Sync> FromRequest<S> for Document {
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &S) -> Result<Self, Self::Rejection> {
        let content_type =
            req.headers().get(header::CONTENT_TYPE).and_then(|v| v.to_str().ok()).unwrap_or("");
        let essence = content_type.split(';').next().unwrap_or("").trim().to_ascii_lowercase();
        let format = match essence.as_str() {
            "application/json" => Format::Json,
            "application/yaml" | "application/x-yaml" | "text/yaml" | "text/x-yaml" => Format::Yaml,
            _ => return Err(ApiError::UnsupportedMediaType { accepted: crate::problem::DOCUMENT_TYPES }),
        };
        let limit = req.extensions().get::<BodyLimit>().map_or(0, |l| l.0);
        let bytes = Bytes::from_request(req, state).await.map_err(|rejection| {
            if rejection.status() == StatusCode::PAYLOAD_TOO_LARGE {
                ApiError::PayloadTooLarge { limit }
            } else {
                ApiError::MalformedJson(rejection.body_text())
            }
        })?;
        let text = String::from_utf8(bytes.to_vec())
            .map_err(|e| ApiError::MalformedJson(format!("the body is not UTF-8: {e}")))?;
        Ok(Self { text, format })
    }
}
