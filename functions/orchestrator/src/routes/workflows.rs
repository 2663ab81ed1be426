//! `/v1/workflows`: validate a document, store a version, read versions.

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
use tdev_domain::runs::{DefinitionKind, StoredDefinition};
use tdev_domain::workflow::{self, Notice, ValidationReport};
use tdev_http::{ApiError, Caller, Problem};
use utoipa::ToSchema;

use super::{OrchestratorStore, Shared};
use tdev_http::document::Document;

/// A stored version of a workflow.
#[derive(Debug, Serialize, ToSchema)]
pub struct WorkflowVersion {
    pub id: String,
    pub version: String,
    /// SHA-256 of the definition's canonical JSON.
    pub content_hash: String,
    pub created_at: Timestamp,
    /// The document, as JSON.
    #[schema(value_type = Object)]
    pub definition: Value,
    /// Only in the answer to storing it: findings that did not stop it from being stored
    /// but will refuse a run (service steps without a target, agents not registered yet).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub notices: Vec<Notice>,
}

impl From<StoredDefinition> for WorkflowVersion {
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

#[utoipa::path(
    post, path = "/v1/workflows:validate", tag = "workflows", operation_id = "validate_workflow",
    description = "Parses, checks and plans a workflow (JSON, or YAML with a YAML content type) \
        without storing anything. Always 200 with a report when the caller may validate: \
        `valid`, every error with its location (field errors and cycles together), and for a \
        valid workflow the plan (levels, critical path, width, parallelism, redundant \
        dependencies, suggestions), `runnable` and the `notices` that stop a run (service \
        steps without a target, agents not registered).",
    request_body(content = Object, content_type = "application/json"),
    responses(
        (status = 200, description = "The report", body = ValidationReport),
        (status = 403, description = "Needs the read scope", body = Problem, content_type = "application/problem+json"),
        (status = 415, description = "Neither JSON nor YAML", body = Problem, content_type = "application/problem+json"),
    ),
    security(("api_key" = []), ("bearer" = []))
)]
pub async fn validate<S: OrchestratorStore, Q: MessageQueue, I: AgentInvoker>(
    State(engine): State<Shared<S, Q, I>>,
    caller: Caller,
    document: Result<Document, ApiError>,
) -> Result<Json<ValidationReport>, ApiError> {
    caller.require(Scope::Read)?;
    let document = document?;
    let (report, validated) =
        workflow::validate_off_runtime(document.text, document.format, *engine.limits()).await;
    Ok(Json(engine.check_agents(report, validated.as_ref()).await?))
}

#[utoipa::path(
    post, path = "/v1/workflows", tag = "workflows", operation_id = "create_workflow",
    description = "Stores a workflow version (JSON, or YAML with a YAML content type). Versions \
        are immutable: storing the same id and version again with the same content is \
        harmless, with other content a 409. A valid workflow that cannot run yet (service \
        steps without a target, agents not registered) is stored, with `notices` saying what \
        a run still lacks.",
    request_body(content = Object, content_type = "application/json"),
    responses(
        (status = 201, description = "Stored", body = WorkflowVersion,
            headers(("Location" = String, description = "The version: `/v1/workflows/{id}/versions/{version}`")),
            links(
                ("GetWorkflow" = (operation_id = "get_workflow", parameters(("id" = "$response.body#/id")))),
                ("GetWorkflowVersion" = (operation_id = "get_workflow_version",
                    parameters(("id" = "$response.body#/id"), ("version" = "$response.body#/version")))),
                ("StartRun" = (operation_id = "start_run", parameters(("id" = "$response.body#/id")))),
            )),
        (status = 400, description = "Not JSON or YAML at all (line and column)", body = Problem, content_type = "application/problem+json"),
        (status = 403, description = "Needs the workflows:run scope", body = Problem, content_type = "application/problem+json"),
        (status = 409, description = "This version exists with other content", body = Problem, content_type = "application/problem+json"),
        (status = 422, description = "Invalid: every error with its JSON path, every cycle as a path of steps", body = Problem, content_type = "application/problem+json"),
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
    let loaded = workflow::load_off_runtime(document.text, document.format, *engine.limits()).await?;
    let (stored, notices) = engine.put_workflow(loaded).await?;
    let location = format!("/v1/workflows/{}/versions/{}", stored.id, stored.version);
    tracing::info!(workflow_id = %stored.id, version = %stored.version, notices = notices.len(), "workflow stored");
    let body = WorkflowVersion { notices, ..WorkflowVersion::from(stored) };
    Ok((StatusCode::CREATED, [(header::LOCATION, location)], Json(body)))
}

#[utoipa::path(
    get, path = "/v1/workflows/{id}", tag = "workflows", operation_id = "get_workflow",
    params(("id" = String, Path, description = "The workflow's id")),
    responses(
        (status = 403, description = "Needs the read scope", body = Problem, content_type = "application/problem+json"),
        (status = 200, description = "The most recently stored version", body = WorkflowVersion),
        (status = 404, description = "No such workflow", body = Problem, content_type = "application/problem+json"),
    ),
    security(("api_key" = []), ("bearer" = []))
)]
pub async fn latest<S: OrchestratorStore, Q: MessageQueue, I: AgentInvoker>(
    State(engine): State<Shared<S, Q, I>>,
    caller: Caller,
    Path(id): Path<String>,
) -> Result<Json<WorkflowVersion>, ApiError> {
    caller.require(Scope::Read)?;
    find(&engine, &id, None).await
}

#[utoipa::path(
    get, path = "/v1/workflows/{id}/versions/{version}", tag = "workflows", operation_id = "get_workflow_version",
    params(("id" = String, Path, description = "The workflow's id"), ("version" = String, Path, description = "The version")),
    responses(
        (status = 200, description = "That version", body = WorkflowVersion),
        (status = 403, description = "Needs the read scope", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "No such workflow or version", body = Problem, content_type = "application/problem+json"),
    ),
    security(("api_key" = []), ("bearer" = []))
)]
pub async fn version<S: OrchestratorStore, Q: MessageQueue, I: AgentInvoker>(
    State(engine): State<Shared<S, Q, I>>,
    caller: Caller,
    Path((id, version)): Path<(String, String)>,
) -> Result<Json<WorkflowVersion>, ApiError> {
    caller.require(Scope::Read)?;
    find(&engine, &id, Some(&version)).await
}

async fn find<S: OrchestratorStore, Q: MessageQueue, I: AgentInvoker>(
    engine: &Shared<S, Q, I>,
    id: &str,
    version: Option<&str>,
) -> Result<Json<WorkflowVersion>, ApiError> {
    let stored = engine.store().get_definition(DefinitionKind::Workflow, id, version).await?;
    let stored = stored.ok_or_else(|| match version {
        Some(version) => {
            ApiError::no_such("$.path.version", format!("no workflow {id:?} version {version:?}"))
        }
        None => ApiError::no_such(tdev_http::problem::PATH_ID, format!("no workflow {id:?}")),
    })?;
    Ok(Json(stored.into()))
}
