//! `tdev`: the local stack and the operator CLI.

use std::net::SocketAddr;
use std::path::PathBuf;

use anyhow::Context as _;
use clap::{CommandFactory as _, FromArgMatches as _, Parser, Subcommand, ValueEnum};
use tdev::cli;
use tdev::stack::{self, Backend, StackConfig};
use tdev_http::app::HttpSettings;

#[derive(Parser)]
#[command(name = "tdev", version, about = "T-Developer: the local stack and operator CLI")]
#[command(after_help = "Exit codes: 0 it worked; 1 the deployment failed or was rolled back; 2 refused \
(invalid spec, busy, not found, not allowed, bad command line); 3 the API could not be reached or \
failed; 4 still running when --wait-seconds ran out")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run the whole system on this machine.
    Serve {
        /// Address to listen on.
        #[arg(long, env = "TDEV_ADDR", default_value = "127.0.0.1:8080")]
        addr: SocketAddr,
        /// Which stores to use.
        #[arg(long, env = "TDEV_BACKEND", value_enum, default_value_t = BackendKind::Embedded)]
        backend: BackendKind,
        /// The SQLite file of the embedded backend (kept across restarts).
        #[arg(long, env = "TDEV_DATA", default_value = ".tdev/tdev.db")]
        data: PathBuf,
        /// With the AWS backend: create the DynamoDB table if it is missing (for moto).
        #[arg(long, env = "TDEV_CREATE_TABLE")]
        create_table: bool,
        /// Where the first start writes the admin key (mode 0600).
        #[arg(long, env = "TDEV_ADMIN_KEY_FILE", default_value = ".tdev/admin-key")]
        admin_key_file: PathBuf,
        /// In-process consumers of the step queue, and as many of each message queue.
        #[arg(long, env = "TDEV_WORKERS", default_value_t = 4)]
        workers: usize,
    },
    /// Serve an agent that answers each output named in its URL's `outputs` query with
    /// what the step received: for trying workflows locally.
    EchoAgent {
        /// Address to listen on.
        #[arg(long, default_value = "127.0.0.1:9100")]
        addr: SocketAddr,
    },
    /// Print the whole API's OpenAPI document, generated from the code: what is committed
    /// as docs/openapi.json and served at /openapi.json.
    Openapi,
    #[command(flatten)]
    Operate(cli::Operate),
}

#[derive(Clone, Copy, ValueEnum)]
enum BackendKind {
    /// One SQLite file (`--data`): no AWS account needed.
    Embedded,
    /// DynamoDB, SQS and Secrets Manager from the standard AWS configuration (`TDEV_TABLE`;
    /// `AWS_ENDPOINT_URL` for moto).
    Aws,
}

#[tokio::main]
async fn main() -> anyhow::Result<std::process::ExitCode> {
    let matches = Cli::command().get_matches();
    let Cli { command } = Cli::from_arg_matches(&matches).unwrap_or_else(|e| e.exit());
    if !matches!(command, Command::Operate(_) | Command::Openapi) {
        // The CLI's output is for people; the servers log JSON.
        tdev_runtime::telemetry::init();
    }
    match command {
        Command::Operate(command) => {
            // Where `--url` came from (the flag or TDEV_URL), for the message when the API
            // cannot be reached.
            let command = match matches.subcommand() {
                Some((_, sub)) => command.with_sources(sub),
                None => command,
            };
            return Ok(cli::run(command).await);
        }
        Command::Serve { addr, backend, data, create_table, admin_key_file, workers } => {
            let backend = match backend {
                BackendKind::Embedded => Backend::Embedded { path: data },
                BackendKind::Aws => Backend::Aws { create_table },
            };
            let config = StackConfig {
                backend,
                auth: tdev_runtime::settings::auth()?,
                http: HttpSettings::from_env("local")?,
                admin_key_file,
                workers,
                messaging: None,
            };
            let listener =
                tokio::net::TcpListener::bind(addr).await.with_context(|| format!("binding {addr}"))?;
            stack::serve(listener, config).await?;
        }
        Command::Openapi => print!("{}", tdev::openapi::render()),
        Command::EchoAgent { addr } => {
            let listener =
                tokio::net::TcpListener::bind(addr).await.with_context(|| format!("binding {addr}"))?;
            tdev::echo_agent::serve(listener).await?;
        }
    }
    Ok(std::process::ExitCode::SUCCESS)
}
