//! The embedded backend against the one conformance suite, in memory and on a file.

use std::sync::Arc;

use tdev_embedded::SqliteStore;

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn in_memory_store_conforms() {
    tdev_conformance::run_all(Arc::new(SqliteStore::in_memory().unwrap())).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn file_store_conforms_and_keeps_data_across_reopen() {
    use tdev_domain::ports::SecretStore;
    let dir = std::env::temp_dir().join(format!("tdev-embedded-{}", uuid_like()));
    let path = dir.join("nested").join("tdev.db");
    let store = SqliteStore::open(&path).unwrap();
    tdev_conformance::run_all(Arc::new(store.clone())).await;
    let version = store.put_secret("persisted", "value-value-value-value-value-value").await.unwrap();
    drop(store);
    let reopened = SqliteStore::open(&path).unwrap();
    let versions = reopened.secret_versions("persisted").await.unwrap();
    assert_eq!(versions.current.version_id, version);
    std::fs::remove_dir_all(dir).unwrap();
}

fn uuid_like() -> String {
    let nanos = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_nanos();
    format!("{nanos}-{}", std::process::id())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn runs_workflows_and_tasks_conform() {
    let store = SqliteStore::in_memory().unwrap();
    tdev_conformance::runs::runs(Arc::new(store.clone())).await;
    tdev_conformance::runs::workflows(&store).await;
    tdev_conformance::tasks::tasks(Arc::new(store)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn tasks_conform_on_a_file() {
    on_a_file("tasks", async |store| tdev_conformance::tasks::tasks(Arc::new(store.clone())).await).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn messaging_stores_conform() {
    tdev_conformance::messaging::run_all(&SqliteStore::in_memory().unwrap()).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn messaging_stores_conform_on_a_file() {
    on_a_file("messaging", async |store| tdev_conformance::messaging::run_all(store).await).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn deployment_store_conforms() {
    tdev_conformance::deployments::run_all(&SqliteStore::in_memory().unwrap()).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn deployment_store_conforms_on_a_file() {
    on_a_file("deployments", async |store| tdev_conformance::deployments::run_all(store).await).await;
}

/// Runs `suite` on a store in a file of its own, then deletes the file.
async fn on_a_file(name: &str, suite: impl AsyncFnOnce(&SqliteStore)) {
    let dir = std::env::temp_dir().join(format!("tdev-{name}-{}", uuid_like()));
    let store = SqliteStore::open(&dir.join("tdev.db")).unwrap();
    suite(&store).await;
    drop(store);
    std::fs::remove_dir_all(dir).unwrap();
}
