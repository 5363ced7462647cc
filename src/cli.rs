//! Command line: clap definitions, dispatch, and the exit code of every failure.
//! Configuration is loaded before logging, the database or a socket is touched.

use std::path::PathBuf;

use clap::{Parser, Subcommand};

use crate::app::{App, StartError, shutdown_signal};
use crate::config::{self, ConfigError, FileLayer};
use crate::db::{Db, DbError};
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
}

impl CliError {
    /// 78 (EX_CONFIG) for configuration errors, 1 for everything else.
    pub fn exit_code(&self) -> u8 {
        match self {
            CliError::Config(_) => 78,
            CliError::Start(e) => e.exit_code(),
            CliError::Db(_) | CliError::Io(_) => 1,
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
    }
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
        app.run_until(shutdown_signal()).await;
        Ok(())
    })
}

fn migrate(cfg: &config::Config) -> Result<(), CliError> {
    telemetry::init(&cfg.log, std::io::stderr);
    std::fs::create_dir_all(&cfg.data_dir)?;
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
