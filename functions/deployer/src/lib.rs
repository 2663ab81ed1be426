//! The deployer function: agent deployments under `/v1/deployments` (create, list, get,
//! events, roll back) and the version history of a deployed agent; and the deploy worker,
//! which moves deployments through the pipeline from the deploy queue (an SQS-triggered
//! Lambda, or in-process consumers in the local stack).

pub mod config;
mod routes;

pub use routes::{ApiDoc, DeployerStore, router};

use std::sync::Arc;

use aws_config::BehaviorVersion;
use tdev_aws::{AwsStore, SqsQueues};
use tdev_domain::SystemClock;
use tdev_domain::deploy::{DEPLOY_DEAD_LETTER_QUEUE, DEPLOY_QUEUE, DeployConfig, Deployments};
use tdev_invoke::{Invoker, default_http_client};
use tdev_platforms::AwsPlatforms;

/// The pipeline as the deployer's Lambdas run it.
pub type AwsDeployments = Deployments<AwsStore, SqsQueues, AwsPlatforms, Invoker>;

/// The pipeline on AWS, as both of the deployer's Lambdas (`deployer`, `deploy-worker`)
/// start it: the SDK's default configuration, the table (`TDEV_TABLE`), the deploy queues
/// (`TDEV_QUEUE_*`), Bedrock and the invoker.
pub async fn on_aws(config: DeployConfig) -> anyhow::Result<AwsDeployments> {
    let sdk = aws_config::load_defaults(BehaviorVersion::latest()).await;
    let store = AwsStore::with_table_from_env(&sdk)?;
    let queues = SqsQueues::from_env(&sdk, &[DEPLOY_QUEUE, DEPLOY_DEAD_LETTER_QUEUE])?;
    let invoker = Invoker::new(default_http_client()?, Some(&sdk));
    Ok(Deployments::new(store, queues, AwsPlatforms::new(&sdk), invoker, Arc::new(SystemClock), config))
}
