//! The message consumer: an SQS-triggered Lambda on every band queue (delivering
//! messages) and every band's dead-letter queue (archiving them), answering with the
//! records to retry (`ReportBatchItemFailures`).

use std::sync::Arc;

use aws_config::BehaviorVersion;
use aws_lambda_events::sqs::SqsEvent;
use lambda_runtime::{LambdaEvent, service_fn};
use tdev_domain::SystemClock;
use tdev_domain::messaging::{Bands, Dispatcher, Messenger};
use tdev_http::app::HttpSettings;
use tdev_invoke::{Invoker, default_http_client};

#[tokio::main]
async fn main() -> Result<(), lambda_runtime::Error> {
    tdev_http::telemetry::init();
    if let Some(emf) = HttpSettings::from_env("message-consumer")?.emf {
        tdev_http::metrics::init(emf);
    }
    let messaging = tdev_http::config::messaging_config_from_env(Bands::default())?;
    let sdk = aws_config::load_defaults(BehaviorVersion::latest()).await;
    let store = tdev_aws::AwsStore::with_table_from_env(&sdk)?;
    let queues = tdev_router::queues_from_env(&sdk, &messaging.bands)?;
    let invoker = Invoker::new(default_http_client()?, Some(&sdk));
    let messenger = Arc::new(Messenger::new(store, queues.clone(), Arc::new(SystemClock), messaging));
    let dispatcher = Arc::new(Dispatcher::new(messenger, invoker));
    lambda_runtime::run(service_fn(move |event: LambdaEvent<SqsEvent>| {
        let (dispatcher, queues) = (dispatcher.clone(), queues.clone());
        async move {
            let queue_of = |arn: &str| queues.name_of_arn(arn).map(str::to_owned);
            Ok::<_, lambda_runtime::Error>(
                tdev_router::consumer::handle_batch(&dispatcher, queue_of, event.payload).await,
            )
        }
    }))
    .await
}
