//! Classification: where each flow goes (egress, ingress, internal, local) and, for egress, what it is
//! (licensing, a License Proxy hop, a CONNECT tunnel to licensing, hosted transcription, allowed,
//! unknown), with the name evidence it rests on.

use serde::{Deserialize, Serialize};

use crate::flow::FlowRecord;
use crate::policy::Policy;

/// Where a flow goes relative to the policy's internal networks.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Direction {
    /// Internal originator, external responder.
    Egress,
    /// External originator, internal responder.
    Ingress,
    /// Both ends internal.
    Internal,
    /// Neither end internal (transit traffic the sensor happened to see).
    External,
    /// Traffic that cannot leave the link or the site whatever the policy says (broadcast,
    /// link-scoped multicast, loopback, link-local: see `audit::scope`). Never egress.
    Local,
}

/// What a flow is, for the audit.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum FlowClass {
    /// Straight to a licensing server on its licensing port.
    Licensing,
    /// To a Deepgram licensing name on another port (plain HTTP on 80, say).
    LicensingWrongPort,
    /// A component talking to the License Proxy inside the network.
    LicenseProxyHop,
    /// An HTTP CONNECT tunnel through a forward proxy to a licensing server.
    ForwardProxyLicensing,
    /// A forward proxy's own upstream connection to a licensing server.
    ForwardProxyUpstream,
    /// Named a licensing server by its own SNI or CONNECT, but the capture's DNS contradicts the
    /// name: the window's answers for it give other addresses, or this address belongs to a
    /// hosted transcription name. Not counted as licensing (no check-ins, no licensing bytes);
    /// DEST reports it, as a violation once it carries more than licensing ever does.
    ContradictedLicensing,
    /// To Deepgram's hosted transcription API.
    HostedTranscription,
    /// To a destination the policy allows.
    Allowed,
    /// Egress to a destination nothing explains.
    Unknown,
    /// Not egress (internal, ingress, transit).
    NotEgress,
}

impl FlowClass {
    /// True for the classes whose client-to-server bytes count as licensing egress.
    /// Check-ins over plain HTTP to a licensing name count too: they break TLS, and their bytes
    /// and cadence are measured all the same.
    pub fn is_licensing(self) -> bool {
        matches!(
            self,
            FlowClass::Licensing
                | FlowClass::LicensingWrongPort
                | FlowClass::ForwardProxyLicensing
                | FlowClass::ForwardProxyUpstream
        )
    }
}

impl Classified<'_> {
    /// True when this flow's client-to-server bytes are licensing egress: licensing traffic that
    /// leaves the internal network. Behind an internal forward proxy that is the proxy's upstream
    /// leg, not the client's tunnel to it (counting both would count every byte twice); a tunnel
    /// to a proxy outside the network is itself the egress.
    pub fn is_licensing_egress(&self) -> bool {
        match self.class {
            FlowClass::Licensing
            | FlowClass::LicensingWrongPort
            | FlowClass::ForwardProxyUpstream => true,
            FlowClass::ForwardProxyLicensing => self.direction == Direction::Egress,
            _ => false,
        }
    }
}

/// A flow with its audit classification.
#[derive(Debug, Clone)]
pub struct Classified<'f> {
    /// The flow record.
    pub flow: &'f FlowRecord,
    /// Where it goes relative to the internal networks.
    pub direction: Direction,
    /// What it is, for the controls.
    pub class: FlowClass,
    /// The destination name the class rests on (None: decided on the address).
    pub name: Option<String>,
}

/// The host part of `host:port` (brackets of IPv6 removed).
fn host_of(authority: &str) -> &str {
    let host = match authority.rsplit_once(':') {
        Some((h, p)) if p.chars().all(|c| c.is_ascii_digit()) && !h.ends_with(':') => h,
        _ => authority,
    };
    host.trim_start_matches('[').trim_end_matches(']')
}

fn port_of(authority: &str) -> Option<u16> {
    authority.rsplit_once(':').and_then(|(_, p)| p.parse().ok())
}

/// Classifies one flow.
pub fn classify<'f>(flow: &'f FlowRecord, policy: &Policy) -> Classified<'f> {
    let orig_in = policy.is_internal(flow.orig_h);
    let resp_in = policy.is_internal(flow.resp_h);
    let direction = match (orig_in, resp_in) {
        (true, false) => Direction::Egress,
        (false, true) => Direction::Ingress,
        (true, true) => Direction::Internal,
        (false, false) => Direction::External,
    };
    let name = flow.name.as_ref().map(|n| n.name.clone());
    let udp = flow.proto == crate::flow::record::Transport::Udp;

    // Hops to proxies are decided on the address, wherever the proxy sits.
    if policy.license_proxy_at(flow.resp_h, flow.resp_p) {
        return Classified {
            flow,
            direction,
            class: FlowClass::LicenseProxyHop,
            name,
        };
    }
    if policy.forward_proxy_at(flow.resp_h, flow.resp_p) {
        return through_forward_proxy(flow, policy, direction, name);
    }
    // Scope before policy: what never leaves the link is not egress, whatever `internal` says.
    let direction = if crate::audit::scope::local_reason(flow, policy).is_some() {
        Direction::Local
    } else {
        direction
    };
    if direction != Direction::Egress {
        return Classified {
            flow,
            direction,
            class: FlowClass::NotEgress,
            name,
        };
    }
    let class = match name.as_deref() {
        Some(n) if policy.is_licensing_name(host_of(n)) => {
            let host = host_of(n);
            if policy.licensing_port(host) == Some(flow.resp_p) && !udp {
                if policy.forward_proxy_at_address(flow.orig_h) {
                    FlowClass::ForwardProxyUpstream
                } else if licensing_name_contradicted(flow, policy) {
                    FlowClass::ContradictedLicensing
                } else {
                    FlowClass::Licensing
                }
            } else {
                FlowClass::LicensingWrongPort
            }
        }
        Some(n) if policy.is_hosted_transcription(host_of(n)) => FlowClass::HostedTranscription,
        _ if policy.egress_allowed(name.as_deref().map(host_of), flow.resp_h, flow.resp_p, udp) => {
            FlowClass::Allowed
        }
        _ => FlowClass::Unknown,
    };
    Classified {
        flow,
        direction,
        class,
        name,
    }
}

/// The flow named itself (SNI or CONNECT) but the capture's DNS says otherwise: the answers for
/// the name in the flow's window never gave its address, or its address is what the DNS gives to
/// a hosted transcription name (`names` keeps both facts on the flow's name).
fn licensing_name_contradicted(flow: &FlowRecord, policy: &Policy) -> bool {
    use crate::names::NameSource;
    let Some(name) = &flow.name else {
        return false;
    };
    if !matches!(name.source, NameSource::TlsSni | NameSource::HttpConnect) {
        return false;
    }
    !name.window_answers_for_name.is_empty()
        || name.dns_names_for_address.iter().any(|e| {
            std::iter::once(&e.name)
                .chain(e.cname_chain.iter())
                .any(|n| policy.is_hosted_transcription(n))
        })
}

/// Classifies a flow to a forward proxy. It is licensing when its CONNECT target is a licensing
/// server on its licensing port (or, without a CONNECT, its SNI is a licensing name); otherwise it
/// is judged like any egress by the target it asked for (CONNECT target, else HTTP Host), and is
/// `NotEgress` when it asked for none.
fn through_forward_proxy<'f>(
    flow: &'f FlowRecord,
    policy: &Policy,
    direction: Direction,
    name: Option<String>,
) -> Classified<'f> {
    let connect = flow
        .name
        .as_ref()
        .and_then(|n| {
            n.evidence
                .iter()
                .find(|e| e.source == crate::names::NameSource::HttpConnect)
        })
        .map(|e| e.name.clone());
    let sni = flow.tls.as_ref().and_then(|t| t.sni.clone());
    let licensing = connect.as_deref().is_some_and(|c| {
        policy.is_licensing_name(host_of(c)) && port_of(c) == policy.licensing_port(host_of(c))
    }) || (connect.is_none()
        && sni.as_deref().is_some_and(|s| policy.is_licensing_name(s)));
    // Through the proxy to anything else: judged by the target it asked for, like any egress.
    let target = connect
        .clone()
        .or_else(|| flow.http.iter().find_map(|h| h.host.clone()));
    let class = if licensing {
        FlowClass::ForwardProxyLicensing
    } else if let Some(t) = target.as_deref() {
        if policy.is_hosted_transcription(host_of(t)) {
            FlowClass::HostedTranscription
        } else if policy.egress_allowed(
            Some(host_of(t)),
            flow.resp_h,
            port_of(t).unwrap_or(flow.resp_p),
            false,
        ) {
            FlowClass::Allowed
        } else {
            FlowClass::Unknown
        }
    } else {
        FlowClass::NotEgress
    };
    Classified {
        flow,
        direction,
        class,
        name: connect.or(sni).or(name),
    }
}
