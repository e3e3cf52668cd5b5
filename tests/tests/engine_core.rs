//! The engine core through the real binary: a step always runs with its own
//! process version's bindings whichever command applies the event, a cron
//! schedule fires under `weft serve`, and `weft heartbeat` keeps a pending
//! step alive until `weft complete` ends it.

#![allow(clippy::unwrap_used)] // an unwrap that fails is a test that fails

use std::time::Duration;

use weft_tests::{
    Running, Sandbox, json, order_input, order_process, root, run, run_args, status_of, weft,
};

const RECORD: &str = "    config: { simulate: { record: /log/calls.log } }";

fn waits() -> String {
    root()
        .join("tests/fixtures/waits.yaml")
        .display()
        .to_string()
}

/// `weft run` of the `waits` fixture with `mode`, and a business key when
/// given; it parks in a wait state (exit 4).
fn run_waits(bindings: &str, data: &str, mode: &str, key: Option<&str>) -> weft_tests::Output {
    let input = format!(r#"{{"mode": "{mode}"}}"#);
    let mut args = vec![
        "run",
        &waits(),
        "--bindings",
        bindings,
        "--input",
        &input,
        "--data",
        data,
    ]
    .into_iter()
    .map(str::to_owned)
    .collect::<Vec<String>>();
    if let Some(key) = key {
        args.extend(["--key".to_owned(), key.to_owned()]);
    }
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let out = run(&args);
    assert_eq!(out.code, 4, "waiting: {}\n{}", out.stdout, out.stderr);
    out
}

#[test]
fn another_processes_due_timer_fires_with_its_own_bindings_under_weft_run() {
    let s = Sandbox::new();
    let bindings = s.bindings(&[("echo", RECORD)]);
    let data = s.data();
    // `waits` parks on a 2 s timer, then runs `echo`.
    let nap = run_waits(&bindings, &data, "timer", None);
    let id = nap.lines()[0].to_owned();
    std::thread::sleep(Duration::from_millis(2_500));
    // `weft run` of another process fires every due timer in the directory.
    let order = run(&run_args(
        &order_process(),
        &bindings,
        &order_input(1, "4242"),
        &data,
    ));
    assert_eq!(order.code, 0, "{}\n{}", order.stdout, order.stderr);
    // Whatever `run` left in flight, `resume` finishes.
    let resumed = run(&["resume", "--data", &data]);
    assert_eq!(resumed.code, 0, "{}\n{}", resumed.stdout, resumed.stderr);
    let status = json(&["status", &id, "--data", &data, "--json"]);
    assert_eq!(status["status"], "succeeded", "{status}");
    let after_nap: Vec<String> = s
        .calls()
        .into_iter()
        .filter(|c| c.contains("/after_nap/"))
        .collect();
    assert_eq!(after_nap.len(), 1, "ran once, first time: {after_nap:?}");
    assert!(after_nap[0].ends_with(" 1"), "attempt 1: {after_nap:?}");
}

#[test]
fn an_offline_signal_keeps_the_bindings_retry_policy() {
    let s = Sandbox::new();
    // `echo` fails twice, retryably, then answers; its binding retries.
    let bindings = s.bindings(&[(
        "echo",
        "    retry: { max_attempts: 3, initial: 100ms }\n    config: { simulate: { record: /log/calls.log, retryable_times: 2 } }",
    )]);
    let data = s.data();
    run_waits(&bindings, &data, "approval", Some("loan-9"));
    // No engine runs: the signal is applied offline.
    let signal = run(&["signal", "loan-9", "approve", "--data-dir", &data]);
    assert_eq!(signal.code, 0, "{}\n{}", signal.stdout, signal.stderr);
    let resumed = run(&["resume", "--data", &data]);
    assert_eq!(resumed.code, 0, "{}\n{}", resumed.stdout, resumed.stderr);
    let status = json(&["status", "loan-9", "--data", &data, "--json"]);
    assert_eq!(status["status"], "succeeded", "{status}");
    let history = run(&["history", "loan-9", "--data", &data]);
    assert!(
        history.stdout.contains("(bindings r1, component "),
        "history says which bindings ran: {}",
        history.stdout
    );
}

const CRON: &str = r#"
process: ticker
version: 1
start: tick
schedule:
  - { cron: "* * * * * *", input: { from: cron } }
states:
  tick:
    action: echo
    on: { done: ok }
  ok: { type: succeed }
"#;

#[test]
fn a_cron_schedule_fires_under_weft_serve() {
    let s = Sandbox::new();
    let bindings = s.bindings(&[("echo", RECORD)]);
    let data = s.data();
    let process = s.write("ticker.yaml", CRON);
    let deployed = run(&["deploy", &process, "--bindings", &bindings, "--data", &data]);
    assert_eq!(deployed.code, 0, "{}\n{}", deployed.stdout, deployed.stderr);
    let mut serve = Running::spawn(&["serve", "--data", &data, "--listen", "127.0.0.1:0"]);
    serve.wait_for("1 schedule");
    serve.wait_for("succeeded in 'ok'");
    serve.kill();
    let ticks: Vec<String> = s
        .calls()
        .into_iter()
        .filter(|c| c.starts_with("echo "))
        .collect();
    assert!(!ticks.is_empty(), "the schedule ran its step");
}

#[test]
fn weft_heartbeat_keeps_a_pending_step_alive_until_weft_complete() {
    let s = Sandbox::new();
    let text = std::fs::read_to_string(root().join("tests/fixtures/order.yaml"))
        .unwrap()
        .replace(
            "    output: .payment\n",
            "    output: .payment\n    heartbeat: 1500ms\n",
        );
    let process = s.write("p.yaml", &text);
    let bindings = s.bindings(&[(
        "charge_payment",
        "    config: { simulate: { pending: tok-hb } }",
    )]);
    let data = s.data();
    let mut follow = Running::spawn(&run_args(
        &process,
        &bindings,
        &order_input(1, "4242"),
        &data,
    ));
    follow.wait_for("reserve --done--> charge");
    // Past the limit three times over, kept alive by heartbeats.
    for i in 0..9 {
        std::thread::sleep(Duration::from_millis(500));
        let beat = run(&[
            "heartbeat",
            "tok-hb",
            "--details",
            &format!("{i}/9"),
            "--data",
            &data,
        ]);
        assert_eq!(
            beat.code, 0,
            "heartbeat {i}: {}\n{}",
            beat.stdout, beat.stderr
        );
        assert!(
            beat.stdout.contains("recorded a heartbeat"),
            "{}",
            beat.stdout
        );
    }
    let done = run(&[
        "complete",
        "tok-hb",
        "--output",
        r#"{"charge_id": "ch-hb"}"#,
        "--data",
        &data,
    ]);
    assert_eq!(done.code, 0, "{}\n{}", done.stdout, done.stderr);
    follow.wait_for("succeeded in 'shipped'");
    let status = follow.child.wait().unwrap();
    assert!(status.success());
    let id = follow.seen[0].clone();
    let inst = json(&["status", &id, "--data", &data, "--json"]);
    assert_eq!(inst["data"]["payment"]["charge_id"], "ch-hb");
    // A token completes once.
    let again = run(&["complete", "tok-hb", "--output", "{}", "--data", &data]);
    assert_eq!(again.code, 2);
}

/// `weft serve` asked to stop (SIGTERM, as a service manager does, or
/// SIGINT) while an adapter sleeps inside a host call: within its grace
/// period it lets the charge finish and commit (it never runs twice), starts
/// nothing new, and exits 0 without a panic; with no grace the charge is
/// cut off and runs again at the next start. Either way the next engine
/// finishes the instance.
#[test]
fn weft_serve_stops_gracefully_on_sigterm_mid_host_call() {
    for (signal, grace, charges) in [("-TERM", "30s", 1), ("-INT", "30s", 1), ("-TERM", "0s", 2)] {
        let case = format!("{signal} with --grace {grace}");
        let s = Sandbox::new();
        let data = s.data();
        let bindings = s.bindings(&[(
            "charge_payment",
            "    config: { simulate: { sleep_ms: 3000, heartbeat: true, record: /log/calls.log } }",
        )]);
        // An instance left with its charge to carry out, as after a crash:
        // killed before the charge was called.
        let mut first = Running::spawn(&run_args(
            &order_process(),
            &bindings,
            &order_input(1, "4242"),
            &data,
        ));
        let id = first.wait_for("");
        first.wait_for("reserve --done--> charge");
        first.kill();
        let before = s
            .calls()
            .iter()
            .filter(|c| c.starts_with("charge_payment"))
            .count();

        let errors = s.path("serve.err");
        let mut serve = Running::spawn_with(
            &[
                "serve",
                "--data",
                &data,
                "--listen",
                "127.0.0.1:0",
                "--grace",
                grace,
            ],
            std::fs::File::create(&errors).unwrap(),
        );
        serve.wait_for("1 instance resumed");
        // The charge is now asleep inside the host's poll.
        weft_tests::wait_for_calls(&s, "the charge to start", |c| {
            c.iter().filter(|l| l.starts_with("charge_payment")).count() > before
        });
        std::thread::sleep(Duration::from_millis(300));
        let pid = serve.child.id().to_string();
        let sent = std::process::Command::new("kill")
            .args([signal, &pid])
            .status()
            .unwrap();
        assert!(sent.success());
        let rest = serve.rest();
        let status = serve.child.wait().unwrap();
        let said = std::fs::read_to_string(&errors).unwrap();
        assert_eq!(status.code(), Some(0), "{case}: {rest:?}\n{said}");
        assert!(rest.iter().any(|l| l == "stopped"), "{case}: {rest:?}");
        assert!(!said.contains("panicked"), "{case}: {said}");
        if charges == 1 {
            assert!(
                rest.iter().any(|l| l.contains("charge --done--> ship")),
                "{case}: the charge under way finished before the stop: {rest:?}"
            );
            assert!(
                !rest.iter().any(|l| l.contains("ship --done-->")),
                "{case}: nothing new started while stopping: {rest:?}"
            );
        } else {
            assert!(
                rest.iter().any(|l| l.contains("cut off")),
                "{case}: {rest:?}"
            );
        }

        let resumed = run(&["resume", "--data", &data]);
        assert_eq!(resumed.code, 0, "{}\n{}", resumed.stdout, resumed.stderr);
        let inst = status_of(&id, &data);
        assert_eq!(inst["status"], "succeeded", "{case}: {inst}");
        let charged = s
            .calls()
            .iter()
            .filter(|c| c.starts_with("charge_payment"))
            .count();
        assert_eq!(charged - before, charges, "{case}: {:#?}", s.calls());
    }
}

/// A tmpfs of `mb` MiB at `dir`, unmounted on drop; `None` where this
/// machine does not let the test mount one.
struct SmallDisk(std::path::PathBuf);

impl SmallDisk {
    fn mount(dir: &std::path::Path, mb: u32) -> Option<SmallDisk> {
        std::fs::create_dir_all(dir).ok()?;
        let ok = std::process::Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={mb}M"), "tmpfs"])
            .arg(dir)
            .status()
            .is_ok_and(|s| s.success());
        ok.then(|| SmallDisk(dir.to_owned()))
    }
}

impl Drop for SmallDisk {
    fn drop(&mut self) {
        let _ = std::process::Command::new("umount").arg(&self.0).status();
    }
}

#[test]
fn a_full_disk_stops_weft_run_with_the_reason_and_resume_finishes_after() {
    let s = Sandbox::new();
    let Some(disk) = SmallDisk::mount(&s.path("disk"), 64) else {
        eprintln!("SKIPPED: this machine does not let the test mount a tmpfs to fill");
        return;
    };
    let data = disk.0.join("data").display().to_string();
    let bindings = s.bindings(&[(
        "charge_payment",
        "    config: { simulate: { sleep_ms: 3000, heartbeat: true } }",
    )]);
    let errors = s.path("run.err");
    // 100 KB of data (under the 128 KB a command-line argument may hold):
    // every commit that changes the data writes it, so the one after the
    // fill needs new space, whatever sled had allocated and could reuse.
    let mut input: serde_json::Value = serde_json::from_str(&order_input(1, "4242")).unwrap();
    input["padding"] = serde_json::Value::String("x".repeat(100_000));
    let mut child = weft(&run_args(
        &order_process(),
        &bindings,
        &input.to_string(),
        &data,
    ))
    .stdout(std::process::Stdio::piped())
    .stderr(std::fs::File::create(&errors).unwrap())
    .spawn()
    .unwrap();
    let mut lines = std::io::BufRead::lines(std::io::BufReader::new(child.stdout.take().unwrap()));
    let id = lines.next().unwrap().unwrap();
    let first = lines.next().unwrap().unwrap();
    assert!(first.contains("reserve --done--> charge"), "{first}");
    // The disk fills while the payment is being taken.
    let filler = disk.0.join("filler");
    let _ = std::process::Command::new("dd")
        .args(["if=/dev/zero", "bs=1M", "count=100"])
        .arg(format!("of={}", filler.display()))
        .stderr(std::process::Stdio::null())
        .status();
    let mut status = None;
    for _ in 0..600 {
        status = child.try_wait().unwrap();
        if status.is_some() {
            break;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    let Some(status) = status else {
        let _ = child.kill();
        panic!("weft run did not stop within 60 s of the disk filling");
    };
    assert_eq!(status.code(), Some(2), "a clear stop");
    let said = std::fs::read_to_string(&errors).unwrap();
    assert!(said.contains("No space left on device"), "{said}");
    assert!(said.contains("weft resume"), "says how to carry on: {said}");
    // The charge was asleep inside a host call when the engine stopped.
    assert!(!said.contains("panicked"), "{said}");
    std::fs::remove_file(&filler).unwrap();
    let resumed = run(&["resume", "--data", &data]);
    assert_eq!(resumed.code, 0, "{}\n{}", resumed.stdout, resumed.stderr);
    let inst = json(&["status", &id, "--data", &data, "--json"]);
    assert_eq!(inst["status"], "succeeded", "nothing lost: {inst}");
    let history = json(&["history", &id, "--data", &data, "--json"]);
    let seqs: Vec<u64> = history
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["seq"].as_u64().unwrap())
        .collect();
    assert_eq!(seqs, (0..seqs.len() as u64).collect::<Vec<_>>());
}

#[test]
fn commands_that_need_the_same_data_dir_at_once_wait_for_each_other() {
    let s = Sandbox::new();
    let bindings = s.bindings(&[]);
    let data = s.data();
    run_waits(&bindings, &data, "approval", Some("loan-5"));
    // No engine runs: each command opens the store itself, one at a time.
    let commands: Vec<Vec<String>> = [
        vec!["status", "loan-5", "--data", &data],
        vec!["history", "loan-5", "--data", &data],
        vec!["status", "loan-5", "--data", &data],
        vec!["signal", "loan-5", "approve", "--data-dir", &data],
    ]
    .iter()
    .map(|args| args.iter().map(|a| (*a).to_owned()).collect())
    .collect();
    let handles: Vec<_> = commands
        .into_iter()
        .map(|args| {
            std::thread::spawn(move || {
                let args: Vec<&str> = args.iter().map(String::as_str).collect();
                run(&args)
            })
        })
        .collect();
    for h in handles {
        let out = h.join().unwrap();
        assert_eq!(out.code, 0, "{}\n{}", out.stdout, out.stderr);
    }
    let status = json(&["status", "loan-5", "--data", &data, "--json"]);
    assert_eq!(status["state"], "approved", "{status}");
}
