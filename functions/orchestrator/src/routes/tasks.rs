//! `/v1/squads/{id}/tasks` and `/v1/squad-tasks`: start, watch, list and cancel squad tasks.

use axum::Json;
use axum::extract::{Path, State};
use axum::http::{StatusCode, header};
use axum::response::IntoResponse;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use tdev_domain::agents::AgentInvoker;
use tdev_domain::auth::Scope;
use tdev_domain::ports::MessageQueue;
use tdev_domain::runs::{SquadTask, TaskFilter, TaskStatus, TaskView};
use tdev_http::{ApiError, ApiJson, ApiQuery, Caller, Problem};
use utoipa::{IntoParams, ToSchema};

use super::{OrchestratorStore, Shared};

#[derive(Debug, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct StartTask {
    /// What the members are given (`inputs` in each call), by name.
    #[serde(default)]
    #[schema(value_type = Object)]
    pub input: Map<String, Value>,
    /// Use this version of the squad; absent: the most recently stored one.
    #[serde(default)]
    pub version: Option<String>,
}

impl tdev_domain::strict::shape::Shaped for StartTask {
    fn shape() -> &'static tdev_domain::strict::shape::Shape {
        use tdev_domain::strict::shape::{Field, Object, Shape};
        static SHAPE: Shape = Shape::Object(&Object {
            what: "a task request",
            fields: &[
                Field::optional("input", Shape::Map(&Shape::Any)),
                Field::optional("version", Shape::Nullable(&Shape::Str)),
            ],
        });
        &SHAPE
    }
}

#[derive(Debug, Serialize, ToSchema)]
pub struct TaskList {
    pub tasks: Vec<SquadTask>,
}

#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct TaskQuery {
    /// Only tasks of this squad.
    pub squad_id: Option<String>,
    /// Only tasks in this state.
    #[param(inline)]
    pub status: Option<TaskStatus>,
}

#[utoipa::path(
    post, path = "/v1/squads/{id}/tasks", tag = "squads", operation_id = "start_squad_task",
    params(("id" = String, Path, description = "The squad's id")),
    request_body(content = Option<StartTask>, content_type = "application/json",
        description = "Optional: nothing (or `null`) starts the latest version with an empty input"),
    responses(
        (status = 202, description = "Started: follow it at the Location", body = SquadTask,
            headers(("Location" = String, description = "The task: `/v1/squad-tasks/{id}`")),
            links(
                ("GetSquadTask" = (operation_id = "get_squad_task", parameters(("id" = "$response.body#/id")))),
                ("CancelSquadTask" = (operation_id = "cancel_squad_task", parameters(("id" = "$response.body#/id")))),
            )),
        (status = 403, description = "Needs the workflows:run scope", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "No such squad or version", body = Problem, content_type = "application/problem+json"),
        (status = 422, description = "The input does not fit, or a seat cannot be filled: every agent not registered and every capability too few active agents offer, at its path in the squad", body = Problem, content_type = "application/problem+json"),
    ),
    security(("api_key" = []), ("bearer" = []))
)]
pub async fn start<S: OrchestratorStore, Q: MessageQueue, I: AgentInvoker>(
    State(engine): State<Shared<S, Q, I>>,
    caller: Caller,
    Path(id): Path<String>,
    body: Option<ApiJson<Option<StartTask>>>,
) -> Result<impl IntoResponse, ApiError> {
    caller.require(Scope::WorkflowsRun)?;
    let StartTask { input, version } = body.and_then(|ApiJson(b)| b).unwrap_or_default();
    let task = engine.start_task(&id, version.as_deref(), input, None).await?;
    tracing::info!(task_id = %task.id, squad_id = %id, "squad task started");
    Ok((StatusCode::ACCEPTED, [(header::LOCATION, format!("/v1/squad-tasks/{}", task.id))], Json(task)))
}

#[utoipa::path(
    get, path = "/v1/squad-tasks", tag = "squads", operation_id = "list_squad_tasks",
    params(TaskQuery),
    responses(
        (status = 200, description = "Tasks, newest first", body = TaskList),
        (status = 403, description = "Needs the read scope", body = Problem, content_type = "application/problem+json"),
    ),
    security(("api_key" = []), ("bearer" = []))
)]
pub async fn list<S: OrchestratorStore, Q: MessageQueue, I: AgentInvoker>(
    State(engine): State<Shared<S, Q, I>>,
    caller: Caller,
    ApiQuery(query): ApiQuery<TaskQuery>,
) -> Result<Json<TaskList>, ApiError> {
    caller.require(Scope::Read)?;
    let filter = TaskFilter { squad_id: query.squad_id, status: query.status };
    Ok(Json(TaskList { tasks: engine.list_tasks(&filter).await? }))
}

#[utoipa::path(
    get, path = "/v1/squad-tasks/{id}", tag = "squads", operation_id = "get_squad_task",
    params(("id" = String, Path, description = "The task's id")),
    responses(
        (status = 200, description = "The task: its seats, every replacement and why, each round's tally, the result; and every assignment (member, agent called, attempts, status, timing, reply)", body = TaskView),
        (status = 403, description = "Needs the read scope", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "No such task", body = Problem, content_type = "application/problem+json"),
    ),
    security(("api_key" = []), ("bearer" = []))
)]
pub async fn get<S: OrchestratorStore, Q: MessageQueue, I: AgentInvoker>(
    State(engine): State<Shared<S, Q, I>>,
    caller: Caller,
    Path(id): Path<String>,
) -> Result<Json<TaskView>, ApiError> {
    caller.require(Scope::Read)?;
    Ok(Json(engine.task_view(&id).await?))
}

#[utoipa::path(
    post, path = "/v1/squad-tasks/{id}/cancel", tag = "squads", operation_id = "cancel_squad_task",
    description = "Nothing new starts; calls in flight finish and are recorded, but count for nothing.",
    params(("id" = String, Path, description = "The task's id")),
    responses(
        (status = 200, description = "Cancelled", body = SquadTask),
        (status = 403, description = "Needs the workflows:run scope", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "No such task", body = Problem, content_type = "application/problem+json"),
        (status = 409, description = "The task has already ended", body = Problem, content_type = "application/problem+json"),
    ),
    security(("api_key" = []), ("bearer" = []))
)]
pub async fn cancel<S: OrchestratorStore, Q: MessageQueue, I: AgentInvoker>(
    State(engine): State<Shared<S, Q, I>>,
    caller: Caller,
    Path(id): Path<String>,
) -> Result<Json<SquadTask>, ApiError> {
    caller.require(Scope::WorkflowsRun)?;
    Ok(Json(engine.cancel_task(&id).await?))
}
