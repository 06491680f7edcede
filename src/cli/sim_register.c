/* sim_register.c — device registration for `canary simulate --register` over MQTT, on a
 * worker thread of its own (contract in sim_register.h).
 *
 * The loop's thread builds each request (URL and JSON body, one allocation) and appends it to
 * the incoming list under the lock; that is all it ever waits for. The worker owns everything
 * else: it moves the incoming list into its retry tiers, sends the request due first with
 * curl_easy_perform() outside the lock, and either finishes it or puts it back in a tier.
 *
 * Retry tiers. An item that has been tried k times waits delay[min(k, TIERS - 1)] after its
 * last attempt. Every item in one tier waits the same delay, and the worker is the only one
 * that adds to tiers 1.., in the order of its attempts, so each tier is a FIFO sorted by due
 * time: the next request is the earliest of TIERS list heads, and no heap is needed. Tier 0
 * (never tried) is fed from the incoming list in queueing order, due at once.
 *
 * A 404 concerns one device (canaryd has not committed its first reading yet), but a
 * connection error, 408, 429 or 5xx concerns them all: after one, the worker also holds
 * every request back by the same 250 ms ... 2 s ladder, counted in troubles in a row, so
 * that a fleet of thousands does not hammer a canaryd that is down. */
#include "cli/sim_register.h"
#include "cli/cli_tls.h"

#include "core/clock.h"
#include "core/error.h"
#include "core/metric.h"

#include <curl/curl.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define TIERS              5 /* never tried, tried once, twice, three times, four or more */
#define PRINTED_MESSAGES   5 /* worker messages on stderr */
#define REQUEST_TIMEOUT_MS 10000
#define CONNECT_TIMEOUT_MS 5000
#define RESPONSE_KEPT      512 /* bytes of an answer kept to show with a refusal */
#define DEVICE_ID_MAX      255

static const int64_t tier_delay_ms[TIERS] = {0, 250, 500, 1000, 2000};

/* One device's registration request. */
struct item {
    struct item *next;
    int64_t queued_ns; /* monotonic; the give-up clock starts here */
    int64_t due_ns;    /* monotonic; when to try (again) */
    unsigned attempts; /* tries so far */
    const char *url;   /* <base>/api/v1/devices/<id>, in the same allocation */
    const char *body;  /* sim_register_body(), in the same allocation */
    size_t body_len;
};

struct fifo {
    struct item *head, *tail;
};

struct sim_register {
    /* set by sim_register_start(), read-only afterwards */
    char *base_url;      /* without trailing slashes */
    const char *ca_file; /* CA of an https:// base_url (cli_tls.h); NULL = system store */
    bool quiet;
    CURL *easy; /* used only by the worker */
    struct curl_slist *headers;
    bool curl_ready;
    pthread_t thread;
    bool thread_running; /* the loop's thread: started and not yet joined */
    /* shared, under lock */
    pthread_mutex_t lock;
    pthread_cond_t wake;
    struct fifo incoming; /* queued, not yet seen by the worker */
    uint64_t unfinished;  /* queued, neither registered nor failed */
    atomic_bool stopping; /* set under lock; read by the progress callback without it */
    /* the loop's thread only */
    uint64_t queued, not_queued;
    /* the worker only (read by the loop's thread after the join) */
    struct fifo tier[TIERS];
    struct sim_register_counts st;
    unsigned printed;
    bool told_connection_error, told_server_error; /* said once, then only counted */
    unsigned troubles_in_row; /* connection errors, 408, 429 and 5xx since the last answer */
    int64_t hold_until_ns;    /* monotonic; no request before it (after such troubles) */
    char resp[RESPONSE_KEPT + 1];
    size_t resp_len;
};

/* ---- the body ------------------------------------------------------------------------ */

/* Appends str as a JSON string at buf[*at..len). False when it does not fit. */
static bool put_json_string(char *buf, size_t len, size_t *at, const char *str)
{
    size_t n = *at;
    if (n + 1 >= len)
        return false;
    buf[n++] = '"';
    for (const unsigned char *p = (const unsigned char *)str; *p != '\0'; p++) {
        char esc[8];
        size_t k;
        if (*p == '"' || *p == '\\')
            k = (size_t)snprintf(esc, sizeof esc, "\\%c", *p);
        else if (*p < 0x20)
            k = (size_t)snprintf(esc, sizeof esc, "\\u%04x", (unsigned)*p);
        else
            k = (size_t)snprintf(esc, sizeof esc, "%c", *p);
        if (n + k >= len)
            return false;
        memcpy(buf + n, esc, k);
        n += k;
    }
    if (n + 1 >= len)
        return false;
    buf[n++] = '"';
    buf[n] = '\0';
    *at = n;
    return true;
}

static bool put_raw(char *buf, size_t len, size_t *at, const char *s)
{
    size_t k = strlen(s);
    if (*at + k >= len)
        return false;
    memcpy(buf + *at, s, k + 1);
    *at += k;
    return true;
}

int sim_register_body(const char *name, const char *location, const char *kind, char *buf,
                      size_t len)
{
    size_t at = 0;
    bool ok = put_raw(buf, len, &at, "{\"name\":") && put_json_string(buf, len, &at, name) &&
              put_raw(buf, len, &at, ",\"location\":") &&
              put_json_string(buf, len, &at, location) && put_raw(buf, len, &at, ",\"kind\":") &&
              put_json_string(buf, len, &at, kind) && put_raw(buf, len, &at, "}");
    if (!ok) {
        if (len > 0)
            buf[0] = '\0';
        return CANARY_ELIMIT;
    }
    return (int)at;
}

/* ---- lists --------------------------------------------------------------------------- */

static void fifo_push(struct fifo *f, struct item *it)
{
    it->next = NULL;
    if (f->tail != NULL)
        f->tail->next = it;
    else
        f->head = it;
    f->tail = it;
}

static struct item *fifo_pop(struct fifo *f)
{
    struct item *it = f->head;
    f->head = it->next;
    if (f->head == NULL)
        f->tail = NULL;
    return it;
}

/* Moves every item of from to the end of to. */
static void fifo_splice(struct fifo *to, struct fifo *from)
{
    if (from->head == NULL)
        return;
    if (to->tail != NULL)
        to->tail->next = from->head;
    else
        to->head = from->head;
    to->tail = from->tail;
    from->head = from->tail = NULL;
}

/* Frees every item of f; returns how many there were. */
static uint64_t fifo_free(struct fifo *f)
{
    uint64_t n = 0;
    while (f->head != NULL) {
        free(fifo_pop(f));
        n++;
    }
    return n;
}

/* ---- the worker ---------------------------------------------------------------------- */

static void say(struct sim_register *r, const char *what, const struct item *it, long status)
{
    if (r->quiet || r->printed >= PRINTED_MESSAGES)
        return;
    r->printed++;
    int shown = r->resp_len > 300 ? 300 : (int)r->resp_len;
    fprintf(stderr, "canary simulate: PATCH %s: %s", it->url, what);
    if (status > 0)
        fprintf(stderr, " (HTTP %ld)%s%.*s%s", status, shown > 0 ? ": " : "", shown, r->resp,
                r->resp_len > 300 ? "..." : "");
    fprintf(stderr, "\n");
    if (r->printed == PRINTED_MESSAGES)
        fprintf(stderr, "canary simulate: (further registration problems are only counted)\n");
}

static size_t on_response_data(char *ptr, size_t size, size_t nmemb, void *userdata)
{
    struct sim_register *r = userdata;
    size_t n = size * nmemb, keep = RESPONSE_KEPT - r->resp_len;
    keep = keep < n ? keep : n;
    memcpy(r->resp + r->resp_len, ptr, keep);
    r->resp_len += keep;
    r->resp[r->resp_len] = '\0';
    return n;
}

/* Aborts a transfer under way once the stop has begun. */
static int on_progress(void *userdata, curl_off_t dltotal, curl_off_t dlnow, curl_off_t ultotal,
                       curl_off_t ulnow)
{
    struct sim_register *r = userdata;
    return atomic_load(&r->stopping) ? 1 : 0;
}

/* Sends one attempt of it. Returns true when the item is finished (registered or failed),
 * false when it went back into a retry tier. */
static bool attempt(struct sim_register *r, struct item *it)
{
    CURL *e = r->easy;
    r->resp_len = 0;
    r->resp[0] = '\0';
    curl_easy_setopt(e, CURLOPT_URL, it->url);
    curl_easy_setopt(e, CURLOPT_POSTFIELDS, it->body);
    curl_easy_setopt(e, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)it->body_len);
    CURLcode rc = curl_easy_perform(e);
    long status = 0;
    if (rc == CURLE_OK)
        curl_easy_getinfo(e, CURLINFO_RESPONSE_CODE, &status);
    r->st.requests++;
    it->attempts++;
    bool server_trouble = (rc != CURLE_OK && rc != CURLE_ABORTED_BY_CALLBACK) || status == 408 ||
                          status == 429 || status >= 500;
    r->troubles_in_row = server_trouble ? r->troubles_in_row + 1 : 0;
    if (server_trouble) {
        /* canaryd is away or overloaded for every device alike: hold all of them */
        unsigned t = r->troubles_in_row < TIERS ? r->troubles_in_row : TIERS - 1;
        r->hold_until_ns = clock_mono_ns() + tier_delay_ms[t] * 1000000;
    }
    if (rc == CURLE_OK && status >= 200 && status < 300) {
        r->st.registered++;
        return true;
    }
    bool retry = rc != CURLE_OK || status == 404 || status == 408 || status == 429 || status >= 500;
    if (!retry) {
        r->st.failed++;
        say(r, "device registration refused", it, status);
        return true;
    }
    if (status == 404) {
        r->st.not_found++;
    } else if (rc != CURLE_ABORTED_BY_CALLBACK) {
        r->st.errors++;
        bool *told = rc != CURLE_OK ? &r->told_connection_error : &r->told_server_error;
        if (!*told) {
            *told = true;
            char what[160];
            snprintf(what, sizeof what, "%s; retrying with backoff",
                     rc != CURLE_OK ? curl_easy_strerror(rc) : "server error");
            say(r, what, it, status);
        }
    }
    unsigned t = it->attempts < TIERS ? it->attempts : TIERS - 1;
    int64_t now = clock_mono_ns();
    it->due_ns = now + tier_delay_ms[t] * 1000000;
    if (it->due_ns - it->queued_ns > (int64_t)SIM_REGISTER_GIVE_UP_MS * 1000000 &&
        !atomic_load(&r->stopping)) {
        char what[200];
        snprintf(what, sizeof what, "gave up after %d s of %s", SIM_REGISTER_GIVE_UP_MS / 1000,
                 status == 404 ? "404 answers; does canaryd read this broker? (its MQTT ingest "
                                 "makes the device known)"
                               : "retries");
        r->st.failed++;
        r->st.gave_up++;
        say(r, what, it, status);
        return true;
    }
    fifo_push(&r->tier[t], it);
    return false;
}

/* The tier whose head is due first, or NULL when every tier is empty. */
static struct fifo *earliest(struct sim_register *r)
{
    struct fifo *best = NULL;
    for (unsigned t = 0; t < TIERS; t++) {
        struct fifo *f = &r->tier[t];
        if (f->head != NULL && (best == NULL || f->head->due_ns < best->head->due_ns))
            best = f;
    }
    return best;
}

static void wait_until(struct sim_register *r, int64_t mono_ns)
{
    struct timespec ts = {(time_t)(mono_ns / 1000000000), (long)(mono_ns % 1000000000)};
    pthread_cond_timedwait(&r->wake, &r->lock, &ts);
}

static void *worker_main(void *arg)
{
    struct sim_register *r = arg;
    pthread_mutex_lock(&r->lock);
    while (!atomic_load(&r->stopping)) {
        fifo_splice(&r->tier[0], &r->incoming);
        struct fifo *f = earliest(r);
        if (f == NULL) {
            pthread_cond_wait(&r->wake, &r->lock);
            continue;
        }
        int64_t due = f->head->due_ns > r->hold_until_ns ? f->head->due_ns : r->hold_until_ns;
        if (due > clock_mono_ns()) {
            wait_until(r, due);
            continue;
        }
        struct item *it = fifo_pop(f);
        pthread_mutex_unlock(&r->lock);
        bool done = attempt(r, it);
        if (done)
            free(it);
        pthread_mutex_lock(&r->lock);
        if (done)
            r->unfinished--;
    }
    uint64_t left = fifo_free(&r->incoming);
    for (unsigned t = 0; t < TIERS; t++)
        left += fifo_free(&r->tier[t]);
    r->st.abandoned += left;
    r->st.failed += left;
    r->unfinished = 0;
    pthread_mutex_unlock(&r->lock);
    return NULL;
}

/* ---- the loop's side ----------------------------------------------------------------- */

int sim_register_queue(struct sim_register *r, const char *id, const char *name,
                       const char *location, const char *kind)
{
    r->queued++;
    size_t id_len = strlen(id);
    char body[SIM_REGISTER_BODY_MAX];
    int n = -1;
    if (device_id_valid(id, id_len, DEVICE_ID_MAX) && strlen(name) <= SIM_REGISTER_TEXT_MAX &&
        strlen(location) <= SIM_REGISTER_TEXT_MAX && strlen(kind) <= SIM_REGISTER_TEXT_MAX)
        n = sim_register_body(name, location, kind, body, sizeof body);
    if (n < 0) {
        r->not_queued++;
        return CANARY_EINVAL;
    }
    static const char path[] = "/api/v1/devices/";
    size_t url_len = strlen(r->base_url) + sizeof path - 1 + id_len;
    struct item *it = malloc(sizeof *it + url_len + 1 + (size_t)n + 1);
    if (it == NULL) {
        r->not_queued++;
        return CANARY_ENOMEM;
    }
    char *url = (char *)(it + 1), *b = url + url_len + 1;
    snprintf(url, url_len + 1, "%s%s%s", r->base_url, path, id);
    memcpy(b, body, (size_t)n + 1);
    *it = (struct item){.queued_ns = clock_mono_ns(), .url = url, .body = b, .body_len = (size_t)n};
    it->due_ns = it->queued_ns;
    pthread_mutex_lock(&r->lock);
    bool open = r->thread_running && !atomic_load(&r->stopping);
    if (open) {
        fifo_push(&r->incoming, it);
        r->unfinished++;
        pthread_cond_signal(&r->wake);
    }
    pthread_mutex_unlock(&r->lock);
    if (!open) {
        free(it);
        r->not_queued++;
    }
    return 0;
}

bool sim_register_busy(struct sim_register *r)
{
    pthread_mutex_lock(&r->lock);
    bool busy = r->unfinished > 0;
    pthread_mutex_unlock(&r->lock);
    return busy;
}

void sim_register_stop(struct sim_register *r)
{
    if (!r->thread_running)
        return;
    pthread_mutex_lock(&r->lock);
    atomic_store(&r->stopping, true);
    pthread_cond_signal(&r->wake);
    pthread_mutex_unlock(&r->lock);
    pthread_join(r->thread, NULL);
    r->thread_running = false;
}

void sim_register_counts(const struct sim_register *r, struct sim_register_counts *out)
{
    *out = r->st;
    out->queued = r->queued;
    out->failed += r->not_queued;
}

/* ---- start and end ------------------------------------------------------------------- */

static int setup_curl(struct sim_register *r)
{
    if (curl_global_init(CURL_GLOBAL_DEFAULT) != 0)
        return -1;
    r->curl_ready = true;
    r->easy = curl_easy_init();
    r->headers = curl_slist_append(NULL, "Content-Type: application/json");
    if (r->headers != NULL)
        r->headers = curl_slist_append(r->headers, "Expect:"); /* no 100-continue round trip */
    if (r->easy == NULL || r->headers == NULL)
        return -1;
    CURL *e = r->easy;
    curl_easy_setopt(e, CURLOPT_CUSTOMREQUEST, "PATCH");
    curl_easy_setopt(e, CURLOPT_HTTPHEADER, r->headers);
    curl_easy_setopt(e, CURLOPT_WRITEFUNCTION, on_response_data);
    curl_easy_setopt(e, CURLOPT_WRITEDATA, r);
    curl_easy_setopt(e, CURLOPT_NOPROGRESS, 0L);
    curl_easy_setopt(e, CURLOPT_XFERINFOFUNCTION, on_progress);
    curl_easy_setopt(e, CURLOPT_XFERINFODATA, r);
    curl_easy_setopt(e, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(e, CURLOPT_TCP_NODELAY, 1L);
    curl_easy_setopt(e, CURLOPT_TCP_KEEPALIVE, 1L);
    curl_easy_setopt(e, CURLOPT_TIMEOUT_MS, (long)REQUEST_TIMEOUT_MS);
    curl_easy_setopt(e, CURLOPT_CONNECTTIMEOUT_MS, (long)CONNECT_TIMEOUT_MS);
    curl_easy_setopt(e, CURLOPT_USERAGENT, "canary-simulate/" CANARY_VERSION);
    cli_tls_apply(e, r->ca_file);
    return 0;
}

/* The worker waits with pthread_cond_timedwait() on the monotonic clock, like clock_mono_ns(),
 * and runs with every signal blocked, so that SIGINT and SIGTERM reach the loop's thread.
 * Returns 0, or an errno value (-1 when it is not known). */
static int start_thread(struct sim_register *r)
{
    pthread_condattr_t ca;
    if (pthread_condattr_init(&ca) != 0)
        return -1;
    int rc = pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
    if (rc == 0)
        rc = pthread_cond_init(&r->wake, &ca);
    pthread_condattr_destroy(&ca);
    if (rc != 0)
        return -1;
    if (pthread_mutex_init(&r->lock, NULL) != 0) {
        pthread_cond_destroy(&r->wake);
        return -1;
    }
    sigset_t all, old;
    sigfillset(&all);
    pthread_sigmask(SIG_SETMASK, &all, &old);
    rc = pthread_create(&r->thread, NULL, worker_main, r);
    pthread_sigmask(SIG_SETMASK, &old, NULL);
    if (rc != 0) {
        pthread_mutex_destroy(&r->lock);
        pthread_cond_destroy(&r->wake);
        return rc;
    }
    r->thread_running = true;
    return 0;
}

static void free_curl(struct sim_register *r)
{
    if (r->easy != NULL)
        curl_easy_cleanup(r->easy);
    curl_slist_free_all(r->headers);
    if (r->curl_ready)
        curl_global_cleanup();
}

int sim_register_start(struct sim_register **out, const char *base_url, const char *ca_file,
                       bool quiet, char *err, size_t errlen)
{
    *out = NULL;
    struct sim_register *r = calloc(1, sizeof *r);
    if (r == NULL || (r->base_url = strdup(base_url)) == NULL) {
        free(r);
        snprintf(err, errlen, "out of memory");
        return CANARY_ENOMEM;
    }
    size_t n = strlen(r->base_url);
    while (n > 0 && r->base_url[n - 1] == '/')
        r->base_url[--n] = '\0';
    r->quiet = quiet;
    atomic_init(&r->stopping, false);
    int rc;
    r->ca_file = ca_file;
    if (setup_curl(r) != 0) {
        snprintf(err, errlen, "libcurl failed to initialise");
    } else if ((rc = start_thread(r)) != 0) {
        snprintf(err, errlen, "cannot start the registration thread: %s",
                 rc > 0 ? strerror(rc) : "out of resources");
    } else {
        *out = r;
        return 0;
    }
    free_curl(r);
    free(r->base_url);
    free(r);
    return CANARY_EIO;
}

void sim_register_free(struct sim_register *r)
{
    if (r == NULL)
        return;
    sim_register_stop(r);
    pthread_mutex_destroy(&r->lock);
    pthread_cond_destroy(&r->wake);
    fifo_free(&r->incoming);
    free_curl(r);
    free(r->base_url);
    free(r);
}
