//! Token-bucket rate limiting, computed as GCRA (the generic cell rate algorithm).
//!
//! GCRA is a token bucket whose whole state is one number, the "theoretical arrival
//! time" (TAT): the instant at which the bucket would be full again. A request at `now`
//! is allowed when, after charging one token, the bucket would not be more than
//! `capacity` tokens in debt: `max(tat, now) + interval - now <= capacity * interval`.
//! One integer means one conditional write per request, and no rounding drift however
//! many requests arrive.

use serde::{Deserialize, Serialize};

/// Capacity (the burst) and refill rate of one client's bucket.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RateLimit {
    /// Most requests that may be made at once by a client whose bucket is full.
    pub capacity: u32,
    /// Tokens added back per minute.
    pub refill_per_minute: u32,
}

/// The shape of a [`RateLimit`] in a request.
pub(crate) const RATE_LIMIT: crate::strict::shape::Shape =
    crate::strict::shape::Shape::Object(&crate::strict::shape::Object {
        what: "a rate limit",
        fields: &[
            crate::strict::shape::Field::required("capacity", crate::strict::shape::Shape::U32),
            crate::strict::shape::Field::required("refill_per_minute", crate::strict::shape::Shape::U32),
        ],
    });

impl RateLimit {
    /// What existing users expect: 100 requests a minute, all of which may come at once.
    pub const DEFAULT: RateLimit = RateLimit { capacity: 100, refill_per_minute: 100 };
    pub const MAX_CAPACITY: u32 = 1_000_000;
    /// 6,000,000 a minute (100,000 a second) keeps the interval at 10 µs or more.
    pub const MAX_REFILL_PER_MINUTE: u32 = 6_000_000;

    /// Microseconds between two tokens.
    fn interval_us(&self) -> i64 {
        // At least 1 µs whatever the setting: a zero interval would divide by zero.
        (60_000_000 / i64::from(self.refill_per_minute.max(1))).max(1)
    }
}

/// The stored state of a bucket: when it will be full again, in µs since the epoch.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct BucketState {
    pub tat_us: i64,
}

/// The answer for one request, with what the `RateLimit-*` headers report.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RateDecision {
    pub allowed: bool,
    pub limit: u32,
    pub remaining: u32,
    /// Seconds until the bucket is full again.
    pub reset_secs: u64,
    /// When refused: seconds until one token is available.
    pub retry_after_secs: Option<u64>,
}

/// Charges one token to the bucket in `state` at `now_us`. Returns the state to store
/// (`None` when refused: a refusal changes nothing, so nothing needs writing) and the
/// decision.
pub fn acquire(
    limit: &RateLimit,
    state: Option<BucketState>,
    now_us: i64,
) -> (Option<BucketState>, RateDecision) {
    let interval = limit.interval_us();
    let tolerance = interval.saturating_mul(i64::from(limit.capacity));
    let tat = state.map_or(now_us, |s| s.tat_us.max(now_us));
    let new_tat = tat.saturating_add(interval);
    if new_tat - now_us <= tolerance {
        let remaining = (tolerance - (new_tat - now_us)) / interval;
        let decision = RateDecision {
            allowed: true,
            limit: limit.capacity,
            remaining: u32::try_from(remaining).unwrap_or(u32::MAX),
            reset_secs: ceil_secs(new_tat - now_us),
            retry_after_secs: None,
        };
        (Some(BucketState { tat_us: new_tat }), decision)
    } else {
        let decision = RateDecision {
            allowed: false,
            limit: limit.capacity,
            remaining: 0,
            reset_secs: ceil_secs(tat - now_us),
            retry_after_secs: Some(ceil_secs(new_tat - now_us - tolerance).max(1)),
        };
        (None, decision)
    }
}

fn ceil_secs(us: i64) -> u64 {
    u64::try_from(us.max(0)).unwrap_or(0).div_ceil(1_000_000)
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    const SECOND: i64 = 1_000_000;

    fn run(limit: &RateLimit, times: &[i64]) -> Vec<bool> {
        let mut state = None;
        times
            .iter()
            .map(|&now| {
                let (next, decision) = acquire(limit, state, now);
                if next.is_some() {
                    state = next;
                }
                decision.allowed
            })
            .collect()
    }

    #[test]
    fn a_full_bucket_allows_exactly_its_capacity_at_once() {
        let limit = RateLimit { capacity: 5, refill_per_minute: 60 };
        let allowed = run(&limit, &[0; 8]);
        assert_eq!(allowed, [true, true, true, true, true, false, false, false]);
    }

    #[test]
    fn refused_requests_report_when_to_retry_and_refill_restores_tokens() {
        let limit = RateLimit { capacity: 2, refill_per_minute: 60 };
        let (s1, _) = acquire(&limit, None, 0);
        let (s2, d2) = acquire(&limit, s1, 0);
        assert_eq!(d2.remaining, 0);
        let (s3, d3) = acquire(&limit, s2, 0);
        assert!(s3.is_none());
        assert!(!d3.allowed);
        assert_eq!(d3.retry_after_secs, Some(1));
        assert_eq!(d3.reset_secs, 2);
        let (_, later) = acquire(&limit, s2, SECOND);
        assert!(later.allowed);
    }

    #[test]
    fn any_refill_rate_answers_without_panicking() {
        // 1,000,000,000 a minute once made the interval 0 and every request divide by it.
        for refill in [1, 60_000_000, 1_000_000_000, u32::MAX] {
            let limit = RateLimit { capacity: 3, refill_per_minute: refill };
            let (state, decision) = acquire(&limit, None, 1_000_000);
            assert!(decision.allowed && state.is_some(), "{refill}");
        }
    }

    #[test]
    fn the_default_is_one_hundred_a_minute() {
        let limit = RateLimit::DEFAULT;
        assert_eq!(run(&limit, &[0; 101]).iter().filter(|a| **a).count(), 100);
        let (_, d) = acquire(&limit, Some(BucketState { tat_us: 60 * SECOND }), 0);
        assert!(!d.allowed);
        assert_eq!(d.retry_after_secs, Some(1));
    }

    proptest! {
        /// However requests are spread, no more are allowed in a window than the burst
        /// plus what refilled during it, and a long enough pause refills the bucket.
        #[test]
        fn never_allows_more_than_capacity_plus_refill(
            capacity in 1u32..50,
            refill in 1u32..600,
            mut gaps in proptest::collection::vec(0i64..5 * SECOND, 1..200),
        ) {
            let limit = RateLimit { capacity, refill_per_minute: refill };
            let mut now = 0;
            let times: Vec<i64> = gaps.iter_mut().map(|g| { now += *g; now }).collect();
            let allowed = run(&limit, &times);
            let span = times.last().unwrap() - times[0];
            let refilled = span * i64::from(refill) / (60 * SECOND);
            let count = allowed.iter().filter(|a| **a).count() as i64;
            prop_assert!(count <= i64::from(capacity) + refilled + 1);
            // After a pause of a full refill period, the first request always passes.
            let rest = times.last().unwrap() + 60 * SECOND * i64::from(capacity) / i64::from(refill) + SECOND;
            let mut with_rest = times.clone();
            with_rest.push(rest);
            prop_assert!(*run(&limit, &with_rest).last().unwrap());
        }
    }
}
