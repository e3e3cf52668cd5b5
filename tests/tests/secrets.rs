//! Secrets reach the adapter and nothing else: a planted value is used by
//! the adapter (it answers the value's length) and is absent from the store
//! on disk, the history, the instance, the logs (JSON, debug), the metrics
//! and the error of a step whose secret is missing.

#![allow(clippy::unwrap_used)]

use weft_tests::{Running, Sandbox, http, run, weft};

const PLANTED: &str = "planted-hunter2-SECRET-9f8e7d";

fn files_under(dir: &std::path::Path, out: &mut Vec<std::path::PathBuf>) {
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            files_under(&path, out);
        } else {
            out.push(path);
        }
    }
}

#[test]
fn a_secret_reaches_its_adapter_and_appears_nowhere_else() {
    let s = Sandbox::new();
    let data = s.data();
    let process = s.write(
        "keyed.yaml",
        "process: keyed\nversion: 1\nstart: call\nstates:\n  call:\n    action: echo\n    input: '{simulate: {secret_len: \"API_KEY\"}}'\n    output: .answer\n    on: { done: ok, error: failed }\n  ok: { type: succeed }\n  failed: { type: fail }\n",
    );
    let bindings = s.bindings(&[("echo", "    secrets: [API_KEY]")]);
    let deployed = run(&["deploy", &process, "--bindings", &bindings, "--data", &data]);
    assert_eq!(deployed.code, 0, "{}", deployed.stderr);
    // A second process whose binding names a secret the engine lacks.
    let missing = s.write(
        "missing.yaml",
        &std::fs::read_to_string(&process)
            .unwrap()
            .replace("keyed", "lacking"),
    );
    let lacking = s.bindings(&[("echo", "    secrets: [API_KEY, NOT_GIVEN]")]);
    let deployed = run(&["deploy", &missing, "--bindings", &lacking, "--data", &data]);
    assert_eq!(deployed.code, 0, "{}", deployed.stderr);

    let log = s.path("serve.log");
    let mut cmd = weft(&[
        "serve",
        "--data",
        &data,
        "--listen",
        "127.0.0.1:0",
        "--log-format",
        "json",
    ]);
    cmd.env("WEFT_SECRET_API_KEY", PLANTED)
        .env("WEFT_LOG", "debug")
        .stderr(std::fs::File::create(&log).unwrap());
    let mut serve = Running::from_command(cmd);
    let line = serve.wait_for("serving");
    let base = line
        .split_whitespace()
        .find(|w| w.starts_with("http://"))
        .map(|w| w.trim_end_matches(':').to_owned())
        .unwrap();

    let ok = http(
        "POST",
        &base,
        "/v1/processes/keyed/instances?wait=30s",
        r#"{"key": "k-1"}"#,
        &[],
    );
    assert_eq!(ok.status, 200, "{}", ok.body);
    assert_eq!(
        ok.json()["output"]["answer"]["secret_len"],
        PLANTED.len(),
        "{}",
        ok.body
    );
    let no = http(
        "POST",
        &base,
        "/v1/processes/lacking/instances?wait=30s",
        r#"{"key": "k-2"}"#,
        &[],
    );
    let err = no.json();
    assert_eq!(err["status"], "failed", "{}", no.body);
    let message = err["error"]["message"].as_str().unwrap().to_owned();
    assert!(
        message.contains("NOT_GIVEN") && message.contains("WEFT_SECRET_NOT_GIVEN"),
        "{message}"
    );

    let mut seen = vec![ok.body.clone(), no.body.clone()];
    for path in [
        "/v1/instances/k-1",
        "/v1/instances/k-1/history",
        "/v1/instances/k-2/history",
        "/metrics",
        "/v1/processes/keyed",
        "/v1/plugins",
    ] {
        seen.push(http("GET", &base, path, "", &[]).body);
    }
    let _ = serve.child.kill();
    let _ = serve.child.wait();
    seen.push(std::fs::read_to_string(&log).unwrap());
    assert!(
        seen.last().unwrap().contains("invoke"),
        "the debug log has the invocation spans"
    );
    for text in &seen {
        assert!(!text.contains(PLANTED), "the secret leaked into: {text}");
    }
    let mut files = Vec::new();
    files_under(std::path::Path::new(&data), &mut files);
    assert!(!files.is_empty());
    for f in files {
        let bytes = std::fs::read(&f).unwrap();
        assert!(
            !bytes
                .windows(PLANTED.len())
                .any(|w| w == PLANTED.as_bytes()),
            "the secret is on disk in {}",
            f.display()
        );
    }
}
