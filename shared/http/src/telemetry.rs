//! Structured JSON logs from the first line of `main`.

use tracing_subscriber::EnvFilter;

/// JSON logs on stdout. The level comes from `RUST_LOG`, else from Lambda's advanced
/// logging controls (`AWS_LAMBDA_LOG_LEVEL`), else `info`.
pub fn init() {
    let directive = std::env::var("RUST_LOG")
        .ok()
        .or_else(|| std::env::var("AWS_LAMBDA_LOG_LEVEL").ok().map(|l| lambda_level(&l)))
        .unwrap_or_else(|| "info".into());
    let filter = EnvFilter::try_new(&directive).unwrap_or_else(|_| EnvFilter::new("info"));
    // A second init (tests, or a binary that embeds another) keeps the first subscriber.
    let _ = tracing_subscriber::fmt()
        .json()
        .flatten_event(true)
        .with_current_span(true)
        .with_span_list(false)
        .with_target(false)
        .with_env_filter(filter)
        .with_writer(std::io::stdout)
        .try_init();
}

fn lambda_level(level: &str) -> String {
    match level.to_ascii_lowercase().as_str() {
        "fatal" => "error".into(),
        other => other.into(),
    }
}
