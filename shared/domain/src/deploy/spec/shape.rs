//! The shape of an [`AgentSpec`]: the fields and kinds it may hold, checked before any rule.

use super::AgentSpec;
use crate::strict::shape::{Enum, Field, Object, Shape, Shaped, Tagged, Variant};
use crate::validation::ValidationErrors;

impl Shaped for AgentSpec {
    fn shape() -> &'static Shape {
        &AGENT_SPEC
    }

    fn rules(&self) -> ValidationErrors {
        self.validate()
    }
}

const NAME_LIST: Shape = Shape::List(&Shape::Str);
const TEXT: Shape = Shape::Nullable(&Shape::Str);

/// The shape of an [`AgentSpec`].
static AGENT_SPEC: Shape = Shape::Object(&Object {
    what: "an agent spec",
    fields: &[
        Field::optional("name", Shape::Str),
        Field::optional("description", TEXT),
        Field::optional("instruction", TEXT),
        Field::optional("foundation_model", TEXT),
        Field::optional("agent_role_arn", TEXT),
        Field::optional("idle_session_ttl_seconds", Shape::U32),
        Field::optional("action_groups", Shape::List(&ACTION_GROUP)),
        Field::optional(
            "guardrail",
            Shape::Nullable(&Shape::Object(&Object {
                what: "a guardrail",
                fields: &[Field::optional("id", Shape::Str), Field::optional("version", Shape::Str)],
            })),
        ),
        Field::optional(
            "knowledge_bases",
            Shape::List(&Shape::Object(&Object {
                what: "a knowledge base",
                fields: &[Field::optional("id", Shape::Str), Field::optional("description", Shape::Str)],
            })),
        ),
        Field::optional(
            "collaboration",
            Shape::Nullable(&Shape::Enum(&Enum {
                what: "collaboration",
                values: &["supervisor", "supervisor_router"],
                aliases: &[],
            })),
        ),
        Field::optional(
            "collaborators",
            Shape::List(&Shape::Object(&Object {
                what: "a collaborator",
                fields: &[
                    Field::optional("name", Shape::Str),
                    Field::optional("agent_alias_arn", Shape::Str),
                    Field::optional("instruction", Shape::Str),
                    Field::optional("relay_history", Shape::Bool),
                ],
            })),
        ),
        Field::optional("tags", Shape::Map(&Shape::Str)),
        Field::optional("target", TARGET_SPEC),
        Field::optional(
            "register",
            Shape::Nullable(&Shape::Object(&Object {
                what: "register",
                fields: &[Field::optional("id", Shape::Str), Field::optional("capabilities", NAME_LIST)],
            })),
        ),
        Field::optional(
            "verify",
            Shape::Nullable(&Shape::Object(&Object {
                what: "verify",
                fields: &[
                    Field::optional("input", Shape::Any),
                    Field::optional("expect", TEXT),
                    Field::optional("timeout_seconds", Shape::U32),
                ],
            })),
        ),
    ],
});

const ACTION_GROUP: Shape = Shape::Object(&Object {
    what: "an action group",
    fields: &[
        Field::optional("name", Shape::Str),
        Field::optional("description", TEXT),
        Field::optional("lambda_arn", TEXT),
        Field::optional(
            "api_schema",
            Shape::Nullable(&Shape::OneKey(&Object {
                what: "an api_schema",
                fields: &[
                    Field::optional("inline", Shape::Any),
                    Field::optional(
                        "s3",
                        Shape::Object(&Object {
                            what: "an S3 location",
                            fields: &[
                                Field::required("bucket", Shape::Str),
                                Field::required("key", Shape::Str),
                            ],
                        }),
                    ),
                ],
            })),
        ),
        Field::optional(
            "functions",
            Shape::List(&Shape::Object(&Object {
                what: "a function",
                fields: &[
                    Field::optional("name", Shape::Str),
                    Field::optional("description", TEXT),
                    Field::optional(
                        "parameters",
                        Shape::Map(&Shape::Object(&Object {
                            what: "a parameter",
                            fields: &[
                                Field::optional(
                                    "type",
                                    Shape::Enum(&Enum {
                                        what: "parameter type",
                                        values: &["string", "number", "integer", "boolean", "array"],
                                        aliases: &[],
                                    }),
                                ),
                                Field::optional("description", TEXT),
                                Field::optional("required", Shape::Bool),
                            ],
                        })),
                    ),
                ],
            })),
        ),
    ],
});

/// The shape of a [`PlatformSpec`].
const TARGET_SPEC: Shape = Shape::Tagged(&Tagged {
    tag: "kind",
    what: "target kind",
    object: "a target",
    variants: &[
        Variant {
            name: "bedrock_agent",
            aliases: &["bedrock-agent"],
            fields: &[Field::optional("alias", Shape::Str)],
        },
        Variant {
            name: "agentcore_runtime",
            aliases: &["agentcore-runtime"],
            fields: &[
                Field::optional("artifact", Shape::Str),
                Field::optional(
                    "protocol",
                    Shape::Enum(&Enum { what: "protocol", values: &["HTTP", "MCP", "A2A"], aliases: &[] }),
                ),
                Field::optional("environment", Shape::Map(&Shape::Str)),
                Field::optional(
                    "network_mode",
                    Shape::Enum(&Enum { what: "network mode", values: &["PUBLIC", "VPC"], aliases: &[] }),
                ),
                Field::optional("subnets", NAME_LIST),
                Field::optional("security_groups", NAME_LIST),
                Field::optional("endpoint", Shape::Str),
            ],
        },
        Variant { name: "local", aliases: &[], fields: &[Field::optional("url", Shape::Str)] },
    ],
});
