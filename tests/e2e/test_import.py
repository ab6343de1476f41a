#!/usr/bin/env python3
"""Import end to end: bad files keep their good records and change nothing
else; several files into one point; several points merged by time; CLI usage
errors exit 2 with one line. Compared with tcpdump's own reading of the files."""
import os
import re
import subprocess
import sys
import tempfile

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "lib"))
import harness  # noqa: E402
import pcaputil  # noqa: E402
from harness import BIN, PCAPS, REWIND, ROOT, check, rw, tcpdump  # noqa: E402


def status_content(arch):
    """rewind status without the index size and disk use lines: RocksDB's own
    files (MANIFEST, OPTIONS, WAL) change whenever the archive is opened."""
    out = rw("status", "--dir", arch).stdout.decode()
    return [l for l in out.splitlines() if not l.startswith(("index ", "disk "))]


# Capture files with one header field out of the ordinary, crafted here:
# (name, bytes, what rewind's message names when tcpdump refuses the file).
# tcpdump is the judge: rewind must refuse exactly what `tcpdump -r` refuses
# and import the rest as tcpdump reads it. (tcpdump 4.99.3 with libpcap
# 1.10.3 refuses the Reserved3 bits of the link-type field, an unknown link
# type and a version other than 2.0-2.4 or 543.0; it takes the FCS length,
# P and R bits of the link-type field, any snapshot length, thiszone and
# sigfigs, and a pcapng IDB's Reserved field.)
NANO = pcaputil.NANO_MAGIC
CRAFTED = [
    ("linktype-reserved-field-not-zero.pcap", pcaputil.craft_pcap(linktype=0x02000001),
     "link-type field"),
    ("linktype-reserved-header-only.pcap", pcaputil.craft_pcap(linktype=0x02000001, records=0),
     "link-type field"),
    ("linktype-reserved-all.pcap", pcaputil.craft_pcap(linktype=0x03FF0001), "link-type field"),
    ("linktype-reserved-bit16.pcap", pcaputil.craft_pcap(linktype=0x00010001), "link-type field"),
    ("linktype-reserved-swapped.pcap",
     pcaputil.craft_pcap(linktype=0x00400001, endian=">"), "link-type field"),
    ("linktype-reserved-nano.pcap", pcaputil.craft_pcap(magic=NANO, linktype=0x00800001),
     "link-type field"),
    ("linktype-unknown-999.pcap", pcaputil.craft_pcap(linktype=999), "link type 999"),
    ("linktype-unknown-2.pcap", pcaputil.craft_pcap(linktype=2), "link type 2"),
    ("linktype-unknown-65535-fcs.pcap", pcaputil.craft_pcap(linktype=0xF400FFFF),
     "link type 65535"),
    ("linktype-fcs-len-4.pcap", pcaputil.craft_pcap(linktype=0x44000001), None),
    ("linktype-fcs-bits.pcap", pcaputil.craft_pcap(linktype=0xF4000001), None),
    ("linktype-r-bit.pcap", pcaputil.craft_pcap(linktype=0x08000001), None),
    ("linktype-user0.pcap", pcaputil.craft_pcap(linktype=147), None),
    ("version-2.5.pcap", pcaputil.craft_pcap(minor=5), "version 2.5"),
    ("version-3.0.pcap", pcaputil.craft_pcap(major=3, minor=0), "version 3.0"),
    ("version-1.4.pcap", pcaputil.craft_pcap(major=1), "archaic"),
    ("version-2.3.pcap", pcaputil.craft_pcap(minor=3), None),
    ("version-543.0.pcap", pcaputil.craft_pcap(major=543, minor=0), None),
    ("snaplen-0.pcap", pcaputil.craft_pcap(snaplen=0), None),
    ("snaplen-max.pcap", pcaputil.craft_pcap(snaplen=0xFFFFFFFF), None),
    ("thiszone-sigfigs.pcap", pcaputil.craft_pcap(thiszone=-3600, sigfigs=6), None),
    ("pcapng-linktype-999.pcapng", pcaputil.craft_pcapng(linktype=999), "link type 999"),
    ("pcapng-idb-reserved.pcapng", pcaputil.craft_pcapng(reserved=0x0100), None),
]
FIXTURES = os.path.join(ROOT, "fixtures")


def no_fcs_bits(pcap):
    """A little-endian pcap without the top six bits of its link-type field
    (FCS length, P, R). tcpdump -w copies them from the file it read; a
    rewind point keeps only the link type, so its answers have them zero."""
    if len(pcap) < 24:
        return pcap
    return pcap[:23] + bytes([pcap[23] & 0x03]) + pcap[24:]


def test_crafted_headers(tmp):
    """Each crafted file as tcpdump judges it; the committed fixture is the
    crafted file of the same name."""
    crafted = os.path.join(tmp, "crafted")
    os.makedirs(crafted)
    for name, data, needle in CRAFTED:
        path = os.path.join(crafted, name)
        with open(path, "wb") as f:
            f.write(data)
        td = subprocess.run(["tcpdump", "--time-stamp-precision=nano", "-r", path, "-w", "-"],
                            capture_output=True)
        refused = td.returncode != 0
        check(refused == (needle is not None),
              "%s: tcpdump %s it, the table says otherwise: %r" %
              (name, "refuses" if refused else "reads", td.stderr))
        if refused:
            check_bad_file(tmp, name, path, needle)
            continue
        arch = os.path.join(tmp, "crafted-" + name)
        r = rw("import", "--quiet", "--dir", arch, "--point", "x", path)
        got = rw("query", "--dir", arch, "--point", "x")
        check(r.returncode == 0 and got.returncode == 0 and
              no_fcs_bits(got.stdout) == no_fcs_bits(td.stdout) and
              len(pcaputil.read_pcap(td.stdout)[1]) == 2,
              "%s: tcpdump reads it, rewind import: exit %d %r; query %d bytes, tcpdump %d" %
              (name, r.returncode, r.stderr, len(got.stdout), len(td.stdout)))
    fixture = os.path.join(FIXTURES, "linktype-reserved-field-not-zero.pcap")
    with open(fixture, "rb") as f:
        check(f.read() == CRAFTED[0][1], "%s is not the crafted file of that name" % fixture)
    check_bad_file(tmp, "fixture", fixture, "link-type field")


def check_bad_file(tmp, name, path, needle=None):
    """Importing path, after a good file into another point, exits 2 with one
    line naming the file (and needle) and keeps what tcpdump keeps of it;
    the archive is otherwise unchanged."""
    base = os.path.join(PCAPS, "good", "smtp.pcap")
    arch = os.path.join(tmp, "bad-" + name)
    r = rw("import", "--quiet", "--dir", arch, "--point", "base", base)
    check(r.returncode == 0, "%s: importing the base file" % name)
    before = rw("query", "--dir", arch, "--point", "base").stdout
    status_before = status_content(arch)
    r = rw("import", "--quiet", "--dir", arch, "--point", "bad", path)
    err = r.stderr.decode()
    lines = [l for l in err.splitlines() if l.strip()]
    check(r.returncode == 2, "%s: exit code %d, expected 2" % (name, r.returncode))
    check(len(lines) == 1, "%s: expected one error line, got %r" % (name, err))
    check(path in err, "%s: message does not name the file: %r" % (name, err))
    check("record" in err or "file header" in err,
          "%s: message does not name the record: %r" % (name, err))
    check(not needle or needle in err, "%s: message does not say %r: %r" % (name, needle, err))
    # tcpdump keeps the good records before the fault: so must we.
    want = tcpdump(path)
    got = rw("query", "--dir", arch, "--point", "bad")
    if len(want) >= 24 and len(pcaputil.read_pcap(want)[1]) > 0:
        check(got.returncode == 0 and got.stdout == want,
              "%s: kept records differ from tcpdump's (%d vs %d bytes): %s" %
              (name, len(got.stdout), len(want), got.stderr.decode().strip()))
    else:
        check(got.returncode == 2 and b"no capture point" in got.stderr,
              "%s: a file with no good records must not create a point (%d %r)" %
              (name, got.returncode, got.stderr))
    after = rw("query", "--dir", arch, "--point", "base").stdout
    check(before == after and len(before) > 24, "%s: the base point changed" % name)
    if not (len(want) >= 24 and len(pcaputil.read_pcap(want)[1]) > 0):
        check(status_content(arch) == status_before,
              "%s: status changed after a file with no good records" % name)


def test_bad_files(tmp):
    """The faulty files of the shared corpus (PCAPS/bad)."""
    for name in sorted(os.listdir(os.path.join(PCAPS, "bad"))):
        check_bad_file(tmp, name, os.path.join(PCAPS, "bad", name))


def test_one_point_several_files(tmp):
    arch = os.path.join(tmp, "multi-files")
    f1 = os.path.join(PCAPS, "good", "smtp.pcap")
    f2 = os.path.join(PCAPS, "good", "sip-tcp.pcap")
    f3 = os.path.join(PCAPS, "good", "dns-edns-ecs.pcap")
    r = rw("import", "--quiet", "--dir", arch, f1, f2)
    check(r.returncode == 0, "multi-files: import: %s" % r.stderr.decode())
    r = rw("import", "--quiet", "--dir", arch, f3)
    check(r.returncode == 0, "multi-files: second import: %s" % r.stderr.decode())
    for flt in ["", "tcp", "port 25", "udp", "not port 5060", "host 10.10.1.4"]:
        parts = [pcaputil.read_pcap(tcpdump(f, flt)) for f in (f1, f2, f3)]
        want = parts[0][0] + b"".join(rec for p in parts for _, rec in p[1])
        got = rw("query", "--dir", arch, *([flt] if flt else []))
        check(got.returncode == 0 and got.stdout == want,
              "multi-files: filter %r: capture order of the files not kept" % flt)


def test_points_merge(tmp):
    arch = os.path.join(tmp, "multi-points")
    files = [("a", os.path.join(PCAPS, "good", "smtp.pcap")),
             ("b", os.path.join(PCAPS, "good", "smtp-data-rejected.pcap")),
             ("c", os.path.join(PCAPS, "good", "output-eve-ftp-data.pcap"))]
    for point, f in files:
        r = rw("import", "--quiet", "--dir", arch, "--point", point, f)
        check(r.returncode == 0, "multi-points: import %s: %s" % (f, r.stderr.decode()))
    for flt in ["", "tcp", "port 25", "not port 25"]:
        parts = [pcaputil.read_pcap(tcpdump(f, flt)) for _, f in files]
        merged = pcaputil.merge_by_time([p[1] for p in parts])
        want = parts[0][0] + b"".join(rec for _, rec in merged)
        got = rw("query", "--dir", arch, *([flt] if flt else []))
        check(got.returncode == 0 and got.stdout == want,
              "multi-points: filter %r: not merged by time" % flt)
        one = rw("query", "--dir", arch, "--point", "b", *([flt] if flt else []))
        check(one.stdout == tcpdump(files[1][1], flt), "multi-points: --point b, filter %r" % flt)
    # pcapng: one interface per point, readable by tcpdump, same packets.
    ng = rw("query", "--dir", arch, "--format", "pcapng")
    p = subprocess.run(["tcpdump", "--time-stamp-precision=nano", "-r", "-", "-w", "-"],
                       input=ng.stdout, capture_output=True)
    want = pcaputil.merge_by_time([pcaputil.read_pcap(tcpdump(f))[1] for _, f in files])
    check(p.returncode == 0 and [r for _, r in pcaputil.read_pcap(p.stdout)[1]] ==
          [r for _, r in want], "multi-points: pcapng answer differs: %s" % p.stderr.decode())
    # Different link types: pcap refused with a message, pcapng works.
    sll = os.path.join(PCAPS, "good", "tcp-handshake-nano.pcap")
    r = rw("import", "--quiet", "--dir", arch, "--point", "sll", sll)
    check(r.returncode == 0, "multi-points: import SLL: %s" % r.stderr.decode())
    r = rw("query", "--dir", arch)
    check(r.returncode == 2 and b"link type" in r.stderr and b"pcapng" in r.stderr,
          "multi-points: pcap over mixed link types must be refused (%d %r)" %
          (r.returncode, r.stderr))
    r = rw("query", "--dir", arch, "--format", "pcapng", "--count")
    total = sum(len(pcaputil.read_pcap(tcpdump(f))[1]) for _, f in files + [("sll", sll)])
    check(r.returncode == 0 and r.stdout.strip() == str(total).encode(),
          "multi-points: --count over all points: %r, expected %d" % (r.stdout, total))
    # A point keeps its link type.
    r = rw("import", "--quiet", "--dir", arch, "--point", "a", sll)
    check(r.returncode == 2 and b"link type" in r.stderr,
          "multi-points: link type mismatch on a point must be refused: %r" % r.stderr)


def test_multi_interface_pcapng(tmp):
    arch = os.path.join(tmp, "ngmulti")
    f = os.path.join(PCAPS, "edge", "pcapng-multi-interface.pcapng")
    r = rw("import", "--quiet", "--dir", arch, "--point", "ng", f)
    check(r.returncode == 0, "pcapng-multi: import: %s" % r.stderr.decode())
    st = rw("status", "--dir", arch).stdout.decode()
    check("ng-if1" in st and "\nng " in st, "pcapng-multi: one point per interface:\n" + st)


def test_multi_interface_stream(tmp):
    """A pcapng file read from a pipe or standard input gets one point per
    interface exactly as the same file given by path: the small edge file,
    and a multi-megabyte file of two sections and four interfaces."""
    src = os.path.join(tmp, "ngsrc")
    rw("import", "--quiet", "--dir", src, "--point", "x", os.path.join(PCAPS, "good",
                                                                        "echo-connections.pcap"))
    rw("import", "--quiet", "--dir", src, "--point", "y", os.path.join(PCAPS, "good", "smtp.pcap"))
    big = rw("query", "--dir", src, "--format", "pcapng").stdout
    with open(os.path.join(PCAPS, "edge", "pcapng-multi-interface.pcapng"), "rb") as fh:
        small = fh.read()
    for name, data, points in (("small", small, ["ng", "ng-if1"]),
                               ("two-sections", small + big, ["ng", "ng-if1", "ng-if2",
                                                              "ng-if3"])):
        path = os.path.join(tmp, name + ".pcapng")
        with open(path, "wb") as fh:
            fh.write(data)
        byfile = os.path.join(tmp, "ng-file-" + name)
        r = rw("import", "--quiet", "--dir", byfile, "--point", "ng", path)
        check(r.returncode == 0, "pcapng %s by path: %s" % (name, r.stderr.decode()))
        want = {p: rw("query", "--dir", byfile, "--point", p).stdout for p in points}
        check(all(len(pcaputil.read_pcap(w)[1]) > 0 for w in want.values()),
              "pcapng %s by path: a point per interface, each with packets" % name)
        for how in ("pipe", "stdin-file"):
            arch = os.path.join(tmp, "ng-%s-%s" % (how, name))
            if how == "pipe":
                r = subprocess.run([REWIND, "import", "--quiet", "--dir", arch, "--point", "ng",
                                    "-"], input=data, capture_output=True)
            else:
                with open(path, "rb") as fh:
                    r = subprocess.run([REWIND, "import", "--quiet", "--dir", arch, "--point",
                                        "ng", "-"], stdin=fh, capture_output=True)
            check(r.returncode == 0, "pcapng %s from %s: %s" % (name, how, r.stderr.decode()))
            got = {p: rw("query", "--dir", arch, "--point", p).stdout for p in points}
            check(got == want, "pcapng %s from %s: points differ from the import by path:\n%s" %
                  (name, how, rw("status", "--dir", arch).stdout.decode()))


def test_usage_errors(tmp):
    arch = os.path.join(tmp, "usage")
    rw("import", "--quiet", "--dir", arch, os.path.join(PCAPS, "good", "smtp.pcap"))
    cases = [
        (["query", "--dir", arch, "--from", "yesterday"], "time 'yesterday'"),
        (["query", "--dir", arch, "--from", "2024-13-01T00:00:00Z"], "out of range"),
        (["query", "--dir", arch, "--from", "-1x"], "relative"),
        (["query", "--dir", arch, "--from", "100", "--to", "50"], "before"),
        (["query", "--dir", arch, "--count", "host", "and"], "syntax error"),
        (["query", "--dir", arch, "--count", "--point", "nosuch"], "no capture point"),
        (["query", "--dir", arch, "--format", "xml"], "pcapng"),
        (["query", "--dir", arch, "--limit", "-3"], "limit"),
        (["query", "--dir", os.path.join(tmp, "nonexistent"), "--count"], "not a rewind archive"),
        (["query", "--count"], "--dir"),
        (["import", "--dir", arch], "no input files"),
        (["import", "--dir", arch, "--point", "../x", "f"], "invalid point name"),
        (["import", "--dir", arch, os.path.join(tmp, "missing.pcap")], "No such file"),
        (["import", "--dir", arch, tmp], "directory"),
        (["bogus"], "unknown command"),
        (["status", "--dir", arch, "extra"], "unexpected argument"),
    ]
    env = dict(os.environ)
    env.pop("REWIND_DIR", None)
    for args, needle in cases:
        r = subprocess.run([REWIND] + args, capture_output=True, env=env)
        err = r.stderr.decode()
        check(r.returncode == 2 and needle in err and len(err.strip().splitlines()) == 1,
              "usage %s: exit %d, stderr %r (want exit 2 and %r)" % (args, r.returncode, err,
                                                                    needle))
    for cmd in ["import", "query", "status"]:
        r = rw(cmd, "--help")
        check(r.returncode == 0 and b"usage: rewind " + cmd.encode() in r.stdout,
              "%s --help" % cmd)
    r = subprocess.run([os.path.join(BIN, "rewindd"), "--help"], capture_output=True)
    check(r.returncode == 0 and b"usage: rewindd" in r.stdout, "rewindd --help")


def man_sections(path, level):
    """A man page's sections (.SH or .SS) by name, with font escapes removed
    and \\- turned into -, so options read as on the command line."""
    with open(path) as f:
        text = f.read()
    text = re.sub(r"\\f[BIRP]", "", text).replace("\\-", "-")
    out = {}
    for part in re.split(r"^\.%s " % level, text, flags=re.M)[1:]:
        name, _, body = part.partition("\n")
        out[name.strip().strip('"')] = body
    return out


def help_options(text):
    """(short or None, long) for each option line of a --help text."""
    return re.findall(r"^\s+(?:(-[a-zA-Z]), )?(--[a-z][a-z-]*)", text, flags=re.M)


def test_docs(tmp):
    """--help and the man pages agree with the code: every long option the
    code parses is in a --help text, every option of a command's --help is
    in that command's section of rewind(1) (or the OPTIONS of rewindd(8)),
    with its short form, and every command of 'rewind --help' has one."""
    del tmp
    top = rw("--help").stdout.decode()
    cmds = re.findall(r"^  ([a-z][a-z-]*)  ", top.partition("commands:")[2], flags=re.M)
    check(set(cmds) >= {"import", "query", "status", "hold", "verify", "reindex"},
          "rewind --help lists the commands: %r" % cmds)
    man = man_sections(os.path.join(ROOT, "man", "rewind.1"), "SS")
    helps = ""
    for cmd in cmds:
        r = rw(cmd, "--help")
        text = r.stdout.decode()
        helps += text
        check(r.returncode == 0 and text.startswith("usage: rewind " + cmd),
              "rewind %s --help" % cmd)
        sec = man.get(cmd, "")
        check(sec, "rewind(1) has no section for %s" % cmd)
        for short, opt in help_options(text):
            want = '%s ", " %s' % (short, opt) if short else opt
            check(want in sec, "rewind(1) %s: %r is not documented (from --help)" % (cmd, want))
        synopsis = man_sections(os.path.join(ROOT, "man", "rewind.1"), "SH").get("SYNOPSIS", "")
        for opt in set(re.findall(r"--[a-z][a-z-]*", text.partition("\n\n")[0])) - {"--help"}:
            check(opt in synopsis, "rewind(1) SYNOPSIS of %s lacks %s" % (cmd, opt))
    parsed = set()
    srcs = ["rewind.c", "qargs.c"] + sorted(n for n in os.listdir(os.path.join(ROOT, "cli"))
                                            if n.startswith("cmd_") and n.endswith(".c"))
    for src in srcs:  # the client, the query's options, the commands of their own
        with open(os.path.join(ROOT, "cli", src)) as f:
            parsed |= set(re.findall(r'\{"([a-z][a-z-]*)", (?:no|required)_argument', f.read()))
    for opt in sorted(parsed):
        check("--" + opt in helps, "rewind: --%s is parsed but in no --help" % opt)
    # rewindd: the code's options, its --help and the OPTIONS of rewindd(8)
    text = subprocess.run([os.path.join(BIN, "rewindd"), "--help"],
                          capture_output=True).stdout.decode()
    opts = man_sections(os.path.join(ROOT, "man", "rewindd.8"), "SH").get("OPTIONS", "")
    for short, opt in help_options(text):
        want = '%s ", " %s' % (short, opt) if short else opt
        check(want in opts, "rewindd(8) OPTIONS: %r is not documented (from --help)" % want)
    with open(os.path.join(ROOT, "cli", "rewindd.c")) as f:
        parsed = set(re.findall(r'\{"([a-z][a-z-]*)", (?:no|required)_argument', f.read()))
    for opt in sorted(parsed):
        check("--" + opt in text, "rewindd: --%s is parsed but not in --help" % opt)
        check("--" + opt in opts, "rewindd(8) OPTIONS: --%s is parsed but not documented" % opt)


def main():
    tmp = tempfile.mkdtemp(prefix="rewind-import-")
    try:
        for t in (test_bad_files, test_crafted_headers, test_one_point_several_files, test_points_merge,
                  test_multi_interface_pcapng, test_multi_interface_stream, test_usage_errors,
                  test_docs):
            t(tmp)
    finally:
        subprocess.run(["rm", "-rf", tmp])
    print("import: %d passed, %d failed" % (harness.passed, len(harness.failed)))
    return 1 if harness.failed else 0


if __name__ == "__main__":
    sys.exit(main())
