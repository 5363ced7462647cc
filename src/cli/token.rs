//! `veza token …`: API tokens.

use clap::Subcommand;

use super::error::CliError;
use super::open_db;
use crate::accounts::{self, AccountsError, store};
use crate::config;

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

pub(super) fn token(cfg: &config::Config, cmd: TokenCommand) -> Result<(), CliError> {
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
