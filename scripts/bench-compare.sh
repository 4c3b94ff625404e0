#!/usr/bin/env bash
# Whole-binary timings of dg-audit against its peers (tshark, tcpdump) on one capture file.
#
#   bash scripts/bench-compare.sh FILE          (e.g. target/bench/mix-1G.pcap, see
#                                                ../shared/tools/README.md for making it)
#
# Builds dg-audit in release mode, then runs each command RUNS times (default 3; env RUNS=N) under
# `/usr/bin/time -f "%e %M"`, each run right after an untimed read of FILE, and prints the
# machine, the file and a table: median wall time, peak RSS (the largest of the runs), packets/s,
# and the wall-time ratios dg-audit/tshark and dg-audit/tcpdump (below 1: dg-audit is faster).
#
# Why a read before every run and not once: these VMs hand idle page cache back to the host within
# seconds (a kdamond thread runs; a 1 GiB file read 30 s earlier made `tcpdump -w /dev/null` take
# 5.9 s instead of 0.4 s), so a single warm-up read leaves the later runs partly cold.
#
# Exits non-zero if any command fails. A failure is an exit status the command never gives on a
# readable capture: for `dg-audit analyze`, 0, 1 and 3 are verdicts (compliant, violation,
# inconclusive) and count as success; 2 (error) does not. Everything else must exit 0.
set -euo pipefail

die() { echo "bench-compare: $*" >&2; exit 1; }

[ "$#" -eq 1 ] || die "usage: $0 FILE (a pcap or pcapng capture)"
file=$1
[ -r "$file" ] || die "$file: not a readable file"
runs=${RUNS:-3}
[[ "$runs" =~ ^[1-9][0-9]*$ ]] || die "RUNS must be a positive integer, got '$runs'"

root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
timer=/usr/bin/time
[ -x "$timer" ] || die "$timer missing: apt-get update && apt-get install -y time"
for tool in tshark tcpdump cargo; do
  command -v "$tool" >/dev/null 2>&1 || die "$tool not found in PATH"
done

echo "## Build"
(cd "$root" && cargo build --release --quiet) || die "cargo build --release failed"
dg="$root/target/release/dg-audit"
[ -x "$dg" ] || die "$dg missing after the build"

tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT

# --- machine and file ------------------------------------------------------------------------
echo
echo "## Machine"
echo "- date: $(date -u +%Y-%m-%dT%H:%M:%SZ)"
echo "- nproc: $(nproc)"
cpu=$(grep -m1 '^model name' /proc/cpuinfo | cut -d: -f2- | sed 's/^ *//' || true)
echo "- cpu: ${cpu:-unknown}"
echo "- kernel: $(uname -sr)"
echo "- load average at start (1/5/15 min): $(cut -d' ' -f1-3 /proc/loadavg) (other work on the machine skews timings)"
echo "- dg-audit: $(git -C "$root" rev-parse --short HEAD 2>/dev/null || echo '?') (+ working tree), $(rustc -V)"
echo "- tshark: $(tshark --version 2>/dev/null | head -n1)"
echo "- tcpdump: $(tcpdump --version 2>&1 | head -n1), $(tcpdump --version 2>&1 | sed -n 2p)"
echo '```'
free -h
echo '```'

size_bytes=$(stat -c %s "$file")
packets=""
if command -v capinfos >/dev/null 2>&1; then
  # -T -r: one tab-separated line without header; -M: exact numbers, no k/M suffixes.
  packets=$(capinfos -T -r -c -M "$file" 2>/dev/null | cut -f2 || true)
fi
if ! [[ "$packets" =~ ^[0-9]+$ ]]; then
  packets=""
  for truth in "${file%.*}.truth.json" "$file.truth.json"; do
    if [ -r "$truth" ]; then
      if command -v jq >/dev/null 2>&1; then
        packets=$(jq -r '.packets' "$truth")
      else
        packets=$(sed -n 's/^ *"packets": *\([0-9][0-9]*\).*/\1/p' "$truth" | head -n1)
      fi
      break
    fi
  done
fi
[[ "$packets" =~ ^[0-9]+$ ]] || die "cannot count the packets of $file (no capinfos, no truth json)"

echo
echo "## Input"
echo "- file: $file"
echo "- size: $size_bytes bytes ($(awk -v b="$size_bytes" 'BEGIN { printf "%.1f MiB", b / 1048576 }'))"
echo "- packets: $packets"

# --- commands --------------------------------------------------------------------------------
names=("dg-audit flows ndjson" "dg-audit analyze json" "tshark conv tcp+udp" "tcpdump -w /dev/null")
# Exit statuses that mean the command ran to the end (see the header).
ok_codes=("0" "0 1 3" "0" "0")
run_cmd() {
  case "$1" in
    0) "$timer" -f "%e %M" -o "$2" "$dg" flows --format ndjson "$file" -o /dev/null ;;
    1) "$timer" -f "%e %M" -o "$2" "$dg" analyze --format json "$file" -o /dev/null ;;
    2) "$timer" -f "%e %M" -o "$2" tshark -n -r "$file" -q -z conv,tcp -z conv,udp ;;
    3) "$timer" -f "%e %M" -o "$2" tcpdump -n -r "$file" -w /dev/null ;;
  esac
}

echo
echo "## Runs"

declare -a median_s peak_kib all_s
for i in "${!names[@]}"; do
  times=()
  peak=0
  for ((r = 1; r <= runs; r++)); do
    out="$tmp/time.$i.$r"
    # Untimed read so the run starts with the whole file in the page cache (see the header).
    cat -- "$file" >/dev/null
    set +e
    run_cmd "$i" "$out" >"$tmp/stdout.$i" 2>"$tmp/stderr.$i"
    code=$?
    set -e
    if ! [[ " ${ok_codes[$i]} " == *" $code "* ]]; then
      echo "bench-compare: '${names[$i]}' failed (exit $code, run $r); its stderr:" >&2
      tail -n 20 "$tmp/stderr.$i" >&2
      exit 1
    fi
    # With a non-zero exit, time(1) writes "Command exited with non-zero status N" first: the
    # measurement is always the last line.
    read -r wall kib < <(tail -n1 "$out")
    [[ "$wall" =~ ^[0-9.]+$ && "$kib" =~ ^[0-9]+$ ]] || die "unexpected time(1) output: $(cat "$out")"
    times+=("$wall")
    if ((kib > peak)); then peak=$kib; fi
    echo "- ${names[$i]} run $r: ${wall} s, $kib KiB, exit $code"
  done
  median_s[$i]=$(printf '%s\n' "${times[@]}" | sort -g | awk '{ v[NR] = $1 } END { print (NR % 2) ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2 }')
  peak_kib[$i]=$peak
  all_s[$i]="${times[*]}"
done

# --- table -----------------------------------------------------------------------------------
ratio() { awk -v a="$1" -v b="$2" 'BEGIN { if (b > 0) printf "%.2f", a / b; else print "n/a" }'; }
echo
echo "## Results (median of $runs, page cache warm)"
echo
printf '| %-22s | %10s | %13s | %13s | %-20s | %14s | %15s |\n' \
  tool "median s" "peak RSS MiB" "packets/s" "runs s" "time / tshark" "time / tcpdump"
printf '|%s|%s|%s|%s|%s|%s|%s|\n' "$(printf -- '-%.0s' {1..24})" "$(printf -- '-%.0s' {1..12})" \
  "$(printf -- '-%.0s' {1..15})" "$(printf -- '-%.0s' {1..15})" "$(printf -- '-%.0s' {1..22})" \
  "$(printf -- '-%.0s' {1..16})" "$(printf -- '-%.0s' {1..17})"
for i in "${!names[@]}"; do
  pps=$(awk -v p="$packets" -v s="${median_s[$i]}" 'BEGIN { if (s > 0) printf "%.0f", p / s; else print "n/a" }')
  mib=$(awk -v k="${peak_kib[$i]}" 'BEGIN { printf "%.1f", k / 1024 }')
  if ((i < 2)); then
    vs_tshark=$(ratio "${median_s[$i]}" "${median_s[2]}")
    vs_tcpdump=$(ratio "${median_s[$i]}" "${median_s[3]}")
  else
    vs_tshark="" vs_tcpdump=""
  fi
  printf '| %-22s | %10s | %13s | %13s | %-20s | %14s | %15s |\n' \
    "${names[$i]}" "${median_s[$i]}" "$mib" "$pps" "${all_s[$i]}" "$vs_tshark" "$vs_tcpdump"
done
echo
echo "Peak RSS ratios: flows/tshark $(ratio "${peak_kib[0]}" "${peak_kib[2]}"), flows/tcpdump $(ratio "${peak_kib[0]}" "${peak_kib[3]}"), analyze/tshark $(ratio "${peak_kib[1]}" "${peak_kib[2]}"), analyze/tcpdump $(ratio "${peak_kib[1]}" "${peak_kib[3]}")"
