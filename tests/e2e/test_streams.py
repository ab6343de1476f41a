#!/usr/bin/env python3
"""Long-lived answers have a pool of their own (issue 18): follow=1 streams
do not take --max-queries slots, so a console or an agency following live
never keeps other queries out, and one principal cannot take the whole pool
(--max-streams-per-client), nor all principals more than --max-streams.
A real rewindd on a loopback port, real tokens, real sockets; bounded."""
import json
import os
import re
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "lib"))
import harness  # noqa: E402
from harness import PCAPS, REWINDD, check, rw  # noqa: E402


def open_follow(port, token):
    """A follow=1 request whose answer's head we read; the socket stays open
    (status, and for an error its whole JSON body, which is short)."""
    s = socket.create_connection(("127.0.0.1", port), timeout=10)
    req = ("GET /api/v1/packets?follow=1&format=pcapng&from=0&to=%d HTTP/1.1\r\n"
           "Host: 127.0.0.1\r\nAuthorization: Bearer %s\r\n\r\n" % (int(time.time()) + 3600, token))
    s.sendall(req.encode())
    head = b""
    while b"\r\n\r\n" not in head:
        d = s.recv(4096)
        if not d:
            break
        head += d
    status = int(head.split(b" ", 2)[1]) if head.startswith(b"HTTP/1.1 ") else 0
    if status != 200:
        m = re.search(rb"Content-Length: (\d+)", head, re.I)
        want = int(m.group(1)) if m else 0
        while len(head.split(b"\r\n\r\n", 1)[1]) < want:
            d = s.recv(4096)
            if not d:
                break
            head += d
    return s, status, head


def get(port, path, token):
    req = urllib.request.Request("http://127.0.0.1:%d%s" % (port, path))
    req.add_header("Authorization", "Bearer " + token)
    try:
        with urllib.request.urlopen(req, timeout=30) as r:
            return r.status, r.read()
    except urllib.error.HTTPError as e:
        return e.code, e.read()


def metric(port, token, name):
    _, body = get(port, "/metrics", token)
    m = re.search(r"^%s (\d+)$" % re.escape(name), body.decode(), re.M)
    return int(m.group(1)) if m else None


def main():
    tmp = tempfile.mkdtemp(prefix="rw-streams-")
    arch = os.path.join(tmp, "a")
    r = rw("import", "--quiet", "--dir", arch, "--point", "p",
           os.path.join(PCAPS, "good", "smtp.pcap"))
    check(r.returncode == 0, "import: %r" % r.stderr)
    alice = rw("token", "add", "--dir", arch, "--name", "alice", "--role", "analyst").stdout.decode().strip()
    bob = rw("token", "add", "--dir", arch, "--name", "bob", "--role", "analyst").stdout.decode().strip()
    port = harness.free_port()
    log = open(os.path.join(tmp, "rewindd.log"), "w")
    d = subprocess.Popen([REWINDD, "--dir", arch, "--listen", "127.0.0.1:%d" % port,
                          "--max-queries", "1", "--max-streams", "3",
                          "--max-streams-per-client", "2"], stdout=log, stderr=log)
    socks = []
    try:
        for _ in range(200):
            try:
                socket.create_connection(("127.0.0.1", port), timeout=1).close()
                break
            except OSError:
                time.sleep(0.05)
        # Two follow streams for alice: both admitted, with one query slot.
        for i in range(2):
            s, st, head = open_follow(port, alice)
            socks.append(s)
            check(st == 200, "alice's follow stream %d: %d %r" % (i + 1, st, head[:200]))
        check(metric(port, alice, "rewind_http_streams") == 2, "two streams open in the metric")
        # The one query slot is free: a normal query answers in full.
        st, body = get(port, "/api/v1/packets?filter=port%2025", alice)
        want = harness.tcpdump(os.path.join(PCAPS, "good", "smtp.pcap"), "port 25")
        check(st == 200 and harness.frames(body) == harness.frames(want),
              "a query answers in full while two follow streams are open (%d)" % st)
        # Alice's third: over her own limit, named.
        s, st, head = open_follow(port, alice)
        check(st == 503 and b"max-streams-per-client" in head,
              "alice's third stream: 503 naming --max-streams-per-client (%d)" % st)
        s.close()
        # Bob's first is admitted (the pool has room), his second is over the total.
        s, st, _ = open_follow(port, bob)
        socks.append(s)
        check(st == 200, "bob's follow stream: %d" % st)
        s, st, head = open_follow(port, bob)
        check(st == 503 and b"--max-streams)" in head,
              "a fourth stream in all: 503 naming --max-streams (%d)" % st)
        s.close()
        # One of alice's goes away: its place comes back.
        socks.pop(0).close()
        ok = False
        for _ in range(100):
            if metric(port, alice, "rewind_http_streams") == 2:
                ok = True
                break
            time.sleep(0.05)
        check(ok, "a closed stream gives its place back (streams: %s; %s)" % (metric(port, alice, "rewind_http_streams"), re.findall(r"cut_total.*", get(port, "/metrics", alice)[1].decode())))
        s, st, _ = open_follow(port, alice)
        socks.append(s)
        check(st == 200, "alice may follow again once one of hers closed (%d)" % st)
    finally:
        for s in socks:
            s.close()
        d.terminate()
        check(d.wait(timeout=60) == 0, "rewindd exit status")
        log.close()
    harness.finish("test_streams")


if __name__ == "__main__":
    main()
