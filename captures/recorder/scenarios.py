"""What each recorded capture contains and what dg-audit is expected to conclude from it.

Used by expected.py (NAME.expected.json, NAME.policy.toml) and readme.py (README.md).
The recorder itself is scenario.sh; keep the two in step.
"""

LAN = "192.0.2.0/24"
INTERNAL = ["192.0.2.0/24", "2001:db8:1::/48"]

# address plan (superset; each scenario lists the hosts it actually has)
HOSTS = {
    "192.0.2.1": "customer router (LAN side; outside legs 203.0.113.1 and 198.51.100.1 are not on the captured LAN)",
    "192.0.2.5": "License Proxy (license-proxy, TLS :8443)",
    "192.0.2.8": "forward proxy (forward-proxy, tinyproxy HTTP CONNECT :3128)",
    "192.0.2.10": "Deepgram API container host",
    "192.0.2.11": "Deepgram Engine container host",
    "192.0.2.20": "self-hosted API listener (plain HTTP :8080)",
    "192.0.2.30": "ingress API gateway (nginx, TLS :443, api.customer.example)",
    "192.0.2.40": "application server (customer client)",
    "192.0.2.101": "office PC (noisy-lan: LLMNR, NetBIOS-NS, SSDP M-SEARCH, mDNS, Dropbox LAN sync, IGMPv2)",
    "192.0.2.102": "office PC (noisy-lan: mDNS, SSDP responder, IGMPv3, joins IPv6 late)",
    "192.0.2.150": "DHCP lease of the noisy-lan laptop (MAC 02:00:00:00:01:50, dnsmasq dhcp-host; only inside DHCP "
                   "OFFER/ACK: the client configures nothing and talks from 0.0.0.0 and fe80::ff:fe00:150)",
    "192.0.2.53": "internal DNS resolver (dnsmasq, authoritative for the test names, no upstream)",
    "203.0.113.10": "license.deepgram.com (test licensing server, TLS :443; plain HTTP :80 in plaintext-licensing)",
    "203.0.113.20": "api.deepgram.com (test hosted API, TLS :443, POST and WebSocket /v1/listen)",
    "203.0.113.53": "outside DNS resolver (dnsmasq; resolver-egress-allow: the hosts' only resolver)",
    "203.0.113.123": "outside NTP server (noisy-lan; admitted by [egress] allow)",
    "198.51.100.77": "telemetry.example.net (unknown host: TLS :443, plain TCP :9000)",
    "198.51.100.53": "unapproved outside DNS resolver (dnsmasq)",
    "198.51.100.50": "outside client bypassing the gateway",
    "198.51.100.60": "outside client using the gateway",
    "2001:db8:1::1": "customer router (IPv6, VLAN 100)",
    "2001:db8:1::10": "Deepgram API container host (IPv6, VLAN 100)",
    "2001:db8:1::11": "Deepgram Engine container host (IPv6, VLAN 100)",
    "2001:db8:1::53": "internal DNS resolver (IPv6, VLAN 100)",
    "2001:db8:100::10": "license.deepgram.com (IPv6, TLS :443)",
}
BASE = ["192.0.2.1", "192.0.2.53", "203.0.113.10"]
PAIR = ["192.0.2.10", "192.0.2.11"]
PROXIES = ["192.0.2.5", "192.0.2.8"]

S = {}


def sc(name, desc, hosts, intent, verdict, controls, policy=None):
    S[name] = {"description": desc, "hosts": hosts, "verdict_intent": intent,
               "expected_verdict": verdict, "expected_controls": controls, "policy": policy or {}}


sc("compliant-direct",
   "API (192.0.2.10) and Engine (192.0.2.11) each check in every 60 s: DNS lookup of license.deepgram.com, "
   "a new TLS 1.3 connection with SNI license.deepgram.com, one small POST /v1/licenses/check (usage JSON, "
   "license key only inside TLS as Authorization: Token), close.",
   BASE + PAIR,
   "Compliant: only licensing egress, HTTPS to license.deepgram.com:443, one short (<0.1 s) connection per "
   "client per minute, about 1.2 KB of client-to-server payload (about 2 KB of IP bytes) per client per minute.",
   "compliant", {"DEST": "pass", "TLS": "pass", "VOLUME": "pass", "DURATION": "pass", "CADENCE": "pass",
                 "CREDENTIAL": "pass", "AUDIO": "pass", "PROXY": "not_applicable", "DNS": "pass"})
sc("compliant-proxies",
   "API and Engine check in to the License Proxy (https://license-proxy:8443, inside the LAN); the License "
   "Proxy (192.0.2.5) checks in upstream every 60 s through the forward proxy (tinyproxy 192.0.2.8:3128, "
   "CONNECT license.deepgram.com:443, curl with https_proxy). Only the forward proxy has a route out.",
   BASE + PAIR + PROXIES,
   "Compliant: the only egress is the forward proxy's tunnel to license.deepgram.com:443 (SNI in the tunnel), "
   "one short connection per minute; API and Engine talk only to the License Proxy (PROXY pass).",
   "compliant", {"DEST": "pass", "TLS": "pass", "VOLUME": "pass", "DURATION": "pass", "CADENCE": "pass",
                 "PROXY": "pass", "CREDENTIAL": "pass"},
   {"proxies": ["192.0.2.5:8443"], "forward_proxies": ["192.0.2.8:3128"]})
sc("held-connection",
   "API keeps ONE TLS connection to license.deepgram.com:443 open (HTTP/1.1 keep-alive, Python http.client) "
   "and sends one small POST over it every 60 s (7 bursts); the connection lasts the whole capture.",
   BASE + ["192.0.2.10"],
   "Compliant with this scenario's policy (allow_held_connection = true): one long flow whose per-minute "
   "bursts (about 0.6 KB of payload) stay within budget. With the default policy (allow_held_connection = "
   "false) DURATION is a finding/violation: a licensing connection held for ~6 minutes.",
   "compliant", {"DEST": "pass", "TLS": "pass", "VOLUME": "pass", "DURATION": "pass", "CADENCE": "pass"},
   {"allow_held_connection": True})
sc("exfil-bulk",
   "Normal cadence as in compliant-direct, but at the 4th check-in the API uploads ~5 MB (random bytes) "
   "inside its licensing TLS connection to license.deepgram.com.",
   BASE + PAIR,
   "VOLUME violation: 192.0.2.10 sends ~5.4 MB to license.deepgram.com:443 in one minute (budget 8192 "
   "bytes/min); AUDIO finding/violation (sustained upload that could carry ~2.8 min of 16 kHz PCM); other "
   "minutes and the Engine are within budget.",
   "violation", {"VOLUME": "violation", "DEST": "pass", "TLS": "pass", "CADENCE": "pass"})
sc("trickle",
   "Normal cadence, but every API check-in carries a ~30 KB usage report (about 20x normal): about 32 KB "
   "of client-to-server IP bytes each minute. The Engine stays normal.",
   BASE + PAIR,
   "VOLUME violation: 192.0.2.10 exceeds 8192 bytes/min in every minute (~32 KB/min, steady), enough for "
   "~30 s of 8 kbit/s Opus per minute; 192.0.2.11 within budget. Cadence and duration normal.",
   "violation", {"VOLUME": "violation", "DEST": "pass", "TLS": "pass", "CADENCE": "pass", "DURATION": "pass"})
sc("hosted-transcription",
   "Normal licensing (API, Engine) plus an application server (192.0.2.40) that POSTs a 30 s 16 kHz 16-bit "
   "mono WAV (~960 KB) to https://api.deepgram.com/v1/listen with Authorization: Token <api key> in minute 2, "
   "and in minute 4 streams 20 s of PCM in real time over a WebSocket (wss://api.deepgram.com/v1/listen, 100 ms chunks).",
   BASE + PAIR + ["192.0.2.40", "203.0.113.20"],
   "DEST/AUDIO violation: audio leaves to the hosted transcription endpoint api.deepgram.com:443 (SNI): "
   "one ~1 MB POST and one ~20 s WebSocket stream (~650 KB) from 192.0.2.40. Licensing itself compliant.",
   "violation", {"DEST": "violation", "AUDIO": "violation", "VOLUME": "pass", "CADENCE": "pass"})
sc("plaintext-licensing",
   "API and Engine check in every 60 s over plain HTTP to license.deepgram.com:80 with the license key "
   "Authorization: Token f1037f690e1c05405b0a71b8fc1df3d453b1bcad in clear (the public documentation example).",
   BASE + PAIR,
   "TLS violation (licensing over plaintext HTTP on port 80) and CREDENTIAL violation (license key in clear "
   "in an Authorization header, 14 times); every report must show the key redacted (f103...bcad).",
   "violation", {"TLS": "violation", "CREDENTIAL": "violation", "CADENCE": "pass", "VOLUME": "pass"})
sc("unknown-egress",
   "Normal licensing plus, from the API host: HTTPS POSTs to telemetry.example.net (DNS + SNI) in minutes "
   "2, 4, 6; TLS without SNI to the bare IP 198.51.100.77:443 and 4 KB over plain TCP to 198.51.100.77:9000 "
   "in minutes 3 and 5 (minute n = the n-th 60 s check-in slot).",
   BASE + PAIR + ["198.51.100.77"],
   "DEST violation: unknown egress from 192.0.2.10 to telemetry.example.net:443 (SNI, DNS) and to "
   "198.51.100.77:443 (TLS without SNI) and 198.51.100.77:9000 (plain TCP, no name). Licensing compliant.",
   "violation", {"DEST": "violation", "VOLUME": "pass", "CADENCE": "pass"})
sc("outage",
   "API and Engine check in every 60 s; check-ins 1-2 succeed; check-in 3: the licensing server's port is closed "
   "(TCP RST); check-in 4: SYNs to it are dropped by nftables in the server's namespace (curl --connect-timeout 5, "
   "SYN retransmissions); check-in 5: the resolver answers NXDOMAIN for license.deepgram.com; check-ins 6-7 recover.",
   BASE + PAIR,
   "CADENCE findings with causes read from packets: a minute of RST (REJ), a minute of unanswered SYNs (S0), "
   "a minute of DNS NXDOMAIN with no connection, then recovery. No violation.",
   "findings", {"CADENCE": "finding", "DEST": "pass", "VOLUME": "pass", "TLS": "pass"})
sc("dns-tunnel",
   "Normal licensing plus the API host sending 400 DNS queries (bursts of 80 in minutes 2-6, every 4th a TXT "
   "query) with high-entropy base32 labels of 40-57 characters under t.exfil-test.example to the internal "
   "resolver (dnsmasq answers A with 198.51.100.99, TXT with NOERROR and no data), and, in minute 3, one TXT query to an unapproved "
   "outside resolver 198.51.100.53.",
   BASE + PAIR + ["198.51.100.53"],
   "DNS violation/finding: tunnelling-shaped query volume and label entropy to one domain "
   "(t.exfil-test.example, ~400 unique names, ~100 TXT), and a query to the unapproved resolver "
   "198.51.100.53:53/udp (also a DEST violation). Licensing compliant.",
   "violation", {"DNS": "violation", "DEST": "violation", "VOLUME": "pass", "CADENCE": "pass"})
sc("proxy-bypass",
   "Like compliant-proxies (License Proxy + forward proxy), but the Engine (192.0.2.11) has a route out and "
   "checks in directly to license.deepgram.com:443, bypassing the License Proxy; the API uses the proxy.",
   BASE + PAIR + PROXIES,
   "PROXY finding: 192.0.2.11 talks directly to license.deepgram.com:443 although a License Proxy "
   "(192.0.2.5:8443) and forward proxy are configured; the proxy path itself is compliant.",
   "findings", {"PROXY": "finding", "DEST": "pass", "VOLUME": "pass", "CADENCE": "pass", "TLS": "pass"},
   {"proxies": ["192.0.2.5:8443"], "forward_proxies": ["192.0.2.8:3128"]})
sc("ipv6-vlan",
   "Licensing over IPv6 only: API 2001:db8:1::10 and Engine 2001:db8:1::11 resolve license.deepgram.com "
   "(AAAA 2001:db8:100::10) through 2001:db8:1::53 and check in every 60 s over TLS; every frame on the "
   "captured LAN carries an 802.1Q tag, VLAN 100.",
   ["2001:db8:1::1", "2001:db8:1::10", "2001:db8:1::11", "2001:db8:1::53", "2001:db8:100::10"],
   "Compliant, like compliant-direct, once 802.1Q and IPv6 are decoded (every frame is VLAN 100; "
   "per-minute egress counted as IPv6 payload length + 40).",
   "compliant", {"DEST": "pass", "TLS": "pass", "VOLUME": "pass", "CADENCE": "pass", "DURATION": "pass"})
sc("ingress-bypass",
   "Normal licensing plus the self-hosted API listener 192.0.2.20:8080 (plain HTTP): an outside client "
   "198.51.100.50 POSTs 2 s WAV clips (64 KB) straight to it in minutes 2, 4, 6, while 198.51.100.60 goes "
   "through the gateway 192.0.2.30:443 (nginx, TLS, API-key check, proxies to 192.0.2.20:8080) in minutes "
   "2-6, and an internal app 192.0.2.40 calls 192.0.2.20:8080 directly in minutes 3 and 5.",
   BASE + PAIR + ["192.0.2.20", "192.0.2.30", "192.0.2.40", "198.51.100.50", "198.51.100.60"],
   "INGRESS violation: 198.51.100.50 (outside, not a gateway) reaches the API port 192.0.2.20:8080 directly, "
   "in plaintext, 3 times; 198.51.100.60 -> 192.0.2.30:443 and 192.0.2.30/192.0.2.40 -> 192.0.2.20:8080 are "
   "allowed. Licensing compliant.",
   "violation", {"INGRESS": "violation", "VOLUME": "pass", "CADENCE": "pass"})

NOISY = ("ARP (kernel); DHCP (busybox udhcpc on a laptop without an address, broadcast flag set: DISCOVER/REQUEST "
         "0.0.0.0:68 -> 255.255.255.255:67, OFFER/ACK from dnsmasq 192.0.2.53 to 255.255.255.255:68, twice); "
         "mDNS queries and announcements to 224.0.0.251:5353 and [ff02::fb]:5353; LLMNR queries to 224.0.0.252:5355 "
         "and [ff02::1:3]:5355 (IP TTL / hop limit 1); NetBIOS name queries (nmblookup) to the directed broadcast "
         "192.0.2.255:137; SSDP M-SEARCH to 239.255.255.250:1900 with IP TTL 1 and a unicast SSDP reply; IGMPv2 "
         "(one PC) and IGMPv3 (224.0.0.22) membership reports; IPv6 link-local only (fe80::/64): router "
         "solicitations to ff02::2, DAD neighbour solicitations to ff02::1:ffXX:XXXX, MLDv2 reports to ff02::16; "
         "NTP (ntpdig) from the API host to 203.0.113.123:123 each minute; Dropbox LAN-sync broadcasts to "
         "255.255.255.255:17500")
sc("noisy-lan",
   "compliant-direct (API 192.0.2.10 and Engine 192.0.2.11 check in to license.deepgram.com every 60 s) on an "
   "ordinary noisy office LAN, produced by real programs and the kernel: " + NOISY + ". Office PCs 192.0.2.101 and "
   "192.0.2.102, a DHCP client without an address; the switch floods multicast (no IGMP snooping).",
   BASE + PAIR + ["192.0.2.101", "192.0.2.102", "192.0.2.150", "203.0.113.123"],
   "Compliant, every control as compliant-direct: the LAN noise (broadcast, link-local multicast, IPv6 "
   "link-local, 0.0.0.0 and :: sources) never leaves the link and is not egress, whatever the policy's "
   "internal list says; the only non-licensing egress is NTP to 203.0.113.123:123/udp, admitted by "
   "[egress] allow. (A DEST violation here is a false positive.)",
   "compliant", {"DEST": "pass", "TLS": "pass", "VOLUME": "pass", "DURATION": "pass", "CADENCE": "pass",
                 "AUDIO": "pass", "CREDENTIAL": "pass", "PROXY": "not_applicable", "DNS": "pass",
                 "INGRESS": "not_applicable", "CAPTURE": "pass"},
   {"egress_allow": ["203.0.113.123:123/udp"]})
sc("sni-mismatch",
   "Normal licensing for API and Engine (DNS license.deepgram.com -> 203.0.113.10, TLS every 60 s). In addition, "
   "each minute (7 times) the API host looks up api.deepgram.com (the capture's DNS answers 203.0.113.20) and "
   "opens TLS 1.3 with SNI license.deepgram.com to 203.0.113.20:443 (curl --resolve); the server there presents "
   "a certificate valid for license.deepgram.com, the handshake completes and a small POST "
   "/v1/licenses/check is sent.",
   BASE + PAIR + ["203.0.113.20"],
   "DEST finding: licensing-looking TLS (SNI license.deepgram.com) from 192.0.2.10 to 203.0.113.20:443, an "
   "address that no DNS answer in the capture gave for license.deepgram.com and that the capture's DNS gives "
   "to api.deepgram.com, a hosted transcription name; the finding carries both pieces of evidence (the SNI, "
   "and the DNS answer api.deepgram.com -> 203.0.113.20). Those flows are not check-ins to the licensing server "
   "(no DNS answer ties 203.0.113.20 to license.deepgram.com), so licensing.* in the JSON, VOLUME and CADENCE "
   "count only the flows to 203.0.113.10, which are compliant.",
   "findings", {"DEST": "finding", "TLS": "pass", "VOLUME": "pass", "DURATION": "pass", "CADENCE": "pass",
                 "AUDIO": "pass", "CREDENTIAL": "pass", "PROXY": "not_applicable", "DNS": "pass",
                 "INGRESS": "not_applicable", "CAPTURE": "pass"})
sc("resolver-egress-allow",
   "compliant-direct without an internal resolver: API and Engine resolve license.deepgram.com through the "
   "EXTERNAL resolver 203.0.113.53:53/udp (dnsmasq outside the LAN) and check in every 60 s over TLS.",
   ["192.0.2.1", "203.0.113.10", "203.0.113.53"] + PAIR,
   "Compliant: the DNS egress to 203.0.113.53:53/udp is admitted by the policy's [egress] allow "
   "(\"203.0.113.53:53/udp\") with [dns] resolvers left unset; licensing as in compliant-direct.",
   "compliant", {"DEST": "pass", "TLS": "pass", "VOLUME": "pass", "DURATION": "pass", "CADENCE": "pass",
                 "AUDIO": "pass", "CREDENTIAL": "pass", "PROXY": "not_applicable", "DNS": "pass",
                 "INGRESS": "not_applicable", "CAPTURE": "pass"},
   {"egress_allow": ["203.0.113.53:53/udp"],
    "resolver": "none inside; 203.0.113.53 outside, admitted only by [egress] allow ([dns] resolvers unset)"})
sc("outage-syn",
   "API and Engine check in every 60 s (curl --connect-timeout 8); check-ins 1-2 succeed; at check-in 3 "
   "nftables in the licensing server's namespace drops TCP/443, so each client's SYN goes unanswered and is "
   "retransmitted (about 1, 3 and 7 s later) until curl gives up after 8 s; check-ins 4-7 succeed again.",
   BASE + PAIR,
   "CADENCE finding only: one missed check-in per client (minute 3) with its cause read from packets (SYNs "
   "unanswered, state S0, 4 SYNs over ~7 s), then recovery. DURATION pass: the failed attempts are not held "
   "connections. No violation.",
   "findings", {"DEST": "pass", "TLS": "pass", "VOLUME": "pass", "DURATION": "pass", "CADENCE": "finding",
                 "AUDIO": "pass", "CREDENTIAL": "pass", "PROXY": "not_applicable", "DNS": "pass",
                 "INGRESS": "not_applicable", "CAPTURE": "pass"})

ORDER = list(S)


def policy_toml(name):
    """A dg-audit policy using exactly the keys of DESIGN.md section 4."""
    p = {
        "proxies": [], "forward_proxies": [], "allow_held_connection": False,
    }
    p.update(S[name]["policy"])

    def arr(xs):
        return "[" + ", ".join('"%s"' % x for x in xs) + "]"

    return f"""# dg-audit policy for captures/{name}.pcap (written by captures/recorder/expected.py)
schema_version = 1

[network]
internal = {arr(INTERNAL)}

[licensing]
servers = ["license.deepgram.com:443"]
proxies = {arr(p["proxies"])}
forward_proxies = {arr(p["forward_proxies"])}
max_egress_bytes_per_minute = 8192
max_connection_seconds = 5
cadence_seconds = 60
cadence_tolerance_seconds = 15
allow_held_connection = {"true" if p["allow_held_connection"] else "false"}

[transcription]
hosted = ["api.deepgram.com", "*.api.deepgram.com", "api.*.deepgram.com"]

[egress]
allow = {arr(p.get("egress_allow", []))}

[ingress]
api_ports = [8080]
gateways = ["192.0.2.30"]
"""
