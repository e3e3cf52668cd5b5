//! `weft start`: start an instance of a deployed process — the newest
//! version unless one is pinned. With an engine running, the engine starts
//! it (through its API) and carries it on; with none, this process starts
//! it and follows it until it ends or waits.

use std::path::Path;

use super::operate::{self, Request, remote};
use super::{Reach, engine_on, reach, run};

pub async fn start(
    process: &str,
    input: &str,
    key: Option<String>,
    version: Option<u32>,
    data: &Path,
) -> anyhow::Result<u8> {
    let input = run::parse_input(input)?;
    let store = match reach(data, operate::PATIENCE).await? {
        Reach::Server(client) => {
            let req = Request::Start {
                process: process.to_owned(),
                version,
                input,
                key,
            };
            return Ok(operate::answer(remote(&client, &req).await?));
        }
        Reach::Store(store) => store,
    };
    let (engine, invoker) = engine_on(store, data)?;
    let _api = crate::api::Bound::loopback()
        .await?
        .serve(&engine, &invoker, data)?;
    run::start_and_follow(&engine, process, version, input, key, data).await
}
