//! The conformance suite on the AWS backend, against moto speaking the real AWS wire
//! protocols. `infra/test.sh` starts moto and sets `TDEV_TEST_MOTO_URL`.

use std::sync::Arc;

use aws_config::{BehaviorVersion, Region, SdkConfig};
use aws_credential_types::Credentials;
use aws_credential_types::provider::SharedCredentialsProvider;
use tdev_aws::AwsStore;

fn moto_config() -> SdkConfig {
    let url = std::env::var("TDEV_TEST_MOTO_URL").unwrap_or_else(|_| {
        panic!(
            "TDEV_TEST_MOTO_URL is not set: these tests need a moto server. Run the project's \
             test command, infra/test.sh, which starts moto and sets it (or start \
             `moto_server -p 5123` and set TDEV_TEST_MOTO_URL=http://127.0.0.1:5123)"
        )
    });
    // Everything explicit, so no environment variable or profile file can point the
    // tests at a real account.
    SdkConfig::builder()
        .behavior_version(BehaviorVersion::latest())
        .region(Region::new("us-east-1"))
        .endpoint_url(url)
        .credentials_provider(SharedCredentialsProvider::new(Credentials::new(
            "testing",
            "testing",
            None,
            None,
            "tdev-tests",
        )))
        .build()
}

fn unique_table(purpose: &str) -> String {
    let nanos = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_nanos();
    format!("tdev-test-{purpose}-{}-{nanos}", std::process::id())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn the_aws_store_passes_the_conformance_suite_on_moto() {
    let store = AwsStore::new(&moto_config(), unique_table("conformance"));
    store.ensure_table().await.unwrap();
    tdev_conformance::run_all(Arc::new(store)).await;
}

#[tokio::test]
async fn ensure_table_is_idempotent() {
    let store = AwsStore::new(&moto_config(), unique_table("idempotent"));
    store.ensure_table().await.unwrap();
    store.ensure_table().await.unwrap();
    let again = AwsStore::new(&moto_config(), store.table());
    again.ensure_table().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn runs_and_workflows_conform_on_moto() {
    let store = AwsStore::new(&moto_config(), unique_table("runs"));
    store.ensure_table().await.unwrap();
    tdev_conformance::runs::runs(Arc::new(store.clone())).await;
    tdev_conformance::runs::workflows(&store).await;
}
