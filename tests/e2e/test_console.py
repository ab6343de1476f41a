#!/usr/bin/env python3
"""The web console in a real browser: headless Chromium (Debian chromium and
chromium-driver) driven through chromedriver's W3C WebDriver HTTP API with
urllib (no package beyond python3), against a real rewindd serving real
captures of ../shared/pcaps imported into a temporary archive.

What a user would check, each judged by the API's own answer or by
`rewind query`:
- the files: / and /ui/ with their Content-Type, a strict
  Content-Security-Policy, ETag revalidation, the whole page under 500 KB;
  no path leaves the web root (.., %2e%2e, %00, links in the root);
- the timeline draws, its totals equal /api/v1/timeline's;
- dragging over the chart selects a window: top talkers and the flows table
  become /api/v1/top's and /api/v1/flows' answers for that window, and the
  URL holds window, selection and filter;
- a bad filter shows the server's own message; a good one updates the panels;
- "download pcap" saves the bytes `rewind query` writes for the same window
  and filter (open API: a plain link; with a token: fetched with it);
- a Community ID pasted into the search box finds its flow, and the flow's
  row opens its packets;
- SMTP, VoIP and Cases list what their routes answer, or say honestly that
  this server has no such route (then the check is skipped, with a line);
- with tokens the console asks for one, keeps it out of the URL, and offers
  a viewer no packets and a noc headers only;
- the page asks no other host for anything (every request DevTools saw went
  to the daemon) and logs no errors besides the refusals it asked for.
Screenshots of every tab are saved in the test's temporary directory."""
import base64
import hashlib
import http.client
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.parse
import urllib.request

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "lib"))
import harness  # noqa: E402
from harness import PCAPS, REWINDD, ROOT, check, rw  # noqa: E402

CHROMIUM = os.environ.get("CHROMIUM", "/usr/bin/chromium")
CHROMEDRIVER = os.environ.get("CHROMEDRIVER", "/usr/bin/chromedriver")
ELEM = "element-6066-11e4-a52e-4f735466cecf"
DEADLINE = time.monotonic() + 600  # the whole test, bounded
skipped = []


def left():
    return max(1.0, DEADLINE - time.monotonic())


class WebDriverError(Exception):
    pass


class Browser:
    """One Chromium session through chromedriver's HTTP API."""

    def __init__(self, tmp, name):
        self.port = harness.free_port()
        self.log = open(os.path.join(tmp, "chromedriver-%s.log" % name), "w")
        self.proc = subprocess.Popen([CHROMEDRIVER, "--port=%d" % self.port],
                                     stdout=self.log, stderr=subprocess.STDOUT)
        self.downloads = os.path.join(tmp, "downloads-" + name)
        self.profile = os.path.join(tmp, "profile-" + name)
        os.makedirs(self.downloads)
        for _ in range(200):
            try:
                self.req("GET", "/status")
                break
            except (OSError, WebDriverError):
                time.sleep(0.05)
        caps = {"browserName": "chrome",
                "goog:chromeOptions": {
                    "binary": CHROMIUM,
                    "args": ["--headless=new", "--no-sandbox", "--disable-gpu",
                             "--disable-dev-shm-usage", "--window-size=1400,1000",
                             "--user-data-dir=" + self.profile,
                             "--disable-background-networking", "--no-first-run",
                             "--disable-extensions", "--disable-component-update"],
                    # Several downloads from one tab: what a user allows
                    # when Chromium asks the first time.
                    "prefs": {"download.default_directory": self.downloads,
                              "download.prompt_for_download": False,
                              "profile.default_content_setting_values.automatic_downloads": 1}},
                "goog:loggingPrefs": {"browser": "ALL", "performance": "ALL"}}
        v = self.req("POST", "/session", {"capabilities": {"alwaysMatch": caps}})
        self.sid = v["sessionId"]
        self.cdp("Browser.setDownloadBehavior", {"behavior": "allow",
                                                 "downloadPath": self.downloads})
        self.errors = []    # console entries, kept across reads
        self.requests = []  # URLs the page asked for

    def req(self, method, path, body=None):
        data = None if body is None else json.dumps(body).encode()
        r = urllib.request.Request("http://127.0.0.1:%d%s" % (self.port, path), method=method,
                                   data=data, headers={"Content-Type": "application/json"})
        try:
            with urllib.request.urlopen(r, timeout=min(60, left())) as f:
                return json.loads(f.read())["value"]
        except urllib.error.HTTPError as e:
            raise WebDriverError("%s %s: %s" % (method, path, e.read()[:500]))

    def s(self, method, path, body=None):
        return self.req(method, "/session/%s%s" % (self.sid, path), body)

    def cdp(self, cmd, params):
        return self.s("POST", "/goog/cdp/execute", {"cmd": cmd, "params": params})

    def go(self, url):
        self.s("POST", "/url", {"url": url})

    def js(self, script, *args):
        return self.s("POST", "/execute/sync", {"script": script, "args": list(args)})

    def wait(self, script, what, timeout=30, *args):
        """Poll script until it returns something truthy; None on timeout."""
        end = time.monotonic() + min(timeout, left())
        while time.monotonic() < end:
            v = self.js(script, *args)
            if v:
                return v
            time.sleep(0.1)
        check(False, "timed out waiting for " + what)
        return None

    def el(self, css):
        v = self.s("POST", "/element", {"using": "css selector", "value": css})
        if ELEM not in v:
            raise WebDriverError("element %s: %r" % (css, v))
        return v[ELEM]

    def click(self, css):
        self.s("POST", "/element/%s/click" % self.el(css), {})

    def type(self, css, text):
        e = self.el(css)
        self.s("POST", "/element/%s/clear" % e, {})
        self.s("POST", "/element/%s/value" % e, {"text": text})

    def drag(self, css, x0, x1):
        """Press at x0 and release at x1 (pixels from the element's centre)."""
        e = {ELEM: self.el(css)}
        self.s("POST", "/actions", {"actions": [{
            "type": "pointer", "id": "mouse", "parameters": {"pointerType": "mouse"},
            "actions": [{"type": "pointerMove", "origin": e, "x": x0, "y": 0},
                        {"type": "pointerDown", "button": 0},
                        {"type": "pointerMove", "origin": e, "x": (x0 + x1) // 2, "y": 0,
                         "duration": 100},
                        {"type": "pointerMove", "origin": e, "x": x1, "y": 0, "duration": 100},
                        {"type": "pointerUp", "button": 0}]}]})
        self.s("DELETE", "/actions")

    def screenshot(self, path):
        with open(path, "wb") as f:
            f.write(base64.b64decode(self.s("GET", "/screenshot")))

    def collect(self):
        """Console errors and the URLs requested since the last call."""
        for e in self.s("POST", "/se/log", {"type": "browser"}):
            if e["level"] == "SEVERE":
                self.errors.append(e)
        for e in self.s("POST", "/se/log", {"type": "performance"}):
            m = json.loads(e["message"])["message"]
            if m["method"] == "Network.requestWillBeSent":
                self.requests.append(m["params"]["request"]["url"])

    def clear_downloads(self):
        """Empty the download directory (a file of the same name would be
        overwritten in place); returns the empty set of names there."""
        for f in os.listdir(self.downloads):
            os.unlink(os.path.join(self.downloads, f))
        return set()

    def wait_download(self, before, timeout=60):
        end = time.monotonic() + min(timeout, left())
        while time.monotonic() < end:
            new = [f for f in os.listdir(self.downloads) if f not in before]
            done = [f for f in new if not f.endswith(".crdownload")]
            if done and not [f for f in new if f.endswith(".crdownload")]:
                path = os.path.join(self.downloads, done[0])
                size = os.path.getsize(path)
                time.sleep(0.3)
                if size and size == os.path.getsize(path):
                    return path
            time.sleep(0.1)
        return None

    def quit(self):
        try:
            self.s("DELETE", "")
        except (OSError, WebDriverError):
            pass
        self.proc.terminate()
        try:
            self.proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            self.proc.kill()
        self.log.close()
        shutil.rmtree(self.profile, ignore_errors=True)


class Api:
    def __init__(self, port, token=None):
        self.base = "http://127.0.0.1:%d" % port
        self.token = token

    def get(self, path, method="GET", **params):
        q = urllib.parse.urlencode([(k, v) for k, v in params.items() if v not in (None, "")])
        r = urllib.request.Request(self.base + path + ("?" + q if q else ""), method=method)
        if self.token:
            r.add_header("Authorization", "Bearer " + self.token)
        try:
            with urllib.request.urlopen(r, timeout=min(120, left())) as f:
                return f.status, f.read(), f.headers
        except urllib.error.HTTPError as e:
            return e.code, e.read(), e.headers
        except (urllib.error.URLError, ConnectionError) as e:
            return 0, str(e).encode(), {}

    def json(self, path, **params):
        st, body, _ = self.get(path, **params)
        return st, json.loads(body) if body else None


def raw_get(port, path):
    """A request with the path exactly as written (no client normalising it)."""
    c = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    c.putrequest("GET", path, skip_accept_encoding=True)
    c.endheaders()
    r = c.getresponse()
    body = r.read()
    c.close()
    return r.status, body, r.getheader("Content-Type")


def query_bytes(arch, frm, to, flt, fmt="pcap"):
    args = ["query", "--dir", arch, "--from", frm, "--to", to, "--format", fmt, "-w", "-"]
    r = rw(*(args + ([flt] if flt else [])))
    check(r.returncode == 0, "rewind query %s: %r" % (args, r.stderr[-300:]))
    return r.stdout


# ------------------------------------------------------------------ files

def check_files(api, port, web):
    st, body, h = api.get("/")
    check(st == 200 and body.startswith(b"<!doctype html>"), "/ is the console: %d" % st)
    check(h.get("Content-Type") == "text/html; charset=utf-8", "/ type %s" % h.get("Content-Type"))
    csp = h.get("Content-Security-Policy") or ""
    check("script-src 'self'" in csp and "default-src 'none'" in csp and "unsafe" not in csp,
          "a strict CSP without inline script: %r" % csp)
    check(h.get("X-Content-Type-Options") == "nosniff", "nosniff")
    etag = h.get("ETag")
    r = urllib.request.Request(api.base + "/", headers={"If-None-Match": etag or "x"})
    try:
        code = urllib.request.urlopen(r, timeout=30).status
    except urllib.error.HTTPError as e:
        code = e.code
    check(etag and code == 304, "ETag revalidation: %r gave %d" % (etag, code))
    total = len(body)
    for name, ctype in (("console.js", "text/javascript; charset=utf-8"),
                        ("console.css", "text/css; charset=utf-8"),
                        ("vendor/chart.min.js", "text/javascript; charset=utf-8"),
                        ("favicon.svg", "image/svg+xml")):
        st, b, h = api.get("/ui/" + name)
        check(st == 200 and h.get("Content-Type") == ctype,
              "/ui/%s: %d %s" % (name, st, h.get("Content-Type")))
        with open(os.path.join(web, name), "rb") as f:
            check(b == f.read(), "/ui/%s is the file" % name)
        total += len(b)
    check(total < 500 * 1024, "the page is %d bytes, under 500 KB" % total)
    # Nothing outside the root, however it is spelt; links are not followed
    # (the root of this daemon is a copy holding some).
    for path in ("/ui/../index.html", "/ui/%2e%2e/%2e%2e/%2e%2e/etc/passwd",
                 "/ui/..%2f..%2f..%2fetc%2fpasswd", "/ui/%2e%2e%2fconsole.js",
                 "/ui//etc/passwd", "/ui/console.js%00.png", "/ui/%00/../../etc/passwd",
                 "/ui/link-out.js", "/ui/link-in.js", "/ui/linkdir/passwd", "/ui/.hidden.js",
                 "/ui/vendor/", "/ui/console.js/", "/ui/x/../console.js", "/../etc/passwd",
                 "/ui/nosuch.js", "/ui/secret.bin"):
        st, b, ct = raw_get(port, path)
        check(st == 404 and b"root:" not in b and b"rewind's web console" not in b
              and ct == "application/json", "%s: %d %s %r" % (path, st, ct, b[:80]))
    st, b, _ = raw_get(port, "/ui/%63onsole.js")  # plain letters may be escaped
    check(st == 200 and b.startswith(b"/* console.js"), "/ui/%63onsole.js is console.js")


# -------------------------------------------------------- the open console

def sums(tl):
    return (sum(sum(p["packets"]) for p in tl["points"]), sum(sum(p["bytes"]) for p in tl["points"]))


def flows_in_page(b):
    return b.js("return [...document.querySelectorAll('#flows tbody tr')].map(r => r.dataset.cid)")


def top_in_page(b):
    return b.js("return [...document.querySelectorAll('#top tbody tr')].map(r => "
                "[...r.cells].map(c => c.textContent))")


def wait_panels(b, what):
    """Until the flows and top panels answered (their 'loading…' gone)."""
    return b.wait("return document.getElementById('flows-msg').textContent !== 'loading…' && "
                  "document.getElementById('top-msg').textContent !== 'loading…' && "
                  "document.getElementById('timeline-msg').textContent.indexOf('loading') < 0",
                  what)


def api_top_rows(api, frm, to, flt):
    st, j = api.json("/api/v1/top", **{"from": frm, "to": to, "filter": flt, "by": "src",
                                       "limit": "10"})
    check(st == 200, "top: %d" % st)
    return [[r["address"], "{:,}".format(r["packets"]), "{:,}".format(r["bytes"])]
            for r in (j or {}).get("top", [])]


def api_flow_ids(api, frm, to, flt):
    st, j = api.json("/api/v1/flows", **{"from": frm, "to": to, "filter": flt, "limit": "500"})
    check(st == 200, "flows: %d %r" % (st, j))
    return sorted(f["community_id"] for f in (j or {}).get("flows", []))


def open_console(b, api, arch, tmp, port, shots):
    base = api.base
    st, s = api.json("/api/v1/status")
    svc = [p for p in s["points"] if p["name"] == "svc"][0]
    frm, to = svc["first"][:19] + "Z", "2011-06-24T15:52:10Z"
    b.go(base + "/#from=%s&to=%s" % (frm, to))
    b.wait("return document.body.dataset.ready === '1' && window.rewindConsole.tl", "the console")
    wait_panels(b, "the first panels")
    b.screenshot(os.path.join(shots, "traffic.png"))
    # ---- the timeline draws what /api/v1/timeline answers
    tl = b.js("return window.rewindConsole.tl")
    st, theirs = api.json("/api/v1/timeline", **{"from": frm, "to": to, "step": "%ds" % tl["step"]})
    check(st == 200 and theirs["points"] == [{k: p[k] for k in ("point", "packets", "bytes")}
                                             for p in tl["points"]],
          "the page's timeline is the API's")
    shown = b.js("const d = document.getElementById('timeline-msg').dataset; "
                 "return [Number(d.packets), Number(d.bytes)]")
    check(shown == list(sums(theirs)) and shown[0] == svc["packets"],
          "the timeline's totals %s equal the API's %s" % (shown, sums(theirs)))
    drawn = b.js("const c = window.rewindConsole.chart; return c ? c.data.datasets.map(d => "
                 "d.data.reduce((a, p) => a + p.y, 0) * window.rewindConsole.tl.step) : null")
    check(drawn is not None and round(sum(drawn)) == sums(theirs)[1],
          "the chart's bytes/s times the step add up to the bytes: %s" % drawn)
    check(b.js("return document.getElementById('timeline').width > 100"), "the canvas is drawn")
    # ---- drag a window: the panels become the API's answers for it
    width = b.js("return document.getElementById('timeline').clientWidth")
    b.drag("#timeline", -width // 6, width // 4)
    sel = b.wait("return window.rewindConsole.sel", "a selection after dragging")
    wait_panels(b, "the panels of the selection")
    sf = b.js("return new Date(window.rewindConsole.sel.from).toISOString()")
    stt = b.js("return new Date(window.rewindConsole.sel.to).toISOString()")
    check(sel and sf > frm and stt < to + "Z", "the selection %s..%s is inside the view" % (sf, stt))
    h = b.js("return location.hash")
    check("sfrom=" + urllib.parse.quote(sf, safe="") in h or "sfrom=" + sf.replace(":", "%3A") in h,
          "the URL holds the selection: %s" % h)
    mine, theirs_ids = sorted(flows_in_page(b)), api_flow_ids(api, sf, stt, "")
    st_all = api_flow_ids(api, frm, to, "")
    check(mine == theirs_ids and 0 < len(mine) < len(st_all),
          "the flows table is the selection's flows: %d shown, API %d, view %d"
          % (len(mine), len(theirs_ids), len(st_all)))
    check(top_in_page(b) == api_top_rows(api, sf, stt, ""), "top talkers of the selection: %s vs %s"
          % (top_in_page(b), api_top_rows(api, sf, stt, "")))
    # sorting by a column
    b.click("#flows th[data-k=packets]")
    pk = b.js("return [...document.querySelectorAll('#flows tbody tr')].map(r => "
              "Number(r.cells[8].textContent.replace(/,/g, '')))")
    check(pk == sorted(pk, reverse=True) and len(pk) > 1, "sorted by packets: %s" % pk[:5])
    b.click("#flows th[data-k=packets]")
    pk = b.js("return [...document.querySelectorAll('#flows tbody tr')].map(r => "
              "Number(r.cells[8].textContent.replace(/,/g, '')))")
    check(pk == sorted(pk), "and back")
    # ---- a bad filter shows the server's message, unapplied
    b.type("#filter", "tcp prt 80")
    msg = b.wait("return document.getElementById('filter-msg').textContent", "the filter's error")
    st, j = api.json("/api/v1/timeline", **{"from": "0", "to": "1", "filter": "tcp prt 80",
                                            "step": "1s"})
    check(st == 400 and msg == j["error"]["message"], "the server's message %r shown: %r"
          % (j, msg))
    b.screenshot(os.path.join(shots, "bad-filter.png"))
    check(b.js("return window.rewindConsole.filter") == "", "a bad filter is not applied")
    # ---- a good one (Enter) updates every panel
    flt = "tcp port 80"
    b.type("#filter", flt + "\ue007")
    b.wait("return window.rewindConsole.filter === %s" % json.dumps(flt), "the filter applied")
    b.wait("return document.getElementById('filter-msg').textContent === ''", "no filter error")
    wait_panels(b, "the filtered panels")
    b.wait("return window.rewindConsole.tl && window.rewindConsole.tl.source === 'packets'",
           "the filtered timeline")
    mine = sorted(flows_in_page(b))
    theirs_ids = api_flow_ids(api, sf, stt, flt)
    check(mine == theirs_ids, "filtered flows: %d, API %d" % (len(mine), len(theirs_ids)))
    check(top_in_page(b) == api_top_rows(api, sf, stt, flt), "filtered top talkers")
    check("filter=tcp+port+80" in b.js("return location.hash") or
          "filter=tcp%20port%2080" in b.js("return location.hash"), "the URL holds the filter")
    tlf = b.js("return window.rewindConsole.tl")
    st, tf = api.json("/api/v1/timeline", **{"from": tlf["from"], "to": tlf["to"], "filter": flt,
                                             "step": "%ds" % tlf["step"]})
    check(sums(tf) == tuple(b.js("const d = document.getElementById('timeline-msg').dataset; "
                                 "return [Number(d.packets), Number(d.bytes)]")),
          "the filtered timeline's totals are the API's")
    # ---- download pcap = rewind query
    before = b.clear_downloads()
    b.click("#dl-pcap")
    path = b.wait_download(before)
    want = query_bytes(arch, sf, stt, flt)
    got = open(path, "rb").read() if path else b""
    check(path and got == want and len(want) > 24,
          "download pcap (%d bytes) is rewind query's (%d bytes)" % (len(got), len(want)))
    before = b.clear_downloads()
    b.click("#dl-pcapng")
    path = b.wait_download(before)
    want = query_bytes(arch, sf, stt, flt, "pcapng")
    got = open(path, "rb").read() if path else b""
    check(path and got == want, "download pcapng (%d bytes) is rewind query's (%d bytes)"
          % (len(got), len(want)))
    # ---- a flow's row opens its packets
    b.js("document.querySelector('#flows tbody tr').click()")
    n = b.wait("return document.querySelectorAll('#fd-packets tbody tr').length", "a flow's packets")
    cid = b.js("return document.getElementById('fd-cid').textContent")
    cnt = rw("query", "--dir", arch, "--from", sf, "--to", stt, "--community-id", cid, "--count", flt)
    check(cnt.returncode == 0 and n == int(cnt.stdout.split()[0] if cnt.stdout else -1),
          "the flow's packets listed: %s, rewind query --count: %r" % (n, cnt.stdout))
    b.screenshot(os.path.join(shots, "flow.png"))
    # ---- a Community ID pasted finds its flow (here one of another point,
    # outside the view: the whole archive is searched)
    b.type("#filter", "\ue007")
    b.wait("return window.rewindConsole.filter === ''", "the filter cleared")
    st, j = api.json("/api/v1/flows", point="echo", limit="3")
    target = j["flows"][2]
    b.type("#search", target["community_id"] + "\ue007")
    b.wait("return document.querySelector('#flows tr.hl')", "the flow found")
    hl = b.js("return [...document.querySelectorAll('#flows tr.hl')].map(r => r.dataset.cid)")
    check(hl and set(hl) == {target["community_id"]}, "the row found is the flow: %s" % hl)
    check(target["community_id"] in b.js("return document.getElementById('search-msg').textContent"),
          "the search says what it found")
    b.type("#search", "1:nonsense" + "\ue007")
    check(b.wait("return document.getElementById('search-msg').className === 'error'",
                 "a malformed Community ID refused"), "malformed Community ID")
    # ---- quick picks and the 'all' view
    b.click("#picks button[data-pick=all]")
    check("all=1" in b.js("return location.hash"), "the URL says the whole archive")
    b.wait("return window.rewindConsole.tl && window.rewindConsole.view.from === '' && "
           "window.rewindConsole.tl.from < '2012'", "the whole archive")
    wait_panels(b, "the whole archive's panels")
    tl = b.js("return window.rewindConsole.tl")
    check(sums(tl)[0] == s["total"]["packets"], "all: every packet of the archive on the timeline")
    # ---- the tabs, over the whole archive
    tabs(b, api, s, shots, tl)
    b.click("#picks button[data-pick='900']")
    b.wait("return window.rewindConsole.view.from !== ''", "15 min")
    v = b.js("return window.rewindConsole.view")
    check(abs((time.mktime(time.strptime(v["to"][:19], "%Y-%m-%dT%H:%M:%S")) -
               time.mktime(time.strptime(v["from"][:19], "%Y-%m-%dT%H:%M:%S"))) - 900) < 2
          and v["to"][:10] == s["newest"][:10], "15 min ends at the newest packet: %s" % v)
    return sf, stt


def tabs(b, api, s, shots, tl):
    b.click("#tabs button[data-tab=status]")
    b.wait("return document.querySelectorAll('#points tbody tr').length", "the status tab")
    rows = b.js("return [...document.querySelectorAll('#points tbody tr')].map(r => "
                "[r.cells[0].textContent, r.cells[3].textContent])")
    check(rows == [[p["name"], "{:,}".format(p["packets"])] for p in s["points"]],
          "status lists the points: %s" % rows)
    b.wait("return document.querySelectorAll('#segments tbody tr').length", "the segments")
    b.screenshot(os.path.join(shots, "status.png"))
    for tab, route, key, table in (("smtp", "/api/v1/smtp", "sessions", "smtp"),
                                   ("voip", "/api/v1/voip/calls", "calls", "voip"),
                                   ("cases", "/api/v1/cases", "cases", "cases")):
        w = {} if tab == "cases" else {"from": tl["from"], "to": tl["to"], "limit": "200"}
        st, body, _ = api.get(route, **w)
        b.click("#tabs button[data-tab=%s]" % tab)
        msg = b.wait("const t = document.getElementById('%s-msg').textContent; "
                     "return t !== 'loading…' && t" % table, "the %s tab" % tab)
        b.screenshot(os.path.join(shots, tab + ".png"))
        if st == 404:
            check("not available on this server" in (msg or ""),
                  "%s tab says the route is absent: %r" % (tab, msg))
            skipped.append("%s tab: %s answers 404 on this build, its listing is not checked"
                           % (tab, route))
            continue
        j = json.loads(body) if st == 200 else {key: []}
        want = (sum(max(1, len(x.get("transactions") or [])) for x in j[key]) if tab == "smtp"
                else len(j[key]))
        n = b.js("return document.querySelectorAll('#%s tbody tr').length" % table)
        check(st == 200 and n == want, "%s tab: %d rows, the API's answer %d (%d %s)"
              % (tab, n, want, len(j[key]), key))
        # The first message's .eml, the first call's pcap: the route's bytes.
        link = {"smtp": lambda: [(t["message"]["id"], "/api/v1/smtp/messages/%s.eml"
                                  % urllib.parse.quote(t["message"]["id"], safe=""))
                                 for x in j[key] for t in x.get("transactions") or []
                                 if t.get("message")][:1],
                "voip": lambda: [(c["id"], "/api/v1/voip/calls/%s/pcap"
                                  % urllib.parse.quote(c["id"], safe="")) for c in j[key]][:1],
                "cases": lambda: []}[tab]()
        if st == 200 and link:
            b.clear_downloads()
            b.click("#%s button.link" % table)
            path = b.wait_download(set())
            _, want_bytes, _ = api.get(link[0][1])
            got = open(path, "rb").read() if path else b""
            check(path and got == want_bytes and got, "%s: the first link saves %s (%d bytes, "
                  "the route's %d)" % (tab, link[0][1], len(got), len(want_bytes)))
    b.click("#tabs button[data-tab=traffic]")


# ------------------------------------------------------------ with tokens

def token(arch, name, role):
    r = rw("token", "add", "--dir", arch, "--name", name, "--role", role)
    check(r.returncode == 0, "token add %s: %r" % (name, r.stderr))
    return r.stdout.decode().strip()


def login(b, base, tok):
    b.go(base + "/")
    b.js("sessionStorage.clear()")
    b.go(base + "/")
    b.wait("return !document.getElementById('login').hidden", "the login form")
    b.type("#token", tok + "\ue007")


def tokens(b, api, arch, tmp, shots, sf, stt, port):
    base = api.base
    analyst, viewer, noc = (token(arch, "console-" + r, r) for r in ("analyst", "viewer", "noc"))
    time.sleep(1.2)  # the daemon looks tokens up at most once a second
    b.go(base + "/")
    b.js("sessionStorage.clear()")
    b.go(base + "/")
    b.wait("return !document.getElementById('login').hidden", "a login form once tokens exist")
    check(b.js("return document.querySelectorAll('#tabs button:not([hidden])').length") == 0,
          "nothing offered before signing in")
    b.screenshot(os.path.join(shots, "login.png"))
    b.type("#token", "not-a-token" + "\ue007")
    msg = b.wait("return document.getElementById('login-msg').textContent", "a refused token")
    check(msg and "token" in msg, "a wrong token is refused with the server's message: %r" % msg)
    # analyst: everything of the traffic tab, the download fetched with the token
    login(b, base, analyst)
    b.wait("return document.body.dataset.ready === '1'", "signed in as analyst")
    check(b.js("return sessionStorage.getItem('rewind.token')") == analyst,
          "the token is kept in the tab's session storage")
    check(analyst not in b.js("return location.href"), "and never in the URL")
    check(not b.js("return document.getElementById('downloads').hidden"),
          "an analyst is offered downloads")
    b.go(base + "/#from=%s&to=%s&filter=%s" % (sf, stt, urllib.parse.quote("tcp port 80")))
    b.wait("return document.body.dataset.ready === '1' && window.rewindConsole.tl",
           "a linked view, signed in")
    wait_panels(b, "the analyst's panels")
    check(sorted(flows_in_page(b)) == api_flow_ids(Api(port, analyst),
                                                   b.js("return window.rewindConsole.tl.from"),
                                                   b.js("return window.rewindConsole.tl.to"),
                                                   "tcp port 80"),
          "a link opens its view (window and filter) after signing in")
    before = b.clear_downloads()
    b.click("#dl-pcap")
    path = b.wait_download(before)
    tl = b.js("return window.rewindConsole.tl")
    want = query_bytes(arch, tl["from"], tl["to"], "tcp port 80")
    got = open(path, "rb").read() if path else b""
    check(path and got == want, "with a token, download pcap (%d bytes) is rewind query's (%d)"
          % (len(got), len(want)))
    # viewer: status only, no packets
    login(b, base, viewer)
    b.wait("return document.body.dataset.ready === '1'", "signed in as viewer")
    offered = b.js("return [...document.querySelectorAll('#tabs button:not([hidden])')]"
                   ".map(b => b.dataset.tab)")
    check(offered == ["status"], "a viewer is offered the status only: %s" % offered)
    check(b.js("return document.getElementById('downloads').hidden && "
               "document.getElementById('tab-traffic').hidden"), "a viewer is offered no packets")
    b.screenshot(os.path.join(shots, "viewer.png"))
    st, _, _ = Api(port, viewer).get("/api/v1/packets")
    check(st == 403, "and the server refuses a viewer packets anyway: %d" % st)
    # noc: traffic, packets cut after their headers only
    login(b, base, noc)
    b.wait("return document.body.dataset.ready === '1'", "signed in as noc")
    check(not b.js("return document.getElementById('downloads').hidden"), "a noc gets downloads")
    check("headers only" in b.js("return document.getElementById('dl-note').textContent"),
          "a noc's downloads are headers only")
    b.js("sessionStorage.clear()")
    agency(b, base, arch, port, shots)


def agency(b, base, arch, port, shots):
    """Two cases, an agency token for one: it is offered that case only."""
    admin = token(arch, "console-admin", "admin")
    time.sleep(1.2)
    st, _, _ = Api(port, admin).get("/api/v1/cases")
    if st == 404:
        skipped.append("agency: /api/v1/cases answers 404 on this build, cases are not checked")
        return
    ids = ["LI-console-1", "LI-console-2"]
    for i, cid in enumerate(ids):
        doc = {"id": cid, "authority": "Test Court", "warrant": "W-%d" % i,
               "from": "2011-06-24T15:51:00Z", "to": "2011-06-24T15:53:00Z",
               "targets": [{"ip": "172.16.238.%d" % (131 if i == 0 else 1)}]}
        r = urllib.request.Request("http://127.0.0.1:%d/api/v1/cases" % port, method="POST",
                                   data=json.dumps(doc).encode(),
                                   headers={"Authorization": "Bearer " + admin,
                                            "Content-Type": "application/json"})
        try:
            code = urllib.request.urlopen(r, timeout=min(120, left())).status
        except urllib.error.HTTPError as e:
            code = e.code
        check(code == 201, "case %s made: %d" % (cid, code))
    r = rw("token", "add", "--dir", arch, "--name", "console-agency", "--role", "agency",
           "--case", ids[0])
    check(r.returncode == 0, "agency token: %r" % r.stderr)
    time.sleep(1.2)
    login(b, base, r.stdout.decode().strip())
    b.wait("return document.body.dataset.ready === '1'", "signed in as agency")
    offered = b.js("return [...document.querySelectorAll('#tabs button:not([hidden])')]"
                   ".map(b => b.dataset.tab)")
    check(offered == ["cases"], "an agency is offered its cases only: %s" % offered)
    b.wait("return document.querySelectorAll('#cases tbody tr').length", "the agency's cases")
    rows = b.js("return [...document.querySelectorAll('#cases tbody tr')].map(r => "
                "r.cells[0].textContent)")
    check(rows == [ids[0]], "an agency sees only its case: %s" % rows)
    b.click("#cases tbody tr")
    b.wait("return document.getElementById('cd-evidence-msg').textContent !== '' || "
           "!document.getElementById('cd-evidence').hidden", "the case's detail")
    b.screenshot(os.path.join(shots, "agency.png"))
    if b.js("return document.getElementById('cd-evidence').hidden"):
        skipped.append("evidence bundle: %s" % b.js(
            "return document.getElementById('cd-evidence-msg').textContent"))
        return
    # The bundle saved is the one the server kept in the case's store.
    b.clear_downloads()
    b.click("#cd-evidence")
    path = b.wait_download(set(), timeout=120)
    got = open(path, "rb").read() if path else b""
    kept = os.path.join(arch, "cases", ids[0], "exports")
    names = sorted(os.listdir(kept)) if os.path.isdir(kept) else []
    same = [n for n in names if open(os.path.join(kept, n), "rb").read() == got]
    check(got[257:262] == b"ustar" and len(same) == 1 and b"data/packets.pcapng" in got,
          "export evidence bundle: a tar (%d bytes) equal to the one kept (%s)"
          % (len(got), names))
    b.js("sessionStorage.clear()")


# ------------------------------------------------------------------- main

def main():
    for p in (CHROMIUM, CHROMEDRIVER):
        if not os.path.exists(p):
            print("test_console: %s is missing (make deps installs chromium and "
                  "chromium-driver)" % p)
            sys.exit(1)
    tmp = tempfile.mkdtemp(prefix="rw-console-")
    shots = os.path.join(tmp, "screenshots")
    os.makedirs(shots)
    arch = os.path.join(tmp, "a")
    caps = [("svc", "good/var-services-std-ports.pcap"), ("echo", "good/echo-connections.pcap"),
            ("mail", "app/smtp-attachment.pcap"), ("sip", "app/sip-calls.pcap")]
    for point, f in caps:
        r = rw("import", "--quiet", "--dir", arch, "--point", point, os.path.join(PCAPS, f))
        check(r.returncode == 0, "import %s: %r" % (f, r.stderr[-300:]))
    # The daemon's web root: a copy of web/ with links in it that must not
    # be followed, out of the root and within it, and a file of no known type.
    web = os.path.join(tmp, "web")
    shutil.copytree(os.path.join(ROOT, "web"), web, symlinks=True)
    os.symlink("/etc/passwd", os.path.join(web, "link-out.js"))
    os.symlink("console.js", os.path.join(web, "link-in.js"))
    os.symlink("/etc", os.path.join(web, "linkdir"))
    with open(os.path.join(web, "secret.bin"), "w") as f:
        f.write("not served")
    # A web root without index.html is refused at start, naming the option.
    r = subprocess.run([REWINDD, "--dir", os.path.join(tmp, "none"), "--listen",
                        "127.0.0.1:%d" % harness.free_port(), "--web-root", shots],
                       capture_output=True, timeout=30)
    check(r.returncode == 2 and b"--web-root" in r.stderr and b"index.html" in r.stderr
          and not os.path.exists(os.path.join(tmp, "none")),
          "--web-root without index.html: exit 2 naming it: %r" % r.stderr)
    port = harness.free_port()
    d = subprocess.Popen([REWINDD, "--dir", arch, "--listen", "127.0.0.1:%d" % port, "--log",
                          os.path.join(tmp, "rewindd.log"), "--web-root", web])
    api = Api(port)
    b = None
    try:
        for _ in range(200):
            if api.get("/healthz")[0] == 200:
                break
            time.sleep(0.05)
        check_files(api, port, web)
        b = Browser(tmp, "open")
        sf, stt = open_console(b, api, arch, tmp, port, shots)
        tokens(b, api, arch, tmp, shots, sf, stt, port)
        b.collect()
        base = "http://127.0.0.1:%d/" % port
        foreign = [u for u in b.requests if u.startswith(("http:", "https:", "ws:", "wss:"))
                   and not u.startswith(base)]
        mine = [u for u in b.requests if u.startswith(base)]
        check(len(mine) > 20 and not foreign, "every request went to the daemon (%d); elsewhere: %s"
              % (len(mine), foreign[:5]))
        # The console logs nothing of its own; the browser logs the answers
        # it was refused: the HEAD probes of routes this server lacks (404)
        # or this token may not use (403), the wrong token (401), and the
        # filter check's 400 (a timeline of the empty window [0, 1)).
        def asked(e):
            m = e["message"]
            if e.get("source") != "network" or not m.startswith(base + "api/v1/"):
                return False
            if " 400 (" in m:
                return "/api/v1/timeline?from=0&to=1&" in m
            return any(" %d (" % c in m for c in (401, 403, 404))
        bad = [e for e in b.errors if not asked(e)]
        check(not bad, "no console errors: %s" % bad[:3])
    except WebDriverError as e:
        check(False, "webdriver: %s" % e)
    finally:
        if b:
            b.quit()
        d.terminate()
        check(d.wait(timeout=60) == 0, "rewindd exit status")
    for s in skipped:
        print("SKIP " + s)
    print("test_console: screenshots in %s" % shots)
    harness.finish("test_console")


if __name__ == "__main__":
    main()
