//! Each algorithm's documented guarantee, over random request sequences.
#![allow(clippy::unwrap_used, clippy::expect_used)] // tests may panic

use proptest::prelude::*;
use quota_core::algorithm::{Algorithm, Limit, State};
use quota_core::Timestamp;

const ALGORITHMS: [Algorithm; 4] = [
    Algorithm::FixedWindow,
    Algorithm::SlidingLog,
    Algorithm::SlidingWindow,
    Algorithm::Gcra,
];

/// A limit and a sequence of (gap before the request in ms, cost).
fn scenario() -> impl Strategy<Value = (u64, u64, Vec<(u64, u64)>)> {
    (1u64..=8, 1u64..=3000).prop_flat_map(|(count, window)| {
        let events = prop::collection::vec((0..=window / 2 + 1, 1..=count), 1..150);
        (Just(count), Just(window), events)
    })
}

/// Runs the events; returns (time, cost) of every admitted request.
fn run(limit: &Limit, start: u64, events: &[(u64, u64)]) -> Vec<(u64, u64)> {
    let mut state = State::default();
    let mut now = start;
    let mut admitted = Vec::new();
    for &(gap, cost) in events {
        now += gap;
        let (next, outcome) = limit.step(state.clone(), Timestamp::from_millis(now), cost);
        if outcome.admits {
            admitted.push((now, cost));
        } else {
            assert_eq!(next, state, "a refused request changes no state");
        }
        state = next;
    }
    admitted
}

/// Most units admitted in any half-open interval of length `len`.
fn max_in_any_interval(admitted: &[(u64, u64)], len: u64) -> u64 {
    admitted
        .iter()
        .map(|&(t, _)| {
            admitted
                .iter()
                .filter(|&&(u, _)| u >= t && u < t + len)
                .map(|&(_, c)| c)
                .sum()
        })
        .max()
        .unwrap_or(0)
}

/// Most units admitted in any aligned window.
fn max_in_aligned_window(admitted: &[(u64, u64)], len: u64) -> u64 {
    let mut by_window = std::collections::HashMap::new();
    for &(t, c) in admitted {
        *by_window.entry(t / len).or_insert(0) += c;
    }
    by_window.into_values().max().unwrap_or(0)
}

/// GCRA straight from its definition, with wide integers: the reference.
fn gcra_reference(count: u64, window: u64, events: &[(u64, u64)], start: u64) -> Vec<bool> {
    let t = u128::from(window.div_ceil(count));
    let tau = u128::from(count) * t;
    let mut tat: u128 = 0;
    let mut now = u128::from(start);
    events
        .iter()
        .map(|&(gap, cost)| {
            now += u128::from(gap);
            let candidate = tat.max(now) + u128::from(cost) * t;
            let ok = candidate <= now + tau;
            if ok {
                tat = candidate;
            }
            ok
        })
        .collect()
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 300, ..ProptestConfig::default() })]

    #[test]
    fn fixed_window_admits_at_most_count_per_aligned_window((count, window, events) in scenario(), start in 0u64..1_000_000) {
        let limit = Limit::from_millis(count, window, Algorithm::FixedWindow).unwrap();
        let admitted = run(&limit, start, &events);
        prop_assert!(max_in_aligned_window(&admitted, window) <= count);
    }

    #[test]
    fn sliding_log_admits_at_most_count_in_any_interval_of_the_window((count, window, events) in scenario(), start in 0u64..1_000_000) {
        let limit = Limit::from_millis(count, window, Algorithm::SlidingLog).unwrap();
        let admitted = run(&limit, start, &events);
        prop_assert!(max_in_any_interval(&admitted, window) <= count);
    }

    #[test]
    fn sliding_window_counter_keeps_its_documented_bound((count, window, events) in scenario(), start in 0u64..1_000_000) {
        let limit = Limit::from_millis(count, window, Algorithm::SlidingWindow).unwrap();
        let admitted = run(&limit, start, &events);
        prop_assert!(max_in_aligned_window(&admitted, window) <= count);
        prop_assert!(max_in_any_interval(&admitted, window) < 2 * count);
    }

    #[test]
    fn gcra_conforms_to_its_definition((count, window, events) in scenario(), start in 0u64..1_000_000) {
        let limit = Limit::from_millis(count, window, Algorithm::Gcra).unwrap();
        let reference = gcra_reference(count, window, &events, start);
        let mut state = State::default();
        let mut now = start;
        for (&(gap, cost), &expected) in events.iter().zip(&reference) {
            now += gap;
            let (next, outcome) = limit.step(state, Timestamp::from_millis(now), cost);
            prop_assert_eq!(outcome.admits, expected);
            state = next;
        }
    }

    #[test]
    fn a_request_made_exactly_retry_after_later_is_admitted(
        (count, window, events) in scenario(),
        start in 0u64..1_000_000,
        alg in 0usize..4,
    ) {
        let limit = Limit::from_millis(count, window, ALGORITHMS[alg]).unwrap();
        let mut state = State::default();
        let mut now = start;
        for &(gap, cost) in &events {
            now += gap;
            let outcome = limit.evaluate(&state, Timestamp::from_millis(now), cost);
            if outcome.admits {
                prop_assert_eq!(outcome.retry_after_ms, 0);
                limit.commit(&mut state, Timestamp::from_millis(now), cost);
            } else {
                let wait = outcome.retry_after_ms;
                prop_assert!(wait >= 1);
                let later = limit.evaluate(&state, Timestamp::from_millis(now + wait), cost);
                prop_assert!(later.admits, "{:?}: refused again {} ms later", limit.algorithm(), wait);
                // And the wait is the shortest: a millisecond earlier still refuses.
                let earlier = limit.evaluate(&state, Timestamp::from_millis(now + wait - 1), cost);
                prop_assert!(wait == 1 || !earlier.admits, "{:?}: wait {} is not the shortest", limit.algorithm(), wait);
                // Retry-After (whole seconds, rounded up) is then late enough too.
                let secs = quota_core::time::ceil_secs(wait);
                prop_assert!(limit.evaluate(&state, Timestamp::from_millis(now + secs * 1000), cost).admits);
            }
        }
    }

    #[test]
    fn remaining_never_exceeds_count_and_admission_matches_remaining(
        (count, window, events) in scenario(),
        start in 0u64..1_000_000,
        alg in 0usize..4,
    ) {
        let limit = Limit::from_millis(count, window, ALGORITHMS[alg]).unwrap();
        let mut state = State::default();
        let mut now = start;
        for &(gap, cost) in &events {
            now += gap;
            let (next, outcome) = limit.step(state, Timestamp::from_millis(now), cost);
            prop_assert!(outcome.remaining <= count);
            if !outcome.admits {
                prop_assert!(outcome.remaining < cost, "{:?}: refused with {} remaining for cost {}", limit.algorithm(), outcome.remaining, cost);
            }
            state = next;
        }
    }

    #[test]
    fn state_expires_when_it_counts_nothing(
        (count, window, events) in scenario(),
        alg in 0usize..4,
    ) {
        let limit = Limit::from_millis(count, window, ALGORITHMS[alg]).unwrap();
        let mut state = State::default();
        let mut now = 1_000_000;
        for &(gap, cost) in &events {
            now += gap;
            state = limit.step(state, Timestamp::from_millis(now), cost).0;
        }
        let expiry = limit.expires_at(&state);
        let fresh = limit.evaluate(&State::default(), Timestamp::from_millis(expiry.max(now)), count);
        let aged = limit.evaluate(&state, Timestamp::from_millis(expiry.max(now)), count);
        prop_assert_eq!(aged.admits, fresh.admits);
        prop_assert_eq!(aged.remaining, fresh.remaining);
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 2000, ..ProptestConfig::default() })]

    /// A refund gives back no more than the request took: after it, the
    /// limit never admits more, at any later time, than the same limit
    /// that never saw the request (the reference replays every other
    /// admitted request); and when no request was admitted after it, the
    /// two answer alike (the refund is exact).
    #[test]
    fn a_refund_never_gives_back_more_than_the_request_took(
        (count, window, events) in scenario(),
        start in 0u64..1_000_000,
        alg in 0usize..4,
        pick in any::<prop::sample::Index>(),
        late in 0u64..6000,
    ) {
        let limit = Limit::from_millis(count, window, ALGORITHMS[alg]).unwrap();
        let mut state = State::default();
        let mut now = start;
        let mut admitted = Vec::new();
        for &(gap, cost) in &events {
            now += gap;
            let t = Timestamp::from_millis(now);
            let (next, outcome) = limit.step(state, t, cost);
            if outcome.admits {
                admitted.push((now, cost, outcome));
            }
            state = next;
        }
        prop_assume!(!admitted.is_empty());
        let k = pick.index(admitted.len());
        let (at, cost, outcome) = admitted[k];
        let refund_at = now + late;
        limit.refund(&mut state, Timestamp::from_millis(at), &outcome, cost, Timestamp::from_millis(refund_at));
        let mut reference = State::default();
        for (i, &(t, c, _)) in admitted.iter().enumerate() {
            if i != k {
                let (next, o) = limit.step(reference, Timestamp::from_millis(t), c);
                prop_assert!(o.admits, "fewer requests, all admitted");
                reference = next;
            }
        }
        let last = k + 1 == admitted.len();
        for probe in [0, 1, window / 3, window / 2, window - 1, window, window + window / 2, 2 * window] {
            let t = Timestamp::from_millis(refund_at + probe);
            for c in 1..=count {
                let got = limit.evaluate(&state, t, c);
                let want = limit.evaluate(&reference, t, c);
                // Units left before the request (`remaining` is after it when admitted).
                let left = |o: &quota_core::algorithm::LimitOutcome| o.remaining + if o.admits { c } else { 0 };
                prop_assert!(left(&got) <= left(&want), "{:?} at +{}: {:?} vs {:?}", limit.algorithm(), probe, got, want);
                prop_assert!(!got.admits || want.admits, "{:?} at +{}: admitted beyond the limit", limit.algorithm(), probe);
                if last {
                    prop_assert_eq!((got.admits, got.remaining), (want.admits, want.remaining), "{:?} at +{}: not exact", limit.algorithm(), probe);
                }
            }
        }
    }
}

#[test]
fn a_limit_state_is_at_most_24_bytes() {
    // The sliding log is boxed and the counter's counts are u32 (counts are
    // validated to fit), so every state stays small in the memory store.
    assert!(
        std::mem::size_of::<State>() <= 24,
        "{}",
        std::mem::size_of::<State>()
    );
}

#[test]
fn counts_above_u32_are_refused() {
    assert!(Limit::from_millis(u64::from(u32::MAX), 1000, Algorithm::SlidingWindow).is_ok());
    assert!(Limit::from_millis(u64::from(u32::MAX) + 1, 1, Algorithm::FixedWindow).is_err());
}
