//! The local stack on the AWS backend (`tdev serve --backend aws`), against moto: the
//! same user scenarios as on the embedded backend, through HTTP.

mod support;

use reqwest::Method;
use serde_json::Value;
use support::{scenarios, start_on};
use tdev_aws::{AwsStore, SqsQueues};
use tdev_domain::messaging::{Bands, MessagingConfig};

async fn moto_store() -> AwsStore {
    let endpoint = std::env::var("TDEV_TEST_MOTO_URL").unwrap_or_else(|_| {
        panic!(
            "TDEV_TEST_MOTO_URL is not set: run the project's test command, infra/test.sh, which starts moto"
        )
    });
    // The standard configuration chain, as `tdev serve --backend aws` and the Lambda
    // functions use it, pointed at moto.
    unsafe {
        std::env::set_var("AWS_ENDPOINT_URL", &endpoint);
        std::env::set_var("AWS_REGION", "us-east-1");
        std::env::set_var("AWS_ACCESS_KEY_ID", "testing");
        std::env::set_var("AWS_SECRET_ACCESS_KEY", "testing");
        std::env::set_var("TDEV_TABLE", format!("tdev-stack-{}", now_nanos()));
        std::env::set_var("TDEV_DEPLOYMENTS_TABLE", format!("tdev-deployments-{}", now_nanos()));
    }
    let store = AwsStore::from_env().await.expect("store");
    store.ensure_table().await.expect("table");
    store
}

fn now_nanos() -> u128 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_nanos()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_user_scenarios_pass_on_the_aws_backend() {
    let mut config = tdev_conformance::test_auth_config();
    config.signing_secret = format!("tdev/signing-key-{}", now_nanos());
    let store = moto_store().await;
    let sdk = aws_config::load_defaults(aws_config::BehaviorVersion::latest()).await;
    let messaging = MessagingConfig {
        bands: Bands::default(),
        envelope_secret: format!("tdev/envelope-key-{}", now_nanos()),
        ..MessagingConfig::default()
    };
    let queues =
        SqsQueues::ensure(&sdk, store.table(), tdev::stack::queues(&messaging)).await.expect("queues");
    let stack = start_on(store, queues, tdev_platforms::AwsPlatforms::new(&sdk), config, messaging).await;
    scenarios::quickstart(&stack).await;
    scenarios::hostile_credentials(&stack).await;
    scenarios::revocation(&stack).await;
    scenarios::agent_registry(&stack).await;
    agentcore_deployments(&stack, &sdk).await;
    let health: Value = stack.request(Method::GET, "/health").send().await.unwrap().json().await.unwrap();
    assert_eq!(health["status"], "ok", "{health}");
    assert_eq!(health["components"][0]["name"], "dynamodb");
}

/// The AgentCore Runtime target through the whole pipeline on moto: create (version 1),
/// update (version 2, the endpoint moves), roll back (the endpoint serves 1 again), with
/// the history and every deployment's events.
async fn agentcore_deployments(stack: &support::Stack<AwsStore, SqsQueues>, sdk: &aws_config::SdkConfig) {
    let name = format!("bot_{}", now_nanos() % 1_000_000_000_000);
    let spec = |tag: &str| {
        serde_json::json!({
            "name": name,
            "agent_role_arn": "arn:aws:iam::123456789012:role/tdev-agent-bot",
            "target": {
                "kind": "agentcore-runtime",
                "artifact": format!("123456789012.dkr.ecr.us-east-1.amazonaws.com/bot:{tag}"),
                "environment": {"MODE": tag},
            },
        })
    };
    let deploy = |body: Value| async move {
        let response = stack.post_json("/v1/deployments", &stack.admin_key, &body).await;
        response.json::<Value>().await.unwrap()
    };
    let first = deploy(spec("1")).await;
    let first = stack.deployment_end(first["id"].as_str().unwrap()).await;
    assert_eq!(
        (first["status"].as_str(), first["version"].as_str()),
        (Some("deployed"), Some("1")),
        "{first}"
    );
    let second = deploy(spec("2")).await;
    let second = stack.deployment_end(second["id"].as_str().unwrap()).await;
    assert_eq!(
        (second["status"].as_str(), second["version"].as_str(), second["previous_version"].as_str()),
        (Some("deployed"), Some("2"), Some("1")),
        "{second}"
    );
    let runtimes = tdev_platforms::AgentcoreRuntimes::new(sdk);
    let parsed: tdev_domain::deploy::AgentSpec = serde_json::from_value(spec("2")).unwrap();
    use tdev_domain::deploy::AgentDeployer as _;
    let serving = |s: Option<tdev_domain::deploy::Snapshot>| s.and_then(|s| s.serving_version);
    assert_eq!(
        serving(runtimes.snapshot(&parsed).await.unwrap()).as_deref(),
        Some("2"),
        "the endpoint moved"
    );

    let path = format!("/v1/deployments/{}/rollback", second["id"].as_str().unwrap());
    let rollback: Value =
        stack.post_json(&path, &stack.admin_key, &serde_json::json!({})).await.json().await.unwrap();
    let rollback = stack.deployment_end(rollback["id"].as_str().unwrap()).await;
    assert_eq!((rollback["status"].as_str(), rollback["version"].as_str()), (Some("rolled_back"), Some("1")));
    assert_eq!(
        serving(runtimes.snapshot(&parsed).await.unwrap()).as_deref(),
        Some("1"),
        "the endpoint is back"
    );

    let history = stack.get_json(&format!("/v1/deployed-agents/{name}/versions"), &stack.admin_key).await;
    let versions: Vec<(&str, &str)> = history["versions"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| (v["version"].as_str().unwrap(), v["kind"].as_str().unwrap()))
        .collect();
    assert_eq!(versions, [("1", "rollback"), ("2", "deploy"), ("1", "deploy")]);
    for (record, expected) in [
        (&first, &support::DEPLOYED_STATUSES[..]),
        (&second, &support::DEPLOYED_STATUSES[..]),
        (&rollback, &["pending", "backing_up", "rolling_back", "rolled_back"][..]),
    ] {
        let statuses = stack.deployment_statuses(record["id"].as_str().unwrap()).await;
        // Polls while the runtime becomes READY add no events; retries would, and there are none.
        assert_eq!(statuses, expected);
    }
}
