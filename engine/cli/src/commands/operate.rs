//! `weft complete`, `heartbeat`, `redrive`, `cancel`, `signal`, `migrate`:
//! operator requests, applied by the engine that holds the data directory,
//! or by an offline engine when none does (see `inbox`).

use std::path::Path;
use std::time::Duration;

use anyhow::Context;

use super::{offline_engine, open_store_within};
use crate::inbox::{self, Request};
use crate::{exit, render};

/// How long to wait for a running engine to take a spooled request, or for
/// a short command to let go of the directory.
pub const PATIENCE: Duration = Duration::from_secs(30);

pub async fn operate(data: &Path, req: Request) -> anyhow::Result<u8> {
    let reply = match open_store_within(data, false, Duration::ZERO) {
        Ok(store) => apply_offline(store, data, &req).await?,
        Err(e) if is_locked(&e) => {
            // An engine runs (it takes the request from the inbox) or a
            // short command holds the directory (it will let go): whichever
            // comes first answers.
            match inbox::send_or_open(data, &req, PATIENCE).await? {
                inbox::Answer::Reply(reply) => reply,
                inbox::Answer::Opened(store) => apply_offline(store, data, &req).await?,
            }
        }
        Err(e) => return Err(e),
    };
    Ok(answer(reply))
}

async fn apply_offline(
    store: std::sync::Arc<weft_store_sled::SledStore>,
    data: &Path,
    req: &Request,
) -> anyhow::Result<inbox::Reply> {
    let engine = offline_engine(store)?;
    let mut reply = inbox::apply(&engine, req).await;
    engine.shutdown().await;
    if reply.ok {
        reply.message.push_str(&format!(
            "; no engine is running, so it continues with `weft resume --data {}`",
            data.display()
        ));
    }
    Ok(reply)
}

/// Prints an engine's reply to a request; the exit code it means.
pub fn answer(reply: inbox::Reply) -> u8 {
    if reply.ok {
        render::say(reply.message);
        exit::OK
    } else {
        eprintln!("error: {}", reply.message);
        exit::ERROR
    }
}

pub fn is_locked(e: &anyhow::Error) -> bool {
    e.chain().any(|c| {
        matches!(
            c.downcast_ref::<weft_store::Error>(),
            Some(weft_store::Error::Locked { .. })
        )
    })
}

/// `--output` as JSON, with a clear error.
pub fn parse_output(text: &str) -> anyhow::Result<serde_json::Value> {
    serde_json::from_str(text).with_context(|| format!("--output is not valid JSON: {text}"))
}
