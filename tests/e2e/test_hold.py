#!/usr/bin/env python3
"""Legal holds while rewindd owns the archive: `rewind hold` places, lists and
releases them through DIR/rewindd.sock, and the daemon's retention keeps the
held window (and only it) while imports handed to it push the archive over
its quota. `rewind status` asks the daemon and says so."""
import os
import signal
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "lib"))
import harness  # noqa: E402
import pcaputil  # noqa: E402
from harness import REWINDD, TRAFFICGEN, check, rw  # noqa: E402


def gen(path, size, seed, start):
    subprocess.run([TRAFFICGEN, "--seed", str(seed), "--bytes", size, "--rate", "20000",
                    "--start", str(start), "-o", path], check=True, capture_output=True)
    return pcaputil.read_pcap(open(path, "rb").read())


def t(ns):
    return "%d.%09d" % divmod(ns, 10**9)


def du(path):
    return sum(os.path.getsize(os.path.join(d, f)) for d, _, fs in os.walk(path) for f in fs
               if os.path.exists(os.path.join(d, f)))


def count(arch, lo=None, hi=None):
    args = ["query", "--dir", arch, "--count"]
    if lo is not None:
        args += ["--from", t(lo)]
    if hi is not None:
        args += ["--to", t(hi)]
    r = rw(*args)
    return int(r.stdout) if r.returncode == 0 else -1


def main():
    tmp = tempfile.mkdtemp(prefix="rwhold")
    arch = os.path.join(tmp, "arch")
    f1, f2 = os.path.join(tmp, "h1.pcap"), os.path.join(tmp, "h2.pcap")
    hdr, recs1, _ = gen(f1, "48M", 21, 1700000000)
    gen(f2, "48M", 22, 1700000100)
    first, last = recs1[0][0], recs1[-1][0]
    hold_lo = first + (last - first) // 2
    hold_hi = hold_lo + 200 * 10**6
    log = os.path.join(tmp, "rewindd.log")
    d = subprocess.Popen([REWINDD, "--dir", arch, "--listen", "none", "--quota", "24M",
                          "--segment-bytes", "4M", "--log", log])
    try:
        for _ in range(100):
            if os.path.exists(os.path.join(arch, "rewindd.sock")):
                break
            time.sleep(0.05)
        # Placed through the daemon: this was "busy" before the control socket.
        r = rw("hold", "--dir", arch, "--from", t(hold_lo), "--to", t(hold_hi), "--reason",
               "case 42", "--filter", "host 10.0.0.1")
        check(r.returncode == 0 and r.stdout.startswith(b"hold 1 "),
              "hold while rewindd runs: %r %r" % (r.stdout, r.stderr))
        # A second hold over the oldest packets, released again before the
        # data arrives: retention must then be free to delete that window.
        r = rw("hold", "--dir", arch, "--from", t(first), "--to", t(first + 10**8))
        check(r.returncode == 0 and r.stdout.startswith(b"hold 2 "), "second hold: %r" % r.stderr)
        r = rw("hold", "--dir", arch, "--release", "2")
        check(r.returncode == 0 and r.stdout == b"hold 2 released\n",
              "release while rewindd runs: %r %r" % (r.stdout, r.stderr))
        r = rw("hold", "--dir", arch, "--release", "99")
        check(r.returncode == 1 and b"no hold" in r.stderr, "releasing no hold: %r" % r.stderr)
        r = rw("hold", "--dir", arch, "--release", "x")
        check(r.returncode == 2, "a bad hold number is bad usage: %r" % r.stderr)
        r = rw("hold", "--dir", arch, "--from", t(hold_hi), "--to", t(hold_lo))
        check(r.returncode == 2, "a backwards window is bad usage: %r" % r.stderr)
        r = rw("hold", "--dir", arch, "--list")
        lines = r.stdout.decode().splitlines()
        check(r.returncode == 0 and len(lines) == 1 and lines[0].startswith("hold 1 ") and
              "case 42" in lines[0] and "host 10.0.0.1" in lines[0],
              "list shows the one hold left: %r" % r.stdout)

        # Imports handed to the daemon push the archive far over its quota.
        for f in (f1, f2):
            r = rw("import", "--quiet", "--dir", arch, f)
            check(r.returncode == 0, "import through the daemon: %r" % r.stderr)
        used = du(os.path.join(arch, "segments")) + du(os.path.join(arch, "index"))
        check(used <= (24 << 20) + (4 << 20), "disk use %d over the quota by more than a segment" %
              used)
        check(count(arch, None, first + 10**8) == 0,
              "the released window was kept: retention did not run or ignored the release")
        want = pcaputil.window(hdr, recs1, hold_lo, hold_hi)
        got = rw("query", "--dir", arch, "--from", t(hold_lo), "--to", t(hold_hi)).stdout
        check(got == want and len(want) > 24,
              "held window lost packets under the daemon's retention (%d vs %d bytes)" %
              (len(got), len(want)))
        st = rw("status", "--dir", arch)
        out = st.stdout.decode()
        check(st.returncode == 0 and "owned by a running rewindd" in out and "holds     1" in out,
              "status asked the daemon:\n" + out)
    finally:
        d.send_signal(signal.SIGTERM)
        rc = d.wait(timeout=60)
    check(rc == 0, "rewindd exit status %d" % rc)
    text = open(log).read()
    check("hold 1 placed" in text and "hold 2 released" in text,
          "the daemon logs holds placed and released")
    # After the daemon: the hold is in the archive, and it reads back the same.
    r = rw("hold", "--dir", arch, "--list")
    check(r.returncode == 0 and r.stdout.startswith(b"hold 1 "), "hold kept: %r" % r.stdout)
    r = rw("verify", "--dir", arch)
    check(r.returncode == 0, "verify after retention: %r" % r.stderr[-400:])
    # Without a daemon a hold is placed and released by opening the archive.
    r = rw("hold", "--dir", arch, "--from", t(hold_lo), "--to", t(hold_hi))
    check(r.returncode == 0 and r.stdout.startswith(b"hold 3 "), "hold without a daemon: %r" %
          r.stderr)
    r = rw("hold", "--dir", arch, "--release", "3")
    check(r.returncode == 0, "release without a daemon: %r" % r.stderr)
    subprocess.run(["rm", "-rf", tmp])
    harness.finish("hold")


if __name__ == "__main__":
    main()
