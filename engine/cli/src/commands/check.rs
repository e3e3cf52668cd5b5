//! `weft test` and `weft simulate`: a process run on the pure interpreter,
//! on a simulated clock, against scripted or randomly failing adapters. No
//! engine, store or plugin is involved, so thousands of runs take a second.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use weft_model::testing::{cases, simulate};
use weft_model::{ActionDefaults, Bindings, Diagnostics, NoDefaults, Process};

use crate::{exit, load, render};

fn show(diags: &Diagnostics) -> u8 {
    for d in diags.iter() {
        eprintln!("{d}");
    }
    exit::ERROR
}

/// The process and, when given, the bindings lending their defaults; a
/// file that is wrong has been reported and gives the exit code.
fn inputs(process: &Path, bindings: Option<&Path>) -> Result<(Process, Option<Bindings>), u8> {
    let p = load::process_file(process).map_err(|d| show(&d))?;
    let b = bindings
        .map(load::bindings_file)
        .transpose()
        .map_err(|d| show(&d))?;
    Ok((p, b))
}

/// The bindings' retry and timeout defaults, or none.
fn lend(b: Option<&Bindings>) -> &dyn ActionDefaults {
    match b {
        Some(b) => b,
        None => &NoDefaults,
    }
}

/// `weft test <process> [cases...]`: runs every case; exit 0 when all
/// pass, 1 when any fails, 2 when a file is wrong.
pub fn test(
    process: &Path,
    files: &[PathBuf],
    bindings: Option<&Path>,
    junit: Option<&Path>,
) -> anyhow::Result<u8> {
    let (p, b) = match inputs(process, bindings) {
        Ok(i) => i,
        Err(code) => return Ok(code),
    };
    let defaults = lend(b.as_ref());
    let files: Vec<PathBuf> = if files.is_empty() {
        let beside = process.with_file_name("cases.yaml");
        if !beside.exists() {
            anyhow::bail!(
                "no case files given and no {} beside the process: name the case files to run",
                beside.display()
            );
        }
        vec![beside]
    } else {
        files.to_vec()
    };
    let mut all = Vec::new();
    for f in &files {
        let name = f.display().to_string();
        let text = match load::read(f) {
            Ok(t) => t,
            Err(d) => return Ok(show(&d.into())),
        };
        match cases::load(&name, &text, &p) {
            Ok(cs) => all.extend(cs.into_iter().map(|c| (name.clone(), c))),
            Err(d) => return Ok(show(&d)),
        }
    }
    let watch = Stopwatch::start();
    let reports: Vec<(String, cases::Report)> = all
        .iter()
        .map(|(file, c)| (file.clone(), cases::run(&p, defaults, c)))
        .collect();
    let took = watch.seconds();
    let failed = reports.iter().filter(|(_, r)| !r.passed()).count();
    for (_, r) in &reports {
        if r.passed() {
            render::say(format_args!(
                "ok    {}  ({}, {} in {})",
                r.name,
                r.status,
                r.path.join(" → "),
                r.elapsed
            ));
        } else {
            render::say(format_args!("FAIL  {}", r.name));
            for f in &r.failures {
                render::say(format_args!("        {f}"));
            }
        }
    }
    render::say(format_args!(
        "{} cases: {} passed, {failed} failed ({:.0} ms)",
        reports.len(),
        reports.len() - failed,
        took * 1000.0
    ));
    if let Some(path) = junit {
        std::fs::write(path, junit_xml(&p, &reports, took))
            .map_err(|e| anyhow::anyhow!("cannot write {}: {e}", path.display()))?;
    }
    Ok(if failed == 0 { exit::OK } else { exit::FAILED })
}

/// JUnit XML, as CI systems read it: one testsuite, one testcase per case.
fn junit_xml(p: &Process, reports: &[(String, cases::Report)], took: f64) -> String {
    let esc = |s: &str| {
        s.replace('&', "&amp;")
            .replace('<', "&lt;")
            .replace('>', "&gt;")
            .replace('"', "&quot;")
    };
    let failed = reports.iter().filter(|(_, r)| !r.passed()).count();
    let mut x = String::from("<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n");
    let _ = writeln!(
        x,
        "<testsuite name=\"{} v{}\" tests=\"{}\" failures=\"{failed}\" time=\"{took:.3}\">",
        esc(&p.name),
        p.version,
        reports.len()
    );
    for (file, r) in reports {
        let _ = write!(
            x,
            "  <testcase classname=\"{}\" name=\"{}\"",
            esc(file),
            esc(&r.name)
        );
        if r.passed() {
            x.push_str("/>\n");
        } else {
            let text = r.failures.join("\n");
            let _ = writeln!(
                x,
                ">\n    <failure message=\"{}\">{}</failure>\n  </testcase>",
                esc(r.failures.first().map(String::as_str).unwrap_or_default()),
                esc(&text)
            );
        }
    }
    x.push_str("</testsuite>\n");
    x
}

/// `weft simulate`: the spread of outcomes over many seeded runs.
pub fn simulate(
    process: &Path,
    bindings: Option<&Path>,
    faults: &Path,
    input: &str,
    runs: u32,
    seed: u64,
) -> anyhow::Result<u8> {
    let (p, b) = match inputs(process, bindings) {
        Ok(i) => i,
        Err(code) => return Ok(code),
    };
    let defaults = lend(b.as_ref());
    let name = faults.display().to_string();
    let text = match load::read(faults) {
        Ok(t) => t,
        Err(d) => return Ok(show(&d.into())),
    };
    let faults = match simulate::load(&name, &text) {
        Ok(f) => f,
        Err(d) => return Ok(show(&d)),
    };
    let input: serde_json::Value =
        serde_json::from_str(input).map_err(|e| anyhow::anyhow!("--input is not JSON: {e}"))?;
    if runs == 0 {
        anyhow::bail!("--runs must be at least 1");
    }
    let summary = simulate::simulate(&p, defaults, &faults, &input, runs, seed);
    print!("{}", summary.render(&p, seed));
    Ok(exit::OK)
}

/// Wall time of the whole run, for the report line only.
struct Stopwatch(std::time::Instant);

impl Stopwatch {
    #[allow(clippy::disallowed_methods)]
    fn start() -> Self {
        Stopwatch(std::time::Instant::now())
    }
    fn seconds(&self) -> f64 {
        self.0.elapsed().as_secs_f64()
    }
}

/// `weft test <process> --record <instance>`: prints a case file (JSON)
/// made from a real instance's history, to run against `process`.
pub async fn record(process: &Path, target: &str, data: &Path) -> anyhow::Result<u8> {
    let p = match load::process_file(process) {
        Ok(p) => p,
        Err(d) => return Ok(show(&d)),
    };
    let (inst, records) = super::show::instance_and_history(target, data).await?;
    let case = weft_model::testing::record::case(&p, &inst, &records);
    let file = serde_json::json!({ "process": p.name, "cases": [case] });
    println!("{}", serde_json::to_string_pretty(&file)?);
    Ok(exit::OK)
}
