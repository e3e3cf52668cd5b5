//! Every example is validated and run through the real binary and plugins.

use weft_tests::{
    FOREIGN_EXAMPLES, Sandbox, check_example, json, order_input, root, run, run_args, status_of,
};

fn example(name: &str) -> (String, String) {
    let dir = root().join("examples").join(name);
    (
        dir.join("process.yaml").display().to_string(),
        dir.join("bindings.yaml").display().to_string(),
    )
}

#[test]
fn every_example_validates_and_its_input_runs_to_succeed() {
    let dirs: Vec<_> = std::fs::read_dir(root().join("examples"))
        .expect("examples/ exists")
        .map(|e| e.expect("entry").path())
        .filter(|p| p.is_dir())
        .collect();
    assert!(!dirs.is_empty());
    for dir in dirs {
        // Their adapters need npm and PyPI to build: tests/foreign_adapters.rs
        // builds them and runs these examples through the same check.
        if dir
            .file_name()
            .and_then(|n| n.to_str())
            .is_some_and(|n| FOREIGN_EXAMPLES.contains(&n))
        {
            continue;
        }
        check_example(&dir, &Sandbox::new());
    }
}

#[test]
fn order_fulfillment_prints_each_transition_and_the_output() {
    let sandbox = Sandbox::new();
    let (process, bindings) = example("order-fulfillment");
    let data = sandbox.data();
    let out = run(&run_args(
        &process,
        &bindings,
        &order_input(2, "4242"),
        &data,
    ));
    assert_eq!(out.code, 0, "{}", out.stderr);
    let lines = out.lines();
    let transitions: Vec<String> = lines
        .iter()
        .filter(|l| l.contains("-->"))
        .map(|l| l.split("  (").next().unwrap_or_default().to_owned())
        .collect();
    assert_eq!(
        transitions,
        [
            "reserve --done--> charge",
            "charge --done--> ship",
            "ship --done--> notify",
            "notify --done--> shipped"
        ]
    );
    assert!(
        lines
            .iter()
            .all(|l| !l.contains("-->") || l.ends_with("ms)") || l.ends_with("s)")),
        "each transition shows its duration: {lines:?}"
    );
    assert!(out.stdout.contains("succeeded in 'shipped'"));
    assert!(
        out.stdout.contains("\"order\": \"ord-1\""),
        "the output is printed: {}",
        out.stdout
    );

    let history = json(&["history", lines[0], "--data", &data, "--json"]);
    let seqs: Vec<u64> = history
        .as_array()
        .expect("array")
        .iter()
        .map(|r| r["seq"].as_u64().expect("seq"))
        .collect();
    assert_eq!(
        seqs,
        (0..seqs.len() as u64).collect::<Vec<_>>(),
        "gap-free history"
    );
    assert_eq!(history[0]["type"], "started");
    assert_eq!(history[seqs.len() - 1]["type"], "succeeded");
}

#[test]
fn order_fulfillment_failures_undo_exactly_the_completed_steps() {
    let (process, bindings) = example("order-fulfillment");
    let no_address = serde_json::json!({"order": {"id": "o", "sku": "T", "qty": 1, "amount": 3,
        "card": "4242", "address": "", "email": "a@b"}})
    .to_string();
    let cases: [(String, &str, &str, &[&str]); 3] = [
        // Nothing completed yet: nothing to undo.
        (
            order_input(100, "4242"),
            "out_of_stock",
            "out_of_stock",
            &[],
        ),
        // Reserved, then declined: the reservation is released.
        (
            order_input(1, "4000000000000002"),
            "cancelled",
            "card_declined",
            &["release_inventory"],
        ),
        // Reserved and charged, then shipping fails: refund, then release.
        (
            no_address,
            "cancelled",
            "address_invalid",
            &["refund_payment", "release_inventory"],
        ),
    ];
    for (input, state, kind, undone) in cases {
        let sandbox = Sandbox::new();
        let data = sandbox.data();
        let out = run(&run_args(&process, &bindings, &input, &data));
        assert_eq!(out.code, 1, "{}\n{}", out.stdout, out.stderr);
        assert!(
            out.stdout.contains(&format!("failed in '{state}'")),
            "{}",
            out.stdout
        );
        let id = out.lines()[0];
        let status = status_of(id, &data);
        assert_eq!(status["status"], "failed");
        assert_eq!(status["error"]["kind"], kind);
        let history = json(&["history", id, "--data", &data, "--json"]);
        let compensated: Vec<&str> = history
            .as_array()
            .expect("array")
            .iter()
            .filter(|r| r["type"] == "compensated")
            .map(|r| r["action"].as_str().unwrap_or_default())
            .collect();
        assert_eq!(compensated, undone, "{kind}: newest first");
    }
}

#[test]
fn status_and_history_print_readable_tables() {
    let sandbox = Sandbox::new();
    let (process, bindings) = example("order-fulfillment");
    let data = sandbox.data();
    let out = run(&run_args(
        &process,
        &bindings,
        &order_input(1, "4242"),
        &data,
    ));
    let id = out.lines()[0].to_owned();
    let status = run(&["status", &id, "--data", &data]);
    assert_eq!(status.code, 0);
    assert!(
        status.stdout.contains("status    succeeded"),
        "{}",
        status.stdout
    );
    assert!(
        status.stdout.contains("process   order-fulfillment v2"),
        "{}",
        status.stdout
    );
    let history = run(&["history", &id, "--data", &data]);
    assert_eq!(history.code, 0);
    assert!(
        history
            .stdout
            .lines()
            .next()
            .is_some_and(|h| h.contains("seq") && h.contains("what"))
    );
    assert!(
        history.stdout.contains("charge --done--> ship"),
        "{}",
        history.stdout
    );
}
