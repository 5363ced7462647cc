//! `veza jobs …`: inspect and retry background jobs.

use clap::Subcommand;

use super::error::CliError;
use super::open_db;
use super::output::{print_json, print_table, rfc3339};
use crate::config;

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

/// `veza jobs list|retry`. A retried job runs when the server's workers next poll (within a
/// second); this command never runs jobs itself.
pub(super) fn jobs(cfg: &config::Config, cmd: JobsCommand) -> Result<(), CliError> {
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
