//! A worse build of `echo`: the same action, the same answers, except that
//! three attempts in ten fail retryably. Which ones is decided by the step
//! key and attempt number, so a run is reproducible. It exists to show a
//! canary of a bad version being rolled back (`weft plugin swap --canary`).

use weft_plugin_sdk::{Action, Adapter, Call, Failure, Manifest, Reply, simulate};

struct FlakyEcho;

/// FNV-1a: a stable hash, the same on every build and run.
fn fnv(bytes: &[u8]) -> u64 {
    bytes.iter().fold(0xcbf2_9ce4_8422_2325, |h, b| {
        (h ^ u64::from(*b)).wrapping_mul(0x0100_0000_01b3)
    })
}

impl Adapter for FlakyEcho {
    fn manifest() -> Manifest {
        Manifest::new("echo", concat!(env!("CARGO_PKG_VERSION"), "-flaky"))
            .action(Action::new("echo").idempotent())
    }

    fn invoke(call: Call) -> Result<Reply, Failure> {
        if let Some(reply) = simulate::apply(&call)? {
            return Ok(reply);
        }
        let roll = fnv(format!("{}#{}", call.idempotency_key, call.attempt).as_bytes()) % 10;
        if roll < 3 {
            return Err(Failure::retryable(format!(
                "flaky echo: attempt {} of {} failed",
                call.attempt, call.idempotency_key
            )));
        }
        Ok(Reply::done(call.input))
    }
}

weft_plugin_sdk::adapter!(FlakyEcho);
