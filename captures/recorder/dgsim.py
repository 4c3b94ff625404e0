#!/usr/bin/env python3
"""Test servers and clients for the dg-audit capture recorder (Python 3 stdlib only).

Every program here is started by captures/record.sh inside a network namespace that
only has documentation addresses (192.0.2.0/24, 198.51.100.0/24, 203.0.113.0/24,
2001:db8::/32).  Every loop is bounded in count and time.

Sub-commands
  serve       HTTP/HTTPS servers (license server, License Proxy, hosted API with
              WebSocket, self-hosted API, telemetry) and a plain TCP sink
  held        licensing client that keeps ONE TLS connection open (HTTP/1.1
              keep-alive) and sends one small request per cadence slot
  ws          WebSocket (wss) streaming client sending real-time PCM chunks
  dnstunnel   DNS client sending high-entropy base32 queries (A and TXT)
  wav         writes a 16 kHz 16-bit mono PCM WAV of a tone
  usage       prints a usage-report JSON (optionally padded to a size)
  noise       office-LAN noise of one PC: mDNS (v4/v6) queries and announcements, LLMNR
              (v4/v6) queries and listening, SSDP M-SEARCH (TTL 1) and an SSDP
              responder, Dropbox LAN-sync broadcasts; joining groups makes IGMP/MLD
  ntpserve    minimal NTP server (mode 3 -> mode 4)
  vlanrelay   userspace 802.1Q port: untagged frames on one interface <-> frames
              tagged with a VLAN id on another (the kernel here has no 8021q)
"""
import argparse
import base64
import hashlib
import http.client
import http.server
import json
import math
import os
import random
import select
import socket
import socketserver
import ssl
import struct
import sys
import threading
import time
import wave

GUID = "258EAFA5-E914-47DA-95CA-C5AB0DC11B65"
# the public documentation example key (also used, in clear, by plaintext-licensing)
LICENSE_KEY = os.environ.get("DG_LICENSE_KEY", "f1037f690e1c05405b0a71b8fc1df3d453b1bcad")


def log(*a):
    print(time.strftime("%H:%M:%S"), *a, file=sys.stderr, flush=True)


def usage_report(component, seq, pad=0):
    """A usage report as a container would send it: counters and hashes, no key."""
    rnd = random.Random(f"{component}-{seq}")
    rep = {
        "schema": "usage-report/1",
        "component": component,
        "instance_id": hashlib.sha256(component.encode()).hexdigest()[:16],
        "version": "release-240917",
        "seq": seq,
        "reported_at": int(time.time()),
        "license": {"key_id": LICENSE_KEY[:4] + "..." + LICENSE_KEY[-4:],
                    "key_sha256_prefix": hashlib.sha256(LICENSE_KEY.encode()).hexdigest()[:10]},
        "usage": {
            "requests": rnd.randint(0, 40),
            "audio_seconds": round(rnd.uniform(0, 900), 1),
            "characters": rnd.randint(0, 2000),
            "models": ["nova-2-general"],
        },
    }
    if pad:
        # "trickle": an opaque, high-entropy field makes the report ~pad bytes
        raw = os.urandom(max(0, pad * 3 // 4 - 300))
        rep["diagnostics"] = base64.b64encode(raw).decode()
    return json.dumps(rep, separators=(",", ":"))


# --------------------------------------------------------------------------- servers
class Handler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_version = "dgsim/1.0"
    sys_version = ""
    timeout = 240  # idle keep-alive limit; the held connection idles 60 s

    def setup(self):
        ctx = self.server.tls_ctx
        if ctx is not None:
            self.request.settimeout(30)
            self.request = ctx.wrap_socket(self.request, server_side=True)
        super().setup()

    def log_message(self, fmt, *args):
        log(self.server.role, self.client_address[0], fmt % args)

    def _body(self):
        n = int(self.headers.get("Content-Length") or 0)
        left, got = n, 0
        while left > 0:
            chunk = self.rfile.read(min(65536, left))
            if not chunk:
                break
            got += len(chunk)
            left -= len(chunk)
        return got

    def _json(self, code, obj):
        data = json.dumps(obj, separators=(",", ":")).encode()
        self.send_response(code)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def do_GET(self):
        role = self.server.role
        if self.path.startswith("/v1/listen") and self.headers.get("Upgrade", "").lower() == "websocket":
            return self._websocket()
        if self.path.startswith("/v1/status"):
            return self._json(200, {"state": "Connected", "role": role})
        if role == "telemetry":
            return self._json(200, {"ok": True})
        return self._json(404, {"err_code": "NOT_FOUND"})

    def do_POST(self):
        role = self.server.role
        n = self._body()
        if role in ("license", "licproxy") and self.path.startswith("/v1/licenses"):
            return self._json(200, {
                "status": "ok",
                "valid": True,
                "state": "Connected" if role == "license" else "TrustBased",
                "expires_at": int(time.time()) + 3600,
                "next_check_in_seconds": 60,
                "received_bytes": n,
            })
        if role in ("hosted", "selfhosted") and self.path.startswith("/v1/listen"):
            secs = round(n / 32000.0, 2)
            return self._json(200, {
                "metadata": {"request_id": hashlib.md5(str(time.time()).encode()).hexdigest(),
                             "duration": secs, "channels": 1},
                "results": {"channels": [{"alternatives": [
                    {"transcript": "this is a test tone", "confidence": 0.5}]}]},
            })
        if role == "telemetry":
            return self._json(202, {"accepted": n})
        return self._json(404, {"err_code": "NOT_FOUND", "received_bytes": n})

    # --- minimal RFC 6455 server side
    def _websocket(self):
        key = self.headers.get("Sec-WebSocket-Key", "")
        acc = base64.b64encode(hashlib.sha1((key + GUID).encode()).digest()).decode()
        self.send_response(101, "Switching Protocols")
        self.send_header("Upgrade", "websocket")
        self.send_header("Connection", "Upgrade")
        self.send_header("Sec-WebSocket-Accept", acc)
        self.end_headers()
        self.wfile.flush()
        self.close_connection = True
        total, last_report, deadline = 0, 0, time.time() + 120
        while time.time() < deadline:
            fr = ws_read_frame(self.rfile)
            if fr is None:
                break
            op, payload = fr
            if op == 0x8:
                ws_send(self.wfile, 0x8, payload[:2] or struct.pack("!H", 1000), mask=False)
                break
            if op == 0x2:
                total += len(payload)
                if total - last_report >= 32000:  # one result per second of audio
                    last_report = total
                    ws_send(self.wfile, 0x1, json.dumps({
                        "type": "Results", "start": round(total / 32000.0 - 1, 2), "duration": 1.0,
                        "is_final": True, "channel": {"alternatives": [{"transcript": "tone", "confidence": 0.4}]},
                    }).encode(), mask=False)
            elif op == 0x1:
                msg = payload.decode(errors="replace")
                if "CloseStream" in msg:
                    ws_send(self.wfile, 0x1, json.dumps({"type": "Metadata", "duration": total / 32000.0}).encode(), mask=False)
            elif op == 0x9:
                ws_send(self.wfile, 0xA, payload, mask=False)
        log("ws done, received audio bytes", total)


def ws_read_exact(f, n):
    buf = b""
    while len(buf) < n:
        c = f.read(n - len(buf))
        if not c:
            return None
        buf += c
    return buf


def ws_read_frame(f):
    h = ws_read_exact(f, 2)
    if h is None:
        return None
    op = h[0] & 0x0F
    masked = h[1] & 0x80
    ln = h[1] & 0x7F
    if ln == 126:
        ln = struct.unpack("!H", ws_read_exact(f, 2))[0]
    elif ln == 127:
        ln = struct.unpack("!Q", ws_read_exact(f, 8))[0]
    mk = ws_read_exact(f, 4) if masked else None
    data = ws_read_exact(f, ln) if ln else b""
    if data is None:
        return None
    if mk:
        data = bytes(b ^ mk[i % 4] for i, b in enumerate(data))
    return op, data


def ws_send(f, op, payload, mask=True):
    hdr = bytes([0x80 | op])
    ln = len(payload)
    mbit = 0x80 if mask else 0
    if ln < 126:
        hdr += bytes([mbit | ln])
    elif ln < 65536:
        hdr += bytes([mbit | 126]) + struct.pack("!H", ln)
    else:
        hdr += bytes([mbit | 127]) + struct.pack("!Q", ln)
    if mask:
        mk = os.urandom(4)
        payload = bytes(b ^ mk[i % 4] for i, b in enumerate(payload))
        hdr += mk
    if hasattr(f, "sendall"):
        f.sendall(hdr + payload)
    else:
        f.write(hdr + payload)
        if hasattr(f, "flush"):
            f.flush()


class Server(socketserver.ThreadingMixIn, http.server.HTTPServer):
    daemon_threads = True
    allow_reuse_address = True

    def server_bind(self):
        # like HTTPServer.server_bind, without the reverse DNS lookup (getfqdn) at start-up
        socketserver.TCPServer.server_bind(self)
        host, port = self.server_address[:2]
        self.server_name = host
        self.server_port = port

    def __init__(self, addr, role, tls_ctx):
        fam = socket.AF_INET6 if ":" in addr[0] else socket.AF_INET
        self.address_family = fam
        self.role = role
        self.tls_ctx = tls_ctx
        super().__init__(addr, Handler)


def sink_server(host, port, seconds):
    fam = socket.AF_INET6 if ":" in host else socket.AF_INET
    s = socket.socket(fam, socket.SOCK_STREAM)
    s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    s.bind((host, port))
    s.listen(16)

    def one(c, a):
        c.settimeout(30)
        n = 0
        try:
            while True:
                d = c.recv(65536)
                if not d:
                    break
                n += len(d)
            c.sendall(b"OK %d\n" % n)
        except OSError:
            pass
        finally:
            c.close()
        log("sink", a[0], "bytes", n)

    end = time.time() + seconds
    s.settimeout(5)
    while time.time() < end:
        try:
            c, a = s.accept()
        except socket.timeout:
            continue
        threading.Thread(target=one, args=(c, a), daemon=True).start()


def split_hostport(s):
    if s.startswith("["):
        h, _, p = s[1:].partition("]:")
        return h, int(p)
    h, _, p = s.rpartition(":")
    return h, int(p)


def cmd_serve(a):
    """--listen ADDR:PORT[,tls] (repeatable) --role R --cert C --key K --seconds S"""
    threads = []
    for spec in a.listen:
        tls = spec.endswith(",tls")
        host, port = split_hostport(spec[:-4] if tls else spec)
        ctx = None
        if tls:
            ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
            ctx.minimum_version = ssl.TLSVersion.TLSv1_2
            ctx.load_cert_chain(a.cert, a.key)
            ctx.set_alpn_protocols(["http/1.1"])
        srv = Server((host, port), a.role, ctx)
        t = threading.Thread(target=srv.serve_forever, kwargs={"poll_interval": 0.5}, daemon=True)
        t.start()
        threads.append(srv)
        log("serving", a.role, host, port, "tls" if tls else "plain")
    for spec in a.sink or []:
        host, port = split_hostport(spec)
        threading.Thread(target=sink_server, args=(host, port, a.seconds), daemon=True).start()
        log("sink on", host, port)
    time.sleep(a.seconds)
    for s in threads:
        s.shutdown()


# --------------------------------------------------------------------------- clients
def sleep_until(t):
    d = t - time.time()
    if d > 0:
        time.sleep(d)


def cmd_held(a):
    """One kept-alive HTTPS connection; one small POST per slot."""
    ctx = ssl.create_default_context(cafile=a.cafile)
    conn = None
    for i in range(a.times):
        sleep_until(a.t0 + i * a.cadence + a.offset)
        body = usage_report(a.component, i + 1).encode()
        for attempt in range(2):
            try:
                if conn is None:
                    conn = http.client.HTTPSConnection(a.host, a.port, context=ctx, timeout=15)
                    conn.connect()
                    log("held: connected", conn.sock.getpeername())
                conn.request("POST", a.path, body=body, headers={
                    "Authorization": "Token " + a.key,
                    "Content-Type": "application/json",
                    "User-Agent": "deepgram-api/release-240917",
                    "Connection": "keep-alive",
                })
                r = conn.getresponse()
                r.read()
                log("held: check-in", i + 1, r.status)
                break
            except (OSError, http.client.HTTPException) as e:
                log("held: error", e, "reconnecting")
                try:
                    conn.close()
                except Exception:
                    pass
                conn = None
    if conn is not None:
        time.sleep(2)
        conn.close()


def cmd_ws(a):
    """wss://HOST/PATH, sends real-time 100 ms chunks of PCM from a WAV file."""
    ctx = ssl.create_default_context(cafile=a.cafile)
    raw = socket.create_connection((a.host, 443), timeout=15)
    s = ctx.wrap_socket(raw, server_hostname=a.host)
    key = base64.b64encode(os.urandom(16)).decode()
    req = (f"GET {a.path} HTTP/1.1\r\nHost: {a.host}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
           f"Sec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\n"
           f"Authorization: Token {a.token}\r\nUser-Agent: dgsim-ws/1.0\r\n\r\n")
    s.sendall(req.encode())
    f = s.makefile("rwb", buffering=0)
    status = f.readline()
    while True:
        line = f.readline()
        if not line or line in (b"\r\n", b"\n"):
            break
    log("ws: handshake", status.strip())
    if b" 101 " not in status:
        return 1
    results = []

    def drain():
        while select.select([s], [], [], 0)[0] or s.pending():
            fr = ws_read_frame(f)
            if fr is None or fr[0] == 0x8:
                return False
            results.append(fr)
        return True

    with wave.open(a.audio, "rb") as w:
        pcm = w.readframes(w.getnframes())
    chunk = 3200  # 100 ms of 16 kHz 16-bit mono
    n = int(a.seconds * 10)
    t0 = time.time()
    for i in range(n):
        sleep_until(t0 + i * 0.1)
        off = (i * chunk) % max(chunk, len(pcm) - chunk)
        ws_send(s, 0x2, pcm[off:off + chunk])
        drain()
    ws_send(s, 0x1, b'{"type":"CloseStream"}')
    time.sleep(1)
    drain()
    ws_send(s, 0x8, struct.pack("!H", 1000))
    end = time.time() + 5
    while time.time() < end:
        if select.select([s], [], [], 0.5)[0] or s.pending():
            fr = ws_read_frame(f)
            if fr is None or fr[0] == 0x8:
                break
            results.append(fr)
    log("ws: sent", n * chunk, "bytes, got", len(results), "frames")
    s.close()


def b32label(rnd, n):
    alphabet = "abcdefghijklmnopqrstuvwxyz234567"
    return "".join(rnd.choice(alphabet) for _ in range(n))


def dns_query(name, qtype, qid):
    hdr = struct.pack("!HHHHHH", qid, 0x0100, 1, 0, 0, 0)
    q = b"".join(bytes([len(p)]) + p.encode() for p in name.rstrip(".").split(".")) + b"\x00"
    return hdr + q + struct.pack("!HH", qtype, 1)


def cmd_dnstunnel(a):
    """Bursts of high-entropy queries: --bursts B of --per-burst N at --rate q/s."""
    rnd = random.Random()
    fam = socket.AF_INET6 if ":" in a.resolver else socket.AF_INET
    s = socket.socket(fam, socket.SOCK_DGRAM)
    s.settimeout(2)
    sent = answered = 0
    payload = os.urandom(a.bursts * a.per_burst * 36)
    for b in range(a.bursts):
        sleep_until(a.t0 + (b + a.first_slot) * a.cadence + a.offset)
        end = time.time() + a.cadence * 0.8
        for i in range(a.per_burst):
            if time.time() > end or sent >= a.max_queries:
                break
            k = sent
            chunk = payload[k * 36:(k + 1) * 36]
            lab1 = base64.b32encode(chunk).decode().rstrip("=").lower()[:rnd.randint(40, 57)]
            name = f"{lab1}.{k:04x}.{a.domain}"
            qtype = 16 if (k % 4 == 3) else 1
            s.sendto(dns_query(name, qtype, rnd.randint(0, 65535)), (a.resolver, 53))
            sent += 1
            try:
                s.recvfrom(4096)
                answered += 1
            except socket.timeout:
                pass
            time.sleep(1.0 / a.rate)
    log("dnstunnel: sent", sent, "answered", answered)


def cmd_wav(a):
    with wave.open(a.out, "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(16000)
        frames = bytearray()
        for i in range(int(16000 * a.seconds)):
            t = i / 16000.0
            v = 0.4 * math.sin(2 * math.pi * a.freq * t) + 0.1 * math.sin(2 * math.pi * 3 * a.freq * t)
            frames += struct.pack("<h", int(v * 32767 * (0.6 + 0.4 * math.sin(2 * math.pi * 0.5 * t))))
        w.writeframes(bytes(frames))


def cmd_usage(a):
    sys.stdout.write(usage_report(a.component, a.seq, a.pad))


# --------------------------------------------------------------------------- office-LAN noise (noisy-lan)
MDNS4, MDNS6, LLMNR4, LLMNR6, SSDP4 = "224.0.0.251", "ff02::fb", "224.0.0.252", "ff02::1:3", "239.255.255.250"
SO_BINDTODEVICE = getattr(socket, "SO_BINDTODEVICE", 25)


def dns_name(name):
    return b"".join(bytes([len(p)]) + p.encode() for p in name.rstrip(".").split(".")) + b"\x00"


def mdns_query(names):
    """mDNS query (id 0, QM) for PTR records of service types."""
    return struct.pack("!HHHHHH", 0, 0, len(names), 0, 0, 0) + b"".join(
        dns_name(n) + struct.pack("!HH", 12, 1) for n in names)


def mdns_announce(host, ip4):
    """Unsolicited mDNS response: HOST.local A ip4, cache-flush bit, TTL 120."""
    rr = dns_name(host + ".local") + struct.pack("!HHIH", 1, 0x8001, 120, 4) + socket.inet_aton(ip4)
    return struct.pack("!HHHHHH", 0, 0x8400, 0, 1, 0, 0) + rr


def llmnr_query(name, qid, qtype=1):
    return struct.pack("!HHHHHH", qid, 0, 1, 0, 0, 0) + dns_name(name) + struct.pack("!HH", qtype, 1)


def udp4(iface, port=0, reuse=True, bcast=False):
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    if reuse:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    s.setsockopt(socket.SOL_SOCKET, SO_BINDTODEVICE, iface.encode())
    if bcast:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_BROADCAST, 1)
    s.bind(("0.0.0.0", port))
    return s


def join4(s, group, ifindex):
    s.setsockopt(socket.IPPROTO_IP, socket.IP_ADD_MEMBERSHIP,
                 socket.inet_aton(group) + socket.inet_aton("0.0.0.0") + struct.pack("@i", ifindex))


def mcast_if4(s, ifindex, ttl):
    # struct ip_mreqn: multicast_addr, address, ifindex
    s.setsockopt(socket.IPPROTO_IP, socket.IP_MULTICAST_IF, socket.inet_aton("0.0.0.0") * 2 + struct.pack("@i", ifindex))
    s.setsockopt(socket.IPPROTO_IP, socket.IP_MULTICAST_TTL, ttl)
    s.setsockopt(socket.IPPROTO_IP, socket.IP_MULTICAST_LOOP, 0)


def udp6(iface, ifindex, port=0, hops=255):
    s = socket.socket(socket.AF_INET6, socket.SOCK_DGRAM)
    s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    s.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)
    s.setsockopt(socket.SOL_SOCKET, SO_BINDTODEVICE, iface.encode())
    s.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_MULTICAST_IF, ifindex)
    s.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_MULTICAST_HOPS, hops)
    s.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_MULTICAST_LOOP, 0)
    s.bind(("::", port))
    return s


def join6(s, group, ifindex):
    s.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_JOIN_GROUP, socket.inet_pton(socket.AF_INET6, group) +
                 struct.pack("@I", ifindex))


def cmd_noise(a):
    """What an office PC puts on its LAN: mDNS (v4+v6) queries and announcements, LLMNR (v4+v6)
    queries (and listening as a responder), SSDP M-SEARCH (TTL 1) and an SSDP responder, Dropbox
    LAN-sync broadcasts to 255.255.255.255:17500.  Joining the groups makes the kernel send IGMP/MLD.
    Bounded: --rounds rounds at --t0 + k*--cadence + --offset, then idles (answering) until --seconds."""
    sleep_until(a.start)
    ifindex = socket.if_nametoindex(a.iface)
    ip4 = a.ip
    socks = []
    m4 = udp4(a.iface, 5353)
    join4(m4, MDNS4, ifindex)
    mcast_if4(m4, ifindex, 255)
    socks.append(m4)
    m6 = None
    if a.v6:
        for _ in range(30):  # wait for the link-local address (DAD)
            try:
                m6 = udp6(a.iface, ifindex, 5353)
                join6(m6, MDNS6, ifindex)
                break
            except OSError:
                m6 = None
                time.sleep(1)
        if m6:
            socks.append(m6)
    l4 = l6 = None
    if a.llmnr_responder:
        l4 = udp4(a.iface, 5355)
        join4(l4, LLMNR4, ifindex)
        socks.append(l4)
        if a.v6:
            try:
                l6 = udp6(a.iface, ifindex, 5355, hops=1)
                join6(l6, LLMNR6, ifindex)
                socks.append(l6)
            except OSError as e:
                log("noise: llmnr6 listener", e)
    sresp = None
    if a.ssdp_responder:
        sresp = udp4(a.iface, 1900)
        join4(sresp, SSDP4, ifindex)
        socks.append(sresp)
    q4 = udp4(a.iface, 0, reuse=False)
    mcast_if4(q4, ifindex, 1)  # LLMNR and SSDP: IP TTL 1
    db = udp4(a.iface, 17500, bcast=True) if a.dropbox else None
    q6 = None
    if a.v6 and a.llmnr:
        try:
            q6 = udp6(a.iface, ifindex, 0, hops=1)
        except OSError as e:
            log("noise: llmnr6 sender", e)
    rnd = random.Random(a.name)
    collections_counter = {}

    def count(k):
        collections_counter[k] = collections_counter.get(k, 0) + 1

    def send_round(k):
        try:
            if a.mdns:
                m4.sendto(mdns_announce(a.name.lower(), ip4), (MDNS4, 5353))
                count("mdns4-announce")
                m4.sendto(mdns_query(["_googlecast._tcp.local", "_airplay._tcp.local", "_ipp._tcp.local"]), (MDNS4, 5353))
                count("mdns4-query")
                if m6:
                    m6.sendto(mdns_query(["_googlecast._tcp.local", "_companion-link._tcp.local"]), (MDNS6, 5353, 0, ifindex))
                    count("mdns6-query")
            if a.llmnr:
                q4.sendto(llmnr_query(a.llmnr_name, rnd.randint(1, 65535)), (LLMNR4, 5355))
                count("llmnr4")
                if q6:
                    q6.sendto(llmnr_query(a.llmnr_name, rnd.randint(1, 65535), 28), (LLMNR6, 5355, 0, ifindex))
                    count("llmnr6")
            if a.ssdp:
                msg = ("M-SEARCH * HTTP/1.1\r\nHOST: 239.255.255.250:1900\r\nMAN: \"ssdp:discover\"\r\nMX: 1\r\n"
                       "ST: urn:dial-multiscreen-org:service:dial:1\r\nUSER-AGENT: Microsoft Edge/119.0 Windows\r\n\r\n")
                q4.sendto(msg.encode(), (SSDP4, 1900))
                count("ssdp-msearch")
            if db:
                msg = json.dumps({"version": [2, 0], "port": 17500, "host_int": 1234567890123 + rnd.randint(0, 99),
                                  "displayname": "", "namespaces": [1234567, 2345678, 3456789]})
                db.sendto(msg.encode(), ("255.255.255.255", 17500))
                count("dropbox")
        except OSError as e:
            log("noise: send error", e)

    rounds = 0
    end = time.time() + a.seconds
    next_t = a.t0 + a.offset
    while time.time() < end:
        if rounds < a.rounds and time.time() >= next_t:
            send_round(rounds)
            rounds += 1
            next_t = a.t0 + rounds * a.cadence + a.offset
        r, _, _ = select.select(socks, [], [], 0.5)
        for s in r:
            try:
                data, addr = s.recvfrom(4096)
            except OSError:
                continue
            if s is sresp and data.startswith(b"M-SEARCH"):
                rep = ("HTTP/1.1 200 OK\r\nCACHE-CONTROL: max-age=1800\r\nEXT:\r\n"
                       f"LOCATION: http://{ip4}:49152/description.xml\r\nSERVER: Linux/6.1 UPnP/1.0 dgsim/1.0\r\n"
                       "ST: urn:dial-multiscreen-org:service:dial:1\r\n"
                       f"USN: uuid:2f402f80-da50-11e1-9b23-{a.name.lower().encode().hex()[:12].ljust(12, '0')}"
                       "::urn:dial-multiscreen-org:service:dial:1\r\n\r\n")
                sresp.sendto(rep.encode(), addr)
                count("ssdp-reply")
    log("noise:", a.name, collections_counter)


def cmd_ntpserve(a):
    """A minimal NTP (v4) server: answers mode-3 client requests with mode-4 replies, stratum 2."""
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    s.bind((a.listen, 123))
    s.settimeout(1)
    end = time.time() + a.seconds
    n = 0
    NTP_EPOCH = 2208988800

    def ts(t):
        return struct.pack("!II", int(t) + NTP_EPOCH, int((t % 1) * 2 ** 32))
    while time.time() < end:
        try:
            data, addr = s.recvfrom(512)
        except socket.timeout:
            continue
        rx = time.time()
        if len(data) < 48 or (data[0] & 7) != 3:
            continue
        vn = (data[0] >> 3) & 7
        hdr = bytes([(0 << 6) | (vn << 3) | 4, 2, data[2], 0xE9]) + struct.pack("!II", 0x00000100, 0x00000400)
        rep = hdr + socket.inet_aton("203.0.113.1") + ts(rx - 30) + data[40:48] + ts(rx) + ts(time.time())
        s.sendto(rep, addr)
        n += 1
    log("ntpserve: answered", n)

# --------------------------------------------------------------------------- 802.1Q relay
SOL_PACKET = 263
PACKET_AUXDATA = 8
TP_STATUS_VLAN_VALID = 0x10
PACKET_OUTGOING = 4


def cmd_vlanrelay(a):
    """inner: untagged frames of the host's IP interface (other end of a veth pair);
    trunk: the link to the switch, where every frame carries an 802.1Q tag."""
    ins = socket.socket(socket.AF_PACKET, socket.SOCK_RAW, socket.htons(3))
    ins.bind((a.inner, 0))
    trs = socket.socket(socket.AF_PACKET, socket.SOCK_RAW, socket.htons(3))
    trs.bind((a.trunk, 0))
    trs.setsockopt(SOL_PACKET, PACKET_AUXDATA, 1)
    tag = struct.pack("!HH", 0x8100, a.vid & 0x0FFF)
    end = time.time() + a.seconds
    up = down = 0
    while time.time() < end:
        r, _, _ = select.select([ins, trs], [], [], 1.0)
        if ins in r:
            data, addr = ins.recvfrom(65535)
            if addr[2] != PACKET_OUTGOING:
                trs.send(data[:12] + tag + data[12:])
                up += 1
        if trs in r:
            data, anc, _, addr = trs.recvmsg(65535, socket.CMSG_SPACE(20))
            if addr[2] == PACKET_OUTGOING:
                continue
            vid = None
            for lvl, typ, cd in anc:
                if lvl == SOL_PACKET and typ == PACKET_AUXDATA and len(cd) >= 20:
                    st, _, _, _, _, tci, _ = struct.unpack("IIIHHHH", cd[:20])
                    if st & TP_STATUS_VLAN_VALID:
                        vid = tci & 0x0FFF
            if vid is None and data[12:14] == b"\x81\x00":  # tag still in the data
                vid = struct.unpack("!H", data[14:16])[0] & 0x0FFF
                data = data[:12] + data[16:]
            if vid == a.vid:
                ins.send(data)
                down += 1
    log("vlanrelay", a.inner, a.trunk, "up", up, "down", down)


def main():
    p = argparse.ArgumentParser()
    sp = p.add_subparsers(dest="cmd", required=True)
    s = sp.add_parser("serve")
    s.add_argument("--listen", action="append", default=[])
    s.add_argument("--sink", action="append")
    s.add_argument("--role", required=True)
    s.add_argument("--cert")
    s.add_argument("--key")
    s.add_argument("--seconds", type=float, default=900)
    s = sp.add_parser("held")
    for k in ("host", "path", "cafile", "key", "component"):
        s.add_argument("--" + k, required=True)
    s.add_argument("--port", type=int, default=443)
    s.add_argument("--times", type=int, default=7)
    s.add_argument("--t0", type=float, required=True)
    s.add_argument("--cadence", type=float, default=60)
    s.add_argument("--offset", type=float, default=0)
    s = sp.add_parser("ws")
    for k in ("host", "path", "cafile", "token", "audio"):
        s.add_argument("--" + k, required=True)
    s.add_argument("--seconds", type=float, default=20)
    s = sp.add_parser("dnstunnel")
    s.add_argument("--resolver", required=True)
    s.add_argument("--domain", required=True)
    s.add_argument("--bursts", type=int, default=5)
    s.add_argument("--per-burst", type=int, default=80)
    s.add_argument("--max-queries", type=int, default=400)
    s.add_argument("--rate", type=float, default=5)
    s.add_argument("--t0", type=float, required=True)
    s.add_argument("--cadence", type=float, default=60)
    s.add_argument("--offset", type=float, default=0)
    s.add_argument("--first-slot", type=int, default=1)
    s = sp.add_parser("wav")
    s.add_argument("--out", required=True)
    s.add_argument("--seconds", type=float, default=30)
    s.add_argument("--freq", type=float, default=440)
    s = sp.add_parser("usage")
    s.add_argument("--component", required=True)
    s.add_argument("--seq", type=int, default=1)
    s.add_argument("--pad", type=int, default=0)
    s = sp.add_parser("vlanrelay")
    s.add_argument("--inner", required=True)
    s.add_argument("--trunk", required=True)
    s.add_argument("--vid", type=int, default=100)
    s.add_argument("--seconds", type=float, default=900)
    s = sp.add_parser("noise")
    s.add_argument("--iface", default="eth0")
    s.add_argument("--ip", required=True)
    s.add_argument("--name", required=True)
    s.add_argument("--llmnr-name", default="fileserver")
    for k in ("mdns", "llmnr", "llmnr-responder", "ssdp", "ssdp-responder", "dropbox", "v6"):
        s.add_argument("--" + k, action="store_true")
    s.add_argument("--start", type=float, required=True)
    s.add_argument("--t0", type=float, required=True)
    s.add_argument("--cadence", type=float, default=60)
    s.add_argument("--offset", type=float, default=0)
    s.add_argument("--rounds", type=int, default=7)
    s.add_argument("--seconds", type=float, default=600)
    s = sp.add_parser("ntpserve")
    s.add_argument("--listen", required=True)
    s.add_argument("--seconds", type=float, default=900)
    a = p.parse_args()
    return {"noise": cmd_noise, "ntpserve": cmd_ntpserve, "serve": cmd_serve, "held": cmd_held, "ws": cmd_ws, "dnstunnel": cmd_dnstunnel,
            "wav": cmd_wav, "usage": cmd_usage, "vlanrelay": cmd_vlanrelay}[a.cmd](a)


if __name__ == "__main__":
    sys.exit(main() or 0)
