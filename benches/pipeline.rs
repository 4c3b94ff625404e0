//! Criterion benchmarks of the hot paths, through the crate's public API:
//!
//! - `read_decode`: map a capture, walk its records, decode every frame (bytes/s);
//! - `flow_table`: `FlowTable::process` + `finish` over packets decoded beforehand (packets/s);
//! - `client_hello`: `inspect::tls::parse_client_hello` on real ClientHellos (bytes/s);
//! - `run_files`: one whole `pipeline::run_files` pass over a 100 MB synthetic capture (bytes/s).
//!
//! Inputs: the public corpus in `../shared/corpus/` (always there) and `target/bench/mix-100M.pcap`
//! from pcapgen (see `../shared/tools/README.md`). The latter is made on first use when the
//! pcapgen binary is found (`$PCAPGEN`, `../shared/tools/pcapgen/target/release/pcapgen` or
//! `/tmp/pcapgen-target/release/pcapgen`); without it the benches that need it are skipped with a
//! message. Files are read through their paths; after the first iteration they are page-cached, so
//! these numbers are CPU cost, not disk speed.
//!
//! Run: `cargo bench --bench pipeline -- --warm-up-time 1` (about two minutes on 2 cores).

use std::hint::black_box;
use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use criterion::{criterion_group, criterion_main, BatchSize, Criterion, SamplingMode, Throughput};
use dg_audit::decode::{Checksum, Decoder, Packet, TcpSegment, Transport};
use dg_audit::flow::{FlowConfig, FlowTable};
use dg_audit::inspect::{tls, Parse};
use dg_audit::names::NameBook;
use dg_audit::pipeline::run_files;
use dg_audit::source::file::CaptureFile;

const MIX_SIZE: &str = "100M";
const MIX_SEED: &str = "2";

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn corpus(name: &str) -> PathBuf {
    root().join("../shared/corpus").join(name)
}

/// `target/bench/mix-100M.pcap`, made with pcapgen when missing; None (with a message) when it
/// cannot be made.
fn mix_capture() -> Option<PathBuf> {
    let path = root().join(format!("target/bench/mix-{MIX_SIZE}.pcap"));
    if path.exists() {
        return Some(path);
    }
    let candidates = [
        std::env::var_os("PCAPGEN").map(PathBuf::from),
        Some(root().join("../shared/tools/pcapgen/target/release/pcapgen")),
        Some(PathBuf::from("/tmp/pcapgen-target/release/pcapgen")),
    ];
    let Some(pcapgen) = candidates.into_iter().flatten().find(|p| p.is_file()) else {
        eprintln!(
            "skipping the {MIX_SIZE} synthetic-capture benches: {} is missing and pcapgen is not \
             built (cargo build --release --manifest-path ../shared/tools/pcapgen/Cargo.toml)",
            path.display()
        );
        return None;
    };
    std::fs::create_dir_all(path.parent().unwrap()).ok()?;
    eprintln!("making {} with {}", path.display(), pcapgen.display());
    let status = Command::new(&pcapgen)
        .args(["--size", MIX_SIZE, "--seed", MIX_SEED, "--out"])
        .arg(&path)
        .status();
    match status {
        Ok(s) if s.success() && path.exists() => Some(path),
        other => {
            eprintln!(
                "skipping the {MIX_SIZE} synthetic-capture benches: pcapgen failed ({other:?})"
            );
            None
        }
    }
}

fn file_len(path: &Path) -> u64 {
    std::fs::metadata(path)
        .unwrap_or_else(|e| panic!("{}: {e}", path.display()))
        .len()
}

/// Reads and decodes every frame of `path`; returns the number of decoded packets.
fn read_decode(path: &Path) -> u64 {
    let file = CaptureFile::open(path).expect("open capture");
    let mut reader = file.reader(0).expect("capture header");
    let mut decoder = Decoder::new();
    let mut packets = 0u64;
    while let Some(frame) = reader.next_frame() {
        decoder.decode(&frame, &mut |pkt| {
            packets += 1;
            black_box(pkt);
        });
    }
    packets
}

fn bench_read_decode(c: &mut Criterion) {
    let mut group = c.benchmark_group("read_decode");
    group.measurement_time(Duration::from_secs(3));
    for name in ["ndpi-chrome.pcap", "zeek-wikipedia.pcap"] {
        let path = corpus(name);
        group.throughput(Throughput::Bytes(file_len(&path)));
        group.bench_function(name, |b| b.iter(|| read_decode(black_box(&path))));
    }
    if let Some(path) = mix_capture() {
        group.sampling_mode(SamplingMode::Flat);
        group.throughput(Throughput::Bytes(file_len(&path)));
        group.bench_function(format!("mix-{MIX_SIZE}.pcap"), |b| {
            b.iter(|| read_decode(black_box(&path)))
        });
    }
    group.finish();
}

/// A decoded packet with its payload moved into an arena. The decoder lends each packet to a
/// callback with a lifetime that ends with the call (a reassembled datagram lives in the decoder),
/// so packets are copied out once at setup and rebuilt as borrowed `Packet`s, which costs a few
/// field copies per packet and no allocation: the timed loop is the flow table alone.
struct StoredPacket {
    ts_nanos: i64,
    src: IpAddr,
    dst: IpAddr,
    ip_proto: u8,
    ip_bytes: u32,
    vlan: Option<u16>,
    truncated: bool,
    ttl: u8,
    checksum: Checksum,
    l4: StoredL4,
    /// Payload range in the arena.
    payload: (usize, usize),
}

enum StoredL4 {
    Tcp {
        src_port: u16,
        dst_port: u16,
        seq: u32,
        ack: u32,
        flags: u8,
        window: u16,
        wire_payload_len: u32,
    },
    Udp {
        src_port: u16,
        dst_port: u16,
        wire_payload_len: u32,
    },
    Icmp {
        v6: bool,
        icmp_type: u8,
        code: u8,
        ident: u16,
        error: bool,
        wire_payload_len: u32,
    },
    Other {
        wire_payload_len: u32,
    },
}

struct Decoded {
    arena: Vec<u8>,
    packets: Vec<StoredPacket>,
}

impl Decoded {
    fn load(path: &Path, max_packets: usize) -> Self {
        let file = CaptureFile::open(path).expect("open capture");
        let mut reader = file.reader(0).expect("capture header");
        let mut decoder = Decoder::new();
        let mut out = Decoded {
            arena: Vec::new(),
            packets: Vec::new(),
        };
        while let Some(frame) = reader.next_frame() {
            if out.packets.len() >= max_packets {
                break;
            }
            decoder.decode(&frame, &mut |pkt| out.store(pkt));
        }
        out
    }

    fn store(&mut self, pkt: &Packet<'_>) {
        let (l4, payload): (StoredL4, &[u8]) = match pkt.transport {
            Transport::Tcp(seg) => (
                StoredL4::Tcp {
                    src_port: seg.src_port,
                    dst_port: seg.dst_port,
                    seq: seg.seq,
                    ack: seg.ack,
                    flags: seg.flags,
                    window: seg.window,
                    wire_payload_len: seg.wire_payload_len,
                },
                seg.payload,
            ),
            Transport::Udp {
                src_port,
                dst_port,
                payload,
                wire_payload_len,
            } => (
                StoredL4::Udp {
                    src_port,
                    dst_port,
                    wire_payload_len,
                },
                payload,
            ),
            Transport::Icmp {
                v6,
                icmp_type,
                code,
                ident,
                error,
                wire_payload_len,
            } => (
                StoredL4::Icmp {
                    v6,
                    icmp_type,
                    code,
                    ident,
                    error,
                    wire_payload_len,
                },
                &[],
            ),
            Transport::Other { wire_payload_len } => (StoredL4::Other { wire_payload_len }, &[]),
        };
        let start = self.arena.len();
        self.arena.extend_from_slice(payload);
        self.packets.push(StoredPacket {
            ts_nanos: pkt.ts_nanos,
            src: pkt.src,
            dst: pkt.dst,
            ip_proto: pkt.ip_proto,
            ip_bytes: pkt.ip_bytes,
            vlan: pkt.vlan,
            truncated: pkt.truncated,
            ttl: pkt.ttl,
            checksum: pkt.checksum,
            l4,
            payload: (start, self.arena.len()),
        });
    }

    fn packet(&self, p: &StoredPacket) -> Packet<'_> {
        let payload = &self.arena[p.payload.0..p.payload.1];
        let transport = match p.l4 {
            StoredL4::Tcp {
                src_port,
                dst_port,
                seq,
                ack,
                flags,
                window,
                wire_payload_len,
            } => Transport::Tcp(TcpSegment {
                src_port,
                dst_port,
                seq,
                ack,
                flags,
                window,
                payload,
                wire_payload_len,
                mss: None,
            }),
            StoredL4::Udp {
                src_port,
                dst_port,
                wire_payload_len,
            } => Transport::Udp {
                src_port,
                dst_port,
                payload,
                wire_payload_len,
            },
            StoredL4::Icmp {
                v6,
                icmp_type,
                code,
                ident,
                error,
                wire_payload_len,
            } => Transport::Icmp {
                v6,
                icmp_type,
                code,
                ident,
                error,
                wire_payload_len,
            },
            StoredL4::Other { wire_payload_len } => Transport::Other { wire_payload_len },
        };
        Packet {
            ts_nanos: p.ts_nanos,
            src: p.src,
            dst: p.dst,
            ip_proto: p.ip_proto,
            ip_bytes: p.ip_bytes,
            vlan: p.vlan,
            truncated: p.truncated,
            ttl: p.ttl,
            checksum: p.checksum,
            transport,
        }
    }

    /// Feeds every packet to a fresh table and ends it; returns the number of flow records.
    fn run_table(&self, mut table: FlowTable) -> u64 {
        let mut records = 0u64;
        let mut sink = |rec| {
            records += 1;
            black_box(rec);
        };
        for p in &self.packets {
            table.process(&self.packet(p), &mut sink);
        }
        table.finish(&mut sink);
        records
    }
}

fn bench_flow_table(c: &mut Criterion) {
    let mut group = c.benchmark_group("flow_table");
    group.measurement_time(Duration::from_secs(3));
    let mut inputs: Vec<(String, PathBuf, usize)> = ["ndpi-chrome.pcap", "zeek-wikipedia.pcap"]
        .into_iter()
        .map(|n| (n.to_string(), corpus(n), usize::MAX))
        .collect();
    if let Some(path) = mix_capture() {
        // The first 100k packets: about 60 MB of payload held in memory, tens of ms a pass.
        inputs.push((format!("mix-{MIX_SIZE}.pcap first 100k"), path, 100_000));
    }
    for (name, path, max) in inputs {
        let decoded = Decoded::load(&path, max);
        if name.starts_with("mix") {
            group.sampling_mode(SamplingMode::Flat);
        }
        group.throughput(Throughput::Elements(decoded.packets.len() as u64));
        group.bench_function(name, |b| {
            b.iter_batched(
                || FlowTable::new(FlowConfig::default(), NameBook::default()),
                |table| decoded.run_table(table),
                BatchSize::PerIteration,
            )
        });
    }
    group.finish();
}

/// The client-to-server stream of the first TLS connection in `path`, from its first byte up to
/// the end of its ClientHello (several segments when the ClientHello is split). None when the
/// crate's parser does not read a ClientHello there.
fn client_hello_stream(path: &Path) -> Option<Vec<u8>> {
    let file = CaptureFile::open(path).expect("open capture");
    let mut reader = file.reader(0).expect("capture header");
    let mut decoder = Decoder::new();
    let mut flow: Option<(IpAddr, u16, IpAddr, u16)> = None;
    let mut next_seq = 0u32;
    let mut stream = Vec::new();
    let mut done = false;
    while let Some(frame) = reader.next_frame() {
        decoder.decode(&frame, &mut |pkt| {
            let Transport::Tcp(seg) = pkt.transport else {
                return;
            };
            if done || seg.payload.is_empty() {
                return;
            }
            let key = (pkt.src, seg.src_port, pkt.dst, seg.dst_port);
            match flow {
                None if tls::looks_like_tls(seg.payload) && seg.payload[0] == 22 => {
                    flow = Some(key);
                }
                Some(k) if k == key && seg.seq == next_seq => {}
                _ => return, // another flow, a retransmission or a gap
            }
            next_seq = seg.seq.wrapping_add(seg.payload.len() as u32);
            stream.extend_from_slice(seg.payload);
            done = !matches!(tls::parse_client_hello(&stream), Parse::NeedMore);
        });
    }
    match tls::parse_client_hello(&stream) {
        Parse::Done(_) => Some(stream),
        _ => None,
    }
}

fn bench_client_hello(c: &mut Criterion) {
    let mut group = c.benchmark_group("client_hello");
    group.measurement_time(Duration::from_secs(3));
    for name in [
        // Chrome 125, X25519Kyber768 key share: a 1.7 kB ClientHello in one segment.
        "zeek-tls-chrome-1250-tls-x25519-kyber.pcap",
        // A TLS 1.2-era ClientHello of 322 bytes.
        "zeek-tls1.2.pcap",
        // An 11 kB ClientHello over many segments and records (the joining path).
        "ndpi-tls_with_huge_ch.pcapng",
    ] {
        let Some(stream) = client_hello_stream(&corpus(name)) else {
            eprintln!(
                "skipping client_hello/{name}: parse_client_hello reads no ClientHello there"
            );
            continue;
        };
        group.throughput(Throughput::Bytes(stream.len() as u64));
        group.bench_function(name, |b| {
            b.iter(|| tls::parse_client_hello(black_box(&stream)))
        });
    }
    group.finish();
}

fn bench_run_files(c: &mut Criterion) {
    let Some(path) = mix_capture() else {
        return;
    };
    let mut group = c.benchmark_group("run_files");
    group.sample_size(10);
    group.sampling_mode(SamplingMode::Flat);
    group.measurement_time(Duration::from_secs(8));
    group.throughput(Throughput::Bytes(file_len(&path)));
    let paths = vec![path];
    group.bench_function(format!("mix-{MIX_SIZE}.pcap"), |b| {
        b.iter(|| {
            let mut records = 0u64;
            let summary = run_files(
                black_box(&paths),
                FlowConfig::default(),
                NameBook::default(),
                &mut |rec| {
                    records += 1;
                    black_box(rec);
                },
                None,
            )
            .expect("run_files");
            black_box(summary);
            records
        })
    });
    group.finish();
}

criterion_group! {
    name = benches;
    config = Criterion::default().sample_size(10).measurement_time(Duration::from_secs(3));
    targets = bench_read_decode, bench_flow_table, bench_client_hello, bench_run_files
}
criterion_main!(benches);
