//! Shipping adapter: books a shipment and cancels it again.
//!
//! Config: `carrier` (default `"post"`).

use weft_plugin_sdk::{Action, Adapter, Call, Failure, Manifest, Reply, json, reference, simulate};

struct Shipping;

impl Adapter for Shipping {
    fn manifest() -> Manifest {
        Manifest::new("shipping", env!("CARGO_PKG_VERSION"))
            .action(
                Action::new("create_shipment")
                    .idempotent()
                    .compensated_by("cancel_shipment")
                    .errors(["address_invalid"]),
            )
            .action(Action::new("cancel_shipment").idempotent())
    }

    fn invoke(call: Call) -> Result<Reply, Failure> {
        if let Some(reply) = simulate::apply(&call)? {
            return Ok(reply);
        }
        match call.action.as_str() {
            "create_shipment" => {
                let address = call
                    .input
                    .get("address")
                    .and_then(|v| v.as_str())
                    .unwrap_or("");
                if address.trim().is_empty() {
                    return Err(Failure::error(
                        "address_invalid",
                        "the shipment has no address",
                    ));
                }
                let carrier = call
                    .setting("carrier")
                    .and_then(|v| v.as_str())
                    .unwrap_or("post");
                Ok(Reply::done(json!({
                    "tracking": reference("trk", &call.idempotency_key),
                    "carrier": carrier,
                })))
            }
            "cancel_shipment" => Ok(Reply::done(json!({
                "cancelled": call.input.get("tracking").cloned().unwrap_or_default(),
            }))),
            other => Err(Failure::fatal(format!("shipping has no action '{other}'"))),
        }
    }
}

weft_plugin_sdk::adapter!(Shipping);
