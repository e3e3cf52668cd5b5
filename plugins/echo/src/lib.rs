//! The smallest useful adapter: `echo` answers with its input. Used by the
//! benchmark and as a template for new adapters.

use weft_plugin_sdk::{Action, Adapter, Call, Failure, Manifest, Reply, simulate};

struct Echo;

impl Adapter for Echo {
    fn manifest() -> Manifest {
        Manifest::new("echo", env!("CARGO_PKG_VERSION")).action(Action::new("echo").idempotent())
    }

    fn invoke(call: Call) -> Result<Reply, Failure> {
        if let Some(reply) = simulate::apply(&call)? {
            return Ok(reply);
        }
        Ok(Reply::done(call.input))
    }
}

weft_plugin_sdk::adapter!(Echo);
