//! `GET /health`: no authentication; each component and whether it is up.

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use serde::Serialize;
use tdev_domain::health::ComponentHealth;
use utoipa::ToSchema;

use super::{AuthStore, Service};

#[derive(Debug, Serialize, ToSchema)]
pub struct Health {
    /// `ok` when every component is up, else `degraded`.
    #[schema(example = "ok")]
    pub status: &'static str,
    #[schema(value_type = Vec<Object>)]
    pub components: Vec<ComponentHealth>,
}

#[utoipa::path(
    get, path = "/health", tag = "health", operation_id = "health",
    responses(
        (status = 200, description = "Every component is up", body = Health),
        (status = 503, description = "Some component is down", body = Health),
    )
)]
pub async fn get<S: AuthStore>(State(service): State<Service<S>>) -> (StatusCode, Json<Health>) {
    let mut components = service.store().health().await;
    components.push(service.signing_key_health().await);
    let up = components.iter().all(|c| c.ok);
    let status = if up { StatusCode::OK } else { StatusCode::SERVICE_UNAVAILABLE };
    (status, Json(Health { status: if up { "ok" } else { "degraded" }, components }))
}
