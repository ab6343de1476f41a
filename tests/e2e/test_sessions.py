#!/usr/bin/env python3
"""test_sessions.py -- SMTP sessions and messages, VoIP calls and their media,
asked of a real rewindd over HTTP and of the CLI, on the real captures, and
judged by tshark (messages, SIP, RTP) and tcpdump (a call's packets)."""
import calendar
import collections
import glob
import json
import os
import re
import shutil
import struct
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.parse
import urllib.request

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "lib"))
import pcaputil  # noqa: E402
from harness import (PCAPS, REWIND, REWINDD, ROOT, check, finish, frames, free_port, rw,  # noqa: E402
                     sh)

SMTP_CAPS = sorted(glob.glob(os.path.join(PCAPS, "app", "smtp-*.pcap"))) + [
    os.path.join(PCAPS, "good", "smtp.pcap"), os.path.join(PCAPS, "good", "smtp-data-rejected.pcap")]
SIP_CAPS = sorted(glob.glob(os.path.join(PCAPS, "app", "sip-*.pcap"))) + [
    os.path.join(PCAPS, "good", "sip-tcp.pcap")]
BASE = None


def get(path, token=None):
    """(status, body, headers) of GET BASE+path."""
    req = urllib.request.Request(BASE + path)
    if token:
        req.add_header("Authorization", "Bearer " + token)
    try:
        with urllib.request.urlopen(req, timeout=120) as r:
            return r.status, r.read(), dict(r.headers)
    except urllib.error.HTTPError as e:
        return e.code, e.read(), dict(e.headers)


def span(path):
    """The capture's [first, last + 1) in ns, for a window that holds it alone."""
    _, recs, _ = pcaputil.read_pcap(open(path, "rb").read())
    ts = [t for t, _ in recs]
    return min(ts), max(ts) + 1


def window_qs(path, **more):
    lo, hi = span(path)
    q = {"from": "%d.%09d" % divmod(lo, 10**9), "to": "%d.%09d" % divmod(hi, 10**9)}
    q.update(more)
    return urllib.parse.urlencode(q), q


def tshark(*args):
    return subprocess.run(["tshark"] + list(args), capture_output=True, timeout=300).stdout


# ---------------------------------------------------------------- SMTP judges

def undot(b):
    """tshark 4.0 exports DATA as sent: a dot-stuffed line '..x' was '.x'."""
    return re.sub(rb"(^|\n)\.\.", rb"\1.", b)


CMD_LINE = re.compile(rb"(?i)(RSET|MAIL FROM:|RCPT TO:|DATA|NOOP)[^\r\n]*\r\n")


def same_message(ours, theirs):
    """Whether our message is tshark's, up to what tshark 4.0 does to it
    besides dot-stuffing (each seen on these captures):
    - when the segment ending the message also holds the terminator
      ("...\\r\\n.\\r\\n" in one segment), tshark drops the CRLF that ends
      the last line, which RFC 5321 4.1.1.4 counts as part of the message;
    - after a DATA the server refused (503), tshark takes the client's
      next command lines for the message (smtp-data-rejected.pcap)."""
    t = undot(theirs)
    while True:
        if ours == t or ours == t + b"\r\n":
            return True
        m = CMD_LINE.match(t)
        if not m:
            return False
        t = t[m.end():]


def follow(path, stream):
    """The client's and the server's bytes of a TCP stream, as tshark
    reassembles them (follow,tcp,raw)."""
    out = tshark("-r", path, "-q", "-z", "follow,tcp,raw,%d" % stream).decode()
    cli, srv = bytearray(), bytearray()
    body = out.split("Node 1:", 1)[1].split("\n", 1)[1]
    for line in body.splitlines():
        if line.startswith("====") or not line.strip():
            continue
        if line.startswith("\t"):
            srv += bytes.fromhex(line.strip())
        elif re.fullmatch(r"[0-9a-f]+", line.strip()):
            cli += bytes.fromhex(line.strip())
    return bytes(cli), bytes(srv)


def messages_in_stream(cli):
    """The messages a client stream holds, read independently of rewind:
    DATA's lines dot-unstuffed up to '.CRLF', BDAT's chunks joined."""
    msgs, i, bdat = [], 0, b""
    while i < len(cli):
        j = cli.find(b"\r\n", i)
        if j < 0:
            break
        line = cli[i:j]
        i = j + 2
        m = re.match(rb"(?i)BDAT (\d+)( LAST)?", line)
        if m:
            n = int(m.group(1))
            bdat += cli[i:i + n]
            i += n
            if m.group(2):
                msgs.append(bdat)
                bdat = b""
        elif line.upper() == b"DATA":
            end = cli.find(b"\r\n.\r\n", i)
            if end < 0:
                break
            msgs.append(undot(cli[i:end + 2]))
            i = end + 5
    return msgs


def smtp_streams(path):
    out = tshark("-r", path, "-Y", "tcp.port == 25 and tcp.flags.syn == 1 and tcp.flags.ack == 0",
                 "-T", "fields", "-e", "tcp.stream").decode().split()
    return sorted(set(int(x) for x in out))


def retransmitted_data(path):
    return tshark("-r", path, "-Y", "tcp.port == 25 and tcp.len > 0 and "
                  "tcp.analysis.retransmission", "-T", "fields", "-e", "frame.number").strip()


def test_smtp(tmp, arch):
    for cap in SMTP_CAPS:
        name = os.path.basename(cap)
        qs, q = window_qs(cap)
        st, body, hdr = get("/api/v1/smtp?" + qs)
        check(st == 200 and hdr.get("Content-Type") == "application/json",
              "%s: /api/v1/smtp %d %r" % (name, st, body[:200]))
        j = json.loads(body)
        sessions = j["sessions"]
        check(len(sessions) == len(smtp_streams(cap)),
              "%s: %d sessions, tshark sees %d SMTP connections open" %
              (name, len(sessions), len(smtp_streams(cap))))
        ours = []
        for s in sessions:
            for t in s["transactions"]:
                if t["message"]:
                    st, eml, hdr = get("/api/v1/smtp/messages/%s.eml" % t["message"]["id"])
                    check(st == 200 and hdr.get("Content-Type") == "message/rfc822",
                          "%s: message %s: %d" % (name, t["message"]["id"], st))
                    check(len(eml) == t["message"]["size"],
                          "%s: message size %d, listed %d" % (name, len(eml), t["message"]["size"]))
                    ours.append(eml)
        # the judge: tshark's IMF export, or where tshark exports none (BDAT)
        # or duplicates retransmitted bytes in it, its reassembled streams
        exp = os.path.join(tmp, "imf-" + name)
        os.makedirs(exp)
        tshark("-r", cap, "-q", "--export-objects", "imf," + exp)
        theirs = [open(os.path.join(exp, f), "rb").read() for f in sorted(os.listdir(exp))]
        if not theirs or retransmitted_data(cap):
            streams = [messages_in_stream(follow(cap, n)[0]) for n in smtp_streams(cap)]
            judged = [m for ms in streams for m in ms]
            check(collections.Counter(ours) == collections.Counter(judged),
                  "%s: messages differ from tshark's reassembled streams: ours %r, theirs %r" %
                  (name, [len(m) for m in ours], [len(m) for m in judged]))
        else:
            left = list(ours)
            for t in theirs:
                hit = [o for o in left if same_message(o, t)]
                if check(hit, "%s: tshark's message of %d bytes is not among ours %r" %
                         (name, len(t), [len(o) for o in left])):
                    left.remove(hit[0])
            check(not left, "%s: messages tshark does not export: %r" % (name, [len(o) for o in left]))
        # the header fields as tshark's IMF dissector reads them
        subj = [s for s in tshark("-r", cap, "-Y", "imf", "-T", "fields", "-e",
                                  "imf.subject").decode().splitlines() if s]
        mine = [t["message"]["subject"] for s in sessions for t in s["transactions"] if t["message"]]
        for x in subj:
            check(x in mine, "%s: subject %r not in %r" % (name, x, mine))
        # attachments: the file names tshark's MIME dissector reads
        disp = tshark("-r", cap, "-Y", "mime_multipart", "-T", "fields", "-e",
                      "mime_multipart.header.content-disposition").decode()
        names = re.findall(r'filename="?([^",;\s]+)', disp)
        atts = [a["name"] for s in sessions for t in s["transactions"] if t["message"]
                for a in t["message"]["attachments"]]
        check(collections.Counter(names) == collections.Counter(atts),
              "%s: attachments %r, tshark %r" % (name, atts, names))
        # the CLI reading the archive, and asking the daemon, answer the same bytes
        r = rw("smtp", "--dir", arch, "--from", q["from"], "--to", q["to"], "--json")
        check(r.returncode == 0 and r.stdout == body,
              "%s: rewind smtp --dir --json differs from the HTTP answer: %r" % (name, r.stderr))
        r = rw("smtp", "--url", BASE, "--from", q["from"], "--to", q["to"], "--json")
        check(r.returncode == 0 and r.stdout == body, "%s: rewind smtp --url: %r" % (name, r.stderr))
        d1, d2 = os.path.join(tmp, "eml1-" + name), os.path.join(tmp, "eml2-" + name)
        r1 = rw("smtp", "--dir", arch, "--from", q["from"], "--to", q["to"], "--eml", d1)
        r2 = rw("smtp", "--url", BASE, "--from", q["from"], "--to", q["to"], "--eml", d2)
        check(r1.returncode == 0 and r2.returncode == 0, "%s: --eml: %r %r" % (name, r1.stderr, r2.stderr))
        f1 = {f: open(os.path.join(d1, f), "rb").read() for f in os.listdir(d1)}
        f2 = {f: open(os.path.join(d2, f), "rb").read() for f in os.listdir(d2)}
        check(f1 == f2 and collections.Counter(f1.values()) == collections.Counter(ours),
              "%s: --eml files differ (dir %d, url %d, http %d)" % (name, len(f1), len(f2), len(ours)))
        r = rw("smtp", "--dir", arch, "--from", q["from"], "--to", q["to"], "--csv")
        rows = r.stdout.decode().splitlines()
        check(r.returncode == 0 and rows[0].startswith("message_id,") and
              len(rows) - 1 == sum(max(1, len(s["transactions"])) for s in sessions),
              "%s: --csv rows: %r" % (name, rows[:3]))
        # replies: what tshark reads as the server's reply codes holds ours
        codes = collections.Counter(int(c) for c in tshark(
            "-r", cap, "-Y", "smtp.response.code", "-T", "fields", "-e",
            "smtp.response.code").decode().replace(",", "\n").split())
        mine = collections.Counter()
        for s in sessions:
            for t in s["transactions"]:
                for c in [t["mail_reply"]] + [x["reply"] for x in t["recipients"]]:
                    if c:
                        mine[c] += 1
        check(not (mine - codes), "%s: reply codes %r not all in tshark's %r" % (name, mine, codes))


def test_smtp_report(arch):
    cap = os.path.join(PCAPS, "good", "smtp-data-rejected.pcap")
    _, q = window_qs(cap)
    r = rw("smtp", "--dir", arch, "--report", "--host", "10.7.29.101", "--from", q["from"],
           "--to", q["to"])
    out = r.stdout.decode()
    check(r.returncode == 0 and "SMTP report for 10.7.29.101" in out, "report: %r %r" % (out, r.stderr))
    # each transaction of the subscriber is a line with its final reply
    st, body, _ = get("/api/v1/smtp?" + urllib.parse.urlencode(
        {"from": q["from"], "to": q["to"], "host": "10.7.29.101"}))
    txns = [t for s in json.loads(body)["sessions"] for t in s["transactions"]]
    for t in txns:
        check(re.search(r"%s\s+%d\s+%d\s" % (re.escape(t["mail_from"][:25]), t["recipient_count"],
                                              t["recipients_accepted"]), out),
              "report line for %s: %r" % (t["mail_from"], out))
    st, body2, _ = get("/api/v1/smtp?" + urllib.parse.urlencode(
        {"from": q["from"], "to": q["to"], "host": "10.7.29.101", "format": "report"}))
    check(st == 200 and body2 == r.stdout, "format=report over HTTP equals the CLI's report")
    r = rw("smtp", "--dir", arch, "--report")
    check(r.returncode == 2 and b"--host" in r.stderr, "report without --host: %r" % r.stderr)


# ---------------------------------------------------------------- SIP judges

def sip_stat_messages(cap):
    m = re.search(rb"Number of SIP messages: (\d+)", tshark("-r", cap, "-q", "-z", "sip,stat"))
    return int(m.group(1))


def rtp_streams(cap):
    """tshark's rtp,streams rows: (src, sport, dst, dport, ssrc) -> (pkts, lost, max jitter)."""
    out = tshark("-r", cap, "-q", "-z", "rtp,streams").decode()
    rows = {}
    for line in out.splitlines():
        f = line.split()
        pc = [i for i, x in enumerate(f) if re.fullmatch(r"\(-?[0-9.]+%\)", x)]
        if len(f) >= 17 and f[6].startswith("0x") and pc:
            p = pc[0]  # "lost (n%)": the payload names before may hold spaces
            rows[(f[2], int(f[3]), f[4], int(f[5]), int(f[6], 16))] = (
                int(f[p - 2]), int(f[p - 1]), float(f[p + 6]))
    return rows


def invite_calls(cap):
    """Per Call-ID of an INVITE dialog, as tshark reads its messages: the
    final answer (the first 2xx to INVITE, else the last final response),
    and the times (ns) of the first INVITE, 180/183, 2xx to INVITE and BYE."""
    out = tshark("-r", cap, "-Y", "sip", "-T", "fields", "-E", "separator=|", "-e", "sip.Call-ID",
                 "-e", "sip.Method", "-e", "sip.Status-Code", "-e", "sip.CSeq.method", "-e",
                 "frame.time_epoch").decode()
    calls = {}
    for line in out.splitlines():
        cid, meth, code, cmeth, t = (line.split("|") + ["", "", "", "", ""])[:5]
        sec, _, frac = t.partition(".")
        ns = int(sec) * 10**9 + int((frac + "000000000")[:9])
        if cmeth != "INVITE" and meth != "INVITE" and cid not in calls:
            continue
        c = calls.setdefault(cid, {"final": 0, "answered": False, "invite": 0, "ringing": 0,
                                   "answer": 0, "bye": 0})
        if meth == "INVITE" and not c["invite"]:
            c["invite"] = ns
        if meth == "BYE" and not c["bye"]:
            c["bye"] = ns
        if cmeth == "INVITE" and code in ("180", "183") and not c["ringing"]:
            c["ringing"] = ns
        if cmeth == "INVITE" and code and int(code) >= 200 and not c["answered"]:
            c["final"] = int(code)
            c["answered"] = int(code) < 300
            if c["answered"]:
                c["answer"] = ns
    return calls


def ns_of(t):
    """A time as the API writes it (RFC 3339, ns, UTC), or None, in ns."""
    if not t:
        return 0
    m = re.fullmatch(r"(\d+)-(\d+)-(\d+)T(\d+):(\d+):(\d+)\.(\d{9})Z", t)
    sec = calendar.timegm(tuple(int(x) for x in m.groups()[:6]))
    return sec * 10**9 + int(m.group(7))


def test_calls(tmp, arch):
    for cap in SIP_CAPS:
        name = os.path.basename(cap)
        qs, q = window_qs(cap)
        st, body, hdr = get("/api/v1/voip/calls?" + qs)
        check(st == 200, "%s: /api/v1/voip/calls %d %r" % (name, st, body[:200]))
        j = json.loads(body)
        check(j["sip_messages"] == sip_stat_messages(cap),
              "%s: %d SIP messages, tshark sip,stat %d" % (name, j["sip_messages"],
                                                          sip_stat_messages(cap)))
        want = invite_calls(cap)
        got = {c["call_id"]: c for c in j["calls"]}
        check(set(got) == set(want), "%s: calls %r, tshark %r" % (name, sorted(got), sorted(want)))
        for cid, w in want.items():
            if cid in got:
                check(got[cid]["final_code"] == w["final"] and got[cid]["answered"] == w["answered"],
                      "%s: call %s final %r, tshark %r" % (name, cid, got[cid]["final_code"], w))
                for k in ("invite", "ringing", "answer", "bye"):
                    check(ns_of(got[cid][k]) == w[k], "%s: call %s %s at %r, tshark %r" %
                          (name, cid, k, got[cid][k], w[k]))
        rows = rtp_streams(cap)
        mine = {}
        for c in j["calls"]:
            for s in c["streams"]:
                if s["kind"] == "rtp":
                    mine[(s["src"], s["src_port"], s["dst"], s["dst_port"], int(s["ssrc"], 16))] = (
                        s["packets"], s["lost"], s["max_jitter_ms"])
        check(set(mine) == set(rows), "%s: RTP streams %r, tshark %r" % (name, mine, rows))
        for k, (pk, lost, jit) in rows.items():
            if k in mine:
                check(mine[k][0] == pk and mine[k][1] == lost and abs(mine[k][2] - jit) < 0.0015,
                      "%s: stream %r: ours %r, tshark %r" % (name, k, mine[k], (pk, lost, jit)))
        r = rw("calls", "--dir", arch, "--from", q["from"], "--to", q["to"], "--json")
        check(r.returncode == 0 and r.stdout == body,
              "%s: rewind calls --dir --json differs from HTTP: %r" % (name, r.stderr))
        # each call's packets: its SIP (tshark's Call-ID) and its media
        # (tcpdump over the streams' 5-tuples in the call's time)
        for c in j["calls"]:
            st, pc, hdr = get("/api/v1/voip/calls/%s/pcap" % c["id"])
            check(st == 200 and hdr.get("Content-Type") == "application/vnd.tcpdump.pcap",
                  "%s: call pcap %d %r" % (name, st, pc[:200]))
            sipf = os.path.join(tmp, "sip.pcap")
            subprocess.run(["tshark", "-r", cap, "-Y", 'sip.Call-ID == "%s"' % c["call_id"], "-F",
                            "pcap", "-w", sipf], capture_output=True)
            expect = frames(open(sipf, "rb").read())
            tuples = ["(udp and host %s and port %d and host %s and port %d)" %
                      (s["src"], s["src_port"], s["dst"], s["dst_port"]) for s in c["streams"]]
            if tuples:
                media = subprocess.run(["tcpdump", "--time-stamp-precision=nano", "-r", cap, "-w",
                                        "-", " or ".join(tuples)],
                                       capture_output=True).stdout
                _, recs, nano = pcaputil.read_pcap(media)
                lo, hi = span_of(c)
                hdr24 = media[:24]
                expect += frames(pcaputil.window(hdr24, recs, lo, hi))
            check(frames(pc) == expect, "%s: call %s: %d packets, expected %d" %
                  (name, c["call_id"], sum(frames(pc).values()), sum(expect.values())))
            r = sh(REWIND, "calls", "--dir", arch, "--pcap", c["id"], "-w",
                   os.path.join(tmp, "c.pcap"))
            check(r.returncode == 0 and open(os.path.join(tmp, "c.pcap"), "rb").read() == pc,
                  "%s: rewind calls --pcap equals the HTTP answer: %r" % (name, r.stderr))


def span_of(call):
    """[start, end + 1) of a call in ns, from its listing."""
    ids = call["id"][1:].split("-")
    return int(ids[0]), int(ids[1]) + 1


def tag_vlan(src, dst, vid=100, only=None):
    """src with an 802.1Q tag (VLAN vid) put into every Ethernet frame (or
    those only(frame) says)."""
    data = open(src, "rb").read()
    hdr, recs, nano = pcaputil.read_pcap(data)
    e = "<" if data[:4] in (b"\xd4\xc3\xb2\xa1", b"\x4d\x3c\xb2\xa1") else ">"
    with open(dst, "wb") as f:
        f.write(hdr)
        for _, rec in recs:
            sec, frac, cap, wire = struct.unpack(e + "IIII", rec[:16])
            pkt = rec[16:]
            if only and not only(pkt):
                f.write(rec)
                continue
            pkt = pkt[:12] + b"\x81\x00" + struct.pack(">H", vid) + pkt[12:]
            f.write(struct.pack(e + "IIII", sec, frac, cap + 4, wire + 4) + pkt)


def test_vlan(tmp):
    """The same sessions behind an 802.1Q tag: the same messages."""
    cap = os.path.join(PCAPS, "app", "smtp-multi-mail.pcap")
    tagged = os.path.join(tmp, "vlan.pcap")
    tag_vlan(cap, tagged)
    out = {}
    for src in (cap, tagged):
        a = os.path.join(tmp, "va-" + os.path.basename(src))
        e = os.path.join(tmp, "ve-" + os.path.basename(src))
        r = rw("import", "--dir", a, src)
        r2 = rw("smtp", "--dir", a, "--eml", e)
        check(r.returncode == 0 and r2.returncode == 0, "vlan: %r %r" % (r.stderr, r2.stderr))
        out[src] = sorted(open(os.path.join(e, f), "rb").read() for f in os.listdir(e)) \
            if os.path.isdir(e) else []
    check(len(out[cap]) == 3 and out[cap] == out[tagged],
          "messages behind a VLAN tag: %d, untagged %d" % (len(out[tagged]), len(out[cap])))


# ---------------------------------------------------------------- reassembly

def follow_tool():
    """build/tests/tools/reasm_follow of the build bin/ comes from (made if missing)."""
    san = os.path.exists(os.path.join(ROOT, "bin", ".flavour-1"))
    path = os.path.join(ROOT, "build-san" if san else "build", "tests", "tools", "reasm_follow")
    if not os.path.exists(path):
        sh("make", "-s", "-C", ROOT, "SAN=%d" % san, os.path.relpath(path, ROOT))
    return path


def joined(chunks):
    """A direction's bytes, and its gaps as (offset, length)."""
    b, gaps = bytearray(), []
    for c in chunks:
        if isinstance(c, int):
            gaps.append((len(b), c))
        else:
            b += c
    return bytes(b), gaps


def ours_streams(path):
    out = subprocess.run([follow_tool(), path], capture_output=True, text=True).stdout
    st = collections.defaultdict(lambda: [[], []])
    for line in out.splitlines():
        f = line.split()
        st[int(f[1])][int(f[2])].append(bytes.fromhex(f[3]) if f[0] == "D" else int(f[3]))
    return st


def tshark_streams(path, n):
    """tshark -z follow,tcp,raw for streams 0..n-1, in one run: a gap is the
    text '[N bytes missing in capture file]' among the bytes."""
    args = ["-r", path, "-q"]
    for i in range(n):
        args += ["-z", "follow,tcp,raw,%d" % i]
    out = tshark(*args).decode()
    res = {}
    for block in out.split("Follow: tcp,raw\n")[1:]:
        idx = int(re.search(r"Filter: tcp.stream eq (\d+)", block).group(1))
        d = [[], []]
        for line in block.split("Node 1:", 1)[1].split("\n", 1)[1].splitlines():
            if line.startswith("===="):
                break
            x = line.strip()
            if not re.fullmatch(r"[0-9a-f]+", x):
                continue
            parts = re.split(rb"\[(\d+) bytes missing in capture file\]\x00?", bytes.fromhex(x))
            for k, part in enumerate(parts):
                if k % 2:
                    d[1 if line.startswith("\t") else 0].append(int(part))
                elif part:
                    d[1 if line.startswith("\t") else 0].append(part)
        res[idx] = d
    return res


def test_reassembly():
    """Every TCP stream of the real captures (those with at most 200), each
    direction: the same bytes as tshark's follow, gaps at the same offsets
    with the same lengths."""
    caps = sorted(glob.glob(os.path.join(PCAPS, "good", "*.pcap")) +
                  glob.glob(os.path.join(PCAPS, "app", "*.pcap")) +
                  glob.glob(os.path.join(PCAPS, "edge", "*.pcap")))
    compared = 0
    for cap in caps:
        ns = [int(x) for x in tshark("-r", cap, "-Y", "tcp", "-T", "fields", "-e",
                                     "tcp.stream").split()]
        if not ns or max(ns) >= 200:
            continue
        o, t = ours_streams(cap), tshark_streams(cap, max(ns) + 1)
        for i in sorted(set(o) | set(t)):
            for d in (0, 1):
                a, b = joined(o[i][d] if i in o else []), joined(t[i][d] if i in t else [])
                compared += 1
                check(a == b, "%s stream %d direction %d: ours %d bytes, gaps %r; tshark %d, %r" %
                      (os.path.basename(cap), i, d, len(a[0]), a[1][:4], len(b[0]), b[1][:4]))
    check(compared > 100, "streams compared with tshark: %d" % compared)



# ---------------------------------------------------------------- a re-INVITE

def udp_frame(src, sport, dst, dport, payload):
    """Ethernet + IPv4 + UDP (checksums left 0, as UDP over IPv4 allows)."""
    ip = struct.pack(">BBHHHBBH4s4s", 0x45, 0, 20 + 8 + len(payload), 1, 0, 64, 17, 0,
                     bytes(map(int, src.split("."))), bytes(map(int, dst.split("."))))
    c = sum(struct.unpack(">10H", ip))
    c = (c & 0xffff) + (c >> 16)
    ip = ip[:10] + struct.pack(">H", ~(c + (c >> 16)) & 0xffff) + ip[12:]
    udp = struct.pack(">HHHH", sport, dport, 8 + len(payload), 0)
    return b"\x02\x00\x00\x00\x00\x01\x02\x00\x00\x00\x00\x02\x08\x00" + ip + udp + payload


def sip_msg(first, cid, cseq, frm, to, sdp=None, method=None):
    """A SIP message; a response names the method it answers (default INVITE)."""
    body = sdp or ""
    meth = method or (first.split()[0] if not first.startswith("SIP/") else "INVITE")
    hdrs = [first, "Via: SIP/2.0/UDP 10.9.9.1:5060;branch=z9hG4bK%d" % cseq,
            "From: <%s>;tag=a" % frm, "To: <%s>" % to, "Call-ID: " + cid,
            "CSeq: %d %s" % (cseq, meth), "Content-Length: %d" % len(body)]
    if sdp:
        hdrs.insert(5, "Content-Type: application/sdp")
    return ("\r\n".join(hdrs) + "\r\n\r\n" + body).encode()


def sdp(addr, port):
    return ("v=0\r\no=- 1 1 IN IP4 %s\r\ns=-\r\nc=IN IP4 %s\r\nt=0 0\r\n"
            "m=audio %d RTP/AVP 0\r\na=rtpmap:0 PCMU/8000\r\n" % (addr, addr, port))


def test_reinvite(tmp):
    """A call whose re-INVITE moves the media to new ports on both sides, with
    a lost packet and uneven arrival: four RTP streams, each as tshark's
    rtp,streams counts it, and the call's pcap as tshark and tcpdump select it."""
    A, B, cid = "10.9.9.1", "10.9.9.2", "reinvite-1@10.9.9.1"
    fa, fb = "sip:alice@10.9.9.1", "sip:bob@10.9.9.2"
    recs, t = [], 1_700_000_000 * 10**9

    def add(ns, frame):
        recs.append((ns, frame))

    add(t, udp_frame(A, 5060, B, 5060, sip_msg("INVITE %s SIP/2.0" % fb, cid, 1, fa, fb, sdp(A, 40000))))
    add(t + 10**8, udp_frame(B, 5060, A, 5060, sip_msg("SIP/2.0 180 Ringing", cid, 1, fa, fb)))
    add(t + 3 * 10**8, udp_frame(B, 5060, A, 5060, sip_msg("SIP/2.0 200 OK", cid, 1, fa, fb, sdp(B, 50000))))
    add(t + 4 * 10**8, udp_frame(A, 5060, B, 5060, sip_msg("ACK %s SIP/2.0" % fb, cid, 1, fa, fb)))
    base = t + 5 * 10**8
    for leg, (pa, pb, n, ssrc0) in enumerate(((40000, 50000, 50, 0x1000), (40002, 50002, 30, 0x2000))):
        if leg:
            base += 2 * 10**8
            add(base, udp_frame(A, 5060, B, 5060, sip_msg("INVITE %s SIP/2.0" % fb, cid, 2, fa, fb,
                                                           sdp(A, 40002))))
            add(base + 5 * 10**7, udp_frame(B, 5060, A, 5060, sip_msg("SIP/2.0 200 OK", cid, 2, fa, fb,
                                                                    sdp(B, 50002))))
            base += 10**8
        for d, (src, sp, dst, dp) in enumerate(((A, pa, B, pb), (B, pb, A, pa))):
            for i in range(n):
                if d == 0 and i == 7:
                    continue  # lost
                jit = (i * 7919 % 13) * 10**5  # up to 1.2 ms late, unevenly
                rtp = struct.pack(">BBHII", 0x80, 0, 100 + i, 1000 + 160 * i, ssrc0 + d) + b"\xff" * 160
                add(base + i * 20 * 10**6 + jit + d * 3 * 10**5, udp_frame(src, sp, dst, dp, rtp))
        base += n * 20 * 10**6
    add(base + 10**8, udp_frame(A, 5060, B, 5060, sip_msg("BYE %s SIP/2.0" % fb, cid, 3, fa, fb)))
    add(base + 2 * 10**8, udp_frame(B, 5060, A, 5060, sip_msg("SIP/2.0 200 OK", cid, 3, fa, fb,
                                                                  method="BYE")))
    recs.sort(key=lambda r: r[0])
    cap = os.path.join(tmp, "reinvite.pcap")
    with open(cap, "wb") as f:
        f.write(struct.pack("<IHHiIII", 0xA1B23C4D, 2, 4, 0, 0, 65535, 1))
        for ns, fr in recs:
            f.write(struct.pack("<IIII", ns // 10**9, ns % 10**9, len(fr), len(fr)) + fr)
    arch = os.path.join(tmp, "arch-reinvite")
    r = rw("import", "--dir", arch, cap)
    r2 = rw("calls", "--dir", arch, "--json")
    check(r.returncode == 0 and r2.returncode == 0, "reinvite: %r %r" % (r.stderr, r2.stderr))
    calls = json.loads(r2.stdout)["calls"] if r2.returncode == 0 else []
    check(len(calls) == 1 and calls[0]["answered"] and calls[0]["bye"],
          "one answered call that ends with BYE: %r" % calls)
    rows = rtp_streams(cap)
    mine = {(x["src"], x["src_port"], x["dst"], x["dst_port"], int(x["ssrc"], 16)):
            (x["packets"], x["lost"], x["max_jitter_ms"])
            for c in calls for x in c["streams"] if x["kind"] == "rtp"}
    check(len(rows) == 4 and set(mine) == set(rows), "streams: ours %r, tshark %r" % (mine, rows))
    for k, v in rows.items():
        if k in mine:
            check(mine[k][:2] == v[:2] and abs(mine[k][2] - v[2]) < 0.0015,
                  "re-INVITE stream %r: ours %r, tshark %r" % (k, mine[k], v))
    for c in calls:
        pc = os.path.join(tmp, "reinvite-call.pcap")
        r = sh(REWIND, "calls", "--dir", arch, "--pcap", c["id"], "-w", pc)
        expect = frames(tcpdump_nano(cap, "udp"))  # every packet of this capture is the call's
        check(r.returncode == 0 and frames(open(pc, "rb").read()) == expect,
              "the call's pcap holds its SIP and its four streams: %r" % r.stderr)
    # The same call with its media behind an 802.1Q tag and its SIP not, and all of it tagged:
    # the call's pcap still holds every packet.
    for name, only in (("media", lambda pkt: struct.unpack(">H", pkt[34:36])[0] != 5060),
                       ("all", None)):
        tcap = os.path.join(tmp, "reinvite-vlan-%s.pcap" % name)
        tag_vlan(cap, tcap, 42, only)
        tarch = os.path.join(tmp, "arch-reinvite-vlan-" + name)
        r = rw("import", "--dir", tarch, tcap)
        r2 = rw("calls", "--dir", tarch, "--json")
        tcalls = json.loads(r2.stdout)["calls"] if r2.returncode == 0 else []
        check(r.returncode == 0 and len(tcalls) == 1 and
              [len(x["streams"]) for x in tcalls] == [len(x["streams"]) for x in calls],
              "re-INVITE, %s tagged: %r %r" % (name, r.stderr, r2.stderr))
        for c in tcalls:
            pc = os.path.join(tmp, "reinvite-vlan-call.pcap")
            r = sh(REWIND, "calls", "--dir", tarch, "--pcap", c["id"], "-w", pc)
            expect = frames(tcpdump_nano(tcap, "udp or (vlan and udp)"))
            check(r.returncode == 0 and sum(expect.values()) == len(recs) and
                  frames(open(pc, "rb").read()) == expect,
                  "re-INVITE, %s tagged: the call's pcap holds all %d packets: %r" %
                  (name, len(recs), r.stderr))


def tcpdump_nano(path, flt):
    return subprocess.run(["tcpdump", "--time-stamp-precision=nano", "-r", path, "-w", "-", flt],
                          capture_output=True).stdout


# ---------------------------------------------------------------- bad input

def test_bad_input(arch):
    for path, param in [("/api/v1/smtp?host=foo", "host"), ("/api/v1/smtp?limit=0", "limit"),
                        ("/api/v1/smtp?limit=99999", "limit"), ("/api/v1/smtp?from=yesterdayish", "from"),
                        ("/api/v1/smtp?format=xml", "format"), ("/api/v1/smtp?hots=1.2.3.4", "hots"),
                        ("/api/v1/voip/calls?user=", "user"), ("/api/v1/voip/calls?host=1.2.3", "host"),
                        ("/api/v1/voip/calls?format=report", "format"),
                        ("/api/v1/voip/calls?from=2&to=1", "from"),
                        ("/api/v1/voip/calls/Cx/pcap?format=pcapx", "format"),
                        ("/api/v1/smtp/messages/S1-zz-1-0a000002-25-1.eml", "id"),
                        ("/api/v1/voip/calls/C5-4-0123456789abcdef/pcap", "id")]:
        st, body, _ = get(path)
        msg = json.loads(body).get("error", {}).get("message", "") if body.startswith(b"{") else ""
        check(st == 400 and param in msg, "%s: %d %r" % (path, st, body))
    for path in ["/api/v1/smtp/messages/S1-0a000001-1-0a000002-25-1.eml",
                 "/api/v1/voip/calls/C1-2-0123456789abcdef/pcap",
                 "/api/v1/smtp/messages/a%2fb.eml", "/api/v1/voip/calls/x/y/pcap"]:
        st, body, _ = get(path)
        check(st == 404, "%s: %d %r" % (path, st, body))
    for args, what in [(["smtp", "--dir", arch, "--host", "nohost"], b"host"),
                       (["smtp", "--dir", arch, "--limit", "0"], b"limit"),
                       (["smtp", "--dir", arch, "--from", "bogus"], b"from"),
                       (["smtp", "--dir", arch, "--json", "--csv"], b"exclude"),
                       (["calls", "--dir", arch, "--user", ""], b"user"),
                       (["calls", "--dir", arch, "--pcap", "C1-x"], b"id"),
                       (["calls", "--dir", arch, "--pcap", "../etc"], b"call ID")]:
        r = rw(*args)
        check(r.returncode == 2 and what in r.stderr, "%r: exit %d %r" % (args, r.returncode, r.stderr))


# ---------------------------------------------------------------- the gate

def test_gate(arch):
    toks = {}
    for role in ("analyst", "noc", "viewer"):
        r = rw("token", "add", "--dir", arch, "--name", "s-" + role, "--role", role)
        toks[role] = r.stdout.decode().strip()
        check(r.returncode == 0, "token add %s: %r" % (role, r.stderr))
    for path in ["/api/v1/smtp", "/api/v1/voip/calls"]:
        st, _, _ = get(path)
        check(st == 401, "%s without a token once tokens exist: %d" % (path, st))
        for role in ("noc", "viewer"):
            st, body, _ = get(path, toks[role])
            check(st == 403 and b"analyst" in body, "%s as %s: %d %r" % (path, role, st, body))
        st, body, _ = get(path + "?limit=1", toks["analyst"])
        check(st == 200, "%s as analyst: %d %r" % (path, st, body[:200]))
    recs = [json.loads(ln) for ln in rw("audit", "--dir", arch, "--json").stdout.splitlines()]
    for route in ("GET /api/v1/smtp", "GET /api/v1/voip/calls"):
        ok = [r for r in recs if r.get("route") == route and r.get("principal") == "s-analyst"]
        check(ok and ok[-1].get("status") == 200 and len(ok[-1].get("sha256", "")) == 64,
              "audit record of %s by the analyst: %r" % (route, ok[-1:] if ok else recs[-3:]))
        ref = [r for r in recs if r.get("route") == route and r.get("principal") == "s-noc"]
        check(ref and ref[-1].get("status") == 403, "audit record of %s refused to noc" % route)
    msgs = [r for r in recs if r.get("route") == "GET /api/v1/smtp/messages/ID.eml"]
    check(msgs and all(r.get("params", {}).get("id") or "id" in json.dumps(r) for r in msgs),
          "each .eml answer is on the record with its id")


def main():
    global BASE
    tmp = tempfile.mkdtemp(prefix="rw-sessions-")
    arch = os.path.join(tmp, "arch")
    d = None
    try:
        r = rw("import", "--dir", arch, *(SMTP_CAPS + SIP_CAPS))
        check(r.returncode == 0, "import: %r" % r.stderr)
        port = free_port()
        BASE = "http://127.0.0.1:%d" % port
        log = open(os.path.join(tmp, "rewindd.log"), "w")
        d = subprocess.Popen([REWINDD, "--dir", arch, "--listen", "127.0.0.1:%d" % port],
                             stdout=log, stderr=log)
        for _ in range(100):
            try:
                if get("/healthz")[0] == 200:
                    break
            except OSError:
                pass
            time.sleep(0.1)
        test_reassembly()
        test_vlan(tmp)
        test_smtp(tmp, arch)
        test_smtp_report(arch)
        test_calls(tmp, arch)
        test_reinvite(tmp)
        test_bad_input(arch)
        test_gate(arch)
        d.terminate()
        rc = d.wait(timeout=60)
        d = None
        text = open(os.path.join(tmp, "rewindd.log"), errors="replace").read()
        check(rc == 0 and "Sanitizer" not in text and "runtime error" not in text,
              "rewindd stopped cleanly (exit %d): %s" % (rc, text[-2000:]))
    finally:
        if d:
            d.terminate()
            d.wait(timeout=30)
        shutil.rmtree(tmp, ignore_errors=True)
    finish("test_sessions")


if __name__ == "__main__":
    main()
