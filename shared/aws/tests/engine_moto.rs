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
    let (store, queues) = backend("engine").await;
    tdev_conformance::engine::run_all(store, queues).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn the_engine_runs_squad_tasks_durably_on_dynamodb_and_sqs() {
    let (store, queues) = backend("squads").await;
    tdev_conformance::squads::run_all(store, queues, 200).await;
}

/// A worker killed at every third squad task write (and the last), each delivery processed
/// twice: the task ends as it would have, and no agent is called twice for one attempt.
/// Every third only: each run on moto takes about a second more than on the embedded
/// backend (SQS hands a message back after whole seconds), which tries every write.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn squad_tasks_survive_a_crash_between_any_two_writes_on_dynamodb_and_sqs() {
    let (store, queues) = backend("crash").await;
    tdev_conformance::crash::a_crash_between_any_two_writes_changes_nothing(store, queues, 3).await;
}

/// A worker that dies between recording an assignment and sending its message: the watch
/// sends it again.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_lost_assignment_message_is_sent_again_on_dynamodb_and_sqs() {
    let (store, queues) = backend("lost").await;
    tdev_conformance::crash::a_lost_assignment_message_is_sent_again_by_the_watch(store, queues).await;
}

/// A fresh table, and a step queue with its dead-letter queue, on moto.
async fn backend(name: &str) -> (AwsStore, SqsQueues) {
    let config = moto_config();
    let store = AwsStore::new(&config, unique(name));
    store.ensure_table().await.unwrap();
    let queues = SqsQueues::ensure(
        &config,
        &unique(name),
        [QueueSpec::with_dead_letter(STEP_QUEUE, "steps-dlq", tdev_domain::runs::STEP_MAX_RECEIVES)],
    )
    .await
    .unwrap();
    (store, queues)
}
