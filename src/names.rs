//! Names: which name each flow's destination goes by, the evidence for it, and how strong it is.
//!
//! No IP list exists for Deepgram's hosts, so names come from what the capture itself shows: the
//! flow's TLS SNI, an HTTP CONNECT target, an HTTP Host header, a DNS answer seen earlier for the
//! destination address (with its CNAME chain and TTL), and last an operator mapping from the
//! policy. What a flow says about itself is only a claim; a DNS answer in the capture is what tied
//! the address to the name. Each name therefore carries a [`Strength`] that says which of the two
//! it rests on (DESIGN.md section 3), and the DNS facts that contradict it (other addresses the
//! name resolved to, other names the address goes by, clients told different things) so that the
//! audit can judge from flow records alone.
//!
//! Invariants: every table here is bounded (per address, per name, in total: cleared and counted
//! when full); a DNS answer is evidence for a flow only inside its window, answer time <= flow
//! start <= answer time + TTL + slack (`[dns] answer_slack_seconds`).

use std::collections::HashMap;
use std::net::IpAddr;

use serde::{Deserialize, Serialize};

use crate::inspect::dns::{DnsData, DnsMessage};
use crate::units::NANOS;

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

/// What a flow's name rests on, strongest first (DESIGN.md section 3).
#[derive(
    Debug, Clone, Copy, Default, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize,
)]
#[serde(rename_all = "snake_case")]
pub enum Strength {
    /// The flow named itself (TLS SNI or HTTP CONNECT) and a DNS answer in the window gave this
    /// address for that name, directly or through its CNAME chain.
    Confirmed,
    /// The flow carried no SNI or CONNECT (plain HTTP Host, QUIC without a readable name, SSH...)
    /// but its own client got a DNS answer for the address in the window.
    Resolved,
    /// SNI, CONNECT or Host alone: no DNS answer for the name in the window.
    Claimed,
    /// A DNS answer seen by another client, or outside its window. Also what records written
    /// before strengths existed read as: the weakest reading that is not an operator's word.
    #[default]
    Inferred,
    /// Only an operator mapping (`[names]` in the policy) names the address.
    Operator,
}

impl Strength {
    /// The word the outputs use (`confirmed`, `resolved`, ...).
    pub fn as_str(self) -> &'static str {
        match self {
            Strength::Confirmed => "confirmed",
            Strength::Resolved => "resolved",
            Strength::Claimed => "claimed",
            Strength::Inferred => "inferred",
            Strength::Operator => "operator",
        }
    }
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
    /// DNS only: the client the answer went to (the DNS flow's originator).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub client: Option<IpAddr>,
    /// DNS only: uid of the DNS flow that carried the answer.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub dns_uid: Option<String>,
}

/// One DNS response's addresses for one question name, as a client received it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AnswerSeen {
    /// The question name (lower case, no trailing dot).
    pub name: String,
    /// The addresses the response gave for it (first [`ADDRS_PER_ANSWER`]).
    pub addrs: Vec<IpAddr>,
    /// The client the response went to.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub client: Option<IpAddr>,
    /// Lowest TTL among those addresses, in seconds.
    pub ttl: u32,
    /// Packet time of the response, nanoseconds since the epoch.
    pub seen_ts_nanos: i64,
    /// uid of the DNS flow that carried it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub dns_uid: Option<String>,
}

/// Two clients told disjoint address sets for one name within each other's window.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AnswerConflict {
    /// The question name both asked.
    pub name: String,
    /// The earlier answer.
    pub first: AnswerSeen,
    /// The later answer, inside the earlier one's window, sharing no address of its family.
    pub second: AnswerSeen,
}

/// A flow's destination name with its evidence.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FlowName {
    /// The name chosen from the strongest evidence.
    pub name: String,
    pub source: NameSource,
    pub confidence: Confidence,
    /// What the name rests on: the flow's own claim, a DNS answer, or both.
    #[serde(default)]
    pub strength: Strength,
    pub evidence: Vec<NameEvidence>,
    /// Why the name is uncertain or contradicted, in words (ECH, SNI vs DNS disagreement, ...).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub caveats: Vec<String>,
    /// The flow named itself but the address is in none of the DNS answers for that name whose
    /// window holds the flow's start: those answers (first [`ANSWERS_SHOWN`]).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub window_answers_for_name: Vec<AnswerSeen>,
    /// Other names the capture's DNS gave this address (first [`ANSWERS_SHOWN`]): a shared
    /// address (CDN, round robin), or a contradiction when one of them must never be reached.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub dns_names_for_address: Vec<NameEvidence>,
    /// Clients told disjoint address sets for this name at the same time (first
    /// [`ANSWERS_SHOWN`]).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub answer_conflicts: Vec<AnswerConflict>,
    /// Items left out of the three lists above by their caps.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub dns_omitted: u64,
}

fn is_zero(n: &u64) -> bool {
    *n == 0
}

/// Bindings kept per address (newest last), one per (query, client).
const BINDINGS_PER_ADDRESS: usize = 16;
/// Addresses remembered; past this the table is cleared (counted) rather than grown without bound.
const MAX_ADDRESSES: usize = 1 << 20;
/// Question names whose answers are remembered; past this that table is cleared (counted).
const MAX_NAMES: usize = 1 << 16;
/// Answers kept per question name (newest last).
const ANSWERS_PER_NAME: usize = 32;
/// Addresses kept from one answer.
pub const ADDRS_PER_ANSWER: usize = 8;
/// Conflicts kept per question name (the rest are counted in `conflicts_omitted`).
const CONFLICTS_PER_NAME: usize = 4;
/// Items a [`FlowName`] shows in each of its DNS lists (the rest are counted in `dns_omitted`).
pub const ANSWERS_SHOWN: usize = 4;
/// Longest CNAME chain followed.
const MAX_CHAIN: usize = 16;
/// `[dns] answer_slack_seconds` of the embedded default policy.
pub const DEFAULT_ANSWER_SLACK_SECS: u64 = 60;

/// One DNS answer binding an address to the name a client asked for.
#[derive(Debug, Clone)]
struct DnsBinding {
    query: String,
    chain: Vec<String>,
    ttl: u32,
    seen_ts_nanos: i64,
    client: Option<IpAddr>,
    dns_uid: Option<String>,
}

/// Who asked a DNS question and in which flow: the DNS flow's originator and uid.
#[derive(Debug, Clone, Copy)]
pub struct DnsClient<'a> {
    /// The client the response went to.
    pub addr: IpAddr,
    /// uid of the DNS flow.
    pub uid: &'a str,
}

/// What one flow said about itself and where it went, for [`NameBook::name_flow`].
#[derive(Debug, Clone)]
pub struct FlowFacts {
    /// The flow's originator (the client that would have resolved the name).
    pub client: IpAddr,
    /// The responder's address.
    pub addr: IpAddr,
    /// First packet time, nanoseconds since the epoch.
    pub start_nanos: i64,
    /// Last packet time so far, nanoseconds since the epoch.
    pub end_nanos: i64,
    /// Evidence the flow carried itself (SNI, CONNECT, Host), any order.
    pub carried: Vec<NameEvidence>,
    /// DNS evidence for `addr` as the flow began ([`NameBook::dns_evidence`] at its start).
    pub dns: Vec<NameEvidence>,
    /// The ClientHello carried Encrypted Client Hello: the SNI is only a public name.
    pub ech: bool,
}

/// What the capture taught about names, shared by all flows.
#[derive(Debug)]
pub struct NameBook {
    dns: HashMap<IpAddr, Vec<DnsBinding>>,
    /// Answer sets per question name (lower case), newest last.
    answers: HashMap<String, Vec<AnswerSeen>>,
    /// Disjoint answers to different clients, per question name.
    conflicts: HashMap<String, Vec<AnswerConflict>>,
    operator: HashMap<IpAddr, String>,
    answer_slack_nanos: i64,
    /// Times a DNS table was cleared because it reached its cap.
    pub resets: u64,
    /// Conflicts past [`CONFLICTS_PER_NAME`] for their name, counted only.
    pub conflicts_omitted: u64,
}

impl Default for NameBook {
    fn default() -> Self {
        NameBook {
            dns: HashMap::new(),
            answers: HashMap::new(),
            conflicts: HashMap::new(),
            operator: HashMap::new(),
            answer_slack_nanos: DEFAULT_ANSWER_SLACK_SECS as i64 * NANOS,
            resets: 0,
            conflicts_omitted: 0,
        }
    }
}

/// Lower case, no trailing dot: how names are compared.
fn canonical(name: &str) -> String {
    name.trim_end_matches('.').to_ascii_lowercase()
}

/// The host of `host[:port]`, brackets of IPv6 removed, canonical.
fn host_of(name: &str) -> String {
    let host = name
        .rsplit_once(':')
        .filter(|(h, p)| p.chars().all(|c| c.is_ascii_digit()) && !h.ends_with(':'))
        .map(|(h, _)| h)
        .unwrap_or(name);
    canonical(host.trim_matches(|c| c == '[' || c == ']'))
}

/// True when an answer seen at `seen` with `ttl` seconds is evidence at time `t`:
/// `seen <= t <= seen + ttl + slack`, both ends included (in i128: no overflow at any time).
fn window_holds(seen: i64, ttl: u32, slack_nanos: i64, t: i64) -> bool {
    let end = i128::from(seen) + i128::from(ttl) * i128::from(NANOS) + i128::from(slack_nanos);
    seen <= t && i128::from(t) <= end
}

/// True when `a` and `b` (answer sets) share no address of a family both contain: an A answer
/// and an AAAA answer never contradict each other.
fn disjoint_same_family(a: &[IpAddr], b: &[IpAddr]) -> bool {
    [true, false].iter().any(|&v4| {
        let fa: Vec<_> = a.iter().filter(|x| x.is_ipv4() == v4).collect();
        let fb: Vec<_> = b.iter().filter(|x| x.is_ipv4() == v4).collect();
        !fa.is_empty() && !fb.is_empty() && !fa.iter().any(|x| fb.contains(x))
    })
}

impl NameBook {
    /// A book with operator mappings (address -> name) from the policy.
    pub fn with_operator_names(operator: HashMap<IpAddr, String>) -> Self {
        NameBook {
            operator,
            ..Self::default()
        }
    }

    /// Sets how long past its TTL a DNS answer still names a flow (`[dns] answer_slack_seconds`):
    /// clients and resolvers cache a little past the TTL, and a check-in may start just after it.
    pub fn set_answer_slack_secs(&mut self, secs: u64) {
        self.answer_slack_nanos = i64::try_from(secs)
            .unwrap_or(i64::MAX)
            .saturating_mul(NANOS);
    }

    /// True when an answer seen at `seen` with `ttl` is evidence for a flow starting at `start`:
    /// `seen <= start <= seen + ttl + slack`, both ends included.
    pub fn in_window(&self, seen: i64, ttl: u32, start: i64) -> bool {
        window_holds(seen, ttl, self.answer_slack_nanos, start)
    }

    /// Learns the address bindings of a DNS response sent to `client`: each A/AAAA answer is tied
    /// to the question name through the CNAME chain that leads to it, and the addresses given for
    /// each question name are kept as one answer set (checked against other clients' sets).
    pub fn observe_dns(&mut self, msg: &DnsMessage, ts_nanos: i64, client: DnsClient<'_>) {
        if !msg.response || msg.rcode != 0 {
            return;
        }
        let mut sets: Vec<AnswerSeen> = Vec::new();
        for answer in &msg.answers {
            let DnsData::Addr(addr) = answer.data else {
                continue;
            };
            let (query, chain) = query_and_chain(msg, &answer.name);
            self.bind(addr, &query, chain, answer.ttl, ts_nanos, client);
            let key = canonical(&query);
            let set = match sets.iter_mut().position(|s| s.name == key) {
                Some(i) => &mut sets[i],
                None => {
                    sets.push(AnswerSeen {
                        name: key,
                        addrs: Vec::new(),
                        client: Some(client.addr),
                        ttl: answer.ttl,
                        seen_ts_nanos: ts_nanos,
                        dns_uid: Some(client.uid.to_string()),
                    });
                    sets.last_mut().expect("just pushed")
                }
            };
            set.ttl = set.ttl.min(answer.ttl);
            if set.addrs.len() < ADDRS_PER_ANSWER && !set.addrs.contains(&addr) {
                set.addrs.push(addr);
            }
        }
        for set in sets {
            self.remember_answer(set);
        }
    }

    /// Adds one address binding, replacing the same client's older answer for the same query.
    fn bind(
        &mut self,
        addr: IpAddr,
        query: &str,
        chain: Vec<String>,
        ttl: u32,
        ts_nanos: i64,
        client: DnsClient<'_>,
    ) {
        if self.dns.len() >= MAX_ADDRESSES && !self.dns.contains_key(&addr) {
            self.dns.clear();
            self.resets += 1;
        }
        let bindings = self.dns.entry(addr).or_default();
        bindings
            .retain(|b| !(b.query.eq_ignore_ascii_case(query) && b.client == Some(client.addr)));
        bindings.push(DnsBinding {
            query: query.to_string(),
            chain,
            ttl,
            seen_ts_nanos: ts_nanos,
            client: Some(client.addr),
            dns_uid: Some(client.uid.to_string()),
        });
        if bindings.len() > BINDINGS_PER_ADDRESS {
            bindings.remove(0);
        }
    }

    /// Keeps one answer set for its name, first noting any other client's set it contradicts:
    /// disjoint (same address family) and each inside the other's window.
    fn remember_answer(&mut self, set: AnswerSeen) {
        if self.answers.len() >= MAX_NAMES && !self.answers.contains_key(&set.name) {
            self.answers.clear();
            self.resets += 1;
        }
        let slack = self.answer_slack_nanos;
        let earlier = self.answers.entry(set.name.clone()).or_default();
        // Each inside the other's window: whichever came first, the later one falls in its window.
        let contradicted: Vec<AnswerSeen> = earlier
            .iter()
            .filter(|e| e.client != set.client && disjoint_same_family(&e.addrs, &set.addrs))
            .filter(|e| {
                window_holds(e.seen_ts_nanos, e.ttl, slack, set.seen_ts_nanos)
                    || window_holds(set.seen_ts_nanos, set.ttl, slack, e.seen_ts_nanos)
            })
            .cloned()
            .collect();
        earlier.push(set.clone());
        if earlier.len() > ANSWERS_PER_NAME {
            earlier.remove(0);
        }
        for first in contradicted {
            if self.conflicts.len() >= MAX_NAMES && !self.conflicts.contains_key(&set.name) {
                self.conflicts.clear();
                self.resets += 1;
            }
            let kept = self.conflicts.entry(set.name.clone()).or_default();
            if kept.len() < CONFLICTS_PER_NAME {
                let (first, second) = if first.seen_ts_nanos <= set.seen_ts_nanos {
                    (first, set.clone())
                } else {
                    (set.clone(), first)
                };
                kept.push(AnswerConflict {
                    name: set.name.clone(),
                    first,
                    second,
                });
            } else {
                self.conflicts_omitted += 1;
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
            .map(binding_evidence)
            .collect()
    }

    /// Operator evidence for `addr`, if the policy maps it.
    pub fn operator_evidence(&self, addr: IpAddr) -> Option<NameEvidence> {
        self.operator
            .get(&addr)
            .map(|name| flow_evidence(NameSource::Operator, name))
    }

    /// Names a flow: chooses the name from the strongest evidence, grades it against the DNS
    /// answers in its window ([`Strength`]) and attaches the DNS facts that contradict it.
    pub fn name_flow(&self, facts: FlowFacts) -> Option<FlowName> {
        let (strength, mut evidence) = self.grade(&facts)?;
        evidence.extend(self.operator_evidence(facts.addr));
        let mut name = choose(evidence, facts.ech)?;
        name.strength = strength;
        // Only a weak name is explained by an expired answer; a confirmed tunnel's deciding
        // answer may even come after the flow began.
        let weak = matches!(strength, Strength::Claimed | Strength::Inferred);
        let dns = name
            .evidence
            .iter()
            .find(|e| e.source == NameSource::DnsAnswer);
        if let Some(dns) = dns.filter(|_| weak) {
            if let (Some(ttl), Some(seen)) = (dns.ttl, dns.seen_ts_nanos) {
                if !self.in_window(seen, ttl, facts.start_nanos) {
                    name.caveats.push(format!(
                        "the DNS answer for {} had expired (TTL {ttl} s, plus the slack) when the flow began",
                        dns.name
                    ));
                }
            }
        }
        self.attach_contradictions(&mut name, &facts);
        Some(name)
    }

    /// The strength of a flow's name and the evidence it rests on (the deciding DNS answer first
    /// among DNS evidence). `None` when nothing names the flow.
    fn grade(&self, facts: &FlowFacts) -> Option<(Strength, Vec<NameEvidence>)> {
        let mut carried = facts.carried.clone();
        carried.sort_by_key(|e| e.source);
        let in_window = |e: &&NameEvidence| matches!((e.ttl, e.seen_ts_nanos), (Some(ttl), Some(seen)) if self.in_window(seen, ttl, facts.start_nanos));
        let same_client = |e: &&NameEvidence| e.client == Some(facts.client);
        if let Some(connect) = carried.iter().find(|e| e.source == NameSource::HttpConnect) {
            let (strength, answer) = self.grade_tunnel(facts, &host_of(&connect.name));
            // The proxy's own name for its address is no rival to the target: it is shown with
            // the tunnel caveat instead (`dns_names_for_address`).
            carried.extend(answer);
            return Some((strength, carried));
        }
        let Some(claim) = carried.first() else {
            // Nothing carried: the newest answer to this client in the window, else any answer.
            let pick = facts
                .dns
                .iter()
                .find(|e| in_window(e) && same_client(e))
                .or_else(|| facts.dns.first());
            let Some(pick) = pick else {
                return self
                    .operator
                    .contains_key(&facts.addr)
                    .then(|| (Strength::Operator, Vec::new()));
            };
            let strength = if in_window(&pick) && same_client(&pick) {
                Strength::Resolved
            } else {
                Strength::Inferred
            };
            return Some((strength, vec![pick.clone()]));
        };
        let wanted = host_of(&claim.name);
        let names_it = |e: &&NameEvidence| {
            host_of(&e.name) == wanted || e.cname_chain.iter().any(|c| canonical(c) == wanted)
        };
        let self_named = matches!(claim.source, NameSource::TlsSni | NameSource::HttpConnect);
        let mine = facts
            .dns
            .iter()
            .find(|e| names_it(e) && in_window(e) && same_client(e));
        let theirs = facts.dns.iter().find(|e| names_it(e) && in_window(e));
        let (strength, deciding) = match (self_named, mine, theirs) {
            (true, Some(e), _) | (true, None, Some(e)) => (Strength::Confirmed, Some(e)),
            (false, Some(e), _) => (Strength::Resolved, Some(e)),
            (false, None, Some(e)) => (Strength::Inferred, Some(e)),
            (_, None, None) => (Strength::Claimed, facts.dns.first()),
        };
        carried.extend(deciding.cloned());
        Some((strength, carried))
    }

    /// A CONNECT tunnel goes to the forward proxy's address by design, so its target name cannot
    /// be tied to that address; it is confirmed when the proxy itself (the flow's responder) got
    /// a DNS answer for the target in the window or while the tunnel was open (a proxy resolves
    /// the target after the CONNECT arrives), and claimed otherwise.
    fn grade_tunnel(&self, facts: &FlowFacts, target: &str) -> (Strength, Option<NameEvidence>) {
        let answer = self
            .answers
            .get(target)
            .into_iter()
            .flatten()
            .rev()
            .find(|a| {
                a.client == Some(facts.addr)
                    && (self.in_window(a.seen_ts_nanos, a.ttl, facts.start_nanos)
                        || (facts.start_nanos..=facts.end_nanos).contains(&a.seen_ts_nanos))
            });
        match answer {
            Some(a) => {
                let mut e = flow_evidence(NameSource::DnsAnswer, &a.name);
                e.query = Some(a.name.clone());
                e.ttl = Some(a.ttl);
                e.seen_ts_nanos = Some(a.seen_ts_nanos);
                e.client = a.client;
                e.dns_uid = a.dns_uid.clone();
                (Strength::Confirmed, Some(e))
            }
            None => (Strength::Claimed, None),
        }
    }

    /// Adds the DNS facts that speak against a name: the window's answers for the flow's own
    /// name when none gave its address, the other names its address goes by, and clients told
    /// disjoint answers for the name. Each list is capped at [`ANSWERS_SHOWN`], the rest counted.
    fn attach_contradictions(&self, name: &mut FlowName, facts: &FlowFacts) {
        let wanted = host_of(&name.name);
        let carried = name.source < NameSource::DnsAnswer;
        let tunnel = name
            .evidence
            .iter()
            .any(|e| e.source == NameSource::HttpConnect);
        // A tunnel's address is the proxy's: the target's answers never give it.
        if carried && !tunnel && name.strength != Strength::Confirmed {
            let window: Vec<&AnswerSeen> = self
                .answers
                .get(&wanted)
                .into_iter()
                .flatten()
                .filter(|a| self.in_window(a.seen_ts_nanos, a.ttl, facts.start_nanos))
                .collect();
            if !window.is_empty() && !window.iter().any(|a| a.addrs.contains(&facts.addr)) {
                name.dns_omitted += window.len().saturating_sub(ANSWERS_SHOWN) as u64;
                name.window_answers_for_name = window
                    .into_iter()
                    .rev()
                    .take(ANSWERS_SHOWN)
                    .cloned()
                    .collect();
                name.caveats.push(format!(
                    "{} names {wanted}, but the DNS answers for {wanted} in the window do not give {}",
                    name.source.words(),
                    facts.addr
                ));
            }
        }
        let mut others: Vec<NameEvidence> = Vec::new();
        for e in self.dns_evidence(facts.addr, i64::MAX) {
            let agrees =
                host_of(&e.name) == wanted || e.cname_chain.iter().any(|c| canonical(c) == wanted);
            if !agrees && !others.iter().any(|o| o.name.eq_ignore_ascii_case(&e.name)) {
                others.push(e);
            }
        }
        // Deepgram's own names first, so the cap never hides the one that matters (a hosted
        // transcription name on a licensing address) behind a CDN's many customers.
        others.sort_by_key(|e| !host_of(&e.name).ends_with("deepgram.com"));
        if !others.is_empty() {
            let listed: Vec<_> = others
                .iter()
                .take(ANSWERS_SHOWN)
                .map(|o| o.name.as_str())
                .collect();
            name.caveats.push(if tunnel {
                format!(
                    "an HTTP CONNECT tunnel to the proxy at {}, which the capture's DNS names {}",
                    facts.addr,
                    listed.join(", ")
                )
            } else {
                format!(
                    "the capture's DNS also gives {} to {} (a shared address: CDN or round robin)",
                    facts.addr,
                    listed.join(", ")
                )
            });
            name.dns_omitted += others.len().saturating_sub(ANSWERS_SHOWN) as u64;
            others.truncate(ANSWERS_SHOWN);
            name.dns_names_for_address = others;
        }
        if let Some(conflicts) = self.conflicts.get(&wanted) {
            name.dns_omitted += conflicts.len().saturating_sub(ANSWERS_SHOWN) as u64;
            name.answer_conflicts = conflicts.iter().take(ANSWERS_SHOWN).cloned().collect();
        }
    }
}

/// The question name an answer's owner name was reached from (walking CNAMEs backwards) and the
/// chain of aliases in between, question side first.
fn query_and_chain(msg: &DnsMessage, owner_name: &str) -> (String, Vec<String>) {
    let mut chain = Vec::new();
    let mut owner = owner_name.to_string();
    while chain.len() < MAX_CHAIN {
        let Some(alias) = msg.answers.iter().find(
            |a| matches!(&a.data, DnsData::Cname(target) if target.eq_ignore_ascii_case(&owner)),
        ) else {
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
    (query, chain)
}

fn binding_evidence(b: &DnsBinding) -> NameEvidence {
    NameEvidence {
        source: NameSource::DnsAnswer,
        name: b.query.clone(),
        query: Some(b.query.clone()),
        cname_chain: b.chain.clone(),
        ttl: Some(b.ttl),
        seen_ts_nanos: Some(b.seen_ts_nanos),
        client: b.client,
        dns_uid: b.dns_uid.clone(),
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
        client: None,
        dns_uid: None,
    }
}

/// Chooses a flow's name from its evidence and says how far to trust it. The strength is left
/// at its default: [`NameBook::name_flow`] grades it against the DNS answers.
///
/// `ech`: the ClientHello carried Encrypted Client Hello, so the SNI is only a public name.
pub fn choose(mut evidence: Vec<NameEvidence>, ech: bool) -> Option<FlowName> {
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
    let best_name = host_of(&best.name);
    for other in &evidence[1..] {
        let agrees = host_of(&other.name) == best_name
            || other.cname_chain.iter().any(|c| canonical(c) == best_name);
        if !agrees && other.source != NameSource::Operator {
            caveats.push(format!(
                "{} says {} but {} says {}",
                best.source.words(),
                best.name,
                other.source.words(),
                other.name
            ));
            confidence = confidence.max(Confidence::Medium);
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
        strength: Strength::default(),
        evidence,
        caveats,
        window_answers_for_name: Vec::new(),
        dns_names_for_address: Vec::new(),
        answer_conflicts: Vec::new(),
        dns_omitted: 0,
    })
}

impl NameSource {
    /// The source as prose ("TLS SNI", "a DNS answer").
    pub fn words(self) -> &'static str {
        match self {
            NameSource::TlsSni => "TLS SNI",
            NameSource::HttpConnect => "HTTP CONNECT",
            NameSource::HttpHost => "HTTP Host",
            NameSource::DnsAnswer => "a DNS answer",
            NameSource::Operator => "the operator mapping",
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::inspect::dns::{DnsAnswer, DnsQuestion};

    const LICENSE: &str = "license.deepgram.com";
    const T: i64 = 1_700_000_000 * NANOS;

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    fn response() -> DnsMessage {
        DnsMessage {
            id: 1,
            response: true,
            opcode: 0,
            rcode: 0,
            truncated: false,
            questions: vec![DnsQuestion {
                name: LICENSE.into(),
                qtype: 1,
            }],
            answers: vec![
                DnsAnswer {
                    name: LICENSE.into(),
                    rtype: 5,
                    ttl: 60,
                    data: DnsData::Cname("edge.example.net".into()),
                },
                DnsAnswer {
                    name: "edge.example.net".into(),
                    rtype: 1,
                    ttl: 30,
                    data: DnsData::Addr(ip("203.0.113.10")),
                },
            ],
        }
    }

    /// A response for `name` giving `addrs` with `ttl`, no CNAMEs.
    fn answer(name: &str, addrs: &[&str], ttl: u32) -> DnsMessage {
        DnsMessage {
            questions: vec![DnsQuestion {
                name: name.into(),
                qtype: 1,
            }],
            answers: addrs
                .iter()
                .map(|a| DnsAnswer {
                    name: name.into(),
                    rtype: 1,
                    ttl,
                    data: DnsData::Addr(ip(a)),
                })
                .collect(),
            ..response()
        }
    }

    fn client(addr: &str) -> DnsClient<'static> {
        DnsClient {
            addr: ip(addr),
            uid: "CDnsFlow",
        }
    }

    /// A book that saw `msg` answered to `to` at `seen`.
    fn book_with(msg: &DnsMessage, to: &str, seen: i64) -> NameBook {
        let mut book = NameBook::default();
        book.observe_dns(msg, seen, client(to));
        book
    }

    /// Names a flow from 192.0.2.10 to 203.0.113.10 starting at `start` that carried `carried`.
    fn name(book: &NameBook, carried: Vec<NameEvidence>, start: i64) -> Option<FlowName> {
        book.name_flow(FlowFacts {
            client: ip("192.0.2.10"),
            addr: ip("203.0.113.10"),
            start_nanos: start,
            end_nanos: start + NANOS,
            carried,
            dns: book.dns_evidence(ip("203.0.113.10"), start),
            ech: false,
        })
    }

    fn sni(n: &str) -> Vec<NameEvidence> {
        vec![flow_evidence(NameSource::TlsSni, n)]
    }

    #[test]
    fn dns_answer_binds_address_to_question_through_cname_chain() {
        let book = book_with(&response(), "192.0.2.10", 1_000);
        let ev = book.dns_evidence(ip("203.0.113.10"), 2_000);
        assert_eq!(ev.len(), 1);
        assert_eq!(ev[0].name, LICENSE);
        assert_eq!(ev[0].cname_chain, vec!["edge.example.net".to_string()]);
        assert_eq!(ev[0].ttl, Some(30));
        assert_eq!(ev[0].client, Some(ip("192.0.2.10")));
        assert_eq!(ev[0].dns_uid.as_deref(), Some("CDnsFlow"));
        // An answer seen after the flow started is not evidence for it.
        assert!(book.dns_evidence(ip("203.0.113.10"), 999).is_empty());
    }

    #[test]
    fn sni_with_an_answer_in_the_window_is_confirmed_through_the_cname_chain() {
        let book = book_with(&response(), "192.0.2.10", T);
        let n = name(&book, sni(LICENSE), T + NANOS).unwrap();
        assert_eq!(n.strength, Strength::Confirmed);
        assert!(n.caveats.is_empty(), "{:?}", n.caveats);
        // The SNI may also be the CNAME target the address was reached through.
        let n = name(&book, sni("edge.example.net"), T + NANOS).unwrap();
        assert_eq!(n.strength, Strength::Confirmed);
        // An answer to another client confirms the name too.
        let book = book_with(&response(), "192.0.2.99", T);
        assert_eq!(
            name(&book, sni(LICENSE), T).unwrap().strength,
            Strength::Confirmed
        );
    }

    #[test]
    fn a_connect_tunnel_is_confirmed_by_the_proxys_own_answer_for_the_target() {
        // The flow's responder (203.0.113.10 in these tests) is the forward proxy.
        let connect = || {
            vec![flow_evidence(
                NameSource::HttpConnect,
                "license.deepgram.com:443",
            )]
        };
        let msg = answer(LICENSE, &["198.51.100.7"], 60);
        // The proxy resolves the target once the CONNECT arrives: during the tunnel counts.
        let proxy = book_with(&msg, "203.0.113.10", T + NANOS / 2);
        let n = name(&proxy, connect(), T).unwrap();
        assert_eq!(n.strength, Strength::Confirmed);
        // The tunnel goes to the proxy's address by design: no contradiction with the answers.
        assert!(n.window_answers_for_name.is_empty());
        // An answer to the client itself does not say where the proxy went.
        let client_only = book_with(&msg, "192.0.2.10", T);
        let n = name(&client_only, connect(), T + NANOS).unwrap();
        assert_eq!(n.strength, Strength::Claimed);
        assert!(n.window_answers_for_name.is_empty());
    }

    #[test]
    fn window_edges_answer_time_and_ttl_plus_slack_are_inside() {
        let book = book_with(&answer(LICENSE, &["203.0.113.10"], 60), "192.0.2.10", T);
        let last = T + 60 * NANOS + DEFAULT_ANSWER_SLACK_SECS as i64 * NANOS;
        // Answer at exactly the flow start: inside.
        assert_eq!(
            name(&book, sni(LICENSE), T).unwrap().strength,
            Strength::Confirmed
        );
        // Flow start at exactly answer + TTL + slack: inside; one nanosecond later: outside.
        assert_eq!(
            name(&book, sni(LICENSE), last).unwrap().strength,
            Strength::Confirmed
        );
        let late = name(&book, sni(LICENSE), last + 1).unwrap();
        assert_eq!(late.strength, Strength::Claimed);
        assert!(
            late.caveats.iter().any(|c| c.contains("expired")),
            "{:?}",
            late.caveats
        );
        // A flow that began before the answer: the answer is no evidence for it.
        assert_eq!(
            name(&book, sni(LICENSE), T - 1).unwrap().strength,
            Strength::Claimed
        );
        // The slack comes from the policy.
        let mut strict = book_with(&answer(LICENSE, &["203.0.113.10"], 60), "192.0.2.10", T);
        strict.set_answer_slack_secs(0);
        assert!(strict.in_window(T, 60, T + 60 * NANOS));
        assert!(!strict.in_window(T, 60, T + 60 * NANOS + 1));
    }

    #[test]
    fn sni_alone_is_claimed() {
        let book = NameBook::default();
        let n = name(&book, sni(LICENSE), T).unwrap();
        assert_eq!(n.strength, Strength::Claimed);
        assert!(n.window_answers_for_name.is_empty());
        // Host alone too.
        let host = vec![flow_evidence(NameSource::HttpHost, LICENSE)];
        assert_eq!(name(&book, host, T).unwrap().strength, Strength::Claimed);
    }

    #[test]
    fn no_sni_with_an_answer_to_the_same_client_is_resolved_another_clients_is_inferred() {
        let msg = answer(LICENSE, &["203.0.113.10"], 60);
        let mine = book_with(&msg, "192.0.2.10", T);
        let n = name(&mine, Vec::new(), T + NANOS).unwrap();
        assert_eq!(
            (n.source, n.strength),
            (NameSource::DnsAnswer, Strength::Resolved)
        );
        assert_eq!(n.name, LICENSE);
        let host = vec![flow_evidence(NameSource::HttpHost, LICENSE)];
        assert_eq!(
            name(&mine, host.clone(), T).unwrap().strength,
            Strength::Resolved
        );
        let theirs = book_with(&msg, "192.0.2.99", T);
        assert_eq!(
            name(&theirs, Vec::new(), T).unwrap().strength,
            Strength::Inferred
        );
        assert_eq!(name(&theirs, host, T).unwrap().strength, Strength::Inferred);
        // The client's own answer, but past its window: inferred, with a caveat.
        let stale = name(&mine, Vec::new(), T + 121 * NANOS).unwrap();
        assert_eq!(stale.strength, Strength::Inferred);
        assert!(stale.caveats.iter().any(|c| c.contains("expired")));
    }

    #[test]
    fn operator_mapping_alone_is_operator_strength() {
        let book =
            NameBook::with_operator_names(HashMap::from([(ip("203.0.113.10"), LICENSE.into())]));
        let n = name(&book, Vec::new(), T).unwrap();
        assert_eq!(
            (n.source, n.strength),
            (NameSource::Operator, Strength::Operator)
        );
        // Stronger evidence wins over the operator's word.
        assert_eq!(
            name(&book, sni(LICENSE), T).unwrap().strength,
            Strength::Claimed
        );
        assert!(name(&NameBook::default(), Vec::new(), T).is_none());
    }

    #[test]
    fn sni_to_an_address_the_windows_answers_did_not_give_lists_those_answers() {
        let book = book_with(&answer(LICENSE, &["198.51.100.7"], 60), "192.0.2.10", T);
        let n = name(&book, sni(LICENSE), T + NANOS).unwrap();
        assert_eq!(n.strength, Strength::Claimed);
        assert_eq!(n.window_answers_for_name.len(), 1);
        assert_eq!(n.window_answers_for_name[0].addrs, [ip("198.51.100.7")]);
        assert_eq!(n.window_answers_for_name[0].seen_ts_nanos, T);
        // Outside the answer's window there is nothing to contradict.
        let late = name(&book, sni(LICENSE), T + 200 * NANOS).unwrap();
        assert!(late.window_answers_for_name.is_empty());
    }

    #[test]
    fn other_names_of_the_address_are_listed_and_a_caveat() {
        let mut book = book_with(&answer(LICENSE, &["203.0.113.10"], 60), "192.0.2.10", T);
        let cdn = answer("cdn.example.net", &["203.0.113.10"], 60);
        book.observe_dns(&cdn, T, client("192.0.2.10"));
        let n = name(&book, sni(LICENSE), T + NANOS).unwrap();
        assert_eq!(n.strength, Strength::Confirmed);
        let others: Vec<_> = n
            .dns_names_for_address
            .iter()
            .map(|e| e.name.as_str())
            .collect();
        assert_eq!(others, ["cdn.example.net"]);
        assert!(n.caveats.iter().any(|c| c.contains("shared address")));
        // Past the cap, Deepgram names are kept first and the rest counted.
        for i in 0..6 {
            let name = format!("customer{i}.cdn.example.net");
            let msg = answer(&name, &["203.0.113.10"], 60);
            book.observe_dns(&msg, T, client("192.0.2.10"));
        }
        let hosted = answer("api.deepgram.com", &["203.0.113.10"], 60);
        book.observe_dns(&hosted, T, client("192.0.2.11"));
        let n = name(&book, sni(LICENSE), T + NANOS).unwrap();
        assert_eq!(n.dns_names_for_address.len(), ANSWERS_SHOWN);
        assert_eq!(n.dns_names_for_address[0].name, "api.deepgram.com");
        assert_eq!(n.dns_omitted, 4);
    }

    #[test]
    fn disjoint_answers_to_two_clients_in_each_others_window_conflict() {
        let mut book = book_with(&answer(LICENSE, &["203.0.113.10"], 60), "192.0.2.10", T);
        let other = answer(LICENSE, &["198.51.100.7"], 60);
        book.observe_dns(&other, T + 30 * NANOS, client("192.0.2.11"));
        // The same client told something else, or an AAAA answer: no new conflict.
        let again = answer(LICENSE, &["198.51.100.8"], 60);
        book.observe_dns(&again, T + 31 * NANOS, client("192.0.2.11"));
        let v6 = answer(LICENSE, &["2001:db8::1"], 60);
        book.observe_dns(&v6, T + 32 * NANOS, client("192.0.2.12"));
        let n = name(&book, sni(LICENSE), T + NANOS).unwrap();
        // 192.0.2.11's second answer conflicts with 192.0.2.10's too.
        assert_eq!(n.answer_conflicts.len(), 2, "{:?}", n.answer_conflicts);
        let k = &n.answer_conflicts[0];
        assert_eq!(
            (k.first.seen_ts_nanos, k.second.seen_ts_nanos),
            (T, T + 30 * NANOS)
        );
        assert_eq!(k.first.client, Some(ip("192.0.2.10")));
        assert_eq!(k.second.addrs, [ip("198.51.100.7")]);
        // Past each other's window: no conflict.
        let mut far = book_with(&answer(LICENSE, &["203.0.113.10"], 60), "192.0.2.10", T);
        far.observe_dns(&other, T + 121 * NANOS, client("192.0.2.11"));
        assert!(far.conflicts.is_empty());
    }

    #[test]
    fn sni_wins_and_a_disagreeing_dns_answer_is_a_caveat() {
        let sni = flow_evidence(NameSource::TlsSni, LICENSE);
        let mut dns = flow_evidence(NameSource::DnsAnswer, "cdn.example.net");
        dns.ttl = Some(300);
        dns.seen_ts_nanos = Some(0);
        let name = choose(vec![dns, sni], false).unwrap();
        assert_eq!(name.name, LICENSE);
        assert_eq!(name.source, NameSource::TlsSni);
        assert_eq!(name.confidence, Confidence::Medium);
        assert_eq!(name.caveats.len(), 1);
    }

    #[test]
    fn ech_makes_a_name_low_confidence() {
        let sni = flow_evidence(NameSource::TlsSni, "cloudflare-ech.com");
        let name = choose(vec![sni], true).unwrap();
        assert_eq!(name.confidence, Confidence::Low);
    }

    #[test]
    fn connect_authority_matches_sni_despite_port() {
        let connect = flow_evidence(NameSource::HttpConnect, "license.deepgram.com:443");
        let sni = flow_evidence(NameSource::TlsSni, LICENSE);
        let name = choose(vec![connect, sni], false).unwrap();
        assert!(name.caveats.is_empty());
        assert_eq!(name.confidence, Confidence::High);
    }
}
