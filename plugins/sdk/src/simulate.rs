//! Behaviour knobs for demos and tests: make an adapter slow, flaky, failing,
//! trapping or looping, driven by a `simulate` object in the binding's config or
//! in the step's input (input wins, key by key).
//!
//! ```yaml
//! simulate:
//!   record: /log/calls.log  # append "<action> <key> <attempt>" (needs a granted dir)
//!   sleep_ms: 2000          # run slowly
//!   heartbeat: true         # heartbeat while sleeping
//!   retryable_times: 2      # attempts 1 and 2 fail retryably
//!   retry_after_ms: 3000    # ... and ask for the next attempt in 3s
//!   fail: card_declined     # fail with this error kind
//!   fatal: "no such card"   # fail fatally
//!   pending: true           # answer pending; the token is derived from the key
//!                           # (or give the token itself: `pending: tok-1`)
//!   trap: true              # panic (the engine sees a trap)
//!   spin: true              # loop forever (the engine's deadline stops it)
//!   recurse: true           # recurse without end (the stack overflows)
//!   alloc_mb: 512           # grow memory until the engine's cap stops it
//!   output_kb: 2048         # answer a result this large
//!   secret_len: API_KEY     # answer how long the secret API_KEY is (never its value)
//! ```
//!
//! An adapter opts in by calling [`apply`] first thing in `invoke`.

use crate::{Call, Failure, Reply, Value};
use std::io::Write as _;

/// Runs the knobs set for this call. `Ok(None)` means "carry on with the real
/// work"; anything else is the answer to give.
pub fn apply(call: &Call) -> Result<Option<Reply>, Failure> {
    let knob = |name: &str| -> Option<&Value> {
        [&call.input, &call.config]
            .into_iter()
            .find_map(|v| v.get("simulate")?.get(name))
    };

    if let Some(path) = knob("record").and_then(Value::as_str) {
        record(path, call)?;
    }
    if let Some(ms) = knob("sleep_ms").and_then(Value::as_u64) {
        let beat = knob("heartbeat").and_then(Value::as_bool).unwrap_or(false);
        sleep(ms, beat);
    }
    if let Some(n) = knob("retryable_times").and_then(Value::as_u64)
        && u64::from(call.attempt) <= n
    {
        if let Some(ms) = knob("retry_after_ms").and_then(Value::as_u64) {
            crate::retry_after(ms);
        }
        return Err(Failure::retryable(format!(
            "simulated transient failure {} of {n}",
            call.attempt
        )));
    }
    if let Some(kind) = knob("fail").and_then(Value::as_str) {
        return Err(Failure::error(kind, format!("simulated {kind}")));
    }
    if let Some(message) = knob("fatal").and_then(Value::as_str) {
        return Err(Failure::fatal(message));
    }
    if knob("trap").and_then(Value::as_bool) == Some(true) {
        panic!("simulated trap in {}", call.action);
    }
    if knob("spin").and_then(Value::as_bool) == Some(true) {
        spin();
    }
    if knob("recurse").and_then(Value::as_bool) == Some(true) {
        std::hint::black_box(recurse(1));
    }
    if let Some(mb) = knob("alloc_mb").and_then(Value::as_u64) {
        let mut held: Vec<Vec<u8>> = Vec::new();
        for _ in 0..mb {
            held.push(vec![1u8; 1 << 20]);
        }
        std::hint::black_box(&held);
    }
    if let Some(name) = knob("secret_len").and_then(Value::as_str) {
        let len = call.config["secrets"][name].as_str().map(str::len);
        return match len {
            Some(n) => Ok(Some(Reply::Done(crate::json!({ "secret_len": n })))),
            None => Err(Failure::fatal(format!("no secret {name} in the config"))),
        };
    }
    if let Some(kb) = knob("output_kb").and_then(Value::as_u64) {
        let padding = "x".repeat(usize::try_from(kb).unwrap_or(0).saturating_mul(1024));
        return Ok(Some(Reply::Done(crate::json!({ "padding": padding }))));
    }
    match knob("pending") {
        Some(Value::String(token)) => return Ok(Some(Reply::Pending(token.clone()))),
        Some(Value::Bool(true)) => {
            let token = crate::reference("tok", &call.idempotency_key);
            return Ok(Some(Reply::Pending(token)));
        }
        _ => {}
    }
    Ok(None)
}

fn record(path: &str, call: &Call) -> Result<(), Failure> {
    let mut file = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)
        .map_err(|e| Failure::fatal(format!("cannot open {path} to record the call: {e}")))?;
    // One write per line: an append this small lands whole even if the
    // engine is killed mid-call, so the log can be trusted to count calls.
    let line = format!(
        "{} {} {}\n",
        call.action, call.idempotency_key, call.attempt
    );
    file.write_all(line.as_bytes())
        .and_then(|()| file.flush())
        .map_err(|e| Failure::fatal(format!("cannot record the call in {path}: {e}")))
}

fn sleep(ms: u64, heartbeat: bool) {
    let slice = 20u64;
    let mut left = ms;
    while left > 0 {
        let step = left.min(slice);
        std::thread::sleep(std::time::Duration::from_millis(step));
        left -= step;
        if heartbeat {
            crate::heartbeat(&format!("{{\"remaining_ms\":{left}}}"));
        }
    }
}

/// Runs out of WebAssembly stack long before it returns (its frames hold
/// only locals, so it is the engine's stack limit that stops it).
fn recurse(depth: u64) -> u64 {
    if depth == u64::MAX {
        return 0;
    }
    // Not an accumulator LLVM could turn into a loop.
    recurse(depth + 1).wrapping_mul(3).wrapping_add(depth)
}

fn spin() -> ! {
    let mut n: u64 = 0;
    loop {
        n = std::hint::black_box(n.wrapping_add(1));
    }
}
