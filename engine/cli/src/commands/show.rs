//! `weft status` and `weft history`: an instance as the engine reports it.

use std::path::Path;

use super::{offline_engine, open_store};
use crate::{exit, render};

pub async fn status(target: &str, data: &Path, json: bool) -> anyhow::Result<u8> {
    let engine = offline_engine(open_store(data, false)?)?;
    let id = engine.resolve(target).await?;
    let inst = engine.status(&id).await?;
    if json {
        render::say(format_args!(
            "{}",
            render::pretty(&serde_json::to_value(&inst)?)
        ));
    } else {
        render::say(render::status_table(&inst).trim_end());
    }
    Ok(exit::OK)
}

pub async fn history(target: &str, data: &Path, json: bool) -> anyhow::Result<u8> {
    let engine = offline_engine(open_store(data, false)?)?;
    let id = engine.resolve(target).await?;
    let records = engine.history(&id, 0).await?;
    if json {
        render::say(format_args!(
            "{}",
            render::pretty(&serde_json::to_value(&records)?)
        ));
    } else {
        render::say(render::history_table(&records).trim_end());
    }
    Ok(exit::OK)
}
