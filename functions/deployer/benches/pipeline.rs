//! The pipeline's own overhead per deployment, without AWS: deployments of 200 agents run
//! to the end on the embedded store (SQLite in memory) and its queue, against a target
//! that answers at once from memory. What is measured is what the pipeline adds to the
//! target's own latency: the checks, the conditional writes with their events, the lock,
//! the backup, the queue.
//!
//! Run: `cargo bench -p tdev-deployer --bench pipeline`. Not part of CI.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde_json::json;
use tdev_domain::SystemClock;
use tdev_domain::agents::AgentTarget;
use tdev_domain::deploy::{
    AgentDeployer, AgentSpec, DEPLOY_DEAD_LETTER_QUEUE, DEPLOY_MAX_RECEIVES, DEPLOY_QUEUE, DeployConfig,
    DeployError, DeploymentStore, Deployments, PlatformKind, Published, Readiness, Snapshot, Submitted,
};
use tdev_domain::ports::MessageQueue;
use tdev_domain::queue::Outcome;
use tdev_domain::queue::QueueSpec;
use tdev_embedded::SqliteStore;
use tdev_invoke::{Invoker, default_http_client};

/// One agent on the target: its draft, its versions, the version its alias serves.
type AgentState = (AgentSpec, Vec<AgentSpec>, Option<usize>);

/// A target with no latency.
#[derive(Default)]
struct InstantTarget {
    agents: Mutex<HashMap<String, AgentState>>,
}

fn published(spec: &AgentSpec, version: usize) -> Published {
    Published {
        version: version.to_string(),
        target: AgentTarget::Http { url: format!("http://127.0.0.1:9/{}", spec.name) },
    }
}

impl AgentDeployer for InstantTarget {
    fn supports(&self, kind: PlatformKind) -> bool {
        kind == PlatformKind::Local
    }
    async fn snapshot(&self, spec: &AgentSpec) -> Result<Option<Snapshot>, DeployError> {
        Ok(self.agents.lock().unwrap().get(&spec.name).map(|(draft, _, alias)| Snapshot {
            serving_version: alias.map(|v| v.to_string()),
            config: serde_json::to_value(draft).unwrap(),
        }))
    }
    async fn apply(&self, spec: &AgentSpec) -> Result<(), DeployError> {
        let mut agents = self.agents.lock().unwrap();
        agents.entry(spec.name.clone()).or_insert_with(|| (spec.clone(), Vec::new(), None)).0 = spec.clone();
        Ok(())
    }
    async fn prepare(&self, _: &AgentSpec) -> Result<Readiness, DeployError> {
        Ok(Readiness::Ready)
    }
    async fn publish(&self, spec: &AgentSpec) -> Result<Published, DeployError> {
        let mut agents = self.agents.lock().unwrap();
        let (draft, versions, alias) = agents.get_mut(&spec.name).unwrap();
        versions.push(draft.clone());
        *alias = Some(versions.len());
        Ok(published(spec, versions.len()))
    }
    async fn point_to(&self, spec: &AgentSpec, version: &str) -> Result<Published, DeployError> {
        let mut agents = self.agents.lock().unwrap();
        let version: usize = version.parse().unwrap();
        agents.get_mut(&spec.name).unwrap().2 = Some(version);
        Ok(published(spec, version))
    }
    async fn restore(&self, spec: &AgentSpec, snapshot: &Snapshot) -> Result<(), DeployError> {
        let draft: AgentSpec = serde_json::from_value(snapshot.config.clone()).unwrap();
        self.agents.lock().unwrap().get_mut(&spec.name).unwrap().0 = draft;
        Ok(())
    }
}

fn spec(i: usize) -> Submitted {
    Submitted::from_value(json!({
        "name": format!("agent-{i}"),
        "description": "A benchmark agent",
        "target": {"kind": "local", "url": "http://127.0.0.1:9/"},
        "register": {"id": format!("agent-{i}"), "capabilities": ["bench"]},
    }))
}

#[tokio::main(flavor = "current_thread")]
async fn main() {
    const AGENTS: usize = 200;
    let store = SqliteStore::in_memory().unwrap().with_queues([QueueSpec::with_dead_letter(
        DEPLOY_QUEUE,
        DEPLOY_DEAD_LETTER_QUEUE,
        DEPLOY_MAX_RECEIVES,
    )]);
    let invoker = Invoker::new(default_http_client().unwrap(), None);
    let pipeline = Deployments::new(
        store.clone(),
        store.clone(),
        InstantTarget::default(),
        invoker,
        Arc::new(SystemClock),
        DeployConfig::default(),
    );
    for round in ["first deploy", "update"] {
        let started = Instant::now();
        let mut accept = Duration::ZERO;
        for i in 0..AGENTS {
            let t = Instant::now();
            pipeline.deploy(spec(i), "bench", None).await.unwrap();
            accept += t.elapsed();
        }
        let mut writes = 0;
        loop {
            let batch = store.receive(DEPLOY_QUEUE, 10, Duration::from_secs(60)).await.unwrap();
            if batch.is_empty() {
                break;
            }
            for delivery in batch {
                let outcome = pipeline.process(&delivery).await;
                assert_eq!(outcome, Outcome::Done);
                pipeline.queue().settle(DEPLOY_QUEUE, &delivery, outcome).await.unwrap();
            }
        }
        let total = started.elapsed();
        let deployments = pipeline
            .list(&tdev_domain::deploy::DeploymentFilter { agent: None, status: None, limit: 0 })
            .await
            .unwrap();
        for d in &deployments {
            writes += store.deployment_events(&d.id).await.unwrap().len();
        }
        println!(
            "{round}: {AGENTS} deployments in {total:.2?}: {:.0} µs each end to end ({:.0} µs to accept the request); {} events so far",
            total.as_secs_f64() * 1e6 / AGENTS as f64,
            accept.as_secs_f64() * 1e6 / AGENTS as f64,
            writes,
        );
    }
}
