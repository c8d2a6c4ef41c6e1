//! `signet clickhouse init`: creates or migrates the ClickHouse schema of the scale-out store
//! (`[clickhouse]` in signet.toml, or flags). Migrations are versioned and idempotent.

use clap::{Args, Subcommand};
use signet_store::clickhouse::{ClickHouseSettings, ClickHouseStore};

use crate::trust::Local;

#[derive(Subcommand)]
pub enum ClickhouseCommand {
    /// Create the database and tables, or migrate them to this build's schema version.
    Init(InitArgs),
}

#[derive(Args)]
pub struct InitArgs {
    #[command(flatten)]
    local: Local,
    /// The HTTP interface (default: `[clickhouse] url`).
    #[arg(long)]
    url: Option<String>,
    /// Database (default: `[clickhouse] database`, else `signet`).
    #[arg(long)]
    database: Option<String>,
    /// A cluster of the servers' `remote_servers` (default: `[clickhouse] cluster`): replicated
    /// shards behind Distributed tables, created ON CLUSTER (needs ZooKeeper).
    #[arg(long)]
    cluster: Option<String>,
}

pub fn run(command: ClickhouseCommand) -> anyhow::Result<()> {
    match command {
        ClickhouseCommand::Init(args) => {
            let config = args.local.load()?;
            let mut settings = config.clickhouse.clone().unwrap_or_else(|| ClickHouseSettings {
                url: String::new(),
                urls: Vec::new(),
                database: "signet".into(),
                user: None,
                password_file: None,
                node: "node-1".into(),
                cluster: None,
            });
            if let Some(url) = args.url {
                settings.url = url;
            }
            if let Some(database) = args.database {
                settings.database = database;
            }
            if let Some(cluster) = args.cluster {
                settings.cluster = Some(cluster);
            }
            anyhow::ensure!(!settings.url.is_empty(), "no ClickHouse: set [clickhouse] url in signet.toml, or --url");
            let store = ClickHouseStore::open(&settings)?;
            let version = store.migrate()?;
            match &settings.cluster {
                Some(cluster) => println!(
                    "{} database {} on cluster {cluster}: schema version {version}",
                    settings.url, settings.database
                ),
                None => println!("{} database {}: schema version {version}", settings.url, settings.database),
            }
            Ok(())
        }
    }
}
