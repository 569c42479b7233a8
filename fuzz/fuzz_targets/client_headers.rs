//! Response headers of any bytes: the client's parsers and state machines
//! never panic, and the retry machine never allows more than its attempts.
#![no_main]

use libfuzzer_sys::fuzz_target;
use quota_core::client::{
    parse_retry_after, Pacer, RateLimitHeaders, Retry, RetryAction, RetryPolicy,
};
use quota_core::Timestamp;

fuzz_target!(|data: &[u8]| {
    let now = Timestamp::from_millis(1_795_860_000_000);
    let _ = parse_retry_after(data, now);
    // Split the input into header lines "name: value".
    let headers: Vec<(&[u8], &[u8])> = data
        .split(|&b| b == b'\n')
        .filter_map(|line| {
            let colon = line.iter().position(|&b| b == b':')?;
            Some((&line[..colon], &line[colon + 1..]))
        })
        .collect();
    let _ = RateLimitHeaders::parse(headers.iter().copied());
    let mut pacer = Pacer::new();
    pacer.observe(429, headers.iter().copied(), now);
    let _ = pacer.poll_delay(now);
    let mut retry = Retry::new(RetryPolicy::default());
    let random = f64::from(data.first().copied().unwrap_or(0)) / 255.0;
    for _ in 0..10 {
        match retry.handle_response(429, headers.iter().copied(), now, random) {
            RetryAction::RetryAt { .. } => {}
            _ => break,
        }
    }
    assert!(retry.attempts() <= RetryPolicy::default().max_attempts);
});
