//! The deployer's HTTP routes.

use std::sync::Arc;

use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::IntoResponse;
use axum::routing::{get, post};
use axum::{Json, Router};
use serde::{Deserialize, Serialize};
use tdev_domain::agents::{AgentInvoker, AgentStore};
use tdev_domain::auth::{AuthService, AuthStore, Scope};
use tdev_domain::deploy::{
    AgentDeployer, Deployment, DeploymentEvent, DeploymentFilter, DeploymentStatus, DeploymentStore,
    Deployments, RollbackReason, Submitted, VersionEntry,
};
use tdev_domain::ports::MessageQueue;
use tdev_domain::strict::shape::{Enum, Field, Object, Shape, Shaped};
use tdev_domain::validation::{FieldError, ValidationErrors};
use tdev_http::document::Document;
use tdev_http::guard::{self, Mode};
use tdev_http::{ApiError, ApiJson, ApiQuery, Caller, Problem};
use utoipa::{IntoParams, OpenApi, ToSchema};

/// Every store port the deployer uses.
pub trait DeployerStore: AuthStore + DeploymentStore + AgentStore + Clone {}
impl<T: AuthStore + DeploymentStore + AgentStore + Clone> DeployerStore for T {}

type Shared<S, Q, D, I> = Arc<Deployments<S, Q, D, I>>;

/// The guarded `/v1` deployment routes, not yet finished.
pub fn router<S, Q, D, I>(deployments: Shared<S, Q, D, I>, auth: Arc<AuthService<S>>, mode: Mode) -> Router
where
    S: DeployerStore,
    Q: MessageQueue,
    D: AgentDeployer,
    I: AgentInvoker,
{
    let routes = Router::new()
        .route("/v1/deployments", post(create::<S, Q, D, I>).get(list::<S, Q, D, I>))
        .route("/v1/deployments:validate", post(validate::<S, Q, D, I>))
        .route("/v1/deployments/{id}", get(one::<S, Q, D, I>))
        .route("/v1/deployments/{id}/events", get(events::<S, Q, D, I>))
        .route("/v1/deployments/{id}/rollback", post(rollback::<S, Q, D, I>))
        .route("/v1/deployed-agents/{agent}/versions", get(history::<S, Q, D, I>))
        .with_state(deployments);
    guard::layer(routes, auth, mode)
}

#[derive(OpenApi)]
#[openapi(
    paths(create, validate, list, one, events, rollback, history),
    components(schemas(tdev_domain::deploy::AgentSpec)),
    tags((name = "deployments", description = "Agent deployments to Amazon Bedrock: ship, watch, roll back"))
)]
pub struct ApiDoc;

/// The idempotency key of a request, if it has one.
fn idempotency_key(headers: &HeaderMap) -> Result<Option<String>, ApiError> {
    match headers.get("idempotency-key") {
        None => Ok(None),
        Some(value) => match value.to_str() {
            Ok(key) if !key.is_empty() && key.len() <= 255 => Ok(Some(key.to_owned())),
            _ => Err(ValidationErrors::single("Idempotency-Key", "1 to 255 visible ASCII characters").into()),
        },
    }
}

/// Reads a spec off the async runtime (YAML parsing is CPU work on caller input).
async fn submitted(document: Document) -> Result<Submitted, ApiError> {
    let Document { text, format } = document;
    tdev_domain::bounded::off_runtime(tdev_domain::bounded::DOCUMENT_BUDGET, move || {
        Submitted::parse_as(&text, format)
    })
    .await
    .map_err(|unfinished| {
        ApiError::Validation(ValidationErrors::single(
            "$",
            format!("the spec could not be read: {unfinished}"),
        ))
    })?
    // The message alone: the problem places it at `$` itself.
    .map_err(|e| {
        let messages: Vec<&str> = e.0.errors().iter().map(|f| f.message.as_str()).collect();
        ApiError::MalformedJson(messages.join("; "))
    })
}

fn accepted(deployment: Deployment) -> impl IntoResponse {
    let location = format!("/v1/deployments/{}", deployment.id);
    (StatusCode::ACCEPTED, [(header::LOCATION, location)], Json(deployment))
}

#[utoipa::path(
    post, path = "/v1/deployments", tag = "deployments", operation_id = "deploy",
    description = "Deploys an agent spec (JSON, or YAML with a YAML content type). The spec is \
        checked at once; a valid one is queued and the answer is 202 with the deployment to \
        follow. A rejected spec is a 422 whose `instance` is the failed deployment record, \
        with its events. With an `Idempotency-Key`, the same request again answers with the \
        same deployment. At most one deployment of an agent runs at a time: another is a 409.",
    params(("Idempotency-Key" = Option<String>, Header, description = "Makes a retried request harmless: 1 to 255 visible ASCII characters", pattern = "^[!-~]([ -~]{0,253}[!-~])?$")),
    request_body(content = tdev_domain::deploy::AgentSpec, content_type = "application/json"),
    responses(
        (status = 202, description = "Queued: follow it at the Location", body = Deployment,
            headers(("Location" = String, description = "The deployment: `/v1/deployments/{id}`")),
            links(
                ("GetDeployment" = (operation_id = "get_deployment", parameters(("id" = "$response.body#/id")))),
                ("ListDeploymentEvents" = (operation_id = "list_deployment_events", parameters(("id" = "$response.body#/id")))),
                ("RollBack" = (operation_id = "roll_back", parameters(("id" = "$response.body#/id")))),
                ("DeployedAgentVersions" = (operation_id = "deployed_agent_versions", parameters(("agent" = "$response.body#/agent")))),
            )),
        (status = 403, description = "Needs the deployments:write scope", body = Problem, content_type = "application/problem+json"),
        (status = 409, description = "A deployment of this agent is in progress, or the key was used for another request", body = Problem, content_type = "application/problem+json"),
        (status = 422, description = "The spec is invalid: every bad field with its path", body = Problem, content_type = "application/problem+json"),
    ),
    security(("api_key" = []), ("bearer" = []))
)]
pub async fn create<S: DeployerStore, Q: MessageQueue, D: AgentDeployer, I: AgentInvoker>(
    State(deployments): State<Shared<S, Q, D, I>>,
    caller: Caller,
    headers: HeaderMap,
    document: Result<Document, ApiError>,
) -> Result<impl IntoResponse, ApiError> {
    let principal = caller.require(Scope::DeploymentsWrite)?;
    let key = idempotency_key(&headers)?;
    let submitted = submitted(document?).await?;
    let deployment = deployments.deploy(submitted, principal.key_id.as_str(), key.as_deref()).await?;
    tracing::info!(deployment = %deployment.id, agent = %deployment.agent, "deployment queued");
    Ok(accepted(deployment))
}

/// What checking a spec found.
#[derive(Debug, Serialize, ToSchema)]
pub struct SpecReport {
    pub valid: bool,
    /// The agent definition's size as the limit counts it (compact JSON).
    pub size_bytes: usize,
    pub max_bytes: usize,
    #[schema(value_type = Vec<Object>)]
    pub errors: Vec<FieldError>,
}

#[utoipa::path(
    post, path = "/v1/deployments:validate", tag = "deployments", operation_id = "validate_spec",
    description = "Checks an agent spec as a deployment would, and records nothing.",
    request_body(content = tdev_domain::deploy::AgentSpec, content_type = "application/json"),
    responses(
        (status = 200, description = "The report", body = SpecReport),
        (status = 403, description = "Needs the read scope", body = Problem, content_type = "application/problem+json"),
    ),
    security(("api_key" = []), ("bearer" = []))
)]
pub async fn validate<S: DeployerStore, Q: MessageQueue, D: AgentDeployer, I: AgentInvoker>(
    State(deployments): State<Shared<S, Q, D, I>>,
    caller: Caller,
    document: Result<Document, ApiError>,
) -> Result<Json<SpecReport>, ApiError> {
    caller.require(Scope::Read)?;
    let submitted = submitted(document?).await?;
    let errors = deployments.check(&submitted).err().map(|e| e.errors().to_vec()).unwrap_or_default();
    Ok(Json(SpecReport {
        valid: errors.is_empty(),
        size_bytes: submitted.size(),
        max_bytes: deployments.config().limits.max_bytes,
        errors,
    }))
}

#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct ListQuery {
    /// Only this agent's deployments.
    pub agent: Option<String>,
    /// Only deployments in this status.
    #[param(inline)]
    pub status: Option<DeploymentStatus>,
    /// At most this many (default 50).
    #[param(minimum = 1, maximum = 500)]
    pub limit: Option<usize>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct DeploymentList {
    pub deployments: Vec<Deployment>,
}

#[utoipa::path(
    get, path = "/v1/deployments", tag = "deployments", operation_id = "list_deployments",
    params(ListQuery),
    responses(
        (status = 200, description = "Deployments, newest first", body = DeploymentList),
        (status = 403, description = "Needs the read scope", body = Problem, content_type = "application/problem+json"),
    ),
    security(("api_key" = []), ("bearer" = []))
)]
pub async fn list<S: DeployerStore, Q: MessageQueue, D: AgentDeployer, I: AgentInvoker>(
    State(deployments): State<Shared<S, Q, D, I>>,
    caller: Caller,
    ApiQuery(query): ApiQuery<ListQuery>,
) -> Result<Json<DeploymentList>, ApiError> {
    caller.require(Scope::Read)?;
    let limit = query.limit.unwrap_or(50);
    if !(1..=500).contains(&limit) {
        return Err(ValidationErrors::single("$.query.limit", "1 to 500").into());
    }
    let filter = DeploymentFilter { agent: query.agent, status: query.status, limit };
    Ok(Json(DeploymentList { deployments: deployments.list(&filter).await? }))
}

#[utoipa::path(
    get, path = "/v1/deployments/{id}", tag = "deployments", operation_id = "get_deployment",
    params(("id" = String, Path, description = "The deployment's id")),
    responses(
        (status = 403, description = "Needs the read scope", body = Problem, content_type = "application/problem+json"),
        (status = 200, description = "The deployment", body = Deployment),
        (status = 404, description = "No such deployment", body = Problem, content_type = "application/problem+json"),
    ),
    security(("api_key" = []), ("bearer" = []))
)]
pub async fn one<S: DeployerStore, Q: MessageQueue, D: AgentDeployer, I: AgentInvoker>(
    State(deployments): State<Shared<S, Q, D, I>>,
    caller: Caller,
    Path(id): Path<String>,
) -> Result<Json<Deployment>, ApiError> {
    caller.require(Scope::Read)?;
    let deployment = deployments.get(&id).await?.ok_or_else(|| not_found(&id))?;
    Ok(Json(deployment))
}

fn not_found(id: &str) -> ApiError {
    ApiError::no_such(tdev_http::problem::PATH_ID, format!("no deployment {id:?}"))
}

/// A deployment's audit trail (not the `EventList` of `GET /v1/events`).
#[derive(Debug, Serialize, ToSchema)]
pub struct DeploymentEventList {
    pub events: Vec<DeploymentEvent>,
}

#[utoipa::path(
    get, path = "/v1/deployments/{id}/events", tag = "deployments", operation_id = "list_deployment_events",
    description = "The deployment's audit trail: every transition with its time and detail, in order.",
    params(("id" = String, Path, description = "The deployment's id")),
    responses(
        (status = 200, description = "Its events, oldest first", body = DeploymentEventList),
        (status = 403, description = "Needs the read scope", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "No such deployment", body = Problem, content_type = "application/problem+json"),
    ),
    security(("api_key" = []), ("bearer" = []))
)]
pub async fn events<S: DeployerStore, Q: MessageQueue, D: AgentDeployer, I: AgentInvoker>(
    State(deployments): State<Shared<S, Q, D, I>>,
    caller: Caller,
    Path(id): Path<String>,
) -> Result<Json<DeploymentEventList>, ApiError> {
    caller.require(Scope::Read)?;
    let events = deployments.events(&id).await?.ok_or_else(|| not_found(&id))?;
    Ok(Json(DeploymentEventList { events }))
}

#[derive(Debug, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RollbackRequest {
    /// The version to put back; default: the one that served before the deployment.
    pub to_version: Option<String>,
    /// Default `manual`.
    pub reason: Option<RollbackReason>,
}

impl Shaped for RollbackRequest {
    fn shape() -> &'static Shape {
        static SHAPE: Shape = Shape::Object(&Object {
            what: "a rollback",
            fields: &[
                Field::optional("to_version", Shape::Nullable(&Shape::Str)),
                Field::optional(
                    "reason",
                    Shape::Nullable(&Shape::Enum(&Enum {
                        what: "rollback reason",
                        values: &["manual", "failure", "health_check", "timeout", "error_rate"],
                        aliases: &[],
                    })),
                ),
            ],
        });
        &SHAPE
    }
}

#[utoipa::path(
    post, path = "/v1/deployments/{id}/rollback", tag = "deployments", operation_id = "roll_back",
    description = "Undoes a deployment: points the alias (or endpoint) back at the version that \
        served before it, or at `to_version`, and restores that version's draft configuration \
        from its backup. The rollback is a deployment of its own, queued (202).",
    params(
        ("id" = String, Path, description = "The deployment to undo"),
        ("Idempotency-Key" = Option<String>, Header, description = "Makes a retried request harmless: 1 to 255 visible ASCII characters", pattern = "^[!-~]([ -~]{0,253}[!-~])?$"),
    ),
    request_body(content = Option<RollbackRequest>, content_type = "application/json",
        description = "Optional: nothing (and no content type), or `null`, puts back the version that served before, as a manual rollback"),
    responses(
        (status = 202, description = "Queued: follow it at the Location", body = Deployment,
            headers(("Location" = String, description = "The rollback's deployment: `/v1/deployments/{id}`")),
            links(("GetDeployment" = (operation_id = "get_deployment", parameters(("id" = "$response.body#/id")))))),
        (status = 403, description = "Needs the deployments:write scope", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "No such deployment", body = Problem, content_type = "application/problem+json"),
        (status = 409, description = "A deployment of this agent is in progress", body = Problem, content_type = "application/problem+json"),
        (status = 422, description = "Nothing to roll back to", body = Problem, content_type = "application/problem+json"),
    ),
    security(("api_key" = []), ("bearer" = []))
)]
pub async fn rollback<S: DeployerStore, Q: MessageQueue, D: AgentDeployer, I: AgentInvoker>(
    State(deployments): State<Shared<S, Q, D, I>>,
    caller: Caller,
    headers: HeaderMap,
    Path(id): Path<String>,
    body: Option<ApiJson<Option<RollbackRequest>>>,
) -> Result<impl IntoResponse, ApiError> {
    let principal = caller.require(Scope::DeploymentsWrite)?;
    let key = idempotency_key(&headers)?;
    let RollbackRequest { to_version, reason } = body.and_then(|ApiJson(b)| b).unwrap_or_default();
    let reason = reason.unwrap_or(RollbackReason::Manual);
    let deployment =
        deployments.rollback(&id, to_version, reason, principal.key_id.as_str(), key.as_deref()).await?;
    tracing::info!(deployment = %deployment.id, undoes = %id, "rollback queued");
    Ok(accepted(deployment))
}

#[derive(Debug, Serialize, ToSchema)]
pub struct VersionHistory {
    pub agent: String,
    pub versions: Vec<VersionEntry>,
}

#[utoipa::path(
    get, path = "/v1/deployed-agents/{agent}/versions", tag = "deployments", operation_id = "deployed_agent_versions",
    description = "The versions that served the agent, newest first; the first serves now. An agent never deployed has none.",
    params(("agent" = String, Path, description = "The agent's name (the spec's `name`)")),
    responses(
        (status = 200, description = "Its history", body = VersionHistory),
        (status = 403, description = "Needs the read scope", body = Problem, content_type = "application/problem+json"),
    ),
    security(("api_key" = []), ("bearer" = []))
)]
pub async fn history<S: DeployerStore, Q: MessageQueue, D: AgentDeployer, I: AgentInvoker>(
    State(deployments): State<Shared<S, Q, D, I>>,
    caller: Caller,
    Path(agent): Path<String>,
) -> Result<Json<VersionHistory>, ApiError> {
    caller.require(Scope::Read)?;
    let versions = deployments.history(&agent).await?;
    Ok(Json(VersionHistory { agent, versions }))
}
