//! Inline SVG bar charts: a chart where it reads faster than a table (counts per day). Every
//! label is escaped; the bars' heights are proportional to the values (0 for 0).

use super::html::escape;

/// Chart width and height, px.
const WIDTH: i64 = 640;
const HEIGHT: i64 = 180;
/// Room for labels at the bottom and the value on top, px.
const BOTTOM: i64 = 28;
const TOP: i64 = 16;

/// One bar's height in px for `value` out of `max` over `room` px (integer arithmetic).
pub fn bar_height(value: i64, max: i64, room: i64) -> i64 {
    if max <= 0 || value <= 0 {
        0
    } else {
        value.saturating_mul(room) / max
    }
}

/// A bar chart of `(label, value)`; `title` is the accessible name. Empty data gives a chart
/// saying "no data".
pub fn bars(title: &str, data: &[(String, i64)]) -> String {
    let mut svg = format!(
        "<svg class=\"chart\" role=\"img\" aria-label=\"{}\" viewBox=\"0 0 {WIDTH} {HEIGHT}\" \
         width=\"{WIDTH}\" height=\"{HEIGHT}\" xmlns=\"http://www.w3.org/2000/svg\">",
        escape(title)
    );
    if data.is_empty() {
        svg.push_str("<text x=\"10\" y=\"90\">no data</text></svg>");
        return svg;
    }
    let max = data.iter().map(|(_, v)| *v).max().unwrap_or(0);
    let count = i64::try_from(data.len()).unwrap_or(1).max(1);
    let slot = (WIDTH / count).max(1);
    let room = HEIGHT - BOTTOM - TOP;
    for (i, (label, value)) in data.iter().enumerate() {
        let i = i64::try_from(i).unwrap_or(0);
        let h = bar_height(*value, max, room);
        let x = i * slot + slot / 8;
        let w = (slot * 3 / 4).clamp(1, 48);
        let y = HEIGHT - BOTTOM - h;
        svg.push_str(&format!(
            "<g><rect class=\"bar\" x=\"{x}\" y=\"{y}\" width=\"{w}\" height=\"{h}\" \
             data-value=\"{value}\"><title>{} {value}</title></rect>\
             <text x=\"{}\" y=\"{}\" text-anchor=\"middle\" font-size=\"10\">{value}</text>\
             <text x=\"{}\" y=\"{}\" text-anchor=\"middle\" font-size=\"9\">{}</text></g>",
            escape(label),
            x + w / 2,
            (y - 3).max(10),
            x + w / 2,
            HEIGHT - 10,
            escape(label.get(5..).unwrap_or(label)),
        ));
    }
    svg.push_str("</svg>");
    svg
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn heights_are_proportional_and_labels_escaped() {
        assert_eq!(bar_height(5, 10, 136), 68);
        assert_eq!(bar_height(10, 10, 136), 136);
        assert_eq!(bar_height(0, 10, 136), 0);
        assert_eq!(bar_height(3, 0, 136), 0);
        let svg = bars("a<b", &[("2026-11-30".into(), 4), ("<x>".into(), 2)]);
        assert!(svg.contains("aria-label=\"a&lt;b\""));
        assert!(svg.contains("height=\"136\" data-value=\"4\""));
        assert!(svg.contains("height=\"68\" data-value=\"2\""));
        assert!(!svg.contains("<x>"));
        assert!(bars("t", &[]).contains("no data"));
    }
}
