//! The plot's data: a replay's decisions per endpoint, binned on the
//! policy's own windows, with each limit as a line and each refusal
//! counted under the limit that refused it.
//!
//! One [`Panel`] per endpoint (the busiest [`MAX_PANELS`], in the policy's
//! order). A panel's bins are the shortest window of its limits that covers
//! the trace in at most [`MAX_BINS`] bins, aligned as fixed windows are (to
//! multiples of the window since the epoch: the UTC minute, the UTC day), so
//! a bin holds exactly the requests one window counted. A limit of that
//! window is drawn as a [`LimitLine`]: its count times the keys that sent
//! requests in the bin (each key has its own budget).

use std::collections::{BTreeMap, HashSet};
use std::time::{Duration, UNIX_EPOCH};

use super::{Row, Summary};
use crate::policy::{Policy, Request, Scope};

/// The most endpoints drawn; the others are named in [`Chart::hidden`].
pub const MAX_PANELS: usize = 6;
/// The most bins in a panel.
pub const MAX_BINS: u64 = 240;

/// A replay, binned for a plot. See the module's documentation.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Chart {
    /// The refusing limits' names ([`Summary::limits`]): [`Bin::refused`]
    /// is indexed by them.
    pub limits: Vec<String>,
    /// One per endpoint drawn.
    pub panels: Vec<Panel>,
    /// Endpoints with requests that are not drawn (past [`MAX_PANELS`]).
    pub hidden: Vec<String>,
    /// Where every panel's time axis starts, in ms since the epoch (the
    /// earliest bin's start).
    pub start_ms: u64,
    /// Where it ends (the latest bin's end).
    pub end_ms: u64,
}

/// One endpoint's requests over time.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Panel {
    /// The endpoint, as the trace names it.
    pub endpoint: String,
    /// The tier most of its requests were decided on.
    pub tier: String,
    /// The bins' length in ms: a window of one of its limits where one fits.
    pub bin_ms: u64,
    /// Consecutive bins, from the first request's to the last one's.
    pub bins: Vec<Bin>,
    /// The limits whose window is `bin_ms`.
    pub lines: Vec<LimitLine>,
    /// Its other limits (other windows: not drawn, named in the title).
    pub others: Vec<LimitLine>,
}

impl Panel {
    /// The panel's title: `txt2img (tier basic), per minute: limit minute 3 per key`.
    pub fn title(&self) -> String {
        let mut title = format!(
            "{} (tier {}), per {}",
            self.endpoint,
            self.tier,
            length(self.bin_ms)
        );
        let lines = self.lines.iter().map(|l| (l, " (dashed)"));
        for (i, (l, drawn)) in lines.chain(self.others.iter().map(|l| (l, ""))).enumerate() {
            let shared = if l.shared { ", all endpoints" } else { "" };
            let sep = if i == 0 { ": limit" } else { ";" };
            title.push_str(&format!(
                "{sep} {} {} per key{shared}{drawn}",
                l.name, l.count
            ));
        }
        title
    }

    /// The highest bar or limit line: the height the panel needs (at least 1).
    pub fn top(&self) -> u64 {
        let bars = self.bins.iter().map(Bin::total);
        let lines = self
            .bins
            .iter()
            .flat_map(|b| self.lines.iter().map(|l| l.at(b)));
        bars.chain(lines).max().unwrap_or(0).max(1)
    }
}

/// A length of time in words: `minute`, `day`, `10 s`.
fn length(ms: u64) -> String {
    match ms {
        1_000 => "second".into(),
        60_000 => "minute".into(),
        3_600_000 => "hour".into(),
        86_400_000 => "day".into(),
        ms if ms % 86_400_000 == 0 => format!("{} days", ms / 86_400_000),
        ms if ms % 3_600_000 == 0 => format!("{} h", ms / 3_600_000),
        ms if ms % 60_000 == 0 => format!("{} min", ms / 60_000),
        ms => format!("{} s", ms as f64 / 1000.0),
    }
}

/// The requests of one bin.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Bin {
    /// Its start, in ms since the epoch.
    pub start_ms: u64,
    /// Requests admitted.
    pub admitted: u64,
    /// Requests refused, per limit ([`Chart::limits`]).
    pub refused: Vec<u64>,
    /// Distinct keys that sent requests in it.
    pub keys: u64,
}

impl Bin {
    /// Every request of the bin, admitted or refused.
    pub fn total(&self) -> u64 {
        self.admitted.saturating_add(self.refused.iter().sum())
    }
}

/// A limit drawn over a panel's bins.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LimitLine {
    /// The limit's name (`minute`).
    pub name: String,
    /// Its count per window and key.
    pub count: u64,
    /// True for a limit of the whole tier: its budget is shared with the
    /// tier's other endpoints, so the line is an upper bound for this one.
    pub shared: bool,
}

impl LimitLine {
    /// The most `bin` could admit under this limit: the count times the keys.
    pub fn at(&self, bin: &Bin) -> u64 {
        self.count.saturating_mul(bin.keys)
    }
}

/// Bin lengths for endpoints without limits: the first giving at most
/// [`MAX_BINS`] bins.
const ROUND_MS: [u64; 12] = [
    1_000,
    5_000,
    10_000,
    30_000,
    60_000,
    300_000,
    600_000,
    1_800_000,
    3_600_000,
    21_600_000,
    86_400_000,
    604_800_000,
];

impl Chart {
    /// Bins `summary` (a replay of `rows` with `default_tier`) for a plot.
    pub fn build(policy: &Policy, rows: &[Row], default_tier: &str, summary: &Summary) -> Chart {
        // The decided rows, per endpoint.
        let mut by_endpoint: BTreeMap<&str, Vec<usize>> = BTreeMap::new();
        for (i, e) in summary.timeline.iter().enumerate() {
            if let Some(row) = rows.get(e.row) {
                by_endpoint.entry(&row.endpoint).or_default().push(i);
            }
        }
        let at = |i: usize| {
            summary
                .timeline
                .get(i)
                .and_then(|e| rows.get(e.row))
                .map(|r| r.at)
        };
        let (Some(first), Some(last)) = (at(0), at(summary.timeline.len().wrapping_sub(1))) else {
            return Chart::default();
        };
        // The busiest endpoints, drawn in the policy's order.
        let mut endpoints: Vec<(&str, Vec<usize>)> = by_endpoint.into_iter().collect();
        endpoints.sort_by_key(|(_, events)| std::cmp::Reverse(events.len()));
        let hidden = endpoints
            .iter()
            .skip(MAX_PANELS)
            .map(|(e, _)| (*e).to_owned())
            .collect();
        endpoints.truncate(MAX_PANELS);
        endpoints.sort_by_key(|(e, _)| policy.endpoint_index(e).unwrap_or(usize::MAX));
        let panels: Vec<Panel> = endpoints
            .into_iter()
            .map(|(endpoint, events)| {
                let events = events.iter().filter_map(|&i| summary.timeline.get(i));
                let panel_rows: Vec<(&Row, Option<usize>)> = events
                    .filter_map(|e| rows.get(e.row).map(|r| (r, e.refused_by)))
                    .collect();
                panel(
                    policy,
                    endpoint,
                    &panel_rows,
                    default_tier,
                    summary.limits.len(),
                    (first, last),
                )
            })
            .collect();
        let start_ms = panels
            .iter()
            .filter_map(|p| p.bins.first())
            .map(|b| b.start_ms)
            .min();
        let end_ms = panels
            .iter()
            .filter_map(|p| p.bins.last().map(|b| b.start_ms.saturating_add(p.bin_ms)))
            .max();
        Chart {
            limits: summary.limits.clone(),
            panels,
            hidden,
            start_ms: start_ms.unwrap_or(first),
            end_ms: end_ms.unwrap_or(last),
        }
    }

    /// `ms` since the epoch as an HTTP date (`Tue, 14 Nov 2023 22:13:20 GMT`).
    pub fn utc(ms: u64) -> String {
        httpdate::fmt_http_date(UNIX_EPOCH + Duration::from_millis(ms))
    }

    /// `ms` as a UTC time of day, `HH:MM` (or `HH:MM:SS` when `seconds`), for
    /// an axis's labels.
    pub fn clock(ms: u64, seconds: bool) -> String {
        let s = (ms / 1000) % 86_400;
        let (h, m) = (s / 3600, s / 60 % 60);
        if seconds {
            format!("{h:02}:{m:02}:{:02}", s % 60)
        } else {
            format!("{h:02}:{m:02}")
        }
    }
}

/// One endpoint's panel; `span` is the whole trace's first and last time.
fn panel(
    policy: &Policy,
    endpoint: &str,
    rows: &[(&Row, Option<usize>)],
    default_tier: &str,
    limits: usize,
    (first, last): (u64, u64),
) -> Panel {
    // The tier most of its rows were decided on.
    let mut tiers: BTreeMap<&str, usize> = BTreeMap::new();
    for (row, _) in rows {
        *tiers
            .entry(row.tier.as_deref().unwrap_or(default_tier))
            .or_default() += 1;
    }
    let tier = tiers
        .iter()
        .max_by_key(|(_, n)| **n)
        .map_or(default_tier, |(t, _)| *t);
    let req = Request {
        account: "",
        tier,
        endpoint,
        cost: 1,
    };
    let plan = policy.plan(&req).ok();
    let limits_of = || plan.iter().flat_map(|p| p.limits());
    let bins_for = |w: u64| (last / w).saturating_sub(first / w).saturating_add(1);
    let mut windows: Vec<u64> = limits_of().map(|l| l.limit().window_ms()).collect();
    windows.sort_unstable();
    let bin_ms = match (
        windows.iter().find(|&&w| bins_for(w) <= MAX_BINS),
        windows.last(),
    ) {
        (Some(&w), _) => w,
        // Every window is too short: several of the longest per bin.
        (None, Some(&w)) => w.saturating_mul(bins_for(w).div_ceil(MAX_BINS)),
        (None, None) => ROUND_MS
            .iter()
            .copied()
            .find(|&w| bins_for(w) <= MAX_BINS)
            .unwrap_or(604_800_000),
    };
    let (mut lines, mut others): (Vec<LimitLine>, Vec<LimitLine>) = (Vec::new(), Vec::new());
    for l in limits_of() {
        let list = if l.limit().window_ms() == bin_ms {
            &mut lines
        } else {
            &mut others
        };
        if !list.iter().any(|x| x.name == l.name()) {
            list.push(LimitLine {
                name: l.name().to_owned(),
                count: l.limit().count(),
                shared: l.scope() == Scope::Tier,
            });
        }
    }
    let first_bin = rows.first().map_or(first, |(r, _)| r.at) / bin_ms;
    let last_bin = rows.last().map_or(last, |(r, _)| r.at) / bin_ms;
    let mut bins: Vec<Bin> = (first_bin..=last_bin)
        .map(|b| Bin {
            start_ms: b.saturating_mul(bin_ms),
            refused: vec![0; limits],
            ..Bin::default()
        })
        .collect();
    let mut keys: HashSet<&str> = HashSet::new();
    let mut current = None;
    for (row, refused_by) in rows {
        let i = usize::try_from(row.at / bin_ms - first_bin).unwrap_or(usize::MAX);
        let Some(bin) = bins.get_mut(i) else { continue };
        if current != Some(i) {
            current = Some(i);
            keys.clear();
        }
        if keys.insert(&row.key) {
            bin.keys += 1;
        }
        match refused_by.and_then(|l| bin.refused.get_mut(l)) {
            Some(n) => *n += 1,
            None => bin.admitted += 1,
        }
    }
    Panel {
        endpoint: endpoint.to_owned(),
        tier: tier.to_owned(),
        bin_ms,
        bins,
        lines,
        others,
    }
}

#[cfg(test)]
mod tests {
    // tests may panic
    #![allow(clippy::unwrap_used, clippy::expect_used)]

    use super::super::{replay, tests::row};
    use super::*;

    #[test]
    fn bins_are_the_policy_windows_aligned_to_utc_minutes() {
        // 40 s into a UTC minute, 5 txt2img requests every 10 s for 3 minutes
        // from two keys: the minute limit (3) refuses, per key and per minute.
        let base = 1_700_000_020_000;
        let mut rows = Vec::new();
        for s in 0..18u64 {
            for k in ["a", "b"] {
                let mut r = row(base + s * 10_000, "txt2img");
                r.key = k.into();
                rows.push(r);
            }
        }
        let policy = Policy::seed();
        let summary = replay(&policy, &rows, "basic", || {});
        let chart = Chart::build(&policy, &rows, "basic", &summary);
        assert_eq!(chart.limits, ["minute"]);
        let p = &chart.panels[0];
        assert_eq!(
            (p.endpoint.as_str(), p.tier.as_str(), p.bin_ms),
            ("txt2img", "basic", 60_000)
        );
        // The first bin is the UTC minute of the first request, not the request.
        assert_eq!(p.bins[0].start_ms, 1_699_999_980_000);
        assert_eq!(chart.start_ms, 1_699_999_980_000);
        assert_eq!(chart.end_ms, 1_700_000_220_000);
        assert_eq!(p.bins.len(), 4);
        // 20 s of the first minute: 2 rows per key, all admitted.
        assert_eq!(
            (p.bins[0].admitted, p.bins[0].refused[0], p.bins[0].keys),
            (4, 0, 2)
        );
        // A whole minute: 6 per key, 3 admitted.
        assert_eq!((p.bins[1].admitted, p.bins[1].refused[0]), (6, 6));
        assert_eq!(
            p.lines,
            [LimitLine {
                name: "minute".into(),
                count: 3,
                shared: false
            }]
        );
        assert_eq!(p.lines[0].at(&p.bins[1]), 6);
        assert_eq!(
            p.title(),
            "txt2img (tier basic), per minute: limit minute 3 per key (dashed); daily 100 per key"
        );
        assert_eq!((p.bins[1].total(), p.top()), (12, 12));
        let admitted: u64 = p.bins.iter().map(|b| b.admitted).sum();
        assert_eq!(admitted, summary.total.admitted);
    }

    #[test]
    fn a_long_trace_is_binned_on_the_daily_window() {
        // One request an hour for three days: too many minutes, so days.
        let rows: Vec<Row> = (0..72u64)
            .map(|h| row(1_699_920_000_000 + h * 3_600_000, "txt2video"))
            .collect();
        let policy = Policy::seed();
        let summary = replay(&policy, &rows, "basic", || {});
        let chart = Chart::build(&policy, &rows, "basic", &summary);
        let p = &chart.panels[0];
        assert_eq!(p.bin_ms, 86_400_000);
        assert_eq!(p.lines[0].name, "daily");
        assert_eq!(p.bins.len(), 3);
        assert_eq!(p.bins[0].start_ms % 86_400_000, 0);
        assert_eq!((p.bins[0].admitted, p.bins[0].refused[0]), (15, 9));
    }

    #[test]
    fn the_busiest_endpoints_are_drawn_in_policy_order() {
        let at = 1_700_000_000_000;
        let names = [
            "img-upscale",
            "txt2img",
            "img2img",
            "aud2txt",
            "img2txt",
            "vid2txt",
            "transcribe",
        ];
        let mut rows = Vec::new();
        for (n, name) in names.iter().enumerate() {
            for i in 0..=n as u64 {
                rows.push(row(at + i, name));
            }
        }
        rows.sort_by_key(|r| r.at);
        let policy = Policy::seed();
        let summary = replay(&policy, &rows, "basic", || {});
        let chart = Chart::build(&policy, &rows, "basic", &summary);
        let drawn: Vec<&str> = chart.panels.iter().map(|p| p.endpoint.as_str()).collect();
        assert_eq!(
            drawn,
            [
                "txt2img",
                "img2img",
                "transcribe",
                "vid2txt",
                "aud2txt",
                "img2txt"
            ]
        );
        assert_eq!(chart.hidden, ["img-upscale"]);
        assert_eq!(Chart::clock(1_700_000_020_000, true), "22:13:40");
    }
}
