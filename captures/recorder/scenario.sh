#!/bin/bash
# One capture scenario: builds its own set of network namespaces (prefix dgrNN-),
# runs real servers/clients on a fixed 60 s cadence, captures the LAN bridge, cleans up.
# Called by captures/record.sh; env: WORK PKI REC OUT T0 CADENCE CHECKINS
# usage: scenario.sh NAME INDEX
set -u
SCEN=$1
IDX=$2
P=$(printf 'dgr%02d' "$IDX")
SD=$WORK/$SCEN
mkdir -p "$SD"
chmod 755 "$WORK"
chmod 777 "$SD"
NSFILE=$SD/netns.list
: >"$NSFILE"
KEY=f1037f690e1c05405b0a71b8fc1df3d453b1bcad        # public doc example license key
APIKEY=6a4c1d2e0b9f8a7c3d5e4f6a7b8c9d0e1f2a3b4c    # made-up hosted API key
PY=${PYTHON:-python3}
SIM="$PY $REC/dgsim.py"
MAXLIFE=$(( (CHECKINS - 1) * CADENCE + 240 ))
V6=0
RESOLVER=192.0.2.53
PIDS=()
LOOPS=()
TCPDUMP_PID=

say() { echo "$(date +%T) [$SCEN] $*"; }

killtree() {  # kill a process we started and its descendants, by pid
    local p=$1 c
    for c in $(ps -o pid= --ppid "$p" 2>/dev/null); do killtree "$c"; done
    kill -TERM "$p" 2>/dev/null
}

cleanup() {
    trap - EXIT INT TERM
    [ -n "$TCPDUMP_PID" ] && kill -INT "$TCPDUMP_PID" 2>/dev/null && sleep 1
    for p in "${LOOPS[@]}" "${PIDS[@]}"; do killtree "$p"; done
    local ns p
    for ns in $(tac "$NSFILE" 2>/dev/null); do
        for p in $(ip netns pids "$ns" 2>/dev/null); do kill -TERM "$p" 2>/dev/null; done
    done
    sleep 1
    for ns in $(tac "$NSFILE" 2>/dev/null); do
        for p in $(ip netns pids "$ns" 2>/dev/null); do kill -KILL "$p" 2>/dev/null; done
        ip netns del "$ns" 2>/dev/null
        rm -rf "/etc/netns/$ns"
    done
    say "cleaned up"
}
trap cleanup EXIT
trap 'say "interrupted"; exit 1' INT TERM

# ---------------------------------------------------------------- time helpers
slot() {  # slot K OFFSET -> epoch of check-in slot K (0-based) + OFFSET (seconds at a 60 s cadence)
    awk -v t0="$T0" -v c="$CADENCE" -v k="$1" -v o="$2" 'BEGIN{printf "%.3f", t0 + k*c + o*c/60}'
}
scaled() { awk -v c="$CADENCE" -v s="$1" 'BEGIN{v=s*c/60; if (v<2) v=2; printf "%.1f", v}'; }
sleep_until() {
    local d
    d=$(awk -v t="$1" -v n="$EPOCHREALTIME" 'BEGIN{d=t-n; if (d<0) d=0; printf "%.3f", d}')
    sleep "$d"
}

# ---------------------------------------------------------------- namespace helpers
mkns() {  # mkns NAME [RESOLVER]
    local ns=$P-$1
    ip netns add "$ns" || exit 1
    echo "$ns" >>"$NSFILE"
    if [ "$V6" = 1 ]; then
        ip netns exec "$ns" sysctl -q -w net.ipv6.conf.all.disable_ipv6=0 net.ipv6.conf.default.disable_ipv6=0 \
            net.ipv6.conf.default.addr_gen_mode=1 net.ipv6.conf.all.accept_dad=0 net.ipv6.conf.default.accept_dad=0 \
            net.ipv6.conf.default.dad_transmits=0 net.ipv6.conf.all.accept_ra=0 net.ipv6.conf.default.accept_ra=0 \
            net.ipv6.conf.all.router_solicitations=0 net.ipv6.conf.default.router_solicitations=0 >/dev/null
    else
        ip netns exec "$ns" sysctl -q -w net.ipv6.conf.all.disable_ipv6=1 net.ipv6.conf.default.disable_ipv6=1 >/dev/null
    fi
    ip -n "$ns" link set lo up
    mkdir -p "/etc/netns/$ns"
    printf 'nameserver %s\noptions timeout:2 attempts:1\n' "${2:-$RESOLVER}" >"/etc/netns/$ns/resolv.conf"
    printf '127.0.0.1 localhost\n::1 localhost\n' >"/etc/netns/$ns/hosts"
}
nsx() { local n=$1; shift; ip netns exec "$P-$n" "$@"; }
offload_off() { ip netns exec "$1" ethtool -K "$2" tx off tso off gso off gro off >/dev/null 2>&1 || true; }
attach() {  # attach HOST BRIDGE IFNAME [MAC]: veth from the switch's bridge to the host
    local h=$1 br=$2 ifn=$3 port=p-$1-$3
    ip -n "$P-sw" link add "$port" type veth peer name "$ifn" netns "$P-$h" || exit 1
    [ -n "${4:-}" ] && ip -n "$P-$h" link set "$ifn" address "$4"
    [ "$V6" = 1 ] && ip netns exec "$P-sw" sysctl -q -w "net.ipv6.conf.$port.disable_ipv6=1" >/dev/null
    ip -n "$P-sw" link set "$port" master "$br"
    offload_off "$P-sw" "$port"
    offload_off "$P-$h" "$ifn"
    ip -n "$P-sw" link set "$port" up
    ip -n "$P-$h" link set "$ifn" up
}
host() {  # host NAME BRIDGE ADDR/PLEN...
    local h=$1 br=$2 a
    shift 2
    mkns "$h"
    attach "$h" "$br" eth0
    for a in "$@"; do
        if [ -n "${BRD:-}" ]; then ip -n "$P-$h" addr add "$a" brd + dev eth0; else ip -n "$P-$h" addr add "$a" dev eth0; fi
    done
}
route() { ip -n "$P-$1" route add "$2" via "$3" || exit 1; }
egress() { route "$1" 203.0.113.0/24 192.0.2.1; route "$1" 198.51.100.0/24 192.0.2.1; }
inet_host() {  # inet_host NAME ADDR/24: a host "on the internet" behind the customer's router
    local gw
    case $2 in 203.0.113.*) gw=203.0.113.1 ;; *) gw=198.51.100.1 ;; esac
    mkns "$1" 127.0.0.1
    attach "$1" br1 eth0
    ip -n "$P-$1" addr add "$2" dev eth0
    route "$1" 192.0.2.0/24 "$gw"
}
bg() {  # bg HOST LOGNAME CMD... : a long-running program inside HOST's namespace, bounded by timeout
    local h=$1 l=$2
    shift 2
    ip netns exec "$P-$h" timeout --kill-after=5 "$MAXLIFE" "$@" >>"$SD/$l.log" 2>&1 &
    PIDS+=($!)
}

# ---------------------------------------------------------------- common services
HOSTS_FULL=$SD/hosts.full
dns_server() {  # dns_server HOST LISTEN-ADDR [extra dnsmasq lines...]
    local h=$1 addr=$2
    shift 2
    cat >"$SD/dnsmasq-$h.conf" <<EOF
no-resolv
no-hosts
no-poll
bind-interfaces
listen-address=$addr
except-interface=lo
user=root
group=root
local-ttl=60
log-queries
log-facility=$SD/dnsmasq-$h.queries.log
pid-file=$SD/dnsmasq-$h.pid
EOF
    printf '%s\n' "$@" >>"$SD/dnsmasq-$h.conf"
    bg "$h" "dnsmasq-$h" dnsmasq -k -C "$SD/dnsmasq-$h.conf"
}
lan_dns() {  # the customer's internal resolver, authoritative for the test names, no upstream
    cat >"$HOSTS_FULL" <<'EOF'
203.0.113.10 license.deepgram.com
203.0.113.20 api.deepgram.com
198.51.100.77 telemetry.example.net
192.0.2.5 license-proxy
192.0.2.8 forward-proxy
192.0.2.30 api.customer.example
EOF
    cp "$HOSTS_FULL" "$SD/hosts"
    dns_server dns 192.0.2.53 "addn-hosts=$SD/hosts" local=/deepgram.com/ local=/example.net/ \
        local=/customer.example/ local=/license-proxy/ local=/forward-proxy/ "$@"
}
tls_server() {  # tls_server HOST ROLE CERTNAME LISTEN...
    local h=$1 role=$2 cert=$3
    shift 3
    local args=() l
    for l in "$@"; do args+=(--listen "$l"); done
    bg "$h" "server-$h" $SIM serve --role "$role" --cert "$PKI/$cert.chain.pem" --key "$PKI/$cert.key" \
        --seconds "$MAXLIFE" "${args[@]}"
}
base_v4() {  # switch (br0 = customer LAN, captured; br1 = "internet"), router, resolver, license server
    mkns sw
    ip -n "$P-sw" link add br0 type bridge
    ip -n "$P-sw" link add br1 type bridge
    ip -n "$P-sw" link set br0 up
    ip -n "$P-sw" link set br1 up
    host rtr br0 192.0.2.1/24
    attach rtr br1 eth1
    ip -n "$P-rtr" addr add 203.0.113.1/24 dev eth1
    ip -n "$P-rtr" addr add 198.51.100.1/24 dev eth1
    nsx rtr sysctl -q -w net.ipv4.ip_forward=1 >/dev/null
    if [ -z "${NO_LAN_DNS:-}" ]; then
        host dns br0 192.0.2.53/24
        lan_dns "$@"
    fi
    inet_host lic 203.0.113.10/24
    tls_server lic license license "203.0.113.10:443,tls"
    LIC_PID=${PIDS[-1]}
}

# ---------------------------------------------------------------- traffic
checkins() {  # checkins HOST COMPONENT OFFSET URL [curl args...]; env PAD BIG_AT BIG_FILE HTTPS_PROXY_URL
    local h=$1 comp=$2 off=$3 url=$4
    shift 4
    local pad=${PAD:-0} big_at=${BIG_AT:-0} big_file=${BIG_FILE:-} proxy=${HTTPS_PROXY_URL:-}
    (
        for i in $(seq 1 "$CHECKINS"); do
            sleep_until "$(slot $((i - 1)) "$off")"
            body=$SD/usage-$comp-$i.json
            $SIM usage --component "$comp" --seq "$i" --pad "$pad" >"$body"
            [ "$big_at" = "$i" ] && body=$big_file
            envs=()
            [ -n "$proxy" ] && envs=(https_proxy="$proxy")
            timeout 40 ip netns exec "$P-$h" env "${envs[@]}" curl -sS -o "$SD/resp-$comp.json" \
                -w "$comp #$i http=%{http_code} t=%{time_total}s up=%{size_upload}B\n" \
                --connect-timeout 5 --max-time 30 --cacert "$PKI/ca.pem" -X POST \
                -H "Authorization: Token $KEY" -H 'Content-Type: application/json' \
                -A "deepgram-$comp/release-240917" --data-binary "@$body" "$@" "$url" ||
                echo "$comp #$i failed rc=$?"
        done
    ) >>"$SD/checkins-$h.log" 2>&1 &
    LOOPS+=($!)
}
at() {  # at EPOCH CMD... : one timed action (bounded by timeout)
    local t=$1
    shift
    ( sleep_until "$t"; timeout "${TLIMIT:-60}" "$@" ) >>"$SD/actions.log" 2>&1 &
    LOOPS+=($!)
}
direct_pair() {  # API and Engine, both with egress, both check in directly
    host api br0 192.0.2.10/24
    egress api
    host eng br0 192.0.2.11/24
    egress eng
}
LIC_URL=https://license.deepgram.com/v1/licenses/check
normal_checkins() {
    checkins api api 12 "$LIC_URL" --tlsv1.3
    checkins eng engine 27 "$LIC_URL" --tlsv1.3
}
proxy_setup() {  # License Proxy (192.0.2.5:8443) + forward proxy (tinyproxy 192.0.2.8:3128)
    host lpx br0 192.0.2.5/24
    host fpx br0 192.0.2.8/24
    egress fpx
    tls_server lpx licproxy license-proxy "192.0.2.5:8443,tls"
    mkdir -p "$SD/tinyproxy"
    chmod 777 "$SD/tinyproxy"
    cat >"$SD/tinyproxy.conf" <<EOF
User nobody
Group nogroup
Port 3128
Listen 192.0.2.8
Timeout 60
LogFile "$SD/tinyproxy/tinyproxy.log"
LogLevel Info
PidFile "$SD/tinyproxy/tinyproxy.pid"
MaxClients 20
Allow 192.0.2.0/24
ConnectPort 443
DisableViaHeader Yes
EOF
    bg fpx tinyproxy tinyproxy -d -c "$SD/tinyproxy.conf"
    HTTPS_PROXY_URL=http://forward-proxy:3128 checkins lpx license-proxy 5 "$LIC_URL" --tlsv1.3
}

build() {
    case $SCEN in
    compliant-direct)
        base_v4
        direct_pair
        normal_checkins
        ;;
    compliant-proxies | proxy-bypass)
        base_v4
        host api br0 192.0.2.10/24
        host eng br0 192.0.2.11/24
        proxy_setup
        checkins api api 12 https://license-proxy:8443/v1/licenses/check --tlsv1.3
        if [ "$SCEN" = proxy-bypass ]; then
            egress eng
            checkins eng engine 27 "$LIC_URL" --tlsv1.3
        else
            checkins eng engine 27 https://license-proxy:8443/v1/licenses/check --tlsv1.3
        fi
        ;;
    held-connection)
        base_v4
        host api br0 192.0.2.10/24
        egress api
        bg api held-client $SIM held --host license.deepgram.com --path /v1/licenses/check \
            --cafile "$PKI/ca.pem" --key "$KEY" --component api --times "$CHECKINS" \
            --t0 "$T0" --cadence "$CADENCE" --offset "$(awk -v c="$CADENCE" 'BEGIN{print 12*c/60}')"
        ;;
    exfil-bulk)
        base_v4
        direct_pair
        head -c 5242880 /dev/urandom >"$SD/bulk.bin"
        BIG_AT=4 BIG_FILE=$SD/bulk.bin checkins api api 12 "$LIC_URL" --tlsv1.3
        checkins eng engine 27 "$LIC_URL" --tlsv1.3
        ;;
    trickle)
        base_v4
        direct_pair
        PAD=30000 checkins api api 12 "$LIC_URL" --tlsv1.3
        checkins eng engine 27 "$LIC_URL" --tlsv1.3
        ;;
    hosted-transcription)
        base_v4
        direct_pair
        normal_checkins
        host app br0 192.0.2.40/24
        egress app
        inet_host hap 203.0.113.20/24
        tls_server hap hosted hosted "203.0.113.20:443,tls"
        at "$(slot 1 35)" ip netns exec "$P-app" curl -sS -o /dev/null -w 'POST listen http=%{http_code} up=%{size_upload}B\n' \
            --connect-timeout 5 --max-time 50 --cacert "$PKI/ca.pem" -H "Authorization: Token $APIKEY" \
            -H 'Content-Type: audio/wav' --data-binary "@$WORK/tone30s.wav" \
            'https://api.deepgram.com/v1/listen?model=nova-2&smart_format=true'
        at "$(slot 3 30)" ip netns exec "$P-app" $SIM ws --host api.deepgram.com \
            --path '/v1/listen?encoding=linear16&sample_rate=16000&channels=1' --cafile "$PKI/ca.pem" \
            --token "$APIKEY" --audio "$WORK/tone30s.wav" --seconds "$(scaled 20)"
        ;;
    plaintext-licensing)
        base_v4
        tls_server lic license license 203.0.113.10:80
        direct_pair
        checkins api api 12 http://license.deepgram.com/v1/licenses/check
        checkins eng engine 27 http://license.deepgram.com/v1/licenses/check
        ;;
    unknown-egress)
        base_v4
        direct_pair
        normal_checkins
        inet_host tel 198.51.100.77/24
        bg tel server-tel $SIM serve --role telemetry --cert "$PKI/telemetry.chain.pem" --key "$PKI/telemetry.key" \
            --listen "198.51.100.77:443,tls" --sink 198.51.100.77:9000 --seconds "$MAXLIFE"
        head -c 4096 /dev/urandom >"$SD/blob.bin"
        for k in 1 3 5; do
            at "$(slot $k 40)" ip netns exec "$P-api" curl -sS -o /dev/null -w 'telemetry http=%{http_code}\n' \
                --connect-timeout 5 --max-time 20 --cacert "$PKI/ca.pem" -H 'Content-Type: application/json' \
                --data-binary "{\"event\":\"heartbeat\",\"seq\":$k,\"host\":\"api\"}" https://telemetry.example.net/v1/events
        done
        for k in 2 4; do
            at "$(slot $k 40)" ip netns exec "$P-api" curl -sS -o /dev/null -w 'bare-ip tls http=%{http_code}\n' \
                --connect-timeout 5 --max-time 20 --cacert "$PKI/ca.pem" --data-binary "@$SD/blob.bin" \
                https://198.51.100.77/v1/upload
            at "$(slot $k 46)" bash -c "ip netns exec $P-api socat -t 2 -T 10 - \
                TCP4:198.51.100.77:9000,connect-timeout=5 < $SD/blob.bin"
        done
        ;;
    outage)
        base_v4
        direct_pair
        normal_checkins
        # slot 2: port closed (RST); slot 3: SYNs dropped (nft); slot 4: NXDOMAIN; slots 5-6: recovered
        at "$(slot 2 2)" bash -c "kill -TERM $LIC_PID; echo license server stopped"
        at "$(slot 3 2)" bash -c "ip netns exec $P-lic nft -f - <<'EOF'
table inet outage {
  chain input { type filter hook input priority 0; policy accept; tcp dport 443 drop; }
}
EOF
echo nft drop on"
        TLIMIT=$MAXLIFE at "$(slot 3 3)" ip netns exec "$P-lic" timeout --kill-after=5 "$MAXLIFE" $SIM serve --role license \
            --cert "$PKI/license.chain.pem" --key "$PKI/license.key" --seconds "$MAXLIFE" --listen "203.0.113.10:443,tls"
        at "$(slot 4 2)" bash -c "ip netns exec $P-lic nft delete table inet outage; echo nft drop off;
            grep -v license.deepgram.com $HOSTS_FULL > $SD/hosts; kill -HUP \$(cat $SD/dnsmasq-dns.pid); echo dns broken"
        at "$(slot 5 2)" bash -c "cp $HOSTS_FULL $SD/hosts; kill -HUP \$(cat $SD/dnsmasq-dns.pid); echo dns restored"
        ;;
    dns-tunnel)
        base_v4 address=/t.exfil-test.example/198.51.100.99 local=/t.exfil-test.example/
        direct_pair
        normal_checkins
        inet_host rdns 198.51.100.53/24
        dns_server rdns 198.51.100.53 address=/exfil-test.example/198.51.100.99 \
            'txt-record=cfg.t.exfil-test.example,"v=1 c=7a3f1e"'
        bg api dnstunnel $SIM dnstunnel --resolver 192.0.2.53 --domain t.exfil-test.example \
            --bursts 5 --per-burst 80 --max-queries 400 --rate 5 --t0 "$T0" --cadence "$CADENCE" \
            --offset "$(awk -v c="$CADENCE" 'BEGIN{print 35*c/60}')" --first-slot 1
        at "$(slot 2 55)" ip netns exec "$P-api" dig +time=3 +tries=1 @198.51.100.53 TXT cfg.t.exfil-test.example
        ;;
    noisy-lan)
        # compliant-direct on an ordinary noisy office LAN (the noise never leaves the link)
        BRD=1 base_v4
        ip -n "$P-sw" link set br0 type bridge mcast_snooping 0   # a dumb switch: floods multicast
        BRD=1 direct_pair
        normal_checkins
        BRD=1 host pc1 br0 192.0.2.101/24     # office PC (Windows-like): IGMPv2, LLMNR, NetBIOS, SSDP, Dropbox
        BRD=1 host pc2 br0 192.0.2.102/24     # office PC (mac-like): mDNS, SSDP responder, IGMPv3
        mkns dhc                              # laptop without an address: DHCP client
        attach dhc br0 eth0 02:00:00:00:01:50
        nsx pc1 sysctl -q -w net.ipv4.conf.all.force_igmp_version=2 net.ipv4.conf.eth0.force_igmp_version=2 >/dev/null
        # DHCP server: a second dnsmasq on the resolver host, DHCP only (port=0), no router option
        cat >"$SD/dnsmasq-dhcp.conf" <<EOF
port=0
interface=eth0
bind-interfaces
no-resolv
no-hosts
user=root
group=root
dhcp-range=192.0.2.150,192.0.2.199,255.255.255.0,10m
dhcp-host=02:00:00:00:01:50,192.0.2.150,office-laptop
dhcp-option=option:router
dhcp-option=option:dns-server,192.0.2.53
dhcp-authoritative
dhcp-leasefile=$SD/dnsmasq-dhcp.leases
log-dhcp
log-facility=$SD/dnsmasq-dhcp.log
pid-file=$SD/dnsmasq-dhcp.pid
EOF
        bg dns dnsmasq-dhcp dnsmasq -k -C "$SD/dnsmasq-dhcp.conf"
        # NTP server on "the internet" (allowed by the policy's [egress] allow)
        inet_host ntp 203.0.113.123/24
        bg ntp ntpserve $SIM ntpserve --listen 203.0.113.123 --seconds "$MAXLIFE"
        # IPv6 on the LAN interfaces, link-local only (RS to ff02::2, DAD NS, MLDv2 reports): after capture start
        at "$(slot 0 3)" bash -c "for h in rtr dns api eng pc1 dhc; do ip netns exec $P-\$h sysctl -q -w net.ipv6.conf.eth0.disable_ipv6=0; done; echo ipv6 link-local on"
        at "$(slot 2 20)" bash -c "ip netns exec $P-pc2 sysctl -q -w net.ipv6.conf.eth0.disable_ipv6=0; echo pc2 ipv6 on"
        bg pc1 noise-pc1 $SIM noise --iface eth0 --ip 192.0.2.101 --name OFFICE-PC1 --llmnr --llmnr-responder --ssdp \
            --dropbox --mdns --v6 --start "$(slot 0 8)" --t0 "$T0" --cadence "$CADENCE" \
            --offset "$(awk -v c="$CADENCE" 'BEGIN{print 20*c/60}')" --rounds "$CHECKINS" --seconds "$MAXLIFE"
        bg pc2 noise-pc2 $SIM noise --iface eth0 --ip 192.0.2.102 --name macbook-pc2 --mdns --ssdp-responder --v6 \
            --start "$(slot 2 25)" --t0 "$T0" --cadence "$CADENCE" \
            --offset "$(awk -v c="$CADENCE" 'BEGIN{print 50*c/60}')" --rounds "$CHECKINS" --seconds "$MAXLIFE"
        printf '[global]\n  workgroup = OFFICE\n  netbios name = OFFICE-PC1\n  interfaces = eth0\n  bind interfaces only = yes\n' >"$SD/smb.conf"
        for k in $(seq 0 $((CHECKINS - 1))); do
            at "$(slot "$k" 45)" ip netns exec "$P-pc1" timeout 10 nmblookup -s "$SD/smb.conf" -B 192.0.2.255 FILESERVER
            at "$(slot "$k" 40)" ip netns exec "$P-api" timeout 10 ntpdig -4 -t 3 203.0.113.123
        done
        for k in 0 3; do
            at "$(slot "$k" 33)" ip netns exec "$P-dhc" timeout 20 busybox udhcpc -i eth0 -f -q -n -B -t 3 -T 2 \
                -s /bin/true -x hostname:office-laptop
        done
        ;;
    sni-mismatch)
        # the API host also opens licensing-looking TLS (SNI license.deepgram.com) to the address
        # the capture's DNS gives to api.deepgram.com (203.0.113.20), which serves a license cert
        base_v4
        direct_pair
        normal_checkins
        inet_host hap 203.0.113.20/24
        tls_server hap license license "203.0.113.20:443,tls"
        for k in $(seq 0 $((CHECKINS - 1))); do
            at "$(slot "$k" 40)" bash -c "ip=\$(ip netns exec $P-api dig +short +time=3 +tries=1 api.deepgram.com A | head -n1);
                echo api.deepgram.com = \$ip;
                ip netns exec $P-api curl -sS -o /dev/null -w 'sni-mismatch #$k http=%{http_code} to %{remote_ip}\n' \
                --connect-timeout 5 --max-time 20 --cacert $PKI/ca.pem --tlsv1.3 --resolve license.deepgram.com:443:\$ip \
                -X POST -H 'Authorization: Token $KEY' -H 'Content-Type: application/json' -A deepgram-api/release-240917 \
                --data-binary '{\"component\":\"api\",\"seq\":$k,\"status\":\"ok\"}' $LIC_URL"
        done
        ;;
    resolver-egress-allow)
        # no internal resolver: the hosts resolve through an outside dnsmasq at 203.0.113.53
        RESOLVER=203.0.113.53
        NO_LAN_DNS=1 base_v4
        direct_pair
        printf '203.0.113.10 license.deepgram.com\n' >"$HOSTS_FULL"
        cp "$HOSTS_FULL" "$SD/hosts"
        inet_host xdns 203.0.113.53/24
        dns_server xdns 203.0.113.53 "addn-hosts=$SD/hosts" local=/deepgram.com/
        normal_checkins
        ;;
    outage-syn)
        base_v4
        direct_pair
        # check-in 3 (slot 2): SYNs to license.deepgram.com:443 dropped in the server's namespace;
        # curl keeps trying for 8 s (SYN retransmissions at about 1, 3 and 7 s), then recovery.
        # Classic exponential SYN backoff (RFC 6298): this kernel's default is 4 linear 1 s retries first.
        for h in api eng; do nsx "$h" sysctl -q -w net.ipv4.tcp_syn_linear_timeouts=0 >/dev/null; done
        checkins api api 12 "$LIC_URL" --tlsv1.3 --connect-timeout 8
        checkins eng engine 27 "$LIC_URL" --tlsv1.3 --connect-timeout 8
        at "$(slot 2 2)" bash -c "ip netns exec $P-lic nft -f - <<'EOF'
table inet outage {
  chain input { type filter hook input priority 0; policy accept; tcp dport 443 drop; }
}
EOF
echo nft drop on"
        at "$(slot 2 50)" bash -c "ip netns exec $P-lic nft delete table inet outage; echo nft drop off"
        ;;
    ipv6-vlan)
        build_v6
        ;;
    ingress-bypass)
        base_v4
        direct_pair
        normal_checkins
        host sapi br0 192.0.2.20/24
        egress sapi
        bg sapi server-sapi $SIM serve --role selfhosted --listen 192.0.2.20:8080 --seconds "$MAXLIFE"
        host gw br0 192.0.2.30/24
        egress gw
        nginx_gateway
        host app br0 192.0.2.40/24
        inet_host out 198.51.100.50/24
        inet_host legit 198.51.100.60/24
        $SIM wav --out "$SD/clip.wav" --seconds 2 --freq 330
        for k in 1 3 5; do
            at "$(slot $k 40)" ip netns exec "$P-out" curl -sS -o /dev/null -w 'bypass http=%{http_code}\n' \
                --connect-timeout 5 --max-time 20 -H 'Content-Type: audio/wav' --data-binary "@$SD/clip.wav" \
                'http://192.0.2.20:8080/v1/listen?model=nova-2'
        done
        for k in 1 2 3 4 5; do
            at "$(slot $k 45)" ip netns exec "$P-legit" curl -sS -o /dev/null -w 'gateway http=%{http_code}\n' \
                --connect-timeout 5 --max-time 20 --cacert "$PKI/ca.pem" --resolve api.customer.example:443:192.0.2.30 \
                -H "Authorization: Token $APIKEY" -H 'Content-Type: audio/wav' --data-binary "@$SD/clip.wav" \
                'https://api.customer.example/v1/listen?model=nova-2'
        done
        for k in 2 4; do
            at "$(slot $k 50)" ip netns exec "$P-app" curl -sS -o /dev/null -w 'internal http=%{http_code}\n' \
                --connect-timeout 5 --max-time 20 -H 'Content-Type: audio/wav' --data-binary "@$SD/clip.wav" \
                'http://192.0.2.20:8080/v1/listen?model=nova-2'
        done
        ;;
    *)
        say "unknown scenario"
        exit 2
        ;;
    esac
}

nginx_gateway() {  # API gateway 192.0.2.30:443 (TLS, API-key check) -> self-hosted API 192.0.2.20:8080
    local d=$SD/nginx
    mkdir -p "$d"
    chmod 777 "$d"
    cat >"$d/nginx.conf" <<EOF
daemon off;
user nobody nogroup;
worker_processes 1;
pid $d/nginx.pid;
error_log $d/error.log info;
events { worker_connections 64; }
http {
  access_log $d/access.log;
  client_body_temp_path $d/body;
  proxy_temp_path $d/proxy;
  fastcgi_temp_path $d/fastcgi;
  uwsgi_temp_path $d/uwsgi;
  scgi_temp_path $d/scgi;
  client_max_body_size 50m;
  server {
    listen 192.0.2.30:443 ssl;
    server_name api.customer.example;
    ssl_certificate $PKI/gateway.chain.pem;
    ssl_certificate_key $PKI/gateway.key;
    location /v1/ {
      if (\$http_authorization !~ "^Token [0-9a-f]{40}\$") { return 401; }
      proxy_pass http://192.0.2.20:8080;
      proxy_http_version 1.1;
      proxy_set_header Authorization "";
    }
  }
}
EOF
    bg gw nginx nginx -c "$d/nginx.conf" -p "$d"
}

V6MAC_N=0
vhost() {  # vhost NAME ADDR6: host on VLAN 100 (802.1Q done by a userspace relay: no 8021q module here)
    local h=$1 mac
    V6MAC_N=$((V6MAC_N + 1))
    mac=$(printf '02:00:5e:10:00:%02x' "$V6MAC_N")
    mkns "$h" 2001:db8:1::53
    ip -n "$P-$h" link add eth0 type veth peer name eth0r
    nsx "$h" sysctl -q -w net.ipv6.conf.eth0r.disable_ipv6=1 >/dev/null
    ip -n "$P-$h" link set eth0 address "$mac"
    offload_off "$P-$h" eth0
    offload_off "$P-$h" eth0r
    attach "$h" br0 trunk0
    nsx "$h" sysctl -q -w net.ipv6.conf.trunk0.disable_ipv6=1 >/dev/null
    ip -n "$P-$h" link set eth0r up
    ip -n "$P-$h" link set eth0 up
    ip -n "$P-$h" -6 addr add "$2/64" dev eth0 nodad
    bg "$h" vlanrelay $SIM vlanrelay --inner eth0r --trunk trunk0 --vid 100 --seconds "$MAXLIFE"
    eval "MAC_${h}=$mac"
}
build_v6() {
    V6=1
    RESOLVER=2001:db8:1::53
    mkns sw
    ip -n "$P-sw" link add br0 type bridge
    ip -n "$P-sw" link add br1 type bridge
    ip -n "$P-sw" link set br0 up
    ip -n "$P-sw" link set br1 up
    vhost rtr 2001:db8:1::1
    attach rtr br1 eth1 02:00:5e:20:00:01
    ip -n "$P-rtr" -6 addr add 2001:db8:100::1/64 dev eth1 nodad
    nsx rtr sysctl -q -w net.ipv6.conf.all.forwarding=1 >/dev/null
    vhost dns 2001:db8:1::53
    vhost api 2001:db8:1::10
    vhost eng 2001:db8:1::11
    mkns lic 127.0.0.1
    attach lic br1 eth0 02:00:5e:20:00:10
    ip -n "$P-lic" -6 addr add 2001:db8:100::10/64 dev eth0 nodad
    ip -n "$P-lic" -6 route add 2001:db8:1::/48 via 2001:db8:100::1
    # static neighbours: no ND multicast on the wire
    local h
    for h in dns api eng; do
        ip -n "$P-$h" -6 route add 2001:db8:100::/48 via 2001:db8:1::1
        ip -n "$P-$h" -6 neigh replace 2001:db8:1::1 lladdr "$MAC_rtr" dev eth0 nud permanent
        ip -n "$P-rtr" -6 neigh replace "$(nsx "$h" ip -6 -br addr show dev eth0 | awk '{print $3}' | cut -d/ -f1)" \
            lladdr "$(eval echo \$MAC_$h)" dev eth0 nud permanent
    done
    for h in api eng; do
        ip -n "$P-$h" -6 neigh replace 2001:db8:1::53 lladdr "$MAC_dns" dev eth0 nud permanent
        ip -n "$P-dns" -6 neigh replace "$(nsx "$h" ip -6 -br addr show dev eth0 | awk '{print $3}' | cut -d/ -f1)" \
            lladdr "$(eval echo \$MAC_$h)" dev eth0 nud permanent
    done
    ip -n "$P-rtr" -6 neigh replace 2001:db8:100::10 lladdr 02:00:5e:20:00:10 dev eth1 nud permanent
    ip -n "$P-lic" -6 neigh replace 2001:db8:100::1 lladdr 02:00:5e:20:00:01 dev eth0 nud permanent
    cat >"$HOSTS_FULL" <<'EOF'
2001:db8:100::10 license.deepgram.com
EOF
    cp "$HOSTS_FULL" "$SD/hosts"
    dns_server dns 2001:db8:1::53 "addn-hosts=$SD/hosts" local=/deepgram.com/
    tls_server lic license license "[2001:db8:100::10]:443,tls"
    normal_checkins
}

# ---------------------------------------------------------------- run
say "building (prefix $P)"
build
say "built: $(wc -l <"$NSFILE") namespaces"
START=$(awk -v t="$T0" 'BEGIN{printf "%.3f", t-3}')
sleep_until "$START"
ip netns exec "$P-sw" tcpdump -i br0 -s 0 -U -n -Z root -w "$SD/capture.pcap" >"$SD/tcpdump.log" 2>&1 &
TCPDUMP_PID=$!
END=$(slot $((CHECKINS - 1)) 50)
say "capturing until $(date -d @"${END%.*}" +%T)"
sleep_until "$END"
kill -INT "$TCPDUMP_PID"
wait "$TCPDUMP_PID"
TCPDUMP_PID=
cat "$SD/tcpdump.log"
cp "$SD/capture.pcap" "$OUT/$SCEN.pcap" || exit 1
say "done: $(stat -c %s "$OUT/$SCEN.pcap") bytes"
