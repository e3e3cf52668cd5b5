//! A real `weft serve` for the API tests, and what they share.

use std::time::Duration;

use serde_json::Value;

use crate::{Http, Running, Sandbox, http, root, run};

/// A `weft serve` on a free loopback port, and its base URL.
pub struct Server {
    pub serve: Running,
    pub base: String,
}

impl Server {
    pub fn start(data: &str, extra: &[&str]) -> Server {
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

    pub fn get(&self, path: &str) -> Http {
        http("GET", &self.base, path, "", &[])
    }

    pub fn post(&self, path: &str, body: &str) -> Http {
        http("POST", &self.base, path, body, &[])
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.serve.child.kill();
        let _ = self.serve.child.wait();
    }
}

pub fn deploy(s: &Sandbox, data: &str, process: &str, extra: &[(&str, &str)]) {
    let bindings = s.bindings(extra);
    let out = run(&["deploy", process, "--bindings", &bindings, "--data", data]);
    assert_eq!(out.code, 0, "{}\n{}", out.stdout, out.stderr);
}

pub fn fixture(name: &str) -> String {
    root()
        .join("tests/fixtures")
        .join(name)
        .display()
        .to_string()
}

/// Polls `probe` (every 20 ms, up to 6 s) until it has an answer.
pub fn eventually<T>(what: &str, mut probe: impl FnMut() -> Option<T>) -> T {
    for _ in 0..300 {
        if let Some(t) = probe() {
            return t;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    panic!("gave up waiting for {what}");
}

/// Waits (through `weft status`) until the instance waits; its version.
pub fn waiting_version(data: &str, target: &str) -> Value {
    eventually(&format!("{target} to wait"), || {
        let out = run(&["status", target, "--data", data, "--json"]);
        assert_eq!(out.code, 0, "{}\n{}", out.stdout, out.stderr);
        let v: Value = serde_json::from_str(&out.stdout).expect("status --json prints JSON");
        (v["status"] == "waiting").then(|| v["version"].clone())
    })
}

pub fn expect(r: &Http, status: u16) -> Value {
    assert_eq!(r.status, status, "{}", r.body);
    r.json()
}

/// The value of one sample line of Prometheus text (`name{labels} value`),
/// or 0 when the series is absent.
pub fn sample(text: &str, series: &str) -> f64 {
    text.lines()
        .find(|l| l.starts_with(series) && l[series.len()..].starts_with(' '))
        .and_then(|l| l.rsplit(' ').next())
        .and_then(|v| v.parse().ok())
        .unwrap_or(0.0)
}
