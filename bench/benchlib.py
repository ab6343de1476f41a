#!/usr/bin/env python3
"""benchlib.py -- measurement helpers for bench/bench.sh (standard library only).

  run KEY [--runs N] [--warmup N] [--drop] [--out FILE]... -- CMD ARGS [--- CMD ARGS]...
        time CMD (wall clock, user/sys CPU and peak RSS of that very child via
        os.wait4); several commands separated by '---' are run one after the
        other and their times summed (one "run"). Appends a record to
        $BENCH_RECORDS and prints the median wall time.
  set KEY JSON          append an arbitrary record
  get KEY [FIELD]...    print a record (or a field of it)
  mismatch TEXT         record a correctness mismatch (printed loudly)
  count FILE...         packets in pcap files (sum)
  gen FILE              parse trafficgen's stderr into JSON
  slice IN OUT BYTES    first whole records of a pcap up to BYTES
  dropcaches            sync + drop the page cache; exit 1 if not permitted
  live ...              live-capture comparison (see live_main)
  smallgen FILE N       N small packets (64-128 bytes, many flows) as a pcap
  manyflows FILE N      a busy host's N two-packet UDP flows as a pcap
  intercept NS WORK REWIND REWINDD PCAP GENJSON [ROUNDS] [RATE]
                        lawful intercept: warrant to first packet, capture CPU with
                        10 cases beside none (lisend and liprobe run inside NS)
  report                results.json + the final table
"""
import json
import os
import re
import signal
import statistics
import struct
import subprocess
import sys
import time

RECORDS = os.environ.get("BENCH_RECORDS", "bench/work/records.jsonl")


def add_record(key, value):
    with open(RECORDS, "a") as f:
        f.write(json.dumps({"key": key, "value": value}) + "\n")


def load_records():
    out = {}
    if os.path.exists(RECORDS):
        with open(RECORDS) as f:
            for line in f:
                r = json.loads(line)
                out[r["key"]] = r["value"]
    return out


def drop_caches():
    os.sync()
    try:
        with open("/proc/sys/vm/drop_caches", "w") as f:
            f.write("3\n")
        return True
    except OSError:
        return False


def timed(argv, log):
    """Run argv to completion; return wall s, user s, sys s, peak RSS KiB of that child."""
    with open(log, "ab") as lf:
        t0 = time.perf_counter()
        p = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=lf, stderr=lf)
        _, status, ru = os.wait4(p.pid, 0)
        wall = time.perf_counter() - t0
    p.returncode = os.waitstatus_to_exitcode(status)
    if p.returncode != 0:
        sys.stderr.write("bench: command failed (exit %d): %s\n" % (p.returncode, " ".join(argv)))
        with open(log, "rb") as lf:
            sys.stderr.write(lf.read()[-2000:].decode(errors="replace"))
        sys.exit(1)
    return wall, ru.ru_utime, ru.ru_stime, ru.ru_maxrss


def run_main(args):
    key = args.pop(0)
    runs, warmup, drop, outs = 1, 0, False, []
    while args and args[0] != "--":
        a = args.pop(0)
        if a == "--runs":
            runs = int(args.pop(0))
        elif a == "--warmup":
            warmup = int(args.pop(0))
        elif a == "--drop":
            drop = True
        elif a == "--out":
            outs.append(args.pop(0))
        else:
            sys.exit("benchlib run: unknown option " + a)
    args.pop(0)
    cmds, cur = [], []
    for a in args:
        if a == "---":
            cmds.append(cur)
            cur = []
        else:
            cur.append(a)
    cmds.append(cur)
    log = os.path.join(os.path.dirname(RECORDS) or ".", "commands.log")
    with open(log, "a") as lf:
        lf.write("## %s: %s\n" % (key, " ; ".join(" ".join(c) for c in cmds)))
    samples = []
    for i in range(warmup + runs):
        tot = [0.0, 0.0, 0.0, 0]
        for c in cmds:
            if drop and i >= warmup:
                drop_caches()
            w, u, s, rss = timed(c, log)
            tot = [tot[0] + w, tot[1] + u, tot[2] + s, max(tot[3], rss)]
        if i >= warmup:
            samples.append({"wall": tot[0], "user": tot[1], "sys": tot[2], "maxrss_kb": tot[3]})
    walls = [s["wall"] for s in samples]
    rec = {
        "runs": samples,
        "median": statistics.median(walls),
        "min": min(walls),
        "max": max(walls),
        "cpu": statistics.median(s["user"] + s["sys"] for s in samples),
        "maxrss_kb": max(s["maxrss_kb"] for s in samples),
        "cache": "cold" if drop else "warm",
        "out_bytes": sum(os.path.getsize(o) for o in outs) if outs else None,
    }
    add_record(key, rec)
    print("%.6f" % rec["median"])


def pcap_count(path):
    n = 0
    with open(path, "rb") as f:
        hdr = f.read(24)
        if len(hdr) < 24:
            return 0
        magic = struct.unpack("<I", hdr[:4])[0]
        if magic in (0xa1b2c3d4, 0xa1b23c4d):
            fmt = "<I"
        elif magic in (0xd4c3b2a1, 0x4d3cb2a1):
            fmt = ">I"
        else:
            raise SystemExit("%s: not a pcap file" % path)
        while True:
            rh = f.read(16)
            if len(rh) < 16:
                break
            incl = struct.unpack(fmt, rh[8:12])[0]
            f.seek(incl, 1)
            n += 1
    return n


def pcap_records(path):
    """[(ts_ns, bytes)] of a classic pcap (micro- or nanosecond, either byte order)."""
    with open(path, "rb") as f:
        data = f.read()
    if len(data) < 24:
        return []
    magic = struct.unpack("<I", data[:4])[0]
    e = "<" if magic in (0xa1b2c3d4, 0xa1b23c4d) else ">"
    nano = struct.unpack(e + "I", data[:4])[0] == 0xa1b23c4d
    if struct.unpack(e + "I", data[:4])[0] not in (0xa1b2c3d4, 0xa1b23c4d):
        raise SystemExit("%s: not a pcap file" % path)
    out, off = [], 24
    while off + 16 <= len(data):
        sec, frac, incl, _ = struct.unpack(e + "IIII", data[off:off + 16])
        out.append((sec * 10**9 + (frac if nano else frac * 1000), data[off + 16:off + 16 + incl]))
        off += 16 + incl
    return out


def tshark_fields(cap, flt, fields):
    """tshark's rows for a display filter: a list of lists (one per frame;
    multi-valued fields stay comma-joined)."""
    argv = ["tshark", "-r", cap, "-Y", flt, "-T", "fields", "-E", "separator=\t"]
    for f in fields:
        argv += ["-e", f]
    out = subprocess.run(argv, capture_output=True, text=True, check=True).stdout
    return [ln.split("\t") for ln in out.splitlines() if ln]


def calljudge_main(cap, call_id, out):
    """One call's packets as tshark selects them from the whole capture: the
    frames of its Call-ID (sip.Call-ID) and the UDP packets to or from an
    address and port its SDP announced (c= and m= lines, the port and the
    next one for RTCP unless a=rtcp-mux), from the announcement on, until
    another Call-ID's SDP announces the same address and port (a re-used
    port belongs to the newer call). Those frames are copied to OUT as they
    are (a classic pcap in, as bench.sh's mergecap -F nsecpcap writes; else
    tshark -F nsecpcap writes them) for a packet-by-packet comparison.
    Nothing here comes from rewind's answer."""
    def ns(epoch):  # tshark's frame.time_epoch, exactly
        sec, _, frac = epoch.partition(".")
        return int(sec) * 10**9 + int((frac + "000000000")[:9])

    # one pass of tshark over the whole capture: SIP (with its SDP) and every UDP packet
    # (the innermost IP header's and UDP header's values: the last of several)
    rows = tshark_fields(cap, "sip or udp", [
        "frame.number", "frame.time_epoch", "ip.src", "udp.srcport", "ip.dst", "udp.dstport",
        "sip.Call-ID", "sdp.connection_info.address", "sdp.media.port", "sdp.media_attr",
        "ipv6.src", "ipv6.dst"])
    ann, frames, udp = [], set(), []
    last = lambda v: v.split(",")[-1]  # noqa: E731
    for r in rows:
        r += [""] * (12 - len(r))
        if call_id in r[6].split(","):
            frames.add(int(r[0]))
        elif r[3] and not r[6]:
            udp.append((int(r[0]), ns(r[1]), last(r[2] or r[10]), int(last(r[3])),
                        last(r[4] or r[11]), int(last(r[5]))))
        addrs = [a for a in r[7].split(",") if a]
        ports = [int(p) for p in r[8].split(",") if p.isdigit()]
        if not r[6] or not addrs:
            continue
        mux = "rtcp-mux" in r[9]
        eps = []
        for i, port in enumerate(ports):
            if port == 0:
                continue
            # one c= line for all, or a session one and one per m= line
            a = (addrs[i] if len(addrs) == len(ports) else
                 addrs[i + 1] if len(addrs) == len(ports) + 1 else addrs[0])
            eps.append((a, port))
            if not mux:
                eps.append((a, port + 1))
        ann.append((ns(r[1]), r[6].split(",")[0], eps))
    if not frames:
        raise SystemExit("calljudge: tshark finds no SIP with Call-ID %s" % call_id)
    # each address and port the call announced: the time spans it owns it
    own = {}
    for t, cid, eps in sorted(ann, key=lambda x: x[0]):
        for ep in eps:
            spans = own.setdefault(ep, []) if cid == call_id else own.get(ep)
            if spans is None:
                continue
            if cid == call_id:
                if not spans or spans[-1][1] is not None:
                    spans.append([t, None])
            elif spans and spans[-1][1] is None:
                spans[-1][1] = t
    for n, t, sa, sp, da, dp in udp:
        for ep in ((da, dp), (sa, sp)):
            if any(lo <= t and (hi is None or t < hi) for lo, hi in own.get(ep, [])):
                frames.add(n)
                break
    with open(cap, "rb") as f:
        magic = struct.unpack("<I", f.read(4))[0]
    if magic not in (0xa1b2c3d4, 0xa1b23c4d, 0xd4c3b2a1, 0x4d3cb2a1):
        subprocess.run(["tshark", "-r", cap, "-F", "nsecpcap", "-w", out, "-Y",
                        "frame.number in {%s}" % " ".join(str(n) for n in sorted(frames))],
                       capture_output=True, check=True)
        return
    # a classic pcap: frame N is its Nth record, copied as it is
    with open(cap, "rb") as f, open(out, "wb") as o:
        hdr = f.read(24)
        e = "<" if magic in (0xa1b2c3d4, 0xa1b23c4d) else ">"
        o.write(hdr)
        n, last = 0, max(frames)
        while n < last:
            rh = f.read(16)
            if len(rh) < 16:
                break
            n += 1
            incl = struct.unpack(e + "I", rh[8:12])[0]
            if n in frames:
                o.write(rh + f.read(incl))
            else:
                f.seek(incl, 1)


def samepackets_main(what, a, b):
    """MATCH when two captures hold the same packets, byte for byte, in the
    same order (times to the microsecond); else a MISMATCH saying how."""
    x, y = pcap_records(a), pcap_records(b)
    xs = [(t // 1000, d) for t, d in x]
    ys = [(t // 1000, d) for t, d in y]
    add_record("sessions.call.judge", {"rewind": len(xs), "tshark": len(ys), "match": xs == ys})
    if xs == ys:
        print("%s: MATCH (%d packets, byte for byte)" % (what, len(xs)))
        return
    sx, sy = set(xs), set(ys)
    only_a = len([1 for p in xs if p not in sy])
    only_b = len([1 for p in ys if p not in sx])
    main_mismatch("%s: rewind %d packets, tshark %d (%d only rewind's, %d only tshark's%s)" % (
        what, len(xs), len(ys), only_a, only_b,
        ", the same in another order" if sorted(xs) == sorted(ys) else ""))


def gen_main(path):
    d = {"needles": []}
    with open(path) as f:
        for line in f:
            w = line.split()
            if not w:
                continue
            if w[0] == "needle":
                d["needles"].append({"addr": w[1], "packets": int(w[3])})
            elif w[0] == "wide":
                d["wide"] = {"net": w[1], "packets": int(w[3])}
            elif w[0] == "port25":
                d["port25"] = int(w[2])
            elif w[0] == "total":
                kv = dict(zip(w[1::2], w[2::2]))
                d["packets"] = int(kv["packets"])
                d["bytes"] = int(kv["bytes"])
                d["first_ts"] = kv["first_ts"]
                d["last_ts"] = kv["last_ts"]
    for k in ("wide", "port25", "packets"):
        if k not in d or not d["needles"]:
            sys.exit("bench: cannot parse trafficgen output %s (missing %s)" % (path, k))
    print(json.dumps(d))


def slice_main(src, dst, limit):
    limit = int(limit)
    with open(src, "rb") as f, open(dst, "wb") as o:
        hdr = f.read(24)
        fmt = "<I" if struct.unpack("<I", hdr[:4])[0] in (0xa1b2c3d4, 0xa1b23c4d) else ">I"
        o.write(hdr)
        size = 24
        while True:
            rh = f.read(16)
            if len(rh) < 16:
                break
            incl = struct.unpack(fmt, rh[8:12])[0]
            if size + 16 + incl > limit:
                break
            o.write(rh + f.read(incl))
            size += 16 + incl


def du_bytes(path):
    r = subprocess.run(["du", "-s", "-B1", path], capture_output=True, text=True)
    return int(r.stdout.split()[0]) if r.returncode == 0 and r.stdout else 0


def apparent_bytes(path):
    tot = 0
    for d, _, files in os.walk(path):
        for f in files:
            try:
                tot += os.lstat(os.path.join(d, f)).st_size
            except OSError:
                pass
    return tot


def sizes_main(key, arch, packet_bytes, status_index=""):
    pb = int(packet_bytes)
    idx, seg = du_bytes(os.path.join(arch, "index")), du_bytes(os.path.join(arch, "segments"))
    rec = {"index_bytes": idx, "index_apparent_bytes": apparent_bytes(os.path.join(arch, "index")),
           "segments_bytes": seg, "packet_bytes": pb,
           "index_pct": 100.0 * idx / pb, "segments_pct": 100.0 * seg / pb,
           "status_index": status_index,
           # RocksDB write-ahead log not yet flushed to SST files: every reader
           # (rewind query/status) replays it when it opens the index.
           "index_wal_bytes": sum(os.path.getsize(os.path.join(arch, "index", f))
                                  for f in os.listdir(os.path.join(arch, "index"))
                                  if f.endswith(".log"))}
    add_record(key, rec)


def expect_main(what, k, addr=""):
    """Expected count over gen1..genK: 'needle ADDR', 'port25', 'wide', 'packets', 'bytes'."""
    R = load_records()
    tot = 0
    for i in range(1, int(k) + 1):
        g = R["gen%d" % i]
        if what == "needle":
            tot += sum(n["packets"] for n in g["needles"] if n["addr"] == addr)
        elif what == "wide":
            tot += g["wide"]["packets"]
        else:
            tot += g[what]
    print(tot)


# ---------------------------------------------------------------- live capture

def sh(*argv, **kw):
    return subprocess.run(list(argv), capture_output=True, text=True, **kw)


def wait_text(path, text, timeout):
    end = time.time() + timeout
    while time.time() < end:
        try:
            with open(path, errors="replace") as f:
                if text in f.read():
                    return True
        except OSError:
            pass
        time.sleep(0.05)
    return False


def tcpreplay_sent(out):
    m = re.search(r"Successful packets:\s+(\d+)", out)
    if not m:
        m = re.search(r"Actual:\s+(\d+) packets", out)
    fail = re.search(r"Failed packets:\s+(\d+)", out)
    actual = re.search(r"Actual:\s+\d+ packets \((\d+) bytes\) sent in ([\d.]+) seconds", out)
    rate = re.search(r"Rated:\s+[\d.]+ Bps, ([\d.]+) Mbps, ([\d.]+) pps", out)
    return {
        "sent": int(m.group(1)) if m else None,
        "failed": int(fail.group(1)) if fail else None,
        "seconds": float(actual.group(2)) if actual else None,
        "mbps": float(rate.group(1)) if rate else None,
        "pps": float(rate.group(2)) if rate else None,
    }


def softnet_dropped():
    tot = 0
    try:
        with open("/proc/net/softnet_stat") as f:
            for line in f:
                tot += int(line.split()[1], 16)
    except (OSError, IndexError, ValueError):
        return None
    return tot


def veth_rx_dropped(ns):
    r = sh("ip", "netns", "exec", ns, "cat", "/sys/class/net/rwb0/statistics/rx_dropped")
    try:
        return int(r.stdout.strip())
    except ValueError:
        return None


def delta(a, b):
    return b - a if a is not None and b is not None else None


def proc_cpu(pids):
    """utime + stime in seconds of these processes (all their threads), from /proc."""
    tot = 0.0
    hz = os.sysconf("SC_CLK_TCK")
    for pid in pids:
        try:
            with open("/proc/%d/stat" % pid) as f:
                w = f.read().rsplit(")", 1)[1].split()
            tot += (int(w[11]) + int(w[12])) / hz
        except (OSError, IndexError, ValueError):
            pass
    return tot


def proc_hwm_kb(pids):
    tot = 0
    for pid in pids:
        try:
            with open("/proc/%d/status" % pid) as f:
                m = re.search(r"VmHWM:\s+(\d+)", f.read())
            tot += int(m.group(1)) if m else 0
        except OSError:
            pass
    return tot


def children(pid):
    """Processes whose parent is pid (any of its threads)."""
    out = []
    for d in os.listdir("/proc"):
        if not d.isdigit():
            continue
        try:
            with open("/proc/%s/stat" % d) as f:
                if int(f.read().rsplit(")", 1)[1].split()[1]) == pid:
                    out.append(int(d))
        except (OSError, IndexError, ValueError):
            pass
    return out


def steno_packets(pkdir):
    """Packets in Stenographer's packet files: they are TPACKET_V3 blocks of
    1 MiB as the kernel filled them; each block descriptor holds its packet
    count (struct tpacket_block_desc: version, offset_to_priv, then
    block_status, num_pkts)."""
    n = 0
    for name in os.listdir(pkdir):
        with open(os.path.join(pkdir, name), "rb") as f:
            while True:
                b = f.read(16)
                if len(b) < 16:
                    break
                n += struct.unpack("<I", b[12:16])[0]
                f.seek((1 << 20) - 16, 1)
    return n


# Capturers of the live comparison: rewindd and Stenographer with the same
# kernel ring (64 MiB, and 16 MiB as "...16"), tcpdump with 64 MiB.
LIVE_TOOLS = ("rewindd", "rewindd16", "stenographer", "stenographer16", "tcpdump")


def steno_available():
    return (subprocess.run(["sh", "-c", "command -v stenographer && command -v stenotype && "
                            "command -v stenoread && id stenographer"],
                           capture_output=True).returncode == 0 and
            os.path.exists("/etc/stenographer/certs/client_key.pem"))


def steno_setup(arch, blocks, port):
    """A Stenographer config of one thread on rwb0 under arch (owned by the
    stenographer user); the certificates are the ones stenokeys.sh made
    when the package was installed."""
    for d in ("pk", "ix"):
        os.makedirs(os.path.join(arch, d), exist_ok=True)
    cfg = {"Threads": [{"PacketsDirectory": os.path.join(arch, "pk"),
                        "IndexDirectory": os.path.join(arch, "ix"),
                        "MaxDirectoryFiles": 30000, "DiskFreePercentage": 1}],
           "StenotypePath": "/usr/sbin/stenotype", "Interface": "rwb0", "Port": port,
           "Host": "127.0.0.1",
           # --no_watchdogs: on an idle TPACKET_V3 link stenotype's watchdog
           # aborts it after ~20 s; aiops must not exceed blocks; stats
           # every 2 s give its packet and drop counts
           "Flags": ["--no_watchdogs", "--blocks=%d" % blocks, "--aiops=%d" % max(1, blocks // 2),
                     "-v", "--stats_sec=2"],
           "CertPath": "/etc/stenographer/certs"}
    path = os.path.join(arch, "config")
    with open(path, "w") as f:
        json.dump(cfg, f)
    sh("chown", "-R", "stenographer:stenographer", arch)
    return path


def steno_stop(arch, known=()):
    """Stop the stenotype processes of the run writing into arch, by pid:
    the one its server started (known), and any it started again (their --dir is a
    /tmp/stenographerNNN whose links point into arch). SIGTERM, up to 5 s,
    then SIGKILL."""
    # by the scan only: a known pid that has exited may name another process
    pids = set()
    for d in os.listdir("/proc"):
        if not d.isdigit():
            continue
        try:
            with open("/proc/%s/cmdline" % d, "rb") as f:
                argv = f.read().decode(errors="replace").split("\0")
        except OSError:
            continue
        if not argv or not argv[0].endswith("stenotype"):
            continue
        for a in argv:
            if a.startswith("--dir=") and os.path.realpath(
                    os.path.join(a[6:], "PKT0")).startswith(arch + "/"):
                pids.add(int(d))
    for sig in (signal.SIGTERM, signal.SIGKILL):
        for c in pids:
            try:
                os.kill(c, sig)
            except OSError:
                pass
        for _ in range(50):
            if not any(os.path.exists("/proc/%d" % c) for c in pids):
                return
            time.sleep(0.1)


def steno_stats(text):
    m = re.findall(r"Thread 0 stats: .*? packets=(\d+) .*? drops=(\d+)", text)
    return (int(m[-1][0]), int(m[-1][1])) if m else (None, None)


def steno_query(ns, cfg, q, out):
    t0 = time.perf_counter()
    with open(out, "wb") as o:
        subprocess.run(["ip", "netns", "exec", ns, "env", "STENOGRAPHER_CONFIG=" + cfg,
                        "stenocurl", "/query", "-d", q, "--silent", "--max-time", "60"],
                       stdout=o, stderr=subprocess.DEVNULL)
    t = time.perf_counter() - t0
    try:
        n = pcap_count(out)
    except Exception:  # an empty or partial answer
        n = 0
    return n, t


def live_queries(tool, ns, arch, rewind, cfg, expect, work):
    """needle, port and net queries on the tool's own archive: seconds and
    packets each (checked against trafficgen's counts)."""
    out = {}
    qs = (("needle", "host " + expect["needle"], expect["needle_packets"]),
          ("port", "port 25", expect["port25"]),
          ("net", "net " + expect["wide"], expect["wide_packets"]))
    for name, q, want in qs:
        f = os.path.join(work, "liveq.pcap")
        if tool.startswith("rewindd"):
            t0 = time.perf_counter()
            r = sh(rewind, "query", "--dir", arch, "--count", q)
            t = time.perf_counter() - t0
            n = int(r.stdout.strip()) if r.returncode == 0 and r.stdout.strip() else None
        elif tool.startswith("stenographer"):
            n, t = steno_query(ns, cfg, q, f)
        else:
            t0 = time.perf_counter()
            sh("tcpdump", "-r", arch + ".pcap", "-w", f, q)
            t = time.perf_counter() - t0
            n = pcap_count(f)
        out[name] = {"seconds": t, "packets": n, "expected": want}
        if os.path.exists(f):
            os.unlink(f)
    return out


def live_one(tool, rate, ns, pcap, work, rewind, rewindd, expect=None):
    """One capture run: start the capturer in the namespace, replay, stop, count.
    CPU is read from /proc just before the replay and 2.5 s after it (the
    capturer's own threads, and stenotype for Stenographer): what the
    replay cost, with start and stop left out; `cpu` is the whole life
    (rusage), as before. rate "fresh": replay at 500 Mbit/s, then measure
    the time until a needle query answers every needle packet, and run the
    queries on that archive."""
    tag = "%s-%s" % (tool, rate)
    log = os.path.join(work, "live-%s.log" % tag)
    arch = os.path.join(work, "live-%s" % tag)
    sh("rm", "-rf", arch)
    cfg = None
    if tool.startswith("rewindd"):
        buf = "16M" if tool.endswith("16") else "64M"
        argv = ["ip", "netns", "exec", ns, rewindd, "--dir", arch, "-i", "rwb0=live",
                "--buffer-size", buf]
        ready = "ready"
    elif tool.startswith("stenographer"):
        cfg = steno_setup(arch, 16 if tool.endswith("16") else 64, 24000 + os.getpid() % 1000)
        argv = ["ip", "netns", "exec", ns, "setpriv", "--reuid=stenographer",
                "--regid=stenographer", "--init-groups", "stenographer", "-config", cfg,
                "-syslog=false"]
        ready = "starting to process packets"  # stenotype's capture thread runs
    else:
        argv = ["ip", "netns", "exec", ns, "tcpdump", "-n", "-i", "rwb0", "-B", "65536",
                "--time-stamp-precision=nano", "-w", arch + ".pcap"]
        ready = "listening on"
    res = {"tool": tool, "rate": rate}
    pids = []
    with open(log, "wb") as lf:
        p = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=lf, stderr=lf)
    try:
        if not wait_text(log, ready, 20):
            res["error"] = "capturer did not start: " + open(log, errors="replace").read()[-500:]
            return res
        time.sleep(0.3)
        pids = [p.pid] + children(p.pid)
        sn0, vd0 = softnet_dropped(), veth_rx_dropped(ns)
        c0 = proc_cpu(pids)
        if rate == "idle":  # the same life with no traffic: start, wait, stop
            time.sleep(1.0)
            res["sent"] = 0
        else:
            # "topspeed" or a rate in Mbps; "x3" after either replays the
            # file three times in one run (tcpreplay --loop); "small"
            # replays the small-packet file at top speed
            base, _, loops = str(rate).partition("x")
            rargs = ["--topspeed"] if base in ("topspeed", "small") else \
                ["--mbps", "500" if base == "fresh" else base]
            if loops:
                rargs.append("--loop=" + loops)
            r = sh("ip", "netns", "exec", ns, "timeout", "120", "tcpreplay", "-i", "rwb1", *rargs,
                   pcap)
            res["tcpreplay_rc"] = r.returncode
            res.update(tcpreplay_sent(r.stdout + r.stderr))
        t_sent = time.perf_counter()
        if rate == "fresh" and expect:
            # rewindd: every packet sent answers a query (the last ones
            # too); Stenographer: the needle (a query of everything takes
            # it minutes), which it answers only after a file rotation
            want = expect["needle_packets"]
            limit = 20 if tool.startswith("rewindd") else 120
            while time.perf_counter() - t_sent < limit:
                if tool.startswith("rewindd"):
                    q = sh(rewind, "query", "--dir", arch, "--count")
                    n = int(q.stdout.strip()) if q.returncode == 0 and q.stdout.strip() else 0
                    n = want if n >= (res.get("sent") or 0) else 0
                elif tool.startswith("stenographer"):
                    n, _ = steno_query(ns, cfg, "host " + expect["needle"],
                                       os.path.join(work, "fresh.pcap"))
                else:
                    break
                if n >= want:
                    res["fresh_seconds"] = time.perf_counter() - t_sent
                    # the capturer's CPU from before the replay until its
                    # packets answer: Stenographer indexes a file when it
                    # rotates it, after the 2.5 s the CPU column counts
                    res["fresh_cpu"] = proc_cpu(pids) - c0
                    break
                time.sleep(0.05 if tool.startswith("rewindd") else 1.0)
            res["queries"] = live_queries(tool, ns, arch, rewind, cfg, expect, work) \
                if tool != "tcpdump" else None
        else:
            time.sleep(2.5)  # more than one flush interval
        c1 = proc_cpu(pids)
        res["cpu_window"] = c1 - c0
        res["rss_kb"] = proc_hwm_kb(pids)
        res["softnet_dropped"] = delta(sn0, softnet_dropped())
        res["veth_rx_dropped"] = delta(vd0, veth_rx_dropped(ns))
        t0 = time.perf_counter()
        p.send_signal(signal.SIGTERM)
        _, status, ru = os.wait4(p.pid, 0)
        if tool.startswith("stenographer"):
            # then its stenotype (by pid: the one it started, and any it
            # restarted, found by the directory it writes into arch)
            steno_stop(arch, pids[1:])
        res["stop_seconds"] = time.perf_counter() - t0
        res["exit"] = os.waitstatus_to_exitcode(status)
        p.returncode = res["exit"]
        res["cpu_user"] = ru.ru_utime
        res["cpu_sys"] = ru.ru_stime
        res["cpu"] = ru.ru_utime + ru.ru_stime
        res["maxrss_kb"] = ru.ru_maxrss
        p = None
        text = open(log, errors="replace").read()
        if tool.startswith("rewindd"):
            q = sh(rewind, "query", "--dir", arch, "--count")
            res["captured"] = int(q.stdout.strip()) if q.returncode == 0 else None
            st = sh(rewind, "status", "--dir", arch).stdout
            res["status"] = st
            m = re.search(r"^live\s.*\s(\d+)/(\d+)\s*$", st, re.M)
            if m:
                res["kernel_drops"], res["queue_drops"] = int(m.group(1)), int(m.group(2))
        elif tool.startswith("stenographer"):
            # the packets in its files (stopping wrote them out), and the
            # kernel's drops from stenotype's last statistics line
            res["captured"] = steno_packets(os.path.join(arch, "pk"))
            res["kernel_drops"], res["queue_drops"] = steno_stats(text)[1], None
        else:
            res["captured"] = pcap_count(arch + ".pcap")
            m = re.search(r"(\d+) packets dropped by kernel", text)
            res["kernel_drops"] = int(m.group(1)) if m else None
            m = re.search(r"(\d+) packets received by filter", text)
            res["received_by_filter"] = int(m.group(1)) if m else None
            res["queue_drops"] = None
        if res.get("sent") is not None and res.get("captured") is not None:
            res["lost"] = res["sent"] - res["captured"]
            res["unaccounted"] = res["lost"] - (res.get("kernel_drops") or 0) - \
                (res.get("queue_drops") or 0)
        # per packet stored: a capturer that drops packets does not pay for them
        if res.get("captured"):
            res["us_per_packet"] = res["cpu_window"] / res["captured"] * 1e6
        if res.get("sent"):
            res["us_per_sent"] = res["cpu_window"] / res["sent"] * 1e6
    finally:
        if p is not None:
            p.kill()
            p.wait()
        if cfg:
            steno_stop(arch, pids[1:])
            # the server links its threads' directories from a fresh
            # /tmp/stenographerNNN: remove the one that points into arch
            import glob
            for d in glob.glob("/tmp/stenographer[0-9]*"):
                if os.path.realpath(os.path.join(d, "PKT0")).startswith(arch + "/"):
                    sh("rm", "-rf", d)
        sh("rm", "-rf", arch, arch + ".pcap")
    return res


def manyflows_main(path, nflows):
    """A busy host (198.51.100.9) asking N peers once each over UDP: N flows
    of two packets (query, answer), 1 us apart, for the flows listing's rate."""
    n = int(nflows)
    busy = bytes([198, 51, 100, 9])
    with open(path, "wb") as f:
        f.write(struct.pack("<IHHiIII", 0xa1b23c4d, 2, 4, 0, 0, 65535, 1))
        ts = 1700000000 * 10**9
        buf = []
        for i in range(n):
            peer = bytes([10, (i >> 16) & 255, (i >> 8) & 255, i & 255])
            sp = 1024 + i % 60000
            for d in (0, 1):
                src, dst = (busy, peer) if d == 0 else (peer, busy)
                a, b2 = (sp, 53) if d == 0 else (53, sp)
                udp = struct.pack(">HHHH", a, b2, 28, 0) + bytes(20)
                ip = struct.pack(">BBHHHBBH4s4s", 0x45, 0, 20 + len(udp), i & 0xffff, 0, 64, 17, 0,
                                 src, dst)
                frame = b"\x02\x00\x00\x00\x00\x01\x02\x00\x00\x00\x00\x02\x08\x00" + ip + udp
                ts += 1000
                buf.append(struct.pack("<IIII", ts // 10**9, ts % 10**9, len(frame), len(frame)) +
                           frame)
            if len(buf) >= 8192:
                f.write(b"".join(buf))
                buf = []
        f.write(b"".join(buf))


def smallgen_main(path, packets):
    """A capture of small packets (64-128 bytes on the wire), many flows:
    UDP and TCP between 65536 client and 4096 server addresses, in a
    deterministic order. Per-packet cost dominates its capture."""
    import random
    rnd = random.Random(17)
    n = int(packets)
    flows = []
    for i in range(50000):
        c = 0x0a000000 | rnd.getrandbits(16)
        sv = 0xc0a80000 | rnd.getrandbits(12)
        flows.append((c, sv, 1024 + rnd.getrandbits(15), rnd.choice((53, 80, 443, 123, 5060)),
                      rnd.choice((6, 17))))
    with open(path, "wb") as f:
        f.write(struct.pack("<IHHiIII", 0xa1b23c4d, 2, 4, 0, 0, 262144, 1))
        ts = 1700000000 * 10**9
        buf = []
        for i in range(n):
            c, sv, cp, sp, proto = flows[min(int(rnd.paretovariate(1.2)) - 1, 49999)
                                         if i % 2 else rnd.randrange(50000)]
            if i % 3 == 0:
                c, sv, cp, sp = sv, c, sp, cp
            size = 64 + rnd.randrange(65)
            l4 = 20 if proto == 6 else 8
            ip = struct.pack(">BBHHHBBHII", 0x45, 0, size - 14, i & 0xffff, 0, 64, proto, 0, c, sv)
            if proto == 6:
                th = struct.pack(">HHIIBBHHH", cp, sp, i, 0, 0x50, 0x18, 1024, 0, 0)
            else:
                th = struct.pack(">HHHH", cp, sp, size - 14 - 20, 0)
            frame = b"\x02\x00\x00\x00\x00\x02\x02\x00\x00\x00\x00\x01\x08\x00" + ip + th
            frame += bytes(size - len(frame))
            ts += 1000
            buf.append(struct.pack("<IIII", ts // 10**9, ts % 10**9, size, size) + frame)
            if len(buf) == 4096:
                f.write(b"".join(buf))
                buf = []
        f.write(b"".join(buf))


def replay_main(args):
    """rewind replay --topspeed beside tcpreplay --topspeed: the same file
    out of one end of a veth pair in namespace ns, nothing listening on the
    other (the kernel drops what arrives). Packets/s as each tool reports it
    (rewind's summary: first frame to last; tcpreplay's "Rated"), median
    of `rounds` runs each, the tools taking turns."""
    ns, pcap, rewind = args[:3]
    rounds = int(args[3]) if len(args) > 3 else 3
    out = {"netns": ns, "pcap_bytes": os.path.getsize(pcap), "pcap_packets": pcap_count(pcap),
           "runs": []}
    tools = {"rewind": [rewind, "replay", "--interface", "rwr0", "--topspeed", pcap],
             "tcpreplay": ["tcpreplay", "-i", "rwr0", "--topspeed", pcap]}
    pats = {"rewind": r"rate:\s+[0-9.]+ Mbit/s, ([0-9.]+) packets/s",
            "tcpreplay": r"Rated: .*?([0-9.]+) pps"}
    try:
        if not veth_ns_or_skip(ns, "rwr0", "rwr1", "replay", out):
            return
        order = ("rewind", "tcpreplay")
        for rnd in range(rounds):
            for tool in order:
                r = sh("ip", "netns", "exec", ns, "timeout", "120", *tools[tool])
                m = re.search(pats[tool], r.stdout + r.stderr)
                res = {"tool": tool, "round": rnd, "rc": r.returncode,
                       "pps": float(m.group(1)) if m else None}
                if r.returncode != 0 or not m:
                    res["error"] = (r.stderr or r.stdout).strip()[-200:]
                out["runs"].append(res)
                print("replay: %-9s %s packets/s" % (tool, res["pps"]))
            order = order[::-1]
    finally:
        sh("ip", "netns", "del", ns)
    for tool in ("rewind", "tcpreplay"):
        v = sorted(x["pps"] for x in out["runs"] if x["tool"] == tool and x["pps"])
        out[tool + "_pps"] = v[(len(v) - 1) // 2] if v else None
    add_record("replay", out)


def veth_ns_setup(ns, a, b):
    """Make namespace ns with a veth pair a-b in it (IPv6 off, so that no
    router solicitation joins the replay), jumbo MTU. None, or what failed."""
    x = ["ip", "netns", "exec", ns]
    for c in (["ip", "netns", "add", ns],
              x + ["ip", "link", "add", a, "type", "veth", "peer", "name", b],
              x + ["sysctl", "-qw", "net.ipv6.conf.all.disable_ipv6=1"],
              x + ["sysctl", "-qw", "net.ipv6.conf.default.disable_ipv6=1"],
              x + ["ip", "link", "set", "lo", "up"],
              x + ["ip", "link", "set", a, "mtu", "9000", "up"],
              x + ["ip", "link", "set", b, "mtu", "9000", "up"]):
        r = sh(*c)
        if r.returncode != 0:
            return "%s: %s" % (" ".join(c), r.stderr.strip())
    return None


def veth_ns_or_skip(ns, a, b, section, out):
    """veth_ns_setup, and when it fails the section is recorded as skipped,
    saying why. True when the namespace is there."""
    why = veth_ns_setup(ns, a, b)
    if why:
        out["skipped"] = why
        add_record(section, out)
        print("%s: skipped: %s" % (section, why))
    return why is None


def live_main(args):
    ns, pcap, work, rewind, rewindd = args[:5]
    rates = args[5].split() if len(args) > 5 else ["500", "1000", "topspeed"]
    expect = json.loads(open(args[6]).read()) if len(args) > 6 and args[6] else None
    small = args[7] if len(args) > 7 else ""
    out = {"netns": ns, "pcap_bytes": os.path.getsize(pcap), "pcap_packets": pcap_count(pcap),
           "runs": [], "expect": expect}
    if small:
        out["small_bytes"] = os.path.getsize(small)
        out["small_packets"] = pcap_count(small)
    tools = os.environ.get("BENCH_LIVE_TOOLS", " ".join(LIVE_TOOLS)).split()
    if not steno_available():
        out["stenographer_skipped"] = "stenographer, stenotype, stenoread, its user or its " \
            "certificates missing (tools/deps.sh installs the Debian packages)"
        tools = [t for t in tools if not t.startswith("stenographer")]
    out["tools"] = tools
    try:
        if not veth_ns_or_skip(ns, "rwb0", "rwb1", "live", out):
            return
        # Each round measures each capturer's fixed cost first ("idle":
        # started, left idle about as long as a replay takes, stopped). A
        # capture runs for months: what it costs per packet is a run's CPU
        # less this; the CPU of the replay window (cpu_window) leaves start
        # and stop out altogether.
        # The capturers take turns, and their order rotates each round: on
        # a VM, memory that another run has just freed is much cheaper to
        # touch again than memory never touched, so running one tool's
        # series first would charge it what the others then reuse.
        rounds = int(os.environ.get("BENCH_LIVE_ROUNDS", "3"))
        order = list(tools)
        out["rounds"] = rounds
        # A sustained run (a rate and a number of loops of the file, about a
        # minute): what a capture costs once its index is compacting, which a
        # replay of a few seconds never shows. Once, rewindd and Stenographer.
        sustain = os.environ.get("BENCH_LIVE_SUSTAIN", "1000x45")
        if sustain in ("", "0") or sustain in rates:
            sustain = None
        out["sustain"] = sustain
        plan = ["idle"] + rates + (["small"] if small else []) + ([sustain] if sustain else []) + \
            (["fresh"] if expect else [])
        for rnd in range(rounds):
            for rate in plan:
                if rate in ("fresh", sustain) and rnd > 0:
                    continue  # freshness and queries: once (Stenographer's takes a minute)
                for tool in order:
                    if rate == sustain and tool not in ("rewindd", "stenographer"):
                        continue
                    try:
                        res = live_one(tool, rate, ns, small if rate == "small" else pcap, work,
                                       rewind, rewindd, expect)
                    except Exception as e:  # report it, keep the other runs and the table
                        res = {"tool": tool, "rate": rate,
                               "error": "%s: %s" % (type(e).__name__, e)}
                    res["round"] = rnd
                    out["runs"].append(res)
                    print("live: %-14s rate %-9s sent %s captured %s lost %s drops(k/q) %s/%s "
                          "cpu %.2fs window %.2fs %s%s" % (
                              tool, rate, res.get("sent"), res.get("captured"), res.get("lost"),
                              res.get("kernel_drops"), res.get("queue_drops"),
                              res.get("cpu", 0.0), res.get("cpu_window", 0.0),
                              "%.2f us/packet" % res["us_per_packet"]
                              if res.get("us_per_packet") else "",
                              " fresh %.2fs" % res["fresh_seconds"]
                              if res.get("fresh_seconds") is not None else ""))
                    if res.get("error"):
                        print("live: error: " + res["error"])
                order = order[1:] + order[:1]
    finally:
        sh("ip", "netns", "del", ns)
    add_record("live", out)


# ---------------------------------------------------------------- lawful intercept

LI_TARGET, LI_PEER = "10.77.0.1", "10.77.0.2"


def lisend_main(iface, seconds):
    """In the namespace: one UDP frame from LI_TARGET every millisecond on
    iface for at most `seconds` (the target of the warrant, sending
    steadily)."""
    import socket
    s = socket.socket(socket.AF_PACKET, socket.SOCK_RAW)
    s.bind((iface, 0))
    src, dst = socket.inet_aton(LI_TARGET), socket.inet_aton(LI_PEER)
    end, i = time.time() + float(seconds), 0
    while time.time() < end:
        pay = b"li-bench %08d" % i
        udp = struct.pack(">HHHH", 40000, 5000, 8 + len(pay), 0) + pay
        ip = struct.pack(">BBHHHBBH4s4s", 0x45, 0, 20 + len(udp), i & 0xffff, 0, 64, 17, 0,
                         src, dst)
        s.send(bytes.fromhex("020000000002020000000001") + b"\x08\x00" + ip + udp)
        i += 1
        time.sleep(0.001)


def liprobe_main(port, token, rounds, out):
    """In the namespace: per round, POST a case for LI_TARGET (etsi push to a
    listener of this process, pull open at once) and time from just before
    the POST to the first packet each way; then end the case. JSON to out."""
    import http.client
    import socket
    import threading
    res = []
    hdr = {"Authorization": "Bearer " + token}
    for k in range(int(rounds)):
        cid = "LI-BENCH-%d-%d" % (os.getpid(), k)
        ls = socket.socket()
        ls.bind(("127.0.0.1", 0))
        ls.listen(1)
        ls.settimeout(10)
        got = {}

        def agency():
            try:
                c, _ = ls.accept()
                c.settimeout(10)
                if c.recv(65536):
                    got["push"] = time.perf_counter()
                c.close()
            except OSError as e:
                got["push_error"] = str(e)
        th = threading.Thread(target=agency)
        th.start()
        doc = {"id": cid, "authority": "bench", "warrant": "W-" + cid, "from": "-1s",
               "to": "+10m", "targets": [{"ip": LI_TARGET}],
               "delivery": {"type": "etsi", "address": "127.0.0.1:%d" % ls.getsockname()[1],
                            "country": "XX"}}
        r = {"case": cid}
        t0 = time.perf_counter()
        h = http.client.HTTPConnection("127.0.0.1", int(port), timeout=10)
        h.request("POST", "/api/v1/cases", json.dumps(doc), hdr)
        a = h.getresponse()
        a.read()
        r["post_status"] = a.status
        r["post"] = time.perf_counter() - t0
        h.request("GET", "/api/v1/cases/%s/intercept?after=0" % cid, headers=hdr)
        a = h.getresponse()
        r["pull_status"] = a.status
        try:
            while a.status == 200:  # pcapng blocks until the first Enhanced Packet Block
                head = a.read(8)
                if len(head) < 8:
                    break
                btype, blen = struct.unpack("<II", head)
                if btype == 6:
                    r["pull"] = time.perf_counter() - t0
                    break
                a.read(blen - 8)
        except OSError as e:
            r["pull_error"] = str(e)
        h.close()
        th.join(15)
        ls.close()
        if "push" in got:
            r["push"] = got["push"] - t0
        r.update({k: v for k, v in got.items() if k != "push"})
        h = http.client.HTTPConnection("127.0.0.1", int(port), timeout=10)
        h.request("DELETE", "/api/v1/cases/" + cid, headers=hdr)
        h.getresponse().read()
        h.close()
        res.append(r)
        time.sleep(0.5)
    with open(out, "w") as f:
        json.dump(res, f)


def proc_cpu_ns(pids):
    """CPU seconds of these processes' threads from /proc/PID/task/*/schedstat
    (nanoseconds: a tenth of a second of CPU is measured to better than the
    10 ms clock ticks of /proc/PID/stat); proc_cpu where there is none."""
    tot, ok = 0, True
    for pid in pids:
        try:
            for t in os.listdir("/proc/%d/task" % pid):
                with open("/proc/%d/task/%s/schedstat" % (pid, t)) as f:
                    tot += int(f.read().split()[0])
        except (OSError, ValueError, IndexError):
            ok = False
    return tot / 1e9 if ok else proc_cpu(pids)


def thread_cpu_ns(pids, prefix):
    """CPU seconds (schedstat) of the threads of pids whose name starts with prefix."""
    tot = 0
    for pid in pids:
        try:
            tasks = os.listdir("/proc/%d/task" % pid)
        except OSError:
            continue
        for t in tasks:
            try:
                with open("/proc/%d/task/%s/comm" % (pid, t)) as f:
                    if not f.read().startswith(prefix):
                        continue
                with open("/proc/%d/task/%s/schedstat" % (pid, t)) as f:
                    tot += int(f.read().split()[0])
            except (OSError, ValueError, IndexError):
                pass
    return tot / 1e9


def li_daemon(ns, arch, rewindd, rewind, port, log):
    """rewindd capturing rwi0 of ns into arch, its API on 127.0.0.1:port in
    ns; an admin token. (Popen, token) or (None, why)."""
    sh("rm", "-rf", arch)
    t = sh(rewind, "token", "add", "--dir", arch, "--name", "bench", "--role", "admin")
    if t.returncode != 0:
        return None, "token: " + t.stderr
    with open(log, "wb") as lf:
        p = subprocess.Popen(["ip", "netns", "exec", ns, rewindd, "--dir", arch, "-i",
                              "rwi0=live", "--buffer-size", "64M", "--listen",
                              "127.0.0.1:%d" % port], stdin=subprocess.DEVNULL, stdout=lf,
                             stderr=lf)
    if not wait_text(log, "ready", 20):
        p.kill()
        p.wait()
        return None, "rewindd did not start: " + open(log, errors="replace").read()[-300:]
    return p, t.stdout.strip()


def li_curl(ns, port, token, method, path, body=None):
    args = ["ip", "netns", "exec", ns, "curl", "-s", "-o", "-", "-w", "\n%{http_code}", "-X",
            method, "-H", "Authorization: Bearer " + token,
            "http://127.0.0.1:%d%s" % (port, path)]
    if body is not None:
        args += ["--data-binary", body]
    r = sh(*args)
    out, _, code = r.stdout.rpartition("\n")
    return int(code or 0), out


def li_cpu_run(ns, work, rewindd, rewind, pcap, cases, rate, port):
    """One capture of the replay with these cases active: rewindd's CPU from
    just before the replay to 2.5 s after it (as the live part measures)."""
    arch = os.path.join(work, "li-cpu")
    log = arch + ".log"
    p, tok = li_daemon(ns, arch, rewindd, rewind, port, log)
    res = {"cases": len(cases)}
    if p is None:
        res["error"] = tok
        return res
    try:
        for doc in cases:
            st, body = li_curl(ns, port, tok, "POST", "/api/v1/cases", json.dumps(doc))
            if st != 201:
                res["error"] = "case: %d %s" % (st, body[:200])
                return res
        time.sleep(0.5)
        pids = [p.pid] + children(p.pid)
        c0, i0 = proc_cpu_ns(pids), thread_cpu_ns(pids, "ic-")
        base, _, loops = rate.partition("x")  # "500x3": the file three times at 500 Mbit/s
        r = sh("ip", "netns", "exec", ns, "timeout", "300", "tcpreplay", "-i", "rwi1",
               *(["--topspeed"] if base == "topspeed" else ["--mbps", base]),
               *(["--loop=" + loops] if loops else []), pcap)
        res.update(tcpreplay_sent(r.stdout + r.stderr))
        time.sleep(2.5)
        res["cpu_window"] = proc_cpu_ns(pids) - c0
        res["cpu_intercept_threads"] = thread_cpu_ns(pids, "ic-") - i0  # the spool flusher
        st, body = li_curl(ns, port, tok, "GET", "/api/v1/status")
        j = json.loads(body) if st == 200 else {}
        res["teed"] = sum(x.get("packets", 0) for x in j.get("intercept", []))
        res["intercept_dropped"] = sum(x.get("dropped", 0) for x in j.get("intercept", []))
        tot = j.get("total", {})
        res["kernel_drops"], res["queue_drops"] = tot.get("kernel_drops"), tot.get("queue_drops")
    finally:
        p.send_signal(signal.SIGTERM)
        try:
            p.wait(timeout=60)
        except subprocess.TimeoutExpired:
            p.kill()
            p.wait()
    q = sh(rewind, "query", "--dir", arch, "--count")
    res["captured"] = int(q.stdout.strip()) if q.returncode == 0 and q.stdout.strip() else None
    if res.get("sent"):
        res["us_per_sent"] = res["cpu_window"] / res["sent"] * 1e6
        res["intercept_us_per_sent"] = res["cpu_intercept_threads"] / res["sent"] * 1e6
    sh("rm", "-rf", arch, log)
    return res


def intercept_main(args):
    """Lawful intercept (issue 14) on a veth pair in namespace ns:
    warrant-to-first-packet (rounds of POST /api/v1/cases while the target
    sends a packet a millisecond; the first packet by pull and by etsi push),
    and rewindd's capture CPU per packet of the same replay with 10 active
    cases beside none, the two alternating, median of `rounds` each."""
    ns, work, rewind, rewindd, pcap, genjson = args[:6]
    rounds = int(args[6]) if len(args) > 6 else 3
    rate = args[7] if len(args) > 7 else "500"
    g = json.loads(open(genjson).read())
    out = {"netns": ns, "pcap_bytes": os.path.getsize(pcap), "pcap_packets": pcap_count(pcap),
           "rate": rate, "rounds": rounds}
    me = os.path.abspath(__file__)
    port = 27000 + os.getpid() % 1000
    try:
        if not veth_ns_or_skip(ns, "rwi0", "rwi1", "intercept", out):
            return
        # (a) warrant to first packet
        arch = os.path.join(work, "li-w2p")
        p, tok = li_daemon(ns, arch, rewindd, rewind, port, arch + ".log")
        if p is None:
            out["w2p_error"] = tok
        else:
            snd = subprocess.Popen(["ip", "netns", "exec", ns, "python3", me, "lisend", "rwi1",
                                    "120"])
            try:
                time.sleep(1)
                res = os.path.join(work, "li-w2p.json")
                r = sh("ip", "netns", "exec", ns, "timeout", "300", "python3", me, "liprobe",
                       str(port), tok, str(max(5, 2 * rounds)), res)
                out["w2p_runs"] = json.load(open(res)) if r.returncode == 0 else []
                if r.returncode != 0:
                    out["w2p_error"] = r.stderr[-300:]
            finally:
                snd.kill()
                snd.wait()
                p.send_signal(signal.SIGTERM)
                try:
                    p.wait(timeout=60)
                except subprocess.TimeoutExpired:
                    p.kill()
                    p.wait()
                sh("rm", "-rf", arch, arch + ".log")
        for way in ("pull", "push", "post"):
            v = sorted(x[way] for x in out.get("w2p_runs", []) if x.get(way) is not None)
            if v:
                out["w2p_%s_median" % way] = v[(len(v) - 1) // 2]
                out["w2p_%s_max" % way] = v[-1]
            print("intercept: warrant to first packet (%s): %s" % (
                way, ", ".join("%.3f s" % x for x in v) or "none"))
        # (b) capture CPU with 10 active cases beside none: five needles of the
        # replay and five /24s of its wide /16, the rest of the traffic not
        # theirs (a subscriber each)
        net = g["wide"]["net"].split("/")[0].split(".")
        targets = [{"ip": n["addr"]} for n in g["needles"][:5]]
        targets += [{"prefix": "%s.%s.%d.0/24" % (net[0], net[1], i)}
                    for i in range(10 - len(targets))]
        cases = [{"id": "LI-CPU-%d" % i, "authority": "bench", "warrant": "W%d" % i,
                  "from": "-1m", "to": "+1h", "targets": [t]} for i, t in enumerate(targets)]
        out["targets"] = targets
        out["cpu_runs"] = []
        for rnd in range(rounds):
            for n in ((0, 10) if rnd % 2 == 0 else (10, 0)):
                res = li_cpu_run(ns, work, rewindd, rewind, pcap, cases[:n], rate, port)
                res["round"] = rnd
                out["cpu_runs"].append(res)
                print("intercept: %2d cases: sent %s captured %s teed %s drops(k/q) %s/%s "
                      "cpu %.2fs (flusher %.3fs) %s%s" % (
                          n, res.get("sent"), res.get("captured"), res.get("teed"),
                          res.get("kernel_drops"), res.get("queue_drops"),
                          res.get("cpu_window", 0.0), res.get("cpu_intercept_threads", 0.0),
                          "%.3f us/packet" % res["us_per_sent"] if res.get("us_per_sent") else "",
                          " error: " + res["error"] if res.get("error") else ""))
        for n in (0, 10):
            v = sorted(x["us_per_sent"] for x in out["cpu_runs"]
                       if x["cases"] == n and x.get("us_per_sent"))
            out["cpu_us_per_packet_%d" % n] = v[(len(v) - 1) // 2] if v else None
        a, b = out["cpu_us_per_packet_0"], out["cpu_us_per_packet_10"]
        out["cpu_ratio"] = b / a if a and b else None
        # Each round ran both, one right after the other: the median of the
        # rounds' own ratios does not follow the machine's drift across the
        # rounds (this shared VM's speed changes by 20 % within minutes).
        pr = []
        for rnd in range(rounds):
            x = {r["cases"]: r.get("us_per_sent") for r in out["cpu_runs"] if r["round"] == rnd}
            if x.get(0) and x.get(10):
                pr.append(x[10] / x[0])
        pr.sort()
        out["cpu_ratio_rounds"] = pr
        out["cpu_ratio_paired"] = (pr[(len(pr) - 1) // 2] + pr[len(pr) // 2]) / 2 if pr else None
        v = sorted(x["intercept_us_per_sent"] for x in out["cpu_runs"]
                   if x["cases"] == 10 and x.get("intercept_us_per_sent") is not None)
        out["cpu_flusher_us_per_packet_10"] = v[(len(v) - 1) // 2] if v else None
    finally:
        sh("ip", "netns", "del", ns)
    add_record("intercept", out)


# ---------------------------------------------------------------- report

def fmt_t(s):
    if s is None:
        return "-"
    return "%.1f ms" % (s * 1e3) if s < 1 else "%.2f s" % s


def fmt_b(n):
    if n is None:
        return "-"
    for unit, div in (("GiB", 1 << 30), ("MiB", 1 << 20), ("KiB", 1 << 10)):
        if n >= div:
            return "%.1f %s" % (n / div, unit)
    return "%d B" % n


def ratio(a, b):
    return a / b if a and b else None


def report_main(path):
    R = load_records()
    cfg = R.get("config", {})
    gen = R.get("gen1", {})
    res = {"config": cfg, "generated": gen, "mismatches": R.get("mismatches", [])}
    lines = []
    P = lines.append
    P("")
    P("rewind benchmark  size %s  packets %s  (%s)" % (fmt_b(gen.get("bytes")), gen.get("packets"),
                                                     "SMOKE" if cfg.get("smoke") else
                                                     "BENCH_GB=%s" % cfg.get("gb")))
    P("page cache for cold runs: %s" % ("dropped" if cfg.get("drop_caches") else
                                        "NOT dropped (warm only)"))
    # import
    imp = {}
    P("")
    P("IMPORT (%s)        time        packets/s       MB/s   peak RSS   CPU" %
      ("cold" if cfg.get("drop_caches") else "warm"))
    for name, key in (("rewind import", "import.rewind"), ("tcpdump -r -w", "import.tcpdump"),
                      ("tcpdump + fsync", "import.tcpdump_sync")):
        r = R.get(key)
        if not r:
            continue
        t = r["median"]
        pps = gen["packets"] / t
        mbs = gen["bytes"] / t / 1e6
        imp[key.split(".")[1]] = dict(r, packets_per_s=pps, mb_per_s=mbs)
        P("  %-18s %10s %12.0f %10.1f %10s %6.2fs" % (name, fmt_t(t), pps, mbs,
                                                      fmt_b(r["maxrss_kb"] * 1024), r["cpu"]))
    if "rewind" in imp and "tcpdump" in imp:
        imp["ratio_rewind_over_tcpdump"] = imp["rewind"]["packets_per_s"] / imp["tcpdump"]["packets_per_s"]
        P("  throughput ratio rewind/tcpdump: %.2f" % imp["ratio_rewind_over_tcpdump"])
        if "tcpdump_sync" in imp:
            imp["ratio_rewind_over_tcpdump_sync"] = (imp["rewind"]["packets_per_s"] /
                                                     imp["tcpdump_sync"]["packets_per_s"])
            P("  throughput ratio rewind/(tcpdump+fsync): %.2f" %
              imp["ratio_rewind_over_tcpdump_sync"])
    res["import"] = imp
    # queries
    q = {}
    P("")
    P("QUERIES        packets  cache  rewind     --local    tcpdump    speed-up  --local   "
      "out MB/s rewind/tcpdump  RSS rewind/--local/tcpdump")
    for name in ("needle", "port", "wide"):
        meta = R.get("q.%s.meta" % name)
        if not meta:
            continue
        q[name] = {"filter": meta["filter"], "packets": meta["packets"]}
        for cache in ("warm", "cold"):
            rw = R.get("q.%s.rewind.%s" % (name, cache))
            lo = R.get("q.%s.local.%s" % (name, cache))
            td = R.get("q.%s.tcpdump.%s" % (name, cache))
            if not rw or not td or not lo:
                continue
            ent = {
                "rewind_s": rw["median"], "local_s": lo["median"], "tcpdump_s": td["median"],
                "rewind_runs": len(rw["runs"]), "tcpdump_runs": len(td["runs"]),
                "rewind_out_mb_per_s": rw["out_bytes"] / rw["median"] / 1e6,
                "tcpdump_out_mb_per_s": td["out_bytes"] / td["median"] / 1e6,
                "out_bytes": rw["out_bytes"],
                "rewind_maxrss_kb": rw["maxrss_kb"], "local_maxrss_kb": lo["maxrss_kb"],
                "tcpdump_maxrss_kb": td["maxrss_kb"],
                "speedup_tcpdump_over_rewind": td["median"] / rw["median"],
                "speedup_tcpdump_over_local": td["median"] / lo["median"],
            }
            q[name][cache] = ent
            P("  %-8s %10d  %-5s  %-10s %-10s %-10s %7.1fx %7.1fx  %7.1f/%-7.1f  %s/%s/%s" % (
                name, meta["packets"], cache, fmt_t(rw["median"]), fmt_t(lo["median"]),
                fmt_t(td["median"]), ent["speedup_tcpdump_over_rewind"],
                ent["speedup_tcpdump_over_local"], ent["rewind_out_mb_per_s"],
                ent["tcpdump_out_mb_per_s"], fmt_b(rw["maxrss_kb"] * 1024),
                fmt_b(lo["maxrss_kb"] * 1024), fmt_b(td["maxrss_kb"] * 1024)))
    if q:
        P("    rewind  = rewind query --dir, answered by the rewindd that owns the archive")
        P("    --local = rewind query --dir --local: read in the query's own process (no daemon)")
        P("    cold    = page cache dropped before each run (rewindd's own block cache stays)")
        if R.get("daemon"):
            res["daemon"] = R["daemon"]
            P("    rewindd's peak RSS after answering them: %s" %
              fmt_b(R["daemon"]["maxrss_kb"] * 1024))
    for name in q:
        P("    %-8s = %s" % (name, q[name]["filter"]))
    floor = {k: R["floor." + k]["median"] for k in ("true", "rewind", "tcpdump")
             if R.get("floor." + k)}
    if floor:
        # What a process costs before any work: a needle query cannot be
        # faster than starting rewind, nor the scan than starting tcpdump.
        P("  start-up alone: /bin/true %s, rewind --help %s, tcpdump --version %s" % tuple(
            fmt_t(floor[k]) if k in floor else "-" for k in ("true", "rewind", "tcpdump")))
        q["startup_s"] = floor
        if R.get("floor.true"):
            # wait4() reports the larger of the child's peak and the forked
            # Python image it started as: an upper bound, this much at least.
            P("  peak RSS figures are upper bounds: /bin/true shows %s here (the forked harness)" %
              fmt_b(R["floor.true"]["maxrss_kb"] * 1024))
            q["rss_floor_kb"] = R["floor.true"]["maxrss_kb"]
    res["queries"] = q
    # sizes
    sz = R.get("sizes.1x")
    if sz:
        P("")
        P("ARCHIVE SIZE (1x)  index %s = %.2f%% of packet bytes (%s)   segments %s (%.1f%%)" % (
            fmt_b(sz["index_bytes"]), sz["index_pct"], fmt_b(sz["packet_bytes"]),
            fmt_b(sz["segments_bytes"]), sz["segments_pct"]))
        if sz.get("status_index"):
            P("  rewind status says: index %s" % sz["status_index"])
        P("  of the index, unflushed RocksDB WAL (replayed by every reader at open): %s" %
          fmt_b(sz.get("index_wal_bytes")))
        res["sizes"] = {"1x": sz}
        if R.get("sizes.4x"):
            s4 = R["sizes.4x"]
            res["sizes"]["4x"] = s4
            P("ARCHIVE SIZE (4x)  index %s = %.2f%% of packet bytes (%s)   segments %s (%.1f%%)" % (
                fmt_b(s4["index_bytes"]), s4["index_pct"], fmt_b(s4["packet_bytes"]),
                fmt_b(s4["segments_bytes"]), s4["segments_pct"]))
            P("  of the index, unflushed RocksDB WAL: %s" % fmt_b(s4.get("index_wal_bytes")))
    # compressed segments
    zs, zi = R.get("z.sizes"), R.get("z.import")
    if zs and zi:
        z = {"segments_bytes": zs["segments_bytes"], "packet_bytes": zs["packet_bytes"],
             "ratio": zs["packet_bytes"] / zs["segments_bytes"] if zs["segments_bytes"] else 0,
             "import_and_compress_s": zi["median"], "status": zs.get("status_index"),
             "queries": {}}
        P("")
        P("COMPRESSED SEGMENTS  %s of pcap in %s of lz4 segments: ratio %.2f" % (
            fmt_b(zs["packet_bytes"]), fmt_b(zs["segments_bytes"]), z["ratio"]))
        if R.get("import.rewind"):
            extra = zi["median"] - R["import.rewind"]["median"]
            z["compress_s"] = extra
            P("  import + compress %s (import alone %s): compressing costs %s, %s/s" % (
                fmt_t(zi["median"]), fmt_t(R["import.rewind"]["median"]), fmt_t(extra),
                fmt_b(zs["packet_bytes"] / extra) if extra > 0 else "-"))
        P("  query     cache  compressed  plain      tcpdump    compressed/plain  speed-up vs tcpdump"
          "   (both --local)")
        for name in ("needle", "port", "wide"):
            for cache in ("warm", "cold"):
                zr = R.get("z.%s.%s" % (name, cache))
                pr = R.get("q.%s.local.%s" % (name, cache))
                td = R.get("q.%s.tcpdump.%s" % (name, cache))
                if not zr or not pr or not td:
                    continue
                z["queries"].setdefault(name, {})[cache] = {
                    "compressed_s": zr["median"], "plain_s": pr["median"],
                    "tcpdump_s": td["median"], "compressed_maxrss_kb": zr["maxrss_kb"]}
                P("  %-8s  %-5s  %-10s  %-10s %-10s %8.2fx %18.1fx" % (
                    name, cache, fmt_t(zr["median"]), fmt_t(pr["median"]), fmt_t(td["median"]),
                    zr["median"] / pr["median"], td["median"] / zr["median"]))
        res["compressed"] = z
    # scaling
    sc = {}
    for k in (1, 2, 4):
        for name in ("needle", "port"):
            rw = R.get("scale.%d.%s.rewind" % (k, name))
            lo = R.get("scale.%d.%s.local" % (k, name))
            td = R.get("scale.%d.%s.tcpdump" % (k, name))
            if rw and td and lo:
                sc.setdefault("%dx" % k, {})[name] = {
                    "rewind_s": rw["median"], "tcpdump_s": td["median"], "local_s": lo["median"],
                    "speedup_tcpdump_over_local": td["median"] / lo["median"],
                    "packets": R["scale.%d.%s.meta" % (k, name)]["packets"],
                    "speedup_tcpdump_over_rewind": td["median"] / rw["median"],
                    "rewind_maxrss_kb": rw["maxrss_kb"]}
        imp_k = R.get("scale.%d.import" % k) or (R.get("import.rewind") if k == 1 else None)
        if "%dx" % k in sc:
            sc["%dx" % k]["input_bytes"] = R.get("scale.%d.bytes" % k)
            if imp_k:
                sc["%dx" % k]["import_s"] = imp_k["median"]
    if sc:
        P("")
        P("SCALING (warm)   input      needle: rewind  --local   tcpdump   speed-up  --local"
          "   port: rewind  --local   tcpdump   speed-up")
        for k in ("1x", "2x", "4x"):
            if k not in sc:
                continue
            n, p = sc[k].get("needle"), sc[k].get("port")
            P("  %-4s %14s   %12s %9s %9s %9.1fx %7.1fx   %10s %9s %9s %9.1fx" % (
                k, fmt_b(sc[k].get("input_bytes")), fmt_t(n["rewind_s"]), fmt_t(n["local_s"]),
                fmt_t(n["tcpdump_s"]), n["speedup_tcpdump_over_rewind"],
                n["speedup_tcpdump_over_local"], fmt_t(p["rewind_s"]), fmt_t(p["local_s"]),
                fmt_t(p["tcpdump_s"]), p["speedup_tcpdump_over_rewind"]))
    res["scaling"] = sc or R.get("scaling_skipped")
    if not sc and R.get("scaling_skipped"):
        P("")
        P("SCALING: skipped (%s)" % R["scaling_skipped"])
    # HTTP and HTTPS
    hm = R.get("http.meta")
    if hm:
        http = {"filter": hm["filter"], "packets": hm["packets"], "archive": hm["archive"]}
        P("")
        runs = len((R.get("http.http.curl") or {"runs": [0]})["runs"])
        P("HTTP API  needle (%s, %d packets) on the %s archive, with a token, warm, median of %d"
          % (hm["filter"], hm["packets"], hm["archive"], runs))
        P("  client                plain HTTP   HTTPS        HTTPS/HTTP")
        for c, label in (("curl", "curl"), ("rewind", "rewind query --url")):
            pl, tl = R.get("http.http.%s" % c), R.get("http.https.%s" % c)
            if not pl or not tl:
                continue
            http[c] = {"http_s": pl["median"], "https_s": tl["median"],
                       "ratio_https_over_http": tl["median"] / pl["median"],
                       "http_maxrss_kb": pl["maxrss_kb"], "https_maxrss_kb": tl["maxrss_kb"]}
            P("  %-20s  %-11s  %-11s  %.2f" % (label, fmt_t(pl["median"]), fmt_t(tl["median"]),
                                                http[c]["ratio_https_over_http"]))
        P("    each run a new process and connection: the TLS handshake is in every HTTPS figure")
        res["http"] = http
    elif R.get("http_skipped"):
        res["http"] = R["http_skipped"]
        P("")
        P("HTTP API: skipped (%s)" % R["http_skipped"])
    am = R.get("an.meta")
    if am and R.get("an.scan"):
        scan = R["an.scan"]["median"]
        P("")
        P("ANALYTICS on the %s archive over HTTP (curl, warm, median); the scan: tcpdump -r over "
          "the same files for host %s, %s" % (am["archive"], am["needle"], fmt_t(scan)))
        an = {"scan_s": scan}
        for key, label in (("timeline", "timeline of the whole archive, 1 s steps"),
                           ("top", "top 10 sources of the whole archive"),
                           ("flows_host", "flows of host %s (%d)" % (am["needle"], am["needle_flows"])),
                           ("flows_busy", "flows of the busiest host %s (%d)" % (am["busy"], am["busy_flows"]))):
            r = R.get("an." + key)
            if not r:
                continue
            an[key] = {"s": r["median"], "ratio_scan_over": scan / r["median"]}
            extra = ""
            if key == "flows_busy":
                an[key]["flows_per_s"] = am["busy_flows"] / r["median"]
                extra = ", %.2f M flows/s" % (am["busy_flows"] / r["median"] / 1e6)
            P("  %-52s %-9s scan/this %6.1f%s" % (label, fmt_t(r["median"]), scan / r["median"],
                                                   extra))
        mf, ms = R.get("an.many"), R.get("an.many_scan")
        if mf and ms and am.get("many_flows"):
            rate = am["many_flows"] / mf["median"]
            an["many"] = {"flows": am["many_flows"], "s": mf["median"], "flows_per_s": rate,
                          "scan_s": ms["median"], "maxrss_kb": mf["maxrss_kb"]}
            P("  %-52s %-9s %.2f M flows/s, peak RSS %s; tcpdump's scan of it %s" % (
                "all %d flows of one busy host (rewind flows --dir, CSV)" % am["many_flows"],
                fmt_t(mf["median"]), rate / 1e6, fmt_b(mf["maxrss_kb"] * 1024),
                fmt_t(ms["median"])))
        res["analytics"] = an
    # sessions
    sm = R.get("sessions.meta")
    if sm:
        P("")
        P("SESSIONS  on the archive (warm, median) beside tshark over the whole capture (%s, once)"
          % fmt_b(sm["whole_bytes"]))
        ses = {"meta": sm}
        for k, label in (("smtp", "SMTP sessions of %s" % sm["client"]),
                         ("call", "one call's pcap (%s)" % sm["call_id"][:40])):
            rr, tt = R.get("sessions.%s.rewind" % k), R.get("sessions.%s.tshark" % k)
            if not rr or not tt:
                continue
            ses[k] = {"rewind_s": rr["median"], "tshark_s": tt["median"],
                      "rewind_maxrss_kb": rr["maxrss_kb"]}
            jd = R.get("sessions.call.judge") if k == "call" else None
            if jd:
                ses[k]["packets"] = jd["rewind"]
                ses[k]["judge"] = "MATCH" if jd["match"] else "MISMATCH (tshark %d)" % jd["tshark"]
            P("  %-48s rewind %-10s tshark %-10s (%.0fx)%s" % (
                label, fmt_t(rr["median"]), fmt_t(tt["median"]), tt["median"] / rr["median"],
                "  %d packets, %s" % (jd["rewind"], ses[k]["judge"]) if jd else ""))
        res["sessions"] = ses
    elif R.get("sessions_skipped"):
        res["sessions"] = R["sessions_skipped"]
    ms = R.get("ms.export")
    if ms:
        chd = R.get("ms.clickhouse", {})
        P("")
        P("SEVERAL SITES (clickhouse-server %s on this host)" % "18.16")
        P("  flow export of the bench archive: %d rows (%d segments) in %s, %.0f rows/s"
          % (ms["rows"], ms["segments"], fmt_t(ms["s"]), ms["rows_per_s"]))
        if chd.get("rows"):
            P("  ClickHouse: %d rows in %s, %.0f bytes a row" % (chd["rows"], fmt_b(chd["bytes"]),
                                                             chd["bytes"] / chd["rows"]))
        one = R.get("ms.needle_one")
        for key, label in (("ms.needle_one", "needle asked of its sensor (--url)"),
                           ("ms.needle_fed", "needle across 3 sensors (ClickHouse picks)"),
                           ("ms.needle_fed_all", "needle across 3 sensors, all asked")):
            r = R.get(key)
            if r:
                P("  %-48s %-9s %d packets%s" % (label, fmt_t(r["median"]), r["packets"],
                                                 "" if key == "ms.needle_one" or not one else
                                                 "  (%.1fx one)" % (r["median"] / one["median"])))
        res["multisite"] = {k: R.get(k) for k in ("ms.export", "ms.clickhouse", "ms.needle_one",
                                                  "ms.needle_fed", "ms.needle_fed_all")}
    elif R.get("ms_skipped"):
        res["multisite"] = R["ms_skipped"]
    # live
    live = R.get("live")
    res["live"] = live or R.get("live_skipped")
    P("")
    if live and live.get("runs"):
        P("LIVE CAPTURE (veth in netns %s, replaying %s, %d packets; small: %s packets)" % (
            live["netns"], fmt_b(live["pcap_bytes"]), live["pcap_packets"],
            live.get("small_packets", "-")))
        if live.get("stenographer_skipped"):
            P("  Stenographer skipped: " + live["stenographer_skipped"])
        groups = {}
        for r in live["runs"]:
            groups.setdefault((r["tool"], r["rate"]), []).append(r)

        def median_of(runs, key):
            v = sorted(r[key] for r in runs if not r.get("error") and r.get(key) is not None)
            return v[(len(v) - 1) // 2] if v else None
        tools = live.get("tools") or ["rewindd", "tcpdump"]
        rates = []
        for r in live["runs"]:
            if r["rate"] not in rates and r["rate"] not in ("idle", "fresh"):
                rates.append(r["rate"])
        P("  %d rounds, the capturers taking turns; CPU = user+sys of the capturer's threads "
          "(stenotype's and its server's for Stenographer)" % live.get("rounds", 1))
        P("  from just before the replay to 2.5 s after it, median of the rounds; us/packet per "
          "packet stored; lost = the worst round; kernel ring 64 MiB, '16' = 16 MiB")
        P("  tool            rate        Mbps      sent  lost(max)  drops k/q   CPU s  "
          "us/packet  peak RSS")
        summary, best = [], {}
        for rate in rates:
            for tool in tools:
                runs = groups.get((tool, rate), [])
                if not runs:
                    continue
                for r in runs:
                    if r.get("error"):
                        P("  %-14s  %-10s  ERROR %s" % (tool, rate, r["error"][:60]))
                ok = [x for x in runs if not x.get("error")]
                if not ok:
                    continue
                for x in ok:  # per packet stored (records of older runs: per packet sent)
                    if x.get("captured") and x.get("cpu_window") is not None:
                        x["us_per_packet"] = x["cpu_window"] / x["captured"] * 1e6
                cpu = median_of(ok, "cpu_window")
                us = median_of(ok, "us_per_packet")
                mbps = median_of(ok, "mbps")
                lost = max((x.get("lost") for x in ok if x.get("lost") is not None),
                           default=None)
                rss = max((x.get("rss_kb") or x.get("maxrss_kb") or 0) for x in ok)
                kd = max((x.get("kernel_drops") or 0) for x in ok)
                qd = max((x.get("queue_drops") or 0) for x in ok)
                row = {"tool": tool, "rate": rate, "mbps": mbps, "sent": ok[0].get("sent"),
                       "lost_max": lost, "cpu_window_median": cpu, "us_per_packet": us,
                       "cpu_all": [x.get("cpu_window") for x in ok], "rss_kb_max": rss,
                       "kernel_drops_max": kd, "queue_drops_max": qd}
                summary.append(row)
                P("  %-14s  %-10s  %5s  %8s  %9s  %-10s %6s  %9s  %s" % (
                    tool, rate, "%.0f" % mbps if mbps else "-", ok[0].get("sent"), lost,
                    "%s/%s" % (kd, qd if tool.startswith("rewindd") else "-"),
                    "%.2f" % cpu if cpu is not None else "-",
                    "%.2f" % us if us is not None else "-", fmt_b(rss * 1024)))
                if lost == 0 and len(ok) == len(runs) and mbps and rate != "small":
                    if mbps > best.get(tool, {}).get("mbps", -1):
                        best[tool] = {"rate": rate, "mbps": mbps}
        live["summary"] = summary
        live["highest_zero_loss"] = best
        ratios = {}
        for a, b in (("rewindd", "stenographer"), ("rewindd16", "stenographer16"),
                     ("rewindd", "tcpdump")):
            for rate in rates:
                x = [r for r in summary if r["tool"] == a and r["rate"] == rate]
                y = [r for r in summary if r["tool"] == b and r["rate"] == rate]
                if x and y and x[0]["us_per_packet"] and y[0]["us_per_packet"]:
                    ratios["%s/%s %s" % (a, b, rate)] = x[0]["us_per_packet"] / y[0]["us_per_packet"]
        live["ratios"] = ratios
        for k, v in ratios.items():
            P("  CPU per packet %-40s %.2f%s" % (k, v, "" if "tcpdump" in k else
                                                 ("  (<= 1.0: target met)" if v <= 1.0 else
                                                  "  (> 1.0: target NOT met)")))
        for tool in tools:
            b = best.get(tool)
            P("  highest zero-loss rate %-16s %s" % (
                tool + ":", "%s (achieved %.0f Mbps)" % (b["rate"], b["mbps"]) if b else
                "none of the rates tried"))
        fresh = {}
        for tool in tools:
            for r in groups.get((tool, "fresh"), []):
                if r.get("error"):
                    continue
                fresh[tool] = {"fresh_seconds": r.get("fresh_seconds"), "queries": r.get("queries"),
                               "fresh_cpu": r.get("fresh_cpu")}
                qs = r.get("queries") or {}
                fc = r.get("fresh_cpu")
                sent = r.get("sent") or 0
                P("  %-14s freshness %s; queries on its own archive: %s" % (
                    tool, ("%.2f s" % r["fresh_seconds"] + (
                        " (CPU until then %.2f s, %.2f us/packet)" % (fc, fc / sent * 1e6)
                        if fc is not None and sent else ""))
                    if r.get("fresh_seconds") is not None
                    else ("n/a" if tool == "tcpdump" else "not queryable within 120 s"),
                    ", ".join("%s %s (%s/%s packets)" % (k, fmt_t(v["seconds"]), v["packets"],
                                                         v["expected"])
                              for k, v in qs.items()) or "-"))
                for k, v in qs.items():
                    if v["packets"] != v["expected"] and tool.startswith("rewindd"):
                        P("  MISMATCH %s %s query: %s packets, trafficgen says %s" % (
                            tool, k, v["packets"], v["expected"]))
        live["fresh"] = fresh
    else:
        P("LIVE CAPTURE: skipped (%s)" % ((live or {}).get("skipped") or
                                          R.get("live_skipped") or "not run"))
    # replay
    rp = R.get("replay")
    res["replay"] = rp or R.get("replay_skipped")
    P("")
    if rp and rp.get("rewind_pps") and rp.get("tcpreplay_pps"):
        rp["ratio"] = rp["rewind_pps"] / rp["tcpreplay_pps"]
        P("REPLAY --topspeed (veth in netns %s, %s, %d packets; median of %d runs each)" % (
            rp["netns"], fmt_b(rp["pcap_bytes"]), rp["pcap_packets"],
            len(rp["runs"]) // 2))
        P("  rewind replay %.0f packets/s, tcpreplay %.0f packets/s, ratio %.2f (> 1: rewind "
          "is faster)" % (rp["rewind_pps"], rp["tcpreplay_pps"], rp["ratio"]))
    else:
        P("REPLAY: skipped (%s)" % ((rp or {}).get("skipped") or R.get("replay_skipped") or
                                   "not run"))
    # lawful intercept
    li = R.get("intercept")
    res["intercept"] = li or R.get("intercept_skipped")
    P("")
    if li and not li.get("skipped"):
        P("LAWFUL INTERCEPT (veth in netns %s)" % li["netns"])
        P("  warrant to first packet (POST /api/v1/cases to the first packet of a target "
          "sending 1 packet/ms; %d runs): pull median %s max %s, etsi push median %s max %s "
          "(goal <= 1 s); the POST itself median %s" % (
              len(li.get("w2p_runs", [])), fmt_t(li.get("w2p_pull_median")),
              fmt_t(li.get("w2p_pull_max")), fmt_t(li.get("w2p_push_median")),
              fmt_t(li.get("w2p_push_max")), fmt_t(li.get("w2p_post_median"))))
        r10 = [x for x in li.get("cpu_runs", []) if x["cases"] == 10 and x.get("teed")]
        P("  capture CPU, tcpreplay of %s (%d packets) at %s: none %s us/packet, 10 active "
          "cases %s us/packet (they took %s packets): ratio of the medians %s; median of the "
          "rounds' own ratios %s (goal within 5%%); %d rounds, the two alternating" % (
              fmt_b(li["pcap_bytes"]), li["pcap_packets"],
              li["rate"].replace("x", " Mbit/s, times ") if li["rate"][0].isdigit()
              else li["rate"],
              "%.3f" % li["cpu_us_per_packet_0"] if li.get("cpu_us_per_packet_0") else "-",
              "%.3f" % li["cpu_us_per_packet_10"] if li.get("cpu_us_per_packet_10") else "-",
              r10[0]["teed"] if r10 else "-",
              "%.3f" % li["cpu_ratio"] if li.get("cpu_ratio") else "-",
              "%.3f" % li["cpu_ratio_paired"] if li.get("cpu_ratio_paired") else "-",
              li["rounds"]))
        if li.get("cpu_flusher_us_per_packet_10") is not None and li.get("cpu_us_per_packet_0"):
            P("  of which the spool flusher thread (write + fdatasync, every 100 to 200 ms): %.3f "
              "us/packet, %.1f%% of the capture's CPU without cases" % (
                  li["cpu_flusher_us_per_packet_10"],
                  100 * li["cpu_flusher_us_per_packet_10"] / li["cpu_us_per_packet_0"]))
    else:
        P("LAWFUL INTERCEPT: skipped (%s)" % ((li or {}).get("skipped") or
                                             R.get("intercept_skipped") or "not run"))
    mism = R.get("mismatches", [])
    P("")
    if mism:
        P("CORRECTNESS: %d MISMATCH(ES):" % len(mism))
        for m in mism:
            P("  MISMATCH " + m)
    else:
        P("CORRECTNESS: all packet counts agree (rewind --count, rewind -w output, trafficgen, "
          "tcpdump) and rewind output is byte-identical to tcpdump's")
    print("\n".join(lines))
    res["table"] = lines
    with open(path, "w") as f:
        json.dump(res, f, indent=2)
        f.write("\n")


def multisite_main(args):
    """Several sites: the bench archive and two small ones served by three
    rewindd sensors exporting to a clickhouse-server started here (loopback,
    its own config and data): the flow export rate of the bench archive,
    ClickHouse's bytes per row, and the needle asked of one sensor (--url)
    beside the same asked across three (--sensors: ClickHouse picks the
    sensors), and across three with a filter ClickHouse cannot judge (every
    sensor asked). Every answer's packet count is checked."""
    import shutil
    import urllib.request
    work, bindir, arch, needle, runs = args[0], args[1], args[2], args[3], int(args[4])
    if not shutil.which("clickhouse-server"):
        add_record("ms_skipped", "no clickhouse-server")
        return
    rewind, rewindd = os.path.join(bindir, "rewind"), os.path.join(bindir, "rewindd")
    d = os.path.join(work, "ms")
    os.makedirs(d + "/ch", exist_ok=True)

    def port():
        import socket
        so = socket.socket()
        so.bind(("127.0.0.1", 0))
        p = so.getsockname()[1]
        so.close()
        return p
    chp, cht = port(), port()
    with open(d + "/ch/config.xml", "w") as f:
        f.write("<?xml version=\"1.0\"?><yandex><logger><level>warning</level><log>%(d)s/ch/log"
                "</log><errorlog>%(d)s/ch/err</errorlog><console>0</console></logger>"
                "<http_port>%(h)d</http_port><tcp_port>%(t)d</tcp_port><listen_host>127.0.0.1"
                "</listen_host><path>%(d)s/ch/data/</path><tmp_path>%(d)s/ch/tmp/</tmp_path>"
                "<user_files_path>%(d)s/ch/uf/</user_files_path><format_schema_path>%(d)s/ch/fs/"
                "</format_schema_path><users_config>users.xml</users_config><default_profile>"
                "default</default_profile><default_database>default</default_database>"
                "<mark_cache_size>5368709</mark_cache_size></yandex>\n"
                % {"d": d, "h": chp, "t": cht})
    with open(d + "/ch/users.xml", "w") as f:
        f.write("<?xml version=\"1.0\"?><yandex><profiles><default></default></profiles><users>"
                "<default><password></password><networks><ip>127.0.0.1</ip></networks><profile>"
                "default</profile><quota>default</quota></default></users><quotas><default>"
                "</default></quotas></yandex>\n")
    churl = "http://127.0.0.1:%d/" % chp

    def chq(sql):
        return urllib.request.urlopen(churl, data=sql.encode(), timeout=120).read().decode()

    def get(url):
        try:
            return urllib.request.urlopen(url, timeout=30).read().decode()
        except OSError:
            return ""

    def metric(base, name):
        for ln in get(base + "/metrics").splitlines():
            if ln.startswith(name + "{sink=\"clickhouse\"}"):
                return float(ln.split()[-1])
        return None
    procs = []
    ch = subprocess.Popen(["clickhouse-server", "--config-file=" + d + "/ch/config.xml"],
                          stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, cwd=d + "/ch")
    try:
        for _ in range(300):
            if get(churl + "ping") == "Ok.\n":
                break
            time.sleep(0.1)
        ddl = subprocess.run([rewind, "clickhouse-schema"], capture_output=True, text=True).stdout
        for st in ddl.split(";\n\n"):
            if st.strip().rstrip(";"):
                chq(st.strip().rstrip(";"))
        # The two small sensors: their own traffic, over the same hour.
        archs = [("a", arch)]
        for name, seed in (("b", 21), ("c", 31)):
            pc = os.path.join(d, name + ".pcap")
            subprocess.run([os.path.join(bindir, "trafficgen"), "--seed", str(seed), "--packets",
                            "200000", "--rate", "20000", "-o", pc], capture_output=True,
                           check=True)
            subprocess.run([rewind, "import", "--dir", os.path.join(d, name), "--quiet", pc],
                           check=True)
            os.unlink(pc)
            archs.append((name, os.path.join(d, name)))
        bases = []
        for name, a in archs:
            p = port()
            base = "http://127.0.0.1:%d" % p
            t0 = time.time()
            procs.append(subprocess.Popen([rewindd, "--dir", a, "--listen", "127.0.0.1:%d" % p,
                                           "--sensor", name, "--log", os.path.join(d, name + ".log"),
                                           "--export-flows", "clickhouse=" + churl]))
            while not (metric(base, "rewind_export_pending_segments") == 0 and
                       (metric(base, "rewind_export_segments_total") or 0) > 0):
                if time.time() - t0 > 3600:
                    raise RuntimeError("sensor %s: the export did not finish" % name)
                time.sleep(0.02)
            t = time.time() - t0
            if name == "a":
                rows = metric(base, "rewind_export_flows_total")
                segs = metric(base, "rewind_export_segments_total")
                add_record("ms.export", {"rows": rows, "segments": segs, "s": t,
                                         "rows_per_s": rows / t})
            bases.append((name, base))
        disk = chq("SELECT sum(rows), sum(bytes_on_disk) FROM system.parts WHERE database = "
                   "'rewind' AND table = 'flows' AND active").split()
        add_record("ms.clickhouse", {"rows": int(disk[0]), "bytes": int(disk[1])})
        sens = os.path.join(d, "sensors")
        with open(sens, "w") as f:
            f.write("clickhouse %s?database=rewind\n" % churl)
            for name, base in bases:
                f.write("sensor %s %s\n" % (name, base))
        w = ["--from", "1699990000", "--to", "1800000000"]
        want = 0
        for name, base in bases:
            r = subprocess.run([rewind, "query", "--url", base, "--count"] + w + ["host", needle],
                               capture_output=True, text=True)
            want += int(r.stdout.strip() or 0)
        log = os.path.join(work, "commands.log")
        for key, cmd in (("ms.needle_one", [rewind, "query", "--url", bases[0][1], "--format",
                                             "pcapng", "-w", d + "/o.pcapng"] + w +
                          ["host", needle]),
                         ("ms.needle_fed", [rewind, "query", "--sensors", sens, "-w",
                                             d + "/o.pcapng"] + w + ["host", needle]),
                         ("ms.needle_fed_all", [rewind, "query", "--sensors", sens, "-w",
                                                 d + "/o.pcapng"] + w +
                          ["host", needle, "and", "len", ">", "0"])):
            walls = []
            for i in range(runs + 1):
                wall = timed(cmd, log)[0]
                if i:
                    walls.append(wall)
            data = open(d + "/o.pcapng", "rb").read()
            n, off = 0, 0
            while off + 8 <= len(data):
                bt, bl = struct.unpack_from("<II", data, off)
                n += bt == 6
                off += bl
            add_record(key, {"median": statistics.median(walls), "packets": n})
            if key != "ms.needle_one" and n != want:
                main_mismatch("multisite %s: %d packets, the sensors hold %d" % (key, n, want))
    finally:
        for p in procs:
            p.terminate()
            p.wait()
        ch.terminate()
        ch.wait()
        shutil.rmtree(d, ignore_errors=True)


def main_mismatch(text):
    prev = load_records().get("mismatches", [])
    add_record("mismatches", prev + [text])
    sys.stderr.write("\n*** MISMATCH: %s ***\n\n" % text)


def main():
    cmd, args = sys.argv[1], sys.argv[2:]
    if cmd == "run":
        run_main(args)
    elif cmd == "set":
        add_record(args[0], json.loads(args[1]))
    elif cmd == "get":
        v = load_records().get(args[0])
        for k in args[1:]:
            v = v[int(k)] if isinstance(v, list) else v[k]
        print(v if not isinstance(v, (dict, list)) else json.dumps(v))
    elif cmd == "mismatch":
        prev = load_records().get("mismatches", [])
        add_record("mismatches", prev + [" ".join(args)])
        sys.stderr.write("\n*** MISMATCH: %s ***\n\n" % " ".join(args))
    elif cmd == "sizes":
        sizes_main(*args)
    elif cmd == "expect":
        expect_main(*args)
    elif cmd == "count":
        print(sum(pcap_count(p) for p in args))
    elif cmd == "gen":
        gen_main(args[0])
    elif cmd == "slice":
        slice_main(*args)
    elif cmd == "dropcaches":
        sys.exit(0 if drop_caches() else 1)
    elif cmd == "live":
        live_main(args)
    elif cmd == "smallgen":
        smallgen_main(*args)
    elif cmd == "manyflows":
        manyflows_main(*args)
    elif cmd == "replay":
        replay_main(args)
    elif cmd == "multisite":
        multisite_main(args)
    elif cmd == "intercept":
        intercept_main(args)
    elif cmd == "lisend":
        lisend_main(*args)
    elif cmd == "liprobe":
        liprobe_main(*args)
    elif cmd == "calljudge":
        calljudge_main(*args)
    elif cmd == "samepackets":
        samepackets_main(*args)
    elif cmd == "report":
        report_main(args[0])
    else:
        sys.exit("benchlib: unknown command " + cmd)


if __name__ == "__main__":
    main()
