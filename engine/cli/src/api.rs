//! The HTTP API of an engine this process runs (`weft serve`, and also
//! `weft run` / `weft resume` on a loopback port of their own): bound,
//! served on the tokio runtime, and announced in `<data>/server.addr` so
//! other `weft` commands reach the engine through it — the one way in.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use std::sync::Arc;

use anyhow::{Context, bail};
use axum::http::StatusCode;
use tokio::sync::oneshot;
use tokio::task::JoinHandle;
use weft_server::{ApiError, Deploy, DeployFuture, Deployed, Deployer, InspectFuture};

use crate::args::Listen;
use crate::commands::serve::ADDRESS_FILE;
use crate::invoker::WasmInvoker;
use crate::load;

/// A bound listener, checked before the engine starts: a taken port or a
/// missing token stops a start at once.
pub struct Bound {
    listener: tokio::net::TcpListener,
    options: weft_server::Options,
}

impl Bound {
    pub async fn bind(http: &Listen) -> anyhow::Result<Bound> {
        let token = match &http.token_file {
            Some(file) => Some(read_token(file)?),
            None if !http.listen.ip().is_loopback() => bail!(
                "--listen {} is not a loopback address: give --token-file too, so only callers \
                 with the token reach the engine",
                http.listen
            ),
            None => None,
        };
        let listener = tokio::net::TcpListener::bind(http.listen)
            .await
            .with_context(|| format!("cannot listen on {}", http.listen))?;
        Ok(Bound {
            listener,
            options: weft_server::Options {
                max_body: http.max_body,
                token,
                ..weft_server::Options::default()
            },
        })
    }

    /// A loopback port of the system's choosing, no token: what `weft run`
    /// and `weft resume` answer on.
    pub async fn loopback() -> anyhow::Result<Bound> {
        Bound::bind(&Listen {
            listen: SocketAddr::from(([127, 0, 0, 1], 0)),
            token_file: None,
            max_body: weft_server::Options::default().max_body,
            grace: weft_model::Span::from_secs(0),
        })
        .await
    }

    /// Records the engine's metrics for `/metrics` (once per process).
    pub fn with_metrics(mut self) -> anyhow::Result<Bound> {
        let handle = weft_server::metrics::install()
            .map_err(|e| anyhow::anyhow!("cannot set up metrics: {e}"))?;
        self.options.metrics = Some(handle);
        Ok(self)
    }

    /// Serves the engine's API (deploys checked with `invoker`'s runtime)
    /// and writes the address file.
    /// Forwards requests for instances other nodes drive to them.
    pub fn with_peers(mut self, peers: Arc<dyn weft_server::Peers>) -> Self {
        self.options.peers = Some(peers);
        self
    }

    pub fn serve(
        mut self,
        engine: &weft_core::Engine,
        invoker: &Arc<WasmInvoker>,
        data: &Path,
    ) -> anyhow::Result<Api> {
        let local = self.listener.local_addr()?;
        self.options.deployer = Some(Arc::new(WasmDeployer {
            engine: engine.clone(),
            invoker: invoker.clone(),
        }));
        let router = weft_server::router(engine.clone(), self.options);
        let (stop, stopped) = oneshot::channel::<()>();
        let listener = self.listener;
        let task = tokio::spawn(async move {
            axum::serve(listener, router)
                .with_graceful_shutdown(async {
                    let _ = stopped.await;
                })
                .await
        });
        let url = format!("http://{local}");
        let file = AddressFile::write(data, &url)?;
        Ok(Api {
            url,
            stop: Some(stop),
            task: Some(task),
            _file: file,
        })
    }
}

/// The running engine's plugin registry, for deploys whose bindings name
/// registered components.
struct EngineRegistry<'a>(&'a weft_core::Engine);

impl load::Registry for EngineRegistry<'_> {
    fn fetch<'a>(&'a self, reference: &'a str) -> load::Fetch<'a> {
        Box::pin(async move {
            let what = reference.strip_prefix("sha256:").unwrap_or(reference);
            self.0
                .plugin_component(what)
                .await
                .map(|(_, bytes)| bytes)
                .map_err(|e| e.to_string())
        })
    }
}

/// Deploys through the API, checked as `weft deploy` checks them: the
/// process, the bindings and the components' manifests together.
struct WasmDeployer {
    engine: weft_core::Engine,
    invoker: Arc<WasmInvoker>,
}

impl Deployer for WasmDeployer {
    fn swap(&self, req: weft_server::Swap) -> weft_server::SwapFuture<'_> {
        Box::pin(async move {
            crate::swapper::swap(
                &self.engine,
                self.invoker.runtime(),
                Some(&self.invoker),
                req,
            )
            .await
        })
    }

    fn inspect(&self, bytes: Arc<[u8]>) -> InspectFuture<'_> {
        Box::pin(async move {
            let plugin = self
                .invoker
                .runtime()
                .load("upload", bytes)
                .await
                .map_err(|e| {
                    ApiError::new(
                        StatusCode::UNPROCESSABLE_ENTITY,
                        "invalid_plugin",
                        crate::commands::plugin::unusable(&e),
                    )
                })?;
            Ok((plugin.manifest.clone(), plugin.sha256.clone()))
        })
    }

    fn deploy(&self, req: Deploy) -> DeployFuture<'_> {
        Box::pin(async move {
            let base = PathBuf::from(req.base.as_deref().unwrap_or("."));
            let loaded = load::from_texts(
                self.invoker.runtime(),
                (&req.process.name, &req.process.text),
                (&req.bindings.name, &req.bindings.text),
                &base,
                load::Plugins::Given(&req.plugins),
                Some(&EngineRegistry(&self.engine)),
            )
            .await
            .map_err(|diags| {
                let problems: Vec<String> = diags.iter().map(ToString::to_string).collect();
                let mut e = ApiError::new(
                    StatusCode::UNPROCESSABLE_ENTITY,
                    "invalid_definition",
                    format!(
                        "the definition has {} problem{}",
                        problems.len(),
                        if problems.len() == 1 { "" } else { "s" }
                    ),
                );
                e.problems = problems;
                e
            })?;
            let request = load::deploy_request(&loaded).map_err(|e| {
                ApiError::new(
                    StatusCode::UNPROCESSABLE_ENTITY,
                    "deploy_refused",
                    format!("{e:#}"),
                )
            })?;
            for (plugin, _) in loaded.plugins.values() {
                self.invoker.add(plugin.clone());
            }
            let d = self.engine.deploy(request).await?;
            let p = &loaded.process;
            Ok(Deployed {
                process: p.name.clone(),
                version: p.version,
                revision: d.revision,
                new_version: d.new_version,
                new_revision: d.new_revision,
                actions: loaded.bindings.actions.len(),
                plugins: loaded.plugins.len(),
            })
        })
    }
}

/// A served API; dropping it stops taking requests and removes the
/// address file.
pub struct Api {
    pub url: String,
    stop: Option<oneshot::Sender<()>>,
    task: Option<JoinHandle<std::io::Result<()>>>,
    _file: AddressFile,
}

impl Api {
    /// Stops taking requests and waits for those under way to be answered.
    pub async fn stop(mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(task) = self.task.take() {
            match task.await {
                Ok(Err(e)) => tracing::warn!("the HTTP server stopped with an error: {e}"),
                Err(e) => tracing::warn!("the HTTP server task failed: {e}"),
                Ok(Ok(())) => {}
            }
        }
    }
}

impl Drop for Api {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
    }
}

/// The token every request must carry, from a file only its owner can read.
fn read_token(file: &Path) -> anyhow::Result<String> {
    use std::os::unix::fs::PermissionsExt;
    let meta = std::fs::metadata(file)
        .with_context(|| format!("cannot read the token file {}", file.display()))?;
    if meta.permissions().mode() & 0o077 != 0 {
        bail!(
            "the token file {} can be read by others: make it owner-only (chmod 600 {})",
            file.display(),
            file.display()
        );
    }
    let text = std::fs::read_to_string(file)
        .with_context(|| format!("cannot read the token file {}", file.display()))?;
    let token = text.trim().to_owned();
    if token.len() < 16 {
        bail!(
            "the token in {} is {} characters long: use at least 16 (e.g. `openssl rand -hex 32`)",
            file.display(),
            token.len()
        );
    }
    Ok(token)
}

/// `<data>/server.addr`: the running server's URL, owner-only, removed
/// when the server stops (a stale one, after a crash, points nowhere and
/// is ignored).
struct AddressFile(PathBuf);

impl AddressFile {
    fn write(data: &Path, url: &str) -> anyhow::Result<AddressFile> {
        use std::io::Write;
        use std::os::unix::fs::OpenOptionsExt;
        let path = data.join(ADDRESS_FILE);
        let tmp = data.join(format!("{ADDRESS_FILE}.tmp"));
        let mut f = std::fs::OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .mode(0o600)
            .open(&tmp)
            .with_context(|| format!("cannot write {}", tmp.display()))?;
        writeln!(f, "{url}").with_context(|| format!("cannot write {}", tmp.display()))?;
        std::fs::rename(&tmp, &path).with_context(|| format!("cannot write {}", path.display()))?;
        Ok(AddressFile(path))
    }
}

impl Drop for AddressFile {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.0);
    }
}
