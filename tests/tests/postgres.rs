//! Several real `weft serve` nodes on one real PostgreSQL (started by the
//! test from the distribution's binaries), with a short lease: a mixed
//! workload — sagas with retries and compensation, waits released by
//! signals sent to any node, durable timers, a map over items — through a
//! node killed with SIGKILL, a node paused past its lease, and a database
//! restarted with `pg_ctl -m immediate`. After each: every instance ended
//! (or parked, with a reason), histories gap-free, one outcome per step
//! key, no timer fired twice, and adapter calls repeated only under the
//! same idempotency key.

use std::collections::{BTreeMap, BTreeSet};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use serde_json::{Value, json};
use weft_store_postgres::testing::Postgres;
use weft_tests::{Sandbox, http, order_input, root, run, weft_bin};

/// The lease: a stopped node is taken over within about this, plus a round.
const LEASE: &str = "2s";

/// A `weft serve` node with its stdout in a file, so what it printed can be
/// read at any moment (and after it is killed).
struct Node {
    child: Child,
    out: PathBuf,
    data: String,
    base: String,
}

impl Node {
    fn start(s: &Sandbox, url: &str, name: &str) -> Node {
        let data = s.path(name).display().to_string();
        let out = s.path(&format!("{name}.out"));
        let mut child = Command::new(weft_bin())
            .args(["serve", "--data", &data, "--listen", "127.0.0.1:0"])
            .args(["--store", url, "--node", name, "--lease-ttl", LEASE])
            .env("WEFT_LOG", "error")
            .stdout(std::fs::File::create(&out).expect("out file"))
            .stderr(Stdio::inherit())
            .spawn()
            .expect("weft serve starts");
        let base = poll("the node to serve", || {
            if let Ok(Some(status)) = child.try_wait() {
                panic!("{name} exited: {status}");
            }
            let text = std::fs::read_to_string(&out).ok()?;
            let line = text.lines().find(|l| l.starts_with("serving"))?;
            line.split_whitespace()
                .find(|w| w.starts_with("http://"))
                .map(|w| w.trim_end_matches(':').to_owned())
        });
        Node {
            child,
            out,
            data,
            base,
        }
    }

    fn printed(&self) -> String {
        std::fs::read_to_string(&self.out).unwrap_or_default()
    }

    fn signal(&self, sig: &str) {
        let ok = Command::new("kill")
            .args([&format!("-{sig}"), &self.child.id().to_string()])
            .status()
            .expect("kill runs")
            .success();
        assert!(ok, "kill -{sig}");
    }

    fn kill(&mut self) {
        self.child.kill().expect("SIGKILL");
        let _ = self.child.wait();
    }
}

impl Drop for Node {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Polls `probe` every 50 ms, up to 60 s.
fn poll<T>(what: &str, mut probe: impl FnMut() -> Option<T>) -> T {
    for _ in 0..1200 {
        if let Some(t) = probe() {
            return t;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    panic!("gave up waiting for {what}");
}

/// How many live nodes hold partitions, by the database's clock.
fn owners(pg: &Postgres, db: &str) -> usize {
    pg.psql(
        db,
        "SELECT count(DISTINCT owner) FROM weft.partitions WHERE expires > now()",
    )
    .expect("psql")
    .parse()
    .expect("a number")
}

fn held_by(pg: &Postgres, db: &str, node: &str) -> usize {
    pg.psql(
        db,
        &format!("SELECT count(*) FROM weft.partitions WHERE owner = '{node}' AND expires > now()"),
    )
    .expect("psql")
    .parse()
    .expect("a number")
}

/// The workload's bindings: every call recorded; charge is slow enough to
/// be under way when a node dies, and fails once (so it retries on a
/// durable timer); one card number fails shipping, so its saga compensates.
fn bindings(s: &Sandbox, charge_ms: u64) -> String {
    let record = "    config: { simulate: { record: /log/calls.log } }";
    let charge = format!(
        "    config: {{ simulate: {{ record: /log/calls.log, retryable_times: 1, sleep_ms: {charge_ms} }} }}"
    );
    s.bindings(&[
        ("reserve_inventory", record),
        ("release_inventory", record),
        ("charge_payment", &charge),
        ("refund_payment", record),
        ("create_shipment", record),
        ("echo", record),
    ])
}

fn fixture(name: &str) -> String {
    root().join(name).display().to_string()
}

/// Deploys the saga and the waits into `data` (a directory, or a node's).
fn deploy_fixtures(s: &Sandbox, data: &str, charge_ms: u64) {
    let b = bindings(s, charge_ms);
    for process in ["tests/fixtures/saga.yaml", "tests/fixtures/waits.yaml"] {
        let out = run(&[
            "deploy",
            &fixture(process),
            "--bindings",
            &b,
            "--data",
            data,
        ]);
        assert_eq!(out.code, 0, "{}\n{}", out.stdout, out.stderr);
    }
}

/// Deploys the workload's processes through `node`.
fn deploy(s: &Sandbox, node: &Node, charge_ms: u64) {
    deploy_fixtures(s, &node.data, charge_ms);
    let out = run(&[
        "deploy",
        &fixture("examples/etl-fanout/process.yaml"),
        "--bindings",
        &fixture("examples/etl-fanout/bindings.yaml"),
        "--data",
        &node.data,
    ]);
    assert_eq!(out.code, 0, "{}\n{}", out.stdout, out.stderr);
}

/// Starts the workload, spread over `nodes`; the business keys of the
/// approvals, which wait for a signal.
fn start(nodes: &[&Node], sagas: usize) -> Vec<String> {
    let mut approvals = Vec::new();
    let post = |i: usize, process: &str, body: Value| {
        let n = nodes[i % nodes.len()];
        let r = http(
            "POST",
            &n.base,
            &format!("/v1/processes/{process}/instances"),
            body.to_string(),
            &[],
        );
        assert_eq!(r.status, 201, "start {process} on {}: {}", n.base, r.body);
    };
    for i in 0..sagas {
        // Card 4000... makes the shipment fail: that saga compensates.
        let card = if i % 5 == 4 { "4000" } else { "4242" };
        let input: Value = serde_json::from_str(&order_input(1, card)).expect("json");
        post(i, "saga", json!({ "input": input }));
    }
    for i in 0..6 {
        let key = format!("approval-{i}");
        post(
            i,
            "waits",
            json!({ "input": {"mode": "approval"}, "key": key }),
        );
        approvals.push(key);
    }
    for i in 0..3 {
        post(i, "waits", json!({ "input": {"mode": "nap"} }));
    }
    let files: Value = serde_json::from_str(
        &std::fs::read_to_string(fixture("examples/etl-fanout/input.json")).expect("input"),
    )
    .expect("json");
    for i in 0..2 {
        post(i, "etl-fanout", json!({ "input": files }));
    }
    approvals
}

/// Sends `approve` to each approval through `node`, which forwards it to
/// the node driving the instance; while ownership moves (its node died and
/// the lease has not run out) the answer is 503, and the signal is sent
/// again.
fn approve(node: &Node, keys: &[String]) {
    for key in keys {
        poll(&format!("{key} to take its signal"), || {
            let r = http(
                "POST",
                &node.base,
                &format!("/v1/instances/{key}/signals/approve"),
                "{}",
                &[],
            );
            match r.status {
                200 | 202 => Some(()),
                503 => None,
                // Not waiting yet (still in its first step).
                409 => None,
                other => panic!("signal {key}: {other} {}", r.body),
            }
        });
    }
}

fn instances(node: &Node) -> Vec<Value> {
    let r = http("GET", &node.base, "/v1/instances?limit=1000", "", &[]);
    assert_eq!(r.status, 200, "{}", r.body);
    r.json()["items"].as_array().expect("items").clone()
}

/// Waits until every instance has ended (or parked), read through `node`.
fn all_done(node: &Node, expected: usize) -> Vec<Value> {
    poll("every instance to end", || {
        let all = instances(node);
        let done = all.len() == expected
            && all
                .iter()
                .all(|i| !matches!(i["status"].as_str(), Some("running" | "waiting")));
        done.then_some(all)
    })
}

/// The checks every scenario ends with.
fn check(s: &Sandbox, node: &Node, all: &[Value]) {
    for inst in all {
        let id = inst["id"].as_str().expect("id");
        let status = inst["status"].as_str().expect("status");
        if status == "parked" {
            let full = http("GET", &node.base, &format!("/v1/instances/{id}"), "", &[]).json();
            assert!(
                full["parked"].is_object(),
                "{id} parked without a reason: {full}"
            );
        } else {
            assert!(
                matches!(status, "succeeded" | "failed" | "cancelled"),
                "{id} ended as {status}: {inst}"
            );
        }
        let h = http(
            "GET",
            &node.base,
            &format!("/v1/instances/{id}/history?limit=1000"),
            "",
            &[],
        );
        assert_eq!(h.status, 200, "{}", h.body);
        let records = h.json()["items"].as_array().expect("items").clone();
        for (i, r) in records.iter().enumerate() {
            assert_eq!(r["seq"], json!(i), "{id}: history has a gap at {i}");
        }
        // One outcome per step key: a step concluded twice (by two nodes,
        // or a timer fired twice) would show its key twice.
        let mut keys = BTreeSet::new();
        for r in records.iter().filter(|r| r["type"] == "transition") {
            if let Some(k) = r["key"].as_str() {
                assert!(keys.insert(k.to_owned()), "{id}: step {k} concluded twice");
            }
        }
        let started = records
            .iter()
            .filter(|r| r["type"] == "started" && r["branch"].is_null())
            .count();
        assert_eq!(started, 1, "{id}");
    }
    // Calls repeated only under the same idempotency key: a step (its key
    // without the visit number; no state of these processes is visited
    // twice) is called under one key, whether retried or run again after
    // a takeover. A step run anew after a crash would show a second visit.
    let mut keys: BTreeMap<(String, String), BTreeSet<String>> = BTreeMap::new();
    for line in s.calls() {
        let mut parts = line.split(' ');
        let (Some(action), Some(key)) = (parts.next(), parts.next()) else {
            continue;
        };
        let step = match key.rsplit_once('/') {
            Some((step, visit)) if visit.bytes().all(|b| b.is_ascii_digit()) => step,
            _ => key,
        };
        keys.entry((action.to_owned(), step.to_owned()))
            .or_default()
            .insert(key.to_owned());
    }
    for ((action, step), ks) in &keys {
        assert_eq!(
            ks.len(),
            1,
            "{action} for {step} was called under several keys: {ks:?}"
        );
    }
    // Every succeeded saga shipped, once per key.
    let shipped = keys.keys().filter(|(a, _)| a == "create_shipment").count();
    let sagas_ok = all
        .iter()
        .filter(|i| i["process"] == "saga" && i["status"] == "succeeded")
        .count();
    assert!(
        shipped >= sagas_ok,
        "{shipped} shipments for {sagas_ok} shipped sagas"
    );
}

fn expected(sagas: usize) -> usize {
    sagas + 6 + 3 + 2
}

/// A database, `names.len()` nodes sharing its partitions, and the
/// workload's processes deployed (charges taking `charge_ms`).
struct Cluster {
    pg: Postgres,
    db: &'static str,
    s: Sandbox,
    nodes: Vec<Node>,
}

impl Cluster {
    fn start(db: &'static str, names: &[&str], charge_ms: u64) -> Cluster {
        let pg = Postgres::start().expect("PostgreSQL starts");
        let url = pg.create_db(db).expect("createdb");
        let s = Sandbox::new();
        let nodes: Vec<Node> = names.iter().map(|n| Node::start(&s, &url, n)).collect();
        poll("the nodes to share the partitions", || {
            (owners(&pg, db) == names.len()).then_some(())
        });
        deploy(&s, &nodes[0], charge_ms);
        Cluster { pg, db, s, nodes }
    }

    /// Waits until `n` charges have been called: steps are under way.
    fn under_way(&self, n: usize) {
        weft_tests::wait_for_calls(&self.s, "charges under way", |calls| {
            calls
                .iter()
                .filter(|l| l.starts_with("charge_payment"))
                .count()
                >= n
        });
    }
}

#[test]
fn three_nodes_finish_everything_after_one_is_killed() {
    let mut c = Cluster::start("killed", &["a", "b", "c"], 400);
    let sagas = 15;
    let approvals = start(&c.nodes.iter().collect::<Vec<_>>(), sagas);
    // Killed while charges are under way.
    c.under_way(4);
    c.nodes[0].kill();
    approve(&c.nodes[1], &approvals);
    let all = all_done(&c.nodes[2], expected(sagas));
    check(&c.s, &c.nodes[1], &all);
    assert_eq!(held_by(&c.pg, c.db, "a"), 0);
    let (b, cc) = (c.nodes[1].printed(), c.nodes[2].printed());
    assert!(
        b.contains("partitions: took") || cc.contains("partitions: took"),
        "b or c took a's partitions:\n{b}\n{cc}"
    );
}

#[test]
fn a_node_paused_past_its_lease_commits_nothing_when_it_wakes() {
    let mut c = Cluster::start("paused", &["a", "b"], 1_500);
    let sagas = 10;
    let approvals = start(&c.nodes.iter().collect::<Vec<_>>(), sagas);
    c.under_way(3);
    let a = &mut c.nodes[0];
    a.signal("STOP");
    // Nothing more comes out of a while it is stopped.
    let before = a.printed().len();
    poll("b to take all of a's partitions", || {
        (held_by(&c.pg, c.db, "b") == 64).then_some(())
    });
    a.signal("CONT");
    // a finds out at its first round (or its first commit), and says so.
    poll("a to notice it lost its partitions", || {
        a.printed()[before..]
            .contains("partitions: took 0, lost")
            .then_some(())
    });
    // Stopped before it can be handed partitions again (that takes b's
    // next round and then a's).
    a.kill();
    let woke = a.printed()[before..].to_owned();
    for line in woke.lines() {
        assert!(
            !line.contains("-->") && !line.contains("succeeded in") && !line.contains("failed in"),
            "a committed after it woke without its partitions: {line}\n{woke}"
        );
    }
    let b = &c.nodes[1];
    approve(b, &approvals);
    let all = all_done(b, expected(sagas));
    check(&c.s, b, &all);
}

#[test]
fn two_nodes_reconnect_and_finish_after_postgres_restarts() {
    let c = Cluster::start("restart", &["a", "b"], 400);
    let sagas = 10;
    let approvals = start(&c.nodes.iter().collect::<Vec<_>>(), sagas);
    c.under_way(3);
    c.pg.restart().expect("PostgreSQL restarts");
    approve(&c.nodes[0], &approvals);
    let all = all_done(&c.nodes[1], expected(sagas));
    check(&c.s, &c.nodes[0], &all);
    assert_eq!(owners(&c.pg, c.db), 2, "both nodes kept going");
}

/// Everything in a store, as rows to compare.
fn dump_sled(dir: &std::path::Path) -> Vec<weft_store::transfer::Row> {
    let store = weft_store_sled::SledStore::open(&dir.join("db")).expect("opens");
    let rows = weft_store::transfer::dump(&store).expect("reads");
    store.close().expect("closes");
    rows
}

fn dump_pg(url: &str) -> Vec<weft_store::transfer::Row> {
    let store = weft_store_postgres::PgStore::connect(
        url,
        weft_store_postgres::Options {
            node: "dump".into(),
            keep_leases: false,
            ..weft_store_postgres::Options::default()
        },
    )
    .expect("connects");
    let rows = weft_store::transfer::dump(&store).expect("reads");
    store.release().expect("releases");
    rows
}

#[test]
fn a_copy_from_sled_to_postgres_and_back_keeps_everything_and_runs_on() {
    let pg = Postgres::start().expect("PostgreSQL starts");
    let url = pg.create_db("copy").expect("createdb");
    let s = Sandbox::new();
    let data = s.data();
    deploy_fixtures(&s, &data, 10);
    // Instances in every shape: ended (one through a retry on a timer),
    // waiting for a signal, waiting on a durable timer.
    let start = |process: &str, input: &str, key: Option<&str>| {
        let mut args = vec!["start", process, "--input", input, "--data", &data];
        if let Some(k) = key {
            args.extend(["--key", k]);
        }
        let out = run(&args);
        // 4: it waits (for a signal, or on a timer).
        assert!(matches!(out.code, 0 | 4), "{}\n{}", out.stdout, out.stderr);
    };
    start("saga", &order_input(1, "4242"), None);
    start("waits", r#"{"mode": "approval"}"#, Some("first"));
    start("waits", r#"{"mode": "approval"}"#, Some("second"));
    start("waits", r#"{"mode": "nap"}"#, None);
    let original = dump_sled(std::path::Path::new(&data));
    assert!(original.len() >= 8, "{original:#?}");

    let out = run(&["store", "copy", "--from", &data, "--to", &url]);
    assert_eq!(out.code, 0, "{}\n{}", out.stdout, out.stderr);
    assert!(out.stdout.contains("4 instances"), "{}", out.stdout);
    assert_eq!(dump_pg(&url), original, "sled → PostgreSQL keeps every row");

    let back = s.path("back");
    let back_s = back.display().to_string();
    let out = run(&["store", "copy", "--from", &url, "--to", &back_s]);
    assert_eq!(out.code, 0, "{}\n{}", out.stdout, out.stderr);
    assert_eq!(dump_sled(&back), original, "and back");

    // Into a store that is not empty: refused, nothing written.
    let out = run(&["store", "copy", "--from", &data, "--to", &url]);
    assert_ne!(out.code, 0);
    assert!(out.stderr.contains("not empty"), "{}", out.stderr);
    assert_eq!(dump_pg(&url), original);

    // Both copies run on: a signal to each finishes its instance.
    let out = run(&["signal", "first", "approve", "--data-dir", &back_s]);
    assert_eq!(out.code, 0, "{}\n{}", out.stdout, out.stderr);
    assert_eq!(
        weft_tests::status_of("first", &back_s)["status"],
        "succeeded"
    );
    let node = Node::start(&s, &url, "after-copy");
    approve(&node, &["second".to_owned()]);
    poll("the copied instance to finish on PostgreSQL", || {
        let r = http("GET", &node.base, "/v1/instances/second", "", &[]);
        (r.json()["status"] == "succeeded").then_some(())
    });
}

/// The PostgreSQL benchmarks at a small size: they run, and print their
/// figures.
#[test]
fn the_postgres_benchmarks_run_at_a_small_size() {
    let pg = Postgres::start().expect("PostgreSQL starts");
    let url = pg.create_db("bench_store").expect("createdb");
    let out = run(&[
        "bench",
        "store",
        "--store",
        &url,
        "--commits",
        "64",
        "--batches",
        "1,16",
    ]);
    assert_eq!(out.code, 0, "{}\n{}", out.stdout, out.stderr);
    for line in ["store sled batch=1 ", "store postgres batch=16 "] {
        assert!(out.stdout.contains(line), "{line}: {}", out.stdout);
    }
    let url = pg.create_db("bench_saga3").expect("createdb");
    let plugin = weft_tests::plugin("echo").display().to_string();
    let out = run(&[
        "bench", "http", "--n", "40", "--c", "4", "--store", &url, "--nodes", "2", "--plugin",
        &plugin,
    ]);
    assert_eq!(out.code, 0, "{}\n{}", out.stdout, out.stderr);
    assert!(
        out.stdout
            .contains("saga3 weft store=postgres nodes=2 n=40 c=4 wf_per_s="),
        "{}",
        out.stdout
    );
}

/// The component each attempt of `id` ran on, read through `node`.
fn ran_on(node: &Node, id: &str) -> Vec<String> {
    let h = http(
        "GET",
        &node.base,
        &format!("/v1/instances/{id}/history"),
        "",
        &[],
    );
    assert_eq!(h.status, 200, "{}", h.body);
    h.json()["items"]
        .as_array()
        .expect("items")
        .iter()
        .filter_map(|r| r["plugin"].as_str().map(str::to_owned))
        .collect()
}

/// Starts a `ping` on `node` and waits for it; what it ran on.
fn ping(node: &Node) -> Vec<String> {
    let r = http(
        "POST",
        &node.base,
        "/v1/processes/ping/instances",
        r#"{"input": {}, "wait": "20s"}"#,
        &[],
    );
    assert_eq!(r.status, 200, "{}", r.body);
    let id = r.json()["id"].as_str().expect("id").to_owned();
    ran_on(node, &id)
}

#[test]
fn a_swap_through_one_node_is_used_by_the_others() {
    let pg = Postgres::start().expect("PostgreSQL starts");
    let url = pg.create_db("swapped").expect("createdb");
    let s = Sandbox::new();
    let a = Node::start(&s, &url, "a");
    let b = Node::start(&s, &url, "b");
    poll("two nodes to share the partitions", || {
        (owners(&pg, "swapped") == 2).then_some(())
    });
    let bindings = s.bindings(&[]);
    let out = run(&[
        "deploy",
        &fixture("tests/fixtures/ping.yaml"),
        "--bindings",
        &bindings,
        "--data",
        &a.data,
    ]);
    assert_eq!(out.code, 0, "{}\n{}", out.stdout, out.stderr);
    let v1 = weft_runtime::sha256_hex(&std::fs::read(weft_tests::plugin("echo")).expect("echo"));
    assert_eq!(ping(&b), [v1], "b runs what was deployed");

    let v2_bytes = weft_tests::echo_variant("v2");
    let v2 = weft_runtime::sha256_hex(&v2_bytes);
    let file = s.write("echo-v2.wasm", "");
    std::fs::write(&file, &v2_bytes).expect("write");
    let out = run(&["plugin", "swap", "plugin:echo", &file, "--data", &a.data]);
    assert_eq!(out.code, 0, "{}\n{}", out.stdout, out.stderr);
    assert_eq!(
        ping(&a),
        std::slice::from_ref(&v2),
        "a runs the new build at once"
    );
    // b reads the newest bindings every second.
    poll("b to run the swapped build", || {
        (ping(&b) == [v2.clone()]).then_some(())
    });
    assert!(
        b.printed()
            .contains("bindings changed through another node"),
        "{}",
        b.printed()
    );
}
