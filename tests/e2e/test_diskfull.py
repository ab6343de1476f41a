#!/usr/bin/env python3
"""Disk full: rewindd capturing from a veth pair in a network namespace this
test creates, into an archive on a small tmpfs it mounts.

- no quota: a filler file takes the rest of the disk; the capture that follows
  pauses (one log line, rewind_capture_paused 1) while the daemon keeps
  serving what it stored before; the filler goes, capture resumes by itself
  (rewind_capture_paused 0) and a capture sent then is stored packet for
  packet; the drops are counted; verify is clean after SIGTERM;
- --quota 100%: more is sent than fits, retention deletes the oldest segments
  and capture never pauses;
- rewind import into a full tmpfs: exit 1 with one line naming the archive
  and what to do, the records committed before it answered, verify clean.

Every wait polls with a deadline; tmpfs mounts and the namespace are always
removed."""
import collections
import os
import re
import signal
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "lib"))
import harness  # noqa: E402
import pcaputil  # noqa: E402
from harness import BIN, PCAPS, REWIND, check, frames, sh, tcpdump  # noqa: E402
NS = "rwdf%d" % os.getpid()
BEFORE = os.path.join(PCAPS, "good", "smtp.pcap")
AFTER = os.path.join(PCAPS, "good", "sip-tcp.pcap")

def nsexec(*args, **kw):
    return harness.nsexec(NS, *args, **kw)


def setup_ns():
    for cmd in (["ip", "netns", "add", NS],
                ["ip", "netns", "exec", NS, "ip", "link", "add", "rwd0", "type", "veth", "peer",
                 "name", "rwd1"],
                ["ip", "netns", "exec", NS, "sysctl", "-qw", "net.ipv6.conf.all.disable_ipv6=1"],
                ["ip", "netns", "exec", NS, "sysctl", "-qw", "net.ipv6.conf.default.disable_ipv6=1"],
                ["ip", "netns", "exec", NS, "ip", "link", "set", "rwd0", "mtu", "9000", "up"],
                ["ip", "netns", "exec", NS, "ip", "link", "set", "rwd1", "mtu", "9000", "up"],
                ["ip", "netns", "exec", NS, "ip", "link", "set", "lo", "up"]):
        r = sh(*cmd)
        if r.returncode != 0:
            raise RuntimeError("%s: %s" % (" ".join(cmd), r.stderr.decode().strip()))


def mount_tmpfs(path, size):
    os.makedirs(path)
    r = sh("mount", "-t", "tmpfs", "-o", "size=%s" % size, "tmpfs", path)
    if r.returncode != 0:
        raise RuntimeError("mount tmpfs: %s" % r.stderr.decode().strip())


def unmount(path):
    if os.path.ismount(path):
        r = sh("umount", path)
        if r.returncode != 0:
            sh("umount", "-l", path)


def wait_for(fn, seconds):
    deadline = time.time() + seconds
    while True:
        v = fn()
        if v or time.time() > deadline:
            return v
        time.sleep(0.2)


def log_has(path, needle):
    with open(path, "rb") as f:
        return needle in f.read()


def http(path):
    r = nsexec("curl", "-s", "--max-time", "10", "http://127.0.0.1:8800" + path)
    return r.stdout if r.returncode == 0 else None


def metric(name, point):
    body = http("/metrics")
    if body is None:
        return None
    m = re.search(r'^%s\{point="%s"\} (\d+)$' % (name, point), body.decode(), re.M)
    return int(m.group(1)) if m else None


def send(path, pps=2000):
    r = nsexec("timeout", "120", "tcpreplay", "-q", "-i", "rwd1", "--pps=%d" % pps, path)
    check(r.returncode == 0, "tcpreplay %s: %s" % (path, r.stderr.decode()))


def query(arch, *args):
    r = sh(REWIND, "query", "--dir", arch, "--point", "live", *args)
    return r.stdout if r.returncode == 0 else None


def start_daemon(arch, log, *opts):
    with open(log, "wb") as lf:
        d = subprocess.Popen(["ip", "netns", "exec", NS, os.path.join(BIN, "rewindd"), "--dir",
                              arch, "-i", "rwd0=live"] + list(opts), stdout=lf, stderr=lf)
    if not check(wait_for(lambda: log_has(log, b"ready"), 15), "rewindd did not start: " +
                 open(log).read()):
        raise RuntimeError("rewindd did not start")
    return d


def stop_daemon(d, log):
    if os.environ.get("VERBOSE"):
        print(open(log).read()[-6000:])
    d.send_signal(signal.SIGTERM)
    try:
        rc = d.wait(timeout=30)
    except subprocess.TimeoutExpired:
        d.kill()
        d.wait()
        rc = -9
    check(rc == 0, "rewindd exit status %d after SIGTERM:\n%s" % (rc, open(log).read()[-3000:]))


def verify(arch, what):
    r = sh(REWIND, "verify", "--dir", arch)
    check(r.returncode == 0 and b" 0 problems" in r.stderr,
          "%s: verify: %r %r" % (what, r.stdout[-2000:], r.stderr[-2000:]))


def test_pause_resume(tmp):
    """No quota: a full disk pauses capture, freeing space resumes it."""
    mnt = os.path.join(tmp, "full")
    mount_tmpfs(mnt, "32m")
    arch = os.path.join(mnt, "arch")
    log = os.path.join(tmp, "pause.log")
    daemon = None
    try:
        daemon = start_daemon(arch, log)
        before = frames(tcpdump(BEFORE))
        send(BEFORE)
        got = wait_for(lambda: (lambda q: q is not None and not (before - frames(q)))(
            query(arch)), 15)
        check(got, "packets sent before the disk filled are not all queryable")
        stored = query(arch)
        # Fill the disk while the daemon is idle, then send: the writer meets
        # the full disk at its next write.
        filler = os.path.join(mnt, "filler")
        sh("dd", "if=/dev/zero", "of=" + filler, "bs=1M")
        st = os.statvfs(mnt)
        check(st.f_bavail * st.f_frsize < (1 << 20), "filler left %d bytes free" %
              (st.f_bavail * st.f_frsize))
        send(AFTER)
        check(wait_for(lambda: log_has(log, b"PAUSED"), 15),
              "no pause logged:\n" + open(log).read()[-3000:])
        check(wait_for(lambda: metric("rewind_capture_paused", "live") == 1, 10),
              "rewind_capture_paused is not 1 while the disk is full")
        check(daemon.poll() is None, "rewindd died on a full disk:\n" + open(log).read()[-3000:])
        text = open(log).read()
        pause_lines = [ln for ln in text.splitlines() if "PAUSED" in ln]
        check(len(pause_lines) == 1 and arch in pause_lines[0] and "free" in pause_lines[0] and
              "--quota" in pause_lines[0],
              "one pause line naming the archive, the free space and what to do: %r" %
              pause_lines)
        # What was stored before is still answered, directly and over HTTP.
        q = query(arch)
        check(q is not None and not (before - frames(q)) and not (frames(q) - before),
              "while paused, the archive does not answer exactly what was stored before")
        h = http("/api/v1/packets?point=live")
        check(h is not None and h == q, "while paused, HTTP answers differ from the archive")
        check(q == stored, "while paused, the answer changed")
        drops = metric("rewind_capture_paused_drops_total", "live")
        check(drops is not None and drops > 0, "paused drops not counted: %r" % drops)
        status = http("/api/v1/status")
        check(status is not None and b'"paused": true' in status.replace(b'":true', b'": true'),
              "status does not show the pause: %r" % status)
        time.sleep(CAP_RETRY + 1)  # retries while still full log nothing more
        check(open(log).read().count("PAUSED") == 1, "more than one pause line while full")
        # Space returns: capture resumes by itself.
        os.unlink(filler)
        check(wait_for(lambda: metric("rewind_capture_paused", "live") == 0, 20),
              "capture did not resume after the filler was deleted:\n" + open(log).read()[-2000:])
        check(log_has(log, b"resumed"), "no resume logged")
        t_resume = time.time_ns()
        after = frames(tcpdump(AFTER))
        send(AFTER)
        got = wait_for(lambda: (lambda q: q is not None and not (after - frames(q)))(
            query(arch, "--from", "%d.%09d" % divmod(t_resume, 10**9))), 15)
        check(got, "packets sent after the resume are not all queryable")
        q = query(arch, "--from", "%d.%09d" % divmod(t_resume, 10**9))
        check(q is not None and frames(q) == after,
              "after the resume the archive does not hold exactly what was sent")
        stop_daemon(daemon, log)
        daemon = None
        q = query(arch)
        check(q is not None and not (before - frames(q)) and not (after - frames(q)),
              "after SIGTERM packets stored before or after the pause are missing")
        verify(arch, "after a pause and resume")
        st = sh(REWIND, "status", "--dir", arch).stdout.decode()
        m = re.search(r"^live .* (\d+)/(\d+)$", st, re.M)
        check(m and int(m.group(2)) >= drops, "status does not count the paused drops as queue "
              "drops (%d):\n%s" % (drops or 0, st))
    finally:
        if daemon:
            daemon.kill()
            daemon.wait()
        unmount(mnt)


def test_quota(tmp):
    """--quota 100%: retention makes room, capture never pauses."""
    mnt = os.path.join(tmp, "quota")
    mount_tmpfs(mnt, "32m")
    arch = os.path.join(mnt, "arch")
    log = os.path.join(tmp, "quota.log")
    big = os.path.join(tmp, "big.pcap")
    sh(os.path.join(BIN, "trafficgen"), "--seed", "7", "--bytes", "48M", "-o", big)
    daemon = None
    try:
        daemon = start_daemon(arch, log, "--quota", "100%", "--segment-bytes", "1M")
        sent = pcaputil.read_pcap(tcpdump(big))[1]
        send(big, pps=10000)
        newest = collections.Counter(pcaputil.packet_data(r) for _, r in sent[-2000:])
        got = wait_for(lambda: (lambda q: q is not None and not (newest - frames(q)))(
            query(arch)), 20)
        check(got, "the newest packets sent are not all queryable")
        check(daemon.poll() is None, "rewindd died:\n" + open(log).read()[-3000:])
        check(not log_has(log, b"PAUSED"), "capture paused although retention could make room:\n"
              + open(log).read()[-3000:])
        check(metric("rewind_capture_paused", "live") == 0, "rewind_capture_paused is not 0")
        check(metric("rewind_capture_paused_drops_total", "live") == 0, "paused drops counted")
        q = query(arch, "--count")
        check(q is not None and 0 < int(q) < len(sent),
              "retention deleted nothing (%r of %d packets kept)" % (q, len(sent)))
        stop_daemon(daemon, log)
        daemon = None
        st = sh(REWIND, "status", "--dir", arch).stdout.decode()
        check(re.search(r"^live .* 0/0$", st, re.M), "drops while retention made room:\n" + st)
        verify(arch, "after retention on a full disk")
    finally:
        if daemon:
            daemon.kill()
            daemon.wait()
        unmount(mnt)


def test_import(tmp):
    """rewind import into a full tmpfs."""
    mnt = os.path.join(tmp, "imp")
    mount_tmpfs(mnt, "24m")
    arch = os.path.join(mnt, "arch")
    big = os.path.join(tmp, "imp.pcap")
    sh(os.path.join(BIN, "trafficgen"), "--seed", "3", "--bytes", "40M", "-o", big)
    try:
        r = sh(REWIND, "import", "--quiet", "--dir", arch, "--point", "imp", big)
        err = r.stderr.decode()
        check(r.returncode == 1 and err.count("\n") == 1 and arch in err and
              "free space" in err and "--quota" in err,
              "import into a full disk: exit %d, %r" % (r.returncode, err))
        m = re.search(r"the (\d+) packets of this file committed before it are kept", err)
        kept = int(m.group(1)) if m else 0
        check(kept > 0, "no packets committed before the disk filled: %r" % err)
        want = sh("tcpdump", "--time-stamp-precision=nano", "-r", big, "-c", str(kept), "-w",
                  "-").stdout
        got = sh(REWIND, "query", "--dir", arch, "--point", "imp").stdout
        check(got == want, "the %d committed records are not answered as imported (%d vs %d "
              "bytes)" % (kept, len(got), len(want)))
        verify(arch, "after an import into a full disk")
        # With no room at all (not even for the index) it fails the same way.
        sh("dd", "if=/dev/zero", "of=" + os.path.join(mnt, "filler"), "bs=1M")
        r = sh(REWIND, "import", "--quiet", "--dir", arch, "--point", "imp2", BEFORE)
        err = r.stderr.decode()
        check(r.returncode == 1 and err.count("\n") == 1 and arch in err and "free space" in err,
              "import with no space at all: exit %d, %r" % (r.returncode, err))
        got2 = sh(REWIND, "query", "--dir", arch, "--point", "imp").stdout
        check(got2 == want, "a failed import changed what was stored")
        os.unlink(os.path.join(mnt, "filler"))
        verify(arch, "after an import with no space at all")
    finally:
        unmount(mnt)


CAP_RETRY = 2  # CAP_LIVE_RETRY_S in capture/cap.h


def main():
    if os.geteuid() != 0:
        print("diskfull: needs root for tmpfs and ip netns; 0 passed, 1 failed")
        return 1
    tmp = tempfile.mkdtemp(prefix="rewind-diskfull-")
    try:
        setup_ns()
        test_pause_resume(tmp)
        test_quota(tmp)
        test_import(tmp)
    except RuntimeError as e:
        check(False, "diskfull setup: %s" % e)
    finally:
        sh("ip", "netns", "del", NS)
        for d in ("full", "quota", "imp"):
            unmount(os.path.join(tmp, d))
        sh("rm", "-rf", tmp)
    print("diskfull: %d passed, %d failed" % (harness.passed, len(harness.failed)))
    return 1 if harness.failed else 0


if __name__ == "__main__":
    sys.exit(main())
