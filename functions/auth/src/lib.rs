//! The auth function: API keys and token exchange over HTTP, and the Lambda authorizer
//! that checks every request before any function runs.

pub mod authorizer;
pub mod config;
mod routes;

pub use routes::{ApiDoc, AuthStore, constrain_schemas, router};

/// The whole API's document, every function's routes, as `tdev openapi` generated it from
/// their code (`docs/openapi.json`; a test of the `tdev` crate fails when it is stale).
/// Embedded as data, so that this function links none of the others.
const DOCUMENT: &str = include_str!("../../../docs/openapi.json");

/// The whole API's document, which the auth function serves at `/openapi.json` (and
/// Swagger UI at `/docs`), as does the local stack. `max_token_ttl_secs` is the longest
/// token lifetime a caller may ask for, the one setting the document depends on.
pub fn api_document(max_token_ttl_secs: u32) -> serde_json::Value {
    let mut document = serde_json::from_str(DOCUMENT).expect("docs/openapi.json is JSON: run `tdev openapi`");
    routes::limit_token_ttl(&mut document, max_token_ttl_secs);
    document
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_document_is_the_whole_api_with_the_configured_token_lifetime() {
        let document = api_document(1234);
        for path in ["/v1/keys", "/v1/agents", "/v1/messages", "/v1/workflows", "/v1/runs", "/v1/deployments"]
        {
            assert!(document["paths"].get(path).is_some(), "{path} is not in the document");
        }
        let ttl = &document["components"]["schemas"]["TokenRequest"]["properties"]["ttl_seconds"];
        assert_eq!((ttl["minimum"].as_u64(), ttl["maximum"].as_u64()), (Some(1), Some(1234)));
    }
}
