//! `weft start`: start an instance of a deployed process — the newest
//! version unless one is pinned — and follow it until it ends or waits.

use std::path::Path;

use super::{engine_on, open_store, run};
use crate::inbox::{self, Request};

pub async fn start(
    process: &str,
    input: &str,
    key: Option<String>,
    version: Option<u32>,
    data: &Path,
) -> anyhow::Result<u8> {
    let input = run::parse_input(input)?;
    match open_store(data, false) {
        Ok(store) => {
            let engine = engine_on(store.clone(), data, &super::deployed(&*store)?).await?;
            run::start_and_follow(&engine, process, version, input, key, data).await
        }
        Err(e) if super::operate::is_locked(&e) => {
            // A running engine (`weft serve`) starts it and carries it on.
            let req = Request::Start {
                process: process.to_owned(),
                version,
                input,
                key,
            };
            let reply = inbox::send(data, &req, super::operate::PATIENCE).await?;
            Ok(super::operate::answer(reply))
        }
        Err(e) => Err(e),
    }
}
