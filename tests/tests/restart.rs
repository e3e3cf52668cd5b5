//! Restarts in the middle of the failure machinery, with real processes
//! killed by SIGKILL: while a retry timer is pending, while a step waits on a
//! completion token, and in the middle of a compensation.

use weft_tests::{
    Running, Sandbox, json, order_input, root, run, run_args, status_of, wait_for_calls,
};

fn saga() -> String {
    root()
        .join("tests/fixtures/saga.yaml")
        .display()
        .to_string()
}

/// The calls the adapters recorded for `action`: (key, attempt).
fn calls(s: &Sandbox, action: &str) -> Vec<(String, u32)> {
    s.calls()
        .iter()
        .filter_map(|l| {
            let mut parts = l.split(' ');
            (parts.next()? == action).then(|| {
                let key = parts.next().unwrap_or_default().to_owned();
                (key, parts.next().and_then(|a| a.parse().ok()).unwrap_or(0))
            })
        })
        .collect()
}

const RECORD: &str = "    config: { simulate: { record: /log/calls.log } }";

#[test]
fn killed_while_a_retry_is_pending_the_retry_happens_once_after_resume() {
    let s = Sandbox::new();
    let bindings = s.bindings(&[
        ("reserve_inventory", RECORD),
        (
            "charge_payment",
            "    config: { simulate: { record: /log/calls.log, retryable_times: 1 } }",
        ),
        ("create_shipment", RECORD),
    ]);
    let data = s.data();
    let input = order_input(1, "4242");
    let mut engine = Running::spawn(&run_args(&saga(), &bindings, &input, &data));
    let id = engine.wait_for("");
    engine.wait_for("charge: attempt 1 failed");
    engine.kill();

    let status = status_of(&id, &data);
    assert_eq!(status["status"], "running");
    assert_eq!(
        status["step"]["phase"], "backoff",
        "waiting on its stored retry timer"
    );

    let out = run(&["resume", "--data", &data]);
    assert_eq!(out.code, 0, "{}\n{}", out.stdout, out.stderr);
    assert!(
        out.stdout.contains(&format!("{id}  charge --done--> ship")),
        "{}",
        out.stdout
    );
    let charges = calls(&s, "charge_payment");
    let attempts: Vec<u32> = charges.iter().map(|(_, a)| *a).collect();
    assert_eq!(
        attempts,
        [1, 2],
        "the retry survived the crash and ran exactly once"
    );
    assert_eq!(charges[0].0, charges[1].0, "same idempotency key");
    assert_eq!(status_of(&id, &data)["status"], "succeeded");
}

#[test]
fn killed_while_waiting_on_a_token_completion_and_resume_finish_the_step() {
    let s = Sandbox::new();
    let bindings = s.bindings(&[(
        "create_shipment",
        "    config: { simulate: { record: /log/calls.log, pending: true } }",
    )]);
    let data = s.data();
    let input = order_input(1, "4242");
    let mut engine = Running::spawn(&run_args(&saga(), &bindings, &input, &data));
    let id = engine.wait_for("");
    let line = engine.wait_for("waiting on token");
    let token = line
        .split('\'')
        .nth(1)
        .expect("the token is quoted")
        .to_owned();
    engine.kill();

    // No engine runs: the completion is committed and waits for resume.
    let out = run(&[
        "complete",
        &token,
        "--output",
        "{\"tracking\": \"TRK-9\"}",
        "--data",
        &data,
    ]);
    assert_eq!(out.code, 0, "{}", out.stderr);
    assert!(
        out.stdout.contains("continues with `weft resume"),
        "{}",
        out.stdout
    );
    let again = run(&["complete", &token, "--output", "{}", "--data", &data]);
    assert_eq!(again.code, 2);
    assert!(
        again.stderr.contains("was already completed"),
        "{}",
        again.stderr
    );

    let out = run(&["resume", "--data", &data]);
    assert_eq!(out.code, 0, "{}\n{}", out.stdout, out.stderr);
    let status = status_of(&id, &data);
    assert_eq!(status["status"], "succeeded");
    assert_eq!(status["data"]["shipment"]["tracking"], "TRK-9");
    assert_eq!(
        calls(&s, "create_shipment").len(),
        1,
        "the pending step was not invoked again"
    );
}

#[test]
fn a_token_is_completed_through_the_engine_that_holds_the_data() {
    let s = Sandbox::new();
    let bindings = s.bindings(&[(
        "create_shipment",
        "    config: { simulate: { pending: true } }",
    )]);
    let data = s.data();
    let input = order_input(1, "4242");
    // `weft run` keeps running while its instance waits on the token.
    let mut engine = Running::spawn(&run_args(&saga(), &bindings, &input, &data));
    let id = engine.wait_for("");
    let line = engine.wait_for("waiting on token");
    let token = line.split('\'').nth(1).expect("quoted").to_owned();
    let out = run(&[
        "complete",
        &token,
        "--error",
        "address_invalid",
        "--message",
        "returned to sender",
        "--data",
        &data,
    ]);
    assert_eq!(out.code, 0, "{}", out.stderr);
    assert!(out.stdout.contains("failed token"), "{}", out.stdout);
    engine.wait_for("failed in 'cancelled': address_invalid: returned to sender");
    let status = engine.child.wait().expect("exits");
    assert_eq!(status.code(), Some(1));
    let history = json(&["history", &id, "--data", &data, "--json"]);
    let undone: Vec<&str> = history
        .as_array()
        .expect("array")
        .iter()
        .filter(|r| r["type"] == "compensated")
        .map(|r| r["undone"].as_str().unwrap_or_default())
        .collect();
    assert_eq!(undone, ["charge", "reserve"]);
}

#[test]
fn killed_in_the_middle_of_a_compensation_it_carries_on_after_resume() {
    let s = Sandbox::new();
    let bindings = s.bindings(&[
        (
            "refund_payment",
            "    config: { simulate: { record: /log/calls.log, sleep_ms: 1500 } }",
        ),
        ("release_inventory", RECORD),
    ]);
    let data = s.data();
    let no_address = serde_json::json!({"order": {"id": "o", "sku": "T", "qty": 1, "amount": 3, "card": "4242", "address": ""}}).to_string();
    let mut engine = Running::spawn(&run_args(&saga(), &bindings, &no_address, &data));
    let id = engine.wait_for("");
    engine.wait_for("ship --error.address_invalid--> undo");
    wait_for_calls(&s, "the refund to start", |c| {
        c.iter().any(|l| l.starts_with("refund_payment "))
    });
    engine.kill();
    assert!(
        calls(&s, "release_inventory").is_empty(),
        "killed before the release"
    );

    let out = run(&["resume", "--data", &data]);
    assert_eq!(out.code, 0, "{}\n{}", out.stdout, out.stderr);
    let status = status_of(&id, &data);
    assert_eq!(status["status"], "failed");
    assert_eq!(status["state"], "cancelled");
    let refunds = calls(&s, "refund_payment");
    assert_eq!(
        refunds.len(),
        2,
        "cut off before its outcome was recorded, so run again"
    );
    assert_eq!(refunds[0].0, refunds[1].0);
    assert!(refunds[0].0.ends_with("/charge/1/undo"), "{refunds:?}");
    assert_eq!(calls(&s, "release_inventory").len(), 1);
    let history = json(&["history", &id, "--data", &data, "--json"]);
    let undone: Vec<&str> = history
        .as_array()
        .expect("array")
        .iter()
        .filter(|r| r["type"] == "compensated")
        .map(|r| r["undone"].as_str().unwrap_or_default())
        .collect();
    assert_eq!(
        undone,
        ["charge", "reserve"],
        "each undone once, newest first"
    );
}

#[test]
fn a_parked_instance_is_redriven_after_the_tool_is_fixed() {
    let s = Sandbox::new();
    // Charging fails fatally and nothing routes it: the instance parks.
    let text = std::fs::read_to_string(saga())
        .expect("reads")
        .replace("on: { done: ship, error: undo }", "on: { done: ship }");
    let process = s.write("parking.yaml", &text);
    let broken = s.bindings(&[
        ("reserve_inventory", RECORD),
        (
            "charge_payment",
            "    config: { simulate: { record: /log/calls.log, fatal: gateway down } }",
        ),
    ]);
    let data = s.data();
    let out = run(&run_args(&process, &broken, &order_input(1, "4242"), &data));
    assert_eq!(out.code, 3, "{}\n{}", out.stdout, out.stderr);
    let id = out.lines()[0].to_owned();
    assert!(
        out.stdout
            .contains("parked in 'charge': fatal: gateway down"),
        "{}",
        out.stdout
    );

    // The tool is fixed by a new binding; the process does not change.
    let fixed = s.bindings(&[("reserve_inventory", RECORD), ("charge_payment", RECORD)]);
    let deploy = run(&["deploy", &process, "--bindings", &fixed, "--data", &data]);
    assert_eq!(deploy.code, 0, "{}", deploy.stderr);
    let out = run(&["redrive", &id, "--data", &data]);
    assert_eq!(out.code, 0, "{}", out.stderr);
    let out = run(&["resume", "--data", &data]);
    assert_eq!(out.code, 0, "{}\n{}", out.stdout, out.stderr);
    assert_eq!(status_of(&id, &data)["status"], "succeeded");
    assert_eq!(
        calls(&s, "reserve_inventory").len(),
        1,
        "completed steps are not re-run"
    );
    let charges = calls(&s, "charge_payment");
    assert_eq!(charges.iter().map(|(_, a)| *a).collect::<Vec<_>>(), [1, 2]);
    assert_eq!(charges[0].0, charges[1].0, "a redrive keeps the step's key");

    let again = run(&["redrive", &id, "--data", &data]);
    assert_eq!(again.code, 2, "only a parked instance can be redriven");
    assert!(
        again.stderr.contains("already succeeded"),
        "{}",
        again.stderr
    );
}

#[test]
fn cancel_with_compensation_undoes_what_completed() {
    let s = Sandbox::new();
    // Shipping waits on a token, so the instance sits in `ship`.
    let bindings = s.bindings(&[
        (
            "create_shipment",
            "    config: { simulate: { pending: true } }",
        ),
        ("release_inventory", RECORD),
        ("refund_payment", RECORD),
    ]);
    let data = s.data();
    let mut engine = Running::spawn(&run_args(
        &saga(),
        &bindings,
        &order_input(1, "4242"),
        &data,
    ));
    let id = engine.wait_for("");
    engine.wait_for("waiting on token");
    engine.kill();

    let cancel = run(&["cancel", &id, "--compensate", "--data", &data]);
    assert_eq!(cancel.code, 0, "{}", cancel.stderr);
    assert!(
        cancel.stdout.contains("undoing its completed steps first"),
        "{}",
        cancel.stdout
    );
    let out = run(&["resume", "--data", &data]);
    assert_eq!(out.code, 0, "{}\n{}", out.stdout, out.stderr);
    let status = status_of(&id, &data);
    assert_eq!(status["status"], "cancelled");
    let history = json(&["history", &id, "--data", &data, "--json"]);
    let undone: Vec<&str> = history
        .as_array()
        .expect("array")
        .iter()
        .filter(|r| r["type"] == "compensated")
        .map(|r| r["undone"].as_str().unwrap_or_default())
        .collect();
    assert_eq!(undone, ["charge", "reserve"]);
    assert_eq!(calls(&s, "refund_payment").len(), 1);
    assert_eq!(calls(&s, "release_inventory").len(), 1);
    let again = run(&["cancel", &id, "--data", &data]);
    assert_eq!(again.code, 2);
    assert!(
        again.stderr.contains("already cancelled"),
        "{}",
        again.stderr
    );
}
