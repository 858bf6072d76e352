/*
 * report.c - `mxscan report`: one scan of a results database as a single
 * self-contained HTML file. The page holds the statistics of the scan as
 * inline SVG bar charts (posture, worst severity, TLS versions, grades,
 * DANE, MTA-STS and TLSRPT adoption), a table of findings by code with a
 * remedy each, and a searchable table of domains where every domain has a
 * "what to fix" panel listing its findings, crit first.
 *
 * The file loads nothing: no external script, style, font or image, and a
 * Content-Security-Policy that only allows the page's own <style> and
 * <script> (by their SHA-256) enforces it in the browser, so even text that
 * slipped past the escaping could not run. Everything that comes from the
 * database is HTML-escaped here, because much of it (greetings, replies,
 * error strings) was written by the servers that were scanned.
 *
 * Large scans: the chart numbers come from GROUP BY queries over the base
 * tables, and the domains with their findings come from one statement that
 * SQLite streams in domain order from its indexes (a merge of three sorted
 * legs); each domain is written as soon as its last finding is read, so
 * memory stays bounded by one domain whatever the size of the scan.
 */
#include <errno.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <openssl/evp.h>
#include <sqlite3.h>

#include "db/db.h"
#include "scanner/strbuf.h"
#include "tools/tools.h"

/* Longest detail shown in a panel; the database keeps the whole text. */
#define DETAIL_MAX 4096
/* Longest search key of one domain (domain, posture, MX hosts, codes). */
#define KEY_MAX 4096
/* Most bars in one chart; further values are summed into "other". */
#define BARS_MAX 16
/* Domains listed by default: about 2.5 KB of HTML each, so some 25 MB. A
 * browser's parser is what limits the page (Chromium parsed such a page in
 * 15 s on a busy 2-core machine), not the writer. */
#define LIMIT_DEFAULT 10000
/* Bytes collected before they are written out. */
#define FLUSH_AT (256 * 1024)

/* The output file and the text waiting to be written to it. */
typedef struct out {
    FILE *f;
    strbuf_t sb;
    int err; /* errno of the first failed write */
} out_t;

/* Writes what is pending; remembers the first error. */
static void out_flush(out_t *o)
{
    if (o->sb.len > 0 && o->err == 0 && fwrite(o->sb.s, 1, o->sb.len, o->f) != o->sb.len) {
        o->err = errno ? errno : EIO;
    }
    o->sb.len = 0;
    if (o->sb.s != NULL) {
        o->sb.s[0] = 0;
    }
}

/* Appends n bytes of s as HTML text, safe both between tags and inside a
 * double- or single-quoted attribute: the five markup characters become
 * entities, control characters and bytes that are not UTF-8 are shown as
 * \xNN, so nothing a server sent can open a tag or end an attribute. */
static void html_putn(strbuf_t *b, const char *s, size_t n)
{
    const unsigned char *p = (const unsigned char *)s;
    size_t i = 0;
    if (s == NULL) {
        return;
    }
    while (i < n) {
        unsigned char c = p[i];
        size_t l;
        switch (c) {
        case '&':
            sb_puts(b, "&amp;");
            i++;
            continue;
        case '<':
            sb_puts(b, "&lt;");
            i++;
            continue;
        case '>':
            sb_puts(b, "&gt;");
            i++;
            continue;
        case '"':
            sb_puts(b, "&quot;");
            i++;
            continue;
        case '\'':
            sb_puts(b, "&#39;");
            i++;
            continue;
        default:
            break;
        }
        if ((c < 0x20 && c != '\n' && c != '\t') || c == 0x7f) {
            if (c != '\r' || i + 1 == n || p[i + 1] != '\n') {
                sb_printf(b, "\\x%02x", c); /* the CR of a CRLF line end is dropped */
            }
            i++;
        } else if ((l = sb_utf8_len(p + i, n - i)) == 0) {
            sb_printf(b, "\\x%02x", c);
            i++;
        } else {
            sb_put(b, s + i, l);
            i += l;
        }
    }
}

/* Appends a C string as HTML text (nothing for NULL). */
static void html_puts(strbuf_t *b, const char *s)
{
    if (s != NULL) {
        html_putn(b, s, strlen(s));
    }
}

/* A text column of the current row, with its length (NULL for SQL NULL). */
static const char *col_text(sqlite3_stmt *st, int i, size_t *n)
{
    const char *s = (const char *)sqlite3_column_text(st, i);
    *n = s ? (size_t)sqlite3_column_bytes(st, i) : 0;
    return s;
}

/* Sort rank of a severity: crit, warn, info, anything else. */
static int sev_rank(const char *s)
{
    if (s == NULL) {
        return 3;
    }
    return strcmp(s, "crit") == 0 ? 0 : strcmp(s, "warn") == 0 ? 1 : strcmp(s, "info") == 0 ? 2 : 3;
}

/* The name of a severity rank. */
static const char *sev_class_name(int rank)
{
    static const char *names[] = {"crit", "warn", "info", "none"};
    return names[rank < 0 || rank > 3 ? 3 : rank];
}

/* The CSS class of a severity: only known names, never the stored text. */
static const char *sev_class(const char *s)
{
    return sev_class_name(sev_rank(s));
}

/* The CSS class of a posture (FINDINGS.md values; "other" otherwise). */
static const char *posture_class(const char *p)
{
    static const char *known[] = {"no-mail",         "dns-error", "unreachable", "broken",
                                  "plaintext",       "partial",   "dane",        "mta-sts",
                                  "mta-sts-testing", "starttls"};
    for (size_t i = 0; p != NULL && i < sizeof known / sizeof *known; i++) {
        if (strcmp(p, known[i]) == 0) {
            return known[i];
        }
    }
    return "other";
}

/* The page's style sheet and script. Both are constant, so the
 * Content-Security-Policy can name them by hash and allow nothing else. */
static const char page_css[] =
    "body{font:14px/1.45 'DejaVu Sans',Arial,sans-serif;color:#1b1b1b;background:#fff;"
    "margin:0 auto;max-width:1260px;padding:14px 22px 40px}"
    "h1{font-size:23px;margin:4px 0}"
    "h2{font-size:17px;margin:26px 0 8px;padding-bottom:4px;border-bottom:1px solid #ddd}"
    "p.meta{margin:2px 0;color:#444}"
    "p.note{background:#fff4e0;border:1px solid #e8b050;padding:6px 10px}"
    "#charts{display:grid;grid-template-columns:repeat(auto-fill,minmax(500px,1fr));gap:14px}"
    "figure{margin:0;border:1px solid #e2e2e2;border-radius:6px;padding:8px 10px}"
    "figcaption{font-weight:bold}"
    "figcaption small{display:block;font-weight:normal;color:#666}"
    "svg.chart{display:block;max-width:100%;height:auto;margin-top:4px}"
    "table{border-collapse:collapse;width:100%}"
    "th,td{text-align:left;padding:3px 7px;vertical-align:top}"
    "thead th{background:#f1f1f1;border-bottom:1px solid #ccc}"
    "td.n,th.n{text-align:right;font-variant-numeric:tabular-nums}"
    "tbody.dom>tr.sum>td{border-top:1px solid #e8e8e8}"
    "tbody.dom>tr.fix>td{padding:0 7px 4px 24px}"
    "td.mx{color:#555;font-size:12px;word-break:break-all}"
    "span.b{display:inline-block;padding:0 7px;border-radius:9px;font-size:12px;"
    "white-space:nowrap}"
    ".s-crit{background:#fbd5d5;color:#8a0e1e}.s-warn{background:#fde9b8;color:#6e4a00}"
    ".s-info{background:#e3ebf7;color:#28467a}.s-none{background:#dff1df;color:#1d5a1d}"
    ".p-dane,.p-mta-sts{background:#cdebc4;color:#17501a}"
    ".p-mta-sts-testing,.p-starttls{background:#dfe9f7;color:#1f3f73}"
    ".p-partial{background:#fde3c0;color:#6b3d00}"
    ".p-plaintext,.p-broken{background:#fbd0d0;color:#7f0a1a}"
    ".p-unreachable,.p-dns-error,.p-no-mail,.p-other{background:#e7e7e7;color:#333}"
    "details>summary{cursor:pointer;color:#333;font-size:13px}"
    "table.findings{margin:4px 0 10px;font-size:13px;background:#fafafa;"
    "border:1px solid #e6e6e6}"
    "table.findings td{border-top:1px solid #eee}"
    "td.code{font-family:'DejaVu Sans Mono',monospace;font-size:12px;white-space:nowrap}"
    "td.where{font-size:12px;color:#444;word-break:break-all;max-width:220px}"
    "td.detail{white-space:pre-wrap;word-break:break-word;font-family:'DejaVu Sans Mono',"
    "monospace;font-size:12px;max-width:380px}"
    "td.remedy{max-width:360px}"
    "#search{position:sticky;top:0;background:#fff;padding:8px 0;z-index:1}"
    "#q{font-size:15px;padding:5px 8px;width:460px;max-width:90%}"
    "#shown{margin-left:10px;color:#555}";

/* Filters the domain table by the words in the search box (every word must
 * occur in a row's data-k) and opens the panel when one row is left, reads
 * a query from #q=... or ?q=... so a link can pre-fill the search, opens the
 * panel of #d-<domain>, and records the
 * rendered size of each chart in data-rendered-width/height. */
static const char page_js[] =
    "(function(){'use strict';"
    "var d=document,q=d.getElementById('q'),shown=d.getElementById('shown'),"
    "rows=d.querySelectorAll('tbody.dom'),keys=[],t=0,i;"
    "for(i=0;i<rows.length;i++)keys.push(rows[i].getAttribute('data-k')||'');"
    "function apply(v){var w=v.toLowerCase().split(/\\s+/).filter(Boolean),n=0,i,j,ok;"
    "for(i=0;i<rows.length;i++){ok=true;"
    "for(j=0;ok&&j<w.length;j++)ok=keys[i].indexOf(w[j])>=0;"
    "if(rows[i].hidden===ok)rows[i].hidden=!ok;if(ok)n++;}"
    "if(n===1&&w.length)for(i=0;i<rows.length;i++)if(!rows[i].hidden){"
    "var p=rows[i].querySelector('details');if(p)p.open=true;}"
    "shown.textContent=n+' of '+rows.length+' domains shown';}"
    "q.addEventListener('input',function(){clearTimeout(t);"
    "t=setTimeout(function(){apply(q.value);try{history.replaceState(null,'',"
    "q.value?'#q='+encodeURIComponent(q.value):location.pathname+location.search);}"
    "catch(e){}},rows.length>5000?250:0);});"
    "function dec(x){try{return decodeURIComponent(x.replace(/\\+/g,' '));}catch(e){return x;}}"
    "function fromUrl(){var h=location.hash.slice(1),m=/(?:^|&)q=([^&]*)/.exec(h)||"
    "/(?:^|&)q=([^&]*)/.exec(location.search.slice(1)),e;"
    "if(m){q.value=dec(m[1]);apply(q.value);}"
    "else if(h.indexOf('d-')===0&&(e=d.getElementById(dec(h)))){"
    "e.hidden=false;if((e=e.querySelector('details')))e.open=true;}}"
    "var s=d.querySelectorAll('svg.chart');for(i=0;i<s.length;i++){"
    "var r=s[i].getBoundingClientRect();"
    "s[i].setAttribute('data-rendered-width',Math.round(r.width));"
    "s[i].setAttribute('data-rendered-height',Math.round(r.height));}"
    "window.addEventListener('hashchange',fromUrl);"
    "apply('');fromUrl();"
    "d.documentElement.setAttribute('data-script','ran');})();";

/* The CSP source of a constant: 'sha256-<base64>'. */
static void csp_hash(char out[80], const char *text)
{
    unsigned char md[EVP_MAX_MD_SIZE];
    unsigned int mdlen = 0;
    char b64[48]; /* 44 characters for 32 bytes, and the NUL */
    if (EVP_Digest(text, strlen(text), md, &mdlen, EVP_sha256(), NULL) != 1) {
        mdlen = 0; /* a hash that matches nothing: the page still shows, minus styles/script */
    }
    EVP_EncodeBlock((unsigned char *)b64, md, (int)mdlen);
    snprintf(out, 80, "'sha256-%s'", mdlen ? b64 : "unavailable");
}

/* One category of a chart: a stored value, its colour, and the label shown. */
typedef struct cat {
    const char *value;
    const char *color;
} cat_t;

/* One bar. */
typedef struct bar {
    char label[64];
    const char *color;
    int64_t n;
} bar_t;

static const cat_t cats_posture[] = {
    {"dane", "#1a7a2e"},     {"mta-sts", "#3f9b3a"},     {"mta-sts-testing", "#8cc56a"},
    {"starttls", "#4a78b8"}, {"partial", "#f0a040"},     {"plaintext", "#d7301f"},
    {"broken", "#99000d"},   {"unreachable", "#9a9a9a"}, {"dns-error", "#7b6ca8"},
    {"no-mail", "#c4c4c4"},  {"unknown", "#dddddd"},
};
static const cat_t cats_sev[] = {
    {"crit", "#c62833"},
    {"warn", "#e8a21c"},
    {"info", "#5b84c4"},
    {"none", "#4a9a4a"},
};
static const cat_t cats_tls[] = {
    {"TLSv1.3", "#1a7a2e"}, {"TLSv1.2", "#6aaa4a"}, {"TLSv1.1", "#f0a040"},
    {"TLSv1", "#e0602a"},   {"SSLv3", "#99000d"},   {"no TLS", "#b0b0b0"},
};
static const cat_t cats_grade[] = {
    {"A", "#1a7a2e"}, {"B", "#7cb850"}, {"C", "#e8c21c"},          {"D", "#f0a040"},
    {"E", "#e0602a"}, {"F", "#c62833"}, {"not graded", "#b0b0b0"},
};
static const cat_t cats_dane_domain[] = {
    {"every MX", "#1a7a2e"},
    {"some MX", "#f0a040"},
    {"none", "#b0b0b0"},
    {"no MX host", "#dddddd"},
};
static const cat_t cats_dane_host[] = {
    {"usable", "#1a7a2e"}, {"unusable", "#d7301f"}, {"bogus", "#99000d"},
    {"none", "#b0b0b0"},   {"insecure", "#d0d0d0"}, {"not checked", "#e8e8e8"},
};
static const cat_t cats_sts[] = {
    {"enforce", "#1a7a2e"},
    {"testing", "#8cc56a"},
    {"none", "#e8c21c"},
    {"no policy", "#b0b0b0"},
};
static const cat_t cats_tlsrpt[] = {
    {"valid", "#1a7a2e"},
    {"invalid", "#d7301f"},
    {"none", "#b0b0b0"},
};

/* A chart: its id, caption, what it counts, and the query that gives
 * (label, count) rows for scan ?1. Every query reads only the base tables
 * (domains, mx, hosts, endpoints), never the views of `mxscan stats`. */
typedef struct chart {
    const char *id, *title, *unit, *sql;
    const cat_t *cats;
    size_t ncats;
} chart_t;

#define CATS(c) c, sizeof c / sizeof *c

static const chart_t charts[] = {
    {"posture", "Domains by posture", "domains",
     "SELECT coalesce(posture, 'unknown'), count(*) FROM domains WHERE scan_id = ?1 GROUP BY 1",
     CATS(cats_posture)},
    {"severity", "Domains by worst finding", "domains",
     "SELECT coalesce(worst_severity, 'none'), count(*) FROM domains WHERE scan_id = ?1 "
     "GROUP BY 1",
     CATS(cats_sev)},
    {"tls-version", "TLS version negotiated", "SMTP endpoints (MX host, IP, port)",
     "SELECT coalesce(tls_version, 'no TLS'), count(*) FROM endpoints WHERE scan_id = ?1 "
     "GROUP BY 1",
     CATS(cats_tls)},
    {"grade", "TLS grade", "SMTP endpoints (MX host, IP, port)",
     "SELECT coalesce(grade, 'not graded'), count(*) FROM endpoints WHERE scan_id = ?1 "
     "GROUP BY 1",
     CATS(cats_grade)},
    {"dane", "DANE adoption: MX hosts with usable TLSA records", "domains",
     "SELECT CASE WHEN n = 0 THEN 'no MX host' WHEN u = n THEN 'every MX' WHEN u > 0 "
     "THEN 'some MX' ELSE 'none' END, count(*) FROM (SELECT d.domain, count(m.host) AS n, "
     "coalesce(sum(h.dane = 'usable'), 0) AS u FROM domains d LEFT JOIN mx m ON "
     "m.scan_id = d.scan_id AND m.domain = d.domain LEFT JOIN hosts h ON h.scan_id = m.scan_id "
     "AND h.host = m.host WHERE d.scan_id = ?1 GROUP BY d.domain) GROUP BY 1",
     CATS(cats_dane_domain)},
    {"dane-hosts", "DANE status of MX hosts", "MX hosts",
     "SELECT coalesce(dane, 'not checked'), count(*) FROM hosts WHERE scan_id = ?1 GROUP BY 1",
     CATS(cats_dane_host)},
    {"mta-sts", "MTA-STS adoption: policy mode", "domains",
     "SELECT coalesce(sts_mode, 'no policy'), count(*) FROM domains WHERE scan_id = ?1 "
     "GROUP BY 1",
     CATS(cats_sts)},
    {"tlsrpt", "TLSRPT adoption: _smtp._tls record", "domains",
     "SELECT CASE tlsrpt WHEN 1 THEN 'valid' WHEN 0 THEN 'invalid' ELSE 'none' END, count(*) "
     "FROM domains WHERE scan_id = ?1 GROUP BY 1",
     CATS(cats_tlsrpt)},
};

/* Reads the bars of a chart: known categories in their order (those with
 * a count only), then other values in the order of their labels. Returns the number of bars,
 * or -1 with the SQLite message in err. */
static int chart_bars(sqlite3 *db, int64_t scan_id, const chart_t *c, bar_t *bars, char *err,
                      size_t errlen)
{
    sqlite3_stmt *st = NULL;
    int nb = 0, rc;
    int64_t other = 0;
    bar_t extra[BARS_MAX];
    int ne = 0;

    for (size_t i = 0; i < c->ncats; i++) {
        snprintf(bars[nb].label, sizeof bars[nb].label, "%s", c->cats[i].value);
        bars[nb].color = c->cats[i].color;
        bars[nb].n = 0;
        nb++;
    }
    if (sqlite3_prepare_v2(db, c->sql, -1, &st, NULL) != SQLITE_OK) {
        snprintf(err, errlen, "chart %s: %s", c->id, sqlite3_errmsg(db));
        return -1;
    }
    sqlite3_bind_int64(st, 1, scan_id);
    while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
        const char *v = (const char *)sqlite3_column_text(st, 0);
        int64_t n = sqlite3_column_int64(st, 1);
        size_t i;
        v = v ? v : "unknown";
        for (i = 0; i < c->ncats && strcmp(v, c->cats[i].value) != 0; i++) {
        }
        if (i < c->ncats) {
            bars[i].n += n;
        } else if (ne < BARS_MAX - (int)c->ncats - 1) {
            snprintf(extra[ne].label, sizeof extra[ne].label, "%s", v);
            extra[ne].color = "#8da0b3";
            extra[ne].n = n;
            ne++;
        } else {
            other += n;
        }
    }
    sqlite3_finalize(st);
    if (rc != SQLITE_DONE) {
        snprintf(err, errlen, "chart %s: %s", c->id, sqlite3_errmsg(db));
        return -1;
    }
    /* Drop empty known categories, keep the order. */
    int k = 0;
    for (int i = 0; i < nb; i++) {
        if (bars[i].n > 0) {
            bars[k++] = bars[i];
        }
    }
    for (int i = 0; i < ne; i++) {
        bars[k++] = extra[i];
    }
    if (other > 0) {
        snprintf(bars[k].label, sizeof bars[k].label, "other");
        bars[k].color = "#8da0b3";
        bars[k].n = other;
        k++;
    }
    return k;
}

/* Writes one chart as an inline SVG bar chart with its numbers: each bar
 * is a <g class="bar"> with data-label and data-value, the <svg> carries
 * id chart-<id>, class chart and data-total, so the numbers can be read
 * back by a program as well as by eye. */
static int chart_write(out_t *o, sqlite3 *db, int64_t scan_id, const chart_t *c, char *err,
                       size_t errlen)
{
    bar_t bars[BARS_MAX + 16];
    int nb = chart_bars(db, scan_id, c, bars, err, errlen);
    if (nb < 0) {
        return -1;
    }
    int64_t total = 0, max = 0;
    for (int i = 0; i < nb; i++) {
        total += bars[i].n;
        max = bars[i].n > max ? bars[i].n : max;
    }
    const int W = 480, LABEL = 130, BAR = 230, ROW = 24;
    int h = nb > 0 ? nb * ROW + 8 : 32;
    strbuf_t *b = &o->sb;
    sb_printf(b, "<figure><figcaption id=\"cap-%s\">%s<small>%lld %s</small></figcaption>\n", c->id,
              c->title, (long long)total, c->unit);
    sb_printf(b,
              "<svg id=\"chart-%s\" class=\"chart\" "
              "data-chart=\"%s\" data-total=\"%lld\" width=\"%d\" height=\"%d\" "
              "viewBox=\"0 0 %d %d\" role=\"img\" aria-labelledby=\"cap-%s\" "
              "font-family=\"DejaVu Sans, Arial, sans-serif\" font-size=\"12\">\n",
              c->id, c->id, (long long)total, W, h, W, h, c->id);
    if (nb == 0) {
        sb_puts(b, "<text x=\"8\" y=\"20\" fill=\"#666\">no data in this scan</text>\n");
    }
    for (int i = 0; i < nb; i++) {
        int y = 4 + i * ROW;
        int w = max > 0 ? (int)((double)bars[i].n * BAR / (double)max + 0.5) : 0;
        double pct = total > 0 ? 100.0 * (double)bars[i].n / (double)total : 0;
        w = w < 2 && bars[i].n > 0 ? 2 : w;
        sb_puts(b, "<g class=\"bar\" data-label=\"");
        html_puts(b, bars[i].label);
        sb_printf(b, "\" data-value=\"%lld\"><title>", (long long)bars[i].n);
        html_puts(b, bars[i].label);
        sb_printf(b, ": %lld of %lld (%.1f%%)</title>", (long long)bars[i].n, (long long)total,
                  pct);
        sb_printf(b, "<text x=\"%d\" y=\"%d\" text-anchor=\"end\" fill=\"#222\">", LABEL - 8,
                  y + 15);
        html_puts(b, bars[i].label);
        sb_printf(b,
                  "</text><rect x=\"%d\" y=\"%d\" width=\"%d\" height=\"18\" rx=\"2\" "
                  "fill=\"%s\"/><text x=\"%d\" y=\"%d\" fill=\"#222\">%lld (%.1f%%)</text></g>\n",
                  LABEL, y + 1, w, bars[i].color, LABEL + w + 6, y + 15, (long long)bars[i].n, pct);
    }
    sb_puts(b, "</svg></figure>\n");
    return 0;
}

/* The scans row the report is about. */
typedef struct scan_info {
    int64_t id, domains, hosts, endpoints, rejected, duplicates;
    double elapsed_s;
    char started[40], ended[40], status[24], version[40];
} scan_info_t;

/* Copies a text column into a fixed buffer ("" for NULL). */
static void col_copy(sqlite3_stmt *st, int i, char *dst, size_t len)
{
    const char *s = (const char *)sqlite3_column_text(st, i);
    snprintf(dst, len, "%s", s ? s : "");
}

/* Finds the scan: the given id, or the latest when id is 0. 1 found, 0 not
 * there, -1 on a database error. */
static int scan_load(sqlite3 *db, int64_t id, scan_info_t *si, char *err, size_t errlen)
{
    sqlite3_stmt *st = NULL;
    const char *sql = "SELECT id, started_at, ended_at, status, version, domains, hosts, "
                      "endpoints, rejected, duplicates, elapsed_s FROM scans "
                      "WHERE id = CASE WHEN ?1 > 0 THEN ?1 ELSE (SELECT max(id) FROM scans) END";
    if (sqlite3_prepare_v2(db, sql, -1, &st, NULL) != SQLITE_OK) {
        snprintf(err, errlen, "%s", sqlite3_errmsg(db));
        return -1;
    }
    sqlite3_bind_int64(st, 1, id);
    int rc = sqlite3_step(st);
    if (rc == SQLITE_ROW) {
        memset(si, 0, sizeof *si);
        si->id = sqlite3_column_int64(st, 0);
        col_copy(st, 1, si->started, sizeof si->started);
        col_copy(st, 2, si->ended, sizeof si->ended);
        col_copy(st, 3, si->status, sizeof si->status);
        col_copy(st, 4, si->version, sizeof si->version);
        si->domains = sqlite3_column_int64(st, 5);
        si->hosts = sqlite3_column_int64(st, 6);
        si->endpoints = sqlite3_column_int64(st, 7);
        si->rejected = sqlite3_column_int64(st, 8);
        si->duplicates = sqlite3_column_int64(st, 9);
        si->elapsed_s = sqlite3_column_double(st, 10);
    } else if (rc != SQLITE_DONE) {
        snprintf(err, errlen, "%s", sqlite3_errmsg(db));
    }
    sqlite3_finalize(st);
    return rc == SQLITE_ROW ? 1 : rc == SQLITE_DONE ? 0 : -1;
}

/* The table of finding codes: severity, domains affected, occurrences
 * (rows of findings: a host finding is stored once per MX host) and the
 * remedy. Domains affected are counted over the domain's own findings and
 * those of its MX hosts, as the domain_findings view defines them. */
static int codes_write(out_t *o, sqlite3 *db, int64_t scan_id, char *err, size_t errlen)
{
    static const char *sql =
        "SELECT code, severity, count(DISTINCT domain), "
        " (SELECT count(*) FROM findings x WHERE x.scan_id = ?1 AND x.code = t.code "
        "  AND x.severity = t.severity) "
        "FROM (SELECT code, severity, domain FROM findings WHERE scan_id = ?1 "
        "      AND domain IS NOT NULL "
        "      UNION ALL "
        "      SELECT f.code, f.severity, m.domain "
        "      FROM findings f CROSS JOIN mx m INDEXED BY mx_host "
        "      ON m.scan_id = f.scan_id AND m.host = f.host "
        "      WHERE f.scan_id = ?1 AND f.domain IS NULL) AS t "
        "GROUP BY code, severity "
        "ORDER BY CASE severity WHEN 'crit' THEN 0 WHEN 'warn' THEN 1 WHEN 'info' THEN 2 "
        "ELSE 3 END, 3 DESC, code";
    sqlite3_stmt *st = NULL;
    int rc, ncodes[4] = {0, 0, 0, 0};
    strbuf_t rows;
    strbuf_t *b = &o->sb;
    if (sqlite3_prepare_v2(db, sql, -1, &st, NULL) != SQLITE_OK) {
        snprintf(err, errlen, "findings by code: %s", sqlite3_errmsg(db));
        return -1;
    }
    sqlite3_bind_int64(st, 1, scan_id);
    sb_init(&rows);
    while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
        const char *code = (const char *)sqlite3_column_text(st, 0);
        const char *sev = (const char *)sqlite3_column_text(st, 1);
        ncodes[sev_rank(sev)]++;
        sb_printf(&rows, "<tr class=\"code-row\"><td><span class=\"b s-%s\">", sev_class(sev));
        html_puts(&rows, sev);
        sb_puts(&rows, "</span></td><td class=\"code\">");
        html_puts(&rows, code);
        sb_printf(&rows,
                  "</td><td class=\"n\">%lld</td><td class=\"n\">%lld</td><td class=\"remedy\">",
                  (long long)sqlite3_column_int64(st, 2), (long long)sqlite3_column_int64(st, 3));
        html_puts(&rows, remedy_for(code));
        sb_puts(&rows, "</td></tr>\n");
    }
    sqlite3_finalize(st);
    if (rc != SQLITE_DONE) {
        snprintf(err, errlen, "findings by code: %s", sqlite3_errmsg(db));
        sb_free(&rows);
        return -1;
    }
    /* Collapsed by default: the domain table is what the page is for, and
     * the summary line already says how many codes of each severity. */
    sb_printf(b,
              "<h2 id=\"codes\">Findings by code</h2>\n<details id=\"code-list\"><summary>"
              "%d crit, %d warn and %d info codes in this scan: the domains each affects and "
              "what to do (show)</summary>\n",
              ncodes[0], ncodes[1], ncodes[2] + ncodes[3]);
    sb_puts(b, "<table id=\"code-table\"><thead><tr><th>severity</th><th>code</th>"
               "<th class=\"n\">domains</th><th class=\"n\">occurrences</th><th>remedy</th>"
               "</tr></thead><tbody>\n");
    sb_put(b, rows.s ? rows.s : "", rows.len);
    if (rows.len == 0) {
        sb_puts(b, "<tr><td colspan=\"5\">no findings in this scan</td></tr>\n");
    }
    sb_puts(b, "</tbody></table></details>\n");
    sb_free(&rows);
    return 0;
}

/* The domain being collected: its summary row is known from its first
 * result row, its findings and search key grow until the next domain. */
typedef struct dom {
    int open, listed;
    char name[256];
    strbuf_t row, key, fix;
    int nfix, nsev[4];
    char top[2][64]; /* the first two codes, for the panel's summary line */
} dom_t;

/* Adds a word to the search key (lower case, each word once, capped). */
static void key_add(dom_t *d, const char *w, size_t n)
{
    char word[300];
    if (w == NULL || n == 0 || n >= sizeof word - 2 || d->key.len + n + 1 > KEY_MAX) {
        return;
    }
    word[0] = ' ';
    for (size_t i = 0; i < n; i++) {
        char c = w[i];
        word[i + 1] = c >= 'A' && c <= 'Z' ? (char)(c - 'A' + 'a') : c;
    }
    word[n + 1] = ' ';
    word[n + 2] = 0;
    /* The key is " w1 w2 ... " with a trailing space, so " w " finds a whole word. */
    if (d->key.s != NULL && strstr(d->key.s, word) != NULL) {
        return;
    }
    if (d->key.len == 0) {
        sb_putc(&d->key, ' ');
    }
    sb_put(&d->key, word + 1, n + 1);
}

/* Writes the collected domain to the output and resets the collector. */
static void dom_flush(out_t *o, dom_t *d)
{
    strbuf_t *b = &o->sb;
    if (!d->open) {
        return;
    }
    d->open = 0;
    if (d->listed) {
        sb_puts(b, "<tbody class=\"dom\" id=\"d-");
        html_puts(b, d->name);
        sb_puts(b, "\" data-k=\"");
        html_puts(b, d->key.s);
        sb_puts(b, "\">\n");
        sb_put(b, d->row.s, d->row.len);
        if (d->nfix > 0) {
            sb_puts(b, "<tr class=\"fix\"><td colspan=\"7\"><details><summary>What to fix: ");
            html_puts(b, d->top[0]);
            if (d->nfix > 1) {
                sb_puts(b, ", ");
                html_puts(b, d->top[1]);
            }
            if (d->nfix > 2) {
                sb_printf(b, " and %d more", d->nfix - 2);
            }
            sb_printf(b, " (%d crit, %d warn, %d info)</summary>\n", d->nsev[0], d->nsev[1],
                      d->nsev[2]);
            sb_puts(b, "<table class=\"findings\"><thead><tr><th>severity</th><th>code</th>"
                       "<th>where</th><th>detail</th><th>remedy</th></tr></thead><tbody>\n");
            sb_put(b, d->fix.s, d->fix.len);
            sb_puts(b, "</tbody></table></details></td></tr>\n");
        }
        sb_puts(b, "</tbody>\n");
    }
    d->row.len = d->key.len = d->fix.len = 0;
    if (d->key.s != NULL) {
        d->key.s[0] = 0;
    }
}

/* Starts a domain from its summary row (columns 0, 2..7 of the stream). */
static void dom_start(dom_t *d, sqlite3_stmt *st, int min_rank)
{
    size_t n, pn, wn, mn;
    const char *name = col_text(st, 0, &n);
    const char *posture = col_text(st, 2, &pn);
    const char *worst = col_text(st, 3, &wn);
    const char *mx = col_text(st, 7, &mn);
    strbuf_t *b = &d->row;

    d->open = 1;
    d->listed = sev_rank(worst) <= min_rank;
    d->nfix = 0;
    memset(d->nsev, 0, sizeof d->nsev);
    if (!d->listed) {
        return;
    }
    snprintf(d->name, sizeof d->name, "%.*s", (int)n, name ? name : "");
    key_add(d, name, n);
    key_add(d, posture, pn);
    key_add(d, sev_class(worst), strlen(sev_class(worst)));
    for (const char *p = mx; p != NULL && p < mx + mn;) {
        const char *sp = memchr(p, ' ', (size_t)(mx + mn - p));
        size_t l = sp ? (size_t)(sp - p) : (size_t)(mx + mn - p);
        key_add(d, p, l);
        p = sp ? sp + 1 : NULL;
    }
    sb_puts(b, "<tr class=\"sum\"><td class=\"dn\"><a href=\"#d-");
    html_puts(b, d->name);
    sb_puts(b, "\">");
    html_puts(b, d->name);
    sb_printf(b, "</a></td><td><span class=\"b p-%s\">", posture_class(posture));
    html_putn(b, posture ? posture : "unknown", posture ? pn : 7);
    sb_printf(b, "</span></td><td><span class=\"b s-%s\">%s</span></td>", sev_class(worst),
              sev_class(worst));
    sb_printf(b, "<td class=\"n\">%lld</td><td class=\"n\">%lld</td><td class=\"n\">%lld</td>",
              (long long)sqlite3_column_int64(st, 4), (long long)sqlite3_column_int64(st, 5),
              (long long)sqlite3_column_int64(st, 6));
    sb_puts(b, "<td class=\"mx\">");
    html_putn(b, mx, mn);
    sb_puts(b, "</td></tr>\n");
}

/* Adds one finding (columns 8..14 of the stream) to the domain's panel. */
static void dom_finding(dom_t *d, sqlite3_stmt *st)
{
    size_t cn, sn, hn, in, dn;
    const char *code = col_text(st, 9, &cn);
    const char *sev = col_text(st, 10, &sn);
    const char *host = col_text(st, 11, &hn);
    const char *ip = col_text(st, 12, &in);
    const char *detail = col_text(st, 14, &dn);
    int r = sev_rank(sev);
    strbuf_t *b = &d->fix;

    if (d->nfix < 2) {
        snprintf(d->top[d->nfix], sizeof d->top[0], "%.*s", (int)cn, code ? code : "");
    }
    d->nfix++;
    d->nsev[r]++;
    key_add(d, code, cn);
    key_add(d, host, hn);
    sb_printf(b, "<tr class=\"finding f-%s\"><td><span class=\"b s-%s\">", sev_class(sev),
              sev_class(sev));
    html_putn(b, sev, sn);
    sb_puts(b, "</span></td><td class=\"code\">");
    html_putn(b, code, cn);
    sb_puts(b, "</td><td class=\"where\">");
    if (host == NULL) {
        sb_puts(b, "domain");
    } else {
        html_putn(b, host, hn);
    }
    if (ip != NULL) {
        int v6 = memchr(ip, ':', in) != NULL;
        sb_puts(b, v6 ? " [" : " ");
        html_putn(b, ip, in);
        sb_puts(b, v6 ? "]" : "");
        if (sqlite3_column_type(st, 13) != SQLITE_NULL) {
            sb_printf(b, ":%lld", (long long)sqlite3_column_int64(st, 13));
        }
    }
    sb_puts(b, "</td><td class=\"detail\">");
    if (dn > DETAIL_MAX) {
        size_t cut = DETAIL_MAX;
        while (cut > 0 && ((unsigned char)detail[cut] & 0xc0) == 0x80) {
            cut--; /* do not split a UTF-8 character */
        }
        html_putn(b, detail, cut);
        sb_printf(b, "\xe2\x80\xa6 (%zu bytes; the database has the whole text)", dn);
    } else {
        html_putn(b, detail, dn);
    }
    sb_puts(b, "</td><td class=\"remedy\">");
    html_puts(b, remedy_for(code));
    sb_puts(b, "</td></tr>\n");
}

/* Every domain of the scan with its findings, in domain order, as one
 * statement: the summary row of each domain (part 0), then its own
 * findings and those of its MX hosts (part 1) sorted crit, warn, info.
 * SQLite merges three legs that each come in domain order: the domains
 * primary key; findings_domain (only the findings of one domain are
 * sorted by severity at a time); and the MX host findings joined to the
 * domains of each host through the mx_host index, which SQLite sorts
 * (in bounded memory, spilling to temporary files). That last leg is
 * driven from the host findings on purpose: looking host findings up per
 * mx row would also visit every domain-level finding that names a popular
 * host (sts.mx.mismatch of thousands of domains on one MX), for each of
 * the domains using that host, which grows with the square of the scan. */
static const char stream_sql[] =
    "SELECT d.domain, 0, d.posture, d.worst_severity, d.n_crit, d.n_warn, d.n_info, "
    "  (SELECT group_concat(host, ' ') FROM (SELECT host FROM mx WHERE mx.scan_id = d.scan_id "
    "   AND mx.domain = d.domain ORDER BY preference, host)), "
    "  NULL, NULL, NULL, NULL, NULL, NULL, NULL "
    "FROM domains d WHERE d.scan_id = ?1 "
    "UNION ALL "
    "SELECT f.domain, 1, NULL, NULL, NULL, NULL, NULL, NULL, "
    "  CASE f.severity WHEN 'crit' THEN 0 WHEN 'warn' THEN 1 WHEN 'info' THEN 2 ELSE 3 END, "
    "  f.code, f.severity, f.host, f.ip, f.port, f.detail "
    "FROM findings f WHERE f.scan_id = ?1 AND f.domain IS NOT NULL "
    "UNION ALL "
    "SELECT m.domain, 1, NULL, NULL, NULL, NULL, NULL, NULL, "
    "  CASE f.severity WHEN 'crit' THEN 0 WHEN 'warn' THEN 1 WHEN 'info' THEN 2 ELSE 3 END, "
    "  f.code, f.severity, f.host, f.ip, f.port, f.detail "
    "FROM findings f CROSS JOIN mx m INDEXED BY mx_host ON m.scan_id = f.scan_id "
    "  AND m.host = f.host "
    "WHERE f.scan_id = ?1 AND f.domain IS NULL "
    "ORDER BY 1, 2, 9, 10, 12, 13, 14";

/* Which domains the table lists: those whose worst severity ranks at most
 * rank (3 = every domain), and of those the first cap (0 = all). */
typedef struct listing {
    int rank, user_rank;
    int64_t cap, limit, matching, total;
} listing_t;

/* Streams the domain table. Returns the number of domains listed, or -1. */
static int64_t domains_write(out_t *o, sqlite3 *db, int64_t scan_id, const listing_t *ls, int quiet,
                             char *err, size_t errlen)
{
    sqlite3_stmt *st = NULL;
    dom_t d;
    progress_t p;
    int rc;
    int64_t listed = 0;

    if (sqlite3_prepare_v2(db, stream_sql, -1, &st, NULL) != SQLITE_OK) {
        snprintf(err, errlen, "domains: %s", sqlite3_errmsg(db));
        return -1;
    }
    sqlite3_bind_int64(st, 1, scan_id);
    memset(&d, 0, sizeof d);
    sb_init(&d.row);
    sb_init(&d.key);
    sb_init(&d.fix);
    progress_start(&p, "writing report", (uint64_t)ls->total, quiet);
    while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
        size_t n;
        const char *name = col_text(st, 0, &n);
        if (sqlite3_column_int(st, 1) == 0) {
            dom_flush(o, &d);
            if (ls->cap > 0 && listed == ls->cap) {
                rc = SQLITE_DONE; /* the rest would not be listed */
                break;
            }
            dom_start(&d, st, ls->rank);
            listed += d.listed;
            progress_add(&p, 1);
            if (o->sb.len >= FLUSH_AT) {
                out_flush(o);
            }
        } else if (d.open && d.listed && name != NULL && strlen(d.name) == n &&
                   memcmp(d.name, name, n) == 0) {
            dom_finding(&d, st);
        }
        /* A finding of a domain that has no domains row cannot be shown: skipped. */
    }
    dom_flush(o, &d);
    progress_end(&p);
    if (rc != SQLITE_DONE) {
        snprintf(err, errlen, "domains: %s", sqlite3_errmsg(db));
        listed = -1;
    }
    sqlite3_finalize(st);
    sb_free(&d.row);
    sb_free(&d.key);
    sb_free(&d.fix);
    return listed;
}

/* Decides what the domain table lists: the domains of --min-severity, and
 * when they are more than --limit, only those of the worst severities that
 * fit (crit and warn, else crit), else the first --limit of them. The
 * statistics always cover the whole scan; a page of hundreds of thousands
 * of rows would be too big for a browser to open. */
static int listing_plan(sqlite3 *db, int64_t scan_id, int user_rank, int64_t limit, listing_t *ls,
                        char *err, size_t errlen)
{
    sqlite3_stmt *st = NULL;
    int64_t count[4] = {0, 0, 0, 0}, cum = 0;
    int rc;
    if (sqlite3_prepare_v2(db,
                           "SELECT worst_severity, count(*) FROM domains WHERE scan_id = ?1 "
                           "GROUP BY 1",
                           -1, &st, NULL) != SQLITE_OK) {
        snprintf(err, errlen, "domains: %s", sqlite3_errmsg(db));
        return -1;
    }
    sqlite3_bind_int64(st, 1, scan_id);
    while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
        count[sev_rank((const char *)sqlite3_column_text(st, 0))] += sqlite3_column_int64(st, 1);
    }
    sqlite3_finalize(st);
    if (rc != SQLITE_DONE) {
        snprintf(err, errlen, "domains: %s", sqlite3_errmsg(db));
        return -1;
    }
    memset(ls, 0, sizeof *ls);
    ls->user_rank = ls->rank = user_rank;
    ls->limit = limit;
    ls->total = count[0] + count[1] + count[2] + count[3];
    for (int r = 0; r <= user_rank; r++) {
        cum += count[r];
    }
    while (limit > 0 && cum > limit && ls->rank > 0) {
        cum -= count[ls->rank--];
    }
    ls->matching = cum;
    ls->cap = limit > 0 && cum > limit ? limit : 0;
    return 0;
}

/* Writes the whole page. Returns 0, or -1 with err. */
static int report_write(out_t *o, sqlite3 *db, const scan_info_t *si, int min_rank, int64_t limit,
                        int quiet, const char *db_path, char *err, size_t errlen)
{
    char css_h[80], js_h[80], now[32];
    strbuf_t *b = &o->sb;
    listing_t ls;
    static const char *listed_as[] = {"a crit finding", "a crit or warn finding",
                                      "a finding of any severity", ""};

    if (listing_plan(db, si->id, min_rank, limit, &ls, err, errlen) < 0) {
        return -1;
    }
    int64_t total = ls.total;

    csp_hash(css_h, page_css);
    csp_hash(js_h, page_js);
    db_now_iso(now);
    sb_printf(b,
              "<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n"
              "<meta http-equiv=\"Content-Security-Policy\" content=\"default-src 'none'; "
              "style-src %s; script-src %s; img-src data:; base-uri 'none'; "
              "form-action 'none'\">\n"
              "<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\n"
              "<meta name=\"generator\" content=\"mxscan %s\">\n"
              "<link rel=\"icon\" href=\"data:,\">\n"
              "<title>mxscan report: scan %lld</title>\n<style>%s</style>\n</head>\n<body>\n",
              css_h, js_h, MXSCAN_VERSION, (long long)si->id, page_css);
    sb_printf(b, "<header>\n<h1>mxscan report: scan %lld</h1>\n<p class=\"meta\">Database ",
              (long long)si->id);
    html_puts(b, db_path);
    sb_puts(b, ", scan started ");
    html_puts(b, si->started);
    if (si->ended[0]) {
        sb_puts(b, ", ended ");
        html_puts(b, si->ended);
    }
    sb_puts(b, ", status <b>");
    html_puts(b, si->status);
    sb_puts(b, "</b>, written by mxscan ");
    html_puts(b, si->version);
    sb_puts(b, ".</p>\n");
    sb_printf(b,
              "<p class=\"meta\">%lld domains, %lld MX hosts, %lld SMTP endpoints, "
              "%lld rejected input lines, %lld duplicates",
              (long long)total, (long long)si->hosts, (long long)si->endpoints,
              (long long)si->rejected, (long long)si->duplicates);
    if (si->elapsed_s > 0) {
        sb_printf(b, ", %.1f s", si->elapsed_s);
    }
    sb_printf(b, ". Report written %s by mxscan %s.</p>\n", now, MXSCAN_VERSION);
    if (strcmp(si->status, "done") != 0) {
        sb_puts(b, "<p class=\"note\">This scan did not finish (status ");
        html_puts(b, si->status);
        sb_puts(b, "): the numbers cover the domains it completed.</p>\n");
    }
    sb_puts(b, "<nav><p class=\"meta\"><a href=\"#stats\">Statistics</a> | <a href=\"#codes\">"
               "Findings by code</a> | <a href=\"#domains\">Domains</a></p></nav>\n");
    sb_puts(b, "</header>\n<h2 id=\"stats\">Statistics</h2>\n<section id=\"charts\">\n");
    for (size_t i = 0; i < sizeof charts / sizeof *charts; i++) {
        if (chart_write(o, db, si->id, &charts[i], err, errlen) < 0) {
            return -1;
        }
    }
    sb_puts(b, "</section>\n");
    if (codes_write(o, db, si->id, err, errlen) < 0) {
        return -1;
    }
    out_flush(o);

    sb_printf(b, "<h2 id=\"domains\">Domains</h2>\n");
    if (ls.rank < 3 || ls.cap > 0) {
        int64_t shown = ls.cap > 0 ? ls.cap : ls.matching;
        sb_printf(b, "<p class=\"note\" id=\"listing\">Listed: %lld of the %lld domains",
                  (long long)shown, (long long)ls.total);
        if (ls.rank < 3) {
            sb_printf(b, ", those with %s (%lld)", listed_as[ls.rank], (long long)ls.matching);
        }
        if (ls.cap > 0) {
            sb_printf(b, ", the first %lld of them in alphabetical order", (long long)ls.cap);
        }
        sb_puts(b, " (");
        if (ls.rank < ls.user_rank || ls.cap > 0) {
            sb_printf(b, "--limit %lld", (long long)ls.limit);
        }
        if (ls.user_rank < 3) {
            sb_printf(b, "%s--min-severity %s", ls.rank < ls.user_rank || ls.cap > 0 ? ", " : "",
                      sev_class_name(ls.user_rank));
        }
        sb_puts(b, "). The statistics above cover every domain; mxscan export gives them "
                   "all.</p>\n");
    }
    sb_puts(b, "<div id=\"search\"><input id=\"q\" type=\"search\" autocomplete=\"off\" "
               "placeholder=\"filter: domain, posture, severity, code, MX host\" "
               "aria-label=\"filter the domains\"><span id=\"shown\"></span></div>\n"
               "<table id=\"domain-table\"><thead><tr><th>domain</th><th>posture</th>"
               "<th>worst</th><th class=\"n\">crit</th><th class=\"n\">warn</th>"
               "<th class=\"n\">info</th><th>MX hosts</th></tr></thead>\n");
    int64_t listed = domains_write(o, db, si->id, &ls, quiet, err, errlen);
    if (listed < 0) {
        return -1;
    }
    sb_puts(b, "</table>\n");
    if (listed == 0) {
        sb_puts(b, "<p>No domain to list.</p>\n");
    }
    sb_printf(b, "<script>%s</script>\n</body>\n</html>\n", page_js);
    out_flush(o);
    if (b->oom) {
        snprintf(err, errlen, "out of memory");
        return -1;
    }
    return 0;
}

/* Prints the usage of `mxscan report`. */
static void usage(FILE *f)
{
    fprintf(f,
            "usage: mxscan report [options] DB\n"
            "\n"
            "Writes one scan of the results database DB as a single self-contained HTML\n"
            "file. It loads nothing (no script, style, font or image from outside the\n"
            "file; a Content-Security-Policy forbids it) and opens in any browser, also\n"
            "offline.\n"
            "\n"
            "The page shows the scan (when, status, counts); bar charts (inline SVG) of\n"
            "domains by posture and by worst finding, SMTP endpoints by TLS version and\n"
            "by grade, DANE adoption (domains whose MX hosts have usable TLSA records,\n"
            "and MX hosts by DANE status), MTA-STS policy mode and TLSRPT records; the\n"
            "finding codes with the domains each affects and a one-line remedy; and a\n"
            "table of domains (posture, worst severity, counts, MX hosts) with a search\n"
            "box and, per domain, a \"what to fix\" panel listing its findings, crit,\n"
            "warn, then info, each with where, detail and remedy. Append #q=WORDS to the\n"
            "file's URL to open it filtered, #d-DOMAIN to open one domain's panel.\n"
            "\n"
            "options:\n"
            "  -o, --output FILE      the HTML file to write (default: report.html), '-'\n"
            "                         for stdout; a file is written under a temporary\n"
            "                         name and renamed when complete\n"
            "      --scan ID          the scan to report (default: the latest)\n"
            "      --min-severity S   list only domains whose worst finding is S or worse\n"
            "                         (crit, warn or info; default: every domain)\n"
            "      --limit N          list at most N domains (default %d, 0 = no limit):\n"
            "                         when more match, only those with crit or warn\n"
            "                         findings, or with crit, are listed if they fit,\n"
            "                         else the first N in alphabetical order; the page\n"
            "                         says what it lists. About 2.5 KB of HTML per domain\n"
            "  -q, --quiet            no progress line, no closing message\n"
            "  -h, --help             this help\n"
            "\n"
            "The charts and the table of codes always cover the whole scan. Domains are\n"
            "read from the database as one stream and written as they come, so memory\n"
            "stays small for any scan.\n"
            "\n"
            "Exit status: 0 written, 1 error (database, no such scan, write), 2 usage.\n",
            LIMIT_DEFAULT);
}

/* Parses the scan id of --scan. */
static int64_t scan_arg(const char *v)
{
    char *end;
    errno = 0;
    long long n = strtoll(v, &end, 10);
    return errno || end == v || *end || n < 1 ? -1 : (int64_t)n;
}

/* `mxscan report`. */
int cmd_report(int argc, char **argv)
{
    enum { O_SCAN = 256, O_MIN_SEV, O_LIMIT };
    static const struct option opts[] = {
        {"output", required_argument, 0, 'o'},
        {"scan", required_argument, 0, O_SCAN},
        {"min-severity", required_argument, 0, O_MIN_SEV},
        {"limit", required_argument, 0, O_LIMIT},
        {"quiet", no_argument, 0, 'q'},
        {"help", no_argument, 0, 'h'},
        {0, 0, 0, 0},
    };
    const char *out_path = "report.html";
    int64_t scan_id = 0, limit = LIMIT_DEFAULT;
    int quiet = 0, min_rank = 3, opt;
    char err[512];

    optind = 1;
    while ((opt = getopt_long(argc, argv, "o:qh", opts, NULL)) != -1) {
        switch (opt) {
        case 'o':
            out_path = optarg;
            break;
        case O_SCAN:
            if ((scan_id = scan_arg(optarg)) < 0) {
                fprintf(stderr, "mxscan report: --scan wants a scan id (1, 2, ...), not '%s'\n",
                        optarg);
                return 2;
            }
            break;
        case O_MIN_SEV:
            min_rank = sev_rank(optarg);
            if (min_rank == 3) {
                fprintf(stderr,
                        "mxscan report: --min-severity wants crit, warn or info, not '%s'\n",
                        optarg);
                return 2;
            }
            break;
        case O_LIMIT: {
            char *end;
            errno = 0;
            long long n = strtoll(optarg, &end, 10);
            if (errno || end == optarg || *end || n < 0) {
                fprintf(stderr,
                        "mxscan report: --limit wants a number of domains (0 = all), "
                        "not '%s'\n",
                        optarg);
                return 2;
            }
            limit = (int64_t)n;
            break;
        }
        case 'q':
            quiet = 1;
            break;
        case 'h':
            usage(stdout);
            return 0;
        default:
            fprintf(stderr, "try 'mxscan report --help'\n");
            return 2;
        }
    }
    if (argc - optind != 1) {
        fprintf(stderr, "mxscan report: %s; see 'mxscan report --help'\n",
                argc - optind < 1 ? "give the results database" : "give one database only");
        return 2;
    }
    const char *db_path = argv[optind];
    /* db_open() would create a missing file: a report of nothing is a typo. */
    if (access(db_path, R_OK) != 0) {
        fprintf(stderr, "mxscan report: %s: %s\n", db_path, strerror(errno));
        return 1;
    }
    db_t *db = db_open(db_path, err, sizeof err);
    if (db == NULL) {
        fprintf(stderr, "mxscan report: %s\n", err);
        return 1;
    }
    sqlite3 *h = db_handle(db);
    scan_info_t si;
    /* One read transaction: the charts, the codes and the table all see the
     * same snapshot even if a scan is still writing to the file (WAL). */
    if (sqlite3_exec(h, "BEGIN", NULL, NULL, NULL) != SQLITE_OK) {
        fprintf(stderr, "mxscan report: %s: %s\n", db_path, sqlite3_errmsg(h));
        db_close(db);
        return 1;
    }
    int found = scan_load(h, scan_id, &si, err, sizeof err);
    if (found <= 0) {
        if (found < 0) {
            fprintf(stderr, "mxscan report: %s: %s\n", db_path, err);
        } else if (scan_id > 0) {
            fprintf(stderr, "mxscan report: %s has no scan %lld\n", db_path, (long long)scan_id);
        } else {
            fprintf(stderr, "mxscan report: %s has no scan yet\n", db_path);
        }
        db_close(db);
        return 1;
    }

    out_t o;
    char *tmp = NULL;
    int to_stdout = strcmp(out_path, "-") == 0;
    memset(&o, 0, sizeof o);
    sb_init(&o.sb);
    if (to_stdout) {
        o.f = stdout;
    } else {
        size_t tl = strlen(out_path) + 32;
        tmp = malloc(tl);
        if (tmp == NULL) {
            fprintf(stderr, "mxscan report: out of memory\n");
            db_close(db);
            return 1;
        }
        snprintf(tmp, tl, "%s.tmp%ld", out_path, (long)getpid());
        o.f = fopen(tmp, "w");
        if (o.f == NULL) {
            fprintf(stderr, "mxscan report: %s: %s\n", tmp, strerror(errno));
            free(tmp);
            db_close(db);
            return 1;
        }
    }
    int rc = report_write(&o, h, &si, min_rank, limit, quiet, db_path, err, sizeof err);
    if (rc == 0 && o.err == 0 && fflush(o.f) != 0) {
        o.err = errno ? errno : EIO;
    }
    if (!to_stdout && fclose(o.f) != 0 && o.err == 0) {
        o.err = errno ? errno : EIO;
    }
    if (rc == 0 && o.err != 0) {
        snprintf(err, sizeof err, "%s: %s", to_stdout ? "stdout" : tmp, strerror(o.err));
        rc = -1;
    }
    if (rc == 0 && !to_stdout && rename(tmp, out_path) != 0) {
        snprintf(err, sizeof err, "%s: %s", out_path, strerror(errno));
        rc = -1;
    }
    if (rc < 0) {
        fprintf(stderr, "mxscan report: %s\n", err);
        if (!to_stdout) {
            unlink(tmp);
        }
    } else if (!to_stdout && !quiet) {
        fprintf(stderr, "report of scan %lld written to %s\n", (long long)si.id, out_path);
    }
    free(tmp);
    sb_free(&o.sb);
    sqlite3_exec(h, "COMMIT", NULL, NULL, NULL);
    db_close(db);
    return rc < 0 ? 1 : 0;
}
