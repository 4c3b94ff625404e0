//! Command-line behaviour that is not tied to one capture: the flow-table cap, the policy
//! commands, and the Zeek output's header.

use crate::util::{corpus_dir, dg_audit, flows_json};

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
