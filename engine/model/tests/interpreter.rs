//! Table-driven tests of the pure interpreter: a process, a script of step
//! outcomes and times, and the states, statuses and commands they must give.

use serde_json::{Value, json};
use weft_model::interpret::{self, Rejected};
use weft_model::{
    Command, Event, Failure, Instance, InstanceId, Millis, NoDefaults, Process, RecordKind, Status,
};

const ORDER: &str = r#"
process: order
version: 1
start: reserve
states:
  reserve:
    action: reserve_inventory
    input: '{sku: .order.sku, qty: .order.qty}'
    output: .reservation
    on:
      done: charge
      error.out_of_stock: sold_out
      error: broken
  charge:
    action: charge_payment
    input: '{amount: .order.amount}'
    output: .payment
    on:
      done:
        - if: '.payment.amount > 1000'
          to: review
        - to: ship
      error.card_declined: declined
  review:
    action: ask_human
    on: { done: ship }
  ship:
    action: create_shipment
    input: '.order.missing | ascii_downcase'
    on: { done: done, error.mapping: broken }
  done:
    type: succeed
    output: '{reservation: .reservation.id, paid: .payment.amount}'
  sold_out: { type: fail, error: out_of_stock }
  declined: { type: fail, cause: '"declined: " + .error.message' }
  broken: { type: fail }
"#;

fn process(text: &str) -> Process {
    weft_model::parse_process("order.yaml", text).unwrap_or_else(|d| panic!("{d}"))
}

fn id() -> InstanceId {
    InstanceId::new(Millis(1_000), 7)
}

enum Step {
    Done(Value),
    Fail(&'static str),
}

struct Case {
    name: &'static str,
    script: Vec<Step>,
    /// States entered, in order, after the start state.
    path: &'static [&'static str],
    status: Status,
}

fn run(p: &Process, input: Value, script: Vec<Step>) -> (Instance, Vec<RecordKind>, Vec<Command>) {
    let mut now = Millis(10_000);
    let a = interpret::start(p, &NoDefaults, id(), input, now);
    let mut inst = a.instance;
    let mut records: Vec<RecordKind> = a.records.into_iter().map(|r| r.kind).collect();
    let mut commands = a.commands;
    for step in script {
        now = now.plus(weft_model::Span(250));
        let key = inst
            .step
            .as_ref()
            .map(|s| s.key.clone())
            .expect("a step is in flight");
        let event = match step {
            Step::Done(v) => Event::StepDone { key, output: v },
            Step::Fail(kind) => Event::StepFailed {
                key,
                failure: Failure::new(kind, format!("simulated {kind}")),
                heartbeat: None,
            },
        };
        let a = interpret::apply(p, &NoDefaults, &inst, &event, now).expect("event applies");
        assert_eq!(a.settled, vec![event.key().unwrap_or_default().to_owned()]);
        records.extend(a.records.into_iter().map(|r| r.kind));
        commands.extend(a.commands);
        inst = a.instance;
    }
    (inst, records, commands)
}

fn path(records: &[RecordKind]) -> Vec<String> {
    records
        .iter()
        .filter_map(|r| match r {
            RecordKind::Transition { to, .. } => Some(to.clone()),
            _ => None,
        })
        .collect()
}

#[test]
fn interpreter_follows_events_through_the_process() {
    let p = process(ORDER);
    let input = json!({"order": {"sku": "A-1", "qty": 2, "amount": 40}});
    let cases = vec![
        Case {
            name: "declined card routes on its specific kind",
            script: vec![Step::Done(json!({"id": "r1"})), Step::Fail("card_declined")],
            path: &["charge", "declined"],
            status: Status::Failed,
        },
        Case {
            name: "specific kind wins over the catch-all",
            script: vec![Step::Fail("out_of_stock")],
            path: &["sold_out"],
            status: Status::Failed,
        },
        Case {
            name: "other kinds fall back to `error`",
            script: vec![Step::Fail("trap")],
            path: &["broken"],
            status: Status::Failed,
        },
        Case {
            name: "an unrouted failure parks the instance",
            script: vec![Step::Done(json!({"id": "r1"})), Step::Fail("timeout")],
            path: &["charge"],
            status: Status::Parked,
        },
        Case {
            name: "first matching guard wins",
            script: vec![
                Step::Done(json!({"id": "r1"})),
                Step::Done(json!({"amount": 5000})),
            ],
            path: &["charge", "review"],
            status: Status::Running,
        },
        Case {
            name: "input mapping failure is routed as error.mapping",
            script: vec![
                Step::Done(json!({"id": "r1"})),
                Step::Done(json!({"amount": 40})),
            ],
            path: &["charge", "ship", "broken"],
            status: Status::Failed,
        },
    ];
    for case in cases {
        let (inst, records, _) = run(&p, input.clone(), case.script);
        assert_eq!(path(&records), case.path, "{}: path", case.name);
        assert_eq!(inst.status, case.status, "{}: status", case.name);
    }
}

#[test]
fn start_maps_input_and_invokes_with_a_visit_key() {
    let p = process(ORDER);
    let a = interpret::start(
        &p,
        &NoDefaults,
        id(),
        json!({"order": {"sku": "A-1", "qty": 2}}),
        Millis(5),
    );
    assert_eq!(a.instance.status, Status::Running);
    assert_eq!(a.records.len(), 1);
    assert!(matches!(a.records[0].kind, RecordKind::Started { .. }));
    let [Command::Invoke(inv)] = a.commands.as_slice() else {
        panic!("{:?}", a.commands)
    };
    assert_eq!(inv.key, format!("{}/reserve/1", id()));
    assert_eq!(inv.input, json!({"sku": "A-1", "qty": 2}));
    assert_eq!(inv.attempt, 1);
}

#[test]
fn succeed_stores_results_and_computes_the_output() {
    let p = process(&ORDER.replace("'.order.missing | ascii_downcase'", ".order"));
    let (inst, records, commands) = run(
        &p,
        json!({"order": {"sku": "A-1", "qty": 2, "amount": 40}}),
        vec![
            Step::Done(json!({"id": "r1"})),
            Step::Done(json!({"amount": 40})),
            Step::Done(json!({"tracking": "t"})),
        ],
    );
    assert_eq!(inst.status, Status::Succeeded);
    assert_eq!(inst.output, Some(json!({"reservation": "r1", "paid": 40})));
    assert_eq!(inst.data["payment"], json!({"amount": 40}));
    assert_eq!(commands.len(), 3, "one invocation per task");
    // History numbers are gap-free and the instance knows the next one.
    assert_eq!(inst.seq as usize, records.len());
    match &records[1] {
        RecordKind::Transition {
            from,
            event,
            to,
            took,
            ..
        } => {
            assert_eq!(
                (from.as_str(), event.as_str(), to.as_str()),
                ("reserve", "done", "charge")
            );
            assert_eq!(took.as_millis(), 250);
        }
        other => panic!("{other:?}"),
    }
}

#[test]
fn fail_state_takes_its_cause_from_the_data() {
    let p = process(ORDER);
    let (inst, _, _) = run(
        &p,
        json!({"order": {"sku": "A-1", "qty": 2, "amount": 40}}),
        vec![Step::Done(json!({"id": "r1"})), Step::Fail("card_declined")],
    );
    let err = inst.error.expect("failed instances carry an error");
    assert_eq!(err.state, "declined");
    assert_eq!(err.kind, "card_declined");
    assert_eq!(err.message, "declined: simulated card_declined");
}

#[test]
fn events_for_other_steps_or_ended_instances_are_rejected() {
    let p = process(ORDER);
    let a = interpret::start(
        &p,
        &NoDefaults,
        id(),
        json!({"order": {"sku": "A", "qty": 1}}),
        Millis(1),
    );
    let stale = Event::StepDone {
        key: "someone/else/1".into(),
        output: json!(null),
    };
    assert_eq!(
        interpret::apply(&p, &NoDefaults, &a.instance, &stale, Millis(2)),
        Err(Rejected::Stale {
            key: "someone/else/1".into()
        })
    );
    let key = a
        .instance
        .step
        .as_ref()
        .map(|s| s.key.clone())
        .expect("step");
    let fail = Event::StepFailed {
        key,
        failure: Failure::new("out_of_stock", "none left"),
        heartbeat: None,
    };
    let ended = interpret::apply(&p, &NoDefaults, &a.instance, &fail, Millis(3))
        .expect("applies")
        .instance;
    assert_eq!(ended.status, Status::Failed);
    assert_eq!(
        interpret::apply(&p, &NoDefaults, &ended, &fail, Millis(4)),
        Err(Rejected::Finished(Status::Failed))
    );
}

#[test]
fn each_visit_of_a_state_gets_its_own_key() {
    let p = process(
        "process: loop\nversion: 1\nstart: poll\nstates:\n  poll:\n    action: check\n    output: .n\n    on:\n      done:\n        - if: '.n < 3'\n          to: poll\n        - to: end\n  end: { type: succeed }\n",
    );
    let (inst, _, commands) = run(
        &p,
        json!({}),
        vec![
            Step::Done(json!(1)),
            Step::Done(json!(2)),
            Step::Done(json!(3)),
        ],
    );
    let keys: Vec<String> = commands
        .iter()
        .filter_map(|c| match c {
            Command::Invoke(i) => Some(i.key.rsplit('/').next().unwrap_or("").to_owned()),
            _ => None,
        })
        .collect();
    assert_eq!(keys, ["1", "2", "3"]);
    assert_eq!(inst.status, Status::Succeeded);
}

#[test]
fn a_cycle_that_never_waits_is_parked_not_looped_forever() {
    let p = process(
        "process: spin\nversion: 1\nstart: a\nstates:\n  a:\n    action: x\n    input: 'error(\"no\")'\n    on: { done: end, error: a }\n  end: { type: succeed }\n",
    );
    let a = interpret::start(&p, &NoDefaults, id(), json!({}), Millis(1));
    assert_eq!(a.instance.status, Status::Parked);
    assert!(a.commands.is_empty());
    let err = a.instance.error.expect("parked with a reason");
    assert!(err.message.contains("never waited"), "{}", err.message);
}
