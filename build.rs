//! Re-embed migrations when a new `V__` file lands, stamp the git commit, and bundle the
//! dashboard (static/ → target/dashboard, embedded by rust-embed) with npm and esbuild.
use std::path::Path;
use std::process::{Command, exit};

/// Where the bundle goes; `src/http/dashboard.rs` embeds this folder.
const DASHBOARD_OUT: &str = "target/dashboard";

fn main() {
    println!("cargo:rerun-if-changed=migrations");
    println!("cargo:rerun-if-changed=.git/HEAD");
    let commit = Command::new("git")
        .args(["rev-parse", "--short=12", "HEAD"])
        .output()
        .ok()
        .filter(|o| o.status.success())
        .and_then(|o| String::from_utf8(o.stdout).ok())
        .map(|s| s.trim().to_owned())
        .filter(|s| !s.is_empty())
        .unwrap_or_else(|| "unknown".to_owned());
    println!("cargo:rustc-env=BUILD_GIT_COMMIT={commit}");
    dashboard();
}

/// `npm ci` when node_modules is missing or older than the lockfile, then esbuild. Cargo reruns
/// this only when a source, the lockfile or the bundle's manifest changed, so an unchanged
/// tree costs nothing.
fn dashboard() {
    for p in [
        "static/src",
        "static/build.mjs",
        "static/page.html",
        "package.json",
        "package-lock.json",
    ] {
        println!("cargo:rerun-if-changed={p}");
    }
    // A deleted bundle (cargo clean, a fresh clone) makes cargo rerun this.
    println!("cargo:rerun-if-changed={DASHBOARD_OUT}/manifest.json");
    for tool in ["node", "npm"] {
        let found = Command::new(tool)
            .arg("--version")
            .output()
            .is_ok_and(|o| o.status.success());
        if !found {
            fail(&format!(
                "the dashboard build needs Node.js 18+ and npm on PATH ({tool} not found): install them, e.g. `apt-get install nodejs npm`"
            ));
        }
    }
    let lock = std::fs::read("package-lock.json").unwrap_or_default();
    // npm ci wipes node_modules, so a copy of the lockfile inside it says what was installed.
    let stamp = Path::new("node_modules/.veza-package-lock.json");
    if std::fs::read(stamp).ok().as_deref() != Some(lock.as_slice()) {
        run(
            Command::new("npm").args(["ci", "--no-audit", "--no-fund", "--loglevel=error"]),
            "npm ci",
        );
        if let Err(e) = std::fs::write(stamp, &lock) {
            fail(&format!("cannot write {}: {e}", stamp.display()));
        }
    }
    run(
        Command::new("node").args(["static/build.mjs", DASHBOARD_OUT]),
        "the dashboard bundle (node static/build.mjs)",
    );
}

fn run(cmd: &mut Command, what: &str) {
    match cmd.status() {
        Ok(s) if s.success() => {}
        Ok(s) => fail(&format!("{what} failed ({s}); see its output above")),
        Err(e) => fail(&format!("{what} could not start: {e}")),
    }
}

/// One clear line, then stop the build.
fn fail(msg: &str) -> ! {
    eprintln!("error: {msg}");
    exit(1);
}
