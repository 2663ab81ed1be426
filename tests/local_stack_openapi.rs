//! The OpenAPI document tells the truth: every parameter is where the server reads it,
//! every link and reference resolves, and every status the server answers an operation
//! with is declared for it. The cases are made from the document itself, so a new route
//! is checked as soon as it is documented.

mod support;

use std::collections::{BTreeMap, BTreeSet};

use reqwest::Method;
use serde_json::Value;
use support::{MAX_BODY, problem};

const METHODS: [&str; 5] = ["get", "post", "put", "patch", "delete"];

/// Every operation: (method, path template, operation).
fn operations(document: &Value) -> Vec<(String, String, Value)> {
    let mut all = Vec::new();
    for (path, item) in document["paths"].as_object().expect("paths") {
        for method in METHODS {
            if let Some(operation) = item.get(method) {
                all.push((method.to_owned(), path.clone(), operation.clone()));
            }
        }
    }
    all
}

fn path_names(template: &str) -> BTreeSet<String> {
    template.split('{').skip(1).filter_map(|rest| rest.split('}').next()).map(str::to_owned).collect()
}

fn parameters<'a>(operation: &'a Value, place: &str) -> Vec<&'a Value> {
    operation["parameters"].as_array().into_iter().flatten().filter(|p| p["in"] == place).collect()
}

async fn document(stack: &support::Stack) -> Value {
    let response = stack.request(Method::GET, "/openapi.json").send().await.expect("send");
    assert_eq!(response.status(), 200);
    response.json().await.expect("the document")
}

#[tokio::test]
async fn every_parameter_is_where_the_server_reads_it_and_every_name_resolves() {
    let stack = support::start().await;
    let document = document(&stack).await;
    let all = operations(&document);
    assert!(all.len() >= 37, "{} operations", all.len());

    let mut ids = BTreeMap::new();
    for (method, path, operation) in &all {
        let id = operation["operationId"].as_str().unwrap_or_else(|| panic!("{method} {path}: no id"));
        if let Some(other) = ids.insert(id.to_owned(), format!("{method} {path}")) {
            panic!("{method} {path} and {other} share the id {id}");
        }
        let in_path: BTreeSet<String> =
            parameters(operation, "path").iter().map(|p| p["name"].as_str().unwrap().to_owned()).collect();
        assert_eq!(in_path, path_names(path), "{method} {path}: the path parameters are its {{names}}");
        for parameter in parameters(operation, "path") {
            assert_eq!(parameter["required"], true, "{method} {path}: {parameter}");
        }
        for parameter in parameters(operation, "query").into_iter().chain(parameters(operation, "header")) {
            assert_ne!(parameter["required"], true, "{method} {path}: every filter is optional: {parameter}");
        }
    }
    for (path, names) in [
        ("/v1/dead-letters", &["source_queue", "reason", "state", "limit"][..]),
        ("/v1/events", &["type", "since", "until", "limit"]),
        ("/v1/deployments", &["agent", "status", "limit"]),
        ("/v1/runs", &["workflow_id", "status"]),
    ] {
        let operation = &document["paths"][path]["get"];
        let query: Vec<&str> =
            parameters(operation, "query").iter().map(|p| p["name"].as_str().unwrap()).collect();
        assert_eq!(query, names, "GET {path}");
    }

    // Every link names an operation that exists, and every reference a schema.
    let text = document.to_string();
    for link in text.split("\"operationId\":\"").skip(1).filter_map(|rest| rest.split('"').next()) {
        assert!(ids.contains_key(link), "a link or operation names {link}");
    }
    assert!(!text.contains("operation_id"), "links spell operationId");
    let schemas = document["components"]["schemas"].as_object().expect("schemas");
    for reference in
        text.split("\"$ref\":\"#/components/schemas/").skip(1).filter_map(|r| r.split('"').next())
    {
        assert!(schemas.contains_key(reference), "a $ref to the missing schema {reference}");
    }
    let links =
        document["paths"]["/v1/keys"]["post"]["responses"]["201"]["links"].as_object().expect("links");
    assert_eq!(links["RevokeKey"]["operationId"], "revoke_key");

    // What the handlers answer, not another type of the same name.
    let events = &document["paths"]["/v1/deployments/{id}/events"]["get"]["responses"]["200"];
    assert_eq!(
        events["content"]["application/json"]["schema"]["$ref"],
        "#/components/schemas/DeploymentEventList"
    );
    // Events in the CloudEvents 1.0 JSON format.
    assert_eq!(schemas["Event"]["properties"]["time"]["format"], "date-time");
    let required: Vec<&str> =
        schemas["Event"]["required"].as_array().expect("required").iter().filter_map(Value::as_str).collect();
    for name in ["specversion", "id", "source", "type", "time", "subject", "datacontenttype", "data"] {
        assert!(required.contains(&name), "{name} is required: {required:?}");
    }
    // Limits the server enforces.
    let batch = &schemas["SendBatch"]["properties"]["messages"];
    assert_eq!((batch["minItems"].as_u64(), batch["maxItems"].as_u64()), (Some(1), Some(100)));
    assert_eq!(
        schemas["SendMessageRequest"]["oneOf"].as_array().map(Vec::len),
        Some(2),
        "to_agent or capability"
    );
    assert_eq!(schemas["NewApiKeyRequest"]["properties"]["scopes"]["minItems"], 1);
}

/// One request of the table: what to send to an operation, and what it must answer.
struct Case {
    what: &'static str,
    key: Option<String>,
    content_type: Option<&'static str>,
    body: Option<Vec<u8>>,
    query: &'static str,
    /// The status it must answer, when the case decides it.
    expect: Option<u16>,
}

#[tokio::test]
async fn every_status_a_route_answers_is_declared_for_it() {
    // Room for every unauthenticated request of the table: past the failed-authentication
    // bucket a 429 would hide the 401.
    let mut config = tdev_conformance::test_auth_config();
    config.failed_auth_limit =
        tdev_domain::auth::RateLimit { capacity: 1_000_000, refill_per_minute: 6_000_000 };
    let stack = support::start_with_auth(config).await;
    let document = document(&stack).await;
    // Keys with room for every request of the table (a 429 would hide the answer).
    let room = Some((1_000_000, 6_000_000));
    let (_, reader) = stack.create_key(&["read"], room).await;
    let (_, admin) = stack.create_key(&["admin"], room).await;
    let admin = Some(admin);
    let mut checked = 0;
    for (method, template, operation) in operations(&document) {
        let path = path_names(&template)
            .iter()
            .fold(template.clone(), |p, name| p.replace(&format!("{{{name}}}"), "nothing-here"));
        let guarded = operation["security"].as_array().is_some_and(|s| !s.is_empty());
        let has_body = operation.get("requestBody").is_some();
        let has_query = !parameters(&operation, "query").is_empty();
        let declared: BTreeSet<u16> =
            operation["responses"].as_object().unwrap().keys().map(|s| s.parse().unwrap()).collect();
        let json = Some("application/json");
        let mut cases = vec![
            Case {
                what: "no credentials",
                key: None,
                content_type: None,
                body: None,
                query: "",
                expect: guarded.then_some(401),
            },
            Case {
                what: "a read-only key",
                key: Some(reader.clone()),
                content_type: json,
                body: Some(b"{}".to_vec()),
                query: "",
                expect: None,
            },
            Case {
                what: "an empty object",
                key: admin.clone(),
                content_type: json,
                body: Some(b"{}".to_vec()),
                query: "",
                expect: None,
            },
            Case {
                what: "a list",
                key: admin.clone(),
                content_type: json,
                body: Some(b"[1, 2]".to_vec()),
                query: "",
                expect: None,
            },
        ];
        if has_body {
            cases.extend([
                Case {
                    what: "broken JSON",
                    key: admin.clone(),
                    content_type: json,
                    body: Some(b"{\"a\":".to_vec()),
                    query: "",
                    expect: None,
                },
                Case {
                    what: "plain text",
                    key: admin.clone(),
                    content_type: Some("text/plain"),
                    body: Some(b"hello".to_vec()),
                    query: "",
                    expect: Some(415),
                },
                Case {
                    what: "a body over the limit",
                    key: admin.clone(),
                    content_type: json,
                    body: Some(vec![b' '; MAX_BODY + 1]),
                    query: "",
                    expect: Some(413),
                },
            ]);
        }
        if has_query {
            cases.extend([
                Case {
                    what: "a bad filter",
                    key: admin.clone(),
                    content_type: None,
                    body: None,
                    query: "?limit=0",
                    expect: None,
                },
                Case {
                    what: "an unknown filter",
                    key: admin.clone(),
                    content_type: None,
                    body: None,
                    query: "?nope=1",
                    expect: Some(422),
                },
            ]);
        }
        for case in cases {
            let mut request = stack.request(
                Method::from_bytes(method.to_uppercase().as_bytes()).unwrap(),
                &format!("{path}{}", case.query),
            );
            if let Some(key) = &case.key {
                request = request.header("x-api-key", key);
            }
            if let Some(content_type) = case.content_type {
                request = request.header("content-type", content_type);
            }
            if let Some(body) = case.body {
                request = request.body(body);
            }
            let response = request.send().await.expect("send");
            let status = response.status().as_u16();
            let what = format!("{method} {template} with {}", case.what);
            assert!(status < 500, "{what}: {status}");
            assert!(declared.contains(&status), "{what}: {status} is not declared (declared: {declared:?})");
            if let Some(expected) = case.expect {
                assert_eq!(status, expected, "{what}");
            }
            if status >= 400 {
                problem(response, status).await;
            }
            checked += 1;
        }
        // An over-long URI is a 414 problem, declared everywhere.
        let long = format!("{path}?pad={}", "a".repeat(tdev_http::app::MAX_URI_BYTES));
        let response = stack
            .request(Method::from_bytes(method.to_uppercase().as_bytes()).unwrap(), &long)
            .header("x-api-key", admin.as_deref().unwrap_or_default())
            .send()
            .await
            .expect("send");
        assert!(declared.contains(&414), "{method} {template}: 414 is not declared");
        problem(response, 414).await;
    }
    assert!(checked > 150, "{checked} requests");
}
