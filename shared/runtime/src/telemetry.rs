//! Structured JSON logs from the first line of `main`.
//!
//! Each line carries the fields of every span it is logged in (`spans`, outermost first),
//! not only the innermost: on Lambda the outermost is the runtime's span for the
//! invocation, `"Lambda runtime invoke"` with `requestId` and `xrayTraceId` (the X-Ray
//! trace id Lambda gives that invocation), so every line of an invocation names its
//! trace, whatever span inside it logged the line.

use tracing::Subscriber;
use tracing_subscriber::EnvFilter;
use tracing_subscriber::fmt::MakeWriter;
use tracing_subscriber::util::SubscriberInitExt as _;

/// JSON logs on stdout. The level comes from `RUST_LOG`, else from Lambda's advanced
/// logging controls (`AWS_LAMBDA_LOG_LEVEL`), else `info`.
pub fn init() {
    let directive = std::env::var("RUST_LOG")
        .ok()
        .or_else(|| std::env::var("AWS_LAMBDA_LOG_LEVEL").ok().map(|l| lambda_level(&l)))
        .unwrap_or_else(|| "info".into());
    // A second init (tests, or a binary that embeds another) keeps the first subscriber.
    let _ = subscriber(&directive, std::io::stdout).try_init();
}

/// The JSON log format at the level `directive` sets (`info` if it does not parse),
/// written to `writer`.
pub fn subscriber<W>(directive: &str, writer: W) -> impl Subscriber + Send + Sync + 'static
where
    W: for<'w> MakeWriter<'w> + Send + Sync + 'static,
{
    let filter = EnvFilter::try_new(directive).unwrap_or_else(|_| EnvFilter::new("info"));
    tracing_subscriber::fmt()
        .json()
        .flatten_event(true)
        .with_current_span(false)
        .with_span_list(true)
        .with_target(false)
        .with_env_filter(filter)
        .with_writer(writer)
        .finish()
}

fn lambda_level(level: &str) -> String {
    match level.to_ascii_lowercase().as_str() {
        "fatal" => "error".into(),
        other => other.into(),
    }
}
