//! Squad definitions through the real HTTP surface of the local stack: validate (every
//! problem at once, the registry's notices), store versions (immutable), read them back.

mod support;

use serde_json::{Value, json};
use support::{problem, start};

const BOARD: &str = r#"
id: answer-board
version: "1"
description: Three agents answer; the majority wins
members:
  - agent: alpha
  - capability: answer
    count: 2
aggregation:
  method: majority
  compare: /answer
"#;

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_squad_is_validated_stored_and_read_back() {
    let stack = start().await;
    let (_, key) = stack.create_key(&["agents:write", "workflows:run", "read"], None).await;

    // Nothing registered yet: valid, not runnable, and the notices say why.
    let report: Value = stack.post_yaml("/v1/squads:validate", &key, BOARD).await.json().await.unwrap();
    assert_eq!(report["valid"], true, "{report}");
    assert_eq!(report["runnable"], false);
    let notices: Vec<&str> =
        report["notices"].as_array().unwrap().iter().map(|n| n["path"].as_str().unwrap()).collect();
    assert_eq!(notices, ["$.members[0].agent", "$.members[1].capability"]);
    assert_eq!(report["squad"]["limits"]["max_concurrency"], 16, "defaults written out");

    for (id, capabilities) in [("alpha", vec!["answer"]), ("beta", vec!["answer"]), ("gamma", vec!["answer"])]
    {
        let body = json!({"id": id, "name": id, "target": {"kind": "http", "url": "http://127.0.0.1:9/"},
                          "capabilities": capabilities});
        assert_eq!(stack.post_json("/v1/agents", &key, &body).await.status(), 201);
    }
    let report: Value = stack.post_yaml("/v1/squads:validate", &key, BOARD).await.json().await.unwrap();
    assert_eq!((report["valid"].clone(), report["runnable"].clone()), (json!(true), json!(true)), "{report}");

    let created = stack.post_yaml("/v1/squads", &key, BOARD).await;
    assert_eq!(created.status(), 201);
    assert_eq!(created.headers()["location"], "/v1/squads/answer-board/versions/1");
    let created: Value = created.json().await.unwrap();
    assert!(created.get("notices").is_none(), "{created}");
    // The JSON spelling of the same squad is the same version: harmless.
    let as_json = stack.post_json("/v1/squads", &key, &created["definition"]).await;
    assert_eq!(as_json.status(), 201);
    // Other content under the same version: refused.
    let mut changed = created["definition"].clone();
    changed["description"] = json!("changed");
    problem(stack.post_json("/v1/squads", &key, &changed).await, 409).await;

    let latest = stack.get_json("/v1/squads/answer-board", &key).await;
    assert_eq!(latest["definition"], created["definition"]);
    assert_eq!(latest["content_hash"], created["content_hash"]);
    let v1 = stack.get_json("/v1/squads/answer-board/versions/1", &key).await;
    assert_eq!(v1["version"], "1");
    let missing = problem(
        stack
            .request(reqwest::Method::GET, "/v1/squads/answer-board/versions/2")
            .header("x-api-key", &key)
            .send()
            .await
            .unwrap(),
        404,
    )
    .await;
    assert!(missing["detail"].as_str().unwrap().contains("version \"2\""), "{missing}");
    problem(
        stack
            .request(reqwest::Method::GET, "/v1/squads/nobody")
            .header("x-api-key", &key)
            .send()
            .await
            .unwrap(),
        404,
    )
    .await;
    // A workflow of the same id is another thing.
    problem(
        stack
            .request(reqwest::Method::GET, "/v1/workflows/answer-board")
            .header("x-api-key", &key)
            .send()
            .await
            .unwrap(),
        404,
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_bad_squad_gets_every_problem_at_once_with_its_path() {
    let stack = start().await;
    let (_, key) = stack.create_key(&["workflows:run", "read"], None).await;
    let bad = json!({
        "id": "Bad Id", "version": "1",
        "members": [{"agent": "a", "wieght": 2}, {"capability": "answer", "count": 0}],
        "distribution": {"mode": "split"},
        "aggregation": {"method": "majority", "quorum": 2},
    });
    let body = problem(stack.post_json("/v1/squads", &key, &bad).await, 422).await;
    let paths: Vec<&str> =
        body["errors"].as_array().unwrap().iter().map(|e| e["path"].as_str().unwrap()).collect();
    assert_eq!(
        paths,
        [
            "$.members[0].wieght",
            "$.id",
            "$.members[1].count",
            "$.distribution.over",
            "$.aggregation.method",
            "$.aggregation.quorum"
        ],
        "{body}"
    );
    // The validate route reports the same problems in a 200.
    let report: Value = stack.post_json("/v1/squads:validate", &key, &bad).await.json().await.unwrap();
    assert_eq!(report["valid"], false);
    assert_eq!(report["errors"].as_array().unwrap().len(), paths.len(), "{report}");
    // Not JSON at all: a 400 that says where.
    let broken = stack
        .request(reqwest::Method::POST, "/v1/squads")
        .header("x-api-key", &key)
        .header("content-type", "application/json")
        .body("{\"id\": ")
        .send()
        .await
        .unwrap();
    let body = problem(broken, 400).await;
    assert!(body["detail"].as_str().unwrap().contains("not JSON"), "{body}");
    // Storing needs workflows:run.
    let (_, reader) = stack.create_key(&["read"], None).await;
    problem(stack.post_yaml("/v1/squads", &reader, BOARD).await, 403).await;
}

/// An HTTP agent on an ephemeral port that answers `{"answer": <answer>}` to everything.
async fn answering(answer: &'static str) -> String {
    let app = axum::Router::new().route(
        "/",
        axum::routing::post(
            move || async move { axum::Json(json!({"answer": answer, "note": "from an agent"})) },
        ),
    );
    format!("{}/", support::serve(app).await)
}

async fn register<S: tdev_domain::auth::AuthStore, Q>(
    stack: &support::Stack<S, Q>,
    key: &str,
    id: &str,
    url: &str,
    capability: &str,
) {
    let body =
        json!({"id": id, "name": id, "target": {"kind": "http", "url": url}, "capabilities": [capability]});
    assert_eq!(stack.post_json("/v1/agents", key, &body).await.status(), 201);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn three_agents_vote_and_one_disagrees_through_http() {
    let stack = start().await;
    let (_, key) = stack.create_key(&["agents:write", "workflows:run", "read"], None).await;
    register(&stack, &key, "alpha", &answering("blue").await, "answer").await;
    register(&stack, &key, "beta", &answering("blue").await, "answer").await;
    register(&stack, &key, "gamma", &answering("green").await, "answer").await;
    assert_eq!(stack.post_yaml("/v1/squads", &key, BOARD).await.status(), 201);

    let started =
        stack.post_json("/v1/squads/answer-board/tasks", &key, &json!({"input": {"question": "sky?"}})).await;
    assert_eq!(started.status(), 202);
    let location = started.headers()["location"].to_str().unwrap().to_owned();
    let task: Value = started.json().await.unwrap();
    assert_eq!(location, format!("/v1/squad-tasks/{}", task["id"].as_str().unwrap()));
    let seats: Vec<&str> =
        task["seats"].as_array().unwrap().iter().map(|s| s["agent"].as_str().unwrap()).collect();
    assert_eq!(seats, ["alpha", "beta", "gamma"], "the agent member, then two chosen by capability");

    let done = stack.task_end(&key, task["id"].as_str().unwrap()).await;
    assert_eq!(done["status"], "succeeded", "{done}");
    assert_eq!(done["result"], json!({"answer": "blue", "note": "from an agent"}));
    let winner = &done["tally"]["answers"][done["tally"]["winner"].as_u64().unwrap() as usize];
    assert_eq!((winner["value"].clone(), winner["votes"].clone()), (json!("blue"), json!(2)), "{done}");
    let assignments = done["assignments"].as_array().unwrap();
    assert!(assignments.len() >= 2 && assignments.iter().all(|a| a["kind"] == "answer"), "{done}");
    // Listed, filtered; ended, so not cancellable.
    let listed = stack.get_json("/v1/squad-tasks?squad_id=answer-board&status=succeeded", &key).await;
    assert_eq!(listed["tasks"].as_array().unwrap().len(), 1);
    let ended = problem(stack.post_json(&format!("{location}/cancel"), &key, &json!(null)).await, 409).await;
    assert_eq!(ended["detail"], "the task has already ended (succeeded)", "{ended}");
    let events = stack.get_json("/v1/events?type=squad.task.*", &key).await;
    let kinds: Vec<&str> =
        events["events"].as_array().unwrap().iter().map(|e| e["type"].as_str().unwrap()).collect();
    assert!(kinds.contains(&"squad.task.started") && kinds.contains(&"squad.task.succeeded"), "{kinds:?}");

    // A seat that cannot be filled: a 422 naming it.
    let short = BOARD.replace("count: 2", "count: 5").replace("version: \"1\"", "version: \"2\"");
    assert_eq!(stack.post_yaml("/v1/squads", &key, &short).await.status(), 201);
    let refused =
        problem(stack.post_json("/v1/squads/answer-board/tasks", &key, &json!({})).await, 422).await;
    assert_eq!(refused["errors"][0]["path"], "$.members[1].capability", "{refused}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_workflow_step_gives_a_squad_its_task_end_to_end() {
    let stack = start().await;
    let (_, key) = stack.create_key(&["agents:write", "workflows:run", "read"], None).await;
    register(&stack, &key, "alpha", &answering("yes").await, "answer").await;
    register(&stack, &key, "beta", &answering("yes").await, "answer").await;
    register(&stack, &key, "gamma", &answering("no").await, "answer").await;
    let workflow = json!({
        "id": "decide", "name": "Decide", "version": "1",
        "steps": [{"id": "vote", "name": "Vote", "type": "squad", "parameters": {"squad": "answer-board"},
                   "inputs": ["question"], "outputs": ["answer"]}],
    });
    assert_eq!(stack.post_json("/v1/workflows", &key, &workflow).await.status(), 201);
    // Not stored yet: the run is refused at the step's squad.
    let refused = problem(
        stack.post_json("/v1/workflows/decide/runs", &key, &json!({"inputs": {"question": "q"}})).await,
        422,
    )
    .await;
    assert_eq!(refused["errors"][0]["path"], "$.steps[0].parameters.squad", "{refused}");

    assert_eq!(stack.post_yaml("/v1/squads", &key, BOARD).await.status(), 201);
    let run: Value = stack
        .post_json("/v1/workflows/decide/runs", &key, &json!({"inputs": {"question": "q"}}))
        .await
        .json()
        .await
        .unwrap();
    let done = stack.run_end(&key, run["id"].as_str().unwrap()).await;
    assert_eq!(done["status"], "succeeded", "{done}");
    assert_eq!(done["steps"][0]["outputs"], json!({"answer": "yes"}));
    let tasks = stack.get_json("/v1/squad-tasks?squad_id=answer-board", &key).await;
    let task = &tasks["tasks"][0];
    assert_eq!(task["parent"], json!({"run_id": run["id"], "step_id": "vote", "attempt": 1}));
    assert_eq!(task.get("input"), None, "the list leaves inputs out: they may be large");
    let view = stack.get_json(&format!("/v1/squad-tasks/{}", task["id"].as_str().unwrap()), &key).await;
    assert_eq!(view["input"], json!({"question": "q"}), "the step's inputs are the task's input");
}
