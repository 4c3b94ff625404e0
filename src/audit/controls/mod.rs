//! The controls of DESIGN.md section 5, one file per control. Each takes the classified flows
//! (and, where it needs them, the pass, the policy, the licensing measures and the check-ins) and
//! returns a verdict, a one-sentence summary and the evidence (flow uids, packet times, byte
//! counts) behind it.
//!
//! This module holds what every control shares: how a result is capped ([`MAX_EVIDENCE`]), how a
//! destination is labelled and how one flow becomes one evidence line, so that all controls show
//! flows the same way. Reports and the live watch call [`destination_label`] and [`run_all`].

mod audio;
mod cadence;
mod capture;
mod credential;
mod dest;
mod dns;
mod duration;
mod ingress;
mod proxy;
mod tls;
mod volume;

use std::collections::BTreeMap;
use std::net::IpAddr;

use crate::audit::classify::Classified;
use crate::audit::{ControlId, ControlResult, ControlVerdict, Evidence, Licensing, Timestamp};
use crate::pipeline::PassSummary;
use crate::policy::Policy;

/// Evidence items kept per control (the rest are counted in `evidence_omitted`), so one noisy
/// capture cannot bury a report in thousands of identical lines.
const MAX_EVIDENCE: usize = 40;

/// A control's result, with its evidence capped at [`MAX_EVIDENCE`] and the rest counted.
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

/// `address:port`, with IPv6 addresses bracketed so the port cannot be read as part of them.
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
        // A "name" that is only the address would print the address twice.
        Some(name) if !name.contains(&c.flow.resp_h.to_string()) => format!("{name} ({at})"),
        _ => at,
    }
}

/// One flow as one evidence line: its uid, first packet time, source, destination and the bytes
/// its originator sent (IP bytes, as Zeek's `orig_ip_bytes`).
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
        dest::dest(flows, policy),
        tls::tls(flows, policy),
        volume::volume(policy, licensing),
        duration::duration(flows, policy),
        cadence::cadence(flows, pass, policy, checkins),
        audio::audio(flows, policy, licensing),
        credential::credential(flows),
        proxy::proxy(flows, policy),
        dns::dns(flows, policy),
        ingress::ingress(flows, policy),
        capture::capture(flows, pass, policy),
    ]
}

/// Hand-built flows, policies and passes for the audit's unit tests.
#[cfg(test)]
pub(super) mod test_support {
    use crate::audit::classify::{classify, Classified};
    use crate::decode::DecodeStats;
    use crate::flow::record::{test_record, MinuteSlice};
    use crate::flow::{FlowRecord, FlowStats};
    use crate::names::{NameSource, Strength};
    use crate::pipeline::PassSummary;
    use crate::policy::Policy;
    use crate::units::NANOS;

    /// A minute boundary (2023-11-14T22:14:00Z), the start of [`test_record`]'s flow.
    pub const T0: i64 = 1_700_000_040 * NANOS;

    /// [`test_record`] with its own uid, first packet at `ts_nanos` and a destination name, as a
    /// ClientHello would have given it and a DNS answer in its window confirmed it.
    pub fn flow(uid: &str, ts_nanos: i64, name: Option<&str>) -> FlowRecord {
        let mut f = test_record();
        f.uid = uid.into();
        f.ts_nanos = ts_nanos;
        f.last_ts_nanos = ts_nanos + NANOS / 2;
        f.name = name.and_then(|n| {
            let mut name = crate::names::choose(
                vec![crate::names::flow_evidence(NameSource::TlsSni, n)],
                false,
            )?;
            name.strength = Strength::Confirmed;
            Some(name)
        });
        f
    }

    /// A licensing connection (license.deepgram.com:443) that sent `orig_ip_bytes` in its one
    /// minute and was answered.
    pub fn licensing(uid: &str, ts_nanos: i64, orig_ip_bytes: u64) -> FlowRecord {
        let mut f = flow(uid, ts_nanos, Some("license.deepgram.com"));
        f.orig_bytes = orig_ip_bytes / 2;
        f.orig_ip_bytes = orig_ip_bytes;
        f.orig_pkts = 5;
        f.resp_bytes = 100;
        f.minutes = vec![slice(
            crate::units::minute_start_secs(ts_nanos),
            orig_ip_bytes,
        )];
        f
    }

    /// One minute of client traffic: `orig_ip_bytes` IP bytes (half of them payload) in 5 packets.
    pub fn slice(start_secs: i64, orig_ip_bytes: u64) -> MinuteSlice {
        MinuteSlice {
            start: start_secs,
            orig_pkts: 5,
            orig_ip_bytes,
            orig_bytes: orig_ip_bytes / 2,
            ..MinuteSlice::default()
        }
    }

    /// A policy of `extra` TOML sections; every key it leaves out takes the built-in default,
    /// except the internal network, which is the hand-built flows' LAN (192.0.2.0/24) unless
    /// `extra` has a `[network]` section of its own.
    pub fn policy(extra: &str) -> Policy {
        let network = if extra.contains("[network]") {
            ""
        } else {
            "[network]\ninternal = [\"192.0.2.0/24\"]\n"
        };
        Policy::from_toml(&format!("schema_version = 1\n{network}{extra}"), "test")
            .expect("test policy is valid")
    }

    /// Every flow classified under `policy`.
    pub fn classified<'f>(flows: &'f [FlowRecord], policy: &Policy) -> Vec<Classified<'f>> {
        flows.iter().map(|f| classify(f, policy)).collect()
    }

    /// A clean pass over `[first, last]` with `frames` frames: no drops, no truncation, nothing
    /// evicted, no filter.
    pub fn pass(first: i64, last: i64, frames: u64) -> PassSummary {
        PassSummary {
            inputs: vec![crate::source::FileFacts {
                path: "test.pcap".into(),
                ..Default::default()
            }],
            decode: DecodeStats {
                frames,
                packets: frames,
                ..DecodeStats::default()
            },
            flow_stats: FlowStats::default(),
            first_ts_nanos: first,
            last_ts_nanos: last,
            complete: true,
            filter: None,
            filtered_frames: 0,
        }
    }
}
