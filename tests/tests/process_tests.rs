//! `weft test` and `weft simulate` through the real binary: every example
//! ships with cases and they pass; a wrong expectation fails with a
//! readable difference and exit 1; a bad case file is exit 2 at
//! `file:line:col`; JUnit XML is written; a simulation repeats exactly for
//! a seed.

#![allow(clippy::unwrap_used)]

use weft_tests::{Sandbox, root, run};

fn example(name: &str, file: &str) -> String {
    root()
        .join("examples")
        .join(name)
        .join(file)
        .display()
        .to_string()
}

#[test]
fn every_example_ships_with_cases_that_pass() {
    for ex in [
        "order-fulfillment",
        "loan-approval",
        "payment-retry",
        "ci-pipeline",
        "etl-fanout",
        "polyglot",
    ] {
        let out = run(&[
            "test",
            &example(ex, "process.yaml"),
            "--bindings",
            &example(ex, "bindings.yaml"),
        ]);
        assert_eq!(out.code, 0, "{ex}:\n{}\n{}", out.stdout, out.stderr);
        let last = out.stdout.lines().last().unwrap_or_default().to_owned();
        assert!(last.contains(" 0 failed"), "{ex}: {last}");
        assert!(!out.stdout.contains("FAIL"), "{ex}: {}", out.stdout);
    }
}

#[test]
fn a_wrong_expectation_fails_with_the_difference_and_exit_1() {
    let s = Sandbox::new();
    let cases = s.write(
        "wrong.yaml",
        r#"
cases:
  - name: expects the wrong end
    input: { amount: 1, card: "4000", email: a@example.com }
    adapters:
      charge_payment: [ { error: card_declined } ]
    expect:
      status: succeeded
      path: [charge, receipt, paid]
      elapsed: 1s
  - name: a right one
    input: { amount: 1, card: "4000", email: a@example.com }
    adapters:
      charge_payment: [ { error: card_declined } ]
    expect: { status: failed, state: declined }
"#,
    );
    let junit = s.path("junit.xml");
    let out = run(&[
        "test",
        &example("payment-retry", "process.yaml"),
        &cases,
        "--junit",
        junit.to_str().unwrap(),
    ]);
    assert_eq!(out.code, 1, "{}\n{}", out.stdout, out.stderr);
    let o = &out.stdout;
    assert!(o.contains("FAIL  expects the wrong end"), "{o}");
    assert!(
        o.contains("status: expected succeeded, got failed (declined: declined:"),
        "{o}"
    );
    assert!(o.contains("path: expected charge → receipt → paid"), "{o}");
    assert!(o.contains("got      charge → declined"), "{o}");
    assert!(o.contains("elapsed: expected 1s, got 0s"), "{o}");
    assert!(o.contains("ok    a right one"), "{o}");
    assert!(o.contains("2 cases: 1 passed, 1 failed"), "{o}");
    let xml = std::fs::read_to_string(junit).unwrap();
    assert!(
        xml.contains(r#"<testsuite name="payment-retry v1" tests="2" failures="1""#),
        "{xml}"
    );
    assert!(
        xml.contains(r#"<testcase classname="#) && xml.contains("<failure message="),
        "{xml}"
    );
}

#[test]
fn a_bad_case_file_is_refused_where_it_is_wrong() {
    let s = Sandbox::new();
    let cases = s.write(
        "bad.yaml",
        "cases:\n  - name: x\n    adapters:\n      charge_payment: [ maybe ]\n    events:\n      - { at: soon, signal: go }\n    expect: { status: finished }\n",
    );
    let out = run(&["test", &example("payment-retry", "process.yaml"), &cases]);
    assert_eq!(out.code, 2, "{}\n{}", out.stdout, out.stderr);
    assert!(out.stderr.contains("bad.yaml:7:"), "{}", out.stderr);
    let cases = s.write(
        "bad2.yaml",
        "cases:\n  - name: x\n    adapters:\n      charge_payment: [ maybe ]\n    events:\n      - { at: soon, signal: go }\n    expect: { status: failed }\n",
    );
    let out = run(&["test", &example("payment-retry", "process.yaml"), &cases]);
    assert_eq!(out.code, 2, "{}\n{}", out.stdout, out.stderr);
    assert!(
        out.stderr.contains("bad2.yaml:4:") && out.stderr.contains("'maybe' is not an answer"),
        "{}",
        out.stderr
    );
    assert!(
        out.stderr.contains("bad2.yaml:6:") && out.stderr.contains("'soon'"),
        "{}",
        out.stderr
    );
    // An action the case scripts nothing for is named, not guessed.
    let cases = s.write(
        "missing.yaml",
        "cases:\n  - name: forgot the receipt\n    adapters: { charge_payment: [ done ] }\n    expect: { status: succeeded }\n",
    );
    let out = run(&["test", &example("payment-retry", "process.yaml"), &cases]);
    assert_eq!(out.code, 1, "{}\n{}", out.stdout, out.stderr);
    assert!(out.stdout.contains("'send_notification' was invoked (state 'receipt') but the case scripts no answers for it"), "{}", out.stdout);
}

#[test]
fn a_simulation_repeats_exactly_for_a_seed() {
    let s = Sandbox::new();
    let faults = s.write(
        "faults.yaml",
        "actions:\n  charge_payment: { retryable: 30%, errors: { card_declined: 5% }, latency: { min: 10ms, max: 200ms } }\n  send_notification: { latency: 5ms }\n",
    );
    let sim = |seed: &str| {
        run(&[
            "simulate",
            &example("payment-retry", "process.yaml"),
            "--bindings",
            &example("payment-retry", "bindings.yaml"),
            "--faults",
            &faults,
            "--runs",
            "500",
            "--seed",
            seed,
        ])
    };
    let a = sim("7");
    assert_eq!(a.code, 0, "{}\n{}", a.stdout, a.stderr);
    assert_eq!(a.stdout, sim("7").stdout, "same seed, same report");
    assert_ne!(a.stdout, sim("8").stdout, "another seed, another draw");
    assert!(
        a.stdout
            .contains("simulated payment-retry v1: 500 runs, seed 7"),
        "{}",
        a.stdout
    );
    assert!(
        a.stdout.contains("end states:") && a.stdout.contains("paid"),
        "{}",
        a.stdout
    );
    assert!(
        a.stdout.contains("duration of ended runs: p50"),
        "{}",
        a.stdout
    );
}

/// `weft validate` warns about what a valid process may do that it should
/// not (here: fail after charging without refunding), passes it, and
/// `--strict` refuses it; `--explain` tells what can happen at a state.
#[test]
fn validate_warns_strict_refuses_and_explain_tells() {
    let s = Sandbox::new();
    let bindings = s.bindings(&[]);
    let process = s.write(
        "leaky.yaml",
        "process: leaky\nversion: 1\nstart: charge\nstates:\n  charge:\n    action: charge_payment\n    compensate: refund_payment\n    on: { done: ship, error: failed }\n  ship:\n    action: create_shipment\n    on: { done: ok, error: failed }\n  ok: { type: succeed }\n  failed: { type: fail }\n",
    );
    let out = run(&["validate", &process, "--bindings", &bindings]);
    assert_eq!(out.code, 0, "{}\n{}", out.stdout, out.stderr);
    assert!(
        out.stdout.contains("is valid") && out.stdout.contains("warning"),
        "{}",
        out.stdout
    );
    assert!(
        out.stderr.contains("leaky.yaml:11:28: warning: the path charge -done-> ship -error-> failed ends the instance failed after 'charge' completed, and does not undo it"),
        "{}",
        out.stderr
    );
    let strict = run(&["validate", &process, "--bindings", &bindings, "--strict"]);
    assert_eq!(strict.code, 2, "{}\n{}", strict.stdout, strict.stderr);
    let explain = run(&[
        "validate",
        &process,
        "--bindings",
        &bindings,
        "--explain",
        "charge",
    ]);
    assert_eq!(explain.code, 0, "{}", explain.stderr);
    assert!(
        explain
            .stdout
            .contains("charge (task: runs 'charge_payment')"),
        "{}",
        explain.stdout
    );
    assert!(
        explain.stdout.contains("on error -> failed"),
        "{}",
        explain.stdout
    );
    assert!(
        explain.stdout.contains("one visit takes at most: 30s"),
        "{}",
        explain.stdout
    );
    let unknown = run(&[
        "validate",
        &process,
        "--bindings",
        &bindings,
        "--explain",
        "nope",
    ]);
    assert_eq!(unknown.code, 2);
    assert!(
        unknown.stderr.contains("has no state 'nope'"),
        "{}",
        unknown.stderr
    );
}

/// An incident becomes a regression test: a case recorded from a real
/// instance's history replays to the same end, and against a changed
/// process shows where the new version goes another way.
#[test]
fn a_case_recorded_from_a_real_instance_replays_and_shows_a_divergence() {
    let s = Sandbox::new();
    let data = s.data();
    let bindings = s.bindings(&[]);
    let process = example("order-fulfillment", "process.yaml");
    let input = r#"{"order": {"id": "o-9", "sku": "TEA-1", "qty": 1, "amount": 9.5, "card": "4000000000000002", "address": "9 Loom", "email": "x@example.com"}}"#;
    let ran = run(&[
        "run",
        &process,
        "--bindings",
        &bindings,
        "--input",
        input,
        "--key",
        "o-9",
        "--data",
        &data,
    ]);
    assert_eq!(
        ran.code, 1,
        "the declined order fails: {}\n{}",
        ran.stdout, ran.stderr
    );
    let recorded = run(&["test", &process, "--record", "o-9", "--data", &data]);
    assert_eq!(recorded.code, 0, "{}", recorded.stderr);
    let case = s.write("incident.json", &recorded.stdout);
    let replay = run(&["test", &process, &case]);
    assert_eq!(replay.code, 0, "{}\n{}", replay.stdout, replay.stderr);
    assert!(
        replay
            .stdout
            .contains("(failed, reserve → charge → undo → cancelled"),
        "{}",
        replay.stdout
    );

    // A new version that forgets to undo on a failed charge.
    let text = std::fs::read_to_string(&process).unwrap();
    let changed = text.replacen("      error: undo\n", "      error: failed\n", 1);
    assert_ne!(changed, text);
    let changed = s.write("process-v3.yaml", &changed);
    let diverges = run(&["test", &changed, &case]);
    assert_eq!(diverges.code, 1, "{}\n{}", diverges.stdout, diverges.stderr);
    let o = &diverges.stdout;
    assert!(
        o.contains("path: expected reserve → charge → undo → cancelled"),
        "{o}"
    );
    assert!(o.contains("got      reserve → charge → failed"), "{o}");
    assert!(
        o.contains(r#"compensated: expected ["reserve"], got []"#),
        "{o}"
    );
}
