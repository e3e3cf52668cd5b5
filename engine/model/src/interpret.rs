//! The interpreter: `(process, defaults, instance, event, now) -> (instance',
//! records, commands)`. A pure function — no clock, no I/O, no randomness
//! (retry jitter is seeded by the step key) — so every rule is tested in
//! microseconds and a history replays exactly.

use serde_json::Value;

use crate::bindings::ActionDefaults;
use std::sync::Arc;

use crate::instance::{
    ActiveStep, Command, Compensable, Event, Failure, Fan, Instance, InstanceError, InstanceId,
    Invoke, ParkedOn, Phase, Record, RecordKind, Slot, Status, Timer, TimerKind, UndoBy, Waiting,
};
use crate::process::{Arm, Process, StateKind, Tolerance, WaitTimer};
use crate::retry::{RetryPolicy, seed};
use crate::time::{Millis, Span};

/// More transitions than this in one step means a cycle that never waits
/// (say, a mapping error routed back to the same state).
const MAX_CHAIN: usize = 1_000;

/// What applying an event produced. The driver commits all of it atomically,
/// then carries out `commands`.
#[derive(Debug, Clone, PartialEq)]
pub struct Applied {
    pub instance: Instance,
    pub records: Vec<Record>,
    pub commands: Vec<Command>,
    /// Outbox invocations (by step key) this event settles. One still
    /// running is no longer wanted and may be stopped.
    pub settled: Vec<String>,
}

/// Why an event does not apply to an instance. Not an error: outcomes and
/// timers can arrive late or twice, and are then dropped.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Rejected {
    /// The instance has already ended.
    Finished(Status),
    /// The event is for a step or timer the instance no longer has.
    Stale { key: String },
    /// The instance is parked; only an operator moves it on.
    Parked,
    /// Redrive asked of an instance that is not parked.
    NotParked(Status),
    /// A signal's payload cannot be stored in the instance data.
    BadPayload { event: String, why: String },
    /// A signal the instance's current state does not accept.
    NotAccepted {
        state: String,
        event: String,
        /// The signals it does accept (none when it is not waiting).
        accepted: Vec<String>,
    },
}

impl std::fmt::Display for Rejected {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Rejected::Finished(s) => write!(f, "the instance has already {s}"),
            Rejected::Stale { key } => write!(f, "nothing is waiting for '{key}'"),
            Rejected::Parked => f.write_str("the instance is parked"),
            Rejected::NotParked(s) => write!(f, "the instance is {s}, not parked"),
            Rejected::BadPayload { event, why } => write!(f, "the payload of '{event}': {why}"),
            Rejected::NotAccepted {
                state,
                event,
                accepted,
            } if accepted.is_empty() => write!(
                f,
                "state '{state}' does not accept '{event}': it is not waiting for signals now \
                 (only wait states accept them)"
            ),
            Rejected::NotAccepted {
                state,
                event,
                accepted,
            } => write!(
                f,
                "state '{state}' does not accept '{event}'; it accepts: {}",
                accepted.join(", ")
            ),
        }
    }
}

/// Creates an instance of `process` and enters its start state.
pub fn start(
    process: &Process,
    defaults: &dyn ActionDefaults,
    id: InstanceId,
    input: Value,
    now: Millis,
) -> Applied {
    let instance = Instance {
        id,
        process: process.name.clone(),
        version: process.version,
        key: None,
        status: Status::Running,
        state: process.start.clone(),
        data: input.clone(),
        output: None,
        error: None,
        visits: Default::default(),
        step: None,
        undo: Vec::new(),
        compensating: None,
        timers: Vec::new(),
        parked: None,
        waiting: None,
        fan: None,
        seq: 0,
        created_at: now,
        updated_at: now,
    };
    let mut m = Machine::new(process, defaults, instance, now);
    m.record(RecordKind::Started {
        process: process.name.clone(),
        version: process.version,
        input,
    });
    m.next = Some(process.start.clone());
    m.drive();
    m.finish()
}

/// Applies one event to an instance.
pub fn apply(
    process: &Process,
    defaults: &dyn ActionDefaults,
    instance: &Instance,
    event: &Event,
    now: Millis,
) -> Result<Applied, Rejected> {
    if instance.status.is_finished() {
        return Err(Rejected::Finished(instance.status));
    }
    let mut m = Machine::new(process, defaults, instance.clone(), now);
    // Events for steps inside branches go to their branch.
    if let (Some(key), Some(fan)) = (event.key(), &instance.fan)
        && key.starts_with(&format!("{}/", fan.key))
        && instance.status != Status::Parked
    {
        m.fan_event(event)?;
        m.drive();
        return Ok(m.finish());
    }
    match event {
        Event::Cancel { compensate } => m.cancel(*compensate),
        Event::Redrive => {
            if instance.status != Status::Parked {
                return Err(Rejected::NotParked(instance.status));
            }
            m.redrive();
        }
        _ if instance.status == Status::Parked => return Err(Rejected::Parked),
        Event::Signal { name, data } => {
            let accepted = instance
                .waiting
                .as_ref()
                .map(|w| w.events.clone())
                .unwrap_or_default();
            if !accepted.contains(name) {
                return Err(Rejected::NotAccepted {
                    state: instance.state.clone(),
                    event: name.clone(),
                    accepted,
                });
            }
            m.signalled(name, data)?;
        }
        Event::Timer {
            kind: TimerKind::Wait,
            key,
            at,
        } => {
            let timer = Timer {
                instance: instance.id.clone(),
                kind: TimerKind::Wait,
                key: key.clone(),
                at: *at,
            };
            let waits = instance.waiting.as_ref().is_some_and(|w| &w.key == key);
            if !waits || !instance.timers.contains(&timer) {
                return Err(Rejected::Stale { key: key.clone() });
            }
            m.unarm(&timer);
            m.wait_over();
        }
        Event::Timer { kind, key, at } => {
            let timer = Timer {
                instance: instance.id.clone(),
                kind: *kind,
                key: key.clone(),
                at: *at,
            };
            let step = m.step_for(key)?;
            if !m.inst.timers.contains(&timer) {
                return Err(Rejected::Stale { key: key.clone() });
            }
            m.unarm(&timer);
            m.timer_fired(step, *kind);
        }
        Event::StepDone { key, output } => {
            let step = m.waiting_step(key)?;
            m.step_done(step, output);
        }
        Event::StepFailed {
            key,
            failure,
            heartbeat,
        } => {
            let step = m.waiting_step(key)?;
            m.attempt_failed(step, failure.clone(), heartbeat.clone());
        }
        Event::StepPending { key, token } => {
            let step = m.step_for(key)?;
            if step.phase != Phase::Invoking {
                return Err(Rejected::Stale { key: key.clone() });
            }
            m.pending(step, token);
        }
        Event::Heartbeat { key, details } => {
            let step = m.step_for(key)?;
            if !matches!(step.phase, Phase::Pending { .. }) {
                return Err(Rejected::Stale { key: key.clone() });
            }
            m.heartbeat(step, details);
        }
    }
    m.drive();
    Ok(m.finish())
}

struct Machine<'p> {
    process: &'p Process,
    defaults: &'p dyn ActionDefaults,
    inst: Instance,
    now: Millis,
    records: Vec<Record>,
    commands: Vec<Command>,
    settled: Vec<String>,
    /// The state to enter next: transitions set it, `drive` follows it.
    next: Option<String>,
    chain: usize,
}

impl<'p> Machine<'p> {
    fn new(
        process: &'p Process,
        defaults: &'p dyn ActionDefaults,
        mut inst: Instance,
        now: Millis,
    ) -> Self {
        inst.updated_at = now;
        Machine {
            process,
            defaults,
            inst,
            now,
            records: Vec::new(),
            commands: Vec::new(),
            settled: Vec::new(),
            next: None,
            chain: 0,
        }
    }

    fn finish(self) -> Applied {
        Applied {
            instance: self.inst,
            records: self.records,
            commands: self.commands,
            settled: self.settled,
        }
    }

    fn record(&mut self, kind: RecordKind) {
        self.records.push(Record {
            seq: self.inst.seq,
            at: self.now,
            branch: None,
            bindings: None,
            kind,
        });
        self.inst.seq += 1;
    }

    // ---- finding the step an event is about -------------------------------

    fn step_for(&self, key: &str) -> Result<ActiveStep, Rejected> {
        self.inst
            .step
            .clone()
            .filter(|s| s.key == key)
            .ok_or_else(|| Rejected::Stale {
                key: key.to_owned(),
            })
    }

    /// The step, if it is waiting for an outcome (invoking or pending).
    fn waiting_step(&self, key: &str) -> Result<ActiveStep, Rejected> {
        let step = self.step_for(key)?;
        match step.phase {
            Phase::Invoking | Phase::Pending { .. } => Ok(step),
            Phase::Backoff { .. } => Err(Rejected::Stale {
                key: key.to_owned(),
            }),
        }
    }

    // ---- timers and tokens ----------------------------------------------------

    fn arm(&mut self, kind: TimerKind, key: &str, at: Millis) {
        let t = Timer {
            instance: self.inst.id.clone(),
            kind,
            key: key.to_owned(),
            at,
        };
        self.inst.timers.push(t.clone());
        self.commands.push(Command::ArmTimer(t));
    }

    fn unarm(&mut self, timer: &Timer) {
        self.inst.timers.retain(|t| t != timer);
        self.commands.push(Command::CancelTimer(timer.clone()));
    }

    /// Cancels this step's timers of the given kinds (all when `kinds` is empty).
    fn unarm_step(&mut self, key: &str, kinds: &[TimerKind]) {
        let gone: Vec<Timer> = self
            .inst
            .timers
            .iter()
            .filter(|t| t.key == key && (kinds.is_empty() || kinds.contains(&t.kind)))
            .cloned()
            .collect();
        for t in gone {
            self.unarm(&t);
        }
    }

    /// Ends whatever the current attempt is waiting on: the invocation is
    /// settled, a token closed, attempt timers cancelled.
    fn end_attempt(&mut self, step: &ActiveStep) {
        match &step.phase {
            Phase::Invoking => self.settled.push(step.key.clone()),
            Phase::Pending { token } => {
                self.commands.push(Command::CloseToken {
                    token: token.clone(),
                    key: step.key.clone(),
                });
            }
            Phase::Backoff { .. } => {}
        }
        self.unarm_step(
            &step.key,
            &[TimerKind::Timeout, TimerKind::Heartbeat, TimerKind::Retry],
        );
    }

    /// Ends the step for good.
    fn end_step(&mut self, step: &ActiveStep) {
        self.end_attempt(step);
        self.unarm_step(&step.key, &[]);
        self.inst.step = None;
    }

    // ---- entering states ------------------------------------------------------

    /// Enters states until one waits for something or ends.
    fn drive(&mut self) {
        while let Some(name) = self.next.take() {
            self.chain += 1;
            if self.chain > MAX_CHAIN {
                self.inst.state = name;
                let f = Failure::new(
                    "mapping",
                    format!(
                        "stopped after {MAX_CHAIN} transitions that never waited for an action"
                    ),
                );
                return self.park(f, ParkedOn::Enter);
            }
            self.enter(&name);
        }
    }

    fn visit(&mut self, name: &str) -> u32 {
        let v = self.inst.visits.entry(name.to_owned()).or_insert(0);
        *v += 1;
        *v
    }

    fn policy(&self, own: Option<&RetryPolicy>, action: &str) -> RetryPolicy {
        own.or_else(|| self.defaults.retry(action))
            .cloned()
            .unwrap_or_default()
    }

    /// Enters a state and does what entering it means.
    fn enter(&mut self, name: &str) {
        self.inst.state = name.to_owned();
        self.inst.step = None;
        self.inst.waiting = None;
        self.inst.fan = None;
        let Some(state) = self.process.state(name) else {
            // Validation makes this impossible for a process's own states;
            // it can only come from a stored instance and a changed process.
            let f = Failure::new("mapping", format!("the process has no state '{name}'"));
            return self.park(f, ParkedOn::Enter);
        };
        match &state.kind {
            StateKind::Task(task) => {
                let visit = self.visit(name);
                let key = format!("{}/{name}/{visit}", self.inst.id);
                let input = match &task.input {
                    None => Ok(self.inst.data.clone()),
                    Some(e) => e.eval(&self.inst.data),
                };
                let mut step = ActiveStep {
                    state: name.to_owned(),
                    action: task.action.clone(),
                    key,
                    attempt: 1,
                    tries: 1,
                    input: Value::Null,
                    started_at: self.now,
                    attempt_started_at: self.now,
                    deadline_at: task.deadline.map(|d| self.now.plus(d)),
                    retry: self.policy(task.retry.as_ref(), &task.action),
                    timeout: task.timeout.or_else(|| self.defaults.timeout(&task.action)),
                    heartbeat: task.heartbeat,
                    last_heartbeat: None,
                    phase: Phase::Invoking,
                    undoes: None,
                };
                match input {
                    Ok(input) => {
                        step.input = input;
                        self.inst.status = Status::Running;
                        if let Some(at) = step.deadline_at {
                            self.arm(TimerKind::Deadline, &step.key.clone(), at);
                        }
                        self.invoke(&step);
                        self.inst.step = Some(step);
                    }
                    Err(e) => {
                        let f = Failure::new("mapping", format!("input of '{name}': {e}"));
                        self.route_failure(&step, f, ParkedOn::Enter);
                    }
                }
            }
            StateKind::Succeed { output } => {
                let out = match output {
                    None => Ok(self.inst.data.clone()),
                    Some(e) => e.eval(&self.inst.data),
                };
                match out {
                    Ok(out) => {
                        self.inst.status = Status::Succeeded;
                        self.inst.output = Some(out.clone());
                        self.record(RecordKind::Succeeded {
                            state: name.to_owned(),
                            output: out,
                        });
                    }
                    Err(e) => self.park(
                        Failure::new("mapping", format!("output of '{name}': {e}")),
                        ParkedOn::Enter,
                    ),
                }
            }
            StateKind::Fail { error, cause } => {
                let err = self.fail_error(name, error.as_deref(), cause.as_ref());
                self.inst.status = Status::Failed;
                self.inst.error = Some(err.clone());
                self.record(RecordKind::Failed {
                    state: name.to_owned(),
                    error: err,
                });
            }
            StateKind::Compensate { then } => {
                self.visit(name);
                self.inst.status = Status::Running;
                self.inst.compensating = Some(Some(then.clone()));
                self.next_undo();
            }
            StateKind::Wait(wait) => {
                let visit = self.visit(name);
                let key = format!("{}/{name}/{visit}", self.inst.id);
                let until = match &wait.timer {
                    None => Ok(wait.timeout.map(|t| self.now.plus(t))),
                    Some(WaitTimer::For(d)) => Ok(Some(self.now.plus(*d))),
                    Some(WaitTimer::Until(e)) => match e.eval(&self.inst.data) {
                        Ok(Value::String(s)) => Millis::parse_rfc3339(&s).map(Some),
                        Ok(other) => Err(format!(
                            "`until` gave {other}, not an RFC 3339 time as a string"
                        )),
                        Err(e) => Err(e),
                    },
                };
                let until = match until {
                    Ok(u) => u,
                    Err(e) => {
                        let f = Failure::new("mapping", format!("the wait of '{name}': {e}"));
                        return self.route_state_failure(name, &key, self.now, f, ParkedOn::Enter);
                    }
                };
                self.inst.status = Status::Waiting;
                self.record(RecordKind::Waiting {
                    state: name.to_owned(),
                    events: wait.events.clone(),
                    until,
                });
                self.inst.waiting = Some(Waiting {
                    key: key.clone(),
                    events: wait.events.clone(),
                    since: self.now,
                    until,
                });
                match until {
                    // A time already past fires at once, without a timer.
                    Some(at) if at <= self.now => self.wait_over(),
                    Some(at) => self.arm(TimerKind::Wait, &key, at),
                    None => {}
                }
            }
            StateKind::Parallel(p) => {
                let slots = p
                    .branches
                    .iter()
                    .map(|(b, _)| Slot {
                        name: b.clone(),
                        input: self.inst.data.clone(),
                        inst: None,
                        outcome: None,
                    })
                    .collect();
                self.enter_fan(name, slots);
            }
            StateKind::Map(m) => match m.items.eval(&self.inst.data) {
                Ok(Value::Array(items)) => {
                    let slots = items
                        .into_iter()
                        .enumerate()
                        .map(|(i, item)| Slot {
                            name: i.to_string(),
                            input: serde_json::json!({ "item": item, "index": i }),
                            inst: None,
                            outcome: None,
                        })
                        .collect();
                    self.enter_fan(name, slots);
                }
                other => {
                    let why = match other {
                        Ok(v) => format!("`items` gave {v}, not an array"),
                        Err(e) => e,
                    };
                    let visit = self.visit(name);
                    let key = format!("{}/{name}/{visit}", self.inst.id);
                    let f = Failure::new("mapping", format!("the items of '{name}': {why}"));
                    self.route_state_failure(name, &key, self.now, f, ParkedOn::Enter);
                }
            },
        }
    }

    // ---- parallel and map ---------------------------------------------------------

    fn enter_fan(&mut self, name: &str, slots: Vec<Slot>) {
        let visit = self.visit(name);
        let key = format!("{}/{name}/{visit}", self.inst.id);
        self.inst.status = Status::Running;
        self.inst.fan = Some(Box::new(Fan {
            key,
            since: self.now,
            slots,
            failed: 0,
        }));
        self.fan_progress();
    }

    /// The machine slot `i` of the current fan runs.
    fn branch_process(&self, i: usize) -> Option<Arc<Process>> {
        match self.process.state(&self.inst.state).map(|s| &s.kind) {
            Some(StateKind::Parallel(p)) => p.branches.get(i).map(|(_, b)| b.clone()),
            Some(StateKind::Map(m)) => Some(m.branch.clone()),
            _ => None,
        }
    }

    /// Takes what a branch's interpreter produced into this instance: its
    /// records join this history (marked with the branch), its commands are
    /// this instance's. Returns the branch as it now is.
    fn lift(&mut self, slot: &str, applied: Applied) -> Instance {
        let parent = self.inst.id.clone();
        for r in applied.records {
            let branch = Some(match r.branch {
                Some(inner) => format!("{slot}/{inner}"),
                None => slot.to_owned(),
            });
            self.records.push(Record {
                seq: self.inst.seq,
                at: r.at,
                branch,
                bindings: r.bindings,
                kind: r.kind,
            });
            self.inst.seq += 1;
        }
        for c in applied.commands {
            self.commands.push(match c {
                Command::Invoke(mut i) => {
                    i.instance = parent.clone();
                    i.process = self.inst.process.clone();
                    i.version = self.inst.version;
                    Command::Invoke(i)
                }
                Command::ArmTimer(mut t) => {
                    t.instance = parent.clone();
                    Command::ArmTimer(t)
                }
                Command::CancelTimer(mut t) => {
                    t.instance = parent.clone();
                    Command::CancelTimer(t)
                }
                other => other,
            });
        }
        self.settled.extend(applied.settled);
        applied.instance
    }

    fn start_slot(&mut self, i: usize) {
        let Some(branch) = self.branch_process(i) else {
            return;
        };
        let Some((id, name, input)) = self.inst.fan.as_ref().and_then(|f| {
            let s = f.slots.get(i)?;
            let id = InstanceId(format!("{}/{}", f.key, s.name));
            Some((id, s.name.clone(), s.input.clone()))
        }) else {
            return;
        };
        let applied = start(&branch, self.defaults, id, input, self.now);
        let sub = self.lift(&name, applied);
        if let Some(slot) = self.inst.fan.as_mut().and_then(|f| f.slots.get_mut(i)) {
            slot.inst = Some(sub);
        }
    }

    /// An event for a step inside a branch.
    fn fan_event(&mut self, event: &Event) -> Result<(), Rejected> {
        let key = event.key().unwrap_or_default();
        let stale = || Rejected::Stale {
            key: key.to_owned(),
        };
        let fan = self.inst.fan.as_ref().ok_or_else(stale)?;
        let i = fan
            .slots
            .iter()
            .position(|s| {
                s.outcome.is_none()
                    && s.inst.is_some()
                    && key.starts_with(&format!("{}/{}/", fan.key, s.name))
            })
            .ok_or_else(stale)?;
        let (name, sub) = (fan.slots[i].name.clone(), fan.slots[i].inst.clone());
        let (branch, sub) = self.branch_process(i).zip(sub).ok_or_else(stale)?;
        let applied = apply(&branch, self.defaults, &sub, event, self.now)?;
        let sub = self.lift(&name, applied);
        if let Some(slot) = self.inst.fan.as_mut().and_then(|f| f.slots.get_mut(i)) {
            slot.inst = Some(sub);
        }
        self.fan_progress();
        Ok(())
    }

    /// Notes branches that ended; fails the fan when too many failed,
    /// starts waiting items while there is room, joins when all ended.
    fn fan_progress(&mut self) {
        let (limit, tolerated) = match self.process.state(&self.inst.state).map(|s| &s.kind) {
            Some(StateKind::Parallel(_)) => (0, Tolerance::Count(0)),
            Some(StateKind::Map(m)) => (m.max_concurrency, m.tolerated),
            _ => return,
        };
        loop {
            let Some(fan) = self.inst.fan.as_mut() else {
                return;
            };
            let mut first_failure = None;
            for slot in fan.slots.iter_mut().filter(|s| s.outcome.is_none()) {
                let Some(sub) = &slot.inst else { continue };
                let outcome = match sub.status {
                    Status::Succeeded => Ok(sub.output.clone().unwrap_or(Value::Null)),
                    Status::Failed | Status::Cancelled | Status::Parked => {
                        Err(sub.error.clone().unwrap_or_else(|| InstanceError {
                            state: sub.state.clone(),
                            kind: "failed".into(),
                            message: "the branch ended without succeeding".into(),
                        }))
                    }
                    Status::Running | Status::Waiting => continue,
                };
                if let Err(e) = &outcome {
                    fan.failed += 1;
                    first_failure.get_or_insert_with(|| (slot.name.clone(), e.clone()));
                }
                slot.outcome = Some(outcome);
            }
            if let Some((name, err)) = first_failure
                && tolerated.exceeded(fan.failed, fan.slots.len())
            {
                return self.fail_fan(&name, err);
            }
            let running = fan
                .slots
                .iter()
                .filter(|s| s.inst.is_some() && s.outcome.is_none())
                .count();
            let room = if limit == 0 {
                usize::MAX
            } else {
                limit.saturating_sub(running)
            };
            let next: Vec<usize> = fan
                .slots
                .iter()
                .enumerate()
                .filter(|(_, s)| s.inst.is_none())
                .map(|(i, _)| i)
                .take(room)
                .collect();
            if next.is_empty() {
                if fan.slots.iter().all(|s| s.outcome.is_some()) {
                    self.join_fan();
                }
                return;
            }
            for i in next {
                self.start_slot(i);
            }
        }
    }

    fn join_fan(&mut self) {
        let Some(fan) = self.inst.fan.take() else {
            return;
        };
        let state = self.inst.state.clone();
        let (is_map, output) = match self.process.state(&state).map(|s| &s.kind) {
            Some(StateKind::Map(m)) => (true, m.output.clone()),
            Some(StateKind::Parallel(p)) => (false, p.output.clone()),
            _ => (false, None),
        };
        let value = |s: &Slot| match &s.outcome {
            Some(Ok(v)) => v.clone(),
            _ => Value::Null,
        };
        let result = if is_map {
            Value::Array(fan.slots.iter().map(value).collect())
        } else {
            Value::Object(
                fan.slots
                    .iter()
                    .map(|s| (s.name.clone(), value(s)))
                    .collect(),
            )
        };
        self.merge_undo(&fan);
        if let Some(path) = output {
            match path.set(&self.inst.data, &result) {
                Ok(data) => self.inst.data = data,
                Err(e) => {
                    let f = Failure::new("mapping", format!("output of '{state}': {e}"));
                    return self.route_state_failure(
                        &state,
                        &fan.key,
                        self.now,
                        f,
                        ParkedOn::Enter,
                    );
                }
            }
        }
        self.take(
            "done",
            Some(&fan.key),
            &state,
            fan.since,
            Some(result),
            None,
        );
    }

    /// A branch failed beyond what is tolerated: stop the others, keep what
    /// they completed for compensation, and route the failure.
    fn fail_fan(&mut self, name: &str, err: InstanceError) {
        let key = self
            .inst
            .fan
            .as_ref()
            .map(|f| f.key.clone())
            .unwrap_or_default();
        self.stop_fan();
        let state = self.inst.state.clone();
        let f = Failure::new(
            err.kind,
            format!("branch '{name}' failed in '{}': {}", err.state, err.message),
        );
        self.route_state_failure(&state, &key, self.now, f, ParkedOn::Enter);
    }

    /// Cancels every branch still running; their completed compensable
    /// steps join this instance's.
    fn stop_fan(&mut self) {
        let Some(mut fan) = self.inst.fan.take() else {
            return;
        };
        for i in 0..fan.slots.len() {
            if fan.slots[i].outcome.is_some() {
                continue;
            }
            let Some(sub) = fan.slots[i].inst.clone() else {
                continue;
            };
            let Some(branch) = self.branch_process(i) else {
                continue;
            };
            let cancel = Event::Cancel { compensate: false };
            if let Ok(a) = apply(&branch, self.defaults, &sub, &cancel, self.now) {
                let name = fan.slots[i].name.clone();
                fan.slots[i].inst = Some(self.lift(&name, a));
            }
        }
        self.merge_undo(&fan);
    }

    /// Completed compensable steps of every branch, with how to undo each.
    fn merge_undo(&mut self, fan: &Fan) {
        for (i, slot) in fan.slots.iter().enumerate() {
            let (Some(sub), Some(branch)) = (&slot.inst, self.branch_process(i)) else {
                continue;
            };
            for c in &sub.undo {
                let undo = c.undo.clone().or_else(|| {
                    let Some(StateKind::Task(t)) = branch.state(&c.state).map(|s| &s.kind) else {
                        return None;
                    };
                    let comp = t.compensate.as_ref()?;
                    let input = match &comp.input {
                        None => c.result.clone(),
                        Some(e) => e.eval(&sub.data).unwrap_or_else(|_| c.result.clone()),
                    };
                    Some(UndoBy {
                        action: comp.action.clone(),
                        input,
                        retry: comp.retry.clone(),
                    })
                });
                if let Some(undo) = undo {
                    self.inst.undo.push(Compensable {
                        state: format!("{}/{}", slot.name, c.state),
                        key: c.key.clone(),
                        result: c.result.clone(),
                        undo: Some(undo),
                    });
                }
            }
        }
    }

    /// The wait state's timer fired: `timeout` for a wait for signals,
    /// `elapsed` for a `wait:` timer.
    fn wait_over(&mut self) {
        let Some(w) = self.inst.waiting.take() else {
            return;
        };
        let event = match self.process.state(&self.inst.state).map(|s| &s.kind) {
            Some(StateKind::Wait(wait)) if wait.timer.is_some() => "elapsed",
            _ => "timeout",
        };
        self.unarm_step(&w.key, &[]);
        self.inst.status = Status::Running;
        let state = self.inst.state.clone();
        self.take(event, Some(&w.key), &state, w.since, None, None);
    }

    /// A signal the wait state accepts: store its payload, move on.
    fn signalled(&mut self, name: &str, payload: &Value) -> Result<(), Rejected> {
        let Some(w) = self.inst.waiting.take() else {
            return Ok(());
        };
        self.unarm_step(&w.key, &[]);
        self.inst.status = Status::Running;
        let state = self.inst.state.clone();
        let output = match self.process.state(&state).map(|s| &s.kind) {
            Some(StateKind::Wait(wait)) => wait.output.clone(),
            _ => None,
        };
        let merged = match (&output, payload) {
            (Some(path), _) => path.set(&self.inst.data, payload),
            (None, Value::Object(fields)) => {
                let mut data = self.inst.data.clone();
                if let Value::Object(map) = &mut data {
                    map.extend(fields.iter().map(|(k, v)| (k.clone(), v.clone())));
                }
                Ok(data)
            }
            (None, Value::Null) => Ok(self.inst.data.clone()),
            (None, other) => Err(format!(
                "the payload {other} is not an object, and the state has no `output` path to store it at"
            )),
        };
        self.inst.data = merged.map_err(|why| Rejected::BadPayload {
            event: name.to_owned(),
            why,
        })?;
        self.take(
            name,
            Some(&w.key),
            &state,
            w.since,
            Some(payload.clone()),
            None,
        );
        Ok(())
    }

    fn fail_error(
        &self,
        state: &str,
        error: Option<&str>,
        cause: Option<&crate::Expr>,
    ) -> InstanceError {
        let last = self.inst.data.get("error");
        let message = match cause {
            Some(e) => match e.eval(&self.inst.data) {
                Ok(Value::String(s)) => s,
                Ok(other) => other.to_string(),
                Err(e) => format!("(cause could not be computed: {e})"),
            },
            None => last
                .and_then(|e| e.get("message"))
                .and_then(Value::as_str)
                .unwrap_or("the process reached a fail state")
                .to_owned(),
        };
        let kind = error.map(str::to_owned).unwrap_or_else(|| {
            last.and_then(|e| e.get("kind"))
                .and_then(Value::as_str)
                .unwrap_or("failed")
                .to_owned()
        });
        InstanceError {
            state: state.to_owned(),
            kind,
            message,
        }
    }

    fn invoke(&mut self, step: &ActiveStep) {
        self.commands.push(Command::Invoke(Invoke {
            instance: self.inst.id.clone(),
            process: self.inst.process.clone(),
            version: self.inst.version,
            state: step.state.clone(),
            action: step.action.clone(),
            key: step.key.clone(),
            attempt: step.attempt,
            input: step.input.clone(),
            last_heartbeat: step.last_heartbeat.clone(),
            timeout: step.timeout,
            heartbeat: step.heartbeat,
        }));
    }

    // ---- outcomes ---------------------------------------------------------------

    fn step_done(&mut self, step: ActiveStep, result: &Value) {
        self.end_step(&step);
        if let Some(undone) = &step.undoes {
            return self.undone(&step, undone, result);
        }
        let Some(StateKind::Task(task)) = self.process.state(&step.state).map(|s| &s.kind) else {
            return self.park(
                Failure::new("mapping", format!("'{}' is not a task state", step.state)),
                ParkedOn::Enter,
            );
        };
        if let Some(path) = &task.output {
            match path.set(&self.inst.data, result) {
                Ok(data) => self.inst.data = data,
                Err(e) => {
                    let f = Failure::new("mapping", format!("output of '{}': {e}", step.state));
                    return self.route_failure(&step, f, ParkedOn::Step);
                }
            }
        }
        if task.compensate.is_some() {
            self.inst.undo.push(Compensable {
                state: step.state.clone(),
                key: step.key.clone(),
                result: result.clone(),
                undo: None,
            });
        }
        self.take(
            "done",
            Some(&step.key),
            &step.state,
            step.started_at,
            Some(result.clone()),
            None,
        );
    }

    /// An attempt failed: retry it if the policy allows and time is left,
    /// else the step fails.
    fn attempt_failed(
        &mut self,
        mut step: ActiveStep,
        failure: Failure,
        heartbeat: Option<String>,
    ) {
        self.end_attempt(&step);
        if heartbeat.is_some() {
            step.last_heartbeat = heartbeat.clone();
        }
        let retry_at = self.now.plus(step.retry.delay(step.tries, seed(&step.key)));
        let in_time = step.deadline_at.is_none_or(|d| retry_at < d);
        if step.retry.retries(&failure.kind) && step.tries < step.retry.max_attempts && in_time {
            self.record(RecordKind::AttemptFailed {
                state: step.state.clone(),
                action: step.action.clone(),
                attempt: step.attempt,
                failure,
                retry_at,
                heartbeat,
            });
            step.phase = Phase::Backoff { until: retry_at };
            self.arm(TimerKind::Retry, &step.key.clone(), retry_at);
            self.inst.step = Some(step);
            return;
        }
        self.unarm_step(&step.key, &[]);
        self.inst.step = None;
        if let Some(undone) = &step.undoes {
            // A compensation that still fails waits for an operator.
            self.inst.step = Some(ActiveStep {
                phase: Phase::Backoff { until: self.now },
                ..step.clone()
            });
            let f = Failure::new(
                failure.kind,
                format!(
                    "undoing '{undone}' with {} failed: {}",
                    step.action, failure.message
                ),
            );
            return self.park(f, ParkedOn::Step);
        }
        self.route_failure(&step, failure, ParkedOn::Step);
    }

    fn pending(&mut self, mut step: ActiveStep, token: &str) {
        // The invocation is over; the token now stands for the attempt.
        self.settled.push(step.key.clone());
        step.phase = Phase::Pending {
            token: token.to_owned(),
        };
        self.commands.push(Command::OpenToken {
            token: token.to_owned(),
            key: step.key.clone(),
        });
        if let Some(t) = step.timeout {
            self.arm(
                TimerKind::Timeout,
                &step.key.clone(),
                step.attempt_started_at.plus(t),
            );
        }
        if let Some(h) = step.heartbeat {
            self.arm(TimerKind::Heartbeat, &step.key.clone(), self.now.plus(h));
        }
        self.record(RecordKind::Pending {
            state: step.state.clone(),
            token: token.to_owned(),
        });
        self.inst.step = Some(step);
    }

    fn heartbeat(&mut self, mut step: ActiveStep, details: &str) {
        step.last_heartbeat = Some(details.to_owned());
        if let Some(h) = step.heartbeat {
            self.unarm_step(&step.key, &[TimerKind::Heartbeat]);
            self.arm(TimerKind::Heartbeat, &step.key.clone(), self.now.plus(h));
        }
        self.inst.step = Some(step);
    }

    fn timer_fired(&mut self, mut step: ActiveStep, kind: TimerKind) {
        match kind {
            TimerKind::Retry => {
                step.attempt += 1;
                step.tries += 1;
                step.attempt_started_at = self.now;
                step.phase = Phase::Invoking;
                self.invoke(&step);
                self.inst.step = Some(step);
            }
            TimerKind::Timeout => {
                let within = step.timeout.unwrap_or_default();
                let f = Failure::new("timeout", format!("no outcome within {within}"));
                self.attempt_failed(step, f, None);
            }
            TimerKind::Heartbeat => {
                let every = step.heartbeat.unwrap_or_default();
                let f = Failure::new("heartbeat", format!("no heartbeat for {every}"));
                let last = step.last_heartbeat.clone();
                self.attempt_failed(step, f, last);
            }
            // Handled before a step is looked for.
            TimerKind::Wait => self.inst.step = Some(step),
            TimerKind::Deadline => {
                // Out of time for good: no retry, whatever is in flight is dropped.
                self.end_step(&step);
                let at = step
                    .deadline_at
                    .map(|d| d.since(step.started_at))
                    .unwrap_or_default();
                let f = Failure::new(
                    "timeout",
                    format!("the step did not finish within its deadline of {at}"),
                );
                if step.undoes.is_some() {
                    self.inst.step = Some(ActiveStep {
                        phase: Phase::Backoff { until: self.now },
                        ..step
                    });
                    return self.park(f, ParkedOn::Step);
                }
                self.route_failure(&step, f, ParkedOn::Step);
            }
        }
    }

    /// Routes a step's final failure as `error.<kind>`, after storing it at
    /// `.error`; parks when nothing routes it.
    fn route_failure(&mut self, step: &ActiveStep, failure: Failure, parked: ParkedOn) {
        let event = format!("error.{}", failure.kind);
        if parked == ParkedOn::Step && !self.has_route(&step.state, &event) {
            // Keep the step so a redrive can invoke it again.
            self.inst.step = Some(ActiveStep {
                phase: Phase::Backoff { until: self.now },
                ..step.clone()
            });
        }
        self.route_state_failure(&step.state, &step.key, step.started_at, failure, parked);
    }

    /// Routes the failure of what `state` was doing (its step, its wait,
    /// its branches) as `error.<kind>`, after storing it at `.error`; parks
    /// when nothing routes it.
    fn route_state_failure(
        &mut self,
        state: &str,
        key: &str,
        since: Millis,
        failure: Failure,
        parked: ParkedOn,
    ) {
        if let Value::Object(map) = &mut self.inst.data {
            map.insert(
                "error".to_owned(),
                serde_json::json!({
                    "state": state,
                    "kind": failure.kind,
                    "message": failure.message,
                }),
            );
        }
        let event = format!("error.{}", failure.kind);
        if !self.has_route(state, &event) {
            return self.park(failure, parked);
        }
        self.take(&event, Some(key), state, since, None, Some(failure));
    }

    fn has_route(&self, state: &str, event: &str) -> bool {
        self.process
            .state(state)
            .and_then(|s| s.route(event))
            .is_some()
    }

    /// Follows the transition `event` leads to from the step's state, or
    /// parks when there is none.
    fn take(
        &mut self,
        event: &str,
        key: Option<&str>,
        from: &str,
        started_at: Millis,
        result: Option<Value>,
        failure: Option<Failure>,
    ) {
        let from = from.to_owned();
        let arms: &[Arm] = self
            .process
            .state(&from)
            .and_then(|s| s.route(event))
            .map(|t| t.arms.as_slice())
            .unwrap_or(&[]);
        let to = match choose(arms, &self.inst.data) {
            Ok(Some(to)) => to,
            Ok(None) => {
                let f = failure.clone().unwrap_or_else(|| {
                    Failure::new(
                        "mapping",
                        format!("no transition of '{from}' on '{event}' matched the data"),
                    )
                });
                let on = ParkedOn::Route {
                    event: event.to_owned(),
                    result,
                    failure,
                };
                return self.park(f, on);
            }
            Err(e) => {
                let f = Failure::new("mapping", format!("a guard of '{from}' on '{event}': {e}"));
                let on = ParkedOn::Route {
                    event: event.to_owned(),
                    result,
                    failure,
                };
                return self.park(f, on);
            }
        };
        self.record(RecordKind::Transition {
            from,
            event: event.to_owned(),
            to: to.clone(),
            took: self.now.since(started_at),
            key: key.map(str::to_owned),
            result,
            failure,
        });
        self.next = Some(to);
    }

    fn park(&mut self, failure: Failure, on: ParkedOn) {
        let err = InstanceError {
            state: self.inst.state.clone(),
            kind: failure.kind,
            message: failure.message,
        };
        // A parked instance keeps no timers: nothing moves it but an operator.
        let all: Vec<Timer> = self.inst.timers.clone();
        for t in &all {
            self.unarm(t);
        }
        self.inst.status = Status::Parked;
        self.inst.error = Some(err.clone());
        self.inst.parked = Some(on);
        self.record(RecordKind::Parked {
            state: self.inst.state.clone(),
            error: err,
        });
    }

    // ---- compensation -------------------------------------------------------------

    /// Starts undoing the newest completed compensable step, or moves on when
    /// there is none left.
    fn next_undo(&mut self) {
        let Some(c) = self.inst.undo.last().cloned() else {
            match self.inst.compensating.take() {
                Some(Some(then)) => {
                    self.record(RecordKind::Transition {
                        from: self.inst.state.clone(),
                        event: "compensated".into(),
                        to: then.clone(),
                        took: Span::ZERO,
                        key: None,
                        result: None,
                        failure: None,
                    });
                    self.next = Some(then);
                }
                _ => self.cancelled(),
            }
            return;
        };
        let comp = match (&c.undo, self.process.state(&c.state).map(|s| &s.kind)) {
            (Some(u), _) => Some((u.action.clone(), Ok(u.input.clone()), u.retry.clone())),
            (None, Some(StateKind::Task(t))) => t.compensate.as_ref().map(|comp| {
                let input = match &comp.input {
                    None => Ok(c.result.clone()),
                    Some(e) => e.eval(&self.inst.data),
                };
                (comp.action.clone(), input, comp.retry.clone())
            }),
            _ => None,
        };
        let Some((action, input, retry)) = comp else {
            // The step was compensable when it completed; only a changed
            // process can make this so. Drop it rather than stall.
            self.inst.undo.pop();
            return self.next_undo();
        };
        let input = match input {
            Ok(v) => v,
            Err(e) => {
                let f = Failure::new("mapping", format!("input for undoing '{}': {e}", c.state));
                return self.park(f, ParkedOn::Undo);
            }
        };
        let step = ActiveStep {
            state: self.inst.state.clone(),
            action: action.clone(),
            key: format!("{}/undo", c.key),
            attempt: 1,
            tries: 1,
            input,
            started_at: self.now,
            attempt_started_at: self.now,
            deadline_at: None,
            retry: self.policy(retry.as_ref(), &action),
            timeout: self.defaults.timeout(&action),
            heartbeat: None,
            last_heartbeat: None,
            phase: Phase::Invoking,
            undoes: Some(c.state.clone()),
        };
        self.invoke(&step);
        self.inst.step = Some(step);
    }

    fn undone(&mut self, step: &ActiveStep, undone: &str, result: &Value) {
        if let Some(i) = self.inst.undo.iter().rposition(|c| c.state == undone) {
            self.inst.undo.remove(i);
        }
        self.record(RecordKind::Compensated {
            state: self.inst.state.clone(),
            undone: undone.to_owned(),
            action: step.action.clone(),
            key: step.key.clone(),
            result: result.clone(),
        });
        self.next_undo();
    }

    // ---- operators ------------------------------------------------------------------

    fn redrive(&mut self) {
        let on = self.inst.parked.take().unwrap_or(ParkedOn::Enter);
        self.inst.status = Status::Running;
        self.inst.error = None;
        self.record(RecordKind::Redriven {
            state: self.inst.state.clone(),
        });
        match on {
            ParkedOn::Step => match self.inst.step.take() {
                Some(mut step) => {
                    step.attempt += 1;
                    step.tries = 1;
                    step.attempt_started_at = self.now;
                    step.phase = Phase::Invoking;
                    if let Some(d) = self.deadline_of(&step) {
                        step.started_at = self.now;
                        step.deadline_at = Some(self.now.plus(d));
                        self.arm(TimerKind::Deadline, &step.key.clone(), self.now.plus(d));
                    }
                    self.invoke(&step);
                    self.inst.step = Some(step);
                }
                None => self.next = Some(self.inst.state.clone()),
            },
            ParkedOn::Route {
                event,
                result,
                failure,
            } => {
                let state = self.inst.state.clone();
                self.take(&event, None, &state, self.now, result, failure);
            }
            ParkedOn::Enter => self.next = Some(self.inst.state.clone()),
            ParkedOn::Undo => self.next_undo(),
        }
    }

    fn deadline_of(&self, step: &ActiveStep) -> Option<Span> {
        if step.undoes.is_some() {
            return None;
        }
        match self.process.state(&step.state).map(|s| &s.kind) {
            Some(StateKind::Task(t)) => t.deadline,
            _ => None,
        }
    }

    fn cancel(&mut self, compensate: bool) {
        let parked = self.inst.status == Status::Parked;
        if let Some(w) = self.inst.waiting.take() {
            self.unarm_step(&w.key, &[]);
        }
        self.stop_fan();
        self.inst.parked = None;
        self.inst.error = None;
        self.inst.status = Status::Running;
        let undoing = self.inst.compensating.is_some();
        if compensate && (undoing || !self.inst.undo.is_empty()) {
            self.record(RecordKind::Cancelling {
                state: self.inst.state.clone(),
            });
            self.inst.compensating = Some(None);
            // An undo already under way carries on; otherwise start one.
            let running_undo = self
                .inst
                .step
                .as_ref()
                .is_some_and(|s| s.undoes.is_some() && !parked);
            if !running_undo {
                if let Some(step) = self.inst.step.take() {
                    self.end_step(&step);
                }
                self.next_undo();
            }
            return;
        }
        if let Some(step) = self.inst.step.take() {
            self.end_step(&step);
        }
        self.cancelled();
    }

    fn cancelled(&mut self) {
        self.inst.waiting = None;
        let all: Vec<Timer> = self.inst.timers.clone();
        for t in &all {
            self.unarm(t);
        }
        self.inst.compensating = None;
        self.inst.step = None;
        self.inst.status = Status::Cancelled;
        self.record(RecordKind::Cancelled {
            state: self.inst.state.clone(),
        });
    }
}

/// Moves an instance to another version of its process, or says why its
/// current state or data does not fit that version. The instance keeps its
/// state, data, history, completed steps and timers; from now on it follows
/// `to`.
pub fn migrate(to: &Process, instance: &Instance, now: Millis) -> Result<Applied, String> {
    if instance.status.is_finished() {
        return Err(format!("the instance has already {}", instance.status));
    }
    if to.name != instance.process {
        return Err(format!(
            "the instance runs process '{}', not '{}'",
            instance.process, to.name
        ));
    }
    if to.version == instance.version {
        return Err(format!("the instance already runs version {}", to.version));
    }
    if instance.fan.is_some() {
        return Err(format!(
            "the instance is inside the branches of '{}'; migrate it before or after them",
            instance.state
        ));
    }
    let here = &instance.state;
    let v = to.version;
    let state = to
        .state(here)
        .ok_or_else(|| format!("version {v} has no state '{here}', where the instance is"))?;
    let kind_name = |k: &StateKind| match k {
        StateKind::Task(_) => "task",
        StateKind::Succeed { .. } => "succeed",
        StateKind::Fail { .. } => "fail",
        StateKind::Compensate { .. } => "compensate",
        StateKind::Wait(_) => "wait",
        StateKind::Parallel(_) => "parallel",
        StateKind::Map(_) => "map",
    };
    let data = &instance.data;
    let evaluates = |what: &str, e: &crate::Expr| {
        e.eval(data).map(|_| ()).map_err(|err| {
            format!("the instance data does not fit version {v}: {what} fails: {err}")
        })
    };
    match (&state.kind, &instance.step, &instance.waiting) {
        (StateKind::Task(t), Some(step), _) if step.undoes.is_none() => {
            if t.action != step.action {
                return Err(format!(
                    "in version {v}, '{here}' runs '{}', but the instance is running '{}' there",
                    t.action, step.action
                ));
            }
            if let Some(e) = &t.input {
                evaluates(&format!("the input of '{here}'"), e)?;
            }
        }
        (StateKind::Compensate { .. }, _, _) => {}
        (StateKind::Wait(w), _, Some(waiting)) => {
            let _ = waiting;
            if let Some(WaitTimer::Until(e)) = &w.timer {
                evaluates(&format!("the `until` of '{here}'"), e)?;
            }
        }
        (k, _, _) => {
            let was = if instance.waiting.is_some() {
                "wait"
            } else if instance.step.as_ref().is_some_and(|s| s.undoes.is_some()) {
                "compensate"
            } else if instance.step.is_some() {
                "task"
            } else {
                "other"
            };
            if was != "other" && kind_name(k) != was {
                return Err(format!(
                    "in version {v}, '{here}' is a {} state, but the instance is in a {was} state there",
                    kind_name(k)
                ));
            }
        }
    }
    for t in &state.on {
        for arm in &t.arms {
            if let Some(g) = &arm.guard {
                g.test(data).map_err(|err| {
                    format!(
                        "the instance data does not fit version {v}: a guard of '{here}' on '{}' fails: {err}",
                        t.event
                    )
                })?;
            }
        }
    }
    for done in &instance.undo {
        let undoable = matches!(
            to.state(&done.state).map(|s| &s.kind),
            Some(StateKind::Task(t)) if t.compensate.is_some()
        );
        if !undoable {
            return Err(format!(
                "the instance completed '{}', which version {v} could not undo (no such task with `compensate`)",
                done.state
            ));
        }
    }
    let mut inst = instance.clone();
    let from_version = inst.version;
    inst.version = v;
    if let (Some(w), StateKind::Wait(wait)) = (&mut inst.waiting, &state.kind) {
        w.events = wait.events.clone();
    }
    let mut m = Machine::new(to, &crate::NoDefaults, inst, now);
    m.record(RecordKind::Migrated {
        state: here.clone(),
        from_version,
        to_version: v,
    });
    Ok(m.finish())
}

/// The first arm whose guard holds (an arm without a guard always holds).
fn choose(arms: &[Arm], data: &Value) -> Result<Option<String>, String> {
    for arm in arms {
        let holds = match &arm.guard {
            None => true,
            Some(g) => g.test(data)?,
        };
        if holds {
            return Ok(Some(arm.to.clone()));
        }
    }
    Ok(None)
}
