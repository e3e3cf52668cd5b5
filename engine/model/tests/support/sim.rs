//! A model of what an engine stores for one instance (history, timers,
//! outbox, tokens, recorded results), driving the pure interpreter with
//! events an engine could deliver and checking each change against it.
//! Used by `properties.rs`.

use std::collections::{BTreeMap, BTreeSet};
use std::panic::{AssertUnwindSafe, catch_unwind};

use proptest::test_runner::TestCaseError;
use serde_json::{Value, json};
use weft_model::interpret::{self, Applied, Rejected};
use weft_model::{
    ActiveStep, Command, Event, Failure, Instance, InstanceId, Millis, NoDefaults, Phase, Process,
    RecordKind, Span, Status, StepKey, Timer, TimerKind,
};

/// One engine decision: which of the plausible events comes next (`pick`),
/// its payload (`param`), and how far time moves first (`dt`).
#[derive(Debug, Clone)]
pub struct Die {
    pub pick: u16,
    pub param: u16,
    pub dt: u8,
}

pub const DT: [u64; 6] = [0, 1, 10, 300, 1_500, 65_000];
const KINDS: [&str; 8] = [
    "retryable",
    "fatal",
    "timeout",
    "trap",
    "heartbeat",
    "mapping",
    "card_declined",
    "limit",
];
pub const T0: Millis = Millis(1_700_000_000_000);

fn output(p: u16) -> Value {
    match p % 7 {
        0 => json!({}),
        1 => json!({ "n": 5 }),
        2 => json!({ "n": 0, "r": { "ok": true } }),
        3 => json!(7),
        4 => Value::Null,
        5 => json!("text"),
        _ => json!([1, 2]),
    }
}

fn payload(p: u16) -> Value {
    [Value::Null, json!({}), json!({ "n": 4 }), json!(3)][(p / 11 % 4) as usize].clone()
}

/// Every step in progress in the instance and its branches.
pub fn steps(inst: &Instance, out: &mut Vec<ActiveStep>) {
    out.extend(inst.step.clone());
    for slot in inst.fan.iter().flat_map(|f| f.slots()) {
        if let Some(sub) = &slot.inst {
            steps(sub, out);
        }
    }
}

/// Every timer the snapshot holds, its branches' included, named by the
/// top-level instance as the engine stores them.
pub fn timers(inst: &Instance, root: &InstanceId, out: &mut Vec<Timer>) {
    out.extend(inst.timers.iter().map(|t| Timer {
        instance: root.clone(),
        ..t.clone()
    }));
    for slot in inst.fan.iter().flat_map(|f| f.slots()) {
        if let Some(sub) = &slot.inst {
            timers(sub, root, out);
        }
    }
}

pub fn show(e: &Event) -> String {
    let short = |k: &str| k.split_once('/').map_or(k, |(_, rest)| rest).to_owned();
    match e {
        Event::StepDone { key, output } => format!("StepDone {} {output}", short(key)),
        Event::StepFailed { key, failure, .. } => {
            format!("StepFailed {} {}", short(key), failure.kind)
        }
        Event::StepPending { key, token } => format!("StepPending {} {token}", short(key)),
        Event::Heartbeat { key, .. } => format!("Heartbeat {}", short(key)),
        Event::Timer { kind, key, at } => {
            format!("Timer {} {} at +{}", kind.as_str(), short(key), at.0 - T0.0)
        }
        Event::Redrive => "Redrive".into(),
        Event::Cancel { compensate } => format!("Cancel compensate={compensate}"),
        Event::Signal { name, data } => format!("Signal {name} {data}"),
    }
}

/// One instance driven like an engine drives it, with the engine's stored
/// view of it (timers, outbox, tokens, recorded results) kept beside it.
pub struct Sim<'p> {
    pub p: &'p Process,
    pub text: String,
    pub input: Value,
    pub inst: Instance,
    pub now: Millis,
    pub next_seq: u64,
    pub log: Vec<String>,
    pub armed: Vec<Timer>,
    pub gone: Vec<Timer>,
    pub outbox: BTreeSet<String>,
    /// Open completion tokens and their step keys.
    pub tokens: BTreeMap<String, String>,
    /// Step keys whose outcome a `Transition` record carries.
    pub outcomes: BTreeSet<String>,
    pub undone: BTreeSet<String>,
    /// Keys the engine recorded a result under (an outcome event after which
    /// the instance no longer has the step).
    pub concluded: Vec<String>,
    pub last_ok: Option<Event>,
    pub tokens_made: u32,
    pub applied: usize,
    pub kinds: BTreeMap<String, usize>,
    pub rejected: usize,
    /// Times the instance parked, by error kind.
    pub parks: BTreeMap<String, usize>,
    pub timers_fired: usize,
    pub redriven: usize,
    pub branch_records: usize,
}

impl<'p> Sim<'p> {
    pub fn start(p: &'p Process, text: String, input: Value) -> Result<Self, TestCaseError> {
        let id = InstanceId::new(T0, 1);
        let started = catch_unwind(AssertUnwindSafe(|| {
            interpret::start(p, &NoDefaults, id, input.clone(), T0)
        }));
        let Ok(applied) = started else {
            let why = format!("start panicked\n--- process\n{text}\n--- input {input}");
            return Err(TestCaseError::fail(why));
        };
        let mut sim = Sim {
            p,
            text,
            input,
            inst: applied.instance.clone(),
            now: T0,
            next_seq: 0,
            log: vec!["start".into()],
            armed: Vec::new(),
            gone: Vec::new(),
            outbox: BTreeSet::new(),
            tokens: BTreeMap::new(),
            outcomes: BTreeSet::new(),
            undone: BTreeSet::new(),
            concluded: Vec::new(),
            last_ok: None,
            tokens_made: 0,
            applied: 0,
            kinds: BTreeMap::new(),
            rejected: 0,
            parks: BTreeMap::new(),
            timers_fired: 0,
            redriven: 0,
            branch_records: 0,
        };
        sim.absorb(None, applied)?;
        Ok(sim)
    }

    pub fn fail(&self, what: impl std::fmt::Display) -> TestCaseError {
        TestCaseError::fail(format!(
            "{what}\n--- process\n{}\n--- input {}\n--- events\n{}\n--- instance before the last event\n{}",
            self.text,
            self.input,
            self.log.join("\n"),
            serde_json::to_string(&self.inst).unwrap_or_default()
        ))
    }

    pub fn check(&self, ok: bool, what: impl FnOnce() -> String) -> Result<(), TestCaseError> {
        if ok { Ok(()) } else { Err(self.fail(what())) }
    }

    /// Events an engine could deliver now, weighted: mostly outcomes for
    /// steps in flight, due timers and accepted signals; now and then a
    /// cancel, a wrong signal, or a stale or repeated event.
    fn candidates(&mut self, d: &Die) -> Vec<(u32, Event)> {
        let p = d.param;
        let mut out = Vec::new();
        let mut live = Vec::new();
        steps(&self.inst, &mut live);
        for s in live {
            let key = s.key.clone();
            let done = Event::StepDone {
                key: key.clone(),
                output: output(p),
            };
            let failed = Event::StepFailed {
                key: key.clone(),
                failure: Failure::new(KINDS[(p / 7) as usize % KINDS.len()], "simulated"),
                heartbeat: p.is_multiple_of(3).then(|| "50%".to_owned()),
            };
            match s.phase {
                Phase::Invoking => {
                    self.tokens_made += 1;
                    let token = format!("tok{}", self.tokens_made);
                    let pending = Event::StepPending { key, token };
                    out.extend([(12, done), (6, failed), (4, pending)]);
                }
                Phase::Pending { .. } => {
                    let details = format!("at {p}");
                    let beat = Event::Heartbeat { key, details };
                    out.extend([(10, done), (5, failed), (4, beat)]);
                }
                // Stale: nothing waits for an outcome during a backoff.
                Phase::Backoff { .. } => out.push((2, done)),
            }
        }
        out.extend(self.armed.iter().map(|t| (12, timer_event(t))));
        if let Some(w) = &self.inst.waiting {
            out.extend(w.events.iter().map(|name| {
                let data = payload(p);
                let name = name.clone();
                (12, Event::Signal { name, data })
            }));
        }
        let names = ["approve", "reject", "go", "timeout", "elapsed", "nope"];
        let name = names[p as usize % names.len()].to_owned();
        out.push((
            2,
            Event::Signal {
                name,
                data: payload(p),
            },
        ));
        let parked = self.inst.status == Status::Parked;
        out.push((if parked { 4 } else { 1 }, Event::Redrive));
        let compensate = p.is_multiple_of(2);
        out.push((1, Event::Cancel { compensate }));
        // Stale and repeated: the last event that applied, an outcome for a
        // step already concluded, a timer already cancelled or fired.
        out.extend(self.last_ok.clone().map(|e| (2, e)));
        if !self.concluded.is_empty() {
            let key = self.concluded[p as usize % self.concluded.len()].clone();
            let output = json!({});
            out.push((2, Event::StepDone { key, output }));
        }
        if !self.gone.is_empty() {
            out.push((2, timer_event(&self.gone[p as usize % self.gone.len()])));
        }
        out
    }

    pub fn step(&mut self, d: &Die) -> Result<(), TestCaseError> {
        self.now = self.now.plus(Span(DT[d.dt as usize]));
        let cands = self.candidates(d);
        let total: u32 = cands.iter().map(|(w, _)| w).sum();
        let mut r = u32::from(d.pick) % total;
        let event = cands
            .into_iter()
            .find(|(w, _)| {
                let hit = r < *w;
                r = r.saturating_sub(*w);
                hit
            })
            .map(|(_, e)| e)
            .expect("invariant: r < total");
        if let Event::Timer { at, .. } = &event {
            // The timer service delivers a timer once it is due.
            self.now = self.now.max(*at);
        }
        self.log
            .push(format!("+{}ms {}", self.now.0 - T0.0, show(&event)));
        let (p, now) = (self.p, self.now);
        let before = self.inst.clone();
        let run = || interpret::apply(p, &NoDefaults, &before, &event, now);
        let result = catch_unwind(AssertUnwindSafe(run))
            .map_err(|_| self.fail(format!("apply panicked on {}", show(&event))))?;
        let again = run();
        self.check(again == result, || "apply is not deterministic".into())?;
        // After a restart the engine applies the event to the snapshot it
        // reads back from the store: that must make no difference.
        let reloaded = reload(&before).map_err(|e| self.fail(e))?;
        let after_restart = interpret::apply(p, &NoDefaults, &reloaded, &event, now);
        self.check(
            outcome_json(&after_restart) == outcome_json(&result),
            || {
                format!(
                    "after a reload {} gives {:#}\nwithout one {:#}",
                    show(&event),
                    outcome_json(&after_restart),
                    outcome_json(&result)
                )
            },
        )?;
        if let Some(l) = self.log.last_mut() {
            match &result {
                Ok(a) => l.push_str(&format!(
                    "  => {} in '{}'",
                    a.instance.status, a.instance.state
                )),
                Err(why) => l.push_str(&format!("  => rejected: {why:?}")),
            }
        }
        self.expect_rejection(&event, &result)?;
        match result {
            Ok(a) => {
                self.applied += 1;
                *self.kinds.entry(kind_of(&event)).or_default() += 1;
                self.timers_fired += usize::from(matches!(event, Event::Timer { .. }));
                self.redriven += usize::from(event == Event::Redrive);
                self.absorb(Some(&event), a)
            }
            // The instance kept is the one before: a rejected event changes nothing.
            Err(_) => {
                self.rejected += 1;
                Ok(())
            }
        }
    }

    /// Events that must be rejected, and why.
    fn expect_rejection(
        &self,
        event: &Event,
        result: &Result<Applied, Rejected>,
    ) -> Result<(), TestCaseError> {
        let status = self.inst.status;
        let rejected = |r: &Result<Applied, Rejected>| r.as_ref().err().cloned();
        if status.is_finished() {
            return self.check(rejected(result) == Some(Rejected::Finished(status)), || {
                format!("a {status} instance took {}", show(event))
            });
        }
        let operator = matches!(event, Event::Redrive | Event::Cancel { .. });
        if status == Status::Parked && !operator {
            return self.check(rejected(result) == Some(Rejected::Parked), || {
                format!("a parked instance took {}", show(event))
            });
        }
        match event {
            Event::Redrive if status != Status::Parked => self.check(
                rejected(result) == Some(Rejected::NotParked(status)),
                || format!("Redrive of a {status} instance was not refused"),
            ),
            Event::Cancel { .. } => self.check(result.is_ok(), || "Cancel was refused".into()),
            Event::Timer { kind, key, at } => {
                let t = Timer {
                    instance: self.inst.id.clone(),
                    kind: *kind,
                    key: key.clone(),
                    at: *at,
                };
                if self.armed.contains(&t) {
                    self.check(result.is_ok(), || {
                        format!("an armed timer was refused: {:?}", rejected(result))
                    })
                } else {
                    self.check(result.is_err(), || {
                        "a timer that is not armed (cancelled or fired) applied".into()
                    })
                }
            }
            Event::StepDone { key, .. }
            | Event::StepFailed { key, .. }
            | Event::StepPending { key, .. }
            | Event::Heartbeat { key, .. }
                if self.concluded.contains(key) =>
            {
                self.check(result.is_err(), || {
                    format!("an outcome for {key}, whose result is recorded, applied again")
                })
            }
            Event::Signal { name, .. } => {
                let accepted = self.inst.waiting.as_ref().map(|w| &w.events);
                let takes = accepted.is_some_and(|e| e.contains(name));
                self.check(takes || result.is_err(), || {
                    format!("signal '{name}' applied, but the state accepts {accepted:?}")
                })
            }
            _ => Ok(()),
        }
    }

    /// Takes an applied change the way the engine commits it, checking it
    /// against everything committed before.
    fn absorb(&mut self, event: Option<&Event>, a: Applied) -> Result<(), TestCaseError> {
        let root = a.instance.id.clone();
        // History: gap-free, and at most one outcome per step key.
        for r in &a.records {
            self.check(r.seq == self.next_seq, || {
                format!(
                    "record {:?} has seq {}, expected {}",
                    r.kind, r.seq, self.next_seq
                )
            })?;
            self.next_seq += 1;
            self.check(r.at == self.now, || {
                format!(
                    "record {:?} is dated {}, applied at {}",
                    r.kind, r.at, self.now
                )
            })?;
            self.branch_records += usize::from(r.branch.is_some());
            match &r.kind {
                RecordKind::Parked { error, .. } if r.branch.is_none() => {
                    *self.parks.entry(error.kind.clone()).or_default() += 1;
                }
                RecordKind::Transition { key: Some(k), .. } => {
                    let first = self.outcomes.insert(k.clone());
                    self.check(first, || format!("two outcome transitions for step {k}"))?;
                }
                RecordKind::Compensated { key, .. } => {
                    let first = self.undone.insert(key.clone());
                    self.check(first, || format!("two compensations recorded for {key}"))?;
                }
                _ => {}
            }
        }
        self.check(a.instance.seq == self.next_seq, || {
            format!(
                "instance.seq {} but {} records",
                a.instance.seq, self.next_seq
            )
        })?;
        // Commands, in order, against the stored timers and tokens.
        let mut invoked = Vec::new();
        for c in &a.commands {
            match c {
                Command::Invoke(i) => {
                    self.check(!self.concluded.contains(&i.key), || {
                        format!("{} is invoked again after its result was recorded", i.key)
                    })?;
                    self.check(!self.outcomes.contains(&i.key), || {
                        format!("{} is invoked again after its outcome transition", i.key)
                    })?;
                    self.check(i.instance == root, || format!("invoke for {}", i.instance))?;
                    invoked.push(i.key.clone());
                }
                Command::ArmTimer(t) => {
                    self.check(t.instance == root, || format!("timer of {}", t.instance))?;
                    self.check(!self.armed.contains(t), || format!("{t:?} armed twice"))?;
                    self.armed.push(t.clone());
                }
                Command::CancelTimer(t) => {
                    let i = self.armed.iter().position(|x| x == t);
                    let i = i.ok_or_else(|| self.fail(format!("cancels unarmed {t:?}")))?;
                    self.gone.push(self.armed.remove(i));
                }
                Command::OpenToken { token, key } => {
                    let fresh = self.tokens.insert(token.clone(), key.clone()).is_none();
                    self.check(fresh, || format!("token {token} opened twice"))?;
                }
                Command::CloseToken { token, key } => {
                    let open = self.tokens.remove(token);
                    self.check(open.as_ref() == Some(key), || {
                        format!("closes token {token} of {key}, open for {open:?}")
                    })?;
                }
            }
        }
        // The store removes settled entries, then adds the new invocations.
        for k in &a.settled {
            self.outbox.remove(k);
        }
        self.outbox.extend(invoked);
        if let Some(Event::Timer { kind, key, at }) = event {
            let fired = Timer {
                instance: root.clone(),
                kind: *kind,
                key: key.clone(),
                at: *at,
            };
            self.check(!self.armed.contains(&fired), || {
                "a timer that fired is still armed".into()
            })?;
        }
        if let Some(Event::StepDone { key, .. } | Event::StepFailed { key, .. }) = event
            && !a.instance.has_step(key)
        {
            // As `Engine::deliver_ran`: a compensation that failed for good
            // is not filed as its key's outcome (an operator retries it
            // under the same key); every other concluded step is.
            let failed_undo =
                key.ends_with("/undo") && matches!(event, Some(Event::StepFailed { .. }));
            if !failed_undo {
                self.concluded.push(key.clone());
            }
        }
        self.agree(&a.instance)?;
        let back = reload(&a.instance).map_err(|e| self.fail(e))?;
        self.check(json(&back) == json(&a.instance), || {
            "the snapshot does not read back to the same JSON".into()
        })?;
        self.inst = a.instance;
        self.last_ok = event.cloned();
        Ok(())
    }

    /// What the engine stored (timers, outbox, tokens) is what the snapshot
    /// says is in progress.
    fn agree(&self, inst: &Instance) -> Result<(), TestCaseError> {
        let mut held = Vec::new();
        timers(inst, &inst.id, &mut held);
        let mut armed = self.armed.clone();
        let key = |t: &Timer| (t.at, t.key.clone(), t.kind.as_str());
        held.sort_by_key(key);
        armed.sort_by_key(key);
        self.check(held == armed, || {
            format!("stored timers {armed:#?}\nbut the snapshot holds {held:#?}")
        })?;
        let mut live = Vec::new();
        steps(inst, &mut live);
        let invoking: BTreeSet<String> = live
            .iter()
            .filter(|s| s.phase == Phase::Invoking)
            .map(|s| s.key.clone())
            .collect();
        self.check(invoking == self.outbox, || {
            format!("outbox {:?} but steps invoking {invoking:?}", self.outbox)
        })?;
        let pending: BTreeMap<String, String> = live
            .iter()
            .filter_map(|s| match &s.phase {
                Phase::Pending { token } => Some((token.clone(), s.key.clone())),
                _ => None,
            })
            .collect();
        self.check(pending == self.tokens, || {
            format!(
                "open tokens {:?} but steps pending {pending:?}",
                self.tokens
            )
        })?;
        if inst.status.is_finished() || inst.status == Status::Parked {
            self.check(armed.is_empty(), || {
                format!("a {} instance keeps timers {armed:?}", inst.status)
            })?;
        }
        let mut trouble = Vec::new();
        shape(inst, self.now, &mut trouble);
        self.check(trouble.is_empty(), || trouble.join("\n"))
    }
}

/// Checks an instance (and each branch still running) is consistent: its
/// status matches what it holds, each timer belongs to what it is doing, and
/// nothing in progress is left without the timer that moves it on.
pub fn shape(inst: &Instance, now: Millis, trouble: &mut Vec<String>) {
    let mut bad = |what: String| trouble.push(format!("{}: {what}", inst.id));
    let status = inst.status;
    if (status == Status::Waiting) != inst.waiting.is_some() {
        bad(format!("status {status} but waiting = {:?}", inst.waiting));
    }
    if (status == Status::Parked) != inst.parked.is_some() {
        bad(format!("status {status} but parked = {:?}", inst.parked));
    }
    if status.is_finished() && (inst.step.is_some() || inst.fan.is_some()) {
        bad(format!("a {status} instance still has a step or branches"));
    }
    let step = inst.step.as_ref();
    for t in &inst.timers {
        let belongs = match t.kind {
            TimerKind::Wait => inst.waiting.as_ref().is_some_and(|w| w.key == t.key),
            TimerKind::Retry => {
                step.is_some_and(|s| s.key == t.key && matches!(s.phase, Phase::Backoff { .. }))
            }
            TimerKind::Timeout | TimerKind::Heartbeat => {
                step.is_some_and(|s| s.key == t.key && matches!(s.phase, Phase::Pending { .. }))
            }
            TimerKind::Deadline => step.is_some_and(|s| s.key == t.key),
            TimerKind::Sla => {
                let visit = inst.visits.get(&inst.state).copied().unwrap_or(0);
                !status.is_finished()
                    && (t.key == StepKey::process_sla(&inst.id).as_str()
                        || t.key == StepKey::state_sla(&inst.id, &inst.state, visit).as_str())
            }
        };
        if !belongs {
            bad(format!("holds {t:?}, which belongs to nothing it is doing"));
        }
    }
    if status != Status::Parked && !status.is_finished() {
        let armed =
            |kind: TimerKind, key: &str| inst.timers.iter().any(|t| t.kind == kind && t.key == key);
        if let Some(s) = step {
            let pending = matches!(s.phase, Phase::Pending { .. });
            let needs = [
                (TimerKind::Retry, matches!(s.phase, Phase::Backoff { .. })),
                (TimerKind::Timeout, pending && s.timeout.is_some()),
                (TimerKind::Heartbeat, pending && s.heartbeat.is_some()),
                (TimerKind::Deadline, s.deadline_at.is_some()),
            ];
            for (kind, needed) in needs {
                if needed && !armed(kind, &s.key) {
                    bad(format!(
                        "step {} ({:?}) has no {kind:?} timer",
                        s.key, s.phase
                    ));
                }
            }
        }
        if let Some(w) = &inst.waiting
            && w.until.is_some_and(|at| at > now)
            && !armed(TimerKind::Wait, &w.key)
        {
            bad(format!("waits until {:?} with no timer", w.until));
        }
    }
    if let Some(fan) = &inst.fan {
        // The fan's indexes agree with its slots: branches start in
        // order, and `running` is exactly the started ones not ended.
        let started = fan.slots().take_while(|s| s.inst.is_some()).count();
        let gaps = fan.slots().skip(started).any(|s| s.inst.is_some());
        let running: Vec<usize> = fan.running().map(|(i, _)| i).collect();
        let expected: Vec<usize> = (0..started)
            .filter(|&i| fan.slot(i).is_some_and(|s| s.outcome.is_none()))
            .collect();
        let mut sorted = running.clone();
        sorted.sort_unstable();
        if gaps || started != fan.started() || sorted != expected {
            trouble.push(format!(
                "{}: fan indexes disagree with its slots: started {} (slots say {started}{}), \
                 running {running:?} (slots say {expected:?})",
                inst.id,
                fan.started(),
                if gaps { ", out of order" } else { "" },
            ));
        }
    }
    for slot in inst.fan.iter().flat_map(|f| f.slots()) {
        if let (Some(sub), None) = (&slot.inst, &slot.outcome) {
            shape(sub, now, trouble);
        }
    }
}

pub fn kind_of(e: &Event) -> String {
    match e {
        Event::Timer { kind, .. } => format!("timer {}", kind.as_str()),
        Event::Cancel { compensate } => format!("cancel compensate={compensate}"),
        Event::StepFailed { failure, .. } => format!("step failed {}", failure.kind),
        other => show(other).split(' ').next().unwrap_or_default().to_owned(),
    }
}

/// The instance as the store hands it back (JSON, like the sled store).
pub fn reload(inst: &Instance) -> Result<Instance, String> {
    let text = serde_json::to_string(inst).map_err(|e| e.to_string())?;
    serde_json::from_str(&text).map_err(|e| format!("the snapshot does not read back: {e}"))
}

pub fn json<T: serde::Serialize>(v: &T) -> Value {
    serde_json::to_value(v).expect("invariant: model types serialize")
}

/// What applying an event gave, as what the engine would store.
pub fn outcome_json(r: &Result<Applied, Rejected>) -> Value {
    match r {
        Ok(a) => json!({
            "instance": json(&a.instance),
            "records": json(&a.records),
            "commands": json(&a.commands),
            "settled": a.settled,
        }),
        Err(why) => json!({ "rejected": format!("{why:?}") }),
    }
}

pub fn timer_event(t: &Timer) -> Event {
    Event::Timer {
        kind: t.kind,
        key: t.key.clone(),
        at: t.at,
    }
}

pub fn parse(text: &str) -> Option<Process> {
    weft_model::parse_process("prop.json", text).ok()
}
