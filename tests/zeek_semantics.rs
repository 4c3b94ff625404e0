//! Zeek conn.log semantics that need a whole capture file (the rest are unit tests in
//! src/flow/tcp.rs, src/flow/table.rs and src/decode.rs).

use std::path::PathBuf;

use crate::util::{corpus_dir, flows_json};

fn temp_file(name: &str, bytes: &[u8]) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("dg-audit-zeeksem-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join(name);
    std::fs::write(&path, bytes).unwrap();
    path
}

/// libpcap reads a classic header's link type through LT_LINKTYPE (x & 0x03FFFFFF): the upper
/// bits say whether and how long an FCS each frame carries. With them set, the capture is still
/// Ethernet and its flows are the same.
#[test]
fn fcs_bits_in_the_classic_header_link_type_are_masked() {
    let original = corpus_dir().join("zeek-http-get.pcap");
    let mut bytes = std::fs::read(&original).unwrap();
    // Little-endian header: the link type is bytes 20..24. FCS present (bit 26), length 0.
    let link = u32::from_le_bytes(bytes[20..24].try_into().unwrap());
    assert_eq!(link, 1);
    bytes[20..24].copy_from_slice(&(link | 0x0400_0000).to_le_bytes());
    let path = temp_file("fcs-bits.pcap", &bytes);
    let (code, masked, stderr) = flows_json(&path);
    let (_, reference, _) = flows_json(&original);
    assert_eq!(code, 0, "{stderr}");
    assert_eq!(masked["flows"], reference["flows"]);
    assert!(!masked["flows"].as_array().unwrap().is_empty());
}
