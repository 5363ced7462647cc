//! Documentation that must not drift from the code.

/// Every leaf key of the configuration, dotted.
fn config_keys() -> Vec<String> {
    let value = toml::Value::try_from(veza::config::RawConfig::default()).unwrap();
    let mut out = Vec::new();
    walk("", &value, &mut out);
    out
}

fn walk(prefix: &str, v: &toml::Value, out: &mut Vec<String>) {
    match v {
        toml::Value::Table(t) => {
            for (k, v) in t {
                let key = if prefix.is_empty() {
                    k.clone()
                } else {
                    format!("{prefix}.{k}")
                };
                walk(&key, v, out);
            }
        }
        _ => out.push(prefix.to_owned()),
    }
}

#[test]
fn every_config_key_is_documented_with_its_env_name() {
    let doc = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/docs/ENV_VARIABLES.md"
    ))
    .unwrap();
    let keys = config_keys();
    assert!(keys.len() > 30, "{keys:?}");
    for key in keys {
        let env = format!("VEZA_{}", key.replace('.', "__").to_ascii_uppercase());
        let row = doc
            .lines()
            .find(|l| l.starts_with(&format!("| `{key}` |")))
            .unwrap_or_else(|| panic!("docs/ENV_VARIABLES.md has no row for `{key}`"));
        assert!(
            row.contains(&format!("`{env}`")),
            "row for {key} lacks {env}"
        );
    }
    for (alias, key) in veza::config::CDN_ALIASES {
        let row = doc
            .lines()
            .find(|l| l.starts_with(&format!("| `{key}` |")))
            .unwrap();
        assert!(
            row.contains(&format!("`{alias}`")),
            "row for {key} lacks alias {alias}"
        );
    }
}
