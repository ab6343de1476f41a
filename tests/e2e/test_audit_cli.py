#!/usr/bin/env python3
"""`rewind audit` on a trail that build/tests/tools/audit_append wrote through
auth/audit.h, as the archive's writer would: every request left exactly one
record with the fields given and the SHA-256 of the bytes "sent"; the
format checked by a second implementation written from rewind-archive(5),
AUDIT TRAIL; list (readable, --json, --from/--to/--principal), head and
verify. One flipped byte, a deleted record and a cut file: verify exits 1
naming that record. A torn last line is recorded as cut by the next writer;
a trail rewritten whole is caught by the head recorded before; verify and
list work while a writer appends."""
import hashlib
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import threading
import time

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "lib"))
import harness  # noqa: E402
from harness import ROOT, check, rw, sh  # noqa: E402

T0 = 1796000000 * 10**9  # 2026-11-30T00:53:20Z

# The requests: what each record must say. Filters and principals hold
# bytes a terminal must not see raw and bytes that are not UTF-8.
REQUESTS = [
    {"principal": "alice", "role": "analyst", "method": "token", "client": "192.0.2.7:50312",
     "route": "GET /api/v1/packets", "filter": "port 25", "points": ["eth0", "uplink"],
     "from_ns": T0 - 3600 * 10**9, "to_ns": T0, "params": {"format": "pcapng"},
     "body": "pcap bytes " * 50, "packets": 12, "status": 200},
    {"principal": "bob", "role": "admin", "method": "uid", "client": "unix uid 1000",
     "route": "ctl hold", "detail": "hold 3 placed", "from_ns": T0, "to_ns": T0 + 10**9},
    {"principal": "alice", "role": "analyst", "method": "token", "client": "[2001:db8::1]:4433",
     "route": "GET /api/v1/packets", "filter_hex": "706f72742032351b5b33316d22ff",
     "body_hex": "00ff10", "packets": 1, "status": 200},
    {"principal": "eve\u001b[2J", "role": "analyst", "method": "token", "client": "x",
     "route": "GET /api/v1/packets", "filter": "host 10.0.0.1 and 'quoted' \\", "status": 400},
]


def tool():
    """The audit_append tool of the build that bin/ comes from, built if missing."""
    san = os.path.exists(os.path.join(ROOT, "bin", ".flavour-1"))
    path = os.path.join(ROOT, "build-san" if san else "build", "tests", "tools", "audit_append")
    if not os.path.exists(path):
        sh("make", "-s", "-C", ROOT, "SAN=%d" % san, os.path.relpath(path, ROOT))
    return path


def append(arch, reqs, roll=None):
    """Append one record per request; [(seq, hash)] and the tool's stderr."""
    args = [tool()] + (["--roll", str(roll)] if roll else []) + [arch]
    r = subprocess.run(args, input="".join(json.dumps(q) + "\n" for q in reqs).encode(),
                       capture_output=True)
    check(r.returncode == 0, "audit_append: %r" % r.stderr)
    return [(int(s), h) for s, h in (ln.split() for ln in r.stdout.decode().splitlines())], \
        r.stderr


def files(arch):
    d = os.path.join(arch, "audit")
    return [os.path.join(d, f) for f in sorted(os.listdir(d)) if f.endswith(".jsonl")]


def lines(arch):
    """[(file, line number, bytes without the newline)] of the whole trail."""
    out = []
    for f in files(arch):
        with open(f, "rb") as fp:
            for i, ln in enumerate(fp.read().split(b"\n")[:-1], 1):
                out.append((f, i, ln))
    return out


def own_hash(line):
    """A3 of rewind-archive(5): the SHA-256 of the line without its last
    member ,"hash":"<64 hex>" (75 bytes before the closing brace)."""
    return hashlib.sha256(line[:-75] + b"}").hexdigest()


def check_format(arch, n):
    """A second reading of the format, from the man page alone."""
    prev, seq = "0" * 64, 0
    for f, i, ln in lines(arch):
        check(all(0x20 <= c <= 0x7e for c in ln), "%s:%d is printable ASCII" % (f, i))
        rec = json.loads(ln)
        check(rec["v"] == 1 and rec["seq"] == seq + 1, "%s:%d seq %r" % (f, i, rec["seq"]))
        check(rec["prev"] == prev, "%s:%d prev" % (f, i))
        check(ln.endswith(b',"hash":"%s"}' % rec["hash"].encode()) and
              own_hash(ln) == rec["hash"], "%s:%d its own hash" % (f, i))
        prev, seq = rec["hash"], rec["seq"]
    check(seq == n, "%d records, expected %d" % (seq, n))
    return seq, prev


def raw(req, key):
    """The bytes a request gave for key (key or key_hex)."""
    if key + "_hex" in req:
        return bytes.fromhex(req[key + "_hex"])
    return req[key].encode() if key in req else None


def field_bytes(rec, key):
    if key + "_hex" in rec:
        return bytes.fromhex(rec[key + "_hex"])
    return rec[key].encode("utf-8", "surrogatepass") if key in rec else None


def test_records(tmp):
    arch = os.path.join(tmp, "fields")
    os.makedirs(arch)
    out, _ = append(arch, REQUESTS * 3, roll=1500)
    check(len(files(arch)) > 2, "the trail rolled: %d files" % len(files(arch)))
    seq, head = check_format(arch, len(REQUESTS) * 3)
    check(out[-1] == (seq, head), "the tool's last record is the head")
    # each request left exactly one record, with its fields and result hash
    recs = [json.loads(ln) for _, _, ln in lines(arch)]
    for i, (req, rec) in enumerate(zip(REQUESTS * 3, recs)):
        what = "record %d" % (i + 1)
        for k in ("principal", "role", "method", "client", "route", "detail"):
            if k in req:
                check(field_bytes(rec, k) == req[k].encode(), "%s: %s" % (what, k))
        p = rec["params"]
        check(field_bytes(p, "filter") == raw(req, "filter"), "%s: filter" % what)
        check(p.get("from_ns") == req.get("from_ns") and p.get("to_ns") == req.get("to_ns"),
              "%s: window" % what)
        check(p.get("points") == req.get("points"), "%s: points" % what)
        for k, v in req.get("params", {}).items():
            check(p.get(k) == v, "%s: parameter %s" % (what, k))
        check(rec["status"] == req.get("status", 200) and
              rec["packets"] == req.get("packets", 0), "%s: status, packets" % what)
        body = raw(req, "body")
        if body is None:
            check("sha256" not in rec and rec["bytes"] == 0, "%s: nothing sent" % what)
        else:
            check(rec["bytes"] == len(body) and rec["sha256"] == hashlib.sha256(body).hexdigest(),
                  "%s: bytes and SHA-256 of the bytes sent" % what)

    # list --json: the stored lines, byte for byte
    r = rw("audit", "--dir", arch, "--json")
    check(r.returncode == 0 and r.stdout == b"".join(ln + b"\n" for _, _, ln in lines(arch)),
          "audit --json gives the stored lines: %r" % r.stderr)
    # the readable list: a line per record, nothing raw for the terminal
    r = rw("audit", "--dir", arch)
    out = r.stdout.splitlines()
    check(r.returncode == 0 and len(out) == len(recs), "audit lists %d lines" % len(out))
    check(not any(c < 0x20 or c == 0x7f for ln in out for c in ln), "no control bytes listed")
    check(out[0].startswith(b"1 2026-") and b" alice (analyst, token) 192.0.2.7:50312 GET "
          b"/api/v1/packets from " in out[0] and b" filter 'port 25' points eth0,uplink "
          b"format='pcapng' -> 200, 12 packets, 550 bytes, sha256 " +
          hashlib.sha256(b"pcap bytes " * 50).hexdigest().encode() in out[0],
          "record 1 listed: %r" % out[0])
    check(b"filter 'port 25\\x1b[31m\"\\xff'" in out[2], "bytes shown escaped: %r" % out[2])
    check(b"eve\\x1b[2J" in out[3] and b"'quoted' \\x5c" not in out[3] and
          b"\\x27quoted\\x27 \\x5c'" in out[3], "quotes escaped: %r" % out[3])
    check(out[1].endswith(b": hold 3 placed"), "detail listed: %r" % out[1])
    # --principal, --from, --to
    r = rw("audit", "--dir", arch, "--json", "--principal", "bob")
    got = [json.loads(ln)["seq"] for ln in r.stdout.splitlines()]
    check(r.returncode == 0 and got == [2, 6, 10], "--principal bob: %r" % got)
    times = [rec["time_ns"] for rec in recs]
    lo, hi = times[3], times[7]
    fmt = lambda ns: "%d.%09d" % (ns // 10**9, ns % 10**9)  # noqa: E731
    r = rw("audit", "--dir", arch, "--json", "--from", fmt(lo), "--to", fmt(hi),
           "--principal", "alice")
    got = [json.loads(ln)["seq"] for ln in r.stdout.splitlines()]
    want = [rec["seq"] for rec in recs if lo <= rec["time_ns"] < hi and
            rec["principal"] == "alice"]
    check(r.returncode == 0 and got == want and got, "--from/--to: %r, expected %r" %
          (got, want))
    # head and verify
    r = rw("audit", "head", "--dir", arch)
    check(r.returncode == 0 and r.stdout == b"%d %s\n" % (seq, head.encode()),
          "audit head: %r" % r.stdout)
    r = rw("audit", "verify", "--dir", arch)
    check(r.returncode == 0 and b" 0 problems" in r.stderr, "verify clean: %r" % r.stderr)
    r = rw("audit", "verify", "--dir", arch, "--head", "%d %s" % (seq, head))
    check(r.returncode == 0, "verify --head of its own head: %r" % r.stderr)
    return arch


def first_problem(r):
    return r.stderr.splitlines()[0] if r.stderr else b""


def test_damage(tmp, good):
    """One flipped byte, a deleted record, a cut file: exit 1, that record named."""
    arch = os.path.join(tmp, "damage")
    shutil.copytree(good, arch)
    all_lines = lines(arch)
    f, lineno, ln = all_lines[5]                 # record 6, in the middle of a file
    name = os.path.basename(f).encode()
    data = open(f, "rb").read()
    start = data.index(ln)
    for where in (ln.index(b'"principal"') + 13, 20, len(ln) - 10):  # a name, prev, own hash
        bad = bytearray(data)
        bad[start + where] ^= 0x01
        open(f, "wb").write(bytes(bad))
        r = rw("audit", "verify", "--dir", arch)
        check(r.returncode == 1 and first_problem(r).startswith(
              b"rewind: audit: %s line %d: record 6" % (name, lineno)),
              "flipped byte %d of record 6: exit %d, %r" % (where, r.returncode, r.stderr))
    open(f, "wb").write(data)
    # the same in the last record, which no record after it names
    lf, llineno, lln = all_lines[-1]
    ldata = open(lf, "rb").read()
    bad = bytearray(ldata)
    bad[len(ldata) - len(lln) - 1 + 30] ^= 0x04
    open(lf, "wb").write(bytes(bad))
    r = rw("audit", "verify", "--dir", arch)
    check(r.returncode == 1 and b"line %d: record %d" % (llineno, len(all_lines)) in
          first_problem(r), "flipped byte of the last record: %r" % r.stderr)
    open(lf, "wb").write(ldata)
    # record 6 deleted
    open(f, "wb").write(data[:start] + data[start + len(ln) + 1:])
    r = rw("audit", "verify", "--dir", arch)
    check(r.returncode == 1 and b"%s line %d: record 7 where record 6 was expected: record 6 is "
          b"missing" % (name, lineno) in first_problem(r), "deleted record 6: %r" % r.stderr)
    r = rw("audit", "--dir", arch)
    check(r.returncode == 0 and len(r.stdout.splitlines()) == len(all_lines) - 1,
          "list still lists the rest")
    open(f, "wb").write(data)
    # the last file cut in the middle of its last record
    with open(lf, "r+b") as fp:
        fp.truncate(len(ldata) - 20)
    r = rw("audit", "verify", "--dir", arch)
    check(r.returncode == 1 and b"record %d, cut off" % len(all_lines) in first_problem(r),
          "cut file: %r" % r.stderr)
    # the next writer records the cut and goes on; the cut bytes stay
    out, err = append(arch, REQUESTS[:1])
    check(b"note: " in err and os.path.basename(lf).encode() in err, "the cut is reported: %r"
          % err)
    check(open(lf, "rb").read() == ldata[:-20], "the cut file is left as it was")
    check(out and out[0][0] == len(all_lines) + 1, "the chain goes on: %r" % out)
    r = rw("audit", "verify", "--dir", arch)
    check(r.returncode == 0 and b"1 cut by a crash, 0 problems" in r.stderr,
          "verify after recovery: %r" % r.stderr)
    r = rw("audit", "--dir", arch)
    check(b" audit cut -> 0, " in r.stdout.splitlines()[-2], "the cut record is listed")


def test_rewritten(tmp, good):
    """A trail rewritten whole is consistent in itself; the head kept off the
    machine catches it."""
    arch = os.path.join(tmp, "rewritten")
    shutil.copytree(good, arch)
    head = rw("audit", "head", "--dir", arch).stdout.decode().strip()
    shutil.rmtree(os.path.join(arch, "audit"))
    append(arch, REQUESTS * 4)
    r = rw("audit", "verify", "--dir", arch)
    check(r.returncode == 0, "the rewritten trail verifies by itself")
    for h in (head, head.replace(" ", ":"), head.split()[1]):
        r = rw("audit", "verify", "--dir", arch, "--head", h)
        check(r.returncode == 1 and b"recorded off the machine" in r.stderr,
              "verify --head %r: exit %d, %r" % (h, r.returncode, r.stderr))
    shutil.rmtree(os.path.join(arch, "audit"))
    r = rw("audit", "verify", "--dir", arch, "--head", head)
    check(r.returncode == 1, "a trail deleted whole, with --head: exit %d" % r.returncode)
    r = rw("audit", "verify", "--dir", arch)
    check(r.returncode == 2 and b"no audit trail" in r.stderr, "no trail: %r" % r.stderr)


def test_while_appending(tmp):
    """Readers and one writer at once: every verify and list is clean."""
    arch = os.path.join(tmp, "live")
    os.makedirs(arch)
    p = subprocess.Popen([tool(), "--roll", "4000", arch], stdin=subprocess.PIPE,
                         stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    stop = threading.Event()

    def feed():
        i = 0
        while not stop.is_set():
            q = dict(REQUESTS[i % len(REQUESTS)])
            q["body"] = "x" * (i % 300)
            p.stdin.write((json.dumps(q) + "\n").encode())
            p.stdin.flush()
            i += 1
            time.sleep(0.002)

    t = threading.Thread(target=feed)
    t.start()
    bad = []
    try:
        deadline = time.time() + 10  # the trail exists once its first record does
        while time.time() < deadline and not (os.path.isdir(os.path.join(arch, "audit")) and
                                               any(os.path.getsize(f) for f in files(arch))):
            time.sleep(0.01)
        deadline = time.time() + 4
        runs = 0
        while time.time() < deadline:
            r = rw("audit", "verify", "--dir", arch)
            if r.returncode != 0:
                bad.append(r.stderr)
            r = rw("audit", "--dir", arch, "--json")
            if r.returncode != 0 or not all(ln.endswith(b'"}') for ln in r.stdout.splitlines()):
                bad.append(r.stderr)
            runs += 1
    finally:
        stop.set()
        t.join()
        p.stdin.close()
        p.wait()
    check(not bad, "verify/list while appending: %r" % bad[:2])
    n = len(lines(arch))
    check(n > 100 and len(files(arch)) > 3, "%d records in %d files appended meanwhile" %
          (n, len(files(arch))))
    check_format(arch, n)


def test_usage(tmp):
    arch = os.path.join(tmp, "fields")
    env = dict(os.environ)
    env.pop("REWIND_DIR", None)
    cases = [(["audit"], b"--dir DIR is required"),
             (["audit", "bogus", "--dir", arch], b"unknown command 'bogus'"),
             (["audit", "head", "--dir", arch, "--json"], b"are for list"),
             (["audit", "--dir", arch, "--head", "1 " + "0" * 64], b"--head is for verify"),
             (["audit", "verify", "--dir", arch, "--head", "zz"], b"--head takes"),
             (["audit", "verify", "head", "--dir", arch], b"unexpected argument 'head'"),
             (["audit", "--dir", arch, "--from", "yesterday"], b"yesterday"),
             (["audit", "--dir", os.path.join(tmp, "none")], b"no audit trail")]
    for args, needle in cases:
        r = subprocess.run([harness.REWIND] + args, capture_output=True, env=env)
        check(r.returncode == 2 and needle in r.stderr and len(r.stderr.splitlines()) == 1,
              "%s: exit %d, %r" % (args, r.returncode, r.stderr))
    r = rw("audit", "--help")
    check(r.returncode == 0 and r.stdout.startswith(b"usage: rewind audit"), "audit --help")
    r = rw("--help")
    check(re.search(rb"^  audit  ", r.stdout, re.M), "rewind --help lists audit")


def main():
    tmp = tempfile.mkdtemp(prefix="rewind-audit-", dir=os.environ.get("REWIND_TMP"))
    try:
        good = test_records(tmp)
        test_damage(tmp, good)
        test_rewritten(tmp, good)
        test_while_appending(tmp)
        test_usage(tmp)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    harness.finish("test_audit_cli")


if __name__ == "__main__":
    main()
