//! Instances and everything that moves them: the events that come in, the
//! commands that go out and the history records that say what happened.

use std::fmt;
use std::sync::Arc;

use indexmap::IndexMap;
use serde::{Deserialize, Serialize};
use serde_json::Value;

pub use crate::record::{Record, RecordKind};
use crate::retry::RetryPolicy;
use crate::time::{Millis, Span};

/// An instance's id: 26 characters, sortable by creation time.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(transparent)]
pub struct InstanceId(pub String);

impl InstanceId {
    pub const LEN: usize = 26;

    /// Builds an id from a creation time and 80 random bits: a ULID
    /// (Crockford base32), so ids sort by creation time.
    pub fn new(at: Millis, random: u128) -> Self {
        InstanceId(ulid::Ulid::from_parts(at.0, random).to_string())
    }

    /// Accepts what `new` produces (case-insensitive; Crockford's I, L and
    /// O are not read as digits: an id has none of them).
    pub fn parse(text: &str) -> Option<Self> {
        let t = text.trim().to_ascii_uppercase();
        let clean = t.len() == Self::LEN && !t.bytes().any(|b| b"ILOU".contains(&b));
        clean
            .then(|| ulid::Ulid::from_string(&t).ok())
            .flatten()
            .map(|u| InstanceId(u.to_string()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for InstanceId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Status {
    /// A step is in flight or about to be.
    Running,
    /// Ended in a `succeed` state.
    Succeeded,
    /// Ended in a `fail` state.
    Failed,
    /// Stopped on a failure nothing handles; waits for an operator.
    Parked,
    /// Ended by an operator (`weft cancel`).
    Cancelled,
    /// In a wait state: stored, costing no memory, until a signal or its
    /// timer moves it on.
    Waiting,
}

impl Status {
    pub fn is_finished(self) -> bool {
        matches!(self, Status::Succeeded | Status::Failed | Status::Cancelled)
    }
    pub fn as_str(self) -> &'static str {
        match self {
            Status::Running => "running",
            Status::Succeeded => "succeeded",
            Status::Failed => "failed",
            Status::Parked => "parked",
            Status::Cancelled => "cancelled",
            Status::Waiting => "waiting",
        }
    }
    pub const ALL: [Status; 6] = [
        Status::Running,
        Status::Succeeded,
        Status::Failed,
        Status::Parked,
        Status::Cancelled,
        Status::Waiting,
    ];
}

impl fmt::Display for Status {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Why a step failed. `kind` is what a process routes on (`error.<kind>`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Failure {
    pub kind: String,
    pub message: String,
    /// How long the tool asked to be left alone before the next attempt
    /// (an HTTP `Retry-After`); it replaces the retry policy's backoff.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub retry_after: Option<Span>,
}

/// The longest `retry_after` an adapter can ask for.
pub const MAX_RETRY_AFTER: Span = Span(86_400_000);

impl Failure {
    pub fn new(kind: impl Into<String>, message: impl Into<String>) -> Self {
        Failure {
            kind: kind.into(),
            message: message.into(),
            retry_after: None,
        }
    }

    /// The same failure, asking for the next attempt no sooner than `after`.
    pub fn retry_after(mut self, after: Span) -> Self {
        self.retry_after = Some(after.min(MAX_RETRY_AFTER));
        self
    }
}

impl fmt::Display for Failure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.kind, self.message)
    }
}

/// The error an instance ended or parked with.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct InstanceError {
    pub state: String,
    pub kind: String,
    pub message: String,
}

/// An SLA an instance has run past.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Overdue {
    /// The state whose `sla` it is; `None` for the process's.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub state: Option<String>,
    pub sla: Span,
    /// When the clock started: the instance's start, or entering the state.
    pub since: Millis,
    /// The key of the timer that flagged it.
    pub key: String,
}

/// The task step (or compensation) an instance is carrying out.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ActiveStep {
    pub state: String,
    pub action: String,
    /// `<instance>/<state>/<visit>` (plus `/undo` for a compensation; built
    /// by [`StepKey`](crate::StepKey), kept a string as stored): the
    /// same for every attempt, restart and redrive of this visit.
    pub key: String,
    /// Attempts started for this visit, 1-based; handed to the adapter.
    pub attempt: u32,
    /// Attempts in the current round; the retry budget counts these.
    /// A redrive starts a new round.
    pub tries: u32,
    /// The action's input, evaluated once when the step began.
    pub input: Value,
    pub started_at: Millis,
    pub attempt_started_at: Millis,
    /// When the whole step (retries included) runs out of time.
    pub deadline_at: Option<Millis>,
    pub retry: RetryPolicy,
    /// Per-attempt timeout, when the process or binding sets one.
    pub timeout: Option<Span>,
    pub heartbeat: Option<Span>,
    pub last_heartbeat: Option<String>,
    #[serde(flatten)]
    pub phase: Phase,
    /// For a compensation: the state whose step it undoes.
    pub undoes: Option<String>,
}

/// Where a step stands.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "phase", rename_all = "snake_case")]
pub enum Phase {
    /// An attempt is being invoked.
    Invoking,
    /// The adapter answered `pending`; the token completes it.
    Pending { token: String },
    /// Waiting to retry.
    Backoff { until: Millis },
}

/// A completed step that a `compensate` state would undo.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Compensable {
    pub state: String,
    pub key: String,
    pub result: Value,
    /// For a step completed inside a branch: how to undo it, settled when
    /// the branch ended (its state is not one of the process's own).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub undo: Option<UndoBy>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct UndoBy {
    pub action: String,
    pub input: Value,
    #[serde(default)]
    pub retry: Option<RetryPolicy>,
}

/// What a parked instance resumes with when redriven.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "on", rename_all = "snake_case")]
pub enum ParkedOn {
    /// Invoke the active step again (same key, a new round of attempts).
    Step,
    /// Choose the transition for this event again.
    Route {
        event: String,
        result: Option<Value>,
        failure: Option<Failure>,
    },
    /// Enter the current state again.
    Enter,
    /// Carry on undoing completed steps.
    Undo,
}

/// Durable timers: stored, so they survive a restart, and found by due time.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum TimerKind {
    /// The backoff before a retry is over.
    Retry,
    /// A pending attempt ran out of time.
    Timeout,
    /// The whole step ran out of time.
    Deadline,
    /// A pending attempt stopped sending heartbeats.
    Heartbeat,
    /// A wait state's timer (`timeout`, or `wait: { for | until }`).
    Wait,
    /// The instance (or its stay in a state) has run past its `sla`.
    Sla,
}

impl TimerKind {
    pub fn as_str(self) -> &'static str {
        match self {
            TimerKind::Retry => "retry",
            TimerKind::Timeout => "timeout",
            TimerKind::Deadline => "deadline",
            TimerKind::Heartbeat => "heartbeat",
            TimerKind::Wait => "wait",
            TimerKind::Sla => "sla",
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Timer {
    pub instance: InstanceId,
    pub kind: TimerKind,
    /// The step it belongs to.
    pub key: String,
    pub at: Millis,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Instance {
    pub id: InstanceId,
    pub process: String,
    pub version: u32,
    /// The business key it was started with: unique per process.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub key: Option<String>,
    pub status: Status,
    pub state: String,
    /// Shared, not copied, when the instance is: the interpreter works on a
    /// copy of the instance for every event, and data may be large (a
    /// map's items). A change replaces it.
    pub data: Arc<Value>,
    #[serde(default)]
    pub output: Option<Value>,
    #[serde(default)]
    pub error: Option<InstanceError>,
    /// Times each state has been entered, for idempotency keys.
    #[serde(default)]
    pub visits: IndexMap<String, u32>,
    #[serde(default)]
    pub step: Option<ActiveStep>,
    /// Completed compensable steps, oldest first.
    #[serde(default)]
    pub undo: Vec<Compensable>,
    /// Set while compensating: where to go when done (`None`: end cancelled).
    #[serde(default)]
    pub compensating: Option<Option<String>>,
    /// Durable timers armed for this instance.
    #[serde(default)]
    pub timers: Vec<Timer>,
    #[serde(default)]
    pub parked: Option<ParkedOn>,
    /// Set while in a wait state.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub waiting: Option<Waiting>,
    /// Set while in a parallel or map state: its branches.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub fan: Option<Box<Fan>>,
    /// SLAs it has run past: the process's, and its current state's while
    /// it stays there. An unfinished instance with any is stuck.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub overdue: Vec<Overdue>,
    /// The idempotency keys of the last operator requests applied to it
    /// (`<operation>:<key>`, newest last, at most [`Instance::REQUESTS`]):
    /// a retried request finds its key here and changes nothing.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub requests: Vec<String>,
    /// Number of history records so far; the next one gets this number.
    pub seq: u64,
    pub created_at: Millis,
    pub updated_at: Millis,
}

impl Instance {
    /// How many operator requests' idempotency keys an instance remembers.
    pub const REQUESTS: usize = 64;

    /// Whether an operator request with this key was applied already.
    pub fn handled(&self, request: &str) -> bool {
        self.requests.iter().any(|r| r == request)
    }

    /// Remembers an applied operator request, forgetting the oldest past
    /// [`Instance::REQUESTS`].
    pub fn remember(&mut self, request: String) {
        self.requests.push(request);
        let over = self.requests.len().saturating_sub(Self::REQUESTS);
        self.requests.drain(..over);
    }

    /// A copy of everything but the data (which may be large), left `null`.
    pub fn clone_without_data(&self) -> Instance {
        Instance {
            id: self.id.clone(),
            process: self.process.clone(),
            version: self.version,
            key: self.key.clone(),
            status: self.status,
            state: self.state.clone(),
            data: Arc::new(Value::Null),
            output: self.output.clone(),
            error: self.error.clone(),
            visits: self.visits.clone(),
            step: self.step.clone(),
            undo: self.undo.clone(),
            compensating: self.compensating.clone(),
            timers: self.timers.clone(),
            parked: self.parked.clone(),
            waiting: self.waiting.clone(),
            fan: self.fan.clone(),
            overdue: self.overdue.clone(),
            requests: self.requests.clone(),
            seq: self.seq,
            created_at: self.created_at,
            updated_at: self.updated_at,
        }
    }

    /// Whether a step with this key is in progress here or in a branch.
    pub fn has_step(&self, key: &str) -> bool {
        self.step.as_ref().is_some_and(|s| s.key == key)
            || self.fan.as_ref().is_some_and(|f| {
                f.running()
                    .filter_map(|(_, s)| s.inst.as_ref())
                    .any(|i| i.has_step(key))
            })
    }
}

/// The branches of a parallel or map state in progress. Each branch is an
/// instance of its own small machine, kept inside this one: its steps'
/// keys start with `<fan key>/<slot name>/`.
///
/// A map may have thousands of branches, and every event of one of them
/// is a change of this instance; so everything an event touches costs in
/// proportion to the branches *running*, not to all of them. The slots are
/// a persistent vector (cloning the instance copies no slot), branches start
/// in order (`started` counts them), `running` lists the started ones that
/// have not ended, and the slots a change touched are noted, so a store can
/// keep each slot under its own key and write only those.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(from = "FanFields")]
pub struct Fan {
    /// `<instance>/<state>/<visit>` ([`StepKey::visit`](crate::StepKey::visit)).
    pub key: String,
    pub since: Millis,
    slots: imbl::Vector<Slot>,
    /// Failed branches so far.
    #[serde(default)]
    pub failed: usize,
    #[serde(skip)]
    started: usize,
    #[serde(skip)]
    running: Vec<usize>,
    /// Slots changed since [`Fan::take_changes`] last took them.
    #[serde(skip)]
    changed: Changed,
}

/// How [`Fan`] is stored; its indexes are rebuilt from the slots.
#[derive(Deserialize)]
struct FanFields {
    key: String,
    since: Millis,
    #[serde(default)]
    slots: imbl::Vector<Slot>,
    #[serde(default)]
    failed: usize,
}

impl From<FanFields> for Fan {
    fn from(f: FanFields) -> Self {
        let mut fan = Fan {
            key: f.key,
            since: f.since,
            slots: imbl::Vector::new(),
            failed: f.failed,
            started: 0,
            running: Vec::new(),
            changed: Changed::default(),
        };
        fan.fill(f.slots);
        fan.changed = Changed::default();
        fan
    }
}

/// Which slots of a fan a change touched.
#[derive(Debug, Clone, Default)]
struct Changed {
    all: bool,
    slots: std::collections::BTreeSet<usize>,
}

impl PartialEq for Fan {
    /// Two fans are equal when they hold the same branches; what changed
    /// since the last write is bookkeeping, not state.
    fn eq(&self, other: &Self) -> bool {
        self.key == other.key
            && self.since == other.since
            && self.failed == other.failed
            && self.slots == other.slots
    }
}

impl Fan {
    /// A fan about to start its branches; every slot counts as changed.
    pub fn new(key: String, since: Millis, slots: Vec<Slot>) -> Self {
        Fan {
            key,
            since,
            slots: slots.into_iter().collect(),
            failed: 0,
            started: 0,
            running: Vec::new(),
            changed: Changed {
                all: true,
                slots: Default::default(),
            },
        }
    }

    pub fn len(&self) -> usize {
        self.slots.len()
    }

    pub fn is_empty(&self) -> bool {
        self.slots.is_empty()
    }

    pub fn slot(&self, i: usize) -> Option<&Slot> {
        self.slots.get(i)
    }

    /// A slot to change: it is noted as changed.
    pub fn slot_mut(&mut self, i: usize) -> Option<&mut Slot> {
        if i < self.slots.len() {
            self.changed.slots.insert(i);
        }
        self.slots.get_mut(i)
    }

    /// Every slot, in order.
    pub fn slots(&self) -> impl Iterator<Item = &Slot> {
        self.slots.iter()
    }

    /// The branches started and not ended, with their index.
    pub fn running(&self) -> impl Iterator<Item = (usize, &Slot)> {
        self.running
            .iter()
            .filter_map(|&i| self.slots.get(i).map(|s| (i, s)))
    }

    /// How many branches have started: they are `0..started`.
    pub fn started(&self) -> usize {
        self.started
    }

    /// Notes that the branch at `started()` has started.
    pub fn mark_started(&mut self) {
        self.running.push(self.started);
        self.started += 1;
    }

    /// Notes that a running branch has ended.
    pub fn mark_ended(&mut self, i: usize) {
        self.running.retain(|&r| r != i);
    }

    /// Whether every branch has started and ended.
    pub fn all_ended(&self) -> bool {
        self.started == self.slots.len() && self.running.is_empty()
    }

    /// The slots changed since the last call, with their index, and
    /// forgets them: what a store that keeps slots apart must write.
    pub fn take_changes(&mut self) -> Vec<(usize, Slot)> {
        let changed = std::mem::take(&mut self.changed);
        if changed.all {
            return self.slots.iter().cloned().enumerate().collect();
        }
        changed
            .slots
            .into_iter()
            .filter_map(|i| self.slots.get(i).map(|s| (i, s.clone())))
            .collect()
    }

    /// Notes every slot as changed (a store read it in a form it no longer
    /// writes, and must write it whole).
    pub fn mark_all_changed(&mut self) {
        self.changed.all = true;
    }

    /// This fan without its slots: what a store keeps in the snapshot when
    /// it keeps the slots apart.
    pub fn without_slots(&self) -> Fan {
        Fan {
            slots: imbl::Vector::new(),
            running: Vec::new(),
            started: 0,
            changed: Changed::default(),
            ..self.clone()
        }
    }

    /// Puts back slots a store kept apart, and rebuilds the indexes.
    pub fn fill(&mut self, slots: imbl::Vector<Slot>) {
        self.slots = slots;
        self.started = self.slots.iter().take_while(|s| s.inst.is_some()).count();
        self.running = (0..self.started)
            .filter(|&i| self.slots.get(i).is_some_and(|s| s.outcome.is_none()))
            .collect();
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Slot {
    /// The branch name, or the item's index for a map.
    pub name: String,
    /// The branch's input data.
    pub input: Value,
    /// The branch while it runs or after it ended; `None` before it starts.
    #[serde(default)]
    pub inst: Option<Instance>,
    /// How it ended: its output, or its error.
    #[serde(default)]
    pub outcome: Option<Result<Value, InstanceError>>,
}

/// What a waiting instance waits for.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Waiting {
    /// `<instance>/<state>/<visit>`: names this visit of the wait state.
    pub key: String,
    /// The signals that move it on.
    pub events: Vec<String>,
    pub since: Millis,
    /// When its timer fires, if it has one.
    #[serde(default)]
    pub until: Option<Millis>,
}

/// Something that moves an instance.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum Event {
    /// The action of the step with this key finished.
    StepDone { key: String, output: Value },
    /// The action of the step with this key failed; `heartbeat` holds the
    /// last details the attempt sent.
    StepFailed {
        key: String,
        failure: Failure,
        #[serde(default)]
        heartbeat: Option<String>,
    },
    /// The adapter answered `pending`: the token will complete the step.
    StepPending { key: String, token: String },
    /// A pending step reports progress.
    Heartbeat { key: String, details: String },
    /// A durable timer is due.
    Timer {
        kind: TimerKind,
        key: String,
        at: Millis,
    },
    /// An operator retries a parked instance from where it stopped.
    Redrive,
    /// An operator ends the instance, undoing completed steps if asked.
    Cancel { compensate: bool },
    /// An external event for a waiting instance, with its payload.
    Signal { name: String, data: Value },
}

impl Event {
    /// The step the event is about, if any.
    pub fn key(&self) -> Option<&str> {
        match self {
            Event::StepDone { key, .. }
            | Event::StepFailed { key, .. }
            | Event::StepPending { key, .. }
            | Event::Heartbeat { key, .. }
            | Event::Timer { key, .. } => Some(key),
            Event::Redrive | Event::Cancel { .. } | Event::Signal { .. } => None,
        }
    }
}

/// What carrying out a step's action came to.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum StepOutcome {
    Done {
        output: Value,
    },
    /// The action finishes later; this token completes it.
    Pending {
        token: String,
    },
    Failed {
        failure: Failure,
    },
}

/// Work the driver must carry out after committing a transition. Timers and
/// tokens are written in the same commit; invocations go to the outbox.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum Command {
    Invoke(Invoke),
    ArmTimer(Timer),
    CancelTimer(Timer),
    /// A pending step now waits on this token.
    OpenToken {
        token: String,
        key: String,
    },
    /// The token's step is over; completing it again is an error.
    CloseToken {
        token: String,
        key: String,
    },
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Invoke {
    pub instance: InstanceId,
    pub process: String,
    pub version: u32,
    pub state: String,
    pub action: String,
    pub key: String,
    pub attempt: u32,
    pub input: Value,
    #[serde(default)]
    pub last_heartbeat: Option<String>,
    /// Overrides the binding's timeout for this attempt.
    #[serde(default)]
    pub timeout: Option<Span>,
    /// The attempt is stopped if it goes this long without a heartbeat.
    #[serde(default)]
    pub heartbeat: Option<Span>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn instance_id_sorts_by_time_and_round_trips() {
        let a = InstanceId::new(Millis(1_700_000_000_000), 42);
        let b = InstanceId::new(Millis(1_700_000_000_001), 1);
        assert_eq!(a.as_str().len(), InstanceId::LEN);
        assert!(a < b);
        assert_eq!(InstanceId::parse(&a.as_str().to_lowercase()), Some(a));
        assert_eq!(InstanceId::parse("not-an-id"), None);
    }

    #[test]
    fn an_instance_remembers_its_last_requests_only() {
        let mut inst: Instance = serde_json::from_value(serde_json::json!({
            "id": "01J00000000000000000000000", "process": "p", "version": 1,
            "status": "running", "state": "s", "data": {}, "seq": 0,
            "created_at": 0, "updated_at": 0
        }))
        .expect("an instance");
        for n in 0..Instance::REQUESTS + 5 {
            inst.remember(format!("cancel/false:{n}"));
        }
        assert_eq!(inst.requests.len(), Instance::REQUESTS);
        assert!(!inst.handled("cancel/false:4"));
        assert!(inst.handled("cancel/false:5"));
        assert!(inst.handled(&format!("cancel/false:{}", Instance::REQUESTS + 4)));
    }
}
