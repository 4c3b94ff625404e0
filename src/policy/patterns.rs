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
        let lower = text.to_ascii_lowercase();
        let (rest, transport) = if lower.ends_with("/udp") {
            (&text[..text.len() - 4], Some(Transport::Udp))
        } else if lower.ends_with("/tcp") {
            (&text[..text.len() - 4], Some(Transport::Tcp))
        } else {
            (text, None)
        };
        let (host, port, bracketed) = if let Some(inner) = rest.strip_prefix('[') {
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
            (host, port, true)
        } else {
            match rest.rsplit_once(':') {
                Some((host, _)) if host.contains(':') => {
                    return Err(ParseError::new(format!(
                        "\"{text}\": write an IPv6 address in brackets, like \
                         \"[2001:db8::53]:53/udp\", so its colons are not read as a port"
                    )))
                }
                Some((host, port)) => (host, Some(port), false),
                None => (rest, None, false),
            }
        };
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
        let host = if bracketed {
            match parse_net(host)? {
                Some(net @ IpNet::V6(_)) => Host::Net(net),
                _ => {
                    return Err(ParseError::new(format!(
                        "\"{text}\": brackets hold an IPv6 address or block, like \
                         \"[2001:db8::53]:53\"; write names and IPv4 without them"
                    )))
                }
            }
        } else {
            match parse_net(host)? {
                Some(net) => Host::Net(net),
                None => Host::Name(host.parse()?),
            }
        };
        Ok(Destination {
            host,
            port,
            transport,
        })
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
}
