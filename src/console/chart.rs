//! The usage chart: calls per hour over the last 7 days, allowed vs refused, as SVG made on
//! the server (no script, no chart library).

use crate::domain::history::UsageHour;
use std::fmt::Write;
use time::{Duration, OffsetDateTime};

const HOURS: usize = 7 * 24;
const WIDTH: usize = 840;
const HEIGHT: usize = 160;
const BAR: usize = WIDTH / HOURS;

/// The SVG document. It holds only numbers we computed, so it is safe to embed as is.
pub fn usage_chart(usage: &[UsageHour], now: OffsetDateTime) -> String {
    let start = now - Duration::hours(HOURS as i64 - 1);
    let start =
        start - Duration::seconds(i64::from(start.minute()) * 60 + i64::from(start.second()));
    let mut buckets = vec![(0i64, 0i64); HOURS];
    for hour in usage {
        let index = (hour.hour - start).whole_hours();
        if let Some(bucket) = usize::try_from(index).ok().and_then(|i| buckets.get_mut(i)) {
            *bucket = (hour.ok, hour.refused);
        }
    }
    let busiest = buckets
        .iter()
        .map(|(ok, refused)| ok + refused)
        .max()
        .unwrap_or(0);
    // Bars are drawn against the busiest hour; a week without calls has none to draw.
    let peak = busiest.max(1);
    let mut svg = format!(
        "<svg xmlns=\"http://www.w3.org/2000/svg\" viewBox=\"0 0 {WIDTH} {}\" role=\"img\" \
         aria-label=\"Calls per hour over the last 7 days\">",
        HEIGHT + 20
    );
    let _ = write!(
        svg,
        "<rect x=\"0\" y=\"0\" width=\"{WIDTH}\" height=\"{HEIGHT}\" fill=\"#fafbfc\"/>"
    );
    for day in 1..7 {
        let x = day * 24 * BAR;
        let _ = write!(
            svg,
            "<line x1=\"{x}\" y1=\"0\" x2=\"{x}\" y2=\"{HEIGHT}\" stroke=\"#e2e5ea\"/>"
        );
    }
    for (i, (ok, refused)) in buckets.iter().enumerate() {
        let x = i * BAR;
        let scale = |n: i64| (n as f64 / peak as f64 * (HEIGHT - 18) as f64).round() as usize;
        let (ok_h, refused_h) = (scale(*ok), scale(*refused));
        let label = format!("{} ok, {} refused", ok, refused);
        if ok_h > 0 {
            let y = HEIGHT - ok_h;
            let _ = write!(
                svg,
                "<rect x=\"{x}\" y=\"{y}\" width=\"{}\" height=\"{ok_h}\" fill=\"#3b82f6\"><title>{label}</title></rect>",
                BAR - 1
            );
        }
        if refused_h > 0 {
            let y = HEIGHT - ok_h - refused_h;
            let _ = write!(
                svg,
                "<rect x=\"{x}\" y=\"{y}\" width=\"{}\" height=\"{refused_h}\" fill=\"#ef4444\"><title>{label}</title></rect>",
                BAR - 1
            );
        }
    }
    for day in 0..7 {
        let date = start + Duration::days(day);
        let x = day as usize * 24 * BAR + 4;
        let _ = write!(
            svg,
            "<text x=\"{x}\" y=\"{}\" font-size=\"11\" fill=\"#5d6677\">{:02}-{:02}</text>",
            HEIGHT + 15,
            u8::from(date.month()),
            date.day()
        );
    }
    let peak_label = match busiest {
        0 => "no calls".to_owned(),
        1 => "peak 1 call/h".to_owned(),
        n => format!("peak {n} calls/h"),
    };
    let _ = write!(
        svg,
        "<text x=\"4\" y=\"12\" font-size=\"11\" fill=\"#5d6677\">{peak_label}</text></svg>"
    );
    svg
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn draws_one_bar_pair_per_hour_with_calls_and_nothing_else() {
        let now = OffsetDateTime::now_utc();
        let hour = now - Duration::seconds(i64::from(now.minute()) * 60 + i64::from(now.second()));
        let usage = [UsageHour {
            hour,
            ok: 10,
            refused: 5,
        }];
        let svg = usage_chart(&usage, now);
        assert!(svg.starts_with("<svg") && svg.ends_with("</svg>"));
        assert_eq!(svg.matches("<title>10 ok, 5 refused</title>").count(), 2);
        assert!(svg.contains("peak 15 calls/h"));
        assert!(usage_chart(&[], now).contains(">no calls</text>"));
        let one = [UsageHour {
            hour,
            ok: 1,
            refused: 0,
        }];
        assert!(usage_chart(&one, now).contains(">peak 1 call/h</text>"));
        assert!(!svg.contains('&') && !svg.contains("script"));
        // The current hour is the last slot.
        let last_x = (HOURS - 1) * BAR;
        assert!(
            svg.contains(&format!("<rect x=\"{last_x}\"")),
            "the newest hour is drawn last"
        );
    }
}
