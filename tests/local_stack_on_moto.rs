//! The local stack on the AWS backend (`tdev serve --backend aws`), against moto: the
//! same user scenarios as on the embedded backend, through HTTP.

mod support;

use reqwest::Method;
use serde_json::Value;
use support::{scenarios, start_on};
use tdev_aws::{AwsStore, SqsQueueSpec, SqsQueues};
use tdev_domain::messaging::{Bands, EVENT_DEAD_LETTER_QUEUE, EVENT_QUEUE, MessagingConfig};
use tdev_domain::runs::{STEP_DEAD_LETTER_QUEUE, STEP_MAX_RECEIVES, STEP_QUEUE};

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
    let mut specs =
        vec![SqsQueueSpec::with_dead_letter(STEP_QUEUE, STEP_DEAD_LETTER_QUEUE, STEP_MAX_RECEIVES)];
    for band in messaging.bands.bands() {
        specs.push(SqsQueueSpec::with_dead_letter(
            &band.queue,
            &band.dead_letter_queue,
            messaging.max_receives + 1,
        ));
    }
    specs.push(SqsQueueSpec::with_dead_letter(
        EVENT_QUEUE,
        EVENT_DEAD_LETTER_QUEUE,
        messaging.max_receives + 1,
    ));
    let queues = SqsQueues::ensure(&sdk, store.table(), specs).await.expect("queues");
    let stack = start_on(store, queues, config, messaging).await;
    scenarios::quickstart(&stack).await;
    scenarios::hostile_credentials(&stack).await;
    scenarios::revocation(&stack).await;
    scenarios::agent_registry(&stack).await;
    let health: Value = stack.request(Method::GET, "/health").send().await.unwrap().json().await.unwrap();
    assert_eq!(health["status"], "ok", "{health}");
    assert_eq!(health["components"][0]["name"], "dynamodb");
}
