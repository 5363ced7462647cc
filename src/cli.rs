//! Command line: clap definitions, dispatch, and the exit code of every failure.
//! Configuration is loaded before logging, the database or a socket is touched.

use std::net::IpAddr;
use std::path::PathBuf;

use clap::{Args, Parser, Subcommand};

use crate::accounts::{self, AccountsError, Role, Username, store};
use crate::app::{App, StartError, shutdown_signal};
use crate::config::{self, CdnProvider, ConfigError, FileLayer};
use crate::db::{Db, DbError};
use crate::metrics::Metrics;
use crate::signing::{self, CdnService, SignRequest, SigningError};
use crate::{telemetry, version};

/// Veza: a self-hosted audio streaming origin for CDNs.
#[derive(Debug, Parser)]
#[command(name = "veza", version = version::LONG, about, long_about = None)]
pub struct Cli {
    /// Configuration file (default: /etc/veza/veza.toml when present). Must exist if given.
    #[arg(long, global = true, value_name = "FILE")]
    pub config: Option<PathBuf>,
    /// What to do (default: serve).
    #[command(subcommand)]
    pub command: Option<Command>,
}

/// Subcommands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run the server (the default).
    Serve,
    /// Apply pending database migrations and print the applied versions.
    Migrate,
    /// Inspect the configuration.
    #[command(subcommand)]
    Config(ConfigCommand),
    /// Print a signed URL for an object path (never opens the database).
    Sign(Box<SignArgs>),
    /// Manage users: create, reset a password, list.
    #[command(subcommand)]
    Admin(AdminCommand),
    /// Manage API tokens.
    #[command(subcommand)]
    Token(TokenCommand),
    /// Inspect and retry background jobs (HLS packaging, CDN purges).
    #[command(subcommand)]
    Jobs(JobsCommand),
    /// Import every audio file under DIR (mp3, flac, m4a/aac, ogg/opus, wav); safe while serving.
    Import {
        /// Folder to walk (nested folders included).
        dir: PathBuf,
        /// Visibility of the imported tracks.
        #[arg(long, default_value = "public", value_parser = ["public", "unlisted", "private"])]
        visibility: String,
        /// Hash and check for duplicates only; store nothing.
        #[arg(long)]
        dry_run: bool,
    },
}

/// `veza admin …`
#[derive(Debug, Subcommand)]
pub enum AdminCommand {
    /// Create a user (prompts for the password without echo, or reads it from stdin).
    Create {
        /// Login name: 1-64 of A-Z a-z 0-9 . _ -
        #[arg(long)]
        username: String,
        /// Role of the new user.
        #[arg(long, default_value = "admin", value_parser = ["admin", "editor"])]
        role: String,
        /// Read the password from the first line of stdin (for scripts).
        #[arg(long)]
        password_stdin: bool,
    },
    /// Set a new password (ends the user's sessions).
    ResetPassword {
        /// Whose password.
        #[arg(long)]
        username: String,
        /// Read the password from the first line of stdin (for scripts).
        #[arg(long)]
        password_stdin: bool,
    },
    /// List users.
    List {
        /// Print a JSON array (the API's user objects) instead of a table.
        #[arg(long)]
        json: bool,
    },
}

/// `veza jobs …`
#[derive(Debug, Subcommand)]
pub enum JobsCommand {
    /// List jobs, newest first.
    List {
        /// Only jobs in this state.
        #[arg(long, value_parser = ["queued", "running", "succeeded", "failed", "dead"])]
        state: Option<String>,
        /// How many to show.
        #[arg(long, default_value_t = 50, value_parser = clap::value_parser!(u32).range(1..=10000))]
        limit: u32,
        /// Print a JSON array (the API's job objects) instead of a table.
        #[arg(long)]
        json: bool,
    },
    /// Run a queued, failed or dead job again now, with a fresh set of attempts.
    Retry {
        /// Job id (from `veza jobs list`).
        id: i64,
    },
}

/// `veza token …`
#[derive(Debug, Subcommand)]
pub enum TokenCommand {
    /// Create an API token for a user and print it once (`vz_…`).
    Create {
        /// Owner of the token.
        #[arg(long)]
        username: String,
        /// Label, e.g. the script that will use it.
        #[arg(long)]
        name: String,
        /// Lifetime in days (default: no expiry).
        #[arg(long, value_parser = clap::value_parser!(u32).range(1..=3650))]
        expires_days: Option<u32>,
    },
}

/// `veza sign …`: the interface scripts and runbooks rely on (issue 5).
#[derive(Debug, Args)]
pub struct SignArgs {
    /// Provider (default: cdn.provider when cdn.enabled, else local); cdn.fallback still applies.
    #[arg(long, value_parser = clap::builder::PossibleValuesParser::new(["bunny", "s3", "local", "cloudfront", "nginx", "cloudflare"]))]
    pub provider: Option<String>,
    /// Signing time: Unix seconds or YYYYMMDDTHHMMSSZ (default: now).
    #[arg(long, value_name = "UNIX_SECONDS|YYYYMMDDTHHMMSSZ", value_parser = parse_now)]
    pub now: Option<u64>,
    /// Lifetime in seconds (default: cdn.ttl_secs).
    #[arg(long, value_name = "SECONDS", conflicts_with = "expires")]
    pub ttl: Option<u64>,
    /// Absolute expiry, Unix seconds.
    #[arg(long, value_name = "UNIX_SECONDS")]
    pub expires: Option<u64>,
    /// Directory the token covers (Bunny, local), e.g. /tracks/7f3a9c/hls/.
    #[arg(long, value_name = "PATH")]
    pub token_path: Option<String>,
    /// Bunny path form (/bcdn_token=…/path).
    #[arg(long, conflicts_with = "query_form")]
    pub path_form: bool,
    /// Bunny query form (?token=…&expires=…).
    #[arg(long)]
    pub query_form: bool,
    /// Bind the URL to this viewer address.
    #[arg(long, value_name = "ADDR")]
    pub ip: Option<IpAddr>,
    /// Allowed countries (Bunny token_countries).
    #[arg(long, value_name = "CC,CC")]
    pub countries: Option<String>,
    /// Blocked countries (Bunny token_countries_blocked).
    #[arg(long, value_name = "CC,CC")]
    pub countries_blocked: Option<String>,
    /// Speed limit in kB/s (Bunny limit; 0 = none).
    #[arg(long, value_name = "KBPS")]
    pub speed_limit: Option<u64>,
    /// Bunny token_ignore_params=true (players may add query parameters).
    #[arg(long)]
    pub ignore_params: bool,
    /// Extra signed query parameter; repeatable.
    #[arg(long = "query", value_name = "K=V")]
    pub query: Vec<String>,
    /// Print {"url","expires_at","provider","fallback"} instead of the bare URL.
    #[arg(long)]
    pub json: bool,
    /// Decoded object path (/tracks/7f3a9c/original.flac); for S3 the object key.
    #[arg(value_name = "OBJECT_PATH")]
    pub object_path: String,
}

fn parse_now(s: &str) -> Result<u64, String> {
    signing::parse_time(s)
        .ok_or_else(|| format!("{s:?} is neither Unix seconds nor YYYYMMDDTHHMMSSZ"))
}

/// `veza config …`
#[derive(Debug, Subcommand)]
pub enum ConfigCommand {
    /// Print the effective configuration as TOML, secrets shown as "****".
    Check,
}

/// Why a command failed.
#[derive(Debug, thiserror::Error)]
pub enum CliError {
    /// Bad configuration.
    #[error("config: {0}")]
    Config(#[from] ConfigError),
    /// The server could not start.
    #[error("{0}")]
    Start(#[from] StartError),
    /// Database failure in a command.
    #[error("{0}")]
    Db(#[from] DbError),
    /// I/O failure in a command.
    #[error("{0}")]
    Io(#[from] std::io::Error),
    /// `veza sign` input that cannot be signed (exit 2, like a usage error).
    #[error("sign: {0}")]
    SignInput(String),
    /// No provider could sign (exit 78: every cause is configuration or a key file).
    #[error("sign: {0}")]
    Sign(SigningError),
    /// Bad input to an account command (exit 2).
    #[error("{0}")]
    Input(String),
    /// `veza import` finished with failures, or could not run (exit 1).
    #[error("import: {0}")]
    Import(String),
    /// An account command failed for a reason other than its input.
    #[error("{0}")]
    Accounts(AccountsError),
    /// A job command failed for a reason other than its input.
    #[error("{0}")]
    Jobs(crate::jobs::JobError),
    /// The data dir or database a command needs does not exist (exit 66, EX_NOINPUT).
    #[error("{0}")]
    NoDatabase(String),
}

impl From<crate::jobs::JobError> for CliError {
    fn from(e: crate::jobs::JobError) -> CliError {
        use crate::jobs::JobError as J;
        match e {
            J::NotFound | J::NotRetryable { .. } | J::AlreadyPending { .. } => {
                CliError::Input(e.to_string())
            }
            e => CliError::Jobs(e),
        }
    }
}

impl From<AccountsError> for CliError {
    fn from(e: AccountsError) -> CliError {
        match e {
            AccountsError::InvalidUsername(_)
            | AccountsError::WeakPassword(_)
            | AccountsError::UsernameTaken(_)
            | AccountsError::NotFound(_)
            | AccountsError::LastAdmin => CliError::Input(e.to_string()),
            e => CliError::Accounts(e),
        }
    }
}

impl CliError {
    /// 78 (EX_CONFIG) for configuration errors, 2 for bad input, 66 (EX_NOINPUT) for a
    /// missing database, 1 for everything else.
    pub fn exit_code(&self) -> u8 {
        match self {
            CliError::Config(_) | CliError::Sign(_) => 78,
            CliError::SignInput(_) | CliError::Input(_) => 2,
            CliError::NoDatabase(_) => 66,
            CliError::Start(e) => e.exit_code(),
            CliError::Db(_)
            | CliError::Io(_)
            | CliError::Accounts(_)
            | CliError::Jobs(_)
            | CliError::Import(_) => 1,
        }
    }
}

/// Runs the parsed command line.
pub fn run(cli: Cli) -> Result<(), CliError> {
    let layer = match cli.config {
        Some(p) => FileLayer::Explicit(p),
        None => FileLayer::Default,
    };
    let fig = config::figment(&layer)?;
    let cfg = config::from_figment(&fig)?;
    match cli.command.unwrap_or(Command::Serve) {
        Command::Serve => serve(cfg),
        Command::Migrate => migrate(&cfg),
        Command::Config(ConfigCommand::Check) => {
            print!("{}", config::masked_toml(&cfg, &fig)?);
            Ok(())
        }
        Command::Sign(args) => sign(&cfg, *args),
        Command::Admin(cmd) => admin(&cfg, cmd),
        Command::Token(cmd) => token(&cfg, cmd),
        Command::Jobs(cmd) => jobs(&cfg, cmd),
        Command::Import {
            dir,
            visibility,
            dry_run,
        } => import(&cfg, &dir, &visibility, dry_run),
    }
}

/// `veza import`: exit 0 when nothing failed, 1 otherwise.
fn import(
    cfg: &config::Config,
    dir: &std::path::Path,
    visibility: &str,
    dry_run: bool,
) -> Result<(), CliError> {
    if !dir.is_dir() {
        return Err(CliError::Input(format!(
            "{} is not a folder",
            dir.display()
        )));
    }
    let visibility = visibility.parse().map_err(CliError::Input)?;
    let db = open_db(cfg)?;
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    let summary = rt.block_on(async {
        let store = crate::storage::BlobStore::open(&cfg.storage)
            .await
            .map_err(|e| CliError::Import(e.to_string()))?;
        let ingest = crate::library::ingest::Ingest {
            db,
            store,
            ffprobe: cfg.hls.ffprobe.clone(),
            spool_dir: crate::datadir::spool_dir(&cfg.data_dir),
            package_attempts: cfg.hls.enabled.then_some(cfg.jobs.max_attempts),
            queue: None,
        };
        crate::library::import::run(&ingest, dir, visibility, dry_run)
            .await
            .map_err(|e| CliError::Import(e.to_string()))
    })?;
    if summary.failed.is_empty() {
        Ok(())
    } else {
        Err(CliError::Import(format!(
            "{} files failed",
            summary.failed.len()
        )))
    }
}

/// Opens (and migrates) the database of an existing install for a command. Never creates
/// one: a command pointed at the wrong data dir must say so, not start an empty library.
fn open_db(cfg: &config::Config) -> Result<Db, CliError> {
    telemetry::init(&cfg.log, std::io::stderr);
    let path = cfg.data_dir.join(crate::db::DB_FILE);
    if !path.is_file() {
        let dir = std::path::absolute(&cfg.data_dir).unwrap_or_else(|_| cfg.data_dir.clone());
        return Err(CliError::NoDatabase(format!(
            "no Veza database at {}: this data dir has not been set up. Point at the right one with --config FILE (data_dir = …) or VEZA_DATA_DIR=…, or create it with `veza migrate` (or by starting `veza serve`)",
            dir.join(crate::db::DB_FILE).display()
        )));
    }
    let (db, applied) = Db::open_and_migrate(&cfg.data_dir)?;
    let now: Vec<_> = applied.iter().filter(|m| m.now).collect();
    if let Some(last) = now.last() {
        eprintln!(
            "veza: applied {} database migration(s), schema version {}",
            now.len(),
            last.version
        );
    }
    Ok(db)
}

/// Unix seconds as RFC 3339 in UTC (`2026-12-04T13:49:06Z`).
fn rfc3339(secs: i64) -> String {
    time::OffsetDateTime::from_unix_timestamp(secs)
        .ok()
        .and_then(|t| {
            t.format(&time::format_description::well_known::Rfc3339)
                .ok()
        })
        .unwrap_or_else(|| secs.to_string())
}

/// Prints rows under a header, each column as wide as its widest cell (the last unpadded).
fn print_table(header: &[&str], rows: &[Vec<String>]) {
    let mut widths: Vec<usize> = header.iter().map(|h| h.chars().count()).collect();
    for r in rows {
        for (w, cell) in widths.iter_mut().zip(r) {
            *w = (*w).max(cell.chars().count());
        }
    }
    let line = |cells: Vec<&str>| {
        let last = cells.len().saturating_sub(1);
        let mut out = String::new();
        for (i, (c, w)) in cells.iter().zip(&widths).enumerate() {
            if i == last {
                out.push_str(c);
            } else {
                out.push_str(&format!("{c:<w$}  "));
            }
        }
        println!("{}", out.trim_end());
    };
    line(header.to_vec());
    for r in rows {
        line(r.iter().map(String::as_str).collect());
    }
}

/// Prints `v` as JSON on stdout.
fn print_json<T: serde::Serialize>(v: &T) -> Result<(), CliError> {
    let text = serde_json::to_string_pretty(v).map_err(|e| CliError::Io(e.into()))?;
    println!("{text}");
    Ok(())
}

/// A new password from stdin (`--password-stdin`) or a no-echo prompt, checked for length.
fn read_new_password(from_stdin: bool) -> Result<String, CliError> {
    use std::io::IsTerminal;
    let pw = if from_stdin {
        let mut line = String::new();
        std::io::stdin().read_line(&mut line)?;
        line.trim_end_matches(['\r', '\n']).to_owned()
    } else if std::io::stdin().is_terminal() {
        let pw = rpassword::prompt_password("Password: ")?;
        if rpassword::prompt_password("Again: ")? != pw {
            return Err(CliError::Input("the passwords differ".into()));
        }
        pw
    } else {
        return Err(CliError::Input(
            "stdin is not a terminal: pass --password-stdin and pipe the password".into(),
        ));
    };
    accounts::check_new_password(&pw)?;
    Ok(pw)
}

fn admin(cfg: &config::Config, cmd: AdminCommand) -> Result<(), CliError> {
    let now = crate::clock::now();
    match cmd {
        AdminCommand::Create {
            username,
            role,
            password_stdin,
        } => {
            let username = Username::parse(&username)?;
            let role: Role = role.parse().map_err(CliError::Input)?;
            let db = open_db(cfg)?;
            let hash = accounts::hash_password(&read_new_password(password_stdin)?)?;
            let user = db.with(|c| store::create_user(c, &username, &hash, role, now))?;
            println!("created {} {} ({})", user.role, user.username, user.id);
        }
        AdminCommand::ResetPassword {
            username,
            password_stdin,
        } => {
            let db = open_db(cfg)?;
            let (user, _) = db
                .with(|c| store::find_login(c, &username))?
                .ok_or(AccountsError::NotFound("user"))?;
            let hash = accounts::hash_password(&read_new_password(password_stdin)?)?;
            let change = store::UserChange {
                password_hash: Some(hash),
                ..Default::default()
            };
            db.with(|c| store::update_user(c, &user.id, &change))?;
            println!(
                "password changed for {}; their sessions have ended and their API tokens are revoked",
                user.username
            );
        }
        AdminCommand::List { json } => {
            let db = open_db(cfg)?;
            let users = db.with(|c| store::list_users(c))?;
            if json {
                return print_json(&users);
            }
            let rows: Vec<Vec<String>> = users
                .iter()
                .map(|u| {
                    vec![
                        u.id.clone(),
                        u.username.clone(),
                        u.role.to_string(),
                        if u.disabled { "disabled" } else { "enabled" }.to_owned(),
                        u.last_login_at.map_or_else(|| "never".to_owned(), rfc3339),
                    ]
                })
                .collect();
            print_table(&["ID", "USERNAME", "ROLE", "STATE", "LAST LOGIN"], &rows);
        }
    }
    Ok(())
}

/// `veza jobs list|retry`. A retried job runs when the server's workers next poll (within a
/// second); this command never runs jobs itself.
fn jobs(cfg: &config::Config, cmd: JobsCommand) -> Result<(), CliError> {
    use crate::jobs::store as jobs;
    let db = open_db(cfg)?;
    match cmd {
        JobsCommand::List { state, limit, json } => {
            let filter = jobs::Filter {
                state: state
                    .map(|s| s.parse())
                    .transpose()
                    .map_err(CliError::Input)?,
                limit,
                ..jobs::Filter::default()
            };
            let list = db.with(|c| jobs::list(c, &filter))?;
            if json {
                return print_json(&list);
            }
            let rows: Vec<Vec<String>> = list
                .iter()
                .map(|j| {
                    vec![
                        j.id.to_string(),
                        j.kind.to_string(),
                        j.state.to_string(),
                        format!("{}/{}", j.attempts, j.max_attempts),
                        j.track_id.clone().unwrap_or_else(|| "-".into()),
                        rfc3339(j.run_at),
                        j.last_error
                            .as_deref()
                            .map(|e| e.lines().last().unwrap_or("").chars().take(80).collect())
                            .unwrap_or_default(),
                    ]
                })
                .collect();
            print_table(
                &[
                    "ID",
                    "KIND",
                    "STATE",
                    "ATTEMPTS",
                    "TRACK",
                    "RUN AT",
                    "LAST ERROR",
                ],
                &rows,
            );
        }
        JobsCommand::Retry { id } => {
            let job = db.with(|c| jobs::retry(c, id, crate::clock::now()))?;
            println!("job {} ({}) is queued again", job.id, job.kind);
        }
    }
    Ok(())
}

fn token(cfg: &config::Config, cmd: TokenCommand) -> Result<(), CliError> {
    let TokenCommand::Create {
        username,
        name,
        expires_days,
    } = cmd;
    let name = name.trim().to_owned();
    if !(1..=100).contains(&name.chars().count()) {
        return Err(CliError::Input("--name must be 1-100 characters".into()));
    }
    let db = open_db(cfg)?;
    let (user, _) = db
        .with(|c| store::find_login(c, &username))?
        .ok_or(AccountsError::NotFound("user"))?;
    let token = accounts::new_api_token();
    let hash = accounts::secret_hash(&token);
    let now = crate::clock::now();
    let expires_at = expires_days.map(|d| now + i64::from(d) * 86_400);
    db.with(|c| store::create_token(c, &user.id, &name, &hash, now, expires_at))?;
    // The token on stdout alone, so `TOKEN=$(veza token create …)` works; shown only once.
    println!("{token}");
    eprintln!(
        "token for {} created; it is shown only this once",
        user.username
    );
    Ok(())
}

/// `veza sign`: config and flags into one [`SignRequest`], through the same fallback chain as
/// the server. Touches no database; the local provider may create its key file.
fn sign(cfg: &config::Config, args: SignArgs) -> Result<(), CliError> {
    // Fallback warnings go to stderr; stdout carries only the URL.
    telemetry::init(&cfg.log, std::io::stderr);
    let bad = CliError::SignInput;
    let primary = match &args.provider {
        Some(name) => {
            CdnProvider::parse(name).ok_or_else(|| bad(format!("unknown provider {name:?}")))?
        }
        None if cfg.cdn.enabled => cfg.cdn.provider,
        None => CdnProvider::Local,
    };
    let now = match args.now {
        Some(n) => n,
        None => std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_err(|_| bad("the system clock is before 1970".into()))?
            .as_secs(),
    };
    let mut query = Vec::with_capacity(args.query.len());
    for kv in &args.query {
        let (k, v) = kv
            .split_once('=')
            .ok_or_else(|| bad(format!("--query {kv:?} is not K=V")))?;
        query.push((k.to_owned(), v.to_owned()));
    }
    let list = |s: &Option<String>| -> Option<Vec<String>> {
        s.as_ref().map(|s| {
            s.split(',')
                .map(str::trim)
                .filter(|c| !c.is_empty())
                .map(str::to_owned)
                .collect()
        })
    };
    let path = if args.object_path.starts_with('/') {
        args.object_path.clone()
    } else {
        format!("/{}", args.object_path)
    };
    let req = SignRequest {
        path,
        now,
        expires: args.expires,
        ttl: args.ttl,
        token_path: args.token_path.clone(),
        path_form: match (args.path_form, args.query_form) {
            (true, _) => Some(true),
            (_, true) => Some(false),
            _ => None,
        },
        ip: args.ip,
        countries_allowed: list(&args.countries),
        countries_blocked: list(&args.countries_blocked),
        speed_limit_kbps: args.speed_limit,
        ignore_params: args.ignore_params,
        query,
    };
    let metrics = Metrics::new(version::VERSION, version::COMMIT)
        .map_err(|e| CliError::Io(std::io::Error::other(e.to_string())))?;
    let service = CdnService::with_primary(cfg, &metrics, primary);
    let signed = service.sign(&req).map_err(|e| match e {
        SigningError::BadInput(m) => CliError::SignInput(m),
        other => CliError::Sign(other),
    })?;
    if args.json {
        println!(
            "{}",
            serde_json::to_string(&signed).expect("a SignedUrl serialises")
        );
    } else {
        println!("{}", signed.url);
    }
    Ok(())
}

fn serve(cfg: config::Config) -> Result<(), CliError> {
    telemetry::init(&cfg.log, std::io::stderr);
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .thread_name("veza")
        .build()?;
    rt.block_on(async {
        let public = cfg.server.public_url.clone();
        let app = App::build(cfg).await?;
        let applied: Vec<_> = app.migrations().iter().filter(|m| m.now).collect();
        if !applied.is_empty() {
            tracing::info!(count = applied.len(), "applied database migrations");
        }
        tracing::info!(
            version = version::VERSION,
            commit = version::COMMIT,
            public_url = %public,
            "veza {} listening on http://{}",
            version::VERSION,
            app.local_addr()
        );
        match app.issue_setup_link().await {
            Ok(Some(link)) => tracing::warn!(
                "no admin yet: open {link} within an hour to create one (single use), or run `veza admin create`"
            ),
            Ok(None) => {}
            Err(e) => tracing::error!(error = %e, "could not issue the setup link"),
        }
        app.run_until(shutdown_signal()).await;
        Ok(())
    })
}

fn migrate(cfg: &config::Config) -> Result<(), CliError> {
    telemetry::init(&cfg.log, std::io::stderr);
    crate::datadir::prepare(&cfg.data_dir)?;
    let (db, applied) = Db::open_and_migrate(&cfg.data_dir)?;
    for m in &applied {
        let what = if m.now { "applied" } else { "already applied" };
        println!("V{} {}: {what}", m.version, m.name);
    }
    println!(
        "{}: schema version {}",
        db.path().display(),
        applied.last().map_or(0, |m| m.version)
    );
    Ok(())
}
