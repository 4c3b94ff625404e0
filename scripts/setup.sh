#!/usr/bin/env bash
# Installs what dg-audit needs that a fresh Debian 12 machine with Rust lacks, and nothing else:
#   bash scripts/setup.sh          libpcap headers and pkg-config (to build the `pcap` crate)
#   bash scripts/setup.sh --test   also the real programs the tests drive or check against:
#                                  iproute2 (network namespaces), tcpdump, openssl, curl, python3,
#                                  and promtool (Debian's prometheus package)
# Idempotent: a package already installed is not installed again. Uses sudo when not root.
set -euo pipefail
need=()
missing_cmd() { command -v "$1" >/dev/null 2>&1 || need+=("$2"); }
[ -e /usr/include/pcap.h ] || [ -e /usr/include/pcap/pcap.h ] || need+=(libpcap-dev)
missing_cmd pkg-config pkg-config
if [ "${1:-}" = "--test" ]; then
  missing_cmd ip iproute2
  missing_cmd tcpdump tcpdump
  missing_cmd openssl openssl
  missing_cmd curl curl
  missing_cmd python3 python3
  missing_cmd promtool prometheus
fi
if [ "${#need[@]}" -gt 0 ]; then
  if [ "$(id -u)" -eq 0 ]; then sudo=""; else sudo="sudo"; fi
  echo "setup: installing ${need[*]}" >&2
  $sudo apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null
fi
