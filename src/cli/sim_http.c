/* sim_http.c — the HTTP transport of `canary simulate`: due readings POSTed to canaryd's
 * /api/v1/ingest as JSON, with libcurl's multi interface (sim_run.h).
 *
 * Promises, besides the schedule's (simulate.c):
 *  - 503/429 and connection errors are retried with the same seq after Retry-After or an
 *    exponential backoff, and accepted + duplicates + rejected + failed = every reading that
 *    fell due;
 *  - a device has at most one request in flight, so its seqs reach the server in order.
 *
 * How it works: one libcurl multi handle and a fixed pool of --connections request slots,
 * each with its own easy handle and buffers (so there are never more than that many requests
 * in flight, and at most that many connections, all kept alive and reused). A slot takes
 * devices from the schedule's ready FIFO and gives them back when its request is answered. */
#include "cli/cli_tls.h"
#include "cli/sim_register.h"
#include "cli/sim_run.h"

#include "core/clock.h"
#include "verify/devkey.h"

#include <cjson/cJSON.h>
#include <curl/curl.h>
#include <inttypes.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define MAX_RESPONSE       (1u << 20) /* bytes of a response kept for parsing */
#define PRINTED_ERRORS     5          /* error bodies shown on stderr */
#define REQUEST_TIMEOUT_MS 30000
#define CONNECT_TIMEOUT_MS 5000

struct buf {
    char *data;
    size_t len, cap;
};

static bool buf_reserve(struct buf *b, size_t extra)
{
    if (b->len + extra + 1 <= b->cap)
        return true;
    size_t cap = b->cap ? b->cap : 1024;
    while (cap < b->len + extra + 1)
        cap *= 2;
    char *p = realloc(b->data, cap);
    if (p == NULL)
        return false;
    b->data = p;
    b->cap = cap;
    return true;
}

static bool buf_append(struct buf *b, const char *s, size_t n)
{
    if (!buf_reserve(b, n))
        return false;
    memcpy(b->data + b->len, s, n);
    b->len += n;
    b->data[b->len] = '\0';
    return true;
}

enum reg_state { REG_NONE, REG_QUEUED, REG_DONE };
enum slot_state { SLOT_FREE, SLOT_ACTIVE, SLOT_BACKOFF };
enum req_kind { REQ_INGEST, REQ_REGISTER };

struct slot {
    CURL *easy;
    enum slot_state state;
    enum req_kind kind;
    struct buf body;       /* request body, kept for retries */
    struct buf resp;       /* response body (first MAX_RESPONSE bytes) */
    unsigned *reading_dev; /* device of each reading in the body */
    uint8_t *outcome;      /* enum outcome of each reading, from a 2xx answer */
    unsigned n_readings;
    unsigned reg_dev;               /* REQ_REGISTER: the device */
    char url[SIM_MAX_URL_LEN + 96]; /* REQ_REGISTER: <url>/api/v1/devices/<id> */
    int64_t started_ns;             /* this attempt's start, monotonic */
    int64_t retry_at_ms;            /* SLOT_BACKOFF: when to send again (offset) */
    unsigned attempts;              /* failed attempts of this request so far */
};

struct http_stats {
    uint64_t accepted, duplicates, rejected;
    uint64_t requests;     /* HTTP attempts */
    uint64_t retries;      /* attempts repeated after 503/429/5xx/transport errors */
    uint64_t backpressure; /* 503/429 answers */
    uint64_t transport_errors, server_errors;
    uint64_t printed_errors; /* error bodies shown so far */
    uint64_t registered, register_404, register_failed;
};

struct http {
    struct slot *slots;
    unsigned n_slots, n_active, n_backoff;
    unsigned *free_slots; /* stack of indexes of SLOT_FREE slots */
    unsigned n_free;
    uint8_t *reg;              /* enum reg_state of each device */
    struct sim_ring reg_queue; /* devices to register */
    CURLM *multi;
    struct curl_slist *headers;
    struct curl_slist *reg_headers; /* --register: JSON, and the admin token when set */
    char base_url[SIM_MAX_URL_LEN + 1];
    char ingest_url[SIM_MAX_URL_LEN + 32];
    bool curl_ready; /* curl_global_init() succeeded */
    uint8_t *keys;   /* --sign: DEVKEY_LEN bytes per device, or NULL */
    struct http_stats st;
};

static struct http *http_of(const struct sim *s)
{
    return s->tp_state;
}

/* ---- building requests --------------------------------------------------------------- */

/* Appends device d's due readings (at least one, at most room) to the slot's body. */
static bool add_readings(struct sim *s, struct slot *sl, unsigned d, unsigned room, int64_t now)
{
    char json[SIM_READING_JSON_MAX];
    unsigned added = 0;
    do {
        int n = sim_sched_produce(s, d, now, NULL, json, sizeof json);
        if (n >= 0 && http_of(s)->keys != NULL) {
            /* --sign: the body is the reading as a JWS (one reading a request). */
            char signed_body[SIM_SIGNED_JSON_MAX];
            long m = sim_keys_sign(s, http_of(s)->keys, d, json, (size_t)n, signed_body,
                                   sizeof signed_body);
            if (m < 0 || !buf_reserve(&sl->body, (size_t)m + 2))
                return false;
            buf_append(&sl->body, signed_body, (size_t)m);
            sl->reading_dev[sl->n_readings++] = d;
            continue;
        }
        if (n < 0 || !buf_reserve(&sl->body, (size_t)n + 2))
            return false;
        if (sl->n_readings > 0)
            buf_append(&sl->body, ",", 1);
        buf_append(&sl->body, json, (size_t)n);
        sl->reading_dev[sl->n_readings++] = d;
    } while (++added < room && sim_sched_has_due(s, d, now));
    s->dev[d].state = SIM_DEV_BUSY;
    return true;
}

static void slot_submit(struct http *h, struct slot *sl)
{
    CURL *e = sl->easy;
    sl->resp.len = 0;
    curl_easy_setopt(e, CURLOPT_URL, sl->kind == REQ_REGISTER ? sl->url : h->ingest_url);
    curl_easy_setopt(e, CURLOPT_POSTFIELDS, sl->body.data);
    curl_easy_setopt(e, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)sl->body.len);
    curl_easy_setopt(e, CURLOPT_CUSTOMREQUEST, sl->kind == REQ_REGISTER ? "PATCH" : NULL);
    curl_easy_setopt(e, CURLOPT_HTTPHEADER, sl->kind == REQ_REGISTER ? h->reg_headers : h->headers);
    sl->started_ns = clock_mono_ns();
    sl->state = SLOT_ACTIVE;
    h->n_active++;
    h->st.requests++;
    curl_multi_add_handle(h->multi, e);
}

static struct slot *slot_take(struct http *h)
{
    return &h->slots[h->free_slots[--h->n_free]];
}

static void slot_give_back(struct http *h, struct slot *sl)
{
    sl->state = SLOT_FREE;
    h->free_slots[h->n_free++] = (unsigned)(sl - h->slots);
}

/* Fills a free slot with readings from the ready FIFO: one device's next reading, or with
 * --batch up to B readings from as many devices as it takes. */
static bool start_ingest(struct sim *s, struct slot *sl, int64_t now)
{
    unsigned room = s->opt.batch;
    sl->kind = REQ_INGEST;
    sl->body.len = 0;
    sl->n_readings = 0;
    sl->attempts = 0;
    if (room > 1 && !buf_append(&sl->body, "[", 1))
        return false;
    while (s->ready.count > 0 && sl->n_readings < room) {
        unsigned d = sim_ring_pop(&s->ready);
        if (!add_readings(s, sl, d, room - sl->n_readings, now))
            return false;
    }
    if (room > 1 && !buf_append(&sl->body, "]", 1))
        return false;
    slot_submit(http_of(s), sl);
    return true;
}

static bool start_register(struct sim *s, struct slot *sl)
{
    struct http *h = http_of(s);
    unsigned d = sim_ring_pop(&h->reg_queue);
    const struct sim_device_info *info = sim_fleet_device(&s->fleet, d);
    sl->kind = REQ_REGISTER;
    sl->reg_dev = d;
    sl->n_readings = 0;
    sl->attempts = 0;
    sl->body.len = 0;
    snprintf(sl->url, sizeof sl->url, "%s/api/v1/devices/%s", h->base_url, info->id);
    /* the fleet's names are short: the body always fits */
    char body[SIM_REGISTER_BODY_MAX];
    int n = sim_register_body(info->name, info->location, info->kind, body, sizeof body);
    bool ok = n > 0 && buf_append(&sl->body, body, (size_t)n);
    if (ok)
        slot_submit(h, sl);
    return ok;
}

/* A batch goes out when B devices wait, when its oldest reading has waited --batch-wait,
 * or when the run is draining; single readings go out at once. */
static bool batch_ready(const struct sim *s, int64_t now)
{
    if (s->ready.count == 0)
        return false;
    if (s->opt.batch == 1 || s->stopping || s->ready.count >= s->opt.batch)
        return true;
    unsigned oldest = s->ready.items[s->ready.head];
    return now - s->dev[oldest].ready_ms >= (int64_t)s->opt.batch_wait_ms;
}

/* Starts requests on free slots: readings first, registrations with what is left. Returns
 * false when out of memory. */
static bool fill_slots(struct sim *s, int64_t now)
{
    struct http *h = http_of(s);
    for (unsigned i = 0; h->n_backoff > 0 && i < h->n_slots; i++) {
        struct slot *sl = &h->slots[i];
        if (sl->state == SLOT_BACKOFF && sl->retry_at_ms <= now) {
            h->n_backoff--;
            h->st.retries++;
            slot_submit(h, sl);
        }
    }
    while (h->n_free > 0) {
        if (batch_ready(s, now)) {
            if (!start_ingest(s, slot_take(h), now))
                return false;
        } else if (h->reg_queue.count > 0) {
            if (!start_register(s, slot_take(h)))
                return false;
        } else {
            break;
        }
    }
    return true;
}

/* ---- responses ----------------------------------------------------------------------- */

static size_t on_response_data(char *ptr, size_t size, size_t nmemb, void *userdata)
{
    struct slot *sl = userdata;
    size_t n = size * nmemb;
    size_t keep = sl->resp.len < MAX_RESPONSE ? MAX_RESPONSE - sl->resp.len : 0;
    if (keep > n)
        keep = n;
    if (keep > 0 && !buf_append(&sl->resp, ptr, keep))
        return 0;
    return n;
}

static void print_error(struct sim *s, const struct slot *sl, const char *what, long status)
{
    struct http *h = http_of(s);
    if (s->opt.quiet || h->st.printed_errors >= PRINTED_ERRORS)
        return;
    h->st.printed_errors++;
    int shown = sl->resp.len > 300 ? 300 : (int)sl->resp.len;
    fprintf(stderr, "canary simulate: %s (HTTP %ld, %u reading%s): %.*s%s\n", what, status,
            sl->n_readings, sl->n_readings == 1 ? "" : "s", shown,
            sl->resp.data != NULL ? sl->resp.data : "", sl->resp.len > 300 ? "..." : "");
    if (h->st.printed_errors == PRINTED_ERRORS)
        fprintf(stderr, "canary simulate: (further errors are only counted)\n");
}

static void device_accepted(struct sim *s, unsigned d)
{
    struct http *h = http_of(s);
    if (s->opt.register_devices && h->reg[d] == REG_NONE) {
        h->reg[d] = REG_QUEUED;
        sim_ring_push(&h->reg_queue, d);
    }
}

static int count_of(const cJSON *root, const char *a, const char *b)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(root, a);
    if (!cJSON_IsNumber(v) && b != NULL)
        v = cJSON_GetObjectItemCaseSensitive(root, b);
    return cJSON_IsNumber(v) && v->valuedouble >= 0 ? (int)v->valuedouble : -1;
}

enum outcome { OUT_ACCEPTED = 0, OUT_DUPLICATE = 1, OUT_REJECTED = 2 };

/* Outcome of one element of a batch answer's "results": {"status": "<reading_status_name()>",
 * ...} (ingest.h) or that string alone; "ok" and "stored" count as accepted; an object
 * without a status is rejected when it carries an "error", accepted otherwise. */
static uint8_t result_outcome(const cJSON *item)
{
    const cJSON *st =
        cJSON_IsObject(item) ? cJSON_GetObjectItemCaseSensitive(item, "status") : item;
    if (!cJSON_IsString(st)) {
        const cJSON *error = cJSON_GetObjectItemCaseSensitive(item, "error");
        return error != NULL && !cJSON_IsNull(error) ? OUT_REJECTED : OUT_ACCEPTED;
    }
    const char *v = st->valuestring;
    if (!strcmp(v, "accepted") || !strcmp(v, "ok") || !strcmp(v, "stored"))
        return OUT_ACCEPTED;
    return !strcmp(v, "duplicate") ? OUT_DUPLICATE : OUT_REJECTED;
}

/* Fills sl->outcome from a batch answer's "results". canaryd lists only the readings it did
 * not accept, each with its "index" in the body; an answer may instead list every reading
 * in order. Readings not listed are accepted. */
static void read_outcomes(struct slot *sl, const cJSON *results)
{
    memset(sl->outcome, OUT_ACCEPTED, sl->n_readings);
    if (!cJSON_IsArray(results))
        return;
    bool positional = (unsigned)cJSON_GetArraySize(results) == sl->n_readings;
    unsigned i = 0;
    for (const cJSON *it = results->child; it != NULL; it = it->next, i++) {
        const cJSON *index = cJSON_GetObjectItemCaseSensitive(it, "index");
        if (cJSON_IsNumber(index) && index->valuedouble >= 0 && index->valuedouble < sl->n_readings)
            sl->outcome[(unsigned)index->valuedouble] = result_outcome(it);
        else if (positional && index == NULL)
            sl->outcome[i] = result_outcome(it);
    }
}

/* Counts a 2xx answer. Totals come from its "accepted" / "duplicates" / "rejected" counts
 * when present, else from its per-reading results, else the whole request is accepted;
 * devices whose reading was accepted are queued for --register. */
static void count_success(struct sim *s, struct slot *sl, long status)
{
    struct http_stats *st = &http_of(s)->st;
    uint64_t n = sl->n_readings, acc = 0, dup = 0;
    cJSON *root = sl->resp.len > 0 ? cJSON_ParseWithLength(sl->resp.data, sl->resp.len) : NULL;
    read_outcomes(sl, cJSON_GetObjectItemCaseSensitive(root, "results"));
    for (unsigned i = 0; i < sl->n_readings; i++) {
        acc += sl->outcome[i] == OUT_ACCEPTED;
        dup += sl->outcome[i] == OUT_DUPLICATE;
        if (sl->outcome[i] == OUT_ACCEPTED)
            device_accepted(s, sl->reading_dev[i]);
    }
    int a = count_of(root, "accepted", NULL), dp = count_of(root, "duplicates", "duplicate");
    if (a >= 0)
        acc = (uint64_t)a < n ? (uint64_t)a : n;
    if (dp >= 0)
        dup = (uint64_t)dp < n - acc ? (uint64_t)dp : n - acc;
    if (dup > n - acc)
        dup = n - acc;
    st->accepted += acc;
    st->duplicates += dup;
    st->rejected += n - acc - dup;
    if (n - acc - dup > 0)
        print_error(s, sl, "readings rejected", status);
    cJSON_Delete(root);
}

/* Returns the devices of a finished ingest request to the schedule and frees the slot. */
static void release(struct sim *s, struct slot *sl, int64_t now)
{
    for (unsigned i = 0; i < sl->n_readings; i++) {
        unsigned d = sl->reading_dev[i];
        if (s->dev[d].state == SIM_DEV_BUSY)
            sim_sched_place(s, d, now);
    }
    sl->n_readings = 0;
    slot_give_back(http_of(s), sl);
}

static void backoff(struct http *h, struct slot *sl, int64_t delay_ms, int64_t now)
{
    sl->attempts++;
    sl->retry_at_ms = now + delay_ms;
    sl->state = SLOT_BACKOFF;
    h->n_backoff++;
}

static int64_t retry_after_ms(const struct slot *sl)
{
    curl_off_t secs = 0;
    if (curl_easy_getinfo(sl->easy, CURLINFO_RETRY_AFTER, &secs) != CURLE_OK || secs <= 0)
        return 1000;
    return secs > 3600 ? 3600000 : (int64_t)secs * 1000;
}

static void register_done(struct sim *s, struct slot *sl, long status)
{
    struct http *h = http_of(s);
    if (status >= 200 && status < 300) {
        h->st.registered++;
    } else if (status == 404) {
        if (h->st.register_404++ == 0 && !s->opt.quiet)
            fprintf(stderr,
                    "canary simulate: PATCH %s answered 404; device registration is "
                    "not available on this server (readings go on)\n",
                    sl->url);
    } else {
        h->st.register_failed++;
        print_error(s, sl, "device registration refused", status);
    }
    h->reg[sl->reg_dev] = REG_DONE;
    slot_give_back(h, sl);
}

static void request_done(struct sim *s, struct slot *sl, CURLcode rc)
{
    struct http *h = http_of(s);
    int64_t now = sim_now_ms(s);
    long status = 0;
    curl_multi_remove_handle(h->multi, sl->easy);
    h->n_active--;
    if (rc == CURLE_OK) {
        curl_easy_getinfo(sl->easy, CURLINFO_RESPONSE_CODE, &status);
        sim_latency_add(&s->st.latency, clock_mono_ns() - sl->started_ns);
    }
    if (rc != CURLE_OK) {
        if (h->st.transport_errors++ < 3 && !s->opt.quiet)
            fprintf(stderr, "canary simulate: %s: %s (retrying with backoff)\n",
                    sl->kind == REQ_REGISTER ? sl->url : h->ingest_url, curl_easy_strerror(rc));
        backoff(h, sl, sim_backoff_ms(s, sl->attempts), now);
    } else if (status == 503 || status == 429) {
        h->st.backpressure++;
        backoff(h, sl, retry_after_ms(sl), now);
    } else if (status >= 500) {
        h->st.server_errors++;
        print_error(s, sl, "server error, retrying", status);
        backoff(h, sl, sim_backoff_ms(s, sl->attempts), now);
    } else if (sl->kind == REQ_REGISTER) {
        register_done(s, sl, status);
    } else {
        if (status >= 200 && status < 300) {
            count_success(s, sl, status);
        } else if (status == 409) {
            h->st.duplicates += sl->n_readings;
        } else {
            h->st.rejected += sl->n_readings;
            print_error(s, sl, "readings rejected", status);
        }
        release(s, sl, now);
    }
}

static void collect_done(struct sim *s)
{
    CURLMsg *m;
    int left;
    while ((m = curl_multi_info_read(http_of(s)->multi, &left)) != NULL) {
        if (m->msg != CURLMSG_DONE)
            continue;
        struct slot *sl = NULL;
        curl_easy_getinfo(m->easy_handle, CURLINFO_PRIVATE, (char **)&sl);
        request_done(s, sl, m->data.result);
    }
}

/* ---- the transport's interface ------------------------------------------------------- */

static bool http_step(struct sim *s, int64_t now)
{
    if (!fill_slots(s, now))
        return false;
    int running;
    curl_multi_perform(http_of(s)->multi, &running);
    collect_done(s);
    return true;
}

static void http_wait(struct sim *s, int timeout_ms)
{
    curl_multi_poll(http_of(s)->multi, NULL, 0, timeout_ms, NULL);
}

static int64_t http_next_wake(const struct sim *s, int64_t now, int64_t wake)
{
    const struct http *h = http_of(s);
    bool free_slot = h->n_free > 0;
    if (free_slot && (batch_ready(s, now) || h->reg_queue.count > 0))
        return now;
    if (free_slot && s->ready.count > 0) {
        unsigned oldest = s->ready.items[s->ready.head];
        int64_t t = s->dev[oldest].ready_ms + s->opt.batch_wait_ms;
        wake = t < wake ? t : wake;
    }
    for (unsigned i = 0; h->n_backoff > 0 && i < h->n_slots; i++) {
        if (h->slots[i].state == SLOT_BACKOFF && h->slots[i].retry_at_ms < wake)
            wake = h->slots[i].retry_at_ms;
    }
    return wake;
}

static bool http_outstanding(const struct sim *s)
{
    const struct http *h = http_of(s);
    return h->n_active > 0 || h->n_backoff > 0 || h->reg_queue.count > 0;
}

static unsigned http_describe(const struct sim *s, char *target, size_t len)
{
    snprintf(target, len, "%s", http_of(s)->ingest_url);
    return http_of(s)->n_slots;
}

static void http_progress(const struct sim *s, int64_t now)
{
    const struct http *h = http_of(s);
    fprintf(stderr,
            "canary simulate: t=%" PRId64 "s sent=%" PRIu64 " accepted=%" PRIu64
            " duplicates=%" PRIu64 " rejected=%" PRIu64 " waiting_devices=%u in_flight=%u "
            "backoff=%u late_max=%" PRId64 "ms p99=%.2fms\n",
            now / 1000, s->st.sent, h->st.accepted, h->st.duplicates, h->st.rejected,
            s->ready.count, h->n_active, h->n_backoff, s->st.late_max_ms,
            sim_latency_ms(&s->st.latency, 0.99));
}

static int http_summary(const struct sim *s, double elapsed_s, uint64_t due)
{
    const struct http_stats *st = &http_of(s)->st;
    uint64_t answered = st->accepted + st->duplicates + st->rejected;
    uint64_t failed = due > answered ? due - answered : 0;
    printf("simulate: devices=%u sent=%" PRIu64 " accepted=%" PRIu64 " duplicates=%" PRIu64
           " rejected=%" PRIu64 " failed=%" PRIu64 " rate=%.1f/s p50=%.2fms p99=%.2fms",
           s->opt.devices, s->st.sent, st->accepted, st->duplicates, st->rejected, failed,
           elapsed_s > 0 ? (double)answered / elapsed_s : 0.0, sim_latency_ms(&s->st.latency, 0.50),
           sim_latency_ms(&s->st.latency, 0.99));
    if (s->opt.register_devices)
        printf(" registered=%" PRIu64 " register_404=%" PRIu64 " register_failed=%" PRIu64,
               st->registered, st->register_404, st->register_failed);
    printf("\n");
    fflush(stdout);
    if (!s->opt.quiet)
        fprintf(stderr,
                "canary simulate: %.1f s, %" PRIu64 " requests, %" PRIu64 " retries (%" PRIu64
                " back-pressure, %" PRIu64 " connection errors, %" PRIu64
                " server errors), latest reading %" PRId64 " ms after its time, %" PRIu64
                " more than 1 s late\n",
                elapsed_s, st->requests, st->retries, st->backpressure, st->transport_errors,
                st->server_errors, s->st.late_max_ms, s->st.late_1s);
    return failed == 0 && st->rejected == 0 ? 0 : 1;
}

static CURL *new_easy(struct http *h, struct slot *sl)
{
    CURL *e = curl_easy_init();
    if (e == NULL)
        return NULL;
    curl_easy_setopt(e, CURLOPT_HTTPHEADER, h->headers);
    curl_easy_setopt(e, CURLOPT_WRITEFUNCTION, on_response_data);
    curl_easy_setopt(e, CURLOPT_WRITEDATA, sl);
    curl_easy_setopt(e, CURLOPT_PRIVATE, sl);
    curl_easy_setopt(e, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(e, CURLOPT_TCP_NODELAY, 1L);
    curl_easy_setopt(e, CURLOPT_TCP_KEEPALIVE, 1L);
    curl_easy_setopt(e, CURLOPT_TIMEOUT_MS, (long)REQUEST_TIMEOUT_MS);
    curl_easy_setopt(e, CURLOPT_CONNECTTIMEOUT_MS, (long)CONNECT_TIMEOUT_MS);
    curl_easy_setopt(e, CURLOPT_USERAGENT, "canary-simulate/" CANARY_VERSION);
    return e;
}

static int http_setup_state(struct sim *s, struct http *h)
{
    if (s->opt.sign_path != NULL && sim_keys_load(s, &h->keys) != 0)
        return 1;
    snprintf(h->base_url, sizeof h->base_url, "%s", s->opt.url);
    size_t n = strlen(h->base_url);
    while (n > 0 && h->base_url[n - 1] == '/')
        h->base_url[--n] = '\0';
    snprintf(h->ingest_url, sizeof h->ingest_url, "%s/api/v1/ingest", h->base_url);
    h->multi = curl_multi_init();
    h->headers = curl_slist_append(NULL, h->keys != NULL ? "Content-Type: application/jose"
                                                         : "Content-Type: application/json");
    h->headers = curl_slist_append(h->headers, "Expect:"); /* no 100-continue round trip */
    /* A PATCH is JSON even when readings are signed, and changes state: it carries
     * $CANARY_API_ADMIN_TOKEN when set (canaryd refuses it without when it has one). */
    h->reg_headers = curl_slist_append(NULL, "Content-Type: application/json");
    if (h->reg_headers != NULL)
        h->reg_headers = curl_slist_append(h->reg_headers, "Expect:");
    const char *admin = getenv("CANARY_API_ADMIN_TOKEN");
    if (h->reg_headers != NULL && admin != NULL && *admin != '\0' && strlen(admin) < 512) {
        char auth[600];
        snprintf(auth, sizeof auth, "Authorization: Bearer %s", admin);
        h->reg_headers = curl_slist_append(h->reg_headers, auth);
    }
    h->n_slots = s->opt.connections;
    h->slots = calloc(h->n_slots, sizeof *h->slots);
    h->free_slots = malloc(h->n_slots * sizeof *h->free_slots);
    h->reg = calloc(s->opt.devices, 1);
    h->reg_queue.items = malloc(s->opt.devices * sizeof *h->reg_queue.items);
    h->reg_queue.cap = s->opt.devices;
    if (h->multi == NULL || h->headers == NULL || h->reg_headers == NULL || h->slots == NULL ||
        h->free_slots == NULL || h->reg == NULL || h->reg_queue.items == NULL)
        return -1;
    long c = (long)h->n_slots;
    curl_multi_setopt(h->multi, CURLMOPT_MAX_TOTAL_CONNECTIONS, c);
    curl_multi_setopt(h->multi, CURLMOPT_MAX_HOST_CONNECTIONS, c);
    curl_multi_setopt(h->multi, CURLMOPT_MAXCONNECTS, c);
    for (unsigned i = 0; i < h->n_slots; i++) {
        struct slot *sl = &h->slots[i];
        sl->easy = new_easy(h, sl);
        if (sl->easy != NULL)
            cli_tls_apply(sl->easy, s->opt.ca);
        sl->reading_dev = malloc(s->opt.batch * sizeof *sl->reading_dev);
        sl->outcome = malloc(s->opt.batch);
        if (sl->easy == NULL || sl->reading_dev == NULL || sl->outcome == NULL)
            return -1;
        slot_give_back(h, sl);
    }
    return 0;
}

static int http_setup(struct sim *s)
{
    struct http *h = http_of(s);
    if (curl_global_init(CURL_GLOBAL_DEFAULT) != 0) {
        fprintf(stderr, "canary simulate: libcurl failed to initialise\n");
        return 1;
    }
    h->curl_ready = true;
    return http_setup_state(s, h);
}

static void http_teardown(struct sim *s)
{
    struct http *h = http_of(s);
    for (unsigned i = 0; h->slots != NULL && i < h->n_slots; i++) {
        struct slot *sl = &h->slots[i];
        if (sl->state == SLOT_ACTIVE)
            curl_multi_remove_handle(h->multi, sl->easy);
        if (sl->easy != NULL)
            curl_easy_cleanup(sl->easy);
        free(sl->body.data);
        free(sl->resp.data);
        free(sl->reading_dev);
        free(sl->outcome);
    }
    free(h->slots);
    free(h->free_slots);
    free(h->reg);
    free(h->reg_queue.items);
    sim_keys_free(s, h->keys);
    if (h->multi != NULL)
        curl_multi_cleanup(h->multi);
    curl_slist_free_all(h->headers);
    curl_slist_free_all(h->reg_headers);
    if (h->curl_ready)
        curl_global_cleanup();
}

const struct sim_transport sim_http_transport = {
    .state_size = sizeof(struct http),
    .setup = http_setup,
    .step = http_step,
    .wait = http_wait,
    .next_wake = http_next_wake,
    .outstanding = http_outstanding,
    .finish = NULL,
    .describe = http_describe,
    .progress = http_progress,
    .summary = http_summary,
    .teardown = http_teardown,
};
