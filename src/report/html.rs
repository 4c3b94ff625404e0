//! The HTML report: one self-contained page (inline CSS, inline SVG charts drawn with plotters'
//! SVG backend; no script, font or image is fetched) that reads on screen and on paper.
//!
//! Layout: the verdict and the sentence an auditor needs first, then the controls at a glance,
//! the licensing charts, per-sensor figures, one section per control with its evidence, the
//! per-minute series, and the chain of custody.
//!
//! Invariants: every string taken from an audit goes through [`text`] (redacted, then
//! HTML-escaped); chart labels are redacted before plotters (which escapes them) draws them;
//! the page is a function of the merged audits and the options only (byte-identical when
//! regenerated).

use std::collections::BTreeMap;
use std::fmt::Write as _;

use plotters::coord::Shift;
use plotters::prelude::*;
use plotters::style::text_anchor::{HPos, Pos, VPos};

use super::merge::Merged;
use super::prose::{audio_sentence, human_seconds, report_time, verdict_clause, volume_sentence};
use crate::audit::{Audit, ControlId, ControlResult, ControlVerdict, LicensingConnection, Verdict};
use crate::inspect::secrets::redact_text;
use crate::units::{human_bytes, rfc3339, NANOS};

/// Rows of the per-minute table before it is cut (the JSON has them all).
const MINUTE_ROWS: usize = 240;
/// Flow uids shown per evidence row.
const UIDS_PER_ROW: usize = 4;
/// Chart width in SVG pixels (the page scales it down to fit).
const CHART_WIDTH: u32 = 1080;

/// Redacts, then HTML-escapes, a string taken from an audit.
pub fn text(s: &str) -> String {
    escape(&redact_text(s))
}

fn escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

fn verdict_class(v: Verdict) -> &'static str {
    match v {
        Verdict::Compliant => "pass",
        Verdict::Findings => "finding",
        Verdict::Violation => "violation",
        Verdict::Inconclusive => "inconclusive",
    }
}

fn control_class(v: ControlVerdict) -> &'static str {
    match v {
        ControlVerdict::Pass => "pass",
        ControlVerdict::NotApplicable => "na",
        ControlVerdict::Finding => "finding",
        ControlVerdict::Inconclusive => "inconclusive",
        ControlVerdict::Violation => "violation",
    }
}

fn chip(v: ControlVerdict) -> String {
    let word = match v {
        ControlVerdict::NotApplicable => "n/a",
        v => v.as_str(),
    };
    format!("<span class=\"chip {}\">{word}</span>", control_class(v))
}

/// `5,312,456`.
fn grouped(n: u64) -> String {
    let digits = n.to_string();
    let mut out = String::with_capacity(digits.len() + digits.len() / 3);
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i) % 3 == 0 {
            out.push(',');
        }
        out.push(c);
    }
    out
}

fn bytes_cell(n: u64) -> String {
    if n < 1000 {
        format!("{n} B")
    } else {
        format!(
            "{} <span class=\"muted\">({} B)</span>",
            human_bytes(n),
            grouped(n)
        )
    }
}

const CSS: &str = r#"
:root{--ink:#1f2328;--muted:#59636e;--line:#d1d9e0;--soft:#f6f8fa;
--pass:#1a7f37;--pass-bg:#e8f5ec;--violation:#b42318;--violation-bg:#fdeceb;
--finding:#9a6700;--finding-bg:#fff5d6;--inconclusive:#6639ba;--inconclusive-bg:#f1ebfb;
--na:#6e7781;--na-bg:#f3f4f6}
*{box-sizing:border-box}
body{margin:0;color:var(--ink);background:#fff;font:15px/1.5 system-ui,-apple-system,"Segoe UI",Roboto,"Helvetica Neue",Arial,sans-serif}
main{max-width:1180px;margin:0 auto;padding:20px 32px 48px}
h1{font-size:15px;font-weight:600;color:var(--muted);margin:0 0 10px;letter-spacing:.02em}
h2{font-size:22px;margin:36px 0 10px;padding-bottom:4px;border-bottom:2px solid var(--ink)}
h3{font-size:17px;margin:22px 0 6px}
p{margin:6px 0}
.muted{color:var(--muted)}
code,.mono{font-family:ui-monospace,SFMono-Regular,Menlo,Consolas,"Liberation Mono",monospace;font-size:12.5px}
.banner{border:2px solid;border-left-width:16px;border-radius:8px;padding:16px 24px 18px}
.banner.pass{border-color:var(--pass);background:var(--pass-bg)}
.banner.violation{border-color:var(--violation);background:var(--violation-bg)}
.banner.finding{border-color:var(--finding);background:var(--finding-bg)}
.banner.inconclusive{border-color:var(--inconclusive);background:var(--inconclusive-bg)}
.verdict{font-size:60px;font-weight:800;line-height:1.05;letter-spacing:.03em;text-transform:uppercase}
.verdict .exit{font-size:15px;font-weight:500;letter-spacing:0;text-transform:none;color:var(--muted);margin-left:12px}
.banner.pass .verdict{color:var(--pass)}.banner.violation .verdict{color:var(--violation)}
.banner.finding .verdict{color:var(--finding)}.banner.inconclusive .verdict{color:var(--inconclusive)}
.why{font-size:21px;font-weight:700;margin:8px 0 2px}
.sentence{font-size:17px;margin:4px 0;max-width:980px}
.facts{display:grid;grid-template-columns:repeat(4,1fr);gap:10px;margin:16px 0 0}
.fact{background:#fff;border:1px solid var(--line);border-radius:6px;padding:8px 12px}
.fact .k{font-size:11.5px;text-transform:uppercase;letter-spacing:.05em;color:var(--muted)}
.fact .v{font-size:22px;font-weight:700;line-height:1.25}
.fact .s{font-size:12.5px;color:var(--muted)}
.fact.bad .v{color:var(--violation)}.fact.good .v{color:var(--pass)}
table{border-collapse:collapse;width:100%;margin:6px 0 10px}
th,td{border-bottom:1px solid var(--line);padding:5px 8px;text-align:left;vertical-align:top}
th{font-size:12px;text-transform:uppercase;letter-spacing:.04em;color:var(--muted);border-bottom:2px solid var(--line)}
td.num,th.num{text-align:right;font-variant-numeric:tabular-nums;white-space:nowrap}
td.nowrap{white-space:nowrap}
td.hash{font-family:ui-monospace,SFMono-Regular,Menlo,Consolas,"Liberation Mono",monospace;font-size:11.5px;word-break:break-all;min-width:160px}
table.narrow{width:auto;min-width:50%}
tr.over td{background:var(--violation-bg)}
.overview td{padding:6px 8px}.overview td.id{font-weight:700;white-space:nowrap;width:120px}
.overview td.v{width:130px}
.chip{display:inline-block;min-width:88px;text-align:center;padding:1px 8px;border-radius:12px;border:1.5px solid;font-size:12px;font-weight:700;text-transform:uppercase;letter-spacing:.04em}
.chip.pass{color:var(--pass);border-color:var(--pass);background:var(--pass-bg)}
.chip.violation{color:#fff;border-color:var(--violation);background:var(--violation)}
.chip.finding{color:var(--finding);border-color:var(--finding);background:var(--finding-bg)}
.chip.inconclusive{color:var(--inconclusive);border-color:var(--inconclusive);background:var(--inconclusive-bg)}
.chip.na{color:var(--na);border-color:#c4c9cf;background:var(--na-bg)}
.charts{display:grid;grid-template-columns:1fr;gap:6px}
figure{margin:8px 0 14px;border:1px solid var(--line);border-radius:6px;padding:10px 12px 6px;break-inside:avoid}
figcaption{font-weight:700;font-size:15px}
figcaption .muted{font-weight:400;font-size:13px}
figure svg{display:block;width:100%;height:auto;margin-top:6px}
.legend{display:flex;flex-wrap:wrap;gap:4px 18px;font-size:13px;margin:2px 0 4px 8px}
.legend span{display:inline-flex;align-items:center;gap:6px}
.sw{display:inline-block;width:12px;height:12px;border-radius:50%;background:var(--c);-webkit-print-color-adjust:exact;print-color-adjust:exact}
.sw.ring{background:none;border:2px solid var(--c)}
.sw.bar{border-radius:2px;width:16px;height:10px}
.sw.dash{border-radius:0;width:22px;height:0;background:none;border-top:3px dashed var(--c)}
.sw.band{border-radius:2px;width:22px;height:12px;background:var(--c);opacity:.25}
a{color:inherit}
.overview a{text-decoration:none}
.control{border:1px solid var(--line);border-left:8px solid var(--na);border-radius:6px;padding:8px 16px 10px;margin:12px 0;break-inside:avoid-page}
.control.pass{border-left-color:var(--pass)}.control.violation{border-left-color:var(--violation)}
.control.finding{border-left-color:var(--finding)}.control.inconclusive{border-left-color:var(--inconclusive)}
.control h3{margin:4px 0;display:flex;gap:12px;align-items:center}
.control .rule{color:var(--muted);font-style:italic;margin:2px 0}
.control .summary{font-weight:600}
.evidence td{font-size:13px}
.note{background:var(--soft);border:1px solid var(--line);border-radius:6px;padding:8px 12px;font-size:13.5px}
footer{margin-top:32px;color:var(--muted);font-size:12.5px;border-top:1px solid var(--line);padding-top:8px}
@media (max-width:800px){.facts{grid-template-columns:repeat(2,1fr)}main{padding:12px}}
@media print{
@page{size:A4;margin:14mm 12mm}
body{font-size:10.5pt}
main{max-width:none;padding:0}
.banner,.fact,tr.over td,.chip{-webkit-print-color-adjust:exact;print-color-adjust:exact}
.chip.violation{color:var(--violation);background:#fff}
section.page{break-before:page}
h2,h3{break-after:avoid}
tr,figure,.fact{break-inside:avoid}
a{color:inherit;text-decoration:none}
}
"#;

/// The whole page.
pub fn write_html(merged: &Merged, generated_at_nanos: Option<i64>) -> String {
    let a = &merged.audit;
    let mut h = String::with_capacity(256 * 1024);
    let title = format!(
        "dg-audit: {} — licensing traffic {} .. {}",
        a.verdict.as_str(),
        a.capture.start,
        a.capture.end
    );
    h.push_str("<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n");
    h.push_str("<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\n");
    h.push_str("<meta name=\"generator\" content=\"dg-audit\">\n");
    let _ = writeln!(h, "<title>{}</title>", text(&title));
    let _ = writeln!(h, "<style>{CSS}</style>\n</head>\n<body>\n<main>");
    summary(&mut h, merged);
    overview(&mut h, a);
    charts(&mut h, merged);
    sensors(&mut h, merged);
    controls(&mut h, a);
    minutes_table(&mut h, a);
    custody(&mut h, merged, generated_at_nanos);
    let (time, how) = report_time(merged, generated_at_nanos);
    let _ = writeln!(
        h,
        "<footer>dg-audit {} report · report time {} ({}) · built only from the audit JSON; regenerate with <code>dg-audit report</code></footer>",
        text(env!("CARGO_PKG_VERSION")),
        text(&time),
        how
    );
    h.push_str("</main>\n</body>\n</html>\n");
    // Belt and braces: nothing that looks like a credential leaves, whatever path it took.
    redact_text(&h)
}

/// `sensor a, sensor b`, or the number of input files when no audit names its sensor.
fn sensor_names(merged: &Merged) -> String {
    let names: Vec<&str> = merged
        .sensors
        .iter()
        .map(|s| s.sensor.as_str())
        .filter(|s| *s != super::merge::UNNAMED_SENSOR)
        .collect();
    match names.len() {
        0 => format!("{} input file(s)", merged.audit.inputs.len()),
        1 => format!("sensor {}", names[0]),
        n => format!("{n} sensors: {}", names.join(", ")),
    }
}

fn summary(h: &mut String, merged: &Merged) {
    let a = &merged.audit;
    let l = &a.licensing;
    let budget = a.policy.licensing.max_egress_bytes_per_minute;
    h.push_str("<header>\n<h1>dg-audit · Deepgram self-hosted licensing traffic audit</h1>\n");
    let _ = writeln!(
        h,
        "<div class=\"banner {}\">\n<div class=\"verdict\">{}<span class=\"exit\">exit code {}</span></div>",
        verdict_class(a.verdict),
        a.verdict.as_str(),
        a.verdict.exit_code()
    );
    let _ = writeln!(h, "<p class=\"why\">{}</p>", text(&verdict_clause(a)));
    let _ = writeln!(h, "<p class=\"sentence\">{}</p>", text(&volume_sentence(a)));
    let _ = writeln!(h, "<p class=\"sentence\">{}</p>", text(&audio_sentence(a)));
    h.push_str("<div class=\"facts\">\n");
    let over = l.ip_bytes_per_minute.max > budget;
    fact(
        h,
        if l.per_minute.is_empty() {
            ""
        } else if over {
            "bad"
        } else {
            "good"
        },
        "Max licensing egress / host-minute",
        &if l.per_minute.is_empty() {
            "none".to_string()
        } else {
            human_bytes(l.ip_bytes_per_minute.max)
        },
        &format!(
            "budget {} · median {}",
            human_bytes(budget),
            human_bytes(l.ip_bytes_per_minute.p50)
        ),
    );
    let checkins = l.timeline.iter().filter(|c| c.answered).count();
    let groups = host_groups(merged);
    let cadence = median_interval(&checkin_intervals(&groups, &timeline_rows(&groups).0));
    fact(
        h,
        "",
        "Licensing connections",
        &l.connections.to_string(),
        &format!(
            "{} answered from {} host(s){}",
            checkins,
            host_count(merged),
            cadence
                .map(|s| format!(" · every {s:.0} s (median)"))
                .unwrap_or_default()
        ),
    );
    let worst_audio = l
        .audio_bound
        .first()
        .map(|b| (b.seconds_per_minute_at_max, b.codec_kbps));
    fact(
        h,
        "",
        "Speech the licensing channel could carry",
        &match worst_audio {
            Some((s, _)) if !l.per_minute.is_empty() => {
                format!("≤ {} / min", human_seconds(s))
            }
            _ => "none".into(),
        },
        &worst_audio
            .map(|(_, k)| format!("at {k} kbit/s, in its largest minute"))
            .unwrap_or_default(),
    );
    fact(
        h,
        "",
        "Period",
        &human_seconds(a.capture.duration_seconds),
        &format!(
            "{} .. {} · {}",
            short_time(&a.capture.start),
            short_time(&a.capture.end),
            sensor_names(merged)
        ),
    );
    h.push_str("</div>\n</div>\n</header>\n");
}

/// Hosts that sent licensing traffic, an address under two sensors counting twice.
fn host_count(merged: &Merged) -> usize {
    if merged.sensors.len() > 1 {
        merged
            .sensors
            .iter()
            .map(|s| s.audit.licensing.sources.len())
            .sum()
    } else {
        merged.audit.licensing.sources.len()
    }
}

fn fact(h: &mut String, class: &str, key: &str, value: &str, sub: &str) {
    let _ = writeln!(
        h,
        "<div class=\"fact {class}\"><div class=\"k\">{}</div><div class=\"v\">{}</div><div class=\"s\">{}</div></div>",
        text(key),
        text(value),
        text(sub)
    );
}

/// `2024-05-01 12:00:05Z` from an RFC 3339 time with microseconds.
fn short_time(t: &str) -> String {
    match (t.get(..10), t.get(11..19)) {
        (Some(d), Some(hms)) => format!("{d} {hms}Z"),
        _ => t.to_string(),
    }
}

fn median_interval(cadence: &Cadence) -> Option<f64> {
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

/// Check-in intervals per host.
struct Cadence {
    /// Per host: (check-in time, seconds since the previous check-in).
    intervals: BTreeMap<String, Vec<(i64, f64)>>,
    /// Hosts whose check-ins travel inside one held connection: their intervals are those of
    /// their active minutes (minute resolution).
    by_minute: Vec<String>,
}

/// Intervals between answered check-ins; for a host with fewer than two answered connections
/// (a held connection), between its active minutes, as the CADENCE control counts them.
fn checkin_intervals(
    groups: &[(String, &Audit)],
    timeline: &[(String, LicensingConnection)],
) -> Cadence {
    let mut starts: BTreeMap<String, Vec<i64>> = BTreeMap::new();
    for (host, c) in timeline.iter().filter(|(_, c)| c.answered) {
        starts
            .entry(host.clone())
            .or_default()
            .push(c.start_ts_nanos);
    }
    let mut by_minute = Vec::new();
    for (prefix, a) in groups {
        let mut minutes: BTreeMap<String, Vec<i64>> = BTreeMap::new();
        for m in a
            .licensing
            .per_minute
            .iter()
            .filter(|m| m.egress_ip_bytes > 0)
        {
            minutes
                .entry(host_key(prefix, &m.source.to_string()))
                .or_default()
                .push(m.start_ts * NANOS);
        }
        for (host, ts) in minutes {
            if ts.len() >= 2 && starts.get(&host).is_none_or(|s| s.len() < 2) {
                starts.insert(host.clone(), ts);
                by_minute.push(host);
            }
        }
    }
    let intervals = starts
        .into_iter()
        .map(|(source, mut ts)| {
            ts.sort();
            let v = ts
                .windows(2)
                .map(|w| (w[1], (w[1] - w[0]) as f64 / 1e9))
                .collect();
            (source, v)
        })
        .filter(|(_, v): &(String, Vec<(i64, f64)>)| !v.is_empty())
        .collect();
    Cadence {
        intervals,
        by_minute,
    }
}

fn overview(h: &mut String, a: &Audit) {
    h.push_str("<section>\n<h2>Controls at a glance</h2>\n<table class=\"overview\">\n");
    for c in &a.controls {
        let _ = writeln!(
            h,
            "<tr><td class=\"id\"><a href=\"#control-{id}\">{id}</a></td><td class=\"v\">{}</td><td>{}</td></tr>",
            chip(c.verdict),
            text(&c.summary),
            id = text(c.id.as_str())
        );
    }
    h.push_str("</table>\n</section>\n");
}

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

fn host_key(prefix: &str, source: &str) -> String {
    if prefix.is_empty() {
        source.to_string()
    } else {
        format!("{prefix} · {source}")
    }
}

fn charts(h: &mut String, merged: &Merged) {
    let a = &merged.audit;
    let groups = host_groups(merged);
    let axis = TimeAxis::new(a);
    let l = &a.licensing;
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
        &format!(
            "seconds between consecutive answered check-ins of each host{}",
            if derived { " (minute resolution)" } else { "" }
        ),
        cadence_chart(a, &checkin_intervals(&groups, &timeline), &axis, &hosts),
        if l.per_minute.is_empty() {
            "No check-ins to measure."
        } else {
            "Fewer than two answered check-ins per host (a held connection carries its check-ins inside one connection; see the per-minute chart)."
        },
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

/// A chart: its SVG and the legend printed under it (HTML, so it never hides data).
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

#[derive(Clone, Copy)]
enum Swatch {
    Dot,
    Ring,
    Bar,
    Dash,
    Band,
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
            if !chart.legend.is_empty() {
                h.push_str("<div class=\"legend\">");
                for i in &chart.legend {
                    let class = match i.swatch {
                        Swatch::Dot => "dot",
                        Swatch::Ring => "ring",
                        Swatch::Bar => "bar",
                        Swatch::Dash => "dash",
                        Swatch::Band => "band",
                    };
                    let _ = write!(
                        h,
                        "<span><i class=\"sw {class}\" style=\"--c:{}\"></i>{}</span>",
                        hex(i.color),
                        text(&i.label)
                    );
                }
                h.push_str("</div>\n");
            }
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

fn sensors(h: &mut String, merged: &Merged) {
    if merged.sensors.len() < 2 && merged.parts.len() < 2 {
        return;
    }
    h.push_str("<section>\n<h2>Sensors</h2>\n<table>\n<tr><th>Sensor</th><th>Verdict</th><th>Period</th><th class=\"num\">Licensing egress</th><th class=\"num\">Connections</th><th class=\"num\">Max / host-minute</th><th>Hosts</th></tr>\n");
    let row = |h: &mut String, name: &str, a: &Audit, hosts: String, strong: bool| {
        let (b0, b1) = if strong { ("<b>", "</b>") } else { ("", "") };
        let _ = writeln!(
            h,
            "<tr><td>{b0}{}{b1}</td><td>{}</td><td class=\"nowrap mono\">{}<br>{}</td><td class=\"num\">{b0}{}{b1}</td><td class=\"num\">{b0}{}{b1}</td><td class=\"num\">{}</td><td>{}</td></tr>",
            text(name),
            chip_verdict(a.verdict),
            text(&short_time(&a.capture.start)),
            text(&short_time(&a.capture.end)),
            bytes_cell(a.licensing.egress_ip_bytes),
            a.licensing.connections,
            human_bytes(a.licensing.ip_bytes_per_minute.max),
            hosts
        );
    };
    for s in &merged.sensors {
        row(
            h,
            &s.sensor,
            &s.audit,
            text(&s.audit.licensing.sources.join(", ")),
            false,
        );
    }
    row(
        h,
        "combined",
        &merged.audit,
        format!("{} host(s)", host_count(merged)),
        true,
    );
    h.push_str("</table>\n");
    let mut dedup = Vec::new();
    if merged.windows_counted_once > 0 {
        dedup.push(format!(
            "{} host-minute(s) seen by audits of one sensor with overlapping capture spans were counted once (the largest measurement kept)",
            merged.windows_counted_once
        ));
    }
    if merged.windows_added > 0 {
        dedup.push(format!(
            "{} host-minute(s) split across consecutive captures were added",
            merged.windows_added
        ));
    }
    if merged.connections_counted_once > 0 {
        dedup.push(format!(
            "{} connection(s) seen twice were listed once",
            merged.connections_counted_once
        ));
    }
    let duplicates = merged.parts.iter().filter(|p| !p.counted).count();
    if duplicates > 0 {
        dedup.push(format!(
            "{duplicates} audit(s) whose input files were already counted were left out (see the chain of custody)"
        ));
    }
    let _ = writeln!(
        h,
        "<p class=\"note\">Combined = the sum of the sensors; each sensor counts each (host, minute) once. {}</p>",
        if dedup.is_empty() {
            "No host-minute, connection or input file was seen twice, so nothing was deduplicated.".to_string()
        } else {
            format!("{}.", dedup.join("; "))
        }
    );
    h.push_str("</section>\n");
}

fn chip_verdict(v: Verdict) -> String {
    format!(
        "<span class=\"chip {}\">{}</span>",
        verdict_class(v),
        v.as_str()
    )
}

fn controls(h: &mut String, a: &Audit) {
    h.push_str("<section class=\"page\">\n<h2>Controls and evidence</h2>\n");
    for c in &a.controls {
        control(h, a, c);
    }
    h.push_str("</section>\n");
}

fn control(h: &mut String, a: &Audit, c: &ControlResult) {
    let _ = writeln!(
        h,
        "<div class=\"control {}\" id=\"control-{}\">\n<h3>{} {}</h3>",
        control_class(c.verdict),
        text(c.id.as_str()),
        text(c.id.as_str()),
        chip(c.verdict)
    );
    let _ = writeln!(h, "<p class=\"rule\">Rule: {}</p>", text(&c.rule));
    let _ = writeln!(h, "<p class=\"summary\">{}</p>", text(&c.summary));
    if c.id == ControlId::Audio
        && !a.licensing.audio_bound.is_empty()
        && !a.licensing.per_minute.is_empty()
    {
        h.push_str("<table class=\"evidence narrow\"><tr><th>Codec rate</th><th class=\"num\">Speech / min at p99 minute</th><th class=\"num\">Speech / min at largest minute</th></tr>\n");
        for b in &a.licensing.audio_bound {
            let _ = writeln!(
                h,
                "<tr><td>{} kbit/s</td><td class=\"num\">{}</td><td class=\"num\">{}</td></tr>",
                b.codec_kbps,
                human_seconds(b.seconds_per_minute_at_p99),
                human_seconds(b.seconds_per_minute_at_max)
            );
        }
        h.push_str("</table>\n");
    }
    if !c.evidence.is_empty() {
        h.push_str("<table class=\"evidence\">\n<tr><th>Packet time</th><th>Source</th><th>Destination</th><th class=\"num\">Bytes</th><th>Flows</th><th>What</th></tr>\n");
        for e in &c.evidence {
            let uids = if e.flow_uids.is_empty() {
                String::new()
            } else {
                let shown: Vec<String> = e
                    .flow_uids
                    .iter()
                    .take(UIDS_PER_ROW)
                    .map(|u| text(u))
                    .collect();
                let more = e.flow_uids.len().saturating_sub(UIDS_PER_ROW);
                format!(
                    "<span class=\"mono\">{}</span>{}",
                    shown.join("<br>"),
                    if more > 0 {
                        format!("<br><span class=\"muted\">+{more} more</span>")
                    } else {
                        String::new()
                    }
                )
            };
            let _ = writeln!(
                h,
                "<tr><td class=\"nowrap mono\">{}</td><td>{}</td><td>{}</td><td class=\"num\">{}</td><td>{}</td><td>{}</td></tr>",
                e.ts.map(|t| text(&t.to_string())).unwrap_or_default(),
                e.source.as_deref().map(text).unwrap_or_default(),
                e.destination.as_deref().map(text).unwrap_or_default(),
                e.bytes.map(bytes_cell).unwrap_or_default(),
                uids,
                text(&e.what)
            );
        }
        h.push_str("</table>\n");
    }
    if c.evidence_omitted > 0 {
        let _ = writeln!(
            h,
            "<p class=\"muted\">… and {} more evidence item(s), in the audit JSON.</p>",
            c.evidence_omitted
        );
    }
    h.push_str("</div>\n");
}

fn minutes_table(h: &mut String, a: &Audit) {
    let l = &a.licensing;
    if l.per_minute.is_empty() {
        return;
    }
    let budget = a.policy.licensing.max_egress_bytes_per_minute;
    h.push_str("<section class=\"page\">\n<h2>Licensing per minute</h2>\n");
    let _ = writeln!(
        h,
        "<p>Each row is one source host in one minute window of packet time. {} active host-minute(s); per host-minute p50 {}, p99 {}, max {}; total {} of IP bytes ({} of payload) in {} connection(s). Rows over the budget of {} are shaded.</p>",
        l.ip_bytes_per_minute.minutes,
        human_bytes(l.ip_bytes_per_minute.p50),
        human_bytes(l.ip_bytes_per_minute.p99),
        human_bytes(l.ip_bytes_per_minute.max),
        human_bytes(l.egress_ip_bytes),
        human_bytes(l.egress_payload_bytes),
        l.connections,
        human_bytes(budget)
    );
    let rows: Vec<_> = if l.per_minute.len() <= MINUTE_ROWS {
        l.per_minute.iter().collect()
    } else {
        let over: Vec<_> = l
            .per_minute
            .iter()
            .filter(|m| m.egress_ip_bytes > budget)
            .take(MINUTE_ROWS)
            .collect();
        let _ = writeln!(
            h,
            "<p class=\"note\">{} rows; showing the {} over the budget. Every row is in the audit JSON (<code>licensing.per_minute</code>).</p>",
            l.per_minute.len(),
            over.len()
        );
        over
    };
    h.push_str("<table>\n<tr><th>Minute</th><th>Source</th><th class=\"num\">Egress IP bytes</th><th class=\"num\">Payload bytes</th><th class=\"num\">Connections</th><th class=\"num\">Of budget</th><th>Flows</th></tr>\n");
    for m in rows {
        let share = if budget > 0 {
            format!("{:.0} %", m.egress_ip_bytes as f64 * 100.0 / budget as f64)
        } else {
            "-".into()
        };
        let uids: Vec<String> = m
            .flow_uids
            .iter()
            .take(UIDS_PER_ROW)
            .map(|u| text(u))
            .collect();
        let more = m.flow_uids.len().saturating_sub(UIDS_PER_ROW);
        let _ = writeln!(
            h,
            "<tr{}><td class=\"nowrap mono\">{}</td><td>{}</td><td class=\"num\">{}</td><td class=\"num\">{}</td><td class=\"num\">{}</td><td class=\"num\">{}</td><td class=\"mono\">{}{}</td></tr>",
            if m.egress_ip_bytes > budget { " class=\"over\"" } else { "" },
            text(&m.start),
            text(&m.source.to_string()),
            grouped(m.egress_ip_bytes),
            grouped(m.egress_payload_bytes),
            m.connections,
            share,
            uids.join(" "),
            if more > 0 { format!(" +{more}") } else { String::new() }
        );
    }
    h.push_str("</table>\n</section>\n");
}

fn custody(h: &mut String, merged: &Merged, generated_at_nanos: Option<i64>) {
    let a = &merged.audit;
    let (time, how) = report_time(merged, generated_at_nanos);
    h.push_str("<section class=\"page\">\n<h2>Chain of custody</h2>\n");
    let _ = writeln!(
        h,
        "<p>Generated from audits covering <b>{}</b> .. <b>{}</b>; report time = <b>{}</b> ({}). The report is built only from the audit JSON documents listed here, so regenerating it from them gives the same bytes.</p>",
        text(&a.capture.start),
        text(&a.capture.end),
        text(&time),
        how
    );
    h.push_str("<h3>Audits</h3>\n<table>\n<tr><th>Audit</th><th>Sensor</th><th>Capture span</th><th>Verdict</th><th>Policy SHA-256</th><th>Tool</th><th>Counted</th></tr>\n");
    for p in &merged.parts {
        let _ = writeln!(
            h,
            "<tr><td>{}</td><td>{}</td><td class=\"nowrap mono\">{}<br>{}</td><td>{}</td><td class=\"hash\">{}</td><td class=\"nowrap\">dg-audit {}</td><td>{}</td></tr>",
            text(&p.label),
            text(p.sensor.as_deref().unwrap_or("-")),
            text(&p.capture_start),
            text(&p.capture_end),
            chip_verdict(p.verdict),
            text(&p.policy_sha256),
            text(&p.tool_version),
            match &p.duplicate_of {
                None => "yes".to_string(),
                Some(o) => format!("no — same input files as {}", text(o)),
            }
        );
    }
    h.push_str("</table>\n<h3>Input files</h3>\n<table>\n<tr><th>File</th><th>Format</th><th class=\"num\">Size</th><th class=\"num\">Records</th><th class=\"num\">Drops</th><th>SHA-256</th><th>State</th></tr>\n");
    for i in &a.inputs {
        let state = if i.incomplete {
            "incomplete".to_string()
        } else if i.warnings.is_empty() {
            "complete".to_string()
        } else {
            format!("{} warning(s)", i.warnings.len())
        };
        let _ = writeln!(
            h,
            "<tr><td class=\"mono\">{}</td><td>{} {}</td><td class=\"num\">{}</td><td class=\"num\">{}</td><td class=\"num\">{}</td><td class=\"hash\">{}</td><td>{}</td></tr>",
            text(&i.path),
            text(&i.format),
            text(&i.byte_order),
            human_bytes(i.size_bytes),
            grouped(i.records),
            i.capture_drops,
            text(&i.sha256),
            text(&state)
        );
    }
    let p = &a.policy.licensing;
    h.push_str("</table>\n<h3>Policy</h3>\n<table>\n");
    let mut kv = |k: &str, v: String| {
        let _ = writeln!(h, "<tr><th>{}</th><td>{}</td></tr>", text(k), v);
    };
    kv(
        "SHA-256",
        format!("<span class=\"mono\">{}</span>", text(&a.policy_sha256)),
    );
    kv(
        "Source",
        text(
            a.policy_source
                .as_deref()
                .unwrap_or("embedded default (Deepgram's documentation)"),
        ),
    );
    kv("Licensing servers", text(&join_or_none(&p.servers)));
    kv(
        "Budget",
        format!(
            "{} per source per minute; connections at most {} s; check-in every {} ± {} s; held connection {}",
            human_bytes(p.max_egress_bytes_per_minute),
            p.max_connection_seconds,
            p.cadence_seconds,
            p.cadence_tolerance_seconds,
            if p.allow_held_connection { "allowed" } else { "not allowed" }
        ),
    );
    if !p.proxies.is_empty() || !p.forward_proxies.is_empty() {
        kv(
            "Proxies",
            text(&format!(
                "License Proxy: {}; forward proxy: {}",
                join_or_none(&p.proxies),
                join_or_none(&p.forward_proxies)
            )),
        );
    }
    let distinct: std::collections::BTreeSet<&str> = merged
        .parts
        .iter()
        .filter(|p| p.counted)
        .map(|p| p.policy_sha256.as_str())
        .collect();
    if distinct.len() > 1 {
        kv(
            "Note",
            format!(
                "the merged audits used {} different policies (see the audits table); the policy shown is the first audit's",
                distinct.len()
            ),
        );
    }
    h.push_str("</table>\n");
    let c = &a.capture;
    let _ = writeln!(
        h,
        "<h3>Capture</h3>\n<p>{} frames, {} packets, {} on the wire; {} capture drop(s), {} truncated frame(s); capture {}.</p>",
        grouped(c.frames),
        grouped(c.packets),
        human_bytes(c.wire_bytes),
        c.capture_drops,
        c.truncated_frames,
        if c.complete { "complete" } else { "incomplete" }
    );
    if merged.parts.len() > 1 {
        h.push_str("<p class=\"note\">Merge rule: an audit whose input files (by SHA-256) were all already counted is not counted again; a (source host, minute) window seen by audits whose capture spans overlap is counted once (largest measurement kept), and added when the spans are disjoint (a capture rotated mid-minute); a licensing connection seen by two overlapping audits (same source and destination, starting within 1 s) is listed once. Controls take the worst verdict of any audit.</p>\n");
    }
    h.push_str("</section>\n");
}

fn join_or_none<T: ToString>(items: &[T]) -> String {
    if items.is_empty() {
        "none".into()
    } else {
        items
            .iter()
            .map(ToString::to_string)
            .collect::<Vec<_>>()
            .join(", ")
    }
}

// ---------------------------------------------------------------------------------- charts

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
        (nanos - self.t0_secs * NANOS) as f64 / 1e9 / self.unit_secs
    }

    /// A time in whole seconds on the axis.
    fn x_secs(&self, secs: i64) -> f64 {
        (secs - self.t0_secs) as f64 / self.unit_secs
    }

    /// A duration in seconds, in axis units.
    fn len(&self, seconds: f64) -> f64 {
        seconds / self.unit_secs
    }

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

    fn desc(&self) -> String {
        let day = rfc3339(self.t0_secs * NANOS);
        if self.with_date {
            "time (UTC)".into()
        } else {
            format!("time (UTC, {})", day.get(..10).unwrap_or(""))
        }
    }
}

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
        HostColors(
            hosts
                .into_iter()
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
    let mut by_source: BTreeMap<String, Vec<(i64, f64)>> = BTreeMap::new();
    for (prefix, g) in groups {
        for m in &g.licensing.per_minute {
            by_source
                .entry(host_key(prefix, &m.source.to_string()))
                .or_default()
                .push((m.start_ts, m.egress_ip_bytes as f64));
        }
    }
    let values = || l.per_minute.iter().map(|m| m.egress_ip_bytes as f64);
    let max = values().fold(0.0, f64::max);
    let min_positive = values().filter(|&b| b > 0.0).fold(f64::MAX, f64::min);
    let over = values().any(|b| b > budget);
    let log = max > 20.0 * budget.max(1.0);
    // Points at the middle of their minute window.
    let series: Vec<(String, Vec<Run>)> = by_source
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
        .collect();
    let x_range = 0f64..axis.span;
    let svg = svg(CHART_WIDTH, 340, |root| {
        let mut builder = ChartBuilder::on(root);
        builder
            .margin_top(14)
            .margin_right(28)
            .margin_left(8)
            .x_label_area_size(46)
            .y_label_area_size(92);
        macro_rules! draw {
            ($chart:expr, $ydesc:expr) => {{
                let mut chart = $chart;
                chart
                    .configure_mesh()
                    .light_line_style(TRANSPARENT)
                    .bold_line_style(GRID)
                    .axis_style(AXIS)
                    .axis_desc_style((FONT, 14))
                    .label_style((FONT, 13))
                    .x_desc(axis.desc())
                    .y_desc($ydesc)
                    .x_labels(12)
                    .x_label_formatter(&|x| axis.label(*x))
                    .y_label_formatter(&|y| human_bytes(y.max(0.0).round() as u64))
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
                for (source, runs) in &series {
                    let color = hosts.of(source);
                    for run in runs {
                        chart.draw_series(LineSeries::new(
                            run.iter().copied(),
                            color.stroke_width(2),
                        ))?;
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
            }};
        }
        if log {
            let lo = (min_positive.min(budget) / 3.0).max(1.0);
            draw!(
                builder.build_cartesian_2d(x_range.clone(), (lo..max * 3.0).log_scale())?,
                "bytes per minute (log scale)"
            );
        } else {
            let top = max.max(budget) * 1.2;
            draw!(
                builder.build_cartesian_2d(x_range.clone(), 0f64..top)?,
                "bytes per minute"
            );
        }
        Ok(())
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
    let min_width = axis.span / 400.0;
    let height = 90 + 44 * n as u32;
    let failed = timeline.iter().any(|(_, c)| !c.answered);
    let big = timeline.iter().any(|(_, c)| c.egress_ip_bytes > budget);
    let svg = svg(CHART_WIDTH, height, |root| {
        let mut chart = ChartBuilder::on(root)
            .margin_top(10)
            .margin_right(28)
            .margin_left(8)
            .x_label_area_size(46)
            .y_label_area_size(150)
            .build_cartesian_2d(0f64..axis.span, -0.5f64..(n as f64 - 0.5))?;
        chart
            .configure_mesh()
            .light_line_style(TRANSPARENT)
            .bold_line_style(GRID)
            .axis_style(AXIS)
            .axis_desc_style((FONT, 14))
            .label_style((FONT, 13))
            .x_desc(axis.desc())
            .x_labels(12)
            .y_labels(n * 4 + 1)
            .x_label_formatter(&|x| axis.label(*x))
            .y_label_formatter(&|y| {
                let i = y.round();
                if (y - i).abs() < 1e-6 && i >= 0.0 && (i as usize) < n {
                    label(&sources[n - 1 - i as usize], 22)
                } else {
                    String::new()
                }
            })
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
    let mut legend = vec![item(Swatch::Bar, PASS, "answered check-in")];
    if failed {
        legend.push(item(Swatch::Bar, WARN, "attempt without an answer"));
    }
    if big {
        legend.push(item(
            Swatch::Bar,
            BAD,
            format!(
                "connection sending more than the {} budget",
                human_bytes(budget)
            ),
        ));
    }
    Ok(Some(Chart { svg, legend }))
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
    let all = || intervals.values().flatten().map(|(_, s)| *s);
    let max = all().fold(0.0, f64::max);
    let outside = all().any(|s| (s - cadence).abs() > tolerance);
    let top = (max * 1.15).max(cadence * 2.0);
    let svg = svg(CHART_WIDTH, 300, |root| {
        let mut chart = ChartBuilder::on(root)
            .margin_top(10)
            .margin_right(28)
            .margin_left(8)
            .x_label_area_size(46)
            .y_label_area_size(92)
            .build_cartesian_2d(0f64..axis.span, 0f64..top)?;
        chart
            .configure_mesh()
            .light_line_style(TRANSPARENT)
            .bold_line_style(GRID)
            .axis_style(AXIS)
            .axis_desc_style((FONT, 14))
            .label_style((FONT, 13))
            .x_desc(axis.desc())
            .y_desc("seconds since previous")
            .x_labels(12)
            .x_label_formatter(&|x| axis.label(*x))
            .y_label_formatter(&|y| format!("{y:.0} s"))
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
                    .filter(|p| (p.1 - cadence).abs() > tolerance)
                    .map(|&p| Circle::new(p, 9, BAD.stroke_width(2))),
            )?;
        }
        Ok(())
    })?;
    let mut legend = vec![item(
        Swatch::Band,
        PASS,
        format!("expected: every {cadence:.0} ± {tolerance:.0} s"),
    )];
    legend.extend(intervals.keys().map(|h| {
        let by_minute = if cadence_data.by_minute.contains(h) {
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
    if outside {
        legend.push(item(
            Swatch::Ring,
            BAD,
            "interval outside the expected band",
        ));
    }
    Ok(Some(Chart { svg, legend }))
}

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
    let names: Vec<String> = d.iter().map(|x| label(&x.destination, 48)).collect();
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
        let mut chart = ChartBuilder::on(root)
            .margin_top(10)
            .margin_right(28)
            .margin_left(8)
            .x_label_area_size(46)
            .y_label_area_size(340)
            .build_cartesian_2d(0f64..max * 1.35, -0.5f64..(n as f64 - 0.5))?;
        // Largest at the top.
        let y_of = |i: usize| (n - 1 - i) as f64;
        chart
            .configure_mesh()
            .light_line_style(TRANSPARENT)
            .bold_line_style(GRID)
            .axis_style(AXIS)
            .axis_desc_style((FONT, 14))
            .label_style((FONT, 13))
            .x_desc("client-to-server IP bytes")
            .x_labels(8)
            .y_labels(n * 4 + 1)
            .x_label_formatter(&|x| human_bytes(x.max(0.0).round() as u64))
            .y_label_formatter(&|y| {
                let r = y.round();
                if (y - r).abs() < 1e-6 && r >= 0.0 && (r as usize) < n {
                    names[n - 1 - r as usize].clone()
                } else {
                    String::new()
                }
            })
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
    let mut seen: Vec<&str> = Vec::new();
    let mut legend = Vec::new();
    for c in &classes {
        let (color, word) = class_style(c);
        if !seen.contains(&word) {
            seen.push(word);
            legend.push(item(Swatch::Bar, color, word));
        }
    }
    Ok(Some(Chart { svg, legend }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escapes_markup() {
        assert_eq!(text("<script>&\"'"), "&lt;script&gt;&amp;&quot;&#39;");
    }

    #[test]
    fn redacts_before_escaping() {
        let key = "f1037f690e1c05405b0a71b8fc1df3d453b1bcad";
        let out = text(&format!("key <{key}>"));
        assert!(!out.contains(key), "{out}");
        assert!(out.contains("f103...bcad"), "{out}");
    }

    #[test]
    fn groups_digits() {
        assert_eq!(grouped(0), "0");
        assert_eq!(grouped(999), "999");
        assert_eq!(grouped(5_312_456), "5,312,456");
    }

    #[test]
    fn runs_break_at_silent_minutes() {
        let r = runs(&[(0, 1.0), (60, 2.0), (180, 3.0)]);
        assert_eq!(r.len(), 2);
        assert_eq!(r[0].len(), 2);
    }
}
