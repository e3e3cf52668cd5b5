//! A simulated world for engine tests: a simulated clock, the in-memory
//! store, and an invoker whose actions follow scripts and which records every
//! call with the (simulated) time it started.

#![allow(dead_code)]

pub mod flaky;

use std::collections::HashMap;
use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use serde_json::{Value, json};
use weft_core::{Clock, Engine, EngineOptions, HeartbeatSink, InvokeFuture, Invoker, SimClock};
use weft_model::source::{Format, load};
use weft_model::{Bindings, Failure, Instance, InstanceId, Invoke, Millis, Span, StepOutcome};
use weft_store::{Deploy, Deployment, MemStore, ProcessRecord, Store};

pub const T0: Millis = Millis(1_000_000);

pub type Script =
    Arc<dyn Fn(Ctx) -> Pin<Box<dyn Future<Output = StepOutcome> + Send>> + Send + Sync>;

/// What a script sees of its call.
#[derive(Clone)]
pub struct Ctx {
    pub inv: Invoke,
    pub clock: Arc<SimClock>,
    pub heartbeat: HeartbeatSink,
    /// How many times this action has been called before, in all.
    pub nth: usize,
    /// The sha256 of the component the engine routed the call to.
    pub component: String,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Call {
    pub action: String,
    pub key: String,
    pub attempt: u32,
    pub at: Millis,
    pub last_heartbeat: Option<String>,
    pub component: String,
}

#[derive(Default)]
pub struct Scripted {
    clock: Arc<SimClock>,
    scripts: Mutex<HashMap<String, Script>>,
    pub calls: Mutex<Vec<Call>>,
    pub running: AtomicUsize,
    pub max_running: Mutex<HashMap<String, usize>>,
    per_action: Mutex<HashMap<String, usize>>,
    pub dropped: AtomicUsize,
    /// The bindings revision each call ran with, in call order.
    pub revisions: Mutex<Vec<u32>>,
    /// What each component (by sha256) says about itself, when a test
    /// says.
    pub manifests: Mutex<HashMap<String, weft_model::Manifest>>,
}

struct Running<'a>(&'a Scripted, String, bool);
impl Drop for Running<'_> {
    fn drop(&mut self) {
        self.0.running.fetch_sub(1, Ordering::SeqCst);
        let mut per = self.0.per_action.lock().expect("lock");
        *per.entry(self.1.clone()).or_default() -= 1;
        if !self.2 {
            self.0.dropped.fetch_add(1, Ordering::SeqCst);
        }
    }
}

impl Invoker for Scripted {
    fn manifest(&self, sha256: &str) -> Option<weft_model::Manifest> {
        self.manifests.lock().expect("lock").get(sha256).cloned()
    }

    fn invoke<'a>(
        &'a self,
        deployment: &'a Deployment,
        inv: &'a Invoke,
        component: &'a str,
        heartbeat: HeartbeatSink,
    ) -> InvokeFuture<'a> {
        self.revisions
            .lock()
            .expect("lock")
            .push(deployment.revision);
        Box::pin(async move {
            let nth = {
                let mut calls = self.calls.lock().expect("lock");
                let nth = calls.iter().filter(|c| c.action == inv.action).count();
                calls.push(Call {
                    action: inv.action.clone(),
                    key: inv.key.clone(),
                    attempt: inv.attempt,
                    at: self.clock.now(),
                    last_heartbeat: inv.last_heartbeat.clone(),
                    component: component.to_owned(),
                });
                nth
            };
            self.running.fetch_add(1, Ordering::SeqCst);
            {
                let mut per = self.per_action.lock().expect("lock");
                let n = per.entry(inv.action.clone()).or_default();
                *n += 1;
                let mut max = self.max_running.lock().expect("lock");
                let m = max.entry(inv.action.clone()).or_default();
                *m = (*m).max(*n);
            }
            let mut guard = Running(self, inv.action.clone(), false);
            let script = self.scripts.lock().expect("lock").get(&inv.action).cloned();
            let out = match script {
                Some(s) => {
                    s(Ctx {
                        inv: inv.clone(),
                        clock: self.clock.clone(),
                        heartbeat,
                        nth,
                        component: component.to_owned(),
                    })
                    .await
                }
                None => StepOutcome::Done {
                    output: json!({"by": inv.action}),
                },
            };
            guard.2 = true;
            out
        })
    }
}

impl Scripted {
    pub fn calls_of(&self, action: &str) -> Vec<Call> {
        self.calls
            .lock()
            .expect("lock")
            .iter()
            .filter(|c| c.action == action)
            .cloned()
            .collect()
    }
    pub fn max_running(&self, action: &str) -> usize {
        self.max_running
            .lock()
            .expect("lock")
            .get(action)
            .copied()
            .unwrap_or(0)
    }
}

pub fn done(v: Value) -> StepOutcome {
    StepOutcome::Done { output: v }
}

pub fn failed(kind: &str) -> StepOutcome {
    StepOutcome::Failed {
        failure: Failure::new(kind, format!("scripted {kind}")),
    }
}

/// A script from a plain function of the context.
pub fn script<F>(f: F) -> Script
where
    F: Fn(&Ctx) -> StepOutcome + Send + Sync + 'static,
{
    Arc::new(move |ctx| {
        let out = f(&ctx);
        Box::pin(async move { out })
    })
}

/// A script that takes `ms` of (simulated) time, then answers.
pub fn slow(ms: u64, out: StepOutcome) -> Script {
    Arc::new(move |ctx| {
        let out = out.clone();
        Box::pin(async move {
            let until = ctx.clock.now().plus(Span(ms));
            ctx.clock.sleep_until(until).await;
            out
        })
    })
}

pub struct Sim {
    pub clock: Arc<SimClock>,
    pub store: Arc<dyn Store>,
    pub invoker: Arc<Scripted>,
    pub engine: Engine,
    /// The bindings every deploy of this world carries.
    pub bindings: Bindings,
    /// For a durable store: closes nothing itself, opens the store again
    /// (a reboot then really reopens it, as after a crash).
    reopen: Option<Reopen>,
}

pub type Reopen = Arc<dyn Fn() -> Arc<dyn Store> + Send + Sync>;

/// Bindings from YAML (plugin paths unused); empty text binds nothing.
pub fn parse_bindings(text: &str) -> Bindings {
    if text.trim().is_empty() {
        return Bindings {
            plugins: Default::default(),
            actions: Default::default(),
        };
    }
    let bdoc = load("b.yaml", text, Format::Yaml).expect("bindings load");
    weft_model::bindings::bindings(&bdoc, std::path::Path::new("/"))
        .unwrap_or_else(|d| panic!("{d}"))
}

/// Stores a process version with bindings, straight into the store (the
/// scripted invoker needs no plugins, so none are checked; each plugin's
/// component is named `sha-<plugin>`).
pub fn deploy_into(store: &dyn Store, process: &str, bindings: &Bindings, at: Millis) -> u32 {
    let doc = load("p.yaml", process, Format::Yaml).expect("process loads");
    let p = weft_model::validate::process(&doc).unwrap_or_else(|d| panic!("{d}"));
    store
        .deploy(&Deploy {
            process: ProcessRecord {
                name: p.name.clone(),
                version: p.version,
                definition: p.definition.clone(),
                deployed_at: at,
            },
            bindings: bindings.clone(),
            plugins: bindings
                .plugins
                .keys()
                .map(|name| weft_store::PluginBlob {
                    name: name.clone(),
                    sha256: format!("sha-{name}"),
                    bytes: Arc::from(&b"component"[..]),
                })
                .collect(),
        })
        .expect("io")
        .expect("deploys")
        .revision
}

impl Sim {
    /// A world with `process` deployed and `bindings` (YAML, plugin paths
    /// unused) in force.
    pub fn new(process: &str, bindings: &str) -> Sim {
        Sim::on_store(process, bindings, Arc::new(MemStore::new()))
    }

    /// A world on a store of the test's choosing.
    pub fn on_store(process: &str, bindings: &str, store: Arc<dyn Store>) -> Sim {
        let clock = Arc::new(SimClock::new(T0));
        let bindings = parse_bindings(bindings);
        deploy_into(&*store, process, &bindings, T0);
        let invoker = Arc::new(Scripted {
            clock: clock.clone(),
            ..Default::default()
        });
        let engine = Engine::new(
            store.clone(),
            invoker.clone(),
            clock.clone(),
            EngineOptions::default(),
        );
        Sim {
            clock,
            store,
            invoker,
            engine,
            bindings,
            reopen: None,
        }
    }

    /// A world on a sled store in `dir`; each reboot closes and reopens it.
    pub fn on_sled(process: &str, bindings: &str, dir: &std::path::Path) -> Sim {
        let path = dir.to_owned();
        let reopen: Reopen = Arc::new(move || {
            let store = weft_store_sled::SledStore::open_patiently(
                &path,
                std::time::Duration::from_secs(10),
            )
            .expect("sled opens");
            Arc::new(store)
        });
        let mut sim = Sim::on_store(process, bindings, reopen());
        sim.reopen = Some(reopen);
        sim
    }

    /// Deploys another process or version into the same store, with this
    /// world's bindings.
    pub fn deploy(&self, process: &str) {
        deploy_into(&*self.store, process, &self.bindings, self.clock.now());
    }

    pub fn on(&self, action: &str, script: Script) {
        self.invoker
            .scripts
            .lock()
            .expect("lock")
            .insert(action.to_owned(), script);
    }

    pub async fn start(&self, input: Value) -> InstanceId {
        let name = self.store.processes().expect("io")[0].name.clone();
        let id = self.engine.start(&name, None, input).await.expect("starts");
        self.engine.settle().await;
        id
    }

    /// Moves simulated time on by `ms` and lets the engine catch up.
    pub async fn advance(&self, ms: u64) {
        self.engine.settle().await;
        self.clock.advance(Span(ms));
        self.engine.settle().await;
    }

    /// Moves time in `step` ms increments until `until` ms have passed.
    pub async fn run_for(&self, until: u64, step: u64) {
        let mut t = 0;
        while t < until {
            self.advance(step).await;
            t += step;
        }
    }

    pub fn instance(&self, id: &InstanceId) -> Instance {
        self.store.instance(id).expect("io").expect("exists")
    }

    /// Simulated milliseconds since the start.
    pub fn since_t0(at: Millis) -> u64 {
        at.since(T0).as_millis()
    }

    /// Drops this engine (as a crash would) and starts a new one on the same
    /// store, which then resumes.
    pub async fn reboot(&mut self) {
        match self.reopen.clone() {
            None => self.engine.shutdown().await,
            Some(reopen) => {
                // Every handle to the store goes, then it is opened anew.
                let placeholder = Engine::new(
                    Arc::new(MemStore::new()),
                    self.invoker.clone(),
                    self.clock.clone(),
                    EngineOptions {
                        offline: true,
                        ..EngineOptions::default()
                    },
                );
                std::mem::replace(&mut self.engine, placeholder)
                    .close()
                    .await;
                self.store = Arc::new(MemStore::new());
                self.store = reopen();
            }
        }
        self.engine = Engine::new(
            self.store.clone(),
            self.invoker.clone(),
            self.clock.clone(),
            EngineOptions::default(),
        );
        self.engine.resume().await.expect("resumes");
    }
}

pub fn store_of(sim: &Sim) -> Arc<dyn Store> {
    sim.store.clone()
}
