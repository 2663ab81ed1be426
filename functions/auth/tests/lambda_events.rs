//! The authorizer and the auth function as Lambda runs them: fed real API Gateway HTTP
//! API (payload 2.0) event JSON, the authorizer's answer passed on in the request context
//! exactly as API Gateway passes it.

mod support;

use std::sync::Arc;

use serde_json::json;
use support::{Call, MAX_BODY, lambda, lambda_with_clock};
use tdev_conformance::tokens::SigningMaterial;
use tdev_domain::ports::SecretStore;

#[tokio::test]
async fn valid_key_and_token_pass_and_every_bad_token_is_a_401() {
    let lambda = lambda().await;
    let (status, body) = lambda.call(Call::get("/v1/keys").header("x-api-key", &lambda.admin_key)).await;
    assert_eq!(status, 200, "{body}");

    let versions = lambda.service.store().secret_versions("tdev/signing-key").await.unwrap();
    let keys = body["keys"].as_array().unwrap();
    let material = SigningMaterial {
        kid: &versions.current.version_id,
        secret: versions.current.value.as_bytes(),
        issuer: "t-developer",
        audience: "t-developer-api",
        subject: keys[0]["id"].as_str().unwrap(),
        now: jiff::Timestamp::now().as_second(),
    };
    let (status, _) = lambda
        .call(Call::get("/v1/keys").header("authorization", format!("Bearer {}", material.valid())))
        .await;
    assert_eq!(status, 200, "the baseline token passes");

    let (status, body) = lambda.call(Call::get("/v1/keys")).await;
    assert_eq!((status, body["type"].as_str()), (401, Some("urn:tdev:problem:unauthenticated")));
    for (name, authorization) in material.bad_authorizations() {
        let (status, body) = lambda.call(Call::get("/v1/keys").header("authorization", authorization)).await;
        assert_eq!(status, 401, "{name}: {body}");
    }
}

#[tokio::test]
async fn a_request_that_skipped_the_authorizer_is_refused() {
    let lambda = lambda().await;
    let call = Call::get("/v1/keys").header("x-api-key", &lambda.admin_key);
    let (status, body) = lambda.invoke(&call, json!({})).await;
    assert_eq!(status, 401, "{body}");
    let forged = json!({"authenticated": true, "key_id": "not a key", "scopes": "admin"});
    let (status, _) = lambda.invoke(&call, forged).await;
    assert_eq!(status, 401, "a context that does not parse is no verdict");
}

#[tokio::test]
async fn revoked_keys_missing_scopes_and_bad_bodies() {
    let lambda = lambda().await;
    let admin = |call: Call<'static>| call.header("x-api-key", lambda.admin_key.clone());
    let (status, created) =
        lambda.call(admin(Call::post("/v1/keys", r#"{"name": "reader", "scopes": ["read"]}"#))).await;
    assert_eq!(status, 201, "{created}");
    let key = created["secret"].as_str().unwrap().to_owned();
    let id = created["id"].as_str().unwrap().to_owned();

    let (status, _) = lambda.call(Call::get("/v1/keys").header("x-api-key", &key)).await;
    assert_eq!(status, 403, "read is not admin");
    let (status, token) = lambda.call(Call::post("/v1/tokens", "{}").header("x-api-key", &key)).await;
    assert_eq!(status, 200, "{token}");

    let path = format!("/v1/keys/{id}");
    let revoke = Call { method: "DELETE", path: &path, headers: Vec::new(), body: None };
    let (status, _) = lambda.call(revoke.header("x-api-key", &lambda.admin_key)).await;
    assert_eq!(status, 204);
    let (status, body) = lambda.call(Call::get("/v1/whoami").header("x-api-key", &key)).await;
    assert_eq!((status, body["detail"].as_str()), (401, Some("the API key has been revoked")));
    let (status, _) = lambda.call(Call::post("/v1/tokens", "{}").header("x-api-key", &key)).await;
    assert_eq!(status, 401, "a revoked key cannot be exchanged");

    let (status, body) = lambda.call(admin(Call::post("/v1/keys", r#"{"name": "x", "scopes": "#))).await;
    assert_eq!((status, body["errors"][0]["path"].as_str()), (400, Some("$")));
    let (status, body) =
        lambda.call(admin(Call::post("/v1/keys", r#"{"name": 7, "scopes": ["read"]}"#))).await;
    assert_eq!((status, body["errors"][0]["path"].as_str()), (422, Some("$.name")));
    let huge = json!({"name": "x".repeat(MAX_BODY), "scopes": ["read"]}).to_string();
    let (status, _) = lambda.call(admin(Call::post("/v1/keys", &huge))).await;
    assert_eq!(status, 413);
}

/// Captured log output.
/// A token never outlives its key: one minted 4 s before the key expires is refused when
/// the key is, whatever lifetime was asked for.
#[tokio::test]
async fn a_token_expires_no_later_than_its_key() {
    let clock = Arc::new(tdev_domain::ManualClock::new("2026-01-01T00:00:00Z".parse().unwrap()));
    let lambda = lambda_with_clock(clock.clone()).await;
    let body = json!({"name": "short", "scopes": ["read"], "expires_at": "2026-01-01T00:00:04Z"}).to_string();
    let (status, created) =
        lambda.call(Call::post("/v1/keys", &body).header("x-api-key", &lambda.admin_key)).await;
    assert_eq!(status, 201, "{created}");
    let key = created["secret"].as_str().unwrap().to_owned();

    let (status, token) = lambda.call(Call::post("/v1/tokens", "{}").header("x-api-key", &key)).await;
    assert_eq!((status, token["expires_in"].as_u64()), (200, Some(4)), "{token}");
    let bearer = format!("Bearer {}", token["access_token"].as_str().unwrap());
    clock.advance(jiff::SignedDuration::from_secs(3));
    let (status, _) = lambda.call(Call::get("/v1/whoami").header("authorization", &bearer)).await;
    assert_eq!(status, 200);
    clock.advance(jiff::SignedDuration::from_secs(1));
    let (status, body) = lambda.call(Call::get("/v1/whoami").header("authorization", &bearer)).await;
    assert_eq!((status, body["detail"].as_str()), (401, Some("the token has expired")), "{body}");
    let (status, _) = lambda.call(Call::get("/v1/whoami").header("x-api-key", &key)).await;
    assert_eq!(status, 401, "and so has the key");
}

/// serde reads a struct from a list of its fields too; a request body may not.
#[tokio::test]
async fn bodies_in_the_list_form_of_a_struct_are_refused() {
    let lambda = lambda().await;
    let admin = |call: Call<'static>| call.header("x-api-key", lambda.admin_key.clone());
    let (status, body) = lambda.call(admin(Call::post("/v1/tokens", r#"[["read"], 5]"#))).await;
    assert_eq!((status, body["errors"][0]["path"].as_str()), (422, Some("$")), "{body}");
    let (status, body) = lambda
        .call(admin(Call::post(
            "/v1/keys",
            r#"["name", ["read"], null, {"capacity": 1, "refill_per_minute": 1}]"#,
        )))
        .await;
    assert_eq!((status, body["errors"][0]["path"].as_str()), (422, Some("$")), "{body}");
    let (status, body) = lambda
        .call(admin(Call::post("/v1/keys", r#"{"name": "n", "scopes": ["read"], "rate_limit": [1, 1]}"#)))
        .await;
    assert_eq!((status, body["errors"][0]["path"].as_str()), (422, Some("$.rate_limit")), "{body}");
}
