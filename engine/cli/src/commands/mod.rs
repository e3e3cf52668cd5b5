//! One module per subcommand; `run` dispatches.

pub mod bench;
mod bench_adapters;
mod bench_dashboard;
mod bench_http;
mod bench_store;
mod bench_swap;
mod check;
pub(crate) mod operate;
pub(crate) mod plugin;
mod resume;
mod run;
mod scaffold;
pub(crate) mod serve;
mod show;
mod start;
mod store;
pub mod swap;
mod validate;

use std::path::Path;
use std::sync::Arc;

use anyhow::Context;
use weft_runtime::{Runtime, RuntimeOptions};
use weft_store_sled::SledStore;

use crate::invoker::WasmInvoker;

use self::operate::Request;
use crate::args::Command;

pub async fn run(command: Command) -> anyhow::Result<u8> {
    match command {
        Command::Validate {
            def,
            data,
            strict,
            explain,
        } => validate::validate(&def, &data.dir, strict, explain.as_deref()).await,
        Command::Plugin { command } => {
            use crate::args::PluginCommand as P;
            match command {
                P::Add { file, name, data } => plugin::add(&file, name.as_deref(), &data.dir).await,
                P::List { data, json } => plugin::list(&data.dir, json).await,
                P::Describe {
                    plugin: p,
                    data,
                    json,
                } => plugin::describe(&p, &data.dir, json).await,
                P::Call {
                    plugin: p,
                    action,
                    input,
                    config,
                    timeout,
                    memory,
                    allow_hosts,
                    fuel,
                    data,
                } => {
                    let args = plugin::CallArgs {
                        plugin: &p,
                        action: &action,
                        input: &input,
                        config: &config,
                        timeout: &timeout,
                        memory: &memory,
                        allow_hosts,
                        fuel,
                    };
                    plugin::call(&args, &data.dir).await
                }
                P::New { name, lang, dir } => scaffold::new(&name, &lang, dir.as_deref()),
                P::Swap {
                    target,
                    component,
                    canary,
                    promote_after,
                    threshold,
                    window,
                    min_calls,
                    name,
                    data,
                    json,
                } => {
                    let args = swap::SwapArgs {
                        target: &target,
                        component: &component,
                        name: name.as_deref(),
                        canary: canary.map(|percent| weft_store::CanaryPolicy {
                            percent,
                            promote_after,
                            threshold,
                            window,
                            min_calls,
                        }),
                        json,
                    };
                    swap::swap(&args, &data.dir).await
                }
                P::Rollback { target, data, json } => {
                    swap::settle(&target, false, &data.dir, json).await
                }
                P::Promote { target, data, json } => {
                    swap::settle(&target, true, &data.dir, json).await
                }
                P::Versions { target, data, json } => {
                    swap::versions(target.as_deref(), &data.dir, json).await
                }
            }
        }
        Command::Schema { of } => {
            let schema = match of.as_str() {
                "bindings" => weft_model::schema::bindings(),
                _ => weft_model::schema::process(),
            };
            print!("{}", weft_model::schema::text(&schema));
            Ok(crate::exit::OK)
        }
        Command::Test {
            process,
            record: Some(target),
            data,
            ..
        } => check::record(&process, &target, &data.dir).await,
        Command::Test {
            process,
            cases,
            bindings,
            junit,
            ..
        } => check::test(&process, &cases, bindings.as_deref(), junit.as_deref()),
        Command::Simulate {
            process,
            bindings,
            faults,
            input,
            runs,
            seed,
        } => check::simulate(&process, bindings.as_deref(), &faults, &input, runs, seed),
        Command::Deploy { def, data } => validate::deploy(&def, &data.dir).await,
        Command::Run {
            def,
            input,
            key,
            data,
        } => run::run(&def, &input, key, &data.dir).await,
        Command::Start {
            process,
            input,
            key,
            version,
            data,
        } => start::start(&process, &input, key, version, &data.dir).await,
        Command::Signal {
            target,
            event,
            payload,
            dir,
        } => {
            let data: serde_json::Value = serde_json::from_str(&payload).map_err(|e| {
                anyhow::anyhow!("--data is not valid JSON: {e} (quote it for the shell: --data '{{\"by\": \"ana\"}}')")
            })?;
            operate::operate(
                &dir,
                Request::Signal {
                    target,
                    event,
                    data,
                },
            )
            .await
        }
        Command::Migrate { target, to, data } => {
            operate::operate(
                &data.dir,
                Request::Migrate {
                    target,
                    version: to,
                },
            )
            .await
        }
        Command::Serve {
            data,
            http,
            plugins_dir,
            watch: _,
            store,
        } => serve::serve(&data.dir, &http, plugins_dir.as_deref(), &store).await,
        Command::Store { command } => store::store(command).await,
        Command::Status { id, data, json } => show::status(&id, &data.dir, json).await,
        Command::Diagram {
            process,
            format,
            instance,
            data,
        } => show::diagram(process.as_deref(), &format, instance.as_deref(), &data.dir).await,
        Command::List {
            data,
            process,
            status,
            state,
            stuck,
            limit,
            cursor,
            json,
        } => {
            let filter = show::Filter {
                process,
                status,
                state,
                stuck,
                limit,
                cursor,
            };
            show::list(&filter, &data.dir, json).await
        }
        Command::History { id, data, json } => show::history(&id, &data.dir, json).await,
        Command::Resume { data } => resume::resume(&data.dir).await,
        Command::Complete {
            token,
            output,
            error,
            message,
            data,
        } => {
            let req = match (output, error) {
                (Some(o), _) => Request::Complete {
                    token,
                    output: operate::parse_output(&o)?,
                },
                (None, Some(kind)) => Request::Fail {
                    token,
                    kind,
                    message,
                },
                (None, None) => anyhow::bail!("give --output '<json>' or --error <kind>"),
            };
            operate::operate(&data.dir, req).await
        }
        Command::Heartbeat {
            token,
            details,
            data,
        } => operate::operate(&data.dir, Request::Heartbeat { token, details }).await,
        Command::Redrive { id, data } => operate::operate(&data.dir, Request::Redrive { id }).await,
        Command::Cancel {
            id,
            compensate,
            data,
        } => operate::operate(&data.dir, Request::Cancel { id, compensate }).await,
        Command::Bench(args) => bench::bench(args).await,
    }
}

/// How a command reaches a data directory.
pub enum Reach {
    /// An engine holds it: through its API.
    Server(crate::client::Client),
    /// Nobody holds it: the store itself.
    Store(Arc<SledStore>),
}

/// The engine holding `data` (through its API), or the store when no engine
/// holds it. Another command holding it briefly (one that serves no API) is
/// waited for, up to `patience`. `WEFT_SERVER` names a server that must
/// answer.
pub async fn reach(data: &Path, patience: std::time::Duration) -> anyhow::Result<Reach> {
    use weft_core::Clock;
    let clock = weft_core::SystemClock;
    let deadline = clock.now().plus(weft_model::Span::from_millis(
        u64::try_from(patience.as_millis()).unwrap_or(u64::MAX),
    ));
    let named = std::env::var("WEFT_SERVER").is_ok_and(|v| !v.trim().is_empty());
    loop {
        if let Some(client) = crate::client::Client::find(data)? {
            if client.alive().await {
                return Ok(Reach::Server(client));
            }
            if named {
                anyhow::bail!(
                    "no weft server answers at {} (WEFT_SERVER): start it, or unset WEFT_SERVER \
                     to use the data directory directly",
                    client.base()
                );
            }
        }
        match open_store_within(data, false, std::time::Duration::ZERO) {
            Ok(store) => return Ok(Reach::Store(store)),
            Err(e) if operate::is_locked(&e) => {}
            Err(e) => return Err(e),
        }
        if clock.now() >= deadline {
            anyhow::bail!(
                "the data in {} is held by another weft process that serves no API (a deploy, \
                 validate or bench) and did not let go within {}s; run the command again when \
                 it has finished",
                data.display(),
                patience.as_secs()
            );
        }
        clock
            .sleep_until(clock.now().plus(weft_model::Span::from_millis(50)))
            .await;
    }
}

/// How long a command waits for another weft process to let go of the data
/// directory (a short command finishing) before it gives up.
pub const LOCK_PATIENCE: std::time::Duration = std::time::Duration::from_secs(10);

/// Opens the store in a data directory, creating it when `create` is set,
/// waiting a while if another weft process has it open.
pub fn open_store(dir: &Path, create: bool) -> anyhow::Result<Arc<SledStore>> {
    open_store_within(dir, create, LOCK_PATIENCE)
}

/// `open_store`, waiting at most `patience` for the directory's lock.
pub fn open_store_within(
    dir: &Path,
    create: bool,
    patience: std::time::Duration,
) -> anyhow::Result<Arc<SledStore>> {
    let db = dir.join("db");
    if !create && !db.exists() {
        anyhow::bail!(
            "there is no weft data in {} (start an instance with `weft run ... --data {}`)",
            dir.display(),
            dir.display()
        );
    }
    let store = SledStore::open_patiently(&db, patience)
        .with_context(|| format!("cannot open the data in {}", dir.display()))?;
    Ok(Arc::new(store))
}

/// An engine on an open store: it runs every deployed process, with the
/// bindings and plugins of each instance's version read from the store.
/// Whoever runs it serves its API (`crate::api`), so other commands reach it.
pub fn engine_on(
    store: Arc<dyn weft_store::Store>,
    data: &Path,
) -> anyhow::Result<(weft_core::Engine, Arc<WasmInvoker>)> {
    engine_with(store, runtime(Some(data))?)
}

/// `engine_on` with a runtime of the caller's: plugins it loaded while
/// checking a definition can then be handed to the engine's invoker (a
/// component runs only in the runtime that compiled it).
pub fn engine_with(
    store: Arc<dyn weft_store::Store>,
    runtime: Arc<Runtime>,
) -> anyhow::Result<(weft_core::Engine, Arc<WasmInvoker>)> {
    let invoker = Arc::new(WasmInvoker::new(runtime));
    let engine = weft_core::Engine::new(
        store,
        invoker.clone(),
        Arc::new(weft_core::SystemClock),
        weft_core::EngineOptions::default(),
    );
    Ok((engine, invoker))
}

/// An engine that applies changes and carries nothing out (no engine runs
/// on the directory): the next `weft serve` or `weft resume` continues.
/// It applies each instance's bindings like any engine; it loads no plugin.
pub fn offline_engine(store: Arc<dyn weft_store::Store>) -> anyhow::Result<weft_core::Engine> {
    let invoker = Arc::new(WasmInvoker::new(runtime(None)?));
    let options = weft_core::EngineOptions {
        offline: true,
        ..weft_core::EngineOptions::default()
    };
    Ok(weft_core::Engine::new(
        store,
        invoker,
        Arc::new(weft_core::SystemClock),
        options,
    ))
}

/// The WASM runtime, caching compiled plugins under the data directory.
pub fn runtime(data: Option<&Path>) -> anyhow::Result<Arc<Runtime>> {
    let options = RuntimeOptions {
        cache_dir: data.map(|d| d.join("cache")).or_else(user_cache),
        cache_fallback: data.and_then(|_| user_cache()),
        ..RuntimeOptions::default()
    };
    Ok(Arc::new(Runtime::new(options)?))
}

/// Where commands without a data directory (`validate`, `plugin call`)
/// keep compiled components, so the second run of a large (say, Python)
/// component loads in milliseconds: `$XDG_CACHE_HOME/weft/components`, or
/// `~/.cache/weft/components`; none without a home. `WEFT_NO_CACHE=1`
/// turns it off.
fn user_cache() -> Option<std::path::PathBuf> {
    if std::env::var_os("WEFT_NO_CACHE").is_some() {
        return None;
    }
    let base = std::env::var_os("XDG_CACHE_HOME")
        .filter(|v| !v.is_empty())
        .map(std::path::PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| Path::new(&h).join(".cache")))?;
    Some(base.join("weft").join("components"))
}
