//! `/v1/squads`: validate a squad, store a version, read versions.

use axum::Json;
use axum::extract::{Path, State};
use axum::http::{StatusCode, header};
use axum::response::IntoResponse;
use jiff::Timestamp;
use serde::Serialize;
use serde_json::Value;
use tdev_domain::agents::AgentInvoker;
use tdev_domain::auth::Scope;
use tdev_domain::ports::MessageQueue;
use tdev_domain::runs::{EngineError, StoredDefinition};
use tdev_domain::squads::{self, MemberNotice, SquadError};
use tdev_domain::validation::FieldError;
use tdev_http::document::Document;
use tdev_http::{ApiError, Caller, Problem};
use utoipa::ToSchema;

use super::{OrchestratorStore, Shared};

/// A stored version of a squad.
#[derive(Debug, Serialize, ToSchema)]
pub struct SquadVersion {
    pub id: String,
    pub version: String,
    /// SHA-256 of the definition's canonical JSON.
    pub content_hash: String,
    pub created_at: Timestamp,
    /// The squad as JSON, every default written out.
    #[schema(value_type = Object)]
    pub definition: Value,
    /// Only in the answer to storing it: what will refuse a task until it is dealt with
    /// (agents not registered, capabilities too few active agents offer).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub notices: Vec<MemberNotice>,
}

impl From<StoredDefinition> for SquadVersion {
    fn from(stored: StoredDefinition) -> Self {
        Self {
            id: stored.id,
            version: stored.version,
            content_hash: stored.content_hash,
            created_at: stored.created_at,
            definition: stored.definition,
            notices: Vec::new(),
        }
    }
}

/// What `POST /v1/squads:validate` finds.
#[derive(Debug, Serialize, ToSchema)]
pub struct SquadReport {
    /// No errors: the squad can be stored.
    pub valid: bool,
    /// Valid, and nothing in the registry stands in the way of a task (no notices).
    pub runnable: bool,
    /// Every problem at once, each with its JSON path.
    pub errors: Vec<FieldError>,
    /// What the registry says of the members (only for a valid squad).
    pub notices: Vec<MemberNotice>,
    /// The squad as it would be stored, every default written out (only when valid).
    #[schema(value_type = Option<Object>)]
    pub squad: Option<Value>,
}

#[utoipa::path(
    post, path = "/v1/squads:validate", tag = "squads", operation_id = "validate_squad",
    description = "Checks a squad (JSON, or YAML with a YAML content type) without storing it. \
        Always 200 with a report when the caller may validate: `valid`, every error with its \
        JSON path, and for a valid squad the stored form (defaults written out), the `notices` \
        from the agent registry and `runnable`.",
    request_body(content = tdev_domain::squads::Squad, content_type = "application/json"),
    responses(
        (status = 200, description = "The report", body = SquadReport),
        (status = 403, description = "Needs the read scope", body = Problem, content_type = "application/problem+json"),
        (status = 415, description = "Neither JSON nor YAML", body = Problem, content_type = "application/problem+json"),
    ),
    security(("api_key" = []), ("bearer" = []))
)]
pub async fn validate<S: OrchestratorStore, Q: MessageQueue, I: AgentInvoker>(
    State(engine): State<Shared<S, Q, I>>,
    caller: Caller,
    document: Result<Document, ApiError>,
) -> Result<Json<SquadReport>, ApiError> {
    caller.require(Scope::Read)?;
    let document = document?;
    let report = match squads::load_off_runtime(document.text, document.format).await {
        Ok(loaded) => {
            let notices = engine.squad_notices(&loaded.squad).await.map_err(EngineError::from)?;
            SquadReport {
                valid: true,
                runnable: notices.is_empty(),
                errors: Vec::new(),
                notices,
                squad: Some(loaded.definition),
            }
        }
        Err(error) => {
            let errors = match error {
                SquadError::Invalid(errors) => errors.errors().to_vec(),
                SquadError::Unreadable(message) => vec![FieldError { path: "$".into(), message }],
            };
            SquadReport { valid: false, runnable: false, errors, notices: Vec::new(), squad: None }
        }
    };
    Ok(Json(report))
}

#[utoipa::path(
    post, path = "/v1/squads", tag = "squads", operation_id = "create_squad",
    description = "Stores a squad version (JSON, or YAML with a YAML content type). Versions are \
        immutable: the same id and version again with the same content is harmless, with other \
        content a 409. A valid squad whose agents are not all registered yet is stored, with \
        `notices` saying what a task still lacks.",
    request_body(content = tdev_domain::squads::Squad, content_type = "application/json"),
    responses(
        (status = 201, description = "Stored", body = SquadVersion,
            headers(("Location" = String, description = "The version: `/v1/squads/{id}/versions/{version}`")),
            links(
                ("GetSquad" = (operation_id = "get_squad", parameters(("id" = "$response.body#/id")))),
                ("GetSquadVersion" = (operation_id = "get_squad_version",
                    parameters(("id" = "$response.body#/id"), ("version" = "$response.body#/version")))),
            )),
        (status = 400, description = "Not JSON or YAML at all, or over 1 MiB", body = Problem, content_type = "application/problem+json"),
        (status = 403, description = "Needs the workflows:run scope", body = Problem, content_type = "application/problem+json"),
        (status = 409, description = "This version exists with other content", body = Problem, content_type = "application/problem+json"),
        (status = 422, description = "Invalid: every error with its JSON path", body = Problem, content_type = "application/problem+json"),
    ),
    security(("api_key" = []), ("bearer" = []))
)]
pub async fn create<S: OrchestratorStore, Q: MessageQueue, I: AgentInvoker>(
    State(engine): State<Shared<S, Q, I>>,
    caller: Caller,
    document: Result<Document, ApiError>,
) -> Result<impl IntoResponse, ApiError> {
    caller.require(Scope::WorkflowsRun)?;
    let document = document?;
    let loaded = squads::load_off_runtime(document.text, document.format).await?;
    let (stored, notices) = engine.put_squad(loaded).await?;
    let location = format!("/v1/squads/{}/versions/{}", stored.id, stored.version);
    tracing::info!(squad_id = %stored.id, version = %stored.version, notices = notices.len(), "squad stored");
    let body = SquadVersion { notices, ..SquadVersion::from(stored) };
    Ok((StatusCode::CREATED, [(header::LOCATION, location)], Json(body)))
}

#[utoipa::path(
    get, path = "/v1/squads/{id}", tag = "squads", operation_id = "get_squad",
    params(("id" = String, Path, description = "The squad's id")),
    responses(
        (status = 200, description = "The most recently stored version", body = SquadVersion),
        (status = 403, description = "Needs the read scope", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "No such squad", body = Problem, content_type = "application/problem+json"),
    ),
    security(("api_key" = []), ("bearer" = []))
)]
pub async fn latest<S: OrchestratorStore, Q: MessageQueue, I: AgentInvoker>(
    State(engine): State<Shared<S, Q, I>>,
    caller: Caller,
    Path(id): Path<String>,
) -> Result<Json<SquadVersion>, ApiError> {
    caller.require(Scope::Read)?;
    Ok(Json(engine.get_squad(&id, None).await?.into()))
}

#[utoipa::path(
    get, path = "/v1/squads/{id}/versions/{version}", tag = "squads", operation_id = "get_squad_version",
    params(("id" = String, Path, description = "The squad's id"), ("version" = String, Path, description = "The version")),
    responses(
        (status = 200, description = "That version", body = SquadVersion),
        (status = 403, description = "Needs the read scope", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "No such squad or version", body = Problem, content_type = "application/problem+json"),
    ),
    security(("api_key" = []), ("bearer" = []))
)]
pub async fn version<S: OrchestratorStore, Q: MessageQueue, I: AgentInvoker>(
    State(engine): State<Shared<S, Q, I>>,
    caller: Caller,
    Path((id, version)): Path<(String, String)>,
) -> Result<Json<SquadVersion>, ApiError> {
    caller.require(Scope::Read)?;
    match engine.get_squad(&id, Some(&version)).await {
        Ok(stored) => Ok(Json(stored.into())),
        Err(EngineError::NotFound { .. }) => {
            Err(ApiError::no_such("$.path.version", format!("no squad {id:?} version {version:?}")))
        }
        Err(e) => Err(e.into()),
    }
}
