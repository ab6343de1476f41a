#!/usr/bin/env python3
"""Access control, end to end: tokens made with `rewind token`, a real rewindd
with TLS (a certificate openssl makes) on a loopback port, real curl. Every route x every role (and no token, a
malformed, an unknown, a revoked and an expired token) gets the status the
role table in man/rewindd.8 (SECURITY) promises; a noc answer holds every
packet the analyst's does, each cut after its headers, and a filter cannot
probe the payload; tokens never reach the log; the control socket refuses
users that are not admin what only admin may do; and the archive's files
are closed to local users outside its group, by every path."""
import json
import os
import pwd
import grp
import shutil
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
from harness import PCAPS, REWIND, REWINDD, check, rw, sh  # noqa: E402

SMTP = os.path.join(PCAPS, "good", "smtp.pcap")
EHLO = "tcp[((tcp[12:1] & 0xf0) >> 2):4] = 0x45484c4f"  # "EHLO" at the payload's start

# route -> roles admitted (beside the ones every route admits)
ROUTES = {
    "/api/v1/packets?from=0": {"noc", "analyst", "admin"},
    "/api/v1/segments": {"viewer", "noc", "analyst", "admin"},
    "/api/v1/status": {"viewer", "noc", "analyst", "admin"},
    "/api/v1/holds": {"analyst", "admin"},
    "/metrics": {"viewer", "noc", "analyst", "admin"},
    "/healthz": "anyone",
    "/api/v1/cases": {"agency", "admin"},
}
ROLES = ["viewer", "noc", "agency", "analyst", "admin"]


def free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


CA = None  # the certificate the daemon serves, made by make_cert()


def make_cert(tmp):
    """A self-signed server certificate for 127.0.0.1, made with openssl."""
    global CA
    key, pem = os.path.join(tmp, "server.key"), os.path.join(tmp, "server.pem")
    r = sh("openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256",
           "-nodes", "-days", "2", "-subj", "/CN=127.0.0.1", "-addext",
           "subjectAltName=IP:127.0.0.1", "-keyout", key, "-out", pem)
    check(r.returncode == 0, "openssl req: %r" % r.stderr)
    CA = pem
    return key, pem


def curl(url, token=None, out=None):
    """(status, body) as curl got them, over TLS checked against CA."""
    args = ["curl", "-s", "--cacert", CA, "-o", out or "-", "-w", "\n%{http_code}", url]
    if token is not None:
        args += ["-H", "Authorization: Bearer " + token]
    r = subprocess.run(args, capture_output=True, timeout=60)
    body, _, code = r.stdout.rpartition(b"\n")
    return int(code or 0), body


def token(arch, name, role, *extra):
    r = rw("token", "add", "--dir", arch, "--name", name, "--role", role, *extra)
    t = r.stdout.decode().strip()
    check(r.returncode == 0 and len(t) == 43 and r.stdout.count(b"\n") == 1,
          "token add %s %s: %r %r" % (name, role, r.stdout, r.stderr))
    return t


def header_end(pkt):
    """Where the headers of an Ethernet/IPv4|IPv6/TCP|UDP|ICMP packet end."""
    off, etype = 14, struct.unpack("!H", pkt[12:14])[0]
    while etype in (0x8100, 0x88a8):
        etype = struct.unpack("!H", pkt[off + 2:off + 4])[0]
        off += 4
    if etype == 0x0800:
        proto, off = pkt[off + 9], off + (pkt[off] & 15) * 4
    elif etype == 0x86dd:
        proto, off = pkt[off + 6], off + 40
    else:
        return None
    if proto == 6:
        return off + (pkt[off + 12] >> 4) * 4
    if proto == 17:
        return off + 8
    if proto in (1, 58):
        return off + 8
    return off


def test_matrix(tmp, arch, port, log):
    base = "https://127.0.0.1:%d" % port
    tokens = {role: token(arch, "p-" + role, role, *(["--case", "LI-1"] if role == "agency"
                                                      else [])) for role in ROLES}
    revoked = token(arch, "gone", "admin")
    r = rw("token", "revoke", "--dir", arch, "--name", "gone")
    check(r.returncode == 0, "revoke while rewindd runs: %r" % r.stderr)
    expired = token(arch, "brief", "admin", "--expires", "1s")
    time.sleep(1.2)
    bad = {"no token": None, "malformed": "x" * 10, "unknown": "A" * 43, "revoked": revoked,
           "expired": expired}
    for route, admitted in ROUTES.items():
        for who, tok in list(bad.items()) + list(tokens.items()):
            code, body = curl(base + route, tok)
            if admitted == "anyone":
                want = 200
            elif who in bad:
                want = 401
            else:
                want = 200 if who in admitted else 403
            check(code == want, "%s as %s: %d, want %d %r" % (route, who, code, want, body[:160]))
            if code in (401, 403):
                msg = json.loads(body).get("error", {}).get("message", "")
                check(tok is None or tok not in msg, "the token echoed in an error")
                if who in tokens:
                    check("p-" + who in msg and who in msg, "403 names the principal and role: %r"
                          % msg)
    # 401 carries WWW-Authenticate
    r = subprocess.run(["curl", "-s", "--cacert", CA, "-D", "-", "-o", "/dev/null",
                        base + "/api/v1/status"],
                       capture_output=True, timeout=60)
    check(b"WWW-Authenticate: Bearer" in r.stdout, "401 without WWW-Authenticate: %r" % r.stdout)
    # noc: every packet the analyst gets, each cut after its headers
    a_file, n_file = os.path.join(tmp, "analyst.pcap"), os.path.join(tmp, "noc.pcap")
    ca, _ = curl(base + "/api/v1/packets?from=0", tokens["analyst"], a_file)
    cn, _ = curl(base + "/api/v1/packets?from=0", tokens["noc"], n_file)
    _, full, _ = pcaputil.read_pcap(open(a_file, "rb").read())
    _, cut, _ = pcaputil.read_pcap(open(n_file, "rb").read())
    check(ca == 200 and cn == 200 and len(full) == len(cut) == 125,
          "noc and analyst answers: %d %d packets" % (len(full), len(cut)))
    wrong = 0
    for (ts_a, ra), (ts_n, rn) in zip(full, cut):
        pa, pn = pcaputil.packet_data(ra), pcaputil.packet_data(rn)
        end = header_end(pa)
        if ts_a != ts_n or end is None or pn != pa[:min(end, len(pa))] or \
                pcaputil.orig_len(rn) != pcaputil.orig_len(ra):
            wrong += 1
    check(wrong == 0, "%d noc packets not cut exactly after their headers" % wrong)
    t = sh("tcpdump", "-r", n_file)
    check(t.returncode == 0 and t.stdout.count(b"\n") == 125, "tcpdump reads the noc answer")
    # a filter cannot probe what the noc may not see
    q = "/api/v1/packets?from=0&filter=" + urllib.parse.quote(EHLO)
    ca, abody = curl(base + q, tokens["analyst"])
    cn, nbody = curl(base + q, tokens["noc"])
    check(ca == 200 and len(pcaputil.read_pcap(abody)[1]) == 2 and cn == 200 and
          len(pcaputil.read_pcap(nbody)[1]) == 0,
          "payload probe: analyst %d packets, noc %d" % (len(pcaputil.read_pcap(abody)[1]),
                                                          len(pcaputil.read_pcap(nbody)[1])))
    code, body = curl(base + "/api/v1/packets?from=0&payload=full", tokens["noc"])
    check(code == 403 and b"analyst or admin" in body, "noc asking for payload: %d %r" %
          (code, body[:200]))
    code, body = curl(base + "/api/v1/packets?from=0&payload=headers", tokens["analyst"])
    check(code == 200 and len(pcaputil.read_pcap(body)[1]) == 125, "analyst asks for headers")
    # the CLI takes the token too
    r = rw("query", "--url", base, "--token", tokens["analyst"], "--count")
    check(r.returncode == 0 and r.stdout == b"125\n", "query --url --token: %r" % r.stderr)
    r = subprocess.run([REWIND, "query", "--url", base, "--count"], capture_output=True,
                       env=dict(os.environ, REWIND_TOKEN=tokens["viewer"]))
    check(r.returncode == 2 and b"viewer" in r.stderr, "viewer via REWIND_TOKEN: %r" % r.stderr)
    r = rw("status", "--url", base, "--token", tokens["viewer"])
    check(r.returncode == 0 and b'"points"' in r.stdout, "status --url --token: %r" % r.stderr)
    # the audit trail: one record per packet request, refusals included,
    # with the hash of exactly the bytes curl received
    recs = [json.loads(ln) for ln in rw("audit", "--dir", arch, "--json").stdout.splitlines()]
    pk = [r for r in recs if r.get("route") == "GET /api/v1/packets"]
    # 10 in the matrix (5 refused as unauthenticated, viewer and agency
    # forbidden, 3 served), 2 downloads, 2 probes, payload=full refused,
    # payload=headers, query --url --token, REWIND_TOKEN as a viewer
    check(len(pk) == 18, "audit records of /api/v1/packets: %d, want 18" % len(pk))
    by = lambda status: [r for r in pk if r.get("status") == status]  # noqa: E731
    check(len(by(401)) == 5 and len(by(403)) == 4 and len(by(200)) == 9,
          "audit statuses: %s" % sorted(r.get("status") for r in pk))
    import hashlib
    for who, f in (("p-analyst", a_file), ("p-noc", n_file)):
        data = open(f, "rb").read()
        mine = [r for r in by(200) if r.get("principal") == who and
                r.get("sha256") == hashlib.sha256(data).hexdigest()]
        check(len(mine) >= 1 and mine[0]["bytes"] == len(data) and mine[0]["packets"] == 125 and
              mine[0]["method"] == "token" and mine[0]["role"] == who[2:] and
              mine[0]["client"].startswith("127.0.0.1:"),
              "the audit record of %s's download: %r" % (who, mine[:1] or pk[-3:]))
    probe = [r for r in pk if r.get("params", {}).get("filter") == EHLO]
    check(len(probe) == 2, "the probes are recorded with their filter: %d" % len(probe))
    check(not any(t in json.dumps(recs) for t in tokens.values()), "a token in the audit trail")
    for name in ("gone", "brief", "p-admin"):
        check(any(r.get("route") == "token add" and name in r.get("detail", "") for r in recs),
              "adding %s's token is on the record" % name)
    check(any(r.get("route") == "token revoke" and "gone" in r.get("detail", "") for r in recs),
          "revoking is on the record")
    code, body = curl(base + "/api/v1/audit", tokens["admin"])
    check(code == 200 and body.count(b"\n") >= len(recs), "/api/v1/audit for admin: %d" % code)
    code, _ = curl(base + "/api/v1/audit", tokens["analyst"])
    check(code == 403, "/api/v1/audit for an analyst: %d" % code)
    code, body = curl(base + "/metrics", tokens["viewer"])
    check(code == 200 and b"rewind_audit_head{hash=" in body, "/metrics exports the audit head")
    # tokens never reach the log
    text = open(log, "rb").read()
    leaked = [role for role, t in list(tokens.items()) + [("revoked", revoked)]
              if t.encode() in text]
    check(not leaked, "tokens in the log: %s" % leaked)
    # listing shows them without the secret
    r = rw("token", "list", "--dir", arch)
    out = r.stdout.decode()
    check(r.returncode == 0 and "p-noc" in out and "revoked" in out and "expired" in out and
          not any(t in out for t in tokens.values()), "token list: %r" % out)


def test_ctl_roles(tmp, arch, user):
    """A local user in the socket's group is an analyst: it may query and
    place holds, not add tokens or release holds."""
    as_user = ["runuser", "-u", user, "--"]
    r = sh(*as_user, REWIND, "token", "add", "--dir", arch, "--name", "sneaky", "--role",
           "admin")
    check(r.returncode != 0 and b"needs the role admin" in r.stderr,
          "a group member adding a token: %r" % r.stderr)
    r = sh(*as_user, REWIND, "hold", "--dir", arch, "--from", "2009-01-01T00:00:00Z", "--to",
           "2010-01-01T00:00:00Z")
    check(r.returncode == 0, "a group member places a hold: %r" % r.stderr)
    r = sh(*as_user, REWIND, "hold", "--dir", arch, "--release", "1")
    check(r.returncode != 0 and b"admin" in r.stderr, "a group member releasing: %r" % r.stderr)
    r = sh(*as_user, REWIND, "query", "--dir", arch, "--count")
    check(r.returncode == 0 and r.stdout == b"125\n", "a group member queries: %r" % r.stderr)


def test_files(tmp, arch, member, outsider):
    """Nobody outside the archive's group reads a packet by any path."""
    seg = next(os.path.join(d, f) for d, _, fs in os.walk(os.path.join(arch, "segments"))
               for f in fs)
    st = os.stat(arch)
    check(st.st_mode & 0o007 == 0 and grp.getgrgid(st.st_gid).gr_name == "rewind" and
          st.st_mode & 0o2000, "archive directory mode %o group %s" %
          (st.st_mode & 0o7777, grp.getgrgid(st.st_gid).gr_name))
    for path in [seg] + [os.path.join(d, f) for d, _, fs in os.walk(arch) for f in fs]:
        m = os.stat(path).st_mode
        if not (m & 0o007 == 0):
            check(False, "%s is mode %o" % (path, m & 0o777))
            break
    as_out = ["runuser", "-u", outsider, "--"]
    for cmd in ([REWIND, "query", "--local", "--dir", arch, "--count"],
                ["tcpdump", "-r", seg], ["cat", seg]):
        r = sh(*as_out, *cmd)
        check(r.returncode != 0, "an outsider read the archive with %s: %r" % (cmd[0], r.stdout[:80]))
    r = sh("runuser", "-u", member, "--", REWIND, "query", "--local", "--dir", arch, "--count")
    check(r.returncode == 0 and r.stdout == b"125\n", "a group member reads with --local: %r" %
          r.stderr)


def ensure_user(name, groups=()):
    try:
        pwd.getpwnam(name)
    except KeyError:
        sh("useradd", "--system", "--no-create-home", "--shell", "/usr/sbin/nologin", name)
    for g in groups:
        sh("usermod", "-aG", g, name)


def main():
    if os.geteuid() != 0:
        print("auth: needs root (test users, runuser); 0 passed, 1 failed")
        return 1
    try:
        grp.getgrnam("rewind")
    except KeyError:
        sh("groupadd", "--system", "rewind")  # what make install does
    member, outsider = "rwtest-member", "rwtest-outsider"
    ensure_user(member, ["rewind"])
    ensure_user(outsider)
    tmp = tempfile.mkdtemp(prefix="rewind-auth-")
    os.chmod(tmp, 0o755)  # the test's users must reach the archive's directory
    arch = os.path.join(tmp, "arch")
    log = os.path.join(tmp, "rewindd.log")
    r = rw("import", "--quiet", "--dir", arch, SMTP)
    check(r.returncode == 0, "import: %r" % r.stderr)
    port = free_port()
    key, pem = make_cert(tmp)
    os.environ["CURL_CA_BUNDLE"] = pem  # for rewind query --url https://
    d = subprocess.Popen([REWINDD, "--dir", arch, "--listen", "127.0.0.1:%d" % port, "--log", log,
                          "--tls-cert", pem, "--tls-key", key])
    try:
        for _ in range(200):
            if os.path.exists(log) and b"ready" in open(log, "rb").read():
                break
            time.sleep(0.05)
        sock = os.stat(os.path.join(arch, "rewindd.sock"))
        check(sock.st_mode & 0o777 == 0o660 and grp.getgrgid(sock.st_gid).gr_name == "rewind",
              "the control socket is 0660 of the archive's group: %o %d" %
              (sock.st_mode & 0o777, sock.st_gid))
        # No token yet: open on loopback
        code, _ = curl("https://127.0.0.1:%d/api/v1/status" % port)
        check(code == 200, "no token defined: the loopback API is open (%d)" % code)
        test_matrix(tmp, arch, port, log)
        test_ctl_roles(tmp, arch, member)
    finally:
        d.send_signal(signal.SIGTERM)
        check(d.wait(timeout=60) == 0, "rewindd exit status")
    test_files(tmp, arch, member, outsider)
    # the trail the daemon wrote verifies; a flipped byte or a deleted
    # record is named
    r = rw("audit", "verify", "--dir", arch)
    check(r.returncode == 0, "audit verify after the daemon: %r" % r.stderr[-300:])
    afile = sorted(os.path.join(arch, "audit", f) for f in os.listdir(os.path.join(arch, "audit"))
                   if f.endswith(".jsonl"))[0]
    lines = open(afile, "rb").read().split(b"\n")
    saved = open(afile, "rb").read()
    k = len(lines) // 2
    seq = json.loads(lines[k])["seq"]
    i = lines[k].index(b'"packets":') + 10
    lines[k] = lines[k][:i] + bytes([lines[k][i] ^ 1]) + lines[k][i + 1:]
    open(afile, "wb").write(b"\n".join(lines))
    r = rw("audit", "verify", "--dir", arch)
    check(r.returncode == 1 and (b"record %d" % seq) in r.stderr,
          "a flipped byte in record %d: %d %r" % (seq, r.returncode, r.stderr[:300]))
    lines = saved.split(b"\n")
    del lines[k]
    open(afile, "wb").write(b"\n".join(lines))
    r = rw("audit", "verify", "--dir", arch)
    check(r.returncode == 1 and (b"record %d" % (seq + 1)) in r.stderr,
          "a deleted record %d: %d %r" % (seq, r.returncode, r.stderr[:300]))
    open(afile, "wb").write(saved)
    r = subprocess.run([REWINDD, "--dir", os.path.join(tmp, "g"), "--listen", "none",
                        "--ctl-group", "no-such-group-here"], capture_output=True, timeout=60)
    check(r.returncode == 2 and b"no-such-group-here" in r.stderr, "a bad --ctl-group: %d %r" %
          (r.returncode, r.stderr))
    shutil.rmtree(tmp, ignore_errors=True)
    harness.finish("auth")


if __name__ == "__main__":
    sys.exit(main())
