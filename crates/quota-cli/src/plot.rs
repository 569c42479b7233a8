//! `quota simulate --plot`: when requests were refused, and by which limit,
//! as SVG. One panel per endpoint (`quota_core::replay::Chart`): a bar per
//! window of the policy, admitted requests at the bottom, refusals stacked
//! on them in the colour of the limit that refused them, and the limit of
//! that window as a dashed line.

use std::path::Path;

use plotters::coord::Shift;
use plotters::prelude::*;
use quota_core::replay::{Chart, Panel};

const ADMITTED: RGBColor = RGBColor(0x43, 0xa0, 0x47);
/// Refusals: one colour per limit, in the order the replay met them.
const REFUSED: [RGBColor; 5] = [
    RGBColor(0xd3, 0x2f, 0x2f),
    RGBColor(0x7b, 0x1f, 0xa2),
    RGBColor(0xf5, 0x7c, 0x00),
    RGBColor(0x5d, 0x40, 0x37),
    RGBColor(0x00, 0x83, 0x8f),
];
const PANEL_HEIGHT: u32 = 210;
const HEADER: u32 = 64;

fn colour(limit: usize) -> RGBColor {
    REFUSED[limit % REFUSED.len()]
}

/// Draws `chart` into `out` (SVG).
pub(crate) fn draw(out: &Path, chart: &Chart) -> anyhow::Result<()> {
    let err = |e: &dyn std::fmt::Display| anyhow::anyhow!("cannot draw {}: {e}", out.display());
    let panels = u32::try_from(chart.panels.len()).unwrap_or(1).max(1);
    let root = SVGBackend::new(out, (1000, HEADER + PANEL_HEIGHT * panels)).into_drawing_area();
    root.fill(&WHITE).map_err(|e| err(&e))?;
    let (header, body) = root.split_vertically(HEADER);
    let mut title = format!("Requests per window, from {}", Chart::utc(chart.start_ms));
    if !chart.hidden.is_empty() {
        title.push_str(&format!(
            " ({} more endpoints not drawn)",
            chart.hidden.len()
        ));
    }
    let text =
        |s: &str, x: i32, y: i32, size: u32| Text::new(s.to_owned(), (x, y), ("sans-serif", size));
    header.draw(&text(&title, 16, 8, 20)).map_err(|e| err(&e))?;
    // The legend: admitted, each refusing limit, the limit line.
    let mut x = 16;
    let mut keys = vec![("admitted".to_owned(), ADMITTED)];
    keys.extend(
        chart
            .limits
            .iter()
            .enumerate()
            .map(|(i, n)| (format!("refused by {n}"), colour(i))),
    );
    for (label, c) in keys {
        header
            .draw(&Rectangle::new([(x, 38), (x + 14, 52)], c.filled()))
            .map_err(|e| err(&e))?;
        header
            .draw(&text(&label, x + 20, 38, 15))
            .map_err(|e| err(&e))?;
        x += 30 + 8 * i32::try_from(label.len()).unwrap_or(10);
    }
    for dash in [x, x + 11, x + 22] {
        let dash = PathElement::new([(dash, 45), (dash + 7, 45)], BLACK.stroke_width(2));
        header.draw(&dash).map_err(|e| err(&e))?;
    }
    header
        .draw(&text(
            "limit of the window (per key, times the keys sending)",
            x + 36,
            38,
            15,
        ))
        .map_err(|e| err(&e))?;
    for (area, panel) in body
        .split_evenly((chart.panels.len().max(1), 1))
        .iter()
        .zip(&chart.panels)
    {
        draw_panel(area, chart, panel).map_err(|e| err(&e))?;
    }
    root.present().map_err(|e| err(&e))?;
    Ok(())
}

type DrawResult = Result<(), DrawingAreaErrorKind<std::io::Error>>;

fn draw_panel(area: &DrawingArea<SVGBackend<'_>, Shift>, chart: &Chart, p: &Panel) -> DrawResult {
    let secs = |ms: u64| ms.saturating_sub(chart.start_ms) as f64 / 1000.0;
    let top = p.top();
    let with_seconds = p.bin_ms % 60_000 != 0 || chart.end_ms - chart.start_ms < 600_000;
    let mut c = ChartBuilder::on(area)
        .caption(p.title(), ("sans-serif", 16))
        .margin(8)
        .margin_right(28)
        .x_label_area_size(28)
        .y_label_area_size(50)
        .build_cartesian_2d(0f64..secs(chart.end_ms), 0u64..top + top / 8 + 1)?;
    c.configure_mesh()
        .disable_x_mesh()
        .x_labels(12)
        .y_labels(5)
        .x_label_formatter(&|x| Chart::clock(chart.start_ms + (x * 1000.0) as u64, with_seconds))
        .y_desc("requests")
        .draw()?;
    // The bars: admitted, then each limit's refusals stacked on them.
    for b in &p.bins {
        let (x0, x1) = (secs(b.start_ms), secs(b.start_ms + p.bin_ms));
        let gap = (x1 - x0) * 0.08;
        let mut y = 0;
        let layers = [(b.admitted, ADMITTED)]
            .into_iter()
            .chain(b.refused.iter().enumerate().map(|(i, &n)| (n, colour(i))));
        for (n, c2) in layers.filter(|(n, _)| *n > 0) {
            c.draw_series([Rectangle::new(
                [(x0 + gap, y), (x1 - gap, y + n)],
                c2.filled(),
            )])?;
            y += n;
        }
    }
    // Each limit of the bins' window, as a step line.
    for line in &p.lines {
        let steps = p.bins.iter().flat_map(|b| {
            let y = line.at(b);
            [(secs(b.start_ms), y), (secs(b.start_ms + p.bin_ms), y)]
        });
        c.draw_series(DashedLineSeries::new(steps, 6, 4, BLACK.stroke_width(2)))?;
    }
    Ok(())
}
