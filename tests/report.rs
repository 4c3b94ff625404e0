//! Reports (`dg-audit report`): HTML, Markdown and JSON rendered from the audits of the recorded
//! scenarios in `captures/`, their figures against the audit JSON, redaction, byte-identical
//! regeneration, and merges of several sensors without double counting.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::{Mutex, OnceLock};

use dg_audit::audit::Audit;
use dg_audit::report::merge::merge;
use dg_audit::report::{render, render_with, RenderOptions, ReportFormat};
use dg_audit::units::human_bytes;
use serde_json::Value;

use crate::util::{assert_schema, dg_audit, LICENSE_KEY};

/// The audit of a recorded scenario (`captures/NAME.pcap` with its policy), analysed once per
/// test run, with the sensor name set to `sensor`.
fn scenario(name: &str, sensor: Option<&str>) -> Audit {
    static CACHE: OnceLock<Mutex<BTreeMap<String, Value>>> = OnceLock::new();
    let cache = CACHE.get_or_init(|| Mutex::new(BTreeMap::new()));
    let value = {
        let mut cache = cache.lock().unwrap_or_else(|e| e.into_inner());
        cache
            .entry(name.to_string())
            .or_insert_with(|| {
                // Relative paths (tests run in the package root), as a report shows them.
                let pcap = format!("captures/{name}.pcap");
                let policy = format!("captures/{name}.policy.toml");
                let out = dg_audit(&["analyze", &pcap, "--policy", &policy, "--format", "json"]);
                let value: Value = serde_json::from_slice(&out.stdout).unwrap_or_else(|e| {
                    panic!(
                        "{name}: analyze gave no JSON ({e}): {}",
                        String::from_utf8_lossy(&out.stderr)
                    )
                });
                assert_schema("audit", &value);
                value
            })
            .clone()
    };
    let mut audit: Audit = serde_json::from_value(value).expect("audit JSON parses");
    audit.sensor = sensor.map(String::from);
    audit
}

fn text(bytes: Vec<u8>) -> String {
    String::from_utf8(bytes).expect("reports are UTF-8")
}

fn all_formats(audits: &[Audit]) -> [(ReportFormat, String); 3] {
    [ReportFormat::Html, ReportFormat::Md, ReportFormat::Json]
        .map(|f| (f, text(render(audits, f).expect("report renders"))))
}

/// Asserts two JSON documents are equal, naming the first place they differ (not dumping both).
fn assert_same_json(left: &Value, right: &Value, what: &str) {
    fn first_difference(l: &Value, r: &Value, path: String) -> Option<String> {
        match (l, r) {
            (Value::Object(a), Value::Object(b)) => {
                for key in a.keys().chain(b.keys()) {
                    let (x, y) = (a.get(key), b.get(key));
                    match (x, y) {
                        (Some(x), Some(y)) => {
                            if let Some(d) = first_difference(x, y, format!("{path}/{key}")) {
                                return Some(d);
                            }
                        }
                        _ => return Some(format!("{path}/{key}: {x:?} vs {y:?}")),
                    }
                }
                None
            }
            (Value::Array(a), Value::Array(b)) if a.len() == b.len() => a
                .iter()
                .zip(b)
                .enumerate()
                .find_map(|(i, (x, y))| first_difference(x, y, format!("{path}/{i}"))),
            _ if l == r => None,
            _ => {
                let cut = |v: &Value| v.to_string().chars().take(300).collect::<String>();
                Some(format!("{path}: {} vs {}", cut(l), cut(r)))
            }
        }
    }
    if let Some(d) = first_difference(left, right, String::new()) {
        panic!("{what}: documents differ at {d}");
    }
}

fn json_report(audits: &[Audit]) -> Value {
    let doc: Value =
        serde_json::from_slice(&render(audits, ReportFormat::Json).expect("json renders"))
            .expect("report JSON parses");
    assert_schema("audit", &doc);
    doc
}

#[test]
fn report_of_compliant_scenario_states_verdict_and_figures() {
    let audit = scenario("compliant-direct", None);
    assert_eq!(audit.verdict.as_str(), "compliant");
    let l = &audit.licensing;
    let [(_, html), (_, md), _] = all_formats(std::slice::from_ref(&audit));
    assert!(html.starts_with("<!DOCTYPE html>"));
    assert!(
        html.contains("<div class=\"banner pass\">"),
        "verdict banner"
    );
    assert!(html.contains(">compliant<span class=\"exit\">exit code 0</span>"));
    assert!(html.contains("Every control passed."));
    for figure in [
        human_bytes(l.ip_bytes_per_minute.max),
        human_bytes(l.ip_bytes_per_minute.p50),
        human_bytes(audit.policy.licensing.max_egress_bytes_per_minute),
    ] {
        assert!(html.contains(&figure), "HTML lacks {figure}");
        assert!(md.contains(&figure), "Markdown lacks {figure}");
    }
    // Every control, its verdict, and the inputs' SHA-256.
    assert_eq!(audit.controls.len(), dg_audit::audit::ControlId::ALL.len());
    assert_eq!(audit.inputs.len(), 1);
    for c in &audit.controls {
        assert!(
            html.contains(&format!("id=\"control-{}\"", c.id)),
            "{}",
            c.id
        );
        assert!(md.contains(&format!("| {} | {} |", c.id, c.verdict.as_str())));
    }
    for i in &audit.inputs {
        assert!(html.contains(&i.sha256) && md.contains(&i.sha256));
    }
    // Four plotters charts, inline.
    assert_eq!(html.matches("<svg ").count(), 4, "four charts");
    // The audio bound sentence.
    let bound = &l.audio_bound[0];
    assert!(html.contains(&format!("{} kbit/s speech per minute", bound.codec_kbps)));
    assert!(md.starts_with("# dg-audit: compliant"));
    assert!(md.contains("**Audio bound:** At its p99 minute"));
    assert!(md.contains("## Chain of custody"));
}

#[test]
fn report_json_of_one_audit_is_that_audit() {
    for name in ["compliant-direct", "exfil-bulk", "held-connection"] {
        let audit = scenario(name, Some("sensor-a"));
        let mut doc = json_report(std::slice::from_ref(&audit));
        let merge = doc
            .as_object_mut()
            .and_then(|m| m.remove("merge"))
            .expect("merge section");
        assert_same_json(&doc, &serde_json::to_value(&audit).unwrap(), name);
        assert_eq!(merge["audits"].as_array().map(Vec::len), Some(1));
        assert_eq!(merge["audits"][0]["counted"], true);
    }
}

#[test]
fn report_of_violation_names_the_broken_rules_and_the_minute() {
    let audit = scenario("exfil-bulk", None);
    assert_eq!(audit.verdict.as_str(), "violation");
    let [(_, html), (_, md), (_, json)] = all_formats(std::slice::from_ref(&audit));
    assert!(html.contains("<div class=\"banner violation\">"));
    assert!(html.contains(">violation<span class=\"exit\">exit code 1</span>"));
    let volume = audit
        .controls
        .iter()
        .find(|c| c.id.as_str() == "VOLUME")
        .expect("VOLUME control");
    assert_eq!(volume.verdict.as_str(), "violation");
    assert!(html.contains("Rules broken: ") && html.contains("VOLUME"));
    let max = audit.licensing.ip_bytes_per_minute.max;
    assert!(max > 5_000_000, "the bulk upload minute");
    assert!(html.contains(&human_bytes(max)) && md.contains(&human_bytes(max)));
    // The over-budget minute is in the evidence with its exact byte count and packet time.
    let e = &volume.evidence[0];
    let ts = e.ts.expect("evidence time").to_string();
    assert!(html.contains(&ts), "evidence packet time {ts}");
    let grouped = {
        let s = max.to_string();
        let mut out = String::new();
        for (i, c) in s.chars().enumerate() {
            if i > 0 && (s.len() - i) % 3 == 0 {
                out.push(',');
            }
            out.push(c);
        }
        out
    };
    assert!(html.contains(&format!("({grouped} B)")), "exact bytes");
    assert!(
        html.contains("<tr class=\"over\">"),
        "over-budget minute shaded"
    );
    assert!(
        html.contains("(log scale)"),
        "5 MB against 8 KB needs a log axis"
    );
    let doc: Value = serde_json::from_str(&json).unwrap();
    assert_eq!(doc["verdict"], "violation");
    assert_eq!(doc["licensing"]["ip_bytes_per_minute"]["max"], max);
}

#[test]
fn report_html_is_self_contained() {
    for name in ["compliant-direct", "hosted-transcription", "outage"] {
        let html = text(render(&[scenario(name, None)], ReportFormat::Html).unwrap());
        for banned in [
            "<script", "<link", "<img", "<iframe", "@import", "url(", "src=",
        ] {
            assert!(!html.contains(banned), "{name}: {banned}");
        }
        // The only URL is the SVG namespace (a name, never fetched).
        let urls = html.matches("http").count();
        assert_eq!(
            urls,
            html.matches("http://www.w3.org/2000/svg").count(),
            "{name}: a URL other than the SVG namespace"
        );
        assert!(html.contains("@media print"));
        assert!(html.contains("break-before:page"));
    }
}

#[test]
fn report_never_shows_the_plaintext_license_key() {
    let audit = scenario("plaintext-licensing", None);
    let credential = audit
        .controls
        .iter()
        .find(|c| c.id.as_str() == "CREDENTIAL")
        .expect("CREDENTIAL control");
    assert_eq!(credential.verdict.as_str(), "violation");
    for (format, out) in all_formats(std::slice::from_ref(&audit)) {
        assert!(
            !out.contains(LICENSE_KEY),
            "{format:?} report shows the license key"
        );
        assert!(
            out.contains("f103...bcad"),
            "{format:?}: redacted form shown"
        );
    }
    // Even when a secret reaches the audit unredacted (a hand-edited or older audit).
    let mut leaky = audit.clone();
    leaky.controls[0].summary =
        format!("key {LICENSE_KEY} and Authorization: Token {LICENSE_KEY}x");
    leaky.inputs[0].path = format!("/captures/{LICENSE_KEY}.pcap");
    for (format, out) in all_formats(&[leaky]) {
        assert!(
            !out.contains(LICENSE_KEY),
            "{format:?} report shows the license key"
        );
    }
}

#[test]
fn report_regenerates_byte_identical() {
    let a = scenario("compliant-direct", Some("sensor-a"));
    let b = scenario("ipv6-vlan", Some("sensor-b"));
    let c = scenario("outage", Some("sensor-a"));
    for format in [ReportFormat::Html, ReportFormat::Md, ReportFormat::Json] {
        let one = render(std::slice::from_ref(&a), format).unwrap();
        assert_eq!(
            one,
            render(std::slice::from_ref(&a), format).unwrap(),
            "{format:?}"
        );
        let merged = render(&[a.clone(), b.clone(), c.clone()], format).unwrap();
        assert_eq!(
            merged,
            render(&[c.clone(), b.clone(), a.clone()], format).unwrap(),
            "{format:?}: the order the audits are named in does not matter"
        );
    }
    // The report time is the end of the latest capture unless given.
    let html = text(render(&[a.clone(), b.clone()], ReportFormat::Html).unwrap());
    let latest = a.capture.end.clone().max(b.capture.end.clone());
    assert!(html.contains(&format!(
        "report time = <b>{latest}</b> (the end of the latest capture)"
    )));
    let options = RenderOptions {
        generated_at_nanos: Some(1_700_000_000_000_000_000),
    };
    let html = text(render_with(&[a], ReportFormat::Html, &options).unwrap());
    assert!(html.contains("2023-11-14T22:13:20.000000Z</b> (given with --generated-at)"));
}

#[test]
fn report_merges_two_sensors_with_combined_totals() {
    let a = scenario("compliant-direct", Some("sensor-a"));
    let b = scenario("exfil-bulk", Some("sensor-b"));
    let doc = json_report(&[a.clone(), b.clone()]);
    let l = &doc["licensing"];
    let sum = |f: fn(&Audit) -> u64| f(&a) + f(&b);
    assert_eq!(l["egress_ip_bytes"], sum(|x| x.licensing.egress_ip_bytes));
    assert_eq!(
        l["egress_payload_bytes"],
        sum(|x| x.licensing.egress_payload_bytes)
    );
    assert_eq!(l["connections"], sum(|x| x.licensing.connections));
    // Same addresses under two sensors are two hosts (rule 4): every minute kept.
    let minutes = a.licensing.per_minute.len() + b.licensing.per_minute.len();
    assert_eq!(l["per_minute"].as_array().map(Vec::len), Some(minutes));
    assert_eq!(l["ip_bytes_per_minute"]["minutes"], minutes as u64);
    assert_eq!(
        l["ip_bytes_per_minute"]["total"],
        a.licensing.ip_bytes_per_minute.total + b.licensing.ip_bytes_per_minute.total
    );
    assert_eq!(
        l["ip_bytes_per_minute"]["max"],
        b.licensing.ip_bytes_per_minute.max
    );
    assert_eq!(
        l["timeline"].as_array().map(Vec::len),
        Some(a.licensing.timeline.len() + b.licensing.timeline.len())
    );
    // Worst verdict per control, overall verdict recomputed, inputs concatenated.
    assert_eq!(doc["verdict"], "violation");
    let volume = crate::util::control(&doc, "VOLUME");
    assert_eq!(volume["verdict"], "violation");
    assert!(volume["evidence"][0]["what"]
        .as_str()
        .unwrap()
        .starts_with("[sensor-b] "));
    assert_eq!(doc["inputs"].as_array().map(Vec::len), Some(2));
    assert_eq!(doc["sensor"], "sensor-a, sensor-b");
    let sensors = doc["merge"]["sensors"].as_array().unwrap();
    assert_eq!(sensors.len(), 2);
    assert_eq!(sensors[0]["sensor"], "sensor-a");
    assert_eq!(sensors[0]["verdict"], "compliant");
    assert_eq!(
        sensors[1]["licensing_egress_ip_bytes"],
        b.licensing.egress_ip_bytes
    );
    // The HTML shows per-sensor rows and a combined row.
    let html = text(render(&[a, b], ReportFormat::Html).unwrap());
    assert!(html.contains("<h2>Sensors</h2>"));
    assert!(html.contains("<b>combined</b>"));
    assert!(
        html.contains("sensor-b · 192.0.2.10"),
        "hosts labelled by sensor"
    );
}

#[test]
fn report_counts_the_same_audit_once() {
    let a = scenario("compliant-direct", Some("sensor-a"));
    let b = scenario("ipv6-vlan", Some("sensor-b"));
    let once = json_report(&[a.clone(), b.clone()]);
    let twice = json_report(&[a.clone(), b.clone(), a.clone(), b.clone()]);
    let strip = |mut v: Value| {
        v.as_object_mut().unwrap().remove("merge");
        v
    };
    assert_same_json(&strip(once), &strip(twice.clone()), "a+b vs a+b+a+b");
    let parts = twice["merge"]["audits"].as_array().unwrap();
    assert_eq!(parts.len(), 4);
    assert_eq!(parts.iter().filter(|p| p["counted"] == true).count(), 2);
    assert!(parts.iter().any(|p| p["duplicate_of"] == "sensor-a"));
    // Given twice on its own, an audit is itself.
    let mut alone = json_report(&[a.clone(), a.clone()]);
    alone.as_object_mut().unwrap().remove("merge");
    assert_same_json(&alone, &serde_json::to_value(&a).unwrap(), "a+a vs a");
    let md = text(render(&[a.clone(), a], ReportFormat::Md).unwrap());
    assert!(md.contains("no: same input files as"));
}

#[test]
fn report_counts_overlapping_minutes_of_one_sensor_once() {
    // Two different captures of one sensor over the same minutes, both seeing 192.0.2.10: each
    // (host, minute) they share is one measurement (the larger), not two.
    let a = scenario("compliant-direct", Some("lan"));
    let b = scenario("held-connection", Some("lan"));
    let merged = merge(&[a.clone(), b.clone()]).unwrap();
    let l = &merged.audit.licensing;
    let mut expected: BTreeMap<(i64, String), u64> = BTreeMap::new();
    for m in a.licensing.per_minute.iter().chain(&b.licensing.per_minute) {
        let e = expected
            .entry((m.start_ts, m.source.to_string()))
            .or_default();
        *e = (*e).max(m.egress_ip_bytes);
    }
    let shared = a.licensing.per_minute.len() + b.licensing.per_minute.len() - expected.len();
    assert!(shared > 0, "the two captures share host-minutes");
    assert_eq!(merged.windows_counted_once, shared as u64);
    let got: BTreeMap<(i64, String), u64> = l
        .per_minute
        .iter()
        .map(|m| ((m.start_ts, m.source.to_string()), m.egress_ip_bytes))
        .collect();
    assert_eq!(got.len(), l.per_minute.len(), "one entry per window");
    assert_eq!(got, expected);
    assert_eq!(l.ip_bytes_per_minute.total, expected.values().sum::<u64>());
    let dropped: u64 = a.licensing.ip_bytes_per_minute.total
        + b.licensing.ip_bytes_per_minute.total
        - l.ip_bytes_per_minute.total;
    assert_eq!(
        l.egress_ip_bytes,
        a.licensing.egress_ip_bytes + b.licensing.egress_ip_bytes - dropped
    );
    assert_eq!(merged.sensors.len(), 1);
    assert_schema("audit", &serde_json::to_value(&merged.audit).unwrap());
}

#[test]
fn report_command_exit_code_is_the_merged_verdict() {
    use dg_audit::cli::report::{run_report, ReportArgs};
    let dir = std::env::temp_dir().join(format!("dg-audit-report-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let write = |name: &str, audit: &Audit| {
        let path = dir.join(format!("{name}.json"));
        std::fs::write(&path, serde_json::to_vec(audit).unwrap()).unwrap();
        path
    };
    let compliant = write("a", &scenario("compliant-direct", Some("a")));
    let violation = write("b", &scenario("exfil-bulk", Some("b")));
    let args = |audits: Vec<PathBuf>, output: &str| ReportArgs {
        audits,
        output: dir.join(output),
        format: None,
        generated_at: None,
    };
    assert_eq!(
        run_report(&args(vec![compliant.clone()], "r.html")).unwrap(),
        0
    );
    assert_eq!(
        run_report(&args(vec![compliant.clone(), violation], "r.md")).unwrap(),
        1
    );
    let md = std::fs::read_to_string(dir.join("r.md")).unwrap();
    assert!(md.starts_with("# dg-audit: violation"));
    // Bad input is an error (exit 2 from main): unknown extension, not an audit, no file.
    assert!(run_report(&args(vec![compliant.clone()], "r.txt")).is_err());
    let junk = dir.join("junk.json");
    std::fs::write(&junk, b"{\"not\": \"an audit\"}").unwrap();
    assert!(run_report(&args(vec![junk], "r.json")).is_err());
    assert!(run_report(&args(vec![dir.join("missing.json")], "r.json")).is_err());
    let mut with_time = args(vec![compliant], "t.html");
    with_time.generated_at = Some("not a time".into());
    assert!(run_report(&with_time).is_err());
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn report_without_licensing_traffic_says_so() {
    let capture = crate::util::corpus_dir().join("zeek-tls13-ech.pcap");
    let out = dg_audit(&[
        "analyze",
        capture.to_str().expect("utf-8 path"),
        "--format",
        "json",
    ]);
    let value: Value = serde_json::from_slice(&out.stdout).expect("audit JSON");
    assert_schema("audit", &value);
    let audit: Audit = serde_json::from_value(value).expect("audit JSON parses");
    assert!(audit.licensing.per_minute.is_empty());
    let [(_, html), (_, md), _] = all_formats(std::slice::from_ref(&audit));
    assert!(html.contains("No licensing traffic was seen."));
    assert!(html.contains("Egress destinations by bytes sent"));
    assert_eq!(
        html.matches("<svg ").count(),
        1,
        "only the destinations chart"
    );
    assert!(md.contains("With no licensing traffic"));
    json_report(&[audit]);
}
