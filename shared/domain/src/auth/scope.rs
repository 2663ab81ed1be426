//! Scopes: what a credential may do. `admin` grants every scope.

use std::collections::BTreeSet;
use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub enum Scope {
    #[serde(rename = "admin")]
    Admin,
    #[serde(rename = "read")]
    Read,
    #[serde(rename = "agents:write")]
    AgentsWrite,
    #[serde(rename = "messages:send")]
    MessagesSend,
    #[serde(rename = "workflows:run")]
    WorkflowsRun,
    #[serde(rename = "deployments:write")]
    DeploymentsWrite,
}

impl Scope {
    pub const ALL: [Scope; 6] = [
        Scope::Admin,
        Scope::Read,
        Scope::AgentsWrite,
        Scope::MessagesSend,
        Scope::WorkflowsRun,
        Scope::DeploymentsWrite,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Scope::Admin => "admin",
            Scope::Read => "read",
            Scope::AgentsWrite => "agents:write",
            Scope::MessagesSend => "messages:send",
            Scope::WorkflowsRun => "workflows:run",
            Scope::DeploymentsWrite => "deployments:write",
        }
    }
}

/// A scope's name in a request: one of [`Scope::ALL`]'s.
pub(crate) const SCOPE: crate::strict::shape::Shape =
    crate::strict::shape::Shape::Enum(&crate::strict::shape::Enum {
        what: "scope",
        values: &["admin", "read", "agents:write", "messages:send", "workflows:run", "deployments:write"],
        aliases: &[],
    });

impl fmt::Display for Scope {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "unknown scope {0:?}; known scopes: admin, read, agents:write, messages:send, workflows:run, deployments:write"
)]
pub struct UnknownScope(pub String);

impl FromStr for Scope {
    type Err = UnknownScope;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Scope::ALL.into_iter().find(|scope| scope.as_str() == s).ok_or_else(|| UnknownScope(s.to_owned()))
    }
}

/// A set of scopes, kept sorted so that its text form is stable.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(transparent)]
pub struct Scopes(BTreeSet<Scope>);

impl Scopes {
    pub fn new(scopes: impl IntoIterator<Item = Scope>) -> Self {
        Self(scopes.into_iter().collect())
    }

    /// Whether a holder of these scopes may do what `needed` allows.
    pub fn grants(&self, needed: Scope) -> bool {
        self.0.contains(&Scope::Admin) || self.0.contains(&needed)
    }

    /// Whether every scope in `other` is granted by `self`.
    pub fn covers(&self, other: &Scopes) -> bool {
        other.0.iter().all(|scope| self.grants(*scope))
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    pub fn iter(&self) -> impl Iterator<Item = Scope> + '_ {
        self.0.iter().copied()
    }

    /// The OAuth form: scopes separated by single spaces.
    pub fn to_space_separated(&self) -> String {
        self.0.iter().map(|s| s.as_str()).collect::<Vec<_>>().join(" ")
    }

    pub fn parse_space_separated(text: &str) -> Result<Self, UnknownScope> {
        text.split_whitespace().map(str::parse).collect::<Result<_, _>>().map(Self)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn admin_grants_everything_and_others_only_themselves() {
        let admin = Scopes::new([Scope::Admin]);
        let read = Scopes::new([Scope::Read]);
        for scope in Scope::ALL {
            assert!(admin.grants(scope));
            assert_eq!(read.grants(scope), scope == Scope::Read);
        }
    }

    #[test]
    fn space_separated_form_round_trips_and_rejects_unknown() {
        let scopes = Scopes::new([Scope::WorkflowsRun, Scope::Read]);
        let text = scopes.to_space_separated();
        assert_eq!(text, "read workflows:run");
        assert_eq!(Scopes::parse_space_separated(&text).unwrap(), scopes);
        assert_eq!(Scopes::parse_space_separated("read root").unwrap_err(), UnknownScope("root".into()));
    }

    #[test]
    fn covers_is_subset_with_admin_as_top() {
        let key = Scopes::new([Scope::Read, Scope::AgentsWrite]);
        assert!(key.covers(&Scopes::new([Scope::Read])));
        assert!(!key.covers(&Scopes::new([Scope::Read, Scope::Admin])));
        assert!(Scopes::new([Scope::Admin]).covers(&key));
    }

    #[test]
    fn the_scope_shape_names_every_scope() {
        let crate::strict::shape::Shape::Enum(scopes) = SCOPE else { panic!() };
        let all: Vec<&str> = Scope::ALL.iter().map(|s| s.as_str()).collect();
        assert_eq!(scopes.values, all);
    }
}
