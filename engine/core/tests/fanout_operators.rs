//! Operators on an instance inside a parallel or map state: cancel (with
//! and without undoing), redrive of one parked on the state, and migrate —
//! on a simulated clock.

#![allow(clippy::unwrap_used)] // an unwrap that fails is a test that fails

mod support;

use std::sync::atomic::Ordering;

use serde_json::json;
use support::*;
use weft_core::{Clock, Error};
use weft_model::{InstanceId, Status};

const PIPELINE: &str = r#"
process: pipeline
version: 1
start: checks
states:
  checks:
    type: parallel
    branches:
      build:
        start: package
        states:
          package: { action: package, compensate: unpublish, on: { done: built } }
          built: { type: succeed }
      test:
        start: unit
        states:
          unit: { action: test, on: { done: passed } }
          passed: { type: succeed }
    on:
      done: deploy
  deploy: { action: deploy, on: { done: shipped } }
  shipped: { type: succeed }
"#;

fn pipeline() -> Sim {
    let sim = Sim::new(PIPELINE, "");
    sim.on("package", slow(100, done(json!({"artifact": "a1"}))));
    sim.on("test", slow(10_000, done(json!({"passed": true}))));
    sim
}

fn called(sim: &Sim, action: &str, id: &InstanceId) -> usize {
    sim.invoker
        .calls_of(action)
        .iter()
        .filter(|c| c.key.starts_with(id.as_str()))
        .count()
}

#[tokio::test]
async fn cancel_inside_a_parallel_stops_every_branch() {
    let sim = pipeline();
    let id = sim.start(json!({})).await;
    sim.advance(500).await; // build finished, test still running
    sim.engine.cancel(&id, false).await.unwrap();
    sim.engine.settle().await;
    assert_eq!(sim.instance(&id).status, Status::Cancelled);
    assert_eq!(
        sim.invoker.dropped.load(Ordering::SeqCst),
        1,
        "test stopped"
    );
    sim.advance(20_000).await;
    assert_eq!(called(&sim, "deploy", &id), 0);
    assert_eq!(called(&sim, "unpublish", &id), 0, "nothing undone unasked");
}

#[tokio::test]
async fn cancel_with_compensation_inside_a_parallel_undoes_finished_branch_steps() {
    let sim = pipeline();
    let id = sim.start(json!({})).await;
    sim.advance(500).await;
    sim.engine.cancel(&id, true).await.unwrap();
    sim.advance(1_000).await;
    let inst = sim.instance(&id);
    assert_eq!(inst.status, Status::Cancelled);
    assert_eq!(
        called(&sim, "unpublish", &id),
        1,
        "the package was withdrawn"
    );
    assert_eq!(
        called(&sim, "test", &id),
        1,
        "the running test was not redone"
    );
}

#[tokio::test]
async fn a_redrive_of_an_instance_parked_on_a_parallel_runs_it_again() {
    let sim = pipeline();
    // The test branch fails for good the first time; nothing routes it.
    sim.on(
        "test",
        script(|ctx| {
            if ctx.nth == 0 {
                failed("fatal")
            } else {
                done(json!({"passed": true}))
            }
        }),
    );
    let id = sim.start(json!({})).await;
    sim.advance(500).await;
    assert_eq!(sim.instance(&id).status, Status::Parked);
    sim.engine.redrive(&id).await.unwrap();
    sim.advance(500).await;
    let inst = sim.instance(&id);
    assert_eq!(
        (inst.status, inst.state.as_str()),
        (Status::Succeeded, "shipped")
    );
    assert_eq!(called(&sim, "test", &id), 2);
    assert_eq!(called(&sim, "deploy", &id), 1);
}

#[tokio::test]
async fn migrate_inside_a_parallel_is_refused_with_the_reason_and_works_after_it() {
    let sim = pipeline();
    sim.on("deploy", slow(5_000, done(json!({"deployed": true}))));
    let id = sim.start(json!({})).await;
    sim.advance(500).await;
    // v2 changes only what follows the parallel state.
    sim.deploy(&PIPELINE.replace("version: 1", "version: 2").replace(
        "shipped: { type: succeed }",
        "shipped: { type: succeed, output: '{v: 2}' }",
    ));
    // Branches are small machines of their own, with state of their own:
    // an instance moves between versions before or after them, not inside.
    let refused = sim.engine.migrate(&id, 2).await.unwrap_err();
    assert!(
        matches!(&refused, Error::Refused(_, why) if why.contains("inside the branches of 'checks'")),
        "{refused}"
    );
    let inst = sim.instance(&id);
    assert_eq!(
        (inst.version, inst.status),
        (1, Status::Running),
        "nothing changed"
    );
    // The branches carry on, untouched by the refusal.
    sim.advance(10_500).await;
    assert_eq!(sim.instance(&id).state, "deploy");
    sim.engine.migrate(&id, 2).await.unwrap();
    sim.advance(10_000).await;
    let inst = sim.instance(&id);
    assert_eq!((inst.version, inst.status), (2, Status::Succeeded));
    assert_eq!(inst.output, Some(json!({"v": 2})));
    assert_eq!(called(&sim, "package", &id), 1, "branches ran once");
}

const MAP: &str = r#"
process: batch
version: 1
start: each
states:
  each:
    type: map
    items: .items
    max_concurrency: 2
    branch:
      start: work
      states:
        work: { action: work, compensate: unwork, on: { done: ok } }
        ok: { type: succeed }
    on: { done: finished }
  finished: { type: succeed }
"#;

#[tokio::test]
async fn cancel_inside_a_map_starts_no_more_items_and_can_undo_finished_ones() {
    let sim = Sim::new(MAP, "");
    sim.on("work", slow(1_000, done(json!({"ok": true}))));
    let id = sim.start(json!({"items": [1, 2, 3, 4, 5, 6]})).await;
    sim.advance(1_500).await; // items 0 and 1 done, 2 and 3 running
    assert_eq!(called(&sim, "work", &id), 4);
    sim.engine.cancel(&id, true).await.unwrap();
    sim.advance(10_000).await;
    assert_eq!(sim.instance(&id).status, Status::Cancelled);
    assert_eq!(
        called(&sim, "work", &id),
        4,
        "no item started after the cancel"
    );
    assert_eq!(
        called(&sim, "unwork", &id),
        2,
        "the two finished items undone"
    );
}

const BRANCH_UNDO: &str = r#"
process: branch_undo
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

#[tokio::test]
async fn a_failed_branch_undo_retried_by_cancel_runs_again_after_a_restart() {
    let mut sim = Sim::new(BRANCH_UNDO, "");
    sim.on("charge", script(|_| failed("fatal")));
    sim.on(
        "release",
        std::sync::Arc::new(|ctx: Ctx| {
            Box::pin(async move {
                if ctx.nth == 0 {
                    return failed("fatal");
                }
                let until = ctx.clock.now().plus(weft_model::Span(1_000));
                ctx.clock.sleep_until(until).await;
                done(json!({"released": true}))
            })
        }),
    );
    let id = sim.start(json!({})).await;
    assert_eq!(sim.instance(&id).status, Status::Parked, "the undo failed");
    sim.engine.cancel(&id, true).await.unwrap();
    sim.advance(500).await;
    assert_eq!(called(&sim, "release", &id), 2, "undoing again");
    // A restart while the second undo runs: it runs again, not the old
    // failure replayed.
    sim.reboot().await;
    sim.advance(2_000).await;
    assert_eq!(called(&sim, "release", &id), 3);
    assert_eq!(sim.instance(&id).status, Status::Cancelled);
}
