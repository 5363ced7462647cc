//! Configuration: figment layers (defaults → TOML file → `CDN_*` aliases → `VEZA_*` env),
//! extracted into [`RawConfig`], then parsed into the typed [`Config`] the rest of Veza uses.
//!
//! Every key name here is a public interface (docs/ENV_VARIABLES.md, the .deb's veza.toml,
//! ops runbooks). Unknown keys are errors: a typo must never be ignored silently.

//!
//! Files: `raw` (the file/env shape and defaults), `model` (the typed values), `load` (figment
//! layers and value sources), `validate` (one `validate_<section>` per section).

use std::path::PathBuf;

mod load;
mod model;
mod raw;
mod validate;

pub use load::{
    FileLayer, effective_toml, figment, from_figment, from_toml_str, load, masked_toml,
    masked_toml_str,
};
pub use model::*;
pub use raw::RawConfig;

/// The file read when `--config` is not given (skipped when absent).
pub const DEFAULT_CONFIG_FILE: &str = "/etc/veza/veza.toml";

/// Seed-era environment names still honoured; a `VEZA_` variable wins over its alias.
pub const CDN_ALIASES: [(&str, &str); 4] = [
    ("CDN_ENABLED", "cdn.enabled"),
    ("CDN_PROVIDER", "cdn.provider"),
    ("CDN_BASE_URL", "cdn.base_url"),
    ("CDN_SECURITY_KEY", "cdn.security_key"),
];

/// Keys whose values are secrets: masked in `config check`, `Debug` and logs.
pub const SECRET_KEYS: [&str; 7] = [
    "storage.s3.secret_access_key",
    "storage.s3.session_token",
    "cdn.security_key",
    "cdn.bunny.api_key",
    "cdn.bunny.origin_secret",
    "cdn.local.key",
    "cdn.local.previous_key",
];

/// Shortest `cdn.bunny.origin_secret` accepted.
pub const MIN_ORIGIN_SECRET_CHARS: usize = 16;

/// Placeholders allowed in `cdn.nginx.expression`.
pub const NGINX_PLACEHOLDERS: [&str; 4] = ["{expires}", "{uri}", "{remote_addr}", "{secret}"];

/// A configuration problem: which key, where its value came from, and what is wrong.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// `--config FILE` names a file that cannot be read.
    #[error("--config {path}: {reason}")]
    File { path: PathBuf, reason: String },
    /// A value that does not fit the key (type, range, syntax, unknown key).
    #[error("{key} ({source_desc}): {problem}")]
    Invalid {
        key: String,
        source_desc: String,
        problem: String,
    },
}
