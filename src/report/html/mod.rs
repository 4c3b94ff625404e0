//! The HTML report: one self-contained page (inline CSS from `style.css`, inline SVG charts from
//! [`charts`]; no script, font or image is fetched) that reads on screen and on paper.
//!
//! Layout: the verdict and the sentence an auditor needs first, then the controls at a glance,
//! the licensing charts, per-sensor figures, one section per control with its evidence, the
//! per-minute series, and the chain of custody. This file owns the page; [`markup`] the small
//! HTML pieces; [`charts`] the figures.
//!
//! Invariants: every string taken from an audit goes through [`text`] (redacted, then
//! HTML-escaped); the page is a function of the merged audits and the report time only
//! (byte-identical when regenerated).

mod charts;
mod markup;

use std::fmt::Write as _;

pub use markup::text;

use self::charts::{median_checkin_interval, write_charts};
use self::markup::{
    bytes_cell, chip, chip_verdict, control_class, grouped, join_or_none, short_time, verdict_class,
};
use crate::audit::minutes::LicensingMinute;
use crate::audit::{Audit, ControlId, ControlResult, Evidence};
use crate::inspect::secrets::redact_text;
use crate::report::merge::{AuditPart, Merged, UNNAMED_SENSOR};
use crate::report::prose::{
    audio_sentence, human_seconds, report_time, verdict_clause, volume_sentence,
};
use crate::source::FileFacts;
use crate::units::human_bytes;

/// Rows of the per-minute table before it is cut (the JSON has them all).
const MINUTE_ROWS: usize = 240;
/// Flow uids shown per evidence row.
const UIDS_PER_ROW: usize = 4;
/// The page's style sheet (kept as CSS so that it can be read and linted as CSS).
const CSS: &str = include_str!("style.css");

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
    let _ = writeln!(h, "<style>\n{CSS}</style>\n</head>\n<body>\n<main>");
    summary(&mut h, merged);
    overview(&mut h, a);
    write_charts(&mut h, merged);
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

// ------------------------------------------------------------------------------ the banner

/// `sensor a, sensor b`, or the number of input files when no audit names its sensor.
fn sensor_names(merged: &Merged) -> String {
    let names: Vec<&str> = merged
        .sensors
        .iter()
        .map(|s| s.sensor.as_str())
        .filter(|s| *s != UNNAMED_SENSOR)
        .collect();
    match names.len() {
        0 => format!("{} input file(s)", merged.audit.inputs.len()),
        1 => format!("sensor {}", names[0]),
        n => format!("{n} sensors: {}", names.join(", ")),
    }
}

/// The banner: the verdict, what it rests on, and four facts.
fn summary(h: &mut String, merged: &Merged) {
    let a = &merged.audit;
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
    volume_fact(h, a);
    connections_fact(h, merged);
    audio_fact(h, a);
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

/// The largest host-minute against the budget, green or red.
fn volume_fact(h: &mut String, a: &Audit) {
    let l = &a.licensing;
    let budget = a.policy.licensing.max_egress_bytes_per_minute;
    let (class, value) = if l.per_minute.is_empty() {
        ("", "none".to_string())
    } else if l.ip_bytes_per_minute.max > budget {
        ("bad", human_bytes(l.ip_bytes_per_minute.max))
    } else {
        ("good", human_bytes(l.ip_bytes_per_minute.max))
    };
    fact(
        h,
        class,
        "Max licensing egress / host-minute",
        &value,
        &format!(
            "budget {} · median {}",
            human_bytes(budget),
            human_bytes(l.ip_bytes_per_minute.p50)
        ),
    );
}

/// Connections, how many were answered, from how many hosts, and the median check-in interval.
fn connections_fact(h: &mut String, merged: &Merged) {
    let l = &merged.audit.licensing;
    let answered = l.timeline.iter().filter(|c| c.answered).count();
    fact(
        h,
        "",
        "Licensing connections",
        &l.connections.to_string(),
        &format!(
            "{} answered from {} host(s){}",
            answered,
            host_count(merged),
            median_checkin_interval(merged)
                .map(|s| format!(" · every {s:.0} s (median)"))
                .unwrap_or_default()
        ),
    );
}

/// The speech the licensing channel could carry in its largest minute.
fn audio_fact(h: &mut String, a: &Audit) {
    let l = &a.licensing;
    let worst_audio = l
        .audio_bound
        .first()
        .map(|b| (b.seconds_per_minute_at_max, b.codec_kbps));
    fact(
        h,
        "",
        "Speech the licensing channel could carry",
        &match worst_audio {
            Some((s, _)) if !l.per_minute.is_empty() => format!("≤ {} / min", human_seconds(s)),
            _ => "none".into(),
        },
        &worst_audio
            .map(|(_, k)| format!("at {k} kbit/s, in its largest minute"))
            .unwrap_or_default(),
    );
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

// ----------------------------------------------------------------------------------- sensors

/// Per-sensor figures, when more than one audit was merged.
fn sensors(h: &mut String, merged: &Merged) {
    if merged.sensors.len() < 2 && merged.parts.len() < 2 {
        return;
    }
    h.push_str("<section>\n<h2>Sensors</h2>\n<table>\n<tr><th>Sensor</th><th>Verdict</th><th>Period</th><th class=\"num\">Licensing egress</th><th class=\"num\">Connections</th><th class=\"num\">Max / host-minute</th><th>Hosts</th></tr>\n");
    for s in &merged.sensors {
        let hosts = text(&s.audit.licensing.sources.join(", "));
        sensor_row(h, &s.sensor, &s.audit, hosts, false);
    }
    let hosts = format!("{} host(s)", host_count(merged));
    sensor_row(h, "combined", &merged.audit, hosts, true);
    h.push_str("</table>\n");
    let _ = writeln!(
        h,
        "<p class=\"note\">Combined = the sum of the sensors; each sensor counts each (host, minute) once. {}</p>",
        dedup_note(merged)
    );
    h.push_str("</section>\n");
}

fn sensor_row(h: &mut String, name: &str, a: &Audit, hosts: String, strong: bool) {
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
}

/// What the merge counted once, in a sentence.
fn dedup_note(merged: &Merged) -> String {
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
    if dedup.is_empty() {
        "No host-minute, connection or input file was seen twice, so nothing was deduplicated."
            .to_string()
    } else {
        format!("{}.", dedup.join("; "))
    }
}

// ---------------------------------------------------------------------------------- controls

fn controls(h: &mut String, a: &Audit) {
    h.push_str("<section class=\"page\">\n<h2>Controls and evidence</h2>\n");
    for c in &a.controls {
        control(h, a, c);
    }
    h.push_str("</section>\n");
}

/// One control: rule, summary, the audio bound (AUDIO), and its evidence.
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
        audio_table(h, a);
    }
    if !c.evidence.is_empty() {
        h.push_str("<table class=\"evidence\">\n<tr><th>Packet time</th><th>Source</th><th>Destination</th><th class=\"num\">Bytes</th><th>Flows</th><th>What</th></tr>\n");
        for e in &c.evidence {
            evidence_row(h, e);
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

/// The speech a licensing minute could carry, per codec rate.
fn audio_table(h: &mut String, a: &Audit) {
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

fn evidence_row(h: &mut String, e: &Evidence) {
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

// ---------------------------------------------------------------------------- per minute

/// The licensing series, one row per host-minute (only the rows over the budget when long).
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
        minute_row(h, m, budget);
    }
    h.push_str("</table>\n</section>\n");
}

fn minute_row(h: &mut String, m: &LicensingMinute, budget: u64) {
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

// -------------------------------------------------------------------------- chain of custody

/// Where the report comes from: the audits, their input files, the policy, the capture.
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
        audit_row(h, p);
    }
    h.push_str("</table>\n<h3>Input files</h3>\n<table>\n<tr><th>File</th><th>Format</th><th class=\"num\">Size</th><th class=\"num\">Records</th><th class=\"num\">Drops</th><th>SHA-256</th><th>State</th></tr>\n");
    for i in &a.inputs {
        input_row(h, i);
    }
    h.push_str("</table>\n<h3>Policy</h3>\n<table>\n");
    policy_rows(h, merged);
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

fn audit_row(h: &mut String, p: &AuditPart) {
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

fn input_row(h: &mut String, i: &FileFacts) {
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

/// The policy the audits applied (the first audit's, with a note when they differ).
fn policy_rows(h: &mut String, merged: &Merged) {
    let a = &merged.audit;
    let p = &a.policy.licensing;
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
}
