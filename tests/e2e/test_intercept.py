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
import subprocess
import sys
import tempfile
import time

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
    check(st == 409, "the same id again: %d" % st)
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
                         ('{"to": "2000-01-01T00:00:00Z"}', "to"), ('{"x": 1}', "x"),
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


if __name__ == "__main__":
    main()
