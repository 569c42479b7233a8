//! The page's charts, drawn as inline SVG (no script, no style attribute:
//! colors are presentation attributes, which the page's
//! `Content-Security-Policy` allows).
//!
//! - [`traffic`]: refusals per minute stacked by reason over the last hour
//!   (its own scale, on top, so that a rising 429 rate shows even under
//!   heavy admitted traffic), and admitted requests per minute below;
//! - [`refusals`]: one account's 429s per minute over the last hour;
//! - [`bar`]: a used/limit bar.

use std::fmt::Write as _;

use super::html::{esc, span};
use crate::activity::{Category, Counts};

/// Each category's color, in the order of [`Category::ALL`].
pub(crate) const COLORS: [&str; 10] = [
    "#7fa58a", // admitted: a quiet green
    "#f08c00", // 429 minute: orange
    "#d6336c", // 429 daily: crimson
    "#7048e8", // 429 tier-wide: violet
    "#1c7ed6", // 401: blue
    "#c92a2a", // 402: red
    "#868e96", // 404: grey
    "#0c8599", // 413: teal
    "#5c940d", // 422: olive
    "#343a40", // other: near black
];

/// The color of `c`.
pub(crate) fn color(c: Category) -> &'static str {
    COLORS[c as usize]
}

const WIDTH: u32 = 720;
const LEFT: u32 = 44;
const PLOT: u32 = WIDTH - LEFT - 8;

/// A number for an axis: `950`, `1.2k`, `3.4M`.
fn short(n: u64) -> String {
    match n {
        0..=999 => n.to_string(),
        1_000..=999_999 => format!("{:.1}k", n as f64 / 1e3),
        _ => format!("{:.1}M", n as f64 / 1e6),
    }
}

/// A scale's top: the largest value, rounded up to 1, 2 or 5 times a power of ten.
fn nice(max: u64) -> u64 {
    let mut step = 1u64;
    loop {
        for m in [1, 2, 5] {
            if step.saturating_mul(m) >= max {
                return step.saturating_mul(m).max(1);
            }
        }
        step = step.saturating_mul(10);
    }
}

/// One panel of stacked bars: `series` (oldest first), the categories
/// `shown` stacked bottom up, at `top` and `height` pixels.
fn panel(
    out: &mut String,
    series: &[Counts],
    bucket: u64,
    shown: &[Category],
    top: u32,
    height: u32,
    caption: &str,
) {
    let totals: Vec<u64> = series
        .iter()
        .map(|c| shown.iter().map(|&k| u64::from(c[k as usize])).sum())
        .collect();
    let max = nice(totals.iter().copied().max().unwrap_or(0));
    let bottom = top + height;
    let _ = write!(
        out,
        r##"<text x="{LEFT}" y="{}" class="caption" font-size="12" fill="#212529">{}</text>"##,
        top.saturating_sub(4),
        esc(caption)
    );
    // The axis: 0 and the top.
    let _ = write!(
        out,
        r##"<line x1="{LEFT}" y1="{bottom}" x2="{}" y2="{bottom}" stroke="#adb5bd"/><line x1="{LEFT}" y1="{top}" x2="{}" y2="{top}" stroke="#e9ecef"/><text x="{}" y="{}" font-size="10" text-anchor="end" fill="#495057">{}</text><text x="{}" y="{bottom}" font-size="10" text-anchor="end" fill="#495057">0</text>"##,
        LEFT + PLOT,
        LEFT + PLOT,
        LEFT - 4,
        top + 9,
        short(max),
        LEFT - 4,
    );
    let n = u32::try_from(series.len().max(1)).unwrap_or(1);
    let step = f64::from(PLOT) / f64::from(n);
    let bar = (step - 1.0).max(1.0);
    let last = series.len().saturating_sub(1);
    for (i, counts) in series.iter().enumerate() {
        if shown.iter().all(|&k| counts[k as usize] == 0) {
            continue;
        }
        // One group per bar, its tooltip naming every part.
        let back = u64::try_from(last - i).unwrap_or(0);
        let when = if back == 0 {
            "now".to_owned()
        } else {
            format!("{} ago", span(back * bucket))
        };
        let parts: Vec<String> = shown
            .iter()
            .filter(|&&k| counts[k as usize] > 0)
            .map(|&k| format!("{} {}", k.label(), counts[k as usize]))
            .collect();
        let x = f64::from(LEFT) + step * i as f64;
        let _ = write!(
            out,
            r#"<g transform="translate({x:.1})"><title>{when}: {}</title>"#,
            parts.join(", ")
        );
        let mut y = f64::from(bottom);
        for &k in shown {
            let v = counts[k as usize];
            if v == 0 {
                continue;
            }
            let h = f64::from(height) * f64::from(v) / max as f64;
            y -= h;
            let _ = write!(
                out,
                r#"<rect y="{y:.1}" width="{bar:.1}" height="{h:.1}" fill="{}"/>"#,
                color(k),
            );
        }
        out.push_str("</g>");
    }
}

/// Words for a bucket of `secs` seconds: `minute`, `5 s`.
fn per(secs: u64) -> String {
    if secs == 60 {
        "minute".to_owned()
    } else {
        span(secs)
    }
}

/// The Now chart: `series` (buckets of `bucket` seconds, oldest first) as
/// refusals by reason (top) and admitted requests (below). `id` is the
/// element's id.
pub(crate) fn traffic(id: &str, series: &[Counts], bucket: u64) -> String {
    let per_minute = series;
    let unit = per(bucket);
    let whole = span(bucket * u64::try_from(series.len()).unwrap_or(0));
    let refused: Vec<Category> = Category::ALL
        .into_iter()
        .filter(|c| *c != Category::Admitted)
        .collect();
    let total_refused: u64 = per_minute
        .iter()
        .map(|c| {
            refused
                .iter()
                .map(|&k| u64::from(c[k as usize]))
                .sum::<u64>()
        })
        .sum();
    let total_limited: u64 = per_minute
        .iter()
        .map(|c| {
            refused
                .iter()
                .filter(|k| k.is_limit())
                .map(|&k| u64::from(c[k as usize]))
                .sum::<u64>()
        })
        .sum();
    let total_admitted: u64 = per_minute
        .iter()
        .map(|c| u64::from(c[Category::Admitted as usize]))
        .sum();
    let height = 300;
    let mut out = String::with_capacity(16 * 1024);
    let _ = write!(
        out,
        r##"<svg id="{id}" xmlns="http://www.w3.org/2000/svg" viewBox="0 0 {WIDTH} {height}" width="100%" role="img" aria-labelledby="{id}-title"><title id="{id}-title">Requests per {unit} over the last {whole} on this node: {total_refused} refused ({total_limited} by a rate limit), {total_admitted} admitted</title>"##
    );
    panel(
        &mut out,
        per_minute,
        bucket,
        &refused,
        20,
        150,
        &format!("refused per {unit}, by reason (this node)"),
    );
    panel(
        &mut out,
        per_minute,
        bucket,
        &[Category::Admitted],
        200,
        70,
        &format!("admitted per {unit} (this node)"),
    );
    let _ = write!(
        out,
        r##"<text x="{LEFT}" y="{}" font-size="10" fill="#495057">{whole} ago</text><text x="{}" y="{}" font-size="10" text-anchor="end" fill="#495057">now</text>"##,
        height - 16,
        LEFT + PLOT,
        height - 16,
    );
    // The legend, in the chart itself (so that the live copy has it too).
    let mut x = LEFT;
    for c in Category::ALL {
        let _ = write!(
            out,
            r##"<rect x="{x}" y="{}" width="10" height="10" fill="{}"/><text x="{}" y="{}" font-size="10" fill="#212529">{}</text>"##,
            height - 10,
            color(c),
            x + 13,
            height - 1,
            c.label()
        );
        x += 20 + 6 * u32::try_from(c.label().len()).unwrap_or(8);
    }
    out.push_str("</svg>");
    out
}

/// One account's rate-limit refusals per minute (60, oldest first),
/// stacked by limit kind.
pub(crate) fn refusals(id: &str, per_minute: &[Counts]) -> String {
    let kinds = [Category::Minute, Category::Daily, Category::TierWide];
    let total: u64 = per_minute
        .iter()
        .map(|c| kinds.iter().map(|&k| u64::from(c[k as usize])).sum::<u64>())
        .sum();
    let mut out = String::with_capacity(4096);
    let _ = write!(
        out,
        r##"<svg id="{id}" xmlns="http://www.w3.org/2000/svg" viewBox="0 0 {WIDTH} 160" width="100%" role="img" aria-labelledby="{id}-title"><title id="{id}-title">Rate-limit refusals (429) per minute over the last hour on this node: {total}</title>"##
    );
    panel(
        &mut out,
        per_minute,
        60,
        &kinds,
        20,
        100,
        "429s per minute, by limit (this node)",
    );
    let _ = write!(
        out,
        r##"<text x="{LEFT}" y="136" font-size="10" fill="#495057">60 min ago</text><text x="{}" y="136" font-size="10" text-anchor="end" fill="#495057">now</text>"##,
        LEFT + PLOT
    );
    let mut x = LEFT;
    for c in kinds {
        let _ = write!(
            out,
            r##"<rect x="{x}" y="146" width="10" height="10" fill="{}"/><text x="{}" y="155" font-size="10" fill="#212529">{}</text>"##,
            color(c),
            x + 13,
            c.label()
        );
        x += 20 + 6 * u32::try_from(c.label().len()).unwrap_or(8);
    }
    out.push_str("</svg>");
    out
}

/// A bar of `used` out of `limit` (red when none remains, orange past 80%).
pub(crate) fn bar(used: u64, limit: u64) -> String {
    let width = 160.0;
    let frac = if limit == 0 {
        1.0
    } else {
        (used as f64 / limit as f64).min(1.0)
    };
    let fill = if frac >= 1.0 {
        "#c92a2a"
    } else if frac >= 0.8 {
        "#f08c00"
    } else {
        "#2f9e44"
    };
    format!(
        r##"<svg class="bar" xmlns="http://www.w3.org/2000/svg" viewBox="0 0 160 12" width="160" height="12" role="img"><title>{used} of {limit} used</title><rect width="{width}" height="12" fill="#e9ecef"/><rect width="{:.1}" height="12" fill="{fill}"/></svg>"##,
        width * frac
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scales_round_up_and_numbers_stay_short() {
        assert_eq!(nice(0), 1);
        assert_eq!(nice(7), 10);
        assert_eq!(nice(11), 20);
        assert_eq!(nice(300), 500);
        assert_eq!(short(1234), "1.2k");
    }

    #[test]
    fn a_chart_has_its_id_title_and_legend() {
        let mut minute = [0; crate::activity::CATEGORIES];
        minute[Category::Daily as usize] = 3;
        let svg = traffic("chart-now", &vec![minute; 60], 60);
        assert!(svg.contains("per minute over the last 60 min"));
        assert!(svg.starts_with(r#"<svg id="chart-now""#));
        assert!(svg.contains("<title id=\"chart-now-title\">"));
        assert!(svg.contains("180 refused (180 by a rate limit)"));
        assert!(svg.contains("429 tier-wide"));
        assert!(!svg.contains("style="));
        assert!(bar(5, 10).contains("5 of 10 used"));
        assert!(svg.contains("<title>now: 429 daily 3</title>"));
        assert!(svg.contains("<title>2 min ago: 429 daily 3</title>"));
    }

    #[test]
    fn the_heaviest_chart_stays_under_56_kb() {
        // Every category in every minute of the hour.
        let minute = [123_456; crate::activity::CATEGORIES];
        let svg = traffic("chart-now", &vec![minute; 60], 60);
        // 53,967 bytes when measured; docs/gateway.md states it.
        assert!(svg.len() < 56 * 1024, "{} bytes", svg.len());
    }
}
