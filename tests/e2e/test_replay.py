#!/usr/bin/env python3
"""rewind replay: real captures sent out of one end of a veth pair inside a
network namespace this test creates, captured on the other end by tcpdump
(the judge). Every frame must arrive byte for byte and in order, as tcpdump
reads the source file; at the recorded pace the gaps between packets, as
tcpdump timestamps them on arrival, must be within 1 ms of the recorded
gaps (we assert on the median and the 90th percentile of the per-gap error:
this is a loaded two-core machine, where a single gap may now and then be
late by a scheduling delay; the maximum is printed); --mbps and --pps must
hold their rate within 5 % over about two seconds; --loop 2 sends
everything twice; a query's answer (--dir, --from, --to, a filter) is sent
as 'tcpdump -r FILE -w - FILTER' would write it. Bad usage, interfaces,
files and link types exit 2 with a message saying what to do. Traffic is
bounded by the files (each under 1.5 MB) and timeouts; nothing leaves the
namespace."""
import os
import re
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "lib"))
import harness  # noqa: E402
import pcaputil  # noqa: E402
from harness import PCAPS, REWIND, check, sh  # noqa: E402

NS = "rwreplay%d" % os.getpid()
TX, RX = "rpl0", "rpl1"  # inside NS only, so fixed names do not clash
GOOD = os.path.join(PCAPS, "good")
EDGE = os.path.join(PCAPS, "edge")
BAD = os.path.join(PCAPS, "bad")


def nsexec(*args, **kw):
    return harness.nsexec(NS, *args, **kw)


def setup():
    # MTU 65535: the captures hold frames longer than 1514 bytes (offloads).
    for cmd in (["ip", "netns", "add", NS],
                ["ip", "netns", "exec", NS, "sysctl", "-qw", "net.ipv6.conf.all.disable_ipv6=1"],
                ["ip", "netns", "exec", NS, "sysctl", "-qw",
                 "net.ipv6.conf.default.disable_ipv6=1"],
                ["ip", "netns", "exec", NS, "ip", "link", "set", "lo", "up"],
                ["ip", "netns", "exec", NS, "ip", "link", "add", TX, "type", "veth", "peer",
                 "name", RX],
                ["ip", "netns", "exec", NS, "ip", "link", "set", TX, "mtu", "65535", "up"],
                ["ip", "netns", "exec", NS, "ip", "link", "set", RX, "mtu", "65535", "up"]):
        r = sh(*cmd)
        if r.returncode != 0:
            raise RuntimeError("%s: %s" % (" ".join(cmd), r.stderr.decode().strip()))


def judge(path, flt=""):
    """The records of a capture file as tcpdump reads it: [(ts_ns, rec)]
    (none when tcpdump cannot read its header)."""
    out = harness.tcpdump(path, flt)
    return pcaputil.read_pcap(out)[1] if out else []


def replay(tmp, args, stdin=None, timeout=60, interrupt=None):
    """Run rewind replay in the namespace with tcpdump capturing on the other
    end (SIGINT after interrupt seconds). (replay result, [(ts_ns, rec)]
    tcpdump captured)."""
    out = os.path.join(tmp, "rx.pcap")
    td = subprocess.Popen(["ip", "netns", "exec", NS, "tcpdump", "-i", RX, "-n", "-p",
                           "--time-stamp-precision=nano", "-B", "32768", "-s", "0", "-U",
                           "-w", out], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    # tcpdump says "listening on" once its socket is open.
    line = td.stderr.readline()
    cmd = ["ip", "netns", "exec", NS, "timeout", str(timeout), REWIND, "replay", "--interface",
           TX] + list(args)
    if interrupt is None:
        r = sh(*cmd, stdin=stdin)
    else:
        # ip netns exec execs, timeout passes SIGINT on to rewind
        p = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        time.sleep(interrupt)
        p.send_signal(signal.SIGINT)
        o, e = p.communicate(timeout=30)
        r = subprocess.CompletedProcess(cmd, p.returncode, o, e)
    # tcpdump's ring hands over a block of frames when it is full or a
    # second old, and drops what it holds when told to stop: wait until it
    # has written as many frames as the replay says it sent (3 s at most;
    # that count only ends the wait, the checks compare with the source).
    # (--immediate-mode would hand over each frame, but its ring holds
    # few frames of -s 0 and drops the rest of a burst.)
    sent = int(summary(r).get("packets", 0))
    deadline = time.time() + 3
    while time.time() < deadline and len(captured(out)) < sent:
        time.sleep(0.1)
    time.sleep(0.1)
    td.send_signal(signal.SIGINT)
    try:
        td.wait(timeout=10)
    except subprocess.TimeoutExpired:
        td.kill()
        td.wait()
    td.stderr.close()
    if not check(b"listening on" in line, "tcpdump did not start: %r" % line):
        return r, []
    return r, captured(out)


def captured(path):
    """The whole records tcpdump has written to path so far."""
    try:
        with open(path, "rb") as f:
            data = f.read()
    except FileNotFoundError:
        return []
    if len(data) < 24:
        return []
    try:
        return pcaputil.read_pcap(data)[1]
    except ValueError:  # a record being written
        return []


def frames(recs):
    return [pcaputil.packet_data(x) for _, x in recs]


def summary(r):
    """The summary's fields: {'packets': 12, ...} (the first number of each)."""
    d = {}
    for line in r.stdout.decode().splitlines():
        m = re.match(r"(\w+):\s+([0-9.]+)", line)
        if m:
            d[m.group(1)] = float(m.group(2))
    return d


def gap_errors(src, got, speed):
    """|arrival gap - recorded gap / speed| in ms, for every pair of successive packets."""
    gs = [(b[0] - a[0]) / speed for a, b in zip(src, src[1:])]
    gc = [b[0] - a[0] for a, b in zip(got, got[1:])]
    return sorted(abs(x - y) / 1e6 for x, y in zip(gs, gc))


def same_frames(name, r, got, src, times=1):
    ok = check(r.returncode == 0, "%s: exit %d: %s" % (name, r.returncode, r.stderr.decode()))
    ok &= check(frames(got) == frames(src) * times,
                "%s: %d frames arrived, %d sent%s" % (
                    name, len(got), len(src) * times,
                    "" if len(got) != len(src) * times else " (bytes or order differ)"))
    s = summary(r)
    ok &= check(s.get("packets") == len(src) * times and s.get("errors") == 0,
                "%s: summary %s" % (name, r.stdout.decode()))
    return ok


def paced(tmp, name, path, speed, args):
    src = judge(path)
    r, got = replay(tmp, args + [path])
    if same_frames(name, r, got, src):
        err = gap_errors(src, got, speed)
        med, p90 = statistics.median(err), err[int(len(err) * 0.9)]
        print("%s: gap error vs the recording: median %.3f ms, p90 %.3f ms, max %.3f ms "
              "(%d gaps)" % (name, med, p90, err[-1], len(err)))
        check(med <= 1.0 and p90 <= 1.0,
              "%s: gaps off the recording: median %.3f ms, p90 %.3f ms" % (name, med, p90))


def rate(tmp, name, path, args, target, unit):
    src = judge(path)
    r, got = replay(tmp, args + [path], timeout=30)
    if not same_frames(name, r, got, src):
        return
    span = (got[-1][0] - got[0][0]) / 1e9
    # Each packet's time at a fixed rate is that of the ones before it.
    if unit == "Mbit/s":
        achieved = sum(len(f) for f in frames(got)[:-1]) * 8 / span / 1e6
    else:
        achieved = (len(got) - 1) / span
    print("%s: %.3f %s over %.2f s (asked %g)" % (name, achieved, unit, span, target))
    check(abs(achieved - target) <= 0.05 * target,
          "%s: %.3f %s, asked %g" % (name, achieved, unit, target))


def nano_copy(tmp, path):
    """A nanosecond pcap of path, written by tcpdump."""
    out = os.path.join(tmp, "nano-" + os.path.basename(path))
    r = sh("tcpdump", "--time-stamp-precision=nano", "-r", path, "-w", out)
    check(r.returncode == 0 and open(out, "rb").read(4) == b"\x4d\x3c\xb2\xa1",
          "tcpdump wrote no nanosecond pcap: %s" % r.stderr.decode())
    return out


def test_sends(tmp):
    # The recorded pace: gaps of many ms (2.7 s), and a short burst.
    paced(tmp, "smtp-data-rejected --speed 1", os.path.join(GOOD, "smtp-data-rejected.pcap"),
          1, [])
    paced(tmp, "pptp --speed 1", os.path.join(GOOD, "pptp.pcap"), 1, ["--speed", "1"])
    # Nanosecond pcap (802.1Q on every frame), at twice the pace.
    paced(tmp, "datasets-06 nano --speed 2",
          nano_copy(tmp, os.path.join(GOOD, "datasets-06-state-long.pcap")), 2,
          ["--speed", "2"])
    # pcapng with a nanosecond and a microsecond interface, 347 s at 1000x.
    paced(tmp, "pcapng-multi-interface --speed 1000",
          os.path.join(EDGE, "pcapng-multi-interface.pcapng"), 1000, ["--speed", "1000"])
    # pcapng over 14 days, as fast as possible.
    path = os.path.join(GOOD, "of13_ericsson.pcapng")
    src = judge(path)
    r, got = replay(tmp, ["--topspeed", path])
    same_frames("of13_ericsson.pcapng --topspeed", r, got, src)
    check(summary(r).get("elapsed", 1e9) < 5, "--topspeed waited: %s" % r.stdout.decode())
    # Standard input, twice as one file.
    path = os.path.join(GOOD, "sip-tcp.pcap")
    with open(path, "rb") as f:
        r, got = replay(tmp, ["-"], stdin=f)
    same_frames("sip-tcp.pcap from stdin", r, got, judge(path))
    r, got = replay(tmp, ["--loop", "2", path])
    same_frames("sip-tcp.pcap --loop 2", r, got, judge(path), times=2)
    check("2 rounds of 2" in r.stdout.decode(), "--loop 2 summary: %s" % r.stdout.decode())


def test_interrupt(tmp):
    """SIGINT in a 98 s replay: it stops at once, sent frames are the file's
    first, and the summary counts them."""
    path = os.path.join(GOOD, "output-eve-ftp-data.pcap")
    src = judge(path)
    r, got = replay(tmp, [path], interrupt=2)
    n = summary(r).get("packets")
    check(r.returncode == 1 and b"interrupted" in r.stderr and n == len(got) and
          0 < len(got) < len(src) and frames(got) == frames(src)[:len(got)],
          "SIGINT: exit %d, %d frames, summary %s %s" % (r.returncode, len(got),
                                                         r.stdout.decode(), r.stderr.decode()))


def test_rates(tmp):
    rate(tmp, "--mbps 5", os.path.join(GOOD, "1000-requests-one-dropped-response.pcap"),
         ["--mbps", "5"], 5, "Mbit/s")
    rate(tmp, "--pps 1000", os.path.join(GOOD, "datasets-06-state-long.pcap"),
         ["--pps", "1000"], 1000, "packets/s")


def test_truncated_and_refused(tmp):
    # Every frame cut at 69 bytes: sent as captured, counted as truncated.
    path = os.path.join(EDGE, "babel_update_oobr.pcap")
    src = judge(path)
    r, got = replay(tmp, ["--topspeed", path])
    same_frames("babel snaplen 69", r, got, src)
    check(summary(r).get("truncated") == len(src), "truncated: %s" % r.stdout.decode())
    # A 65,630-byte jumbogram is longer than any veth MTU: refused, counted, exit 1.
    path = os.path.join(EDGE, "ipv6_jumbogram_1.pcap")
    r, got = replay(tmp, [path])
    s = summary(r)
    check(r.returncode == 1 and s.get("errors") == 1 and s.get("packets") == 0 and not got,
          "jumbogram: exit %d, %d frames: %s %s" % (r.returncode, len(got), r.stdout.decode(),
                                                    r.stderr.decode()))
    check(b"MTU" in r.stderr, "jumbogram: %s" % r.stderr.decode())


def test_query(tmp):
    """A window and a filter of an archive, as tcpdump answers them."""
    path = os.path.join(GOOD, "output-eve-ftp-data.pcap")
    arch = os.path.join(tmp, "arch")
    r = sh(REWIND, "import", "--dir", arch, path)
    check(r.returncode == 0, "import: %s" % r.stderr.decode())
    recs = judge(path, "tcp")
    lo, hi = recs[100][0], recs[len(recs) // 2][0]
    want = [x for x in recs if lo <= x[0] < hi]
    frm, to = "%d.%09d" % divmod(lo, 10**9), "%d.%09d" % divmod(hi, 10**9)
    r, got = replay(tmp, ["--topspeed", "--dir", arch, "--from", frm, "--to", to, "tcp"])
    same_frames("query --from --to tcp", r, got, want)
    r, got = replay(tmp, ["--topspeed", "--loop", "2", "--dir", arch, "--from", frm, "--to", to,
                          "tcp"])
    same_frames("query --loop 2", r, got, want, times=2)
    # A bad filter: the query's message, exit 2, nothing sent.
    r, got = replay(tmp, ["--dir", arch, "tcp", "and"])
    check(r.returncode == 2 and not got and b"rewind:" in r.stderr,
          "bad filter: exit %d, %d frames: %s" % (r.returncode, len(got), r.stderr.decode()))
    r = nsexec(REWIND, "replay", "-i", TX, "--dir", arch, "--from", "yesterday")
    check(r.returncode == 2 and b"yesterday" in r.stderr, "bad --from: %s" % r.stderr.decode())
    # The same asked of a rewindd: through DIR/rewindd.sock, and over HTTP
    # (the daemon runs in the namespace, where the replay reaches its port).
    port = harness.free_port()
    log = os.path.join(tmp, "rewindd.log")
    d = subprocess.Popen(["ip", "netns", "exec", NS, harness.REWINDD, "--dir", arch, "--listen",
                          "127.0.0.1:%d" % port, "--log", log],
                         stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.time() + 20
        while time.time() < deadline and d.poll() is None and \
                not (os.path.exists(log) and b" ready;" in open(log, "rb").read()):
            time.sleep(0.05)
        r, got = replay(tmp, ["--topspeed", "--dir", arch, "--from", frm, "--to", to, "tcp"])
        same_frames("query --dir, a daemon answering", r, got, want)
        check(b" info rewind query filter 'tcp'" in open(log, "rb").read(),
              "the daemon did not answer the replay's query")
        r, got = replay(tmp, ["--topspeed", "--url", "http://127.0.0.1:%d" % port, "--from", frm,
                              "--to", to, "tcp"])
        same_frames("query --url", r, got, want)
    finally:
        d.terminate()
        d.wait(timeout=30)


def test_malformed(tmp):
    good = os.path.join(GOOD, "sip-tcp.pcap")
    cases = [
        ([good], "--interface"),
        (["--interface", "", good], "--interface"),
        (["-i", "nosuch0", good], "no interface 'nosuch0'"),
        (["-i", TX, "--speed", "0", good], "--speed"),
        (["-i", TX, "--speed", "-2", good], "--speed"),
        (["-i", TX, "--speed", "fast", good], "--speed"),
        (["-i", TX, "--speed", "nan", good], "--speed"),
        (["-i", TX, "--speed", "inf", good], "--speed"),
        (["-i", TX, "--speed", "", good], "--speed"),
        (["-i", TX, "--mbps", "0", good], "--mbps"),
        (["-i", TX, "--mbps", "10M", good], "--mbps"),
        (["-i", TX, "--pps", "-5", good], "--pps"),
        (["-i", TX, "--pps", "x", good], "--pps"),
        (["-i", TX, "--mbps", "5", "--pps", "10", good], "one pace"),
        (["-i", TX, "--speed", "2", "--topspeed", good], "one pace"),
        (["-i", TX, "--loop", "0", good], "--loop"),
        (["-i", TX, "--loop", "two", good], "--loop"),
        (["-i", TX, "--loop", "2", "-"], "standard input"),
        (["-i", TX, "-l", "2", good], "--loop"),
        (["-i", TX, "--bogus", good], "--bogus"),
        (["-i", TX], "capture FILE"),
        (["-i", TX, good, good], "one capture file"),
        (["-i", TX, os.path.join(tmp, "missing.pcap")], "missing.pcap"),
        (["-i", TX, tmp], "directory"),
        (["-i", TX, os.path.join(BAD, "pcap-invalid-version-1.pcap")],
         "pcap-invalid-version-1.pcap"),
        (["-i", TX, os.path.join(BAD, "pcapng-invalid-vers-1.pcapng")],
         "pcapng-invalid-vers-1.pcapng"),
        (["-i", TX, os.path.join(GOOD, "tcp-handshake-nano.pcap")], "link type LINUX_SLL"),
        (["-i", TX, os.path.join(EDGE, "LINKTYPE_RAW_ipv4.pcap")], "link type RAW"),
    ]
    for args, needle in cases:
        r = nsexec(REWIND, "replay", *args)
        check(r.returncode == 2 and needle.encode() in r.stderr and not r.stdout,
              "replay %s: exit %d, wanted 2 and %r: %s%s" % (
                  " ".join(args), r.returncode, needle, r.stderr.decode(), r.stdout.decode()))
    # A fault after good records: those are sent, then exit 2 naming the record.
    for f in sorted(os.listdir(BAD)):
        path = os.path.join(BAD, f)
        src = judge(path)
        if not src:
            continue
        r, got = replay(tmp, ["--topspeed", path])
        check(r.returncode == 2 and b"record" in r.stderr and f.encode() in r.stderr and
              frames(got) == frames(src),
              "bad/%s: exit %d, %d of %d frames: %s" % (f, r.returncode, len(got), len(src),
                                                       r.stderr.decode()))
    r = harness.rw("replay", "--help")
    check(r.returncode == 0 and b"--interface" in r.stdout and b"--topspeed" in r.stdout,
          "replay --help: %s" % r.stderr.decode())
    r = harness.rw("--help")
    check(b"replay" in r.stdout, "rewind --help lacks replay")


def main():
    tmp = tempfile.mkdtemp(prefix="rwreplay")
    try:
        setup()
        test_malformed(tmp)
        test_sends(tmp)
        test_truncated_and_refused(tmp)
        test_rates(tmp)
        test_interrupt(tmp)
        test_query(tmp)
    finally:
        sh("ip", "netns", "del", NS)
        shutil.rmtree(tmp, ignore_errors=True)
    harness.finish("test_replay")


if __name__ == "__main__":
    main()
