//! The `veza` binary: parse arguments, run, map errors to one stderr line and an exit code.

use std::process::ExitCode;

use clap::Parser;

fn main() -> ExitCode {
    match veza::cli::run(veza::cli::Cli::parse()) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            // One line on stderr, written before exit so journald always has the reason.
            eprintln!("veza: {e}");
            ExitCode::from(e.exit_code())
        }
    }
}
