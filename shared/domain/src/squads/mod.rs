//! Squads: agents that work one task together. A squad names its members (agents, or
//! agents chosen by capability, each with a role and a weight), how a task reaches them
//! (broadcast, split, lead_plans, race), how many rounds they talk, how their answers
//! become one result ([`decide`], the tally), and what failure it survives.
//!
//! Like `workflow`, this is the language and its rules, pure: no ports, no clock. The
//! engine in `runs` stores squads and runs their tasks on the same queue and store as
//! workflow runs. The format is in docs/squads.md.

mod load;
mod model;
mod rules;
mod tally;

#[cfg(test)]
mod tests;

pub use load::{Loaded, MAX_BYTES, SquadError, from_value, load, load_off_runtime};
pub use model::{Aggregation, Collaboration, Distribution, Limits, Member, Mode, OnFailure, Squad, Strategy};
pub use rules::MemberNotice;
pub use tally::{
    Ballot, Judgement, Method, Role, Rule, Tally, TallyEntry, TieBreak, Verdict, Vote, canonical, compared,
    decide,
};
