//! Property-based API testing from the OpenAPI document: schemathesis (installed by
//! `.ci/test` into `.ci/cache/venv`) drives every documented operation with an admin token and
//! fails on any 5xx or any response that does not match the document.

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
    let bin = schemathesis();
    let app = spawn_app().await;
    let (_, admin) = user_with_token(&app, "fuzz-admin", Role::Admin).await;
    let url = app.url("/api/v1/openapi.json");
    let out = tokio::task::spawn_blocking(move || {
        Command::new(bin)
            .args([
                "run",
                &url,
                "--checks",
                "not_a_server_error,response_schema_conformance",
            ])
            .args(["--header", &format!("Authorization: Bearer {admin}")])
            .args(["--max-examples", "40", "--no-color", "--seed", "1"])
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
    assert!(out.status.success(), "schemathesis found problems:\n{text}");
    assert!(text.contains("passed") || text.contains("Passed"), "{text}");
    app.stop().await;
}
