//! Retries, timeouts, heartbeats, async completion, compensation, redrive and
//! cancel, driven through the pure interpreter with time as an argument.

mod support;

use serde_json::{Value, json};
use support::Run;
use weft_model::interpret::{self, Rejected};
use weft_model::{Command, Event, NoDefaults, Phase, RecordKind, Span, Status, TimerKind};

const FLAKY: &str = r#"
process: flaky
version: 1
start: call
states:
  call:
    action: call_api
    retry: { max_attempts: 4, initial: 200ms, factor: 3, max_delay: 1s, non_retryable: [trap] }
    on: { done: ok, error: broken }
  ok: { type: succeed }
  broken: { type: fail }
"#;

#[test]
fn retries_wait_exactly_the_policy_delays_then_route_the_last_failure() {
    let mut r = Run::start(FLAKY, json!({}));
    let mut waits = Vec::new();
    for _ in 0..3 {
        r.fail("retryable");
        assert_eq!(r.inst.status, Status::Running);
        let t = r.timer(TimerKind::Retry).expect("a retry is armed");
        waits.push(t.at.since(r.now).as_millis());
        assert!(matches!(
            r.inst.step.as_ref().map(|s| &s.phase),
            Some(Phase::Backoff { .. })
        ));
        assert!(
            r.last_commands()
                .iter()
                .any(|c| matches!(c, Command::ArmTimer(_))),
            "the timer is stored"
        );
        r.fire(TimerKind::Retry);
    }
    assert_eq!(waits, [200, 600, 1_000], "initial 200ms, ×3, capped at 1s");
    let attempts: Vec<u32> = r.invokes().iter().map(|i| i.attempt).collect();
    assert_eq!(attempts, [1, 2, 3, 4]);
    assert!(
        r.invokes().iter().all(|i| i.key == r.invokes()[0].key),
        "one key for every attempt"
    );
    r.fail("retryable");
    assert_eq!(
        r.inst.status,
        Status::Failed,
        "the 4th failure uses up the attempts"
    );
    let failed: Vec<u32> = r
        .records
        .iter()
        .filter_map(|k| match k {
            RecordKind::AttemptFailed {
                attempt, failure, ..
            } => {
                assert_eq!(failure.kind, "retryable");
                Some(*attempt)
            }
            _ => None,
        })
        .collect();
    assert_eq!(
        failed,
        [1, 2, 3],
        "the history records every retried attempt with its failure"
    );
    assert!(r.records.iter().any(|k| matches!(k, RecordKind::Transition { event, failure: Some(_), .. } if event == "error.retryable")));
    assert!(r.inst.timers.is_empty());
}

#[test]
fn fatal_typed_and_non_retryable_failures_skip_retries() {
    for kind in [
        "fatal",
        "trap",
        "card_declined",
        "out_of_memory",
        "output_too_large",
        "limit",
        "adapter",
    ] {
        let mut r = Run::start(FLAKY, json!({}));
        r.fail(kind);
        assert_eq!(r.inst.status, Status::Failed, "{kind} is not retried");
        assert!(r.timer(TimerKind::Retry).is_none());
    }
}

#[test]
fn timeouts_and_heartbeat_losses_are_retried_like_transient_failures() {
    for kind in ["timeout", "heartbeat"] {
        let mut r = Run::start(FLAKY, json!({}));
        r.fail(kind);
        assert!(r.timer(TimerKind::Retry).is_some(), "{kind} is retried");
    }
}

#[test]
fn a_retry_that_would_pass_the_deadline_is_not_attempted() {
    let text = FLAKY.replace(
        "    on: { done: ok",
        "    deadline: 500ms\n    on: { done: ok",
    );
    let mut r = Run::start(&text, json!({}));
    assert!(r.timer(TimerKind::Deadline).is_some());
    r.advance(100);
    r.fail("retryable"); // retry at +200ms = 300ms < 500ms: fine
    r.fire(TimerKind::Retry);
    r.advance(100);
    r.fail("retryable"); // retry at +600ms: past the deadline
    assert_eq!(r.inst.status, Status::Failed);
    assert!(
        r.inst.timers.is_empty(),
        "the deadline timer went with the step"
    );
}

#[test]
fn the_deadline_stops_a_step_in_flight_with_error_timeout() {
    let text = FLAKY
        .replace(
            "    on: { done: ok, error: broken }",
            "    deadline: 2s\n    on: { done: ok, error.timeout: late, error: broken }",
        )
        .replace(
            "  ok: { type: succeed }",
            "  ok: { type: succeed }\n  late: { type: fail, error: too_late }",
        );
    let mut r = Run::start(&text, json!({}));
    let key = r.key();
    r.fire(TimerKind::Deadline);
    assert_eq!(r.inst.status, Status::Failed);
    assert_eq!(r.inst.state, "late");
    assert_eq!(
        r.last.as_ref().map(|a| a.settled.clone()),
        Some(vec![key.clone()]),
        "the running invocation is settled, so the driver stops it"
    );
    // Its outcome, arriving late, is dropped.
    let late = Event::StepDone {
        key,
        output: json!(1),
    };
    assert!(interpret::apply(&r.p, &NoDefaults, &r.inst, &late, r.now).is_err());
}

const ASYNC: &str = r#"
process: approval
version: 1
start: ask
states:
  ask:
    action: ask_human
    timeout: 1h
    heartbeat: 10m
    retry: { max_attempts: 2, initial: 1s }
    output: .answer
    on: { done: ok, error: broken }
  ok: { type: succeed }
  broken: { type: fail }
"#;

#[test]
fn a_pending_step_waits_on_its_token_with_timeout_and_heartbeat_timers() {
    let mut r = Run::start(ASYNC, json!({}));
    let key = r.key();
    r.event(Event::StepPending {
        key: key.clone(),
        token: "tok-1".into(),
    })
    .expect("applies");
    assert_eq!(
        r.last.as_ref().map(|a| a.settled.clone()),
        Some(vec![key.clone()]),
        "the invocation is over"
    );
    assert!(r.last_commands().contains(&Command::OpenToken {
        token: "tok-1".into(),
        key: key.clone()
    }));
    let timeout = r.timer(TimerKind::Timeout).expect("timeout armed");
    assert_eq!(timeout.at.since(r.now), Span::from_secs(3_600));
    // Heartbeats push the heartbeat deadline out and keep their details.
    r.advance(9 * 60_000);
    r.event(Event::Heartbeat {
        key: key.clone(),
        details: "{\"done\":40}".into(),
    })
    .expect("applies");
    let hb = r.timer(TimerKind::Heartbeat).expect("re-armed");
    assert_eq!(hb.at.since(r.now), Span::from_secs(600));
    // Then it goes quiet: the heartbeat timer fails the attempt, which is
    // retried with the last details handed to the next attempt.
    r.fire(TimerKind::Heartbeat);
    assert!(r.last_commands().contains(&Command::CloseToken {
        token: "tok-1".into(),
        key: key.clone(),
    }));
    assert!(
        r.timer(TimerKind::Timeout).is_none(),
        "attempt timers go with the attempt"
    );
    r.fire(TimerKind::Retry);
    let second = r.invokes().pop().expect("second attempt");
    assert_eq!(second.attempt, 2);
    assert_eq!(second.last_heartbeat.as_deref(), Some("{\"done\":40}"));
    assert!(r.records.iter().any(|k| matches!(k, RecordKind::AttemptFailed { failure, heartbeat: Some(_), .. } if failure.kind == "heartbeat")));
    // The second attempt completes through its token.
    let key = r.key();
    r.event(Event::StepPending {
        key: key.clone(),
        token: "tok-2".into(),
    })
    .expect("applies");
    r.done(json!("yes"));
    assert_eq!(r.inst.status, Status::Succeeded);
    assert_eq!(r.inst.data["answer"], "yes");
    assert!(r.inst.timers.is_empty());
    // A second completion finds nothing waiting.
    let again = Event::StepDone {
        key,
        output: json!("again"),
    };
    assert_eq!(
        interpret::apply(&r.p, &NoDefaults, &r.inst, &again, r.now),
        Err(Rejected::Finished(Status::Succeeded))
    );
}

#[test]
fn a_pending_step_times_out_through_its_durable_timer() {
    let mut r = Run::start(
        &ASYNC.replace(
            "retry: { max_attempts: 2, initial: 1s }",
            "retry: { max_attempts: 1 }",
        ),
        json!({}),
    );
    let key = r.key();
    r.event(Event::StepPending {
        key,
        token: "t".into(),
    })
    .expect("applies");
    r.fire(TimerKind::Timeout);
    assert_eq!(r.inst.status, Status::Failed);
    assert_eq!(
        r.inst.error.as_ref().map(|e| e.kind.as_str()),
        Some("timeout")
    );
}

#[test]
fn stale_and_repeated_timers_are_rejected() {
    let mut r = Run::start(FLAKY, json!({}));
    r.fail("retryable");
    let t = r.timer(TimerKind::Retry).expect("armed");
    r.fire(TimerKind::Retry);
    let again = Event::Timer {
        kind: t.kind,
        key: t.key.clone(),
        at: t.at,
    };
    assert_eq!(
        interpret::apply(&r.p, &NoDefaults, &r.inst, &again, r.now),
        Err(Rejected::Stale { key: t.key })
    );
}

const SAGA: &str = r#"
process: saga
version: 1
start: one
states:
  one:   { action: a1, output: .one, compensate: u1, on: { done: two, error: undo } }
  two:   { action: a2, output: .two, on: { done: three, error: undo } }
  three: { action: a3, output: .three, compensate: { action: u3, input: '{id: .three.id}' }, on: { done: four, error: undo } }
  four:  { action: a4, compensate: u4, on: { done: ok, error: undo } }
  undo:  { type: compensate, then: rolled_back }
  ok: { type: succeed }
  rolled_back: { type: fail, error: rolled_back }
"#;

/// Runs the saga failing at step `at` (1-based) and returns the
/// compensations invoked, in order, with their inputs.
fn saga_failing_at(at: usize) -> (Run, Vec<(String, Value)>) {
    let mut r = Run::start(SAGA, json!({}));
    for i in 1..at {
        r.done(json!({"id": format!("r{i}")}));
    }
    let before = r.invokes().len();
    r.fail("fatal");
    let mut undos = Vec::new();
    while r.inst.status == Status::Running {
        let inv = r.invokes().pop().expect("an undo is invoked");
        assert!(inv.key.ends_with("/undo"), "{}", inv.key);
        undos.push((inv.action.clone(), inv.input.clone()));
        r.done(json!({"undone": inv.action}));
    }
    assert_eq!(r.invokes().len(), before + undos.len());
    (r, undos)
}

#[test]
fn compensation_undoes_exactly_the_completed_compensable_steps_newest_first() {
    let expected: [&[&str]; 4] = [&[], &["u1"], &["u1"], &["u3", "u1"]];
    for (i, want) in expected.iter().enumerate() {
        let (r, undos) = saga_failing_at(i + 1);
        let got: Vec<&str> = undos.iter().map(|(a, _)| a.as_str()).collect();
        assert_eq!(&got, want, "failing at step {}", i + 1);
        assert_eq!(r.inst.status, Status::Failed);
        assert_eq!(r.inst.state, "rolled_back");
        assert!(r.inst.undo.is_empty());
        let compensated = r
            .records
            .iter()
            .filter(|k| matches!(k, RecordKind::Compensated { .. }))
            .count();
        assert_eq!(compensated, want.len());
    }
    // Inputs: the undone step's result by default, or the compensation's jq.
    let (_, undos) = saga_failing_at(4);
    assert_eq!(undos[0].1, json!({"id": "r3"}));
    assert_eq!(undos[1].1, json!({"id": "r1"}));
}

#[test]
fn a_failing_compensation_parks_and_redrive_finishes_the_rollback() {
    let mut r = Run::start(SAGA, json!({}));
    for i in 1..4 {
        r.done(json!({"id": format!("r{i}")}));
    }
    r.fail("fatal"); // step four: undo u3, then u1
    let u3 = r.key();
    r.fail("fatal"); // u3 fails and has no retries left
    assert_eq!(r.inst.status, Status::Parked);
    assert_eq!(
        r.inst.error.as_ref().map(|e| e.kind.as_str()),
        Some("fatal")
    );
    assert!(
        r.inst
            .error
            .as_ref()
            .is_some_and(|e| e.message.contains("undoing 'three' with u3 failed"))
    );
    // Parked: outcomes and timers do not move it.
    let stray = Event::StepDone {
        key: u3.clone(),
        output: json!(1),
    };
    assert_eq!(
        interpret::apply(&r.p, &NoDefaults, &r.inst, &stray, r.now),
        Err(Rejected::Parked)
    );
    r.event(Event::Redrive).expect("applies");
    let again = r.invokes().pop().expect("u3 again");
    assert_eq!(
        (again.key.as_str(), again.attempt),
        (u3.as_str(), 2),
        "same key, next attempt"
    );
    r.done(json!({}));
    r.done(json!({})); // u1
    assert_eq!(r.inst.status, Status::Failed);
    assert_eq!(r.inst.state, "rolled_back");
    let redriven = r
        .records
        .iter()
        .filter(|k| matches!(k, RecordKind::Redriven { .. }))
        .count();
    assert_eq!(redriven, 1);
}

#[test]
fn redrive_retries_only_the_failed_step_and_only_when_parked() {
    let text = "process: p\nversion: 1\nstart: a\nstates:\n  a: { action: x, on: { done: b } }\n  b: { action: y, on: { done: ok } }\n  ok: { type: succeed }\n";
    let mut r = Run::start(text, json!({}));
    assert_eq!(
        r.event(Event::Redrive),
        Err(Rejected::NotParked(Status::Running))
    );
    r.done(json!(1));
    r.fail("fatal"); // b has no error route: parked
    assert_eq!(r.inst.status, Status::Parked);
    let b_key = r.key();
    r.event(Event::Redrive).expect("applies");
    let invokes = r.invokes();
    assert_eq!(
        invokes.iter().filter(|i| i.action == "x").count(),
        1,
        "a is not run again"
    );
    assert_eq!(invokes.last().map(|i| i.key.clone()), Some(b_key));
    r.done(json!(2));
    assert_eq!(r.inst.status, Status::Succeeded);
}

#[test]
fn cancel_ends_the_instance_and_with_compensate_undoes_first() {
    let mut r = Run::start(SAGA, json!({}));
    r.done(json!({"id": "r1"}));
    r.done(json!({"id": "r2"}));
    let in_flight = r.key();
    r.event(Event::Cancel { compensate: false })
        .expect("applies");
    assert_eq!(r.inst.status, Status::Cancelled);
    assert!(
        r.last
            .as_ref()
            .is_some_and(|a| a.settled.contains(&in_flight)),
        "the running step is dropped"
    );
    assert!(r.inst.undo.len() == 1, "nothing was undone");

    let mut r = Run::start(SAGA, json!({}));
    r.done(json!({"id": "r1"}));
    r.done(json!({"id": "r2"}));
    r.done(json!({"id": "r3"}));
    r.event(Event::Cancel { compensate: true })
        .expect("applies");
    let mut undone = Vec::new();
    while r.inst.status == Status::Running {
        undone.push(r.invokes().pop().map(|i| i.action).unwrap_or_default());
        r.done(json!({}));
    }
    assert_eq!(undone, ["u3", "u1"]);
    assert_eq!(r.inst.status, Status::Cancelled);
    assert!(matches!(
        r.records.last(),
        Some(RecordKind::Cancelled { .. })
    ));
}
