//! The auth function's HTTP routes: one file per resource.

mod health;
mod keys;
mod tokens;
mod whoami;

use std::sync::Arc;

use axum::Router;
use axum::routing::{get, post};
use serde_json::json;
use tdev_domain::auth::{AuthService, RateLimit, Scope};
use tdev_http::guard::{self, Mode};
use tdev_http::problem::Problem;
use utoipa::openapi::security::{ApiKey, ApiKeyValue, HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::{Modify, OpenApi};

pub use tdev_domain::auth::AuthStore;

type Service<S> = Arc<AuthService<S>>;

/// The public routes (`/health`) and the guarded `/v1` routes. Not yet finished with
/// `tdev_http::app::finish`, so that the local stack can merge several functions first.
pub fn router<S: AuthStore>(service: Service<S>, mode: Mode) -> Router {
    let v1 = Router::new()
        .route("/v1/keys", post(keys::create::<S>).get(keys::list::<S>))
        .route("/v1/keys/{id}", get(keys::get::<S>).delete(keys::revoke::<S>))
        .route("/v1/tokens", post(tokens::issue::<S>))
        .route("/v1/whoami", get(whoami::get))
        .with_state(service.clone());
    Router::new()
        .route("/health", get(health::get::<S>))
        .with_state(service.clone())
        .merge(guard::layer(v1, service, mode))
}

#[derive(OpenApi)]
#[openapi(
    info(
        title = "T-Developer API",
        description = "Control plane for fleets of AI agents on Amazon Bedrock. Errors are \
            application/problem+json (RFC 9457). Authenticate with `X-Api-Key` or \
            `Authorization: Bearer <token>` from `POST /v1/tokens`."
    ),
    paths(
        keys::create, keys::list, keys::get, keys::revoke,
        tokens::issue, whoami::get, health::get,
    ),
    components(schemas(Problem)),
    modifiers(&SecuritySchemes),
    tags(
        (name = "keys", description = "API keys (admin)"),
        (name = "tokens", description = "Exchange an API key for a short-lived token"),
        (name = "health", description = "Liveness of each component"),
    )
)]
pub struct ApiDoc;

struct SecuritySchemes;

impl Modify for SecuritySchemes {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "api_key",
            SecurityScheme::ApiKey(ApiKey::Header(ApiKeyValue::new("X-Api-Key"))),
        );
        components.add_security_scheme(
            "bearer",
            SecurityScheme::Http(
                HttpBuilder::new().scheme(HttpAuthScheme::Bearer).bearer_format("JWT").build(),
            ),
        );
    }
}

/// The limits `tdev_domain::auth` enforces on request bodies, written into their schemas
/// in the whole API's `document`.
pub fn constrain_schemas(openapi: &mut serde_json::Value, max_token_ttl_secs: u32) {
    {
        let scopes = Scope::ALL.map(|scope| scope.as_str());
        let name = tdev_http::docs::label();
        tdev_http::docs::constrain(
            openapi,
            "NewApiKeyRequest",
            json!({"properties": {
                "name": {"minLength": 1, "maxLength": 100, "pattern": name},
                "scopes": {"minItems": 1, "items": {"enum": scopes}},
            }}),
        );
        tdev_http::docs::constrain(
            openapi,
            "TokenRequest",
            json!({"properties": {
                "scopes": {"minItems": 1, "items": {"enum": scopes}},
                "ttl_seconds": {"minimum": 1,
                    "description": "Ask for a shorter lifetime than the configured one (`TDEV_TOKEN_TTL_SECONDS`)."},
            }}),
        );
        limit_token_ttl(openapi, max_token_ttl_secs);
        tdev_http::docs::constrain(
            openapi,
            "RateLimit",
            json!({"properties": {
                "capacity": {"minimum": 1, "maximum": RateLimit::MAX_CAPACITY},
                "refill_per_minute": {"minimum": 1, "maximum": RateLimit::MAX_REFILL_PER_MINUTE},
            }}),
        );
    }
}

/// Writes the longest token lifetime a caller may ask for, a setting of the deployment,
/// into the whole API's `document`.
pub(crate) fn limit_token_ttl(document: &mut serde_json::Value, max_token_ttl_secs: u32) {
    tdev_http::docs::constrain(
        document,
        "TokenRequest",
        json!({"properties": {"ttl_seconds": {"maximum": max_token_ttl_secs}}}),
    );
}
