//! Fuzz campaigns on the stable toolchain (see `fuzz/harness.rs`); run through `scripts/fuzz.sh`.
//!
//! `fuzz [--iterations N] [--target T]... [--seed S] [--crash-dir DIR] [--repo DIR]`
//! `fuzz --replay FILE... [--target T]...` runs saved inputs uncaught, to see the panic.
//! prints, per target, the inputs tried and the crashes found, and exits 1 when any input panicked.

#[path = "../fuzz/harness.rs"]
mod harness;

use std::path::PathBuf;
use std::time::Instant;

use harness::{campaign, seed_files, Seeds, Target};

fn main() {
    let mut iterations: u64 = 100_000;
    let mut targets = Vec::new();
    let mut seed: u64 = 1;
    let mut repo = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    let mut crash_dir = None;
    let mut replay = Vec::new();
    let mut args = std::env::args().skip(1);
    while let Some(arg) = args.next() {
        let mut value = || {
            args.next().unwrap_or_else(|| {
                eprintln!("fuzz: {arg} needs a value");
                std::process::exit(2)
            })
        };
        match arg.as_str() {
            "--iterations" => iterations = value().parse().expect("--iterations: a number"),
            "--seed" => seed = value().parse().expect("--seed: a number"),
            "--repo" => repo = PathBuf::from(value()),
            "--crash-dir" => crash_dir = Some(PathBuf::from(value())),
            "--replay" => replay.push(PathBuf::from(value())),
            "--target" => {
                let name = value();
                match Target::from_name(&name) {
                    Some(t) => targets.push(t),
                    None => {
                        let names: Vec<_> = Target::ALL.iter().map(|t| t.name()).collect();
                        eprintln!("fuzz: unknown target {name:?}; one of {}", names.join(", "));
                        std::process::exit(2);
                    }
                }
            }
            other => {
                eprintln!("fuzz: unknown argument {other:?}");
                std::process::exit(2);
            }
        }
    }
    if targets.is_empty() {
        targets = Target::ALL.to_vec();
    }
    if !replay.is_empty() {
        // Runs inputs without catching anything: the panic and its backtrace print as usual.
        for path in &replay {
            let input = std::fs::read(path).expect("--replay: readable file");
            for &target in &targets {
                eprintln!("fuzz: replaying {} on {}", path.display(), target.name());
                harness::run(target, &input);
            }
        }
        return;
    }
    let crash_dir = crash_dir.unwrap_or_else(|| repo.join("fuzz/crashes"));
    let started = Instant::now();
    let seeds = Seeds::load(&seed_files(&repo), 32 << 10);
    eprintln!(
        "fuzz: seeds loaded in {:.1}s; crashes go to {}",
        started.elapsed().as_secs_f64(),
        crash_dir.display()
    );
    let mut any = false;
    println!("target      inputs-tried  panicking-inputs  distinct-crashes  seeds  seconds");
    for target in targets {
        let started = Instant::now();
        let report = campaign(
            target,
            seeds.get(target),
            iterations,
            seed,
            Some(&crash_dir),
        );
        println!(
            "{:<10} {:>13} {:>17} {:>17} {:>6} {:>8.1}",
            target.name(),
            report.tried,
            report.panicking_inputs,
            report.crashes.len(),
            seeds.get(target).len(),
            started.elapsed().as_secs_f64()
        );
        for (location, crash) in &report.crashes {
            any = true;
            println!(
                "  crash at {location} ({} inputs; smallest {} bytes, saved as crash-{:016x}.bin): {}",
                crash.hits,
                crash.input.len(),
                harness::fnv1a(&crash.input),
                crash.message
            );
        }
    }
    std::process::exit(i32::from(any));
}
