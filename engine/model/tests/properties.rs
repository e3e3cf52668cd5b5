//! Property tests of the pure interpreter: random processes (mostly valid;
//! `support/procgen.rs`) driven by random event sequences the way an engine
//! drives them — outcomes for steps in flight, due timers, signals,
//! operators — mixed with stale and repeated events, each change checked
//! against a model of what the engine stores (`support/sim.rs`: history,
//! timers, outbox, tokens, recorded results).
//!
//! 256 cases by default: a few seconds in a debug build. A long run (about
//! 10 ms a case in release):
//!
//! ```sh
//! PROPTEST_CASES=20000 cargo test -p weft-model --release --test properties -- --nocapture
//! ```
//!
//! `--nocapture` also prints what the runs reached (statuses, event kinds,
//! parks). A failure prints the shrunk process (JSON, which is also YAML), its
//! input and every event with its result. Failures are not persisted to a
//! regressions file: pin one as a plain test, like the one at the end.

#[path = "support/procgen.rs"]
mod procgen;
#[path = "support/sim.rs"]
mod sim;

use std::cell::RefCell;
use std::collections::BTreeMap;

use proptest::collection::vec;
use proptest::prelude::*;
use proptest::strategy::ValueTree;
use proptest::test_runner::{Config, TestCaseError, TestRunner};
use serde_json::{Value, json};
use sim::{DT, Die, Sim, T0, parse, show};
use weft_model::interpret::{self, Rejected};
use weft_model::{Command, Event, Failure, InstanceId, NoDefaults, Status};

fn config() -> Config {
    // `Config::default()` reads PROPTEST_CASES; no regressions file is
    // written into the source tree.
    Config {
        failure_persistence: None,
        ..Config::default()
    }
}

fn dice() -> impl Strategy<Value = Vec<Die>> {
    vec(
        (any::<u16>(), any::<u16>(), 0..DT.len() as u8).prop_map(|(pick, param, dt)| Die {
            pick,
            param,
            dt,
        }),
        1..=40,
    )
}

/// What the runs reached, so the properties are known not to hold vacuously.
#[derive(Debug, Default)]
struct Coverage {
    processes: usize,
    valid: usize,
    applied: usize,
    rejected: usize,
    /// Events that applied, by kind (timers by their kind).
    kinds: BTreeMap<String, usize>,
    /// Final statuses of the runs, by name.
    ended: BTreeMap<&'static str, usize>,
    /// Times instances parked, by error kind.
    parks: BTreeMap<String, usize>,
    timers_fired: usize,
    redriven: usize,
    compensated: usize,
    branch_records: usize,
}

impl Coverage {
    fn note(&mut self, sim: &Sim) {
        self.valid += 1;
        self.applied += sim.applied;
        for (k, n) in &sim.kinds {
            *self.kinds.entry(k.clone()).or_default() += n;
        }
        self.rejected += sim.rejected;
        *self.ended.entry(sim.inst.status.as_str()).or_default() += 1;
        for (k, n) in &sim.parks {
            *self.parks.entry(k.clone()).or_default() += n;
        }
        self.timers_fired += sim.timers_fired;
        self.redriven += sim.redriven;
        self.compensated += sim.undone.len();
        self.branch_records += sim.branch_records;
    }
}

/// Runs one process through the dice; `Ok` for an invalid process (their
/// share is checked afterwards).
fn run(
    spec: &procgen::ProcSpec,
    input: Value,
    dice: &[Die],
    cov: &RefCell<Coverage>,
) -> Result<(), TestCaseError> {
    cov.borrow_mut().processes += 1;
    let text = spec.render();
    let Some(p) = parse(&text) else {
        return Ok(());
    };
    let mut sim = Sim::start(&p, text, input)?;
    for d in dice {
        if sim.inst.status.is_finished() {
            break;
        }
        sim.step(d)?;
    }
    // A finished instance refuses everything, operators included.
    if sim.inst.status.is_finished() {
        let key = sim.concluded.last().cloned().unwrap_or_default();
        for e in [
            Event::Redrive,
            Event::Cancel { compensate: true },
            Event::Cancel { compensate: false },
            Event::Signal {
                name: "go".into(),
                data: Value::Null,
            },
            Event::StepDone {
                key,
                output: json!({}),
            },
        ] {
            let r = interpret::apply(&p, &NoDefaults, &sim.inst, &e, sim.now);
            sim.check(r == Err(Rejected::Finished(sim.inst.status)), || {
                format!("a {} instance took {}", sim.inst.status, show(&e))
            })?;
        }
    }
    cov.borrow_mut().note(&sim);
    Ok(())
}

/// Never panics; gap-free history; one outcome per step key; a recorded
/// result is never invoked or applied again; stored timers, outbox and
/// tokens agree with the snapshot; stale, repeated and unaccepted events are
/// refused; a finished instance refuses all; snapshots read back the same.
#[test]
fn interpreter_random_processes_and_events_keep_engine_invariants() {
    let mut runner = TestRunner::new(config());
    let cases = runner.config().cases as usize;
    let cov = RefCell::new(Coverage::default());
    let strategy = (procgen::process(), procgen::input(), dice());
    let result = runner.run(&strategy, |(spec, input, dice)| {
        run(&spec, input, &dice, &cov)
    });
    if let Err(e) = result {
        panic!("{e}");
    }
    let cov = cov.into_inner();
    eprintln!("{cov:#?}");
    let share = cov.valid as f64 / cov.processes.max(1) as f64;
    assert!(
        share > 0.6,
        "only {share:.2} of the processes are valid: {cov:?}"
    );
    if cases >= 200 {
        let ended = |s: Status| cov.ended.get(s.as_str()).copied().unwrap_or(0);
        let reached = [
            ("succeeded", ended(Status::Succeeded)),
            ("failed", ended(Status::Failed)),
            ("cancelled", ended(Status::Cancelled)),
            ("parked", cov.parks.values().sum()),
            ("timers fired", cov.timers_fired),
            ("redrives", cov.redriven),
            ("compensations", cov.compensated),
            ("branch records", cov.branch_records),
        ];
        for (what, n) in reached {
            assert!(
                n > 0,
                "no run reached {what}: the generators miss it: {cov:?}"
            );
        }
    }
}

/// Why generated processes are invalid, for tuning the generator:
/// `cargo test -p weft-model --test properties procgen -- --nocapture`.
#[test]
fn procgen_generated_processes_are_mostly_valid() {
    let mut runner = TestRunner::deterministic();
    let strategy = procgen::process();
    let (mut valid, total) = (0, 200);
    let mut reasons: BTreeMap<String, usize> = BTreeMap::new();
    for _ in 0..total {
        let spec = strategy
            .new_tree(&mut runner)
            .expect("invariant: the strategy always generates")
            .current();
        match weft_model::parse_process("prop.json", &spec.render()) {
            Ok(_) => valid += 1,
            Err(d) => {
                let first = d.to_string();
                let what = first.lines().next().unwrap_or_default();
                let what = what.split_once(": ").map_or(what, |(_, w)| w);
                *reasons.entry(what.to_owned()).or_default() += 1;
            }
        }
    }
    let share = valid as f64 / total as f64;
    eprintln!("valid generated processes: {valid}/{total}; invalid: {reasons:#?}");
    assert!(
        share > 0.6,
        "only {valid} of {total} generated processes are valid: {reasons:#?}"
    );
}

/// A compensation inside a branch that fails for good parks the branch, and
/// the failed parallel state parks the instance, dropping the branch with
/// its step. `weft cancel --compensate` then undoes the same step under the
/// same key. Found by the property run: the engine used to file the failed
/// undo's result under `<step>/undo`, so an engine restarted during the
/// second undo replayed the old failure instead of running it. A failed
/// compensation is no longer filed as its key's outcome (mirrored here).
#[test]
fn cancel_with_compensation_retries_a_failed_undo_whose_failure_is_not_filed() {
    let text = r#"
process: p
version: 1
start: both
states:
  both:
    type: parallel
    branches:
      a:
        start: reserve
        states:
          reserve: { action: reserve, compensate: release, on: { done: charge } }
          charge: { action: charge, on: { done: fin, error: undo } }
          undo: { type: compensate, then: broke }
          broke: { type: fail }
          fin: { type: succeed }
    on: { done: ok }
  ok: { type: succeed }
"#;
    let p = weft_model::parse_process("p.yaml", text).expect("valid");
    let id = InstanceId::new(T0, 1);
    let mut inst = interpret::start(&p, &NoDefaults, id.clone(), json!({}), T0).instance;
    let branch = format!("{id}/both/1/a");
    let fatal = |key: String| Event::StepFailed {
        key,
        failure: Failure::new("fatal", "no"),
        heartbeat: None,
    };
    let undo = format!("{branch}/reserve/1/undo");
    let mut recorded = Vec::new();
    for e in [
        Event::StepDone {
            key: format!("{branch}/reserve/1"),
            output: json!({ "id": 1 }),
        },
        fatal(format!("{branch}/charge/1")),
        // The branch is undoing `reserve`; the undo fails for good.
        fatal(undo.clone()),
    ] {
        let a = interpret::apply(&p, &NoDefaults, &inst, &e, T0).expect("applies");
        let key = e.key().unwrap_or_default();
        let failed_undo = key.ends_with("/undo") && matches!(e, Event::StepFailed { .. });
        if !a.instance.has_step(key) && !failed_undo {
            // As `Engine::deliver_ran`: the step is over, its result recorded
            // (unless it is a compensation that failed: that is retried).
            recorded.push(key.to_owned());
        }
        inst = a.instance;
    }
    assert_eq!(inst.status, Status::Parked);
    assert!(
        !recorded.contains(&undo),
        "a failed undo is not filed: {recorded:?}"
    );
    let a = interpret::apply(
        &p,
        &NoDefaults,
        &inst,
        &Event::Cancel { compensate: true },
        T0,
    )
    .expect("applies");
    let again: Vec<&str> = a
        .commands
        .iter()
        .filter_map(|c| match c {
            Command::Invoke(i) if recorded.contains(&i.key) => Some(i.key.as_str()),
            _ => None,
        })
        .collect();
    assert!(
        again.is_empty(),
        "invoked again though their results are recorded: {again:?}"
    );
}
