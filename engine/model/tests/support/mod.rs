//! One instance driven by hand through the pure interpreter: events in,
//! everything that came out kept, time moved by the test.

#![allow(dead_code)] // each test file uses part of it

use serde_json::Value;
use weft_model::interpret::{self, Applied, Rejected};
use weft_model::{
    Command, Event, Failure, Instance, InstanceId, Invoke, Millis, NoDefaults, Process, RecordKind,
    Span, Timer, TimerKind,
};

pub fn process(text: &str) -> Process {
    weft_model::parse_process("p.yaml", text).unwrap_or_else(|d| panic!("{d}"))
}

/// One instance driven by hand: events in, everything that came out kept.
pub struct Run {
    pub p: Process,
    pub inst: Instance,
    pub now: Millis,
    pub records: Vec<RecordKind>,
    pub commands: Vec<Command>,
    pub last: Option<Applied>,
}

impl Run {
    pub fn start(text: &str, input: Value) -> Run {
        Run::start_at(process(text), input, Millis(1_000_000))
    }

    /// Starts `p` at `now`.
    pub fn start_at(p: Process, input: Value, now: Millis) -> Run {
        let a = interpret::start(&p, &NoDefaults, InstanceId::new(now, 1), input, now);
        let mut run = Run {
            inst: a.instance.clone(),
            records: a.records.iter().map(|r| r.kind.clone()).collect(),
            commands: a.commands.clone(),
            last: Some(a),
            p,
            now,
        };
        run.check_seq();
        run
    }

    pub fn check_seq(&mut self) {
        assert_eq!(
            self.inst.seq as usize,
            self.records.len(),
            "history numbers are gap-free"
        );
    }

    pub fn event(&mut self, e: Event) -> Result<(), Rejected> {
        let a = interpret::apply(&self.p, &NoDefaults, &self.inst, &e, self.now)?;
        self.inst = a.instance.clone();
        self.records
            .extend(a.records.iter().map(|r| r.kind.clone()));
        self.commands.extend(a.commands.iter().cloned());
        self.last = Some(a);
        self.check_seq();
        Ok(())
    }

    pub fn key(&self) -> String {
        self.inst
            .step
            .as_ref()
            .map(|s| s.key.clone())
            .expect("a step is active")
    }

    pub fn done(&mut self, v: Value) {
        let key = self.key();
        self.event(Event::StepDone { key, output: v })
            .expect("applies");
    }

    pub fn fail(&mut self, kind: &str) {
        let key = self.key();
        let failure = Failure::new(kind, format!("simulated {kind}"));
        self.event(Event::StepFailed {
            key,
            failure,
            heartbeat: None,
        })
        .expect("applies");
    }

    pub fn advance(&mut self, ms: u64) {
        self.now = self.now.plus(Span(ms));
    }

    /// Fires the armed timer of this kind (time moves to its due time).
    pub fn fire(&mut self, kind: TimerKind) {
        let t = self
            .timer(kind)
            .unwrap_or_else(|| panic!("no {kind:?} timer armed: {:?}", self.inst.timers));
        self.now = self.now.max(t.at);
        self.event(Event::Timer {
            kind,
            key: t.key,
            at: t.at,
        })
        .expect("applies");
    }

    /// Fires the armed timer with this key (time moves to its due time).
    pub fn fire_key(&mut self, key: &str) {
        let t = self
            .inst
            .timers
            .iter()
            .find(|t| t.key == key)
            .cloned()
            .unwrap_or_else(|| panic!("no timer {key} armed: {:?}", self.inst.timers));
        self.now = self.now.max(t.at);
        self.event(Event::Timer {
            kind: t.kind,
            key: t.key,
            at: t.at,
        })
        .expect("applies");
    }

    pub fn timer(&self, kind: TimerKind) -> Option<Timer> {
        self.inst.timers.iter().find(|t| t.kind == kind).cloned()
    }

    pub fn invokes(&self) -> Vec<Invoke> {
        self.commands
            .iter()
            .filter_map(|c| match c {
                Command::Invoke(i) => Some(i.clone()),
                _ => None,
            })
            .collect()
    }

    pub fn last_commands(&self) -> Vec<Command> {
        self.last
            .as_ref()
            .map(|a| a.commands.clone())
            .unwrap_or_default()
    }

    /// Sends a signal.
    pub fn signal(&mut self, name: &str, data: Value) -> Result<(), Rejected> {
        self.event(Event::Signal {
            name: name.into(),
            data,
        })
    }

    /// The transitions so far, as `event->to`.
    pub fn path(&self) -> Vec<String> {
        self.records
            .iter()
            .filter_map(|r| match r {
                RecordKind::Transition { event, to, .. } => Some(format!("{event}->{to}")),
                _ => None,
            })
            .collect()
    }
}
