use super::validate::{agent_alias_arn, bedrock_name, role_arn, runtime_name};
use super::*;

const ROLE: &str = "arn:aws:iam::123456789012:role/AgentRole";

fn valid_yaml() -> String {
    format!(
        r#"
name: support-bot
description: Answers support questions
instruction: You answer customer support questions politely and precisely, citing the order.
foundation_model: anthropic.claude-3-5-sonnet-20240620-v1:0
agent_role_arn: {ROLE}
action_groups:
  - name: orders
    lambda_arn: arn:aws:lambda:us-east-1:123456789012:function:orders
    api_schema:
      inline:
        openapi: 3.0.0
        info: {{ title: orders, version: "1" }}
        paths:
          /orders/{{id}}:
            get: {{ operationId: getOrder, description: Get an order }}
  - name: refunds
    functions:
      - name: refund
        parameters:
          order_id: {{ type: string, required: true }}
knowledge_bases:
  - id: KB12345678
    description: The product manual
guardrail: {{ id: gr-1, version: "2" }}
tags: {{ team: support }}
register: {{ id: support-bot, capabilities: [support] }}
verify: {{ input: {{ question: hi }}, expect: "answer" }}
"#
    )
}

fn errors_of(text: &str) -> Vec<(String, String)> {
    match Submitted::parse(text).unwrap().spec(&SpecLimits::default()) {
        Ok(spec) => panic!("accepted: {spec:?}"),
        Err(errors) => errors.errors().iter().map(|e| (e.path.clone(), e.message.clone())).collect(),
    }
}

fn paths(text: &str) -> Vec<String> {
    errors_of(text).into_iter().map(|(p, _)| p).collect()
}

#[test]
fn a_full_bedrock_spec_is_read_from_yaml_and_from_json_alike() {
    let yaml = Submitted::parse(&valid_yaml()).unwrap();
    let spec = yaml.spec(&SpecLimits::default()).unwrap();
    assert_eq!(spec.name, "support-bot");
    assert_eq!(spec.platform, PlatformSpec::BedrockAgent { alias: "live".into() });
    assert_eq!(spec.idle_session_ttl_seconds, 600);
    assert_eq!(spec.action_groups.len(), 2);
    let payload = spec.action_groups[0].api_schema.as_ref().unwrap().payload().unwrap();
    assert!(payload.contains("\"openapi\":\"3.0.0\""), "{payload}");
    let json = Submitted::parse(&yaml.document.to_string()).unwrap();
    assert_eq!(json.spec(&SpecLimits::default()).unwrap(), spec);
    assert_eq!(AgentSpec::hash(&json.document), AgentSpec::hash(&yaml.document));
}

#[test]
fn every_missing_required_field_is_reported_at_once() {
    assert_eq!(
        paths("description: x"),
        ["$.name", "$.agent_role_arn", "$.instruction", "$.foundation_model"]
    );
}

#[test]
fn bedrock_limits_are_checked_with_paths() {
    let text = valid_yaml()
        .replace("name: support-bot\n", "name: support bot!\n")
        .replace(
            "instruction: You answer customer support questions politely and precisely, citing the order.",
            "instruction: too short",
        )
        .replace("name: refunds", "name: orders")
        .replace("type: string", "type: text")
        .replace("KB12345678", "kb")
        .replace("expect: \"answer\"", "expect: \"(\"");
    assert_eq!(
        paths(&text),
        // The shape's problems first (a parameter type is one of a fixed set), then the rules'.
        [
            "$.action_groups[1].functions[0].parameters.order_id.type",
            "$.name",
            "$.instruction",
            "$.action_groups[1].name",
            "$.knowledge_bases[0].id",
            "$.verify.expect",
        ]
    );
}

#[test]
fn too_many_action_groups_and_a_bad_openapi_schema_are_refused() {
    let mut spec: serde_json::Value = Submitted::parse(&valid_yaml()).unwrap().document;
    spec["action_groups"][0]["api_schema"] = serde_json::json!({"inline": "openapi: [unclosed"});
    let errors = Submitted::from_value(spec.clone()).spec(&SpecLimits::default()).unwrap_err();
    assert_eq!(errors.errors()[0].path, "$.action_groups[0].api_schema.inline");
    assert!(errors.errors()[0].message.contains("does not parse"), "{errors}");

    spec["action_groups"][0]["api_schema"] = serde_json::json!({"inline": {"openapi": "2.0", "paths": {}}});
    let errors = Submitted::from_value(spec.clone()).spec(&SpecLimits::default()).unwrap_err();
    let found: Vec<_> = errors.errors().iter().map(|e| e.path.as_str()).collect();
    assert_eq!(
        found,
        ["$.action_groups[0].api_schema.inline.openapi", "$.action_groups[0].api_schema.inline.paths"]
    );

    let group = serde_json::json!({"name": "g", "functions": [{"name": "f"}]});
    spec["action_groups"] = serde_json::Value::Array(
        (0..21)
            .map(|i| serde_json::json!({"name": format!("g{i}"), "functions": group["functions"]}))
            .collect(),
    );
    let errors = Submitted::from_value(spec).spec(&SpecLimits { max_bytes: 100_000 }).unwrap_err();
    assert_eq!(errors.errors()[0].path, "$.action_groups");
    assert!(errors.errors()[0].message.contains("at most 20"), "{errors}");
}

#[test]
fn an_action_group_needs_exactly_one_schema() {
    let text = valid_yaml().replace(
        "  - name: refunds\n    functions:",
        "  - name: refunds\n    api_schema: {s3: {bucket: my-bucket, key: a.yaml}}\n    functions:",
    );
    assert_eq!(
        errors_of(&text),
        [("$.action_groups[1]".into(), "has both an api_schema and functions: give one".into())]
    );
}

#[test]
fn the_size_limit_counts_compact_json_and_is_said_plainly() {
    let limits = SpecLimits::default();
    assert_eq!(limits.max_bytes, 6_656);
    let mut spec = Submitted::parse(&valid_yaml()).unwrap().document;
    spec["instruction"] = serde_json::json!("i".repeat(7_000));
    let submitted = Submitted::from_value(spec.clone());
    assert!(submitted.size() > limits.max_bytes);
    let errors = submitted.spec(&limits).unwrap_err();
    assert_eq!(errors.errors().len(), 1);
    assert_eq!(errors.errors()[0].path, "$");
    assert!(
        errors.errors()[0].message.contains(&format!("is {} bytes", submitted.size()))
            && errors.errors()[0].message.contains("the limit is 6656 bytes")
            && errors.errors()[0].message.contains("TDEV_DEPLOY_MAX_SPEC_BYTES")
            && errors.errors()[0].message.contains("DeployMaxSpecBytes"),
        "{errors}"
    );
    // One byte under the limit is fine.
    let over = submitted.size() - limits.max_bytes;
    let text = spec["instruction"].as_str().unwrap();
    spec["instruction"] = serde_json::json!(text[..text.len() - over].to_owned());
    assert_eq!(Submitted::from_value(spec).size(), limits.max_bytes);
}

#[test]
fn wrong_types_and_unknown_fields_name_their_path() {
    // A field of the wrong type, and beside it every rule the rest of the spec breaks.
    assert_eq!(
        paths("name: a\nidle_session_ttl_seconds: soon"),
        ["$.idle_session_ttl_seconds", "$.agent_role_arn", "$.instruction", "$.foundation_model"]
    );
    // An unknown field, and beside it every rule the rest of the spec breaks.
    assert_eq!(
        paths("name: a\naction_groups: [{name: g, colour: red}]"),
        ["$.action_groups[0].colour", "$.agent_role_arn", "$.instruction", "$.foundation_model"]
    );
    let SpecParseError(errors) = Submitted::parse("[1, 2").unwrap_err();
    assert_eq!(errors.errors()[0].path, "$");
    assert!(paths("[1, 2]")[0].starts_with('$'));
}

#[test]
fn agentcore_and_local_targets_have_their_own_rules() {
    let core = format!(
        "name: support-bot\nagent_role_arn: {ROLE}\ntarget: {{kind: agentcore-runtime, network_mode: VPC}}\naction_groups: [{{name: g, functions: [{{name: f}}]}}]"
    );
    assert_eq!(
        paths(&core),
        ["$.name", "$.action_groups", "$.target.artifact", "$.target.subnets", "$.target.security_groups"]
    );
    let ok = format!(
        "name: support_bot\nagent_role_arn: {ROLE}\ntarget: {{kind: agentcore-runtime, artifact: 123456789012.dkr.ecr.us-east-1.amazonaws.com/bot:1}}"
    );
    assert!(Submitted::parse(&ok).unwrap().spec(&SpecLimits::default()).is_ok());
    assert_eq!(paths("name: bot\ntarget: {kind: local}"), ["$.target.url"]);
    let local = "name: bot\ntarget: {kind: local, url: 'http://127.0.0.1:9100/'}";
    assert!(Submitted::parse(local).unwrap().spec(&SpecLimits::default()).is_ok());
}

#[test]
fn names_follow_bedrocks_pattern() {
    for good in ["a", "A1", "a-b_c", "a-", "a_b-c-"] {
        assert!(bedrock_name(good), "{good}");
    }
    for bad in ["", "-a", "a--b", "a b", "a.b", &"a".repeat(101)] {
        assert!(!bedrock_name(bad), "{bad}");
    }
    assert!(bedrock_name(&"a".repeat(100)));
    assert!(runtime_name("bot_1") && !runtime_name("bot-1") && !runtime_name("1bot"));
    assert!(
        role_arn(ROLE)
            && !role_arn("arn:aws:iam::1234:role/x")
            && !role_arn("arn:aws:iam::123456789012:user/x")
    );
}

#[test]
fn a_body_is_read_as_its_content_type_says() {
    use crate::workflow::Format;
    let yaml = valid_yaml();
    let as_yaml = Submitted::parse_as(&yaml, Format::Yaml).unwrap();
    assert_eq!(as_yaml, Submitted::parse(&yaml).unwrap());
    // JSON is YAML; YAML is not JSON, and a broken JSON body hears about JSON.
    let json = as_yaml.document.to_string();
    assert_eq!(Submitted::parse_as(&json, Format::Yaml).unwrap(), as_yaml);
    assert_eq!(Submitted::parse_as(&json, Format::Json).unwrap(), as_yaml);
    let error = Submitted::parse_as(&yaml, Format::Json).unwrap_err();
    assert!(error.0.to_string().contains("not JSON"), "{}", error.0);
    let error = Submitted::parse_as(r#"{"name": "a",}"#, Format::Json).unwrap_err();
    assert!(error.0.to_string().contains("not JSON: trailing comma"), "{}", error.0);
}

#[test]
fn every_problem_of_a_spec_s_shape_is_reported_at_once_with_suggestions() {
    let found = errors_of(
        "name: a\ndescripton: x\nidle_session_ttl_seconds: soon\ntarget: {kind: agnetcore_runtime}\nverify: {timout_seconds: 3}\naction_groups: [{name: g, functions: [{name: f, parameters: {p: {type: strng}}}]}]",
    );
    let mut paths: Vec<&str> = found.iter().map(|(p, _)| p.as_str()).collect();
    paths.sort_unstable();
    assert_eq!(
        paths,
        [
            "$.action_groups[0].functions[0].parameters.p.type",
            "$.descripton",
            "$.idle_session_ttl_seconds",
            "$.target.kind",
            "$.verify.timout_seconds",
        ]
    );
    let message = |path: &str| found.iter().find(|(p, _)| p == path).unwrap().1.as_str();
    assert!(message("$.descripton").contains("(did you mean \"description\"?)"));
    assert!(message("$.target.kind").contains("(did you mean \"agentcore_runtime\"?)"));
    assert!(message("$.verify.timout_seconds").contains("(did you mean \"timeout_seconds\"?)"));
    assert!(
        message("$.action_groups[0].functions[0].parameters.p.type").contains("(did you mean \"string\"?)")
    );
    // A target that is not an object is said to be one, at `$.target`.
    assert_eq!(
        errors_of("name: a\ntarget: local"),
        [("$.target".into(), "must be an object, not a string".into())]
    );
}

#[test]
fn target_kinds_are_snake_case_and_the_kebab_spelling_is_an_alias() {
    let kebab = format!(
        "name: support_bot\nagent_role_arn: {ROLE}\ntarget: {{kind: agentcore-runtime, artifact: a.example/bot:1}}"
    );
    let snake = kebab.replace("agentcore-runtime", "agentcore_runtime");
    let read = |text: &str| Submitted::parse(text).unwrap().spec(&SpecLimits::default()).unwrap();
    assert_eq!(read(&kebab), read(&snake));
    assert_eq!(read(&kebab).platform.kind().as_str(), "agentcore_runtime");
    assert_eq!(PlatformKind::named("bedrock-agent"), Some(PlatformKind::BedrockAgent));
    assert_eq!(PlatformKind::canonical("agentcore-runtime"), "agentcore_runtime");
    assert_eq!(PlatformKind::canonical("htp"), "htp");
}

#[test]
fn the_spec_shape_names_the_fields_serde_reads() {
    crate::strict::shape::assert_names_serde_fields::<AgentSpec>();
}

const ALIAS_ARN: &str = "arn:aws:bedrock:us-east-1:123456789012:agent-alias/AGENT00001/ALIAS00001";

/// A supervisor of two collaborators, on Bedrock.
fn supervisor_yaml() -> String {
    format!(
        r#"
name: front-desk
instruction: You take every customer question and hand it to the colleague who knows best.
foundation_model: anthropic.claude-3-5-sonnet-20240620-v1:0
agent_role_arn: {ROLE}
collaboration: supervisor_router
collaborators:
  - name: billing
    agent_alias_arn: {ALIAS_ARN}
    instruction: Questions about invoices and payments.
    relay_history: true
  - name: shipping
    agent_alias_arn: arn:aws:bedrock:eu-west-1:123456789012:agent-alias/AGENT00002/ALIAS00002
    instruction: Questions about deliveries.
"#
    )
}

#[test]
fn a_supervisor_and_its_collaborators_are_read() {
    let spec = Submitted::parse(&supervisor_yaml()).unwrap().spec(&SpecLimits::default()).unwrap();
    assert_eq!(spec.collaboration, Some(Collaboration::SupervisorRouter));
    assert_eq!(
        spec.collaborators[0],
        CollaboratorSpec {
            name: "billing".into(),
            agent_alias_arn: ALIAS_ARN.into(),
            instruction: "Questions about invoices and payments.".into(),
            relay_history: true,
        }
    );
    assert!(!spec.collaborators[1].relay_history, "relay_history defaults to false");
    let plain = Submitted::parse(&valid_yaml()).unwrap().spec(&SpecLimits::default()).unwrap();
    assert_eq!((plain.collaboration, plain.collaborators.len()), (None, 0));
}

#[test]
fn every_problem_of_the_collaborators_is_reported_at_once_with_its_path() {
    let text = supervisor_yaml()
        .replace("collaboration: supervisor_router", "collaboration: supervisor")
        .replace("name: shipping", "name: billing")
        .replace(ALIAS_ARN, "arn:aws:bedrock:us-east-1:123456789012:agent/AGENT00001")
        .replace("instruction: Questions about deliveries.", "instruction: ''")
        + "  - name: 'returns desk'\n    agent_alias_arn: arn:aws:bedrock:us-east-1:1234:agent-alias/AGENT00003/ALIAS00003\n    instruction: Returns.\n    relay_history: true\n";
    assert_eq!(
        errors_of(&text),
        [
            (
                "$.collaborators[0].agent_alias_arn".into(),
                "required: arn:aws:bedrock:<region>:<12-digit account>:agent-alias/<agent id>/<alias id>"
                    .into()
            ),
            ("$.collaborators[1].name".into(), "\"billing\" is named twice".into()),
            ("$.collaborators[1].instruction".into(), "required: 1 to 4000 characters (it has 0)".into()),
            (
                "$.collaborators[2].name".into(),
                "required: 1 to 100 letters and digits, each optionally followed by `-` or `_`".into()
            ),
            (
                "$.collaborators[2].agent_alias_arn".into(),
                "required: arn:aws:bedrock:<region>:<12-digit account>:agent-alias/<agent id>/<alias id>"
                    .into()
            ),
        ]
    );
    // The shape first: a mode Bedrock does not have, a relay that is not a boolean.
    let text = supervisor_yaml()
        .replace("collaboration: supervisor_router", "collaboration: superviser")
        .replace("relay_history: true", "relay_history: TO_COLLABORATOR");
    let found = errors_of(&text);
    let paths: Vec<&str> = found.iter().map(|(p, _)| p.as_str()).collect();
    assert_eq!(paths, ["$.collaboration", "$.collaborators[0].relay_history"]);
    assert!(found[0].1.contains("(did you mean \"supervisor\"?)"), "{found:?}");
}

#[test]
fn collaboration_and_collaborators_need_each_other_and_bedrocks_limits() {
    let lone_supervisor = supervisor_yaml().split("collaborators:").next().unwrap().to_owned();
    assert_eq!(
        errors_of(&lone_supervisor),
        [("$.collaborators".into(), "required with collaboration: at least one".into())]
    );
    let no_mode = supervisor_yaml().replace("collaboration: supervisor_router\n", "");
    assert_eq!(
        errors_of(&no_mode),
        [("$.collaboration".into(), "required with collaborators: supervisor or supervisor_router".into())]
    );
    let mut spec = Submitted::parse(&supervisor_yaml()).unwrap().document;
    spec["collaborators"] = serde_json::Value::Array(
        (0..11)
            .map(|i| {
                serde_json::json!({"name": format!("c{i}"), "agent_alias_arn": ALIAS_ARN, "instruction": "x".repeat(4_001 - i)})
            })
            .collect(),
    );
    let limits = SpecLimits { max_bytes: 100_000 };
    let errors = Submitted::from_value(spec.clone()).spec(&limits).unwrap_err();
    let found: Vec<(&str, &str)> =
        errors.errors().iter().map(|e| (e.path.as_str(), e.message.as_str())).collect();
    assert_eq!(
        found,
        [
            ("$.collaborators", "at most 10 collaborators (it has 11)"),
            ("$.collaborators[0].instruction", "required: 1 to 4000 characters (it has 4001)"),
        ]
    );
    spec["collaborators"].as_array_mut().unwrap().truncate(10);
    spec["collaborators"][0]["instruction"] = serde_json::json!("é".repeat(4_000));
    assert!(Submitted::from_value(spec).spec(&limits).is_ok(), "10 collaborators, 4,000 characters");
}

#[test]
fn only_the_bedrock_target_has_collaborators() {
    let core = format!(
        "name: support_bot\nagent_role_arn: {ROLE}\ntarget: {{kind: agentcore_runtime, artifact: a.example/bot:1}}\ncollaboration: supervisor\ncollaborators: [{{name: billing, agent_alias_arn: '{ALIAS_ARN}', instruction: Bills.}}]"
    );
    assert_eq!(
        errors_of(&core),
        [
            ("$.collaboration".into(), "only the bedrock_agent target has collaboration".into()),
            ("$.collaborators".into(), "only the bedrock_agent target has collaborators".into()),
        ]
    );
    let local = "name: bot\ntarget: {kind: local, url: 'http://127.0.0.1:9100/'}\ncollaboration: supervisor";
    assert_eq!(paths(local), ["$.collaboration"]);
}

#[test]
fn agent_alias_arns_follow_bedrocks_pattern() {
    for good in
        [ALIAS_ARN, "arn:aws-us-gov:bedrock:us-gov-west-1:123456789012:agent-alias/A1B2C3D4E5/ZYXWVUTSRQ"]
    {
        assert!(agent_alias_arn(good), "{good}");
    }
    for bad in [
        "",
        "arn:aws:bedrock:us-east-1:123456789012:agent/AGENT00001",
        "arn:aws:bedrock:us-east-1:123456789012:agent-alias/AGENT00001",
        "arn:aws:bedrock:us-east-1:123456789012:agent-alias/AGENT0001/ALIAS00001",
        "arn:aws:bedrock:us-east-1:123456789012:agent-alias/AGENT00001/ALIAS00001/x",
        "arn:aws:lambda:us-east-1:123456789012:agent-alias/AGENT00001/ALIAS00001",
        "arn:aws:bedrock:US-EAST-1:123456789012:agent-alias/AGENT00001/ALIAS00001",
        "arn:aws:bedrock:us-east-1:12345678901:agent-alias/AGENT00001/ALIAS00001",
        "arn:azure:bedrock:us-east-1:123456789012:agent-alias/AGENT00001/ALIAS00001",
    ] {
        assert!(!agent_alias_arn(bad), "{bad}");
    }
}
