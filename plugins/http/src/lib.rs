//! The generic HTTP adapter: its one action, `request`, calls a real
//! service and maps the answer onto weft's outcomes.
//!
//! ```yaml
//! actions:
//!   charge_payment:
//!     plugin: http
//!     action: request
//!     allow_hosts: ["payments.internal:443"]   # without it: no network at all
//!     secrets: [PAYMENTS_TOKEN]
//!     config:
//!       method: POST                           # default GET
//!       url: "https://payments.internal/charges/{{ input.order_id }}"
//!       headers: { authorization: "Bearer {{ secrets.PAYMENTS_TOKEN }}" }
//!       body: { amount: "{{ input.amount }}" } # default: the input, for POST, PUT, PATCH
//!       timeout_ms: 5000                       # connect and each read; default: none
//! ```
//!
//! - 2xx → `done` with the body: parsed JSON, else the text (`null` if empty).
//! - 429 and 5xx → retryable; a `Retry-After` of seconds sets the delay
//!   before the next attempt.
//! - other 4xx → `error.http_<status>` (e.g. `error.http_404`), never retried.
//! - 3xx → fatal: redirects are not followed, point the binding at the target.
//! - connection errors, DNS failures and timeouts → retryable.
//!
//! Every request carries an `idempotency-key` header with the step's key
//! (stable across retries), so a service that honours it applies a retried
//! request once. Messages show the URL as written in the binding, never
//! with values (or secrets) filled in.

mod template;

use wasip2::http::outgoing_handler;
use wasip2::http::types::{
    ErrorCode, Fields, IncomingResponse, Method, OutgoingBody, OutgoingRequest, RequestOptions,
    Scheme,
};
use wasip2::io::streams::StreamError;
use weft_plugin_sdk::{Action, Adapter, Call, Failure, Manifest, Reply, Value};

use template::Into;

/// The largest response body read; a larger one fails the attempt.
const MAX_RESPONSE: usize = 8 << 20;
/// How much of an error body a failure message quotes.
const QUOTED: usize = 200;

/// The 4xx statuses a process may route on, as `error.http_<status>`.
const CLIENT_ERRORS: &[u16] = &[
    400, 401, 402, 403, 404, 405, 406, 407, 408, 409, 410, 411, 412, 413, 414, 415, 416, 417, 418,
    421, 422, 423, 424, 425, 426, 428, 431, 451,
];

struct Http;

impl Adapter for Http {
    fn manifest() -> Manifest {
        let errors = CLIENT_ERRORS.iter().map(|s| format!("http_{s}"));
        Manifest::new("http", env!("CARGO_PKG_VERSION"))
            .action(Action::new("request").errors(errors))
    }

    fn invoke(call: Call) -> Result<Reply, Failure> {
        let request = Request::build(&call)?;
        let answer = request.send()?;
        request.outcome(answer).map_err(|f| redact(f, &call))
    }
}

weft_plugin_sdk::adapter!(Http);

/// A failure with every secret's value blanked out: a service may echo
/// what it was sent (`401 invalid token ...`) into the body a message
/// quotes.
fn redact(failure: Failure, call: &Call) -> Failure {
    let Some(secrets) = call.config.get("secrets").and_then(Value::as_object) else {
        return failure;
    };
    let blank = |mut text: String| {
        for value in secrets.values().filter_map(Value::as_str) {
            if !value.is_empty() {
                text = text.replace(value, "***");
            }
        }
        text
    };
    match failure {
        Failure::Retryable(m) => Failure::Retryable(blank(m)),
        Failure::Fatal(m) => Failure::Fatal(blank(m)),
        Failure::Error { kind, message } => Failure::Error {
            kind,
            message: blank(message),
        },
    }
}

/// How long the `host[:port]` at the start of `rest` (a URL after its
/// `://`) is: up to its path or query.
fn authority_len(rest: &str) -> usize {
    rest.find(['/', '?']).unwrap_or(rest.len())
}

/// A request with every placeholder filled in.
struct Request {
    method: String,
    /// The URL as the binding writes it: what messages show.
    shown: String,
    scheme: Scheme,
    authority: String,
    path: String,
    headers: Vec<(String, Vec<u8>)>,
    body: Option<Vec<u8>>,
    timeout_ms: Option<u64>,
}

struct Answer {
    status: u16,
    retry_after: Option<u64>,
    body: Vec<u8>,
}

fn config_error(message: String) -> Failure {
    Failure::fatal(format!("the binding's config: {message}"))
}

impl Request {
    fn build(call: &Call) -> Result<Request, Failure> {
        let config = &call.config;
        let method = match config.get("method") {
            None => "GET".to_owned(),
            Some(Value::String(m)) if !m.is_empty() => m.to_ascii_uppercase(),
            Some(other) => return Err(config_error(format!("method {other} is not a method"))),
        };
        let shown = config
            .get("url")
            .and_then(Value::as_str)
            .ok_or_else(|| config_error("`url` is missing".into()))?
            .to_owned();
        // Values are percent-encoded in the path and query, not in the host.
        // A URL whose scheme comes from a value (`{{ input.url }}`) is filled
        // in as it is. `filled_host` is the host as the template's own split
        // gives it: a value that moves the split (a `/` or `?` in it) would
        // send the request somewhere the binding did not write.
        let (url, filled_host) = match shown.find("://").filter(|i| !shown[..*i].contains("{{")) {
            None => (
                template::text(&shown, call, Into::Text).map_err(config_error)?,
                None,
            ),
            Some(i) => {
                let host_end = i + 3 + authority_len(&shown[i + 3..]);
                let origin =
                    template::text(&shown[..host_end], call, Into::Text).map_err(config_error)?;
                let host = origin[i + 3..].to_owned();
                let rest =
                    template::text(&shown[host_end..], call, Into::Url).map_err(config_error)?;
                (origin + &rest, Some(host))
            }
        };
        let (scheme, rest) = match url.split_once("://") {
            Some(("http", rest)) => (Scheme::Http, rest),
            Some(("https", rest)) => (Scheme::Https, rest),
            _ => {
                return Err(config_error(format!(
                    "url '{shown}' must start with http:// or https://"
                )));
            }
        };
        let (authority, path) = rest.split_at(authority_len(rest));
        if authority.is_empty() {
            return Err(config_error(format!("url '{shown}' names no host")));
        }
        // The host is what `allow_hosts` checks: no credentials, and no value
        // that moved it.
        if authority.contains(['#', '@', ' ', '\\']) || filled_host.is_some_and(|h| h != authority)
        {
            return Err(config_error(format!(
                "the host of '{shown}' is not a host:port once filled in (credentials go in a header)"
            )));
        }
        let path = match path {
            "" => "/".to_owned(),
            p if p.starts_with('?') => format!("/{p}"),
            p => p.to_owned(),
        };

        let mut headers = vec![(
            "idempotency-key".to_owned(),
            call.idempotency_key.clone().into_bytes(),
        )];
        if let Some(given) = config.get("headers") {
            let given = given
                .as_object()
                .ok_or_else(|| config_error("`headers` must be an object".into()))?;
            for (name, v) in given {
                let v = v
                    .as_str()
                    .ok_or_else(|| config_error(format!("header {name} must be a string")))?;
                let filled = template::text(v, call, Into::Text).map_err(config_error)?;
                if filled.contains(['\r', '\n']) {
                    return Err(config_error(format!(
                        "header {name} would hold a line break"
                    )));
                }
                headers.retain(|(n, _)| !n.eq_ignore_ascii_case(name));
                headers.push((name.to_ascii_lowercase(), filled.into_bytes()));
            }
        }

        let body = match config.get("body") {
            Some(b) => Some(template::value(b, call).map_err(config_error)?),
            None if matches!(method.as_str(), "POST" | "PUT" | "PATCH") => Some(call.input.clone()),
            None => None,
        };
        let body = body.map(|b| {
            let (bytes, kind) = match b {
                Value::String(text) => (text.into_bytes(), "text/plain; charset=utf-8"),
                other => (other.to_string().into_bytes(), "application/json"),
            };
            if !headers.iter().any(|(n, _)| n == "content-type") {
                headers.push(("content-type".to_owned(), kind.as_bytes().to_vec()));
            }
            // Sent whole rather than chunked: every server reads that.
            headers.retain(|(n, _)| n != "content-length");
            headers.push((
                "content-length".to_owned(),
                bytes.len().to_string().into_bytes(),
            ));
            bytes
        });
        let timeout_ms = match config.get("timeout_ms") {
            None => None,
            Some(v) => Some(v.as_u64().filter(|ms| *ms > 0).ok_or_else(|| {
                config_error("`timeout_ms` must be a whole number of milliseconds".into())
            })?),
        };
        Ok(Request {
            method,
            shown,
            scheme,
            authority: authority.to_owned(),
            path,
            headers,
            body,
            timeout_ms,
        })
    }

    fn send(&self) -> Result<Answer, Failure> {
        let unusable = |what: &str| config_error(format!("{what} of '{}' is unusable", self.shown));
        let fields = Fields::from_list(&self.headers)
            .map_err(|e| config_error(format!("the headers cannot be sent: {e:?}")))?;
        let request = OutgoingRequest::new(fields);
        let method = match self.method.as_str() {
            "GET" => Method::Get,
            "HEAD" => Method::Head,
            "POST" => Method::Post,
            "PUT" => Method::Put,
            "DELETE" => Method::Delete,
            "PATCH" => Method::Patch,
            "OPTIONS" => Method::Options,
            other => Method::Other(other.to_owned()),
        };
        request
            .set_method(&method)
            .map_err(|()| unusable("the method"))?;
        request
            .set_scheme(Some(&self.scheme))
            .map_err(|()| unusable("the scheme"))?;
        request
            .set_authority(Some(&self.authority))
            .map_err(|()| unusable("the host"))?;
        request
            .set_path_with_query(Some(&self.path))
            .map_err(|()| unusable("the path"))?;
        let body = request
            .body()
            .map_err(|()| Failure::fatal("the request body is unavailable"))?;
        let options = self.timeout_ms.map(|ms| {
            let o = RequestOptions::new();
            let ns = ms.saturating_mul(1_000_000);
            // Each may be refused by a host that does not support it; the
            // attempt's own timeout still applies then.
            let _ = o.set_connect_timeout(Some(ns));
            let _ = o.set_first_byte_timeout(Some(ns));
            let _ = o.set_between_bytes_timeout(Some(ns));
            o
        });
        let pending = outgoing_handler::handle(request, options).map_err(|e| self.failed(&e))?;
        {
            let stream = body
                .write()
                .map_err(|()| Failure::fatal("the request body cannot be written"))?;
            for chunk in self.body.as_deref().unwrap_or_default().chunks(4096) {
                stream
                    .blocking_write_and_flush(chunk)
                    .map_err(|e| self.stream_failed(e))?;
            }
        }
        OutgoingBody::finish(body, None).map_err(|e| self.failed(&e))?;

        pending.subscribe().block();
        let response = match pending.get() {
            Some(Ok(Ok(r))) => r,
            Some(Ok(Err(e))) => return Err(self.failed(&e)),
            Some(Err(())) | None => return Err(Failure::retryable("the response was lost")),
        };
        self.read(response)
    }

    fn read(&self, response: IncomingResponse) -> Result<Answer, Failure> {
        let status = response.status();
        let retry_after = response
            .headers()
            .get("retry-after")
            .first()
            .and_then(|v| std::str::from_utf8(v).ok()?.trim().parse::<u64>().ok());
        let incoming = response
            .consume()
            .map_err(|()| Failure::retryable("the response body was already taken"))?;
        let mut body = Vec::new();
        {
            let stream = incoming
                .stream()
                .map_err(|()| Failure::retryable("the response body is unreadable"))?;
            loop {
                match stream.blocking_read(64 * 1024) {
                    Ok(chunk) => body.extend_from_slice(&chunk),
                    Err(StreamError::Closed) => break,
                    Err(e) => return Err(self.stream_failed(e)),
                }
                if body.len() > MAX_RESPONSE {
                    return Err(Failure::fatal(format!(
                        "{} {} answered more than {} MiB",
                        self.method,
                        self.shown,
                        MAX_RESPONSE >> 20
                    )));
                }
            }
        }
        drop(incoming);
        Ok(Answer {
            status,
            retry_after,
            body,
        })
    }

    fn outcome(&self, answer: Answer) -> Result<Reply, Failure> {
        let Answer {
            status,
            retry_after,
            body,
        } = answer;
        let said = || {
            let text = String::from_utf8_lossy(&body);
            let words: Vec<&str> = text.split_whitespace().collect();
            let cut: String = words.join(" ").chars().take(QUOTED).collect();
            if cut.is_empty() {
                format!("{} {} answered {status}", self.method, self.shown)
            } else {
                format!("{} {} answered {status}: {cut}", self.method, self.shown)
            }
        };
        match status {
            200..=299 => {
                if body.iter().all(u8::is_ascii_whitespace) {
                    return Ok(Reply::done(Value::Null));
                }
                Ok(Reply::done(serde_json::from_slice(&body).unwrap_or_else(
                    |_| Value::String(String::from_utf8_lossy(&body).into_owned()),
                )))
            }
            429 | 500..=599 => {
                if let Some(secs) = retry_after {
                    weft_plugin_sdk::retry_after(secs.saturating_mul(1000));
                }
                Err(Failure::retryable(said()))
            }
            400..=499 => Err(Failure::error(format!("http_{status}"), said())),
            300..=399 => Err(Failure::fatal(format!(
                "{}; redirects are not followed: point the binding at the target",
                said()
            ))),
            _ => Err(Failure::fatal(said())),
        }
    }

    /// A transport error: worth another attempt unless the request itself
    /// is wrong.
    fn failed(&self, e: &ErrorCode) -> Failure {
        let what = format!("{} {}: {e:?}", self.method, self.shown);
        match e {
            ErrorCode::HttpRequestDenied => {
                Failure::fatal(format!("{what}: the binding does not allow this host"))
            }
            ErrorCode::HttpRequestUriInvalid
            | ErrorCode::HttpRequestMethodInvalid
            | ErrorCode::HttpRequestUriTooLong
            | ErrorCode::HttpRequestHeaderSectionSize(_)
            | ErrorCode::HttpRequestHeaderSize(_)
            | ErrorCode::HttpProtocolError
            | ErrorCode::TlsCertificateError
            | ErrorCode::DestinationIpProhibited => Failure::fatal(what),
            _ => Failure::retryable(what),
        }
    }

    fn stream_failed(&self, e: StreamError) -> Failure {
        match e {
            StreamError::LastOperationFailed(err) => Failure::retryable(format!(
                "{} {}: {}",
                self.method,
                self.shown,
                err.to_debug_string()
            )),
            StreamError::Closed => Failure::retryable(format!(
                "{} {}: the connection closed early",
                self.method, self.shown
            )),
        }
    }
}
