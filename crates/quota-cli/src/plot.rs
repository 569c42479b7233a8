//! `quota simulate --plot`: admitted and refused requests over time, as SVG.

use std::path::Path;

use plotters::prelude::*;

/// Draws the timeline (`(ms since the first request, admitted)`) into `out`.
pub(crate) fn draw(out: &Path, timeline: &[(u64, bool)]) -> anyhow::Result<()> {
    let span_ms = timeline.iter().map(|t| t.0).max().unwrap_or(0);
    // About 120 buckets, each at least a second.
    let bucket_ms = span_ms.div_ceil(120).max(1000);
    let buckets = usize::try_from(span_ms / bucket_ms + 1).unwrap_or(1);
    let mut admitted = vec![0u64; buckets];
    let mut refused = vec![0u64; buckets];
    for &(t, ok) in timeline {
        let i = usize::try_from(t / bucket_ms).unwrap_or(0).min(buckets - 1);
        if ok {
            admitted[i] += 1;
        } else {
            refused[i] += 1;
        }
    }
    let top = admitted
        .iter()
        .chain(&refused)
        .copied()
        .max()
        .unwrap_or(0)
        .max(1);
    let secs = |i: usize| (i as u64 * bucket_ms) as f64 / 1000.0;
    let x_max = secs(buckets).max(1.0);

    let root = SVGBackend::new(out, (960, 480)).into_drawing_area();
    let err = |e: &dyn std::fmt::Display| anyhow::anyhow!("cannot draw {}: {e}", out.display());
    root.fill(&WHITE).map_err(|e| err(&e))?;
    let mut chart = ChartBuilder::on(&root)
        .caption(
            format!("requests per {} s", bucket_ms as f64 / 1000.0),
            ("sans-serif", 20),
        )
        .margin(12)
        .x_label_area_size(40)
        .y_label_area_size(60)
        .build_cartesian_2d(0f64..x_max, 0u64..top + top / 10 + 1)
        .map_err(|e| err(&e))?;
    chart
        .configure_mesh()
        .x_desc("seconds since the first request")
        .y_desc("requests")
        .draw()
        .map_err(|e| err(&e))?;
    let green = RGBColor(0x2e, 0x7d, 0x32);
    let red = RGBColor(0xc6, 0x28, 0x28);
    chart
        .draw_series(LineSeries::new(
            admitted.iter().enumerate().map(|(i, &n)| (secs(i), n)),
            green.stroke_width(2),
        ))
        .map_err(|e| err(&e))?
        .label("admitted")
        .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 20, y)], green.stroke_width(2)));
    chart
        .draw_series(LineSeries::new(
            refused.iter().enumerate().map(|(i, &n)| (secs(i), n)),
            red.stroke_width(2),
        ))
        .map_err(|e| err(&e))?
        .label("refused")
        .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 20, y)], red.stroke_width(2)));
    chart
        .configure_series_labels()
        .background_style(WHITE.mix(0.8))
        .border_style(BLACK)
        .draw()
        .map_err(|e| err(&e))?;
    root.present().map_err(|e| err(&e))?;
    Ok(())
}
