//! Workflow and squad definitions, runs and steps, each stored as its JSON document beside the
//! columns that are queried or conditioned on.

use rusqlite::{OptionalExtension, params};
use tdev_domain::events::Event;
use tdev_domain::ports::StoreError;
use tdev_domain::runs::{
    DefinitionKind, DefinitionStore, Run, RunFilter, RunStore, StepRun, StoredDefinition,
};

use crate::events::with_events;
use crate::{SqliteStore, db_error, from_doc, insert, is_constraint, to_doc, update_one};

/// The table of each kind's versions (the same columns).
fn definitions_table(kind: DefinitionKind) -> &'static str {
    match kind {
        DefinitionKind::Workflow => "workflows",
        DefinitionKind::Squad => "squads",
    }
}

impl DefinitionStore for SqliteStore {
    async fn put_definition(
        &self,
        kind: DefinitionKind,
        definition: &StoredDefinition,
    ) -> Result<(), StoreError> {
        let doc = to_doc(definition)?;
        let table = definitions_table(kind);
        let conn = self.conn();
        let result = conn.execute(
            &format!("INSERT INTO {table} (id, version, created_us, doc) VALUES (?1, ?2, ?3, ?4)"),
            params![definition.id, definition.version, definition.created_at.as_microsecond(), doc],
        );
        match result {
            Ok(_) => Ok(()),
            Err(e) if is_constraint(&e) => {
                let stored: String = conn
                    .query_row(
                        &format!("SELECT doc FROM {table} WHERE id = ?1 AND version = ?2"),
                        params![definition.id, definition.version],
                        |row| row.get(0),
                    )
                    .map_err(db_error)?;
                let stored: StoredDefinition = from_doc(kind.as_str(), &stored)?;
                if stored.content_hash == definition.content_hash {
                    Ok(())
                } else {
                    Err(StoreError::Conflict(format!(
                        "{} {} version {} exists with other content",
                        kind.as_str(),
                        definition.id,
                        definition.version
                    )))
                }
            }
            Err(e) => Err(db_error(e)),
        }
    }

    async fn get_definition(
        &self,
        kind: DefinitionKind,
        id: &str,
        version: Option<&str>,
    ) -> Result<Option<StoredDefinition>, StoreError> {
        let table = definitions_table(kind);
        let conn = self.conn();
        let doc: Option<String> = match version {
            Some(version) => conn.query_row(
                &format!("SELECT doc FROM {table} WHERE id = ?1 AND version = ?2"),
                params![id, version],
                |row| row.get(0),
            ),
            None => conn.query_row(
                &format!(
                    "SELECT doc FROM {table} WHERE id = ?1 ORDER BY created_us DESC, rowid DESC LIMIT 1"
                ),
                [id],
                |row| row.get(0),
            ),
        }
        .optional()
        .map_err(db_error)?;
        doc.map(|doc| from_doc(kind.as_str(), &doc)).transpose()
    }
}

impl RunStore for SqliteStore {
    async fn create_run(&self, run: &Run, events: &[Event]) -> Result<(), StoreError> {
        let sql = "INSERT INTO runs (id, workflow_id, status, created_us, version, doc) VALUES (?1, ?2, ?3, ?4, ?5, ?6)";
        let row = params![
            run.id,
            run.workflow_id,
            run.status.as_str(),
            run.created_at.as_microsecond(),
            run.version,
            to_doc(run)?
        ];
        with_events(&mut self.conn(), events, |conn| {
            insert(conn, sql, row, || format!("run {} exists", run.id))
        })
    }

    async fn get_run(&self, id: &str) -> Result<Option<(Run, Vec<StepRun>)>, StoreError> {
        let conn = self.conn();
        let doc: Option<String> = conn
            .query_row("SELECT doc FROM runs WHERE id = ?1", [id], |row| row.get(0))
            .optional()
            .map_err(db_error)?;
        let Some(doc) = doc else { return Ok(None) };
        let run: Run = from_doc("run", &doc)?;
        let mut statement = conn
            .prepare_cached("SELECT doc FROM run_steps WHERE run_id = ?1 ORDER BY step_id")
            .map_err(db_error)?;
        let docs = statement.query_map([id], |row| row.get::<_, String>(0)).map_err(db_error)?;
        let steps = docs.map(|doc| from_doc("step", &doc.map_err(db_error)?)).collect::<Result<_, _>>()?;
        Ok(Some((run, steps)))
    }

    async fn list_runs(&self, filter: &RunFilter) -> Result<Vec<Run>, StoreError> {
        let sql = "SELECT doc FROM runs
                   WHERE (?1 IS NULL OR workflow_id = ?1) AND (?2 IS NULL OR status = ?2)
                   ORDER BY created_us DESC, id DESC";
        self.docs("run", sql, params![filter.workflow_id, filter.status.map(|s| s.as_str())])
    }

    async fn update_run(&self, run: &Run, events: &[Event]) -> Result<(), StoreError> {
        let sql = "UPDATE runs SET status = ?1, version = ?2, doc = ?3 WHERE id = ?4 AND version = ?5";
        let row =
            params![run.status.as_str(), run.version, to_doc(run)?, run.id, run.version.saturating_sub(1)];
        with_events(&mut self.conn(), events, |conn| {
            update_one(conn, sql, row, || format!("run {} changed", run.id))
        })
    }

    async fn create_step(&self, run_id: &str, step: &StepRun, events: &[Event]) -> Result<(), StoreError> {
        let sql = "INSERT INTO run_steps (run_id, step_id, version, doc) VALUES (?1, ?2, ?3, ?4)";
        let row = params![run_id, step.step_id, step.version, to_doc(step)?];
        with_events(&mut self.conn(), events, |conn| {
            insert(conn, sql, row, || format!("step {} exists", step.step_id))
        })
    }

    async fn get_step(&self, run_id: &str, step_id: &str) -> Result<Option<StepRun>, StoreError> {
        self.one_doc(
            "step",
            "SELECT doc FROM run_steps WHERE run_id = ?1 AND step_id = ?2",
            [run_id, step_id],
        )
    }

    async fn update_step(&self, run_id: &str, step: &StepRun, events: &[Event]) -> Result<(), StoreError> {
        let sql = "UPDATE run_steps SET version = ?1, doc = ?2
                   WHERE run_id = ?3 AND step_id = ?4 AND version = ?5";
        let row = params![step.version, to_doc(step)?, run_id, step.step_id, step.version.saturating_sub(1)];
        with_events(&mut self.conn(), events, |conn| {
            update_one(conn, sql, row, || format!("step {} changed", step.step_id))
        })
    }
}
