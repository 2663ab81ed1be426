//! The durable engine on a real store and queue: the cases issue 3 names, each driven by
//! workers that receive tasks from the queue, process them and settle them.
//!
//! Agents are scripted ([`ScriptedAgents`]): each answers, fails or hangs as a test says,
//! and every call is counted, so "each step's effect happens once" is checked exactly.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde_json::{Map, Value, json};
use tdev_domain::agents::{Agent, AgentInvoker, AgentTarget, InvokeError};
use tdev_domain::events::EventFilter;
use tdev_domain::ports::MessageQueue;
use tdev_domain::queue::Outcome;
use tdev_domain::runs::{Engine, EngineStore, Run, RunStatus, STEP_QUEUE, StepStatus, Task};
use tdev_domain::workflow::{self, Format, Limits};
use tdev_domain::{Clock, SystemClock};

/// What a scripted agent does on its `n`th call (1-based).
#[derive(Clone)]
pub enum Behaviour {
    /// Answers `{<output>: {"from": <agent>, "inputs": <the inputs it got>}}` for each output.
    Echo { outputs: Vec<String> },
    /// Fails retryably on the first `n` calls, then echoes.
    FailTimes { n: u32, outputs: Vec<String> },
    /// Always fails retryably.
    AlwaysFail,
    /// A loop's agent: fails retryably the first call for each item (`inputs[over]`) in
    /// `fail`, echoes otherwise.
    FailItemsOnce { over: String, fail: Vec<Value>, outputs: Vec<String> },
    /// Never answers within the timeout.
    Hang,
    /// Answers with this reply, round after round: the reply for round `r` is the
    /// `r`th (the last one for every later round). A squad member.
    Reply(Vec<Value>),
    /// A squad's validator: accepts an answer whose `/answer` is one of these, with the
    /// score at the same position.
    Judge { accept: Vec<Value>, scores: Vec<f64> },
    /// Takes `millis`, then answers `{"answer": <its inputs' <over>>, "by": <agent>}`: a
    /// split's worker.
    Work { over: String, millis: u64 },
    /// A lead: plans `subtasks` subtasks (`{"input": {"part": k}}`), and synthesizes
    /// `{"answer": "<n> parts: <the parts' answers>"}`.
    Lead { subtasks: usize },
}

/// Shared by the engine and the test: clones see the same scripts and calls.
#[derive(Default, Clone)]
pub struct ScriptedAgents {
    behaviours: Arc<Mutex<HashMap<String, Behaviour>>>,
    calls: Arc<Mutex<HashMap<String, Vec<Value>>>>,
    /// Per agent: calls under way now, and the most there ever were at once.
    in_flight: Arc<Mutex<HashMap<String, (usize, usize)>>>,
}

impl ScriptedAgents {
    pub fn set(&self, agent: &str, behaviour: Behaviour) {
        self.behaviours.lock().unwrap().insert(agent.to_owned(), behaviour);
    }

    /// The payloads each agent was called with.
    pub fn calls(&self, agent: &str) -> Vec<Value> {
        self.calls.lock().unwrap().get(agent).cloned().unwrap_or_default()
    }

    /// The most calls of `agent` that were ever under way at once.
    pub fn most_at_once(&self, agent: &str) -> usize {
        self.in_flight.lock().unwrap().get(agent).map_or(0, |(_, most)| *most)
    }

    fn enter(&self, agent: &str) {
        let mut in_flight = self.in_flight.lock().unwrap();
        let (now, most) = in_flight.entry(agent.to_owned()).or_default();
        *now += 1;
        *most = (*most).max(*now);
    }

    fn leave(&self, agent: &str) {
        if let Some((now, _)) = self.in_flight.lock().unwrap().get_mut(agent) {
            *now -= 1;
        }
    }
}

fn echo(agent: &str, payload: &Value, outputs: &[String]) -> Map<String, Value> {
    outputs.iter().map(|o| (o.clone(), json!({"from": agent, "inputs": payload["inputs"]}))).collect()
}

impl AgentInvoker for ScriptedAgents {
    async fn invoke(
        &self,
        target: &AgentTarget,
        payload: &Value,
        timeout: Duration,
    ) -> Result<Map<String, Value>, InvokeError> {
        let AgentTarget::Http { url } = target else {
            return Err(InvokeError::Rejected("not scripted".into()));
        };
        let agent = url.trim_start_matches("http://scripted/").to_owned();
        let n = {
            let mut calls = self.calls.lock().unwrap();
            let list = calls.entry(agent.clone()).or_default();
            list.push(payload.clone());
            u32::try_from(list.len()).unwrap_or(u32::MAX)
        };
        let behaviour = self.behaviours.lock().unwrap().get(&agent).cloned();
        if let Some(Behaviour::FailItemsOnce { over, fail, outputs }) = &behaviour {
            let item = &payload["inputs"][over];
            let calls_for_item = self.calls(&agent).iter().filter(|p| &p["inputs"][over] == item).count();
            return if fail.contains(item) && calls_for_item == 1 {
                Err(InvokeError::Unavailable(format!("{agent} is scripted to fail item {item} once")))
            } else {
                Ok(echo(&agent, payload, outputs))
            };
        }
        match behaviour {
            Some(Behaviour::Echo { outputs }) => Ok(echo(&agent, payload, &outputs)),
            Some(Behaviour::FailTimes { n: fails, outputs }) if n > fails => {
                Ok(echo(&agent, payload, &outputs))
            }
            Some(Behaviour::FailTimes { .. }) | Some(Behaviour::AlwaysFail) => {
                Err(InvokeError::Unavailable(format!("{agent} is scripted to fail call {n}")))
            }
            Some(Behaviour::FailItemsOnce { .. }) => unreachable!("answered above"),
            Some(Behaviour::Reply(replies)) => {
                let round = payload["context"]["round"].as_u64().unwrap_or(1).max(1) as usize;
                match replies.get(round - 1).or(replies.last()) {
                    Some(Value::Object(reply)) => Ok(reply.clone()),
                    _ => Err(InvokeError::Rejected(format!("{agent} has no reply for round {round}"))),
                }
            }
            Some(Behaviour::Work { over, millis }) => {
                self.enter(&agent);
                tokio::time::sleep(Duration::from_millis(millis)).await;
                self.leave(&agent);
                Ok(json!({"answer": payload["inputs"][&over], "by": agent})
                    .as_object()
                    .cloned()
                    .unwrap_or_default())
            }
            Some(Behaviour::Lead { subtasks }) => {
                let reply = match payload["context"]["kind"].as_str() {
                    Some("plan") => {
                        json!({"plan": (0..subtasks).map(|k| json!({"input": {"part": k}})).collect::<Vec<_>>()})
                    }
                    _ => {
                        let parts: Vec<String> = payload["results"]
                            .as_array()
                            .into_iter()
                            .flatten()
                            .map(|r| r["result"]["answer"].to_string())
                            .collect();
                        json!({"answer": format!("{} parts: {}", parts.len(), parts.join(", "))})
                    }
                };
                Ok(reply.as_object().cloned().unwrap_or_default())
            }
            Some(Behaviour::Judge { accept, scores }) => {
                let answer = &payload["answer"]["answer"];
                let position = accept.iter().position(|a| a == answer);
                let score = position.and_then(|i| scores.get(i)).copied().unwrap_or(0.0);
                Ok(json!({"accepted": position.is_some(), "score": score})
                    .as_object()
                    .cloned()
                    .unwrap_or_default())
            }
            Some(Behaviour::Hang) => {
                tokio::time::sleep(timeout).await;
                Err(InvokeError::Timeout(timeout))
            }
            None => Err(InvokeError::Rejected(format!("no script for {agent}"))),
        }
    }
}

/// Metrics as the engine records them: each record's dimensions and measurements.
#[derive(Default, Clone)]
pub struct Recorded(Arc<Mutex<Vec<Record>>>);

/// One record: its dimensions (name, value) and its measurements.
type Record = (Vec<(String, String)>, Vec<tdev_domain::ports::Measurement>);

impl Recorded {
    /// The measurements recorded with exactly these dimensions, by name (the last value).
    pub fn of(&self, dimensions: &[(&str, &str)]) -> HashMap<&'static str, f64> {
        let wanted: Vec<(String, String)> =
            dimensions.iter().map(|(k, v)| ((*k).to_owned(), (*v).to_owned())).collect();
        let records = self.0.lock().unwrap();
        records
            .iter()
            .filter(|(d, _)| *d == wanted)
            .flat_map(|(_, m)| m.iter().map(|m| (m.name, m.value)))
            .collect()
    }
}

impl tdev_domain::ports::Metrics for Recorded {
    fn record(&self, dimensions: &[(&str, &str)], measurements: &[tdev_domain::ports::Measurement]) {
        let dimensions = dimensions.iter().map(|(k, v)| ((*k).to_owned(), (*v).to_owned())).collect();
        self.0.lock().unwrap().push((dimensions, measurements.to_vec()));
    }
}

/// An engine over `store` and `queue`, with scripted agents, and attempts of at most a
/// second with a short visibility margin, so that a dead worker's task comes back within
/// the test.
pub struct Harness<S, Q> {
    pub engine: Arc<Engine<S, Q, ScriptedAgents>>,
    pub agents: ScriptedAgents,
    /// What the engine recorded as metrics.
    pub metrics: Recorded,
    /// Distinct message ids received per task body: a task sent twice shows up here.
    messages: Arc<Mutex<HashMap<String, std::collections::HashSet<String>>>>,
}

impl<S, Q> Harness<S, Q>
where
    S: EngineStore + Clone,
    Q: MessageQueue,
{
    pub fn new(store: S, queue: Q) -> Self {
        let agents = ScriptedAgents::default();
        let metrics = Recorded::default();
        let engine = Engine::new(store, queue, agents.clone(), Arc::new(SystemClock), Limits::default())
            .with_visibility_margin(Duration::from_millis(300))
            .with_attempt_timeout(Duration::from_secs(1))
            .with_metrics(Arc::new(metrics.clone()));
        Self { engine: Arc::new(engine), agents, metrics, messages: Arc::default() }
    }

    /// How many distinct messages carried the task for `step_id` of `run_id`.
    pub fn messages_for(&self, run_id: &str, step_id: &str) -> usize {
        let body =
            serde_json::to_string(&Task::Step { run_id: run_id.into(), step_id: step_id.into() }).unwrap();
        self.messages.lock().unwrap().get(&body).map_or(0, |ids| ids.len())
    }

    /// Registers scripted agents under unique ids; returns the ids in order.
    pub async fn agents(&self, scripts: &[(&str, Behaviour)]) -> Vec<String> {
        let mut ids = Vec::new();
        for (name, behaviour) in scripts {
            ids.push(self.agent(name, behaviour.clone(), &[]).await);
        }
        ids
    }

    /// Registers one scripted agent offering `capabilities`, under a unique id.
    pub async fn agent(&self, name: &str, behaviour: Behaviour, capabilities: &[&str]) -> String {
        let id = super::unique(name).to_ascii_lowercase().replace(|c: char| !c.is_ascii_alphanumeric(), "-");
        self.agents.set(&id, behaviour);
        let agent = Agent {
            id: id.clone(),
            name: name.to_owned(),
            target: AgentTarget::Http { url: format!("http://scripted/{id}") },
            capabilities: capabilities.iter().map(|c| (*c).to_owned()).collect(),
            status: Default::default(),
            max_concurrency: None,
            created_at: SystemClock.now(),
        };
        self.engine.store().insert_agent(&agent).await.expect("register agent");
        id
    }

    /// Stores `workflow` (a JSON value, given a unique id) and starts a run.
    pub async fn start(&self, mut workflow: Value, inputs: Value) -> Run {
        workflow["id"] = json!(super::unique("wf"));
        let (stored, _) = self
            .engine
            .put_workflow(
                workflow::load(&workflow.to_string(), Format::Json, self.engine.limits())
                    .expect("a valid workflow"),
            )
            .await
            .expect("store workflow");
        let Value::Object(inputs) = inputs else { panic!("inputs must be an object") };
        self.engine.start_run(&stored.id, Some(&stored.version), inputs).await.expect("start run")
    }

    /// Workers process the queue until the run ends (or `limit` passes), each batch
    /// concurrently. With `duplicate`, every delivery is processed twice, as if delivered
    /// twice.
    pub async fn drive(&self, run_id: &str, duplicate: bool, limit: Duration) -> Run {
        let started = std::time::Instant::now();
        loop {
            let (run, _) = self.engine.store().get_run(run_id).await.expect("get run").expect("run exists");
            if run.status.is_terminal() || started.elapsed() > limit {
                return run;
            }
            let batch =
                self.engine.queue().receive(STEP_QUEUE, 10, Duration::from_secs(30)).await.expect("receive");
            if batch.is_empty() {
                tokio::time::sleep(Duration::from_millis(50)).await;
                continue;
            }
            for delivery in &batch {
                let mut messages = self.messages.lock().unwrap();
                messages.entry(delivery.body.clone()).or_default().insert(delivery.message_id.clone());
            }
            let work = batch.into_iter().map(|delivery| {
                let engine = self.engine.clone();
                tokio::spawn(async move {
                    let outcome = engine.process(&delivery).await;
                    if duplicate {
                        let again = engine.process(&delivery).await;
                        assert!(
                            !matches!(again, Outcome::DeadLetter(_)),
                            "a duplicate is never dead-lettered"
                        );
                    }
                    // A stale receipt (the task came back and was re-received) is fine.
                    let _ = engine.queue().settle(STEP_QUEUE, &delivery, outcome).await;
                })
            });
            for task in futures::future::join_all(work).await {
                task.expect("worker task");
            }
        }
    }

    /// Receives the next task of `run_id`; a task of another run (one an earlier case
    /// left, on a queue shared between cases) is processed as a worker would.
    pub async fn receive_task_of(&self, run_id: &str) -> tdev_domain::queue::Delivery {
        loop {
            let batch =
                self.engine.queue().receive(STEP_QUEUE, 1, Duration::from_secs(30)).await.expect("receive");
            for delivery in batch {
                match serde_json::from_str(&delivery.body) {
                    Ok(Task::Step { run_id: of, .. }) if of == run_id => return delivery,
                    _ => {
                        let outcome = self.engine.process(&delivery).await;
                        let _ = self.engine.queue().settle(STEP_QUEUE, &delivery, outcome).await;
                    }
                }
            }
        }
    }

    pub async fn steps(
        &self,
        run_id: &str,
    ) -> HashMap<String, (StepStatus, u32, Option<Map<String, Value>>)> {
        let (_, steps) = self.engine.store().get_run(run_id).await.expect("get run").expect("run exists");
        steps.into_iter().map(|s| (s.step_id, (s.status, s.attempts, s.outputs))).collect()
    }
}

const LIMIT: Duration = Duration::from_secs(20);

fn agent_step(id: &str, agent: &str, inputs: &[&str], outputs: &[&str]) -> Value {
    json!({"id": id, "name": id, "type": "agent", "agent_id": agent, "inputs": inputs, "outputs": outputs})
}

/// Every engine case, on one store and queue.
pub async fn run_all<S, Q>(store: S, queue: Q)
where
    S: EngineStore + Clone,
    Q: MessageQueue,
{
    let h = Harness::new(store, queue);
    diamond_with_parallel_middle(&h, false).await;
    diamond_with_parallel_middle(&h, true).await;
    retry_then_success(&h).await;
    retries_exhausted(&h, "stop").await;
    retries_exhausted(&h, "continue").await;
    step_timeout(&h).await;
    run_timeout(&h).await;
    cancel(&h).await;
    worker_crash_mid_step(&h).await;
    a_lost_last_attempt_fails_the_step(&h).await;
    loop_and_groups(&h).await;
    loop_retries_only_the_items_that_failed(&h).await;
    conditions(&h).await;
    large_workflow(&h).await;
}

/// A `loop` whose agent fails for some items: the retry calls the agent for those items
/// only, and the replies of the items that succeeded the first time are kept.
pub async fn loop_retries_only_the_items_that_failed<S, Q>(h: &Harness<S, Q>)
where
    S: EngineStore + Clone,
    Q: MessageQueue,
{
    let outputs = vec!["item_result".to_owned()];
    let fail = vec![json!("y"), json!("w")];
    let ids = h
        .agents(&[("flaky-per-item", Behaviour::FailItemsOnce { over: "items".into(), fail, outputs })])
        .await;
    let workflow = json!({"name": "loop-retry", "steps": [
        {"id": "each", "name": "each", "type": "loop", "inputs": ["items"], "outputs": ["results"],
         "parameters": {"over": "items", "agent_id": ids[0], "max_concurrency": 2},
         "retry_policy": {"max_attempts": 3, "initial_delay_seconds": 0.1}},
    ]});
    let run = h.start(workflow, json!({"items": ["x", "y", "z", "w"]})).await;
    let ended = h.drive(&run.id, false, LIMIT).await;
    assert_eq!(ended.status, RunStatus::Succeeded, "{ended:?}");
    let mut per_item: HashMap<String, usize> = HashMap::new();
    for call in h.agents.calls(&ids[0]) {
        *per_item.entry(call["inputs"]["items"].as_str().unwrap().to_owned()).or_default() += 1;
    }
    let expected: HashMap<String, usize> =
        [("x", 1), ("y", 2), ("z", 1), ("w", 2)].into_iter().map(|(k, v)| (k.to_owned(), v)).collect();
    assert_eq!(per_item, expected, "the items that succeeded were not called again");
    let steps = h.steps(&run.id).await;
    let results = &steps["each"].2.as_ref().expect("loop outputs")["results"];
    let order: Vec<&Value> =
        results.as_array().expect("a list").iter().map(|r| &r["item_result"]["inputs"]["items"]).collect();
    assert_eq!(order, [&json!("x"), &json!("y"), &json!("z"), &json!("w")], "replies in item order");
}

/// a → (b, c) → d, linked by data edges; with `duplicate`, every task is delivered
/// twice: each agent is still called once and each dependent queued once.
pub async fn diamond_with_parallel_middle<S, Q>(h: &Harness<S, Q>, duplicate: bool)
where
    S: EngineStore + Clone,
    Q: MessageQueue,
{
    let ids = h
        .agents(&[
            ("a", Behaviour::Echo { outputs: vec!["raw".into()] }),
            ("b", Behaviour::Echo { outputs: vec!["left".into()] }),
            ("c", Behaviour::Echo { outputs: vec!["right".into()] }),
            ("d", Behaviour::Echo { outputs: vec!["joined".into()] }),
        ])
        .await;
    let workflow = json!({"name": "diamond", "steps": [
        agent_step("a", &ids[0], &["source"], &["raw"]),
        agent_step("b", &ids[1], &["raw"], &["left"]),
        agent_step("c", &ids[2], &["raw"], &["right"]),
        agent_step("d", &ids[3], &["left", "right"], &["joined"]),
    ]});
    let run = h.start(workflow, json!({"source": "s3://in"})).await;
    let ended = h.drive(&run.id, duplicate, LIMIT).await;
    assert_eq!(ended.status, RunStatus::Succeeded, "{ended:?}");
    for id in &ids {
        assert_eq!(h.agents.calls(id).len(), 1, "{id} called once (duplicate: {duplicate})");
    }
    let d_inputs = &h.agents.calls(&ids[3])[0]["inputs"];
    assert_eq!(d_inputs["left"]["from"], ids[1].as_str(), "outputs flow by name");
    assert_eq!(d_inputs["right"]["from"], ids[2].as_str());
    assert_eq!(d_inputs["left"]["inputs"]["raw"]["inputs"]["source"], "s3://in", "through every level");
    let steps = h.steps(&run.id).await;
    for step in ["a", "b", "c", "d"] {
        assert_eq!((steps[step].0, steps[step].1), (StepStatus::Succeeded, 1), "{step}");
        assert_eq!(h.messages_for(&run.id, step), 1, "{step} enqueued once (duplicate: {duplicate})");
    }
    // Each change told once, with the change (duplicate deliveries included), in order.
    let mut told = Vec::new();
    for pattern in ["run.*", "step.*"] {
        let filter = EventFilter {
            pattern: Some(pattern.into()),
            since: Some(run.created_at),
            limit: 1000,
            ..EventFilter::default()
        };
        let events = h.engine.store().list_events(&filter).await.expect("events");
        told.extend(events.into_iter().filter(|e| e.subject == run.id));
    }
    told.sort_by_key(|e| e.time);
    let kinds: Vec<String> = told
        .iter()
        .map(|e| match e.data["step_id"].as_str() {
            Some(step) => format!("{} {step}", e.kind),
            None => e.kind.clone(),
        })
        .collect();
    assert_eq!(kinds.first().map(String::as_str), Some("run.started"), "{kinds:?}");
    assert_eq!(kinds.last().map(String::as_str), Some("run.succeeded"), "{kinds:?}");
    assert_eq!(kinds.len(), 2 + 2 * 4, "each change once (duplicate: {duplicate}): {kinds:?}");
    for step in ["a", "b", "c", "d"] {
        let started = kinds.iter().position(|k| *k == format!("step.started {step}"));
        let succeeded = kinds.iter().position(|k| *k == format!("step.succeeded {step}"));
        assert!(started.is_some() && started < succeeded, "{step}: {kinds:?}");
    }
    let at = |k: &str| kinds.iter().position(|x| x == k);
    assert!(at("step.succeeded a") < at("step.started b") && at("step.succeeded c") < at("step.started d"));
}

pub async fn retry_then_success<S, Q>(h: &Harness<S, Q>)
where
    S: EngineStore + Clone,
    Q: MessageQueue,
{
    // More attempts than a task used to be received before it was dead-lettered (5).
    let ids = h.agents(&[("flaky", Behaviour::FailTimes { n: 6, outputs: vec!["out".into()] })]).await;
    let mut step = agent_step("flaky", &ids[0], &[], &["out"]);
    step["retry_policy"] = json!({"max_attempts": 7, "backoff_factor": 1.5, "initial_delay_seconds": 0.05});
    let run = h.start(json!({"name": "retry", "steps": [step]}), json!({})).await;
    let ended = h.drive(&run.id, false, LIMIT).await;
    assert_eq!(ended.status, RunStatus::Succeeded, "{ended:?}");
    assert_eq!(h.agents.calls(&ids[0]).len(), 7);
    assert_eq!(h.steps(&run.id).await["flaky"].1, 7, "seven attempts recorded");
}

/// `broken` fails every attempt; `after` depends on it; `other` does not.
pub async fn retries_exhausted<S, Q>(h: &Harness<S, Q>, error_handling: &str)
where
    S: EngineStore + Clone,
    Q: MessageQueue,
{
    let ids = h
        .agents(&[
            ("broken", Behaviour::AlwaysFail),
            ("after", Behaviour::Echo { outputs: vec!["late".into()] }),
            ("slow-other", Behaviour::FailTimes { n: 1, outputs: vec!["other".into()] }),
            ("then", Behaviour::Echo { outputs: vec!["then".into()] }),
        ])
        .await;
    let mut broken = agent_step("broken", &ids[0], &[], &["bad"]);
    broken["retry_policy"] = json!({"max_attempts": 2, "initial_delay_seconds": 0.05});
    let mut other = agent_step("other", &ids[2], &[], &["other"]);
    // `other` retries well after `broken` has failed for good, even on SQS, which rounds
    // delays up to whole seconds.
    other["retry_policy"] = json!({"max_attempts": 3, "initial_delay_seconds": 3});
    let workflow = json!({"name": "exhausted", "error_handling": error_handling, "steps": [
        broken,
        agent_step("after", &ids[1], &["bad"], &["late"]),
        other,
        agent_step("then", &ids[3], &["other"], &["then"]),
    ]});
    let run = h.start(workflow, json!({})).await;
    let ended = h.drive(&run.id, false, LIMIT).await;
    assert_eq!(ended.status, RunStatus::Failed, "{ended:?}");
    assert!(ended.error.as_deref().unwrap_or("").contains("broken"), "{ended:?}");
    assert_eq!(h.agents.calls(&ids[0]).len(), 2, "every attempt used");
    assert!(h.agents.calls(&ids[1]).is_empty(), "a dependent of a failed step never runs");
    let steps = h.steps(&run.id).await;
    assert_eq!(steps["broken"].0, StepStatus::Failed);
    if error_handling == "continue" {
        assert_eq!(steps["after"].0, StepStatus::Skipped, "skipped under continue");
        assert_eq!(steps["then"].0, StepStatus::Succeeded, "the rest goes on under continue");
    } else {
        // Under stop nothing new starts: `then` waits on `other`'s retry, which comes
        // after the run has failed.
        assert!(h.agents.calls(&ids[3]).is_empty(), "nothing new starts under stop");
    }
}

pub async fn step_timeout<S, Q>(h: &Harness<S, Q>)
where
    S: EngineStore + Clone,
    Q: MessageQueue,
{
    let ids = h.agents(&[("hangs", Behaviour::Hang)]).await;
    let mut step = agent_step("hangs", &ids[0], &[], &["never"]);
    step["timeout"] = json!(0.5);
    let run = h.start(json!({"name": "step-timeout", "steps": [step]}), json!({})).await;
    let started = std::time::Instant::now();
    let ended = h.drive(&run.id, false, LIMIT).await;
    assert_eq!(ended.status, RunStatus::Failed, "{ended:?}");
    assert!(started.elapsed() < Duration::from_secs(10), "the timeout cut it short");
    let steps = h.steps(&run.id).await;
    assert_eq!(steps["hangs"].0, StepStatus::Failed);
}

pub async fn run_timeout<S, Q>(h: &Harness<S, Q>)
where
    S: EngineStore + Clone,
    Q: MessageQueue,
{
    let ids = h
        .agents(&[("first", Behaviour::Echo { outputs: vec!["x".into()] }), ("forever", Behaviour::Hang)])
        .await;
    let workflow = json!({"name": "run-timeout", "timeout": 1, "steps": [
        agent_step("first", &ids[0], &[], &["x"]),
        agent_step("forever", &ids[1], &["x"], &["y"]),
    ]});
    let run = h.start(workflow, json!({})).await;
    let ended = h.drive(&run.id, false, LIMIT).await;
    assert_eq!(ended.status, RunStatus::TimedOut, "{ended:?}");
    let took = ended.finished_at.unwrap().duration_since(run.created_at);
    assert!(took < jiff::SignedDuration::from_secs(5), "timed out near its deadline: {took:?}");
}

pub async fn cancel<S, Q>(h: &Harness<S, Q>)
where
    S: EngineStore + Clone,
    Q: MessageQueue,
{
    let ids = h.agents(&[("never-called", Behaviour::Echo { outputs: vec!["x".into()] })]).await;
    let run =
        h.start(json!({"name": "cancel", "steps": [agent_step("s", &ids[0], &[], &["x"])]}), json!({})).await;
    let cancelled = h.engine.cancel_run(&run.id).await.expect("cancel");
    assert_eq!(cancelled.status, RunStatus::Cancelled);
    assert!(h.engine.cancel_run(&run.id).await.is_err(), "a run ends once");
    // The queued task is still delivered: it must start nothing.
    for _ in 0..20 {
        let batch = h.engine.queue().receive(STEP_QUEUE, 10, Duration::from_secs(30)).await.expect("receive");
        for delivery in &batch {
            let outcome = h.engine.process(delivery).await;
            h.engine.queue().settle(STEP_QUEUE, delivery, outcome).await.expect("settle");
        }
        if h.steps(&run.id).await["s"].0 == StepStatus::Cancelled {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(h.agents.calls(&ids[0]).is_empty(), "cancel stops new work");
    assert_eq!(h.steps(&run.id).await["s"].0, StepStatus::Cancelled);
}

/// A worker takes the task, starts the attempt, and dies (its future is dropped). The
/// task comes back after the attempt's timeout and the run still completes.
pub async fn worker_crash_mid_step<S, Q>(h: &Harness<S, Q>)
where
    S: EngineStore + Clone,
    Q: MessageQueue,
{
    let ids = h.agents(&[("crashy", Behaviour::Hang)]).await;
    let mut step = agent_step("crashy", &ids[0], &[], &["out"]);
    step["retry_policy"] = json!({"max_attempts": 3});
    let run = h.start(json!({"name": "crash", "steps": [step]}), json!({})).await;
    let batch = [h.receive_task_of(&run.id).await];
    // The worker dies mid-attempt: the step is running, the task unsettled.
    let dying = tokio::time::timeout(Duration::from_millis(300), h.engine.process(&batch[0])).await;
    assert!(dying.is_err(), "the attempt was cut off");
    assert_eq!(h.steps(&run.id).await["crashy"].0, StepStatus::Running);
    assert!(
        h.engine.queue().receive(STEP_QUEUE, 1, Duration::from_secs(30)).await.expect("receive").is_empty(),
        "hidden while the attempt may still be running"
    );
    // The agent recovers; the task comes back on its own once the attempt's second and
    // the margin have passed.
    h.agents.set(&ids[0], Behaviour::Echo { outputs: vec!["out".into()] });
    let ended = h.drive(&run.id, false, LIMIT).await;
    assert_eq!(ended.status, RunStatus::Succeeded, "{ended:?}");
    let steps = h.steps(&run.id).await;
    assert_eq!(
        (steps["crashy"].0, steps["crashy"].1),
        (StepStatus::Succeeded, 2),
        "a second attempt finished it"
    );
    let filter = tdev_domain::events::EventFilter {
        pattern: Some("run.attempt_lost".into()),
        limit: 1000,
        ..Default::default()
    };
    let events = h.engine.store().list_events(&filter).await.expect("list events");
    let lost: Vec<_> = events.iter().filter(|e| e.subject == run.id).collect();
    assert_eq!(lost.len(), 1, "one lost attempt, said once: {lost:?}");
    assert_eq!(lost[0].data["cause"], "visibility_timeout");
    assert_eq!(
        lost[0].data["reason"],
        "step `crashy`: attempt 1 lost: its worker did not finish within the visibility timeout; retrying"
    );
}

/// A step with one attempt whose worker dies: the attempt counts, so the step fails with
/// why when its task comes back, rather than trying again.
pub async fn a_lost_last_attempt_fails_the_step<S, Q>(h: &Harness<S, Q>)
where
    S: EngineStore + Clone,
    Q: MessageQueue,
{
    let ids = h.agents(&[("once", Behaviour::Hang)]).await;
    let run = h
        .start(json!({"name": "once", "steps": [agent_step("once", &ids[0], &[], &["out"])]}), json!({}))
        .await;
    let batch = [h.receive_task_of(&run.id).await];
    let dying = tokio::time::timeout(Duration::from_millis(300), h.engine.process(&batch[0])).await;
    assert!(dying.is_err(), "the attempt was cut off");
    h.agents.set(&ids[0], Behaviour::Echo { outputs: vec!["out".into()] });
    let ended = h.drive(&run.id, false, LIMIT).await;
    assert_eq!(ended.status, RunStatus::Failed, "{ended:?}");
    let reason = "step `once`: attempt 1 lost: its worker did not finish within the visibility timeout; no attempts left";
    assert_eq!(ended.error.as_deref(), Some(format!("step \"once\" failed: {reason}").as_str()));
    assert_eq!(h.agents.calls(&ids[0]).len(), 1, "no second call");
}

/// A `loop` fans out over a list input and collects the replies in order; a `sequential`
/// group chains its steps and a `parallel` group waits for its steps, passing their
/// outputs on.
pub async fn loop_and_groups<S, Q>(h: &Harness<S, Q>)
where
    S: EngineStore + Clone,
    Q: MessageQueue,
{
    let ids = h
        .agents(&[
            ("per-item", Behaviour::Echo { outputs: vec!["item_result".into()] }),
            ("first", Behaviour::Echo { outputs: vec!["one".into()] }),
            ("second", Behaviour::Echo { outputs: vec!["two".into()] }),
            ("consumer", Behaviour::Echo { outputs: vec!["summary".into()] }),
        ])
        .await;
    let workflow = json!({"name": "loops-and-groups", "steps": [
        {"id": "each", "name": "each", "type": "loop", "inputs": ["items"], "outputs": ["results"],
         "parameters": {"over": "items", "agent_id": ids[0], "max_concurrency": 2}},
        agent_step("first", &ids[1], &[], &["one"]),
        agent_step("second", &ids[2], &[], &["two"]),
        {"id": "in-order", "name": "in order", "type": "sequential", "parameters": {"steps": ["first", "second"]}},
        {"id": "all", "name": "all", "type": "parallel", "parameters": {"steps": ["each", "in-order"]}},
        agent_step("consumer", &ids[3], &["results", "two"], &["summary"]),
    ], "dependencies": {"consumer": ["all"]}});
    let run = h.start(workflow, json!({"items": ["x", "y", "z"]})).await;
    let ended = h.drive(&run.id, false, LIMIT).await;
    assert_eq!(ended.status, RunStatus::Succeeded, "{ended:?}");

    let items: Vec<Value> = h.agents.calls(&ids[0]).iter().map(|p| p["inputs"]["items"].clone()).collect();
    assert_eq!(items.len(), 3, "one invocation per item");
    for item in ["x", "y", "z"] {
        assert!(items.contains(&json!(item)), "{item} was sent alone: {items:?}");
    }
    let steps = h.steps(&run.id).await;
    let results = &steps["each"].2.as_ref().expect("loop outputs")["results"];
    let order: Vec<&Value> =
        results.as_array().expect("a list").iter().map(|r| &r["item_result"]["inputs"]["items"]).collect();
    assert_eq!(order, [&json!("x"), &json!("y"), &json!("z")], "replies in item order");

    let first = h.agents.calls(&ids[1]);
    let second = h.agents.calls(&ids[2]);
    assert_eq!((first.len(), second.len()), (1, 1));
    let (_, records) = h.engine.store().get_run(&run.id).await.expect("get run").expect("run exists");
    let record = |id: &str| records.iter().find(|r| r.step_id == id).expect("record").clone();
    let (first_run, second_run) = (record("first"), record("second"));
    assert!(
        second_run.started_at.expect("started") >= first_run.finished_at.expect("finished"),
        "a sequential group runs its steps in order"
    );
    let group_outputs = steps["all"].2.as_ref().expect("group outputs");
    assert!(group_outputs.contains_key("results") && group_outputs.contains_key("two"), "{group_outputs:?}");
    let consumer = &h.agents.calls(&ids[3])[0]["inputs"];
    assert_eq!(consumer["two"]["from"], ids[2].as_str(), "outputs pass through groups by name");
    assert_eq!(consumer["results"].as_array().map(Vec::len), Some(3));
}

/// A condition runs one branch; the other is skipped, down its whole chain; a join after
/// both branches runs; an expression that is not true or false fails the step.
pub async fn conditions<S, Q>(h: &Harness<S, Q>)
where
    S: EngineStore + Clone,
    Q: MessageQueue,
{
    let ids = h
        .agents(&[
            ("scorer", Behaviour::Echo { outputs: vec!["scored".into()] }),
            ("high", Behaviour::Echo { outputs: vec!["high_path".into()] }),
            ("low", Behaviour::Echo { outputs: vec!["low_path".into()] }),
            ("low-follow-up", Behaviour::Echo { outputs: vec!["low_more".into()] }),
            ("join", Behaviour::Echo { outputs: vec!["joined".into()] }),
        ])
        .await;
    let workflow = json!({"name": "branches", "steps": [
        agent_step("score", &ids[0], &["score"], &["scored"]),
        {"id": "check", "name": "check", "type": "condition", "inputs": ["score", "scored"], "outputs": ["is_high"],
         "parameters": {"expression": "inputs.score > 0.5 && has(inputs.scored.from)",
                        "when_true": ["high"], "when_false": ["low"]}},
        agent_step("high", &ids[1], &[], &["high_path"]),
        agent_step("low", &ids[2], &[], &["low_path"]),
        agent_step("low-more", &ids[3], &["low_path"], &["low_more"]),
        agent_step("join", &ids[4], &["high_path", "low_path"], &["joined"]),
    ], "dependencies": {"high": ["check"], "low": ["check"]}});

    let high = h.start(workflow.clone(), json!({"score": 0.9})).await;
    let ended = h.drive(&high.id, false, LIMIT).await;
    assert_eq!(ended.status, RunStatus::Succeeded, "{ended:?}");
    let steps = h.steps(&high.id).await;
    assert_eq!(steps["check"].2.as_ref().expect("outputs")["is_high"], json!(true));
    assert_eq!(steps["high"].0, StepStatus::Succeeded);
    assert_eq!(steps["low"].0, StepStatus::Skipped, "the other branch");
    assert_eq!(steps["low-more"].0, StepStatus::Skipped, "and everything only it leads to");
    assert_eq!(steps["join"].0, StepStatus::Succeeded, "a join after the branches runs");
    assert!(h.agents.calls(&ids[2]).is_empty() && h.agents.calls(&ids[3]).is_empty());
    let joined = &h.agents.calls(&ids[4])[0]["inputs"];
    assert_eq!(joined["high_path"]["from"], ids[1].as_str());
    assert_eq!(joined["low_path"], Value::Null, "the branch not taken produced nothing");

    let low = h.start(workflow.clone(), json!({"score": 0.1})).await;
    let ended = h.drive(&low.id, false, LIMIT).await;
    assert_eq!(ended.status, RunStatus::Succeeded, "{ended:?}");
    let steps = h.steps(&low.id).await;
    assert_eq!(
        (steps["high"].0, steps["low"].0, steps["low-more"].0),
        (StepStatus::Skipped, StepStatus::Succeeded, StepStatus::Succeeded)
    );

    let mut not_boolean = workflow;
    not_boolean["steps"][1]["parameters"]["expression"] = json!("inputs.score + 1.0");
    let run = h.start(not_boolean, json!({"score": 0.9})).await;
    let ended = h.drive(&run.id, false, LIMIT).await;
    assert_eq!(ended.status, RunStatus::Failed, "{ended:?}");
    assert_eq!(h.steps(&run.id).await["check"].0, StepStatus::Failed);
}

/// A 2 MiB workflow (five times DynamoDB's item limit) is stored, read back by the
/// workers and run to the end.
pub async fn large_workflow<S, Q>(h: &Harness<S, Q>)
where
    S: EngineStore + Clone,
    Q: MessageQueue,
{
    let ids = h
        .agents(&[
            ("first", Behaviour::Echo { outputs: vec!["raw".into()] }),
            ("second", Behaviour::Echo { outputs: vec!["done".into()] }),
        ])
        .await;
    let mut workflow = super::runs::large_definition("large", "1.0.0", 2 << 20, "run me");
    workflow["steps"] = json!([
        agent_step("first", &ids[0], &["source"], &["raw"]),
        agent_step("second", &ids[1], &["raw"], &["done"]),
    ]);
    assert!(workflow.to_string().len() > 2 << 20, "the definition is over 2 MiB");
    let run = h.start(workflow, json!({"source": "s3://in"})).await;
    let ended = h.drive(&run.id, false, LIMIT).await;
    assert_eq!(ended.status, RunStatus::Succeeded, "{ended:?}");
    assert_eq!(h.agents.calls(&ids[1])[0]["inputs"]["raw"]["from"], ids[0].as_str());
}
