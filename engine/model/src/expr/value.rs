//! The values expressions compute with: jaq's JSON value plus a bound on how
//! deeply it nests. Every operation that builds a value, and every node a
//! comparison visits, is charged to the running evaluation's budget.

use std::cell::{Cell, RefCell};
use std::cmp::Ordering;
use std::fmt;

use jaq_core::box_iter::BoxIter;
use jaq_core::path::Opt;
use jaq_core::val::Range;
use jaq_core::{Error, Exn, ValR, ValX};
use jaq_json::{Num, Rc, Val};

use super::bounds::{Exceeded, MAX_DEPTH, charge, step, stop};
use super::compare::{equal, order, positions};

/// Bytes charged for an array slot, an object entry and a string besides its
/// bytes: what jaq allocates for each, near enough.
pub const SLOT: u64 = 16;
pub const ENTRY: u64 = 48;
pub const STRING: u64 = 32;

/// A jq value and how deeply it nests.
#[derive(Clone, Debug)]
pub struct V {
    val: Val,
    /// 0 for scalars; otherwise at least 1 and an upper bound of the
    /// nesting, except that a value nesting deeper than [`MAX_DEPTH`] when it
    /// came in (input data) is only known to be deeper than that: it, and
    /// anything taken out of it, is measured again before anything is built
    /// on top of it.
    depth: u32,
}

impl V {
    /// A value from outside the evaluation (input data, variables, a native
    /// filter's result), measured.
    pub fn measured(val: Val) -> V {
        let depth = depth_of(&val, MAX_DEPTH + 1);
        V { val, depth }
    }

    /// A value from outside the evaluation whose nesting is known.
    pub fn with_depth(val: Val, depth: u32) -> V {
        V { val, depth }
    }

    pub fn val(&self) -> &Val {
        &self.val
    }

    pub fn into_val(self) -> Val {
        self.val
    }

    fn scalar(val: Val) -> V {
        V { val, depth: 0 }
    }

    /// A part of a value whose nesting is at most `bound`.
    fn part(val: Val, bound: u32) -> V {
        let depth = if nests(&val) { bound.max(1) } else { 0 };
        V { val, depth }
    }

    /// An array or object just built, whose elements nest at most `children`
    /// deep. Refused when it nests deeper than [`MAX_DEPTH`]; as the bound
    /// may be loose, it is measured before refusing.
    fn built(val: Val, children: u32) -> V {
        let depth = children.saturating_add(1);
        if depth <= MAX_DEPTH {
            return V { val, depth };
        }
        let exact = depth_of(&val, MAX_DEPTH + 1);
        if exact > MAX_DEPTH {
            stop(Exceeded::Depth)
        }
        V { val, depth: exact }
    }

    /// What an update returned: an array or object with some parts replaced
    /// by values nesting at most `new` deep, or whatever else it returned.
    fn rebuilt(val: Val, old: u32, new: u32) -> V {
        if nests(&val) {
            V::built(val, new.max(old.saturating_sub(1)))
        } else {
            V::scalar(val)
        }
    }
}

fn nests(v: &Val) -> bool {
    matches!(v, Val::Arr(_) | Val::Obj(_))
}

/// How deeply `v` nests, looking no deeper than `cap` levels.
pub fn depth_of(v: &Val, cap: u32) -> u32 {
    if cap == 0 {
        return 0;
    }
    let deepest =
        |xs: &mut dyn Iterator<Item = &Val>| xs.map(|x| depth_of(x, cap - 1)).max().unwrap_or(0);
    match v {
        Val::Arr(a) => {
            step();
            1 + deepest(&mut a.iter())
        }
        Val::Obj(o) => {
            step();
            1 + deepest(&mut o.iter().flat_map(|(k, v)| [k, v]))
        }
        _ => 0,
    }
}

/// Bytes that copying the top level of `v` would build.
fn slots(v: &Val) -> u64 {
    match v {
        Val::Arr(a) => a.len() as u64 * SLOT,
        Val::Obj(o) => o.len() as u64 * ENTRY,
        Val::TStr(b) | Val::BStr(b) => b.len() as u64,
        _ => 0,
    }
}

/// Bytes that changing `v` in place would build: jaq copies it first when
/// it is shared.
fn copied(v: &Val) -> u64 {
    let shared = match v {
        Val::Arr(a) => Rc::strong_count(a) > 1,
        Val::Obj(o) => Rc::strong_count(o) > 1,
        Val::TStr(b) | Val::BStr(b) => !b.is_unique(),
        _ => false,
    };
    if shared { slots(v) } else { 0 }
}

/// Entries of the object `v` and of the objects in it, down to `levels`.
fn entries(v: &Val, levels: u32) -> u64 {
    match v {
        Val::Obj(o) if levels > 0 => o.values().map(|x| 1 + entries(x, levels - 1)).sum(),
        _ => 0,
    }
}

/// Steps hashing or comparing `key` takes, to look it up in an object or
/// to store it in one.
pub fn key_cost(key: &Val) -> u64 {
    match key {
        Val::TStr(b) | Val::BStr(b) => b.len() as u64 / 256,
        Val::Arr(a) => a.len() as u64,
        Val::Obj(o) => o.len() as u64,
        _ => 0,
    }
}

/// Machine words in a number: arithmetic on big integers costs by size.
fn words(n: &Num) -> u64 {
    match n {
        Num::BigInt(b) => b.bits() / 64 + 1,
        // A decimal is parsed again for every operation.
        Num::Dec(d) => d.len() as u64 / 16 + 1,
        _ => 1,
    }
}

/// Steps and bytes of arithmetic on `x` and `y`: linear in their size for
/// sums, quadratic for products and remainders.
fn num_cost(x: &Num, y: &Num, product: bool) -> (u64, u64) {
    let (wx, wy) = (words(x), words(y));
    match (wx, wy) {
        (1, 1) => (1, 0),
        _ if product => (wx.saturating_mul(wy), 8 * (wx + wy)),
        _ => (wx.max(wy), 8 * (wx.max(wy) + 1)),
    }
}

/// jaq's errors carry `Val`s; the same error, carrying a `V`. The message of
/// an error built from parts becomes a string value, as `catch` sees it.
pub fn from_jaq(e: Error<Val>) -> Error<V> {
    let v = e.into_val();
    // The message may quote a value of any size, and costs what it takes.
    if let Val::TStr(m) = &v {
        charge(1, STRING + m.len() as u64);
    }
    Error::new(V::measured(v))
}

fn exn_from_jaq(e: Exn<'_, Val>) -> Exn<'_, V> {
    match e.get_err() {
        Ok(e) => Exn::from(from_jaq(e)),
        // jaq's value operations only fail with errors.
        Err(_) => Exn::from(Error::str("unexpected control flow in an update")),
    }
}

/// Runs one of jaq's update operations on a plain value: the parts it hands
/// to the update become `V`s, and what the update yields becomes plain
/// again, noting how deeply it nests. The update's exceptions (errors, but
/// also `break` and tail calls) cannot pass through the plain operation, so
/// they wait here and replace the error they caused on the way out.
struct Update<'a> {
    nested: Cell<u32>,
    held: RefCell<Option<Exn<'a, V>>>,
}

impl<'a> Update<'a> {
    fn new() -> Self {
        Update {
            nested: Cell::new(0),
            held: RefCell::new(None),
        }
    }

    fn plain<'s>(
        &'s self,
        ys: impl Iterator<Item = ValX<'a, V>> + 's,
    ) -> impl Iterator<Item = ValX<'a, Val>> + 's {
        ys.map(move |y| match y {
            Ok(y) => {
                self.nested.set(self.nested.get().max(y.depth));
                Ok(y.val)
            }
            Err(e) => {
                *self.held.borrow_mut() = Some(e);
                Err(Exn::from(Error::new(Val::Null)))
            }
        })
    }

    fn finish(self, out: ValX<'a, Val>, old: u32) -> ValX<'a, V> {
        match out {
            Ok(val) => Ok(V::rebuilt(val, old, self.nested.get())),
            Err(e) => Err(self.held.into_inner().unwrap_or_else(|| exn_from_jaq(e))),
        }
    }
}

fn plain_range(r: Range<&V>) -> Range<&Val> {
    r.start.map(V::val)..r.end.map(V::val)
}

impl jaq_core::ValT for V {
    fn from_num(n: &str) -> ValR<V> {
        charge(1, n.len() as u64);
        Val::from_num(n).map(V::scalar).map_err(from_jaq)
    }

    fn from_map<I: IntoIterator<Item = (V, V)>>(iter: I) -> ValR<V> {
        let mut nested = 0;
        let entries = iter.into_iter().map(|(k, v)| {
            charge(1 + key_cost(&k.val), ENTRY);
            nested = nested.max(k.depth).max(v.depth);
            (k.val, v.val)
        });
        let val = Val::from_map(entries).map_err(from_jaq)?;
        Ok(V::built(val, nested))
    }

    fn key_values(self) -> BoxIter<'static, ValR<(V, V), V>> {
        charge(1, copied(&self.val));
        let d = self.depth.saturating_sub(1);
        let kvs = self.val.key_values();
        Box::new(kvs.map(move |kv| {
            kv.map(|(k, v)| (V::part(k, d), V::part(v, d)))
                .map_err(from_jaq)
        }))
    }

    fn values(self) -> Box<dyn Iterator<Item = ValR<V>>> {
        charge(1, copied(&self.val));
        let d = self.depth.saturating_sub(1);
        let vs = self.val.values();
        Box::new(vs.map(move |v| v.map(|v| V::part(v, d)).map_err(from_jaq)))
    }

    fn index(self, index: &V) -> ValR<V> {
        charge(1 + key_cost(&index.val), 0);
        let out = match (&self.val, &index.val) {
            // Where a run of elements starts.
            (Val::Arr(a), Val::Arr(_)) => {
                let at = positions(a, &index.val);
                charge(at.len() as u64, at.len() as u64 * SLOT);
                let at = at.into_iter().map(Val::from).collect();
                return Ok(V::with_depth(Val::Arr(Rc::new(at)), 1));
            }
            _ => self.val.index(&index.val).map_err(from_jaq)?,
        };
        // A slice, `.[{start, end}]`, nests as deep as what it is cut from.
        let bound = if matches!(index.val, Val::Obj(_)) {
            charge(0, slots(&out));
            self.depth
        } else {
            self.depth.saturating_sub(1)
        };
        Ok(V::part(out, bound))
    }

    fn range(self, range: Range<&V>) -> ValR<V> {
        // A slice of an array is a new array; one of a string shares its
        // bytes, but finding where characters start reads them.
        match &self.val {
            Val::TStr(b) | Val::BStr(b) => charge(1 + b.len() as u64 / 256, STRING),
            _ => step(),
        }
        let depth = self.depth;
        let out = self.val.range(plain_range(range)).map_err(from_jaq)?;
        if let Val::Arr(a) = &out {
            charge(0, a.len() as u64 * SLOT);
        }
        Ok(V::part(out, depth))
    }

    fn map_values<'a, I: Iterator<Item = ValX<'a, V>>>(
        self,
        opt: Opt,
        f: impl Fn(V) -> I,
    ) -> ValX<'a, V> {
        // jaq builds a new array or object, whole.
        charge(1, slots(&self.val));
        let (old, part) = (self.depth, self.depth.saturating_sub(1));
        let update = Update::new();
        let out = self
            .val
            .map_values(opt, |x| update.plain(f(V::part(x, part))));
        update.finish(out, old)
    }

    fn map_index<'a, I: Iterator<Item = ValX<'a, V>>>(
        self,
        index: &V,
        opt: Opt,
        f: impl Fn(V) -> I,
    ) -> ValX<'a, V> {
        charge(1 + key_cost(&index.val), copied(&self.val) + ENTRY);
        let old = self.depth;
        let part = match &index.val {
            Val::Obj(_) => old,
            _ => old.saturating_sub(1),
        };
        let update = Update::new();
        let out = self
            .val
            .map_index(&index.val, opt, |x| update.plain(f(V::part(x, part))));
        update.finish(out, old)
    }

    fn map_range<'a, I: Iterator<Item = ValX<'a, V>>>(
        self,
        range: Range<&V>,
        opt: Opt,
        f: impl Fn(V) -> I,
    ) -> ValX<'a, V> {
        // jaq copies the slice, then splices the result back in.
        charge(1, 2 * slots(&self.val));
        let old = self.depth;
        let update = Update::new();
        let out = self.val.map_range(plain_range(range), opt, |x| {
            update.plain(f(V::part(x, old)))
        });
        update.finish(out, old)
    }

    fn as_bool(&self) -> bool {
        self.val.as_bool()
    }

    fn into_string(self) -> V {
        let written = !matches!(self.val, Val::TStr(_) | Val::BStr(_));
        let s = self.val.into_string();
        if written {
            charge(1, STRING + slots(&s));
        }
        V::scalar(s)
    }
}

impl jaq_std::ValT for V {
    fn into_seq<S: FromIterator<V>>(self) -> Result<S, V> {
        let d = self.depth.saturating_sub(1);
        match self.val {
            Val::Arr(a) => {
                charge(a.len() as u64, a.len() as u64 * SLOT);
                Ok(match Rc::try_unwrap(a) {
                    Ok(a) => a.into_iter().map(|x| V::part(x, d)).collect(),
                    Err(a) => a.iter().map(|x| V::part(x.clone(), d)).collect(),
                })
            }
            val => Err(V {
                val,
                depth: self.depth,
            }),
        }
    }

    fn is_int(&self) -> bool {
        self.val.is_int()
    }

    fn as_isize(&self) -> Option<isize> {
        self.val.as_isize()
    }

    fn as_f64(&self) -> Option<f64> {
        if let Val::Num(n @ Num::Dec(_)) = &self.val {
            charge(words(n), 0);
        }
        self.val.as_f64()
    }

    fn is_utf8_str(&self) -> bool {
        self.val.is_utf8_str()
    }

    /// Every native filter on strings reads them through here: charge for
    /// reading all of it (`startswith`, `trim`, `ltrimstr` scan without
    /// building anything).
    fn as_bytes(&self) -> Option<&[u8]> {
        let bytes = self.val.as_bytes();
        if let Some(b) = bytes.filter(|b| b.len() >= 256) {
            charge(b.len() as u64 / 256, 0);
        }
        bytes
    }

    fn as_sub_str(&self, sub: &[u8]) -> V {
        V::scalar(self.val.as_sub_str(sub))
    }

    fn from_utf8_bytes(b: impl AsRef<[u8]> + Send + 'static) -> V {
        charge(1, STRING + b.as_ref().len() as u64);
        V::scalar(Val::from_utf8_bytes(b))
    }
}

impl From<bool> for V {
    fn from(b: bool) -> V {
        V::scalar(Val::from(b))
    }
}

impl From<isize> for V {
    fn from(i: isize) -> V {
        V::scalar(Val::from(i))
    }
}

impl From<usize> for V {
    fn from(i: usize) -> V {
        V::scalar(Val::from(i))
    }
}

impl From<f64> for V {
    fn from(f: f64) -> V {
        V::scalar(Val::from(f))
    }
}

impl From<String> for V {
    fn from(s: String) -> V {
        charge(1, STRING + s.len() as u64);
        V::scalar(Val::from(s))
    }
}

impl From<Range<V>> for V {
    fn from(r: Range<V>) -> V {
        charge(1, 2 * ENTRY);
        let nested = [&r.start, &r.end]
            .into_iter()
            .flatten()
            .map(|v| v.depth)
            .max()
            .unwrap_or(0);
        let r = r.start.map(V::into_val)..r.end.map(V::into_val);
        V::built(Val::from(r), nested)
    }
}

impl FromIterator<V> for V {
    fn from_iter<T: IntoIterator<Item = V>>(iter: T) -> V {
        let mut nested = 0;
        let items: Vec<Val> = iter
            .into_iter()
            .map(|v| {
                charge(1, SLOT);
                nested = nested.max(v.depth);
                v.val
            })
            .collect();
        V::built(Val::Arr(Rc::new(items)), nested)
    }
}

impl std::ops::Add for V {
    type Output = ValR<V>;
    fn add(self, rhs: V) -> ValR<V> {
        let (steps, bytes) = match (&self.val, &rhs.val) {
            (Val::Num(x), Val::Num(y)) => num_cost(x, y, false),
            (Val::TStr(_) | Val::BStr(_), Val::TStr(y) | Val::BStr(y)) => {
                (1, STRING + copied(&self.val) + y.len() as u64)
            }
            (Val::Arr(_), Val::Arr(y)) => (1 + y.len() as u64, copied(&self.val) + slots(&rhs.val)),
            (Val::Obj(_), Val::Obj(y)) => (1 + y.len() as u64, copied(&self.val) + slots(&rhs.val)),
            _ => (1, 0),
        };
        charge(steps, bytes);
        let depth = self.depth.max(rhs.depth);
        let out = (self.val + rhs.val).map_err(from_jaq)?;
        Ok(V::with_depth(out, depth))
    }
}

impl std::ops::Sub for V {
    type Output = ValR<V>;
    fn sub(self, rhs: V) -> ValR<V> {
        let depth = self.depth;
        if let (Val::Arr(x), Val::Arr(y)) = (&self.val, &rhs.val) {
            charge(1 + y.len() as u64, (x.len() + y.len()) as u64 * SLOT);
            let kept = super::compare::without(x, y);
            return Ok(V::with_depth(Val::Arr(Rc::new(kept)), depth));
        }
        let (steps, bytes) = match (&self.val, &rhs.val) {
            (Val::Num(x), Val::Num(y)) => num_cost(x, y, false),
            _ => (1, 0),
        };
        charge(steps, bytes);
        let out = (self.val - rhs.val).map_err(from_jaq)?;
        Ok(V::with_depth(out, depth))
    }
}

impl std::ops::Mul for V {
    type Output = ValR<V>;
    fn mul(self, rhs: V) -> ValR<V> {
        let repeat = |s: &[u8], n: &Num| match n.as_isize() {
            Some(n) => (1, (s.len() as u64).saturating_mul(n.max(0) as u64)),
            // jaq repeats by a big integer as by the largest machine integer.
            None if *n > Num::Int(0) => (1, (s.len() as u64).saturating_mul(isize::MAX as u64)),
            None => (1, 0),
        };
        let (steps, bytes) = match (&self.val, &rhs.val) {
            (Val::Num(x), Val::Num(y)) => num_cost(x, y, true),
            (Val::TStr(s) | Val::BStr(s), Val::Num(n))
            | (Val::Num(n), Val::TStr(s) | Val::BStr(s)) => repeat(s, n),
            // A deep merge: copies and walks the objects inside objects.
            (Val::Obj(_), Val::Obj(_)) => {
                let entries = entries(&self.val, MAX_DEPTH) + entries(&rhs.val, MAX_DEPTH);
                (1 + entries, entries * ENTRY)
            }
            _ => (1, 0),
        };
        charge(steps, bytes);
        let depth = self.depth.max(rhs.depth);
        let out = (self.val * rhs.val).map_err(from_jaq)?;
        Ok(V::with_depth(out, depth))
    }
}

impl std::ops::Div for V {
    type Output = ValR<V>;
    fn div(self, rhs: V) -> ValR<V> {
        // Splitting a string searches all of it.
        charge(1 + slots(&self.val) / 256, 0);
        let out = (self.val / rhs.val).map_err(from_jaq)?;
        // Splitting a string: one string per part.
        if let Val::Arr(parts) = &out {
            let n = parts.len() as u64;
            charge(n, n * (SLOT + STRING));
            return Ok(V::with_depth(out, 1));
        }
        Ok(V::scalar(out))
    }
}

impl std::ops::Rem for V {
    type Output = ValR<V>;
    fn rem(self, rhs: V) -> ValR<V> {
        let (steps, bytes) = match (&self.val, &rhs.val) {
            (Val::Num(x), Val::Num(y)) => num_cost(x, y, true),
            _ => (1, 0),
        };
        charge(steps, bytes);
        (self.val % rhs.val).map(V::scalar).map_err(from_jaq)
    }
}

impl std::ops::Neg for V {
    type Output = ValR<V>;
    fn neg(self) -> ValR<V> {
        let (steps, bytes) = match &self.val {
            Val::Num(n) => num_cost(n, &Num::Int(0), false),
            _ => (1, 0),
        };
        charge(steps, bytes);
        (-self.val).map(V::scalar).map_err(from_jaq)
    }
}

impl PartialEq for V {
    fn eq(&self, other: &V) -> bool {
        equal(&self.val, &other.val)
    }
}

impl Eq for V {}

impl PartialOrd for V {
    fn partial_cmp(&self, other: &V) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

impl Ord for V {
    fn cmp(&self, other: &V) -> Ordering {
        order(&self.val, &other.val)
    }
}

impl fmt::Display for V {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.val.fmt(f)
    }
}
