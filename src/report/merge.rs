//! Merging audits (several sensors, several days) into one `Audit`-shaped document, with the
//! per-sensor figures kept beside the combined ones.
//!
//! # What counts once
//!
//! Audits are first put in a canonical order (sensor, capture start, input SHA-256s, policy
//! SHA-256), so the merge does not depend on the order they were named in. A sensor is the
//! audit's `sensor` name (`analyze --sensor`); audits without one form the sensor `unnamed`.
//!
//! 1. **Same input files.** An audit whose input files (by SHA-256) were all already brought by
//!    an audit kept before it is a duplicate: it contributes nothing (the report lists it as
//!    such). Giving the same audit twice, or analysing the same capture twice, counts it once.
//! 2. **Same sensor, same host, same minute.** Within one sensor the licensing series is keyed
//!    by (source host, minute window). When several of the sensor's audits have the same window,
//!    those whose capture spans overlap in time saw the same packets: the window is counted once,
//!    keeping the largest measurement (the capture that saw most of it). Audits whose spans do
//!    not overlap (a capture rotated in the middle of a minute) saw different packets of that
//!    minute, and their measurements are added.
//! 3. **Same sensor, same connection.** A licensing connection in two overlapping audits of one
//!    sensor (same source and destination, starts within one second) is listed once in the
//!    timeline; check-ins are a minute apart, so two real connections are never that close.
//! 4. **Different sensors** are taken to watch different hosts (sites reuse private addresses):
//!    their figures add, and the same address under two sensors is two hosts. Sensors that watch
//!    the same hosts (redundant taps) should be given the same sensor name so that rule 2 applies.
//!
//! Licensing totals are the kept audits' totals less what rule 2 dropped; the per-minute
//! statistics and audio bounds are recomputed from the merged series with
//! [`crate::audit::minutes::stats`]. Packet, flow and destination counts add over kept audits
//! (they are not licensing figures). Controls take the worst verdict of any audit, with evidence
//! concatenated (worst audits first, at most [`MAX_EVIDENCE`] items, the rest counted in
//! `evidence_omitted`), and the overall verdict is recomputed by [`crate::audit::overall`].

use std::collections::{BTreeMap, BTreeSet};
use std::net::IpAddr;

use anyhow::{bail, Result};
use serde::Serialize;

use crate::audit::checkins::CheckIn;
use crate::audit::minutes::{stats, LicensingMinute};
use crate::audit::{
    overall, Audit, CaptureSummary, ControlId, ControlResult, ControlVerdict, Destination,
    Evidence, FlowsSummary, Licensing, LicensingConnection, Tool, Verdict, SCHEMA_VERSION,
};
use crate::decode::DecodeStats;
use crate::flow::FlowStats;
use crate::units::{as_secs_f64, NANOS};

/// Evidence items kept per merged control (as the audit itself keeps).
pub const MAX_EVIDENCE: usize = 40;
/// Destinations kept in `flows.top_destinations` (as the audit itself keeps).
const TOP_DESTINATIONS: usize = 20;
/// Two timeline entries closer than this (same source, same destination, overlapping audits)
/// are one connection.
const SAME_CONNECTION_NANOS: i64 = NANOS;

/// How the merge treated one audit it was given.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct AuditPart {
    /// How reports name this audit: the sensor, the first input file, or both.
    pub label: String,
    /// The audit's sensor name (`analyze --sensor`), if it has one.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub sensor: Option<String>,
    /// SHA-256 of its input files, sorted and distinct (what rule 1 compares).
    pub input_sha256: Vec<String>,
    /// First packet time of its capture (RFC 3339).
    pub capture_start: String,
    /// Last packet time of its capture (RFC 3339).
    pub capture_end: String,
    /// Its own verdict.
    pub verdict: Verdict,
    /// SHA-256 of the policy it applied.
    pub policy_sha256: String,
    /// Where that policy came from (`None`: the embedded default).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub policy_source: Option<String>,
    /// The dg-audit version that wrote it.
    pub tool_version: String,
    /// False when rule 1 found it a duplicate.
    pub counted: bool,
    /// The label of the audit that already brought its inputs.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub duplicate_of: Option<String>,
}

/// One sensor's audits merged (the per-sensor figures of a report).
#[derive(Debug, Clone)]
pub struct SensorAudit {
    /// The sensor name, or `unnamed` for audits without one.
    pub sensor: String,
    /// Its audits merged with the deduplication rules 1 to 3.
    pub audit: Audit,
}

/// The result of a merge: the combined document and how it was made.
#[derive(Debug, Clone)]
pub struct Merged {
    /// The combined audit (valid against `schema/audit.schema.json`).
    pub audit: Audit,
    /// Per-sensor audits, by sensor name (one entry when only one sensor is merged).
    pub sensors: Vec<SensorAudit>,
    /// Every audit given, in canonical order, duplicates included.
    pub parts: Vec<AuditPart>,
    /// (source, minute) windows that rule 2 counted once although several audits had them.
    pub windows_counted_once: u64,
    /// (source, minute) windows that several audits with disjoint spans each saw part of.
    pub windows_added: u64,
    /// Timeline entries dropped by rule 3.
    pub connections_counted_once: u64,
}

/// The name of the sensor group of audits without a sensor name.
pub const UNNAMED_SENSOR: &str = "unnamed";

/// Merges `audits` (see the module documentation for what counts once).
///
/// A single audit (or the same audit given several times) merges to itself, unchanged.
pub fn merge(audits: &[Audit]) -> Result<Merged> {
    if audits.is_empty() {
        bail!("no audit to report on: name one or more audit JSON files");
    }
    for a in audits {
        if a.schema_version != SCHEMA_VERSION {
            bail!(
                "audit schema_version {} is not {SCHEMA_VERSION}: regenerate it with this dg-audit",
                a.schema_version
            );
        }
    }
    let (parts, kept) = count_once(audits);
    let mut by_sensor: BTreeMap<String, Vec<(&Audit, String)>> = BTreeMap::new();
    for (a, label) in &kept {
        by_sensor
            .entry(sensor_name(a).to_string())
            .or_default()
            .push((a, label.clone()));
    }
    let mut counters = Counters::default();
    let sensors: Vec<SensorAudit> = by_sensor
        .into_iter()
        .map(|(sensor, group)| {
            let (audit, c) = merge_group(&group, &group, true);
            counters.accumulate(&c);
            SensorAudit { sensor, audit }
        })
        .collect();
    // Across sensors nothing is deduplicated (rule 4): the licensing series of the per-sensor
    // merges are put side by side; everything else comes from the kept audits themselves.
    let combined = match sensors.as_slice() {
        [only] => only.audit.clone(),
        _ => {
            let per_sensor: Vec<(&Audit, String)> = sensors
                .iter()
                .map(|s| (&s.audit, s.sensor.clone()))
                .collect();
            merge_group(&kept, &per_sensor, false).0
        }
    };
    Ok(Merged {
        audit: combined,
        sensors,
        parts,
        windows_counted_once: counters.windows_counted_once,
        windows_added: counters.windows_added,
        connections_counted_once: counters.connections_counted_once,
    })
}

/// Rule 1: puts the audits in canonical order and labels them; an audit whose input files were
/// all brought by an audit kept before it is not kept. Returns every audit as a part, and the
/// kept audits with their labels.
fn count_once(audits: &[Audit]) -> (Vec<AuditPart>, Vec<(&Audit, String)>) {
    let mut order: Vec<&Audit> = audits.iter().collect();
    order.sort_by_cached_key(|a| {
        (
            a.sensor.clone(),
            a.capture.start_ts_nanos,
            a.capture.end_ts_nanos,
            input_hashes(a),
            a.policy_sha256.clone(),
        )
    });
    let labels = labels(&order);
    let mut seen: BTreeMap<String, String> = BTreeMap::new();
    let mut parts = Vec::with_capacity(order.len());
    let mut kept: Vec<(&Audit, String)> = Vec::new();
    for (a, label) in order.iter().zip(&labels) {
        let hashes = input_hashes(a);
        let duplicate_of = if hashes.is_empty() {
            None
        } else {
            hashes
                .iter()
                .map(|h| seen.get(h))
                .collect::<Option<Vec<_>>>()
                .and_then(|owners| owners.first().map(|o| (*o).clone()))
        };
        if duplicate_of.is_none() {
            for h in &hashes {
                seen.entry(h.clone()).or_insert_with(|| label.clone());
            }
            kept.push((a, label.clone()));
        }
        parts.push(AuditPart {
            label: label.clone(),
            sensor: a.sensor.clone(),
            input_sha256: hashes,
            capture_start: a.capture.start.clone(),
            capture_end: a.capture.end.clone(),
            verdict: a.verdict,
            policy_sha256: a.policy_sha256.clone(),
            policy_source: a.policy_source.clone(),
            tool_version: a.tool.version.clone(),
            counted: duplicate_of.is_none(),
            duplicate_of,
        });
    }
    (parts, kept)
}

/// The sensor an audit belongs to for grouping.
pub fn sensor_name(a: &Audit) -> &str {
    a.sensor.as_deref().unwrap_or(UNNAMED_SENSOR)
}

fn input_hashes(a: &Audit) -> Vec<String> {
    let mut h: Vec<String> = a.inputs.iter().map(|i| i.sha256.clone()).collect();
    h.sort();
    h.dedup();
    h
}

fn file_name(path: &str) -> &str {
    path.rsplit(['/', '\\']).next().unwrap_or(path)
}

/// Labels: the sensor name when it has one audit, else `sensor (file)`, else the file name;
/// made unique with `#n` when they still collide.
fn labels(order: &[&Audit]) -> Vec<String> {
    // Distinct input sets per sensor: a duplicate does not change how the others are named.
    let mut per_sensor: BTreeMap<Option<&str>, BTreeSet<Vec<String>>> = BTreeMap::new();
    for a in order {
        per_sensor
            .entry(a.sensor.as_deref())
            .or_default()
            .insert(input_hashes(a));
    }
    let mut used: BTreeMap<String, usize> = BTreeMap::new();
    order
        .iter()
        .map(|a| {
            let file = a
                .inputs
                .first()
                .map(|i| {
                    let more = a.inputs.len() - 1;
                    if more > 0 {
                        format!("{} +{more}", file_name(&i.path))
                    } else {
                        file_name(&i.path).to_string()
                    }
                })
                .unwrap_or_else(|| a.capture.start.clone());
            let base = match a.sensor.as_deref() {
                Some(s) if per_sensor.get(&Some(s)).map(BTreeSet::len) == Some(1) => s.to_string(),
                Some(s) => format!("{s} ({file})"),
                None => file,
            };
            let n = used.entry(base.clone()).or_default();
            *n += 1;
            if *n == 1 {
                base
            } else {
                format!("{base} #{n}")
            }
        })
        .collect()
}

/// What the deduplication rules did.
#[derive(Debug, Default)]
struct Counters {
    windows_counted_once: u64,
    windows_added: u64,
    connections_counted_once: u64,
}

/// Counts that add up when audits are merged: `a.accumulate(&b)` adds `b`'s counts to `a`'s.
///
/// Implementations destructure the other value without `..`, so that a field added to one of
/// these types upstream fails to compile here until the merge decides how to combine it.
trait Accumulate {
    fn accumulate(&mut self, other: &Self);
}

/// The sum of `items`' counts.
fn sum_of<'a, T: Accumulate + Default + 'a>(items: impl IntoIterator<Item = &'a T>) -> T {
    let mut out = T::default();
    for item in items {
        out.accumulate(item);
    }
    out
}

impl Accumulate for Counters {
    fn accumulate(&mut self, other: &Self) {
        let Counters {
            windows_counted_once,
            windows_added,
            connections_counted_once,
        } = other;
        self.windows_counted_once += windows_counted_once;
        self.windows_added += windows_added;
        self.connections_counted_once += connections_counted_once;
    }
}

impl Accumulate for DecodeStats {
    fn accumulate(&mut self, other: &Self) {
        let DecodeStats {
            frames,
            packets,
            wire_bytes,
            captured_bytes,
            truncated_frames,
            reassembled_datagrams,
            skipped,
            checksums,
            time_reversals,
            first_time_reversal,
            reordered_frames,
            fragment_table_overflows,
        } = other;
        self.frames += frames;
        self.packets += packets;
        self.wire_bytes += wire_bytes;
        self.captured_bytes += captured_bytes;
        self.truncated_frames += truncated_frames;
        self.reassembled_datagrams += reassembled_datagrams;
        for (reason, n) in skipped {
            *self.skipped.entry(*reason).or_default() += n;
        }
        self.checksums.accumulate(checksums);
        self.time_reversals += time_reversals;
        self.reordered_frames += reordered_frames;
        self.fragment_table_overflows += fragment_table_overflows;
        // The first reversal of the first audit that had one (its file index is that audit's).
        if self.first_time_reversal.is_none() {
            self.first_time_reversal = *first_time_reversal;
        }
    }
}

impl Accumulate for crate::decode::ChecksumStats {
    fn accumulate(&mut self, other: &Self) {
        let crate::decode::ChecksumStats {
            bad_ipv4_header,
            bad_tcp,
            bad_udp,
            bad_icmp,
            unverified,
        } = other;
        self.bad_ipv4_header += bad_ipv4_header;
        self.bad_tcp += bad_tcp;
        self.bad_udp += bad_udp;
        self.bad_icmp += bad_icmp;
        self.unverified += unverified;
    }
}

impl Accumulate for FlowStats {
    fn accumulate(&mut self, other: &Self) {
        let FlowStats {
            flows,
            tcp_flows,
            udp_flows,
            other_flows,
            midstream_flows,
            timed_out,
            evicted,
            max_concurrent,
            icmp_errors,
        } = other;
        self.flows += flows;
        self.tcp_flows += tcp_flows;
        self.udp_flows += udp_flows;
        self.other_flows += other_flows;
        self.midstream_flows += midstream_flows;
        self.timed_out += timed_out;
        self.evicted += evicted;
        // Flows open at once in different captures were not open at once: the largest stands.
        self.max_concurrent = self.max_concurrent.max(*max_concurrent);
        self.icmp_errors += icmp_errors;
    }
}

/// The traffic figures of a destination (its name and class are the first audit's).
impl Accumulate for Destination {
    fn accumulate(&mut self, other: &Self) {
        self.flows += other.flows;
        self.egress_ip_bytes += other.egress_ip_bytes;
        self.ingress_ip_bytes += other.ingress_ip_bytes;
    }
}

/// One (source, minute) window measured in several pieces (rule 2, disjoint spans).
impl Accumulate for LicensingMinute {
    fn accumulate(&mut self, other: &Self) {
        self.egress_ip_bytes += other.egress_ip_bytes;
        self.egress_payload_bytes += other.egress_payload_bytes;
        self.connections += other.connections;
        for uid in &other.flow_uids {
            if !self.flow_uids.contains(uid) {
                self.flow_uids.push(uid.clone());
            }
        }
    }
}

/// A capture span, nanoseconds since the epoch (first, last packet).
type Span = (i64, i64);

fn span(a: &Audit) -> Span {
    (a.capture.start_ts_nanos, a.capture.end_ts_nanos)
}

fn overlaps(x: (i64, i64), y: (i64, i64)) -> bool {
    x.0 <= y.1 && y.0 <= x.1
}

/// Severity for "worst verdict": not applicable is weaker than pass (a day without licensing
/// traffic does not hide another day's pass).
fn severity(v: ControlVerdict) -> u8 {
    match v {
        ControlVerdict::NotApplicable => 0,
        ControlVerdict::Pass => 1,
        ControlVerdict::Finding => 2,
        ControlVerdict::Inconclusive => 3,
        ControlVerdict::Violation => 4,
    }
}

/// Merges `group` (kept audits, with labels); the licensing part comes from `licensing_from`
/// (the same audits within a sensor, with rules 2 and 3 applied when `dedupe`; the per-sensor
/// merges side by side for the combined document).
fn merge_group(
    group: &[(&Audit, String)],
    licensing_from: &[(&Audit, String)],
    dedupe: bool,
) -> (Audit, Counters) {
    if let [(only, _)] = group {
        return ((*only).clone(), Counters::default());
    }
    let first = group[0].0;
    let sources: Vec<&Audit> = licensing_from.iter().map(|(a, _)| *a).collect();
    let (per_minute, dropped, mut counters) = merge_minutes(&sources, dedupe);
    let (timeline, connections_counted_once) = merge_timeline(&sources, dedupe);
    counters.connections_counted_once = connections_counted_once;
    let licensing = merge_licensing(&sources, dedupe, per_minute, dropped, timeline, first);
    let controls = merge_controls(group);
    let verdict = overall(&controls);
    let mut sensors: Vec<&str> = group
        .iter()
        .filter_map(|(a, _)| a.sensor.as_deref())
        .collect();
    sensors.sort();
    sensors.dedup();
    let mut inputs = Vec::new();
    let mut hashes = BTreeSet::new();
    for (a, _) in group {
        for i in &a.inputs {
            if hashes.insert(i.sha256.clone()) {
                inputs.push(i.clone());
            }
        }
    }
    let audits: Vec<&Audit> = group.iter().map(|(a, _)| *a).collect();
    let audit = Audit {
        schema_version: SCHEMA_VERSION,
        tool: Tool::current(),
        sensor: (!sensors.is_empty()).then(|| sensors.join(", ")),
        inputs,
        policy: first.policy.clone(),
        policy_sha256: first.policy_sha256.clone(),
        policy_source: first.policy_source.clone(),
        capture: merge_capture(&audits),
        decode: sum_of(audits.iter().map(|a| &a.decode)),
        flow_stats: sum_of(audits.iter().map(|a| &a.flow_stats)),
        flows: merge_flows(&audits),
        licensing,
        controls,
        verdict,
    };
    (audit, counters)
}

/// What rule 2 dropped: bytes and connections taken off the kept audits' totals.
#[derive(Default)]
struct Dropped {
    ip_bytes: u64,
    payload_bytes: u64,
    connections: u64,
}

fn merge_minutes(audits: &[&Audit], dedupe: bool) -> (Vec<LicensingMinute>, Dropped, Counters) {
    let mut windows: BTreeMap<(i64, IpAddr), Vec<(&LicensingMinute, Span)>> = BTreeMap::new();
    for a in audits {
        for m in &a.licensing.per_minute {
            windows
                .entry((m.start_ts, m.source))
                .or_default()
                .push((m, span(a)));
        }
    }
    let mut dropped = Dropped::default();
    let mut counters = Counters::default();
    let mut out = Vec::with_capacity(windows.len());
    for (_, mut entries) in windows {
        if !dedupe {
            out.extend(entries.into_iter().map(|(m, _)| m.clone()));
            continue;
        }
        // Clusters of entries whose audits' spans overlap (transitively): one measurement each.
        entries.sort_by_key(|(_, s)| *s);
        let mut clusters: Vec<(Vec<&LicensingMinute>, i64)> = Vec::new();
        for (m, s) in entries {
            match clusters.last_mut() {
                Some((members, end)) if s.0 <= *end => {
                    members.push(m);
                    *end = (*end).max(s.1);
                }
                _ => clusters.push((vec![m], s.1)),
            }
        }
        if clusters.len() > 1 {
            counters.windows_added += 1;
        }
        let mut merged: Option<LicensingMinute> = None;
        for (members, _) in clusters {
            if members.len() > 1 {
                counters.windows_counted_once += 1;
            }
            // Largest measurement wins; the first of equals (canonical order) on a tie.
            let best = members
                .iter()
                .enumerate()
                .max_by(|(i, x), (j, y)| x.egress_ip_bytes.cmp(&y.egress_ip_bytes).then(j.cmp(i)))
                .map(|(i, _)| i)
                .unwrap_or(0);
            for (i, m) in members.iter().enumerate() {
                if i != best {
                    dropped.ip_bytes += m.egress_ip_bytes;
                    dropped.payload_bytes += m.egress_payload_bytes;
                    dropped.connections += m.connections;
                }
            }
            let m = members[best];
            match &mut merged {
                None => merged = Some(m.clone()),
                Some(acc) => acc.accumulate(m),
            }
        }
        out.extend(merged);
    }
    (out, dropped, counters)
}

fn merge_timeline(audits: &[&Audit], dedupe: bool) -> (Vec<LicensingConnection>, u64) {
    let mut all: Vec<(&LicensingConnection, usize)> = audits
        .iter()
        .enumerate()
        .flat_map(|(i, a)| a.licensing.timeline.iter().map(move |c| (c, i)))
        .collect();
    all.sort_by(|(x, i), (y, j)| {
        (&x.source, &x.destination, x.start_ts_nanos, &x.uid, i).cmp(&(
            &y.source,
            &y.destination,
            y.start_ts_nanos,
            &y.uid,
            j,
        ))
    });
    let spans: Vec<(i64, i64)> = audits.iter().map(|a| span(a)).collect();
    let mut kept: Vec<(&LicensingConnection, usize)> = Vec::with_capacity(all.len());
    let mut dropped = 0;
    for (c, i) in all {
        let duplicate = dedupe
            && kept
                .iter()
                .rev()
                .take_while(|(k, _)| {
                    k.source == c.source
                        && k.destination == c.destination
                        && c.start_ts_nanos - k.start_ts_nanos < SAME_CONNECTION_NANOS
                })
                .any(|(_, j)| *j != i && overlaps(spans[*j], spans[i]));
        if duplicate {
            dropped += 1;
        } else {
            kept.push((c, i));
        }
    }
    let mut out: Vec<LicensingConnection> = kept.into_iter().map(|(c, _)| c.clone()).collect();
    out.sort_by(|x, y| {
        (x.start_ts_nanos, &x.source, &x.uid).cmp(&(y.start_ts_nanos, &y.source, &y.uid))
    });
    (out, dropped)
}

fn merge_licensing(
    group: &[&Audit],
    dedupe: bool,
    per_minute: Vec<LicensingMinute>,
    dropped: Dropped,
    timeline: Vec<LicensingConnection>,
    first: &Audit,
) -> Licensing {
    let sum = |f: fn(&Licensing) -> u64| group.iter().map(|a| f(&a.licensing)).sum::<u64>();
    let mut sources: Vec<String> = group
        .iter()
        .flat_map(|a| a.licensing.sources.iter().cloned())
        .collect();
    sources.sort();
    sources.dedup();
    let patterns: BTreeSet<&str> = group
        .iter()
        .map(|a| a.licensing.pattern.as_str())
        .filter(|p| *p != "none")
        .collect();
    let pattern = match patterns.len() {
        0 => "none".to_string(),
        1 => patterns
            .iter()
            .next()
            .map(|p| p.to_string())
            .unwrap_or_default(),
        _ => "mixed".to_string(),
    };
    let ip_stats = stats(&per_minute, |m| m.egress_ip_bytes);
    let payload_stats = stats(&per_minute, |m| m.egress_payload_bytes);
    let audio_bound = crate::audit::audio_bounds(&first.policy.audio.codec_kbps, &ip_stats);
    Licensing {
        egress_ip_bytes: sum(|l| l.egress_ip_bytes).saturating_sub(dropped.ip_bytes),
        egress_payload_bytes: sum(|l| l.egress_payload_bytes).saturating_sub(dropped.payload_bytes),
        connections: sum(|l| l.connections).saturating_sub(dropped.connections),
        sources,
        pattern,
        per_minute,
        ip_bytes_per_minute: ip_stats,
        payload_bytes_per_minute: payload_stats,
        audio_bound,
        timeline,
        checkins: merge_checkins(group, dedupe),
    }
}

/// The check-ins of every audit in the group, by source then time; one audit's check-in read
/// twice (the same capture in two audits) is listed once. Within a sensor (`dedupe`), rule 3
/// applies to check-ins as to connections: a check-in of the same source less than a second
/// from one already kept, from another audit whose span overlaps, is that check-in seen twice
/// (the two captures number flows differently, so its uid differs).
fn merge_checkins(group: &[&Audit], dedupe: bool) -> Vec<CheckIn> {
    let mut all: Vec<(&CheckIn, usize)> = group
        .iter()
        .enumerate()
        .flat_map(|(i, a)| a.licensing.checkins.iter().map(move |c| (c, i)))
        .collect();
    let key = |c: &CheckIn| c.source.parse::<IpAddr>().ok();
    all.sort_by(|(a, i), (b, j)| (key(a), a.ts, &a.uid, i).cmp(&(key(b), b.ts, &b.uid, j)));
    let spans: Vec<Span> = group.iter().map(|a| span(a)).collect();
    let mut kept: Vec<(&CheckIn, usize)> = Vec::with_capacity(all.len());
    for (c, i) in all {
        let seen_twice = dedupe
            && kept
                .iter()
                .rev()
                .take_while(|(k, _)| {
                    k.source == c.source && c.ts.nanos() - k.ts.nanos() < SAME_CONNECTION_NANOS
                })
                .any(|(_, j)| *j != i && overlaps(spans[*j], spans[i]));
        if !seen_twice {
            kept.push((c, i));
        }
    }
    let mut out: Vec<CheckIn> = kept.into_iter().map(|(c, _)| c.clone()).collect();
    out.dedup();
    out
}

fn merge_controls(group: &[(&Audit, String)]) -> Vec<ControlResult> {
    let mut ids: Vec<ControlId> = Vec::new();
    for (a, _) in group {
        for c in &a.controls {
            if !ids.contains(&c.id) {
                ids.push(c.id);
            }
        }
    }
    ids.into_iter()
        .map(|id| {
            let mut results: Vec<(&ControlResult, &str)> = group
                .iter()
                .filter_map(|(a, label)| {
                    a.controls
                        .iter()
                        .find(|c| c.id == id)
                        .map(|c| (c, label.as_str()))
                })
                .collect();
            // Worst first; canonical order among equals (the sort is stable).
            results.sort_by_key(|(c, _)| std::cmp::Reverse(severity(c.verdict)));
            let worst = results[0].0;
            let (evidence, evidence_omitted) = merged_evidence(&results);
            ControlResult {
                id,
                verdict: worst.verdict,
                rule: worst.rule.clone(),
                summary: merged_summary(&results),
                evidence,
                evidence_omitted,
            }
        })
        .collect()
}

/// One control's summary over several audits (`results` worst first): the worst audit's, with
/// how many audits said it, or what the others found.
fn merged_summary(results: &[(&ControlResult, &str)]) -> String {
    let (worst, worst_label) = results[0];
    let summaries: BTreeSet<&str> = results.iter().map(|(c, _)| c.summary.as_str()).collect();
    if results.len() == 1 {
        return worst.summary.clone();
    }
    if summaries.len() == 1 {
        return format!("{} (in each of {} audits)", worst.summary, results.len());
    }
    let mut counts: BTreeMap<u8, (ControlVerdict, usize)> = BTreeMap::new();
    for (c, _) in &results[1..] {
        counts
            .entry(severity(c.verdict))
            .or_insert((c.verdict, 0))
            .1 += 1;
    }
    let others: Vec<String> = counts
        .values()
        .rev()
        .map(|(v, n)| format!("{n} {}", v.as_str()))
        .collect();
    format!(
        "{worst_label}: {} (other audits: {})",
        worst.summary,
        others.join(", ")
    )
}

/// One control's evidence over several audits, each item tagged with its audit's label, worst
/// audits first, at most [`MAX_EVIDENCE`] items; returns them and how many were left out.
fn merged_evidence(results: &[(&ControlResult, &str)]) -> (Vec<Evidence>, u64) {
    let mut evidence = Vec::new();
    let mut omitted = 0;
    for (c, label) in results {
        omitted += c.evidence_omitted;
        for e in &c.evidence {
            let mut e = e.clone();
            e.what = format!("[{label}] {}", e.what);
            if evidence.len() < MAX_EVIDENCE {
                evidence.push(e);
            } else {
                omitted += 1;
            }
        }
    }
    (evidence, omitted)
}

fn merge_capture(audits: &[&Audit]) -> CaptureSummary {
    let first = audits
        .iter()
        .min_by_key(|a| a.capture.start_ts_nanos)
        .map(|a| &a.capture);
    let last = audits
        .iter()
        .max_by_key(|a| a.capture.end_ts_nanos)
        .map(|a| &a.capture);
    let (Some(first), Some(last)) = (first, last) else {
        return CaptureSummary::default();
    };
    let sum = |f: fn(&CaptureSummary) -> u64| audits.iter().map(|a| f(&a.capture)).sum::<u64>();
    CaptureSummary {
        start: first.start.clone(),
        end: last.end.clone(),
        start_ts_nanos: first.start_ts_nanos,
        end_ts_nanos: last.end_ts_nanos,
        duration_seconds: as_secs_f64((last.end_ts_nanos - first.start_ts_nanos).max(0)),
        frames: sum(|c| c.frames),
        packets: sum(|c| c.packets),
        wire_bytes: sum(|c| c.wire_bytes),
        capture_drops: sum(|c| c.capture_drops),
        truncated_frames: sum(|c| c.truncated_frames),
        complete: audits.iter().all(|a| a.capture.complete),
        // Distinct filters of the merged audits, joined: a merged report says what each covered.
        filter: {
            let mut filters: Vec<&str> = audits
                .iter()
                .filter_map(|a| a.capture.filter.as_deref())
                .collect();
            filters.sort();
            filters.dedup();
            (!filters.is_empty()).then(|| filters.join(" | "))
        },
        filtered_frames: sum(|c| c.filtered_frames),
    }
}

fn merge_flows(audits: &[&Audit]) -> FlowsSummary {
    let mut out = FlowsSummary::default();
    let mut destinations: BTreeMap<String, Destination> = BTreeMap::new();
    for a in audits {
        let f = &a.flows;
        out.total += f.total;
        out.egress += f.egress;
        out.ingress += f.ingress;
        out.internal += f.internal;
        out.local += f.local;
        for (class, n) in &f.by_class {
            *out.by_class.entry(class.clone()).or_default() += n;
        }
        for d in &f.top_destinations {
            destinations
                .entry(d.destination.clone())
                .or_insert_with(|| Destination {
                    flows: 0,
                    egress_ip_bytes: 0,
                    ingress_ip_bytes: 0,
                    ..d.clone()
                })
                .accumulate(d);
        }
    }
    let mut top: Vec<Destination> = destinations.into_values().collect();
    top.sort_by(|a, b| {
        b.egress_ip_bytes
            .cmp(&a.egress_ip_bytes)
            .then(a.destination.cmp(&b.destination))
    });
    top.truncate(TOP_DESTINATIONS);
    out.top_destinations = top;
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn spans_overlap_inclusively() {
        assert!(overlaps((0, 10), (10, 20)));
        assert!(overlaps((5, 6), (0, 10)));
        assert!(!overlaps((0, 9), (10, 20)));
    }

    #[test]
    fn not_applicable_is_weaker_than_pass() {
        assert!(severity(ControlVerdict::NotApplicable) < severity(ControlVerdict::Pass));
        assert!(severity(ControlVerdict::Inconclusive) < severity(ControlVerdict::Violation));
    }

    #[test]
    fn empty_input_is_an_error() {
        assert!(merge(&[]).is_err());
    }
}
