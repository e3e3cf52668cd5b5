//! Wait states, signals, wait timers and migration between versions, driven
//! through the pure interpreter with time as an argument.

#![allow(clippy::unwrap_used)] // an unwrap that fails is a test that fails

mod support;

use serde_json::{Value, json};
use support::{Run, process};
use weft_model::interpret::{self, Rejected};
use weft_model::{
    Command, Event, Millis, NoDefaults, Process, RecordKind, Span, Status, TimerKind,
};

const APPROVAL: &str = r#"
process: approval
version: 1
start: review
states:
  review:
    type: wait
    timeout: 2d
    output: .decision
    on:
      approve: approved
      reject: rejected
      timeout: escalate
  escalate:
    type: wait
    on:
      approve: approved
      reject: rejected
  approved: { type: succeed }
  rejected: { type: fail, error: rejected }
"#;

/// Started in 2027, so `until` times in 2020 are past and in 2030 ahead.
fn start(p: Process, input: Value) -> Run {
    Run::start_at(p, input, Millis(1_800_000_000_000))
}

#[test]
fn approval_before_the_timeout_cancels_the_timer() {
    let mut r = start(process(APPROVAL), json!({"loan": 1}));
    assert_eq!(r.inst.status, Status::Waiting);
    let timer = r.inst.timers[0].clone();
    assert_eq!(timer.at, r.now.plus(Span::parse("2d").unwrap()));
    r.now = r.now.plus(Span::from_secs(3600));
    r.signal("approve", json!({"by": "ana"})).unwrap();
    assert_eq!(r.inst.status, Status::Succeeded);
    assert_eq!(r.inst.data["decision"], json!({"by": "ana"}));
    assert!(r.inst.timers.is_empty());
    assert!(r.commands.contains(&Command::CancelTimer(timer.clone())));
    // The timer, should it fire late anyway, finds nothing to do.
    let late = Event::Timer {
        kind: TimerKind::Wait,
        key: timer.key,
        at: timer.at,
    };
    assert!(matches!(
        interpret::apply(&r.p, &NoDefaults, &r.inst, &late, timer.at),
        Err(Rejected::Finished(Status::Succeeded))
    ));
}

#[test]
fn timeout_escalates_then_approval_arrives() {
    let mut r = start(process(APPROVAL), json!({}));
    r.fire(TimerKind::Wait);
    assert_eq!(r.inst.state, "escalate");
    assert_eq!(r.inst.status, Status::Waiting);
    assert!(r.inst.timers.is_empty(), "escalation waits without a timer");
    r.signal("approve", json!({"by": "boss"})).unwrap();
    assert_eq!(r.path(), ["timeout->escalate", "approve->approved"]);
    // No `output` path on `escalate`: an object payload is merged in.
    assert_eq!(r.inst.data["by"], "boss");
}

#[test]
fn a_signal_the_state_does_not_accept_is_rejected_with_what_it_accepts() {
    let mut r = start(process(APPROVAL), json!({}));
    let before = r.inst.clone();
    let err = r.signal("approved", json!({})).unwrap_err();
    assert_eq!(
        err.to_string(),
        "state 'review' does not accept 'approved'; it accepts: approve, reject"
    );
    assert_eq!(r.inst, before, "nothing changed");
}

#[test]
fn a_payload_that_cannot_be_stored_is_rejected() {
    let mut r = start(
        process(&APPROVAL.replace("    output: .decision\n", "")),
        json!({}),
    );
    let err = r.signal("approve", json!([1, 2])).unwrap_err();
    assert!(err.to_string().contains("is not an object"), "{err}");
    assert_eq!(r.inst.status, Status::Waiting);
}

#[test]
fn a_task_state_accepts_no_signals() {
    let p = process(
        r#"
process: p
version: 1
start: work
states:
  work: { action: a, on: { done: end } }
  end: { type: succeed }
"#,
    );
    let mut r = start(p, json!({}));
    let err = r.signal("go", json!({})).unwrap_err();
    assert!(
        err.to_string().contains("only wait states accept them"),
        "{err}"
    );
}

const TIMERS: &str = r#"
process: timers
version: 1
start: cool_off
states:
  cool_off:
    type: wait
    wait: { for: 10m }
    on: { elapsed: until_due }
  until_due:
    type: wait
    wait: { until: .due }
    on:
      elapsed: done
      error.mapping: bad_date
  done: { type: succeed }
  bad_date: { type: fail }
"#;

#[test]
fn wait_for_then_until_in_the_past_fires_at_once() {
    let mut r = start(process(TIMERS), json!({"due": "2020-01-01T00:00:00Z"}));
    let t = r.inst.timers[0].clone();
    assert_eq!(t.at, r.now.plus(Span::from_secs(600)));
    r.fire(TimerKind::Wait);
    // The due time is long past: `elapsed` follows in the same step.
    assert_eq!(r.inst.status, Status::Succeeded);
    assert_eq!(r.path(), ["elapsed->until_due", "elapsed->done"]);
}

#[test]
fn wait_until_a_future_time_arms_a_timer_at_that_time() {
    let mut r = start(process(TIMERS), json!({"due": "2030-01-01T00:00:00+01:00"}));
    r.fire(TimerKind::Wait);
    assert_eq!(r.inst.state, "until_due");
    let t = &r.inst.timers[0];
    assert_eq!(t.at, Millis::parse_rfc3339("2029-12-31T23:00:00Z").unwrap());
}

#[test]
fn until_that_is_not_a_time_routes_error_mapping() {
    let mut r = start(process(TIMERS), json!({"due": "next tuesday"}));
    r.fire(TimerKind::Wait);
    assert_eq!(r.inst.status, Status::Failed);
    assert_eq!(r.path(), ["elapsed->until_due", "error.mapping->bad_date"]);
}

#[test]
fn cancel_while_waiting_drops_the_timer() {
    let mut r = start(process(APPROVAL), json!({}));
    r.event(Event::Cancel { compensate: false }).unwrap();
    assert_eq!(r.inst.status, Status::Cancelled);
    assert!(r.inst.timers.is_empty() && r.inst.waiting.is_none());
}

#[test]
fn migrate_moves_a_waiting_instance_and_keeps_its_timer() {
    let mut r = start(process(APPROVAL), json!({"amount": 5}));
    let v2 = process(&APPROVAL.replace("version: 1", "version: 2").replace(
        "      reject: rejected\n      timeout",
        "      reject: rejected\n      defer: escalate\n      timeout",
    ));
    let a = interpret::migrate(&v2, &r.inst, r.now).unwrap();
    assert_eq!(a.instance.version, 2);
    assert_eq!(a.instance.timers, r.inst.timers);
    assert_eq!(
        a.instance.waiting.as_ref().unwrap().events,
        ["approve", "reject", "defer"]
    );
    assert!(matches!(
        a.records[0].kind,
        RecordKind::Migrated {
            from_version: 1,
            to_version: 2,
            ..
        }
    ));
    // On v2 the new signal is accepted.
    r.p = v2;
    r.inst = a.instance;
    r.records.extend(a.records.into_iter().map(|x| x.kind));
    r.signal("defer", json!({})).unwrap();
    assert_eq!(r.inst.state, "escalate");
}

#[test]
fn migrate_refuses_when_the_state_or_data_does_not_fit() {
    let r = start(process(APPROVAL), json!({"amount": "five"}));
    let renamed = process(
        &APPROVAL
            .replace("version: 1", "version: 2")
            .replace("review", "first_review"),
    );
    let err = interpret::migrate(&renamed, &r.inst, r.now).unwrap_err().0;
    assert_eq!(
        err,
        "version 2 has no state 'review', where the instance is"
    );

    let as_task = process(
        r#"
process: approval
version: 3
start: review
states:
  review: { action: decide, on: { done: approved } }
  approved: { type: succeed }
"#,
    );
    let err = interpret::migrate(&as_task, &r.inst, r.now).unwrap_err().0;
    assert!(
        err.contains("is a task state, but the instance is in a wait state"),
        "{err}"
    );

    let guarded = process(
        &APPROVAL.replace("version: 1", "version: 4").replace(
            "      approve: approved\n      reject: rejected\n      timeout",
            "      approve:\n        - { if: '.amount + 1 > 2', to: approved }\n      reject: rejected\n      timeout",
        ),
    );
    let err = interpret::migrate(&guarded, &r.inst, r.now).unwrap_err().0;
    assert!(
        err.starts_with("the instance data does not fit version 4"),
        "{err}"
    );

    let same = process(APPROVAL);
    assert!(interpret::migrate(&same, &r.inst, r.now).is_err());
}
