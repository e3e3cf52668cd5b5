//! Carries out actions with WASM plugins: the engine hands over the
//! deployment (bindings revision) of the instance's process version; its
//! plugins are loaded once, by content hash, from the store.

use std::collections::HashMap;
use std::sync::{Arc, RwLock};

use weft_core::{HeartbeatSink, InvokeFuture, Invoker, PrepareFuture};
use weft_model::{Failure, Invoke, StepOutcome};
use weft_runtime::{Call, Plugin, Runtime};
use weft_store::{Definitions, Deployment};

pub struct WasmInvoker {
    runtime: Arc<Runtime>,
    /// Loaded plugins by the sha256 of their component bytes.
    plugins: RwLock<HashMap<String, Arc<Plugin>>>,
    /// Components a swap is checking: usable at once, dropped if the swap
    /// is refused (so a refused one does not stay in memory).
    staged: RwLock<HashMap<String, Arc<Plugin>>>,
}

impl WasmInvoker {
    pub fn new(runtime: Arc<Runtime>) -> Self {
        WasmInvoker {
            runtime,
            plugins: RwLock::new(HashMap::new()),
            staged: RwLock::new(HashMap::new()),
        }
    }

    /// Makes an already loaded plugin available (as a deploy that just
    /// loaded it does), so it is not read back and loaded again.
    pub fn runtime(&self) -> &Arc<Runtime> {
        &self.runtime
    }

    pub fn add(&self, plugin: Arc<Plugin>) {
        self.plugins
            .write()
            .unwrap_or_else(|p| p.into_inner())
            .insert(plugin.sha256.clone(), plugin);
    }

    /// Holds a component a swap is about to make live; `settle` keeps it
    /// (the swap was written) or lets it go (refused).
    pub fn stage(&self, plugin: Arc<Plugin>) {
        self.staged
            .write()
            .unwrap_or_else(|p| p.into_inner())
            .insert(plugin.sha256.clone(), plugin);
    }

    pub fn settle(&self, sha256: &str, keep: bool) {
        let staged = self
            .staged
            .write()
            .unwrap_or_else(|p| p.into_inner())
            .remove(sha256);
        if let (Some(plugin), true) = (staged, keep) {
            self.add(plugin);
        }
    }

    fn plugin(&self, sha256: &str) -> Option<Arc<Plugin>> {
        let loaded = self
            .plugins
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .get(sha256)
            .cloned();
        loaded.or_else(|| {
            self.staged
                .read()
                .unwrap_or_else(|p| p.into_inner())
                .get(sha256)
                .cloned()
        })
    }
}

/// The binding's config with the secrets it names, read from the engine's
/// environment (`WEFT_SECRET_<NAME>`) now, in its `secrets` object; or the
/// first name that is not set. The values live only in this invocation's
/// config: nothing stores or logs them.
fn secrets(config: &serde_json::Value, names: &[String]) -> Result<serde_json::Value, String> {
    let mut values = serde_json::Map::new();
    for name in names {
        let value = std::env::var(format!("WEFT_SECRET_{name}")).map_err(|_| name.clone())?;
        values.insert(name.clone(), serde_json::Value::String(value));
    }
    let mut config = config.clone();
    if !config.is_object() {
        config = serde_json::Value::Object(serde_json::Map::new());
    }
    if let Some(obj) = config.as_object_mut() {
        obj.insert("secrets".to_owned(), serde_json::Value::Object(values));
    }
    Ok(config)
}

fn failed(message: String) -> StepOutcome {
    StepOutcome::Failed {
        failure: Failure::new("adapter", message),
    }
}

impl Invoker for WasmInvoker {
    fn prepare<'a>(
        &'a self,
        deployment: &'a Deployment,
        definitions: &'a dyn Definitions,
    ) -> PrepareFuture<'a> {
        Box::pin(async move {
            for (name, sha) in deployment.components() {
                if self.plugin(sha).is_some() {
                    continue;
                }
                let bytes = definitions
                    .plugin(sha)
                    .map_err(|e| e.to_string())?
                    .ok_or_else(|| format!("plugin '{name}' ({sha}) is missing from the store"))?;
                let plugin = self
                    .runtime
                    .load_with_memory(name, bytes.into(), deployment.bindings.memory_for(name))
                    .await
                    .map_err(|e| format!("plugin '{name}': {e}"))?;
                self.add(Arc::new(plugin));
            }
            Ok(())
        })
    }

    fn manifest(&self, sha256: &str) -> Option<weft_model::Manifest> {
        self.plugin(sha256).map(|p| p.manifest.clone())
    }

    fn invoke<'a>(
        &'a self,
        deployment: &'a Deployment,
        cmd: &'a Invoke,
        component: &'a str,
        heartbeat: HeartbeatSink,
    ) -> InvokeFuture<'a> {
        Box::pin(async move {
            // Deploys check every action is bound to a plugin they carry, so
            // these are invariants of the stored deployment; a damaged one
            // fails the attempt rather than the engine.
            let Some(binding) = deployment.bindings.actions.get(&cmd.action) else {
                return failed(format!(
                    "action '{}' has no binding in revision {} of process '{}' v{}",
                    cmd.action, deployment.revision, deployment.process, deployment.version
                ));
            };
            let Some(plugin) = self.plugin(component) else {
                return failed(format!(
                    "plugin '{}' (component {}) is not loaded",
                    binding.plugin,
                    weft_core::swap::short(component)
                ));
            };
            let with_secrets;
            let config = if binding.secrets.is_empty() {
                &binding.config
            } else {
                match secrets(&binding.config, &binding.secrets) {
                    Ok(c) => {
                        with_secrets = c;
                        &with_secrets
                    }
                    Err(missing) => {
                        return failed(format!(
                            "the secret {missing} is not set: give the engine the environment variable WEFT_SECRET_{missing}"
                        ));
                    }
                }
            };
            let call = Call {
                action: &binding.action,
                input: &cmd.input,
                config,
                instance_id: cmd.instance.as_str(),
                key: &cmd.key,
                attempt: cmd.attempt,
                last_heartbeat: cmd.last_heartbeat.clone(),
                timeout: cmd.timeout.unwrap_or(binding.timeout),
                memory: binding.memory,
                max_output: binding.max_output,
                fuel: binding.fuel,
                grants: &binding.grants,
                heartbeat: Some(heartbeat),
            };
            self.runtime.invoke(&plugin, call).await
        })
    }
}
