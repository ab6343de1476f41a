"""Shared pieces of the end-to-end tests: paths, the check/summary pair, and
running the rewind binaries, tcpdump and commands in a network namespace."""
import collections
import os
import socket
import subprocess
import sys

import pcaputil

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
BIN = os.environ.get("REWIND_BIN", os.path.join(ROOT, "bin"))
PCAPS = os.environ.get("REWIND_PCAPS", os.path.join(ROOT, "..", "shared", "pcaps"))
REWIND = os.path.join(BIN, "rewind")
REWINDD = os.path.join(BIN, "rewindd")
TRAFFICGEN = os.path.join(BIN, "trafficgen")

passed = 0
failed = []


def check(cond, what):
    """Count one assertion; print it if it failed."""
    global passed
    if cond:
        passed += 1
    else:
        failed.append(what)
        print("FAIL " + what, flush=True)
    return cond


def rw(*args, **kw):
    return subprocess.run([REWIND] + list(args), capture_output=True, **kw)


def sh(*args, **kw):
    return subprocess.run(list(args), capture_output=True, **kw)


def nsexec(ns, *args, **kw):
    """Run a command inside network namespace ns."""
    return sh("ip", "netns", "exec", ns, *args, **kw)


def veth_ns(ns, a, b):
    """Make network namespace ns with its loopback up and a veth pair a-b
    in it, both up, IPv6 off (no router solicitation joins the traffic).
    None, or the command that failed and what it said."""
    x = ["ip", "netns", "exec", ns]
    for cmd in (["ip", "netns", "add", ns], x + ["ip", "link", "set", "lo", "up"],
                x + ["ip", "link", "add", a, "type", "veth", "peer", "name", b],
                x + ["sysctl", "-qw", "net.ipv6.conf.all.disable_ipv6=1"],
                x + ["ip", "link", "set", a, "up"], x + ["ip", "link", "set", b, "up"]):
        r = sh(*cmd)
        if r.returncode != 0:
            return "%s: %r" % (" ".join(cmd), r.stderr)
    return None


def free_port():
    """A TCP port on 127.0.0.1 that nothing listens on (for a rewindd)."""
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


def frames(pcap_bytes):
    """The packets of a pcap as a multiset of their bytes."""
    return collections.Counter(pcaputil.packet_data(r) for _, r in
                               pcaputil.read_pcap(pcap_bytes)[1])


def tcpdump(path, flt=""):
    p = subprocess.run(["tcpdump", "--time-stamp-precision=nano", "-r", path, "-w", "-"] +
                       ([flt] if flt else []), capture_output=True)
    return p.stdout


def finish(name):
    """Print the closing line and exit 0 only if every check passed."""
    print("%s: %d passed, %d failed" % (name, passed, len(failed)))
    sys.exit(1 if failed or passed == 0 else 0)
