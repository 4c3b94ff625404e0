//! Live capture from a network interface with libpcap.
//!
//! [`LiveCapture`] opens an interface (or `any`) with tcpdump's knobs (snaplen, promiscuous mode,
//! immediate mode, kernel buffer size, a BPF filter) and yields [`Frame`]s that borrow libpcap's
//! buffer, exactly as capture files do, so the same decoder and flow table serve both.
//!
//! Invariants:
//! - [`LiveCapture::next_frame`] returns within [`READ_TIMEOUT_MS`] even when no packet arrives,
//!   so the caller's wall-clock checks (overdue check-ins, shutdown) run during silence. libpcap's
//!   own read timeout does not promise that on Linux (a blocking read may wait for the first
//!   packet indefinitely), so the capture is non-blocking and waits with poll(2) on its descriptor.
//! - Errors name the interface and say what to do (permission: root or `setcap`; unknown
//!   interface: the ones that exist).

use std::os::fd::AsRawFd;

use pcap::{Active, Capture, Device};

use crate::source::Frame;
use crate::units::NANOS;

/// How long a read waits for a packet before returning with none (milliseconds).
pub const READ_TIMEOUT_MS: i32 = 100;

/// How to open the interface.
#[derive(Debug, Clone)]
pub struct LiveOptions {
    /// Interface name, `any`, or None for libpcap's default device.
    pub iface: Option<String>,
    /// Bytes kept of each packet.
    pub snaplen: u32,
    /// Promiscuous mode (traffic of other hosts on a mirror or SPAN port).
    pub promisc: bool,
    /// Deliver packets as they arrive rather than in kernel-buffered batches.
    pub immediate: bool,
    /// Kernel capture buffer, KiB (tcpdump's `-B`).
    pub buffer_kib: u32,
    /// BPF filter expression (tcpdump syntax), if any.
    pub filter: Option<String>,
}

/// Why live capture could not start or stopped.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum LiveError {
    /// Capture needs CAP_NET_RAW (and CAP_NET_ADMIN for promiscuous mode).
    #[error("{iface}: no permission to capture ({message}); run as root, or grant the capabilities once with `sudo setcap cap_net_raw,cap_net_admin=eip {exe}`")]
    Permission {
        iface: String,
        message: String,
        exe: String,
    },
    #[error("no interface named {iface:?}; capture on one of: {available} (or \"any\")")]
    NoSuchDevice { iface: String, available: String },
    #[error(
        "{iface}: the interface is down; bring it up (`ip link set {iface} up`) or choose another"
    )]
    InterfaceDown { iface: String },
    #[error("promiscuous mode is not available on the \"any\" pseudo-interface; drop --promisc or name one interface")]
    PromiscOnAny,
    #[error("no interface to capture on: libpcap found none; name one with -i")]
    NoDefaultDevice,
    #[error("{iface}: cannot open for capture: {message}")]
    Open { iface: String, message: String },
    #[error("{iface}: bad BPF filter {expression:?}: {message}; the syntax is tcpdump's (man pcap-filter)")]
    Filter {
        iface: String,
        expression: String,
        message: String,
    },
    #[error("{iface}: capture stopped: {message}")]
    Read { iface: String, message: String },
}

impl LiveError {
    /// True when the error ended a running capture because the interface went away or down.
    pub fn is_interface_fault(&self) -> bool {
        matches!(self, LiveError::Read { .. })
    }
}

/// Capture counters libpcap keeps since the interface was opened.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct LiveStats {
    /// Packets the kernel passed to the capture.
    pub received: u32,
    /// Packets dropped because the capture buffer was full (dg-audit fell behind).
    pub kernel_dropped: u32,
    /// Packets dropped by the interface or its driver.
    pub iface_dropped: u32,
}

/// An open live capture.
pub struct LiveCapture {
    cap: Capture<Active>,
    iface: String,
    link_type: u32,
    snaplen: u32,
    /// The last read returned a packet: try the next one before waiting.
    flowing: bool,
}

fn current_exe() -> String {
    std::env::current_exe()
        .map(|p| p.display().to_string())
        .unwrap_or_else(|_| "$(command -v dg-audit)".into())
}

fn device_names() -> Vec<String> {
    Device::list()
        .map(|list| list.into_iter().map(|d| d.name).collect())
        .unwrap_or_default()
}

impl LiveCapture {
    /// Opens the interface. Needs root or CAP_NET_RAW; privileges can be dropped right after.
    pub fn open(opts: &LiveOptions) -> Result<LiveCapture, LiveError> {
        let iface = match &opts.iface {
            Some(name) => name.clone(),
            None => Device::lookup()
                .ok()
                .flatten()
                .map(|d| d.name)
                .ok_or(LiveError::NoDefaultDevice)?,
        };
        if iface == "any" && opts.promisc {
            return Err(LiveError::PromiscOnAny);
        }
        let names = device_names();
        if !names.is_empty() && !names.iter().any(|n| n == &iface) {
            return Err(LiveError::NoSuchDevice {
                iface,
                available: names.join(", "),
            });
        }
        let open_err = |iface: &str, message: String| classify_open_error(iface, message);
        let inactive = Capture::from_device(iface.as_str())
            .map_err(|e| open_err(&iface, e.to_string()))?
            .snaplen(opts.snaplen.min(i32::MAX as u32) as i32)
            .promisc(opts.promisc)
            .immediate_mode(opts.immediate)
            .timeout(READ_TIMEOUT_MS)
            .buffer_size((opts.buffer_kib.saturating_mul(1024)).min(i32::MAX as u32) as i32);
        let mut cap = inactive
            .open()
            .map_err(|e| open_err(&iface, pcap_message(&e)))?
            .setnonblock()
            .map_err(|e| open_err(&iface, pcap_message(&e)))?;
        if let Some(expression) = opts.filter.as_deref().filter(|f| !f.trim().is_empty()) {
            cap.filter(expression, true)
                .map_err(|e| LiveError::Filter {
                    iface: iface.clone(),
                    expression: expression.to_string(),
                    message: pcap_message(&e),
                })?;
        }
        let link_type = cap.get_datalink().0 as u32;
        Ok(LiveCapture {
            cap,
            iface,
            link_type,
            snaplen: opts.snaplen,
            flowing: false,
        })
    }

    /// The interface captured on.
    pub fn iface(&self) -> &str {
        &self.iface
    }

    /// LINKTYPE_* of the frames.
    pub fn link_type(&self) -> u32 {
        self.link_type
    }

    /// The snaplen asked for.
    pub fn snaplen(&self) -> u32 {
        self.snaplen
    }

    /// The next frame, or None when [`READ_TIMEOUT_MS`] passed without one.
    pub fn next_frame(&mut self) -> Result<Option<Frame<'_>>, LiveError> {
        if !self.flowing && !self.wait_readable()? {
            return Ok(None);
        }
        let link_type = self.link_type;
        match self.cap.next_packet() {
            Ok(packet) => {
                self.flowing = true;
                let h = packet.header;
                // time_t and suseconds_t are i64 or i32 by platform; `from` widens either.
                #[allow(clippy::useless_conversion)]
                let ts_nanos = i64::from(h.ts.tv_sec)
                    .saturating_mul(NANOS)
                    .saturating_add(i64::from(h.ts.tv_usec) * 1_000);
                Ok(Some(Frame {
                    ts_nanos,
                    link_type,
                    data: packet.data,
                    wire_len: h.len,
                    file_index: 0,
                    interface: 0,
                    has_ts: true,
                }))
            }
            // Non-blocking: nothing buffered right now.
            Err(pcap::Error::TimeoutExpired) => {
                self.flowing = false;
                Ok(None)
            }
            Err(e) => Err(LiveError::Read {
                iface: self.iface.clone(),
                message: read_message(&e),
            }),
        }
    }

    /// Waits up to the read timeout for the descriptor to have packets (or an error to report).
    fn wait_readable(&mut self) -> Result<bool, LiveError> {
        let mut fds = libc::pollfd {
            fd: self.cap.as_raw_fd(),
            events: libc::POLLIN,
            revents: 0,
        };
        // SAFETY: one valid pollfd, owned by this frame, for the duration of the call.
        let n = unsafe { libc::poll(&mut fds, 1, READ_TIMEOUT_MS) };
        if n < 0 {
            let err = std::io::Error::last_os_error();
            if err.kind() == std::io::ErrorKind::Interrupted {
                return Ok(false);
            }
            return Err(LiveError::Read {
                iface: self.iface.clone(),
                message: format!("poll: {err}"),
            });
        }
        // Readable, or an error condition the next read will name (interface down or gone).
        Ok(n > 0)
    }

    /// libpcap's counters (received, kernel drops, interface drops) since opening.
    pub fn stats(&mut self) -> Option<LiveStats> {
        self.cap.stats().ok().map(|s| LiveStats {
            received: s.received,
            kernel_dropped: s.dropped,
            iface_dropped: s.if_dropped,
        })
    }
}

fn pcap_message(e: &pcap::Error) -> String {
    match e {
        pcap::Error::PcapError(m) if !m.is_empty() => m.clone(),
        other => other.to_string(),
    }
}

fn read_message(e: &pcap::Error) -> String {
    let m = pcap_message(e);
    if m.contains("went down") || m.contains("Network is down") {
        format!("{m} (the interface went down; nothing measured before is lost)")
    } else if m.contains("disappeared") || m.contains("No such device") {
        format!("{m} (the interface is gone; nothing measured before is lost)")
    } else {
        m
    }
}

fn classify_open_error(iface: &str, message: String) -> LiveError {
    let lower = message.to_ascii_lowercase();
    if lower.contains("permission") || lower.contains("not permitted") {
        LiveError::Permission {
            iface: iface.to_string(),
            message,
            exe: current_exe(),
        }
    } else if lower.contains("no such device") {
        LiveError::NoSuchDevice {
            iface: iface.to_string(),
            available: device_names().join(", "),
        }
    } else if lower.contains("not up") {
        LiveError::InterfaceDown {
            iface: iface.to_string(),
        }
    } else {
        LiveError::Open {
            iface: iface.to_string(),
            message: if message.is_empty() {
                "libpcap gave no reason".into()
            } else {
                message
            },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn open_errors_say_what_to_do() {
        let e = classify_open_error("eth0", "socket: Operation not permitted".into());
        let text = e.to_string();
        assert!(matches!(e, LiveError::Permission { .. }));
        assert!(
            text.contains("setcap cap_net_raw,cap_net_admin=eip"),
            "{text}"
        );
        assert!(text.contains("run as root"), "{text}");
        let e = classify_open_error("eth9", "eth9: No such device exists".into());
        assert!(matches!(e, LiveError::NoSuchDevice { .. }));
        let e = classify_open_error("eth1", "eth1: That device is not up".into());
        assert!(e.to_string().contains("ip link set eth1 up"));
        let e = classify_open_error("eth1", String::new());
        assert!(e.to_string().contains("libpcap gave no reason"));
    }

    #[test]
    fn promiscuous_any_is_refused_before_opening() {
        let opts = LiveOptions {
            iface: Some("any".into()),
            snaplen: 65535,
            promisc: true,
            immediate: true,
            buffer_kib: 1024,
            filter: None,
        };
        assert!(matches!(
            LiveCapture::open(&opts),
            Err(LiveError::PromiscOnAny)
        ));
    }

    #[test]
    fn read_faults_explain_the_interface_state() {
        let m = read_message(&pcap::Error::PcapError("The interface went down".into()));
        assert!(m.contains("nothing measured before is lost"));
        let m = read_message(&pcap::Error::PcapError("The interface disappeared".into()));
        assert!(m.contains("interface is gone"));
    }
}
