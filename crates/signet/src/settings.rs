//! `signet settings audit show|set`: an organisation's audit settings on a stopped server's data
//! directory (a running server changes them through `PUT /api/v1/settings/audit`). A change is
//! recorded in the organisation's activity log as the server records one, with the local
//! account that made it.

use anyhow::{bail, Context};
use clap::{Args, Subcommand};
use signet_server::audit_settings::{self, AuditSettings, AuditSettingsStore, EntityAudit, AUDIT_DOCUMENT};

use crate::admin::DataArgs;

#[derive(Subcommand)]
pub enum SettingsCommand {
    /// Auditing switches, as Dynamics 365 names them.
    #[command(subcommand)]
    Audit(AuditCommand),
}

#[derive(Subcommand)]
pub enum AuditCommand {
    /// Print the organisation's audit settings (JSON, as the API shows them).
    Show {
        #[command(flatten)]
        data: DataArgs,
    },
    /// Change some of them; the others stay as they are.
    Set(SetArgs),
}

#[derive(Args)]
pub struct SetArgs {
    /// IsAuditEnabled: on or off.
    #[arg(long)]
    auditing: Option<String>,
    /// IsUserAccessAuditEnabled: on or off (effective only while auditing is on).
    #[arg(long)]
    user_access: Option<String>,
    /// UserAccessAuditingInterval, hours.
    #[arg(long)]
    interval: Option<u32>,
    /// Read auditing: on or off.
    #[arg(long)]
    read: Option<String>,
    /// An entity's switches: NAME=audit:on,single:off,multiple:on (unnamed switches stay on).
    #[arg(long, value_name = "NAME=SWITCHES")]
    entity: Vec<String>,
    /// Back to the organisation's switches for this entity.
    #[arg(long, value_name = "NAME")]
    reset_entity: Vec<String>,
    #[command(flatten)]
    data: DataArgs,
}

fn on_off(name: &str, value: &str) -> anyhow::Result<bool> {
    match value.to_ascii_lowercase().as_str() {
        "on" | "true" | "yes" => Ok(true),
        "off" | "false" | "no" => Ok(false),
        other => bail!("{name}: {other:?} is not on or off"),
    }
}

/// `account=audit:on,single:off` -> ("account", switches).
fn parse_entity(text: &str) -> anyhow::Result<(String, EntityAudit)> {
    let (name, switches) = text.split_once('=').unwrap_or((text, ""));
    let mut entity = EntityAudit { is_audit_enabled: true, single_record_audit: true, multiple_record_audit: true };
    for switch in switches.split(',').filter(|s| !s.trim().is_empty()) {
        let (key, value) = switch.split_once(':').with_context(|| format!("--entity {text}: write SWITCH:on|off"))?;
        let value = on_off(key, value.trim())?;
        match key.trim() {
            "audit" => entity.is_audit_enabled = value,
            "single" => entity.single_record_audit = value,
            "multiple" => entity.multiple_record_audit = value,
            other => bail!("--entity {text}: unknown switch {other:?} (audit, single, multiple)"),
        }
    }
    Ok((name.to_string(), entity))
}

fn apply(args: &SetArgs, mut settings: AuditSettings) -> anyhow::Result<AuditSettings> {
    if let Some(v) = &args.auditing {
        settings.is_audit_enabled = on_off("--auditing", v)?;
    }
    if let Some(v) = &args.user_access {
        settings.is_user_access_audit_enabled = on_off("--user-access", v)?;
    }
    if let Some(hours) = args.interval {
        settings.user_access_auditing_interval = hours;
    }
    if let Some(v) = &args.read {
        settings.is_read_audit_enabled = on_off("--read", v)?;
    }
    for name in &args.reset_entity {
        settings.entities.remove(&name.trim().to_lowercase());
    }
    for text in &args.entity {
        let (name, entity) = parse_entity(text)?;
        settings.entities.insert(name.trim().to_lowercase(), entity);
    }
    settings.checked().map_err(anyhow::Error::msg)
}

pub fn run(command: SettingsCommand) -> anyhow::Result<()> {
    let SettingsCommand::Audit(command) = command;
    match command {
        AuditCommand::Show { data } => {
            let (documents, _) = data.config()?.documents()?;
            let store = AuditSettingsStore::open_document(documents.document(AUDIT_DOCUMENT))?;
            let org = data.org.clone().unwrap_or_else(|| data.home_org.clone());
            println!("{}", serde_json::to_string_pretty(&store.get(&org))?);
        }
        AuditCommand::Set(args) => {
            let data = &args.data;
            // The engine takes the data directory's lock: no server may hold it meanwhile. It
            // opens the configured store (the change is recorded in the activity log there).
            let config = data.config()?;
            let engine = config.open_engine().map_err(|e| {
                anyhow::anyhow!("{e:#}: a running server holds it? change the settings through its API")
            })?;
            let (documents, _) = config.documents()?;
            let directory = signet_auth::Directory::open_in(&*documents, &data.home_org)?;
            let org = data.org.clone().unwrap_or_else(|| data.home_org.clone());
            if !directory.organizations().iter().any(|o| o.id == org) {
                bail!("organisation {org} does not exist");
            }
            let store = AuditSettingsStore::open_document(documents.document(AUDIT_DOCUMENT))?;
            let previous = store.get(&org);
            let next = apply(&args, previous.clone())?;
            store.replace(&org, next.clone())?;
            let operator =
                std::env::var("USER").or_else(|_| std::env::var("LOGNAME")).unwrap_or_else(|_| "unknown".into());
            for record in audit_settings::local_change_records(&org, &operator, &previous, &next) {
                signet_server::access_log::store_blocking(&engine, &org, &record)
                    .map_err(anyhow::Error::msg)
                    .context("recording the change in the activity log")?;
            }
            engine.shutdown();
            println!("{}", serde_json::to_string_pretty(&next)?);
        }
    }
    Ok(())
}
