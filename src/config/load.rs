//! Loading: the figment layers and where each value came from.

use std::path::{Path, PathBuf};

use figment::providers::{Env, Format, Serialized, Toml};
use figment::value::{Dict, Map, Value};
use figment::{Figment, Metadata, Profile, Provider};

use super::raw::RawConfig;
use super::validate::validate;
use super::{CDN_ALIASES, Config, ConfigError, DEFAULT_CONFIG_FILE};

/// Which file layer to use.
#[derive(Debug, Clone)]
pub enum FileLayer {
    /// `/etc/veza/veza.toml` if it exists.
    Default,
    /// `--config FILE`: must exist.
    Explicit(PathBuf),
    /// No file (tests).
    None,
}

/// Builds the layered figment: defaults → file → `CDN_*` aliases → `VEZA_*` env.
pub fn figment(file: &FileLayer) -> Result<Figment, ConfigError> {
    let mut fig = Figment::from(Serialized::defaults(RawConfig::default()));
    match file {
        FileLayer::Default => {
            if Path::new(DEFAULT_CONFIG_FILE).exists() {
                fig = fig.merge(Toml::file_exact(DEFAULT_CONFIG_FILE));
            }
        }
        FileLayer::Explicit(path) => {
            if let Err(e) = std::fs::File::open(path) {
                return Err(ConfigError::File {
                    path: path.clone(),
                    reason: e.to_string(),
                });
            }
            fig = fig.merge(Toml::file_exact(path));
        }
        FileLayer::None => {}
    }
    Ok(fig
        .merge(CdnAliases)
        .merge(Env::prefixed("VEZA_").split("__")))
}

/// Loads and validates the configuration from the standard layers.
pub fn load(file: &FileLayer) -> Result<Config, ConfigError> {
    from_figment(&figment(file)?)
}

/// Defaults plus one TOML document, no file or env (tests and tools).
pub fn from_toml_str(toml: &str) -> Result<Config, ConfigError> {
    from_figment(
        &Figment::from(Serialized::defaults(RawConfig::default())).merge(Toml::string(toml)),
    )
}

/// [`masked_toml`] of a configuration made by [`from_toml_str`] from `toml`.
pub fn masked_toml_str(cfg: &Config, toml: &str) -> Result<String, ConfigError> {
    masked_toml(
        cfg,
        &Figment::from(Serialized::defaults(RawConfig::default())).merge(Toml::string(toml)),
    )
}

/// Extracts and validates; errors name the key and where its value came from.
pub fn from_figment(fig: &Figment) -> Result<Config, ConfigError> {
    let raw: RawConfig = fig.extract().map_err(|e| figment_error(fig, e))?;
    validate(fig, &raw)
}

/// The effective configuration as TOML with every set secret shown as `"****"` (unset: `""`).
pub fn masked_toml(cfg: &Config, fig: &Figment) -> Result<String, ConfigError> {
    effective_toml(cfg, fig, true)
}

/// The effective configuration as TOML; secrets as `"****"` when `mask` (`veza backup
/// --with-secrets` keeps them).
pub fn effective_toml(cfg: &Config, fig: &Figment, mask: bool) -> Result<String, ConfigError> {
    let mut raw: RawConfig = fig.extract().map_err(|e| figment_error(fig, e))?;
    raw.storage.local.root = cfg.storage.local_root.display().to_string();
    for s in [
        &mut raw.storage.s3.secret_access_key,
        &mut raw.storage.s3.session_token,
        &mut raw.cdn.security_key,
        &mut raw.cdn.bunny.api_key,
        &mut raw.cdn.bunny.origin_secret,
        &mut raw.cdn.local.key,
        &mut raw.cdn.local.previous_key,
    ] {
        // `""` says "unset" apart from `"****"` (set): both matter when debugging a CDN.
        if mask && !s.is_empty() {
            *s = "****".into();
        }
    }
    toml::to_string(&raw).map_err(|e| ConfigError::Invalid {
        key: "(all)".into(),
        source_desc: "serialiser".into(),
        problem: e.to_string(),
    })
}

fn figment_error(fig: &Figment, e: figment::Error) -> ConfigError {
    // Report the first problem only: one clear line beats a wall of follow-on errors.
    let e = e
        .into_iter()
        .next()
        .expect("a figment error holds at least one error");
    let mut key = e.path.join(".");
    let problem = match &e.kind {
        figment::error::Kind::UnknownField(field, _) => {
            // figment's path usually ends with the unknown field already.
            if e.path.last() != Some(field) {
                key = if key.is_empty() {
                    field.clone()
                } else {
                    format!("{key}.{field}")
                };
            }
            "unknown key (check the spelling; see docs/ENV_VARIABLES.md)".to_owned()
        }
        kind => kind.to_string(),
    };
    let source_desc = match &e.metadata {
        Some(md) => describe_source(md, &key),
        None => describe_key_source(fig, &key),
    };
    ConfigError::Invalid {
        key: if key.is_empty() { "(root)".into() } else { key },
        source_desc,
        problem,
    }
}

pub(super) fn describe_key_source(fig: &Figment, key: &str) -> String {
    match fig.find_metadata(key) {
        Some(md) => describe_source(md, key),
        None => "default".into(),
    }
}

fn describe_source(md: &Metadata, key: &str) -> String {
    if let Some(path) = md.source.as_ref().and_then(|s| s.file_path()) {
        return format!("file {}", path.display());
    }
    if md.name.contains("VEZA_") {
        return format!("env VEZA_{}", key.replace('.', "__").to_ascii_uppercase());
    }
    if md.name == ALIAS_PROVIDER_NAME {
        let alias = CDN_ALIASES.iter().find(|(_, k)| *k == key).map(|(a, _)| *a);
        return format!("env {}", alias.unwrap_or("CDN_*"));
    }
    // Built-in defaults are the only layer provided from code.
    if matches!(md.source, Some(figment::Source::Code(_))) {
        return "default".into();
    }
    md.name.to_string()
}

const ALIAS_PROVIDER_NAME: &str = "seed CDN_* environment alias";

/// Reads `CDN_ENABLED`, `CDN_PROVIDER`, `CDN_BASE_URL`, `CDN_SECURITY_KEY` into their keys.
struct CdnAliases;

impl Provider for CdnAliases {
    fn metadata(&self) -> Metadata {
        Metadata::named(ALIAS_PROVIDER_NAME)
    }

    fn data(&self) -> Result<Map<Profile, Dict>, figment::Error> {
        let mut cdn = Dict::new();
        for (var, key) in CDN_ALIASES {
            if let Ok(v) = std::env::var(var) {
                let field = key.trim_start_matches("cdn.");
                // Same lenient parsing as figment's Env: "true" is a bool, text stays text.
                let value: Value = if field == "enabled" {
                    v.parse().expect("infallible")
                } else {
                    Value::from(v)
                };
                cdn.insert(field.into(), value);
            }
        }
        let mut root = Dict::new();
        if !cdn.is_empty() {
            root.insert("cdn".into(), Value::from(cdn));
        }
        Ok(Profile::Default.collect(root))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::CdnProvider;

    #[test]
    fn defaults_parse_without_any_file() {
        let c = from_toml_str("").unwrap();
        assert_eq!(c.server.listen.to_string(), "127.0.0.1:8080");
        assert_eq!(c.storage.local_root, PathBuf::from("./veza-data/blobs"));
        assert!(!c.cdn.enabled);
        assert_eq!(c.cdn.fallback, vec![CdnProvider::S3, CdnProvider::Local]);
        assert_eq!(c.hls.ladder_kbps, vec![64, 128, 256]);
    }

    #[test]
    fn unknown_key_is_named() {
        let e = from_toml_str("[server]\nlisten_addr = \"x\"").unwrap_err();
        assert!(e.to_string().starts_with("server.listen_addr"), "{e}");
    }

    #[test]
    fn secret_debug_is_masked() {
        let c = from_toml_str("[cdn]\nsecurity_key = \"hunter2\"").unwrap();
        assert!(!format!("{c:?}").contains("hunter2"));
    }

    #[test]
    fn numeric_looking_secret_stays_text() {
        let c = from_toml_str("[cdn]\nsecurity_key = 1234").unwrap();
        assert_eq!(c.cdn.security_key.expose(), "1234");
    }

    #[test]
    fn local_keys_are_masked() {
        let key = "k".repeat(40);
        let toml = format!("[cdn.local]\nkey = \"{key}\"\nprevious_key = \"{key}\"");
        let fig =
            Figment::from(Serialized::defaults(RawConfig::default())).merge(Toml::string(&toml));
        let c = from_figment(&fig).unwrap();
        assert_eq!(c.cdn.local.key.expose(), key);
        assert!(!masked_toml(&c, &fig).unwrap().contains(&key));
    }
}
