//! Hostile capture files built byte by byte: times that overflow, interface options that run past
//! their block, pcap versions libpcap refuses. None may panic; each names the file and the block or
//! record at fault.

use std::path::PathBuf;

use crate::util::dg_audit;

fn temp_file(name: &str, bytes: &[u8]) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("dg-audit-hostile-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join(name);
    std::fs::write(&path, bytes).unwrap();
    path
}

/// Runs `dg-audit <cmd> <path>` and returns (exit code, stdout, stderr), failing on a panic.
fn run(cmd: &str, path: &std::path::Path) -> (i32, String, String) {
    let out = dg_audit(&[cmd, path.to_str().unwrap()]);
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    assert!(!stderr.contains("panicked"), "dg-audit panicked: {stderr}");
    assert_ne!(out.status.code(), Some(101), "{stderr}");
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr,
    )
}

/// Ethernet + IPv4 + UDP 10.0.0.1:5353 -> 10.0.0.2:53, 4 payload bytes.
fn udp_frame() -> Vec<u8> {
    let mut f = vec![0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 0x08, 0x00];
    f.extend_from_slice(&[
        0x45, 0, 0, 32, 0, 1, 0, 0, 64, 17, 0, 0, 10, 0, 0, 1, 10, 0, 0, 2,
    ]);
    f.extend_from_slice(&[0x14, 0xe9, 0, 53, 0, 12, 0, 0, 1, 2, 3, 4]);
    f
}

fn block(block_type: u32, body: &[u8]) -> Vec<u8> {
    let len = (12 + body.len()) as u32;
    let mut b = Vec::new();
    b.extend_from_slice(&block_type.to_le_bytes());
    b.extend_from_slice(&len.to_le_bytes());
    b.extend_from_slice(body);
    b.extend_from_slice(&len.to_le_bytes());
    b
}

fn shb() -> Vec<u8> {
    let mut body = Vec::new();
    body.extend_from_slice(&0x1A2B_3C4Du32.to_le_bytes());
    body.extend_from_slice(&1u16.to_le_bytes());
    body.extend_from_slice(&0u16.to_le_bytes());
    body.extend_from_slice(&(-1i64).to_le_bytes());
    block(0x0A0D_0D0A, &body)
}

/// An Ethernet IDB with the given raw option bytes (already padded).
fn idb(options: &[u8]) -> Vec<u8> {
    let mut body = Vec::new();
    body.extend_from_slice(&1u16.to_le_bytes()); // LINKTYPE_ETHERNET
    body.extend_from_slice(&0u16.to_le_bytes());
    body.extend_from_slice(&0u32.to_le_bytes()); // snaplen: none
    body.extend_from_slice(options);
    block(1, &body)
}

fn opt(code: u16, value: &[u8]) -> Vec<u8> {
    let mut o = Vec::new();
    o.extend_from_slice(&code.to_le_bytes());
    o.extend_from_slice(&(value.len() as u16).to_le_bytes());
    o.extend_from_slice(value);
    while o.len() % 4 != 0 {
        o.push(0);
    }
    o
}

fn epb(ts_units: u64, data: &[u8]) -> Vec<u8> {
    let mut body = Vec::new();
    body.extend_from_slice(&0u32.to_le_bytes());
    body.extend_from_slice(&((ts_units >> 32) as u32).to_le_bytes());
    body.extend_from_slice(&(ts_units as u32).to_le_bytes());
    body.extend_from_slice(&(data.len() as u32).to_le_bytes());
    body.extend_from_slice(&(data.len() as u32).to_le_bytes());
    body.extend_from_slice(data);
    while body.len() % 4 != 0 {
        body.push(0);
    }
    block(6, &body)
}

fn pcapng(idb_options: &[u8], timestamps: &[u64]) -> Vec<u8> {
    let mut bytes = shb();
    bytes.extend_from_slice(&idb(idb_options));
    for &ts in timestamps {
        bytes.extend_from_slice(&epb(ts, &udp_frame()));
    }
    bytes
}

#[test]
fn negative_tsoffset_gives_pre_epoch_times_without_a_warning() {
    // if_tsoffset -100 years; default resolution (microseconds).
    let offset = -(100 * 365 * 86_400i64);
    let bytes = pcapng(&opt(14, &offset.to_le_bytes()), &[1_000_000, 2_000_000]);
    let path = temp_file("negative-tsoffset.pcapng", &bytes);
    let (code, stdout, stderr) = run("flows", &path);
    assert_eq!(code, 0, "{stdout}{stderr}");
    assert!(!stderr.contains("representable"), "{stderr}");
    assert!(
        stdout.contains("1870") || stdout.contains("1869"),
        "{stdout}"
    );
    // Pre-epoch times go through the audit and every report format too.
    for format in ["text", "json", "markdown"] {
        let out = dg_audit(&["analyze", "--format", format, path.to_str().unwrap()]);
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(!stderr.contains("panicked"), "{format}: {stderr}");
        assert!(
            matches!(out.status.code(), Some(0 | 1 | 3)),
            "{format}: {:?} {stderr}",
            out.status.code()
        );
    }
}

#[test]
fn tsoffset_that_overflows_is_a_warning_naming_the_block() {
    let bytes = pcapng(&opt(14, &i64::MIN.to_le_bytes()), &[1_000_000, 2_000_000]);
    let path = temp_file("huge-tsoffset.pcapng", &bytes);
    let (code, stdout, stderr) = run("flows", &path);
    assert!(
        stderr.contains("huge-tsoffset.pcapng")
            && stderr.contains("interface description block at offset 28")
            && stderr.contains("time offset -9223372036854775808 s is outside the range"),
        "{stderr}"
    );
    // Every frame overflowed: each keeps the previous time, the flow is still reported.
    assert!(
        stderr.contains("record 0 at offset 60")
            && stderr.contains("keeps the previous frame's time"),
        "{stderr}"
    );
    assert!(stderr.contains("2 frames in all"), "{stderr}");
    assert_eq!(code, 0, "{stdout}{stderr}");
    assert!(stdout.contains("10.0.0.1"), "{stdout}");
}

#[test]
fn timestamp_at_or_past_2_pow_63_units_does_not_wrap() {
    // Nanosecond resolution (if_tsresol 9): 2^63 ns and u64::MAX ns both overflow i64.
    let bytes = pcapng(&opt(9, &[9]), &[1_000, 1 << 63, u64::MAX, 2_000]);
    let path = temp_file("ts-2pow63.pcapng", &bytes);
    let (code, stdout, stderr) = run("flows", &path);
    assert!(
        stderr.contains("ts-2pow63.pcapng")
            && stderr.contains("record 1 at offset")
            && stderr.contains("timestamp 9223372036854775808"),
        "{stderr}"
    );
    assert!(stderr.contains("2 frames in all"), "{stderr}");
    assert_eq!(code, 0, "{stdout}{stderr}");
    // Microsecond resolution: u64::MAX us is far past i64 nanoseconds too.
    let bytes = pcapng(&[], &[u64::MAX]);
    let path = temp_file("ts-max-us.pcapng", &bytes);
    let (_, _, stderr) = run("flows", &path);
    assert!(stderr.contains("record 0 at offset"), "{stderr}");
    let (code, _, stderr) = run("analyze", &path);
    assert!((0..=3).contains(&code), "{code}: {stderr}");
}

#[test]
fn interface_option_running_past_its_block_is_a_warning_naming_the_block() {
    // if_name claiming 200 bytes in a block that holds 8 after the option header.
    let mut options = Vec::new();
    options.extend_from_slice(&2u16.to_le_bytes());
    options.extend_from_slice(&200u16.to_le_bytes());
    options.extend_from_slice(b"eth0\0\0\0\0");
    let bytes = pcapng(&options, &[1_000_000]);
    let path = temp_file("idb-option-too-long.pcapng", &bytes);
    let (code, stdout, stderr) = run("flows", &path);
    assert!(
        stderr.contains("idb-option-too-long.pcapng")
            && stderr.contains("interface description block at offset 28")
            && stderr.contains("option 2 of length 200 runs past the end of the block"),
        "{stderr}"
    );
    assert_eq!(code, 0, "{stdout}{stderr}");
    // A well-formed option list is no warning.
    let bytes = pcapng(&[opt(2, b"eth0"), opt(0, b"")].concat(), &[1_000_000]);
    let path = temp_file("idb-option-ok.pcapng", &bytes);
    let (_, _, stderr) = run("flows", &path);
    assert!(!stderr.contains("runs past"), "{stderr}");
}

fn classic_pcap(major: u16, minor: u16) -> Vec<u8> {
    let mut bytes = Vec::new();
    bytes.extend_from_slice(&0xa1b2_c3d4u32.to_le_bytes());
    bytes.extend_from_slice(&major.to_le_bytes());
    bytes.extend_from_slice(&minor.to_le_bytes());
    bytes.extend_from_slice(&0i32.to_le_bytes());
    bytes.extend_from_slice(&0u32.to_le_bytes());
    bytes.extend_from_slice(&65_535u32.to_le_bytes());
    bytes.extend_from_slice(&1u32.to_le_bytes());
    let frame = udp_frame();
    bytes.extend_from_slice(&1u32.to_le_bytes());
    bytes.extend_from_slice(&0u32.to_le_bytes());
    bytes.extend_from_slice(&(frame.len() as u32).to_le_bytes());
    bytes.extend_from_slice(&(frame.len() as u32).to_le_bytes());
    bytes.extend_from_slice(&frame);
    bytes
}

#[test]
fn classic_pcap_major_version_other_than_2_is_rejected() {
    for (major, name) in [(1u16, "v1.pcap"), (3, "v3.pcap")] {
        let path = temp_file(name, &classic_pcap(major, 4));
        for cmd in ["flows", "analyze"] {
            let (code, stdout, stderr) = run(cmd, &path);
            assert_eq!(code, 2, "{cmd} {name}: {stdout}{stderr}");
            assert!(
                stderr.contains(name)
                    && stderr.contains(&format!("major version {major} unsupported")),
                "{stderr}"
            );
        }
    }
    let path = temp_file("v2.pcap", &classic_pcap(2, 4));
    let (code, stdout, stderr) = run("flows", &path);
    assert_eq!(code, 0, "{stdout}{stderr}");
}

/// Found by fuzzing (tests/fuzz-regressions/file/isb-drop-counters-overflow.bin): drop counters
/// are u64 from the file; their sum saturates instead of overflowing.
#[test]
fn interface_statistics_drop_counters_saturate() {
    let mut bytes = pcapng(&[], &[1_000_000]);
    let mut isb = Vec::new();
    isb.extend_from_slice(&0u32.to_le_bytes()); // interface 0
    isb.extend_from_slice(&0u32.to_le_bytes()); // timestamp high
    isb.extend_from_slice(&0u32.to_le_bytes()); // timestamp low
    isb.extend_from_slice(&opt(5, &u64::MAX.to_le_bytes())); // isb_ifdrop
    isb.extend_from_slice(&opt(7, &5u64.to_le_bytes())); // isb_osdrop
    isb.extend_from_slice(&opt(0, b""));
    bytes.extend_from_slice(&block(5, &isb));
    let path = temp_file("isb-max-drops.pcapng", &bytes);
    let (code, stdout, stderr) = run("flows", &path);
    assert_eq!(code, 0, "{stdout}{stderr}");
    let out = dg_audit(&["analyze", "--format", "json", path.to_str().unwrap()]);
    let audit: serde_json::Value = serde_json::from_slice(&out.stdout).expect("audit JSON");
    assert_eq!(audit["inputs"][0]["capture_drops"], u64::MAX);
}

/// Times are kept within +-2^62 ns of the epoch (1824 to 2116) so that differences of frame times
/// (flow durations, the capture span) always fit: an offset that reaches past 1824 is refused
/// like one that overflows, and a frame at 2^62 ns or more keeps the previous frame's time.
#[test]
fn times_past_the_representable_span_are_clamped() {
    let offset = -(147 * 365 * 86_400i64);
    let bytes = pcapng(&opt(14, &offset.to_le_bytes()), &[1_000_000]);
    let path = temp_file("offset-before-1824.pcapng", &bytes);
    let (code, _, stderr) = run("flows", &path);
    assert!(
        stderr.contains("interface description block at offset 28")
            && stderr.contains("years 1824 to 2116"),
        "{stderr}"
    );
    assert_eq!(code, 0, "{stderr}");
    // Nanosecond resolution: 1 s, then 2^62 ns (year 2116), then 2 s.
    let bytes = pcapng(&opt(9, &[9]), &[1_000_000_000, 1 << 62, 2_000_000_000]);
    let path = temp_file("ts-2116.pcapng", &bytes);
    let (code, stdout, stderr) = run("analyze", &path);
    assert!(stderr.contains("record 1 at offset"), "{stderr}");
    assert!((0..=3).contains(&code), "{code}: {stdout}{stderr}");
}
