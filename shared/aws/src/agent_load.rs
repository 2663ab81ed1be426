//! Per-agent load, beside the agent's own item under `pk = "AGENT#<id>"`: work in flight
//! in `sk = "LOAD"` (a counter changed by conditional `ADD`s, atomic on the server), and
//! the circuit breaker in `sk = "BREAKER"` (a JSON document, written on its `version`).

use tdev_domain::messaging::Breaker;
use tdev_domain::ports::{AgentLoadStore, StoreError};

use crate::AwsStore;
use crate::attrs::{self, Item, n, s};
use crate::items::unless_refused;

const LOAD_SK: &str = "LOAD";
const BREAKER_SK: &str = "BREAKER";

fn pk(agent: &str) -> String {
    format!("AGENT#{agent}")
}

impl AwsStore {
    /// Adds `delta` to the agent's `in_flight` if `condition` holds; `Ok(false)` if not.
    async fn add_in_flight(
        &self,
        agent: &str,
        delta: i64,
        condition: &str,
        bound: (&str, i64),
    ) -> Result<bool, StoreError> {
        let result = self
            .dynamodb
            .update_item()
            .table_name(&self.table)
            .key("pk", s(pk(agent)))
            .key("sk", s(LOAD_SK))
            .update_expression("ADD in_flight :delta")
            .condition_expression(condition)
            .expression_attribute_values(":delta", n(delta))
            .expression_attribute_values(bound.0, n(bound.1))
            .send()
            .await;
        Ok(unless_refused(result)?.is_some())
    }
}

impl AgentLoadStore for AwsStore {
    async fn acquire_slot(&self, agent: &str, max: u32) -> Result<bool, StoreError> {
        if max == 0 {
            return Ok(false);
        }
        let below_max = "attribute_not_exists(in_flight) OR in_flight < :max";
        self.add_in_flight(agent, 1, below_max, (":max", i64::from(max))).await
    }

    async fn release_slot(&self, agent: &str) -> Result<(), StoreError> {
        // At zero the condition fails and nothing changes: never below zero.
        self.add_in_flight(agent, -1, "in_flight > :zero", (":zero", 0)).await?;
        Ok(())
    }

    async fn in_flight(&self, agent: &str) -> Result<u32, StoreError> {
        let item = self.get(pk(agent), LOAD_SK).await?;
        Ok(item
            .as_ref()
            .map(|item| attrs::optional_number(item, "in_flight"))
            .transpose()?
            .flatten()
            .unwrap_or(0))
    }

    async fn get_breaker(&self, agent: &str) -> Result<Option<Breaker>, StoreError> {
        let Some(item) = self.get(pk(agent), BREAKER_SK).await? else { return Ok(None) };
        let doc = attrs::string(&item, "doc")?;
        serde_json::from_str(doc)
            .map(Some)
            .map_err(|e| StoreError::Corrupt(format!("breaker of {agent}: {e}")))
    }

    async fn put_breaker(&self, agent: &str, breaker: &Breaker) -> Result<(), StoreError> {
        let conflict = || {
            StoreError::Conflict(format!(
                "the breaker of {agent} is not at version {}",
                breaker.version.wrapping_sub(1)
            ))
        };
        // Version 0 is a breaker never stored: there is nothing to write it over.
        let expected = breaker.version.checked_sub(1).ok_or_else(conflict)?;
        let doc = serde_json::to_string(breaker).map_err(|e| StoreError::Corrupt(e.to_string()))?;
        let item = Item::from([
            ("pk".to_owned(), s(pk(agent))),
            ("sk".to_owned(), s(BREAKER_SK)),
            ("version".to_owned(), n(breaker.version)),
            ("doc".to_owned(), s(doc)),
        ]);
        // None stored counts as version 0, so version 1 is a create.
        let written = if expected == 0 {
            self.create(item).await?
        } else {
            self.put_if(item, "version = :expected", &[(":expected", n(expected))]).await?
        };
        if written { Ok(()) } else { Err(conflict()) }
    }
}
