//! The orchestrator function behind API Gateway: workflow definitions and runs.

use std::sync::Arc;

use aws_config::BehaviorVersion;
use tdev_aws::{AwsStore, SqsQueues};
use tdev_domain::SystemClock;
use tdev_domain::auth::AuthService;
use tdev_domain::runs::{Engine, STEP_DEAD_LETTER_QUEUE, STEP_QUEUE};
use tdev_http::app::finish;
use tdev_http::guard::Mode;
use tdev_invoke::{Invoker, default_http_client};
use tdev_orchestrator::config::ApiConfig;

#[tokio::main]
async fn main() -> Result<(), lambda_http::Error> {
    tdev_runtime::telemetry::init();
    let config = ApiConfig::from_env()?;
    let sdk = aws_config::load_defaults(BehaviorVersion::latest()).await;
    let store = AwsStore::with_table_from_env(&sdk)?;
    let queues = SqsQueues::from_env(&sdk, &[STEP_QUEUE, STEP_DEAD_LETTER_QUEUE])?;
    let clock = Arc::new(SystemClock);
    let invoker = Invoker::new(default_http_client()?, Some(&sdk));
    let engine = Arc::new(Engine::new(store.clone(), queues, invoker, clock.clone(), config.limits));
    let auth = Arc::new(AuthService::new(store, clock, config.auth));
    lambda_http::run(finish(tdev_orchestrator::router(engine, auth, Mode::AuthorizerContext), &config.http))
        .await
}
