//! The rules of a [`Squad`] beyond its shape, every problem reported with its path.

use std::collections::HashMap;

use super::model::{Mode, Squad};
use super::tally::{Method, Role};
use crate::agents::valid_agent_id;
use crate::validation::{UNSAFE_TEXT, ValidationErrors, unsafe_char};
use crate::workflow::Seconds;

const ID_RULE: &str = "must be 1 to 64 of a-z, 0-9, '-' and '_', starting with a letter or digit";
const CAPABILITY_RULE: &str = "a capability: 1 to 64 of a-z, 0-9, '-' and '_'";

/// Whether `version` is 1 to 64 of letters, digits, `.`, `-` and `_`.
fn valid_version(version: &str) -> bool {
    (1..=64).contains(&version.len())
        && version.chars().all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | '_'))
}

impl Squad {
    /// Every rule a squad must keep to be stored.
    pub fn validate(&self) -> ValidationErrors {
        let mut errors = ValidationErrors::new();
        if !valid_agent_id(&self.id) {
            errors.add("$.id", ID_RULE);
        }
        if !valid_version(&self.version) {
            errors.add("$.version", "must be 1 to 64 of letters, digits, '.', '-' and '_'");
        }
        if let Some(description) = &self.description
            && description.chars().count() > 1_000
        {
            errors.add("$.description", "must be at most 1,000 characters");
        }
        self.check_members(&mut errors);
        self.check_distribution(&mut errors);
        self.check_aggregation(&mut errors);
        self.check_limits(&mut errors);
        errors
    }

    fn check_members(&self, errors: &mut ValidationErrors) {
        if self.members.is_empty() {
            errors.add("$.members", "a squad needs at least one member");
        }
        let seats = self.seat_count();
        if seats > Self::MAX_MEMBERS {
            errors.add(
                "$.members",
                format!(
                    "the squad has {seats} members once counts are added up; the limit is {}",
                    Self::MAX_MEMBERS
                ),
            );
        }
        let mut agents: HashMap<&str, usize> = HashMap::new();
        let mut leads = Vec::new();
        for (i, member) in self.members.iter().enumerate() {
            let at = format!("$.members[{i}]");
            match (&member.agent, &member.capability) {
                (None, None) => {
                    errors.add(&at, "a member names an `agent`, or a `capability` to choose agents by")
                }
                (Some(agent), _) => {
                    if !valid_agent_id(agent) {
                        errors.add(format!("{at}.agent"), format!("an agent id {}", &ID_RULE[5..]));
                    } else if let Some(first) = agents.insert(agent, i) {
                        errors.add(
                            format!("{at}.agent"),
                            format!("agent {agent:?} is already a member ($.members[{first}])"),
                        );
                    }
                    if member.count.is_some() {
                        errors.add(
                            format!("{at}.count"),
                            "`count` is for a capability member; a member with an `agent` is that one agent",
                        );
                    }
                }
                (None, Some(_)) => match member.count {
                    Some(count) if count == 0 || count > Self::MAX_COUNT => {
                        errors.add(format!("{at}.count"), format!("must be 1 to {}", Self::MAX_COUNT));
                    }
                    _ => {}
                },
            }
            if let Some(capability) = &member.capability
                && !valid_agent_id(capability)
            {
                let message = if unsafe_char(capability).is_some() { UNSAFE_TEXT } else { CAPABILITY_RULE };
                errors.add(format!("{at}.capability"), message);
            }
            if member.weight == 0 || member.weight > Self::MAX_WEIGHT {
                errors.add(format!("{at}.weight"), format!("must be 1 to {}", Self::MAX_WEIGHT));
            }
            if member.role == Role::Lead {
                leads.push(i);
            }
        }
        for &i in leads.iter().skip(1) {
            errors.add(
                format!("$.members[{i}].role"),
                format!("a squad has one lead, and $.members[{}] is it", leads[0]),
            );
        }
        if leads.first().is_some_and(|&i| Self::seats(&self.members[i]) > 1) {
            errors.add(format!("$.members[{}].count", leads[0]), "the lead is one agent: leave `count` out");
        }
    }

    fn has(&self, role: Role) -> bool {
        self.members.iter().any(|m| m.role == role)
    }

    fn check_distribution(&self, errors: &mut ValidationErrors) {
        let distribution = &self.distribution;
        let mode = distribution.mode;
        match (&distribution.over, mode) {
            (None, Mode::Split) => {
                errors.add("$.distribution.over", "required for split: the input that holds the items")
            }
            (Some(over), Mode::Split) => {
                if over.trim().is_empty() || over.chars().count() > 256 || unsafe_char(over).is_some() {
                    errors.add("$.distribution.over", "an input name: 1 to 256 printable characters");
                }
            }
            (Some(_), _) => errors.add("$.distribution.over", "only split shares out an input's items"),
            (None, _) => {}
        }
        if distribution.strategy.is_some() && mode != Mode::Split {
            errors.add("$.distribution.strategy", "only split has a strategy");
        }
        if mode == Mode::LeadPlans {
            if !self.has(Role::Lead) {
                errors
                    .add("$.members", "lead_plans needs a member with role lead, who plans and synthesizes");
            }
            if !self.has(Role::Worker) {
                errors.add("$.members", "lead_plans needs at least one worker to run the plan");
            }
        }
        if mode == Mode::Split && !self.has(Role::Worker) {
            errors.add("$.members", "split needs at least one worker");
        }
        let rounds = self.collaboration.rounds;
        if rounds == 0 || rounds > Self::MAX_ROUNDS {
            errors.add("$.collaboration.rounds", format!("must be 1 to {}", Self::MAX_ROUNDS));
        } else if rounds > 1 && mode != Mode::Broadcast {
            errors.add(
                "$.collaboration.rounds",
                "only a broadcast has rounds (each member sees the last round's answers)",
            );
        }
    }

    fn check_aggregation(&self, errors: &mut ValidationErrors) {
        let method = self.method();
        let mode = self.distribution.mode;
        let at = "$.aggregation.method";
        let fits = match mode {
            Mode::Broadcast => {
                matches!(
                    method,
                    Method::Majority
                        | Method::Weighted
                        | Method::Unanimous
                        | Method::Quorum
                        | Method::Validator
                )
            }
            Mode::Split => method == Method::Collect,
            Mode::LeadPlans => method == Method::Lead,
            Mode::Race => method == Method::FirstSuccess,
        };
        if !fits {
            let allowed = match mode {
                Mode::Broadcast => "majority, weighted, unanimous, quorum or validator",
                Mode::Split => "collect (a split's results come back in input order)",
                Mode::LeadPlans => "lead (the lead synthesizes the results)",
                Mode::Race => "first_success (the first success wins the race)",
            };
            errors.add(at, format!("{} does not go with {}: use {allowed}", method.as_str(), mode.as_str()));
        }
        if method == Method::Validator {
            if !self.has(Role::Validator) {
                errors.add("$.members", "the validator method needs a member with role validator");
            }
            if !self.has(Role::Worker) {
                errors.add("$.members", "the validator method needs workers whose answers it judges");
            }
        } else if let Some(i) = self.members.iter().position(|m| m.role == Role::Validator) {
            errors.add(
                format!("$.members[{i}].role"),
                "validators judge answers: only with the validator method",
            );
        }
        let voters: usize = self
            .members
            .iter()
            .filter(|m| m.role == Role::Worker || (m.role == Role::Lead && mode == Mode::Broadcast))
            .map(|m| Self::seats(m) as usize)
            .sum();
        match (method, self.aggregation.quorum) {
            (Method::Quorum, None) => {
                errors.add("$.aggregation.quorum", "required: how many must give the same answer")
            }
            (Method::Quorum, Some(k)) if k == 0 || k as usize > voters => {
                errors.add(
                    "$.aggregation.quorum",
                    format!("must be 1 to the number of voting members ({voters})"),
                );
            }
            (Method::Quorum, Some(_)) | (_, None) => {}
            (_, Some(_)) => errors.add("$.aggregation.quorum", "only the quorum method has a quorum"),
        }
        let compare = &self.aggregation.compare;
        // RFC 6901: `~` only as `~0` or `~1`.
        let escapes_ok = compare.split('~').skip(1).all(|rest| rest.starts_with(['0', '1']));
        if !(compare.is_empty() || compare.starts_with('/')) || compare.chars().count() > 1_024 || !escapes_ok
        {
            errors.add(
                "$.aggregation.compare",
                "a JSON pointer into the reply, such as /answer (empty: the whole reply), at most 1,024 characters",
            );
        }
    }

    fn check_limits(&self, errors: &mut ValidationErrors) {
        let limits = &self.limits;
        if limits.max_concurrency == 0 || limits.max_concurrency > super::Limits::MAX_CONCURRENCY {
            errors
                .add("$.limits.max_concurrency", format!("must be 1 to {}", super::Limits::MAX_CONCURRENCY));
        }
        if limits.max_per_member == 0 || limits.max_per_member > super::Limits::MAX_PER_MEMBER {
            errors.add("$.limits.max_per_member", format!("must be 1 to {}", super::Limits::MAX_PER_MEMBER));
        }
        for (field, seconds) in [("member_timeout", limits.member_timeout), ("deadline", limits.deadline)] {
            if let Err(message) = Seconds::new(seconds) {
                errors.add(format!("$.limits.{field}"), message);
            }
        }
        let failure = &self.on_failure;
        if failure.retries > super::OnFailure::MAX_RETRIES {
            errors.add("$.on_failure.retries", format!("must be 0 to {}", super::OnFailure::MAX_RETRIES));
        }
        if failure.replacements > super::OnFailure::MAX_REPLACEMENTS {
            errors.add(
                "$.on_failure.replacements",
                format!("must be 0 to {}", super::OnFailure::MAX_REPLACEMENTS),
            );
        }
        let seats = self.seat_count();
        // A split tolerates failed items, however many workers it has.
        if self.distribution.mode != Mode::Split && failure.tolerate as usize >= seats.max(1) {
            errors.add(
                "$.on_failure.tolerate",
                format!("must be less than the number of members ({seats}): someone has to answer"),
            );
        }
    }
}

impl Mode {
    pub fn as_str(self) -> &'static str {
        match self {
            Mode::Broadcast => "broadcast",
            Mode::Split => "split",
            Mode::LeadPlans => "lead_plans",
            Mode::Race => "race",
        }
    }
}

/// A finding that does not stop a squad from being stored, but will refuse a task until it
/// is dealt with: an agent not registered, a capability too few active agents offer.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, utoipa::ToSchema)]
pub struct MemberNotice {
    /// The JSON path of the member concerned.
    pub path: String,
    pub message: String,
}

impl Squad {
    /// What the registry says of the members: `registered` tells whether an agent id is
    /// registered, `offering` how many active agents offer a capability.
    pub fn notices(
        &self,
        registered: impl Fn(&str) -> bool,
        offering: impl Fn(&str) -> usize,
    ) -> Vec<MemberNotice> {
        let mut notices = Vec::new();
        for (i, member) in self.members.iter().enumerate() {
            match (&member.agent, &member.capability) {
                (Some(agent), _) if !registered(agent) => notices.push(MemberNotice {
                    path: format!("$.members[{i}].agent"),
                    message: format!(
                        "agent {agent:?} is not registered (yet); a task is refused until it is (POST /v1/agents)"
                    ),
                }),
                (None, Some(capability)) => {
                    let wanted = Self::seats(member) as usize;
                    let found = offering(capability);
                    if found < wanted {
                        notices.push(MemberNotice {
                            path: format!("$.members[{i}].capability"),
                            message: format!(
                                "{found} active agent(s) offer {capability:?} and the member asks for {wanted}; \
                                 a task is refused until enough are registered"
                            ),
                        });
                    }
                }
                _ => {}
            }
        }
        notices
    }
}
