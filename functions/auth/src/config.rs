//! Configuration from the environment (see the README's configuration table).

pub use tdev_http::config::auth_config_from_env;
