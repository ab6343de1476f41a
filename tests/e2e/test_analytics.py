#!/usr/bin/env python3
"""Flows, top talkers, timelines and Community ID, end to end, judged by
tools no one here wrote: the real captures of ../shared/pcaps are imported
(one capture point each), a real rewindd serves them, and

- every flow's packets and bytes in each direction, and its Community ID,
  equal what tshark computes for the same packets (per-packet fields with
  Wireshark's own communityid, IP reassembly off so that each fragment
  stands alone as in a capture file), and the frame counts of tshark's
  conversation tables (-z conv,tcp / conv,udp);
- the packets answered for a Community ID equal tcpdump's over that flow's
  5-tuple, derived here from tshark's fields;
- top talkers and timelines over a window that cuts a capture in the
  middle, with and without a filter, equal counts made from tcpdump's
  output over the same window and filter;
- the CLI (--dir) prints the same bytes as the API;
- bad parameters are 400s naming the parameter; roles and the audit trail
  hold.

Captures where tshark and rewind legitimately see different flows are
left out of the flow comparison, each with its reason (TUNNELLED)."""
import collections
import json
import os
import re
import struct
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.parse
import urllib.request

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "lib"))
import harness  # noqa: E402
import pcaputil  # noqa: E402
from harness import PCAPS, REWIND, REWINDD, check, rw, sh  # noqa: E402

# Captures whose flows tshark and rewind define differently, and why.
TUNNELLED = {
    # VXLAN: rewind's flow (as Zeek's and Suricata's) is the innermost IP
    # flow; tshark's Community ID is the outer UDP flow's.
    "vxlan.pcap": "VXLAN: tshark hashes the outer UDP flow, rewind the inner one",
    # Teredo (IPv6 in UDP 3544) and OpenFlow packet-in/out: tshark follows
    # the packet inside; rewind's parser (like BPF) stops at the UDP/TCP.
    "output-eve-ftp-data.pcap": "Teredo: tshark hashes the inner IPv6 flow",
    "of13_ericsson.pcapng": "OpenFlow: tshark hashes frames carried inside OpenFlow messages",
    # NFLOG: no BPF filter compiles for it and rewind's parser does not read it.
    "nflog.pcap": "NFLOG: rewind keeps no flows for this link type",
}


def point_of(name):
    return re.sub(r"[^A-Za-z0-9]", "_", name)[:60]


def captures():
    out = []
    for sub in ("good", "edge", "app"):
        d = os.path.join(PCAPS, sub)
        for n in sorted(os.listdir(d)):
            if n.endswith((".pcap", ".pcapng")):
                out.append(os.path.join(d, n))
    return out


# ------------------------------------------------------------------ tshark

def tshark_fields(path, *fields):
    p = subprocess.run(["tshark", "-r", path, "-o", "ip.defragment:FALSE", "-o",
                        "ipv6.defragment:FALSE", "--enable-protocol", "communityid",
                        "-T", "fields", "-E", "separator=\t"] +
                       [a for f in fields for a in ("-e", f)], capture_output=True, text=True)
    return [(line.split("\t") + [""] * len(fields))[:len(fields)] for line in p.stdout.splitlines()]


def tshark_flows(path):
    """Community ID -> {(sender address, 'p'|'b'): count} from tshark."""
    agg = collections.defaultdict(collections.Counter)
    for ln, cid, s4, s6 in tshark_fields(path, "frame.len", "communityid", "ip.src", "ipv6.src"):
        if not cid:
            continue
        src = (s4 or s6).split(",")[0]
        agg[cid][(src, "p")] += 1
        agg[cid][(src, "b")] += int(ln)
    return agg


def tshark_convs(path, proto):
    """{((a, pa), (b, pb)): (frames a->b, frames b->a)} from -z conv,PROTO."""
    p = subprocess.run(["tshark", "-r", path, "-o", "ip.defragment:FALSE", "-o",
                        "ipv6.defragment:FALSE", "-q", "-z", "conv," + proto],
                       capture_output=True, text=True)
    out = {}
    for line in p.stdout.splitlines():
        m = re.match(r"^(\S+):(\d+)\s+<->\s+(\S+):(\d+)\s+(\d+)\s+\d+\s+\S+\s+(\d+)\s", line)
        if m:
            a, pa, b, pb, left, right = m.groups()
            # "<-" counts frames from b to a, "->" from a to b.
            out[((a, int(pa)), (b, int(pb)))] = (int(right), int(left))
    return out


# ------------------------------------------------------------------- HTTP

class Api:
    def __init__(self, port, token=None):
        self.base = "http://127.0.0.1:%d" % port
        self.token = token

    def get(self, path, **params):
        q = urllib.parse.urlencode([(k, v) for k, vs in params.items()
                                    for v in (vs if isinstance(vs, list) else [vs])])
        req = urllib.request.Request(self.base + path + ("?" + q if q else ""))
        if self.token:
            req.add_header("Authorization", "Bearer " + self.token)
        try:
            with urllib.request.urlopen(req, timeout=120) as r:
                return r.status, r.read()
        except urllib.error.HTTPError as e:
            return e.code, e.read()
        except (urllib.error.URLError, ConnectionError) as e:
            return 0, str(e).encode()

    def json(self, path, **params):
        st, body = self.get(path, **params)
        return st, (json.loads(body) if body else None)


def our_flows(api, point):
    st, j = api.json("/api/v1/flows", point=point, limit="1000000")
    check(st == 200, "flows of %s: status %d" % (point, st))
    agg = collections.defaultdict(collections.Counter)
    for f in (j or {}).get("flows", []):
        c = f["community_id"]
        if f["packets_fwd"]:
            agg[c][(f["src"], "p")] += f["packets_fwd"]
            agg[c][(f["src"], "b")] += f["bytes_fwd"]
        if f["packets_rev"]:
            agg[c][(f["dst"], "p")] += f["packets_rev"]
            agg[c][(f["dst"], "b")] += f["bytes_rev"]
    return agg, (j or {}).get("flows", [])


def check_flows(api, path, point):
    name = os.path.basename(path)
    theirs = tshark_flows(path)
    ours, flows = our_flows(api, point)
    bad = [c for c in set(theirs) | set(ours) if theirs.get(c) != ours.get(c)]
    check(not bad, "%s: %d of %d Community IDs differ from tshark's, e.g. %s: tshark %s, rewind %s"
          % (name, len(bad), len(theirs), bad[:1], dict(theirs.get(bad[0], {})) if bad else "",
             dict(ours.get(bad[0], {})) if bad else ""))
    check(len(theirs) == 0 or len(ours) > 0, "%s: rewind has flows" % name)
    # tshark's conversation tables: frames each way, per 5-tuple.
    for proto, num in (("tcp", 6), ("udp", 17)):
        convs = tshark_convs(path, proto)
        mine = {}
        for f in flows:
            if f["proto"] != num:
                continue
            k = ((f["src"], f["sport"]), (f["dst"], f["dport"]))
            a, b = mine.get(k, (0, 0))
            mine[k] = (a + f["packets_fwd"], b + f["packets_rev"])
        for (a, b), (ab, ba) in convs.items():
            got = mine.get((a, b)) or tuple(reversed(mine.get((b, a), (None, None))))
            if got != (ab, ba):
                check(False, "%s: conv,%s %s <-> %s: tshark %s frames each way, rewind %s"
                      % (name, proto, a, b, (ab, ba), got))
                break
        else:
            check(True, "conv")


def cid_filter(path, cid):
    """The tcpdump filter of a flow's 5-tuple, from tshark's fields for the
    packets it gives Community ID cid (both directions; VLAN-tagged as seen)."""
    rows = tshark_fields(path, "communityid", "ip.src", "ip.dst", "ipv6.src", "ipv6.dst",
                         "ip.proto", "ipv6.nxt", "tcp.srcport", "tcp.dstport", "udp.srcport",
                         "udp.dstport", "vlan.id", "icmp.type", "icmpv6.type")
    parts = collections.defaultdict(set)  # vlan -> directions
    for r in rows:
        if r[0] != cid:
            continue
        src, dst = (r[1] or r[3]).split(",")[0], (r[2] or r[4]).split(",")[0]
        proto = int((r[5] or r[6]).split(",")[0])
        if proto == 6:
            t = "tcp and src port %s and dst port %s" % (r[7], r[8])
        elif proto == 17:
            t = "udp and src port %s and dst port %s" % (r[9], r[10])
        elif proto == 1:
            t = "icmp and icmp[0] = %s" % r[12].split(",")[0]
        elif proto == 58:
            t = "icmp6 and icmp6[0] = %s" % r[13].split(",")[0]
        else:
            t = "%s proto %d" % ("ip6" if r[3] else "ip", proto)
        parts[r[11].split(",")[0]].add("(src host %s and dst host %s and %s)" % (src, dst, t))
    # BPF's 'vlan' moves the offsets of everything after it, across 'or'
    # too: one 'vlan V and (...)' per expression, after the untagged part.
    assert len([v for v in parts if v]) <= 1, "one VLAN per flow in these captures"
    out = " or ".join(sorted(parts.get("", ())))
    for v, ds in parts.items():
        if v:
            out += (" or " if out else "") + "(vlan %s and (%s))" % (v, " or ".join(sorted(ds)))
    return out


# ----------------------------------------------------- counts from tcpdump

def ip_fields(frame):
    """(family, src, dst, proto, sport, dport) of an Ethernet frame holding a
    plain IPv4/IPv6 packet (what the top-talker captures hold), else None."""
    off, et = 12, struct.unpack(">H", frame[12:14])[0]
    while et in (0x8100, 0x88a8):
        off += 4
        et = struct.unpack(">H", frame[off:off + 2])[0]
    off += 2
    if et == 0x0800:
        ihl = (frame[off] & 15) * 4
        proto = frame[off + 9]
        src, dst = frame[off + 12:off + 16], frame[off + 16:off + 20]
        frag = struct.unpack(">H", frame[off + 6:off + 8])[0] & 0x1fff
        l4 = off + ihl
        fam = 4
    elif et == 0x86dd:
        proto = frame[off + 6]
        src, dst = frame[off + 8:off + 24], frame[off + 24:off + 40]
        frag, l4, fam = 0, off + 40, 6
    else:
        return None
    sp = dp = None
    if proto in (6, 17, 132) and frag == 0 and len(frame) >= l4 + 4:
        sp, dp = struct.unpack(">HH", frame[l4:l4 + 4])
    import ipaddress
    a = str(ipaddress.ip_address(bytes(src)))
    b = str(ipaddress.ip_address(bytes(dst)))
    return fam, a, b, proto, sp, dp


def tcpdump_top(path, flt, lo, hi, by):
    """{key: [packets, bytes]} from tcpdump's answer for flt in [lo, hi)."""
    _, recs, _ = pcaputil.read_pcap(harness.tcpdump(path, flt))
    agg = collections.defaultdict(lambda: [0, 0])
    for ts, rec in recs:
        if not (lo <= ts < hi):
            continue
        ln = pcaputil.orig_len(rec)
        f = ip_fields(pcaputil.packet_data(rec))
        keys = []
        if f:
            fam, a, b, proto, sp, dp = f
            keys = {"src": [a], "dst": [b], "pair": ["%s %s" % tuple(sorted((a, b), key=lambda x:
                    ipaddress_key(x)))], "proto": [proto],
                    "port": sorted({sp, dp}) if sp is not None else []}[by]
        for k in keys:
            agg[k][0] += 1
            agg[k][1] += ln
    return agg


def ipaddress_key(s):
    import ipaddress
    return ipaddress.ip_address(s).packed


def top_key(by, row):
    if by in ("src", "dst"):
        return row["address"]
    if by == "pair":
        return "%s %s" % (row["a"], row["b"])
    return row[by]


# ------------------------------------------------------------------- main

def main():
    tmp = tempfile.mkdtemp(prefix="rw-analytics-")
    arch = os.path.join(tmp, "a")
    caps = captures()
    points = {}
    for c in caps:
        p = point_of(os.path.basename(c))
        r = rw("import", "--quiet", "--dir", arch, "--point", p, c)
        # Captures with a second interface get a second point (-if1).
        points[c] = [p]
        check(r.returncode in (0, 1), "import %s: %r" % (c, r.stderr[-300:]))
    st = rw("status", "--dir", arch)
    for c in caps:
        p = point_of(os.path.basename(c))
        points[c] = [line.split()[0] for line in st.stdout.decode().splitlines()
                     if line.split() and re.fullmatch(re.escape(p) + r"(-if\d+)?", line.split()[0])]
    port = harness.free_port()
    log = os.path.join(tmp, "rewindd.log")
    d = subprocess.Popen([REWINDD, "--dir", arch, "--listen", "127.0.0.1:%d" % port, "--log", log])
    api = Api(port)
    try:
        for _ in range(200):
            if api.get("/healthz")[0] == 200:
                break
            time.sleep(0.05)
        run(api, tmp, arch, caps, points, port)
    finally:
        d.terminate()
        check(d.wait(timeout=60) == 0, "rewindd exit status")
    harness.finish("test_analytics")


def run(api, tmp, arch, caps, points, port):
    # ---- flows and Community IDs against tshark, capture by capture
    judged = 0
    for c in caps:
        name = os.path.basename(c)
        if name in TUNNELLED or not points[c]:
            continue
        for p in points[c][:1] if len(points[c]) == 1 else []:
            check_flows(api, c, p)
            judged += 1
    check(judged >= 25, "flows judged on %d captures" % judged)

    # ---- a flow that spans segment rolls is one flow (stored per segment,
    # merged when answered): small segments, the same judge.
    rolled = os.path.join(tmp, "rolled")
    bulk = os.path.join(PCAPS, "good", "echo-connections.pcap")
    r = rw("import", "--quiet", "--dir", rolled, "--point", "p", "--segment-bytes", "256K", bulk)
    segs = rw("status", "--dir", rolled).stdout.decode()
    nsegs = int(re.search(r"^p\s+\S+\s+(\d+)", segs, re.M).group(1)) if r.returncode == 0 else 0
    check(nsegs >= 10, "echo-connections in %d segments" % nsegs)
    theirs = tshark_flows(bulk)
    js = json.loads(rw("flows", "--dir", rolled, "--json", "--limit", "1000000").stdout)
    ours = collections.defaultdict(collections.Counter)
    for f in js["flows"]:
        ours[f["community_id"]][(f["src"], "p")] += f["packets_fwd"]
        ours[f["community_id"]][(f["src"], "b")] += f["bytes_fwd"]
        ours[f["community_id"]][(f["dst"], "p")] += f["packets_rev"]
        ours[f["community_id"]][(f["dst"], "b")] += f["bytes_rev"]
    ours = {c: +v for c, v in ours.items()}
    check(ours == dict(theirs) and len(js["flows"]) == len(theirs),
          "flows across %d segments: %d flows, each equal to tshark's (%d Community IDs)"
          % (nsegs, len(js["flows"]), len(theirs)))

    # ---- the order of every sort (man/rewindd.8: largest first, ties by the
    # earliest start), over all the captures' flows; a limit answers the
    # first of that order
    st, j = api.json("/api/v1/flows", limit="1000000")
    every = j["flows"] if st == 200 else []
    check(len(every) > 1000, "all flows of all captures: %d" % len(every))
    sort_key = {"bytes": lambda f: -f["bytes"], "packets": lambda f: -f["packets"],
                "duration": lambda f: -(rfc3339_ns(f["last"]) - rfc3339_ns(f["first"])),
                "start": lambda f: 0}
    for by, key in sort_key.items():
        st, j = api.json("/api/v1/flows", sort=by, limit="1000000")
        got = [(key(f), rfc3339_ns(f["first"])) for f in (j or {}).get("flows", [])]
        check(st == 200 and len(got) == len(every) and got == sorted(got),
              "flows sorted by %s: %d flows in order" % (by, len(got)))
        st2, j2 = api.json("/api/v1/flows", sort=by, limit="37")
        check(st2 == 200 and j2["flows"] == j["flows"][:37],
              "flows sorted by %s, limit 37: the first 37 of the whole order" % by)

    # ---- Community ID queries equal tcpdump over the 5-tuple
    samples = [("good/smtp.pcap", 3), ("good/dns-edns-ecs.pcap", 2), ("good/mixed-vlan-mpls.pcap", 2),
               ("good/var-services-std-ports.pcap", 3), ("edge/babel_update_oobr.pcap", 2),
               ("app/sip-calls.pcap", 2)]
    asked = 0
    for rel, n in samples:
        path = os.path.join(PCAPS, rel)
        p = points[path][0]
        cids = collections.Counter(r[0] for r in tshark_fields(path, "communityid") if r[0])
        for cid, _ in cids.most_common(n):
            flt = cid_filter(path, cid)
            want = harness.tcpdump(path, flt)
            st, body = api.get("/api/v1/packets", community_id=cid, point=p)
            check(st == 200 and harness.frames(body) == harness.frames(want) and
                  len(harness.frames(want)) > 0,
                  "%s: packets of %s (status %d) equal tcpdump '%s'" % (rel, cid, st, flt))
            r = rw("query", "--dir", arch, "--point", p, "--community-id", cid, "-w", "-")
            check(r.returncode == 0 and harness.frames(r.stdout) == harness.frames(want),
                  "%s: rewind query --community-id %s: %r" % (rel, cid, r.stderr[-200:]))
            asked += 1
    # ICMP (one-way, inside smtp.pcap) and IPv6 flows are among them.
    check(asked >= 12, "Community ID queries asked: %d" % asked)
    st, j = api.json("/api/v1/flows", community_id="1:AAAAAAAAAAAAAAAAAAAAAAAAAAA=")
    check(st == 200 and j["flows"] == [], "flows of an unknown Community ID: none (%d)" % st)
    st, _ = api.get("/api/v1/packets", community_id="1:AAAAAAAAAAAAAAAAAAAAAAAAAAA=")
    check(st == 404, "packets of an unknown Community ID: 404 (%d)" % st)

    # ---- top talkers and timelines over a window cutting a capture
    bulk = os.path.join(PCAPS, "good", "echo-connections.pcap")
    bp = points[bulk][0]
    _, recs, _ = pcaputil.read_pcap(harness.tcpdump(bulk))
    t0, t1 = recs[0][0], recs[-1][0]
    iso = lambda ns: "%d.%09d" % (ns // 10**9, ns % 10**9)  # noqa: E731
    varied = os.path.join(PCAPS, "good", "var-services-std-ports.pcap")
    for cap, filters in ((bulk, ("", "tcp and dst port 7000", "tcp[13] & 2 != 0")),
                         (varied, ("", "udp", "not port 53 and ip", "net 172.16.0.0/12"))):
        _, crecs, _ = pcaputil.read_pcap(harness.tcpdump(cap))
        c0, c1 = crecs[0][0], crecs[-1][0]
        lo, hi = c0 + (c1 - c0) // 4, c0 + 3 * (c1 - c0) // 4
        for flt in filters:
            for by in ("src", "dst", "pair", "port", "proto"):
                st, j = api.json("/api/v1/top", point=points[cap][0], by=by, limit="100000", **{
                    "from": iso(lo), "to": iso(hi)}, **({"filter": flt} if flt else {}))
                want = tcpdump_top(cap, flt, lo, hi, by)
                got = {top_key(by, r): [r["packets"], r["bytes"]] for r in (j or {}).get("top", [])}
                got = {(int(k) if by in ("port", "proto") else k): v for k, v in got.items()}
                check(st == 200 and got == dict(want) and len(want) > 0,
                      "%s: top by %s filter '%s' (status %d): %d talkers, tcpdump %d; e.g. %s" %
                      (os.path.basename(cap), by, flt, st, len(got), len(want),
                       [(k, got.get(k), want.get(k)) for k in set(got) ^ set(want) or
                        [k for k in want if got.get(k) != want[k]]][:2]))
                if st == 200 and j["top"]:
                    order = [r["bytes"] for r in j["top"]]
                    check(order == sorted(order, reverse=True),
                          "top by %s: by bytes, largest first" % by)
    lo, hi = t0 + (t1 - t0) // 4, t0 + 3 * (t1 - t0) // 4
    # Whole captures (index path: no filter, segments inside the window) and
    # the point view.
    st, j = api.json("/api/v1/top", by="src", point=bp, limit="100000")
    want = tcpdump_top(bulk, "", t0, t1 + 1, "src")
    check(st == 200 and j["source"] == "index" and
          {r["address"]: [r["packets"], r["bytes"]] for r in j["top"]} == dict(want),
          "top by src of the whole capture, from the index alone")
    st, j = api.json("/api/v1/top", by="point", metric="packets", limit="1000")
    total = sum(len(pcaputil.read_pcap(harness.tcpdump(c))[1]) for c in caps
                if points[c] and len(points[c]) == 1 and os.path.basename(c) != "nflog.pcap")
    check(st == 200 and j["packets"] >= total, "top by point: every packet counted")
    rowmap = {r["point"]: r["packets"] for r in (j or {}).get("top", [])}
    check(rowmap.get(bp) == len(recs), "top by point: %s has %s packets, tcpdump %d" %
          (bp, rowmap.get(bp), len(recs)))

    for flt, step in (("", 1), ("", 2), ("tcp and dst port 7000", 1), ("tcp[13] & 2 != 0", 3)):
        st, j = api.json("/api/v1/timeline", point=bp, step="%ds" % step,
                         **{"from": iso(lo), "to": iso(hi)}, **({"filter": flt} if flt else {}))
        check(st == 200, "timeline step %d filter '%s': %d %r" % (step, flt, st, j))
        if st != 200:
            continue
        start = rfc3339_ns(j["from"])
        end = rfc3339_ns(j["to"])
        check(start <= lo and end >= hi and start % (step * 10**9) == 0,
              "timeline window widened to whole steps")
        _, frecs, _ = pcaputil.read_pcap(harness.tcpdump(bulk, flt))
        pk = [0] * j["buckets"]
        by = [0] * j["buckets"]
        for ts, rec in frecs:
            if start <= ts < end:
                b = (ts - start) // (step * 10**9)
                pk[b] += 1
                by[b] += pcaputil.orig_len(rec)
        series = j["points"][0] if j["points"] else {"packets": [], "bytes": []}
        check(series["packets"] == pk and series["bytes"] == by and sum(pk) > 0,
              "timeline step %ds filter '%s' (%s): equals tcpdump's counts per step" %
              (step, flt, j["source"]))

    # ---- the CLI prints the API's bytes
    for cmd, route, extra in (("flows", "/api/v1/flows", {"sort": "packets", "limit": "50"}),
                              ("top", "/api/v1/top", {"by": "pair"}),
                              ("timeline", "/api/v1/timeline", {"step": "1s"})):
        args = [cmd, "--dir", arch, "--point", bp, "--json"]
        for k, v in extra.items():
            args += ["--" + k, v]
        r = rw(*args)
        st, body = api.get(route, point=bp, **extra)
        check(r.returncode == 0 and st == 200 and r.stdout == body,
              "rewind %s --dir prints what %s answers" % (cmd, route))
        r = rw(*([cmd, "--url", "http://127.0.0.1:%d" % port] + args[3:]))
        check(r.returncode == 0 and r.stdout == body, "rewind %s --url: %r" % (cmd, r.stderr[-200:]))
    r = rw("flows", "--dir", arch, "--point", bp, "--limit", "3")
    lines = r.stdout.decode().splitlines()
    check(r.returncode == 0 and len(lines) == 4 and lines[0].split()[0] == "point",
          "rewind flows prints a table with a header")
    r = rw("timeline", "--dir", arch, "--point", bp, "--csv")
    check(r.returncode == 0 and r.stdout.startswith(b"time,point,packets,bytes\n"),
          "rewind timeline --csv")
    # The sparkline, on a terminal (script(1) gives it one).
    r = sh("script", "-qec", "%s timeline --dir %s --point %s" % (REWIND, arch, bp), "/dev/null")
    check(r.returncode == 0 and "█" in r.stdout.decode(errors="replace"),
          "rewind timeline on a terminal draws a sparkline: %r" % r.stdout[-300:])
    r = rw("flows", "--dir", arch, "--community-id", "nope")
    check(r.returncode == 2 and b"community_id" in r.stderr, "flows --community-id nope: exit 2")
    r = rw("flows", "--dir", arch, "len > 5")
    check(r.returncode == 2 and b"does not apply to flows" in r.stderr, "flows 'len > 5': exit 2")
    r = rw("top", "--dir", arch, "--step", "1s")
    check(r.returncode == 2 and b"--step" in r.stderr, "top --step: refused, named")

    # ---- bad parameters: 400 naming the parameter
    bad = [("/api/v1/flows", {"sort": "size"}, "sort"), ("/api/v1/flows", {"limit": "x"}, "limit"),
           ("/api/v1/flows", {"limit": "2000000"}, "limit"),
           ("/api/v1/flows", {"format": "xml"}, "format"),
           ("/api/v1/flows", {"filter": "ether host 1:2:3:4:5:6"}, "filter"),
           ("/api/v1/flows", {"filter": "tcp[13] & 2 != 0"}, "filter"),
           ("/api/v1/flows", {"community_id": "2:abc"}, "community_id"),
           ("/api/v1/flows", {"from": "yesterday-ish"}, "from"),
           ("/api/v1/flows", {"from": "2020-01-02T00:00:00Z", "to": "2020-01-01T00:00:00Z"}, "from"),
           ("/api/v1/flows", {"colour": "red"}, "colour"),
           ("/api/v1/top", {"by": "mac"}, "by"), ("/api/v1/top", {"metric": "flows"}, "metric"),
           ("/api/v1/top", {"filter": "port 99999"}, "filter"),
           ("/api/v1/top", {"point": "nowhere"}, "nowhere"),
           ("/api/v1/timeline", {"step": "0s"}, "step"), ("/api/v1/timeline", {"step": "2d"}, "step"),
           ("/api/v1/timeline", {"step": "1500ms"}, "step"),
           ("/api/v1/timeline", {"step": "1s", "from": "0", "to": "now"}, "step"),
           ("/api/v1/timeline", {"filter": "tcp and"}, "filter"),
           ("/api/v1/packets", {"community_id": "1:short="}, "community_id")]
    for route, params, name in bad:
        st, j = api.json(route, **params)
        msg = (j or {}).get("error", {}).get("message", "")
        check(st == 400 and name in msg, "%s %s: 400 naming '%s' (%d %s)" % (route, params, name, st, msg))

    # ---- roles and the audit trail
    r = rw("token", "add", "--dir", arch, "--name", "ops", "--role", "noc")
    noc = r.stdout.decode().strip()
    r = rw("token", "add", "--dir", arch, "--name", "board", "--role", "viewer")
    viewer = r.stdout.decode().strip()
    check(len(noc) == 43 and len(viewer) == 43, "tokens made")
    time.sleep(1.2)  # the daemon looks tokens up again at most once a second
    st, _ = Api(port, noc).get("/api/v1/flows", point=bp, limit="1")
    check(st == 200, "noc may list flows (%d)" % st)
    st, _ = Api(port, viewer).get("/api/v1/top", point=bp)
    check(st == 403, "viewer may not ask for top talkers (%d)" % st)
    st, _ = Api(port).get("/api/v1/timeline")
    check(st == 401, "no token once tokens exist: 401 (%d)" % st)
    r = rw("audit", "list", "--dir", arch, "--json")
    recs = [json.loads(line) for line in r.stdout.decode().splitlines() if line.strip()]
    routes = [x.get("route", "") for x in recs]
    check(any(x.endswith("/api/v1/flows") and y.get("principal") == "ops"
              for x, y in zip(routes, recs)), "the noc's flows request is on the audit trail")
    check(any(x.endswith("/api/v1/top") and y.get("status") == 403 for x, y in zip(routes, recs)),
          "the viewer's refused request is on the audit trail")
    check(any(x == "flows (reported)" for x in routes),
          "rewind flows --dir, answered beside a running rewindd, is on its audit trail")


def rfc3339_ns(s):
    m = re.match(r"(\d{4})-(\d\d)-(\d\d)T(\d\d):(\d\d):(\d\d)(?:\.(\d+))?Z$", s)
    import calendar
    y, mo, d, h, mi, se, frac = m.groups()
    sec = calendar.timegm((int(y), int(mo), int(d), int(h), int(mi), int(se)))
    return sec * 10**9 + int((frac or "0").ljust(9, "0")[:9])


if __name__ == "__main__":
    main()
