//! Build identity, shown by `--version`, `/healthz`, the start-up line and `veza_build_info`.

/// Crate version.
pub const VERSION: &str = env!("CARGO_PKG_VERSION");
/// Git commit the binary was built from (`unknown` outside a checkout).
pub const COMMIT: &str = env!("BUILD_GIT_COMMIT");
/// `0.1.0 (abc123def456)`, for `--version`.
pub const LONG: &str = concat!(
    env!("CARGO_PKG_VERSION"),
    " (",
    env!("BUILD_GIT_COMMIT"),
    ")"
);
