//! `weft bench http`: the saga3 workload (`shared/bench/saga3.md`) against
//! a real `weft serve` child process on loopback. A process of three task
//! states, each one invocation of the `echo` component (its input mapping
//! computes the step's value, the component returns it, the engine records
//! it durably); C client workers, each on its own keep-alive connection,
//! start an instance with `wait` and check its result, N in all. Prints
//! `saga3 weft n=<N> c=<C> wf_per_s=<f> p50_ms=<f> p99_ms=<f> rss_mb=<f>`.

use std::io::BufRead;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use anyhow::{Context, bail};
use clap::Args;
use http_body_util::{BodyExt, Full};
use hyper::Request;
use hyper::body::Bytes;
use hyper_util::rt::TokioIo;
use serde_json::{Value, json};

use super::bench::now;
use crate::{exit, render};

#[derive(Debug, Clone, Args)]
pub struct HttpArgs {
    /// Instances to run (N).
    #[arg(long, default_value_t = 2_000)]
    pub n: usize,
    /// Client workers, each waiting for its instance before the next (C).
    #[arg(long, default_value_t = 32)]
    pub c: usize,
    /// Unmeasured instances run first on the same server.
    #[arg(long, default_value_t = 0)]
    pub warmup: usize,
    /// The echo plugin component.
    #[arg(
        long,
        default_value = "plugins/target/wasm32-wasip2/release/weft_echo.wasm"
    )]
    pub plugin: PathBuf,
    /// Run the nodes on this PostgreSQL database (`postgres://...`, a
    /// database of its own) instead of one node on an embedded store.
    #[arg(long = "store", value_name = "URL")]
    pub url: Option<String>,
    /// Nodes on the PostgreSQL store; client workers are spread over them.
    #[arg(long, default_value_t = 1, requires = "url")]
    pub nodes: usize,
}

const SAGA3: &str = r#"
process: saga3
version: 1
start: step1
states:
  step1: { action: echo, input: '{step: 1, v: (.n + 1)}', output: .a, on: { done: step2 } }
  step2: { action: echo, input: '{step: 2, v: (.a.v * 2)}', output: .b, on: { done: step3 } }
  step3: { action: echo, input: '{step: 3, v: (.b.v + 3)}', output: .c, on: { done: done } }
  done:
    type: succeed
    output: '{id: .id, steps: [.a.v, .b.v, .c.v], result: .c.v}'
"#;

/// The server child; killed if the bench stops early.
struct Served(Child);

impl Drop for Served {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

pub async fn http(args: HttpArgs) -> anyhow::Result<u8> {
    if !args.plugin.exists() {
        bail!(
            "{} does not exist: build the plugins first (make plugins)",
            args.plugin.display()
        );
    }
    if args.n == 0 || args.c == 0 {
        bail!("--n and --c must be at least 1");
    }
    let scratch = std::env::temp_dir().join(format!("weft-saga3-{}", std::process::id()));
    std::fs::create_dir_all(&scratch)
        .with_context(|| format!("cannot create {}", scratch.display()))?;
    let outcome = measure(&args, &scratch).await;
    let _ = std::fs::remove_dir_all(&scratch);
    let (secs, mut latencies, rss) = outcome?;
    latencies.sort_by(f64::total_cmp);
    let rank = |p: f64| {
        let i = ((p * latencies.len() as f64).ceil() as usize).clamp(1, latencies.len());
        latencies[i - 1]
    };
    let store = match &args.url {
        Some(_) => format!(" store=postgres nodes={}", args.nodes),
        None => " store=sled nodes=1".to_owned(),
    };
    render::say(format_args!(
        "saga3 weft{store} n={} c={} wf_per_s={:.1} p50_ms={:.2} p99_ms={:.2} rss_mb={:.1}",
        args.n,
        args.c,
        args.n as f64 / secs,
        rank(0.50),
        rank(0.99),
        rss
    ));
    Ok(exit::OK)
}

async fn measure(args: &HttpArgs, scratch: &Path) -> anyhow::Result<(f64, Vec<f64>, f64)> {
    let me = std::env::current_exe().context("cannot find the weft binary")?;
    let process = scratch.join("saga3.yaml");
    std::fs::write(&process, SAGA3)?;
    let bindings = scratch.join("bindings.yaml");
    std::fs::write(&bindings, super::bench::echo_bindings(&args.plugin)?)?;
    let deploy = |data: &Path| -> anyhow::Result<()> {
        let deployed = Command::new(&me)
            .arg("deploy")
            .arg(&process)
            .arg("--bindings")
            .arg(&bindings)
            .arg("--data")
            .arg(data)
            .stdout(Stdio::null())
            .status()?;
        if !deployed.success() {
            bail!("weft deploy failed ({deployed})");
        }
        Ok(())
    };
    let nodes = if args.url.is_some() {
        args.nodes.max(1)
    } else {
        1
    };
    let data = |i: usize| scratch.join(format!("node-{i}"));
    if args.url.is_none() {
        deploy(&data(0))?;
    }
    let (said, heard) = std::sync::mpsc::channel::<(usize, String)>();
    let mut servers = Vec::new();
    for i in 0..nodes {
        let mut cmd = Command::new(&me);
        cmd.arg("serve")
            .arg("--data")
            .arg(data(i))
            .args(["--listen", "127.0.0.1:0"])
            .env_remove("RUST_BACKTRACE")
            .stdout(Stdio::piped());
        if let Some(url) = &args.url {
            cmd.args(["--store", url, "--node", &format!("bench-{i}")]);
            cmd.args(["--lease-ttl", "3s"]);
        }
        let mut child = cmd.spawn().context("cannot start weft serve")?;
        let stdout = child.stdout.take().context("no stdout")?;
        servers.push(Served(child));
        // Read to the end (the pipe must not fill); the lines that matter
        // here are passed on.
        let said = said.clone();
        std::thread::spawn(move || {
            for line in std::io::BufReader::new(stdout)
                .lines()
                .map_while(Result::ok)
            {
                if line.starts_with("serving") || line.starts_with("partitions:") {
                    let _ = said.send((i, line));
                }
            }
        });
    }
    drop(said);
    // Each node's address, and (with several) until every node holds
    // some partitions: what it holds is in its `serving` line and in each
    // `partitions:` line after.
    let mut authorities = vec![String::new(); nodes];
    let mut holds = vec![0usize; nodes];
    while authorities.iter().any(String::is_empty) || holds.contains(&0) {
        let Ok((i, line)) = heard.recv() else {
            bail!("a weft serve stopped before it served");
        };
        if let Some(url) = line
            .split_whitespace()
            .find_map(|w| w.strip_prefix("http://"))
        {
            authorities[i] = url.trim_end_matches(':').to_owned();
        }
        let words: Vec<&str> = line.split_whitespace().collect();
        for (k, w) in words.iter().enumerate() {
            let n = match (*w, words.get(k + 1)) {
                ("holds", Some(n)) => n.trim_end_matches(';').parse().ok(),
                ("of", _) if k > 0 => words[k - 1].trim_start_matches('(').parse().ok(),
                _ => None,
            };
            if let Some(n) = n {
                holds[i] = n;
            }
        }
        if args.url.is_none() {
            holds[i] = holds[i].max(1);
        }
    }
    if args.url.is_some() {
        deploy(&data(0))?;
    }

    if args.warmup > 0 {
        run_clients(&authorities, args.c, 0, args.warmup, "warm").await?;
    }
    let started = now();
    let latencies = run_clients(&authorities, args.c, args.warmup, args.n, "run").await?;
    let secs = started.elapsed().as_secs_f64();
    // Peak resident memory (VmHWM) of the servers, together.
    let rss = servers
        .iter()
        .map(|s| super::bench::status_mb(&s.0.id().to_string(), "VmHWM:"))
        .sum();
    Ok((secs, latencies, rss))
}

/// `c` workers on keep-alive connections (spread over the nodes); instance `i` (from `first`) gets
/// input `{id, n: i}` and must end with `result == (i+1)*2+3`.
async fn run_clients(
    authorities: &[String],
    c: usize,
    first: usize,
    n: usize,
    tag: &'static str,
) -> anyhow::Result<Vec<f64>> {
    let next = Arc::new(AtomicUsize::new(0));
    let mut workers = tokio::task::JoinSet::new();
    for w in 0..c {
        let next = next.clone();
        let authority = authorities[w % authorities.len()].clone();
        workers.spawn(async move {
            let stream = tokio::net::TcpStream::connect(&authority).await?;
            stream.set_nodelay(true)?;
            let (mut sender, conn) =
                hyper::client::conn::http1::handshake(TokioIo::new(stream)).await?;
            tokio::spawn(async move {
                let _ = conn.await;
            });
            let mut latencies = Vec::new();
            loop {
                let k = next.fetch_add(1, Ordering::Relaxed);
                if k >= n {
                    break;
                }
                let i = first + k;
                let body = json!({ "input": { "id": format!("{tag}-{i}"), "n": i } });
                let req = Request::post("/v1/processes/saga3/instances?wait=30s")
                    .header(hyper::header::HOST, &authority)
                    .header(hyper::header::CONTENT_TYPE, "application/json")
                    .body(Full::new(Bytes::from(serde_json::to_vec(&body)?)))?;
                let t = now();
                sender.ready().await?;
                let resp = sender.send_request(req).await?;
                let status = resp.status();
                let bytes = resp.into_body().collect().await?.to_bytes();
                latencies.push(t.elapsed().as_secs_f64() * 1e3);
                let v: Value = serde_json::from_slice(&bytes).unwrap_or(Value::Null);
                let want = (i as u64 + 1) * 2 + 3;
                if status != 200 || v["status"] != "succeeded" || v["output"]["result"] != want {
                    bail!("instance {i}: expected result {want}, got {status} {v}");
                }
            }
            Ok::<_, anyhow::Error>(latencies)
        });
    }
    let mut all = Vec::with_capacity(n);
    while let Some(done) = workers.join_next().await {
        all.extend(done??);
    }
    Ok(all)
}
