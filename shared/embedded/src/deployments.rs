//! Deployments (each a JSON document beside the columns that are filtered, ordered or
//! conditioned on), their append-only events, their backups, and the per-agent locks.
//!
//! - create and transition are one `IMMEDIATE` transaction each: the record, its event and
//!   the lock are written together or not at all.
//! - A lock is held through its last instant: `until >= now` counts as held (as the AWS
//!   backend's `until_ns < :now` takeover condition does).
//! - A transition of a deployment that does not exist is a `Conflict` (no stored revision
//!   matches), as on AWS.
//! - A listing with `limit` 0 is not limited.

use jiff::Timestamp;
use rusqlite::{Connection, OptionalExtension, Params, TransactionBehavior, params};
use tdev_domain::deploy::{
    AgentLock, Backup, Deployment, DeploymentEvent, DeploymentFilter, DeploymentStore,
};
use tdev_domain::ports::StoreError;

use crate::{SqliteStore, db_error, execute, from_nanos, insert, nanos, to_doc};

fn insert_event(conn: &Connection, event: &DeploymentEvent) -> Result<(), StoreError> {
    let sql = "INSERT INTO deployment_events (deployment_id, seq, doc) VALUES (?1, ?2, ?3)";
    insert(conn, sql, params![event.deployment_id, event.seq, to_doc(event)?], || {
        format!("deployment {} has an event {} already", event.deployment_id, event.seq)
    })
}

/// A deployment's row in column order, `id` first: the parameters of its insert and of
/// its transition alike.
fn row(deployment: &Deployment) -> Result<impl Params + '_, StoreError> {
    Ok((
        &deployment.id,
        &deployment.agent,
        deployment.status.as_str(),
        nanos(deployment.created_at),
        deployment.revision,
        to_doc(deployment)?,
    ))
}

impl DeploymentStore for SqliteStore {
    async fn create_deployment(
        &self,
        deployment: &Deployment,
        event: &DeploymentEvent,
        now: Timestamp,
        lock_until: Option<Timestamp>,
    ) -> Result<(), StoreError> {
        let row = row(deployment)?;
        let mut conn = self.conn();
        let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate).map_err(db_error)?;
        let sql = "INSERT INTO deployments (id, agent, status, created_ns, revision, doc)
                   VALUES (?1, ?2, ?3, ?4, ?5, ?6)";
        insert(&tx, sql, row, || format!("deployment {} exists", deployment.id))?;
        insert_event(&tx, event)?;
        if let Some(until) = lock_until {
            // Takes the lock unless another holder has it through `now` or later.
            let lock = "INSERT INTO deployment_locks (agent, holder, until_ns) VALUES (?1, ?2, ?3)
                        ON CONFLICT (agent) DO UPDATE SET holder = excluded.holder, until_ns = excluded.until_ns
                        WHERE deployment_locks.holder = excluded.holder OR deployment_locks.until_ns < ?4";
            let taken =
                execute(&tx, lock, params![deployment.agent, deployment.id, nanos(until), nanos(now)])?;
            if taken == 0 {
                return Err(StoreError::Conflict(format!(
                    "agent {} is locked by another deployment",
                    deployment.agent
                )));
            }
        }
        tx.commit().map_err(db_error)
    }

    async fn get_deployment(&self, id: &str) -> Result<Option<Deployment>, StoreError> {
        self.one_doc("deployment", "SELECT doc FROM deployments WHERE id = ?1", [id])
    }

    async fn list_deployments(&self, filter: &DeploymentFilter) -> Result<Vec<Deployment>, StoreError> {
        let sql = "SELECT doc FROM deployments
                   WHERE (?1 IS NULL OR agent = ?1) AND (?2 IS NULL OR status = ?2)
                   ORDER BY created_ns DESC, id DESC LIMIT ?3";
        // A negative LIMIT is none in SQLite.
        let limit = if filter.limit == 0 { -1 } else { i64::try_from(filter.limit).unwrap_or(i64::MAX) };
        self.docs("deployment", sql, params![filter.agent, filter.status.map(|s| s.as_str()), limit])
    }

    async fn transition(&self, deployment: &Deployment, event: &DeploymentEvent) -> Result<(), StoreError> {
        let row = row(deployment)?;
        let Some(previous) = deployment.revision.checked_sub(1) else {
            return Err(StoreError::Conflict(format!("deployment {} has no revision 0", deployment.id)));
        };
        let mut conn = self.conn();
        let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate).map_err(db_error)?;
        // Written only over the revision before this one: `?5 - 1` is `previous`.
        let sql = "UPDATE deployments SET agent = ?2, status = ?3, created_ns = ?4, revision = ?5, doc = ?6
                   WHERE id = ?1 AND revision = ?5 - 1";
        let updated = execute(&tx, sql, row)?;
        if updated == 0 {
            return Err(StoreError::Conflict(format!(
                "deployment {} is not at revision {previous}",
                deployment.id
            )));
        }
        insert_event(&tx, event)?;
        tx.commit().map_err(db_error)
    }

    async fn deployment_events(&self, deployment_id: &str) -> Result<Vec<DeploymentEvent>, StoreError> {
        let sql = "SELECT doc FROM deployment_events WHERE deployment_id = ?1 ORDER BY seq";
        self.docs("deployment event", sql, [deployment_id])
    }

    async fn put_backup(&self, backup: &Backup) -> Result<(), StoreError> {
        let sql = "INSERT INTO deployment_backups (deployment_id, doc) VALUES (?1, ?2)";
        insert(&self.conn(), sql, params![backup.deployment_id, to_doc(backup)?], || {
            format!("deployment {} has a backup", backup.deployment_id)
        })
    }

    async fn get_backup(&self, deployment_id: &str) -> Result<Option<Backup>, StoreError> {
        self.one_doc("backup", "SELECT doc FROM deployment_backups WHERE deployment_id = ?1", [deployment_id])
    }

    async fn get_lock(&self, agent: &str) -> Result<Option<AgentLock>, StoreError> {
        let row: Option<(String, i64)> = self
            .conn()
            .prepare_cached("SELECT holder, until_ns FROM deployment_locks WHERE agent = ?1")
            .map_err(db_error)?
            .query_row([agent], |row| Ok((row.get(0)?, row.get(1)?)))
            .optional()
            .map_err(db_error)?;
        row.map(|(holder, until)| {
            Ok(AgentLock { agent: agent.to_owned(), holder, until: from_nanos("lock until", until)? })
        })
        .transpose()
    }

    async fn renew_lock(&self, agent: &str, holder: &str, until: Timestamp) -> Result<(), StoreError> {
        let sql = "UPDATE deployment_locks SET until_ns = ?3 WHERE agent = ?1 AND holder = ?2";
        let renewed = execute(&self.conn(), sql, params![agent, holder, nanos(until)])?;
        if renewed == 1 {
            Ok(())
        } else {
            Err(StoreError::Conflict(format!("{holder} does not hold agent {agent}'s lock")))
        }
    }

    async fn release_lock(&self, agent: &str, holder: &str) -> Result<(), StoreError> {
        execute(
            &self.conn(),
            "DELETE FROM deployment_locks WHERE agent = ?1 AND holder = ?2",
            [agent, holder],
        )?;
        Ok(())
    }
}
