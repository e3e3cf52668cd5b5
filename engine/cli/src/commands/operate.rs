//! `weft complete`, `heartbeat`, `redrive`, `cancel`, `signal`, `migrate`,
//! `start`: operator requests. When an engine holds the data directory they
//! go to it through its HTTP API (the one way into a running engine); when
//! none does, an offline engine applies them to the store and the instance
//! continues at the next `weft serve` or `weft resume`.

use std::path::Path;
use std::time::Duration;

use anyhow::Context;
use hyper::Method;
use serde_json::{Value, json};
use weft_core::{Completion, Engine};
use weft_model::Failure;

use super::{Reach, offline_engine, reach};
use crate::client::{Client, segment};
use crate::{exit, render};

/// How long to wait for another weft process that holds the data directory
/// without serving an API (a short command) to let go of it.
pub const PATIENCE: Duration = Duration::from_secs(30);

pub async fn operate(data: &Path, req: Request) -> anyhow::Result<u8> {
    let reply = match reach(data, PATIENCE).await? {
        Reach::Server(client) => remote(&client, &req).await?,
        Reach::Store(store) => {
            let engine = offline_engine(store)?;
            let mut reply = apply(&engine, &req).await;
            engine.shutdown().await;
            if reply.ok && !matches!(req, Request::Start { .. }) {
                reply.message.push_str(&format!(
                    "; no engine is running, so it continues with `weft resume --data {}`",
                    data.display()
                ));
            }
            reply
        }
    };
    Ok(answer(reply))
}

/// An operator request: applied by the engine holding the data directory
/// (through its API), or by an offline engine when none does.
#[derive(Debug, Clone)]
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

#[derive(Debug, Clone)]
pub struct Reply {
    pub ok: bool,
    pub message: String,
}

/// Applies a request to an engine of this process.
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
                let i = engine.resolve(text).await?;
                engine.redrive(&i).await?;
                format!("redriving instance {i}")
            }
            Request::Cancel {
                id: text,
                compensate,
            } => {
                let i = engine.resolve(text).await?;
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
                let i = engine.resolve(target).await?;
                engine.signal(&i, event, data.clone()).await?;
                format!("delivered '{event}' to instance {i}")
            }
            Request::Migrate { target, version } => {
                let i = engine.resolve(target).await?;
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

/// Sends a request to a running engine's API; says what came of it as the
/// engine of this process would.
pub async fn remote(client: &Client, req: &Request) -> anyhow::Result<Reply> {
    let instance = |v: &Value, k: &str| v[k].as_str().unwrap_or_default().to_owned();
    let (method, path, body) = match req {
        Request::Complete { token, output } => (
            Method::POST,
            format!("/v1/tokens/{}/complete", segment(token)),
            json!({ "output": output }),
        ),
        Request::Fail {
            token,
            kind,
            message,
        } => (
            Method::POST,
            format!("/v1/tokens/{}/complete", segment(token)),
            json!({ "error": { "kind": kind, "message": message } }),
        ),
        Request::Heartbeat { token, details } => (
            Method::POST,
            format!("/v1/tokens/{}/heartbeat", segment(token)),
            json!({ "details": details }),
        ),
        Request::Redrive { id } => (
            Method::POST,
            format!("/v1/instances/{}/redrive", segment(id)),
            json!({}),
        ),
        Request::Cancel { id, compensate } => (
            Method::POST,
            format!("/v1/instances/{}/cancel", segment(id)),
            json!({ "compensate": compensate }),
        ),
        Request::Signal {
            target,
            event,
            data,
        } => (
            Method::POST,
            format!(
                "/v1/instances/{}/signals/{}",
                segment(target),
                segment(event)
            ),
            data.clone(),
        ),
        Request::Migrate { target, version } => (
            Method::POST,
            format!("/v1/instances/{}/migrate", segment(target)),
            json!({ "version": version }),
        ),
        Request::Start {
            process,
            version,
            input,
            key,
        } => (
            Method::POST,
            format!("/v1/processes/{}/instances", segment(process)),
            json!({ "input": input, "key": key, "version": version }),
        ),
    };
    let answered = client.call(method, &path, Some(&body)).await?;
    let v = match answered {
        Ok(v) => v,
        Err(refusal) => {
            return Ok(Reply {
                ok: false,
                message: refusal.message,
            });
        }
    };
    let message = match req {
        Request::Complete { token, .. } => {
            format!(
                "completed token '{token}' of instance {}",
                instance(&v, "instance")
            )
        }
        Request::Fail { token, kind, .. } => format!(
            "failed token '{token}' of instance {} with error.{kind}",
            instance(&v, "instance")
        ),
        Request::Heartbeat { token, .. } => format!(
            "recorded a heartbeat for token '{token}' of instance {}",
            instance(&v, "instance")
        ),
        Request::Redrive { .. } => format!("redriving instance {}", instance(&v, "id")),
        Request::Cancel { compensate, .. } => {
            if *compensate {
                format!(
                    "cancelling instance {}, undoing its completed steps first",
                    instance(&v, "id")
                )
            } else {
                format!("cancelled instance {}", instance(&v, "id"))
            }
        }
        Request::Signal { event, .. } => {
            format!("delivered '{event}' to instance {}", instance(&v, "id"))
        }
        Request::Migrate { version, .. } => {
            format!("instance {} now runs version {version}", instance(&v, "id"))
        }
        Request::Start { .. } => {
            if v["existing"] == json!(true) {
                format!(
                    "{}\nan instance with this key already exists",
                    instance(&v, "id")
                )
            } else {
                instance(&v, "id")
            }
        }
    };
    Ok(Reply { ok: true, message })
}

/// Prints an engine's reply to a request; the exit code it means.
pub fn answer(reply: Reply) -> u8 {
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
