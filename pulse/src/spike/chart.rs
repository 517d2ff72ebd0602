//! A hand-written SVG chart of a spike run: memory (MiB, left axis) and open
//! connections (right axis) over time, pulses shaded, with the checkpoints
//! after the last big pulse marked. No plotting dependency: the picture is
//! a few rectangles, polylines and labels.

use std::fmt::Write;

use super::sampler::Sample;
use super::schedule::{PhaseSpan, PulseKind, Stage};
use super::summary::Memory;
use crate::stats::MIB;
use crate::svg::{axis, fmt_tick, polylines, Layout};

const W: f64 = 1100.0;
const H: f64 = 540.0;
const LEFT: f64 = 80.0;
const RIGHT: f64 = 90.0;
const TOP: f64 = 70.0;
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

const RSS_COLOUR: &str = "#1f4e9c";
const ANON_COLOUR: &str = "#3c8d4f";
const OPEN_COLOUR: &str = "#e08a1e";
const BIG_FILL: &str = "#f4cccc";
const SMALL_FILL: &str = "#d3e2f4";

struct Scale {
    t_max: f64,
    mem_max: f64,
    open_max: f64,
}

impl Scale {
    fn x(&self, t_ms: u64) -> f64 {
        LEFT + PLOT_W * (t_ms as f64 / 1000.0) / self.t_max
    }
    fn y_mem(&self, mib: f64) -> f64 {
        TOP + PLOT_H * (1.0 - mib / self.mem_max)
    }
    fn y_open(&self, n: f64) -> f64 {
        TOP + PLOT_H * (1.0 - n / self.open_max)
    }
}

pub fn render(title: &str, samples: &[Sample], phases: &[PhaseSpan], memory: &Memory) -> String {
    let last_t = samples
        .iter()
        .map(|s| s.t_ms)
        .chain(phases.iter().map(|p| p.end_ms))
        .max()
        .unwrap_or(0);
    let (t_max, t_step) = axis(last_t as f64 / 1000.0, 14.0, 0.0);
    let max_rss = samples
        .iter()
        .filter_map(|s| s.rss_bytes)
        .max()
        .unwrap_or(0) as f64
        / MIB;
    let (mem_max, mem_step) = axis(max_rss, 6.0, 0.08);
    let max_open = samples.iter().map(|s| s.open).max().unwrap_or(0) as f64;
    let (open_max, open_step) = axis(max_open, 6.0, 0.08);
    let sc = Scale {
        t_max,
        mem_max,
        open_max,
    };

    let mut o = String::new();
    LAYOUT.open(&mut o, title);

    // Pulses: one band from the first connect to the last close.
    for p in phases.iter().filter(|p| p.stage == Stage::Connect) {
        let end = phases
            .iter()
            .filter(|q| q.pulse == p.pulse && q.index == p.index && q.stage == Stage::Close)
            .map(|q| q.end_ms)
            .max()
            .unwrap_or(p.end_ms);
        let (fill, name) = match p.pulse {
            Some(PulseKind::Big) => (BIG_FILL, "big"),
            _ => (SMALL_FILL, "small"),
        };
        let (x0, x1) = (sc.x(p.start_ms), sc.x(end));
        let _ = writeln!(
            o,
            r#"<rect x="{x0:.1}" y="{TOP}" width="{:.1}" height="{PLOT_H}" fill="{fill}" opacity="0.75"><title>{name} pulse {}</title></rect>"#,
            (x1 - x0).max(1.0),
            p.index
        );
        let _ = writeln!(
            o,
            r##"<text x="{x0:.1}" y="{:.1}" font-size="10" fill="#555">{}{}</text>"##,
            TOP - 4.0,
            &name[..1].to_uppercase(),
            p.index
        );
    }

    // Grid and axes.
    LAYOUT.left_grid(
        &mut o,
        mem_max,
        mem_step,
        &format!(r#" fill="{RSS_COLOUR}""#),
    );
    let mut n = 0.0;
    while n <= open_max + open_step / 2.0 {
        let y = sc.y_open(n);
        let _ = writeln!(
            o,
            r#"<text x="{:.1}" y="{:.1}" fill="{OPEN_COLOUR}">{}</text>"#,
            LEFT + PLOT_W + 8.0,
            y + 4.0,
            fmt_tick(n, open_step)
        );
        n += open_step;
    }
    LAYOUT.time_axis_and_frame(&mut o, t_max, t_step);
    let _ = writeln!(
        o,
        r#"<text transform="translate(22 {:.1}) rotate(-90)" text-anchor="middle" fill="{RSS_COLOUR}">memory (MiB)</text>"#,
        TOP + PLOT_H / 2.0
    );
    let _ = writeln!(
        o,
        r#"<text transform="translate({:.1} {:.1}) rotate(90)" text-anchor="middle" fill="{OPEN_COLOUR}">open connections</text>"#,
        W - 20.0,
        TOP + PLOT_H / 2.0
    );

    // Series: connections first so memory draws on top.
    polylines(
        &mut o,
        samples
            .iter()
            .map(|s| Some((sc.x(s.t_ms), sc.y_open(s.open as f64)))),
        &format!(r#"stroke="{OPEN_COLOUR}" stroke-width="1.5""#),
    );
    let mib = |b: Option<u64>| b.map(|b| b as f64 / MIB);
    polylines(
        &mut o,
        samples
            .iter()
            .map(|s| mib(s.rss_anon_bytes).map(|m| (sc.x(s.t_ms), sc.y_mem(m)))),
        &format!(r#"stroke="{ANON_COLOUR}" stroke-width="1.5" stroke-dasharray="6 3""#),
    );
    polylines(
        &mut o,
        samples
            .iter()
            .map(|s| mib(s.rss_bytes).map(|m| (sc.x(s.t_ms), sc.y_mem(m)))),
        &format!(r#"stroke="{RSS_COLOUR}" stroke-width="2""#),
    );

    // The end of the last big pulse and the checkpoints after it.
    if let Some(end) = memory.last_big_end_ms {
        let x = sc.x(end);
        let _ = writeln!(
            o,
            r##"<line x1="{x:.1}" y1="{TOP}" x2="{x:.1}" y2="{:.1}" stroke="#900" stroke-dasharray="3 3"/>"##,
            TOP + PLOT_H
        );
    }
    for (i, c) in memory.after_last_big.iter().enumerate() {
        if let (Some(t), Some(b)) = (c.t_ms, c.rss_bytes) {
            let (x, y) = (sc.x(t), sc.y_mem(b as f64 / MIB));
            // Early checkpoints sit close together: alternate label heights.
            let lift = if i.is_multiple_of(2) { 7.0 } else { 19.0 };
            let _ = writeln!(
                o,
                r##"<circle cx="{x:.1}" cy="{y:.1}" r="3.5" fill="#900"/><text x="{x:.1}" y="{:.1}" font-size="10" fill="#900" text-anchor="middle">+{}s {:.1}</text>"##,
                y - lift,
                c.after_s,
                b as f64 / MIB
            );
        }
    }

    // Legend, above the plot on the right.
    let items = [
        (RSS_COLOUR, "", "RSS (MiB)"),
        (ANON_COLOUR, r#" stroke-dasharray="6 3""#, "RSS anon (MiB)"),
        (OPEN_COLOUR, "", "open connections"),
    ];
    let mut lx = LEFT + PLOT_W - 440.0;
    for (colour, dash, name) in items {
        let _ = writeln!(
            o,
            r#"<line x1="{lx:.1}" y1="46" x2="{:.1}" y2="46" stroke="{colour}" stroke-width="2"{dash}/><text x="{:.1}" y="50">{name}</text>"#,
            lx + 24.0,
            lx + 30.0
        );
        lx += 150.0;
    }
    let _ = writeln!(
        o,
        r#"<rect x="{LEFT}" y="40" width="12" height="12" fill="{BIG_FILL}"/><text x="{:.1}" y="50">big pulse</text><rect x="{:.1}" y="40" width="12" height="12" fill="{SMALL_FILL}"/><text x="{:.1}" y="50">small pulse</text>"#,
        LEFT + 16.0,
        LEFT + 90.0,
        LEFT + 106.0
    );
    o.push_str("</svg>\n");
    o
}

#[cfg(test)]
#[path = "chart_tests.rs"]
mod tests;
