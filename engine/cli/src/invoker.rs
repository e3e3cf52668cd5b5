//! Carries out actions with WASM plugins: finds the binding of the action for
//! the instance's process, then runs its plugin in the runtime.

use std::collections::HashMap;
use std::sync::{Arc, RwLock};

use indexmap::IndexMap;
use weft_core::{HeartbeatSink, InvokeFuture, Invoker};
use weft_model::{Bindings, Failure, Invoke, StepOutcome};
use weft_runtime::{Call, Plugin, Runtime};

/// How one process's actions are carried out.
#[derive(Debug, Clone)]
pub struct Route {
    pub bindings: Arc<Bindings>,
    pub plugins: IndexMap<String, Arc<Plugin>>,
}

pub struct WasmInvoker {
    runtime: Arc<Runtime>,
    routes: RwLock<HashMap<String, Arc<Route>>>,
}

impl WasmInvoker {
    pub fn new(runtime: Arc<Runtime>) -> Self {
        WasmInvoker {
            runtime,
            routes: RwLock::new(HashMap::new()),
        }
    }

    /// Routes `process`'s actions through `route` from now on.
    pub fn install(&self, process: &str, route: Route) {
        self.routes
            .write()
            .unwrap_or_else(|p| p.into_inner())
            .insert(process.to_owned(), Arc::new(route));
    }

    fn route(&self, process: &str) -> Option<Arc<Route>> {
        self.routes
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .get(process)
            .cloned()
    }
}

fn failed(message: String) -> StepOutcome {
    StepOutcome::Failed {
        failure: Failure::new("adapter", message),
    }
}

impl Invoker for WasmInvoker {
    fn invoke<'a>(&'a self, cmd: &'a Invoke, heartbeat: HeartbeatSink) -> InvokeFuture<'a> {
        Box::pin(async move {
            let Some(route) = self.route(&cmd.process) else {
                return failed(format!(
                    "no bindings are deployed for process '{}'",
                    cmd.process
                ));
            };
            let Some(binding) = route.bindings.actions.get(&cmd.action) else {
                return failed(format!("action '{}' has no binding", cmd.action));
            };
            let Some(plugin) = route.plugins.get(&binding.plugin) else {
                return failed(format!("plugin '{}' is not loaded", binding.plugin));
            };
            let call = Call {
                action: &binding.action,
                input: &cmd.input,
                config: &binding.config,
                instance_id: cmd.instance.as_str(),
                key: &cmd.key,
                attempt: cmd.attempt,
                last_heartbeat: cmd.last_heartbeat.clone(),
                timeout: cmd.timeout.unwrap_or(binding.timeout),
                memory: binding.memory,
                grants: &binding.grants,
                heartbeat: Some(heartbeat),
            };
            self.runtime.invoke(plugin, call).await
        })
    }

    fn bindings(&self, process: &str) -> Option<Arc<Bindings>> {
        self.route(process).map(|r| r.bindings.clone())
    }
}
