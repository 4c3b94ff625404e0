//! `dg-audit live` flags: the clap definition, and their conversion into the validated
//! [`LiveConfig`] the live watch runs on. Nothing under `src/live` knows clap; every check of
//! a flag (and every message about a bad one) is here.

use std::net::SocketAddr;
use std::path::PathBuf;

use anyhow::{bail, Result};

use crate::live::{LiveConfig, RingOptions};
use crate::policy::Policy;
use crate::source::live::LiveOptions;

/// `dg-audit live`.
#[derive(clap::Args, Debug, Clone)]
pub struct LiveArgs {
    /// Interface to capture on, or "any" for all [default: libpcap's first interface].
    #[arg(short = 'i', long = "iface", value_name = "IFACE")]
    pub iface: Option<String>,
    /// Policy file (TOML); without it the embedded default, which mirrors Deepgram's documentation.
    #[arg(long, value_name = "POLICY")]
    pub policy: Option<PathBuf>,
    /// Bytes kept of each packet (enough for ClientHellos and HTTP headers).
    #[arg(short = 's', long, default_value_t = 65535, value_name = "BYTES")]
    pub snaplen: u32,
    /// Promiscuous mode: also see traffic of other hosts (mirror/SPAN ports; needs CAP_NET_ADMIN).
    #[arg(long, overrides_with = "no_promisc")]
    pub promisc: bool,
    /// No promiscuous mode (the default): only this host's traffic.
    #[arg(long = "no-promisc", overrides_with = "promisc")]
    pub no_promisc: bool,
    /// Immediate mode: packets are handed over as they arrive (the default).
    #[arg(long, overrides_with = "no_immediate")]
    pub immediate: bool,
    /// Let the kernel batch packets (less CPU, up to 100 ms later alerts).
    #[arg(long = "no-immediate", overrides_with = "immediate")]
    pub no_immediate: bool,
    /// Kernel capture buffer in KiB (tcpdump's -B); raise it when drops are reported.
    #[arg(
        short = 'B',
        long = "buffer-size",
        default_value_t = 8192,
        value_name = "KIB"
    )]
    pub buffer_size: u32,
    /// Stop after this many frames.
    #[arg(short = 'c', long, value_name = "COUNT")]
    pub count: Option<u64>,
    /// Stop after this many seconds.
    #[arg(long, value_name = "SECS")]
    pub duration: Option<u64>,
    /// Drop privileges to this user once the interface is open (as tcpdump -Z).
    #[arg(short = 'Z', long = "user", value_name = "USER")]
    pub user: Option<String>,
    /// Write alerts (NDJSON) to this file, appending [default: standard output].
    #[arg(long, value_name = "FILE")]
    pub alerts: Option<PathBuf>,
    /// Serve Prometheus metrics on ADDR (e.g. 127.0.0.1:9464, or :9464 for every address).
    #[arg(long, value_name = "ADDR", value_parser = parse_listen_addr)]
    pub metrics: Option<SocketAddr>,
    /// Keep a rotating pcap ring of evidence in DIR; alerts name the files.
    #[arg(short = 'w', value_name = "DIR")]
    pub write_dir: Option<PathBuf>,
    /// Size of one ring file, in millions of bytes (tcpdump's -C).
    #[arg(long, default_value_t = 100, value_name = "MB", requires = "write_dir")]
    pub ring_file_mb: u64,
    /// Ring files kept (tcpdump's -W); the oldest is deleted.
    #[arg(long, default_value_t = 10, value_name = "N", requires = "write_dir")]
    pub ring_files: usize,
    /// Write the audit (JSON, as `analyze --format json`) to FILE on exit.
    #[arg(long, value_name = "FILE")]
    pub audit: Option<PathBuf>,
    /// Expected seconds between check-ins (overrides the policy's cadence_seconds).
    #[arg(long, value_name = "SECS")]
    pub cadence: Option<u64>,
    /// Drift allowed before a check-in is overdue (overrides cadence_tolerance_seconds).
    #[arg(long, value_name = "SECS")]
    pub cadence_tolerance: Option<u64>,
    /// Name of this sensor, recorded in the audit for merged reports.
    #[arg(long)]
    pub sensor: Option<String>,
    /// Read the BPF filter expression from FILE (tcpdump's -F); `#` starts a comment.
    #[arg(short = 'F', value_name = "FILE")]
    pub filter_file: Option<PathBuf>,
    /// Print the interfaces libpcap can capture on, one per line, and exit (tcpdump's -D).
    #[arg(short = 'D', long = "list-interfaces")]
    pub list_interfaces: bool,
    /// BPF filter expression (tcpdump syntax), e.g. `tcp port 443 or udp port 53`: the words
    /// that are not options (options may come before or after them), or everything after `--`.
    #[arg(value_name = "EXPRESSION")]
    pub expression: Vec<String>,
}

impl LiveArgs {
    /// The validated configuration: the policy with its overrides (loaded and checked), the
    /// capture options with tcpdump's floors, the ring limits.
    pub fn config(&self) -> Result<LiveConfig> {
        let (policy, policy_source) = effective_policy(self)?;
        if self.write_dir.is_some() && (self.ring_file_mb == 0 || self.ring_files == 0) {
            bail!("--ring-file-mb and --ring-files must be at least 1");
        }
        let filter = super::filter::expression(&self.expression, self.filter_file.as_deref())?;
        Ok(LiveConfig {
            capture: LiveOptions {
                iface: self.iface.clone(),
                // Below 64 bytes not even the headers fit; tcpdump raises small values too.
                snaplen: self.snaplen.max(64),
                promisc: self.promisc && !self.no_promisc,
                immediate: !self.no_immediate,
                buffer_kib: self.buffer_size.max(64),
                filter,
            },
            policy,
            policy_source,
            sensor: self.sensor.clone(),
            count: self.count,
            duration_secs: self.duration,
            user: self.user.clone(),
            alerts: self.alerts.clone(),
            metrics: self.metrics,
            ring: self.write_dir.as_ref().map(|dir| RingOptions {
                dir: dir.clone(),
                file_bytes: self.ring_file_mb.saturating_mul(1_000_000),
                files: self.ring_files,
            }),
            audit: self.audit.clone(),
        })
    }
}

/// `dg-audit live -D`: the interfaces libpcap can capture on, numbered, with libpcap's
/// description and flags, in tcpdump -D's format (`3.lo [Up, Running, Loopback]`).
pub fn list_interfaces(out: &mut dyn std::io::Write) -> Result<()> {
    let devices = pcap::Device::list()
        .map_err(|e| anyhow::anyhow!("cannot list the capture interfaces: {e}"))?;
    if devices.is_empty() {
        bail!(
            "libpcap lists no interface to capture on (capturing needs root or \
             cap_net_raw,cap_net_admin; see README, Live monitoring)"
        );
    }
    for (n, device) in devices.iter().enumerate() {
        writeln!(out, "{}", interface_line(n + 1, device))?;
    }
    out.flush()?;
    Ok(())
}

/// One line of `-D`, as tcpdump writes it.
fn interface_line(number: usize, device: &pcap::Device) -> String {
    use pcap::ConnectionStatus;
    let mut line = format!("{number}.{}", device.name);
    if let Some(desc) = device.desc.as_deref().filter(|d| !d.is_empty()) {
        line.push_str(&format!(" ({desc})"));
    }
    let f = &device.flags;
    let mut words: Vec<&str> = [
        (f.is_up(), "Up"),
        (f.is_running(), "Running"),
        (f.is_loopback(), "Loopback"),
        (f.is_wireless(), "Wireless"),
    ]
    .into_iter()
    .filter_map(|(set, word)| set.then_some(word))
    .collect();
    if words.is_empty() {
        words.push("none");
    }
    let status = match (&f.connection_status, f.is_wireless()) {
        (ConnectionStatus::Unknown, false) => Some("Connection status unknown"),
        (ConnectionStatus::Connected, false) => Some("Connected"),
        (ConnectionStatus::Disconnected, false) => Some("Disconnected"),
        (ConnectionStatus::Unknown, true) => Some("Association status unknown"),
        (ConnectionStatus::Connected, true) => Some("Associated"),
        (ConnectionStatus::Disconnected, true) => Some("Not associated"),
        (ConnectionStatus::NotApplicable, _) => None,
    };
    words.extend(status);
    line.push_str(&format!(" [{}]", words.join(", ")));
    line
}

fn parse_listen_addr(text: &str) -> Result<SocketAddr, String> {
    let full = if text.starts_with(':') {
        format!("0.0.0.0{text}")
    } else {
        text.to_string()
    };
    full.parse().map_err(|_| {
        format!("{text:?} is not an address:port; write e.g. 127.0.0.1:9464, [::1]:9464 or :9464")
    })
}

/// The policy with the command line's overrides, and how it was given.
fn effective_policy(args: &LiveArgs) -> Result<(Policy, Option<String>)> {
    let mut policy = match &args.policy {
        Some(p) => Policy::load(p)?,
        None => Policy::default_policy(),
    };
    let mut source = args.policy.as_ref().map(|p| p.display().to_string());
    let mut overrides = Vec::new();
    if let Some(c) = args.cadence {
        policy.licensing.cadence_seconds = c;
        overrides.push(format!("--cadence {c}"));
    }
    if let Some(t) = args.cadence_tolerance {
        policy.licensing.cadence_tolerance_seconds = t;
        overrides.push(format!("--cadence-tolerance {t}"));
    }
    let l = &policy.licensing;
    if l.cadence_seconds == 0 || l.cadence_tolerance_seconds >= l.cadence_seconds {
        bail!(
            "cadence {} s with tolerance {} s: the cadence must be positive and the tolerance below it (e.g. --cadence 60 --cadence-tolerance 15)",
            l.cadence_seconds,
            l.cadence_tolerance_seconds
        );
    }
    if !overrides.is_empty() {
        let base = source.unwrap_or_else(|| "default policy".into());
        source = Some(format!("{base} with {}", overrides.join(" ")));
    }
    Ok((policy, source))
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;

    #[derive(Parser)]
    struct Cli {
        #[command(flatten)]
        live: LiveArgs,
    }

    #[test]
    fn parses_tcpdump_style_flags_and_a_trailing_filter() {
        let cli = Cli::try_parse_from([
            "live",
            "-i",
            "eth0",
            "-s",
            "1500",
            "-c",
            "10",
            "-Z",
            "nobody",
            "-w",
            "/tmp/r",
            "--ring-files",
            "3",
            "--metrics",
            ":9464",
            "--no-promisc",
            "--promisc",
            "tcp",
            "port",
            "443",
        ])
        .expect("parses");
        let a = cli.live;
        assert_eq!(a.iface.as_deref(), Some("eth0"));
        assert_eq!(a.snaplen, 1500);
        assert_eq!(a.count, Some(10));
        assert!(a.promisc && !a.no_promisc);
        assert!(!a.no_immediate);
        assert_eq!(a.ring_files, 3);
        assert_eq!(a.metrics, Some("0.0.0.0:9464".parse().expect("addr")));
        assert_eq!(a.expression.join(" "), "tcp port 443");
        let c = a.config().expect("valid");
        assert!(c.capture.promisc && c.capture.immediate);
        assert_eq!(c.capture.filter.as_deref(), Some("tcp port 443"));
        assert_eq!(c.ring.map(|r| r.file_bytes), Some(100_000_000));
    }

    #[test]
    fn cadence_overrides_are_validated_and_recorded() {
        let cli = Cli::try_parse_from(["live", "--cadence", "3", "--cadence-tolerance", "1"])
            .expect("parses");
        let (policy, source) = effective_policy(&cli.live).expect("valid");
        assert_eq!(policy.licensing.cadence_seconds, 3);
        assert_eq!(policy.licensing.cadence_tolerance_seconds, 1);
        assert_eq!(
            source.as_deref(),
            Some("default policy with --cadence 3 --cadence-tolerance 1")
        );
        let cli = Cli::try_parse_from(["live", "--cadence", "3"]).expect("parses");
        let err = effective_policy(&cli.live).expect_err("tolerance 15 >= cadence 3");
        assert!(err.to_string().contains("tolerance below it"), "{err}");
    }

    #[test]
    fn options_after_the_filter_are_options_and_unknown_flags_are_errors() {
        let cli = Cli::try_parse_from([
            "live",
            "-i",
            "lo",
            "tcp",
            "port",
            "443",
            "--duration",
            "1",
            "-c",
            "5",
        ])
        .expect("parses");
        assert_eq!(cli.live.expression.join(" "), "tcp port 443");
        assert_eq!(cli.live.duration, Some(1));
        assert_eq!(cli.live.count, Some(5));
        let cli = Cli::try_parse_from(["live", "--duration", "1", "--", "tcp", "port", "443"])
            .expect("parses");
        assert_eq!(cli.live.expression.join(" "), "tcp port 443");
        let err = Cli::try_parse_from(["live", "tcp", "port", "443", "--bogus"])
            .err()
            .expect("unknown flag");
        assert_eq!(err.kind(), clap::error::ErrorKind::UnknownArgument);
    }

    #[test]
    fn interface_lines_read_as_tcpdump_d() {
        let device = |flags: u32, desc: Option<&str>| pcap::Device {
            name: "lo".into(),
            desc: desc.map(String::from),
            addresses: Vec::new(),
            flags: flags.into(),
        };
        // PCAP_IF_LOOPBACK 1, UP 2, RUNNING 4; connection status NOT_APPLICABLE 0x30.
        assert_eq!(
            interface_line(3, &device(0x1 | 0x2 | 0x4 | 0x30, None)),
            "3.lo [Up, Running, Loopback]"
        );
        assert_eq!(
            interface_line(1, &device(0x2 | 0x4 | 0x10, Some("Ethernet"))),
            "1.lo (Ethernet) [Up, Running, Connected]"
        );
        assert_eq!(interface_line(4, &device(0x30, None)), "4.lo [none]");
    }

    #[test]
    fn ring_options_need_a_directory() {
        assert!(Cli::try_parse_from(["live", "--ring-files", "3"]).is_err());
    }
}
