//! Value types of a policy and their patterns: DNS name patterns, licensing server endpoints,
//! allowed destinations and resolvers, with their parsing, matching, display and serde.
//!
//! Every type here parses from the string a user writes and displays back to one canonical
//! spelling (lowercase names, truncated blocks, IPv6 in brackets), which is also how it
//! serialises; so a policy serialised into an audit reads back equal, and its hash is stable.
//! Parsing knows nothing of files: a [`ParseError`] says what is wrong with one string, and the
//! loader (`load.rs`) adds the file, line, column and key.

use std::fmt;
use std::net::{IpAddr, SocketAddr};
use std::str::FromStr;

use ipnet::IpNet;
use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// Why a name pattern, destination or address string is malformed; the text says what to write.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct ParseError(String);

impl ParseError {
    pub(super) fn new(message: impl Into<String>) -> Self {
        ParseError(message.into())
    }
}

// ---------------------------------------------------------------------------------------------
// Name patterns

/// One label of a [`NamePattern`].
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
enum Label {
    /// `*`: exactly one label, any text.
    Any,
    /// A literal label, lowercase.
    Exact(String),
}

/// A DNS name pattern, parsed once: `*` matches exactly one label (`*.api.deepgram.com` matches
/// `x.api.deepgram.com`, not `api.deepgram.com`; `api.*.deepgram.com` matches
/// `api.eu.deepgram.com`). Matching is case-insensitive and ignores a trailing dot.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct NamePattern {
    labels: Vec<Label>,
}

impl NamePattern {
    /// Whether `name` matches this pattern.
    pub fn matches(&self, name: &str) -> bool {
        let name = name.strip_suffix('.').unwrap_or(name);
        // Count first so a longer name cannot match a prefix of the pattern.
        if name.is_empty() || name.split('.').count() != self.labels.len() {
            return false;
        }
        name.split('.')
            .zip(&self.labels)
            .all(|(got, want)| match want {
                Label::Any => !got.is_empty(),
                Label::Exact(want) => got.eq_ignore_ascii_case(want),
            })
    }

    /// Whether the pattern holds a `*`.
    pub fn has_wildcard(&self) -> bool {
        self.labels.contains(&Label::Any)
    }
}

impl FromStr for NamePattern {
    type Err = ParseError;

    fn from_str(text: &str) -> Result<Self, ParseError> {
        let name = text.strip_suffix('.').unwrap_or(text);
        if name.is_empty() {
            return Err(ParseError::new("the name is empty"));
        }
        if name.len() > 253 {
            return Err(ParseError::new(format!(
                "\"{text}\" is longer than the 253 characters a DNS name may have"
            )));
        }
        let mut labels = Vec::new();
        for label in name.split('.') {
            if label.is_empty() {
                return Err(ParseError::new(format!(
                    "\"{text}\" has an empty label (two dots in a row, or a leading dot)"
                )));
            }
            if label == "*" {
                labels.push(Label::Any);
                continue;
            }
            if label.contains('*') {
                return Err(ParseError::new(format!(
                    "\"{text}\": a wildcard must be a whole label, like \"*.api.deepgram.com\" \
                     (`*` stands for exactly one label)"
                )));
            }
            if label.len() > 63 {
                return Err(ParseError::new(format!(
                    "\"{text}\": the label \"{label}\" is longer than the 63 characters DNS allows"
                )));
            }
            if let Some(bad) = label
                .chars()
                .find(|c| !(c.is_ascii_alphanumeric() || *c == '-' || *c == '_'))
            {
                return Err(ParseError::new(format!(
                    "\"{text}\": {bad:?} cannot appear in a host name (letters, digits, '-' and \
                     '_' only; write internationalised names in their xn-- form)"
                )));
            }
            labels.push(Label::Exact(label.to_ascii_lowercase()));
        }
        if labels.iter().all(|l| *l == Label::Any) {
            return Err(ParseError::new(format!(
                "\"{text}\" would match any name; name at least one label, like \"*.example.com\""
            )));
        }
        // No top-level domain is all digits, so such a "name" is a mistyped address.
        if let Some(Label::Exact(last)) = labels.last() {
            if last.bytes().all(|b| b.is_ascii_digit()) {
                return Err(ParseError::new(format!(
                    "\"{text}\" is neither a valid IP address nor a host name"
                )));
            }
        }
        Ok(NamePattern { labels })
    }
}

impl fmt::Display for NamePattern {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, label) in self.labels.iter().enumerate() {
            if i > 0 {
                f.write_str(".")?;
            }
            match label {
                Label::Any => f.write_str("*")?,
                Label::Exact(s) => f.write_str(s)?,
            }
        }
        Ok(())
    }
}

impl Serialize for NamePattern {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for NamePattern {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        from_string(deserializer)
    }
}

// ---------------------------------------------------------------------------------------------
// Endpoints and destinations

/// A licensing server: a name pattern and its port, written `"license.deepgram.com:443"`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServerEndpoint {
    /// The server's name (wildcards allowed).
    pub host: NamePattern,
    /// The port licensing uses.
    pub port: u16,
}

impl FromStr for ServerEndpoint {
    type Err = ParseError;

    fn from_str(text: &str) -> Result<Self, ParseError> {
        let Some((host, port)) = text.rsplit_once(':') else {
            if text.parse::<IpAddr>().is_ok() {
                return Err(address_not_name(text));
            }
            return Err(ParseError::new(format!(
                "\"{text}\" needs a port, like \"{text}:443\""
            )));
        };
        let host = host.trim_start_matches('[').trim_end_matches(']');
        if host.parse::<IpAddr>().is_ok() {
            return Err(address_not_name(text));
        }
        let port = parse_port(port, text)?;
        let host = host.parse::<NamePattern>()?;
        Ok(ServerEndpoint { host, port })
    }
}

fn address_not_name(text: &str) -> ParseError {
    ParseError::new(format!(
        "\"{text}\" is an address; licensing servers are recognised by name (SNI, DNS, CONNECT), \
         so write the name here, like \"license.deepgram.com:443\", and map the address to it in \
         [names], like \"203.0.113.10\" = \"license.deepgram.com\""
    ))
}

impl fmt::Display for ServerEndpoint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}", self.host, self.port)
    }
}

impl Serialize for ServerEndpoint {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for ServerEndpoint {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        from_string(deserializer)
    }
}

/// The host part of a [`Destination`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Host {
    /// A name pattern, matched against a flow's destination name evidence.
    Name(NamePattern),
    /// An address block (a single address is a /32 or /128).
    Net(IpNet),
}

/// Transport restriction of a [`Destination`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Transport {
    /// `/udp`
    Udp,
    /// `/tcp`
    Tcp,
}

/// An allowed destination, written `"name-or-CIDR[:port][/udp|/tcp]"`: `"hooks.example.com:443"`,
/// `"198.51.100.0/24:443"`, `"[2001:db8::53]:53/udp"`. IPv6 goes in brackets so its colons are
/// not read as a port. No port means any port; no transport means both.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Destination {
    /// Name pattern or address block.
    pub host: Host,
    /// Port, or `None` for any.
    pub port: Option<u16>,
    /// Transport, or `None` for both.
    pub transport: Option<Transport>,
}

impl Destination {
    /// Whether a flow to `ip:port` (with destination name `name`, when known) matches.
    pub fn matches(&self, name: Option<&str>, ip: IpAddr, port: u16, udp: bool) -> bool {
        let host = match &self.host {
            Host::Name(pattern) => name.is_some_and(|n| pattern.matches(n)),
            Host::Net(net) => net.contains(&ip),
        };
        let transport = match self.transport {
            None => true,
            Some(Transport::Udp) => udp,
            Some(Transport::Tcp) => !udp,
        };
        host && transport && self.port.is_none_or(|p| p == port)
    }
}

impl FromStr for Destination {
    type Err = ParseError;

    fn from_str(text: &str) -> Result<Self, ParseError> {
        let (rest, transport) = split_transport(text);
        let (host, port, bracketed) = split_host_port(rest, text)?;
        let port = match port {
            None => None,
            Some(port) if port.contains('/') => {
                return Err(ParseError::new(format!(
                    "\"{text}\": the transport must be /udp or /tcp, like \"{}/udp\"",
                    text.split_once('/').map_or(text, |(head, _)| head)
                )))
            }
            Some(port) => Some(parse_port(port, text)?),
        };
        let host = destination_host(host, bracketed, text)?;
        Ok(Destination {
            host,
            port,
            transport,
        })
    }
}

/// Splits a `/udp` or `/tcp` suffix (any case) off a destination.
fn split_transport(text: &str) -> (&str, Option<Transport>) {
    let lower = text.to_ascii_lowercase();
    // The suffix is ASCII, so cutting its 4 bytes leaves a char boundary.
    if lower.ends_with("/udp") {
        (&text[..text.len() - 4], Some(Transport::Udp))
    } else if lower.ends_with("/tcp") {
        (&text[..text.len() - 4], Some(Transport::Tcp))
    } else {
        (text, None)
    }
}

/// Splits `rest` into host, optional port text and whether the host was in brackets. `text` is
/// the whole destination, quoted in errors.
fn split_host_port<'a>(
    rest: &'a str,
    text: &str,
) -> Result<(&'a str, Option<&'a str>, bool), ParseError> {
    if let Some(inner) = rest.strip_prefix('[') {
        let Some((host, after)) = inner.split_once(']') else {
            return Err(ParseError::new(format!(
                "\"{text}\" opens '[' but never closes it; write IPv6 like \
                 \"[2001:db8::53]:53/udp\""
            )));
        };
        let port = match after {
            "" => None,
            _ => match after.strip_prefix(':') {
                Some(port) => Some(port),
                None => {
                    return Err(ParseError::new(format!(
                        "\"{text}\": after ']' comes \":port\", like \"[2001:db8::53]:53\""
                    )))
                }
            },
        };
        return Ok((host, port, true));
    }
    match rest.rsplit_once(':') {
        // Without brackets, more than one colon is an IPv6 address whose last group would be
        // taken for a port: refuse rather than guess.
        Some((host, _)) if host.contains(':') => Err(ParseError::new(format!(
            "\"{text}\": write an IPv6 address in brackets, like \
             \"[2001:db8::53]:53/udp\", so its colons are not read as a port"
        ))),
        Some((host, port)) => Ok((host, Some(port), false)),
        None => Ok((rest, None, false)),
    }
}

/// The host of a destination: an address block, or else a name pattern. Brackets are for IPv6
/// only, so a bracketed name or IPv4 address is an error.
fn destination_host(host: &str, bracketed: bool, text: &str) -> Result<Host, ParseError> {
    match parse_net(host)? {
        Some(net @ IpNet::V6(_)) if bracketed => Ok(Host::Net(net)),
        _ if bracketed => Err(ParseError::new(format!(
            "\"{text}\": brackets hold an IPv6 address or block, like \
             \"[2001:db8::53]:53\"; write names and IPv4 without them"
        ))),
        Some(net) => Ok(Host::Net(net)),
        None => Ok(Host::Name(host.parse()?)),
    }
}

impl fmt::Display for Destination {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.host {
            Host::Name(name) => write!(f, "{name}")?,
            Host::Net(net) => {
                let single = net.prefix_len() == net.max_prefix_len();
                match (net, single) {
                    (IpNet::V6(_), true) => write!(f, "[{}]", net.addr())?,
                    (IpNet::V6(_), false) => write!(f, "[{net}]")?,
                    (_, true) => write!(f, "{}", net.addr())?,
                    (_, false) => write!(f, "{net}")?,
                }
            }
        }
        if let Some(port) = self.port {
            write!(f, ":{port}")?;
        }
        match self.transport {
            Some(Transport::Udp) => f.write_str("/udp"),
            Some(Transport::Tcp) => f.write_str("/tcp"),
            None => Ok(()),
        }
    }
}

impl Serialize for Destination {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for Destination {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        from_string(deserializer)
    }
}

/// An approved DNS resolver, written `"address"` (any port) or `"address:port"`
/// (`"[fd00::53]:53"` for IPv6 with a port).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Resolver {
    /// The resolver's address.
    pub ip: IpAddr,
    /// Its port, or `None` for any.
    pub port: Option<u16>,
}

impl FromStr for Resolver {
    type Err = ParseError;

    fn from_str(text: &str) -> Result<Self, ParseError> {
        if let Ok(addr) = text.parse::<SocketAddr>() {
            if addr.port() == 0 {
                return Err(ParseError::new(format!("\"{text}\": port 0 is not a port")));
            }
            return Ok(Resolver {
                ip: addr.ip(),
                port: Some(addr.port()),
            });
        }
        let bare = text
            .strip_prefix('[')
            .and_then(|t| t.strip_suffix(']'))
            .unwrap_or(text);
        match bare.parse::<IpAddr>() {
            Ok(ip) => Ok(Resolver { ip, port: None }),
            Err(_) => Err(ParseError::new(format!(
                "\"{text}\" is not an address or address:port, like \"10.0.0.53\", \
                 \"10.0.0.53:53\" or \"[fd00::53]:53\" (resolvers are matched by address)"
            ))),
        }
    }
}

impl fmt::Display for Resolver {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.port {
            Some(port) => write!(f, "{}", SocketAddr::new(self.ip, port)),
            None => write!(f, "{}", self.ip),
        }
    }
}

impl Serialize for Resolver {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for Resolver {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        from_string(deserializer)
    }
}

/// Deserialises a value written as a string through its `FromStr`.
fn from_string<'de, D, T>(deserializer: D) -> Result<T, D::Error>
where
    D: Deserializer<'de>,
    T: FromStr<Err = ParseError>,
{
    let text = String::deserialize(deserializer)?;
    text.parse().map_err(serde::de::Error::custom)
}

fn parse_port(port: &str, text: &str) -> Result<u16, ParseError> {
    match port.parse::<u16>() {
        Ok(0) => Err(ParseError::new(format!("\"{text}\": port 0 is not a port"))),
        Ok(port) => Ok(port),
        Err(_) if port.is_empty() => Err(ParseError::new(format!(
            "\"{text}\" has an empty port after ':'"
        ))),
        Err(_) => Err(ParseError::new(format!(
            "\"{text}\": \"{port}\" is not a port (1 to 65535)"
        ))),
    }
}

/// Parses an address or CIDR block. `Ok(None)` means "not an address, maybe a name"; text that
/// is clearly meant as an address but malformed is an error, so it is not taken for a name.
pub(super) fn parse_net(host: &str) -> Result<Option<IpNet>, ParseError> {
    if let Ok(ip) = host.parse::<IpAddr>() {
        return Ok(Some(IpNet::from(ip)));
    }
    if !host.contains('/') {
        return Ok(None);
    }
    let net = host.parse::<IpNet>().map_err(|_| {
        ParseError::new(format!(
            "\"{host}\" is not a CIDR block; write an address, a slash and a prefix length, like \
             \"10.0.0.0/8\" or \"fc00::/7\""
        ))
    })?;
    // "10.0.0.1/8" is more likely a typo for one host or for 10.0.0.0/8 than a deliberate
    // spelling: refuse to guess which.
    if net.trunc() != net {
        return Err(ParseError::new(format!(
            "\"{host}\" has bits set after the prefix; write the block as \"{}\" or one address \
             as \"{}\"",
            net.trunc(),
            net.addr()
        )));
    }
    Ok(Some(net))
}

pub(super) fn parse_socket(text: &str, example_port: u16) -> Result<SocketAddr, ParseError> {
    match text.parse::<SocketAddr>() {
        Ok(addr) if addr.port() == 0 => {
            Err(ParseError::new(format!("\"{text}\": port 0 is not a port")))
        }
        Ok(addr) => Ok(addr),
        Err(_) => match text.parse::<IpAddr>() {
            Ok(ip) => Err(ParseError::new(format!(
                "\"{text}\" needs a port, like \"{}\"",
                SocketAddr::new(ip, example_port)
            ))),
            Err(_) => Err(ParseError::new(format!(
                "\"{text}\" is not an address:port, like \"192.0.2.5:{example_port}\" or \
                 \"[fd00::5]:{example_port}\" (proxies are matched by the address seen on the wire)"
            ))),
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wildcards_match_exactly_one_label() {
        let p = |s: &str| s.parse::<NamePattern>().unwrap();
        assert!(p("*.api.deepgram.com").matches("x.api.deepgram.com"));
        assert!(!p("*.api.deepgram.com").matches("api.deepgram.com"));
        assert!(!p("*.api.deepgram.com").matches("a.b.api.deepgram.com"));
        assert!(p("api.*.deepgram.com").matches("api.eu.deepgram.com"));
        assert!(!p("api.*.deepgram.com").matches("api.deepgram.com"));
        assert!(p("License.Deepgram.COM.").matches("license.deepgram.com"));
        assert!(p("license.deepgram.com").matches("LICENSE.deepgram.com."));
        assert!(!p("license.deepgram.com").matches("xlicense.deepgram.com"));
        assert!(!p("*.deepgram.com").matches(".deepgram.com"));
        assert!(!p("*.deepgram.com").matches(""));
        for bad in [
            "",
            ".",
            "a..b",
            "*",
            "*.*",
            "a*.b.com",
            "a b.com",
            "1.2.3.999",
        ] {
            assert!(bad.parse::<NamePattern>().is_err(), "{bad}");
        }
    }

    #[test]
    fn destination_parse_errors() {
        for (bad, needle) in [
            ("example.com:", "empty port"),
            ("example.com:0", "port 0"),
            ("example.com:99999", "not a port"),
            ("example.com:53/sctp", "/udp or /tcp"),
            ("[2001:db8::53:53", "never closes"),
            ("[2001:db8::53]53", "\":port\""),
            ("[example.com]:53", "brackets hold"),
            ("10.0.0.0/33:53", "not a CIDR"),
        ] {
            let err = bad.parse::<Destination>().unwrap_err();
            assert!(err.0.contains(needle), "{bad}: {err}");
        }
    }

    #[test]
    fn destinations_display_canonically_and_parse_back() {
        for (written, shown) in [
            ("Hooks.Example.com.:443", "hooks.example.com:443"),
            ("*.cdn.example.net", "*.cdn.example.net"),
            ("198.51.100.0/24:443/TCP", "198.51.100.0/24:443/tcp"),
            ("10.9.9.9", "10.9.9.9"),
            ("[2001:db8::53]:53/udp", "[2001:db8::53]:53/udp"),
            ("[2001:db8::/32]", "[2001:db8::/32]"),
        ] {
            let d: Destination = written.parse().unwrap();
            assert_eq!(d.to_string(), shown, "{written}");
            assert_eq!(shown.parse::<Destination>().unwrap(), d, "{shown}");
        }
        let single: Destination = "10.9.9.9".parse().unwrap();
        assert_eq!(single.host, Host::Net("10.9.9.9/32".parse().unwrap()));
        assert_eq!((single.port, single.transport), (None, None));
        assert!("[10.0.0.1]:53"
            .parse::<Destination>()
            .unwrap_err()
            .0
            .contains("brackets hold"));
    }

    #[test]
    fn server_endpoints_need_a_name_and_a_port() {
        let s: ServerEndpoint = "License.Deepgram.com:443".parse().unwrap();
        assert_eq!(
            (s.host.to_string(), s.port),
            ("license.deepgram.com".into(), 443)
        );
        assert_eq!(s.to_string(), "license.deepgram.com:443");
        assert!("*.deepgram.com:443".parse::<ServerEndpoint>().is_ok());
        for (bad, needle) in [
            (
                "license.deepgram.com",
                "needs a port, like \"license.deepgram.com:443\"",
            ),
            ("203.0.113.10:443", "is an address"),
            ("203.0.113.10", "is an address"),
            ("[2001:db8::1]:443", "is an address"),
            ("license.deepgram.com:0", "port 0"),
            ("license.deepgram.com:", "empty port"),
            (":443", "empty"),
        ] {
            let err = bad.parse::<ServerEndpoint>().unwrap_err();
            assert!(err.0.contains(needle), "{bad}: {err}");
        }
    }

    #[test]
    fn resolvers_with_and_without_port() {
        let r = |s: &str| s.parse::<Resolver>().unwrap();
        assert_eq!(r("10.0.0.53").port, None);
        assert_eq!(r("10.0.0.53:53").port, Some(53));
        assert_eq!(r("[fd00::53]:5353").port, Some(5353));
        assert_eq!(r("[fd00::53]").port, None);
        assert_eq!(r("fd00::53").ip, "fd00::53".parse::<IpAddr>().unwrap());
        assert_eq!(r("[fd00::53]:53").to_string(), "[fd00::53]:53");
        assert_eq!(r("[fd00::53]").to_string(), "fd00::53");
        assert!("10.0.0.53:0"
            .parse::<Resolver>()
            .unwrap_err()
            .0
            .contains("port 0"));
        assert!("dns.example"
            .parse::<Resolver>()
            .unwrap_err()
            .0
            .contains("matched by address"));
    }

    #[test]
    fn addresses_blocks_and_sockets() {
        assert_eq!(parse_net("example.com"), Ok(None));
        assert_eq!(
            parse_net("10.0.0.1").unwrap(),
            Some("10.0.0.1/32".parse().unwrap())
        );
        assert_eq!(
            parse_net("fc00::/7").unwrap(),
            Some("fc00::/7".parse().unwrap())
        );
        // A set host bit is refused, naming both readings.
        let err = parse_net("10.0.0.1/8").unwrap_err().0;
        assert!(
            err.contains("\"10.0.0.0/8\"") && err.contains("\"10.0.0.1\""),
            "{err}"
        );
        assert!(parse_net("10.0.0.0/33")
            .unwrap_err()
            .0
            .contains("not a CIDR"));
        assert_eq!(
            parse_socket("[fd00::5]:8443", 8443).unwrap(),
            "[fd00::5]:8443".parse().unwrap()
        );
        // The example in the message uses the port of the list being read.
        assert!(parse_socket("192.0.2.5", 3128)
            .unwrap_err()
            .0
            .contains("\"192.0.2.5:3128\""));
        assert!(parse_socket("proxy.example:3128", 3128)
            .unwrap_err()
            .0
            .contains("\"192.0.2.5:3128\""));
    }

    #[test]
    fn values_serialise_as_their_canonical_strings() {
        let p: NamePattern = serde_json::from_str("\"*.Example.COM.\"").unwrap();
        assert_eq!(serde_json::to_string(&p).unwrap(), "\"*.example.com\"");
        let d: Destination = serde_json::from_str("\"[2001:DB8::53]:53/UDP\"").unwrap();
        assert_eq!(
            serde_json::to_string(&d).unwrap(),
            "\"[2001:db8::53]:53/udp\""
        );
        // A malformed string is refused with the parse message, not silently kept.
        let err = serde_json::from_str::<NamePattern>("\"a*.example.com\"").unwrap_err();
        assert!(err.to_string().contains("whole label"), "{err}");
    }
}
