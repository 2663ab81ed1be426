//! `/v1/agents`: register, list, get and remove agents.

use std::sync::Arc;

use axum::Json;
use axum::extract::{Path, State};
use axum::http::{StatusCode, header};
use axum::response::IntoResponse;
use serde::Serialize;
use tdev_domain::agents::{Agent, AgentUpdate, NewAgentRequest, Registry};
use tdev_domain::auth::Scope;
use tdev_domain::messaging::Breaker;
use tdev_http::{ApiError, ApiJson, Caller, Problem};
use utoipa::ToSchema;

use super::RouterStore;

type State_<S> = State<Arc<Registry<S>>>;

#[derive(Debug, Serialize, ToSchema)]
pub struct AgentList {
    pub agents: Vec<Agent>,
}

/// An agent, with how it is doing: its work in flight and its circuit breaker.
#[derive(Debug, Serialize, ToSchema)]
pub struct AgentView {
    #[serde(flatten)]
    pub agent: Agent,
    pub health: AgentHealth,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct AgentHealth {
    /// Messages being delivered to it now: its slots whose leases are live (a slot a
    /// dead consumer held counts only until its lease runs out).
    pub in_flight: u32,
    /// `closed` (healthy), `open` (failing: messages wait) or `half_open` (one probe).
    pub breaker: Breaker,
}

#[utoipa::path(
    post, path = "/v1/agents", tag = "agents", operation_id = "register_agent",
    request_body = NewAgentRequest,
    responses(
        (status = 201, description = "Registered", body = Agent,
            headers(("Location" = String, description = "The agent: `/v1/agents/{id}`")),
            links(
                ("GetAgent" = (operation_id = "get_agent", parameters(("id" = "$response.body#/id")))),
                ("UpdateAgent" = (operation_id = "update_agent", parameters(("id" = "$response.body#/id")))),
                ("RemoveAgent" = (operation_id = "remove_agent", parameters(("id" = "$response.body#/id")))),
            )),
        (status = 403, description = "Needs the agents:write scope", body = Problem, content_type = "application/problem+json"),
        (status = 409, description = "The id is taken", body = Problem, content_type = "application/problem+json"),
    ),
    security(("api_key" = []), ("bearer" = []))
)]
pub async fn register<S: RouterStore>(
    State(registry): State_<S>,
    caller: Caller,
    body: Result<ApiJson<NewAgentRequest>, ApiError>,
) -> Result<impl IntoResponse, ApiError> {
    caller.require(Scope::AgentsWrite)?;
    let ApiJson(request) = body?;
    let agent = registry.register(request).await?;
    tracing::info!(agent_id = %agent.id, kind = agent.target.kind(), "agent registered");
    Ok((StatusCode::CREATED, [(header::LOCATION, format!("/v1/agents/{}", agent.id))], Json(agent)))
}

#[utoipa::path(
    get, path = "/v1/agents", tag = "agents", operation_id = "list_agents",
    responses(
        (status = 200, description = "Every agent, by id", body = AgentList),
        (status = 403, description = "Needs the read scope", body = Problem, content_type = "application/problem+json"),
    ),
    security(("api_key" = []), ("bearer" = []))
)]
pub async fn list<S: RouterStore>(
    State(registry): State_<S>,
    caller: Caller,
) -> Result<Json<AgentList>, ApiError> {
    caller.require(Scope::Read)?;
    Ok(Json(AgentList { agents: registry.list().await? }))
}

#[utoipa::path(
    get, path = "/v1/agents/{id}", tag = "agents", operation_id = "get_agent",
    params(("id" = String, Path, description = "The agent's id")),
    responses(
        (status = 200, description = "The agent, with its health", body = AgentView),
        (status = 403, description = "Needs the read scope", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "No such agent", body = Problem, content_type = "application/problem+json"),
    ),
    security(("api_key" = []), ("bearer" = []))
)]
pub async fn get<S: RouterStore>(
    State(registry): State_<S>,
    caller: Caller,
    Path(id): Path<String>,
) -> Result<Json<AgentView>, ApiError> {
    caller.require(Scope::Read)?;
    let agent = registry.get(&id).await?;
    let health = AgentHealth {
        in_flight: registry.store().in_flight(&id, registry.now()).await?,
        breaker: registry.store().get_breaker(&id).await?.unwrap_or_default(),
    };
    Ok(Json(AgentView { agent, health }))
}

#[utoipa::path(
    patch, path = "/v1/agents/{id}", tag = "agents", operation_id = "update_agent",
    description = "Changes only the fields given: status (active, draining, inactive), max_concurrency (null for none), capabilities, target, name.",
    params(("id" = String, Path, description = "The agent's id")),
    request_body = AgentUpdate,
    responses(
        (status = 200, description = "The agent as it is now", body = Agent),
        (status = 403, description = "Needs the agents:write scope", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "No such agent", body = Problem, content_type = "application/problem+json"),
    ),
    security(("api_key" = []), ("bearer" = []))
)]
pub async fn update<S: RouterStore>(
    State(registry): State_<S>,
    caller: Caller,
    Path(id): Path<String>,
    body: Result<ApiJson<AgentUpdate>, ApiError>,
) -> Result<Json<Agent>, ApiError> {
    caller.require(Scope::AgentsWrite)?;
    let ApiJson(update) = body?;
    let agent = registry.update(&id, update).await?;
    tracing::info!(agent_id = %id, status = ?agent.status, "agent updated");
    Ok(Json(agent))
}

#[utoipa::path(
    delete, path = "/v1/agents/{id}", tag = "agents", operation_id = "remove_agent",
    params(("id" = String, Path, description = "The agent's id")),
    responses(
        (status = 204, description = "Removed"),
        (status = 403, description = "Needs the agents:write scope", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "No such agent", body = Problem, content_type = "application/problem+json"),
    ),
    security(("api_key" = []), ("bearer" = []))
)]
pub async fn remove<S: RouterStore>(
    State(registry): State_<S>,
    caller: Caller,
    Path(id): Path<String>,
) -> Result<StatusCode, ApiError> {
    caller.require(Scope::AgentsWrite)?;
    registry.remove(&id).await?;
    tracing::info!(agent_id = %id, "agent removed");
    Ok(StatusCode::NO_CONTENT)
}
