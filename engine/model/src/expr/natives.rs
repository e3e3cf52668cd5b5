//! The native filters expressions may call, over [`V`]: jaq's own generic
//! ones, the JSON ones (jaq_json's only work on its own value type), and
//! wrappers that charge up front for those whose cost does not show in the
//! values they build: regular expressions, searches, Bessel functions.

use std::sync::OnceLock;

use jaq_core::load::{Arena, File, Loader};
use jaq_core::native::{Filter, Fun, bome, run, v};
use jaq_core::{Bind, Compiler, Ctx, Cv, DataT, Error, Exn, RunPtr, ValR, ValXs, Vars, data};
use jaq_json::{Num, Rc, Val};
use jaq_std::ValT as _;

use super::bounds::{Exceeded, MAX_DEPTH, charge, step, stop};
use super::compare;
use super::value::{ENTRY, SLOT, STRING, V, from_jaq, key_cost};

/// Expressions run over [`V`], and every term jaq evaluates is a step.
pub struct Bounded;

impl DataT for Bounded {
    type V<'a> = V;
    type Data<'a> = Steps<'a>;
}

/// The program, handed to jaq each time it evaluates a term: the one hook
/// on every step, recursion included.
#[derive(Clone)]
pub struct Steps<'a>(pub &'a jaq_core::Lut<Bounded>);

impl<'a> data::HasLut<'a, Bounded> for Steps<'a> {
    fn lut(&self) -> &'a jaq_core::Lut<Bounded> {
        step();
        self.0
    }
}

/// Every native filter; the first of a name and arity wins, so ours shadow
/// jaq's.
pub fn funs() -> impl Iterator<Item = Fun<Bounded>> {
    own()
        .into_vec()
        .into_iter()
        .map(run::<Bounded>)
        .chain(jaq_core::funs())
        .chain(jaq_std::funs())
}

fn own() -> Box<[Filter<RunPtr<Bounded>>]> {
    let vv = || [Bind::Var(()), Bind::Var(())].into();
    Box::new([
        ("length", v(0), |cv| bome(length(cv.1))),
        ("tojson", v(0), |cv| bome(tojson(&cv.1))),
        ("fromjson", v(0), |cv| fromjson(cv.1)),
        ("tobytes", v(0), |cv| {
            plain(Plain::ToBytes, cv.1, Vec::new())
        }),
        ("contains", v(1), |mut cv| {
            let x = cv.0.pop_var();
            let found = compare::contains(cv.1.val(), x.val());
            bome(Ok(V::from(found)))
        }),
        ("indices", v(1), |mut cv| {
            let x = cv.0.pop_var();
            if let Val::Arr(a) = cv.1.val() {
                let at = compare::positions(a, x.val());
                charge(at.len() as u64, at.len() as u64 * SLOT);
                let at = at.into_iter().map(|i| Val::from(i as isize)).collect();
                return bome(Ok(V::with_depth(Val::Arr(Rc::new(at)), 1)));
            }
            charge(search_cost(cv.1.val(), x.val()), 0);
            plain(Plain::Indices, cv.1, vec![x])
        }),
        ("has", v(1), |mut cv| {
            let k = cv.0.pop_var();
            charge(1 + key_cost(k.val()), 0);
            plain(Plain::Has, cv.1, vec![k])
        }),
        ("bsearch", v(1), |mut cv| {
            let x = cv.0.pop_var();
            charge(64, 0);
            plain(Plain::Bsearch, cv.1, vec![x])
        }),
        ("matches", vv(), |cv| regex(Plain::Matches, cv)),
        ("split_matches", vv(), |cv| regex(Plain::SplitMatches, cv)),
        ("split_", vv(), |cv| regex(Plain::Split, cv)),
        ("jn", vv(), |cv| bessel(Plain::Jn, cv)),
        ("yn", vv(), |cv| bessel(Plain::Yn, cv)),
    ])
}

fn length(x: V) -> ValR<V> {
    let n = match x.val() {
        Val::Null => 0,
        Val::Bool(_) => return Err(Error::str(format_args!("{x} has no length"))),
        Val::Num(n) => return Ok(V::with_depth(Val::Num(magnitude(n)), 0)),
        Val::TStr(s) => {
            // Counting characters reads the whole string, about a byte a
            // nanosecond.
            charge(s.len() as u64 / 64, 0);
            String::from_utf8_lossy(s).chars().count()
        }
        Val::BStr(b) => b.len(),
        Val::Arr(a) => a.len(),
        Val::Obj(o) => o.len(),
    };
    Ok(V::from(n))
}

fn magnitude(n: &Num) -> Num {
    match n {
        Num::Int(i) => Num::from_integral(i.unsigned_abs()),
        Num::Float(f) => Num::Float(f.abs()),
        Num::Dec(d) => magnitude(&Num::from_dec_str(d)),
        big if *big < Num::Int(0) => -big.clone(),
        big => big.clone(),
    }
}

fn tojson(x: &V) -> ValR<V> {
    let mut text = Vec::new();
    jaq_json::write::write(&mut text, &Default::default(), 0, x.val()).map_err(Error::str)?;
    charge(1, STRING + text.len() as u64);
    Ok(V::with_depth(Val::utf8_str(text), 0))
}

/// Parses every JSON value in a string, after checking, without recursing,
/// that none nests too deeply for the (recursive) parser and for us.
fn fromjson<'a>(x: V) -> ValXs<'a, V> {
    let text = match x.val() {
        Val::TStr(text) => text.clone(),
        _ => return bome(Err(Error::typ(x, "string"))),
    };
    let (deepest, steps) = scan_json(&text);
    if deepest > MAX_DEPTH {
        stop(Exceeded::Depth)
    }
    // Parsed, a number or a string takes up to eight times its text.
    charge(steps, 8 * text.len() as u64);
    let mut out = Vec::new();
    for parsed in jaq_json::read::parse_many(&text) {
        step();
        match parsed {
            Ok(v) => out.push(Ok(V::measured(v))),
            Err(e) => {
                // The parser does not move past an error: stop at the first.
                let e = Error::str(format_args!("cannot parse {x} as JSON: {e}"));
                out.push(Err(Exn::from(e)));
                break;
            }
        }
    }
    Box::new(out.into_iter())
}

/// How deeply JSON text nests, and the steps parsing it takes: linear in
/// its length, and quadratic in the digits of each integer too long for a
/// machine word (the parser makes big integers of them).
fn scan_json(s: &[u8]) -> (u32, u64) {
    let (mut depth, mut deepest, mut steps, mut digits) = (0u32, 0u32, s.len() as u64 / 64, 0u64);
    let mut big = |digits: u64| {
        if digits > 18 {
            steps = steps.saturating_add((digits / 18).saturating_pow(2));
        }
    };
    let mut i = 0;
    while i < s.len() {
        if s[i].is_ascii_digit() {
            digits += 1;
        } else {
            big(std::mem::take(&mut digits));
        }
        match s[i] {
            b'"' => {
                i += 1;
                while i < s.len() && s[i] != b'"' {
                    i += if s[i] == b'\\' { 2 } else { 1 };
                }
            }
            b'#' => {
                while i < s.len() && s[i] != b'\n' {
                    i += 1;
                }
            }
            b'[' | b'{' => {
                depth += 1;
                deepest = deepest.max(depth);
            }
            b']' | b'}' => depth = depth.saturating_sub(1),
            _ => {}
        }
        i += 1;
    }
    big(digits);
    (deepest, steps)
}

/// Steps searching the string `x` for `y` may take: the pattern compared at
/// every position.
fn search_cost(x: &Val, y: &Val) -> u64 {
    let len = |v: &Val| v.as_bytes().map_or(1, <[u8]>::len) as u64;
    1 + len(x).saturating_mul(len(y)) / 256
}

/// Regular expressions run in time proportional to the text times the size
/// of the compiled pattern, which counted repetitions (`a{1000}`) multiply.
fn regex<'a>(which: Plain, mut cv: Cv<'a, Bounded>) -> ValXs<'a, V> {
    let flags = cv.0.pop_var();
    let re = cv.0.pop_var();
    let text = cv.1.val().as_bytes().map_or(0, <[u8]>::len) as u64;
    let weight = re.val().as_bytes().map_or(1, pattern_weight);
    charge(text.saturating_mul(weight) / 16 + weight, 0);
    plain(which, cv.1, vec![re, flags])
}

fn pattern_weight(p: &[u8]) -> u64 {
    let mut weight = p.len() as u64 + 1;
    let mut i = 0;
    while i < p.len() {
        match p[i] {
            b'\\' => i += 1,
            b'{' => {
                let counts = p[i + 1..]
                    .iter()
                    .take_while(|c| c.is_ascii_digit() || **c == b',');
                let most = counts.fold((0u64, 0u64), |(most, n), c| match c {
                    b',' => (most.max(n), 0),
                    d => (
                        most,
                        n.saturating_mul(10).saturating_add(u64::from(d - b'0')),
                    ),
                });
                weight = weight.saturating_mul(most.0.max(most.1).max(1));
            }
            _ => {}
        }
        i += 1;
    }
    weight
}

/// `jn(n; x)` and `yn(n; x)` recur `n` times.
fn bessel<'a>(which: Plain, mut cv: Cv<'a, Bounded>) -> ValXs<'a, V> {
    let x = cv.0.pop_var();
    let n = cv.0.pop_var();
    charge(
        n.val()
            .as_isize()
            .map_or(1, |n| n.unsigned_abs() as u64 / 16 + 1),
        0,
    );
    plain(which, cv.1, vec![n, x])
}

/// jaq's own implementation of a filter, run over plain values.
#[derive(Clone, Copy)]
enum Plain {
    ToBytes,
    Indices,
    Has,
    Bsearch,
    Matches,
    SplitMatches,
    Split,
    Jn,
    Yn,
}

/// The [`Plain`] filters, in order, and the variables each takes.
const PLAIN: [(&str, &[&str]); 9] = [
    ("tobytes", &[]),
    ("indices($a)", &["$a"]),
    ("has($a)", &["$a"]),
    ("bsearch($a)", &["$a"]),
    ("matches($a; $b)", &["$a", "$b"]),
    ("split_matches($a; $b)", &["$a", "$b"]),
    ("split_($a; $b)", &["$a", "$b"]),
    ("jn($a; $b)", &["$a", "$b"]),
    ("yn($a; $b)", &["$a", "$b"]),
];

type PlainData = data::JustLut<Val>;

fn plain_filters() -> &'static [jaq_core::Filter<PlainData>] {
    static FILTERS: OnceLock<Vec<jaq_core::Filter<PlainData>>> = OnceLock::new();
    FILTERS.get_or_init(|| {
        PLAIN
            .iter()
            .map(|&(code, vars)| {
                let arena = Arena::default();
                let modules = Loader::new([])
                    .load(&arena, File { code, path: () })
                    .expect("invariant: a fixed call of a native filter parses");
                Compiler::default()
                    .with_funs(jaq_json::funs().chain(jaq_std::funs()))
                    .with_global_vars(vars.iter().copied())
                    .compile(modules)
                    .expect("invariant: jaq defines the native filters we wrap")
            })
            .collect()
    })
}

/// Runs jaq's own `which` on `input`, charging for what it yields.
fn plain<'a>(which: Plain, input: V, vars: Vec<V>) -> ValXs<'a, V> {
    let filter = &plain_filters()[which as usize];
    let ctx = Ctx::<PlainData>::new(&filter.lut, Vars::new(vars.into_iter().map(V::into_val)));
    let outs: Vec<_> = filter
        .id
        .run((ctx, input.into_val()))
        .map(|out| match out.map_err(Exn::get_err) {
            Ok(v) => {
                charge(1, size(&v));
                Ok(V::measured(v))
            }
            Err(Ok(e)) => Err(Exn::from(from_jaq(e))),
            // These filters neither halt nor break.
            Err(Err(_)) => Err(Exn::from(Error::str("unexpected control flow"))),
        })
        .collect();
    Box::new(outs.into_iter())
}

/// Bytes a value takes, all of it.
fn size(v: &Val) -> u64 {
    match v {
        Val::Arr(a) => a.iter().map(|x| SLOT + size(x)).sum(),
        Val::Obj(o) => o.iter().map(|(k, x)| ENTRY + size(k) + size(x)).sum(),
        Val::TStr(b) | Val::BStr(b) => STRING + b.len() as u64,
        _ => 0,
    }
}
