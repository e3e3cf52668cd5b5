//! Bad input: one clear line saying where and what, a non-zero exit, and
//! nothing half-written in the store. Misbehaving plugins become typed step
//! failures and the engine carries on.

use std::path::Path;

use weft_model::Status;
use weft_store::Instances;
use weft_store_sled::SledStore;
use weft_tests::{Sandbox, order_input, order_process, plugin, run, run_args, status_of};

/// Asserts the data dir holds no instance at all.
fn no_instances(data: &str) {
    let db = Path::new(data).join("db");
    if !db.exists() {
        return;
    }
    let store = SledStore::open(&db).expect("store opens");
    for s in Status::ALL {
        assert!(
            store.ids_with_status(s).expect("reads").is_empty(),
            "a {s} instance was left behind"
        );
    }
}

/// The error output is exactly one line, and it contains `needle`.
fn one_line(stderr: &str, needle: &str) {
    let lines: Vec<&str> = stderr.lines().collect();
    assert_eq!(lines.len(), 1, "expected one line, got {lines:#?}");
    assert!(
        lines[0].contains(needle),
        "{:?} does not say {needle:?}",
        lines[0]
    );
}

#[test]
fn malformed_yaml_is_reported_with_its_position() {
    let s = Sandbox::new();
    let bindings = s.bindings(&[]);
    let bad = s.write(
        "bad.yaml",
        "process: p\nversion: 1\nstart: a\nstates:\n  a: [1, 2\n",
    );
    let out = run(&["run", &bad, "--bindings", &bindings, "--data", &s.data()]);
    assert_eq!(out.code, 2);
    one_line(&out.stderr, "bad.yaml:6:1: this is not valid YAML");
    no_instances(&s.data());
}

#[test]
fn malformed_json_input_is_rejected_before_anything_is_stored() {
    let s = Sandbox::new();
    let bindings = s.bindings(&[]);
    let out = run(&run_args(
        &order_process(),
        &bindings,
        "{\"order\": ",
        &s.data(),
    ));
    assert_eq!(out.code, 2);
    one_line(
        &out.stderr,
        "error: --input is not valid JSON: EOF while parsing a value at line 1 column 10",
    );
    no_instances(&s.data());
    let out = run(&[
        "run",
        &order_process(),
        "--bindings",
        &bindings,
        "--input",
        "[1]",
        "--data",
        &s.data(),
    ]);
    assert_eq!(out.code, 2);
    one_line(&out.stderr, "--input must be a JSON object");
    no_instances(&s.data());
}

#[test]
fn an_unknown_field_is_an_error_not_ignored() {
    let s = Sandbox::new();
    let bindings = s.bindings(&[]);
    let text = std::fs::read_to_string(order_process()).expect("reads");
    let bad = s.write(
        "p.yaml",
        &text.replace(
            "    output: .payment\n",
            "    output: .payment\n    retries: 3\n",
        ),
    );
    let out = run(&["validate", &bad, "--bindings", &bindings]);
    assert_eq!(out.code, 2);
    let lines: Vec<&str> = out.stderr.lines().collect();
    assert!(
        lines[0].contains("p.yaml:23:5: unknown field 'retries' in state 'charge'"),
        "{lines:?}"
    );
    assert_eq!(lines[1], "1 problem found");
    let out = run(&["run", &bad, "--bindings", &bindings, "--data", &s.data()]);
    assert_eq!(out.code, 2);
    one_line(&out.stderr, "unknown field 'retries'");
    no_instances(&s.data());
}

#[test]
fn a_missing_plugin_file_points_at_the_bindings_entry() {
    let s = Sandbox::new();
    let bindings = s.bindings(&[]);
    let text = std::fs::read_to_string(&bindings).expect("reads");
    let text = text.replace(
        &plugin("payments").display().to_string(),
        "/nowhere/payments.wasm",
    );
    let bindings = s.write("b2.yaml", &text);
    let out = run(&run_args(
        &order_process(),
        &bindings,
        &order_input(1, "1"),
        &s.data(),
    ));
    assert_eq!(out.code, 2);
    one_line(
        &out.stderr,
        "b2.yaml:3:13: plugin 'payments': cannot read /nowhere/payments.wasm: No such file or directory",
    );
    no_instances(&s.data());
}

#[test]
fn files_that_are_not_adapter_components_are_refused_clearly() {
    let s = Sandbox::new();
    let cases: [(&str, &[u8], &str); 3] = [
        (
            "garbage.wasm",
            b"this is not wasm",
            "this is not a WebAssembly component",
        ),
        // A core module: WebAssembly, but not a component.
        (
            "core.wasm",
            b"\0asm\x01\0\0\0",
            "this is not a WebAssembly component",
        ),
        // A valid, empty component: it exports neither describe nor invoke.
        (
            "empty.wasm",
            b"\0asm\x0d\0\x01\0",
            "does not implement the weft:plugin/adapter world",
        ),
    ];
    for (file, bytes, needle) in cases {
        let path = s.path(file);
        std::fs::write(&path, bytes).expect("write");
        let text = std::fs::read_to_string(s.bindings(&[])).expect("reads");
        let text = text.replace(
            &plugin("payments").display().to_string(),
            &path.display().to_string(),
        );
        let bindings = s.write("b.yaml", &text);
        let out = run(&["validate", &order_process(), "--bindings", &bindings]);
        assert_eq!(out.code, 2, "{file}");
        let first = out.stderr.lines().next().unwrap_or_default();
        assert!(
            first.starts_with(&format!("{bindings}:3:13: plugin 'payments': ")),
            "{file}: {first}"
        );
        assert!(first.contains(needle), "{file}: {first}");
        let out = run(&run_args(
            &order_process(),
            &bindings,
            &order_input(1, "1"),
            &s.data(),
        ));
        assert_eq!(out.code, 2, "{file}");
        no_instances(&s.data());
    }
}

#[test]
fn bindings_must_match_the_process_and_the_manifests() {
    let s = Sandbox::new();
    // charge_payment unbound; create_shipment bound to a plugin action that does not exist.
    let text =
        std::fs::read_to_string(s.bindings(&[("create_shipment", "    action: book_shipment")]))
            .expect("reads");
    let text = text.replace(
        "  charge_payment:\n    plugin: payments\n",
        "  charge_payments:\n    plugin: payments\n    action: charge_payment\n",
    );
    let bindings = s.write("b.yaml", &text);
    let out = run(&["validate", &order_process(), "--bindings", &bindings]);
    assert_eq!(out.code, 2);
    assert!(out.stderr.contains("order.yaml:20:13: state 'charge' runs action 'charge_payment', which has no binding (add `charge_payment:` under `actions:`"), "{}", out.stderr);
    assert!(out.stderr.contains("b.yaml:24:13: action 'create_shipment' is bound to plugin 'shipping', whose manifest has no action 'book_shipment' (it has: create_shipment, cancel_shipment)"), "{}", out.stderr);
    assert!(out.stderr.contains("2 problems found"), "{}", out.stderr);
}

#[test]
fn routing_an_error_kind_the_action_never_raises_is_reported() {
    let s = Sandbox::new();
    let text = std::fs::read_to_string(order_process()).expect("reads");
    let p = s.write(
        "p.yaml",
        &text.replace(
            "error.card_declined: payment_declined",
            "error.card_expired: payment_declined",
        ),
    );
    let out = run(&["validate", &p, "--bindings", &s.bindings(&[])]);
    assert_eq!(out.code, 2);
    assert!(out.stderr.contains("p.yaml:25:7: state 'charge' routes 'error.card_expired', but action 'charge_payment' (plugin 'payments') never fails with kind 'card_expired' (it declares: card_declined, insufficient_funds; the engine adds: "), "{}", out.stderr);
}

/// Runs the order process with `extra` bindings on charge_payment; returns the
/// exit code and the instance's status JSON.
fn run_with_charge(s: &Sandbox, extra: &str) -> (i32, serde_json::Value, String) {
    let bindings = s.bindings(&[("charge_payment", extra)]);
    let data = s.data();
    let out = run(&run_args(
        &order_process(),
        &bindings,
        &order_input(1, "4242"),
        &data,
    ));
    let id = out.lines().first().copied().unwrap_or_default().to_owned();
    assert_eq!(
        id.len(),
        26,
        "no instance id: {}\n{}",
        out.stdout,
        out.stderr
    );
    (out.code, status_of(&id, &data), out.stdout)
}

#[test]
fn a_plugin_that_traps_fails_its_step_with_kind_trap() {
    let s = Sandbox::new();
    let (code, status, stdout) = run_with_charge(&s, "    config: { simulate: { trap: true } }");
    assert_eq!(code, 1, "{stdout}");
    assert!(stdout.contains("charge --error.trap--> failed"), "{stdout}");
    assert_eq!(status["status"], "failed");
    assert_eq!(status["error"]["kind"], "trap");
    let msg = status["error"]["message"].as_str().unwrap_or_default();
    assert!(
        msg.contains("simulated trap in charge_payment"),
        "the guest's panic message is kept: {msg}"
    );
}

#[test]
fn a_plugin_that_loops_forever_is_stopped_at_its_timeout() {
    let s = Sandbox::new();
    let (code, status, stdout) = run_with_charge(
        &s,
        "    timeout: 300ms\n    config: { simulate: { spin: true } }",
    );
    assert_eq!(code, 1, "{stdout}");
    assert!(
        stdout.contains("charge --error.timeout--> failed"),
        "{stdout}"
    );
    assert_eq!(status["error"]["kind"], "timeout");
    assert_eq!(status["error"]["message"], "did not finish within 300ms");
}

#[test]
fn a_plugin_that_grows_past_its_memory_cap_fails_with_kind_out_of_memory() {
    let s = Sandbox::new();
    let (code, status, stdout) = run_with_charge(
        &s,
        "    memory: 16MiB\n    config: { simulate: { alloc_mb: 64 } }",
    );
    assert_eq!(code, 1, "{stdout}");
    assert_eq!(status["error"]["kind"], "out_of_memory");
    assert!(
        status["error"]["message"]
            .as_str()
            .unwrap_or_default()
            .contains("memory limit of 16 MiB"),
        "{status}"
    );
}

#[test]
fn a_result_over_the_bindings_max_output_fails_with_kind_output_too_large() {
    let s = Sandbox::new();
    let (code, status, stdout) = run_with_charge(
        &s,
        "    max_output: 4KiB\n    config: { simulate: { output_kb: 8 } }",
    );
    assert_eq!(code, 1, "{stdout}");
    assert_eq!(status["error"]["kind"], "output_too_large");
    let message = status["error"]["message"].as_str().unwrap_or_default();
    assert!(
        message.contains("more than the 4096 its binding allows"),
        "{status}"
    );
    // Within the limit, the same answer goes through.
    let s = Sandbox::new();
    let (code, _, stdout) = run_with_charge(
        &s,
        "    max_output: 16KiB\n    config: { simulate: { output_kb: 8 } }",
    );
    assert_eq!(code, 0, "{stdout}");
}

#[test]
fn an_unhandled_failure_parks_the_instance_with_exit_3() {
    let s = Sandbox::new();
    let text = std::fs::read_to_string(order_process()).expect("reads");
    // Without its catch-all, a fatal charge failure has nowhere to go.
    let p = s.write(
        "p.yaml",
        &text.replace(
            "      error.card_declined: payment_declined\n      error: failed\n",
            "      error.card_declined: payment_declined\n",
        ),
    );
    let bindings = s.bindings(&[(
        "charge_payment",
        "    config: { simulate: { fatal: gateway gone } }",
    )]);
    let out = run(&run_args(&p, &bindings, &order_input(1, "4242"), &s.data()));
    assert_eq!(out.code, 3, "{}\n{}", out.stdout, out.stderr);
    assert!(
        out.stdout
            .contains("parked in 'charge': fatal: gateway gone"),
        "{}",
        out.stdout
    );
}
