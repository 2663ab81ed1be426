//! Authentication, authorization, rate limits, the agent registry and the API conventions,
//! through the real HTTP surface of the local stack.

mod support;

use reqwest::Method;
use serde_json::{Value, json};
use support::{MAX_BODY, problem, scenarios, start};

#[tokio::test]
async fn quickstart_key_token_protected_route_then_429() {
    scenarios::quickstart(&start().await).await;
}

#[tokio::test]
async fn every_kind_of_bad_credential_is_a_401() {
    scenarios::hostile_credentials(&start().await).await;
}

#[tokio::test]
async fn a_revoked_key_is_refused_directly_and_for_token_exchange() {
    scenarios::revocation(&start().await).await;
}

#[tokio::test]
async fn the_agent_registry_registers_reads_and_removes() {
    scenarios::agent_registry(&start().await).await;
}

#[tokio::test]
async fn a_missing_scope_is_a_403_not_a_401() {
    let stack = start().await;
    let (_, sender) = stack.create_key(&["messages:send"], None).await;
    let whoami = stack.request(Method::GET, "/v1/whoami").header("x-api-key", &sender).send().await.unwrap();
    let body = problem(whoami, 403).await;
    assert!(body["detail"].as_str().unwrap().contains("`read`"), "{body}");
    // A non-admin learns nothing about the body it sent: the scope is checked first.
    let create = stack
        .request(Method::POST, "/v1/keys")
        .header("x-api-key", &sender)
        .header("content-type", "application/json")
        .body("{not json")
        .send()
        .await
        .unwrap();
    problem(create, 403).await;

    let (_, reader) = stack.create_key(&["read"], None).await;
    let wider = stack
        .request(Method::POST, "/v1/tokens")
        .header("x-api-key", &reader)
        .json(&json!({"scopes": ["read", "admin"]}))
        .send()
        .await
        .unwrap();
    problem(wider, 403).await;
    let token = stack.token(&reader).await;
    let token_for_token = stack.request(Method::POST, "/v1/tokens").bearer_auth(&token).send().await.unwrap();
    problem(token_for_token, 403).await;
}

#[tokio::test]
async fn bad_bodies_get_problems_with_field_paths() {
    let stack = start().await;
    let post = |body: String, content_type: &'static str| {
        stack
            .request(Method::POST, "/v1/keys")
            .header("x-api-key", &stack.admin_key)
            .header("content-type", content_type)
            .body(body)
    };
    let malformed = problem(post("{\"name\": ".into(), "application/json").send().await.unwrap(), 400).await;
    assert!(malformed["detail"].as_str().unwrap().starts_with("line 1 column"), "{malformed}");
    assert_eq!(malformed["errors"][0]["path"], "$");

    let wrong_type =
        json!({"name": "x", "scopes": ["read"], "rate_limit": {"capacity": "many", "refill_per_minute": 1}});
    let body = problem(post(wrong_type.to_string(), "application/json").send().await.unwrap(), 422).await;
    assert_eq!(body["errors"][0]["path"], "$.rate_limit.capacity");

    let invalid = json!({"name": "", "scopes": ["read", "root"], "rate_limit": {"capacity": 0, "refill_per_minute": 1}});
    let body = problem(post(invalid.to_string(), "application/json").send().await.unwrap(), 422).await;
    let paths: Vec<&str> =
        body["errors"].as_array().unwrap().iter().map(|e| e["path"].as_str().unwrap()).collect();
    // The body's shape first (a scope is one of a fixed set), then the rules of its values.
    assert_eq!(paths, ["$.scopes[1]", "$.name", "$.rate_limit.capacity"]);

    let missing =
        problem(post(json!({"scopes": ["read"]}).to_string(), "application/json").send().await.unwrap(), 422)
            .await;
    assert_eq!(missing["errors"][0]["path"], "$.name");

    let oversized = json!({"name": "x".repeat(MAX_BODY), "scopes": ["read"]}).to_string();
    let too_large = problem(post(oversized, "application/json").send().await.unwrap(), 413).await;
    assert_eq!(
        too_large["detail"],
        format!(
            "the body exceeds the limit of {MAX_BODY} bytes (set by TDEV_MAX_BODY_BYTES, the template \
             parameter MaxBodyBytes)"
        ),
        "a 413 names the limit and how to raise it"
    );
    problem(
        post(json!({"name": "x", "scopes": ["read"]}).to_string(), "text/plain").send().await.unwrap(),
        415,
    )
    .await;

    let ttl = stack
        .request(Method::POST, "/v1/tokens")
        .header("x-api-key", &stack.admin_key)
        .json(&json!({"ttl_seconds": 999_999}))
        .send()
        .await
        .unwrap();
    assert_eq!(problem(ttl, 422).await["errors"][0]["path"], "$.ttl_seconds");
}

#[tokio::test]
async fn twice_the_capacity_at_once_lets_exactly_the_capacity_through() {
    let stack = start().await;
    let capacity = 20;
    let (_, key) = stack.create_key(&["read"], Some((capacity, 1))).await;
    let (_, other) = stack.create_key(&["read"], Some((capacity, 1))).await;
    let requests =
        (0..2 * capacity).map(|_| stack.request(Method::GET, "/v1/whoami").header("x-api-key", &key).send());
    let responses = futures::future::join_all(requests).await;
    let mut ok = 0;
    for response in responses {
        let response = response.unwrap();
        match response.status().as_u16() {
            200 => ok += 1,
            429 => assert!(response.headers().contains_key("retry-after")),
            other => panic!("unexpected status {other}"),
        }
    }
    // One token a minute may refill while the test runs.
    assert!(ok == capacity || ok == capacity + 1, "{ok} passed");
    let unaffected =
        stack.request(Method::GET, "/v1/whoami").header("x-api-key", &other).send().await.unwrap();
    assert_eq!(unaffected.status(), 200, "two clients do not share a bucket");
}

#[tokio::test]
async fn tokens_signed_before_a_rotation_stay_valid() {
    let stack = start().await;
    let (_, key) = stack.create_key(&["read"], None).await;
    let before = stack.token(&key).await;
    let (old_kid, _) = stack.current_signing_key().await;
    stack.service.rotate_signing_key().await.unwrap();
    let after = stack.token(&key).await;
    let (new_kid, _) = stack.current_signing_key().await;
    assert_ne!(old_kid, new_kid);
    for token in [&before, &after] {
        let response = stack.request(Method::GET, "/v1/whoami").bearer_auth(token).send().await.unwrap();
        assert_eq!(response.status(), 200);
    }
    stack.service.rotate_signing_key().await.unwrap();
    let twice_rotated = stack.request(Method::GET, "/v1/whoami").bearer_auth(&before).send().await.unwrap();
    problem(twice_rotated, 401).await;
}

#[tokio::test]
async fn health_docs_request_ids_and_unknown_routes() {
    let stack = start().await;
    let health = stack.request(Method::GET, "/health").send().await.unwrap();
    assert_eq!(health.status(), 200);
    let id = health.headers()["x-request-id"].to_str().unwrap().to_owned();
    assert_eq!(id.len(), 36, "a generated UUID");
    let body: Value = health.json().await.unwrap();
    assert_eq!(body["status"], "ok");
    let names: Vec<&str> =
        body["components"].as_array().unwrap().iter().map(|c| c["name"].as_str().unwrap()).collect();
    assert_eq!(names, ["sqlite", "signing_keys"]);

    let echoed =
        stack.request(Method::GET, "/health").header("x-request-id", "trace-me-42").send().await.unwrap();
    assert_eq!(echoed.headers()["x-request-id"], "trace-me-42");

    let spec: Value = stack.request(Method::GET, "/openapi.json").send().await.unwrap().json().await.unwrap();
    assert!(spec["openapi"].as_str().unwrap().starts_with("3.1"));
    for path in [
        "/v1/keys",
        "/v1/keys/{id}",
        "/v1/tokens",
        "/v1/whoami",
        "/health",
        "/v1/agents",
        "/v1/agents/{id}",
        "/v1/workflows:validate",
        "/v1/workflows",
        "/v1/workflows/{id}/runs",
        "/v1/runs/{id}",
        "/v1/runs/{id}/cancel",
    ] {
        assert!(spec["paths"].get(path).is_some(), "{path} is documented");
    }
    let docs = stack.request(Method::GET, "/docs/").send().await.unwrap();
    assert_eq!(docs.status(), 200);
    assert!(docs.text().await.unwrap().contains("swagger"));

    problem(stack.request(Method::GET, "/nowhere").send().await.unwrap(), 404).await;
    let wrong_method = stack.request(Method::PUT, "/health").send().await.unwrap();
    problem(wrong_method, 405).await;
}

/// Guessing credentials is throttled per address: past the failed-authentication bucket
/// (30 at once) a bad credential gets a 429 with Retry-After, not another 401; a good
/// credential from elsewhere is not affected (its own bucket), and neither is this
/// address's good key.
#[tokio::test]
async fn bad_credentials_are_throttled_per_address() {
    let stack = start().await;
    let capacity = tdev_domain::auth::AuthConfig::DEFAULT_FAILED_AUTH_LIMIT.capacity;
    let guess = |i: u32| {
        stack.request(Method::GET, "/v1/whoami").header("x-api-key", format!("tdk_aaaaaaaaaaaaaaaa_{i:043}"))
    };
    for i in 0..capacity {
        assert_eq!(guess(i).send().await.unwrap().status(), 401, "attempt {i}");
    }
    let throttled = guess(capacity).send().await.unwrap();
    assert_eq!(throttled.status(), 429);
    assert!(throttled.headers()["retry-after"].to_str().unwrap().parse::<u64>().unwrap() >= 1);
    problem(throttled, 429).await;
    let good =
        stack.request(Method::GET, "/v1/whoami").header("x-api-key", &stack.admin_key).send().await.unwrap();
    assert_eq!(good.status(), 200, "a valid key is charged to its own bucket");
}

/// A caller's request id is echoed only when it is short and plain; any other is replaced.
#[tokio::test]
async fn only_usable_request_ids_are_echoed() {
    let stack = start().await;
    let echoed = |id: String| {
        let request = stack.request(Method::GET, "/health").header("x-request-id", id);
        async move { request.send().await.unwrap().headers()["x-request-id"].to_str().unwrap().to_owned() }
    };
    assert_eq!(echoed("trace-42".into()).await, "trace-42");
    let long = echoed("a".repeat(10_000)).await;
    assert!(long.len() <= 128 && !long.starts_with("aaaa"), "{long}");
    let odd = echoed("<img src=x onerror=alert(1)>".into()).await;
    assert!(!odd.contains('<'), "{odd}");
}

/// Ids and names that would reorder or hide text in a log or a console (U+202E, the
/// right-to-left override, among them) are refused with the field's path.
#[tokio::test]
async fn names_with_bidi_overrides_or_controls_are_refused() {
    let stack = start().await;
    let admin =
        |method: Method, path: &str| stack.request(method, path).header("x-api-key", &stack.admin_key);
    for name in ["evil\u{202E}txt.exe", "tab\tname", "zero\u{200B}width"] {
        let key = admin(Method::POST, "/v1/keys")
            .json(&json!({"name": name, "scopes": ["read"]}))
            .send()
            .await
            .unwrap();
        let body = problem(key, 422).await;
        assert_eq!(body["errors"][0]["path"], "$.name", "{name:?}: {body}");
        let agent = admin(Method::POST, "/v1/agents")
            .json(
                &json!({"id": "a1", "name": name, "target": {"kind": "http", "url": "http://127.0.0.1:9/"}}),
            )
            .send()
            .await
            .unwrap();
        let body = problem(agent, 422).await;
        assert_eq!(body["errors"][0]["path"], "$.name", "{name:?}: {body}");
        let workflow = json!({"id": name, "name": "w", "steps": [
            {"id": format!("s{name}"), "name": "s", "type": "agent", "agent_id": "a1"}
        ]});
        let stored = admin(Method::POST, "/v1/workflows").json(&workflow).send().await.unwrap();
        let body = problem(stored, 422).await;
        let paths: Vec<&str> =
            body["errors"].as_array().unwrap().iter().filter_map(|e| e["path"].as_str()).collect();
        assert!(paths.contains(&"$.id") && paths.contains(&"$.steps[0].id"), "{name:?}: {body}");
    }
}
