//! The router's settings, read once at start (variables in the README).

use tdev_domain::messaging::{Bands, MessagingConfig};
use tdev_http::app::ApiSettings;
use tdev_runtime::metrics::EmfSettings;
use tdev_runtime::settings;

/// The router function (bin `router`): agents, messages, dead letters and events over HTTP.
pub fn api() -> anyhow::Result<ApiSettings<MessagingConfig>> {
    ApiSettings::from_env("router", || settings::messaging(Bands::default()))
}

/// The message consumer (bin `message-consumer`).
pub struct ConsumerConfig {
    pub messaging: MessagingConfig,
    /// `None`: no metrics.
    pub metrics: Option<EmfSettings>,
}

impl ConsumerConfig {
    pub fn from_env() -> anyhow::Result<Self> {
        Ok(Self {
            messaging: settings::messaging(Bands::default())?,
            metrics: EmfSettings::from_env("message-consumer")?,
        })
    }
}
