#!/usr/bin/env python3
"""Differential test: every good and edge capture imported, then filters x
time windows queried with `rewind query` and compared byte for byte with
`tcpdump --time-stamp-precision=nano -r FILE -w - FILTER` cut to the window.

Usage: test_difftest.py [--http | --sock] [FILE...]   (default: all of good/ and edge/)
With --http every archive is served by a real rewindd on a loopback port and
every query goes through curl to /api/v1/packets instead of `rewind query`.
With --sock a real rewindd (no HTTP) owns every archive, so `rewind query
--dir` is answered by the daemon over DIR/rewindd.sock; its log must show
that it answered every query that succeeded.
Environment: REWIND_BIN (bin dir), REWIND_PCAPS (shared pcaps dir), REWIND_TMP.
Prints one line per failure and a closing 'N passed, N failed'."""
import collections
import concurrent.futures
import os
import re
import subprocess
import sys
import tempfile
import time
import urllib.parse

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "lib"))
import pcaputil  # noqa: E402

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
BIN = os.environ.get("REWIND_BIN", os.path.join(ROOT, "bin"))
PCAPS = os.environ.get("REWIND_PCAPS", os.path.join(ROOT, "..", "shared", "pcaps"))
REWIND = os.path.join(BIN, "rewind")


def tcpdump(path, flt):
    args = ["tcpdump", "--time-stamp-precision=nano", "-r", path, "-w", "-"]
    if flt:
        args.append(flt)
    p = subprocess.run(args, capture_output=True)
    return p.returncode, p.stdout, p.stderr.decode(errors="replace")


def common_terms(path):
    """Most frequent IPv4/IPv6 addresses and ports in the file, from tcpdump's text."""
    p = subprocess.run(["tcpdump", "-nn", "-r", path], capture_output=True)
    text = p.stdout.decode(errors="replace")
    v4 = collections.Counter()
    v6 = collections.Counter()
    ports = collections.Counter()
    for m in re.finditer(r"\b(\d+\.\d+\.\d+\.\d+)(?:\.(\d+))?\b", text):
        v4[m.group(1)] += 1
        if m.group(2):
            ports[int(m.group(2))] += 1
    for m in re.finditer(r"\b([0-9a-f]{1,4}(?::[0-9a-f]{0,4}){2,7})\.(\d+)\b", text):
        v6[m.group(1)] += 1
        ports[int(m.group(2))] += 1
    return [a for a, _ in v4.most_common(3)], [a for a, _ in v6.most_common(2)], [
        p for p, _ in ports.most_common(3)]


def filters_for(path):
    v4, v6, ports = common_terms(path)
    a = v4[0] if v4 else "192.0.2.1"
    b = v4[1] if len(v4) > 1 else "192.0.2.2"
    p = ports[0] if ports else 80
    q = ports[1] if len(ports) > 1 else 443
    o = a.split(".")
    fl = [
        "",
        "tcp",
        "udp",
        "ip",
        "ip6",
        "icmp or arp",
        "host %s" % a,
        "src host %s" % a,
        "dst %s" % b,
        "net %s.%s.0.0/16" % (o[0], o[1]),
        "net %s.%s.%s.0/24" % (o[0], o[1], o[2]),
        "net %s" % o[0],
        "port %d" % p,
        "portrange %d-%d" % (max(0, p - 5), p + 5),
        "not port %d" % p,
        "not host %s" % a,
        "host %s and port %d" % (a, p),
        "host %s or host %s and port %d" % (a, b, q),
        "(tcp or udp) and not (host %s or port %d)" % (a, q),
        "src port %d or dst port %d" % (q, p),
        "vlan and tcp",
        "vlan",
        "vlan and host %s" % a,
        "tcp[13] & 2 != 0",
        "host 203.0.113.254",
        "not (tcp or udp)",
        "udp port 53 or tcp port %d" % p,
        "greater 200",
        "ip proto 47 or proto 41",
        "not ip and not ip6",
        "port %d or %d" % (p, q),
    ]
    if v6:
        fl += ["ip6 and host %s" % v6[0], "net %s/64" % v6[0], "not host %s" % v6[0]]
    return fl


def windows(recs):
    ts = [t for t, _ in recs]
    if not ts:
        return [(None, None, [])]
    lo, hi = min(ts), max(ts) + 1
    mid = lo + (hi - lo) // 2 + 1
    q3 = lo + 3 * (hi - lo) // 4
    q1 = min(lo + (hi - lo) // 4 + 123, q3)
    return [
        (None, None, []),
        (lo, mid, ["--from", "%d.%09d" % divmod(lo, 10**9), "--to", "%d.%09d" % divmod(mid, 10**9)]),
        (q1, q3 + 1, ["--from", rfc3339(q1), "--to", rfc3339(q3 + 1)]),
        (mid, None, ["--from", "%d.%09d" % divmod(mid, 10**9)]),
    ]


def rfc3339(ns):
    import datetime
    s, f = divmod(ns, 10**9)
    d = datetime.datetime.fromtimestamp(s, datetime.timezone.utc)
    return d.strftime("%Y-%m-%dT%H:%M:%S") + ".%09dZ" % f


PORTS = iter(range(20000 + os.getpid() % 20000, 65000))


class Http:
    """A rewindd serving one archive, asked through curl."""

    def __init__(self, arch, tmp, sock=False):
        self.sock = sock
        if sock:  # no HTTP: `rewind query --dir` asks the daemon itself
            self.log = open(os.path.join(tmp, "rewindd-%s.log" % os.path.basename(arch)), "wb")
            self.proc = subprocess.Popen([os.path.join(BIN, "rewindd"), "--dir", arch,
                                          "--listen", "none"], stdout=self.log, stderr=self.log)
            deadline = time.time() + 20
            while time.time() < deadline and self.proc.poll() is None:
                if b"ready" in open(self.log.name, "rb").read():
                    return
                time.sleep(0.05)
            raise RuntimeError("rewindd on %s did not come up: %s" %
                               (arch, open(self.log.name, "rb").read()[-300:]))
        # A port another program (or another test run) holds makes rewindd
        # exit at once: then the next port is tried, a bounded number of times.
        for _ in range(8):
            self.port = next(PORTS)
            self.body = os.path.join(tmp, "body-%d" % self.port)
            self.log = open(os.path.join(tmp, "rewindd-%d.log" % self.port), "wb")
            self.proc = subprocess.Popen([os.path.join(BIN, "rewindd"), "--dir", arch, "--listen",
                                          "127.0.0.1:%d" % self.port], stdout=self.log,
                                         stderr=self.log)
            deadline = time.time() + 20
            while time.time() < deadline and self.proc.poll() is None:
                # our daemon says it serves (another one may hold the port)
                if b"serving" in open(self.log.name, "rb").read() and \
                        self.get("/healthz")[0] == 200:
                    return
                time.sleep(0.05)
            if self.proc.poll() is None:
                break
            self.log.close()
        raise RuntimeError("rewindd on port %d did not come up: %s" %
                           (self.port, open(self.log.name, "rb").read()[-300:]))

    def get(self, path):
        r = subprocess.run(["curl", "-s", "-o", self.body, "-w", "%{http_code}",
                            "http://127.0.0.1:%d%s" % (self.port, path)], capture_output=True)
        code = int(r.stdout or b"0")
        data = open(self.body, "rb").read() if os.path.exists(self.body) else b""
        return code, data, r.returncode

    def query(self, targs, flt):
        params = []
        for i in range(0, len(targs), 2):
            params.append((targs[i].lstrip("-"), targs[i + 1]))
        if flt:
            params.append(("filter", flt))
        code, data, crc = self.get("/api/v1/packets?" + urllib.parse.urlencode(params))
        # map to the CLI's contract: exit 0 with the file, or 2 with a message
        if code == 200 and crc == 0:
            return 0, data, b""
        return (2 if code == 400 else 1), b"", data

    def answered(self):
        """Queries the daemon answered over its socket, from its log."""
        return len(re.findall(rb" info rewind query filter '.*': \d+ packets, \d+ bytes in ",
                              open(self.log.name, "rb").read()))

    def close(self):
        self.proc.terminate()
        rc = self.proc.wait(timeout=20)
        self.log.close()
        return rc


def run_file(path, tmp, http=False, sock=False):
    fails = []
    passed = 0
    name = os.path.basename(path)
    arch = os.path.join(tmp, name + ".arch")
    r = subprocess.run([REWIND, "import", "--quiet", "--dir", arch, path], capture_output=True)
    if r.returncode != 0:
        return 0, ["%s: import failed (%d): %s" % (name, r.returncode, r.stderr.decode().strip())]
    server = Http(arch, tmp, sock) if http or sock else None
    try:
        passed, fails, ok_runs = run_queries(path, arch, name, server)
        if sock:
            # (the daemon logs its answer before it replies to the client)
            if server.answered() == ok_runs:
                passed += 1
            else:
                fails.append("%s: rewindd answered %d of the %d queries that succeeded; "
                             "the others were read locally" % (name, server.answered(), ok_runs))
    finally:
        if server and server.close() != 0:
            fails.append("%s: rewindd did not stop cleanly" % name)
    return passed, fails


def run_queries(path, arch, name, server):
    fails = []
    passed = ok_runs = 0
    rc, full, _ = tcpdump(path, "")
    _, recs_all, _ = pcaputil.read_pcap(full)
    wins = windows(recs_all)
    for flt in filters_for(path):
        trc, out, terr = tcpdump(path, flt)
        tcpdump_ok = trc == 0 and len(out) >= 24
        if tcpdump_ok:
            hdr, recs, _ = pcaputil.read_pcap(out)
        for lo, hi, targs in wins:
            if server and not server.sock:
                q = subprocess.CompletedProcess([], *server.query(targs, flt))
            else:
                cmd = [REWIND, "query", "--dir", arch] + targs + ([flt] if flt else [])
                q = subprocess.run(cmd, capture_output=True)
            ok_runs += q.returncode == 0
            what = "%s: filter %r window %s" % (name, flt, " ".join(targs) or "all")
            if not tcpdump_ok:
                if q.returncode == 2 and q.stderr:
                    passed += 1
                else:
                    fails.append("%s: tcpdump rejects it (%s) but rewind exited %d" %
                                 (what, terr.strip().splitlines()[-1], q.returncode))
                continue
            want = pcaputil.window(hdr, recs, lo, hi)
            if q.returncode != 0:
                fails.append("%s: rewind exited %d: %s" % (what, q.returncode,
                                                           q.stderr.decode().strip()))
            elif q.stdout != want:
                try:
                    _, got, _ = pcaputil.read_pcap(q.stdout)
                    detail = "%d packets, expected %d" % (len(got), len(want) and
                                                          len(pcaputil.read_pcap(want)[1]))
                except ValueError as e:
                    detail = str(e)
                fails.append("%s: output differs from tcpdump (%s)" % (what, detail))
            else:
                passed += 1
    return passed, fails, ok_runs


def main():
    args = sys.argv[1:]
    http = "--http" in args
    sock = "--sock" in args
    files = [a for a in args if a not in ("--http", "--sock")]
    if not files:
        for d in ("good", "edge"):
            dd = os.path.join(PCAPS, d)
            files += [os.path.join(dd, f) for f in sorted(os.listdir(dd))]
    tmp = tempfile.mkdtemp(prefix="rewind-difftest-", dir=os.environ.get("REWIND_TMP"))
    total_pass, total_fail = 0, []
    with concurrent.futures.ThreadPoolExecutor(max_workers=2) as ex:
        for passed, fails in ex.map(lambda f: run_file(f, tmp, http, sock), files):
            total_pass += passed
            total_fail += fails
    for f in total_fail:
        print("FAIL " + f)
    subprocess.run(["rm", "-rf", tmp])
    print("difftest%s: %d passed, %d failed" % (" (http)" if http else " (sock)" if sock else "",
                                                 total_pass, len(total_fail)))
    return 1 if total_fail else 0


if __name__ == "__main__":
    sys.exit(main())
