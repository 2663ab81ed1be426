//! The orchestrator's HTTP routes: workflows, runs and squads.

mod runs;
mod squads;
mod tasks;
mod workflows;

use std::sync::Arc;

use axum::Router;
use axum::routing::{get, post};
use tdev_domain::agents::AgentInvoker;
use tdev_domain::auth::{AuthService, AuthStore};
use tdev_domain::ports::MessageQueue;
use tdev_domain::runs::{Engine, EngineStore};
use tdev_http::guard::{self, Mode};
use utoipa::OpenApi;

/// Every store port the orchestrator uses: the engine's and the auth stores.
pub trait OrchestratorStore: AuthStore + EngineStore + Clone {}
impl<T: AuthStore + EngineStore + Clone> OrchestratorStore for T {}

type Shared<S, Q, I> = Arc<Engine<S, Q, I>>;

/// The guarded `/v1` workflow and run routes, not yet finished.
pub fn router<S, Q, I>(engine: Shared<S, Q, I>, auth: Arc<AuthService<S>>, mode: Mode) -> Router
where
    S: OrchestratorStore,
    Q: MessageQueue,
    I: AgentInvoker,
{
    let routes = Router::new()
        .route("/v1/workflows:validate", post(workflows::validate::<S, Q, I>))
        .route("/v1/workflows", post(workflows::create::<S, Q, I>))
        .route("/v1/workflows/{id}", get(workflows::latest::<S, Q, I>))
        .route("/v1/workflows/{id}/versions/{version}", get(workflows::version::<S, Q, I>))
        .route("/v1/workflows/{id}/runs", post(runs::start::<S, Q, I>))
        .route("/v1/runs", get(runs::list::<S, Q, I>))
        .route("/v1/runs/{id}", get(runs::get::<S, Q, I>))
        .route("/v1/runs/{id}/cancel", post(runs::cancel::<S, Q, I>))
        .route("/v1/squads:validate", post(squads::validate::<S, Q, I>))
        .route("/v1/squads", post(squads::create::<S, Q, I>))
        .route("/v1/squads/{id}", get(squads::latest::<S, Q, I>))
        .route("/v1/squads/{id}/versions/{version}", get(squads::version::<S, Q, I>))
        .route("/v1/squads/{id}/tasks", post(tasks::start::<S, Q, I>))
        .route("/v1/squad-tasks", get(tasks::list::<S, Q, I>))
        .route("/v1/squad-tasks/{id}", get(tasks::get::<S, Q, I>))
        .route("/v1/squad-tasks/{id}/cancel", post(tasks::cancel::<S, Q, I>))
        .with_state(engine);
    guard::layer(routes, auth, mode)
}

#[derive(OpenApi)]
#[openapi(
    paths(
        workflows::validate, workflows::create, workflows::latest, workflows::version,
        runs::start, runs::list, runs::get, runs::cancel,
        squads::validate, squads::create, squads::latest, squads::version,
        tasks::start, tasks::list, tasks::get, tasks::cancel,
    ),
    tags(
        (name = "workflows", description = "Workflow definitions: validate, store (versioned), read"),
        (name = "runs", description = "Runs of stored workflows: start, watch, cancel"),
        (name = "squads", description = "Squads (agents that work one task together): validate, store (versioned), read"),
    )
)]
pub struct ApiDoc;
