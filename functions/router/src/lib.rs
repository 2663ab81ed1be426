//! The router function: the agent registry under `/v1/agents`, messages under
//! `/v1/messages`, dead letters under `/v1/dead-letters`, events under `/v1/events`; and
//! the message consumer, which delivers messages from the priority band queues and
//! archives their dead letters.

pub mod config;
mod routes;

pub use routes::{ApiDoc, MAX_BATCH, RouterStore, constrain_schemas, router};

use tdev_aws::SqsQueues;
use tdev_domain::events::{EVENT_DEAD_LETTER_QUEUE, EVENT_QUEUE};
use tdev_domain::messaging::Bands;

/// The band queues, the event queue, and their dead-letter queues from `TDEV_QUEUE_*`
/// variables.
pub fn queues_from_env(
    config: &aws_config::SdkConfig,
    bands: &Bands,
) -> Result<SqsQueues, tdev_domain::ports::StoreError> {
    SqsQueues::from_env(config, &queue_names(bands))
}

/// Every queue messaging uses: the bands' and the event queue, with their dead-letter queues.
pub fn queue_names(bands: &Bands) -> Vec<&str> {
    let mut names = bands.queue_names();
    names.extend([EVENT_QUEUE, EVENT_DEAD_LETTER_QUEUE]);
    names
}
