#!/usr/bin/env python3
"""Compressed segments: rewindd compresses an imported archive; every query
answers byte for byte as before; `lz4 -d` gives back each original segment;
status shows the ratio; verify is clean and catches damaged compressed files;
reindex rebuilds from compressed segments; `rewind import --compress-after 0`
answers as tcpdump does."""
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "lib"))
import harness  # noqa: E402
from harness import check, rw  # noqa: E402
import pcaputil  # noqa: E402

FILTERS = ["", "tcp", "udp", "udp port 53", "port 25", "net 10.0.0.0/8", "ip6", "icmp or arp",
           "tcp[13] & 2 != 0", "vlan", "not tcp", "host 192.0.2.1"]
REAL = ["smtp.pcap", "dns-edns-ecs.pcap", "mixed-vlan-mpls.pcap", "sip-tcp.pcap",
        "1000-requests-one-dropped-response.pcap"]


def segment_files(arch):
    out = {}
    for d, _, files in os.walk(os.path.join(arch, "segments")):
        for f in files:
            out[os.path.relpath(os.path.join(d, f), arch)] = os.path.join(d, f)
    return out


def answers(arch, windows):
    res = {}
    for w in windows:
        for f in FILTERS:
            args = ["query", "--dir", arch] + (["--from", w[0]] if w[0] else []) + \
                   (["--to", w[1]] if w[1] else []) + ["--format", "pcapng"]
            if f:
                args.append(f)
            r = rw(*args)
            res[(w, f)] = (r.returncode, r.stdout, r.stderr.decode().strip())
    return res


def import_all(arch, gen, extra):
    r = rw("import", "--quiet", "--dir", arch, "--point", "gen", "--segment-bytes", "512k",
           *extra, gen)
    check(r.returncode == 0, "import generated capture: %r" % r.stderr)
    for name in REAL:
        r = rw("import", "--quiet", "--dir", arch, "--point", name.split(".")[0].split("-")[0],
               os.path.join(harness.PCAPS, "good", name))
        check(r.returncode == 0, "import %s: %r" % (name, r.stderr))


def wait_compressed(arch, deadline_s=90):
    """Poll status until no plain segment is left (bounded)."""
    end = time.time() + deadline_s
    while time.time() < end:
        if not any(p.endswith(".pcap") for p in segment_files(arch)):
            return True
        time.sleep(0.5)
    return False


def test_daemon_compresses(tmp, gen, windows):
    arch = os.path.join(tmp, "a")
    import_all(arch, gen, ["--compress-after", "never"])
    plain = {rel: open(p, "rb").read() for rel, p in segment_files(arch).items()}
    check(len(plain) >= 10 and all(r.endswith(".pcap") for r in plain),
          "never: %d plain segments before compression" % len(plain))
    before = answers(arch, windows)
    check(all(v[0] == 0 for v in before.values()), "queries before compression succeed")
    st_before = rw("status", "--dir", arch).stdout.decode()

    d = subprocess.Popen([harness.REWINDD, "--dir", arch, "--listen", "none",
                          "--compress-after", "0"], stdout=subprocess.DEVNULL,
                         stderr=subprocess.PIPE)
    try:
        ok = wait_compressed(arch)
        check(ok, "rewindd --compress-after 0 compressed every segment")
        # queries while the daemon owns the archive (secondary instance)
        during = answers(arch, windows[:1])
        check(all(during[k] == before[k] for k in during),
              "answers while rewindd runs equal those before compression")
    finally:
        d.send_signal(signal.SIGTERM)
        _, err = d.communicate(timeout=30)
    check(d.returncode == 0, "rewindd stops cleanly: %r" % err[-500:])
    check(b"compressed" in err, "rewindd logs what it compressed")

    files = segment_files(arch)
    check(sorted(r[:-4] for r in files) == sorted(plain),
          "every segment has exactly its compressed file: %r" % sorted(files)[:3])
    after = answers(arch, windows)
    diff = [k for k in before if before[k] != after[k]]
    check(not diff, "answers differ after compression for %d queries, e.g. %r" %
          (len(diff), diff[:2]))
    # the stock tool gives back the original bytes
    bad = []
    for rel, p in files.items():
        out = subprocess.run(["lz4", "-d", "-c", p], capture_output=True)
        if out.returncode != 0 or out.stdout != plain[rel[:-4]]:
            bad.append(rel)
    check(not bad, "lz4 -d output differs from the original segment: %r" % bad[:3])
    st = rw("status", "--dir", arch).stdout.decode()
    nseg = len(files)
    check(("%d compressed" % nseg) in st and "ratio" in st,
          "status counts the compressed segments:\n" + st)
    r = rw("verify", "--dir", arch)
    check(r.returncode == 0, "verify clean after compression: %r" % r.stderr[-500:])
    print("  before: " + [l for l in st_before.splitlines() if l.startswith("disk")][0])
    print("  after:  " + [l for l in st.splitlines() if l.startswith(("disk", "segments"))][0])

    # reindex from compressed segments alone
    r = rw("reindex", "--dir", arch)
    check(r.returncode == 0, "reindex of a compressed archive: %r" % r.stderr[-500:])
    again = answers(arch, windows[:1])
    check(all(again[k] == before[k] for k in again), "answers after reindex equal the originals")
    r = rw("verify", "--dir", arch)
    check(r.returncode == 0, "verify clean after reindex: %r" % r.stderr[-500:])
    return arch, before


def test_damage(tmp, arch, before, windows):
    dam = os.path.join(tmp, "damaged")
    shutil.copytree(arch, dam)
    gen_files = sorted(p for rel, p in segment_files(dam).items() if "/gen/" in rel)
    # 1: a block header says a size the block table disagrees with
    victim = gen_files[1]
    data = bytearray(open(victim, "rb").read())
    table_end = len(data) - 24
    n = int.from_bytes(data[table_end + 12:table_end + 16], "little")
    first_block = int.from_bytes(data[table_end - 8 * (n + 1):table_end - 8 * n], "little")
    data[first_block] ^= 0x01
    open(victim, "wb").write(bytes(data))
    # 2: the block table is cut off
    victim2 = gen_files[3]
    with open(victim2, "r+b") as f:
        f.truncate(os.path.getsize(victim2) - 10)
    r = rw("verify", "--dir", dam)
    err = r.stderr.decode()
    check(r.returncode == 1, "verify exits 1 on damaged compressed segments")
    check(os.path.relpath(victim, dam) in err and os.path.relpath(victim2, dam) in err,
          "verify names both damaged segments: %r" % err[-800:])
    # the point's query answers every packet it can read, and says which
    # ones it cannot: exit 3, one warning per damaged range
    r = rw("query", "--dir", dam, "--point", "gen")
    lines = r.stderr.decode().strip().splitlines()
    rel1, rel2 = os.path.relpath(victim, dam), os.path.relpath(victim2, dam)
    w1 = [ln for ln in lines if "damaged segment %s " % rel1 in ln]
    w2 = [ln for ln in lines if "damaged segment %s " % rel2 in ln]
    check(r.returncode == 3 and len(lines) == 2 and len(w1) == 1 and len(w2) == 1 and
          "block 0 " in w1[0] and "disagrees with the block table" in w1[0] and
          "block table is missing" in w2[0],
          "query over damaged segments: exit 3, a warning for each: %d %r" % (r.returncode, lines))
    full = harness.pcaputil.read_pcap(rw("query", "--dir", arch, "--point", "gen").stdout)[1]
    got = harness.pcaputil.read_pcap(r.stdout)[1]
    lost = sum(int(re.search(r": (\d+) packets? that may match", ln).group(1)) for ln in lines)
    it = iter(full)
    check(len(got) == len(full) - lost and all(any(g == f for f in it) for g in got),
          "the answer is every other packet of the point, in order: %d of %d, %d lost" %
          (len(got), len(full), lost))
    # the other points still answer as before
    r = rw("query", "--dir", dam, "--point", "smtp", "--format", "pcapng")
    want = rw("query", "--dir", arch, "--point", "smtp", "--format", "pcapng")
    check(r.returncode == 0 and r.stdout == want.stdout and len(r.stdout) > 100,
          "undamaged points still answer")


def test_import_compressed(tmp, gen):
    arch = os.path.join(tmp, "b")
    r = rw("import", "--dir", arch, "--point", "gen", "--segment-bytes", "256k",
           "--compress-after", "0", gen)
    check(r.returncode == 0 and b"compressed" in r.stderr,
          "import --compress-after 0 compresses and says so: %r" % r.stderr[-300:])
    files = segment_files(arch)
    check(files and all(f.endswith(".pcap.lz4") for f in files), "import left only .lz4 files")
    hdr, recs, _ = pcaputil.read_pcap(open(gen, "rb").read())
    lo, hi = recs[len(recs) // 3][0], recs[2 * len(recs) // 3][0]
    for flt in FILTERS:
        want = harness.tcpdump(gen, flt)
        got = rw("query", "--dir", arch, *([flt] if flt else []))
        check(got.returncode == 0 and got.stdout == want,
              "import --compress-after 0, '%s': answer differs from tcpdump (%d vs %d bytes)" %
              (flt, len(got.stdout), len(want)))
        # a window: only the blocks holding its packets are read
        whdr, wrecs, _ = pcaputil.read_pcap(want)
        wwant = pcaputil.window(whdr, wrecs, lo, hi)
        got = rw("query", "--dir", arch, "--from", "%d.%09d" % divmod(lo, 10**9), "--to",
                 "%d.%09d" % divmod(hi, 10**9), *([flt] if flt else []))
        check(got.returncode == 0 and got.stdout == wwant,
              "compressed window '%s' differs from tcpdump's" % flt)
    r = rw("verify", "--dir", arch)
    check(r.returncode == 0, "verify clean: %r" % r.stderr[-300:])


def main():
    if not shutil.which("lz4"):
        print("compress: the lz4 tool is missing (sh tools/deps.sh installs it)")
        sys.exit(1)
    with tempfile.TemporaryDirectory(prefix="rewind-compress-") as tmp:
        gen = os.path.join(tmp, "gen.pcap")
        subprocess.run([harness.TRAFFICGEN, "--seed", "7", "--bytes", "6M", "--rate", "5000",
                        "--start", "1700000000", "-o", gen], check=True, capture_output=True)
        windows = [(None, None), ("1700000001.5", "1700000003.25"), ("2009-01-01T00:00:00Z",
                                                                      "2012-01-01T00:00:00Z")]
        arch, before = test_daemon_compresses(tmp, gen, windows)
        test_damage(tmp, arch, before, windows)
        test_import_compressed(tmp, gen)
    harness.finish("compress")


if __name__ == "__main__":
    main()
