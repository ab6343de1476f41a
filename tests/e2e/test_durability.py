#!/usr/bin/env python3
"""Durability: quota retention with a legal hold, kill -9 of `rewind import`
and of `rewindd` at random moments (20 bounded rounds) with verify and a
differential check afterwards, and corrupted archive bytes."""
import os
import random
import signal
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "lib"))
import harness  # noqa: E402
import pcaputil  # noqa: E402
from harness import BIN, PCAPS, REWIND, check, rw  # noqa: E402

def gen(path, size, seed, start=1700000000, rate=20000):
    subprocess.run([os.path.join(BIN, "trafficgen"), "--seed", str(seed), "--bytes", size,
                    "--rate", str(rate), "--start", str(start), "-o", path],
                   check=True, capture_output=True)
    return pcaputil.read_pcap(open(path, "rb").read())


def du(path):
    total = 0
    for d, _, files in os.walk(path):
        for f in files:
            try:
                total += os.path.getsize(os.path.join(d, f))
            except OSError:
                pass
    return total


def test_quota(tmp):
    arch = os.path.join(tmp, "quota")
    f1 = os.path.join(tmp, "q1.pcap")
    f2 = os.path.join(tmp, "q2.pcap")
    hdr, recs1, _ = gen(f1, "48M", 11)
    _, recs2, _ = gen(f2, "48M", 12, start=1700000100)
    first, last = recs1[0][0], recs1[-1][0]
    hold_lo = first + (last - first) // 2
    hold_hi = hold_lo + 200 * 10**6
    r = rw("hold", "--dir", arch, "--from", "%d.%09d" % divmod(hold_lo, 10**9), "--to",
           "%d.%09d" % divmod(hold_hi, 10**9), "--reason", "case 42")
    check(r.returncode == 0, "hold: %r" % r.stderr)
    quota, seg = 24 << 20, 4 << 20
    for f in (f1, f2):
        r = rw("import", "--quiet", "--dir", arch, "--quota", "24M", "--segment-bytes", "4M", f)
        check(r.returncode == 0, "import over quota: %r" % r.stderr)
        used = du(os.path.join(arch, "segments")) + du(os.path.join(arch, "index"))
        check(used <= quota + seg, "disk use %d exceeds the quota %d by more than a segment" %
              (used, quota))
    # the oldest, unheld data is gone from queries and status
    r = rw("query", "--dir", arch, "--count", "--to", "%d.%09d" % divmod(first + 10**8, 10**9))
    check(r.returncode == 0 and r.stdout.strip() == b"0", "oldest data still answered: %r" %
          r.stdout)
    st = rw("status", "--dir", arch).stdout.decode()
    check("reaches back to" in st and "holds     1" in st, "status shows retention:\n" + st)
    # the held window survives, packet for packet
    want = pcaputil.window(hdr, recs1, hold_lo, hold_hi)
    got = rw("query", "--dir", arch, "--from", "%d.%09d" % divmod(hold_lo, 10**9), "--to",
             "%d.%09d" % divmod(hold_hi, 10**9)).stdout
    check(got == want and len(want) > 24, "held window lost packets (%d vs %d bytes)" %
          (len(got), len(want)))
    # the newest data is all there: the last eighth of the second file (6 MB
    # of a 24 MB quota that also pays for the held segments and the index)
    lo2 = recs2[7 * len(recs2) // 8][0]
    want = pcaputil.window(hdr, recs2, lo2, None)
    got = rw("query", "--dir", arch, "--from", "%d.%09d" % divmod(lo2, 10**9)).stdout
    check(got == want, "newest data incomplete")
    r = rw("verify", "--dir", arch)
    check(r.returncode == 0, "verify after retention: %r" % r.stderr)
    r = rw("import", "--quiet", "--dir", arch, "--quota", "5%x", f1)
    check(r.returncode == 2 and b"--quota" in r.stderr, "bad --quota rejected: %r" % r.stderr)


def count(arch, point):
    r = rw("query", "--dir", arch, "--point", point, "--count")
    return int(r.stdout) if r.returncode == 0 and r.stdout.strip() else 0


def test_crash_loop(tmp):
    arch = os.path.join(tmp, "crash")
    src = os.path.join(tmp, "crash.pcap")
    hdr, recs, _ = gen(src, "40M", 21)
    rng = random.Random(1234)
    rounds = 20
    for i in range(rounds):
        point = "r%d" % i
        daemon = None
        if i % 2:
            # kill -9 the daemon while it imports a handed-over file
            log = open(os.path.join(tmp, "rewindd-%d.log" % i), "wb")
            daemon = subprocess.Popen([os.path.join(BIN, "rewindd"), "--dir", arch, "--listen",
                                       "none"], stdout=log, stderr=log)
            deadline = time.time() + 10
            while not os.path.exists(os.path.join(arch, "rewindd.sock")) and time.time() < deadline:
                time.sleep(0.02)
        imp = subprocess.Popen([REWIND, "import", "--quiet", "--dir", arch, "--point", point, src],
                               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        time.sleep(rng.uniform(0.05, 0.6))
        acked = count(arch, point)  # what a reader saw committed before the kill
        victim = daemon if daemon else imp
        victim.send_signal(signal.SIGKILL)
        victim.wait()
        if daemon:
            imp.wait()
            log.close()
        # reopen (recovery runs when the next writer opens), then check
        r = rw("status", "--dir", arch)
        r = rw("import", "--quiet", "--dir", arch, "--point", "probe",
               os.path.join(PCAPS, "good", "sip-tcp.pcap"))
        check(r.returncode == 0, "round %d: archive did not reopen: %r" % (i, r.stderr))
        r = rw("verify", "--dir", arch)
        check(r.returncode == 0, "round %d: verify after kill -9: %r" % (i, r.stderr[-500:]))
        got = rw("query", "--dir", arch, "--point", point).stdout if acked else b""
        n = len(pcaputil.read_pcap(got)[1]) if got else 0
        check(n >= acked, "round %d: %d packets acknowledged before the kill, %d after" %
              (i, acked, n))
        if n:
            check(got == hdr + b"".join(r for _, r in recs[:n]),
                  "round %d: the kept packets are not the file's first %d" % (i, n))


def test_corruption(tmp):
    arch = os.path.join(tmp, "corrupt")
    a = os.path.join(PCAPS, "good", "smtp.pcap")
    b = os.path.join(PCAPS, "good", "output-eve-ftp-data.pcap")
    rw("import", "--quiet", "--dir", arch, "--point", "a", a)
    rw("import", "--quiet", "--dir", arch, "--point", "b", b)
    seg = [os.path.join(d, f) for d, _, fs in os.walk(os.path.join(arch, "segments", "b"))
           for f in fs][0]
    data = bytearray(open(seg, "rb").read())
    # flip bits in the caplen of a record in the middle
    _, recs, _ = pcaputil.read_pcap(bytes(data))
    off = 24 + sum(len(r) for _, r in recs[:len(recs) // 2])
    data[off + 10] ^= 0x5a
    open(seg, "wb").write(bytes(data))
    # the damaged record is left out and named; every other packet answers
    r = rw("query", "--dir", arch, "--point", "b")
    want = pcaputil.read_pcap(subprocess.run(
        ["tcpdump", "--time-stamp-precision=nano", "-r", b, "-w", "-"],
        capture_output=True).stdout)
    lines = r.stderr.splitlines()
    check(r.returncode == 3 and len(lines) == 1 and os.path.relpath(seg, arch).encode() in lines[0]
          and b"record header disagrees with the index" in lines[0],
          "query over a corrupt segment: exit %d %r" % (r.returncode, r.stderr))
    kept = [rec for _, rec in want[1]]
    kept.remove(recs[len(recs) // 2][1])
    check(r.stdout == want[0] + b"".join(kept),
          "query over a corrupt segment: every other packet answers")
    r = rw("verify", "--dir", arch)
    check(r.returncode == 1 and b"packet" in r.stderr, "verify finds the flipped bits: %r" %
          r.stderr)
    r = rw("query", "--dir", arch, "--point", "a")
    check(r.returncode == 0 and r.stdout == subprocess.run(
        ["tcpdump", "--time-stamp-precision=nano", "-r", a, "-w", "-"],
        capture_output=True).stdout, "the rest of the archive still answers")
    # a truncated RocksDB table file: a clear error, no crash
    ssts = [os.path.join(arch, "index", f) for f in os.listdir(os.path.join(arch, "index"))
            if f.endswith(".sst")]
    if ssts:
        with open(ssts[0], "r+b") as f:
            f.truncate(os.path.getsize(ssts[0]) // 2)
        want_a = subprocess.run(["tcpdump", "--time-stamp-precision=nano", "-r", a, "-w", "-"],
                                capture_output=True).stdout
        r = rw("query", "--dir", arch, "--point", "a")
        # Either the damaged table was not one the index still uses (then the
        # answer is whole), or the reader says the index is damaged and how
        # to repair it -- never a silently empty or short answer.
        check((r.returncode == 0 and r.stdout == want_a) or
              (r.returncode == 1 and len(r.stderr.splitlines()) == 1 and b"reindex" in r.stderr),
              "truncated index table: exit %d %r" % (r.returncode, r.stderr[-300:]))
        r = rw("status", "--dir", arch)
        check(r.returncode in (0, 1), "status on a damaged index: exit %d" % r.returncode)
        r = rw("reindex", "--dir", arch)
        check(r.returncode == 0, "reindex after a damaged index table: %r" % r.stderr[-300:])
        r = rw("query", "--dir", arch, "--point", "a")
        check(r.returncode == 0 and r.stdout == want_a,
              "after reindex the undamaged segments answer again: %r" % r.stderr[-300:])
    check(True, "no crash on corrupted archive bytes")


def main():
    tmp = tempfile.mkdtemp(prefix="rewind-durability-")
    try:
        test_quota(tmp)
        test_crash_loop(tmp)
        test_corruption(tmp)
    finally:
        subprocess.run(["rm", "-rf", tmp])
    print("durability: %d passed, %d failed" % (harness.passed, len(harness.failed)))
    return 1 if harness.failed else 0


if __name__ == "__main__":
    sys.exit(main())
