//! The controls of DESIGN.md section 5. Each takes the classified flows and returns a verdict, a
//! one-sentence summary and the evidence (flow uids, packet times, byte counts) behind it.

use std::collections::{BTreeMap, BTreeSet};
use std::net::IpAddr;

use crate::audit::classify::{Classified, Direction, FlowClass};
use crate::audit::{
    speech_seconds, ControlId, ControlResult, ControlVerdict, Evidence, Licensing, Timestamp,
};
use crate::flow::record::{ConnState, Transport};
use crate::inspect::dns::label_entropy;
use crate::pipeline::PassSummary;
use crate::policy::Policy;
use crate::units::{human_bytes, rfc3339, NANOS};

/// Evidence items kept per control (the rest are counted in `evidence_omitted`).
const MAX_EVIDENCE: usize = 40;

fn result(
    id: ControlId,
    rule: &str,
    verdict: ControlVerdict,
    summary: String,
    mut evidence: Vec<Evidence>,
) -> ControlResult {
    let omitted = evidence.len().saturating_sub(MAX_EVIDENCE) as u64;
    evidence.truncate(MAX_EVIDENCE);
    ControlResult {
        id,
        verdict,
        rule: rule.into(),
        summary,
        evidence,
        evidence_omitted: omitted,
    }
}

fn endpoint(addr: IpAddr, port: u16) -> String {
    match addr {
        IpAddr::V6(v6) => format!("[{v6}]:{port}"),
        IpAddr::V4(v4) => format!("{v4}:{port}"),
    }
}

/// How a destination is shown: its name (if any) and the address and port it was reached on.
pub fn destination_label(c: &Classified<'_>) -> String {
    let at = endpoint(c.flow.resp_h, c.flow.resp_p);
    match &c.name {
        Some(name) if !name.contains(&c.flow.resp_h.to_string()) => format!("{name} ({at})"),
        _ => at,
    }
}

fn flow_evidence(c: &Classified<'_>, what: String) -> Evidence {
    Evidence {
        what,
        flow_uids: vec![c.flow.uid.clone()],
        ts: Some(Timestamp(c.flow.ts_nanos)),
        source: Some(c.flow.orig_h.to_string()),
        destination: Some(destination_label(c)),
        bytes: Some(c.flow.orig_ip_bytes),
    }
}

/// Runs every control, in the order of DESIGN.md.
pub fn run_all(
    flows: &[Classified<'_>],
    pass: &PassSummary,
    policy: &Policy,
    licensing: &Licensing,
    checkins: &BTreeMap<IpAddr, Vec<(i64, String)>>,
) -> Vec<ControlResult> {
    vec![
        dest(flows),
        tls(flows, policy),
        volume(policy, licensing),
        duration(flows, policy),
        cadence(flows, pass, policy, checkins),
        audio(flows, policy, licensing),
        credential(flows),
        proxy(flows, policy),
        dns(flows, policy),
        ingress(flows, policy),
        capture(flows, pass, policy),
    ]
}

fn dest(flows: &[Classified<'_>]) -> ControlResult {
    let rule = "Every egress flow is licensing or an explicitly allowed destination; unknown destinations and hosted transcription are violations.";
    let bad: Vec<_> = flows
        .iter()
        .filter(|c| {
            matches!(
                c.class,
                FlowClass::Unknown | FlowClass::HostedTranscription | FlowClass::LicensingWrongPort
            )
        })
        .collect();
    let egress = flows
        .iter()
        .filter(|c| c.direction == Direction::Egress || c.class.is_licensing())
        .count();
    if bad.is_empty() {
        return result(
            ControlId::Dest,
            rule,
            ControlVerdict::Pass,
            format!("all {egress} egress flows are licensing or allowed"),
            Vec::new(),
        );
    }
    // One evidence line per destination, with its flows.
    let mut by_dest: BTreeMap<String, (FlowClass, Vec<&Classified<'_>>)> = BTreeMap::new();
    for c in &bad {
        by_dest
            .entry(destination_label(c))
            .or_insert((c.class, Vec::new()))
            .1
            .push(c);
    }
    let evidence = by_dest
        .iter()
        .map(|(dest, (class, cs))| {
            let bytes: u64 = cs.iter().map(|c| c.flow.orig_ip_bytes).sum();
            let what = match class {
                FlowClass::HostedTranscription => format!(
                    "{} flow(s) to hosted transcription {dest}, {} sent",
                    cs.len(),
                    human_bytes(bytes)
                ),
                FlowClass::LicensingWrongPort => format!(
                    "{} flow(s) to licensing name on a non-licensing port {dest}, {} sent",
                    cs.len(),
                    human_bytes(bytes)
                ),
                _ => format!(
                    "{} flow(s) to unknown destination {dest}, {} sent",
                    cs.len(),
                    human_bytes(bytes)
                ),
            };
            Evidence {
                what,
                flow_uids: cs.iter().map(|c| c.flow.uid.clone()).collect(),
                ts: cs.first().map(|c| Timestamp(c.flow.ts_nanos)),
                source: Some(
                    cs.iter()
                        .map(|c| c.flow.orig_h.to_string())
                        .collect::<BTreeSet<_>>()
                        .into_iter()
                        .collect::<Vec<_>>()
                        .join(", "),
                ),
                destination: Some(dest.clone()),
                bytes: Some(bytes),
            }
        })
        .collect::<Vec<_>>();
    let names: Vec<_> = by_dest.keys().take(3).cloned().collect();
    result(
        ControlId::Dest,
        rule,
        ControlVerdict::Violation,
        format!(
            "{} egress flow(s) to {} destination(s) nothing allows: {}{}",
            bad.len(),
            by_dest.len(),
            names.join(", "),
            if by_dest.len() > 3 { ", ..." } else { "" }
        ),
        evidence,
    )
}

fn tls(flows: &[Classified<'_>], policy: &Policy) -> ControlResult {
    let rule = "Traffic to Deepgram names is TLS on the licensing port; plaintext HTTP or a non-TLS payload there is a violation.";
    let mut evidence = Vec::new();
    let mut checked = 0;
    for c in flows {
        let deepgram = c.class.is_licensing()
            || matches!(
                c.class,
                FlowClass::LicensingWrongPort | FlowClass::HostedTranscription
            )
            || c.name
                .as_deref()
                .is_some_and(|n| policy.is_deepgram_name(n.split(':').next().unwrap_or(n)));
        if !deepgram || c.flow.orig_bytes == 0 {
            continue;
        }
        checked += 1;
        if c.flow.tls.is_none() {
            let how = match c.flow.http.first() {
                Some(h) => format!("plaintext HTTP {} {}", h.method, h.target),
                None => "a payload that is not TLS".to_string(),
            };
            evidence.push(flow_evidence(
                c,
                format!("{how} to {}", destination_label(c)),
            ));
        }
    }
    if checked == 0 {
        return result(
            ControlId::Tls,
            rule,
            ControlVerdict::NotApplicable,
            "no traffic to Deepgram names".into(),
            Vec::new(),
        );
    }
    if evidence.is_empty() {
        result(
            ControlId::Tls,
            rule,
            ControlVerdict::Pass,
            format!("all {checked} flows to Deepgram names carry TLS"),
            evidence,
        )
    } else {
        result(
            ControlId::Tls,
            rule,
            ControlVerdict::Violation,
            format!(
                "{} of {checked} flows to Deepgram names are not TLS",
                evidence.len()
            ),
            evidence,
        )
    }
}

fn volume(policy: &Policy, licensing: &Licensing) -> ControlResult {
    let budget = policy.licensing.max_egress_bytes_per_minute;
    let rule =
        "Licensing egress (client to server) per source and per minute stays within the budget.";
    if licensing.per_minute.is_empty() {
        return result(
            ControlId::Volume,
            rule,
            ControlVerdict::NotApplicable,
            "no licensing traffic".into(),
            Vec::new(),
        );
    }
    let s = &licensing.ip_bytes_per_minute;
    let stats = format!(
        "per source-minute p50 {}, p99 {}, max {} of IP bytes against a budget of {}; {} in {} minute(s)",
        human_bytes(s.p50),
        human_bytes(s.p99),
        human_bytes(s.max),
        human_bytes(budget),
        human_bytes(s.total),
        s.minutes
    );
    let evidence: Vec<_> = licensing
        .per_minute
        .iter()
        .filter(|m| m.egress_ip_bytes > budget)
        .map(|m| Evidence {
            what: format!(
                "{} sent {} of licensing egress in the minute from {} ({}x the budget of {})",
                m.source,
                human_bytes(m.egress_ip_bytes),
                m.start,
                format_ratio(m.egress_ip_bytes, budget),
                human_bytes(budget)
            ),
            flow_uids: m.flow_uids.clone(),
            ts: Some(Timestamp(m.start_ts * NANOS)),
            source: Some(m.source.to_string()),
            destination: None,
            bytes: Some(m.egress_ip_bytes),
        })
        .collect();
    if evidence.is_empty() {
        result(
            ControlId::Volume,
            rule,
            ControlVerdict::Pass,
            stats,
            evidence,
        )
    } else {
        result(
            ControlId::Volume,
            rule,
            ControlVerdict::Violation,
            format!("{} source-minute(s) over budget; {stats}", evidence.len()),
            evidence,
        )
    }
}

fn format_ratio(value: u64, budget: u64) -> String {
    if budget == 0 {
        return "inf".into();
    }
    format!("{:.1}", value as f64 / budget as f64)
}

fn duration(flows: &[Classified<'_>], policy: &Policy) -> ControlResult {
    let max = policy.licensing.max_connection_seconds;
    let rule = "Licensing connections are short-lived, or, where the policy allows it, a held connection whose per-minute bursts stay within budget.";
    let licensing: Vec<_> = flows
        .iter()
        .filter(|c| c.class.is_licensing() && c.flow.proto == Transport::Tcp)
        .collect();
    if licensing.is_empty() {
        return result(
            ControlId::Duration,
            rule,
            ControlVerdict::NotApplicable,
            "no licensing connections".into(),
            Vec::new(),
        );
    }
    let long: Vec<_> = licensing
        .iter()
        .filter(|c| c.flow.duration_nanos() as f64 / 1e9 > max)
        .collect();
    let mut durations: Vec<f64> = licensing
        .iter()
        .map(|c| c.flow.duration_nanos() as f64 / 1e9)
        .collect();
    durations.sort_by(f64::total_cmp);
    let median = durations[durations.len() / 2];
    let evidence: Vec<_> = long
        .iter()
        .map(|c| {
            let bursts = c.flow.minutes.iter().filter(|m| m.orig_pkts > 0).count();
            flow_evidence(
                c,
                format!(
                    "licensing connection held {:.1} s (limit {max} s) with traffic in {bursts} minute(s)",
                    c.flow.duration_nanos() as f64 / 1e9
                ),
            )
        })
        .collect();
    if long.is_empty() {
        return result(
            ControlId::Duration,
            rule,
            ControlVerdict::Pass,
            format!(
                "{} licensing connections, median {median:.2} s, longest {:.2} s (limit {max} s)",
                licensing.len(),
                durations[durations.len() - 1]
            ),
            evidence,
        );
    }
    if policy.licensing.allow_held_connection {
        let over = long.iter().any(|c| {
            c.flow
                .minutes
                .iter()
                .any(|m| m.orig_ip_bytes > policy.licensing.max_egress_bytes_per_minute)
        });
        let verdict = if over {
            ControlVerdict::Violation
        } else {
            ControlVerdict::Pass
        };
        return result(
            ControlId::Duration,
            rule,
            verdict,
            format!("{} held licensing connection(s), allowed by policy; per-minute bursts {} the budget", long.len(), if over { "exceed" } else { "stay within" }),
            evidence,
        );
    }
    result(
        ControlId::Duration,
        rule,
        ControlVerdict::Finding,
        format!(
            "{} of {} licensing connections outlive {max} s (a held connection, which the policy does not allow)",
            long.len(),
            licensing.len()
        ),
        evidence,
    )
}

/// Median, median absolute deviation and Bowley skew of intervals (RITA's beacon measures).
fn regularity(intervals: &[f64]) -> (f64, f64, f64) {
    let mut v = intervals.to_vec();
    v.sort_by(f64::total_cmp);
    let q = |p: f64| v[((v.len() - 1) as f64 * p).round() as usize];
    let median = q(0.5);
    let mut dev: Vec<f64> = v.iter().map(|x| (x - median).abs()).collect();
    dev.sort_by(f64::total_cmp);
    let mad = dev[(dev.len() - 1) / 2];
    let (q1, q3) = (q(0.25), q(0.75));
    let skew = if q3 - q1 > 0.0 {
        (q3 + q1 - 2.0 * median) / (q3 - q1)
    } else {
        0.0
    };
    (median, mad, skew)
}

fn cadence(
    flows: &[Classified<'_>],
    pass: &PassSummary,
    policy: &Policy,
    checkins: &BTreeMap<IpAddr, Vec<(i64, String)>>,
) -> ControlResult {
    let cadence = policy.licensing.cadence_seconds as f64;
    let tolerance = policy.licensing.cadence_tolerance_seconds as f64;
    let rule = "Licensing check-ins happen about every cadence_seconds; a gap is a finding, with its cause read from the packets.";
    let capture_secs = (pass.last_ts_nanos - pass.first_ts_nanos) as f64 / 1e9;
    if checkins.is_empty() {
        let verdict = if capture_secs > cadence + tolerance {
            ControlVerdict::Finding
        } else {
            ControlVerdict::NotApplicable
        };
        return result(
            ControlId::Cadence,
            rule,
            verdict,
            format!("no licensing check-in seen in {capture_secs:.0} s of capture"),
            failed_attempts(flows, policy, None, pass.first_ts_nanos, pass.last_ts_nanos),
        );
    }
    let mut evidence = Vec::new();
    let mut summaries = Vec::new();
    for (source, times) in checkins {
        let intervals: Vec<f64> = times
            .windows(2)
            .map(|w| (w[1].0 - w[0].0) as f64 / 1e9)
            .collect();
        if !intervals.is_empty() {
            let (median, mad, skew) = regularity(&intervals);
            summaries.push(format!("{source}: {} check-ins, median interval {median:.1} s (MAD {mad:.1} s, Bowley skew {skew:.2})", times.len()));
            if (median - cadence).abs() > tolerance {
                evidence.push(Evidence {
                    what: format!(
                        "{source} checks in every {median:.1} s, not every {cadence:.0} s"
                    ),
                    source: Some(source.to_string()),
                    ..Evidence::default()
                });
            }
        } else {
            summaries.push(format!("{source}: 1 check-in"));
        }
        for w in times.windows(2) {
            let gap = (w[1].0 - w[0].0) as f64 / 1e9;
            if gap > cadence + tolerance {
                let mut causes =
                    failed_attempts(flows, policy, Some(*source), w[0].0 + NANOS, w[1].0);
                let cause_words = if causes.is_empty() {
                    "no failed attempt seen in the capture".to_string()
                } else {
                    causes
                        .iter()
                        .map(|e| e.what.clone())
                        .collect::<Vec<_>>()
                        .join("; ")
                };
                evidence.push(Evidence {
                    what: format!(
                        "{source}: {gap:.0} s without a check-in (from {} to {}): {cause_words}",
                        rfc3339(w[0].0),
                        rfc3339(w[1].0)
                    ),
                    flow_uids: vec![w[0].1.clone(), w[1].1.clone()],
                    ts: Some(Timestamp(w[0].0)),
                    source: Some(source.to_string()),
                    ..Evidence::default()
                });
                evidence.append(&mut causes);
            }
        }
        if let Some((last, uid)) = times.last() {
            let silent = (pass.last_ts_nanos - last) as f64 / 1e9;
            if silent > cadence + tolerance {
                evidence.push(Evidence {
                    what: format!(
                        "{source}: no check-in in the last {silent:.0} s of the capture (overdue)"
                    ),
                    flow_uids: vec![uid.clone()],
                    ts: Some(Timestamp(*last)),
                    source: Some(source.to_string()),
                    ..Evidence::default()
                });
            }
        }
    }
    let verdict = if evidence.is_empty() {
        ControlVerdict::Pass
    } else {
        ControlVerdict::Finding
    };
    result(
        ControlId::Cadence,
        rule,
        verdict,
        summaries.join("; "),
        evidence,
    )
}

/// Failed licensing attempts by `source` (any source if None) between two packet times: the
/// packets say why check-ins stopped (SYN unanswered, RST, TLS alert, DNS failure).
fn failed_attempts(
    flows: &[Classified<'_>],
    policy: &Policy,
    source: Option<IpAddr>,
    from: i64,
    to: i64,
) -> Vec<Evidence> {
    let mut out = Vec::new();
    for c in flows {
        let f = c.flow;
        if source.is_some_and(|s| s != f.orig_h) || f.ts_nanos < from || f.ts_nanos > to {
            continue;
        }
        let licensing = c.class.is_licensing() || c.class == FlowClass::LicenseProxyHop;
        let why = if licensing {
            match (f.conn_state, f.tls.as_ref().and_then(|t| t.server_alert)) {
                (ConnState::S0 | ConnState::SH, _) => Some("SYN unanswered".to_string()),
                (ConnState::REJ, _) => Some("connection refused (RST)".to_string()),
                (ConnState::RSTR | ConnState::RSTRH, _) if f.resp_bytes == 0 => {
                    Some("server reset the connection".to_string())
                }
                (_, Some(alert)) => Some(format!("TLS alert {alert} from the server")),
                _ => None,
            }
        } else if let Some(dns) = &f.dns {
            let asked_licensing = dns.names.iter().any(|n| policy.is_licensing_name(n));
            if asked_licensing && dns.error_responses > 0 {
                Some(format!("DNS lookup of {} failed", dns.names.join(", ")))
            } else if asked_licensing && dns.responses == 0 {
                Some(format!("DNS lookup of {} unanswered", dns.names.join(", ")))
            } else {
                None
            }
        } else {
            None
        };
        if let Some(why) = why {
            out.push(flow_evidence(
                c,
                format!("{} at {}: {why}", f.orig_h, rfc3339(f.ts_nanos)),
            ));
        }
    }
    out
}

fn audio(flows: &[Classified<'_>], policy: &Policy, licensing: &Licensing) -> ControlResult {
    let rule = "No audio-shaped egress (sustained uploads, WebSocket or POST to a transcription endpoint); the licensing channel's capacity for speech is bounded from measured bytes.";
    let threshold = policy.audio.sustained_upload_bytes_per_minute;
    let mut evidence = Vec::new();
    for c in flows
        .iter()
        .filter(|c| c.direction == Direction::Egress || c.class != FlowClass::NotEgress)
    {
        let f = c.flow;
        if c.class == FlowClass::HostedTranscription && f.orig_bytes > 0 {
            let how = match f.http.first() {
                Some(h) if h.websocket => format!("WebSocket {} {}", h.method, h.target),
                Some(h) => format!("{} {}", h.method, h.target),
                None => "TLS session".into(),
            };
            evidence.push(flow_evidence(
                c,
                format!(
                    "{how} to hosted transcription {}: {} uploaded",
                    destination_label(c),
                    human_bytes(f.orig_bytes)
                ),
            ));
            continue;
        }
        if let Some(h) = f
            .http
            .iter()
            .find(|h| h.websocket || h.target.contains("/listen"))
        {
            evidence.push(flow_evidence(
                c,
                format!(
                    "{} {} in clear to {} (a transcription endpoint)",
                    h.method,
                    h.target,
                    destination_label(c)
                ),
            ));
            continue;
        }
        // The licensing channel has no reason to carry an audio-sized minute, even once.
        if c.is_licensing_egress() {
            if let Some(m) = f.minutes.iter().find(|m| m.orig_ip_bytes >= threshold) {
                let pcm = speech_seconds(m.orig_ip_bytes, 256.0);
                evidence.push(flow_evidence(
                    c,
                    format!(
                        "{} of licensing egress to {} in the minute from {}: enough for {pcm:.0} s of 16 kHz PCM speech",
                        human_bytes(m.orig_ip_bytes),
                        destination_label(c),
                        rfc3339(m.start * NANOS)
                    ),
                ));
                continue;
            }
        }
        let sustained = f.minutes.windows(2).any(|w| {
            w[1].start == w[0].start + 60
                && w[0].orig_bytes >= threshold
                && w[1].orig_bytes >= threshold
        });
        if sustained {
            evidence.push(flow_evidence(
                c,
                format!(
                    "sustained upload to {}: {} over {} minute(s)",
                    destination_label(c),
                    human_bytes(f.orig_bytes),
                    f.minutes.len()
                ),
            ));
        }
    }
    let bound = match (licensing.audio_bound.first(), licensing.per_minute.is_empty()) {
        (Some(b), false) => format!(
            "at the measured p99 of {} per minute the licensing channel could carry at most {:.1} s of {} kbit/s speech per minute (max minute {}: {:.1} s)",
            human_bytes(licensing.ip_bytes_per_minute.p99),
            b.seconds_per_minute_at_p99,
            b.codec_kbps,
            human_bytes(licensing.ip_bytes_per_minute.max),
            speech_seconds(licensing.ip_bytes_per_minute.max, b.codec_kbps),
        ),
        _ => "no licensing traffic to bound".into(),
    };
    if evidence.is_empty() {
        result(
            ControlId::Audio,
            rule,
            ControlVerdict::Pass,
            format!("no audio-shaped egress; {bound}"),
            evidence,
        )
    } else {
        result(
            ControlId::Audio,
            rule,
            ControlVerdict::Violation,
            format!("{} audio-shaped egress flow(s); {bound}", evidence.len()),
            evidence,
        )
    }
}

fn credential(flows: &[Classified<'_>]) -> ControlResult {
    let rule = "No license key, API token or distribution secret in clear on the wire.";
    // One evidence line per secret (kind and redacted form), with every flow that carried it.
    let mut by_secret: BTreeMap<(String, String), Vec<&Classified<'_>>> = BTreeMap::new();
    let mut first_seen: BTreeMap<(String, String), i64> = BTreeMap::new();
    for c in flows {
        for s in &c.flow.secrets {
            let key = (s.kind.clone(), s.redacted.clone());
            by_secret.entry(key.clone()).or_default().push(c);
            let t = first_seen.entry(key).or_insert(s.ts_nanos);
            *t = (*t).min(s.ts_nanos);
        }
    }
    let evidence: Vec<_> = by_secret
        .iter()
        .map(|((kind, redacted), cs)| {
            let sources: BTreeSet<String> = cs.iter().map(|c| c.flow.orig_h.to_string()).collect();
            let destinations: BTreeSet<String> = cs.iter().map(|c| destination_label(c)).collect();
            let sources = sources.into_iter().collect::<Vec<_>>().join(", ");
            let destinations = destinations.into_iter().collect::<Vec<_>>().join(", ");
            Evidence {
                what: format!(
                    "{kind} {redacted} in clear in {} flow(s) from {sources} to {destinations}",
                    cs.len()
                ),
                flow_uids: cs.iter().map(|c| c.flow.uid.clone()).collect(),
                ts: first_seen
                    .get(&(kind.clone(), redacted.clone()))
                    .map(|t| Timestamp(*t)),
                source: Some(sources),
                destination: Some(destinations),
                bytes: None,
            }
        })
        .collect();
    if evidence.is_empty() {
        return result(
            ControlId::Credential,
            rule,
            ControlVerdict::Pass,
            "no credential seen in clear".into(),
            evidence,
        );
    }
    let flows_with: usize = by_secret.values().map(Vec::len).sum();
    result(
        ControlId::Credential,
        rule,
        ControlVerdict::Violation,
        format!(
            "{} distinct credential(s) seen in clear, in {flows_with} flow(s)",
            evidence.len()
        ),
        evidence,
    )
}

fn proxy(flows: &[Classified<'_>], policy: &Policy) -> ControlResult {
    let rule = "With a License Proxy (or a forward proxy), only the proxy talks to Deepgram; direct licensing from API or Engine is a bypass.";
    let has_lp = !policy.licensing.proxies.is_empty();
    let has_fp = !policy.licensing.forward_proxies.is_empty();
    if !has_lp && !has_fp {
        return result(
            ControlId::Proxy,
            rule,
            ControlVerdict::NotApplicable,
            "no License Proxy or forward proxy in the policy".into(),
            Vec::new(),
        );
    }
    let mut evidence = Vec::new();
    for c in flows {
        let from_lp = policy.license_proxy_address(c.flow.orig_h);
        let bypass = match c.class {
            FlowClass::Licensing => (has_lp && !from_lp) || has_fp,
            FlowClass::ForwardProxyLicensing => has_lp && !from_lp,
            _ => false,
        };
        if bypass {
            evidence.push(flow_evidence(
                c,
                format!(
                    "{} reached {} directly, bypassing the proxy",
                    c.flow.orig_h,
                    destination_label(c)
                ),
            ));
        }
    }
    if evidence.is_empty() {
        result(
            ControlId::Proxy,
            rule,
            ControlVerdict::Pass,
            "licensing goes only through the configured proxies".into(),
            evidence,
        )
    } else {
        let hosts: BTreeSet<_> = evidence.iter().filter_map(|e| e.source.clone()).collect();
        result(
            ControlId::Proxy,
            rule,
            ControlVerdict::Finding,
            format!(
                "{} licensing flow(s) bypass the proxy, from {}",
                evidence.len(),
                hosts.into_iter().collect::<Vec<_>>().join(", ")
            ),
            evidence,
        )
    }
}

/// The last two labels of a name: an approximation of its registered domain (no public-suffix
/// list, so `x.co.uk` groups under `co.uk`; grouping coarser than needed only makes the DNS
/// thresholds stricter).
fn parent_domain(name: &str) -> String {
    let labels: Vec<&str> = name.trim_end_matches('.').split('.').collect();
    let n = labels.len();
    if n <= 2 {
        name.to_ascii_lowercase()
    } else {
        labels[n - 2..].join(".").to_ascii_lowercase()
    }
}

fn dns(flows: &[Classified<'_>], policy: &Policy) -> ControlResult {
    let rule = "No DNS tunnelling (query volume, long or high-entropy labels, TXT volume to one domain) and no unapproved resolvers.";
    let mut evidence = Vec::new();
    // (source, parent domain, minute) -> (queries, TXT queries, flow uids)
    type MinuteKey = (IpAddr, String, i64);
    let mut per_minute: BTreeMap<MinuteKey, (u64, u64, Vec<String>)> = BTreeMap::new();
    let mut odd_labels: BTreeMap<(IpAddr, String), BTreeSet<String>> = BTreeMap::new();
    let mut unapproved: BTreeMap<String, Vec<&Classified<'_>>> = BTreeMap::new();
    let mut any_dns = false;
    for c in flows {
        let Some(d) = &c.flow.dns else { continue };
        any_dns = true;
        let multicast = match c.flow.resp_h {
            IpAddr::V4(v4) => v4.is_multicast() || v4.is_broadcast() || v4.octets()[3] == 255,
            IpAddr::V6(v6) => v6.is_multicast(),
        };
        if d.queries > 0
            && !multicast
            && c.flow.resp_p == 53
            && !policy.approved_resolver(c.flow.resp_h, c.flow.resp_p)
        {
            unapproved
                .entry(endpoint(c.flow.resp_h, c.flow.resp_p))
                .or_default()
                .push(c);
        }
        let minute = c.flow.ts_nanos.div_euclid(60 * NANOS) * 60;
        let per_name = if d.names.is_empty() {
            0
        } else {
            d.queries / d.names.len() as u64
        };
        for name in &d.names {
            let domain = parent_domain(name);
            let e = per_minute
                .entry((c.flow.orig_h, domain.clone(), minute))
                .or_default();
            e.0 += per_name.max(1);
            if d.txt_queries > 0 {
                e.1 += d.txt_queries.div_ceil(d.names.len() as u64);
            }
            e.2.push(c.flow.uid.clone());
            let suspicious = name.split('.').any(|l| {
                l.len() > policy.dns.max_label_length
                    || (l.len() >= policy.dns.entropy_min_label_length
                        && label_entropy(l) > policy.dns.max_label_entropy)
            });
            if suspicious {
                odd_labels
                    .entry((c.flow.orig_h, domain))
                    .or_default()
                    .insert(name.clone());
            }
        }
    }
    if !any_dns {
        return result(
            ControlId::Dns,
            rule,
            ControlVerdict::NotApplicable,
            "no DNS traffic".into(),
            Vec::new(),
        );
    }
    let mut violation = false;
    for (resolver, cs) in &unapproved {
        violation = true;
        evidence.push(Evidence {
            what: format!(
                "{} DNS flow(s) to unapproved resolver {resolver} from {}",
                cs.len(),
                cs.iter()
                    .map(|c| c.flow.orig_h.to_string())
                    .collect::<BTreeSet<_>>()
                    .into_iter()
                    .collect::<Vec<_>>()
                    .join(", ")
            ),
            flow_uids: cs.iter().map(|c| c.flow.uid.clone()).collect(),
            ts: cs.first().map(|c| Timestamp(c.flow.ts_nanos)),
            destination: Some(resolver.clone()),
            ..Evidence::default()
        });
    }
    for ((source, domain, minute), (queries, txt, uids)) in &per_minute {
        if *queries > policy.dns.max_queries_per_minute
            || *txt > policy.dns.max_txt_queries_per_minute
        {
            violation = true;
            evidence.push(Evidence {
                what: format!("{source} sent {queries} queries ({txt} TXT) under {domain} in the minute from {}", rfc3339(minute * NANOS)),
                flow_uids: uids.iter().take(10).cloned().collect(),
                ts: Some(Timestamp(minute * NANOS)),
                source: Some(source.to_string()),
                destination: Some(domain.clone()),
                bytes: None,
            });
        }
    }
    for ((source, domain), names) in &odd_labels {
        if names.len() >= 10 {
            violation = true;
            let example = names.iter().next().cloned().unwrap_or_default();
            evidence.push(Evidence {
                what: format!("{source} queried {} names under {domain} with long or high-entropy labels, e.g. {example}", names.len()),
                source: Some(source.to_string()),
                destination: Some(domain.clone()),
                ..Evidence::default()
            });
        }
    }
    if violation {
        result(
            ControlId::Dns,
            rule,
            ControlVerdict::Violation,
            format!(
                "{} DNS anomaly(ies): tunnelling-shaped queries or unapproved resolvers",
                evidence.len()
            ),
            evidence,
        )
    } else {
        result(
            ControlId::Dns,
            rule,
            ControlVerdict::Pass,
            "DNS volume, labels and resolvers within policy".into(),
            evidence,
        )
    }
}

fn ingress(flows: &[Classified<'_>], policy: &Policy) -> ControlResult {
    let rule = "The self-hosted API port is reached only from internal networks or the configured gateway, over TLS where the policy demands it.";
    let mut evidence = Vec::new();
    let mut seen = 0;
    for c in flows {
        if !policy.ingress.api_ports.contains(&c.flow.resp_p) || !policy.is_internal(c.flow.resp_h)
        {
            continue;
        }
        seen += 1;
        let from_outside = c.direction == Direction::Ingress && !policy.is_gateway(c.flow.orig_h);
        let plaintext = policy.ingress.require_tls && c.flow.tls.is_none() && c.flow.orig_bytes > 0;
        if from_outside {
            evidence.push(flow_evidence(
                c,
                format!(
                    "{} (outside, not a gateway) reached the API at {}",
                    c.flow.orig_h,
                    endpoint(c.flow.resp_h, c.flow.resp_p)
                ),
            ));
        } else if plaintext {
            evidence.push(flow_evidence(
                c,
                format!(
                    "{} reached the API at {} without TLS",
                    c.flow.orig_h,
                    endpoint(c.flow.resp_h, c.flow.resp_p)
                ),
            ));
        }
    }
    if seen == 0 {
        return result(
            ControlId::Ingress,
            rule,
            ControlVerdict::NotApplicable,
            "no traffic to the API port".into(),
            evidence,
        );
    }
    if evidence.is_empty() {
        result(
            ControlId::Ingress,
            rule,
            ControlVerdict::Pass,
            format!("{seen} flow(s) to the API port, all from internal networks or the gateway"),
            evidence,
        )
    } else {
        result(
            ControlId::Ingress,
            rule,
            ControlVerdict::Violation,
            format!(
                "{} flow(s) reached the API port against policy",
                evidence.len()
            ),
            evidence,
        )
    }
}

fn capture(flows: &[Classified<'_>], pass: &PassSummary, policy: &Policy) -> ControlResult {
    let rule = "The capture is complete enough to judge: no drops, no truncated files, no evicted flows; otherwise the audit is inconclusive.";
    let mut evidence = Vec::new();
    let mut inconclusive = false;
    for input in &pass.inputs {
        for w in &input.warnings {
            evidence.push(Evidence {
                what: w.clone(),
                ..Evidence::default()
            });
        }
        if input.incomplete {
            inconclusive = true;
        }
        let packets = pass.decode.frames.max(1);
        if input.capture_drops > 0
            && input.capture_drops as f64 / packets as f64 > policy.capture.max_drop_ratio
        {
            inconclusive = true;
            evidence.push(Evidence {
                what: format!(
                    "{}: the capturing system dropped {} packets",
                    input.path, input.capture_drops
                ),
                ..Evidence::default()
            });
        }
    }
    if pass.flow_stats.evicted > 0 {
        inconclusive = true;
        evidence.push(Evidence {
            what: format!(
                "{} flows evicted by the flow-table cap",
                pass.flow_stats.evicted
            ),
            ..Evidence::default()
        });
    }
    // A policy whose internal networks match no originator judges nothing: say so.
    if !flows.is_empty()
        && !flows
            .iter()
            .any(|c| matches!(c.direction, Direction::Egress | Direction::Internal))
    {
        inconclusive = true;
        evidence.push(Evidence {
            what: format!(
                "no flow starts inside network.internal ({}): set it to the monitored network",
                policy
                    .network
                    .internal
                    .iter()
                    .map(|n| n.to_string())
                    .collect::<Vec<_>>()
                    .join(", ")
            ),
            ..Evidence::default()
        });
    }
    let mut finding = false;
    for c in flows.iter().filter(|c| c.class != FlowClass::NotEgress) {
        if c.flow.midstream {
            finding = true;
            evidence.push(flow_evidence(
                c,
                format!(
                    "egress flow to {} seen mid-stream (its start is not in the capture)",
                    destination_label(c)
                ),
            ));
        }
        if c.flow.tls.as_ref().is_some_and(|t| t.incomplete) {
            finding = true;
            evidence.push(flow_evidence(
                c,
                format!(
                    "TLS ClientHello to {} could not be read (truncated or missing segments)",
                    destination_label(c)
                ),
            ));
        }
    }
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
        evidence.push(Evidence {
            what: format!("{} frames cut by the snaplen", pass.decode.truncated_frames),
            ..Evidence::default()
        });
    }
    let summary = format!(
        "{} frames over {:.0} s, {} capture drops, {} truncated frames, {} mid-stream flows",
        pass.decode.frames,
        (pass.last_ts_nanos - pass.first_ts_nanos) as f64 / 1e9,
        pass.inputs.iter().map(|i| i.capture_drops).sum::<u64>(),
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
