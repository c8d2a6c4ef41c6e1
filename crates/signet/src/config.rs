//! Server configuration: defaults, then `signet.toml` (or `--config FILE`), then `SIGNET_*`
//! environment variables, then command-line flags. Unknown keys are errors.

use std::net::SocketAddr;
use std::path::PathBuf;

use figment::providers::{Env, Format, Serialized, Toml};
use figment::Figment;
use serde::{Deserialize, Serialize};

/// `SIGNET_*` variables of the command-line client, not server settings (after the prefix).
const CLIENT_VARIABLES: &[&str] = &["api_key", "server", "read_key"];

#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    /// Data directory (event log + DuckDB file).
    pub data_dir: PathBuf,
    /// Address to listen on. Loopback by default: exposing Signet is a deliberate choice.
    pub listen: SocketAddr,
    /// The deployment's home organisation: where the first administrator, deployment metrics
    /// and sign-in attempts for unknown accounts belong. Single-organisation installs need
    /// nothing else; every credential carries its own organisation.
    pub org: String,
    /// Largest request body, in bytes.
    pub max_body_bytes: usize,
    /// Events queued or being written at most before ingest answers 503 + Retry-After.
    pub max_in_flight_events: usize,
    /// Log filter (`info`, `signet=debug`, ...).
    pub log: String,
    /// Console sessions end after this many minutes without a request.
    pub session_idle_minutes: u64,
    /// Console sessions end this many hours after sign-in.
    pub session_lifetime_hours: u64,
    /// Mark the session cookie `Secure`: set it when users reach Signet over HTTPS (a TLS
    /// reverse proxy in front of it).
    pub secure_cookies: bool,
    /// Reverse proxies (addresses or CIDR blocks) whose `Forwarded` / `X-Forwarded-For`
    /// headers name the client. Empty by default: the TCP peer is the client, and forwarding
    /// headers are ignored (anyone could write them). Behind a proxy, list it here, or every
    /// access is recorded from the proxy's address and one client's sign-in limit is everyone's.
    pub trusted_proxies: Vec<String>,
    /// The header `trusted_proxies` write the client chain into: "x-forwarded-for" (default)
    /// or "forwarded" (RFC 7239). Only that one is read.
    pub forwarded_header: String,
    /// Consecutive wrong passwords that lock an account.
    pub lockout_threshold: u32,
    /// Minutes a locked account stays locked.
    pub lockout_minutes: u64,
    /// Sign-in attempts one client address may make per minute (429 beyond).
    pub sign_in_attempts_per_minute: u32,
    /// Ingest is refused (507) while the data directory's disk has less than this many MiB
    /// free; the reserve keeps reads (and their audit records) and recovery working.
    pub min_free_disk_mb: u64,
    /// Disk usage percentages at which a warning is logged, once per crossing.
    pub disk_warn_percent: Vec<u8>,
    /// Memory the ingest queue may hold (MiB of event bytes); 503 + Retry-After beyond.
    pub ingest_queue_mb: usize,
    /// Ingest requests handled at once; 503 + Retry-After beyond (bounds request memory).
    pub ingest_slots: usize,
    /// Seconds between signed tree heads (heads are also signed at shutdown and on demand).
    pub head_interval_seconds: u64,
    /// The Ed25519 key that signs tree heads (default `DATA/trust/signing.key`; created when
    /// absent). Keep it off the data directory's disk to make a rewrite of both harder.
    pub signing_key_file: Option<PathBuf>,
    /// A directory outside the data directory (another disk, a mount of another machine)
    /// where every signed head is appended to `heads.jsonl` as it is made.
    pub publish_heads_dir: Option<PathBuf>,
    /// An HTTP(S) URL every signed head is POSTed to (JSON array of heads), with retries.
    pub publish_heads_url: Option<String>,
    /// OpenID Connect identity providers the console offers sign-in with (`[[oidc]]` tables).
    pub oidc: Vec<signet_auth::oidc::ProviderSettings>,
    /// Activity operations not stored when applications send them (default: the Dynamics 365
    /// exclusion list; `[]` stores everything). Imports are not filtered.
    pub activity_exclusions: Vec<String>,
    /// Receivers new events are streamed to, at least once and in order (`[[forward]]` tables:
    /// name, url, secret, kinds, organizations, failures_only, batch_size, max_record_bytes,
    /// start = "beginning" | "end").
    pub forward: Vec<signet_server::forward::ForwardSettings>,
    /// Where events leaving the hot store are archived (default: `DATA/archive`).
    pub archive_dir: Option<PathBuf>,
    /// The archive's copy of record in an S3-compatible object store (`[archive_store]`: url =
    /// "s3://bucket/prefix", endpoint, region, allow_http; credentials from the AWS environment
    /// variables). The archive directory is then its working copy, the one queries read.
    pub archive_store: Option<signet_store::archive::ObjectStoreSettings>,
    /// Where `signet serve` keeps the queryable projection: "duckdb" (embedded, the default) or
    /// "clickhouse" (`[clickhouse]`). The event log stays in the data directory either way.
    pub storage: String,
    /// The ClickHouse store for scale-out (`[clickhouse]`: url, database, user,
    /// password_file, node); `signet clickhouse init` creates its schema.
    pub clickhouse: Option<signet_store::clickhouse::ClickHouseSettings>,
    /// How often the retention policies are applied, in minutes (0: only on demand).
    pub retention_interval_minutes: u64,
    /// Exports written on a schedule (`[[scheduled_export]]` tables: name, kind, format,
    /// filter, every_days, delay_hours, directory or store, organization, start).
    pub scheduled_export: Vec<signet_server::scheduled_export::ExportJobSettings>,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            data_dir: PathBuf::from("./signet-data"),
            listen: SocketAddr::from(([127, 0, 0, 1], 8080)),
            org: signet_model::OrgId::DEFAULT.to_string(),
            max_body_bytes: 64 << 20,
            max_in_flight_events: 400_000,
            log: "info".into(),
            session_idle_minutes: 30,
            session_lifetime_hours: 12,
            secure_cookies: false,
            trusted_proxies: Vec::new(),
            forwarded_header: "x-forwarded-for".into(),
            lockout_threshold: 5,
            lockout_minutes: 15,
            sign_in_attempts_per_minute: 20,
            min_free_disk_mb: 256,
            disk_warn_percent: vec![75, 90],
            ingest_queue_mb: 256,
            ingest_slots: 16,
            head_interval_seconds: 60,
            signing_key_file: None,
            publish_heads_dir: None,
            publish_heads_url: None,
            oidc: Vec::new(),
            forward: Vec::new(),
            archive_dir: None,
            archive_store: None,
            storage: "duckdb".into(),
            clickhouse: None,
            retention_interval_minutes: 60,
            scheduled_export: Vec::new(),
            activity_exclusions: signet_model::activity::DEFAULT_EXCLUDED_OPERATIONS
                .iter()
                .map(|s| s.to_string())
                .collect(),
        }
    }
}

impl Config {
    /// Loads the layers; `file` overrides the default `signet.toml` (which may be absent).
    pub fn load(file: Option<&PathBuf>) -> anyhow::Result<Config> {
        let mut figment = Figment::from(Serialized::defaults(Config::default()));
        match file {
            Some(path) => {
                anyhow::ensure!(path.exists(), "config file {} does not exist", path.display());
                figment = figment.merge(Toml::file(path));
            }
            None => figment = figment.merge(Toml::file("signet.toml")),
        }
        // SIGNET_API_KEY, SIGNET_SERVER and SIGNET_READ_KEY belong to the command-line client:
        // a shell set up for `signet query --server ...` must still be able to run `signet serve`.
        let env = Env::prefixed("SIGNET_").ignore(CLIENT_VARIABLES);
        let config: Config = figment.merge(env).extract()?;
        config.validate()?;
        Ok(config)
    }

    pub fn validate(&self) -> anyhow::Result<()> {
        signet_model::OrgId::new(self.org.clone()).map_err(anyhow::Error::msg)?;
        anyhow::ensure!(self.max_body_bytes >= 1024, "max_body_bytes must be at least 1024");
        anyhow::ensure!(self.max_in_flight_events >= 1000, "max_in_flight_events must be at least 1000");
        anyhow::ensure!(self.session_idle_minutes >= 1, "session_idle_minutes must be at least 1");
        anyhow::ensure!(self.session_lifetime_hours >= 1, "session_lifetime_hours must be at least 1");
        anyhow::ensure!(self.lockout_threshold >= 1, "lockout_threshold must be at least 1");
        anyhow::ensure!(self.sign_in_attempts_per_minute >= 1, "sign_in_attempts_per_minute must be at least 1");
        anyhow::ensure!(self.head_interval_seconds >= 1, "head_interval_seconds must be at least 1");
        anyhow::ensure!(
            self.disk_warn_percent.iter().all(|p| (1..=100).contains(p)),
            "disk_warn_percent values must be 1-100"
        );
        anyhow::ensure!(self.ingest_queue_mb >= 1, "ingest_queue_mb must be at least 1");
        anyhow::ensure!(self.ingest_slots >= 1, "ingest_slots must be at least 1");
        signet_server::forwarded::TrustedProxies::parse(&self.trusted_proxies)
            .map_err(|e| anyhow::anyhow!("trusted_proxies: {e}"))?;
        signet_server::forwarded::ForwardedHeader::parse(&self.forwarded_header)
            .map_err(|e| anyhow::anyhow!("forwarded_header: {e}"))?;
        for provider in &self.oidc {
            provider.check().map_err(anyhow::Error::msg)?;
        }
        if let Some(url) = &self.publish_heads_url {
            anyhow::ensure!(
                url.starts_with("http://") || url.starts_with("https://"),
                "publish_heads_url must be an http:// or https:// URL"
            );
        }
        Ok(())
    }

    /// The settings as the audit trail records them: everything except secrets (the webhook
    /// URL may carry a token, so only whether one is set, and a digest to notice a change).
    pub fn audit_view(&self) -> serde_json::Map<String, serde_json::Value> {
        let mut value = serde_json::to_value(self).expect("config serialises");
        if let Some(url) = &self.publish_heads_url {
            use sha2::Digest;
            let digest = hex::encode(&sha2::Sha256::digest(url.as_bytes())[..6]);
            value["publish_heads_url"] = serde_json::json!(format!("set (sha256 {digest}...)"));
        }
        match value {
            serde_json::Value::Object(map) => map,
            _ => serde_json::Map::new(),
        }
    }

    /// The write path's limits.
    pub fn ingest_config(&self) -> signet_store::IngestConfig {
        let mut warn_at: Vec<f64> = self.disk_warn_percent.iter().map(|&p| f64::from(p) / 100.0).collect();
        warn_at.sort_by(f64::total_cmp);
        signet_store::IngestConfig {
            max_in_flight_events: self.max_in_flight_events,
            max_in_flight_bytes: self.ingest_queue_mb << 20,
            disk: signet_store::disk::DiskPolicy { reserve_bytes: self.min_free_disk_mb << 20, warn_at },
            ..signet_store::IngestConfig::default()
        }
    }

    /// Where heads are signed and published.
    pub fn trust_config(&self) -> signet_store::TrustConfig {
        signet_store::TrustConfig {
            signing_key: self.signing_key_file.clone(),
            publish_dir: self.publish_heads_dir.clone(),
            head_interval: Some(std::time::Duration::from_secs(self.head_interval_seconds)),
        }
    }

    /// The OpenID Connect providers, checked, with their secrets read.
    pub fn oidc_providers(&self) -> anyhow::Result<signet_server::oidc::Providers> {
        signet_server::oidc::Providers::new(&self.oidc, &self.org).map_err(anyhow::Error::msg)
    }

    /// Opens the data directory for serving, with the configured store (`storage`).
    pub fn open_engine(&self) -> anyhow::Result<signet_store::Engine> {
        use anyhow::Context;
        let opened = match self.storage.as_str() {
            "duckdb" => signet_store::Engine::open_with(&self.data_dir, self.ingest_config(), &self.trust_config()),
            "clickhouse" => {
                let settings =
                    self.clickhouse.as_ref().context("storage = \"clickhouse\" needs a [clickhouse] table")?;
                let store = match signet_store::clickhouse::ClickHouseStore::open(settings) {
                    // Down while the node starts: it serves from its event log meanwhile.
                    Err(signet_store::StoreError::Unreachable(why)) => {
                        tracing::warn!(error = %why, "ClickHouse does not answer; starting without it");
                        signet_store::clickhouse::ClickHouseStore::open_deferred(settings)
                    }
                    opened => opened,
                }
                .with_context(|| format!("connecting to ClickHouse at {}", settings.url))?;
                let store = std::sync::Arc::new(store);
                // ClickHouse may be unreachable for a while: keep acknowledging into the log.
                let ingest = signet_store::IngestConfig { lag_in_log: true, ..self.ingest_config() };
                signet_store::Engine::open_with_store(self.data_dir.clone(), store, ingest, &self.trust_config())
            }
            other => anyhow::bail!("storage = {other:?}: \"duckdb\" (the default) or \"clickhouse\""),
        };
        opened.with_context(|| format!("opening {}", self.data_dir.display()))
    }

    /// Where accounts, keys and settings are, and whether other nodes share them: with
    /// `storage = "clickhouse"`, in ClickHouse (mirrored in the data directory,
    /// `signet_server::shared`); otherwise the data directory's files.
    pub fn documents(&self) -> anyhow::Result<(Box<dyn signet_auth::document::Documents>, bool)> {
        match (self.storage.as_str(), &self.clickhouse) {
            ("clickhouse", Some(settings)) => {
                let store = std::sync::Arc::new(signet_store::clickhouse::ClickHouseStore::open_deferred(settings)?);
                let documents = signet_server::shared::ClickHouseDocuments::new(store, self.data_dir.clone());
                Ok((Box::new(documents), true))
            }
            _ => Ok((Box::new(signet_auth::document::DataDirDocuments(self.data_dir.clone())), false)),
        }
    }

    /// The archive directory (default `DATA/archive`).
    pub fn archive_dir(&self) -> PathBuf {
        self.archive_dir.clone().unwrap_or_else(|| signet_server::retention::default_archive_dir(&self.data_dir))
    }

    /// The archive, with its object store if one is configured.
    pub fn archive(&self) -> anyhow::Result<signet_store::archive::Archive> {
        Ok(signet_server::retention::open_archive(self.archive_dir(), self.archive_store.as_ref())?)
    }

    /// The server settings these options make.
    pub fn server_config(&self) -> signet_server::ServerConfig {
        use std::time::Duration;
        signet_server::ServerConfig {
            org: self.org.clone(),
            max_body_bytes: self.max_body_bytes,
            session_idle: Duration::from_secs(self.session_idle_minutes * 60),
            session_lifetime: Duration::from_secs(self.session_lifetime_hours * 3600),
            secure_cookies: self.secure_cookies,
            // Checked by `validate`, which `load` runs.
            trusted_proxies: signet_server::forwarded::TrustedProxies::parse(&self.trusted_proxies)
                .expect("trusted_proxies were validated")
                .with_header(
                    signet_server::forwarded::ForwardedHeader::parse(&self.forwarded_header)
                        .expect("forwarded_header was validated"),
                ),
            ingest_slots: self.ingest_slots,
            activity_exclusions: self.activity_exclusions.clone(),
            forward: self.forward.clone(),
            archive_dir: self.archive_dir.clone(),
            archive_store: self.archive_store.clone(),
            scheduled_exports: self.scheduled_export.clone(),
            retention_interval: (self.retention_interval_minutes > 0)
                .then(|| Duration::from_secs(self.retention_interval_minutes * 60)),
            login: signet_auth::LoginPolicy {
                max_failures: self.lockout_threshold,
                lockout: Duration::from_secs(self.lockout_minutes * 60),
                attempts_per_address: self.sign_in_attempts_per_minute,
                address_window: Duration::from_secs(60),
            },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_bind_loopback() {
        let config = Config::default();
        assert!(config.listen.ip().is_loopback());
        config.validate().unwrap();
    }

    #[test]
    fn unknown_keys_are_rejected() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("signet.toml");
        std::fs::write(&path, "listen = \"127.0.0.1:9999\"\nlisten_port = 1\n").unwrap();
        let err = Config::load(Some(&path)).unwrap_err().to_string();
        assert!(err.contains("listen_port"), "{err}");
        std::fs::write(&path, "listen = \"127.0.0.1:9999\"\norg = \"acme\"\n").unwrap();
        let config = Config::load(Some(&path)).unwrap();
        assert_eq!(config.listen.port(), 9999);
        assert_eq!(config.org, "acme");
    }

    #[test]
    fn trusted_proxies_are_checked_and_reach_the_server() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("signet.toml");
        std::fs::write(&path, "trusted_proxies = [\"10.0.0.0/8\", \"::1\"]\n").unwrap();
        let server = Config::load(Some(&path)).unwrap().server_config();
        assert!(!server.trusted_proxies.is_empty());
        assert!(Config::default().server_config().trusted_proxies.is_empty(), "nobody is trusted by default");
        std::fs::write(&path, "forwarded_header = \"x-real-ip\"\n").unwrap();
        let err = format!("{:#}", Config::load(Some(&path)).unwrap_err());
        assert!(err.contains("forwarded_header"), "{err}");
        std::fs::write(&path, "trusted_proxies = [\"proxy.internal\"]\n").unwrap();
        let err = format!("{:#}", Config::load(Some(&path)).unwrap_err());
        assert!(err.contains("trusted_proxies") && err.contains("proxy.internal"), "{err}");
    }

    #[test]
    fn forward_tables_reach_the_server() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("signet.toml");
        let toml = "[[forward]]\nname = \"siem\"\nurl = \"https://siem.example.com/in\"\nsecret = \"0123456789abcdef0\"\nfailures_only = true\n";
        std::fs::write(&path, toml).unwrap();
        let config = Config::load(Some(&path)).unwrap();
        let server = config.server_config();
        assert_eq!((server.forward.len(), server.forward[0].failures_only), (1, true));
        std::fs::write(&path, format!("{toml}colour = 1\n")).unwrap();
        assert!(Config::load(Some(&path)).is_err(), "unknown keys in a forward table are refused");
    }

    #[test]
    fn retention_and_scheduled_exports_reach_the_server() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("signet.toml");
        let toml = "archive_dir = \"/srv/archive\"\nretention_interval_minutes = 0\n\
                    [[scheduled_export]]\nname = \"weekly\"\nkind = \"signins\"\ndirectory = \"/srv/exports\"\n";
        std::fs::write(&path, toml).unwrap();
        let server = Config::load(Some(&path)).unwrap().server_config();
        assert_eq!(server.archive_dir.as_deref(), Some(std::path::Path::new("/srv/archive")));
        assert_eq!(server.retention_interval, None, "0 minutes: only on demand");
        assert_eq!((server.scheduled_exports.len(), server.scheduled_exports[0].every_days), (1, 7));
    }
}
