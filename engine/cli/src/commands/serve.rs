//! `weft serve`: the long-running engine. It resumes every unfinished
//! instance, fires durable timers and cron schedules as they fall due, and
//! applies operator requests (signal, complete, start, ...) that other weft
//! commands spool into the data directory. It prints each transition as it
//! commits, and runs until interrupted (Ctrl-C) or terminated (SIGTERM);
//! stopping it at any moment loses nothing.

use std::path::{Path, PathBuf};

use anyhow::{Context, bail};
use weft_model::Status;
use weft_store::Instances;

use super::{engine_on, open_store};
use crate::args::Listen;
use crate::{exit, render};

/// The file in the data dir that tells other `weft` commands where the
/// running server answers.
pub const ADDRESS_FILE: &str = "server.addr";

pub async fn serve(data: &Path, http: &Listen) -> anyhow::Result<u8> {
    let token = match &http.token_file {
        Some(file) => Some(read_token(file)?),
        None if !http.listen.ip().is_loopback() => bail!(
            "--listen {} is not a loopback address: give --token-file too, so only callers \
             with the token reach the engine",
            http.listen
        ),
        None => None,
    };
    // Bound before anything else: a taken port stops the start at once.
    let listener = tokio::net::TcpListener::bind(http.listen)
        .await
        .with_context(|| format!("cannot listen on {}", http.listen))?;
    let local = listener.local_addr()?;
    // Installed before anything runs: a stop asked for while the engine
    // starts is not lost. SIGTERM is what service managers send.
    use tokio::signal::unix::{SignalKind, signal};
    let mut interrupt = signal(SignalKind::interrupt())?;
    let mut terminate = signal(SignalKind::terminate())?;
    let store = open_store(data, true)?;
    let (engine, _) = engine_on(store.clone(), data)?;
    let mut notices = engine.subscribe();
    let api = weft_server::router(
        engine.clone(),
        weft_server::Options {
            max_body: http.max_body,
            token,
            ..weft_server::Options::default()
        },
    );
    let (stop_api, api_stopped) = tokio::sync::oneshot::channel::<()>();
    let server = tokio::spawn(async move {
        axum::serve(listener, api)
            .with_graceful_shutdown(async {
                let _ = api_stopped.await;
            })
            .await
    });
    let address = AddressFile::write(data, &format!("http://{local}"))?;
    let resumed = engine.resume().await?;
    let schedules = engine.run_schedules().await?;
    // Counted once work is under way: it reads an index entry per instance.
    let waiting = store.ids_with_status(Status::Waiting)?.len();
    render::say(format_args!(
        "serving {} at http://{local}: {} instance{} resumed, {waiting} waiting, {schedules} schedule{}; \
         Ctrl-C or SIGTERM stops",
        data.display(),
        resumed.len(),
        if resumed.len() == 1 { "" } else { "s" },
        if schedules == 1 { "" } else { "s" },
    ));
    loop {
        tokio::select! {
            n = notices.recv() => match n {
                Ok(n) => {
                    for r in &n.records {
                        if let Some(line) = render::progress(r) {
                            render::say(format_args!("{}  {line}", n.instance));
                        }
                        if matches!(
                            r.kind,
                            weft_model::RecordKind::Succeeded { .. }
                                | weft_model::RecordKind::Failed { .. }
                                | weft_model::RecordKind::Parked { .. }
                                | weft_model::RecordKind::Cancelled { .. }
                        ) {
                            render::say(format_args!("{}  {}", n.instance, render::record(r)));
                        }
                    }
                }
                Err(tokio::sync::broadcast::error::RecvError::Lagged(k)) => {
                    render::say(format_args!("({k} notices skipped: the engine is busy)"));
                }
                Err(_) => break,
            },
            _ = interrupt.recv() => break,
            _ = terminate.recv() => break,
        }
    }
    // The API stops taking requests first; then the engine stops.
    let _ = stop_api.send(());
    match server.await {
        Ok(Err(e)) => tracing::warn!("the HTTP server stopped with an error: {e}"),
        Err(e) => tracing::warn!("the HTTP server task failed: {e}"),
        Ok(Ok(())) => {}
    }
    drop(address);
    engine.shutdown().await;
    render::say("stopped");
    Ok(exit::OK)
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
