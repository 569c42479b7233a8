//! The admin API's OpenAPI document, checked by tools someone else wrote:
//! a live gateway serves `/admin/openapi.json`; `openapi-spec-validator`
//! validates it as OpenAPI 3.1, and every operation's live answers are
//! checked against its response schemas with `jsonschema`
//! (`tests/openapi/check_live.py`). The Python tools are installed, pinned,
//! by `scripts/ensure-python-tools.sh` (which `scripts/test.sh` runs first):
//! this test runs it too, and never skips.

// tests may panic
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use std::path::Path;
use std::process::Command;
use std::time::Duration;

use support::process::{printed, run_bounded};
use support::{gateway, ADMIN_TOKEN};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_live_admin_api_matches_its_openapi_document() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let ensure = root.join("../../scripts/ensure-python-tools.sh");
    let out = tokio::task::spawn_blocking(move || {
        run_bounded(Command::new("bash").arg(ensure), Duration::from_secs(300))
    })
    .await
    .unwrap();
    assert!(
        out.status.success(),
        "ensure-python-tools.sh failed:\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let stdout = String::from_utf8(out.stdout).unwrap();
    let python = stdout.lines().last().unwrap().trim().to_owned();

    let (_up, gw) = gateway(|b| b).await;
    let script = root.join("tests/openapi/check_live.py");
    let base = gw.url("");
    let out = tokio::task::spawn_blocking(move || {
        run_bounded(
            Command::new(&python).arg(script).arg(base).arg(ADMIN_TOKEN),
            Duration::from_secs(120),
        )
    })
    .await
    .unwrap();
    let report = printed(&out);
    assert!(out.status.success(), "the checker failed:\n{report}");
    assert!(
        report.contains("the document is valid OpenAPI 3.1.0"),
        "{report}"
    );
    assert!(report.contains(" passed, 0 failed"), "{report}");
}
