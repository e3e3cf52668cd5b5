//! SLAs: a process's and a state's `sla` flag an instance that runs or
//! stays too long, through durable timers, without changing what it does.

#![allow(clippy::unwrap_used)] // an unwrap that fails is a test that fails

mod support;

use serde_json::json;
use support::Run;
use weft_model::interpret::{self, Rejected};
use weft_model::{Event, NoDefaults, RecordKind, Span, Status, TimerKind};

const ORDER: &str = r#"
process: order
version: 1
sla: 1h
start: reserve
states:
  reserve:
    action: reserve
    sla: 5m
    on: { done: approval, error: failed }
  approval:
    type: wait
    sla: 2h
    on: { approve: done, again: approval }
  done: { type: succeed }
  failed: { type: fail }
"#;

fn sla_timers(r: &Run) -> Vec<String> {
    let mut keys: Vec<String> = r
        .inst
        .timers
        .iter()
        .filter(|t| t.kind == TimerKind::Sla)
        .map(|t| t.key.clone())
        .collect();
    keys.sort();
    keys
}

fn exceeded(r: &Run) -> Vec<(Option<String>, String)> {
    r.records
        .iter()
        .filter_map(|k| match k {
            RecordKind::SlaExceeded {
                state, at_state, ..
            } => Some((state.clone(), at_state.clone())),
            _ => None,
        })
        .collect()
}

#[test]
fn a_state_left_in_time_flags_nothing_and_its_timer_goes() {
    let mut r = Run::start(ORDER, json!({}));
    let id = r.inst.id.clone();
    assert_eq!(
        sla_timers(&r),
        [format!("{id}#sla"), format!("{id}#sla/reserve/1")]
    );
    let reserve = r
        .inst
        .timers
        .iter()
        .find(|t| t.key.ends_with("/reserve/1"))
        .cloned()
        .unwrap();
    assert_eq!(reserve.at, r.now.plus(Span::parse("5m").unwrap()));
    r.advance(60_000);
    r.done(json!({}));
    assert_eq!(r.inst.status, Status::Waiting);
    assert_eq!(
        sla_timers(&r),
        [format!("{id}#sla"), format!("{id}#sla/approval/1")]
    );
    assert!(exceeded(&r).is_empty());
    assert!(r.inst.overdue.is_empty());
    // The left state's timer, fired late, finds nothing to flag.
    let late = Event::Timer {
        kind: TimerKind::Sla,
        key: reserve.key.clone(),
        at: reserve.at,
    };
    assert!(matches!(
        interpret::apply(&r.p, &NoDefaults, &r.inst, &late, reserve.at),
        Err(Rejected::Stale { .. })
    ));
}

#[test]
fn a_state_over_its_sla_is_flagged_and_the_flag_goes_when_it_leaves() {
    let mut r = Run::start(ORDER, json!({}));
    r.done(json!({}));
    let entered = r.now;
    let approval = r
        .inst
        .timers
        .iter()
        .find(|t| t.key.ends_with("/approval/1"))
        .cloned()
        .unwrap();
    r.now = approval.at;
    r.event(Event::Timer {
        kind: TimerKind::Sla,
        key: approval.key.clone(),
        at: approval.at,
    })
    .unwrap();
    // Flagged, and still waiting where it was.
    assert_eq!(r.inst.status, Status::Waiting);
    assert_eq!(r.inst.state, "approval");
    assert_eq!(r.inst.overdue.len(), 1);
    assert_eq!(r.inst.overdue[0].state.as_deref(), Some("approval"));
    assert_eq!(r.inst.overdue[0].since, entered);
    assert_eq!(exceeded(&r), [(Some("approval".into()), "approval".into())]);
    // Not re-armed for the same visit.
    assert!(!sla_timers(&r).iter().any(|k| k.contains("/approval/")));
    // Entering the state again starts a new visit and a new clock.
    r.signal("again", json!({})).unwrap();
    assert!(r.inst.overdue.is_empty());
    assert!(sla_timers(&r).iter().any(|k| k.ends_with("/approval/2")));
}

#[test]
fn the_process_sla_covers_the_whole_run_and_goes_when_it_ends() {
    let mut r = Run::start(ORDER, json!({}));
    let started = r.now;
    r.done(json!({}));
    r.fire_key(&format!("{}#sla", r.inst.id));
    assert_eq!(r.inst.overdue.len(), 1);
    assert_eq!(r.inst.overdue[0].state, None);
    assert_eq!(r.inst.overdue[0].since, started);
    assert_eq!(r.inst.overdue[0].sla, Span::parse("1h").unwrap());
    assert_eq!(exceeded(&r), [(None, "approval".into())]);
    // The state's own clock still runs.
    assert!(sla_timers(&r).iter().any(|k| k.ends_with("/approval/1")));
    r.signal("approve", json!({})).unwrap();
    assert_eq!(r.inst.status, Status::Succeeded);
    assert!(
        sla_timers(&r).is_empty(),
        "a finished instance keeps no SLA timer"
    );
    // What it ran past stays on record.
    assert_eq!(r.inst.overdue.len(), 1);
}

#[test]
fn a_parked_instance_is_flagged_too() {
    let mut r = Run::start(PARKS, json!({}));
    r.fail("boom");
    assert_eq!(r.inst.status, Status::Parked);
    r.fire_key(&format!("{}#sla/work/1", r.inst.id));
    assert_eq!(r.inst.status, Status::Parked);
    assert_eq!(exceeded(&r), [(Some("work".into()), "work".into())]);
    // A redrive retries the same visit: its clock is not reset, the flag
    // stays until the instance leaves the state.
    r.event(Event::Redrive).unwrap();
    assert_eq!(r.inst.status, Status::Running);
    assert_eq!(r.inst.overdue.len(), 1);
    assert!(sla_timers(&r).is_empty());
    r.done(json!({}));
    assert_eq!(r.inst.status, Status::Succeeded);
    assert!(r.inst.overdue.is_empty());
}

const PARKS: &str = r#"
process: parks
version: 1
start: work
states:
  work:
    action: work
    sla: 30s
    on: { done: ok }
  ok: { type: succeed }
"#;

#[test]
fn a_state_passed_through_at_once_arms_nothing() {
    let r = Run::start(
        r#"
process: quick
version: 1
start: a
states:
  a: { type: compensate, then: b, sla: 1m }
  b: { action: b, sla: 1m, on: { done: ok } }
  ok: { type: succeed }
"#,
        json!({}),
    );
    assert_eq!(r.inst.state, "b");
    let id = &r.inst.id;
    assert_eq!(sla_timers(&r), [format!("{id}#sla/b/1")]);
    // Nothing armed then cancelled in the same step.
    assert!(r.commands.iter().all(|c| !matches!(c,
        weft_model::Command::CancelTimer(t) if t.kind == TimerKind::Sla)));
}

#[test]
fn sla_is_checked_where_it_is_written() {
    let bad = |text: &str| match weft_model::parse_process("p.yaml", text) {
        Ok(_) => panic!("accepted:\n{text}"),
        Err(d) => d.to_string(),
    };
    let on_end = bad(r#"
process: p
version: 1
start: ok
states:
  ok: { type: succeed, sla: 1m }
"#);
    assert!(
        on_end.contains("p.yaml:6:") && on_end.contains("sla has no meaning"),
        "{on_end}"
    );
    let in_branch = bad(r#"
process: p
version: 1
start: fan
states:
  fan:
    type: parallel
    branches:
      one:
        start: a
        states:
          a: { action: a, sla: 1m, on: { done: end } }
          end: { type: succeed }
    on: { done: ok }
  ok: { type: succeed }
"#);
    assert!(
        in_branch.contains("inside a branch") && in_branch.contains("p.yaml:12:"),
        "{in_branch}"
    );
    let garbage =
        bad("process: p\nversion: 1\nsla: soon\nstart: ok\nstates:\n  ok: { type: succeed }\n");
    assert!(garbage.contains("p.yaml:3:"), "{garbage}");
}
