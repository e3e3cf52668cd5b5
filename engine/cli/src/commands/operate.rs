//! `weft complete`, `heartbeat`, `redrive`, `cancel`: operator requests,
//! applied by the engine that holds the data directory, or directly when none
//! does (see `inbox`).

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use weft_core::{Engine, EngineOptions, SystemClock};

use super::open_store;
use crate::inbox::{self, Request};
use crate::invoker::WasmInvoker;
use crate::{exit, render};

/// How long to wait for a running engine to take a spooled request.
pub const PATIENCE: Duration = Duration::from_secs(30);

pub async fn operate(data: &Path, req: Request) -> anyhow::Result<u8> {
    let reply = match open_store(data, false) {
        Ok(store) => {
            // Nothing runs here: commit the change and leave what follows to
            // the next engine.
            let runtime = super::runtime(None)?;
            let invoker = Arc::new(WasmInvoker::new(runtime));
            let options = EngineOptions {
                passive: true,
                ..EngineOptions::default()
            };
            let engine = Engine::new(store, invoker, Arc::new(SystemClock), options);
            let mut reply = inbox::apply(&engine, &req).await;
            if reply.ok {
                reply.message.push_str(&format!(
                    "; no engine is running, so it continues with `weft resume --data {}`",
                    data.display()
                ));
            }
            reply
        }
        Err(e) if is_locked(&e) => inbox::send(data, &req, PATIENCE).await?,
        Err(e) => return Err(e),
    };
    Ok(answer(reply))
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
