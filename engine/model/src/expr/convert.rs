//! Converting between JSON and jq values.

use jaq_json::Val;
use serde_json::Value;

use super::MAX_DEPTH;
use super::value::V;

/// Converts JSON to a jq value, measuring how deeply it nests on the way.
pub fn to_v(v: &Value) -> V {
    fn convert(v: &Value) -> (Val, u32) {
        match v {
            Value::Null => (Val::Null, 0),
            Value::Bool(b) => (Val::Bool(*b), 0),
            Value::Number(n) => {
                let n = match (n.as_i64(), n.as_u64()) {
                    (Some(i), _) => jaq_json::Num::from_integral(i),
                    (None, Some(u)) => jaq_json::Num::from_integral(u),
                    (None, None) => jaq_json::Num::Float(n.as_f64().unwrap_or(f64::NAN)),
                };
                (Val::Num(n), 0)
            }
            Value::String(s) => (Val::utf8_str(s.clone().into_bytes()), 0),
            Value::Array(a) => {
                let mut depth = 0;
                let items = a
                    .iter()
                    .map(|x| {
                        let (x, d) = convert(x);
                        depth = depth.max(d);
                        x
                    })
                    .collect();
                (Val::Arr(jaq_json::Rc::new(items)), depth + 1)
            }
            Value::Object(o) => {
                let mut depth = 0;
                let entries = o
                    .iter()
                    .map(|(k, x)| {
                        let (x, d) = convert(x);
                        depth = depth.max(d);
                        (Val::utf8_str(k.clone().into_bytes()), x)
                    })
                    .collect();
                (Val::obj(entries), depth + 1)
            }
        }
    }
    let (val, depth) = convert(v);
    V::with_depth(val, depth.min(MAX_DEPTH + 1))
}

/// Converts a jq value back to JSON. Non-finite numbers become `null` (as in
/// jq); non-string object keys are written as their JSON text. Every jq
/// value has a JSON form, so this cannot fail.
pub fn from_val(v: &Val) -> Value {
    match v {
        Val::Null => Value::Null,
        Val::Bool(b) => Value::Bool(*b),
        Val::Num(n) => number(n),
        Val::TStr(b) | Val::BStr(b) => Value::String(String::from_utf8_lossy(b).into_owned()),
        Val::Arr(a) => Value::Array(a.iter().map(from_val).collect()),
        Val::Obj(o) => {
            let mut m = serde_json::Map::with_capacity(o.len());
            for (k, v) in o.iter() {
                let key = match k {
                    Val::TStr(b) | Val::BStr(b) => String::from_utf8_lossy(b).into_owned(),
                    other => from_val(other).to_string(),
                };
                m.insert(key, from_val(v));
            }
            Value::Object(m)
        }
    }
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
