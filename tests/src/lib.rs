//! Helpers for weft's end-to-end tests: the real `weft` binary, the real
//! plugins built from `plugins/` (by `build.rs`, once per run), and scratch
//! directories with process and bindings files.

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::OnceLock;

use serde_json::Value;

mod example;
mod server;
pub mod service;
pub use example::{FOREIGN_EXAMPLES, check_example, foreign_adapters};
pub use server::{Server, deploy, eventually, expect, fixture, sample, waiting_version};

/// The workspace root.
pub fn root() -> PathBuf {
    PathBuf::from(env!("WEFT_ROOT"))
}

/// The component built from `plugins/<name>`.
pub fn plugin(name: &str) -> PathBuf {
    let p = Path::new(env!("WEFT_PLUGIN_DIR")).join(format!("weft_{name}.wasm"));
    assert!(p.exists(), "{} was not built", p.display());
    p
}

/// The echo component with a custom section naming `tag` appended: the
/// same adapter, other bytes (a rebuild), so another digest.
pub fn echo_variant(tag: &str) -> Vec<u8> {
    let echo = std::fs::read(plugin("echo")).expect("the echo component");
    weft_runtime::with_custom_section(&echo, "weft-test-build", tag)
}

/// The `weft` binary, built once per test process so it is never stale.
pub fn weft_bin() -> &'static Path {
    static BIN: OnceLock<PathBuf> = OnceLock::new();
    BIN.get_or_init(|| {
        let cargo = option_env!("CARGO").unwrap_or("cargo");
        let mut build = Command::new(cargo);
        build
            .args(["build", "--quiet", "-p", "weft"])
            .current_dir(root());
        // What cargo set for this test crate: a build script that watches
        // it (ring's watches CARGO_PKG_NAME) would see other values than in
        // a shell's build, and the two would keep rebuilding each other.
        for (name, _) in std::env::vars_os() {
            let name = name.to_string_lossy();
            let per_crate = [
                "CARGO_PKG_",
                "CARGO_MANIFEST_",
                "CARGO_BIN_",
                "CARGO_CRATE_",
            ]
            .iter()
            .any(|p| name.starts_with(p))
                || name == "CARGO_PRIMARY_PACKAGE"
                || name == "CARGO_TARGET_TMPDIR"
                || name == "OUT_DIR";
            if per_crate {
                build.env_remove(&*name);
            }
        }
        let status = build.status().expect("cargo runs");
        assert!(status.success(), "cargo build -p weft failed");
        let target = std::env::var_os("CARGO_TARGET_DIR")
            .map(PathBuf::from)
            .unwrap_or_else(|| root().join("target"));
        target.join("debug").join("weft")
    })
}

/// A `weft` command with the given arguments, run from the workspace root.
pub fn weft(args: &[&str]) -> Command {
    let mut c = Command::new(weft_bin());
    c.args(args)
        .current_dir(root())
        .env_remove("RUST_BACKTRACE")
        .env("WEFT_LOG", "error");
    c
}

/// What a finished command printed.
#[derive(Debug)]
pub struct Output {
    pub code: i32,
    pub stdout: String,
    pub stderr: String,
}

impl Output {
    pub fn lines(&self) -> Vec<&str> {
        self.stdout.lines().collect()
    }
}

pub fn output(mut c: Command) -> Output {
    let out = c.output().expect("weft runs");
    Output {
        code: out.status.code().unwrap_or(-1),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    }
}

/// Runs `weft` with `args` and returns what it printed.
pub fn run(args: &[&str]) -> Output {
    output(weft(args))
}

/// Runs `weft <cmd> --json ...` and parses stdout.
pub fn json(args: &[&str]) -> Value {
    let out = run(args);
    assert_eq!(out.code, 0, "weft {args:?} failed: {}", out.stderr);
    serde_json::from_str(&out.stdout)
        .unwrap_or_else(|e| panic!("weft {args:?} printed no JSON ({e}): {}", out.stdout))
}

/// `run <process> --bindings <file> --input <json> --data <dir>`, as the
/// arguments of [`run`] or [`Running::spawn`].
pub fn run_args<'a>(
    process: &'a str,
    bindings: &'a str,
    input: &'a str,
    data: &'a str,
) -> [&'a str; 8] {
    [
        "run",
        process,
        "--bindings",
        bindings,
        "--input",
        input,
        "--data",
        data,
    ]
}

/// An instance (by id or business key) as `weft status --json` shows it.
pub fn status_of(id: &str, data: &str) -> Value {
    json(&["status", id, "--data", data, "--json"])
}

/// A scratch directory for one test: files, a data dir, a log dir plugins
/// may be granted.
pub struct Sandbox {
    pub dir: tempfile::TempDir,
}

impl Default for Sandbox {
    fn default() -> Self {
        Self::new()
    }
}

impl Sandbox {
    pub fn new() -> Self {
        let dir = tempfile::tempdir().expect("tempdir");
        std::fs::create_dir_all(dir.path().join("log")).expect("log dir");
        Sandbox { dir }
    }

    pub fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    pub fn data(&self) -> String {
        self.path("data").display().to_string()
    }

    /// The host directory granted to plugins as `/log` by [`Sandbox::bindings`].
    pub fn log(&self) -> PathBuf {
        self.path("log")
    }

    pub fn write(&self, name: &str, text: &str) -> String {
        let p = self.path(name);
        std::fs::write(&p, text).expect("write");
        p.display().to_string()
    }

    /// Lines the plugins appended to `/log/calls.log` (the `record` knob):
    /// `<action> <idempotency key> <attempt>`.
    pub fn calls(&self) -> Vec<String> {
        std::fs::read_to_string(self.log().join("calls.log"))
            .map(|s| s.lines().map(str::to_owned).collect())
            .unwrap_or_default()
    }

    /// A bindings file for the order-fulfillment actions on the real
    /// plugins; `extra` is YAML added to each action (indented by the caller
    /// as `    key: value` lines), keyed by action.
    pub fn bindings(&self, extra: &[(&str, &str)]) -> String {
        let mut y = String::from("plugins:\n");
        // The HTTP adapter only where a test binds `fetch`.
        let fetch = extra.iter().any(|(a, _)| *a == "fetch");
        for p in [
            "inventory",
            "payments",
            "shipping",
            "notify",
            "echo",
            "http",
        ] {
            if p != "http" || fetch {
                y.push_str(&format!("  {p}: {}\n", plugin(p).display()));
            }
        }
        y.push_str("actions:\n");
        for (action, plugin) in [
            ("reserve_inventory", "inventory"),
            ("release_inventory", "inventory"),
            ("charge_payment", "payments"),
            ("refund_payment", "payments"),
            ("create_shipment", "shipping"),
            ("cancel_shipment", "shipping"),
            ("send_notification", "notify"),
            ("echo", "echo"),
            ("fetch", "http"),
        ] {
            if plugin == "http" && !fetch {
                continue;
            }
            y.push_str(&format!("  {action}:\n    plugin: {plugin}\n"));
            if plugin == "http" {
                y.push_str("    action: request\n");
            }
            y.push_str(&format!("    dirs: {{ /log: {} }}\n", self.log().display()));
            for (a, more) in extra {
                if *a == action {
                    y.push_str(more);
                    if !more.ends_with('\n') {
                        y.push('\n');
                    }
                }
            }
        }
        self.write("bindings.yaml", &y)
    }
}

/// A 3-step order process (reserve → charge → ship), no retries or
/// compensation: the fixture most end-to-end tests run.
pub fn order_process() -> String {
    root()
        .join("tests/fixtures/order.yaml")
        .display()
        .to_string()
}

/// An order input; `qty` and `card` pick the path it takes.
pub fn order_input(qty: u32, card: &str) -> String {
    serde_json::json!({"order": {"id": "ord-1", "sku": "TEA-1", "qty": qty, "amount": 12.5,
                                  "card": card, "address": "1 Loom Street"}})
    .to_string()
}

/// A running `weft` whose stdout can be read line by line.
pub struct Running {
    pub child: Child,
    lines: std::io::Lines<BufReader<std::process::ChildStdout>>,
    pub seen: Vec<String>,
}

impl Running {
    pub fn spawn(args: &[&str]) -> Running {
        Running::spawn_with(args, Stdio::inherit())
    }

    /// Like `spawn`, with stderr sent where the test says (a file to read).
    pub fn spawn_with(args: &[&str], stderr: impl Into<Stdio>) -> Running {
        let mut cmd = weft(args);
        cmd.stderr(stderr);
        Running::from_command(cmd)
    }

    /// Starts a command the test set up (its environment, its stderr);
    /// its stdout is read here.
    pub fn from_command(mut cmd: Command) -> Running {
        let mut child = cmd.stdout(Stdio::piped()).spawn().expect("weft starts");
        let stdout = child.stdout.take().expect("piped");
        Running {
            child,
            lines: BufReader::new(stdout).lines(),
            seen: Vec::new(),
        }
    }

    /// Reads lines until one contains `needle`; panics if output ends first.
    pub fn wait_for(&mut self, needle: &str) -> String {
        for line in self.lines.by_ref() {
            let line = line.expect("utf-8 output");
            self.seen.push(line.clone());
            if line.contains(needle) {
                return line;
            }
        }
        panic!("output ended before {needle:?}; saw {:#?}", self.seen);
    }

    /// Reads the rest of the output, until the process closes it.
    pub fn rest(&mut self) -> Vec<String> {
        let rest: Vec<String> = self.lines.by_ref().map_while(Result::ok).collect();
        self.seen.extend(rest.iter().cloned());
        rest
    }

    /// Kills the process with SIGKILL, as a crash would.
    pub fn kill(mut self) {
        self.child.kill().expect("SIGKILL");
        let status = self.child.wait().expect("reaped");
        assert!(
            !status.success(),
            "the process was meant to die, not finish"
        );
    }
}

/// Waits (polling the file, up to 30 s) until `pred` holds for the calls log.
pub fn wait_for_calls(sandbox: &Sandbox, what: &str, pred: impl Fn(&[String]) -> bool) {
    for _ in 0..3000 {
        if pred(&sandbox.calls()) {
            return;
        }
        std::thread::sleep(std::time::Duration::from_millis(10));
    }
    panic!("gave up waiting for {what}; calls: {:#?}", sandbox.calls());
}

/// An HTTP response as the tests read it.
#[derive(Debug)]
pub struct Http {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: String,
}

impl Http {
    pub fn json(&self) -> Value {
        serde_json::from_str(&self.body)
            .unwrap_or_else(|e| panic!("not JSON ({e}): {} {}", self.status, self.body))
    }

    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }
}

/// One HTTP/1.1 request to `base` (`http://host:port`), with
/// `Connection: close`; `headers` are added as given. Small on purpose: the
/// tests talk to a real server over a real socket, nothing in between.
pub fn http(
    method: &str,
    base: &str,
    path: &str,
    body: impl AsRef<[u8]>,
    headers: &[(&str, &str)],
) -> Http {
    use std::io::{Read, Write};
    let body = body.as_ref();
    let host = base.trim_start_matches("http://").trim_end_matches('/');
    let mut stream = std::net::TcpStream::connect(host).expect("the server accepts");
    let mut req = format!(
        "{method} {path} HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\nContent-Length: {}\r\n",
        body.len()
    );
    let typed = headers
        .iter()
        .any(|(k, _)| k.eq_ignore_ascii_case("content-type"));
    if !body.is_empty() && !typed {
        req.push_str("Content-Type: application/json\r\n");
    }
    for (k, v) in headers {
        req.push_str(&format!("{k}: {v}\r\n"));
    }
    req.push_str("\r\n");
    stream.write_all(req.as_bytes()).expect("request sent");
    stream.write_all(body).expect("body sent");
    let mut raw = Vec::new();
    stream.read_to_end(&mut raw).expect("response read");
    let text = String::from_utf8_lossy(&raw).into_owned();
    let (head, rest) = text.split_once("\r\n\r\n").expect("a response head");
    let mut lines = head.split("\r\n");
    let status: u16 = lines
        .next()
        .and_then(|l| l.split(' ').nth(1))
        .and_then(|s| s.parse().ok())
        .expect("a status line");
    let headers: Vec<(String, String)> = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(k, v)| (k.trim().to_owned(), v.trim().to_owned()))
        .collect();
    let chunked = headers.iter().any(|(k, v)| {
        k.eq_ignore_ascii_case("transfer-encoding") && v.eq_ignore_ascii_case("chunked")
    });
    let body = if chunked {
        let mut out = String::new();
        let mut rest = rest;
        while let Some((size, after)) = rest.split_once("\r\n") {
            let n = usize::from_str_radix(size.trim(), 16).unwrap_or(0);
            if n == 0 {
                break;
            }
            out.push_str(&after[..n]);
            rest = &after[n + 2..];
        }
        out
    } else {
        rest.to_owned()
    };
    Http {
        status,
        headers,
        body,
    }
}
