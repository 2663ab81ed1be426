//! STUB until the h-tally branch is merged.
use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
#[schema(as = AggregationMethod)]
pub enum Method {
    Majority,
    Weighted,
    Unanimous,
    Quorum,
    FirstSuccess,
    Validator,
    Lead,
    Collect,
}

impl Method {
    pub fn as_str(self) -> &'static str {
        match self {
            Method::Majority => "majority",
            Method::Weighted => "weighted",
            Method::Unanimous => "unanimous",
            Method::Quorum => "quorum",
            Method::FirstSuccess => "first_success",
            Method::Validator => "validator",
            Method::Lead => "lead",
            Method::Collect => "collect",
        }
    }
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum TieBreak {
    #[default]
    FirstListed,
    Fail,
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
#[schema(as = MemberRole)]
pub enum Role {
    Lead,
    #[default]
    Worker,
    Validator,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct Tally {
    pub method: Method,
}
