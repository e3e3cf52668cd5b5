//! Adapters written in JavaScript and Python (`plugins/js`, `plugins/python`),
//! built by `scripts/build-foreign-adapters.sh` and run by the real binary:
//! the polyglot example's payout end to end, its typed errors routed, and
//! transient failures of both adapters retried.
//!
//! Each fresh data directory compiles the two components again (seconds per
//! component in a debug build), so the scenarios share one and run in turn.

use std::path::PathBuf;
use std::process::Command;

use serde_json::Value;
use weft_tests::{
    FOREIGN_EXAMPLES, Output, Sandbox, check_example, foreign_adapters, json, root, run, run_args,
};

fn polyglot() -> PathBuf {
    root().join("examples/polyglot")
}

fn process() -> String {
    polyglot().join("process.yaml").display().to_string()
}

/// The example's bindings with the components' paths made absolute, so the
/// copy works from the sandbox; `config` is added to both actions' configs.
fn bindings_copy(sandbox: &Sandbox, config: &str) -> String {
    let text = std::fs::read_to_string(polyglot().join("bindings.yaml")).expect("readable");
    let foreign = root().join("target/foreign");
    let text = text
        .replace("../../target/foreign", &foreign.display().to_string())
        .replace("max_amount: 5000", &format!("max_amount: 5000{config}"))
        .replace("balance: 2500", &format!("balance: 2500{config}"));
    sandbox.write("bindings.yaml", &text)
}

fn payout(amount: u32) -> String {
    serde_json::json!({"payout": {"customer": "ada", "account": "acc-ada", "amount": amount}})
        .to_string()
}

fn history(id: &str, data: &str) -> Vec<Value> {
    json(&["history", id, "--data", data, "--json"])
        .as_array()
        .expect("history is an array")
        .clone()
}

fn transitions(history: &[Value]) -> Vec<String> {
    history
        .iter()
        .filter(|r| r["type"] == "transition")
        .map(|r| format!("{} --{}--> {}", r["from"], r["event"], r["to"]).replace('"', ""))
        .collect()
}

fn instance_id(out: &Output) -> String {
    let id = out.lines().first().copied().unwrap_or_default().to_owned();
    assert_eq!(id.len(), 26, "the first line is the instance id:\n{out:?}");
    id
}

#[test]
fn foreign_examples_run_and_their_adapters_retry_and_route_typed_errors() {
    foreign_adapters();
    // One data directory throughout: the components compile once.
    let sandbox = Sandbox::new();
    for name in FOREIGN_EXAMPLES {
        let dir = root().join("examples").join(name);
        assert!(dir.is_dir(), "{} is listed but missing", dir.display());
        check_example(&dir, &sandbox);
    }
    a_payout_is_scored_and_posted(&sandbox);
    typed_errors_route_to_their_states(&sandbox);
    busy_adapters_are_retried_until_both_answer(&sandbox);
}

fn a_payout_is_scored_and_posted(sandbox: &Sandbox) {
    let data = sandbox.data();
    let bindings = bindings_copy(sandbox, "");
    let out = run(&run_args(&process(), &bindings, &payout(120), &data));
    assert_eq!(out.code, 0, "{out:?}");
    assert!(out.stdout.contains("succeeded in 'paid'"), "{out:?}");
    let id = instance_id(&out);

    let status = json(&["status", &id, "--data", &data, "--json"]);
    let output = &status["output"];
    assert_eq!(status["status"], "succeeded");
    // The ledger names the entry after the step's idempotency key.
    assert_eq!(output["entry"], format!("{id}/post/1"), "{output}");
    assert_eq!(output["account"], "acc-ada");
    assert_eq!(output["amount"], 120);
    let score = output["score"].as_u64().expect("an integer score");
    assert!(score <= 100, "{output}");

    // The same payout scores the same: the score depends on its input only.
    let again = run(&run_args(&process(), &bindings, &payout(120), &data));
    let again = json(&["status", &instance_id(&again), "--data", &data, "--json"]);
    assert_eq!(again["output"]["score"], score);
    assert_ne!(again["output"]["entry"], output["entry"]);
}

fn typed_errors_route_to_their_states(sandbox: &Sandbox) {
    let data = sandbox.data();
    let bindings = bindings_copy(sandbox, "");
    let cases = [
        // Over the risk adapter's max_amount (5000): never reaches the ledger.
        (
            7000,
            "held",
            "held_for_review",
            vec!["score --error.too_risky--> held"],
        ),
        // Within it, but over the ledger's balance (2500).
        (
            3000,
            "unfunded",
            "insufficient_funds",
            vec![
                "score --done--> post",
                "post --error.insufficient_funds--> unfunded",
            ],
        ),
    ];
    for (amount, state, kind, path) in cases {
        let out = run(&run_args(&process(), &bindings, &payout(amount), &data));
        assert_eq!(out.code, 1, "{amount}: {out:?}");
        assert!(
            out.stdout.contains(&format!("failed in '{state}'")),
            "{amount}: {out:?}"
        );
        let id = instance_id(&out);
        let status = json(&["status", &id, "--data", &data, "--json"]);
        assert_eq!(status["error"]["kind"], kind, "{status}");
        let history = history(&id, &data);
        assert_eq!(transitions(&history), path, "{amount}");
        assert!(
            history.iter().all(|r| r["type"] != "attempt_failed"),
            "a typed error is not retried: {history:#?}"
        );
    }
}

fn busy_adapters_are_retried_until_both_answer(sandbox: &Sandbox) {
    let data = sandbox.data();
    let bindings = bindings_copy(sandbox, ", flaky_attempts: 2");
    let out = run(&run_args(&process(), &bindings, &payout(120), &data));
    assert_eq!(out.code, 0, "{out:?}");
    let id = instance_id(&out);
    let history = history(&id, &data);
    let failed: Vec<(&str, u64, &str)> = history
        .iter()
        .filter(|r| r["type"] == "attempt_failed")
        .map(|r| {
            (
                r["action"].as_str().unwrap_or_default(),
                r["attempt"].as_u64().unwrap_or_default(),
                r["failure"]["kind"].as_str().unwrap_or_default(),
            )
        })
        .collect();
    assert_eq!(
        failed,
        [
            ("score-risk", 1, "retryable"),
            ("score-risk", 2, "retryable"),
            ("post-entry", 1, "retryable"),
            ("post-entry", 2, "retryable"),
        ],
        "{history:#?}"
    );
    assert_eq!(
        transitions(&history),
        ["score --done--> post", "post --done--> paid"]
    );
    let status = json(&["status", &id, "--data", &data, "--json"]);
    // Every attempt of one visit carries the same key: the third posted the entry.
    assert_eq!(status["output"]["entry"], format!("{id}/post/1"));
}

#[test]
fn the_build_script_does_nothing_when_nothing_changed() {
    foreign_adapters();
    // From another directory: the script finds the repository itself.
    let out = Command::new(root().join("scripts/build-foreign-adapters.sh"))
        .current_dir(std::env::temp_dir())
        .output()
        .expect("the script runs");
    let said = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{said}");
    for component in ["weft_risk_js.wasm", "weft_ledger_py.wasm"] {
        assert!(
            said.contains(&format!("target/foreign/{component} is up to date")),
            "{said}"
        );
    }
    assert!(
        said.lines().all(|l| l.ends_with(" is up to date")),
        "nothing installed or built again: {said}"
    );
}
