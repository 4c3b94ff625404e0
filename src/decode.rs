//! Decode: link layer to transport, by etherparse's lax slicing (layers parsed before a snaplen cut
//! are kept). Every frame either yields a [`Packet`] borrowing the frame, or is counted under a
//! [`SkipReason`]; nothing is dropped silently.
//!
//! Link types: Ethernet (with 802.1Q/802.1ad tags, up to three), Linux SLL and SLL2, raw IPv4/IPv6,
//! BSD null/loopback. IPv4 and IPv6 fragments are reassembled (bounded) with etherparse's
//! `IpDefragBuf`, and the reassembled datagram is reported once, as Zeek does.

use std::collections::HashMap;
use std::net::IpAddr;

use etherparse::defrag::IpDefragBuf;
use etherparse::{
    EtherType, IpFragOffset, IpNumber, LaxLinkExtSlice, LaxNetSlice, LaxSlicedPacket, TcpSlice,
    TransportSlice, UdpSlice,
};
use serde::{Deserialize, Serialize};

use crate::source::Frame;

/// LINKTYPE_* numbers dg-audit understands.
mod linktype {
    pub const NULL: u32 = 0;
    pub const ETHERNET: u32 = 1;
    pub const RAW_OPENBSD: u32 = 12;
    pub const RAW_BSDOS: u32 = 14;
    pub const RAW: u32 = 101;
    pub const LOOP: u32 = 108;
    pub const LINUX_SLL: u32 = 113;
    pub const IPV4: u32 = 228;
    pub const IPV6: u32 = 229;
    pub const LINUX_SLL2: u32 = 276;
}

/// TCP flag bits as on the wire.
pub mod tcp_flags {
    pub const FIN: u8 = 0x01;
    pub const SYN: u8 = 0x02;
    pub const RST: u8 = 0x04;
    pub const PSH: u8 = 0x08;
    pub const ACK: u8 = 0x10;
}

/// A TCP segment, borrowed from its frame.
#[derive(Debug, Clone, Copy)]
pub struct TcpSegment<'a> {
    pub src_port: u16,
    pub dst_port: u16,
    pub seq: u32,
    pub ack: u32,
    /// FIN, SYN, RST, PSH, ACK... bits (see [`tcp_flags`]).
    pub flags: u8,
    pub window: u16,
    /// Captured payload (may be shorter than `wire_payload_len` after a snaplen cut).
    pub payload: &'a [u8],
    /// Payload length on the wire, from the IP length fields (tshark's `tcp.len`).
    pub wire_payload_len: u32,
    /// The MSS option of a SYN (read only on SYNs: the flow table sizes the segments of bytes it
    /// infers from acknowledgements with it).
    pub mss: Option<u16>,
}

/// Transport layer of a decoded packet.
#[derive(Debug, Clone, Copy)]
pub enum Transport<'a> {
    Tcp(TcpSegment<'a>),
    Udp {
        src_port: u16,
        dst_port: u16,
        payload: &'a [u8],
        wire_payload_len: u32,
    },
    Icmp {
        v6: bool,
        icmp_type: u8,
        code: u8,
        /// Echo identifier for echo request/reply, 0 otherwise.
        ident: u16,
        /// True for error messages (unreachable, time exceeded...) that quote another packet.
        error: bool,
        /// Bytes after the 8-byte ICMP header on the wire (what Zeek counts as ICMP payload).
        wire_payload_len: u32,
    },
    /// A protocol dg-audit does not decode (IGMP, OSPF, ...): its whole IP payload is payload.
    Other {
        wire_payload_len: u32,
    },
}

/// One decoded IP packet (or reassembled datagram).
#[derive(Debug, Clone, Copy)]
pub struct Packet<'a> {
    pub ts_nanos: i64,
    pub src: IpAddr,
    pub dst: IpAddr,
    pub ip_proto: u8,
    /// IP length on the wire: IPv4 total length, IPv6 payload length + 40 (Zeek's ip_bytes).
    pub ip_bytes: u32,
    /// Outermost VLAN id, if tagged.
    pub vlan: Option<u16>,
    /// The frame was cut by the snaplen somewhere inside this packet.
    pub truncated: bool,
    /// IPv4 TTL or IPv6 hop limit as captured.
    pub ttl: u8,
    /// Whether the IPv4 header and transport checksums hold.
    pub checksum: Checksum,
    pub transport: Transport<'a>,
}

/// What the checksums of a packet say. Bad checksums are normal on captures taken on a host whose
/// NIC fills them in (checksum offload), and a classic evasion otherwise (the receiver drops the
/// packet, a monitor that ignores checksums does not): dg-audit keeps such packets, counts them,
/// and never prefers them over a good copy.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Checksum {
    /// Every checksum the packet carries was verified and holds.
    Good,
    /// The IPv4 header checksum or the TCP/UDP/ICMP checksum is wrong.
    Bad,
    /// Not verifiable: the snaplen cut the packet, or the protocol carries none dg-audit checks.
    Unverified,
}

/// Checksum counters, by what failed (RFC 791, 793, 768, 792 and RFC 8200 section 8.1).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ChecksumStats {
    pub bad_ipv4_header: u64,
    pub bad_tcp: u64,
    pub bad_udp: u64,
    pub bad_icmp: u64,
    /// Packets whose transport checksum could not be verified (cut by the snaplen).
    pub unverified: u64,
}

impl ChecksumStats {
    /// Packets with any bad checksum.
    pub fn bad(&self) -> u64 {
        self.bad_ipv4_header + self.bad_tcp + self.bad_udp + self.bad_icmp
    }
}

/// Why a frame produced no packet.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SkipReason {
    /// ARP, LLDP, STP and other non-IP frames.
    NotIp,
    /// A link type dg-audit does not decode.
    UnsupportedLinkType,
    /// The frame ends inside the link-layer header.
    TruncatedLink,
    /// The IP header is missing, cut short or invalid.
    BadIp,
    /// The transport header is cut short or invalid (the IP layer was still read).
    BadTransport,
    /// A fragment that is held until its datagram is complete.
    FragmentHeld,
    /// A fragment that could not be reassembled (overlap, too big, table full, timed out).
    FragmentDropped,
}

impl SkipReason {
    /// All reasons, for stable reporting.
    pub const ALL: [SkipReason; 7] = [
        SkipReason::NotIp,
        SkipReason::UnsupportedLinkType,
        SkipReason::TruncatedLink,
        SkipReason::BadIp,
        SkipReason::BadTransport,
        SkipReason::FragmentHeld,
        SkipReason::FragmentDropped,
    ];
}

/// Counters kept by the decoder.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct DecodeStats {
    pub frames: u64,
    pub packets: u64,
    pub wire_bytes: u64,
    pub captured_bytes: u64,
    pub truncated_frames: u64,
    pub reassembled_datagrams: u64,
    /// Frames without a packet, by reason.
    pub skipped: std::collections::BTreeMap<SkipReason, u64>,
    /// Packets whose checksums do not hold (they are kept, as `zeek -C` keeps them).
    #[serde(default)]
    pub checksums: ChecksumStats,
    /// Frames whose timestamp is earlier than the frame before them in input order by at least
    /// [`CLOCK_STEP_NANOS`] (time running backwards: a clock step on the capturing host, or files
    /// spliced out of order). Flows are still built in packet order.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub time_reversals: u64,
    /// Frames earlier than the frame before them by less than [`CLOCK_STEP_NANOS`]: per-CPU
    /// capture buffers interleaving (tcpdump on several interfaces or `any`), not a clock at fault.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub reordered_frames: u64,
    /// Where time first ran backwards.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub first_time_reversal: Option<TimeReversal>,
    /// Fragments dropped because the reassembly table was full (a flood of incomplete datagrams
    /// pushed out the oldest one; also counted under `skipped` as `fragment_dropped`).
    #[serde(default, skip_serializing_if = "is_zero")]
    pub fragment_table_overflows: u64,
}

/// The smallest step back in time counted as the clock running backwards: 128 ms, the offset
/// below which NTP slews a clock instead of stepping it. Smaller steps back are frames that
/// per-CPU capture buffers delivered slightly out of order; recorded captures show tens of
/// microseconds of it.
pub const CLOCK_STEP_NANOS: i64 = 128_000_000;

fn is_zero(n: &u64) -> bool {
    *n == 0
}

/// The first frame whose timestamp is earlier than its predecessor's.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct TimeReversal {
    /// Index of its input file in the run (`inputs[file_index]`).
    pub file_index: usize,
    /// Its packet record number in that file, counting from 1.
    pub record: u64,
    /// Its timestamp, nanoseconds since the epoch.
    pub ts_nanos: i64,
    /// The timestamp of the frame before it.
    pub previous_ts_nanos: i64,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
struct FragKey {
    src: IpAddr,
    dst: IpAddr,
    id: u32,
    proto: u8,
}

struct FragState {
    buf: IpDefragBuf,
    first_ts: i64,
    /// IP header length of the offset-0 fragment (for the reassembled datagram's ip_bytes).
    header_len: u32,
    /// TTL or hop limit of the offset-0 fragment.
    ttl: u8,
    vlan: Option<u16>,
}

/// Fragments older than this (packet time) are abandoned, as Linux's ipfrag_time.
const FRAG_TIMEOUT_NANOS: i64 = 30_000_000_000;
/// Datagrams being reassembled at once; beyond it the oldest is dropped (and counted).
const MAX_FRAG_DATAGRAMS: usize = 4096;

/// Stateful decoder (it holds IP fragments until their datagram is complete).
#[derive(Default)]
pub struct Decoder {
    frags: HashMap<FragKey, FragState>,
    stats: DecodeStats,
    /// Packet records seen per input file, for naming where time ran backwards.
    records: Vec<u64>,
    previous_ts: Option<i64>,
}

impl Decoder {
    /// A decoder with empty fragment tables.
    pub fn new() -> Self {
        Self::default()
    }

    /// Counters so far.
    pub fn stats(&self) -> &DecodeStats {
        &self.stats
    }

    fn skip(&mut self, reason: SkipReason) {
        *self.stats.skipped.entry(reason).or_default() += 1;
    }

    /// Notes `frame`'s place in input order and counts it if time ran backwards. [`decode`]
    /// calls it; a caller that filters frames out calls it for those too, so record numbers
    /// stay those of the file.
    ///
    /// [`decode`]: Decoder::decode
    pub fn observe_order(&mut self, frame: &Frame<'_>) {
        if self.records.len() <= frame.file_index {
            self.records.resize(frame.file_index + 1, 0);
        }
        self.records[frame.file_index] += 1;
        // A frame without a time (pcapng Simple Packet Block) borrows its predecessor's.
        if !frame.has_ts {
            return;
        }
        if let Some(previous) = self.previous_ts.filter(|&p| frame.ts_nanos < p) {
            if previous - frame.ts_nanos < CLOCK_STEP_NANOS {
                self.stats.reordered_frames += 1;
                self.previous_ts = Some(frame.ts_nanos);
                return;
            }
            self.stats.time_reversals += 1;
            self.stats.first_time_reversal.get_or_insert(TimeReversal {
                file_index: frame.file_index,
                record: self.records[frame.file_index],
                ts_nanos: frame.ts_nanos,
                previous_ts_nanos: previous,
            });
        }
        self.previous_ts = Some(frame.ts_nanos);
    }

    /// Decodes `frame` and hands the packet to `sink`, or counts why there is none.
    pub fn decode(&mut self, frame: &Frame<'_>, sink: &mut impl FnMut(&Packet<'_>)) {
        self.observe_order(frame);
        self.stats.frames += 1;
        self.stats.wire_bytes += frame.wire_len as u64;
        self.stats.captured_bytes += frame.data.len() as u64;
        let cut = (frame.data.len() as u32) < frame.wire_len;
        if cut {
            self.stats.truncated_frames += 1;
        }
        let sliced = match slice_link(frame.link_type, frame.data) {
            Ok(sliced) => sliced,
            Err(reason) => return self.skip(reason),
        };
        let vlan = sliced.link_exts.iter().find_map(|ext| match ext {
            LaxLinkExtSlice::Vlan(v) => Some(v.vlan_identifier().value()),
            _ => None,
        });
        let (src, dst, ip_bytes, header_len, payload, ttl, header_ok) = match &sliced.net {
            Some(LaxNetSlice::Ipv4(v4)) => {
                let h = v4.header();
                let header_len = u32::from(h.ihl()) * 4;
                let total_len = match u32::from(h.total_len()) {
                    // TCP segmentation offload leaves the total length 0 in host captures: Zeek
                    // (packet_analysis/protocol/ip/IP.cc, `total_len == 0`, weird
                    // ip_hdr_len_zero) then takes the captured length when checksums are
                    // ignored, as dg-audit's default keeps bad-checksum packets (`zeek -C`).
                    0 => header_len + v4.payload().payload.len() as u32,
                    // Shorter than its own header: invalid (IP.cc `ip_hdr_len > total_len`, weird
                    // invalid_IP_header_size, dropped; tcpdump prints "(invalid)").
                    total if total < header_len => return self.skip(SkipReason::BadIp),
                    total => total,
                };
                (
                    IpAddr::V4(h.source_addr()),
                    IpAddr::V4(h.destination_addr()),
                    total_len,
                    h.ihl() as u32 * 4,
                    v4.payload().clone(),
                    h.ttl(),
                    checksum_holds(0, h.slice()),
                )
            }
            Some(LaxNetSlice::Ipv6(v6)) => {
                let h = v6.header();
                (
                    IpAddr::V6(h.source_addr()),
                    IpAddr::V6(final_destination(v6).unwrap_or(h.destination_addr())),
                    h.payload_length() as u32 + 40,
                    40 + v6.extensions().slice().len() as u32,
                    v6.payload().clone(),
                    h.hop_limit(),
                    true,
                )
            }
            Some(LaxNetSlice::Arp(_)) => return self.skip(SkipReason::NotIp),
            None => {
                let reason = if sliced.stop_err.is_some() {
                    SkipReason::BadIp
                } else {
                    SkipReason::NotIp
                };
                return self.skip(reason);
            }
        };
        let ip_proto = payload.ip_number.0;
        // IP payload length on the wire; falls back to what was captured when the header lies.
        let wire_ip_payload = ip_bytes.saturating_sub(header_len);
        if payload.fragmented {
            return self.fragment(frame, &sliced, vlan, (header_len, ttl), sink);
        }
        let transport = match &sliced.transport {
            Some(t) => transport_of(t, wire_ip_payload),
            None => match transport_from_payload(ip_proto, payload.payload, wire_ip_payload) {
                Some(t) => t,
                None => return self.skip(SkipReason::BadTransport),
            },
        };
        self.stats.packets += 1;
        let complete = !cut && payload.payload.len() as u32 == wire_ip_payload;
        let checksum = self.verify(header_ok, (src, dst), &transport, payload.payload, complete);
        sink(&Packet {
            ts_nanos: frame.ts_nanos,
            src,
            dst,
            ip_proto,
            ip_bytes,
            vlan,
            truncated: cut,
            ttl,
            checksum,
            transport,
        });
    }

    /// Verifies the transport checksum over the captured IP payload (when all of it was captured)
    /// and combines it with the IPv4 header's; counts what failed.
    fn verify(
        &mut self,
        header_ok: bool,
        (src, dst): (IpAddr, IpAddr),
        transport: &Transport<'_>,
        ip_payload: &[u8],
        complete: bool,
    ) -> Checksum {
        let c = &mut self.stats.checksums;
        if !header_ok {
            c.bad_ipv4_header += 1;
        }
        let transport_ok = match transport {
            Transport::Other { .. } => None,
            _ if !complete => {
                c.unverified += 1;
                None
            }
            Transport::Udp { .. } if ip_payload.get(6..8) == Some(&[0, 0]) && src.is_ipv4() => {
                None // RFC 768: zero means the sender computed no checksum (IPv4 only).
            }
            Transport::Icmp { v6: false, .. } => Some(checksum_holds(0, ip_payload)),
            Transport::Tcp(_) | Transport::Udp { .. } | Transport::Icmp { .. } => {
                let proto = match transport {
                    Transport::Tcp(_) => 6,
                    Transport::Udp { .. } => 17,
                    _ => 58,
                };
                Some(checksum_holds(
                    pseudo_header_sum(src, dst, proto, ip_payload.len()),
                    ip_payload,
                ))
            }
        };
        if transport_ok == Some(false) {
            match transport {
                Transport::Tcp(_) => c.bad_tcp += 1,
                Transport::Udp { .. } => c.bad_udp += 1,
                _ => c.bad_icmp += 1,
            }
        }
        match (header_ok, transport_ok) {
            (false, _) | (_, Some(false)) => Checksum::Bad,
            (true, Some(true)) => Checksum::Good,
            (true, None) => Checksum::Unverified,
        }
    }

    fn fragment(
        &mut self,
        frame: &Frame<'_>,
        sliced: &LaxSlicedPacket<'_>,
        vlan: Option<u16>,
        (header_len, ttl): (u32, u8),
        sink: &mut impl FnMut(&Packet<'_>),
    ) {
        let now = frame.ts_nanos;
        self.expire_fragments(now);
        let Some(Fragment {
            key,
            offset,
            more,
            payload,
            ip_number,
        }) = fragment_of(sliced)
        else {
            return self.skip(SkipReason::FragmentDropped);
        };
        if !self.frags.contains_key(&key) && self.frags.len() >= MAX_FRAG_DATAGRAMS {
            if let Some(oldest) = self
                .frags
                .iter()
                .min_by_key(|(_, s)| s.first_ts)
                .map(|(k, _)| *k)
            {
                self.frags.remove(&oldest);
                self.stats.fragment_table_overflows += 1;
                self.skip(SkipReason::FragmentDropped);
            }
        }
        let state = self.frags.entry(key).or_insert_with(|| FragState {
            buf: IpDefragBuf::new(ip_number, Vec::new(), Vec::new()),
            first_ts: now,
            header_len,
            ttl,
            vlan,
        });
        if offset == IpFragOffset::ZERO {
            state.header_len = header_len;
            state.ttl = ttl;
            state.vlan = vlan;
        }
        if state.buf.add(offset, more, payload).is_err() {
            self.frags.remove(&key);
            return self.skip(SkipReason::FragmentDropped);
        }
        if !state.buf.is_complete() {
            return self.skip(SkipReason::FragmentHeld);
        }
        let Some(state) = self.frags.remove(&key) else {
            return;
        };
        let (data, _) = state.buf.take_bufs();
        let wire_len = data.len() as u32;
        let Some(transport) = transport_from_payload(key.proto, &data, wire_len) else {
            return self.skip(SkipReason::BadTransport);
        };
        self.stats.packets += 1;
        self.stats.reassembled_datagrams += 1;
        // Each fragment's IPv4 header checksum is not kept; the datagram's transport checksum is.
        let checksum = self.verify(true, (key.src, key.dst), &transport, &data, true);
        sink(&Packet {
            ts_nanos: now,
            src: key.src,
            dst: key.dst,
            ip_proto: key.proto,
            ip_bytes: state.header_len + wire_len,
            vlan: state.vlan,
            truncated: false,
            ttl: state.ttl,
            checksum,
            transport,
        });
    }

    fn expire_fragments(&mut self, now: i64) {
        let before = self.frags.len();
        self.frags
            .retain(|_, s| now.saturating_sub(s.first_ts) <= FRAG_TIMEOUT_NANOS);
        let expired = (before - self.frags.len()) as u64;
        if expired > 0 {
            *self
                .stats
                .skipped
                .entry(SkipReason::FragmentDropped)
                .or_default() += expired;
        }
    }
}

/// Slices a frame from its link layer down.
fn slice_link(link_type: u32, data: &[u8]) -> Result<LaxSlicedPacket<'_>, SkipReason> {
    use linktype::*;
    match link_type {
        ETHERNET => LaxSlicedPacket::from_ethernet(data).map_err(|_| SkipReason::TruncatedLink),
        RAW | RAW_OPENBSD | RAW_BSDOS => {
            LaxSlicedPacket::from_ip(data).map_err(|_| SkipReason::BadIp)
        }
        // LINKTYPE_IPV4 and LINKTYPE_IPV6 promise one version: a packet of the other is invalid
        // (tcpdump's ipv4/ipv6 link printers report it as such), not decoded.
        IPV4 | IPV6 => {
            let version = data.first().map(|b| b >> 4);
            let wanted = if link_type == IPV4 { 4 } else { 6 };
            if version != Some(wanted) {
                return Err(SkipReason::BadIp);
            }
            LaxSlicedPacket::from_ip(data).map_err(|_| SkipReason::BadIp)
        }
        NULL | LOOP => {
            // BSD loopback: a 4-byte address family, host byte order for NULL, network order for
            // LOOP. AF_INET is 2 everywhere; AF_INET6 is 24, 28 or 30 depending on the OS.
            let family = data.get(..4).ok_or(SkipReason::TruncatedLink)?;
            let le = u32::from_le_bytes([family[0], family[1], family[2], family[3]]);
            let be = u32::from_be_bytes([family[0], family[1], family[2], family[3]]);
            let is_ip = |f: u32| matches!(f, 2 | 24 | 28 | 30);
            if is_ip(le) || is_ip(be) {
                LaxSlicedPacket::from_ip(&data[4..]).map_err(|_| SkipReason::BadIp)
            } else {
                Err(SkipReason::NotIp)
            }
        }
        // etherparse slices SLL only from an Ethernet-style start; SLL and SLL2 headers are fixed
        // size with the EtherType at a known offset, so read it and slice from there.
        LINUX_SLL => {
            let proto = data.get(14..16).ok_or(SkipReason::TruncatedLink)?;
            let ether_type = EtherType(u16::from_be_bytes([proto[0], proto[1]]));
            Ok(LaxSlicedPacket::from_ether_type(ether_type, &data[16..]))
        }
        LINUX_SLL2 => {
            if data.len() < 20 {
                return Err(SkipReason::TruncatedLink);
            }
            let ether_type = EtherType(u16::from_be_bytes([data[0], data[1]]));
            Ok(LaxSlicedPacket::from_ether_type(ether_type, &data[20..]))
        }
        _ => Err(SkipReason::UnsupportedLinkType),
    }
}

fn transport_of<'a>(t: &TransportSlice<'a>, wire_ip_payload: u32) -> Transport<'a> {
    match t {
        TransportSlice::Tcp(tcp) => Transport::Tcp(tcp_segment(tcp, wire_ip_payload)),
        TransportSlice::Udp(udp) => Transport::Udp {
            src_port: udp.source_port(),
            dst_port: udp.destination_port(),
            payload: udp.payload(),
            wire_payload_len: wire_ip_payload.saturating_sub(8),
        },
        TransportSlice::Icmpv4(icmp) => {
            let ty = icmp.type_u8();
            let rest = icmp.bytes5to8();
            Transport::Icmp {
                v6: false,
                icmp_type: ty,
                code: icmp.code_u8(),
                ident: if matches!(ty, 0 | 8) {
                    u16::from_be_bytes([rest[0], rest[1]])
                } else {
                    0
                },
                error: matches!(ty, 3 | 4 | 5 | 11 | 12),
                wire_payload_len: wire_ip_payload.saturating_sub(8),
            }
        }
        TransportSlice::Icmpv6(icmp) => {
            let ty = icmp.type_u8();
            let rest = icmp.bytes5to8();
            Transport::Icmp {
                v6: true,
                icmp_type: ty,
                code: icmp.code_u8(),
                ident: if matches!(ty, 128 | 129) {
                    u16::from_be_bytes([rest[0], rest[1]])
                } else {
                    0
                },
                error: ty < 128,
                wire_payload_len: wire_ip_payload.saturating_sub(8),
            }
        }
        TransportSlice::Igmp(_) => Transport::Other {
            wire_payload_len: wire_ip_payload,
        },
    }
}

fn tcp_segment<'a>(tcp: &TcpSlice<'a>, wire_ip_payload: u32) -> TcpSegment<'a> {
    let header = tcp.slice().len() - tcp.payload().len();
    let flags = tcp.slice()[13];
    TcpSegment {
        src_port: tcp.source_port(),
        dst_port: tcp.destination_port(),
        seq: tcp.sequence_number(),
        ack: tcp.acknowledgment_number(),
        flags,
        window: tcp.window_size(),
        payload: tcp.payload(),
        wire_payload_len: wire_ip_payload.saturating_sub(header as u32),
        mss: if tcp.syn() { syn_mss(tcp) } else { None },
    }
}

/// The Maximum Segment Size a SYN announces, if its options carry one.
fn syn_mss(tcp: &TcpSlice<'_>) -> Option<u16> {
    tcp.options_iterator().find_map(|o| match o {
        Ok(etherparse::TcpOptionElement::MaximumSegmentSize(mss)) => Some(mss),
        _ => None,
    })
}

/// Transport header from a bare IP payload (reassembled datagrams, or when lax slicing stopped).
fn transport_from_payload(proto: u8, payload: &[u8], wire_len: u32) -> Option<Transport<'_>> {
    match IpNumber(proto) {
        IpNumber::TCP => TcpSlice::from_slice(payload)
            .ok()
            .map(|tcp| Transport::Tcp(tcp_segment(&tcp, wire_len))),
        IpNumber::UDP => UdpSlice::from_slice_lax(payload)
            .ok()
            .map(|udp| Transport::Udp {
                src_port: udp.source_port(),
                dst_port: udp.destination_port(),
                payload: udp.payload(),
                wire_payload_len: wire_len.saturating_sub(8),
            }),
        IpNumber::ICMP => etherparse::Icmpv4Slice::from_slice(payload)
            .ok()
            .map(|i| transport_of(&TransportSlice::Icmpv4(i), wire_len)),
        IpNumber::IPV6_ICMP => etherparse::Icmpv6Slice::from_slice(payload)
            .ok()
            .map(|i| transport_of(&TransportSlice::Icmpv6(i), wire_len)),
        _ => Some(Transport::Other {
            wire_payload_len: wire_len,
        }),
    }
}

/// One IP fragment: the datagram it belongs to, where it goes, and its bytes.
struct Fragment<'a> {
    key: FragKey,
    offset: IpFragOffset,
    more: bool,
    payload: &'a [u8],
    ip_number: IpNumber,
}

/// The fragment a fragmented IPv4 or IPv6 packet carries; `None` when its fragment header is
/// missing or cut short.
fn fragment_of<'a>(sliced: &LaxSlicedPacket<'a>) -> Option<Fragment<'a>> {
    match &sliced.net {
        Some(LaxNetSlice::Ipv4(v4)) => {
            let h = v4.header();
            Some(Fragment {
                key: FragKey {
                    src: IpAddr::V4(h.source_addr()),
                    dst: IpAddr::V4(h.destination_addr()),
                    id: h.identification() as u32,
                    proto: v4.payload().ip_number.0,
                },
                offset: h.fragments_offset(),
                more: h.more_fragments(),
                payload: v4.payload().payload,
                ip_number: v4.payload().ip_number,
            })
        }
        Some(LaxNetSlice::Ipv6(v6)) => {
            let frag = ipv6_extensions(v6)
                .find(|(kind, _)| *kind == IpNumber::IPV6_FRAGMENTATION_HEADER.0)
                .and_then(|(_, bytes)| etherparse::Ipv6FragmentHeaderSlice::from_slice(bytes).ok())
                .map(|f| f.to_header())?;
            let h = v6.header();
            Some(Fragment {
                key: FragKey {
                    src: IpAddr::V6(h.source_addr()),
                    dst: IpAddr::V6(h.destination_addr()),
                    id: frag.identification,
                    proto: v6.payload().ip_number.0,
                },
                offset: frag.fragment_offset,
                more: frag.more_fragments,
                payload: v6.payload().payload,
                ip_number: v6.payload().ip_number,
            })
        }
        _ => None,
    }
}

/// The IPv6 extension headers of `v6` as (header type, bytes), in order.
///
/// By hand because etherparse 0.21's extension iterator follows the last header of a chain the
/// lax parse cut short into bytes that are not there (unchecked slicing: found by our fuzzer);
/// this walk checks every length against what was captured and stops at the first that does not
/// fit. Lengths: RFC 8200 section 4 (8-octet units after the first 8; Fragment is 8 octets) and
/// RFC 4302 for AH (4-octet units, plus 2).
fn ipv6_extensions<'a>(v6: &etherparse::LaxIpv6Slice<'a>) -> impl Iterator<Item = (u8, &'a [u8])> {
    let mut kind = v6.header().next_header().0;
    let mut rest = v6.extensions().slice();
    std::iter::from_fn(move || {
        let len = match kind {
            0 | 43 | 60 | 135 | 139 | 140 => (usize::from(*rest.get(1)?) + 1) * 8,
            44 => 8,
            51 => (usize::from(*rest.get(1)?) + 2) * 4,
            _ => return None,
        };
        let bytes = rest.get(..len)?;
        let this = kind;
        kind = *bytes.first()?;
        rest = rest.get(len..)?;
        Some((this, bytes))
    })
}

/// The final destination of an IPv6 packet with a Routing header that still has segments left
/// (RFC 8200 section 8.1: the transport checksum covers it; Zeek and tshark key flows on it):
/// the last address of a type 0 (RFC 2460) or type 2 (RFC 6275) header, or Segment List[0] of a
/// Segment Routing header (type 4, RFC 8754). `None` when the header's destination is final.
fn final_destination(v6: &etherparse::LaxIpv6Slice<'_>) -> Option<std::net::Ipv6Addr> {
    let (_, bytes) =
        ipv6_extensions(v6).find(|(kind, _)| *kind == IpNumber::IPV6_ROUTE_HEADER.0)?;
    let (routing_type, segments_left) = (*bytes.get(2)?, *bytes.get(3)?);
    if segments_left == 0 {
        return None;
    }
    let address = |at: usize| -> Option<std::net::Ipv6Addr> {
        let raw: [u8; 16] = bytes.get(at..at + 16)?.try_into().ok()?;
        Some(raw.into())
    };
    match routing_type {
        0 | 2 => {
            let count = (bytes.len() - 8) / 16;
            address(8 + (count.checked_sub(1)?) * 16)
        }
        4 => address(8),
        _ => None,
    }
}

/// The one's-complement sum (RFC 1071) of an IPv4 or IPv6 pseudo-header (RFC 793 section 3.1,
/// RFC 8200 section 8.1), to be continued over the transport segment.
fn pseudo_header_sum(src: IpAddr, dst: IpAddr, proto: u8, len: usize) -> u64 {
    let mut sum = u64::from(proto) + len as u64;
    for addr in [src, dst] {
        match addr {
            IpAddr::V4(a) => sum += ones_complement_sum(&a.octets()),
            IpAddr::V6(a) => sum += ones_complement_sum(&a.octets()),
        }
    }
    sum
}

/// True when the Internet checksum over `bytes` (which include their checksum field), started
/// from `initial`, holds: the folded one's-complement sum is all ones.
///
/// By hand because etherparse computes checksums only from owned headers it would first have to
/// build; this sums the captured bytes in place, eight at a time.
fn checksum_holds(initial: u64, bytes: &[u8]) -> bool {
    let mut sum = initial + ones_complement_sum(bytes);
    while sum > 0xffff {
        sum = (sum & 0xffff) + (sum >> 16);
    }
    sum == 0xffff
}

/// Sum of `bytes` as big-endian 16-bit words (an odd last byte padded with zero), not yet folded.
fn ones_complement_sum(bytes: &[u8]) -> u64 {
    let mut chunks = bytes.chunks_exact(8);
    let mut sum: u64 = 0;
    for c in &mut chunks {
        let word = u64::from_be_bytes([c[0], c[1], c[2], c[3], c[4], c[5], c[6], c[7]]);
        // Add the two 32-bit halves: carries stay in the upper bits and fold away later.
        sum += (word >> 32) + (word & 0xffff_ffff);
    }
    let mut rest = chunks.remainder().chunks(2);
    for pair in &mut rest {
        let hi = u64::from(pair[0]) << 8;
        sum += hi | pair.get(1).map_or(0, |&b| u64::from(b));
    }
    // Fold the 32-bit halves' sums to 16-bit words (equal mod 0xffff).
    (sum >> 48) + ((sum >> 32) & 0xffff) + ((sum >> 16) & 0xffff) + (sum & 0xffff)
}

#[cfg(test)]
mod tests {
    use super::*;
    use etherparse::PacketBuilder;

    fn frame(data: &[u8]) -> Frame<'_> {
        Frame {
            ts_nanos: 1_700_000_000_000_000_000,
            link_type: 1,
            data,
            wire_len: data.len() as u32,
            file_index: 0,
            interface: 0,
            has_ts: true,
        }
    }

    fn decode_one(data: &[u8]) -> (Option<(Checksum, u8)>, DecodeStats) {
        let mut decoder = Decoder::new();
        let mut got = None;
        decoder.decode(&frame(data), &mut |p| got = Some((p.checksum, p.ttl)));
        (got, decoder.stats().clone())
    }

    fn tcp_v4(payload: &[u8]) -> Vec<u8> {
        let mut out = Vec::new();
        PacketBuilder::ethernet2([2, 0, 0, 0, 0, 1], [2, 0, 0, 0, 0, 2])
            .ipv4([192, 0, 2, 10], [203, 0, 113, 10], 1)
            .tcp(40000, 443, 1000, 64000)
            .write(&mut out, payload)
            .expect("build");
        out
    }

    #[test]
    fn good_checksums_hold_and_a_flipped_byte_is_counted() {
        for len in [0, 1, 7, 8, 9, 1000, 1001] {
            let payload: Vec<u8> = (0..len).map(|i| (i * 7 + 3) as u8).collect();
            let mut data = tcp_v4(&payload);
            assert_eq!(decode_one(&data).0, Some((Checksum::Good, 1)), "len {len}");
            if len > 0 {
                *data.last_mut().expect("payload") ^= 0x40;
                let (got, stats) = decode_one(&data);
                assert_eq!(got, Some((Checksum::Bad, 1)), "len {len}");
                assert_eq!(stats.checksums.bad_tcp, 1);
                assert_eq!(stats.checksums.bad(), 1);
            }
        }
    }

    #[test]
    fn a_bad_ipv4_header_checksum_is_its_own_count() {
        let mut data = tcp_v4(b"hello");
        data[14 + 8] ^= 0x01; // the TTL byte, covered by the header checksum only
        let (got, stats) = decode_one(&data);
        assert_eq!(got.map(|g| g.0), Some(Checksum::Bad));
        assert_eq!(stats.checksums.bad_ipv4_header, 1);
        assert_eq!(stats.checksums.bad_tcp, 0);
    }

    #[test]
    fn udp_over_ipv6_and_zero_udp_checksum_over_ipv4() {
        let mut v6 = Vec::new();
        PacketBuilder::ethernet2([2, 0, 0, 0, 0, 1], [2, 0, 0, 0, 0, 2])
            .ipv6(
                [0x20, 0x01, 0x0d, 0xb8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1],
                [0xff, 0x02, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xfb],
                255,
            )
            .udp(5353, 5353)
            .write(&mut v6, b"mdns")
            .expect("build");
        assert_eq!(decode_one(&v6).0, Some((Checksum::Good, 255)));
        let mut v4 = Vec::new();
        PacketBuilder::ethernet2([2, 0, 0, 0, 0, 1], [2, 0, 0, 0, 0, 2])
            .ipv4([192, 0, 2, 10], [192, 0, 2, 53], 64)
            .udp(40000, 53)
            .write(&mut v4, b"query")
            .expect("build");
        v4[14 + 20 + 6] = 0;
        v4[14 + 20 + 7] = 0;
        assert_eq!(decode_one(&v4).0, Some((Checksum::Unverified, 64)));
    }

    fn decode_link(link_type: u32, data: &[u8]) -> (Option<u32>, DecodeStats) {
        let mut decoder = Decoder::new();
        let mut got = None;
        let f = Frame {
            link_type,
            ..frame(data)
        };
        decoder.decode(&f, &mut |p| got = Some(p.ip_bytes));
        (got, decoder.stats().clone())
    }

    #[test]
    fn an_ipv4_total_length_below_its_header_is_invalid_and_zero_is_tso() {
        let data = tcp_v4(&[0x61; 3000]);
        // Shorter than the 20-byte header: rejected, as Zeek's IP analyzer does.
        let mut bad = data.clone();
        bad[14 + 2..14 + 4].copy_from_slice(&19u16.to_be_bytes());
        let (got, stats) = decode_link(1, &bad);
        assert_eq!(got, None);
        assert_eq!(stats.skipped.get(&SkipReason::BadIp), Some(&1));
        // 0: a TSO segment from a host capture, its length the captured one (3000 + 40).
        let mut tso = data.clone();
        tso[14 + 2..14 + 4].copy_from_slice(&0u16.to_be_bytes());
        let mut decoder = Decoder::new();
        let mut got = None;
        decoder.decode(&frame(&tso), &mut |p| {
            got = match p.transport {
                Transport::Tcp(seg) => Some((p.ip_bytes, seg.wire_payload_len)),
                _ => None,
            }
        });
        assert_eq!(got, Some((3040, 3000)));
    }

    #[test]
    fn a_packet_of_the_other_ip_version_under_linktype_ipv4_or_ipv6_is_invalid() {
        let v4 = &tcp_v4(b"x")[14..];
        let mut v6 = Vec::new();
        PacketBuilder::ipv6(
            [0x20, 1, 0xd, 0xb8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1],
            [0x20, 1, 0xd, 0xb8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 2],
            64,
        )
        .udp(5353, 5353)
        .write(&mut v6, b"mdns")
        .expect("build");
        assert_eq!(decode_link(linktype::IPV4, v4).0, Some(41));
        assert_eq!(decode_link(linktype::IPV6, &v6).0, Some(52));
        for (link, data) in [(linktype::IPV6, v4), (linktype::IPV4, &v6[..])] {
            let (got, stats) = decode_link(link, data);
            assert_eq!(got, None, "link type {link}");
            assert_eq!(stats.skipped.get(&SkipReason::BadIp), Some(&1));
        }
        // LINKTYPE_RAW takes either.
        assert_eq!(decode_link(linktype::RAW, &v6).0, Some(52));
    }

    #[test]
    fn a_snaplen_cut_packet_is_unverified() {
        let data = tcp_v4(&[0xab; 200]);
        let mut decoder = Decoder::new();
        let mut got = None;
        let f = Frame {
            data: &data[..100],
            wire_len: data.len() as u32,
            ..frame(&data)
        };
        decoder.decode(&f, &mut |p| got = Some(p.checksum));
        assert_eq!(got, Some(Checksum::Unverified));
        assert_eq!(decoder.stats().checksums.unverified, 1);
    }

    #[test]
    fn time_running_backwards_is_counted_with_its_first_file_and_record() {
        let mut decoder = Decoder::new();
        let at = |ts: i64, file_index: usize, has_ts: bool| Frame {
            ts_nanos: ts,
            file_index,
            has_ts,
            ..frame(&[])
        };
        let step = CLOCK_STEP_NANOS;
        decoder.observe_order(&at(10 * step, 0, true));
        decoder.observe_order(&at(20 * step, 1, true));
        // Equal times and untimed frames are not backwards.
        decoder.observe_order(&at(20 * step, 1, true));
        decoder.observe_order(&at(20 * step, 1, false));
        // Less than a clock step back is interleaving, not the clock.
        decoder.observe_order(&at(20 * step - step + 1, 1, true));
        decoder.observe_order(&at(20 * step, 1, true));
        decoder.observe_order(&at(19 * step, 1, true));
        decoder.observe_order(&at(5, 0, true));
        let stats = decoder.stats();
        assert_eq!((stats.time_reversals, stats.reordered_frames), (2, 1));
        assert_eq!(
            stats.first_time_reversal,
            Some(TimeReversal {
                file_index: 1,
                record: 6,
                ts_nanos: 19 * step,
                previous_ts_nanos: 20 * step
            })
        );
    }
}
