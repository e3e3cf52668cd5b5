//! The interpreter: `(process, instance, event, now) -> (instance', records,
//! commands)`. A pure function — no clock, no I/O, no randomness — so every
//! rule is tested in microseconds and a history can be replayed exactly.

use serde_json::Value;

use crate::instance::{
    ActiveStep, Command, Event, Failure, Instance, InstanceError, InstanceId, Invoke, Record,
    RecordKind, Status,
};
use crate::process::{Arm, Process, StateKind};
use crate::time::Millis;

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
    /// Outbox commands this event settles (filed under these keys).
    pub settled: Vec<String>,
}

/// Why an event does not apply to an instance. Not an error: outcomes can
/// arrive late or twice, and are then dropped.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Rejected {
    /// The instance has already ended.
    Finished(Status),
    /// The event is for a step the instance is not carrying out.
    Stale { key: String },
    /// The instance is parked; only an operator moves it on.
    Parked,
}

impl std::fmt::Display for Rejected {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Rejected::Finished(s) => write!(f, "the instance has already {s}"),
            Rejected::Stale { key } => write!(f, "no step with key '{key}' is in flight"),
            Rejected::Parked => f.write_str("the instance is parked"),
        }
    }
}

/// Creates an instance of `process` and enters its start state.
pub fn start(process: &Process, id: InstanceId, input: Value, now: Millis) -> Applied {
    let instance = Instance {
        id,
        process: process.name.clone(),
        version: process.version,
        status: Status::Running,
        state: process.start.clone(),
        data: input.clone(),
        output: None,
        error: None,
        visits: Default::default(),
        step: None,
        seq: 0,
        created_at: now,
        updated_at: now,
    };
    let mut m = Machine::new(process, instance, now);
    m.record(RecordKind::Started {
        process: process.name.clone(),
        version: process.version,
        input,
    });
    m.next = Some(process.start.clone());
    m.drive();
    m.finish(Vec::new())
}

/// Applies one event to an instance.
pub fn apply(
    process: &Process,
    instance: &Instance,
    event: &Event,
    now: Millis,
) -> Result<Applied, Rejected> {
    match instance.status {
        s if s.is_finished() => return Err(Rejected::Finished(s)),
        Status::Parked => return Err(Rejected::Parked),
        _ => {}
    }
    let key = event.key();
    let Some(step) = instance.step.clone().filter(|s| s.key == key) else {
        return Err(Rejected::Stale {
            key: key.to_owned(),
        });
    };
    let mut m = Machine::new(process, instance.clone(), now);
    match event {
        Event::StepDone { output, .. } => m.step_done(&step, output),
        Event::StepFailed { failure, .. } => m.step_failed(&step, failure.clone()),
    }
    m.drive();
    Ok(m.finish(vec![key.to_owned()]))
}

struct Machine<'p> {
    process: &'p Process,
    inst: Instance,
    now: Millis,
    records: Vec<Record>,
    commands: Vec<Command>,
    /// The state to enter next: transitions set it, `drive` follows it.
    next: Option<String>,
    chain: usize,
}

impl<'p> Machine<'p> {
    fn new(process: &'p Process, mut inst: Instance, now: Millis) -> Self {
        inst.updated_at = now;
        Machine {
            process,
            inst,
            now,
            records: Vec::new(),
            commands: Vec::new(),
            next: None,
            chain: 0,
        }
    }

    fn finish(self, settled: Vec<String>) -> Applied {
        Applied {
            instance: self.inst,
            records: self.records,
            commands: self.commands,
            settled,
        }
    }

    fn record(&mut self, kind: RecordKind) {
        self.records.push(Record {
            seq: self.inst.seq,
            at: self.now,
            kind,
        });
        self.inst.seq += 1;
    }

    /// Enters states until one waits for something (an action) or ends.
    fn drive(&mut self) {
        while let Some(name) = self.next.take() {
            self.chain += 1;
            if self.chain > MAX_CHAIN {
                self.inst.state = name;
                self.inst.step = None;
                let f = Failure::new(
                    "mapping",
                    format!(
                        "stopped after {MAX_CHAIN} transitions that never waited for an action"
                    ),
                );
                return self.park(f);
            }
            self.enter(&name);
        }
    }

    /// Enters a state and does what entering it means.
    fn enter(&mut self, name: &str) {
        self.inst.state = name.to_owned();
        self.inst.step = None;
        let Some(state) = self.process.state(name) else {
            // Validation makes this impossible for a process's own states;
            // it can only come from a stored instance and a changed process.
            let f = Failure::new("mapping", format!("the process has no state '{name}'"));
            return self.park(f);
        };
        let visit = {
            let v = self.inst.visits.entry(name.to_owned()).or_insert(0);
            *v += 1;
            *v
        };
        match &state.kind {
            StateKind::Task(task) => {
                let key = format!("{}/{name}/{visit}", self.inst.id);
                let input = match &task.input {
                    None => Ok(self.inst.data.clone()),
                    Some(e) => e.eval(&self.inst.data),
                };
                let step = ActiveStep {
                    state: name.to_owned(),
                    action: task.action.clone(),
                    key,
                    attempt: 1,
                    input: input.clone().unwrap_or(Value::Null),
                    started_at: self.now,
                    last_heartbeat: None,
                };
                match input {
                    Ok(_) => {
                        self.inst.status = Status::Running;
                        self.invoke(&step);
                        self.inst.step = Some(step);
                    }
                    Err(e) => {
                        let f = Failure::new("mapping", format!("input of '{name}': {e}"));
                        self.step_failed(&step, f);
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
                    Err(e) => {
                        self.park(Failure::new("mapping", format!("output of '{name}': {e}")))
                    }
                }
            }
            StateKind::Fail { error, cause } => {
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
                let kind = error.clone().unwrap_or_else(|| {
                    last.and_then(|e| e.get("kind"))
                        .and_then(Value::as_str)
                        .unwrap_or("failed")
                        .to_owned()
                });
                let err = InstanceError {
                    state: name.to_owned(),
                    kind,
                    message,
                };
                self.inst.status = Status::Failed;
                self.inst.error = Some(err.clone());
                self.record(RecordKind::Failed {
                    state: name.to_owned(),
                    error: err,
                });
            }
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
        }));
    }

    fn step_done(&mut self, step: &ActiveStep, result: &Value) {
        let Some(StateKind::Task(task)) = self.process.state(&step.state).map(|s| &s.kind) else {
            return self.park(Failure::new(
                "mapping",
                format!("'{}' is not a task state", step.state),
            ));
        };
        if let Some(path) = &task.output {
            match path.set(&self.inst.data, result) {
                Ok(data) => self.inst.data = data,
                Err(e) => {
                    let f = Failure::new("mapping", format!("output of '{}': {e}", step.state));
                    return self.step_failed(step, f);
                }
            }
        }
        self.take("done", step, Some(result.clone()), None);
    }

    fn step_failed(&mut self, step: &ActiveStep, failure: Failure) {
        if let Value::Object(map) = &mut self.inst.data {
            map.insert(
                "error".to_owned(),
                serde_json::json!({
                    "state": step.state,
                    "kind": failure.kind,
                    "message": failure.message,
                }),
            );
        }
        let event = format!("error.{}", failure.kind);
        self.take(&event, step, None, Some(failure));
    }

    /// Follows the transition `event` leads to from the step's state, or
    /// parks when there is none.
    fn take(
        &mut self,
        event: &str,
        step: &ActiveStep,
        result: Option<Value>,
        failure: Option<Failure>,
    ) {
        let from = step.state.clone();
        let arms: &[Arm] = self
            .process
            .state(&from)
            .and_then(|s| s.route(event))
            .map(|t| t.arms.as_slice())
            .unwrap_or(&[]);
        let target = choose(arms, &self.inst.data);
        let to = match target {
            Ok(Some(to)) => to,
            Ok(None) => {
                let f = match failure {
                    Some(f) => f,
                    None => Failure::new(
                        "mapping",
                        format!("no transition of '{from}' on '{event}' matched the data"),
                    ),
                };
                self.inst.step = Some(step.clone());
                return self.park(f);
            }
            Err(e) => {
                self.inst.step = Some(step.clone());
                return self.park(Failure::new(
                    "mapping",
                    format!("a guard of '{from}' on '{event}': {e}"),
                ));
            }
        };
        self.record(RecordKind::Transition {
            from,
            event: event.to_owned(),
            to: to.clone(),
            took: self.now.since(step.started_at),
            result,
            failure,
        });
        self.next = Some(to);
    }

    fn park(&mut self, failure: Failure) {
        let err = InstanceError {
            state: self.inst.state.clone(),
            kind: failure.kind,
            message: failure.message,
        };
        self.inst.status = Status::Parked;
        self.inst.error = Some(err.clone());
        self.record(RecordKind::Parked {
            state: self.inst.state.clone(),
            error: err,
        });
    }
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
