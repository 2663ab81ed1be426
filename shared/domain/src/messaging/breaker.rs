//! The circuit breaker kept per agent: after `failure_threshold` failures in a row it
//! opens, and messages for the agent wait (they are retried later, not dead-lettered);
//! after `open_for` one probe is let through (half-open); its success closes the breaker,
//! its failure opens it again.
//!
//! The state lives in the store, shared by every consumer, and every change is a
//! conditional write on `version`: only one consumer wins the half-open probe.

use std::time::Duration;

use jiff::{SignedDuration, Timestamp};
use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BreakerSettings {
    /// Failures in a row that open the breaker.
    pub failure_threshold: u32,
    /// How long it stays open before a probe.
    pub open_for: Duration,
    /// How long a probe may take before another consumer may probe instead.
    pub probe_timeout: Duration,
}

impl Default for BreakerSettings {
    fn default() -> Self {
        Self {
            failure_threshold: 5,
            open_for: Duration::from_secs(30),
            probe_timeout: Duration::from_secs(60),
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(tag = "state", rename_all = "snake_case")]
pub enum BreakerState {
    Closed {
        consecutive_failures: u32,
    },
    /// Nothing goes to the agent until `until`.
    Open {
        until: Timestamp,
    },
    /// One probe is in flight; the others wait until it ends or `probe_until` passes.
    HalfOpen {
        probe_until: Timestamp,
    },
}

/// An agent's breaker, as stored.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct Breaker {
    #[serde(flatten)]
    pub state: BreakerState,
    pub last_success_at: Option<Timestamp>,
    pub last_failure_at: Option<Timestamp>,
    /// 0 for a breaker never stored; each stored change adds one.
    pub version: u64,
}

impl Default for Breaker {
    fn default() -> Self {
        Self {
            state: BreakerState::Closed { consecutive_failures: 0 },
            last_success_at: None,
            last_failure_at: None,
            version: 0,
        }
    }
}

/// What to do with a message for the agent.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Admission {
    /// Deliver it.
    Allow,
    /// Deliver it as the probe, after storing `Breaker` (which claims the probe).
    Probe(Breaker),
    /// Keep it waiting until then.
    Hold { until: Timestamp },
}

fn after(now: Timestamp, duration: Duration) -> Timestamp {
    now.saturating_add(SignedDuration::try_from(duration).unwrap_or(SignedDuration::MAX)).unwrap_or(now)
}

impl Breaker {
    pub fn is_open(&self) -> bool {
        !matches!(self.state, BreakerState::Closed { .. })
    }

    pub fn admit(&self, now: Timestamp, settings: &BreakerSettings) -> Admission {
        match self.state {
            BreakerState::Closed { .. } => Admission::Allow,
            BreakerState::Open { until } | BreakerState::HalfOpen { probe_until: until } if now < until => {
                Admission::Hold { until }
            }
            BreakerState::Open { .. } | BreakerState::HalfOpen { .. } => Admission::Probe(Breaker {
                state: BreakerState::HalfOpen { probe_until: after(now, settings.probe_timeout) },
                version: self.version + 1,
                ..*self
            }),
        }
    }

    /// After a successful delivery: closed, count reset.
    pub fn on_success(&self, now: Timestamp) -> Breaker {
        Breaker {
            state: BreakerState::Closed { consecutive_failures: 0 },
            last_success_at: Some(now),
            version: self.version + 1,
            ..*self
        }
    }

    /// After a failed delivery (one worth retrying: the agent was unavailable).
    pub fn on_failure(&self, now: Timestamp, settings: &BreakerSettings) -> Breaker {
        let open = BreakerState::Open { until: after(now, settings.open_for) };
        let state = match self.state {
            BreakerState::Closed { consecutive_failures } => {
                let failures = consecutive_failures + 1;
                if failures >= settings.failure_threshold {
                    open
                } else {
                    BreakerState::Closed { consecutive_failures: failures }
                }
            }
            BreakerState::HalfOpen { .. } => open,
            // A delivery that started before the breaker opened: it stays open as it was.
            BreakerState::Open { .. } => self.state,
        };
        Breaker { state, last_failure_at: Some(now), version: self.version + 1, ..*self }
    }
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    fn t(seconds: i64) -> Timestamp {
        Timestamp::from_second(1_700_000_000 + seconds).unwrap()
    }

    fn settings() -> BreakerSettings {
        BreakerSettings {
            failure_threshold: 3,
            open_for: Duration::from_secs(30),
            probe_timeout: Duration::from_secs(10),
        }
    }

    #[test]
    fn opens_after_the_threshold_holds_then_probes_and_closes() {
        let s = settings();
        let mut b = Breaker::default();
        for i in 0..2 {
            b = b.on_failure(t(i), &s);
            assert_eq!(b.admit(t(i), &s), Admission::Allow);
        }
        b = b.on_failure(t(2), &s);
        assert_eq!(b.admit(t(3), &s), Admission::Hold { until: t(32) });
        let Admission::Probe(probing) = b.admit(t(32), &s) else { panic!("no probe after open_for") };
        assert_eq!(probing.state, BreakerState::HalfOpen { probe_until: t(42) });
        assert_eq!(probing.admit(t(33), &s), Admission::Hold { until: t(42) }, "one probe at a time");
        let closed = probing.on_success(t(34));
        assert_eq!(closed.state, BreakerState::Closed { consecutive_failures: 0 });
        assert_eq!(closed.admit(t(34), &s), Admission::Allow);
        assert_eq!(closed.version, 5);
    }

    #[test]
    fn a_failed_probe_opens_again_and_a_lost_probe_is_replaced() {
        let s = settings();
        let open = Breaker { state: BreakerState::Open { until: t(0) }, ..Breaker::default() };
        let Admission::Probe(probing) = open.admit(t(0), &s) else { panic!() };
        let reopened = probing.on_failure(t(1), &s);
        assert_eq!(reopened.state, BreakerState::Open { until: t(31) });
        assert!(matches!(probing.admit(t(10), &s), Admission::Probe(_)), "the probe's time ran out");
    }

    proptest! {
        /// Whatever happens, a success closes the breaker, and a closed breaker admits.
        #[test]
        fn success_always_closes(events in proptest::collection::vec(0u8..3, 0..40)) {
            let s = settings();
            let mut b = Breaker::default();
            for (i, event) in events.iter().enumerate() {
                let now = t(i as i64 * 7);
                b = match (event, b.admit(now, &s)) {
                    (_, Admission::Hold { until }) => { prop_assert!(until > now); b }
                    (0, Admission::Allow) => b.on_success(now),
                    (0, Admission::Probe(p)) => p.on_success(now),
                    (_, Admission::Allow) => b.on_failure(now, &s),
                    (_, Admission::Probe(p)) => p.on_failure(now, &s),
                };
                if *event == 0 && !b.is_open() {
                    prop_assert_eq!(b.admit(now, &s), Admission::Allow);
                }
            }
        }
    }
}
