//! Many tasks at once on one key admit exactly the limit, over real sockets.
#![allow(clippy::unwrap_used, clippy::expect_used)] // tests may panic

mod enforce_support;

use std::sync::Arc;

use enforce_support::{accounts, serve, VirtualClock, T0};
use quota_core::policy::Policy;
use quota_core::MemoryStore;
use quota_transport::enforce::EnforceLayer;

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn fifty_tasks_on_one_key_admit_exactly_the_limit() {
    let clock = VirtualClock::at(T0);
    let layer = EnforceLayer::new(
        Policy::seed(),
        Arc::new(MemoryStore::new()),
        Arc::new(accounts().await),
    )
    .clock(clock.func());
    let server = Arc::new(serve(layer).await);
    // Premium: 300 a minute. 50 tasks x 8 requests = 400.
    let tasks: Vec<_> = (0..50)
        .map(|i| {
            let server = Arc::clone(&server);
            tokio::spawn(async move {
                let mut statuses = Vec::new();
                for j in 0..8 {
                    let path = if (i + j) % 2 == 0 {
                        "/v1/txt2img"
                    } else {
                        "/v1/prompt/enhance"
                    };
                    statuses.push(server.call(path, "k-premium").await.status.as_u16());
                }
                statuses
            })
        })
        .collect();
    let mut statuses = Vec::new();
    for t in tasks {
        statuses.extend(t.await.unwrap());
    }
    let admitted = statuses.iter().filter(|&&s| s == 200).count();
    let refused = statuses.iter().filter(|&&s| s == 429).count();
    assert_eq!((admitted, refused), (300, 100));
    assert_eq!(
        server.seen.calls(),
        300,
        "refused requests never reach the service"
    );

    // The budget is spent: the next request is refused with 0 remaining.
    let next = server.call("/v1/txt2img", "k-premium").await;
    assert_eq!(
        (next.status.as_u16(), next.header("x-ratelimit-remaining")),
        (429, Some("0"))
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_keys_do_not_share_budgets() {
    let clock = VirtualClock::at(T0);
    let layer = EnforceLayer::new(
        Policy::seed(),
        Arc::new(MemoryStore::new()),
        Arc::new(accounts().await),
    )
    .clock(clock.func());
    let server = Arc::new(serve(layer).await);
    // Two Basic accounts, 20 tasks each on txt2img (3 a minute).
    let tasks: Vec<_> = (0..40)
        .map(|i| {
            let server = Arc::clone(&server);
            let key = if i % 2 == 0 { "k-basic" } else { "k-basic2" };
            tokio::spawn(
                async move { (key, server.call("/v1/txt2img", key).await.status.as_u16()) },
            )
        })
        .collect();
    let mut admitted = std::collections::BTreeMap::new();
    for t in tasks {
        let (key, status) = t.await.unwrap();
        if status == 200 {
            *admitted.entry(key).or_insert(0) += 1;
        }
    }
    assert_eq!(
        admitted.into_iter().collect::<Vec<_>>(),
        [("k-basic", 3), ("k-basic2", 3)]
    );
}
