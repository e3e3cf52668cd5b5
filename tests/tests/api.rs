//! The HTTP API of a real `weft serve` child process, over a real socket:
//! start (with and without `wait`), business keys, lookups, listing with
//! cursors, history, signals, token completion and heartbeats, cancel,
//! redrive, and the errors a careless or hostile client gets — JSON with a
//! stable code, never a 5xx — and bearer-token auth.

#![allow(clippy::unwrap_used)]

use std::time::Duration;

use serde_json::Value;
use weft_tests::{Http, Running, Sandbox, http, order_input, root, run};

/// A `weft serve` on a free loopback port, and its base URL.
struct Server {
    serve: Running,
    base: String,
}

impl Server {
    fn start(data: &str, extra: &[&str]) -> Server {
        let mut args = vec!["serve", "--data", data, "--listen", "127.0.0.1:0"];
        args.extend_from_slice(extra);
        let mut serve = Running::spawn(&args);
        let line = serve.wait_for("serving");
        let base = line
            .split_whitespace()
            .find(|w| w.starts_with("http://"))
            .map(|w| w.trim_end_matches(':').to_owned())
            .unwrap_or_else(|| panic!("no URL in {line:?}"));
        Server { serve, base }
    }

    fn get(&self, path: &str) -> Http {
        http("GET", &self.base, path, "", &[])
    }

    fn post(&self, path: &str, body: &str) -> Http {
        http("POST", &self.base, path, body, &[])
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.serve.child.kill();
        let _ = self.serve.child.wait();
    }
}

fn deploy(s: &Sandbox, data: &str, process: &str, extra: &[(&str, &str)]) {
    let bindings = s.bindings(extra);
    let out = run(&["deploy", process, "--bindings", &bindings, "--data", data]);
    assert_eq!(out.code, 0, "{}\n{}", out.stdout, out.stderr);
}

fn fixture(name: &str) -> String {
    root()
        .join("tests/fixtures")
        .join(name)
        .display()
        .to_string()
}

/// Polls `probe` (every 20 ms, up to 6 s) until it has an answer.
fn eventually<T>(what: &str, mut probe: impl FnMut() -> Option<T>) -> T {
    for _ in 0..300 {
        if let Some(t) = probe() {
            return t;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    panic!("gave up waiting for {what}");
}

/// Waits (through `weft status`) until the instance waits; its version.
fn waiting_version(data: &str, target: &str) -> Value {
    eventually(&format!("{target} to wait"), || {
        let out = run(&["status", target, "--data", data, "--json"]);
        assert_eq!(out.code, 0, "{}\n{}", out.stdout, out.stderr);
        let v: Value = serde_json::from_str(&out.stdout).unwrap();
        (v["status"] == "waiting").then(|| v["version"].clone())
    })
}

fn expect(r: &Http, status: u16) -> Value {
    assert_eq!(r.status, status, "{}", r.body);
    r.json()
}

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

/// The value of one sample line of Prometheus text (`name{labels} value`),
/// or 0 when the series is absent.
fn sample(text: &str, series: &str) -> f64 {
    text.lines()
        .find(|l| l.starts_with(series) && l[series.len()..].starts_with(' '))
        .and_then(|l| l.rsplit(' ').next())
        .and_then(|v| v.parse().ok())
        .unwrap_or(0.0)
}

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
    let process = s.write(
        "guarded.yaml",
        "process: guarded\nversion: 1\nstart: work\nstates:\n  work:\n    action: echo\n    on: { done: ok, error: failed }\n  ok: { type: succeed }\n  failed: { type: fail }\n",
    );
    deploy(
        &s,
        &data,
        &process,
        &[(
            "echo",
            "    timeout: 1s\n    memory: 16MiB\n    max_output: 4KiB",
        )],
    );
    let server = Server::start(&data, &[]);
    let base = server.base.clone();
    let start = move |input: String| {
        let base = base.clone();
        std::thread::spawn(move || {
            let body = format!(r#"{{"input": {input}}}"#);
            http(
                "POST",
                &base,
                "/v1/processes/guarded/instances?wait=30s",
                &body,
                &[],
            )
        })
    };
    let bad = [
        (r#"{"simulate": {"spin": true}}"#, "timeout"),
        (r#"{"simulate": {"alloc_mb": 64}}"#, "out_of_memory"),
        (r#"{"simulate": {"output_kb": 64}}"#, "output_too_large"),
        (r#"{"simulate": {"trap": true}}"#, "trap"),
    ];
    let bad_runs: Vec<_> = bad
        .iter()
        .map(|(i, k)| (start((*i).to_owned()), *k))
        .collect();
    let good_runs: Vec<_> = (0..20).map(|n| start(format!(r#"{{"n": {n}}}"#))).collect();
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
