//! Deployments through the real HTTP surface of the local stack (the local target), and
//! the operator CLI (`tdev deploy`, `status`, `history`, `rollback`) run as a process
//! against it.

mod support;

use std::path::Path;
use std::process::Output;

use reqwest::Method;
use serde_json::{Value, json};
use support::{problem, start, start_paused, test_messaging};

fn spec(url: &str) -> Value {
    json!({
        "name": "support-bot",
        "description": "Answers support questions",
        "target": {"kind": "local", "url": url},
        "register": {"id": "support-bot", "capabilities": ["support"]},
    })
}

#[tokio::test]
async fn deploy_follow_and_roll_back_over_http() {
    let stack = start().await;
    let (_, writer) = stack.create_key(&["deployments:write"], None).await;
    let (_, reader) = stack.create_key(&["read"], None).await;
    // Reading is not deploying.
    problem(stack.post_json("/v1/deployments", &reader, &spec("http://127.0.0.1:9/a")).await, 403).await;

    let response = stack.post_json("/v1/deployments", &writer, &spec("http://127.0.0.1:9/a")).await;
    assert_eq!(response.status(), 202);
    let location = response.headers()["location"].to_str().unwrap().to_owned();
    let first: Value = response.json().await.unwrap();
    assert_eq!(location, format!("/v1/deployments/{}", first["id"].as_str().unwrap()));
    assert_eq!(first["status"], "pending");
    let first = stack.deployment_end(first["id"].as_str().unwrap()).await;
    assert_eq!((first["status"].as_str(), first["version"].as_str()), (Some("deployed"), Some("1")));

    // A YAML body works the same way.
    let yaml = "name: support-bot\ntarget: {kind: local, url: 'http://127.0.0.1:9/b'}\nregister: {id: support-bot}\n";
    let response = stack.post_yaml("/v1/deployments", &writer, yaml).await;
    assert_eq!(response.status(), 202);
    let second: Value = response.json().await.unwrap();
    let second = stack.deployment_end(second["id"].as_str().unwrap()).await;
    assert_eq!(second["version"], "2");

    let statuses = stack.deployment_statuses(second["id"].as_str().unwrap()).await;
    assert_eq!(statuses, support::DEPLOYED_STATUSES);

    let path = format!("/v1/deployments/{}/rollback", second["id"].as_str().unwrap());
    let response = stack.post_json(&path, &writer, &json!({"reason": "error_rate"})).await;
    assert_eq!(response.status(), 202);
    let rollback: Value = response.json().await.unwrap();
    assert_eq!(
        (rollback["kind"].as_str(), rollback["reason"].as_str()),
        (Some("rollback"), Some("error_rate"))
    );
    let rollback = stack.deployment_end(rollback["id"].as_str().unwrap()).await;
    assert_eq!((rollback["status"].as_str(), rollback["version"].as_str()), (Some("rolled_back"), Some("1")));

    let agent: Value = stack.get_json("/v1/agents/support-bot", &reader).await;
    assert_eq!(agent["target"]["url"], "http://127.0.0.1:9/a", "the registry serves version 1 again");

    let history: Value = stack.get_json("/v1/deployed-agents/support-bot/versions", &reader).await;
    let versions: Vec<(&str, bool)> = history["versions"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| (v["version"].as_str().unwrap(), v["current"].as_bool().unwrap()))
        .collect();
    assert_eq!(versions, [("1", true), ("2", false), ("1", false)]);

    let listed: Value = stack.get_json("/v1/deployments?agent=support-bot&status=deployed", &reader).await;
    let ids: Vec<&str> =
        listed["deployments"].as_array().unwrap().iter().map(|d| d["id"].as_str().unwrap()).collect();
    assert_eq!(ids, [second["id"].as_str().unwrap(), first["id"].as_str().unwrap()]);
}

#[tokio::test]
async fn a_bad_spec_is_a_problem_with_every_path_and_a_failed_record() {
    let stack = start().await;
    let mut bad = spec("not a url");
    bad["name"] = json!("support bot");
    bad["verify"] = json!({"timeout_seconds": 0});
    let body = problem(stack.post_json("/v1/deployments", &stack.admin_key, &bad).await, 422).await;
    let paths: Vec<&str> =
        body["errors"].as_array().unwrap().iter().map(|e| e["path"].as_str().unwrap()).collect();
    assert_eq!(paths, ["$.name", "$.target.url", "$.verify.timeout_seconds"]);
    let instance = body["instance"].as_str().expect("the failed record");
    let record: Value = stack.get_json(instance, &stack.admin_key).await;
    assert_eq!(record["status"], "failed");
    assert_eq!(record["agent"], "support bot");

    // Not YAML or JSON at all: a 400, nothing recorded.
    problem(stack.post_yaml("/v1/deployments", &stack.admin_key, "name: [unclosed").await, 400).await;

    // A listing's query that does not read is a problem too, at `$.query`.
    let response = stack
        .request(Method::GET, "/v1/deployments?status=sideways")
        .header("x-api-key", &stack.admin_key)
        .send()
        .await
        .unwrap();
    let body = problem(response, 422).await;
    assert_eq!(body["errors"][0]["path"], "$.query", "{body}");
}

#[tokio::test]
async fn two_concurrent_deploys_of_one_agent_one_gets_409() {
    let (stack, workers) = start_paused(test_messaging()).await;
    let send = || {
        stack
            .request(Method::POST, "/v1/deployments")
            .header("x-api-key", &stack.admin_key)
            .json(&spec("http://127.0.0.1:9/a"))
            .send()
    };
    let (a, b) = tokio::join!(send(), send());
    let mut statuses = [a.unwrap(), b.unwrap()].map(|r| r.status().as_u16());
    statuses.sort();
    assert_eq!(statuses, [202, 409]);
    workers();
    // An Idempotency-Key makes a retried POST harmless.
    let listed: Value = stack.get_json("/v1/deployments", &stack.admin_key).await;
    let id = listed["deployments"][0]["id"].as_str().unwrap().to_owned();
    stack.deployment_end(&id).await;
    let keyed = || {
        stack
            .request(Method::POST, "/v1/deployments")
            .header("x-api-key", &stack.admin_key)
            .header("idempotency-key", "release-42")
            .json(&spec("http://127.0.0.1:9/b"))
            .send()
    };
    let first: Value = keyed().await.unwrap().json().await.unwrap();
    let again = keyed().await.unwrap();
    assert_eq!(again.status(), 202);
    let again: Value = again.json().await.unwrap();
    assert_eq!(first["id"], again["id"]);
}

/// Runs `tdev` in `dir` against the API at `url` with `key`.
fn tdev(url: &str, key: &str, dir: &Path, args: &[String]) -> Output {
    std::process::Command::new(env!("CARGO_BIN_EXE_tdev"))
        .args(args)
        .current_dir(dir)
        .env("TDEV_URL", url)
        .env("TDEV_API_KEY", key)
        .env("HOME", dir)
        .env_remove("TDEV_CONFIG")
        .output()
        .expect("run tdev")
}

fn stdout(output: &Output) -> String {
    String::from_utf8_lossy(&output.stdout).into_owned()
}

/// The CLI against the local stack: its exit codes are its contract.
#[tokio::test(flavor = "multi_thread")]
async fn the_cli_deploys_shows_history_and_rolls_back() {
    let stack = start().await;
    let dir = std::env::temp_dir().join(format!("tdev-cli-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(
        dir.join("v1.yaml"),
        "name: helper\ntarget: {kind: local, url: 'http://127.0.0.1:9/v1'}\n",
    )
    .unwrap();
    std::fs::write(
        dir.join("v2.json"),
        r#"{"name": "helper", "target": {"kind": "local", "url": "http://127.0.0.1:9/v2"}}"#,
    )
    .unwrap();
    std::fs::write(dir.join("bad.yaml"), "name: helper\ntarget: {kind: local}\n").unwrap();
    let run = |args: Vec<String>| {
        let (dir, url, key) = (dir.clone(), stack.base.clone(), stack.admin_key.clone());
        tokio::task::spawn_blocking(move || tdev(&url, &key, &dir, &args))
    };
    let args = |a: &[&str]| a.iter().map(|s| s.to_string()).collect::<Vec<_>>();

    let out = run(args(&["deploy", "v1.yaml"])).await.unwrap();
    assert_eq!(out.status.code(), Some(0), "{}{}", stdout(&out), String::from_utf8_lossy(&out.stderr));
    let text = stdout(&out);
    for step in ["validating", "backing_up", "deploying", "preparing", "versioning", "verifying", "deployed"]
    {
        assert!(text.contains(step), "{step} not shown:\n{text}");
    }
    let out = run(args(&["deploy", "v2.json", "--json"])).await.unwrap();
    assert_eq!(out.status.code(), Some(0));
    let second: Value = serde_json::from_str(stdout(&out).trim()).expect("--json prints the record");
    assert_eq!(second["version"], "2");
    let second_id = second["id"].as_str().unwrap().to_owned();

    let out = run(args(&["deploy", "bad.yaml"])).await.unwrap();
    assert_eq!(out.status.code(), Some(2), "an invalid spec is refused");
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("$.target.url") && err.contains("recorded as /v1/deployments/"), "{err}");

    let out = run(args(&["deploy", "v1.yaml", "--dry-run"])).await.unwrap();
    assert_eq!(out.status.code(), Some(0));
    assert!(stdout(&out).starts_with("valid"), "{}", stdout(&out));

    let out = run(args(&["status", &second_id])).await.unwrap();
    assert_eq!(out.status.code(), Some(0));
    assert!(stdout(&out).contains("deployed (version 2, before 1)"), "{}", stdout(&out));

    let out = run(args(&["rollback", &second_id, "--reason", "health_check"])).await.unwrap();
    assert_eq!(out.status.code(), Some(0), "{}", stdout(&out));
    assert!(stdout(&out).contains("rolled_back (version 1, before 2)"), "{}", stdout(&out));

    let out = run(args(&["history", "helper"])).await.unwrap();
    assert_eq!(out.status.code(), Some(0));
    let lines: Vec<String> = stdout(&out).lines().map(str::to_owned).collect();
    assert_eq!(lines.len(), 3, "{lines:?}");
    assert!(lines[0].starts_with("* version 1") && lines[0].contains("rollback"), "{lines:?}");
    assert!(lines[1].starts_with("  version 2"), "{lines:?}");

    let out = run(args(&["status", "dep-nonexistent"])).await.unwrap();
    assert_eq!(out.status.code(), Some(2));
    let out = run(args(&["rollback", "dep-nonexistent"])).await.unwrap();
    assert_eq!(out.status.code(), Some(2));

    // A name is one path segment, however it is spelled: it cannot reach another path
    // (unescaped, this would be `/v1/deployed-agents/helper/versions`).
    let out = run(args(&["history", "helper/../helper"])).await.unwrap();
    assert_eq!(out.status.code(), Some(0));
    assert_eq!(stdout(&out).trim(), "helper/../helper: no version has served yet");

    // No API reachable: 3.
    let out = tdev("http://127.0.0.1:9", "k", &dir, &args(&["status", "x"]));
    assert_eq!(out.status.code(), Some(3));

    // The local stack's admin key is only sent to this machine: without a key, another
    // host is refused before any request.
    std::fs::create_dir_all(dir.join(".tdev")).unwrap();
    std::fs::write(dir.join(".tdev/admin-key"), &stack.admin_key).unwrap();
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_tdev"))
        .args(["status", "x"])
        .current_dir(&dir)
        .env("TDEV_URL", "https://api.example.com/prod")
        .env_remove("TDEV_API_KEY")
        .env("HOME", &dir)
        .env_remove("TDEV_CONFIG")
        .output()
        .expect("run tdev");
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("no API key for"), "{err}");
    std::fs::remove_dir_all(&dir).ok();
}
