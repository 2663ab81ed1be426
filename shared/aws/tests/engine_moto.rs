//! The durable engine on the AWS adapters — runs and steps, squad tasks and assignments in
//! DynamoDB, their messages on SQS FIFO — against moto, with the same cases as on the
//! embedded backend.

mod support;

use support::{moto_config, unique};
use tdev_aws::{AwsStore, SqsQueues};
use tdev_domain::queue::QueueSpec;
use tdev_domain::runs::STEP_QUEUE;

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn the_engine_runs_workflows_durably_on_dynamodb_and_sqs() {
    let config = moto_config();
    let store = AwsStore::new(&config, unique("engine"));
    store.ensure_table().await.unwrap();
    let queues = SqsQueues::ensure(
        &config,
        &unique("engine"),
        [QueueSpec::with_dead_letter(STEP_QUEUE, "steps-dlq", tdev_domain::runs::STEP_MAX_RECEIVES)],
    )
    .await
    .unwrap();
    tdev_conformance::engine::run_all(store, queues).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn the_engine_runs_squad_tasks_durably_on_dynamodb_and_sqs() {
    let config = moto_config();
    let store = AwsStore::new(&config, unique("squads"));
    store.ensure_table().await.unwrap();
    let queues = SqsQueues::ensure(
        &config,
        &unique("squads"),
        [QueueSpec::with_dead_letter(STEP_QUEUE, "steps-dlq", tdev_domain::runs::STEP_MAX_RECEIVES)],
    )
    .await
    .unwrap();
    tdev_conformance::squads::run_all(store, queues, 200).await;
}
