//! Per-agent load, beside the agent's own item under `pk = "AGENT#<id>"`: leased slots of
//! work in flight in `sk = "LOAD"` (a map of holder to lease end, written on its
//! `version`), and the circuit breaker in `sk = "BREAKER"` (a JSON document, written on its
//! `version`).

use std::collections::BTreeMap;

use aws_sdk_dynamodb::types::AttributeValue;
use jiff::Timestamp;
use tdev_domain::messaging::{AgentLoadStore, Breaker};
use tdev_domain::ports::StoreError;

use crate::attrs::{self, Item, n, s};
use crate::items::unless_refused;
use crate::rate_limits::backoff;
use crate::{AwsStore, from_nanos, nanos, ttl_after};

const LOAD_SK: &str = "LOAD";
const BREAKER_SK: &str = "BREAKER";
/// Every lost race means another consumer took or gave back a slot, so running out takes
/// about this many consumers racing for one agent at the same moment.
const MAX_ATTEMPTS: u32 = 50;

fn pk(agent: &str) -> String {
    format!("AGENT#{agent}")
}

/// The agent's load item: its version (0 when there is none, or only the counter that
/// came before leases) and its slots, holder to lease end in ns.
fn read_slots(item: Option<&Item>) -> Result<(u64, BTreeMap<String, i64>), StoreError> {
    let Some(item) = item else { return Ok((0, BTreeMap::new())) };
    let version = attrs::optional_number(item, "version")?.unwrap_or(0);
    let slots = match item.get("slots") {
        None => BTreeMap::new(),
        Some(AttributeValue::M(slots)) => slots
            .iter()
            .map(|(holder, until)| match until {
                AttributeValue::N(ns) => ns
                    .parse()
                    .map(|ns| (holder.clone(), ns))
                    .map_err(|_| StoreError::Corrupt(format!("slot {holder} ends at {ns}"))),
                _ => Err(StoreError::Corrupt(format!("slot {holder} has no end"))),
            })
            .collect::<Result<_, _>>()?,
        Some(_) => return Err(StoreError::Corrupt("attribute slots is not a map".into())),
    };
    Ok((version, slots))
}

impl AgentLoadStore for AwsStore {
    async fn acquire_slot(
        &self,
        agent: &str,
        holder: &str,
        max: u32,
        now: Timestamp,
        lease_until: Timestamp,
    ) -> Result<bool, StoreError> {
        let now_ns = nanos(now);
        for attempt in 0..MAX_ATTEMPTS {
            let (version, mut slots) = read_slots(self.get(pk(agent), LOAD_SK).await?.as_ref())?;
            // Slots whose leases ran out are dropped as the map is written back.
            slots.retain(|_, until| *until >= now_ns);
            if !slots.contains_key(holder) && slots.len() >= usize::try_from(max).unwrap_or(usize::MAX) {
                return Ok(false);
            }
            slots.insert(holder.to_owned(), nanos(lease_until));
            let last_end = slots.values().copied().max().unwrap_or(now_ns);
            let item = Item::from([
                ("pk".to_owned(), s(pk(agent))),
                ("sk".to_owned(), s(LOAD_SK)),
                ("version".to_owned(), n(version + 1)),
                (
                    "slots".to_owned(),
                    AttributeValue::M(slots.into_iter().map(|(holder, until)| (holder, n(until))).collect()),
                ),
                ("ttl".to_owned(), n(ttl_after(from_nanos("slot lease", last_end)?))),
            ]);
            let written = if version == 0 {
                self.put_if(item, "attribute_not_exists(version)", &[]).await?
            } else {
                self.put_if(item, "version = :seen", &[(":seen", n(version))]).await?
            };
            if written {
                return Ok(true);
            }
            tokio::time::sleep(backoff(attempt)).await;
        }
        tracing::warn!(agent, attempts = MAX_ATTEMPTS, "agent slots stayed contended");
        Err(StoreError::Conflict(format!(
            "the slots of {agent} changed under {MAX_ATTEMPTS} attempts in a row"
        )))
    }

    async fn release_slot(&self, agent: &str, holder: &str) -> Result<(), StoreError> {
        // The version moves too, so an acquire that read the slot cannot write it back.
        let result = self
            .update_at(&self.table, pk(agent), LOAD_SK)
            .update_expression("REMOVE slots.#holder SET version = version + :one")
            .condition_expression("attribute_exists(slots.#holder)")
            .expression_attribute_names("#holder", holder)
            .expression_attribute_values(":one", n(1))
            .send()
            .await;
        unless_refused(result)?;
        Ok(())
    }

    async fn in_flight(&self, agent: &str, now: Timestamp) -> Result<u32, StoreError> {
        let (_, slots) = read_slots(self.get(pk(agent), LOAD_SK).await?.as_ref())?;
        let live = slots.values().filter(|until| **until >= nanos(now)).count();
        Ok(u32::try_from(live).unwrap_or(u32::MAX))
    }

    async fn get_breaker(&self, agent: &str) -> Result<Option<Breaker>, StoreError> {
        let item = self.get(pk(agent), BREAKER_SK).await?;
        item.map(|item| attrs::from_doc(&format!("breaker of {agent}"), &item)).transpose()
    }

    async fn put_breaker(&self, agent: &str, breaker: &Breaker) -> Result<(), StoreError> {
        let expected = breaker.expected_stored_version(agent)?;
        let item = Item::from([
            ("pk".to_owned(), s(pk(agent))),
            ("sk".to_owned(), s(BREAKER_SK)),
            ("version".to_owned(), n(breaker.version)),
            ("doc".to_owned(), attrs::doc(breaker)?),
        ]);
        // None stored counts as version 0, so version 1 is a create.
        let written = if expected == 0 {
            self.create(item).await?
        } else {
            self.put_if(item, "version = :expected", &[(":expected", n(expected))]).await?
        };
        if written { Ok(()) } else { Err(breaker.stale(agent)) }
    }
}
