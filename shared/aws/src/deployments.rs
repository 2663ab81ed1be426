//! Deployments, their events, backups and the per-agent locks, in the deployments table
//! ([`AwsStore::deployments_table`]; key schema in the crate docs). A create and a
//! transition are each one `TransactWriteItems`: the record, its event and the lock are
//! written together or not at all.

use jiff::Timestamp;
use tdev_domain::deploy::{
    AgentLock, Backup, Deployment, DeploymentEvent, DeploymentFilter, DeploymentStore,
};
use tdev_domain::ports::StoreError;

use crate::attrs::{self, Item, n, s};
use crate::items::{put, unless_refused};
use crate::{AwsStore, from_nanos, nanos, sortable};

const DEPLOY_SK: &str = "DEPLOY";
const BACKUP_SK: &str = "BACKUP";
const LOCK_SK: &str = "LOCK";
const EVENT_PREFIX: &str = "EVENT#";
/// The index partition every deployment is listed under, newest first.
const GSI_PK: &str = "DEPLOYS";

fn deploy_pk(id: &str) -> String {
    format!("DEPLOY#{id}")
}

fn lock_pk(agent: &str) -> String {
    format!("LOCK#{agent}")
}

fn deployment_item(deployment: &Deployment) -> Result<Item, StoreError> {
    Ok(Item::from([
        ("pk".to_owned(), s(deploy_pk(&deployment.id))),
        ("sk".to_owned(), s(DEPLOY_SK)),
        ("gsi1pk".to_owned(), s(GSI_PK)),
        ("gsi1sk".to_owned(), s(format!("{}#{}", sortable(deployment.created_at), deployment.id))),
        ("agent".to_owned(), s(&deployment.agent)),
        ("status".to_owned(), s(deployment.status.as_str())),
        ("revision".to_owned(), n(deployment.revision)),
        ("doc".to_owned(), attrs::doc(deployment)?),
    ]))
}

fn event_item(event: &DeploymentEvent) -> Result<Item, StoreError> {
    Ok(Item::from([
        ("pk".to_owned(), s(deploy_pk(&event.deployment_id))),
        ("sk".to_owned(), s(format!("{EVENT_PREFIX}{:020}", event.seq))),
        ("doc".to_owned(), attrs::doc(event)?),
    ]))
}

impl DeploymentStore for AwsStore {
    async fn create_deployment(
        &self,
        deployment: &Deployment,
        event: &DeploymentEvent,
        now: Timestamp,
        lock_until: Option<Timestamp>,
    ) -> Result<(), StoreError> {
        let table = &self.deployments_table;
        let mut items = vec![
            put(table, deployment_item(deployment)?, "attribute_not_exists(pk)", &[])?,
            put(table, event_item(event)?, "attribute_not_exists(pk)", &[])?,
        ];
        if let Some(until) = lock_until {
            let lock = Item::from([
                ("pk".to_owned(), s(lock_pk(&deployment.agent))),
                ("sk".to_owned(), s(LOCK_SK)),
                ("holder".to_owned(), s(&deployment.id)),
                ("until_ns".to_owned(), n(nanos(until))),
            ]);
            let condition = "attribute_not_exists(pk) OR until_ns < :now OR holder = :id";
            items.push(put(table, lock, condition, &[(":now", n(nanos(now))), (":id", s(&deployment.id))])?);
        }
        let lost = [
            format!("deployment {} exists", deployment.id),
            format!("deployment {} has an event {} already", event.deployment_id, event.seq),
            format!("agent {} is locked by another deployment", deployment.agent),
        ];
        self.transact(items, &lost).await
    }

    async fn get_deployment(&self, id: &str) -> Result<Option<Deployment>, StoreError> {
        let item = self.get_in(&self.deployments_table, deploy_pk(id), DEPLOY_SK).await?;
        item.map(|item| attrs::from_doc("deployment", &item)).transpose()
    }

    async fn list_deployments(&self, filter: &DeploymentFilter) -> Result<Vec<Deployment>, StoreError> {
        let limit = if filter.limit == 0 { usize::MAX } else { filter.limit };
        let equal = [("agent", filter.agent.as_deref()), ("status", filter.status.map(|s| s.as_str()))];
        self.list_under(&self.deployments_table, GSI_PK, false, &equal, limit, |item| {
            let deployment: Deployment = attrs::from_doc("deployment", item)?;
            Ok(filter.matches(&deployment).then_some(deployment))
        })
        .await
    }

    async fn transition(&self, deployment: &Deployment, event: &DeploymentEvent) -> Result<(), StoreError> {
        let Some(previous) = deployment.revision.checked_sub(1) else {
            return Err(StoreError::Conflict(format!("deployment {} has no revision 0", deployment.id)));
        };
        let table = &self.deployments_table;
        // A missing record fails the condition too: `Conflict`, as the port says.
        let items = vec![
            put(table, deployment_item(deployment)?, "revision = :previous", &[(":previous", n(previous))])?,
            put(table, event_item(event)?, "attribute_not_exists(pk)", &[])?,
        ];
        let lost = [
            format!("deployment {} is not at revision {previous}", deployment.id),
            format!("deployment {} has an event {} already", event.deployment_id, event.seq),
        ];
        self.transact(items, &lost).await
    }

    async fn deployment_events(&self, deployment_id: &str) -> Result<Vec<DeploymentEvent>, StoreError> {
        let items =
            self.query_prefix(&self.deployments_table, deploy_pk(deployment_id), EVENT_PREFIX).await?;
        items.iter().map(|item| attrs::from_doc("deployment event", item)).collect()
    }

    async fn put_backup(&self, backup: &Backup) -> Result<(), StoreError> {
        let item = Item::from([
            ("pk".to_owned(), s(deploy_pk(&backup.deployment_id))),
            ("sk".to_owned(), s(BACKUP_SK)),
            ("doc".to_owned(), attrs::doc(backup)?),
        ]);
        if self.put_if_in(&self.deployments_table, item, "attribute_not_exists(pk)", &[]).await? {
            Ok(())
        } else {
            Err(StoreError::Conflict(format!("deployment {} has a backup", backup.deployment_id)))
        }
    }

    async fn get_backup(&self, deployment_id: &str) -> Result<Option<Backup>, StoreError> {
        let item = self.get_in(&self.deployments_table, deploy_pk(deployment_id), BACKUP_SK).await?;
        item.map(|item| attrs::from_doc("backup", &item)).transpose()
    }

    async fn get_lock(&self, agent: &str) -> Result<Option<AgentLock>, StoreError> {
        let Some(item) = self.get_in(&self.deployments_table, lock_pk(agent), LOCK_SK).await? else {
            return Ok(None);
        };
        Ok(Some(AgentLock {
            agent: agent.to_owned(),
            holder: attrs::string(&item, "holder")?.to_owned(),
            until: from_nanos("lock until_ns", attrs::number(&item, "until_ns")?)?,
        }))
    }

    async fn renew_lock(&self, agent: &str, holder: &str, until: Timestamp) -> Result<(), StoreError> {
        let result = self
            .update_at(&self.deployments_table, lock_pk(agent), LOCK_SK)
            .update_expression("SET until_ns = :until")
            .condition_expression("holder = :holder")
            .expression_attribute_values(":until", n(nanos(until)))
            .expression_attribute_values(":holder", s(holder))
            .send()
            .await;
        unless_refused(result)?
            .map(drop)
            .ok_or_else(|| StoreError::Conflict(format!("{holder} does not hold agent {agent}'s lock")))
    }

    async fn release_lock(&self, agent: &str, holder: &str) -> Result<(), StoreError> {
        let result = self
            .delete_at(&self.deployments_table, lock_pk(agent), LOCK_SK)
            .condition_expression("holder = :holder")
            .expression_attribute_values(":holder", s(holder))
            .send()
            .await;
        // Not (or no longer) `holder`'s: nothing to give up.
        unless_refused(result)?;
        Ok(())
    }
}
