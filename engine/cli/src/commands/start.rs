//! `weft start`: start an instance of a deployed process — the newest
//! version unless one is pinned — and follow it until it ends or waits.

use std::path::Path;

use std::time::Duration;

use super::{engine_on, open_store_within, run};
use crate::inbox::{self, Request};

pub async fn start(
    process: &str,
    input: &str,
    key: Option<String>,
    version: Option<u32>,
    data: &Path,
) -> anyhow::Result<u8> {
    let input = run::parse_input(input)?;
    let store = match open_store_within(data, false, Duration::ZERO) {
        Ok(store) => store,
        Err(e) if super::operate::is_locked(&e) => {
            // A running engine (`weft serve`) starts it and carries it on;
            // if what holds the directory lets go first, start it here.
            let req = Request::Start {
                process: process.to_owned(),
                version,
                input: input.clone(),
                key: key.clone(),
            };
            match inbox::send_or_open(data, &req, super::operate::PATIENCE).await? {
                inbox::Answer::Reply(reply) => return Ok(super::operate::answer(reply)),
                inbox::Answer::Opened(store) => store,
            }
        }
        Err(e) => return Err(e),
    };
    let (engine, _) = engine_on(store, data)?;
    run::start_and_follow(&engine, process, version, input, key, data).await
}
