//! Workflows written for the system this replaces, through the real HTTP surface (issue
//! 12): stored unchanged though their service steps name no target, a run refused with
//! every step that lacks one, then run once a default target is given; agents not
//! registered found when a workflow is stored and named at run start; field errors and
//! cycles reported together; a run's steps listed in the plan's order.

mod support;

use axum::Json;
use axum::routing::post;
use reqwest::{Method, Response};
use serde_json::{Value, json};
use support::{Stack, problem, start};

fn seed(file: &str) -> String {
    let path = format!("{}/shared/domain/tests/fixtures/seed/{file}", env!("CARGO_MANIFEST_DIR"));
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{path}: {e}"))
}

async fn send(
    stack: &Stack,
    key: &str,
    method: Method,
    path: &str,
    yaml: Option<&str>,
    json: Option<&Value>,
) -> Response {
    let mut request = stack.request(method, path).header("x-api-key", key);
    if let Some(text) = yaml {
        request = request.header("content-type", "application/yaml").body(text.to_owned());
    }
    if let Some(body) = json {
        request = request.json(body);
    }
    request.send().await.unwrap()
}

/// An HTTP agent answering every call with `reply`.
async fn agent(reply: Value) -> String {
    let app = axum::Router::new().route("/", post(move || async move { Json(reply.clone()) }));
    format!("{}/", support::serve(app).await)
}

fn paths(problem: &Value) -> Vec<&str> {
    problem["errors"].as_array().unwrap().iter().map(|e| e["path"].as_str().unwrap()).collect()
}

/// Validates `yaml`, asserting it is valid but not runnable; the report.
async fn valid_not_runnable(stack: &Stack, key: &str, yaml: &str) -> Value {
    let response = send(stack, key, Method::POST, "/v1/workflows:validate", Some(yaml), None).await;
    let report: Value = response.json().await.unwrap();
    assert_eq!(
        (report["valid"].clone(), report["runnable"].clone()),
        (json!(true), json!(false)),
        "{report:#}"
    );
    report
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_seed_workflow_is_stored_refused_a_run_and_runs_once_it_has_a_default_target() {
    let stack = start().await;
    let (_, key) = stack.create_key(&["agents:write", "workflows:run", "read"], None).await;
    let text = seed("anchored_defaults.yaml");

    // Validated unchanged: valid, planned, one not-runnable notice for the four steps.
    let report = valid_not_runnable(&stack, &key, &text).await;
    assert_eq!(report["plan"]["levels"], json!([["research"], ["outline", "write"], ["edit"]]));
    assert_eq!(report["notices"].as_array().unwrap().len(), 1, "{report:#}");
    assert_eq!(report["notices"][0]["kind"], "not_runnable");

    // Stored unchanged, with the same notice.
    let stored = send(&stack, &key, Method::POST, "/v1/workflows", Some(&text), None).await;
    assert_eq!(stored.status(), 201);
    let stored: Value = stored.json().await.unwrap();
    assert_eq!(stored["notices"][0]["kind"], "not_runnable", "{stored:#}");
    assert_eq!(stored["notices"][0]["steps"].as_array().unwrap().len(), 4);

    // A run is refused before anything runs, naming every step and how to give a target.
    let start_run = json!({"inputs": {"topic": "rust"}});
    let refused =
        send(&stack, &key, Method::POST, "/v1/workflows/anchored-defaults/runs", None, Some(&start_run))
            .await;
    let refused = problem(refused, 422).await;
    assert_eq!(
        paths(&refused),
        (0..4).map(|i| format!("$.steps[{i}].parameters.target")).collect::<Vec<_>>(),
        "{refused:#}"
    );
    for error in refused["errors"].as_array().unwrap() {
        assert!(error["message"].as_str().unwrap().contains("defaults.target"), "{error}");
    }
    let runs = stack.get_json("/v1/runs?workflow_id=anchored-defaults", &key).await;
    assert_eq!(runs["runs"], json!([]), "no run was created");

    // Version 2 names a default target: an agent not registered yet, a warning on store...
    let anchored =
        "defaults: &d\n  timeout: 30\n  retry_policy:\n    max_attempts: 3\n    backoff_factor: 2\n";
    let beside = "version: \"2.0.0\"\ndefaults:\n  target: {kind: agent, agent_id: writer}\n  common: &d\n    \
                  timeout: 30\n    retry_policy:\n      max_attempts: 3\n      backoff_factor: 2\n";
    let v2 = text.replacen(anchored, beside, 1);
    assert_ne!(v2, text);
    let stored = send(&stack, &key, Method::POST, "/v1/workflows", Some(&v2), None).await;
    assert_eq!(stored.status(), 201);
    let stored: Value = stored.json().await.unwrap();
    assert_eq!(stored["notices"].as_array().unwrap().len(), 1, "{stored:#}");
    assert_eq!(stored["notices"][0]["kind"], "unknown_agents");
    assert_eq!(stored["notices"][0]["agents"], json!(["writer"]));
    assert_eq!(stored["notices"][0]["references"][0]["path"], "$.defaults.target.agent_id");

    // ...and a refusal at run start, naming the agent for each step that calls it.
    let refused =
        send(&stack, &key, Method::POST, "/v1/workflows/anchored-defaults/runs", None, Some(&start_run))
            .await;
    let refused = problem(refused, 422).await;
    assert_eq!(paths(&refused), ["$.defaults.target.agent_id"; 4], "{refused:#}");
    assert!(
        refused["errors"][0]["message"].as_str().unwrap().contains("\"writer\", which is not registered")
    );
    assert!(!refused["detail"].as_str().unwrap().contains("refused the request"));

    // Registered: the run goes through, and its steps are listed in the plan's order.
    let url = agent(json!({"notes": "some notes"})).await;
    let body = json!({"id": "writer", "name": "writer", "target": {"kind": "http", "url": url}});
    assert_eq!(stack.post_json("/v1/agents", &key, &body).await.status(), 201);
    let started =
        send(&stack, &key, Method::POST, "/v1/workflows/anchored-defaults/runs", None, Some(&start_run))
            .await;
    assert_eq!(started.status(), 202);
    let run: Value = started.json().await.unwrap();
    assert_eq!(run["workflow_version"], "2.0.0");
    let ended = stack.run_end(&key, run["id"].as_str().unwrap()).await;
    assert_eq!(ended["status"], "succeeded", "{ended:#}");
    let order: Vec<&str> =
        ended["steps"].as_array().unwrap().iter().map(|s| s["step_id"].as_str().unwrap()).collect();
    assert_eq!(order, ["research", "outline", "write", "edit"], "by level, then file order");
}

#[tokio::test]
async fn unknown_agents_are_found_when_a_workflow_is_stored_and_refuse_a_run() {
    let stack = start().await;
    let (_, key) = stack.create_key(&["agents:write", "workflows:run", "read"], None).await;
    let workflow = r#"
id: agents
name: Agents named
steps:
  - {id: first, name: First, type: agent, agent_id: extractor, outputs: [items]}
  - {id: known, name: Known, type: agent, agent_id: registered}
  - id: each
    name: Each
    type: loop
    inputs: [items]
    outputs: [results]
    parameters: {over: items, agent_id: mapper}
  - {id: again, name: Again, type: agent, agent_id: extractor}
"#;
    let url = agent(json!({})).await;
    let body = json!({"id": "registered", "name": "registered", "target": {"kind": "http", "url": url}});
    assert_eq!(stack.post_json("/v1/agents", &key, &body).await.status(), 201);

    let report = valid_not_runnable(&stack, &key, workflow).await;
    assert_eq!(report["notices"][0]["kind"], "unknown_agents");

    let stored = send(&stack, &key, Method::POST, "/v1/workflows", Some(workflow), None).await;
    assert_eq!(stored.status(), 201, "agents may be registered later");
    let stored: Value = stored.json().await.unwrap();
    let notices = stored["notices"].as_array().unwrap();
    assert_eq!(notices.len(), 1, "{notices:#?}");
    assert_eq!(notices[0]["agents"], json!(["extractor", "mapper"]));
    assert_eq!(
        notices[0]["references"],
        json!([
            {"agent_id": "extractor", "step": "first", "path": "$.steps[0].agent_id"},
            {"agent_id": "mapper", "step": "each", "path": "$.steps[2].parameters.agent_id"},
            {"agent_id": "extractor", "step": "again", "path": "$.steps[3].agent_id"}
        ])
    );

    let refused = send(&stack, &key, Method::POST, "/v1/workflows/agents/runs", None, Some(&json!({}))).await;
    let refused = problem(refused, 422).await;
    assert_eq!(
        paths(&refused),
        ["$.steps[0].agent_id", "$.steps[2].parameters.agent_id", "$.steps[3].agent_id"],
        "{refused:#}"
    );
    let runs = stack.get_json("/v1/runs?workflow_id=agents", &key).await;
    assert_eq!(runs["runs"], json!([]), "nothing ran");
}

#[tokio::test]
async fn a_missing_field_and_a_cycle_are_reported_together() {
    let stack = start().await;
    let (_, key) = stack.create_key(&["workflows:run", "read"], None).await;
    let workflow = r#"
id: both
name: Both wrong
steps:
  - {id: a, name: A, type: service}
  - {id: b, type: service}
  - {id: c, name: C, type: service}
dependencies:
  a: [b]
  b: [a]
  c: [ghost]
"#;
    let report: Value = send(&stack, &key, Method::POST, "/v1/workflows:validate", Some(workflow), None)
        .await
        .json()
        .await
        .unwrap();
    let errors = report["errors"].as_array().unwrap();
    let kinds: Vec<(&str, &str)> = errors
        .iter()
        .map(|e| (e["kind"].as_str().unwrap(), e["path"].as_str().or(e["message"].as_str()).unwrap()))
        .collect();
    assert_eq!(
        kinds,
        [("field", "$.steps[1].name"), ("field", "$.dependencies.c[0]"), ("cycle", "cycle: a → b → a")],
        "{report:#}"
    );

    let refused = send(&stack, &key, Method::POST, "/v1/workflows", Some(workflow), None).await;
    let refused = problem(refused, 422).await;
    assert_eq!(paths(&refused), ["$.steps[1].name", "$.dependencies.c[0]", "$.dependencies"], "{refused:#}");
    assert!(refused["errors"][2]["message"].as_str().unwrap().contains("a → b → a"));
}

#[tokio::test]
async fn the_openapi_document_describes_notices_and_runnable() {
    let stack = start().await;
    let document: Value =
        stack.request(Method::GET, "/openapi.json").send().await.unwrap().json().await.unwrap();
    let schemas = &document["components"]["schemas"];
    let report = &schemas["ValidationReport"];
    for field in ["valid", "runnable", "errors", "notices"] {
        assert!(report["required"].as_array().unwrap().contains(&json!(field)), "{field}: {report:#}");
    }
    let kinds: Vec<&str> = schemas["Notice"]["oneOf"]
        .as_array()
        .unwrap_or_else(|| panic!("{:#}", schemas["Notice"]))
        .iter()
        .map(|variant| variant["properties"]["kind"]["enum"][0].as_str().unwrap())
        .collect();
    assert_eq!(kinds, ["not_runnable", "unknown_agents"]);
    assert!(
        schemas["WorkflowVersion"]["properties"]["notices"].is_object(),
        "{:#}",
        schemas["WorkflowVersion"]
    );
}
