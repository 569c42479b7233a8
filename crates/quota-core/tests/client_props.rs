//! Properties of the client side: the retry strategy keeps the seed's bounds,
//! the pacer's schedules keep the limits they pace, and header parsing never
//! panics.

// tests may panic
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::time::{Duration, UNIX_EPOCH};

use proptest::prelude::*;
use quota_core::client::{
    parse_retry_after, GiveUp, PaceMode, PacedLimit, Pacer, RateLimitHeaders, Retry, RetryAction,
    RetryPolicy,
};
use quota_core::Timestamp;

/// A `Retry-After` header as a server might send it: missing, whole seconds,
/// or garbage.
#[derive(Clone, Debug)]
enum RetryAfterHeader {
    Missing,
    Seconds(u64),
    Malformed(String),
}

impl RetryAfterHeader {
    /// The wait the seed's client would assume.
    fn assumed_wait(&self) -> Duration {
        match self {
            RetryAfterHeader::Seconds(s) => Duration::from_secs(*s),
            _ => Duration::from_secs(5),
        }
    }

    fn headers(&self, limit_type: &str) -> Vec<(String, Vec<u8>)> {
        let mut h = vec![(
            "X-RateLimit-Type".to_owned(),
            limit_type.as_bytes().to_vec(),
        )];
        match self {
            RetryAfterHeader::Missing => {}
            RetryAfterHeader::Seconds(s) => h.push(("Retry-After".into(), s.to_string().into())),
            RetryAfterHeader::Malformed(v) => h.push(("retry-after".into(), v.clone().into())),
        }
        h
    }
}

fn retry_after_header() -> impl Strategy<Value = RetryAfterHeader> {
    prop_oneof![
        Just(RetryAfterHeader::Missing),
        (0u64..120).prop_map(RetryAfterHeader::Seconds),
        "(-[0-9]{1,3}|[0-9]{1,2}\\.[0-9]|[a-z ]{1,8}|99999999999999999999)"
            .prop_map(RetryAfterHeader::Malformed),
    ]
}

/// A minute-limit type value as servers spell it, or none the client knows.
fn minute_type() -> impl Strategy<Value = &'static str> {
    prop_oneof![
        Just("minute"),
        Just("MINUTE"),
        Just(" Minute "),
        Just(""),
        Just("hourly")
    ]
}

proptest! {
    #[test]
    fn retry_waits_stay_within_the_seeds_bounds(
        refusals in prop::collection::vec((retry_after_header(), minute_type(), 0.0f64..1.0), 1..5),
        start in 0u64..4_000_000_000_000,
    ) {
        let mut retry = Retry::new(RetryPolicy::SEED);
        let mut now = Timestamp::from_millis(start);
        for (attempt, (ra, ty, random)) in refusals.iter().enumerate() {
            let action = retry.handle_response(429, ra.headers(ty), now, *random);
            let RetryAction::RetryAt { at, wait, attempt: a, .. } = action else {
                panic!("attempt {attempt}: expected a retry, got {action:?}");
            };
            let pow = Duration::from_secs(1 << attempt);
            let retry_after = ra.assumed_wait();
            prop_assert_eq!(a as usize, attempt);
            prop_assert!(wait >= pow, "wait {wait:?} < 2^{attempt} s");
            prop_assert!(wait >= retry_after, "wait {wait:?} < Retry-After {retry_after:?}");
            prop_assert!(wait <= retry_after.max(pow + Duration::from_secs(1)));
            prop_assert_eq!(at, now + wait);
            now = at;
        }
    }

    #[test]
    fn daily_refusal_gives_up_at_once(
        earlier in 0usize..4,
        daily in "(daily|DAILY|Daily| daily\t)",
        ra in retry_after_header(),
        random in 0.0f64..1.0,
    ) {
        let mut retry = Retry::new(RetryPolicy::SEED);
        let now = Timestamp::from_secs(1_000);
        for _ in 0..earlier {
            let action = retry.handle_response(429, ra.headers("minute"), now, random);
            prop_assert!(matches!(action, RetryAction::RetryAt { .. }), "{:?}", action);
        }
        let action = retry.handle_response(429, ra.headers(&daily), now, random);
        let expected = match ra {
            RetryAfterHeader::Seconds(s) => Some(Duration::from_secs(s)),
            _ => None,
        };
        prop_assert_eq!(action, RetryAction::GiveUp(GiveUp::DailyLimit { retry_after: expected }));
        prop_assert_eq!(retry.attempts() as usize, earlier + 1);
    }

    #[test]
    fn never_more_than_max_attempts(
        max_attempts in 0u32..12,
        responses in prop::collection::vec((retry_after_header(), minute_type(), any::<f64>()), 0..20),
    ) {
        let policy = RetryPolicy { max_attempts, ..RetryPolicy::SEED };
        let mut retry = Retry::new(policy);
        let mut now = Timestamp::EPOCH;
        let mut made = 0u32;
        // An always-refusing server: the client stops on its own.
        for (ra, ty, random) in responses.iter().cycle().take(100) {
            made += 1;
            match retry.handle_response(429, ra.headers(ty), now, *random) {
                RetryAction::RetryAt { at, .. } => now = at,
                RetryAction::GiveUp(GiveUp::AttemptsExhausted { attempts }) => {
                    prop_assert_eq!(attempts, made);
                    break;
                }
                other => panic!("unexpected {other:?}"),
            }
        }
        if !responses.is_empty() {
            prop_assert_eq!(made, max_attempts.max(1));
            prop_assert_eq!(retry.attempts(), made);
        }
    }

    #[test]
    fn parse_retry_after_never_panics_on_arbitrary_bytes(
        value in prop::collection::vec(any::<u8>(), 0..64),
        now in any::<u64>(),
    ) {
        let _ = parse_retry_after(&value, Timestamp::from_millis(now));
    }

    #[test]
    fn parse_retry_after_reads_whole_seconds(secs in any::<u64>(), pad in "[ \t]{0,3}") {
        let value = format!("{pad}{secs}{pad}");
        prop_assert_eq!(parse_retry_after(&value, Timestamp::EPOCH), Some(Duration::from_secs(secs)));
    }

    #[test]
    fn parse_retry_after_reads_http_dates_relative_to_now(
        date in 0u64..253_402_300_799, // up to 9999-12-31T23:59:59Z
        now_ms in 0u64..253_402_300_799_000,
    ) {
        let value = httpdate::fmt_http_date(UNIX_EPOCH + Duration::from_secs(date));
        let now = Timestamp::from_millis(now_ms);
        let expected = Timestamp::from_secs(date).saturating_since(now);
        prop_assert_eq!(parse_retry_after(&value, now), Some(expected));
    }

    #[test]
    fn header_parsing_never_panics_on_arbitrary_bytes(
        headers in prop::collection::vec((header_name(), prop::collection::vec(any::<u8>(), 0..48)), 0..8),
        status in any::<u16>(),
        now in any::<u64>(),
        random in any::<f64>(),
    ) {
        let now = Timestamp::from_millis(now);
        let _ = RateLimitHeaders::parse(headers.iter().map(|(n, v)| (n, v)));
        let mut pacer = Pacer::new();
        pacer.observe(status, headers.iter().map(|(n, v)| (n, v)), now);
        let _ = pacer.poll_delay(now);
        let mut retry = Retry::new(RetryPolicy::SEED);
        let _ = retry.handle_response(status, headers.iter().map(|(n, v)| (n, v)), now, random);
    }

    #[test]
    fn ratelimit_field_parsing_never_panics_on_field_like_text(
        value in "[\"a-z0-9;=,\\\\ -]{0,64}",
        now in any::<u64>(),
    ) {
        let mut pacer = Pacer::new();
        pacer.observe(429, [("RateLimit", value.as_bytes())], Timestamp::from_millis(now));
        let _ = pacer.poll_delay(Timestamp::from_millis(now));
    }
}

/// Header names the client reads, in any case, plus arbitrary bytes.
fn header_name() -> impl Strategy<Value = Vec<u8>> {
    let known = prop::sample::select(vec![
        "X-RateLimit-Limit",
        "x-ratelimit-remaining",
        "X-RATELIMIT-DAILY-LIMIT",
        "X-RateLimit-Daily-Remaining",
        "X-RateLimit-Type",
        "Retry-After",
        "RateLimit",
    ]);
    prop_oneof![
        4 => known.prop_map(|n| n.as_bytes().to_vec()),
        1 => prop::collection::vec(any::<u8>(), 0..24),
    ]
}

/// Releases requests arriving at `arrivals` (one at a time, in order) as the
/// pacer allows, and returns the release times in milliseconds.
fn paced_releases(pacer: &mut Pacer, start: u64, gaps: &[u64]) -> Vec<u64> {
    let mut t = start;
    let mut releases = Vec::with_capacity(gaps.len());
    for gap in gaps {
        t += gap; // the next request arrives (or the previous one was released later)
        let now = Timestamp::from_millis(t);
        let release = now + pacer.poll_delay(now);
        assert_eq!(
            pacer.poll_delay(release),
            Duration::ZERO,
            "not ready when it said"
        );
        pacer.on_send(release);
        t = release.as_millis();
        releases.push(t);
    }
    releases
}

/// The largest number of releases in one aligned window of `w` ms.
fn max_per_aligned_window(releases: &[u64], w: u64) -> u64 {
    let mut best = 0;
    let mut i = 0;
    while i < releases.len() {
        let k = releases[i] / w;
        let n = releases[i..].iter().take_while(|&&r| r / w == k).count();
        best = best.max(n as u64);
        i += n;
    }
    best
}

/// Whether `releases` (sorted) has at most `n` in every interval `[s, s+w)`.
fn at_most_n_in_any_interval(releases: &[u64], n: usize, w: u64) -> bool {
    releases.windows(n + 1).all(|win| win[n] - win[0] >= w)
}

/// Whether a sliding window counter server of `n` per `w` admits every
/// release: `prev * (w - e) / w + cur + 1 <= n`, exactly.
fn counter_admits_all(releases: &[u64], n: u64, w: u64) -> bool {
    releases.iter().enumerate().all(|(i, &t)| {
        let k = t / w;
        let e = u128::from(t - k * w);
        let before = &releases[..i];
        let cur = before.iter().filter(|&&r| r / w == k).count() as u128;
        let prev = before.iter().filter(|&&r| k > 0 && r / w == k - 1).count() as u128;
        let (n, w) = (u128::from(n), u128::from(w));
        prev * (w - e) + (cur + 1) * w <= n * w
    })
}

fn gaps() -> impl Strategy<Value = Vec<u64>> {
    // Bursts (0 ms apart) and pauses longer than any window.
    prop::collection::vec(
        prop_oneof![3 => Just(0u64), 5 => 0u64..700, 1 => 0u64..12_000],
        1..80,
    )
}

proptest! {
    #[test]
    fn aligned_schedule_keeps_count_per_aligned_window_and_sends_greedily(
        count in 1u64..6,
        window in 1u64..5_000,
        start in 0u64..1_000_000_000_000,
        gaps in gaps(),
    ) {
        let mut pacer = Pacer::from_limits(&[PacedLimit::aligned(count, Duration::from_millis(window))]).unwrap();
        let releases = paced_releases(&mut pacer, start, &gaps);
        prop_assert!(max_per_aligned_window(&releases, window) <= count);
        // Greedy: a request waits only when its window is full, and then
        // only until the window ends.
        let mut t = start;
        for (i, gap) in gaps.iter().enumerate() {
            t += gap;
            let k = t / window;
            let full = releases[..i].iter().filter(|&&r| r / window == k).count() as u64 >= count;
            let expected = if full { (k + 1) * window } else { t };
            prop_assert_eq!(releases[i], expected);
            t = releases[i];
        }
    }

    #[test]
    fn sliding_schedule_keeps_count_in_any_window_length_interval(
        count in 1usize..6,
        window in 1u64..5_000,
        start in 0u64..1_000_000_000_000,
        gaps in gaps(),
    ) {
        let limit = PacedLimit::sliding(count as u64, Duration::from_millis(window));
        let mut pacer = Pacer::from_limits(&[limit]).unwrap();
        let releases = paced_releases(&mut pacer, start, &gaps);
        prop_assert!(at_most_n_in_any_interval(&releases, count, window));
        prop_assert!(max_per_aligned_window(&releases, window) <= count as u64);
        // Greedy: a request waits only for the release `count` back to age.
        let mut t = start;
        for (i, gap) in gaps.iter().enumerate() {
            t += gap;
            let expected = match i.checked_sub(count) {
                Some(j) => t.max(releases[j] + window),
                None => t,
            };
            prop_assert_eq!(releases[i], expected);
            t = releases[i];
        }
    }

    #[test]
    fn counter_schedule_is_admitted_by_a_sliding_window_counter(
        count in 1u64..6,
        window in 1u64..5_000,
        start in 0u64..1_000_000_000_000,
        gaps in gaps(),
    ) {
        let limit = PacedLimit::sliding_counter(count, Duration::from_millis(window));
        let mut pacer = Pacer::from_limits(&[limit]).unwrap();
        let releases = paced_releases(&mut pacer, start, &gaps);
        prop_assert!(counter_admits_all(&releases, count, window));
        prop_assert!(max_per_aligned_window(&releases, window) <= count);
    }

    #[test]
    fn several_limits_are_all_kept_at_once(
        short in (1usize..4, 1u64..1_000),
        long in (2u64..10, 1_000u64..20_000),
        start in 0u64..1_000_000_000_000,
        gaps in gaps(),
    ) {
        let limits = [
            PacedLimit::sliding(short.0 as u64, Duration::from_millis(short.1)),
            PacedLimit::aligned(long.0, Duration::from_millis(long.1)),
            PacedLimit::sliding_counter(long.0, Duration::from_millis(long.1)),
        ];
        let mut pacer = Pacer::from_limits(&limits).unwrap();
        let releases = paced_releases(&mut pacer, start, &gaps);
        prop_assert!(at_most_n_in_any_interval(&releases, short.0, short.1));
        prop_assert!(max_per_aligned_window(&releases, long.1) <= long.0);
        prop_assert!(counter_admits_all(&releases, long.0, long.1));
    }
}

/// The caveat written on [`PaceMode`]: a schedule that keeps `n` per window in
/// any interval can still be refused by a sliding window counter, because the
/// counter assumes the previous window's requests were spread evenly.
#[test]
fn sliding_mode_is_not_safe_against_a_sliding_window_counter() {
    let (n, w) = (2, 60_000);
    let mut pacer =
        Pacer::from_limits(&[PacedLimit::sliding(n, Duration::from_millis(w))]).unwrap();
    assert_eq!(
        PacedLimit::sliding(n, Duration::from_millis(w)).mode,
        PaceMode::Sliding
    );
    // Two requests at the start of window 0, a third arrives at the start of window 1.
    let releases = paced_releases(&mut pacer, 0, &[0, 0, 60_000]);
    assert_eq!(releases, [0, 0, 60_000]);
    assert!(at_most_n_in_any_interval(&releases, n as usize, w));
    assert!(!counter_admits_all(&releases, n, w));
}
