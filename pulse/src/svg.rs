//! What the hand-written SVG charts (`spike`'s and `fleet`'s) share: round
//! axis ticks, escaping, the page and its title, the left-hand grid, the
//! time axis with the plot's frame, and polylines broken at failed readings.
//! No plotting dependency: a chart is a few rectangles, polylines and labels.

use std::fmt::Write;

/// Where a chart draws: the page size and the margins around the plot.
pub(crate) struct Layout {
    pub w: f64,
    pub h: f64,
    pub left: f64,
    pub right: f64,
    pub top: f64,
    pub bottom: f64,
}

impl Layout {
    pub const fn plot_w(&self) -> f64 {
        self.w - self.left - self.right
    }

    pub const fn plot_h(&self) -> f64 {
        self.h - self.top - self.bottom
    }

    /// The `<svg>` element, a white background and the title.
    pub fn open(&self, o: &mut String, title: &str) {
        let (w, h, left) = (self.w, self.h, self.left);
        let _ = writeln!(
            o,
            r#"<svg xmlns="http://www.w3.org/2000/svg" width="{w}" height="{h}" viewBox="0 0 {w} {h}" font-family="sans-serif" font-size="12">"#
        );
        let _ = writeln!(
            o,
            r#"<rect x="0" y="0" width="{w}" height="{h}" fill="white"/>"#
        );
        let _ = writeln!(
            o,
            r#"<text x="{left}" y="24" font-size="16" font-weight="bold">{}</text>"#,
            esc(title)
        );
    }

    /// Grid lines across the plot with their labels on the left, for a
    /// left axis from 0 to `max` in `step`s; `label_attrs` is added to each
    /// label's `<text>` (say a ` fill`).
    pub fn left_grid(&self, o: &mut String, max: f64, step: f64, label_attrs: &str) {
        let mut v = 0.0;
        while v <= max + step / 2.0 {
            let y = self.top + self.plot_h() * (1.0 - v / max);
            let _ = writeln!(
                o,
                r##"<line x1="{}" y1="{y:.1}" x2="{:.1}" y2="{y:.1}" stroke="#e3e3e3"/><text x="{:.1}" y="{:.1}" text-anchor="end"{label_attrs}>{}</text>"##,
                self.left,
                self.left + self.plot_w(),
                self.left - 8.0,
                y + 4.0,
                fmt_tick(v, step)
            );
            v += step;
        }
    }

    /// Time ticks (seconds, 0 to `t_max` in `t_step`s) under the plot, the
    /// plot's frame and the time axis label.
    pub fn time_axis_and_frame(&self, o: &mut String, t_max: f64, t_step: f64) {
        let (left, top, plot_w, plot_h) = (self.left, self.top, self.plot_w(), self.plot_h());
        let mut t = 0.0;
        while t <= t_max + t_step / 2.0 {
            let x = left + plot_w * t / t_max;
            let _ = writeln!(
                o,
                r#"<line x1="{x:.1}" y1="{:.1}" x2="{x:.1}" y2="{:.1}" stroke="black"/><text x="{x:.1}" y="{:.1}" text-anchor="middle">{}</text>"#,
                top + plot_h,
                top + plot_h + 5.0,
                top + plot_h + 19.0,
                fmt_tick(t, t_step)
            );
            t += t_step;
        }
        let _ = writeln!(
            o,
            r#"<rect x="{left}" y="{top}" width="{plot_w}" height="{plot_h}" fill="none" stroke="black"/>"#
        );
        let _ = writeln!(
            o,
            r#"<text x="{:.1}" y="{:.1}" text-anchor="middle">time (s)</text>"#,
            left + plot_w / 2.0,
            self.h - 16.0
        );
    }
}

/// A round step giving about `ticks` ticks up to `max`.
fn nice_step(max: f64, ticks: f64) -> f64 {
    let raw = (max / ticks).max(f64::MIN_POSITIVE);
    let mag = 10f64.powf(raw.log10().floor());
    let norm = raw / mag;
    let n = if norm <= 1.0 {
        1.0
    } else if norm <= 2.0 {
        2.0
    } else if norm <= 5.0 {
        5.0
    } else {
        10.0
    };
    n * mag
}

/// (axis top, step) for values up to `max`, with `headroom` (0.08 = 8%)
/// so a line at its maximum does not run along the frame.
pub(crate) fn axis(max: f64, ticks: f64, headroom: f64) -> (f64, f64) {
    let max = if max > 0.0 {
        max * (1.0 + headroom)
    } else {
        1.0
    };
    let step = nice_step(max, ticks);
    ((max / step).ceil() * step, step)
}

pub(crate) fn fmt_tick(v: f64, step: f64) -> String {
    if step >= 1.0 {
        format!("{v:.0}")
    } else {
        let decimals = (-step.log10().floor()) as usize;
        format!("{v:.decimals$}")
    }
}

pub(crate) fn esc(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

/// Polylines for one series; a failed reading (`None`) breaks the line.
pub(crate) fn polylines(
    out: &mut String,
    points: impl Iterator<Item = Option<(f64, f64)>>,
    style: &str,
) {
    let mut run: Vec<String> = Vec::new();
    let flush = |run: &mut Vec<String>, out: &mut String| {
        if run.len() > 1 {
            let _ = writeln!(
                out,
                r#"<polyline fill="none" {style} points="{}"/>"#,
                run.join(" ")
            );
        }
        run.clear();
    };
    for p in points {
        match p {
            Some((x, y)) => run.push(format!("{x:.1},{y:.1}")),
            None => flush(&mut run, out),
        }
    }
    flush(&mut run, out);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ticks_are_round() {
        assert_eq!(nice_step(97.0, 6.0), 20.0);
        assert_eq!(nice_step(0.9, 6.0), 0.2);
        assert_eq!(axis(100.0, 6.0, 0.08), (120.0, 20.0));
        assert_eq!(axis(120.6, 14.0, 0.0), (130.0, 10.0));
        assert_eq!(fmt_tick(0.4, 0.2), "0.4");
    }
}
