//! The `backup`, `restore` and `check` subcommands: flags, and the summaries they print.

use std::path::PathBuf;

use clap::Args;

use super::{BackupError, BackupOptions};
use crate::config::{self, Config};

/// `veza backup OUT.tar`
#[derive(Debug, Args)]
pub struct BackupArgs {
    /// The archive to write (replaced atomically if it exists).
    #[arg(value_name = "OUT.tar")]
    pub out: PathBuf,
    /// Leave the blobs out and list their keys, sizes and SHA-256 instead (always so for S3:
    /// the bucket is backed up by its own means).
    #[arg(long)]
    pub db_only: bool,
    /// Keep the config's secrets (S3 keys, CDN keys) in the archive instead of "****".
    #[arg(long)]
    pub with_secrets: bool,
}

/// `veza restore IN.tar --data-dir D`
#[derive(Debug, Args)]
pub struct RestoreArgs {
    /// The archive `veza backup` wrote.
    #[arg(value_name = "IN.tar")]
    pub input: PathBuf,
    /// Where to restore (the new install's data_dir; blobs go to DIR/blobs).
    #[arg(long, value_name = "DIR")]
    pub data_dir: PathBuf,
    /// Replace the database and blobs of a non-empty DIR.
    #[arg(long)]
    pub force: bool,
}

/// `veza check`
#[derive(Debug, Args)]
pub struct CheckArgs {
    /// Delete orphans (unreferenced objects older than an hour); never a referenced object.
    #[arg(long)]
    pub repair: bool,
    /// Print the report as JSON.
    #[arg(long)]
    pub json: bool,
}

fn runtime() -> Result<tokio::runtime::Runtime, BackupError> {
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .map_err(super::io("start", std::path::Path::new("runtime")))
}

/// Runs `veza backup`; exit 65 when the archive was written but the install is damaged.
pub fn backup(cfg: &Config, config_toml: String, args: &BackupArgs) -> Result<(), BackupError> {
    let rt = runtime()?;
    let opts = BackupOptions {
        out: args.out.clone(),
        db_only: args.db_only,
        config_toml,
    };
    let s = super::backup(cfg, &opts, &rt)?;
    println!(
        "{}: {} tracks, database {} bytes, {} referenced objects, {} copied ({} bytes){}",
        args.out.display(),
        s.tracks,
        s.database_bytes,
        s.blobs,
        s.blobs_included,
        s.blob_bytes,
        if s.blobs_included == 0 && s.blobs > 0 {
            " — blobs listed in manifest.json only"
        } else {
            ""
        }
    );
    if s.damaged.is_empty() {
        return Ok(());
    }
    for (key, why) in &s.damaged {
        eprintln!("veza: damaged: {key}: {why}");
    }
    Err(BackupError::Damaged(format!(
        "the archive is written, but {} referenced objects are missing or damaged in the store; run `veza check`",
        s.damaged.len()
    )))
}

/// Runs `veza restore`.
pub fn restore(args: &RestoreArgs) -> Result<(), BackupError> {
    let s = super::restore(&args.input, &args.data_dir, args.force)?;
    println!(
        "restored {} tracks and {} blobs into {}; the archived config is {}",
        s.tracks,
        s.blobs,
        args.data_dir.display(),
        s.config.display()
    );
    if s.db_only {
        println!(
            "the archive held no blobs: point [storage] at the store that has them, then run `veza check`"
        );
    }
    Ok(())
}

/// Runs `veza check`; exit 65 when it found problems.
pub fn check(cfg: &Config, db: &crate::db::Db, args: &CheckArgs) -> Result<(), BackupError> {
    let rt = runtime()?;
    let report = rt.block_on(async {
        let store = crate::storage::BlobStore::open(&cfg.storage).await?;
        super::check(db, &store, args.repair).await
    })?;
    if args.json {
        println!(
            "{}",
            serde_json::to_string_pretty(&report).expect("a report serialises")
        );
    } else {
        for l in report.lines() {
            println!("{l}");
        }
    }
    if report.ok {
        Ok(())
    } else {
        Err(BackupError::Damaged("veza check found problems".into()))
    }
}

/// The config as archived: masked unless `--with-secrets`.
pub fn config_toml(
    cfg: &Config,
    fig: &figment::Figment,
    with_secrets: bool,
) -> Result<String, config::ConfigError> {
    config::effective_toml(cfg, fig, !with_secrets)
}
