//! Validated bindings (the tool layer: which plugin, config, capabilities and
//! limits carry out each domain action) and the checks that tie a process, its
//! bindings and the plugins' manifests together.

use std::path::{Path, PathBuf};

use indexmap::IndexMap;
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::def::{BindingDef, BindingsDef, RateLimitDef};
use crate::error::{Error, Result};
use crate::limits;
use crate::process::{ENGINE_ERROR_KINDS, Process, StateKind};
use crate::retry::RetryPolicy;
use crate::source::{Diagnostics, Document, pointer};
use crate::time::Span;
use crate::validate::{deserialize, error_kind_possible, retry_policy, suggest, valid_name};

/// Longest an attempt may run when the binding does not say.
pub const DEFAULT_TIMEOUT: Span = Span(30_000);
/// Largest memory a plugin may grow to when the binding does not say.
pub const DEFAULT_MEMORY: u64 = 64 << 20;
/// Largest result an adapter may answer when the binding does not say.
pub const DEFAULT_MAX_OUTPUT: u64 = 1 << 20;
fn default_max_output() -> u64 {
    DEFAULT_MAX_OUTPUT
}

/// Largest `max_output` a binding may set.
pub const MAX_OUTPUT: u64 = 64 << 20;
/// Largest memory a binding may grant.
pub const MAX_MEMORY: u64 = 1 << 30;

/// What a plugin says about itself (its `describe` export).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Manifest {
    pub name: String,
    pub version: String,
    pub actions: Vec<ActionInfo>,
}

impl Manifest {
    pub fn action(&self, name: &str) -> Option<&ActionInfo> {
        self.actions.iter().find(|a| a.name == name)
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ActionInfo {
    pub name: String,
    pub idempotent: bool,
    pub compensated_by: Option<String>,
    pub errors: Vec<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Bindings {
    /// Plugin name to component file.
    pub plugins: IndexMap<String, PathBuf>,
    /// Domain action to binding.
    pub actions: IndexMap<String, Binding>,
}

/// How one domain action is carried out.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Binding {
    pub plugin: String,
    /// The plugin's own name for the action.
    pub action: String,
    pub config: Value,
    pub timeout: Span,
    /// Bytes of linear memory the plugin may grow to.
    pub memory: u64,
    /// Names of the secrets handed to the plugin at invocation time (in
    /// its config's `secrets` object); their values are never stored.
    #[serde(default)]
    pub secrets: Vec<String>,
    /// Largest result, in bytes, the plugin may answer (bindings stored
    /// before it existed read as the default).
    #[serde(default = "default_max_output")]
    pub max_output: u64,
    pub grants: Grants,
    /// Instructions one attempt may execute, if limited.
    #[serde(default)]
    pub fuel: Option<u64>,
    /// Retry policy for steps running this action that set none themselves.
    #[serde(default)]
    pub retry: Option<RetryPolicy>,
    #[serde(default)]
    pub limits: Limits,
}

/// Protection for the tool behind a binding. Enforced by the engine, never
/// by adapter code.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct Limits {
    pub rate: Option<Rate>,
    /// Most invocations running at once.
    pub concurrency: Option<u32>,
    pub breaker: Option<BreakerPolicy>,
}

/// A token bucket: `burst` invocations at once, refilled at `count` per `per`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Rate {
    pub count: u32,
    pub per: Span,
    pub burst: u32,
}

impl Rate {
    /// Time for one token to come back.
    pub fn interval(&self) -> Span {
        Span(self.per.as_millis() / u64::from(self.count.max(1)))
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct BreakerPolicy {
    /// Consecutive tool failures that open the breaker.
    pub failures: u32,
    /// How long it stays open before one trial call is let through.
    pub cool_down: Span,
}

/// What the interpreter may ask of the bindings for an action.
pub trait ActionDefaults {
    fn retry(&self, action: &str) -> Option<&RetryPolicy>;
    fn timeout(&self, action: &str) -> Option<Span>;
}

impl Bindings {
    /// The most linear memory any binding of `plugin` grants (the default
    /// when none says): what its `describe` may use.
    pub fn memory_for(&self, plugin: &str) -> u64 {
        self.actions
            .values()
            .filter(|b| b.plugin == plugin)
            .map(|b| b.memory)
            .max()
            .unwrap_or(DEFAULT_MEMORY)
    }
}

impl ActionDefaults for Bindings {
    fn retry(&self, action: &str) -> Option<&RetryPolicy> {
        self.actions.get(action).and_then(|b| b.retry.as_ref())
    }
    fn timeout(&self, action: &str) -> Option<Span> {
        self.actions.get(action).map(|b| b.timeout)
    }
}

/// No bindings: no retry defaults, the default timeout.
#[derive(Debug, Clone, Copy, Default)]
pub struct NoDefaults;

impl ActionDefaults for NoDefaults {
    fn retry(&self, _: &str) -> Option<&RetryPolicy> {
        None
    }
    fn timeout(&self, _: &str) -> Option<Span> {
        None
    }
}

/// Ambient authority a plugin is given. Empty by default: no files, no
/// environment.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct Grants {
    /// (guest path, host path) pairs the plugin may read and write.
    pub dirs: Vec<(String, PathBuf)>,
    pub env: Vec<(String, String)>,
    /// `host:port` patterns the plugin may send HTTP requests to.
    #[serde(default)]
    pub allow_hosts: Vec<String>,
}

impl Grants {
    /// Whether an HTTP request to `authority` (`host:port`) is allowed.
    pub fn allows_host(&self, authority: &str) -> bool {
        let Some((host, port)) = authority.rsplit_once(':') else {
            return false;
        };
        let host = host.to_ascii_lowercase();
        self.allow_hosts.iter().any(|pattern| {
            let Some((want, want_port)) = pattern.rsplit_once(':') else {
                return false;
            };
            if want_port != port {
                return false;
            }
            match want.strip_prefix("*.") {
                Some(domain) => host
                    .strip_suffix(domain)
                    .is_some_and(|sub| sub.len() > 1 && sub.ends_with('.')),
                None => want.eq_ignore_ascii_case(&host),
            }
        })
    }
}

/// Grants holding only these `allow_hosts` entries, each checked.
pub fn grants_for_hosts(hosts: &[String]) -> Result<Grants, String> {
    let mut grants = Grants::default();
    for h in hosts {
        host_pattern(h)?;
        grants.allow_hosts.push(h.to_ascii_lowercase());
    }
    Ok(grants)
}

/// Checks one `allow_hosts` entry: `host:port` or `*.domain:port`.
fn host_pattern(text: &str) -> Result<(), String> {
    let Some((host, port)) = text.rsplit_once(':') else {
        return Err(format!("'{text}' has no port"));
    };
    if port.parse::<u16>().map_or(true, |p| p == 0) {
        return Err(format!("'{port}' in '{text}' is not a port"));
    }
    let wildcard = host.starts_with("*.");
    let name = host.strip_prefix("*.").unwrap_or(host);
    if wildcard && (!name.contains('.') || name.bytes().all(|b| b.is_ascii_digit() || b == b'.')) {
        return Err(format!(
            "'{text}' is too wide: a wildcard needs a domain of two labels or more, never an address"
        ));
    }
    let ok = !name.is_empty()
        && name.len() <= 253
        && name.split('.').all(|label| {
            !label.is_empty()
                && label.len() <= 63
                && label
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'-')
        });
    if ok {
        Ok(())
    } else {
        Err(format!(
            "'{host}' in '{text}' is not a host name or IPv4 address"
        ))
    }
}

/// Validates a bindings document; relative paths are taken from `base`.
pub fn bindings(doc: &Document, base: &Path) -> Result<Bindings, Diagnostics> {
    crate::source::check_depth(doc)?;
    let def: BindingsDef = deserialize(doc, "", &doc.value).map_err(Diagnostics::from)?;
    let mut diags = Diagnostics::default();
    let mut plugins = IndexMap::new();
    for (name, path) in &def.plugins {
        if !valid_name(name) {
            diags.push(doc.key_diag(
                &pointer(["plugins", name]),
                format!("'{name}' is not a valid plugin name"),
            ));
        }
        plugins.insert(name.clone(), base.join(path));
    }
    let mut actions = IndexMap::new();
    for (name, raw) in &def.actions {
        if let Some(b) = binding(doc, base, name, raw, &def, &mut diags) {
            actions.insert(name.clone(), b);
        }
    }
    if diags.is_empty() {
        Ok(Bindings { plugins, actions })
    } else {
        Err(diags.sorted())
    }
}

fn binding(
    doc: &Document,
    base: &Path,
    name: &str,
    raw: &BindingDef,
    def: &BindingsDef,
    diags: &mut Diagnostics,
) -> Option<Binding> {
    let at = pointer(["actions", name]);
    let before = diags.len();
    if !def.plugins.contains_key(&raw.plugin) {
        let d = doc.diag(
            &format!("{at}/plugin"),
            format!(
                "action '{name}' is bound to plugin '{}', which is not listed under `plugins:`",
                raw.plugin
            ),
        );
        let d = match suggest(&raw.plugin, def.plugins.keys().map(String::as_str)) {
            Some(s) => d.hint(format!("did you mean '{s}'?")),
            None => d.hint(format!(
                "add `{}: <path to .wasm>` under `plugins:`",
                raw.plugin
            )),
        };
        diags.push(d);
    }
    let timeout = match raw.timeout.as_deref().map(Span::parse) {
        None => DEFAULT_TIMEOUT,
        Some(Ok(t)) if t.as_millis() > 0 => t,
        Some(Ok(_)) => {
            diags.push(doc.diag(&format!("{at}/timeout"), "a timeout must be longer than 0s"));
            DEFAULT_TIMEOUT
        }
        Some(Err(e)) => {
            diags.push(
                doc.diag(&format!("{at}/timeout"), e.to_string())
                    .hint("write it like 500ms, 30s or 5m"),
            );
            DEFAULT_TIMEOUT
        }
    };
    let size = |field: &str,
                text: Option<&str>,
                range: (u64, u64, &str),
                default: u64,
                diags: &mut Diagnostics| {
        let (low, high, said) = range;
        match text.map(parse_size) {
            None => default,
            Some(Ok(m)) if (low..=high).contains(&m) => m,
            Some(Ok(_)) => {
                diags.push(doc.diag(&format!("{at}/{field}"), format!("{field} must be {said}")));
                default
            }
            Some(Err(e)) => {
                diags.push(
                    doc.diag(&format!("{at}/{field}"), e.to_string())
                        .hint("write it like 256KiB, 16MiB or 1GiB"),
                );
                default
            }
        }
    };
    let memory = size(
        "memory",
        raw.memory.as_deref(),
        (1 << 16, MAX_MEMORY, "between 64KiB and 1GiB"),
        DEFAULT_MEMORY,
        diags,
    );
    let max_output = size(
        "max_output",
        raw.max_output.as_deref(),
        (1 << 10, MAX_OUTPUT, "between 1KiB and 64MiB"),
        DEFAULT_MAX_OUTPUT,
        diags,
    );
    for (i, name) in raw.secrets.iter().enumerate() {
        let ok = !name.is_empty()
            && name.len() <= 64
            && name
                .bytes()
                .all(|b| b.is_ascii_uppercase() || b.is_ascii_digit() || b == b'_')
            && !name.starts_with(|c: char| c.is_ascii_digit());
        if !ok {
            diags.push(
                doc.diag(
                    &format!("{at}/secrets/{i}"),
                    format!("'{name}' is not a secret name"),
                )
                .hint("use capitals, digits and _, like PAYMENTS_API_KEY"),
            );
        }
    }
    if !raw.secrets.is_empty() && raw.config.as_ref().is_some_and(|c| !c.is_object()) {
        diags.push(doc.diag(
            &format!("{at}/config"),
            "a binding with secrets needs its config to be an object (they arrive in its `secrets` field)",
        ));
    }
    if let Some(config) = &raw.config
        && let Err(e) = limits::check(config)
    {
        diags.push(
            doc.diag(
                &format!("{at}/config"),
                format!("the config of action '{name}' {e}"),
            )
            .hint("it goes with every invocation; give the plugin a file under `dirs:` for large data"),
        );
    }
    let mut grants = Grants::default();
    for (guest, host) in &raw.dirs {
        if !guest.starts_with('/') {
            diags.push(
                doc.key_diag(
                    &format!("{at}/dirs/{}", crate::source::pointer_segment(guest)),
                    format!("the guest path '{guest}' must be absolute"),
                )
                .hint("write it like /data"),
            );
        }
        grants.dirs.push((guest.clone(), base.join(host)));
    }
    grants.env = raw
        .env
        .iter()
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect();
    for (i, pattern) in raw.allow_hosts.iter().enumerate() {
        match host_pattern(pattern) {
            Ok(()) => grants.allow_hosts.push(pattern.to_ascii_lowercase()),
            Err(why) => diags
                .push(doc.diag(&format!("{at}/allow_hosts/{i}"), why).hint(
                    "write it like api.example.com:443, 127.0.0.1:8081 or *.example.com:443",
                )),
        }
    }
    if raw.fuel == Some(0) {
        diags.push(doc.diag(&format!("{at}/fuel"), "fuel must be 1 or more"));
    }
    let retry = raw
        .retry
        .as_ref()
        .and_then(|r| retry_policy(doc, &format!("{at}/retry"), r, diags));
    let mut limits = Limits::default();
    if let Some(rl) = &raw.rate_limit {
        let (text, burst) = match rl {
            RateLimitDef::Rate(t) => (t.as_str(), None),
            RateLimitDef::Full { rate, burst } => (rate.as_str(), *burst),
        };
        match parse_rate(text) {
            Ok((count, per)) => {
                let burst = burst.unwrap_or(1);
                if burst == 0 {
                    diags.push(
                        doc.diag(&format!("{at}/rate_limit/burst"), "burst must be 1 or more"),
                    );
                }
                limits.rate = Some(Rate { count, per, burst });
            }
            Err(e) => diags.push(
                doc.diag(&format!("{at}/rate_limit"), e.to_string())
                    .hint("write it like 200/min, 10/s or 5/10s"),
            ),
        }
    }
    if let Some(n) = raw.concurrency {
        if n == 0 {
            diags.push(doc.diag(
                &format!("{at}/concurrency"),
                "concurrency must be 1 or more",
            ));
        }
        limits.concurrency = Some(n);
    }
    if let Some(b) = &raw.circuit_breaker {
        if b.failures == 0 {
            diags.push(doc.diag(
                &format!("{at}/circuit_breaker/failures"),
                "failures must be 1 or more",
            ));
        }
        match Span::parse(&b.cool_down) {
            Ok(cool_down) => {
                limits.breaker = Some(BreakerPolicy {
                    failures: b.failures,
                    cool_down,
                })
            }
            Err(e) => {
                diags.push(doc.diag(&format!("{at}/circuit_breaker/cool_down"), e.to_string()))
            }
        }
    }
    (diags.len() == before).then(|| Binding {
        plugin: raw.plugin.clone(),
        action: raw.action.clone().unwrap_or_else(|| name.to_owned()),
        config: raw
            .config
            .clone()
            .unwrap_or(Value::Object(Default::default())),
        timeout,
        memory,
        secrets: raw.secrets.clone(),
        max_output,
        grants,
        fuel: raw.fuel,
        retry,
        limits,
    })
}

/// Parses `200/min`, `10/s`, `3/10s`: a count per period.
pub fn parse_rate(text: &str) -> Result<(u32, Span)> {
    let bad = |message: String| Error::syntax("rate", message);
    let (count, per) = text
        .split_once('/')
        .ok_or_else(|| bad(format!("'{text}' is not a rate")))?;
    let count: u32 = count
        .trim()
        .parse()
        .map_err(|_| bad(format!("'{count}' in '{text}' is not a count")))?;
    if count == 0 {
        return Err(bad(format!("'{text}' allows nothing")));
    }
    let per = match per.trim() {
        "s" | "sec" | "second" => Span::from_secs(1),
        "m" | "min" | "minute" => Span::from_secs(60),
        "h" | "hour" => Span::from_secs(3_600),
        "d" | "day" => Span::from_secs(86_400),
        other => Span::parse(other)?,
    };
    if per.as_millis() < u64::from(count) {
        return Err(bad(format!("'{text}' is faster than one per millisecond")));
    }
    Ok((count, per))
}

/// Parses `65536`, `512KiB`, `16MiB`, `1GiB` (also `KB`/`MB`/`GB` as binary units).
pub fn parse_size(text: &str) -> Result<u64> {
    let bad = |message: String| Error::syntax("size", message);
    let t = text.trim();
    let digits = t.bytes().take_while(u8::is_ascii_digit).count();
    let n: u64 = t[..digits]
        .parse()
        .map_err(|_| bad(format!("'{text}' is not a size")))?;
    let factor: u64 = match t[digits..].trim() {
        "" | "B" => 1,
        "KiB" | "KB" | "K" => 1 << 10,
        "MiB" | "MB" | "M" => 1 << 20,
        "GiB" | "GB" | "G" => 1 << 30,
        other => return Err(bad(format!("'{other}' in '{text}' is not a size unit"))),
    };
    n.checked_mul(factor)
        .ok_or_else(|| bad(format!("'{text}' is too large")))
}

/// Checks a process against its bindings and the manifests of the plugins
/// they name (plugins that failed to load are simply absent from `manifests`).
pub fn check(
    process: &Process,
    pdoc: &Document,
    bindings: &Bindings,
    bdoc: &Document,
    manifests: &IndexMap<String, Manifest>,
) -> Diagnostics {
    let mut diags = Diagnostics::default();
    for (name, b) in &bindings.actions {
        let Some(m) = manifests.get(&b.plugin) else {
            continue;
        };
        if m.action(&b.action).is_none() {
            let at = pointer(["actions", name]);
            let ptr = if bdoc.value.pointer(&format!("{at}/action")).is_some() {
                format!("{at}/action")
            } else {
                format!("{at}/plugin")
            };
            let have: Vec<&str> = m.actions.iter().map(|a| a.name.as_str()).collect();
            let mut d = bdoc.diag(
                &ptr,
                format!(
                    "action '{name}' is bound to plugin '{}', whose manifest has no action '{}'",
                    b.plugin, b.action
                ),
            );
            d = match suggest(&b.action, have.iter().copied()) {
                Some(s) => d.hint(format!("did you mean '{s}'? it has: {}", have.join(", "))),
                None => d.hint(format!("it has: {}", have.join(", "))),
            };
            diags.push(d);
        }
    }
    for (machine, state) in process.walk() {
        let StateKind::Task(task) = &state.kind else {
            continue;
        };
        let sname = &state.name;
        let at = format!("{}{}", machine.base, pointer(["states", sname]));
        if let Some(c) = &task.compensate
            && !bindings.actions.contains_key(&c.action)
        {
            let ptr = if pdoc
                .value
                .pointer(&format!("{at}/compensate/action"))
                .is_some()
            {
                format!("{at}/compensate/action")
            } else {
                format!("{at}/compensate")
            };
            diags.push(
                pdoc.diag(
                    &ptr,
                    format!(
                        "state '{sname}' is undone by action '{}', which has no binding",
                        c.action
                    ),
                )
                .hint(format!(
                    "add `{}:` under `actions:` in {}",
                    c.action, bdoc.file
                )),
            );
        }
        let Some(b) = bindings.actions.get(&task.action) else {
            diags.push(
                pdoc.diag(
                    &format!("{at}/action"),
                    format!(
                        "state '{sname}' runs action '{}', which has no binding",
                        task.action
                    ),
                )
                .hint(format!(
                    "add `{}:` under `actions:` in {}",
                    task.action, bdoc.file
                )),
            );
            continue;
        };
        let Some(info) = manifests.get(&b.plugin).and_then(|m| m.action(&b.action)) else {
            continue;
        };
        for t in &state.on {
            let Some(kind) = t.event.strip_prefix("error.") else {
                continue;
            };
            if !error_kind_possible(kind, &info.errors) {
                let engine: Vec<&str> = ENGINE_ERROR_KINDS.iter().map(|(k, _)| *k).collect();
                let declared = if info.errors.is_empty() {
                    "it declares none".to_owned()
                } else {
                    format!("it declares: {}", info.errors.join(", "))
                };
                diags.push(
                    pdoc.key_diag(
                        &format!("{at}/on/{}", crate::source::pointer_segment(&t.event)),
                        format!(
                            "state '{sname}' routes '{}', but action '{}' (plugin '{}') never fails with kind '{kind}'",
                            t.event, task.action, b.plugin
                        ),
                    )
                    .hint(format!("{declared}; the engine adds: {}", engine.join(", "))),
                );
            }
        }
    }
    diags.sorted()
}

/// Whether a component may take over `actions` of a deployed process
/// version (a hot swap): each action's binding names an action the
/// component has, an action that was idempotent still is, and every
/// `error.<kind>` the process routes from a state running it is one the new
/// component declares (or the engine makes). `old` is the manifest of the
/// component live now, when known. Every problem comes back.
pub fn check_swap(
    process: &Process,
    bindings: &Bindings,
    actions: &[&str],
    old: Option<&Manifest>,
    new: &Manifest,
) -> Vec<String> {
    let mut problems = Vec::new();
    let have: Vec<&str> = new.actions.iter().map(|a| a.name.as_str()).collect();
    for &name in actions {
        let Some(b) = bindings.actions.get(name) else {
            continue;
        };
        let Some(info) = new.action(&b.action) else {
            problems.push(format!(
                "action '{name}' is bound to the plugin's action '{}', which the new component does not have (it has: {})",
                b.action,
                if have.is_empty() { "none".to_owned() } else { have.join(", ") }
            ));
            continue;
        };
        if old
            .and_then(|m| m.action(&b.action))
            .is_some_and(|was| was.idempotent && !info.idempotent)
        {
            problems.push(format!(
                "action '{name}' was idempotent and the new component's '{}' is not: its retries could repeat an effect",
                b.action
            ));
        }
        for (_, state) in process.walk() {
            let StateKind::Task(task) = &state.kind else {
                continue;
            };
            if task.action != name {
                continue;
            }
            for t in &state.on {
                let Some(kind) = t.event.strip_prefix("error.") else {
                    continue;
                };
                if !error_kind_possible(kind, &info.errors) {
                    problems.push(format!(
                        "state '{}' routes '{}', and the new component's action '{}' never fails with kind '{kind}' ({})",
                        state.name,
                        t.event,
                        b.action,
                        if info.errors.is_empty() {
                            "it declares none".to_owned()
                        } else {
                            format!("it declares: {}", info.errors.join(", "))
                        }
                    ));
                }
            }
        }
    }
    problems
}

#[cfg(test)]
mod tests;
