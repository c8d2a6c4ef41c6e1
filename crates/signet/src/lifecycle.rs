//! What `signet serve` does at its start and stop besides serving: the records of the logging
//! starting (and how the previous run ended) and of changed settings, and the signals that stop it.

use anyhow::Context;
use serde_json::Value;
use signet_store::Engine;

use crate::config::Config;

/// Resolves on SIGINT (Ctrl-C) or SIGTERM (`systemctl stop`, `docker stop`): the server then
/// stops cleanly and records it. The handlers are installed when this is called, before the
/// server says it listens; a signal arriving earlier than that would end the process at once.
pub fn shutdown_signal() -> std::io::Result<impl std::future::Future<Output = ()>> {
    use tokio::signal::unix::{signal, SignalKind};
    let mut interrupt = signal(SignalKind::interrupt())?;
    let mut terminate = signal(SignalKind::terminate())?;
    Ok(async move {
        let name = tokio::select! {
            _ = interrupt.recv() => "SIGINT",
            _ = terminate.recv() => "SIGTERM",
        };
        tracing::info!(signal = name, "shutting down");
    })
}

/// Records that logging started (and whether the previous run ended cleanly), and any change
/// of the settings since the previous start, in the home organisation's log.
pub fn record_logging_started(engine: &Engine, config: &Config) -> anyhow::Result<()> {
    use signet_server::access_log::{service_event, store_blocking};
    let org = &config.org;
    let view = config.audit_view();
    let path = engine.data_dir().join("logging-config.json");
    let previous: Option<serde_json::Map<String, Value>> =
        std::fs::read(&path).ok().and_then(|bytes| serde_json::from_slice(&bytes).ok());
    let previous_run = match engine.ledger().previous_shutdown_clean() {
        Some(true) => "clean shutdown",
        Some(false) => {
            "unclean: crash, kill or power loss (events after the last signed head were recovered from the log)"
        }
        None => "first start",
    };
    let started = service_event(
        org,
        "SignetLoggingStarted",
        &format!("Signet started collecting events; previous run: {previous_run}"),
        serde_json::json!({ "version": env!("CARGO_PKG_VERSION"), "previousRun": previous_run, "settings": view }),
    );
    store_blocking(engine, org, &started).map_err(|e| anyhow::anyhow!("recording the logging start: {e}"))?;
    if let Some(previous) = previous {
        let changed: serde_json::Map<String, Value> = view
            .iter()
            .filter(|(k, v)| previous.get(*k) != Some(*v))
            .map(|(k, v)| (k.clone(), serde_json::json!({ "from": previous.get(k), "to": v })))
            .collect();
        if !changed.is_empty() {
            let names: Vec<&str> = changed.keys().map(String::as_str).collect();
            let record = service_event(
                org,
                "SignetConfigurationChanged",
                &format!("settings changed since the previous start: {}", names.join(", ")),
                Value::Object(changed),
            );
            store_blocking(engine, org, &record).map_err(|e| anyhow::anyhow!("recording the settings change: {e}"))?;
        }
    }
    std::fs::write(&path, serde_json::to_vec_pretty(&view)?).with_context(|| format!("writing {}", path.display()))?;
    Ok(())
}
