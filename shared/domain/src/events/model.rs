//! What an event is, which events a listing asks for, and subscriptions to them.

use jiff::tz::TimeZone;
use jiff::{SignedDuration, Timestamp, ToSpan};
use serde::{Deserialize, Serialize};

/// How far back a listing without `since` reaches.
pub const DEFAULT_WINDOW_DAYS: i64 = 7;

/// The CloudEvents version every event is written in.
pub const SPEC_VERSION: &str = "1.0";
/// The media type of every event's `data`.
pub const DATA_CONTENT_TYPE: &str = "application/json";
/// The media type of one event as a whole (CloudEvents' JSON format, structured mode):
/// what a webhook subscriber receives.
pub const CLOUDEVENTS_JSON: &str = "application/cloudevents+json";

/// One event, in the CloudEvents 1.0 JSON format (<https://cloudevents.io>), so that
/// existing CloudEvents tooling reads it as it is.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(from = "StoredEvent")]
pub struct Event {
    /// Always `1.0`.
    #[schema(example = "1.0")]
    pub specversion: String,
    /// Unique, and sorts in the order events were appended at one instant.
    pub id: String,
    /// The area the event comes from, as a URI reference: `/tdev/messaging`,
    /// `/tdev/runs`, `/tdev/squads`, `/tdev/agents` (see [`source_of`]).
    #[schema(example = "/tdev/messaging")]
    pub source: String,
    /// Dotted, `<area>.<what>`: `message.accepted`.
    #[serde(rename = "type")]
    #[schema(example = "message.accepted")]
    pub kind: String,
    /// When it happened (RFC 3339).
    pub time: Timestamp,
    /// What it is about: a message id, a run id, a squad task id, an agent id.
    pub subject: String,
    /// Always `application/json`.
    #[schema(example = "application/json")]
    pub datacontenttype: String,
    #[schema(value_type = Object)]
    pub data: serde_json::Value,
}

/// An event as stored, older ones included: before the CloudEvents names, the time was
/// `at`, and `specversion`, `source` and `datacontenttype` were not written.
#[derive(Deserialize)]
struct StoredEvent {
    id: String,
    #[serde(rename = "type")]
    kind: String,
    #[serde(alias = "at")]
    time: Timestamp,
    subject: String,
    #[serde(default)]
    data: serde_json::Value,
}

impl From<StoredEvent> for Event {
    fn from(stored: StoredEvent) -> Self {
        Event {
            specversion: SPEC_VERSION.to_owned(),
            id: stored.id,
            source: source_of(&stored.kind),
            kind: stored.kind,
            time: stored.time,
            subject: stored.subject,
            datacontenttype: DATA_CONTENT_TYPE.to_owned(),
            data: stored.data,
        }
    }
}

/// The `source` of an event of type `kind`: the area its first word names —
/// `message.*` `/tdev/messaging`, `run.*` and `step.*` `/tdev/runs`, `squad.*`
/// `/tdev/squads`, `deployment.*` `/tdev/deployments`, `agent.*` `/tdev/agents`;
/// any other `<word>.*` `/tdev/<word>`.
pub fn source_of(kind: &str) -> String {
    let word = kind.split('.').next().unwrap_or_default();
    let area = match word {
        "message" => "messaging",
        "run" | "step" => "runs",
        "squad" => "squads",
        "deployment" => "deployments",
        "agent" => "agents",
        other => other,
    };
    format!("/tdev/{area}")
}

impl Event {
    pub fn new(kind: &str, subject: &str, time: Timestamp, data: serde_json::Value) -> Self {
        Self {
            specversion: SPEC_VERSION.to_owned(),
            id: uuid::Uuid::new_v4().simple().to_string(),
            source: source_of(kind),
            kind: kind.to_owned(),
            time,
            subject: subject.to_owned(),
            datacontenttype: DATA_CONTENT_TYPE.to_owned(),
            data,
        }
    }
}

/// Events in the order they were appended, after a cursor: what a live stream sends.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct EventPage {
    /// Each event with the cursor that resumes after it.
    pub events: Vec<(String, Event)>,
    /// Where the next page starts: after the last event; when there was none, where the
    /// request started or a later point before which no event can still be appended.
    pub cursor: String,
}

/// Which events to list: oldest first, `since <= time < until`, types matching `pattern`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct EventFilter {
    /// A glob over the type: `*` matches any run of characters (`message.*`).
    pub pattern: Option<String>,
    pub since: Option<Timestamp>,
    pub until: Option<Timestamp>,
    pub limit: usize,
}

impl EventFilter {
    pub fn matches(&self, event: &Event) -> bool {
        self.pattern.as_deref().is_none_or(|p| glob_match(p, &event.kind))
            && self.since.is_none_or(|since| event.time >= since)
            && self.until.is_none_or(|until| event.time < until)
    }

    /// The times a listing covers, `since <= at < until`, with the defaults filled in
    /// from `now`: without `since`, the last [`DEFAULT_WINDOW_DAYS`] days before `until`
    /// (or now); and nothing past the end of tomorrow (UTC), whatever `until` says: an
    /// event is stamped when it happens, so later ones can only come from a clock a day
    /// wrong. Every backend lists within it, so all list the same events.
    pub fn window(&self, now: Timestamp) -> (Timestamp, Timestamp) {
        let horizon = now
            .to_zoned(TimeZone::UTC)
            .date()
            .checked_add(2.days())
            .ok()
            .and_then(|day| day.to_zoned(TimeZone::UTC).ok())
            .map_or(Timestamp::MAX, |start| start.timestamp());
        let until = self.until.map_or(horizon, |until| until.min(horizon));
        let since = self.since.unwrap_or_else(|| {
            until
                .min(now)
                .checked_sub(SignedDuration::from_hours(24 * DEFAULT_WINDOW_DAYS))
                .unwrap_or(Timestamp::MIN)
        });
        (since, until)
    }
}

/// Whether `text` matches `pattern`, where `*` matches any run of characters (even
/// none) and everything else matches itself.
pub fn glob_match(pattern: &str, text: &str) -> bool {
    let (pattern, text) = (pattern.as_bytes(), text.as_bytes());
    let (mut p, mut t) = (0, 0);
    let mut star: Option<(usize, usize)> = None;
    while t < text.len() {
        if p < pattern.len() && pattern[p] == b'*' {
            star = Some((p, t));
            p += 1;
        } else if p < pattern.len() && pattern[p] == text[t] {
            p += 1;
            t += 1;
        } else if let Some((sp, st)) = star {
            p = sp + 1;
            t = st + 1;
            star = Some((sp, st + 1));
        } else {
            return false;
        }
    }
    pattern[p..].iter().all(|&c| c == b'*')
}

/// Where a subscription's events go.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(tag = "kind", rename_all = "snake_case", deny_unknown_fields)]
pub enum SubscriptionTarget {
    /// A JSON POST of the event to `url`; any 2xx answer is a delivery.
    Webhook { url: String },
    /// SendMessage of the event to an SQS queue (a FIFO one gets the subscription id as
    /// the group and the event id as the deduplication id).
    Sqs { queue_url: String },
}

/// Events whose type matches `pattern` are delivered to `target`, at least once.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct Subscription {
    pub id: String,
    /// A glob over event types: `message.*`, `*`.
    #[schema(example = "message.*")]
    pub pattern: String,
    pub target: SubscriptionTarget,
    pub created_at: Timestamp,
}

/// The body of `POST /v1/subscriptions`.
#[derive(Debug, Clone, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewSubscription {
    #[schema(example = "message.*")]
    pub pattern: String,
    pub target: SubscriptionTarget,
}

impl crate::strict::shape::Shaped for NewSubscription {
    fn shape() -> &'static crate::strict::shape::Shape {
        use crate::strict::shape::{Field, Object, Shape, Tagged, Variant};
        static SHAPE: Shape = Shape::Object(&Object {
            what: "a subscription",
            fields: &[
                Field::required("pattern", Shape::Str),
                Field::required(
                    "target",
                    Shape::Tagged(&Tagged {
                        tag: "kind",
                        what: "subscription target kind",
                        object: "a target",
                        variants: &[
                            Variant {
                                name: "webhook",
                                aliases: &[],
                                fields: &[Field::required("url", Shape::Str)],
                            },
                            Variant {
                                name: "sqs",
                                aliases: &[],
                                fields: &[Field::required("queue_url", Shape::Str)],
                            },
                        ],
                    }),
                ),
            ],
        });
        &SHAPE
    }

    fn rules(&self) -> crate::validation::ValidationErrors {
        self.clone().validate(String::new(), Timestamp::UNIX_EPOCH).err().unwrap_or_default()
    }
}

fn http_url(url: &str) -> bool {
    (url.starts_with("http://") || url.starts_with("https://"))
        && url.len() > "https://".len()
        && !url.chars().any(char::is_whitespace)
}

impl NewSubscription {
    /// Checks every field, reporting each problem with its path.
    pub fn validate(
        self,
        id: String,
        now: Timestamp,
    ) -> Result<Subscription, crate::validation::ValidationErrors> {
        let mut errors = crate::validation::ValidationErrors::new();
        let pattern_ok = !self.pattern.is_empty()
            && self.pattern.len() <= 128
            && self.pattern.chars().all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-' | '*'));
        if !pattern_ok {
            errors.add("$.pattern", "must be 1 to 128 of A-Za-z0-9 . _ - and * (any run of characters)");
        }
        match &self.target {
            SubscriptionTarget::Webhook { url } if !http_url(url) => {
                errors.add("$.target.url", "must be an http:// or https:// URL");
            }
            SubscriptionTarget::Sqs { queue_url } if !http_url(queue_url) => {
                errors.add(
                    "$.target.queue_url",
                    "must be a queue URL (https://sqs.<region>.amazonaws.com/<account>/<name>)",
                );
            }
            _ => {}
        }
        errors.into_result(Subscription { id, pattern: self.pattern, target: self.target, created_at: now })
    }
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    #[test]
    fn an_event_is_a_cloudevent_and_reads_back_as_written() {
        let at: Timestamp = "2026-12-07T21:40:03.112Z".parse().unwrap();
        let event = Event::new("squad.task.succeeded", "task-1", at, serde_json::json!({"rounds": 1}));
        let json = serde_json::to_value(&event).unwrap();
        assert_eq!(json["specversion"], "1.0");
        assert_eq!(json["source"], "/tdev/squads");
        assert_eq!(json["type"], "squad.task.succeeded");
        assert_eq!(json["time"], "2026-12-07T21:40:03.112Z");
        assert_eq!(json["datacontenttype"], "application/json");
        assert_eq!(json["subject"], "task-1");
        assert_eq!(serde_json::from_value::<Event>(json).unwrap(), event);
    }

    #[test]
    fn an_event_stored_before_cloudevents_reads_as_one() {
        let old = r#"{"id":"e1","type":"message.accepted","at":"2026-12-01T00:00:00Z","subject":"m1","data":{"a":1}}"#;
        let event: Event = serde_json::from_str(old).unwrap();
        assert_eq!((event.specversion.as_str(), event.source.as_str()), ("1.0", "/tdev/messaging"));
        assert_eq!(event.time, "2026-12-01T00:00:00Z".parse::<Timestamp>().unwrap());
        assert_eq!(event.datacontenttype, "application/json");
    }

    #[test]
    fn the_source_is_the_area_of_the_type() {
        for (kind, source) in [
            ("message.delivered", "/tdev/messaging"),
            ("run.started", "/tdev/runs"),
            ("step.failed", "/tdev/runs"),
            ("squad.task.started", "/tdev/squads"),
            ("deployment.succeeded", "/tdev/deployments"),
            ("agent.circuit_opened", "/tdev/agents"),
            ("custom.thing", "/tdev/custom"),
        ] {
            assert_eq!(source_of(kind), source, "{kind}");
        }
    }

    #[test]
    fn globs() {
        assert!(glob_match("message.*", "message.accepted"));
        assert!(glob_match("*", "anything"));
        assert!(glob_match("*.failed", "message.failed"));
        assert!(glob_match("message.dead_*", "message.dead_lettered"));
        assert!(!glob_match("message.*", "run.started"));
        assert!(!glob_match("message", "message.accepted"));
        assert!(glob_match("m*e*d", "message.accepted"));
    }

    fn at(text: &str) -> Timestamp {
        text.parse().unwrap()
    }

    #[test]
    fn without_since_the_window_is_the_week_before_until_or_now() {
        let now = at("2026-03-10T12:00:00Z");
        let open = EventFilter::default();
        assert_eq!(open.window(now), (at("2026-03-03T12:00:00Z"), at("2026-03-12T00:00:00Z")));
        let until = EventFilter { until: Some(at("2026-03-05T00:00:00Z")), ..EventFilter::default() };
        assert_eq!(until.window(now), (at("2026-02-26T00:00:00Z"), at("2026-03-05T00:00:00Z")));
        // An `until` in the future reaches back from now, not from `until`.
        let later = EventFilter { until: Some(at("2026-03-11T06:00:00Z")), ..EventFilter::default() };
        assert_eq!(later.window(now), (at("2026-03-03T12:00:00Z"), at("2026-03-11T06:00:00Z")));
    }

    #[test]
    fn the_window_never_reaches_past_the_end_of_tomorrow() {
        let now = at("2026-03-10T23:59:59Z");
        let since = at("2026-01-01T00:00:00Z");
        let far = EventFilter {
            since: Some(since),
            until: Some(at("2030-01-01T00:00:00Z")),
            ..EventFilter::default()
        };
        assert_eq!(far.window(now), (since, at("2026-03-12T00:00:00Z")));
        let extremes = EventFilter { since: Some(Timestamp::MIN), ..EventFilter::default() };
        assert_eq!(extremes.window(Timestamp::MAX), (Timestamp::MIN, Timestamp::MAX));
    }

    proptest! {
        #[test]
        fn a_literal_matches_itself_and_a_star_prefix_matches_every_suffix(
            text in "[a-z._]{0,20}", cut in 0usize..21
        ) {
            prop_assert!(glob_match(&text, &text));
            let cut = cut.min(text.len());
            let pattern = format!("{}*", &text[..cut]);
            prop_assert!(glob_match(&pattern, &text));
        }
    }

    #[test]
    fn the_request_shape_names_the_fields_serde_reads() {
        crate::strict::shape::assert_names_serde_fields::<NewSubscription>();
    }
}
