//! The process-test driver and the failure simulation, on the pure
//! interpreter: scripted answers, tokens, signals and cancels at simulated
//! times; a simulated success rate against its analytic value.

#![allow(clippy::unwrap_used)] // an unwrap that fails is a test that fails

use serde_json::json;
use weft_model::testing::{cases, simulate};
use weft_model::{NoDefaults, Status, parse_process};

const APPROVE: &str = r#"
process: approve
version: 1
start: ask
states:
  ask:
    action: ask
    timeout: 1h
    output: .answer
    on: { done: decide, error: gave_up }
  decide:
    type: wait
    timeout: 1d
    on: { yes: ok, timeout: gave_up }
  ok: { type: succeed, output: .answer }
  gave_up: { type: fail }
"#;

fn run_cases(process: &str, file: &str) -> Vec<cases::Report> {
    let p = parse_process("p.yaml", process).unwrap();
    let cs = cases::load("cases.yaml", file, &p).unwrap_or_else(|d| panic!("{d}"));
    cs.iter().map(|c| cases::run(&p, &NoDefaults, c)).collect()
}

#[test]
fn a_pending_step_completed_by_token_then_a_signal_in_time() {
    let r = run_cases(
        APPROVE,
        r#"
cases:
  - name: pending, completed, approved
    adapters: { ask: [ { pending: t-1 } ] }
    events:
      - { at: 10m, complete: t-1, output: { by: ana } }
      - { at: 2h, signal: yes }
    expect: { status: succeeded, output: '.by == "ana"', path: [ask, decide, ok], elapsed: 2h }
  - name: "the token is never completed: the attempt times out"
    adapters: { ask: [ { pending: t-2 } ] }
    expect: { status: failed, path: [ask, gave_up], elapsed: 1h }
  - name: nobody says yes within the day
    adapters: { ask: [ done ] }
    expect: { status: failed, path: [ask, decide, gave_up], elapsed: 1d }
  - name: a cancel ends it where it waits
    adapters: { ask: [ done ] }
    events: [ { at: 5m, cancel: true } ]
    expect: { status: cancelled, state: decide, elapsed: 5m }
"#,
    );
    for report in &r {
        assert!(report.passed(), "{report:?}");
    }
}

#[test]
fn what_comes_from_outside_and_does_not_apply_fails_the_case() {
    let r = run_cases(
        APPROVE,
        r#"
cases:
  - name: a signal nobody waits for, a token nobody holds
    adapters: { ask: [ done ] }
    events:
      - { at: 1m, signal: no }
      - { at: 2m, complete: nope }
      - { at: 3m, signal: yes }
    expect: { status: succeeded }
"#,
    );
    let f = &r[0].failures;
    assert_eq!(f.len(), 2, "{f:?}");
    assert!(
        f[0].contains("at 1m: signal 'no' was refused: state 'decide' does not accept 'no'"),
        "{f:?}"
    );
    assert!(
        f[1].contains("at 2m: nothing waits on token 'nope'"),
        "{f:?}"
    );
    assert_eq!(r[0].status, Status::Succeeded);
}

#[test]
fn a_loop_that_never_ends_is_stopped_and_said() {
    let r = run_cases(
        r#"
process: spin
version: 1
start: a
states:
  a: { action: a, on: { done: a } }
"#,
        "cases:\n  - name: spins\n    adapters: { a: [ done ] }\n    expect: { status: succeeded }\n",
    );
    assert!(
        r[0].failures[0].contains("stopped after 10000 events in state 'a'"),
        "{:?}",
        r[0].failures
    );
}

#[test]
fn cases_for_another_process_are_refused() {
    let p = parse_process("p.yaml", APPROVE).unwrap();
    let e = cases::load("c.yaml", "process: other\ncases: []\n", &p).unwrap_err();
    assert!(
        e.to_string()
            .contains("c.yaml:1:10: these cases are for process 'other', not 'approve'"),
        "{e}"
    );
}

const ONE: &str = r#"
process: one
version: 1
start: call
states:
  call:
    action: call
    retry: { max_attempts: 3, initial: 1s, factor: 1 }
    on: { done: ok, error.no: refused, error: down }
  ok: { type: succeed }
  refused: { type: fail }
  down: { type: fail }
"#;

/// Succeeds unless all three attempts fail (30% each) or one is a typed
/// refusal (5%, routed at once): P(ok) = Σ over k = 0..2 of
/// 0.30^k · 0.65 (k retryable failures, then a success).
#[test]
fn a_simulated_success_rate_matches_the_analytic_one() {
    let p = parse_process("one.yaml", ONE).unwrap();
    let faults = simulate::load(
        "f.yaml",
        "actions:\n  call: { retryable: 30%, errors: { no: 5% }, latency: 100ms }\n",
    )
    .unwrap();
    let runs = 20_000;
    let s = simulate::simulate(&p, &NoDefaults, &faults, &json!({}), runs, 7);
    let expect: f64 = (0..3).map(|k| 0.30f64.powi(k) * 0.65).sum();
    let got = s.share(Status::Succeeded);
    let sigma = (expect * (1.0 - expect) / f64::from(runs)).sqrt();
    assert!(
        (got - expect).abs() < 4.0 * sigma,
        "{got} vs {expect} ± {sigma}"
    );
    // Every run ended: ok, refused or down.
    assert_eq!(s.durations.len() as u32, runs);
    // A seed is a report.
    let again = simulate::simulate(&p, &NoDefaults, &faults, &json!({}), runs, 7);
    assert_eq!(s.render(&p, 7), again.render(&p, 7));
    // Durations: 100ms per attempt, 1s between: at most 2.3s.
    assert_eq!(s.durations.last().copied(), Some(weft_model::Span(2_300)));
}

#[test]
fn a_bad_faults_file_is_refused_where_it_is_wrong() {
    let e = simulate::load(
        "f.yaml",
        "actions:\n  call: { retryable: 80%, timeout: 30% }\n  other: { retryable: lots }\n",
    )
    .unwrap_err()
    .to_string();
    assert!(e.contains("f.yaml:2:") && e.contains("over 100%"), "{e}");
    assert!(
        e.contains("f.yaml:3:") && e.contains("'lots' is not a chance"),
        "{e}"
    );
}

/// Every example case, run, then recorded from its own history as `weft
/// test --record` would, replays to the same end: the recorder loses
/// nothing a case needs.
#[test]
fn every_example_case_recorded_from_its_history_replays_the_same() {
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../examples");
    let mut replayed = 0;
    for ex in [
        "order-fulfillment",
        "loan-approval",
        "payment-retry",
        "ci-pipeline",
        "etl-fanout",
    ] {
        let dir = root.join(ex);
        let read = |f: &str| std::fs::read_to_string(dir.join(f)).unwrap();
        let p = parse_process("process.yaml", &read("process.yaml")).unwrap();
        let bdoc = weft_model::source::load(
            "bindings.yaml",
            &read("bindings.yaml"),
            weft_model::Format::Yaml,
        )
        .unwrap();
        let b = weft_model::bindings::bindings(&bdoc, &dir).unwrap();
        for c in cases::load("cases.yaml", &read("cases.yaml"), &p).unwrap() {
            let (d, _) = cases::drive(&p, &b, &c).unwrap();
            let recorded = weft_model::testing::record::case(&p, &d.inst, &d.records);
            let file = serde_json::to_string(&json!({ "cases": [recorded] })).unwrap();
            let again = cases::load("recorded.json", &file, &p)
                .unwrap_or_else(|e| panic!("{ex}/{}: {e}\n{file}", c.name));
            let report = cases::run(&p, &b, &again[0]);
            assert!(
                report.passed(),
                "{ex}/{}: {:?}\n{file}",
                c.name,
                report.failures
            );
            assert_eq!(report.path, d.path(), "{ex}/{}", c.name);
            replayed += 1;
        }
    }
    assert!(replayed >= 20, "{replayed}");
}
