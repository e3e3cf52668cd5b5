//! Long-running processes through the real binary: wait states, signals by
//! business key, idempotent starts, durable wait timers across a SIGKILL of
//! `weft serve`, and versioning with `weft migrate`.

#![allow(clippy::unwrap_used)] // an unwrap that fails is a test that fails

use weft_tests::{Running, Sandbox, json, root, run, run_args, status_of};

fn waits() -> String {
    root()
        .join("tests/fixtures/waits.yaml")
        .display()
        .to_string()
}

const RECORD: &str = "    config: { simulate: { record: /log/calls.log } }";

#[test]
fn waiting_instances_survive_a_killed_engine_and_timers_fire_once() {
    let s = Sandbox::new();
    let bindings = s.bindings(&[("echo", RECORD)]);
    let data = s.data();
    let start = |key: &str, mode: &str| {
        let input = format!(r#"{{"mode": "{mode}"}}"#);
        run(&[
            "run",
            &waits(),
            "--bindings",
            &bindings,
            "--input",
            &input,
            "--key",
            key,
            "--data",
            &data,
        ])
    };
    let first = start("loan-1", "approval");
    assert_eq!(first.code, 4, "waiting: {}\n{}", first.stdout, first.stderr);
    let id = first.lines()[0].to_owned();
    assert!(
        first
            .stdout
            .contains("waiting in 'review' for approve | reject"),
        "{}",
        first.stdout
    );
    // The same key again: the same instance, nothing new started.
    let again = start("loan-1", "timer");
    assert_eq!(again.code, 4);
    assert_eq!(again.lines()[0], id);
    assert!(
        again
            .stdout
            .contains("already started with the key 'loan-1'")
    );

    // An event the state does not accept: refused, listing what it accepts.
    let wrong = run(&["signal", "loan-1", "approved", "--data-dir", &data]);
    assert_eq!(wrong.code, 2);
    assert!(
        wrong
            .stderr
            .contains("state 'review' does not accept 'approved'; it accepts: approve, reject"),
        "{}",
        wrong.stderr
    );
    let bad = run(&[
        "signal",
        "loan-1",
        "approve",
        "--data",
        "{oops",
        "--data-dir",
        &data,
    ]);
    assert_eq!(bad.code, 2);
    assert!(
        bad.stderr.contains("--data is not valid JSON"),
        "{}",
        bad.stderr
    );

    let napper = start("nap-1", "timer");
    assert_eq!(napper.code, 4, "{}", napper.stdout);
    let nap_id = napper.lines()[0].to_owned();

    // An engine killed at once, then another on the same data.
    let mut serve = Running::spawn(&["serve", "--data", &data, "--listen", "127.0.0.1:0"]);
    serve.wait_for("serving");
    serve.kill();
    let mut serve = Running::spawn(&["serve", "--data", &data, "--listen", "127.0.0.1:0"]);
    assert!(serve.wait_for("serving").contains("2 waiting"));
    serve.wait_for(&format!("{nap_id}  nap --elapsed--> after_nap"));
    serve.wait_for(&format!("{nap_id}  succeeded"));
    // A signal from another process, by business key, through the running engine.
    let ok = run(&[
        "signal",
        "loan-1",
        "approve",
        "--data",
        r#"{"by": "ana"}"#,
        "--data-dir",
        &data,
    ]);
    assert_eq!(ok.code, 0, "{}\n{}", ok.stdout, ok.stderr);
    serve.wait_for(&format!("{id}  review --approve--> approved"));
    serve.wait_for(&format!("{id}  succeeded"));
    serve.kill();

    let loan = status_of("loan-1", &data);
    assert_eq!(loan["status"], "succeeded");
    assert_eq!(loan["data"]["decision"]["by"], "ana");
    // The nap's timer fired once: one `elapsed`, one step after it.
    let history = json(&["history", &nap_id, "--data", &data, "--json"]);
    let elapsed = history
        .as_array()
        .unwrap()
        .iter()
        .filter(|r| r["event"] == "elapsed")
        .count();
    assert_eq!(elapsed, 1);
    let after_nap: Vec<String> = s
        .calls()
        .into_iter()
        .filter(|c| c.contains(&format!("{nap_id}/after_nap/")))
        .collect();
    assert_eq!(after_nap.len(), 1, "{after_nap:?}");
}

#[test]
fn new_instances_use_the_newest_version_and_migrate_moves_one() {
    let s = Sandbox::new();
    let bindings = s.bindings(&[]);
    let data = s.data();
    let v1 = std::fs::read_to_string(waits()).unwrap();
    let v2 = v1.replace("version: 1", "version: 2").replace(
        "      reject: rejected\n      timeout",
        "      reject: rejected\n      defer: review\n      timeout",
    );
    let v3 = v1
        .replace("version: 1", "version: 3")
        .replace("review", "triage");
    let deploy = |text: &str, name: &str| {
        let path = s.write(name, text);
        let out = run(&["deploy", &path, "--bindings", &bindings, "--data", &data]);
        assert_eq!(out.code, 0, "{}\n{}", out.stdout, out.stderr);
    };
    deploy(&v1, "v1.yaml");
    let input = r#"{"mode": "approval"}"#;
    let start = |key: &str| {
        run(&[
            "start", "waits", "--input", input, "--key", key, "--data", &data,
        ])
    };
    assert_eq!(start("old").code, 4);
    deploy(&v2, "v2.yaml");
    deploy(&v3, "v3.yaml");
    let pinned = run(&[
        "start",
        "waits",
        "--version",
        "2",
        "--input",
        input,
        "--key",
        "pinned",
        "--data",
        &data,
    ]);
    assert_eq!(pinned.code, 4, "{}\n{}", pinned.stdout, pinned.stderr);
    let version = |key: &str| status_of(key, &data)["version"].clone();
    assert_eq!(
        version("old"),
        1,
        "deploying does not change running instances"
    );
    assert_eq!(version("pinned"), 2);

    // v1 has no `defer`; after the move to v2 it is accepted.
    let refused = run(&["signal", "old", "defer", "--data-dir", &data]);
    assert_eq!(refused.code, 2);
    let moved = run(&["migrate", "old", "--to", "2", "--data", &data]);
    assert_eq!(moved.code, 0, "{}\n{}", moved.stdout, moved.stderr);
    assert_eq!(version("old"), 2);
    // v3 renamed the state the instance waits in: refused, nothing changes.
    let no = run(&["migrate", "old", "--to", "3", "--data", &data]);
    assert_eq!(no.code, 2);
    assert!(
        no.stderr
            .contains("version 3 has no state 'review', where the instance is"),
        "{}",
        no.stderr
    );
    assert_eq!(version("old"), 2);
    let missing = run(&["migrate", "old", "--to", "7", "--data", &data]);
    assert_eq!(missing.code, 2);
    assert!(
        missing.stderr.contains("has no version 7"),
        "{}",
        missing.stderr
    );

    let deferred = run(&["signal", "old", "defer", "--data-dir", &data]);
    assert_eq!(deferred.code, 0, "{}", deferred.stderr);
    let history = json(&["history", "old", "--data", &data, "--json"]);
    assert!(
        history
            .as_array()
            .unwrap()
            .iter()
            .any(|r| r["type"] == "migrated" && r["from_version"] == 1 && r["to_version"] == 2)
    );
}

#[test]
fn a_killed_engine_inside_parallel_branches_finishes_them_after_resume() {
    let s = Sandbox::new();
    let echo = weft_tests::plugin("echo").display().to_string();
    let log = s.log().display().to_string();
    let action = |name: &str, sleep: u64| {
        format!(
            "  {name}:\n    plugin: echo\n    action: echo\n    dirs: {{ /log: {log} }}\n    \
             config: {{ simulate: {{ record: /log/calls.log, sleep_ms: {sleep} }} }}\n"
        )
    };
    let mut bindings = format!("plugins:\n  echo: {echo}\nactions:\n");
    for (name, sleep) in [
        ("compile", 3_000),
        ("publish_artifact", 0),
        ("withdraw_artifact", 0),
        ("run_tests", 0),
        ("lint", 0),
        ("deploy", 0),
    ] {
        bindings.push_str(&action(name, sleep));
    }
    let bindings = s.write("bindings.yaml", &bindings);
    let process = root()
        .join("examples/ci-pipeline/process.yaml")
        .display()
        .to_string();
    let data = s.data();
    let mut engine = Running::spawn(&run_args(
        &process,
        &bindings,
        r#"{"commit": "abc"}"#,
        &data,
    ));
    let id = engine.wait_for("");
    while !["[lint] succeeded", "[test] succeeded"]
        .iter()
        .all(|n| engine.seen.iter().any(|l| l.contains(n)))
    {
        engine.wait_for("succeeded");
    }
    // Killed only once compile is under way (it sleeps 3 s).
    weft_tests::wait_for_calls(&s, "compile to start", |c| {
        c.iter().any(|l| l.contains("/compile/"))
    });
    engine.kill(); // compile is still running

    let out = run(&["resume", "--data", &data]);
    assert_eq!(out.code, 0, "{}\n{}", out.stdout, out.stderr);
    assert!(
        out.stdout.contains("[build] compile --done--> publish"),
        "{}",
        out.stdout
    );
    assert_eq!(status_of(&id, &data)["status"], "succeeded");
    // Lines are `<plugin action> <key> <attempt>`; the key names the step.
    let of = |state: &str| -> Vec<String> {
        s.calls()
            .into_iter()
            .filter(|c| c.contains(&format!("/{state}/")))
            .collect()
    };
    // The branches that had finished did not run again; the step in flight
    // at the crash did (at-least-once), under the same key.
    assert_eq!(of("unit").len(), 1, "{:#?}\n{}", s.calls(), out.stdout);
    assert_eq!(of("lint").len(), 1);
    assert_eq!(of("publish").len(), 1);
    assert_eq!(of("deploy").len(), 1);
    let compiles = of("compile");
    assert_eq!(compiles.len(), 2, "{compiles:?}");
    let key = |c: &str| c.split(' ').nth(1).map(str::to_owned);
    assert_eq!(key(&compiles[0]), key(&compiles[1]), "same idempotency key");
}
