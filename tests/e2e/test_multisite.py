#!/usr/bin/env python3
"""Several sites: flows exported to a real ClickHouse, IPFIX to a real
nfcapd, and one query across three sensors, judged by tools no one here
wrote.

- clickhouse-server (Debian's, 18.16 here) is started once, on loopback
  ports, with a minimal config and a temporary data directory; the tables
  are those `rewind clickhouse-schema` prints.
- Three rewindd sensors serve different archives (real captures from
  ../shared/pcaps and trafficgen traffic) and export with --export-flows.
  They start while ClickHouse is down: the backlog waits (/metrics says
  so) and drains once it is up. ClickHouse's rows (FINAL), summed per flow
  key and per Community ID, equal each sensor's /flows. A sensor restarted
  without its export state sends everything again while ClickHouse is
  killed (SIGKILL) and restarted: nothing missing, nothing counted twice.
- IPFIX: nfcapd (nfdump) receives a sensor's --export-ipfix; per 5-tuple,
  the packets and bytes that `nfdump -o csv` prints equal rewind's flows.
- `rewind query --sensors FILE`: the answer equals mergecap of the three
  archives' packets in the window filtered by tcpdump, in packet data and
  timestamps; for a needle host only the sensors ClickHouse names are asked
  (the sensors' own query counters say which were); a stopped sensor makes
  the query fail naming it, and --partial answers without it with a
  comment saying so.
- Bad options and a bad sensors file: exit 2 with a clear message."""
import collections
import ipaddress
import json
import os
import shutil
import signal
import socket
import ssl
import struct
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.parse
import urllib.request

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "lib"))
import harness  # noqa: E402
import pcaputil  # noqa: E402
from harness import PCAPS, REWIND, REWINDD, TRAFFICGEN, check, rw, sh  # noqa: E402

T0 = 1700000000
WINDOW = (T0, T0 + 100)


def need(*tools):
    missing = [t for t in tools if not shutil.which(t)]
    if missing:
        print("test_multisite: missing %s (make deps installs them)" % " ".join(missing))
        sys.exit(1)


def udp_port():
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    s.bind(("127.0.0.1", 0))
    p = s.getsockname()[1]
    s.close()
    return p


def wait_until(pred, timeout=30, step=0.2):
    end = time.time() + timeout
    while time.time() < end:
        v = pred()
        if v:
            return v
        time.sleep(step)
    return pred()


# ---------------------------------------------------------------- ClickHouse

class ClickHouse:
    PASSWORD = "s3cret-%d" % os.getpid()

    def __init__(self, d):
        self.d = d
        self.http = harness.free_port()
        self.tcp = harness.free_port()
        os.makedirs(d, exist_ok=True)
        with open(os.path.join(d, "config.xml"), "w") as f:
            f.write("""<?xml version="1.0"?>
<yandex>
  <logger><level>warning</level><log>%(d)s/server.log</log>
    <errorlog>%(d)s/error.log</errorlog><console>0</console></logger>
  <http_port>%(http)d</http_port>
  <tcp_port>%(tcp)d</tcp_port>
  <listen_host>127.0.0.1</listen_host>
  <path>%(d)s/data/</path>
  <tmp_path>%(d)s/tmp/</tmp_path>
  <user_files_path>%(d)s/user_files/</user_files_path>
  <format_schema_path>%(d)s/format_schemas/</format_schema_path>
  <users_config>users.xml</users_config>
  <default_profile>default</default_profile>
  <default_database>default</default_database>
  <mark_cache_size>5368709</mark_cache_size>
</yandex>
""" % {"d": d, "http": self.http, "tcp": self.tcp})
        with open(os.path.join(d, "users.xml"), "w") as f:
            f.write("""<?xml version="1.0"?>
<yandex>
  <profiles><default></default></profiles>
  <users><default><password></password><networks><ip>127.0.0.1</ip></networks>
    <profile>default</profile><quota>default</quota></default>
    <exporter><password>%s</password><networks><ip>127.0.0.1</ip></networks>
    <profile>default</profile><quota>default</quota></exporter></users>
  <quotas><default></default></quotas>
</yandex>
""" % self.PASSWORD)
        self.auth = os.path.join(d, "exporter.auth")
        with open(self.auth, "w") as f:
            f.write("exporter:%s\n" % self.PASSWORD)
        self.p = None

    def url(self):
        return "http://127.0.0.1:%d/?database=rewind" % self.http

    def start(self):
        self.p = subprocess.Popen(["clickhouse-server", "--config-file=" +
                                   os.path.join(self.d, "config.xml")],
                                  stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                                  cwd=self.d)
        ok = wait_until(self.ping, 60)
        if not ok:
            print(open(os.path.join(self.d, "error.log")).read()[-2000:])
        return ok

    def ping(self):
        try:
            return urllib.request.urlopen("http://127.0.0.1:%d/ping" % self.http,
                                          timeout=2).read() == b"Ok.\n"
        except OSError:
            return False

    def kill(self):
        if self.p:
            self.p.send_signal(signal.SIGKILL)
            self.p.wait()
            self.p = None

    def stop(self):
        if self.p:
            self.p.terminate()
            try:
                self.p.wait(30)
            except subprocess.TimeoutExpired:
                self.kill()
            self.p = None

    def q(self, sql):
        r = urllib.request.urlopen("http://127.0.0.1:%d/" % self.http, data=sql.encode(),
                                   timeout=60)
        return r.read().decode()

    def rows(self, sql):
        return [ln.split("\t") for ln in self.q(sql + " FORMAT TabSeparated").splitlines()]


# ------------------------------------------------------------------- sensors

def make_tls(d):
    """A CA and a server certificate for 127.0.0.1 that it signed (openssl)."""
    os.makedirs(d)
    o = lambda *a: subprocess.run(["openssl"] + list(a), capture_output=True, check=True)
    key = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes"]
    o("req", "-x509", "-days", "2", *key, "-keyout", d + "/ca.key", "-out", d + "/ca.pem",
      "-subj", "/CN=rewind multisite test CA")
    o("req", *key, "-keyout", d + "/server.key", "-out", d + "/server.csr", "-subj", "/CN=127.0.0.1")
    with open(d + "/ext", "w") as f:
        f.write("subjectAltName=IP:127.0.0.1\nextendedKeyUsage=serverAuth\n")
    o("x509", "-req", "-in", d + "/server.csr", "-CA", d + "/ca.pem", "-CAkey", d + "/ca.key",
      "-set_serial", "7", "-days", "2", "-extfile", d + "/ext", "-out", d + "/server.pem")
    return d + "/ca.pem", d + "/server.pem", d + "/server.key"


class Sensor:
    def __init__(self, tmp, name, files, tls=None):
        self.name = name
        self.tls = tls  # (ca, cert, key): HTTPS, and a token
        self.dir = os.path.join(tmp, name)
        self.files = files  # (path, point) imported, in order
        self.port = harness.free_port()
        self.log = os.path.join(tmp, name + ".log")
        self.p = None
        for path, point in files:
            r = rw("import", "--dir", self.dir, "--point", point, "--quiet",
                   "--segment-seconds", "2", path)
            check(r.returncode == 0, "%s: import %s: %s" % (name, path, r.stderr.decode()))
        self.token = None
        if tls:
            r = rw("token", "add", "--dir", self.dir, "--name", "federation", "--role", "analyst")
            self.token = r.stdout.decode().split()[-1] if r.returncode == 0 else None
            check(self.token, "%s: token add: %s" % (name, r.stderr.decode()))
            self.token_file = os.path.join(tmp, name + ".token")
            with open(self.token_file, "w") as f:
                f.write(self.token + "\n")

    def base(self):
        return "%s://127.0.0.1:%d" % ("https" if self.tls else "http", self.port)

    def start(self, *extra):
        tls = ["--tls-cert", self.tls[1], "--tls-key", self.tls[2]] if self.tls else []
        self.p = subprocess.Popen([REWINDD, "--dir", self.dir, "--listen",
                                   "127.0.0.1:%d" % self.port, "--sensor", self.name,
                                   "--log", self.log] + tls + list(extra))
        return wait_until(lambda: self.get("/healthz") is not None, 20)

    def stop(self):
        if self.p:
            self.p.terminate()
            self.p.wait(30)
            self.p = None

    def get(self, path):
        req = urllib.request.Request(self.base() + path)
        if self.token:
            req.add_header("Authorization", "Bearer " + self.token)
        ctx = ssl.create_default_context(cafile=self.tls[0]) if self.tls else None
        try:
            return urllib.request.urlopen(req, timeout=60, context=ctx).read()
        except OSError:
            return None

    def line(self):
        """Its line in a sensors file."""
        extra = " token=@%s ca=%s" % (self.token_file, self.tls[0]) if self.tls else ""
        return "sensor %s %s%s\n" % (self.name, self.base(), extra)

    def metric(self, name, sink="clickhouse"):
        body = self.get("/metrics")
        if body is None:
            return None
        for ln in body.decode().splitlines():
            if ln.startswith(name + "{sink=\"%s\"}" % sink) or ln.startswith(name + " "):
                return float(ln.split()[-1])
        return None

    def flows(self, flt=None, window=None):
        q = {"limit": "1000000", "format": "json"}
        if flt:
            q["filter"] = flt
        if window:
            q["from"], q["to"] = str(window[0]), str(window[1])
        return json.loads(self.get("/api/v1/flows?" + urllib.parse.urlencode(q)))["flows"]


def addr(s):
    a = ipaddress.ip_address(s)
    if a.version == 6 and a.ipv4_mapped:
        return str(a.ipv4_mapped)
    return str(a)


def ports(f):
    """A flow's ports as the index keys them: ICMP type and code for ICMP."""
    return f.get("sport", f.get("icmp_type", 0)), f.get("dport", f.get("icmp_code", 0))


def canon(point, proto, src, sp, dst, dp, vlan, counts):
    """A flow key and its counts with the lower address:port first: a row's
    src is the side that sent its first packet in its segment, which need
    not be the flow's."""
    a, b = (ipaddress.ip_address(src), sp), (ipaddress.ip_address(dst), dp)
    pf, bf, pr, br = counts
    if proto in (1, 58):  # a segment may begin with the reply: by address pair
        a, b = (a[0], 0), (b[0], 0)
    if b < a:
        a, b, pf, bf, pr, br = b, a, pr, br, pf, bf
    if proto in (1, 58):
        pf, bf, pr, br = pf + pr, bf + br, 0, 0
    return (point, proto, str(a[0]), a[1], str(b[0]), b[1], vlan), (pf, bf, pr, br)


def flow_sums(flows):
    by_key, by_cid = collections.Counter(), collections.Counter()
    for f in flows:
        sp, dp = ports(f)
        k, v = canon(f["point"], f["proto"], f["src"], sp, f["dst"], dp, f["vlan"],
                     (f["packets_fwd"], f["bytes_fwd"], f["packets_rev"], f["bytes_rev"]))
        for i, x in enumerate(v):
            by_key[k + (i,)] += x
        by_cid[(f["community_id"], "packets")] += v[0] + v[2]
        by_cid[(f["community_id"], "bytes")] += v[1] + v[3]
    return +by_key, +by_cid


def ch_sums(ch, sensor):
    by_key, by_cid = collections.Counter(), collections.Counter()
    for r in ch.rows("SELECT point, proto, IPv6NumToString(src), sport, IPv6NumToString(dst), "
                     "dport, vlan, community_id, packets_fwd, bytes_fwd, packets_rev, bytes_rev "
                     "FROM rewind.flows FINAL WHERE sensor = '%s'" % sensor):
        k, v = canon(r[0], int(r[1]), addr(r[2]), int(r[3]), addr(r[4]), int(r[5]), int(r[6]),
                     [int(x) for x in r[8:12]])
        for i in range(4):
            by_key[k + (i,)] += v[i]
        by_cid[(r[7], "packets")] += v[0] + v[2]
        by_cid[(r[7], "bytes")] += v[1] + v[3]
    return +by_key, +by_cid


# ------------------------------------------------------------------- pcapng

def read_pcapng(data):
    """(interface names, [(ts_ns, ifid, frame)], [comments])"""
    off, ifs, res, pkts, comments = 0, [], [], [], []
    while off + 12 <= len(data):
        btype, blen = struct.unpack_from("<II", data, off)
        body = data[off + 8:off + blen - 4]
        if btype == 1:
            name, r, o = "", 6, 8
            while o + 4 <= len(body):
                code, ln = struct.unpack_from("<HH", body, o)
                if code == 0:
                    break
                v = body[o + 4:o + 4 + ln]
                if code == 2:
                    name = v.decode()
                if code == 9:
                    r = v[0]
                o += 4 + (ln + 3) // 4 * 4
            ifs.append(name)
            res.append(10 ** (9 - r))
        elif btype == 6:
            ifid, hi, lo, cap = struct.unpack_from("<IIII", body, 0)
            pkts.append((((hi << 32) | lo) * res[ifid], ifid, body[20:20 + cap]))
        elif btype == 5:
            o = 12
            while o + 4 <= len(body):
                code, ln = struct.unpack_from("<HH", body, o)
                if code == 0:
                    break
                if code == 1:
                    comments.append(body[o + 4:o + 4 + ln].decode())
                o += 4 + (ln + 3) // 4 * 4
        off += blen
    return ifs, pkts, comments


def expected(tmp, sensors, flt, window):
    """mergecap of each sensor's input files filtered by tcpdump and cut to
    the window, sensors in file order: [(ts_ns, frame)]."""
    parts = []
    for s in sensors:
        # One sensor's answer: tcpdump's per point, cut to the window and
        # merged by time as a sensor merges its points (ties to the first).
        streams, hdr = [], None
        for path, _ in s.files:
            hdr, recs, _ = pcaputil.read_pcap(harness.tcpdump(path, flt))
            streams.append([(ts, rec) for ts, rec in recs
                            if window[0] * 10 ** 9 <= ts < window[1] * 10 ** 9])
        one = os.path.join(tmp, "exp-%s.pcap" % s.name)
        with open(one, "wb") as f:
            f.write(hdr[:20] + struct.pack("<I", 1) + b"".join(
                rec for _, rec in pcaputil.merge_by_time(streams)))
        parts.append(one)
    allf = os.path.join(tmp, "exp-all.pcap")
    r = sh("mergecap", "-F", "nsecpcap", "-w", allf, *parts)
    check(r.returncode == 0, "mergecap: %s" % r.stderr.decode())
    _, recs, _ = pcaputil.read_pcap(open(allf, "rb").read())
    return [(ts, pcaputil.packet_data(rec)) for ts, rec in recs]


def fed(sensfile, flt, window, *extra):
    args = ["query", "--sensors", sensfile, "--from", str(window[0]), "--to", str(window[1])]
    args += list(extra) + ([flt] if flt else [])
    return rw(*args, timeout=120)


# --------------------------------------------------------------------- tests

def test_export(tmp, ch, sensors):
    # ClickHouse is down: the sensors start anyway and the backlog waits.
    # north logs in as a user with a password (--export-auth).
    for s in sensors:
        login = ["--export-auth", ch.auth] if s.name == "north" else []
        check(s.start("--export-flows", "clickhouse=" + ch.url(), *login), "%s starts" % s.name)
    check(wait_until(lambda: all(s.metric("rewind_export_up") == 0 for s in sensors), 20),
          "export_up is 0 while ClickHouse is down")
    check(all((s.metric("rewind_export_pending_segments") or 0) > 0 for s in sensors),
          "segments pending while ClickHouse is down")
    check(any("export to clickhouse" in open(s.log).read() for s in sensors),
          "the log says the export waits")
    check(ch.start(), "clickhouse-server starts")
    ddl = rw("clickhouse-schema").stdout.decode()
    for st in ddl.split(";\n\n"):
        st = st.strip().rstrip(";")
        if st:
            ch.q(st)
    check(wait_until(lambda: all(s.metric("rewind_export_pending_segments") == 0 and
                                 s.metric("rewind_export_up") == 1 for s in sensors), 90),
          "the backlog drains once ClickHouse is up")
    for s in sensors:
        fk, fc = flow_sums(s.flows())
        ck, cc = ch_sums(ch, s.name)
        check(fk and fk == ck, "%s: ClickHouse rows summed per flow equal /flows (%d vs %d keys;"
              " differing: %s)" % (s.name, len(fk), len(ck), list((fk - ck) + (ck - fk))[:3]))
        check(fc == cc, "%s: per Community ID, ClickHouse equals /flows" % s.name)
        segs = int(ch.rows("SELECT count() FROM rewind.segments FINAL WHERE sensor = '%s'"
                           % s.name)[0][0])
        st = json.loads(s.get("/api/v1/segments"))
        nseg = len(st["segments"]) if isinstance(st, dict) else len(st)
        check(segs == nseg, "%s: one segments row per segment (%d vs %d)" % (s.name, segs, nseg))
    # The login is sent: a wrong password is refused by ClickHouse, and said so.
    n = sensors[2]
    n.stop()
    bad = ch.auth + ".bad"
    with open(bad, "w") as f:
        f.write("exporter:wrong\n")
    os.unlink(os.path.join(n.dir, "export-clickhouse.state"))
    check(n.start("--export-flows", "clickhouse=" + ch.url(), "--export-auth", bad),
          "north restarts with a wrong password")
    check(wait_until(lambda: (n.metric("rewind_export_failures_total") or 0) > 0, 30) and
          n.metric("rewind_export_up") == 0, "a wrong password: the export fails")
    log = open(n.log).read()
    check("wrong" not in log and ("password" in log.lower() or "authentic" in log.lower()),
          "the log says why, without the password: %s" % log.splitlines()[-1][:300])
    n.stop()
    check(n.start("--export-flows", "clickhouse=" + ch.url(), "--export-auth", ch.auth),
          "north restarts with its password")
    check(wait_until(lambda: n.metric("rewind_export_pending_segments") == 0 and
                     n.metric("rewind_export_up") == 1, 60), "north's resend completes")
    # A segment sealed while the daemon runs (an import handed to it) is sent too.
    s = sensors[0]
    extra = os.path.join(PCAPS, "good", "sip-tcp.pcap")
    r = rw("import", "--dir", s.dir, "--point", "late", "--quiet", extra)
    check(r.returncode == 0, "import into the running east: %s" % r.stderr.decode())
    s.files.append((extra, "late"))
    check(wait_until(lambda: "late" in [r[0] for r in ch.rows(
        "SELECT DISTINCT point FROM rewind.flows WHERE sensor = 'east'")], 30),
          "a segment sealed while the daemon runs is exported")
    check(wait_until(lambda: s.metric("rewind_export_pending_segments") == 0, 30), "none waits")
    fk, fc = flow_sums(s.flows())
    ck, cc = ch_sums(ch, s.name)
    check(fk == ck and fc == cc, "east after the late import: ClickHouse equals /flows")
    # A resend of everything, with ClickHouse killed midway and restarted.
    s = sensors[0]
    s.stop()
    os.unlink(os.path.join(s.dir, "export-clickhouse.state"))
    ch.kill()
    check(s.start("--export-flows", "clickhouse=" + ch.url()), "%s restarts" % s.name)
    check(wait_until(lambda: (s.metric("rewind_export_failures_total") or 0) > 0, 20),
          "a failed send while ClickHouse is killed")
    check(ch.start(), "clickhouse-server restarts")
    check(wait_until(lambda: s.metric("rewind_export_pending_segments") == 0 and
                     s.metric("rewind_export_up") == 1, 90), "the resend completes")
    fk, fc = flow_sums(s.flows())
    ck, cc = ch_sums(ch, s.name)
    check(fk == ck, "after the resend: nothing missing, nothing counted twice (per flow)")
    check(fc == cc, "after the resend: per Community ID, FINAL sums equal /flows")
    # A resend while ClickHouse is up, cut by a kill of ClickHouse.
    s.stop()
    os.unlink(os.path.join(s.dir, "export-clickhouse.state"))
    check(s.start("--export-flows", "clickhouse=" + ch.url()), "%s restarts again" % s.name)
    time.sleep(0.3)
    ch.kill()
    check(ch.start(), "clickhouse-server restarts again")
    check(wait_until(lambda: s.metric("rewind_export_pending_segments") == 0 and
                     s.metric("rewind_export_up") == 1, 90), "the second resend completes")
    fk, fc = flow_sums(s.flows())
    ck, cc = ch_sums(ch, s.name)
    check(fk == ck and fc == cc, "after a kill mid-export: FINAL sums equal /flows")


def days(ch, sensor, table="flows"):
    return sorted(r[0] for r in ch.rows("SELECT DISTINCT toString(day) FROM rewind.%s WHERE "
                                        "sensor = '%s'" % (table, sensor)))


def test_retention(ch, s, other):
    """Retention moves a sensor's first day: its older days leave ClickHouse
    by partition, another sensor's rows of the same days stay."""
    old = days(ch, s.name)
    shared = set(old) & set(days(ch, other.name))
    theirs = ch.rows("SELECT count() FROM rewind.flows FINAL WHERE sensor = '%s'" % other.name)
    s.stop()
    check(s.start("--export-flows", "clickhouse=" + ch.url(), "--max-age", "1d"),
          "%s restarts with --max-age 1d" % s.name)
    segs = json.loads(s.get("/api/v1/segments") or b'{"segments":[]}')["segments"]
    first = min(x["first"] for x in segs)[:10]
    check(wait_until(lambda: days(ch, s.name) and days(ch, s.name)[0] >= first, 30),
          "%s: days before its first packet (%s) dropped: %s -> %s"
          % (s.name, first, old, days(ch, s.name)))
    check(days(ch, s.name, "segments")[0] >= first, "and its segments rows of those days")
    check(shared and shared <= set(days(ch, other.name)) and theirs == ch.rows(
        "SELECT count() FROM rewind.flows FINAL WHERE sensor = '%s'" % other.name),
          "%s keeps its rows of the same days (%s)" % (other.name, sorted(shared)))
    fk, fc = flow_sums(s.flows())
    ck, cc = ch_sums(ch, s.name)
    check(fk == ck and fc == cc, "%s: after retention, ClickHouse still equals /flows" % s.name)


def test_ipfix(tmp, s):
    nfdir = os.path.join(tmp, "nfcapd")
    os.makedirs(nfdir)
    port = udp_port()
    nf = subprocess.Popen(["nfcapd", "-b", "127.0.0.1", "-p", str(port), "-l", nfdir,
                           "-t", "3600"], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    time.sleep(1)
    s.stop()
    check(s.start("--export-ipfix", "127.0.0.1:%d" % port), "%s starts with IPFIX" % s.name)
    check(wait_until(lambda: s.metric("rewind_export_pending_segments", "ipfix") == 0, 60),
          "IPFIX export done")
    want = s.flows()
    s.stop()
    nf.terminate()
    nf.wait(30)
    files = [os.path.join(nfdir, f) for f in os.listdir(nfdir) if f.startswith("nfcapd.")]
    got = collections.Counter()
    for path in files:
        r = sh("nfdump", "-r", path, "-o", "csv", "-q")
        for ln in r.stdout.decode().splitlines():
            c = ln.split(",")
            if len(c) < 13 or c[0] == "ts":
                continue
            pr = {"TCP": 6, "UDP": 17, "ICMP": 1, "ICMP6": 58}.get(c[7].strip(), c[7].strip())
            if pr in (1, 58):
                k = tuple(sorted((addr(c[3]), addr(c[4])))) + (0, 0, pr)
            else:
                k = (addr(c[3]), int(c[5]), addr(c[4]), int(c[6]), pr)
            got[k + ("p",)] += int(c[11])
            got[k + ("b",)] += int(c[12])
    flows = want
    want = ipfix_want(flows)
    want, got = +want, +got
    check(files and want == got, "nfdump's per-5-tuple packets and bytes equal rewind's flows "
          "(%d vs %d keys; differing: %s)" % (len(want), len(got),
                                              list((want - got) + (got - want))[:4]))
    # Over TCP, read by a decoder of RFC 7011 written here (nfcapd takes UDP only).
    srv = socket.socket()
    srv.bind(("127.0.0.1", 0))
    srv.listen(1)
    srv.settimeout(30)
    chunks = []

    def collect():
        try:
            conn, _ = srv.accept()
            conn.settimeout(5)
            while True:
                b = conn.recv(65536)
                if not b:
                    break
                chunks.append(b)
        except OSError:
            pass
    import threading
    th = threading.Thread(target=collect)
    th.start()
    os.unlink(os.path.join(s.dir, "export-ipfix.state"))
    check(s.start("--export-ipfix", "tcp://127.0.0.1:%d" % srv.getsockname()[1]),
          "%s starts with IPFIX over TCP" % s.name)
    check(wait_until(lambda: s.metric("rewind_export_pending_segments", "ipfix") == 0 and
                     (s.metric("rewind_export_segments_total", "ipfix") or 0) > 0, 60),
          "IPFIX over TCP done")
    s.stop()
    th.join(30)
    srv.close()
    got = ipfix_decode(b"".join(chunks))
    check(+got == want, "IPFIX over TCP, decoded per RFC 7011: per 5-tuple equal rewind's flows "
          "(%d vs %d keys)" % (len(+got), len(want)))


# IANA IPFIX information elements the decoder reads.
IE = {1: "octets", 2: "packets", 4: "proto", 7: "sport", 8: "src4", 11: "dport", 12: "dst4",
      27: "src6", 28: "dst6"}


def ipfix_decode(data):
    """Per 5-tuple packets and bytes of an IPFIX message stream (RFC 7011:
    16-byte message headers, sets of templates (id 2) and data (id >= 256))."""
    templates, got, off = {}, collections.Counter(), 0
    while off + 16 <= len(data):
        ver, mlen = struct.unpack_from(">HH", data, off)
        if ver != 10 or mlen < 16:
            break
        so, end = off + 16, off + mlen
        while so + 4 <= end:
            sid, slen = struct.unpack_from(">HH", data, so)
            body, so = data[so + 4:so + slen], so + slen
            if sid == 2:
                o = 0
                while o + 4 <= len(body):
                    tid, cnt = struct.unpack_from(">HH", body, o)
                    o += 4
                    fields = []
                    for _ in range(cnt):
                        fid, flen = struct.unpack_from(">HH", body, o)
                        o += 4
                        if fid & 0x8000:
                            o += 4
                        fields.append((fid & 0x7fff, flen))
                    templates[tid] = fields
            elif sid >= 256 and sid in templates:
                rl = sum(ln for _, ln in templates[sid])
                o = 0
                while o + rl <= len(body):
                    rec = {}
                    for fid, ln in templates[sid]:
                        v = body[o:o + ln]
                        o += ln
                        if fid in (8, 12, 27, 28):
                            rec[IE[fid][:3]] = str(ipaddress.ip_address(v))
                        elif fid in IE:
                            rec[IE[fid]] = int.from_bytes(v, "big")
                    pr = rec["proto"]
                    if pr in (1, 58):
                        k = tuple(sorted((rec["src"], rec["dst"]))) + (0, 0, pr)
                    else:
                        k = (rec["src"], rec["sport"], rec["dst"], rec["dport"], pr)
                    got[k + ("p",)] += rec["packets"]
                    got[k + ("b",)] += rec["octets"]
        off += mlen
    return got


def ipfix_want(flows):
    """Per directed 5-tuple, the packets and bytes of rewind's flows."""
    want = collections.Counter()
    for f in flows:
        sp, dp = ports(f)
        if f["proto"] in (1, 58):  # a segment may begin with the reply: by address pair
            fw = rv = tuple(sorted((f["src"], f["dst"]))) + (0, 0, f["proto"])
        else:
            fw = (f["src"], sp, f["dst"], dp, f["proto"])
            rv = (f["dst"], dp, f["src"], sp, f["proto"])
        want[fw + ("p",)] += f["packets_fwd"]
        want[fw + ("b",)] += f["bytes_fwd"]
        want[rv + ("p",)] += f["packets_rev"]
        want[rv + ("b",)] += f["bytes_rev"]
    return want


def queries(s):
    return s.get("/metrics") and [float(ln.split()[-1]) for ln in s.get("/metrics").decode()
                                  .splitlines() if ln.startswith("rewind_queries_total ")][0]


def test_federate(tmp, ch, sensors, needle):
    tok_dir = os.path.join(tmp, "tokens")
    os.makedirs(tok_dir)
    sensfile = os.path.join(tmp, "sensors")
    with open(sensfile, "w") as f:
        f.write("# three sensors and their flows\nclickhouse %s auth=%s\n" % (ch.url(), ch.auth))
        for s in sensors:
            f.write(s.line())
    # A wide filter: every sensor answers; the merge equals mergecap.
    for flt in ("tcp port 25 or udp port 53", ""):
        r = fed(sensfile, flt, WINDOW, "-w", os.path.join(tmp, "fed.pcapng"))
        check(r.returncode == 0, "federated query '%s': %s" % (flt, r.stderr.decode()))
        ifs, pkts, _ = read_pcapng(open(os.path.join(tmp, "fed.pcapng"), "rb").read())
        exp = expected(tmp, sensors, flt, WINDOW)
        got = [(ts, d) for ts, _, d in pkts]
        diff = [i for i in range(min(len(got), len(exp))) if got[i] != exp[i]]
        check(len(exp) > 0 and got == exp, "federated '%s' equals mergecap of tcpdump's "
              "answers (%d vs %d packets; first difference at %s: %s vs %s)"
              % (flt, len(got), len(exp), diff[:1], diff and (got[diff[0]][0], got[diff[0]][1][:20].hex()),
                 diff and (exp[diff[0]][0], exp[diff[0]][1][:20].hex())))
        check(all(":" in n for n in ifs) and
              {n.split(":")[0] for n in ifs} == {s.name for s in sensors},
              "one interface per sensor:point (%s)" % ifs)
        # Each packet sits on its own sensor's interface.
        if flt:
            own = {}
            for s in sensors:
                for ts, d in expected(tmp, [s], flt, WINDOW):
                    own.setdefault((ts, d), set()).add(s.name)
            check(all(ifs[i].split(":")[0] in own.get((ts, d), ()) for ts, i, d in pkts),
                  "every packet on the interface of a sensor that holds it")
    # The needle: only the sensors ClickHouse names are asked.
    holders = {s.name for s in sensors if s.flows("host " + needle, WINDOW)}
    before = {s.name: queries(s) for s in sensors}
    r = fed(sensfile, "host " + needle, WINDOW, "-w", os.path.join(tmp, "needle.pcapng"))
    check(r.returncode == 0, "needle query: %s" % r.stderr.decode())
    after = {s.name: queries(s) for s in sensors}
    asked = {n for n in before if after[n] > before[n]}
    check(holders and asked == holders, "only the sensors holding the needle were asked "
          "(asked %s, hold it %s)" % (sorted(asked), sorted(holders)))
    _, pkts, _ = read_pcapng(open(os.path.join(tmp, "needle.pcapng"), "rb").read())
    exp = expected(tmp, sensors, "host " + needle, WINDOW)
    check(len(exp) > 0 and [(t, d) for t, _, d in pkts] == exp, "the needle's packets equal "
          "mergecap of tcpdump's (%d vs %d)" % (len(pkts), len(exp)))
    # ClickHouse refusing the login: every sensor is asked, said without the password.
    badsens = os.path.join(tmp, "sensors-badauth")
    with open(ch.auth + ".bad2", "w") as f:
        f.write("exporter:not-the-password\n")
    with open(sensfile) as f, open(badsens, "w") as g:
        g.write(f.read().replace("auth=" + ch.auth, "auth=" + ch.auth + ".bad2"))
    r = fed(badsens, "host " + needle, WINDOW, "-w", os.path.join(tmp, "badauth.pcapng"))
    err = r.stderr.decode()
    check(r.returncode == 0 and "asking every sensor" in err and "not-the-password" not in err
          and "Wrong password" in err, "a refused ClickHouse login: every sensor asked, the "
          "reason given, the password never: %s" % err[:400])
    # The same served by a rewindd --federate at /api/v1/packets.
    fd = Sensor(tmp, "front", [])
    check(fd.start("--federate", sensfile), "rewindd --federate starts")
    q = urllib.parse.urlencode({"from": WINDOW[0], "to": WINDOW[1], "filter": "host " + needle})
    body = fd.get("/api/v1/packets?" + q)
    _, fpk, _ = read_pcapng(body or b"")
    check(body and [(t, d) for t, _, d in fpk] == exp, "rewindd --federate: the needle's packets "
          "equal mergecap of tcpdump's (%d vs %d)" % (len(fpk), len(exp)))
    q = urllib.parse.urlencode({"from": WINDOW[0], "to": WINDOW[1], "filter": "tcp port 25"})
    body = fd.get("/api/v1/packets?" + q)
    _, fpk, _ = read_pcapng(body or b"")
    exp25 = expected(tmp, sensors, "tcp port 25", WINDOW)
    check(body and [(t, d) for t, _, d in fpk] == exp25, "rewindd --federate: port 25 of all "
          "sensors equals mergecap (%d vs %d)" % (len(fpk), len(exp25)))
    # /flows and /top across sensors, from ClickHouse alone: per sensor:point
    # and Community ID, the packets and bytes of each sensor's own /flows.
    want = collections.Counter()
    talkers = collections.Counter()
    for s in sensors:
        for f in s.flows():
            want[(s.name + ":" + f["point"], f["community_id"], "p")] += f["packets"]
            want[(s.name + ":" + f["point"], f["community_id"], "b")] += f["bytes"]
            talkers[f["src"]] += f["bytes_fwd"]
            talkers[f["dst"]] += f["bytes_rev"]
    body = fd.get("/api/v1/flows?limit=1000000")
    got = collections.Counter()
    for f in json.loads(body or b'{"flows":[]}')["flows"]:
        got[(f["point"], f["community_id"], "p")] += f["packets"]
        got[(f["point"], f["community_id"], "b")] += f["bytes"]
    check(want and +want == +got, "--federate /flows: per sensor:point and Community ID, the "
          "sensors' own /flows (%d vs %d keys)" % (len(+want), len(+got)))
    body = fd.get("/api/v1/flows?" + urllib.parse.urlencode({"filter": "host " + needle,
                                                                "limit": 1000}))
    pts = {f["point"].split(":")[0] for f in json.loads(body or b'{"flows":[]}')["flows"]}
    check(pts == holders, "--federate /flows of the needle: only its sensors (%s)" % pts)
    body = fd.get("/api/v1/top?by=src&limit=5")
    top = json.loads(body or b'{"top":[]}')["top"]
    best = sorted(+talkers, key=lambda a: -talkers[a])[:5]
    check(len(top) == 5 and [t["bytes"] for t in top] == [talkers[a] for a in best] and
          all(talkers[t["address"]] == t["bytes"] for t in top),
          "--federate /top by=src: the sensors' flows summed (%s vs %s)"
          % ([(t["address"], t["bytes"]) for t in top], [(a, talkers[a]) for a in best]))
    try:
        urllib.request.urlopen(fd.base() + "/api/v1/flows?filter=len%3E5", timeout=30)
        check(False, "--federate /flows: a filter that is not a flow filter is refused")
    except urllib.error.HTTPError as e:
        check(e.code == 400 and b"filter" in e.read(), "--federate /flows: a packet filter is a "
              "400 naming the parameter")
    try:
        urllib.request.urlopen(fd.base() + "/api/v1/packets?point=x", timeout=30)
        check(False, "--federate: point= is refused")
    except urllib.error.HTTPError as e:
        check(e.code == 400 and b"point" in e.read(), "--federate: point= is a 400 naming it")
    # A sensor stopped: the query fails naming it; --partial goes on.
    victim = sensors[1]
    victim.stop()
    try:
        urllib.request.urlopen(fd.base() + "/api/v1/packets?" + urllib.parse.urlencode(
            {"from": WINDOW[0], "to": WINDOW[1]}), timeout=60)
        check(False, "--federate: a stopped sensor fails the answer")
    except urllib.error.HTTPError as e:
        msg = e.read()
        check(e.code == 502 and ("sensor %s" % victim.name).encode() in msg,
              "--federate: a stopped sensor is a 502 naming it (%d %s)" % (e.code, msg[:200]))
    body = fd.get("/api/v1/packets?" + urllib.parse.urlencode(
        {"from": WINDOW[0], "to": WINDOW[1], "partial": "1"}))
    _, _, comments = read_pcapng(body or b"")
    check(comments and victim.name in comments[-1], "--federate partial=1: a closing comment "
          "names the missing sensor")
    fd.stop()
    r = fed(sensfile, "", WINDOW, "-w", os.path.join(tmp, "fail.pcapng"))
    check(r.returncode == 1 and ("sensor %s" % victim.name).encode() in r.stderr,
          "a stopped sensor fails the query, named: %s" % r.stderr.decode()[-300:])
    check(not os.path.exists(os.path.join(tmp, "fail.pcapng")), "no answer file when one fails")
    r = fed(sensfile, "", WINDOW, "--partial", "-w", os.path.join(tmp, "part.pcapng"))
    check(r.returncode == 0, "--partial answers: %s" % r.stderr.decode()[-300:])
    ifs, pkts, comments = read_pcapng(open(os.path.join(tmp, "part.pcapng"), "rb").read())
    check(comments and victim.name in comments[-1], "--partial ends with a comment naming the "
          "missing sensor (%s)" % comments)
    exp = expected(tmp, [s for s in sensors if s is not victim], "", WINDOW)
    check([(t, d) for t, _, d in pkts] == exp, "--partial: the others' packets, merged")
    check(victim.start("--export-flows", "clickhouse=" + ch.url()), "%s back" % victim.name)


def test_bad_input(tmp):
    d = os.path.join(tmp, "bad")
    cases = [
        (["--export-flows", "mysql=http://x"], b"clickhouse=URL"),
        (["--export-flows", "clickhouse=ftp://x"], b"http://"),
        (["--export-flows", "clickhouse=http://"], b"no host"),
        (["--export-flows", "clickhouse=http://127.0.0.1:8123/?query=x"], b"query="),
        (["--export-flows", "clickhouse=http://127.0.0.1:8123/", "--export-auth",
          os.path.join(tmp, "nonexistent")], b"--export-auth"),
        (["--export-auth", "/etc/hostname"], b"without --export-flows"),
        (["--export-ipfix", "127.0.0.1"], b"HOST:PORT"),
        (["--export-ipfix", "127.0.0.1:0"], b"1..65535"),
        (["--export-ipfix", "sctp://127.0.0.1:4739"], b"udp:// or tcp://"),
    ]
    for args, msg in cases:
        r = sh(REWINDD, "--dir", d, "--listen", "none", *args)
        check(r.returncode == 2 and msg in r.stderr, "rewindd %s: exit 2 saying %s (%d, %s)"
              % (args, msg, r.returncode, r.stderr.decode().strip()))
    check(not os.path.exists(d), "a refused option leaves no archive behind")
    bad = os.path.join(tmp, "bad-sensors")
    for text, msg in [("", b"names no sensor"),
                      ("sensor a\n", b"line 1"),
                      ("sensor a ftp://x\n", b"not an http"),
                      ("sensor a http://h:1\nsensor a http://h:2\n", b"named twice"),
                      ("sensor a/b http://h:1\n", b"sensor name"),
                      ("clickhouse nope\nsensor a http://h:1\n", b"clickhouse URL"),
                      ("sensor a http://h:1 colour=red\n", b"unknown word"),
                      ("sensor a http://h:1 token=@/nonexistent\n", b"/nonexistent"),
                      ("frobnicate\n", b"neither")]:
        with open(bad, "w") as f:
            f.write(text)
        r = rw("query", "--sensors", bad, "--from", "0")
        check(r.returncode == 2 and msg in r.stderr, "sensors file %r: exit 2 saying %s (%s)"
              % (text, msg, r.stderr.decode().strip()))
    r = rw("query", "--sensors", os.path.join(tmp, "none"))
    check(r.returncode == 2 and b"none" in r.stderr, "a missing sensors file: exit 2")
    r = rw("query", "--sensors", bad, "--community-id", "2:xyz")
    check(r.returncode == 2 and b"Community ID" in r.stderr, "a bad Community ID: exit 2")
    r = rw("query", "--sensors", bad, "--bogus")
    check(r.returncode == 2, "an unknown option: exit 2")
    bad2 = os.path.join(tmp, "bad-federate")
    with open(bad2, "w") as f:
        f.write("sensor x notaurl\n")
    r = sh(REWINDD, "--dir", d, "--federate", bad2)
    check(r.returncode == 2 and b"--federate" in r.stderr and b"line 1" in r.stderr,
          "rewindd --federate with a bad sensors file: exit 2 (%s)" % r.stderr.decode().strip())
    r = rw("clickhouse-schema", "--database", "a;b")
    check(r.returncode == 2 and b"--database" in r.stderr, "a bad database name: exit 2")
    r = rw("clickhouse-schema")
    check(r.returncode == 0 and b"ReplacingMergeTree" in r.stdout and b"TTL" not in r.stdout
          and b"FixedString(16)" in r.stdout, "the schema: ReplacingMergeTree, no TTL")


def main():
    need("clickhouse-server", "nfcapd", "nfdump", "mergecap", "tcpdump")
    tmp = tempfile.mkdtemp(prefix="rw-multisite-%d-" % os.getpid())
    ch = ClickHouse(os.path.join(tmp, "ch"))
    sensors = []
    try:
        test_bad_input(tmp)
        gen = []
        needles = []
        for seed in (11, 12, 13):
            path = os.path.join(tmp, "gen%d.pcap" % seed)
            r = sh(TRAFFICGEN, "--seed", str(seed), "--packets", "20000", "--rate", "1000",
                   "--start", str(T0), "--needles", "3", "-o", path)
            needles.append([ln.split()[1] for ln in r.stderr.decode().splitlines()
                            if ln.startswith("needle ")])
            gen.append(path)
        good = os.path.join(PCAPS, "good")
        sensors = [
            Sensor(tmp, "east", [(gen[0], "gen"), (os.path.join(good, "smtp.pcap"), "real")]),
            Sensor(tmp, "west", [(gen[1], "gen"),
                                 (os.path.join(good, "dns-edns-ecs.pcap"), "real"),
                                 (os.path.join(good, "mixed-vlan-mpls.pcap"), "vlan")],
                   tls=make_tls(os.path.join(tmp, "pki"))),
            Sensor(tmp, "north", [(gen[2], "gen"),
                                  (os.path.join(good, "echo-connections.pcap"), "real"),
                                  (os.path.join(good, "smtp.pcap"), "old")]),
        ]
        test_export(tmp, ch, sensors)
        test_federate(tmp, ch, sensors, needles[0][0])
        test_retention(ch, sensors[0], sensors[2])
        test_ipfix(tmp, sensors[2])
    finally:
        for s in sensors:
            try:
                s.stop()
            except Exception:
                pass
        ch.stop()
        if not os.environ.get("KEEP"):
            shutil.rmtree(tmp, ignore_errors=True)
        else:
            print("kept " + tmp)
    harness.finish("test_multisite")


if __name__ == "__main__":
    main()
