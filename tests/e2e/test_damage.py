#!/usr/bin/env python3
"""Damaged segment files cost only their own packets (issue: "one clear
error, the rest answers"). A real capture (echo-connections.pcap, 82 k
packets, 105 blocks of 64 KiB) is imported twice: lz4-compressed, then a
byte is flipped in the first, a middle and the last block; plain, in
segments of 2 MiB, then one record header is damaged in one segment and
another segment loses its last 100 kB. Then, for each archive:

- `rewind query` (read locally, and answered by rewindd over its socket)
  writes every readable packet -- byte for byte what tcpdump writes over the
  intact records -- keeps -w FILE, warns once per damaged block naming the
  segment and the block, and exits 3; a query whose packets lie elsewhere
  exits 0 with the whole answer;
- over HTTP the pcapng answer ends with one comment block per damaged block
  (tcpdump still reads it), a pcap answer ends with an X-Rewind-Damage
  trailer per block, and /metrics counts rewind_damaged_blocks_total;
- verify names each damaged block; reindex keeps every readable packet and
  records the lost ranges, which verify reports and queries warn of;
  `verify --quarantine` accepts the loss (logged) and verify is clean again,
  also after another reindex, with no readable packet lost on the way."""
import json
import os
import re
import shutil
import socket
import struct
import subprocess
import sys
import tempfile
import time
import urllib.parse

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "lib"))
import harness  # noqa: E402
from harness import PCAPS, REWINDD, check, rw, sh  # noqa: E402

ECHO = os.path.join(PCAPS, "good", "echo-connections.pcap")
BLOCK = 65536


# ---------------------------------------------------------------- files

def segment_files(arch):
    out = []
    for d, _, files in os.walk(os.path.join(arch, "segments")):
        out += [os.path.join(d, f) for f in files]
    return sorted(out)


def records(pcap):
    """[(offset, end, record bytes)] of a pcap's records."""
    out, off = [], 24
    for _, rec in harness.pcaputil.read_pcap(pcap)[1]:
        out.append((off, off + len(rec), rec))
        off += len(rec)
    return out


def block_table(data):
    """Offsets of the 4-byte headers of an lz4 segment's blocks (n + 1)."""
    n = struct.unpack("<I", data[-12:-8])[0]
    start = len(data) - 24 - 8 * (n + 1)
    return [struct.unpack("<Q", data[start + 8 * i:start + 8 * i + 8])[0] for i in range(n + 1)]


def keep_mtime(path, change):
    """Damage as a disk does: the file's time stays (reindex orders by it)."""
    st = os.stat(path)
    change(path)
    os.utime(path, ns=(st.st_atime_ns, st.st_mtime_ns))


def flip(path, off):
    def change(p):
        with open(p, "r+b") as f:
            f.seek(off)
            b = f.read(1)
            f.seek(off)
            f.write(bytes([b[0] ^ 0x40]))
    keep_mtime(path, change)


def tcp_ports(rec):
    """Source and destination port of an Ethernet/IPv4/TCP record."""
    ip = rec[16 + 14:]
    ihl = (ip[0] & 15) * 4
    return struct.unpack(">HH", ip[ihl:ihl + 4])


class Expected:
    """What an answer holds when some records are lost: tcpdump over a pcap
    of the intact records (in archive order)."""

    def __init__(self, tmp, name, header, recs, lost):
        self.recs = recs
        self.lost = lost  # set of record bytes ids: (segment, offset)
        self.path = os.path.join(tmp, name + "-intact.pcap")
        with open(self.path, "wb") as f:
            f.write(header)
            for key, rec in recs:
                if key not in lost:
                    f.write(rec)

    def answer(self, flt="", window=None):
        want = harness.tcpdump(self.path, flt)
        if window:
            hdr, recs, _ = harness.pcaputil.read_pcap(want)
            want = harness.pcaputil.window(hdr, recs, *window)
        return want


# ---------------------------------------------------------------- HTTP

def http_get(port, path):
    """(status, body, trailer lines, complete) of a chunked answer, read raw:
    Python's http.client drops trailers."""
    s = socket.create_connection(("127.0.0.1", port), timeout=120)
    s.sendall(("GET %s HTTP/1.1\r\nHost: 127.0.0.1\r\nTE: trailers\r\nConnection: close\r\n\r\n"
               % path).encode())
    data = b""
    while True:
        c = s.recv(1 << 16)
        if not c:
            break
        data += c
    s.close()
    head, _, rest = data.partition(b"\r\n\r\n")
    status = int(head.split(b" ")[1])
    body, trailers, complete = b"", [], False
    if b"chunked" not in head.lower():
        return status, head.decode(), rest, trailers, True
    try:
        while True:
            line, _, rest = rest.partition(b"\r\n")
            size = int(line.split(b";")[0], 16)
            if size == 0:
                while True:
                    line, _, rest = rest.partition(b"\r\n")
                    if not line:
                        complete = True
                        break
                    trailers.append(line.decode())
                break
            body += rest[:size]
            rest = rest[size + 2:]
    except ValueError:
        pass
    return status, head.decode(), body, trailers, complete


def pcapng_blocks(data):
    """[(type, body)] of a little-endian pcapng byte string."""
    out, pos = [], 0
    while pos + 12 <= len(data):
        btype, blen = struct.unpack("<II", data[pos:pos + 8])
        if blen < 12 or pos + blen > len(data):
            break
        out.append((btype, data[pos + 8:pos + blen - 4]))
        pos += blen
    return out


def isb_comments(body):
    """The opt_comment strings of an Interface Statistics Block body."""
    pos, out = 12, []
    while pos + 4 <= len(body):
        code, ln = struct.unpack("<HH", body[pos:pos + 4])
        if code == 0:
            break
        if code == 1:
            out.append(body[pos + 4:pos + 4 + ln].decode())
        pos += 4 + ln + (-ln % 4)
    return out


def epb_records(blocks):
    """The packets of pcapng blocks as pcap records with ns timestamps."""
    out = []
    for btype, body in blocks:
        if btype == 6:
            _, hi, lo, cap, wire = struct.unpack("<IIIII", body[:20])
            ts = hi << 32 | lo
            out.append(struct.pack("<IIII", ts // 10**9, ts % 10**9, cap, wire) +
                       body[20:20 + cap])
    return out


# ---------------------------------------------------------------- checks

def warn_lines(stderr, seg_rel):
    return [ln for ln in stderr.decode().splitlines()
            if " warn " in ln and "damaged segment %s" % seg_rel in ln]


def blocks_named(lines):
    """The first block each warning names ("block 5 (", "blocks 5-6 (")."""
    out = []
    for ln in lines:
        m = re.search(r" blocks? (\d+)(?:-\d+)? \(pcap bytes", ln)
        out.append(int(m.group(1)) if m else None)
    return sorted(out)


def query_cases(exp, rel, cases, arch, tmp, how):
    """Each case: (filter, window, damaged blocks it reads) -- answered
    locally or by the daemon: the same bytes as tcpdump over the intact
    records, -w FILE kept, one warning per damaged block, exit 3; or, when
    its packets lie elsewhere, exit 0 and no warning."""
    for flt, window, damaged in cases:
        out = os.path.join(tmp, "out.pcap")
        if os.path.exists(out):
            os.unlink(out)
        args = ["query", "--dir", arch, "-w", out]
        if window:
            args += ["--from", "%d.%09d" % divmod(window[0], 10**9),
                     "--to", "%d.%09d" % divmod(window[1], 10**9)]
        if how == "local":
            args.append("--local")
        r = rw(*(args + ([flt] if flt else [])))
        got = open(out, "rb").read() if os.path.exists(out) else b""
        want = exp.answer(flt, window)
        what = "%s %r %s" % (how, flt, "window" if window else "")
        check(len(want) > 24, "%s: the intact records answer something" % what)
        check(got == want, "%s: -w FILE (%d bytes) is tcpdump over the intact records (%d): %r"
              % (what, len(got), len(want), r.stderr[-400:]))
        lines = warn_lines(r.stderr, rel)
        if damaged:
            check(r.returncode == 3, "%s: exit %d, expected 3 (answered, with damage)" %
                  (what, r.returncode))
            check(blocks_named(lines) == sorted(damaged),
                  "%s: one warning per damaged block %s, naming segment and block: %r" %
                  (what, damaged, lines))
        else:
            check(r.returncode == 0 and not lines,
                  "%s: the damage is elsewhere: exit %d, warnings %r" % (what, r.returncode, lines))


def start_daemon(arch, tmp, name):
    port = harness.free_port()
    log = os.path.join(tmp, name + ".log")
    d = subprocess.Popen([REWINDD, "--dir", arch, "--listen", "127.0.0.1:%d" % port, "--log",
                          log], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.time() + 20
    while time.time() < deadline and d.poll() is None:
        if os.path.exists(log) and b" ready;" in open(log, "rb").read():
            break
        time.sleep(0.05)
    check(os.path.exists(log) and b" ready;" in open(log, "rb").read(), "rewindd on %s started"
          % name)
    return d, port, log


def stop_daemon(d):
    d.terminate()
    check(d.wait(timeout=30) == 0, "rewindd stops cleanly")


def metric(port, state):
    _, _, body, _, _ = http_get(port, "/metrics")
    m = re.search(r'^rewind_damaged_blocks_total\{state="%s"\} (\d+)$' % state, body.decode(),
                  re.M)
    return int(m.group(1)) if m else -1


def http_cases(exp, rel, bad_blocks, port, ncases_damaged):
    before = metric(port, "unreadable")
    # pcapng: the packets, then one comment block per damaged block
    status, _, body, trailers, complete = http_get(port, "/api/v1/packets?format=pcapng")
    blocks = pcapng_blocks(body)
    want = harness.pcaputil.read_pcap(exp.answer())[1]
    check(status == 200 and complete, "HTTP pcapng: 200, the transfer complete")
    check(epb_records(blocks) == [r for _, r in want],
          "HTTP pcapng: the packets are those tcpdump reads in the intact records (%d vs %d)" %
          (len(epb_records(blocks)), len(want)))
    tail = [isb_comments(b) for t, b in blocks if t == 5]
    check(blocks and blocks[-1][0] == 5 and len(tail) == len(bad_blocks) and
          blocks_named(["x warn " + c[0] for c in tail if c]) == sorted(bad_blocks) and
          all(rel in c[0] for c in tail if c),
          "HTTP pcapng: it ends with one comment block per damaged block, naming segment and "
          "block: %r" % tail)
    path = os.path.join(os.path.dirname(exp.path), "http.pcapng")
    open(path, "wb").write(body)
    r = sh("tcpdump", "-r", path, "-w", "-")
    check(r.returncode == 0 and len(harness.pcaputil.read_pcap(r.stdout)[1]) == len(want),
          "tcpdump reads the pcapng answer with its comment blocks: %r" % r.stderr[-200:])
    check(len(trailers) == len(bad_blocks) and
          all(t.startswith("X-Rewind-Damage: damaged segment %s" % rel) for t in trailers),
          "HTTP pcapng: an X-Rewind-Damage trailer per damaged block: %r" % trailers)
    # pcap: the same bytes as tcpdump, and the trailers
    status, head, body, trailers, complete = http_get(port, "/api/v1/packets")
    check(status == 200 and complete and body == exp.answer(),
          "HTTP pcap: tcpdump's bytes over the intact records (%d vs %d)" %
          (len(body), len(exp.answer())))
    check("Trailer: X-Rewind-Damage" in head, "HTTP: the Trailer header announces the damage "
          "trailer")
    check(blocks_named(["x warn " + t for t in trailers]) == sorted(bad_blocks),
          "HTTP pcap: an X-Rewind-Damage trailer per damaged block: %r" % trailers)
    after = metric(port, "unreadable")
    check(after >= before + 2 * len(bad_blocks),
          "/metrics: rewind_damaged_blocks_total{state=\"unreadable\"} went from %d to %d" %
          (before, after))
    # an answer without damage has no trailer
    lo, hi = ncases_damaged
    q = urllib.parse.urlencode({"from": "%d.%09d" % divmod(lo, 10**9),
                                "to": "%d.%09d" % divmod(hi, 10**9)})
    status, _, body, trailers, complete = http_get(port, "/api/v1/packets?" + q)
    check(status == 200 and complete and not trailers and body == exp.answer("", (lo, hi)),
          "HTTP: a window without damage has the whole answer and no trailer: %r" % trailers)


def reindex_and_quarantine(exp, arch, tmp, rel, nranges):
    """reindex keeps the readable packets and records the ranges; verify
    reports them; --quarantine accepts them; verify is clean, also after
    another reindex; nothing readable is lost."""
    r = rw("reindex", "--dir", arch)
    check(r.returncode == 0 and r.stderr.count(b"recorded as a damaged range") == nranges,
          "reindex records %d damaged ranges: %r" % (nranges, r.stderr[-600:]))
    out = os.path.join(tmp, "after.pcap")
    r = rw("query", "--dir", arch, "--local", "-w", out)
    lines = warn_lines(r.stderr, rel)
    check(r.returncode == 3 and open(out, "rb").read() == exp.answer(),
          "after reindex every readable packet answers (exit %d, %d bytes, expected %d)" %
          (r.returncode, os.path.getsize(out) if os.path.exists(out) else 0,
           len(exp.answer())))
    check(len(lines) == nranges and all("recorded as lost by 'rewind reindex'" in ln
                                        for ln in lines),
          "after reindex the query warns of each recorded range: %r" % lines)
    # the daemon knows the recorded ranges before the first byte: headers too
    d, port, _ = start_daemon(arch, tmp, "reindexed")
    try:
        r = rw("query", "--dir", arch, "-w", out)
        check(r.returncode == 3 and open(out, "rb").read() == exp.answer() and
              len(warn_lines(r.stderr, rel)) == nranges,
              "after reindex, asked of the daemon: exit %d, %d warnings" %
              (r.returncode, len(warn_lines(r.stderr, rel))))
        status, head, body, trailers, complete = http_get(port, "/api/v1/packets")
        check(status == 200 and complete and body == exp.answer() and
              head.count("X-Rewind-Damage: damaged segment %s" % rel) == nranges and
              len(trailers) == nranges,
              "after reindex over HTTP: the recorded ranges as headers and trailers: %r %r" %
              (head, trailers))
        check(metric(port, "recorded") >= nranges,
              "/metrics counts the recorded ranges an answer lacked")
    finally:
        stop_daemon(d)
    st = rw("status", "--dir", arch).stdout.decode()
    npk = len(exp.recs) - len(exp.lost)
    check(re.search(r"^packets\s+%d$" % npk, st, re.M),
          "status counts the %d readable packets: %s" % (npk, st))
    r = rw("verify", "--dir", arch)
    err = r.stderr.decode()
    check(r.returncode == 1 and err.count("recorded by 'rewind reindex'") == nranges and
          rel in err and "--quarantine" in err,
          "verify reports %d recorded ranges of %s, and how to accept them: %r" %
          (nranges, rel, err[-800:]))
    r = rw("verify", "--dir", arch, "--quarantine", "--reason", "disk replaced, ticket 42")
    err = r.stderr.decode()
    logged = [ln for ln in err.splitlines() if " warn quarantine: segment %s" % rel in ln]
    check(r.returncode == 0 and len(logged) == nranges and
          all("ticket 42" in ln and "lost" in ln for ln in logged),
          "verify --quarantine logs each accepted loss and exits 0: %r" % err[-800:])
    r = rw("audit", "--dir", arch, "--json")
    recs = [json.loads(ln) for ln in r.stdout.splitlines()]
    check(any(x.get("route") == "verify --quarantine" and "ticket 42" in x.get("detail", "")
              for x in recs), "the accepted loss is on the audit trail: %r" % recs[-2:])
    r = rw("verify", "--dir", arch)
    check(r.returncode == 0 and b"0 problems" in r.stderr and
          b"%d damaged ranges whose loss was accepted" % nranges in r.stderr,
          "verify is clean after quarantine: %r" % r.stderr[-400:])
    r = rw("query", "--dir", arch, "--local", "-w", out)
    check(r.returncode == 3 and open(out, "rb").read() == exp.answer() and
          r.stderr.count(b"the loss was accepted") == nranges,
          "after quarantine queries still answer every readable packet and say what is lost: "
          "%r" % r.stderr[-300:])
    time.sleep(1.1)  # the previous index is kept as index.old-SECONDS
    r = rw("reindex", "--dir", arch)
    check(r.returncode == 0, "reindex again: %r" % r.stderr[-300:])
    r = rw("verify", "--dir", arch)
    check(r.returncode == 0, "the acceptance survives another reindex: %r" % r.stderr[-400:])
    r = rw("query", "--dir", arch, "--local", "-w", out)
    check(open(out, "rb").read() == exp.answer(), "and every readable packet still answers")


# ---------------------------------------------------------------- archives

def test_compressed(tmp):
    arch = os.path.join(tmp, "z")
    r = rw("import", "--quiet", "--dir", arch, "--point", "echo", "--compress-after", "0", ECHO)
    check(r.returncode == 0, "import --compress-after 0: %r" % r.stderr)
    seg = segment_files(arch)
    check(len(seg) == 1 and seg[0].endswith(".pcap.lz4"), "one compressed segment: %r" % seg)
    seg = seg[0]
    rel = os.path.relpath(seg, arch)
    plain = sh("lz4", "-d", "-c", seg).stdout
    recs = records(plain)
    data = open(seg, "rb").read()
    table = block_table(data)
    n = len(table) - 1
    check(n > 100, "the segment has %d blocks" % n)
    bad = [0, n // 2, n - 1]
    for b in bad:  # a byte in the middle of the block's compressed bytes
        flip(seg, (table[b] + 4 + table[b + 1] - 4) // 2)
    lost = {(0, o) for o, e, _ in recs
            if any(o < min((b + 1) * BLOCK, len(plain)) and e > b * BLOCK for b in bad)}
    check(0 < len(lost) < len(recs) // 10, "%d of %d packets are in the damaged blocks" %
          (len(lost), len(recs)))
    exp = Expected(tmp, "z", plain[:24], [((0, o), rec) for o, _, rec in recs], lost)

    # A connection (client port) with packets in a damaged block, and one
    # with none: the index leads a query for the first into the damage.
    conns = {}
    for o, e, rec in recs:
        sport, dport = tcp_ports(rec)
        hits = [b for b in bad if o < min((b + 1) * BLOCK, len(plain)) and e > b * BLOCK]
        conns.setdefault(dport if sport == 7000 else sport, set()).update(hits)
    hit = next(p for p, bs in sorted(conns.items()) if bs)
    miss = next(p for p, bs in sorted(conns.items()) if not bs)
    ts = [t for t, _ in harness.pcaputil.read_pcap(plain)[1]]
    window = (ts[len(recs) // 4], ts[len(recs) // 3])
    check(not any((0, recs[i][0]) in lost for i in range(len(recs))
                  if window[0] <= ts[i] < window[1]), "the window holds no damaged packet")
    cases = [("", None, bad), ("tcp[13] & 2 != 0", None, bad),
             ("port %d" % hit, None, sorted(conns[hit])), ("port %d" % miss, None, []),
             ("", window, []), ("tcp", window, [])]
    query_cases(exp, rel, cases, arch, tmp, "local")

    r = rw("verify", "--dir", arch)
    err = r.stderr.decode()
    named = sorted(int(b) for b in re.findall(r": block (\d+) \(pcap bytes \d+-\d+\) fails its "
                                              r"checksum", err))
    check(r.returncode == 1 and named == bad, "verify names each damaged block %s: %r" %
          (bad, err[-900:]))

    d, port, log = start_daemon(arch, tmp, "z")
    try:
        query_cases(exp, rel, cases[:4], arch, tmp, "daemon")
        r = rw("query", "--dir", arch, "--count")
        check(r.returncode == 3 and r.stdout.strip() == str(len(recs) - len(lost)).encode() and
              len(warn_lines(r.stderr, rel)) == len(bad),
              "daemon --count: %r exit %d %r" % (r.stdout, r.returncode, r.stderr[-300:]))
        http_cases(exp, rel, bad, port, window)
        text = open(log, "rb").read().decode()
        check(len(re.findall(r" warn .*damaged segment %s \(id \d+\): block %d " %
                             (re.escape(rel), n // 2), text)) >= 3,
              "the daemon logs the damage of each answer")
    finally:
        stop_daemon(d)

    reindex_and_quarantine(exp, arch, tmp, rel, len(bad))


def test_plain(tmp):
    arch = os.path.join(tmp, "p")
    r = rw("import", "--quiet", "--dir", arch, "--point", "echo", "--segment-bytes", "2M", ECHO)
    check(r.returncode == 0, "import in 2 MiB segments: %r" % r.stderr)
    segs = segment_files(arch)
    check(len(segs) >= 3 and all(s.endswith(".pcap") for s in segs), "plain segments: %r" % segs)
    allrecs, lost = [], set()
    datas = [open(s, "rb").read() for s in segs]
    for i, data in enumerate(datas):
        allrecs += [((i, o), rec) for o, _, rec in records(data)]
    # segment 1: the caplen of a record in the middle; segment 2 ends early
    r1 = records(datas[1])
    o, e, _ = r1[len(r1) // 2]
    flip(segs[1], o + 10)
    lost.add((1, o))
    cut = len(datas[2]) - 100000
    keep_mtime(segs[2], lambda p: os.truncate(p, cut))
    lost |= {(2, o) for o, e, _ in records(datas[2]) if e > cut}
    exp = Expected(tmp, "p", datas[0][:24], allrecs, lost)
    rel1, rel2 = (os.path.relpath(s, arch) for s in segs[1:3])

    for how in ("local", "daemon"):
        d = start_daemon(arch, tmp, "p")[0] if how == "daemon" else None
        try:
            out = os.path.join(tmp, "out.pcap")
            args = ["query", "--dir", arch, "-w", out] + (["--local"] if how == "local" else [])
            r = rw(*args)
            w1, w2 = warn_lines(r.stderr, rel1), warn_lines(r.stderr, rel2)
            check(r.returncode == 3 and open(out, "rb").read() == exp.answer(),
                  "plain, %s: exit %d, every readable packet (%d bytes, tcpdump over the intact "
                  "records %d)" % (how, r.returncode, os.path.getsize(out) if os.path.exists(out) else 0,
                                    len(exp.answer())))
            check(len(w1) == 1 and "record header disagrees with the index" in w1[0] and
                  "1 packet that may match" in w1[0],
                  "plain, %s: the damaged record is named: %r" % (how, w1))
            check(len(w2) == 1 and "the file ends before them" in w2[0],
                  "plain, %s: the missing end is named: %r" % (how, w2))
        finally:
            if d:
                stop_daemon(d)
    r = rw("verify", "--dir", arch)
    check(r.returncode == 1 and rel1.encode() in r.stderr and rel2.encode() in r.stderr,
          "verify names both damaged plain segments: %r" % r.stderr[-600:])
    # both segments: one recorded range each
    r = rw("reindex", "--dir", arch)
    check(r.returncode == 0 and r.stderr.count(b"recorded as a damaged range") == 2,
          "reindex records the damaged record and the missing end: %r" % r.stderr[-600:])
    r = rw("query", "--dir", arch, "--local", "-w", os.path.join(tmp, "p2.pcap"))
    check(r.returncode == 3 and open(os.path.join(tmp, "p2.pcap"), "rb").read() == exp.answer(),
          "plain, after reindex: every readable packet: %r" % r.stderr[-300:])
    r = rw("verify", "--dir", arch, "--quarantine")
    check(r.returncode == 0 and r.stderr.count(b"warn quarantine:") == 2,
          "plain: --quarantine accepts both: %r" % r.stderr[-500:])


def main():
    if not shutil.which("lz4"):
        print("damage: the lz4 tool is missing (sh tools/deps.sh installs it)")
        sys.exit(1)
    tmp = tempfile.mkdtemp(prefix="rewind-damage-", dir=os.environ.get("REWIND_TMP"))
    test_compressed(tmp)
    test_plain(tmp)
    if not harness.failed:
        shutil.rmtree(tmp, ignore_errors=True)
    else:
        print("kept " + tmp)
    harness.finish("damage")


if __name__ == "__main__":
    main()
