/* PutMedia uploader: a bounded cluster queue fed by the muxer, one sender
 * thread running the chunked libcurl transfer through a multi handle (so a
 * producer can wake it with curl_multi_wakeup), acknowledgements parsed as
 * they stream in. See kvs_putmedia.h. */
#include "aws/kvs_putmedia.h"

#include <poll.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>

#include <curl/curl.h>
#include <jansson.h>
#include <openssl/crypto.h>

#include "aws/kvs.h"
#include "aws/sigv4.h"
#include "log.h"
#include "metrics.h"
#include "timeutil.h"

#define MEDIA_ENV "AWS_ENDPOINT_URL_KINESIS_VIDEO_MEDIA"
#define EMPTY_SHA256 "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
#define ACK_MAX 4096            /* one acknowledgement object; longer ones are garbage */
#define ERR_BODY_MAX 4096
#define STOP_DRAIN_US 2000000LL
#define POLL_MS 200

static const char *const ack_names[VG_KVS_ACK__N] = {
    "BUFFERING", "RECEIVED", "PERSISTED", "ERROR", "IDLE",
};
static const char *const ack_labels[VG_KVS_ACK__N] = {
    "buffering", "received", "persisted", "error", "idle",
};

struct item {
    struct item *next;
    uint64_t gen;               /* the header it belongs to */
    int64_t tc_ms;
    size_t len;
    uint8_t data[];
};

/* How a session ended, for the reconnect decision. */
enum outcome { S_NOTHING, S_ENDED, S_CLOSED, S_ERROR_ACK, S_FAILED };

/* One PutMedia request; only the sender thread touches it. */
struct conn {
    struct vg_kvs_put *p;
    CURL *easy;
    struct curl_slist *hdrs;
    char url[VG_KVS_ENDPOINT_MAX + 16];
    uint64_t gen;
    uint8_t *header;
    size_t header_len, header_off;
    struct item *cur;           /* the cluster being sent */
    size_t cur_off;
    int paused, ending, abort, error_ack, got_ok_ack, headers_done, peer_closed;
    int64_t unacked_since_us;   /* first cluster sent since the last ack; 0: none */
    int64_t refused_us;         /* when a non-200 answer came */
    curl_socket_t fd;
    long status;
    char error_type[128];
    char *err_body;
    size_t err_len;
    char ack[ACK_MAX];
    size_t ack_len;
    int depth, in_str, esc, overflow;
};

struct vg_kvs_put {
    struct vg_aws *aws;
    struct vg_kvs_put_opts o;
    char stream[257], camera[128];
    pthread_t th;
    pthread_mutex_t mu;         /* queue, header, gen, stop, st */
    CURLM *multi;
    int stop;
    struct item *head, *tail;
    size_t queued;
    uint8_t *header;
    size_t header_len;
    uint64_t gen;
    struct vg_kvs_put_stats st;
    char endpoint[VG_KVS_ENDPOINT_MAX];   /* sender thread only */
    struct vg_counter *acks[VG_KVS_ACK__N], *connects, *conn_errors, *dropped, *bytes,
        *queue_gauge, *connected_gauge;
};

const char *vg_kvs_ack_name(enum vg_kvs_ack a)
{
    return (unsigned)a < VG_KVS_ACK__N ? ack_names[a] : "UNKNOWN";
}

/* The ErrorId list of the PutMedia API reference. */
const char *vg_kvs_error_text(int id)
{
    static const struct {
        int id;
        const char *text;
    } t[] = {
        {4000, "error reading the data stream"},
        {4001, "fragment larger than the 50 MB limit"},
        {4002, "fragment longer than the 10 s limit"},
        {4003, "connection open longer than the service allows"},
        {4004, "fragment timecode lower than the previous one"},
        {4005, "more than one track in the MKV"},
        {4006, "input is not valid MKV"},
        {4007, "invalid producer timestamp"},
        {4008, "the stream no longer exists"},
        {4009, "fragment metadata limit reached"},
        {4010, "a frame's track number is not in the MKV header"},
        {4011, "a fragment has no frame for a track of the MKV header"},
        {4012, "more tracks than allowed"},
        {4500, "access to the stream's KMS key denied"},
        {4501, "the stream's KMS key is disabled"},
        {4502, "the stream's KMS key failed validation"},
        {4503, "the stream's KMS key is unavailable"},
        {4504, "invalid use of the stream's KMS key"},
        {4505, "the stream's KMS key is in an invalid state"},
        {4506, "the stream's KMS key was not found"},
        {5000, "internal service error"},
        {5001, "the service failed to persist fragments"},
    };
    for (size_t i = 0; i < sizeof(t) / sizeof(t[0]); i++)
        if (t[i].id == id)
            return t[i].text;
    return "unknown error";
}

/* ---- the queue (producer side) ------------------------------------------- */

static void free_items(struct item *it)
{
    while (it) {
        struct item *next = it->next;
        free(it);
        it = next;
    }
}

/* Drop the head; p->mu held. */
static void drop_head(struct vg_kvs_put *p)
{
    struct item *it = p->head;
    p->head = it->next;
    if (!p->head)
        p->tail = NULL;
    p->queued -= it->len;
    p->st.clusters_dropped++;
    vg_counter_inc(p->dropped);
    free(it);
}

vg_status vg_kvs_put_header(struct vg_kvs_put *p, const void *data, size_t len)
{
    if (!len)
        return vg_errf(VG_ERR_INVALID, "kvs putmedia: empty header");
    uint8_t *copy = malloc(len);
    if (!copy)
        return VG_ERR_NOMEM;
    memcpy(copy, data, len);
    pthread_mutex_lock(&p->mu);
    free(p->header);
    p->header = copy;
    p->header_len = len;
    p->gen++;
    pthread_mutex_unlock(&p->mu);
    curl_multi_wakeup(p->multi);
    return VG_OK;
}

vg_status vg_kvs_put_cluster(struct vg_kvs_put *p, const void *data, size_t len,
                             int64_t timecode_ms)
{
    size_t cap = p->o.queue_bytes;
    if (len > cap || len > VG_KVS_MAX_FRAGMENT) {
        pthread_mutex_lock(&p->mu);
        p->st.clusters_dropped++;
        pthread_mutex_unlock(&p->mu);
        vg_counter_inc(p->dropped);
        return vg_errf(VG_ERR_TOO_LARGE, "kvs putmedia %s: cluster of %zu bytes is larger than "
                       "the queue (%zu bytes) or the 50 MB fragment limit", p->stream, len, cap);
    }
    struct item *it = malloc(sizeof(*it) + len);
    if (!it)
        return VG_ERR_NOMEM;
    memcpy(it->data, data, len);
    it->len = len;
    it->tc_ms = timecode_ms;
    it->next = NULL;
    uint64_t dropped = 0;
    pthread_mutex_lock(&p->mu);
    if (!p->header) {
        pthread_mutex_unlock(&p->mu);
        free(it);
        return vg_errf(VG_ERR_INVALID, "kvs putmedia %s: a cluster before the header", p->stream);
    }
    /* Whole clusters, oldest first: what is left still has increasing
     * timecodes, and the newest video is the one worth having. */
    while (p->head && p->queued + len > cap) {
        drop_head(p);
        dropped++;
    }
    it->gen = p->gen;
    if (p->tail)
        p->tail->next = it;
    else
        p->head = it;
    p->tail = it;
    p->queued += len;
    p->st.clusters_queued++;
    size_t queued = p->queued;
    pthread_mutex_unlock(&p->mu);
    vg_gauge_set(p->queue_gauge, (int64_t)queued);
    if (dropped)
        VG_WARN("kvs.dropped", p->camera, "stream %s: upload queue full (%zu bytes): dropped %llu "
                "older cluster(s)", p->stream, cap, (unsigned long long)dropped);
    curl_multi_wakeup(p->multi);
    return VG_OK;
}

void vg_kvs_put_get_stats(struct vg_kvs_put *p, struct vg_kvs_put_stats *out)
{
    pthread_mutex_lock(&p->mu);
    *out = p->st;
    out->queued_bytes = p->queued;
    pthread_mutex_unlock(&p->mu);
}

/* ---- curl callbacks (sender thread) --------------------------------------- */

/* n bytes of s into out, cut to fit, NUL-terminated. */
static void copy_text(char *out, size_t cap, const char *s, size_t n)
{
    if (n >= cap)
        n = cap - 1;
    memcpy(out, s, n);
    out[n] = '\0';
}

static size_t on_read(char *buf, size_t size, size_t n, void *ctx)
{
    struct conn *c = ctx;
    struct vg_kvs_put *p = c->p;
    size_t cap = size * n, k;
    if (c->abort)
        return CURL_READFUNC_ABORT;
    if (c->header_off < c->header_len) {
        k = c->header_len - c->header_off < cap ? c->header_len - c->header_off : cap;
        memcpy(buf, c->header + c->header_off, k);
        c->header_off += k;
        goto sent;
    }
    if (!c->cur) {
        pthread_mutex_lock(&p->mu);
        struct item *it = p->head;
        /* A newer header: this MKV stream ends here, the next request
         * starts the new one. */
        if (p->stop || (it && it->gen != c->gen) || (!it && p->gen != c->gen)) {
            pthread_mutex_unlock(&p->mu);
            c->ending = 1;
            return 0;
        }
        if (!it) {
            pthread_mutex_unlock(&p->mu);
            c->paused = 1;
            return CURL_READFUNC_PAUSE;
        }
        p->head = it->next;
        if (!p->head)
            p->tail = NULL;
        p->queued -= it->len;
        pthread_mutex_unlock(&p->mu);
        c->cur = it;
        c->cur_off = 0;
    }
    k = c->cur->len - c->cur_off < cap ? c->cur->len - c->cur_off : cap;
    memcpy(buf, c->cur->data + c->cur_off, k);
    c->cur_off += k;
    if (c->cur_off == c->cur->len) {
        pthread_mutex_lock(&p->mu);
        p->st.clusters_sent++;
        pthread_mutex_unlock(&p->mu);
        free(c->cur);
        c->cur = NULL;
        if (!c->unacked_since_us)
            c->unacked_since_us = vg_mono_us();
    }
sent:
    pthread_mutex_lock(&p->mu);
    p->st.bytes_sent += k;
    pthread_mutex_unlock(&p->mu);
    vg_counter_add(p->bytes, k);
    return k;
}

static int64_t json_int(json_t *v)
{
    if (json_is_integer(v))
        return (int64_t)json_integer_value(v);
    if (json_is_real(v))
        return (int64_t)json_real_value(v);
    if (json_is_string(v))
        return strtoll(json_string_value(v), NULL, 10);
    return 0;
}

static void handle_ack(struct conn *c, json_t *j)
{
    struct vg_kvs_put *p = c->p;
    const char *ev = json_string_value(json_object_get(j, "EventType"));
    int e;
    for (e = 0; ev && e < VG_KVS_ACK__N && strcmp(ev, ack_names[e]); e++)
        ;
    if (!ev || e == VG_KVS_ACK__N) {
        VG_DEBUG("kvs.ack_unknown", p->camera, "stream %s: acknowledgement of unknown type %s",
                 p->stream, ev ? ev : "(none)");
        return;
    }
    int64_t tc = json_int(json_object_get(j, "FragmentTimecode"));
    c->unacked_since_us = 0;
    if (e == VG_KVS_ACK_RECEIVED || e == VG_KVS_ACK_PERSISTED)
        c->got_ok_ack = 1;
    int error_id = e == VG_KVS_ACK_ERROR ? (int)json_int(json_object_get(j, "ErrorId")) : 0;
    pthread_mutex_lock(&p->mu);
    p->st.acks[e]++;
    if (e == VG_KVS_ACK_PERSISTED)
        p->st.last_persisted_tc = tc;
    if (e == VG_KVS_ACK_ERROR)
        p->st.last_error_id = error_id;
    pthread_mutex_unlock(&p->mu);
    vg_counter_inc(p->acks[e]);
    if (e != VG_KVS_ACK_ERROR)
        return;
    char labels[256], num[64] = "";
    snprintf(labels, sizeof(labels), "camera=\"%s\",error_id=\"%d\"", p->camera, error_id);
    vg_counter_inc(vg_counter_get_labeled("vigil_capture_kvs_errors_total", labels,
                                          "PutMedia ERROR acknowledgements, by ErrorId"));
    json_t *fn = json_object_get(j, "FragmentNumber");
    if (json_is_string(fn))
        snprintf(num, sizeof(num), "%s", json_string_value(fn));
    else if (fn)
        snprintf(num, sizeof(num), "%lld", (long long)json_int(fn));
    const char *code = json_string_value(json_object_get(j, "ErrorCode"));
    VG_WARN("kvs.ack_error", p->camera, "stream %s: fragment %s (timecode %lld) refused: "
            "ErrorId %d (%s)%s%s; reconnecting with a fresh MKV header", p->stream,
            num[0] ? num : "-", (long long)tc, error_id, vg_kvs_error_text(error_id),
            code ? ": " : "", code ? code : "");
    /* The service has given up on this stream of fragments: start again. */
    c->error_ack = 1;
    c->abort = 1;
}

/* The acknowledgements are JSON objects one after another (newlines
 * between them, perhaps split across writes): cut them out by brace depth. */
static void scan_acks(struct conn *c, const char *d, size_t len)
{
    for (size_t i = 0; i < len; i++) {
        char ch = d[i];
        if (c->depth == 0 && ch != '{')
            continue;
        if (c->ack_len < sizeof(c->ack))
            c->ack[c->ack_len++] = ch;
        else
            c->overflow = 1;
        if (c->in_str) {
            if (c->esc)
                c->esc = 0;
            else if (ch == '\\')
                c->esc = 1;
            else if (ch == '"')
                c->in_str = 0;
            continue;
        }
        if (ch == '"')
            c->in_str = 1;
        else if (ch == '{')
            c->depth++;
        else if (ch == '}' && --c->depth == 0) {
            json_t *j = c->overflow ? NULL : json_loadb(c->ack, c->ack_len, 0, NULL);
            if (j && json_is_object(j))
                handle_ack(c, j);
            else
                VG_WARN("kvs.ack_garbled", c->p->camera, "stream %s: an acknowledgement that is "
                        "not a JSON object (%zu bytes) ignored", c->p->stream, c->ack_len);
            json_decref(j);
            c->ack_len = 0;
            c->overflow = 0;
        }
    }
}

static size_t on_write(char *d, size_t size, size_t n, void *ctx)
{
    struct conn *c = ctx;
    size_t len = size * n;
    if (!c->status)
        curl_easy_getinfo(c->easy, CURLINFO_RESPONSE_CODE, &c->status);
    if (c->status != 200) {
        size_t room = ERR_BODY_MAX - c->err_len;
        size_t k = len < room ? len : room;
        char *b = realloc(c->err_body, c->err_len + k + 1);
        if (b) {
            memcpy(b + c->err_len, d, k);
            c->err_len += k;
            b[c->err_len] = '\0';
            c->err_body = b;
        }
        return len;
    }
    scan_acks(c, d, len);
    return len;
}

static size_t on_header(char *d, size_t size, size_t n, void *ctx)
{
    struct conn *c = ctx;
    struct vg_kvs_put *p = c->p;
    size_t len = size * n;
    static const char et[] = "x-amzn-ErrorType:";
    if (len > sizeof(et) - 1 && !strncasecmp(d, et, sizeof(et) - 1)) {
        const char *v = d + sizeof(et) - 1;
        size_t vl = len - (sizeof(et) - 1);
        while (vl && (*v == ' ' || *v == '\t'))
            v++, vl--;
        while (vl && (v[vl - 1] == '\r' || v[vl - 1] == '\n' || v[vl - 1] == ' '))
            vl--;
        vl = strcspn(v, ":\r\n") < vl ? strcspn(v, ":\r\n") : vl;
        copy_text(c->error_type, sizeof(c->error_type), v, vl);
    }
    if ((len == 2 && d[0] == '\r') || (len == 1 && d[0] == '\n')) {
        long status = 0;
        curl_easy_getinfo(c->easy, CURLINFO_RESPONSE_CODE, &status);
        if (status >= 300 && !c->status) {
            c->status = status;
            c->refused_us = vg_mono_us();
        }
        if (status == 200 && !c->headers_done) {
            c->headers_done = 1;
            c->status = 200;
            pthread_mutex_lock(&p->mu);
            p->st.sessions_ok++;
            p->st.connected = 1;
            p->st.last_http_status = 200;
            pthread_mutex_unlock(&p->mu);
            vg_gauge_set(p->connected_gauge, 1);
            VG_INFO("kvs.connected", p->camera, "stream %s: PutMedia session open at %s",
                    p->stream, c->url);
        }
    }
    return len;
}

/* ---- one request ---------------------------------------------------------- */

static vg_status add_header(struct curl_slist **l, const char *name, const char *value)
{
    char *line = NULL;
    if (asprintf(&line, "%s: %s", name, value) < 0)
        return VG_ERR_NOMEM;
    struct curl_slist *n = curl_slist_append(*l, line);
    free(line);
    if (!n)
        return VG_ERR_NOMEM;
    *l = n;
    return VG_OK;
}

/* Host as curl sends it: no default port. */
static void host_of(const char *endpoint, char *out, size_t cap)
{
    const char *h = strstr(endpoint, "://");
    snprintf(out, cap, "%s", h ? h + 3 : endpoint);
    out[strcspn(out, "/")] = '\0';
    size_t len = strlen(out);
    const char *dflt = !strncmp(endpoint, "https://", 8) ? ":443" : ":80";
    size_t dl = strlen(dflt);
    if (len > dl && !strcmp(out + len - dl, dflt))
        out[len - dl] = '\0';
}

/* SigV4 over the empty payload: the body is a stream of unknown length, and
 * the service (like the producer SDK) signs the headers only. */
static vg_status sign(struct vg_kvs_put *p, struct conn *c, int64_t start_ms)
{
    struct vg_sigv4_header h[12];
    struct vg_aws_creds cr = {0};
    char host[VG_KVS_ENDPOINT_MAX], date[17], start[32], auth[2048];
    size_t n = 0;
    host_of(p->endpoint, host, sizeof(host));
    snprintf(c->url, sizeof(c->url), "%s/putMedia", p->endpoint);
    vg_amz_date(vg_now_us(), date);
    snprintf(start, sizeof(start), "%lld.%03lld", (long long)(start_ms / 1000),
             (long long)(start_ms % 1000));
    vg_status st = vg_aws_creds_get(vg_aws_credentials(p->aws), &cr);
    if (st != VG_OK)
        return st;
    h[n++] = (struct vg_sigv4_header){"host", host};
    h[n++] = (struct vg_sigv4_header){"x-amz-date", date};
    h[n++] = (struct vg_sigv4_header){"x-amzn-stream-name", p->stream};
    h[n++] = (struct vg_sigv4_header){"x-amzn-fragment-timecode-type", "ABSOLUTE"};
    h[n++] = (struct vg_sigv4_header){"x-amzn-producer-start-timestamp", start};
    h[n++] = (struct vg_sigv4_header){"x-amzn-fragment-acknowledgment-required", "1"};
    h[n++] = (struct vg_sigv4_header){"transfer-encoding", "chunked"};
    h[n++] = (struct vg_sigv4_header){"connection", "keep-alive"};
    if (cr.session_token[0])
        h[n++] = (struct vg_sigv4_header){"x-amz-security-token", cr.session_token};
    struct vg_sigv4_request sr = {
        .method = "POST", .path = "/putMedia", .headers = h, .n_headers = n,
        .payload_sha256 = EMPTY_SHA256, .region = vg_aws_region(p->aws),
        .service = "kinesisvideo", .amz_date = date,
    };
    st = vg_sigv4_authorization(&sr, &cr, auth, sizeof(auth));
    if (st == VG_OK)
        st = add_header(&c->hdrs, "Authorization", auth);
    for (size_t i = 1; st == VG_OK && i < n; i++)  /* host: curl's own, identical */
        st = add_header(&c->hdrs, h[i].name, h[i].value);
    /* No "Expect: 100-continue" round trip, no form content type. */
    struct curl_slist *l = st == VG_OK ? curl_slist_append(c->hdrs, "Expect:") : NULL;
    if (l && (l = curl_slist_append(l, "Content-Type:")))
        c->hdrs = l;
    else if (st == VG_OK)
        st = VG_ERR_NOMEM;
    OPENSSL_cleanse(&cr, sizeof(cr));
    return st;
}

static vg_status resolve_endpoint(struct vg_kvs_put *p)
{
    if (p->endpoint[0])
        return VG_OK;
    const char *e = getenv(MEDIA_ENV);
    if (e && *e) {
        size_t len = strlen(e);
        while (len > 0 && e[len - 1] == '/')
            len--;
        copy_text(p->endpoint, sizeof(p->endpoint), e, len);
        return VG_OK;
    }
    return vg_kvs_get_data_endpoint(p->aws, p->stream, "PUT_MEDIA", p->endpoint,
                                    sizeof(p->endpoint));
}

/* The request's socket (one connection per request: no reuse). */
static int on_sockopt(void *ctx, curl_socket_t fd, curlsocktype purpose)
{
    struct conn *c = ctx;
    if (purpose == CURLSOCKTYPE_IPCXN)
        c->fd = fd;
    return CURL_SOCKOPT_OK;
}

static void setup_easy(struct vg_kvs_put *p, struct conn *c)
{
    CURL *e = c->easy;
    curl_easy_setopt(e, CURLOPT_URL, c->url);
    curl_easy_setopt(e, CURLOPT_POST, 1L);
    curl_easy_setopt(e, CURLOPT_HTTPHEADER, c->hdrs);
    curl_easy_setopt(e, CURLOPT_HTTP_VERSION, (long)CURL_HTTP_VERSION_1_1);
    curl_easy_setopt(e, CURLOPT_READFUNCTION, on_read);
    curl_easy_setopt(e, CURLOPT_READDATA, c);
    curl_easy_setopt(e, CURLOPT_WRITEFUNCTION, on_write);
    curl_easy_setopt(e, CURLOPT_WRITEDATA, c);
    curl_easy_setopt(e, CURLOPT_HEADERFUNCTION, on_header);
    curl_easy_setopt(e, CURLOPT_HEADERDATA, c);
    curl_easy_setopt(e, CURLOPT_CONNECTTIMEOUT_MS, (long)p->o.connect_timeout_ms);
    curl_easy_setopt(e, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(e, CURLOPT_TCP_KEEPALIVE, 1L);
    curl_easy_setopt(e, CURLOPT_PROTOCOLS_STR, "http,https");
    curl_easy_setopt(e, CURLOPT_SOCKOPTFUNCTION, on_sockopt);
    curl_easy_setopt(e, CURLOPT_SOCKOPTDATA, c);
    curl_easy_setopt(e, CURLOPT_FRESH_CONNECT, 1L);
    curl_easy_setopt(e, CURLOPT_FORBID_REUSE, 1L);
}

/* The detail of a non-200 answer: "HTTP 403: InvalidSignatureException: ...". */
static void http_error(struct conn *c, char *out, size_t cap)
{
    char msg[300] = "";
    json_t *j = c->err_body ? json_loadb(c->err_body, c->err_len, 0, NULL) : NULL;
    const char *m = json_string_value(json_object_get(j, "message"));
    if (!m)
        m = json_string_value(json_object_get(j, "Message"));
    if (!c->error_type[0]) {
        const char *t = json_string_value(json_object_get(j, "__type"));
        if (t)
            snprintf(c->error_type, sizeof(c->error_type), "%s", t);
    }
    if (m)
        snprintf(msg, sizeof(msg), "%s", m);
    else if (c->err_body)
        snprintf(msg, sizeof(msg), "%.200s", c->err_body);
    json_decref(j);
    snprintf(out, cap, "HTTP %ld: %s%s%s", c->status, c->error_type[0] ? c->error_type : "error",
             msg[0] ? ": " : "", msg);
}

static void conn_cleanup(struct conn *c)
{
    if (c->easy)
        curl_easy_cleanup(c->easy);
    curl_slist_free_all(c->hdrs);
    free(c->header);
    free(c->err_body);
}

/* While the upload is paused curl does not notice the service ending the
 * session (its idle close): look at the socket. 1 when the peer hung up. */
static int peer_closed(struct conn *c)
{
    char b;
    if (c->fd == CURL_SOCKET_BAD)
        return 0;
    /* POLLRDHUP: the FIN even behind unread bytes (a TLS close_notify). */
    struct pollfd pfd = {.fd = c->fd, .events = POLLIN | POLLRDHUP};
    if (poll(&pfd, 1, 0) != 1)
        return 0;
    if (pfd.revents & (POLLHUP | POLLERR | POLLRDHUP))
        return 1;
    return recv(c->fd, &b, 1, MSG_PEEK | MSG_DONTWAIT) == 0;
}

/* Wake a paused upload when there is something to send, a new stream, or a
 * stop (the read callback then ends the body). */
static void maybe_unpause(struct vg_kvs_put *p, struct conn *c)
{
    if (!c->paused)
        return;
    pthread_mutex_lock(&p->mu);
    int go = p->stop || p->head || p->gen != c->gen;
    pthread_mutex_unlock(&p->mu);
    if (go) {
        c->paused = 0;
        curl_easy_pause(c->easy, CURLPAUSE_CONT);
    }
}

/* Run one PutMedia request to its end. *carry: a cluster cut off by the
 * previous connection, sent again first (and handed back if cut again). */
static enum outcome session(struct vg_kvs_put *p, struct item **carry, char *why, size_t wcap)
{
    struct conn c = {.p = p, .fd = CURL_SOCKET_BAD};
    enum outcome out = S_FAILED;
    vg_status st = resolve_endpoint(p);
    why[0] = '\0';
    if (st != VG_OK) {
        snprintf(why, wcap, "GetDataEndpoint: %s", vg_err_detail());
        return S_FAILED;
    }
    pthread_mutex_lock(&p->mu);
    c.gen = p->gen;
    /* Clusters of a replaced header cannot follow the new one. */
    while (p->head && p->head->gen != c.gen)
        drop_head(p);
    if (*carry && (*carry)->gen != c.gen) {
        free(*carry);
        *carry = NULL;
        p->st.clusters_dropped++;
        vg_counter_inc(p->dropped);
    }
    int have = *carry || p->head;
    int64_t start_ms = *carry ? (*carry)->tc_ms : p->head ? p->head->tc_ms : 0;
    if (have && p->header && (c.header = malloc(p->header_len))) {
        memcpy(c.header, p->header, p->header_len);
        c.header_len = p->header_len;
    }
    pthread_mutex_unlock(&p->mu);
    if (!have)
        return S_NOTHING;
    if (start_ms <= 0)          /* a cluster without a Timecode: KVS will say so */
        start_ms = vg_now_us() / 1000;
    if (!c.header)
        return S_FAILED;
    c.cur = *carry;
    *carry = NULL;
    if ((st = sign(p, &c, start_ms)) != VG_OK || !(c.easy = curl_easy_init())) {
        snprintf(why, wcap, "signing: %s", st != VG_OK ? vg_err_detail() : "no curl handle");
        *carry = c.cur;
        conn_cleanup(&c);
        return S_FAILED;
    }
    setup_easy(p, &c);
    pthread_mutex_lock(&p->mu);
    p->st.connects++;
    pthread_mutex_unlock(&p->mu);
    vg_counter_inc(p->connects);
    curl_multi_add_handle(p->multi, c.easy);

    CURLcode result = CURLE_OK;
    int done = 0, running = 1;
    int64_t stop_deadline = 0;
    while (!done) {
        curl_multi_perform(p->multi, &running);
        CURLMsg *m;
        int left;
        while ((m = curl_multi_info_read(p->multi, &left)))
            if (m->msg == CURLMSG_DONE && m->easy_handle == c.easy) {
                result = m->data.result;
                done = 1;
            }
        if (done || c.abort)
            break;
        int64_t now = vg_mono_us();
        pthread_mutex_lock(&p->mu);
        int stopping = p->stop;
        pthread_mutex_unlock(&p->mu);
        if (stopping && !stop_deadline)
            stop_deadline = now + STOP_DRAIN_US;
        if (stop_deadline && now > stop_deadline)
            break;
        if (c.unacked_since_us && now - c.unacked_since_us > p->o.ack_timeout_s * 1000000LL) {
            snprintf(why, wcap, "no acknowledgement for %d s", p->o.ack_timeout_s);
            c.abort = 1;
            break;
        }
        maybe_unpause(p, &c);
        /* A refusal while the body is still open (paused): curl waits for
         * the body; its answer is all that matters. */
        if (c.refused_us && (peer_closed(&c) || now - c.refused_us > 1000000))
            break;
        if (c.paused && c.status == 200 && peer_closed(&c)) {
            done = 1;
            c.peer_closed = 1;
            break;
        }
        curl_multi_poll(p->multi, NULL, 0, POLL_MS, NULL);
    }
    curl_multi_remove_handle(p->multi, c.easy);
    if (!c.status)
        curl_easy_getinfo(c.easy, CURLINFO_RESPONSE_CODE, &c.status);

    pthread_mutex_lock(&p->mu);
    p->st.connected = 0;
    if (c.status)
        p->st.last_http_status = c.status;
    pthread_mutex_unlock(&p->mu);
    vg_gauge_set(p->connected_gauge, 0);

    if (c.status && c.status != 200) {
        http_error(&c, why, wcap);
        out = S_FAILED;
    } else if (c.error_ack) {
        snprintf(why, wcap, "ERROR acknowledgement");
        out = S_ERROR_ACK;
    } else if (c.abort) {
        out = S_FAILED;
    } else if (c.peer_closed) {
        out = S_CLOSED;
    } else if (done && result == CURLE_OK && c.status == 200) {
        out = c.ending ? S_ENDED : S_CLOSED;
    } else if (stop_deadline) {
        out = S_ENDED;
    } else {
        snprintf(why, wcap, "%s", curl_easy_strerror(result));
        out = c.status == 200 && c.got_ok_ack ? S_CLOSED : S_FAILED;
    }
    if (c.cur) {
        c.cur->next = NULL;
        *carry = c.cur;     /* cut off: send it whole on the next connection */
        c.cur = NULL;
    }
    if (c.status == 401 || c.status == 403)
        vg_aws_creds_invalidate(vg_aws_credentials(p->aws));
    conn_cleanup(&c);
    return out;
}

/* ---- the sender thread ------------------------------------------------- */

static void *run(void *arg)
{
    struct vg_kvs_put *p = arg;
    struct item *carry = NULL;
    int backoff_ms = p->o.reconnect_min_ms;
    int max_ms = p->o.reconnect_max_s * 1000;
    int64_t next_try = 0;
    char why[512];
    unsigned seed = (unsigned)vg_now_us();
    for (;;) {
        pthread_mutex_lock(&p->mu);
        int stop = p->stop, has = p->head || carry;
        pthread_mutex_unlock(&p->mu);
        if (stop)
            break;
        int64_t now = vg_mono_us();
        if (!has || now < next_try) {
            int wait = has ? (int)((next_try - now) / 1000) + 1 : 1000;
            curl_multi_poll(p->multi, NULL, 0, wait < 1000 ? wait : 1000, NULL);
            continue;
        }
        uint64_t acked_before;
        pthread_mutex_lock(&p->mu);
        acked_before = p->st.acks[VG_KVS_ACK_RECEIVED] + p->st.acks[VG_KVS_ACK_PERSISTED];
        pthread_mutex_unlock(&p->mu);
        enum outcome o = session(p, &carry, why, sizeof(why));
        pthread_mutex_lock(&p->mu);
        int progress = p->st.acks[VG_KVS_ACK_RECEIVED] + p->st.acks[VG_KVS_ACK_PERSISTED] >
                       acked_before;
        if (why[0] && o != S_ENDED)
            snprintf(p->st.last_error, sizeof(p->st.last_error), "%s", why);
        stop = p->stop;
        pthread_mutex_unlock(&p->mu);
        if (stop)
            break;
        if (progress)
            backoff_ms = p->o.reconnect_min_ms;
        int delay = 0;
        if (o == S_FAILED || o == S_ERROR_ACK || (o == S_CLOSED && !progress)) {
            delay = backoff_ms / 2 + (int)(rand_r(&seed) % (unsigned)(backoff_ms / 2 + 1));
            backoff_ms = backoff_ms * 2 < max_ms ? backoff_ms * 2 : max_ms;
        }
        if (o == S_FAILED) {
            p->endpoint[0] = '\0';      /* ask GetDataEndpoint again */
            vg_counter_inc(p->conn_errors);
            VG_WARN("kvs.upload_failed", p->camera, "stream %s: PutMedia: %s; retrying in %d ms",
                    p->stream, why[0] ? why : "connection failed", delay);
        } else if (o == S_CLOSED) {
            VG_INFO("kvs.closed", p->camera, "stream %s: the service ended the PutMedia "
                    "session%s%s; reconnecting when there is video", p->stream,
                    why[0] ? ": " : "", why);
        }
        next_try = vg_mono_us() + delay * 1000LL;
    }
    free(carry);
    return NULL;
}

/* ---- start / stop ------------------------------------------------------- */

static void make_metrics(struct vg_kvs_put *p)
{
    char l[256];
    for (int e = 0; e < VG_KVS_ACK__N; e++) {
        snprintf(l, sizeof(l), "camera=\"%s\",event=\"%s\"", p->camera, ack_labels[e]);
        p->acks[e] = vg_counter_get_labeled("vigil_capture_kvs_acks_total", l,
                                            "PutMedia acknowledgements, by event type");
    }
    snprintf(l, sizeof(l), "camera=\"%s\"", p->camera);
    p->connects = vg_counter_get_labeled("vigil_capture_kvs_connects_total", l,
                                         "PutMedia requests started");
    p->conn_errors = vg_counter_get_labeled("vigil_capture_kvs_connection_errors_total", l,
                                            "PutMedia requests that failed (HTTP, network, "
                                            "GetDataEndpoint)");
    p->dropped = vg_counter_get_labeled("vigil_capture_kvs_dropped_clusters_total", l,
                                        "MKV clusters dropped: upload queue full or too large");
    p->bytes = vg_counter_get_labeled("vigil_capture_kvs_sent_bytes_total", l,
                                      "bytes handed to the PutMedia connection");
    p->queue_gauge = vg_gauge_get_labeled("vigil_capture_kvs_queue_bytes", l,
                                          "bytes waiting in the upload queue");
    p->connected_gauge = vg_gauge_get_labeled("vigil_capture_kvs_connected", l,
                                              "1 while a PutMedia session is open");
}

vg_status vg_kvs_put_start(struct vg_kvs_put **out, struct vg_aws *a,
                           const struct vg_kvs_put_opts *o)
{
    const char *name = o->stream_name ? o->stream_name : "";
    size_t len = strlen(name);
    if (len < 1 || len > 256 ||
        strspn(name, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_.-") != len)
        return vg_errf(VG_ERR_INVALID, "kvs putmedia: stream name \"%.64s\" must be 1..256 of "
                       "[a-zA-Z0-9_.-]", name);
    struct vg_kvs_put *p = calloc(1, sizeof(*p));
    if (!p)
        return VG_ERR_NOMEM;
    p->aws = a;
    p->o = *o;
    snprintf(p->stream, sizeof(p->stream), "%s", name);
    snprintf(p->camera, sizeof(p->camera), "%s", o->camera && *o->camera ? o->camera : name);
    p->o.stream_name = p->stream;
    p->o.camera = p->camera;
    if (!p->o.queue_bytes) p->o.queue_bytes = VG_KVS_PUT_QUEUE_DEFAULT;
    if (p->o.reconnect_min_ms <= 0) p->o.reconnect_min_ms = 500;
    if (p->o.reconnect_max_s <= 0) p->o.reconnect_max_s = 30;
    if (p->o.connect_timeout_ms <= 0) p->o.connect_timeout_ms = 5000;
    if (p->o.ack_timeout_s <= 0) p->o.ack_timeout_s = 30;
    if (p->o.reconnect_max_s * 1000 < p->o.reconnect_min_ms)
        p->o.reconnect_max_s = (p->o.reconnect_min_ms + 999) / 1000;
    make_metrics(p);
    pthread_mutex_init(&p->mu, NULL);
    if (!(p->multi = curl_multi_init())) {
        pthread_mutex_destroy(&p->mu);
        free(p);
        return vg_errf(VG_ERR_NOMEM, "kvs putmedia: no curl multi handle");
    }
    if (pthread_create(&p->th, NULL, run, p) != 0) {
        curl_multi_cleanup(p->multi);
        pthread_mutex_destroy(&p->mu);
        free(p);
        return vg_errf(VG_ERR_NOMEM, "kvs putmedia: cannot start the upload thread");
    }
    *out = p;
    return VG_OK;
}

void vg_kvs_put_stop(struct vg_kvs_put *p)
{
    if (!p)
        return;
    pthread_mutex_lock(&p->mu);
    p->stop = 1;
    pthread_mutex_unlock(&p->mu);
    curl_multi_wakeup(p->multi);
    pthread_join(p->th, NULL);
    curl_multi_cleanup(p->multi);
    free_items(p->head);
    free(p->header);
    vg_gauge_set(p->queue_gauge, 0);
    vg_gauge_set(p->connected_gauge, 0);
    pthread_mutex_destroy(&p->mu);
    free(p);
}
