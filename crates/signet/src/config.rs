//! Server configuration: defaults, then `signet.toml` (or `--config FILE`), then `SIGNET_*`
//! environment variables, then command-line flags. Unknown keys are errors.

use std::net::SocketAddr;
use std::path::PathBuf;

use figment::providers::{Env, Format, Serialized, Toml};
use figment::Figment;
use serde::{Deserialize, Serialize};

#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    /// Data directory (event log + DuckDB file).
    pub data_dir: PathBuf,
    /// Address to listen on. Loopback by default: exposing Signet is a deliberate choice.
    pub listen: SocketAddr,
    /// Organisation id the server acts for (until access control assigns it per credential).
    pub org: String,
    /// Largest request body, in bytes.
    pub max_body_bytes: usize,
    /// Events queued or being written at most before ingest answers 503 + Retry-After.
    pub max_in_flight_events: usize,
    /// Log filter (`info`, `signet=debug`, ...).
    pub log: String,
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
        let config: Config = figment.merge(Env::prefixed("SIGNET_")).extract()?;
        config.validate()?;
        Ok(config)
    }

    pub fn validate(&self) -> anyhow::Result<()> {
        signet_model::OrgId::new(self.org.clone()).map_err(anyhow::Error::msg)?;
        anyhow::ensure!(self.max_body_bytes >= 1024, "max_body_bytes must be at least 1024");
        anyhow::ensure!(self.max_in_flight_events >= 1000, "max_in_flight_events must be at least 1000");
        Ok(())
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
}
