//! Engine tests on synthetic frames (etherparse-built TCP conversations with a real ClientHello):
//! alert de-duplication and timing, overdue check-ins in silence, settling of split ClientHellos,
//! per-minute VOLUME, and equality of the final audit with the offline pipeline's.

use std::sync::Mutex;
use std::time::Instant;

use etherparse::PacketBuilder;

use super::*;
use crate::audit::ControlId;

const T0: i64 = 1_700_000_040 * NANOS; // a minute boundary
const MS: i64 = 1_000_000;
const CLIENT: [u8; 4] = [192, 0, 2, 10];
const LICENSE: [u8; 4] = [203, 0, 113, 10];
const UNKNOWN: [u8; 4] = [198, 51, 100, 20];
const TOKEN: &str = "0123456789abcdef0123456789abcdef01234567";

fn policy() -> Policy {
    Policy::from_toml(
        r#"schema_version = 1
[network]
internal = ["192.0.2.0/24"]
[licensing]
cadence_seconds = 3
cadence_tolerance_seconds = 1
[names]
"203.0.113.10" = "license.deepgram.com"
"#,
        "test",
    )
    .expect("test policy is valid")
}

type Sink = Arc<Mutex<Vec<Alert>>>;

fn engine_at(start: i64) -> (Engine, Sink, Arc<Metrics>) {
    let alerts: Sink = Arc::new(Mutex::new(Vec::new()));
    let metrics = Metrics::new();
    let sink = {
        let alerts = alerts.clone();
        Box::new(move |a: Alert| alerts.lock().expect("lock").push(a))
    };
    let engine = Engine::new(
        EngineConfig {
            policy: policy(),
            policy_source: Some("test".into()),
            sensor: None,
            input_name: "live:test0".into(),
            link_type: 1,
            snaplen: 65535,
            start_nanos: start,
        },
        metrics.clone(),
        sink,
    );
    (engine, alerts, metrics)
}

fn client_hello(sni: &str) -> Vec<u8> {
    let name = sni.as_bytes();
    let mut sni_ext = Vec::new();
    sni_ext.extend_from_slice(&((name.len() + 3) as u16).to_be_bytes());
    sni_ext.push(0);
    sni_ext.extend_from_slice(&(name.len() as u16).to_be_bytes());
    sni_ext.extend_from_slice(name);
    let mut exts = Vec::new();
    exts.extend_from_slice(&0u16.to_be_bytes());
    exts.extend_from_slice(&(sni_ext.len() as u16).to_be_bytes());
    exts.extend_from_slice(&sni_ext);
    let mut body = vec![0x03, 0x03];
    body.extend_from_slice(&[7u8; 32]);
    body.push(0);
    body.extend_from_slice(&[0, 2, 0x13, 0x01, 1, 0]);
    body.extend_from_slice(&(exts.len() as u16).to_be_bytes());
    body.extend_from_slice(&exts);
    let mut hs = vec![1, 0, 0, 0];
    hs[1..4].copy_from_slice(&(body.len() as u32).to_be_bytes()[1..]);
    hs.extend_from_slice(&body);
    let mut rec = vec![0x16, 0x03, 0x01];
    rec.extend_from_slice(&(hs.len() as u16).to_be_bytes());
    rec.extend_from_slice(&hs);
    rec
}

/// One TCP conversation: frames with their times.
struct Conv {
    client: ([u8; 4], u16),
    server: ([u8; 4], u16),
    seq: [u32; 2],
    frames: Vec<(i64, Vec<u8>)>,
}

impl Conv {
    fn new(client_port: u16, server: [u8; 4], port: u16) -> Conv {
        Conv {
            client: (CLIENT, client_port),
            server: (server, port),
            seq: [1000, 5000],
            frames: Vec::new(),
        }
    }

    fn push(&mut self, at: i64, dir: usize, flags: &str, payload: &[u8]) {
        let (src, dst) = if dir == 0 {
            (self.client, self.server)
        } else {
            (self.server, self.client)
        };
        let mut b = PacketBuilder::ethernet2([2, 0, 0, 0, 0, 1], [2, 0, 0, 0, 0, 2])
            .ipv4(src.0, dst.0, 64)
            .tcp(src.1, dst.1, self.seq[dir], 64240);
        if flags.contains('S') {
            b = b.syn();
        }
        if flags.contains('A') {
            b = b.ack(self.seq[1 - dir]);
        }
        if flags.contains('F') {
            b = b.fin();
        }
        if !payload.is_empty() {
            b = b.psh();
        }
        let mut out = Vec::new();
        b.write(&mut out, payload).expect("frame builds");
        self.seq[dir] = self.seq[dir]
            .wrapping_add(payload.len() as u32)
            .wrapping_add(u32::from(flags.contains('S') || flags.contains('F')));
        self.frames.push((at, out));
    }

    /// Handshake, client payload, server answer, close.
    fn exchange(mut self, at: i64, request: &[u8], answer: &[u8]) -> Conv {
        self.push(at, 0, "S", &[]);
        self.push(at + MS, 1, "SA", &[]);
        self.push(at + 2 * MS, 0, "A", &[]);
        self.push(at + 3 * MS, 0, "A", request);
        self.push(at + 20 * MS, 1, "A", answer);
        self.push(at + 21 * MS, 0, "AF", &[]);
        self.push(at + 22 * MS, 1, "AF", &[]);
        self.push(at + 23 * MS, 0, "A", &[]);
        self
    }
}

fn feed(engine: &mut Engine, frames: &[(i64, Vec<u8>)]) {
    for (at, data) in frames {
        let frame = Frame {
            ts_nanos: *at,
            link_type: 1,
            data,
            wire_len: data.len() as u32,
            file_index: 0,
            interface: 0,
            has_ts: true,
        };
        engine.on_frame(&frame, *at);
        engine.poll(*at);
    }
}

fn of(alerts: &Sink, control: &str) -> Vec<Alert> {
    alerts
        .lock()
        .expect("lock")
        .iter()
        .filter(|a| a.control.as_str() == control)
        .cloned()
        .collect()
}

fn nanos(rfc: &str) -> i64 {
    humantime::parse_rfc3339(rfc)
        .expect("rfc3339")
        .duration_since(std::time::UNIX_EPOCH)
        .expect("after epoch")
        .as_nanos() as i64
}

fn checkin(port: u16, at: i64) -> Conv {
    Conv::new(port, LICENSE, 443).exchange(at, &client_hello("license.deepgram.com"), &[0x17; 300])
}

#[test]
fn plaintext_token_to_an_unknown_destination_alerts_once_per_flow() {
    let (mut engine, alerts, metrics) = engine_at(T0);
    let request = format!(
        "GET /v1/things HTTP/1.1\r\nHost: example.test\r\nAuthorization: Token {TOKEN}\r\n\r\n"
    );
    let conv =
        Conv::new(40001, UNKNOWN, 80).exchange(T0, request.as_bytes(), b"HTTP/1.1 200 OK\r\n\r\n");
    feed(&mut engine, &conv.frames);
    for i in 1..5 {
        engine.poll(T0 + i * 300 * MS);
    }
    let dest = of(&alerts, "DEST");
    let cred = of(&alerts, "CREDENTIAL");
    assert_eq!(dest.len(), 1, "{dest:#?}");
    assert_eq!(cred.len(), 1, "{cred:#?}");
    for a in dest.iter().chain(&cred) {
        assert_eq!(a.verdict, "violation");
        assert_eq!(a.source.as_deref(), Some("192.0.2.10"));
        assert_eq!(a.flow_uids.len(), 1);
        assert!(a.bytes.unwrap_or(0) > 0);
        // Raised on the evaluation right after the request, not on a later tick.
        let latency = nanos(&a.ts) - (T0 + 3 * MS);
        assert!((0..NANOS).contains(&latency), "latency {latency} ns");
    }
    assert!(!cred[0].summary.contains(TOKEN), "{}", cred[0].summary);
    let line = serde_json::to_value(&cred[0]).expect("json");
    for key in [
        "ts",
        "control",
        "verdict",
        "summary",
        "source",
        "destination",
        "flow_uids",
        "bytes",
    ] {
        assert!(line.get(key).is_some(), "alert lacks {key}: {line}");
    }
    let m = metrics.lock().clone();
    assert_eq!(m.alerts.get(&("DEST".into(), "violation".into())), Some(&1));
}

#[test]
fn overdue_check_in_is_raised_in_silence_once_per_gap() {
    let (mut engine, alerts, metrics) = engine_at(T0);
    feed(&mut engine, &checkin(40010, T0 + 100 * MS).frames);
    engine.poll(T0 + 400 * MS);
    assert_eq!(metrics.lock().checkins.get("192.0.2.10"), Some(&1));
    // No packet at all from here: only the wall clock moves.
    for step in 1..=40 {
        engine.poll(T0 + 400 * MS + step * 100 * MS);
    }
    let overdue = of(&alerts, "CADENCE");
    assert_eq!(overdue.len(), 1, "{overdue:#?}");
    let late = nanos(&overdue[0].ts) - (T0 + 100 * MS);
    assert!(
        late > 4 * NANOS && late <= 4 * NANOS + 200 * MS,
        "overdue raised {late} ns after the check-in"
    );
    assert_eq!(overdue[0].verdict, "finding");
    assert!(
        overdue[0].summary.contains("overdue"),
        "{}",
        overdue[0].summary
    );
    assert_eq!(metrics.lock().overdue.get("192.0.2.10"), Some(&true));
    // The next check-in clears it; the next gap alerts again.
    let second = T0 + 6 * NANOS;
    feed(&mut engine, &checkin(40011, second).frames);
    engine.poll(second + 300 * MS);
    assert_eq!(metrics.lock().overdue.get("192.0.2.10"), Some(&false));
    for step in 1..=50 {
        engine.poll(second + 300 * MS + step * 100 * MS);
    }
    assert_eq!(of(&alerts, "CADENCE").len(), 2);
    for control in ["DEST", "TLS", "VOLUME", "CREDENTIAL"] {
        assert!(
            of(&alerts, control).is_empty(),
            "{control}: {:#?}",
            of(&alerts, control)
        );
    }
    let audit = engine.finish(second + 10 * NANOS);
    assert_eq!(audit.licensing.connections, 2);
    assert_eq!(metrics.lock().durations.count, 2);
}

#[test]
fn silence_from_the_start_is_a_finding() {
    let (mut engine, alerts, _) = engine_at(T0);
    for step in 0..=60 {
        engine.poll(T0 + step * 100 * MS);
    }
    let cadence = of(&alerts, "CADENCE");
    assert_eq!(cadence.len(), 1);
    assert!(cadence[0].summary.contains("no licensing check-in seen"));
}

#[test]
fn a_split_client_hello_is_judged_once_read() {
    let (mut engine, alerts, _) = engine_at(T0);
    // No name for 203.0.113.99 but the SNI: judged on the ClientHello, split in two segments.
    let hello = client_hello("license.deepgram.com");
    let mut conv = Conv::new(40020, [203, 0, 113, 99], 443);
    conv.push(T0, 0, "S", &[]);
    conv.push(T0 + MS, 1, "SA", &[]);
    conv.push(T0 + 2 * MS, 0, "A", &[]);
    conv.push(T0 + 3 * MS, 0, "A", &hello[..20]);
    feed(&mut engine, &conv.frames);
    engine.poll(T0 + 250 * MS);
    assert!(
        of(&alerts, "DEST").is_empty(),
        "judged before the name was read"
    );
    let mut rest = Conv {
        frames: Vec::new(),
        ..conv
    };
    rest.push(T0 + 300 * MS, 0, "A", &hello[20..]);
    feed(&mut engine, &rest.frames);
    for step in 4..20 {
        engine.poll(T0 + step * 100 * MS);
    }
    assert!(of(&alerts, "DEST").is_empty(), "{:#?}", of(&alerts, "DEST"));
    assert!(of(&alerts, "TLS").is_empty(), "{:#?}", of(&alerts, "TLS"));

    // A SYN nobody answers, to an unknown address: judged once it settled (500 ms).
    let mut syn = Conv::new(40021, UNKNOWN, 8443);
    syn.push(T0 + 3 * NANOS, 0, "S", &[]);
    feed(&mut engine, &syn.frames);
    for step in 1..=10 {
        engine.poll(T0 + 3 * NANOS + step * 100 * MS);
    }
    let dest = of(&alerts, "DEST");
    assert_eq!(dest.len(), 1, "{dest:#?}");
    let latency = nanos(&dest[0].ts) - (T0 + 3 * NANOS);
    assert!(
        (SETTLE_NANOS..NANOS).contains(&latency),
        "latency {latency} ns"
    );
}

#[test]
fn volume_over_budget_alerts_once_per_source_minute() {
    let (mut engine, alerts, _) = engine_at(T0);
    let big = vec![0x17u8; 1400];
    for i in 0..4 {
        let at = T0 + i64::from(i) * 2 * NANOS;
        let mut conv = Conv::new(40030 + i, LICENSE, 443);
        conv.push(at, 0, "S", &[]);
        conv.push(at + MS, 1, "SA", &[]);
        conv.push(at + 2 * MS, 0, "A", &client_hello("license.deepgram.com"));
        for k in 0..3 {
            conv.push(at + (3 + k) * MS, 0, "A", &big);
        }
        conv.push(at + 10 * MS, 1, "A", &[0x17; 100]);
        feed(&mut engine, &conv.frames);
        engine.poll(at + 300 * MS);
    }
    let volume = of(&alerts, "VOLUME");
    assert_eq!(volume.len(), 1, "{volume:#?}");
    assert_eq!(volume[0].source.as_deref(), Some("192.0.2.10"));
    assert!(volume[0].bytes.unwrap_or(0) > 8192);
}

#[test]
fn capture_drops_raise_an_alert_and_make_the_audit_inconclusive() {
    let (mut engine, alerts, metrics) = engine_at(T0);
    feed(&mut engine, &checkin(40060, T0 + 100 * MS).frames);
    let stats = |k, i| LiveStats {
        received: 100,
        kernel_dropped: k,
        iface_dropped: i,
    };
    engine.tick(T0 + NANOS, Some(stats(0, 0)));
    assert!(of(&alerts, "CAPTURE").is_empty());
    engine.tick(T0 + 2 * NANOS, Some(stats(5, 1)));
    engine.tick(T0 + 3 * NANOS, Some(stats(7, 1)));
    let capture = of(&alerts, "CAPTURE");
    assert_eq!(capture.len(), 1, "one alert a minute: {capture:#?}");
    assert_eq!(capture[0].verdict, "inconclusive");
    assert_eq!(metrics.lock().kernel_drops, 7);
    let audit = engine.finish(T0 + 4 * NANOS);
    assert_eq!(audit.capture.capture_drops, 8);
    assert_eq!(audit.verdict, audit::Verdict::Inconclusive);
}

#[test]
fn libpcap_counters_wrap_without_losing_drops() {
    let (mut engine, _, _) = engine_at(T0);
    let at = |k| LiveStats {
        received: 0,
        kernel_dropped: k,
        iface_dropped: 0,
    };
    engine.tick(T0, Some(at(u32::MAX - 1)));
    engine.tick(T0 + NANOS, Some(at(3)));
    assert_eq!(engine.input.kernel_drops, u64::from(u32::MAX - 1) + 5);
}

/// Writes frames as a classic pcap file (what tcpdump -w would write).
fn write_pcap(path: &std::path::Path, frames: &[(i64, Vec<u8>)]) {
    let mut out = Vec::new();
    out.extend_from_slice(&0xa1b2_c3d4u32.to_le_bytes());
    out.extend_from_slice(&2u16.to_le_bytes());
    out.extend_from_slice(&4u16.to_le_bytes());
    out.extend_from_slice(&[0; 8]);
    out.extend_from_slice(&65535u32.to_le_bytes());
    out.extend_from_slice(&1u32.to_le_bytes());
    for (at, data) in frames {
        out.extend_from_slice(&((at / NANOS) as u32).to_le_bytes());
        out.extend_from_slice(&(((at % NANOS) / 1000) as u32).to_le_bytes());
        out.extend_from_slice(&(data.len() as u32).to_le_bytes());
        out.extend_from_slice(&(data.len() as u32).to_le_bytes());
        out.extend_from_slice(data);
    }
    std::fs::write(path, out).expect("pcap written");
}

#[test]
fn the_final_audit_equals_the_offline_audit_of_the_same_packets() {
    let mut frames = Vec::new();
    for i in 0..4 {
        frames.extend(checkin(40040 + i, T0 + i64::from(i) * 3 * NANOS).frames);
    }
    let request = format!("POST /v1/listen HTTP/1.1\r\nHost: license.deepgram.com\r\nAuthorization: Token {TOKEN}\r\n\r\n");
    frames.extend(
        Conv::new(40050, LICENSE, 80)
            .exchange(
                T0 + 13 * NANOS,
                request.as_bytes(),
                b"HTTP/1.1 400 Bad\r\n\r\n",
            )
            .frames,
    );
    let (mut engine, alerts, metrics) = engine_at(T0);
    feed(&mut engine, &frames);
    let live = engine.finish(T0 + 20 * NANOS);

    let path = std::env::temp_dir().join(format!("dg-audit-engine-{}.pcap", std::process::id()));
    write_pcap(&path, &frames);
    let p = policy();
    let names = NameBook::with_operator_names(p.names.clone().into_iter().collect());
    let mut records = Vec::new();
    let pass = crate::pipeline::run_files(
        std::slice::from_ref(&path),
        p.flow_config(),
        names,
        &mut |r| records.push(r),
        None,
    )
    .expect("offline pass");
    let _ = std::fs::remove_file(&path);
    records.sort_by(|a, b| (a.ts_nanos, &a.uid).cmp(&(b.ts_nanos, &b.uid)));
    let offline = audit::audit(&records, &pass, &p, None);

    let verdicts = |a: &Audit| {
        a.controls
            .iter()
            .map(|c| (c.id, c.verdict))
            .collect::<Vec<_>>()
    };
    // The live audit spans the whole watch (to T0 + 20 s): the 11 s of silence after the last
    // check-in is a CADENCE finding the file, which ends at its last packet, cannot show.
    let cadence = |a: &Audit| {
        a.controls
            .iter()
            .find(|c| c.id == ControlId::Cadence)
            .map(|c| c.verdict)
    };
    assert_eq!(cadence(&live), Some(ControlVerdict::Finding));
    assert_eq!(cadence(&offline), Some(ControlVerdict::Pass));
    let others = |a: &Audit| {
        verdicts(a)
            .into_iter()
            .filter(|(id, _)| *id != ControlId::Cadence)
            .collect::<Vec<_>>()
    };
    assert_eq!(others(&live), others(&offline));
    assert_eq!(live.capture.duration_seconds, 20.0);
    assert_eq!(live.verdict, offline.verdict);
    assert_eq!(live.licensing, offline.licensing);
    assert_eq!(live.inputs[0].records, frames.len() as u64);
    // The live input's hash is that of the same frames written as a pcap stream.
    assert_eq!(live.inputs[0].sha256, offline.inputs[0].sha256);
    // Live alerts cover the same violations the audit lists.
    for c in live
        .controls
        .iter()
        .filter(|c| c.verdict == ControlVerdict::Violation)
    {
        assert!(
            !of(&alerts, c.id.as_str()).is_empty(),
            "no live alert for {}",
            c.id
        );
    }
    // The four TLS check-ins, and the plaintext one (which CADENCE counts as the audit does).
    let checkins = metrics.lock().checkins.get("192.0.2.10").copied();
    assert!(checkins >= Some(4), "{checkins:?}");
}

/// Replays a capture through the engine at full speed, the wall clock following packet time
/// (`DG_AUDIT_REPLAY=FILE cargo test --release --lib replay_throughput -- --ignored --nocapture`).
#[test]
#[ignore = "a measurement: needs DG_AUDIT_REPLAY=FILE"]
fn replay_throughput() {
    let Ok(path) = std::env::var("DG_AUDIT_REPLAY") else {
        return;
    };
    let mut cap = pcap::Capture::from_file(&path).expect("capture opens");
    let link_type = cap.get_datalink().0 as u32;
    let (mut engine, alerts, _) = engine_at(0);
    let started = Instant::now();
    let mut n = 0u64;
    let mut last = 0;
    while let Ok(p) = cap.next_packet() {
        let ts = p.header.ts.tv_sec * NANOS + p.header.ts.tv_usec * 1000;
        let frame = Frame {
            ts_nanos: ts,
            link_type,
            data: p.data,
            wire_len: p.header.len,
            file_index: 0,
            interface: 0,
            has_ts: true,
        };
        engine.on_frame(&frame, ts);
        engine.poll(ts);
        if ts - last >= NANOS {
            engine.tick(ts, None);
            last = ts;
        }
        n += 1;
    }
    let audit = engine.finish(last);
    let secs = started.elapsed().as_secs_f64();
    eprintln!(
        "replayed {n} frames in {secs:.2} s ({:.0} frames/s), {} flows, {} alerts, capture span {:.0} s",
        n as f64 / secs,
        audit.flows.total,
        alerts.lock().expect("lock").len(),
        audit.capture.duration_seconds
    );
    if let Ok(dump) = std::env::var("DG_AUDIT_REPLAY_ALERTS") {
        let lines: Vec<String> = alerts
            .lock()
            .expect("lock")
            .iter()
            .map(|a| format!("{} {} {}", a.control, a.flow_uids.join(","), a.summary))
            .collect();
        std::fs::write(dump, lines.join("\n")).expect("alerts written");
    }
}
