//! Failure simulation: many runs of a process against adapters that fail at
//! random with a given mix, on a simulated clock, reported as the spread of
//! end states, compensations, parked instances and durations. Each run's
//! randomness comes from the seed and the run's number, so a seed gives
//! the same report, byte for byte.
//!
//! ```yaml
//! default: { latency: 20ms }            # actions not listed: succeed after 20ms
//! actions:
//!   charge_payment:
//!     retryable: 10%                     # fail, to be retried
//!     timeout: 2%                        # never answer: the attempt times out
//!     errors: { card_declined: 5% }      # typed errors
//!     latency: { min: 50ms, max: 2s }    # or one duration
//!     output: { charge_id: c-1 }         # what a success answers (default {})
//! ```

use std::collections::{BTreeMap, HashMap};
use std::fmt::Write as _;

use indexmap::IndexMap;
use serde::Deserialize;
use serde_json::Value;

use super::{Adapters, Answer, Drive, SplitMix};
use crate::bindings::ActionDefaults;
use crate::instance::{Failure, Invoke, Status, StepOutcome};
use crate::process::Process;
use crate::source::{Diagnostics, Document, Format, pointer};
use crate::time::Span;
use crate::validate::deserialize;

/// How one action behaves: chances (0 to 1) of each failure, latency, and
/// what a success answers.
#[derive(Debug, Clone, PartialEq)]
pub struct Mix {
    pub retryable: f64,
    pub timeout: f64,
    pub errors: Vec<(String, f64)>,
    pub latency: (Span, Span),
    pub output: Value,
}

impl Default for Mix {
    fn default() -> Self {
        Mix {
            retryable: 0.0,
            timeout: 0.0,
            errors: Vec::new(),
            latency: (Span(0), Span(0)),
            output: Value::Object(Default::default()),
        }
    }
}

/// The fault mix of every action.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Faults {
    pub default: Mix,
    pub actions: HashMap<String, Mix>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct FaultsDef {
    #[serde(default)]
    default: Option<MixDef>,
    #[serde(default)]
    actions: IndexMap<String, MixDef>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct MixDef {
    #[serde(default)]
    retryable: Option<Value>,
    #[serde(default)]
    timeout: Option<Value>,
    #[serde(default)]
    errors: IndexMap<String, Value>,
    #[serde(default)]
    latency: Option<Value>,
    #[serde(default)]
    output: Option<Value>,
}

/// Reads and checks a faults file.
pub fn load(file: &str, text: &str) -> Result<Faults, Diagnostics> {
    let doc = crate::source::load(file, text, Format::from_path(file))?;
    let def: FaultsDef = deserialize(&doc, "", &doc.value).map_err(Diagnostics::from)?;
    let mut diags = Diagnostics::default();
    let default = def
        .default
        .map(|m| mix(&doc, "/default", m, &mut diags))
        .unwrap_or_default();
    let mut actions = HashMap::new();
    for (name, m) in def.actions {
        let at = pointer(["actions", &name]);
        actions.insert(name, mix(&doc, &at, m, &mut diags));
    }
    if diags.is_empty() {
        Ok(Faults { default, actions })
    } else {
        Err(diags.sorted())
    }
}

/// `10%`, `0.1` or `0`: a chance from 0 to 1.
fn chance(v: &Value) -> Result<f64, String> {
    let p = match v {
        Value::String(s) => s
            .trim()
            .strip_suffix('%')
            .and_then(|n| n.trim().parse::<f64>().ok())
            .map(|n| n / 100.0)
            .ok_or_else(|| format!("'{s}' is not a chance: write it like 5% or 0.05"))?,
        Value::Number(n) => n.as_f64().unwrap_or(f64::NAN),
        other => return Err(format!("{other} is not a chance: write it like 5% or 0.05")),
    };
    if (0.0..=1.0).contains(&p) {
        Ok(p)
    } else {
        Err(format!("{v} is not a chance between 0% and 100%"))
    }
}

fn mix(doc: &Document, at: &str, m: MixDef, diags: &mut Diagnostics) -> Mix {
    let mut out = Mix::default();
    let get = |field: &str, v: &Option<Value>, diags: &mut Diagnostics| -> f64 {
        match v.as_ref().map(chance) {
            None => 0.0,
            Some(Ok(p)) => p,
            Some(Err(why)) => {
                diags.push(doc.diag(&format!("{at}/{field}"), why));
                0.0
            }
        }
    };
    out.retryable = get("retryable", &m.retryable, diags);
    out.timeout = get("timeout", &m.timeout, diags);
    for (kind, v) in &m.errors {
        match chance(v) {
            Ok(p) => out.errors.push((kind.clone(), p)),
            Err(why) => diags.push(doc.diag(&format!("{at}{}", pointer(["errors", kind])), why)),
        }
    }
    let total: f64 = out.retryable + out.timeout + out.errors.iter().map(|(_, p)| p).sum::<f64>();
    if total > 1.0 + 1e-9 {
        diags.push(doc.key_diag(
            at,
            format!(
                "the failure chances add up to {:.1}%, over 100%",
                total * 100.0
            ),
        ));
    }
    let span = |v: &Value| match v {
        Value::String(s) => Span::parse(s).map_err(|e| e.to_string()),
        other => Err(format!("{other} is not a duration")),
    };
    match &m.latency {
        None => {}
        Some(Value::Object(o)) => match (o.get("min").map(span), o.get("max").map(span), o.len()) {
            (Some(Ok(a)), Some(Ok(b)), 2) if a <= b => out.latency = (a, b),
            _ => diags.push(doc.diag(
                &format!("{at}/latency"),
                "latency is one duration, or { min: <duration>, max: <duration> } with min ≤ max",
            )),
        },
        Some(v) => match span(v) {
            Ok(d) => out.latency = (d, d),
            Err(why) => diags.push(doc.diag(&format!("{at}/latency"), why)),
        },
    }
    if let Some(o) = m.output {
        out.output = o;
    }
    out
}

struct Random<'f> {
    faults: &'f Faults,
    rng: SplitMix,
}

impl Adapters for Random<'_> {
    fn answer(&mut self, invoke: &Invoke) -> Result<Answer, String> {
        let m = self
            .faults
            .actions
            .get(&invoke.action)
            .unwrap_or(&self.faults.default);
        let (lo, hi) = m.latency;
        let after = Span(lo.0 + ((hi.0 - lo.0) as f64 * self.rng.unit()) as u64);
        let mut roll = self.rng.unit();
        let fail = |kind: &str| StepOutcome::Failed {
            failure: Failure::new(kind, format!("simulated {kind}")),
        };
        if roll < m.timeout {
            // Never answers: the driver turns it into the attempt's timeout.
            return Ok(Answer {
                after: Span(u64::MAX / 4),
                outcome: fail("timeout"),
            });
        }
        roll -= m.timeout;
        if roll < m.retryable {
            return Ok(Answer {
                after,
                outcome: fail("retryable"),
            });
        }
        roll -= m.retryable;
        for (kind, p) in &m.errors {
            if roll < *p {
                return Ok(Answer {
                    after,
                    outcome: fail(kind),
                });
            }
            roll -= p;
        }
        Ok(Answer {
            after,
            outcome: StepOutcome::Done {
                output: m.output.clone(),
            },
        })
    }
}

/// What many runs came to.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Summary {
    pub runs: u32,
    pub by_status: BTreeMap<String, u32>,
    pub by_state: BTreeMap<String, u32>,
    /// Runs that undid at least one step, and undone steps by state.
    pub compensated_runs: u32,
    pub undone: BTreeMap<String, u32>,
    /// Durations of the runs that ended, sorted.
    pub durations: Vec<Span>,
    /// Runs that could not go on (a loop that never ends), with why (first few).
    pub stopped: Vec<String>,
}

/// Runs `process` `runs` times against `faults`, seeded.
pub fn simulate(
    process: &Process,
    defaults: &dyn ActionDefaults,
    faults: &Faults,
    input: &Value,
    runs: u32,
    seed: u64,
) -> Summary {
    let mut s = Summary {
        runs,
        ..Default::default()
    };
    for n in 0..runs {
        let mut adapters = Random {
            faults,
            rng: SplitMix(seed ^ (u64::from(n)).wrapping_mul(0xA24B_AED4_963E_E407)),
        };
        let run = Drive::start(
            process,
            defaults,
            input.clone(),
            super::cases::T0,
            u128::from(n),
            &mut adapters,
        )
        .and_then(|mut d| d.run(&mut adapters).map(|()| d));
        let d = match run {
            Ok(d) => d,
            Err(why) => {
                *s.by_status.entry("stopped".to_owned()).or_insert(0) += 1;
                if s.stopped.len() < 3 {
                    s.stopped.push(why);
                }
                continue;
            }
        };
        *s.by_status.entry(d.inst.status.to_string()).or_insert(0) += 1;
        *s.by_state.entry(d.inst.state.clone()).or_insert(0) += 1;
        let undone = d.compensated();
        if !undone.is_empty() {
            s.compensated_runs += 1;
        }
        for u in undone {
            *s.undone.entry(u).or_insert(0) += 1;
        }
        if d.inst.status.is_finished() {
            s.durations.push(d.elapsed());
        }
    }
    s.durations.sort();
    s
}

impl Summary {
    fn percentile(&self, p: f64) -> Option<Span> {
        if self.durations.is_empty() {
            return None;
        }
        let i = ((self.durations.len() as f64 * p).ceil() as usize).clamp(1, self.durations.len());
        Some(self.durations[i - 1])
    }

    /// The share of runs that ended with `status`.
    pub fn share(&self, status: Status) -> f64 {
        f64::from(*self.by_status.get(status.as_str()).unwrap_or(&0)) / f64::from(self.runs.max(1))
    }

    /// The report as printed: the same summary gives the same text.
    pub fn render(&self, process: &Process, seed: u64) -> String {
        let pct = |n: u32| 100.0 * f64::from(n) / f64::from(self.runs.max(1));
        let mut out = String::new();
        let _ = writeln!(
            out,
            "simulated {} v{}: {} runs, seed {seed}",
            process.name, process.version, self.runs
        );
        let _ = writeln!(out, "ended:");
        for (status, n) in &self.by_status {
            let _ = writeln!(out, "  {status:<10} {n:>8}  {:>6.2}%", pct(*n));
        }
        let _ = writeln!(out, "end states:");
        for (state, n) in &self.by_state {
            let _ = writeln!(out, "  {state:<24} {n:>8}  {:>6.2}%", pct(*n));
        }
        let _ = writeln!(
            out,
            "compensations: {} runs ({:.2}%) undid steps",
            self.compensated_runs,
            pct(self.compensated_runs)
        );
        for (state, n) in &self.undone {
            let _ = writeln!(out, "  {state:<24} undone {n:>8}");
        }
        match (
            self.percentile(0.5),
            self.percentile(0.9),
            self.percentile(0.99),
        ) {
            (Some(p50), Some(p90), Some(p99)) => {
                let max = self.durations.last().copied().unwrap_or_default();
                let _ = writeln!(
                    out,
                    "duration of ended runs: p50 {p50}  p90 {p90}  p99 {p99}  max {max}"
                );
            }
            _ => {
                let _ = writeln!(out, "duration: no run ended");
            }
        }
        if let Some(sla) = process.sla {
            let over = self.durations.iter().filter(|d| **d > sla).count() as u32;
            let _ = writeln!(
                out,
                "over the process sla of {sla}: {over} of the ended runs ({:.2}%)",
                100.0 * f64::from(over) / f64::from((self.durations.len() as u32).max(1))
            );
        }
        for why in &self.stopped {
            let _ = writeln!(out, "stopped: {why}");
        }
        out
    }
}
