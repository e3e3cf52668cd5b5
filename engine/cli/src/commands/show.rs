//! `weft status` and `weft history`: read an instance back from the store.

use std::path::Path;

use anyhow::Context;
use weft_store::Instances;

use super::open_store;
use crate::{exit, render};

pub fn status(id: &str, data: &Path, json: bool) -> anyhow::Result<u8> {
    let store = open_store(data, false)?;
    let id = crate::inbox::resolve_in(&*store, id)?;
    let inst = store
        .instance(&id)?
        .with_context(|| format!("there is no instance {id} in {}", data.display()))?;
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

pub fn history(id: &str, data: &Path, json: bool) -> anyhow::Result<u8> {
    let store = open_store(data, false)?;
    let id = crate::inbox::resolve_in(&*store, id)?;
    if store.instance(&id)?.is_none() {
        anyhow::bail!("there is no instance {id} in {}", data.display());
    }
    let records = store.history(&id, 0)?;
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
