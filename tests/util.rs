//! Shared helpers for the end-to-end tests: run the built binary, find shared test data.

use std::path::{Path, PathBuf};
use std::process::Output;

use assert_cmd::Command;

/// The shared corpus of public captures with tshark oracles (beside the repository).
pub fn corpus_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../shared/corpus")
}

/// The license key written in clear into captures/plaintext-licensing.pcap (the example key of
/// Deepgram's documentation). It must never appear unredacted in any output.
pub const LICENSE_KEY: &str = "f1037f690e1c05405b0a71b8fc1df3d453b1bcad";

/// The project's own recorded captures.
pub fn captures_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("captures")
}

/// Runs dg-audit with `args` and returns its output (whatever the exit code).
pub fn dg_audit(args: &[&str]) -> Output {
    Command::cargo_bin("dg-audit")
        .expect("dg-audit binary is built")
        .args(args)
        .output()
        .expect("dg-audit runs")
}

/// Validates `doc` against a JSON Schema of the repository (`schema/NAME.schema.json`); panics
/// with every error so a contract break is visible.
pub fn assert_schema(name: &str, doc: &serde_json::Value) {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join(format!("schema/{name}.schema.json"));
    let schema: serde_json::Value =
        serde_json::from_slice(&std::fs::read(&path).expect("schema file exists"))
            .expect("schema is JSON");
    let validator = jsonschema::validator_for(&schema).expect("schema compiles");
    let errors: Vec<String> = validator
        .iter_errors(doc)
        .map(|e| format!("{} at {}", e, e.instance_path))
        .collect();
    assert!(
        errors.is_empty(),
        "{name} document breaks its schema:\n{}",
        errors.join("\n")
    );
}

/// Runs `dg-audit flows --format json FILE`, parses the document and checks its schema.
pub fn flows_json(file: &Path) -> (i32, serde_json::Value, String) {
    let out = dg_audit(&[
        "flows",
        "--format",
        "json",
        file.to_str().expect("utf-8 path"),
    ]);
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    let doc = serde_json::from_slice(&out.stdout).unwrap_or_else(|e| {
        panic!(
            "{}: flows --format json is not JSON ({e}); stderr: {stderr}",
            file.display()
        )
    });
    assert_schema("flows", &doc);
    (out.status.code().unwrap_or(-1), doc, stderr)
}

/// The control `id` of an audit document (panics when it is missing).
pub fn control<'a>(audit: &'a serde_json::Value, id: &str) -> &'a serde_json::Value {
    audit["controls"]
        .as_array()
        .expect("controls is a list")
        .iter()
        .find(|c| c["id"] == id)
        .unwrap_or_else(|| panic!("no control {id}"))
}

/// Every capture in a directory (pcap and pcapng), sorted.
pub fn captures_in(dir: &Path) -> Vec<PathBuf> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(dir)
        .unwrap_or_else(|e| panic!("cannot list {}: {e}", dir.display()))
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| {
            let name = p.file_name().and_then(|n| n.to_str()).unwrap_or("");
            name.ends_with(".pcap") || name.ends_with(".pcapng")
        })
        .collect();
    files.sort();
    files
}
