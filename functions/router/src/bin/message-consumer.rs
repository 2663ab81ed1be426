//! The message consumer: an SQS-triggered Lambda on every band queue (delivering
//! messages) and every band's dead-letter queue (archiving them), answering with the
//! records to retry (`ReportBatchItemFailures`).

use std::sync::Arc;

use aws_config::BehaviorVersion;
use tdev_domain::SystemClock;
use tdev_domain::messaging::{Dispatcher, Messenger};
use tdev_invoke::{Invoker, default_http_client};
use tdev_router::config::ConsumerConfig;

#[tokio::main]
async fn main() -> Result<(), lambda_runtime::Error> {
    tdev_runtime::telemetry::init();
    let ConsumerConfig { messaging, metrics } = ConsumerConfig::from_env()?;
    if let Some(emf) = metrics {
        tdev_runtime::metrics::init(emf);
    }
    let sdk = aws_config::load_defaults(BehaviorVersion::latest()).await;
    let store = tdev_aws::AwsStore::with_table_from_env(&sdk)?;
    let queues = tdev_router::queues_from_env(&sdk, &messaging.bands)?;
    let invoker = Invoker::new(default_http_client()?, Some(&sdk));
    let messenger = Arc::new(Messenger::new(store, queues.clone(), Arc::new(SystemClock), messaging));
    tdev_worker::lambda::serve(Dispatcher::new(messenger, invoker), queues).await
}
