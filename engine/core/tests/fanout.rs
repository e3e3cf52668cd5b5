//! Parallel and map states on a simulated clock: joins, a failing branch
//! cancelling its siblings, compensation of steps completed in branches,
//! bounded concurrency observed through the adapters, tolerated failures,
//! results in item order, and a restart in the middle of the branches.

#![allow(clippy::unwrap_used)] // an unwrap that fails is a test that fails

mod support;

use std::sync::Arc;
use std::sync::atomic::Ordering;

use serde_json::{Value, json};
use support::*;
use weft_core::Clock;
use weft_model::{RecordKind, Status, StepOutcome};

const PIPELINE: &str = r#"
process: pipeline
version: 1
start: checks
states:
  checks:
    type: parallel
    output: .checks
    branches:
      build:
        start: compile
        states:
          compile: { action: build, on: { done: package } }
          package: { action: package, compensate: unpublish, on: { done: built } }
          built: { type: succeed }
      test:
        start: unit
        states:
          unit: { action: test, on: { done: passed } }
          passed: { type: succeed }
      lint:
        start: lint
        states:
          lint: { action: lint, on: { done: clean } }
          clean: { type: succeed, output: '{lint: "clean"}' }
    on:
      done: deploy
      error: undo
  deploy: { action: deploy, on: { done: shipped } }
  shipped: { type: succeed }
  undo: { type: compensate, then: broken }
  broken: { type: fail }
"#;

fn assert_gap_free(sim: &Sim, id: &weft_model::InstanceId) {
    let seqs: Vec<u64> = sim
        .store
        .history(id, 0)
        .unwrap()
        .iter()
        .map(|r| r.seq)
        .collect();
    assert_eq!(seqs, (0..seqs.len() as u64).collect::<Vec<_>>(), "gap-free");
}

fn transitions(sim: &Sim, id: &weft_model::InstanceId) -> Vec<String> {
    sim.store
        .history(id, 0)
        .unwrap()
        .into_iter()
        .filter_map(|r| match r.kind {
            RecordKind::Transition {
                from, event, to, ..
            } => Some(match r.branch {
                Some(b) => format!("[{b}] {from}-{event}->{to}"),
                None => format!("{from}-{event}->{to}"),
            }),
            _ => None,
        })
        .collect()
}

#[tokio::test]
async fn branches_run_at_once_and_join_when_all_finish() {
    let sim = Sim::new(PIPELINE, "");
    sim.on("build", slow(300, done(json!({"artifact": "a.tar"}))));
    sim.on("test", slow(500, done(json!({"tests": 12}))));
    sim.on("lint", slow(100, done(json!({}))));
    let id = sim.start(json!({})).await;
    // All three branches are in their first step at once.
    assert_eq!(sim.invoker.running.load(Ordering::SeqCst), 3);
    sim.run_for(1_000, 50).await;
    let inst = sim.instance(&id);
    assert_eq!(inst.status, Status::Succeeded);
    // All three started together at t=0; deploy after the slowest.
    for action in ["build", "test", "lint"] {
        assert_eq!(
            Sim::since_t0(sim.invoker.calls_of(action)[0].at),
            0,
            "{action}"
        );
    }
    assert_eq!(Sim::since_t0(sim.invoker.calls_of("deploy")[0].at), 500);
    assert_eq!(
        inst.data["checks"],
        json!({"build": {}, "test": {}, "lint": {"lint": "clean"}}),
        "each branch's output, by name"
    );
    let t = transitions(&sim, &id);
    assert!(
        t.contains(&"[build] compile-done->package".to_owned()),
        "{t:?}"
    );
    assert_eq!(t.last().unwrap(), "deploy-done->shipped");
    assert!(inst.fan.is_none());
}

#[tokio::test]
async fn a_failing_branch_cancels_its_siblings_and_completed_branch_steps_are_undone() {
    let sim = Sim::new(PIPELINE, "");
    sim.on("build", script(|_| done(json!({}))));
    sim.on("package", script(|_| done(json!({"published": "v1"}))));
    sim.on("test", slow(200, failed("fatal")));
    sim.on("lint", slow(10_000, done(json!({}))));
    sim.on("unpublish", script(|_| done(json!({}))));
    let id = sim.start(json!({})).await;
    sim.run_for(1_000, 50).await;
    let inst = sim.instance(&id);
    assert_eq!(inst.status, Status::Failed, "{:?}", transitions(&sim, &id));
    assert_eq!(inst.state, "broken");
    // lint was running: stopped, its invocation dropped, never completed.
    assert_eq!(sim.invoker.dropped.load(Ordering::SeqCst), 1);
    assert!(sim.invoker.calls_of("deploy").is_empty());
    // build had completed `package` (compensable): it was undone, with its result.
    let undo = sim.invoker.calls_of("unpublish");
    assert_eq!(undo.len(), 1);
    let history = sim.store.history(&id, 0).unwrap();
    assert!(history.iter().any(|r| matches!(
        &r.kind,
        RecordKind::Compensated { undone, .. } if undone == "build/package"
    )));
    let t = transitions(&sim, &id);
    assert!(t.contains(&"checks-error.fatal->undo".to_owned()), "{t:?}");
    // Nothing is left running or armed.
    sim.advance(20_000).await;
    assert_eq!(sim.store.next_timer().unwrap(), None);
}

const FANOUT: &str = r#"
process: etl
version: 1
start: load
states:
  load:
    type: map
    items: .files
    max_concurrency: 3
    tolerated_failures: TOLERATED
    output: .loaded
    branch:
      start: extract
      states:
        extract: { action: extract, input: '{file: .item}', output: .rows, on: { done: stored } }
        stored: { type: succeed, output: '{file: .item, rows: .rows.rows}' }
    on:
      done: report
      error: failed
  report: { type: succeed, output: .loaded }
  failed: { type: fail }
"#;

fn etl(tolerated: &str) -> Sim {
    let sim = Sim::new(&FANOUT.replace("TOLERATED", tolerated), "");
    // Each file takes (10 - n) * 10 ms, so later items finish first; files
    // named bad-* fail for good.
    sim.on(
        "extract",
        Arc::new(|ctx: Ctx| {
            let file = ctx.inv.input["file"]
                .as_str()
                .unwrap_or_default()
                .to_owned();
            let n: u64 = file
                .trim_start_matches(|c: char| !c.is_ascii_digit())
                .parse()
                .unwrap_or(0);
            Box::pin(async move {
                let until = ctx.clock.now().plus(weft_model::Span((10 - n) * 10));
                ctx.clock.sleep_until(until).await;
                if file.starts_with("bad") {
                    failed("fatal")
                } else {
                    StepOutcome::Done {
                        output: json!({"rows": n * 100}),
                    }
                }
            })
        }),
    );
    sim
}

fn files(bad: &[u64]) -> Value {
    let names: Vec<String> = (0..10)
        .map(|n| {
            if bad.contains(&n) {
                format!("bad{n}")
            } else {
                format!("f{n}")
            }
        })
        .collect();
    json!({ "files": names })
}

#[tokio::test]
async fn map_bounds_concurrency_and_keeps_results_in_item_order() {
    let sim = etl("0");
    let id = sim.start(files(&[])).await;
    sim.run_for(2_000, 5).await;
    let inst = sim.instance(&id);
    assert_eq!(inst.status, Status::Succeeded);
    assert_eq!(sim.invoker.calls_of("extract").len(), 10);
    assert_eq!(
        sim.invoker.max_running("extract"),
        3,
        "never more than max_concurrency"
    );
    let out = inst.output.unwrap();
    let rows: Vec<u64> = out
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v["rows"].as_u64().unwrap())
        .collect();
    assert_eq!(
        rows,
        (0..10).map(|n| n * 100).collect::<Vec<_>>(),
        "in item order"
    );
}

#[tokio::test]
async fn map_tolerates_failures_up_to_its_limit() {
    let sim = etl("2");
    let id = sim.start(files(&[3, 7])).await;
    sim.run_for(2_000, 5).await;
    let inst = sim.instance(&id);
    assert_eq!(inst.status, Status::Succeeded);
    let out = inst.output.unwrap();
    assert_eq!(out[3], Value::Null, "a failed item leaves a null");
    assert_eq!(out[4]["rows"], 400);

    let sim = etl("\"20%\"");
    let id = sim.start(files(&[1, 2, 5])).await;
    sim.run_for(2_000, 5).await;
    let inst = sim.instance(&id);
    assert_eq!(inst.status, Status::Failed, "3 of 10 is more than 20%");
    assert!(
        sim.invoker.calls_of("extract").len() < 10,
        "items not yet started are not started once the map failed"
    );
    assert_eq!(sim.invoker.max_running("extract"), 3);
}

#[tokio::test]
async fn branches_carry_on_after_a_restart_and_each_step_runs_once() {
    let mut sim = Sim::new(PIPELINE, "");
    sim.on("build", slow(300, done(json!({}))));
    sim.on("package", slow(300, done(json!({}))));
    sim.on("test", slow(100, done(json!({}))));
    sim.on("lint", slow(100, done(json!({}))));
    let id = sim.start(json!({})).await;
    sim.advance(200).await; // test and lint done; build still running
    sim.reboot().await;
    sim.run_for(2_000, 50).await;
    let inst = sim.instance(&id);
    assert_eq!(
        inst.status,
        Status::Succeeded,
        "{:?}",
        transitions(&sim, &id)
    );
    // The build in flight at the crash ran again (at-least-once); the
    // finished branches did not.
    assert_eq!(sim.invoker.calls_of("test").len(), 1);
    assert_eq!(sim.invoker.calls_of("lint").len(), 1);
    assert_eq!(sim.invoker.calls_of("package").len(), 1);
    assert_eq!(sim.invoker.calls_of("deploy").len(), 1);
    assert_gap_free(&sim, &id);
}

/// Takes `ms` of simulated time, then answers `out(n)` for input `{n}`.
fn work_for(ms: u64, out: fn(u64) -> Value) -> Script {
    Arc::new(move |ctx: Ctx| {
        let n = ctx.inv.input["n"].as_u64().unwrap_or(0);
        Box::pin(async move {
            let until = ctx.clock.now().plus(weft_model::Span(ms));
            ctx.clock.sleep_until(until).await;
            done(out(n))
        })
    })
}

const EACH: &str = r#"
process: each
version: 1
start: all
states:
  all:
    type: map
    items: .items
    max_concurrency: 3
    output: .done
    branch:
      start: work
      states:
        work: { action: work, input: '{n: .item}', compensate: unwork, output: .r, on: { done: ok } }
        ok: { type: succeed, output: .r }
    on: { done: end }
  end: { type: succeed, output: .done }
"#;

/// The engine crashes (the sled store closed and opened again) every 50 ms
/// of a 40-item map: each branch's slot is its own key, written when its
/// branch moves, and after every reopen the map carries on from exactly
/// what was committed — results in item order, no item lost, none of the
/// finished ones run again.
#[tokio::test]
async fn a_map_on_sled_survives_restarts_with_every_slot_intact() {
    let dir = tempfile::tempdir().unwrap();
    let mut sim = Sim::on_sled(EACH, "", dir.path());
    sim.on("work", work_for(20, |n| json!(n * 10)));
    let items: Vec<u64> = (0..40).collect();
    let id = sim.start(json!({ "items": items })).await;
    let mut reboots = 0;
    for _ in 0..12 {
        sim.run_for(50, 5).await;
        if sim.instance(&id).status.is_finished() {
            break;
        }
        sim.reboot().await;
        reboots += 1;
    }
    sim.run_for(2_000, 10).await;
    let inst = sim.instance(&id);
    assert_eq!(
        inst.status,
        Status::Succeeded,
        "{:?}",
        transitions(&sim, &id)
    );
    assert!(reboots >= 5, "the map was interrupted {reboots} times");
    let expected: Vec<Value> = (0..40).map(|n| json!(n * 10)).collect();
    assert_eq!(inst.output, Some(Value::Array(expected)));
    let calls = sim.invoker.calls_of("work");
    for n in 0..40 {
        let slot = format!("/all/1/{n}/work/");
        assert!(
            calls.iter().any(|c| c.key.contains(&slot)),
            "item {n} never ran"
        );
    }
    // At-least-once: only a branch in flight at a crash runs again.
    assert!(
        calls.len() <= 40 + 3 * reboots,
        "{} calls for 40 items and {reboots} restarts",
        calls.len()
    );
    assert_gap_free(&sim, &id);
}

/// Cancelled with compensation after a restart mid-map: every branch step
/// that completed is undone once, read back from the slots on disk.
#[tokio::test]
async fn a_map_cancelled_after_a_restart_undoes_each_completed_branch_step_once() {
    let dir = tempfile::tempdir().unwrap();
    let mut sim = Sim::on_sled(EACH, "", dir.path());
    sim.on("work", work_for(20, |n| json!(n)));
    sim.on("unwork", slow(5, done(json!({}))));
    let items: Vec<u64> = (0..30).collect();
    let id = sim.start(json!({ "items": items })).await;
    sim.run_for(95, 5).await;
    sim.reboot().await;
    sim.advance(1).await;
    sim.engine.cancel(&id, true).await.unwrap();
    sim.run_for(2_000, 10).await;
    let inst = sim.instance(&id);
    assert_eq!(
        inst.status,
        Status::Cancelled,
        "{:?}",
        transitions(&sim, &id)
    );
    let done_items: std::collections::BTreeSet<String> = sim
        .store
        .history(&id, 0)
        .unwrap()
        .into_iter()
        .filter_map(|r| match (r.branch, r.kind) {
            (Some(b), RecordKind::Transition { from, event, .. })
                if from == "work" && event == "done" =>
            {
                Some(b)
            }
            _ => None,
        })
        .collect();
    assert!(done_items.len() >= 6, "{done_items:?}");
    let undone = sim.invoker.calls_of("unwork");
    assert_eq!(
        undone.len(),
        done_items.len(),
        "one undo per completed item: {done_items:?}"
    );
}
