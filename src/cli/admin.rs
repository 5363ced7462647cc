//! `veza admin …`: users and passwords.

use clap::Subcommand;

use super::error::CliError;
use super::open_db;
use super::output::{print_json, print_table, rfc3339};
use crate::accounts::{self, AccountsError, Role, Username, store};
use crate::config;

/// `veza admin …`
#[derive(Debug, Subcommand)]
pub enum AdminCommand {
    /// Create a user (prompts for the password without echo, or reads it from stdin).
    Create {
        /// Login name: 1-64 of A-Z a-z 0-9 . _ -
        #[arg(long)]
        username: String,
        /// Role of the new user.
        #[arg(long, default_value = "admin", value_parser = ["admin", "editor", "listener"])]
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
    /// Make a new app password for Subsonic apps (replaces the old one) and print it once.
    AppPassword {
        /// Whose app password.
        #[arg(long)]
        username: String,
        /// Print `{"username": …, "app_password": …}` instead of the bare password.
        #[arg(long)]
        json: bool,
    },
    /// List users.
    List {
        /// Print a JSON array (the API's user objects) instead of a table.
        #[arg(long)]
        json: bool,
    },
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

pub(super) fn admin(cfg: &config::Config, cmd: AdminCommand) -> Result<(), CliError> {
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
        AdminCommand::AppPassword { username, json } => {
            let db = open_db(cfg)?;
            let sealer = accounts::app_password::Sealer::load_or_create(&cfg.data_dir)?;
            let (user, password) = db.with(|c| {
                let (user, _) =
                    store::find_login(c, &username)?.ok_or(AccountsError::NotFound("user"))?;
                accounts::app_password::issue(c, &sealer, &user.id, now)
            })?;
            if json {
                return print_json(&serde_json::json!({
                    "username": user.username,
                    "app_password": password,
                }));
            }
            println!("{password}");
            eprintln!(
                "app password for {} (shown once; it replaces any earlier one)",
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
