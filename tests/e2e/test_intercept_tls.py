#!/usr/bin/env python3
"""ETSI TS 102 232 push delivery over TLS (issue 14), against a real rewindd
capturing live on a veth in a network namespace. The test makes its own CA,
an agency server certificate and a client certificate for rewind with the
openssl tool; the agency's receiver is Python's ssl module around the same
PS-PDU decoder as test_intercept.py (pyasn1, written from the standard's
ASN.1), and it demands rewind's client certificate. Checked:
- bad TLS settings of a case: 400 naming the field, nothing stored;
- N target packets while the receiver drops the TLS connection K times: the
  agency ends with exactly N IP packets, numbered 1..N, byte-identical to
  what tcpdump captured on the wire;
- a case whose CA is not the agency's: rewind refuses the agency's
  certificate and delivers nothing; /api/v1/status, /metrics and the log
  say why; the spool keeps every packet; once the right CA is PATCHed in,
  the agency receives exactly those packets, in order, byte-identical."""
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
import test_intercept as ti  # noqa: E402  (its sender, receiver and case document)
from harness import REWINDD, check, rw  # noqa: E402
from test_tls import Pki  # noqa: E402

NS = "rwitls%d" % os.getpid()
ti.NS = NS  # ti.send and ti.nsx run in this test's namespace

# The receiver of test_intercept.py, with TLS: the agency's certificate
# (argv 5, 6) and the CA its clients' certificates must come from (argv 7).
RECEIVER = ti.RECEIVER.replace(
    "ls = socket.socket()\n",
    "import ssl\n"
    "TLS = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)\n"
    "TLS.load_cert_chain(sys.argv[5], sys.argv[6])\n"
    "TLS.load_verify_locations(sys.argv[7])\n"
    "TLS.verify_mode = ssl.CERT_REQUIRED\n"
    "tls_failed, tls_error = 0, ''\n"
    "ls = socket.socket()\n").replace(
    "    c, _ = ls.accept()\n",
    "    c, _ = ls.accept()\n"
    "    try:\n"
    "        c = TLS.wrap_socket(c, server_side=True)\n"
    "    except OSError as e:\n"
    "        tls_failed, tls_error = tls_failed + 1, str(e)\n"
    "        json.dump({'held': held, 'conns': conns, 'tls_failed': tls_failed,\n"
    "                   'tls_error': tls_error}, open(out, 'w'))\n"
    "        c.close()\n"
    "        continue\n").replace(
    "        d = c.recv(65536)\n",
    "        try:\n"
    "            d = c.recv(65536)\n"
    "        except OSError:\n"
    "            d = b''\n").replace(
    '"bad": bad}', '"bad": bad, "tls_failed": tls_failed}').replace(
    "ls.listen(1)\n", "ls.listen(1)\nopen(out + '.ready', 'w').close()\n")
assert RECEIVER.count("TLS.wrap_socket") == 1 and "tls_failed}" in RECEIVER


def main():
    tmp = tempfile.mkdtemp(prefix="rwintercepttls%d" % os.getpid())
    pki = Pki(tmp)
    pki.ca("ca", "agency CA")
    pki.ca("wrongca", "someone else's CA")
    pki.leaf("agency", "/CN=agency.test", "ca",
             "subjectAltName=DNS:agency.test,IP:127.0.0.1\nextendedKeyUsage=serverAuth\n")
    pki.leaf("isp", "/O=ISP/CN=rewind-1", "ca", "extendedKeyUsage=clientAuth\n")
    notpem = os.path.join(tmp, "notpem.txt")
    with open(notpem, "w") as f:
        f.write("this is no certificate\n")
    sender = os.path.join(tmp, "sender.py")
    with open(sender, "w") as f:
        f.write(ti.SENDER)
    recv = os.path.join(tmp, "receiver.py")
    with open(recv, "w") as f:
        f.write(RECEIVER)
    why = harness.veth_ns(NS, "rwi0", "rwi1")
    if not check(why is None, why or ""):
        harness.sh("ip", "netns", "del", NS)
        harness.finish("test_intercept_tls")
        return
    procs = []
    try:
        run(tmp, pki, notpem, sender, recv, procs)
    finally:
        for p in procs:
            if p.poll() is None:
                p.kill()
                p.wait()
        harness.sh("ip", "netns", "del", NS)
    harness.finish("test_intercept_tls")


def tls(pki, ca="ca", **kw):
    d = {"ca": pki.path(ca, "pem") if ca else None, "cert": pki.path("isp", "pem"),
         "key": pki.path("isp", "key"), "server_name": "agency.test"}
    d.update(kw)
    return {k: v for k, v in d.items() if v is not None}


def etsi(port, t):
    return {"type": "etsi", "address": "127.0.0.1:%d" % port, "country": "XX",
            "operator": "EXAMPLE-ISP", "tls": t}


def start_receiver(pki, recv, port, out, drop_after, drops, log):
    """The agency's TLS receiver, listening when this returns."""
    p = subprocess.Popen(["ip", "netns", "exec", NS, "python3", recv, str(port), out,
                          str(drop_after), str(drops), pki.path("agency", "pem"),
                          pki.path("agency", "key"), pki.path("ca", "pem")],
                         stderr=open(log, "wb"))
    deadline = time.time() + 20
    while time.time() < deadline and not os.path.exists(out + ".ready") and p.poll() is None:
        time.sleep(0.05)
    return p


def start_judge(path, log, flt):
    td = subprocess.Popen(["ip", "netns", "exec", NS, "tcpdump", "-i", "rwi0", "-U", "-n",
                           "--time-stamp-precision=nano", "-w", path, flt],
                          stderr=open(log, "wb"))
    deadline = time.time() + 20
    while time.time() < deadline and b"listening" not in open(log, "rb").read():
        time.sleep(0.05)
    return td


def stop_judge(td, path, n):
    """tcpdump hands packets over a ring block at a time: stop it once it
    wrote the n sent, or after a while."""
    deadline = time.time() + 10
    while time.time() < deadline:
        try:
            if len(pcaputil.read_pcap(open(path, "rb").read())[1]) >= n:
                break
        except (OSError, ValueError):
            pass
        time.sleep(0.1)
    ti.settle_judge(path)
    td.send_signal(signal.SIGINT)
    td.wait(timeout=10)
    return [pcaputil.packet_data(r)[14:] for _, r in pcaputil.read_pcap(open(path, "rb").read())[1]]


def load(path):
    try:
        return json.load(open(path))
    except (OSError, ValueError):
        return {}


def wait_held(path, n, timeout=30):
    deadline = time.time() + timeout
    while time.time() < deadline and len(load(path).get("held", {})) < n:
        time.sleep(0.2)
    return load(path)


def delivered(h):
    seqs = sorted(int(x) for x in h.get("held", {}))
    return seqs, [bytes.fromhex(h["held"][str(q)][0]) for q in seqs]


def run(tmp, pki, notpem, sender, recv, procs):
    arch = os.path.join(tmp, "arch")
    admin = rw("token", "add", "--dir", arch, "--name", "boss", "--role",
               "admin").stdout.decode().strip()
    port = harness.free_port()
    base = "http://127.0.0.1:%d" % port
    log = os.path.join(tmp, "rewindd.log")
    d = subprocess.Popen(["ip", "netns", "exec", NS, REWINDD, "--dir", arch, "-i", "rwi0=live",
                          "--listen", "127.0.0.1:%d" % port, "--log", log])
    procs.append(d)

    def api(method, path, body=None):
        args = ["curl", "-s", "-o", "-", "-w", "\n%{http_code}", "-X", method, base + path,
                "-H", "Authorization: Bearer " + admin]
        if body is not None:
            args += ["--data-binary", body]
        r = ti.nsx(*args)
        out, _, code = r.stdout.rpartition(b"\n")
        return int(code or 0), out

    deadline = time.time() + 20
    while time.time() < deadline and api("GET", "/healthz")[0] != 200:
        time.sleep(0.1)

    # ---- bad TLS settings: 400 naming the field ----
    p0 = harness.free_port()
    bad = [
        (etsi(p0, "yes"), "delivery.tls"),
        (etsi(p0, tls(pki, ca=None, color="red")), "delivery.tls.color"),
        (etsi(p0, {"ca": "ca.pem"}), "delivery.tls.ca"),
        (etsi(p0, {"ca": os.path.join(tmp, "missing.pem")}), "delivery.tls.ca"),
        (etsi(p0, {"ca": notpem}), "delivery.tls.ca"),
        (etsi(p0, tls(pki, key=None)), "delivery.tls.key"),
        (etsi(p0, tls(pki, cert=None)), "delivery.tls.cert"),
        (etsi(p0, tls(pki, cert=notpem)), "delivery.tls.cert"),
        (etsi(p0, tls(pki, key=pki.path("agency", "key"))), "delivery.tls.key"),
        (etsi(p0, tls(pki, server_name="agency test!")), "delivery.tls.server_name"),
        (etsi(p0, tls(pki, server_name=7)), "delivery.tls.server_name"),
        ({"type": "pull", "tls": {}}, "delivery.tls"),
    ]
    for dl, field in bad:
        st, body = api("POST", "/api/v1/cases",
                       ti.case_doc("LI-BAD", [{"ip": "10.9.0.99"}], delivery=dl))
        try:
            msg = json.loads(body)["error"]["message"]
        except (ValueError, KeyError):
            msg = ""
        check(st == 400 and msg.startswith(field + ":"),
              "bad tls %r: want 400 naming %s, got %d %r" % (dl.get("tls"), field, st, body[:300]))
    check(not os.path.exists(os.path.join(arch, "cases", "LI-BAD")),
          "a case with bad TLS settings is not stored")

    # ---- lossless across K dropped TLS connections ----
    rport = harness.free_port()
    got_file = os.path.join(tmp, "agency.json")
    procs.append(start_receiver(pki, recv, rport, got_file, 60, 3,
                                os.path.join(tmp, "receiver.log")))
    judge = os.path.join(tmp, "judge.pcap")
    td = start_judge(judge, os.path.join(tmp, "tcpdump.log"), "host 10.9.0.61")
    procs.append(td)
    st, body = api("POST", "/api/v1/cases",
                   ti.case_doc("LI-T", [{"ip": "10.9.0.61"}], **{"from": "-1m", "to": "+1h",
                               "delivery": etsi(rport, tls(pki))}))
    check(st == 201, "TLS case: %d %r" % (st, body[:300]))
    if st == 201:
        check(json.loads(body)["delivery"]["tls"] == tls(pki),
              "the case shows its TLS settings: %r" % json.loads(body)["delivery"])
    N = 300
    for k in range(3):
        ti.send(sender, "10.9.0.61", N // 3, k * 100)
        ti.send(sender, "10.9.0.62", 10, k * 10)  # not the target: never delivered
        time.sleep(0.3)
    h = wait_held(got_file, N)
    want = stop_judge(td, judge, N)
    seqs, got = delivered(h)
    check(len(want) == N and got == want and seqs == list(range(1, N + 1)),
          "over TLS the agency holds exactly tcpdump's %d IP packets, by sequence number, "
          "across 3 dropped connections (%d held, tcpdump %d, first difference at %s)" %
          (N, len(got), len(want),
           next((i for i, (a, b) in enumerate(zip(got, want)) if a != b), None)))
    check(h.get("conns", 0) >= 4 and h.get("dup", 0) > 0 and not h.get("bad") and
          h.get("tls_failed") == 0,
          "it reconnected over TLS, with its client certificate, and the duplicates sent "
          "again were dropped: %r" % {k: h.get(k) for k in ("conns", "dup", "bad",
                                                              "tls_failed")})
    st, body = api("GET", "/api/v1/status")
    e = [x for x in json.loads(body).get("intercept", []) if x["case"] == "LI-T"] \
        if st == 200 else []
    check(e and e[0].get("push", {}).get("sequence") == N and e[0]["push"]["reconnects"] >= 3
          and e[0]["push"]["error"] == "", "status of the TLS push: %r" % e)
    api("DELETE", "/api/v1/cases/LI-T")

    # ---- the wrong CA: nothing delivered, the reason shown, nothing lost ----
    rport2 = harness.free_port()
    got2 = os.path.join(tmp, "agency2.json")
    procs.append(start_receiver(pki, recv, rport2, got2, 0, 0,
                                os.path.join(tmp, "receiver2.log")))
    judge2 = os.path.join(tmp, "judge2.pcap")
    td2 = start_judge(judge2, os.path.join(tmp, "tcpdump2.log"), "host 10.9.0.63")
    procs.append(td2)
    st, body = api("POST", "/api/v1/cases",
                   ti.case_doc("LI-U", [{"ip": "10.9.0.63"}], **{"from": "-1m", "to": "+1h",
                               "delivery": etsi(rport2, tls(pki, ca="wrongca"))}))
    check(st == 201, "case trusting the wrong CA (valid files): %d %r" % (st, body[:300]))
    M = 120
    ti.send(sender, "10.9.0.63", M, 0)
    deadline = time.time() + 20
    e = []
    while time.time() < deadline:
        st, body = api("GET", "/api/v1/status")
        e = [x for x in json.loads(body).get("intercept", []) if x["case"] == "LI-U"] \
            if st == 200 else []
        if e and e[0]["sequence"] == M and e[0].get("push", {}).get("failures", 0) >= 2 and \
                "certificate" in e[0]["push"].get("error", ""):
            break
        time.sleep(0.2)
    push = e[0].get("push", {}) if e else {}
    check(e and e[0]["sequence"] == M and push.get("sequence") == 0 and
          not push.get("connected") and push.get("failures", 0) >= 2 and
          "certificate" in push.get("error", ""),
          "with the wrong CA nothing is sent, and the status says why: %r" % e)
    check(len(load(got2).get("held", {})) == 0 and load(got2).get("tls_failed", 0) >= 1,
          "the agency received nothing: %r" % {k: v for k, v in load(got2).items()
                                               if k != "held"})
    st, body = api("GET", "/metrics")
    check(b'rewind_intercept_push_failures_total{case="LI-U"}' in body and
          b'rewind_intercept_push_connected{case="LI-U"} 0' in body and
          b'rewind_intercept_push_sequence{case="LI-U"} 0' in body,
          "/metrics counts the failed connections")
    text = open(log).read()
    check("case LI-U: etsi push to 127.0.0.1:%d: TLS to" % rport2 in text and
          "certificate is refused" in text, "the log says the agency's certificate is refused")
    sp = os.path.join(arch, "cases", "LI-U", "spool")
    check(os.path.isdir(sp) and any(f.endswith(".rws") for f in os.listdir(sp)),
          "the spool keeps the packets")
    # The right CA, PATCHed in: exactly the M packets, in order, byte-identical.
    st, body = api("PATCH", "/api/v1/cases/LI-U",
                   json.dumps({"delivery": etsi(rport2, tls(pki))}))
    check(st == 200, "PATCH the delivery's CA: %d %r" % (st, body[:300]))
    st, body = api("PATCH", "/api/v1/cases/LI-U",
                   json.dumps({"delivery": etsi(rport2, {"ca": notpem})}))
    check(st == 400 and json.loads(body)["error"]["message"].startswith("delivery.tls.ca:"),
          "PATCH with a bad CA file: 400 naming delivery.tls.ca: %d %r" % (st, body[:200]))
    h2 = wait_held(got2, M)
    want2 = stop_judge(td2, judge2, M)
    seqs2, got2_ = delivered(h2)
    check(len(want2) == M and got2_ == want2 and seqs2 == list(range(1, M + 1)),
          "after the right CA the agency holds exactly tcpdump's %d packets, in order "
          "(%d held, tcpdump %d)" % (M, len(got2_), len(want2)))
    # Back to pull only: the push stops.
    st, body = api("PATCH", "/api/v1/cases/LI-U", json.dumps({"delivery": {"type": "pull"}}))
    deadline = time.time() + 10
    while time.time() < deadline and "case LI-U: delivery is no longer etsi" not in \
            open(log).read():
        time.sleep(0.1)
    check(st == 200 and "case LI-U: delivery is no longer etsi: push stops after %d" % M in
          open(log).read(), "PATCH to pull delivery stops the push: %d" % st)
    api("DELETE", "/api/v1/cases/LI-U")
    d.send_signal(signal.SIGTERM)
    check(d.wait(timeout=60) == 0, "rewindd stops cleanly")


if __name__ == "__main__":
    main()
