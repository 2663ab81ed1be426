//! The local stack on the AWS backend (`tdev serve --backend aws`), against moto: the
//! quickstart flow, hostile tokens, revocation and shared rate limits through HTTP.

mod support;

use reqwest::Method;
use serde_json::Value;
use support::{auth_config, now, problem, start_on};
use tdev_aws::AwsStore;
use tdev_conformance::tokens::SigningMaterial;

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
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_nanos()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_quickstart_flow_works_on_the_aws_backend() {
    let mut config = auth_config();
    config.signing_secret = format!("tdev/signing-key-{}", now_nanos());
    let stack = start_on(moto_store().await, config).await;

    let (id, key) = stack.create_key(&["read"], Some((3, 1))).await;
    let token = stack.token(&key).await;
    let whoami = stack
        .request(Method::GET, "/v1/whoami")
        .bearer_auth(&token)
        .send()
        .await
        .unwrap();
    assert_eq!(whoami.status(), 200);
    let body: Value = whoami.json().await.unwrap();
    assert_eq!(body["key_id"], id.as_str());
    assert_eq!(
        stack
            .request(Method::GET, "/v1/whoami")
            .bearer_auth(&token)
            .send()
            .await
            .unwrap()
            .status(),
        200
    );
    let limited = stack
        .request(Method::GET, "/v1/whoami")
        .bearer_auth(&token)
        .send()
        .await
        .unwrap();
    assert!(limited.headers().contains_key("retry-after"));
    problem(limited, 429).await;

    let (kid, secret) = stack.current_signing_key().await;
    let material = SigningMaterial {
        kid: &kid,
        secret: &secret,
        issuer: &stack.config.token.issuer,
        audience: &stack.config.token.audience,
        subject: &id,
        now: now(),
    };
    for (name, authorization) in material.bad_authorizations() {
        let response = stack
            .request(Method::GET, "/v1/whoami")
            .header("authorization", authorization)
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 401, "{name}");
    }

    let (reader_id, reader) = stack.create_key(&["read"], None).await;
    let revoke = stack
        .request(Method::DELETE, &format!("/v1/keys/{reader_id}"))
        .header("x-api-key", &stack.admin_key)
        .send()
        .await
        .unwrap();
    assert_eq!(revoke.status(), 204);
    problem(
        stack
            .request(Method::GET, "/v1/whoami")
            .header("x-api-key", &reader)
            .send()
            .await
            .unwrap(),
        401,
    )
    .await;
    problem(
        stack
            .request(Method::POST, "/v1/tokens")
            .header("x-api-key", &reader)
            .send()
            .await
            .unwrap(),
        401,
    )
    .await;

    let health: Value = stack
        .request(Method::GET, "/health")
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(health["status"], "ok", "{health}");
}
