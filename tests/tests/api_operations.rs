//! The HTTP API of a real `weft serve` child process: idempotent operator requests, the plugin registry, and misbehaving adapters contained while healthy instances finish.

#![allow(clippy::unwrap_used)]

use weft_tests::{Sandbox, Server, deploy, expect, fixture, http};

/// A signal, cancel, redrive or migrate with an `Idempotency-Key`: a retry
/// answers the same, says `repeated`, and changes nothing — even where the
/// process would take the same signal again.
#[test]
fn a_retried_operation_with_an_idempotency_key_is_applied_once() {
    let s = Sandbox::new();
    let data = s.data();
    let process = fixture("counter.yaml");
    deploy(&s, &data, &process, &[]);
    let server = Server::start(&data, &[]);
    let started = server.post("/v1/processes/counter/instances", r#"{"key": "c-1"}"#);
    expect(&started, 201);
    let bump = |key: &str| {
        http(
            "POST",
            &server.base,
            "/v1/instances/c-1/signals/bump",
            "{}",
            &[("Idempotency-Key", key)],
        )
    };
    let first = expect(&bump("k-1"), 200);
    assert_eq!(first["repeated"], false);
    let again = expect(&bump("k-1"), 200);
    assert_eq!(again["repeated"], true);
    assert_eq!(again["status"], "waiting");
    expect(&bump("k-2"), 200);
    let history = expect(&server.get("/v1/instances/c-1/history"), 200);
    let text = history.to_string();
    assert_eq!(text.matches(r#""event":"bump""#).count(), 2, "{text}");
    let bad = http(
        "POST",
        &server.base,
        "/v1/instances/c-1/cancel",
        "{}",
        &[("Idempotency-Key", "not ok")],
    );
    assert_eq!(expect(&bad, 400)["code"], "bad_request");
    let cancel = |key: &str| {
        http(
            "POST",
            &server.base,
            "/v1/instances/c-1/cancel",
            "{}",
            &[("Idempotency-Key", key)],
        )
    };
    assert_eq!(expect(&cancel("x"), 200)["status"], "cancelled");
    assert_eq!(expect(&cancel("x"), 200)["repeated"], true);
    assert_eq!(
        expect(&server.post("/v1/instances/c-1/cancel", "{}"), 409)["code"],
        "refused"
    );
}

/// The plugin registry over HTTP: a component uploaded is loaded and its
/// manifest read; the same bytes again change nothing; other bytes make
/// the next version; it is described by name, `name@version` or digest,
/// with the deployments whose bindings use it; garbage is refused.
#[test]
fn plugins_are_registered_listed_and_described() {
    let s = Sandbox::new();
    let data = s.data();
    deploy(&s, &data, &fixture("waits.yaml"), &[]);
    let server = Server::start(&data, &[]);
    let wasm = |name: &str| std::fs::read(weft_tests::plugin(name)).unwrap();
    let upload = |name: &str, bytes: &[u8]| {
        http(
            "POST",
            &server.base,
            &format!("/v1/plugins?name={name}"),
            bytes,
            &[("Content-Type", "application/wasm")],
        )
    };
    let first = expect(&upload("echo", &wasm("echo")), 201);
    assert_eq!(first["version"], 1);
    assert_eq!(first["sha256"].as_str().unwrap().len(), 64);
    let actions = first["manifest"]["actions"].as_array().unwrap();
    assert!(actions.iter().any(|a| a["name"] == "echo"), "{first}");
    // The same bytes again: the same entry, 200.
    assert_eq!(expect(&upload("echo", &wasm("echo")), 200), first);
    // Other bytes under the name: version 2.
    let second = expect(&upload("echo", &wasm("payments")), 201);
    assert_eq!(second["version"], 2);

    let listed = expect(&server.get("/v1/plugins"), 200);
    assert_eq!(listed["items"].as_array().unwrap().len(), 2);
    let by_name = expect(&server.get("/v1/plugins/echo"), 200);
    assert_eq!(by_name["versions"].as_array().unwrap().len(), 2);
    let one = expect(&server.get("/v1/plugins/echo@1"), 200);
    assert_eq!(one["versions"].as_array().unwrap().len(), 1);
    // The deployed `waits` process binds `echo` to these very bytes.
    let used = &one["used_by"];
    assert_eq!(used[0]["process"], "waits", "{one}");
    assert_eq!(used[0]["actions"], serde_json::json!(["echo"]), "{one}");
    let digest = first["sha256"].as_str().unwrap();
    let by_digest = expect(&server.get(&format!("/v1/plugins/{digest}")), 200);
    assert_eq!(by_digest["versions"][0]["version"], 1);

    let garbage = expect(&upload("junk", b"\0asm not really"), 422);
    assert_eq!(garbage["code"], "invalid_plugin");
    let bad_name = expect(&upload("no%2Fslash", &wasm("echo")), 422);
    assert_eq!(bad_name["code"], "deploy_refused");
    assert_eq!(
        expect(&server.get("/v1/plugins/nope"), 404)["code"],
        "plugin_not_found"
    );
    assert_eq!(
        expect(&server.get("/v1/plugins/echo@9"), 404)["code"],
        "plugin_not_found"
    );
    assert_eq!(
        expect(&server.get("/v1/plugins"), 200)["items"]
            .as_array()
            .unwrap()
            .len(),
        2
    );
}

/// Misbehaving adapters are contained: a loop, a memory bomb, a huge result
/// and a panic each end their own instance with a typed failure, while
/// twenty healthy instances started at the same moment on the same server
/// all succeed, and the server keeps serving.
#[test]
fn misbehaving_adapters_fail_their_own_steps_while_healthy_instances_finish() {
    let s = Sandbox::new();
    let data = s.data();
    let guarded = |name: &str, action: &str| {
        s.write(
            &format!("{name}.yaml"),
            &format!("process: {name}\nversion: 1\nstart: work\nstates:\n  work:\n    action: {action}\n    on: {{ done: ok, error: failed }}\n  ok: {{ type: succeed }}\n  failed: {{ type: fail }}\n"),
        )
    };
    let extra = [
        (
            "echo",
            "    timeout: 3s\n    memory: 16MiB\n    max_output: 4KiB\n    fuel: 30000000",
        ),
        (
            "fetch",
            "    allow_hosts: [\"127.0.0.1:9\"]\n    config: { url: \"http://{{ input.host }}/\" }",
        ),
    ];
    deploy(&s, &data, &guarded("guarded", "echo"), &extra);
    deploy(&s, &data, &guarded("outbound", "fetch"), &extra);
    let server = Server::start(&data, &[]);
    let base = server.base.clone();
    let start = move |process: &str, input: String| {
        let base = base.clone();
        let path = format!("/v1/processes/{process}/instances?wait=30s");
        std::thread::spawn(move || {
            let body = format!(r#"{{"input": {input}}}"#);
            http("POST", &base, &path, &body, &[])
        })
    };
    let bad = [
        ("guarded", r#"{"simulate": {"spin": true}}"#, "out_of_fuel"),
        ("guarded", r#"{"simulate": {"sleep_ms": 5000}}"#, "timeout"),
        (
            "guarded",
            r#"{"simulate": {"alloc_mb": 64}}"#,
            "out_of_memory",
        ),
        (
            "guarded",
            r#"{"simulate": {"output_kb": 64}}"#,
            "output_too_large",
        ),
        ("guarded", r#"{"simulate": {"trap": true}}"#, "trap"),
        ("guarded", r#"{"simulate": {"recurse": true}}"#, "trap"),
        (
            "outbound",
            r#"{"host": "10.9.8.7:80"}"#,
            "capability_denied",
        ),
    ];
    let bad_runs: Vec<_> = bad
        .iter()
        .map(|(p, i, k)| (start(p, (*i).to_owned()), *k))
        .collect();
    let good_runs: Vec<_> = (0..20)
        .map(|n| start("guarded", format!(r#"{{"n": {n}}}"#)))
        .collect();
    for (h, kind) in bad_runs {
        let r = h.join().unwrap();
        let v = expect(&r, 200);
        assert_eq!(v["status"], "failed", "{v}");
        assert_eq!(v["error"]["kind"], kind, "{v}");
    }
    for (n, h) in good_runs.into_iter().enumerate() {
        let v = expect(&h.join().unwrap(), 200);
        assert_eq!(v["status"], "succeeded", "healthy instance {n}: {v}");
        assert_eq!(v["output"]["n"], n, "{v}");
    }
    assert_eq!(server.get("/readyz").status, 200);
}
