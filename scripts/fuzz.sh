#!/usr/bin/env bash
# Long fuzz campaigns on the stable toolchain (harness: fuzz/harness.rs, driver: examples/fuzz.rs).
#
#   scripts/fuzz.sh --iterations N [--target T]... [--seed S] [--crash-dir DIR]
#   scripts/fuzz.sh --replay FILE... --target T      # rerun saved inputs uncaught (backtrace)
#
# Targets: decode tls quic dns http file pipeline (all when none is given). Prints, per target, the
# inputs tried and the crashes found; crashing inputs are saved under fuzz/crashes/<target>/ (not
# committed: copy each into tests/fuzz-regressions/<target>/ with its fix, or
# tests/fuzz-regressions/open/<target>/ while it is open). Exits 1 when any input panicked.
#
# Built with the `fuzz` profile (release speed, overflow checks on) so wrapping arithmetic panics
# and is caught instead of passing silently.
set -euo pipefail
cd "$(dirname "$0")/.."
cargo build --quiet --locked --profile fuzz --example fuzz
exec ./target/fuzz/examples/fuzz "$@"
