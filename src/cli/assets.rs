//! `veza generate-assets DIR` (hidden): writes the man page (`veza.1`, the top-level page with
//! every subcommand listed) and bash, zsh and fish completions from the clap definitions, for the .deb.
//! A subcommand rather than a build script: the files describe the exact binary packaged, and
//! the normal build neither runs nor depends on it.

use std::path::Path;

use clap::CommandFactory;

use super::Cli;

/// Writes `veza.1`, `veza.bash`, `_veza` (zsh) and `veza.fish` into `dir`.
pub fn generate(dir: &Path) -> std::io::Result<()> {
    std::fs::create_dir_all(dir)?;
    let cmd = Cli::command();
    let mut page = Vec::new();
    // The page lists every subcommand with its summary; `veza help CMD` has the flags.
    clap_mangen::Man::new(cmd).render(&mut page)?;
    std::fs::write(dir.join("veza.1"), page)?;
    use clap_complete::Shell;
    for (shell, name) in [
        (Shell::Bash, "veza.bash"),
        (Shell::Zsh, "_veza"),
        (Shell::Fish, "veza.fish"),
    ] {
        let mut out = Vec::new();
        clap_complete::generate(shell, &mut Cli::command(), "veza", &mut out);
        std::fs::write(dir.join(name), out)?;
    }
    Ok(())
}
