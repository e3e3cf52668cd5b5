//! Request bodies: JSON read under the configured size limit, parsed with
//! the path and position of the first problem, unknown fields refused. An
//! empty body reads as `{}`, so optional bodies may be left out.

use axum::body::Bytes;
use axum::extract::{FromRequest, Request};
use axum::http::StatusCode;
use serde::de::DeserializeOwned;

use crate::error::ApiError;

pub struct Body<T>(pub T);

impl<S, T> FromRequest<S> for Body<T>
where
    S: Send + Sync,
    T: DeserializeOwned,
{
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &S) -> Result<Self, ApiError> {
        let bytes = Bytes::from_request(req, state).await.map_err(|r| {
            if r.status() == StatusCode::PAYLOAD_TOO_LARGE {
                ApiError::new(
                    StatusCode::PAYLOAD_TOO_LARGE,
                    "too_large",
                    "the request body is over the server's limit (weft serve --max-body)",
                )
            } else {
                ApiError::bad_request(format!("cannot read the request body: {r}"))
            }
        })?;
        parse(&bytes).map(Body)
    }
}

/// Parses a body, naming where it went wrong.
pub fn parse<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, ApiError> {
    let text: &[u8] = if bytes.iter().all(u8::is_ascii_whitespace) {
        b"{}"
    } else {
        bytes
    };
    let bad = |at: String, why: String| {
        ApiError::new(
            StatusCode::BAD_REQUEST,
            "bad_json",
            format!("the request body is not what this endpoint takes{at}: {why}"),
        )
    };
    let mut de = serde_json::Deserializer::from_slice(text);
    let value: T = serde_path_to_error::deserialize(&mut de).map_err(|e| {
        let path = e.path().to_string();
        let at = if path == "." {
            String::new()
        } else {
            format!(" at {path}")
        };
        bad(at, e.into_inner().to_string())
    })?;
    de.end().map_err(|e| bad(String::new(), e.to_string()))?;
    Ok(value)
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use serde::Deserialize;

    #[derive(Debug, Deserialize, PartialEq)]
    #[serde(deny_unknown_fields)]
    struct Req {
        #[serde(default)]
        n: u32,
    }

    #[test]
    fn bodies_parse_with_located_errors() {
        assert_eq!(parse::<Req>(b"").unwrap(), Req { n: 0 });
        assert_eq!(parse::<Req>(br#"{"n": 3}"#).unwrap(), Req { n: 3 });
        let e = parse::<Req>(br#"{"n": "x"}"#).unwrap_err();
        assert_eq!(e.code, "bad_json");
        assert!(e.message.contains("at n"), "{}", e.message);
        let e = parse::<Req>(br#"{"m": 1}"#).unwrap_err();
        assert!(e.message.contains("unknown field `m`"), "{}", e.message);
        let e = parse::<Req>(br#"{"n": 1} trailing"#).unwrap_err();
        assert_eq!(e.code, "bad_json");
        let deep = "[".repeat(10_000);
        assert_eq!(
            parse::<serde_json::Value>(deep.as_bytes())
                .unwrap_err()
                .code,
            "bad_json"
        );
    }
}
