/* mitm_http.c — `canary attack mitm-http`: a man-in-the-middle HTTP proxy in front of
 * canaryd that tampers with ingest requests the way an attacker on the network would
 * (docs/ATTACK.md).
 *
 * libmicrohttpd takes the devices' requests (a thread per connection, so a delayed request
 * simply waits on its own thread), libcurl sends them on to --upstream. Every request is
 * relayed as it came (method, path, query, headers, body) and canaryd's answer goes back,
 * except POST /api/v1/ingest, where one attack may hit the request: its body (a JWS or
 * JSON) altered, stripped of its signature, dropped (the device gets a made-up 200), delayed,
 * held back behind the device's next request, or followed by a replay of an earlier request
 * of the device or a forgery; or its bearer token stripped or swapped for another device's.
 * Requests the proxy sends of its own (replays, forgeries, held ones) get their answers
 * recorded in the ground truth, so the truth says what canaryd answered to every attack.
 * SIGINT/SIGTERM stop it cleanly: held requests are delivered, the truth is closed with the
 * proxy's counters. */
#include "cli/mitm.h"

#include "core/clock.h"

#include <arpa/inet.h>
#include <cjson/cJSON.h>
#include <curl/curl.h>
#include <errno.h>
#include <getopt.h>
#include <microhttpd.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#define INGEST_PATH     "/api/v1/ingest"
#define REORDER_HOLD_MS 5000
#define MAX_HEADERS     32

struct http_opts {
    struct mitm_opts c; /* --listen, --upstream, --attack, ... (mitm_opts.c) */
    size_t max_body;
};

/* One request as the proxy relays it. */
struct req {
    char method[16];
    char path[1024];            /* path and query */
    char *headers[MAX_HEADERS]; /* "Name: value", malloc'd */
    unsigned n_headers;
    char *body;
    size_t len, cap;
    bool too_large;
};

/* A request held back for reordering, per device. */
struct held {
    struct held *next;
    char device[MITM_MAX_DEVICE + 1];
    int64_t since_ms;
    double seq;
    struct req r;
};

struct hproxy {
    struct http_opts o;
    char base[512]; /* upstream URL without a trailing slash */
    struct MHD_Daemon *mhd;
    struct mitm_history *hist;
    struct mitm_truth truth;
    pthread_mutex_t lock; /* rng and held */
    struct rng rng;
    struct held *held;
    atomic_bool stop;
    pthread_t janitor;
    atomic_ullong requests, ingest, forwarded, upstream_errors, too_large, injected, faked;
};

static void req_free(struct req *r)
{
    for (unsigned i = 0; i < r->n_headers; i++)
        free(r->headers[i]);
    free(r->body);
    memset(r, 0, sizeof *r);
}

static const char *req_header(const struct req *r, const char *name)
{
    size_t n = strlen(name);
    for (unsigned i = 0; i < r->n_headers; i++)
        if (strncasecmp(r->headers[i], name, n) == 0 && r->headers[i][n] == ':')
            return r->headers[i] + n + 1 + strspn(r->headers[i] + n + 1, " ");
    return NULL;
}

/* Sets (value != NULL) or removes a header. */
static void req_set_header(struct req *r, const char *name, const char *value)
{
    size_t n = strlen(name);
    for (unsigned i = 0; i < r->n_headers; i++) {
        if (strncasecmp(r->headers[i], name, n) == 0 && r->headers[i][n] == ':') {
            free(r->headers[i]);
            r->headers[i] = r->headers[--r->n_headers];
            break;
        }
    }
    if (value != NULL && r->n_headers < MAX_HEADERS) {
        size_t len = n + 2 + strlen(value) + 1;
        char *h = malloc(len);
        if (h != NULL) {
            snprintf(h, len, "%s: %s", name, value);
            r->headers[r->n_headers++] = h;
        }
    }
}

static void req_set_body(struct req *r, const char *body, size_t len)
{
    char *b = malloc(len + 1);
    if (b == NULL)
        return;
    memcpy(b, body, len);
    b[len] = '\0';
    free(r->body);
    r->body = b;
    r->len = r->cap = len;
}

static void req_copy(struct req *dst, const struct req *src)
{
    memset(dst, 0, sizeof *dst);
    memcpy(dst->method, src->method, sizeof dst->method);
    memcpy(dst->path, src->path, sizeof dst->path);
    for (unsigned i = 0; i < src->n_headers; i++)
        if ((dst->headers[dst->n_headers] = strdup(src->headers[i])) != NULL)
            dst->n_headers++;
    req_set_body(dst, src->body ? src->body : "", src->len);
}

/* ---- upstream ------------------------------------------------------------------------ */

struct answer {
    long status; /* 0: no answer (connection failed) */
    char *body;
    size_t len;
    char content_type[128];
};

static size_t on_body(char *p, size_t size, size_t n, void *arg)
{
    struct answer *a = arg;
    size_t k = size * n;
    if (a->len + k > 4u << 20)
        return 0;
    char *b = realloc(a->body, a->len + k + 1);
    if (b == NULL)
        return 0;
    memcpy(b + a->len, p, k);
    a->body = b;
    a->len += k;
    b[a->len] = '\0';
    return k;
}

static size_t on_header(char *p, size_t size, size_t n, void *arg)
{
    struct answer *a = arg;
    size_t k = size * n;
    if (k > 13 && strncasecmp(p, "Content-Type:", 13) == 0) {
        size_t skip = 13 + strspn(p + 13, " ");
        size_t len = strcspn(p + skip, "\r\n");
        snprintf(a->content_type, sizeof a->content_type, "%.*s", (int)len, p + skip);
    }
    return k;
}

/* Sends r to the upstream; fills *a (caller frees a->body). */
static void forward(struct hproxy *px, const struct req *r, struct answer *a)
{
    memset(a, 0, sizeof *a);
    CURL *c = curl_easy_init();
    if (c == NULL)
        return;
    char url[1600];
    snprintf(url, sizeof url, "%s%s", px->base, r->path);
    struct curl_slist *hl = NULL;
    for (unsigned i = 0; i < r->n_headers; i++)
        hl = curl_slist_append(hl, r->headers[i]);
    hl = curl_slist_append(hl, "Expect:");
    curl_easy_setopt(c, CURLOPT_URL, url);
    curl_easy_setopt(c, CURLOPT_CUSTOMREQUEST, r->method);
    if (r->body != NULL || strcmp(r->method, "POST") == 0 || strcmp(r->method, "PATCH") == 0 ||
        strcmp(r->method, "PUT") == 0) {
        curl_easy_setopt(c, CURLOPT_POSTFIELDS, r->body ? r->body : "");
        curl_easy_setopt(c, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)r->len);
    }
    curl_easy_setopt(c, CURLOPT_HTTPHEADER, hl);
    curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, on_body);
    curl_easy_setopt(c, CURLOPT_WRITEDATA, a);
    curl_easy_setopt(c, CURLOPT_HEADERFUNCTION, on_header);
    curl_easy_setopt(c, CURLOPT_HEADERDATA, a);
    curl_easy_setopt(c, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(c, CURLOPT_TIMEOUT, 30L);
    curl_easy_setopt(c, CURLOPT_CONNECTTIMEOUT, 5L);
    if (curl_easy_perform(c) == CURLE_OK)
        curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &a->status);
    else
        atomic_fetch_add(&px->upstream_errors, 1);
    curl_slist_free_all(hl);
    curl_easy_cleanup(c);
}

/* Sends a request of the proxy's own and returns canaryd's status (0: none). */
static long send_own(struct hproxy *px, const struct req *r)
{
    struct answer a;
    forward(px, r, &a);
    free(a.body);
    atomic_fetch_add(&px->injected, 1);
    return a.status;
}

/* ---- the attacks --------------------------------------------------------------------- */

static void record(struct hproxy *px, const char *dev, int kind, const struct mitm_change *chg,
                   const char *done, long status, cJSON *x)
{
    if (x == NULL)
        x = cJSON_CreateObject();
    cJSON_AddNumberToObject(x, "status", (double)status);
    mitm_truth_record(&px->truth, dev, kind, chg, done, x);
}

/* The aux string kept with a request in the history: its Content-Type and Authorization. */
static void aux_of(const struct req *r, char *out, size_t cap)
{
    const char *ct = req_header(r, "Content-Type");
    const char *au = req_header(r, "Authorization");
    snprintf(out, cap, "Content-Type: %s\nAuthorization: %s", ct ? ct : "", au ? au : "");
}

/* A request built from a history entry (replays). */
static void req_from_history(struct req *r, const char *where, const char *payload, size_t len,
                             const char *aux)
{
    memset(r, 0, sizeof *r);
    snprintf(r->method, sizeof r->method, "POST");
    snprintf(r->path, sizeof r->path, "%s", where ? where : INGEST_PATH);
    const char *ct = aux ? strstr(aux, "Content-Type: ") : NULL;
    const char *au = aux ? strstr(aux, "Authorization: ") : NULL;
    char v[600];
    if (ct != NULL && ct[14] != '\n') {
        snprintf(v, sizeof v, "%.*s", (int)strcspn(ct + 14, "\n"), ct + 14);
        req_set_header(r, "Content-Type", v);
    }
    if (au != NULL && au[15] != '\0' && au[15] != '\n') {
        snprintf(v, sizeof v, "%.*s", (int)strcspn(au + 15, "\n"), au + 15);
        req_set_header(r, "Authorization", v);
    }
    req_set_body(r, payload, len);
}

/* Sends the held request of dev, if any (after its successor, or when it timed out). */
static void release_held(struct hproxy *px, const char *dev, bool expired_only)
{
    for (;;) {
        struct held *h = NULL;
        pthread_mutex_lock(&px->lock);
        int64_t now = clock_mono_ms();
        for (struct held **pp = &px->held; *pp != NULL; pp = &(*pp)->next) {
            bool match = dev != NULL ? strcmp((*pp)->device, dev) == 0
                                     : !expired_only || now - (*pp)->since_ms >= REORDER_HOLD_MS;
            if (match) {
                h = *pp;
                *pp = h->next;
                break;
            }
        }
        pthread_mutex_unlock(&px->lock);
        if (h == NULL)
            return;
        long status = send_own(px, &h->r);
        struct mitm_change chg = {.seq = h->seq, .has_seq = h->seq >= 0};
        cJSON *x = cJSON_CreateObject();
        cJSON_AddStringToObject(x, "phase", "delivered");
        record(px, h->device, MITM_REORDER, &chg,
               dev != NULL ? "the held request, delivered after the device's next one"
                           : "the held request, delivered when its hold ran out",
               status, x);
        req_free(&h->r);
        free(h);
        if (dev != NULL)
            return;
    }
}

static void *janitor_main(void *arg)
{
    struct hproxy *px = arg;
    while (!atomic_load(&px->stop)) {
        struct timespec ts = {0, 200 * 1000000L};
        nanosleep(&ts, NULL);
        release_held(px, NULL, true);
    }
    return NULL;
}

static const char fake_ok[] = "{\"accepted\":1,\"rejected\":0,\"duplicates\":0,\"results\":[]}";

/* An ingest request: draw the attack, carry it out, fill the answer for the device. */
static void on_ingest(struct hproxy *px, struct req *r, struct answer *a)
{
    atomic_fetch_add(&px->ingest, 1);
    struct mitm_info info;
    mitm_inspect(r->body ? r->body : "", r->len, &info);
    const char *dev = info.device[0] ? info.device : "?";
    const char *auth = req_header(r, "Authorization");
    bool bearer = auth != NULL && strncmp(auth, "Bearer ", 7) == 0;
    char other_token[600] = "";

    pthread_mutex_lock(&px->lock);
    int kind = mitm_plan_choose(&px->o.c.plan, &px->rng);
    pthread_mutex_unlock(&px->lock);
    uint64_t clean_seen = mitm_history_count(px->hist, dev);
    if (clean_seen < px->o.c.plan.warmup || (kind == MITM_REPLAY && clean_seen < 2) ||
        (kind == MITM_STRIP && !info.is_jws) ||
        ((kind == MITM_TOKEN_STRIP || kind == MITM_TOKEN_SWAP) && !bearer) ||
        (kind == MITM_TOKEN_SWAP &&
         !mitm_history_other_aux(px->hist, dev, "Bearer ", other_token, sizeof other_token)))
        kind = MITM_NONE;
    if (kind == MITM_REORDER) {
        pthread_mutex_lock(&px->lock);
        for (struct held *h = px->held; h != NULL; h = h->next)
            if (strcmp(h->device, dev) == 0)
                kind = MITM_NONE; /* one held request per device */
        pthread_mutex_unlock(&px->lock);
    }

    struct mitm_change chg = {.seq = info.seq, .has_seq = info.has_seq};
    size_t cap = r->len * 2 + 1024;
    char *out = malloc(cap);
    if (out == NULL)
        kind = MITM_NONE;
    bool clean = kind == MITM_NONE || kind == MITM_REPLAY || kind == MITM_FORGE ||
                 kind == MITM_FORGE_UNSIGNED;
    char aux[1400];
    aux_of(r, aux, sizeof aux);
    switch (kind) {
    case MITM_ALTER: {
        long n = mitm_alter(r->body, r->len, out, cap, &chg);
        if (n < 0) {
            clean = true;
            forward(px, r, a);
            break;
        }
        req_set_body(r, out, (size_t)n);
        forward(px, r, a);
        char done[200];
        snprintf(done, sizeof done, "%s changed from %g to %g%s", chg.metric, chg.from, chg.to,
                 info.is_jws ? " inside the JWS payload (re-encoded), signature kept"
                             : " in the plain body");
        cJSON *x = cJSON_CreateObject();
        cJSON_AddBoolToObject(x, "signed", info.is_jws);
        record(px, dev, kind, &chg, done, a->status, x);
        break;
    }
    case MITM_STRIP: {
        long n = mitm_strip(r->body, r->len, out, cap);
        req_set_body(r, out, n > 0 ? (size_t)n : 0);
        req_set_header(r, "Content-Type", "application/json");
        forward(px, r, a);
        record(px, dev, kind, &chg, "sent the JWS payload as plain JSON, without the signature",
               a->status, NULL);
        break;
    }
    case MITM_DROP:
        a->status = 200;
        a->body = strdup(fake_ok);
        a->len = a->body ? strlen(a->body) : 0;
        snprintf(a->content_type, sizeof a->content_type, "application/json");
        atomic_fetch_add(&px->faked, 1);
        record(px, dev, kind, &chg, "dropped; the proxy answered 200 in canaryd's place", 0, NULL);
        break;
    case MITM_DELAY: {
        struct timespec ts = {px->o.c.plan.delay_ms / 1000,
                              (long)(px->o.c.plan.delay_ms % 1000) * 1000000L};
        nanosleep(&ts, NULL);
        forward(px, r, a);
        char done[96];
        snprintf(done, sizeof done, "delivered %u ms late", px->o.c.plan.delay_ms);
        cJSON *x = cJSON_CreateObject();
        cJSON_AddNumberToObject(x, "delay_ms", px->o.c.plan.delay_ms);
        record(px, dev, kind, &chg, done, a->status, x);
        break;
    }
    case MITM_REORDER: {
        struct held *h = calloc(1, sizeof *h);
        if (h == NULL) {
            forward(px, r, a);
            clean = true;
            break;
        }
        snprintf(h->device, sizeof h->device, "%s", dev);
        h->since_ms = clock_mono_ms();
        h->seq = info.has_seq ? info.seq : -1;
        req_copy(&h->r, r);
        pthread_mutex_lock(&px->lock);
        h->next = px->held;
        px->held = h;
        pthread_mutex_unlock(&px->lock);
        a->status = 200;
        a->body = strdup(fake_ok);
        a->len = a->body ? strlen(a->body) : 0;
        snprintf(a->content_type, sizeof a->content_type, "application/json");
        atomic_fetch_add(&px->faked, 1);
        cJSON *x = cJSON_CreateObject();
        cJSON_AddStringToObject(x, "phase", "held");
        record(px, dev, kind, &chg,
               "held back (the proxy answered 200) to be delivered after the device's next "
               "request",
               0, x);
        break;
    }
    case MITM_TOKEN_STRIP:
        req_set_header(r, "Authorization", NULL);
        forward(px, r, a);
        record(px, dev, kind, &chg, "removed the bearer token", a->status, NULL);
        break;
    case MITM_TOKEN_SWAP:
        req_set_header(r, "Authorization", other_token);
        forward(px, r, a);
        record(px, dev, kind, &chg, "presented another device's bearer token", a->status, NULL);
        break;
    default:
        forward(px, r, a);
        break;
    }
    if (kind != MITM_REORDER)
        release_held(px, dev, false);
    if (kind == MITM_REPLAY) {
        char *old = NULL, *where = NULL, *oaux = NULL;
        long n = mitm_history_oldest(px->hist, dev, &old, &where, &oaux);
        if (n >= 0) {
            struct req rr;
            req_from_history(&rr, where, old, (size_t)n, oaux);
            long status = send_own(px, &rr);
            struct mitm_info oi;
            mitm_inspect(old, (size_t)n, &oi);
            struct mitm_change rc = {.seq = oi.seq, .has_seq = oi.has_seq};
            cJSON *x = cJSON_CreateObject();
            if (info.has_seq)
                cJSON_AddNumberToObject(x, "after_seq", info.seq);
            record(px, dev, kind, &rc, "sent an earlier request of the device again, byte for byte",
                   status, x);
            req_free(&rr);
        }
        free(old);
        free(where);
        free(oaux);
    }
    if (kind == MITM_FORGE || kind == MITM_FORGE_UNSIGNED) {
        bool sign = kind == MITM_FORGE;
        long n = mitm_forge(r->body, r->len, sign, clock_wall_ms(), out, cap, &chg);
        if (n > 0) {
            struct req fr;
            memset(&fr, 0, sizeof fr);
            snprintf(fr.method, sizeof fr.method, "POST");
            snprintf(fr.path, sizeof fr.path, "%s", r->path);
            req_set_header(&fr, "Content-Type", sign ? "application/jose" : "application/json");
            req_set_body(&fr, out, (size_t)n);
            long status = send_own(px, &fr);
            char done[200];
            snprintf(done, sizeof done, "injected a reading (%s %g) %s", chg.metric, chg.to,
                     sign ? "signed as a JWS with a made-up key" : "without a signature or token");
            cJSON *x = cJSON_CreateObject();
            cJSON_AddBoolToObject(x, "device_signs", info.is_jws || bearer);
            if (info.has_seq)
                cJSON_AddNumberToObject(x, "imitates_seq", info.seq);
            record(px, dev, kind, &chg, done, status, x);
            req_free(&fr);
        }
    }
    free(out);
    if (clean && a->status >= 200 && a->status < 300)
        mitm_history_add(px->hist, dev, r->path, r->body ? r->body : "", r->len, aux);
}

/* ---- libmicrohttpd ------------------------------------------------------------------- */

static enum MHD_Result take_header(void *cls, enum MHD_ValueKind kind, const char *key,
                                   const char *value)
{
    struct req *r = cls;
    (void)kind;
    static const char *const hop[] = {"Host",    "Content-Length",    "Connection",
                                      "Expect",  "Transfer-Encoding", "Keep-Alive",
                                      "Upgrade", "Proxy-Connection"};
    for (size_t i = 0; i < sizeof hop / sizeof hop[0]; i++)
        if (strcasecmp(key, hop[i]) == 0)
            return MHD_YES;
    req_set_header(r, key, value ? value : "");
    return MHD_YES;
}

struct query_walk {
    char *out;
    size_t cap, len;
};

static enum MHD_Result take_arg(void *cls, enum MHD_ValueKind kind, const char *key,
                                const char *value)
{
    struct query_walk *q = cls;
    (void)kind;
    char *k = curl_easy_escape(NULL, key, 0);
    char *v = value ? curl_easy_escape(NULL, value, 0) : NULL;
    if (k != NULL) {
        int n = snprintf(q->out + q->len, q->cap - q->len, "%c%s%s%s", q->len ? '&' : '?', k,
                         v ? "=" : "", v ? v : "");
        if (n > 0 && (size_t)n < q->cap - q->len)
            q->len += (size_t)n;
    }
    curl_free(k);
    curl_free(v);
    return MHD_YES;
}

static enum MHD_Result reply(struct MHD_Connection *conn, unsigned status, const char *ctype,
                             const char *body, size_t len)
{
    struct MHD_Response *resp =
        MHD_create_response_from_buffer(len, (void *)body, MHD_RESPMEM_MUST_COPY);
    if (resp == NULL)
        return MHD_NO;
    if (ctype != NULL && ctype[0])
        MHD_add_response_header(resp, "Content-Type", ctype);
    enum MHD_Result rc = MHD_queue_response(conn, status, resp);
    MHD_destroy_response(resp);
    return rc;
}

static enum MHD_Result on_request(void *cls, struct MHD_Connection *conn, const char *url,
                                  const char *method, const char *version, const char *upload_data,
                                  size_t *upload_size, void **con_cls)
{
    struct hproxy *px = cls;
    (void)version;
    struct req *r = *con_cls;
    if (r == NULL) {
        r = calloc(1, sizeof *r);
        if (r == NULL)
            return MHD_NO;
        *con_cls = r;
        atomic_fetch_add(&px->requests, 1);
        return MHD_YES;
    }
    if (*upload_size > 0) {
        if (!r->too_large && r->len + *upload_size <= px->o.max_body) {
            if (r->len + *upload_size + 1 > r->cap) {
                size_t cap = (r->len + *upload_size + 1) * 2;
                char *b = realloc(r->body, cap);
                if (b == NULL) {
                    r->too_large = true;
                } else {
                    r->body = b;
                    r->cap = cap;
                }
            }
            if (!r->too_large) {
                memcpy(r->body + r->len, upload_data, *upload_size);
                r->len += *upload_size;
                r->body[r->len] = '\0';
            }
        } else {
            r->too_large = true;
        }
        *upload_size = 0;
        return MHD_YES;
    }
    if (r->too_large) {
        atomic_fetch_add(&px->too_large, 1);
        static const char msg[] =
            "{\"error\":{\"code\":\"too_large\",\"message\":\"the proxy's --max-body\"}}";
        return reply(conn, 413, "application/json", msg, sizeof msg - 1);
    }
    snprintf(r->method, sizeof r->method, "%s", method);
    struct query_walk q = {.out = r->path, .cap = sizeof r->path};
    int n = snprintf(r->path, sizeof r->path, "%s", url);
    q.len = n > 0 && (size_t)n < sizeof r->path ? (size_t)n : 0;
    q.out = r->path + q.len;
    q.cap = sizeof r->path - q.len;
    q.len = 0;
    MHD_get_connection_values(conn, MHD_GET_ARGUMENT_KIND, take_arg, &q);
    MHD_get_connection_values(conn, MHD_HEADER_KIND, take_header, r);
    struct answer a;
    if (strcmp(method, "POST") == 0 && strcmp(url, INGEST_PATH) == 0 && !atomic_load(&px->stop))
        on_ingest(px, r, &a);
    else
        forward(px, r, &a);
    atomic_fetch_add(&px->forwarded, 1);
    enum MHD_Result rc;
    if (a.status == 0) {
        static const char msg[] =
            "{\"error\":{\"code\":\"bad_gateway\",\"message\":\"the upstream did not answer\"}}";
        rc = reply(conn, 502, "application/json", msg, sizeof msg - 1);
    } else {
        rc = reply(conn, (unsigned)a.status, a.content_type, a.body ? a.body : "", a.len);
    }
    free(a.body);
    return rc;
}

static void on_completed(void *cls, struct MHD_Connection *conn, void **con_cls,
                         enum MHD_RequestTerminationCode toe)
{
    (void)cls;
    (void)conn;
    (void)toe;
    struct req *r = *con_cls;
    if (r != NULL) {
        req_free(r);
        free(r);
        *con_cls = NULL;
    }
}

/* ---- main ---------------------------------------------------------------------------- */

static void usage(FILE *out)
{
    fprintf(out,
            "usage: canary attack mitm-http --listen HOST:PORT --upstream URL --truth FILE\n"
            "                               [--attack KIND[:RATE]]... [options]\n"
            "\n"
            "A man-in-the-middle HTTP proxy in front of canaryd: devices send to --listen (port\n"
            "0: any free port, printed), every request is relayed to --upstream (canaryd's base\n"
            "URL, e.g. http://127.0.0.1:8080) and its answer relayed back. POST /api/v1/ingest\n"
            "requests are attacked:\n"
            "  alter, strip, drop, delay, reorder, replay, forge, forge-unsigned (as mitm-mqtt:\n"
            "  a dropped or held request is answered 200 by the proxy),\n"
            "  token-strip     remove the Authorization: Bearer header\n"
            "  token-swap      present the last token another device used\n"
            "RATE is the share of ingest requests the kind hits (default 0.1; the rates add up\n"
            "to 1 or less). Every attack is a JSON line in --truth with canaryd's status; the\n"
            "proxy's counters close it on SIGINT or SIGTERM.\n"
            "\n"
            "options:\n"
            "  --delay-ms MS      how late delayed requests go out (default 2000)\n"
            "  --warmup N         a device's first N clean requests are not attacked (default 2)\n"
            "  --seed N           the draw of attacks (default 1)\n"
            "  --max-body BYTES   largest request body relayed (default 1048576; larger: 413)\n"
            "  --port-file FILE   write the listening port there\n"
            "  --quiet            no messages on stderr\n");
}

static cJSON *counters_json(struct hproxy *px)
{
    cJSON *o = cJSON_CreateObject();
#define C(f) cJSON_AddNumberToObject(o, #f, (double)atomic_load(&px->f))
    C(requests);
    C(ingest);
    C(forwarded);
    C(upstream_errors);
    C(too_large);
    C(injected);
    C(faked);
#undef C
    return o;
}

int attack_mitm_http_main(int argc, char **argv)
{
    struct hproxy *px = calloc(1, sizeof *px);
    if (px == NULL)
        return 1;
    struct http_opts *o = &px->o;
    mitm_opts_defaults(&o->c, true);
    o->max_body = 1u << 20;
    static const struct option longopts[] = {
        MITM_COMMON_LONGOPTS, {"max-body", required_argument, NULL, 'm'}, {NULL, 0, NULL, 0}};
    int opt, rc = 0;
    optind = 1;
    while (rc == 0 && (opt = getopt_long(argc, argv, "", longopts, NULL)) != -1) {
        int common = mitm_common_option(&o->c, opt, optarg, "mitm-http");
        if (common != 0) {
            rc = common == 2 ? 2 : 0;
            continue;
        }
        unsigned long long v;
        if (opt == 'm') {
            if (!mitm_parse_uint(optarg, 64ull << 20, &v) || v < 16) {
                fprintf(stderr,
                        "canary attack mitm-http: --max-body %s: out of range (16 to %llu)\n",
                        optarg, 64ull << 20);
                rc = 2;
            } else {
                o->max_body = (size_t)v;
            }
        } else if (opt == 'h') {
            usage(stdout);
            free(px);
            return 0;
        } else {
            rc = 2;
        }
    }
    if (rc == 0)
        rc = mitm_common_check(&o->c, argc, argv, optind, "mitm-http");
    if (rc == 0 && (strncmp(o->c.upstream, "http://", 7) != 0 ||
                    strlen(o->c.upstream) >= sizeof px->base || strlen(o->c.upstream) <= 7)) {
        fprintf(stderr, "canary attack mitm-http: --upstream %s: expected http://HOST:PORT\n",
                o->c.upstream);
        rc = 2;
    }
    char host[256];
    unsigned port = 0;
    if (rc == 0 && mitm_split_hostport(o->c.listen, host, sizeof host, &port) != 0) {
        fprintf(stderr, "canary attack mitm-http: --listen %s: expected HOST:PORT\n", o->c.listen);
        rc = 2;
    }
    struct sockaddr_in sa = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
    if (rc == 0 && inet_pton(AF_INET, host, &sa.sin_addr) != 1) {
        fprintf(stderr, "canary attack mitm-http: --listen %s: an IPv4 address is needed\n",
                o->c.listen);
        rc = 2;
    }
    if (rc == 2) {
        usage(stderr);
        free(px);
        return 2;
    }
    snprintf(px->base, sizeof px->base, "%s", o->c.upstream);
    size_t bl = strlen(px->base);
    while (bl > 7 && px->base[bl - 1] == '/')
        px->base[--bl] = '\0';
    rng_seed_state(&px->rng, o->c.plan.seed);
    pthread_mutex_init(&px->lock, NULL);
    px->hist = mitm_history_new();
    curl_global_init(CURL_GLOBAL_DEFAULT);
    /* Block the stop signals in every thread; the main thread waits for them. */
    sigset_t mask;
    sigemptyset(&mask);
    sigaddset(&mask, SIGINT);
    sigaddset(&mask, SIGTERM);
    pthread_sigmask(SIG_BLOCK, &mask, NULL);
    signal(SIGPIPE, SIG_IGN);
    if (px->hist == NULL || mitm_truth_open(&px->truth, o->c.truth, "http") != 0) {
        rc = 1;
        goto out;
    }
    px->mhd = MHD_start_daemon(
        MHD_USE_THREAD_PER_CONNECTION | MHD_USE_INTERNAL_POLLING_THREAD | MHD_USE_ERROR_LOG,
        (uint16_t)port, NULL, NULL, on_request, px, MHD_OPTION_SOCK_ADDR, (struct sockaddr *)&sa,
        MHD_OPTION_NOTIFY_COMPLETED, on_completed, px, MHD_OPTION_CONNECTION_TIMEOUT, 60u,
        MHD_OPTION_CONNECTION_LIMIT, 2048u, MHD_OPTION_LISTENING_ADDRESS_REUSE, 1, MHD_OPTION_END);
    if (px->mhd == NULL) {
        fprintf(stderr, "canary attack mitm-http: cannot listen on %s: %s\n", o->c.listen,
                strerror(errno));
        mitm_truth_close(&px->truth, NULL);
        rc = 1;
        goto out;
    }
    const union MHD_DaemonInfo *di = MHD_get_daemon_info(px->mhd, MHD_DAEMON_INFO_BIND_PORT);
    unsigned bound = di != NULL ? di->port : port;
    printf("mitm-http: listening on %s port %u, upstream %s\n", host, bound, px->base);
    fflush(stdout);
    if (o->c.port_file != NULL) {
        FILE *fp = fopen(o->c.port_file, "w");
        if (fp != NULL) {
            fprintf(fp, "%u\n", bound);
            fclose(fp);
        }
    }
    pthread_create(&px->janitor, NULL, janitor_main, px);
    int sig;
    sigwait(&mask, &sig);
    atomic_store(&px->stop, true);
    MHD_stop_daemon(px->mhd);
    pthread_join(px->janitor, NULL);
    release_held(px, NULL, false); /* deliver what is still held */
    {
        cJSON *counters = counters_json(px);
        char *line = cJSON_PrintUnformatted(counters);
        if (!o->c.quiet && line != NULL)
            fprintf(stderr, "mitm-http: stopped; counters %s\n", line);
        free(line);
        printf("mitm-http: attacked");
        for (int k = 0; k < MITM_KIND_COUNT; k++)
            if (px->truth.attacks[k] > 0)
                printf(" %s=%llu", mitm_kind_name(k), (unsigned long long)px->truth.attacks[k]);
        printf(" ingest_requests=%llu\n", (unsigned long long)atomic_load(&px->ingest));
        mitm_truth_close(&px->truth, counters);
    }
out:
    mitm_history_free(px->hist);
    pthread_mutex_destroy(&px->lock);
    curl_global_cleanup();
    free(px);
    return rc;
}
