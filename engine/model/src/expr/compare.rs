//! Comparing and searching values as jaq does, charged to the budget by the
//! elements and bytes visited: these take time in proportion to the values'
//! size without building anything, so the bytes budget does not see them.

use std::cmp::Ordering;

use jaq_json::{Num, Rc, Val};

use super::bounds::{charge, step};
use super::value::SLOT;

/// Steps comparing two values takes: one, plus one per element or 256
/// bytes of the shorter, plus parsing a long decimal (jaq parses it again
/// for every comparison).
fn compare_cost(x: &Val, y: &Val) -> u64 {
    let len = |v: &Val| match v {
        Val::Arr(a) => a.len() as u64,
        Val::Obj(o) => o.len() as u64,
        Val::TStr(b) | Val::BStr(b) => b.len() as u64 / 256,
        _ => 0,
    };
    let parse = |v: &Val| match v {
        Val::Num(Num::Dec(d)) => d.len() as u64 / 16,
        _ => 0,
    };
    1 + len(x).min(len(y)) + parse(x) + parse(y)
}

/// Equality as jaq's, charged as it goes.
pub fn equal(x: &Val, y: &Val) -> bool {
    match (x, y) {
        (Val::Arr(a), Val::Arr(b)) => {
            Rc::ptr_eq(a, b)
                || (a.len() == b.len() && {
                    charge(compare_cost(x, y), 0);
                    a.iter().zip(b.iter()).all(|(x, y)| equal(x, y))
                })
        }
        (Val::Obj(a), Val::Obj(b)) => {
            Rc::ptr_eq(a, b)
                || (a.len() == b.len() && {
                    charge(compare_cost(x, y), 0);
                    a.iter().all(|(k, x)| b.get(k).is_some_and(|y| equal(x, y)))
                })
        }
        (Val::TStr(_) | Val::BStr(_), Val::TStr(_) | Val::BStr(_))
        | (Val::Num(Num::Dec(_)), _)
        | (_, Val::Num(Num::Dec(_))) => {
            charge(compare_cost(x, y), 0);
            x == y
        }
        _ => x == y,
    }
}

/// jaq's order, charged as it goes.
pub fn order(x: &Val, y: &Val) -> Ordering {
    fn lexical<'v>(
        xs: impl Iterator<Item = &'v Val>,
        mut ys: impl Iterator<Item = &'v Val>,
    ) -> Ordering {
        for x in xs {
            let Some(y) = ys.next() else {
                return Ordering::Greater;
            };
            match order(x, y) {
                Ordering::Equal => {}
                other => return other,
            }
        }
        if ys.next().is_some() {
            Ordering::Less
        } else {
            Ordering::Equal
        }
    }
    match (x, y) {
        (Val::Arr(a), Val::Arr(b)) => {
            charge(compare_cost(x, y), 0);
            lexical(a.iter(), b.iter())
        }
        (Val::Obj(a), Val::Obj(b)) => {
            charge(compare_cost(x, y), 0);
            match (a.len(), b.len()) {
                (0, 0) => Ordering::Equal,
                (0, _) => Ordering::Less,
                (_, 0) => Ordering::Greater,
                (m, n) => {
                    charge(0, (m + n) as u64 * SLOT);
                    let mut l: Vec<_> = a.iter().collect();
                    let mut r: Vec<_> = b.iter().collect();
                    l.sort_by(|p, q| order(p.0, q.0));
                    r.sort_by(|p, q| order(p.0, q.0));
                    lexical(l.iter().map(|p| p.0), r.iter().map(|p| p.0))
                        .then_with(|| lexical(l.iter().map(|p| p.1), r.iter().map(|p| p.1)))
                }
            }
        }
        (Val::TStr(_) | Val::BStr(_), Val::TStr(_) | Val::BStr(_))
        | (Val::Num(Num::Dec(_)), _)
        | (_, Val::Num(Num::Dec(_))) => {
            charge(compare_cost(x, y), 0);
            x.cmp(y)
        }
        _ => x.cmp(y),
    }
}

/// Whether `x` contains `y`, as jaq's `contains`.
pub fn contains(x: &Val, y: &Val) -> bool {
    match (x, y) {
        (Val::BStr(l), Val::BStr(r)) | (Val::TStr(l), Val::TStr(r)) => {
            charge(compare_cost(x, x) + compare_cost(y, y), 0);
            substring(l, r)
        }
        (Val::Arr(l), Val::Arr(r)) => r.iter().all(|r| {
            l.iter().any(|l| {
                step();
                contains(l, r)
            })
        }),
        (Val::Obj(l), Val::Obj(r)) => r.iter().all(|(k, r)| {
            step();
            l.get(k).is_some_and(|l| contains(l, r))
        }),
        _ => equal(x, y),
    }
}

fn substring(hay: &[u8], needle: &[u8]) -> bool {
    if needle.is_empty() {
        return true;
    }
    match (std::str::from_utf8(hay), std::str::from_utf8(needle)) {
        (Ok(hay), Ok(needle)) => hay.contains(needle),
        // Not UTF-8 (a byte string, or text from `@base64d`): compare at
        // every position.
        _ => {
            charge(
                (hay.len() as u64).saturating_mul(needle.len() as u64) / 256,
                0,
            );
            hay.windows(needle.len()).any(|w| w == needle)
        }
    }
}

/// Where in the array `x` the element `y` is, or (if `y` is an array) where
/// `y` starts as a run of elements: jaq's `indices` and `.[y]` on arrays.
pub fn positions(x: &[Val], y: &Val) -> Vec<usize> {
    match y {
        Val::Arr(run) if run.is_empty() => Vec::new(),
        Val::Arr(run) => x
            .windows(run.len())
            .enumerate()
            .filter(|(_, w)| w.iter().zip(run.iter()).all(|(a, b)| equal(a, b)))
            .map(|(i, _)| i)
            .collect(),
        _ => (0..x.len()).filter(|i| equal(&x[*i], y)).collect(),
    }
}

/// The elements of `x` not in `y`, in order: jaq's `x - y` on arrays.
pub fn without(x: &[Val], y: &[Val]) -> Vec<Val> {
    let mut y: Vec<&Val> = y.iter().collect();
    y.sort_by(|a, b| order(a, b));
    x.iter()
        .filter(|a| y.binary_search_by(|b| order(b, a)).is_err())
        .cloned()
        .collect()
}
