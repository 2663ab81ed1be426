//! The whole API's OpenAPI document, generated from every function's annotations
//! (utoipa). Only this crate links every function, so the document is made here and
//! committed as [`COMMITTED`]; the auth function embeds that file and serves it
//! (`tdev_auth::api_document`), and so does the local stack, so neither function links
//! another's code. `tdev openapi` prints it; a test fails when the committed copy is stale.

use serde_json::Value;
use tdev_domain::auth::AuthConfig;
use utoipa::OpenApi as _;

/// Where the document is committed, from the workspace root.
pub const COMMITTED: &str = "docs/openapi.json";

/// The command that rewrites [`COMMITTED`].
pub const REGENERATE: &str = "cargo run -p tdev -- openapi > docs/openapi.json";

/// Every function's routes in one document, with the problem responses every operation
/// shares ([`tdev_http::docs::complete`]) and the limits the server enforces;
/// `max_token_ttl_secs` is the longest token lifetime a caller may ask for.
pub fn document(max_token_ttl_secs: u32) -> Value {
    let mut api = tdev_auth::ApiDoc::openapi();
    api.merge(tdev_router::ApiDoc::openapi());
    api.merge(tdev_orchestrator::ApiDoc::openapi());
    api.merge(tdev_deployer::ApiDoc::openapi());
    let mut document = tdev_http::docs::complete(api);
    tdev_auth::constrain_schemas(&mut document, max_token_ttl_secs);
    tdev_router::constrain_schemas(&mut document);
    document
}

/// The text of [`COMMITTED`]: the document for the default configuration (a deployment's
/// `TDEV_TOKEN_TTL_SECONDS` is written in when it is served), pretty-printed, every
/// object's keys sorted (whatever serde_json's `preserve_order` feature, which some
/// dependencies turn on in some builds and not others).
pub fn render() -> String {
    let mut document = document(AuthConfig::DEFAULT_TOKEN_TTL_SECS);
    document.sort_all_objects();
    let mut text = serde_json::to_string_pretty(&document).expect("a JSON value prints");
    text.push('\n');
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_committed_document_is_the_one_the_code_generates() {
        let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join(COMMITTED);
        let committed = std::fs::read_to_string(&path).unwrap_or_default();
        assert!(
            committed == render(),
            "{COMMITTED} is not the document the code generates (an annotation, a schema or a \
             route changed): regenerate it with `{REGENERATE}` and commit it"
        );
    }

    #[test]
    fn the_served_document_is_the_generated_one_for_every_token_lifetime() {
        for ttl in [1, AuthConfig::DEFAULT_TOKEN_TTL_SECS, 1234, AuthConfig::MAX_TOKEN_TTL_SECS] {
            assert!(
                tdev_auth::api_document(ttl) == document(ttl),
                "with TDEV_TOKEN_TTL_SECONDS={ttl}, the auth function serves another document than \
                 the code generates (if {COMMITTED} is stale, regenerate it first: `{REGENERATE}`)"
            );
        }
    }
}
