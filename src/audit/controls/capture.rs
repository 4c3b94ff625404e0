//! CAPTURE: the capture is complete enough to judge.
//!
//! Every other control judges what the capture shows; a capture with holes could hide exactly the
//! flow that matters. So drops beyond `max_drop_ratio`, an input that stopped short, flows evicted
//! by the flow-table cap, or a policy whose internal networks match no originator make the audit
//! inconclusive, never a pass. Lesser gaps (egress flows seen mid-stream, ClientHellos that could
//! not be read) are findings. A BPF filter is not a fault, but the evidence says first that the
//! verdict speaks only for the selected frames.
//!
//! Loss inside the capture is judged by what it could change. Bytes a peer acknowledged were
//! sent, and VOLUME already counts them; bytes neither seen nor acknowledged (and IP fragments
//! whose datagram could not be rebuilt) are unknown content, so inside a licensing or unknown
//! egress flow they make the audit inconclusive, unless that flow is already a violation on its
//! own bytes or name. Time running backwards (by a clock step, see `decode::CLOCK_STEP_NANOS`) is
//! a finding: the analysis keeps packet order.

use super::{destination_label, flow_evidence, result};
use crate::audit::classify::{Classified, Direction, FlowClass};
use crate::audit::{ControlId, ControlResult, ControlVerdict, Evidence, Timestamp};
use crate::decode::SkipReason;
use crate::pipeline::PassSummary;
use crate::policy::Policy;
use crate::units::{as_secs_f64, human_bytes, rfc3339};

/// Runs CAPTURE over the pass and the flows.
pub(super) fn capture(
    flows: &[Classified<'_>],
    pass: &PassSummary,
    policy: &Policy,
) -> ControlResult {
    let rule = "The capture is complete enough to judge: no drops, no truncated files, no evicted flows; otherwise the audit is inconclusive.";
    let (mut evidence, mut inconclusive) = gaps(flows, pass, policy);
    let (loss_evidence, lossy) = loss(flows, pass, policy);
    evidence.extend(loss_evidence);
    inconclusive |= lossy;
    let mut findings = flow_findings(flows);
    findings.extend(time_order(pass));
    findings.extend(conflict_findings(flows));
    let finding = !findings.is_empty();
    evidence.extend(findings);
    if let Some(filter) = &pass.filter {
        // Not a fault, but the verdict speaks only for the selected frames: say so first.
        evidence.insert(
            0,
            Evidence {
                what: format!(
                    "only frames matching the filter {filter:?} were audited; {} others were left out",
                    pass.filtered_frames
                ),
                ..Evidence::default()
            },
        );
    }
    if pass.decode.truncated_frames > 0 {
        evidence.push(note(format!(
            "{} frames cut by the snaplen",
            pass.decode.truncated_frames
        )));
    }
    evidence.extend(checksum_note(flows, pass));
    let summary = format!(
        "{} frames over {:.0} s, {} capture drops, {} truncated frames, {} mid-stream flows",
        pass.decode.frames,
        as_secs_f64(pass.last_ts_nanos - pass.first_ts_nanos),
        pass.inputs
            .iter()
            .fold(0u64, |a, i| a.saturating_add(i.capture_drops)),
        pass.decode.truncated_frames,
        pass.flow_stats.midstream_flows
    );
    let verdict = if inconclusive {
        ControlVerdict::Inconclusive
    } else if finding {
        ControlVerdict::Finding
    } else {
        ControlVerdict::Pass
    };
    result(ControlId::Capture, rule, verdict, summary, evidence)
}

/// Evidence that is not about one flow.
fn note(what: String) -> Evidence {
    Evidence {
        what,
        ..Evidence::default()
    }
}

/// What the bad checksums mean, in one note (never a verdict: every packet is kept, as
/// `zeek -C`). When every packet some hosts sent is bad and nothing else is, the capture was taken
/// on those hosts with checksum offload (the NIC fills checksums in after the capture point);
/// otherwise bad checksums are packets a receiver would drop, which a sender can use to show a
/// monitor what the host never reads: names and credentials are then taken from good copies.
fn checksum_note(flows: &[Classified<'_>], pass: &PassSummary) -> Option<Evidence> {
    let bad = pass.decode.checksums.bad();
    if bad == 0 {
        return None;
    }
    // Per sending host: (packets with a bad checksum, packets sent).
    let mut hosts: std::collections::BTreeMap<std::net::IpAddr, (u64, u64)> = Default::default();
    for c in flows {
        let f = c.flow;
        for (host, bad, pkts) in [
            (f.orig_h, f.orig_bad_checksums, f.orig_pkts),
            (f.resp_h, f.resp_bad_checksums, f.resp_pkts),
        ] {
            let e = hosts.entry(host).or_default();
            e.0 += bad;
            e.1 += pkts;
        }
    }
    let offloading: Vec<String> = hosts
        .iter()
        .filter(|(_, (bad, pkts))| *bad > 0 && bad == pkts)
        .map(|(h, _)| h.to_string())
        .collect();
    let offloaded: u64 = hosts
        .values()
        .filter(|(bad, pkts)| *bad > 0 && bad == pkts)
        .map(|(bad, _)| bad)
        .sum();
    let what = if !offloading.is_empty() && offloaded == bad {
        format!(
            "{bad} packet(s) with a bad checksum, every one sent by {}: the pattern of checksum offload on the capturing host (not loss, not evasion); they were kept",
            offloading.join(", ")
        )
    } else {
        format!(
            "{bad} packet(s) with a bad checksum ({} IPv4 header, {} TCP, {} UDP, {} ICMP) a receiver would drop; they were kept, and names and credentials were taken from good copies where the capture has them",
            pass.decode.checksums.bad_ipv4_header,
            pass.decode.checksums.bad_tcp,
            pass.decode.checksums.bad_udp,
            pass.decode.checksums.bad_icmp
        )
    };
    Some(note(what))
}

/// The holes that make the audit inconclusive, with the inputs' own warnings; true when any
/// such hole was found (a warning alone is not one).
fn gaps(flows: &[Classified<'_>], pass: &PassSummary, policy: &Policy) -> (Vec<Evidence>, bool) {
    let mut evidence = Vec::new();
    let mut inconclusive = false;
    for input in &pass.inputs {
        evidence.extend(input.warnings.iter().cloned().map(note));
        if input.incomplete {
            inconclusive = true;
        }
        let packets = pass.decode.frames.max(1);
        if input.capture_drops > 0
            && input.capture_drops as f64 / packets as f64 > policy.capture.max_drop_ratio
        {
            inconclusive = true;
            evidence.push(note(format!(
                "{}: the capturing system dropped {} packets",
                input.path, input.capture_drops
            )));
        }
    }
    if pass.flow_stats.evicted > 0 {
        inconclusive = true;
        evidence.push(note(format!(
            "{} flows evicted by the flow-table cap",
            pass.flow_stats.evicted
        )));
    }
    // A policy whose internal networks match no originator judges nothing: say so.
    if !flows.is_empty()
        && !flows
            .iter()
            .any(|c| matches!(c.direction, Direction::Egress | Direction::Internal))
    {
        inconclusive = true;
        evidence.push(note(format!(
            "no flow starts inside network.internal ({}): set it to the monitored network",
            policy
                .network
                .internal
                .iter()
                .map(|n| n.to_string())
                .collect::<Vec<_>>()
                .join(", ")
        )));
    }
    (evidence, inconclusive)
}

/// Loss inside the capture that could change a verdict (true), with evidence for all of it:
/// unacknowledged gaps in flows, and IP fragments dropped before their datagram was rebuilt.
fn loss(flows: &[Classified<'_>], pass: &PassSummary, policy: &Policy) -> (Vec<Evidence>, bool) {
    let mut evidence = Vec::new();
    let mut inconclusive = false;
    let (mut harmless_flows, mut harmless_bytes) = (0u64, 0u64);
    for c in flows.iter().filter(|c| c.flow.unacked_missed_bytes > 0) {
        let lost = c.flow.unacked_missed_bytes;
        match loss_matters(c, policy) {
            Some(why) => {
                inconclusive = true;
                evidence.push(flow_evidence(
                    c,
                    format!(
                        "{} never seen nor acknowledged inside the {} flow to {}: {why}",
                        human_bytes(lost),
                        class_words(c.class),
                        destination_label(c)
                    ),
                ));
            }
            None => {
                harmless_flows += 1;
                harmless_bytes += lost;
            }
        }
    }
    if harmless_flows > 0 {
        evidence.push(note(format!(
            "{} never seen nor acknowledged in {harmless_flows} flow(s) that are neither licensing nor unknown egress, or already a violation: it cannot change the verdict",
            human_bytes(harmless_bytes)
        )));
    }
    let dropped = pass
        .decode
        .skipped
        .get(&SkipReason::FragmentDropped)
        .copied()
        .unwrap_or(0);
    if dropped > 0 {
        // A dropped fragment's datagram is in no flow: nothing shows it was not egress.
        inconclusive = true;
        let overflow = match pass.decode.fragment_table_overflows {
            0 => String::new(),
            n => format!(", {n} of them because the reassembly table was full"),
        };
        evidence.push(note(format!(
            "{dropped} IP fragments dropped before their datagram could be rebuilt{overflow}: the datagrams they belonged to are in no flow and could have been egress"
        )));
    }
    (evidence, inconclusive)
}

/// Why lost bytes inside `c` could change a verdict, or None when they cannot: the flow is
/// neither licensing nor unknown egress, or it is already a violation on what was seen.
fn loss_matters(c: &Classified<'_>, policy: &Policy) -> Option<&'static str> {
    let budget = policy.licensing.max_egress_bytes_per_minute;
    // Licensing to a name on the wrong port is a DEST violation whatever its bytes held.
    if c.is_licensing_egress() && c.class != FlowClass::LicensingWrongPort {
        // More bytes can only make a minute already over the budget worse.
        let over = c.flow.minutes.iter().any(|m| m.orig_ip_bytes > budget);
        return (!over).then_some(
            "they could hold licensing egress VOLUME did not count, or a credential in clear",
        );
    }
    if c.class == FlowClass::Unknown {
        // The flow is a DEST violation for want of a name; lost bytes could hold the name that
        // explains it, unless the flow's own name (SNI or HTTP request) was read.
        let named = c.flow.tls.as_ref().is_some_and(|t| t.sni.is_some()) || !c.flow.http.is_empty();
        return (!named).then_some("they could hold the name that would explain this destination");
    }
    None
}

/// How a flow's class reads in a sentence.
fn class_words(class: FlowClass) -> &'static str {
    if class.is_licensing() {
        "licensing"
    } else {
        "unknown egress"
    }
}

/// Time running backwards: a finding naming where it starts (the analysis keeps packet order,
/// so flows and minutes are as the packets came; the clock itself is in question).
fn time_order(pass: &PassSummary) -> Option<Evidence> {
    let first = pass.decode.first_time_reversal?;
    let file = pass
        .inputs
        .get(first.file_index)
        .map_or_else(|| format!("input {}", first.file_index), |i| i.path.clone());
    Some(Evidence {
        what: format!(
            "time runs backwards in {} frame(s), first at {file} record {}: {} after {} ({:.6} s earlier); flows were built in packet order",
            pass.decode.time_reversals,
            first.record,
            rfc3339(first.ts_nanos),
            rfc3339(first.previous_ts_nanos),
            as_secs_f64(first.previous_ts_nanos - first.ts_nanos)
        ),
        ts: Some(Timestamp(first.ts_nanos)),
        ..Evidence::default()
    })
}

/// Egress flows the capture shows only in part: seen mid-stream, or with an unreadable
/// ClientHello.
fn flow_findings(flows: &[Classified<'_>]) -> Vec<Evidence> {
    let mut evidence = Vec::new();
    for c in flows.iter().filter(|c| c.class != FlowClass::NotEgress) {
        if c.flow.midstream {
            evidence.push(flow_evidence(
                c,
                format!(
                    "egress flow to {} seen mid-stream (its start is not in the capture)",
                    destination_label(c)
                ),
            ));
        }
        if c.flow.tls.as_ref().is_some_and(|t| t.incomplete) {
            evidence.push(flow_evidence(
                c,
                format!(
                    "TLS ClientHello to {} could not be read (truncated or missing segments)",
                    destination_label(c)
                ),
            ));
        }
    }
    evidence
}

/// Flows whose TCP data read two ways (two copies of the same bytes that differ, either possibly
/// with a bad checksum): a finding, never inconclusive, because the capture is complete; it is
/// the host's reading that cannot be known. The evidence gives both readings of the first
/// conflicts and the names only the other reading gives; the other controls judge both names.
fn conflict_findings(flows: &[Classified<'_>]) -> Vec<Evidence> {
    const SHOWN: usize = 3;
    let bad = |b: bool| if b { " (bad checksum)" } else { "" };
    let mut evidence = Vec::new();
    for c in flows {
        let Some(sc) = c.flow.stream_conflicts.as_ref() else {
            continue;
        };
        let mut what = format!(
            "TCP data to {} reads two ways ({} conflict(s))",
            destination_label(c),
            sc.count
        );
        for k in sc.conflicts.iter().take(SHOWN) {
            what.push_str(&format!(
                "; {} bytes {}..{}: first copy {}{}, second copy {}{}",
                k.direction,
                k.offset,
                k.offset + k.len,
                k.first_hex,
                bad(k.first_bad_checksum),
                k.second_hex,
                bad(k.second_bad_checksum)
            ));
        }
        for (label, names) in [
            ("SNI", &sc.alternate_sni),
            ("Host", &sc.alternate_hosts),
            ("CONNECT", &sc.alternate_connect),
        ] {
            if !names.is_empty() {
                what.push_str(&format!("; other reading's {label}: {}", names.join(", ")));
            }
        }
        evidence.push(flow_evidence(c, what));
    }
    evidence
}

#[cfg(test)]
mod tests {
    use super::super::test_support::{classified, flow, licensing, pass, policy, T0};
    use super::*;
    use crate::flow::FlowRecord;
    use crate::units::NANOS;

    fn run(flows: &[FlowRecord], pass: &PassSummary, p: &Policy) -> ControlResult {
        capture(&classified(flows, p), pass, p)
    }

    #[test]
    fn a_clean_capture_passes() {
        let r = run(
            &[licensing("CLic", T0, 1500)],
            &pass(T0, T0 + 60 * NANOS, 10),
            &policy(""),
        );
        assert_eq!(r.verdict, ControlVerdict::Pass);
        assert!(r.evidence.is_empty());
        assert_eq!(
            r.summary,
            "10 frames over 60 s, 0 capture drops, 0 truncated frames, 0 mid-stream flows"
        );
    }

    #[test]
    fn drops_over_the_ratio_make_it_inconclusive_at_the_ratio_they_do_not() {
        let mut lossy = pass(T0, T0 + 60 * NANOS, 10);
        lossy.inputs[0].capture_drops = 1;
        let flows = [licensing("CLic", T0, 1500)];
        let r = run(&flows, &lossy, &policy(""));
        assert_eq!(r.verdict, ControlVerdict::Inconclusive);
        assert_eq!(
            r.evidence[0].what,
            "test.pcap: the capturing system dropped 1 packets"
        );
        // 1 drop in 10 frames is exactly a ratio of 0.1.
        let tolerant = policy("[capture]\nmax_drop_ratio = 0.1\n");
        assert_eq!(run(&flows, &lossy, &tolerant).verdict, ControlVerdict::Pass);
    }

    #[test]
    fn evictions_and_a_policy_that_matches_no_originator_are_inconclusive() {
        let mut evicted = pass(T0, T0 + 60 * NANOS, 10);
        evicted.flow_stats.evicted = 3;
        let r = run(&[licensing("CLic", T0, 1500)], &evicted, &policy(""));
        assert_eq!(r.verdict, ControlVerdict::Inconclusive);
        assert_eq!(r.evidence[0].what, "3 flows evicted by the flow-table cap");

        let mut transit = flow("CTransit", T0, None);
        transit.orig_h = "198.51.100.9".parse().unwrap();
        let p = policy("[network]\ninternal = [\"10.0.0.0/8\"]\n");
        let r = run(&[transit], &pass(T0, T0 + 60 * NANOS, 10), &p);
        assert_eq!(r.verdict, ControlVerdict::Inconclusive);
        assert_eq!(
            r.evidence[0].what,
            "no flow starts inside network.internal (10.0.0.0/8): set it to the monitored network"
        );
    }

    #[test]
    fn a_mid_stream_egress_flow_is_a_finding_and_a_filter_is_stated_first() {
        let mut mid = licensing("CMid", T0, 1500);
        mid.midstream = true;
        let mut filtered = pass(T0, T0 + 60 * NANOS, 10);
        filtered.filter = Some("tcp port 443".into());
        filtered.filtered_frames = 7;
        filtered.decode.truncated_frames = 2;
        let r = run(&[mid], &filtered, &policy(""));
        assert_eq!(r.verdict, ControlVerdict::Finding);
        let whats: Vec<_> = r.evidence.iter().map(|e| e.what.as_str()).collect();
        assert_eq!(
            whats,
            [
                "only frames matching the filter \"tcp port 443\" were audited; 7 others were left out",
                "egress flow to license.deepgram.com (203.0.113.10:443) seen mid-stream (its start is not in the capture)",
                "2 frames cut by the snaplen",
            ]
        );
        assert_eq!(r.evidence[1].flow_uids, ["CMid"]);
        assert_eq!(r.evidence[1].bytes, Some(1500));
    }

    #[test]
    fn unacknowledged_loss_in_licensing_or_unknown_egress_is_inconclusive() {
        let mut lic = licensing("CLic", T0, 1500);
        lic.unacked_missed_bytes = 1448;
        let clean = pass(T0, T0 + 60 * NANOS, 10);
        let r = run(&[lic], &clean, &policy(""));
        assert_eq!(r.verdict, ControlVerdict::Inconclusive);
        assert_eq!(
            r.evidence[0].what,
            "1.4 KB never seen nor acknowledged inside the licensing flow to license.deepgram.com \
             (203.0.113.10:443): they could hold licensing egress VOLUME did not count, or a \
             credential in clear"
        );
        assert_eq!(r.evidence[0].flow_uids, ["CLic"]);

        let mut unknown = flow("CUnk", T0, None);
        unknown.unacked_missed_bytes = 10;
        let r = run(&[unknown.clone()], &clean, &policy(""));
        assert_eq!(r.verdict, ControlVerdict::Inconclusive);
        assert!(r.evidence[0]
            .what
            .contains("unknown egress flow to 203.0.113.10:443"));
        // Its ClientHello was read: the loss cannot rename it, and DEST's violation stands.
        unknown.tls = Some(crate::flow::record::TlsSummary {
            sni: Some("example.net".into()),
            alpn: Vec::new(),
            ech: false,
            quic: false,
            ja4: None,
            max_version: None,
            server_alert: None,
            incomplete: false,
        });
        assert_eq!(
            run(&[unknown], &clean, &policy("")).verdict,
            ControlVerdict::Pass
        );
    }

    #[test]
    fn loss_that_cannot_change_a_verdict_is_noted_not_inconclusive() {
        let clean = pass(T0, T0 + 60 * NANOS, 10);
        // Already over the budget on what was seen: more bytes only make it worse.
        let mut over = licensing("COver", T0, 9000);
        over.unacked_missed_bytes = 100;
        // Internal traffic is no one's egress.
        let mut internal = flow("CInt", T0, None);
        internal.resp_h = "192.0.2.20".parse().unwrap();
        internal.unacked_missed_bytes = 100;
        // Licensing on port 80 is a DEST violation already.
        let mut port80 = licensing("C80", T0, 1500);
        port80.resp_p = 80;
        port80.unacked_missed_bytes = 100;
        let p = policy("");
        let flows = [over, internal, port80];
        let cs = classified(&flows, &p);
        assert_eq!(cs[2].class, FlowClass::LicensingWrongPort);
        let r = capture(&cs, &clean, &p);
        assert_eq!(r.verdict, ControlVerdict::Pass);
        assert_eq!(
            r.evidence[0].what,
            "300 B never seen nor acknowledged in 3 flow(s) that are neither licensing nor \
             unknown egress, or already a violation: it cannot change the verdict"
        );
    }

    #[test]
    fn dropped_fragments_are_inconclusive_and_say_why() {
        let mut frag = pass(T0, T0 + 60 * NANOS, 10);
        frag.decode.skipped.insert(SkipReason::FragmentDropped, 3);
        frag.decode.fragment_table_overflows = 2;
        let r = run(&[licensing("CLic", T0, 1500)], &frag, &policy(""));
        assert_eq!(r.verdict, ControlVerdict::Inconclusive);
        assert_eq!(
            r.evidence[0].what,
            "3 IP fragments dropped before their datagram could be rebuilt, 2 of them because the \
             reassembly table was full: the datagrams they belonged to are in no flow and could \
             have been egress"
        );
    }

    #[test]
    fn time_running_backwards_is_a_finding_naming_its_record() {
        let mut back = pass(T0, T0 + 60 * NANOS, 10);
        back.decode.time_reversals = 2;
        back.decode.first_time_reversal = Some(crate::decode::TimeReversal {
            file_index: 0,
            record: 7,
            ts_nanos: T0 + NANOS,
            previous_ts_nanos: T0 + 3 * NANOS / 2,
        });
        let r = run(&[licensing("CLic", T0, 1500)], &back, &policy(""));
        assert_eq!(r.verdict, ControlVerdict::Finding);
        assert_eq!(
            r.evidence[0].what,
            "time runs backwards in 2 frame(s), first at test.pcap record 7: \
             2023-11-14T22:14:01.000000Z after 2023-11-14T22:14:01.500000Z (0.500000 s earlier); \
             flows were built in packet order"
        );
        assert_eq!(r.evidence[0].ts, Some(Timestamp(T0 + NANOS)));
    }

    #[test]
    fn data_that_reads_two_ways_is_a_finding_with_both_readings() {
        use crate::flow::record::{StreamConflict, StreamConflicts};
        let mut f = licensing("CTwo", T0, 1500);
        f.stream_conflicts = Some(StreamConflicts {
            count: 1,
            conflicts: vec![StreamConflict {
                direction: "orig".into(),
                offset: 120,
                len: 4,
                first_hex: "6c696365".into(),
                second_hex: "6576696c".into(),
                first_bad_checksum: true,
                second_bad_checksum: false,
            }],
            alternate_sni: vec!["license.deepgram.com".into()],
            ..StreamConflicts::default()
        });
        let ev = conflict_findings(&classified(&[f], &policy("")));
        assert_eq!(ev.len(), 1);
        assert_eq!(
            ev[0].what,
            "TCP data to license.deepgram.com (203.0.113.10:443) reads two ways (1 conflict(s)); \
             orig bytes 120..124: first copy 6c696365 (bad checksum), second copy 6576696c; \
             other reading's SNI: license.deepgram.com"
        );
        assert_eq!(ev[0].flow_uids, ["CTwo"]);
        assert!(conflict_findings(&classified(&[licensing("C1", T0, 1)], &policy(""))).is_empty());
    }

    #[test]
    fn bad_checksums_are_a_note_that_tells_offload_from_packets_a_host_would_drop() {
        let p = policy("");
        let mut offloading = licensing("COff", T0, 1500);
        offloading.orig_bad_checksums = offloading.orig_pkts;
        let mut scattered = licensing("CDrop", T0, 1500);
        scattered.orig_h = "192.0.2.11".parse().unwrap();
        scattered.orig_bad_checksums = 1;
        let mut bad = pass(T0, T0 + NANOS, 10);
        bad.decode.checksums.bad_tcp = offloading.orig_pkts;
        let note = checksum_note(&classified(std::slice::from_ref(&offloading), &p), &bad)
            .expect("a note");
        assert!(note
            .what
            .contains("every one sent by 192.0.2.10: the pattern of checksum offload"));
        bad.decode.checksums.bad_tcp += 1;
        let flows = [offloading, scattered];
        let note = checksum_note(&classified(&flows, &p), &bad).expect("a note");
        assert!(note.what.contains("a receiver would drop"), "{}", note.what);
        // Notes only: the verdict stays a pass.
        assert_eq!(run(&flows, &bad, &p).verdict, ControlVerdict::Pass);
        assert!(checksum_note(&classified(&flows, &p), &pass(T0, T0 + NANOS, 10)).is_none());
    }
}
