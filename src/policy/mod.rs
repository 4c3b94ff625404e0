//! The audit policy: what a self-hosted Deepgram deployment's traffic may look like.
//!
//! A policy is a versioned TOML file (`schema_version = 1`). The built-in default,
//! [`DEFAULT_POLICY_TOML`], restates Deepgram's public self-hosted documentation as limits
//! (licensing to `license.deepgram.com:443`, every minute, short-lived, a few KB a minute), so an
//! audit needs no flags. Every key of a user file is optional and falls back to that default;
//! unknown keys are errors, because a typo that silently disabled a check would make a compliant
//! verdict worthless.
//!
//! Invariants of a [`Policy`] once built: every address, CIDR block, port, name pattern and number
//! has been validated, and every error found while building it names the file, the 1-based line
//! and column, the key (`licensing.servers[0]`) and what to write instead. Parsing happens once;
//! the predicates (`is_internal`, `egress_allowed`, ...) only compare.
//!
//! Names are matched case-insensitively with a trailing dot ignored; in a [`NamePattern`] a `*`
//! stands for exactly one DNS label.
//!
//! The module is split by idea, and everything public is re-exported here so callers name only
//! `crate::policy::...`:
//! - this file: the [`Policy`] model, its sections and the predicates the audit asks;
//! - `patterns`: the value types (name patterns, servers, destinations, resolvers) with their
//!   parsing, matching, display and serde;
//! - `load`: the raw TOML layer, loading and validation, [`PolicyError`] with its
//!   `file:line:column` messages, and [`DEFAULT_POLICY_TOML`], the only place defaults are
//!   written (parsed once; keys a user file leaves out take their values from it).

use std::collections::BTreeMap;
use std::net::{IpAddr, SocketAddr};

use ipnet::IpNet;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

mod load;
mod patterns;

pub use load::{PolicyError, DEFAULT_POLICY_TOML};
pub use patterns::{
    Destination, Host, NamePattern, ParseError, Resolver, ServerEndpoint, Transport,
};

/// The policy format version this build reads and writes.
pub const SCHEMA_VERSION: u32 = 1;

/// A validated audit policy. Build it with [`Policy::default_policy`], [`Policy::from_toml`] or
/// [`Policy::load`]; serialise it (JSON, TOML) to record exactly what an audit checked against.
///
/// `Deserialize` reads that serialised form back (an audit JSON being re-rendered or merged): it
/// checks each address, pattern and destination but not the cross-key rules, and reports no
/// line and column; files written by people go through [`Policy::from_toml`].
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Policy {
    /// Format version; always [`SCHEMA_VERSION`] once validated.
    pub schema_version: u32,
    /// What counts as inside the deployment's network.
    pub network: Network,
    /// Licensing servers, proxies and the budgets licensing traffic must stay within.
    pub licensing: Licensing,
    /// Deepgram's hosted transcription names, which must never be reached.
    pub transcription: Transcription,
    /// Other destinations the deployment may reach.
    pub egress: Egress,
    /// Who may reach the self-hosted API.
    pub ingress: Ingress,
    /// Operator mappings from address to name (the weakest name evidence).
    pub names: BTreeMap<IpAddr, String>,
    /// Approved resolvers and DNS tunnelling thresholds.
    pub dns: DnsPolicy,
    /// Flow table timeouts and memory cap.
    pub flows: FlowsPolicy,
    /// Audio-shape thresholds and the codec rates of the "speech per minute" bound.
    pub audio: AudioPolicy,
    /// How complete a capture must be to give a verdict.
    pub capture: CapturePolicy,
}

/// `[network]`: the address blocks inside the deployment's network.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Network {
    /// Traffic leaving these blocks is egress.
    pub internal: Vec<IpNet>,
    /// Multicast scoped to the site or organisation (IPv4 239.0.0.0/8, IPv6 scopes 3 to 8) never
    /// leaves it, as link-scoped traffic never leaves the link (see `audit::scope`).
    #[serde(default = "yes")]
    pub site_scope_is_local: bool,
}

fn yes() -> bool {
    true
}

/// `[licensing]`: where licensing goes and how much, how long and how often it may talk.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Licensing {
    /// Licensing servers by name and port (`license.deepgram.com:443`).
    pub servers: Vec<ServerEndpoint>,
    /// License Proxy endpoints inside the network; with any, only they may reach `servers`.
    pub proxies: Vec<SocketAddr>,
    /// HTTP forward proxies licensing may reach `servers` through with CONNECT.
    pub forward_proxies: Vec<SocketAddr>,
    /// Budget per source host and minute, in client-to-server IP bytes.
    pub max_egress_bytes_per_minute: u64,
    /// Longest a licensing connection may stay open (fractions allowed: `1.5`).
    pub max_connection_seconds: f64,
    /// Expected interval between check-ins.
    pub cadence_seconds: u64,
    /// Drift from `cadence_seconds` before a gap is a finding; always below `cadence_seconds`.
    pub cadence_tolerance_seconds: u64,
    /// Whether one kept-alive licensing connection is acceptable.
    pub allow_held_connection: bool,
}

/// `[transcription]`: hosted transcription names.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Transcription {
    /// Patterns of Deepgram's hosted API names.
    pub hosted: Vec<NamePattern>,
}

/// `[egress]`: explicitly allowed destinations besides licensing.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Egress {
    /// Allowed destinations; see [`Destination`].
    pub allow: Vec<Destination>,
}

/// `[ingress]`: who may reach the self-hosted API and how.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Ingress {
    /// Ports the self-hosted API listens on.
    pub api_ports: Vec<u16>,
    /// Addresses outside `internal` allowed to reach the API ports (gateways, reverse proxies).
    pub gateways: Vec<IpNet>,
    /// Whether connections to the API ports must be TLS.
    pub require_tls: bool,
}

/// `[dns]`: approved resolvers and tunnelling thresholds.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DnsPolicy {
    /// Approved resolvers; empty means any internal address.
    pub resolvers: Vec<Resolver>,
    /// Queries per minute from one source to one registered domain.
    pub max_queries_per_minute: u64,
    /// Longest DNS label, in characters.
    pub max_label_length: usize,
    /// Highest Shannon entropy of a label, in bits per character.
    pub max_label_entropy: f64,
    /// Labels shorter than this are not scored for entropy (short labels are noisy).
    pub entropy_min_label_length: usize,
    /// TXT queries per minute from one source to one registered domain.
    pub max_txt_queries_per_minute: u64,
    /// How long past its TTL a DNS answer still names a flow, in seconds: an answer is evidence
    /// for a flow starting between the answer and answer + TTL + this slack.
    #[serde(default = "default_answer_slack_seconds")]
    pub answer_slack_seconds: u64,
}

fn default_answer_slack_seconds() -> u64 {
    crate::names::DEFAULT_ANSWER_SLACK_SECS
}

/// `[flows]`: flow table timeouts and memory cap.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FlowsPolicy {
    /// Idle timeout of an established TCP connection.
    pub tcp_timeout_seconds: u64,
    /// Idle timeout of a UDP flow.
    pub udp_timeout_seconds: u64,
    /// Idle timeout of an ICMP flow.
    pub icmp_timeout_seconds: u64,
    /// Most flows held at once before the oldest idle ones are evicted.
    pub max_flows: usize,
}

/// `[audio]`: what audio-shaped egress is.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AudioPolicy {
    /// Codec rates (kbit/s) for the "seconds of speech per minute" bound.
    pub codec_kbps: Vec<f64>,
    /// Per-flow egress bytes per minute above which a minute counts as a sustained upload.
    pub sustained_upload_bytes_per_minute: u64,
    /// Consecutive sustained minutes that make a flow audio-shaped.
    pub sustained_minutes: u64,
}

/// `[capture]`: how complete a capture must be.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CapturePolicy {
    /// Largest dropped/seen packet ratio (0.0 to 1.0) that still allows a verdict.
    pub max_drop_ratio: f64,
}

// ---------------------------------------------------------------------------------------------
// Serialised forms and predicates. Loading (`default_policy`, `from_toml`, `load`) is in load.rs.

impl Policy {
    /// The policy as TOML with every key spelled out (no comments); it parses back to an equal
    /// policy. For showing the effective policy after defaults were filled in.
    pub fn to_toml(&self) -> String {
        // Every field serialises to a TOML-representable value (strings, numbers, arrays,
        // tables with string keys), so this cannot fail.
        toml::to_string(self).unwrap_or_default()
    }

    /// Lowercase hex SHA-256 of the canonical JSON serialisation. Stable: fields serialise in
    /// declaration order, maps sorted, values normalised at parse time, so equal policies hash
    /// equal however their files were written (comments, order, spelling of defaults).
    pub fn sha256(&self) -> String {
        let json = serde_json::to_vec(self).unwrap_or_default();
        hex::encode(Sha256::digest(&json))
    }

    /// Whether `ip` is inside `[network] internal`.
    pub fn is_internal(&self, ip: IpAddr) -> bool {
        let ip = unmap(ip);
        self.network.internal.iter().any(|net| net.contains(&ip))
    }

    /// Whether `name` is a licensing server name (host part of `[licensing] servers`).
    pub fn is_licensing_name(&self, name: &str) -> bool {
        self.licensing.servers.iter().any(|s| s.host.matches(name))
    }

    /// The licensing port of `name` (443 for `license.deepgram.com`), if it is a licensing server.
    pub fn licensing_port(&self, name: &str) -> Option<u16> {
        self.licensing
            .servers
            .iter()
            .find(|s| s.host.matches(name))
            .map(|s| s.port)
    }

    /// Whether `name:port` is a licensing server on its licensing port.
    pub fn is_licensing_endpoint(&self, name: &str, port: u16) -> bool {
        self.licensing
            .servers
            .iter()
            .any(|s| s.port == port && s.host.matches(name))
    }

    /// Whether `name` is a hosted transcription name (`[transcription] hosted`).
    pub fn is_hosted_transcription(&self, name: &str) -> bool {
        self.transcription.hosted.iter().any(|p| p.matches(name))
    }

    /// Whether `name` belongs to Deepgram: `deepgram.com` or under it, or any licensing or hosted
    /// transcription name of the policy.
    pub fn is_deepgram_name(&self, name: &str) -> bool {
        let bare = name.strip_suffix('.').unwrap_or(name);
        let under = bare.len() > ".deepgram.com".len()
            && bare
                .get(bare.len() - ".deepgram.com".len()..)
                .is_some_and(|tail| tail.eq_ignore_ascii_case(".deepgram.com"));
        bare.eq_ignore_ascii_case("deepgram.com")
            || under
            || self.is_licensing_name(name)
            || self.is_hosted_transcription(name)
    }

    /// Whether `ip:port` is a License Proxy endpoint.
    pub fn license_proxy_at(&self, ip: IpAddr, port: u16) -> bool {
        socket_listed(&self.licensing.proxies, ip, port)
    }

    /// Whether `ip:port` is a forward (CONNECT) proxy endpoint.
    pub fn forward_proxy_at(&self, ip: IpAddr, port: u16) -> bool {
        socket_listed(&self.licensing.forward_proxies, ip, port)
    }

    /// Whether `ip` is a License Proxy on any port: a flow *from* the proxy is the proxy's own
    /// upstream licensing, whichever port it answers on.
    pub fn license_proxy_address(&self, ip: IpAddr) -> bool {
        let ip = unmap(ip);
        self.licensing.proxies.iter().any(|s| unmap(s.ip()) == ip)
    }

    /// Whether `ip` is a forward proxy on any port (a flow from it is the proxy's upstream leg).
    pub fn forward_proxy_at_address(&self, ip: IpAddr) -> bool {
        let ip = unmap(ip);
        self.licensing
            .forward_proxies
            .iter()
            .any(|s| unmap(s.ip()) == ip)
    }

    /// The flow table settings of `[flows]`; settings the policy does not cover keep the flow
    /// table's defaults.
    pub fn flow_config(&self) -> crate::flow::FlowConfig {
        crate::flow::FlowConfig {
            tcp_inactivity_secs: self.flows.tcp_timeout_seconds,
            udp_inactivity_secs: self.flows.udp_timeout_seconds,
            icmp_inactivity_secs: self.flows.icmp_timeout_seconds,
            max_flows: self.flows.max_flows,
            dns_answer_slack_secs: self.dns.answer_slack_seconds,
            ..crate::flow::FlowConfig::default()
        }
    }

    /// Whether `[egress] allow` lets a flow reach `ip:port` over UDP (`udp`) or TCP, given the
    /// destination's name when known. Licensing is judged separately and is not implied here.
    pub fn egress_allowed(&self, name: Option<&str>, ip: IpAddr, port: u16, udp: bool) -> bool {
        let ip = unmap(ip);
        self.egress
            .allow
            .iter()
            .any(|d| d.matches(name, ip, port, udp))
    }

    /// Whether `ip` is an ingress gateway allowed to reach the API from outside `internal`.
    pub fn is_gateway(&self, ip: IpAddr) -> bool {
        let ip = unmap(ip);
        self.ingress.gateways.iter().any(|net| net.contains(&ip))
    }

    /// Whether `ip:port` (named `name`, if the capture named it) is an approved DNS resolver.
    /// With `[dns] resolvers` set, that list rules. Without it, any internal address is approved,
    /// and so is any destination `[egress] allow` admits: allowing a resolver's egress and then
    /// calling its use unapproved would make one key contradict the other.
    pub fn approved_resolver(&self, name: Option<&str>, ip: IpAddr, port: u16, udp: bool) -> bool {
        let ip = unmap(ip);
        if self.dns.resolvers.is_empty() {
            return self.is_internal(ip) || self.egress_allowed(name, ip, port, udp);
        }
        self.dns
            .resolvers
            .iter()
            .any(|r| r.ip == ip && r.port.is_none_or(|p| p == port))
    }

    /// The operator's name for `ip` (`[names]`), if any.
    pub fn name_for(&self, ip: IpAddr) -> Option<&str> {
        self.names.get(&unmap(ip)).map(String::as_str)
    }
}

/// IPv4-mapped IPv6 addresses (`::ffff:10.0.0.1`, seen on dual-stack sockets) are judged as the
/// IPv4 address they carry, so one policy entry covers both spellings.
fn unmap(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(IpAddr::V6(v6), IpAddr::V4),
        v4 => v4,
    }
}

fn socket_listed(list: &[SocketAddr], ip: IpAddr, port: u16) -> bool {
    let ip = unmap(ip);
    list.iter().any(|s| s.port() == port && unmap(s.ip()) == ip)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    fn parse(text: &str) -> Result<Policy, PolicyError> {
        Policy::from_toml(text, "policy.toml")
    }

    #[test]
    fn toml_round_trip_and_stable_hash() {
        let text = r#"
schema_version = 1
[licensing]
proxies = ["192.0.2.5:8443", "[fd00::5]:8443"]
[egress]
allow = ["hooks.example.com:443", "198.51.100.0/24:443/tcp", "[2001:db8::53]:53/udp", "10.9.9.9", "[2001:db8::/32]"]
[names]
"203.0.113.10" = "License.Deepgram.com."
[dns]
resolvers = ["10.0.0.53", "10.0.0.54:53", "[fd00::53]:53"]
"#;
        let p = parse(text).unwrap();
        let again = parse(&p.to_toml()).unwrap();
        assert_eq!(p, again);
        assert_eq!(p.sha256(), again.sha256());
        assert_eq!(p.sha256().len(), 64);
        assert_ne!(p.sha256(), Policy::default_policy().sha256());
        assert_eq!(p.name_for(ip("203.0.113.10")), Some("license.deepgram.com"));
        // The audit JSON carries the policy; reading it back gives the same policy and hash.
        let json: Policy = serde_json::from_str(&serde_json::to_string(&p).unwrap()).unwrap();
        assert_eq!(json, p);
        assert_eq!(json.sha256(), p.sha256());
    }

    #[test]
    fn policy_name_predicates() {
        let p = Policy::default_policy();
        assert!(p.is_licensing_name("license.deepgram.com"));
        assert!(p.is_licensing_name("LICENSE.deepgram.com."));
        assert!(!p.is_licensing_name("api.deepgram.com"));
        assert_eq!(p.licensing_port("license.deepgram.com"), Some(443));
        assert_eq!(p.licensing_port("example.com"), None);
        assert!(p.is_licensing_endpoint("license.deepgram.com", 443));
        assert!(!p.is_licensing_endpoint("license.deepgram.com", 80));
        for hosted in [
            "api.deepgram.com",
            "x.api.deepgram.com",
            "api.eu.deepgram.com",
        ] {
            assert!(p.is_hosted_transcription(hosted), "{hosted}");
        }
        assert!(!p.is_hosted_transcription("license.deepgram.com"));
        assert!(p.is_deepgram_name("deepgram.com"));
        assert!(p.is_deepgram_name("developers.Deepgram.com."));
        assert!(!p.is_deepgram_name("notdeepgram.com"));
        assert!(!p.is_deepgram_name("deepgram.com.evil.example"));
    }

    #[test]
    fn egress_allow_matching() {
        let p = parse(
            r#"schema_version = 1
[egress]
allow = ["hooks.example.com:443", "*.cdn.example.net", "198.51.100.0/24:443", "[2001:db8::53]:53/udp", "10.9.9.9:123/UDP", "[2001:db8:1::/48]:443/tcp"]
"#,
        )
        .unwrap();
        let a = |name: Option<&str>, addr: &str, port: u16, udp: bool| {
            p.egress_allowed(name, ip(addr), port, udp)
        };
        // By name: needs name evidence and the port.
        assert!(a(Some("hooks.example.com"), "203.0.113.1", 443, false));
        assert!(a(Some("HOOKS.example.com."), "203.0.113.1", 443, true));
        assert!(!a(Some("hooks.example.com"), "203.0.113.1", 80, false));
        assert!(!a(None, "203.0.113.1", 443, false));
        // Name without port: any port.
        assert!(a(Some("img.cdn.example.net"), "203.0.113.2", 8443, false));
        // CIDR.
        assert!(a(None, "198.51.100.77", 443, false));
        assert!(!a(None, "198.51.101.1", 443, false));
        // IPv6 in brackets, UDP only.
        assert!(a(None, "2001:db8::53", 53, true));
        assert!(!a(None, "2001:db8::53", 53, false));
        assert!(!a(None, "2001:db8::54", 53, true));
        // Transport suffix is case-insensitive; IPv4-mapped IPv6 is its IPv4 address.
        assert!(a(None, "::ffff:10.9.9.9", 123, true));
        assert!(a(None, "2001:db8:1:ff::1", 443, false));
        assert!(!a(None, "2001:db8:1:ff::1", 443, true));
        let shown: Vec<String> = p.egress.allow.iter().map(|d| d.to_string()).collect();
        assert_eq!(
            shown,
            [
                "hooks.example.com:443",
                "*.cdn.example.net",
                "198.51.100.0/24:443",
                "[2001:db8::53]:53/udp",
                "10.9.9.9:123/udp",
                "[2001:db8:1::/48]:443/tcp"
            ]
        );
    }

    #[test]
    fn addresses_proxies_gateways_resolvers() {
        let p = parse(
            r#"schema_version = 1
[licensing]
proxies = ["192.0.2.5:8443"]
forward_proxies = ["[2001:db8::8]:3128"]
[ingress]
gateways = ["203.0.113.7", "198.51.100.0/28"]
[dns]
resolvers = ["10.0.0.53", "[fd00::53]:5353"]
"#,
        )
        .unwrap();
        assert!(p.is_internal(ip("10.1.2.3")));
        assert!(p.is_internal(ip("fe80::1")));
        assert!(p.is_internal(ip("::ffff:192.168.1.1")));
        assert!(!p.is_internal(ip("8.8.8.8")));
        assert!(p.license_proxy_at(ip("192.0.2.5"), 8443));
        assert!(!p.license_proxy_at(ip("192.0.2.5"), 8089));
        assert!(p.forward_proxy_at(ip("2001:db8::8"), 3128));
        assert!(!p.forward_proxy_at(ip("192.0.2.5"), 3128));
        assert!(p.license_proxy_address(ip("192.0.2.5")));
        assert!(!p.license_proxy_address(ip("192.0.2.6")));
        assert!(p.forward_proxy_at_address(ip("2001:db8::8")));
        assert!(!p.forward_proxy_at_address(ip("192.0.2.5")));
        assert!(p.is_gateway(ip("203.0.113.7")));
        assert!(p.is_gateway(ip("198.51.100.15")));
        assert!(!p.is_gateway(ip("198.51.100.16")));
        assert!(p.approved_resolver(None, ip("10.0.0.53"), 53, true));
        assert!(p.approved_resolver(None, ip("10.0.0.53"), 853, false));
        assert!(p.approved_resolver(None, ip("fd00::53"), 5353, true));
        assert!(!p.approved_resolver(None, ip("fd00::53"), 53, true));
        assert!(!p.approved_resolver(None, ip("10.0.0.1"), 53, true));
        // Without resolvers, any internal address is approved.
        let d = Policy::default_policy();
        assert!(d.approved_resolver(None, ip("10.0.0.1"), 53, true));
        assert!(!d.approved_resolver(None, ip("8.8.8.8"), 53, true));
        // An external resolver that [egress] allow admits is approved while [dns] resolvers is
        // empty; once the list is set, it alone rules.
        let allowed = Policy::from_toml(
            "schema_version = 1\n[egress]\nallow = [\"203.0.113.53:53/udp\"]\n",
            "test",
        )
        .unwrap();
        assert!(allowed.approved_resolver(None, ip("203.0.113.53"), 53, true));
        assert!(!allowed.approved_resolver(None, ip("203.0.113.53"), 53, false));
        assert!(!allowed.approved_resolver(None, ip("203.0.113.54"), 53, true));
        let listed = Policy::from_toml(
            "schema_version = 1\n[egress]\nallow = [\"203.0.113.53:53/udp\"]\n[dns]\nresolvers = [\"10.0.0.53\"]\n",
            "test",
        )
        .unwrap();
        assert!(!listed.approved_resolver(None, ip("203.0.113.53"), 53, true));
    }

    #[test]
    fn mapped_ipv6_is_judged_as_its_ipv4_address() {
        assert_eq!(unmap(ip("::ffff:10.0.0.1")), ip("10.0.0.1"));
        assert_eq!(unmap(ip("2001:db8::1")), ip("2001:db8::1"));
        assert_eq!(unmap(ip("10.0.0.1")), ip("10.0.0.1"));
        let p = parse(
            r#"schema_version = 1
[licensing]
proxies = ["[::ffff:192.0.2.5]:8443"]
[egress]
allow = ["10.9.9.0/24:123/udp"]
[names]
"::ffff:203.0.113.10" = "license.deepgram.com"
"#,
        )
        .unwrap();
        // Either spelling, in the file or on the wire, finds the same entry.
        assert_eq!(p.name_for(ip("203.0.113.10")), Some("license.deepgram.com"));
        assert_eq!(
            p.name_for(ip("::ffff:203.0.113.10")),
            Some("license.deepgram.com")
        );
        assert!(p.license_proxy_at(ip("192.0.2.5"), 8443));
        assert!(p.license_proxy_address(ip("::ffff:192.0.2.5")));
        assert!(p.egress_allowed(None, ip("::ffff:10.9.9.9"), 123, true));
        assert!(!p.egress_allowed(None, ip("::ffff:10.9.10.9"), 123, true));
    }

    #[test]
    fn flow_config_takes_the_flows_section() {
        let p = parse(
            "schema_version = 1\n[flows]\ntcp_timeout_seconds = 120\nudp_timeout_seconds = 30\n\
             icmp_timeout_seconds = 10\nmax_flows = 5000\n",
        )
        .unwrap();
        let c = p.flow_config();
        assert_eq!(
            (
                c.tcp_inactivity_secs,
                c.udp_inactivity_secs,
                c.icmp_inactivity_secs,
                c.max_flows
            ),
            (120, 30, 10, 5000)
        );
        assert_eq!(c.dns_answer_slack_secs, 60);
        let strict = parse("schema_version = 1\n[dns]\nanswer_slack_seconds = 0\n").unwrap();
        assert_eq!(strict.flow_config().dns_answer_slack_secs, 0);
        // What the policy does not cover keeps the flow table's own default.
        let table = crate::flow::FlowConfig::default();
        assert_eq!(c.close_linger_secs, table.close_linger_secs);
    }
}
