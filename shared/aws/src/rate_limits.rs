//! Rate-limit buckets: GCRA state in one item per client, written with optimistic
//! concurrency so that every instance sharing the table counts against the same bucket.

use std::hash::{BuildHasher, RandomState};
use std::time::Duration;

use jiff::Timestamp;
use tdev_domain::auth::{BucketState, RateDecision, RateLimit, RateLimitStore, acquire};
use tdev_domain::ports::StoreError;

use crate::AwsStore;
use crate::attrs::{self, Item, n, s};

const SK: &str = "RATE";
/// Every lost race means another request got its answer, so running out takes about this
/// many requests racing on one bucket at the same moment.
const MAX_ATTEMPTS: u32 = 100;
/// Past the TAT, for clock skew between instances: deleting a bucket still in debt
/// would refill it.
const TTL_GRACE_SECS: i64 = 60;

fn pk(client: &str) -> String {
    format!("RATE#{client}")
}

/// When the item may go: once the TAT has passed the bucket is full, the same as absent.
fn ttl_secs(tat_us: i64) -> i64 {
    tat_us.div_euclid(1_000_000) + i64::from(tat_us.rem_euclid(1_000_000) != 0) + TTL_GRACE_SECS
}

/// A pause of 0 to `attempt + 1` ms (at most 10), random so that racing writers spread out.
pub(crate) fn backoff(attempt: u32) -> Duration {
    let ceiling = u64::from(attempt.min(9)) + 1;
    // A fresh `RandomState` is randomly keyed, which is all the randomness a jitter needs.
    let random = RandomState::new().hash_one(attempt);
    Duration::from_micros(random % (ceiling * 1_000 + 1))
}

impl AwsStore {
    async fn read_bucket(&self, client: &str) -> Result<Option<BucketState>, StoreError> {
        let item = self.get(pk(client), SK).await?;
        item.map(|item| attrs::number(&item, "tat_us").map(|tat_us| BucketState { tat_us })).transpose()
    }

    /// Writes `next` if the bucket still holds `seen`. `Ok(false)`: it changed under us.
    async fn write_bucket(
        &self,
        client: &str,
        seen: Option<BucketState>,
        next: BucketState,
    ) -> Result<bool, StoreError> {
        let item = Item::from([
            ("pk".to_owned(), s(pk(client))),
            ("sk".to_owned(), s(SK)),
            ("tat_us".to_owned(), n(next.tat_us)),
            ("ttl".to_owned(), n(ttl_secs(next.tat_us))),
        ]);
        match seen {
            None => self.create(item).await,
            Some(seen) => self.put_if(item, "tat_us = :seen", &[(":seen", n(seen.tat_us))]).await,
        }
    }
}

impl RateLimitStore for AwsStore {
    async fn acquire(
        &self,
        client: &str,
        limit: &RateLimit,
        now: Timestamp,
    ) -> Result<RateDecision, StoreError> {
        for attempt in 0..MAX_ATTEMPTS {
            let seen = self.read_bucket(client).await?;
            let (next, decision) = acquire(limit, seen, now.as_microsecond());
            let Some(next) = next else {
                return Ok(decision);
            };
            if self.write_bucket(client, seen, next).await? {
                return Ok(decision);
            }
            tokio::time::sleep(backoff(attempt)).await;
        }
        tracing::warn!(client, attempts = MAX_ATTEMPTS, "rate bucket stayed contended");
        Err(StoreError::Conflict(format!(
            "the rate bucket of {client} changed under {MAX_ATTEMPTS} attempts in a row"
        )))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ttl_is_the_tat_rounded_up_to_a_second_plus_grace() {
        assert_eq!(ttl_secs(5_000_000), 65);
        assert_eq!(ttl_secs(5_000_001), 66);
        assert_eq!(ttl_secs(4_999_999), 65);
    }

    #[test]
    fn backoff_stays_within_a_few_milliseconds() {
        for attempt in 0..200 {
            assert!(backoff(attempt) <= Duration::from_millis(10));
        }
        assert!(backoff(0) <= Duration::from_millis(1));
    }
}
