//! Priority bands: SQS FIFO queues have no priorities, so the ten levels map onto a few
//! FIFO queues, each consumed with a concurrency weighted by its urgency.
//!
//! Bands are written `1-3,4-7,8-10` (the default): ranges in order that cover 1 to 10
//! exactly. Band `i` (from 1) is the queue `messages-<i>` with the dead-letter queue
//! `messages-<i>-dlq`. One band `1-10` is a single queue `messages`: the embedded backend
//! uses that, because its queue is strictly ordered by priority already.

use std::fmt;
use std::str::FromStr;

use crate::queue::Priority;

/// The name of the only queue when there is one band.
pub const SINGLE_QUEUE: &str = "messages";

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Band {
    pub lowest_level: u8,
    pub highest_level: u8,
    /// The queue's logical name.
    pub queue: String,
    /// Its dead-letter queue's logical name.
    pub dead_letter_queue: String,
}

impl Band {
    pub fn contains(&self, priority: Priority) -> bool {
        (self.lowest_level..=self.highest_level).contains(&priority.level())
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Bands(Vec<Band>);

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("bad priority bands {spec:?}: {reason} (write ranges in order covering 1 to 10, like 1-3,4-7,8-10)")]
pub struct BandsError {
    spec: String,
    reason: String,
}

impl Default for Bands {
    fn default() -> Self {
        "1-3,4-7,8-10".parse().expect("the default bands are valid")
    }
}

impl Bands {
    /// One band for every level: one strictly ordered queue (the embedded backend's).
    pub fn single() -> Self {
        "1-10".parse().expect("one band is valid")
    }

    pub fn bands(&self) -> &[Band] {
        &self.0
    }

    /// The band a priority's messages go to.
    pub fn band(&self, priority: Priority) -> &Band {
        self.0.iter().find(|band| band.contains(priority)).expect("bands cover 1 to 10")
    }

    /// The band whose queue is `queue`, or whose dead-letter queue is.
    pub fn by_queue(&self, queue: &str) -> Option<&Band> {
        self.0.iter().find(|band| band.queue == queue || band.dead_letter_queue == queue)
    }

    /// Every queue and dead-letter queue name.
    pub fn queue_names(&self) -> Vec<&str> {
        self.0.iter().flat_map(|band| [band.queue.as_str(), band.dead_letter_queue.as_str()]).collect()
    }

    /// Splits `total` concurrent consumers among the bands, more to the urgent ones
    /// (weights n, n-1, …, 1 for n bands), at least `min` each: so urgent work overtakes
    /// and low work never starves. SQS event source mappings take at least 2.
    pub fn concurrency(&self, total: u32, min: u32) -> Vec<u32> {
        let n = self.0.len() as u32;
        let weights: u32 = (1..=n).sum();
        (0..n).map(|i| (total * (n - i) / weights).max(min)).collect()
    }
}

impl FromStr for Bands {
    type Err = BandsError;

    fn from_str(spec: &str) -> Result<Self, Self::Err> {
        let fail = |reason: String| BandsError { spec: spec.to_owned(), reason };
        let mut ranges = Vec::new();
        let mut next = 1u8;
        for part in spec.split(',').map(str::trim) {
            let (low, high) = match part.split_once('-') {
                Some((low, high)) => (low.trim(), high.trim()),
                None => (part, part),
            };
            let parse = |s: &str| s.parse::<u8>().map_err(|_| fail(format!("{part:?} is not a range")));
            let (low, high) = (parse(low)?, parse(high)?);
            if low != next || high < low || high > 10 {
                return Err(fail(format!("{part:?} should start at {next} and end by 10")));
            }
            ranges.push((low, high));
            next = high + 1;
        }
        if next != 11 {
            return Err(fail("the ranges must reach 10".into()));
        }
        let single = ranges.len() == 1;
        Ok(Bands(
            ranges
                .into_iter()
                .enumerate()
                .map(|(i, (lowest_level, highest_level))| {
                    let queue = if single { SINGLE_QUEUE.to_owned() } else { format!("messages-{}", i + 1) };
                    Band { lowest_level, highest_level, dead_letter_queue: format!("{queue}-dlq"), queue }
                })
                .collect(),
        ))
    }
}

impl fmt::Display for Bands {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let parts: Vec<String> =
            self.0.iter().map(|b| format!("{}-{}", b.lowest_level, b.highest_level)).collect();
        f.write_str(&parts.join(","))
    }
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    #[test]
    fn the_default_is_three_bands() {
        let bands = Bands::default();
        let names: Vec<&str> = bands.bands().iter().map(|b| b.queue.as_str()).collect();
        assert_eq!(names, ["messages-1", "messages-2", "messages-3"]);
        let band_of = |level| bands.band(Priority::new(level).unwrap()).queue.clone();
        assert_eq!(
            [band_of(1), band_of(3), band_of(4), band_of(7), band_of(8), band_of(10)],
            ["messages-1", "messages-1", "messages-2", "messages-2", "messages-3", "messages-3"]
        );
        assert_eq!(bands.by_queue("messages-2-dlq").unwrap().queue, "messages-2");
        assert_eq!(bands.to_string(), "1-3,4-7,8-10");
        assert_eq!(bands.concurrency(60, 2), [30, 20, 10]);
        assert_eq!(bands.concurrency(6, 2), [3, 2, 2]);
    }

    #[test]
    fn one_band_is_one_queue() {
        let bands = Bands::single();
        assert_eq!(bands.queue_names(), ["messages", "messages-dlq"]);
    }

    #[test]
    fn gaps_overlaps_and_junk_are_refused() {
        for spec in ["1-3,5-10", "1-3,3-10", "1-9", "0-10", "1-11", "a-b", "", "1-3,4-7,8-10,"] {
            assert!(spec.parse::<Bands>().is_err(), "{spec}");
        }
        assert!("1,2,3,4,5,6,7,8,9,10".parse::<Bands>().is_ok());
    }

    proptest! {
        #[test]
        fn every_level_has_exactly_one_band(cuts in proptest::collection::btree_set(1u8..10, 0..9)) {
            let mut spec = Vec::new();
            let mut low = 1;
            for cut in cuts.iter().copied().chain([10]) {
                spec.push(format!("{low}-{cut}"));
                low = cut + 1;
            }
            let bands: Bands = spec.join(",").parse().unwrap();
            for level in 1..=10 {
                let p = Priority::new(level).unwrap();
                prop_assert_eq!(bands.bands().iter().filter(|b| b.contains(p)).count(), 1);
            }
            prop_assert_eq!(bands.to_string().parse::<Bands>().unwrap(), bands);
        }
    }
}
