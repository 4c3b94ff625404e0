#!/bin/bash
# Records the dg-audit test captures with real programs in private network namespaces.
#
#   sudo bash captures/record.sh [scenario...]      (default: all 17, in parallel, ~8 minutes)
#   CADENCE=5 CHECKINS=3 sudo bash captures/record.sh compliant-direct   (quick debug run)
#
# Network safety: every host lives in a network namespace created here (prefix dgrNN-); the
# root namespace gets no address, no route, no interface. Only 192.0.2.0/24, 198.51.100.0/24,
# 203.0.113.0/24 and 2001:db8::/32 are used; IPv6 is disabled everywhere but in ipv6-vlan (2001:db8::
# only) and noisy-lan (link-local fe80::/64 on the LAN only).
# Every loop is bounded in count and time; an EXIT trap removes every namespace and process.
# Each capture is checked with tshark for addresses outside those ranges (the run fails if so); only
# noisy-lan may also hold the exact link-local/multicast/broadcast/unspecified addresses its LAN noise uses.
set -euo pipefail

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
REC=$HERE/recorder
OUT=${OUT:-$HERE}
CADENCE=${CADENCE:-60}
CHECKINS=${CHECKINS:-7}
SETUP_SECONDS=${SETUP_SECONDS:-30}
ALL=(compliant-direct compliant-proxies held-connection exfil-bulk trickle hosted-transcription
    plaintext-licensing unknown-egress outage dns-tunnel proxy-bypass ipv6-vlan ingress-bypass
    noisy-lan sni-mismatch resolver-egress-allow outage-syn)

[ "$(id -u)" = 0 ] || { echo "record.sh: run as root (it creates network namespaces)" >&2; exit 2; }

# ------------------------------------------------------------------ tools
need=()
for t in dnsmasq:dnsmasq tcpdump:tcpdump tshark:tshark tinyproxy:tinyproxy socat:socat nginx:nginx-light \
    curl:curl openssl:openssl ethtool:ethtool nft:nftables dig:bind9-dnsutils ip:iproute2 ps:procps \
    python3:python3 busybox:busybox nmblookup:samba-common-bin ntpdig:sntp; do
    command -v "${t%%:*}" >/dev/null 2>&1 || need+=("${t#*:}")
done
if [ ${#need[@]} -gt 0 ]; then
    echo "installing: ${need[*]}"
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq
    apt-get install -y -qq "${need[@]}" >/dev/null
fi

SCENARIOS=("$@")
[ ${#SCENARIOS[@]} -eq 0 ] && SCENARIOS=("${ALL[@]}")
idx_of() { local i; for i in "${!ALL[@]}"; do [ "${ALL[$i]}" = "$1" ] && { echo $((i + 1)); return; }; done; echo 0; }
for s in "${SCENARIOS[@]}"; do
    [ "$(idx_of "$s")" != 0 ] || { echo "unknown scenario: $s (known: ${ALL[*]})" >&2; exit 2; }
done

# leftovers of an interrupted earlier run (only our own prefix)
for ns in $(ip netns list | awk '{print $1}' | grep -E '^dgr[0-9]{2}-' || true); do
    echo "removing leftover namespace $ns"
    for p in $(ip netns pids "$ns"); do kill -KILL "$p" 2>/dev/null || true; done
    ip netns del "$ns"
    rm -rf "/etc/netns/$ns"
done

mkdir -p "$OUT"
WORK=$(mktemp -d /tmp/dg-record.XXXXXX)
chmod 755 "$WORK"
RUNNERS=()
NETNS_DIR_EXISTED=0
[ -d /etc/netns ] && NETNS_DIR_EXISTED=1

cleanup() {
    local rc=$? p ns f
    trap - EXIT INT TERM
    for p in "${RUNNERS[@]}"; do kill -TERM "$p" 2>/dev/null || true; done
    for p in "${RUNNERS[@]}"; do wait "$p" 2>/dev/null || true; done
    for f in "$WORK"/*/netns.list; do
        [ -f "$f" ] || continue
        for ns in $(cat "$f"); do
            if ip netns list | awk '{print $1}' | grep -qx "$ns"; then
                for p in $(ip netns pids "$ns"); do kill -KILL "$p" 2>/dev/null || true; done
                ip netns del "$ns" 2>/dev/null || true
            fi
            rm -rf "/etc/netns/$ns"
        done
    done
    [ "$NETNS_DIR_EXISTED" = 0 ] && rmdir /etc/netns 2>/dev/null || true
    if [ "$rc" = 0 ] && [ -z "${KEEP_WORK:-}" ]; then rm -rf "$WORK"; else echo "work files kept in $WORK"; fi
    exit "$rc"
}
trap cleanup EXIT
trap 'echo "record.sh: interrupted"; exit 130' INT TERM

# ------------------------------------------------------------------ test PKI (throw-away, per run)
PKI=$WORK/pki
mkdir -p "$PKI"
(
    cd "$PKI"
    openssl req -x509 -newkey rsa:2048 -nodes -keyout ca.key -out ca.pem -days 30 -sha256 \
        -subj "/O=dg-audit test/CN=dg-audit Test Root CA" \
        -addext basicConstraints=critical,CA:TRUE -addext keyUsage=critical,keyCertSign,cRLSign 2>/dev/null
    leaf() {  # leaf NAME CN SAN
        openssl req -newkey rsa:2048 -nodes -keyout "$1.key" -out "$1.csr" -subj "/CN=$2" 2>/dev/null
        printf 'basicConstraints=CA:FALSE\nkeyUsage=critical,digitalSignature,keyEncipherment\nextendedKeyUsage=serverAuth\nsubjectAltName=%s\n' "$3" >"$1.ext"
        openssl x509 -req -in "$1.csr" -CA ca.pem -CAkey ca.key -CAcreateserial -days 30 -sha256 \
            -extfile "$1.ext" -out "$1.crt" 2>/dev/null
        cat "$1.crt" ca.pem >"$1.chain.pem"
    }
    leaf license license.deepgram.com "DNS:license.deepgram.com"
    leaf hosted api.deepgram.com "DNS:api.deepgram.com"
    leaf license-proxy license-proxy "DNS:license-proxy,IP:192.0.2.5"
    leaf telemetry telemetry.example.net "DNS:telemetry.example.net,IP:198.51.100.77"
    leaf gateway api.customer.example "DNS:api.customer.example,IP:192.0.2.30"
    chmod 644 ./*
)
python3 "$REC/dgsim.py" wav --out "$WORK/tone30s.wav" --seconds 30 --freq 440

# ------------------------------------------------------------------ run all scenarios in parallel
NOW=$(date +%s)
T0=$(( ( (NOW + SETUP_SECONDS + CADENCE - 1) / CADENCE ) * CADENCE ))
LIMIT=$(( T0 - NOW + (CHECKINS - 1) * CADENCE + 300 ))
echo "recording ${#SCENARIOS[@]} scenario(s); cadence ${CADENCE}s x ${CHECKINS}; first slot $(date -d @$T0 +%T); work dir $WORK"
export WORK PKI REC OUT T0 CADENCE CHECKINS
for s in "${SCENARIOS[@]}"; do
    timeout --kill-after=20 "$LIMIT" bash "$REC/scenario.sh" "$s" "$(idx_of "$s")" >"$WORK/$s.log" 2>&1 &
    RUNNERS+=($!)
done
fail=0
for i in "${!RUNNERS[@]}"; do
    if ! wait "${RUNNERS[$i]}"; then
        echo "scenario ${SCENARIOS[$i]} FAILED; its log:" >&2
        tail -n 30 "$WORK/${SCENARIOS[$i]}.log" >&2
        fail=1
    fi
done
RUNNERS=()
[ "$fail" = 0 ] || exit 1

# ------------------------------------------------------------------ measure, check, document
for s in "${SCENARIOS[@]}"; do
    python3 "$REC/expected.py" --scenario "$s" --pcap "$OUT/$s.pcap" --tcpdump-log "$WORK/$s/tcpdump.log" \
        --cadence "$CADENCE" --checkins "$CHECKINS" --out-dir "$OUT"
done
python3 "$REC/readme.py" --dir "$OUT"
du -sh "$OUT"
total=$(du -sb "$OUT" | awk '{print $1}')
[ "$total" -lt 31457280 ] || { echo "captures/ is larger than 30 MB" >&2; exit 1; }
echo "record.sh: all done"
