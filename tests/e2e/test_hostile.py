#!/usr/bin/env python3
"""Hostile clients against a real rewindd (loopback of a network namespace of
its own, where it also captures live on a veth pair: no frame may be lost
under the load; without namespaces, host loopback and no capture): malformed
HTTP requests (bad UTF-8 and %00 in the path, names and values, over-long
names, values, URIs and headers, duplicate parameters, absurd ranges, HTTP/1.1
without Host, HEAD), a capture point libpcap cannot filter (NFLOG), slow
readers, a slowloris, a connection flood above the per-client limit; on the
control socket a message with two descriptors, an import of a pipe whose
write end rides along, many idle connections, and an import that never ends
while the daemon gets SIGTERM. During each load a normal query still gets a
complete 200; afterwards the daemon's threads, descriptors and memory are
back near their idle level. Every loop is bounded in count and time; no
timing thresholds (a timeout here only tells a hang from an answer)."""
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import urllib.parse

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "lib"))
import harness  # noqa: E402
from harness import BIN, PCAPS, REWIND, check, sh, tcpdump  # noqa: E402

BULK = os.path.join(PCAPS, "good", "echo-connections.pcap")
NFLOG = os.path.join(PCAPS, "edge", "nflog.pcap")
SMTP = os.path.join(PCAPS, "good", "smtp-data-rejected.pcap")
LIMITS = {"max-queries": 4, "max-connections": 100, "max-client-connections": 40,
          "idle-timeout": 3, "send-timeout": 5, "min-rate": 8192,
          "ctl-max-connections": 16, "ctl-idle-timeout": 2}


# ---------------------------------------------------------------- HTTP bits

def raw(port, data, src="127.0.0.1", timeout=60):
    """Send raw request bytes, read the whole answer (until the server
    closes): (status, headers {lower name: [values]}, body bytes) or
    (None, {}, b"") when the connection closed without an answer."""
    s = socket.socket()
    s.settimeout(timeout)
    s.bind((src, 0))
    s.connect(("127.0.0.1", port))
    try:
        s.sendall(data)
        buf = b""
        while True:
            b = s.recv(65536)
            if not b:
                break
            buf += b
    except (ConnectionResetError, BrokenPipeError):
        pass
    finally:
        s.close()
    return parse_answer(buf)


def parse_answer(buf):
    head, sep, body = buf.partition(b"\r\n\r\n")
    if not sep:
        return None, {}, b""
    lines = head.split(b"\r\n")
    parts = lines[0].split(b" ", 2)
    hdrs = {}
    for ln in lines[1:]:
        k, _, v = ln.partition(b":")
        hdrs.setdefault(k.strip().lower().decode("latin-1"), []).append(
            v.strip().decode("latin-1"))
    if "chunked" in ",".join(hdrs.get("transfer-encoding", [])):
        out, rest = b"", body
        while rest:
            size_line, _, rest = rest.partition(b"\r\n")
            n = int(size_line.split(b";")[0] or b"0", 16)
            if n == 0:
                break
            out += rest[:n]
            rest = rest[n + 2:]
        body = out
    return int(parts[1]), hdrs, body


def get(port, path, method="GET", headers=(), src="127.0.0.1", version="HTTP/1.1",
        host=True):
    req = ("%s %s %s\r\n" % (method, path, version)).encode("latin-1") \
        if isinstance(path, str) else method.encode("latin-1") + b" " + path + b" " + version.encode() + b"\r\n"
    if host:
        req += b"Host: 127.0.0.1\r\n"
    for h in headers:
        req += h if isinstance(h, bytes) else h.encode()
        req += b"\r\n"
    req += b"Connection: close\r\n\r\n"
    return raw(port, req, src=src)


def json_error(body):
    try:
        j = json.loads(body)
        return j["error"]["code"], j["error"]["message"]
    except (ValueError, KeyError, TypeError):
        return None, None


def normal_query(port, deadline_s=60):
    """A normal query, asked again while the answer is 503 busy (bounded):
    True once it gets a complete 200 whose packets tcpdump agrees with."""
    end = time.time() + deadline_s
    want = harness.frames(tcpdump(BULK, "tcp port 7 and tcp[tcpflags] & tcp-syn != 0"))
    q = urllib.parse.quote("tcp port 7 and tcp[tcpflags] & tcp-syn != 0")
    while time.time() < end:
        st, h, body = get(port, "/api/v1/packets?point=eth&filter=" + q)
        if st == 200:
            return harness.frames(body) == want
        if st != 503:
            return False
        time.sleep(0.2)
    return False


def proc_stats(pid):
    """Threads, open descriptors (without RocksDB's own files, which come
    and go with flushes) and resident memory."""
    threads = len(os.listdir("/proc/%d/task" % pid))
    fds = 0
    for fd in os.listdir("/proc/%d/fd" % pid):
        try:
            if "/index/" not in os.readlink("/proc/%d/fd/%s" % (pid, fd)):
                fds += 1
        except OSError:
            pass
    rss = 0
    with open("/proc/%d/status" % pid) as f:
        for line in f:
            if line.startswith("VmRSS:"):
                rss = int(line.split()[1]) * 1024
    return threads, fds, rss


def settle(pid, idle, secs=40):
    """Wait (bounded) until threads and descriptors are back near idle."""
    end = time.time() + secs
    st = proc_stats(pid)
    while time.time() < end:
        st = proc_stats(pid)
        if st[0] <= idle[0] + 2 and st[1] <= idle[1] + 2:
            break
        time.sleep(0.5)
    return st


def metric(port, name):
    st, _, body = get(port, "/metrics")
    for line in body.decode().splitlines():
        if line.startswith(name + " "):
            return float(line.split()[1])
    return None


# ---------------------------------------------------------------- daemon

class Daemon:
    def __init__(self, arch, tmp, port, name):
        self.port = port
        self.logpath = os.path.join(tmp, name + ".log")
        self.log = open(self.logpath, "wb")
        args = [os.path.join(BIN, "rewindd"), "--dir", arch, "--listen",
                "127.0.0.1:%d" % port]
        for k, v in LIMITS.items():
            args += ["--" + k, str(v)]
        if os.environ.get("RWHOSTILE_IFACE"):
            args += ["-i", os.environ["RWHOSTILE_IFACE"] + "=live"]
        self.p = subprocess.Popen(args, stdout=self.log, stderr=self.log)
        end = time.time() + 20
        while time.time() < end:
            try:
                if get(port, "/healthz")[0] == 200:
                    return
            except OSError:
                pass
            time.sleep(0.1)
        raise RuntimeError("rewindd did not answer /healthz")

    def text(self):
        with open(self.logpath, "rb") as f:
            return f.read().decode(errors="replace")

    def stop(self, secs=60):
        """SIGTERM; the exit status, or None if it did not stop in secs
        (then killed)."""
        self.p.send_signal(signal.SIGTERM)
        try:
            return self.p.wait(secs)
        except subprocess.TimeoutExpired:
            self.p.kill()
            self.p.wait()
            return None


# ---------------------------------------------------------------- malformed

def test_malformed(d):
    port = d.port
    P = "/api/v1/packets?"
    cases = [
        # (request target, status, code, words the message must hold)
        (P + "filter=%ff", 400, "bad_parameter", ["'filter'", "UTF-8"]),
        (P + "filter=%c3%28", 400, "bad_parameter", ["'filter'", "UTF-8"]),
        (P + "filter=%ed%a0%80", 400, "bad_parameter", ["'filter'", "UTF-8"]),  # surrogate
        (P + "filter=%c0%af", 400, "bad_parameter", ["'filter'", "UTF-8"]),  # overlong
        (P + "filter=%f5%80%80%80", 400, "bad_parameter", ["'filter'", "UTF-8"]),
        (P + "from=%ff", 400, "bad_parameter", ["'from'", "UTF-8"]),
        (P + "to=%fe", 400, "bad_parameter", ["'to'", "UTF-8"]),
        (P + "limit=%80", 400, "bad_parameter", ["'limit'", "UTF-8"]),
        (P + "point=%ff", 400, "bad_parameter", ["'point'", "UTF-8"]),
        (P + "format=pcap%ff", 400, "bad_parameter", ["'format'", "UTF-8"]),
        (P + "%ff=1", 400, "bad_parameter", ["parameter name", "UTF-8"]),
        ("/api/v1/pack%ffets", 400, "bad_parameter", ["path", "UTF-8"]),
        ("/api/v1/status?x%00=1", 400, "bad_parameter", ["parameter name", "NUL"]),
        (P + "filter=port%2025%00%20and%20host%209.9.9.9", 400, "bad_parameter",
         ["'filter'", "NUL"]),
        (P + "from=-5m%00", 400, "bad_parameter", ["'from'", "NUL"]),
        (P + "limit=1%00", 400, "bad_parameter", ["'limit'", "NUL"]),
        (P + "point=eth%00x", 400, "bad_parameter", ["'point'", "NUL"]),
        ("/api/v1/segments?point=%00", 400, "bad_parameter", ["'point'", "NUL"]),
        ("/heal%00thz", 400, "bad_parameter", ["path", "NUL"]),
        ("/nope%ff", 400, "bad_parameter", ["path"]),
        ("/" + "n" * 20000, 404, "not_found", ["no route"]),
        (P + "a" * 5000 + "=1", 400, "unknown_parameter", ["unknown parameter"]),
        (P + "limit=" + "9" * 5000, 400, "bad_parameter", ["'limit'"]),
        (P + "from=" + "1" * 5000, 400, "bad_parameter", ["'from'"]),
        (P + "limit=1&limit=2", 400, "bad_parameter", ["'limit'", "more than once"]),
        (P + "filter=tcp&filter=udp", 400, "bad_parameter", ["'filter'", "more than once"]),
        ("/api/v1/segments?from=-1h&from=-2h", 400, "bad_parameter", ["'from'"]),
        (P + "from=99999999999999999999", 400, "bad_parameter", ["'from'"]),
        (P + "to=-99999999999999999999", 400, "bad_parameter", ["'to'"]),
        (P + "from=9999-12-31T23:59:59Z&to=1970-01-01T00:00:00Z", 400, "bad_parameter",
         ["'from'"]),
        (P + "from=-100000000d", 400, "bad_parameter", ["'from'"]),
        (P + "limit=18446744073709551616", 400, "bad_parameter", ["'limit'"]),
        (P + "limit=-1", 400, "bad_parameter", ["'limit'"]),
        (P + "limit_bytes=99999999999999999999T", 400, "bad_parameter", ["'limit_bytes'"]),
        (P + "&".join("x%d=1" % i for i in range(40)), 400, None, []),
        (P + "filter=" + "x" * 70000, 414, "uri_too_long", ["--max-uri"]),
        # 2,700 primitives would hold libpcap's (serial) compiler for minutes.
        (P + "filter=" + urllib.parse.quote(" or ".join("port %d" % (i + 1) for i in range(2700))),
         400, "bad_filter", ["2700 primitives", "at most 128"]),
        (P + "filter=" + urllib.parse.quote("||".join("host 10.0.0.%d" % i for i in range(200))),
         400, "bad_filter", ["200 primitives"]),
    ]
    for target, status, code, words in cases:
        st, h, body = get(port, target)
        c, msg = json_error(body)
        ok = st == status and "application/json" in h.get("content-type", [""])[0] and \
            (code is None or c == code) and all(w in (msg or "") for w in words)
        check(ok, "malformed %s: %s %s %s" % (target[:80], st, c, (msg or body[:100])))

    # Raw bytes the client did not escape, in the path and the query.
    for target in (b"/api/v1/packets?filter=\xff", b"/healthz\xc3", b"/api/v1/status?\xfe=1"):
        st, h, body = get(port, target)
        c, msg = json_error(body)
        check(st == 400 and c == "bad_parameter" and "UTF-8" in (msg or ""),
              "raw bytes %r: %s %s" % (target, st, msg))
    # Header limits; an invalid UTF-8 header value is no harm where unused.
    st, h, body = get(port, "/healthz", headers=["X-Big: " + "y" * 40000])
    check(st == 431 and json_error(body)[0] == "headers_too_large", "431 JSON: %s" % st)
    st, h, body = get(port, "/healthz", headers=[b"X-Odd: \xff\xfe"])
    check(st == 200, "bad UTF-8 in an unused header: %s" % st)
    # HTTP/1.1 needs Host; HTTP/1.0 does not.
    st, h, body = get(port, "/healthz", host=False)
    check(st == 400 and json_error(body)[0] == "bad_request" and "Host" in json_error(body)[1],
          "HTTP/1.1 without Host: %s %s" % (st, body[:80]))
    st, h, body = get(port, "/healthz", host=False, version="HTTP/1.0")
    check(st == 200, "HTTP/1.0 without Host: %s" % st)
    st, h, body = get(port, "/healthz", headers=["Host: other"])
    check(st == 400 and json_error(body)[0] == "bad_request", "two Host headers: %s" % st)
    # A method that is not UTF-8: 405 JSON, the message still JSON.
    st, h, body = get(port, b"/healthz", method="G\xffT")
    check(st == 405 and json_error(body)[0] == "method_not_allowed", "odd method: %s" % st)
    # An unknown method on a route: 405 JSON.
    st, h, body = get(port, "/healthz", method="BREW")
    check(st == 405 and json_error(body)[0] == "method_not_allowed", "405: %s" % st)

    # HEAD /api/v1/packets: the headers, no body at all.
    s = socket.create_connection(("127.0.0.1", port), timeout=30)
    s.sendall(b"HEAD /api/v1/packets?point=eth HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
    buf = b""
    while True:
        b = s.recv(65536)
        if not b:
            break
        buf += b
    s.close()
    head, _, rest = buf.partition(b"\r\n\r\n")
    check(head.startswith(b"HTTP/1.1 200") and rest == b"" and b"X-Rewind-Plan" in head,
          "HEAD sends no body: %r" % rest[:60])

    # A valid 20 KB filter: answered in full, its echo bounded.
    longf = "tcp port 7" + " " * 20000 + "and tcp[tcpflags] & tcp-syn != 0"
    st, h, body = get(port, "/api/v1/packets?point=eth&filter=" + urllib.parse.quote(longf))
    echo = h.get("x-rewind-filter", [""])[0]
    check(st == 200 and harness.frames(body) == harness.frames(tcpdump(BULK, longf)),
          "a 20 KB filter is answered: %s" % st)
    check(0 < len(echo) <= 400 and "20042 bytes" in echo and "sha256" in echo,
          "X-Rewind-Filter bounded: %d bytes: %s" % (len(echo), echo[-60:]))

    # 128 primitives are still answered, as tcpdump answers them.
    many = " or ".join("port %d" % p for p in range(1, 129))
    st, h, body = get(port, "/api/v1/packets?point=eth&filter=" + urllib.parse.quote(many))
    check(st == 200 and harness.frames(body) == harness.frames(tcpdump(BULK, many)),
          "a filter of 128 primitives is answered: %s" % st)

    # Every answer above left the daemon well.
    check(get(port, "/healthz")[0] == 200, "daemon answers after the malformed requests")


def test_unfilterable_point(d):
    """The NFLOG point: left out of archive-wide filtered queries with a
    warning naming it; an error when the request names it."""
    port = d.port
    flt = "tcp port 7 and tcp[tcpflags] & tcp-syn != 0"
    st, h, body = get(port, "/api/v1/packets?filter=" + urllib.parse.quote(flt))
    warn = " ".join(h.get("x-rewind-warning", []))
    check(st == 200 and harness.frames(body) == harness.frames(tcpdump(BULK, flt)),
          "archive-wide filtered query with an NFLOG point: %s" % st)
    check("'nf'" in warn and "NFLOG" in warn, "X-Rewind-Warning names the point: %s" % warn)
    check("'nf' left out" in d.text(), "the log names the point left out")
    st, h, body = get(port, "/api/v1/packets?point=nf&filter=" + urllib.parse.quote(flt))
    c, msg = json_error(body)
    check(st == 400 and c == "bad_filter" and "NFLOG" in (msg or ""),
          "a query naming the NFLOG point: %s %s" % (st, msg))
    # Without a filter, every point answers (pcapng: two link types).
    st, h, body = get(port, "/api/v1/packets?format=pcapng")
    check(st == 200 and not h.get("x-rewind-warning"), "unfiltered query: %s" % st)
    # The same through the CLI, via the daemon's control socket and locally.
    for extra in ([], ["--local"]):
        r = harness.rw("query", "--dir", d.arch, "--count", *extra, flt)
        check(r.returncode == 0 and b"'nf' left out" in r.stderr and
              r.stdout.strip() == str(len(list(harness.frames(tcpdump(BULK, flt)).elements()))).encode(),
              "rewind query %s: exit %d %s %s" % (extra, r.returncode, r.stdout, r.stderr[-200:]))


# ---------------------------------------------------------------- load

def slow_reader(port, path, stop, src="127.0.0.1"):
    """A client that asks and then reads (almost) nothing until stop."""
    s = socket.socket()
    s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    s.bind((src, 0))
    s.connect(("127.0.0.1", port))
    s.sendall(("GET %s HTTP/1.1\r\nHost: x\r\n\r\n" % path).encode())
    return s


def test_slow_readers(d):
    """--max-queries slow readers of a 6.8 MB answer: their query slots come
    back once they stall, a normal query gets its complete answer while they
    hold their sockets, and the watchdog cuts them (they accept less than
    --min-rate over --send-timeout)."""
    port = d.port
    socks = [slow_reader(port, "/api/v1/packets?point=eth", None)
             for _ in range(LIMITS["max-queries"])]
    try:
        # Their slots come back as soon as they stall, before they are cut.
        check(normal_query(port), "a normal query answers while slow readers hold on")
        end = time.time() + 60
        while time.time() < end and \
                (metric(port, 'rewind_http_cut_total{reason="slow"}') or 0) < len(socks):
            time.sleep(0.5)
    finally:
        for s in socks:
            s.close()
    check((metric(port, 'rewind_http_cut_total{reason="slow"}') or 0) >= len(socks),
          "the slow readers were cut (rewind_http_cut_total{reason=\"slow\"})")
    check("slower than --min-rate" in d.text(), "the log says why an answer was cut")
    # A reader slow but above --min-rate is not cut: 1.5 MB at about 256 KB/s.
    s = socket.create_connection(("127.0.0.1", port), timeout=60)
    s.sendall(b"GET /api/v1/packets?point=eth&limit=18000 HTTP/1.1\r\nHost: x\r\n"
              b"Connection: close\r\n\r\n")
    buf = b""
    for _ in range(2000):
        b = s.recv(16384)
        if not b:
            break
        buf += b
        time.sleep(0.05)
    s.close()
    st, h, body = parse_answer(buf)
    want = subprocess.run(["tcpdump", "--time-stamp-precision=nano", "-r", BULK, "-c", "18000",
                           "-w", "-"], capture_output=True).stdout
    check(st == 200 and harness.frames(body) == harness.frames(want),
          "a slow but steady reader gets all of its answer: %s %d" % (st, len(body)))


def test_slowloris(d):
    """30 clients from 127.0.0.3 sending their headers (or a body) a byte at
    a time: cut at --idle-timeout; meanwhile a normal query answers."""
    port = d.port
    socks = []
    for i in range(30):
        s = socket.socket()
        s.bind(("127.0.0.3", 0))
        s.connect(("127.0.0.1", port))
        if i % 3 == 0:  # the headers complete, the body dripped
            s.sendall(b"POST /healthz HTTP/1.1\r\nHost: x\r\nContent-Length: 100000\r\n\r\n")
        else:
            s.sendall(b"GET /healthz HTTP/1.1\r\n")
        socks.append(s)
    stop = threading.Event()

    def drip():
        for i in range(40):  # bounded: 40 rounds
            if stop.is_set():
                return
            for s in socks:
                try:
                    s.send(b"X-a: b\r\n"[i % 8:i % 8 + 1])
                except OSError:
                    pass
            time.sleep(0.25)
    t = threading.Thread(target=drip)
    t.start()
    try:
        check(normal_query(port), "a normal query answers during a slowloris")
        t.join()
    finally:
        stop.set()
        t.join()
    closed = 0
    for s in socks:
        s.settimeout(10)
        try:
            closed += s.recv(100) == b""
        except OSError:
            closed += 1
        s.close()
    check(closed == len(socks), "every slowloris connection was closed: %d of %d" %
          (closed, len(socks)))


def test_concurrency(d):
    """32 requests at once from one address: every one answered 200."""
    port = d.port
    socks = [socket.create_connection(("127.0.0.1", port), timeout=60) for _ in range(32)]
    for s in socks:
        s.sendall(b"GET /api/v1/status HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
    codes = []
    for s in socks:
        buf = b""
        while True:
            b = s.recv(65536)
            if not b:
                break
            buf += b
        s.close()
        codes.append(parse_answer(buf)[0])
    check(codes.count(200) == 32, "32 concurrent requests from one address: %s" % codes)


def test_flood(d):
    """70 connections from 127.0.0.2 (limit 40 per client): the first 40
    answered, the others 503 JSON with Retry-After; a normal query from
    another address answers meanwhile."""
    port = d.port
    n = 70
    socks = []
    for _ in range(n):
        s = socket.socket()
        s.settimeout(60)
        s.bind(("127.0.0.2", 0))
        s.connect(("127.0.0.1", port))
        socks.append(s)
    time.sleep(0.5)  # let the server see them all before the first request
    check(normal_query(port), "a normal query answers during a connection flood")
    for s in socks:
        s.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
    answers = []
    for s in socks:
        buf = b""
        try:
            while True:
                b = s.recv(65536)
                if not b:
                    break
                buf += b
        except OSError:
            pass
        s.close()
        answers.append(parse_answer(buf))
    ok = sum(1 for a in answers if a[0] == 200)
    busy = [a for a in answers if a[0] == 503]
    check(ok == LIMITS["max-client-connections"] and ok + len(busy) == n,
          "flood: %d answered, %d busy of %d" % (ok, len(busy), n))
    check(all(json_error(a[2])[0] == "busy" and a[1].get("retry-after") and
              "--max-client-connections" in json_error(a[2])[1] for a in busy),
          "each refusal is a JSON 503 with Retry-After")
    check((metric(port, "rewind_http_refused_total") or 0) >= len(busy), "refusals counted")


def test_total_limit(d):
    """38 connections from each of three addresses (114, over the total
    of 100, each address under its 40): the ones over the total get a JSON
    503 naming --max-connections; afterwards a normal query answers."""
    port = d.port
    socks = []
    for src in ("127.0.0.4", "127.0.0.5", "127.0.0.6"):
        for _ in range(38):
            s = socket.socket()
            s.settimeout(60)
            s.bind((src, 0))
            s.connect(("127.0.0.1", port))
            socks.append(s)
    time.sleep(0.5)
    for s in socks:
        s.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
    answers = []
    for s in socks:
        buf = b""
        try:
            while True:
                b = s.recv(65536)
                if not b:
                    break
                buf += b
        except OSError:
            pass
        s.close()
        answers.append(parse_answer(buf))
    ok = sum(1 for a in answers if a[0] == 200)
    busy = [a for a in answers if a[0] == 503]
    check(ok + len(busy) == len(socks) and len(busy) >= len(socks) - LIMITS["max-connections"]
          and ok >= 1, "total limit: %d answered, %d busy of %d" % (ok, len(busy), len(socks)))
    check(all("--max-connections" in (json_error(a[2])[1] or "") and a[1].get("retry-after")
              for a in busy), "each refusal over the total names --max-connections")
    check(normal_query(port), "a normal query answers after the flood")


# ---------------------------------------------------------------- control socket

def ctl_answer(s, secs=20):
    """The first line of the daemon's answer that is not "progress", or
    None when none came within secs (a hang)."""
    s.settimeout(secs)
    buf = b""
    end = time.time() + secs
    try:
        while time.time() < end:
            while b"\n" in buf:
                line, buf = buf.split(b"\n", 1)
                if not line.startswith(b"progress"):
                    return line
            b = s.recv(4096)
            if not b:
                return buf
            buf += b
    except socket.timeout:
        return None
    except OSError:
        return buf
    return None


def test_ctl(d):
    sock = os.path.join(d.arch, "rewindd.sock")
    pid = d.p.pid
    fds0 = proc_stats(pid)[1]
    # Two descriptors with one request, 20 times: none of them stays open.
    for _ in range(20):
        r, w = os.pipe()
        s = socket.socket(socket.AF_UNIX)
        s.connect(sock)
        socket.send_fds(s, [b"status\n"], [r, w])
        os.close(r)
        os.close(w)
        ctl_answer(s)
        s.close()
    time.sleep(0.5)
    check(proc_stats(pid)[1] <= fds0 + 1, "two descriptors per message leak none: %d -> %d" %
          (fds0, proc_stats(pid)[1]))
    # An import of a pipe whose write end comes along: the daemon must not
    # hold that end itself and read for ever.
    r, w = os.pipe()
    s = socket.socket(socket.AF_UNIX)
    s.connect(sock)
    socket.send_fds(s, [b"import\tpoint=own\tlabel=ownpipe\n"], [r, w])
    os.close(r)
    os.close(w)
    a = ctl_answer(s, 30)
    s.close()
    check(a is not None and a.startswith(b"error"), "import of its own pipe ends: %r" % a)
    # A hold whose reason is not UTF-8 (the control socket stores what it is
    # given): /api/v1/holds still answers JSON, with the hold in it.
    s = socket.socket(socket.AF_UNIX)
    s.connect(sock)
    s.sendall(b"hold\top=add\tfrom=0\tto=1000000000\treason=bad%ff%fe\n")
    a = ctl_answer(s) or b""
    s.close()
    st, h, body = get(d.port, "/api/v1/holds")
    try:
        reasons = [x["reason"] for x in json.loads(body)["holds"]]
    except (ValueError, KeyError):
        reasons = []
    check(a.startswith(b"ok") and st == 200 and "bad??" in reasons,
          "a hold with a reason that is not UTF-8 is listed: %r %s %s" % (a, st, reasons))
    # Many idle connections: the threads stay bounded; those over the limit
    # hear "busy", the rest are closed at --ctl-idle-timeout.
    idle = proc_stats(pid)
    conns = []
    for _ in range(60):
        s = socket.socket(socket.AF_UNIX)
        s.connect(sock)
        conns.append(s)
    time.sleep(0.5)
    during = proc_stats(pid)
    check(during[0] <= idle[0] + LIMITS["ctl-max-connections"] + 2,
          "60 idle control connections: threads %d -> %d" % (idle[0], during[0]))
    answers = [ctl_answer(s, 20) or b"" for s in conns]
    for s in conns:
        s.close()
    busy = sum(1 for a in answers if a.startswith(b"busy"))
    timed = sum(1 for a in answers if b"--ctl-idle-timeout" in a)
    check(busy + timed == 60 and timed <= LIMITS["ctl-max-connections"],
          "idle control connections: %d busy, %d closed idle" % (busy, timed))
    after = settle(pid, idle)
    check(after[0] <= idle[0] + 2 and after[1] <= idle[1] + 2,
          "control socket threads and descriptors back: %s -> %s" % (idle[:2], after[:2]))


def test_endless_import_sigterm(d):
    """An import from a pipe that never ends must not keep SIGTERM from
    stopping the daemon."""
    sock = os.path.join(d.arch, "rewindd.sock")
    r, w = os.pipe()
    s = socket.socket(socket.AF_UNIX)
    s.connect(sock)
    socket.send_fds(s, [b"import\tpoint=endless\tlabel=endless\n"], [r])
    os.close(r)
    with open(SMTP, "rb") as f:
        os.write(w, f.read()[:4096])  # a start, then nothing: w stays open
    time.sleep(1)
    rc = d.stop(60)
    check(rc == 0, "SIGTERM stops the daemon during an endless import: %s" % rc)
    a = ctl_answer(s, 5) or b""
    check(b"shutdown" in a, "the import's client hears it was cut: %r" % a[:120])
    s.close()
    os.close(w)


# ---------------------------------------------------------------- live capture

class Traffic(threading.Thread):
    """Frames sent on the veth peer while the hostile clients run: UDP to
    port 9999, each distinct, at most 50 a second and 3000 in all."""
    def __init__(self, iface):
        super().__init__()
        self.iface, self.sent, self.stop = iface, 0, threading.Event()

    def run(self):
        import struct
        s = socket.socket(socket.AF_PACKET, socket.SOCK_RAW)
        s.bind((self.iface, 0))
        while not self.stop.is_set() and self.sent < 3000:
            payload = b"hostile-%06d" % self.sent
            udp = struct.pack(">HHHH", 40000, 9999, 8 + len(payload), 0) + payload
            ip = struct.pack(">BBHHHBBH4s4s", 0x45, 0, 20 + len(udp), self.sent & 0xffff, 0, 64,
                             17, 0, bytes([10, 9, 9, 1]), bytes([10, 9, 9, 2]))
            s.send(b"\x02\x00\x00\x00\x00\x02\x02\x00\x00\x00\x00\x01\x08\x00" + ip + udp)
            self.sent += 1
            time.sleep(0.02)
        s.close()


def check_live(d, traffic):
    traffic.stop.set()
    traffic.join()
    time.sleep(3)  # a flush (1 s) and then some
    r = harness.rw("query", "--dir", d.arch, "--local", "--point", "live", "--count",
                   "udp dst port 9999")
    check(traffic.sent > 100 and r.returncode == 0 and
          r.stdout.strip() == str(traffic.sent).encode(),
          "live capture during the load kept every frame: %s of %d" %
          (r.stdout.strip(), traffic.sent))
    st, h, body = get(d.port, "/api/v1/status")
    pts = {p["name"]: p for p in json.loads(body)["points"]} if st == 200 else {}
    live = pts.get("live", {})
    check(live.get("kernel_drops") == 0 and live.get("queue_drops") == 0,
          "no drops on the live point: %s" % {k: live.get(k) for k in
                                              ("kernel_drops", "queue_drops")})


def in_namespace():
    """Run this test again inside a network namespace of its own with a
    veth pair, rewindd capturing on one end while the clients load it.
    None when namespaces are not available (the test then runs here,
    without live capture)."""
    ns = "rwhostile%d" % os.getpid()
    if os.geteuid() != 0 or sh("ip", "netns", "add", ns).returncode != 0:
        return None
    try:
        for c in (["ip", "link", "set", "lo", "up"],
                  ["ip", "link", "add", "rwhx0", "type", "veth", "peer", "name", "rwhx1"],
                  ["sysctl", "-qw", "net.ipv6.conf.all.disable_ipv6=1"],
                  ["ip", "link", "set", "rwhx0", "up"], ["ip", "link", "set", "rwhx1", "up"]):
            r = harness.nsexec(ns, *c)
            if r.returncode:
                print("setup %s: %s" % (c, r.stderr.decode()))
                return 1
        env = dict(os.environ, RWHOSTILE_IFACE="rwhx0", RWHOSTILE_PEER="rwhx1")
        return subprocess.run(["ip", "netns", "exec", ns, sys.executable, __file__],
                              env=env).returncode
    finally:
        sh("ip", "netns", "del", ns)


# ---------------------------------------------------------------- main

def main():
    if not os.environ.get("RWHOSTILE_IFACE"):
        rc = in_namespace()
        if rc is not None:
            sys.exit(rc)
    tmp = tempfile.mkdtemp(prefix="rwhostile%d." % os.getpid())
    arch = os.path.join(tmp, "a")
    d = None
    try:
        for point, f in (("eth", BULK), ("nf", NFLOG)):
            r = sh(REWIND, "import", "--dir", arch, "--point", point, f)
            if r.returncode:
                raise RuntimeError(r.stderr.decode())
        # The limits' options refuse what they cannot mean (exit 2, the
        # option named), before anything is created.
        for opt, val in (("--max-connections", "0"), ("--max-client-connections", "-3"),
                         ("--idle-timeout", "x"), ("--send-timeout", ""),
                         ("--min-rate", "1e3"), ("--max-uri", "5"),
                         ("--max-headers", "99999999999"), ("--ctl-max-connections", "0"),
                         ("--ctl-idle-timeout", "10s")):
            r = sh(os.path.join(BIN, "rewindd"), "--dir", os.path.join(tmp, "never"), opt, val)
            check(r.returncode == 2 and opt.encode() in r.stderr and
                  not os.path.exists(os.path.join(tmp, "never")),
                  "rewindd %s %r: exit %d %s" % (opt, val, r.returncode, r.stderr[-120:]))
        d = Daemon(arch, tmp, harness.free_port(), "rewindd")
        d.arch = arch
        # Warm up, then the idle level.
        check(normal_query(d.port), "a normal query answers")
        get(d.port, "/api/v1/packets?point=eth")
        time.sleep(LIMITS["idle-timeout"] + 1)
        idle = proc_stats(d.p.pid)
        traffic = None
        if os.environ.get("RWHOSTILE_PEER"):
            traffic = Traffic(os.environ["RWHOSTILE_PEER"])
            traffic.start()
        test_malformed(d)
        test_unfilterable_point(d)
        test_concurrency(d)
        test_slow_readers(d)
        test_slowloris(d)
        test_flood(d)
        test_total_limit(d)
        after = settle(d.p.pid, idle)
        check(after[0] <= idle[0] + 2, "threads back near idle: %d -> %d" % (idle[0], after[0]))
        check(after[1] <= idle[1] + 2, "descriptors back near idle: %d -> %d" %
              (idle[1], after[1]))
        check(after[2] <= idle[2] * 1.5 + (64 << 20), "memory back near idle: %d -> %d KiB" %
              (idle[2] >> 10, after[2] >> 10))
        if traffic:
            check_live(d, traffic)
        test_ctl(d)
        test_endless_import_sigterm(d)
        d = None
    finally:
        if d:
            d.stop(10)
        shutil.rmtree(tmp, ignore_errors=True)
    harness.finish("test_hostile")


if __name__ == "__main__":
    main()
