//! The `flows` command's outputs: a text table, JSON, NDJSON, and Zeek `conn.log` TSV (with its
//! `#separator`, `#fields` and `#types` header lines, so zeek-cut and RITA read it).

use std::io::{self, Write};

use serde::Serialize;

use crate::audit::{Tool, SCHEMA_VERSION};
use crate::flow::FlowRecord;
use crate::pipeline::PassSummary;
use crate::units::{rfc3339, secs6};

/// The JSON document of `dg-audit flows --format json`.
#[derive(Serialize)]
pub struct FlowsDocument<'a> {
    /// [`SCHEMA_VERSION`].
    pub schema_version: u32,
    /// This build of dg-audit.
    pub tool: Tool,
    /// The pass's inputs, counts and span, flattened into the document.
    #[serde(flatten)]
    pub summary: &'a PassSummary,
    /// Every flow, in time order.
    pub flows: &'a [FlowRecord],
}

/// Writes the flows as one JSON document.
pub fn write_json(
    w: &mut dyn Write,
    summary: &PassSummary,
    flows: &[FlowRecord],
) -> io::Result<()> {
    let doc = FlowsDocument {
        schema_version: SCHEMA_VERSION,
        tool: Tool::current(),
        summary,
        flows,
    };
    serde_json::to_writer_pretty(&mut *w, &doc)?;
    writeln!(w)
}

/// Writes one flow as an NDJSON line.
pub fn write_ndjson_line(w: &mut dyn Write, flow: &FlowRecord) -> io::Result<()> {
    serde_json::to_writer(&mut *w, flow)?;
    writeln!(w)
}

const ZEEK_FIELDS: &str = "ts\tuid\tid.orig_h\tid.orig_p\tid.resp_h\tid.resp_p\tproto\tservice\tduration\torig_bytes\tresp_bytes\tconn_state\tlocal_orig\tlocal_resp\tmissed_bytes\thistory\torig_pkts\torig_ip_bytes\tresp_pkts\tresp_ip_bytes\ttunnel_parents\tip_proto";
const ZEEK_TYPES: &str = "time\tstring\taddr\tport\taddr\tport\tenum\tstring\tinterval\tcount\tcount\tstring\tbool\tbool\tcount\tstring\tcount\tcount\tcount\tcount\tset[string]\tcount";

/// Writes Zeek conn.log TSV. `is_local` answers Zeek's local_orig/local_resp (None prints `-`).
pub fn write_zeek(
    w: &mut dyn Write,
    flows: &[FlowRecord],
    open_ts_nanos: i64,
    is_local: Option<&dyn Fn(std::net::IpAddr) -> bool>,
) -> io::Result<()> {
    let stamp = |ts: i64| {
        let s = rfc3339(ts);
        // Zeek's #open/#close format: 2026-11-23-09-30-00
        s.get(..19).unwrap_or(&s).replace(['T', ':'], "-")
    };
    writeln!(w, "#separator \\x09")?;
    writeln!(w, "#set_separator\t,")?;
    writeln!(w, "#empty_field\t(empty)")?;
    writeln!(w, "#unset_field\t-")?;
    writeln!(w, "#path\tconn")?;
    writeln!(w, "#open\t{}", stamp(open_ts_nanos))?;
    writeln!(w, "#fields\t{ZEEK_FIELDS}")?;
    writeln!(w, "#types\t{ZEEK_TYPES}")?;
    let mut close_ts = open_ts_nanos;
    for f in flows {
        close_ts = close_ts.max(f.last_ts_nanos);
        let duration = f.duration_nanos();
        // Zeek leaves duration and byte counts unset for a connection of zero duration.
        let (dur, ob, rb) = if duration > 0 {
            (
                secs6(duration),
                f.orig_bytes.to_string(),
                f.resp_bytes.to_string(),
            )
        } else {
            ("-".into(), "-".into(), "-".into())
        };
        let local = |a| match is_local {
            Some(check) => {
                if check(a) {
                    "T"
                } else {
                    "F"
                }
            }
            None => "-",
        };
        writeln!(
            w,
            "{}\t{}\t{}\t{}\t{}\t{}\t{}\t{}\t{}\t{}\t{}\t{}\t{}\t{}\t{}\t{}\t{}\t{}\t{}\t{}\t-\t{}",
            secs6(f.ts_nanos),
            f.uid,
            f.orig_h,
            f.orig_p,
            f.resp_h,
            f.resp_p,
            f.proto.as_str(),
            f.service.as_deref().unwrap_or("-"),
            dur,
            ob,
            rb,
            f.conn_state.as_str(),
            local(f.orig_h),
            local(f.resp_h),
            f.missed_bytes,
            if f.history.is_empty() {
                "-"
            } else {
                &f.history
            },
            f.orig_pkts,
            f.orig_ip_bytes,
            f.resp_pkts,
            f.resp_ip_bytes,
            f.ip_proto,
        )?;
    }
    writeln!(w, "#close\t{}", stamp(close_ts))
}

/// Writes a table a person reads in a terminal.
pub fn write_text(
    w: &mut dyn Write,
    summary: &PassSummary,
    flows: &[FlowRecord],
) -> io::Result<()> {
    writeln!(
        w,
        "{:<27} {:<5} {:<47} {:<9} {:>10} {:>10} {:<6} {:<12} name",
        "start (UTC)",
        "proto",
        "originator -> responder",
        "service",
        "orig B",
        "resp B",
        "state",
        "history"
    )?;
    for f in flows {
        let endpoints = format!(
            "{} -> {}",
            join_host_port(f.orig_h, f.orig_p),
            join_host_port(f.resp_h, f.resp_p)
        );
        let name = f
            .name
            .as_ref()
            .map(|n| {
                format!(
                    "{} ({}, {})",
                    n.name,
                    source_label(n.source),
                    n.strength.as_str()
                )
            })
            .unwrap_or_default();
        writeln!(
            w,
            "{:<27} {:<5} {:<47} {:<9} {:>10} {:>10} {:<6} {:<12} {}{}",
            rfc3339(f.ts_nanos),
            f.proto.as_str(),
            endpoints,
            f.service.as_deref().unwrap_or("-"),
            f.orig_bytes,
            f.resp_bytes,
            f.conn_state.as_str(),
            if f.history.is_empty() {
                "-"
            } else {
                &f.history
            },
            name,
            if f.midstream { " [mid-stream]" } else { "" },
        )?;
    }
    writeln!(w)?;
    write_totals(w, summary, flows.len())
}

/// The line under the table: flows, frames, what was skipped and why, and whether it is complete.
fn write_totals(w: &mut dyn Write, summary: &PassSummary, flows: usize) -> io::Result<()> {
    let d = &summary.decode;
    let skipped: u64 = d.skipped.values().sum();
    let reasons = d
        .skipped
        .iter()
        .map(|(k, v)| {
            format!(
                "{} {v}",
                serde_json::to_value(k)
                    .ok()
                    .and_then(|v| v.as_str().map(String::from))
                    .unwrap_or_default()
            )
        })
        .collect::<Vec<_>>()
        .join(", ");
    write!(
        w,
        "{} flows from {} frames ({} packets decoded, {skipped} without a packet{}); {} mid-stream, {} evicted",
        flows,
        d.frames,
        d.packets,
        if reasons.is_empty() { String::new() } else { format!(": {reasons}") },
        summary.flow_stats.midstream_flows,
        summary.flow_stats.evicted,
    )?;
    match &summary.filter {
        Some(filter) => writeln!(
            w,
            "; filter {filter:?} left out {} frames",
            summary.filtered_frames
        )?,
        None => writeln!(w)?,
    }
    if !summary.complete {
        writeln!(
            w,
            "INCOMPLETE: an input stopped short or flows were evicted; see the warnings above"
        )?;
    }
    Ok(())
}

fn join_host_port(addr: std::net::IpAddr, port: u16) -> String {
    match addr {
        std::net::IpAddr::V6(v6) => format!("[{v6}]:{port}"),
        std::net::IpAddr::V4(v4) => format!("{v4}:{port}"),
    }
}

fn source_label(source: crate::names::NameSource) -> &'static str {
    use crate::names::NameSource::*;
    match source {
        TlsSni => "sni",
        HttpConnect => "connect",
        HttpHost => "host",
        DnsAnswer => "dns",
        Operator => "operator",
    }
}
