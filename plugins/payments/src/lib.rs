//! Payments adapter: charges a card and refunds a charge.
//!
//! Config: `limit` (largest amount accepted, default 10000) and `declined_cards`
//! (card numbers that are always declined, default `["4000000000000002"]`).

use weft_plugin_sdk::{Action, Adapter, Call, Failure, Manifest, Reply, json, reference, simulate};

struct Payments;

impl Adapter for Payments {
    fn manifest() -> Manifest {
        Manifest::new("payments", env!("CARGO_PKG_VERSION"))
            .action(
                Action::new("charge_payment")
                    .idempotent()
                    .compensated_by("refund_payment")
                    .errors(["card_declined", "insufficient_funds"]),
            )
            .action(Action::new("refund_payment").idempotent())
    }

    fn invoke(call: Call) -> Result<Reply, Failure> {
        if let Some(reply) = simulate::apply(&call)? {
            return Ok(reply);
        }
        match call.action.as_str() {
            "charge_payment" => charge(&call),
            "refund_payment" => Ok(Reply::done(json!({
                "refund_id": reference("rfd", &call.idempotency_key),
                "charge_id": call.input.get("charge_id").cloned().unwrap_or_default(),
            }))),
            other => Err(Failure::fatal(format!("payments has no action '{other}'"))),
        }
    }
}

fn charge(call: &Call) -> Result<Reply, Failure> {
    let amount = call
        .input
        .get("amount")
        .and_then(|v| v.as_f64())
        .ok_or_else(|| Failure::fatal("charge_payment needs a number 'amount' in its input"))?;
    let card = call
        .input
        .get("card")
        .and_then(|v| v.as_str())
        .unwrap_or("");
    let declined = match call.config.get("declined_cards").and_then(|v| v.as_array()) {
        Some(cards) => cards.iter().any(|c| c.as_str() == Some(card)),
        None => card == "4000000000000002",
    };
    if declined {
        return Err(Failure::error(
            "card_declined",
            format!("card ending {} was declined", last4(card)),
        ));
    }
    let limit = call
        .setting("limit")
        .and_then(|v| v.as_f64())
        .unwrap_or(10_000.0);
    if amount > limit {
        return Err(Failure::error(
            "insufficient_funds",
            format!("{amount} exceeds the limit of {limit}"),
        ));
    }
    Ok(Reply::done(json!({
        "charge_id": reference("ch", &call.idempotency_key),
        "amount": amount,
    })))
}

fn last4(card: &str) -> &str {
    card.get(card.len().saturating_sub(4)..).unwrap_or(card)
}

weft_plugin_sdk::adapter!(Payments);
