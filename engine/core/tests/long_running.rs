//! Waits, signals, wait timers, business keys, versioning and cron
//! schedules, on a simulated clock and the in-memory store — without
//! sleeping.

#![allow(clippy::unwrap_used)] // an unwrap that fails is a test that fails

mod support;

use serde_json::json;
use support::*;
use weft_core::Error;
use weft_model::{Millis, RecordKind, Span, Status};

const DAY: u64 = 86_400_000;

const LOAN: &str = r#"
process: loan
version: 1
start: review
states:
  review:
    type: wait
    timeout: 2d
    output: .decision
    on:
      approve: pay_out
      reject: declined
      timeout: escalate
  escalate:
    type: wait
    on:
      approve: pay_out
      reject: declined
  pay_out:
    action: pay
    on: { done: paid }
  paid: { type: succeed }
  declined: { type: fail, error: declined }
"#;

fn path(sim: &Sim, id: &weft_model::InstanceId) -> Vec<String> {
    sim.store
        .history(id, 0)
        .expect("io")
        .into_iter()
        .filter_map(|r| match r.kind {
            RecordKind::Transition { event, to, .. } => Some(format!("{event}->{to}")),
            _ => None,
        })
        .collect()
}

#[tokio::test]
async fn approval_arrives_before_the_timeout() {
    let sim = Sim::new(LOAN, "");
    sim.on("pay", script(|_| done(json!({"paid": true}))));
    let id = sim.start(json!({"amount": 100})).await;
    assert_eq!(sim.instance(&id).status, Status::Waiting);
    assert_eq!(
        sim.store.next_timer().unwrap(),
        Some(T0.plus(Span(2 * DAY)))
    );
    sim.advance(DAY).await;
    sim.engine
        .signal(&id, "approve", json!({"by": "ana"}))
        .await
        .unwrap();
    sim.engine.settle().await;
    let inst = sim.instance(&id);
    assert_eq!(inst.status, Status::Succeeded);
    assert_eq!(inst.data["decision"], json!({"by": "ana"}));
    assert_eq!(path(&sim, &id), ["approve->pay_out", "done->paid"]);
    // The timeout timer went with the approval: passing its time does nothing.
    assert_eq!(sim.store.next_timer().unwrap(), None);
    sim.advance(2 * DAY).await;
    assert_eq!(sim.invoker.calls_of("pay").len(), 1);
}

#[tokio::test]
async fn the_timeout_escalates_then_approval_arrives() {
    let sim = Sim::new(LOAN, "");
    sim.on("pay", script(|_| done(json!({}))));
    let id = sim.start(json!({})).await;
    sim.advance(2 * DAY - 1).await;
    assert_eq!(sim.instance(&id).state, "review", "not a millisecond early");
    sim.advance(1).await;
    let inst = sim.instance(&id);
    assert_eq!(
        (inst.state.as_str(), inst.status),
        ("escalate", Status::Waiting)
    );
    // A signal the escalation does not accept is refused with what it does.
    let err = sim
        .engine
        .signal(&id, "timeout", json!({}))
        .await
        .unwrap_err();
    assert!(
        err.to_string()
            .ends_with("state 'escalate' does not accept 'timeout'; it accepts: approve, reject"),
        "{err}"
    );
    sim.engine
        .signal(&id, "approve", json!({"by": "boss"}))
        .await
        .unwrap();
    sim.engine.settle().await;
    assert_eq!(sim.instance(&id).status, Status::Succeeded);
    assert_eq!(
        path(&sim, &id),
        ["timeout->escalate", "approve->pay_out", "done->paid"]
    );
}

const TIMERS: &str = r#"
process: timers
version: 1
start: nap
states:
  nap:
    type: wait
    wait: { for: 10m }
    on: { elapsed: until_due }
  until_due:
    type: wait
    wait: { until: .due }
    on: { elapsed: work }
  work:
    action: work
    on: { done: end }
  end: { type: succeed }
"#;

#[tokio::test]
async fn wait_for_then_until_in_the_past_fires_at_once() {
    let sim = Sim::new(TIMERS, "");
    sim.on("work", script(|_| done(json!({}))));
    let id = sim.start(json!({"due": "1970-01-01T00:00:00Z"})).await;
    sim.advance(10 * 60_000 - 1).await;
    assert_eq!(sim.instance(&id).state, "nap");
    sim.advance(1).await;
    assert_eq!(sim.instance(&id).status, Status::Succeeded);
    let calls = sim.invoker.calls_of("work");
    assert_eq!(calls.len(), 1);
    assert_eq!(
        Sim::since_t0(calls[0].at),
        10 * 60_000,
        "the past `until` did not wait"
    );
}

#[tokio::test]
async fn wait_until_a_future_time_fires_then_and_survives_a_restart() {
    let mut sim = Sim::new(TIMERS, "");
    sim.on("work", script(|_| done(json!({}))));
    let due = T0.plus(Span(3 * DAY));
    let id = sim.start(json!({"due": due.to_string()})).await;
    sim.advance(10 * 60_000).await;
    assert_eq!(sim.instance(&id).state, "until_due");
    sim.reboot().await;
    sim.advance(3 * DAY - 10 * 60_000 - 1).await;
    assert_eq!(sim.instance(&id).state, "until_due");
    sim.advance(1).await;
    sim.reboot().await;
    sim.advance(DAY).await;
    assert_eq!(sim.instance(&id).status, Status::Succeeded);
    assert_eq!(
        sim.invoker.calls_of("work").len(),
        1,
        "the timer fired once"
    );
    assert_eq!(Sim::since_t0(sim.invoker.calls_of("work")[0].at), 3 * DAY);
}

#[tokio::test]
async fn a_business_key_starts_one_instance_and_addresses_it() {
    let sim = Sim::new(LOAN, "");
    let a = sim
        .engine
        .start_keyed("loan", None, json!({"n": 1}), Some("loan-7".into()))
        .await
        .unwrap();
    let b = sim
        .engine
        .start_keyed("loan", None, json!({"n": 2}), Some("loan-7".into()))
        .await
        .unwrap();
    assert!(!a.existing && b.existing);
    assert_eq!(a.id, b.id);
    assert_eq!(
        sim.instance(&a.id).data["n"],
        1,
        "the second start changed nothing"
    );
    assert_eq!(sim.store.ids_with_status(Status::Waiting).unwrap().len(), 1);
    assert_eq!(
        sim.engine.by_key("loan", "loan-7").await.unwrap(),
        Some(a.id)
    );
    // Racing starts with one key: exactly one instance.
    let (x, y) = tokio::join!(
        sim.engine
            .start_keyed("loan", None, json!({}), Some("loan-8".into())),
        sim.engine
            .start_keyed("loan", None, json!({}), Some("loan-8".into())),
    );
    let (x, y) = (x.unwrap(), y.unwrap());
    assert_eq!(x.id, y.id);
    assert!(x.existing != y.existing);
}

#[tokio::test]
async fn running_instances_finish_on_their_version_and_migrate_moves_one() {
    let sim = Sim::new(LOAN, "");
    sim.on("pay", script(|_| done(json!({}))));
    sim.on("pay_twice", script(|_| done(json!({}))));
    let old = sim.start(json!({})).await;
    let moved = sim.start(json!({})).await;
    sim.deploy(
        &LOAN
            .replace("version: 1", "version: 2")
            .replace("action: pay\n", "action: pay_twice\n"),
    );
    let new = sim.start(json!({})).await;
    assert_eq!(sim.instance(&old).version, 1);
    assert_eq!(
        sim.instance(&new).version,
        2,
        "new instances use the newest"
    );
    sim.engine.migrate(&moved, 2).await.unwrap();
    for id in [&old, &moved, &new] {
        sim.engine.signal(id, "approve", json!({})).await.unwrap();
    }
    sim.engine.settle().await;
    for id in [&old, &moved, &new] {
        assert_eq!(sim.instance(id).status, Status::Succeeded);
    }
    assert_eq!(sim.invoker.calls_of("pay").len(), 1, "v1 ran v1's action");
    assert_eq!(sim.invoker.calls_of("pay_twice").len(), 2);
    assert!(
        sim.store
            .history(&moved, 0)
            .unwrap()
            .iter()
            .any(|r| matches!(
                r.kind,
                RecordKind::Migrated {
                    from_version: 1,
                    to_version: 2,
                    ..
                }
            ))
    );

    // Refused: no such version, and a version where the state is gone.
    let waiting = sim.start(json!({})).await;
    let err = sim.engine.migrate(&waiting, 9).await.unwrap_err();
    assert!(matches!(err, Error::NoVersion { version: 9, .. }), "{err}");
    sim.deploy(
        &LOAN
            .replace("version: 1", "version: 3")
            .replace("start: review", "start: triage")
            .replace("  review:\n", "  triage:\n"),
    );
    let err = sim.engine.migrate(&waiting, 3).await.unwrap_err();
    assert!(
        err.to_string()
            .ends_with("version 3 has no state 'review', where the instance is"),
        "{err}"
    );
    assert_eq!(
        sim.instance(&waiting).version,
        2,
        "a refused migration changes nothing"
    );
}

const REPORT: &str = r#"
process: report
version: 1
schedule:
  - { cron: "0 0 */6 * * *", input: { kind: quarterly } }
start: build
states:
  build:
    action: build
    on: { done: end }
  end: { type: succeed }
"#;

/// Instances started by schedules, by firing time.
fn fired(sim: &Sim) -> Vec<Millis> {
    let mut at: Vec<Millis> = sim
        .store
        .ids_with_status(Status::Succeeded)
        .unwrap()
        .into_iter()
        .map(|id| sim.instance(&id))
        .map(|i| {
            let key = i.key.expect("scheduled instances have a key");
            let when = key.split_once('@').expect("schedule-<n>@<time>").1;
            Millis::parse_rfc3339(when).unwrap()
        })
        .collect();
    at.sort();
    at
}

#[tokio::test]
async fn cron_fires_every_six_hours_over_a_simulated_week() {
    let sim = Sim::new(REPORT, "");
    sim.on("build", script(|_| done(json!({}))));
    assert_eq!(sim.engine.run_schedules().await.unwrap(), 1);
    // T0 is 1970-01-01T00:16:40Z: go to 06:00, then a week hour by hour.
    sim.advance(6 * 3_600_000 - 16 * 60_000 - 40_000).await;
    sim.run_for(7 * DAY, 3_600_000).await;
    let fired = fired(&sim);
    // 06h, 12h, 18h on day 1, four a day for six days, 00h and 06h of day 8.
    assert_eq!(fired.len(), 29);
    assert_eq!(fired[0].to_string(), "1970-01-01T06:00:00.000Z");
    assert_eq!(fired[28].to_string(), "1970-01-08T06:00:00.000Z");
    for pair in fired.windows(2) {
        assert_eq!(pair[1].since(pair[0]), Span(6 * 3_600_000));
    }
    let calls = sim.invoker.calls_of("build");
    assert_eq!(calls.len(), 29, "one instance per firing");
    assert!(
        calls.iter().zip(&fired).all(|(c, f)| c.at == *f),
        "each ran at its firing time"
    );
}

async fn downtime(missed: &str) -> Vec<Millis> {
    let process = REPORT.replace(
        "input: { kind: quarterly } }",
        &format!("input: {{ kind: quarterly }}, missed: {missed} }}"),
    );
    let mut sim = Sim::new(&process, "");
    sim.on("build", script(|_| done(json!({}))));
    sim.engine.run_schedules().await.unwrap();
    sim.run_for(DAY, 3_600_000).await; // four firings
    // Down for two days: eight firings missed.
    sim.engine.shutdown().await;
    sim.clock.advance(Span(2 * DAY));
    sim.reboot().await;
    sim.engine.run_schedules().await.unwrap();
    sim.run_for(7 * 3_600_000, 3_600_000).await;
    fired(&sim)
}

#[tokio::test]
async fn firings_missed_while_down_run_once_or_are_skipped() {
    let run_once = downtime("run_once").await;
    let skip = downtime("skip").await;
    let day = |text: &str| Millis::parse_rfc3339(text).unwrap();
    // Back on 01-04 at 00:16:40 (3 days after T0): run_once starts one for
    // the newest missed firing (01-04 00:00), then carries on at 06:00.
    assert_eq!(run_once.len(), 4 + 1 + 1);
    assert_eq!(run_once[4], day("1970-01-04T00:00:00Z"));
    assert_eq!(run_once[5], day("1970-01-04T06:00:00Z"));
    assert_eq!(skip.len(), 4 + 1);
    assert_eq!(skip[4], day("1970-01-04T06:00:00Z"));
}

const REVIEW: &str = r#"
process: review
version: 1
sla: 3d
start: check
states:
  check:
    action: check
    on: { done: decide }
  decide:
    type: wait
    sla: 1d
    on: { approve: ok }
  ok: { type: succeed }
"#;

fn stuck_ids(page: weft_core::Page) -> Vec<weft_model::InstanceId> {
    page.items.into_iter().map(|s| s.id).collect()
}

async fn stuck(sim: &Sim) -> Vec<weft_model::InstanceId> {
    let q = weft_core::PageQuery {
        stuck: true,
        limit: 100,
        ..Default::default()
    };
    stuck_ids(sim.engine.list(q).await.unwrap())
}

#[tokio::test]
async fn an_instance_past_its_slas_is_flagged_across_a_restart_and_listed_as_stuck() {
    let dir = tempfile::tempdir().unwrap();
    let mut sim = Sim::on_sled(REVIEW, "", dir.path());
    sim.on("check", script(|_| done(json!({}))));
    let late = sim.start(json!({"n": 1})).await;
    let on_time = sim.start(json!({"n": 2})).await;
    assert_eq!(sim.instance(&late).status, Status::Waiting);
    assert!(stuck(&sim).await.is_empty());

    // One is approved in time; the other waits past the state's sla, with
    // a restart in between: the timer is durable.
    sim.advance(DAY / 2).await;
    sim.engine
        .signal(&on_time, "approve", json!({}))
        .await
        .unwrap();
    sim.engine.settle().await;
    sim.reboot().await;
    sim.advance(DAY / 2 + 1).await;
    assert_eq!(stuck(&sim).await, vec![late.clone()]);
    let inst = sim.instance(&late);
    assert_eq!(
        inst.status,
        Status::Waiting,
        "an sla flags, it does not act"
    );
    assert_eq!(inst.overdue.len(), 1);
    assert_eq!(inst.overdue[0].state.as_deref(), Some("decide"));
    assert_eq!(inst.overdue[0].since, T0);

    // Then the process's own sla passes too: one record each, not more.
    sim.run_for(3 * DAY, DAY / 4).await;
    let flagged: Vec<Option<String>> = sim
        .store
        .history(&late, 0)
        .unwrap()
        .into_iter()
        .filter_map(|r| match r.kind {
            RecordKind::SlaExceeded { state, .. } => Some(state),
            _ => None,
        })
        .collect();
    assert_eq!(flagged, [Some("decide".to_owned()), None]);
    assert_eq!(sim.instance(&late).overdue.len(), 2);

    // Finished instances are not stuck, whatever they ran past.
    sim.engine
        .signal(&late, "approve", json!({}))
        .await
        .unwrap();
    sim.engine.settle().await;
    assert_eq!(sim.instance(&late).status, Status::Succeeded);
    assert!(stuck(&sim).await.is_empty());
    assert!(
        sim.store.next_timer().unwrap().is_none(),
        "no sla timer is left behind"
    );
}

const COUNTER: &str = include_str!("../../../tests/fixtures/counter.yaml");

fn bumps(sim: &Sim, id: &weft_model::InstanceId) -> usize {
    path(sim, id)
        .iter()
        .filter(|p| *p == "bump->counting")
        .count()
}

#[tokio::test]
async fn a_retried_operator_request_with_an_idempotency_key_changes_nothing() {
    use weft_core::{Done, Operation};
    let dir = tempfile::tempdir().unwrap();
    let mut sim = Sim::on_sled(COUNTER, "", dir.path());
    let id = sim.start(json!({})).await;
    let bump = || Operation::Signal {
        name: "bump".into(),
        data: json!({}),
    };
    // The state accepts `bump` again after each one: without a key a
    // retried signal would count twice.
    assert_eq!(
        sim.engine.operate(&id, bump(), Some("b-1")).await.unwrap(),
        Done::Applied
    );
    sim.reboot().await; // the key is kept with the instance, on disk
    assert_eq!(
        sim.engine.operate(&id, bump(), Some("b-1")).await.unwrap(),
        Done::Repeated
    );
    assert_eq!(bumps(&sim, &id), 1);
    // Another key, or no key, is another request.
    assert_eq!(
        sim.engine.operate(&id, bump(), Some("b-2")).await.unwrap(),
        Done::Applied
    );
    sim.engine.signal(&id, "bump", json!({})).await.unwrap();
    assert_eq!(bumps(&sim, &id), 3);
    // The same key on another operation is not taken for this one.
    let stop = Operation::Signal {
        name: "stop".into(),
        data: json!({}),
    };
    assert_eq!(
        sim.engine.operate(&id, stop, Some("b-1")).await.unwrap(),
        Done::Applied
    );
    assert_eq!(sim.instance(&id).status, Status::Succeeded);

    // A retried cancel answers as the first did, where one without a key
    // is refused (the instance has already ended).
    let other = sim.start(json!({})).await;
    let cancel = || Operation::Cancel { compensate: false };
    assert_eq!(
        sim.engine
            .operate(&other, cancel(), Some("c"))
            .await
            .unwrap(),
        Done::Applied
    );
    assert_eq!(
        sim.engine
            .operate(&other, cancel(), Some("c"))
            .await
            .unwrap(),
        Done::Repeated
    );
    assert!(matches!(
        sim.engine.operate(&other, cancel(), None).await,
        Err(Error::Refused(..))
    ));
    assert_eq!(sim.instance(&other).status, Status::Cancelled);
}
