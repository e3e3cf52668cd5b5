//! Running a process without an engine: the pure interpreter driven on a
//! simulated clock against adapters that answer from a script (`weft
//! test`) or from a seeded fault mix (`weft simulate`). [`Drive`] does what
//! an engine does with the interpreter's commands — invokes, timers,
//! tokens — and nothing else: every rule of behaviour stays in
//! [`interpret`](crate::interpret).

pub mod cases;
pub mod record;
pub mod simulate;

use std::collections::{BTreeMap, HashMap};

use serde_json::Value;

use crate::bindings::{ActionDefaults, DEFAULT_TIMEOUT};
use crate::instance::{
    Command, Event, Failure, Instance, InstanceId, Invoke, Record, RecordKind, StepOutcome, Timer,
};
use crate::interpret;
use crate::process::Process;
use crate::time::{Millis, Span};

/// splitmix64: a small random number generator that gives the same numbers
/// everywhere for a seed, so simulations and generated tests repeat.
#[derive(Debug, Clone)]
pub struct SplitMix(pub u64);

impl SplitMix {
    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// Uniform in [0, 1).
    pub fn unit(&mut self) -> f64 {
        (self.next_u64() >> 11) as f64 / (1u64 << 53) as f64
    }

    /// Uniform in [0, n).
    pub fn below(&mut self, n: u64) -> u64 {
        self.next_u64() % n.max(1)
    }
}

/// Events one run may apply before it is stopped as a loop that never ends.
pub const MAX_EVENTS: usize = 10_000;

/// How an adapter answers one invocation, and how long it takes.
#[derive(Debug, Clone, PartialEq)]
pub struct Answer {
    pub after: Span,
    pub outcome: StepOutcome,
}

/// Where adapters' answers come from.
pub trait Adapters {
    /// The answer to `invoke`, or why the run cannot go on.
    fn answer(&mut self, invoke: &Invoke) -> Result<Answer, String>;
}

/// Something from outside the instance, at a time after the start.
#[derive(Debug, Clone, PartialEq)]
pub enum Outside {
    Signal {
        name: String,
        data: Value,
    },
    /// Completes the step waiting on `token`: done with an output, or failed.
    Complete {
        token: String,
        outcome: StepOutcome,
    },
    Cancel {
        compensate: bool,
    },
    Redrive,
}

#[derive(Debug, Clone)]
enum Due {
    Event(Event),
    Outside(Outside),
}

/// One instance run to where it rests (ended, parked, or waiting with
/// nothing more to come), with what happened on the way.
pub struct Drive<'p> {
    process: &'p Process,
    defaults: &'p dyn ActionDefaults,
    pub inst: Instance,
    pub records: Vec<Record>,
    pub started: Millis,
    pub now: Millis,
    queue: BTreeMap<(Millis, u64), Due>,
    /// Where each armed timer sits in the queue.
    timers: HashMap<Timer, (Millis, u64)>,
    /// Open completion tokens and the step key each completes.
    tokens: HashMap<String, String>,
    next: u64,
    events: usize,
    /// Things from outside that did not apply, and why.
    pub refused: Vec<String>,
}

impl<'p> Drive<'p> {
    /// Starts an instance of `process` at `now`: ids, step keys and retry
    /// jitter depend only on `now` and `seed`, so a run repeats exactly.
    pub fn start(
        process: &'p Process,
        defaults: &'p dyn ActionDefaults,
        input: Value,
        now: Millis,
        seed: u128,
        adapters: &mut dyn Adapters,
    ) -> Result<Drive<'p>, String> {
        let id = InstanceId::new(now, seed);
        let applied = interpret::start(process, defaults, id, input, now);
        let mut d = Drive {
            process,
            defaults,
            inst: applied.instance.clone(),
            records: Vec::new(),
            started: now,
            now,
            queue: BTreeMap::new(),
            timers: HashMap::new(),
            tokens: HashMap::new(),
            next: 0,
            events: 0,
            refused: Vec::new(),
        };
        d.absorb(applied, adapters)?;
        Ok(d)
    }

    /// Schedules something from outside `after` the start.
    pub fn at(&mut self, after: Span, what: Outside) {
        let at = self.started.plus(after);
        self.push(at, Due::Outside(what));
    }

    fn push(&mut self, at: Millis, due: Due) -> (Millis, u64) {
        let slot = (at, self.next);
        self.next += 1;
        self.queue.insert(slot, due);
        slot
    }

    /// Applies what is due, in time order, until the instance ends or
    /// nothing more is due. Time jumps from one due thing to the next.
    pub fn run(&mut self, adapters: &mut dyn Adapters) -> Result<(), String> {
        while !self.inst.status.is_finished() {
            let Some((slot, due)) = self.queue.pop_first() else {
                return Ok(());
            };
            self.now = self.now.max(slot.0);
            self.events += 1;
            if self.events > MAX_EVENTS {
                return Err(format!(
                    "stopped after {MAX_EVENTS} events in state '{}': a loop that never ends?",
                    self.inst.state
                ));
            }
            let (event, outside) = match due {
                Due::Event(e) => {
                    if let Event::Timer { kind, key, at } = &e {
                        self.timers.remove(&Timer {
                            instance: self.inst.id.clone(),
                            kind: *kind,
                            key: key.clone(),
                            at: *at,
                        });
                    }
                    (e, None)
                }
                Due::Outside(o) => match self.outside(&o) {
                    Ok(e) => (e, Some(o)),
                    Err(why) => {
                        self.refused.push(why);
                        continue;
                    }
                },
            };
            match interpret::apply(self.process, self.defaults, &self.inst, &event, self.now) {
                Ok(applied) => self.absorb(applied, adapters)?,
                Err(why) => {
                    if let Some(o) = outside {
                        self.refused.push(format!(
                            "at {}: {} was refused: {why}",
                            self.elapsed(),
                            describe(&o)
                        ));
                    }
                }
            }
        }
        Ok(())
    }

    /// Simulated time since the start.
    pub fn elapsed(&self) -> Span {
        self.now.since(self.started)
    }

    /// The states entered, in order, the start state first.
    pub fn path(&self) -> Vec<String> {
        let mut path = vec![self.process.start.clone()];
        for r in &self.records {
            if r.branch.is_some() {
                continue;
            }
            if let RecordKind::Transition { to, .. } = &r.kind {
                path.push(to.clone());
            }
        }
        path
    }

    /// The states whose completed steps were undone, in order.
    pub fn compensated(&self) -> Vec<String> {
        self.records
            .iter()
            .filter_map(|r| match &r.kind {
                RecordKind::Compensated { undone, .. } => Some(undone.clone()),
                _ => None,
            })
            .collect()
    }

    fn outside(&self, o: &Outside) -> Result<Event, String> {
        Ok(match o {
            Outside::Signal { name, data } => Event::Signal {
                name: name.clone(),
                data: data.clone(),
            },
            Outside::Cancel { compensate } => Event::Cancel {
                compensate: *compensate,
            },
            Outside::Redrive => Event::Redrive,
            Outside::Complete { token, outcome } => {
                let key = self.tokens.get(token).cloned().ok_or_else(|| {
                    format!(
                        "at {}: nothing waits on token '{token}' (no step answered pending with it, or it was used)",
                        self.elapsed()
                    )
                })?;
                outcome_event(key, outcome.clone())
            }
        })
    }

    /// Takes in what the interpreter produced: the new snapshot, its
    /// records, and its commands carried out as an engine would.
    fn absorb(
        &mut self,
        applied: interpret::Applied,
        adapters: &mut dyn Adapters,
    ) -> Result<(), String> {
        self.inst = applied.instance;
        self.records.extend(applied.records);
        for command in applied.commands {
            match command {
                Command::Invoke(inv) => {
                    let answer = adapters.answer(&inv)?;
                    let limit = inv.timeout.unwrap_or(DEFAULT_TIMEOUT);
                    let (after, event) = if answer.after > limit {
                        let f = Failure::new("timeout", format!("no outcome within {limit}"));
                        let event =
                            outcome_event(inv.key.clone(), StepOutcome::Failed { failure: f });
                        (limit, event)
                    } else {
                        (answer.after, outcome_event(inv.key.clone(), answer.outcome))
                    };
                    let at = self.now.plus(after);
                    self.push(at, Due::Event(event));
                }
                Command::ArmTimer(t) => {
                    let event = Event::Timer {
                        kind: t.kind,
                        key: t.key.clone(),
                        at: t.at,
                    };
                    let slot = self.push(t.at, Due::Event(event));
                    let named = Timer {
                        instance: self.inst.id.clone(),
                        ..t
                    };
                    self.timers.insert(named, slot);
                }
                Command::CancelTimer(t) => {
                    let named = Timer {
                        instance: self.inst.id.clone(),
                        ..t
                    };
                    if let Some(slot) = self.timers.remove(&named) {
                        self.queue.remove(&slot);
                    }
                }
                Command::OpenToken { token, key } => {
                    self.tokens.insert(token, key);
                }
                Command::CloseToken { token, .. } => {
                    self.tokens.remove(&token);
                }
            }
        }
        Ok(())
    }
}

fn outcome_event(key: String, outcome: StepOutcome) -> Event {
    match outcome {
        StepOutcome::Done { output } => Event::StepDone { key, output },
        StepOutcome::Pending { token } => Event::StepPending { key, token },
        StepOutcome::Failed { failure } => Event::StepFailed {
            key,
            failure,
            heartbeat: None,
        },
    }
}

fn describe(o: &Outside) -> String {
    match o {
        Outside::Signal { name, .. } => format!("signal '{name}'"),
        Outside::Complete { token, .. } => format!("the completion of token '{token}'"),
        Outside::Cancel { .. } => "a cancel".to_owned(),
        Outside::Redrive => "a redrive".to_owned(),
    }
}
