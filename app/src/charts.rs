//! Small hand-written SVG charts and the number formats they and the usage pages share.
//! Every chart scales with its container (`viewBox`, width 100 %), labels its axes and names
//! each mark in a `<title>` tooltip. They keep no state: they redraw from their props.

use leptos::prelude::*;

/// One mark: its axis label, its size and the tooltip that spells it out.
#[derive(Debug, Clone, PartialEq)]
pub struct Datum {
    pub label: String,
    pub value: f64,
    pub title: String,
}

/// One day of a trend: a bar (left axis) and a point of the line (right axis).
#[derive(Debug, Clone, PartialEq)]
pub struct TrendPoint {
    pub label: String,
    pub bar: f64,
    pub line: f64,
    pub title: String,
}

// Margins in `viewBox` units. A chart's `width` should be close to the pixels it gets, so
// its 11 px labels come out near 11 px.
const LEFT: f64 = 48.0;
const TOP: f64 = 10.0;
const BOTTOM: f64 = 22.0;

/// An SVG `<title>`, the tooltip of its parent. Built by hand: `view!` makes an HTML
/// `<title>` of a `<title>` that has siblings, and browsers ignore those inside SVG.
fn tooltip(text: String) -> impl IntoView {
    leptos::svg::title().child(text)
}

/// SVG coordinates with one decimal: enough on screen, short in the HTML.
fn n(v: f64) -> String {
    format!("{v:.1}")
}

/// The smallest 1, 2 or 5 × 10ⁿ at or above `v`, so axis labels are round; 1 for nothing.
fn nice_ceiling(v: f64) -> f64 {
    if v.is_nan() || v <= 0.0 {
        return 1.0;
    }
    let magnitude = 10f64.powf(v.log10().floor());
    [1.0, 2.0, 5.0, 10.0].into_iter().map(|step| step * magnitude).find(|c| *c >= v).unwrap_or(10.0 * magnitude)
}

/// 1234 → "1.2k", 5_600_000 → "5.6M"; values under 1 keep two significant digits.
pub fn compact(v: f64) -> String {
    let a = v.abs();
    let (scaled, suffix) = if a >= 1e9 {
        (v / 1e9, "B")
    } else if a >= 1e6 {
        (v / 1e6, "M")
    } else if a >= 1e3 {
        (v / 1e3, "k")
    } else {
        (v, "")
    };
    let text = if suffix.is_empty() && scaled.fract() != 0.0 {
        // Two significant digits below 1, so a $0.001 axis does not read "$0".
        let decimals = if a < 1.0 { (1.0 - a.log10().floor()).clamp(2.0, 8.0) as usize } else { 2 };
        format!("{scaled:.decimals$}")
    } else {
        format!("{scaled:.1}")
    };
    format!("{}{suffix}", text.trim_end_matches('0').trim_end_matches('.'))
}

/// 1234567 → "1,234,567".
pub fn thousands(v: i64) -> String {
    let digits = v.unsigned_abs().to_string();
    let mut out = String::with_capacity(digits.len() + digits.len() / 3 + 1);
    if v < 0 {
        out.push('-');
    }
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    out
}

/// US dollars; amounts under a dollar keep four decimals since single requests cost cents.
pub fn usd(v: f64) -> String {
    if v == 0.0 {
        "$0".to_owned()
    } else if v.abs() < 1.0 {
        format!("${v:.4}")
    } else {
        format!("${v:.2}")
    }
}

/// Dollars for an axis: "$0", "$2.5", "$1.2k".
pub fn usd_compact(v: f64) -> String {
    format!("${}", compact(v))
}

/// A second scale: its top value and how its labels read.
type Axis = (f64, fn(f64) -> String);

/// Horizontal grid lines at 0, half and the top of a plot, labelled on the left (and on the
/// right when `right_max` is given).
#[component]
fn Grid(
    max: f64,
    top: f64,
    plot_height: f64,
    right: f64,
    format: fn(f64) -> String,
    #[prop(optional)] right_max: Option<Axis>,
) -> impl IntoView {
    [0.0, 0.5, 1.0]
        .into_iter()
        .map(|share| {
            let y = top + plot_height * (1.0 - share);
            let right_label = right_max.map(|(m, f)| {
                view! {
                    <text x=n(right + 4.0) y=n(y + 4.0) text-anchor="start">
                        {f(m * share)}
                    </text>
                }
            });
            view! {
                <line class="grid" x1=n(LEFT) x2=n(right) y1=n(y) y2=n(y)/>
                <text x=n(LEFT - 6.0) y=n(y + 4.0) text-anchor="end">
                    {format(max * share)}
                </text>
                {right_label}
            }
        })
        .collect_view()
}

/// Vertical bars, one per datum, with every `label_every`-th label under the axis.
#[component]
pub fn BarChart(
    data: Vec<Datum>,
    /// What the chart shows, for screen readers.
    #[prop(into)]
    label: String,
    #[prop(default = 1)] label_every: usize,
    #[prop(default = 600.0)] width: f64,
    #[prop(default = 160.0)] height: f64,
    #[prop(default = compact)] format: fn(f64) -> String,
) -> impl IntoView {
    let right = width - 8.0;
    let plot_height = height - TOP - BOTTOM;
    let max = nice_ceiling(data.iter().map(|d| d.value).fold(0.0, f64::max));
    let slot = (right - LEFT) / data.len().max(1) as f64;
    let bar_width = (slot * 0.8).max(1.0);
    let every = label_every.max(1);
    let bars = data
        .into_iter()
        .enumerate()
        .map(|(i, d)| {
            let x = LEFT + i as f64 * slot;
            let h = d.value / max * plot_height;
            let tick = (i % every == 0).then(|| {
                view! {
                    <text x=n(x + slot / 2.0) y=n(height - 6.0) text-anchor="middle">
                        {d.label.clone()}
                    </text>
                }
            });
            // The invisible full-height slot carries the tooltip, so even an empty bar has one.
            view! {
                <g>
                    {tooltip(d.title)}
                    <rect class="hit" x=n(x) y=n(TOP) width=n(slot) height=n(plot_height)/>
                    <rect class="bar" x=n(x + (slot - bar_width) / 2.0) y=n(TOP + plot_height - h) width=n(bar_width) height=n(h)/>
                </g>
                {tick}
            }
        })
        .collect_view();
    view! {
        <svg class="chart" viewBox=format!("0 0 {width} {height}") role="img" aria-label=label.clone()>
            {tooltip(label.clone())}
            <Grid max top=TOP plot_height right format/>
            {bars}
        </svg>
    }
    .into_any()
}

/// Bars against the left axis and a line against the right one, for two measures of the
/// same days (requests and cost).
#[component]
pub fn TrendChart(
    points: Vec<TrendPoint>,
    #[prop(into)] label: String,
    #[prop(default = 1)] label_every: usize,
    #[prop(default = compact)] bar_format: fn(f64) -> String,
    #[prop(default = compact)] line_format: fn(f64) -> String,
    #[prop(default = 480.0)] width: f64,
) -> impl IntoView {
    let height = 220.0;
    let right = width - 56.0;
    let plot_height = height - TOP - BOTTOM;
    let bar_max = nice_ceiling(points.iter().map(|p| p.bar).fold(0.0, f64::max));
    let line_max = nice_ceiling(points.iter().map(|p| p.line).fold(0.0, f64::max));
    let slot = (right - LEFT) / points.len().max(1) as f64;
    let bar_width = (slot * 0.7).max(1.0);
    let every = label_every.max(1);
    let centre = |i: usize| LEFT + (i as f64 + 0.5) * slot;
    let line_y = |v: f64| TOP + plot_height * (1.0 - v / line_max);
    let line: Vec<String> =
        points.iter().enumerate().map(|(i, p)| format!("{},{}", n(centre(i)), n(line_y(p.line)))).collect();
    let marks = points
        .into_iter()
        .enumerate()
        .map(|(i, p)| {
            let h = p.bar / bar_max * plot_height;
            let x = LEFT + i as f64 * slot;
            let tick = (i % every == 0).then(|| {
                view! {
                    <text x=n(centre(i)) y=n(height - 6.0) text-anchor="middle">
                        {p.label.clone()}
                    </text>
                }
            });
            view! {
                <g>
                    {tooltip(p.title)}
                    <rect class="hit" x=n(x) y=n(TOP) width=n(slot) height=n(plot_height)/>
                    <rect class="bar" x=n(centre(i) - bar_width / 2.0) y=n(TOP + plot_height - h) width=n(bar_width) height=n(h)/>
                    <circle class="dot" cx=n(centre(i)) cy=n(line_y(p.line)) r="2.5"/>
                </g>
                {tick}
            }
        })
        .collect_view();
    view! {
        <svg class="chart" viewBox=format!("0 0 {width} {height}") role="img" aria-label=label.clone()>
            {tooltip(label.clone())}
            <Grid max=bar_max top=TOP plot_height right format=bar_format right_max=(line_max, line_format)/>
            {marks}
            <polyline class="line second" points=line.join(" ")/>
        </svg>
    }
    .into_any()
}

/// Horizontal bars, one row per datum, the value written after each bar.
#[component]
pub fn HBarChart(
    data: Vec<Datum>,
    #[prop(into)] label: String,
    #[prop(default = compact)] format: fn(f64) -> String,
    #[prop(default = 480.0)] width: f64,
) -> impl IntoView {
    const ROW: f64 = 24.0;
    const NAME_WIDTH: f64 = 160.0;
    const VALUE_WIDTH: f64 = 64.0;
    let height = data.len().max(1) as f64 * ROW + 8.0;
    let max = data.iter().map(|d| d.value).fold(0.0, f64::max);
    let bar_space = width - NAME_WIDTH - VALUE_WIDTH;
    let rows = data
        .into_iter()
        .enumerate()
        .map(|(i, d)| {
            let y = 4.0 + i as f64 * ROW;
            let w = if max > 0.0 { (d.value / max * bar_space).max(1.0) } else { 0.0 };
            // Long model names are cut in the label; the tooltip keeps the whole name.
            let name: String = if d.label.chars().count() > 24 {
                d.label.chars().take(23).chain(['…']).collect()
            } else {
                d.label.clone()
            };
            view! {
                <g>
                    {tooltip(d.title)}
                    <rect class="hit" x="0" y=n(y) width=n(width) height=n(ROW)/>
                    <text x=n(NAME_WIDTH - 8.0) y=n(y + ROW / 2.0 + 4.0) text-anchor="end">
                        {name}
                    </text>
                    <rect class="bar" x=n(NAME_WIDTH) y=n(y + 4.0) width=n(w) height=n(ROW - 8.0)/>
                    <text x=n(NAME_WIDTH + w + 6.0) y=n(y + ROW / 2.0 + 4.0) text-anchor="start">
                        {format(d.value)}
                    </text>
                </g>
            }
        })
        .collect_view();
    view! {
        <svg class="chart" viewBox=format!("0 0 {width} {height}") role="img" aria-label=label.clone()>
            {tooltip(label.clone())}
            {rows}
        </svg>
    }
    .into_any()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn axes_end_on_round_numbers() {
        assert_eq!(nice_ceiling(0.0), 1.0);
        assert_eq!(nice_ceiling(7.0), 10.0);
        assert_eq!(nice_ceiling(12.0), 20.0);
        assert_eq!(nice_ceiling(200.0), 200.0);
        assert_eq!(nice_ceiling(0.03), 0.05);
    }

    #[test]
    fn numbers_read_well() {
        assert_eq!(compact(0.0), "0");
        assert_eq!(compact(42.0), "42");
        assert_eq!(compact(0.25), "0.25");
        assert_eq!(compact(0.001), "0.001");
        assert_eq!(compact(0.00126), "0.0013");
        assert_eq!(compact(2.5), "2.5");
        assert_eq!(compact(1234.0), "1.2k");
        assert_eq!(compact(5_600_000.0), "5.6M");
        assert_eq!(thousands(1_234_567), "1,234,567");
        assert_eq!(thousands(-1000), "-1,000");
        assert_eq!(thousands(999), "999");
        assert_eq!(usd(0.00123), "$0.0012");
        assert_eq!(usd(12.5), "$12.50");
        assert_eq!(usd(0.0), "$0");
        assert_eq!(usd_compact(2500.0), "$2.5k");
        assert_eq!(usd_compact(0.0005), "$0.0005");
    }
}
