//! One invocation: a fresh `Store` from the plugin's `InstancePre`, the
//! binding's grants and limits, and the outcome mapped to a `StepOutcome`.

use std::sync::Arc;
use std::time::Duration;

use serde_json::Value;
use wasmtime::{Store, Trap, UpdateDeadline};
use wasmtime_wasi::p2::pipe::MemoryOutputPipe;
use wasmtime_wasi::{FsPerms, WasiCtx, WasiCtxBuilder};
use weft_model::{Failure, Grants, Manifest, Span, StepOutcome};

use crate::bindings::weft::plugin::types as wit;
use crate::bindings::{AdapterPre, Failure as WitFailure, Invocation, Outcome};
use crate::host::{HeartbeatSink, HostState, MAX_REQUESTS, Refused};
use crate::{Error, Plugin, Runtime};

/// How much of a plugin's stderr is kept to explain a trap.
const STDERR_KEPT: usize = 4096;
/// How long `describe` may take.
const DESCRIBE_TIMEOUT: Duration = Duration::from_secs(10);

/// One call of one action.
pub struct Call<'a> {
    /// The plugin's own name for the action.
    pub action: &'a str,
    pub input: &'a Value,
    pub config: &'a Value,
    pub instance_id: &'a str,
    pub key: &'a str,
    pub attempt: u32,
    pub last_heartbeat: Option<String>,
    pub timeout: Span,
    pub memory: u64,
    /// Largest result, in bytes.
    pub max_output: u64,
    /// Instructions the attempt may execute, if limited.
    pub fuel: Option<u64>,
    pub grants: &'a Grants,
    pub heartbeat: Option<HeartbeatSink>,
}

impl Runtime {
    /// Runs one invocation. Never fails: every problem is a `Failed` outcome.
    pub async fn invoke(&self, plugin: &Plugin, call: Call<'_>) -> StepOutcome {
        let Ok(_slot) = self.slots.clone().acquire_owned().await else {
            return StepOutcome::Failed {
                failure: Failure::new("adapter", "the runtime is shutting down"),
            };
        };
        let stderr = MemoryOutputPipe::new(STDERR_KEPT);
        let wasi = match wasi_ctx(call.grants, &stderr) {
            Ok(w) => w,
            Err(failure) => return StepOutcome::Failed { failure },
        };
        let inv = Invocation {
            action: call.action.to_owned(),
            input: call.input.to_string(),
            config: call.config.to_string(),
            instance_id: call.instance_id.to_owned(),
            idempotency_key: call.key.to_owned(),
            attempt: call.attempt,
            last_heartbeat: call.last_heartbeat,
        };
        let mut state =
            HostState::new(wasi, call.memory as usize, plugin.name.clone(), call.grants);
        state.instance = call.instance_id.to_owned();
        state.heartbeat = call.heartbeat;
        let timeout = call.timeout.as_std();
        let mut store = self.store(state, timeout, call.fuel);
        let pre = &plugin.pre;
        let run = async move {
            let result = async {
                let adapter = pre.instantiate_async(&mut store).await?;
                adapter.call_invoke(&mut store, &inv).await
            }
            .await;
            let data = store.data_mut();
            let after = Guest {
                memory_hit: data.memory.hit,
                refused: data.outbound.refused.take(),
                retry_after: data.retry_after,
            };
            (result, after)
        };
        // The epoch deadline stops a guest that computes; this stops one that
        // waits inside a host call (a sleep) past its time.
        let grace = self.options.epoch_tick * 2;
        let outcome = match tokio::time::timeout(timeout + grace, run).await {
            Err(_) => Err(Failure::new(
                "timeout",
                format!("did not finish within {}", call.timeout),
            )),
            Ok((
                _,
                Guest {
                    refused: Some(why), ..
                },
            )) => Err(refusal(why)),
            Ok((Ok(answer), after)) => self
                .answer(answer, call.max_output)
                .map_err(|f| after.asked(f)),
            Ok((Err(e), after)) => Err(classify(&e, after.memory_hit, call.timeout, &stderr)),
        };
        match outcome {
            Ok(o) => o,
            Err(failure) => StepOutcome::Failed { failure },
        }
    }

    fn store(&self, state: HostState, timeout: Duration, fuel: Option<u64>) -> Store<HostState> {
        let mut store = Store::new(&self.engine, state);
        store.limiter(|s| &mut s.memory);
        // Fails only when the engine does not meter fuel, and it always does.
        if let Err(e) = store.set_fuel(fuel.unwrap_or(u64::MAX)) {
            tracing::error!("cannot set an invocation's fuel: {e:#}");
        }
        let tick = self.options.epoch_tick.as_millis().max(1);
        let mut ticks_left = (timeout.as_millis() / tick).max(1) as u64;
        store.set_epoch_deadline(1);
        store.epoch_deadline_callback(move |_| {
            ticks_left = ticks_left.saturating_sub(1);
            Ok(if ticks_left == 0 {
                UpdateDeadline::Interrupt
            } else {
                // Yield each tick so a busy guest shares its worker thread.
                UpdateDeadline::Yield(1)
            })
        });
        store
    }

    fn answer(
        &self,
        answer: Result<Outcome, WitFailure>,
        max_output: u64,
    ) -> Result<StepOutcome, Failure> {
        match answer {
            Ok(Outcome::Done(text)) => {
                if text.len() as u64 > max_output {
                    return Err(Failure::new(
                        "output_too_large",
                        format!(
                            "the result is {} bytes, more than the {max_output} its binding allows (max_output)",
                            text.len(),
                        ),
                    ));
                }
                serde_json::from_str(&text)
                    .map(|output| StepOutcome::Done { output })
                    .map_err(|e| Failure::new("adapter", format!("the result is not JSON: {e}")))
            }
            Ok(Outcome::Pending(token)) if token.is_empty() => Err(Failure::new(
                "adapter",
                "answered pending with an empty completion token",
            )),
            Ok(Outcome::Pending(token)) => Ok(StepOutcome::Pending { token }),
            Err(WitFailure::Retryable(m)) => Err(Failure::new("retryable", m)),
            Err(WitFailure::Fatal(m)) => Err(Failure::new("fatal", m)),
            Err(WitFailure::Error(wit::TypedError { kind, message })) => {
                if weft_model::validate::valid_kind(&kind) {
                    Err(Failure::new(kind, message))
                } else {
                    Err(Failure::new(
                        "adapter",
                        format!("failed with an unusable error kind {kind:?}: {message}"),
                    ))
                }
            }
        }
    }
}

/// What the host saw of a guest during one invocation.
struct Guest {
    memory_hit: bool,
    /// The first request the host refused.
    refused: Option<Refused>,
    retry_after: Option<u64>,
}

impl Guest {
    /// A failure the guest answered, with the delay it asked for before the
    /// next attempt.
    fn asked(&self, failure: Failure) -> Failure {
        match self.retry_after {
            Some(ms) => failure.retry_after(Span(ms)),
            None => failure,
        }
    }
}

fn refusal(why: Refused) -> Failure {
    match why {
        Refused::Host(host) => Failure::new(
            "capability_denied",
            format!("a request to {host} was refused: it is not in the binding's allow_hosts"),
        ),
        Refused::Credentials => Failure::new(
            "capability_denied",
            "a request with credentials in its URL (user@host) was refused: send them in a header",
        ),
        Refused::TooMany => Failure::new(
            "limit",
            format!("more than {MAX_REQUESTS} HTTP requests in one attempt"),
        ),
    }
}

fn classify(
    e: &wasmtime::Error,
    memory_hit: bool,
    timeout: Span,
    stderr: &MemoryOutputPipe,
) -> Failure {
    if memory_hit {
        return Failure::new("out_of_memory", format!("{e:#}"));
    }
    match e.downcast_ref::<Trap>() {
        Some(Trap::Interrupt) => {
            Failure::new("timeout", format!("did not finish within {timeout}"))
        }
        Some(Trap::OutOfFuel) => Failure::new(
            "out_of_fuel",
            "ran out of fuel: it executed more instructions than its binding's `fuel` allows",
        ),
        Some(Trap::StackOverflow) => {
            Failure::new("trap", "stack overflow: the adapter recursed too deeply")
        }
        Some(trap) => {
            let said = panic_message(&stderr.contents());
            if said.is_empty() {
                Failure::new("trap", trap.to_string())
            } else {
                Failure::new("trap", format!("{trap}: {said}"))
            }
        }
        None if e
            .downcast_ref::<wasmtime::PoolConcurrencyLimitError>()
            .is_some() =>
        {
            Failure::new(
                "limit",
                format!("the engine's instance pool is full: {e:#}"),
            )
        }
        None => Failure::new("trap", format!("{e:#}")),
    }
}

/// What a guest wrote to stderr before trapping, on one line: for a Rust
/// guest, where it panicked and why.
fn panic_message(stderr: &[u8]) -> String {
    let text = String::from_utf8_lossy(stderr);
    let lines: Vec<&str> = text
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with("note: run with `RUST_BACKTRACE"))
        .collect();
    let joined = lines.join(" ");
    // "thread '<unnamed>' (1) panicked at src/lib.rs:5:9: why" → from "panicked".
    match (joined.starts_with("thread '"), joined.find("panicked at ")) {
        (true, Some(i)) => joined[i..].to_owned(),
        _ => joined,
    }
}

fn wasi_ctx(grants: &Grants, stderr: &MemoryOutputPipe) -> Result<WasiCtx, Failure> {
    let mut b = WasiCtxBuilder::new();
    b.stderr(stderr.clone());
    for (guest, host) in &grants.dirs {
        b.preopened_dir(host, guest, FsPerms::ReadWrite)
            .map_err(|e| {
                Failure::new(
                    "adapter",
                    format!("cannot grant {} as {guest}: {e:#}", host.display()),
                )
            })?;
    }
    for (k, v) in &grants.env {
        b.env(k, v);
    }
    Ok(b.build())
}

/// Calls `describe` once, in a store of its own.
pub(crate) async fn describe(
    rt: &Runtime,
    pre: &AdapterPre<HostState>,
    name: &Arc<str>,
    memory: u64,
) -> Result<Manifest, Error> {
    let err = |source| Error::Describe {
        name: name.to_string(),
        source,
    };
    let stderr = MemoryOutputPipe::new(STDERR_KEPT);
    let none = Grants::default();
    let wasi = wasi_ctx(&none, &stderr).map_err(|f| err(wasmtime::format_err!("{f}")))?;
    let state = HostState::new(wasi, memory as usize, name.clone(), &none);
    let mut store = rt.store(state, DESCRIBE_TIMEOUT, None);
    let run = async {
        let adapter = pre.instantiate_async(&mut store).await?;
        adapter.call_describe(&mut store).await
    };
    let m = match tokio::time::timeout(DESCRIBE_TIMEOUT, run).await {
        Err(_) => return Err(err(wasmtime::format_err!("did not answer within 10s"))),
        Ok(r) => r.map_err(err)?,
    };
    Ok(Manifest {
        name: m.name,
        version: m.version,
        actions: m
            .actions
            .into_iter()
            .map(|a| weft_model::ActionInfo {
                name: a.name,
                idempotent: a.idempotent,
                compensated_by: a.compensated_by,
                errors: a.errors,
            })
            .collect(),
    })
}
