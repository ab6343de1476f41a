#!/usr/bin/env python3
"""Live capture: rewindd on one end of a veth pair inside a network namespace
this test creates; tcpreplay sends known captures from the other end (bounded
by the files and a timeout). Every packet sent must be answered by a query
within 2 s of being sent, while rewindd runs; after SIGTERM the sealed
archive must answer the same. A burst larger than the part of the capture
ring that rewindd keeps reusing (20 MiB), sent at tcpreplay's top speed,
must come back unaltered and in order, less only the drops that status
reports; also with a 16 MiB kernel ring, where a drainer thread stages
packets while a commit is built. Nothing leaves the namespace."""
import collections
import os
import signal
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "lib"))
import harness  # noqa: E402
import pcaputil  # noqa: E402
from harness import BIN, PCAPS, REWIND, check, frames, sh  # noqa: E402

NS = "rwlive%d" % os.getpid()
SENDS = [os.path.join(PCAPS, "good", f) for f in ("smtp.pcap", "sip-tcp.pcap",
                                                   "output-eve-ftp-data.pcap")]


def nsexec(*args, **kw):
    return harness.nsexec(NS, *args, **kw)


def setup():
    for cmd in (["ip", "netns", "add", NS],
                ["ip", "netns", "exec", NS, "ip", "link", "add", "rwl0", "type", "veth", "peer",
                 "name", "rwl1"],
                ["ip", "netns", "exec", NS, "sysctl", "-qw", "net.ipv6.conf.all.disable_ipv6=1"],
                ["ip", "netns", "exec", NS, "sysctl", "-qw", "net.ipv6.conf.default.disable_ipv6=1"],
                ["ip", "netns", "exec", NS, "ip", "link", "set", "rwl0", "mtu", "9000", "up"],
                ["ip", "netns", "exec", NS, "ip", "link", "set", "rwl1", "mtu", "9000", "up"]):
        r = sh(*cmd)
        if r.returncode != 0:
            raise RuntimeError("%s: %s" % (" ".join(cmd), r.stderr.decode().strip()))


def wait_log(path, needle, deadline):
    while time.time() < deadline:
        with open(path, "rb") as f:
            if needle in f.read():
                return True
        time.sleep(0.05)
    return False


def drops(arch):
    """The point's kernel and queue drops as status reports them."""
    st = sh(REWIND, "status", "--dir", arch).stdout.decode()
    for line in st.splitlines():
        f = line.split()
        if f and f[0] == "live" and "/" in f[-1]:
            k, q = f[-1].split("/")
            return int(k) + int(q)
    return None


def burst_check(tmp, arch):
    """48 MiB at top speed: more than the ring's reused front, so its records
    wrap while the writer is busy and while it is idle."""
    burst = os.path.join(tmp, "burst.pcap")
    r = sh(os.path.join(BIN, "trafficgen"), "--seed", "7", "--bytes", "48M", "-o", burst)
    check(r.returncode == 0, "trafficgen: %s" % r.stderr.decode())
    sent = [pcaputil.packet_data(x) for _, x in pcaputil.read_pcap(open(burst, "rb").read())[1]]
    before = drops(arch)
    t0 = "%.9f" % time.time()
    r = nsexec("timeout", "60", "tcpreplay", "-q", "-i", "rwl1", "--topspeed", burst)
    check(r.returncode == 0, "tcpreplay burst: %s" % r.stderr.decode())
    # The writer flushes within a second or so; drops are recorded once a second.
    deadline = time.time() + 10
    while True:
        q = sh(REWIND, "query", "--dir", arch, "--point", "live", "--from", t0)
        got = [pcaputil.packet_data(x) for _, x in pcaputil.read_pcap(q.stdout)[1]] \
            if q.returncode == 0 else []
        lost = drops(arch)
        if (len(got) + (lost or 0) - (before or 0) >= len(sent)) or time.time() > deadline:
            break
        time.sleep(0.5)
    # In order, unaltered: what came back is the burst with at most the
    # reported drops left out.
    it = iter(sent)
    in_order = all(any(g == x for x in it) for g in got)
    dropped = (lost or 0) - (before or 0)
    check(in_order and len(got) == len(sent) - dropped and len(got) > 0,
          "burst of %d packets: %d came back%s, status reports %d drops (a loss the kernel "
          "counts nowhere, as on the veth itself, also shows here)" %
          (len(sent), len(got), "" if in_order else " out of order or altered", dropped))


def main():
    if os.geteuid() != 0:
        print("live: needs root for ip netns; 0 passed, 1 failed")
        return 1
    tmp = tempfile.mkdtemp(prefix="rewind-live-")
    arch = os.path.join(tmp, "arch")
    log = os.path.join(tmp, "rewindd.log")
    daemon = None
    try:
        setup()
        with open(log, "wb") as lf:
            daemon = subprocess.Popen(["ip", "netns", "exec", NS, os.path.join(BIN, "rewindd"),
                                       "--dir", arch, "-i", "rwl0=live"], stdout=lf, stderr=lf)
        check(wait_log(log, b"ready", time.time() + 15), "rewindd did not start: " +
              open(log).read())
        # Before its first packet, the live point is in status, with zero counts.
        st = sh(REWIND, "status", "--dir", arch).stdout.decode()
        rows = [ln.split() for ln in st.splitlines() if ln.startswith("live ")]
        check("owned by a running rewindd" in st and len(rows) == 1 and rows[0][1] == "EN10MB" and
              rows[0][3] == "0", "a live point without packets is in status:\n" + st)
        # -i IFACE=POINT is parsed from a copy: ps shows the command as typed.
        with open("/proc/%d/cmdline" % daemon.pid, "rb") as f:
            argv = f.read().split(b"\0")
        check(b"rwl0=live" in argv, "rewindd's argv was overwritten: %r" % argv)
        # What only an export or a federation uses is loaded when configured:
        # a capturing daemon without them does not map libcurl (with its
        # thirty-odd libraries), libfixbuf or GLib (3.6 MiB resident).
        with open("/proc/%d/maps" % daemon.pid) as f:
            maps = f.read()
        extra = [lib for lib in ("libcurl", "libfixbuf", "libglib") if lib in maps]
        check(not extra, "a rewindd without exports maps %s" % extra)
        sent = collections.Counter()
        for f in SENDS:
            want = frames(sh("tcpdump", "-r", f, "-w", "-").stdout)
            r = nsexec("timeout", "60", "tcpreplay", "-q", "-i", "rwl1", "--pps=2000", f)
            t_sent = time.time()
            check(r.returncode == 0, "tcpreplay %s: %s" % (f, r.stderr.decode()))
            sent += want
            # Within 2 s of the last packet sent, every packet must be answered.
            got = collections.Counter()
            while True:
                q = sh(REWIND, "query", "--dir", arch, "--point", "live")
                if q.returncode == 0:
                    got = frames(q.stdout)
                if not (sent - got) or time.time() > t_sent + 2.0:
                    break
                time.sleep(0.1)
            elapsed = time.time() - t_sent
            missing = sum((sent - got).values())
            check(missing == 0 and elapsed <= 2.0 + 0.5,
                  "after sending %s: %d of %d packets not queryable %.2f s later (%s)" %
                  (os.path.basename(f), missing, sum(sent.values()), elapsed,
                   q.stderr.decode().strip()))
        # A filter over the live archive agrees with tcpdump on the same answer.
        q = sh(REWIND, "query", "--dir", arch, "--point", "live", "port", "25")
        live_all = sh(REWIND, "query", "--dir", arch, "--point", "live").stdout
        t = subprocess.run(["tcpdump", "--time-stamp-precision=nano", "-r", "-", "-w", "-",
                            "port", "25"], input=live_all, capture_output=True)
        check(q.returncode == 0 and q.stdout == t.stdout and len(q.stdout) > 24,
              "live: 'port 25' differs from tcpdump over the same packets")
        # Import into the archive the daemon owns: handed to the daemon.
        smtp = SENDS[0]
        r = sh(REWIND, "import", "--quiet", "--dir", arch, "--point", "imported", smtp)
        check(r.returncode == 0, "import while rewindd runs: %s" % r.stderr.decode())
        q = sh(REWIND, "query", "--dir", arch, "--point", "imported")
        check(q.stdout == sh("tcpdump", "--time-stamp-precision=nano", "-r", smtp, "-w",
                             "-").stdout, "import handed to rewindd: answer differs from tcpdump")
        r = sh(REWIND, "import", "--quiet", "--dir", arch, "--point", "live", smtp)
        check(r.returncode != 0 and b"being written" in r.stderr,
              "import into the live point must be refused: %r" % r.stderr)
        check(drops(arch) == 0, "live: status shows the point without drops:\n" +
              sh(REWIND, "status", "--dir", arch).stdout.decode())
        burst_check(tmp, arch)
        daemon.send_signal(signal.SIGTERM)
        rc = daemon.wait(timeout=20)
        daemon = None
        check(rc == 0, "rewindd exit code %d after SIGTERM: %s" % (rc, open(log).read()))
        check(b"stopped" in open(log, "rb").read(), "rewindd log has no stop line")
        after = sh(REWIND, "query", "--dir", arch, "--point", "live")
        check(after.returncode == 0 and not (sent - frames(after.stdout)),
              "after SIGTERM the sealed archive lost packets")
        st = sh(REWIND, "status", "--dir", arch).stdout.decode()
        check("(0 open," in st, "segments sealed after SIGTERM:\n" + st)
        # A kernel ring under 64 MiB: a drainer stages packets while a
        # commit is built. The same burst, into an archive of its own.
        arch2 = os.path.join(tmp, "arch16")
        with open(log, "wb") as lf:
            daemon = subprocess.Popen(["ip", "netns", "exec", NS, os.path.join(BIN, "rewindd"),
                                       "--dir", arch2, "-i", "rwl0=live", "--buffer-size", "16M"],
                                      stdout=lf, stderr=lf)
        check(wait_log(log, b"ready", time.time() + 15), "rewindd --buffer-size 16M did not "
              "start: " + open(log).read())
        burst_check(tmp, arch2)
        daemon.send_signal(signal.SIGTERM)
        rc = daemon.wait(timeout=20)
        daemon = None
        check(rc == 0, "rewindd --buffer-size 16M exit code %d after SIGTERM" % rc)
    except RuntimeError as e:
        check(False, "live setup: %s" % e)
    finally:
        if daemon:
            daemon.kill()
            daemon.wait()
        sh("ip", "netns", "del", NS)
        sh("rm", "-rf", tmp)
    print("live: %d passed, %d failed" % (harness.passed, len(harness.failed)))
    return 1 if harness.failed else 0


if __name__ == "__main__":
    sys.exit(main())
