//! Property-based API testing from the OpenAPI document: schemathesis (installed by
//! `.ci/test` into `.ci/cache/venv`) drives every documented operation of the whole document,
//! once with an admin token and once anonymously, and fails on any 5xx or any response that does
//! not match the document.

use std::path::PathBuf;
use std::process::Command;

use veza::accounts::Role;

use crate::helpers::{spawn_app, user_with_token};

fn schemathesis() -> PathBuf {
    let venv = PathBuf::from(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/.ci/cache/venv/bin/schemathesis"
    ));
    if venv.is_file() {
        return venv;
    }
    crate::helpers::require_tool("schemathesis")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn schemathesis_finds_no_5xx_and_no_schema_mismatch() {
    let app = spawn_app().await;
    let (_, admin) = user_with_token(&app, "fuzz-admin", Role::Admin).await;
    run(&app, Some(&admin), 40).await;
    // Anonymous callers reach every operation too (most answer 401): fewer examples suffice.
    run(&app, None, 15).await;
    app.stop().await;
}

/// One schemathesis run over the whole document, with `token` as the bearer when given.
async fn run(app: &crate::helpers::TestApp, token: Option<&str>, examples: u32) {
    let bin = schemathesis();
    let url = app.url("/api/v1/openapi.json");
    let auth: Vec<String> = token
        .map(|t| vec!["--header".into(), format!("Authorization: Bearer {t}")])
        .unwrap_or_default();
    let who = if token.is_some() {
        "admin"
    } else {
        "anonymous"
    };
    let out = tokio::task::spawn_blocking(move || {
        Command::new(bin)
            .args([
                "run",
                &url,
                "--checks",
                "not_a_server_error,response_schema_conformance",
            ])
            .args(&auth)
            .args([
                "--max-examples",
                &examples.to_string(),
                "--no-color",
                "--seed",
                "1",
            ])
            .env("SCHEMATHESIS_HOOKS", "")
            // Its hypothesis database goes to a temp dir, not the checkout.
            .current_dir(std::env::temp_dir())
            .output()
            .unwrap()
    })
    .await
    .unwrap();
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        out.status.success(),
        "schemathesis ({who}) found problems:\n{text}"
    );
    assert!(text.contains("passed") || text.contains("Passed"), "{text}");
}
