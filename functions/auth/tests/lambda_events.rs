//! The authorizer and the auth function as Lambda runs them: fed real API Gateway HTTP
//! API (payload 2.0) event JSON, the authorizer's answer passed on in the request context
//! exactly as API Gateway passes it.

use std::sync::Arc;

use aws_lambda_events::apigw::ApiGatewayV2CustomAuthorizerV2Request;
use axum::Router;
use http_body_util::BodyExt as _;
use serde_json::{Value, json};
use tdev_auth::authorizer::authorize;
use tdev_conformance::tokens::SigningMaterial;
use tdev_domain::SystemClock;
use tdev_domain::auth::AuthService;
use tdev_domain::ports::SecretStore;
use tdev_embedded::SqliteStore;
use tdev_http::app::{HttpSettings, finish};
use tdev_http::guard::Mode;
use tower::ServiceExt as _;

const MAX_BODY: usize = 2048;

struct Lambda {
    service: Arc<AuthService<SqliteStore>>,
    app: Router,
    admin_key: String,
}

struct Call<'a> {
    method: &'a str,
    path: &'a str,
    headers: Vec<(&'a str, String)>,
    body: Option<String>,
}

impl<'a> Call<'a> {
    fn get(path: &'a str) -> Self {
        Self { method: "GET", path, headers: Vec::new(), body: None }
    }

    fn post(path: &'a str, body: &str) -> Self {
        let headers = vec![("content-type", "application/json".to_owned())];
        Self { method: "POST", path, headers, body: Some(body.to_owned()) }
    }

    fn header(mut self, name: &'a str, value: impl Into<String>) -> Self {
        self.headers.push((name, value.into()));
        self
    }
}

async fn lambda() -> Lambda {
    lambda_with_clock(Arc::new(SystemClock)).await
}

async fn lambda_with_clock(clock: Arc<dyn tdev_domain::Clock>) -> Lambda {
    let store = SqliteStore::in_memory().unwrap();
    let config = tdev_conformance::test_auth_config();
    let service = Arc::new(AuthService::new(store, clock, config));
    let admin_key = service.bootstrap().await.unwrap().unwrap().plaintext;
    let app = finish(
        tdev_auth::router(service.clone(), Mode::AuthorizerContext),
        &HttpSettings { max_body_bytes: MAX_BODY, emf: None },
    );
    Lambda { service, app, admin_key }
}

fn fixture(name: &str) -> Value {
    let path = format!("{}/tests/fixtures/{name}", env!("CARGO_MANIFEST_DIR"));
    serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap()
}

impl Lambda {
    /// The authorizer's answer for `call`, as the JSON API Gateway receives.
    async fn authorize(&self, call: &Call<'_>) -> Value {
        let mut event = fixture("authorizer-request.json");
        set_route(&mut event, call);
        let event: ApiGatewayV2CustomAuthorizerV2Request = serde_json::from_value(event).unwrap();
        let answer = authorize(&self.service, &event).await.unwrap();
        serde_json::to_value(answer).unwrap()
    }

    /// The authorizer, then the function; returns the status and the body.
    async fn call(&self, call: Call<'_>) -> (u16, Value) {
        let answer = self.authorize(&call).await;
        assert_eq!(answer["isAuthorized"], true, "the verdict travels in the context");
        self.invoke(&call, answer["context"].clone()).await
    }

    async fn invoke(&self, call: &Call<'_>, authorizer_context: Value) -> (u16, Value) {
        let mut event = fixture("http-request.json");
        set_route(&mut event, call);
        event["requestContext"]["authorizer"]["lambda"] = authorizer_context;
        if let Some(body) = &call.body {
            event["body"] = json!(body);
            event["headers"]["content-length"] = json!(body.len().to_string());
        }
        let request = lambda_http::request::from_str(&event.to_string()).unwrap();
        let response = self.app.clone().oneshot(request).await.unwrap();
        let status = response.status().as_u16();
        if status >= 400 {
            assert_eq!(response.headers()["content-type"], "application/problem+json");
        }
        let bytes = response.into_body().collect().await.unwrap().to_bytes();
        (status, serde_json::from_slice(&bytes).unwrap_or(Value::Null))
    }
}

fn set_route(event: &mut Value, call: &Call<'_>) {
    event["rawPath"] = json!(call.path);
    event["routeKey"] = json!(format!("{} {}", call.method, call.path));
    event["requestContext"]["http"]["method"] = json!(call.method);
    event["requestContext"]["http"]["path"] = json!(call.path);
    for (name, value) in &call.headers {
        event["headers"][*name] = json!(value);
    }
}

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
