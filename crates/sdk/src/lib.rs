//! # signet-sdk
//!
//! Send sign-ins, directory audits and activities to Signet from a Rust application.
//!
//! ```no_run
//! # async fn example() -> Result<(), signet_sdk::SdkError> {
//! use signet_sdk::{Activity, Client};
//! let client = Client::builder("http://127.0.0.1:8080", "sgk_...").spool_dir("/var/lib/myapp/signet-spool").build()?;
//! client.record(Activity::new("Retrieve").user("alex@contoso.com").entity("account", Some("42".into())))?;
//! client.flush().await?;
//! # Ok(()) }
//! ```
//!
//! # Layout
//! - [`event`]: typed events in Signet's wire shapes; every event has its id from the start.
//! - `spool`: the queue of unacknowledged events, on disk or in memory.
//! - [`client`]: batching, retries with the same ids, back-off honouring `Retry-After`.
//! - [`settings`]: the organisation's audit settings, read from Signet and cached.
//! - [`middleware`] (feature `axum`): a tower layer recording user access and activity per
//!   request.

pub mod client;
pub mod event;
#[cfg(feature = "axum")]
pub mod middleware;
pub mod settings;
mod spool;

pub use client::{Client, ClientBuilder, Durability, Rejection, ShutdownReport, Stats};
pub use event::{new_id, AccessType, Activity, DirectoryAudit, Event, Kind, SignIn, SignInStatus};
pub use settings::AuditSettings;

/// What can go wrong on the application's side of the client.
#[derive(Debug, thiserror::Error)]
pub enum SdkError {
    #[error("invalid client configuration: {0}")]
    Config(String),
    /// The spool holds as many events as it may: Signet has been unreachable for long.
    #[error("the Signet spool is full ({pending} events waiting); the event was not queued")]
    Full { pending: usize },
    #[error("spool: {0}")]
    Spool(String),
    #[error("the Signet client was shut down")]
    Stopped,
    #[error("{0}")]
    Http(String),
}
