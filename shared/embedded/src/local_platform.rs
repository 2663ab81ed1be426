//! The local stack's deploy target: a tiny Bedrock kept in the SQLite file.
//!
//! Per agent name: a draft (the spec as JSON) with a revision that each change bumps,
//! immutable versions `1`, `2`, … (each a copy of the draft with the revision it came
//! from), and the alias (the version in service). A version is served by the HTTP agent
//! at its spec's `target.url`. Every write is one transaction, and every operation may
//! be repeated: an unchanged draft is not bumped, and a publish whose alias already
//! serves the current draft revision returns that version.

use rusqlite::{OptionalExtension, Transaction, TransactionBehavior, params};
use serde_json::{Value, json};
use tdev_domain::agents::AgentTarget;
use tdev_domain::deploy::{
    AgentDeployer, AgentSpec, DeployError, PlatformKind, Published, Readiness, Snapshot,
};

use crate::SqliteStore;

/// The [`AgentDeployer`] for `target.kind: local`, on the store's SQLite file.
#[derive(Clone)]
pub struct LocalPlatform {
    store: SqliteStore,
}

impl LocalPlatform {
    /// The target on `store`'s file (its tables are part of the store's schema).
    pub fn new(store: SqliteStore) -> Self {
        Self { store }
    }

    /// Runs `work` in one `IMMEDIATE` transaction, committed if it succeeds.
    fn in_transaction<T>(
        &self,
        work: impl FnOnce(&Transaction<'_>) -> Result<T, DeployError>,
    ) -> Result<T, DeployError> {
        let mut conn = self.store.conn();
        let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate).map_err(unavailable)?;
        let value = work(&tx)?;
        tx.commit().map_err(unavailable)?;
        Ok(value)
    }
}

fn unavailable(error: rusqlite::Error) -> DeployError {
    DeployError::Unavailable(format!("sqlite: {error}"))
}

fn parse(what: &str, text: &str) -> Result<Value, DeployError> {
    serde_json::from_str(text).map_err(|e| DeployError::Failed(format!("corrupt {what}: {e}")))
}

fn local(spec: &AgentSpec) -> Result<(), DeployError> {
    match spec.platform.kind() {
        PlatformKind::Local => Ok(()),
        other => Err(DeployError::Failed(format!("the local platform does not deploy to {other}"))),
    }
}

/// The agent's draft, its revision, and the version its alias serves.
fn agent(tx: &Transaction<'_>, name: &str) -> Result<Option<(Value, i64, Option<i64>)>, DeployError> {
    let row: Option<(String, i64, Option<i64>)> = tx
        .prepare_cached("SELECT draft, draft_revision, alias FROM local_agents WHERE name = ?1")
        .map_err(unavailable)?
        .query_row([name], |row| Ok((row.get(0)?, row.get(1)?, row.get(2)?)))
        .optional()
        .map_err(unavailable)?;
    row.map(|(draft, revision, alias)| Ok((parse("draft", &draft)?, revision, alias))).transpose()
}

/// Version `version`'s spec and the draft revision it was made from.
fn version(tx: &Transaction<'_>, name: &str, version: i64) -> Result<Option<(Value, i64)>, DeployError> {
    let row: Option<(String, i64)> = tx
        .prepare_cached(
            "SELECT spec, draft_revision FROM local_agent_versions WHERE name = ?1 AND version = ?2",
        )
        .map_err(unavailable)?
        .query_row(params![name, version], |row| Ok((row.get(0)?, row.get(1)?)))
        .optional()
        .map_err(unavailable)?;
    row.map(|(spec, revision)| Ok((parse("version", &spec)?, revision))).transpose()
}

/// Makes `draft` the agent's draft, bumping its revision only if it changed.
fn set_draft(tx: &Transaction<'_>, name: &str, draft: &Value) -> Result<(), DeployError> {
    let text = draft.to_string();
    match agent(tx, name)? {
        Some((current, ..)) if current == *draft => Ok(()),
        Some(_) => tx
            .prepare_cached(
                "UPDATE local_agents SET draft = ?2, draft_revision = draft_revision + 1 WHERE name = ?1",
            )
            .map_err(unavailable)?
            .execute(params![name, text])
            .map(drop)
            .map_err(unavailable),
        None => tx
            .prepare_cached("INSERT INTO local_agents (name, draft, draft_revision) VALUES (?1, ?2, 1)")
            .map_err(unavailable)?
            .execute(params![name, text])
            .map(drop)
            .map_err(unavailable),
    }
}

/// What serves `version` of a stored spec: its `target.url`.
fn published(version: i64, spec: &Value) -> Result<Published, DeployError> {
    let url = spec.pointer("/target/url").and_then(Value::as_str).filter(|url| !url.is_empty());
    let url = url.ok_or_else(|| DeployError::Failed(format!("version {version} has no target.url")))?;
    Ok(Published { version: version.to_string(), target: AgentTarget::Http { url: url.to_owned() } })
}

impl AgentDeployer for LocalPlatform {
    fn supports(&self, kind: PlatformKind) -> bool {
        kind == PlatformKind::Local
    }

    async fn snapshot(&self, spec: &AgentSpec) -> Result<Option<Snapshot>, DeployError> {
        local(spec)?;
        let found = self.in_transaction(|tx| agent(tx, &spec.name))?;
        Ok(found.map(|(draft, _, alias)| Snapshot {
            serving_version: alias.map(|v| v.to_string()),
            config: json!({ "draft": draft }),
        }))
    }

    async fn apply(&self, spec: &AgentSpec) -> Result<(), DeployError> {
        local(spec)?;
        let draft = serde_json::to_value(spec).map_err(|e| DeployError::Failed(e.to_string()))?;
        self.in_transaction(|tx| set_draft(tx, &spec.name, &draft))
    }

    async fn prepare(&self, spec: &AgentSpec) -> Result<Readiness, DeployError> {
        local(spec)?;
        Ok(Readiness::Ready)
    }

    async fn publish(&self, spec: &AgentSpec) -> Result<Published, DeployError> {
        local(spec)?;
        self.in_transaction(|tx| {
            let (draft, revision, alias) = agent(tx, &spec.name)?
                .ok_or_else(|| DeployError::Failed(format!("agent {} has no draft", spec.name)))?;
            if let Some(serving) = alias
                && let Some((made_from, made_at)) = version(tx, &spec.name, serving)?
                && made_at == revision
            {
                return published(serving, &made_from);
            }
            let next: i64 = tx
                .prepare_cached(
                    "SELECT COALESCE(MAX(version), 0) + 1 FROM local_agent_versions WHERE name = ?1",
                )
                .map_err(unavailable)?
                .query_row([&spec.name], |row| row.get(0))
                .map_err(unavailable)?;
            let served = published(next, &draft)?;
            tx.prepare_cached(
                "INSERT INTO local_agent_versions (name, version, spec, draft_revision)
                 VALUES (?1, ?2, ?3, ?4)",
            )
            .map_err(unavailable)?
            .execute(params![spec.name, next, draft.to_string(), revision])
            .map_err(unavailable)?;
            tx.prepare_cached("UPDATE local_agents SET alias = ?2 WHERE name = ?1")
                .map_err(unavailable)?
                .execute(params![spec.name, next])
                .map_err(unavailable)?;
            Ok(served)
        })
    }

    async fn point_to(&self, spec: &AgentSpec, to: &str) -> Result<Published, DeployError> {
        local(spec)?;
        let missing = || DeployError::Failed(format!("agent {} has no version {to}", spec.name));
        let number: i64 = to.parse().map_err(|_| missing())?;
        self.in_transaction(|tx| {
            let (stored, _) = version(tx, &spec.name, number)?.ok_or_else(missing)?;
            let served = published(number, &stored)?;
            tx.prepare_cached("UPDATE local_agents SET alias = ?2 WHERE name = ?1")
                .map_err(unavailable)?
                .execute(params![spec.name, number])
                .map_err(unavailable)?;
            Ok(served)
        })
    }

    async fn restore(&self, spec: &AgentSpec, snapshot: &Snapshot) -> Result<(), DeployError> {
        local(spec)?;
        let draft = snapshot
            .config
            .get("draft")
            .filter(|draft| draft.is_object())
            .ok_or_else(|| DeployError::Failed("the snapshot holds no local draft".into()))?;
        self.in_transaction(|tx| set_draft(tx, &spec.name, draft))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec(name: &str, url: &str, instruction: &str) -> AgentSpec {
        serde_json::from_value(json!({
            "name": name,
            "instruction": instruction,
            "target": { "kind": "local", "url": url },
        }))
        .unwrap()
    }

    fn http(url: &str) -> AgentTarget {
        AgentTarget::Http { url: url.into() }
    }

    #[tokio::test]
    async fn versions_are_published_pointed_to_and_restored() {
        let target = LocalPlatform::new(SqliteStore::in_memory().unwrap());
        let v1 = spec("bot", "http://one.test/", "first");
        assert!(target.supports(PlatformKind::Local));
        assert_eq!(target.snapshot(&v1).await.unwrap(), None, "never applied");

        target.apply(&v1).await.unwrap();
        assert_eq!(target.prepare(&v1).await.unwrap(), Readiness::Ready);
        let first = target.publish(&v1).await.unwrap();
        assert_eq!(first, Published { version: "1".into(), target: http("http://one.test/") });
        assert_eq!(target.publish(&v1).await.unwrap(), first, "a repeated publish finds its version");
        target.apply(&v1).await.unwrap();
        assert_eq!(target.publish(&v1).await.unwrap(), first, "an unchanged apply bumps nothing");
        let before = target.snapshot(&v1).await.unwrap().expect("applied");
        assert_eq!(before.serving_version.as_deref(), Some("1"));
        assert_eq!(before.config["draft"], serde_json::to_value(&v1).unwrap());

        let v2 = spec("bot", "http://two.test/", "second");
        target.apply(&v2).await.unwrap();
        let second = target.publish(&v2).await.unwrap();
        assert_eq!(second, Published { version: "2".into(), target: http("http://two.test/") });
        assert_eq!(target.publish(&v2).await.unwrap(), second);

        let back = target.point_to(&v2, "1").await.unwrap();
        assert_eq!(back, first, "version 1 keeps its own url");
        target.restore(&v2, &before).await.unwrap();
        let restored = target.snapshot(&v2).await.unwrap().expect("still there");
        assert_eq!(restored, before, "the old draft and the old alias");
        assert_eq!(
            target.publish(&v1).await.unwrap().version,
            "3",
            "a restored draft is a new revision: publishing it makes a version"
        );

        let unknown = target.point_to(&v2, "9").await;
        assert!(matches!(unknown, Err(DeployError::Failed(_))), "{unknown:?}");
        let garbage = target.point_to(&v2, "latest").await;
        assert!(matches!(garbage, Err(DeployError::Failed(_))), "{garbage:?}");
        let other = spec("other", "http://o.test/", "x");
        assert!(matches!(target.publish(&other).await, Err(DeployError::Failed(_))), "never applied");
    }

    #[tokio::test]
    async fn only_local_specs_are_served() {
        let target = LocalPlatform::new(SqliteStore::in_memory().unwrap());
        assert!(!target.supports(PlatformKind::BedrockAgent));
        assert!(!target.supports(PlatformKind::AgentcoreRuntime));
        let bedrock: AgentSpec = serde_json::from_value(json!({ "name": "bot" })).unwrap();
        assert!(matches!(target.apply(&bedrock).await, Err(DeployError::Failed(_))));
    }
}
