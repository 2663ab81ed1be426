//! `POST /v1/tokens`: exchange an API key for a short-lived JWT.

use axum::Json;
use axum::extract::State;
use axum::http::header;
use axum::response::IntoResponse;
use serde::Serialize;
use tdev_domain::auth::TokenRequest;
use tdev_http::{ApiError, ApiJson, Caller, Problem};
use utoipa::ToSchema;

use super::{AuthStore, Service};

/// The OAuth 2.0 token response shape (RFC 6749 §5.1).
#[derive(Debug, Serialize, ToSchema)]
pub struct TokenView {
    pub access_token: String,
    #[schema(example = "Bearer")]
    pub token_type: &'static str,
    /// Seconds until the token expires.
    pub expires_in: u32,
    /// Space-separated scopes the token carries.
    #[schema(example = "read")]
    pub scope: String,
}

#[utoipa::path(
    post, path = "/v1/tokens", tag = "tokens", operation_id = "issue_token",
    description = "Needs an API key (X-Api-Key), not a token. The body is optional: narrow the \
        scopes, or ask for a shorter lifetime. A token is never wider than its key.",
    request_body(content = Option<TokenRequest>, content_type = "application/json",
        description = "Optional: nothing (and no content type), or `null`, asks for the key's scopes and the configured lifetime"),
    responses(
        (status = 200, description = "A signed token", body = TokenView),
        (status = 403, description = "A token was sent instead of a key, or a scope the key lacks was asked for", body = Problem, content_type = "application/problem+json"),
    ),
    security(("api_key" = []))
)]
pub async fn issue<S: AuthStore>(
    State(service): State<Service<S>>,
    Caller(principal): Caller,
    body: Option<ApiJson<Option<TokenRequest>>>,
) -> Result<impl IntoResponse, ApiError> {
    let request = body.and_then(|ApiJson(request)| request).unwrap_or_default();
    let token = service.issue_token(&principal, request).await?;
    let view = TokenView {
        access_token: token.access_token,
        token_type: "Bearer",
        expires_in: token.expires_in,
        scope: token.scopes.to_space_separated(),
    };
    Ok(([(header::CACHE_CONTROL, "no-store")], Json(view)))
}
