//! Stable-toolchain fuzzing: one target per parser entry, a deterministic mutator (byte-level and
//! structure-aware), panics caught with `catch_unwind` and the input kept.
//!
//! cargo-fuzz needs nightly, which is not available here, so the targets are plain functions driven
//! by this harness. It is shared by `examples/fuzz.rs` (long campaigns, `scripts/fuzz.sh`) and
//! `tests/fuzz.rs` (a bounded, seeded run in `cargo test`) through `#[path]`, so both exercise the
//! same code. Campaigns build with the `fuzz` profile: release speed with overflow checks on, so
//! arithmetic that would silently wrap in release panics and is caught.
//!
//! Invariants: the same seed, seeds and iteration count give the same inputs; a target never
//! writes files; a crash is reported once per panic location, with the smallest input seen for it.
#![allow(dead_code)]

use std::cell::{Cell, RefCell};
use std::collections::BTreeMap;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::path::{Path, PathBuf};
use std::sync::Once;

use dg_audit::decode::{Decoder, Transport};
use dg_audit::flow::FlowConfig;
use dg_audit::inspect::{dns, http, quic, tls, Parse};
use dg_audit::names::NameBook;
use dg_audit::pipeline::Pass;
use dg_audit::policy::Policy;
use dg_audit::source::file::CaptureFile;
use dg_audit::source::Frame;

/// Link types a `decode` input can start with (its first byte picks one).
pub const LINK_TYPES: [u32; 9] = [1, 101, 113, 0, 228, 229, 276, 12, 108];

/// Frames a file or pipeline input may yield before the target stops reading (bounds run time).
const MAX_FRAMES: usize = 2_000;
/// Largest input the mutator produces.
const MAX_INPUT: usize = 1 << 17;

/// One fuzz target per parser entry.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Target {
    /// `Decoder::decode` on one frame; byte 0 picks the link type.
    Decode,
    /// `inspect::tls`: ClientHello (stream and bare handshake), server side.
    Tls,
    /// `inspect::quic`: Initial detection and ClientHello assembly.
    Quic,
    /// `inspect::dns`: one message and a TCP stream of length-prefixed messages.
    Dns,
    /// `inspect::http`: request, response, CONNECT authority.
    Http,
    /// `source::file`: the pcap/pcapng reader over a whole file.
    File,
    /// The whole pass (reader, decoder, flow table) and the audit over a file.
    Pipeline,
}

impl Target {
    pub const ALL: [Target; 7] = [
        Target::Decode,
        Target::Tls,
        Target::Quic,
        Target::Dns,
        Target::Http,
        Target::File,
        Target::Pipeline,
    ];

    pub fn name(self) -> &'static str {
        match self {
            Target::Decode => "decode",
            Target::Tls => "tls",
            Target::Quic => "quic",
            Target::Dns => "dns",
            Target::Http => "http",
            Target::File => "file",
            Target::Pipeline => "pipeline",
        }
    }

    pub fn from_name(name: &str) -> Option<Target> {
        Target::ALL.into_iter().find(|t| t.name() == name)
    }
}

/// Runs `target` on `input`. Panics are the bugs being looked for.
pub fn run(target: Target, input: &[u8]) {
    match target {
        Target::Decode => {
            let Some((&link, frame)) = input.split_first() else {
                return;
            };
            let frame = Frame {
                ts_nanos: 1_700_000_000_000_000_000,
                link_type: LINK_TYPES[link as usize % LINK_TYPES.len()],
                data: frame,
                wire_len: frame.len() as u32,
                file_index: 0,
                interface: 0,
                has_ts: true,
            };
            let mut decoder = Decoder::new();
            // Twice: the second pass meets the fragment-reassembly state the first one left.
            for _ in 0..2 {
                decoder.decode(&frame, &mut |pkt| {
                    std::hint::black_box(pkt);
                });
            }
        }
        Target::Tls => {
            let _ = tls::looks_like_tls(input);
            let _ = tls::parse_client_hello(input);
            let _ = tls::parse_server_side(input);
            let body = input.get(4..).unwrap_or_default();
            let _ = tls::parse_client_hello_message(input, false);
            let _ = tls::parse_client_hello_message(body, true);
        }
        Target::Quic => {
            let _ = quic::looks_like_quic_initial(input);
            let mut asm = quic::QuicClientHelloAssembler::default();
            // The whole input, then its halves as two more datagrams.
            let _ = asm.feed(input);
            let (a, b) = input.split_at(input.len() / 2);
            let _ = asm.feed(a);
            let _ = asm.feed(b);
        }
        Target::Dns => {
            if let Ok(msg) = dns::parse_message(input) {
                std::hint::black_box(msg);
            }
            let (msgs, used) = dns::split_tcp_messages(input);
            assert!(
                used <= input.len(),
                "split_tcp_messages consumed past its input"
            );
            std::hint::black_box(msgs);
            let text = String::from_utf8_lossy(input);
            let _ = dns::label_entropy(&text);
        }
        Target::Http => {
            if let Parse::Done(req) = http::parse_request(input) {
                let _ = http::connect_authority(&req);
            }
            let _ = http::parse_response(input);
        }
        Target::File => {
            let Ok(file) = CaptureFile::from_bytes(Path::new("fuzz-input"), input.to_vec()) else {
                return;
            };
            let Ok(mut reader) = file.reader(0) else {
                return;
            };
            let mut frames = 0;
            while let Some(frame) = reader.next_frame() {
                std::hint::black_box(frame);
                frames += 1;
                if frames == MAX_FRAMES {
                    break;
                }
            }
            std::hint::black_box(reader.into_facts());
        }
        Target::Pipeline => {
            let Ok(file) = CaptureFile::from_bytes(Path::new("fuzz-input"), input.to_vec()) else {
                return;
            };
            let Ok(mut reader) = file.reader(0) else {
                return;
            };
            let mut pass = Pass::new(FlowConfig::default(), NameBook::default());
            let mut flows = Vec::new();
            let mut sink = |rec| flows.push(rec);
            let mut frames = 0;
            while let Some(frame) = reader.next_frame() {
                pass.frame(&frame, &mut sink);
                frames += 1;
                if frames == MAX_FRAMES {
                    break;
                }
            }
            pass.finish(&mut sink);
            let facts = reader.into_facts();
            let complete = !facts.incomplete;
            let summary = pass.summary(vec![facts], pass.span(), complete);
            let audit = dg_audit::audit::audit(&flows, &summary, policy(), None);
            std::hint::black_box(serde_json::to_vec(&audit).expect("audit serializes"));
        }
    }
}

fn policy() -> &'static Policy {
    static POLICY: std::sync::OnceLock<Policy> = std::sync::OnceLock::new();
    POLICY.get_or_init(Policy::default_policy)
}

// ---------------------------------------------------------------------------------------------
// Seeds

/// Seed inputs per target, from capture files: whole files (cut to a size that keeps a run fast)
/// for `file` and `pipeline`, and the frames and payloads found in them for the parser targets.
#[derive(Default)]
pub struct Seeds {
    pub by_target: BTreeMap<Target, Vec<Vec<u8>>>,
}

/// The capture files seeds are drawn from: `captures/*.pcap` and `../shared/corpus`, when present.
pub fn seed_files(repo: &Path) -> Vec<PathBuf> {
    let mut files = Vec::new();
    for dir in [repo.join("captures"), repo.join("../shared/corpus")] {
        let Ok(entries) = std::fs::read_dir(&dir) else {
            continue;
        };
        for entry in entries.flatten() {
            let path = entry.path();
            let name = path.to_string_lossy();
            if name.ends_with(".pcap") || name.ends_with(".pcapng") {
                files.push(path);
            }
        }
    }
    files.sort();
    files
}

impl Seeds {
    /// Reads `files`; `file_cap` bounds each whole-file seed (longer files are cut, which also
    /// seeds the truncated-record paths).
    pub fn load(files: &[PathBuf], file_cap: usize) -> Seeds {
        let mut seeds = Seeds::default();
        for path in files {
            let Ok(bytes) = std::fs::read(path) else {
                continue;
            };
            let cut = bytes[..bytes.len().min(file_cap)].to_vec();
            seeds.add(Target::File, cut.clone());
            seeds.add(Target::Pipeline, cut);
            seeds.extract(&bytes);
        }
        // Hand-made seeds so every target has something even without captures.
        seeds.add(
            Target::Http,
            b"GET / HTTP/1.1\r\nHost: a\r\nContent-Length: 3\r\n\r\nabc".to_vec(),
        );
        seeds.add(
            Target::Http,
            b"CONNECT license.deepgram.com:443 HTTP/1.1\r\nHost: license.deepgram.com:443\r\n\r\n"
                .to_vec(),
        );
        seeds.add(
            Target::Http,
            b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n"
                .to_vec(),
        );
        seeds.add(
            Target::Dns,
            vec![
                0x12, 0x34, 1, 0, 0, 1, 0, 0, 0, 0, 0, 0, 7, b'e', b'x', b'a', b'm', b'p', b'l',
                b'e', 3, b'c', b'o', b'm', 0, 0, 1, 0, 1,
            ],
        );
        seeds.add(Target::Tls, vec![0x16, 3, 1, 0, 4, 1, 0, 0, 0]);
        seeds.add(
            Target::Quic,
            vec![0xc3, 0, 0, 0, 1, 8, 1, 2, 3, 4, 5, 6, 7, 8, 0],
        );
        seeds.add(Target::Decode, vec![0; 60]);
        seeds.add(Target::File, vec![0xd4, 0xc3, 0xb2, 0xa1, 2, 0, 4, 0]);
        for list in seeds.by_target.values_mut() {
            list.sort();
            list.dedup();
        }
        seeds
    }

    fn add(&mut self, target: Target, input: Vec<u8>) {
        let list = self.by_target.entry(target).or_default();
        // Keep the seed sets small enough to load fast: a few hundred per target is plenty.
        if list.len() < 400 {
            list.push(input);
        }
    }

    pub fn get(&self, target: Target) -> &[Vec<u8>] {
        self.by_target.get(&target).map_or(&[], Vec::as_slice)
    }

    /// Frames and payloads of one capture, decoded with the crate's own reader and decoder.
    fn extract(&mut self, bytes: &[u8]) {
        let Ok(file) = CaptureFile::from_bytes(Path::new("seed"), bytes.to_vec()) else {
            return;
        };
        let Ok(mut reader) = file.reader(0) else {
            return;
        };
        let mut decoder = Decoder::new();
        let mut frames = 0;
        while let Some(frame) = reader.next_frame() {
            frames += 1;
            if frames > 300 {
                break;
            }
            if let Some(i) = LINK_TYPES.iter().position(|&l| l == frame.link_type) {
                if frames <= 40 {
                    let mut input = vec![i as u8];
                    input.extend_from_slice(frame.data);
                    self.add(Target::Decode, input);
                }
            }
            let mut found = Vec::new();
            decoder.decode(&frame, &mut |pkt| match pkt.transport {
                Transport::Tcp(seg) if !seg.payload.is_empty() => {
                    found.push((true, seg.src_port, seg.dst_port, seg.payload.to_vec()));
                }
                Transport::Udp {
                    src_port,
                    dst_port,
                    payload,
                    ..
                } if !payload.is_empty() => {
                    found.push((false, src_port, dst_port, payload.to_vec()));
                }
                _ => {}
            });
            for (tcp, sport, dport, payload) in found {
                let dns_port = sport == 53 || dport == 53 || sport == 5353 || dport == 5353;
                if dns_port {
                    self.add(Target::Dns, payload.clone());
                }
                if tcp && payload[0] == 0x16 {
                    self.add(Target::Tls, payload.clone());
                }
                if tcp && payload[0].is_ascii_uppercase() {
                    self.add(Target::Http, payload.clone());
                }
                if !tcp && quic::looks_like_quic_initial(&payload) {
                    self.add(Target::Quic, payload);
                }
            }
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Deterministic PRNG and mutator

/// SplitMix64: small, fast, and the same sequence on every platform.
pub struct Rng(u64);

impl Rng {
    pub fn new(seed: u64) -> Rng {
        Rng(seed)
    }

    pub fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// Uniform in `0..n` (`n` > 0).
    pub fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }

    pub fn chance(&mut self, one_in: usize) -> bool {
        self.below(one_in) == 0
    }
}

/// How a length-like field is stored.
#[derive(Debug, Clone, Copy)]
enum Width {
    U8,
    HighNibble,
    LowNibble,
    U16Be,
    U16Le,
    U32Be,
    U32Le,
}

/// A field worth rewriting: a length, a count, a header length, a version.
#[derive(Debug, Clone, Copy)]
struct Field {
    off: usize,
    width: Width,
}

impl Field {
    fn size(self) -> usize {
        match self.width {
            Width::U8 | Width::HighNibble | Width::LowNibble => 1,
            Width::U16Be | Width::U16Le => 2,
            Width::U32Be | Width::U32Le => 4,
        }
    }

    fn read(self, d: &[u8]) -> u64 {
        let o = self.off;
        match self.width {
            Width::U8 => d[o] as u64,
            Width::HighNibble => (d[o] >> 4) as u64,
            Width::LowNibble => (d[o] & 15) as u64,
            Width::U16Be => u16::from_be_bytes([d[o], d[o + 1]]) as u64,
            Width::U16Le => u16::from_le_bytes([d[o], d[o + 1]]) as u64,
            Width::U32Be => u32::from_be_bytes([d[o], d[o + 1], d[o + 2], d[o + 3]]) as u64,
            Width::U32Le => u32::from_le_bytes([d[o], d[o + 1], d[o + 2], d[o + 3]]) as u64,
        }
    }

    fn write(self, d: &mut [u8], v: u64) {
        let o = self.off;
        match self.width {
            Width::U8 => d[o] = v as u8,
            Width::HighNibble => d[o] = (d[o] & 0x0f) | ((v as u8 & 15) << 4),
            Width::LowNibble => d[o] = (d[o] & 0xf0) | (v as u8 & 15),
            Width::U16Be => d[o..o + 2].copy_from_slice(&(v as u16).to_be_bytes()),
            Width::U16Le => d[o..o + 2].copy_from_slice(&(v as u16).to_le_bytes()),
            Width::U32Be => d[o..o + 4].copy_from_slice(&(v as u32).to_be_bytes()),
            Width::U32Le => d[o..o + 4].copy_from_slice(&(v as u32).to_le_bytes()),
        }
    }
}

/// Collects the fields of the layers found in `d` (best effort: a heuristic walk, not a parser).
struct Fields<'d> {
    d: &'d [u8],
    out: Vec<Field>,
}

impl Fields<'_> {
    fn push(&mut self, off: usize, width: Width) {
        let f = Field { off, width };
        if off
            .checked_add(f.size())
            .is_some_and(|end| end <= self.d.len())
        {
            self.out.push(f);
        }
    }

    fn u16be(&self, off: usize) -> Option<u16> {
        Some(u16::from_be_bytes([
            *self.d.get(off)?,
            *self.d.get(off + 1)?,
        ]))
    }

    fn u32(&self, off: usize, be: bool) -> Option<u32> {
        let b = self.d.get(off..off + 4)?;
        let b = [b[0], b[1], b[2], b[3]];
        Some(if be {
            u32::from_be_bytes(b)
        } else {
            u32::from_le_bytes(b)
        })
    }

    /// Ethernet (with up to two VLAN tags) at `at`.
    fn ethernet(&mut self, at: usize) {
        let mut et_off = at + 12;
        for _ in 0..3 {
            self.push(et_off, Width::U16Be);
            match self.u16be(et_off) {
                Some(0x8100 | 0x88a8) => et_off += 4,
                Some(0x0800) => return self.ipv4(et_off + 2),
                Some(0x86dd) => return self.ipv6(et_off + 2),
                _ => return,
            }
        }
    }

    fn ip(&mut self, at: usize) {
        match self.d.get(at).map(|b| b >> 4) {
            Some(4) => self.ipv4(at),
            Some(6) => self.ipv6(at),
            _ => {}
        }
    }

    fn ipv4(&mut self, at: usize) {
        let Some(&vihl) = self.d.get(at) else { return };
        self.push(at, Width::LowNibble);
        self.push(at, Width::HighNibble);
        self.push(at + 2, Width::U16Be); // total length
        self.push(at + 6, Width::U16Be); // flags, fragment offset
        self.push(at + 9, Width::U8); // protocol
        let proto = self.d.get(at + 9).copied();
        self.transport(at + (vihl as usize & 15) * 4, proto);
    }

    fn ipv6(&mut self, at: usize) {
        self.push(at + 4, Width::U16Be); // payload length
        self.push(at + 6, Width::U8); // next header
        let proto = self.d.get(at + 6).copied();
        self.transport(at + 40, proto);
    }

    fn transport(&mut self, at: usize, proto: Option<u8>) {
        match proto {
            Some(6) => {
                self.push(at + 12, Width::HighNibble); // data offset
                let Some(&off) = self.d.get(at + 12) else {
                    return;
                };
                let payload = at + (off as usize >> 4) * 4;
                let ports = (self.u16be(at), self.u16be(at + 2));
                if ports.0 == Some(53) || ports.1 == Some(53) {
                    self.push(payload, Width::U16Be);
                    self.dns(payload + 2);
                } else {
                    self.tls(payload);
                }
            }
            Some(17) => {
                self.push(at + 4, Width::U16Be); // UDP length
                let ports = (self.u16be(at), self.u16be(at + 2));
                if ports.0 == Some(53) || ports.1 == Some(53) {
                    self.dns(at + 8);
                } else {
                    self.quic(at + 8);
                }
            }
            _ => {}
        }
    }

    fn dns(&mut self, at: usize) {
        self.push(at + 2, Width::U16Be); // flags
        for i in 0..4 {
            self.push(at + 4 + 2 * i, Width::U16Be); // QD/AN/NS/AR counts
        }
        self.push(at + 12, Width::U8); // first label length
                                       // Later label lengths of the first name.
        let mut p = at + 12;
        for _ in 0..8 {
            match self.d.get(p) {
                Some(&len) if len > 0 && len < 64 => {
                    p += 1 + len as usize;
                    self.push(p, Width::U8);
                }
                _ => break,
            }
        }
    }

    fn tls(&mut self, at: usize) {
        if self.d.get(at) != Some(&0x16) {
            return;
        }
        self.push(at + 3, Width::U16Be); // record length
        self.push(at + 5, Width::U8); // handshake type
        self.push(at + 6, Width::U8); // handshake length (3 bytes)
        self.push(at + 7, Width::U16Be);
        self.handshake_body(at + 9);
    }

    /// ClientHello body: version, random, session id, cipher suites, compression, extensions.
    fn handshake_body(&mut self, at: usize) {
        let sid = at + 34;
        self.push(sid, Width::U8);
        let Some(&sid_len) = self.d.get(sid) else {
            return;
        };
        let cs = sid + 1 + sid_len as usize;
        self.push(cs, Width::U16Be);
        let Some(cs_len) = self.u16be(cs) else { return };
        let comp = cs + 2 + cs_len as usize;
        self.push(comp, Width::U8);
        let Some(&comp_len) = self.d.get(comp) else {
            return;
        };
        let ext = comp + 1 + comp_len as usize;
        self.push(ext, Width::U16Be);
        let mut p = ext + 2;
        for _ in 0..32 {
            self.push(p, Width::U16Be); // extension type
            self.push(p + 2, Width::U16Be); // extension length
            self.push(p + 4, Width::U16Be); // first inner list length (SNI, ALPN, groups...)
            let Some(len) = self.u16be(p + 2) else { return };
            p += 4 + len as usize;
        }
    }

    fn quic(&mut self, at: usize) {
        if self.d.get(at).is_some_and(|b| b & 0x80 != 0) {
            self.push(at, Width::U8); // first byte: type, packet-number length
            self.push(at + 1, Width::U32Be); // version
            self.push(at + 5, Width::U8); // DCID length
            let Some(&dcid) = self.d.get(at + 5) else {
                return;
            };
            self.push(at + 6 + dcid as usize, Width::U8); // SCID length
        }
    }

    fn link(&mut self, link_type: u32, at: usize) {
        match link_type {
            1 => self.ethernet(at),
            101 | 228 | 229 => self.ip(at),
            113 => {
                self.push(at + 14, Width::U16Be);
                self.ip(at + 16)
            }
            276 => {
                self.push(at, Width::U16Be);
                self.ip(at + 20)
            }
            0 | 108 => self.ip(at + 4),
            _ => {}
        }
    }

    /// Classic pcap: header fields and up to 64 records (their lengths and their frames).
    fn pcap(&mut self) -> bool {
        let Some(magic) = self.u32(0, false) else {
            return false;
        };
        let (be, rec_hdr) = match magic {
            0xa1b2_c3d4 | 0xa1b2_3c4d => (false, 16),
            0xd4c3_b2a1 | 0x4d3c_b2a1 => (true, 16),
            0xa1b2_cd34 => (false, 24),
            0x34cd_b2a1 => (true, 24),
            _ => return false,
        };
        let (w16, w32) = if be {
            (Width::U16Be, Width::U32Be)
        } else {
            (Width::U16Le, Width::U32Le)
        };
        self.push(4, w16); // major version
        self.push(16, w32); // snaplen
        self.push(20, w32); // link type
        let link = self.u32(20, be).unwrap_or(1);
        let mut at = 24;
        for _ in 0..64 {
            let Some(caplen) = self.u32(at + 8, be) else {
                break;
            };
            self.push(at, w32); // ts_sec
            self.push(at + 4, w32); // ts_usec
            self.push(at + 8, w32); // caplen
            self.push(at + 12, w32); // origlen
            self.link(link, at + rec_hdr);
            at += rec_hdr + caplen as usize;
        }
        true
    }

    /// pcapng: block lengths (leading and trailing), EPB/SPB lengths and times, IDB options.
    fn pcapng(&mut self) {
        if self.u32(0, false) != Some(0x0A0D_0D0A) {
            return;
        }
        let be = self.u32(8, false) == Some(0x4D3C_2B1A);
        let (w16, w32) = if be {
            (Width::U16Be, Width::U32Be)
        } else {
            (Width::U16Le, Width::U32Le)
        };
        let mut links = Vec::new();
        let mut at = 0;
        for _ in 0..64 {
            let (Some(kind), Some(len)) = (self.u32(at, be), self.u32(at + 4, be)) else {
                break;
            };
            let len = len as usize;
            self.push(at + 4, w32);
            if len >= 12 {
                self.push(at + len - 4, w32);
            }
            match kind {
                0x0A0D_0D0A => {
                    self.push(at + 12, w16); // major version
                    self.options(at + 24, at + len.saturating_sub(4), w16);
                }
                1 => {
                    links.push(self.u32(at + 8, be).map_or(1, |v| v & 0xffff));
                    self.push(at + 12, w32); // snaplen
                    self.options(at + 16, at + len.saturating_sub(4), w16);
                }
                6 => {
                    self.push(at + 8, w32); // interface id
                    self.push(at + 12, w32); // ts high
                    self.push(at + 16, w32); // ts low
                    self.push(at + 20, w32); // caplen
                    self.push(at + 24, w32); // origlen
                    let iface = self.u32(at + 8, be).unwrap_or(0) as usize;
                    self.link(links.get(iface).copied().unwrap_or(1), at + 28);
                }
                3 => {
                    self.push(at + 8, w32); // origlen
                    self.link(links.first().copied().unwrap_or(1), at + 12);
                }
                _ => {}
            }
            if len < 12 {
                break;
            }
            at += len;
        }
    }

    fn options(&mut self, mut at: usize, end: usize, w16: Width) {
        for _ in 0..16 {
            if at + 4 > end {
                return;
            }
            self.push(at, w16);
            self.push(at + 2, w16);
            let f = Field {
                off: at + 2,
                width: w16,
            };
            if at + 4 > self.d.len() {
                return;
            }
            let len = f.read(self.d) as usize;
            at += 4 + ((len + 3) & !3);
        }
    }
}

fn fields_of(target: Target, d: &[u8]) -> Vec<Field> {
    let mut f = Fields { d, out: Vec::new() };
    match target {
        Target::Decode => {
            if let Some(&link) = d.first() {
                f.link(LINK_TYPES[link as usize % LINK_TYPES.len()], 1);
            }
        }
        Target::Tls => {
            if d.first() == Some(&0x16) {
                f.tls(0);
            } else {
                f.push(1, Width::U16Be);
                f.handshake_body(4);
            }
        }
        Target::Quic => f.quic(0),
        Target::Dns => {
            f.dns(0);
            f.push(0, Width::U16Be); // TCP length prefix reading
            f.dns(2);
        }
        Target::Http => {}
        Target::File | Target::Pipeline => {
            if !f.pcap() {
                f.pcapng();
            }
        }
    }
    f.out
}

const HTTP_TOKENS: [&[u8]; 12] = [
    b"\r\n",
    b"\r\n\r\n",
    b"Content-Length: ",
    b"Content-Length: 18446744073709551616\r\n",
    b"Transfer-Encoding: chunked\r\n",
    b"Host: ",
    b"CONNECT ",
    b":",
    b" HTTP/1.1\r\n",
    b"HTTP/1.1 ",
    b"[::1]:443",
    b"ffffffffffffffff\r\n",
];

/// One mutated input from `base` (splicing with `pool`).
pub fn mutate(rng: &mut Rng, target: Target, base: &[u8], pool: &[Vec<u8>]) -> Vec<u8> {
    let mut d = base.to_vec();
    let rounds = 1 + rng.below(4);
    for _ in 0..rounds {
        // Structure-aware half the time when the input has fields to rewrite.
        if rng.chance(2) {
            let fields = fields_of(target, &d);
            if !fields.is_empty() {
                let f = fields[rng.below(fields.len())];
                let old = f.read(&d);
                let max = match f.size() {
                    1 => 0xff,
                    2 => 0xffff,
                    _ => 0xffff_ffff,
                };
                let v = match rng.below(8) {
                    0 => 0,
                    1 => max,
                    2 => old.wrapping_add(1 + rng.below(16) as u64),
                    3 => old.wrapping_sub(1 + rng.below(16) as u64),
                    4 => (d.len() - f.off) as u64,
                    5 => max / 2 + rng.below(2) as u64,
                    6 => rng.next() & max,
                    _ => old ^ (1 << rng.below(f.size() * 8)),
                };
                f.write(&mut d, v);
                continue;
            }
        }
        byte_mutation(rng, target, &mut d, pool);
    }
    d.truncate(MAX_INPUT);
    d
}

fn byte_mutation(rng: &mut Rng, target: Target, d: &mut Vec<u8>, pool: &[Vec<u8>]) {
    const INTERESTING: [u8; 8] = [0, 1, 0x7f, 0x80, 0xff, 0x40, 0x20, 0x3f];
    match rng.below(10) {
        0 | 1 if !d.is_empty() => {
            let i = rng.below(d.len());
            d[i] ^= 1 << rng.below(8);
        }
        2 if !d.is_empty() => {
            let i = rng.below(d.len());
            d[i] = if rng.chance(2) {
                INTERESTING[rng.below(INTERESTING.len())]
            } else {
                rng.next() as u8
            };
        }
        3 => {
            let i = rng.below(d.len() + 1);
            let n = 1 + rng.below(16);
            let bytes: Vec<u8> = (0..n).map(|_| rng.next() as u8).collect();
            d.splice(i..i, bytes);
        }
        4 if !d.is_empty() => {
            let i = rng.below(d.len());
            let n = 1 + rng.below((d.len() - i).min(64));
            d.drain(i..i + n);
        }
        5 if !d.is_empty() => {
            // Duplicate a range in place (repeated records, options, labels).
            let i = rng.below(d.len());
            let n = 1 + rng.below((d.len() - i).min(256));
            let copy = d[i..i + n].to_vec();
            let at = rng.below(d.len() + 1);
            d.splice(at..at, copy);
        }
        6 if !pool.is_empty() => {
            // Splice: our head with another seed's tail.
            let other = &pool[rng.below(pool.len())];
            let cut = rng.below(d.len() + 1);
            let from = rng.below(other.len() + 1);
            d.truncate(cut);
            d.extend_from_slice(&other[from..]);
        }
        7 if !d.is_empty() => {
            let n = rng.below(d.len());
            d.truncate(n);
        }
        8 if target == Target::Http => {
            let tok = HTTP_TOKENS[rng.below(HTTP_TOKENS.len())];
            let i = rng.below(d.len() + 1);
            d.splice(i..i, tok.iter().copied());
        }
        _ if d.len() >= 4 => {
            // An interesting multi-byte value at a random offset.
            let i = rng.below(d.len() - 1);
            let v: u16 = [0, 1, 0x7fff, 0x8000, 0xffff, 0xfffe][rng.below(6)];
            let b = if rng.chance(2) {
                v.to_be_bytes()
            } else {
                v.to_le_bytes()
            };
            d[i..i + 2].copy_from_slice(&b);
        }
        _ => d.push(rng.next() as u8),
    }
}

// ---------------------------------------------------------------------------------------------
// Running

thread_local! {
    static CATCHING: Cell<bool> = const { Cell::new(false) };
    static LAST_PANIC: RefCell<Option<String>> = const { RefCell::new(None) };
}

/// Installs (once) a panic hook that keeps the message of panics raised under [`try_run`] quiet
/// and recorded, and leaves every other panic to the default hook.
fn install_hook() {
    static ONCE: Once = Once::new();
    ONCE.call_once(|| {
        let default = std::panic::take_hook();
        std::panic::set_hook(Box::new(move |info| {
            if CATCHING.with(Cell::get) {
                let location = info
                    .location()
                    .map(|l| format!("{}:{}", l.file(), l.line()))
                    .unwrap_or_else(|| "unknown location".into());
                let payload = info
                    .payload()
                    .downcast_ref::<&str>()
                    .map(|s| s.to_string())
                    .or_else(|| info.payload().downcast_ref::<String>().cloned())
                    .unwrap_or_default();
                LAST_PANIC.with(|p| *p.borrow_mut() = Some(format!("{location}: {payload}")));
            } else {
                default(info);
            }
        }));
    });
}

/// Runs one input; `Err` carries "file:line: message" of the panic.
pub fn try_run(target: Target, input: &[u8]) -> Result<(), String> {
    install_hook();
    CATCHING.with(|c| c.set(true));
    let result = catch_unwind(AssertUnwindSafe(|| run(target, input)));
    CATCHING.with(|c| c.set(false));
    result.map_err(|_| {
        LAST_PANIC
            .with(|p| p.borrow_mut().take())
            .unwrap_or_else(|| "panic".into())
    })
}

/// One crash: where it panicked, and the smallest input seen panicking there.
#[derive(Debug, Clone)]
pub struct Crash {
    pub message: String,
    pub input: Vec<u8>,
    pub hits: u64,
}

/// What a campaign on one target did.
#[derive(Debug, Default)]
pub struct Report {
    pub tried: u64,
    /// Inputs that panicked (all of them, not only distinct locations).
    pub panicking_inputs: u64,
    /// Distinct crashes, by panic location.
    pub crashes: BTreeMap<String, Crash>,
}

/// Runs `iterations` mutated inputs (after the seeds themselves) on `target`. Each seed is run
/// unmutated first. Crashing inputs are written to `crash_dir/<target>/` when given.
pub fn campaign(
    target: Target,
    seeds: &[Vec<u8>],
    iterations: u64,
    seed: u64,
    crash_dir: Option<&Path>,
) -> Report {
    let mut report = Report::default();
    let mut rng = Rng::new(seed ^ (target as u64).wrapping_mul(0x9E37_79B9));
    let empty = [Vec::new()];
    let pool = if seeds.is_empty() { &empty[..] } else { seeds };
    let record = |report: &mut Report, input: &[u8], message: String| {
        report.panicking_inputs += 1;
        // Group by location (the part before the message).
        let key = message.split(": ").next().unwrap_or("").to_string();
        let entry = report.crashes.entry(key).or_insert_with(|| Crash {
            message: message.clone(),
            input: input.to_vec(),
            hits: 0,
        });
        entry.hits += 1;
        let new_or_smaller = entry.hits == 1 || input.len() < entry.input.len();
        if input.len() < entry.input.len() {
            entry.input = input.to_vec();
            entry.message = message;
        }
        if let (Some(dir), true) = (crash_dir, new_or_smaller) {
            let dir = dir.join(target.name());
            let _ = std::fs::create_dir_all(&dir);
            let name = format!("crash-{:016x}.bin", fnv1a(input));
            let _ = std::fs::write(dir.join(&name), input);
            let _ = std::fs::write(
                dir.join(format!("{name}.txt")),
                format!("{}\n", entry.message),
            );
        }
    };
    for input in seeds {
        report.tried += 1;
        if let Err(message) = try_run(target, input) {
            record(&mut report, input, message);
        }
    }
    let trace = std::env::var_os("FUZZ_LAST_INPUT").map(PathBuf::from);
    // Mutants of mutants now and then: keep a small ring of recent inputs.
    let mut recent: Vec<Vec<u8>> = Vec::new();
    for i in 0..iterations {
        let base = if !recent.is_empty() && rng.chance(4) {
            &recent[rng.below(recent.len())]
        } else {
            &pool[rng.below(pool.len())]
        };
        let input = mutate(&mut rng, target, base, pool);
        report.tried += 1;
        if let Some(path) = &trace {
            // Aborting panics (a failed unsafe precondition) cannot be caught: keep the input
            // on disk before running it so it survives the abort.
            let _ = std::fs::write(path, &input);
        }
        if let Err(message) = try_run(target, &input) {
            record(&mut report, &input, message);
        }
        if recent.len() < 64 {
            recent.push(input);
        } else {
            recent[(i % 64) as usize] = input;
        }
    }
    report
}

/// FNV-1a, to name crash files by content.
pub fn fnv1a(bytes: &[u8]) -> u64 {
    bytes.iter().fold(0xcbf2_9ce4_8422_2325, |h, &b| {
        (h ^ b as u64).wrapping_mul(0x0100_0000_01b3)
    })
}

/// Checked-in crash inputs under `dir` (`tests/fuzz-regressions` for fixed ones,
/// `tests/fuzz-regressions/open` for crashes not fixed yet): `<dir>/<target>/*.bin`.
pub fn regression_inputs(dir: &Path) -> Vec<(Target, PathBuf)> {
    let mut out = Vec::new();
    for target in Target::ALL {
        let dir = dir.join(target.name());
        let Ok(entries) = std::fs::read_dir(&dir) else {
            continue;
        };
        let mut paths: Vec<_> = entries
            .flatten()
            .map(|e| e.path())
            .filter(|p| p.extension().is_some_and(|e| e == "bin"))
            .collect();
        paths.sort();
        out.extend(paths.into_iter().map(|p| (target, p)));
    }
    out
}
