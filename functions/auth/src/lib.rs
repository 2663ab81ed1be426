//! The auth function: API keys and token exchange over HTTP, and the Lambda authorizer
//! that checks every request before any function runs.

pub mod authorizer;
pub mod config;
mod routes;

pub use routes::{ApiDoc, AuthStore, constrain_schemas, router};

/// The whole API's document: every function's routes. The auth function serves it at
/// `/openapi.json` (and Swagger UI at `/docs`), as does the local stack. The problem
/// responses every operation shares are added by [`tdev_http::docs::complete`].
/// `max_token_ttl_secs` is the longest token lifetime a caller may ask for.
pub fn whole_api(max_token_ttl_secs: u32) -> serde_json::Value {
    use utoipa::OpenApi as _;
    let mut api = ApiDoc::openapi();
    api.merge(tdev_router::ApiDoc::openapi());
    api.merge(tdev_orchestrator::ApiDoc::openapi());
    api.merge(tdev_deployer::ApiDoc::openapi());
    let mut document = tdev_http::docs::complete(api);
    constrain_schemas(&mut document, max_token_ttl_secs);
    tdev_router::constrain_schemas(&mut document);
    document
}
