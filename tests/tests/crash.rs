//! Crash and recovery with real processes: `weft run` is killed with SIGKILL
//! in the middle of a step, `weft resume` finishes the instance, and nothing
//! whose outcome was recorded is invoked again.

use serde_json::Value;
use weft_tests::{
    Running, Sandbox, json, order_input, order_process, run, run_args, status_of, wait_for_calls,
};

fn count(calls: &[String], action: &str) -> usize {
    calls
        .iter()
        .filter(|c| c.starts_with(&format!("{action} ")))
        .count()
}

#[test]
fn killed_mid_step_then_resumed_completes_without_repeating_recorded_steps() {
    let s = Sandbox::new();
    let record = "    config: { simulate: { record: /log/calls.log } }";
    let slow = "    config: { simulate: { record: /log/calls.log, sleep_ms: 1500 } }";
    let bindings = s.bindings(&[
        ("reserve_inventory", record),
        ("charge_payment", slow),
        ("create_shipment", record),
    ]);
    let data = s.data();
    let input = order_input(2, "4242");

    let mut engine = Running::spawn(&run_args(&order_process(), &bindings, &input, &data));
    let id = engine.wait_for("");
    // reserve's outcome is committed once its transition is printed.
    engine.wait_for("reserve --done--> charge");
    // charge has started (and is sleeping) once it has recorded its call.
    wait_for_calls(&s, "charge to start", |c| count(c, "charge_payment") == 1);
    engine.kill();

    let before = status_of(&id, &data);
    assert_eq!(before["status"], "running");
    assert_eq!(before["state"], "charge");

    let resumed = run(&["resume", "--data", &data]);
    assert_eq!(resumed.code, 0, "{}\n{}", resumed.stdout, resumed.stderr);
    assert!(
        resumed.stdout.contains("resuming 1 instance"),
        "{}",
        resumed.stdout
    );
    assert!(
        resumed
            .stdout
            .contains(&format!("{id}  charge --done--> ship")),
        "{}",
        resumed.stdout
    );
    assert!(
        resumed
            .stdout
            .contains("done: 1 succeeded, 0 failed, 0 parked"),
        "{}",
        resumed.stdout
    );

    let after = status_of(&id, &data);
    assert_eq!(after["status"], "succeeded");

    // History: gap-free, each step's transition exactly once.
    let history = json(&["history", &id, "--data", &data, "--json"]);
    let records = history.as_array().expect("array");
    let seqs: Vec<u64> = records
        .iter()
        .map(|r| r["seq"].as_u64().expect("seq"))
        .collect();
    assert_eq!(seqs, (0..records.len() as u64).collect::<Vec<_>>());
    let moves: Vec<String> = records
        .iter()
        .filter(|r| r["type"] == "transition")
        .map(|r| {
            format!(
                "{} {}",
                r["from"].as_str().unwrap_or(""),
                r["to"].as_str().unwrap_or("")
            )
        })
        .collect();
    assert_eq!(moves, ["reserve charge", "charge ship", "ship shipped"]);

    // The adapters' own record of their calls: reserve's outcome was recorded
    // before the crash, so it ran once; charge was cut off and ran again with
    // the same idempotency key (at-least-once); ship ran once.
    let calls = s.calls();
    assert_eq!(count(&calls, "reserve_inventory"), 1, "{calls:#?}");
    assert_eq!(count(&calls, "charge_payment"), 2, "{calls:#?}");
    assert_eq!(count(&calls, "create_shipment"), 1, "{calls:#?}");
    let keys: Vec<&str> = calls
        .iter()
        .filter(|c| c.starts_with("charge_payment "))
        .map(|c| c.split(' ').nth(1).unwrap_or(""))
        .collect();
    assert_eq!(
        keys[0], keys[1],
        "a re-run of the same step visit carries the same key"
    );
    assert_eq!(keys[0], format!("{id}/charge/1"));

    // A second resume finds nothing to do and invokes nothing.
    let again = run(&["resume", "--data", &data]);
    assert_eq!(again.code, 0);
    assert!(
        again.stdout.contains("nothing to resume"),
        "{}",
        again.stdout
    );
    assert_eq!(s.calls().len(), calls.len());
    let _: Value = after;
}

#[test]
fn killed_many_times_the_instance_still_finishes_once() {
    let s = Sandbox::new();
    let slow = "    config: { simulate: { record: /log/calls.log, sleep_ms: 400 } }";
    let bindings = s.bindings(&[
        ("reserve_inventory", slow),
        ("charge_payment", slow),
        ("create_shipment", slow),
    ]);
    let data = s.data();
    let input = order_input(2, "4242");
    let mut engine = Running::spawn(&run_args(&order_process(), &bindings, &input, &data));
    let id = engine.wait_for("");
    wait_for_calls(&s, "reserve to start", |c| !c.is_empty());
    engine.kill();
    // Kill each resume as soon as its first new invocation starts.
    for round in 0..3 {
        let seen = s.calls().len();
        let status = status_of(&id, &data);
        if status["status"] != "running" {
            break;
        }
        let resume = Running::spawn(&["resume", "--data", &data]);
        wait_for_calls(&s, &format!("round {round} to invoke"), |c| c.len() > seen);
        resume.kill();
    }
    let out = run(&["resume", "--data", &data]);
    assert_eq!(out.code, 0, "{}", out.stderr);
    let status = status_of(&id, &data);
    assert_eq!(status["status"], "succeeded");
    let history = json(&["history", &id, "--data", &data, "--json"]);
    let transitions = history
        .as_array()
        .expect("array")
        .iter()
        .filter(|r| r["type"] == "transition")
        .count();
    assert_eq!(
        transitions, 3,
        "each step's outcome is recorded exactly once"
    );
    // Every recorded call of one step carries that step's single key.
    for c in s.calls() {
        let key = c.split(' ').nth(1).unwrap_or("");
        assert!(
            key.starts_with(&format!("{id}/")) && key.ends_with("/1"),
            "{c}"
        );
    }
}
