//! Heartbeats through the real host import: an adapter that keeps calling
//! `heartbeat` may run past its heartbeat limit; one that goes quiet is
//! stopped and the step fails with `error.heartbeat`.

use weft_tests::{Sandbox, json, order_input, root, run, run_args};

fn process(s: &Sandbox) -> String {
    let text = std::fs::read_to_string(root().join("tests/fixtures/order.yaml"))
        .expect("reads")
        .replace(
            "    output: .payment\n",
            "    output: .payment\n    heartbeat: 300ms\n    timeout: 20s\n",
        );
    s.write("p.yaml", &text)
}

#[test]
fn a_heartbeating_adapter_runs_past_its_heartbeat_limit() {
    let s = Sandbox::new();
    let bindings = s.bindings(&[(
        "charge_payment",
        "    config: { simulate: { sleep_ms: 1200, heartbeat: true } }",
    )]);
    let out = run(&run_args(
        &process(&s),
        &bindings,
        &order_input(1, "4242"),
        &s.data(),
    ));
    assert_eq!(out.code, 0, "{}\n{}", out.stdout, out.stderr);
}

#[test]
fn a_quiet_adapter_is_stopped_with_error_heartbeat() {
    let s = Sandbox::new();
    let bindings = s.bindings(&[(
        "charge_payment",
        "    config: { simulate: { sleep_ms: 5000 } }",
    )]);
    let data = s.data();
    let out = run(&run_args(
        &process(&s),
        &bindings,
        &order_input(1, "4242"),
        &data,
    ));
    assert_eq!(out.code, 1, "{}\n{}", out.stdout, out.stderr);
    assert!(
        out.stdout.contains("charge --error.heartbeat--> failed"),
        "{}",
        out.stdout
    );
    let status = json(&["status", out.lines()[0], "--data", &data, "--json"]);
    assert_eq!(status["error"]["kind"], "heartbeat");
}
