#!/usr/bin/env python3
"""Lawful intercept (issue 14) against a real rewindd: cases made, listed,
changed and ended over HTTP (curl) and with `rewind case`; every malformed
case refused with a 400 naming the field; an agency token sees its own case
and nothing else; every change in the audit trail; the retrospective copy of
a case equal to tcpdump's answer for the case's filter and surviving the
retention that deletes the segments it came from."""
import hashlib
import json
import os
import signal
import socket
import struct
import subprocess
import sys
import tempfile
import time
import urllib.parse

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "lib"))
import harness  # noqa: E402
import pcaputil  # noqa: E402
from harness import PCAPS, REWINDD, TRAFFICGEN, check, rw  # noqa: E402

SMTP = os.path.join(PCAPS, "good", "smtp.pcap")


def curl(method, url, token=None, body=None):
    """(status, body) of one request, as a user would make it."""
    args = ["curl", "-s", "-o", "-", "-w", "\n%{http_code}", "-X", method, url]
    if token:
        args += ["-H", "Authorization: Bearer " + token]
    if body is not None:
        args += ["-H", "Content-Type: application/json", "--data-binary", "@-"]
    p = subprocess.run(args, input=(body if isinstance(body, bytes) else
                                    (body or "").encode()), capture_output=True)
    out, _, code = p.stdout.rpartition(b"\n")
    return int(code or 0), out


def tcpdump_recs(path, flt):
    """The records tcpdump writes for flt (nanosecond pcap)."""
    p = subprocess.run(["tcpdump", "--time-stamp-precision=nano", "-r", path, "-w", "-", flt],
                       capture_output=True)
    return pcaputil.read_pcap(p.stdout)[1]


def pcapng_recs(path):
    """A pcapng file's records as tcpdump reads them back (nanosecond pcap)."""
    return tcpdump_recs(path, "")


def gen(path, size, seed, start):
    subprocess.run([TRAFFICGEN, "--seed", str(seed), "--bytes", size, "--rate", "20000",
                    "--start", str(start), "-o", path], check=True, capture_output=True)


def case_doc(cid, targets, **kw):
    d = {"id": cid, "authority": "District Court", "warrant": "W-" + cid,
         "from": "2000-01-01T00:00:00Z", "to": "+30d", "targets": targets}
    d.update(kw)
    return json.dumps(d)


BAD_CASES = [  # (document, the field the message must start with)
    ('{"id": "X"', "body"),
    ('[1, 2]', "body"),
    (case_doc("LI/1", [{"ip": "192.0.2.7"}]), "id"),
    (case_doc("", [{"ip": "192.0.2.7"}]), "id"),
    (case_doc("B1", [{"ip": "192.0.2.300"}]), "targets[0].ip"),
    (case_doc("B1", [{"ip": "192.0.2.7"}, {"prefix": "2001:db8:7::/129"}]), "targets[1].prefix"),
    (case_doc("B1", [{"prefix": "10.1.2.3/8"}]), "targets[0].prefix"),
    (case_doc("B1", [{"prefix": "10.0.0.0"}]), "targets[0].prefix"),
    (case_doc("B1", [{"mac": "00:11:22:33:44"}]), "targets[0].mac"),
    (case_doc("B1", [{"mac": "00:11:22:33:44:zz"}]), "targets[0].mac"),
    (case_doc("B1", [{"user": ""}]), "targets[0].user"),
    (case_doc("B1", [{"imsi": "001010123456789"}]), "targets[0]"),
    (case_doc("B1", [{"ip": "192.0.2.7", "mac": "00:11:22:33:44:55"}]), "targets[0]"),
    (case_doc("B1", []), "targets"),
    (case_doc("B1", [{"ip": "192.0.2.7"}], **{"from": "2026-01-02T00:00:00Z",
                                             "to": "2026-01-01T00:00:00Z"}), "to"),
    (case_doc("B1", [{"ip": "192.0.2.7"}], **{"to": "2000-01-01T00:00:00Z"}), "to"),
    (case_doc("B1", [{"ip": "192.0.2.7"}], **{"from": "yesterday"}), "from"),
    (case_doc("B1", [{"ip": "192.0.2.7"}], delivery={"type": "fax"}), "delivery.type"),
    (case_doc("B1", [{"ip": "192.0.2.7"}], delivery={}), "delivery.type"),
    (case_doc("B1", [{"ip": "192.0.2.7"}], delivery={"type": "etsi"}), "delivery.address"),
    (case_doc("B1", [{"ip": "192.0.2.7"}], delivery={"type": "pull", "address": "x:1"}),
     "delivery.address"),
    (case_doc("B1", [{"ip": "192.0.2.7"}], filter="tcp port"), "filter"),
    (case_doc("B1", [{"ip": "192.0.2.7"}], type="payload"), "type"),
    (case_doc("B1", [{"ip": "192.0.2.7"}], color="red"), "color"),
    ('{"id": "B1", "authority": "c", "warrant": "w", "from": "-1h", "to": "+1h"}', "targets"),
    ('{"id": "B1", "warrant": "w", "from": "-1h", "to": "+1h", "targets": [{"ip": "1.2.3.4"}]}',
     "authority"),
]


def main():
    tmp = tempfile.mkdtemp(prefix="rwintercept%d" % os.getpid())
    arch = os.path.join(tmp, "arch")
    r = rw("import", "--quiet", "--dir", arch, "--point", "border", SMTP)
    check(r.returncode == 0, "import smtp.pcap: %r" % r.stderr)
    admin = rw("token", "add", "--dir", arch, "--name", "boss", "--role", "admin").stdout
    admin = admin.decode().strip()
    agency = rw("token", "add", "--dir", arch, "--name", "police", "--role", "agency",
                "--case", "LI-A").stdout.decode().strip()
    analyst = rw("token", "add", "--dir", arch, "--name", "ana", "--role",
                 "analyst").stdout.decode().strip()
    check(len(admin) == 43 and len(agency) == 43 and len(analyst) == 43, "tokens made")
    port = harness.free_port()
    base = "http://127.0.0.1:%d/api/v1/cases" % port
    log = os.path.join(tmp, "rewindd.log")
    d = subprocess.Popen([REWINDD, "--dir", arch, "--listen", "127.0.0.1:%d" % port,
                          "--quota", "24M", "--segment-bytes", "4M", "--log", log])
    try:
        for _ in range(200):
            if os.path.exists(os.path.join(arch, "rewindd.sock")) and \
                    curl("GET", base, admin)[0] == 200:
                break
            time.sleep(0.05)
        run(arch, base, admin, agency, analyst, tmp)
    finally:
        d.send_signal(signal.SIGTERM)
        rc = d.wait(timeout=60)
    check(rc == 0, "rewindd exit status %d" % rc)
    text = open(log).read()
    check("case LI-A created by boss" in text, "the daemon logs the case made")
    check(admin not in text and agency not in text, "tokens never in the log")
    # Without a daemon the CLI reads and writes the case store itself.
    r = rw("case", "list", "--dir", arch)
    check(r.returncode == 0 and b"LI-A  ended" in r.stdout and b"LI-C" in r.stdout,
          "case list without a daemon: %r %r" % (r.stdout, r.stderr))
    r = rw("case", "add", "--dir", arch, "--id", "LI-L", "--authority", "court", "--warrant",
           "W9", "--from", "2000-01-01T00:00:00Z", "--to", "+1d", "--ip", "10.10.1.4")
    check(r.returncode == 0, "case add without a daemon: %r" % r.stderr)
    if r.returncode == 0:
        got = json.loads(r.stdout)
        check(got["created_by"].startswith("root") and got["preserved"]["packets"] == 0,
              "local case: made by the user, nothing left to preserve after retention: %r" % got)
    r = rw("audit", "verify", "--dir", arch)
    check(r.returncode == 0, "audit trail verifies: %r" % r.stderr)
    test_identities(tmp)
    test_live(tmp)
    harness.finish("test_intercept")


def run(arch, base, admin, agency, analyst, tmp):
    # ---- bad input: 400 naming the field, nothing stored ----
    for doc, field in BAD_CASES:
        st, body = curl("POST", base, admin, doc)
        msg = ""
        try:
            msg = json.loads(body)["error"]["message"]
        except (ValueError, KeyError):
            pass
        check(st == 400 and msg.startswith(field + ":"),
              "bad case %s: want 400 naming %s, got %d %r" % (doc[:80], field, st, body[:200]))
    check(not os.path.exists(os.path.join(arch, "cases", "B1")), "a refused case is not stored")
    st, body = curl("POST", base, admin, b"{" + b" " * (9 << 20) + b"}")
    check(st == 413, "a body over the bound: %d" % st)

    # ---- a case: its retrospective part preserved at once ----
    flt = "(host 10.10.1.4 or net 74.53.140.0/24) and (tcp)"
    doc = case_doc("LI-A", [{"ip": "10.10.1.4"}, {"prefix": "74.53.140.0/24"},
                            {"user": "alice"}], filter="tcp")
    st, body = curl("POST", base, admin, doc)
    check(st == 201, "case made: %d %r" % (st, body[:300]))
    case = json.loads(body) if st == 201 else {}
    want = tcpdump_recs(SMTP, flt)
    retro = os.path.join(arch, "cases", "LI-A", "retro.pcapng")
    got = pcapng_recs(retro) if os.path.exists(retro) else []
    check(len(want) > 10 and got == want,
          "retro.pcapng holds exactly tcpdump's packets for %s (%d vs %d)" %
          (flt, len(got), len(want)))
    check(case.get("state") == "active" and case.get("preserved", {}).get("packets") == len(want),
          "case record: %r" % case)
    digest = hashlib.sha256(open(retro, "rb").read()).hexdigest() if got else ""
    check(case.get("preserved", {}).get("sha256") == digest, "the record names the copy's hash")
    st, body = curl("POST", base, admin, doc)
    check(st == 409 and json.loads(body)["error"]["message"].startswith("id:"),
          "the same id again: 409 naming id: %d %r" % (st, body[:200]))
    st, body = curl("POST", base, admin, case_doc("LI-A", [{"ip": "10.10.1.4"}],
                                                  **{"from": "+1d", "to": "+2d"}))
    check(st == 409 and json.loads(body)["error"]["message"].startswith("id:"),
          "the same id with a later window: 409 naming id: %d %r" % (st, body[:200]))
    doc_b = case_doc("LI-B", [{"mac": "00:11:22:33:44:55"}])
    st, _ = curl("POST", base, admin, doc_b)
    check(st == 201, "second case: %d" % st)

    # ---- who sees what ----
    st, body = curl("GET", base, agency)
    ids = [c["id"] for c in json.loads(body)["cases"]] if st == 200 else []
    check(ids == ["LI-A"], "an agency lists its own case only: %d %r" % (st, ids))
    st, body = curl("GET", base, admin)
    ids = [c["id"] for c in json.loads(body)["cases"]] if st == 200 else []
    check(ids == ["LI-A", "LI-B"], "admin lists every case: %r" % ids)
    check(curl("GET", base + "/LI-A", agency)[0] == 200, "agency reads its case")
    check(curl("GET", base + "/LI-B", agency)[0] == 403, "agency refused another case")
    check(curl("GET", base + "/LI-Z", agency)[0] == 403, "agency refused an unknown case")
    check(curl("POST", base, agency, case_doc("LI-X", [{"ip": "192.0.2.1"}]))[0] == 403,
          "agency cannot make cases")
    check(curl("DELETE", base + "/LI-A", agency)[0] == 403, "agency cannot end its case")
    check(curl("GET", base, analyst)[0] == 403, "analyst refused cases")
    check(curl("GET", base)[0] == 401, "no token: 401")
    check(curl("GET", base + "/LI-Z", admin)[0] == 404, "unknown case: 404")
    check(curl("PUT", base + "/LI-A", admin, "{}")[0] == 405, "PUT: 405")
    check(curl("GET", base + "/LI-A?x=1", admin)[0] == 400, "unknown parameter: 400")

    # ---- changes ----
    st, body = curl("PATCH", base + "/LI-A", admin, '{"to": "+60d", "warrant": "W-LI-A/2"}')
    check(st == 200 and json.loads(body)["warrant"] == "W-LI-A/2", "patch: %d %r" % (st, body))
    for patch, field in (('{"targets": [{"ip": "1.2.3.4"}]}', "targets"),
                         ('{"to": "2000-01-01T00:00:00Z"}', "to"), ('{"to": "-1h"}', "to"),
                         ('{"to": "1999-01-01T00:00:00Z"}', "to"), ('{"x": 1}', "x"),
                         ('{"delivery": {"type": "etsi", "address": "127.0.0.1:9",'
                          ' "country": "XX", "tls": {"ca": "/nonexistent.pem"}}}',
                          "delivery.tls.ca"),
                         ('{"delivery": {"type": "carrier-pigeon"}}', "delivery.type"),
                         ('nope', "body")):
        st, body = curl("PATCH", base + "/LI-A", admin, patch)
        check(st == 400 and json.loads(body)["error"]["message"].startswith(field + ":"),
              "bad patch %s: %d %r" % (patch, st, body))
    check(curl("PATCH", base + "/LI-Z", admin, '{"to": "+1d"}')[0] == 404, "patch unknown: 404")
    st, body = curl("DELETE", base + "/LI-A", admin)
    check(st == 200 and json.loads(body)["state"] == "ended" and "ended" in json.loads(body),
          "DELETE ends the case: %d %r" % (st, body[:200]))
    check(curl("DELETE", base + "/LI-A", admin)[0] == 409, "ending twice: 409")
    check(curl("PATCH", base + "/LI-A", admin, '{"to": "+1d"}')[0] == 409, "patch ended: 409")
    st, body = curl("GET", base + "/LI-A", agency)
    check(st == 200 and json.loads(body)["state"] == "ended", "an ended case stays readable")

    # ---- rewind case, through the daemon's control socket ----
    r = rw("case", "add", "--dir", arch, "--id", "LI-C", "--authority", "court", "--warrant",
           "W7", "--from", "2000-01-01T00:00:00Z", "--to", "+1d", "--ip", "10.10.1.1",
           "--filter", "udp port 53")
    check(r.returncode == 0, "rewind case add: %r" % r.stderr)
    c = json.loads(r.stdout) if r.returncode == 0 else {}
    want_c = tcpdump_recs(SMTP, "(host 10.10.1.1) and (udp port 53)")
    check(c.get("preserved", {}).get("packets") == len(want_c) and len(want_c) > 0 and
          pcapng_recs(os.path.join(arch, "cases", "LI-C", "retro.pcapng")) == want_c,
          "rewind case add preserved tcpdump's packets")
    r = rw("case", "list", "--dir", arch)
    lines = r.stdout.decode().splitlines()
    check(r.returncode == 0 and [ln.split()[0] for ln in lines] == ["LI-A", "LI-B", "LI-C"],
          "rewind case list: %r" % lines)
    r = rw("case", "show", "--dir", arch, "LI-B")
    check(r.returncode == 0 and json.loads(r.stdout)["targets"] == [{"mac": "00:11:22:33:44:55"}],
          "rewind case show: %r" % r.stdout)
    r = rw("case", "end", "--dir", arch, "LI-B")
    check(r.returncode == 0 and json.loads(r.stdout)["state"] == "ended", "rewind case end")
    for args, what in ((["show", "--dir", arch, "LI-Q"], 1), (["add", "--dir", arch, "--id",
                       "LI-D", "--ip", "1.2.3"], 2), (["frobnicate", "--dir", arch], 2),
                       (["show", "--dir", arch], 2), (["end", "--dir", arch, "LI-B"], 2),
                       (["add", "--dir", arch, "--json", "/nonexistent"], 2)):
        r = rw("case", *args)
        check(r.returncode == what and r.stderr.startswith(b"rewind: "),
              "rewind case %s: exit %d, want %d: %r" % (args[0], r.returncode, what, r.stderr))
    r = rw("case", "add", "--dir", arch, "--id", "LI-D", "--ip", "1.2.3")
    check(b"targets[0].ip" in r.stderr, "the CLI names the field: %r" % r.stderr)

    # ---- every change and refusal on the record, with its case ----
    r = rw("audit", "--dir", arch, "--json")
    recs = [json.loads(ln) for ln in r.stdout.decode().splitlines()]
    for route, status in (("POST /api/v1/cases", 201), ("PATCH /api/v1/cases/LI-A", 200),
                          ("DELETE /api/v1/cases/LI-A", 200), ("GET /api/v1/cases/LI-B", 403),
                          ("DELETE /api/v1/cases/LI-A", 403), ("ctl case add", 201),
                          ("ctl case end", 200)):
        check(any(x.get("route") == route and x.get("status") == status for x in recs),
              "audit record of %s -> %d" % (route, status))
    made = [x for x in recs if x.get("route") == "POST /api/v1/cases" and x.get("status") == 201
            and "LI-A" in json.dumps(x)]
    check(len(made) == 1 and made[0].get("sha256") == digest and made[0].get("principal") == "boss",
          "the creation's record carries the copy's hash and who: %r" % made)

    # ---- rewind case --url: the same over HTTP, as the token allows ----
    url_checks(base.rsplit("/api/", 1)[0], admin, agency)

    # ---- evidence bundles ----
    bundle_checks(arch, base, admin, agency, flt, tmp)

    # ---- the copy survives retention deleting its segments ----
    for i, size in enumerate(("40M", "40M")):
        f = os.path.join(tmp, "fill%d.pcap" % i)
        gen(f, size, 30 + i, 1700000000 + 200 * i)
        r = rw("import", "--quiet", "--dir", arch, f)
        check(r.returncode == 0, "filler import: %r" % r.stderr)
        os.unlink(f)
    r = rw("query", "--dir", arch, "--count", "host 10.10.1.4")
    check(r.returncode == 0 and int(r.stdout or -1) == 0,
          "retention deleted the smtp segments: %r %r" % (r.stdout, r.stderr))
    check(pcapng_recs(retro) == want and
          hashlib.sha256(open(retro, "rb").read()).hexdigest() == digest,
          "the case's copy survived retention unchanged")


def url_checks(url, admin, agency):
    r = rw("case", "list", "--url", url, "--token", admin)
    ids = [ln.split()[0] for ln in r.stdout.decode().splitlines()]
    check(r.returncode == 0 and ids == ["LI-A", "LI-B", "LI-C"],
          "rewind case list --url: %r %r" % (ids, r.stderr))
    r = rw("case", "list", "--url", url, "--token", agency)
    check(r.returncode == 0 and [ln.split()[0] for ln in r.stdout.decode().splitlines()] ==
          ["LI-A"], "an agency's rewind case list --url: its own case: %r" % r.stdout)
    r = rw("case", "show", "--url", url, "LI-A", env=dict(os.environ, REWIND_TOKEN=agency))
    check(r.returncode == 0 and json.loads(r.stdout or b"{}").get("id") == "LI-A",
          "rewind case show --url with $REWIND_TOKEN: %r" % r.stderr)
    r = rw("case", "add", "--url", url, "--token", admin, "--id", "LI-U", "--authority",
           "court", "--warrant", "W8", "--from", "-1h", "--to", "+1d", "--ip", "10.10.1.9")
    check(r.returncode == 0 and json.loads(r.stdout or b"{}").get("created_by") == "boss",
          "rewind case add --url: made by the token's name: %r %r" % (r.stdout[:200], r.stderr))
    r = rw("case", "end", "--url", url, "--token", admin, "LI-U")
    check(r.returncode == 0 and json.loads(r.stdout or b"{}").get("state") == "ended",
          "rewind case end --url: %r" % r.stderr)
    for args, code, msg in ((["end", "--token", admin, "LI-U"], 2, b"ended already"),
                            (["show", "--token", admin, "LI-NONE"], 1, b"no case LI-NONE"),
                            (["show", "LI-A"], 2, b"HTTP 401"),
                            (["end", "--token", agency, "LI-A"], 2, b"HTTP 403"),
                            (["add", "--token", admin, "--id", "LI-U", "--authority", "c",
                              "--warrant", "w", "--from", "-1h", "--to", "+1d", "--ip",
                              "10.10.1.9"], 2, b"id: case LI-U exists already"),
                            (["show", "--token", admin, "../x"], 2, b"not a case id")):
        r = rw("case", args[0], "--url", url, *args[1:], env=dict(os.environ, REWIND_TOKEN=""))
        check(r.returncode == code and msg in r.stderr,
              "rewind case %s --url: exit %d (want %d), %r" % (args[0], r.returncode, code,
                                                                 r.stderr[-200:]))
    r = rw("case", "list", "--url", url, "--dir", "/tmp")
    check(r.returncode == 2, "--url and --dir together: exit 2")


def bundle_checks(arch, base, admin, agency, flt, tmp):
    out = os.path.join(tmp, "LI-A.tar")
    r = rw("export", "--dir", arch, "--case", "LI-A", "-o", out)
    check(r.returncode == 0 and os.path.exists(out), "rewind export: %r" % r.stderr)
    if r.returncode:
        return
    x = os.path.join(tmp, "x")
    os.makedirs(x)
    subprocess.run(["tar", "xf", out, "-C", x], check=True)
    bag = os.path.join(x, os.listdir(x)[0])
    for m in ("manifest-sha256.txt", "tagmanifest-sha256.txt"):
        p = subprocess.run(["sha256sum", "-c", m], cwd=bag, capture_output=True)
        check(p.returncode == 0, "sha256sum -c %s passes: %r" % (m, p.stdout + p.stderr))
    names = sorted(os.listdir(os.path.join(bag, "data")))
    check(names == ["audit.jsonl", "capture.json", "case.json", "packets.pcapng"],
          "payload files: %r" % names)
    case = json.load(open(os.path.join(bag, "data", "case.json")))
    info = open(os.path.join(bag, "bag-info.txt")).read()
    check(case["id"] == "LI-A" and "W-LI-A/2" in info and "Payload-Oxum: " in info,
          "case.json and bag-info.txt name the case and warrant")
    aud = [json.loads(ln) for ln in open(os.path.join(bag, "data", "audit.jsonl"))]
    check(len(aud) >= 4 and all(a["params"].get("case") == "LI-A" for a in aud),
          "audit.jsonl: the case's records only (%d)" % len(aud))
    p = subprocess.run(["openssl", "ts", "-query", "-in", os.path.join(bag, "manifest-sha256.txt.tsq"),
                        "-text"], capture_output=True)
    digest = hashlib.sha256(open(os.path.join(bag, "manifest-sha256.txt"), "rb").read()).hexdigest()
    shown = "".join(ln.split(" - ")[1].replace("-", " ").split("  ")[0].replace(" ", "")
                    for ln in p.stdout.decode().splitlines() if " - " in ln)
    check(p.returncode == 0 and shown == digest, "the RFC 3161 request is over the manifest: %r" %
          p.stdout[:300])
    # the packets are rewind query's answer over the same window and filter
    start, end = case["from"], case["ended"]
    q = rw("query", "--dir", arch, "--from", start, "--to", end, "--format", "pcapng", "-w",
           os.path.join(tmp, "q.pcapng"), flt)
    check(q.returncode == 0 and pcapng_recs(os.path.join(tmp, "q.pcapng")) ==
          pcapng_recs(os.path.join(bag, "data", "packets.pcapng")) and
          len(pcapng_recs(os.path.join(bag, "data", "packets.pcapng"))) > 10,
          "packets.pcapng equals rewind query over the window and filter")
    r = rw("export", "verify", out)
    check(r.returncode == 0 and b"verified" in r.stdout, "export verify: %r" % r.stderr)
    # one flipped byte: sha256sum -c fails, and so does verify, naming the file
    pk = os.path.join(bag, "data", "packets.pcapng")
    b = bytearray(open(pk, "rb").read())
    b[len(b) // 2] ^= 1
    open(pk, "wb").write(bytes(b))
    p = subprocess.run(["sha256sum", "-c", "manifest-sha256.txt"], cwd=bag, capture_output=True)
    check(p.returncode != 0 and b"packets.pcapng: FAILED" in p.stdout, "a flipped byte fails "
          "sha256sum -c")
    t = bytearray(open(out, "rb").read())
    i = t.find(b"\x0a\x0d\x0d\x0a")  # the pcapng's section header in the tar
    t[i + 200] ^= 1
    bad = os.path.join(tmp, "bad.tar")
    open(bad, "wb").write(bytes(t))
    r = rw("export", "verify", bad)
    check(r.returncode == 1 and b"data/packets.pcapng does not match" in r.stderr,
          "export verify names the changed file: %r" % r.stderr)
    r = rw("export", "verify", os.path.join(tmp, "q.pcapng"))
    check(r.returncode == 2, "verify of no tar: exit 2: %r" % r.stderr)
    # over HTTP, by the case's agency
    st, body = curl("POST", base + "/LI-A/exports", agency)
    check(st == 200 and body[257:262] == b"ustar", "POST exports by the agency: %d" % st)
    if st == 200:
        open(os.path.join(tmp, "h.tar"), "wb").write(body)
        r = rw("export", "verify", os.path.join(tmp, "h.tar"))
        check(r.returncode == 0, "the HTTP bundle verifies: %r" % r.stderr)
    check(curl("POST", base + "/LI-B/exports", agency)[0] == 403, "another case's bundle: 403")
    st, body = curl("GET", base + "/LI-A/exports", admin)
    check(st == 200 and len(json.loads(body)["exports"]) == 1, "GET exports lists the bundle")
    check(curl("POST", base + "/LI-A/exports?from=yesterday", admin)[0] == 400, "bad from: 400")


# ---- subscriber identities from RADIUS accounting ----

T0 = 1700000000 * 10**9
SEC = 10**9


def eth(payload, ethertype=0x0800):
    return bytes.fromhex("020000000002020000000001") + struct.pack(">H", ethertype) + payload


def ip4(src, dst, proto, payload):
    h = struct.pack(">BBHHHBBH4s4s", 0x45, 0, 20 + len(payload), 1, 0, 64, proto, 0,
                    socket.inet_aton(src), socket.inet_aton(dst))
    return eth(h + payload)


def ip6(src, dst, proto, payload):
    h = struct.pack(">IHBB16s16s", 0x60000000, len(payload), proto, 64,
                    socket.inet_pton(socket.AF_INET6, src), socket.inet_pton(socket.AF_INET6, dst))
    return eth(h + payload, 0x86dd)


def udp(sport, dport, payload):
    return struct.pack(">HHHH", sport, dport, 8 + len(payload), 0) + payload


def attr(t, v):
    return bytes([t, len(v) + 2]) + v


def acct(status, user, ip=None, session=None, prefix=None, code=4):
    a = attr(40, struct.pack(">I", status)) + attr(1, user)
    if ip:
        a += attr(8, socket.inet_aton(ip))
    if session:
        a += attr(44, session.encode())
    if prefix:
        net, plen = prefix.split("/")
        raw = socket.inet_pton(socket.AF_INET6, net)[:(int(plen) + 7) // 8]
        a += attr(97, bytes([0, int(plen)]) + raw)
    a += attr(31, b"00-11-22-33-44-55")
    return bytes([code, 7]) + struct.pack(">H", 20 + len(a)) + b"\0" * 16 + a


def radius_frame(payload, port=1813):
    return ip4("192.168.1.1", "192.168.1.2", 17, udp(40000, port, payload))


def write_pcap(path, frames):
    out = [struct.pack("<IHHiIII", 0xA1B23C4D, 2, 4, 0, 0, 65535, 1)]
    for ts, f in sorted(frames, key=lambda x: x[0]):  # captured in time order
        out.append(struct.pack("<IIII", ts // SEC, ts % SEC, len(f), len(f)) + f)
    with open(path, "wb") as fh:
        fh.write(b"".join(out))


def subscriber_traffic():
    """RADIUS accounting beside the subscribers' traffic: alice holds
    10.0.0.7 [T0+1, T0+6) then 10.0.0.9 and 2001:db8:7::/48 from T0+10; bob
    gets 10.0.0.7 at T0+7; carol holds 10.0.0.11 from T0+13 until dave gets
    it at T0+15 (her Stop was never seen); malformed accounting and an
    Access-Request in between."""
    f = []
    t = T0

    def at(sec, frame):
        f.append((T0 + int(sec * SEC), frame))

    def talk(sec, addr, n):
        for i in range(n):
            if ":" in addr:
                at(sec + i * 0.1, ip6(addr, "2001:db8:ffff::1", 17, udp(5000 + i, 53, b"q" * 20)))
            else:
                at(sec + i * 0.1, ip4(addr, "198.51.100.1", 17, udp(5000 + i, 53, b"q" * 20)))
    at(1, radius_frame(acct(1, b"alice", "10.0.0.7", "A1")))
    talk(2, "10.0.0.7", 5)
    talk(2.05, "10.0.0.8", 3)
    at(6, radius_frame(acct(2, b"alice", "10.0.0.7", "A1")))
    at(7, radius_frame(acct(1, b"bob", "10.0.0.7", "B1")))
    talk(8, "10.0.0.7", 4)
    at(8.5, radius_frame(b"\x04\x01\x00\x30" + b"\0" * 10))           # length overruns
    at(8.6, radius_frame(acct(1, b"mallory\x01", "10.0.0.66", "M1")))  # control character
    at(8.7, radius_frame(acct(1, b"trudy", "10.0.0.67", "T1")[:-3]))  # attribute cut short
    at(8.8, radius_frame(acct(1, b"eve", "10.0.0.68", "E1", code=1), 1812))  # Access-Request
    at(8.9, radius_frame(acct(3, b"alice", "10.0.0.7", "A1")[:22]))   # header only + junk
    at(10, radius_frame(acct(1, b"alice", "10.0.0.9", "A2", "2001:db8:7::/48")))
    talk(11, "10.0.0.9", 4)
    talk(11.02, "2001:db8:7::5", 3)
    talk(11.04, "2001:db8:8::5", 2)
    at(12, radius_frame(acct(3, b"alice", "10.0.0.9", "A2", "2001:db8:7::/48")))
    at(13, radius_frame(acct(1, b"carol", "10.0.0.11", "C1")))
    talk(14, "10.0.0.11", 2)
    at(15, radius_frame(acct(1, b"dave", "10.0.0.11", "D1")))
    talk(16, "10.0.0.11", 2)
    return f


def window_recs(path, flt, lo, hi):
    return [r for r in tcpdump_recs(path, flt)
            if lo <= r[0] < hi]


def test_identities(tmp):
    arch = os.path.join(tmp, "ident")
    pc = os.path.join(tmp, "radius-acct.pcap")
    write_pcap(pc, subscriber_traffic())
    port = harness.free_port()
    base = "http://127.0.0.1:%d/api/v1" % port
    log = os.path.join(tmp, "rewindd-ident.log")
    d = subprocess.Popen([REWINDD, "--dir", arch, "--listen", "127.0.0.1:%d" % port,
                          "--log", log])
    try:
        for _ in range(200):
            if os.path.exists(os.path.join(arch, "rewindd.sock")) and \
                    curl("GET", base + "/identities?user=x")[0] == 200:
                break
            time.sleep(0.05)
        r = rw("import", "--quiet", "--dir", arch, "--point", "bng", pc)
        check(r.returncode == 0, "import through the daemon: %r" % r.stderr)
        ident_checks(arch, base, pc)
    finally:
        d.send_signal(signal.SIGTERM)
        rc = d.wait(timeout=60)
    check(rc == 0, "rewindd exit status %d" % rc)
    # Read without a daemon: the same intervals.
    r = rw("identity", "--dir", arch, "--user", "carol")
    check(r.returncode == 0 and len(r.stdout.splitlines()) == 1 and b"10.0.0.11" in r.stdout,
          "rewind identity without a daemon: %r %r" % (r.stdout, r.stderr))
    # reindex keeps them, the posted ones included (they are in no segment)
    r = rw("reindex", "--dir", arch)
    check(r.returncode == 0, "reindex: %r" % r.stderr[-300:])
    for user, n in (("alice", 3), ("erin", 2), ("frank", 1)):
        r = rw("identity", "--dir", arch, "--user", user)
        check(r.returncode == 0 and len(r.stdout.splitlines()) == n,
              "%s's intervals after reindex: %r" % (user, r.stdout))
    # An import without a daemon feeds identities as well.
    arch2 = os.path.join(tmp, "ident2")
    r = rw("import", "--quiet", "--dir", arch2, pc)
    r = rw("identity", "--dir", arch2, "--user", "alice")
    check(r.returncode == 0 and len(r.stdout.splitlines()) == 3,
          "rewind import (local) feeds identities: %r" % r.stdout)


def iso(ns):
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(ns // SEC)) + ".%09dZ" % (ns % SEC)


def ident_checks(arch, base, pc):
    st, body = curl("GET", base + "/identities?user=alice")
    got = json.loads(body)["identities"] if st == 200 else []
    want = [{"user": "alice", "ip": "10.0.0.7", "start": iso(T0 + SEC), "end": iso(T0 + 6 * SEC),
             "session": "A1", "station": "00-11-22-33-44-55", "source": "radius"},
            {"user": "alice", "ip": "10.0.0.9", "start": iso(T0 + 10 * SEC), "session": "A2",
             "station": "00-11-22-33-44-55", "source": "radius"},
            {"user": "alice", "prefix": "2001:db8:7::/48", "start": iso(T0 + 10 * SEC),
             "session": "A2", "station": "00-11-22-33-44-55", "source": "radius"}]
    check(got == want, "alice's intervals from RADIUS accounting:\n%r\nwant\n%r" % (got, want))
    st, body = curl("GET", base + "/identities?user=carol")
    got = json.loads(body)["identities"] if st == 200 else []
    check(len(got) == 1 and got[0]["end"] == iso(T0 + 15 * SEC),
          "carol's interval ends when dave is given her address: %r" % got)
    st, body = curl("GET", base + "/identities?user=bob&from=%d&to=%d" % (T0 // SEC,
                                                                            T0 // SEC + 7))
    check(st == 200 and json.loads(body)["identities"] == [], "bob held nothing before T0+7")
    for user in ("mallory\x01", "mallory", "trudy", "eve"):
        st, body = curl("GET", base + "/identities?user=" + urllib.parse.quote(user))
        check(st == 200 and json.loads(body)["identities"] == [],
              "garbage RADIUS made no identity for %r: %r" % (user, body))
    st, body = curl("GET", base.replace("/api/v1", "") + "/metrics")
    text = body.decode()
    check('rewind_radius_accounting_total{result="malformed"} 4' in text and
          "rewind_identity_intervals_total 6" in text,
          "metrics count the accounting: %r" %
          [ln for ln in text.splitlines() if "radius" in ln or "identity" in ln])
    r = rw("identity", "--dir", arch, "--user", "alice", "--from", str(T0 // SEC + 9))
    lines = r.stdout.decode().splitlines()
    check(r.returncode == 0 and len(lines) == 2 and lines[0].startswith("10.0.0.9  ") and
          lines[1].startswith("2001:db8:7::/48  ") and "session A2" in lines[0] and
          " .. now" in lines[0], "rewind identity --from: %r %r" % (lines, r.stderr))
    for args in (["--dir", arch], ["--dir", arch, "--user", "a", "--from", "x"],
                 ["--dir", arch, "--user", "a", "--from", "10", "--to", "5"]):
        r = rw("identity", *args)
        check(r.returncode == 2 and r.stderr.startswith(b"rewind: "), "identity %r: %r" %
              (args, r.stderr))

    # posted identities (a DHCP lease log), checked whole before any is used
    lines = ('{"user": "erin", "ip": "10.0.0.20", "start": %d, "end": %d, "session": "L1"}\n'
             '{"user": "erin", "prefix": "2001:db8:20::/56", "start": %d}\n'
             '{"user": "frank", "ip": "192.0.2.1", "start": %d, "ports": "1024-2047"}\n'
             % (T0 // SEC + 20, T0 // SEC + 30, T0 // SEC + 20, T0 // SEC))
    st, body = curl("POST", base + "/identities", None, lines)
    check(st == 200 and json.loads(body) == {"added": 3}, "POST identities: %d %r" % (st, body))
    st, body = curl("GET", base + "/identities?user=erin")
    got = json.loads(body)["identities"] if st == 200 else []
    check([g.get("ip", g.get("prefix")) for g in got] == ["10.0.0.20", "2001:db8:20::/56"] and
          got[0]["end"] == iso(T0 + 30 * SEC) and got[0]["source"] == "api",
          "posted intervals read back: %r" % got)
    for bad, field in (('{"user": "x", "ip": "10.0.0.300", "start": 1}', "line 2: ip"),
                       ('{"user": "x", "prefix": "10.0.0.1/8", "start": 1}', "line 2: prefix"),
                       ('{"user": "x", "ip": "10.0.0.3", "start": 5, "end": 4}', "line 2: end"),
                       ('{"ip": "10.0.0.3", "start": 5}', "line 2: user"),
                       ('{"user": "x", "ip": "10.0.0.3"}', "line 2: start"),
                       ('{"user": "x", "ip": "10.0.0.3", "start": 1, "ports": "9-2"}',
                        "line 2: ports"),
                       ('{"user": "x", "ip": "10.0.0.3", "start": 1, "mac": "a"}', "line 2: mac"),
                       ('not json', "line 2")):
        body_in = '{"user": "ok", "ip": "10.9.9.9", "start": 1}\n' + bad + "\n"
        st, body = curl("POST", base + "/identities", None, body_in)
        msg = json.loads(body).get("error", {}).get("message", "") if st == 400 else ""
        check(st == 400 and msg.startswith(field), "bad identity %s: %d %r" % (bad, st, body))
    st, body = curl("GET", base + "/identities?user=ok")
    check(json.loads(body)["identities"] == [], "a refused batch adds nothing, not even its "
          "good lines")
    check(curl("GET", base + "/identities")[0] == 400, "GET without user: 400")

    # a case for user alice takes her packets, each address only while she held it
    doc = case_doc("LI-U", [{"user": "alice"}], **{"from": str(T0 // SEC)})
    st, body = curl("POST", base + "/cases", None, doc)
    check(st == 201, "case for user alice: %d %r" % (st, body[:300]))
    want = sorted(window_recs(pc, "host 10.0.0.7", T0 + SEC, T0 + 6 * SEC) +
                  window_recs(pc, "host 10.0.0.9 or net 2001:db8:7::/48", T0 + 10 * SEC,
                              T0 + 10**6 * SEC), key=lambda r: r[0])
    retro = os.path.join(arch, "cases", "LI-U", "retro.pcapng")
    got = pcapng_recs(retro) if os.path.exists(retro) else []
    check(len(want) == 12 and got == want,
          "alice's case holds her packets only (%d, want %d)" % (len(got), len(want)))
    bob = window_recs(pc, "host 10.0.0.7", T0 + 7 * SEC, T0 + 10**6 * SEC)
    check(len(bob) == 4 and not any(r in got for r in bob), "bob's traffic on her old address "
          "is not in alice's case")
    doc = case_doc("LI-C", [{"user": "carol"}, {"ip": "203.0.113.9"}],
                   **{"from": str(T0 // SEC)})
    st, body = curl("POST", base + "/cases", None, doc)
    want = window_recs(pc, "host 10.0.0.11", T0 + 13 * SEC, T0 + 15 * SEC)
    got = pcapng_recs(os.path.join(arch, "cases", "LI-C", "retro.pcapng")) if st == 201 else []
    check(len(want) == 2 and got == want, "carol's case stops where dave got her address")


# ---- live intercept and pull delivery, on a veth in a network namespace ----

NS = "rwicept%d" % os.getpid()
SENDER = r"""
import socket, struct, sys, time
iface, src, n, start = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4])
radius = sys.argv[5] if len(sys.argv) > 5 and sys.argv[5] != "-" else None
pad = int(sys.argv[6]) if len(sys.argv) > 6 else 0
s = socket.socket(socket.AF_PACKET, socket.SOCK_RAW)
s.bind((iface, 0))
def frame(src, dst, sport, dport, payload):
    udp = struct.pack(">HHHH", sport, dport, 8 + len(payload), 0) + payload
    ip = struct.pack(">BBHHHBBH4s4s", 0x45, 0, 20 + len(udp), 1, 0, 64, 17, 0,
                     socket.inet_aton(src), socket.inet_aton(dst))
    return bytes.fromhex("020000000002020000000001") + b"\x08\x00" + ip + udp
if radius:
    s.send(frame("10.9.9.1", "10.9.9.2", 40000, 1813, bytes.fromhex(radius)))
for i in range(start, start + n):
    s.send(frame(src, "10.9.0.1", 4000, 5000 + i % 100, b"pkt%08d" % i + b"x" * (pad or i % 50)))
    time.sleep(0.0005)
"""


# The agency's receiver of ETSI TS 102 232 push: its decoder is written here
# from the standard's ASN.1 (TS 102 232-1 PS-PDU, -3 IPCC; IMPLICIT TAGS, a
# tagged CHOICE explicit) with pyasn1, independently of rewind's encoder. It
# drops the connection after DROP_AFTER PDUs, DROPS times; keeps each
# sequence number's IP packet once; writes what it holds to OUT as JSON.
RECEIVER = r"""
import json, socket, sys
from pyasn1.codec.ber import decoder
from pyasn1.error import SubstrateUnderrunError
from pyasn1.type import char, namedtype, tag, univ, useful

def ctx(n): return tag.Tag(tag.tagClassContext, tag.tagFormatSimple, n)
def ctxc(n): return tag.Tag(tag.tagClassContext, tag.tagFormatConstructed, n)

class NetworkIdentifier(univ.Sequence):
    componentType = namedtype.NamedTypes(
        namedtype.NamedType("operatorIdentifier", univ.OctetString().subtype(implicitTag=ctx(0))),
        namedtype.OptionalNamedType("networkElementIdentifier",
                                    univ.OctetString().subtype(implicitTag=ctx(1))))

class CommunicationIdentifier(univ.Sequence):
    componentType = namedtype.NamedTypes(
        namedtype.NamedType("networkIdentifier", NetworkIdentifier().subtype(implicitTag=ctxc(0))),
        namedtype.OptionalNamedType("communicationIdentityNumber",
                                    univ.Integer().subtype(implicitTag=ctx(1))),
        namedtype.OptionalNamedType("deliveryCountryCode",
                                    char.PrintableString().subtype(implicitTag=ctx(2))))

class PSHeader(univ.Sequence):
    componentType = namedtype.NamedTypes(
        namedtype.NamedType("li-psDomainId", univ.ObjectIdentifier().subtype(implicitTag=ctx(0))),
        namedtype.NamedType("lawfulInterceptionIdentifier",
                            univ.OctetString().subtype(implicitTag=ctx(1))),
        namedtype.OptionalNamedType("authorizationCountryCode",
                                    char.PrintableString().subtype(implicitTag=ctx(2))),
        namedtype.NamedType("communicationIdentifier",
                            CommunicationIdentifier().subtype(implicitTag=ctxc(3))),
        namedtype.NamedType("sequenceNumber", univ.Integer().subtype(implicitTag=ctx(4))),
        namedtype.OptionalNamedType("timeStamp", useful.GeneralizedTime().subtype(implicitTag=ctx(5))))

class IPCCContents(univ.Choice):
    componentType = namedtype.NamedTypes(
        namedtype.NamedType("iPPackets", univ.OctetString().subtype(implicitTag=ctx(0))))

class IPCC(univ.Sequence):
    componentType = namedtype.NamedTypes(
        namedtype.NamedType("iPCCObjId", univ.OctetString().subtype(implicitTag=ctx(0))),  # RELATIVE-OID
        namedtype.NamedType("iPCCContents", IPCCContents().subtype(explicitTag=ctxc(1))))

class CCContents(univ.Choice):
    componentType = namedtype.NamedTypes(
        namedtype.NamedType("iPCC", IPCC().subtype(implicitTag=ctxc(2))))

class CCPayload(univ.Sequence):
    componentType = namedtype.NamedTypes(
        namedtype.OptionalNamedType("payloadDirection", univ.Enumerated().subtype(implicitTag=ctx(0))),
        namedtype.OptionalNamedType("timeStamp", useful.GeneralizedTime().subtype(implicitTag=ctx(1))),
        namedtype.NamedType("cCContents", CCContents().subtype(explicitTag=ctxc(2))))

class CCPayloadSequence(univ.SequenceOf):
    componentType = CCPayload()

class TRIPayload(univ.Choice):
    componentType = namedtype.NamedTypes(
        namedtype.NamedType("testPDU", univ.Null().subtype(implicitTag=ctx(1))),
        namedtype.NamedType("paddingPDU", univ.OctetString().subtype(implicitTag=ctx(2))),
        namedtype.NamedType("keep-alive", univ.Null().subtype(implicitTag=ctx(3))),
        namedtype.NamedType("keep-aliveResponse", univ.Null().subtype(implicitTag=ctx(4))))

class Payload(univ.Choice):
    componentType = namedtype.NamedTypes(
        namedtype.NamedType("cCPayloadSequence", CCPayloadSequence().subtype(implicitTag=ctxc(1))),
        namedtype.NamedType("tRIPayload", TRIPayload().subtype(explicitTag=ctxc(2))))

class PSPDU(univ.Sequence):
    componentType = namedtype.NamedTypes(
        namedtype.NamedType("pSHeader", PSHeader().subtype(implicitTag=ctxc(1))),
        namedtype.NamedType("payload", Payload().subtype(explicitTag=ctxc(2))))

port, out, drop_after, drops = int(sys.argv[1]), sys.argv[2], int(sys.argv[3]), int(sys.argv[4])
ls = socket.socket()
ls.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
ls.bind(("127.0.0.1", port))
ls.listen(1)
held, dup, keepalives, conns, bad = {}, 0, 0, 0, []
while True:
    c, _ = ls.accept()
    conns += 1
    buf, n = b"", 0
    while True:
        d = c.recv(65536)
        if not d:
            break
        buf += d
        while buf:
            try:
                pdu, rest = decoder.decode(buf, asn1Spec=PSPDU())
            except SubstrateUnderrunError:
                break
            buf = rest
            h = pdu["pSHeader"]
            seq = int(h["sequenceNumber"])
            p = pdu["payload"]
            if p.getName() == "tRIPayload":
                keepalives += 1
                continue
            cc = p["cCPayloadSequence"][0]
            ipcc = cc["cCContents"]["iPCC"]
            if bytes(ipcc["iPCCObjId"]) != bytes([5, 3, 10, 2]):
                bad.append(seq)
            if seq in held:
                dup += 1
            else:
                held[seq] = [bytes(ipcc["iPCCContents"]["iPPackets"]).hex(),
                             int(cc["payloadDirection"]), bytes(h["lawfulInterceptionIdentifier"]).decode(),
                             str(h["authorizationCountryCode"]),
                             bytes(h["communicationIdentifier"]["networkIdentifier"]["operatorIdentifier"]).decode()]
            n += 1
        json.dump({"held": held, "dup": dup, "keepalives": keepalives, "conns": conns, "bad": bad},
                  open(out + ".tmp", "w"))
        import os
        os.replace(out + ".tmp", out)
        if drops and n >= drop_after:
            drops -= 1
            break
    c.close()
"""


def nsx(*args, **kw):
    return harness.nsexec(NS, *args, **kw)


def send(sender, src, n, start, radius=None, pad=0):
    args = ["python3", sender, "rwi1", src, str(n), str(start), radius.hex() if radius else "-",
            str(pad)]
    r = nsx(*args)
    check(r.returncode == 0, "sender: %r" % r.stderr[-300:])


def client_files(out, cid):
    recs = []
    for f in sorted(os.listdir(out)):
        if f.startswith(cid + "-") and f.endswith(".pcap"):
            recs += pcaputil.read_pcap(open(os.path.join(out, f), "rb").read())[1]
    return recs


def held(out):
    try:
        return int(open(os.path.join(out, "state")).read().split()[1])
    except (OSError, ValueError, IndexError):
        return 0


def test_live(tmp):
    arch = os.path.join(tmp, "live")
    sender = os.path.join(tmp, "sender.py")
    with open(sender, "w") as f:
        f.write(SENDER)
    why = harness.veth_ns(NS, "rwi0", "rwi1")
    if not check(why is None, why or ""):
        return
    procs = []
    try:
        live_run(tmp, arch, sender, procs)
    finally:
        for p in procs:
            if p.poll() is None:
                p.kill()
                p.wait()
        harness.sh("ip", "netns", "del", NS)


def start_client(base, cid, token, out, log):
    return subprocess.Popen(["ip", "netns", "exec", NS, harness.REWIND, "intercept", "--url", base,
                             "--case", cid, "--token", token, "-w", out],
                            stdout=subprocess.DEVNULL, stderr=open(log, "ab"))



def settle_judge(path, timeout=10):
    """Wait until tcpdump's file stops growing for longer than its ring's
    block timeout (1 s): stopped earlier, tcpdump loses its last block."""
    last, since, deadline = -2, time.time(), time.time() + timeout
    while time.time() < deadline:
        try:
            n = len(pcaputil.read_pcap(open(path, "rb").read())[1])
        except (OSError, ValueError):
            n = -1
        if n != last:
            last, since = n, time.time()
        elif time.time() - since > 1.3:
            return
        time.sleep(0.1)

def etsi_check(tmp, api, sender, procs):
    recv = os.path.join(tmp, "receiver.py")
    with open(recv, "w") as f:
        f.write(RECEIVER)
    got_file = os.path.join(tmp, "etsi.json")
    port = harness.free_port()
    rv = subprocess.Popen(["ip", "netns", "exec", NS, "python3", recv, str(port), got_file, "60",
                           "3"], stderr=open(os.path.join(tmp, "receiver.log"), "wb"))
    procs.append(rv)
    judge = os.path.join(tmp, "judge-etsi.pcap")
    tlog = os.path.join(tmp, "tcpdump-etsi.log")
    td = subprocess.Popen(["ip", "netns", "exec", NS, "tcpdump", "-i", "rwi0", "-U", "-n",
                           "--time-stamp-precision=nano", "-w", judge, "host 10.9.0.51"],
                          stderr=open(tlog, "wb"))
    procs.append(td)
    deadline = time.time() + 20
    while time.time() < deadline and b"listening" not in open(tlog, "rb").read():
        time.sleep(0.05)
    doc = case_doc("LI-E", [{"ip": "10.9.0.51"}], **{"from": "-1m", "to": "+1h",
                   "delivery": {"type": "etsi", "address": "127.0.0.1:%d" % port,
                                "country": "XX", "operator": "EXAMPLE-ISP",
                                "network_element": "rewind-1"}})
    st, body = api("POST", "/api/v1/cases", body=doc)
    check(st == 201, "etsi case: %d %r" % (st, body[:200]))
    N = 300
    for k in range(3):
        send(sender, "10.9.0.51", N // 3, k * 100)
        send(sender, "10.9.0.52", 10, k * 10)
        time.sleep(0.3)

    def held():
        try:
            return json.load(open(got_file))
        except (OSError, ValueError):
            return {}
    deadline = time.time() + 30
    while time.time() < deadline and len(held().get("held", {})) < N:
        time.sleep(0.2)
    h = held()

    def judged():
        try:
            return len(pcaputil.read_pcap(open(judge, "rb").read())[1])
        except (OSError, ValueError):
            return -1
    # tcpdump hands packets over a block of its ring at a time (a second
    # at most): the judge is stopped once it wrote what was sent, not
    # after a fixed pause, or it loses its last block.
    deadline = time.time() + 10
    while time.time() < deadline and judged() < N:
        time.sleep(0.1)
    td.send_signal(signal.SIGINT)
    td.wait(timeout=10)
    want = [pcaputil.packet_data(r)[14:] for _, r in
            pcaputil.read_pcap(open(judge, "rb").read())[1]]
    seqs = sorted(int(x) for x in h.get("held", {}))
    got = [bytes.fromhex(h["held"][str(q)][0]) for q in seqs]
    check(len(want) == N and got == want and seqs == list(range(1, N + 1)),
          "the agency's receiver holds exactly tcpdump's %d IP packets, by sequence number, "
          "across 3 dropped connections (%d held, tcpdump %d, sequence %s..%s, first difference "
          "at %s)" % (N, len(got), len(want), seqs[:1], seqs[-1:],
                      next((i for i, (a, b) in enumerate(zip(got, want)) if a != b), None)))
    check(h.get("conns", 0) >= 4 and h.get("dup", 0) > 0 and not h.get("bad"),
          "it reconnected and dropped the duplicates sent again: %r" %
          {k: h.get(k) for k in ("conns", "dup", "keepalives", "bad")})
    first = h.get("held", {}).get("1", [None] * 5)
    check(first[1:] == [0, "LI-E", "XX", "EXAMPLE-ISP"],
          "PS-PDU header: direction fromTarget, LIID, country, operator: %r" % first[1:])
    st, body = api("GET", "/api/v1/status")
    e = [x for x in json.loads(body).get("intercept", []) if x["case"] == "LI-E"]
    check(e and e[0].get("push", {}).get("sequence") == N and
          e[0]["push"]["reconnects"] >= 3, "status of the push: %r" % e)
    time.sleep(IC_KEEPALIVE_S + 1.5)
    check(held().get("keepalives", 0) >= 1, "a keep-alive TRI on an idle link: %r" %
          held().get("keepalives"))
    api("DELETE", "/api/v1/cases/LI-E")
    rv.kill()
    rv.wait()


IC_KEEPALIVE_S = 5


def live_run(tmp, arch, sender, procs):
    admin = rw("token", "add", "--dir", arch, "--name", "boss", "--role",
               "admin").stdout.decode().strip()
    agency = rw("token", "add", "--dir", arch, "--name", "police", "--role", "agency",
                "--case", "LI-L").stdout.decode().strip()
    port = harness.free_port()
    base = "http://127.0.0.1:%d" % port
    log = os.path.join(tmp, "rewindd-live.log")
    d = subprocess.Popen(["ip", "netns", "exec", NS, REWINDD, "--dir", arch, "-i", "rwi0=live",
                          "--listen", "127.0.0.1:%d" % port, "--log", log, "--case-quota", "1M"])
    procs.append(d)

    def api(method, path, token=admin, body=None):
        args = ["curl", "-s", "-o", "-", "-w", "\n%{http_code}", "-X", method, base + path,
                "-H", "Authorization: Bearer " + token]
        if body is not None:
            args += ["--data-binary", body]
        r = nsx(*args)
        out, _, code = r.stdout.rpartition(b"\n")
        return int(code or 0), out

    deadline = time.time() + 20
    while time.time() < deadline and api("GET", "/healthz")[0] != 200:
        time.sleep(0.1)
    judge = os.path.join(tmp, "judge.pcap")
    tlog = os.path.join(tmp, "tcpdump.log")
    td = subprocess.Popen(["ip", "netns", "exec", NS, "tcpdump", "-i", "rwi0", "-U", "-n",
                           "--time-stamp-precision=nano", "-w", judge, "host 10.9.0.7"],
                          stderr=open(tlog, "wb"))
    procs.append(td)
    while time.time() < deadline and b"listening" not in open(tlog, "rb").read():
        time.sleep(0.05)
    st, body = api("POST", "/api/v1/cases", body=case_doc("LI-L", [{"ip": "10.9.0.7"}],
                                                          **{"from": "-1m", "to": "+1h"}))
    check(st == 201, "live case: %d %r" % (st, body[:200]))

    # N target packets, sent in rounds while the agency's client is killed
    # and restarted K times: sometimes while packets flow, sometimes between.
    out = os.path.join(tmp, "agency")
    clog = os.path.join(tmp, "client.log")
    N, K, per = 600, 4, 150
    c = start_client(base, "LI-L", agency, out, clog)
    procs.append(c)
    for k in range(K):
        send(sender, "10.9.0.7", per // 2, k * per)
        send(sender, "10.9.0.8", 40, k * 40)          # another subscriber: never delivered
        c.kill()
        c.wait()
        send(sender, "10.9.0.7", per - per // 2, k * per + per // 2)  # while it is down
        c = start_client(base, "LI-L", agency, out, clog)
        procs.append(c)
    deadline = time.time() + 30
    while time.time() < deadline and held(out) < N:
        time.sleep(0.1)
    check(held(out) == N, "the client holds %d of %d packets" % (held(out), N))
    # What the agency said it holds (its last after=) is deleted from the spool, whole files.
    sp = os.path.join(arch, "cases", "LI-L", "spool")
    deadline = time.time() + 5
    while time.time() < deadline and "%020d.rws" % 1 in os.listdir(sp):
        time.sleep(0.1)
    files = sorted(os.listdir(sp))
    check(len(files) >= 1 and files[0] != "%020d.rws" % 1,
          "the spool files the agency holds are deleted: %r" % files)
    r = nsx("curl", "-s", "-w", "\n%{http_code}", "-H", "Authorization: Bearer " + agency,
            base + "/api/v1/cases/LI-L/intercept?after=0")
    check(r.stdout.endswith(b"410") and b"after=" in r.stdout,
          "asking again for deleted packets: 410 saying from where: %r" % r.stdout[-200:])
    # The status and metrics say what was spooled, and nothing dropped.
    st, body = api("GET", "/api/v1/status")
    j = json.loads(body) if st == 200 else {}
    lc = [x for x in j.get("intercept", []) if x.get("case") == "LI-L"]
    check(lc and lc[0]["sequence"] == N and lc[0]["dropped"] == 0 and lc[0]["active"] and
          lc[0]["delivered"] == N and lc[0]["pull_connections"] >= K + 1,
          "status of the intercept: %r" % lc)
    check(j.get("total", {}).get("kernel_drops") == 0 and j.get("total", {}).get("queue_drops")
          == 0, "capture drops stay zero: %r" % j.get("total"))
    st, body = api("GET", "/metrics")
    check(b'rewind_intercept_sequence{case="LI-L"} %d' % N in body and
          b'rewind_intercept_dropped_total{case="LI-L"} 0' in body, "metrics of the intercept")
    # Ending the case ends the stream: the client exits 0 holding them all.
    st, _ = api("DELETE", "/api/v1/cases/LI-L")
    check(st == 200, "end the case: %d" % st)
    try:
        rc = c.wait(timeout=20)
    except subprocess.TimeoutExpired:
        rc = None
    check(rc == 0, "the client ends with the case: %r" % rc)
    send(sender, "10.9.0.7", 5, 10000)                # after the end: not delivered
    settle_judge(judge)
    td.send_signal(signal.SIGINT)
    td.wait(timeout=10)
    want = [pcaputil.packet_data(r) for _, r in
            pcaputil.read_pcap(open(judge, "rb").read())[1]][:N]
    got = [pcaputil.packet_data(r) for _, r in client_files(out, "LI-L")]
    check(len(got) == N and got == want,
          "the agency holds exactly tcpdump's %d packets, in order (%d held)" % (N, len(got)))
    check(all(g.startswith(bytes.fromhex("020000000002020000000001")) for g in got),
          "packets byte for byte")
    r = nsx("curl", "-s", "-o", "/dev/null", "-w", "%{http_code}", "-H",
            "Authorization: Bearer " + agency, base + "/api/v1/cases/LI-L/intercept?after=%d" % N)
    check(r.stdout == b"200", "after the end, nothing more to pull: %r" % r.stdout)
    r = nsx("curl", "-s", "-o", "/dev/null", "-w", "%{http_code}", "-H",
            "Authorization: Bearer " + agency, base + "/api/v1/cases/LI-X/intercept")
    check(r.stdout == b"403", "an agency pulls its own case only: %r" % r.stdout)

    # A user target follows the subscriber's address as accounting moves it.
    st, body = api("POST", "/api/v1/cases", body=case_doc("LI-W", [{"user": "walt"}],
                                                          **{"from": "-1m", "to": "+1h"}))
    check(st == 201, "case for user walt: %d" % st)
    send(sender, "10.9.0.21", 5, 0, acct(1, b"walt", "10.9.0.21", "W1"))     # walt's: 5
    send(sender, "10.9.0.21", 4, 100, acct(2, b"walt", "10.9.0.21", "W1"))   # after his Stop
    send(sender, "10.9.0.21", 3, 200, acct(1, b"vera", "10.9.0.21", "V1"))   # vera's address now
    send(sender, "10.9.0.22", 6, 300, acct(1, b"walt", "10.9.0.22", "W2"))   # walt's new one: 6
    time.sleep(0.5)
    api("DELETE", "/api/v1/cases/LI-W")
    out2 = os.path.join(tmp, "agency-w")
    r = nsx(harness.REWIND, "intercept", "--url", base, "--case", "LI-W", "--token", admin, "-w",
            out2, timeout=30)
    got = client_files(out2, "LI-W")
    payloads = [pcaputil.packet_data(x)[42:53] for _, x in got]
    want = [b"pkt%08d" % i for i in list(range(0, 5)) + list(range(300, 306))]
    check(r.returncode == 0 and payloads == want,
          "walt's case follows his address and leaves vera's traffic out: %r" % payloads)
    # ETSI push: the receiver drops the connection 3 times while packets flow.
    etsi_check(tmp, api, sender, procs)

    # A spool at its quota: the alarm, every drop counted and told, numbers without gaps.
    st, _ = api("POST", "/api/v1/cases", body=case_doc("LI-Q", [{"ip": "10.9.0.41"}],
                                                       **{"from": "-1m", "to": "+1h"}))
    check(st == 201, "case LI-Q: %d" % st)
    send(sender, "10.9.0.41", 1000, 0, pad=1200)
    time.sleep(0.5)
    st, body = api("GET", "/api/v1/status")
    q = [x for x in json.loads(body).get("intercept", []) if x["case"] == "LI-Q"] if st == 200 \
        else []
    check(q and q[0]["alarm"] and q[0]["dropped"] > 0 and
          q[0]["sequence"] + q[0]["dropped"] == 1000 and q[0]["spool_bytes"] <= (1 << 20),
          "a full spool: alarm, drops counted, the quota kept: %r" % q)
    st, body = api("GET", "/metrics")
    check(b'rewind_intercept_spool_alarm{case="LI-Q"} 1' in body, "the alarm in /metrics")
    api("DELETE", "/api/v1/cases/LI-Q")
    out3 = os.path.join(tmp, "agency-q")
    r = nsx(harness.REWIND, "intercept", "--url", base, "--case", "LI-Q", "--token", admin, "-w",
            out3, timeout=30)
    n = len(client_files(out3, "LI-Q"))
    check(r.returncode == 0 and q and n == q[0]["sequence"] and held(out3) == n and
          b"dropped so far" in r.stderr,
          "the agency holds every numbered packet and is told of the drops: %d %r" %
          (n, r.stderr[-300:]))
    text = open(log).read()
    check("case LI-Q: spool above its alarm level" in text and "packets dropped so far" in text,
          "the daemon logs the alarm and the drops")

    # follow=1: the archive's part, then new matches as they come, until `to`
    judge2 = os.path.join(tmp, "judge2.pcap")
    open(tlog, "wb").close()
    td = subprocess.Popen(["ip", "netns", "exec", NS, "tcpdump", "-i", "rwi0", "-U", "-n",
                           "--time-stamp-precision=nano", "-w", judge2, "host 10.9.0.31"],
                          stderr=open(tlog, "wb"))
    procs.append(td)
    deadline = time.time() + 20
    while time.time() < deadline and b"listening" not in open(tlog, "rb").read():
        time.sleep(0.05)
    send(sender, "10.9.0.31", 20, 0)                  # before: the archive's part
    fo = os.path.join(tmp, "follow.pcap")
    q = subprocess.Popen(["ip", "netns", "exec", NS, harness.REWIND, "query", "--url", base,
                          "--token", admin, "--from", "-1m", "--to", "+5s", "--follow", "-w", fo,
                          "host", "10.9.0.31"], stderr=subprocess.PIPE)
    procs.append(q)
    time.sleep(0.5)
    send(sender, "10.9.0.31", 20, 100)                # about when following begins
    time.sleep(2)
    send(sender, "10.9.0.8", 10, 500)
    send(sender, "10.9.0.31", 20, 200)                # followed
    try:
        rc = q.wait(timeout=30)
    except subprocess.TimeoutExpired:
        rc = None
    settle_judge(judge2)
    td.send_signal(signal.SIGINT)
    td.wait(timeout=10)
    want = [pcaputil.packet_data(r) for _, r in pcaputil.read_pcap(open(judge2, "rb").read())[1]]
    got = [pcaputil.packet_data(r) for _, r in
           pcaputil.read_pcap(open(fo, "rb").read())[1]] if os.path.exists(fo) else []
    check(rc == 0 and len(want) == 60 and got == want,
          "follow=1: the archive's part and the new packets, each once, in order, ending when "
          "`to` passes (%r, %d of %d): %r" % (rc, len(got), len(want), q.stderr.read()[-300:]))
    r = nsx("curl", "-s", "-o", "/dev/null", "-w", "%{http_code}", "-H",
            "Authorization: Bearer " + admin, base + "/api/v1/packets?follow=2")
    check(r.stdout == b"400", "follow=2: 400")
    r = rw("query", "--dir", arch, "--follow", "host", "10.9.0.31")
    check(r.returncode == 2 and b"--follow needs --url" in r.stderr, "--follow without --url")
    d.send_signal(signal.SIGTERM)
    check(d.wait(timeout=60) == 0, "rewindd stops cleanly")
    text = open(log).read()
    check("case LI-L created" in text and "follows from sequence number" in text,
          "the daemon logs the intercept")


if __name__ == "__main__":
    main()
