//! `/v1/workflows/{id}/runs` and `/v1/runs`: start, watch, list and cancel runs.

use axum::Json;
use axum::extract::{Path, State};
use axum::http::{StatusCode, header};
use axum::response::IntoResponse;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use tdev_domain::agents::AgentInvoker;
use tdev_domain::auth::Scope;
use tdev_domain::ports::MessageQueue;
use tdev_domain::runs::{Run, RunFilter, RunStatus, StepRun};
use tdev_http::{ApiError, ApiJson, ApiQuery, Caller, Problem};
use utoipa::{IntoParams, ToSchema};

use super::{OrchestratorStore, Shared};

#[derive(Debug, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct StartRun {
    /// The workflow's inputs (data names no step produces), by name.
    #[serde(default)]
    #[schema(value_type = Object)]
    pub inputs: Map<String, Value>,
    /// Run this version; absent: the most recently stored one.
    #[serde(default)]
    pub version: Option<String>,
}

impl tdev_domain::strict::shape::Shaped for StartRun {
    fn shape() -> &'static tdev_domain::strict::shape::Shape {
        use tdev_domain::strict::shape::{Field, Object, Shape};
        static SHAPE: Shape = Shape::Object(&Object {
            what: "a run request",
            fields: &[
                Field::optional("inputs", Shape::Map(&Shape::Any)),
                Field::optional("version", Shape::Nullable(&Shape::Str)),
            ],
        });
        &SHAPE
    }
}

/// A run with every step that has started or ended (a step not listed is waiting), in the
/// plan's order: by level, then in file order.
#[derive(Debug, Serialize, ToSchema)]
pub struct RunView {
    #[serde(flatten)]
    pub run: Run,
    pub steps: Vec<StepRun>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct RunList {
    pub runs: Vec<Run>,
}

#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct RunQuery {
    /// Only runs of this workflow.
    pub workflow_id: Option<String>,
    /// Only runs in this state.
    #[param(inline)]
    pub status: Option<RunStatus>,
}

#[utoipa::path(
    post, path = "/v1/workflows/{id}/runs", tag = "runs", operation_id = "start_run",
    params(("id" = String, Path, description = "The workflow's id")),
    request_body(content = Option<StartRun>, content_type = "application/json",
        description = "Optional: nothing (and no content type), or `null`, runs the latest version without inputs"),
    responses(
        (status = 202, description = "Started: follow it at the Location", body = Run,
            headers(("Location" = String, description = "The run: `/v1/runs/{id}`")),
            links(
                ("GetRun" = (operation_id = "get_run", parameters(("id" = "$response.body#/id")))),
                ("CancelRun" = (operation_id = "cancel_run", parameters(("id" = "$response.body#/id")))),
            )),
        (status = 403, description = "Needs the workflows:run scope", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "No such workflow or version", body = Problem, content_type = "application/problem+json"),
        (status = 422, description = "A required input is missing, or the workflow cannot run yet: every service step without a target and every agent not registered, each at its path in the workflow's document", body = Problem, content_type = "application/problem+json"),
    ),
    security(("api_key" = []), ("bearer" = []))
)]
pub async fn start<S: OrchestratorStore, Q: MessageQueue, I: AgentInvoker>(
    State(engine): State<Shared<S, Q, I>>,
    caller: Caller,
    Path(id): Path<String>,
    body: Option<ApiJson<Option<StartRun>>>,
) -> Result<impl IntoResponse, ApiError> {
    caller.require(Scope::WorkflowsRun)?;
    let StartRun { inputs, version } = body.and_then(|ApiJson(b)| b).unwrap_or_default();
    let run = engine.start_run(&id, version.as_deref(), inputs).await?;
    tracing::info!(run_id = %run.id, workflow_id = %id, "run started");
    Ok((StatusCode::ACCEPTED, [(header::LOCATION, format!("/v1/runs/{}", run.id))], Json(run)))
}

#[utoipa::path(
    get, path = "/v1/runs", tag = "runs", operation_id = "list_runs",
    params(RunQuery),
    responses(
        (status = 200, description = "Runs, newest first", body = RunList),
        (status = 403, description = "Needs the read scope", body = Problem, content_type = "application/problem+json"),
    ),
    security(("api_key" = []), ("bearer" = []))
)]
pub async fn list<S: OrchestratorStore, Q: MessageQueue, I: AgentInvoker>(
    State(engine): State<Shared<S, Q, I>>,
    caller: Caller,
    ApiQuery(query): ApiQuery<RunQuery>,
) -> Result<Json<RunList>, ApiError> {
    caller.require(Scope::Read)?;
    let filter = RunFilter { workflow_id: query.workflow_id, status: query.status };
    Ok(Json(RunList { runs: engine.store().list_runs(&filter).await? }))
}

#[utoipa::path(
    get, path = "/v1/runs/{id}", tag = "runs", operation_id = "get_run",
    params(("id" = String, Path, description = "The run's id")),
    responses(
        (status = 403, description = "Needs the read scope", body = Problem, content_type = "application/problem+json"),
        (status = 200, description = "The run and its steps in the plan's order: status, attempts, timings, outputs, error", body = RunView),
        (status = 404, description = "No such run", body = Problem, content_type = "application/problem+json"),
    ),
    security(("api_key" = []), ("bearer" = []))
)]
pub async fn get<S: OrchestratorStore, Q: MessageQueue, I: AgentInvoker>(
    State(engine): State<Shared<S, Q, I>>,
    caller: Caller,
    Path(id): Path<String>,
) -> Result<Json<RunView>, ApiError> {
    caller.require(Scope::Read)?;
    let (run, steps) = engine.run_view(&id).await?;
    Ok(Json(RunView { run, steps }))
}

#[utoipa::path(
    post, path = "/v1/runs/{id}/cancel", tag = "runs", operation_id = "cancel_run",
    description = "Nothing new starts; attempts in flight finish but start nothing after them.",
    params(("id" = String, Path, description = "The run's id")),
    responses(
        (status = 200, description = "Cancelled", body = Run),
        (status = 403, description = "Needs the workflows:run scope", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "No such run", body = Problem, content_type = "application/problem+json"),
        (status = 409, description = "The run has already ended", body = Problem, content_type = "application/problem+json"),
    ),
    security(("api_key" = []), ("bearer" = []))
)]
pub async fn cancel<S: OrchestratorStore, Q: MessageQueue, I: AgentInvoker>(
    State(engine): State<Shared<S, Q, I>>,
    caller: Caller,
    Path(id): Path<String>,
) -> Result<Json<Run>, ApiError> {
    caller.require(Scope::WorkflowsRun)?;
    Ok(Json(engine.cancel_run(&id).await?))
}
