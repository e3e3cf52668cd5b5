//! Hot swaps on a real `weft serve` with real components: swapped under a
//! continuous load without a failed attempt, each attempt recording the
//! component of the bindings revision it started with; refused components
//! change nothing; canaries rolled back or promoted on their failure rate,
//! in the swap log and the metrics; a watched directory; restarts.

#![allow(clippy::unwrap_used)]

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use base64::Engine as _;
use serde_json::{Value, json};
use weft_tests::echo_variant as variant;
use weft_tests::{Running, Sandbox, Server, deploy, eventually, expect, fixture, http, run};

fn sha256(bytes: &[u8]) -> String {
    weft_runtime::sha256_hex(bytes)
}

fn swap_bytes(
    server: &Server,
    target: &str,
    bytes: &[u8],
    canary: Option<Value>,
) -> weft_tests::Http {
    let mut body = json!({
        "target": target,
        "wasm": base64::engine::general_purpose::STANDARD.encode(bytes),
    });
    if let Some(c) = canary {
        body["canary"] = c;
    }
    server.post("/v1/swaps", &body.to_string())
}

/// Starts a `ping` and waits for it to end; its id.
fn ping(server: &Server) -> String {
    let r = server.post(
        "/v1/processes/ping/instances",
        r#"{"input": {}, "wait": "20s"}"#,
    );
    let v = expect(&r, 200);
    assert_eq!(v["status"], "succeeded", "{v}");
    v["id"].as_str().unwrap().to_owned()
}

fn history(server: &Server, id: &str) -> Vec<Value> {
    let h = expect(&server.get(&format!("/v1/instances/{id}/history")), 200);
    h["items"].as_array().unwrap().clone()
}

/// The components an instance's attempts ran on, in order.
fn ran_on(server: &Server, id: &str) -> Vec<String> {
    history(server, id)
        .iter()
        .filter_map(|r| r["plugin"].as_str().map(str::to_owned))
        .collect()
}

/// A `ping` started now runs on `sha256`, and only on it.
fn ping_runs_on(server: &Server, sha256: &str) {
    assert_eq!(ran_on(server, &ping(server)), [sha256.to_owned()]);
}

fn live(server: &Server) -> String {
    let log = expect(&server.get("/v1/swaps?target=plugin:echo"), 200);
    let live = log["live"].as_array().unwrap();
    let ping = live
        .iter()
        .find(|l| l["process"] == "ping")
        .expect("ping binds echo");
    ping["sha256"].as_str().unwrap().to_owned()
}

fn ids(server: &Server) -> Vec<String> {
    let mut out = Vec::new();
    let mut cursor = String::new();
    loop {
        let page = expect(
            &server.get(&format!("/v1/instances?process=ping&limit=1000{cursor}")),
            200,
        );
        for i in page["items"].as_array().unwrap() {
            out.push(i["id"].as_str().unwrap().to_owned());
        }
        match page["next"].as_str() {
            Some(n) => cursor = format!("&cursor={n}"),
            None => return out,
        }
    }
}

/// Instances flow through `echo` from two client threads while the
/// component is swapped four times (through the API and the CLI, by
/// upload and by registry reference) and rolled back once. No attempt
/// fails; every attempt records the component of the bindings revision it
/// ran with; the first instance after each swap answers runs on the new
/// component.
#[test]
fn swaps_under_load_fail_no_attempt_and_each_attempt_records_its_component() {
    let s = Sandbox::new();
    let data = s.data();
    deploy(&s, &data, &fixture("ping.yaml"), &[]);
    let server = Server::start(&data, &[]);
    let v1 = sha256(&std::fs::read(weft_tests::plugin("echo")).unwrap());
    let (v2_bytes, v3_bytes) = (variant("v2"), variant("v3"));
    let (v2, v3) = (sha256(&v2_bytes), sha256(&v3_bytes));
    let v3_file = s.path("weft_echo.wasm");
    std::fs::write(&v3_file, &v3_bytes).unwrap();
    assert_eq!(live(&server), v1);

    let stop = Arc::new(AtomicBool::new(false));
    let load: Vec<_> = (0..2)
        .map(|_| {
            let (stop, base) = (stop.clone(), server.base.clone());
            std::thread::spawn(move || {
                let mut started = 0;
                while !stop.load(Ordering::SeqCst) {
                    let r = http("POST", &base, "/v1/processes/ping/instances", "{}", &[]);
                    assert_eq!(r.status, 201, "{}", r.body);
                    started += 1;
                }
                started
            })
        })
        .collect();
    let pause = || std::thread::sleep(std::time::Duration::from_millis(400));

    pause();
    let first = expect(&swap_bytes(&server, "echo", &v2_bytes, None), 201);
    assert_eq!(
        (first["kind"].as_str(), first["plugin"].as_str()),
        (Some("swap"), Some("echo@1")),
        "{first}"
    );
    ping_runs_on(&server, &v2);
    pause();
    let out = run(&[
        "plugin",
        "swap",
        "plugin:echo",
        v3_file.to_str().unwrap(),
        "--data",
        &data,
    ]);
    assert_eq!(out.code, 0, "{}{}", out.stdout, out.stderr);
    assert!(
        out.stdout.contains("swapped plugin:echo to echo@2"),
        "{}",
        out.stdout
    );
    ping_runs_on(&server, &v3);
    pause();
    let out = run(&["plugin", "rollback", "echo", "--data", &data]);
    assert_eq!(out.code, 0, "{}{}", out.stdout, out.stderr);
    assert!(
        out.stdout.contains("rolled plugin:echo back"),
        "{}",
        out.stdout
    );
    ping_runs_on(&server, &v2);
    pause();
    // By registry reference: back to the first upload's entry, then v3.
    let by_ref = server.post("/v1/swaps", r#"{"target": "echo", "component": "echo@2"}"#);
    assert_eq!(expect(&by_ref, 201)["sha256"], v3.as_str());
    pause();
    stop.store(true, Ordering::SeqCst);
    let started: usize = load.into_iter().map(|t| t.join().unwrap()).sum();
    assert!(started > 50, "the load ran: {started} starts");

    // Which component each bindings revision runs, from the swap log.
    let log = expect(&server.get("/v1/swaps"), 200);
    let mut by_revision: HashMap<u64, String> = HashMap::from([(1, v1.clone())]);
    for r in log["records"].as_array().unwrap() {
        for c in r["changes"].as_array().unwrap() {
            by_revision.insert(
                c["revision"].as_u64().unwrap(),
                r["sha256"].as_str().unwrap().into(),
            );
        }
    }
    assert_eq!(
        log["records"]
            .as_array()
            .unwrap()
            .iter()
            .map(|r| r["kind"].as_str().unwrap())
            .collect::<Vec<_>>(),
        ["swap", "swap", "rollback", "swap"]
    );
    let all = ids(&server);
    assert!(all.len() >= started);
    let mut seen: HashMap<String, usize> = HashMap::new();
    for id in &all {
        let done = eventually("the instance to end", || {
            let v = expect(&server.get(&format!("/v1/instances/{id}")), 200);
            (v["status"] != "running").then_some(v)
        });
        assert_eq!(done["status"], "succeeded", "{done}");
        for r in history(&server, id) {
            assert_ne!(r["type"], "attempt_failed", "a swap failed an attempt: {r}");
            if let Some(sha) = r["plugin"].as_str() {
                let revision = r["bindings"].as_u64().unwrap();
                assert_eq!(Some(&sha.to_owned()), by_revision.get(&revision), "{r}");
                *seen.entry(sha.to_owned()).or_default() += 1;
            }
        }
    }
    for v in [&v1, &v2, &v3] {
        assert!(
            seen.get(v).copied().unwrap_or(0) > 0,
            "{v} ran nothing: {seen:?}"
        );
    }
}

/// Components that cannot serve are refused with the reason, the store is
/// as it was, and the live component keeps serving.
#[test]
fn a_component_that_fails_a_check_is_refused_and_changes_nothing() {
    let s = Sandbox::new();
    let data = s.data();
    deploy(&s, &data, &fixture("ping.yaml"), &[]);
    let server = Server::start(&data, &[]);
    let before = expect(&server.get("/v1/swaps"), 200);
    let registry = expect(&server.get("/v1/plugins"), 200);
    let v1 = live(&server);

    // No action `echo`.
    let payments = std::fs::read(weft_tests::plugin("payments")).unwrap();
    let e = expect(&swap_bytes(&server, "echo", &payments, None), 422);
    assert_eq!(e["code"], "swap_refused");
    let msg = e["message"].as_str().unwrap();
    assert!(msg.contains("process 'ping' v1: action 'echo'"), "{msg}");
    assert!(
        msg.contains("does not have (it has: charge_payment, refund_payment)"),
        "{msg}"
    );
    // Not a component at all.
    let e = expect(&swap_bytes(&server, "echo", b"\0asm not really", None), 422);
    assert_eq!(e["code"], "invalid_plugin");
    // Its describe traps.
    let broken = std::fs::read(weft_tests::plugin("broken")).unwrap();
    let e = expect(&swap_bytes(&server, "echo", &broken, None), 422);
    assert_eq!(e["code"], "invalid_plugin", "{e}");
    // Nothing binds the target; a bad canary; both component forms.
    let echo = std::fs::read(weft_tests::plugin("echo")).unwrap();
    assert_eq!(
        expect(&swap_bytes(&server, "nothing", &echo, None), 404)["code"],
        "target_not_found"
    );
    let e = expect(
        &swap_bytes(&server, "echo", &variant("x"), Some(json!({"percent": 0}))),
        422,
    );
    assert!(
        e["message"].as_str().unwrap().contains("out of range"),
        "{e}"
    );
    let both = server.post(
        "/v1/swaps",
        r#"{"target": "echo", "component": "echo@1", "wasm": "AA=="}"#,
    );
    assert_eq!(expect(&both, 422)["code"], "bad_request");
    // The live one again: nothing to do.
    assert_eq!(
        expect(&swap_bytes(&server, "echo", &echo, None), 422)["code"],
        "swap_refused"
    );
    // Nothing to roll back.
    let back = server.post("/v1/swaps/rollback", r#"{"target": "echo"}"#);
    assert!(
        expect(&back, 422)["message"]
            .as_str()
            .unwrap()
            .contains("nothing to roll back")
    );

    assert_eq!(expect(&server.get("/v1/swaps"), 200), before);
    assert_eq!(expect(&server.get("/v1/plugins"), 200), registry);
    assert_eq!(ran_on(&server, &ping(&server)), [v1]);
    // The CLI says the same, on one line, and exits non-zero.
    let out = run(&[
        "plugin",
        "swap",
        "echo",
        weft_tests::plugin("payments").to_str().unwrap(),
        "--data",
        &data,
    ]);
    assert_ne!(out.code, 0);
    assert!(
        out.stderr.contains("cannot take over plugin:echo"),
        "{}",
        out.stderr
    );
}

fn metric(server: &Server, series: &str) -> f64 {
    let text = server.get("/metrics").body;
    weft_tests::sample(&text, series)
}

/// A canary of a version failing 3 attempts in 10 is rolled back by the
/// engine; a good one is promoted. Both decisions are in the swap log
/// (with the figures), in the metrics, and in the attempts' history.
#[test]
fn a_worse_canary_is_rolled_back_and_a_good_one_promoted() {
    let s = Sandbox::new();
    let data = s.data();
    deploy(&s, &data, &fixture("ping.yaml"), &[]);
    let server = Server::start(&data, &[]);
    let v1 = live(&server);
    let flaky = weft_tests::plugin("echo_flaky");
    let flaky_sha = sha256(&std::fs::read(&flaky).unwrap());
    let out = run(&[
        "plugin",
        "swap",
        "echo",
        flaky.to_str().unwrap(),
        "--canary",
        "50%",
        "--promote-after",
        "10000",
        "--window",
        "40",
        "--min-calls",
        "20",
        "--threshold",
        "10",
        "--data",
        &data,
    ]);
    assert_eq!(out.code, 0, "{}{}", out.stdout, out.stderr);
    assert!(
        out.stdout
            .contains("canary of plugin:echo: 50% of attempts"),
        "{}",
        out.stdout
    );
    let aborted = eventually("the canary to be rolled back", || {
        for _ in 0..10 {
            ping(&server);
        }
        let log = expect(&server.get("/v1/swaps"), 200);
        log["records"]
            .as_array()
            .unwrap()
            .iter()
            .find(|r| r["kind"] == "abort")
            .cloned()
    });
    assert_eq!(aborted["sha256"], flaky_sha.as_str());
    assert_eq!(aborted["settles"], 1);
    assert!(
        aborted["reason"].as_str().unwrap().contains("points worse"),
        "{aborted}"
    );
    assert_eq!(live(&server), v1);
    assert_eq!(
        metric(
            &server,
            "weft_swaps_total{target=\"plugin:echo\",kind=\"abort\"}"
        ),
        1.0
    );
    assert!(
        metric(
            &server,
            "weft_canary_attempts_total{target=\"plugin:echo\",component=\"trial\",outcome=\"failed\"}"
        ) >= 1.0
    );
    // Some attempt failed on the canary, and its record says on what.
    let failed_on_canary = ids(&server).iter().any(|id| {
        history(&server, id)
            .iter()
            .any(|r| r["type"] == "attempt_failed" && r["plugin"] == flaky_sha.as_str())
    });
    assert!(failed_on_canary);
    // After the rollback, nothing goes to it.
    for _ in 0..10 {
        ping_runs_on(&server, &v1);
    }

    let good = variant("good");
    let good_sha = sha256(&good);
    let canary = json!({"percent": 50, "promote_after": 20, "window": 40, "min_calls": 20});
    expect(&swap_bytes(&server, "echo", &good, Some(canary)), 201);
    let promoted = eventually("the canary to be promoted", || {
        for _ in 0..10 {
            ping(&server);
        }
        let log = expect(&server.get("/v1/swaps"), 200);
        log["records"]
            .as_array()
            .unwrap()
            .iter()
            .find(|r| r["kind"] == "promote")
            .cloned()
    });
    assert_eq!(promoted["sha256"], good_sha.as_str());
    assert!(
        promoted["reason"]
            .as_str()
            .unwrap()
            .starts_with("20 successful attempts"),
        "{promoted}"
    );
    assert_eq!(live(&server), good_sha);
    assert_eq!(
        metric(
            &server,
            "weft_swaps_total{target=\"plugin:echo\",kind=\"promote\"}"
        ),
        1.0
    );
    let out = run(&["plugin", "versions", "echo", "--data", &data]);
    assert_eq!(out.code, 0, "{}", out.stderr);
    for kind in ["canary", "abort", "promote"] {
        assert!(out.stdout.contains(kind), "{}", out.stdout);
    }
}

/// `--watch`: a component written into the directory is swapped in; a
/// broken one is refused and logged, and the last good one keeps serving.
#[test]
fn a_watched_directory_swaps_good_components_in_and_refuses_broken_ones() {
    let s = Sandbox::new();
    let data = s.data();
    deploy(&s, &data, &fixture("ping.yaml"), &[]);
    let dir = s.path("adapters");
    std::fs::create_dir(&dir).unwrap();
    let echo = std::fs::read(weft_tests::plugin("echo")).unwrap();
    // Another build than the deployed one: were it swapped in at start, the
    // swap log would say so.
    std::fs::write(dir.join("weft_echo.wasm"), variant("there-at-start")).unwrap();
    let log = s.path("serve.log");
    let mut serve = Running::spawn_with(
        &[
            "serve",
            "--data",
            &data,
            "--listen",
            "127.0.0.1:0",
            "--plugins-dir",
            dir.to_str().unwrap(),
            "--watch",
        ],
        std::fs::File::create(&log).unwrap(),
    );
    let line = serve.wait_for("serving");
    let base = line
        .split_whitespace()
        .find(|w| w.starts_with("http://"))
        .unwrap()
        .trim_end_matches(':')
        .to_owned();
    let server = Server { serve, base };
    let v1 = sha256(&echo);
    // What was there at the start is what runs: not swapped again.
    std::thread::sleep(std::time::Duration::from_millis(700));
    assert_eq!(live(&server), v1);
    assert!(
        expect(&server.get("/v1/swaps"), 200)["records"]
            .as_array()
            .unwrap()
            .is_empty()
    );

    let v2 = variant("watched");
    std::fs::write(dir.join("weft_echo.wasm"), &v2).unwrap();
    let v2_sha = sha256(&v2);
    eventually("the watched component to be live", || {
        (live(&server) == v2_sha).then_some(())
    });
    ping_runs_on(&server, &v2_sha);

    std::fs::write(dir.join("weft_echo.wasm"), b"not a component").unwrap();
    eventually("the refusal to be logged", || {
        let text = std::fs::read_to_string(&log).unwrap();
        text.contains("weft_echo.wasm refused").then_some(())
    });
    let text = std::fs::read_to_string(&log).unwrap();
    assert!(text.contains("plugin:echo keeps its component"), "{text}");
    assert_eq!(live(&server), v2_sha);
    assert_eq!(ran_on(&server, &ping(&server)), [v2_sha]);
}

/// SIGKILL, as a crash would.
fn crash(mut server: Server) {
    server.serve.child.kill().unwrap();
    server.serve.child.wait().unwrap();
}

/// After a swap, and after a canary starts, `weft serve` restarted
/// (SIGKILL) runs what was live: the swapped component, and the canary's
/// share.
#[test]
fn a_swap_and_a_canary_survive_a_restart() {
    let s = Sandbox::new();
    let data = s.data();
    deploy(&s, &data, &fixture("ping.yaml"), &[]);
    let server = Server::start(&data, &[]);
    let v2 = variant("kept");
    let v2_sha = sha256(&v2);
    expect(&swap_bytes(&server, "echo", &v2, None), 201);
    crash(server);
    let server = Server::start(&data, &[]);
    assert_eq!(live(&server), v2_sha);
    ping_runs_on(&server, &v2_sha);

    let v3 = variant("trial");
    let v3_sha = sha256(&v3);
    let canary = json!({"percent": 50, "promote_after": 100000});
    expect(&swap_bytes(&server, "echo", &v3, Some(canary)), 201);
    crash(server);
    let server = Server::start(&data, &[]);
    let log = expect(&server.get("/v1/swaps?target=echo"), 200);
    let canary = &log["live"][0]["canary"];
    assert_eq!(canary["sha256"], v3_sha.as_str(), "{log}");
    assert_eq!(canary["policy"]["percent"], 50);
    let mut on: HashMap<String, usize> = HashMap::new();
    for _ in 0..40 {
        for sha in ran_on(&server, &ping(&server)) {
            *on.entry(sha).or_default() += 1;
        }
    }
    assert!(on.get(&v3_sha).copied().unwrap_or(0) > 0, "{on:?}");
    assert!(on.get(&v2_sha).copied().unwrap_or(0) > 0, "{on:?}");
    assert_eq!(on.len(), 2, "{on:?}");
}

/// `weft bench swap` at a small size: it swaps under load, reports the
/// figures, and no attempt fails (it exits non-zero if one does).
#[test]
fn the_swap_benchmark_runs_and_nothing_fails() {
    let plugin = weft_tests::plugin("echo");
    let out = run(&[
        "bench",
        "swap",
        "--rate",
        "200",
        "--swaps",
        "2",
        "--every",
        "300ms",
        "--plugin",
        plugin.to_str().unwrap(),
    ]);
    assert_eq!(out.code, 0, "{}{}", out.stdout, out.stderr);
    let last = out.stdout.lines().last().unwrap_or_default();
    assert!(last.starts_with("swap_live_ms="), "{last}");
    assert!(last.contains("failed_during_swap=0"), "{last}");
}
