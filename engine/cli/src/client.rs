//! Talking to a running engine: its HTTP API is the one way in. The server
//! is found through `WEFT_SERVER` (a base URL), or the address file the
//! engine holding the data directory wrote (`<data>/server.addr`); the
//! bearer token, when the server wants one, comes from `WEFT_TOKEN`.

use std::path::Path;

use anyhow::{Context, bail};
use http_body_util::{BodyExt, Full};
use hyper::body::Bytes;
use hyper::{Method, Request};
use hyper_util::rt::TokioIo;
use serde_json::Value;

use crate::commands::serve::ADDRESS_FILE;

#[derive(Debug, Clone)]
pub struct Client {
    /// `host:port`
    authority: String,
    token: Option<String>,
}

/// What the server answered that is not a success: its message (the
/// stable code is in the JSON for programs; people read the message), and
/// for a definition, each problem.
#[derive(Debug, Clone)]
pub struct Refusal {
    pub message: String,
    pub problems: Vec<String>,
}

impl Client {
    /// The server named by `WEFT_SERVER`, or by the data directory's address
    /// file; `None` when neither names one.
    pub fn find(data: &Path) -> anyhow::Result<Option<Client>> {
        let url = match std::env::var("WEFT_SERVER") {
            Ok(url) if !url.trim().is_empty() => url,
            _ => match std::fs::read_to_string(data.join(ADDRESS_FILE)) {
                Ok(text) => text,
                Err(_) => return Ok(None),
            },
        };
        let url = url.trim();
        let Some(authority) = url.strip_prefix("http://") else {
            bail!(
                "the server address '{url}' is not an http:// URL (WEFT_SERVER or {ADDRESS_FILE})"
            );
        };
        Ok(Some(Client {
            authority: authority.trim_end_matches('/').to_owned(),
            token: std::env::var("WEFT_TOKEN").ok().filter(|t| !t.is_empty()),
        }))
    }

    pub fn base(&self) -> String {
        format!("http://{}", self.authority)
    }

    /// Whether a server answers there (an address file left by an engine
    /// that was killed points nowhere).
    pub async fn alive(&self) -> bool {
        matches!(self.call(Method::GET, "/healthz", None).await, Ok(Ok(_)))
    }

    /// One request and the raw answer. The error is the transport (no
    /// server there).
    async fn exchange(
        &self,
        method: Method,
        path: &str,
        bytes: Vec<u8>,
        content_type: &str,
    ) -> anyhow::Result<(hyper::StatusCode, Bytes)> {
        let stream = tokio::net::TcpStream::connect(&self.authority)
            .await
            .with_context(|| format!("cannot reach the weft server at {}", self.base()))?;
        let (mut sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
            .await
            .with_context(|| format!("cannot talk to the weft server at {}", self.base()))?;
        tokio::spawn(async move {
            let _ = conn.await;
        });
        let mut req = Request::builder()
            .method(method)
            .uri(path)
            .header(hyper::header::HOST, &self.authority)
            .header(hyper::header::CONTENT_TYPE, content_type);
        if let Some(t) = &self.token {
            req = req.header(hyper::header::AUTHORIZATION, format!("Bearer {t}"));
        }
        let req = req.body(Full::new(Bytes::from(bytes)))?;
        let resp = sender
            .send_request(req)
            .await
            .with_context(|| format!("the weft server at {} did not answer", self.base()))?;
        let status = resp.status();
        let body = resp.into_body().collect().await?.to_bytes();
        Ok((status, body))
    }

    /// One request. The outer error is the transport (no server there);
    /// the inner one is the server's refusal.
    pub async fn call(
        &self,
        method: Method,
        path: &str,
        body: Option<&Value>,
    ) -> anyhow::Result<Result<Value, Refusal>> {
        let bytes = match body {
            Some(v) => serde_json::to_vec(v)?,
            None => Vec::new(),
        };
        let (status, body) = self
            .exchange(method, path, bytes, "application/json")
            .await?;
        Ok(answer(status, &body))
    }

    /// Sends bytes (a component) and reads a JSON answer.
    pub async fn upload(
        &self,
        path: &str,
        bytes: Vec<u8>,
    ) -> anyhow::Result<Result<Value, Refusal>> {
        let (status, body) = self
            .exchange(Method::POST, path, bytes, "application/octet-stream")
            .await?;
        Ok(answer(status, &body))
    }

    /// Reads bytes (a component).
    pub async fn download(&self, path: &str) -> anyhow::Result<Result<Vec<u8>, Refusal>> {
        let (status, body) = self
            .exchange(Method::GET, path, Vec::new(), "application/json")
            .await?;
        if status.is_success() {
            return Ok(Ok(body.to_vec()));
        }
        Ok(answer(status, &body).map(|_| Vec::new()))
    }
}

/// A JSON answer, or the refusal it carries.
fn answer(status: hyper::StatusCode, body: &[u8]) -> Result<Value, Refusal> {
    let value: Value = if body.is_empty() {
        Value::Null
    } else {
        serde_json::from_slice(body)
            .unwrap_or_else(|_| Value::String(String::from_utf8_lossy(body).into_owned()))
    };
    if status.is_success() {
        return Ok(value);
    }
    let field = |k: &str| value.get(k).and_then(Value::as_str).map(str::to_owned);
    let problems = value["problems"]
        .as_array()
        .map(|ps| {
            ps.iter()
                .filter_map(|p| p.as_str().map(str::to_owned))
                .collect()
        })
        .unwrap_or_default();
    Err(Refusal {
        message: field("message").unwrap_or_else(|| format!("{status}: {value}")),
        problems,
    })
}

/// A path segment with everything but unreserved characters escaped.
pub fn segment(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for b in text.bytes() {
        if b.is_ascii_alphanumeric() || b"-._~".contains(&b) {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    #[test]
    fn segments_escape_what_a_path_cannot_hold() {
        assert_eq!(super::segment("loan-7"), "loan-7");
        assert_eq!(super::segment("a/b c?#%"), "a%2Fb%20c%3F%23%25");
        assert_eq!(super::segment("é"), "%C3%A9");
    }
}
