#!/usr/bin/env python3
"""Measures a recorded capture with tshark (not with dg-audit) and writes
captures/NAME.expected.json and captures/NAME.policy.toml.

Also the network-safety gate: exits non-zero if the capture holds any address outside
192.0.2.0/24, 198.51.100.0/24, 203.0.113.0/24, 2001:db8::/32 and loopback, any IPv6 in a
scenario that must not have it, or an unexpected EtherType.
"""
import argparse
import collections
import datetime
import hashlib
import ipaddress
import json
import math
import os
import re
import subprocess
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import scenarios  # noqa: E402

ALLOWED = [ipaddress.ip_network(n) for n in
           ("192.0.2.0/24", "198.51.100.0/24", "203.0.113.0/24", "2001:db8::/32", "127.0.0.0/8", "::1/128")]
# the link-local, multicast, broadcast and unspecified addresses a scenario legitimately uses on its own
# LAN (and nothing else): noisy-lan's office noise never leaves the link
LAN_LOCAL_ALLOWED = {
    "noisy-lan": [ipaddress.ip_network(n) for n in (
        "0.0.0.0/32",            # DHCP client before it has an address
        "255.255.255.255/32",    # DHCP, Dropbox LAN sync (limited broadcast)
        "224.0.0.22/32",         # IGMPv3 membership reports
        "224.0.0.251/32",        # mDNS (and IGMPv2 reports for it)
        "224.0.0.252/32",        # LLMNR (and IGMPv2 reports for it)
        "239.255.255.250/32",    # SSDP (and IGMPv2 reports for it)
        "::/128",                # DAD neighbour solicitations, MLD reports before a link-local address exists
        "fe80::/64",             # IPv6 link-local host addresses
        "ff02::2/128",           # router solicitations
        "ff02::16/128",          # MLDv2 reports
        "ff02::fb/128",          # mDNS over IPv6
        "ff02::1:3/128",         # LLMNR over IPv6
        "ff02::1:ff00:0/104",    # solicited-node multicast (DAD / neighbour solicitations)
    )],
}
V6_SCENARIOS = {"ipv6-vlan", "noisy-lan"}
INTERNAL = [ipaddress.ip_network(n) for n in scenarios.INTERNAL]
LICENSE_SERVERS = {"203.0.113.10", "2001:db8:100::10"}
LICENSE_PROXY = ("192.0.2.5", 8443)
FORWARD_PROXY = ("192.0.2.8", 3128)
KEY_RE = re.compile(r"Token\s+([0-9A-Za-z]{20,})")

FIELDS = [
    "frame.number", "frame.time_epoch", "frame.len", "eth.type", "vlan.id",
    "ip.src", "ip.dst", "ip.len", "ipv6.src", "ipv6.dst", "ipv6.plen",
    "arp.src.proto_ipv4", "arp.dst.proto_ipv4", "icmp.type",
    "tcp.stream", "tcp.srcport", "tcp.dstport", "tcp.len", "tcp.flags.syn", "tcp.flags.ack",
    "tcp.flags.reset", "tcp.flags.fin",
    "udp.srcport", "udp.dstport",
    "dns.flags.response", "dns.qry.name", "dns.qry.type", "dns.flags.rcode", "dns.a", "dns.aaaa",
    "tls.handshake.type", "tls.handshake.extensions_server_name",
    "http.request.method", "http.request.uri", "http.host", "http.authorization", "http.response.code",
]


def tshark_rows(pcap):
    cmd = ["tshark", "-n", "-r", pcap, "-d", "tcp.port==8443,tls", "-d", "tcp.port==3128,http",
           "-o", "tls.desegment_ssl_records:TRUE", "-o", "tcp.desegment_tcp_streams:TRUE",
           "-T", "fields", "-E", "separator=\t", "-E", "occurrence=a", "-E", "aggregator=|"]
    for f in FIELDS:
        cmd += ["-e", f]
    out = subprocess.run(cmd, check=True, capture_output=True, text=True).stdout
    for line in out.splitlines():
        vals = line.split("\t")
        vals += [""] * (len(FIELDS) - len(vals))
        yield {f: v for f, v in zip(FIELDS, vals)}


def retransmitted_frames(pcap):
    out = subprocess.run(["tshark", "-n", "-r", pcap, "-Y", "tcp.analysis.retransmission", "-T", "fields",
                          "-e", "frame.number"], check=True, capture_output=True, text=True).stdout
    return {int(x) for x in out.split()}


def first(v):
    return v.split("|")[0] if v else ""


def allv(v):
    return [x for x in v.split("|") if x] if v else []


def is_internal(a):
    try:
        ip = ipaddress.ip_address(a)
    except ValueError:
        return False
    return any(ip in n for n in INTERNAL)


def lan_local(a):
    """Multicast, broadcast, link-local or unspecified: traffic that never leaves the link."""
    try:
        ip = ipaddress.ip_address(a)
    except ValueError:
        return False
    if ip.version == 4 and (ip == ipaddress.ip_address("255.255.255.255") or str(ip).endswith(".255")
                            and ip in ipaddress.ip_network("192.0.2.0/24")):
        return True
    return ip.is_multicast or ip.is_link_local or ip.is_unspecified


LOCAL_FIELDS = ["frame.number", "frame.protocols", "eth.type", "ip.src", "ip.dst", "ip.ttl", "ipv6.src", "ipv6.dst",
                "ipv6.hlim", "udp.srcport", "udp.dstport", "icmpv6.type", "igmp.type", "igmp.version", "arp.opcode",
                "dhcp.option.dhcp", "dns.flags.response"]
UDP_SERVICES = {67: "dhcp", 68: "dhcp", 5353: "mdns", 5355: "llmnr", 137: "netbios-ns", 1900: "ssdp",
                123: "ntp", 17500: "dropbox-lansync"}
DHCP_TYPES = {"1": "DISCOVER", "2": "OFFER", "3": "REQUEST", "4": "DECLINE", "5": "ACK", "6": "NAK", "7": "RELEASE",
              "8": "INFORM"}
ICMP6_TYPES = {"133": "router-solicitation", "134": "router-advertisement", "135": "neighbour-solicitation",
               "136": "neighbour-advertisement", "143": "mldv2-report", "131": "mldv1-report", "130": "mld-query"}
IGMP_TYPES = {"0x11": "query", "0x12": "v1-report", "0x16": "v2-report", "0x17": "v2-leave", "0x22": "v3-report"}


def local_traffic(pcap):
    """Per protocol: frames, destinations, sources and IP TTL / hop limits, from tshark.  Covers the
    traffic a real office LAN carries besides the audited flows (ARP, DHCP, mDNS, LLMNR, NetBIOS-NS, SSDP,
    IGMP, ICMPv6 RS/NS/MLD, NTP, Dropbox LAN sync)."""
    cmd = ["tshark", "-n", "-r", pcap, "-T", "fields", "-E", "separator=\t", "-E", "occurrence=f"]
    for f in LOCAL_FIELDS:
        cmd += ["-e", f]
    out = subprocess.run(cmd, check=True, capture_output=True, text=True).stdout
    prot = {}

    def add(name, src, dst, ttl=None, kind=None):
        p = prot.setdefault(name, {"frames": 0, "destinations": collections.Counter(), "sources": set(),
                                   "ttl_or_hop_limit": set(), "kinds": collections.Counter()})
        p["frames"] += 1
        if dst:
            p["destinations"][dst] += 1
        if src:
            p["sources"].add(src)
        if ttl:
            p["ttl_or_hop_limit"].add(int(ttl))
        if kind:
            p["kinds"][kind] += 1
    for line in out.splitlines():
        v = dict(zip(LOCAL_FIELDS, line.split("\t") + [""] * len(LOCAL_FIELDS)))
        protos = v["frame.protocols"].split(":")
        src = v["ip.src"] or v["ipv6.src"]
        dst = v["ip.dst"] or v["ipv6.dst"]
        ttl = v["ip.ttl"] or v["ipv6.hlim"]
        if v["eth.type"].endswith("0806") or "arp" in protos:
            add("arp", "", "", kind="request" if v["arp.opcode"] == "1" else "reply")
        elif "igmp" in protos:
            add("igmp", src, dst, ttl, IGMP_TYPES.get(v["igmp.type"], v["igmp.type"]))
        elif v["icmpv6.type"]:
            add("icmpv6", src, dst, ttl, ICMP6_TYPES.get(v["icmpv6.type"], "type " + v["icmpv6.type"]))
        elif v["udp.dstport"]:
            sp, dp = int(v["udp.srcport"]), int(v["udp.dstport"])
            svc = UDP_SERVICES.get(dp) or UDP_SERVICES.get(sp)
            if svc is None:
                continue
            kind = None
            if svc == "dhcp":
                kind = DHCP_TYPES.get(v["dhcp.option.dhcp"], v["dhcp.option.dhcp"])
            elif svc == "ssdp":
                kind = "M-SEARCH" if lan_local(dst) else "response"
            elif svc in ("mdns", "llmnr"):
                kind = "response" if v["dns.flags.response"] in ("1", "True") else "query"
            elif svc == "ntp":
                kind = "client request" if dp == 123 else "server reply"
            elif svc in ("netbios-ns", "dropbox-lansync"):
                kind = "to port %d" % dp
            add(svc + ("-v6" if ":" in (dst or "") and svc in ("mdns", "llmnr") else ""), src, dst, ttl, kind)
    return {k: {"frames": p["frames"], "destinations": dict(p["destinations"].most_common()),
                "sources": sorted(p["sources"], key=lambda x: (":" in x, x)),
                "ttl_or_hop_limit": sorted(p["ttl_or_hop_limit"]), "kinds": dict(p["kinds"])}
            for k, p in sorted(prot.items())}


def minute(ts):
    return int(math.floor(ts / 60.0) * 60)


def redact(secret):
    return {"redacted": secret[:4] + "..." + secret[-4:],
            "sha256_prefix": hashlib.sha256(secret.encode()).hexdigest()[:12], "length": len(secret)}


def capture_stats(path):
    st = {}
    if path and os.path.exists(path):
        txt = open(path).read()
        for key, pat in (("captured", r"(\d+) packets captured"), ("received_by_filter", r"(\d+) packets received by filter"),
                         ("dropped_by_kernel", r"(\d+) packets dropped by kernel"),
                         ("dropped_by_interface", r"(\d+) packets dropped by interface")):
            m = re.search(pat, txt)
            if m:
                st[key] = int(m.group(1))
    return st


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--scenario", required=True)
    ap.add_argument("--pcap", required=True)
    ap.add_argument("--tcpdump-log")
    ap.add_argument("--cadence", type=int, default=60)
    ap.add_argument("--checkins", type=int, default=7)
    ap.add_argument("--out-dir", required=True)
    a = ap.parse_args()
    meta = scenarios.S[a.scenario]
    v6_allowed = a.scenario in V6_SCENARIOS
    allowed = ALLOWED + LAN_LOCAL_ALLOWED.get(a.scenario, [])

    rows = list(tshark_rows(a.pcap))
    retx = retransmitted_frames(a.pcap)
    if not rows:
        sys.exit(f"{a.pcap}: no packets")
    problems = []
    addrs = set()
    ethertypes = collections.Counter()
    vlans = collections.Counter()
    streams = {}
    dns_q = collections.Counter()
    dns_q_types = collections.Counter()
    dns_servers = collections.Counter()
    dns_answers = collections.defaultdict(set)
    dns_rcodes = collections.defaultdict(collections.Counter)
    sni = collections.Counter()
    sni_by_server = collections.defaultdict(set)
    hello_no_sni = collections.Counter()
    http_hosts = collections.Counter()
    connect_targets = collections.Counter()
    http_reqs = collections.Counter()
    creds = {}
    udp_flows = collections.Counter()
    udp_bytes = collections.Counter()
    RCODES = {"0": "NOERROR", "2": "SERVFAIL", "3": "NXDOMAIN", "5": "REFUSED"}
    QTYPES = {"1": "A", "28": "AAAA", "16": "TXT", "12": "PTR", "5": "CNAME"}

    for r in rows:
        ts = float(r["frame.time_epoch"])
        for et in allv(r["eth.type"]):
            ethertypes[et] += 1
        for v in allv(r["vlan.id"]):
            vlans[v] += 1
        for f in ("ip.src", "ip.dst", "ipv6.src", "ipv6.dst", "arp.src.proto_ipv4", "arp.dst.proto_ipv4"):
            for x in allv(r[f]):
                addrs.add(x)
        if r["ipv6.src"] and not v6_allowed:
            problems.append(f"frame {r['frame.number']}: IPv6 in a scenario without IPv6")
        src = first(r["ip.src"]) or first(r["ipv6.src"])
        dst = first(r["ip.dst"]) or first(r["ipv6.dst"])
        if r["ip.len"]:
            iplen = int(first(r["ip.len"]))
        elif r["ipv6.plen"]:
            iplen = int(first(r["ipv6.plen"])) + 40
        else:
            iplen = 0
        is_icmp = bool(r["icmp.type"])
        # ---- TCP
        if r["tcp.stream"] and not is_icmp:
            sid = int(first(r["tcp.stream"]))
            sp, dp = int(first(r["tcp.srcport"])), int(first(r["tcp.dstport"]))
            syn = first(r["tcp.flags.syn"]) in ("1", "True")
            ack = first(r["tcp.flags.ack"]) in ("1", "True")
            s = streams.get(sid)
            if s is None:
                if syn and ack:   # mid-stream SYN-ACK first: originator is the other side
                    s = {"client": dst, "cport": dp, "server": src, "sport": sp}
                elif syn or sp > dp:
                    s = {"client": src, "cport": sp, "server": dst, "sport": dp}
                else:
                    s = {"client": dst, "cport": dp, "server": src, "sport": sp}
                s.update(start=ts, end=ts, syn_seen=syn and not ack, pkts=[], synack=False, rst_from_server=False,
                         rst_from_client=False, fin=False, sni=set(), connect=set(), s2c_ip=0, s2c_payload=0,
                         c2s_ip=0, c2s_payload=0, c2s_retrans=0, c2s_retrans_payload=0, syns=0, c2s_pkts=0, s2c_pkts=0)
                streams[sid] = s
            s["end"] = ts
            tlen = int(first(r["tcp.len"]) or 0)
            retrans = int(r["frame.number"]) in retx
            c2s = (src == s["client"] and sp == s["cport"])
            rst = first(r["tcp.flags.reset"]) in ("1", "True")
            if first(r["tcp.flags.fin"]) in ("1", "True"):
                s["fin"] = True
            if c2s:
                s["c2s_ip"] += iplen
                s["c2s_payload"] += tlen
                s["c2s_pkts"] += 1
                if retrans:
                    s["c2s_retrans"] += 1
                    s["c2s_retrans_payload"] += tlen
                if syn and not ack:
                    s["syns"] += 1
                if rst:
                    s["rst_from_client"] = True
                s["pkts"].append((ts, iplen, tlen, retrans, syn and not ack))
            else:
                s["s2c_ip"] += iplen
                s["s2c_payload"] += tlen
                s["s2c_pkts"] += 1
                if syn and ack:
                    s["synack"] = True
                if rst:
                    s["rst_from_server"] = True
            for n in allv(r["tls.handshake.extensions_server_name"]):
                s["sni"].add(n)
            if "1" in allv(r["tls.handshake.type"]) and c2s:
                names = allv(r["tls.handshake.extensions_server_name"])
                if names:
                    for n in names:
                        sni[n] += 1
                        sni_by_server[n].add(f"{s['server']}:{s['sport']}" if ":" not in s["server"]
                                             else f"[{s['server']}]:{s['sport']}")
                else:
                    hello_no_sni[f"{s['client']} -> {s['server']}:{s['sport']}"] += 1
            meths = allv(r["http.request.method"])
            uris = allv(r["http.request.uri"])
            hosts = allv(r["http.host"])
            for i, m in enumerate(meths):
                uri = uris[i] if i < len(uris) else ""
                if m == "CONNECT":
                    connect_targets[uri] += 1
                    s["connect"].add(uri)
                host = hosts[i] if i < len(hosts) else ""
                http_reqs[(src, dst, dp, m, host, uri.split("?")[0])] += 1
            for h in hosts:
                http_hosts[h] += 1
            for au in allv(r["http.authorization"]):
                mm = KEY_RE.search(au)
                if mm:
                    k = mm.group(1)
                    c = creds.setdefault(k, {"header": "Authorization", "scheme": "Token", **redact(k),
                                             "count": 0, "sources": set(), "destinations": set()})
                    c["count"] += 1
                    c["sources"].add(src)
                    c["destinations"].add(f"{dst}:{dp}")
        # ---- UDP / DNS
        link_dns = False
        if r["udp.srcport"] and not is_icmp:
            usp, udp_ = int(first(r["udp.srcport"])), int(first(r["udp.dstport"]))
            link_dns = bool({usp, udp_} & {5353, 5355})   # mDNS / LLMNR: link-local name resolution
            if r["dns.flags.response"] not in ("1", "True") and not lan_local(dst):
                udp_flows[(src, dst, udp_)] += 1
                udp_bytes[(src, dst, udp_)] += iplen
        if r["dns.qry.name"] and not is_icmp and not link_dns:
            name = first(r["dns.qry.name"])
            qt = QTYPES.get(first(r["dns.qry.type"]), first(r["dns.qry.type"]))
            if r["dns.flags.response"] in ("0", "False"):
                dns_q[name] += 1
                dns_q_types[qt] += 1
                dns_servers[dst] += 1
            else:
                dns_rcodes[name][RCODES.get(r["dns.flags.rcode"], r["dns.flags.rcode"])] += 1
                for x in allv(r["dns.a"]) + allv(r["dns.aaaa"]):
                    dns_answers[name].add(x)

    # ---- safety gate
    for x in sorted(addrs):
        try:
            ip = ipaddress.ip_address(x)
        except ValueError:
            problems.append(f"unparsable address {x}")
            continue
        if not any(ip in n for n in allowed):
            problems.append(f"address outside the documentation ranges: {x}")
    ok_types = {"0x0800", "0x0806", "0x8100"} | ({"0x86dd"} if v6_allowed else set())
    for et in ethertypes:
        if et not in ok_types:
            problems.append(f"unexpected EtherType {et} ({ethertypes[et]} frames)")
    if a.scenario == "ipv6-vlan":
        if set(vlans) != {"100"} or sum(vlans.values()) != len(rows):
            problems.append(f"ipv6-vlan: expected every frame tagged VLAN 100, got {dict(vlans)} of {len(rows)}")
    if problems:
        for p in problems[:50]:
            print(f"SAFETY/CHECK FAILURE {a.scenario}: {p}", file=sys.stderr)
        sys.exit(1)

    # ---- flows and per-minute licensing egress
    def flow_state(s):
        if s["syn_seen"] and not s["synack"]:
            return "REJ" if s["rst_from_server"] else "S0"
        if s["rst_from_server"]:
            return "RSTR"
        if s["rst_from_client"]:
            return "RSTO"
        if s["fin"]:
            return "SF"
        return "S1" if s["syn_seen"] else "OTH"

    def flow_rec(sid, s):
        return {
            "tcp_stream": sid, "client": s["client"], "client_port": s["cport"], "server": s["server"],
            "server_port": s["sport"], "start": round(s["start"], 6), "end": round(s["end"], 6),
            "duration": round(s["end"] - s["start"], 6), "state": flow_state(s), "syn_seen": s["syn_seen"],
            "syn_packets": s["syns"], "sni": sorted(s["sni"]), "connect_targets": sorted(s["connect"]),
            "c2s_packets": s["c2s_pkts"], "c2s_ip_bytes": s["c2s_ip"], "c2s_payload_bytes": s["c2s_payload"],
            "c2s_retransmissions": s["c2s_retrans"], "c2s_retransmitted_payload_bytes": s["c2s_retrans_payload"],
            "s2c_packets": s["s2c_pkts"], "s2c_ip_bytes": s["s2c_ip"], "s2c_payload_bytes": s["s2c_payload"],
        }

    def per_minute(sel, counted):
        pm = {}
        flows = []
        for sid, s in sorted(streams.items()):
            if not sel(s):
                continue
            flows.append(flow_rec(sid, s))
            for ts, iplen, tlen, retrans, is_syn in s["pkts"]:
                k = (minute(ts), s["client"])
                m = pm.setdefault(k, {"start": k[0], "source": k[1], "egress_ip_bytes": 0, "egress_payload_bytes": 0,
                                      "egress_packets": 0, "retransmissions": 0, "retransmitted_payload_bytes": 0,
                                      "connections": 0, "syn_packets": 0})
                m["egress_ip_bytes"] += iplen
                m["egress_payload_bytes"] += tlen
                m["egress_packets"] += 1
                m["retransmissions"] += int(retrans)
                m["retransmitted_payload_bytes"] += tlen if retrans else 0
                m["syn_packets"] += int(is_syn)
                m["connections"] += int(is_syn and not retrans)
        rows_ = [pm[k] for k in sorted(pm)]
        per_source = {}
        for m in rows_:
            t = per_source.setdefault(m["source"], {"egress_ip_bytes": 0, "egress_payload_bytes": 0, "connections": 0,
                                                    "retransmissions": 0, "minutes": 0, "max_minute_ip_bytes": 0})
            t["egress_ip_bytes"] += m["egress_ip_bytes"]
            t["egress_payload_bytes"] += m["egress_payload_bytes"]
            t["connections"] += m["connections"]
            t["retransmissions"] += m["retransmissions"]
            t["minutes"] += 1
            t["max_minute_ip_bytes"] = max(t["max_minute_ip_bytes"], m["egress_ip_bytes"])
        return {
            "counted_flows": counted,
            "egress_ip_bytes": sum(m["egress_ip_bytes"] for m in rows_),
            "egress_payload_bytes": sum(m["egress_payload_bytes"] for m in rows_),
            "retransmissions": sum(m["retransmissions"] for m in rows_),
            "retransmitted_payload_bytes": sum(m["retransmitted_payload_bytes"] for m in rows_),
            "connections": sum(m["connections"] for m in rows_),
            "flow_count": len(flows),
            "per_source": per_source,
            "per_minute": rows_,
            "flows": flows,
        }

    lic_ports = {443, 80}
    licensing = per_minute(
        lambda s: s["server"] in LICENSE_SERVERS and s["sport"] in lic_ports,
        "Every TCP flow whose server side is the licensing server license.deepgram.com (203.0.113.10 or "
        "2001:db8:100::10, as answered by the capture's DNS) on port 443 (or 80 in plaintext-licensing). "
        "These are the flows that leave the internal network: direct check-ins from API/Engine, or, behind a "
        "forward proxy, the proxy's upstream leg of the CONNECT tunnel (192.0.2.8 -> 203.0.113.10:443). "
        "Egress = packets from the flow's client to the server; IP bytes = ip.len (IPv6: ipv6.plen + 40) "
        "summed over every such packet; payload bytes = tcp.len summed over every such packet, "
        "retransmissions INCLUDED (see retransmitted_payload_bytes to subtract them); connections = "
        "non-retransmitted SYNs from that source in that minute (syn_packets counts SYN retransmissions too); "
        "minute windows are [floor(ts/60)*60, +60) of packet timestamps (epoch seconds).")
    out = {}
    tunnels = per_minute(
        lambda s: (s["server"], s["sport"]) == FORWARD_PROXY and any("deepgram" in c for c in s["connect"]),
        "Internal leg of the forward-proxy tunnels: flows to the forward proxy 192.0.2.8:3128 whose HTTP "
        "CONNECT target is license.deepgram.com:443 (client-to-proxy packets, same counting rules).")
    lproxy = per_minute(
        lambda s: (s["server"], s["sport"]) == LICENSE_PROXY,
        "Internal check-ins of API/Engine to the License Proxy 192.0.2.5:8443 (same counting rules).")

    # ---- egress destinations (flows from internal hosts to non-internal addresses, and inbound ones)
    dest = collections.defaultdict(lambda: {"flows": 0, "c2s_ip_bytes": 0, "c2s_payload_bytes": 0, "sni": set(),
                                            "clients": set(), "states": collections.Counter()})
    inbound = collections.defaultdict(lambda: {"flows": 0, "c2s_payload_bytes": 0, "states": collections.Counter()})
    for sid, s in streams.items():
        if is_internal(s["client"]) and not is_internal(s["server"]):
            d = dest[(s["server"], s["sport"], "tcp")]
            d["flows"] += 1
            d["c2s_ip_bytes"] += s["c2s_ip"]
            d["c2s_payload_bytes"] += s["c2s_payload"]
            d["sni"] |= s["sni"]
            d["clients"].add(s["client"])
            d["states"][flow_state(s)] += 1
        elif not is_internal(s["client"]) and is_internal(s["server"]):
            d = inbound[(s["client"], s["server"], s["sport"])]
            d["flows"] += 1
            d["c2s_payload_bytes"] += s["c2s_payload"]
            d["states"][flow_state(s)] += 1
    for (src, dst, dport), n in udp_flows.items():
        if is_internal(src) and not is_internal(dst):
            d = dest[(dst, dport, "udp")]
            d["flows"] += n  # datagrams for UDP
            d["c2s_ip_bytes"] += udp_bytes[(src, dst, dport)]
            d["clients"].add(src)
    name_of = collections.defaultdict(set)
    for n, ips in dns_answers.items():
        for ip in ips:
            name_of[ip].add(n)
    # SNI against the capture's DNS: did a DNS answer tie the server address to the SNI name, and which
    # names does the capture's DNS give for that address?
    sni_vs_dns = []
    for n, servers in sorted(sni_by_server.items()):
        for sv in sorted(servers):
            ip = sv.rsplit(":", 1)[0].strip("[]")
            sni_vs_dns.append({"sni": n, "server": sv, "dns_answered_sni_with_server": ip in dns_answers.get(n, ()),
                               "dns_names_for_server": sorted(name_of.get(ip, ())), "client_hellos": sum(
                                   1 for s_ in streams.values() if n in s_["sni"] and s_["server"] == ip)})
    egress = []
    for (ip, port, proto), d in sorted(dest.items()):
        egress.append({"address": ip, "port": port, "proto": proto, "flows_or_datagrams": d["flows"],
                       "clients": sorted(d["clients"]), "sni": sorted(d["sni"]),
                       "dns_names": sorted(name_of.get(ip, ())),
                       "c2s_ip_bytes": d["c2s_ip_bytes"], "c2s_payload_bytes": d["c2s_payload_bytes"],
                       "states": dict(d["states"])})
    ingress = [{"client": c, "server": sv, "port": p, "flows": d["flows"], "c2s_payload_bytes": d["c2s_payload_bytes"],
                "states": dict(d["states"])} for (c, sv, p), d in sorted(inbound.items())]

    ts0 = float(rows[0]["frame.time_epoch"])
    ts1 = float(rows[-1]["frame.time_epoch"])
    size = os.path.getsize(a.pcap)
    sha = hashlib.sha256(open(a.pcap, "rb").read()).hexdigest()
    hosts = {h: scenarios.HOSTS[h] for h in meta["hosts"]}
    pol = {"internal": scenarios.INTERNAL, "licensing_servers": ["license.deepgram.com:443"],
           "license_proxies": meta["policy"].get("proxies", []),
           "forward_proxies": meta["policy"].get("forward_proxies", []),
           "gateways": ["192.0.2.30"], "api_ports": [8080],
           "allow_held_connection": meta["policy"].get("allow_held_connection", False),
           "internal_resolver": meta["policy"].get("resolver", "2001:db8:1::53" if a.scenario == "ipv6-vlan"
                                                   else "192.0.2.53"),
           "egress_allow": meta["policy"].get("egress_allow", []),
           "policy_file": f"{a.scenario}.policy.toml"}
    doc = {
        "scenario": a.scenario,
        "description": meta["description"],
        "origin": "recorded by captures/record.sh: real programs (curl, OpenSSL via Python ssl, dnsmasq, tinyproxy, "
                  "nginx, socat, dig) in Linux network namespaces; tcpdump -s 0 on the LAN bridge (SPAN-like)",
        "recorded_at": datetime.datetime.fromtimestamp(ts0, datetime.timezone.utc).isoformat(timespec="seconds"),
        "cadence_seconds": a.cadence,
        "checkins_per_client": a.checkins,
        "file": {"name": os.path.basename(a.pcap), "bytes": size, "sha256": sha, "format": "pcap",
                 "linktype": "EN10MB", "snaplen": 262144},
        "duration_seconds": round(ts1 - ts0, 3),
        "packets": len(rows),
        "first_timestamp": ts0,
        "last_timestamp": ts1,
        "capture_stats": capture_stats(a.tcpdump_log),
        "address_plan": hosts,
        "policy": pol,
        "addresses_seen": sorted(addrs, key=lambda x: (":" in x, ipaddress.ip_address(x))),
        "ethertypes": dict(ethertypes),
        "vlan_ids": sorted(int(v) for v in vlans),
        "licensing": licensing,
        "connect_tunnels": tunnels,
        "license_proxy_checkins": lproxy,
        "tls_sni": sorted(sni),
        "tls_sni_counts": dict(sorted(sni.items())),
        "tls_sni_servers": {k: sorted(v) for k, v in sorted(sni_by_server.items())},
        "tls_client_hellos_without_sni": dict(hello_no_sni),
        "dns_query_names": sorted(dns_q),
        "dns": {
            "queries": sum(dns_q.values()),
            "unique_names": len(dns_q),
            "query_types": dict(dns_q_types),
            "servers_queried": dict(dns_servers),
            "answers": {n: sorted(v) for n, v in sorted(dns_answers.items()) if len(dns_q) < 100 or "exfil" not in n},
            "rcodes": {n: dict(c) for n, c in sorted(dns_rcodes.items())
                       if len(dns_q) < 100 or "exfil" not in n or set(c) != {"NOERROR"}},
            "names_per_domain": dict(collections.Counter(".".join(n.split(".")[-3:]) for n in dns_q)),
        },
        "http_hosts": sorted(http_hosts),
        "http_connect_targets": sorted(connect_targets),
        "http_requests": [{"src": k[0], "dst": k[1], "dport": k[2], "method": k[3], "host": k[4], "path": k[5],
                           "count": n} for k, n in sorted(http_reqs.items())],
        "cleartext_credentials": [{**{k: v for k, v in c.items() if k not in ("sources", "destinations")},
                                   "sources": sorted(c["sources"]), "destinations": sorted(c["destinations"])}
                                  for c in creds.values()],
        "tls_sni_vs_dns": sni_vs_dns,
        "egress_destinations": egress,
        "lan_local_traffic": local_traffic(a.pcap),
        "inbound_from_outside": ingress,
        "verdict_intent": meta["verdict_intent"],
        "expected_verdict": meta["expected_verdict"],
        "expected_controls": meta["expected_controls"],
    }
    os.makedirs(a.out_dir, exist_ok=True)
    with open(os.path.join(a.out_dir, f"{a.scenario}.expected.json"), "w") as f:
        json.dump(doc, f, indent=1, sort_keys=False)
        f.write("\n")
    with open(os.path.join(a.out_dir, f"{a.scenario}.policy.toml"), "w") as f:
        f.write(scenarios.policy_toml(a.scenario))
    print(f"{a.scenario}: {len(rows)} packets, {doc['duration_seconds']} s, {size} bytes, "
          f"licensing {licensing['flow_count']} flows / {licensing['egress_ip_bytes']} egress IP bytes, "
          f"SNI {sorted(sni)}, addresses OK")


if __name__ == "__main__":
    main()
