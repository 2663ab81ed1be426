//! Idempotency keys: one item each, `pk = "IDEM#<key>"`, `sk = "IDEM"`, claimed with a
//! conditional put. `until_ns` is the lease's end while in progress and the keep-until
//! once done; past it the item counts as absent. The conditions compare `until_ns`, never
//! wait for the `ttl` expiry: DynamoDB deletes expired items late (moto never does).

use jiff::Timestamp;
use tdev_domain::messaging::{Claim, IdempotencyStore};
use tdev_domain::ports::StoreError;

use crate::attrs::{self, Item, n, s};
use crate::items::unless_refused;
use crate::{AwsStore, from_nanos, nanos, ttl_after};

const SK: &str = "IDEM";
const IN_PROGRESS: &str = "in_progress";
const DONE: &str = "done";
/// A claim that loses its put and then finds no live item raced a release or a takeover;
/// it tries again, this many times in all.
const MAX_ATTEMPTS: u32 = 10;

fn pk(key: &str) -> String {
    format!("IDEM#{key}")
}

impl IdempotencyStore for AwsStore {
    async fn claim(
        &self,
        key: &str,
        holder: &str,
        now: Timestamp,
        lease_until: Timestamp,
    ) -> Result<Claim, StoreError> {
        let now_ns = nanos(now);
        for _ in 0..MAX_ATTEMPTS {
            let item = Item::from([
                ("pk".to_owned(), s(pk(key))),
                ("sk".to_owned(), s(SK)),
                ("state".to_owned(), s(IN_PROGRESS)),
                ("holder".to_owned(), s(holder)),
                ("until_ns".to_owned(), n(nanos(lease_until))),
                ("ttl".to_owned(), n(ttl_after(lease_until))),
            ]);
            let free = "attribute_not_exists(pk) OR until_ns < :now";
            if self.put_if(item, free, &[(":now", n(now_ns))]).await? {
                return Ok(Claim::Acquired);
            }
            let Some(stored) = self.get(pk(key), SK).await? else { continue };
            let until_ns: i64 = attrs::number(&stored, "until_ns")?;
            if until_ns < now_ns {
                continue;
            }
            return match attrs::string(&stored, "state")? {
                DONE => Ok(Claim::Done),
                IN_PROGRESS => Ok(Claim::Busy { until: from_nanos("idempotency lease", until_ns)? }),
                other => Err(StoreError::Corrupt(format!("idempotency key {key} has state {other}"))),
            };
        }
        Err(StoreError::Conflict(format!(
            "idempotency key {key} changed under {MAX_ATTEMPTS} claims in a row"
        )))
    }

    async fn complete(&self, key: &str, holder: &str, keep_until: Timestamp) -> Result<(), StoreError> {
        // Only the holder completes; completing twice (a retried call) is harmless.
        let result = self
            .update_at(&self.table, pk(key), SK)
            .update_expression("SET #state = :done, until_ns = :keep, #ttl = :ttl")
            .condition_expression("#holder = :holder")
            .expression_attribute_names("#state", "state")
            .expression_attribute_names("#ttl", "ttl")
            .expression_attribute_names("#holder", "holder")
            .expression_attribute_values(":done", s(DONE))
            .expression_attribute_values(":keep", n(nanos(keep_until)))
            .expression_attribute_values(":ttl", n(ttl_after(keep_until)))
            .expression_attribute_values(":holder", s(holder))
            .send()
            .await;
        unless_refused(result)?
            .map(drop)
            .ok_or_else(|| StoreError::Conflict(format!("{holder} does not hold idempotency key {key}")))
    }

    async fn release(&self, key: &str, holder: &str) -> Result<(), StoreError> {
        // A done item stays: releasing after completing must not undo the work's record.
        let result = self
            .delete_at(&self.table, pk(key), SK)
            .condition_expression("#holder = :holder AND #state = :in_progress")
            .expression_attribute_names("#holder", "holder")
            .expression_attribute_names("#state", "state")
            .expression_attribute_values(":holder", s(holder))
            .expression_attribute_values(":in_progress", s(IN_PROGRESS))
            .send()
            .await;
        unless_refused(result)?;
        Ok(())
    }
}
