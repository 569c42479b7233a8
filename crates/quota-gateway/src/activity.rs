//! What this gateway node has seen lately, for the operator's page
//! (`ui`): a ring of per-second counters over the last hour, a bounded
//! table of the accounts it served, and the last decision latencies.
//!
//! Fed by the enforcement layer's observer (`observe`), with or without an
//! access log. Everything here is **this node only**: a fleet of gateways
//! on one Redis has one ring per node (the store's numbers, such as the
//! limits used, are the fleet's).
//!
//! Memory, fixed at start-up:
//! - the ring: [`SECONDS`] slots of [`SLOT_BYTES`] bytes (a second's stamp
//!   and one 32-bit counter per [`Category`]): 3,600 x 48 = 172,800 bytes;
//! - the accounts: at most [`MAX_ACCOUNTS`] entries of [`ACCOUNT_BYTES`]
//!   (1,568) bytes each, plus the id and the hash table's own (about 50
//!   bytes); the least recently seen is dropped when a new one comes:
//!   about 10,000 x 1.6 KB = 16 MB at most, reached only once 10,000
//!   accounts have called this node;
//! - the latencies: [`LATENCIES`] x 4 bytes.
//!
//! The hot path costs a few atomic operations (the ring) and one lock of a
//! shard of the account table (16 shards) with a hash lookup. A counter
//! increment that races with the reuse of its slot (the first request of a
//! new second, an hour after the slot's last use) may be lost.

use std::collections::{HashMap, VecDeque};
use std::hash::BuildHasher;
use std::sync::atomic::{AtomicU32, AtomicU64, AtomicUsize, Ordering};
use std::sync::Mutex;
use std::time::Duration;

use http::StatusCode;
use quota_core::policy::{Policy, Scope};
use quota_core::Timestamp;
use quota_transport::enforce::{Observation, Outcome, PolicyHandle};

/// Seconds the ring holds: one hour.
pub(crate) const SECONDS: usize = 3600;
/// Bytes of one slot of the ring.
pub(crate) const SLOT_BYTES: usize = std::mem::size_of::<Slot>();
/// Accounts tracked at once (the least recently seen is dropped past it).
pub(crate) const MAX_ACCOUNTS: usize = 10_000;
/// Requests remembered per account.
pub(crate) const RECENT: usize = 20;
/// Decision latencies remembered.
pub(crate) const LATENCIES: usize = 256;
/// Bytes of one account's entry, besides its id.
pub(crate) const ACCOUNT_BYTES: usize =
    std::mem::size_of::<AccountActivity>() + RECENT * std::mem::size_of::<Recent>();
const SHARDS: usize = 16;

/// What became of a request, as the page counts it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub(crate) enum Category {
    /// Passed to the upstream (or `/v1/limits`).
    Admitted,
    /// 429 by a limit with a window shorter than a day, per endpoint.
    Minute,
    /// 429 by a daily limit, per endpoint.
    Daily,
    /// 429 by a limit over the whole tier.
    TierWide,
    /// 401: no key or an unknown one.
    Unauthorized,
    /// 402: not enough credit.
    PaymentRequired,
    /// 404: no such endpoint.
    NotFound,
    /// 413: an upload too large.
    TooLarge,
    /// 422: an upload the rules refuse.
    Unprocessable,
    /// Anything else (400, a shadow refusal, a store error).
    Other,
}

/// How many categories there are.
pub(crate) const CATEGORIES: usize = 10;

impl Category {
    /// Every category, in the order of the ring's counters (and the chart's
    /// stack, bottom up).
    pub(crate) const ALL: [Category; CATEGORIES] = [
        Category::Admitted,
        Category::Minute,
        Category::Daily,
        Category::TierWide,
        Category::Unauthorized,
        Category::PaymentRequired,
        Category::NotFound,
        Category::TooLarge,
        Category::Unprocessable,
        Category::Other,
    ];

    /// A short label, as the page's legend says it.
    pub(crate) fn label(self) -> &'static str {
        match self {
            Category::Admitted => "admitted",
            Category::Minute => "429 minute",
            Category::Daily => "429 daily",
            Category::TierWide => "429 tier-wide",
            Category::Unauthorized => "401",
            Category::PaymentRequired => "402",
            Category::NotFound => "404",
            Category::TooLarge => "413",
            Category::Unprocessable => "422",
            Category::Other => "other",
        }
    }

    /// Whether it is a rate-limit refusal (429).
    pub(crate) fn is_limit(self) -> bool {
        matches!(
            self,
            Category::Minute | Category::Daily | Category::TierWide
        )
    }

    /// The category of a decision; `policy` tells a tier-wide limit from
    /// an endpoint's (looked up for 429s only).
    pub(crate) fn of(o: &Observation<'_>, policy: &PolicyHandle) -> Category {
        match (o.outcome, o.status) {
            (Outcome::Admitted, _) => Category::Admitted,
            (Outcome::Refused, StatusCode::TOO_MANY_REQUESTS) if !o.shadow => {
                limit_kind(&policy.load(), o.tier, o.limit)
            }
            (Outcome::Refused, StatusCode::UNAUTHORIZED) => Category::Unauthorized,
            (Outcome::Refused, StatusCode::PAYMENT_REQUIRED) => Category::PaymentRequired,
            (Outcome::Refused, StatusCode::NOT_FOUND) => Category::NotFound,
            (Outcome::Refused, StatusCode::PAYLOAD_TOO_LARGE) => Category::TooLarge,
            (Outcome::Refused, StatusCode::UNPROCESSABLE_ENTITY) => Category::Unprocessable,
            _ => Category::Other,
        }
    }
}

/// Which kind of limit the refusing limit `name` of `tier` is: tier-wide
/// when the tier's limits of that name all count the whole tier, daily when
/// one of them is daily, otherwise a short window ("minute").
fn limit_kind(policy: &Policy, tier: Option<&str>, name: Option<&str>) -> Category {
    let (Some(tier), Some(name)) = (tier.and_then(|t| policy.tier(t)), name) else {
        return if name == Some("daily") {
            Category::Daily
        } else {
            Category::Minute
        };
    };
    let mut named = tier.limits().iter().filter(|l| l.name() == name).peekable();
    if named.peek().is_none() {
        return if name == "daily" {
            Category::Daily
        } else {
            Category::Minute
        };
    }
    let (mut all_tier, mut daily) = (true, false);
    for l in named {
        all_tier &= l.scope() == Scope::Tier;
        daily |= l.is_daily();
    }
    if all_tier {
        Category::TierWide
    } else if daily {
        Category::Daily
    } else {
        Category::Minute
    }
}

/// One decision, as the ring records it.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Decided<'a> {
    /// The account, once the key is resolved.
    pub(crate) account: Option<&'a str>,
    /// The policy endpoint.
    pub(crate) endpoint: Option<&'a str>,
    /// What became of it.
    pub(crate) category: Category,
    /// The status the layer answered (200: passed on).
    pub(crate) status: u16,
    /// Time spent deciding.
    pub(crate) latency: Duration,
}

/// One second of the ring.
struct Slot {
    /// The unix second the counts are of.
    second: AtomicU64,
    counts: [AtomicU32; CATEGORIES],
}

/// Counts per category, one second or one minute of them.
pub(crate) type Counts = [u32; CATEGORIES];

/// A request an account made, as its page lists it.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Recent {
    /// When (milliseconds since the epoch).
    pub(crate) at_ms: u64,
    endpoint: [u8; 23],
    endpoint_len: u8,
    /// What became of it.
    pub(crate) category: Category,
    /// The status the layer answered (200: passed on to the upstream).
    pub(crate) status: u16,
}

impl Recent {
    /// The endpoint (cut at 23 bytes), empty when not known.
    pub(crate) fn endpoint(&self) -> &str {
        let bytes = &self.endpoint[..usize::from(self.endpoint_len).min(23)];
        std::str::from_utf8(bytes).unwrap_or("")
    }
}

/// Rate-limit refusals of one minute: by a short window, a daily limit,
/// a tier-wide limit (16 bits each, saturating).
#[derive(Clone, Copy, Debug, Default)]
struct MinuteCount {
    minute: u32,
    counts: [u16; 3],
}

/// The index in [`MinuteCount::counts`] of a rate-limit category.
fn limit_index(c: Category) -> Option<usize> {
    match c {
        Category::Minute => Some(0),
        Category::Daily => Some(1),
        Category::TierWide => Some(2),
        _ => None,
    }
}

/// The categories of [`MinuteCount::counts`], in order.
const LIMIT_KINDS: [Category; 3] = [Category::Minute, Category::Daily, Category::TierWide];

/// One account, as this node saw it.
#[derive(Debug)]
struct AccountActivity {
    requests: u64,
    last_seen_ms: u64,
    refusals: [MinuteCount; 60],
    recent: VecDeque<Recent>,
}

/// One account, as the page shows it.
#[derive(Clone, Debug)]
pub(crate) struct AccountView {
    /// The account's id.
    pub(crate) id: String,
    /// Requests decided since this node started.
    pub(crate) requests: u64,
    /// Rate-limit refusals (429) in the last hour.
    pub(crate) refusals_hour: u32,
    /// Last request (milliseconds since the epoch).
    pub(crate) last_seen_ms: u64,
    /// 429s per minute over the last hour by limit kind (the counts of
    /// [`Category::Minute`], [`Category::Daily`], [`Category::TierWide`]),
    /// oldest first.
    pub(crate) refusals_per_minute: Vec<Counts>,
    /// The last requests, newest first.
    pub(crate) recent: Vec<Recent>,
}

/// A part of the account table (an account's shard: its id's hash).
type Shard = Mutex<HashMap<Box<str>, AccountActivity, foldhash::fast::RandomState>>;

/// The activity of this node (see the module's docs).
pub(crate) struct Activity {
    slots: Box<[Slot]>,
    shards: Box<[Shard]>,
    hasher: foldhash::fast::RandomState,
    latencies_us: Box<[AtomicU32]>,
    next_latency: AtomicUsize,
    started_ms: u64,
    policy_loaded_ms: AtomicU64,
    max_accounts: usize,
}

impl std::fmt::Debug for Activity {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Activity").finish_non_exhaustive()
    }
}

impl Activity {
    /// An empty ring, for a node started (and its policy loaded) at `now`.
    pub(crate) fn new(now: Timestamp) -> Self {
        Self::with_max_accounts(now, MAX_ACCOUNTS)
    }

    /// The same, tracking at most `max` accounts (at least [`SHARDS`]).
    pub(crate) fn with_max_accounts(now: Timestamp, max: usize) -> Self {
        Activity {
            slots: (0..SECONDS)
                .map(|_| Slot {
                    second: AtomicU64::new(0),
                    counts: Default::default(),
                })
                .collect(),
            shards: (0..SHARDS).map(|_| Mutex::default()).collect(),
            hasher: foldhash::fast::RandomState::default(),
            latencies_us: (0..LATENCIES).map(|_| AtomicU32::new(0)).collect(),
            next_latency: AtomicUsize::new(0),
            started_ms: now.as_millis(),
            policy_loaded_ms: AtomicU64::new(now.as_millis()),
            max_accounts: max.max(SHARDS),
        }
    }

    fn shard(&self, account: &str) -> Option<&Shard> {
        let i = self.hasher.hash_one(account) % SHARDS as u64;
        self.shards.get(usize::try_from(i).unwrap_or(0))
    }

    /// When this node started (milliseconds since the epoch).
    pub(crate) fn started_ms(&self) -> u64 {
        self.started_ms
    }

    /// When the policy in force was loaded (milliseconds since the epoch).
    pub(crate) fn policy_loaded_ms(&self) -> u64 {
        self.policy_loaded_ms.load(Ordering::Relaxed)
    }

    /// A policy was put in force at `now`.
    pub(crate) fn record_reload(&self, now: Timestamp) {
        self.policy_loaded_ms
            .store(now.as_millis(), Ordering::Relaxed);
    }

    /// One decision of the enforcement layer, at `now`.
    pub(crate) fn observe(&self, o: &Observation<'_>, policy: &PolicyHandle, now: Timestamp) {
        let category = Category::of(o, policy);
        let request = Decided {
            account: o.account,
            endpoint: o.endpoint,
            category,
            status: o.status.as_u16(),
            latency: o.latency,
        };
        self.record(&request, now);
    }

    /// One decision at `now`.
    pub(crate) fn record(&self, d: &Decided<'_>, now: Timestamp) {
        self.count(now, d.category);
        let us = u32::try_from(d.latency.as_micros()).unwrap_or(u32::MAX);
        let i = self.next_latency.fetch_add(1, Ordering::Relaxed) % LATENCIES;
        if let Some(l) = self.latencies_us.get(i) {
            l.store(us.max(1), Ordering::Relaxed);
        }
        if let Some(account) = d.account {
            self.saw(account, d.endpoint, d.category, d.status, now);
        }
    }

    /// Counts one request of `category` in the second of `now`.
    pub(crate) fn count(&self, now: Timestamp, category: Category) {
        let sec = now.as_millis() / 1000;
        let Some(slot) = self.slots.get(ring_index(sec)) else {
            return;
        };
        let seen = slot.second.load(Ordering::Acquire);
        if seen != sec {
            if seen > sec {
                // A clock that went back over an hour's slot: not counted.
                return;
            }
            if slot
                .second
                .compare_exchange(seen, sec, Ordering::AcqRel, Ordering::Acquire)
                .is_ok()
            {
                for c in &slot.counts {
                    c.store(0, Ordering::Relaxed);
                }
            }
        }
        if let Some(c) = slot.counts.get(category as usize) {
            c.fetch_add(1, Ordering::Relaxed);
        }
    }

    fn saw(
        &self,
        account: &str,
        endpoint: Option<&str>,
        category: Category,
        status: u16,
        now: Timestamp,
    ) {
        let Some(shard) = self.shard(account) else {
            return;
        };
        let mut shard = match shard.lock() {
            Ok(s) => s,
            Err(poisoned) => poisoned.into_inner(),
        };
        let at_ms = now.as_millis();
        // Found with one hash when seen before (the common case).
        if let Some(a) = shard.get_mut(account) {
            a.saw(endpoint, category, status, at_ms);
            return;
        }
        if shard.len() >= self.max_accounts / SHARDS {
            let oldest = shard
                .iter()
                .min_by_key(|(_, a)| a.last_seen_ms)
                .map(|(id, _)| id.clone());
            if let Some(oldest) = oldest {
                shard.remove(&oldest);
            }
        }
        shard.insert(
            account.into(),
            AccountActivity {
                requests: 0,
                last_seen_ms: at_ms,
                refusals: [MinuteCount::default(); 60],
                recent: VecDeque::with_capacity(RECENT),
            },
        );
        let Some(a) = shard.get_mut(account) else {
            return;
        };
        a.saw(endpoint, category, status, at_ms);
    }
}

impl AccountActivity {
    /// One more request of this account.
    fn saw(&mut self, endpoint: Option<&str>, category: Category, status: u16, at_ms: u64) {
        let a = self;
        a.requests = a.requests.saturating_add(1);
        a.last_seen_ms = a.last_seen_ms.max(at_ms);
        if let Some(kind) = limit_index(category) {
            let minute = u32::try_from(at_ms / 60_000).unwrap_or(u32::MAX);
            if let Some(m) = a.refusals.get_mut(minute as usize % 60) {
                if m.minute != minute {
                    *m = MinuteCount {
                        minute,
                        counts: [0; 3],
                    };
                }
                m.counts[kind] = m.counts[kind].saturating_add(1);
            }
        }
        let mut name = [0u8; 23];
        let endpoint = endpoint.unwrap_or("");
        // Cut on a character boundary.
        let mut len = endpoint.len().min(23);
        while !endpoint.is_char_boundary(len) {
            len -= 1;
        }
        name[..len].copy_from_slice(&endpoint.as_bytes()[..len]);
        if a.recent.len() >= RECENT {
            a.recent.pop_back();
        }
        a.recent.push_front(Recent {
            at_ms,
            endpoint: name,
            endpoint_len: u8::try_from(len).unwrap_or(0),
            category,
            status,
        });
    }
}

impl Activity {
    /// The counts of the last `n` seconds up to `now` (included), oldest
    /// first (at most [`SECONDS`]).
    pub(crate) fn per_second(&self, now: Timestamp, n: usize) -> Vec<Counts> {
        let end = now.as_millis() / 1000;
        let n = n.min(SECONDS) as u64;
        (0..n)
            .map(|back| end - (n - 1 - back).min(end))
            .map(|sec| self.second(sec))
            .collect()
    }

    fn second(&self, sec: u64) -> Counts {
        let mut out = [0; CATEGORIES];
        if let Some(slot) = self.slots.get(ring_index(sec)) {
            if slot.second.load(Ordering::Acquire) == sec {
                for (o, c) in out.iter_mut().zip(&slot.counts) {
                    *o = c.load(Ordering::Relaxed);
                }
            }
        }
        out
    }

    /// The counts of the last 60 minutes, oldest first; the last is the
    /// minute of `now` so far.
    pub(crate) fn per_minute(&self, now: Timestamp) -> Vec<Counts> {
        self.per_bucket(now, 60, 60)
    }

    /// The counts of the last `n` buckets of `bucket` seconds (aligned on
    /// multiples of `bucket` since the epoch), oldest first; the last is the
    /// bucket of `now` so far. Seconds older than the ring count nothing.
    pub(crate) fn per_bucket(&self, now: Timestamp, bucket: u64, n: usize) -> Vec<Counts> {
        let bucket = bucket.max(1);
        let end = now.as_millis() / 1000;
        let oldest = end.saturating_sub(SECONDS as u64 - 1);
        let current = end - end % bucket;
        let mut out = vec![[0; CATEGORIES]; n];
        for (back, slot) in out.iter_mut().rev().enumerate() {
            let back = u64::try_from(back).unwrap_or(u64::MAX);
            let Some(start) = current.checked_sub(back.saturating_mul(bucket)) else {
                break;
            };
            let stop = if back == 0 { end } else { start + bucket - 1 };
            for sec in start.max(oldest)..=stop {
                add(slot, &self.second(sec));
            }
        }
        out
    }

    /// The sums of the last `seconds` up to `now`.
    pub(crate) fn total(&self, now: Timestamp, seconds: usize) -> Counts {
        let mut sum = [0; CATEGORIES];
        for c in self.per_second(now, seconds) {
            add(&mut sum, &c);
        }
        sum
    }

    /// Median, 99th percentile and largest of the last decision latencies,
    /// and how many there are.
    pub(crate) fn latency(&self) -> Option<(Duration, Duration, Duration, usize)> {
        let mut us: Vec<u32> = self
            .latencies_us
            .iter()
            .map(|l| l.load(Ordering::Relaxed))
            .filter(|&l| l > 0)
            .collect();
        if us.is_empty() {
            return None;
        }
        us.sort_unstable();
        let at = |q: usize| Duration::from_micros(u64::from(us[(us.len() - 1) * q / 100]));
        Some((at(50), at(99), at(100), us.len()))
    }

    /// The account `id`, if this node saw it (the last hour counted up to
    /// `now`).
    pub(crate) fn account(&self, id: &str, now: Timestamp) -> Option<AccountView> {
        let shard = self.shard(id)?;
        let shard = match shard.lock() {
            Ok(s) => s,
            Err(poisoned) => poisoned.into_inner(),
        };
        shard.get(id).map(|a| view(id, a, now))
    }

    /// The accounts this node tracks with refusals in the last hour whose
    /// id `keep` keeps, the most refused first (then by id), at most `n`.
    pub(crate) fn most_refused(
        &self,
        now: Timestamp,
        n: usize,
        keep: impl Fn(&str) -> bool,
    ) -> Vec<AccountView> {
        let this = u32::try_from(now.as_millis() / 60_000).unwrap_or(u32::MAX);
        let mut refused: Vec<(u32, Box<str>)> = Vec::new();
        for shard in self.shards.iter() {
            let shard = match shard.lock() {
                Ok(s) => s,
                Err(poisoned) => poisoned.into_inner(),
            };
            for (id, a) in shard.iter() {
                let hour: u32 = a
                    .refusals
                    .iter()
                    .filter(|m| this.wrapping_sub(m.minute) < 60)
                    .map(|m| m.counts.iter().map(|&c| u32::from(c)).sum::<u32>())
                    .sum();
                if hour > 0 && keep(id) {
                    refused.push((hour, id.clone()));
                }
            }
        }
        refused.sort_by(|a, b| b.0.cmp(&a.0).then(a.1.cmp(&b.1)));
        refused.truncate(n);
        refused
            .iter()
            .filter_map(|(_, id)| self.account(id, now))
            .collect()
    }

    /// How many accounts are tracked.
    pub(crate) fn accounts_tracked(&self) -> usize {
        self.shards
            .iter()
            .map(|s| match s.lock() {
                Ok(s) => s.len(),
                Err(poisoned) => poisoned.into_inner().len(),
            })
            .sum()
    }
}

fn ring_index(sec: u64) -> usize {
    usize::try_from(sec % SECONDS as u64).unwrap_or(0)
}

fn add(sum: &mut Counts, c: &Counts) {
    for (s, c) in sum.iter_mut().zip(c) {
        *s = s.saturating_add(*c);
    }
}

fn view(id: &str, a: &AccountActivity, now: Timestamp) -> AccountView {
    let this = u32::try_from(now.as_millis() / 60_000).unwrap_or(u32::MAX);
    let mut per_minute = vec![[0u32; CATEGORIES]; 60];
    let mut hour = 0u32;
    for m in &a.refusals {
        let back = this.wrapping_sub(m.minute);
        if back < 60 {
            for (kind, n) in LIMIT_KINDS.iter().zip(m.counts) {
                per_minute[59 - back as usize][*kind as usize] = u32::from(n);
                hour = hour.saturating_add(u32::from(n));
            }
        }
    }
    AccountView {
        id: id.to_owned(),
        requests: a.requests,
        refusals_hour: hour,
        last_seen_ms: a.last_seen_ms,
        refusals_per_minute: per_minute,
        recent: a.recent.iter().copied().collect(),
    }
}

#[cfg(test)]
mod tests {
    // tests may panic
    #![allow(clippy::unwrap_used, clippy::expect_used)]

    use super::*;

    const T0: Timestamp = Timestamp::from_secs(1_700_000_040);

    fn obs(account: &str, category: Category) -> Decided<'_> {
        Decided {
            account: Some(account),
            endpoint: Some("txt2img"),
            category,
            status: if category == Category::Admitted {
                200
            } else {
                429
            },
            latency: Duration::from_micros(40),
        }
    }

    #[test]
    fn the_ring_is_an_hour_of_48_byte_slots() {
        assert_eq!(SLOT_BYTES, 48);
        assert_eq!(SECONDS * SLOT_BYTES, 172_800);
        // The account entry, as the docs state it (about 1.3 KB).
        // The account entry, as the docs state it.
        assert_eq!(ACCOUNT_BYTES, 1568, "the account entry");
    }

    #[test]
    fn a_slot_is_reused_an_hour_later_and_starts_from_zero() {
        let a = Activity::new(T0);
        for _ in 0..3 {
            a.count(T0, Category::Minute);
        }
        assert_eq!(a.total(T0, 1)[Category::Minute as usize], 3);
        let later = T0.saturating_add(Duration::from_secs(SECONDS as u64));
        // The slot is the same one; its old counts are not this second's.
        assert_eq!(a.total(later, 1), [0; CATEGORIES]);
        a.count(later, Category::Admitted);
        assert_eq!(a.total(later, 1)[Category::Admitted as usize], 1);
        assert_eq!(a.total(later, 1)[Category::Minute as usize], 0);
        // And the old second is gone.
        assert_eq!(a.total(T0, 1), [0; CATEGORIES]);
    }

    #[test]
    fn minutes_sum_their_seconds() {
        let a = Activity::new(T0);
        a.count(T0, Category::Daily);
        a.count(T0.saturating_add(Duration::from_secs(70)), Category::Daily);
        let now = T0.saturating_add(Duration::from_secs(70));
        let m = a.per_minute(now);
        assert_eq!(m.len(), 60);
        let total: u32 = m.iter().map(|c| c[Category::Daily as usize]).sum();
        assert_eq!(total, 2);
        assert_eq!(m[59][Category::Daily as usize], 1);
        assert_eq!(a.total(now, SECONDS)[Category::Daily as usize], 2);
        // In 5-second buckets: T0 is 40 s into its minute, a bucket's start.
        let b = a.per_bucket(now, 5, 60);
        assert_eq!(b[59][Category::Daily as usize], 1);
        assert_eq!(b[59 - 14][Category::Daily as usize], 1);
    }

    #[test]
    fn accounts_are_bounded_and_the_least_recently_seen_goes() {
        let a = Activity::with_max_accounts(T0, 32);
        for i in 0..200u64 {
            let id = format!("acct-{i}");
            let at = T0.saturating_add(Duration::from_millis(i));
            a.record(&obs(&id, Category::Admitted), at);
        }
        assert!(a.accounts_tracked() <= 32);
        assert!(a.account("acct-199", T0).is_some());
        assert!(a.account("acct-0", T0).is_none());
    }

    #[test]
    fn refusals_are_counted_per_account_and_by_limit_kind() {
        let p = Policy::seed();
        assert_eq!(
            limit_kind(&p, Some("basic"), Some("minute")),
            Category::Minute
        );
        assert_eq!(
            limit_kind(&p, Some("basic"), Some("daily")),
            Category::Daily
        );
        assert_eq!(
            limit_kind(&p, Some("premium"), Some("minute")),
            Category::TierWide
        );
        let a = Activity::new(T0);
        a.record(&obs("a", Category::Admitted), T0);
        a.record(&obs("a", limit_kind(&p, Some("basic"), Some("minute"))), T0);
        a.record(&obs("a", limit_kind(&p, Some("basic"), Some("daily"))), T0);
        a.record(
            &obs("b", limit_kind(&p, Some("premium"), Some("minute"))),
            T0,
        );
        let t = a.total(T0, 60);
        assert_eq!(t[Category::Admitted as usize], 1);
        assert_eq!(t[Category::Minute as usize], 1);
        assert_eq!(t[Category::Daily as usize], 1);
        assert_eq!(t[Category::TierWide as usize], 1);
        let v = a.account("a", T0).unwrap();
        assert_eq!((v.requests, v.refusals_hour), (3, 2));
        assert_eq!(v.recent.len(), 3);
        assert_eq!(v.recent[0].category, Category::Daily);
        assert_eq!(v.recent[0].endpoint(), "txt2img");
        let last = v.refusals_per_minute[59];
        assert_eq!(last[Category::Minute as usize], 1);
        assert_eq!(last[Category::Daily as usize], 1);
        let top = a.most_refused(T0, 10, |_| true);
        assert_eq!(top.len(), 2);
        assert_eq!(top[0].id, "a");
        // An hour later, the refusals are old.
        let later = T0.saturating_add(Duration::from_secs(3600));
        assert_eq!(a.account("a", later).unwrap().refusals_hour, 0);
        assert!(a.latency().is_some());
    }
}
