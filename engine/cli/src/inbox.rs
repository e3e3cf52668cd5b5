//! Operator requests — complete a token, heartbeat, redrive, cancel, signal,
//! migrate, start — from a
//! process that cannot open the store because a running engine holds it.
//!
//! sled lets one process open a data directory. So a request is spooled as a
//! file in `<data>/inbox/` (written to a temporary name, then renamed, so it
//! appears whole); the engine (`weft run`, `weft resume`) claims it by
//! renaming it, applies it and writes `<name>.reply` the same way. When no
//! engine runs, the requester opens the store itself and applies the request
//! with an offline engine: the change is committed and waits for `weft resume`.

use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{Context, bail};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use weft_core::{Clock, Completion, Engine, SystemClock};
use weft_model::{Failure, InstanceId, Span};

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(tag = "op", rename_all = "snake_case")]
pub enum Request {
    Complete {
        token: String,
        output: Value,
    },
    Fail {
        token: String,
        kind: String,
        message: String,
    },
    Heartbeat {
        token: String,
        details: String,
    },
    Redrive {
        id: String,
    },
    Cancel {
        id: String,
        compensate: bool,
    },
    Signal {
        target: String,
        event: String,
        data: Value,
    },
    Migrate {
        target: String,
        version: u32,
    },
    Start {
        process: String,
        version: Option<u32>,
        input: Value,
        key: Option<String>,
    },
}

/// An instance named by its id or by the business key it was started with.
pub async fn resolve(engine: &Engine, text: &str) -> anyhow::Result<InstanceId> {
    Ok(engine.resolve(text).await?)
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Reply {
    pub ok: bool,
    pub message: String,
}

/// Applies a request to an engine.
pub async fn apply(engine: &Engine, req: &Request) -> Reply {
    let done = |ok: bool, message: String| Reply { ok, message };
    let result: anyhow::Result<String> = async {
        Ok(match req {
            Request::Complete { token, output } => {
                let i = engine
                    .complete(token, Completion::Done(output.clone()))
                    .await?;
                format!("completed token '{token}' of instance {i}")
            }
            Request::Fail {
                token,
                kind,
                message,
            } => {
                let f = Failure::new(kind.clone(), message.clone());
                let i = engine.complete(token, Completion::Failed(f)).await?;
                format!("failed token '{token}' of instance {i} with error.{kind}")
            }
            Request::Heartbeat { token, details } => {
                let i = engine.heartbeat(token, details.clone()).await?;
                format!("recorded a heartbeat for token '{token}' of instance {i}")
            }
            Request::Redrive { id: text } => {
                let i = resolve(engine, text).await?;
                engine.redrive(&i).await?;
                format!("redriving instance {i}")
            }
            Request::Cancel {
                id: text,
                compensate,
            } => {
                let i = resolve(engine, text).await?;
                engine.cancel(&i, *compensate).await?;
                if *compensate {
                    format!("cancelling instance {i}, undoing its completed steps first")
                } else {
                    format!("cancelled instance {i}")
                }
            }
            Request::Signal {
                target,
                event,
                data,
            } => {
                let i = resolve(engine, target).await?;
                engine.signal(&i, event, data.clone()).await?;
                format!("delivered '{event}' to instance {i}")
            }
            Request::Migrate { target, version } => {
                let i = resolve(engine, target).await?;
                engine.migrate(&i, *version).await?;
                format!("instance {i} now runs version {version}")
            }
            Request::Start {
                process,
                version,
                input,
                key,
            } => {
                let s = engine
                    .start_keyed(process, *version, input.clone(), key.clone())
                    .await?;
                if s.existing {
                    format!("{}\nan instance with this key already exists", s.id)
                } else {
                    format!("{}", s.id)
                }
            }
        })
    }
    .await;
    match result {
        Ok(m) => done(true, m),
        Err(e) => done(false, format!("{e:#}")),
    }
}

fn inbox(data: &Path) -> PathBuf {
    data.join("inbox")
}

/// Serves spooled requests for as long as the engine lives.
pub fn serve(engine: &Engine, data: &Path) {
    let dir = inbox(data);
    let engine = engine.clone();
    tokio::spawn(async move {
        let clock = engine.clock().clone();
        loop {
            if let Err(e) = serve_once(&engine, &dir).await {
                tracing::warn!("inbox {}: {e:#}", dir.display());
            }
            let next = clock.now().plus(Span::from_millis(100));
            clock.sleep_until(next).await;
        }
    });
}

async fn serve_once(engine: &Engine, dir: &Path) -> anyhow::Result<()> {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return Ok(());
    };
    let mut requests: Vec<PathBuf> = entries
        .flatten()
        .map(|e| e.path())
        .filter(|p| p.extension().is_some_and(|x| x == "json"))
        .collect();
    requests.sort();
    for path in requests {
        // Claim it: only one engine, once, even if the requester gives up.
        let claimed = path.with_extension("taken");
        if std::fs::rename(&path, &claimed).is_err() {
            continue;
        }
        let reply = match std::fs::read(&claimed)
            .ok()
            .and_then(|b| serde_json::from_slice::<Request>(&b).ok())
        {
            Some(req) => apply(engine, &req).await,
            None => Reply {
                ok: false,
                message: "the request is not readable".into(),
            },
        };
        write_atomically(&path.with_extension("reply"), &serde_json::to_vec(&reply)?)?;
        let _ = std::fs::remove_file(&claimed);
    }
    Ok(())
}

fn write_atomically(path: &Path, bytes: &[u8]) -> anyhow::Result<()> {
    let tmp = path.with_extension("tmp");
    std::fs::write(&tmp, bytes).with_context(|| format!("cannot write {}", tmp.display()))?;
    std::fs::rename(&tmp, path).with_context(|| format!("cannot write {}", path.display()))?;
    Ok(())
}

/// What came of a spooled request.
pub enum Answer {
    /// The engine holding the directory applied it.
    Reply(Reply),
    /// Nobody took it, and the directory came free: the request was taken
    /// back, unapplied, and the store is ours.
    Opened(std::sync::Arc<weft_store_sled::SledStore>),
}

/// Spools a request for the engine holding `data` and waits for its reply;
/// meanwhile tries to open the store, in case what holds it is a short
/// command rather than an engine: if it opens and the request is still
/// unclaimed, the request is withdrawn and the caller applies it itself.
pub async fn send_or_open(
    data: &Path,
    req: &Request,
    patience: Duration,
) -> anyhow::Result<Answer> {
    let dir = inbox(data);
    std::fs::create_dir_all(&dir).with_context(|| format!("cannot create {}", dir.display()))?;
    let clock = SystemClock;
    let name = format!("{:020}-{}", clock.now().0, std::process::id());
    let path = dir.join(format!("{name}.json"));
    write_atomically(&path, &serde_json::to_vec(req)?)?;
    let reply_path = path.with_extension("reply");
    let deadline = clock
        .now()
        .plus(Span::from_millis(patience.as_millis() as u64));
    loop {
        if let Ok(bytes) = std::fs::read(&reply_path) {
            let _ = std::fs::remove_file(&reply_path);
            let reply =
                serde_json::from_slice(&bytes).context("the engine's reply is not readable")?;
            return Ok(Answer::Reply(reply));
        }
        match crate::commands::open_store_within(data, false, Duration::ZERO) {
            // Removing the request succeeds only while nobody has claimed it.
            Ok(store) if std::fs::remove_file(&path).is_ok() => return Ok(Answer::Opened(store)),
            Ok(_) => {} // claimed just now: its reply follows
            Err(e) if crate::commands::operate::is_locked(&e) => {}
            Err(e) => return Err(e),
        }
        if clock.now() >= deadline && std::fs::remove_file(&path).is_ok() {
            bail!(
                "the data in {} is in use by another weft process that did not take the request \
                 within {}s; run the command again when it has finished",
                data.display(),
                patience.as_secs()
            );
        }
        clock
            .sleep_until(clock.now().plus(Span::from_millis(50)))
            .await;
    }
}
