//! HTTP agents, for real: small axum servers on 127.0.0.1 answer as agents would, and
//! the invoker calls them over TCP with the client `tdev` uses.

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use axum::Json;
use axum::Router;
use axum::http::{HeaderMap, StatusCode};
use axum::routing::post;
use serde_json::{Value, json};
use tdev_domain::agents::{AgentInvoker, AgentTarget, InvokeError};
use tdev_invoke::{Invoker, default_http_client};

const TIMEOUT: Duration = Duration::from_secs(5);

/// Serves `router` on a free port of 127.0.0.1 until the test's runtime ends.
async fn serve(router: Router) -> SocketAddr {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let address = listener.local_addr().expect("local address");
    tokio::spawn(async move { axum::serve(listener, router).await });
    address
}

fn invoker() -> Invoker {
    Invoker::new(default_http_client().expect("http client"), None)
}

fn target(address: SocketAddr, path: &str) -> AgentTarget {
    AgentTarget::Http { url: format!("http://{address}{path}") }
}

/// A payload with what tends to get mangled: nesting, unicode, big and small numbers.
fn payload() -> Value {
    json!({
        "input": "Summarise «this» — please ✓",
        "session_id": "s-1",
        "nested": {"list": [1, 2.5, -3, null, true], "empty": {}},
        "big": 9007199254740993u64,
    })
}

/// Answers an object holding the request it got: `Json` extraction also checks that the
/// request says `Content-Type: application/json`.
async fn echo(Json(request): Json<Value>) -> Json<Value> {
    Json(json!({"received": request, "agent": "echo"}))
}

#[tokio::test]
async fn a_json_object_is_the_answer_and_the_payload_arrives_intact() {
    let address = serve(Router::new().route("/agent", post(echo))).await;
    let answer = invoker().invoke(&target(address, "/agent"), &payload(), TIMEOUT).await.expect("answer");
    assert_eq!(Value::Object(answer), json!({"received": payload(), "agent": "echo"}));
}

/// Answers the request's `Idempotency-Key` header (null without one) and its body.
async fn key_echo(headers: HeaderMap, Json(request): Json<Value>) -> Json<Value> {
    let header = headers.get("idempotency-key").map(|v| v.to_str().expect("text").to_owned());
    Json(json!({"header": header, "body": request}))
}

#[tokio::test]
async fn a_delivery_key_is_sent_as_the_idempotency_key_header_and_stays_in_the_body() {
    let address = serve(Router::new().route("/", post(key_echo))).await;
    let payload = json!({"id": "m-1", "payload": {"n": 1}, "idempotency_key": "order-42:credit.1"});
    let answer = invoker().invoke(&target(address, "/"), &payload, TIMEOUT).await.expect("answer");
    assert_eq!(Value::Object(answer), json!({"header": "order-42:credit.1", "body": payload}));

    let without = json!({"id": "m-2"});
    let answer = invoker().invoke(&target(address, "/"), &without, TIMEOUT).await.expect("answer");
    assert_eq!(Value::Object(answer), json!({"header": null, "body": without}), "no key, no header");
}

#[tokio::test]
async fn a_key_that_cannot_be_a_header_is_refused_before_any_call() {
    let address = serve(Router::new().route("/", post(key_echo))).await;
    let payload = json!({"idempotency_key": "line\nbreak"});
    let error = invoker().invoke(&target(address, "/"), &payload, TIMEOUT).await.expect_err("refused");
    assert!(
        matches!(&error, InvokeError::Rejected(m) if m.contains("idempotency key") && m.contains("control character")),
        "{error:?}"
    );
}

#[tokio::test]
async fn a_json_array_is_rejected() {
    let address = serve(Router::new().route("/", post(|| async { Json(json!([1, 2, 3])) }))).await;
    let error = invoker().invoke(&target(address, "/"), &payload(), TIMEOUT).await.expect_err("an array");
    match error {
        InvokeError::Rejected(message) => {
            assert_eq!(message, "answered 200 OK with a JSON array instead of an object: [1,2,3]");
        }
        other => panic!("{other:?}"),
    }
}

#[tokio::test]
async fn a_body_that_is_not_json_is_rejected_with_an_excerpt() {
    let page = format!("<html>{}</html>", "x".repeat(1000));
    let address = serve(Router::new().route("/", post(move || async move { page }))).await;
    let error = invoker().invoke(&target(address, "/"), &payload(), TIMEOUT).await.expect_err("not JSON");
    match error {
        InvokeError::Rejected(message) => {
            assert!(
                message.starts_with("answered 200 OK with a body that is not JSON: <html>xxx"),
                "{message}"
            );
            assert!(message.ends_with('…'), "{message}");
            assert!(message.len() < 400, "the excerpt is short: {message}");
        }
        other => panic!("{other:?}"),
    }
}

#[tokio::test]
async fn an_empty_success_is_rejected() {
    let address = serve(Router::new().route("/", post(|| async { StatusCode::NO_CONTENT }))).await;
    let error = invoker().invoke(&target(address, "/"), &payload(), TIMEOUT).await.expect_err("empty");
    assert_eq!(error, InvokeError::Rejected("answered 204 No Content with an empty body".into()));
}

#[tokio::test]
async fn server_errors_and_overload_are_unavailable() {
    let router = Router::new()
        .route("/500", post(|| async { (StatusCode::INTERNAL_SERVER_ERROR, "the model crashed") }))
        .route("/503", post(|| async { (StatusCode::SERVICE_UNAVAILABLE, "") }))
        .route("/429", post(|| async { (StatusCode::TOO_MANY_REQUESTS, "slow down") }))
        .route("/408", post(|| async { (StatusCode::REQUEST_TIMEOUT, "too slow") }));
    let address = serve(router).await;
    let expected = [
        ("/500", "answered 500 Internal Server Error: the model crashed"),
        ("/503", "answered 503 Service Unavailable: an empty body"),
        ("/429", "answered 429 Too Many Requests: slow down"),
        ("/408", "answered 408 Request Timeout: too slow"),
    ];
    for (path, message) in expected {
        let error = invoker().invoke(&target(address, path), &payload(), TIMEOUT).await.expect_err(path);
        assert_eq!(error, InvokeError::Unavailable(message.into()), "{path}");
        assert!(error.is_retryable());
    }
}

#[tokio::test]
async fn client_errors_are_rejected_with_the_status_and_an_excerpt() {
    let router = Router::new()
        .route("/400", post(|| async { (StatusCode::BAD_REQUEST, r#"{"error": "input is missing"}"#) }))
        .route("/403", post(|| async { (StatusCode::FORBIDDEN, "no") }));
    let address = serve(router).await;
    let error = invoker().invoke(&target(address, "/400"), &payload(), TIMEOUT).await.expect_err("400");
    assert_eq!(
        error,
        InvokeError::Rejected(r#"answered 400 Bad Request: {"error": "input is missing"}"#.into())
    );
    assert!(!error.is_retryable());
    let error = invoker().invoke(&target(address, "/403"), &payload(), TIMEOUT).await.expect_err("403");
    assert_eq!(error, InvokeError::Rejected("answered 403 Forbidden: no".into()));
    // No route at all: axum's 404.
    let error = invoker().invoke(&target(address, "/nowhere"), &payload(), TIMEOUT).await.expect_err("404");
    assert_eq!(error, InvokeError::Rejected("answered 404 Not Found: an empty body".into()));
}

#[tokio::test]
async fn a_redirect_is_not_followed() {
    let address = serve(
        Router::new()
            .route("/old", post(|| async { (StatusCode::TEMPORARY_REDIRECT, [("location", "/agent")], "") }))
            .route("/agent", post(echo)),
    )
    .await;
    let error = invoker().invoke(&target(address, "/old"), &payload(), TIMEOUT).await.expect_err("redirect");
    assert_eq!(error, InvokeError::Rejected("answered 307 Temporary Redirect: an empty body".into()));
}

#[tokio::test]
async fn an_agent_slower_than_the_timeout_times_out() {
    let slow = || async {
        tokio::time::sleep(Duration::from_secs(10)).await;
        Json(json!({"late": true}))
    };
    let address = serve(Router::new().route("/", post(slow))).await;
    let timeout = Duration::from_millis(300);
    let started = Instant::now();
    let error = invoker().invoke(&target(address, "/"), &payload(), timeout).await.expect_err("too slow");
    assert_eq!(error, InvokeError::Timeout(timeout));
    assert!(started.elapsed() < Duration::from_secs(3), "gave up in {:?}", started.elapsed());
}

#[tokio::test]
async fn a_closed_port_is_unavailable() {
    // Take a free port, then close it: nothing listens there.
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let address = listener.local_addr().expect("local address");
    drop(listener);
    let error = invoker().invoke(&target(address, "/"), &payload(), TIMEOUT).await.expect_err("closed");
    match error {
        InvokeError::Unavailable(message) => {
            assert!(message.contains("onnect"), "says it could not connect: {message}");
            assert!(!message.contains("127.0.0.1"), "keeps the URL out: {message}");
        }
        other => panic!("{other:?}"),
    }
}

#[tokio::test]
async fn a_malformed_url_is_rejected() {
    let target = AgentTarget::Http { url: "not a url".into() };
    let error = invoker().invoke(&target, &payload(), TIMEOUT).await.expect_err("malformed");
    assert!(
        matches!(&error, InvokeError::Rejected(message) if message.starts_with("the request cannot be built")),
        "{error:?}"
    );
}
