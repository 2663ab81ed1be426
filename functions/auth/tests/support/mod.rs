//! The auth function and its authorizer as Lambda runs them, fed real API Gateway event
//! JSON: shared by the tests of this folder.

#![allow(dead_code)]

use std::sync::Arc;

use aws_lambda_events::apigw::ApiGatewayV2CustomAuthorizerV2Request;
use axum::Router;
use http_body_util::BodyExt as _;
use serde_json::{Value, json};
use tdev_auth::authorizer::authorize;
use tdev_domain::SystemClock;
use tdev_domain::auth::AuthService;
use tdev_embedded::SqliteStore;
use tdev_http::app::{HttpSettings, finish};
use tdev_http::guard::Mode;
use tower::ServiceExt as _;

pub const MAX_BODY: usize = 2048;

pub struct Lambda {
    pub service: Arc<AuthService<SqliteStore>>,
    pub app: Router,
    pub admin_key: String,
}

pub struct Call<'a> {
    pub method: &'a str,
    pub path: &'a str,
    pub headers: Vec<(&'a str, String)>,
    pub body: Option<String>,
}

impl<'a> Call<'a> {
    pub fn get(path: &'a str) -> Self {
        Self { method: "GET", path, headers: Vec::new(), body: None }
    }

    pub fn post(path: &'a str, body: &str) -> Self {
        let headers = vec![("content-type", "application/json".to_owned())];
        Self { method: "POST", path, headers, body: Some(body.to_owned()) }
    }

    pub fn header(mut self, name: &'a str, value: impl Into<String>) -> Self {
        self.headers.push((name, value.into()));
        self
    }
}

pub async fn lambda() -> Lambda {
    lambda_with_clock(Arc::new(SystemClock)).await
}

pub async fn lambda_with_clock(clock: Arc<dyn tdev_domain::Clock>) -> Lambda {
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

pub fn fixture(name: &str) -> Value {
    let path = format!("{}/tests/fixtures/{name}", env!("CARGO_MANIFEST_DIR"));
    serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap()
}

impl Lambda {
    /// The authorizer's answer for `call`, as the JSON API Gateway receives.
    pub async fn authorize(&self, call: &Call<'_>) -> Value {
        let mut event = fixture("authorizer-request.json");
        set_route(&mut event, call);
        let event: ApiGatewayV2CustomAuthorizerV2Request = serde_json::from_value(event).unwrap();
        let answer = authorize(&self.service, &event).await.unwrap();
        serde_json::to_value(answer).unwrap()
    }

    /// The authorizer, then the function; returns the status and the body.
    pub async fn call(&self, call: Call<'_>) -> (u16, Value) {
        let answer = self.authorize(&call).await;
        assert_eq!(answer["isAuthorized"], true, "the verdict travels in the context");
        self.invoke(&call, answer["context"].clone()).await
    }

    pub async fn invoke(&self, call: &Call<'_>, authorizer_context: Value) -> (u16, Value) {
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

pub fn set_route(event: &mut Value, call: &Call<'_>) {
    event["rawPath"] = json!(call.path);
    event["routeKey"] = json!(format!("{} {}", call.method, call.path));
    event["requestContext"]["http"]["method"] = json!(call.method);
    event["requestContext"]["http"]["path"] = json!(call.path);
    for (name, value) in &call.headers {
        event["headers"][*name] = json!(value);
    }
}
