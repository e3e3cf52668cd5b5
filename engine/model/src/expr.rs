//! jq expressions over instance data, compiled once with jaq and evaluated
//! purely: filters that read the clock, the environment or stdin (`now`, `env`,
//! `input`, `debug`, ...) are left out, so an expression's result depends only
//! on its input.
//!
//! Every evaluation is bounded, in steps, bytes built, nesting of values and
//! stack ([`MAX_STEPS`], [`MAX_BYTES`], [`MAX_DEPTH`], [`MAX_STACK`]): an
//! expression that loops, recurses or builds without end fails with an error
//! naming the budget it ran out of, like any other failing expression,
//! instead of hanging the engine, exhausting its memory or overflowing its
//! stack. Compiling is bounded too ([`MAX_SOURCE`]).

mod bounds;
mod compare;
mod convert;
mod natives;
mod path;
mod value;

use std::fmt;
use std::sync::Arc;

use jaq_core::load::{Arena, File, Loader};
use jaq_core::{Compiler, Ctx, Vars, unwrap_valr};
use jaq_json::Val;
use serde_json::Value;

use crate::error::{Error, Result};
use bounds::{Exceeded, bounded};
pub use bounds::{MAX_BYTES, MAX_DEPTH, MAX_STACK, MAX_STEPS};
pub use convert::from_val;
use convert::to_v;
use natives::{Bounded, Steps};
pub use path::{MAX_INDEX_GAP, PathExpr};
use value::V;

type Filter = jaq_core::Filter<Bounded>;

/// The longest expression text, in bytes. jaq parses and compiles by
/// recursion, a level of the native stack for each level of nesting (a
/// bracket, an operator, a keyword) and up to 8 KiB of stack each in a debug
/// build; compiling runs on a thread of its own with `COMPILE_STACK`, which
/// this bounds the need for. Real expressions are a few hundred bytes.
pub const MAX_SOURCE: usize = 16 << 10;

/// Stack of the thread expressions compile on: room for [`MAX_SOURCE`]
/// levels of nesting at 8 KiB, twice over. Only what is touched is ever
/// backed by memory.
const COMPILE_STACK: usize = 256 << 20;

/// A jq error message is cut to this many characters: it ends up in the
/// instance data (`.error.message`) and may quote a value of any size.
const MAX_MESSAGE: usize = 1_000;

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

/// Why an evaluation gave no value.
#[derive(Debug)]
enum Failure {
    Error(String),
    NoValue,
    Exceeded(Exceeded),
}

impl Failure {
    fn message(self, source: &str) -> String {
        match self {
            Failure::Error(e) => format!("`{source}` failed: {e}"),
            Failure::NoValue => format!("`{source}` produced no value"),
            Failure::Exceeded(why) => format!("expression `{source}` {}", why.describe()),
        }
    }

    /// The error evaluating `source` ended in.
    fn into_error(self, source: &str) -> Error {
        Error::Eval {
            expr: source.to_owned(),
            message: self.message(source),
        }
    }
}

/// A jq error as text: a string as it is, any other value as JSON.
fn error_text(e: jaq_core::Error<V>) -> String {
    let text = match e.into_val().into_val() {
        Val::TStr(s) | Val::BStr(s) => String::from_utf8_lossy(&s).into_owned(),
        other => other.to_string(),
    };
    match text.char_indices().nth(MAX_MESSAGE) {
        Some((cut, _)) => format!("{}...", &text[..cut]),
        None => text,
    }
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
        if source.len() > MAX_SOURCE {
            return Err(CompileError {
                message: format!("the expression is longer than {MAX_SOURCE} bytes"),
                offset: MAX_SOURCE,
            });
        }
        Self::build(source, vars)
    }

    /// Compiles `source`, of any length.
    fn build(source: &str, vars: &[&str]) -> Result<Expr, CompileError> {
        let filter = compile_apart(source, vars)?;
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
    pub fn eval(&self, input: &Value) -> Result<Value> {
        self.eval_with(input, &[])
    }

    /// Like [`Expr::eval`], with values for the variables named at compile time.
    pub fn eval_with(&self, input: &Value, vars: &[&Value]) -> Result<Value> {
        self.run(input, vars)
            .map_err(|f| f.into_error(&self.source))
    }

    fn run(&self, input: &Value, vars: &[&Value]) -> Result<Value, Failure> {
        if vars.len() != self.vars {
            return Err(Failure::Error(format!(
                "expression takes {} variables, {} given",
                self.vars,
                vars.len()
            )));
        }
        bounded(|| {
            let ctx = Ctx::<Bounded>::new(
                Steps(&self.filter.lut),
                Vars::new(vars.iter().map(|v| to_v(v))),
            );
            let first = self
                .filter
                .id
                .run((ctx, to_v(input)))
                .map(unwrap_valr)
                .next();
            match first {
                Some(Ok(v)) => Ok(from_val(v.val())),
                Some(Err(e)) => Err(Failure::Error(error_text(e))),
                None => Err(Failure::NoValue),
            }
        })
        .unwrap_or_else(|why| Err(Failure::Exceeded(why)))
    }

    /// True when the expression's first value is neither `false` nor `null`.
    pub fn test(&self, input: &Value) -> Result<bool> {
        let v = self.eval(input)?;
        Ok(!matches!(v, Value::Null | Value::Bool(false)))
    }
}

/// Compiles on a thread with a stack large enough for any expression up to
/// [`MAX_SOURCE`] bytes: the caller's may be small, and overflowing it would
/// abort the process (the engine compiles deployed processes on its async
/// workers).
fn compile_apart(code: &str, vars: &[&str]) -> Result<Filter, CompileError> {
    std::thread::scope(|scope| {
        let compiling = std::thread::Builder::new()
            .name("weft-jq-compile".into())
            .stack_size(COMPILE_STACK)
            .spawn_scoped(scope, || compile(code, vars))
            .map_err(|e| CompileError {
                message: format!("cannot start compiling: {e}"),
                offset: 0,
            })?;
        compiling
            .join()
            .unwrap_or_else(|panic| std::panic::resume_unwind(panic))
    })
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
    let funs = natives::funs();
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
    fn typical_expressions_use_a_sliver_of_the_budget() {
        let data = json!({
            "order": {"id": "o-1", "sku": "A-1", "qty": 3, "amount": 1500, "email": "a@b.c"},
            "items": (0..1000).map(|i| json!({"id": i, "price": i % 7})).collect::<Vec<_>>(),
        });
        let mut spent = Vec::new();
        for code in [
            ".order.amount > 1000",
            "{sku: .order.sku, qty: .order.qty}",
            "{to: .order.email, message: (\"Your order \" + .order.id + \" is on its way\")}",
            "[.items[] | select(.price > 3) | .id] | length",
            ".items | map({id, total: (.price * 2)})",
            ".items | sort_by(.price) | group_by(.price) | map(length)",
        ] {
            let e = Expr::compile(code).expect("compiles");
            e.eval(&data).expect("runs");
            let (steps, bytes) = bounds::last_spent();
            assert!(steps < MAX_STEPS / 100 && bytes < MAX_BYTES / 100, "{code}");
            spent.push(format!("{steps:>7} steps {bytes:>8} bytes  {code}"));
        }
        println!("{}", spent.join("\n"));
    }

    #[test]
    fn input_nested_deeper_than_the_limit_is_taken_as_it_is() {
        let mut deep = json!(1);
        for _ in 0..MAX_DEPTH + 20 {
            deep = json!({"a": deep});
        }
        let e = Expr::compile("{b: .a.a.a}").expect("compiles");
        let out = e.eval(&deep).expect("a part of the input, rewrapped once");
        assert!(out["b"].is_object());
        assert!(Expr::compile("[[[.]]]").expect("c").eval(&deep).is_err());
    }

    #[test]
    fn compiled_expressions_can_be_shared_across_threads() {
        fn send_sync<T: Send + Sync>() {}
        send_sync::<Expr>();
        send_sync::<PathExpr>();
    }
}
