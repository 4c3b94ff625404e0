//! Bad inputs get a clear message naming the file (and the record and offset when inside it) and
//! never a panic; what was read before a fault is kept and marked incomplete. `flows` exits 2 on
//! a damaged input; `analyze` judges what was read (3, or 1 when a violation was seen) and exits
//! 2 only when nothing could be read.

use std::path::{Path, PathBuf};

use crate::util::{corpus_dir, dg_audit, flows_json};

fn temp_file(name: &str, bytes: &[u8]) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("dg-audit-tests-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join(name);
    std::fs::write(&path, bytes).unwrap();
    path
}

fn corpus(name: &str) -> Vec<u8> {
    std::fs::read(corpus_dir().join(name)).unwrap()
}

fn stderr_of(path: &Path) -> (i32, String, String) {
    let out = dg_audit(&["flows", path.to_str().unwrap()]);
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

fn assert_no_panic(stderr: &str) {
    assert!(!stderr.contains("panicked"), "dg-audit panicked: {stderr}");
}

#[test]
fn empty_file_is_an_error_naming_the_file() {
    let path = temp_file("empty.pcap", b"");
    let (code, stdout, stderr) = stderr_of(&path);
    assert_eq!(code, 2);
    assert!(stdout.is_empty());
    assert!(
        stderr.contains("empty.pcap") && stderr.contains("empty file"),
        "{stderr}"
    );
    assert_no_panic(&stderr);
}

#[test]
fn text_file_is_not_a_capture() {
    let path = temp_file("notes.txt", b"this is not a capture, just some notes\n");
    let (code, _, stderr) = stderr_of(&path);
    assert_eq!(code, 2);
    assert!(
        stderr.contains("notes.txt") && stderr.contains("not a pcap or pcapng"),
        "{stderr}"
    );
    assert_no_panic(&stderr);
}

#[test]
fn missing_file_is_an_error() {
    let (code, _, stderr) = stderr_of(Path::new("/nonexistent/dir/x.pcap"));
    assert_eq!(code, 2);
    assert!(stderr.contains("/nonexistent/dir/x.pcap"), "{stderr}");
}

#[test]
fn truncated_file_header_is_an_error() {
    let path = temp_file("short-header.pcap", &corpus("zeek-http-get.pcap")[..10]);
    let (code, _, stderr) = stderr_of(&path);
    assert_eq!(code, 2);
    assert!(
        stderr.contains("short-header.pcap") && stderr.contains("header truncated"),
        "{stderr}"
    );
}

#[test]
fn truncated_last_record_keeps_what_was_read_and_is_marked_incomplete() {
    let full = corpus("zeek-http-get.pcap");
    let path = temp_file("cut.pcap", &full[..full.len() - 10]);
    let (code, doc, stderr) = flows_json(&path);
    assert_eq!(code, 2, "{stderr}");
    assert_eq!(doc["complete"], false);
    // The warning names the file, the record number and the byte offset.
    assert!(
        stderr.contains("cut.pcap") && stderr.contains("record 13") && stderr.contains("offset"),
        "{stderr}"
    );
    // 13 of the 14 packets were read and are in the flow.
    let flow = &doc["flows"][0];
    assert_eq!(
        flow["orig_pkts"].as_u64().unwrap() + flow["resp_pkts"].as_u64().unwrap(),
        13
    );
    assert_eq!(doc["inputs"][0]["records"], 13);
}

#[test]
fn garbage_after_a_valid_prefix_is_a_warning_not_a_crash() {
    let mut bytes = corpus("zeek-http-get.pcap");
    // A plausible-looking record header with an absurd captured length, then noise.
    bytes.extend_from_slice(&[
        0x11, 0x22, 0x33, 0x44, 0, 0, 0, 0, 0xff, 0xff, 0xff, 0x7f, 0xff, 0xff, 0xff, 0x7f,
    ]);
    bytes.extend(std::iter::repeat_n(0xa5u8, 64));
    let path = temp_file("garbage-tail.pcap", &bytes);
    let (code, doc, stderr) = flows_json(&path);
    assert_eq!(code, 2);
    assert_eq!(doc["complete"], false);
    assert!(
        stderr.contains("garbage-tail.pcap")
            && stderr.contains("record 14")
            && stderr.contains("corrupt"),
        "{stderr}"
    );
    assert_eq!(doc["inputs"][0]["records"], 14);
    assert_no_panic(&stderr);
}

#[test]
fn pcapng_unknown_block_type_is_skipped() {
    let original = corpus("zeek-pcapng-multi-interface.pcapng");
    // Insert a block of an unassigned type right after the section header block.
    let shb_len = u32::from_le_bytes(original[4..8].try_into().unwrap()) as usize;
    let mut block = Vec::new();
    block.extend_from_slice(&0x0000_0999u32.to_le_bytes());
    block.extend_from_slice(&20u32.to_le_bytes());
    block.extend_from_slice(b"zzzzzzzz");
    block.extend_from_slice(&20u32.to_le_bytes());
    let mut bytes = original[..shb_len].to_vec();
    bytes.extend_from_slice(&block);
    bytes.extend_from_slice(&original[shb_len..]);
    let path = temp_file("unknown-block.pcapng", &bytes);
    let (code, doc, stderr) = flows_json(&path);
    assert_eq!(code, 0, "{stderr}");
    assert_eq!(doc["complete"], true);
    assert_eq!(doc["inputs"][0]["skipped_blocks"], 1);
    let (_, reference, _) = flows_json(&corpus_dir().join("zeek-pcapng-multi-interface.pcapng"));
    // Its three DNS connections (Zeek's baseline), not two empty lists.
    assert_eq!(reference["flows"].as_array().map(Vec::len), Some(3));
    assert_eq!(doc["flows"], reference["flows"]);
}

#[test]
fn snaplen_truncated_capture_is_read_and_counted() {
    let (code, doc, stderr) =
        flows_json(&corpus_dir().join("tcpdump-tcp_rst_diag_payload-trunc.pcap"));
    assert_eq!(code, 0, "{stderr}");
    assert_eq!(doc["inputs"][0]["truncated_frames"], 1);
    assert_eq!(doc["decode"]["truncated_frames"], 1);
    // The RST's bytes on the wire are counted from the IP header, not from what was captured.
    let oracle: serde_json::Value = serde_json::from_slice(
        &std::fs::read(corpus_dir().join("tcpdump-tcp_rst_diag_payload-trunc.pcap.oracle.json"))
            .expect("oracle"),
    )
    .expect("oracle is JSON");
    let conv = &oracle["conversations"][0];
    assert_eq!(
        oracle["frames_truncated_by_snaplen"]
            .as_array()
            .map(Vec::len),
        Some(1)
    );
    assert_eq!(doc["flows"].as_array().map(Vec::len), Some(1));
    let flow = &doc["flows"][0];
    assert_eq!(flow["proto"], "tcp");
    assert!(flow["history"].as_str().unwrap().contains('R'));
    assert_eq!(flow["orig_pkts"], conv["frames_a_to_b"]);
    // tshark's ip.len: 48, though the snaplen kept only 50 bytes of the frame.
    assert_eq!(flow["orig_ip_bytes"], conv["ip_bytes_a_to_b"]);
    assert_eq!(flow["orig_ip_bytes"], 48);
}

#[test]
fn pcapng_with_an_oversized_section_option_is_rejected() {
    let path = corpus_dir().join("libpcap-shb-option-too-long.pcapng");
    let (code, _, stderr) = stderr_of(&path);
    assert_eq!(code, 2);
    assert!(
        stderr.contains("libpcap-shb-option-too-long.pcapng"),
        "{stderr}"
    );
    assert_no_panic(&stderr);
}

#[test]
fn pcapng_interface_statistics_drops_are_counted_and_make_the_audit_inconclusive() {
    // Append an Interface Statistics Block saying interface 0 dropped 5 packets (isb_ifdrop).
    let mut bytes = corpus("zeek-pcapng-multi-interface.pcapng");
    assert_eq!(
        &bytes[8..12],
        &0x1A2B_3C4Du32.to_le_bytes(),
        "little-endian section"
    );
    let mut isb = Vec::new();
    isb.extend_from_slice(&5u32.to_le_bytes()); // block type: ISB
    isb.extend_from_slice(&40u32.to_le_bytes());
    isb.extend_from_slice(&0u32.to_le_bytes()); // interface 0
    isb.extend_from_slice(&0u32.to_le_bytes()); // timestamp high
    isb.extend_from_slice(&0u32.to_le_bytes()); // timestamp low
    isb.extend_from_slice(&5u16.to_le_bytes()); // option isb_ifdrop
    isb.extend_from_slice(&8u16.to_le_bytes());
    isb.extend_from_slice(&5u64.to_le_bytes());
    isb.extend_from_slice(&[0, 0, 0, 0]); // opt_endofopt
    isb.extend_from_slice(&40u32.to_le_bytes());
    bytes.extend_from_slice(&isb);
    let path = temp_file("dropped.pcapng", &bytes);
    let out = dg_audit(&["analyze", "--format", "json", path.to_str().unwrap()]);
    let audit: serde_json::Value = serde_json::from_slice(&out.stdout).expect("audit JSON");
    crate::util::assert_schema("audit", &audit);
    assert_eq!(audit["inputs"][0]["capture_drops"], 5);
    assert_eq!(audit["capture"]["capture_drops"], 5);
    let capture = crate::util::control(&audit, "CAPTURE");
    assert_eq!(capture["verdict"], "inconclusive", "{capture}");
    assert_ne!(audit["verdict"], "compliant");
}

/// `analyze` on a damaged capture: the verdict over what was read, never better than
/// inconclusive; 1 when a violation was seen in the part read; the printed exit code is the real
/// one; 2 only when nothing could be judged.
#[test]
fn damaged_captures_are_judged_over_what_was_read() {
    let captures = crate::util::captures_dir();
    for (name, want_code, want_word) in [
        ("compliant-direct", 3, "INCONCLUSIVE (exit 3)"),
        ("unknown-egress", 1, "VIOLATION (exit 1)"),
    ] {
        let full = std::fs::read(captures.join(format!("{name}.pcap"))).unwrap();
        let path = temp_file(&format!("{name}-cut.pcap"), &full[..full.len() - 10]);
        let policy = captures.join(format!("{name}.policy.toml"));
        let out = dg_audit(&[
            "analyze",
            path.to_str().unwrap(),
            "--policy",
            policy.to_str().unwrap(),
        ]);
        let text = String::from_utf8_lossy(&out.stdout);
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_no_panic(&stderr);
        assert_eq!(out.status.code(), Some(want_code), "{name}: {text}{stderr}");
        assert!(
            text.starts_with(&format!("dg-audit verdict: {want_word}")),
            "{text}"
        );
        assert!(stderr.contains(&format!("{name}-cut.pcap")), "{stderr}");
    }
    let path = temp_file("not-a-capture.pcap", b"hello, world\n");
    let out = dg_audit(&["analyze", path.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(2));
    assert!(out.stdout.is_empty());
}
