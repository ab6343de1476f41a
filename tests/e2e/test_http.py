#!/usr/bin/env python3
"""The HTTP API end to end, against a real rewindd in a network namespace
that captures live on a veth pair while it serves: 32 concurrent clients,
a client that disconnects, a slow client, every kind of bad parameter,
keep-alive reuse, /metrics as Prometheus text, SIGTERM during an export.
A second rewindd (--max-queries 1, --log FILE) answers 503 and has its log
rotated with SIGHUP. All traffic stays inside the namespace; every loop is
bounded."""
import concurrent.futures
import http.client
import json
import os
import re
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
import pcaputil  # noqa: E402
from harness import BIN, PCAPS, REWIND, check, sh, tcpdump  # noqa: E402
NS = "rwhttp%d" % os.getpid()
PORT = 8800
PORT2 = 8801
BULK = os.path.join(PCAPS, "good", "echo-connections.pcap")


def ns(*args, **kw):
    return harness.nsexec(NS, *args, **kw)


class NsHttp:
    """HTTP requests made from inside the namespace (its loopback), via a
    small python client run there with `ip netns exec`."""
    CLIENT = r'''
import http.client, sys, json
c = http.client.HTTPConnection("127.0.0.1", int(sys.argv[3]), timeout=120)
c.request(sys.argv[1], sys.argv[2])
r = c.getresponse()
body = r.read()
sys.stdout.buffer.write(json.dumps({"status": r.status, "headers": dict(r.getheaders())}).encode() + b"\n")
sys.stdout.buffer.write(body)
'''

    @staticmethod
    def get(path, method="GET", port=PORT):
        r = ns("python3", "-c", NsHttp.CLIENT, method, path, str(port))
        if r.returncode != 0:
            return None, {}, r.stderr
        head, _, body = r.stdout.partition(b"\n")
        meta = json.loads(head)
        return meta["status"], meta["headers"], body


def pid_stats(pid):
    """Open descriptors (not counting RocksDB's own files, which come and go
    with flushes and compactions) and resident memory."""
    fds = 0
    for fd in os.listdir("/proc/%d/fd" % pid):
        try:
            target = os.readlink("/proc/%d/fd/%s" % (pid, fd))
        except OSError:
            continue
        if "/index/" not in target:
            fds += 1
    rss = 0
    with open("/proc/%d/status" % pid) as f:
        for line in f:
            if line.startswith("VmRSS:"):
                rss = int(line.split()[1]) * 1024
    return fds, rss


def parse_prometheus(text):
    """A small Prometheus text-format parser: returns {name{labels}: value};
    raises ValueError on any malformed line."""
    out = {}
    types = {}
    for line in text.splitlines():
        if not line:
            continue
        if line.startswith("# HELP "):
            continue
        if line.startswith("# TYPE "):
            _, _, name, typ = line.split(" ", 3)
            if typ not in ("counter", "gauge", "histogram", "summary", "untyped"):
                raise ValueError("bad type line: " + line)
            types[name] = typ
            continue
        if line.startswith("#"):
            continue
        m = re.match(r'^([a-zA-Z_:][a-zA-Z0-9_:]*)(\{([a-zA-Z_][a-zA-Z0-9_]*="(?:[^"\\]|\\.)*"'
                     r'(,[a-zA-Z_][a-zA-Z0-9_]*="(?:[^"\\]|\\.)*")*)?\})? ([-+]?[0-9.eE+-]+|NaN|'
                     r'[+-]Inf)$', line)
        if not m:
            raise ValueError("bad sample line: " + line)
        base = re.sub(r"_(bucket|sum|count)$", "", m.group(1))
        if m.group(1) not in types and base not in types:
            raise ValueError("sample without TYPE: " + line)
        out[m.group(1) + (m.group(2) or "")] = float(m.group(5))
    return out


def setup(arch, log):
    cmds = [["ip", "netns", "add", NS],
            ["ip", "netns", "exec", NS, "ip", "link", "set", "lo", "up"],
            ["ip", "netns", "exec", NS, "ip", "link", "add", "rwh0", "type", "veth", "peer",
             "name", "rwh1"],
            ["ip", "netns", "exec", NS, "sysctl", "-qw", "net.ipv6.conf.all.disable_ipv6=1"],
            ["ip", "netns", "exec", NS, "ip", "link", "set", "rwh0", "up"],
            ["ip", "netns", "exec", NS, "ip", "link", "set", "rwh1", "up"]]
    for c in cmds:
        r = sh(*c)
        if r.returncode:
            raise RuntimeError("%s: %s" % (" ".join(c), r.stderr.decode()))
    d = subprocess.Popen(["ip", "netns", "exec", NS, os.path.join(BIN, "rewindd"), "--dir", arch,
                          "-i", "rwh0=live", "--listen", "127.0.0.1:%d" % PORT,
                          "--max-queries", "40"], stdout=log, stderr=log)
    deadline = time.time() + 15
    while time.time() < deadline:
        if NsHttp.get("/healthz")[0] == 200:
            return d
        time.sleep(0.1)
    raise RuntimeError("rewindd did not answer /healthz")


def test_errors():
    cases = [
        ("/nope", 404, "not_found"),
        ("/api/v1/packets?bogus=1", 400, "unknown_parameter"),
        ("/api/v1/packets?from=yesterday", 400, "bad_parameter"),
        ("/api/v1/packets?to=2024-02-30T00:00:00Z", 400, "bad_parameter"),
        ("/api/v1/packets?from=100&to=50", 400, "bad_parameter"),
        ("/api/v1/packets?filter=" + urllib.parse.quote("host and"), 400, "bad_filter"),
        ("/api/v1/packets?filter=" + urllib.parse.quote("port 99999"), 400, "bad_filter"),
        ("/api/v1/packets?format=xml", 400, "bad_parameter"),
        ("/api/v1/packets?limit_packets=-1", 400, "bad_parameter"),
        ("/api/v1/packets?limit_bytes=lots", 400, "bad_parameter"),
        ("/api/v1/packets?point=nosuch", 400, "bad_parameter"),
        # the code comes from the step that failed, not from words in the
        # message: an unknown point named 'filter' is still a bad parameter
        ("/api/v1/packets?point=filter", 400, "bad_parameter"),
        ("/api/v1/packets?point=filter&filter=tcp", 400, "bad_parameter"),
        ("/api/v1/segments?from=x", 400, "bad_parameter"),
        ("/api/v1/segments?filter=tcp", 400, "unknown_parameter"),
        ("/api/v1/status?x=1", 400, "unknown_parameter"),
        ("/api/v1/packets?" + "&".join("p%d=1" % i for i in range(40)), 400, "bad_parameter"),
    ]
    for path, status, code in cases:
        st, hdr, body = NsHttp.get(path)
        try:
            err = json.loads(body)["error"]
        except (ValueError, KeyError, TypeError):
            err = {}
        check(st == status and err.get("code") == code and err.get("message"),
              "GET %s: %s %r, want %d %s" % (path, st, body[:200], status, code))
        check(hdr.get("Cache-Control") == "no-store", "GET %s: Cache-Control %r" %
              (path, hdr.get("Cache-Control")))
    # an unknown parameter's message lists every parameter the route takes
    takes = {"/api/v1/packets": ["from", "to", "filter", "point", "limit", "limit_packets",
                                 "limit_bytes", "format"],
             "/api/v1/segments": ["from", "to"]}
    for route, names in takes.items():
        st, hdr, body = NsHttp.get(route + "?bogus=1")
        msg = json.loads(body)["error"]["message"] if st == 400 else ""
        listed = set(re.findall(r"[a-z_]+", msg.partition(";")[2]))
        check(set(names) <= listed, "%s?bogus=1: message %r does not list %s" %
              (route, msg, sorted(set(names) - listed)))
    st, hdr, body = NsHttp.get("/api/v1/packets", method="POST")
    check(st == 405 and "GET" in hdr.get("Allow", ""), "POST /api/v1/packets: %s" % st)
    check(hdr.get("Cache-Control") == "no-store" and
          json.loads(body or b"{}").get("error", {}).get("code") == "method_not_allowed",
          "POST /api/v1/packets: headers %r body %r" % (hdr, body[:200]))
    st, hdr, body = NsHttp.get("/api/v1/status", method="DELETE")
    check(st == 405, "DELETE /api/v1/status: %s" % st)


def test_basic_routes():
    st, hdr, body = NsHttp.get("/api/v1/packets?point=bulk&filter=" + urllib.parse.quote("port 5"))
    check(st == 200 and body == tcpdump(BULK, "port 5"), "packets port 5 differs from tcpdump")
    check("attachment" in hdr.get("Content-Disposition", "") and
          ".pcap" in hdr.get("Content-Disposition", ""), "Content-Disposition: %r" % hdr)
    check(hdr.get("X-Rewind-Filter") == "port 5" and hdr.get("X-Rewind-Sensor"),
          "query and sensor headers: %r" % hdr)
    check(hdr.get("Cache-Control") == "no-store", "packets: Cache-Control %r" %
          hdr.get("Cache-Control"))
    for path in ("/api/v1/status", "/api/v1/segments", "/metrics", "/healthz"):
        st, hdr, _ = NsHttp.get(path)
        check(st == 200 and hdr.get("Cache-Control") == "no-store",
              "%s: %s, Cache-Control %r" % (path, st, hdr.get("Cache-Control")))
    st, hdr, body = NsHttp.get("/api/v1/packets?point=bulk&limit_packets=10")
    check(st == 200 and len(pcaputil.read_pcap(body)[1]) == 10, "limit_packets=10")
    st, hdr, body = NsHttp.get("/api/v1/packets?point=bulk&format=pcapng")
    r = subprocess.run(["tcpdump", "--time-stamp-precision=nano", "-r", "-", "-w", "-"],
                       input=body, capture_output=True)
    check(st == 200 and r.stdout == tcpdump(BULK), "pcapng answer, read back by tcpdump")
    st, hdr, body = NsHttp.get("/api/v1/segments")
    segs = json.loads(body).get("segments", []) if st == 200 else []
    check(st == 200 and any(s["point"] == "bulk" for s in segs), "segments lists bulk")
    st, hdr, body = NsHttp.get("/api/v1/status")
    stt = json.loads(body) if st == 200 else {}
    check(st == 200 and "bulk" in {p["name"] for p in stt.get("points", [])},
          "status lists the imported point: %r" % body[:300])


def test_query_url_dash(tmp):
    """rewind query --url ... -w - writes the answer on standard output, not
    into a file named '-': the bytes of -w FILE and of tcpdump."""
    cwd = os.path.join(tmp, "dash")
    os.makedirs(cwd)
    url = "http://127.0.0.1:%d" % PORT
    out = os.path.join(tmp, "url-dash.pcap")
    a = ns(REWIND, "query", "--url", url, "--point", "bulk", "-w", "-", "tcp[13] & 2 != 0", cwd=cwd)
    b = ns(REWIND, "query", "--url", url, "--point", "bulk", "-w", out, "tcp[13] & 2 != 0")
    want = tcpdump(BULK, "tcp[13] & 2 != 0")
    check(a.returncode == 0 and a.stdout == want and len(want) > 24,
          "--url -w -: exit %d, %d bytes on stdout, tcpdump wrote %d: %r" %
          (a.returncode, len(a.stdout), len(want), a.stderr))
    check(b.returncode == 0 and open(out, "rb").read() == a.stdout,
          "--url: -w FILE and -w - differ")
    check(os.listdir(cwd) == [], "--url -w -: files written: %r" % os.listdir(cwd))


def test_keepalive():
    script = r'''
import http.client, socket
c = http.client.HTTPConnection("127.0.0.1", %d, timeout=30)
socks = []
for path in ["/healthz", "/api/v1/packets?point=bulk&limit_packets=5", "/api/v1/status"]:
    c.request("GET", path)
    r = c.getresponse(); r.read()
    socks.append((r.status, c.sock.getsockname() if c.sock else None))
print(len(set(s for _, s in socks)), [st for st, _ in socks])
''' % PORT
    r = ns("python3", "-c", script)
    check(r.stdout.decode().startswith("1 [200, 200, 200]"),
          "keep-alive: three requests on one connection: %r %r" % (r.stdout, r.stderr))


def test_concurrent(pid):
    filters = ["", "tcp", "port 7", "host 127.0.0.1", "tcp[13] & 2 != 0", "not port 7",
               "src port 7 or dst port 9", "portrange 1-100"]
    want = {f: tcpdump(BULK, f) for f in filters}
    # warm up: the live point's first packet opens its segment for good
    ns("timeout", "20", "tcpreplay", "-q", "-i", "rwh1", os.path.join(PCAPS, "good", "sip-tcp.pcap"))
    time.sleep(1.2)
    idle = pid_stats(pid)
    # keep the live capture busy meanwhile
    replay = subprocess.Popen(["ip", "netns", "exec", NS, "timeout", "60", "tcpreplay", "-q",
                               "-i", "rwh1", "--pps=3000", "--loop=3",
                               os.path.join(PCAPS, "good", "smtp.pcap")],
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)

    def one(i):
        f = filters[i % len(filters)]
        st, hdr, body = NsHttp.get("/api/v1/packets?point=bulk&filter=" + urllib.parse.quote(f))
        return f, st, body

    with concurrent.futures.ThreadPoolExecutor(max_workers=32) as ex:
        results = list(ex.map(one, range(32)))
    replay.wait()
    bad = [(f, st) for f, st, body in results if st != 200 or body != want[f]]
    check(not bad, "32 concurrent clients: wrong answers %r" % bad[:5])
    time.sleep(1.5)
    st = sh(REWIND, "status", "--dir", ARCH).stdout.decode()
    live = [l for l in st.splitlines() if l.startswith("live ")]
    check(live and live[0].rstrip().endswith(" 0/0"), "kernel or queue drops during queries:\n" + st)
    st, _, body = NsHttp.get("/api/v1/status")
    check(st == 200 and "live" in {p["name"] for p in json.loads(body).get("points", [])},
          "status lists the live point once it has packets")
    after = pid_stats(pid)
    check(after[0] == idle[0], "open files after the queries: %d, idle %d" % (after[0], idle[0]))
    check(after[1] <= idle[1] + (64 << 20), "RSS after the queries: %d, idle %d" % (after[1],
                                                                                     idle[1]))


def raw_request(path, port=PORT):
    """Open a connection from inside the namespace via a helper process that
    forwards the socket's bytes on stdout: lets the test read slowly, stop,
    read steadily (4 KB every 50 ms, until killed) or hold the answer
    unread (until killed, at most 60 s)."""
    code = r'''
import socket, sys, time
s = socket.create_connection(("127.0.0.1", %d))
s.sendall(b"GET %s HTTP/1.1\r\nHost: x\r\n\r\n")
mode = sys.argv[1]
got = 0
while True:
    d = s.recv(4096 if mode == "slow" else 65536)
    if not d:
        break
    got += len(d)
    sys.stdout.write("%%d\n" %% got); sys.stdout.flush()
    if mode == "drop" and got > 100000:
        s.close(); break
    if mode == "hold":
        time.sleep(60); break
    if mode == "slow":
        time.sleep(0.05)
    if mode == "slow" and got > 400000:
        break
    if mode == "steady":
        time.sleep(0.05)
''' % (port, path)
    return code


def test_disconnect_and_slow(pid):
    idle = pid_stats(pid)
    r = ns("python3", "-c", raw_request("/api/v1/packets?point=bulk"), "drop")
    check(r.returncode == 0, "disconnecting client: %r" % r.stderr)
    # the daemon notices, frees the query and its files
    deadline = time.time() + 10
    while time.time() < deadline and pid_stats(pid)[0] != idle[0]:
        time.sleep(0.1)
    check(pid_stats(pid)[0] == idle[0], "open files after a client went away: %d, idle %d" %
          (pid_stats(pid)[0], idle[0]))
    st, _, body = NsHttp.get("/metrics")
    m = parse_prometheus(body.decode()) if st == 200 else {}
    check(m.get("rewind_queries_active") == 0, "rewind_queries_active after disconnect: %r" %
          m.get("rewind_queries_active"))
    # a slow client does not stall another one
    slow = subprocess.Popen(["ip", "netns", "exec", NS, "python3", "-c",
                             raw_request("/api/v1/packets?point=bulk"), "slow"],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    time.sleep(0.5)
    st, _, body = NsHttp.get("/api/v1/packets?point=bulk&filter=port%207")
    check(st == 200 and body == tcpdump(BULK, "port 7") and slow.poll() is None,
          "a query answered fully while a slow client is still reading")
    slow.kill()
    slow.wait()


def test_metrics():
    st, hdr, body = NsHttp.get("/metrics")
    try:
        m = parse_prometheus(body.decode())
        ok = True
    except ValueError as e:
        ok = False
        print("metrics: %s" % e)
    check(st == 200 and ok, "/metrics parses as Prometheus text")
    if ok:
        check(m.get('rewind_captured_packets_total{point="bulk"}') ==
              len(pcaputil.read_pcap(tcpdump(BULK))[1]), "captured packets of bulk in metrics")
        for k in ("rewind_queries_total", "rewind_exported_bytes_total",
                  'rewind_kernel_drops_total{point="live"}', 'rewind_disk_bytes{kind="index"}',
                  "rewind_query_duration_seconds_count"):
            check(k in m, "metric %s present" % k)
        check(m.get("rewind_query_duration_seconds_count", 0) >= 32, "latency histogram counts")


def test_sigterm(daemon, logpath):
    slow = subprocess.Popen(["ip", "netns", "exec", NS, "python3", "-c",
                             raw_request("/api/v1/packets?point=bulk"), "slow"],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    time.sleep(0.5)
    logpos = os.path.getsize(logpath)
    daemon.send_signal(signal.SIGTERM)
    rc = daemon.wait(timeout=30)
    out, _ = slow.communicate(timeout=30)
    got = int(out.split()[-1]) if out.split() else 0
    check(rc == 0, "rewindd exit code %d after SIGTERM during an export" % rc)
    # the export was cut: fewer bytes than the whole answer, and the chunked
    # stream never got its terminating chunk
    check(0 < got < len(tcpdump(BULK)), "export cut by SIGTERM (%d bytes)" % got)
    # and the log says so: the client did not go away, the daemon stopped
    with open(logpath, errors="replace") as f:
        f.seek(logpos)
        tail = f.read()
    check("cut by shutdown" in tail and "client went away" not in tail,
          "log of an export cut by SIGTERM:\n" + tail)


def test_import_pipe():
    """rewind import - hands a pipe to the daemon, which tells the interfaces
    of a pcapng stream apart as it does for a file given by path."""
    with open(os.path.join(PCAPS, "edge", "pcapng-multi-interface.pcapng"), "rb") as fh:
        data = fh.read()
    r = subprocess.run([REWIND, "import", "--quiet", "--dir", ARCH, "--point", "ngpipe", "-"],
                       input=data, capture_output=True)
    check(r.returncode == 0, "import of a pcapng pipe through the daemon: %r" % r.stderr)
    st, _, body = NsHttp.get("/api/v1/status")
    pts = {p["name"]: p["packets"] for p in json.loads(body).get("points", [])} if st == 200 else {}
    check(pts.get("ngpipe") == 2 and pts.get("ngpipe-if1") == 4,
          "pcapng pipe through the daemon: one point per interface: %r" % pts)


def wait_for(pred, secs):
    deadline = time.time() + secs
    while time.time() < deadline:
        if pred():
            return True
        time.sleep(0.05)
    return pred()


def file_has(path, needle):
    try:
        with open(path, errors="replace") as f:
            return needle in f.read()
    except OSError:
        return False


def test_second_daemon(tmp):
    """--log: an unopenable file, rotation with SIGHUP (the log stays line
    buffered), a failed reopen that keeps the old file; 503 with the same
    headers as every other answer."""
    arch = os.path.join(tmp, "arch2")
    logf = os.path.join(tmp, "second.log")
    r = sh(os.path.join(BIN, "rewindd"), "--dir", arch, "--listen", "none", "--log",
           os.path.join(tmp, "no", "such", "dir", "x.log"))
    check(r.returncode == 2 and b"cannot open log" in r.stderr,
          "rewindd --log in a missing directory: exit %d, stderr %r" % (r.returncode, r.stderr))
    r = sh(REWIND, "import", "--quiet", "--dir", arch, "--point", "bulk", BULK)
    check(r.returncode == 0, "import into the second archive: %r" % r.stderr)
    d = subprocess.Popen(["ip", "netns", "exec", NS, os.path.join(BIN, "rewindd"), "--dir", arch,
                          "--listen", "127.0.0.1:%d" % PORT2, "--max-queries", "1",
                          "--log", logf], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    holder = None
    try:
        check(wait_for(lambda: NsHttp.get("/healthz", port=PORT2)[0] == 200, 15),
              "second rewindd answers /healthz")
        # rotate: rename, SIGHUP, and a request's line lands in the new file
        # at once (line buffered), not when a buffer fills or the daemon exits
        os.rename(logf, logf + ".1")
        d.send_signal(signal.SIGHUP)
        check(wait_for(lambda: file_has(logf, "log reopened"), 3),
              "SIGHUP: 'log reopened' in the new log file")
        st, _, _ = NsHttp.get("/api/v1/packets?point=bulk&limit_packets=3&filter=tcp", port=PORT2)
        check(st == 200 and wait_for(lambda: file_has(logf, "filter 'tcp': 3 packets"), 3),
              "a request's log line appears promptly in the reopened log (%s)" % st)
        # a log that cannot be reopened: the daemon keeps running and says so
        # in the file it still has
        os.rename(logf, logf + ".2")
        os.mkdir(logf)
        d.send_signal(signal.SIGHUP)
        check(wait_for(lambda: file_has(logf + ".2", "cannot reopen log"), 3),
              "SIGHUP with an unopenable log: a line in the old file")
        check(d.poll() is None and NsHttp.get("/healthz", port=PORT2)[0] == 200,
              "rewindd keeps running when the log cannot be reopened")
        os.rmdir(logf)
        d.send_signal(signal.SIGHUP)
        check(wait_for(lambda: file_has(logf, "log reopened"), 3),
              "SIGHUP once the log can be opened again")
        # 503 while the only query slot is held by a client reading slowly but
        # steadily (one that does not read at all gives its slot back once it
        # stalls: tests/e2e/test_hostile.py)
        holder = subprocess.Popen(["ip", "netns", "exec", NS, "python3", "-c",
                                   raw_request("/api/v1/packets?point=bulk", PORT2), "steady"],
                                  stdout=subprocess.PIPE, stderr=subprocess.PIPE)

        def active():
            st, _, body = NsHttp.get("/metrics", port=PORT2)
            return st == 200 and parse_prometheus(body.decode()).get("rewind_queries_active") == 1
        check(wait_for(active, 10), "the holding client's query is active")
        st, hdr, body = NsHttp.get("/api/v1/packets?point=bulk", port=PORT2)
        code = json.loads(body or b"{}").get("error", {}).get("code") if st == 503 else None
        check(st == 503 and code == "busy" and hdr.get("Retry-After") == "2" and
              hdr.get("Cache-Control") == "no-store",
              "503 when --max-queries are busy: %s %r %r" % (st, hdr, body[:200]))
    finally:
        if holder:
            holder.kill()
            holder.wait()
        d.send_signal(signal.SIGTERM)
        try:
            rc = d.wait(timeout=30)
        except subprocess.TimeoutExpired:
            d.kill()
            rc = d.wait()
        err = d.stderr.read()
        check(rc == 0 and not err, "second rewindd: exit %s, stderr %r" % (rc, err))


ARCH = None


def main():
    global ARCH
    if os.geteuid() != 0:
        print("http: needs root for ip netns; 0 passed, 1 failed")
        return 1
    tmp = tempfile.mkdtemp(prefix="rewind-http-")
    ARCH = os.path.join(tmp, "arch")
    log = open(os.path.join(tmp, "rewindd.log"), "wb")
    daemon = None
    try:
        daemon = setup(ARCH, log)
        r = sh(REWIND, "import", "--quiet", "--dir", ARCH, "--point", "bulk", BULK)
        check(r.returncode == 0, "import into the serving daemon: %r" % r.stderr)
        test_errors()
        test_basic_routes()
        test_query_url_dash(tmp)
        test_keepalive()
        test_concurrent(daemon.pid)
        test_disconnect_and_slow(daemon.pid)
        test_metrics()
        test_import_pipe()
        test_second_daemon(tmp)
        test_sigterm(daemon, os.path.join(tmp, "rewindd.log"))
        daemon = None
    except RuntimeError as e:
        check(False, "setup: %s" % e)
    finally:
        if daemon:
            daemon.kill()
            daemon.wait()
        sh("ip", "netns", "del", NS)
        log.close()
        if harness.failed:
            print(open(os.path.join(tmp, "rewindd.log")).read()[-3000:])
        sh("rm", "-rf", tmp)
    print("http: %d passed, %d failed" % (harness.passed, len(harness.failed)))
    return 1 if harness.failed else 0


if __name__ == "__main__":
    sys.exit(main())
