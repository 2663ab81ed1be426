//! The deployer function behind API Gateway: deployments, rollbacks, history.

use std::sync::Arc;

use aws_config::BehaviorVersion;
use tdev_aws::{AwsStore, SqsQueues};
use tdev_deployer::config::ApiConfig;
use tdev_domain::SystemClock;
use tdev_domain::auth::AuthService;
use tdev_domain::deploy::{DEPLOY_DEAD_LETTER_QUEUE, DEPLOY_QUEUE, Deployments};
use tdev_http::app::finish;
use tdev_http::guard::Mode;
use tdev_invoke::{Invoker, default_http_client};
use tdev_targets::AwsTargets;

#[tokio::main]
async fn main() -> Result<(), lambda_http::Error> {
    tdev_runtime::telemetry::init();
    let config = ApiConfig::from_env()?;
    let sdk = aws_config::load_defaults(BehaviorVersion::latest()).await;
    let store = AwsStore::with_table_from_env(&sdk)?;
    let queues = SqsQueues::from_env(&sdk, &[DEPLOY_QUEUE, DEPLOY_DEAD_LETTER_QUEUE])?;
    let clock = Arc::new(SystemClock);
    let invoker = Invoker::new(default_http_client()?, Some(&sdk));
    let deployments = Arc::new(Deployments::new(
        store.clone(),
        queues,
        AwsTargets::new(&sdk),
        invoker,
        clock.clone(),
        config.deploy,
    ));
    let auth = Arc::new(AuthService::new(store, clock, config.auth));
    lambda_http::run(finish(tdev_deployer::router(deployments, auth, Mode::AuthorizerContext), &config.http))
        .await
}
