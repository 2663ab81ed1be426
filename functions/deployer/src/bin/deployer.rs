//! The deployer function behind API Gateway: deployments, rollbacks, history.

use std::sync::Arc;

use aws_config::BehaviorVersion;
use tdev_aws::{AwsStore, SqsQueues};
use tdev_domain::SystemClock;
use tdev_domain::auth::AuthService;
use tdev_domain::deploy::{DEPLOY_DEAD_LETTER_QUEUE, DEPLOY_QUEUE, Deployments};
use tdev_http::app::{HttpSettings, finish};
use tdev_http::guard::Mode;
use tdev_invoke::{Invoker, default_http_client};
use tdev_targets::AwsTargets;

#[tokio::main]
async fn main() -> Result<(), lambda_http::Error> {
    tdev_runtime::telemetry::init();
    let auth = tdev_http::config::auth_config_from_env()?;
    let http = HttpSettings::from_env("deployer")?;
    let config = tdev_deployer::config_from_env()?;
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
        config,
    ));
    let auth = Arc::new(AuthService::new(store, clock, auth));
    lambda_http::run(finish(tdev_deployer::router(deployments, auth, Mode::AuthorizerContext), &http)).await
}
