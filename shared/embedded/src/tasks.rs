//! Squad tasks and their assignments, each stored as its JSON document beside the columns
//! that are queried or conditioned on (as runs and steps are: [`crate::runs`]). A task's
//! input is a column of its own, written once: the document, read and written at every
//! step of the task, stays small however large the input.

use rusqlite::params;
use serde_json::{Map, Value};
use tdev_domain::ports::StoreError;
use tdev_domain::runs::{Assignment, SquadTask, TaskFilter, TaskStore};

use tdev_domain::events::Event;

use crate::events::with_events;
use crate::{SqliteStore, insert, to_doc, update_one};

impl TaskStore for SqliteStore {
    async fn create_task(
        &self,
        task: &SquadTask,
        input: &Map<String, Value>,
        events: &[Event],
    ) -> Result<(), StoreError> {
        let sql = "INSERT INTO squad_tasks (id, squad_id, status, created_us, version, doc, input)
                   VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)";
        let row = params![
            task.id,
            task.squad_id,
            task.status.as_str(),
            task.created_at.as_microsecond(),
            task.version,
            to_doc(task)?,
            to_doc(input)?
        ];
        with_events(&mut self.conn(), events, |conn| {
            insert(conn, sql, row, || format!("task {} exists", task.id))
        })
    }

    async fn get_task(&self, id: &str) -> Result<Option<SquadTask>, StoreError> {
        self.one_doc("task", "SELECT doc FROM squad_tasks WHERE id = ?1", [id])
    }

    async fn get_task_input(&self, id: &str) -> Result<Option<Map<String, Value>>, StoreError> {
        // A task recorded by a version that kept the input in its document has it there.
        let sql = "SELECT COALESCE(input, json_extract(doc, '$.input')) FROM squad_tasks WHERE id = ?1";
        self.one_doc("task input", sql, [id])
    }

    async fn list_tasks(&self, filter: &TaskFilter) -> Result<Vec<SquadTask>, StoreError> {
        // Ties in age go by id, descending: the order of the DynamoDB index.
        let sql = "SELECT doc FROM squad_tasks
                   WHERE (?1 IS NULL OR squad_id = ?1) AND (?2 IS NULL OR status = ?2)
                   ORDER BY created_us DESC, id DESC";
        self.docs("task", sql, params![filter.squad_id, filter.status.map(|s| s.as_str())])
    }

    async fn update_task(&self, task: &SquadTask, events: &[Event]) -> Result<(), StoreError> {
        let sql = "UPDATE squad_tasks SET status = ?1, version = ?2, doc = ?3 WHERE id = ?4 AND version = ?5";
        let row = params![
            task.status.as_str(),
            task.version,
            to_doc(task)?,
            task.id,
            task.version.saturating_sub(1)
        ];
        with_events(&mut self.conn(), events, |conn| {
            update_one(conn, sql, row, || format!("task {} changed", task.id))
        })
    }

    async fn create_assignment(&self, task_id: &str, assignment: &Assignment) -> Result<(), StoreError> {
        let sql = "INSERT INTO squad_assignments (task_id, id, version, doc) VALUES (?1, ?2, ?3, ?4)";
        let row = params![task_id, assignment.id, assignment.version, to_doc(assignment)?];
        insert(&self.conn(), sql, row, || format!("assignment {} exists", assignment.id))
    }

    async fn get_assignment(&self, task_id: &str, id: &str) -> Result<Option<Assignment>, StoreError> {
        let sql = "SELECT doc FROM squad_assignments WHERE task_id = ?1 AND id = ?2";
        self.one_doc("assignment", sql, [task_id, id])
    }

    async fn list_assignments(&self, task_id: &str) -> Result<Vec<Assignment>, StoreError> {
        let sql = "SELECT doc FROM squad_assignments WHERE task_id = ?1 ORDER BY id";
        self.docs("assignment", sql, [task_id])
    }

    async fn update_assignment(
        &self,
        task_id: &str,
        assignment: &Assignment,
        events: &[Event],
    ) -> Result<(), StoreError> {
        let sql = "UPDATE squad_assignments SET version = ?1, doc = ?2
                   WHERE task_id = ?3 AND id = ?4 AND version = ?5";
        let row = params![
            assignment.version,
            to_doc(assignment)?,
            task_id,
            assignment.id,
            assignment.version.saturating_sub(1)
        ];
        with_events(&mut self.conn(), events, |conn| {
            update_one(conn, sql, row, || format!("assignment {} changed", assignment.id))
        })
    }
}
