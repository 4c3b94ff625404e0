//! The live input as the audit lists it: the same facts a capture file has ([`FileFacts`]), built
//! frame by frame, plus libpcap's drop counters folded into 64-bit totals.
//!
//! Invariants:
//! - The SHA-256 is that of the frames as a classic little-endian pcap stream with the capture's
//!   snaplen and link type (what `tcpdump -w` would write), so a live audit and the offline audit
//!   of the same packets carry the same hash.
//! - Drops only grow: libpcap's 32-bit counters wrap, and the wrap is folded in.

use sha2::{Digest, Sha256};

use crate::source::live::LiveStats;
use crate::source::{FileFacts, Frame};
use crate::units::NANOS;

/// The input facts of a live capture, and its drop totals.
pub struct LiveInput {
    /// Facts so far (the hash is filled in by [`LiveInput::facts`]).
    pub facts: FileFacts,
    hasher: Sha256,
    /// libpcap's last raw (wrapping) counters.
    kernel_raw: u32,
    iface_raw: u32,
    /// Packets the kernel dropped (capture buffer full), since the start.
    pub kernel_drops: u64,
    /// Packets the interface or its driver dropped, since the start.
    pub iface_drops: u64,
}

impl LiveInput {
    /// An input named `name` (`live:eth0`) of this link type and snaplen, before any frame.
    pub fn new(name: &str, link_type: u32, snaplen: u32) -> LiveInput {
        let mut header = Vec::with_capacity(24);
        header.extend_from_slice(&0xa1b2_c3d4u32.to_le_bytes());
        header.extend_from_slice(&2u16.to_le_bytes());
        header.extend_from_slice(&4u16.to_le_bytes());
        header.extend_from_slice(&0u32.to_le_bytes());
        header.extend_from_slice(&0u32.to_le_bytes());
        header.extend_from_slice(&snaplen.to_le_bytes());
        header.extend_from_slice(&link_type.to_le_bytes());
        let mut hasher = Sha256::new();
        hasher.update(&header);
        LiveInput {
            facts: FileFacts {
                path: name.to_string(),
                size_bytes: header.len() as u64,
                format: "pcap".into(),
                byte_order: "le".into(),
                link_types: vec![link_type],
                snaplen,
                ..FileFacts::default()
            },
            hasher,
            kernel_raw: 0,
            iface_raw: 0,
            kernel_drops: 0,
            iface_drops: 0,
        }
    }

    /// Counts and hashes one frame as its pcap record (microsecond timestamps, as pcap writes).
    pub fn frame(&mut self, frame: &Frame<'_>) {
        let caplen = frame.data.len() as u32;
        let mut rec = [0u8; 16];
        let secs = frame.ts_nanos.div_euclid(NANOS) as u32;
        let micros = (frame.ts_nanos.rem_euclid(NANOS) / 1_000) as u32;
        rec[0..4].copy_from_slice(&secs.to_le_bytes());
        rec[4..8].copy_from_slice(&micros.to_le_bytes());
        rec[8..12].copy_from_slice(&caplen.to_le_bytes());
        rec[12..16].copy_from_slice(&frame.wire_len.to_le_bytes());
        self.hasher.update(rec);
        self.hasher.update(frame.data);
        self.facts.size_bytes += 16 + caplen as u64;
        self.facts.records += 1;
        if caplen < frame.wire_len {
            self.facts.truncated_frames += 1;
        }
    }

    /// Folds libpcap's cumulative 32-bit counters into 64-bit totals; returns the drops since
    /// the last call (kernel, interface).
    pub fn stats(&mut self, stats: LiveStats) -> (u64, u64) {
        let k = stats.kernel_dropped.wrapping_sub(self.kernel_raw) as u64;
        let i = stats.iface_dropped.wrapping_sub(self.iface_raw) as u64;
        self.kernel_raw = stats.kernel_dropped;
        self.iface_raw = stats.iface_dropped;
        self.kernel_drops += k;
        self.iface_drops += i;
        self.facts.capture_drops = self.kernel_drops + self.iface_drops;
        (k, i)
    }

    /// The capture stopped short (interface gone): the input is incomplete, and says why.
    pub fn fault(&mut self, message: String) {
        self.facts.warnings.push(message);
        self.facts.incomplete = true;
    }

    /// The facts with the hash of every frame so far.
    pub fn facts(&self) -> FileFacts {
        let mut f = self.facts.clone();
        f.sha256 = hex::encode(self.hasher.clone().finalize());
        f
    }
}
