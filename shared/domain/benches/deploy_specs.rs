//! Checking an agent spec, as every deployment does before it touches AWS: a full Bedrock
//! spec (three action groups, one with an inline OpenAPI schema, knowledge bases, a
//! guardrail, a smoke test) read from YAML and from JSON and validated; and a spec over
//! the size limit, refused.
//!
//! Run: `cargo bench -p tdev-domain --bench deploy_specs`. Not part of CI.

use std::hint::black_box;

use criterion::{Criterion, criterion_group, criterion_main};
use tdev_domain::deploy::{SpecLimits, Submitted};

const SPEC: &str = r#"
name: support-bot
description: Answers support questions
instruction: You answer customer support questions politely and precisely, citing the order number when you have one.
foundation_model: anthropic.claude-3-5-sonnet-20240620-v1:0
agent_role_arn: arn:aws:iam::123456789012:role/tdev-agent-support
idle_session_ttl_seconds: 900
action_groups:
  - name: orders
    description: Look orders up
    lambda_arn: arn:aws:lambda:us-east-1:123456789012:function:tdev-orders
    api_schema:
      inline:
        openapi: 3.0.0
        info: { title: orders, version: "1" }
        paths:
          /orders/{id}:
            get:
              operationId: getOrder
              description: Get one order
              parameters: [{ name: id, in: path, required: true, schema: { type: string } }]
              responses: { "200": { description: the order } }
          /orders:
            get: { operationId: listOrders, description: List orders, responses: { "200": { description: orders } } }
  - name: refunds
    api_schema: { s3: { bucket: tdev-schemas, key: refunds.yaml } }
  - name: notes
    functions:
      - name: add_note
        description: Add a note to an order
        parameters:
          order_id: { type: string, required: true }
          text: { type: string, required: true }
knowledge_bases:
  - { id: KB12345678, description: The product manual }
guardrail: { id: gr-abc123, version: "2" }
tags: { team: support, cost-centre: "42" }
register: { id: support-bot, capabilities: [support, orders] }
verify: { input: { question: ping }, expect: "pong|ok", timeout_seconds: 30 }
"#;

fn specs(c: &mut Criterion) {
    let limits = SpecLimits::default();
    let json = Submitted::parse(SPEC).unwrap().document.to_string();
    assert!(Submitted::parse(&json).unwrap().spec(&limits).is_ok());
    println!("the spec: {} bytes as compact JSON (limit {})", json.len(), limits.max_bytes);
    c.bench_function("check a full Bedrock spec (YAML)", |b| {
        b.iter(|| Submitted::parse(black_box(SPEC)).unwrap().spec(&limits).unwrap().action_groups.len())
    });
    c.bench_function("check a full Bedrock spec (JSON)", |b| {
        b.iter(|| Submitted::parse(black_box(&json)).unwrap().spec(&limits).unwrap().action_groups.len())
    });
    let big = json.replace("Answers support questions", &"x".repeat(7_000));
    c.bench_function("refuse a spec over the size limit (JSON, 7.9 KB)", |b| {
        b.iter(|| Submitted::parse(black_box(&big)).unwrap().spec(&limits).unwrap_err().errors().len())
    });
}

criterion_group!(benches, specs);
criterion_main!(benches);
