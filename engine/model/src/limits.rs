//! How deep and how large user data may be. One policy for every way data
//! comes in — start inputs, signal payloads, completions, adapter outputs, a
//! binding's config, a schedule's input — so nothing downstream (serializing,
//! jq, dropping a value, all recursive) can be made to run out of stack, and
//! no single payload can bloat an instance's snapshot.

use std::fmt;

use serde_json::Value;

/// Most containers (arrays and objects) a value may nest: `{"a": [1]}` nests 2.
pub const MAX_DEPTH: usize = 64;

/// Largest a single payload may be, as compact JSON.
pub const MAX_BYTES: usize = 4 << 20;

/// Most levels a process or bindings file may nest, counted the same way
/// (the top-level mapping is level 1). The structure itself needs few: each
/// parallel state inside a branch adds 4 (`states`, the state, `branches`,
/// the branch), so even parallels nested five deep stay under 30. The rest is
/// room for embedded data (a schedule's `input` starts at level 4, a binding's
/// `config` at 4) up to `MAX_DEPTH`, so that data meets its own, clearer
/// limit first. It stays well below what the YAML reader, which recurses once
/// per level, can take on a 2 MiB thread in a debug build.
pub const MAX_DOCUMENT_DEPTH: usize = 100;

/// Why a value is refused. Displays as a predicate, to follow what the value
/// is: "the signal payload nests 70 levels deep; at most 64 are allowed".
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum LimitError {
    #[error("nests {depth} levels deep; at most {max} are allowed")]
    TooDeep { depth: usize, max: usize },
    #[error("takes {bytes} bytes as JSON; at most {max} are allowed")]
    TooLarge { bytes: usize, max: usize },
}

/// Checks `value` against `MAX_DEPTH` and `MAX_BYTES`. Walks with its own
/// stack, so a value of any depth is measured without recursion.
pub fn check(value: &Value) -> Result<(), LimitError> {
    let (depth, bytes) = measure(value);
    if depth > MAX_DEPTH {
        return Err(LimitError::TooDeep {
            depth,
            max: MAX_DEPTH,
        });
    }
    if bytes > MAX_BYTES {
        return Err(LimitError::TooLarge {
            bytes,
            max: MAX_BYTES,
        });
    }
    Ok(())
}

/// How many containers `value` nests, found without recursion.
pub fn depth(value: &Value) -> usize {
    let mut deepest = 0;
    let mut stack = vec![(value, 0usize)];
    while let Some((v, depth)) = stack.pop() {
        match v {
            Value::Array(items) => stack.extend(items.iter().map(|c| (c, depth + 1))),
            Value::Object(map) => stack.extend(map.values().map(|c| (c, depth + 1))),
            _ => continue,
        }
        deepest = deepest.max(depth + 1);
    }
    deepest
}

/// The nesting depth of `value` and its exact size as compact JSON (what
/// `serde_json::to_vec` would produce), without serializing it.
fn measure(value: &Value) -> (usize, usize) {
    let mut deepest = 0;
    let mut bytes = 0usize;
    let mut stack = vec![(value, 0usize)];
    while let Some((v, depth)) = stack.pop() {
        let size = match v {
            Value::Null => 4,
            Value::Bool(b) => 4 + usize::from(!b),
            Value::Number(n) => {
                let mut count = Count(0);
                // Writing to a counter cannot fail.
                let _ = fmt::write(&mut count, format_args!("{n}"));
                count.0
            }
            Value::String(s) => string_size(s),
            Value::Array(items) => {
                deepest = deepest.max(depth + 1);
                stack.extend(items.iter().map(|i| (i, depth + 1)));
                // Brackets and the commas between items.
                2 + items.len().saturating_sub(1)
            }
            Value::Object(map) => {
                deepest = deepest.max(depth + 1);
                stack.extend(map.values().map(|i| (i, depth + 1)));
                // Braces, commas, and each key with its colon.
                2 + map.len().saturating_sub(1)
                    + map.keys().map(|k| string_size(k) + 1).sum::<usize>()
            }
        };
        bytes = bytes.saturating_add(size);
    }
    (deepest, bytes)
}

/// A string's size as serde_json writes it: quoted, with `"`, `\` and control
/// characters escaped.
fn string_size(s: &str) -> usize {
    let escapes: usize = s
        .bytes()
        .map(|b| match b {
            b'"' | b'\\' | b'\x08' | b'\x0c' | b'\n' | b'\r' | b'\t' => 1,
            0..=0x1f => 5,
            _ => 0,
        })
        .sum();
    2 + s.len() + escapes
}

struct Count(usize);

impl fmt::Write for Count {
    fn write_str(&mut self, s: &str) -> fmt::Result {
        self.0 += s.len();
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    /// `levels` arrays, one inside the other, built without recursion.
    fn nested(levels: usize) -> Value {
        let mut v = json!(1);
        for _ in 0..levels {
            v = Value::Array(vec![v]);
        }
        v
    }

    /// Takes a deep value apart from the top, so that dropping it does not
    /// recurse once per level.
    fn dismantle(mut v: Value) {
        loop {
            v = match v {
                Value::Array(mut items) => match items.pop() {
                    Some(inner) => inner,
                    None => return,
                },
                _ => return,
            };
        }
    }

    #[test]
    fn check_depth_64_accepted_65_refused() {
        assert_eq!(check(&nested(64)), Ok(()));
        assert_eq!(
            check(&nested(65)),
            Err(LimitError::TooDeep { depth: 65, max: 64 })
        );
        assert_eq!(
            check(&nested(126)).expect_err("too deep").to_string(),
            "nests 126 levels deep; at most 64 are allowed"
        );
    }

    #[test]
    fn check_depth_counts_containers_on_the_deepest_path() {
        for (v, want) in [
            (json!(1), 0),
            (json!([]), 1),
            (json!({"a": [1], "b": {"c": {"d": []}}}), 4),
        ] {
            assert_eq!(measure(&v).0, want, "{v}");
            assert_eq!(depth(&v), want, "{v}");
        }
    }

    #[test]
    fn check_100000_deep_value_refused_without_overflowing_the_stack() {
        // Runs on the test thread's default stack: the walk must not recurse.
        let v = nested(100_000);
        assert_eq!(
            check(&v),
            Err(LimitError::TooDeep {
                depth: 100_000,
                max: 64
            })
        );
        dismantle(v);
    }

    #[test]
    fn check_size_is_exactly_the_compact_json_length() {
        let v = json!({
            "s": "quote \" backslash \\ tab \t nul \u{0} bell \u{7} del \u{7f} é ☃",
            "n": [0, -1, 18446744073709551615u64, -9223372036854775808i64, 1.5, 1e300, -2.5e-8],
            "b": [true, false, null],
            "e": {"": [], "k\n": {}},
        });
        let written = serde_json::to_vec(&v).expect("serializes").len();
        assert_eq!(measure(&v).1, written);
    }

    #[test]
    fn check_size_4_mib_accepted_one_byte_more_refused() {
        // A string of n bytes is n + 2 as JSON.
        let fits = Value::String("x".repeat(MAX_BYTES - 2));
        assert_eq!(check(&fits), Ok(()));
        let over = Value::String("x".repeat(MAX_BYTES - 1));
        assert_eq!(
            check(&over),
            Err(LimitError::TooLarge {
                bytes: MAX_BYTES + 1,
                max: MAX_BYTES
            })
        );
        assert_eq!(
            check(&over).expect_err("too large").to_string(),
            "takes 4194305 bytes as JSON; at most 4194304 are allowed"
        );
    }
}
