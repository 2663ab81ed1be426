//! The OpenAPI document at `/openapi.json` and Swagger UI at `/docs`, without auth.
//!
//! Each handler's annotation declares what is particular to it: its success, its 404 or
//! 409 and why. What the shared layers answer the same way for every operation is added
//! here, once, by [`complete`]: the guard's 401, 403 and 429, a body's 400, 413, 415 and
//! 422, a bad query's or header's 422, a named resource's 404, the 414 of an over-long
//! URI and a dependency's 503, each as `application/problem+json`. It also mends what
//! utoipa writes wrong: a jiff `Timestamp` as a `String` component without a format (it
//! is an RFC 3339 `date-time`), a `u32` as `int32` (whose range is half of it), and the
//! fields of a link in snake case (`operationId`, `requestBody`).

use serde_json::{Value, json};
use utoipa::openapi::header::HeaderBuilder;
use utoipa::openapi::path::{Operation, ParameterIn};
use utoipa::openapi::response::ResponseBuilder;
use utoipa::openapi::schema::{ObjectBuilder, Type};
use utoipa::openapi::{Content, OpenApi, Ref, RefOr};
use utoipa_swagger_ui::SwaggerUi;

use crate::problem::CONTENT_TYPE;

pub fn router(document: Value) -> axum::Router {
    SwaggerUi::new("/docs").external_url_unchecked("/openapi.json", document).into()
}

/// Adds to every operation of `api` the problem responses the shared layers can give it
/// (an operation's own declaration of a status wins), and returns the document as JSON,
/// for [`constrain`] to write in what utoipa's model has no place for.
pub fn complete(mut api: OpenApi) -> Value {
    for item in api.paths.paths.values_mut() {
        let operations = [
            &mut item.get,
            &mut item.put,
            &mut item.post,
            &mut item.delete,
            &mut item.patch,
            &mut item.head,
            &mut item.options,
            &mut item.trace,
        ];
        for operation in operations.into_iter().flatten() {
            complete_operation(operation);
        }
    }
    mend(api)
}

const STRING_REF: &str = "#/components/schemas/String";

fn mend(api: OpenApi) -> Value {
    fn walk(value: &mut Value) {
        match value {
            Value::Object(map) => {
                if map.get("$ref").and_then(Value::as_str) == Some(STRING_REF) {
                    map.remove("$ref");
                    map.insert("type".into(), json!("string"));
                    map.insert("format".into(), json!("date-time"));
                }
                // utoipa's `u32`: `int32` from 0, which refuses half the values it takes.
                if map.get("format").and_then(Value::as_str) == Some("int32")
                    && map.get("minimum").and_then(Value::as_u64) == Some(0)
                {
                    map.remove("format");
                    map.entry("maximum").or_insert(json!(u32::MAX));
                }
                if let Some(links) = map.get_mut("links").and_then(Value::as_object_mut) {
                    for link in links.values_mut().filter_map(Value::as_object_mut) {
                        for (snake, camel) in
                            [("operation_id", "operationId"), ("request_body", "requestBody")]
                        {
                            if let Some(field) = link.remove(snake) {
                                link.insert(camel.into(), field);
                            }
                        }
                    }
                }
                map.values_mut().for_each(walk);
            }
            Value::Array(items) => items.iter_mut().for_each(walk),
            _ => {}
        }
    }
    let mut document = serde_json::to_value(&api).unwrap_or_default();
    walk(&mut document);
    if let Some(schemas) = document.pointer_mut("/components/schemas").and_then(Value::as_object_mut) {
        schemas.remove("String");
    }
    document
}

/// White space as Rust's `str::trim` and `char::is_whitespace` see it (Unicode
/// `White_Space`), which is not quite the `\s` of the patterns' ECMAScript dialect.
pub const WHITE_SPACE: &str = r"\t\n\u000b\f\r \u0085\u00a0\u1680\u2000-\u200a\u2028\u2029\u202f\u205f\u3000";

/// The characters no id or name may hold (`tdev_domain::validation::unsafe_char`):
/// controls, bidirectional marks, embeddings, overrides and isolates, zero-width and
/// other invisible formatting characters.
pub const UNSAFE_TEXT: &str =
    r"\u0000-\u001f\u007f-\u009f\u061c\u180e\u200b-\u200f\u2028-\u202e\u2060-\u2069\ufeff\ufff9-\ufffb";

/// A name: something other than white space, and nothing from [`UNSAFE_TEXT`].
pub fn label() -> String {
    format!("^[^{UNSAFE_TEXT}]*[^{WHITE_SPACE}{UNSAFE_TEXT}][^{UNSAFE_TEXT}]*$")
}

/// Text with something in it other than white space: what `trim().is_empty()` refuses.
pub fn not_blank() -> String {
    format!("[^{WHITE_SPACE}]")
}

/// An `http://` or `https://` URL without white space and with something after the
/// scheme, as the agent and subscription targets check.
pub fn http_url() -> String {
    format!("^(http://[^{WHITE_SPACE}]{{2,}}|https://[^{WHITE_SPACE}]+)$")
}

/// Agent ids and capabilities: 1 to 64 of `a-z`, `0-9`, `-` and `_`, starting with a
/// letter or digit.
pub const AGENT_ID: &str = "^[a-z0-9][a-z0-9_-]{0,63}$";

/// Merges `patch` into the component schema `name`: objects merge key by key, arrays
/// item by item, a `null` removes the key, anything else replaces. It writes the limits
/// a type's validation enforces into its schema, where its own `#[schema]` attributes
/// cannot (the items of a list, one variant of an enum, a rule across fields).
pub fn constrain(document: &mut Value, name: &str, patch: Value) {
    fn merge(target: &mut Value, patch: Value) {
        match (target, patch) {
            (Value::Object(target), Value::Object(patch)) => {
                for (key, value) in patch {
                    if value.is_null() {
                        target.remove(&key);
                    } else {
                        merge(target.entry(key).or_insert(Value::Null), value);
                    }
                }
            }
            (Value::Array(target), Value::Array(patch)) if target.len() == patch.len() => {
                for (item, value) in target.iter_mut().zip(patch) {
                    merge(item, value);
                }
            }
            (target, patch) => *target = patch,
        }
    }
    let Some(schema) = document.pointer_mut(&format!("/components/schemas/{name}")) else {
        panic!("no component schema {name:?} to constrain");
    };
    merge(schema, patch);
}

fn complete_operation(operation: &mut Operation) {
    let guarded = operation.security.as_ref().is_some_and(|s| !s.is_empty());
    let located = |place: ParameterIn| operation.parameters.iter().flatten().any(|p| p.parameter_in == place);
    let (in_path, in_query, in_header) =
        (located(ParameterIn::Path), located(ParameterIn::Query), located(ParameterIn::Header));
    let body = operation.request_body.is_some();
    let mut add = |status: u16, description: &str| {
        let responses = &mut operation.responses.responses;
        responses.entry(status.to_string()).or_insert_with(|| RefOr::T(problem(status, description)));
    };
    if body {
        add(400, "The body is not JSON (or YAML) at all, or not UTF-8");
    }
    if guarded {
        add(401, "No credentials, or bad, expired or revoked ones");
        add(403, "The credentials lack the scope this operation needs");
    }
    if in_path {
        add(404, "Nothing by that name: `errors` holds the path where it was named (`$.path.id`)");
    }
    if body {
        add(413, "The body is larger than the limit");
    }
    add(414, "The URI is longer than the limit");
    if body {
        add(415, "The body's content type is not one this operation reads: `accepted` lists those it does");
    }
    if body || in_query || in_header {
        add(
            422,
            "Every problem at once, each with its JSON path (`$.query.<name>` for the query) and, for a near miss of a name, the nearest known one",
        );
    }
    if guarded {
        add(429, "Rate limited: retry after `Retry-After` seconds");
    }
    add(503, "A backing service is unavailable; retry later");
}

fn problem(status: u16, description: &str) -> utoipa::openapi::Response {
    let content = Content::new(Some(Ref::from_schema_name("Problem")));
    let mut response = ResponseBuilder::new().description(description).content(CONTENT_TYPE, content);
    let integer = || ObjectBuilder::new().schema_type(Type::Integer).minimum(Some(0)).build();
    match status {
        401 => {
            let header = HeaderBuilder::new()
                .schema(ObjectBuilder::new().schema_type(Type::String).build())
                .description(Some("`Bearer realm=\"t-developer\", error=\"…\"` (RFC 6750)"))
                .build();
            response = response.header("WWW-Authenticate", header);
        }
        429 => {
            let header = HeaderBuilder::new()
                .schema(integer())
                .description(Some("Seconds until a request may succeed"))
                .build();
            response = response.header("Retry-After", header);
        }
        _ => {}
    }
    response.build()
}
