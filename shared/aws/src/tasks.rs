//! Squad tasks and their assignments in the single table, kept as runs and steps are
//! ([`crate::runs`]).
//!
//! - Task: `pk = "TASK#<id>"`, `sk = "TASK"`, `version`, `status`, `squad_id`, `doc`,
//!   listed through `gsi1` (`gsi1pk = "TASKS"`, `gsi1sk = <created µs, 20 digits>#<id>`).
//! - Its input: `pk = "TASK#<id>"`, `sk = "INPUT"`, `doc` (at most 256 KiB), written in one
//!   transaction with the task and never changed: the task's record, read and written at
//!   every step, stays small however large the input.
//! - Assignment: `pk = "TASK#<id>"`, `sk = "ASSIGN#<assignment id>"`, `version`, `doc` —
//!   one Query (`begins_with(sk, "ASSIGN#")`, every page) reads a task's assignments by id;
//!   reading the task is one GetItem, however many it has.

use serde_json::{Map, Value};
use tdev_domain::events::Event;
use tdev_domain::ports::StoreError;
use tdev_domain::runs::{Assignment, SquadTask, TaskFilter, TaskStore};

use crate::AwsStore;
use crate::attrs::{self, Item, s};
use crate::items::{listed_by_age, put, versioned_item};

const TASK_SK: &str = "TASK";
const INPUT_SK: &str = "INPUT";
const TASKS_GSI_PK: &str = "TASKS";
const ASSIGNMENT_PREFIX: &str = "ASSIGN#";

fn task_pk(id: &str) -> String {
    format!("TASK#{id}")
}

fn assignment_sk(id: &str) -> String {
    format!("{ASSIGNMENT_PREFIX}{id}")
}

impl TaskStore for AwsStore {
    async fn create_task(
        &self,
        task: &SquadTask,
        input: &Map<String, Value>,
        events: &[Event],
    ) -> Result<(), StoreError> {
        let new = "attribute_not_exists(pk)";
        let input_item = Item::from([
            ("pk".to_owned(), s(task_pk(&task.id))),
            ("sk".to_owned(), s(INPUT_SK)),
            ("doc".to_owned(), attrs::doc(input)?),
        ]);
        let mut items =
            vec![put(&self.table, task_item(task)?, new, &[])?, put(&self.table, input_item, new, &[])?];
        for event in events {
            items.push(put(&self.table, crate::events::to_item(event)?, new, &[])?);
        }
        let exists = format!("task {} exists", task.id);
        self.transact(items, &[exists.clone(), exists]).await
    }

    async fn get_task(&self, id: &str) -> Result<Option<SquadTask>, StoreError> {
        let item = self.get(task_pk(id), TASK_SK).await?;
        item.as_ref().map(|item| attrs::from_doc("task", item)).transpose()
    }

    async fn get_task_input(&self, id: &str) -> Result<Option<Map<String, Value>>, StoreError> {
        let item = self.get(task_pk(id), INPUT_SK).await?;
        item.as_ref().map(|item| attrs::from_doc("task input", item)).transpose()
    }

    async fn list_tasks(&self, filter: &TaskFilter) -> Result<Vec<SquadTask>, StoreError> {
        let equal = [
            ("squad_id", filter.squad_id.as_deref()),
            ("status", filter.status.map(|status| status.as_str())),
        ];
        // The filter is applied on the server (less to transfer), and again here.
        self.list_under(&self.table, TASKS_GSI_PK, false, &equal, usize::MAX, |item| {
            let task: SquadTask = attrs::from_doc("task", item)?;
            Ok(filter.matches(&task).then_some(task))
        })
        .await
    }

    async fn update_task(&self, task: &SquadTask, events: &[Event]) -> Result<(), StoreError> {
        let changed = || format!("task {} changed", task.id);
        self.next_version_with_events(task_item(task)?, task.version, events, changed).await
    }

    async fn create_assignment(&self, task_id: &str, assignment: &Assignment) -> Result<(), StoreError> {
        let exists = || format!("assignment {} exists", assignment.id);
        self.insert(assignment_item(task_id, assignment)?, exists).await
    }

    async fn get_assignment(&self, task_id: &str, id: &str) -> Result<Option<Assignment>, StoreError> {
        let item = self.get(task_pk(task_id), &assignment_sk(id)).await?;
        item.as_ref().map(|item| attrs::from_doc("assignment", item)).transpose()
    }

    async fn list_assignments(&self, task_id: &str) -> Result<Vec<Assignment>, StoreError> {
        let items = self.query_prefix(&self.table, task_pk(task_id), ASSIGNMENT_PREFIX).await?;
        items.iter().map(|item| attrs::from_doc("assignment", item)).collect()
    }

    async fn update_assignment(
        &self,
        task_id: &str,
        assignment: &Assignment,
        events: &[Event],
    ) -> Result<(), StoreError> {
        let changed = || format!("assignment {} changed", assignment.id);
        let item = assignment_item(task_id, assignment)?;
        self.next_version_with_events(item, assignment.version, events, changed).await
    }
}

fn task_item(task: &SquadTask) -> Result<Item, StoreError> {
    let mut item = versioned_item(task_pk(&task.id), TASK_SK, task.version, attrs::doc(task)?);
    item.extend(listed_by_age(TASKS_GSI_PK, task.created_at, &task.id));
    item.extend([("squad_id".to_owned(), s(&task.squad_id)), ("status".to_owned(), s(task.status.as_str()))]);
    Ok(item)
}

fn assignment_item(task_id: &str, assignment: &Assignment) -> Result<Item, StoreError> {
    Ok(versioned_item(
        task_pk(task_id),
        &assignment_sk(&assignment.id),
        assignment.version,
        attrs::doc(assignment)?,
    ))
}
