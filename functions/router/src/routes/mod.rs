//! The router function's HTTP routes.

mod agents;

use std::sync::Arc;

use axum::Router;
use axum::routing::get;
use tdev_domain::agents::Registry;
use tdev_domain::auth::AuthService;
use tdev_domain::ports::AgentStore;
use tdev_domain::ports::AuthStore;
use tdev_http::guard::{self, Mode};
use utoipa::OpenApi;

/// Every port the router function uses.
pub trait RouterStore: AuthStore + AgentStore {}
impl<T: AuthStore + AgentStore> RouterStore for T {}

/// The guarded `/v1/agents` routes, not yet finished (see `tdev_http::app::finish`).
pub fn router<S: RouterStore>(registry: Arc<Registry<S>>, auth: Arc<AuthService<S>>, mode: Mode) -> Router {
    let routes = Router::new()
        .route("/v1/agents", get(agents::list::<S>).post(agents::register::<S>))
        .route("/v1/agents/{id}", get(agents::get::<S>).delete(agents::remove::<S>))
        .with_state(registry);
    guard::layer(routes, auth, mode)
}

#[derive(OpenApi)]
#[openapi(
    paths(agents::register, agents::list, agents::get, agents::remove),
    tags((name = "agents", description = "The agent registry: how to reach each agent, and what it can do"))
)]
pub struct ApiDoc;
