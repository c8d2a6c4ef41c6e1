//! `signet archive` and `signet restore`: move events between the hot store and the archive by
//! policy or by time range, on a stopped server's data directory (a running server applies the
//! policies by itself, and on `POST /api/v1/settings/retention/run`). Each run is recorded in
//! the organisation's activity log with the local account that ran it.

use anyhow::Context;
use clap::Args;
use signet_server::retention::{RetentionJob, RetentionStore, POLICIES_DOCUMENT};
use signet_store::archive::{self, Archive, ArchiveLog, Rule};
use signet_store::{Engine, IngestConfig};

use crate::config::Config;
use crate::trust::Local;

#[derive(Args)]
pub struct ArchiveArgs {
    #[command(flatten)]
    local: Local,
    /// Archive everything with an event time before this day (ISO 8601), whatever the policy
    /// says (legal holds still hold). Default: apply each organisation's retention policy.
    #[arg(long)]
    before: Option<String>,
    /// Only this organisation.
    #[arg(long)]
    org: Option<String>,
    /// Only this log: signins, directory-audits, activities, access-log (with --before).
    #[arg(long)]
    kind: Option<String>,
}

#[derive(Args)]
pub struct RestoreArgs {
    #[command(flatten)]
    local: Local,
    /// First day to bring back (ISO 8601).
    #[arg(long)]
    from: String,
    /// End of the range (ISO 8601, exclusive).
    #[arg(long)]
    to: String,
    /// Only this organisation.
    #[arg(long)]
    org: Option<String>,
    /// Only this log: signins, directory-audits, activities, access-log.
    #[arg(long)]
    kind: Option<String>,
    /// Days the restored events stay in the hot store before expiry may move them again.
    #[arg(long, default_value_t = 30)]
    days: u32,
}

fn time(flag: &str, text: &str) -> anyhow::Result<i64> {
    signet_model::time::parse_time(text).map_err(|e| anyhow::anyhow!("{flag} {text:?}: {e}"))
}

fn kind(text: Option<&str>) -> anyhow::Result<Option<ArchiveLog>> {
    text.map(|k| {
        ArchiveLog::parse(k)
            .with_context(|| format!("--kind {k:?}: signins, directory-audits, activities or access-log"))
    })
    .transpose()
}

fn open(config: &Config) -> anyhow::Result<(Engine, Archive)> {
    let engine = Engine::open(&config.data_dir, IngestConfig::default()).map_err(|e| {
        anyhow::anyhow!("{e}: a running server holds it; use POST /api/v1/settings/retention/run instead")
    })?;
    let archive = config.archive()?;
    archive.sync().context("synchronising the archive with its object store")?;
    archive::attach(&engine, &archive)?;
    Ok((engine, archive))
}

fn record(engine: &Engine, org: &str, operation: &str, message: String) -> anyhow::Result<()> {
    let operator = std::env::var("USER").or_else(|_| std::env::var("LOGNAME")).unwrap_or_else(|_| "unknown".into());
    let mut record = signet_server::access_log::local_access_event(org, &operator, operation, "", "", None);
    record["Message"] = serde_json::json!(message);
    signet_server::access_log::store_blocking(engine, org, &record)
        .map_err(anyhow::Error::msg)
        .context("recording the run in the activity log")
}

pub fn archive(args: ArchiveArgs) -> anyhow::Result<()> {
    let config = args.local.load()?;
    let (engine, archive) = open(&config)?;
    let (documents, _) = config.documents()?;
    let policies = std::sync::Arc::new(RetentionStore::open_document(documents.document(POLICIES_DOCUMENT))?);
    let only_kind = kind(args.kind.as_deref())?;
    let report = match &args.before {
        None => {
            let job = RetentionJob::new(archive, policies);
            job.run(&engine, args.org.as_deref(), signet_model::time::now_micros())?
        }
        Some(before) => {
            let before = time("--before", before)?;
            let rules = |org: &str, k: ArchiveLog| {
                let wanted = args.org.as_deref().is_none_or(|o| o == org) && only_kind.is_none_or(|only| only == k);
                wanted.then(|| Rule {
                    hot_days: 0,
                    archive_days: None,
                    legal_hold: policies.get(org).rule(k).is_some_and(|r| r.legal_hold),
                })
            };
            let report = archive::expire(&engine, &archive, &rules, before)?;
            let mut orgs: Vec<&str> = report.partitions.iter().map(|p| p.organization.as_str()).collect();
            orgs.dedup();
            for org in orgs {
                let moved: u64 = report.partitions.iter().filter(|p| p.organization == org).map(|p| p.removed).sum();
                record(
                    &engine,
                    org,
                    "ArchivedByOperator",
                    format!("signet archive --before {}: {moved} events moved to the archive", report.now),
                )?;
            }
            report
        }
    };
    engine.shutdown();
    println!("{}", serde_json::to_string_pretty(&report)?);
    Ok(())
}

pub fn restore(args: RestoreArgs) -> anyhow::Result<()> {
    let config = args.local.load()?;
    let (engine, archive) = open(&config)?;
    let (from, to) = (time("--from", &args.from)?, time("--to", &args.to)?);
    anyhow::ensure!(from < to, "--from must be before --to");
    let until = signet_model::time::now_micros() + i64::from(args.days) * 86_400_000_000;
    let report =
        archive::restore(&engine, &archive, from, to, args.org.as_deref(), kind(args.kind.as_deref())?, until)?;
    let orgs: std::collections::BTreeSet<String> = archive
        .manifests()?
        .into_iter()
        .filter(|(path, _)| report.partitions.iter().any(|p| path.starts_with(p)))
        .map(|(_, m)| m.organization)
        .collect();
    for org in orgs {
        record(
            &engine,
            &org,
            "RestoredFromArchive",
            format!(
                "signet restore --from {} --to {}: back in the hot store until {}",
                args.from, args.to, report.until
            ),
        )?;
    }
    engine.shutdown();
    println!("{}", serde_json::to_string_pretty(&report)?);
    Ok(())
}
