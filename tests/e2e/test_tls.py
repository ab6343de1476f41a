#!/usr/bin/env python3
"""HTTPS end to end, against a real rewindd on a loopback port. The test
makes its own certificates with `openssl req` / `openssl x509` (a server CA,
a server certificate for 127.0.0.1, a client CA, client certificates, a
foreign CA) and checks: answers through curl and `rewind query --url
https://` byte-identical to tcpdump; plain http:// to the TLS port fails;
`openssl s_client` shows the chain and TLS 1.2/1.3, and TLS 1.1 is refused;
a client trusting another CA fails verification; with --tls-client-ca a
client without a certificate, with one from another CA, or with one not
meant for clients is refused at the handshake (and logged), one the client CA
signed gets its answer; bad TLS files and a key of another certificate exit
2 naming the file, creating nothing; an expired certificate is served with a
warning; --listen beyond loopback without TLS or tokens exits 2 with one line
and creates nothing."""
import os
import re
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.parse

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "lib"))
import harness  # noqa: E402
from harness import PCAPS, REWINDD, check, rw, tcpdump  # noqa: E402

SMTP = os.path.join(PCAPS, "good", "smtp.pcap")
FILTERS = ["port 25", "tcp[tcpflags] & tcp-syn != 0", ""]


def free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


def run(*args, env=None, timeout=60):
    return subprocess.run(list(args), capture_output=True, env=env, timeout=timeout)


class Pki:
    """Keys and certificates in dir d, made with the openssl tool."""

    def __init__(self, d):
        self.d = d
        self.serial = 1000

    def path(self, name, ext):
        return os.path.join(self.d, name + "." + ext)

    def openssl(self, *args):
        r = run("openssl", *args)
        if r.returncode:
            raise RuntimeError("openssl %s: %s" % (" ".join(args), r.stderr.decode()))

    def newkey(self, name, subj, x509=False, days="2"):
        self.openssl("req", *(["-x509", "-days", days] if x509 else []), "-newkey", "ec",
                     "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes",
                     "-keyout", self.path(name, "key"),
                     "-out", self.path(name, "pem" if x509 else "csr"), "-subj", subj)

    def ca(self, name, cn):
        self.newkey(name, "/CN=" + cn, x509=True)

    def leaf(self, name, subj, ca, ext, days="2"):
        """A certificate for subj signed by ca, with the X.509v3 lines ext."""
        self.newkey(name, subj)
        extfile = self.path(name, "ext")
        with open(extfile, "w") as f:
            f.write(ext)
        self.serial += 1
        self.openssl("x509", "-req", "-in", self.path(name, "csr"), "-CA", self.path(ca, "pem"),
                     "-CAkey", self.path(ca, "key"), "-set_serial", str(self.serial),
                     "-days", days, "-extfile", extfile, "-out", self.path(name, "pem"))


def make_pki(d):
    p = Pki(d)
    p.ca("ca", "rewind test server CA")
    p.ca("clientca", "rewind test client CA")
    p.ca("foreign", "someone else's CA")
    server_ext = "subjectAltName=IP:127.0.0.1\nextendedKeyUsage=serverAuth\n"
    p.leaf("server", "/CN=127.0.0.1", "ca", server_ext)
    p.leaf("expired", "/CN=127.0.0.1", "ca", server_ext, days="-1")
    p.leaf("other", "/CN=127.0.0.1", "ca", server_ext)  # its key is not server's
    p.leaf("alice", "/O=rewind test/CN=alice", "clientca", "extendedKeyUsage=clientAuth\n")
    p.leaf("mallory", "/O=Elsewhere/CN=mallory", "foreign", "extendedKeyUsage=clientAuth\n")
    # signed by the client CA, but for servers only: no client may use it
    p.leaf("bob", "/O=rewind test/CN=bob", "clientca", "extendedKeyUsage=serverAuth\n")
    # a good client certificate whose name has no token
    p.leaf("carol", "/O=rewind test/CN=carol", "clientca", "extendedKeyUsage=clientAuth\n")
    return p


class Daemon:
    def __init__(self, arch, log, *extra):
        self.log = log
        self.p = subprocess.Popen([REWINDD, "--dir", arch, "--log", log] + list(extra),
                                  stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        for _ in range(300):
            if b" ready;" in self.text() or self.p.poll() is not None:
                break
            time.sleep(0.05)

    def text(self):
        try:
            with open(self.log, "rb") as f:
                return f.read()
        except OSError:
            return b""

    def up(self):
        return self.p.poll() is None and b" ready;" in self.text()

    def wait_log(self, what, timeout=5):
        end = time.time() + timeout
        while time.time() < end:
            if what in self.text():
                return True
            time.sleep(0.05)
        return False

    def stop(self):
        if self.p.poll() is None:
            self.p.send_signal(signal.SIGTERM)
        try:
            return self.p.wait(timeout=60)
        except subprocess.TimeoutExpired:
            self.p.kill()
            return self.p.wait()


def curl(url, *opts):
    return run("curl", "-sS", "--max-time", "30", *opts, url)


def packets_url(base, flt):
    return base + "/api/v1/packets" + ("?filter=" + urllib.parse.quote(flt, safe="") if flt else "")


def test_https(tmp, p, arch):
    port = free_port()
    base = "https://127.0.0.1:%d" % port
    log = os.path.join(tmp, "https.log")
    d = Daemon(arch, log, "--listen", "127.0.0.1:%d" % port, "--tls-cert", p.path("server", "pem"),
               "--tls-key", p.path("server", "key"))
    try:
        if not check(d.up(), "rewindd with TLS started: %r" % d.text()[-500:]):
            return
        text = d.text().decode()
        check("serving https://127.0.0.1:%d/api/v1/status" % port in text,
              "the serving line says https://: %r" % text[-400:])
        check(" warn " in text and "open to any client on this host" in text,
              "without tokens the log says the API is open to local clients: %r" % text[-400:])
        ca = p.path("ca", "pem")
        for flt in FILTERS:
            r = curl(packets_url(base, flt), "--cacert", ca, "-f")
            want = tcpdump(SMTP, flt)
            check(r.returncode == 0 and r.stdout == want and len(want) > 24,
                  "curl https %r: exit %d, %d bytes, tcpdump %d: %s" % (
                      flt, r.returncode, len(r.stdout), len(want), r.stderr.decode()[-200:]))
        # plain HTTP to the TLS port: no answer, one log line
        r = curl("http://127.0.0.1:%d/healthz" % port)
        check(r.returncode != 0 and not r.stdout.startswith(b"ok"),
              "plain http:// to the TLS port fails: exit %d %r" % (r.returncode, r.stdout[:80]))
        check(d.wait_log(b"this https:// port"),
              "the failed handshake is logged: %r" % d.text()[-300:])
        # clients that do not trust the server's CA
        for what, opts in (("another CA", ["--cacert", p.path("foreign", "pem")]),
                           ("the system's CAs", [])):
            r = curl(base + "/healthz", *opts)
            check(r.returncode == 60, "curl trusting %s fails verification (60): exit %d %s" % (
                what, r.returncode, r.stderr.decode()[-200:]))
        # openssl s_client: the chain, the protocol versions
        for ver, flag in (("TLSv1.3", "-tls1_3"), ("TLSv1.2", "-tls1_2")):
            r = run("openssl", "s_client", "-connect", "127.0.0.1:%d" % port, "-CAfile", ca,
                    "-showcerts", flag, timeout=30)
            out = r.stdout.decode(errors="replace")
            check(re.search(r"^ 0 s:CN = 127\.0\.0\.1$", out, re.M) and
                  re.search(r"^\s+i:CN = rewind test server CA$", out, re.M) and
                  "Verify return code: 0 (ok)" in out and "New, %s," % ver in out,
                  "openssl s_client %s: chain, verification, protocol: %s" % (flag, out[:1500]))
        # TLS 1.1, offered by a client that would accept it, is refused
        r = run("openssl", "s_client", "-connect", "127.0.0.1:%d" % port, "-CAfile", ca,
                "-tls1_1", "-cipher", "DEFAULT@SECLEVEL=0", timeout=30)
        out = r.stdout.decode(errors="replace")
        check(r.returncode != 0 and "New, TLSv1.1" not in out,
              "TLS 1.1 refused: exit %d %s" % (r.returncode, out[-300:]))
        # rewind query --url https:// told the CA in the environment
        env = dict(os.environ, CURL_CA_BUNDLE=ca)
        for flt in FILTERS[:2]:
            r = run(harness.REWIND, "query", "--url", base, "-w", "-", *flt.split(), env=env)
            check(r.returncode == 0 and r.stdout == tcpdump(SMTP, flt),
                  "rewind query --url https %r with CURL_CA_BUNDLE: exit %d, %d bytes: %s" % (
                      flt, r.returncode, len(r.stdout), r.stderr.decode()[-200:]))
        env2 = {k: v for k, v in os.environ.items() if k != "CURL_CA_BUNDLE"}
        env2["SSL_CERT_FILE"] = ca
        r = run(harness.REWIND, "query", "--url", base, "--count", "port", "25", env=env2)
        want = sum(harness.frames(tcpdump(SMTP, "port 25")).values())
        check(r.returncode == 0 and r.stdout.strip() == str(want).encode(),
              "rewind query --url --count with SSL_CERT_FILE: exit %d %r, want %d: %s" % (
                  r.returncode, r.stdout, want, r.stderr.decode()[-200:]))
        r = run(harness.REWIND, "status", "--url", base, env=env)
        check(r.returncode == 0 and b'"sensor"' in r.stdout,
              "rewind status --url https: exit %d %s" % (r.returncode, r.stderr.decode()[-200:]))
        env3 = dict(os.environ, CURL_CA_BUNDLE=p.path("foreign", "pem"))
        r = run(harness.REWIND, "query", "--url", base, "--count", "port", "25", env=env3)
        err = r.stderr.decode()
        check(r.returncode == 1 and "CURL_CA_BUNDLE" in err and base in err,
              "rewind --url https with the wrong CA: exit %d, %r" % (r.returncode, err))
    finally:
        check(d.stop() == 0, "rewindd with TLS exits 0 on SIGTERM")


def test_mtls(tmp, p, arch):
    port = free_port()
    base = "https://127.0.0.1:%d" % port
    log = os.path.join(tmp, "mtls.log")
    d = Daemon(arch, log, "--listen", "127.0.0.1:%d" % port, "--tls-cert", p.path("server", "pem"),
               "--tls-key", p.path("server", "key"), "--tls-client-ca", p.path("clientca", "pem"))
    try:
        if not check(d.up(), "rewindd with --tls-client-ca started: %r" % d.text()[-500:]):
            return
        ca = ["--cacert", p.path("ca", "pem")]
        url = packets_url(base, "port 25")
        want = tcpdump(SMTP, "port 25")
        r = curl(url, "-f", *ca, "--cert", p.path("alice", "pem"), "--key", p.path("alice", "key"))
        check(r.returncode == 0 and r.stdout == want,
              "mutual TLS: alice's certificate gets the answer: exit %d, %d bytes: %s" % (
                  r.returncode, len(r.stdout), r.stderr.decode()[-200:]))
        for ver in ("1.3", "1.2"):
            n0 = d.text().count(b"TLS handshake failed")
            r = curl(url, "-f", "--tls-max", ver, *ca)
            check(r.returncode != 0 and r.stdout == b"",
                  "TLS %s without a client certificate: refused, exit %d, %d bytes" % (
                      ver, r.returncode, len(r.stdout)))
            check(d.wait_log(b"TLS handshake failed", 5) and
                  d.text().count(b"--tls-client-ca requires one") > 0 and
                  d.text().count(b"TLS handshake failed") > n0,
                  "TLS %s: the refusal is logged: %r" % (ver, d.text()[-300:]))
        for who, dn, why in (("mallory", b"CN=mallory,O=Elsewhere", b"issuer is unknown"),
                             ("bob", b"CN=bob,O=rewind test", b"purpose")):
            for ver in ("1.3", "1.2"):
                n0 = d.text().count(dn)
                r = curl(url, "-f", "--tls-max", ver, *ca, "--cert", p.path(who, "pem"),
                         "--key", p.path(who, "key"))
                check(r.returncode != 0 and r.stdout == b"",
                      "TLS %s with %s's certificate: refused, exit %d, %d bytes" % (
                          ver, who, r.returncode, len(r.stdout)))
                line = b"refused a client at the TLS handshake: client certificate " + dn
                d.wait_log(line, 5)
                lines = [ln for ln in d.text().splitlines() if line in ln]
                check(len(lines) > 0 and d.text().count(dn) == n0 + 1 and why in lines[-1],
                      "TLS %s, %s: one log line with the subject and why: %r" % (
                          ver, who, lines[-1:]))
        # a refused client never reached the routes
        text = d.text()
        check(text.count(b"GET /api/v1/packets") == 1,
              "only alice's request reached the server: %r" % text[-600:])
        # Once tokens exist, a certificate's CN is the principal, with the
        # role of that name's token: alice is a noc, carol nobody.
        r1 = run(harness.REWIND, "token", "add", "--dir", arch, "--name", "alice", "--role", "noc")
        r2 = run(harness.REWIND, "token", "add", "--dir", arch, "--name", "boss", "--role", "admin")
        check(r1.returncode == 0 and r2.returncode == 0, "tokens for the certificates: %r %r" %
              (r1.stderr, r2.stderr))
        alice = ["--cert", p.path("alice", "pem"), "--key", p.path("alice", "key")]
        r = curl(url, "-f", "-D", os.path.join(tmp, "mtls.hdr"), *ca, *alice)
        hdr = open(os.path.join(tmp, "mtls.hdr"), "rb").read()
        check(r.returncode == 0 and b"X-Rewind-Payload: headers" in hdr and
              r.stdout[:4] in (b"\xd4\xc3\xb2\xa1", b"\x4d\x3c\xb2\xa1") and
              0 < len(r.stdout) < len(want),
              "alice's certificate as a noc: exit %d, %d bytes (full answer %d): %r" %
              (r.returncode, len(r.stdout), len(want), hdr[:300]))
        r = curl(base + "/api/v1/holds", *ca, *alice)
        check(b"forbidden" in r.stdout and b"alice has the role noc" in r.stdout,
              "alice's certificate on an analyst's route: %r" % r.stdout[:300])
        r = curl(base + "/api/v1/status", *ca, "--cert", p.path("carol", "pem"), "--key",
                 p.path("carol", "key"))
        check(b"forbidden" in r.stdout and b"no principal for the client certificate" in r.stdout
              and b"CN=carol" in r.stdout, "carol's certificate without a token: %r" %
              r.stdout[:300])
        for name in ("alice", "boss"):
            run(harness.REWIND, "token", "revoke", "--dir", arch, "--name", name)
    finally:
        check(d.stop() == 0, "rewindd with --tls-client-ca exits 0 on SIGTERM")


def test_bad_files(tmp, p):
    """Each bad TLS setting: exit 2, one line naming the file, nothing created."""
    junk = os.path.join(tmp, "junk.txt")
    with open(junk, "w") as f:
        f.write("not a certificate\n")
    empty = os.path.join(tmp, "empty.pem")
    open(empty, "w").close()
    garbled = os.path.join(tmp, "garbled.pem")
    with open(garbled, "w") as f:
        f.write("-----BEGIN CERTIFICATE-----\nbm90IGEgY2VydGlmaWNhdGU=\n-----END CERTIFICATE-----\n")
    enc = os.path.join(tmp, "encrypted.key")
    p.openssl("pkey", "-in", p.path("server", "key"), "-aes256", "-passout", "pass:secret",
              "-out", enc)
    missing = os.path.join(tmp, "nosuch.pem")
    cert, key, cca = p.path("server", "pem"), p.path("server", "key"), p.path("clientca", "pem")
    cases = [
        # (--tls-cert, --tls-key, --tls-client-ca, words the line must hold)
        (missing, key, None, [missing, "--tls-cert", "No such file"]),
        (cert, missing, None, [missing, "--tls-key", "No such file"]),
        (cert, key, missing, [missing, "--tls-client-ca", "No such file"]),
        (tmp, key, None, [tmp, "not a regular file"]),
        (junk, key, None, [junk, "--tls-cert", "not PEM"]),
        (empty, key, None, [empty, "not PEM"]),
        (cert, junk, None, [junk, "--tls-key", "not PEM"]),
        (cert, key, junk, [junk, "--tls-client-ca", "not PEM"]),
        (garbled, key, None, [garbled, "not a valid certificate"]),
        (key, cert, None, [key, "holds a private key, not a certificate", "swapped"]),
        (cert, cert, None, [cert, "--tls-key", "holds a certificate, not a private key"]),
        (cert, enc, None, [enc, "encrypted"]),
        (cert, p.path("other", "key"), None,
         ["--tls-key " + p.path("other", "key"), "does not match", "--tls-cert " + cert]),
        (cert, key, key, [key, "--tls-client-ca", "holds a private key"]),
        (cert, None, None, ["--tls-cert needs --tls-key"]),
        (None, key, None, ["--tls-key needs --tls-cert"]),
        (None, None, cca, ["--tls-client-ca needs --tls-cert and --tls-key"]),
    ]
    for i, (c, k, ca, words) in enumerate(cases):
        arch = os.path.join(tmp, "bad%d" % i)
        args = [REWINDD, "--dir", arch, "--listen", "127.0.0.1:%d" % free_port()]
        for opt, v in (("--tls-cert", c), ("--tls-key", k), ("--tls-client-ca", ca)):
            if v:
                args += [opt, v]
        r = run(*args, timeout=30)
        err = r.stderr.decode()
        check(r.returncode == 2 and err.startswith("rewindd: ") and err.count("\n") == 1 and
              all(w in err for w in words) and not os.path.exists(arch),
              "bad TLS case %d %s: exit %d, %r, archive created: %s" % (
                  i, words, r.returncode, err, os.path.exists(arch)))


def test_expired(tmp, p, arch):
    port = free_port()
    log = os.path.join(tmp, "expired.log")
    d = Daemon(arch, log, "--listen", "127.0.0.1:%d" % port, "--tls-cert",
               p.path("expired", "pem"), "--tls-key", p.path("expired", "key"))
    try:
        text = d.text().decode()
        check(d.up() and re.search(r" warn --tls-cert \S*expired\.pem: certificate 'CN=127\.0\.0"
                                   r"\.1' expired on \S+Z; clients will refuse it", text),
              "an expired certificate is served with a warning: %r" % text[-400:])
        r = curl("https://127.0.0.1:%d/healthz" % port, "--cacert", p.path("ca", "pem"))
        check(r.returncode == 60 and b"expired" in r.stderr,
              "curl refuses the expired certificate: exit %d %r" % (r.returncode, r.stderr))
    finally:
        d.stop()


def test_beyond_loopback(tmp, p):
    port = free_port()
    for addr in ("0.0.0.0:%d" % port, "[::]:%d" % port, "192.0.2.7:%d" % port):
        arch = os.path.join(tmp, "exposed")
        r = run(REWINDD, "--dir", arch, "--listen", addr, timeout=30)
        want = ("rewindd: --listen %s is not loopback: serving packets beyond this host needs "
                "TLS (--tls-cert, --tls-key) and tokens (rewind token add)\n" % addr)
        check(r.returncode == 2 and r.stderr.decode() == want and not os.path.exists(arch),
              "--listen %s without TLS: exit %d, %r, archive created: %s" % (
                  addr, r.returncode, r.stderr, os.path.exists(arch)))
    # with TLS but no token (none can be defined yet): refused all the same
    arch = os.path.join(tmp, "exposed-tls")
    r = run(REWINDD, "--dir", arch, "--listen", "0.0.0.0:%d" % port, "--tls-cert",
            p.path("server", "pem"), "--tls-key", p.path("server", "key"), timeout=30)
    err = r.stderr.decode()
    check(r.returncode == 2 and err.count("\n") == 1 and "is not loopback" in err and
          "needs tokens (rewind token add)" in err and not os.path.exists(arch),
          "--listen 0.0.0.0 with TLS and no tokens: exit %d, %r" % (r.returncode, err))
    # all of 127/8 is loopback: served without TLS
    arch = os.path.join(tmp, "lo2")
    d = Daemon(arch, os.path.join(tmp, "lo2.log"), "--listen", "127.0.0.2:%d" % port)
    try:
        r = curl("http://127.0.0.2:%d/healthz" % port)
        check(d.up() and r.returncode == 0 and r.stdout == b"ok\n",
              "--listen 127.0.0.2 (loopback) serves plain HTTP: %r %r" % (r.stdout, d.text()[-300:]))
    finally:
        d.stop()


def test_exposed_with_tokens(tmp, p):
    """Beyond loopback with TLS and a token: served, every request needs a
    token, and revoking the last one leaves the API closed, never open. In a
    network namespace of the test's own, on one end of a veth pair: nothing can
    reach it from outside."""
    ns = "rwtls%d" % os.getpid()
    setup = [["ip", "netns", "add", ns], ["ip", "-n", ns, "link", "set", "lo", "up"],
             ["ip", "-n", ns, "link", "add", "rwt0", "type", "veth", "peer", "name", "rwt1"],
             ["ip", "-n", ns, "addr", "add", "192.0.2.1/24", "dev", "rwt0"],
             ["ip", "-n", ns, "link", "set", "rwt0", "up"]]
    for c in setup:
        r = run(*c)
        if r.returncode:
            run("ip", "netns", "del", ns)
            print("test_tls: beyond loopback with tokens skipped: %s: %s" % (
                " ".join(c), r.stderr.decode().strip()))
            return
    p.leaf("server2", "/CN=192.0.2.1", "ca", "subjectAltName=IP:192.0.2.1\n"
           "extendedKeyUsage=serverAuth\n")
    tls = ["--tls-cert", p.path("server2", "pem"), "--tls-key", p.path("server2", "key")]
    arch = os.path.join(tmp, "exposed-arch")
    r = rw("import", "--quiet", "--dir", arch, "--point", "smtp", SMTP)
    check(r.returncode == 0, "import for the exposed archive: %r" % r.stderr)
    port = free_port()
    listen = "192.0.2.1:%d" % port
    base = "https://" + listen
    d = None
    try:
        # an archive that exists but holds no token: refused once it is open
        r = run("ip", "netns", "exec", ns, REWINDD, "--dir", arch, "--listen", listen, *tls,
                timeout=60)
        err = r.stderr.decode()
        check(r.returncode == 2 and "is not loopback" in err and "needs tokens" in err,
              "an archive without tokens, beyond loopback: exit %d %r" % (r.returncode, err[-300:]))
        r = rw("token", "add", "--dir", arch, "--name", "ops", "--role", "analyst")
        tok = r.stdout.decode().strip()
        check(r.returncode == 0 and len(tok) == 43, "token add: %r" % r.stderr)
        log = os.path.join(tmp, "exposed.log")
        d = subprocess.Popen(["ip", "netns", "exec", ns, REWINDD, "--dir", arch, "--log", log,
                              "--listen", listen] + tls, stdout=subprocess.DEVNULL,
                             stderr=subprocess.PIPE)
        for _ in range(300):
            if os.path.exists(log) and b" ready;" in open(log, "rb").read() or d.poll() is not None:
                break
            time.sleep(0.05)
        text = open(log, "rb").read() if os.path.exists(log) else b""
        check(d.poll() is None and b"serving https://" + listen.encode() in text and
              b"open to any client" not in text,
              "beyond loopback with TLS and a token: served, not said open: %r" % text[-400:])

        def get(token):
            args = ["ip", "netns", "exec", ns, "curl", "-s", "--max-time", "30", "--cacert",
                    p.path("ca", "pem"), "-w", "\n%{http_code}", base + "/api/v1/packets?filter="
                    + urllib.parse.quote("port 25", safe="")]
            if token:
                args += ["-H", "Authorization: Bearer " + token]
            r = run(*args)
            body, _, code = r.stdout.rpartition(b"\n")
            return code.decode(), body
        code, body = get(tok)
        check(code == "200" and body == tcpdump(SMTP, "port 25"),
              "with the token: %s, %d bytes" % (code, len(body)))
        code, _ = get(None)
        check(code == "401", "without a token: %s" % code)
        r = rw("token", "revoke", "--dir", arch, "--name", "ops")
        check(r.returncode == 0, "token revoke: %r" % r.stderr)
        time.sleep(1.5)  # more than the daemon caches whether tokens exist
        for who, t in (("no token", None), ("the revoked token", tok)):
            code, body = get(t)
            check(code == "401" and b"Content-Type" not in body[:4],
                  "the last token revoked, %s: %s (beyond loopback the API never opens)" % (
                      who, code))
    finally:
        if d is not None:
            d.send_signal(signal.SIGTERM)
            try:
                check(d.wait(timeout=60) == 0, "rewindd beyond loopback exits 0 on SIGTERM")
            except subprocess.TimeoutExpired:
                d.kill()
                d.wait()
        run("ip", "netns", "del", ns)


def main():
    with tempfile.TemporaryDirectory(prefix="rwtls") as tmp:
        p = make_pki(tmp)
        arch = os.path.join(tmp, "arch")
        r = rw("import", "--quiet", "--dir", arch, "--point", "smtp", SMTP)
        if not check(r.returncode == 0, "import smtp.pcap: %r" % r.stderr):
            harness.finish("test_tls")
        test_https(tmp, p, arch)
        test_mtls(tmp, p, arch)
        test_expired(tmp, p, arch)
        test_bad_files(tmp, p)
        test_beyond_loopback(tmp, p)
        test_exposed_with_tokens(tmp, p)
    harness.finish("test_tls")


if __name__ == "__main__":
    main()
