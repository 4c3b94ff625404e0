//! Reading a policy: the raw TOML layer, loading, validation and the located errors.
//!
//! Text becomes a [`Policy`] in three steps: TOML syntax (`toml::de::DeTable`, so every value
//! keeps its byte span), the schema version, then the raw structs below, which are validated
//! section by section into the model. Every error names the origin, the 1-based line and
//! column (in characters) and the key path, because a policy typo must be fixable without
//! guessing.

use std::collections::BTreeMap;
use std::net::IpAddr;
use std::ops::{Range, RangeInclusive};
use std::path::{Path, PathBuf};
use std::str::FromStr;
use std::sync::OnceLock;

use serde::Deserialize;
use toml::Spanned;

use super::patterns::{parse_net, parse_socket};
use super::{
    unmap, AudioPolicy, CapturePolicy, Destination, DnsPolicy, Egress, FlowsPolicy, Ingress,
    Licensing, NamePattern, Network, ParseError, Policy, Resolver, ServerEndpoint, Transcription,
    SCHEMA_VERSION,
};

/// The built-in policy, fully commented: every key with what it means and which claim of
/// Deepgram's documentation it encodes. `dg-audit policy init` writes this text. It is the only
/// place default values are written: keys a user file leaves out take their values from it.
pub const DEFAULT_POLICY_TOML: &str = include_str!("../../policy/default.toml");

/// Origin shown in errors about [`DEFAULT_POLICY_TOML`].
const DEFAULT_ORIGIN: &str = "<built-in policy>";

// ---------------------------------------------------------------------------------------------
// Errors

/// Why a policy could not be read. Each variant's message names the file, and all but `Io` the
/// 1-based line and column, so a user can go straight to the mistake.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum PolicyError {
    /// The file could not be read.
    #[error("{}: cannot read the policy file: {source}", path.display())]
    Io {
        /// The file.
        path: PathBuf,
        /// What the OS said.
        source: std::io::Error,
    },
    /// The text is not valid TOML.
    #[error("{origin}:{line}:{column}: TOML syntax error: {message}")]
    Syntax {
        /// File name or other label of the text.
        origin: String,
        /// 1-based line.
        line: usize,
        /// 1-based column, in characters.
        column: usize,
        /// What is wrong.
        message: String,
    },
    /// Valid TOML, but a key is unknown or a value is wrong.
    #[error("{origin}:{line}:{column}: {}{message}", key_prefix(key))]
    Invalid {
        /// File name or other label of the text.
        origin: String,
        /// 1-based line.
        line: usize,
        /// 1-based column, in characters.
        column: usize,
        /// Path of the key, like `licensing.servers[0]`; empty when no key applies.
        key: String,
        /// What is wrong and what to write instead.
        message: String,
    },
    /// The file declares a `schema_version` this build does not read.
    #[error(
        "{origin}:{line}:{column}: schema_version: this policy is version {found}, but this \
         dg-audit reads version {supported}; write `schema_version = {supported}` and check the \
         keys against `dg-audit policy show`, or use the dg-audit release that wrote it"
    )]
    Version {
        /// File name or other label of the text.
        origin: String,
        /// 1-based line of the value.
        line: usize,
        /// 1-based column of the value.
        column: usize,
        /// The version the file declares.
        found: i64,
        /// The version this build reads.
        supported: u32,
    },
}

/// `key: ` before the message, or nothing for errors that concern no single key.
fn key_prefix(key: &str) -> String {
    if key.is_empty() {
        String::new()
    } else {
        format!("{key}: ")
    }
}

// ---------------------------------------------------------------------------------------------
// Loading, and the embedded default every omitted key falls back to

impl Policy {
    /// The built-in policy, parsed from [`DEFAULT_POLICY_TOML`] (once per process, then cloned).
    ///
    /// # Panics
    ///
    /// Never in a tested build: the embedded text is parsed by the unit tests.
    pub fn default_policy() -> Policy {
        embedded_default().clone()
    }

    /// Parses and validates policy text. `origin` names it in errors (usually the file name).
    /// Keys the text leaves out take their values from [`DEFAULT_POLICY_TOML`].
    pub fn from_toml(text: &str, origin: &str) -> Result<Policy, PolicyError> {
        parse(text, origin, Some(embedded_default()))
    }

    /// Reads and validates a policy file.
    pub fn load(path: &Path) -> Result<Policy, PolicyError> {
        let text = std::fs::read_to_string(path).map_err(|source| PolicyError::Io {
            path: path.to_path_buf(),
            source,
        })?;
        Policy::from_toml(&text, &path.display().to_string())
    }
}

/// The embedded default policy, parsed once per process. It is the only source of default
/// values: a key a user file leaves out takes its value from here, so `policy/default.toml`
/// (what `policy show` and `policy init` print) and the effective defaults cannot drift apart.
///
/// # Panics
///
/// If the embedded text is invalid or leaves a key out; the unit tests parse it.
fn embedded_default() -> &'static Policy {
    static EMBEDDED: OnceLock<Policy> = OnceLock::new();
    EMBEDDED.get_or_init(|| {
        // No fallback: the embedded text is the fallback, so it must spell out every key.
        match parse(DEFAULT_POLICY_TOML, DEFAULT_ORIGIN, None) {
            Ok(policy) => policy,
            Err(err) => panic!("the built-in policy is invalid: {err}"),
        }
    })
}

/// Parses and validates `text`. Omitted keys take their values from `fallback`; with `None`
/// (only for the embedded default itself) an omitted key is an error.
fn parse(text: &str, origin: &str, fallback: Option<&Policy>) -> Result<Policy, PolicyError> {
    let cx = Cx {
        text,
        origin,
        fallback,
    };
    let doc = toml::de::DeTable::parse(text).map_err(|err| {
        let (line, column) = line_column(text, err.span().map_or(0, |s| s.start));
        PolicyError::Syntax {
            origin: origin.to_string(),
            line,
            column,
            message: err.message().to_string(),
        }
    })?;
    // The version decides which keys exist, so check it before anything else: a newer file's
    // keys would otherwise be reported as unknown, hiding the real problem.
    let probe: VersionProbe = toml::from_str(text).map_err(|err| cx.serde(&err))?;
    let version = cx.version(probe.schema_version)?;
    let raw =
        RawPolicy::deserialize(toml::Deserializer::from(doc)).map_err(|err| cx.serde(&err))?;
    cx.build(version, raw)
}

// ---------------------------------------------------------------------------------------------
// Raw form: the file as written, with spans for every value that is validated later

#[derive(Deserialize)]
struct VersionProbe {
    schema_version: Option<Spanned<toml::Value>>,
}

type Str = Spanned<String>;
type Int = Option<Spanned<i64>>;
type Float = Option<Spanned<f64>>;

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawPolicy {
    // Already checked by VersionProbe; present here so it is not an unknown key.
    #[allow(dead_code)]
    schema_version: toml::Value,
    #[serde(default)]
    network: RawNetwork,
    #[serde(default)]
    licensing: RawLicensing,
    #[serde(default)]
    transcription: RawTranscription,
    #[serde(default)]
    egress: RawEgress,
    #[serde(default)]
    ingress: RawIngress,
    // Absent and empty differ: an absent table takes the default's mappings.
    names: Option<BTreeMap<Str, Str>>,
    #[serde(default)]
    dns: RawDns,
    #[serde(default)]
    flows: RawFlows,
    #[serde(default)]
    audio: RawAudio,
    #[serde(default)]
    capture: RawCapture,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct RawNetwork {
    internal: Option<Vec<Str>>,
    site_scope_is_local: Option<bool>,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct RawLicensing {
    servers: Option<Vec<Str>>,
    proxies: Option<Vec<Str>>,
    forward_proxies: Option<Vec<Str>>,
    max_egress_bytes_per_minute: Int,
    max_connection_seconds: Float,
    cadence_seconds: Int,
    cadence_tolerance_seconds: Int,
    allow_held_connection: Option<bool>,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct RawTranscription {
    hosted: Option<Vec<Str>>,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct RawEgress {
    allow: Option<Vec<Str>>,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct RawIngress {
    api_ports: Option<Vec<Spanned<i64>>>,
    gateways: Option<Vec<Str>>,
    require_tls: Option<bool>,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct RawDns {
    resolvers: Option<Vec<Str>>,
    max_queries_per_minute: Int,
    max_label_length: Int,
    max_label_entropy: Float,
    entropy_min_label_length: Int,
    max_txt_queries_per_minute: Int,
    answer_slack_seconds: Int,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct RawFlows {
    tcp_timeout_seconds: Int,
    udp_timeout_seconds: Int,
    icmp_timeout_seconds: Int,
    max_flows: Int,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct RawAudio {
    codec_kbps: Option<Vec<Spanned<f64>>>,
    sustained_upload_bytes_per_minute: Int,
    sustained_minutes: Int,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct RawCapture {
    max_drop_ratio: Float,
}

// ---------------------------------------------------------------------------------------------
// Validation: raw form -> Policy, every error located

/// The text being validated, its name (to turn spans into located errors) and where omitted keys
/// take their values from.
struct Cx<'a> {
    text: &'a str,
    origin: &'a str,
    /// The embedded default, or `None` while the embedded default itself is being read.
    fallback: Option<&'a Policy>,
}

impl Cx<'_> {
    fn invalid(&self, span: Range<usize>, key: &str, message: impl Into<String>) -> PolicyError {
        let (line, column) = line_column(self.text, span.start);
        PolicyError::Invalid {
            origin: self.origin.to_string(),
            line,
            column,
            key: key.to_string(),
            message: message.into(),
        }
    }

    /// Turns a serde error (unknown key, wrong type) into a located error with its key path.
    fn serde(&self, err: &toml::de::Error) -> PolicyError {
        let span = err.span().unwrap_or(0..0);
        let key = key_path_at(self.text, span.start).unwrap_or_default();
        self.invalid(span, &key, friendly(err.message()))
    }

    fn version(&self, value: Option<Spanned<toml::Value>>) -> Result<u32, PolicyError> {
        let Some(value) = value else {
            return Err(self.invalid(
                0..0,
                "schema_version",
                format!("missing; start the file with `schema_version = {SCHEMA_VERSION}`"),
            ));
        };
        let span = value.span();
        match value.into_inner() {
            toml::Value::Integer(found) if found == i64::from(SCHEMA_VERSION) => Ok(SCHEMA_VERSION),
            toml::Value::Integer(found) => {
                let (line, column) = line_column(self.text, span.start);
                Err(PolicyError::Version {
                    origin: self.origin.to_string(),
                    line,
                    column,
                    found,
                    supported: SCHEMA_VERSION,
                })
            }
            other => Err(self.invalid(
                span,
                "schema_version",
                format!(
                    "must be a whole number, like `schema_version = {SCHEMA_VERSION}`, not a {}",
                    other.type_str()
                ),
            )),
        }
    }

    /// The value of the omitted key `key`, taken from the embedded default by `take`.
    fn omitted<T>(&self, key: &str, take: impl FnOnce(&Policy) -> T) -> Result<T, PolicyError> {
        match self.fallback {
            Some(policy) => Ok(take(policy)),
            // Only the embedded default is read without a fallback; a key missing there would
            // have no value at all.
            None => Err(self.invalid(
                0..0,
                key,
                "missing; the built-in policy must spell out every key, since omitted keys take \
                 their values from it",
            )),
        }
    }

    /// Validates each element of a string list with `parse`; an absent list is the default's.
    fn list<T>(
        &self,
        values: Option<Vec<Str>>,
        key: &str,
        fallback: impl FnOnce(&Policy) -> Vec<T>,
        parse: impl Fn(&str) -> Result<T, ParseError>,
    ) -> Result<Vec<T>, PolicyError> {
        let Some(values) = values else {
            return self.omitted(key, fallback);
        };
        values
            .iter()
            .enumerate()
            .map(|(i, v)| {
                parse(v.get_ref())
                    .map_err(|e| self.invalid(v.span(), &format!("{key}[{i}]"), e.to_string()))
            })
            .collect()
    }

    /// A whole number of at least `min`; an absent one is the default's.
    fn int(
        &self,
        value: Int,
        key: &str,
        min: u64,
        fallback: impl FnOnce(&Policy) -> u64,
    ) -> Result<u64, PolicyError> {
        match value {
            None => self.omitted(key, fallback),
            Some(value) => self.whole(&value, key, min),
        }
    }

    /// Like [`Cx::int`], for counts the model holds as `usize`.
    fn count(
        &self,
        value: Int,
        key: &str,
        min: u64,
        fallback: impl FnOnce(&Policy) -> usize,
    ) -> Result<usize, PolicyError> {
        match value {
            None => self.omitted(key, fallback),
            Some(value) => self.whole(&value, key, min).map(to_usize),
        }
    }

    /// Checks a whole number written in the file is at least `min`.
    fn whole(&self, value: &Spanned<i64>, key: &str, min: u64) -> Result<u64, PolicyError> {
        let n = *value.get_ref();
        match u64::try_from(n) {
            Ok(n) if n >= min => Ok(n),
            _ if n < 0 => Err(self.invalid(
                value.span(),
                key,
                format!("{n} is negative; it must be {min} or more"),
            )),
            _ => Err(self.invalid(
                value.span(),
                key,
                format!("{n} is too small; it must be {min} or more"),
            )),
        }
    }

    /// A finite number within `range`; an absent one is the default's.
    fn float(
        &self,
        value: Float,
        key: &str,
        range: RangeInclusive<f64>,
        hint: &str,
        fallback: impl FnOnce(&Policy) -> f64,
    ) -> Result<f64, PolicyError> {
        let Some(value) = value else {
            return self.omitted(key, fallback);
        };
        let x = *value.get_ref();
        if x.is_finite() && range.contains(&x) {
            Ok(x)
        } else {
            Err(self.invalid(value.span(), key, format!("{x} is out of range; {hint}")))
        }
    }

    /// A boolean; an absent one is the default's.
    fn flag(
        &self,
        value: Option<bool>,
        key: &str,
        fallback: impl FnOnce(&Policy) -> bool,
    ) -> Result<bool, PolicyError> {
        match value {
            None => self.omitted(key, fallback),
            Some(flag) => Ok(flag),
        }
    }

    /// Validates the sections in file order, so the first mistake reported is the first one a
    /// reader of the default layout meets.
    fn build(&self, schema_version: u32, raw: RawPolicy) -> Result<Policy, PolicyError> {
        // Struct fields are evaluated in the order written, which is the order checked.
        Ok(Policy {
            schema_version,
            network: self.network(raw.network)?,
            licensing: self.licensing(raw.licensing)?,
            transcription: self.transcription(raw.transcription)?,
            egress: self.egress(raw.egress)?,
            ingress: self.ingress(raw.ingress)?,
            names: self.names(raw.names)?,
            dns: self.dns(raw.dns)?,
            flows: self.flows(raw.flows)?,
            audio: self.audio(raw.audio)?,
            capture: self.capture(raw.capture)?,
        })
    }

    fn network(&self, raw: RawNetwork) -> Result<Network, PolicyError> {
        let internal = self.list(
            raw.internal,
            "network.internal",
            |p| p.network.internal.clone(),
            |t| match parse_net(t)? {
                Some(net) => Ok(net),
                None => Err(ParseError::new(format!(
                    "\"{t}\" is not an address or CIDR block, like \"10.0.0.0/8\""
                ))),
            },
        )?;
        let site_scope_is_local = self.flag(
            raw.site_scope_is_local,
            "network.site_scope_is_local",
            |p| p.network.site_scope_is_local,
        )?;
        Ok(Network {
            internal,
            site_scope_is_local,
        })
    }

    fn licensing(&self, raw: RawLicensing) -> Result<Licensing, PolicyError> {
        let servers = self.list(
            raw.servers,
            "licensing.servers",
            |p| p.licensing.servers.clone(),
            ServerEndpoint::from_str,
        )?;
        let proxies = self.list(
            raw.proxies,
            "licensing.proxies",
            |p| p.licensing.proxies.clone(),
            |t| parse_socket(t, 8443),
        )?;
        let forward_proxies = self.list(
            raw.forward_proxies,
            "licensing.forward_proxies",
            |p| p.licensing.forward_proxies.clone(),
            |t| parse_socket(t, 3128),
        )?;
        let max_egress_bytes_per_minute = self.int(
            raw.max_egress_bytes_per_minute,
            "licensing.max_egress_bytes_per_minute",
            0,
            |p| p.licensing.max_egress_bytes_per_minute,
        )?;
        let max_connection_seconds = self.float(
            raw.max_connection_seconds,
            "licensing.max_connection_seconds",
            f64::MIN_POSITIVE..=f64::MAX,
            "it is a number of seconds above 0, like 5",
            |p| p.licensing.max_connection_seconds,
        )?;
        let (cadence_seconds, cadence_tolerance_seconds) =
            self.cadence(raw.cadence_seconds, raw.cadence_tolerance_seconds)?;
        let allow_held_connection = self.flag(
            raw.allow_held_connection,
            "licensing.allow_held_connection",
            |p| p.licensing.allow_held_connection,
        )?;
        Ok(Licensing {
            servers,
            proxies,
            forward_proxies,
            max_egress_bytes_per_minute,
            max_connection_seconds,
            cadence_seconds,
            cadence_tolerance_seconds,
            allow_held_connection,
        })
    }

    /// `cadence_seconds` and `cadence_tolerance_seconds`, checked together: a tolerance as large
    /// as the cadence would let every gap pass.
    fn cadence(&self, cadence: Int, tolerance: Int) -> Result<(u64, u64), PolicyError> {
        let cadence_span = cadence.as_ref().map(Spanned::span);
        let cadence_seconds = self.int(cadence, "licensing.cadence_seconds", 1, |p| {
            p.licensing.cadence_seconds
        })?;
        let tolerance_span = tolerance.as_ref().map(Spanned::span);
        let cadence_tolerance_seconds =
            self.int(tolerance, "licensing.cadence_tolerance_seconds", 0, |p| {
                p.licensing.cadence_tolerance_seconds
            })?;
        if cadence_tolerance_seconds >= cadence_seconds {
            // Point at the value the user wrote; when both were written, the tolerance is the
            // one that reads wrong.
            let (span, key) = match (tolerance_span, cadence_span) {
                (Some(span), _) => (span, "licensing.cadence_tolerance_seconds"),
                (None, Some(span)) => (span, "licensing.cadence_seconds"),
                (None, None) => (0..0, "licensing.cadence_tolerance_seconds"),
            };
            return Err(self.invalid(
                span,
                key,
                format!(
                    "the tolerance ({cadence_tolerance_seconds} s) must be smaller than \
                     cadence_seconds ({cadence_seconds} s), or every gap would pass"
                ),
            ));
        }
        Ok((cadence_seconds, cadence_tolerance_seconds))
    }

    fn transcription(&self, raw: RawTranscription) -> Result<Transcription, PolicyError> {
        let hosted = self.list(
            raw.hosted,
            "transcription.hosted",
            |p| p.transcription.hosted.clone(),
            NamePattern::from_str,
        )?;
        Ok(Transcription { hosted })
    }

    fn egress(&self, raw: RawEgress) -> Result<Egress, PolicyError> {
        let allow = self.list(
            raw.allow,
            "egress.allow",
            |p| p.egress.allow.clone(),
            Destination::from_str,
        )?;
        Ok(Egress { allow })
    }

    fn ingress(&self, raw: RawIngress) -> Result<Ingress, PolicyError> {
        let api_ports = match raw.api_ports {
            None => self.omitted("ingress.api_ports", |p| p.ingress.api_ports.clone())?,
            Some(ports) => ports
                .iter()
                .enumerate()
                .map(|(i, p)| match u16::try_from(*p.get_ref()) {
                    Ok(port) if port > 0 => Ok(port),
                    _ => Err(self.invalid(
                        p.span(),
                        &format!("ingress.api_ports[{i}]"),
                        format!("{} is not a port (1 to 65535)", p.get_ref()),
                    )),
                })
                .collect::<Result<_, _>>()?,
        };
        let gateways = self.list(
            raw.gateways,
            "ingress.gateways",
            |p| p.ingress.gateways.clone(),
            |t| match parse_net(t)? {
                Some(net) => Ok(net),
                None => Err(ParseError::new(format!(
                    "\"{t}\" is not an address or CIDR block, like \"203.0.113.7\" or \
                     \"203.0.113.0/28\" (gateways are matched by address)"
                ))),
            },
        )?;
        let require_tls = self.flag(raw.require_tls, "ingress.require_tls", |p| {
            p.ingress.require_tls
        })?;
        Ok(Ingress {
            api_ports,
            gateways,
            require_tls,
        })
    }

    fn names(
        &self,
        raw: Option<BTreeMap<Str, Str>>,
    ) -> Result<BTreeMap<IpAddr, String>, PolicyError> {
        let Some(raw) = raw else {
            return self.omitted("names", |p| p.names.clone());
        };
        let mut names = BTreeMap::new();
        // Report in file order, so the first mistake in the file is the one shown.
        let mut entries: Vec<_> = raw.into_iter().collect();
        entries.sort_by_key(|(k, _)| k.span().start);
        for (addr, name) in entries {
            let key = format!("names.{}", quote_key(addr.get_ref()));
            let ip = addr.get_ref().parse::<IpAddr>().map_err(|_| {
                self.invalid(
                    addr.span(),
                    &key,
                    format!(
                        "\"{}\" is not an IP address; [names] maps an address to a name, like \
                         \"203.0.113.10\" = \"license.deepgram.com\"",
                        addr.get_ref()
                    ),
                )
            })?;
            let pattern = name
                .get_ref()
                .parse::<NamePattern>()
                .map_err(|e| self.invalid(name.span(), &key, e.to_string()))?;
            if pattern.has_wildcard() {
                return Err(self.invalid(
                    name.span(),
                    &key,
                    format!(
                        "\"{}\": a mapping names one host; remove the `*`",
                        name.get_ref()
                    ),
                ));
            }
            if names.insert(unmap(ip), pattern.to_string()).is_some() {
                return Err(self.invalid(
                    addr.span(),
                    &key,
                    format!("{ip} is mapped twice (written two ways); keep one mapping"),
                ));
            }
        }
        Ok(names)
    }

    fn dns(&self, raw: RawDns) -> Result<DnsPolicy, PolicyError> {
        let resolvers = self.list(
            raw.resolvers,
            "dns.resolvers",
            |p| p.dns.resolvers.clone(),
            Resolver::from_str,
        )?;
        let label_span = raw.max_label_length.as_ref().map_or(0..0, Spanned::span);
        let max_label_length =
            self.count(raw.max_label_length, "dns.max_label_length", 1, |p| {
                p.dns.max_label_length
            })?;
        if max_label_length > 63 {
            return Err(self.invalid(
                label_span,
                "dns.max_label_length",
                format!("{max_label_length} is above 63, the longest label DNS allows, so it would never trigger"),
            ));
        }
        Ok(DnsPolicy {
            resolvers,
            max_queries_per_minute: self.int(
                raw.max_queries_per_minute,
                "dns.max_queries_per_minute",
                1,
                |p| p.dns.max_queries_per_minute,
            )?,
            max_label_length,
            max_label_entropy: self.float(
                raw.max_label_entropy,
                "dns.max_label_entropy",
                0.0..=8.0,
                "it is in bits per character, between 0.0 and 8.0 (4.0 is typical)",
                |p| p.dns.max_label_entropy,
            )?,
            entropy_min_label_length: self.count(
                raw.entropy_min_label_length,
                "dns.entropy_min_label_length",
                1,
                |p| p.dns.entropy_min_label_length,
            )?,
            max_txt_queries_per_minute: self.int(
                raw.max_txt_queries_per_minute,
                "dns.max_txt_queries_per_minute",
                1,
                |p| p.dns.max_txt_queries_per_minute,
            )?,
            answer_slack_seconds: self.int(
                raw.answer_slack_seconds,
                "dns.answer_slack_seconds",
                0,
                |p| p.dns.answer_slack_seconds,
            )?,
        })
    }

    fn flows(&self, raw: RawFlows) -> Result<FlowsPolicy, PolicyError> {
        Ok(FlowsPolicy {
            tcp_timeout_seconds: self.int(
                raw.tcp_timeout_seconds,
                "flows.tcp_timeout_seconds",
                1,
                |p| p.flows.tcp_timeout_seconds,
            )?,
            udp_timeout_seconds: self.int(
                raw.udp_timeout_seconds,
                "flows.udp_timeout_seconds",
                1,
                |p| p.flows.udp_timeout_seconds,
            )?,
            icmp_timeout_seconds: self.int(
                raw.icmp_timeout_seconds,
                "flows.icmp_timeout_seconds",
                1,
                |p| p.flows.icmp_timeout_seconds,
            )?,
            max_flows: self.count(raw.max_flows, "flows.max_flows", 1, |p| p.flows.max_flows)?,
        })
    }

    fn audio(&self, raw: RawAudio) -> Result<AudioPolicy, PolicyError> {
        let codec_kbps = match raw.codec_kbps {
            None => self.omitted("audio.codec_kbps", |p| p.audio.codec_kbps.clone())?,
            Some(rates) => rates
                .iter()
                .enumerate()
                .map(|(i, r)| {
                    let x = *r.get_ref();
                    if x.is_finite() && x > 0.0 {
                        Ok(x)
                    } else {
                        Err(self.invalid(
                            r.span(),
                            &format!("audio.codec_kbps[{i}]"),
                            format!("{x} is not a bit rate; write kbit/s above 0, like 16.0"),
                        ))
                    }
                })
                .collect::<Result<_, _>>()?,
        };
        Ok(AudioPolicy {
            codec_kbps,
            sustained_upload_bytes_per_minute: self.int(
                raw.sustained_upload_bytes_per_minute,
                "audio.sustained_upload_bytes_per_minute",
                1,
                |p| p.audio.sustained_upload_bytes_per_minute,
            )?,
            sustained_minutes: self.int(
                raw.sustained_minutes,
                "audio.sustained_minutes",
                1,
                |p| p.audio.sustained_minutes,
            )?,
        })
    }

    fn capture(&self, raw: RawCapture) -> Result<CapturePolicy, PolicyError> {
        let max_drop_ratio = self.float(
            raw.max_drop_ratio,
            "capture.max_drop_ratio",
            0.0..=1.0,
            "it is a share of packets from 0.0 (no drop allowed) to 1.0",
            |p| p.capture.max_drop_ratio,
        )?;
        Ok(CapturePolicy { max_drop_ratio })
    }
}

/// Counts are read as `u64`; on a 32-bit target a larger one saturates rather than wraps.
fn to_usize(n: u64) -> usize {
    usize::try_from(n).unwrap_or(usize::MAX)
}

// ---------------------------------------------------------------------------------------------
// Locating errors: byte offsets to lines, columns and key paths; serde's words to TOML's

/// 1-based line and column (in characters) of byte `offset` in `text`.
fn line_column(text: &str, offset: usize) -> (usize, usize) {
    let mut offset = offset.min(text.len());
    while !text.is_char_boundary(offset) {
        offset -= 1;
    }
    let before = &text[..offset];
    let line_start = before.rfind('\n').map_or(0, |i| i + 1);
    let line = before.bytes().filter(|b| *b == b'\n').count() + 1;
    let column = before[line_start..].chars().count() + 1;
    (line, column)
}

/// Key path (`licensing.servers[0]`) of the smallest key or value containing byte `offset`.
fn key_path_at(text: &str, offset: usize) -> Option<String> {
    let doc = toml::de::DeTable::parse(text).ok()?;
    let mut best: Option<(usize, String)> = None;
    walk_table(doc.get_ref(), "", offset, &mut best);
    best.map(|(_, path)| path)
}

fn walk_table(
    table: &toml::de::DeTable<'_>,
    prefix: &str,
    offset: usize,
    best: &mut Option<(usize, String)>,
) {
    for (key, value) in table.iter() {
        let path = if prefix.is_empty() {
            quote_key(key.get_ref())
        } else {
            format!("{prefix}.{}", quote_key(key.get_ref()))
        };
        consider(key.span(), &path, offset, best);
        walk_value(value, &path, offset, best);
    }
}

fn walk_value(
    value: &Spanned<toml::de::DeValue<'_>>,
    path: &str,
    offset: usize,
    best: &mut Option<(usize, String)>,
) {
    consider(value.span(), path, offset, best);
    match value.get_ref() {
        toml::de::DeValue::Table(table) => walk_table(table, path, offset, best),
        toml::de::DeValue::Array(items) => {
            for (i, item) in items.iter().enumerate() {
                walk_value(item, &format!("{path}[{i}]"), offset, best);
            }
        }
        _ => {}
    }
}

fn consider(span: Range<usize>, path: &str, offset: usize, best: &mut Option<(usize, String)>) {
    let hit = span.contains(&offset) || (span.is_empty() && span.start == offset);
    let len = span.end.saturating_sub(span.start);
    if hit && best.as_ref().is_none_or(|(best_len, _)| len < *best_len) {
        *best = Some((len, path.to_string()));
    }
}

/// A key as written in a path: bare when TOML allows it, quoted otherwise (`names."10.0.0.1"`).
fn quote_key(key: &str) -> String {
    if !key.is_empty()
        && key
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-')
    {
        key.to_string()
    } else {
        format!("{key:?}")
    }
}

/// Rewrites serde's type vocabulary into the file's (TOML) vocabulary.
fn friendly(message: &str) -> String {
    let mut m = message.to_string();
    if let Some(rest) = m.strip_prefix("unknown field ") {
        m = format!("unknown key {rest}");
        m = m
            .replace(
                ", expected one of ",
                " (a typo?); the keys allowed here are ",
            )
            .replace(", expected `", " (a typo?); the only key allowed here is `");
        return m;
    }
    // Only whole phrases, so text quoted from the file ("roadmap") is never rewritten.
    for (from, to) in [
        ("invalid type: map,", "wrong type: table,"),
        ("invalid type: sequence,", "wrong type: array,"),
        ("invalid type: ", "wrong type: "),
        ("expected i64", "expected a whole number"),
        ("expected f64", "expected a number"),
        ("expected a sequence", "expected an array, like [\"...\"]"),
        ("expected a map", "expected a table"),
    ] {
        m = m.replace(from, to);
    }
    if let Some(i) = m.find("expected struct ") {
        m.replace_range(i.., "expected a table");
    }
    m
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn parse(text: &str) -> Result<Policy, PolicyError> {
        Policy::from_toml(text, "policy.toml")
    }

    /// Asserts an `Invalid` error at `line:column` for `key`, whose message contains `needle`.
    fn assert_invalid(text: &str, line: usize, column: usize, key: &str, needle: &str) {
        match parse(text) {
            Err(
                ref err @ PolicyError::Invalid {
                    line: l,
                    column: c,
                    key: ref k,
                    ref message,
                    ..
                },
            ) => {
                assert_eq!((l, c, k.as_str()), (line, column, key), "{err}");
                assert!(message.contains(needle), "{err}");
            }
            other => panic!("expected Invalid, got {other:?}"),
        }
    }

    #[test]
    fn default_parses_with_the_documented_values() {
        let p = Policy::default_policy();
        assert_eq!(p.schema_version, 1);
        let internal: Vec<String> = p.network.internal.iter().map(|n| n.to_string()).collect();
        assert_eq!(
            internal,
            [
                "10.0.0.0/8",
                "172.16.0.0/12",
                "192.168.0.0/16",
                "fc00::/7",
                "fe80::/10"
            ]
        );
        let servers: Vec<String> = p.licensing.servers.iter().map(|s| s.to_string()).collect();
        assert_eq!(servers, ["license.deepgram.com:443"]);
        assert!(p.licensing.proxies.is_empty());
        assert!(p.licensing.forward_proxies.is_empty());
        assert_eq!(p.licensing.max_egress_bytes_per_minute, 8192);
        assert_eq!(p.licensing.max_connection_seconds, 5.0);
        assert_eq!(p.licensing.cadence_seconds, 60);
        assert_eq!(p.licensing.cadence_tolerance_seconds, 15);
        assert!(!p.licensing.allow_held_connection);
        let hosted: Vec<String> = p
            .transcription
            .hosted
            .iter()
            .map(|h| h.to_string())
            .collect();
        assert_eq!(
            hosted,
            [
                "api.deepgram.com",
                "*.api.deepgram.com",
                "api.*.deepgram.com",
                "*.*.api.deepgram.com"
            ]
        );
        // Dedicated endpoints ({id}.{region}.api.deepgram.com) are hosted transcription too.
        assert!(p.is_hosted_transcription("abc123.eu.api.deepgram.com"));
        assert!(p.egress.allow.is_empty());
        assert_eq!(p.ingress.api_ports, [8080]);
        assert!(p.ingress.gateways.is_empty());
        assert!(!p.ingress.require_tls);
        assert!(p.names.is_empty());
        assert!(p.dns.resolvers.is_empty());
        assert_eq!(p.dns.max_queries_per_minute, 120);
        assert_eq!(p.dns.max_label_length, 52);
        assert_eq!(p.dns.max_label_entropy, 4.0);
        assert_eq!(p.dns.entropy_min_label_length, 20);
        assert_eq!(p.dns.max_txt_queries_per_minute, 30);
        assert_eq!(p.dns.answer_slack_seconds, 60);
        assert_eq!(p.flows.tcp_timeout_seconds, 300);
        assert_eq!(p.flows.udp_timeout_seconds, 60);
        assert_eq!(p.flows.icmp_timeout_seconds, 60);
        assert_eq!(p.flows.max_flows, 1_000_000);
        assert_eq!(p.audio.codec_kbps, [6.0, 16.0, 32.0, 256.0]);
        assert_eq!(p.audio.sustained_upload_bytes_per_minute, 60_000);
        assert_eq!(p.audio.sustained_minutes, 2);
        assert_eq!(p.capture.max_drop_ratio, 0.0);
    }

    #[test]
    fn omitted_keys_take_the_embedded_defaults() {
        let minimal = parse("schema_version = 1\n").unwrap();
        assert_eq!(minimal, Policy::default_policy());
        assert_eq!(minimal.sha256(), Policy::default_policy().sha256());
    }

    #[test]
    fn embedded_default_spells_out_every_key() {
        // Every key of the effective policy appears in the commented file, so `policy init`
        // documents them all.
        let full: toml::Table = toml::from_str(&Policy::default_policy().to_toml()).unwrap();
        let text: toml::Table = toml::from_str(DEFAULT_POLICY_TOML).unwrap();
        for (section, value) in &full {
            let written = text
                .get(section)
                .unwrap_or_else(|| panic!("{section} missing"));
            if let (Some(keys), Some(written)) = (value.as_table(), written.as_table()) {
                for key in keys.keys() {
                    assert!(written.contains_key(key), "{section}.{key} missing");
                }
            }
        }
    }

    #[test]
    fn example_policies_parse() {
        let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("policy");
        let mut seen = 0;
        for entry in std::fs::read_dir(dir).unwrap() {
            let path = entry.unwrap().path();
            if path.extension().is_some_and(|e| e == "toml") {
                Policy::load(&path).unwrap_or_else(|e| panic!("{e}"));
                seen += 1;
            }
        }
        assert!(seen >= 1);
    }

    #[test]
    fn syntax_error_is_located() {
        let err = parse("schema_version = 1\n[licensing]\nservers = [\"a:443\"\n").unwrap_err();
        match &err {
            PolicyError::Syntax { line, column, .. } => {
                // The array is left open at the end of line 3.
                assert_eq!((*line, *column), (3, 19), "{err}")
            }
            other => panic!("expected Syntax, got {other:?}"),
        }
        assert!(err
            .to_string()
            .starts_with("policy.toml:3:19: TOML syntax error"));
        let err = parse("schema_version = 1\n[network]\ninternal = \n").unwrap_err();
        assert!(
            matches!(
                err,
                PolicyError::Syntax {
                    line: 3,
                    column: 12,
                    ..
                }
            ),
            "{err}"
        );
    }

    #[test]
    fn unknown_keys_are_located() {
        assert_invalid(
            "schema_version = 1\n[licensing]\nmax_egress_bytes_per_minut = 1\n",
            3,
            1,
            "licensing.max_egress_bytes_per_minut",
            "unknown key `max_egress_bytes_per_minut`",
        );
        assert_invalid(
            "schema_version = 1\n\n[networks]\ninternal = []\n",
            3,
            2,
            "networks",
            "unknown key `networks`",
        );
    }

    #[test]
    fn wrong_types_are_located() {
        assert_invalid(
            "schema_version = 1\n[network]\ninternal = \"10.0.0.0/8\"\n",
            3,
            12,
            "network.internal",
            "expected an array",
        );
        assert_invalid(
            "schema_version = 1\n[ingress]\napi_ports = [8080, \"x\"]\n",
            3,
            20,
            "ingress.api_ports[1]",
            "expected a whole number",
        );
    }

    #[test]
    fn bad_cidr_is_located() {
        assert_invalid(
            "schema_version = 1\n[network]\ninternal = [\"10.0.0.0/8\", \"10.0.0.0/33\"]\n",
            3,
            27,
            "network.internal[1]",
            "not a CIDR block",
        );
        assert_invalid(
            "schema_version = 1\n[network]\ninternal = [\"10.0.0.1/8\"]\n",
            3,
            13,
            "network.internal[0]",
            "\"10.0.0.0/8\"",
        );
    }

    #[test]
    fn missing_port_is_located() {
        let text =
            "schema_version = 1\n\n\n\n[licensing]\n\nservers  = [\"license.deepgram.com\"]\n";
        assert_invalid(
            text,
            7,
            13,
            "licensing.servers[0]",
            "needs a port, like \"license.deepgram.com:443\"",
        );
        assert_eq!(
            parse(text).unwrap_err().to_string(),
            "policy.toml:7:13: licensing.servers[0]: \"license.deepgram.com\" needs a port, \
             like \"license.deepgram.com:443\""
        );
        assert_invalid(
            "schema_version = 1\n[licensing]\nproxies = [\"192.0.2.5\"]\n",
            3,
            12,
            "licensing.proxies[0]",
            "\"192.0.2.5:8443\"",
        );
    }

    #[test]
    fn wrong_schema_version_is_located() {
        let err = parse("# v2\nschema_version = 2\n[futures]\n").unwrap_err();
        match &err {
            PolicyError::Version {
                line,
                column,
                found,
                supported,
                ..
            } => assert_eq!((*line, *column, *found, *supported), (2, 18, 2, 1)),
            other => panic!("expected Version, got {other:?}"),
        }
        assert!(err
            .to_string()
            .starts_with("policy.toml:2:18: schema_version:"));
        assert_invalid("[network]\n", 1, 1, "schema_version", "missing");
        assert_invalid(
            "schema_version = \"1\"\n",
            1,
            18,
            "schema_version",
            "whole number",
        );
    }

    #[test]
    fn semantic_errors_are_located() {
        assert_invalid(
            "schema_version = 1\n[licensing]\nmax_egress_bytes_per_minute = -1\n",
            3,
            31,
            "licensing.max_egress_bytes_per_minute",
            "negative",
        );
        assert_invalid(
            "schema_version = 1\n[licensing]\ncadence_tolerance_seconds = 60\n",
            3,
            29,
            "licensing.cadence_tolerance_seconds",
            "smaller than",
        );
        assert_invalid(
            "schema_version = 1\n[licensing]\ncadence_seconds = 10\n",
            3,
            19,
            "licensing.cadence_seconds",
            "smaller than",
        );
        assert_invalid(
            "schema_version = 1\n[transcription]\nhosted = [\"api*.deepgram.com\"]\n",
            3,
            11,
            "transcription.hosted[0]",
            "whole label",
        );
        assert_invalid(
            "schema_version = 1\n[ingress]\napi_ports = [70000]\n",
            3,
            14,
            "ingress.api_ports[0]",
            "not a port",
        );
        assert_invalid(
            "schema_version = 1\n[names]\n\"203.0.113\" = \"x.example\"\n",
            3,
            1,
            "names.\"203.0.113\"",
            "not an IP address",
        );
        assert_invalid(
            "schema_version = 1\n[capture]\nmax_drop_ratio = 1.5\n",
            3,
            18,
            "capture.max_drop_ratio",
            "out of range",
        );
        assert_invalid(
            "schema_version = 1\n[dns]\nmax_label_length = 64\n",
            3,
            20,
            "dns.max_label_length",
            "above 63",
        );
        assert_invalid(
            "schema_version = 1\n[egress]\nallow = [\"2001:db8::53:53/udp\"]\n",
            3,
            10,
            "egress.allow[0]",
            "brackets",
        );
        assert_invalid(
            "schema_version = 1\n[licensing]\nservers = [\"203.0.113.10:443\"]\n",
            3,
            12,
            "licensing.servers[0]",
            "[names]",
        );
    }

    #[test]
    fn columns_count_characters() {
        // "é" is two bytes; the column is in characters, as editors show it.
        assert_invalid(
            "schema_version = 1\n[egress]\nallow = [\"é:443\"]\n",
            3,
            10,
            "egress.allow[0]",
            "cannot appear",
        );
    }

    #[test]
    fn io_error_names_the_file() {
        let err = Policy::load(Path::new("/nonexistent/policy.toml")).unwrap_err();
        assert!(matches!(err, PolicyError::Io { .. }));
        assert!(err
            .to_string()
            .starts_with("/nonexistent/policy.toml: cannot read"));
    }

    #[test]
    fn the_embedded_text_parses_to_the_default_either_way() {
        let default = Policy::default_policy();
        assert_eq!(parse(DEFAULT_POLICY_TOML).unwrap(), default);
        assert_eq!(
            super::parse(DEFAULT_POLICY_TOML, DEFAULT_ORIGIN, None).unwrap(),
            default
        );
    }

    #[test]
    fn omitted_keys_come_from_the_parsed_default_and_written_ones_win() {
        let p = parse(
            "schema_version = 1\n[licensing]\ncadence_seconds = 120\n[dns]\n\
             resolvers = [\"10.0.0.53\"]\n[names]\n\"203.0.113.10\" = \"license.deepgram.com\"\n",
        )
        .unwrap();
        assert_eq!(p.licensing.cadence_seconds, 120);
        assert_eq!(p.dns.resolvers.len(), 1);
        assert_eq!(p.names.len(), 1);
        // Everything not written is the default's, in the same section as written keys too.
        let mut rest = p.clone();
        rest.licensing.cadence_seconds = 60;
        rest.dns.resolvers.clear();
        rest.names.clear();
        assert_eq!(rest, Policy::default_policy());
        // An empty list written out is kept empty, not replaced by the default's.
        let p = parse("schema_version = 1\n[transcription]\nhosted = []\n").unwrap();
        assert!(p.transcription.hosted.is_empty());
    }

    #[test]
    fn without_a_fallback_every_key_must_be_written() {
        // Remove each key line of the embedded text in turn: read as the embedded default it
        // is refused naming that key; read as a user file it takes the default's value.
        let mut section = String::new();
        let mut checked = 0;
        for line in DEFAULT_POLICY_TOML.lines() {
            if let Some(name) = line.strip_prefix('[').and_then(|l| l.strip_suffix(']')) {
                section = name.to_string();
                continue;
            }
            let Some((key, _)) = line.split_once(" = ") else {
                continue;
            };
            if key.starts_with('#') || key == "schema_version" {
                continue;
            }
            let text = DEFAULT_POLICY_TOML.replacen(&format!("{line}\n"), "", 1);
            let path = format!("{section}.{key}");
            match super::parse(&text, DEFAULT_ORIGIN, None) {
                Err(PolicyError::Invalid {
                    line: 1,
                    column: 1,
                    key,
                    message,
                    ..
                }) => {
                    assert_eq!(key, path);
                    assert!(message.starts_with("missing;"), "{path}: {message}");
                }
                other => panic!("{path}: expected a missing-key error, got {other:?}"),
            }
            assert_eq!(parse(&text).unwrap(), Policy::default_policy(), "{path}");
            checked += 1;
        }
        // Every key of every section but [names], which has none by default.
        assert_eq!(checked, 30);
        let err = super::parse("schema_version = 1\n", "<built-in policy>", None).unwrap_err();
        assert_eq!(
            err.to_string(),
            "<built-in policy>:1:1: network.internal: missing; the built-in policy must spell \
             out every key, since omitted keys take their values from it"
        );
    }

    #[test]
    fn line_and_column_count_characters_from_one() {
        let text = "ab\ncé d";
        assert_eq!(line_column(text, 0), (1, 1));
        assert_eq!(line_column(text, 2), (1, 3));
        assert_eq!(line_column(text, 3), (2, 1));
        // "é" is two bytes: the byte after it is column 3; inside it counts as its start.
        assert_eq!(line_column(text, 6), (2, 3));
        assert_eq!(line_column(text, 5), (2, 2));
        // Past the end clamps to the end.
        assert_eq!(line_column(text, 100), (2, 5));
    }

    #[test]
    fn key_paths_name_the_smallest_enclosing_value() {
        let text = "schema_version = 1\n[network]\ninternal = [\"a\", \"b\"]\n[names]\n\
                    \"10.0.0.1\" = \"x\"\n";
        let at = |needle: &str| key_path_at(text, text.find(needle).unwrap());
        assert_eq!(at("\"b\"").as_deref(), Some("network.internal[1]"));
        assert_eq!(at("internal").as_deref(), Some("network.internal"));
        assert_eq!(at("\"x\"").as_deref(), Some("names.\"10.0.0.1\""));
        assert_eq!(key_path_at("not = [toml", 3), None);
        assert_eq!(quote_key("max_flows"), "max_flows");
        assert_eq!(quote_key("a-b"), "a-b");
        assert_eq!(quote_key("10.0.0.1"), "\"10.0.0.1\"");
        assert_eq!(quote_key(""), "\"\"");
    }

    #[test]
    fn serde_messages_are_rewritten_in_toml_words() {
        assert_eq!(
            friendly("unknown field `x`, expected `y`"),
            "unknown key `x` (a typo?); the only key allowed here is `y`"
        );
        assert_eq!(
            friendly("unknown field `x`, expected one of `y`, `z`"),
            "unknown key `x` (a typo?); the keys allowed here are `y`, `z`"
        );
        assert_eq!(
            friendly("invalid type: map, expected a sequence"),
            "wrong type: table, expected an array, like [\"...\"]"
        );
        assert_eq!(
            friendly("invalid type: string \"x\", expected i64"),
            "wrong type: string \"x\", expected a whole number"
        );
        assert_eq!(
            friendly("invalid type: integer `3`, expected struct RawLicensing"),
            "wrong type: integer `3`, expected a table"
        );
        // Only whole phrases are rewritten: "map" inside quoted file text stays.
        assert_eq!(
            friendly("invalid type: string \"roadmap\", expected a map"),
            "wrong type: string \"roadmap\", expected a table"
        );
    }

    proptest! {
        #[test]
        fn from_toml_never_panics(text in ".*") {
            let _ = Policy::from_toml(&text, "fuzz.toml");
        }

        #[test]
        fn edited_default_never_panics_and_stays_located(
            at in 0usize..DEFAULT_POLICY_TOML.len(),
            cut in 0usize..40,
            insert in "[ -~\n]{0,12}",
        ) {
            // Splicing into the real file reaches the semantic checks, not just the TOML parser.
            let mut text = DEFAULT_POLICY_TOML.to_string();
            let mut start = at;
            while !text.is_char_boundary(start) { start -= 1; }
            let mut end = (start + cut).min(text.len());
            while !text.is_char_boundary(end) { end -= 1; }
            text.replace_range(start..end, &insert);
            if let Err(err) = Policy::from_toml(&text, "fuzz.toml") {
                let lines = text.split('\n').count();
                match err {
                    PolicyError::Syntax { line, column, .. }
                    | PolicyError::Invalid { line, column, .. }
                    | PolicyError::Version { line, column, .. } => {
                        prop_assert!(line >= 1 && line <= lines && column >= 1);
                    }
                    PolicyError::Io { .. } => prop_assert!(false),
                }
            }
        }
    }
}
