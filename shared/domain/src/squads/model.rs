//! A squad as its document says it: members, how a task is shared among them, how many
//! rounds they talk, how their answers become one result, and what failure it survives.
//! The format is in docs/squads.md; every default is resolved by the accessors here, so
//! the engine never reads an `Option` to learn a default.

use serde::{Deserialize, Serialize};

use super::tally::{Method, Role, TieBreak};
use crate::strict::shape::{Enum, Field, Object, Shape, Shaped};
use crate::validation::ValidationErrors;
use crate::workflow::Seconds;

/// One immutable version of a squad.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Squad {
    /// 1 to 64 of a-z, 0-9, `-` and `_`.
    #[schema(example = "answer-board", pattern = "^[a-z0-9][a-z0-9_-]{0,63}$")]
    pub id: String,
    /// 1 to 64 of letters, digits, `.`, `-` and `_`. Versions are immutable.
    #[schema(example = "1", pattern = "^[A-Za-z0-9._-]{1,64}$")]
    pub version: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(max_length = 1000)]
    pub description: Option<String>,
    /// Who works the task: agents by id, or a number of agents chosen by capability.
    #[schema(min_items = 1, max_items = 1000)]
    pub members: Vec<Member>,
    #[serde(default)]
    pub distribution: Distribution,
    #[serde(default)]
    pub collaboration: Collaboration,
    #[serde(default)]
    pub aggregation: Aggregation,
    #[serde(default)]
    pub limits: Limits,
    #[serde(default)]
    pub on_failure: OnFailure,
}

/// A member: one agent by id, or `count` agents offering a capability.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(as = SquadMember)]
pub struct Member {
    /// The agent to call.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(pattern = "^[a-z0-9][a-z0-9_-]{0,63}$")]
    pub agent: Option<String>,
    /// Without `agent`: choose `count` active agents offering it. With `agent`: what a
    /// replacement must offer (otherwise the agent's own capabilities, all of them).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(pattern = "^[a-z0-9][a-z0-9_-]{0,63}$")]
    pub capability: Option<String>,
    /// How many agents a capability member stands for. Default 1.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(minimum = 1, maximum = 100)]
    pub count: Option<u32>,
    /// Default `worker`.
    #[serde(default)]
    pub role: Role,
    /// Counts under `weighted` aggregation and `weighted` distribution: 1 to 1,000. Default 1.
    #[serde(default = "one")]
    #[schema(minimum = 1, maximum = 1000)]
    pub weight: u32,
}

fn one() -> u32 {
    1
}

/// How a task reaches the members.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
#[schema(as = DistributionMode)]
pub enum Mode {
    /// Every voting member gets the whole task (for a vote).
    #[default]
    Broadcast,
    /// The items of one input are shared among the workers; results come back in input order.
    Split,
    /// The lead returns a plan of subtasks, the workers run it, the lead synthesizes.
    LeadPlans,
    /// Every member gets the task; the first success wins, members not started yet never are.
    Race,
}

/// How `split` chooses a worker for each item.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
#[schema(as = SplitStrategy)]
pub enum Strategy {
    /// In turn, in member order.
    #[default]
    RoundRobin,
    /// To the worker with the fewest assignments in flight (the in-flight counts message
    /// routing uses).
    LeastLoaded,
    /// In proportion to the members' weights.
    Weighted,
    /// To a worker offering the item's `capability` field.
    Capability,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(as = SquadDistribution)]
pub struct Distribution {
    /// Default `broadcast`.
    #[serde(default)]
    pub mode: Mode,
    /// `split`: the task input that holds the list of items.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub over: Option<String>,
    /// `split`: default `round_robin`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub strategy: Option<Strategy>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(as = SquadCollaboration)]
pub struct Collaboration {
    /// At most this many rounds (1 to 10, default 1). From round 2 each member also
    /// receives the previous round's answers; a round that reaches the aggregation ends
    /// the task.
    #[serde(default = "one")]
    #[schema(minimum = 1, maximum = 10)]
    pub rounds: u32,
}

impl Default for Collaboration {
    fn default() -> Self {
        Self { rounds: 1 }
    }
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(as = SquadAggregation)]
pub struct Aggregation {
    /// Default by mode: `broadcast` majority, `split` collect, `lead_plans` lead, `race`
    /// first_success.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub method: Option<Method>,
    /// A JSON pointer into each reply (`/answer`); answers are compared on the canonical
    /// JSON of what it points at. Default: the whole reply.
    #[serde(default)]
    #[schema(max_length = 1024, pattern = "^(/([^~]|~[01])*)*$")]
    pub compare: String,
    /// `quorum`: how many members must give the same answer.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(minimum = 1)]
    pub quorum: Option<u32>,
    /// Default `first_listed`.
    #[serde(default)]
    pub tie_break: TieBreak,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(as = SquadLimits)]
pub struct Limits {
    /// Assignments of one task in flight at once: 1 to 1,000, default 16.
    #[serde(default = "Limits::default_concurrency")]
    #[schema(minimum = 1, maximum = 1000)]
    pub max_concurrency: u32,
    /// Assignments in flight per member: 1 to 100, default 1.
    #[serde(default = "one")]
    #[schema(minimum = 1, maximum = 100)]
    pub max_per_member: u32,
    /// Seconds one call of a member may take. Default 60.
    #[serde(default = "Limits::default_member_timeout")]
    #[schema(exclusive_minimum = 0, maximum = 31536000)]
    pub member_timeout: f64,
    /// Seconds the whole task may take, at most a year. Default 3,600.
    #[serde(default = "Limits::default_deadline")]
    #[schema(exclusive_minimum = 0, maximum = 31536000)]
    pub deadline: f64,
}

impl Limits {
    pub const MAX_CONCURRENCY: u32 = 1_000;
    pub const MAX_PER_MEMBER: u32 = 100;

    fn default_concurrency() -> u32 {
        16
    }

    fn default_member_timeout() -> f64 {
        60.0
    }

    fn default_deadline() -> f64 {
        3_600.0
    }

    /// How long one call of a member may take (checked by the rules to be a [`Seconds`]).
    pub fn member_timeout(&self) -> std::time::Duration {
        Seconds::new(self.member_timeout).map_or(std::time::Duration::from_secs(60), Seconds::as_duration)
    }

    /// How long the whole task may take.
    pub fn deadline(&self) -> std::time::Duration {
        Seconds::new(self.deadline).map_or(std::time::Duration::from_secs(3_600), Seconds::as_duration)
    }
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            max_concurrency: Self::default_concurrency(),
            max_per_member: 1,
            member_timeout: Self::default_member_timeout(),
            deadline: Self::default_deadline(),
        }
    }
}

/// What a task survives.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(as = SquadOnFailure)]
pub struct OnFailure {
    /// Calls of a member after its first, per assignment: 0 to 10, default 1.
    #[serde(default = "one")]
    #[schema(maximum = 10)]
    pub retries: u32,
    /// Members the aggregation may do without once they failed and could not be
    /// replaced. Default 0.
    #[serde(default)]
    pub tolerate: u32,
    /// Members replaced (from the agents offering the capability: active, breaker closed,
    /// not in the task) per task: 0 to 100, default 3. 0: never replace.
    #[serde(default = "OnFailure::default_replacements")]
    #[schema(maximum = 100)]
    pub replacements: u32,
}

impl OnFailure {
    pub const MAX_RETRIES: u32 = 10;
    pub const MAX_REPLACEMENTS: u32 = 100;

    fn default_replacements() -> u32 {
        3
    }
}

impl Default for OnFailure {
    fn default() -> Self {
        Self { retries: 1, tolerate: 0, replacements: Self::default_replacements() }
    }
}

impl Squad {
    /// The most members a squad may have, capability members counted `count` times.
    pub const MAX_MEMBERS: usize = 1_000;
    /// The most agents one capability member may stand for.
    pub const MAX_COUNT: u32 = 100;
    pub const MAX_ROUNDS: u32 = 10;
    pub const MAX_WEIGHT: u32 = 1_000;

    /// The aggregation method, its default resolved.
    pub fn method(&self) -> Method {
        self.aggregation.method.unwrap_or(match self.distribution.mode {
            Mode::Broadcast => Method::Majority,
            Mode::Split => Method::Collect,
            Mode::LeadPlans => Method::Lead,
            Mode::Race => Method::FirstSuccess,
        })
    }

    /// `split`'s strategy, its default resolved.
    pub fn strategy(&self) -> Strategy {
        self.distribution.strategy.unwrap_or_default()
    }

    /// How many agents a member stands for.
    pub fn seats(member: &Member) -> u32 {
        if member.agent.is_some() { 1 } else { member.count.unwrap_or(1) }
    }

    /// Members once every capability member counts `count` times, saturating.
    pub fn seat_count(&self) -> usize {
        self.members.iter().map(|m| Self::seats(m) as usize).fold(0usize, usize::saturating_add)
    }
}

impl Shaped for Squad {
    fn shape() -> &'static Shape {
        &SQUAD
    }

    fn rules(&self) -> ValidationErrors {
        self.validate()
    }
}

const TEXT: Shape = Shape::Nullable(&Shape::Str);
const COUNT: Shape = Shape::Nullable(&Shape::U32);
/// Seconds, checked by the rules (positive, within [`Seconds::MAX`]).
const SECONDS: Shape = Shape::Num;

static ROLE: Shape =
    Shape::Enum(&Enum { what: "role", values: &["lead", "worker", "validator"], aliases: &[] });

static SQUAD: Shape = Shape::Object(&Object {
    what: "a squad",
    fields: &[
        Field::required("id", Shape::Str),
        Field::required("version", Shape::Str),
        Field::optional("description", TEXT),
        Field::required(
            "members",
            Shape::List(&Shape::Object(&Object {
                what: "a member",
                fields: &[
                    Field::optional("agent", TEXT),
                    Field::optional("capability", TEXT),
                    Field::optional("count", COUNT),
                    Field::optional("role", ROLE),
                    Field::optional("weight", Shape::U32),
                ],
            })),
        ),
        Field::optional(
            "distribution",
            Shape::Object(&Object {
                what: "a distribution",
                fields: &[
                    Field::optional(
                        "mode",
                        Shape::Enum(&Enum {
                            what: "distribution mode",
                            values: &["broadcast", "split", "lead_plans", "race"],
                            aliases: &[],
                        }),
                    ),
                    Field::optional("over", TEXT),
                    Field::optional(
                        "strategy",
                        Shape::Nullable(&Shape::Enum(&Enum {
                            what: "split strategy",
                            values: &["round_robin", "least_loaded", "weighted", "capability"],
                            aliases: &[],
                        })),
                    ),
                ],
            }),
        ),
        Field::optional(
            "collaboration",
            Shape::Object(&Object {
                what: "collaboration",
                fields: &[Field::optional("rounds", Shape::U32)],
            }),
        ),
        Field::optional(
            "aggregation",
            Shape::Object(&Object {
                what: "an aggregation",
                fields: &[
                    Field::optional(
                        "method",
                        Shape::Nullable(&Shape::Enum(&Enum {
                            what: "aggregation method",
                            values: &[
                                "majority",
                                "weighted",
                                "unanimous",
                                "quorum",
                                "first_success",
                                "validator",
                                "lead",
                                "collect",
                            ],
                            aliases: &[],
                        })),
                    ),
                    Field::optional("compare", Shape::Str),
                    Field::optional("quorum", COUNT),
                    Field::optional(
                        "tie_break",
                        Shape::Enum(&Enum {
                            what: "tie break",
                            values: &["first_listed", "fail"],
                            aliases: &[],
                        }),
                    ),
                ],
            }),
        ),
        Field::optional(
            "limits",
            Shape::Object(&Object {
                what: "limits",
                fields: &[
                    Field::optional("max_concurrency", Shape::U32),
                    Field::optional("max_per_member", Shape::U32),
                    Field::optional("member_timeout", SECONDS),
                    Field::optional("deadline", SECONDS),
                ],
            }),
        ),
        Field::optional(
            "on_failure",
            Shape::Object(&Object {
                what: "on_failure",
                fields: &[
                    Field::optional("retries", Shape::U32),
                    Field::optional("tolerate", Shape::U32),
                    Field::optional("replacements", Shape::U32),
                ],
            }),
        ),
    ],
});
