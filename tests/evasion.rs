//! Evasion and secrets end to end, on captures written here packet by packet: overlapping TCP
//! segments that read two ways (either order, a bad checksum on either copy), a checksum-offload
//! host capture, a license key in a DNS label and a key split across two TCP segments.
//!
//! Every capture is a pcap written with etherparse's `PacketBuilder` (checksums computed), a bad
//! checksum being one flipped byte of the TCP checksum field.

use std::path::PathBuf;

use etherparse::PacketBuilder;
use serde_json::Value;

use crate::util::{control, dg_audit, flows_json, LICENSE_KEY};

const CLIENT: [u8; 4] = [10, 1, 2, 3];
const SERVER: [u8; 4] = [203, 0, 113, 10];
const RESOLVER: [u8; 4] = [10, 0, 0, 53];
const CLIENT_ISN: u32 = 1000;
const SERVER_ISN: u32 = 5000;
/// Ethernet + IPv4 header + 16: the TCP checksum field.
const TCP_CHECKSUM_AT: usize = 14 + 20 + 16;

/// One frame of a test capture.
struct Frame {
    bytes: Vec<u8>,
}

/// A TCP segment from the client (`to_server`) or the server, with `flags` of "S", "A", "P", "F".
fn tcp(to_server: bool, seq: u32, ack: u32, flags: &str, payload: &[u8], bad: bool) -> Frame {
    let (src, dst, sport, dport) = if to_server {
        (CLIENT, SERVER, 40000, 443)
    } else {
        (SERVER, CLIENT, 443, 40000)
    };
    let mut b = PacketBuilder::ethernet2([2, 0, 0, 0, 0, 1], [2, 0, 0, 0, 0, 2])
        .ipv4(src, dst, 64)
        .tcp(sport, dport, seq, 64240);
    for f in flags.chars() {
        b = match f {
            'S' => b.syn(),
            'A' => b.ack(ack),
            'P' => b.psh(),
            'F' => b.fin(),
            _ => b,
        };
    }
    let mut bytes = Vec::new();
    b.write(&mut bytes, payload).expect("packet builds");
    if bad {
        bytes[TCP_CHECKSUM_AT] ^= 0xff;
    }
    Frame { bytes }
}

/// A DNS query (UDP) from the client to the resolver for `name`, type A.
fn dns_query(name: &str) -> Frame {
    let mut msg = vec![0x12, 0x34, 0x01, 0x00, 0, 1, 0, 0, 0, 0, 0, 0];
    for label in name.split('.') {
        msg.push(label.len() as u8);
        msg.extend_from_slice(label.as_bytes());
    }
    msg.extend_from_slice(&[0, 0, 1, 0, 1]);
    let mut bytes = Vec::new();
    PacketBuilder::ethernet2([2, 0, 0, 0, 0, 1], [2, 0, 0, 0, 0, 2])
        .ipv4(CLIENT, RESOLVER, 64)
        .udp(53000, 53)
        .write(&mut bytes, &msg)
        .expect("packet builds");
    Frame { bytes }
}

/// Writes `frames` as a pcap (one frame every 10 ms) into a temporary file named `name`.
fn pcap(name: &str, frames: &[Frame]) -> PathBuf {
    let mut out = Vec::new();
    out.extend_from_slice(&0xa1b2_c3d4u32.to_le_bytes());
    out.extend_from_slice(&2u16.to_le_bytes());
    out.extend_from_slice(&4u16.to_le_bytes());
    for v in [0u32, 0, 65535, 1] {
        out.extend_from_slice(&v.to_le_bytes());
    }
    for (i, f) in frames.iter().enumerate() {
        let micros = i as u32 * 10_000;
        let len = f.bytes.len() as u32;
        for v in [1_700_000_000u32, micros, len, len] {
            out.extend_from_slice(&v.to_le_bytes());
        }
        out.extend_from_slice(&f.bytes);
    }
    let dir = std::env::temp_dir().join(format!("dg-audit-evasion-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("temp dir");
    let path = dir.join(name);
    std::fs::write(&path, out).expect("pcap written");
    path
}

/// A TLS record holding a ClientHello for `sni`, padded (padding extension) so that every name
/// of up to 20 characters gives a record of the same length: two copies of the same range.
fn client_hello(sni: &str) -> Vec<u8> {
    assert!(sni.len() <= 20);
    let mut ext = Vec::new();
    let name = sni.as_bytes();
    ext.extend_from_slice(&[0, 0]);
    ext.extend_from_slice(&(name.len() as u16 + 5).to_be_bytes());
    ext.extend_from_slice(&(name.len() as u16 + 3).to_be_bytes());
    ext.push(0);
    ext.extend_from_slice(&(name.len() as u16).to_be_bytes());
    ext.extend_from_slice(name);
    let pad = 20 - name.len();
    if pad > 0 {
        // A padding extension (RFC 7685) of `pad - 4` zero bytes fills the difference.
        assert!(pad >= 4);
        ext.extend_from_slice(&[0, 21]);
        ext.extend_from_slice(&(pad as u16 - 4).to_be_bytes());
        ext.extend(std::iter::repeat_n(0, pad - 4));
    }
    let mut body = vec![3, 3];
    body.extend_from_slice(&[7; 32]);
    body.push(0);
    body.extend_from_slice(&[0, 2, 0x13, 0x01, 1, 0]);
    body.extend_from_slice(&(ext.len() as u16).to_be_bytes());
    body.extend_from_slice(&ext);
    let mut hs = vec![1, 0];
    hs.extend_from_slice(&(body.len() as u16).to_be_bytes());
    hs.extend_from_slice(&body);
    let mut record = vec![0x16, 3, 1];
    record.extend_from_slice(&(hs.len() as u16).to_be_bytes());
    record.extend_from_slice(&hs);
    record
}

/// A handshake, the client's `copies` of its first data (each: payload, bad checksum), the
/// server's acknowledgement and a close. `offload`: every client packet has a bad checksum.
fn conversation(copies: &[(&[u8], bool)], offload: bool) -> Vec<Frame> {
    let c = CLIENT_ISN + 1;
    let s = SERVER_ISN + 1;
    let len = copies.iter().map(|(p, _)| p.len()).max().unwrap_or(0) as u32;
    let mut frames = vec![
        tcp(true, CLIENT_ISN, 0, "S", b"", offload),
        tcp(false, SERVER_ISN, c, "SA", b"", false),
        tcp(true, c, s, "A", b"", offload),
    ];
    for (payload, bad) in copies {
        frames.push(tcp(true, c, s, "PA", payload, *bad || offload));
    }
    frames.push(tcp(false, s, c + len, "A", b"", false));
    frames.push(tcp(true, c + len, s, "FA", b"", offload));
    frames.push(tcp(false, s, c + len + 1, "FA", b"", false));
    frames.push(tcp(true, c + len + 1, s + 1, "A", b"", offload));
    frames
}

/// The TCP flow of a flows document.
fn tcp_flow(doc: &Value) -> &Value {
    doc["flows"]
        .as_array()
        .expect("flows")
        .iter()
        .find(|f| f["proto"] == "tcp")
        .expect("a TCP flow")
}

const GOOD: &str = "license.deepgram.com";
const EVIL: &str = "evil.example.net";

/// Writes the conversation, reads its flow, and checks the primary SNI, the alternate SNI and
/// which copy of the conflict had a bad checksum.
fn assert_two_readings(name: &str, copies: [(&str, bool); 2], primary: &str, alternate: &str) {
    let hellos: Vec<Vec<u8>> = copies.iter().map(|(n, _)| client_hello(n)).collect();
    let frames = conversation(
        &[(&hellos[0], copies[0].1), (&hellos[1], copies[1].1)],
        false,
    );
    let (_, doc, stderr) = flows_json(&pcap(name, &frames));
    let flow = tcp_flow(&doc);
    assert_eq!(flow["tls"]["sni"], primary, "{name}: {flow:#}\n{stderr}");
    let sc = &flow["stream_conflicts"];
    assert_eq!(
        sc["alternate_sni"],
        serde_json::json!([alternate]),
        "{name}"
    );
    assert_eq!(sc["count"], 1, "{name}: {sc:#}");
    let k = &sc["conflicts"][0];
    assert_eq!(k["direction"], "orig");
    assert_eq!(k["first_bad_checksum"], copies[0].1, "{name}");
    assert_eq!(k["second_bad_checksum"], copies[1].1, "{name}");
    assert_ne!(k["first_hex"], k["second_hex"]);
}

#[test]
fn overlapping_copies_read_two_ways_in_either_order() {
    // Two good copies: the first is the primary reading (what most stacks keep).
    assert_two_readings("good-good.pcap", [(GOOD, false), (EVIL, false)], GOOD, EVIL);
    assert_two_readings(
        "good-good-rev.pcap",
        [(EVIL, false), (GOOD, false)],
        EVIL,
        GOOD,
    );
}

#[test]
fn a_good_copy_wins_over_a_bad_checksum_copy_in_either_order() {
    // The monitor must not be fooled by a bad-checksum copy the host dropped.
    assert_two_readings("bad-good.pcap", [(GOOD, true), (EVIL, false)], EVIL, GOOD);
    assert_two_readings("good-bad.pcap", [(EVIL, false), (GOOD, true)], EVIL, GOOD);
}

#[test]
fn a_conflict_before_the_rest_of_the_client_hello_still_names_both() {
    // The names differ only in the first segment; the second arrives after both copies.
    let evil = "evilxxx.deepgram.com";
    for (first_bad, primary, alternate) in [(false, GOOD, evil), (true, evil, GOOD)] {
        let (a, b) = (client_hello(GOOD), client_hello(evil));
        let c = CLIENT_ISN + 1;
        let s = SERVER_ISN + 1;
        let frames = vec![
            tcp(true, CLIENT_ISN, 0, "S", b"", false),
            tcp(false, SERVER_ISN, c, "SA", b"", false),
            tcp(true, c, s, "A", b"", false),
            tcp(true, c, s, "PA", &a[..70], first_bad),
            tcp(true, c, s, "PA", &b[..70], !first_bad),
            tcp(true, c + 70, s, "PA", &a[70..], false),
            tcp(false, s, c + a.len() as u32, "A", b"", false),
        ];
        let (_, doc, _) = flows_json(&pcap("split-hello-conflict.pcap", &frames));
        let flow = tcp_flow(&doc);
        assert_eq!(flow["tls"]["sni"], primary, "{flow:#}");
        let alternates = &flow["stream_conflicts"]["alternate_sni"];
        assert_eq!(*alternates, serde_json::json!([alternate]), "{flow:#}");
    }
}

#[test]
fn identical_copies_are_no_conflict() {
    let hello = client_hello(GOOD);
    let frames = conversation(&[(&hello, true), (&hello, false)], false);
    let (_, doc, _) = flows_json(&pcap("same-twice.pcap", &frames));
    let flow = tcp_flow(&doc);
    assert_eq!(flow["tls"]["sni"], GOOD);
    assert!(flow.get("stream_conflicts").is_none(), "{flow:#}");
}

#[test]
fn a_checksum_offload_host_capture_is_still_read() {
    let hello = client_hello(GOOD);
    let frames = conversation(&[(&hello, false)], true);
    let (_, doc, _) = flows_json(&pcap("offload.pcap", &frames));
    let flow = tcp_flow(&doc);
    assert_eq!(flow["tls"]["sni"], GOOD, "{flow:#}");
    assert_eq!(flow["orig_bad_checksums"], 5);
    assert!(flow.get("stream_conflicts").is_none());
}

fn policy() -> PathBuf {
    let dir = std::env::temp_dir().join(format!("dg-audit-evasion-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("temp dir");
    let path = dir.join("policy.toml");
    std::fs::write(
        &path,
        "schema_version = 1\n[network]\ninternal = [\"10.0.0.0/8\"]\n\
         [licensing]\nservers = [\"license.deepgram.com:443\"]\n",
    )
    .expect("policy written");
    path
}

/// `dg-audit analyze --format json` of `pcap` under the test policy.
fn analyze(pcap: &std::path::Path) -> Value {
    let out = dg_audit(&[
        "analyze",
        "--format",
        "json",
        pcap.to_str().expect("utf-8 path"),
        "--policy",
        policy().to_str().expect("utf-8 path"),
    ]);
    serde_json::from_slice(&out.stdout).unwrap_or_else(|e| {
        panic!(
            "analyze output is not JSON ({e}): {}",
            String::from_utf8_lossy(&out.stderr)
        )
    })
}

#[test]
fn capture_reports_data_that_reads_two_ways_as_a_finding() {
    let (good, evil) = (client_hello(GOOD), client_hello(EVIL));
    let frames = conversation(&[(&good, true), (&evil, false)], false);
    let audit = analyze(&pcap("capture-two-ways.pcap", &frames));
    let capture = control(&audit, "CAPTURE");
    let evidence = capture["evidence"].to_string();
    assert!(
        evidence.contains("reads two ways") && evidence.contains("(bad checksum)"),
        "{capture:#}"
    );
    assert!(evidence.contains(GOOD), "{capture:#}");
    assert_eq!(capture["verdict"], "finding", "{capture:#}");
}

#[test]
fn a_key_in_a_dns_label_is_reported_and_redacted_everywhere() {
    let name = format!("{LICENSE_KEY}.lic.example.net");
    let split = format!(
        "{}.{}.x.example.net",
        &LICENSE_KEY[..20],
        &LICENSE_KEY[20..]
    );
    let path = pcap("dns-key.pcap", &[dns_query(&name), dns_query(&split)]);
    let (_, doc, _) = flows_json(&path);
    let flow = &doc["flows"][0];
    let names = flow["dns"]["names"].as_array().expect("names");
    assert_eq!(names.len(), 2, "{flow:#}");
    assert!(names[0].as_str().unwrap().ends_with(".lic.example.net"));
    assert_eq!(flow["secrets"][0]["kind"], "license_key", "{flow:#}");
    assert_eq!(flow["secrets"][0]["place"], "dns_name", "{flow:#}");
    for format in ["json", "ndjson", "text", "zeek"] {
        let out = dg_audit(&["flows", "--format", format, path.to_str().unwrap()]);
        let text = String::from_utf8_lossy(&out.stdout);
        assert!(!text.contains(LICENSE_KEY), "flows {format}: {text}");
        assert!(!text.contains(&LICENSE_KEY[..20]), "flows {format}: {text}");
    }
    let audit = analyze(&path);
    let credential = control(&audit, "CREDENTIAL");
    assert_eq!(credential["verdict"], "violation");
    assert!(
        credential["evidence"][0]["what"]
            .as_str()
            .is_some_and(|w| w.contains("in a DNS query name")),
        "{credential:#}"
    );
    assert!(!audit.to_string().contains(LICENSE_KEY));
}

#[test]
fn a_key_split_across_two_segments_is_found() {
    let request = format!("GET /check?key={LICENSE_KEY} HTTP/1.1\r\nHost: lic.example.net\r\n\r\n");
    let (a, b) = request.as_bytes().split_at(35);
    let c = CLIENT_ISN + 1;
    let s = SERVER_ISN + 1;
    let frames = vec![
        tcp(true, CLIENT_ISN, 0, "S", b"", false),
        tcp(false, SERVER_ISN, c, "SA", b"", false),
        tcp(true, c, s, "A", b"", false),
        tcp(true, c, s, "PA", a, false),
        tcp(true, c + a.len() as u32, s, "PA", b, false),
        tcp(false, s, c + request.len() as u32, "A", b"", false),
    ];
    let path = pcap("split-key.pcap", &frames);
    let (_, doc, _) = flows_json(&path);
    let flow = tcp_flow(&doc);
    assert_eq!(flow["secrets"][0]["kind"], "license_key", "{flow:#}");
    assert!(!doc.to_string().contains(LICENSE_KEY));
    assert_eq!(
        control(&analyze(&path), "CREDENTIAL")["verdict"],
        "violation"
    );
}
