//! The month's two charts as SVG: sends per slot, stacked by channel, and queue depth after
//! each dispatch run. The geometry is worked out here, every coordinate formatted as the SVG
//! carries it; `templates/chart.svg` lays it out.

use serde::Serialize;

use super::SlotPoint;
use super::templates;

const EMAIL_COLOR: &str = "#2f6db5";
const SMS_COLOR: &str = "#e0892b";
const W: f64 = 1080.0;
const H: f64 = 300.0;
const LEFT: f64 = 56.0;
const RIGHT: f64 = 12.0;
const TOP: f64 = 30.0;
const BOTTOM: f64 = 40.0;

/// What `chart.svg` draws: a frame over the month's slots (title, legend, y grid, day
/// labels) and bars or lines in it.
#[derive(Serialize)]
struct Chart {
    width: String,
    height: String,
    left: String,
    title: &'static str,
    legend: Vec<LegendEntry>,
    grid: Vec<GridLine>,
    ticks: Vec<DayTick>,
    caption_x: String,
    caption_y: String,
    bars: Vec<Bar>,
    lines: Vec<Line>,
}

#[derive(Serialize)]
struct LegendEntry {
    x: String,
    text_x: String,
    color: &'static str,
    label: &'static str,
}

/// A horizontal grid line and its value on the y axis.
#[derive(Serialize)]
struct GridLine {
    x2: String,
    y: String,
    label_x: String,
    label_y: String,
    value: u64,
}

/// A tick at the start of a day, labelled on day 1 and every fifth day.
#[derive(Serialize)]
struct DayTick {
    x: String,
    y1: String,
    y2: String,
    labelled: bool,
    label: String,
    label_y: String,
}

/// One channel's share of a slot's sends.
#[derive(Serialize)]
struct Bar {
    x: String,
    y: String,
    width: String,
    height: String,
    color: &'static str,
    slot: String,
    channel: &'static str,
    count: u64,
}

/// One queue's depth over the month.
#[derive(Serialize)]
struct Line {
    color: &'static str,
    points: String,
}

/// A round upper bound for an axis: 1, 2 or 5 times a power of ten.
fn nice_max(v: u64) -> u64 {
    let mut step = 1u64;
    loop {
        for m in [1, 2, 5] {
            if step.saturating_mul(m) >= v.max(1) {
                return step.saturating_mul(m);
            }
        }
        step = step.saturating_mul(10);
    }
}

/// The frame of a chart over the month's slots: title, legend, y grid and day labels; no
/// bars or lines yet.
fn frame(title: &'static str, slots: &[SlotPoint], y_max: u64, legend: &[(&'static str, &'static str)]) -> Chart {
    let mut x = W - RIGHT - 180.0;
    let mut entries = Vec::new();
    for (label, color) in legend {
        entries.push(LegendEntry {
            x: format!("{x}"),
            text_x: format!("{}", x + 14.0),
            color,
            label,
        });
        x += 90.0;
    }
    let plot_h = H - TOP - BOTTOM;
    let grid = (0..=4u64)
        .map(|i| {
            let y = TOP + plot_h - plot_h * i as f64 / 4.0;
            GridLine {
                x2: format!("{}", W - RIGHT),
                y: format!("{y:.1}"),
                label_x: format!("{}", LEFT - 6.0),
                label_y: format!("{:.1}", y + 4.0),
                value: y_max * i / 4,
            }
        })
        .collect();
    let n = slots.len().max(1) as f64;
    let slot_w = (W - LEFT - RIGHT) / n;
    // A tick at the start of every day (12 slots a day).
    let ticks = slots
        .iter()
        .enumerate()
        .filter(|(i, _)| i % 12 == 0)
        .map(|(i, s)| {
            let day = s.slot.get(8..10).unwrap_or("").trim_start_matches('0');
            let labelled = day == "1" || day.parse::<u32>().is_ok_and(|d| d % 5 == 0);
            DayTick {
                x: format!("{:.1}", LEFT + slot_w * i as f64),
                y1: format!("{}", TOP + plot_h),
                y2: format!("{}", TOP + plot_h + 4.0),
                labelled,
                label: s.slot.get(5..10).unwrap_or("").to_owned(),
                label_y: format!("{:.1}", TOP + plot_h + 16.0),
            }
        })
        .collect();
    Chart {
        width: format!("{W}"),
        height: format!("{H}"),
        left: format!("{LEFT}"),
        title,
        legend: entries,
        grid,
        ticks,
        caption_x: format!("{:.1}", LEFT + (W - LEFT - RIGHT) / 2.0),
        caption_y: format!("{:.1}", H - 6.0),
        bars: Vec::new(),
        lines: Vec::new(),
    }
}

/// Sends per slot over the month, stacked by channel.
pub fn sends_chart(slots: &[SlotPoint]) -> anyhow::Result<String> {
    let y_max = nice_max(slots.iter().map(|s| s.sent_email + s.sent_sms).max().unwrap_or(0));
    let mut chart = frame(
        "Sends per two-hour slot, by channel",
        slots,
        y_max,
        &[("email", EMAIL_COLOR), ("SMS", SMS_COLOR)],
    );
    let plot_h = H - TOP - BOTTOM;
    let slot_w = (W - LEFT - RIGHT) / slots.len().max(1) as f64;
    let bar_w = (slot_w * 0.9).max(0.5);
    for (i, s) in slots.iter().enumerate() {
        let x = LEFT + slot_w * i as f64;
        let base = TOP + plot_h;
        let e = plot_h * s.sent_email as f64 / y_max as f64;
        let m = plot_h * s.sent_sms as f64 / y_max as f64;
        // The email bar stands on the axis, the SMS bar on the email bar.
        for (count, top, height, color, channel) in [
            (s.sent_email, base - e, e, EMAIL_COLOR, "email"),
            (s.sent_sms, base - e - m, m, SMS_COLOR, "SMS"),
        ] {
            if count > 0 {
                chart.bars.push(Bar {
                    x: format!("{x:.2}"),
                    y: format!("{top:.2}"),
                    width: format!("{bar_w:.2}"),
                    height: format!("{height:.2}"),
                    color,
                    slot: s.slot.clone(),
                    channel,
                    count,
                });
            }
        }
    }
    templates::render("chart.svg", &chart)
}

/// Queue depth after each slot's dispatch run, one line per queue.
pub fn queues_chart(slots: &[SlotPoint]) -> anyhow::Result<String> {
    let y_max = nice_max(slots.iter().map(|s| s.depth_email.max(s.depth_sms)).max().unwrap_or(0));
    let mut chart = frame(
        "Messages on the queues after each dispatch run",
        slots,
        y_max,
        &[("email", EMAIL_COLOR), ("SMS", SMS_COLOR)],
    );
    let plot_h = H - TOP - BOTTOM;
    let slot_w = (W - LEFT - RIGHT) / slots.len().max(1) as f64;
    for (color, depth) in [
        (EMAIL_COLOR, (|s: &SlotPoint| s.depth_email) as fn(&SlotPoint) -> u64),
        (SMS_COLOR, |s: &SlotPoint| s.depth_sms),
    ] {
        let points: Vec<String> = slots
            .iter()
            .enumerate()
            .map(|(i, s)| {
                format!(
                    "{:.1},{:.1}",
                    LEFT + slot_w * (i as f64 + 0.5),
                    TOP + plot_h - plot_h * depth(s) as f64 / y_max as f64
                )
            })
            .collect();
        chart.lines.push(Line {
            color,
            points: points.join(" "),
        });
    }
    templates::render("chart.svg", &chart)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn charts_have_a_bar_per_busy_slot_and_a_line_per_queue() {
        let slots: Vec<SlotPoint> = (0..24)
            .map(|i| SlotPoint {
                slot: format!(
                    "2026-12-{:02} {:02}:00-{:02}:00",
                    1 + i / 12,
                    (i % 12) * 2,
                    (i % 12) * 2 + 2
                ),
                open: true,
                sent_email: if i == 4 { 30 } else { 0 },
                sent_sms: if i == 5 { 7 } else { 0 },
                depth_email: i,
                ..SlotPoint::default()
            })
            .collect();
        let svg = sends_chart(&slots).unwrap();
        assert_eq!(
            svg.matches("<rect x=").count() - 2,
            2,
            "two bars besides the legend: {svg}"
        );
        assert!(svg.contains("2026-12-01 08:00-10:00 email 30"));
        assert_eq!(queues_chart(&slots).unwrap().matches("<polyline").count(), 2);
        assert_eq!(nice_max(0), 1);
        assert_eq!(nice_max(37), 50);
        assert_eq!(nice_max(101), 200);
    }
}
