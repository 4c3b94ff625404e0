#!/usr/bin/env python3
"""Writes captures/README.md from the NAME.expected.json files beside the captures."""
import argparse
import json
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import scenarios  # noqa: E402

HEAD = """# captures/: real recorded traffic for dg-audit

Every `NAME.pcap` here was recorded by `record.sh` with real programs (curl, OpenSSL through Python's
`ssl`, dnsmasq, tinyproxy, nginx, socat, dig, tcpdump) talking to each other inside private Linux
network namespaces. Nothing is synthesised packet by packet. The sensor is `tcpdump -s 0` on the
customer LAN's bridge (`br0` in the switch namespace), so it sees internal and egress flows alike, as a
SPAN port would. Each scenario ran for 6-7 minutes with a 60 s licensing cadence; the first 13 were
recorded in parallel, and noisy-lan, sni-mismatch, resolver-egress-allow and outage-syn were added later,
recorded in parallel the same way (nmblookup, busybox udhcpc and ntpdig join the programs above there).

Beside each capture:
- `NAME.expected.json`: facts measured with **tshark** (not with dg-audit) by `recorder/expected.py`:
  duration, packets, address plan, a policy hint, per-minute licensing egress per source
  (`licensing.per_minute`: IP bytes, payload bytes, retransmissions, connections), every licensing flow
  (state, duration, bytes), the CONNECT tunnels and License Proxy check-ins, TLS SNI, DNS query names,
  answers and rcodes, HTTP hosts/requests/CONNECT targets, cleartext credentials (redacted),
  egress destinations, inbound flows from outside, and the intended verdict (`verdict_intent`,
  `expected_verdict`, `expected_controls`).
- `NAME.policy.toml`: a ready dg-audit policy (the keys of DESIGN.md section 4) for that scenario.

How licensing egress is counted (see `licensing.counted_flows` in each JSON): TCP flows whose server is
license.deepgram.com (203.0.113.10 or 2001:db8:100::10) on 443 (80 in plaintext-licensing); behind a
forward proxy, that is the proxy's upstream leg 192.0.2.8 -> 203.0.113.10:443. Egress = client-to-server
packets; IP bytes = `ip.len` (IPv6: `ipv6.plen` + 40); payload = `tcp.len` with retransmissions included
(`retransmitted_payload_bytes` lets you subtract them); minutes are `[floor(ts/60)*60, +60)`.

## Captures

| capture | origin | what it contains | intended verdict | duration | packets | size |
|---|---|---|---|---|---|---|
"""

TAIL = """
## Re-recording

```
sudo bash captures/record.sh                      # all 17 scenarios in parallel, about 8 minutes
sudo bash captures/record.sh outage dns-tunnel    # some of them
CADENCE=10 CHECKINS=7 OUT=/tmp/cap sudo -E bash captures/record.sh   # quick debug run elsewhere
```

It needs root and Debian packages it installs itself when missing (dnsmasq, tcpdump, tshark,
tinyproxy, socat, nginx-light, curl, openssl, ethtool, nftables, bind9-dnsutils, iproute2, busybox for
udhcpc, samba-common-bin for nmblookup, sntp for ntpdig), plus Python 3 (stdlib only). `KEEP_WORK=1` keeps the per-scenario logs (server, client, dnsmasq,
tinyproxy, nginx) under `/tmp/dg-record.*`. A new recording changes timestamps, keys and random bytes,
so the expected JSON is regenerated with it; the PKI (test CA and leaf certificates for
license.deepgram.com, api.deepgram.com, license-proxy, telemetry.example.net, api.customer.example) is
made by openssl for each run in the temporary directory and thrown away.

Files: `record.sh` (orchestrator, PKI, safety gate), `recorder/scenario.sh` (one scenario's
namespaces and traffic), `recorder/dgsim.py` (servers: licensing, License Proxy, hosted API with
WebSocket, self-hosted API, telemetry, TCP sink, NTP; clients: held connection, WebSocket streamer, DNS
tunnel, office-LAN noise (mDNS, LLMNR, SSDP, Dropbox LAN sync); WAV generator; 802.1Q relay), `recorder/scenarios.py` (descriptions, intents, policies),
`recorder/expected.py` (tshark measurements), `recorder/readme.py` (this file).

## Address plan

The customer LAN is 192.0.2.0/24 (IPv6: 2001:db8:1::/64 on VLAN 100); "the internet" is 203.0.113.0/24
and 198.51.100.0/24 (IPv6: 2001:db8:100::/64) behind the customer router. Only the hosts a scenario
needs exist in it (see `address_plan` in its JSON).

| address | role |
|---|---|
"""

SAFETY = """
## Network-safety rules (the recorder enforces them)

- Everything runs in network namespaces the script creates (prefix `dgrNN-`, one set per scenario):
  hosts, a router, and a "switch" namespace holding the LAN bridge `br0` (captured) and the outside
  bridge `br1`. veth pairs are created directly between those namespaces. The root namespace gets no
  address, no route and no interface.
- Only 192.0.2.0/24, 198.51.100.0/24, 203.0.113.0/24, 2001:db8::/32 and loopback are used. There are no
  default routes: LAN hosts that may go out get routes to 203.0.113.0/24 and 198.51.100.0/24 via the
  router 192.0.2.1, nothing else.
- IPv6 is disabled (`net.ipv6.conf.{all,default}.disable_ipv6=1`) in every namespace except ipv6-vlan,
  where only 2001:db8:: addresses are used, with `nodad`, no link-local addresses (`addr_gen_mode=1`),
  no router solicitations and static neighbour entries, so the capture has no ND/MLD multicast; and
  noisy-lan, where IPv6 is enabled on the LAN interfaces only (`eth0`, after the capture starts) and has
  link-local addresses only (fe80::/64, no router answers), so the kernel's router solicitations, DAD
  neighbour solicitations and MLD reports are on the wire.
- Names resolve through `/etc/netns/<ns>/resolv.conf` to the scenario's own dnsmasq (`no-resolv`, no
  upstream), authoritative for the test names (license.deepgram.com -> 203.0.113.10, api.deepgram.com ->
  203.0.113.20, telemetry.example.net -> 198.51.100.77, license-proxy -> 192.0.2.5, forward-proxy ->
  192.0.2.8).
- Every traffic loop is bounded in count (`seq 1 $CHECKINS`, 400 DNS queries at most) and in time
  (`timeout` on every client and server, the whole scenario under `timeout`). An EXIT trap kills the
  processes it started (by pid and by namespace) and deletes its namespaces and `/etc/netns` entries,
  also on failure or Ctrl-C; leftovers of an interrupted run (`dgrNN-*`) are removed at the next start.
- After recording, `recorder/expected.py` lists every address in each capture (IPv4, IPv6, ARP, and
  inside ICMP errors) with tshark and fails the run if one is outside those ranges, if IPv6 appears in an
  IPv4 scenario, or if an unexpected EtherType shows up. Only noisy-lan may also hold the exact LAN-local
  addresses its noise uses: 0.0.0.0, 255.255.255.255, 224.0.0.22, 224.0.0.251, 224.0.0.252,
  239.255.255.250, ::, fe80::/64, ff02::2, ff02::16, ff02::fb, ff02::1:3 and ff02::1:ff00:0/104
  (`LAN_LOCAL_ALLOWED` in expected.py); its DHCP server offers no router and its client configures
  nothing (`udhcpc -s /bin/true`).

## Notes on how the captures were made

- Offloads (TSO/GSO/GRO, TX checksum) are off on every veth, so frames are at most MTU-sized with valid
  checksums, as on a real wire.
- This kernel has no 8021q module and no bridge VLAN filtering, so in ipv6-vlan each host's IP interface
  is one end of a veth pair whose other end is served by `dgsim.py vlanrelay`, a userspace 802.1Q port
  that adds the VLAN 100 tag towards the switch and removes it towards the host (AF_PACKET sockets).
  The frames on the captured bridge really carry the 802.1Q header (checked by expected.py: every frame
  is VLAN 100).
- In outage, "SYNs unanswered" is an nftables rule dropping TCP/443 in the licensing server's namespace;
  "port closed" is the server stopped (kernel RST); "DNS fails" is dnsmasq reloaded (SIGHUP) without the
  name, so it answers NXDOMAIN.
- The license key `f1037f690e1c05405b0a71b8fc1df3d453b1bcad` is the public documentation example; it is
  only in clear in plaintext-licensing (inside TLS everywhere else). The hosted API key is made up.
- noisy-lan: `lan_local_traffic` in its JSON counts the noise per protocol (frames, kinds, destinations,
  sources, IP TTL / hop limits) as tshark decodes it; mDNS and LLMNR are left out of the `dns` figures
  (they are link-local name resolution, not queries to a resolver), and multicast/broadcast destinations
  are left out of `egress_destinations`. The switch bridge has IGMP snooping off (a dumb switch), one PC
  is forced to IGMPv2 (`force_igmp_version=2`), the other uses the default IGMPv3.
- sni-mismatch: the API host runs `dig api.deepgram.com`, then `curl --resolve
  license.deepgram.com:443:<that address>`, so the SNI says license.deepgram.com while the only DNS answer
  for 203.0.113.20 in the capture is api.deepgram.com (see `tls_sni_vs_dns` in its JSON).
- resolver-egress-allow: there is no internal resolver; `/etc/netns/*/resolv.conf` of API and Engine
  points to 203.0.113.53, a dnsmasq behind the router.
- outage-syn: nftables drops TCP/443 in the licensing server's namespace for check-in 3 only; curl runs
  with `--connect-timeout 8`, so each client sends its SYN and three retransmissions (about 1, 3, 7 s).
- Check-ins are scheduled on absolute minute boundaries (API at :12, Engine at :27, License Proxy
  upstream at :05 of each minute), so each per-minute window holds one check-in per client.
"""


def human(n):
    return f"{n / 1048576:.1f} MB" if n >= 1048576 else f"{n / 1024:.0f} KB"


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--dir", required=True)
    a = ap.parse_args()
    rows = []
    for name in scenarios.ORDER:
        p = os.path.join(a.dir, f"{name}.expected.json")
        if not os.path.exists(p):
            continue
        d = json.load(open(p))
        meta = scenarios.S[name]
        dur = d["duration_seconds"]
        rows.append(f"| `{name}.pcap` | recorded {d['recorded_at'][:10]}, cadence {d['cadence_seconds']} s, "
                    f"{d['checkins_per_client']} check-ins per client | {meta['description']} | "
                    f"{meta['expected_verdict']}: {meta['verdict_intent']} | {int(dur // 60)} min {dur % 60:.0f} s | "
                    f"{d['packets']} | {human(d['file']['bytes'])} |")
    plan = "\n".join(f"| {ip} | {role} |" for ip, role in scenarios.HOSTS.items())
    with open(os.path.join(a.dir, "README.md"), "w") as f:
        f.write(HEAD + "\n".join(rows) + "\n" + TAIL + plan + "\n" + SAFETY)
    print("README.md:", len(rows), "captures")


if __name__ == "__main__":
    main()
