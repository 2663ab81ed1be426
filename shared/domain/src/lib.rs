//! The pure domain of T-Developer: types and rules with no AWS SDK and no I/O.
//!
//! Adapters (`tdev-embedded`, `tdev-aws`) implement the ports; functions compose them
//! with the services here.
//!
//! # One shape for every area
//!
//! An area is a folder: its model files, its own `ports.rs` (the traits only it needs
//! from the world), a `service.rs` for what the API asks of it and a `worker.rs` for what
//! a queue delivery asks of it. An area without a queue side has no `worker.rs`, one
//! without an API service no `service.rs`; where they exist the names are these. Its
//! `mod.rs` says what the area is and re-exports its public items: callers name
//! `tdev_domain::<area>::Item`, never a file.
//!
//! | area | model | ports | service | worker |
//! | --- | --- | --- | --- | --- |
//! | [`workflow`] | the definition language: format, parser, graph, planner | — | — | — |
//! | [`agents`] | agents, their targets | store, invoker | the registry | — |
//! | [`squads`] | the squad language: members, distribution, rounds, the tally | — | — | — |
//! | [`events`] | events, subscriptions | log, subscriptions, sink | the event log | — |
//! | [`auth`] | keys, tokens, scopes, rate limits | keys, buckets | authentication | — |
//! | [`messaging`] | messages, envelope, bands, breaker, dead letters | idempotency, load, archive | the messenger | the dispatcher |
//! | [`runs`] | runs, steps, squad tasks, assignments | workflows and squads, runs, tasks | the engine | step tasks, assignments |
//! | [`deploy`] | the spec, deployments | deployments, targets | deployments | deploy tasks |
//!
//! The shared kernel is what every area uses, and nothing else: [`ports`] (store errors,
//! the queue, secrets, health), [`queue`], [`clock`], [`health`], [`bounded`], [`strict`],
//! [`validation`] and [`yaml`].
//!
//! Imports go one way: an area imports only the areas below it in the table (the order
//! above, lowest first), and the kernel; the kernel imports no area; no two files import
//! each other, even within an area. `infra/check_domain_imports.py` checks all of it (run
//! by `infra/test.sh`).

pub mod agents;
pub mod auth;
pub mod bounded;
pub mod clock;
pub mod deploy;
pub mod events;
pub mod health;
pub mod messaging;
pub mod ports;
pub mod queue;
pub mod runs;
pub mod squads;
pub mod strict;
pub mod validation;
pub mod workflow;
pub mod yaml;

pub use clock::{Clock, ManualClock, SystemClock};
