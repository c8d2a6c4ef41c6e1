//! Runs the example CRM: `CRM_SIGNET_URL` and `CRM_SIGNET_KEY` (an ingest key) say where the
//! audit trail goes, `CRM_SPOOL_DIR` (default `./crm-spool`) keeps events Signet has not
//! acknowledged yet, `CRM_LISTEN` (default `127.0.0.1:3000`) is where the CRM serves.

use std::net::SocketAddr;
use std::time::Duration;

fn env_or(name: &str, default: &str) -> String {
    std::env::var(name).unwrap_or_else(|_| default.to_string())
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    tracing_subscriber::fmt().with_env_filter(env_or("RUST_LOG", "info")).init();
    let key = std::env::var("CRM_SIGNET_KEY").map_err(|_| "set CRM_SIGNET_KEY to a Signet ingest key (sgk_...)")?;
    let signet = signet_sdk::Client::builder(env_or("CRM_SIGNET_URL", "http://127.0.0.1:8080"), key)
        .spool_dir(env_or("CRM_SPOOL_DIR", "crm-spool"))
        .build()?;
    let listener = tokio::net::TcpListener::bind(env_or("CRM_LISTEN", "127.0.0.1:3000")).await?;
    tracing::info!(address = %listener.local_addr()?, "Contoso CRM serving");
    let app = signet_example_crm::app(signet.clone()).into_make_service_with_connect_info::<SocketAddr>();
    axum::serve(listener, app)
        .with_graceful_shutdown(async {
            let _ = tokio::signal::ctrl_c().await;
        })
        .await?;
    let report = signet.shutdown(Duration::from_secs(5)).await;
    tracing::info!(undelivered = report.undelivered, spooled = report.spooled, "stopped");
    Ok(())
}
