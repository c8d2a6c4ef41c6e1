//! Administration of a stopped server's data directory: the first Global administrator,
//! organisations, and API keys. (A running server holds the directory's lock; use its API.)

use std::io::BufRead;
use std::path::PathBuf;

use anyhow::{bail, Context};
use clap::{Args, Subcommand};
use signet_auth::{Directory, KeyKind, NewUser, Role, Secret};

#[derive(Args, Clone)]
pub struct DataArgs {
    /// Data directory.
    #[arg(long, env = "SIGNET_DATA_DIR", default_value = "./signet-data")]
    pub data: PathBuf,
    /// Organisation (default: the deployment's home organisation).
    #[arg(long)]
    pub org: Option<String>,
    /// The deployment's home organisation (as in the server's config).
    #[arg(long, env = "SIGNET_ORG", default_value = signet_model::OrgId::DEFAULT)]
    pub home_org: String,
    /// Config file (default: ./signet.toml when present): with `storage = "clickhouse"` the
    /// accounts and keys are the ones the nodes share in ClickHouse.
    #[arg(long)]
    pub config: Option<PathBuf>,
}

#[derive(Subcommand)]
pub enum AdminCommand {
    /// Create an account (by default a Global administrator); prints a generated password
    /// once unless --password-stdin is given.
    Create(CreateAdminArgs),
}

#[derive(Args)]
pub struct CreateAdminArgs {
    /// Sign-in name (an e-mail address or UPN).
    #[arg(long)]
    user: String,
    #[arg(long)]
    display_name: Option<String>,
    /// Role (GlobalAdministrator, SecurityAdministrator, SecurityReader, GlobalReader,
    /// ReportsReader, or none).
    #[arg(long, default_value = "GlobalAdministrator")]
    role: String,
    /// Read the password from the first line of standard input.
    #[arg(long)]
    password_stdin: bool,
    #[command(flatten)]
    data: DataArgs,
}

#[derive(Subcommand)]
pub enum OrgCommand {
    /// Create an organisation (for deployments serving several tenants).
    Create {
        /// Organisation id (letters, digits, '-', '_', '.').
        id: String,
        #[arg(long)]
        name: Option<String>,
        #[command(flatten)]
        data: DataArgs,
    },
    /// List organisations.
    List {
        #[command(flatten)]
        data: DataArgs,
    },
}

#[derive(Subcommand)]
pub enum ApiKeyCommand {
    /// Create a key; the token is printed once.
    Create {
        #[arg(long)]
        name: String,
        /// ingest or read.
        #[arg(long = "type")]
        kind: String,
        /// Ingest keys: the only source application the key may write.
        #[arg(long)]
        app: Option<String>,
        /// Read keys: the role whose read permissions the key has.
        #[arg(long)]
        role: Option<String>,
        #[command(flatten)]
        data: DataArgs,
    },
    /// List keys with their last use.
    List {
        #[command(flatten)]
        data: DataArgs,
    },
    /// Revoke a key.
    Revoke {
        id: String,
        #[command(flatten)]
        data: DataArgs,
    },
}

/// The account store of a data directory, with the directory locked against a running server.
struct Locked {
    _lock: std::fs::File,
    directory: Directory,
    org: String,
}

fn open(args: &DataArgs) -> anyhow::Result<Locked> {
    std::fs::create_dir_all(&args.data).with_context(|| format!("creating {}", args.data.display()))?;
    let lock = signet_store::lock_data_dir(&args.data)
        .map_err(|e| anyhow::anyhow!("{e}: a running server holds it; stop it, or make the change through the API"))?;
    let (documents, _) = args.config()?.documents()?;
    let directory = Directory::open_in(&*documents, &args.home_org)
        .with_context(|| format!("opening the accounts of {}", args.data.display()))?;
    let org = args.org.clone().unwrap_or_else(|| args.home_org.clone());
    Ok(Locked { _lock: lock, directory, org })
}

impl DataArgs {
    /// The configuration (`--config`, else ./signet.toml when present) for this data directory.
    pub fn config(&self) -> anyhow::Result<crate::config::Config> {
        let mut config = crate::config::Config::load(self.config.as_ref())?;
        config.data_dir = self.data.clone();
        config.org = self.home_org.clone();
        Ok(config)
    }
}

fn parse_role(text: &str) -> anyhow::Result<Option<Role>> {
    if text.eq_ignore_ascii_case("none") {
        return Ok(None);
    }
    match Role::parse(text) {
        Some(role) => Ok(Some(role)),
        None => bail!("unknown role {text:?}"),
    }
}

/// A random password of 24 URL-safe characters (about 143 bits).
pub fn generated_password() -> Secret {
    Secret::new(signet_auth::secret::random_token(18))
}

pub fn admin(command: AdminCommand) -> anyhow::Result<()> {
    let AdminCommand::Create(args) = command;
    let locked = open(&args.data)?;
    let role = parse_role(&args.role)?;
    let (password, generated) = if args.password_stdin {
        let mut line = String::new();
        std::io::stdin().lock().read_line(&mut line)?;
        (Secret::new(line.trim_end_matches(['\r', '\n'])), false)
    } else {
        (generated_password(), true)
    };
    let new = NewUser { username: args.user, display_name: args.display_name, role, password: Some(password.clone()) };
    let user = locked.directory.create_user(&locked.org, new)?;
    println!("Created {} ({}) in organisation {}.", user.username, role.map_or("no role", Role::as_str), user.org);
    if generated {
        println!("Password (shown once): {}", password.expose());
    }
    Ok(())
}

pub fn org(command: OrgCommand) -> anyhow::Result<()> {
    match command {
        OrgCommand::Create { id, name, data } => {
            let locked = open(&data)?;
            let org = locked.directory.create_organization(&id, name.as_deref().unwrap_or(&id))?;
            println!("Created organisation {} ({}).", org.id, org.display_name);
        }
        OrgCommand::List { data } => {
            let locked = open(&data)?;
            for org in locked.directory.organizations() {
                let home = if org.id == locked.directory.home_org() { " (home)" } else { "" };
                println!("{}\t{}{home}", org.id, org.display_name);
            }
        }
    }
    Ok(())
}

pub fn api_key(command: ApiKeyCommand) -> anyhow::Result<()> {
    match command {
        ApiKeyCommand::Create { name, kind, app, role, data } => {
            let locked = open(&data)?;
            let kind = match kind.to_ascii_lowercase().as_str() {
                "ingest" => KeyKind::Ingest { app },
                "read" => {
                    let role = role.as_deref().context("read keys need --role")?;
                    KeyKind::Read { role: parse_role(role)?.context("read keys need a role")? }
                }
                other => bail!("key type {other:?}: expected ingest or read"),
            };
            let (key, token) = locked.directory.create_key(&locked.org, &name, kind, "cli")?;
            eprintln!("Created key {} ({}) in organisation {}. The token is shown once:", key.name, key.id, key.org);
            println!("{}", token.expose());
        }
        ApiKeyCommand::List { data } => {
            let locked = open(&data)?;
            for key in locked.directory.keys(&locked.org) {
                println!(
                    "{}\t{}\t{}\tlast used {}\t{}",
                    key.id,
                    key.name,
                    serde_json::to_string(&key.kind)?,
                    key.last_used_date_time.as_deref().unwrap_or("never"),
                    key.revoked_date_time.map_or("active".to_string(), |t| format!("revoked {t}")),
                );
            }
        }
        ApiKeyCommand::Revoke { id, data } => {
            let locked = open(&data)?;
            let key = locked.directory.revoke_key(&locked.org, &id)?;
            println!("Revoked key {} ({}).", key.name, key.id);
        }
    }
    Ok(())
}
