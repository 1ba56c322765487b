/* telegram sink: a bot posts each alert to one or more chats with the
 * Telegram Bot API: sendPhoto (multipart, the snapshot JPEG as a file and the
 * text as its caption) when there is a snapshot, else sendMessage (JSON, link
 * previews off). A photo Telegram refuses (too large, not an image) or one
 * over the API's 10 MB falls back to sendMessage, so the words still arrive.
 *
 * Texts are cut to what the API takes, counted as Telegram counts them: the
 * characters left after entity parsing (tags, escapes and markers do not
 * count; "&amp;" and "\." are one), in UTF-16 units like Telegram's own
 * offsets (an emoji outside the BMP counts two). A cut falls between
 * characters, never inside a tag or an escape, ends with "…" and closes what
 * it left open, so the cut text still parses.
 *
 * Several chats: the alert is delivered when every chat has it. Chats that
 * got it are remembered per alert in this process (a few recent alerts), so
 * quick retries and redeliveries to this replica send only to the chats still
 * missing; another replica or a restart does not know, so delivery is at
 * least once per chat.
 *
 * Answers are {"ok":true,"result":...} or {"ok":false,"error_code":N,
 * "description":"...","parameters":{"retry_after":S}}: 429 (with its
 * retry_after), 5xx, 408 and network errors are transient and stop the
 * attempt (the trouble is the bot's, the other chats would fare alike); other
 * refusals (400 "chat not found", 401, 403 "bot was blocked") are this chat's
 * and permanent, and the other chats are still tried. The token is in the
 * URL's path: the URL is never logged, and the token is masked in anything
 * quoted from curl or the answer. */
#include "sink/sink.h"

#include <ctype.h>
#include <curl/curl.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "curl_body.h"
#include "timeutil.h"

#define CAPTION_MAX 1024                /* characters after entity parsing */
#define MESSAGE_MAX 4096
#define PHOTO_MAX (10u * 1024 * 1024)   /* the Bot API's limit for photos */
#define CHATS_MAX 16
#define CHAT_ID_MAX 40                  /* "@" + 32, or a 64-bit number */
#define PROGRESS_SLOTS 8                /* recent alerts whose chats we remember */
#define CONNECT_TIMEOUT_MAX_MS 10000
#define DESC_MAX 200                    /* characters of a description quoted */
#define OPEN_MAX 32                     /* nesting of entities a cut can close */

/* For tests (tests/unit/test_sink_telegram.c). */
size_t vg_telegram_length(const char *text, int mode);
char *vg_telegram_fit(const char *text, int mode, size_t limit);

enum parse_mode { PM_HTML = 0, PM_MARKDOWN_V2, PM_NONE };
static const char *const parse_modes[] = {"HTML", "MarkdownV2", "none", NULL};

struct telegram_settings {
    char token[128];
    char chat_ids[640];
    char api_base[VG_URL_MAX];
    int parse_mode;             /* enum parse_mode */
    int disable_notification;
    int photo;
};

static const struct vg_opt telegram_opts[] = {
    VG_OPT_STR_("token", struct telegram_settings, token, "", "TOKEN", 1,
                "the bot's token from @BotFather; or VIGIL_SINK_<NAME>_TOKEN(_FILE)"),
    VG_OPT_STR_("chat_ids", struct telegram_settings, chat_ids, "", "CHAT_IDS", 0,
                "comma-separated chats: numeric ids (-100... for groups and channels) or "
                "@channelname; at most 16"),
    VG_OPT_STR_("api_base", struct telegram_settings, api_base, "https://api.telegram.org",
                NULL, 0, "the Bot API server (a local telegram-bot-api server, a fake)"),
    VG_OPT_ENUM_("parse_mode", struct telegram_settings, parse_mode, parse_modes, "HTML",
                 "how the text is marked up: HTML, MarkdownV2 or none"),
    VG_OPT_BOOL_("disable_notification", struct telegram_settings, disable_notification,
                 "false", "deliver silently (no sound on the phones)"),
    VG_OPT_BOOL_("photo", struct telegram_settings, photo, "true",
                 "send the snapshot with the text as its caption; false: text only"),
    VG_OPT_END,
};

/* The default text, one per parse mode: the seam takes one default (the
 * HTML one, parse_mode's default); for the other modes the sink fills in its
 * own when the configuration has no text. No conditionals in templates: the
 * clip link is the last line, so without one the text just ends earlier. */
static const char DEFAULT_TEXT_HTML[] =
    "<b>{who}</b> at {camera}\n{time} · confidence {confidence}\n{clip_url}";
static const char DEFAULT_TEXT_MD2[] =
    "*{who}* at {camera}\n{time} · confidence {confidence}\n{clip_url}";
static const char DEFAULT_TEXT_PLAIN[] =
    "{who} at {camera}\n{time} · confidence {confidence}\n{clip_url}";

/* ---- text as Telegram counts it ---- */

enum mark { M_NONE = -1, M_TAG, M_BOLD, M_ITALIC, M_UNDERLINE, M_STRIKE, M_SPOILER, M_CODE,
            M_PRE, M_LINK };

struct open_entity {
    int kind;                   /* enum mark */
    size_t name, name_len;      /* M_TAG: its name in the source, for the end tag */
    size_t out_at;              /* M_LINK: where it starts in the output */
};

/* One pass over marked-up text, one token per step: a character (width 1, or
 * 2 for a UTF-16 surrogate pair) or markup (width 0), with the entities
 * open at that point. */
struct scan {
    const char *s;
    size_t n, i;
    int mode;
    struct open_entity open[OPEN_MAX];
    int depth, lost;            /* lost: opened beyond OPEN_MAX */
    int bad;                    /* the last token was a byte that is not UTF-8 */
    size_t out_n;               /* the output's length before this token */
};

static void push(struct scan *sc, int kind, size_t name, size_t len)
{
    if (sc->depth == OPEN_MAX) {
        sc->lost++;
        return;
    }
    sc->open[sc->depth++] = (struct open_entity){kind, name, len, sc->out_n};
}

static void pop(struct scan *sc)
{
    if (sc->lost)
        sc->lost--;
    else if (sc->depth)
        sc->depth--;
}

static int top(const struct scan *sc)
{
    return sc->lost || !sc->depth ? M_NONE : sc->open[sc->depth - 1].kind;
}

static void toggle(struct scan *sc, int kind, size_t len)
{
    if (top(sc) == kind)
        pop(sc);
    else
        push(sc, kind, 0, 0);
    sc->i += len;
}

/* One UTF-8 character (strict: no overlong forms, no surrogates), or one
 * byte marked bad (it is sent as U+FFFD). */
static size_t text_char(struct scan *sc)
{
    const unsigned char *p = (const unsigned char *)sc->s + sc->i;
    size_t left = sc->n - sc->i;
    unsigned c = p[0];
    size_t need = c < 0x80 ? 1 : c >= 0xC2 && c <= 0xDF ? 2 : c >= 0xE0 && c <= 0xEF ? 3
                : c >= 0xF0 && c <= 0xF4 ? 4 : 0;
    int ok = need > 0 && need <= left;
    for (size_t k = 1; ok && k < need; k++)
        ok = (p[k] & 0xC0) == 0x80;
    if (ok && need >= 3) {
        unsigned c1 = p[1];
        ok = !(c == 0xE0 && c1 < 0xA0) && !(c == 0xED && c1 >= 0xA0) &&
             !(c == 0xF0 && c1 < 0x90) && !(c == 0xF4 && c1 >= 0x90);
    }
    sc->bad = !ok;
    sc->i += ok ? need : 1;
    return ok && need == 4 ? 2 : 1;
}

/* Telegram's HTML: tags are markup, an entity (&amp; &#39; &#x1F600;) is one
 * character. */
static size_t html_step(struct scan *sc)
{
    const char *p = sc->s + sc->i;
    size_t left = sc->n - sc->i;
    if (*p == '<') {
        const char *end = memchr(p, '>', left);
        if (end) {
            if (p[1] == '/')
                pop(sc);
            else
                push(sc, M_TAG, sc->i + 1, strcspn(p + 1, " \t\r\n/>"));
            sc->i += (size_t)(end - p) + 1;
            return 0;
        }
    } else if (*p == '&') {
        size_t k = 1;
        while (k < left && k < 12 && (isalnum((unsigned char)p[k]) || p[k] == '#'))
            k++;
        if (k > 1 && k < left && p[k] == ';') {
            unsigned long cp = 0;
            if (p[1] == '#')
                cp = (p[2] == 'x' || p[2] == 'X') ? strtoul(p + 3, NULL, 16)
                                                  : strtoul(p + 2, NULL, 10);
            sc->i += k + 1;
            return cp > 0xFFFF ? 2 : 1;
        }
    }
    return text_char(sc);
}

/* After "](" of a link: its URL up to the ")", escapes included. */
static void skip_url(struct scan *sc)
{
    sc->i++;
    while (sc->i < sc->n && sc->s[sc->i] != ')')
        sc->i += sc->s[sc->i] == '\\' && sc->i + 1 < sc->n ? 2 : 1;
    if (sc->i < sc->n)
        sc->i++;
}

/* Telegram's MarkdownV2, as its parser reads it: a marker closes the
 * innermost entity when it is of that kind, else opens one ("__" is
 * underline, greedily); inside code only ` and \ mean anything. */
static size_t md_step(struct scan *sc)
{
    const char *p = sc->s + sc->i;
    size_t left = sc->n - sc->i;
    char next = left > 1 ? p[1] : '\0';
    int in = top(sc);
    if (*p == '\\' && left > 1) {
        sc->i++;
        size_t w = text_char(sc);
        return (unsigned char)next < 0x80 ? w : w + 1;  /* not an escape: both show */
    }
    if (in == M_PRE || in == M_CODE) {
        if (in == M_PRE && left >= 3 && !memcmp(p, "```", 3)) {
            pop(sc);
            sc->i += 3;
            return 0;
        }
        if (in == M_CODE && *p == '`') {
            pop(sc);
            sc->i++;
            return 0;
        }
        return text_char(sc);
    }
    switch (*p) {
    case '`':
        if (left >= 3 && !memcmp(p, "```", 3)) {
            push(sc, M_PRE, 0, 0);
            sc->i += 3;
        } else {
            push(sc, M_CODE, 0, 0);
            sc->i++;
        }
        return 0;
    case '*': toggle(sc, M_BOLD, 1); return 0;
    case '~': toggle(sc, M_STRIKE, 1); return 0;
    case '_':
        if (in == M_ITALIC && next != '_')
            toggle(sc, M_ITALIC, 1);
        else if (next == '_')
            toggle(sc, M_UNDERLINE, 2);
        else
            toggle(sc, M_ITALIC, 1);
        return 0;
    case '|':
        if (next != '|')
            break;
        toggle(sc, M_SPOILER, 2);
        return 0;
    case '!':
        if (next != '[')
            break;
        push(sc, M_LINK, 0, 0);     /* a custom emoji: ![👍](tg://emoji?id=...) */
        sc->i += 2;
        return 0;
    case '[':
        push(sc, M_LINK, 0, 0);
        sc->i++;
        return 0;
    case ']':
        if (in != M_LINK)
            break;
        pop(sc);
        sc->i++;
        if (sc->i < sc->n && sc->s[sc->i] == '(')
            skip_url(sc);
        return 0;
    case '>':
        if (sc->i > 0 && p[-1] != '\n')
            break;
        sc->i++;                    /* a quote: markup, ends with its line */
        return 0;
    default:
        break;
    }
    return text_char(sc);
}

static size_t step(struct scan *sc)
{
    sc->bad = 0;
    if (sc->mode == PM_HTML)
        return html_step(sc);
    if (sc->mode == PM_MARKDOWN_V2)
        return md_step(sc);
    return text_char(sc);
}

size_t vg_telegram_length(const char *text, int mode)
{
    struct scan sc = {.s = text, .n = strlen(text), .mode = mode};
    size_t len = 0;
    while (sc.i < sc.n)
        len += step(&sc);
    return len;
}

/* What a cut leaves open, closed again, innermost first. */
static void close_open(struct vg_tpl_buf *b, const struct scan *sc, int depth)
{
    static const char *const md_end[] = {
        [M_BOLD] = "*", [M_ITALIC] = "_", [M_UNDERLINE] = "__", [M_STRIKE] = "~",
        [M_SPOILER] = "||", [M_CODE] = "`", [M_PRE] = "```",
    };
    for (int k = depth - 1; k >= 0; k--) {
        const struct open_entity *e = &sc->open[k];
        if (e->kind == M_TAG) {
            vg_tpl_put(b, "</", 2, VG_TPL_PLAIN);
            vg_tpl_put(b, sc->s + e->name, e->name_len, VG_TPL_PLAIN);
            vg_tpl_put(b, ">", 1, VG_TPL_PLAIN);
            continue;
        }
        /* "_" then "__" would read as "__" + "_": an empty bold entity
         * between them is Telegram's own advice. */
        if (e->kind == M_UNDERLINE && k + 1 < depth && sc->open[k + 1].kind == M_ITALIC)
            vg_tpl_put(b, "**", 2, VG_TPL_PLAIN);
        const char *end = md_end[e->kind] ? md_end[e->kind] : "";
        vg_tpl_put(b, end, strlen(end), VG_TPL_PLAIN);
    }
}

/* The text with at most limit characters (>= 1) as Telegram counts them, cut
 * cleanly with "…" when it is longer; bytes that are not UTF-8 become U+FFFD.
 * NULL when out of memory. */
char *vg_telegram_fit(const char *text, int mode, size_t limit)
{
    static const char ellipsis[] = "\xe2\x80\xa6", replacement[] = "\xef\xbf\xbd";
    size_t total = vg_telegram_length(text, mode);
    size_t budget = total <= limit ? total : limit - 1, used = 0;
    struct scan sc = {.s = text, .n = strlen(text), .mode = mode};
    struct vg_tpl_buf b = {0};
    vg_tpl_put(&b, "", 0, VG_TPL_PLAIN);
    while (sc.i < sc.n) {
        size_t at = sc.i;
        sc.out_n = b.n;
        size_t w = step(&sc);
        if (w && used + w > budget) {
            sc.i = at;              /* a character: the scan state is unchanged */
            break;
        }
        used += w;
        if (sc.bad)
            vg_tpl_put(&b, replacement, 3, VG_TPL_PLAIN);
        else
            vg_tpl_put(&b, text + at, sc.i - at, VG_TPL_PLAIN);
    }
    if (sc.i < sc.n) {
        int depth = sc.depth;
        /* A link cannot be closed without its URL, which comes after its
         * text: cut before the link instead. */
        for (int k = 0; k < sc.depth; k++)
            if (sc.open[k].kind == M_LINK) {
                if (!b.failed)
                    b.n = sc.open[k].out_at;
                depth = k;
                break;
            }
        vg_tpl_put(&b, ellipsis, 3, VG_TPL_PLAIN);
        close_open(&b, &sc, depth);
    }
    if (b.failed) {
        free(b.p);
        return NULL;
    }
    if (!b.p)
        return strdup("");      /* nothing was put: vg_tpl_put allocates lazily */
    b.p[b.n] = '\0';
    return b.p;
}

/* ---- configuration ---- */

struct chats {
    int n;
    char id[CHATS_MAX][CHAT_ID_MAX];
};

static int chat_ok(const char *c, size_t n)
{
    size_t k = 0;
    if (n && c[0] == '@') {
        for (k = 1; k < n && (isalnum((unsigned char)c[k]) || c[k] == '_'); k++)
            ;
        return n >= 2 && n <= 33 && k == n;
    }
    if (n && c[0] == '-')
        k = 1;
    size_t digits = k;
    for (; k < n && isdigit((unsigned char)c[k]); k++)
        ;
    return k == n && n > digits && n - digits <= 20;
}

static vg_status parse_chats(const char *list, struct chats *out, const char *where)
{
    memset(out, 0, sizeof(*out));
    for (const char *p = list; *p;) {
        size_t n = strcspn(p, ",");
        const char *c = p;
        p += n + (p[n] == ',');
        while (n && isspace((unsigned char)*c))
            c++, n--;
        while (n && isspace((unsigned char)c[n - 1]))
            n--;
        if (!n)
            continue;
        if (!chat_ok(c, n))
            return vg_errf(VG_ERR_CONFIG, "%s: chat_ids: \"%.*s\" is neither a numeric chat "
                           "id nor an @channelname", where, (int)(n < 40 ? n : 40), c);
        if (out->n == CHATS_MAX)
            return vg_errf(VG_ERR_CONFIG, "%s: chat_ids: more than %d chats", where, CHATS_MAX);
        for (int i = 0; i < out->n; i++)
            if (strlen(out->id[i]) == n && !memcmp(out->id[i], c, n))
                return vg_errf(VG_ERR_CONFIG, "%s: chat_ids: %.*s is listed twice", where,
                               (int)n, c);
        memcpy(out->id[out->n], c, n);
        out->id[out->n++][n] = '\0';
    }
    if (!out->n)
        return vg_errf(VG_ERR_CONFIG, "%s: a telegram sink needs chat_ids (numeric ids or "
                       "@channelname, comma-separated)", where);
    return VG_OK;
}

/* "<bot id>:<secret>" as @BotFather issues it; checked so that it can go in a
 * URL's path as it is. Errors never quote it. */
static int token_ok(const char *t)
{
    size_t id = strspn(t, "0123456789");
    if (id == 0 || t[id] != ':' || !t[id + 1])
        return 0;
    for (const char *p = t + id + 1; *p; p++)
        if (!isalnum((unsigned char)*p) && *p != '_' && *p != '-')
            return 0;
    return 1;
}

static vg_status telegram_check(const void *settings, const char *where)
{
    const struct telegram_settings *s = settings;
    struct chats chats;
    if (!s->token[0])
        return vg_errf(VG_ERR_CONFIG, "%s: a telegram sink needs a token (key token, or "
                       "VIGIL_SINK_<NAME>_TOKEN or its _FILE form)", where);
    if (!token_ok(s->token))
        return vg_errf(VG_ERR_CONFIG, "%s: the token is not a bot token (<digits>:<letters, "
                       "digits, '_' and '-'>, as @BotFather gives it)", where);
    if (!vg_sink_is_http_url(s->api_base))
        return vg_errf(VG_ERR_CONFIG, "%s: api_base must be an http(s) URL", where);
    return parse_chats(s->chat_ids, &chats, where);
}

static enum vg_tpl_escape telegram_escape(const void *settings)
{
    const struct telegram_settings *s = settings;
    return s->parse_mode == PM_HTML          ? VG_TPL_HTML
           : s->parse_mode == PM_MARKDOWN_V2 ? VG_TPL_MARKDOWN_V2
                                             : VG_TPL_PLAIN;
}

/* ---- the sink ---- */

struct progress {
    char alert_id[VG_ID_MAX];
    unsigned done;              /* bit i: chat i has the alert */
};

struct telegram {
    CURL *curl;                 /* kept between alerts for connection reuse */
    const struct telegram_settings *set;
    int timeout_ms;
    int own_text;               /* the configuration has a text template */
    char base[VG_URL_MAX];      /* api_base without trailing slashes */
    char origin[VG_URL_MAX];    /* scheme://host[:port], safe to log */
    struct chats chats;
    struct progress progress[PROGRESS_SLOTS];
    unsigned next_slot;
};

/* What goes out in one attempt, made once for every chat. */
struct outgoing {
    const struct vg_sink_alert *a;
    char *text;                 /* the rendered text, trailing blanks dropped */
    int mode;                   /* its parse mode */
    char *caption;              /* text fitted for sendPhoto / sendMessage */
    char *message;
    int photo;                  /* still sending photos (none refused yet) */
};

enum outcome { SENT, PHOTO_REFUSED, TRANSIENT, REFUSED };

/* One API call's answer. */
struct answer {
    long http;
    int error_code;
    int64_t retry_after_ms;
    long long migrate_to;
    char description[DESC_MAX + 1];
};

/* s quoted into out: control characters as spaces, the token as "***"
 * (curl's messages and an answer could echo the URL, which holds it). */
static void quote_safe(char *out, size_t cap, const char *s, const char *token)
{
    size_t n = 0, tlen = strlen(token);
    while (*s && n + 1 < cap) {
        if (tlen && !strncmp(s, token, tlen)) {
            for (const char *m = "***"; *m && n + 1 < cap; m++)
                out[n++] = *m;
            s += tlen;
            continue;
        }
        unsigned char c = (unsigned char)*s++;
        out[n++] = c < 0x20 || c == 0x7f ? ' ' : (char)c;
    }
    out[n] = '\0';
}

static void read_answer(const struct telegram *t, const struct vg_curl_body *body,
                        struct answer *ans)
{
    json_t *j = body->len && !body->too_large ? json_loadb(body->data, body->len, 0, NULL)
                                              : NULL;
    json_t *params = json_object_get(j, "parameters");
    json_t *code = json_object_get(j, "error_code");
    json_int_t ra = json_integer_value(json_object_get(params, "retry_after"));
    const char *desc = json_string_value(json_object_get(j, "description"));
    ans->error_code = json_is_integer(code) ? (int)json_integer_value(code) : 0;
    ans->retry_after_ms = ra > 0 && ra < 86400 ? (int64_t)ra * 1000 : 0;
    ans->migrate_to = json_integer_value(json_object_get(params, "migrate_to_chat_id"));
    if (desc)
        quote_safe(ans->description, sizeof(ans->description), desc, t->set->token);
    else if (body->len && !j)
        snprintf(ans->description, sizeof(ans->description), "an answer that is not JSON");
    if (ans->http == 200 && j && !json_is_true(json_object_get(j, "ok")) && ans->error_code)
        ans->http = ans->error_code;    /* {"ok":false} with 200: go by its code */
    json_decref(j);
}

/* Telegram's refusals of the picture itself; the text can still go. */
static int photo_refused(const struct answer *ans)
{
    static const char *const marks[] = {"PHOTO_", "IMAGE_PROCESS_FAILED", "file is too big",
                                        "too large", "wrong type of the web page content",
                                        NULL};
    if (ans->http == 413)
        return 1;
    if (ans->http != 400)
        return 0;
    for (int i = 0; marks[i]; i++)
        if (strcasestr(ans->description, marks[i]))
            return 1;
    return 0;
}

static enum outcome classify(const struct telegram *t, const char *method, CURLcode rc,
                             const char *errbuf, const struct vg_curl_body *body,
                             struct answer *ans, char *err, size_t cap)
{
    char what[CURL_ERROR_SIZE];
    if (rc != CURLE_OK && !(rc == CURLE_WRITE_ERROR && body->too_large)) {
        quote_safe(what, sizeof(what), errbuf[0] ? errbuf : curl_easy_strerror(rc),
                   t->set->token);
        snprintf(err, cap, "%s: POST %.80s: %.200s", method, t->origin, what);
        return TRANSIENT;
    }
    curl_easy_getinfo(t->curl, CURLINFO_RESPONSE_CODE, &ans->http);
    read_answer(t, body, ans);
    if (ans->http >= 200 && ans->http < 300)
        return SENT;
    snprintf(err, cap, "%s: HTTP %ld%s%s", method, ans->http, ans->description[0] ? ": " : "",
             ans->description);
    if (ans->http == 429 || ans->http == 408 || ans->http >= 500)
        return TRANSIENT;
    if (!strcmp(method, "sendPhoto") && photo_refused(ans))
        return PHOTO_REFUSED;
    if (ans->migrate_to) {
        size_t n = strlen(err);
        snprintf(err + n, cap - n, " (the group is now the supergroup %lld: put that id in "
                 "chat_ids)", ans->migrate_to);
    }
    return REFUSED;
}

static void set_common(struct telegram *t, const char *url, struct vg_curl_body *body,
                       char *errbuf, long timeout_ms, struct curl_slist *headers)
{
    CURL *c = t->curl;
    curl_easy_setopt(c, CURLOPT_URL, url);
    curl_easy_setopt(c, CURLOPT_PROTOCOLS_STR, "http,https");
    curl_easy_setopt(c, CURLOPT_FOLLOWLOCATION, 0L);
    curl_easy_setopt(c, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(c, CURLOPT_USERAGENT, "vigil-notifier/1");
    curl_easy_setopt(c, CURLOPT_HTTPHEADER, headers);
    curl_easy_setopt(c, CURLOPT_TIMEOUT_MS, timeout_ms);
    curl_easy_setopt(c, CURLOPT_CONNECTTIMEOUT_MS,
                     timeout_ms < CONNECT_TIMEOUT_MAX_MS ? timeout_ms
                                                         : (long)CONNECT_TIMEOUT_MAX_MS);
    curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, vg_curl_body_write);
    curl_easy_setopt(c, CURLOPT_WRITEDATA, body);
    curl_easy_setopt(c, CURLOPT_ERRORBUFFER, errbuf);
}

/* One POST of a JSON body or a form, within the attempt's deadline. */
static enum outcome post(struct telegram *t, const char *method, const char *json,
                         curl_mime *form, int64_t deadline_us, struct answer *ans, char *err,
                         size_t cap)
{
    char url[VG_URL_MAX + 192], errbuf[CURL_ERROR_SIZE] = "";
    struct vg_curl_body body = {0};
    struct curl_slist *h = NULL, *tmp;
    int64_t left_ms = (deadline_us - vg_mono_us()) / 1000;
    memset(ans, 0, sizeof(*ans));
    if (left_ms < 1) {
        snprintf(err, cap, "%s: no time left in this attempt (timeout_ms %d)", method,
                 t->timeout_ms);
        return TRANSIENT;
    }
    /* "Expect:" stops curl from waiting for 100-continue before a photo. */
    if (!(tmp = curl_slist_append(h, "Expect:")) || !(h = tmp) ||
        (json && (!(tmp = curl_slist_append(h, "Content-Type: application/json")) ||
                  !(h = tmp)))) {
        curl_slist_free_all(h);
        snprintf(err, cap, "%s: out of memory", method);
        return TRANSIENT;
    }
    snprintf(url, sizeof(url), "%s/bot%s/%s", t->base, t->set->token, method);
    set_common(t, url, &body, errbuf, (long)left_ms, h);
    if (form)
        curl_easy_setopt(t->curl, CURLOPT_MIMEPOST, form);
    else
        curl_easy_setopt(t->curl, CURLOPT_POSTFIELDS, json);
    CURLcode rc = curl_easy_perform(t->curl);
    enum outcome o = classify(t, method, rc, errbuf, &body, ans, err, cap);
    /* The handle keeps its connections, not our pointers or the URL. */
    curl_easy_reset(t->curl);
    explicit_bzero(url, sizeof(url));
    curl_slist_free_all(h);
    free(body.data);
    return o;
}

static int add_part(curl_mime *m, const char *name, const void *data, size_t len,
                    const char *filename)
{
    curl_mimepart *p = curl_mime_addpart(m);
    return p && curl_mime_name(p, name) == CURLE_OK && curl_mime_data(p, data, len) == CURLE_OK &&
           (!filename || (curl_mime_filename(p, filename) == CURLE_OK &&
                          curl_mime_type(p, "image/jpeg") == CURLE_OK));
}

static enum outcome send_photo(struct telegram *t, const char *chat, struct outgoing *o,
                               int64_t deadline_us, struct answer *ans, char *err, size_t cap)
{
    const struct telegram_settings *s = t->set;
    if (!o->caption && !(o->caption = vg_telegram_fit(o->text, o->mode, CAPTION_MAX)))
        return snprintf(err, cap, "sendPhoto: out of memory"), TRANSIENT;
    curl_mime *m = curl_mime_init(t->curl);
    int ok = m && add_part(m, "chat_id", chat, CURL_ZERO_TERMINATED, NULL) &&
             (!o->caption[0] || add_part(m, "caption", o->caption, CURL_ZERO_TERMINATED, NULL)) &&
             (o->mode == PM_NONE ||
              add_part(m, "parse_mode", parse_modes[o->mode], CURL_ZERO_TERMINATED, NULL)) &&
             (!s->disable_notification ||
              add_part(m, "disable_notification", "true", CURL_ZERO_TERMINATED, NULL)) &&
             add_part(m, "photo", o->a->snapshot, o->a->snapshot_len, "snapshot.jpg");
    enum outcome r = TRANSIENT;
    if (ok)
        r = post(t, "sendPhoto", NULL, m, deadline_us, ans, err, cap);
    else
        snprintf(err, cap, "sendPhoto: out of memory");
    curl_mime_free(m);
    return r;
}

static char *message_json(const struct telegram *t, const char *chat, const struct outgoing *o)
{
    /* NULL for text that is not UTF-8; the fitting made sure it is. */
    json_t *j = json_pack("{s:s, s:s, s:{s:b}}", "chat_id", chat, "text", o->message,
                          "link_preview_options", "is_disabled", 1);
    int bad = !j;
    if (!bad && o->mode != PM_NONE)
        bad = json_object_set_new(j, "parse_mode", json_string(parse_modes[o->mode]));
    if (!bad && t->set->disable_notification)
        bad = json_object_set_new(j, "disable_notification", json_true());
    char *out = bad ? NULL : json_dumps(j, JSON_COMPACT);
    json_decref(j);
    return out;
}

static enum outcome send_message(struct telegram *t, const char *chat, struct outgoing *o,
                                 int64_t deadline_us, struct answer *ans, char *err, size_t cap)
{
    if (!o->message && !(o->message = vg_telegram_fit(o->text, o->mode, MESSAGE_MAX)))
        return snprintf(err, cap, "sendMessage: out of memory"), TRANSIENT;
    char *body = message_json(t, chat, o);
    if (!body)
        return snprintf(err, cap, "sendMessage: out of memory"), TRANSIENT;
    enum outcome r = post(t, "sendMessage", body, NULL, deadline_us, ans, err, cap);
    free(body);
    return r;
}

/* The alert to one chat: the photo with its caption, or the text alone. A
 * refused photo is not sent to the remaining chats either. */
static enum outcome send_chat(struct telegram *t, const char *chat, struct outgoing *o,
                              int64_t deadline_us, struct answer *ans, char *err, size_t cap)
{
    memset(ans, 0, sizeof(*ans));
    if (o->photo) {
        enum outcome r = send_photo(t, chat, o, deadline_us, ans, err, cap);
        if (r != PHOTO_REFUSED)
            return r;
        o->photo = 0;
    }
    return send_message(t, chat, o, deadline_us, ans, err, cap);
}

static void trim_end(char *s, int mode)
{
    size_t n = strlen(s);
    while (n && strchr(" \t\r\n", s[n - 1])) {
        size_t bs = 0;      /* "\ " in MarkdownV2 is an escaped blank: keep it */
        while (mode == PM_MARKDOWN_V2 && bs + 1 < n && s[n - 2 - bs] == '\\')
            bs++;
        if (bs % 2)
            break;
        n--;
    }
    s[n] = '\0';
}

/* The text in the sink's markup: the notifier's rendering, or for an alert
 * with the default template in MarkdownV2 or none, the mode's own default.
 * Nothing left (a template of blanks): the one-line title, unmarked. */
static vg_status make_text(const struct telegram *t, const struct vg_sink_alert *a,
                           struct outgoing *o)
{
    o->mode = t->set->parse_mode;
    if (a->kind == VG_SINK_KIND_ALERT && !t->own_text && o->mode != PM_HTML) {
        struct vg_tpl_ctx c = {a->alert, a->snapshot_url, a->clip_url, a->count};
        const char *src = o->mode == PM_MARKDOWN_V2 ? DEFAULT_TEXT_MD2 : DEFAULT_TEXT_PLAIN;
        vg_status st = vg_tpl_render(src, &c, telegram_escape(t->set), &o->text);
        if (st != VG_OK)
            return st;
    } else if (!(o->text = strdup(a->text))) {
        return vg_errf(VG_ERR_NOMEM, "telegram text");
    }
    trim_end(o->text, o->mode);
    if (!o->text[0]) {
        free(o->text);
        o->mode = PM_NONE;
        if (!(o->text = strdup(a->title[0] ? a->title : "vigil alert")))
            return vg_errf(VG_ERR_NOMEM, "telegram text");
    }
    return VG_OK;
}

static struct progress *progress_find(struct telegram *t, const struct vg_sink_alert *a)
{
    if (a->kind != VG_SINK_KIND_ALERT || !a->alert->alert_id || !a->alert->alert_id[0])
        return NULL;
    for (int i = 0; i < PROGRESS_SLOTS; i++)
        if (!strcmp(t->progress[i].alert_id, a->alert->alert_id))
            return &t->progress[i];
    return NULL;
}

/* Remember which chats have an alert still missing somewhere; forget it
 * once all have it. The oldest entry makes room. */
static void progress_keep(struct telegram *t, const struct vg_sink_alert *a, unsigned done,
                          int complete)
{
    struct progress *p = progress_find(t, a);
    if (complete || a->kind != VG_SINK_KIND_ALERT || !a->alert->alert_id) {
        if (p)
            memset(p, 0, sizeof(*p));
        return;
    }
    if (!p) {
        p = &t->progress[t->next_slot++ % PROGRESS_SLOTS];
        snprintf(p->alert_id, sizeof(p->alert_id), "%s", a->alert->alert_id);
    }
    p->done = done;
}

static void telegram_deliver(void *state, const struct vg_sink_alert *a, struct vg_sink_result *r)
{
    struct telegram *t = state;
    struct outgoing o = {.a = a};
    struct answer ans;
    char err[VG_SINK_ERROR_MAX] = "", first_refusal[VG_SINK_ERROR_MAX] = "";
    int n = t->chats.n, transient = 0, refused = 0;
    int64_t retry_after_ms = 0, deadline_us = vg_mono_us() + (int64_t)t->timeout_ms * 1000;

    if (make_text(t, a, &o) != VG_OK) {
        vg_sink_fail(r, VG_SINK_RETRY, "%s", vg_err_detail());
        return;
    }
    o.photo = t->set->photo && a->kind == VG_SINK_KIND_ALERT && a->snapshot &&
              a->snapshot_len > 0 && a->snapshot_len <= PHOTO_MAX;
    struct progress *p = progress_find(t, a);
    unsigned done = p ? p->done : 0;
    for (int i = 0; i < n && !transient; i++) {
        if (done & (1u << i))
            continue;
        char one[VG_SINK_ERROR_MAX - 64];
        switch (send_chat(t, t->chats.id[i], &o, deadline_us, &ans, one, sizeof(one))) {
        case SENT:
            done |= 1u << i;
            break;
        case TRANSIENT:
            transient = 1;
            retry_after_ms = ans.retry_after_ms;
            snprintf(err, sizeof(err), "chat %s: %s", t->chats.id[i], one);
            break;
        default:
            if (!refused++)
                snprintf(first_refusal, sizeof(first_refusal), "chat %s: %s", t->chats.id[i],
                         one);
            break;
        }
    }
    int have = __builtin_popcount(done);
    progress_keep(t, a, done, have == n);
    if (have < n) {
        const char *why = transient ? err : first_refusal;
        if (n > 1)
            vg_sink_fail(r, transient ? VG_SINK_RETRY : VG_SINK_PERMANENT,
                         "%s (%d of %d chats have it)", why, have, n);
        else
            vg_sink_fail(r, transient ? VG_SINK_RETRY : VG_SINK_PERMANENT, "%s", why);
        r->retry_after_ms = transient ? retry_after_ms : 0;
    }
    free(o.text);
    free(o.caption);
    free(o.message);
}

static void telegram_cleanup(void *state)
{
    struct telegram *t = state;
    if (!t)
        return;
    curl_easy_cleanup(t->curl);
    free(t);
}

static vg_status telegram_init(void **state, const struct vg_sink_cfg *cfg,
                              const struct vg_config *root)
{
    (void)root;
    const struct telegram_settings *s = (const struct telegram_settings *)cfg->settings;
    struct telegram *t = calloc(1, sizeof(*t));
    if (!t)
        return vg_errf(VG_ERR_NOMEM, "telegram sink");
    vg_status st = parse_chats(s->chat_ids, &t->chats, cfg->name);
    if (st != VG_OK) {
        free(t);
        return st;
    }
    if (!(t->curl = curl_easy_init())) {
        free(t);
        return vg_errf(VG_ERR_NOMEM, "curl handle");
    }
    t->set = s;
    t->timeout_ms = cfg->timeout_ms;
    t->own_text = cfg->text[0] != '\0';
    snprintf(t->base, sizeof(t->base), "%s", s->api_base);
    for (size_t n = strlen(t->base); n > 0 && t->base[n - 1] == '/'; n--)
        t->base[n - 1] = '\0';
    vg_sink_url_origin(t->origin, sizeof(t->origin), t->base);
    *state = t;
    return VG_OK;
}

const struct vg_sink_ops vg_sink_telegram = {
    .name = "telegram",
    .caps = VG_SINK_CAP_SNAPSHOT,
    .default_text = DEFAULT_TEXT_HTML,
    .text_escape = telegram_escape,
    .default_incidents = VG_SINK_INCIDENTS_ESCALATE,
    .opts = telegram_opts,
    .settings_size = sizeof(struct telegram_settings),
    .default_timeout_ms = 10000,
    .check = telegram_check,
    .init = telegram_init,
    .deliver = telegram_deliver,
    .cleanup = telegram_cleanup,
};
