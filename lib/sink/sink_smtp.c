/* smtp sink: one e-mail per alert, through an SMTP submission server, with
 * libcurl's SMTP client. The message is built here, not by curl_mime, so
 * every header is ours and every line ends in CRLF:
 *
 *   multipart/related                      (only with a snapshot)
 *     multipart/alternative
 *       text/plain; charset=UTF-8          quoted-printable, from a->text
 *       text/html; charset=UTF-8           quoted-printable, from a->html
 *     image/jpeg                           base64, Content-ID <snapshot@vigil>
 *
 * HTML templates show the picture with <img src="cid:snapshot@vigil">; when
 * an alert has no snapshot that <img> is left out rather than shown broken.
 * The Message-ID is derived from the alert id, so a redelivery (the notifier
 * delivers at least once) is recognisable as the same message.
 *
 * smtp:// speaks STARTTLS and by default refuses a server that does not
 * offer it; smtps:// is TLS from the first byte. Replies are classified by
 * their code: 4xx and network trouble are transient, 5xx permanent (an
 * authentication failure among them: the password will not get better).
 * When some recipients are refused and others accepted, the mail goes to the
 * accepted ones (CURLOPT_MAIL_RCPT_ALLOWFAILS) and the refused ones are
 * logged: sending it again would repeat it for everyone who has it. */
#include "sink/sink.h"

#include <ctype.h>
#include <curl/curl.h>
#include <openssl/evp.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>
#include <unistd.h>

#include "log.h"

#define MESSAGE_MAX (16u << 20)     /* the snapshot is at most 8 MiB, 11 MiB in base64 */
#define CONNECT_TIMEOUT_MAX_MS 10000
#define RCPT_MAX 16
#define TLS_RETRY_MS 60000          /* a TLS misconfiguration: the next try in a minute */
#define ADDR_MAX 254                /* RFC 5321 4.5.3.1.3, as a path without <> */
#define REPLY_MAX 160               /* server reply bytes quoted in an error */
#define SNAPSHOT_CID "snapshot@vigil"
#define QP_LINE 76                  /* RFC 2045 6.7 (5): encoded lines are at most 76 */
#define B64_CHUNK 57                /* 57 bytes are one 76-character base64 line */
#define WORD_BYTES 39               /* text bytes per RFC 2047 encoded-word (52 in base64) */

static const char *const starttls_values[] = {"required", "opportunistic", "off", NULL};
enum { STARTTLS_REQUIRED, STARTTLS_OPPORTUNISTIC, STARTTLS_OFF };

struct smtp_settings {
    char url[512];
    char from[256];
    char from_name[128];
    char to[1024];
    char username[256];
    char password[256];
    char ca_file[512];
    char helo[128];
    int starttls;
    int insecure_skip_verify;
};

static const struct vg_opt smtp_opts[] = {
    VG_OPT_STR_("url", struct smtp_settings, url, "", "URL", 0,
                "smtp://host:587 (STARTTLS) or smtps://host:465 (TLS from the start)"),
    VG_OPT_STR_("from", struct smtp_settings, from, "", "FROM", 0,
                "sender address (envelope and From:)"),
    VG_OPT_STR_("from_name", struct smtp_settings, from_name, "vigil", NULL, 0,
                "display name in From:"),
    VG_OPT_STR_("to", struct smtp_settings, to, "", "TO", 0,
                "recipient addresses, comma-separated (1 to 16)"),
    VG_OPT_STR_("username", struct smtp_settings, username, "", "USERNAME", 0,
                "AUTH user (\"\": no AUTH)"),
    VG_OPT_STR_("password", struct smtp_settings, password, "", "PASSWORD", 1,
                "AUTH password; or VIGIL_SINK_<NAME>_PASSWORD(_FILE)"),
    VG_OPT_ENUM_("starttls", struct smtp_settings, starttls, starttls_values, "required",
                 "smtp:// only: required (refuse a server without it), opportunistic, off"),
    VG_OPT_STR_("ca_file", struct smtp_settings, ca_file, "", NULL, 0,
                "PEM file of the CA (or self-signed certificate) to trust for the server"),
    VG_OPT_BOOL_("insecure_skip_verify", struct smtp_settings, insecure_skip_verify, "false",
                 "do not verify the server's certificate: for tests only"),
    VG_OPT_STR_("helo", struct smtp_settings, helo, "", NULL, 0,
                "name sent with EHLO (\"\": this host's name)"),
    VG_OPT_END,
};

struct smtp {
    CURL *curl;                 /* kept between alerts for connection reuse */
    struct curl_slist *rcpts;   /* "<a@b>" for CURLOPT_MAIL_RCPT */
    int n_rcpt;
    const struct smtp_settings *set;
    int default_text, default_html; /* the type's templates: the sink adds the links */
    char name[32];
    char origin[512];           /* scheme://host:port, for errors */
    char url[1024];             /* the origin and the EHLO name as its path */
    char mail_from[sizeof(((struct smtp_settings *)0)->from) + 2];   /* "<a@b>" */
    char to_header[1200];       /* "a@b, c@d", folded once a line gets long */
    size_t to_col;              /* the length of its last line */
    char domain[ADDR_MAX];      /* of from: the right side of Message-IDs */
};

/* ---- addresses ---- */

static int atext(int c)
{
    return isalnum(c) || (c && strchr("!#$%&'*+-/=?^_`{|}~", c));
}

static int domain_ok(const char *s, size_t n)
{
    if (n >= 2 && s[0] == '[' && s[n - 1] == ']') {    /* [192.0.2.1], [IPv6:...] */
        for (size_t i = 1; i + 1 < n; i++)
            if (!isalnum((unsigned char)s[i]) && s[i] != '.' && s[i] != ':')
                return 0;
        return n > 2;
    }
    size_t label = 0;
    for (size_t i = 0; i <= n; i++) {
        if (i == n || s[i] == '.') {
            if (label == 0 || label > 63 || s[i - 1] == '-' || s[i - label] == '-')
                return 0;
            label = 0;
        } else if (isalnum((unsigned char)s[i]) || s[i] == '-')
            label++;
        else
            return 0;
    }
    return 1;
}

/* local@domain with a dot-atom local part: no quoted strings, no comments,
 * no display names, nothing a header or an SMTP command could be split by. */
static int addr_ok(const char *s, size_t n)
{
    const char *at = n ? memchr(s, '@', n) : NULL;
    if (!at || n > ADDR_MAX)
        return 0;
    size_t local = (size_t)(at - s);
    if (local == 0 || local > 64 || s[0] == '.' || s[local - 1] == '.')
        return 0;
    for (size_t i = 0; i < local; i++)
        if (!(atext((unsigned char)s[i]) || (s[i] == '.' && s[i + 1] != '.')))
            return 0;
    return domain_ok(at + 1, n - local - 1);
}

/* Calls fn for each comma-separated, trimmed entry; stops at the first
 * non-zero return and returns it. */
static int each_addr(const char *list, int (*fn)(const char *s, size_t n, void *ud), void *ud)
{
    const char *p = list;
    for (;;) {
        size_t n = strcspn(p, ",");
        const char *s = p;
        size_t m = n;
        while (m && isspace((unsigned char)*s))
            s++, m--;
        while (m && isspace((unsigned char)s[m - 1]))
            m--;
        int r = fn(s, m, ud);
        if (r)
            return r;
        if (!p[n])
            return 0;
        p += n + 1;
    }
}

struct addr_check {
    int count;
    char bad[80];
};

static int check_one(const char *s, size_t n, void *ud)
{
    struct addr_check *c = ud;
    if (!addr_ok(s, n)) {
        snprintf(c->bad, sizeof(c->bad), "%.*s", (int)(n > 60 ? 60 : n), s);
        return 1;
    }
    c->count++;
    return 0;
}

static int add_rcpt(const char *s, size_t n, void *ud)
{
    struct smtp *w = ud;
    char line[ADDR_MAX + 3];
    snprintf(line, sizeof(line), "<%.*s>", (int)n, s);
    struct curl_slist *t = curl_slist_append(w->rcpts, line);
    if (!t)
        return 1;
    w->rcpts = t;
    /* "To: " starts the first line, a space each continuation line. */
    size_t k = strlen(w->to_header);
    const char *sep = !k ? "" : w->to_col + n + 2 > 76 ? ",\r\n " : ", ";
    if (!k)
        w->to_col = 4;
    else if (sep[1] == '\r')
        w->to_col = 1;
    else
        w->to_col += 2;
    snprintf(w->to_header + k, sizeof(w->to_header) - k, "%s%.*s", sep, (int)n, s);
    w->to_col += n;
    w->n_rcpt++;
    return 0;
}

/* ---- the URL ---- */

struct url_parts {
    int tls;                    /* smtps:// */
    const char *host;           /* the authority: host[:port] */
    size_t host_len;
    const char *rest;           /* what follows it */
};

static int url_split(const char *url, struct url_parts *u)
{
    memset(u, 0, sizeof(*u));
    if (!strncasecmp(url, "smtps://", 8)) {
        u->tls = 1;
        u->host = url + 8;
    } else if (!strncasecmp(url, "smtp://", 7))
        u->host = url + 7;
    else
        return 0;
    u->host_len = strcspn(u->host, "/?#");
    u->rest = u->host + u->host_len;
    return 1;
}

static vg_status check_url(const struct smtp_settings *s, const char *where)
{
    struct url_parts u;
    if (!url_split(s->url, &u))
        return vg_errf(VG_ERR_CONFIG, "%s: an smtp sink needs a url smtp://host:port or "
                       "smtps://host:port", where);
    if (memchr(u.host, '@', u.host_len))
        return vg_errf(VG_ERR_CONFIG, "%s: url: put the credentials in username and password, "
                       "not in the url", where);
    const char *colon = memrchr(u.host, ':', u.host_len);
    const char *bracket = memrchr(u.host, ']', u.host_len);
    size_t name_len = colon && (!bracket || colon > bracket) ? (size_t)(colon - u.host)
                                                             : u.host_len;
    if (name_len == 0)
        return vg_errf(VG_ERR_CONFIG, "%s: url %s has no host", where, s->url);
    if (name_len < u.host_len) {
        char *end = NULL;
        long port = strtol(u.host + name_len + 1, &end, 10);
        if (end != u.host + u.host_len || port < 1 || port > 65535)
            return vg_errf(VG_ERR_CONFIG, "%s: url %s: bad port", where, s->url);
    }
    if (u.rest[0] && strcmp(u.rest, "/"))
        return vg_errf(VG_ERR_CONFIG, "%s: url %s: no path or query (the EHLO name is the "
                       "helo key)", where, s->url);
    if (s->password[0] && !u.tls && s->starttls != STARTTLS_REQUIRED &&
        !vg_sink_url_is_loopback(s->url))
        return vg_errf(VG_ERR_CONFIG, "%s: a password would cross the network unencrypted: "
                       "use starttls: required or smtps://", where);
    return VG_OK;
}

static vg_status check_names(const struct smtp_settings *s, const char *where)
{
    for (const unsigned char *p = (const unsigned char *)s->from_name; *p; p++)
        if (*p < 0x20 || *p == 0x7f)
            return vg_errf(VG_ERR_CONFIG, "%s: from_name has a control character", where);
    if (s->helo[0] && !domain_ok(s->helo, strlen(s->helo)))
        return vg_errf(VG_ERR_CONFIG, "%s: helo \"%s\" is not a host name or [address]", where,
                       s->helo);
    return VG_OK;
}

static vg_status smtp_check(const void *settings, const char *where)
{
    const struct smtp_settings *s = settings;
    struct addr_check c = {0};
    vg_status st = check_url(s, where);
    if (st != VG_OK || (st = check_names(s, where)) != VG_OK)
        return st;
    if (!addr_ok(s->from, strlen(s->from)))
        return vg_errf(VG_ERR_CONFIG, "%s: from \"%s\" is not an address like "
                       "vigil@example.com", where, s->from);
    if (!s->to[0])
        return vg_errf(VG_ERR_CONFIG, "%s: an smtp sink needs at least one address in to",
                       where);
    if (each_addr(s->to, check_one, &c))
        return vg_errf(VG_ERR_CONFIG, "%s: to: \"%s\" is not an address like "
                       "me@example.com", where, c.bad);
    if (c.count > RCPT_MAX)
        return vg_errf(VG_ERR_CONFIG, "%s: to: %d addresses, at most %d", where, c.count,
                       RCPT_MAX);
    if (!s->username[0] != !s->password[0])
        return vg_errf(VG_ERR_CONFIG, "%s: AUTH needs both username and password", where);
    if (s->ca_file[0] && access(s->ca_file, R_OK) != 0)
        return vg_errf(VG_ERR_CONFIG, "%s: ca_file %s cannot be read", where, s->ca_file);
    return VG_OK;
}

/* ---- the message buffer ---- */

struct mbuf {
    char *p;
    size_t n, cap;
    int nomem, too_large;
};

static void put(struct mbuf *b, const char *s, size_t n)
{
    if (b->nomem || b->too_large)
        return;
    if (n > MESSAGE_MAX - b->n) {
        b->too_large = 1;
        return;
    }
    if (b->n + n + 1 > b->cap) {
        size_t cap = b->cap ? b->cap : 8192;
        while (cap < b->n + n + 1)
            cap *= 2;
        char *p = realloc(b->p, cap);
        if (!p) {
            b->nomem = 1;
            return;
        }
        b->p = p;
        b->cap = cap;
    }
    memcpy(b->p + b->n, s, n);
    b->n += n;
    b->p[b->n] = '\0';
}

static void puts_(struct mbuf *b, const char *s) { put(b, s, strlen(s)); }

static void putf(struct mbuf *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void putf(struct mbuf *b, const char *fmt, ...)
{
    char line[1400];
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(line, sizeof(line), fmt, ap);
    va_end(ap);
    if (n > 0)
        put(b, line, (size_t)n < sizeof(line) ? (size_t)n : sizeof(line) - 1);
}

/* ---- encodings ---- */

static int line_break(const char *s, size_t i, size_t n)
{
    return s[i] == '\n' ? 1 : (s[i] == '\r' && i + 1 < n && s[i + 1] == '\n') ? 2 : 0;
}

/* Quoted-printable (RFC 2045 6.7) of UTF-8 text: line breaks become CRLF,
 * lines are folded with soft breaks at 76, a space before a line break is
 * encoded, and so are a '.' or "From " at the start of a line, which some
 * relays would otherwise mangle. */
static void put_qp(struct mbuf *b, const char *s, size_t n)
{
    static const char hex[] = "0123456789ABCDEF";
    size_t col = 0;
    for (size_t i = 0; i < n; i++) {
        int br = line_break(s, i, n);
        if (br) {
            put(b, "\r\n", 2);
            col = 0;
            i += (size_t)br - 1;
            continue;
        }
        unsigned char c = (unsigned char)s[i];
        int at_end = i + 1 == n || line_break(s, i + 1, n);
        int literal = (c >= 33 && c <= 126 && c != '=') || ((c == ' ' || c == '\t') && !at_end);
        if (col + (literal ? 1 : 3) > QP_LINE - 1) {
            put(b, "=\r\n", 3);
            col = 0;
        }
        /* After the soft break too: it starts a line as well. */
        if (col == 0 && (c == '.' || (c == 'F' && n - i >= 5 && !memcmp(s + i, "From ", 5))))
            literal = 0;
        size_t len = literal ? 1 : 3;
        char enc[3] = {'=', hex[c >> 4], hex[c & 15]};
        if (literal)
            put(b, (const char *)&c, 1);
        else
            put(b, enc, 3);
        col += len;
    }
    put(b, "\r\n", 2);
}

static void put_b64(struct mbuf *b, const uint8_t *data, size_t n)
{
    unsigned char line[80];
    for (size_t off = 0; off < n; off += B64_CHUNK) {
        size_t k = n - off < B64_CHUNK ? n - off : B64_CHUNK;
        int len = EVP_EncodeBlock(line, data + off, (int)k);
        put(b, (const char *)line, (size_t)len);
        put(b, "\r\n", 2);
    }
}

/* RFC 2047 B encoded-words of at most WORD_BYTES text bytes each, split
 * between UTF-8 characters, folded onto continuation lines. */
static void put_words(struct mbuf *b, const char *s, size_t n)
{
    unsigned char out[80];
    for (size_t off = 0; off < n;) {
        size_t k = n - off < WORD_BYTES ? n - off : WORD_BYTES;
        size_t back = 0;
        while (off + k < n && back < 3 && k > 1 && ((unsigned char)s[off + k] & 0xc0) == 0x80)
            k--, back++;
        int len = EVP_EncodeBlock(out, (const unsigned char *)s + off, (int)k);
        if (off)
            put(b, "\r\n ", 3);
        puts_(b, "=?UTF-8?B?");
        put(b, (const char *)out, (size_t)len);
        puts_(b, "?=");
        off += k;
    }
}

/* A header value that may go out as it is: printable ASCII, short enough
 * for one line, nothing that reads as an encoded-word. */
static int plain_ascii(const char *s, size_t max)
{
    size_t n = strlen(s);
    if (n > max || strstr(s, "=?"))
        return 0;
    for (; *s; s++)
        if ((unsigned char)*s < 0x20 || (unsigned char)*s > 0x7e)
            return 0;
    return 1;
}

static void put_subject(struct mbuf *b, const char *title)
{
    if (!*title)
        title = "vigil alert";
    puts_(b, "Subject: ");
    if (plain_ascii(title, 66))
        puts_(b, title);
    else
        put_words(b, title, strlen(title));
    puts_(b, "\r\n");
}

static void put_from(struct mbuf *b, const struct smtp *w)
{
    const char *name = w->set->from_name;
    puts_(b, "From: ");
    if (!*name) {
        putf(b, "%s\r\n", w->set->from);
        return;
    }
    if (plain_ascii(name, 60)) {
        put(b, "\"", 1);
        for (; *name; name++) {
            if (*name == '"' || *name == '\\')
                put(b, "\\", 1);
            put(b, name, 1);
        }
        put(b, "\"", 1);
    } else
        put_words(b, name, strlen(name));
    putf(b, " <%s>\r\n", w->set->from);
}

/* RFC 5322 3.3, in UTC; names not from the locale. */
static void put_date(struct mbuf *b, int64_t us)
{
    static const char days[][4] = {"Sun", "Mon", "Tue", "Wed", "Thu", "Fri", "Sat"};
    static const char months[][4] = {"Jan", "Feb", "Mar", "Apr", "May", "Jun",
                                     "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"};
    time_t t = (time_t)(us / 1000000);
    struct tm tm;
    if (!gmtime_r(&t, &tm))
        memset(&tm, 0, sizeof(tm));
    putf(b, "Date: %s, %02d %s %04d %02d:%02d:%02d +0000\r\n", days[tm.tm_wday % 7],
         tm.tm_mday, months[tm.tm_mon % 12], tm.tm_year + 1900, tm.tm_hour, tm.tm_min,
         tm.tm_sec);
}

/* The alert id as a dot-atom: letters, digits, '-' and '_' kept, every
 * other byte as =XX, so the mapping is one to one. */
static void id_atom(char *out, size_t cap, const char *id)
{
    size_t n = 0;
    for (; *id && n + 4 < cap; id++) {
        unsigned char c = (unsigned char)*id;
        if (isalnum(c) || c == '-' || c == '_')
            out[n++] = (char)c;
        else
            n += (size_t)snprintf(out + n, cap - n, "=%02X", c);
    }
    out[n] = '\0';
}

/* ---- the parts ---- */

/* The links the type's own templates leave to the sink: a template cannot
 * leave out a line whose field is empty, and file:// links mean nothing in
 * someone's inbox. */
static void text_links(struct vg_tpl_buf *t, const struct vg_sink_alert *a)
{
    const char *urls[2] = {a->snapshot_url, a->clip_url};
    const char *names[2] = {"Snapshot", "Clip"};
    for (int i = 0; i < 2; i++)
        if (vg_sink_is_http_url(urls[i])) {
            vg_tpl_put(t, "\n", 1, VG_TPL_PLAIN);
            vg_tpl_put(t, names[i], strlen(names[i]), VG_TPL_PLAIN);
            vg_tpl_put(t, ": ", 2, VG_TPL_PLAIN);
            vg_tpl_put(t, urls[i], strlen(urls[i]), VG_TPL_PLAIN);
        }
}

static void html_links(struct vg_tpl_buf *t, const struct vg_sink_alert *a)
{
    const char *urls[2] = {a->snapshot_url, a->clip_url};
    const char *names[2] = {"Snapshot", "Clip"};
    int any = 0;
    for (int i = 0; i < 2; i++) {
        if (!vg_sink_is_http_url(urls[i]))
            continue;
        const char *open = any ? " &middot; <a href=\"" : "<p style=\"margin:12px 0\"><a href=\"";
        vg_tpl_put(t, open, strlen(open), VG_TPL_PLAIN);
        vg_tpl_put(t, urls[i], strlen(urls[i]), VG_TPL_HTML);
        vg_tpl_put(t, "\">", 2, VG_TPL_PLAIN);
        vg_tpl_put(t, names[i], strlen(names[i]), VG_TPL_PLAIN);
        vg_tpl_put(t, "</a>", 4, VG_TPL_PLAIN);
        any = 1;
    }
    if (any)
        vg_tpl_put(t, "</p>\n", 5, VG_TPL_PLAIN);
}

/* html from p to end into t; without a picture, every <img ...> whose
 * source is our cid is left out rather than shown broken. */
static void copy_html(struct vg_tpl_buf *t, const char *p, const char *end, int has_image)
{
    static const char ref[] = "cid:" SNAPSHOT_CID;
    while (p < end) {
        const char *tag = has_image ? NULL : memmem(p, (size_t)(end - p), "<img", 4);
        const char *gt = tag ? memchr(tag, '>', (size_t)(end - tag)) : NULL;
        if (!gt) {
            vg_tpl_put(t, p, (size_t)(end - p), VG_TPL_PLAIN);
            return;
        }
        vg_tpl_put(t, p, (size_t)(tag - p), VG_TPL_PLAIN);
        if (!memmem(tag, (size_t)(gt - tag), ref, sizeof(ref) - 1))
            vg_tpl_put(t, tag, (size_t)(gt + 1 - tag), VG_TPL_PLAIN);   /* another picture */
        p = gt + 1;
    }
}

/* The html part: the rendered template, with the links before </body>
 * (or at the end) when the template is the type's own. */
static void html_body(struct vg_tpl_buf *t, const char *html, int has_image, int links,
                      const struct vg_sink_alert *a)
{
    const char *end = html + strlen(html);
    const char *at = links ? strstr(html, "</body>") : NULL;
    if (links && !at)
        at = end;
    copy_html(t, html, at ? at : end, has_image);
    if (at) {
        html_links(t, a);
        copy_html(t, at, end, has_image);
    }
}

static void put_text_part(struct mbuf *b, const char *subtype, const char *s)
{
    putf(b, "Content-Type: text/%s; charset=UTF-8\r\n"
            "Content-Transfer-Encoding: quoted-printable\r\n\r\n", subtype);
    put_qp(b, s, strlen(s));
}

static void put_image_part(struct mbuf *b, const struct vg_sink_alert *a)
{
    puts_(b, "Content-Type: image/jpeg; name=\"snapshot.jpg\"\r\n"
             "Content-Transfer-Encoding: base64\r\n"
             "Content-ID: <" SNAPSHOT_CID ">\r\n"
             "Content-Disposition: inline; filename=\"snapshot.jpg\"\r\n\r\n");
    put_b64(b, a->snapshot, a->snapshot_len);
}

struct bodies {
    char *text, *html;          /* what goes into the parts; html NULL: text only */
};

static vg_status make_bodies(const struct smtp *w, const struct vg_sink_alert *a, int image,
                             struct bodies *out)
{
    struct vg_tpl_buf t = {0}, h = {0};
    int alert = a->kind == VG_SINK_KIND_ALERT, html = alert && a->html[0];
    vg_tpl_put(&t, a->text, strlen(a->text), VG_TPL_PLAIN);
    if (alert && w->default_text)
        text_links(&t, a);
    if (html)
        html_body(&h, a->html, image, w->default_html, a);
    /* Nothing appended leaves p NULL: an empty part is "". */
    if (!t.failed && !t.p)
        t.p = strdup("");
    if (html && !h.failed && !h.p)
        h.p = strdup("");
    if (t.failed || !t.p || (html && (h.failed || !h.p))) {
        free(t.p);
        free(h.p);
        return vg_errf(VG_ERR_NOMEM, "smtp %s: message text", w->name);
    }
    out->text = t.p;
    out->html = h.p;
    return VG_OK;
}

/* boundaries: "=_" never occurs in quoted-printable or base64 output. */
static void put_body(struct mbuf *b, const struct vg_sink_alert *a, const struct bodies *d,
                     int image, const char *tag)
{
    if (!d->html) {
        put_text_part(b, "plain", d->text);
        return;
    }
    if (image)
        putf(b, "Content-Type: multipart/related; type=\"multipart/alternative\";\r\n"
                " boundary=\"=_rel_%s\"\r\n\r\n--=_rel_%s\r\n", tag, tag);
    putf(b, "Content-Type: multipart/alternative; boundary=\"=_alt_%s\"\r\n\r\n"
            "--=_alt_%s\r\n", tag, tag);
    put_text_part(b, "plain", d->text);
    putf(b, "\r\n--=_alt_%s\r\n", tag);
    put_text_part(b, "html", d->html);
    putf(b, "\r\n--=_alt_%s--\r\n", tag);
    if (image) {
        putf(b, "\r\n--=_rel_%s\r\n", tag);
        put_image_part(b, a);
        putf(b, "\r\n--=_rel_%s--\r\n", tag);
    }
}

static void put_headers(struct mbuf *b, const struct smtp *w, const struct vg_sink_alert *a,
                        const char *atom)
{
    const Vigil__V1__Alert *al = a->alert;
    int64_t ts = al && al->header && al->header->capture_ts_us > 0 ? al->header->capture_ts_us
                                                                    : a->now_us;
    put_from(b, w);
    putf(b, "To: %s\r\n", w->to_header);
    put_subject(b, a->title);
    put_date(b, a->kind == VG_SINK_KIND_ALERT ? ts : a->now_us);
    if (a->kind == VG_SINK_KIND_ALERT && atom[0])
        putf(b, "Message-ID: <vigil.%s@%s>\r\n", atom, w->domain);
    else
        putf(b, "Message-ID: <vigil.summary.%lld%s%s@%s>\r\n", (long long)(a->now_us / 1000000),
             atom[0] ? "." : "", atom, w->domain);
    if (a->kind == VG_SINK_KIND_ALERT && al && al->alert_id && plain_ascii(al->alert_id, 64) &&
        !strpbrk(al->alert_id, " \t"))
        putf(b, "X-Vigil-Alert-Id: %s\r\n", al->alert_id);
    puts_(b, "Auto-Submitted: auto-generated\r\nMIME-Version: 1.0\r\n");
}

static uint64_t fnv1a(const char *s)
{
    uint64_t h = 1469598103934665603ull;
    for (; *s; s++)
        h = (h ^ (unsigned char)*s) * 1099511628211ull;
    return h;
}

static vg_status build_message(const struct smtp *w, const struct vg_sink_alert *a,
                               struct mbuf *b)
{
    struct bodies d = {0};
    char atom[3 * VG_ID_MAX + 1] = "", tag[24];
    const char *id = a->alert && a->alert->alert_id ? a->alert->alert_id : "";
    int image = a->snapshot && a->snapshot_len > 0 && a->kind == VG_SINK_KIND_ALERT;
    vg_status st = make_bodies(w, a, image, &d);
    if (st != VG_OK)
        return st;
    if (!d.html)
        image = 0;
    id_atom(atom, sizeof(atom), id);
    snprintf(tag, sizeof(tag), "%016llx", (unsigned long long)fnv1a(id));
    put_headers(b, w, a, atom);
    put_body(b, a, &d, image, tag);
    free(d.text);
    free(d.html);
    if (b->too_large)
        return vg_errf(VG_ERR_TOO_LARGE, "message over %u bytes", MESSAGE_MAX);
    if (b->nomem)
        return vg_errf(VG_ERR_NOMEM, "message of %zu bytes", b->n);
    return VG_OK;
}

/* ---- one transaction ---- */

struct upload {
    const char *p;
    size_t n, off;
};

static size_t on_read(char *buf, size_t size, size_t nitems, void *ud)
{
    struct upload *u = ud;
    size_t room = size * nitems, k = u->n - u->off;
    if (k > room)
        k = room;
    memcpy(buf, u->p + u->off, k);
    u->off += k;
    return k;
}

/* What the conversation showed, from libcurl's debug callback: the last
 * command (its verb only: AUTH lines carry credentials), the last reply,
 * and the recipients the server refused. */
struct session {
    char verb[12];
    int quitting;               /* QUIT sent: its reply is not about the failure */
    char rcpt[ADDR_MAX + 1];
    int data_sent;              /* the server said 354: the reply is to the message */
    int reply_code;
    char reply[REPLY_MAX + 1];
    int n_refused, refused_transient;
    char refused[VG_SINK_ERROR_MAX];
};

/* data is not NUL-terminated. */
static void note_command(struct session *s, const char *data, size_t n)
{
    static const char *const verbs[] = {"EHLO", "HELO", "STARTTLS", "AUTH", "MAIL",
                                        "RCPT", "DATA", "QUIT", "RSET", "NOOP"};
    size_t k = 0;
    while (k < n && data[k] != ' ' && data[k] != '\r' && data[k] != '\n')
        k++;
    for (size_t i = 0; i < sizeof(verbs) / sizeof(verbs[0]); i++) {
        if (k != strlen(verbs[i]) || strncmp(data, verbs[i], k))
            continue;
        /* QUIT after a failure: what failed is the command before it. */
        if (!strcmp(verbs[i], "QUIT")) {
            s->quitting = 1;
            return;
        }
        snprintf(s->verb, sizeof(s->verb), "%s", verbs[i]);
        s->rcpt[0] = '\0';
        /* A command that gets no reply (a timeout) must not be judged by
         * the reply of the one before it. */
        s->reply_code = 0;
        s->reply[0] = '\0';
        const char *lt = memchr(data, '<', n);
        const char *gt = lt ? memchr(lt, '>', n - (size_t)(lt - data)) : NULL;
        if (!strcmp(verbs[i], "RCPT") && gt)
            snprintf(s->rcpt, sizeof(s->rcpt), "%.*s", (int)(gt - lt - 1), lt + 1);
        return;
    }
}

static void note_refused(struct session *s)
{
    size_t k = strlen(s->refused);
    snprintf(s->refused + k, sizeof(s->refused) - k, "%s<%s> %s", k ? "; " : "", s->rcpt,
             s->reply);
    s->n_refused++;
    if (s->reply_code / 100 == 4)
        s->refused_transient = 1;
}

static void note_reply(struct session *s, const char *data, size_t n)
{
    if (s->quitting)
        return;
    while (n && (data[n - 1] == '\r' || data[n - 1] == '\n'))
        n--;
    /* "250-SIZE": a line of a longer reply; only the last one ("250 OK")
     * ends it. */
    if (n < 3 || !isdigit((unsigned char)data[0]) || (n > 3 && data[3] == '-'))
        return;
    size_t k = 0;
    for (size_t i = 0; i < n && k < REPLY_MAX; i++) {
        unsigned char c = (unsigned char)data[i];
        s->reply[k++] = (c < 0x20 || c >= 0x7f) ? ' ' : (char)c;
    }
    s->reply[k] = '\0';
    s->reply_code = atoi(s->reply);
    if (!strcmp(s->verb, "DATA") && s->reply_code == 354)
        s->data_sent = 1;
    if (!strcmp(s->verb, "RCPT") && s->reply_code / 100 != 2)
        note_refused(s);
}

static int on_debug(CURL *c, curl_infotype type, char *data, size_t size, void *ud)
{
    (void)c;
    if (type == CURLINFO_HEADER_OUT)
        note_command(ud, data, size);
    else if (type == CURLINFO_HEADER_IN)
        note_reply(ud, data, size);
    return 0;
}

static const char *stage(const struct session *s)
{
    if (s->data_sent)
        return "end of DATA";
    if (!strcmp(s->verb, "MAIL"))
        return "MAIL FROM";
    return s->verb[0] ? s->verb : "greeting";
}

static int auth_code(int code)
{
    /* RFC 4954: 530 authentication required, 534 mechanism too weak, 535
     * credentials invalid; RFC 3207: 538 encryption required. */
    return code == 530 || code == 534 || code == 535 || code == 538;
}

static void classify(struct smtp *w, const struct vg_sink_alert *a, CURLcode rc,
                     const struct session *s, const char *errbuf, struct vg_sink_result *res)
{
    const char *cam = a->alert && a->alert->header ? a->alert->header->camera_id : NULL;
    if (rc == CURLE_OK) {
        if (s->n_refused)
            VG_WARN("sink.recipients_refused", cam,
                    "sink %s: alert %s went to %d of %d recipients; refused: %s", w->name,
                    a->alert && a->alert->alert_id ? a->alert->alert_id : "?",
                    w->n_rcpt - s->n_refused, w->n_rcpt, s->refused);
        return;
    }
    int code = s->reply_code;
    if (s->n_refused >= w->n_rcpt && !s->data_sent)
        vg_sink_fail(res, s->refused_transient ? VG_SINK_RETRY : VG_SINK_PERMANENT,
                     "%s: every recipient refused: %s", w->origin, s->refused);
    else if (code >= 400 && code < 500)
        vg_sink_fail(res, VG_SINK_RETRY, "%s: %s: %s", w->origin, stage(s), s->reply);
    else if (code >= 500 && auth_code(code))
        vg_sink_fail(res, VG_SINK_PERMANENT, "%s: %s: %s (authentication refused: check "
                     "username and password)", w->origin, stage(s), s->reply);
    else if (code >= 500)
        vg_sink_fail(res, VG_SINK_PERMANENT, "%s: %s: %s", w->origin, stage(s), s->reply);
    else if (rc == CURLE_LOGIN_DENIED)      /* refused before a reply said why */
        vg_sink_fail(res, VG_SINK_PERMANENT, "%s: AUTH: %s", w->origin,
                     errbuf[0] ? errbuf : "the server offers no mechanism libcurl supports");
    else {
        vg_sink_fail(res, VG_SINK_RETRY, "%s: %s", w->origin,
                     errbuf[0] ? errbuf : curl_easy_strerror(rc));
        /* TLS set up wrong (no STARTTLS, a certificate we cannot verify)
         * will not heal in seconds: look again in a minute, not at once. */
        if (rc == CURLE_USE_SSL_FAILED || rc == CURLE_PEER_FAILED_VERIFICATION ||
            rc == CURLE_SSL_CACERT_BADFILE || rc == CURLE_SSL_CONNECT_ERROR)
            res->retry_after_ms = TLS_RETRY_MS;
    }
}

static void smtp_deliver(void *state, const struct vg_sink_alert *a, struct vg_sink_result *res)
{
    struct smtp *w = state;
    struct mbuf msg = {0};
    struct session s = {0};
    char errbuf[CURL_ERROR_SIZE] = "";

    vg_status st = build_message(w, a, &msg);
    if (st != VG_OK) {
        vg_sink_fail(res, st == VG_ERR_TOO_LARGE ? VG_SINK_PERMANENT : VG_SINK_RETRY,
                     "smtp %s: %s", w->name, vg_err_detail());
        free(msg.p);
        return;
    }
    struct upload up = {msg.p, msg.n, 0};
    CURL *c = w->curl;
    curl_easy_setopt(c, CURLOPT_READDATA, &up);
    curl_easy_setopt(c, CURLOPT_INFILESIZE_LARGE, (curl_off_t)msg.n);
    curl_easy_setopt(c, CURLOPT_DEBUGDATA, &s);
    curl_easy_setopt(c, CURLOPT_ERRORBUFFER, errbuf);
    classify(w, a, curl_easy_perform(c), &s, errbuf, res);
    /* The handle must not keep pointers into this call's stack. */
    curl_easy_setopt(c, CURLOPT_READDATA, NULL);
    curl_easy_setopt(c, CURLOPT_DEBUGDATA, NULL);
    curl_easy_setopt(c, CURLOPT_ERRORBUFFER, NULL);
    free(msg.p);
}

/* ---- life ---- */

static void set_tls(CURL *c, const struct smtp_settings *set)
{
    static const long use_ssl[] = {CURLUSESSL_ALL, CURLUSESSL_TRY, CURLUSESSL_NONE};
    curl_easy_setopt(c, CURLOPT_USE_SSL, use_ssl[set->starttls]);
    if (set->ca_file[0])
        curl_easy_setopt(c, CURLOPT_CAINFO, set->ca_file);
    if (set->insecure_skip_verify) {
        curl_easy_setopt(c, CURLOPT_SSL_VERIFYPEER, 0L);
        curl_easy_setopt(c, CURLOPT_SSL_VERIFYHOST, 0L);
    }
}

static void set_transfer(struct smtp *w, int timeout_ms)
{
    CURL *c = w->curl;
    long timeout = timeout_ms;
    curl_easy_setopt(c, CURLOPT_URL, w->url);
    curl_easy_setopt(c, CURLOPT_PROTOCOLS_STR, "smtp,smtps");
    curl_easy_setopt(c, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(c, CURLOPT_UPLOAD, 1L);
    curl_easy_setopt(c, CURLOPT_READFUNCTION, on_read);
    curl_easy_setopt(c, CURLOPT_MAIL_FROM, w->mail_from);
    curl_easy_setopt(c, CURLOPT_MAIL_RCPT, w->rcpts);
    /* Deliver to the recipients the server accepts (libcurl >= 7.69; the
     * option lost its third L in 8.2). */
#if LIBCURL_VERSION_NUM >= 0x080200
    curl_easy_setopt(c, CURLOPT_MAIL_RCPT_ALLOWFAILS, 1L);
#else
    curl_easy_setopt(c, CURLOPT_MAIL_RCPT_ALLLOWFAILS, 1L);
#endif
    if (w->set->username[0]) {
        curl_easy_setopt(c, CURLOPT_USERNAME, w->set->username);
        curl_easy_setopt(c, CURLOPT_PASSWORD, w->set->password);
    }
    curl_easy_setopt(c, CURLOPT_TIMEOUT_MS, timeout);
    curl_easy_setopt(c, CURLOPT_CONNECTTIMEOUT_MS,
                     timeout < CONNECT_TIMEOUT_MAX_MS ? timeout : (long)CONNECT_TIMEOUT_MAX_MS);
    /* The debug callback is how the replies to each command are seen;
     * with it set, curl prints nothing itself. */
    curl_easy_setopt(c, CURLOPT_VERBOSE, 1L);
    curl_easy_setopt(c, CURLOPT_DEBUGFUNCTION, on_debug);
    set_tls(c, w->set);
}

/* "smtp://host:587" and, with a helo name, "smtp://host:587/<name>": curl
 * sends the URL's path with EHLO. */
static void make_urls(struct smtp *w)
{
    struct url_parts u;
    url_split(w->set->url, &u);
    snprintf(w->origin, sizeof(w->origin), "%s%.*s", u.tls ? "smtps://" : "smtp://",
             (int)u.host_len, u.host);
    size_t n = (size_t)snprintf(w->url, sizeof(w->url), "%s/", w->origin);
    for (const char *p = w->set->helo; *p && n + 4 < sizeof(w->url); p++) {
        if (isalnum((unsigned char)*p) || *p == '.' || *p == '-')
            w->url[n++] = *p;
        else
            n += (size_t)snprintf(w->url + n, sizeof(w->url) - n, "%%%02X", (unsigned char)*p);
    }
    w->url[n] = '\0';
}

static void smtp_cleanup(void *state)
{
    struct smtp *w = state;
    if (!w)
        return;
    curl_easy_cleanup(w->curl);
    curl_slist_free_all(w->rcpts);
    free(w);
}

static vg_status smtp_init(void **state, const struct vg_sink_cfg *cfg,
                           const struct vg_config *root)
{
    (void)root;
    struct smtp *w = calloc(1, sizeof(*w));
    if (!w || !(w->curl = curl_easy_init())) {
        free(w);
        return vg_errf(VG_ERR_NOMEM, "curl handle");
    }
    w->set = (const struct smtp_settings *)cfg->settings;
    snprintf(w->name, sizeof(w->name), "%s", cfg->name);
    w->default_text = cfg->text[0] == '\0';
    w->default_html = cfg->html[0] == '\0';
    snprintf(w->mail_from, sizeof(w->mail_from), "<%s>", w->set->from);
    snprintf(w->domain, sizeof(w->domain), "%s", strrchr(w->set->from, '@') + 1);
    if (each_addr(w->set->to, add_rcpt, w)) {
        smtp_cleanup(w);
        return vg_errf(VG_ERR_NOMEM, "smtp %s: recipients", cfg->name);
    }
    make_urls(w);
    set_transfer(w, cfg->timeout_ms);
    *state = w;
    return VG_OK;
}

/* The picture is referenced as cid:snapshot@vigil (RFC 2392: a cid URL is
 * the Content-ID, which has the form of an address). */
static const char DEFAULT_TEXT[] =
    "{who} was seen on camera {camera} at {time} (confidence {confidence}).";
static const char DEFAULT_HTML[] =
    "<!DOCTYPE html>\n"
    "<html><head><meta charset=\"utf-8\"><title>{who} at {camera}</title></head>\n"
    "<body style=\"font-family:sans-serif;color:#222\">\n"
    "<h2 style=\"margin:0 0 8px\">{who} at {camera}</h2>\n"
    "<p style=\"margin:0 0 12px\">Seen on camera {camera} at {time} "
    "(confidence {confidence}).</p>\n"
    "<img src=\"cid:" SNAPSHOT_CID "\" alt=\"Snapshot from {camera}\" width=\"640\" "
    "style=\"display:block;max-width:100%;height:auto\">\n"
    "</body></html>\n";

const struct vg_sink_ops vg_sink_smtp = {
    .name = "smtp",
    .caps = VG_SINK_CAP_SNAPSHOT,
    .default_title = "{who} at {camera}",
    .default_text = DEFAULT_TEXT,
    .default_html = DEFAULT_HTML,
    .default_incidents = VG_SINK_INCIDENTS_ESCALATE,
    .opts = smtp_opts,
    .settings_size = sizeof(struct smtp_settings),
    .default_timeout_ms = 15000,
    .check = smtp_check,
    .init = smtp_init,
    .deliver = smtp_deliver,
    .cleanup = smtp_cleanup,
};
