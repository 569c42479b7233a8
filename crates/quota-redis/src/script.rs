//! The decision script (`decide.lua`): its arguments and its reply.

use quota_core::algorithm::{Algorithm, LimitOutcome};
use quota_core::policy::Plan;
use quota_core::{Outcomes, Receipt, StoreError, Timestamp};

/// The Lua source: a line-by-line port of `quota_core::algorithm`.
pub(crate) const DECIDE_LUA: &str = include_str!("decide.lua");

/// The refund script (`give_back.lua`): a port of the refund arithmetic of
/// `quota_core::algorithm`.
pub(crate) const GIVE_BACK_LUA: &str = include_str!("give_back.lua");

/// Fills an invocation of the refund script: `keys` are the plan's limit
/// keys, in plan order; `receipt` the decision's (one outcome per key).
pub(crate) fn prepare_refund<'s>(
    script: &'s redis::Script,
    plan: &Plan<'_>,
    keys: &[String],
    receipt: &Receipt,
    caller_now: Option<Timestamp>,
) -> redis::ScriptInvocation<'s> {
    let mut inv = script.prepare_invoke();
    for key in keys {
        inv.key(key.as_str());
    }
    match caller_now {
        Some(now) => inv.arg(now.as_millis()),
        None => inv.arg(""),
    };
    inv.arg(receipt.at.as_millis()).arg(plan.cost());
    for (l, o) in plan.limits().zip(&receipt.outcomes) {
        let limit = l.limit();
        inv.arg(code(limit.algorithm()))
            .arg(limit.count())
            .arg(limit.window_ms())
            .arg(o.reset_after_ms);
    }
    inv
}

/// Whether the script commits or only evaluates.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Mode {
    Decide,
    Peek,
}

/// The script's one-letter name of an algorithm.
fn code(a: Algorithm) -> &'static str {
    match a {
        Algorithm::FixedWindow => "f",
        Algorithm::SlidingLog => "l",
        Algorithm::SlidingWindow => "w",
        Algorithm::Gcra => "g",
    }
}

/// Fills an invocation: `keys` are the plan's limit keys, in plan order.
pub(crate) fn prepare<'s>(
    script: &'s redis::Script,
    plan: &Plan<'_>,
    keys: &[String],
    mode: Mode,
    caller_now: Option<Timestamp>,
    ttl_grace_ms: u64,
) -> redis::ScriptInvocation<'s> {
    let mut inv = script.prepare_invoke();
    for key in keys {
        inv.key(key.as_str());
    }
    inv.arg(if mode == Mode::Decide { "1" } else { "0" });
    match caller_now {
        Some(now) => inv.arg(now.as_millis()),
        None => inv.arg(""),
    };
    inv.arg(plan.cost()).arg(ttl_grace_ms);
    for l in plan.limits() {
        let limit = l.limit();
        inv.arg(code(limit.algorithm()))
            .arg(limit.count())
            .arg(limit.window_ms());
    }
    inv
}

/// Reads the reply `{now, admits, remaining, reset_after, retry_after, ...}`.
pub(crate) fn parse(reply: &[i64], limits: usize) -> Result<(Timestamp, Outcomes), StoreError> {
    let bad =
        |what: &str| StoreError::protocol(format!("decision script: {what} (reply {reply:?})"));
    if reply.len() != 1 + 4 * limits {
        return Err(bad(&format!(
            "expected {} numbers for {limits} limits",
            1 + 4 * limits
        )));
    }
    let num = |v: i64| u64::try_from(v).map_err(|_| bad("negative number"));
    let now = Timestamp::from_millis(num(reply[0])?);
    let mut outcomes = Outcomes::new();
    for o in reply[1..].chunks_exact(4) {
        let admits = match o[0] {
            0 => false,
            1 => true,
            _ => return Err(bad("admits is neither 0 nor 1")),
        };
        outcomes.push(LimitOutcome {
            admits,
            remaining: num(o[1])?,
            reset_after_ms: num(o[2])?,
            retry_after_ms: num(o[3])?,
        });
    }
    Ok((now, outcomes))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_reply_of_the_wrong_length_is_a_protocol_error() {
        assert!(matches!(
            parse(&[1, 1, 2, 3], 1),
            Err(StoreError::Protocol { .. })
        ));
        assert!(matches!(parse(&[1, 1, 2, 3, 4], 1), Ok((_, o)) if o.len() == 1));
        assert!(matches!(
            parse(&[1, 2, 2, 3, 4], 1),
            Err(StoreError::Protocol { .. })
        ));
        assert!(matches!(
            parse(&[1, 1, -2, 3, 4], 1),
            Err(StoreError::Protocol { .. })
        ));
    }
}
