//! One error style on every write route, through the real HTTP surface of the local stack:
//! the same kinds of mistakes are sent to each route, and each answer has the same shape —
//! a 422 problem listing every problem with its JSON path and, for a near miss, a
//! suggestion; a 415 listing the media types taken; a 404 naming the missing thing's path.

mod support;

use reqwest::Method;
use serde_json::{Value, json};
use support::{Stack, problem, start, start_with_auth};
use tdev_domain::auth::AuthConfig;

/// A write route, a body it takes, and where in that body each kind of mistake goes.
struct Route {
    method: Method,
    path: &'static str,
    valid: Value,
    /// A field renamed to a near miss: `(field, typo)`.
    near: (&'static str, &'static str),
    /// A required field, as a JSON pointer, and its path.
    required: Option<(&'static str, &'static str)>,
    /// A field given a value of the wrong type: `(pointer, path, value)`.
    wrong_type: (&'static str, &'static str, Value),
    /// A value from a fixed set, misspelt: `(pointer, path, value, suggestion)`.
    enum_near: Option<(&'static str, &'static str, &'static str, &'static str)>,
    /// The media types the route takes.
    accepted: &'static [&'static str],
    /// `true` for the `:validate` routes, which report problems in a 200 answer.
    report: bool,
}

const JSON: &[&str] = &["application/json"];
const DOCUMENT: &[&str] = &["application/json", "application/yaml"];

fn routes() -> Vec<Route> {
    let spec = json!({
        "name": "support-bot",
        "description": "Answers",
        "target": {"kind": "local", "url": "http://127.0.0.1:9/a"},
        "register": {"id": "support-bot"},
    });
    let squad = json!({
        "id": "board", "version": "1",
        "members": [{"agent": "alpha"}, {"capability": "answer", "count": 2}],
        "aggregation": {"method": "majority"},
        "limits": {"max_concurrency": 4},
    });
    let workflow = json!({
        "id": "style-wf",
        "name": "Style",
        "version": "1",
        "steps": [{"id": "a", "name": "A", "type": "agent", "agent_id": "existing"}],
    });
    vec![
        Route {
            method: Method::POST,
            path: "/v1/agents",
            valid: json!({"id": "a1", "name": "A", "target": {"kind": "http", "url": "http://127.0.0.1:9/x"}}),
            near: ("name", "nmae"),
            required: Some(("/id", "$.id")),
            wrong_type: ("/capabilities", "$.capabilities", json!("extract")),
            enum_near: Some(("/target/kind", "$.target.kind", "htp", "http")),
            accepted: JSON,
            report: false,
        },
        Route {
            method: Method::PATCH,
            path: "/v1/agents/existing",
            valid: json!({"name": "B", "status": "draining"}),
            near: ("status", "stauts"),
            required: None,
            wrong_type: ("/max_concurrency", "$.max_concurrency", json!("many")),
            enum_near: Some(("/status", "$.status", "activ", "active")),
            accepted: JSON,
            report: false,
        },
        Route {
            method: Method::POST,
            path: "/v1/messages",
            valid: json!({"to_agent": "existing", "type": "task.assign", "priority": 3}),
            near: ("type", "tpye"),
            required: Some(("/type", "$.type")),
            wrong_type: ("/priority", "$.priority", json!("high")),
            enum_near: None,
            accepted: JSON,
            report: false,
        },
        Route {
            method: Method::POST,
            path: "/v1/messages:batch",
            valid: json!({"messages": [{"to_agent": "existing", "type": "t"}]}),
            near: ("messages", "mesages"),
            required: Some(("/messages/0/type", "$.messages[0].type")),
            wrong_type: ("/messages/0/metadata", "$.messages[0].metadata", json!("x")),
            enum_near: None,
            accepted: JSON,
            report: false,
        },
        Route {
            method: Method::POST,
            path: "/v1/dead-letters:redrive",
            valid: json!({"ids": ["x"], "priority": 2}),
            near: ("ids", "isd"),
            required: None,
            wrong_type: ("/all", "$.all", json!("yes")),
            enum_near: None,
            accepted: JSON,
            report: false,
        },
        Route {
            method: Method::POST,
            path: "/v1/dead-letters:purge",
            valid: json!({"ids": ["x"]}),
            near: ("ids", "idz"),
            required: Some(("/ids", "$.ids")),
            wrong_type: ("/ids", "$.ids", json!("x")),
            enum_near: None,
            accepted: JSON,
            report: false,
        },
        Route {
            method: Method::POST,
            path: "/v1/subscriptions",
            valid: json!({"pattern": "message.*", "target": {"kind": "webhook", "url": "http://127.0.0.1:9/h"}}),
            near: ("pattern", "patern"),
            required: Some(("/target/url", "$.target.url")),
            wrong_type: ("/pattern", "$.pattern", json!(5)),
            enum_near: Some(("/target/kind", "$.target.kind", "webhok", "webhook")),
            accepted: JSON,
            report: false,
        },
        Route {
            method: Method::POST,
            path: "/v1/keys",
            valid: json!({"name": "k", "scopes": ["read"]}),
            near: ("scopes", "scops"),
            required: Some(("/name", "$.name")),
            wrong_type: ("/rate_limit", "$.rate_limit", json!(100)),
            enum_near: Some(("/scopes/0", "$.scopes[0]", "raed", "read")),
            accepted: JSON,
            report: false,
        },
        Route {
            method: Method::POST,
            path: "/v1/tokens",
            valid: json!({"ttl_seconds": 60, "scopes": ["read"]}),
            near: ("ttl_seconds", "ttl_second"),
            required: None,
            wrong_type: ("/ttl_seconds", "$.ttl_seconds", json!("soon")),
            enum_near: Some(("/scopes/0", "$.scopes[0]", "raed", "read")),
            accepted: JSON,
            report: false,
        },
        Route {
            method: Method::POST,
            path: "/v1/deployments",
            valid: spec.clone(),
            near: ("description", "descripton"),
            required: Some(("/target/kind", "$.target.kind")),
            wrong_type: ("/register", "$.register", json!("yes")),
            enum_near: Some(("/target/kind", "$.target.kind", "locl", "local")),
            accepted: DOCUMENT,
            report: false,
        },
        Route {
            method: Method::POST,
            path: "/v1/deployments:validate",
            valid: spec,
            near: ("description", "descripton"),
            required: Some(("/target/kind", "$.target.kind")),
            wrong_type: ("/target", "$.target", json!("local")),
            enum_near: Some(("/target/kind", "$.target.kind", "agnetcore_runtime", "agentcore_runtime")),
            accepted: DOCUMENT,
            report: true,
        },
        Route {
            method: Method::POST,
            path: "/v1/deployments/nope/rollback",
            valid: json!({"reason": "manual"}),
            near: ("reason", "reasn"),
            required: None,
            wrong_type: ("/to_version", "$.to_version", json!(5)),
            enum_near: Some(("/reason", "$.reason", "manul", "manual")),
            accepted: JSON,
            report: false,
        },
        Route {
            method: Method::POST,
            path: "/v1/workflows",
            valid: workflow.clone(),
            near: ("name", "nmae"),
            required: Some(("/id", "$.id")),
            wrong_type: ("/steps", "$.steps", json!("fetch")),
            enum_near: Some(("/steps/0/type", "$.steps[0].type", "agnet", "agent")),
            accepted: DOCUMENT,
            report: false,
        },
        Route {
            method: Method::POST,
            path: "/v1/workflows:validate",
            valid: workflow,
            near: ("version", "verison"),
            required: Some(("/steps/0/name", "$.steps[0].name")),
            wrong_type: ("/timeout", "$.timeout", json!("soon")),
            enum_near: Some(("/steps/0/type", "$.steps[0].type", "servcie", "service")),
            accepted: DOCUMENT,
            report: true,
        },
        Route {
            method: Method::POST,
            path: "/v1/squads",
            valid: squad.clone(),
            near: ("members", "membres"),
            required: Some(("/version", "$.version")),
            wrong_type: ("/members", "$.members", json!("alpha")),
            enum_near: Some(("/aggregation/method", "$.aggregation.method", "majorty", "majority")),
            accepted: DOCUMENT,
            report: false,
        },
        Route {
            method: Method::POST,
            path: "/v1/squads:validate",
            valid: squad,
            near: ("version", "verison"),
            required: Some(("/id", "$.id")),
            wrong_type: ("/limits/max_concurrency", "$.limits.max_concurrency", json!("many")),
            enum_near: Some(("/members/0/role", "$.members[0].role", "leader", "lead")),
            accepted: DOCUMENT,
            report: true,
        },
        Route {
            method: Method::POST,
            path: "/v1/workflows/nope/runs",
            valid: json!({"inputs": {}}),
            near: ("inputs", "inptus"),
            required: None,
            wrong_type: ("/inputs", "$.inputs", json!([1])),
            enum_near: None,
            accepted: JSON,
            report: false,
        },
    ]
}

/// `value` with `pointer` set (its parent must exist).
fn set(mut value: Value, pointer: &str, to: Value) -> Value {
    if let Some(slot) = value.pointer_mut(pointer) {
        *slot = to;
        return value;
    }
    let (parent, key) = pointer.rsplit_once('/').unwrap();
    let parent = if parent.is_empty() { &mut value } else { value.pointer_mut(parent).unwrap() };
    parent.as_object_mut().unwrap().insert(key.to_owned(), to);
    value
}

fn remove(mut value: Value, pointer: &str) -> Value {
    let (parent, key) = pointer.rsplit_once('/').unwrap();
    let parent = if parent.is_empty() { &mut value } else { value.pointer_mut(parent).unwrap() };
    match parent {
        Value::Object(map) => {
            map.remove(key);
        }
        Value::Array(items) => {
            items.remove(key.parse().unwrap());
        }
        _ => panic!("{pointer}"),
    }
    value
}

fn rename(mut value: Value, field: &str, to: &str) -> Value {
    let map = value.as_object_mut().unwrap();
    let moved = map.remove(field).unwrap();
    map.insert(to.to_owned(), moved);
    value
}

/// Sends `body` to the route and returns its problems as `(path, message)`, checking the
/// answer's shape: a 422 validation problem (or, for the validate route, a 200 report).
async fn problems(stack: &Stack, route: &Route, body: &Value) -> Vec<(String, String)> {
    let response = stack
        .request(route.method.clone(), route.path)
        .header("x-api-key", &stack.admin_key)
        .json(body)
        .send()
        .await
        .unwrap();
    let expected = if route.report { 200 } else { 422 };
    if response.status() != expected {
        let status = response.status();
        panic!("{} {} with {body}: {status} {}", route.method, route.path, response.text().await.unwrap());
    }
    let answer = if route.report {
        assert_eq!(response.status(), 200, "{} {}", route.method, route.path);
        let report: Value = response.json().await.unwrap();
        assert_eq!(report["valid"], false, "{report}");
        report
    } else {
        let problem = problem(response, 422).await;
        assert_eq!(problem["type"], "urn:tdev:problem:validation", "{problem}");
        problem
    };
    answer["errors"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| (e["path"].as_str().unwrap().to_owned(), e["message"].as_str().unwrap().to_owned()))
        .collect()
}

fn find<'a>(found: &'a [(String, String)], path: &str, route: &Route) -> &'a str {
    found
        .iter()
        .find(|(p, _)| p == path)
        .map(|(_, m)| m.as_str())
        .unwrap_or_else(|| panic!("{} {}: no problem at {path} in {found:?}", route.method, route.path))
}

#[tokio::test]
async fn every_write_route_answers_mistakes_the_same_way() {
    // Some two hundred requests with the admin key: more than its default burst.
    let plenty = tdev_domain::auth::RateLimit { capacity: 10_000, refill_per_minute: 10_000 };
    let stack =
        start_with_auth(AuthConfig { default_rate_limit: plenty, ..tdev_conformance::test_auth_config() })
            .await;
    let existing =
        json!({"id": "existing", "name": "E", "target": {"kind": "http", "url": "http://127.0.0.1:9/e"}});
    assert_eq!(stack.post_json("/v1/agents", &stack.admin_key, &existing).await.status(), 201);

    for route in routes() {
        let label = format!("{} {}", route.method, route.path);

        // An unknown field one slip from a known one: its path, and the known name.
        let (field, typo) = route.near;
        let found = problems(&stack, &route, &rename(route.valid.clone(), field, typo)).await;
        let message = find(&found, &format!("$.{typo}"), &route);
        assert!(
            message.starts_with(&format!("unknown field \"{typo}\" (did you mean \"{field}\"?)")),
            "{label}: {message}"
        );

        // An unknown field like no known one: no suggestion, but every known name.
        let far = set(route.valid.clone(), "/zzqxv", json!(1));
        let found = problems(&stack, &route, &far).await;
        let message = find(&found, "$.zzqxv", &route);
        assert!(
            message.starts_with("unknown field \"zzqxv\"; ") && message.contains(field),
            "{label}: {message}"
        );

        // A required field left out.
        if let Some((pointer, path)) = route.required {
            let found = problems(&stack, &route, &remove(route.valid.clone(), pointer)).await;
            assert!(find(&found, path, &route).starts_with("is required"), "{label}: {found:?}");
        }

        // A value of the wrong type.
        let (pointer, path, value) = route.wrong_type.clone();
        let found = problems(&stack, &route, &set(route.valid.clone(), pointer, value)).await;
        assert!(find(&found, path, &route).starts_with("must be "), "{label}: {found:?}");

        // A value from a fixed set, misspelt: the nearest allowed one is suggested.
        if let Some((pointer, path, value, suggestion)) = route.enum_near {
            let found = problems(&stack, &route, &set(route.valid.clone(), pointer, json!(value))).await;
            let message = find(&found, path, &route);
            assert!(message.contains(&format!("(did you mean \"{suggestion}\"?)")), "{label}: {message}");
        }

        // All of them at once: every one is listed.
        let mut body = rename(route.valid.clone(), field, typo);
        body = set(body, "/zzqxv", json!(1));
        let mut paths = vec![format!("$.{typo}"), "$.zzqxv".to_owned()];
        // (A mistake inside the renamed field is left out: it is no longer there.)
        let inside = |pointer: &str| pointer.split('/').nth(1) == Some(field);
        if !inside(route.wrong_type.0) {
            body = set(body, route.wrong_type.0, route.wrong_type.2.clone());
            paths.push(route.wrong_type.1.to_owned());
        }
        if let Some((pointer, path, value, _)) = route.enum_near
            && !pointer.starts_with(route.wrong_type.0)
            && !inside(pointer)
        {
            body = set(body, pointer, json!(value));
            paths.push(path.to_owned());
        }
        let found = problems(&stack, &route, &body).await;
        for path in &paths {
            find(&found, path, &route);
        }

        // A body that is not JSON (or YAML): 415, listing what the route takes.
        let response = stack
            .request(route.method.clone(), route.path)
            .header("x-api-key", &stack.admin_key)
            .header("content-type", "text/plain")
            .body(route.valid.to_string())
            .send()
            .await
            .unwrap();
        let problem = problem(response, 415).await;
        assert_eq!(problem["type"], "urn:tdev:problem:unsupported-media-type");
        let accepted: Vec<&str> =
            problem["accepted"].as_array().unwrap().iter().map(|t| t.as_str().unwrap()).collect();
        for media_type in route.accepted {
            assert!(accepted.contains(media_type), "{label}: {accepted:?}");
            assert!(problem["detail"].as_str().unwrap().contains(media_type), "{label}: {problem}");
        }
    }
}

#[tokio::test]
async fn a_missing_named_thing_is_a_404_with_the_path_of_its_name() {
    let stack = start().await;
    let key = stack.admin_key.clone();
    let cases: Vec<(Method, &str, Option<Value>, &str)> = vec![
        (Method::GET, "/v1/agents/nope", None, "$.path.id"),
        (Method::PATCH, "/v1/agents/nope", Some(json!({"name": "x"})), "$.path.id"),
        (Method::DELETE, "/v1/agents/nope", None, "$.path.id"),
        (Method::GET, "/v1/dead-letters/nope", None, "$.path.id"),
        (Method::DELETE, "/v1/subscriptions/nope", None, "$.path.id"),
        (Method::GET, "/v1/keys/nope", None, "$.path.id"),
        (Method::DELETE, "/v1/keys/nope", None, "$.path.id"),
        (Method::GET, "/v1/deployments/nope", None, "$.path.id"),
        (Method::GET, "/v1/deployments/nope/events", None, "$.path.id"),
        (Method::POST, "/v1/deployments/nope/rollback", None, "$.path.id"),
        (Method::GET, "/v1/workflows/nope", None, "$.path.id"),
        (Method::GET, "/v1/squads/nope", None, "$.path.id"),
        (Method::GET, "/v1/squads/nope/versions/1", None, "$.path.version"),
        (Method::GET, "/v1/runs/nope", None, "$.path.id"),
        (Method::POST, "/v1/messages", Some(json!({"to_agent": "nope", "type": "t"})), "$.to_agent"),
        (
            Method::POST,
            "/v1/messages:batch",
            Some(json!({"messages": [{"capability": "x", "type": "t"}, {"to_agent": "nope", "type": "t"}]})),
            "$.messages[1].to_agent",
        ),
        (Method::POST, "/v1/dead-letters:redrive", Some(json!({"ids": ["nope"]})), "$.ids[0]"),
    ];
    for (method, path, body, at) in cases {
        let mut request = stack.request(method.clone(), path).header("x-api-key", &key);
        if let Some(body) = &body {
            request = request.json(body);
        }
        let problem = problem(request.send().await.unwrap(), 404).await;
        assert_eq!(problem["type"], "urn:tdev:problem:not-found", "{method} {path}: {problem}");
        let errors = problem["errors"].as_array().unwrap();
        assert_eq!(errors.len(), 1, "{method} {path}: {problem}");
        assert_eq!(errors[0]["path"], at, "{method} {path}: {problem}");
        let message = errors[0]["message"].as_str().unwrap();
        assert!(message.contains("nope") || message.contains("API key"), "{method} {path}: {message}");
    }
}

#[tokio::test]
async fn target_kinds_are_spelt_one_way_and_the_other_is_read_as_an_alias() {
    let stack = start().await;
    let key = stack.admin_key.clone();
    // An agent's target in the deploy specs' older spelling.
    let agent = json!({"id": "kebab", "name": "K", "target": {"kind": "bedrock-agent", "agent_id": "A1", "alias_id": "L1"}});
    let response = stack.post_json("/v1/agents", &key, &agent).await;
    assert_eq!(response.status(), 201);
    let created: Value = response.json().await.unwrap();
    assert_eq!(created["target"]["kind"], "bedrock_agent");
    // A spec in the older spelling reads; the deployment answers in the canonical one.
    let spec = json!({
        "name": "kebab-bot",
        "target": {"kind": "agentcore-runtime", "artifact": "x/y:1"},
        "agent_role_arn": "arn:aws:iam::123456789012:role/r",
    });
    let report: Value = stack.post_json("/v1/deployments:validate", &key, &spec).await.json().await.unwrap();
    let errors = report["errors"].as_array().unwrap();
    assert!(errors.iter().all(|e| e["path"] != "$.target.kind"), "{report}");
    let response = stack.post_json("/v1/deployments", &key, &spec).await;
    let body: Value = response.json().await.unwrap();
    let id = body["id"]
        .as_str()
        .or_else(|| body["instance"].as_str().and_then(|i| i.rsplit('/').next()))
        .unwrap()
        .to_owned();
    let record = stack.get_json(&format!("/v1/deployments/{id}"), &key).await;
    assert_eq!(record["target"], "agentcore_runtime", "{record}");
}
