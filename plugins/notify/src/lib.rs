//! Notification adapter: sends a message to a customer or an operator.
//!
//! Config: `channel` (default `"email"`). The message is logged through the host.

use weft_plugin_sdk::{
    Action, Adapter, Call, Failure, Level, Manifest, Reply, json, log, reference, simulate,
};

struct Notify;

impl Adapter for Notify {
    fn manifest() -> Manifest {
        Manifest::new("notify", env!("CARGO_PKG_VERSION"))
            .action(Action::new("send_notification").idempotent())
    }

    fn invoke(call: Call) -> Result<Reply, Failure> {
        if let Some(reply) = simulate::apply(&call)? {
            return Ok(reply);
        }
        match call.action.as_str() {
            "send_notification" => {
                let channel = call
                    .setting("channel")
                    .and_then(|v| v.as_str())
                    .unwrap_or("email");
                let to = call
                    .input
                    .get("to")
                    .and_then(|v| v.as_str())
                    .unwrap_or("customer");
                let text = call
                    .input
                    .get("message")
                    .and_then(|v| v.as_str())
                    .unwrap_or("");
                log(Level::Info, &format!("{channel} to {to}: {text}"));
                Ok(Reply::done(json!({
                    "message_id": reference("msg", &call.idempotency_key),
                    "channel": channel,
                })))
            }
            other => Err(Failure::fatal(format!("notify has no action '{other}'"))),
        }
    }
}

weft_plugin_sdk::adapter!(Notify);
