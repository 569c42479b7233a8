//! Demo traffic: once a `--demo` gateway listens, a modest stream of real
//! requests through it, so that the operator's page (`/admin/ui/`) opens
//! on something to look at: admitted requests, refusals by the minute
//! limit and by the payment tier's tier-wide limit (and, after a quarter
//! of an hour, by the daily limit), a few 401s with a key nobody has, a
//! few 404s for an endpoint the policy does not know.
//!
//! What is sent is a pure schedule ([`shots`]): second `t` after the
//! start gives the requests of that second. For the first
//! [`WARM_UP_SECS`] seconds about ten requests a second, then about one
//! every two seconds until the gateway stops. Requests go one at a time
//! (never more than one in flight), each bounded by [`REQUEST_TIMEOUT`];
//! the traffic stops when its shutdown future completes or when the
//! [`DemoTraffic`] is dropped.
//!
//! The accounts it sends with: three of its own (`demo-busy-…` and
//! `demo-steady-…` on the signup tier, `demo-heavy-…` on the payment tier)
//! and the demo's payment-tier account, only ever within its limits. The
//! demo's signup-tier account, whose `curl` lines the banner prints, is
//! left alone: its first three `txt2img` requests of a minute are admitted
//! and the fourth is a 429, as the banner says.
//!
//! The gateway must serve plain HTTP: over TLS ([`Gateway::tls`]) no traffic
//! is sent (the demo's client does not speak TLS), and a log line says so.

use std::collections::BTreeMap;
use std::future::Future;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use http::{header, Method, Request};
use http_body_util::{BodyExt, Full};
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;
use tokio::task::JoinHandle;

use super::{create_account, DemoAccount};
use crate::error::Error;
use crate::ids::new_api_key;
use crate::Gateway;

/// How long the busy start lasts, in seconds: about ten requests a second
/// until then, about one every two seconds after.
pub const WARM_UP_SECS: u64 = 120;

/// How long one demo request may take before it is given up.
pub const REQUEST_TIMEOUT: Duration = Duration::from_secs(5);

/// Who sends a request of the schedule.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum Sender {
    /// A signup-tier account that asks for `txt2img` more often than its
    /// minute limit allows (refused by the minute limit).
    Busy,
    /// A signup-tier account asking for `txt2video` a few times a minute:
    /// one admitted a minute, the rest refused by the minute limit, and by
    /// the daily limit once its day's budget is spent.
    Steady,
    /// A payment-tier account sending more than its tier-wide budget of a
    /// minute during the warm-up (refused by the tier-wide limit).
    Heavy,
    /// The demo's own payment-tier account, well within its limits; also
    /// asks for an endpoint the policy does not know (404).
    Light,
    /// A key nobody has (401).
    Stranger,
}

/// One request of the schedule: who sends it, to which `/v1/` path.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Shot {
    /// Whose key it carries.
    pub from: Sender,
    /// The path after `/v1/`.
    pub endpoint: &'static str,
}

/// An endpoint the policy does not know: a 404.
pub const UNKNOWN_ENDPOINT: &str = "no-such-endpoint";

/// What the light account asks for, in turn.
const LIGHT_ENDPOINTS: [&str; 4] = ["txt2img", "img2txt", "txt2embedding", "transcribe"];

/// The requests of second `t` after the start, in the order to send them.
///
/// During the warm-up ([`WARM_UP_SECS`]): at `t = 0` a burst of five
/// `txt2img` from the busy account (three admitted, then the minute
/// limit), then every second one more from it, two from the light
/// account and six from the heavy one (360 a minute against a tier-wide
/// 300); every ten seconds one `txt2video` from the steady account; a
/// stranger's key every seven seconds; an unknown endpoint every thirteen.
/// After it, every five seconds one request from the busy and the light
/// account, every twenty one from the steady account, every thirty a
/// stranger, every sixty an unknown endpoint.
pub fn shots(t: u64) -> Vec<Shot> {
    let shot = |from, endpoint| Shot { from, endpoint };
    let light = LIGHT_ENDPOINTS[(t % LIGHT_ENDPOINTS.len() as u64) as usize];
    let mut out = Vec::new();
    if t < WARM_UP_SECS {
        let burst = if t == 0 { 5 } else { 1 };
        out.extend((0..burst).map(|_| shot(Sender::Busy, "txt2img")));
        out.extend([shot(Sender::Light, light), shot(Sender::Light, "img2txt")]);
        out.extend((0..6).map(|_| shot(Sender::Heavy, "img-upscale")));
        if t % 10 == 0 {
            out.push(shot(Sender::Steady, "txt2video"));
        }
        if t % 7 == 3 {
            out.push(shot(Sender::Stranger, "txt2img"));
        }
        if t % 13 == 5 {
            out.push(shot(Sender::Light, UNKNOWN_ENDPOINT));
        }
    } else {
        if t % 5 == 0 {
            out.extend([shot(Sender::Busy, "txt2img"), shot(Sender::Light, light)]);
        }
        if t % 20 == 0 {
            out.push(shot(Sender::Steady, "txt2video"));
        }
        if t % 30 == 0 {
            out.push(shot(Sender::Stranger, "txt2img"));
        }
        if t % 60 == 0 {
            out.push(shot(Sender::Light, UNKNOWN_ENDPOINT));
        }
    }
    out
}

/// The demo traffic, running until its shutdown future completes or it
/// is dropped.
pub struct DemoTraffic {
    task: Option<JoinHandle<()>>,
    accounts: Vec<DemoAccount>,
    statuses: Arc<Mutex<BTreeMap<u16, u64>>>,
}

impl std::fmt::Debug for DemoTraffic {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DemoTraffic")
            .field("running", &self.task.is_some())
            .field("statuses", &self.statuses())
            .finish_non_exhaustive()
    }
}

impl DemoTraffic {
    /// Creates the traffic's own accounts in `gateway` and starts sending
    /// the schedule to `listen` (where `gateway` serves; an unspecified
    /// address means its loopback), with the keys of the accounts it
    /// creates and of the payment-tier account among `shown` (the demo's
    /// accounts, from [`create_accounts`](super::create_accounts)), until
    /// `shutdown` completes. Call it inside a tokio runtime, once the
    /// gateway's listener is bound.
    ///
    /// # Errors
    /// [`Error::Setup`] when an account cannot be created.
    pub async fn start(
        gateway: &Gateway,
        listen: SocketAddr,
        shown: &[DemoAccount],
        shutdown: impl Future<Output = ()> + Send + 'static,
    ) -> Result<Self, Error> {
        let statuses = Arc::new(Mutex::new(BTreeMap::new()));
        if gateway.tls().is_some() {
            tracing::info!(
                "demo traffic: off (the gateway serves TLS; the demo's client does not)"
            );
            return Ok(DemoTraffic {
                task: None,
                accounts: Vec::new(),
                statuses,
            });
        }
        let accounts = vec![
            create_account(gateway, "busy", false).await?,
            create_account(gateway, "steady", false).await?,
            create_account(gateway, "heavy", true).await?,
        ];
        let payment = gateway
            .shared()
            .policy
            .load()
            .payment_tier()
            .map(|t| t.name().to_owned());
        let light = shown
            .iter()
            .find(|a| Some(&a.tier) == payment.as_ref())
            .unwrap_or(&accounts[2]);
        let keys = Keys {
            busy: accounts[0].key.clone(),
            steady: accounts[1].key.clone(),
            heavy: accounts[2].key.clone(),
            light: light.key.clone(),
            stranger: new_api_key(),
        };
        let base = format!("http://{}", reachable(listen));
        let send = Arc::clone(&statuses);
        let task = tokio::spawn(async move {
            tokio::select! {
                () = run(base, keys, send) => {}
                () = shutdown => {}
            }
        });
        tracing::info!(
            accounts = %accounts.iter().map(|a| a.id.as_str()).collect::<Vec<_>>().join(", "),
            "demo traffic started"
        );
        Ok(DemoTraffic {
            task: Some(task),
            accounts,
            statuses,
        })
    }

    /// The accounts the traffic created (busy, steady, heavy); none when
    /// it is off.
    pub fn accounts(&self) -> &[DemoAccount] {
        &self.accounts
    }

    /// How many answers of each status it has had so far (requests that
    /// failed or timed out are not counted).
    pub fn statuses(&self) -> BTreeMap<u16, u64> {
        self.statuses.lock().map(|s| s.clone()).unwrap_or_default()
    }

    /// Whether it sends requests (not over TLS).
    pub fn is_on(&self) -> bool {
        self.task.is_some()
    }

    /// The demo banner's line about the traffic (empty when it is off).
    pub fn banner(&self) -> String {
        if self.accounts.is_empty() {
            return String::new();
        }
        let ids: Vec<&str> = self.accounts.iter().map(|a| a.id.as_str()).collect();
        format!(
            "Demo traffic, some of it refused, comes from {} (and the premium account).\n",
            ids.join(", ")
        )
    }
}

impl Drop for DemoTraffic {
    fn drop(&mut self) {
        if let Some(task) = self.task.take() {
            task.abort();
        }
    }
}

/// The keys of each [`Sender`].
struct Keys {
    busy: String,
    steady: String,
    heavy: String,
    light: String,
    stranger: String,
}

impl Keys {
    fn of(&self, from: Sender) -> &str {
        match from {
            Sender::Busy => &self.busy,
            Sender::Steady => &self.steady,
            Sender::Heavy => &self.heavy,
            Sender::Light => &self.light,
            Sender::Stranger => &self.stranger,
        }
    }
}

/// Where a client reaches a listener bound to `listen`: its own address,
/// or the loopback when it is unspecified (`0.0.0.0`, `::`).
fn reachable(listen: SocketAddr) -> SocketAddr {
    match listen.ip() {
        IpAddr::V4(ip) if ip.is_unspecified() => (Ipv4Addr::LOCALHOST, listen.port()).into(),
        IpAddr::V6(ip) if ip.is_unspecified() => (Ipv6Addr::LOCALHOST, listen.port()).into(),
        _ => listen,
    }
}

/// Sends the schedule, one second after another, for ever.
async fn run(base: String, keys: Keys, statuses: Arc<Mutex<BTreeMap<u16, u64>>>) {
    let client: Client<HttpConnector, Full<Bytes>> =
        Client::builder(TokioExecutor::new()).build_http();
    let mut tick = tokio::time::interval(Duration::from_secs(1));
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    for t in 0u64.. {
        tick.tick().await;
        for shot in shots(t) {
            let request = Request::builder()
                .method(Method::POST)
                .uri(format!("{base}/v1/{}", shot.endpoint))
                .header(
                    header::AUTHORIZATION,
                    format!("Bearer {}", keys.of(shot.from)),
                )
                .body(Full::new(Bytes::new()));
            let Ok(request) = request else {
                continue;
            };
            let answer = tokio::time::timeout(REQUEST_TIMEOUT, async {
                let response = client.request(request).await.ok()?;
                let status = response.status().as_u16();
                // Read the body so that the connection is reused.
                let _ = response.into_body().collect().await;
                Some(status)
            })
            .await;
            if let Ok(Some(status)) = answer {
                if let Ok(mut s) = statuses.lock() {
                    *s.entry(status).or_default() += 1;
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    // tests may panic
    #![allow(clippy::unwrap_used, clippy::expect_used)]

    use super::*;

    fn count(from: std::ops::Range<u64>, who: Sender) -> usize {
        from.flat_map(shots).filter(|s| s.from == who).count()
    }

    #[test]
    fn the_busy_account_asks_for_more_than_its_minute_allows_from_the_first_second() {
        let first: Vec<Shot> = shots(0);
        let busy = first.iter().filter(|s| s.from == Sender::Busy).count();
        assert!(busy > 3, "the seed's Basic tier allows 3 txt2img a minute");
        assert!(
            count(0..60, Sender::Busy) > 3
                && count(WARM_UP_SECS..WARM_UP_SECS + 60, Sender::Busy) > 3
        );
    }

    #[test]
    fn the_heavy_account_goes_over_the_payment_tiers_minute_during_the_warm_up() {
        assert!(count(0..60, Sender::Heavy) > 300);
        assert_eq!(count(WARM_UP_SECS..WARM_UP_SECS + 3600, Sender::Heavy), 0);
    }

    #[test]
    fn the_light_account_stays_well_within_its_limits() {
        assert!(count(0..60, Sender::Light) < 200);
    }

    #[test]
    fn strangers_and_unknown_endpoints_come_early_and_keep_coming() {
        let early: Vec<Shot> = (0..10).flat_map(shots).collect();
        assert!(early.iter().any(|s| s.from == Sender::Stranger));
        assert!(early.iter().any(|s| s.endpoint == UNKNOWN_ENDPOINT));
        let late: Vec<Shot> = (1000..1060).flat_map(shots).collect();
        assert!(late.iter().any(|s| s.from == Sender::Stranger));
        assert!(late.iter().any(|s| s.endpoint == UNKNOWN_ENDPOINT));
    }

    #[test]
    fn the_rate_is_modest_then_low() {
        let warm: usize = (0..WARM_UP_SECS).map(|t| shots(t).len()).sum();
        assert!(warm <= 12 * WARM_UP_SECS as usize, "{warm}");
        let later: usize = (WARM_UP_SECS..WARM_UP_SECS + 600)
            .map(|t| shots(t).len())
            .sum();
        assert!(later <= 600, "{later} requests in ten minutes");
    }

    #[test]
    fn an_unspecified_listen_address_is_reached_on_the_loopback() {
        let any: SocketAddr = "0.0.0.0:8080".parse().unwrap();
        assert_eq!(reachable(any), "127.0.0.1:8080".parse().unwrap());
        let v6: SocketAddr = "[::]:8080".parse().unwrap();
        assert_eq!(reachable(v6), "[::1]:8080".parse().unwrap());
        let own: SocketAddr = "127.0.0.2:9".parse().unwrap();
        assert_eq!(reachable(own), own);
    }
}
