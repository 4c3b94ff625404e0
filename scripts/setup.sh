#!/usr/bin/env bash
# Installs what dg-audit needs that a fresh Debian 12 machine with Rust lacks: libpcap's headers
# (for live capture through the `pcap` crate). Idempotent: does nothing when already installed.
set -euo pipefail
need=()
[ -e /usr/include/pcap.h ] || [ -e /usr/include/pcap/pcap.h ] || need+=(libpcap-dev)
command -v pkg-config >/dev/null 2>&1 || need+=(pkg-config)
if [ "${#need[@]}" -gt 0 ]; then
  if [ "$(id -u)" -eq 0 ]; then sudo=""; else sudo="sudo"; fi
  echo "setup: installing ${need[*]}" >&2
  $sudo apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq "${need[@]}" >/dev/null
fi
