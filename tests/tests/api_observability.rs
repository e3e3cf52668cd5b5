//! The HTTP API of a real `weft serve` child process: what it lets an operator see — metrics after a known workload, diagrams, JSON logs with spans, SLAs past due, and its OpenAPI document.

#![allow(clippy::unwrap_used)]

use serde_json::Value;
use weft_tests::{
    Sandbox, Server, deploy, eventually, expect, fixture, order_input, root, run, sample,
};

/// After a known workload the counts at `/metrics` are exactly what ran:
/// three orders through three steps each, and one declined card.
#[test]
fn metrics_count_a_known_workload() {
    let s = Sandbox::new();
    let data = s.data();
    deploy(&s, &data, &fixture("order.yaml"), &[]);
    let server = Server::start(&data, &[]);
    let start = "/v1/processes/order-fulfillment/instances?wait=30s";
    for card in ["4242", "4242", "4242", "4000000000000002"] {
        let body = format!(r#"{{"input": {}}}"#, order_input(1, card));
        assert_eq!(server.post(start, &body).status, 200);
    }
    let text = server.get("/metrics").body;
    let p = r#"process="order-fulfillment""#;
    let n = |series: &str| sample(&text, series);
    assert_eq!(
        n(&format!("weft_instances_started_total{{{p}}}")),
        4.0,
        "{text}"
    );
    for (status, count) in [("succeeded", 3.0), ("failed", 1.0)] {
        let ended = format!(r#"weft_instances_ended_total{{{p},status="{status}"}}"#);
        assert_eq!(n(&ended), count, "{status}: {text}");
        assert_eq!(
            n(&format!(r#"weft_instances{{status="{status}"}}"#)),
            count,
            "{text}"
        );
    }
    let attempts = |action: &str, plugin: &str, outcome: &str| {
        n(&format!(
            r#"weft_step_duration_seconds_count{{action="{action}",plugin="{plugin}",outcome="{outcome}"}}"#
        ))
    };
    assert_eq!(
        attempts("reserve_inventory", "inventory", "done"),
        4.0,
        "{text}"
    );
    assert_eq!(
        attempts("charge_payment", "payments", "done"),
        3.0,
        "{text}"
    );
    assert_eq!(
        attempts("charge_payment", "payments", "failed"),
        1.0,
        "{text}"
    );
    assert_eq!(
        attempts("create_shipment", "shipping", "done"),
        3.0,
        "{text}"
    );
    assert_eq!(
        n(r#"weft_step_failures_total{action="charge_payment",kind="card_declined"}"#),
        1.0,
        "{text}"
    );
    // start + one per step: 4 for each success, 3 for the declined one.
    assert_eq!(n(&format!("weft_transitions_total{{{p}}}")), 15.0, "{text}");
    assert!(n("weft_commit_batch_size_count") >= 1.0, "{text}");
    assert_eq!(n("weft_outbox"), 0.0, "{text}");
}

/// `weft diagram` draws a process file, and an instance's deployed version
/// with its current state and path — from the store, or through a running
/// server.
#[test]
fn weft_diagram_draws_a_process_and_an_instances_path() {
    let s = Sandbox::new();
    let data = s.data();
    let file = fixture("waits.yaml");
    let drawn = run(&["diagram", &file]);
    assert_eq!(drawn.code, 0, "{}", drawn.stderr);
    assert!(drawn.stdout.starts_with("flowchart TD"), "{}", drawn.stdout);
    assert!(
        drawn.stdout.contains("signals: approve, reject"),
        "{}",
        drawn.stdout
    );

    deploy(&s, &data, &file, &[]);
    let started = run(&[
        "start",
        "waits",
        "--input",
        r#"{"mode": "approval"}"#,
        "--key",
        "d-1",
        "--data",
        &data,
    ]);
    assert_eq!(
        started.code, 4,
        "waiting: {}\n{}",
        started.stdout, started.stderr
    );
    let embedded = run(&[
        "diagram",
        "--instance",
        "d-1",
        "--format",
        "dot",
        "--data",
        &data,
    ]);
    assert_eq!(embedded.code, 0, "{}", embedded.stderr);
    let dot = &embedded.stdout;
    assert!(dot.starts_with("digraph \"waits\""), "{dot}");
    // intake --done--> review was taken; review is where it waits.
    assert_eq!(dot.matches("penwidth=2.5").count(), 1, "{dot}");
    let current = dot
        .lines()
        .find(|l| l.contains("fillcolor=\"#ffd54f\""))
        .unwrap_or_default();
    assert!(current.contains("review"), "{dot}");

    let server = Server::start(&data, &[]);
    let remote = run(&["diagram", "--instance", "d-1", "--data", &data]);
    assert_eq!(remote.code, 0, "{}", remote.stderr);
    assert!(remote.stdout.contains(" current"), "{}", remote.stdout);
    drop(server);
    let bad = run(&["diagram", &file, "--format", "png"]);
    assert_eq!(bad.code, 2);
    let none = run(&["diagram", "--data", &data]);
    assert_eq!(none.code, 2);
}

/// `--log-format json` writes one JSON object per line, and every
/// invocation runs in a span naming the instance, process version, state,
/// action, idempotency key, attempt and the digest of the plugin that ran.
#[test]
fn json_logs_carry_a_span_per_invocation_and_transition() {
    let s = Sandbox::new();
    let data = s.data();
    let mut cmd = weft_tests::weft(&weft_tests::run_args(
        &weft_tests::order_process(),
        &s.bindings(&[]),
        &order_input(1, "4242"),
        &data,
    ));
    cmd.arg("--log-format")
        .arg("json")
        .env("WEFT_LOG", "weft_core=debug");
    let out = weft_tests::output(cmd);
    assert_eq!(out.code, 0, "{}\n{}", out.stdout, out.stderr);
    let lines: Vec<Value> = out
        .stderr
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("not JSON ({e}): {l}")))
        .collect();
    let invoke = lines
        .iter()
        .find(|l| l["span"]["name"] == "invoke" && l["span"]["action"] == "charge_payment")
        .unwrap_or_else(|| panic!("no invoke span for the charge: {}", out.stderr));
    let span = &invoke["span"];
    assert_eq!(span["process"], "order-fulfillment");
    assert_eq!(span["state"], "charge");
    assert_eq!(span["attempt"], 1);
    assert!(
        span["key"].as_str().unwrap().ends_with("/charge/1"),
        "{span}"
    );
    assert_eq!(span["plugin"].as_str().unwrap().len(), 64, "{span}");
    assert!(
        lines
            .iter()
            .any(|l| l["span"]["name"] == "transition" && l["fields"]["message"] == "committed"),
        "{}",
        out.stderr
    );
}

/// A state's `sla` on a real server: the instance left waiting past it is
/// flagged — listed by `weft list --stuck`, counted at `/metrics`, recorded
/// in its history — and the one that moved on in time is not.
#[test]
fn an_instance_past_its_sla_is_listed_as_stuck_counted_and_recorded() {
    let s = Sandbox::new();
    let data = s.data();
    let process = s.write(
        "slow-review.yaml",
        r#"
process: slow-review
version: 1
start: review
states:
  review:
    type: wait
    sla: 2s
    on: { approve: ok }
  ok: { type: succeed }
"#,
    );
    deploy(&s, &data, &process, &[]);
    let server = Server::start(&data, &[]);
    let start = |key: &str| {
        let body = format!(r#"{{"input": {{}}, "key": "{key}"}}"#);
        expect(
            &server.post("/v1/processes/slow-review/instances", &body),
            201,
        )["id"]
            .as_str()
            .unwrap()
            .to_owned()
    };
    let late = start("late");
    let prompt = start("prompt");
    let signal = run(&["signal", "prompt", "approve", "--data-dir", &data]);
    assert_eq!(signal.code, 0, "{}", signal.stderr);

    let listed = eventually("the late one to be stuck", || {
        let out = run(&["list", "--stuck", "--json", "--data", &data]);
        assert_eq!(out.code, 0, "{}", out.stderr);
        let page: Value = serde_json::from_str(&out.stdout).unwrap();
        let items = page["items"].as_array().unwrap().clone();
        (!items.is_empty()).then_some(items)
    });
    assert_eq!(listed.len(), 1, "{listed:?}");
    assert_eq!(listed[0]["id"], late.as_str());
    assert_eq!(listed[0]["overdue"][0]["state"], "review");
    assert_eq!(listed[0]["overdue"][0]["sla"], 2000);
    let table = run(&["list", "--stuck", "--data", &data]);
    assert!(
        table.stdout.contains("stuck: in 'review'"),
        "{}",
        table.stdout
    );

    let history = run(&["history", "late", "--data", &data]);
    assert!(
        history.stdout.contains("stuck: in 'review' since"),
        "{}",
        history.stdout
    );
    let prompt_history = run(&["history", &prompt, "--data", &data]);
    assert!(
        !prompt_history.stdout.contains("stuck"),
        "{}",
        prompt_history.stdout
    );
    let metrics = server.get("/metrics").body;
    assert_eq!(
        sample(
            &metrics,
            r#"weft_sla_exceeded_total{process="slow-review",scope="state",state="review"}"#
        ),
        1.0,
        "{metrics}"
    );
}

/// The running server serves the OpenAPI document checked in at
/// `api/openapi.json`, byte for byte.
#[test]
fn the_server_serves_the_checked_in_openapi_document() {
    let s = Sandbox::new();
    let data = s.data();
    let server = Server::start(&data, &[]);
    let served = server.get("/v1/openapi.json");
    assert_eq!(served.status, 200);
    assert_eq!(served.header("content-type"), Some("application/json"));
    let checked_in = std::fs::read_to_string(root().join("api/openapi.json")).unwrap();
    assert!(
        served.body == checked_in,
        "the served document differs from api/openapi.json"
    );
}
