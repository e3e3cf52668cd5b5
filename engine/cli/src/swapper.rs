//! Swapping a component in: read it (from the request or the registry),
//! load and describe it with the WASM runtime, hand it to the invoker so
//! the first attempt on it does not wait for a compile, then let the engine
//! check it against every binding it would serve and write the swap. The
//! API, `weft plugin swap` on a store no server holds, and `--watch` all
//! come through here.

use std::sync::Arc;

use axum::http::StatusCode;
use weft_core::{Component, Engine, SwapRequest};
use weft_runtime::Runtime;
use weft_server::{ApiError, Swap, SwapComponent};
use weft_store::{SwapRecord, Target};

use crate::invoker::WasmInvoker;

/// The largest component a swap takes, as for files read from disk.
const MAX_COMPONENT: usize = 256 << 20;

pub async fn swap(
    engine: &Engine,
    runtime: &Runtime,
    invoker: Option<&WasmInvoker>,
    req: Swap,
) -> Result<SwapRecord, ApiError> {
    let target = engine.swap_target(&req.target).await?;
    let uses = engine.target_bindings(&target).await?;
    let memory = uses
        .iter()
        .map(|(_, m)| *m)
        .max()
        .unwrap_or(weft_model::bindings::DEFAULT_MEMORY);
    let (name, bytes, fresh, registered): (String, Arc<[u8]>, bool, Option<String>) =
        match req.component {
            SwapComponent::Bytes { name, bytes } => {
                if bytes.len() > MAX_COMPONENT {
                    return Err(ApiError::new(
                        StatusCode::PAYLOAD_TOO_LARGE,
                        "too_large",
                        format!("the component is larger than {} MiB", MAX_COMPONENT >> 20),
                    ));
                }
                let name = match name {
                    Some(n) => n,
                    None => match &target {
                        Target::Plugin(p) => p.clone(),
                        Target::Action(_) => uses
                            .first()
                            .map(|(p, _)| p.clone())
                            .unwrap_or_else(|| target.name().to_owned()),
                    },
                };
                if !weft_model::validate::valid_name(&name) {
                    return Err(ApiError::unprocessable(format!(
                        "'{name}' is not a plugin name: use letters, digits, '-', '_' and '.'"
                    )));
                }
                (name, bytes.into(), true, None)
            }
            SwapComponent::Registered(what) => {
                let what = what.strip_prefix("sha256:").unwrap_or(&what);
                let (entry, bytes) = engine.plugin_component(what).await?;
                let registered = format!("{}@{}", entry.name, entry.version);
                (entry.name, bytes.into(), false, Some(registered))
            }
        };
    let plugin = runtime
        .load_with_memory(&name, bytes.clone(), memory)
        .await
        .map_err(|e| {
            ApiError::new(
                StatusCode::UNPROCESSABLE_ENTITY,
                "invalid_plugin",
                crate::commands::plugin::unusable(&e),
            )
        })?;
    let component = Component {
        sha256: plugin.sha256.clone(),
        manifest: plugin.manifest.clone(),
        register: fresh.then(|| (name.clone(), bytes)),
        registered,
    };
    let sha256 = plugin.sha256.clone();
    // Ready before the swap is written, so the first attempt on it does not
    // wait for a load; let go of if the engine refuses it.
    if let Some(invoker) = invoker {
        invoker.stage(Arc::new(plugin));
    }
    let done = engine
        .swap(SwapRequest {
            target: target.to_string(),
            component,
            canary: req.canary,
        })
        .await;
    if let Some(invoker) = invoker {
        invoker.settle(&sha256, done.is_ok());
    }
    Ok(done?)
}
