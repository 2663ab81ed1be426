//! Squads: groups of agents that work one task together, their answers aggregated into one result.

mod tally;

pub use tally::{
    Ballot, Judgement, Method, Role, Rule, Tally, TallyEntry, TieBreak, Verdict, Vote, canonical, compared,
    decide,
};
