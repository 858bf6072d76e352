"""`mxscan report` against a real scan of the test network: the HTML file
is self-contained, its charts carry the numbers of the database, every
domain has a row and every finding a line with its remedy in that domain's
"what to fix" panel (crit, warn, info), text from the servers is escaped;
then the page is opened in headless Chromium (Debian's chromium package),
which renders the charts, filters the table from a #q= link and takes a
screenshot ($MXSCAN_BUILD/report.png, or next to the database)."""
import html.parser
import os
import shutil
import sqlite3
import subprocess
import sys
import tempfile
import unittest

from mxtest import MXSCAN, last_scan, rows, scan

DOMAINS = ["valid.test", "plain.test", "partial.test", "dane.test", "danemismatch.test",
           "stsenforce.test", "ststesting.test", "nullmx.test", "tarpit.test", "tls10.test",
           "rptgood.test"]

CHROMIUM = shutil.which("chromium")

# A finding detail as a hostile server could make it: markup, quotes, an
# escape character and a byte that is not UTF-8.
EVIL = (b"554 <script>document.title='pwned'</script><img src=x onerror=alert(1)> "
        b"\"q\" & 'a' \x1b[31m \xff end\r\n554 lone\rCR")

VOID = {"area", "base", "br", "col", "embed", "hr", "img", "input", "link", "meta", "source",
        "track", "wbr"}


class Node:
    def __init__(self, tag, attrs, parent):
        self.tag, self.attrs, self.parent = tag, dict(attrs), parent
        self.children, self.texts = [], []

    def text(self):
        """All text under this node."""
        out = list(self.texts)
        for c in self.children:
            out.append(c.text())
        return "".join(out)

    def iter(self):
        yield self
        for c in self.children:
            yield from c.iter()

    def find_all(self, tag, cls=None):
        return [n for n in self.iter() if n.tag == tag and
                (cls is None or cls in n.attrs.get("class", "").split())]

    def by_id(self, ident):
        for n in self.iter():
            if n.attrs.get("id") == ident:
                return n
        return None


class Tree(html.parser.HTMLParser):
    """A small DOM of an HTML document, with every tag, attribute and text
    node, and the text of <style> and <script> apart."""

    def __init__(self, text):
        super().__init__(convert_charrefs=True)
        self.root = Node("#root", [], None)
        self.cur = self.root
        self.starttags = []  # (tag, attrs) in document order
        self.data = []       # text nodes outside <style> and <script>
        self.raw = {"style": [], "script": []}
        self.feed(text)
        self.close()

    def handle_starttag(self, tag, attrs):
        self.starttags.append((tag, attrs))
        n = Node(tag, attrs, self.cur)
        self.cur.children.append(n)
        if tag not in VOID:
            self.cur = n

    def handle_startendtag(self, tag, attrs):
        self.starttags.append((tag, attrs))
        self.cur.children.append(Node(tag, attrs, self.cur))

    def handle_endtag(self, tag):
        n = self.cur
        while n is not self.root and n.tag != tag:
            n = n.parent
        if n is not self.root:
            self.cur = n.parent

    def handle_data(self, data):
        if self.cur.tag in self.raw:
            self.raw[self.cur.tag].append(data)
        else:
            self.data.append(data)
        self.cur.texts.append(data)


def bars(tree, chart):
    """The {label: value} of a chart and its data-total."""
    svg = tree.root.by_id("chart-" + chart)
    assert svg is not None, "no chart " + chart
    return ({g.attrs["data-label"]: int(g.attrs["data-value"]) for g in svg.find_all("g", "bar")},
            int(svg.attrs["data-total"]))


def report(db, name="report.html", *args):
    """Writes the report of db next to it; returns the process and the file."""
    out = os.path.join(os.path.dirname(db), name)
    p = subprocess.run([MXSCAN, "report", "-q", db, "-o", out] + list(args),
                       capture_output=True, timeout=120)
    return p, out


def evil_copy(db):
    """A copy of the scan with one more finding of mx-plain.test whose detail is
    hostile markup, as a server's greeting could make it."""
    d = tempfile.mkdtemp(prefix="mxscan-it-")
    evil = os.path.join(d, "evil.db")
    shutil.copy(db, evil)
    con = sqlite3.connect(evil)
    con.execute("INSERT INTO findings (scan_id, host, ip, port, code, severity, detail) "
                "VALUES ((SELECT max(id) FROM scans), 'mx-plain.test', '127.25.0.3', 25, "
                "'smtp.banner.rejected', 'warn', CAST(? AS TEXT))", (EVIL,))
    con.commit()
    con.close()
    return evil


def chromium(*args, timeout=120):
    """Runs headless Chromium as the machine notes say it works as root, on
    a closed network: nothing in the background, a fresh profile."""
    prof = tempfile.mkdtemp(prefix="mxscan-chromium-")
    try:
        cmd = [CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic",
               "--no-first-run", "--disable-background-networking",
               "--disable-component-update", "--disable-sync", "--user-data-dir=" + prof]
        return subprocess.run(cmd + list(args), capture_output=True, timeout=timeout)
    finally:
        shutil.rmtree(prof, ignore_errors=True)


_SCAN = []


def shared_scan():
    """One scan of DOMAINS for both test classes (the scan is the slow part)."""
    if not _SCAN:
        _SCAN.append(scan(DOMAINS + ["--timeout", "2s", "--rate", "0"]))
    return _SCAN[0]


class TestReport(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.res = shared_scan()
        cls.db = cls.res.db
        cls.scan_id = last_scan(cls.db)
        cls.proc, cls.html_path = report(cls.db)
        with open(cls.html_path, encoding="utf-8") as f:
            cls.html = f.read()
        cls.tree = Tree(cls.html)
        cls.evil_db = evil_copy(cls.db)
        cls.evil_proc, cls.evil_path = report(cls.evil_db)
        with open(cls.evil_path, encoding="utf-8") as f:
            cls.evil_html = f.read()

    def test_scan_and_report_ok(self):
        """The scan completes and the report is written with exit status 0."""
        self.assertEqual(self.res.rc, 0, self.res.err)
        self.assertEqual(self.proc.returncode, 0, self.proc.stderr)
        self.assertTrue(self.html.startswith("<!DOCTYPE html>"))
        self.assertTrue(self.html.rstrip().endswith("</html>"))

    def test_self_contained(self):
        """The page loads nothing: every src/href is data: or #..., no tag that fetches,
        no url() or @import in the style, http(s):// only in text, and a CSP that
        forbids every other source."""
        t = self.tree
        fetching = {"iframe", "object", "embed", "img", "audio", "video", "source", "base",
                    "frame", "track", "image", "use", "form"}
        for tag, attrs in t.starttags:
            self.assertNotIn(tag, fetching)
            for k, v in attrs:
                v = v or ""
                if k in ("src", "href", "srcset", "action", "formaction", "poster", "data",
                         "xlink:href", "background", "ping", "manifest"):
                    self.assertTrue(v.startswith("#") or v.startswith("data:"), (tag, k, v))
                self.assertNotIn("http://", v, (tag, k))
                self.assertNotIn("https://", v, (tag, k))
            if tag == "link":
                self.assertEqual(dict(attrs).get("rel"), "icon")
            if tag == "script":
                self.assertNotIn("src", dict(attrs))
        css = "".join(t.raw["style"])
        js = "".join(t.raw["script"])
        for needle in ("url(", "@import", "http:", "https:"):
            self.assertNotIn(needle, css)
        for needle in ("http:", "https:", "fetch(", "XMLHttpRequest", "import("):
            self.assertNotIn(needle, js)
        csp = [dict(a)["content"] for tag, a in t.starttags
               if tag == "meta" and dict(a).get("http-equiv") == "Content-Security-Policy"]
        self.assertEqual(len(csp), 1)
        self.assertIn("default-src 'none'", csp[0])
        self.assertRegex(csp[0], r"script-src 'sha256-[A-Za-z0-9+/]{43}='")

    def test_posture_chart_equals_db(self):
        """The posture chart's numbers are the counts of domains.posture in the database."""
        got, total = bars(self.tree, "posture")
        want = dict(rows(self.db, "SELECT coalesce(posture, 'unknown'), count(*) FROM domains "
                         "WHERE scan_id=? GROUP BY 1", self.scan_id))
        self.assertEqual(got, want)
        self.assertEqual(total, len(DOMAINS))
        for p in ("starttls", "plaintext", "partial", "dane", "broken", "mta-sts", "no-mail",
                  "unreachable", "mta-sts-testing"):
            self.assertIn(p, got)

    def test_other_charts_equal_db(self):
        """TLS version, grade, DANE, MTA-STS and TLSRPT charts count what the base tables
        hold; the DANE adoption chart covers every domain."""
        sid = self.scan_id
        t = self.tree
        self.assertEqual(bars(t, "tls-version")[0], dict(rows(
            self.db, "SELECT coalesce(tls_version, 'no TLS'), count(*) FROM endpoints "
            "WHERE scan_id=? GROUP BY 1", sid)))
        self.assertEqual(bars(t, "grade")[0], dict(rows(
            self.db, "SELECT coalesce(grade, 'not graded'), count(*) FROM endpoints "
            "WHERE scan_id=? GROUP BY 1", sid)))
        self.assertEqual(bars(t, "dane-hosts")[0], dict(rows(
            self.db, "SELECT coalesce(dane, 'not checked'), count(*) FROM hosts "
            "WHERE scan_id=? GROUP BY 1", sid)))
        self.assertEqual(bars(t, "mta-sts")[0], dict(rows(
            self.db, "SELECT coalesce(sts_mode, 'no policy'), count(*) FROM domains "
            "WHERE scan_id=? GROUP BY 1", sid)))
        self.assertEqual(bars(t, "mta-sts")[0].get("enforce"), 1)
        self.assertEqual(bars(t, "mta-sts")[0].get("testing"), 1)
        self.assertEqual(bars(t, "tlsrpt")[0], dict(rows(
            self.db, "SELECT CASE tlsrpt WHEN 1 THEN 'valid' WHEN 0 THEN 'invalid' ELSE 'none' "
            "END, count(*) FROM domains WHERE scan_id=? GROUP BY 1", sid)))
        self.assertGreaterEqual(bars(t, "tlsrpt")[0].get("valid"), 1)  # rptgood.test
        dane, total = bars(t, "dane")
        self.assertEqual(total, len(DOMAINS))
        self.assertEqual(dane.get("every MX"), 2)  # dane.test and danemismatch.test
        self.assertEqual(dane.get("no MX host"), 1)  # nullmx.test
        self.assertEqual(bars(t, "severity")[1], len(DOMAINS))

    def test_domain_rows_and_panels(self):
        """One row per domain with its posture; each panel lists every finding of the
        domain (its own and its MX hosts'), crit before warn before info, each with
        a remedy."""
        bodies = {b.attrs["id"][2:]: b for b in self.tree.root.find_all("tbody", "dom")}
        want = dict(rows(self.db, "SELECT domain, posture FROM domains WHERE scan_id=?",
                         self.scan_id))
        self.assertEqual(set(bodies), set(want))
        rank = {"crit": 0, "warn": 1, "info": 2}
        for dom, body in bodies.items():
            cells = body.find_all("tr", "sum")[0].find_all("td")
            self.assertEqual(cells[0].text(), dom)
            self.assertEqual(cells[1].text(), want[dom])
            found = [(r.find_all("td")[1].text(), r.find_all("td")[0].text(),
                      r.find_all("td")[4].text()) for r in body.find_all("tr", "finding")]
            db_codes = sorted(c for (c,) in rows(
                self.db, "SELECT code FROM domain_findings WHERE scan_id=? AND domain=?",
                self.scan_id, dom))
            self.assertEqual(sorted(c for c, _, _ in found), db_codes, dom)
            sevs = [rank[s] for _, s, _ in found]
            self.assertEqual(sevs, sorted(sevs), dom)
            for code, _, remedy in found:
                self.assertGreater(len(remedy), 20, (dom, code))
                self.assertNotIn("See docs/findings.md", remedy, code)
        plain = [r.find_all("td")[4].text() for r in bodies["plain.test"].find_all("tr", "finding")
                 if r.find_all("td")[1].text() == "smtp.starttls.missing"]
        self.assertEqual(len(plain), 1)
        self.assertIn("STARTTLS", plain[0])
        self.assertIn("smtp.starttls.missing", bodies["plain.test"].attrs["data-k"])
        tarpit = [r.find_all("td")[1].text()
                  for r in bodies["tarpit.test"].find_all("tr", "finding")]
        self.assertIn("smtp.banner.timeout", tarpit)

    def test_escaping(self):
        """A detail with markup from a server is shown as text: the only <script> is the
        page's own, no <img> appears, quotes, the escape character and a non-UTF-8
        byte are shown visibly."""
        self.assertEqual(self.evil_proc.returncode, 0, self.evil_proc.stderr)
        h = self.evil_html
        self.assertEqual(h.count("<script"), 1)
        self.assertNotIn("<img", h)
        self.assertIn("554 &lt;script&gt;document.title=&#39;pwned&#39;&lt;/script&gt;"
                      "&lt;img src=x onerror=alert(1)&gt; &quot;q&quot; &amp; &#39;a&#39; "
                      "\\x1b[31m \\xff end\n554 lone\\x0dCR", h)
        t = Tree(h)
        self.assertEqual(len(t.root.find_all("script")), 1)
        details = [n.text() for n in t.root.find_all("td", "detail")]
        self.assertIn("554 <script>document.title='pwned'</script><img src=x onerror=alert(1)> "
                      "\"q\" & 'a' \\x1b[31m \\xff end\n554 lone\\x0dCR", details)

    def test_cli(self):
        """--help tells the flags, --scan picks a scan (unknown: exit 1), a missing
        database is an error and is not created, -o - writes to stdout,
        --min-severity crit lists only domains with a crit finding."""
        p = subprocess.run([MXSCAN, "report", "--help"], capture_output=True, text=True)
        self.assertEqual(p.returncode, 0)
        for flag in ("--output", "--scan", "--min-severity", "--limit", "--quiet", "#q="):
            self.assertIn(flag, p.stdout)
        p = subprocess.run([MXSCAN, "report", "-q", "--scan", "999", self.db, "-o", "-"],
                           capture_output=True, text=True)
        self.assertEqual(p.returncode, 1)
        self.assertIn("no scan 999", p.stderr)
        missing = os.path.join(tempfile.mkdtemp(prefix="mxscan-it-"), "none.db")
        p = subprocess.run([MXSCAN, "report", missing, "-o", "-"], capture_output=True)
        self.assertEqual(p.returncode, 1)
        self.assertFalse(os.path.exists(missing))
        p = subprocess.run([MXSCAN, "report"], capture_output=True)
        self.assertEqual(p.returncode, 2)
        p = subprocess.run([MXSCAN, "report", "-q", "--scan", str(self.scan_id), self.db,
                            "-o", "-"], capture_output=True, text=True)
        self.assertEqual(p.returncode, 0, p.stderr)
        self.assertEqual(len(Tree(p.stdout).root.find_all("tbody", "dom")), len(DOMAINS))
        p = subprocess.run([MXSCAN, "report", "-q", "--min-severity", "crit", self.db, "-o", "-"],
                           capture_output=True, text=True)
        self.assertEqual(p.returncode, 0, p.stderr)
        listed = {b.attrs["id"][2:] for b in Tree(p.stdout).root.find_all("tbody", "dom")}
        crit = {d for (d,) in rows(self.db, "SELECT domain FROM domains WHERE scan_id=? AND "
                                   "worst_severity='crit'", self.scan_id)}
        self.assertEqual(listed, crit)
        self.assertIn("plain.test", listed)
        self.assertEqual(bars(Tree(p.stdout), "posture")[1], len(DOMAINS))

    def test_limit(self):
        """--limit N lists at most N domains, preferring those with the worst findings,
        says so on the page, and leaves the charts covering the whole scan."""
        sev = dict(rows(self.db, "SELECT domain, worst_severity FROM domains WHERE scan_id=?",
                        self.scan_id))
        bad = {d for d, s in sev.items() if s in ("crit", "warn")}
        crit = {d for d, s in sev.items() if s == "crit"}
        self.assertGreater(len(bad), len(crit))  # the test set has warn-only domains
        for n, want in ((len(bad), bad), (len(bad) - 1, crit), (len(crit) - 1, None)):
            p = subprocess.run([MXSCAN, "report", "-q", "--limit", str(n), self.db, "-o", "-"],
                               capture_output=True, text=True)
            self.assertEqual(p.returncode, 0, p.stderr)
            t = Tree(p.stdout)
            listed = [b.attrs["id"][2:] for b in t.root.find_all("tbody", "dom")]
            if want is None:  # more crit domains than the limit: the first n of them
                want = set(sorted(crit)[:n])
            self.assertEqual(set(listed), want, n)
            note = t.root.by_id("listing").text()
            self.assertIn("--limit %d" % n, note)
            self.assertIn("of the %d domains" % len(DOMAINS), note)
            self.assertEqual(bars(t, "posture")[1], len(DOMAINS))
        p = subprocess.run([MXSCAN, "report", "-q", self.db, "-o", "-"], capture_output=True,
                           text=True)
        self.assertIsNone(Tree(p.stdout).root.by_id("listing"))  # default: all 11 listed
        p = subprocess.run([MXSCAN, "report", "--limit", "-1", self.db, "-o", "-"],
                           capture_output=True)
        self.assertEqual(p.returncode, 2)


@unittest.skipIf(CHROMIUM is None, "chromium is not installed (scripts/deps installs Debian's "
                 "chromium package)")
class TestReportInBrowser(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.res = shared_scan()
        cls.proc, cls.html_path = report(cls.res.db, "browser.html")
        cls.url = "file://" + os.path.abspath(cls.html_path)

    def dom(self, url):
        p = chromium("--dump-dom", url)
        self.assertEqual(p.returncode, 0, p.stderr[-2000:])
        return Tree(p.stdout.decode("utf-8"))

    def test_screenshot(self):
        """Chromium renders the page to a PNG screenshot."""
        build = os.environ.get("MXSCAN_BUILD")
        png = os.path.join(build if build else os.path.dirname(self.res.db), "report.png")
        if os.path.exists(png):
            os.unlink(png)
        p = chromium("--screenshot=" + png, "--window-size=1280,2000", self.url)
        self.assertEqual(p.returncode, 0, p.stderr[-2000:])
        with open(png, "rb") as f:
            head = f.read(24)
        self.assertEqual(head[:8], b"\x89PNG\r\n\x1a\n")
        self.assertEqual(int.from_bytes(head[16:20], "big"), 1280)
        self.assertGreater(os.path.getsize(png), 20000)
        print("\nreport screenshot: " + png, file=sys.stderr)

    def test_charts_render(self):
        """The page's script ran (allowed by the CSP hash) and every chart has a
        non-zero rendered size, with bars."""
        t = self.dom(self.url)
        self.assertEqual(t.root.find_all("html")[0].attrs.get("data-script"), "ran")
        svgs = t.root.find_all("svg", "chart")
        self.assertEqual(len(svgs), 8)
        for s in svgs:
            self.assertGreater(int(s.attrs["data-rendered-width"]), 100, s.attrs["id"])
            self.assertGreater(int(s.attrs["data-rendered-height"]), 20, s.attrs["id"])
            self.assertTrue(s.find_all("g", "bar"), s.attrs["id"])

    def test_search_filters(self):
        """#q=plain.test in the URL pre-fills the search: the plain.test row stays,
        rows that do not match are hidden, and the count says so."""
        t = self.dom(self.url + "#q=plain.test")
        bodies = {b.attrs["id"][2:]: b for b in t.root.find_all("tbody", "dom")}
        self.assertEqual(len(bodies), len(DOMAINS))
        self.assertNotIn("hidden", bodies["plain.test"].attrs)
        for d in ("valid.test", "dane.test", "nullmx.test", "tarpit.test"):
            self.assertIn("hidden", bodies[d].attrs, d)
        visible = [d for d, b in bodies.items() if "hidden" not in b.attrs]
        self.assertEqual(t.root.by_id("shown").text(),
                         "%d of %d domains shown" % (len(visible), len(DOMAINS)))
        # Two words: both must match (posture and code).
        t = self.dom(self.url + "#q=" + "crit%20starttls.missing")
        visible = {b.attrs["id"][2:] for b in t.root.find_all("tbody", "dom")
                   if "hidden" not in b.attrs}
        want = {d for (d,) in rows(self.res.db, "SELECT DISTINCT domain FROM domain_findings "
                                   "WHERE code='smtp.starttls.missing'")}
        self.assertEqual(visible, want)
        self.assertIn("plain.test", visible)

    def test_domain_link_opens_panel(self):
        """#d-<domain> opens that domain's "what to fix" panel; others stay closed."""
        t = self.dom(self.url + "#d-partial.test")
        bodies = {b.attrs["id"][2:]: b for b in t.root.find_all("tbody", "dom")}
        self.assertIn("open", bodies["partial.test"].find_all("details")[0].attrs)
        self.assertNotIn("open", bodies["plain.test"].find_all("details")[0].attrs)

    def test_injected_markup_inert(self):
        """In the browser, a finding detail with <script> and <img onerror> stays text:
        the title is unchanged, the page has only its own script and no image."""
        proc, path = report(evil_copy(self.res.db))
        self.assertEqual(proc.returncode, 0, proc.stderr)
        t = self.dom("file://" + os.path.abspath(path))
        self.assertTrue(t.root.find_all("title")[0].text().startswith("mxscan report: scan"))
        self.assertEqual(len(t.root.find_all("script")), 1)
        self.assertEqual(t.root.find_all("img"), [])
        self.assertEqual(t.root.find_all("html")[0].attrs.get("data-script"), "ran")
        self.assertTrue(any("<script>document.title='pwned'</script>" in n.text()
                            for n in t.root.find_all("td", "detail")))


if __name__ == "__main__":
    unittest.main(verbosity=2)
