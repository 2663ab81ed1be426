//! The dead-letter archive and the failure notes that feed it.
//!
//! - Dead letter: `pk = "DLQ#<id>"`, `sk = "DLQ"`, listed oldest first through `gsi1`
//!   (`gsi1pk = "DEADLETTERS"`, `gsi1sk = <dead_lettered_at, 20-digit ns>#<id>`), with
//!   `source_queue`, `reason` and `state` beside the JSON `doc` for the listing's filter,
//!   and `version` for the conditional update.
//! - Failure note: `pk = "FAIL#<id>"`, `sk = "FAIL"`, one atomic UpdateItem per failure.

use jiff::{SignedDuration, Timestamp};
use tdev_domain::messaging::{DeadLetter, DeadLetterFilter, DeadLetterStore, FailureNote};
use tdev_domain::ports::StoreError;

use crate::attrs::{self, Item, n, s};
use crate::{AwsStore, sortable, ttl_after};

const DLQ_SK: &str = "DLQ";
const GSI_PK: &str = "DEADLETTERS";
const FAIL_SK: &str = "FAIL";
/// The port lets notes go a day after the last failure.
const NOTE_KEEP: SignedDuration = SignedDuration::from_hours(24);

fn dlq_pk(id: &str) -> String {
    format!("DLQ#{id}")
}

fn fail_pk(id: &str) -> String {
    format!("FAIL#{id}")
}

fn to_item(dead_letter: &DeadLetter) -> Result<Item, StoreError> {
    let doc = attrs::doc(dead_letter)?;
    Ok(Item::from([
        ("pk".to_owned(), s(dlq_pk(&dead_letter.id))),
        ("sk".to_owned(), s(DLQ_SK)),
        ("gsi1pk".to_owned(), s(GSI_PK)),
        ("gsi1sk".to_owned(), s(format!("{}#{}", sortable(dead_letter.dead_lettered_at), dead_letter.id))),
        ("source_queue".to_owned(), s(&dead_letter.source_queue)),
        ("reason".to_owned(), s(&dead_letter.reason)),
        ("state".to_owned(), s(dead_letter.state.name())),
        ("version".to_owned(), n(dead_letter.version)),
        ("doc".to_owned(), doc),
    ]))
}

fn from_item(item: &Item) -> Result<DeadLetter, StoreError> {
    attrs::from_doc("dead letter", item)
}

fn time(item: &Item, name: &str) -> Result<Timestamp, StoreError> {
    let text = attrs::string(item, name)?;
    text.parse().map_err(|e| StoreError::Corrupt(format!("attribute {name}: {e}")))
}

impl DeadLetterStore for AwsStore {
    async fn put_dead_letter(&self, dead_letter: &DeadLetter) -> Result<(), StoreError> {
        self.insert(to_item(dead_letter)?, || format!("dead letter {} exists", dead_letter.id)).await
    }

    async fn get_dead_letter(&self, id: &str) -> Result<Option<DeadLetter>, StoreError> {
        self.get(dlq_pk(id), DLQ_SK).await?.as_ref().map(from_item).transpose()
    }

    async fn list_dead_letters(&self, filter: &DeadLetterFilter) -> Result<Vec<DeadLetter>, StoreError> {
        let equal = [
            ("source_queue", filter.source_queue.as_deref()),
            ("reason", filter.reason.as_deref()),
            ("state", filter.state.as_deref()),
        ];
        // The filter is applied on the server (less to transfer), and again here.
        self.list_under(&self.table, GSI_PK, true, &equal, filter.limit, |item| {
            let dead_letter = from_item(item)?;
            Ok(filter.matches(&dead_letter).then_some(dead_letter))
        })
        .await
    }

    async fn update_dead_letter(&self, dead_letter: &DeadLetter) -> Result<(), StoreError> {
        let written = match dead_letter.expected_stored_version() {
            Some(expected) => {
                self.put_if(to_item(dead_letter)?, "version = :expected", &[(":expected", n(expected))])
                    .await?
            }
            None => false,
        };
        if written {
            return Ok(());
        }
        match self.get(dlq_pk(&dead_letter.id), DLQ_SK).await? {
            None => Err(StoreError::NotFound),
            Some(_) => Err(dead_letter.stale()),
        }
    }

    async fn delete_dead_letter(&self, id: &str) -> Result<(), StoreError> {
        self.delete_existing(dlq_pk(id), DLQ_SK).await
    }

    async fn note_failure(&self, id: &str, reason: &str, at: Timestamp) -> Result<(), StoreError> {
        let expires = at.checked_add(NOTE_KEEP).unwrap_or(Timestamp::MAX);
        self.update_at(&self.table, fail_pk(id), FAIL_SK)
            .update_expression(
                "SET first_at = if_not_exists(first_at, :at), last_at = :at, last_reason = :reason, #ttl = :ttl \
                 ADD attempts :one",
            )
            .expression_attribute_names("#ttl", "ttl")
            .expression_attribute_values(":at", s(at.to_string()))
            .expression_attribute_values(":reason", s(reason))
            .expression_attribute_values(":ttl", n(ttl_after(expires)))
            .expression_attribute_values(":one", n(1))
            .send()
            .await
            .map_err(StoreError::unavailable)?;
        Ok(())
    }

    async fn failures(&self, id: &str) -> Result<Option<FailureNote>, StoreError> {
        let Some(item) = self.get(fail_pk(id), FAIL_SK).await? else { return Ok(None) };
        Ok(Some(FailureNote {
            attempts: attrs::number(&item, "attempts")?,
            first_at: time(&item, "first_at")?,
            last_at: time(&item, "last_at")?,
            last_reason: attrs::string(&item, "last_reason")?.to_owned(),
        }))
    }
}
