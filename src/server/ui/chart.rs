//! The throughput chart: completed and failed tasks per minute as an inline
//! SVG of stacked bars, drawn on the server so the page needs no script
//! and no image file.

use std::fmt::Write as _;

use crate::server::admin::Minute;

const WIDTH: u64 = 600;
const HEIGHT: u64 = 120;
/// Room on the left for the scale's label.
const LEFT: u64 = 40;

/// The chart of `minutes`, oldest first, one bar a minute; the scale's top
/// is the busiest minute. Numbers only: nothing from a task reaches it.
pub(crate) fn throughput_svg(minutes: &[Minute]) -> String {
    let top = minutes
        .iter()
        .map(|m| m.completed.saturating_add(m.failed))
        .max()
        .unwrap_or(0)
        .max(1);
    let n = (minutes.len() as u64).max(1);
    let slot = (WIDTH - LEFT) / n;
    let bar = slot.saturating_sub(1).max(1);
    let (done, failed) = minutes.iter().fold((0u64, 0u64), |(c, f), m| {
        (c.saturating_add(m.completed), f.saturating_add(m.failed))
    });
    let mut svg = String::with_capacity(256 + minutes.len() * 160);
    let _ = write!(
        svg,
        "<svg class=\"chart\" viewBox=\"0 0 {WIDTH} {h}\" role=\"img\" \
         xmlns=\"http://www.w3.org/2000/svg\"><title>{done} completed and {failed} failed \
         in the last {n} minutes</title>",
        h = HEIGHT + 16,
    );
    let _ = write!(
        svg,
        "<text x=\"0\" y=\"10\" class=\"scale\">{top}/min</text>\
         <text x=\"0\" y=\"{HEIGHT}\" class=\"scale\">0</text>\
         <line x1=\"{LEFT}\" y1=\"{HEIGHT}\" x2=\"{WIDTH}\" y2=\"{HEIGHT}\" class=\"axis\"/>"
    );
    for (i, m) in minutes.iter().enumerate() {
        let x = LEFT + i as u64 * slot;
        let ok = scaled(m.completed, top);
        let bad = scaled(m.failed, top);
        if ok > 0 {
            let _ = write!(
                svg,
                "<rect class=\"ok\" x=\"{x}\" y=\"{}\" width=\"{bar}\" height=\"{ok}\"/>",
                HEIGHT - ok
            );
        }
        if bad > 0 {
            let _ = write!(
                svg,
                "<rect class=\"bad\" x=\"{x}\" y=\"{}\" width=\"{bar}\" height=\"{bad}\"/>",
                HEIGHT.saturating_sub(ok + bad)
            );
        }
    }
    let _ = write!(
        svg,
        "<text x=\"{LEFT}\" y=\"{}\" class=\"scale\">{n} min ago</text>\
         <text x=\"{WIDTH}\" y=\"{}\" class=\"scale end\">now</text></svg>",
        HEIGHT + 14,
        HEIGHT + 14
    );
    svg
}

/// `value`'s bar height out of `HEIGHT` for a scale topped at `top`; a
/// minute with anything in it shows at least one pixel.
fn scaled(value: u64, top: u64) -> u64 {
    if value == 0 {
        return 0;
    }
    (u128::from(value) * u128::from(HEIGHT) / u128::from(top.max(1))).clamp(1, u128::from(HEIGHT))
        as u64
}

#[cfg(test)]
mod tests {
    use super::*;

    fn count(svg: &str, needle: &str) -> usize {
        svg.matches(needle).count()
    }

    #[test]
    fn one_bar_per_busy_minute_scaled_to_the_busiest() {
        let mut minutes = vec![Minute::default(); 60];
        minutes[10] = Minute {
            start: 0,
            completed: 30,
            failed: 0,
        };
        minutes[59] = Minute {
            start: 0,
            completed: 45,
            failed: 15,
        };
        let svg = throughput_svg(&minutes);
        assert_eq!(count(&svg, "class=\"ok\""), 2, "{svg}");
        assert_eq!(count(&svg, "class=\"bad\""), 1, "{svg}");
        assert!(svg.contains("<title>75 completed and 15 failed in the last 60 minutes</title>"));
        assert!(svg.contains(">60/min<"), "{svg}");
        // The busiest minute fills the height: 45 + 15 of 60.
        assert!(
            svg.contains("height=\"90\"") && svg.contains("height=\"30\""),
            "{svg}"
        );
        // 30 of 60 is half.
        assert!(svg.contains("y=\"60\" width=\"8\" height=\"60\""), "{svg}");
    }

    #[test]
    fn an_empty_or_huge_series_draws_without_overflow() {
        assert!(throughput_svg(&[]).starts_with("<svg"));
        let svg = throughput_svg(&[Minute {
            start: 0,
            completed: u64::MAX,
            failed: u64::MAX,
        }]);
        assert!(svg.ends_with("</svg>"));
        assert_eq!(scaled(1, u64::MAX), 1);
        assert_eq!(scaled(u64::MAX, u64::MAX), HEIGHT);
    }
}
