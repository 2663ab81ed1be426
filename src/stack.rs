//! Builds and serves the whole system in one process.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use anyhow::Context as _;
use axum::Router;
use tdev_domain::SystemClock;
use tdev_domain::agents::Registry;
use tdev_domain::auth::{AuthConfig, AuthService};
use tdev_http::app::{HttpSettings, finish};
use tdev_http::guard::Mode;
use tdev_router::RouterStore;
use tokio::net::TcpListener;
use utoipa::OpenApi as _;

/// Which stores back the stack.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Backend {
    /// One SQLite file at this path.
    Embedded { path: PathBuf },
    /// DynamoDB and Secrets Manager from the standard AWS configuration
    /// (`AWS_ENDPOINT_URL` points it at moto). `create_table`: make the table if missing.
    Aws { create_table: bool },
}

pub struct StackConfig {
    pub backend: Backend,
    pub auth: AuthConfig,
    pub http: HttpSettings,
    /// Where the first start writes the admin key (mode 0600), besides printing it.
    pub admin_key_file: PathBuf,
}

/// Every port the local stack uses: the union of every function's.
pub trait StackStore: RouterStore + Clone {}
impl<T: RouterStore + Clone> StackStore for T {}

/// The whole system's router over one store, finished with the shared layers.
pub fn app<S: StackStore>(service: Arc<AuthService<S>>, http: &HttpSettings) -> Router {
    let registry = Arc::new(Registry::new(service.store().clone(), Arc::new(SystemClock)));
    let mut api = tdev_auth::ApiDoc::openapi();
    api.merge(tdev_router::ApiDoc::openapi());
    let routes = tdev_auth::router(service.clone(), Mode::Authenticate)
        .merge(tdev_router::router(registry, service, Mode::Authenticate))
        .merge(tdev_http::docs::router(api));
    finish(routes, http)
}

/// Opens the backend, bootstraps a fresh installation, and serves until Ctrl-C.
pub async fn serve(listener: TcpListener, config: StackConfig) -> anyhow::Result<()> {
    match config.backend.clone() {
        Backend::Embedded { path } => {
            let store = tdev_embedded::SqliteStore::open(&path)
                .with_context(|| format!("opening the database at {}", path.display()))?;
            tracing::info!(path = %path.display(), "embedded backend");
            serve_with(listener, store, config).await
        }
        Backend::Aws { create_table } => {
            let store = tdev_aws::AwsStore::from_env().await?;
            if create_table {
                store.ensure_table().await.context("creating the table")?;
            }
            tracing::info!("AWS backend");
            serve_with(listener, store, config).await
        }
    }
}

async fn serve_with<S: StackStore>(
    listener: TcpListener,
    store: S,
    config: StackConfig,
) -> anyhow::Result<()> {
    let service = Arc::new(AuthService::new(store, Arc::new(SystemClock), config.auth));
    if let Some(admin) = service.bootstrap().await.context("bootstrapping")? {
        write_admin_key(&config.admin_key_file, &admin.plaintext)?;
        println!(
            "\nFirst start: created the admin API key. It is shown only this once\n\
             (and written to {} with mode 0600):\n\n    {}\n",
            config.admin_key_file.display(),
            admin.plaintext
        );
    }
    let address = listener.local_addr()?;
    println!("T-Developer listening on http://{address} (API docs: http://{address}/docs)");
    axum::serve(listener, app(service, &config.http))
        .with_graceful_shutdown(async {
            let _ = tokio::signal::ctrl_c().await;
        })
        .await
        .context("serving")
}

fn write_admin_key(path: &Path, key: &str) -> anyhow::Result<()> {
    use std::io::Write as _;
    use std::os::unix::fs::OpenOptionsExt as _;
    if let Some(parent) = path.parent().filter(|p| !p.as_os_str().is_empty()) {
        std::fs::create_dir_all(parent)?;
    }
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(path)
        .with_context(|| format!("writing {}", path.display()))?;
    writeln!(file, "{key}")?;
    Ok(())
}
