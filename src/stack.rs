//! Builds and serves the whole system in one process.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context as _;
use axum::Router;
use tdev_aws::{AwsStore, SqsQueues};
use tdev_deployer::DeployerStore;
use tdev_domain::SystemClock;
use tdev_domain::agents::Registry;
use tdev_domain::auth::{AuthConfig, AuthService};
use tdev_domain::deploy::{
    AgentDeployer, DEPLOY_DEAD_LETTER_QUEUE, DEPLOY_MAX_RECEIVES, DEPLOY_QUEUE, DeployConfig, Deployments,
};
use tdev_domain::events::{EVENT_DEAD_LETTER_QUEUE, EVENT_QUEUE};
use tdev_domain::messaging::{Bands, Dispatcher, MessagingConfig, Messenger};
use tdev_domain::ports::MessageQueue;
use tdev_domain::queue::QueueSpec;
use tdev_domain::runs::{Engine, STEP_DEAD_LETTER_QUEUE, STEP_MAX_RECEIVES, STEP_QUEUE};
use tdev_domain::workflow::Limits;
use tdev_embedded::{DataLock, LocalPlatform, LockError, Reclaimed, SqliteStore};
use tdev_http::app::{HttpSettings, finish};
use tdev_http::guard::Mode;
use tdev_invoke::{Invoker, default_http_client};
use tdev_orchestrator::OrchestratorStore;
use tdev_platforms::AwsPlatforms;
use tdev_router::RouterStore;
use tdev_worker::local::consume;
use tokio::net::TcpListener;
use tokio::sync::watch;

/// Which stores back the stack.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Backend {
    /// One SQLite file at this path.
    Embedded { path: PathBuf },
    /// DynamoDB, SQS and Secrets Manager from the standard AWS configuration
    /// (`AWS_ENDPOINT_URL` points it at moto). `create_table`: make the table and the
    /// queues if missing (queues named after the table); otherwise the queues come from
    /// `TDEV_QUEUE_*` variables, as in Lambda.
    Aws { create_table: bool },
}

pub struct StackConfig {
    pub backend: Backend,
    pub auth: AuthConfig,
    pub http: HttpSettings,
    /// Where the first start writes the admin key (mode 0600), besides printing it.
    pub admin_key_file: PathBuf,
    /// In-process consumers of the step queue, and as many of the message queues.
    pub workers: usize,
    /// Messaging settings; `None`: from the environment, with the backend's default bands
    /// (one strictly ordered queue embedded, three bands on AWS).
    pub messaging: Option<MessagingConfig>,
}

/// Every port the local stack uses: the union of every function's.
pub trait StackStore: RouterStore + OrchestratorStore + DeployerStore {}
impl<T: RouterStore + OrchestratorStore + DeployerStore> StackStore for T {}

/// The whole system in one process, over one store and one queue; `D` is where agents
/// are deployed (the local target on the embedded backend, AWS otherwise).
pub struct Stack<S, Q, D> {
    pub queue: Q,
    pub auth: Arc<AuthService<S>>,
    pub engine: Arc<Engine<S, Q, Invoker>>,
    pub dispatcher: Arc<Dispatcher<S, Q, Invoker>>,
    pub deployments: Arc<Deployments<S, Q, D, Invoker>>,
}

/// The stack's parts that differ from the functions' defaults.
pub struct Parts {
    pub invoker: Invoker,
    pub auth: AuthConfig,
    pub messaging: MessagingConfig,
    pub deploy: DeployConfig,
    pub workflow: Limits,
    /// The longest a step's attempt may take unless the step says less
    /// ([`LOCAL_STEP_ATTEMPT_TIMEOUT`] unless `TDEV_ATTEMPT_TIMEOUT_SECONDS` says otherwise).
    pub step_attempt_timeout: Duration,
}

/// A step's attempt may take 5 minutes locally, where no Lambda timeout bounds it (in
/// Lambda, `TDEV_ATTEMPT_TIMEOUT_SECONDS` defaults to `agents::DEFAULT_ATTEMPT_TIMEOUT`).
pub const LOCAL_STEP_ATTEMPT_TIMEOUT: Duration = Duration::from_secs(300);

impl<S: StackStore, Q: MessageQueue + Clone, D: AgentDeployer> Stack<S, Q, D> {
    pub fn new(store: S, queue: Q, deployer: D, parts: Parts) -> Self {
        let Parts { invoker, auth, messaging, deploy, workflow, step_attempt_timeout } = parts;
        let clock = Arc::new(SystemClock);
        let engine = Engine::new(store.clone(), queue.clone(), invoker.clone(), clock.clone(), workflow)
            .with_attempt_timeout(step_attempt_timeout);
        let deployments =
            Deployments::new(store.clone(), queue.clone(), deployer, invoker.clone(), clock.clone(), deploy);
        let messenger = Arc::new(Messenger::new(store.clone(), queue.clone(), clock.clone(), messaging));
        Self {
            queue,
            auth: Arc::new(AuthService::new(store, clock, auth)),
            engine: Arc::new(engine),
            dispatcher: Arc::new(Dispatcher::new(messenger, invoker)),
            deployments: Arc::new(deployments),
        }
    }

    pub fn messenger(&self) -> &Arc<Messenger<S, Q>> {
        self.dispatcher.messenger()
    }

    /// Every function's routes, finished with the shared layers, and one API document.
    pub fn router(&self, http: &HttpSettings) -> Router {
        let store = self.auth.store().clone();
        let registry = Arc::new(Registry::new(store, Arc::new(SystemClock)));
        let api = tdev_auth::api_document(self.auth.config().token_ttl_secs);
        let routes = tdev_auth::router(self.auth.clone(), Mode::Authenticate)
            .merge(tdev_router::router(
                registry,
                self.messenger().clone(),
                self.auth.clone(),
                Mode::Authenticate,
            ))
            .merge(tdev_orchestrator::router(self.engine.clone(), self.auth.clone(), Mode::Authenticate))
            .merge(tdev_deployer::router(self.deployments.clone(), self.auth.clone(), Mode::Authenticate))
            .merge(tdev_http::docs::router(api));
        finish(routes, http)
    }

    /// Step, message and deploy consumers, in-process, until `shutdown` turns true.
    pub fn spawn_workers(
        &self,
        workers: usize,
        shutdown: watch::Receiver<bool>,
    ) -> tokio::task::JoinHandle<()> {
        let steps = consume(self.engine.clone(), self.queue.clone(), workers, shutdown.clone());
        let messages = consume(self.dispatcher.clone(), self.queue.clone(), workers, shutdown.clone());
        let deploys = consume(self.deployments.clone(), self.queue.clone(), workers.min(2), shutdown);
        tokio::spawn(async move {
            futures::future::join3(steps, messages, deploys).await;
        })
    }
}

/// The message queues for `messaging`'s bands and the event queue, each with its
/// dead-letter queue. The
/// queue's own limit is one receive more than the dispatcher's, which dead-letters with
/// the reason first; the queue's is the safety net for a consumer that died.
fn message_queues(messaging: &MessagingConfig) -> impl Iterator<Item = (String, String, u32)> + '_ {
    messaging
        .bands
        .bands()
        .iter()
        .map(|band| (band.queue.clone(), band.dead_letter_queue.clone()))
        .chain([(EVENT_QUEUE.to_owned(), EVENT_DEAD_LETTER_QUEUE.to_owned())])
        .map(|(queue, dead_letter_queue)| (queue, dead_letter_queue, messaging.max_receives + 1))
}

/// Every queue of the system with its dead-letter queue: the step and deploy queues, the
/// message bands and the event queue. The embedded queue declares them; on AWS they are
/// created from them where no template does (moto).
pub fn queues(messaging: &MessagingConfig) -> Vec<QueueSpec> {
    let mut specs = vec![
        QueueSpec::with_dead_letter(STEP_QUEUE, STEP_DEAD_LETTER_QUEUE, STEP_MAX_RECEIVES),
        QueueSpec::with_dead_letter(DEPLOY_QUEUE, DEPLOY_DEAD_LETTER_QUEUE, DEPLOY_MAX_RECEIVES),
    ];
    specs.extend(message_queues(messaging).map(|(q, dlq, max)| QueueSpec::with_dead_letter(&q, &dlq, max)));
    specs
}

/// The messaging settings from the environment, with `bands` unless `TDEV_MESSAGE_BANDS`
/// says otherwise.
pub fn messaging_from_env(bands: Bands) -> anyhow::Result<MessagingConfig> {
    tdev_runtime::settings::messaging(bands)
}

/// Opens the backend, bootstraps a fresh installation, and serves until Ctrl-C.
pub async fn serve(listener: TcpListener, config: StackConfig) -> anyhow::Result<()> {
    match config.backend.clone() {
        Backend::Embedded { path } => {
            let messaging = match config.messaging.clone() {
                Some(messaging) => messaging,
                None => messaging_from_env(Bands::single())?,
            };
            secure_data_dir(&path)?;
            // Held until `serve` returns; the system lets go of it if the process dies.
            let lock = lock_data(&path)?;
            let store = SqliteStore::open(&path)
                .with_context(|| format!("opening the database at {}", path.display()))?
                .with_queues(queues(&messaging));
            tracing::info!(path = %path.display(), "embedded backend");
            reclaim(&store, &lock)?;
            let parts = Parts {
                invoker: Invoker::new(default_http_client()?, None),
                auth: config.auth.clone(),
                messaging,
                deploy: tdev_runtime::settings::deploy()?,
                workflow: tdev_runtime::settings::workflow_limits()?,
                step_attempt_timeout: tdev_runtime::settings::attempt_timeout(LOCAL_STEP_ATTEMPT_TIMEOUT)?,
            };
            let stack = Stack::new(store.clone(), store.clone(), LocalPlatform::new(store), parts);
            serve_with(listener, stack, &config).await
        }
        Backend::Aws { create_table } => {
            let sdk = aws_config::load_defaults(aws_config::BehaviorVersion::latest()).await;
            let messaging = match config.messaging.clone() {
                Some(messaging) => messaging,
                None => messaging_from_env(Bands::default())?,
            };
            let store = AwsStore::with_table_from_env(&sdk)?;
            let queues = if create_table {
                store.ensure_table().await.context("creating the table")?;
                SqsQueues::ensure(&sdk, store.table(), queues(&messaging))
                    .await
                    .context("creating the queues")?
            } else {
                let mut names =
                    vec![STEP_QUEUE, STEP_DEAD_LETTER_QUEUE, DEPLOY_QUEUE, DEPLOY_DEAD_LETTER_QUEUE];
                names.extend(tdev_router::queue_names(&messaging.bands));
                SqsQueues::from_env(&sdk, &names)?
            };
            tracing::info!("AWS backend");
            let parts = Parts {
                invoker: Invoker::new(default_http_client()?, Some(&sdk)),
                auth: config.auth.clone(),
                messaging,
                deploy: tdev_runtime::settings::deploy()?,
                workflow: tdev_runtime::settings::workflow_limits()?,
                step_attempt_timeout: tdev_runtime::settings::attempt_timeout(LOCAL_STEP_ATTEMPT_TIMEOUT)?,
            };
            serve_with(listener, Stack::new(store, queues, AwsPlatforms::new(&sdk), parts), &config).await
        }
    }
}

async fn serve_with<S: StackStore, Q: MessageQueue + Clone, D: AgentDeployer>(
    listener: TcpListener,
    stack: Stack<S, Q, D>,
    config: &StackConfig,
) -> anyhow::Result<()> {
    narrow_to_owner(&config.admin_key_file)?;
    if let Some(admin) = stack.auth.bootstrap().await.context("bootstrapping")? {
        write_admin_key(&config.admin_key_file, &admin.plaintext)?;
        let limit = &stack.auth.config().default_rate_limit;
        println!(
            "\nFirst start: created the admin API key. It is shown only this once\n\
             (and written to {} with mode 0600):\n\n    {}\n\n\
             Like every key without a rate limit of its own, it may make {} requests at once\n\
             and {} more a minute (TDEV_RATE_CAPACITY, TDEV_RATE_REFILL_PER_MINUTE).\n",
            config.admin_key_file.display(),
            admin.plaintext,
            limit.capacity,
            limit.refill_per_minute,
        );
    }
    if stack.messenger().bootstrap().await.context("creating the envelope key")? {
        tracing::info!("created the envelope key");
    }
    let (stop, shutdown) = watch::channel(false);
    let workers = stack.spawn_workers(config.workers, shutdown);
    let address = listener.local_addr()?;
    println!("T-Developer listening on http://{address} (API docs: http://{address}/docs)");
    // With each connection's peer address: failed authentications are counted per address.
    let app = stack.router(&config.http).into_make_service_with_connect_info::<std::net::SocketAddr>();
    let served = axum::serve(listener, app)
        .with_graceful_shutdown(async {
            let _ = tokio::signal::ctrl_c().await;
        })
        .await
        .context("serving");
    let _ = stop.send(true);
    let _ = workers.await;
    served
}

/// Makes this process the database's only user, or says who else is and what to do.
fn lock_data(database: &Path) -> anyhow::Result<DataLock> {
    DataLock::take(database).map_err(|e| match e {
        LockError::Held { database, lock } => {
            let dir = database.parent().filter(|p| !p.as_os_str().is_empty()).unwrap_or(Path::new("."));
            anyhow::anyhow!(
                "the data folder {} is in use: another `tdev serve` holds the lock of {} ({}). \
                 Stop that one, or give this one data of its own with \
                 `--data <another folder>/tdev.db` (or TDEV_DATA)",
                dir.display(),
                database.display(),
                lock.display()
            )
        }
        LockError::Io { .. } => anyhow::Error::new(e),
    })
}

/// Takes back at once what the previous process held when it stopped (it cannot be
/// running: this one holds the data lock), rather than waiting out visibility timeouts
/// and leases. See "After a crash" in docs/workflows.md.
fn reclaim(store: &SqliteStore, lock: &DataLock) -> anyhow::Result<()> {
    let reclaimed =
        store.reclaim_after_restart(lock).context("taking back the work of the previous process")?;
    if reclaimed != Reclaimed::default() {
        tracing::warn!(
            deliveries = reclaimed.deliveries,
            idempotency_claims = reclaimed.claims,
            agent_slots = reclaimed.slots,
            "the previous process stopped with work in flight: taken back, to be done again now"
        );
    }
    Ok(())
}

/// The stack's own data folder (`.tdev`, the default) holds the database and the admin
/// key: it is made 0700, also when an older version left it wider. A database placed in
/// any other folder gets private files, and the folder is left as it is (it may be shared
/// on purpose, like `/tmp`).
fn secure_data_dir(database: &Path) -> anyhow::Result<()> {
    use std::os::unix::fs::PermissionsExt as _;
    let Some(dir) = database.parent().filter(|p| p.file_name() == Some(std::ffi::OsStr::new(".tdev"))) else {
        return Ok(());
    };
    tdev_embedded::private_dir(dir).with_context(|| format!("creating {}", dir.display()))?;
    std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o700))
        .with_context(|| format!("making {} private", dir.display()))
}

/// An admin key file an older version left readable to others becomes 0600.
fn narrow_to_owner(path: &Path) -> anyhow::Result<()> {
    use std::os::unix::fs::PermissionsExt as _;
    match std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600)) {
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
        other => other.with_context(|| format!("making {} private", path.display())),
    }
}

fn write_admin_key(path: &Path, key: &str) -> anyhow::Result<()> {
    use std::io::Write as _;
    use std::os::unix::fs::OpenOptionsExt as _;
    if let Some(parent) = path.parent().filter(|p| !p.as_os_str().is_empty()) {
        tdev_embedded::private_dir(parent)?;
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
