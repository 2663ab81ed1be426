//! Workflows through the real HTTP surface of the local stack: the extract → transform →
//! load pipeline of issue 3 against three HTTP agents started here, linked only by data
//! edges, plus validation, versions and cancel.

mod support;

use std::sync::{Arc, Mutex};

use axum::Json;
use axum::routing::post;
use reqwest::Method;
use serde_json::{Value, json};
use support::{Stack, problem, serve, start};
use tdev_domain::auth::AuthStore;

/// An HTTP agent on an ephemeral port: answers with `answer(inputs)` and keeps every
/// payload it was sent.
async fn agent(answer: fn(&Value) -> Value) -> (String, Arc<Mutex<Vec<Value>>>) {
    let seen = Arc::new(Mutex::new(Vec::new()));
    let log = seen.clone();
    let app = axum::Router::new().route(
        "/",
        post(move |Json(payload): Json<Value>| {
            let log = log.clone();
            async move {
                let reply = answer(&payload["inputs"]);
                log.lock().unwrap().push(payload);
                Json(reply)
            }
        }),
    );
    (format!("{}/", serve(app).await), seen)
}

async fn register<S: AuthStore>(stack: &Stack<S>, key: &str, id: &str, url: &str) {
    let body = json!({"id": id, "name": id, "target": {"kind": "http", "url": url}});
    assert_eq!(stack.post_json("/v1/agents", key, &body).await.status(), 201);
}

const PIPELINE: &str = r#"
id: etl
name: Extract, transform, load
description: Three agents linked only by what they produce and read.
steps:
  - id: extract
    name: Extract
    type: agent
    agent_id: extractor
    inputs: [source]
    outputs: [raw_data]
  - id: transform
    name: Transform
    type: agent
    agent_id: transformer
    inputs: [raw_data]
    outputs: [clean_data]
  - id: load
    name: Load
    type: agent
    agent_id: loader
    inputs: [clean_data]
    outputs: [report]
"#;

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn an_etl_pipeline_runs_end_to_end_and_each_step_gets_the_previous_output() {
    let stack = start().await;
    let (_, key) = stack.create_key(&["agents:write", "workflows:run", "read"], None).await;
    let (extract_url, extracted) =
        agent(|inputs| json!({"raw_data": {"source": inputs["source"], "rows": [3, 1, 2]}})).await;
    let (transform_url, transformed) = agent(|inputs| {
        let mut rows: Vec<i64> =
            inputs["raw_data"]["rows"].as_array().unwrap().iter().map(|r| r.as_i64().unwrap() * 10).collect();
        rows.sort();
        json!({"clean_data": {"rows": rows}})
    })
    .await;
    let (load_url, loaded) =
        agent(|inputs| json!({"report": {"loaded": inputs["clean_data"]["rows"].as_array().unwrap().len()}}))
            .await;
    register(&stack, &key, "extractor", &extract_url).await;
    register(&stack, &key, "transformer", &transform_url).await;
    register(&stack, &key, "loader", &load_url).await;

    let validated: Value =
        stack.post_yaml("/v1/workflows:validate", &key, PIPELINE).await.json().await.unwrap();
    assert_eq!(validated["valid"], true, "{validated}");

    let stored = stack.post_yaml("/v1/workflows", &key, PIPELINE).await;
    assert_eq!(stored.status(), 201);
    assert_eq!(stored.headers()["location"], "/v1/workflows/etl/versions/1.0.0");

    let started = stack
        .post_json("/v1/workflows/etl/runs", &key, &json!({"inputs": {"source": "s3://bucket/raw.csv"}}))
        .await;
    assert_eq!(started.status(), 202);
    let run: Value = started.json().await.unwrap();
    let run_id = run["id"].as_str().unwrap();

    let ended = stack.run_end(&key, run_id).await;
    assert_eq!(ended["status"], "succeeded", "{ended}");
    assert_eq!(extracted.lock().unwrap()[0]["inputs"], json!({"source": "s3://bucket/raw.csv"}));
    assert_eq!(
        transformed.lock().unwrap()[0]["inputs"],
        json!({"raw_data": {"source": "s3://bucket/raw.csv", "rows": [3, 1, 2]}}),
        "transform gets extract's output"
    );
    assert_eq!(
        loaded.lock().unwrap()[0]["inputs"],
        json!({"clean_data": {"rows": [10, 20, 30]}}),
        "load gets transform's"
    );
    let steps = ended["steps"].as_array().unwrap();
    let report = steps.iter().find(|s| s["step_id"] == "load").unwrap();
    assert_eq!(report["outputs"], json!({"report": {"loaded": 3}}));
    for step in steps {
        assert_eq!(
            (step["status"].as_str(), step["attempts"].as_u64()),
            (Some("succeeded"), Some(1)),
            "{step}"
        );
        assert!(step["started_at"].is_string() && step["finished_at"].is_string());
    }
    let listed = stack.get_json("/v1/runs?workflow_id=etl&status=succeeded", &key).await;
    assert_eq!(listed["runs"][0]["id"], run_id);
}

#[tokio::test]
async fn bad_workflows_get_every_error_with_its_location() {
    let stack = start().await;
    let (_, key) = stack.create_key(&["workflows:run", "read"], None).await;
    let post = |body: &'static str, content_type: &'static str| {
        stack
            .request(Method::POST, "/v1/workflows")
            .header("x-api-key", &key)
            .header("content-type", content_type)
            .body(body)
            .send()
    };
    let cyclic = r#"{"id": "c", "name": "c", "steps": [
        {"id": "a", "name": "a", "type": "agent", "agent_id": "x", "inputs": ["from_b"], "outputs": ["from_a"]},
        {"id": "b", "name": "b", "type": "agent", "agent_id": "x", "inputs": ["from_a"], "outputs": ["from_b"]}]}"#;
    let body = problem(post(cyclic, "application/json").await.unwrap(), 422).await;
    assert!(body["errors"][0]["message"].as_str().unwrap().contains("a → b → a"), "{body}");

    let broken = r#"{"id": "d", "name": "d", "steps": [
        {"id": "a", "name": "a", "type": "agent"},
        {"id": "a", "name": "again", "type": "teleport"}], "dependencies": {"a": ["ghost"]}}"#;
    let body = problem(post(broken, "application/json").await.unwrap(), 422).await;
    let paths: Vec<&str> =
        body["errors"].as_array().unwrap().iter().map(|e| e["path"].as_str().unwrap()).collect();
    assert!(paths.contains(&"$.steps[0].agent_id"), "{paths:?}");
    assert!(paths.contains(&"$.steps[1].type"), "{paths:?}");
    assert!(paths.iter().any(|p| p.starts_with("$.dependencies")), "{paths:?}");

    let yaml_syntax = "id: x\nname: [unclosed\n";
    let body = problem(post(yaml_syntax, "application/yaml").await.unwrap(), 400).await;
    assert!(body["detail"].as_str().unwrap().starts_with("line "), "{body}");
    problem(post("{}", "text/plain").await.unwrap(), 415).await;

    let v1 = r#"{"id": "v", "name": "v", "version": "1.0.0", "steps": [{"id": "a", "name": "a", "type": "agent", "agent_id": "x"}]}"#;
    let changed = r#"{"id": "v", "name": "v2", "version": "1.0.0", "steps": [{"id": "a", "name": "a", "type": "agent", "agent_id": "x"}]}"#;
    assert_eq!(post(v1, "application/json").await.unwrap().status(), 201);
    assert_eq!(
        post(v1, "application/json").await.unwrap().status(),
        201,
        "the same version again is harmless"
    );
    problem(post(changed, "application/json").await.unwrap(), 409).await;
    problem(
        stack.request(Method::GET, "/v1/workflows/nope").header("x-api-key", &key).send().await.unwrap(),
        404,
    )
    .await;
    problem(stack.post_json("/v1/workflows/etl-missing/runs", &key, &json!({})).await, 404).await;
}
