//! Inventory adapter: reserves stock for an order and releases it again.
//!
//! Config: `stock` (units available per SKU, default 100). A reservation of more
//! than that fails with `error.out_of_stock`.

use weft_plugin_sdk::{Action, Adapter, Call, Failure, Manifest, Reply, json, reference, simulate};

struct Inventory;

impl Adapter for Inventory {
    fn manifest() -> Manifest {
        Manifest::new("inventory", env!("CARGO_PKG_VERSION"))
            .action(
                Action::new("reserve_inventory")
                    .idempotent()
                    .compensated_by("release_inventory")
                    .errors(["out_of_stock"]),
            )
            .action(Action::new("release_inventory").idempotent())
    }

    fn invoke(call: Call) -> Result<Reply, Failure> {
        if let Some(reply) = simulate::apply(&call)? {
            return Ok(reply);
        }
        match call.action.as_str() {
            "reserve_inventory" => reserve(&call),
            "release_inventory" => Ok(Reply::done(json!({
                "released": call.input.get("reservation_id").cloned().unwrap_or_default(),
            }))),
            other => Err(Failure::fatal(format!("inventory has no action '{other}'"))),
        }
    }
}

fn reserve(call: &Call) -> Result<Reply, Failure> {
    let sku = call
        .input
        .get("sku")
        .and_then(|v| v.as_str())
        .ok_or_else(|| Failure::fatal("reserve_inventory needs a string 'sku' in its input"))?;
    let qty = call.input.get("qty").and_then(|v| v.as_u64()).unwrap_or(1);
    let stock = call
        .setting("stock")
        .and_then(|v| v.as_u64())
        .unwrap_or(100);
    if qty > stock {
        return Err(Failure::error(
            "out_of_stock",
            format!("{qty} x {sku} requested, {stock} in stock"),
        ));
    }
    Ok(Reply::done(json!({
        "reservation_id": reference("rsv", &call.idempotency_key),
        "sku": sku,
        "qty": qty,
    })))
}

weft_plugin_sdk::adapter!(Inventory);
