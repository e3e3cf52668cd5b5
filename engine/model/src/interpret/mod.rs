//! The interpreter: `(process, defaults, instance, event, now) -> (instance',
//! records, commands)`. A pure function — no clock, no I/O, no randomness
//! (retry jitter is seeded by the step key) — so every rule is tested in
//! microseconds and a history replays exactly.
//!
//! This file holds the entry points and the `Machine` that carries one
//! application; each file beside it handles one kind of state or event.

mod compensate;
mod enter;
mod fan;
mod migrate;
mod operator;
mod route;
mod sla;
mod step;
mod wait;

pub use migrate::{Refused, migrate};

use serde_json::Value;

use crate::bindings::ActionDefaults;
use crate::instance::{
    Command, Event, Instance, InstanceId, Phase, Record, RecordKind, Status, Timer, TimerKind,
};
use crate::process::Process;
use crate::step_key::StepKey;
use crate::time::Millis;

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
    /// Fans (by key) this event ended: the branches a store kept apart for
    /// them can go.
    pub closed_fans: Vec<String>,
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
        data: std::sync::Arc::new(input.clone()),
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
        overdue: Vec::new(),
        requests: Vec::new(),
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
    m.arm_process_sla();
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
        && StepKey::is_inside(key, &fan.key)
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
        Event::Timer {
            kind: TimerKind::Sla,
            key,
            at,
        } => m.sla_passed(key, *at)?,
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
    closed_fans: Vec<String>,
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
            closed_fans: Vec::new(),
            next: None,
            chain: 0,
        }
    }

    fn finish(mut self) -> Applied {
        self.settle_slas();
        Applied {
            instance: self.inst,
            records: self.records,
            commands: self.commands,
            settled: self.settled,
            closed_fans: self.closed_fans,
        }
    }

    fn record(&mut self, kind: RecordKind) {
        self.records.push(Record {
            seq: self.inst.seq,
            at: self.now,
            branch: None,
            bindings: None,
            plugin: None,
            kind,
        });
        self.inst.seq += 1;
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
}
