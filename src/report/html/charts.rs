//! The four licensing charts of the HTML page, drawn as inline SVG with plotters' SVG backend:
//! egress per minute against the budget, the connection timeline, the check-in cadence, and the
//! egress destinations. Each chart is an SVG plus a legend printed as HTML under it (HTML, so
//! a legend never hides data), framed by [`write_charts`].
//!
//! Invariants: the charts share one time axis ([`TimeAxis`]), one colour per host
//! ([`HostColors`]) and one frame and mesh style ([`frame`], [`house_mesh`]); labels are
//! redacted before plotters (which escapes them) draws them; nothing here computes a check-in:
//! the cadence chart plots the check-ins the audit lists (`licensing.checkins`, the rule of
//! `crate::audit::checkins`).

use std::collections::{BTreeMap, BTreeSet};
use std::fmt::Write as _;

use plotters::chart::MeshStyle;
use plotters::coord::ranged1d::{Ranged, ValueFormatter};
use plotters::coord::types::RangedCoordf64;
use plotters::coord::Shift;
use plotters::prelude::*;
use plotters::style::text_anchor::{HPos, Pos, VPos};

use super::markup::text;
use crate::audit::checkins::CheckIn;
use crate::audit::{Audit, LicensingConnection};
use crate::inspect::secrets::redact_text;
use crate::report::merge::Merged;
use crate::units::{as_secs_f64, human_bytes, rfc3339, NANOS};

/// Chart width in SVG pixels (the page scales it down to fit).
const CHART_WIDTH: u32 = 1080;

/// The licensing section of the page: the four charts, each in its figure.
pub fn write_charts(h: &mut String, merged: &Merged) {
    let a = &merged.audit;
    let groups = host_groups(merged);
    let axis = TimeAxis::new(a);
    let (timeline, derived) = timeline_rows(&groups);
    let hosts = HostColors::new(&groups, &timeline);
    h.push_str("<section class=\"page\">\n<h2>Licensing traffic</h2>\n");
    figure(
        h,
        "Licensing egress per minute, per source host",
        "client-to-server IP bytes in each minute window, against the policy budget",
        minutes_chart(a, &groups, &axis, &hosts),
        "No licensing traffic was seen.",
    );
    figure(
        h,
        "Licensing connections over time",
        if derived {
            "derived from the per-minute series (this audit has no connection timeline): one bar per active minute"
        } else {
            "one bar per connection, from its first to its last packet (short check-ins drawn at a minimum visible width)"
        },
        timeline_chart(
            &timeline,
            &axis,
            a.policy.licensing.max_egress_bytes_per_minute,
        ),
        "No licensing connection was seen.",
    );
    figure(
        h,
        "Check-in cadence",
        "seconds between consecutive answered check-ins of each host",
        cadence_chart(a, &checkin_intervals(&groups), &axis, &hosts),
        cadence_empty(&groups),
    );
    figure(
        h,
        "Egress destinations by bytes sent",
        "client-to-server IP bytes per destination (top 20)",
        destinations_chart(a),
        "No egress traffic.",
    );
    h.push_str("</section>\n");
}

/// The median number of seconds between consecutive check-ins of a host, over every host.
pub fn median_checkin_interval(merged: &Merged) -> Option<f64> {
    let cadence = checkin_intervals(&host_groups(merged));
    let mut intervals: Vec<f64> = cadence
        .intervals
        .values()
        .flatten()
        .map(|(_, s)| *s)
        .collect();
    if intervals.is_empty() {
        return None;
    }
    intervals.sort_by(f64::total_cmp);
    Some(intervals[intervals.len() / 2])
}

// ------------------------------------------------------------------------ figures and legends

/// A chart: its SVG and the legend printed under it.
struct Chart {
    svg: String,
    legend: Vec<LegendItem>,
}

/// One legend entry: a swatch and its meaning.
struct LegendItem {
    swatch: Swatch,
    color: RGBColor,
    label: String,
}

/// The legend swatch shapes (CSS classes `sw dot`, `sw ring` ...).
#[derive(Clone, Copy)]
enum Swatch {
    Dot,
    Ring,
    Bar,
    Dash,
    Band,
}

impl Swatch {
    fn class(self) -> &'static str {
        match self {
            Swatch::Dot => "dot",
            Swatch::Ring => "ring",
            Swatch::Bar => "bar",
            Swatch::Dash => "dash",
            Swatch::Band => "band",
        }
    }
}

fn item(swatch: Swatch, color: RGBColor, label: impl Into<String>) -> LegendItem {
    LegendItem {
        swatch,
        color,
        label: label.into(),
    }
}

fn hex(c: RGBColor) -> String {
    format!("#{:02x}{:02x}{:02x}", c.0, c.1, c.2)
}

/// One figure: title, subtitle, then the chart and its legend, or why there is none.
fn figure(
    h: &mut String,
    title: &str,
    sub: &str,
    chart: Result<Option<Chart>, String>,
    empty: &str,
) {
    let _ = write!(
        h,
        "<figure>\n<figcaption>{} <span class=\"muted\">— {}</span></figcaption>\n",
        text(title),
        text(sub)
    );
    match chart {
        Ok(Some(chart)) => {
            h.push_str(&chart.svg);
            h.push('\n');
            write_legend(h, &chart.legend);
        }
        Ok(None) => {
            let _ = writeln!(h, "<p class=\"muted\">{}</p>", text(empty));
        }
        Err(e) => {
            let _ = writeln!(h, "<p class=\"muted\">chart not drawn: {}</p>", text(&e));
        }
    }
    h.push_str("</figure>\n");
}

fn write_legend(h: &mut String, legend: &[LegendItem]) {
    if legend.is_empty() {
        return;
    }
    h.push_str("<div class=\"legend\">");
    for i in legend {
        let _ = write!(
            h,
            "<span><i class=\"sw {}\" style=\"--c:{}\"></i>{}</span>",
            i.swatch.class(),
            hex(i.color),
            text(&i.label)
        );
    }
    h.push_str("</div>\n");
}

// ------------------------------------------------------------------------------ time axis

/// The shared time axis of the charts, in a unit (minutes, hours or days since the first whole
/// minute of the period) that makes plotters' round tick values fall on round times.
struct TimeAxis {
    t0_secs: i64,
    /// Seconds in one axis unit.
    unit_secs: f64,
    /// Length of the axis, in units.
    span: f64,
    with_date: bool,
}

impl TimeAxis {
    /// The axis covering the capture, every licensing minute and every connection.
    fn new(a: &Audit) -> Self {
        let mut start = a.capture.start_ts_nanos.div_euclid(NANOS);
        let mut end = a.capture.end_ts_nanos.div_euclid(NANOS) + 1;
        for m in &a.licensing.per_minute {
            start = start.min(m.start_ts);
            end = end.max(m.start_ts + 60);
        }
        for c in &a.licensing.timeline {
            start = start.min(c.start_ts_nanos.div_euclid(NANOS));
            end = end.max(c.start_ts_nanos.div_euclid(NANOS) + c.duration_seconds.ceil() as i64);
        }
        let t0 = start.div_euclid(60) * 60;
        let t1 = (end + 59).div_euclid(60) * 60;
        let span_secs = (t1 - t0).max(60) as f64;
        let unit_secs = if span_secs <= 3.0 * 3600.0 {
            60.0
        } else if span_secs <= 3.0 * 86_400.0 {
            3600.0
        } else {
            86_400.0
        };
        TimeAxis {
            t0_secs: t0,
            unit_secs,
            span: span_secs / unit_secs,
            with_date: t1 - t0 > 86_400
                || rfc3339(t0 * NANOS).get(..10) != rfc3339(t1 * NANOS).get(..10),
        }
    }

    /// A packet time on the axis.
    fn x_nanos(&self, nanos: i64) -> f64 {
        as_secs_f64(nanos - self.t0_secs * NANOS) / self.unit_secs
    }

    /// A time in whole seconds on the axis.
    fn x_secs(&self, secs: i64) -> f64 {
        (secs - self.t0_secs) as f64 / self.unit_secs
    }

    /// A duration in seconds, in axis units.
    fn len(&self, seconds: f64) -> f64 {
        seconds / self.unit_secs
    }

    /// The tick label at `x`: the time, with the date when the axis spans several days.
    fn label(&self, x: f64) -> String {
        let secs = (x * self.unit_secs).round() as i64;
        let t = rfc3339((self.t0_secs + secs) * NANOS);
        let time = if secs % 60 == 0 {
            t.get(11..16)
        } else {
            t.get(11..19)
        };
        match (self.with_date, t.get(5..10), time) {
            (true, Some(d), Some(hm)) if secs % 86_400 == 0 || self.unit_secs < 86_400.0 => {
                format!("{d} {hm}")
            }
            (true, Some(d), _) => d.to_string(),
            (false, _, Some(hm)) => hm.to_string(),
            _ => t,
        }
    }

    /// The axis title: the day, when every tick is on it.
    fn desc(&self) -> String {
        let day = rfc3339(self.t0_secs * NANOS);
        if self.with_date {
            "time (UTC)".into()
        } else {
            format!("time (UTC, {})", day.get(..10).unwrap_or(""))
        }
    }
}

// --------------------------------------------------------------------- canvas, frame, colours

type ChartResult = Result<(), Box<dyn std::error::Error>>;

/// Runs `draw` on a white SVG canvas and returns the SVG text.
fn svg(
    width: u32,
    height: u32,
    draw: impl FnOnce(&DrawingArea<SVGBackend<'_>, Shift>) -> ChartResult,
) -> Result<String, String> {
    let mut buf = String::new();
    {
        let root = SVGBackend::with_string(&mut buf, (width, height)).into_drawing_area();
        root.fill(&WHITE).map_err(|e| e.to_string())?;
        draw(&root).map_err(|e| e.to_string())?;
        root.present().map_err(|e| e.to_string())?;
    }
    Ok(buf)
}

/// The house frame of every chart: margins, and room for the axis labels.
fn frame<'a, 'b, DB: DrawingBackend>(
    root: &'a DrawingArea<DB, Shift>,
    margin_top: u32,
    y_label_area: u32,
) -> ChartBuilder<'a, 'b, DB> {
    let mut builder = ChartBuilder::on(root);
    builder
        .margin_top(margin_top)
        .margin_right(28)
        .margin_left(8)
        .x_label_area_size(46)
        .y_label_area_size(y_label_area);
    builder
}

/// The house mesh: no light lines, a faint grid, grey axes, the house font sizes.
fn house_mesh<'m, 'a, 'b, X, Y, DB>(
    mesh: &'m mut MeshStyle<'a, 'b, X, Y, DB>,
) -> &'m mut MeshStyle<'a, 'b, X, Y, DB>
where
    X: Ranged<ValueType = f64> + ValueFormatter<f64>,
    Y: Ranged<ValueType = f64> + ValueFormatter<f64>,
    DB: DrawingBackend,
{
    mesh.light_line_style(TRANSPARENT)
        .bold_line_style(GRID)
        .axis_style(AXIS)
        .axis_desc_style((FONT, 14))
        .label_style((FONT, 13))
}

const FONT: &str = "sans-serif";
const PASS: RGBColor = RGBColor(0x1a, 0x7f, 0x37);
const BAD: RGBColor = RGBColor(0xc6, 0x28, 0x28);
const WARN: RGBColor = RGBColor(0xe0, 0x8a, 0x00);
const ALLOWED: RGBColor = RGBColor(0x1f, 0x6f, 0xb4);
const GREY: RGBColor = RGBColor(0x8c, 0x95, 0x9f);
const GRID: RGBColor = RGBColor(0xe3, 0xe8, 0xee);
const AXIS: RGBColor = RGBColor(0x59, 0x63, 0x6e);
/// Source hosts (no green or red: those mean verdicts).
const PALETTE: [RGBColor; 8] = [
    RGBColor(0x1f, 0x6f, 0xb4),
    RGBColor(0x8a, 0x3f, 0xc2),
    RGBColor(0x0f, 0x9b, 0xa8),
    RGBColor(0xc2, 0x5b, 0x00),
    RGBColor(0x4a, 0x54, 0x60),
    RGBColor(0xc0, 0x3c, 0x8c),
    RGBColor(0x7a, 0x6a, 0x00),
    RGBColor(0x33, 0x33, 0x99),
];

/// One colour per host, the same in every chart.
struct HostColors(BTreeMap<String, RGBColor>);

impl HostColors {
    /// Colours for the hosts of the licensing series and timeline first, in address order, then
    /// for hosts that only check in (through a License Proxy hop), so that adding the latter
    /// never changes the colour of the former.
    fn new(groups: &[(String, &Audit)], timeline: &[(String, LicensingConnection)]) -> Self {
        let mut hosts: Vec<String> = groups
            .iter()
            .flat_map(|(prefix, a)| {
                a.licensing
                    .per_minute
                    .iter()
                    .map(move |m| host_key(prefix, &m.source.to_string()))
            })
            .chain(timeline.iter().map(|(h, _)| h.clone()))
            .collect();
        hosts.sort();
        hosts.dedup();
        let mut checking_in: Vec<String> = groups
            .iter()
            .flat_map(|(prefix, a)| {
                a.licensing
                    .checkins
                    .iter()
                    .map(move |c| host_key(prefix, &c.source))
            })
            .filter(|h| hosts.binary_search(h).is_err())
            .collect();
        checking_in.sort();
        checking_in.dedup();
        HostColors(
            hosts
                .into_iter()
                .chain(checking_in)
                .enumerate()
                .map(|(i, h)| (h, PALETTE[i % PALETTE.len()]))
                .collect(),
        )
    }

    fn of(&self, host: &str) -> RGBColor {
        self.0.get(host).copied().unwrap_or(GREY)
    }
}

/// A chart label: redacted, and cut to `max` characters.
fn label(s: &str, max: usize) -> String {
    let s = redact_text(s);
    if s.chars().count() <= max {
        s
    } else {
        let cut: String = s.chars().take(max.saturating_sub(1)).collect();
        format!("{cut}…")
    }
}

// ----------------------------------------------------------------------------------- hosts

/// The audits whose hosts the charts show, with the prefix of their host labels: the sensors
/// when there are several (an address under two sensors is two hosts), else the audit itself.
fn host_groups(merged: &Merged) -> Vec<(String, &Audit)> {
    if merged.sensors.len() > 1 {
        merged
            .sensors
            .iter()
            .map(|s| (s.sensor.clone(), &s.audit))
            .collect()
    } else {
        vec![(String::new(), &merged.audit)]
    }
}

/// A host's label: its address, after its sensor's name when several sensors are merged.
fn host_key(prefix: &str, source: &str) -> String {
    if prefix.is_empty() {
        source.to_string()
    } else {
        format!("{prefix} · {source}")
    }
}

// ------------------------------------------------------------------------ egress per minute

/// Points of one unbroken line.
type Run = Vec<(f64, f64)>;

/// Consecutive-minute runs of one source's series (a line must not bridge a silent minute).
fn runs(points: &[(i64, f64)]) -> Vec<Run> {
    let mut out: Vec<Run> = Vec::new();
    let mut last: Option<i64> = None;
    for &(t, y) in points {
        if last.is_none_or(|l| t - l > 60) {
            out.push(Vec::new());
        }
        if let Some(run) = out.last_mut() {
            run.push((t as f64, y));
        }
        last = Some(t);
    }
    out
}

/// Each host's per-minute runs, in axis units, points at the middle of their minute window.
fn minute_series(groups: &[(String, &Audit)], axis: &TimeAxis) -> Vec<(String, Vec<Run>)> {
    let mut by_source: BTreeMap<String, Vec<(i64, f64)>> = BTreeMap::new();
    for (prefix, g) in groups {
        for m in &g.licensing.per_minute {
            by_source
                .entry(host_key(prefix, &m.source.to_string()))
                .or_default()
                .push((m.start_ts, m.egress_ip_bytes as f64));
        }
    }
    by_source
        .into_iter()
        .map(|(s, pts)| {
            let runs = runs(&pts)
                .into_iter()
                .map(|run| {
                    run.into_iter()
                        .map(|(t, y)| (axis.x_secs(t as i64) + axis.len(30.0), y.max(1.0)))
                        .collect()
                })
                .collect();
            (s, runs)
        })
        .collect()
}

/// What the per-minute chart draws.
struct MinutePlot<'p> {
    series: &'p [(String, Vec<Run>)],
    axis: &'p TimeAxis,
    hosts: &'p HostColors,
    budget: f64,
}

fn minutes_chart(
    a: &Audit,
    groups: &[(String, &Audit)],
    axis: &TimeAxis,
    hosts: &HostColors,
) -> Result<Option<Chart>, String> {
    let l = &a.licensing;
    if l.per_minute.is_empty() {
        return Ok(None);
    }
    let budget = a.policy.licensing.max_egress_bytes_per_minute as f64;
    let values = || l.per_minute.iter().map(|m| m.egress_ip_bytes as f64);
    let max = values().fold(0.0, f64::max);
    let min_positive = values().filter(|&b| b > 0.0).fold(f64::MAX, f64::min);
    let over = values().any(|b| b > budget);
    // Far over the budget, a linear scale would flatten every other minute to the axis.
    let log = max > 20.0 * budget.max(1.0);
    let series = minute_series(groups, axis);
    let plot = MinutePlot {
        series: &series,
        axis,
        hosts,
        budget,
    };
    let x_range = 0f64..axis.span;
    let svg = svg(CHART_WIDTH, 340, |root| {
        let mut builder = frame(root, 14, 92);
        if log {
            let lo = (min_positive.min(budget) / 3.0).max(1.0);
            let mut chart =
                builder.build_cartesian_2d(x_range.clone(), (lo..max * 3.0).log_scale())?;
            draw_minutes(&mut chart, &plot, "bytes per minute (log scale)")
        } else {
            let top = max.max(budget) * 1.2;
            let mut chart = builder.build_cartesian_2d(x_range.clone(), 0f64..top)?;
            draw_minutes(&mut chart, &plot, "bytes per minute")
        }
    })?;
    let mut legend = vec![item(
        Swatch::Dash,
        BAD,
        format!("budget {} per host-minute", human_bytes(budget as u64)),
    )];
    legend.extend(
        series
            .iter()
            .map(|(s, _)| item(Swatch::Dot, hosts.of(s), label(s, 60))),
    );
    if over {
        legend.push(item(Swatch::Ring, BAD, "minute over the budget"));
    }
    Ok(Some(Chart { svg, legend }))
}

/// Draws the per-minute chart on either scale: the budget line, then each host's runs, with a
/// ring around every minute over the budget.
fn draw_minutes<'a, 'b, Y>(
    chart: &mut ChartContext<'a, SVGBackend<'b>, Cartesian2d<RangedCoordf64, Y>>,
    plot: &MinutePlot<'_>,
    y_desc: &str,
) -> ChartResult
where
    Y: Ranged<ValueType = f64> + ValueFormatter<f64>,
{
    let (axis, budget) = (plot.axis, plot.budget);
    let x_label = |x: &f64| axis.label(*x);
    let y_label = |y: &f64| human_bytes(y.max(0.0).round() as u64);
    house_mesh(&mut chart.configure_mesh())
        .x_desc(axis.desc())
        .y_desc(y_desc)
        .x_labels(12)
        .x_label_formatter(&x_label)
        .y_label_formatter(&y_label)
        .draw()?;
    chart.draw_series(DashedLineSeries::new(
        vec![(0.0, budget), (axis.span, budget)],
        10,
        6,
        BAD.stroke_width(2),
    ))?;
    chart.draw_series(std::iter::once(Text::new(
        format!("budget {} / min", human_bytes(budget as u64)),
        (axis.span * 0.005, budget),
        (FONT, 13)
            .into_font()
            .color(&BAD)
            .pos(Pos::new(HPos::Left, VPos::Bottom)),
    )))?;
    for (source, runs) in plot.series {
        let color = plot.hosts.of(source);
        for run in runs {
            chart.draw_series(LineSeries::new(run.iter().copied(), color.stroke_width(2)))?;
        }
        chart.draw_series(
            runs.iter()
                .flatten()
                .map(|&p| Circle::new(p, 4, color.filled())),
        )?;
        chart.draw_series(
            runs.iter()
                .flatten()
                .filter(|p| p.1 > budget)
                .map(|&p| Circle::new(p, 9, BAD.stroke_width(2))),
        )?;
    }
    Ok(())
}

// ------------------------------------------------------------------------ connection timeline

/// The connection timeline of every host (labelled), or one bar per active minute when an
/// audit has no timeline (true in the second field then).
fn timeline_rows(groups: &[(String, &Audit)]) -> (Vec<(String, LicensingConnection)>, bool) {
    let mut rows = Vec::new();
    let mut derived = false;
    for (prefix, a) in groups {
        let l = &a.licensing;
        if !l.timeline.is_empty() || l.per_minute.is_empty() {
            rows.extend(
                l.timeline
                    .iter()
                    .map(|c| (host_key(prefix, &c.source), c.clone())),
            );
            continue;
        }
        derived = true;
        rows.extend(l.per_minute.iter().map(|m| {
            (
                host_key(prefix, &m.source.to_string()),
                LicensingConnection {
                    uid: m.flow_uids.first().cloned().unwrap_or_default(),
                    source: m.source.to_string(),
                    destination: String::new(),
                    start: m.start.clone(),
                    start_ts_nanos: m.start_ts * NANOS,
                    duration_seconds: 60.0,
                    egress_ip_bytes: m.egress_ip_bytes,
                    ingress_ip_bytes: 0,
                    conn_state: String::new(),
                    answered: true,
                },
            )
        }));
    }
    (rows, derived)
}

fn sources_of(timeline: &[(String, LicensingConnection)]) -> Vec<String> {
    let mut s: Vec<String> = timeline.iter().map(|(h, _)| h.clone()).collect();
    s.sort();
    s.dedup();
    s
}

fn timeline_chart(
    timeline: &[(String, LicensingConnection)],
    axis: &TimeAxis,
    budget: u64,
) -> Result<Option<Chart>, String> {
    if timeline.is_empty() {
        return Ok(None);
    }
    let sources = sources_of(timeline);
    let n = sources.len();
    let row = |s: &str| sources.iter().position(|x| x == s).unwrap_or(0);
    // A check-in lasts milliseconds: without a minimum width it would not show.
    let min_width = axis.span / 400.0;
    let height = 90 + 44 * n as u32;
    let svg = svg(CHART_WIDTH, height, |root| {
        let mut chart =
            frame(root, 10, 150).build_cartesian_2d(0f64..axis.span, -0.5f64..(n as f64 - 0.5))?;
        let x_label = |x: &f64| axis.label(*x);
        let y_label = |y: &f64| row_label(*y, &sources, 22);
        house_mesh(&mut chart.configure_mesh())
            .x_desc(axis.desc())
            .x_labels(12)
            .y_labels(n * 4 + 1)
            .x_label_formatter(&x_label)
            .y_label_formatter(&y_label)
            .disable_y_mesh()
            .draw()?;
        chart.draw_series(timeline.iter().map(|(host, c)| {
            let x0 = axis.x_nanos(c.start_ts_nanos);
            let x1 = x0 + axis.len(c.duration_seconds).max(min_width);
            // First host at the top.
            let y = (n - 1 - row(host)) as f64;
            let color = if c.egress_ip_bytes > budget {
                BAD
            } else if c.answered {
                PASS
            } else {
                WARN
            };
            Rectangle::new([(x0, y - 0.3), (x1, y + 0.3)], color.filled())
        }))?;
        Ok(())
    })?;
    Ok(Some(Chart {
        svg,
        legend: timeline_legend(timeline, budget),
    }))
}

/// The label of row `y` of a chart with one row per name, first name at the top; nothing
/// between rows (plotters asks for labels at fractional positions too).
fn row_label(y: f64, names: &[String], max: usize) -> String {
    let n = names.len();
    let i = y.round();
    if (y - i).abs() < 1e-6 && i >= 0.0 && (i as usize) < n {
        label(&names[n - 1 - i as usize], max)
    } else {
        String::new()
    }
}

fn timeline_legend(timeline: &[(String, LicensingConnection)], budget: u64) -> Vec<LegendItem> {
    let mut legend = vec![item(Swatch::Bar, PASS, "answered check-in")];
    if timeline.iter().any(|(_, c)| !c.answered) {
        legend.push(item(Swatch::Bar, WARN, "attempt without an answer"));
    }
    if timeline.iter().any(|(_, c)| c.egress_ip_bytes > budget) {
        legend.push(item(
            Swatch::Bar,
            BAD,
            format!(
                "connection sending more than the {} budget",
                human_bytes(budget)
            ),
        ));
    }
    legend
}

// ------------------------------------------------------------------------------ cadence

/// Check-in intervals per host, from the check-ins the audit lists.
struct Cadence {
    /// Per host: (check-in time, seconds since the previous check-in).
    intervals: BTreeMap<String, Vec<(i64, f64)>>,
    /// Hosts with a held connection: it checks in once in each minute it sends, so their
    /// intervals are between active minutes (minute resolution).
    held: BTreeSet<String>,
}

/// Intervals between the consecutive check-ins of each host, as `licensing.checkins` lists them
/// (the one rule of `crate::audit::checkins`, which CADENCE applies too). An audit written
/// before the audit carried check-ins lists none: its chart is empty and says why, rather than
/// guessing check-ins from the connection timeline with a second rule.
fn checkin_intervals(groups: &[(String, &Audit)]) -> Cadence {
    let mut by_host: BTreeMap<String, Vec<&CheckIn>> = BTreeMap::new();
    for (prefix, a) in groups {
        for c in &a.licensing.checkins {
            by_host
                .entry(host_key(prefix, &c.source))
                .or_default()
                .push(c);
        }
    }
    let mut held = BTreeSet::new();
    let mut intervals = BTreeMap::new();
    for (host, mut checkins) in by_host {
        checkins.sort_by_key(|c| c.ts);
        // Only a held connection checks in more than once.
        let mut uids: Vec<&str> = checkins.iter().map(|c| c.uid.as_str()).collect();
        uids.sort_unstable();
        if uids.windows(2).any(|w| w[0] == w[1]) {
            held.insert(host.clone());
        }
        let v: Vec<(i64, f64)> = checkins
            .windows(2)
            .map(|w| {
                (
                    w[1].ts.nanos(),
                    as_secs_f64(w[1].ts.nanos() - w[0].ts.nanos()),
                )
            })
            .collect();
        if !v.is_empty() {
            intervals.insert(host, v);
        }
    }
    Cadence { intervals, held }
}

/// What the cadence figure says when it has no interval to draw.
fn cadence_empty(groups: &[(String, &Audit)]) -> &'static str {
    if groups
        .iter()
        .all(|(_, a)| a.licensing.per_minute.is_empty())
    {
        "No check-ins to measure."
    } else if groups.iter().all(|(_, a)| a.licensing.checkins.is_empty()) {
        "This audit lists no check-ins (it was written before audits carried licensing.checkins): regenerate it with dg-audit analyze to chart the cadence."
    } else {
        "Fewer than two answered check-ins per host (a held connection carries its check-ins inside one connection; see the per-minute chart)."
    }
}

fn cadence_chart(
    a: &Audit,
    cadence_data: &Cadence,
    axis: &TimeAxis,
    hosts: &HostColors,
) -> Result<Option<Chart>, String> {
    let intervals = &cadence_data.intervals;
    if intervals.is_empty() {
        return Ok(None);
    }
    let cadence = a.policy.licensing.cadence_seconds as f64;
    let tolerance = a.policy.licensing.cadence_tolerance_seconds as f64;
    let outside = |s: f64| (s - cadence).abs() > tolerance;
    let max = intervals
        .values()
        .flatten()
        .map(|(_, s)| *s)
        .fold(0.0, f64::max);
    let top = (max * 1.15).max(cadence * 2.0);
    let svg = svg(CHART_WIDTH, 300, |root| {
        let mut chart = frame(root, 10, 92).build_cartesian_2d(0f64..axis.span, 0f64..top)?;
        let x_label = |x: &f64| axis.label(*x);
        let y_label = |y: &f64| format!("{y:.0} s");
        house_mesh(&mut chart.configure_mesh())
            .x_desc(axis.desc())
            .y_desc("seconds since previous")
            .x_labels(12)
            .x_label_formatter(&x_label)
            .y_label_formatter(&y_label)
            .draw()?;
        chart.draw_series(std::iter::once(Rectangle::new(
            [
                (0.0, (cadence - tolerance).max(0.0)),
                (axis.span, cadence + tolerance),
            ],
            PASS.mix(0.13).filled(),
        )))?;
        for (host, points) in intervals {
            let color = hosts.of(host);
            let pts: Vec<(f64, f64)> = points.iter().map(|&(t, s)| (axis.x_nanos(t), s)).collect();
            // Points only: a line would suggest check-ins between two points.
            chart.draw_series(pts.iter().map(|&p| Circle::new(p, 4, color.filled())))?;
            chart.draw_series(
                pts.iter()
                    .filter(|p| outside(p.1))
                    .map(|&p| Circle::new(p, 9, BAD.stroke_width(2))),
            )?;
        }
        Ok(())
    })?;
    Ok(Some(Chart {
        svg,
        legend: cadence_legend(cadence_data, hosts, cadence, tolerance),
    }))
}

/// The expected band, one dot per host (marking held connections), and the ring when an
/// interval falls outside the band.
fn cadence_legend(
    cadence_data: &Cadence,
    hosts: &HostColors,
    cadence: f64,
    tolerance: f64,
) -> Vec<LegendItem> {
    let intervals = &cadence_data.intervals;
    let mut legend = vec![item(
        Swatch::Band,
        PASS,
        format!("expected: every {cadence:.0} ± {tolerance:.0} s"),
    )];
    legend.extend(intervals.keys().map(|h| {
        let by_minute = if cadence_data.held.contains(h) {
            " (held connection: between active minutes)"
        } else {
            ""
        };
        item(
            Swatch::Dot,
            hosts.of(h),
            format!("{}{by_minute}", label(h, 60)),
        )
    }));
    let outside = |s: f64| (s - cadence).abs() > tolerance;
    if intervals.values().flatten().any(|(_, s)| outside(*s)) {
        legend.push(item(
            Swatch::Ring,
            BAD,
            "interval outside the expected band",
        ));
    }
    legend
}

// ------------------------------------------------------------------------------ destinations

/// Colour and legend word of a destination class.
fn class_style(class: &str) -> (RGBColor, &'static str) {
    match class {
        "licensing" | "forward_proxy_licensing" | "forward_proxy_upstream" => (PASS, "licensing"),
        "allowed" => (ALLOWED, "allowed by policy"),
        "license_proxy_hop" | "not_egress" => (GREY, "inside the network"),
        _ => (BAD, "not allowed"),
    }
}

fn destinations_chart(a: &Audit) -> Result<Option<Chart>, String> {
    let d = &a.flows.top_destinations;
    if d.is_empty() {
        return Ok(None);
    }
    let n = d.len();
    let max = d
        .iter()
        .map(|x| x.egress_ip_bytes)
        .max()
        .unwrap_or(0)
        .max(1) as f64;
    let names: Vec<String> = d.iter().map(|x| x.destination.clone()).collect();
    let classes: Vec<String> = d
        .iter()
        .map(|x| {
            serde_json::to_value(x.class)
                .ok()
                .and_then(|v| v.as_str().map(String::from))
                .unwrap_or_default()
        })
        .collect();
    let height = 80 + 32 * n as u32;
    let svg = svg(CHART_WIDTH, height, |root| {
        // Room for the byte counts written after the longest bar.
        let mut chart =
            frame(root, 10, 340).build_cartesian_2d(0f64..max * 1.35, -0.5f64..(n as f64 - 0.5))?;
        // Largest at the top.
        let y_of = |i: usize| (n - 1 - i) as f64;
        let x_label = |x: &f64| human_bytes(x.max(0.0).round() as u64);
        let y_label = |y: &f64| row_label(*y, &names, 48);
        house_mesh(&mut chart.configure_mesh())
            .x_desc("client-to-server IP bytes")
            .x_labels(8)
            .y_labels(n * 4 + 1)
            .x_label_formatter(&x_label)
            .y_label_formatter(&y_label)
            .disable_y_mesh()
            .draw()?;
        chart.draw_series(d.iter().enumerate().map(|(i, x)| {
            let y = y_of(i);
            Rectangle::new(
                [(0.0, y - 0.32), (x.egress_ip_bytes as f64, y + 0.32)],
                class_style(&classes[i]).0.filled(),
            )
        }))?;
        chart.draw_series(d.iter().enumerate().map(|(i, x)| {
            Text::new(
                format!(
                    "{} · {} flow(s) · {}",
                    human_bytes(x.egress_ip_bytes),
                    x.flows,
                    classes[i].replace('_', " ")
                ),
                (x.egress_ip_bytes as f64 + max * 0.012, y_of(i)),
                (FONT, 13)
                    .into_font()
                    .color(&BLACK)
                    .pos(Pos::new(HPos::Left, VPos::Center)),
            )
        }))?;
        Ok(())
    })?;
    Ok(Some(Chart {
        svg,
        legend: class_legend(&classes),
    }))
}

/// One legend entry per destination class shown, in order of first appearance.
fn class_legend(classes: &[String]) -> Vec<LegendItem> {
    let mut seen: Vec<&str> = Vec::new();
    let mut legend = Vec::new();
    for c in classes {
        let (color, word) = class_style(c);
        if !seen.contains(&word) {
            seen.push(word);
            legend.push(item(Swatch::Bar, color, word));
        }
    }
    legend
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn runs_break_at_silent_minutes() {
        let r = runs(&[(0, 1.0), (60, 2.0), (180, 3.0)]);
        assert_eq!(r.len(), 2);
        assert_eq!(r[0].len(), 2);
    }
}
