//! Tamper-evidence commands: `signet verify`, `signet keys show`, `signet proof verify`, and
//! the webhook that publishes signed heads.

use std::path::PathBuf;
use std::sync::mpsc;
use std::time::Duration;

use anyhow::Context;
use clap::{Args, Subcommand};
use signet_store::ledger::{default_key_path, HeadSink};
use signet_store::verify::{load_external_heads, verify_data_dir, VerifyOptions, VerifyReport};
use signet_trust::{bundle, HeadSigner, PublicKey, SignedHead};

use crate::config::Config;

/// Which data directory and settings a command reads.
#[derive(Args, Clone)]
pub struct Local {
    /// Config file (default: ./signet.toml when present).
    #[arg(long)]
    config: Option<PathBuf>,
    /// Data directory (overrides the config).
    #[arg(long, env = "SIGNET_DATA_DIR")]
    data: Option<PathBuf>,
}

impl Local {
    pub(crate) fn load(&self) -> anyhow::Result<Config> {
        let mut config = Config::load(self.config.as_ref())?;
        if let Some(data) = &self.data {
            config.data_dir = data.clone();
        }
        Ok(config)
    }
}

#[derive(Subcommand)]
pub enum KeysCommand {
    /// Print the public key that signs tree heads (for auditors to pin).
    Show(Local),
}

#[derive(Args)]
pub struct VerifyArgs {
    #[command(flatten)]
    local: Local,
    /// The public key to trust (`ed25519:...` or a file holding it); default: the node's own.
    #[arg(long)]
    key: Option<String>,
    /// A head saved earlier (JSON, or a heads.jsonl): the log must still contain it.
    #[arg(long)]
    since: Vec<PathBuf>,
    /// More published heads (files or directories with heads.jsonl); the configured
    /// publish_heads_dir is always included.
    #[arg(long)]
    heads: Vec<PathBuf>,
    /// Also check the query tables against the log (needs the server stopped): on DuckDB, rebuilt
    /// from the log in a scratch file and compared row by row (about as long as a rebuild); on
    /// ClickHouse, every row this node applied against its log record, column by column.
    #[arg(long)]
    projection: bool,
    /// Print the report as JSON.
    #[arg(long)]
    json: bool,
}

#[derive(Subcommand)]
pub enum ProofCommand {
    /// Check an inclusion proof, a consistency proof or an export with proofs, offline, with
    /// nothing but the public key.
    Verify(ProofVerifyArgs),
}

#[derive(Args)]
pub struct ProofVerifyArgs {
    /// The proof (JSON from /api/v1/trust/proof/...) or export (NDJSON with proofs=true).
    file: PathBuf,
    /// The public key to trust (`ed25519:...` or a file holding it).
    #[arg(long)]
    key: String,
    /// For a consistency proof: the head you saved earlier.
    #[arg(long)]
    head: Option<PathBuf>,
}

pub fn keys(command: KeysCommand) -> anyhow::Result<()> {
    let KeysCommand::Show(local) = command;
    let config = local.load()?;
    let path = config.signing_key_file.clone().unwrap_or_else(|| default_key_path(&config.data_dir));
    let signer = HeadSigner::load(&path).with_context(|| {
        format!("no signing key at {} yet: it is made when the server first starts", path.display())
    })?;
    let key = signer.public();
    println!("{key}");
    eprintln!("key id {} (Ed25519), from {}", key.id(), path.display());
    Ok(())
}

/// Exit code 1 when the log fails verification (errors reading it are exit code 2 via main).
pub fn verify(args: VerifyArgs) -> anyhow::Result<bool> {
    let config = args.local.load()?;
    let key = args.key.as_deref().map(PublicKey::from_arg).transpose().context("--key")?;
    let mut sources = args.since.clone();
    sources.extend(args.heads.iter().cloned());
    if let Some(dir) = &config.publish_heads_dir {
        if dir.join("heads.jsonl").exists() {
            sources.push(dir.clone());
        }
    }
    let external_heads = load_external_heads(&sources)?;
    let options = VerifyOptions { key, key_file: config.signing_key_file.clone(), external_heads };
    let mut report = verify_data_dir(&config.data_dir, &options)
        .with_context(|| format!("verifying {}", config.data_dir.display()))?;
    // The archive: every part against its manifest and the Merkle trees.
    let archive_dir = config.archive_dir();
    if archive_dir.is_dir() || config.archive_store.is_some() {
        let key_path = config.signing_key_file.clone().unwrap_or_else(|| default_key_path(&config.data_dir));
        let key = match key {
            Some(key) => Some(key),
            None => HeadSigner::load(&key_path).ok().map(|s| s.public()),
        };
        if let Some(key) = key {
            let archive = config.archive()?;
            let (parts, problems) = signet_store::archive::verify_archive(&archive, &config.data_dir, &key)
                .with_context(|| format!("verifying the archive {}", archive_dir.display()))?;
            let place = match archive.remote() {
                Some(remote) => format!("{} and {}", archive_dir.display(), remote.url()),
                None => archive_dir.display().to_string(),
            };
            report.notes.push(format!("{parts} archive part(s) checked in {place}"));
            report.ok &= problems.is_empty();
            report.problems.extend(problems.into_iter().map(|p| signet_store::verify::Problem {
                kind: signet_store::verify::ProblemKind::ArchiveDiffers,
                org: None,
                leaf: None,
                log_position: None,
                detail: format!("{}: {}", p.part, p.detail),
            }));
        }
    }
    if args.projection {
        let problems = match (config.storage.as_str(), &config.clickhouse) {
            ("clickhouse", Some(settings)) => {
                let store = signet_store::clickhouse::ClickHouseStore::open(settings)
                    .with_context(|| format!("connecting to ClickHouse at {}", settings.url))?;
                let (problems, compared) = signet_store::verify::verify_clickhouse_projection(&config.data_dir, &store)
                    .with_context(|| format!("checking ClickHouse against {}", config.data_dir.display()))?;
                report.notes.push(compared);
                problems
            }
            _ => signet_store::verify::verify_projection(&config.data_dir, &archive_dir)
                .with_context(|| format!("checking the projection of {}", config.data_dir.display()))?,
        };
        report.ok &= problems.is_empty();
        report.problems.extend(problems);
    }
    if args.json {
        println!("{}", serde_json::to_string_pretty(&report)?);
    } else {
        print_report(&report);
    }
    Ok(report.ok)
}

fn print_report(report: &VerifyReport) {
    let heads: u64 = report.orgs.values().map(|o| o.heads_checked).sum();
    if report.ok {
        println!(
            "OK: {} events in {} organisation(s); {heads} signed head(s) checked with key {}",
            report.records,
            report.orgs.len(),
            report.key_id
        );
    } else {
        println!("FAILED: {} problem(s); first:", report.problems.len());
    }
    for problem in &report.problems {
        let mut at = Vec::new();
        if let Some(org) = &problem.org {
            at.push(format!("organisation {org}"));
        }
        if let Some(leaf) = problem.leaf {
            at.push(format!("leaf {leaf}"));
        }
        if let Some(pos) = problem.log_position {
            at.push(format!("log position {pos}"));
        }
        println!("  {:?} [{}]: {}", problem.kind, at.join(", "), problem.detail);
    }
    for note in &report.notes {
        println!("  note: {note}");
    }
}

pub fn proof(command: ProofCommand) -> anyhow::Result<bool> {
    let ProofCommand::Verify(args) = command;
    let key = PublicKey::from_arg(&args.key).context("--key")?;
    let bytes = std::fs::read(&args.file).with_context(|| format!("reading {}", args.file.display()))?;
    // One JSON object is a proof bundle (which kind, by its fields); anything else is an
    // export with proofs (NDJSON, the signed head on its first line).
    let single: Option<serde_json::Value> = serde_json::from_slice(&bytes).ok();
    let has = |field: &str| single.as_ref().is_some_and(|v| v.get(field).is_some());
    let result: Result<String, signet_trust::TrustError> = if has("leaf_index") {
        bundle::verify_inclusion(&bytes, &key).map(|v| {
            format!(
                "OK: {} {} revision {} of {} is leaf {} of the tree of {} signed by {}",
                v.kind,
                v.id,
                v.revision,
                v.org,
                v.leaf_index,
                v.tree_size,
                key.id()
            )
        })
    } else if has("second") {
        let saved = match &args.head {
            Some(path) => Some(read_head(path)?),
            None => None,
        };
        bundle::verify_consistency(&bytes, &key, saved.as_ref())
            .map(|(a, b)| format!("OK: the tree of {b} signed by {} extends the tree of {a}", key.id()))
    } else {
        bundle::verify_export(&bytes, &key).map(|c| {
            format!(
                "OK: {} events of {} proven in the tree of {} signed by {}{}",
                c.verified,
                c.org,
                c.tree_size,
                key.id(),
                if c.unproven > 0 { format!(" ({} newer lines carry no proof)", c.unproven) } else { String::new() }
            )
        })
    };
    match result {
        Ok(message) => {
            println!("{message}");
            Ok(true)
        }
        Err(err) => {
            println!("FAILED: {err}");
            Ok(false)
        }
    }
}

fn read_head(path: &PathBuf) -> anyhow::Result<SignedHead> {
    let text = std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
    let value: serde_json::Value = serde_json::from_str(text.trim()).context("the saved head is not JSON")?;
    // Accept the bare head or the API's {"head": ...}.
    let head = value.get("head").cloned().unwrap_or(value);
    serde_json::from_value(head).context("the saved head is not a signed head")
}

/// A sink that POSTs heads to `url` from its own thread, retrying with back-off; signing never
/// waits for the network.
pub fn webhook_sink(url: String) -> anyhow::Result<HeadSink> {
    let (tx, rx) = mpsc::channel::<Vec<SignedHead>>();
    let client = reqwest::blocking::Client::builder().timeout(Duration::from_secs(10)).build()?;
    std::thread::Builder::new().name("signet-head-webhook".into()).spawn(move || {
        while let Ok(heads) = rx.recv() {
            let mut delay = Duration::from_millis(500);
            for attempt in 1..=8 {
                match client.post(&url).json(&heads).send() {
                    Ok(response) if response.status().is_success() => break,
                    Ok(response) => {
                        tracing::warn!(status = %response.status(), attempt, "head webhook refused the heads")
                    }
                    Err(err) => tracing::warn!(error = %err, attempt, "head webhook unreachable"),
                }
                if attempt == 8 {
                    tracing::error!(
                        heads = heads.len(),
                        "giving up publishing heads to the webhook; they stay in heads.jsonl"
                    );
                }
                std::thread::sleep(delay);
                delay = (delay * 2).min(Duration::from_secs(60));
            }
        }
    })?;
    Ok(std::sync::Arc::new(move |heads: &[SignedHead]| {
        let _ = tx.send(heads.to_vec());
    }))
}
