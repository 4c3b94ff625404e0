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
    pub transport: Transport<'a>,
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

    /// Decodes `frame` and hands the packet to `sink`, or counts why there is none.
    pub fn decode(&mut self, frame: &Frame<'_>, sink: &mut impl FnMut(&Packet<'_>)) {
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
        let (src, dst, ip_bytes, header_len, payload) = match &sliced.net {
            Some(LaxNetSlice::Ipv4(v4)) => {
                let h = v4.header();
                (
                    IpAddr::V4(h.source_addr()),
                    IpAddr::V4(h.destination_addr()),
                    h.total_len() as u32,
                    h.ihl() as u32 * 4,
                    v4.payload().clone(),
                )
            }
            Some(LaxNetSlice::Ipv6(v6)) => {
                let h = v6.header();
                (
                    IpAddr::V6(h.source_addr()),
                    IpAddr::V6(h.destination_addr()),
                    h.payload_length() as u32 + 40,
                    40 + v6.extensions().slice().len() as u32,
                    v6.payload().clone(),
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
            return self.fragment(frame, &sliced, vlan, header_len, sink);
        }
        let transport = match &sliced.transport {
            Some(t) => transport_of(t, wire_ip_payload),
            None => match transport_from_payload(ip_proto, payload.payload, wire_ip_payload) {
                Some(t) => t,
                None => return self.skip(SkipReason::BadTransport),
            },
        };
        self.stats.packets += 1;
        sink(&Packet {
            ts_nanos: frame.ts_nanos,
            src,
            dst,
            ip_proto,
            ip_bytes,
            vlan,
            truncated: cut,
            transport,
        });
    }

    fn fragment(
        &mut self,
        frame: &Frame<'_>,
        sliced: &LaxSlicedPacket<'_>,
        vlan: Option<u16>,
        header_len: u32,
        sink: &mut impl FnMut(&Packet<'_>),
    ) {
        let now = frame.ts_nanos;
        self.expire_fragments(now);
        let (key, offset, more, payload, ip_number) = match &sliced.net {
            Some(LaxNetSlice::Ipv4(v4)) => {
                let h = v4.header();
                (
                    FragKey {
                        src: IpAddr::V4(h.source_addr()),
                        dst: IpAddr::V4(h.destination_addr()),
                        id: h.identification() as u32,
                        proto: v4.payload().ip_number.0,
                    },
                    h.fragments_offset(),
                    h.more_fragments(),
                    v4.payload().payload,
                    v4.payload().ip_number,
                )
            }
            Some(LaxNetSlice::Ipv6(v6)) => {
                let Some(frag) = v6.extensions().clone().into_iter().find_map(|e| match e {
                    etherparse::Ipv6ExtensionSlice::Fragment(f) => Some(f.to_header()),
                    _ => None,
                }) else {
                    return self.skip(SkipReason::FragmentDropped);
                };
                let h = v6.header();
                (
                    FragKey {
                        src: IpAddr::V6(h.source_addr()),
                        dst: IpAddr::V6(h.destination_addr()),
                        id: frag.identification,
                        proto: v6.payload().ip_number.0,
                    },
                    frag.fragment_offset,
                    frag.more_fragments,
                    v6.payload().payload,
                    v6.payload().ip_number,
                )
            }
            _ => return self.skip(SkipReason::FragmentDropped),
        };
        if !self.frags.contains_key(&key) && self.frags.len() >= MAX_FRAG_DATAGRAMS {
            if let Some(oldest) = self
                .frags
                .iter()
                .min_by_key(|(_, s)| s.first_ts)
                .map(|(k, _)| *k)
            {
                self.frags.remove(&oldest);
                self.skip(SkipReason::FragmentDropped);
            }
        }
        let state = self.frags.entry(key).or_insert_with(|| FragState {
            buf: IpDefragBuf::new(ip_number, Vec::new(), Vec::new()),
            first_ts: now,
            header_len,
            vlan,
        });
        if offset == IpFragOffset::ZERO {
            state.header_len = header_len;
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
        sink(&Packet {
            ts_nanos: now,
            src: key.src,
            dst: key.dst,
            ip_proto: key.proto,
            ip_bytes: state.header_len + wire_len,
            vlan: state.vlan,
            truncated: false,
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
        RAW | RAW_OPENBSD | RAW_BSDOS | IPV4 | IPV6 => {
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
    }
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
