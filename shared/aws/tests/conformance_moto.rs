//! The conformance suite on the AWS backend, against moto speaking the real AWS wire
//! protocols. `infra/test.sh` starts moto and sets `TDEV_TEST_MOTO_URL`.

mod support;

use std::sync::Arc;

use support::{moto_config, unique};
use tdev_aws::AwsStore;

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn the_aws_store_passes_the_conformance_suite_on_moto() {
    let store = AwsStore::new(&moto_config(), unique("conformance"));
    store.ensure_table().await.unwrap();
    tdev_conformance::run_all(Arc::new(store)).await;
}

#[tokio::test]
async fn ensure_table_is_idempotent() {
    let store = AwsStore::new(&moto_config(), unique("idempotent"));
    store.ensure_table().await.unwrap();
    store.ensure_table().await.unwrap();
    let again = AwsStore::new(&moto_config(), store.table());
    again.ensure_table().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn runs_workflows_and_tasks_conform_on_moto() {
    let store = AwsStore::new(&moto_config(), unique("runs"));
    store.ensure_table().await.unwrap();
    tdev_conformance::runs::runs(Arc::new(store.clone())).await;
    tdev_conformance::runs::workflows(&store).await;
    tdev_conformance::tasks::tasks(Arc::new(store)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn messaging_stores_conform_on_moto() {
    let store = AwsStore::new(&moto_config(), unique("messaging"));
    store.ensure_table().await.unwrap();
    tdev_conformance::messaging::run_all(&store).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn deployment_store_conforms_on_moto_in_its_own_table() {
    let store = AwsStore::new(&moto_config(), unique("main")).with_deployments_table(unique("deployments"));
    assert_ne!(store.deployments_table(), store.table());
    store.ensure_table().await.unwrap();
    store.ensure_table().await.unwrap();
    tdev_conformance::deployments::run_all(&store).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn deployment_store_conforms_on_moto_in_the_main_table() {
    let store = AwsStore::new(&moto_config(), unique("shared"));
    assert_eq!(store.deployments_table(), store.table());
    store.ensure_table().await.unwrap();
    tdev_conformance::deployments::run_all(&store).await;
}
