//! `dg-audit live` end to end, on real packets in private network namespaces (needs root, as CI
//! runs; otherwise each test prints a SKIP line and returns). Under CI=true a test that would
//! skip fails instead: CI runs as root after `scripts/setup.sh --test`, so a skip there means the
//! live path went untested.
//!
//! Network safety: every host lives in a namespace created here (prefix `dgl`); only
//! 192.0.2.0/24, 198.51.100.0/24 and 203.0.113.0/24 are used, IPv6 is off, nothing is routed to
//! or from the root namespace, every wait is bounded, and a guard removes namespaces and kills
//! the processes it started (by pid) even when an assertion fails.

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, UNIX_EPOCH};

use serde_json::Value;

use crate::util::{assert_schema, dg_audit};

const TOKEN: &str = "0123456789abcdef0123456789abcdef01234567";

/// The command line that runs `dg-audit live ARGS` after `prefix` (`ip netns exec NS`, ...).
fn live_command(prefix: &[&str], args: &[String]) -> Command {
    let mut cmd = Command::new(prefix[0]);
    cmd.args(&prefix[1..])
        .arg(assert_cmd::cargo::cargo_bin("dg-audit"))
        .arg("live")
        .args(args);
    cmd
}

fn skip(test: &str, why: &str) {
    if in_ci() {
        panic!(
            "live::{test} cannot run: {why}. CI (CI=true) runs as root with everything \
             scripts/setup.sh --test installs, so this test must run there, not skip"
        );
    }
    say(&format!("SKIP live::{test}: {why}"));
}

/// CI sets CI=true.
fn in_ci() -> bool {
    std::env::var("CI").is_ok_and(|v| v == "true")
}

/// A line on the real stderr: libtest captures `eprintln!`, not direct writes, so SKIP lines and
/// measurements show in a plain `cargo test`.
fn say(line: &str) {
    use std::io::Write;
    let _ = writeln!(std::io::stderr(), "{line}");
}

fn root() -> bool {
    nix::unistd::geteuid().is_root()
}

fn run(args: &[&str]) -> Result<(), String> {
    let out = Command::new(args[0])
        .args(&args[1..])
        .output()
        .map_err(|e| format!("{}: {e}", args.join(" ")))?;
    if out.status.success() {
        Ok(())
    } else {
        Err(format!(
            "{} failed: {}",
            args.join(" "),
            String::from_utf8_lossy(&out.stderr).trim()
        ))
    }
}

fn have(tool: &str) -> bool {
    Command::new("sh")
        .args(["-c", &format!("command -v {tool}")])
        .output()
        .is_ok_and(|o| o.status.success())
}

fn rfc_secs(text: &str) -> f64 {
    humantime::parse_rfc3339(text)
        .unwrap_or_else(|e| panic!("{text:?} is not RFC 3339: {e}"))
        .duration_since(UNIX_EPOCH)
        .expect("after 1970")
        .as_secs_f64()
}

/// A process started by the test, its stderr collected line by line.
struct Proc {
    child: Child,
    stderr: Arc<Mutex<Vec<String>>>,
}

impl Proc {
    fn spawn(mut cmd: Command) -> Proc {
        let mut child = cmd
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {cmd:?}: {e}"));
        let stderr = Arc::new(Mutex::new(Vec::new()));
        let pipe = child.stderr.take().expect("piped stderr");
        let lines = stderr.clone();
        std::thread::spawn(move || {
            for line in BufReader::new(pipe).lines().map_while(Result::ok) {
                lines.lock().expect("lock").push(line);
            }
        });
        Proc { child, stderr }
    }

    fn stderr(&self) -> String {
        self.stderr.lock().expect("lock").join("\n")
    }

    fn wait_for_stderr(&self, needle: &str, within: Duration) -> bool {
        let until = Instant::now() + within;
        while Instant::now() < until {
            if self.stderr().contains(needle) {
                return true;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        false
    }

    fn signal(&self, sig: libc::c_int) {
        // SAFETY: kill(2) on the pid of a child this test started and has not reaped.
        unsafe {
            libc::kill(self.child.id() as libc::pid_t, sig);
        }
    }

    /// Waits at most `within` for the exit; kills the process (by its pid) past that.
    fn wait(&mut self, within: Duration) -> Option<ExitStatus> {
        let until = Instant::now() + within;
        while Instant::now() < until {
            if let Ok(Some(status)) = self.child.try_wait() {
                return Some(status);
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
        None
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

/// Namespaces created by a test, removed on drop (processes first, by pid, via their `Proc`).
struct Netns {
    names: Vec<String>,
}

impl Netns {
    fn create(names: &[String]) -> Result<Netns, String> {
        let mut made = Netns { names: Vec::new() };
        for n in names {
            let _ = Command::new("ip").args(["netns", "del", n]).output();
            run(&["ip", "netns", "add", n])?;
            made.names.push(n.clone());
            for key in [
                "net.ipv6.conf.all.disable_ipv6=1",
                "net.ipv6.conf.default.disable_ipv6=1",
            ] {
                run(&["ip", "netns", "exec", n, "sysctl", "-qw", key])?;
            }
            run(&["ip", "-n", n, "link", "set", "lo", "up"])?;
        }
        Ok(made)
    }
}

impl Drop for Netns {
    fn drop(&mut self) {
        for n in &self.names {
            let _ = Command::new("ip").args(["netns", "del", n]).output();
        }
    }
}

fn temp_dir(tag: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("dg-audit-live-{tag}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).expect("temp dir");
    // -Z nobody writes here.
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o777)).expect("chmod");
    dir
}

const POLICY: &str = r#"schema_version = 1
[network]
internal = ["192.0.2.0/24"]
[licensing]
cadence_seconds = 3
cadence_tolerance_seconds = 1
[names]
"203.0.113.10" = "license.deepgram.com"
"#;

const SERVER_PY: &str = r#"
import signal, socket, ssl, sys, threading, time
signal.alarm(90)
ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
ctx.load_cert_chain(sys.argv[1], sys.argv[2])
def handle(conn, tls):
    conn.settimeout(3)
    try:
        if tls:
            conn = ctx.wrap_socket(conn, server_side=True)
        data = b""
        while b"\r\n\r\n" not in data and len(data) < 65536:
            chunk = conn.recv(4096)
            if not chunk:
                break
            data += chunk
        if tls:
            conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nConnection: close\r\n\r\nok")
        else:
            conn.sendall(b"HTTP/1.1 401 Unauthorized\r\nContent-Length: 0\r\nConnection: close\r\n\r\n")
    except Exception:
        pass
    finally:
        conn.close()
def serve(addr, port, tls):
    s = socket.socket()
    s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    s.bind((addr, port))
    s.listen(16)
    for _ in range(100):
        conn, _ = s.accept()
        threading.Thread(target=handle, args=(conn, tls), daemon=True).start()
for addr, port, tls in [("203.0.113.10", 443, True), ("203.0.113.10", 80, False), ("198.51.100.20", 8443, False)]:
    threading.Thread(target=serve, args=(addr, port, tls), daemon=True).start()
time.sleep(0.2)
print("ready", file=sys.stderr, flush=True)
time.sleep(85)
"#;

const CLIENT_PY: &str = r#"
import json, signal, socket, ssl, sys, time
signal.alarm(40)
token = sys.argv[1].encode()
ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
ctx.check_hostname = False
ctx.verify_mode = ssl.CERT_NONE
start = time.time()
def at(t):
    d = start + t - time.time()
    if d > 0:
        time.sleep(d)
def event(kind, t):
    print(json.dumps({"event": kind, "t": t}), file=sys.stderr, flush=True)
for i in range(4):
    at(i * 3.0)
    t = time.time()
    with socket.create_connection(("203.0.113.10", 443), timeout=3) as raw:
        with ctx.wrap_socket(raw, server_hostname="license.deepgram.com") as s:
            s.sendall(b"POST /v1/licenses/check-in HTTP/1.1\r\nHost: license.deepgram.com\r\nContent-Length: 64\r\n\r\n" + b"x" * 64)
            s.recv(4096)
    event("checkin", t)
at(9.6)
t = time.time()
with socket.create_connection(("203.0.113.10", 80), timeout=3) as s:
    s.sendall(b"GET /v1/licenses HTTP/1.1\r\nHost: license.deepgram.com\r\nAuthorization: Token " + token + b"\r\n\r\n")
    s.recv(4096)
event("plaintext", t)
at(10.2)
t = time.time()
with socket.create_connection(("198.51.100.20", 8443), timeout=3) as s:
    s.sendall(b"hello\r\n\r\n")
    s.recv(4096)
event("unknown", t)
"#;

fn read_alerts(path: &Path) -> Vec<Value> {
    std::fs::read_to_string(path)
        .unwrap_or_default()
        .lines()
        .filter(|l| !l.trim().is_empty())
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("alert line {l:?}: {e}")))
        .collect()
}

fn metric(text: &str, series: &str) -> Option<f64> {
    text.lines()
        .find(|l| l.starts_with(series) && l[series.len()..].starts_with(' '))
        .and_then(|l| l.rsplit(' ').next())
        .and_then(|v| v.parse().ok())
}

#[test]
fn live_capture_in_namespaces_matches_tcpdump_and_analyze() {
    const TEST: &str = "live_capture_in_namespaces_matches_tcpdump_and_analyze";
    if !root() {
        return skip(TEST, "needs root to create network namespaces");
    }
    for tool in ["ip", "python3", "openssl", "tcpdump", "curl"] {
        if !have(tool) {
            return skip(TEST, &format!("{tool} is not installed"));
        }
    }
    let id = std::process::id() % 100_000;
    let (nc, ns) = (format!("dgl{id}c"), format!("dgl{id}s"));
    let (vc, vs) = (format!("dgl{id}c0"), format!("dgl{id}s0"));
    let _netns = match Netns::create(&[nc.clone(), ns.clone()]) {
        Ok(n) => n,
        Err(e) => return skip(TEST, &format!("cannot create network namespaces: {e}")),
    };
    for cmd in [
        vec![
            "ip", "-n", &nc, "link", "add", &vc, "type", "veth", "peer", "name", &vs, "netns", &ns,
        ],
        vec!["ip", "-n", &nc, "addr", "add", "192.0.2.10/24", "dev", &vc],
        vec![
            "ip",
            "-n",
            &ns,
            "addr",
            "add",
            "203.0.113.10/24",
            "dev",
            &vs,
        ],
        vec![
            "ip",
            "-n",
            &ns,
            "addr",
            "add",
            "198.51.100.20/24",
            "dev",
            &vs,
        ],
        vec!["ip", "-n", &nc, "link", "set", &vc, "up"],
        vec!["ip", "-n", &ns, "link", "set", &vs, "up"],
        vec![
            "ip",
            "-n",
            &nc,
            "route",
            "add",
            "203.0.113.0/24",
            "dev",
            &vc,
        ],
        vec![
            "ip",
            "-n",
            &nc,
            "route",
            "add",
            "198.51.100.0/24",
            "dev",
            &vc,
        ],
        vec!["ip", "-n", &ns, "route", "add", "192.0.2.0/24", "dev", &vs],
    ] {
        run(&cmd).unwrap_or_else(|e| panic!("namespace set-up: {e}"));
    }
    let dir = temp_dir("e2e");
    let p = |name: &str| dir.join(name).display().to_string();
    std::fs::write(p("policy.toml"), POLICY).expect("policy");
    std::fs::write(p("server.py"), SERVER_PY).expect("server");
    std::fs::write(p("client.py"), CLIENT_PY).expect("client");
    run(&[
        "openssl",
        "req",
        "-x509",
        "-newkey",
        "ec",
        "-pkeyopt",
        "ec_paramgen_curve:prime256v1",
        "-nodes",
        "-days",
        "1",
        "-subj",
        "/CN=license.deepgram.com",
        "-keyout",
        &p("key.pem"),
        "-out",
        &p("cert.pem"),
    ])
    .expect("throwaway certificate");

    let mut server = Command::new("ip");
    server.args([
        "netns",
        "exec",
        &ns,
        "python3",
        &p("server.py"),
        &p("cert.pem"),
        &p("key.pem"),
    ]);
    let server = Proc::spawn(server);
    assert!(
        server.wait_for_stderr("ready", Duration::from_secs(10)),
        "server did not start: {}",
        server.stderr()
    );
    let mut tcpdump = Command::new("ip");
    tcpdump.args([
        "netns",
        "exec",
        &nc,
        "tcpdump",
        "-i",
        &vc,
        "-n",
        "-U",
        "-s",
        "65535",
        "-Z",
        "root",
        "-w",
        &p("tcpdump.pcap"),
    ]);
    let mut tcpdump = Proc::spawn(tcpdump);
    let live_args: Vec<String> = [
        "-i",
        &vc,
        "--policy",
        &p("policy.toml"),
        "--cadence",
        "3",
        "--cadence-tolerance",
        "1",
        "--alerts",
        &p("alerts.ndjson"),
        "--metrics",
        "127.0.0.1:9464",
        "-w",
        &p("ring"),
        "--ring-file-mb",
        "1",
        "--ring-files",
        "3",
        "--audit",
        &p("live-audit.json"),
        "-Z",
        "nobody",
        "--sensor",
        "netns-test",
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    let mut live = Proc::spawn(live_command(&["ip", "netns", "exec", &nc], &live_args));
    assert!(
        tcpdump.wait_for_stderr("listening on", Duration::from_secs(10)),
        "tcpdump did not start: {}",
        tcpdump.stderr()
    );
    assert!(
        live.wait_for_stderr("listening on", Duration::from_secs(20)),
        "dg-audit live did not start: {}",
        live.stderr()
    );
    // -Z nobody: the running sensor holds no root identity.
    let status = std::fs::read_to_string(format!("/proc/{}/status", live.child.id()))
        .expect("the sensor's /proc status is readable");
    let uid_line = status
        .lines()
        .find(|l| l.starts_with("Uid:"))
        .expect("a Uid: line");
    // Real, effective, saved and filesystem uid: all four must be nobody's.
    let uids: Vec<&str> = uid_line.split_whitespace().skip(1).collect();
    assert_eq!(uids, ["65534"; 4], "{uid_line}");
    std::thread::sleep(Duration::from_millis(300));

    let client = Command::new("ip")
        .args(["netns", "exec", &nc, "python3", &p("client.py"), TOKEN])
        .output()
        .expect("client runs");
    let client_log = String::from_utf8_lossy(&client.stderr).into_owned();
    assert!(client.status.success(), "client failed: {client_log}");
    let events: Vec<Value> = client_log
        .lines()
        .filter_map(|l| serde_json::from_str(l).ok())
        .collect();
    let event_t = |kind: &str| {
        events
            .iter()
            .find(|e| e["event"] == kind)
            .and_then(|e| e["t"].as_f64())
            .unwrap_or_else(|| panic!("no {kind} event in {client_log}"))
    };
    assert_eq!(events.iter().filter(|e| e["event"] == "checkin").count(), 4);

    // Traffic has stopped: wait (bounded) for the overdue check-in alert.
    let overdue_alert = |alerts: &[Value]| {
        alerts
            .iter()
            .find(|a| {
                a["control"] == "CADENCE"
                    && a["summary"].as_str().is_some_and(|s| s.contains("overdue"))
            })
            .cloned()
    };
    let until = Instant::now() + Duration::from_secs(10);
    while overdue_alert(&read_alerts(&dir.join("alerts.ndjson"))).is_none()
        && Instant::now() < until
    {
        std::thread::sleep(Duration::from_millis(100));
    }
    let metrics = Command::new("ip")
        .args([
            "netns",
            "exec",
            &nc,
            "curl",
            "-sf",
            "http://127.0.0.1:9464/metrics",
        ])
        .output()
        .expect("curl runs");
    assert!(metrics.status.success(), "metrics endpoint: {:?}", metrics);
    let metrics_text = String::from_utf8_lossy(&metrics.stdout).into_owned();

    live.signal(libc::SIGTERM);
    let live_status = live.wait(Duration::from_secs(15));
    tcpdump.signal(libc::SIGTERM);
    let _ = tcpdump.wait(Duration::from_secs(10));
    drop(server);

    // --- alerts: stable fields, one second from the packet, no false alarm before
    let alerts = read_alerts(&dir.join("alerts.ndjson"));
    for a in &alerts {
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
            assert!(a.get(key).is_some(), "alert lacks {key}: {a}");
        }
        assert!(
            !a.to_string().contains(TOKEN),
            "secret in clear in an alert: {a}"
        );
    }
    let first_violation = event_t("plaintext");
    for a in &alerts {
        assert!(
            rfc_secs(a["ts"].as_str().unwrap_or_default()) >= first_violation - 0.01
                || a["control"] == "CAPTURE",
            "alert before any violation happened: {a}"
        );
    }
    let mut latencies = Vec::new();
    for (control, event) in [
        ("CREDENTIAL", "plaintext"),
        ("TLS", "plaintext"),
        ("DEST", "plaintext"),
        ("DEST", "unknown"),
    ] {
        let sent = event_t(event);
        let alert = alerts
            .iter()
            .filter(|a| a["control"] == control && a["verdict"] == "violation")
            .map(|a| (rfc_secs(a["ts"].as_str().unwrap_or_default()), a))
            .filter(|(t, _)| *t >= sent)
            .min_by(|a, b| a.0.total_cmp(&b.0))
            .unwrap_or_else(|| panic!("no {control} alert after the {event} traffic: {alerts:#?}"));
        let latency = alert.0 - sent;
        latencies.push(format!("{control}/{event} {latency:.3} s"));
        assert!(
            latency < 1.0,
            "{control} alert {latency:.3} s after the {event} traffic"
        );
        assert!(
            alert.1["pcap_files"].as_array().is_some_and(|f| f
                .iter()
                .any(|f| Path::new(f.as_str().unwrap_or("")).is_file())),
            "{control} alert names no evidence file: {}",
            alert.1
        );
    }
    say(&format!("live alert latency: {}", latencies.join(", ")));
    let dest_unknown = alerts.iter().any(|a| {
        a["control"] == "DEST"
            && a["destination"]
                .as_str()
                .is_some_and(|d| d.contains("198.51.100.20"))
    });
    assert!(dest_unknown, "no DEST alert for 198.51.100.20: {alerts:#?}");

    // --- the same packets, captured by tcpdump and judged offline
    let offline = dg_audit(&[
        "analyze",
        &p("tcpdump.pcap"),
        "--policy",
        &p("policy.toml"),
        "--format",
        "json",
    ]);
    let offline_doc: Value = serde_json::from_slice(&offline.stdout).unwrap_or_else(|e| {
        panic!(
            "analyze output: {e}; {}",
            String::from_utf8_lossy(&offline.stderr)
        )
    });
    assert_schema("audit", &offline_doc);
    let live_doc: Value = serde_json::from_str(
        &std::fs::read_to_string(dir.join("live-audit.json")).expect("live audit written"),
    )
    .expect("live audit is JSON");
    assert_schema("audit", &live_doc);
    assert_eq!(live_doc["sensor"], "netns-test");
    assert_eq!(live_doc["verdict"], "violation");
    assert_eq!(
        live_status.and_then(|s| s.code()),
        Some(1),
        "{}",
        live.stderr()
    );
    let verdicts = |d: &Value| {
        d["controls"]
            .as_array()
            .expect("controls")
            .iter()
            .map(|c| {
                format!(
                    "{}={}",
                    c["id"].as_str().unwrap_or(""),
                    c["verdict"].as_str().unwrap_or("")
                )
            })
            .collect::<Vec<_>>()
    };
    // Every control agrees but CADENCE: the live audit spans the whole watch, so the silence
    // after the last check-in (which raised the overdue alert) is a finding there; tcpdump's file
    // ends at its last packet and cannot show it.
    let (live_v, offline_v) = (verdicts(&live_doc), verdicts(&offline_doc));
    assert!(
        live_v.contains(&"CADENCE=finding".to_string()),
        "{live_v:?}"
    );
    assert!(
        offline_v.contains(&"CADENCE=pass".to_string()),
        "{offline_v:?}"
    );
    let others = |v: &[String]| {
        v.iter()
            .filter(|c| !c.starts_with("CADENCE="))
            .cloned()
            .collect::<Vec<_>>()
    };
    assert_eq!(others(&live_v), others(&offline_v));
    assert_eq!(live_doc["verdict"], offline_doc["verdict"]);
    let cadence = live_doc["controls"]
        .as_array()
        .and_then(|c| c.iter().find(|c| c["id"] == "CADENCE"))
        .expect("CADENCE control");
    assert!(
        cadence["evidence"].to_string().contains("overdue"),
        "{cadence}"
    );
    // Flow uids hash the first packet time, which two capture sockets stamp microseconds apart:
    // compare everything else.
    let without_uids = |d: &Value| {
        let mut l = d["licensing"].clone();
        for m in l["per_minute"].as_array_mut().expect("per_minute") {
            m.as_object_mut().expect("minute").remove("flow_uids");
        }
        l
    };
    let (live_lic, offline_lic) = (without_uids(&live_doc), without_uids(&offline_doc));
    assert!(
        live_lic["per_minute"]
            .as_array()
            .is_some_and(|m| !m.is_empty()),
        "the live audit counted no licensing minute: {live_lic}"
    );
    for key in [
        "egress_ip_bytes",
        "egress_payload_bytes",
        "connections",
        "per_minute",
        "sources",
    ] {
        // Two missing keys would compare equal (null == null).
        assert!(
            !live_lic[key].is_null() && !offline_lic[key].is_null(),
            "licensing.{key} missing"
        );
        assert_eq!(
            live_lic[key], offline_lic[key],
            "licensing.{key} differs between live and tcpdump + analyze"
        );
    }
    assert_eq!(
        live_doc["capture"]["frames"],
        offline_doc["capture"]["frames"]
    );
    assert_eq!(live_doc["capture"]["capture_drops"], 0);

    // --- overdue: within cadence + tolerance + 1 s of the last check-in seen on the wire
    let last_checkin = offline_doc["licensing"]["timeline"]
        .as_array()
        .expect("timeline")
        .iter()
        .filter(|c| c["answered"] == true)
        .filter_map(|c| c["start_ts_nanos"].as_i64())
        .max()
        .expect("check-ins on the wire") as f64
        / 1e9;
    let overdue = overdue_alert(&alerts).unwrap_or_else(|| panic!("no overdue alert: {alerts:#?}"));
    let late = rfc_secs(overdue["ts"].as_str().unwrap_or_default()) - last_checkin;
    say(&format!(
        "live overdue alert {late:.3} s after the last check-in (cadence 3 + tolerance 1)"
    ));
    assert!(
        late > 4.0 && late <= 5.0,
        "overdue alert {late:.3} s after the last check-in"
    );
    assert_eq!(overdue["source"], "192.0.2.10");

    // --- metrics
    let checkins = metric(
        &metrics_text,
        "dg_audit_licensing_checkins_total{source=\"192.0.2.10\"}",
    );
    assert!(
        checkins >= Some(4.0),
        "check-ins {checkins:?}:\n{metrics_text}"
    );
    for (series, min) in [
        ("dg_audit_frames_total", 20.0),
        ("dg_audit_packets_total", 20.0),
        ("dg_audit_violations_total{control=\"CREDENTIAL\"}", 1.0),
        ("dg_audit_violations_total{control=\"DEST\"}", 1.0),
        ("dg_audit_licensing_connection_duration_seconds_count", 3.0),
        (
            "dg_audit_licensing_checkin_overdue{source=\"192.0.2.10\"}",
            1.0,
        ),
        ("dg_audit_capture_up", 1.0),
    ] {
        let v = metric(&metrics_text, series);
        assert!(
            v >= Some(min),
            "{series} = {v:?}, expected >= {min}:\n{metrics_text}"
        );
    }
    assert_eq!(
        metric(
            &metrics_text,
            "dg_audit_capture_drops_total{layer=\"kernel\"}"
        ),
        Some(0.0)
    );
    assert_eq!(
        metric(&metrics_text, "dg_audit_alerts_dropped_total"),
        Some(0.0)
    );
    if have("promtool") {
        std::fs::write(p("metrics.txt"), &metrics_text).expect("metrics saved");
        let check = Command::new("sh")
            .args([
                "-c",
                &format!("promtool check metrics < {}", p("metrics.txt")),
            ])
            .output()
            .expect("promtool runs");
        assert!(
            check.status.success(),
            "promtool check metrics: {}{}",
            String::from_utf8_lossy(&check.stdout),
            String::from_utf8_lossy(&check.stderr)
        );
    } else {
        skip(
            TEST,
            "promtool not installed: metrics format not checked by promtool",
        );
    }
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn a_vanished_interface_ends_the_capture_and_keeps_the_audit() {
    const TEST: &str = "a_vanished_interface_ends_the_capture_and_keeps_the_audit";
    if !root() {
        return skip(TEST, "needs root to create network namespaces");
    }
    for tool in ["ip", "python3"] {
        if !have(tool) {
            return skip(TEST, &format!("{tool} is not installed"));
        }
    }
    let id = std::process::id() % 100_000;
    let nd = format!("dgl{id}d");
    let (dev, peer) = (format!("dgl{id}d0"), format!("dgl{id}d1"));
    let _netns = match Netns::create(std::slice::from_ref(&nd)) {
        Ok(n) => n,
        Err(e) => return skip(TEST, &format!("cannot create a network namespace: {e}")),
    };
    for cmd in [
        vec![
            "ip", "-n", &nd, "link", "add", &dev, "type", "veth", "peer", "name", &peer,
        ],
        vec!["ip", "-n", &nd, "addr", "add", "192.0.2.50/24", "dev", &dev],
        vec!["ip", "-n", &nd, "link", "set", &peer, "up"],
        vec!["ip", "-n", &nd, "link", "set", &dev, "up"],
        vec![
            "ip",
            "-n",
            &nd,
            "neigh",
            "add",
            "192.0.2.51",
            "lladdr",
            "02:00:00:00:00:51",
            "dev",
            &dev,
        ],
    ] {
        run(&cmd).unwrap_or_else(|e| panic!("namespace set-up: {e}"));
    }
    let dir = temp_dir("fault");
    let p = |name: &str| dir.join(name).display().to_string();
    let args: Vec<String> = [
        "-i",
        &dev,
        "--alerts",
        &p("alerts.ndjson"),
        "--audit",
        &p("audit.json"),
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    let mut live = Proc::spawn(live_command(&["ip", "netns", "exec", &nd], &args));
    assert!(
        live.wait_for_stderr("listening on", Duration::from_secs(20)),
        "dg-audit live did not start: {}",
        live.stderr()
    );
    // Three datagrams out of the interface (a static neighbour, so no ARP is needed).
    run(&[
        "ip",
        "netns",
        "exec",
        &nd,
        "python3",
        "-c",
        "import socket,time\ns=socket.socket(socket.AF_INET,socket.SOCK_DGRAM)\nfor _ in range(3):\n    s.sendto(b'x'*32,('192.0.2.51',9)); time.sleep(0.1)",
    ])
    .expect("datagrams sent");
    std::thread::sleep(Duration::from_millis(500));
    run(&["ip", "-n", &nd, "link", "del", &dev]).expect("interface removed");
    let status = live.wait(Duration::from_secs(10));
    assert_eq!(status.and_then(|s| s.code()), Some(2), "{}", live.stderr());
    let stderr = live.stderr();
    assert!(
        stderr.contains(&dev) && stderr.contains("capture stopped"),
        "{stderr}"
    );
    let alerts = read_alerts(&dir.join("alerts.ndjson"));
    assert!(
        alerts
            .iter()
            .any(|a| a["control"] == "CAPTURE" && a["verdict"] == "inconclusive"),
        "{alerts:#?}"
    );
    let audit: Value = serde_json::from_str(
        &std::fs::read_to_string(dir.join("audit.json")).expect("audit written after the fault"),
    )
    .expect("audit is JSON");
    assert_schema("audit", &audit);
    assert_eq!(audit["inputs"][0]["incomplete"], true);
    assert!(
        audit["capture"]["frames"].as_u64() >= Some(3),
        "{}",
        audit["capture"]
    );
    assert_eq!(audit["verdict"], "inconclusive");
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn without_capture_rights_the_error_says_how_to_get_them() {
    let mut prefix = Vec::new();
    if root() {
        if !have("setpriv") {
            return skip(
                "without_capture_rights_the_error_says_how_to_get_them",
                "setpriv is not installed",
            );
        }
        prefix.extend([
            "setpriv",
            "--reuid=65534",
            "--regid=65534",
            "--clear-groups",
        ]);
    } else {
        prefix.push("env");
    }
    let args = vec![
        "-i".to_string(),
        "lo".to_string(),
        "--duration".into(),
        "1".into(),
    ];
    let out = live_command(&prefix, &args).output().expect("runs");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert!(
        stderr.contains("setcap cap_net_raw,cap_net_admin=eip"),
        "{stderr}"
    );
}

#[test]
fn deploy_examples_pass_promtool() {
    let deploy = Path::new(env!("CARGO_MANIFEST_DIR")).join("deploy");
    if !have("promtool") {
        return skip("deploy_examples_pass_promtool", "promtool is not installed");
    }
    let rules = deploy.join("prometheus/dg-audit.rules.yml");
    let out = Command::new("promtool")
        .arg("check")
        .arg("rules")
        .arg(&rules)
        .output()
        .expect("promtool runs");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stdout)
    );
    let out = Command::new("promtool")
        .arg("check")
        .arg("config")
        .arg(deploy.join("prometheus/prometheus.yml"))
        .output()
        .expect("promtool runs");
    assert!(
        out.status.success(),
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}
