//! The routing decision: the candidates for a capability-routed message among 100
//! registered agents (10 of them capable), by least work in flight; and for a message
//! addressed by id.
//!
//! Run: `cargo bench -p tdev-domain --bench routing`. Not part of CI.

use std::collections::HashMap;
use std::hint::black_box;

use criterion::{Criterion, criterion_group, criterion_main};
use tdev_domain::agents::{Agent, AgentStatus, AgentTarget};
use tdev_domain::messaging::{Recipient, candidates};

fn agents() -> Vec<Agent> {
    (0..100)
        .map(|i| Agent {
            id: format!("agent-{i:03}"),
            name: format!("Agent {i}"),
            target: AgentTarget::Http { url: format!("http://127.0.0.1:9/{i}") },
            capabilities: if i % 10 == 0 {
                ["summarize".to_owned(), "translate".to_owned()].into()
            } else {
                [format!("skill-{i}")].into()
            },
            status: if i == 50 { AgentStatus::Draining } else { AgentStatus::Active },
            max_concurrency: Some(8),
            created_at: jiff::Timestamp::UNIX_EPOCH,
        })
        .collect()
}

fn routing(c: &mut Criterion) {
    let agents = agents();
    let load: HashMap<String, u32> =
        agents.iter().enumerate().map(|(i, a)| (a.id.clone(), (i * 7 % 5) as u32)).collect();
    let by_capability = Recipient::Capability("summarize".into());
    let by_id = Recipient::Agent("agent-042".into());
    c.bench_function("route by capability (100 agents, 10 capable)", |b| {
        b.iter(|| candidates(black_box(&by_capability), black_box(&agents), |a| load[&a.id]).unwrap().len())
    });
    c.bench_function("route by id (100 agents)", |b| {
        b.iter(|| candidates(black_box(&by_id), black_box(&agents), |a| load[&a.id]).unwrap().len())
    });
}

criterion_group!(benches, routing);
criterion_main!(benches);
