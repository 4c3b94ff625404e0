//! Loss is never silent: crafted captures with bytes the server acknowledged but the capture did
//! not hold (counted by VOLUME), unacknowledged gaps and dropped IP fragments (CAPTURE
//! inconclusive), retransmissions (not loss) and time running backwards (a CAPTURE finding).
//!
//! Every capture is one licensing connection from 192.0.2.10 to license.deepgram.com
//! (203.0.113.10:443, named by its ClientHello's SNI) under captures/compliant-direct.policy.toml,
//! changed only in what the test is about, so the clean one is the baseline: COMPLIANT.

use std::path::PathBuf;

use etherparse::{EtherType, TcpOptionElement};
use etherparse::{Ethernet2Header, IpFragOffset, IpNumber, Ipv4Header, PacketBuilder};

use crate::util::{captures_dir, control, dg_audit};

const CLIENT: [u8; 4] = [192, 0, 2, 10];
const SERVER: [u8; 4] = [203, 0, 113, 10];
const MACS: ([u8; 6], [u8; 6]) = ([2, 0, 0, 0, 0, 1], [2, 0, 0, 0, 0, 2]);
/// 2026-01-01T00:00:00Z, in microseconds: every capture starts on a minute boundary.
const T0_MICROS: i64 = 1_767_225_600_000_000;
const CLIENT_ISN: u32 = 1000;
const SERVER_ISN: u32 = 5000;

/// One frame: time in microseconds since the epoch, Ethernet bytes.
type Frame = (i64, Vec<u8>);

/// A classic little-endian pcap (microseconds, Ethernet) of `frames`, in a file of its own.
fn pcap(name: &str, frames: &[Frame]) -> PathBuf {
    let mut out = Vec::new();
    out.extend_from_slice(&0xa1b2_c3d4u32.to_le_bytes());
    out.extend_from_slice(&2u16.to_le_bytes());
    out.extend_from_slice(&4u16.to_le_bytes());
    out.extend_from_slice(&[0; 8]);
    out.extend_from_slice(&65535u32.to_le_bytes());
    out.extend_from_slice(&1u32.to_le_bytes());
    for (ts, data) in frames {
        out.extend_from_slice(&((ts / 1_000_000) as u32).to_le_bytes());
        out.extend_from_slice(&((ts % 1_000_000) as u32).to_le_bytes());
        out.extend_from_slice(&(data.len() as u32).to_le_bytes());
        out.extend_from_slice(&(data.len() as u32).to_le_bytes());
        out.extend_from_slice(data);
    }
    let dir = std::env::temp_dir().join(format!("dg-audit-loss-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("temp dir");
    let path = dir.join(name);
    std::fs::write(&path, out).expect("write capture");
    path
}

/// A minimal TLS 1.2 ClientHello record naming `sni`.
fn client_hello(sni: &str) -> Vec<u8> {
    let name = sni.as_bytes();
    let mut sni_ext = Vec::new();
    sni_ext.extend_from_slice(&((name.len() + 3) as u16).to_be_bytes());
    sni_ext.push(0); // host_name
    sni_ext.extend_from_slice(&(name.len() as u16).to_be_bytes());
    sni_ext.extend_from_slice(name);
    let mut extensions = vec![0, 0]; // server_name
    extensions.extend_from_slice(&(sni_ext.len() as u16).to_be_bytes());
    extensions.extend_from_slice(&sni_ext);
    let mut body = vec![3, 3];
    body.extend_from_slice(&[7; 32]); // random
    body.push(0); // no session id
    body.extend_from_slice(&[0, 2, 0xc0, 0x2f]); // one cipher suite
    body.extend_from_slice(&[1, 0]); // null compression
    body.extend_from_slice(&(extensions.len() as u16).to_be_bytes());
    body.extend_from_slice(&extensions);
    let mut handshake = vec![1];
    handshake.extend_from_slice(&(body.len() as u32).to_be_bytes()[1..]);
    handshake.extend_from_slice(&body);
    let mut record = vec![0x16, 3, 1];
    record.extend_from_slice(&(handshake.len() as u16).to_be_bytes());
    record.extend_from_slice(&handshake);
    record
}

/// One TCP segment between the client (port 40000) and the server (443).
struct Seg {
    from_client: bool,
    seq: u32,
    ack: Option<u32>,
    syn: bool,
    fin: bool,
    payload: Vec<u8>,
}

impl Seg {
    fn new(from_client: bool, seq: u32, ack: u32) -> Self {
        Seg {
            from_client,
            seq,
            ack: Some(ack),
            syn: false,
            fin: false,
            payload: Vec::new(),
        }
    }

    fn bytes(&self) -> Vec<u8> {
        let (src, dst, sport, dport) = if self.from_client {
            (CLIENT, SERVER, 40000, 443)
        } else {
            (SERVER, CLIENT, 443, 40000)
        };
        let mut b = PacketBuilder::ethernet2(MACS.0, MACS.1)
            .ipv4(src, dst, 64)
            .tcp(sport, dport, self.seq, 64240);
        if self.syn {
            b = b
                .syn()
                .options(&[TcpOptionElement::MaximumSegmentSize(1460)])
                .expect("MSS fits");
        }
        if let Some(ack) = self.ack {
            b = b.ack(ack);
        }
        if self.fin {
            b = b.fin();
        }
        let mut out = Vec::with_capacity(b.size(self.payload.len()));
        b.write(&mut out, &self.payload).expect("segment");
        out
    }
}

/// The handshake and the ClientHello; returns the segments and the client's next sequence
/// number.
fn opening() -> (Vec<Seg>, u32) {
    let hello = client_hello("license.deepgram.com");
    let c = CLIENT_ISN + 1;
    let s = SERVER_ISN + 1;
    let mut syn = Seg::new(true, CLIENT_ISN, 0);
    syn.ack = None;
    syn.syn = true;
    let mut syn_ack = Seg::new(false, SERVER_ISN, c);
    syn_ack.syn = true;
    let mut data = Seg::new(true, c, s);
    let next = c + hello.len() as u32;
    data.payload = hello;
    let segs = vec![
        syn,
        syn_ack,
        Seg::new(true, c, s),
        data,
        Seg::new(false, s, next),
    ];
    (segs, next)
}

/// Both FINs and the last ACK, the client's stream ending at `client_next`.
fn closing(client_next: u32) -> Vec<Seg> {
    let s = SERVER_ISN + 1;
    let mut fin = Seg::new(true, client_next, s);
    fin.fin = true;
    let mut fin_ack = Seg::new(false, s, client_next + 1);
    fin_ack.fin = true;
    vec![fin, fin_ack, Seg::new(true, client_next + 1, s + 1)]
}

/// Frames 10 ms apart from the start of the minute.
fn frames(segs: &[Seg]) -> Vec<Frame> {
    segs.iter()
        .enumerate()
        .map(|(i, s)| (T0_MICROS + i as i64 * 10_000, s.bytes()))
        .collect()
}

/// The audit document of `path` under the compliant-direct policy, with its exit code.
fn analyze(path: &std::path::Path) -> (i32, serde_json::Value) {
    let policy = captures_dir().join("compliant-direct.policy.toml");
    let out = dg_audit(&[
        "analyze",
        "--format",
        "json",
        "--policy",
        policy.to_str().expect("utf-8 path"),
        path.to_str().expect("utf-8 path"),
    ]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    let doc = serde_json::from_slice(&out.stdout)
        .unwrap_or_else(|e| panic!("audit JSON ({e}); stderr: {stderr}"));
    crate::util::assert_schema("audit", &doc);
    (out.status.code().unwrap_or(-1), doc)
}

fn evidence_whats(c: &serde_json::Value) -> Vec<String> {
    c["evidence"]
        .as_array()
        .map(|e| {
            e.iter()
                .filter_map(|e| e["what"].as_str().map(String::from))
                .collect()
        })
        .unwrap_or_default()
}

#[test]
fn the_clean_crafted_licensing_connection_is_compliant() {
    let (mut segs, next) = opening();
    segs.extend(closing(next));
    let (code, audit) = analyze(&pcap("clean.pcap", &frames(&segs)));
    assert_eq!(audit["verdict"], "compliant", "{:#}", audit["controls"]);
    assert_eq!(code, 0);
}

#[test]
fn gigabytes_the_server_acknowledged_but_the_capture_missed_are_a_volume_violation() {
    // The server acknowledges 4.5 GB the capture never held, in 900 MB steps (a bigger single
    // jump would be read as a bogus acknowledgement number).
    let (mut segs, mut next) = opening();
    let step = 900_000_000u32;
    for _ in 0..5 {
        next = next.wrapping_add(step);
        segs.push(Seg::new(false, SERVER_ISN + 1, next));
    }
    segs.extend(closing(next));
    let path = pcap("acked-unseen.pcap", &frames(&segs));
    let (code, audit) = analyze(&path);
    let volume = control(&audit, "VOLUME");
    assert_eq!(volume["verdict"], "violation", "{volume:#}");
    assert_eq!(audit["verdict"], "violation");
    assert_eq!(code, 1);
    let what = &evidence_whats(volume)[0];
    assert!(
        what.contains(
            "of which 4.5 GB of payload the server acknowledged but the capture did not hold"
        ),
        "{what}"
    );
    // 4.5 GB in ceil(4.5e9 / 1460) segments of 40 header bytes, plus what was seen.
    let minute = &audit["licensing"]["per_minute"][0];
    let inferred = 4_500_000_000u64 + 4_500_000_000u64.div_ceil(1460) * 40;
    let seen_ip = minute["egress_ip_bytes"].as_u64().unwrap() - inferred;
    assert!(seen_ip < 2000, "{minute}");
    assert_eq!(minute["egress_missed_bytes"], 4_500_000_000u64);
    // Loss the server acknowledged is sized: CAPTURE has nothing to doubt.
    assert_eq!(control(&audit, "CAPTURE")["verdict"], "pass");

    // Zeek's conn.log fields stay Zeek's: missed_bytes, payload from sequence numbers, IP bytes
    // only as measured; the minute records what was inferred.
    let (_, flows, _) = crate::util::flows_json(&path);
    let flow = &flows["flows"][0];
    assert_eq!(flow["missed_bytes"], 4_500_000_000u64);
    let hello = client_hello("license.deepgram.com").len() as u64;
    assert_eq!(flow["orig_bytes"].as_u64().unwrap(), 4_500_000_000 + hello);
    assert!(flow["orig_ip_bytes"].as_u64().unwrap() < 2000, "{flow}");
    assert!(flow.get("unacked_missed_bytes").is_none(), "{flow}");
    let m = &flow["minutes"][0];
    assert_eq!(m["orig_missed_bytes"], 4_500_000_000u64);
    assert_eq!(m["orig_missed_ip_bytes"], inferred);
}

#[test]
fn a_gap_never_acknowledged_in_a_licensing_flow_is_inconclusive() {
    // After the ClientHello the capture holds a segment 1000 bytes further on, and the server's
    // acknowledgements never pass the gap before the connection ends.
    let (mut segs, next) = opening();
    let mut late = Seg::new(true, next + 1000, SERVER_ISN + 1);
    late.payload = vec![0x17; 100];
    segs.push(late);
    segs.push(Seg::new(false, SERVER_ISN + 1, next));
    let (code, audit) = analyze(&pcap("unacked-gap.pcap", &frames(&segs)));
    let capture = control(&audit, "CAPTURE");
    assert_eq!(capture["verdict"], "inconclusive", "{capture:#}");
    assert!(
        evidence_whats(capture)
            .iter()
            .any(|w| w.starts_with("1.0 KB never seen nor acknowledged inside the licensing flow")),
        "{capture:#}"
    );
    assert_eq!(audit["verdict"], "inconclusive");
    assert_eq!(code, 3);
}

#[test]
fn retransmitted_segments_on_a_span_port_are_not_loss() {
    // The ClientHello seen twice, and the server's ACK too: a span port's usual duplicates.
    let (mut segs, next) = opening();
    let (dup_hello, dup_ack) = (segs[3].bytes(), segs[4].bytes());
    let mut frames = frames(&segs);
    frames.push((T0_MICROS + 60_000, dup_hello));
    frames.push((T0_MICROS + 70_000, dup_ack));
    segs = closing(next);
    for (i, s) in segs.iter().enumerate() {
        frames.push((T0_MICROS + 80_000 + i as i64 * 10_000, s.bytes()));
    }
    let (code, audit) = analyze(&pcap("retransmits.pcap", &frames));
    assert_eq!(audit["verdict"], "compliant", "{:#}", audit["controls"]);
    assert_eq!(code, 0);
}

/// The IPv4 fragments of a UDP datagram from `src` to `dst`, cut at `cut` bytes of IP payload
/// (a multiple of 8), each in its own Ethernet frame.
fn udp_fragments(src: [u8; 4], dst: [u8; 4], id: u16, payload: &[u8], cut: usize) -> Vec<Vec<u8>> {
    let builder = PacketBuilder::ipv4(src, dst, 64).udp(50000, 9999);
    let mut whole = Vec::new();
    builder.write(&mut whole, payload).expect("datagram");
    let ip_payload = &whole[Ipv4Header::MIN_LEN..];
    ip_payload
        .chunks(cut)
        .enumerate()
        .map(|(i, chunk)| {
            let mut h =
                Ipv4Header::new(chunk.len() as u16, 64, IpNumber::UDP, src, dst).expect("header");
            h.identification = id;
            h.more_fragments = (i + 1) * cut < ip_payload.len();
            h.fragment_offset = IpFragOffset::try_new((i * cut / 8) as u16).expect("offset");
            h.header_checksum = h.calc_header_checksum();
            let mut out = Vec::new();
            Ethernet2Header {
                source: MACS.0,
                destination: MACS.1,
                ether_type: EtherType::IPV4,
            }
            .write(&mut out)
            .expect("ethernet");
            h.write(&mut out).expect("ip");
            out.extend_from_slice(chunk);
            out
        })
        .collect()
}

#[test]
fn a_fragment_flood_that_drops_an_egress_datagram_is_not_compliant() {
    let (mut segs, next) = opening();
    segs.extend(closing(next));
    let mut frames = frames(&segs);
    // A complete UDP datagram to an address nothing allows, in two fragments; between them,
    // 4100 first fragments that never complete fill the reassembly table and push it out.
    let egress = udp_fragments(CLIENT, [203, 0, 113, 99], 7, &[0x55; 1000], 512);
    // Without the flood the datagram is rebuilt, and it is a DEST violation: it was egress.
    let mut unflooded = frames.clone();
    unflooded.push((T0_MICROS + 1_000_000, egress[0].clone()));
    unflooded.push((T0_MICROS + 1_000_100, egress[1].clone()));
    let (_, audit) = analyze(&pcap("fragments.pcap", &unflooded));
    assert_eq!(control(&audit, "DEST")["verdict"], "violation");
    let mut ts = T0_MICROS + 1_000_000;
    frames.push((ts, egress[0].clone()));
    for id in 0..4100u16 {
        ts += 100;
        let flood = udp_fragments([192, 0, 2, 66], [192, 0, 2, 67], id, &[0xaa; 64], 16);
        frames.push((ts, flood[0].clone()));
    }
    frames.push((ts + 100, egress[1].clone()));
    let (code, audit) = analyze(&pcap("fragment-flood.pcap", &frames));
    assert_ne!(audit["verdict"], "compliant");
    let capture = control(&audit, "CAPTURE");
    assert_eq!(capture["verdict"], "inconclusive", "{capture:#}");
    assert!(
        evidence_whats(capture)
            .iter()
            .any(|w| w.contains("because the reassembly table was full")),
        "{capture:#}"
    );
    assert_eq!(code, 3);
}

#[test]
fn time_running_backwards_is_a_capture_finding_naming_its_record() {
    let (mut segs, next) = opening();
    segs.extend(closing(next));
    let mut frames = frames(&segs);
    // Frames 200 ms apart, and the server's ACK of the ClientHello (record 5) stamped 500 ms
    // earlier than its place: 300 ms before the frame before it, more than a clock step.
    for (i, f) in frames.iter_mut().enumerate() {
        f.0 = T0_MICROS + i as i64 * 200_000;
    }
    frames[4].0 -= 500_000;
    let path = pcap("backwards.pcap", &frames);
    let (code, audit) = analyze(&path);
    let capture = control(&audit, "CAPTURE");
    assert_eq!(capture["verdict"], "finding", "{capture:#}");
    let what = &evidence_whats(capture)[0];
    assert!(
        what.starts_with(&format!(
            "time runs backwards in 1 frame(s), first at {} record 5: ",
            path.display()
        )),
        "{what}"
    );
    // CAPTURE's is the only finding: the connection is otherwise the clean baseline.
    assert_eq!(audit["verdict"], "findings");
    let findings: Vec<_> = audit["controls"]
        .as_array()
        .expect("controls")
        .iter()
        .filter(|c| c["verdict"] == "finding")
        .map(|c| c["id"].clone())
        .collect();
    assert_eq!(findings, ["CAPTURE"]);
    assert_eq!(code, 0);
    // The analysis keeps packet order: the connection is still one clean flow.
    let (_, flows, _) = crate::util::flows_json(&path);
    assert_eq!(flows["flows"][0]["conn_state"], "SF");
    assert_eq!(flows["decode"]["time_reversals"], 1);
}
