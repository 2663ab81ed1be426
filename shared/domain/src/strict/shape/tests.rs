use serde::Deserialize;
use serde_json::json;

use super::*;

#[derive(Debug, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
struct Body {
    name: String,
    #[serde(default)]
    tags: Vec<String>,
    count: Option<u8>,
    target: Target,
}

#[derive(Debug, Deserialize, PartialEq)]
#[serde(tag = "kind", rename_all = "snake_case", deny_unknown_fields)]
enum Target {
    Http {
        url: String,
    },
    #[serde(alias = "bedrock-agent")]
    BedrockAgent {
        agent_id: String,
    },
}

const TARGET: Tagged = Tagged {
    tag: "kind",
    what: "target kind",
    object: "a target",
    variants: &[
        Variant { name: "http", aliases: &[], fields: &[Field::required("url", Shape::Str)] },
        Variant {
            name: "bedrock_agent",
            aliases: &["bedrock-agent"],
            fields: &[Field::required("agent_id", Shape::Str)],
        },
    ],
};

const BODY: Shape = Shape::Object(&Object {
    what: "a body",
    fields: &[
        Field::required("name", Shape::Str),
        Field::optional(
            "tags",
            Shape::List(&Shape::Enum(&Enum { what: "tag", values: &["red", "green"], aliases: &[] })),
        ),
        Field::optional("count", Shape::Nullable(&Shape::Int { min: 0.0, max: 255.0 })),
        Field::required("target", Shape::Tagged(&TARGET)),
    ],
});

impl Shaped for Body {
    fn shape() -> &'static Shape {
        &BODY
    }
}

fn problems(value: Value) -> Vec<(String, String)> {
    read::<Body>(&value).unwrap_err().errors().iter().map(|e| (e.path.clone(), e.message.clone())).collect()
}

#[test]
fn a_body_of_the_right_shape_reads_and_an_alias_is_accepted() {
    let body: Body =
        read(&json!({"name": "x", "count": null, "target": {"kind": "bedrock-agent", "agent_id": "a"}}))
            .unwrap();
    assert_eq!(body.target, Target::BedrockAgent { agent_id: "a".into() });
    let body: Body =
        read(&json!({"name": "x", "count": 3.0, "tags": ["red"], "target": {"kind": "http", "url": "u"}}))
            .unwrap();
    assert_eq!(body.count, Some(3));
}

#[test]
fn every_problem_is_listed_with_its_path_and_near_misses_are_suggested() {
    let found = problems(json!({
        "nmae": "x",
        "tags": ["red", "gren", 3],
        "count": 300,
        "zzzzzz": 1,
        "target": {"kind": "htp", "url": 5},
    }));
    // In the document's order where serde_json keeps it (`preserve_order`), else by key.
    let mut paths: Vec<&str> = found.iter().map(|(p, _)| p.as_str()).collect();
    paths.sort_unstable();
    assert_eq!(paths, ["$.count", "$.name", "$.nmae", "$.tags[1]", "$.tags[2]", "$.target.kind", "$.zzzzzz"]);
    let message = |path: &str| found.iter().find(|(p, _)| p == path).unwrap().1.clone();
    assert_eq!(
        message("$.nmae"),
        "unknown field \"nmae\" (did you mean \"name\"?); a body has only name, tags, count, target"
    );
    assert!(!message("$.zzzzzz").contains("did you mean"), "{}", message("$.zzzzzz"));
    assert_eq!(
        message("$.tags[1]"),
        "unknown tag \"gren\" (did you mean \"green\"?); expected one of \"red\", \"green\""
    );
    assert_eq!(message("$.tags[2]"), "must be one of \"red\", \"green\", not a number");
    assert_eq!(message("$.count"), "must be a whole number from 0 to 255, not 300");
    assert!(message("$.target.kind").contains("(did you mean \"http\"?)"), "{}", message("$.target.kind"));
    assert_eq!(message("$.name"), "is required");
}

#[test]
fn a_variant_s_fields_are_checked_and_a_missing_tag_is_named() {
    let found = problems(json!({"name": "x", "target": {"kind": "http", "ulr": "u"}}));
    assert_eq!(
        found[0],
        (
            "$.target.ulr".to_string(),
            "unknown field \"ulr\" (did you mean \"url\"?); a target of kind \"http\" has only kind, url"
                .to_string()
        )
    );
    assert_eq!(found[1].0, "$.target.url");
    let found = problems(json!({"name": "x", "target": {"url": "u"}}));
    assert_eq!(
        found,
        [("$.target.kind".to_string(), "is required: one of \"http\", \"bedrock_agent\"".to_string())]
    );
    let found = problems(json!({"name": "x", "target": "http"}));
    assert_eq!(found, [("$.target".to_string(), "must be an object, not a string".to_string())]);
}

#[test]
fn odd_keys_are_quoted_in_paths_and_long_text_is_cut() {
    let long = "k".repeat(10_000);
    let found =
        problems(json!({"name": "x", "target": {"kind": "http", "url": "u"}, "a b": 1, long.clone(): 2}));
    assert_eq!(found[0].0, "$[\"a b\"]");
    assert!(found[1].0.len() < 200 && found[1].1.len() < 400, "{found:?}");
}

#[test]
fn the_report_is_bounded_whatever_the_body() {
    let many: serde_json::Map<String, Value> = (0..50_000).map(|i| (format!("x{i}"), json!(i))).collect();
    let mut body = json!({"name": "x", "target": {"kind": "http", "url": "u"}});
    body.as_object_mut().unwrap().extend(many);
    let found = problems(body);
    assert_eq!(found.len(), crate::validation::MAX_REPORTED + 1);
}

#[test]
fn a_null_optional_body_reads_as_none() {
    assert_eq!(read::<Option<Body>>(&Value::Null).unwrap(), None);
    assert!(read::<Option<Body>>(&json!({})).is_err());
}
