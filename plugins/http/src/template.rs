//! `{{ path }}` placeholders in the binding's config, filled from the call.
//!
//! A path starts at `input` (the step's input), `secrets` (the secrets the
//! binding names), `key` (the idempotency key), `instance` or `attempt`, and
//! goes on with `.field` or `.0` for an array element: `{{ input.order.id }}`.
//! A string that is one placeholder and nothing else becomes the value
//! itself (an object stays an object in a JSON body); inside a longer
//! string a value is written as text (strings as they are, the rest as JSON).

use weft_plugin_sdk::{Call, Value};

/// Where a filled-in string goes: a URL gets its values percent-encoded.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Into {
    Url,
    Text,
}

/// Fills every placeholder in `template`.
pub fn text(template: &str, call: &Call, into: Into) -> Result<String, String> {
    let mut out = String::with_capacity(template.len());
    let mut rest = template;
    while let Some(open) = rest.find("{{") {
        out.push_str(&rest[..open]);
        let after = &rest[open + 2..];
        let close = after
            .find("}}")
            .ok_or_else(|| format!("'{template}' opens a {{{{ placeholder it never closes"))?;
        let value = lookup(after[..close].trim(), call)?;
        let written = match value {
            Value::String(s) => s,
            other => other.to_string(),
        };
        match into {
            Into::Url => out.push_str(&percent_encode(&written)),
            Into::Text => out.push_str(&written),
        }
        rest = &after[close + 2..];
    }
    out.push_str(rest);
    Ok(out)
}

/// Fills placeholders in every string inside `template`.
pub fn value(template: &Value, call: &Call) -> Result<Value, String> {
    Ok(match template {
        Value::String(s) => match whole(s) {
            Some(path) => lookup(path, call)?,
            None => Value::String(text(s, call, Into::Text)?),
        },
        Value::Array(items) => Value::Array(
            items
                .iter()
                .map(|v| value(v, call))
                .collect::<Result<_, _>>()?,
        ),
        Value::Object(fields) => Value::Object(
            fields
                .iter()
                .map(|(k, v)| Ok((k.clone(), value(v, call)?)))
                .collect::<Result<_, String>>()?,
        ),
        other => other.clone(),
    })
}

/// The path of a string that is exactly one placeholder.
fn whole(s: &str) -> Option<&str> {
    let inner = s.trim().strip_prefix("{{")?.strip_suffix("}}")?;
    (!inner.contains("{{") && !inner.contains("}}")).then(|| inner.trim())
}

fn lookup(path: &str, call: &Call) -> Result<Value, String> {
    let mut parts = path.split('.');
    let root = parts.next().unwrap_or_default();
    let mut at = match root {
        "input" => call.input.clone(),
        "secrets" => call.config.get("secrets").cloned().unwrap_or(Value::Null),
        "key" => Value::String(call.idempotency_key.clone()),
        "instance" => Value::String(call.instance_id.clone()),
        "attempt" => Value::from(call.attempt),
        other => {
            return Err(format!(
                "{{{{ {path} }}}} starts at '{other}'; use input, secrets, key, instance or attempt"
            ));
        }
    };
    for part in parts {
        let next = match (&at, part.parse::<usize>()) {
            (Value::Array(items), Ok(i)) => items.get(i).cloned(),
            (Value::Object(fields), _) => fields.get(part).cloned(),
            _ => None,
        };
        at = next.ok_or_else(|| match root {
            // Never say what a secret holds, only that it is missing.
            "secrets" => format!("{{{{ {path} }}}}: the binding does not list that secret"),
            _ => format!("{{{{ {path} }}}} is not in the call ('{part}' is missing)"),
        })?;
    }
    Ok(at)
}

/// Percent-encodes everything but the characters RFC 3986 leaves unreserved.
fn percent_encode(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~') {
            out.push(char::from(b));
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use weft_plugin_sdk::json;

    fn call() -> Call {
        Call {
            action: "request".into(),
            input: json!({"order": {"id": "A 1/2", "items": [{"sku": "x"}]}, "n": 3}),
            config: json!({"secrets": {"TOKEN": "s3"}}),
            instance_id: "I1".into(),
            idempotency_key: "I1/charge/1".into(),
            attempt: 2,
            last_heartbeat: None,
        }
    }

    #[test]
    fn placeholders_fill_urls_text_and_values() {
        let c = call();
        assert_eq!(
            text(
                "http://h/o/{{ input.order.id }}?n={{input.n}}",
                &c,
                Into::Url
            )
            .unwrap(),
            "http://h/o/A%201%2F2?n=3"
        );
        assert_eq!(
            text("Bearer {{ secrets.TOKEN }}", &c, Into::Text).unwrap(),
            "Bearer s3"
        );
        assert_eq!(
            value(&json!({"o": "{{ input.order }}", "k": "{{key}}#{{attempt}}", "s": "{{ input.order.items.0.sku }}"}), &c).unwrap(),
            json!({"o": {"id": "A 1/2", "items": [{"sku": "x"}]}, "k": "I1/charge/1#2", "s": "x"})
        );
    }

    #[test]
    fn a_bad_placeholder_is_an_error_that_names_it() {
        let c = call();
        assert!(
            text("{{ input.nope }}", &c, Into::Text)
                .unwrap_err()
                .contains("'nope' is missing")
        );
        assert!(
            text("{{ env.HOME }}", &c, Into::Text)
                .unwrap_err()
                .contains("starts at 'env'")
        );
        assert!(
            text("x {{ input", &c, Into::Text)
                .unwrap_err()
                .contains("never closes")
        );
        let e = text("{{ secrets.OTHER }}", &c, Into::Text).unwrap_err();
        assert!(e.contains("does not list") && !e.contains("s3"));
    }
}
