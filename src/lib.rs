//! The local stack: every function's routes in one server, on the embedded backend by
//! default, or on AWS (moto or a real account) with `--backend aws`; and the operator CLI.

pub mod cli;
pub mod echo_agent;
pub mod openapi;
pub mod stack;
