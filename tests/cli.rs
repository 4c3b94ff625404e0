//! Command-line behaviour that is not tied to one capture: the flow-table cap, the policy
//! commands, the Zeek output's header, and tcpdump's habits (options anywhere, `--`, -F, -D,
//! -n), completions, the man page and colour.

use std::path::PathBuf;

use crate::util::{captures_dir, corpus_dir, dg_audit, flows_json};

#[test]
fn the_flow_table_cap_evicts_counts_and_marks_the_run_incomplete() {
    let file = corpus_dir().join("zeek-wikipedia.pcap");
    let (_, full, _) = flows_json(&file);
    let out = dg_audit(&[
        "flows",
        "--format",
        "json",
        "--max-flows",
        "4",
        file.to_str().unwrap(),
    ]);
    assert_eq!(out.status.code(), Some(0), "eviction is not an input error");
    let capped: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    crate::util::assert_schema("flows", &capped);
    assert_eq!(capped["complete"], false);
    let evicted = capped["flow_stats"]["evicted"].as_u64().unwrap();
    assert!(evicted > 0);
    let flows = capped["flows"].as_array().unwrap();
    let evicted_records = flows
        .iter()
        .filter(|f| f["end_reason"] == "evicted")
        .count() as u64;
    assert_eq!(
        evicted_records, evicted,
        "every eviction is a record, none is lost"
    );
    // Nothing is dropped: packets and IP bytes over all records equal the uncapped run's.
    let total = |doc: &serde_json::Value, field: &str| -> u64 {
        doc["flows"]
            .as_array()
            .unwrap()
            .iter()
            .map(|f| f[field].as_u64().unwrap())
            .sum()
    };
    for field in ["orig_pkts", "resp_pkts", "orig_ip_bytes", "resp_ip_bytes"] {
        assert_eq!(total(&capped, field), total(&full, field), "{field}");
    }
    assert!(capped["flow_stats"]["max_concurrent"].as_u64().unwrap() <= 4);
}

#[test]
fn policy_show_prints_a_policy_that_checks() {
    let shown = dg_audit(&["policy", "show"]);
    assert_eq!(shown.status.code(), Some(0));
    let path = std::env::temp_dir().join(format!("dg-audit-policy-{}.toml", std::process::id()));
    std::fs::write(&path, &shown.stdout).unwrap();
    let checked = dg_audit(&["policy", "check", path.to_str().unwrap()]);
    assert_eq!(
        checked.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&checked.stderr)
    );
    assert!(String::from_utf8_lossy(&checked.stdout).contains("valid (schema_version 1"));
}

#[test]
fn policy_check_names_file_line_and_column_and_exits_2() {
    let path =
        std::env::temp_dir().join(format!("dg-audit-bad-policy-{}.toml", std::process::id()));
    std::fs::write(
        &path,
        "schema_version = 1\n[licensing]\nservers = [\"license.deepgram.com\"]\n",
    )
    .unwrap();
    let out = dg_audit(&["policy", "check", path.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&out.stderr);
    let name = path.file_name().unwrap().to_str().unwrap();
    assert!(
        stderr.contains(&format!("{name}:3:")),
        "file and line: {stderr}"
    );
    assert!(stderr.contains("needs a port"), "what is wrong: {stderr}");
}

#[test]
fn policy_init_refuses_to_overwrite() {
    let path = std::env::temp_dir().join(format!("dg-audit-init-{}.toml", std::process::id()));
    let _ = std::fs::remove_file(&path);
    assert_eq!(
        dg_audit(&["policy", "init", path.to_str().unwrap()])
            .status
            .code(),
        Some(0)
    );
    assert_eq!(
        dg_audit(&["policy", "init", path.to_str().unwrap()])
            .status
            .code(),
        Some(2)
    );
}

#[test]
fn zeek_output_has_the_header_zeek_cut_reads() {
    let file = corpus_dir().join("zeek-http-get.pcap");
    let out = dg_audit(&["flows", "--format", "zeek", file.to_str().unwrap()]);
    let text = String::from_utf8(out.stdout).unwrap();
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines[0], "#separator \\x09");
    let fields = lines.iter().find(|l| l.starts_with("#fields\t")).unwrap();
    let types = lines.iter().find(|l| l.starts_with("#types\t")).unwrap();
    assert_eq!(fields.split('\t').count(), types.split('\t').count());
    let row = lines.iter().find(|l| !l.starts_with('#')).unwrap();
    assert_eq!(row.split('\t').count(), fields.split('\t').count() - 1);
    // The one connection of this trace, as Zeek logs it (its baseline is in the corpus).
    assert!(row.contains("\tSF\t"), "{row}");
    assert!(row.contains("\tShADadFf\t7\t512\t7\t5379\t"), "{row}");
}

#[test]
fn several_files_are_read_as_one_stream_in_time_order() {
    let a = corpus_dir().join("zeek-http-get.pcap");
    let b = corpus_dir().join("gopacket-test_dns.pcap");
    let (_, doc_a, _) = flows_json(&a);
    let (_, doc_b, _) = flows_json(&b);
    let out = dg_audit(&[
        "flows",
        "--format",
        "json",
        a.to_str().unwrap(),
        "-r",
        b.to_str().unwrap(),
    ]);
    assert_eq!(out.status.code(), Some(0));
    let both: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    crate::util::assert_schema("flows", &both);
    let flows = both["flows"].as_array().unwrap();
    // Both files have flows, so time order across them is something to check.
    assert!(!doc_a["flows"].as_array().unwrap().is_empty());
    assert!(!doc_b["flows"].as_array().unwrap().is_empty());
    assert_eq!(
        flows.len(),
        doc_a["flows"].as_array().unwrap().len() + doc_b["flows"].as_array().unwrap().len()
    );
    let starts: Vec<i64> = flows
        .iter()
        .map(|f| f["ts_nanos"].as_i64().unwrap())
        .collect();
    assert!(
        starts.windows(2).all(|w| w[0] <= w[1]),
        "flows in time order"
    );
    assert_eq!(both["inputs"].as_array().unwrap().len(), 2);
    assert_eq!(both["inputs"][0]["sha256"], doc_a["inputs"][0]["sha256"]);
    assert_eq!(both["inputs"][1]["sha256"], doc_b["inputs"][0]["sha256"]);
}

#[test]
fn a_trailing_bpf_expression_selects_frames_as_zeek_and_tcpdump_do() {
    // Zeek's smtp.pcap baseline was made with `-f 'tcp port 25'`: the same filter must give
    // exactly its two connections, with its histories.
    let file = corpus_dir().join("zeek-smtp.pcap");
    let out = dg_audit(&[
        "flows",
        "--format",
        "json",
        file.to_str().unwrap(),
        "tcp",
        "port",
        "25",
    ]);
    assert_eq!(out.status.code(), Some(0));
    let doc: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    crate::util::assert_schema("flows", &doc);
    assert_eq!(doc["filter"], "tcp port 25");
    let histories: Vec<&str> = doc["flows"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| f["history"].as_str().unwrap())
        .collect();
    assert_eq!(histories, ["ShAdDaTFf", "ShAdDa"]);
    let (_, all, _) = flows_json(&file);
    let frames = all["decode"]["frames"].as_u64().unwrap();
    assert_eq!(
        doc["decode"]["frames"].as_u64().unwrap() + doc["filtered_frames"].as_u64().unwrap(),
        frames
    );
    // The audit states the filter it was limited to.
    let out = dg_audit(&[
        "analyze",
        "--format",
        "json",
        file.to_str().unwrap(),
        "tcp",
        "port",
        "25",
    ]);
    let audit: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    crate::util::assert_schema("audit", &audit);
    assert_eq!(audit["capture"]["filter"], "tcp port 25");
    let capture = crate::util::control(&audit, "CAPTURE");
    assert!(capture["evidence"][0]["what"]
        .as_str()
        .unwrap()
        .contains("tcp port 25"));
    // A bad expression and a missing capture are errors that say which.
    let bad = dg_audit(&["flows", file.to_str().unwrap(), "tcp", "prot", "25"]);
    assert_eq!(bad.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&bad.stderr).contains("tcp prot 25"));
    let missing = dg_audit(&["flows", "no-such-capture.pcap", "tcp"]);
    assert_eq!(missing.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&missing.stderr).contains("no-such-capture.pcap: no such file"));
}

/// Runs dg-audit with `args` and the environment `env` added (whatever the exit code).
fn dg_audit_env(args: &[&str], env: &[(&str, &str)]) -> std::process::Output {
    let mut cmd = assert_cmd::Command::cargo_bin("dg-audit").expect("dg-audit binary is built");
    cmd.args(args);
    for (k, v) in env {
        cmd.env(k, v);
    }
    cmd.env_remove("DG_AUDIT_LOG");
    cmd.output().expect("dg-audit runs")
}

fn smtp() -> String {
    corpus_dir()
        .join("zeek-smtp.pcap")
        .to_str()
        .unwrap()
        .to_string()
}

fn flows_doc(args: &[&str]) -> serde_json::Value {
    let out = dg_audit(args);
    assert_eq!(
        out.status.code(),
        Some(0),
        "{args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).expect("flows JSON")
}

fn temp_file(tag: &str, text: &str) -> PathBuf {
    let path = std::env::temp_dir().join(format!("dg-audit-{tag}-{}", std::process::id()));
    std::fs::write(&path, text).unwrap();
    path
}

/// Root can open `lo`; otherwise the live parts of a test print a SKIP line (and fail under
/// CI=true, which runs as root).
fn can_capture(test: &str) -> bool {
    if nix::unistd::geteuid().is_root() {
        return true;
    }
    assert!(
        std::env::var("CI").map_or(true, |v| v != "true"),
        "cli::{test} needs root under CI=true"
    );
    println!("SKIP cli::{test}: not root, cannot open lo");
    false
}

#[test]
fn options_after_the_filter_words_are_options_not_filter() {
    let file = smtp();
    let doc = flows_doc(&[
        "flows", &file, "tcp", "port", "25", "--format", "json", "-n",
    ]);
    assert_eq!(doc["filter"], "tcp port 25");
    assert_eq!(doc["flows"].as_array().unwrap().len(), 2);
    let doc = flows_doc(&["flows", &file, "tcp", "--format", "json", "port", "25"]);
    assert_eq!(doc["filter"], "tcp port 25", "options between filter words");
    if can_capture("options_after_the_filter_words_are_options_not_filter") {
        let out = dg_audit(&[
            "live",
            "-i",
            "lo",
            "tcp",
            "port",
            "443",
            "--duration",
            "1",
            "-n",
        ]);
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(0), "{stderr}");
        assert!(stderr.contains("filter \"tcp port 443\""), "{stderr}");
    }
}

#[test]
fn everything_after_double_dash_is_the_filter() {
    let file = smtp();
    let doc = flows_doc(&[
        "flows", "--format", "json", &file, "--", "tcp", "port", "25",
    ]);
    assert_eq!(doc["filter"], "tcp port 25");
    assert_eq!(doc["flows"].as_array().unwrap().len(), 2);
    // After `--` a word that names a file is still a filter word; before it, a capture.
    let out = dg_audit(&["flows", &file, "--", &file]);
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("filter"));
    if can_capture("everything_after_double_dash_is_the_filter") {
        let out = dg_audit(&[
            "live",
            "-i",
            "lo",
            "--duration",
            "1",
            "--",
            "udp",
            "port",
            "53",
        ]);
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(0), "{stderr}");
        assert!(stderr.contains("filter \"udp port 53\""), "{stderr}");
    }
}

#[test]
fn an_unknown_flag_is_an_error_that_names_it() {
    let file = smtp();
    for args in [
        vec!["live", "-i", "lo", "tcp", "port", "443", "--bogus-flag"],
        vec!["flows", file.as_str(), "tcp", "--bogus-flag"],
        vec!["analyze", "--bogus-flag", file.as_str()],
    ] {
        let out = dg_audit(&args);
        assert_eq!(out.status.code(), Some(2), "{args:?}");
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(stderr.contains("'--bogus-flag'"), "{args:?}: {stderr}");
        assert!(out.stdout.is_empty());
    }
}

#[test]
fn dash_f_reads_the_filter_from_a_file() {
    let file = smtp();
    let bpf = temp_file(
        "filter.bpf",
        "# SMTP only\ntcp port 25   # the two connections\n",
    );
    let bpf = bpf.to_str().unwrap();
    let doc = flows_doc(&["flows", "--format", "json", "-F", bpf, &file]);
    assert_eq!(doc["filter"], "tcp port 25");
    assert_eq!(doc["flows"].as_array().unwrap().len(), 2);
    let out = dg_audit(&["analyze", "--format", "json", &file, "-F", bpf]);
    let audit: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(audit["capture"]["filter"], "tcp port 25");
    // The filter given twice is an error, not a guess.
    let out = dg_audit(&["flows", "-F", bpf, &file, "udp"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("given twice"));
    if can_capture("dash_f_reads_the_filter_from_a_file") {
        let out = dg_audit(&["live", "-i", "lo", "-F", bpf, "--duration", "1"]);
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(0), "{stderr}");
        assert!(stderr.contains("filter \"tcp port 25\""), "{stderr}");
    }
}

#[test]
fn dash_d_lists_the_interfaces_as_tcpdump_does() {
    if !can_capture("dash_d_lists_the_interfaces_as_tcpdump_does") {
        return;
    }
    let out = dg_audit(&["live", "-D"]);
    assert_eq!(out.status.code(), Some(0));
    let text = String::from_utf8(out.stdout).unwrap();
    assert!(
        text.lines()
            .any(|l| l.contains(".lo ") && l.contains("Loopback")),
        "{text}"
    );
    assert!(text.lines().all(|l| l
        .split_once('.')
        .is_some_and(|(n, _)| n.parse::<u32>().is_ok())));
}

#[test]
fn completions_and_the_man_page() {
    let out = dg_audit(&["completions", "bash"]);
    assert_eq!(out.status.code(), Some(0));
    let script = String::from_utf8(out.stdout).unwrap();
    assert!(script.contains("dg-audit"), "{script}");
    assert!(script.contains("complete "), "a bash completion script");
    for shell in ["zsh", "fish", "elvish", "powershell"] {
        let out = dg_audit(&["completions", shell]);
        assert_eq!(out.status.code(), Some(0), "{shell}");
        assert!(String::from_utf8_lossy(&out.stdout).contains("dg-audit"));
    }
    let out = dg_audit(&["man"]);
    assert_eq!(out.status.code(), Some(0));
    let page = String::from_utf8(out.stdout).unwrap();
    // The roff header: after the string definition for apostrophes, .TH comes before all else.
    let first = page
        .lines()
        .find(|l| !l.starts_with(".ie ") && !l.starts_with(".el "))
        .unwrap();
    assert!(first.starts_with(".TH dg-audit 1"), "{first}");
    assert!(page.lines().next().unwrap().starts_with('.'), "roff");
    assert!(page.contains(".SH NAME") && page.contains("completions"));
    // A command's own page has its options, which the top page leaves to it.
    let out = dg_audit(&["man", "live"]);
    assert_eq!(out.status.code(), Some(0));
    let page = String::from_utf8(out.stdout).unwrap();
    assert!(page.contains(".TH dg-audit-live 1"), "{page}");
    assert!(page.contains("list\\-interfaces"), "{page}");
    assert_eq!(dg_audit(&["man", "nope"]).status.code(), Some(2));
}

#[test]
fn colour_follows_color_and_no_color() {
    // A capture cut short in its last record: the reader logs a warning, so both the verdict
    // text (stdout) and a log line (stderr) are written.
    let whole = std::fs::read(captures_dir().join("compliant-direct.pcap")).unwrap();
    let capture = std::env::temp_dir().join(format!("dg-audit-colour-{}.pcap", std::process::id()));
    std::fs::write(&capture, &whole[..whole.len() - 7]).unwrap();
    let base = ["analyze", capture.to_str().unwrap()];
    let run = |extra: &[&str], env: &[(&str, &str)]| {
        let args: Vec<&str> = base.iter().chain(extra).copied().collect();
        let out = dg_audit_env(&args, env);
        assert!(out.status.code().is_some_and(|c| c != 2), "{args:?}");
        (
            String::from_utf8(out.stdout).unwrap(),
            String::from_utf8(out.stderr).unwrap(),
        )
    };
    // Off a terminal (as here) auto, never and NO_COLOR print no ANSI code, logs included.
    for (extra, env) in [
        (&[][..], &[][..]),
        (&["--color", "never"][..], &[][..]),
        (&["--color", "auto"][..], &[("NO_COLOR", "1")][..]),
    ] {
        let (stdout, stderr) = run(extra, env);
        assert!(stdout.starts_with("dg-audit verdict: "), "{stdout}");
        assert!(stderr.contains("WARN"), "a log line: {stderr}");
        assert!(!stdout.contains("\x1b["), "{extra:?} {env:?}: {stdout}");
        assert!(!stderr.contains("\x1b["), "{extra:?} {env:?}: {stderr}");
    }
    // --color always paints the verdict text (and the log lines), NO_COLOR or not.
    let (stdout, stderr) = run(&["--color", "always"], &[("NO_COLOR", "1")]);
    assert!(stdout.contains("\x1b["), "{stdout}");
    assert!(stderr.contains("\x1b["), "{stderr}");
    std::fs::remove_file(&capture).unwrap();
}

#[test]
fn a_missing_policy_file_says_its_cause_once() {
    let capture = captures_dir().join("compliant-direct.pcap");
    let missing = std::env::temp_dir().join("dg-audit-no-such-policy.toml");
    for args in [
        vec![
            "analyze",
            capture.to_str().unwrap(),
            "--policy",
            missing.to_str().unwrap(),
        ],
        vec!["policy", "check", missing.to_str().unwrap()],
    ] {
        let out = dg_audit(&args);
        assert_eq!(out.status.code(), Some(2));
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(
            stderr.matches("No such file or directory").count(),
            1,
            "{stderr}"
        );
        assert!(stderr.contains("dg-audit-no-such-policy.toml"), "{stderr}");
        assert_eq!(stderr.lines().count(), 1, "{stderr}");
    }
}
