//! A worker killed mid-task: squad tasks finish with the same result whichever write of
//! theirs the worker died at, and no agent is called twice for one assignment attempt.
//!
//! [`Crashing`] wraps the store (and the queue) of a [`Harness`]: it counts the writes that
//! change a squad task — `create_task`, `update_task`, `create_assignment`,
//! `update_assignment` — and, armed with [`Crashing::crash_at`]`(k)`, makes the `k`th one
//! not happen and kills the worker that made it. [`a_crash_between_any_two_writes_changes_nothing`]
//! runs a few squads once without a crash to count their writes, W, then once per crash
//! point `k` in `1..=W`, every delivery processed twice.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use jiff::SignedDuration;
use serde_json::{Map, Value, json};
use tdev_domain::agents::{Agent, AgentStore};
use tdev_domain::events::{Event, EventFilter, EventPage, EventStore};
use tdev_domain::messaging::{AgentLoadStore, Breaker};
use tdev_domain::ports::{MessageQueue, StoreError};
use tdev_domain::queue::{Delivery, NewMessage};
use tdev_domain::runs::{
    Assignment, AssignmentStatus, DefinitionKind, DefinitionStore, EngineStore, Run, RunFilter, RunStore,
    STEP_DEAD_LETTER_QUEUE, SquadTask, StepRun, StoredDefinition, TaskFilter, TaskStatus, TaskStore,
    TaskView, WATCH_EVERY,
};
use tdev_domain::squads::{self, Tally};
use tdev_domain::workflow::Format;

use crate::engine::{Behaviour, Harness};

/// How soon the message of a killed worker comes back.
///
/// A worker that dies leaves its message unsettled, and the queue hands it out again once
/// its visibility timeout runs out (30 s as the harness receives). Waiting that long at
/// each of dozens of crash points would make the test take many minutes, and tells nothing
/// more: the engine decides what to do with a message from the records alone (an attempt
/// that may still be running is waited for by its `started_at`, not by how the message came
/// back). So the dead worker's message is handed back after the engine's own retry delay
/// for a lost conditional write (200 ms, what a `Conflict` asks for), as if its visibility
/// timeout were that short.
pub const COME_BACK_AFTER: Duration = Duration::from_millis(200);

/// A store or a queue that can kill the worker making one squad task write (or about to
/// send one message: [`Crashing::crash_before_send`]).
///
/// A worker is a tokio task: the harness's workers each process a delivery (twice, when
/// duplicating) and settle it in a task of their own. When the armed write comes, it does
/// not happen and fails with `Conflict("injected crash")`, and its task is dead from then
/// on: every later call it makes of the store fails the same way, what it sends is dropped
/// and its settling of the delivery becomes "back in [`COME_BACK_AFTER`]". So the worker
/// does nothing after write `k - 1`, as a process that died there would. Failing the one
/// write is not enough: the engine takes a `Conflict` for a lost race in places (a
/// conditional create another worker won, a write retried at once in `advance_task`), and
/// would go on, and settle the message, where a dead process does nothing more.
///
/// A call made outside a tokio task only fails, killing nothing. One crash per arming;
/// clones (and [`Crashing::wrap`]) share the count and the arming.
pub struct Crashing<T> {
    inner: T,
    state: Arc<Mutex<State>>,
}

#[derive(Default)]
struct State {
    /// Squad task writes since the last [`Crashing::count_from_zero`] or arming.
    writes: usize,
    /// Messages sent since then.
    sends: usize,
    /// Where the worker will die.
    armed: Option<Point>,
    crashed: bool,
    /// The worker the crash killed, until it settles its delivery.
    dead: Option<tokio::task::Id>,
}

/// Where a worker dies: at its `k`th squad task write, or before its `k`th send.
#[derive(Debug, Clone, Copy, PartialEq)]
enum Point {
    Write(usize),
    Send(usize),
}

impl<T: Clone> Clone for Crashing<T> {
    fn clone(&self) -> Self {
        Self { inner: self.inner.clone(), state: self.state.clone() }
    }
}

fn injected() -> StoreError {
    StoreError::Conflict("injected crash".into())
}

impl<T> Crashing<T> {
    pub fn new(inner: T) -> Self {
        Self { inner, state: Arc::default() }
    }

    /// `other` (the queue) sharing this one's count, arming and dead worker.
    pub fn wrap<U>(&self, other: U) -> Crashing<U> {
        Crashing { inner: other, state: self.state.clone() }
    }

    /// Counts writes and sends from zero; no crash.
    pub fn count_from_zero(&self) {
        *self.lock() = State::default();
    }

    /// Counts writes from zero; the `k`th (1-based) crashes.
    pub fn crash_at(&self, k: usize) {
        *self.lock() = State { armed: Some(Point::Write(k)), ..State::default() };
    }

    /// Counts messages sent from zero; the worker about to send the `k`th (1-based) dies
    /// instead, after every write before it.
    pub fn crash_before_send(&self, k: usize) {
        *self.lock() = State { armed: Some(Point::Send(k)), ..State::default() };
    }

    /// Squad task writes so far, the crashed one included.
    pub fn writes(&self) -> usize {
        self.lock().writes
    }

    /// Whether the worker died where armed.
    pub fn crashed(&self) -> bool {
        self.lock().crashed
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn is_dead(&self) -> bool {
        let dead = self.lock().dead;
        dead.is_some() && dead == tokio::task::try_id()
    }

    /// Any call of the store: refused to a dead worker.
    fn alive(&self) -> Result<(), StoreError> {
        if self.is_dead() { Err(injected()) } else { Ok(()) }
    }

    /// A squad task write: counted; the armed one crashes.
    fn write(&self) -> Result<(), StoreError> {
        self.alive()?;
        let mut state = self.lock();
        state.writes += 1;
        let point = Point::Write(state.writes);
        if state.crash(point) { Err(injected()) } else { Ok(()) }
    }

    /// A dead worker settling its delivery: it comes back soon; the worker is gone.
    fn bury(&self) -> bool {
        let dead = self.is_dead();
        if dead {
            self.lock().dead = None;
        }
        dead
    }
}

impl State {
    /// Whether the worker dies at `point`: it does, once, when armed there.
    fn crash(&mut self, point: Point) -> bool {
        if self.crashed || self.armed != Some(point) {
            return false;
        }
        self.crashed = true;
        self.dead = tokio::task::try_id();
        true
    }
}

impl<S: TaskStore> TaskStore for Crashing<S> {
    async fn create_task(
        &self,
        task: &SquadTask,
        input: &Map<String, Value>,
        events: &[Event],
    ) -> Result<(), StoreError> {
        self.write()?;
        self.inner.create_task(task, input, events).await
    }

    async fn get_task(&self, id: &str) -> Result<Option<SquadTask>, StoreError> {
        self.alive()?;
        self.inner.get_task(id).await
    }

    async fn get_task_input(&self, id: &str) -> Result<Option<Map<String, Value>>, StoreError> {
        self.alive()?;
        self.inner.get_task_input(id).await
    }

    async fn list_tasks(&self, filter: &TaskFilter) -> Result<Vec<SquadTask>, StoreError> {
        self.alive()?;
        self.inner.list_tasks(filter).await
    }

    async fn update_task(&self, task: &SquadTask, events: &[Event]) -> Result<(), StoreError> {
        self.write()?;
        self.inner.update_task(task, events).await
    }

    async fn create_assignment(&self, task_id: &str, assignment: &Assignment) -> Result<(), StoreError> {
        self.write()?;
        self.inner.create_assignment(task_id, assignment).await
    }

    async fn get_assignment(&self, task_id: &str, id: &str) -> Result<Option<Assignment>, StoreError> {
        self.alive()?;
        self.inner.get_assignment(task_id, id).await
    }

    async fn list_assignments(&self, task_id: &str) -> Result<Vec<Assignment>, StoreError> {
        self.alive()?;
        self.inner.list_assignments(task_id).await
    }

    async fn update_assignment(
        &self,
        task_id: &str,
        assignment: &Assignment,
        events: &[Event],
    ) -> Result<(), StoreError> {
        self.write()?;
        self.inner.update_assignment(task_id, assignment, events).await
    }
}

impl<S: RunStore> RunStore for Crashing<S> {
    async fn create_run(&self, run: &Run, events: &[Event]) -> Result<(), StoreError> {
        self.alive()?;
        self.inner.create_run(run, events).await
    }

    async fn get_run(&self, id: &str) -> Result<Option<(Run, Vec<StepRun>)>, StoreError> {
        self.alive()?;
        self.inner.get_run(id).await
    }

    async fn list_runs(&self, filter: &RunFilter) -> Result<Vec<Run>, StoreError> {
        self.alive()?;
        self.inner.list_runs(filter).await
    }

    async fn update_run(&self, run: &Run, events: &[Event]) -> Result<(), StoreError> {
        self.alive()?;
        self.inner.update_run(run, events).await
    }

    async fn create_step(&self, run_id: &str, step: &StepRun, events: &[Event]) -> Result<(), StoreError> {
        self.alive()?;
        self.inner.create_step(run_id, step, events).await
    }

    async fn get_step(&self, run_id: &str, step_id: &str) -> Result<Option<StepRun>, StoreError> {
        self.alive()?;
        self.inner.get_step(run_id, step_id).await
    }

    async fn update_step(&self, run_id: &str, step: &StepRun, events: &[Event]) -> Result<(), StoreError> {
        self.alive()?;
        self.inner.update_step(run_id, step, events).await
    }
}

impl<S: DefinitionStore> DefinitionStore for Crashing<S> {
    async fn put_definition(
        &self,
        kind: DefinitionKind,
        definition: &StoredDefinition,
    ) -> Result<(), StoreError> {
        self.alive()?;
        self.inner.put_definition(kind, definition).await
    }

    async fn get_definition(
        &self,
        kind: DefinitionKind,
        id: &str,
        version: Option<&str>,
    ) -> Result<Option<StoredDefinition>, StoreError> {
        self.alive()?;
        self.inner.get_definition(kind, id, version).await
    }
}

impl<S: AgentStore> AgentStore for Crashing<S> {
    async fn insert_agent(&self, agent: &Agent) -> Result<(), StoreError> {
        self.alive()?;
        self.inner.insert_agent(agent).await
    }

    async fn get_agent(&self, id: &str) -> Result<Option<Agent>, StoreError> {
        self.alive()?;
        self.inner.get_agent(id).await
    }

    async fn list_agents(&self) -> Result<Vec<Agent>, StoreError> {
        self.alive()?;
        self.inner.list_agents().await
    }

    async fn update_agent(&self, agent: &Agent) -> Result<(), StoreError> {
        self.alive()?;
        self.inner.update_agent(agent).await
    }

    async fn delete_agent(&self, id: &str) -> Result<(), StoreError> {
        self.alive()?;
        self.inner.delete_agent(id).await
    }
}

impl<S: AgentLoadStore> AgentLoadStore for Crashing<S> {
    async fn acquire_slot(
        &self,
        agent: &str,
        holder: &str,
        max: u32,
        now: jiff::Timestamp,
        lease_until: jiff::Timestamp,
    ) -> Result<bool, StoreError> {
        self.alive()?;
        self.inner.acquire_slot(agent, holder, max, now, lease_until).await
    }

    async fn release_slot(&self, agent: &str, holder: &str) -> Result<(), StoreError> {
        self.alive()?;
        self.inner.release_slot(agent, holder).await
    }

    async fn in_flight(&self, agent: &str, now: jiff::Timestamp) -> Result<u32, StoreError> {
        self.alive()?;
        self.inner.in_flight(agent, now).await
    }

    async fn get_breaker(&self, agent: &str) -> Result<Option<Breaker>, StoreError> {
        self.alive()?;
        self.inner.get_breaker(agent).await
    }

    async fn put_breaker(&self, agent: &str, breaker: &Breaker) -> Result<(), StoreError> {
        self.alive()?;
        self.inner.put_breaker(agent, breaker).await
    }
}

impl<S: EventStore> EventStore for Crashing<S> {
    async fn append_event(&self, event: &Event) -> Result<(), StoreError> {
        self.alive()?;
        self.inner.append_event(event).await
    }

    async fn list_events(&self, filter: &EventFilter) -> Result<Vec<Event>, StoreError> {
        self.alive()?;
        self.inner.list_events(filter).await
    }

    async fn events_after(&self, cursor: Option<&str>, limit: usize) -> Result<EventPage, StoreError> {
        self.alive()?;
        self.inner.events_after(cursor, limit).await
    }
}

/// The queue: a dead worker sends nothing, keeps nothing hidden, and whatever it settles
/// its delivery with, the delivery comes back after [`COME_BACK_AFTER`].
impl<Q: MessageQueue> MessageQueue for Crashing<Q> {
    async fn send(&self, queue: &str, message: NewMessage) -> Result<String, StoreError> {
        let dies = self.is_dead() || {
            let mut state = self.lock();
            state.sends += 1;
            let point = Point::Send(state.sends);
            state.crash(point)
        };
        if dies {
            return Ok("never sent: its worker is dead".into());
        }
        self.inner.send(queue, message).await
    }

    async fn receive(
        &self,
        queue: &str,
        max: usize,
        visibility: Duration,
    ) -> Result<Vec<Delivery>, StoreError> {
        self.inner.receive(queue, max, visibility).await
    }

    async fn ack(&self, queue: &str, receipt: &str) -> Result<(), StoreError> {
        if self.bury() {
            return self.inner.retry_after(queue, receipt, COME_BACK_AFTER).await;
        }
        self.inner.ack(queue, receipt).await
    }

    async fn retry_after(&self, queue: &str, receipt: &str, delay: Duration) -> Result<(), StoreError> {
        let delay = if self.bury() { COME_BACK_AFTER } else { delay };
        self.inner.retry_after(queue, receipt, delay).await
    }

    async fn keep_hidden(&self, queue: &str, receipt: &str, duration: Duration) -> Result<(), StoreError> {
        if self.is_dead() {
            return Ok(());
        }
        self.inner.keep_hidden(queue, receipt, duration).await
    }

    async fn dead_letter(&self, queue: &str, delivery: &Delivery, reason: &str) -> Result<(), StoreError> {
        if self.bury() {
            return self.inner.retry_after(queue, &delivery.receipt, COME_BACK_AFTER).await;
        }
        self.inner.dead_letter(queue, delivery, reason).await
    }
}

/// The squads the crash points are tried on: each has its own sequence of writes.
#[derive(Debug, Clone, Copy)]
enum Scenario {
    /// Three members answering A, B, A, one call at a time: the majority, A, with every
    /// vote in.
    Broadcast,
    /// A member that always fails is retried once, then replaced by the spare agent of its
    /// capability.
    Replacement,
    /// Six items split over two workers.
    Split,
}

/// What a task ended with, the same whatever crashed: agents named by their part in the
/// scenario, since each run has agents of its own.
#[derive(Debug, PartialEq)]
struct Ending {
    status: TaskStatus,
    result: Option<Value>,
    tally: Option<Tally>,
    /// (slot, replaced, by).
    replacements: Vec<(u32, String, String)>,
}

/// One run of a scenario.
struct Ran {
    ending: Ending,
    writes: usize,
    took: Duration,
}

type CrashHarness<S, Q> = Harness<Crashing<S>, Crashing<Q>>;

/// Each scenario once without a crash, counting its squad task writes W; then, for `k` in
/// `1..=W` (every `every`th `k`, and W), once more with the `k`th write crashing its
/// worker and every delivery processed twice. Each run ends as the crash-free one did
/// (status, result, tally, replacements), and no agent was called twice with the same
/// assignment and attempt. Nothing is dead-lettered. Says W and the time taken per
/// scenario on stderr.
pub async fn a_crash_between_any_two_writes_changes_nothing<S, Q>(store: S, queue: Q, every: usize)
where
    S: EngineStore + Clone,
    Q: MessageQueue,
{
    let store = Crashing::new(store);
    let queue = store.wrap(queue);
    let h = Harness::new(store.clone(), queue);
    for scenario in [Scenario::Broadcast, Scenario::Replacement, Scenario::Split] {
        store.count_from_zero();
        let reference = run(&h, &store, scenario, Drive::Once).await;
        assert!(!store.crashed());
        let w = reference.writes;
        assert_eq!(reference.ending.status, TaskStatus::Succeeded, "{scenario:?}: {:?}", reference.ending);
        let started = Instant::now();
        let mut points = 0;
        let mut skipped = 0;
        for k in (1..=w).filter(|k| (k - 1) % every.max(1) == 0 || *k == w) {
            store.crash_at(k);
            let crashed = run(&h, &store, scenario, Drive::Once).await;
            if !store.crashed() {
                // Some writes are races two workers may or may not run (the start and the
                // watch both making the first assignment: the loser's create is counted),
                // so a run can have a write fewer than the crash-free one: then the last
                // crash point is not reached. It must be the run's count that fell short.
                assert!(
                    crashed.writes < k,
                    "{scenario:?}: write {k} of {w} never came ({} writes)",
                    crashed.writes
                );
                assert_eq!(crashed.ending, reference.ending, "{scenario:?}: the run without its crash");
                skipped += 1;
                continue;
            }
            assert_eq!(crashed.ending, reference.ending, "{scenario:?}: a crash at write {k} of {w}");
            eprintln!(
                "{scenario:?}: a crash at write {k} of {w}: {} writes, {:?}",
                crashed.writes, crashed.took
            );
            points += 1;
        }
        assert!(
            skipped <= 2 && points > 0,
            "{scenario:?}: {skipped} crash points not reached, {points} reached"
        );
        eprintln!(
            "{scenario:?}: W = {w}; crash-free in {:?}; {points} crash points in {:?}",
            reference.took,
            started.elapsed()
        );
    }
    let dead_letters =
        h.engine.queue().receive(STEP_DEAD_LETTER_QUEUE, 10, Duration::from_secs(1)).await.expect("receive");
    let reasons: Vec<_> = dead_letters.iter().map(|d| (&d.body, &d.attributes)).collect();
    assert!(dead_letters.is_empty(), "dead-lettered: {reasons:?}");
}

/// How a run is driven.
#[derive(Debug, Clone, Copy, PartialEq)]
enum Drive {
    /// Until the task ends.
    Once,
    /// For [`STUCK_AFTER`], then as the watch would a minute later, then until it ends.
    UntilStuckThenWatch,
}

/// Long enough for a task to end that needs no watch, a lost attempt (1.3 s) included.
const STUCK_AFTER: Duration = Duration::from_secs(5);

/// Runs `scenario` once with fresh agents and a fresh squad, with every delivery
/// processed twice, and checks that no agent was called twice for one attempt.
async fn run<S, Q>(h: &CrashHarness<S, Q>, store: &Crashing<S>, scenario: Scenario, drive: Drive) -> Ran
where
    S: EngineStore + Clone,
    Q: MessageQueue,
{
    let started = Instant::now();
    let (squad, input, cast) = set_up(h, scenario).await;
    let task_id = start(h, store, squad, input).await;
    if drive == Drive::UntilStuckThenWatch {
        h.drive_task_within(&task_id, true, STUCK_AFTER).await;
        assert!(store.crashed(), "{scenario:?}: the crash never came");
        the_watch_a_minute_later(h, &task_id, scenario).await;
    }
    let done = h.drive_task(&task_id, true).await;
    let name = |id: &str| {
        cast.iter().find(|(_, agent)| agent == id).map_or_else(|| id.to_owned(), |(name, _)| name.clone())
    };
    for (who, agent) in &cast {
        let mut seen = std::collections::HashSet::new();
        for call in h.agents.calls(agent) {
            let context = &call["context"];
            let attempt = (context["assignment"].clone(), context["attempt"].clone());
            assert!(
                attempt.0.is_string() && attempt.1.is_u64(),
                "{scenario:?}: {who} was called without an assignment and attempt: {context}"
            );
            assert!(
                seen.insert(attempt.clone()),
                "{scenario:?}: {who} was called twice for assignment {} attempt {} (crash at {:?})",
                attempt.0,
                attempt.1,
                store.lock().armed
            );
        }
    }
    let ending = Ending {
        status: done.status,
        result: done.result,
        tally: done.tally,
        replacements: done.replacements.iter().map(|r| (r.slot, name(&r.replaced), name(&r.by))).collect(),
    };
    Ran { ending, writes: store.writes(), took: started.elapsed() }
}

/// Registers the scenario's agents (fresh ones) and says its squad, its input and who is
/// who: (part, agent id).
async fn set_up<S, Q>(h: &CrashHarness<S, Q>, scenario: Scenario) -> (Value, Value, Vec<(String, String)>)
where
    S: EngineStore + Clone,
    Q: MessageQueue,
{
    let reply = |answer: &str| Behaviour::Reply(vec![json!({"answer": answer})]);
    // A lost attempt is noticed a second (and the harness's 300 ms margin) after it
    // started, and retried once.
    let limits = json!({"max_concurrency": 1, "member_timeout": 1});
    let mut cast = Vec::new();
    match scenario {
        Scenario::Broadcast => {
            for (part, answer) in [("a-1", "A"), ("b", "B"), ("a-2", "A")] {
                cast.push((part.to_owned(), h.agent(part, reply(answer), &[]).await));
            }
            let squad = json!({
                "members": cast.iter().map(|(_, id)| json!({"agent": id})).collect::<Vec<_>>(),
                "aggregation": {"method": "majority", "compare": "/answer"},
                "limits": limits,
                "on_failure": {"retries": 1},
            });
            (squad, json!({"question": "A or B?"}), cast)
        }
        Scenario::Replacement => {
            let capability = crate::unique("cap-crash");
            for (part, behaviour) in [
                ("good-1", reply("yes")),
                ("broken", Behaviour::AlwaysFail),
                ("good-2", reply("yes")),
                ("spare", reply("yes")),
            ] {
                cast.push((part.to_owned(), h.agent(part, behaviour, &[&capability]).await));
            }
            let squad = json!({
                "members": [
                    {"agent": cast[0].1}, {"agent": cast[1].1, "capability": capability}, {"agent": cast[2].1},
                ],
                "aggregation": {"method": "unanimous", "compare": "/answer"},
                "limits": limits,
                "on_failure": {"retries": 1, "replacements": 1},
            });
            (squad, json!({}), cast)
        }
        Scenario::Split => {
            for part in ["worker-1", "worker-2"] {
                let work = Behaviour::Work { over: "items".into(), millis: 1 };
                cast.push((part.to_owned(), h.agent(part, work, &[]).await));
            }
            let squad = json!({
                "members": cast.iter().map(|(_, id)| json!({"agent": id})).collect::<Vec<_>>(),
                "distribution": {"mode": "split", "over": "items"},
                "aggregation": {"compare": "/answer"},
                "limits": limits,
                "on_failure": {"retries": 1},
            });
            let items: Vec<Value> = (0..6).map(|i| json!(format!("item-{i}"))).collect();
            (squad, json!({"items": items}), cast)
        }
    }
}

/// Stores `squad` under a fresh id and starts a task of it, as the API would, in a worker
/// of its own (a crash there kills that call only). A call that died after the task was
/// recorded leaves a task its watch finishes: the client finds it by its squad. One that
/// died before is tried again, as a client would.
async fn start<S, Q>(h: &CrashHarness<S, Q>, store: &Crashing<S>, mut squad: Value, input: Value) -> String
where
    S: EngineStore + Clone,
    Q: MessageQueue,
{
    let squad_id = crate::unique("sq-crash");
    squad["id"] = json!(squad_id);
    squad["version"] = json!("1");
    let loaded = squads::load(&squad.to_string(), Format::Json).expect("a valid squad");
    h.engine.put_squad(loaded).await.expect("store squad");
    let Value::Object(input) = input else { panic!("input must be an object") };
    for _ in 0..2 {
        let (engine, id, input): (_, _, Map<String, Value>) =
            (h.engine.clone(), squad_id.clone(), input.clone());
        let call = tokio::spawn(async move { engine.start_task(&id, None, input, None).await });
        match call.await.expect("start task") {
            Ok(task) => return task.id,
            Err(e) => assert!(store.crashed(), "start failed without a crash: {e}"),
        }
        let filter = TaskFilter { squad_id: Some(squad_id.clone()), status: None };
        if let Some(task) = h.engine.store().list_tasks(&filter).await.expect("list tasks").pop() {
            return task.id;
        }
    }
    panic!("no task started")
}

/// For each scenario, the worker about to send the task's second assignment message (the
/// third message: the task's watch, the first assignment's, this one) dies, every write
/// before it made. Nothing moves until the watch looks, a minute later: it sends the
/// message again, and the task ends as the crash-free run did.
///
/// The minute is not waited for: once the task is stuck, its queued assignments are made a
/// minute older, and the test does what the watch's delivery does then,
/// [`tdev_domain::runs::Engine::advance_task`].
pub async fn a_lost_assignment_message_is_sent_again_by_the_watch<S, Q>(store: S, queue: Q)
where
    S: EngineStore + Clone,
    Q: MessageQueue,
{
    let store = Crashing::new(store);
    let queue = store.wrap(queue);
    let h = Harness::new(store.clone(), queue);
    for scenario in [Scenario::Broadcast, Scenario::Replacement, Scenario::Split] {
        store.count_from_zero();
        let reference = run(&h, &store, scenario, Drive::Once).await;
        store.crash_before_send(3);
        let lost = run(&h, &store, scenario, Drive::UntilStuckThenWatch).await;
        assert_eq!(lost.ending, reference.ending, "{scenario:?}: the second assignment's message lost");
    }
}

/// Makes `task_id`'s queued assignments a minute older and does what the task's watch
/// does, as if a minute had passed; checks first that the task is stuck on one message
/// that was never sent.
async fn the_watch_a_minute_later<S, Q>(h: &CrashHarness<S, Q>, task_id: &str, scenario: Scenario)
where
    S: EngineStore + Clone,
    Q: MessageQueue,
{
    let TaskView { task, assignments, .. } = h.engine.task_view(task_id).await.expect("view");
    assert_eq!(
        task.status,
        TaskStatus::Running,
        "{scenario:?}: stuck until the watch looks: {:?}",
        task.error
    );
    let waiting: Vec<&Assignment> =
        assignments.iter().filter(|a| a.status == AssignmentStatus::Queued && a.attempts == 0).collect();
    assert_eq!(
        waiting.len(),
        1,
        "{scenario:?}: one assignment waits on a message never sent: {assignments:?}"
    );
    let a_minute = SignedDuration::try_from(WATCH_EVERY).expect("a minute") + SignedDuration::from_secs(1);
    for assignment in waiting {
        let older = Assignment {
            queued_at: assignment.queued_at - a_minute,
            version: assignment.version + 1,
            ..assignment.clone()
        };
        h.engine.store().update_assignment(task_id, &older, &[]).await.expect("age the record");
    }
    h.engine.advance_task(task_id, None).await.expect("the watch");
}
