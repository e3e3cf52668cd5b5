//! `schedule:`: cron schedules that start instances, each with its input.

use serde_json::Value;

use super::deserialize;
use crate::def::ScheduleDef;
use crate::limits;
use crate::schedule::{Cron, Schedule};
use crate::source::{Diagnostics, Document};

/// `schedule:` — one `{ cron, input, missed }` or a list of them.
pub(super) fn schedules(
    doc: &Document,
    raw: Option<&Value>,
    diags: &mut Diagnostics,
) -> Vec<Schedule> {
    let items: Vec<(String, &Value)> = match raw {
        None => return Vec::new(),
        Some(Value::Array(list)) => list
            .iter()
            .enumerate()
            .map(|(i, v)| (format!("/schedule/{i}"), v))
            .collect(),
        Some(v) => vec![("/schedule".to_owned(), v)],
    };
    let mut out = Vec::new();
    for (at, value) in items {
        let def: ScheduleDef = match deserialize(doc, &at, value) {
            Ok(d) => d,
            Err(d) => {
                diags.push(d);
                continue;
            }
        };
        let cron = match Cron::parse(&def.cron) {
            Ok(c) => c,
            Err(e) => {
                diags.push(
                    doc.diag(&format!("{at}/cron"), format!("bad cron expression: {e}"))
                        .hint("write `sec min hour day month weekday`, e.g. \"0 */5 * * * *\""),
                );
                continue;
            }
        };
        let input = def
            .input
            .unwrap_or_else(|| Value::Object(Default::default()));
        if !input.is_object() {
            diags.push(doc.diag(
                &format!("{at}/input"),
                "a schedule's input must be an object",
            ));
            continue;
        }
        if let Err(e) = limits::check(&input) {
            diags.push(
                doc.diag(&format!("{at}/input"), format!("the schedule's input {e}"))
                    .hint("start with a small input and let the first step fetch the rest"),
            );
            continue;
        }
        out.push(Schedule {
            cron,
            input,
            missed: def.missed.unwrap_or_default(),
        });
    }
    out
}
