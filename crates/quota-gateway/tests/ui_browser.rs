//! The operator's page (`/admin/ui/`) in a real headless Chromium, as a
//! person uses it: a gateway in process with a few accounts and real
//! refused traffic (429s by the minute, daily and tier-wide limits, a 402,
//! 401s with a key nobody has, 404s), then `tests/python/ui_browser.py`
//! drives Debian's Chromium through selenium and chromedriver: a wrong
//! token shows the sign-in error, the right one signs in; the Now page
//! shows its chart and the store's health; a search of the accounts finds
//! the busy account; its page shows its refusals and its recent 429s; its
//! Revoke form revokes a key, and the next request with that key is a 401
//! (checked by the script, and here); the browser's console has no error.
//!
//! Chromium and chromedriver are installed, if missing, by
//! `scripts/ensure-chromium.sh`, and selenium (pinned in
//! `scripts/python-requirements.txt`) by `scripts/ensure-python-tools.sh`:
//! this test runs both (as `scripts/test.sh` does first), and never skips.
//!
//! Screenshots of the Now page, the accounts page and the account page go
//! to `QUOTA_UI_SCREENSHOTS` (a temporary folder unless it is set). The
//! ones in `docs/ui/` are made so, from the repository's root:
//!
//! ```sh
//! QUOTA_UI_SCREENSHOTS=docs/ui cargo test -p quota-gateway --test ui_browser
//! ```

// tests may panic
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use quota_core::account::{AccountAdmin, MemoryAccounts, NewAccount, NewKey};
use quota_core::policy::Money;
use quota_core::Timestamp;
use support::process::{printed, run_bounded};
use support::{early_in_window, setup, Gw, Http, TempDir, Upstream, ADMIN_TOKEN};

/// How long the browser's script may take (its own waits are 15 s each).
const SCRIPT_WITHIN: Duration = Duration::from_secs(120);

/// The time between two rounds of traffic: one bar each in the chart of
/// the last five minutes (5 s a bar).
const ROUND_GAP: Duration = Duration::from_secs(5);

/// How long installing Chromium or the Python tools may take.
const INSTALL_WITHIN: Duration = Duration::from_secs(600);

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

/// Installs Chromium and the Python tools if missing: the venv's python.
fn browser_tools() -> String {
    let chromium = run_bounded(
        Command::new("bash").arg(repo().join("scripts/ensure-chromium.sh")),
        INSTALL_WITHIN,
    );
    assert!(
        chromium.status.success(),
        "scripts/ensure-chromium.sh failed:\n{}",
        String::from_utf8_lossy(&chromium.stderr)
    );
    let python = run_bounded(
        Command::new("bash").arg(repo().join("scripts/ensure-python-tools.sh")),
        INSTALL_WITHIN,
    );
    assert!(
        python.status.success(),
        "scripts/ensure-python-tools.sh failed:\n{}",
        String::from_utf8_lossy(&python.stderr)
    );
    let stdout = String::from_utf8(python.stdout).unwrap();
    stdout.lines().last().unwrap().trim().to_owned()
}

fn now() -> Timestamp {
    let ms = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_millis();
    Timestamp::from_millis(u64::try_from(ms).unwrap())
}

/// An account of the test: its id and its first key.
struct Named {
    id: &'static str,
    key: String,
}

/// Creates `id` on `tier` with $5 of credit.
async fn account(accounts: &MemoryAccounts, id: &'static str, tier: &str) -> Named {
    let key = quota_gateway::ids::new_api_key();
    let new = NewAccount {
        id: id.to_owned(),
        api_key: key.clone(),
        tier: tier.to_owned(),
        credit: Money::from_dollars(5),
    };
    accounts.create(new, now()).await.unwrap();
    Named { id, key }
}

/// Sends `n` POSTs to `/v1/{endpoint}` with `key`: their statuses.
async fn send(http: &Http, gw: &Gw, endpoint: &str, key: &str, n: usize) -> Vec<u16> {
    let mut out = Vec::with_capacity(n);
    for _ in 0..n {
        let a = http
            .post(&gw.url(&format!("/v1/{endpoint}")), Some(key))
            .await;
        out.push(a.status.as_u16());
    }
    out
}

fn count(statuses: &[u16], status: u16) -> usize {
    statuses.iter().filter(|s| **s == status).count()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_operator_finds_the_busy_account_sees_its_refusals_and_revokes_a_key() {
    let python = tokio::task::spawn_blocking(browser_tools).await.unwrap();

    // Three accounts with names an operator would see (the test policy:
    // txt2img 3 a minute on Basic, `once` 1 a day, `paid` $2 a request,
    // 300 a minute over every endpoint on Premium), and a second key of
    // the busy one, named "ci", for the browser to revoke.
    let accounts = MemoryAccounts::new();
    let busy = account(&accounts, "acme-studio", "basic").await;
    let calm = account(&accounts, "orbit-labs", "basic").await;
    let heavy = account(&accounts, "nimbus-ai", "premium").await;
    let ci_key = quota_gateway::ids::new_api_key();
    let ci = accounts
        .add_key(
            busy.id,
            NewKey {
                id: quota_gateway::ids::new_key_id(),
                name: "ci".to_owned(),
                api_key: ci_key.clone(),
            },
            now(),
        )
        .await
        .unwrap();
    let up = Upstream::start().await;
    let gw = setup(&up.url())
        .with(move |b| b.accounts(accounts))
        .start()
        .await;

    // Real traffic in four rounds five seconds apart, the refusals rising
    // (so that the chart of the last five minutes shows a trend), all
    // within one UTC minute (the minute limits count per UTC minute).
    early_in_window(60_000, Duration::from_secs(ROUND_GAP.as_secs() * 3 + 10)).await;
    let http = Http::default();
    let stranger = quota_gateway::ids::new_api_key();
    let mut minute = Vec::new();
    for round in 0..4 {
        if round > 0 {
            tokio::time::sleep(ROUND_GAP).await;
        }
        minute.extend(send(&http, &gw, "txt2img", &busy.key, 2 + round).await);
        let heavy_n = [90, 90, 90, 35][round];
        let tier_wide = send(&http, &gw, "txt2img", &heavy.key, heavy_n).await;
        let refused = if round == 3 { 5 } else { 0 };
        assert_eq!(
            count(&tier_wide, 429),
            refused,
            "round {round}: {tier_wide:?}"
        );
        assert_eq!(send(&http, &gw, "txt2img", &stranger, 1).await, [401]);
        match round {
            0 => assert_eq!(send(&http, &gw, "txt2img", &calm.key, 2).await, [200, 200]),
            1 => assert_eq!(
                send(&http, &gw, "once", &busy.key, 3).await,
                [200, 429, 429],
                "the daily limit"
            ),
            2 => assert_eq!(
                send(&http, &gw, "paid", &busy.key, 3).await,
                [200, 200, 402],
                "out of credit"
            ),
            _ => {
                assert_eq!(send(&http, &gw, "txt2img", &ci_key, 2).await, [429, 429]);
                assert_eq!(send(&http, &gw, "nope", &calm.key, 2).await, [404; 2]);
            }
        }
    }
    assert_eq!(
        (count(&minute, 200), count(&minute, 429)),
        (3, 11),
        "{minute:?}"
    );

    // The operator, in Chromium.
    let scratch = TempDir::new("ui-browser");
    let shots = match std::env::var("QUOTA_UI_SCREENSHOTS") {
        Ok(dir) if !dir.is_empty() => {
            let dir = PathBuf::from(dir);
            // Relative to the repository's root, as the docs give it.
            if dir.is_absolute() {
                dir
            } else {
                repo().join(dir)
            }
        }
        _ => scratch.path().join("screenshots"),
    };
    let script = repo().join("crates/quota-gateway/tests/python/ui_browser.py");
    let mut cmd = Command::new(&python);
    cmd.arg(script)
        .arg(gw.url(""))
        .arg(ADMIN_TOKEN)
        .arg(busy.id)
        .arg(&ci.id)
        .arg(&ci_key)
        .env("QUOTA_UI_SCREENSHOTS", &shots)
        .env("SE_OFFLINE", "true")
        .env("PYTHONDONTWRITEBYTECODE", "1");
    let out = tokio::task::spawn_blocking(move || run_bounded(&mut cmd, SCRIPT_WITHIN))
        .await
        .unwrap();
    let report = printed(&out);
    assert!(
        out.status.success(),
        "the browser's script failed:\n{report}"
    );
    assert!(report.contains("all steps passed"), "{report}");
    // Shown with --nocapture.
    println!("{report}");
    assert!(report.contains(&format!("revoked {}", ci.id)), "{report}");

    // The revoked key is refused; the account's other key still works.
    let revoked = http.post(&gw.url("/v1/txt2img"), Some(&ci_key)).await;
    assert_eq!(revoked.status, 401);
    let other = http.post(&gw.url("/v1/once"), Some(&calm.key)).await;
    assert_eq!(other.status, 200);
    let still = http.post(&gw.url("/v1/paid"), Some(&busy.key)).await;
    assert_eq!(
        still.status, 402,
        "the busy account's first key still resolves"
    );
    for name in ["now", "accounts", "account"] {
        let png = shots.join(format!("{name}.png"));
        let bytes = std::fs::metadata(&png)
            .unwrap_or_else(|e| panic!("{}: {e}\n{report}", png.display()))
            .len();
        assert!(bytes > 1000, "{} is {bytes} bytes", png.display());
    }
}
