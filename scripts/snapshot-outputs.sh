#!/usr/bin/env bash
# Writes every offline output of one dg-audit binary for every capture in captures/ and
# ../shared/corpus into OUTDIR, so two builds can be compared with `diff -r`:
#   bash scripts/snapshot-outputs.sh target/release/dg-audit /tmp/after
#   diff -r /tmp/before /tmp/after
# Covered: flows (text, json, ndjson, zeek), analyze (text, json, markdown; with the capture's own
# policy where captures/ has one, else the embedded default), report (html, md, json) from that
# audit, policy show/init, and each command's stderr and exit code.
# Masked (they change between builds, not between behaviours): the tool version string
# ("version": "x.y.z" and dg-audit x.y.z). Nothing in these outputs reads the wall clock: the report
# time is the end of the latest capture and the Zeek #open line is the first packet's time.
set -uo pipefail
bin=$(realpath "$1"); out=$2
here=$(cd "$(dirname "$0")/.." && pwd)
mkdir -p "$out"
mask() { sed -E -e 's/("version": *")[0-9][^"]*"/\1MASKED"/g' -e 's/dg-audit [0-9]+\.[0-9]+\.[0-9]+[^ <]*/dg-audit MASKED/g'; }
run() { # name, then the command's arguments
  local name=$1; shift
  "$bin" "$@" >"$out/$name.out" 2>"$out/$name.err"
  echo "exit $?" >>"$out/$name.err"
  mask <"$out/$name.out" >"$out/$name.tmp" && mv "$out/$name.tmp" "$out/$name.out"
}
cd "$here"
run policy-show policy show
"$bin" policy init "$out/policy-init.toml" >/dev/null 2>&1
for cap in captures/*.pcap captures/*.pcapng ../shared/corpus/*.pcap ../shared/corpus/*.pcapng; do
  [ -e "$cap" ] || continue
  base=$(basename "$cap"); stem=${base%.*}
  policy=(); [ -f "captures/$stem.policy.toml" ] && policy=(--policy "captures/$stem.policy.toml")
  for f in text json ndjson zeek; do run "$base.flows.$f" flows "$cap" --format "$f"; done
  for f in text json markdown; do run "$base.analyze.$f" analyze "$cap" "${policy[@]}" --format "$f"; done
  cp "$out/$base.analyze.json.out" "$out/$base.audit.json"
  for f in html md json; do run "$base.report.$f" report "$out/$base.audit.json" --format "$f" -o /dev/stdout; done
done
echo "snapshot: $(ls "$out" | wc -l) files in $out"
