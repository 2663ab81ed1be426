//! `GET /v1/whoami`: the caller as the system sees it.

use axum::Json;
use serde::Serialize;
use tdev_domain::auth::{CredentialKind, RateLimit, Scope};
use tdev_http::{ApiError, Caller, Problem};
use utoipa::ToSchema;

#[derive(Debug, Serialize, ToSchema)]
pub struct WhoAmI {
    pub key_id: String,
    pub scopes: Vec<String>,
    /// `api_key` or `token`.
    pub via: &'static str,
    pub rate_limit: RateLimit,
}

#[utoipa::path(
    get, path = "/v1/whoami", tag = "tokens", operation_id = "whoami",
    responses(
        (status = 200, description = "The caller", body = WhoAmI),
        (status = 403, description = "Needs the read scope", body = Problem, content_type = "application/problem+json"),
    ),
    security(("api_key" = []), ("bearer" = []))
)]
pub async fn get(caller: Caller) -> Result<Json<WhoAmI>, ApiError> {
    let principal = caller.require(Scope::Read)?;
    Ok(Json(WhoAmI {
        key_id: principal.key_id.to_string(),
        scopes: principal.scopes.iter().map(|s| s.as_str().to_owned()).collect(),
        via: match principal.via {
            CredentialKind::ApiKey => "api_key",
            CredentialKind::Token => "token",
        },
        rate_limit: principal.rate_limit,
    }))
}
