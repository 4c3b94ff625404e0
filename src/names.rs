//! Names: which name each flow's destination goes by, and the evidence for it.
//!
//! No IP list exists for Deepgram's hosts, so names come from what the capture itself shows,
//! strongest first: the flow's TLS SNI, an HTTP CONNECT target, an HTTP Host header, a DNS answer
//! seen earlier for the destination address (with its CNAME chain and TTL), and last an operator
//! mapping from the policy. Conflicts and uncertainty (ECH, QUIC without a readable ClientHello)
//! are kept as caveats, never hidden.

use std::collections::HashMap;
use std::net::IpAddr;

use serde::{Deserialize, Serialize};

use crate::inspect::dns::{DnsData, DnsMessage};

/// Where a flow's destination name came from, strongest first.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum NameSource {
    /// TLS ClientHello server_name of this flow (TCP or QUIC).
    TlsSni,
    /// HTTP CONNECT authority of this flow (a forward proxy tunnel).
    HttpConnect,
    /// HTTP/1.x Host header of this flow.
    HttpHost,
    /// A DNS answer seen earlier in the capture for the responder's address.
    DnsAnswer,
    /// A mapping given by the operator in the policy.
    Operator,
}

/// How far a name can be trusted.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Confidence {
    /// Said by the flow itself in clear (SNI, CONNECT, Host) and not contradicted.
    High,
    /// Inferred (DNS answer, operator mapping) or contradicted by other evidence.
    Medium,
    /// The real name is hidden (ECH, encrypted DNS) or only guessed.
    Low,
}

/// One piece of evidence for a flow's destination name.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct NameEvidence {
    pub source: NameSource,
    pub name: String,
    /// DNS only: the query name that led to this address through `cname_chain`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub query: Option<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub cname_chain: Vec<String>,
    /// DNS only: TTL of the answer and the packet time it was seen (nanoseconds since the epoch).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ttl: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub seen_ts_nanos: Option<i64>,
}

/// A flow's destination name with its evidence.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FlowName {
    /// The name chosen from the strongest evidence.
    pub name: String,
    pub source: NameSource,
    pub confidence: Confidence,
    pub evidence: Vec<NameEvidence>,
    /// Why the name is uncertain or contradicted, in words (ECH, SNI vs DNS disagreement, ...).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub caveats: Vec<String>,
}

/// Bindings kept per address (newest last).
const BINDINGS_PER_ADDRESS: usize = 4;
/// Addresses remembered; past this the table is cleared (counted) rather than grown without bound.
const MAX_ADDRESSES: usize = 1 << 20;
/// Longest CNAME chain followed.
const MAX_CHAIN: usize = 16;

/// One DNS answer binding an address to the name a client asked for.
#[derive(Debug, Clone)]
struct DnsBinding {
    query: String,
    chain: Vec<String>,
    ttl: u32,
    seen_ts_nanos: i64,
}

/// What the capture taught about names, shared by all flows.
#[derive(Debug, Default)]
pub struct NameBook {
    dns: HashMap<IpAddr, Vec<DnsBinding>>,
    operator: HashMap<IpAddr, String>,
    /// Times the DNS table was cleared because it reached `MAX_ADDRESSES`.
    pub resets: u64,
}

impl NameBook {
    /// A book with operator mappings (address -> name) from the policy.
    pub fn with_operator_names(operator: HashMap<IpAddr, String>) -> Self {
        NameBook {
            operator,
            ..Self::default()
        }
    }

    /// Learns the address bindings of a DNS response: each A/AAAA answer is tied to the question
    /// name through the CNAME chain that leads to it.
    pub fn observe_dns(&mut self, msg: &DnsMessage, ts_nanos: i64) {
        if !msg.response || msg.rcode != 0 {
            return;
        }
        for answer in &msg.answers {
            let DnsData::Addr(addr) = answer.data else {
                continue;
            };
            // Walk CNAMEs backwards from the owner name to the question.
            let mut chain = Vec::new();
            let mut owner = answer.name.clone();
            while chain.len() < MAX_CHAIN {
                let Some(alias) = msg.answers.iter().find(|a| {
                    matches!(&a.data, DnsData::Cname(target) if target.eq_ignore_ascii_case(&owner))
                }) else {
                    break;
                };
                chain.push(owner);
                owner = alias.name.clone();
            }
            chain.reverse();
            let query = msg
                .questions
                .iter()
                .find(|q| q.name.eq_ignore_ascii_case(&owner))
                .map(|q| q.name.clone())
                .unwrap_or(owner);
            if self.dns.len() >= MAX_ADDRESSES && !self.dns.contains_key(&addr) {
                self.dns.clear();
                self.resets += 1;
            }
            let bindings = self.dns.entry(addr).or_default();
            bindings.retain(|b| !b.query.eq_ignore_ascii_case(&query));
            bindings.push(DnsBinding {
                query,
                chain,
                ttl: answer.ttl,
                seen_ts_nanos: ts_nanos,
            });
            if bindings.len() > BINDINGS_PER_ADDRESS {
                bindings.remove(0);
            }
        }
    }

    /// DNS evidence for `addr` from answers seen at or before `ts_nanos`, newest first.
    pub fn dns_evidence(&self, addr: IpAddr, ts_nanos: i64) -> Vec<NameEvidence> {
        let Some(bindings) = self.dns.get(&addr) else {
            return Vec::new();
        };
        bindings
            .iter()
            .rev()
            .filter(|b| b.seen_ts_nanos <= ts_nanos)
            .map(|b| NameEvidence {
                source: NameSource::DnsAnswer,
                name: b.query.clone(),
                query: Some(b.query.clone()),
                cname_chain: b.chain.clone(),
                ttl: Some(b.ttl),
                seen_ts_nanos: Some(b.seen_ts_nanos),
            })
            .collect()
    }

    /// Operator evidence for `addr`, if the policy maps it.
    pub fn operator_evidence(&self, addr: IpAddr) -> Option<NameEvidence> {
        self.operator.get(&addr).map(|name| NameEvidence {
            source: NameSource::Operator,
            name: name.clone(),
            query: None,
            cname_chain: Vec::new(),
            ttl: None,
            seen_ts_nanos: None,
        })
    }
}

/// Builds evidence that the flow itself carried (SNI, CONNECT, Host).
pub fn flow_evidence(source: NameSource, name: &str) -> NameEvidence {
    NameEvidence {
        source,
        name: name.to_string(),
        query: None,
        cname_chain: Vec::new(),
        ttl: None,
        seen_ts_nanos: None,
    }
}

/// Chooses a flow's name from its evidence and says how far to trust it.
///
/// `ech`: the ClientHello carried Encrypted Client Hello, so the SNI is only a public name.
/// `flow_start_nanos`: used to tell whether a DNS answer's TTL had run out when the flow began.
pub fn choose(
    mut evidence: Vec<NameEvidence>,
    ech: bool,
    flow_start_nanos: i64,
) -> Option<FlowName> {
    if evidence.is_empty() {
        return None;
    }
    evidence.sort_by_key(|e| e.source);
    let best = evidence[0].clone();
    let mut caveats = Vec::new();
    let mut confidence = match best.source {
        NameSource::TlsSni | NameSource::HttpConnect | NameSource::HttpHost => Confidence::High,
        NameSource::DnsAnswer | NameSource::Operator => Confidence::Medium,
    };
    let strip_port = |n: &str| -> String {
        n.rsplit_once(':')
            .filter(|(_, p)| p.chars().all(|c| c.is_ascii_digit()))
            .map(|(h, _)| h.to_string())
            .unwrap_or_else(|| n.to_string())
            .trim_matches(|c| c == '[' || c == ']')
            .to_ascii_lowercase()
    };
    let best_name = strip_port(&best.name);
    for other in &evidence[1..] {
        let other_name = strip_port(&other.name);
        let agrees = other_name == best_name
            || other
                .cname_chain
                .iter()
                .any(|c| c.eq_ignore_ascii_case(&best_name));
        if !agrees && other.source != NameSource::Operator {
            caveats.push(format!(
                "{} says {} but {} says {}",
                source_words(best.source),
                best.name,
                source_words(other.source),
                other.name
            ));
            confidence = confidence.max(Confidence::Medium);
        }
    }
    if best.source == NameSource::DnsAnswer {
        if let (Some(ttl), Some(seen)) = (best.ttl, best.seen_ts_nanos) {
            if flow_start_nanos - seen > ttl as i64 * 1_000_000_000 {
                caveats.push(format!(
                    "the DNS answer for {} had expired (TTL {ttl} s) when the flow began",
                    best.name
                ));
            }
        }
    }
    if ech {
        caveats.push(
            "Encrypted Client Hello: the SNI is the public name, the real destination is hidden"
                .into(),
        );
        confidence = Confidence::Low;
    }
    Some(FlowName {
        name: best.name.clone(),
        source: best.source,
        confidence,
        evidence,
        caveats,
    })
}

fn source_words(source: NameSource) -> &'static str {
    match source {
        NameSource::TlsSni => "TLS SNI",
        NameSource::HttpConnect => "HTTP CONNECT",
        NameSource::HttpHost => "HTTP Host",
        NameSource::DnsAnswer => "a DNS answer",
        NameSource::Operator => "the operator mapping",
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::inspect::dns::{DnsAnswer, DnsQuestion};

    fn response() -> DnsMessage {
        DnsMessage {
            id: 1,
            response: true,
            opcode: 0,
            rcode: 0,
            truncated: false,
            questions: vec![DnsQuestion {
                name: "license.deepgram.com".into(),
                qtype: 1,
            }],
            answers: vec![
                DnsAnswer {
                    name: "license.deepgram.com".into(),
                    rtype: 5,
                    ttl: 60,
                    data: DnsData::Cname("edge.example.net".into()),
                },
                DnsAnswer {
                    name: "edge.example.net".into(),
                    rtype: 1,
                    ttl: 30,
                    data: DnsData::Addr("203.0.113.10".parse().unwrap()),
                },
            ],
        }
    }

    #[test]
    fn dns_answer_binds_address_to_question_through_cname_chain() {
        let mut book = NameBook::default();
        book.observe_dns(&response(), 1_000);
        let ev = book.dns_evidence("203.0.113.10".parse().unwrap(), 2_000);
        assert_eq!(ev.len(), 1);
        assert_eq!(ev[0].name, "license.deepgram.com");
        assert_eq!(ev[0].cname_chain, vec!["edge.example.net".to_string()]);
        assert_eq!(ev[0].ttl, Some(30));
        // An answer seen after the flow started is not evidence for it.
        assert!(book
            .dns_evidence("203.0.113.10".parse().unwrap(), 999)
            .is_empty());
    }

    #[test]
    fn sni_wins_and_a_disagreeing_dns_answer_is_a_caveat() {
        let sni = flow_evidence(NameSource::TlsSni, "license.deepgram.com");
        let mut dns = flow_evidence(NameSource::DnsAnswer, "cdn.example.net");
        dns.ttl = Some(300);
        dns.seen_ts_nanos = Some(0);
        let name = choose(vec![dns, sni], false, 1).unwrap();
        assert_eq!(name.name, "license.deepgram.com");
        assert_eq!(name.source, NameSource::TlsSni);
        assert_eq!(name.confidence, Confidence::Medium);
        assert_eq!(name.caveats.len(), 1);
    }

    #[test]
    fn ech_makes_a_name_low_confidence() {
        let sni = flow_evidence(NameSource::TlsSni, "cloudflare-ech.com");
        let name = choose(vec![sni], true, 0).unwrap();
        assert_eq!(name.confidence, Confidence::Low);
    }

    #[test]
    fn connect_authority_matches_sni_despite_port() {
        let connect = flow_evidence(NameSource::HttpConnect, "license.deepgram.com:443");
        let sni = flow_evidence(NameSource::TlsSni, "license.deepgram.com");
        let name = choose(vec![connect, sni], false, 0).unwrap();
        assert!(name.caveats.is_empty());
        assert_eq!(name.confidence, Confidence::High);
    }
}
