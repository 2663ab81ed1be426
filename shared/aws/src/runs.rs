//! Runs and steps in the single table (workflow versions: [`crate::workflows`]).
//!
//! - Run: `pk = "RUN#<id>"`, `sk = "RUN"`, `version`, `status`, `workflow_id`, `doc`,
//!   listed through `gsi1` (`gsi1pk = "RUNS"`, `gsi1sk = <created µs, 20 digits>#<id>`).
//! - Step: `pk = "RUN#<id>"`, `sk = "STEP#<step id>"`, `version`, `doc` — one Query reads
//!   a run with all its steps.

use tdev_domain::events::Event;
use tdev_domain::ports::StoreError;
use tdev_domain::runs::{Run, RunFilter, RunStore, StepRun};

use crate::AwsStore;
use crate::attrs::{self, Item, s};
use crate::items::{GSI, listed_by_age, versioned_item};

const RUN_SK: &str = "RUN";
const RUNS_GSI_PK: &str = "RUNS";

fn run_pk(id: &str) -> String {
    format!("RUN#{id}")
}

fn step_sk(step_id: &str) -> String {
    format!("STEP#{step_id}")
}

impl RunStore for AwsStore {
    async fn create_run(&self, run: &Run, events: &[Event]) -> Result<(), StoreError> {
        self.create_with_events(run_item(run)?, events, || format!("run {} exists", run.id)).await
    }

    async fn get_run(&self, id: &str) -> Result<Option<(Run, Vec<StepRun>)>, StoreError> {
        let items = self.query(None, run_pk(id), true).await?;
        let mut run = None;
        let mut steps = Vec::new();
        for item in &items {
            if attrs::string(item, "sk")? == RUN_SK {
                run = Some(attrs::from_doc::<Run>("run", item)?);
            } else {
                steps.push(attrs::from_doc::<StepRun>("step", item)?);
            }
        }
        Ok(run.map(|run| (run, steps)))
    }

    async fn list_runs(&self, filter: &RunFilter) -> Result<Vec<Run>, StoreError> {
        let items = self.query(Some(GSI), RUNS_GSI_PK.to_owned(), false).await?;
        let mut runs = Vec::new();
        for item in &items {
            let run: Run = attrs::from_doc("run", item)?;
            if filter.matches(&run) {
                runs.push(run);
            }
        }
        Ok(runs)
    }

    async fn update_run(&self, run: &Run, events: &[Event]) -> Result<(), StoreError> {
        let changed = || format!("run {} changed", run.id);
        self.next_version_with_events(run_item(run)?, run.version, events, changed).await
    }

    async fn create_step(&self, run_id: &str, step: &StepRun, events: &[Event]) -> Result<(), StoreError> {
        self.create_with_events(step_item(run_id, step)?, events, || format!("step {} exists", step.step_id))
            .await
    }

    async fn get_step(&self, run_id: &str, step_id: &str) -> Result<Option<StepRun>, StoreError> {
        let item = self.get(run_pk(run_id), &step_sk(step_id)).await?;
        item.as_ref().map(|item| attrs::from_doc("step", item)).transpose()
    }

    async fn update_step(&self, run_id: &str, step: &StepRun, events: &[Event]) -> Result<(), StoreError> {
        let changed = || format!("step {} changed", step.step_id);
        self.next_version_with_events(step_item(run_id, step)?, step.version, events, changed).await
    }
}

fn run_item(run: &Run) -> Result<Item, StoreError> {
    let mut item = versioned_item(run_pk(&run.id), RUN_SK, run.version, attrs::doc(run)?);
    item.extend(listed_by_age(RUNS_GSI_PK, run.created_at, &run.id));
    item.extend([
        ("workflow_id".to_owned(), s(&run.workflow_id)),
        ("status".to_owned(), s(run.status.as_str())),
    ]);
    Ok(item)
}

fn step_item(run_id: &str, step: &StepRun) -> Result<Item, StoreError> {
    Ok(versioned_item(run_pk(run_id), &step_sk(&step.step_id), step.version, attrs::doc(step)?))
}
