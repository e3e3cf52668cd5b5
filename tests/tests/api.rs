//! The HTTP API of a real `weft serve` child process, over a real socket:
//! start (with and without `wait`), business keys, lookups, listing with
//! cursors, history, signals, token completion and heartbeats, cancel,
//! redrive, and the errors a careless or hostile client gets — JSON with a
//! stable code, never a 5xx — and bearer-token auth.

#![allow(clippy::unwrap_used)]

use serde_json::Value;
use weft_tests::{
    Http, Sandbox, Server, deploy, eventually, expect, fixture, http, order_input, run,
    waiting_version,
};

#[test]
fn instances_start_wait_list_and_read_over_http() {
    let s = Sandbox::new();
    let data = s.data();
    deploy(&s, &data, &fixture("order.yaml"), &[]);
    let server = Server::start(&data, &[]);

    assert_eq!(server.get("/healthz").status, 200);
    assert_eq!(server.get("/readyz").status, 200);
    let processes = expect(&server.get("/v1/processes"), 200);
    assert_eq!(
        processes["items"][0]["name"], "order-fulfillment",
        "{processes}"
    );
    let latest = expect(&server.get("/v1/processes/order-fulfillment"), 200);
    assert_eq!(latest["definition"]["start"], "reserve");
    let versions = expect(&server.get("/v1/processes/order-fulfillment/versions"), 200);
    assert_eq!(versions["items"][0]["version"], 1, "{versions}");
    let none = expect(&server.get("/v1/processes/nothing/versions"), 404);
    assert_eq!(none["code"], "process_not_found");

    // A short process, called like a function.
    let input = order_input(1, "4242");
    let body = format!(r#"{{"input": {input}}}"#);
    let done = server.post("/v1/processes/order-fulfillment/instances?wait=30s", &body);
    let v = expect(&done, 200);
    assert_eq!(v["status"], "succeeded", "{v}");
    assert_eq!(v["state"], "shipped");
    let id = v["id"].as_str().unwrap().to_owned();
    assert_eq!(
        done.header("location"),
        Some(format!("/v1/instances/{id}").as_str())
    );

    // Without wait: 201 and where to look; the same business key again is
    // the same instance.
    let keyed = format!(r#"{{"input": {input}, "key": "order-77"}}"#);
    let first = server.post("/v1/processes/order-fulfillment/instances", &keyed);
    let v = expect(&first, 201);
    assert_eq!(v["existing"], false);
    let keyed_id = v["id"].as_str().unwrap().to_owned();
    let again = expect(
        &server.post("/v1/processes/order-fulfillment/instances", &keyed),
        200,
    );
    assert_eq!(again["id"], keyed_id.as_str());
    assert_eq!(again["existing"], true);
    let by_key = expect(&server.get("/v1/instances/order-77"), 200);
    assert_eq!(by_key["id"], keyed_id.as_str());

    // A retried start with the same Idempotency-Key makes one instance.
    let start = "/v1/processes/order-fulfillment/instances";
    let plain = format!(r#"{{"input": {input}}}"#);
    let retry = [("Idempotency-Key", "req-5f2a")];
    let one = http("POST", &server.base, start, &plain, &retry);
    let two = http("POST", &server.base, start, &plain, &retry);
    assert_eq!(
        (one.status, two.status),
        (201, 200),
        "{} / {}",
        one.body,
        two.body
    );
    assert_eq!(one.json()["id"], two.json()["id"]);
    assert_eq!(two.json()["existing"], true);
    let bad = http(
        "POST",
        &server.base,
        start,
        &plain,
        &[("Idempotency-Key", "")],
    );
    assert_eq!(bad.status, 400, "{}", bad.body);

    // The instance as stored, and its history.
    let inst = expect(&server.get(&format!("/v1/instances/{id}")), 200);
    assert_eq!(inst["data"]["order"]["id"], "ord-1", "{inst}");
    assert_eq!(inst["status"], "succeeded");
    let history = expect(
        &server.get(&format!("/v1/instances/{id}/history?limit=2")),
        200,
    );
    assert_eq!(history["items"].as_array().unwrap().len(), 2);
    assert_eq!(history["next"], 2);
    let rest = expect(
        &server.get(&format!("/v1/instances/{id}/history?from=2")),
        200,
    );
    assert_eq!(rest["items"][0]["seq"], 2);
    assert_eq!(rest["next"], Value::Null);

    // Listing, a page at a time.
    let page = expect(
        &server.get("/v1/instances?process=order-fulfillment&limit=1"),
        200,
    );
    assert_eq!(page["items"].as_array().unwrap().len(), 1);
    let cursor = page["next"].as_str().unwrap().to_owned();
    let page2 = expect(
        &server.get(&format!(
            "/v1/instances?process=order-fulfillment&limit=1&cursor={cursor}"
        )),
        200,
    );
    assert_eq!(page2["items"].as_array().unwrap().len(), 1);
    assert_ne!(page2["items"][0]["id"], page["items"][0]["id"]);
    let succeeded = expect(&server.get("/v1/instances?status=succeeded"), 200);
    assert!(
        succeeded["items"]
            .as_array()
            .unwrap()
            .iter()
            .any(|i| i["id"] == id.as_str())
    );
}

#[test]
fn signals_tokens_and_operators_over_http() {
    let s = Sandbox::new();
    let data = s.data();
    deploy(&s, &data, &fixture("waits.yaml"), &[]);
    deploy(
        &s,
        &data,
        &fixture("order.yaml"),
        &[(
            "charge_payment",
            "    config: { simulate: { pending: tok-api } }",
        )],
    );
    let server = Server::start(&data, &[]);

    // A wait state: a start with wait answers once it waits.
    let w = expect(
        &server.post(
            "/v1/processes/waits/instances?wait=30s",
            r#"{"input": {"mode": "approval"}, "key": "loan-1"}"#,
        ),
        200,
    );
    assert_eq!(w["status"], "waiting", "{w}");
    // A signal it does not accept is refused, with what it accepts.
    let no = expect(&server.post("/v1/instances/loan-1/signals/maybe", ""), 409);
    assert_eq!(no["code"], "refused");
    assert!(no["message"].as_str().unwrap().contains("approve"), "{no}");
    let yes = expect(
        &server.post("/v1/instances/loan-1/signals/approve", r#"{"by": "ana"}"#),
        200,
    );
    assert_eq!(yes["status"], "succeeded", "{yes}");

    // A pending step: completed by its token over HTTP.
    let input = order_input(1, "4242");
    let o = expect(
        &server.post(
            "/v1/processes/order-fulfillment/instances",
            &format!(r#"{{"input": {input}}}"#),
        ),
        201,
    );
    let id = o["id"].as_str().unwrap().to_owned();
    let beat = eventually("the token to be handed out", || {
        let r = server.post("/v1/tokens/tok-api/heartbeat", r#"{"details": "half"}"#);
        (r.status == 200).then(|| r.json())
    });
    assert_eq!(beat["instance"], id.as_str());
    let both = expect(
        &server.post(
            "/v1/tokens/tok-api/complete",
            r#"{"output": {}, "error": {"kind": "x", "message": "y"}}"#,
        ),
        422,
    );
    assert_eq!(both["code"], "bad_request");
    expect(
        &server.post(
            "/v1/tokens/tok-api/complete",
            r#"{"output": {"charge_id": "ch-api"}}"#,
        ),
        200,
    );
    let used = expect(&server.post("/v1/tokens/tok-api/complete", "{}"), 409);
    assert_eq!(used["code"], "token_used");
    eventually("the completed order to succeed", || {
        let v = expect(&server.get(&format!("/v1/instances/{id}")), 200);
        (v["status"] == "succeeded").then_some(())
    });

    // Operators: cancel a waiting instance; redrive refuses what is not parked.
    expect(
        &server.post(
            "/v1/processes/waits/instances?wait=30s",
            r#"{"input": {"mode": "approval"}, "key": "loan-2"}"#,
        ),
        200,
    );
    let cancelled = expect(
        &server.post("/v1/instances/loan-2/cancel", r#"{"compensate": false}"#),
        200,
    );
    assert_eq!(cancelled["status"], "cancelled");
    let redrive = expect(&server.post("/v1/instances/loan-2/redrive", ""), 409);
    assert_eq!(redrive["code"], "refused", "{redrive}");
}

#[test]
fn bad_requests_get_a_json_error_with_a_stable_code_and_never_a_5xx() {
    let s = Sandbox::new();
    let data = s.data();
    deploy(&s, &data, &fixture("order.yaml"), &[]);
    let server = Server::start(&data, &["--max-body", "4096"]);
    let start = "/v1/processes/order-fulfillment/instances";
    let cases: Vec<(Http, u16, &str)> = vec![
        (server.post(start, "{\"input\": "), 400, "bad_json"),
        (server.post(start, "[1, 2]"), 400, "bad_json"),
        (server.post(start, r#"{"inptu": {}}"#), 400, "bad_json"),
        (server.post(start, r#"{"input": 7}"#), 422, "bad_request"),
        (server.post(start, &"[".repeat(3000)), 400, "bad_json"),
        (
            server.post(
                start,
                &format!(r#"{{"input": {{"x": "{}"}}}}"#, "a".repeat(5000)),
            ),
            413,
            "too_large",
        ),
        (
            server.post(&format!("{start}?wait=soon"), "{}"),
            400,
            "bad_request",
        ),
        (
            server.post(&format!("{start}?color=red"), "{}"),
            400,
            "bad_request",
        ),
        (
            server.post("/v1/processes/nope/instances", "{}"),
            404,
            "process_not_found",
        ),
        (server.get("/v1/instances/nope"), 404, "instance_not_found"),
        (
            server.get("/v1/instances/01JZZZZZZZZZZZZZZZZZZZZZZZ"),
            404,
            "instance_not_found",
        ),
        (
            server.get("/v1/instances?status=sleepy"),
            400,
            "bad_request",
        ),
        (server.get("/v1/instances?cursor=xyz"), 400, "bad_request"),
        (
            server.get("/v1/processes/order-fulfillment/versions/one"),
            400,
            "bad_request",
        ),
        (
            server.get("/v1/processes/order-fulfillment/versions/9"),
            404,
            "process_not_found",
        ),
        (
            server.post("/v1/tokens/none/complete", "{}"),
            404,
            "token_not_found",
        ),
        (server.get("/v2/anything"), 404, "not_found"),
    ];
    for (r, status, code) in cases {
        assert_eq!(r.status, status, "{}", r.body);
        assert_eq!(r.json()["code"], code, "{}", r.body);
        assert!(!r.json()["message"].as_str().unwrap().is_empty());
    }
    let deploy = |body: &str| server.post("/v1/deployments", body);
    let process = format!(
        r#"{{"name": "w.yaml", "text": {}}}"#,
        serde_json::to_string(&std::fs::read_to_string(fixture("waits.yaml")).unwrap()).unwrap()
    );
    let bindings = r#"{"name": "b.yaml", "text": "plugins: { echo: ./echo.wasm }\nactions:\n  echo: { plugin: echo }\n"}"#;
    let r = deploy(&format!(
        r#"{{"process": {process}, "bindings": {bindings}, "plugins": {{"echo": "%%%"}}}}"#
    ));
    assert_eq!(
        (r.status, r.json()["code"].clone()),
        (422, "bad_request".into()),
        "{}",
        r.body
    );
    let r = deploy(&format!(
        r#"{{"process": {process}, "bindings": {bindings}}}"#
    ));
    let v = expect(&r, 422);
    assert_eq!(v["code"], "invalid_definition", "{v}");
    assert!(
        v["problems"][0].as_str().unwrap().contains("not sent"),
        "{v}"
    );
    let r = deploy(&format!(
        r#"{{"process": {process}, "bindings": {bindings}, "plugins": {{"echo": "AGFzbQ=="}}}}"#
    ));
    assert_eq!(expect(&r, 422)["code"], "invalid_definition");

    // Still serving after all of that.
    assert_eq!(server.get("/readyz").status, 200);
}

#[test]
fn a_token_guards_the_api_and_other_addresses_need_one() {
    use std::os::unix::fs::PermissionsExt;
    let s = Sandbox::new();
    let data = s.data();
    deploy(&s, &data, &fixture("order.yaml"), &[]);

    // Not loopback, no token: refused before anything starts.
    let open = run(&["serve", "--data", &data, "--listen", "0.0.0.0:0"]);
    assert_eq!(open.code, 2, "{}\n{}", open.stdout, open.stderr);
    assert!(open.stderr.contains("--token-file"), "{}", open.stderr);

    let token = "0123456789abcdef0123456789abcdef";
    let file = s.write("token", token);
    std::fs::set_permissions(&file, std::fs::Permissions::from_mode(0o644)).unwrap();
    let loose = run(&[
        "serve",
        "--data",
        &data,
        "--listen",
        "127.0.0.1:0",
        "--token-file",
        &file,
    ]);
    assert_eq!(loose.code, 2, "{}", loose.stderr);
    assert!(loose.stderr.contains("chmod 600"), "{}", loose.stderr);
    std::fs::set_permissions(&file, std::fs::Permissions::from_mode(0o600)).unwrap();

    let server = Server::start(&data, &["--token-file", &file]);
    assert_eq!(
        server.get("/healthz").status,
        200,
        "health checks need no token"
    );
    let none = server.get("/v1/processes");
    assert_eq!(none.status, 401);
    assert_eq!(none.json()["code"], "unauthorized");
    let wrong = http(
        "GET",
        &server.base,
        "/v1/processes",
        "",
        &[("Authorization", "Bearer 0123456789abcdef0123456789abcdeX")],
    );
    assert_eq!(wrong.status, 401);
    let right = http(
        "GET",
        &server.base,
        "/v1/processes",
        "",
        &[("Authorization", &format!("Bearer {token}"))],
    );
    assert_eq!(right.status, 200, "{}", right.body);

    // The address file tells other commands where the server is; only its
    // owner may read it.
    let addr = std::path::Path::new(&data).join("server.addr");
    let mode = std::fs::metadata(&addr).unwrap().permissions().mode();
    assert_eq!(mode & 0o777, 0o600);
    assert_eq!(std::fs::read_to_string(&addr).unwrap().trim(), server.base);
}

/// With `weft serve` holding the data directory, the other verbs reach the
/// engine through its API;
/// once it is killed, the address file it left points nowhere and the
/// verbs open the store themselves.
#[test]
fn cli_verbs_reach_a_running_server_and_fall_back_when_it_is_gone() {
    let s = Sandbox::new();
    let data = s.data();
    deploy(&s, &data, &fixture("waits.yaml"), &[]);
    let server = Server::start(&data, &[]);

    let started = run(&[
        "start",
        "waits",
        "--input",
        r#"{"mode": "approval"}"#,
        "--key",
        "loan-9",
        "--data",
        &data,
    ]);
    assert_eq!(started.code, 0, "{}\n{}", started.stdout, started.stderr);
    let id = started.stdout.trim().to_owned();
    waiting_version(&data, "loan-9");
    let again = run(&["start", "waits", "--key", "loan-9", "--data", &data]);
    assert!(again.stdout.contains("already exists"), "{}", again.stdout);
    assert!(again.stdout.contains(&id), "{}", again.stdout);

    let nope = run(&["signal", "loan-9", "maybe", "--data-dir", &data]);
    assert_eq!(nope.code, 2);
    assert!(nope.stderr.contains("approve"), "{}", nope.stderr);
    let signalled = run(&[
        "signal",
        "loan-9",
        "approve",
        "--data",
        r#"{"by": "ana"}"#,
        "--data-dir",
        &data,
    ]);
    assert_eq!(signalled.code, 0, "{}", signalled.stderr);
    assert!(
        signalled.stdout.contains("delivered 'approve'"),
        "{}",
        signalled.stdout
    );
    let listed = run(&["list", "--process", "waits", "--json", "--data", &data]);
    assert_eq!(listed.code, 0, "{}", listed.stderr);
    let page: Value = serde_json::from_str(&listed.stdout).unwrap();
    assert_eq!(page["items"][0]["key"], "loan-9", "{page}");
    let history = run(&["history", "loan-9", "--data", &data]);
    assert_eq!(history.code, 0, "{}", history.stderr);
    assert!(history.stdout.contains("approve"), "{}", history.stdout);

    // A new version deployed while the server runs is used by the next
    // start, without a restart; a broken one is refused with its problems.
    let v2 = std::fs::read_to_string(fixture("waits.yaml"))
        .unwrap()
        .replace("version: 1", "version: 2");
    let v2 = s.write("waits-v2.yaml", &v2);
    let bindings = s.bindings(&[]);
    let redeploy = run(&["deploy", &v2, "--bindings", &bindings, "--data", &data]);
    assert_eq!(redeploy.code, 0, "{}\n{}", redeploy.stdout, redeploy.stderr);
    assert!(
        redeploy.stdout.contains("through the engine at"),
        "{}",
        redeploy.stdout
    );
    let newer = run(&[
        "start",
        "waits",
        "--input",
        r#"{"mode": "approval"}"#,
        "--key",
        "loan-10",
        "--data",
        &data,
    ]);
    assert_eq!(newer.code, 0, "{}", newer.stderr);
    assert_eq!(waiting_version(&data, "loan-10"), 2);
    let broken = s.write(
        "broken.yaml",
        &std::fs::read_to_string(fixture("waits.yaml"))
            .unwrap()
            .replace("version: 1", "version: 3")
            .replace("approve: approved", "approve: nowhere"),
    );
    let refused = run(&["deploy", &broken, "--bindings", &bindings, "--data", &data]);
    assert_eq!(refused.code, 2);
    assert!(
        refused.stderr.contains("broken.yaml:"),
        "{}",
        refused.stderr
    );
    assert!(refused.stderr.contains("nowhere"), "{}", refused.stderr);

    drop(server); // SIGKILL: the address file stays behind
    assert!(std::path::Path::new(&data).join("server.addr").exists());
    let out = run(&["status", &id, "--data", &data, "--json"]);
    assert_eq!(out.code, 0, "{}\n{}", out.stdout, out.stderr);
    assert_eq!(
        serde_json::from_str::<Value>(&out.stdout).unwrap()["status"],
        "succeeded"
    );
}
