//! The fleet chart: each server's RSS and their sum over time, each spike
//! shaded in its server's colour. Hand-written SVG, like `spike`'s chart.

use std::fmt::Write;

use super::plan::SpikeSpan;
use super::sampler::FleetSample;
use crate::stats::MIB;
use crate::svg::{axis, esc, polylines, Layout};

const W: f64 = 1100.0;
const H: f64 = 540.0;
const LEFT: f64 = 80.0;
const RIGHT: f64 = 30.0;
const TOP: f64 = 90.0;
const BOTTOM: f64 = 60.0;
const PLOT_W: f64 = W - LEFT - RIGHT;
const PLOT_H: f64 = H - TOP - BOTTOM;
const LAYOUT: Layout = Layout {
    w: W,
    h: H,
    left: LEFT,
    right: RIGHT,
    top: TOP,
    bottom: BOTTOM,
};

/// Server colours in order, repeated past the sixth.
const COLOURS: [&str; 6] = [
    "#1f4e9c", "#3c8d4f", "#e08a1e", "#7b3fa0", "#c2410c", "#0f766e",
];
const SUM_COLOUR: &str = "#222222";

fn colour(server: usize) -> &'static str {
    COLOURS[server % COLOURS.len()]
}

/// `names` are the servers' labels, in order.
pub fn render(
    title: &str,
    names: &[String],
    samples: &[FleetSample],
    spans: &[SpikeSpan],
) -> String {
    let last_t = samples.iter().map(|s| s.t_ms).max().unwrap_or(0);
    let (t_max, t_step) = axis(last_t as f64 / 1000.0, 14.0, 0.0);
    let top_bytes = samples
        .iter()
        .filter_map(FleetSample::sum_rss)
        .chain(
            samples
                .iter()
                .flat_map(|s| s.rss_bytes.iter().copied().flatten()),
        )
        .max()
        .unwrap_or(0);
    let (mem_max, mem_step) = axis(top_bytes as f64 / MIB, 6.0, 0.08);
    let x = |t_ms: u64| LEFT + PLOT_W * (t_ms as f64 / 1000.0) / t_max;
    let y = |mib: f64| TOP + PLOT_H * (1.0 - mib / mem_max);

    let mut o = String::new();
    LAYOUT.open(&mut o, title);

    for span in spans {
        let (x0, x1) = (x(span.start_ms), x(span.end_ms));
        let _ = writeln!(
            o,
            r#"<rect x="{x0:.1}" y="{TOP}" width="{:.1}" height="{PLOT_H}" fill="{}" opacity="0.13"><title>server {} spike {}</title></rect>"#,
            (x1 - x0).max(1.0),
            colour(span.server),
            span.server + 1,
            span.round + 1
        );
        let _ = writeln!(
            o,
            r#"<text x="{x0:.1}" y="{:.1}" font-size="10" fill="{}">{}</text>"#,
            TOP - 4.0,
            colour(span.server),
            span.server + 1
        );
    }

    LAYOUT.left_grid(&mut o, mem_max, mem_step, "");
    LAYOUT.time_axis_and_frame(&mut o, t_max, t_step);
    let _ = writeln!(
        o,
        r#"<text transform="translate(22 {:.1}) rotate(-90)" text-anchor="middle">RSS (MiB)</text>"#,
        TOP + PLOT_H / 2.0
    );

    let mib = |b: Option<u64>| b.map(|b| b as f64 / MIB);
    for server in 0..names.len() {
        polylines(
            &mut o,
            samples.iter().map(|s| {
                mib(s.rss_bytes.get(server).copied().flatten()).map(|m| (x(s.t_ms), y(m)))
            }),
            &format!(
                r#"stroke="{}" stroke-width="1.8" data-series="server-{}""#,
                colour(server),
                server + 1
            ),
        );
    }
    polylines(
        &mut o,
        samples
            .iter()
            .map(|s| mib(s.sum_rss()).map(|m| (x(s.t_ms), y(m)))),
        &format!(r#"stroke="{SUM_COLOUR}" stroke-width="2.6" data-series="sum""#),
    );

    // Legend: one row above the plot.
    let mut lx = LEFT;
    let entries = names
        .iter()
        .enumerate()
        .map(|(i, n)| (colour(i), format!("{}: {n}", i + 1)))
        .chain(std::iter::once((SUM_COLOUR, "sum of all".to_string())));
    for (c, label) in entries {
        let _ = writeln!(
            o,
            r#"<line x1="{lx:.1}" y1="50" x2="{:.1}" y2="50" stroke="{c}" stroke-width="3"/><text x="{:.1}" y="54">{}</text>"#,
            lx + 22.0,
            lx + 28.0,
            esc(&label)
        );
        lx += 36.0 + 7.0 * label.len() as f64;
    }
    let _ = writeln!(
        o,
        r##"<text x="{LEFT}" y="74" font-size="11" fill="#555">shaded: a spike's connections open, numbered by server</text>"##
    );
    o.push_str("</svg>\n");
    o
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_line_per_server_and_one_for_the_sum() {
        let samples: Vec<FleetSample> = (0..10u64)
            .map(|i| FleetSample {
                t_ms: i * 1000,
                open: vec![0, 0, 0],
                rss_bytes: vec![Some(10 << 20), Some((10 + i) << 20), Some(5 << 20)],
            })
            .collect();
        let spans = [SpikeSpan {
            server: 1,
            round: 0,
            start_ms: 2000,
            end_ms: 4000,
            opened: 10,
        }];
        let names = ["a:1".to_string(), "b:2".to_string(), "c<3>".to_string()];
        let svg = render("three", &names, &samples, &spans);
        for series in ["server-1", "server-2", "server-3", "sum"] {
            assert_eq!(
                svg.matches(&format!("data-series=\"{series}\"")).count(),
                1,
                "{series}"
            );
        }
        assert!(svg.contains("server 2 spike 1"));
        assert!(svg.contains("3: c&lt;3&gt;"), "names are escaped");
        assert!(svg.trim_end().ends_with("</svg>"));
    }
}
