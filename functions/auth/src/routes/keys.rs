//! `/v1/keys`: create, list, get and revoke API keys (admin scope).

use axum::Json;
use axum::extract::{Path, State};
use axum::http::{StatusCode, header};
use axum::response::IntoResponse;
use jiff::Timestamp;
use serde::Serialize;
use tdev_domain::auth::{ApiKey, NewApiKeyRequest, RateLimit, Scope};
use tdev_http::{ApiError, ApiJson, Caller, Problem};
use utoipa::ToSchema;

use super::{AuthStore, Service};

/// A key as shown to an admin: never its secret or hash.
#[derive(Debug, Serialize, ToSchema)]
pub struct KeyView {
    #[schema(example = "k3q7rm2xw5vbn4ta")]
    pub id: String,
    pub name: String,
    #[schema(example = json!(["read"]))]
    pub scopes: Vec<String>,
    pub created_at: Timestamp,
    pub expires_at: Option<Timestamp>,
    pub revoked_at: Option<Timestamp>,
    /// Absent: the deployment's default applies.
    pub rate_limit: Option<RateLimit>,
}

impl From<ApiKey> for KeyView {
    fn from(key: ApiKey) -> Self {
        Self {
            id: key.id.to_string(),
            name: key.name.as_str().to_owned(),
            scopes: key.scopes.iter().map(|s| s.as_str().to_owned()).collect(),
            created_at: key.created_at,
            expires_at: key.expires_at,
            revoked_at: key.revoked_at,
            rate_limit: key.rate_limit,
        }
    }
}

/// A new key, with its secret: shown this once, stored only as a hash.
#[derive(Debug, Serialize, ToSchema)]
pub struct CreatedKeyView {
    #[serde(flatten)]
    pub key: KeyView,
    /// Send as `X-Api-Key`. It cannot be shown again.
    #[schema(example = "tdk_k3q7rm2xw5vbn4ta_…")]
    pub secret: String,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct KeyList {
    pub keys: Vec<KeyView>,
}

#[utoipa::path(
    post, path = "/v1/keys", tag = "keys", operation_id = "create_key",
    request_body = NewApiKeyRequest,
    responses(
        (status = 201, description = "Created; the secret is in the body, once", body = CreatedKeyView,
            headers(("Location" = String, description = "The key: `/v1/keys/{id}`")),
            links(
                ("GetKey" = (operation_id = "get_key", parameters(("id" = "$response.body#/id")))),
                ("RevokeKey" = (operation_id = "revoke_key", parameters(("id" = "$response.body#/id")))),
            )),
        (status = 403, description = "Needs the admin scope", body = Problem, content_type = "application/problem+json"),
        (status = 415, description = "Not JSON", body = Problem, content_type = "application/problem+json"),
    ),
    security(("api_key" = []), ("bearer" = []))
)]
pub async fn create<S: AuthStore>(
    State(service): State<Service<S>>,
    caller: Caller,
    body: Result<ApiJson<NewApiKeyRequest>, ApiError>,
) -> Result<impl IntoResponse, ApiError> {
    caller.require(Scope::Admin)?;
    let ApiJson(request) = body?;
    let created = service.create_key(request).await?;
    let location = format!("/v1/keys/{}", created.key.id);
    tracing::info!(key_id = %created.key.id, "API key created");
    let view = CreatedKeyView { key: created.key.into(), secret: created.plaintext };
    Ok((StatusCode::CREATED, [(header::LOCATION, location)], Json(view)))
}

#[utoipa::path(
    get, path = "/v1/keys", tag = "keys", operation_id = "list_keys",
    responses(
        (status = 200, description = "Every key, oldest first", body = KeyList),
        (status = 403, description = "Needs the admin scope", body = Problem, content_type = "application/problem+json"),
    ),
    security(("api_key" = []), ("bearer" = []))
)]
pub async fn list<S: AuthStore>(
    State(service): State<Service<S>>,
    caller: Caller,
) -> Result<Json<KeyList>, ApiError> {
    caller.require(Scope::Admin)?;
    let keys = service.list_keys().await?;
    Ok(Json(KeyList { keys: keys.into_iter().map(KeyView::from).collect() }))
}

#[utoipa::path(
    get, path = "/v1/keys/{id}", tag = "keys", operation_id = "get_key",
    description = "A revoked key is still shown, with `revoked_at`: revoking keeps the record for audit.",
    params(("id" = String, Path, description = "The key's id")),
    responses(
        (status = 200, description = "The key", body = KeyView),
        (status = 403, description = "Needs the admin scope", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "No such key", body = Problem, content_type = "application/problem+json"),
    ),
    security(("api_key" = []), ("bearer" = []))
)]
pub async fn get<S: AuthStore>(
    State(service): State<Service<S>>,
    caller: Caller,
    Path(id): Path<String>,
) -> Result<Json<KeyView>, ApiError> {
    caller.require(Scope::Admin)?;
    Ok(Json(service.get_key(&id).await?.into()))
}

#[utoipa::path(
    delete, path = "/v1/keys/{id}", tag = "keys", operation_id = "revoke_key",
    description = "Revokes the key at once: it no longer authenticates, nor exchanges for tokens. \
        Tokens already issued stay valid until they expire (at most the token lifetime). \
        Revoking again is harmless.",
    params(("id" = String, Path, description = "The key's id")),
    responses(
        (status = 204, description = "Revoked"),
        (status = 403, description = "Needs the admin scope", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "No such key", body = Problem, content_type = "application/problem+json"),
    ),
    security(("api_key" = []), ("bearer" = []))
)]
pub async fn revoke<S: AuthStore>(
    State(service): State<Service<S>>,
    caller: Caller,
    Path(id): Path<String>,
) -> Result<StatusCode, ApiError> {
    caller.require(Scope::Admin)?;
    let key = service.revoke_key(&id).await?;
    tracing::info!(key_id = %key.id, "API key revoked");
    Ok(StatusCode::NO_CONTENT)
}
