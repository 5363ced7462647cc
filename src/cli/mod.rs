//! Command line: clap definitions and dispatch; one file per command group, the exit code of
//! every failure in `error`. Configuration is loaded before logging, the database or a socket
//! is touched.

use std::path::PathBuf;

use clap::{Parser, Subcommand};

use crate::config::{self, FileLayer};
use crate::db::Db;
use crate::{telemetry, version};

mod admin;
mod analyze;
mod assets;
mod error;
mod import;
mod jobs;
mod output;
mod serve;
mod sign;
mod token;

pub use admin::AdminCommand;
pub use error::CliError;
pub use jobs::JobsCommand;
pub use sign::SignArgs;
pub use token::TokenCommand;

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
        /// Files worked on at once (default: the number of CPU cores).
        #[arg(short = 'j', long = "jobs", value_parser = clap::value_parser!(u16).range(1..=256))]
        jobs: Option<u16>,
    },
    /// Queue the audio analysis (loudness, ReplayGain, waveform peaks, gapless data) of tracks
    /// packaged before it existed; the server's job workers run it.
    Analyze {
        /// Every track not analysed yet.
        #[arg(long)]
        all: bool,
        /// These tracks (analysed again if they were).
        #[arg(value_name = "TRACK_ID")]
        ids: Vec<String>,
    },
    /// Archive the database (a consistent snapshot, safe while serving), the config and the
    /// local blobs into OUT.tar.
    Backup(crate::backup::command::BackupArgs),
    /// Restore an archive from `veza backup` into an empty data dir.
    Restore(crate::backup::command::RestoreArgs),
    /// Check the database and every referenced blob (size, SHA-256); find orphans.
    Check(crate::backup::command::CheckArgs),
    /// Write the man page and shell completions into DIR (packaging).
    #[command(hide = true)]
    GenerateAssets {
        /// Output folder.
        dir: PathBuf,
    },
}

/// `veza config …`
#[derive(Debug, Subcommand)]
pub enum ConfigCommand {
    /// Print the effective configuration as TOML, secrets shown as "****".
    Check,
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
        Command::Serve => {
            // The dashboard's Settings page shows what `config check` prints.
            let masked = config::masked_toml(&cfg, &fig)?;
            serve::serve(cfg, masked)
        }
        Command::Migrate => serve::migrate(&cfg),
        Command::Config(ConfigCommand::Check) => {
            print!("{}", config::masked_toml(&cfg, &fig)?);
            Ok(())
        }
        Command::Sign(args) => sign::sign(&cfg, *args),
        Command::Admin(cmd) => admin::admin(&cfg, cmd),
        Command::Token(cmd) => token::token(&cfg, cmd),
        Command::Jobs(cmd) => jobs::jobs(&cfg, cmd),
        Command::Import {
            dir,
            visibility,
            dry_run,
            jobs,
        } => import::import(&cfg, &dir, &visibility, dry_run, jobs),
        Command::Analyze { all, ids } => analyze::analyze(&cfg, all, &ids),
        Command::Backup(args) => {
            telemetry::init(&cfg.log, std::io::stderr);
            let toml = crate::backup::command::config_toml(&cfg, &fig, args.with_secrets)?;
            Ok(crate::backup::command::backup(&cfg, toml, &args)?)
        }
        Command::Restore(args) => Ok(crate::backup::command::restore(&args)?),
        Command::Check(args) => Ok(crate::backup::command::check(&cfg, &open_db(&cfg)?, &args)?),
        Command::GenerateAssets { dir } => Ok(assets::generate(&dir)?),
    }
}

/// Opens (and migrates) the database of an existing install for a command. Never creates
/// one: a command pointed at the wrong data dir must say so, not start an empty library.
pub(crate) fn open_db(cfg: &config::Config) -> Result<Db, CliError> {
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
