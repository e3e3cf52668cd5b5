//! Request bodies: JSON read under the configured size limit, parsed with
//! the path and position of the first problem, unknown fields refused. An
//! empty body reads as `{}`, so optional bodies may be left out.

use axum::body::Bytes;
use axum::extract::{FromRequest, Request};
use axum::http::StatusCode;
use serde::de::DeserializeOwned;

use crate::error::ApiError;

/// A JSON object body (or none, read as `{}`).
pub struct Body<T>(pub T);

/// Any JSON value (a signal's payload; none is `{}`).
pub struct Payload(pub serde_json::Value);

/// The body's bytes as sent (an uploaded component).
pub struct Raw(pub Bytes);

impl<S: Send + Sync> FromRequest<S> for Raw {
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &S) -> Result<Self, ApiError> {
        read(req, state).await.map(Raw)
    }
}

/// A path's parameters, or a `bad_request` saying what is wrong with them.
pub(crate) fn path<T>(
    p: Result<axum::extract::Path<T>, axum::extract::rejection::PathRejection>,
) -> Result<T, ApiError> {
    p.map(|axum::extract::Path(t)| t)
        .map_err(|e| ApiError::bad_request(format!("the path: {e}")))
}

/// A query string, or a `bad_request` saying what is wrong with it.
pub(crate) fn query<T>(
    q: Result<axum::extract::Query<T>, axum::extract::rejection::QueryRejection>,
) -> Result<T, ApiError> {
    q.map(|axum::extract::Query(t)| t)
        .map_err(|e| ApiError::bad_request(format!("the query string: {e}")))
}

async fn read<S: Send + Sync>(req: Request, state: &S) -> Result<Bytes, ApiError> {
    Bytes::from_request(req, state).await.map_err(|r| {
        if r.status() == StatusCode::PAYLOAD_TOO_LARGE {
            ApiError::new(
                StatusCode::PAYLOAD_TOO_LARGE,
                "too_large",
                "the request body is over the server's limit (weft serve --max-body)",
            )
        } else {
            ApiError::bad_request(format!("cannot read the request body: {r}"))
        }
    })
}

impl<S, T> FromRequest<S> for Body<T>
where
    S: Send + Sync,
    T: DeserializeOwned,
{
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &S) -> Result<Self, ApiError> {
        let bytes = read(req, state).await?;
        parse_object(&bytes).map(Body)
    }
}

impl<S: Send + Sync> FromRequest<S> for Payload {
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &S) -> Result<Self, ApiError> {
        let bytes = read(req, state).await?;
        parse(&bytes).map(Payload)
    }
}

/// Parses a body that must be a JSON object (serde would also take an
/// array for a struct, field by field in order: refused here).
pub fn parse_object<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, ApiError> {
    let first = bytes.trim_ascii_start().first();
    if first.is_some_and(|&b| b != b'{' && b != b'n') {
        return Err(ApiError::new(
            StatusCode::BAD_REQUEST,
            "bad_json",
            "the request body must be a JSON object",
        ));
    }
    parse(bytes)
}

/// Parses a body, naming where it went wrong.
pub fn parse<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, ApiError> {
    // No body, or `null`, is an empty object: every body here is optional
    // or an object whose fields all have defaults.
    let text: &[u8] = if bytes.trim_ascii().is_empty() || bytes.trim_ascii() == b"null" {
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

/// A whole number that JSON may write as `2` or `2.0` (both are integers to
/// JSON Schema), read as a `u32`.
pub(crate) fn whole<'de, D: serde::Deserializer<'de>>(d: D) -> Result<u32, D::Error> {
    use serde::Deserialize as _;
    let n = serde_json::Number::deserialize(d)?;
    let whole = n.as_u64().or_else(|| {
        n.as_f64()
            .filter(|f| f.fract() == 0.0 && *f >= 0.0)
            .map(|f| f as u64)
    });
    whole.and_then(|w| u32::try_from(w).ok()).ok_or_else(|| {
        serde::de::Error::custom(format!("{n} is not a whole number from 0 to {}", u32::MAX))
    })
}

/// [`whole`], for an optional field (`null` is none).
pub(crate) fn whole_opt<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Option<u32>, D::Error> {
    use serde::Deserialize as _;
    match Option::<serde_json::Number>::deserialize(d)? {
        None => Ok(None),
        Some(n) => whole(serde_json::Value::Number(n))
            .map(Some)
            .map_err(serde::de::Error::custom),
    }
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
        assert_eq!(parse::<Req>(b" null\n").unwrap(), Req { n: 0 });
        assert_eq!(parse::<Req>(br#"{"n": 3}"#).unwrap(), Req { n: 3 });
        let e = parse::<Req>(br#"{"n": "x"}"#).unwrap_err();
        assert_eq!(e.code, "bad_json");
        assert!(e.message.contains("at n"), "{}", e.message);
        let e = parse::<Req>(br#"{"m": 1}"#).unwrap_err();
        assert!(e.message.contains("unknown field `m`"), "{}", e.message);
        let e = parse_object::<Req>(b"[3]").unwrap_err();
        assert!(e.message.contains("must be a JSON object"), "{}", e.message);
        assert_eq!(parse_object::<Req>(b"null").unwrap(), Req { n: 0 });
        #[derive(Debug, Deserialize, PartialEq)]
        struct V {
            #[serde(deserialize_with = "whole")]
            v: u32,
        }
        assert_eq!(parse_object::<V>(br#"{"v": 2.0}"#).unwrap(), V { v: 2 });
        assert!(parse_object::<V>(br#"{"v": 2.5}"#).is_err());
        assert!(parse_object::<V>(br#"{"v": -1}"#).is_err());
        assert!(parse_object::<V>(br#"{"v": 1e300}"#).is_err());
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
