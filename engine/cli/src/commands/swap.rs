//! `weft plugin swap | rollback | promote | versions`: hot swaps of the
//! component behind an action or a plugin. Through the running server when
//! one holds the data directory (the one way into a running engine), else
//! on the store, for the next start.

use std::path::Path;

use base64::Engine as _;
use hyper::Method;
use serde_json::{Value, json};
use weft_store::CanaryPolicy;

use super::{Reach, offline_engine, reach};
use crate::client::segment;
use crate::render::short;
use crate::{exit, load, render};

const PATIENCE: std::time::Duration = super::operate::PATIENCE;

/// What `weft plugin swap` was asked.
pub struct SwapArgs<'a> {
    pub target: &'a str,
    /// A component file, or a registered name, name@version or digest.
    pub component: &'a str,
    pub name: Option<&'a str>,
    pub canary: Option<CanaryPolicy>,
    pub json: bool,
}

/// `10%`, `10` → 10.
pub fn percent(text: &str) -> Result<u8, String> {
    let n = text.trim().trim_end_matches('%');
    n.parse::<u8>()
        .ok()
        .filter(|p| *p <= 100)
        .ok_or_else(|| format!("'{text}' is not a percentage: write e.g. 10%"))
}

fn is_file(component: &str) -> bool {
    component.ends_with(".wasm") || Path::new(component).is_file()
}

pub async fn swap(args: &SwapArgs<'_>, data: &Path) -> anyhow::Result<u8> {
    let file_bytes = if is_file(args.component) {
        Some(
            load::read_limited(Path::new(args.component), 256 << 20)
                .map_err(|e| anyhow::anyhow!("cannot read {}: {e}", args.component))?,
        )
    } else {
        None
    };
    let record: Value = match reach(data, PATIENCE).await? {
        Reach::Server(client) => {
            let mut body = json!({ "target": args.target });
            match &file_bytes {
                Some(bytes) => {
                    body["wasm"] = json!(base64::engine::general_purpose::STANDARD.encode(bytes));
                    if let Some(n) = args.name {
                        body["name"] = json!(n);
                    }
                }
                None => body["component"] = json!(args.component),
            }
            if let Some(c) = args.canary {
                body["canary"] = json!({
                    "percent": c.percent,
                    "promote_after": c.promote_after,
                    "threshold": c.threshold,
                    "window": c.window,
                    "min_calls": c.min_calls,
                });
            }
            match client.call(Method::POST, "/v1/swaps", Some(&body)).await? {
                Ok(v) => v,
                Err(r) => anyhow::bail!("{}", r.message),
            }
        }
        Reach::Store(store) => {
            let runtime = super::runtime(Some(data))?;
            let engine = offline_engine(store)?;
            let component = match file_bytes {
                Some(bytes) => weft_server::SwapComponent::Bytes {
                    name: args.name.map(str::to_owned),
                    bytes,
                },
                None => weft_server::SwapComponent::Registered(args.component.to_owned()),
            };
            let done = crate::swapper::swap(
                &engine,
                &runtime,
                None,
                weft_server::Swap {
                    target: args.target.to_owned(),
                    component,
                    canary: args.canary,
                },
            )
            .await;
            engine.shutdown().await;
            serde_json::to_value(done.map_err(|e| anyhow::anyhow!("{}", e.message))?)?
        }
    };
    say_record(&record, args.json);
    Ok(exit::OK)
}

/// `weft plugin rollback <target>` and `weft plugin promote <target>`.
pub async fn settle(
    target: &str,
    promote: bool,
    data: &Path,
    json_out: bool,
) -> anyhow::Result<u8> {
    let record: Value = match reach(data, PATIENCE).await? {
        Reach::Server(client) => {
            let path = if promote {
                "/v1/swaps/promote"
            } else {
                "/v1/swaps/rollback"
            };
            match client
                .call(Method::POST, path, Some(&json!({ "target": target })))
                .await?
            {
                Ok(v) => v,
                Err(r) => anyhow::bail!("{}", r.message),
            }
        }
        Reach::Store(store) => {
            let engine = offline_engine(store)?;
            let done = if promote {
                engine.promote(target).await
            } else {
                engine.rollback(target).await
            };
            engine.shutdown().await;
            serde_json::to_value(done?)?
        }
    };
    say_record(&record, json_out);
    Ok(exit::OK)
}

fn component_name(r: &Value) -> String {
    let sha = short(r["sha256"].as_str().unwrap_or_default()).to_owned();
    match r["plugin"].as_str() {
        Some(p) => format!("{p} ({sha})"),
        None => sha,
    }
}

fn versions_touched(r: &Value) -> String {
    let list: Vec<String> = r["changes"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|c| {
            format!(
                "{} v{} r{}",
                c["process"].as_str().unwrap_or_default(),
                c["version"],
                c["revision"]
            )
        })
        .collect();
    list.join(", ")
}

fn say_record(r: &Value, json_out: bool) {
    if json_out {
        render::say(render::pretty(r));
        return;
    }
    let target = r["target"].as_str().unwrap_or_default();
    let what = component_name(r);
    let line = match r["kind"].as_str().unwrap_or_default() {
        "swap" => format!("swapped {target} to {what}"),
        "rollback" => format!("rolled {target} back to {what}"),
        "canary" => format!(
            "canary of {target}: {}% of attempts to {what}; promoted after {} successful attempts, rolled back when over {} points worse than the live component (over the last {} attempts, after {})",
            r["canary"]["percent"],
            r["canary"]["promote_after"],
            r["canary"]["threshold"],
            r["canary"]["window"],
            r["canary"]["min_calls"],
        ),
        "promote" => format!("promoted {what} for {target}"),
        "abort" => format!("ended the canary of {what} for {target}"),
        other => format!("{other} {target} {what}"),
    };
    render::say(format_args!("#{}  {line}", r["seq"]));
    render::say(format_args!("  bindings: {}", versions_touched(r)));
    if let Some(why) = r["reason"].as_str() {
        render::say(format_args!("  why: {why}"));
    }
}

/// `weft plugin versions [<target>]`: the swap log and what runs now.
pub async fn versions(target: Option<&str>, data: &Path, json_out: bool) -> anyhow::Result<u8> {
    let log: Value = match reach(data, PATIENCE).await? {
        Reach::Server(client) => {
            let path = match target {
                Some(t) => format!("/v1/swaps?target={}", segment(t)),
                None => "/v1/swaps".to_owned(),
            };
            match client.call(Method::GET, &path, None).await? {
                Ok(v) => v,
                Err(r) => anyhow::bail!("{}", r.message),
            }
        }
        Reach::Store(store) => {
            let engine = offline_engine(store)?;
            let log = engine.swap_log(target).await;
            engine.shutdown().await;
            serde_json::to_value(log?)?
        }
    };
    if json_out {
        render::say(render::pretty(&log));
        return Ok(exit::OK);
    }
    render::say("now:");
    let live = log["live"].as_array().cloned().unwrap_or_default();
    if live.is_empty() {
        render::say("  nothing deployed binds it");
    }
    for l in &live {
        let canary = match l.get("canary").filter(|c| !c.is_null()) {
            Some(c) => {
                let tally = match c.get("tally").filter(|t| !t.is_null()) {
                    Some(t) => format!(
                        "; here: {} attempts, {} failed, against {} and {} on the live one",
                        t["trial_attempts"],
                        t["trial_failures"],
                        t["live_attempts"],
                        t["live_failures"]
                    ),
                    None => String::new(),
                };
                format!(
                    "  + canary {}% on {}{tally}",
                    c["policy"]["percent"],
                    short(c["sha256"].as_str().unwrap_or_default())
                )
            }
            None => String::new(),
        };
        render::say(format_args!(
            "  {} v{} r{}  {:<20}  {} {}{canary}",
            l["process"].as_str().unwrap_or_default(),
            l["version"],
            l["revision"],
            l["action"].as_str().unwrap_or_default(),
            l["plugin"].as_str().unwrap_or_default(),
            short(l["sha256"].as_str().unwrap_or_default()),
        ));
    }
    let records = log["records"].as_array().cloned().unwrap_or_default();
    render::say("swaps:");
    if records.is_empty() {
        render::say("  none yet: swap one in with weft plugin swap <action|plugin> <file.wasm>");
    }
    for r in &records {
        let at = weft_model::Millis(r["at"].as_u64().unwrap_or_default());
        render::say(format_args!(
            "  #{:<3} {}  {:<8}  {:<24}  {}{}",
            r["seq"],
            at,
            r["kind"].as_str().unwrap_or_default(),
            r["target"].as_str().unwrap_or_default(),
            component_name(r),
            r["reason"]
                .as_str()
                .map(|w| format!("  ({w})"))
                .unwrap_or_default()
        ));
    }
    Ok(exit::OK)
}
