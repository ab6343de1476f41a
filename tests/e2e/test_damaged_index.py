#!/usr/bin/env python3
"""A damaged posting in the index costs no packet: two real captures
imported, then one posting of each point damaged with
build/tests/tools/damage_posting (a value that is no Roaring bitmap, and a
garbage merge operand that the merge operator turns into the damage
marker). `rewind verify` exits 1 naming both segments and terms; every
query that reads those postings, answered by rewindd over its socket and
over HTTP and by `rewind query --local`, is byte for byte what tcpdump
writes, and says which segment it read in full (one warn line in the
daemon's log, one on the local reader's stderr, exit status 0). Queries
that do not read them say nothing. `rewind reindex` makes verify clean."""
import http.client
import os
import re
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import urllib.parse
import urllib.request

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "lib"))
import harness  # noqa: E402
from harness import BIN, PCAPS, REWINDD, ROOT, check, rw, sh, tcpdump  # noqa: E402

SMTP = os.path.join(PCAPS, "good", "smtp.pcap")
REJ = os.path.join(PCAPS, "good", "smtp-data-rejected.pcap")
FILES = {"smtp": SMTP, "rej": REJ}
ANSWER = re.compile(rb" info (rewind query|GET /api/v1/packets by [^']*) filter '.*': \d+ packets, ")


def tool():
    """The damage tool of the build that bin/ comes from, built if missing."""
    san = os.path.exists(os.path.join(ROOT, "bin", ".flavour-1"))
    path = os.path.join(ROOT, "build-san" if san else "build", "tests", "tools",
                        "damage_posting")
    if not os.path.exists(path):
        sh("make", "-s", "-C", ROOT, "SAN=%d" % san, os.path.relpath(path, ROOT))
    return path


def damage(arch, *args):
    r = sh(tool(), *args[:-2], arch, *args[-2:])
    check(r.returncode == 0, "damage_posting %s: %r" % (args, r.stderr))
    seg, kind, val = r.stdout.split()
    return int(seg)


def free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


def warn_of(text, seg):
    """Warn lines about a damaged posting of segment seg."""
    return [ln for ln in text.splitlines()
            if b" warn " in ln and b"damaged index" in ln and b"segment %d (" % seg in ln]


def main():
    tmp = tempfile.mkdtemp(prefix="rewind-damaged-", dir=os.environ.get("REWIND_TMP"))
    arch = os.path.join(tmp, "arch")
    for point, path in FILES.items():
        r = rw("import", "--quiet", "--dir", arch, "--point", point, path)
        check(r.returncode == 0, "import %s: %r" % (path, r.stderr))
    r = rw("verify", "--dir", arch)
    check(r.returncode == 0, "verify before the damage: %r" % r.stderr)

    # smtp: the stored value of port 25 in its first segment is garbage;
    # rej: a garbage operand merged onto ip proto 6 (tcp) of its last one
    seg_a = damage(arch, "3", "0019")
    seg_b = damage(arch, "--merge", "--last", "4", "06")
    check(seg_a != seg_b, "one damaged segment per point (%d, %d)" % (seg_a, seg_b))

    r = rw("verify", "--dir", arch)
    err = r.stderr
    check(r.returncode == 1, "verify of the damaged index: exit %d, expected 1" % r.returncode)
    check(re.search(rb"\(id %d\): the posting of port 25 \(kind 3\) is damaged" % seg_a, err),
          "verify names segment %d and port 25: %r" % (seg_a, err))
    check(re.search(rb"\(id %d\): the posting of ip proto 6 \(kind 4\) is damaged" % seg_b, err),
          "verify names segment %d and ip proto 6: %r" % (seg_b, err))
    check(b"2 problems" in err, "verify counts 2 problems: %r" % err)

    # (point, filter, damaged segment the answer must name, or None)
    cases = [("smtp", "port 25", seg_a), ("smtp", "not port 25", seg_a),
             ("smtp", "host 74.53.140.153 and port 25", seg_a), ("smtp", "udp", None),
             ("rej", "tcp", seg_b), ("rej", "tcp and not src host 10.7.29.101", seg_b),
             ("rej", "port 25", None)]
    port = free_port()
    log = os.path.join(tmp, "rewindd.log")
    d = subprocess.Popen([REWINDD, "--dir", arch, "--listen", "127.0.0.1:%d" % port,
                          "--log", log], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)

    def text():
        return open(log, "rb").read() if os.path.exists(log) else b""

    deadline = time.time() + 20
    while time.time() < deadline and b" ready;" not in text() and d.poll() is None:
        time.sleep(0.05)
    check(b" ready;" in text(), "rewindd did not start: %r" % text()[-300:])
    try:
        for point, flt, seg in cases:
            want = tcpdump(FILES[point], flt)
            check(len(want) > 24, "%s: tcpdump finds packets" % flt)
            # through the daemon's socket
            out = os.path.join(tmp, "out.pcap")
            before, warned = len(ANSWER.findall(text())), {s: len(warn_of(text(), s))
                                                           for s in (seg_a, seg_b)}
            if os.path.exists(out):
                os.unlink(out)
            r = rw("query", "--dir", arch, "--point", point, "-w", out, flt)
            got = open(out, "rb").read() if os.path.exists(out) else b""
            check(r.returncode == 0 and got == want,
                  "%s %r via the daemon: exit %d, %d bytes, tcpdump %d: %r" %
                  (point, flt, r.returncode, len(got), len(want), r.stderr))
            check(len(ANSWER.findall(text())) == before + 1,
                  "%s %r: the daemon did not answer" % (point, flt))
            # over HTTP
            q = urllib.parse.urlencode({"filter": flt, "point": point})
            try:
                body = urllib.request.urlopen("http://127.0.0.1:%d/api/v1/packets?%s" %
                                              (port, q), timeout=30).read()
            except (OSError, http.client.HTTPException) as e:
                body = repr(e).encode()
            check(body == want, "%s %r over HTTP: %d bytes, tcpdump %d" %
                  (point, flt, len(body), len(want)))
            # the HTTP answer is logged (damage first) once its last byte is sent
            deadline = time.time() + 10
            while time.time() < deadline and len(ANSWER.findall(text())) < before + 2:
                time.sleep(0.02)
            for s in (seg_a, seg_b):
                n = len(warn_of(text(), s)) - warned[s]
                check(n == (2 if s == seg else 0),
                      "%s %r: %d warn lines naming segment %d in the daemon's log, expected %d"
                      % (point, flt, n, s, 2 if s == seg else 0))
            # read locally: the same bytes, one warn line on stderr, exit 0
            if os.path.exists(out):
                os.unlink(out)
            r = rw("query", "--dir", arch, "--local", "--point", point, "-w", out, flt)
            got = open(out, "rb").read() if os.path.exists(out) else b""
            lines = r.stderr.splitlines()
            check(r.returncode == 0 and got == want,
                  "%s %r --local: exit %d, %d bytes, tcpdump %d: %r" %
                  (point, flt, r.returncode, len(got), len(want), r.stderr))
            if seg is None:
                check(lines == [], "%s %r --local: stderr %r" % (point, flt, r.stderr))
            else:
                check(len(lines) == 1 and warn_of(r.stderr, seg) and b"reindex" in lines[0],
                      "%s %r --local: one warn line naming segment %d: %r" %
                      (point, flt, seg, r.stderr))
    finally:
        d.terminate()
        check(d.wait(timeout=30) == 0, "rewindd stops cleanly")

    r = rw("reindex", "--dir", arch)
    check(r.returncode == 0, "reindex: %r" % r.stderr[-300:])
    r = rw("verify", "--dir", arch)
    check(r.returncode == 0, "verify after reindex: %r" % r.stderr[-300:])
    out = os.path.join(tmp, "out.pcap")
    r = rw("query", "--dir", arch, "--local", "--point", "smtp", "-w", out, "port 25")
    check(r.returncode == 0 and r.stderr == b"" and
          open(out, "rb").read() == tcpdump(SMTP, "port 25"), "port 25 after reindex: %r" % r.stderr)
    if not harness.failed:
        shutil.rmtree(tmp, ignore_errors=True)
    harness.finish("test_damaged_index")


if __name__ == "__main__":
    main()
