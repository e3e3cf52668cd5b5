//! jq expressions over instance data, compiled once with jaq and evaluated
//! purely: filters that read the clock, the environment or stdin (`now`, `env`,
//! `input`, `debug`, ...) are left out, so an expression's result depends only
//! on its input.

use std::fmt;
use std::sync::Arc;

use jaq_core::load::{Arena, File, Loader};
use jaq_core::{Compiler, Ctx, Vars, data, unwrap_valr};
use jaq_json::Val;
use serde::Deserialize;
use serde_json::Value;

type D = data::JustLut<Val>;
type Filter = jaq_core::Filter<D>;

/// Filters that are not pure functions of their input: they read the clock,
/// the environment or stdin, or write to stderr. jaq's own definitions use
/// some of them, so they stay registered; user expressions may not name them.
const IMPURE: &[&str] = &[
    "now",
    "env",
    "$ENV",
    "halt",
    "halt_error",
    "input",
    "inputs",
    "debug",
    "debug_empty",
    "stderr",
    "stderr_empty",
    "localtime",
    "strflocaltime",
    "input_filename",
    "input_line_number",
];

/// A compile error: what is wrong and at which character (0-based) of the
/// expression text.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CompileError {
    pub message: String,
    pub offset: usize,
}

impl fmt::Display for CompileError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

/// A compiled jq expression.
#[derive(Clone)]
pub struct Expr {
    source: Arc<str>,
    filter: Arc<Filter>,
    vars: usize,
}

impl fmt::Debug for Expr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Expr({:?})", self.source)
    }
}

impl PartialEq for Expr {
    fn eq(&self, other: &Self) -> bool {
        self.source == other.source
    }
}

impl Expr {
    /// Compiles `source`; it may refer to the variables named in `vars`
    /// (each starting with `$`), given in that order to [`Expr::eval_with`].
    pub fn compile_with(source: &str, vars: &[&str]) -> Result<Expr, CompileError> {
        let code = source.to_owned();
        let filter = compile(&code, vars)?;
        Ok(Expr {
            source: source.into(),
            filter: Arc::new(filter),
            vars: vars.len(),
        })
    }

    pub fn compile(source: &str) -> Result<Expr, CompileError> {
        Self::compile_with(source, &[])
    }

    pub fn source(&self) -> &str {
        &self.source
    }

    /// The first value the expression yields for `input`.
    pub fn eval(&self, input: &Value) -> Result<Value, String> {
        self.eval_with(input, &[])
    }

    /// Like [`Expr::eval`], with values for the variables named at compile time.
    pub fn eval_with(&self, input: &Value, vars: &[&Value]) -> Result<Value, String> {
        if vars.len() != self.vars {
            return Err(format!(
                "expression takes {} variables, {} given",
                self.vars,
                vars.len()
            ));
        }
        let input = to_val(input)?;
        let vars = vars
            .iter()
            .map(|v| to_val(v))
            .collect::<Result<Vec<_>, _>>()?;
        let ctx = Ctx::<D>::new(&self.filter.lut, Vars::new(vars));
        let mut out = self.filter.id.run((ctx, input)).map(unwrap_valr);
        match out.next() {
            Some(Ok(v)) => from_val(&v),
            Some(Err(e)) => Err(format!("`{}` failed: {e}", self.source)),
            None => Err(format!("`{}` produced no value", self.source)),
        }
    }

    /// True when the expression's first value is neither `false` nor `null`.
    pub fn test(&self, input: &Value) -> Result<bool, String> {
        let v = self.eval(input)?;
        Ok(!matches!(v, Value::Null | Value::Bool(false)))
    }
}

/// A path into instance data (`.reservation`, `.items[0].result`) that a value
/// can be stored at. Missing objects and arrays on the way are created, as jq
/// does.
#[derive(Clone, Debug, PartialEq)]
pub struct PathExpr {
    paths: Expr,
    /// For plain paths (`.`, `.a`, `.a.b_c`), the keys: these are set
    /// directly, without running jq over the whole instance data.
    plain: Option<Vec<String>>,
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
        let paths = Expr::compile(&format!("[path({source})]"))?;
        let path = PathExpr {
            paths,
            plain: plain_keys(source),
        };
        // A non-path (`.a + 1`) only fails when run: try it once on empty data.
        path.set(&Value::Object(Default::default()), &Value::Null)
            .map_err(|_| CompileError {
                message: format!("`{source}` is not a path a result can be stored at"),
                offset: 0,
            })?;
        Ok(path)
    }

    pub fn source(&self) -> &str {
        let s = self.paths.source();
        s.strip_prefix("[path(")
            .and_then(|s| s.strip_suffix(")]"))
            .unwrap_or(s)
    }

    /// `data` with `value` stored at this path.
    pub fn set(&self, data: &Value, value: &Value) -> Result<Value, String> {
        let path: Vec<Value> = match &self.plain {
            Some(keys) => keys.iter().map(|k| Value::String(k.clone())).collect(),
            None => {
                let paths = self.paths.eval(data)?;
                match paths.as_array().map(Vec::as_slice) {
                    Some([one]) => one.as_array().cloned().unwrap_or_default(),
                    _ => return Err(format!("`{}` must name exactly one place", self.source())),
                }
            }
        };
        let mut out = data.clone();
        let mut slot = &mut out;
        for step in &path {
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
                Value::Number(n) => {
                    let i = n
                        .as_u64()
                        .ok_or_else(|| format!("cannot store at index {n}"))?
                        as usize;
                    if slot.is_null() {
                        *slot = Value::Array(Vec::new());
                    }
                    match slot {
                        Value::Array(a) => {
                            if a.len() <= i {
                                a.resize(i + 1, Value::Null);
                            }
                            &mut a[i]
                        }
                        other => {
                            return Err(format!("cannot store at [{i}] inside {}", kind(other)));
                        }
                    }
                }
                other => return Err(format!("cannot store at {other}")),
            };
        }
        *slot = value.clone();
        Ok(out)
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

fn compile(code: &str, vars: &[&str]) -> Result<Filter, CompileError> {
    let defs = jaq_core::defs()
        .chain(jaq_std::defs())
        .chain(jaq_json::defs());
    if let Some((name, offset)) = impure_name(code) {
        return Err(CompileError {
            message: format!(
                "`{name}` is not available: expressions must not read the clock, environment or input"
            ),
            offset,
        });
    }
    let funs = jaq_core::funs::<D>()
        .chain(jaq_std::funs::<D>())
        .chain(jaq_json::funs::<D>());
    let arena = Arena::default();
    let loader = Loader::new(defs);
    let modules = loader
        .load(&arena, File { code, path: () })
        .map_err(|errs| load_error(code, errs))?;
    Compiler::default()
        .with_funs(funs)
        .with_global_vars(vars.iter().copied())
        .compile(modules)
        .map_err(|errs| {
            let (name, undefined) = errs
                .into_iter()
                .flat_map(|(_, es)| es)
                .next()
                .unwrap_or(("", jaq_core::compile::Undefined::Var));
            CompileError {
                message: format!("undefined {} `{name}`", undefined.as_str()),
                offset: offset_in(code, name),
            }
        })
}

fn load_error<P>(code: &str, errs: jaq_core::load::Errors<&str, P>) -> CompileError {
    use jaq_core::load::Error;
    let first = errs.into_iter().next().map(|(_, e)| e);
    let (what, found) = match first {
        Some(Error::Lex(es)) => match es.into_iter().next() {
            Some((expect, found)) => (format!("expected {}", expect.as_str()), found),
            None => ("cannot read the expression".to_owned(), code),
        },
        Some(Error::Parse(es)) => match es.into_iter().next() {
            Some((expect, found)) => (format!("expected {}", expect.as_str()), found),
            None => ("cannot read the expression".to_owned(), code),
        },
        Some(Error::Io(es)) => (
            es.into_iter()
                .next()
                .map(|(_, m)| m)
                .unwrap_or_else(|| "modules cannot be imported".into()),
            code,
        ),
        None => ("cannot read the expression".to_owned(), code),
    };
    let offset = offset_in(code, found);
    let near = code[offset..].chars().take(12).collect::<String>();
    let message = if near.is_empty() {
        format!("{what} at the end of the expression")
    } else {
        format!("{what} near `{near}`")
    };
    CompileError { message, offset }
}

/// Where `part` (a slice jaq handed back) starts in `code`; 0 when it is not
/// a slice of `code` at all (say, a name from jaq's own definitions).
fn offset_in(code: &str, part: &str) -> usize {
    let start = code.as_ptr() as usize;
    let at = part.as_ptr() as usize;
    if at >= start && at <= start + code.len() {
        at - start
    } else {
        0
    }
}

/// The first impure filter or variable `code` names, outside string literals
/// and field accesses, with its offset.
fn impure_name(code: &str) -> Option<(&'static str, usize)> {
    let bytes = code.as_bytes();
    let ident = |b: u8| b.is_ascii_alphanumeric() || b == b'_';
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'"' => {
                i += 1;
                while i < bytes.len() && bytes[i] != b'"' {
                    i += if bytes[i] == b'\\' { 2 } else { 1 };
                }
                i += 1;
            }
            b'#' => {
                while i < bytes.len() && bytes[i] != b'\n' {
                    i += 1;
                }
            }
            b if ident(b) || b == b'$' => {
                let start = i;
                i += 1;
                while i < bytes.len() && ident(bytes[i]) {
                    i += 1;
                }
                let word = &code[start..i];
                let field = start > 0 && bytes[start - 1] == b'.';
                let key = code[i..].trim_start().starts_with(':');
                if !field
                    && !key
                    && let Some(name) = IMPURE.iter().find(|n| **n == word)
                {
                    return Some((name, start));
                }
            }
            _ => i += 1,
        }
    }
    None
}

fn to_val(v: &Value) -> Result<Val, String> {
    Val::deserialize(v).map_err(|e| format!("cannot read data: {e}"))
}

/// Converts a jq value back to JSON. Non-finite numbers become `null` (as in
/// jq); non-string object keys are written as their JSON text.
pub fn from_val(v: &Val) -> Result<Value, String> {
    Ok(match v {
        Val::Null => Value::Null,
        Val::Bool(b) => Value::Bool(*b),
        Val::Num(n) => number(n),
        Val::TStr(b) | Val::BStr(b) => Value::String(String::from_utf8_lossy(b).into_owned()),
        Val::Arr(a) => Value::Array(a.iter().map(from_val).collect::<Result<_, _>>()?),
        Val::Obj(o) => {
            let mut m = serde_json::Map::with_capacity(o.len());
            for (k, v) in o.iter() {
                let key = match k {
                    Val::TStr(b) | Val::BStr(b) => String::from_utf8_lossy(b).into_owned(),
                    other => from_val(other)?.to_string(),
                };
                m.insert(key, from_val(v)?);
            }
            Value::Object(m)
        }
    })
}

fn number(n: &jaq_json::Num) -> Value {
    use jaq_json::Num;
    match n {
        Num::Int(i) => Value::from(*i as i64),
        Num::Float(f) => serde_json::Number::from_f64(*f).map_or(Value::Null, Value::Number),
        Num::BigInt(_) | Num::Dec(_) => {
            let text = n.to_string();
            if let Ok(i) = text.parse::<i64>() {
                Value::from(i)
            } else if let Ok(u) = text.parse::<u64>() {
                Value::from(u)
            } else {
                text.parse::<f64>()
                    .ok()
                    .and_then(serde_json::Number::from_f64)
                    .map_or(Value::Null, Value::Number)
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn expr_evaluates_over_json() {
        let e = Expr::compile("{sku: .order.sku, qty: (.order.qty * 2)}").expect("compiles");
        let out = e
            .eval(&json!({"order": {"sku": "A-1", "qty": 3}}))
            .expect("runs");
        assert_eq!(out, json!({"sku": "A-1", "qty": 6}));
    }

    #[test]
    fn expr_keeps_key_order_and_number_kinds() {
        let e = Expr::compile(".").expect("compiles");
        let v = json!({"z": 1, "a": 2.5, "m": "x", "big": 12345678901_i64});
        assert_eq!(e.eval(&v).expect("runs").to_string(), v.to_string());
    }

    #[test]
    fn expr_test_uses_jq_truthiness() {
        let e = Expr::compile(".amount > 100").expect("compiles");
        assert_eq!(e.test(&json!({"amount": 150})), Ok(true));
        assert_eq!(e.test(&json!({"amount": 50})), Ok(false));
        assert_eq!(
            Expr::compile(".missing").expect("c").test(&json!({})),
            Ok(false)
        );
    }

    #[test]
    fn expr_syntax_error_points_into_the_text() {
        let e = Expr::compile("{sku: .order.sku,, qty: 1}").expect_err("should fail");
        assert!(e.offset >= 16, "{e:?}");
        assert!(e.message.starts_with("expected"), "{e:?}");
    }

    #[test]
    fn expr_undefined_filter_is_named() {
        let e = Expr::compile(".items | mapp(.id)").expect_err("should fail");
        assert_eq!(e.message, "undefined filter `mapp`");
        assert_eq!(e.offset, 9);
    }

    #[test]
    fn expr_impure_filters_are_refused() {
        for (code, offset) in [
            ("now", 0),
            (".a + (env.HOME)", 6),
            ("input", 0),
            ("$ENV.PATH", 0),
            (". | debug", 4),
        ] {
            let e = Expr::compile(code).expect_err("should fail");
            assert!(e.message.contains("not available"), "{code}: {e:?}");
            assert_eq!(e.offset, offset, "{code}");
        }
        // Field names and strings that merely spell them are fine.
        for code in [".now", "{input: .x}.input", "\"now\"", ".a # env"] {
            assert!(Expr::compile(code).is_ok(), "{code}");
        }
    }

    #[test]
    fn expr_runtime_errors_are_values_not_panics() {
        let e = Expr::compile(".a + 1").expect("compiles");
        assert!(e.eval(&json!({"a": "x"})).is_err());
        assert!(Expr::compile("empty").expect("c").eval(&json!(1)).is_err());
    }

    #[test]
    fn path_sets_nested_values_and_rejects_non_paths() {
        let p = PathExpr::compile(".payment.result").expect("compiles");
        let out = p
            .set(&json!({"order": 1}), &json!({"id": "ch-1"}))
            .expect("sets");
        assert_eq!(
            out,
            json!({"order": 1, "payment": {"result": {"id": "ch-1"}}})
        );
        assert_eq!(p.source(), ".payment.result");
        assert!(p.plain.is_some(), "plain paths skip jq");
        let items = PathExpr::compile(".items[2]").expect("compiles");
        assert!(items.plain.is_none());
        assert_eq!(
            items.set(&json!({}), &json!("x")).expect("sets"),
            json!({"items": [null, null, "x"]})
        );
        let whole = PathExpr::compile(".").expect("compiles");
        assert_eq!(
            whole.set(&json!({"a": 1}), &json!({"b": 2})).expect("sets"),
            json!({"b": 2})
        );
        assert!(PathExpr::compile(".a + 1").is_err());
        assert!(PathExpr::compile(".a, .b").is_err());
        // Storing below a scalar is a runtime error, not a panic.
        assert!(p.set(&json!({"payment": 5}), &json!(1)).is_err());
    }

    #[test]
    fn compiled_expressions_can_be_shared_across_threads() {
        fn send_sync<T: Send + Sync>() {}
        send_sync::<Expr>();
        send_sync::<PathExpr>();
    }
}
