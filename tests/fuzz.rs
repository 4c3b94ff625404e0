//! Fuzzing in the test suite: every checked-in crash input replays without a panic, and a bounded,
//! deterministic run of each target (same seed, same seeds, same inputs every time) panics on
//! none. Long campaigns: `scripts/fuzz.sh --iterations N [--target T]`.

#[path = "../fuzz/harness.rs"]
mod harness;

use std::path::{Path, PathBuf};

use harness::{campaign, regression_inputs, seed_files, try_run, Seeds, Target};

/// The bounded run's seed: fixed, so a failure reproduces with `scripts/fuzz.sh --seed 20261130`.
const SEED: u64 = 20_261_130;

fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn seeds() -> &'static Seeds {
    static SEEDS: std::sync::OnceLock<Seeds> = std::sync::OnceLock::new();
    SEEDS.get_or_init(|| Seeds::load(&seed_files(&repo()), 16 << 10))
}

/// Runs `iterations` mutants of `target` and fails listing every distinct crash.
fn bounded(target: Target, iterations: u64) {
    let report = campaign(target, seeds().get(target), iterations, SEED, None);
    assert!(
        report.tried > iterations,
        "{}: seeds missing",
        target.name()
    );
    let crashes: Vec<String> = report
        .crashes
        .values()
        .map(|c| format!("{} (input {})", c.message, hex(&c.input)))
        .collect();
    assert!(
        crashes.is_empty(),
        "{}: {} of {} inputs panicked:\n{}",
        target.name(),
        report.panicking_inputs,
        report.tried,
        crashes.join("\n")
    );
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn replay(dir: &Path) {
    let mut failures = Vec::new();
    for (target, path) in regression_inputs(dir) {
        let input = std::fs::read(&path).unwrap();
        if let Err(message) = try_run(target, &input) {
            failures.push(format!(
                "{} on {}: {message}",
                path.display(),
                target.name()
            ));
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

/// Crash inputs found by fuzzing and fixed: they must stay fixed.
#[test]
fn fixed_crash_inputs_replay_without_panic() {
    replay(&repo().join("tests/fuzz-regressions"));
}

#[test]
fn bounded_decode() {
    bounded(Target::Decode, 200_000);
}

#[test]
fn bounded_tls() {
    bounded(Target::Tls, 900_000);
}

#[test]
fn bounded_quic() {
    bounded(Target::Quic, 900_000);
}

#[test]
fn bounded_dns() {
    bounded(Target::Dns, 900_000);
}

#[test]
fn bounded_http() {
    bounded(Target::Http, 900_000);
}

#[test]
fn bounded_file() {
    bounded(Target::File, 300_000);
}

#[test]
fn bounded_pipeline() {
    bounded(Target::Pipeline, 10_000);
}

/// The mutator is deterministic: the same seed gives the same inputs.
#[test]
fn mutator_is_deterministic() {
    let pool = seeds().get(Target::File).to_vec();
    let run = || {
        let mut rng = harness::Rng::new(7);
        (0..200)
            .map(|i| harness::mutate(&mut rng, Target::File, &pool[i % pool.len()], &pool))
            .collect::<Vec<_>>()
    };
    assert_eq!(run(), run());
}
