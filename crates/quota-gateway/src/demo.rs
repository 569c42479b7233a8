//! `quota serve --demo`: a built-in mock upstream and two demo accounts, so
//! the gateway can be tried with nothing else installed, and demo traffic
//! ([`traffic`]) so that the operator's page has something to show.

pub mod traffic;

use std::convert::Infallible;
use std::net::SocketAddr;

use bytes::Bytes;
use http::{Request, Response, StatusCode};
use http_body_util::BodyExt;
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper_util::rt::{TokioExecutor, TokioIo};
use hyper_util::server::conn::auto;
use quota_core::account::{AccountAdmin, NewAccount};
use quota_core::policy::Money;
use tokio::net::TcpListener;

use crate::admin::SIGNUP_CREDIT;
use crate::error::Error;
use crate::ids::{new_account_id, new_api_key};
use crate::respond::{json, Body};
use crate::shared::now;
use crate::Gateway;

/// Starts the mock upstream on a free loopback port: it answers every
/// request with a small JSON body naming the endpoint, after reading the
/// request body (so uploads work).
pub async fn start_mock_upstream() -> Result<SocketAddr, Error> {
    let listener = TcpListener::bind("127.0.0.1:0").await?;
    let addr = listener.local_addr()?;
    tokio::spawn(async move {
        loop {
            let Ok((stream, _)) = listener.accept().await else {
                continue;
            };
            tokio::spawn(async move {
                let svc = service_fn(|req: Request<Incoming>| async move {
                    Ok::<_, Infallible>(answer(req).await)
                });
                let _ = auto::Builder::new(TokioExecutor::new())
                    .serve_connection(TokioIo::new(stream), svc)
                    .await;
            });
        }
    });
    Ok(addr)
}

async fn answer(req: Request<Incoming>) -> Response<Body> {
    let method = req.method().to_string();
    let path = req.uri().path().to_owned();
    let account = req
        .headers()
        .get("x-quota-account")
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned);
    let mut received = 0u64;
    let mut body = req.into_body();
    while let Some(frame) = body.frame().await {
        match frame {
            Ok(f) => received += f.data_ref().map_or(0, Bytes::len) as u64,
            Err(_) => break,
        }
    }
    let endpoint = path.strip_prefix("/v1/").unwrap_or(&path);
    json(
        StatusCode::OK,
        &serde_json::json!({
            "endpoint": endpoint,
            "method": method,
            "received_bytes": received,
            "account": account,
            "result": format!("demo result for {endpoint}"),
        }),
    )
}

/// A demo account's id and key.
pub struct DemoAccount {
    /// Id.
    pub id: String,
    /// API key.
    pub key: String,
    /// Tier.
    pub tier: String,
}

/// Creates one account on the signup tier and one on the payment tier (a $10 payment).
pub async fn create_accounts(gateway: &Gateway) -> Result<Vec<DemoAccount>, Error> {
    let mut out = vec![create_account(gateway, "basic", false).await?];
    if gateway.shared().policy.load().payment_tier().is_some() {
        out.push(create_account(gateway, "premium", true).await?);
    }
    Ok(out)
}

/// Creates the account `demo-LABEL-XXXXXX` on the signup tier (or the
/// policy's first tier), moved to the payment tier by a $10 payment when
/// `paid` (and the policy has a payment tier).
pub(crate) async fn create_account(
    gateway: &Gateway,
    label: &str,
    paid: bool,
) -> Result<DemoAccount, Error> {
    let shared = gateway.shared();
    let policy = shared.policy.load();
    let Some(tier) = policy
        .signup_tier()
        .or_else(|| policy.tiers().first())
        .map(|t| t.name().to_owned())
    else {
        return Err(Error::Setup("the policy has no tier".into()));
    };
    let paid_tier = policy
        .payment_tier()
        .filter(|_| paid)
        .map(|t| t.name().to_owned());
    let id = format!("demo-{label}-{}", &new_account_id()[5..11]);
    let key = new_api_key();
    let new = NewAccount {
        id: id.clone(),
        api_key: key.clone(),
        tier,
        credit: SIGNUP_CREDIT,
    };
    let mut account = shared
        .accounts
        .create(new, now())
        .await
        .map_err(|e| Error::Setup(format!("demo account: {e}")))?;
    if let Some(t) = paid_tier {
        account = shared
            .accounts
            .record_payment(&id, Money::from_dollars(10), &t)
            .await
            .map_err(|e| Error::Setup(format!("demo payment: {e}")))?;
    }
    Ok(DemoAccount {
        id,
        key,
        tier: account.tier,
    })
}

/// The lines printed for a newcomer (with what the demo traffic sends, if
/// it runs).
pub fn banner(
    gateway: SocketAddr,
    upstream: SocketAddr,
    admin_token: &str,
    accounts: &[DemoAccount],
    traffic: Option<&traffic::DemoTraffic>,
) -> String {
    // `--admin-token NAME=SECRET`: the bearer token is the secret.
    let parsed = crate::admin::tokens::AdminToken::parse(admin_token);
    let admin_token = parsed.secret();
    let base = format!("http://{gateway}");
    let mut s = String::new();
    s.push_str(&format!(
        "\nquota demo: gateway on {base}, mock upstream on http://{upstream}\n\n"
    ));
    for a in accounts {
        s.push_str(&format!(
            "  {:<8} account {:<22} key {}\n",
            a.tier, a.id, a.key
        ));
    }
    s.push_str(&format!("  admin token {admin_token}\n\n"));
    if let Some(basic) = accounts.first() {
        s.push_str(
            "Try (the Basic tier allows 3 txt2img requests a minute; the 4th is a 429):\n\n",
        );
        s.push_str(&format!(
            "  for i in 1 2 3 4; do curl -s -i -X POST {base}/v1/txt2img -H 'Authorization: Bearer {}' | head -n 1; done\n",
            basic.key
        ));
        s.push_str(&format!(
            "  curl -s {base}/v1/limits -H 'Authorization: Bearer {}'\n",
            basic.key
        ));
        s.push_str(&format!(
            "  curl -s -X POST {base}/admin/accounts/{}/payments -H 'Authorization: Bearer {admin_token}' -d '{{\"amount\":\"10.00\"}}'\n",
            basic.id
        ));
        s.push_str(&format!("  curl -s {base}/metrics\n"));
    }
    s.push_str(&format!(
        "\nThe operator's page: {base}/admin/ui/ (sign in with the admin token).\n"
    ));
    if let Some(traffic) = traffic {
        s.push_str(&traffic.banner());
    }
    s.push_str("\nStop with Ctrl-C.\n");
    s
}
