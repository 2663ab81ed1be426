//! The embedded backend: every store in one SQLite file, in WAL mode.
//!
//! One connection behind a mutex serves the whole process. Each operation is a few
//! microseconds of SQLite work, so it runs inline on the calling task: handing it to a
//! blocking thread would cost more than it saves. Writes that must be atomic run in an
//! `IMMEDIATE` transaction, which also holds against a second process on the same file.

mod agent_load;
mod agents;
mod api_keys;
mod dead_letters;
mod deployments;
mod events;
mod idempotency;
mod local_platform;
mod queue;
mod rate_limits;
mod runs;
mod secrets;
mod subscriptions;
mod tasks;

pub use local_platform::LocalPlatform;
/// The queues a store serves ([`SqliteStore::with_queues`]).
use tdev_domain::queue::QueueSpec;

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, MutexGuard};

use jiff::Timestamp;
use rusqlite::{Connection, Params};
use tdev_domain::health::ComponentHealth;
use tdev_domain::ports::{HealthCheck, StoreError};

const SCHEMA: &str = r#"
CREATE TABLE IF NOT EXISTS api_keys (
    id TEXT PRIMARY KEY,
    name TEXT NOT NULL,
    scopes TEXT NOT NULL,
    secret_hash TEXT NOT NULL,
    created_at TEXT NOT NULL,
    created_us INTEGER NOT NULL,
    expires_at TEXT,
    revoked_at TEXT,
    rate_capacity INTEGER,
    rate_refill_per_minute INTEGER
);
CREATE INDEX IF NOT EXISTS api_keys_by_age ON api_keys (created_us, id);
CREATE TABLE IF NOT EXISTS agents (
    id TEXT PRIMARY KEY,
    doc TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS subscriptions (
    id TEXT PRIMARY KEY,
    doc TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS workflows (
    id TEXT NOT NULL,
    version TEXT NOT NULL,
    created_us INTEGER NOT NULL,
    doc TEXT NOT NULL,
    PRIMARY KEY (id, version)
);
CREATE TABLE IF NOT EXISTS squads (
    id TEXT NOT NULL,
    version TEXT NOT NULL,
    created_us INTEGER NOT NULL,
    doc TEXT NOT NULL,
    PRIMARY KEY (id, version)
);
CREATE TABLE IF NOT EXISTS runs (
    id TEXT PRIMARY KEY,
    workflow_id TEXT NOT NULL,
    status TEXT NOT NULL,
    created_us INTEGER NOT NULL,
    version INTEGER NOT NULL,
    doc TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS runs_by_age ON runs (created_us);
CREATE TABLE IF NOT EXISTS run_steps (
    run_id TEXT NOT NULL,
    step_id TEXT NOT NULL,
    version INTEGER NOT NULL,
    doc TEXT NOT NULL,
    PRIMARY KEY (run_id, step_id)
);
CREATE TABLE IF NOT EXISTS squad_tasks (
    id TEXT PRIMARY KEY,
    squad_id TEXT NOT NULL,
    status TEXT NOT NULL,
    created_us INTEGER NOT NULL,
    version INTEGER NOT NULL,
    doc TEXT NOT NULL,
    input TEXT
);
CREATE INDEX IF NOT EXISTS squad_tasks_by_age ON squad_tasks (created_us, id);
CREATE TABLE IF NOT EXISTS squad_assignments (
    task_id TEXT NOT NULL,
    id TEXT NOT NULL,
    version INTEGER NOT NULL,
    doc TEXT NOT NULL,
    PRIMARY KEY (task_id, id)
);
CREATE TABLE IF NOT EXISTS rate_buckets (
    client TEXT PRIMARY KEY,
    tat_us INTEGER NOT NULL
);
CREATE TABLE IF NOT EXISTS secret_versions (
    name TEXT NOT NULL,
    version_id TEXT NOT NULL,
    value TEXT NOT NULL,
    stage TEXT CHECK (stage IN ('current', 'previous')),
    seq INTEGER NOT NULL,
    PRIMARY KEY (name, version_id)
);
CREATE UNIQUE INDEX IF NOT EXISTS secret_stage ON secret_versions (name, stage) WHERE stage IS NOT NULL;
CREATE TABLE IF NOT EXISTS queue_messages (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    queue TEXT NOT NULL,
    id TEXT NOT NULL UNIQUE,
    grp TEXT NOT NULL,
    dedup_id TEXT NOT NULL,
    body TEXT NOT NULL,
    priority INTEGER NOT NULL,
    attributes TEXT NOT NULL,
    sent_at TEXT NOT NULL,
    visible_at_ms INTEGER NOT NULL,
    receive_count INTEGER NOT NULL DEFAULT 0,
    receipt TEXT UNIQUE,
    -- 1 from a receive until the message is acknowledged or handed back: a restart takes
    -- held messages back at once (see queue.rs). Added by `add_columns` to older files.
    held INTEGER NOT NULL DEFAULT 0,
    -- 1 when a restart took the message back: its next delivery says so.
    reclaimed INTEGER NOT NULL DEFAULT 0
);
CREATE INDEX IF NOT EXISTS queue_order ON queue_messages (queue, priority, seq);
CREATE INDEX IF NOT EXISTS queue_in_flight ON queue_messages (queue, visible_at_ms);
-- Once used to find the messages received too often; the receive's walk finds them now,
-- and every write of a message paid for the index.
DROP INDEX IF EXISTS queue_exhausted;
CREATE TABLE IF NOT EXISTS queue_dedup (
    queue TEXT NOT NULL,
    dedup_id TEXT NOT NULL,
    message_id TEXT NOT NULL,
    expires_at_ms INTEGER NOT NULL,
    PRIMARY KEY (queue, dedup_id)
);
-- Expired deduplication ids are deleted on each send: by this index, not a scan.
CREATE INDEX IF NOT EXISTS queue_dedup_expiry ON queue_dedup (expires_at_ms);
-- One row per idempotency key. `until_ns` is the lease's end while in progress and the
-- keep-until once done; a row past it counts as absent (and is purged lazily).
CREATE TABLE IF NOT EXISTS idempotency (
    key TEXT PRIMARY KEY,
    holder TEXT NOT NULL,
    done INTEGER NOT NULL CHECK (done IN (0, 1)),
    until_ns INTEGER NOT NULL
);
CREATE INDEX IF NOT EXISTS idempotency_expiry ON idempotency (until_ns);
-- One row per leased slot of an agent's work in flight: a row past its `until_ns` no
-- longer counts. It replaced `agent_slots`, counters that a consumer dying between
-- taking and giving back a slot left too high for ever.
DROP TABLE IF EXISTS agent_slots;
CREATE TABLE IF NOT EXISTS agent_slot_leases (
    agent TEXT NOT NULL,
    holder TEXT NOT NULL,
    until_ns INTEGER NOT NULL,
    PRIMARY KEY (agent, holder)
);
CREATE TABLE IF NOT EXISTS agent_breakers (
    agent TEXT PRIMARY KEY,
    version INTEGER NOT NULL,
    doc TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS dead_letters (
    id TEXT PRIMARY KEY,
    source_queue TEXT NOT NULL,
    reason TEXT NOT NULL,
    state TEXT NOT NULL,
    dead_lettered_ns INTEGER NOT NULL,
    version INTEGER NOT NULL,
    doc TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS dead_letters_by_age ON dead_letters (dead_lettered_ns, id);
CREATE TABLE IF NOT EXISTS failure_notes (
    id TEXT PRIMARY KEY,
    attempts INTEGER NOT NULL,
    first_at TEXT NOT NULL,
    last_at TEXT NOT NULL,
    last_reason TEXT NOT NULL,
    expires_ns INTEGER NOT NULL
);
CREATE INDEX IF NOT EXISTS failure_notes_expiry ON failure_notes (expires_ns);
CREATE TABLE IF NOT EXISTS events (
    id TEXT PRIMARY KEY,
    type TEXT NOT NULL,
    at_ns INTEGER NOT NULL,
    doc TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS events_by_time ON events (at_ns, id);
CREATE TABLE IF NOT EXISTS deployments (
    id TEXT PRIMARY KEY,
    agent TEXT NOT NULL,
    status TEXT NOT NULL,
    created_ns INTEGER NOT NULL,
    revision INTEGER NOT NULL,
    doc TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS deployments_by_age ON deployments (created_ns, id);
CREATE INDEX IF NOT EXISTS deployments_by_agent ON deployments (agent, created_ns, id);
-- The audit trail: append-only, one row per change, in `seq` order.
CREATE TABLE IF NOT EXISTS deployment_events (
    deployment_id TEXT NOT NULL,
    seq INTEGER NOT NULL,
    doc TEXT NOT NULL,
    PRIMARY KEY (deployment_id, seq)
);
CREATE TABLE IF NOT EXISTS deployment_backups (
    deployment_id TEXT PRIMARY KEY,
    doc TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS deployment_locks (
    agent TEXT PRIMARY KEY,
    holder TEXT NOT NULL,
    until_ns INTEGER NOT NULL
);
-- The local deploy target: each agent's draft and alias, and its immutable versions.
CREATE TABLE IF NOT EXISTS local_agents (
    name TEXT PRIMARY KEY,
    draft TEXT NOT NULL,
    draft_revision INTEGER NOT NULL,
    alias INTEGER
);
CREATE TABLE IF NOT EXISTS local_agent_versions (
    name TEXT NOT NULL,
    version INTEGER NOT NULL,
    spec TEXT NOT NULL,
    draft_revision INTEGER NOT NULL,
    PRIMARY KEY (name, version)
);
"#;

/// Creates `dir` (and missing parents) readable by its owner only.
pub fn private_dir(dir: &Path) -> std::io::Result<()> {
    use std::os::unix::fs::DirBuilderExt as _;
    if dir.is_dir() {
        return Ok(());
    }
    std::fs::DirBuilder::new().recursive(true).mode(0o700).create(dir)
}

/// Creates the database file if missing and makes it and its companions 0600.
fn private_files(path: &Path) -> std::io::Result<()> {
    use std::os::unix::fs::{OpenOptionsExt as _, PermissionsExt as _};
    std::fs::OpenOptions::new().append(true).create(true).mode(0o600).open(path)?;
    for suffix in ["", "-wal", "-shm", "-journal"] {
        let mut name = path.as_os_str().to_owned();
        name.push(suffix);
        match std::fs::set_permissions(&name, std::fs::Permissions::from_mode(0o600)) {
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            other => other?,
        }
    }
    Ok(())
}

#[derive(Clone)]
pub struct SqliteStore {
    conn: Arc<Mutex<Connection>>,
    queues: Arc<HashMap<String, QueueSpec>>,
    /// Woken when a message becomes visible at once (sent, or handed back without delay),
    /// so that idle consumers take it without waiting out their poll.
    arrivals: Arc<tokio::sync::Notify>,
}

impl SqliteStore {
    /// Opens (creating if needed) the database file, its parent folder, and the schema.
    ///
    /// The file holds the JWT signing secret and the envelope keys, so it is readable by
    /// its owner only: a folder it creates is 0700, and the file and its `-wal` and `-shm`
    /// companions are 0600 (SQLite gives the companions the database file's mode; files
    /// left wider by an older version are narrowed on every open).
    pub fn open(path: &Path) -> Result<Self, StoreError> {
        if let Some(parent) = path.parent().filter(|p| !p.as_os_str().is_empty()) {
            private_dir(parent).map_err(StoreError::unavailable)?;
        }
        private_files(path).map_err(StoreError::unavailable)?;
        Self::with_connection(Connection::open(path).map_err(StoreError::unavailable)?)
    }

    /// A private database that lives as long as the store: for tests.
    pub fn in_memory() -> Result<Self, StoreError> {
        Self::with_connection(Connection::open_in_memory().map_err(StoreError::unavailable)?)
    }

    fn with_connection(conn: Connection) -> Result<Self, StoreError> {
        conn.pragma_update(None, "journal_mode", "WAL").map_err(StoreError::unavailable)?;
        // NORMAL in WAL mode: a commit survives a process crash; only an OS crash can lose
        // the last moments, which is the right trade for a local development stack.
        conn.pragma_update(None, "synchronous", "NORMAL").map_err(StoreError::unavailable)?;
        conn.busy_timeout(std::time::Duration::from_secs(5)).map_err(StoreError::unavailable)?;
        // A page cache of 64 MiB and reads through mmap: the queue's messages are read on
        // every receive, and copying pages in with pread dominated the consumers' time.
        conn.pragma_update(None, "cache_size", -65_536).map_err(StoreError::unavailable)?;
        conn.pragma_update(None, "mmap_size", 268_435_456).map_err(StoreError::unavailable)?;
        // Every statement the store runs stays prepared (rusqlite keeps 16 by default, fewer
        // than the hot path of a squad task uses, and preparing one is most of its cost).
        conn.set_prepared_statement_cache_capacity(256);
        conn.execute_batch(SCHEMA).map_err(StoreError::unavailable)?;
        add_columns(
            &conn,
            "queue_messages",
            &[("held", "INTEGER NOT NULL DEFAULT 0"), ("reclaimed", "INTEGER NOT NULL DEFAULT 0")],
        )
        .map_err(StoreError::unavailable)?;
        add_columns(&conn, "squad_tasks", &[("input", "TEXT")]).map_err(StoreError::unavailable)?;
        Ok(Self { conn: Arc::new(Mutex::new(conn)), queues: Arc::default(), arrivals: Arc::default() })
    }

    /// Declares the queues this store serves, each with its dead-letter queue (which is
    /// declared too).
    pub fn with_queues(mut self, specs: impl IntoIterator<Item = QueueSpec>) -> Self {
        let mut queues = (*self.queues).clone();
        for spec in specs {
            if let Some(dead_letter) = &spec.dead_letter {
                queues.entry(dead_letter.queue.clone()).or_insert_with(|| QueueSpec::new(&dead_letter.queue));
            }
            queues.insert(spec.name.clone(), spec);
        }
        self.queues = Arc::new(queues);
        self
    }

    fn conn(&self) -> MutexGuard<'_, Connection> {
        // A panic while holding the lock cannot leave a half-done transaction behind:
        // rusqlite rolls back an unfinished transaction when it is dropped.
        self.conn.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// Adds the columns a file made by an older version lacks (`CREATE TABLE IF NOT EXISTS`
/// leaves an existing table as it was).
fn add_columns(conn: &Connection, table: &str, columns: &[(&str, &str)]) -> rusqlite::Result<()> {
    let existing: Vec<String> = conn
        .prepare(&format!("SELECT name FROM pragma_table_info('{table}')"))?
        .query_map([], |row| row.get(0))?
        .collect::<Result<_, _>>()?;
    for (name, declaration) in columns {
        if !existing.iter().any(|e| e == name) {
            conn.execute_batch(&format!("ALTER TABLE {table} ADD COLUMN {name} {declaration}"))?;
        }
    }
    Ok(())
}

/// The proof that this process is the only one using a database file: an exclusive lock
/// (`flock`) on `<file>.lock` beside it, held until this value is dropped. The system
/// releases it when the process ends, however it ends (`kill -9` included), so a lock
/// file left behind never blocks a start.
#[derive(Debug)]
pub struct DataLock {
    _file: std::fs::File,
    path: PathBuf,
}

/// Another process holds the database's lock.
#[derive(Debug, thiserror::Error)]
pub enum LockError {
    #[error("another process is using {database} (it holds the lock {lock})")]
    Held { database: PathBuf, lock: PathBuf },
    #[error("could not lock {lock}: {source}")]
    Io { lock: PathBuf, source: std::io::Error },
}

impl DataLock {
    /// Takes the lock of the database at `database`, without waiting.
    pub fn take(database: &Path) -> Result<Self, LockError> {
        use std::os::unix::fs::OpenOptionsExt as _;
        let mut name = database.as_os_str().to_owned();
        name.push(".lock");
        let path = PathBuf::from(name);
        let io = |source| LockError::Io { lock: path.clone(), source };
        if let Some(parent) = path.parent().filter(|p| !p.as_os_str().is_empty()) {
            private_dir(parent).map_err(io)?;
        }
        let file = std::fs::OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(false)
            .mode(0o600)
            .open(&path)
            .map_err(io)?;
        match file.try_lock() {
            Ok(()) => Ok(Self { _file: file, path }),
            Err(std::fs::TryLockError::WouldBlock) => {
                Err(LockError::Held { database: database.to_owned(), lock: path })
            }
            Err(std::fs::TryLockError::Error(e)) => Err(io(e)),
        }
    }

    pub fn path(&self) -> &Path {
        &self.path
    }
}

/// What a start-up took back from a process that stopped.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Reclaimed {
    /// Queue messages it held (step tasks, messages, deliveries): visible again at once.
    pub deliveries: usize,
    /// Idempotency keys it had claimed for work in progress: free again.
    pub claims: usize,
    /// Agent concurrency slots it held: free again.
    pub slots: usize,
}

impl SqliteStore {
    /// Takes back, at start-up, what a process that stopped held: its queue deliveries,
    /// its idempotency claims and its agents' slots, which would otherwise wait out their
    /// visibility timeouts and leases (minutes). `lock` proves no other process uses the
    /// file: everything held belongs to one that is gone.
    pub fn reclaim_after_restart(&self, lock: &DataLock) -> Result<Reclaimed, StoreError> {
        let _ = lock;
        let mut conn = self.conn();
        let tx =
            conn.transaction_with_behavior(rusqlite::TransactionBehavior::Immediate).map_err(db_error)?;
        let reclaimed = Reclaimed {
            deliveries: queue::reclaim_held(&tx)?,
            claims: tx.execute("DELETE FROM idempotency WHERE done = 0", []).map_err(db_error)?,
            slots: tx.execute("DELETE FROM agent_slot_leases", []).map_err(db_error)?,
        };
        tx.commit().map_err(db_error)?;
        Ok(reclaimed)
    }
}

impl HealthCheck for SqliteStore {
    async fn health(&self) -> Vec<ComponentHealth> {
        let result = self.conn().query_row("SELECT 1", [], |row| row.get::<_, i64>(0));
        vec![ComponentHealth {
            name: "sqlite",
            ok: result.is_ok(),
            detail: result.err().map(|e| e.to_string()),
        }]
    }
}

fn db_error(error: rusqlite::Error) -> StoreError {
    StoreError::unavailable(error)
}

/// A record as the JSON document stored beside its queried columns.
fn to_doc(value: &impl serde::Serialize) -> Result<String, StoreError> {
    serde_json::to_string(value).map_err(|e| StoreError::Corrupt(e.to_string()))
}

/// A stored document read back; `what` names it in the error if it does not read.
fn from_doc<T: serde::de::DeserializeOwned>(what: &str, doc: &str) -> Result<T, StoreError> {
    serde_json::from_str(doc).map_err(|e| StoreError::Corrupt(format!("{what}: {e}")))
}

/// Runs `sql` (its statement prepared once, then cached) with `params`: the number of
/// rows it changed.
fn execute(conn: &Connection, sql: &str, params: impl Params) -> Result<usize, StoreError> {
    conn.prepare_cached(sql).and_then(|mut statement| statement.execute(params)).map_err(db_error)
}

/// Runs the UPDATE `sql` with `params`, which changes one row unless the stored record
/// moved on from the version it names: then `Conflict(changed())`.
fn update_one(
    conn: &Connection,
    sql: &str,
    params: impl Params,
    changed: impl FnOnce() -> String,
) -> Result<(), StoreError> {
    if execute(conn, sql, params)? == 1 { Ok(()) } else { Err(StoreError::Conflict(changed())) }
}

/// Runs the INSERT `sql` with `params`: `Conflict(exists())` if it breaks a constraint
/// (its key is taken).
fn insert(
    conn: &Connection,
    sql: &str,
    params: impl Params,
    exists: impl FnOnce() -> String,
) -> Result<(), StoreError> {
    match conn.prepare_cached(sql).and_then(|mut statement| statement.execute(params)) {
        Ok(_) => Ok(()),
        Err(e) if is_constraint(&e) => Err(StoreError::Conflict(exists())),
        Err(e) => Err(db_error(e)),
    }
}

impl SqliteStore {
    /// The documents `sql` selects (one column), each read as a `T`, in the order selected.
    fn docs<T: serde::de::DeserializeOwned>(
        &self,
        what: &str,
        sql: &str,
        params: impl Params,
    ) -> Result<Vec<T>, StoreError> {
        // Read under the connection's lock, parsed after it: the other consumers wait on
        // the lock, not on the parsing.
        let docs: Vec<String> = {
            let conn = self.conn();
            let mut statement = conn.prepare_cached(sql).map_err(db_error)?;
            let rows = statement.query_map(params, |row| row.get::<_, String>(0)).map_err(db_error)?;
            rows.collect::<Result<_, _>>().map_err(db_error)?
        };
        docs.iter().map(|doc| from_doc(what, doc)).collect()
    }

    /// Every document in `table` (of an `id` and a `doc` column), by id; `what` and the
    /// id name one that does not read.
    fn docs_by_id<T: serde::de::DeserializeOwned>(
        &self,
        table: &str,
        what: &str,
    ) -> Result<Vec<T>, StoreError> {
        let conn = self.conn();
        let mut statement =
            conn.prepare_cached(&format!("SELECT id, doc FROM {table} ORDER BY id")).map_err(db_error)?;
        let rows = statement
            .query_map([], |row| Ok((row.get::<_, String>(0)?, row.get::<_, String>(1)?)))
            .map_err(db_error)?;
        rows.map(|row| {
            let (id, doc) = row.map_err(db_error)?;
            from_doc(&format!("{what} {id}"), &doc)
        })
        .collect()
    }

    /// The document `sql` selects (at most one row of one column), read as a `T`.
    fn one_doc<T: serde::de::DeserializeOwned>(
        &self,
        what: &str,
        sql: &str,
        params: impl rusqlite::Params,
    ) -> Result<Option<T>, StoreError> {
        use rusqlite::OptionalExtension as _;
        let doc: Option<String> = self
            .conn()
            .prepare_cached(sql)
            .map_err(db_error)?
            .query_row(params, |row| row.get(0))
            .optional()
            .map_err(db_error)?;
        doc.map(|doc| from_doc(what, &doc)).transpose()
    }
}

fn is_constraint(error: &rusqlite::Error) -> bool {
    matches!(error, rusqlite::Error::SqliteFailure(e, _) if e.code == rusqlite::ErrorCode::ConstraintViolation)
}

/// A time as an INTEGER column: nanoseconds since the epoch, so that ordering and
/// comparisons are exact. Saturates outside 1677–2262, far from any real timestamp.
fn nanos(at: Timestamp) -> i64 {
    let ns = at.as_nanosecond();
    i64::try_from(ns).unwrap_or(if ns < 0 { i64::MIN } else { i64::MAX })
}

fn from_nanos(what: &str, ns: i64) -> Result<Timestamp, StoreError> {
    Timestamp::from_nanosecond(i128::from(ns)).map_err(|e| StoreError::Corrupt(format!("{what}: {e}")))
}
