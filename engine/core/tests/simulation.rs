//! A seeded, deterministic simulation: many instances of a saga whose tools
//! fail, time out, hang, answer late and go pending at random, with engine
//! reboots, operator redrives and cancels thrown in — on a simulated clock,
//! on the in-memory store and on sled (where a reboot closes the store and
//! opens it again, as after a crash).
//!
//! After every operation a naive reference model is checked against the
//! engine: histories only grow (what was there stays, gap-free); an ended
//! instance never changes again; every recorded step outcome is one the
//! tool (or an operator's completion) actually gave for that step, or a
//! failure the engine makes itself (timeout, deadline, heartbeat); a cancel
//! ends or starts undoing the instance; a redrive moves a parked one. At the
//! end it checks the invariants:
//!
//! * every instance ends `succeeded`, `failed`, `parked` or `cancelled`;
//! * history numbers are gap-free;
//! * no step visit's outcome is recorded twice;
//! * compensations run exactly for the completed compensable steps, newest
//!   first (a prefix of that list while a compensation is parked).
//!
//! A failing run prints its seed; `WEFT_SEED=<n>` replays just that seed
//! (on both stores).

mod support;

use std::collections::{HashMap, HashSet};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use serde_json::{Value, json};
use support::*;
use weft_core::{Clock, Completion};
use weft_model::{Failure, InstanceId, Phase, Record, RecordKind, Span, Status, StepOutcome};

const SAGA: &str = r#"
process: saga
version: 1
start: one
states:
  one:
    action: a1
    output: .one
    retry: { max_attempts: 3, initial: 500ms }
    compensate: u1
    on: { done: two, error: undo }
  two:
    action: a2
    output: .two
    deadline: 20s
    retry: { max_attempts: 4, initial: 1s, jitter: full }
    on: { done: three, error.timeout: undo, error: undo }
  three:
    action: a3
    output: .three
    timeout: 15s
    compensate: { action: u3, input: '{of: .three}' }
    on: { done: four, error: undo }
  four:
    action: a4
    compensate: u4
    on: { done: ok }
  undo: { type: compensate, then: rolled_back }
  ok: { type: succeed }
  rolled_back: { type: fail }
"#;

/// Every action has a timeout, as real bindings do (30s by default).
const BINDINGS: &str = r#"
plugins: { p: /x.wasm }
actions:
  a1: { plugin: p, timeout: 25s }
  a2: { plugin: p, timeout: 25s }
  a3: { plugin: p, timeout: 25s }
  a4: { plugin: p, timeout: 25s }
  u1: { plugin: p, timeout: 25s, retry: { max_attempts: 3, initial: 2s } }
  u3: { plugin: p, timeout: 25s, retry: { max_attempts: 3, initial: 2s } }
  u4: { plugin: p, timeout: 25s, retry: { max_attempts: 3, initial: 2s } }
"#;

const COMPENSABLE: &[&str] = &["one", "three", "four"];

use weft_model::testing::SplitMix as Rng;

/// Every call's outcome comes from the seed and the call's number, so a run
/// replays exactly.
fn tool(seed: u64, calls: Arc<AtomicU64>, undo: bool, answers: Answers) -> Script {
    Arc::new(move |ctx: Ctx| {
        let n = calls.fetch_add(1, Ordering::SeqCst);
        let mut rng = Rng(seed ^ n.wrapping_mul(0x2545_F491_4F6C_DD1D));
        let roll = rng.below(100);
        let wait = rng.below(30_000);
        let answers = answers.clone();
        Box::pin(async move {
            let key = ctx.inv.key.clone();
            let out = answer(ctx, undo, roll, wait, n).await;
            answers.note(&key, &out);
            out
        })
    })
}

/// A tool's answer from its roll: mostly done, sometimes a failure, slow, a
/// hang the engine must stop, or `pending`.
async fn answer(ctx: Ctx, undo: bool, roll: u64, wait: u64, n: u64) -> StepOutcome {
    let slow = |ms: u64| async move {
        let at = ctx.clock.now().plus(Span(ms));
        ctx.clock.sleep_until(at).await;
    };
    match (undo, roll) {
        (true, 0..=84) => done(json!({"undone": ctx.inv.key})),
        (true, 85..=96) => failed("retryable"),
        (true, _) => failed("fatal"),
        (false, 0..=64) => done(json!({"key": ctx.inv.key})),
        (false, 65..=77) => failed("retryable"),
        (false, 78..=81) => failed("fatal"),
        (false, 82..=87) => {
            slow(wait).await;
            done(json!({"slow": wait}))
        }
        (false, 88..=90) => {
            // Hangs until the step's deadline or timeout stops it.
            std::future::pending::<()>().await;
            failed("retryable")
        }
        (false, _) => StepOutcome::Pending {
            token: format!("tok-{n}"),
        },
    }
}

/// What the tools answered and operators completed with, per step key.
#[derive(Clone, Default)]
struct Answers(Arc<Mutex<HashMap<String, Vec<StepOutcome>>>>);

impl Answers {
    fn note(&self, key: &str, out: &StepOutcome) {
        self.0
            .lock()
            .expect("lock")
            .entry(key.to_owned())
            .or_default()
            .push(out.clone());
    }

    /// Whether the engine could have concluded step `key` this way: with an
    /// answer it was given, or with a failure it makes itself.
    fn explains(&self, key: &str, result: Option<&Value>, failure: Option<&Failure>) -> bool {
        let given = self.0.lock().expect("lock");
        let given = given.get(key).map(Vec::as_slice).unwrap_or_default();
        match (result, failure) {
            (_, Some(f)) if ["timeout", "heartbeat", "adapter"].contains(&f.kind.as_str()) => true,
            (_, Some(f)) => given
                .iter()
                .any(|o| matches!(o, StepOutcome::Failed { failure } if failure.kind == f.kind)),
            (Some(v), None) => given
                .iter()
                .any(|o| matches!(o, StepOutcome::Done { output } if output == v)),
            (None, None) => true,
        }
    }
}

/// The naive reference: what each instance's history and status were after
/// the last operation.
#[derive(Default)]
struct Reference {
    seen: HashMap<InstanceId, Vec<Record>>,
}

impl Reference {
    /// Checks the engine against the reference after operation `op`.
    fn check(&mut self, sim: &Sim, ids: &[InstanceId], answers: &Answers, op: &str) {
        for id in ids {
            let inst = sim.instance(id);
            let history = sim.store.history(id, 0).expect("io");
            let before = self.seen.get(id).map(Vec::as_slice).unwrap_or_default();
            assert!(
                history.starts_with(before),
                "after {op}: the history of {id} changed what it held"
            );
            for (i, r) in history.iter().enumerate() {
                assert_eq!(r.seq, i as u64, "after {op}: {id}: gap in history");
            }
            assert_eq!(
                inst.seq,
                history.len() as u64,
                "after {op}: {id}: next number"
            );
            let ended = before.last().is_some_and(|r| {
                matches!(
                    r.kind,
                    RecordKind::Succeeded { .. }
                        | RecordKind::Failed { .. }
                        | RecordKind::Cancelled { .. }
                )
            });
            if ended {
                assert_eq!(
                    history.len(),
                    before.len(),
                    "after {op}: ended instance {id} moved on"
                );
            }
            for r in &history[before.len()..] {
                let (key, result, failure) = match &r.kind {
                    RecordKind::Transition {
                        key: Some(key),
                        result,
                        failure,
                        ..
                    } => (key, result.as_ref(), failure.as_ref()),
                    RecordKind::Compensated { key, result, .. } => (key, Some(result), None),
                    _ => continue,
                };
                assert!(
                    answers.explains(key, result, failure),
                    "after {op}: {id}: step {key} concluded with {result:?} / {failure:?}, \
                     which nobody answered"
                );
            }
            self.seen.insert(id.clone(), history);
        }
    }
}

async fn simulate(seed: u64, mut sim: Sim) {
    let calls = Arc::new(AtomicU64::new(0));
    let answers = Answers::default();
    for a in ["a1", "a2", "a3", "a4"] {
        sim.on(a, tool(seed, calls.clone(), false, answers.clone()));
    }
    for u in ["u1", "u3", "u4"] {
        sim.on(u, tool(seed, calls.clone(), true, answers.clone()));
    }
    let mut rng = Rng(seed);
    let mut ids: Vec<InstanceId> = Vec::new();
    let mut reference = Reference::default();
    for step in 0..120 {
        let roll = rng.below(100);
        let op = format!("op {step} (roll {roll})");
        match roll {
            0..=24 => {
                let id = sim
                    .engine
                    .start("saga", None, json!({"n": ids.len()}))
                    .await
                    .expect("starts");
                ids.push(id);
            }
            25..=64 => {
                let ms = 1 + rng.below(8_000);
                sim.advance(ms).await;
            }
            65..=72 => sim.reboot().await,
            73..=84 => {
                if let Some((token, key)) = open_token(&sim, &ids, &mut rng) {
                    let completion = if rng.below(4) == 0 {
                        let failure = Failure::new("rejected", "simulated rejection");
                        answers.note(
                            &key,
                            &StepOutcome::Failed {
                                failure: failure.clone(),
                            },
                        );
                        Completion::Failed(failure)
                    } else {
                        let output = json!({"completed": token});
                        answers.note(
                            &key,
                            &StepOutcome::Done {
                                output: output.clone(),
                            },
                        );
                        Completion::Done(output)
                    };
                    sim.engine
                        .complete(&token, completion)
                        .await
                        .expect("an open token completes");
                    sim.engine.settle().await;
                }
            }
            85..=94 => {
                if let Some(id) = pick(&sim, &ids, &mut rng, Status::Parked) {
                    let before = sim.instance(&id).seq;
                    sim.engine
                        .redrive(&id)
                        .await
                        .expect("a parked instance redrives");
                    sim.engine.settle().await;
                    assert!(
                        sim.instance(&id).seq > before,
                        "{op}: the redrive moved {id}"
                    );
                }
            }
            _ => {
                if let Some(id) = pick(&sim, &ids, &mut rng, Status::Running) {
                    let compensate = rng.below(2) == 0;
                    sim.engine
                        .cancel(&id, compensate)
                        .await
                        .expect("a running instance cancels");
                    let after = sim.instance(&id).status;
                    assert!(
                        after == Status::Cancelled || compensate && after == Status::Running,
                        "{op}: cancelled {id} is {after}"
                    );
                    sim.engine.settle().await;
                }
            }
        }
        // Compared once the operation's effects have settled: the check
        // reads several tables and must not see a commit land in between.
        sim.engine.settle().await;
        reference.check(&sim, &ids, &answers, &op);
    }
    // Drain: complete what waits on a token, let time pass, until nothing runs.
    for _ in 0..200 {
        let running: Vec<InstanceId> = ids
            .iter()
            .filter(|id| sim.instance(id).status == Status::Running)
            .cloned()
            .collect();
        if running.is_empty() {
            break;
        }
        while let Some((token, key)) = open_token(&sim, &ids, &mut rng) {
            answers.note(&key, &StepOutcome::Done { output: json!({}) });
            sim.engine
                .complete(&token, Completion::Done(json!({})))
                .await
                .expect("completes");
        }
        sim.advance(10_000).await;
        sim.engine.settle().await;
        reference.check(&sim, &ids, &answers, "draining");
    }
    let mut ended = std::collections::BTreeMap::new();
    let (mut undone, mut retried, mut pending) = (0, 0, 0);
    for id in &ids {
        check(&sim, id);
        *ended
            .entry(sim.instance(id).status.to_string())
            .or_insert(0) += 1;
        for r in sim.store.history(id, 0).expect("io") {
            match r.kind {
                RecordKind::Compensated { .. } => undone += 1,
                RecordKind::AttemptFailed { .. } => retried += 1,
                RecordKind::Pending { .. } => pending += 1,
                _ => {}
            }
        }
    }
    eprintln!(
        "  {} instances, ended {ended:?}; {retried} retried attempts, {pending} pending, {undone} undone, {} calls stopped mid-way",
        ids.len(),
        sim.invoker.dropped.load(Ordering::SeqCst)
    );
    assert!(!ids.is_empty());
}

fn pick(sim: &Sim, ids: &[InstanceId], rng: &mut Rng, status: Status) -> Option<InstanceId> {
    let matching: Vec<&InstanceId> = ids
        .iter()
        .filter(|id| sim.instance(id).status == status)
        .collect();
    (!matching.is_empty()).then(|| matching[rng.below(matching.len() as u64) as usize].clone())
}

/// An open completion token and the step it completes.
fn open_token(sim: &Sim, ids: &[InstanceId], rng: &mut Rng) -> Option<(String, String)> {
    let tokens: Vec<(String, String)> = ids
        .iter()
        .filter_map(|id| {
            let inst = sim.instance(id);
            let step = inst.step?;
            match step.phase {
                Phase::Pending { token } if inst.status == Status::Running => {
                    Some((token, step.key))
                }
                _ => None,
            }
        })
        .collect();
    (!tokens.is_empty()).then(|| tokens[rng.below(tokens.len() as u64) as usize].clone())
}

fn check(sim: &Sim, id: &InstanceId) {
    let inst = sim.instance(id);
    assert!(
        matches!(
            inst.status,
            Status::Succeeded | Status::Failed | Status::Parked | Status::Cancelled
        ),
        "{id} ended {} in '{}'",
        inst.status,
        inst.state
    );
    let history = sim.store.history(id, 0).expect("io");
    let seqs: Vec<u64> = history.iter().map(|r| r.seq).collect();
    assert_eq!(
        seqs,
        (0..history.len() as u64).collect::<Vec<_>>(),
        "{id}: gap-free history"
    );
    assert_eq!(inst.seq, history.len() as u64);

    let mut outcomes = HashSet::new();
    let mut completed = Vec::new();
    let mut undone = Vec::new();
    for r in &history {
        match &r.kind {
            RecordKind::Transition {
                from,
                event,
                key: Some(key),
                ..
            } => {
                assert!(
                    outcomes.insert(key.clone()),
                    "{id}: the outcome of {key} was recorded twice"
                );
                if event == "done" && COMPENSABLE.contains(&from.as_str()) {
                    completed.push(from.clone());
                }
            }
            RecordKind::Compensated { undone: u, key, .. } => {
                assert!(
                    outcomes.insert(key.clone()),
                    "{id}: the undo {key} was recorded twice"
                );
                undone.push(u.clone());
            }
            _ => {}
        }
    }
    let expected: Vec<String> = completed.iter().rev().cloned().collect();
    let compensating_ended = matches!(inst.status, Status::Failed | Status::Cancelled)
        && (inst.state == "rolled_back" || inst.status == Status::Cancelled && !undone.is_empty());
    if inst.status == Status::Succeeded {
        assert!(
            undone.is_empty(),
            "{id}: a succeeded instance undid {undone:?}"
        );
    } else if compensating_ended && inst.state == "rolled_back" {
        assert_eq!(
            undone, expected,
            "{id}: every completed compensable step undone, newest first"
        );
    } else {
        assert!(
            expected.starts_with(&undone),
            "{id}: undid {undone:?}, expected a prefix of {expected:?}"
        );
    }
}

fn seeds() -> Vec<u64> {
    match std::env::var("WEFT_SEED") {
        Ok(s) => vec![s.trim().parse().expect("WEFT_SEED is a number")],
        Err(_) => (1..=24).collect(),
    }
}

#[tokio::test]
async fn seeded_simulation_keeps_the_invariants() {
    for seed in seeds() {
        eprintln!("simulation seed {seed} (replay with WEFT_SEED={seed})");
        simulate(seed, Sim::new(SAGA, BINDINGS)).await;
    }
}

#[tokio::test]
async fn seeded_simulation_on_sled_keeps_the_invariants_across_reopens() {
    // Fewer seeds: every commit is a real sled batch and flush.
    let seeds: Vec<u64> = match std::env::var("WEFT_SEED") {
        Ok(_) => seeds(),
        Err(_) => (1..=6).collect(),
    };
    for seed in seeds {
        eprintln!("sled simulation seed {seed} (replay with WEFT_SEED={seed})");
        let dir = tempfile::tempdir().expect("tempdir");
        simulate(seed, Sim::on_sled(SAGA, BINDINGS, dir.path())).await;
    }
}
