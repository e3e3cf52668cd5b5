//! Paths a result is stored at (`output: .payment.result`): checked once
//! when compiled, and run against the data each time a result is stored.

use serde_json::Value;

use super::{CompileError, Expr, Failure, MAX_DEPTH};
use crate::error::{Error, Result};

/// How far past the end of an array a path may store: the gap fills with
/// nulls, and an index from a typo or from data (`.a[.n]`) must not make a
/// terabyte of them. Ten thousand is far beyond any array a process builds
/// slot by slot.
pub const MAX_INDEX_GAP: usize = 10_000;

/// A path into instance data (`.reservation`, `.items[0].result`) that a value
/// can be stored at. Missing objects and arrays on the way are created, as jq
/// does.
#[derive(Clone, Debug, PartialEq)]
pub struct PathExpr {
    paths: Expr,
    /// For plain paths (`.`, `.a`, `.a.b_c`), the keys: these are set
    /// directly, without running jq over the whole instance data.
    pub(super) plain: Option<Vec<String>>,
}

/// The keys of a plain path like `.a.b`, or `None` for anything fancier.
fn plain_keys(source: &str) -> Option<Vec<String>> {
    let s = source.trim();
    if s == "." {
        return Some(Vec::new());
    }
    let ident = |k: &str| {
        k.chars()
            .next()
            .is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
            && k.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')
    };
    let keys: Vec<&str> = s.strip_prefix('.')?.split('.').collect();
    keys.iter()
        .all(|k| ident(k))
        .then(|| keys.iter().map(|k| (*k).to_owned()).collect())
}

impl PathExpr {
    pub fn compile(source: &str) -> Result<PathExpr, CompileError> {
        // Compile the path alone first so errors point into the user's text.
        Expr::compile(source)?;
        let paths = Expr::build(&format!("[path({source})]"), &[])?;
        let path = PathExpr {
            paths,
            plain: plain_keys(source),
        };
        // A non-path (`.a + 1`) only fails when run: try it once on empty
        // data, without building what it names.
        let refused = |message| Err(CompileError { message, offset: 0 });
        let mut empty = Value::Object(Default::default());
        match path.place(&empty) {
            Err(Failure::Exceeded(why)) => refused(format!("`{source}` {}", why.describe())),
            Ok(place) if place.len() > MAX_DEPTH as usize => refused(path.too_deep()),
            Ok(place) if store(&mut empty, &place, &Value::Null, false).is_ok() => Ok(path),
            _ => refused(format!(
                "`{source}` is not a path a result can be stored at"
            )),
        }
    }

    pub fn source(&self) -> &str {
        let s = self.paths.source();
        s.strip_prefix("[path(")
            .and_then(|s| s.strip_suffix(")]"))
            .unwrap_or(s)
    }

    /// The keys and indices of the one place this path names in `data`.
    fn place(&self, data: &Value) -> Result<Vec<Value>, Failure> {
        if let Some(keys) = &self.plain {
            return Ok(keys.iter().map(|k| Value::String(k.clone())).collect());
        }
        let paths = self.paths.run(data, &[])?;
        match paths.as_array().map(Vec::as_slice) {
            Some([one]) => Ok(one.as_array().cloned().unwrap_or_default()),
            _ => Err(Failure::Error(format!(
                "`{}` must name exactly one place",
                self.source()
            ))),
        }
    }

    /// Data nested deeper than [`MAX_DEPTH`] could be stored but not read
    /// back (see there).
    fn too_deep(&self) -> String {
        format!(
            "`{}` names a place nested deeper than {MAX_DEPTH} levels",
            self.source()
        )
    }

    /// `data` with `value` stored at this path.
    pub fn set(&self, data: &Value, value: &Value) -> Result<Value> {
        let refused = |message| Error::Store {
            path: self.source().to_owned(),
            message,
        };
        let place = self.place(data).map_err(|f| f.into_error(self.source()))?;
        if place.len() > MAX_DEPTH as usize {
            return Err(refused(self.too_deep()));
        }
        let mut out = data.clone();
        store(&mut out, &place, value, true).map_err(refused)?;
        Ok(out)
    }
}

/// Stores `value` at `place` in `data`, creating objects and arrays on the
/// way (an index past the end of an array pads it with nulls). Unless
/// `build`, only checks that it could: nothing below a slot that does not
/// exist yet can be in the way.
fn store(data: &mut Value, place: &[Value], value: &Value, build: bool) -> Result<(), String> {
    let mut slot = data;
    for (at, step) in place.iter().enumerate() {
        slot = match step {
            Value::String(key) => {
                if slot.is_null() {
                    *slot = Value::Object(Default::default());
                }
                match slot {
                    Value::Object(m) => m.entry(key.clone()).or_insert(Value::Null),
                    other => {
                        return Err(format!("cannot store at .{key} inside {}", kind(other)));
                    }
                }
            }
            Value::Number(n) if n.as_u64().is_none() => {
                return Err(format!("cannot store at index {n}"));
            }
            Value::Number(i) => {
                let i = i
                    .as_u64()
                    .and_then(|i| usize::try_from(i).ok())
                    .unwrap_or(usize::MAX);
                if slot.is_null() {
                    *slot = Value::Array(Vec::new());
                }
                let Value::Array(a) = slot else {
                    return Err(format!("cannot store at [{i}] inside {}", kind(slot)));
                };
                if i >= a.len() {
                    // Checking only, an array may well be longer when it
                    // comes to storing.
                    if !build {
                        return storable(&place[at + 1..]);
                    }
                    if i - a.len() > MAX_INDEX_GAP {
                        return Err(format!(
                            "cannot store at index {i}: it is more than {MAX_INDEX_GAP} past the end of the array (length {})",
                            a.len()
                        ));
                    }
                    a.resize(i + 1, Value::Null);
                }
                &mut a[i]
            }
            other => return Err(format!("cannot store at {other}")),
        };
    }
    if build {
        *slot = value.clone();
    }
    Ok(())
}

/// Whether a place below a slot that does not exist yet can be created.
fn storable(place: &[Value]) -> Result<(), String> {
    match place
        .iter()
        .find(|step| !step.is_string() && !step.is_u64())
    {
        Some(Value::Number(n)) => Err(format!("cannot store at index {n}")),
        Some(other) => Err(format!("cannot store at {other}")),
        None => Ok(()),
    }
}

fn kind(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}
