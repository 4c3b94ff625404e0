//! The house rules of ARCHITECTURE.md, checked on the source: each top-level module imports only
//! from floors below it (no import circles), clap stays in `cli`, and the ideas that must have one
//! home (the check-in rule, control ids, time units) are written once.

use std::path::{Path, PathBuf};

/// Floors from the bottom up. A module may import from its own floor's module and from lower
/// floors only.
const FLOORS: &[&str] = &[
    "units", "source", "decode", "inspect", "names", "flow", "pipeline", "policy", "audit",
    "report", "live", "cli",
];

fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) {
    for entry in std::fs::read_dir(dir).expect("readable source folder") {
        let path = entry.expect("directory entry").path();
        if path.is_dir() {
            rust_files(&path, out);
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push(path);
        }
    }
}

fn src() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("src")
}

/// The top-level module a source file belongs to (`src/audit/controls/dns.rs` -> `audit`).
fn module_of(path: &Path) -> Option<String> {
    let rel = path.strip_prefix(src()).ok()?;
    let first = rel.components().next()?.as_os_str().to_string_lossy();
    Some(first.trim_end_matches(".rs").to_string())
}

/// Code lines only: comment lines would name modules they do not import.
fn code(text: &str) -> impl Iterator<Item = &str> {
    text.lines().filter(|l| !l.trim_start().starts_with("//"))
}

/// Lines of `src/` files (tests excluded: code after `#[cfg(test)]` may build fixtures freely).
fn non_test_code(path: &Path) -> String {
    let text = std::fs::read_to_string(path).expect("readable source file");
    let text = text.split("#[cfg(test)]").next().unwrap_or_default();
    code(text).collect::<Vec<_>>().join("\n")
}

#[test]
fn no_module_imports_from_a_higher_floor() {
    let mut files = Vec::new();
    rust_files(&src(), &mut files);
    let mut problems = Vec::new();
    for file in &files {
        let Some(module) = module_of(file) else {
            continue;
        };
        let Some(floor) = FLOORS.iter().position(|m| *m == module) else {
            continue; // lib.rs, main.rs
        };
        let text = std::fs::read_to_string(file).expect("readable source file");
        for line in code(&text) {
            for (i, _) in line.match_indices("crate::") {
                let used: String = line[i + 7..]
                    .chars()
                    .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
                    .collect();
                if let Some(used_floor) = FLOORS.iter().position(|m| *m == used) {
                    if used_floor > floor {
                        problems.push(format!(
                            "{}: {module} imports {used} (a higher floor): {}",
                            file.display(),
                            line.trim()
                        ));
                    }
                }
            }
        }
    }
    assert!(problems.is_empty(), "{}", problems.join("\n"));
}

#[test]
fn only_cli_knows_the_argument_parser() {
    let mut files = Vec::new();
    rust_files(&src(), &mut files);
    let offenders: Vec<_> = files
        .iter()
        .filter(|f| !matches!(module_of(f).as_deref(), Some("cli") | Some("main")))
        .filter(|f| non_test_code(f).contains("clap"))
        .map(|f| f.display().to_string())
        .collect();
    assert!(offenders.is_empty(), "clap outside cli: {offenders:?}");
}

/// Files outside `home` whose non-test code contains `needle`.
fn written_outside(needle: &str, home: &str) -> Vec<String> {
    let mut files = Vec::new();
    rust_files(&src(), &mut files);
    files
        .iter()
        .filter(|f| !f.ends_with(home) && !f.ends_with("tests.rs"))
        .filter(|f| non_test_code(f).contains(needle))
        .map(|f| f.display().to_string())
        .collect()
}

#[test]
fn the_check_in_rule_control_ids_and_units_are_written_once() {
    // The check-in rule: what "answered" means.
    assert_eq!(
        written_outside("ConnState::REJ | ConnState::S0", "audit/checkins.rs"),
        Vec::<String>::new()
    );
    // Control ids as text.
    for id in ["\"DEST\"", "\"CADENCE\"", "\"CREDENTIAL\"", "\"CAPTURE\""] {
        assert_eq!(
            written_outside(id, "audit/document.rs"),
            Vec::<String>::new(),
            "{id}"
        );
    }
    // Time units.
    for unit in ["1_000_000_000", "60_000_000_000", "/ 1e9"] {
        assert_eq!(
            written_outside(unit, "units.rs"),
            Vec::<String>::new(),
            "{unit}"
        );
    }
}
