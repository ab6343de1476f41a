#!/usr/bin/env python3
"""`rewind query --dir` answered by the rewindd that owns the archive, over
DIR/rewindd.sock: the same bytes as reading the archive locally and as
tcpdump; -w - is standard output on both paths; errors as locally (a
rejected filter leaves -w FILE alone); a closed pipe ends the client with SIGPIPE; a stalled or vanished client and
SIGTERM do not pin the daemon; a busy daemon, a killed one (stale socket)
and --local fall back to reading the archive; malformed requests get an
error line and leave the daemon serving. Which path answered is read from
the daemon's log, which has one line per query it answered. The front end
bin/rewind asks only once before handing over to bin/rewind-core, finds
rewind-core where `make install` puts it, and says so when it is missing.
`rewind import -` reads standard input (pipe, file, socket) with or without
the daemon."""
import os
import pty
import re
import select
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "lib"))
import harness  # noqa: E402
import pcaputil  # noqa: E402
from harness import PCAPS, REWIND, REWINDD, check, rw, tcpdump  # noqa: E402

SMTP = os.path.join(PCAPS, "good", "smtp.pcap")                  # EN10MB
SLL = os.path.join(PCAPS, "good", "output-multi-eve.pcap")       # LINUX_SLL
BIG = os.path.join(PCAPS, "good", "echo-connections.pcap")       # EN10MB, 6.8 MB
# the daemon's log line for each query it answered in full
ANSWER = re.compile(rb" info rewind query filter '.*': \d+ packets, \d+ bytes in ")


class Daemon:
    def __init__(self, arch, tmp, *extra):
        self.log = os.path.join(tmp, "rewindd-%d.log" % time.monotonic_ns())
        self.proc = subprocess.Popen([REWINDD, "--dir", arch, "--listen", "none", "--log",
                                      self.log] + list(extra),
                                     stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        deadline = time.time() + 20
        while time.time() < deadline and b" ready;" not in self.text():
            if self.proc.poll() is not None:
                raise RuntimeError("rewindd exited: %r" % self.text()[-500:])
            time.sleep(0.05)

    def text(self):
        try:
            return open(self.log, "rb").read()
        except FileNotFoundError:
            return b""

    def answered(self):
        return len(ANSWER.findall(self.text()))

    def wait_log(self, needle, secs=10):
        deadline = time.time() + secs
        while time.time() < deadline:
            if needle in self.text():
                return True
            time.sleep(0.05)
        return False

    def stop(self):
        if self.proc.poll() is None:
            self.proc.terminate()
        try:
            return self.proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            return None


def q(arch, *args, **kw):
    return rw("query", "--dir", arch, *args, **kw)


def test_same_answers(arch, d):
    cases = [
        ["--point", "smtp", "port 25"],
        ["--point", "smtp", "--limit", "7", "tcp"],
        ["--point", "sll", "udp"],
        ["--point", "big", "tcp[13] & 2 != 0"],
        ["--format", "pcapng", "tcp"],
        ["--format", "pcapng", "--point", "sll", "--point", "smtp"],
        ["--count", "tcp"],
        ["--count", "--point", "big", "--from", "0", "--to", "4102444800", "greater 100"],
        ["--limit", "18446744073709551615", "--point", "smtp", "port 25"],
    ]
    for args in cases:
        before = d.answered()
        a = q(arch, *args)
        after = d.answered()
        b = q(arch, "--local", *args)
        check(a.returncode == 0 and b.returncode == 0,
              "%s: exit %d (daemon) and %d (local): %r %r" % (args, a.returncode, b.returncode,
                                                              a.stderr, b.stderr))
        check(after == before + 1, "%s: the daemon did not answer (%d -> %d)" %
              (args, before, after))
        check(d.answered() == after, "%s: --local went to the daemon" % args)
        check(a.stdout == b.stdout and len(a.stdout) > 0,
              "%s: daemon and local answers differ (%d vs %d bytes)" %
              (args, len(a.stdout), len(b.stdout)))
    # and both are tcpdump's answer
    for point, path, flt in (("smtp", SMTP, "port 25"), ("big", BIG, "host 127.0.0.1 and tcp"),
                             ("sll", SLL, "")):
        out = os.path.join(os.path.dirname(arch), "out-%s.pcap" % point)
        r = q(arch, "--point", point, "-w", out, *([flt] if flt else []))
        want = tcpdump(path, flt)
        check(r.returncode == 0 and open(out, "rb").read() == want and len(want) > 24,
              "point %s filter %r: -w file differs from tcpdump's (%s)" %
              (point, flt, r.stderr.decode().strip()))


def test_errors(arch, d, tmp):
    keep = os.path.join(tmp, "keep.pcap")
    for args, why in ((["host 1.2.3.4 and"], "filter"), (["--point", "nosuch", "tcp"], "point"),
                      ([], "two link types in one pcap")):
        outs = []
        refused = d.text().count(b": refused: ")
        for local in ([], ["--local"]):
            with open(keep, "wb") as f:
                f.write(b"precious")
            r = q(arch, *local, "-w", keep, *args)
            outs.append((r.returncode, r.stderr))
            check(r.returncode == 2, "%s%s: exit %d, expected 2" % (why, local, r.returncode))
            check(open(keep, "rb").read() == b"precious",
                  "%s%s: the existing -w file was touched" % (why, local))
        check(outs[0] == outs[1] and outs[0][1].startswith(b"rewind: "),
              "%s: daemon and local errors differ: %r" % (why, outs))
        check(d.text().count(b": refused: ") == refused + 1,
              "%s: the daemon did not refuse it (the client read the archive itself)" % why)
    # a bad time never reaches the daemon, and says so the same way
    r = q(arch, "--from", "yesterday-ish", "tcp")
    check(r.returncode == 2 and b"yesterday-ish" in r.stderr, "bad time: %r" % (r.stderr,))


def test_write_dash(arch, d, tmp):
    """-w - is standard output, as for tcpdump and every pcap tool, asked of
    the daemon and read locally: the bytes of -w FILE and of tcpdump, also
    once through tcpdump's own reader of standard input. No file named '-'
    is written, and one that exists is left alone (not truncated, and not
    removed when the answer fails); to a terminal, -w - is refused as
    writing to standard output without -w is."""
    cwd = os.path.join(tmp, "dash")
    os.makedirs(cwd)
    dash = os.path.join(cwd, "-")

    def precious():
        with open(dash, "wb") as f:
            f.write(b"precious")

    def untouched():
        return open(dash, "rb").read() == b"precious"

    for local in ([], ["--local"]):
        how = "-w - (%s)" % ("local" if local else "daemon")
        for point, path, flt in (("smtp", SMTP, "port 25"), ("sll", SLL, "port 1389")):
            precious()
            before = d.answered()
            a = q(arch, *local, "--point", point, "-w", "-", flt, cwd=cwd)
            asked = d.answered() - before
            want = tcpdump(path, flt)
            check(a.returncode == 0 and a.stdout == want and len(want) > 24,
                  "%s %s %r: exit %d, %d bytes on stdout, tcpdump wrote %d: %r" %
                  (how, point, flt, a.returncode, len(a.stdout), len(want), a.stderr))
            check(asked == (0 if local else 1), "%s: answered by the daemon %d times" %
                  (how, asked))
            check(untouched(), "%s %s: wrote the file named '-'" % (how, point))
            out = os.path.join(tmp, "dash-%s.pcap" % point)
            b = q(arch, *local, "--point", point, "-w", out, flt)
            check(b.returncode == 0 and open(out, "rb").read() == a.stdout,
                  "%s %s: -w FILE and -w - differ" % (how, point))
            # rewind query ... -w - FILTER | tcpdump -r - -w FILE (at
            # nanosecond precision, tcpdump writes the bytes it reads)
            piped = os.path.join(tmp, "dash-piped.pcap")
            rp = subprocess.Popen([REWIND, "query", "--dir", arch, *local, "--point", point,
                                   "-w", "-", flt], stdout=subprocess.PIPE,
                                  stderr=subprocess.DEVNULL, cwd=cwd)
            tp = subprocess.run(["tcpdump", "--time-stamp-precision=nano", "-r", "-", "-w",
                                 piped], stdin=rp.stdout, capture_output=True)
            rp.stdout.close()
            check(rp.wait() == 0 and tp.returncode == 0 and
                  open(piped, "rb").read() == open(out, "rb").read(),
                  "%s %s | tcpdump -r - -w FILE: not the bytes of -w FILE (%r)" %
                  (how, point, tp.stderr))
        # a rejected query writes nothing anywhere
        precious()
        r = q(arch, *local, "--point", "smtp", "-w", "-", "host and", cwd=cwd)
        check(r.returncode == 2 and r.stdout == b"" and untouched(),
              "%s, bad filter: exit %d, %d bytes out, '-' untouched: %s" %
              (how, r.returncode, len(r.stdout), untouched()))
        # an answer that fails once the output is open: the pipe's reader goes
        # away (SIGPIPE ignored: a write error, exit 1); '-' is not removed
        p = subprocess.Popen([REWIND, "query", "--dir", arch, *local, "--point", "big", "-w",
                              "-"], stdout=subprocess.PIPE, stderr=subprocess.PIPE, cwd=cwd,
                             preexec_fn=lambda: signal.signal(signal.SIGPIPE, signal.SIG_IGN))
        head = p.stdout.read(100)
        p.stdout.close()
        try:
            rc = p.wait(timeout=30)
        except subprocess.TimeoutExpired:
            p.kill()
            rc = p.wait()
        err = p.stderr.read()
        p.stderr.close()
        check(len(head) == 100 and rc == 1 and b"Broken pipe" in err and untouched(),
              "%s, closed pipe: %d bytes read, exit %s, %r, '-' untouched: %s" %
              (how, len(head), rc, err, untouched()))
        # to a terminal: refused, as without -w
        master, slave = pty.openpty()
        try:
            r = subprocess.run([REWIND, "query", "--dir", arch, *local, "--point", "smtp", "-w",
                                "-"], stdout=slave, stderr=subprocess.PIPE, cwd=cwd, timeout=30)
        finally:
            os.close(slave)
            os.close(master)
        check(r.returncode == 2 and b"terminal" in r.stderr and untouched(),
              "%s to a terminal: exit %d, %r, '-' untouched: %s" %
              (how, r.returncode, r.stderr, untouched()))
    os.unlink(dash)
    check(os.listdir(cwd) == [], "-w -: files written: %r" % os.listdir(cwd))


def import_stdin(arch, point, how, data, tmp):
    """rewind import --dir ARCH --point POINT - with standard input a pipe, a
    regular file, the same file read from an offset (the bytes before it are
    not the capture), or a socket."""
    cmd = [REWIND, "import", "--quiet", "--dir", arch, "--point", point, "-"]
    if how == "pipe":
        return subprocess.run(cmd, input=data, capture_output=True, timeout=60)
    if how == "socket":
        a, b = socket.socketpair()
        feed = threading.Thread(target=lambda: (b.sendall(data), b.shutdown(socket.SHUT_WR)))
        feed.start()
        try:
            return subprocess.run(cmd, stdin=a, capture_output=True, timeout=60)
        finally:
            feed.join()
            a.close()
            b.close()
    path = os.path.join(tmp, "stdin-%s.pcap" % how)
    skip = b"not a capture " * 8 if how == "offset" else b""
    with open(path, "wb") as f:
        f.write(skip + data)
    with open(path, "rb") as f:
        f.seek(len(skip))
        return subprocess.run(cmd, stdin=f, capture_output=True, timeout=60)


def test_import_stdin(arch, d, tmp):
    """rewind import - reads standard input whether or not a daemon owns the
    archive: the daemon reads the very descriptor the client hands over, as
    the client would have (from where it stands, whatever it is)."""
    with open(SMTP, "rb") as f:
        data = f.read()
    want = tcpdump(SMTP)
    alone = os.path.join(tmp, "stdin-alone")
    for how in ("pipe", "file", "offset", "socket"):
        point = "stdin-" + how
        for where, dest in (("daemon", arch), ("no daemon", alone)):
            r = import_stdin(dest, point, how, data, tmp)
            got = q(dest, "--local", "--point", point)
            check(r.returncode == 0 and got.stdout == want,
                  "import - from a %s (%s): exit %d %r; query: %d bytes, tcpdump %d" %
                  (how, where, r.returncode, r.stderr, len(got.stdout), len(want)))
        check(b"import of - into point %s handed over" % point.encode() in d.text(),
              "import - from a %s: not handed to the daemon" % how)
    # a file whose header tcpdump refuses is refused by the daemon as locally
    fixture = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "fixtures",
                           "linktype-reserved-field-not-zero.pcap")
    r = rw("import", "--quiet", "--dir", arch, "--point", "reserved", fixture)
    check(r.returncode == 2 and r.stderr.startswith(b"rewind: " + fixture.encode()) and
          b"link-type field" in r.stderr and b"into point reserved handed over" in d.text(),
          "a bad header handed to the daemon: exit %d %r" % (r.returncode, r.stderr))
    # a descriptor open for writing only is not read (it once was, reopened
    # through /proc/self/fd with the daemon's rights)
    wo = os.path.join(tmp, "writeonly.pcap")
    with open(wo, "wb") as f:
        f.write(data)
    fd = os.open(wo, os.O_WRONLY | os.O_APPEND)
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    s.settimeout(20)
    s.connect(os.path.join(arch, "rewindd.sock"))
    socket.send_fds(s, [b"import\tpoint=wo\tlabel=writeonly\n"], [fd])
    os.close(fd)
    out = b""
    while not out.endswith(b"\n"):
        b = s.recv(4096)
        if not b:
            break
        out += b
    s.close()
    check(out == b"error -1 writeonly: the descriptor is not open for reading\n",
          "import of a write-only descriptor: %r" % out)


def read_then_close(arch, local, sigpipe=signal.SIG_DFL):
    """Read 100 bytes of a big answer, close the pipe: (head, exit, stderr)."""
    p = subprocess.Popen([REWIND, "query", "--dir", arch, *local, "--point", "big"],
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                         preexec_fn=lambda: signal.signal(signal.SIGPIPE, sigpipe))
    head = p.stdout.read(100)
    p.stdout.close()
    try:
        rc = p.wait(timeout=30)
    except subprocess.TimeoutExpired:
        p.kill()
        rc = None
    return head, rc, p.stderr.read()


def test_closed_pipe(arch, d):
    for local in ([], ["--local"]):
        head, rc, err = read_then_close(arch, local)
        check(len(head) == 100 and rc == -signal.SIGPIPE and err == b"",
              "closed pipe%s: exit %s, stderr %r (expected death by SIGPIPE, as tcpdump's "
              "writer would)" % (local, rc, err))
    check(d.wait_log(b"the reader of the client's pipe went away"),
          "the daemon did not log the closed pipe")
    # with SIGPIPE ignored, a write error instead, as locally
    outs = [read_then_close(arch, local, signal.SIG_IGN)[1:] for local in ([], ["--local"])]
    check(outs[0] == outs[1] == (1, b"rewind: writing output: Broken pipe\n"),
          "closed pipe, SIGPIPE ignored: daemon and local give %r" % (outs,))


def stalled_query(arch):
    """A query for a big answer whose output pipe nobody reads, once the
    daemon has started writing it."""
    p = subprocess.Popen([REWIND, "query", "--dir", arch, "--point", "big"],
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    ready = select.select([p.stdout], [], [], 20)[0]
    return p, bool(ready)


def test_stalled_and_busy(arch, d):
    # --max-queries 1: while a reader stalls, the next query is read locally
    p, started = stalled_query(arch)
    check(started, "the stalled query never started writing")
    before = d.answered()
    r = q(arch, "--count", "--point", "smtp", "port 25")
    want = len(pcaputil.read_pcap(tcpdump(SMTP, "port 25"))[1])
    check(r.returncode == 0 and r.stdout.strip() == str(want).encode(),
          "busy daemon: the local answer is %r, expected %d" % (r.stdout, want))
    check(d.answered() == before, "a busy daemon answered a second query")
    # the stalled client dies: the daemon lets go and serves again
    p.kill()
    p.wait()
    p.stdout.close()
    p.stderr.close()
    check(d.wait_log(b"client went away"), "the daemon did not notice the killed client")
    deadline = time.time() + 10
    while time.time() < deadline:
        before = d.answered()
        r = q(arch, "--count", "tcp")
        if d.answered() > before:
            break
        time.sleep(0.2)
    check(d.answered() > before, "the daemon does not answer after its client was killed")


def test_protocol(arch, d, tmp):
    sock = os.path.join(arch, "rewindd.sock")

    def ask(data, fd=None, close_early=False):
        s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        s.settimeout(20)
        s.connect(sock)
        if fd is not None:
            socket.send_fds(s, [data], [fd])
        elif data:
            s.sendall(data)
        if close_early:
            s.close()
            return b""
        s.shutdown(socket.SHUT_WR)
        out = b""
        try:
            while True:
                b = s.recv(4096)
                if not b:
                    break
                out += b
        except socket.timeout:
            out += b"<timeout>"
        except ConnectionResetError:  # it hung up on bytes it never read
            out += b"<reset>"
        s.close()
        return out

    for req, why in ((b"hello\n", "unknown verb"),
                     (b"query\tfrom=x\tto=1\n", "bad number"),
                     (b"query\tfrom=0\tto=10\tbogus=1\n", "unknown field"),
                     (b"query\tfrom=10\tto=0\n", "empty window"),
                     (b"query\tfrom=0\tto=10\tfilter=%zz\n", "bad escape"),
                     (b"query\tfrom=0\tto=10\tfilter=%00\n", "escaped NUL"),
                     (b"query\tfrom=0\tto=10\tformat=json\n", "bad format"),
                     (b"query\n", "no window"),
                     (b"query\tfrom=0\tto=10" + b"\tpoint=a" * 70 + b"\n", "too many points"),
                     (b"query\tfrom=0\tto=10" + b"x" * 70000, "over-long line"),
                     (b"query\tfrom=0\tto=10", "no newline")):
        out = ask(req)
        if why == "over-long line":  # it hangs up on bytes it never read
            out = out.replace(b"<reset>", b"") or b"error -1 (lost to the reset)\n"
        check(out.startswith(b"error -1 ") and out.endswith(b"\n") and out.count(b"\n") == 1,
              "%s: expected one 'error -1' line, got %r" % (why, out[:200]))
    # a good query, then no descriptor, or junk with one: the daemon just hangs up
    good = b"query\tfrom=0\tto=9223372036854775807\tlimit=0\tformat=pcap\tcount=0\tpoint=smtp\n"

    def ready(what):
        """A connection on which the daemon has accepted `good`."""
        s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        s.settimeout(20)
        s.connect(sock)
        s.sendall(good)
        check(s.recv(100) == b"ready\n", "%s: good request, no 'ready'" % what)
        return s

    s = ready("no descriptor")
    s.sendall(b"out\n")  # without the descriptor
    check(s.recv(100) == b"", "'out' without a descriptor: the daemon did not hang up")
    s.close()
    with open(os.path.join(tmp, "junk.out"), "wb") as f:
        s = ready("junk")
        socket.send_fds(s, [b"junk"], [f.fileno()])
        check(s.recv(100) == b"", "junk with a descriptor: the daemon did not hang up")
        s.close()
    check(os.path.getsize(os.path.join(tmp, "junk.out")) == 0,
          "the daemon wrote to a descriptor sent with junk")
    ask(b"", close_early=True)
    # a descriptor open for reading only is refused, and nothing is written to it
    ro = os.path.join(tmp, "readonly.out")
    open(ro, "wb").close()
    with open(ro, "rb") as f:
        s = ready("read-only descriptor")
        socket.send_fds(s, [b"out\n"], [f.fileno()])
        out = s.recv(200)
        s.close()
    check(out.startswith(b"error -1 the output descriptor is not open for writing"),
          "read-only descriptor: %r" % out)
    # count=1 answers at once, no descriptor involved
    want = len(pcaputil.read_pcap(tcpdump(SMTP))[1])
    out = ask(good.replace(b"count=0", b"count=1"))
    check(out.startswith(b"ok %d " % want), "count request: %r, expected %d packets" % (out, want))
    r = q(arch, "--count", "--point", "smtp")
    check(r.returncode == 0 and r.stdout.strip() == str(want).encode(),
          "after malformed requests: %r" % (r.stdout,))


def test_sigterm(arch, tmp):
    d = Daemon(arch, tmp)
    idle = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)  # connects, says nothing
    idle.connect(os.path.join(arch, "rewindd.sock"))
    p, started = stalled_query(arch)
    check(started, "sigterm: the stalled query never started writing")
    t0 = time.monotonic()
    rc = d.stop()
    took = time.monotonic() - t0
    check(rc == 0, "SIGTERM with a stalled query and an idle connection: rewindd exit %s "
          "after %.1f s" % (rc, took))
    check(b"cut by shutdown" in d.text(), "the daemon did not log the cut query")
    try:
        p.stdout.read()  # let the client see the end
        crc = p.wait(timeout=20)
    except subprocess.TimeoutExpired:
        p.kill()
        crc = None
    err = p.stderr.read()
    check(crc == 1 and b"rewindd stopped while answering" in err,
          "client of a stopped daemon: exit %s, stderr %r" % (crc, err))
    idle.close()
    # kill -9 leaves a stale socket: queries read the archive themselves
    d = Daemon(arch, tmp)
    d.proc.kill()
    d.proc.wait()
    check(os.path.exists(os.path.join(arch, "rewindd.sock")), "expected a stale socket")
    out = os.path.join(tmp, "stale.pcap")
    r = q(arch, "--point", "smtp", "-w", out, "port 25")
    check(r.returncode == 0 and open(out, "rb").read() == tcpdump(SMTP, "port 25"),
          "stale socket: exit %d %r" % (r.returncode, r.stderr))


def test_front(arch, tmp):
    """bin/rewind asks the daemon, then runs rewind-core, which must not ask
    again: a socket that answers every question "busy" is asked once."""
    sock_path = os.path.join(arch, "rewindd.sock")
    if os.path.exists(sock_path):
        os.unlink(sock_path)
    srv = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    srv.bind(sock_path)
    srv.listen(8)
    asked = []

    def serve():
        while True:
            try:
                c, _ = srv.accept()
            except OSError:
                return
            data = c.recv(65536)
            asked.append(data.split(b"\t")[0])
            c.sendall(b"busy\n")
            c.close()
    th = threading.Thread(target=serve, daemon=True)
    th.start()
    r = q(arch, "--count", "--point", "smtp", "port 25")
    want = len(pcaputil.read_pcap(tcpdump(SMTP, "port 25"))[1])
    check(r.returncode == 0 and r.stdout.strip() == str(want).encode(),
          "busy socket: the local answer is %r %r, expected %d" % (r.stdout, r.stderr, want))
    # asked once to answer; then told what was read, for its audit trail
    check(asked == [b"query", b"audit"],
          "the daemon was asked %d times, not once (and told once): %r" % (len(asked), asked))
    # the variable that tells rewind-core not to ask is the front end's alone
    del asked[:]
    env = dict(os.environ, REWIND_DAEMON_ASKED="1")
    r = q(arch, "--count", "--point", "smtp", "port 25", env=env)
    check(r.returncode == 0 and asked == [b"query", b"audit"],
          "with REWIND_DAEMON_ASKED=1 inherited, the daemon was asked %d times" % len(asked))
    # --local never asks for the answer, only reports what it read
    del asked[:]
    r = q(arch, "--local", "--count", "--point", "smtp")
    check(r.returncode == 0 and asked == [b"audit"], "--local asked the daemon: %r" % asked)
    del asked[:]
    # status asks the daemon once (for its live capture state) and reads the
    # archive itself when the daemon is busy
    s = rw("status", "--dir", arch)
    check(s.returncode == 0 and asked == [b"status\n"] and b"smtp" in s.stdout,
          "status with a busy daemon: asked %r, exit %d, %r" % (asked, s.returncode, s.stdout[:200]))
    srv.close()
    os.unlink(sock_path)
    # an installed tree: PREFIX/bin/rewind runs PREFIX/libexec/rewind/rewind-core,
    # where the Makefile's install rule puts it (read with make -n: running it
    # here could rebuild the binaries under test)
    root = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..")
    r = subprocess.run(["make", "-n", "-C", root, "install", "DESTDIR=/D", "PREFIX=/P"],
                       capture_output=True)
    check(re.search(rb"install .*bin/rewind-core /D/P/libexec/rewind/rewind-core", r.stdout) and
          re.search(rb"install .*bin/rewind /D/P/bin/rewind\n", r.stdout),
          "make install does not put rewind in bin and rewind-core in libexec/rewind")
    dest = os.path.join(tmp, "inst")
    os.makedirs(os.path.join(dest, "bin"))
    os.makedirs(os.path.join(dest, "libexec", "rewind"))
    subprocess.run(["cp", REWIND, os.path.join(dest, "bin")])
    subprocess.run(["cp", REWIND + "-core", os.path.join(dest, "libexec", "rewind")])
    inst = os.path.join(dest, "bin", "rewind")
    r = subprocess.run([inst, "query", "--dir", arch, "--count", "--point", "smtp", "port 25"],
                       capture_output=True)
    check(r.returncode == 0 and r.stdout.strip() == str(want).encode(),
          "installed rewind: exit %d %r %r" % (r.returncode, r.stdout, r.stderr))
    # without rewind-core: a clear error, exit 1
    lone = os.path.join(tmp, "lone")
    os.makedirs(lone)
    subprocess.run(["cp", REWIND, lone])
    r = subprocess.run([os.path.join(lone, "rewind"), "status", "--dir", arch],
                       capture_output=True)
    check(r.returncode == 1 and b"cannot find rewind-core" in r.stderr,
          "rewind without rewind-core: exit %d %r" % (r.returncode, r.stderr))


def main():
    tmp = tempfile.mkdtemp(prefix="rewind-ctl-", dir=os.environ.get("REWIND_TMP"))
    arch = os.path.join(tmp, "arch")
    for point, path in (("smtp", SMTP), ("sll", SLL), ("big", BIG)):
        r = rw("import", "--quiet", "--dir", arch, "--point", point, path)
        check(r.returncode == 0, "import %s: %r" % (path, r.stderr))
    d = Daemon(arch, tmp, "--max-queries", "1")
    try:
        test_same_answers(arch, d)
        test_errors(arch, d, tmp)
        test_write_dash(arch, d, tmp)
        test_closed_pipe(arch, d)
        test_stalled_and_busy(arch, d)
        test_protocol(arch, d, tmp)
        test_import_stdin(arch, d, tmp)
    finally:
        rc = d.stop()
    check(rc == 0, "rewindd exit %s" % rc)
    test_sigterm(arch, tmp)
    test_front(arch, tmp)
    if harness.failed:
        print(open(d.log, "rb").read().decode(errors="replace")[-3000:])
    subprocess.run(["rm", "-rf", tmp])
    harness.finish("ctl")


if __name__ == "__main__":
    main()
