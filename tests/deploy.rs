//! The Prometheus deployment files under deploy/: rules, scrape configs and the rules' unit tests
//! pass `promtool`. Without promtool these tests skip, except in CI (CI=true), where
//! `scripts/setup.sh --test` installs it and a missing promtool fails.

use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

fn deploy() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("deploy")
}

/// True when promtool can run; false (after a SKIP line) when it is missing outside CI; panics
/// when it is missing in CI.
fn promtool_present(test: &str) -> bool {
    let found = Command::new("promtool")
        .arg("--version")
        .output()
        .is_ok_and(|o| o.status.success());
    if !found {
        let ci = std::env::var("CI").is_ok_and(|v| v == "true");
        assert!(
            !ci,
            "deploy::{test}: promtool is not installed; CI (CI=true) installs it with \
             scripts/setup.sh --test, so this test must run there, not skip"
        );
        let _ = writeln!(
            std::io::stderr(),
            "SKIP deploy::{test}: promtool is not installed"
        );
    }
    found
}

/// Runs promtool with `args` (and `stdin`), panicking with its output when it fails.
fn promtool(args: &[&str], stdin: Option<&str>) -> String {
    let mut child = Command::new("promtool")
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("promtool runs");
    {
        let mut input = child.stdin.take().expect("stdin piped");
        if let Some(text) = stdin {
            input
                .write_all(text.as_bytes())
                .expect("promtool reads stdin");
        }
    }
    let out = child.wait_with_output().expect("promtool finishes");
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        out.status.success(),
        "promtool {} failed:\n{text}",
        args.join(" ")
    );
    text
}

fn path_str(p: &Path) -> &str {
    p.to_str().expect("utf-8 path")
}

#[test]
fn alerting_rules_pass_promtool_check_rules() {
    if !promtool_present("alerting_rules_pass_promtool_check_rules") {
        return;
    }
    let rules = deploy().join("prometheus/dg-audit.rules.yml");
    promtool(&["check", "rules", path_str(&rules)], None);
}

#[test]
fn every_alerting_rule_has_a_passing_promtool_unit_test() {
    if !promtool_present("every_alerting_rule_has_a_passing_promtool_unit_test") {
        return;
    }
    let dir = deploy().join("prometheus/tests");
    let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)
        .expect("deploy/prometheus/tests exists")
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|e| e == "yml"))
        .collect();
    files.sort();
    assert!(!files.is_empty(), "no unit tests in {}", dir.display());
    let mut args = vec!["test", "rules"];
    args.extend(files.iter().map(|p| path_str(p)));
    promtool(&args, None);

    // Every alert of the rules file is the subject of at least one `alertname:` check.
    let rules = std::fs::read_to_string(deploy().join("prometheus/dg-audit.rules.yml"))
        .expect("rules file");
    let tests: String = files
        .iter()
        .map(|f| std::fs::read_to_string(f).expect("test file"))
        .collect();
    let alerts: Vec<&str> = rules
        .lines()
        .filter_map(|l| l.trim().strip_prefix("- alert:"))
        .map(str::trim)
        .collect();
    assert!(alerts.len() >= 8, "alerts found: {alerts:?}");
    for alert in alerts {
        assert!(
            tests.contains(&format!("alertname: {alert}\n")),
            "alert {alert} has no promtool unit test in {}",
            dir.display()
        );
    }
}

#[test]
fn rules_match_the_app_label_both_scrape_configs_set() {
    let rules = std::fs::read_to_string(deploy().join("prometheus/dg-audit.rules.yml"))
        .expect("rules file");
    for line in rules.lines().filter(|l| l.trim().starts_with("expr:")) {
        assert!(
            !line.contains("job="),
            "a rule matches on the job name, which differs between scrape configs: {line}"
        );
    }
    for file in ["prometheus.yml", "prometheus-kubernetes.yml"] {
        let text =
            std::fs::read_to_string(deploy().join("prometheus").join(file)).expect("scrape config");
        assert!(
            text.contains("      - target_label: app\n        replacement: dg-audit\n"),
            "{file} does not set app=\"dg-audit\" by relabeling"
        );
    }
}

#[test]
fn scrape_configs_pass_promtool_check_config() {
    if !promtool_present("scrape_configs_pass_promtool_check_config") {
        return;
    }
    promtool(
        &[
            "check",
            "config",
            path_str(&deploy().join("prometheus/prometheus.yml")),
        ],
        None,
    );
    // Debian's promtool is built without Kubernetes discovery: check the Kubernetes job as is
    // when this promtool knows kubernetes_sd_configs, else with the discovery block swapped for
    // a static target (the relabeling, the part dg-audit's rules depend on, is still checked).
    let k8s = deploy().join("prometheus/prometheus-kubernetes.yml");
    let full = Command::new("promtool")
        .args(["check", "config", path_str(&k8s)])
        .output()
        .expect("promtool runs");
    let said = format!(
        "{}{}",
        String::from_utf8_lossy(&full.stdout),
        String::from_utf8_lossy(&full.stderr)
    );
    if full.status.success() {
        return;
    }
    assert!(
        said.contains("field kubernetes_sd_configs not found"),
        "promtool check config {}:\n{said}",
        k8s.display()
    );
    let text = std::fs::read_to_string(&k8s).expect("kubernetes scrape config");
    let start = text
        .find("    kubernetes_sd_configs:\n")
        .expect("kubernetes_sd_configs block");
    let end = start
        + text[start..]
            .find("    relabel_configs:\n")
            .expect("relabel");
    let swapped = format!(
        "{}    static_configs:\n      - targets: [\"10.0.0.5:9464\"]\n{}",
        &text[..start],
        &text[end..]
    );
    let dir = std::env::temp_dir().join(format!("dg-audit-deploy-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("temp dir");
    let copy = dir.join("prometheus-kubernetes.yml");
    std::fs::write(&copy, swapped).expect("copy written");
    promtool(&["check", "config", path_str(&copy)], None);
    let _ = std::fs::remove_dir_all(&dir);
}

/// The exposition dg-audit serves, with every family holding samples (a live engine's policy,
/// one source host, alerts, durations).
fn rendered_metrics() -> String {
    use dg_audit::live::metrics::{Metrics, PolicyLimits};
    let m = Metrics::new();
    {
        let mut s = m.lock();
        s.capture_up = true;
        s.start_time_seconds = 1_700_000_000.25;
        s.frames = 10;
        s.packets = 9;
        s.licensing_minute_bytes.insert("192.0.2.10".into(), 3000);
        s.licensing_bytes_total.insert("192.0.2.10".into(), 9000);
        s.checkins.insert("192.0.2.10".into(), 3);
        s.last_checkin_seconds
            .insert("192.0.2.10".into(), 1_700_000_060.5);
        s.overdue.insert("192.0.2.10".into(), false);
        s.durations.observe(0.2);
        s.alerts.insert(("DEST".into(), "violation".into()), 2);
        s.alerts.insert(("TLS".into(), "finding".into()), 1);
        s.policy = Some(PolicyLimits {
            max_egress_bytes_per_minute: 8192,
            cadence_seconds: 60,
            cadence_tolerance_seconds: 15,
        });
    }
    m.render()
}

#[test]
fn rendered_metrics_pass_promtool_check_metrics() {
    let text = rendered_metrics();
    for name in [
        "dg_audit_build_info{version=\"",
        "dg_audit_policy_max_egress_bytes_per_minute 8192\n",
        "dg_audit_policy_cadence_seconds 60\n",
        "dg_audit_policy_cadence_tolerance_seconds 15\n",
    ] {
        assert!(text.contains(name), "no {name} in\n{text}");
    }
    if cfg!(target_os = "linux") {
        for name in [
            "process_cpu_seconds_total",
            "process_resident_memory_bytes",
            "process_start_time_seconds",
            "process_open_fds",
        ] {
            let value = text
                .lines()
                .find_map(|l| l.strip_prefix(&format!("{name} ")))
                .unwrap_or_else(|| panic!("no {name} in\n{text}"));
            let v: f64 = value.parse().expect("a number");
            // A fresh test process may not have used a clock tick of CPU yet.
            let least = if name == "process_cpu_seconds_total" {
                0.0
            } else {
                1.0
            };
            assert!(v >= least, "{name} = {v}");
        }
    }
    if !promtool_present("rendered_metrics_pass_promtool_check_metrics") {
        return;
    }
    let said = promtool(&["check", "metrics"], Some(&text));
    assert!(
        said.trim().is_empty(),
        "promtool check metrics has remarks:\n{said}"
    );
}

/// Every PromQL query of a Grafana dashboard: panel targets (rows' nested panels included),
/// annotation queries, and the selector of `label_values(...)` template variables.
fn dashboard_queries(doc: &serde_json::Value) -> Vec<(String, String)> {
    fn panels(list: &serde_json::Value, out: &mut Vec<(String, String)>) {
        for p in list.as_array().into_iter().flatten() {
            let title = p["title"].as_str().unwrap_or("?").to_string();
            if p["type"] != "row" {
                let targets = p["targets"].as_array().map(Vec::len).unwrap_or(0);
                assert!(targets > 0, "panel {title:?} has no query");
                assert_eq!(
                    p["datasource"]["uid"], "${datasource}",
                    "panel {title:?} does not use the datasource variable"
                );
            }
            for t in p["targets"].as_array().into_iter().flatten() {
                let expr = t["expr"].as_str().expect("every target has a PromQL expr");
                out.push((format!("panel {title:?} {}", t["refId"]), expr.to_string()));
            }
            panels(&p["panels"], out);
        }
    }
    let mut out = Vec::new();
    panels(&doc["panels"], &mut out);
    for a in doc["annotations"]["list"].as_array().into_iter().flatten() {
        if let Some(expr) = a["expr"].as_str() {
            out.push((format!("annotation {}", a["name"]), expr.to_string()));
        }
    }
    for v in doc["templating"]["list"].as_array().into_iter().flatten() {
        if let Some(def) = v["definition"].as_str() {
            let inner = def
                .strip_prefix("label_values(")
                .and_then(|d| d.strip_suffix(')'))
                .and_then(|d| d.rsplit_once(','))
                .map(|(selector, _label)| selector.trim())
                .unwrap_or_else(|| panic!("variable {} is not label_values(): {def}", v["name"]));
            out.push((format!("variable {}", v["name"]), inner.to_string()));
        }
    }
    out
}

/// Grafana's variables replaced by what they expand to (`$instance` at "All" is `.*`).
fn substitute_variables(expr: &str) -> String {
    let out = expr
        .replace("$__rate_interval", "5m")
        .replace("$__interval", "1m")
        .replace("$__range", "1h")
        .replace("${instance}", ".*")
        .replace("$instance", ".*");
    assert!(!out.contains('$'), "unknown variable left in {out}");
    out
}

/// The identifiers of a PromQL expression that are metric names: outside quoted strings,
/// starting with dg-audit's or the process metrics' prefix, or followed by a selector.
fn metric_names(expr: &str) -> Vec<String> {
    let mut plain = String::new();
    let mut quote = None;
    for c in expr.chars() {
        match quote {
            Some(q) if c == q => quote = None,
            Some(_) => {}
            None if c == '"' || c == '\'' || c == '`' => {
                quote = Some(c);
                plain.push(' ');
            }
            None => plain.push(c),
        }
    }
    let mut names = Vec::new();
    let bytes: Vec<char> = plain.chars().collect();
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i].is_ascii_alphabetic() || bytes[i] == '_' {
            let start = i;
            while i < bytes.len() && (bytes[i].is_ascii_alphanumeric() || bytes[i] == '_') {
                i += 1;
            }
            let word: String = bytes[start..i].iter().collect();
            let selector = bytes.get(i) == Some(&'{');
            if word.starts_with("dg_audit_") || word.starts_with("process_") || selector {
                names.push(word);
            }
        } else {
            i += 1;
        }
    }
    names
}

#[test]
fn grafana_dashboard_queries_pass_promtool_and_use_rendered_metrics() {
    let path = deploy().join("grafana/dg-audit.json");
    let doc: serde_json::Value =
        serde_json::from_slice(&std::fs::read(&path).expect("dashboard exists"))
            .expect("dashboard is JSON");
    let queries = dashboard_queries(&doc);
    assert!(queries.len() >= 10, "{queries:?}");

    // Each metric named exists in what dg-audit renders (`up` is Prometheus's own).
    let rendered = rendered_metrics();
    let samples: std::collections::BTreeSet<&str> = rendered
        .lines()
        .filter(|l| !l.starts_with('#'))
        .filter_map(|l| l.split(['{', ' ']).next())
        .collect();
    let mut used = std::collections::BTreeSet::new();
    for (at, expr) in &queries {
        for name in metric_names(expr) {
            assert!(
                name == "up" || samples.contains(name.as_str()),
                "{at} uses {name}, which dg-audit does not render: {expr}"
            );
            used.insert(name);
        }
        assert!(
            expr.contains("app=\"dg-audit\""),
            "{at} does not select app=\"dg-audit\": {expr}"
        );
    }
    for needed in [
        "dg_audit_licensing_minute_egress_bytes",
        "dg_audit_policy_max_egress_bytes_per_minute",
        "dg_audit_licensing_checkins_total",
        "dg_audit_policy_cadence_seconds",
        "dg_audit_violations_total",
        "dg_audit_capture_drops_total",
    ] {
        assert!(used.contains(needed), "the dashboard draws no {needed}");
    }

    // Every query, variables substituted, as a recording rule: promtool parses the PromQL.
    if !promtool_present("grafana_dashboard_queries_pass_promtool_and_use_rendered_metrics") {
        return;
    }
    let mut rules = String::from("groups:\n  - name: dg-audit-dashboard\n    rules:\n");
    for (i, (at, expr)) in queries.iter().enumerate() {
        let expr = substitute_variables(expr);
        rules.push_str(&format!(
            "      # {}\n      - record: dg_audit_dashboard:query_{i}\n        expr: |\n          {expr}\n",
            at.replace('\n', " ")
        ));
    }
    let dir = std::env::temp_dir().join(format!("dg-audit-grafana-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("temp dir");
    let file = dir.join("dashboard.rules.yml");
    std::fs::write(&file, &rules).expect("rules written");
    let said = promtool(&["check", "rules", path_str(&file)], None);
    assert!(
        said.contains(&format!("SUCCESS: {} rules found", queries.len())),
        "{said}\n{rules}"
    );
    let _ = std::fs::remove_dir_all(&dir);
}
