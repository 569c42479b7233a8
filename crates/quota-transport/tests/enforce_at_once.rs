//! The two ways the layer waits for its store and account source: checks
//! run in place when both promise to answer at once (the memory ones), and
//! in a future of the layer's own otherwise. Both answer every request
//! alike; a backend that breaks its promise fails the step (503), and
//! nothing hangs or is lost.
#![allow(clippy::unwrap_used, clippy::expect_used)] // tests may panic

mod enforce_support;

use std::future::Future;
use std::sync::Arc;

use bytes::Bytes;
use enforce_support::{accounts, policy_with_price, serve, Answer, VirtualClock, T0};
use quota_core::account::{AccountAdmin, Accounts};
use quota_core::policy::{Money, Plan};
use quota_core::{MemoryStore, Outcomes, Receipt, Store, StoreError, Timestamp};
use quota_transport::enforce::EnforceLayer;

/// A store in front of a [`MemoryStore`] that answers as it does, but says
/// `at_once` of itself, and, when `late`, never answers a decision.
struct Promising {
    memory: MemoryStore,
    at_once: bool,
    late: bool,
}

impl Store for Promising {
    fn decide<'a>(
        &'a self,
        plan: &'a Plan<'_>,
        now: Timestamp,
    ) -> impl Future<Output = Result<Outcomes, StoreError>> + Send + 'a {
        let late = self.late;
        async move {
            if late {
                std::future::pending::<()>().await;
            }
            self.memory.decide(plan, now).await
        }
    }

    fn peek<'a>(
        &'a self,
        plan: &'a Plan<'_>,
        now: Timestamp,
    ) -> impl Future<Output = Result<Outcomes, StoreError>> + Send + 'a {
        self.memory.peek(plan, now)
    }

    fn refund<'a>(
        &'a self,
        plan: &'a Plan<'_>,
        receipt: &'a Receipt,
        now: Timestamp,
    ) -> impl Future<Output = Result<(), StoreError>> + Send + 'a {
        self.memory.refund(plan, receipt, now)
    }

    fn answers_at_once(&self) -> bool {
        self.at_once
    }
}

fn promising(at_once: bool, late: bool) -> Arc<Promising> {
    Arc::new(Promising {
        memory: MemoryStore::new(),
        at_once,
        late,
    })
}

/// What a client can tell of an answer: status, headers, body.
fn seen(a: &Answer) -> (u16, Vec<(String, String)>, String) {
    let mut headers: Vec<(String, String)> = a
        .headers
        .iter()
        .filter(|(name, _)| *name != "date")
        .map(|(name, value)| (name.to_string(), value.to_str().unwrap().to_owned()))
        .collect();
    headers.sort();
    (a.status.as_u16(), headers, a.body.clone())
}

#[tokio::test]
async fn both_drivers_answer_every_request_alike() {
    assert!(Store::answers_at_once(&MemoryStore::new()));
    assert!(Accounts::answers_at_once(&accounts().await));
    let mut runs = Vec::new();
    for at_once in [true, false] {
        let clock = VirtualClock::at(T0);
        let accounts = Arc::new(accounts().await);
        let layer = EnforceLayer::new(
            policy_with_price(),
            promising(at_once, false),
            Arc::clone(&accounts),
        )
        .clock(clock.func())
        .ietf_headers(true);
        let server = serve(layer).await;
        let mut answers = Vec::new();
        // Admitted, then refused by the minute limit (txt2video: 1 a
        // minute on Basic), then admitted again a minute later.
        for _ in 0..2 {
            answers.push(seen(&server.call("/v1/txt2video", "k-basic").await));
        }
        clock.advance(60_000);
        answers.push(seen(&server.call("/v1/txt2video", "k-basic").await));
        // Priced: charged twice, then too poor; unknown key; no key;
        // unknown endpoint; a path made canonical; a bad path.
        for _ in 0..3 {
            answers.push(seen(&server.call("/v1/paid", "k-basic").await));
        }
        answers.push(seen(&server.call("/v1/paid", "k-poor").await));
        answers.push(seen(&server.call("/v1/txt2img", "k-nobody").await));
        answers.push(seen(&server.post("/v1/txt2img", &[], Bytes::new()).await));
        answers.push(seen(&server.call("/v1/nowhere", "k-premium").await));
        answers.push(seen(&server.call("/v1/%74xt2img", "k-premium").await));
        answers.push(seen(&server.call("/v1/../admin", "k-premium").await));
        let account = accounts.get("acct-basic").await.unwrap().unwrap();
        runs.push((
            answers,
            account.credit,
            account.requests,
            server.seen.calls(),
        ));
    }
    let (at_once, waiting) = (&runs[0], &runs[1]);
    // The sequence means what it says.
    let statuses: Vec<u16> = at_once.0.iter().map(|a| a.0).collect();
    assert_eq!(
        statuses,
        [200, 429, 200, 200, 200, 402, 402, 401, 401, 404, 200, 400]
    );
    assert_eq!((at_once.1, at_once.2), (Money::from_dollars(1), 2));
    for (i, (a, w)) in at_once.0.iter().zip(&waiting.0).enumerate() {
        assert_eq!(a, w, "answer {i} differs between the drivers");
    }
    assert_eq!(at_once, waiting);
}

#[tokio::test]
async fn a_store_that_breaks_its_promise_fails_the_request_and_gives_the_charge_back() {
    let accounts = Arc::new(accounts().await);
    let layer = EnforceLayer::new(
        policy_with_price(),
        promising(true, true),
        Arc::clone(&accounts),
    )
    .clock(VirtualClock::at(T0).func());
    let server = serve(layer).await;
    // `call` gives up after 10 s: the answer comes at once, not never.
    let a = server.call("/v1/paid", "k-basic").await;
    assert_eq!(a.status, 503, "{}", a.body);
    assert_eq!(
        a.message(),
        "the service is temporarily unavailable; try again later"
    );
    assert_eq!(server.seen.calls(), 0);
    let account = accounts.get("acct-basic").await.unwrap().unwrap();
    assert_eq!(
        (account.credit, account.requests),
        (Money::from_dollars(5), 0)
    );
}

#[tokio::test]
async fn the_same_store_without_the_promise_is_waited_for() {
    // Without the promise, the same late store is waited for: the request
    // is still pending when the client gives up.
    let accounts = Arc::new(accounts().await);
    let layer = EnforceLayer::new(
        policy_with_price(),
        promising(false, true),
        Arc::clone(&accounts),
    )
    .clock(VirtualClock::at(T0).func());
    let server = serve(layer).await;
    let call = server.call("/v1/paid", "k-basic");
    let waited = tokio::time::timeout(std::time::Duration::from_millis(300), call).await;
    assert!(waited.is_err(), "a store that never answers is waited for");
    assert_eq!(server.seen.calls(), 0);
}
