//! Every example is validated and run through the real binary and plugins.

use weft_tests::{Sandbox, json, order_input, root, run, run_args, status_of};

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
        let name = dir
            .file_name()
            .and_then(|n| n.to_str())
            .unwrap_or_default()
            .to_owned();
        let process = dir.join("process.yaml").display().to_string();
        let bindings = dir.join("bindings.yaml").display().to_string();
        assert!(
            dir.join("README.md").exists(),
            "{name} has no README.md saying what it shows"
        );
        let v = run(&["validate", &process, "--bindings", &bindings]);
        assert_eq!(v.code, 0, "{name}: validate failed: {}", v.stderr);
        assert!(v.stdout.contains("is valid"), "{name}: {}", v.stdout);

        let input =
            std::fs::read_to_string(dir.join("input.json")).expect("each example has input.json");
        let sandbox = Sandbox::new();
        let data = sandbox.data();
        let out = run(&run_args(&process, &bindings, &input, &data));
        let lines = out.lines();
        assert_eq!(
            lines[0].len(),
            26,
            "{name}: the first line is the instance id: {lines:?}"
        );
        // An example that waits for people lists the signals that finish it.
        let signals = dir.join("signals.json");
        if signals.exists() {
            assert_eq!(
                out.code, 4,
                "{name}: waits:\n{}\n{}",
                out.stdout, out.stderr
            );
            let list: Vec<(String, serde_json::Value)> =
                serde_json::from_str(&std::fs::read_to_string(&signals).expect("readable"))
                    .expect("signals.json is a list of [event, payload]");
            for (event, payload) in list {
                let payload = payload.to_string();
                let s = run(&[
                    "signal",
                    lines[0],
                    &event,
                    "--data",
                    &payload,
                    "--data-dir",
                    &data,
                ]);
                assert_eq!(s.code, 0, "{name}: signal {event}: {}", s.stderr);
            }
            let r = run(&["resume", "--data", &data]);
            assert_eq!(r.code, 0, "{name}: resume: {}\n{}", r.stdout, r.stderr);
            assert!(r.stdout.contains("1 succeeded"), "{name}: {}", r.stdout);
        } else {
            assert_eq!(
                out.code, 0,
                "{name}: run failed:\n{}\n{}",
                out.stdout, out.stderr
            );
            assert!(
                lines.iter().any(|l| l.starts_with("succeeded in ")),
                "{name}: {lines:?}"
            );
        }
        let status = json(&["status", lines[0], "--data", &data, "--json"]);
        assert_eq!(status["status"], "succeeded", "{name}");
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
