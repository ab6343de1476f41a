#!/usr/bin/env python3
"""test_sessions_live.py -- SMTP and VoIP made live between two network
namespaces and captured by rewindd: a message sent with swaks (a dot-stuffed
line, a body split over many segments) to a small SMTP sink, and the same
capture with the message's segments swapped in pairs (out of order),
and two calls made with sipp (uac playing G.711 RTP, uas echoing it), one
over UDP and one over TCP, on ports other than 5060. Judges:
the message the sink received (the kernel's reassembly), tshark's streams
(reassembling out-of-order segments), tshark's sip,stat and rtp,streams,
tshark and tcpdump for the call's packets."""
import collections
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "lib"))

import pcaputil  # noqa: E402
from harness import REWIND, REWINDD, check, finish, frames, rw, sh  # noqa: E402

PID = os.getpid()
NSA, NSB = "rwsesA%d" % PID, "rwsesB%d" % PID
VA, VB = "rsa%d" % (PID % 100000), "rsb%d" % (PID % 100000)
A, B = "10.97.%d.1" % (PID % 200), "10.97.%d.2" % (PID % 200)

SINK = r'''
import socket, sys
s = socket.socket(); s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
s.bind((sys.argv[1], 25)); s.listen(1); s.settimeout(60)
c, _ = s.accept(); c.settimeout(30)
f = c.makefile("rb")
def reply(t): c.sendall(t.encode() + b"\r\n")
reply("220 sink ESMTP")
msg = None
while True:
    line = f.readline()
    if not line:
        break
    cmd = line.strip().upper()
    if cmd.startswith(b"EHLO") or cmd.startswith(b"HELO"):
        reply("250 sink")
    elif cmd == b"DATA":
        reply("354 go ahead")
        body = b""
        while True:
            l = f.readline()
            if l in (b".\r\n", b""):
                break
            body += l[1:] if l.startswith(b".") else l
        msg = body
        reply("250 queued")
    elif cmd == b"QUIT":
        reply("221 bye"); break
    else:
        reply("250 ok")
open(sys.argv[2], "wb").write(msg or b"")
'''


def ns(name, *args, **kw):
    return sh("ip", "netns", "exec", name, *args, **kw)


def setup():
    cmds = [["ip", "netns", "add", NSA], ["ip", "netns", "add", NSB],
            ["ip", "link", "add", VA, "netns", NSA, "type", "veth", "peer", "name", VB, "netns", NSB]]
    for n, v, a in ((NSA, VA, A), (NSB, VB, B)):
        cmds += [["ip", "netns", "exec", n, "ip", "addr", "add", a + "/24", "dev", v],
                 ["ip", "netns", "exec", n, "ip", "link", "set", v, "mtu", "700", "up"],
                 ["ip", "netns", "exec", n, "ip", "link", "set", "lo", "up"],
                 ["ip", "netns", "exec", n, "sysctl", "-qw", "net.ipv6.conf.all.disable_ipv6=1"],
                 # segments as the MTU cuts them, not merged by GSO/GRO (best effort)
                 ["ip", "netns", "exec", n, "ip", "link", "set", "dev", v, "gso_max_size", "600",
                  "gro_max_size", "600"]]
    for c in cmds:
        r = sh(*c)
        if r.returncode != 0 and "gso_max_size" not in c:
            raise RuntimeError("%r: %r" % (c, r.stderr))


def teardown():
    sh("ip", "netns", "del", NSA)
    sh("ip", "netns", "del", NSB)


def smtp_phase(tmp):
    got = os.path.join(tmp, "received.eml")
    sink = subprocess.Popen(["ip", "netns", "exec", NSB, "timeout", "90", "python3", "-c", SINK,
                             B, got])
    time.sleep(0.5)
    lines = ["This message was sent by swaks.", ".a line that starts with a dot",
             "..and one with two", "."] + ["line %04d of a body long enough for many segments "
                                          "(mtu 700) %s" % (i, "x" * 40) for i in range(300)]
    body = os.path.join(tmp, "body.txt")
    with open(body, "w") as f:
        f.write("\n".join(lines) + "\n")
    r = ns(NSA, "timeout", "60", "swaks", "--server", B, "--port", "25", "--from", "alice@a.test",
           "--to", "bob@b.test", "--header", "Subject: live test", "--body", "@" + body,
           "--helo", "client.a.test", timeout=90)
    check(r.returncode == 0, "swaks: %r %r" % (r.stdout[-500:], r.stderr[-500:]))
    sink.wait(timeout=60)
    return open(got, "rb").read() if os.path.exists(got) else b""


# SIP on ports other than 5060: found by its content. One call over UDP, one over TCP.
SIP_UDP, SIP_TCP = 5099, 5098
DECODE = ["-d", "udp.port==%d,sip" % SIP_UDP, "-d", "tcp.port==%d,sip" % SIP_TCP]


def sip_phase(tmp, transport, port):
    work = os.path.join(tmp, "sipp-" + transport)
    os.makedirs(work)
    os.symlink("/usr/share/sip-tester", os.path.join(work, "pcap"))
    t = ["-t", "u1" if transport == "udp" else "t1"]
    uas = subprocess.Popen(["ip", "netns", "exec", NSB, "timeout", "60", "sipp", "-sn", "uas", "-i",
                            B, "-p", str(port), "-mi", B, "-mp", str(port * 2), "-rtp_echo", "-m",
                            "1", "-nostdin"] + t,
                           cwd=work, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    time.sleep(1)
    r = ns(NSA, "timeout", "60", "sipp", "-sn", "uac_pcap", "%s:%d" % (B, port), "-i", A, "-p",
           str(port + 100), "-mi", A, "-mp", str(port * 2 + 1000), "-m", "1", "-nostdin",
           "-timeout", "40s", "-timeout_error",
           *t, cwd=work, timeout=90)
    check(r.returncode == 0, "sipp uac over %s: %r" % (transport, r.stderr[-500:]))
    try:
        uas.wait(timeout=30)  # it ends after its one call (-m 1), else timeout ends it
    except subprocess.TimeoutExpired:
        uas.kill()
        uas.wait()


def swap_segments(src, dst):
    """Write src with the client's data segments to port 25 swapped in pairs
    (each pair's order, and so their sequence numbers, reversed): how many."""
    data = open(src, "rb").read()
    hdr, recs, _ = pcaputil.read_pcap(data)
    idx = []
    for i, (_, rec) in enumerate(recs):
        pkt = rec[16:]
        if len(pkt) < 54 or pkt[12:14] != b"\x08\x00" or pkt[23] != 6:
            continue
        ihl = (pkt[14] & 15) * 4
        tcp = pkt[14 + ihl:]
        tot = int.from_bytes(pkt[16:18], "big")
        if int.from_bytes(tcp[2:4], "big") == 25 and tot - ihl - (tcp[12] >> 4) * 4 > 100:
            idx.append(i)
    recs = list(recs)
    n = 0
    for k in range(0, len(idx) - 1, 2):
        i, j = idx[k], idx[k + 1]
        recs[i], recs[j] = recs[j], recs[i]
        n += 2
    with open(dst, "wb") as f:
        f.write(hdr)
        for _, rec in recs:
            f.write(rec)
    return n


def main():
    tmp = tempfile.mkdtemp(prefix="rw-seslive-")
    arch = os.path.join(tmp, "arch")
    d = None
    try:
        setup()
        log = open(os.path.join(tmp, "rewindd.log"), "w")
        d = subprocess.Popen(["ip", "netns", "exec", NSB, REWINDD, "--dir", arch, "-i", VB,
                              "--listen", "none"], stdout=log, stderr=log)
        time.sleep(1.5)
        received = smtp_phase(tmp)
        sip_phase(tmp, "udp", SIP_UDP)
        sip_phase(tmp, "tcp", SIP_TCP)
        time.sleep(2.5)  # two flush intervals: everything captured is committed
        d.send_signal(signal.SIGTERM)
        rc = d.wait(timeout=30)
        d = None
        text = open(os.path.join(tmp, "rewindd.log"), errors="replace").read()
        check(rc == 0 and "Sanitizer" not in text and "runtime error" not in text,
              "rewindd stopped cleanly (exit %d): %s" % (rc, text[-2000:]))
        cap = os.path.join(tmp, "all.pcap")
        r = rw("query", "--dir", arch, "-w", cap)
        check(r.returncode == 0, "query: %r" % r.stderr)

        # SMTP: the message as the sink received it, from the capture as
        # taken and from the capture with its data segments swapped in pairs
        reordered = os.path.join(tmp, "reordered.pcap")
        nswapped = swap_segments(cap, reordered)
        check(nswapped >= 4, "segments of the message swapped: %d" % nswapped)
        # (tshark names a segment that comes before its predecessor a
        # retransmission or out of order, depending on the times)
        ooo = subprocess.run(["tshark", "-r", reordered, "-Y", "tcp.port == 25 and "
                              "(tcp.analysis.out_of_order or tcp.analysis.lost_segment)"],
                             capture_output=True).stdout
        check(ooo.strip(), "tshark sees segments out of order in the reordered capture")
        arch2 = os.path.join(tmp, "arch2")
        r2 = rw("import", "--dir", arch2, reordered)
        check(r2.returncode == 0, "import reordered: %r" % r2.stderr)
        for a, what in ((arch, "as captured"), (arch2, "reordered")):
            emls = os.path.join(tmp, "eml-" + os.path.basename(a))
            r = rw("smtp", "--dir", a, "--json", "--eml", emls)
            check(r.returncode == 0, "rewind smtp (%s): %r" % (what, r.stderr))
            files = sorted(os.listdir(emls)) if os.path.isdir(emls) else []
            check(len(files) == 1, "one message (%s): %r" % (what, files))
            ours = open(os.path.join(emls, files[0]), "rb").read() if files else b""
            check(received and ours == received, "the message (%s) equals what the sink "
                  "received (%d, %d bytes)" % (what, len(ours), len(received)))
            check(b"\r\n.a line that starts with a dot\r\n..and one with two\r\n.\r\n" in ours,
                  "dot-stuffing undone (%s)" % what)
            # tshark, reassembling out-of-order segments, agrees on the client's stream
            src = cap if a == arch else reordered
            fol = subprocess.run(["tshark", "-r", src, "-o", "tcp.reassemble_out_of_order:TRUE",
                                  "-q", "-z", "follow,tcp,raw,0"], capture_output=True).stdout.decode()
            cli = b"".join(bytes.fromhex(x.strip()) for x in
                           fol.split("Node 1:", 1)[1].splitlines()[1:]
                           if not x.startswith("\t") and re.fullmatch(r"[0-9a-f]+", x.strip() or "-"))
            start = cli.find(b"\r\nDATA\r\n") + 8
            end = cli.find(b"\r\n.\r\n", start) + 2
            theirs = re.sub(rb"(^|\n)\.", rb"\1", cli[start:end])
            check(ours == theirs, "the message (%s) equals tshark's reassembled stream" % what)
        j = json.loads(r.stdout) if r.returncode == 0 else {"sessions": []}
        t = [x for s in j["sessions"] for x in s["transactions"]]
        check(len(t) == 1 and t[0]["message"]["subject"] == "live test" and
              t[0]["final_reply"] == 250 and t[0]["recipients"][0]["to"] == "bob@b.test",
              "the transaction: %r" % t)

        # SIP and RTP
        r = rw("calls", "--dir", arch, "--json")
        check(r.returncode == 0, "rewind calls: %r" % r.stderr)
        j = json.loads(r.stdout) if r.returncode == 0 else {"calls": [], "sip_messages": -1}
        calls = j["calls"]
        check(sorted(c["transport"] for c in calls) == ["tcp", "udp"],
              "two calls, over UDP and TCP: %r" % calls)
        st = subprocess.run(["tshark", "-r", cap, "-q", "-z", "sip,stat"] + DECODE,
                            capture_output=True).stdout
        n = int(re.search(rb"Number of SIP messages: (\d+)", st).group(1))
        check(j["sip_messages"] == n, "SIP messages: %d, sip,stat %d" % (j["sip_messages"], n))
        rows = {}
        for line in subprocess.run(["tshark", "-r", cap, "-q", "-z", "rtp,streams"] + DECODE,
                                   capture_output=True).stdout.decode().splitlines():
            f = line.split()
            pc = [i for i, x in enumerate(f) if re.fullmatch(r"\(-?[0-9.]+%\)", x)]
            if len(f) >= 17 and f[6].startswith("0x") and pc:
                p = pc[0]
                rows[(f[2], int(f[3]), f[4], int(f[5]), int(f[6], 16))] = (
                    int(f[p - 2]), int(f[p - 1]), float(f[p + 6]))
        mine = {}
        for c in calls:
            check(c["answered"] and c["final_code"] == 200 and c["bye"], "answered, ended: %r" % c)
            for s in c["streams"]:
                if s["kind"] == "rtp":
                    mine[(s["src"], s["src_port"], s["dst"], s["dst_port"], int(s["ssrc"], 16))] = (
                        s["packets"], s["lost"], s["max_jitter_ms"])
        check(len(rows) >= 4, "tshark sees RTP both ways in both calls: %r" % rows)
        check(set(mine) == set(rows), "RTP streams: ours %r, tshark %r" % (mine, rows))
        for k, v in rows.items():
            if k in mine:
                check(mine[k][:2] == v[:2] and abs(mine[k][2] - v[2]) < 0.0015,
                      "stream %r: ours %r, tshark %r" % (k, mine[k], v))
        for c in calls:
            # the call's packets: over UDP, tshark's SIP of its Call-ID; over TCP, every
            # segment of its connection (tcpdump); its media by tcpdump over the streams'
            # 5-tuples; all within the call's first and last packet
            pc = os.path.join(tmp, "call.pcap")
            r = sh(REWIND, "calls", "--dir", arch, "--pcap", c["id"], "-w", pc)
            check(r.returncode == 0, "calls --pcap: %r" % r.stderr)
            lo, hi = c["id"][1:].split("-")[:2]
            lo, hi = int(lo), int(hi) + 1
            tuples = ["(udp and host %s and port %d and host %s and port %d)" %
                      (s["src"], s["src_port"], s["dst"], s["dst_port"]) for s in c["streams"]]
            if c["transport"] == "tcp":
                tuples.append("(tcp and host %s and port %d and host %s and port %d)" % (
                    c["sip_client"], c["sip_client_port"], c["sip_server"], c["sip_server_port"]))
                expect = collections.Counter()
            else:
                sipf = os.path.join(tmp, "sip.pcap")
                sh("tshark", "-r", cap, "-Y", 'sip.Call-ID == "%s"' % c["call_id"], "-F", "pcap",
                   "-w", sipf, *DECODE)
                expect = frames(open(sipf, "rb").read())
            media = sh("tcpdump", "--time-stamp-precision=nano", "-r", cap, "-w", "-",
                       " or ".join(tuples)).stdout
            hdr, recs, _ = pcaputil.read_pcap(media)
            expect += frames(pcaputil.window(hdr, recs, lo, hi))
            got = frames(open(pc, "rb").read()) if os.path.exists(pc) else {}
            if got != expect and os.environ.get("REWIND_KEEP_TMP"):
                print("extra", [(len(k), n) for k, n in (got - expect).items()],
                      "missing", [(len(k), n) for k, n in (expect - got).items()])
            check(got == expect, "the %s call's packets: %d, tshark + tcpdump %d" %
                  (c["transport"], sum(got.values()), sum(expect.values())))
    finally:
        if d:
            d.terminate()
            d.wait(timeout=30)
        teardown()
        if not os.environ.get("REWIND_KEEP_TMP"):
            shutil.rmtree(tmp, ignore_errors=True)
        else:
            print("kept", tmp)
    finish("test_sessions_live")


if __name__ == "__main__":
    main()
