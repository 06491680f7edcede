/* simulate.c — `canary simulate`: a simulated fleet (sim_fleet.h) sending its readings to
 * canaryd over HTTP, on schedule, as real devices would.
 *
 * Promises:
 *  - every device sends rate_hz readings a second, each at its due time (devices are spread
 *    evenly over the period so the load is smooth), stamped with that due time;
 *  - a reading is never dropped: when the server is slow, readings wait and go out late with
 *    their original ts; 503/429 and connection errors are retried with the same seq after
 *    Retry-After or an exponential backoff; only what is still undelivered when the run ends
 *    (after the drain window) counts as failed, and
 *    accepted + duplicates + rejected + failed = every reading that fell due;
 *  - a device has at most one request in flight, so its seqs reach the server in order;
 *  - the ground-truth CSV, when asked for, is complete whenever the process exits normally,
 *    including after SIGINT/SIGTERM (it is also rewritten atomically every few seconds).
 *
 * How it works: one thread, one libcurl multi handle, and a fixed pool of --connections
 * request slots, each with its own easy handle and buffers (so there are never more than
 * that many requests in flight, and at most that many connections, all kept alive and
 * reused). Devices are in one of three places: a min-heap keyed by the due time of their
 * next reading, a FIFO of devices with a reading due and no slot yet, or a slot. Readings
 * are produced by the model only when a slot takes them, so a backlog costs no memory:
 * the model is a function of the timestamp, and a late reading is the same reading.
 *
 * seq: each device's seq starts at the wall-clock Unix milliseconds when the simulator
 * started and rises by one per reading. canaryd rejects a seq at or below the highest it
 * has stored for the device, so a restarted simulator must start above whatever the last
 * run sent. Reading k of a run is produced no earlier than k ms after that run started
 * (rates are capped at 1000 Hz), so its seq, start + k, is at most the wall clock at the
 * moment it was sent, which is below the next run's start, and no device state needs to
 * be saved between runs. */
#include "cli/commands.h"
#include "cli/sim_fleet.h"

#include "core/clock.h"
#include "core/error.h"
#include "core/metric.h"

#include <cjson/cJSON.h>
#include <curl/curl.h>
#include <errno.h>
#include <inttypes.h>
#include <math.h>
#include <signal.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define MAX_RATE_HZ        1000.0 /* keeps seq = start_ms + k below the wall clock */
#define MAX_BATCH          10000  /* canaryd's default ingest.max_batch */
#define MAX_CONNECTIONS    1024
#define MAX_URL_LEN        400
#define MAX_RESPONSE       (1u << 20) /* bytes of a response kept for parsing */
#define PRINTED_ERRORS     5          /* error bodies shown on stderr */
#define PROGRESS_MS        10000      /* progress line interval */
#define TRUTH_REWRITE_MS   5000       /* ground-truth rewrite interval */
#define POLL_MAX_MS        100        /* longest sleep: how fast a signal is noticed */
#define REQUEST_TIMEOUT_MS 30000
#define CONNECT_TIMEOUT_MS 5000
#define BACKOFF_FIRST_MS   100
#define BACKOFF_MAX_MS     5000

/* The only global: how many SIGINT/SIGTERM have arrived. */
static volatile sig_atomic_t stop_signals;

static void on_stop_signal(int sig)
{
    (void)sig;
    if (stop_signals < 100)
        stop_signals++;
}

/* ---- options ------------------------------------------------------------------------- */

struct options {
    unsigned devices;  /* --devices */
    double rate_hz;    /* --rate: readings per second per device */
    double duration_s; /* --duration; 0 = until a signal */
    uint64_t seed;     /* --seed */
    const char *url;   /* --url: canaryd's base URL */
    enum sim_scenario scenario;
    double scenario_at_s;      /* --scenario-at; < 0 = default */
    double scenario_length_s;  /* --scenario-length */
    unsigned scenario_devices; /* --scenario-devices */
    bool scenario_opts;        /* any --scenario-* option given */
    const char *truth_path;    /* --truth */
    const char *prefix;        /* --prefix */
    unsigned batch;            /* --batch */
    unsigned batch_wait_ms;    /* --batch-wait */
    bool batch_wait_given;
    unsigned connections;  /* --connections; 0 = min(devices, 64) */
    double drain_s;        /* --drain */
    bool register_devices; /* --register */
    bool quiet;            /* --quiet */
};

static void usage(FILE *out)
{
    fprintf(out,
            "usage: canary simulate [options]\n"
            "\n"
            "Sends readings from a simulated fleet of sensor devices to canaryd over HTTP\n"
            "(POST <url>/api/v1/ingest, JSON), on schedule, with many requests in flight on\n"
            "kept-alive connections. Devices are kitchens, boiler rooms, garages, workshops,\n"
            "server rooms and warehouses with gas, temperature, humidity, flame, motion, light,\n"
            "CO, vibration and noise sensors; in a clean run no default alert limit is reached.\n"
            "\n"
            "options:\n"
            "  --devices N            devices in the fleet (default 10, at most %u)\n"
            "  --rate R               readings per second per device, fractions allowed\n"
            "                         (default 1, at most %.0f)\n"
            "  --duration S           seconds to run (default 60); 0 runs until SIGINT/SIGTERM\n"
            "  --seed K               seed of the fleet: same seed, same devices and values\n"
            "                         (default 1)\n"
            "  --url URL              canaryd's base URL (default http://127.0.0.1:8080)\n"
            "  --prefix P             device ids are P-0001, P-0002, ... (default sim)\n"
            "  --scenario NAME        none (default), gas-leak, fire or sensor-fault\n"
            "  --scenario-at S        seconds after the start when it begins (default a third\n"
            "                         of the duration, or 60 when the duration is 0)\n"
            "  --scenario-length S    seconds it lasts (default 120)\n"
            "  --scenario-devices K   devices it affects, chosen from the seed among those with\n"
            "                         the sensors it needs (default 1)\n"
            "  --truth FILE.csv       write the ground truth: device,metric,start_ms,end_ms,kind\n"
            "                         (one row per affected device and metric; Unix ms of the\n"
            "                         first and last affected reading)\n"
            "  --batch B              send up to B due readings per request as a JSON array,\n"
            "                         as a gateway does (default 1: each device its own client;\n"
            "                         at most %u)\n"
            "  --batch-wait MS        with --batch: send a partial batch once its oldest\n"
            "                         reading has waited MS milliseconds (default 100)\n"
            "  --connections C        kept-alive connections, which is also the most requests\n"
            "                         in flight (default min(devices, 64), at most %u)\n"
            "  --drain S              after the run (or the first SIGINT), seconds to keep\n"
            "                         delivering what is queued or retrying (default 10);\n"
            "                         a second SIGINT stops at once\n"
            "  --register             after a device's first accepted reading, PATCH\n"
            "                         <url>/api/v1/devices/<id> with its name, location, kind\n"
            "  --quiet                print only the summary line\n"
            "  --help                 show this help\n"
            "\n"
            "Each device's seq starts at the Unix milliseconds of the simulator's start and\n"
            "rises by one per reading, so a restarted simulator never reuses a seq canaryd has\n"
            "stored. 503/429 answers are retried after Retry-After, connection errors with\n"
            "backoff, both with the same seq; readings are never dropped while the run lasts.\n"
            "\n"
            "The summary line (stdout) counts readings: sent, accepted, duplicates (409),\n"
            "rejected (400, 413 and other refusals), failed (never answered by the end), the\n"
            "achieved readings/s and the p50/p99 request latency. Exit status: 0 when nothing\n"
            "failed or was rejected, 1 otherwise, 2 for bad usage.\n",
            SIM_MAX_DEVICES, MAX_RATE_HZ, MAX_BATCH, MAX_CONNECTIONS);
}

static int bad_usage(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static int bad_usage(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    fprintf(stderr, "canary simulate: ");
    vfprintf(stderr, fmt, ap);
    fprintf(stderr, "\n(see canary simulate --help)\n");
    va_end(ap);
    return 2;
}

static int parse_double(const char *opt, const char *s, double lo, double hi, bool lo_open,
                        double *out)
{
    char *end;
    errno = 0;
    double v = strtod(s, &end);
    if (*s == '\0' || *end != '\0' || errno != 0 || !isfinite(v) || v < lo || v > hi ||
        (lo_open && v == lo))
        return bad_usage("%s must be a number %s %.15g %s %.15g, got '%s'", opt,
                         lo_open ? "above" : "from", lo, lo_open ? "and at most" : "to", hi, s);
    *out = v;
    return 0;
}

static int parse_unsigned(const char *opt, const char *s, unsigned lo, unsigned hi, unsigned *out)
{
    char *end;
    errno = 0;
    unsigned long long v = strtoull(s, &end, 10);
    if (*s < '0' || *s > '9' || *end != '\0' || errno != 0 || v < lo || v > hi)
        return bad_usage("%s must be a whole number from %u to %u, got '%s'", opt, lo, hi, s);
    *out = (unsigned)v;
    return 0;
}

static int parse_u64(const char *opt, const char *s, uint64_t *out)
{
    char *end;
    errno = 0;
    unsigned long long v = strtoull(s, &end, 10);
    if (*s < '0' || *s > '9' || *end != '\0' || errno != 0)
        return bad_usage("%s must be a whole number from 0 to 2^64-1, got '%s'", opt, s);
    *out = v;
    return 0;
}

static int check_url(const char *url)
{
    size_t n = strlen(url);
    const char *host = strncmp(url, "http://", 7) == 0    ? url + 7
                       : strncmp(url, "https://", 8) == 0 ? url + 8
                                                          : NULL;
    if (host == NULL || *host == '\0' || *host == '/')
        return bad_usage("--url must be an http:// or https:// URL with a host, got '%s'", url);
    if (n > MAX_URL_LEN)
        return bad_usage("--url is longer than %d bytes", MAX_URL_LEN);
    for (const char *p = url; *p != '\0'; p++) {
        if ((unsigned char)*p <= ' ' || *p == '?' || *p == '#')
            return bad_usage("--url must be a base URL without spaces, query or fragment, "
                             "got '%s'",
                             url);
    }
    return 0;
}

static int set_string(const char **field, const char *val)
{
    *field = val;
    return 0;
}

/* Applies one option that takes a value. Returns 0 or 2. */
static int apply_option(struct options *o, const char *name, const char *val)
{
    const double max_s = 10 * 365 * 86400.0;
    if (!strncmp(name, "--scenario-", 11))
        o->scenario_opts = true;
    if (!strcmp(name, "--devices"))
        return parse_unsigned(name, val, 1, SIM_MAX_DEVICES, &o->devices);
    if (!strcmp(name, "--rate"))
        return parse_double(name, val, 0, MAX_RATE_HZ, true, &o->rate_hz);
    if (!strcmp(name, "--duration"))
        return parse_double(name, val, 0, max_s, false, &o->duration_s);
    if (!strcmp(name, "--seed"))
        return parse_u64(name, val, &o->seed);
    if (!strcmp(name, "--url"))
        return check_url(val) != 0 ? 2 : set_string(&o->url, val);
    if (!strcmp(name, "--prefix")) {
        size_t n = strlen(val);
        if (n == 0 || n > SIM_PREFIX_MAX || !device_id_valid(val, n, SIM_PREFIX_MAX))
            return bad_usage("--prefix must be 1 to %d letters, digits or . _ : -, starting "
                             "with a letter or digit, got '%s'",
                             SIM_PREFIX_MAX, val);
        return set_string(&o->prefix, val);
    }
    if (!strcmp(name, "--truth")) {
        if (*val == '\0' || strlen(val) > 4000)
            return bad_usage("--truth needs a file name of 1 to 4000 bytes");
        return set_string(&o->truth_path, val);
    }
    if (!strcmp(name, "--scenario")) {
        if (sim_scenario_parse(val, &o->scenario) != 0)
            return bad_usage("--scenario must be none, gas-leak, fire or sensor-fault, got "
                             "'%s'",
                             val);
        return 0;
    }
    if (!strcmp(name, "--scenario-at"))
        return parse_double(name, val, 0, max_s, false, &o->scenario_at_s);
    if (!strcmp(name, "--scenario-length"))
        return parse_double(name, val, 0, max_s, true, &o->scenario_length_s);
    if (!strcmp(name, "--scenario-devices"))
        return parse_unsigned(name, val, 1, SIM_MAX_DEVICES, &o->scenario_devices);
    if (!strcmp(name, "--batch"))
        return parse_unsigned(name, val, 1, MAX_BATCH, &o->batch);
    if (!strcmp(name, "--batch-wait")) {
        o->batch_wait_given = true;
        return parse_unsigned(name, val, 0, 60000, &o->batch_wait_ms);
    }
    if (!strcmp(name, "--connections"))
        return parse_unsigned(name, val, 1, MAX_CONNECTIONS, &o->connections);
    if (!strcmp(name, "--drain"))
        return parse_double(name, val, 0, 3600, false, &o->drain_s);
    return bad_usage("unknown option '%s'", name);
}

static bool takes_value(const char *name)
{
    static const char *const names[] = {
        "--devices",          "--rate",  "--duration",   "--seed",        "--url",
        "--prefix",           "--truth", "--scenario",   "--scenario-at", "--scenario-length",
        "--scenario-devices", "--batch", "--batch-wait", "--connections", "--drain"};
    for (size_t i = 0; i < sizeof names / sizeof names[0]; i++) {
        if (!strcmp(name, names[i]))
            return true;
    }
    return false;
}

/* Cross-option checks and defaults, after every option is read. */
static int finish_options(struct options *o)
{
    if (o->scenario == SIM_SCENARIO_NONE && o->scenario_opts)
        return bad_usage("--scenario-at, --scenario-length and --scenario-devices need "
                         "--scenario gas-leak, fire or sensor-fault");
    if (o->batch_wait_given && o->batch < 2)
        return bad_usage("--batch-wait needs --batch 2 or more");
    if (o->scenario_at_s < 0)
        o->scenario_at_s = o->duration_s > 0 ? o->duration_s / 3 : 60;
    if (o->scenario != SIM_SCENARIO_NONE && o->duration_s > 0 && o->scenario_at_s >= o->duration_s)
        return bad_usage("--scenario-at %g is not before the end of the run (--duration %g)",
                         o->scenario_at_s, o->duration_s);
    if (o->scenario_devices > o->devices)
        return bad_usage("--scenario-devices %u is more than --devices %u", o->scenario_devices,
                         o->devices);
    if (o->connections == 0)
        o->connections = o->devices < 64 ? o->devices : 64;
    return 0;
}

/* Returns 0 to run, 1 when --help was printed, 2 for bad usage. Accepts "--opt value" and
 * "--opt=value". */
static int parse_options(int argc, char **argv, struct options *o)
{
    *o = (struct options){.devices = 10,
                          .rate_hz = 1,
                          .duration_s = 60,
                          .seed = 1,
                          .url = "http://127.0.0.1:8080",
                          .scenario_at_s = -1,
                          .scenario_length_s = 120,
                          .scenario_devices = 1,
                          .prefix = "sim",
                          .batch = 1,
                          .batch_wait_ms = 100,
                          .drain_s = 10};
    for (int i = 1; i < argc; i++) {
        const char *arg = argv[i], *eq = strchr(arg, '=');
        size_t nlen = eq != NULL ? (size_t)(eq - arg) : strlen(arg);
        char name[32];
        snprintf(name, sizeof name, "%.*s", (int)(nlen < 31 ? nlen : 31), arg);
        if (!strcmp(name, "--help") || !strcmp(name, "-h")) {
            usage(stdout);
            return 1;
        }
        if (!strcmp(name, "--register") || !strcmp(name, "--quiet")) {
            if (eq != NULL)
                return bad_usage("%s takes no value", name);
            if (!strcmp(name, "--register"))
                o->register_devices = true;
            else
                o->quiet = true;
            continue;
        }
        if (arg[0] != '-')
            return bad_usage("unexpected argument '%s'", arg);
        if (!takes_value(name) || nlen >= sizeof name)
            return bad_usage("unknown option '%.*s'", (int)nlen, arg);
        const char *val = eq != NULL ? eq + 1 : i + 1 < argc ? argv[++i] : NULL;
        if (val == NULL)
            return bad_usage("%s needs a value", name);
        int rc = apply_option(o, name, val);
        if (rc != 0)
            return rc;
    }
    return finish_options(o);
}

/* ---- small containers ---------------------------------------------------------------- */

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

/* A FIFO of device indexes; each device is in it at most once, so n_devices suffices. */
struct ring {
    unsigned *items;
    unsigned cap, head, count;
};

static void ring_push(struct ring *r, unsigned v)
{
    r->items[(r->head + r->count++) % r->cap] = v;
}

static unsigned ring_pop(struct ring *r)
{
    unsigned v = r->items[r->head];
    r->head = (r->head + 1) % r->cap;
    r->count--;
    return v;
}

/* A binary min-heap of (due offset, device). */
struct heap_item {
    int64_t key;
    unsigned dev;
};

struct heap {
    struct heap_item *items;
    unsigned count;
};

static void heap_push(struct heap *h, int64_t key, unsigned dev)
{
    unsigned i = h->count++;
    while (i > 0 && h->items[(i - 1) / 2].key > key) {
        h->items[i] = h->items[(i - 1) / 2];
        i = (i - 1) / 2;
    }
    h->items[i] = (struct heap_item){key, dev};
}

static struct heap_item heap_pop(struct heap *h)
{
    struct heap_item top = h->items[0], last = h->items[--h->count];
    unsigned i = 0;
    for (;;) {
        unsigned c = 2 * i + 1;
        if (c >= h->count)
            break;
        if (c + 1 < h->count && h->items[c + 1].key < h->items[c].key)
            c++;
        if (h->items[c].key >= last.key)
            break;
        h->items[i] = h->items[c];
        i = c;
    }
    if (h->count > 0)
        h->items[i] = last;
    return top;
}

/* Request latencies in a log-linear histogram (1/16 relative resolution) of microseconds. */
#define LAT_BUCKETS (32 + 60 * 16)

struct latency {
    uint64_t n;
    uint64_t buckets[LAT_BUCKETS];
};

static unsigned lat_bucket(uint64_t us)
{
    if (us < 32)
        return (unsigned)us;
    unsigned msb = 63u - (unsigned)__builtin_clzll(us);
    unsigned shift = msb - 4;
    return 32 + (msb - 5) * 16 + (unsigned)((us >> shift) - 16);
}

static double lat_bucket_mid_ms(unsigned b)
{
    if (b < 32)
        return (b + 0.5) / 1000.0;
    unsigned msb = (b - 32) / 16 + 5, mant = (b - 32) % 16 + 16;
    return ((double)mant + 0.5) * (double)(1ull << (msb - 4)) / 1000.0;
}

static void lat_add(struct latency *l, int64_t ns)
{
    uint64_t us = ns > 0 ? (uint64_t)ns / 1000 : 0;
    unsigned b = lat_bucket(us);
    l->buckets[b < LAT_BUCKETS ? b : LAT_BUCKETS - 1]++;
    l->n++;
}

static double lat_quantile_ms(const struct latency *l, double q)
{
    if (l->n == 0)
        return 0;
    uint64_t want = (uint64_t)ceil(q * (double)l->n), seen = 0;
    for (unsigned b = 0; b < LAT_BUCKETS; b++) {
        seen += l->buckets[b];
        if (seen >= want && seen > 0)
            return lat_bucket_mid_ms(b);
    }
    return lat_bucket_mid_ms(LAT_BUCKETS - 1);
}

/* ---- the sender's state -------------------------------------------------------------- */

enum dev_state { DEV_WAITING, DEV_READY, DEV_BUSY, DEV_DONE };
enum reg_state { REG_NONE, REG_QUEUED, REG_DONE };

struct device_state {
    uint64_t next_k;  /* readings produced so far; the next one is reading next_k */
    int64_t phase_ms; /* due offset of reading 0 */
    int64_t ready_ms; /* when it joined the ready FIFO */
    uint8_t state;    /* enum dev_state */
    uint8_t reg;      /* enum reg_state */
};

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
    unsigned reg_dev;           /* REQ_REGISTER: the device */
    char url[MAX_URL_LEN + 96]; /* REQ_REGISTER: <url>/api/v1/devices/<id> */
    int64_t started_ns;         /* this attempt's start, monotonic */
    int64_t retry_at_ms;        /* SLOT_BACKOFF: when to send again (offset) */
    unsigned attempts;          /* failed attempts of this request so far */
};

struct stats {
    uint64_t sent; /* readings produced and transmitted at least once */
    uint64_t accepted, duplicates, rejected;
    uint64_t requests;     /* HTTP attempts */
    uint64_t retries;      /* attempts repeated after 503/429/5xx/transport errors */
    uint64_t backpressure; /* 503/429 answers */
    uint64_t transport_errors, server_errors;
    uint64_t printed_errors; /* error bodies shown so far */
    uint64_t late_1s;        /* readings sent more than a second after they were due */
    int64_t late_max_ms;
    uint64_t registered, register_404, register_failed;
    struct latency latency;
};

struct sim {
    struct options opt;
    struct sim_fleet fleet;
    struct device_state *dev;
    struct heap due;       /* devices waiting for their next reading's time */
    struct ring ready;     /* devices with a due reading, waiting for a slot */
    struct ring reg_queue; /* devices to register */
    struct slot *slots;
    unsigned n_slots, n_active, n_backoff;
    unsigned *free_slots; /* stack of indexes of SLOT_FREE slots */
    unsigned n_free;
    CURLM *multi;
    struct curl_slist *headers;
    char base_url[MAX_URL_LEN + 1];
    char ingest_url[MAX_URL_LEN + 32];
    int64_t start_wall_ms, start_mono_ns;
    int64_t end_ms; /* offset: readings due before it exist */
    bool stopping;
    int64_t drain_deadline_ms;
    struct sim_truth_row *truth_rows;
    size_t truth_cap;
    uint64_t truth_signature; /* of the last truth file written */
    uint64_t rng;             /* backoff jitter */
    struct stats st;
};

static int64_t now_offset_ms(const struct sim *s)
{
    return (clock_mono_ns() - s->start_mono_ns) / 1000000;
}

/* Due offset of device ds's reading k, in ms after the start. */
static int64_t due_offset(const struct sim *s, const struct device_state *ds, uint64_t k)
{
    return ds->phase_ms + (int64_t)floor((double)k * 1000.0 / s->opt.rate_hz);
}

/* Readings of a device that fall due before end (ms offset). */
static uint64_t readings_before(const struct sim *s, const struct device_state *ds, int64_t end)
{
    if (end <= ds->phase_ms)
        return 0;
    uint64_t k = (uint64_t)((double)(end - ds->phase_ms) * s->opt.rate_hz / 1000.0);
    while (k > 0 && due_offset(s, ds, k - 1) >= end)
        k--;
    while (due_offset(s, ds, k) < end)
        k++;
    return k;
}

static bool has_due(const struct sim *s, const struct device_state *ds, int64_t now)
{
    int64_t due = due_offset(s, ds, ds->next_k);
    return due <= now && due < s->end_ms;
}

/* Puts a device that is not in a slot where it belongs: the ready FIFO, the heap, or done. */
static void schedule_device(struct sim *s, unsigned d, int64_t now)
{
    struct device_state *ds = &s->dev[d];
    int64_t due = due_offset(s, ds, ds->next_k);
    if (due >= s->end_ms) {
        ds->state = DEV_DONE;
    } else if (due <= now) {
        ds->state = DEV_READY;
        ds->ready_ms = now;
        ring_push(&s->ready, d);
    } else {
        ds->state = DEV_WAITING;
        heap_push(&s->due, due, d);
    }
}

/* Moves devices whose next reading has come due from the heap to the ready FIFO. */
static void promote_due(struct sim *s, int64_t now)
{
    while (s->due.count > 0 && s->due.items[0].key <= now) {
        struct heap_item it = heap_pop(&s->due);
        s->dev[it.dev].state = DEV_WAITING;
        schedule_device(s, it.dev, now);
    }
}

static double jitter(struct sim *s)
{
    s->rng ^= s->rng << 13;
    s->rng ^= s->rng >> 7;
    s->rng ^= s->rng << 17;
    return 0.8 + 0.4 * (double)(s->rng >> 11) * 0x1.0p-53;
}

/* ---- building requests --------------------------------------------------------------- */

/* Appends device d's due readings (at least one, at most room) to the slot's body. */
static bool add_readings(struct sim *s, struct slot *sl, unsigned d, unsigned room, int64_t now)
{
    struct device_state *ds = &s->dev[d];
    char json[SIM_READING_JSON_MAX];
    unsigned added = 0;
    do {
        int64_t due = due_offset(s, ds, ds->next_k);
        struct sim_reading r;
        sim_fleet_reading(&s->fleet, d, s->start_wall_ms + due, &r);
        int n = sim_reading_json(&s->fleet, &r, (uint64_t)s->start_wall_ms + ds->next_k, json,
                                 sizeof json);
        if (n < 0 || !buf_reserve(&sl->body, (size_t)n + 2))
            return false;
        if (sl->n_readings > 0)
            buf_append(&sl->body, ",", 1);
        buf_append(&sl->body, json, (size_t)n);
        sl->reading_dev[sl->n_readings++] = d;
        ds->next_k++;
        s->st.sent++;
        int64_t late = now - due;
        if (late > s->st.late_max_ms)
            s->st.late_max_ms = late;
        s->st.late_1s += late > 1000;
    } while (++added < room && has_due(s, ds, now));
    ds->state = DEV_BUSY;
    return true;
}

static void slot_submit(struct sim *s, struct slot *sl)
{
    CURL *e = sl->easy;
    sl->resp.len = 0;
    curl_easy_setopt(e, CURLOPT_URL, sl->kind == REQ_REGISTER ? sl->url : s->ingest_url);
    curl_easy_setopt(e, CURLOPT_POSTFIELDS, sl->body.data);
    curl_easy_setopt(e, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)sl->body.len);
    curl_easy_setopt(e, CURLOPT_CUSTOMREQUEST, sl->kind == REQ_REGISTER ? "PATCH" : NULL);
    sl->started_ns = clock_mono_ns();
    sl->state = SLOT_ACTIVE;
    s->n_active++;
    s->st.requests++;
    curl_multi_add_handle(s->multi, e);
}

static struct slot *slot_take(struct sim *s)
{
    return &s->slots[s->free_slots[--s->n_free]];
}

static void slot_give_back(struct sim *s, struct slot *sl)
{
    sl->state = SLOT_FREE;
    s->free_slots[s->n_free++] = (unsigned)(sl - s->slots);
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
        unsigned d = ring_pop(&s->ready);
        if (!add_readings(s, sl, d, room - sl->n_readings, now))
            return false;
    }
    if (room > 1 && !buf_append(&sl->body, "]", 1))
        return false;
    slot_submit(s, sl);
    return true;
}

/* Appends str as a JSON string (our own names: printable ASCII, escaped all the same). */
static bool json_string(struct buf *b, const char *str)
{
    bool ok = buf_append(b, "\"", 1);
    for (const char *p = str; ok && *p != '\0'; p++) {
        char esc[8];
        if (*p == '"' || *p == '\\')
            snprintf(esc, sizeof esc, "\\%c", *p);
        else if ((unsigned char)*p < 0x20)
            snprintf(esc, sizeof esc, "\\u%04x", (unsigned)*p);
        else
            snprintf(esc, sizeof esc, "%c", *p);
        ok = buf_append(b, esc, strlen(esc));
    }
    return ok && buf_append(b, "\"", 1);
}

static bool start_register(struct sim *s, struct slot *sl)
{
    unsigned d = ring_pop(&s->reg_queue);
    const struct sim_device_info *info = sim_fleet_device(&s->fleet, d);
    sl->kind = REQ_REGISTER;
    sl->reg_dev = d;
    sl->n_readings = 0;
    sl->attempts = 0;
    sl->body.len = 0;
    snprintf(sl->url, sizeof sl->url, "%s/api/v1/devices/%s", s->base_url, info->id);
    bool ok = buf_append(&sl->body, "{\"name\":", 8) && json_string(&sl->body, info->name) &&
              buf_append(&sl->body, ",\"location\":", 12) &&
              json_string(&sl->body, info->location) && buf_append(&sl->body, ",\"kind\":", 8) &&
              json_string(&sl->body, info->kind) && buf_append(&sl->body, "}", 1);
    if (ok)
        slot_submit(s, sl);
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
    for (unsigned i = 0; s->n_backoff > 0 && i < s->n_slots; i++) {
        struct slot *sl = &s->slots[i];
        if (sl->state == SLOT_BACKOFF && sl->retry_at_ms <= now) {
            s->n_backoff--;
            s->st.retries++;
            slot_submit(s, sl);
        }
    }
    while (s->n_free > 0) {
        if (batch_ready(s, now)) {
            if (!start_ingest(s, slot_take(s), now))
                return false;
        } else if (s->reg_queue.count > 0) {
            if (!start_register(s, slot_take(s)))
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
    if (s->opt.quiet || s->st.printed_errors >= PRINTED_ERRORS)
        return;
    s->st.printed_errors++;
    int shown = sl->resp.len > 300 ? 300 : (int)sl->resp.len;
    fprintf(stderr, "canary simulate: %s (HTTP %ld, %u reading%s): %.*s%s\n", what, status,
            sl->n_readings, sl->n_readings == 1 ? "" : "s", shown,
            sl->resp.data != NULL ? sl->resp.data : "", sl->resp.len > 300 ? "..." : "");
    if (s->st.printed_errors == PRINTED_ERRORS)
        fprintf(stderr, "canary simulate: (further errors are only counted)\n");
}

static void device_accepted(struct sim *s, unsigned d)
{
    if (s->opt.register_devices && s->dev[d].reg == REG_NONE) {
        s->dev[d].reg = REG_QUEUED;
        ring_push(&s->reg_queue, d);
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
    s->st.accepted += acc;
    s->st.duplicates += dup;
    s->st.rejected += n - acc - dup;
    if (n - acc - dup > 0)
        print_error(s, sl, "readings rejected", status);
    cJSON_Delete(root);
}

/* Returns the devices of a finished ingest request to the schedule and frees the slot. */
static void release(struct sim *s, struct slot *sl, int64_t now)
{
    for (unsigned i = 0; i < sl->n_readings; i++) {
        unsigned d = sl->reading_dev[i];
        if (s->dev[d].state == DEV_BUSY)
            schedule_device(s, d, now);
    }
    sl->n_readings = 0;
    slot_give_back(s, sl);
}

static void backoff(struct sim *s, struct slot *sl, int64_t delay_ms, int64_t now)
{
    sl->attempts++;
    sl->retry_at_ms = now + delay_ms;
    sl->state = SLOT_BACKOFF;
    s->n_backoff++;
}

static int64_t exp_backoff_ms(struct sim *s, const struct slot *sl)
{
    unsigned shift = sl->attempts < 10 ? sl->attempts : 10;
    double ms = fmin(BACKOFF_MAX_MS, (double)BACKOFF_FIRST_MS * (double)(1u << shift));
    return (int64_t)(ms * jitter(s));
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
    if (status >= 200 && status < 300) {
        s->st.registered++;
    } else if (status == 404) {
        if (s->st.register_404++ == 0 && !s->opt.quiet)
            fprintf(stderr,
                    "canary simulate: PATCH %s answered 404; device registration is "
                    "not available on this server (readings go on)\n",
                    sl->url);
    } else {
        s->st.register_failed++;
        print_error(s, sl, "device registration refused", status);
    }
    s->dev[sl->reg_dev].reg = REG_DONE;
    slot_give_back(s, sl);
}

static void request_done(struct sim *s, struct slot *sl, CURLcode rc)
{
    int64_t now = now_offset_ms(s);
    long status = 0;
    curl_multi_remove_handle(s->multi, sl->easy);
    s->n_active--;
    if (rc == CURLE_OK) {
        curl_easy_getinfo(sl->easy, CURLINFO_RESPONSE_CODE, &status);
        lat_add(&s->st.latency, clock_mono_ns() - sl->started_ns);
    }
    if (rc != CURLE_OK) {
        if (s->st.transport_errors++ < 3 && !s->opt.quiet)
            fprintf(stderr, "canary simulate: %s: %s (retrying with backoff)\n",
                    sl->kind == REQ_REGISTER ? sl->url : s->ingest_url, curl_easy_strerror(rc));
        backoff(s, sl, exp_backoff_ms(s, sl), now);
    } else if (status == 503 || status == 429) {
        s->st.backpressure++;
        backoff(s, sl, retry_after_ms(sl), now);
    } else if (status >= 500) {
        s->st.server_errors++;
        print_error(s, sl, "server error, retrying", status);
        backoff(s, sl, exp_backoff_ms(s, sl), now);
    } else if (sl->kind == REQ_REGISTER) {
        register_done(s, sl, status);
    } else {
        if (status >= 200 && status < 300) {
            count_success(s, sl, status);
        } else if (status == 409) {
            s->st.duplicates += sl->n_readings;
        } else {
            s->st.rejected += sl->n_readings;
            print_error(s, sl, "readings rejected", status);
        }
        release(s, sl, now);
    }
}

static void collect_done(struct sim *s)
{
    CURLMsg *m;
    int left;
    while ((m = curl_multi_info_read(s->multi, &left)) != NULL) {
        if (m->msg != CURLMSG_DONE)
            continue;
        struct slot *sl = NULL;
        curl_easy_getinfo(m->easy_handle, CURLINFO_PRIVATE, (char **)&sl);
        request_done(s, sl, m->data.result);
    }
}

/* ---- ground truth -------------------------------------------------------------------- */

/* Rewrites the truth file atomically (temporary file, then rename). Returns 0 or -1 with
 * errno set. */
static int truth_write(struct sim *s)
{
    size_t n = sim_fleet_truth(&s->fleet, s->truth_rows, s->truth_cap);
    char tmp[4096];
    snprintf(tmp, sizeof tmp, "%s.tmp", s->opt.truth_path);
    FILE *f = fopen(tmp, "w");
    if (f == NULL)
        return -1;
    fprintf(f, "device,metric,start_ms,end_ms,kind\n");
    uint64_t sig = n;
    for (size_t i = 0; i < n && i < s->truth_cap; i++) {
        const struct sim_truth_row *r = &s->truth_rows[i];
        fprintf(f, "%s,%s,%" PRId64 ",%" PRId64 ",%s\n", r->device_id, r->metric, r->start_ms,
                r->end_ms, r->kind);
        sig = sig * 31 + (uint64_t)r->end_ms;
    }
    int err = ferror(f);
    if (fclose(f) != 0 || err != 0 || rename(tmp, s->opt.truth_path) != 0) {
        int saved = errno;
        remove(tmp);
        errno = saved;
        return -1;
    }
    s->truth_signature = sig;
    return 0;
}

/* Rewrites the truth file when it has changed since the last write. */
static void truth_refresh(struct sim *s)
{
    size_t n = sim_fleet_truth(&s->fleet, s->truth_rows, s->truth_cap);
    uint64_t sig = n;
    for (size_t i = 0; i < n && i < s->truth_cap; i++)
        sig = sig * 31 + (uint64_t)s->truth_rows[i].end_ms;
    if (sig != s->truth_signature && truth_write(s) != 0)
        fprintf(stderr, "canary simulate: cannot write %s: %s\n", s->opt.truth_path,
                strerror(errno));
}

/* ---- setup and teardown -------------------------------------------------------------- */

static int32_t local_utc_offset_s(int64_t wall_ms)
{
    time_t t = (time_t)(wall_ms / 1000);
    struct tm tm;
    if (localtime_r(&t, &tm) == NULL)
        return 0;
    return (int32_t)tm.tm_gmtoff;
}

static int setup_fleet(struct sim *s)
{
    const struct options *o = &s->opt;
    int64_t at_ms = s->start_wall_ms + (int64_t)llround(o->scenario_at_s * 1000);
    struct sim_fleet_config cfg = {
        .seed = o->seed,
        .n_devices = o->devices,
        .prefix = o->prefix,
        .utc_offset_s = local_utc_offset_s(s->start_wall_ms),
        .scenario = o->scenario,
        .scenario_devices = o->scenario == SIM_SCENARIO_NONE ? 0 : o->scenario_devices,
        .scenario_start_ms = at_ms,
        .scenario_end_ms = at_ms + (int64_t)llround(o->scenario_length_s * 1000),
    };
    char err[256];
    int rc = sim_fleet_init(&s->fleet, &cfg, err, sizeof err);
    if (rc == CANARY_EINVAL)
        return bad_usage("%s", err);
    if (rc != 0) {
        fprintf(stderr, "canary simulate: %s\n", err);
        return 1;
    }
    return 0;
}

static CURL *new_easy(struct sim *s, struct slot *sl)
{
    CURL *e = curl_easy_init();
    if (e == NULL)
        return NULL;
    curl_easy_setopt(e, CURLOPT_HTTPHEADER, s->headers);
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

static int setup_http(struct sim *s)
{
    snprintf(s->base_url, sizeof s->base_url, "%s", s->opt.url);
    size_t n = strlen(s->base_url);
    while (n > 0 && s->base_url[n - 1] == '/')
        s->base_url[--n] = '\0';
    snprintf(s->ingest_url, sizeof s->ingest_url, "%s/api/v1/ingest", s->base_url);
    s->multi = curl_multi_init();
    s->headers = curl_slist_append(NULL, "Content-Type: application/json");
    s->headers = curl_slist_append(s->headers, "Expect:"); /* no 100-continue round trip */
    s->n_slots = s->opt.connections;
    s->slots = calloc(s->n_slots, sizeof *s->slots);
    s->free_slots = malloc(s->n_slots * sizeof *s->free_slots);
    if (s->multi == NULL || s->headers == NULL || s->slots == NULL || s->free_slots == NULL)
        return -1;
    long c = (long)s->n_slots;
    curl_multi_setopt(s->multi, CURLMOPT_MAX_TOTAL_CONNECTIONS, c);
    curl_multi_setopt(s->multi, CURLMOPT_MAX_HOST_CONNECTIONS, c);
    curl_multi_setopt(s->multi, CURLMOPT_MAXCONNECTS, c);
    for (unsigned i = 0; i < s->n_slots; i++) {
        struct slot *sl = &s->slots[i];
        sl->easy = new_easy(s, sl);
        sl->reading_dev = malloc(s->opt.batch * sizeof *sl->reading_dev);
        sl->outcome = malloc(s->opt.batch);
        if (sl->easy == NULL || sl->reading_dev == NULL || sl->outcome == NULL)
            return -1;
        slot_give_back(s, sl);
    }
    return 0;
}

static int setup_schedule(struct sim *s)
{
    unsigned n = s->opt.devices;
    s->dev = calloc(n, sizeof *s->dev);
    s->due.items = malloc(n * sizeof *s->due.items);
    s->ready.items = malloc(n * sizeof *s->ready.items);
    s->reg_queue.items = malloc(n * sizeof *s->reg_queue.items);
    s->truth_cap = sim_fleet_truth_max(&s->fleet);
    s->truth_rows = malloc((s->truth_cap + 1) * sizeof *s->truth_rows);
    if (s->dev == NULL || s->due.items == NULL || s->ready.items == NULL ||
        s->reg_queue.items == NULL || s->truth_rows == NULL)
        return -1;
    s->ready.cap = s->reg_queue.cap = n;
    s->end_ms = s->opt.duration_s > 0 ? (int64_t)llround(s->opt.duration_s * 1000) : INT64_MAX;
    double period_ms = 1000.0 / s->opt.rate_hz;
    for (unsigned d = 0; d < n; d++) {
        /* Spread the devices evenly over one period so the load is smooth. */
        s->dev[d].phase_ms = (int64_t)floor(period_ms * d / n);
        schedule_device(s, d, -1);
    }
    return 0;
}

static void teardown(struct sim *s)
{
    for (unsigned i = 0; s->slots != NULL && i < s->n_slots; i++) {
        struct slot *sl = &s->slots[i];
        if (sl->state == SLOT_ACTIVE)
            curl_multi_remove_handle(s->multi, sl->easy);
        if (sl->easy != NULL)
            curl_easy_cleanup(sl->easy);
        free(sl->body.data);
        free(sl->resp.data);
        free(sl->reading_dev);
        free(sl->outcome);
    }
    free(s->slots);
    free(s->free_slots);
    if (s->multi != NULL)
        curl_multi_cleanup(s->multi);
    curl_slist_free_all(s->headers);
    free(s->dev);
    free(s->due.items);
    free(s->ready.items);
    free(s->reg_queue.items);
    free(s->truth_rows);
    sim_fleet_free(&s->fleet);
}

/* ---- reporting ----------------------------------------------------------------------- */

/* Prints "167 kitchen, 166 boiler-room, ..." in order of first appearance. */
static void print_kinds(const struct sim *s)
{
    const char *kinds[16];
    unsigned counts[16], n = 0;
    for (unsigned d = 0; d < s->opt.devices; d++) {
        const char *kind = sim_fleet_device(&s->fleet, d)->kind;
        unsigned k = 0;
        while (k < n && strcmp(kinds[k], kind) != 0)
            k++;
        if (k == n && n < 16) {
            kinds[n] = kind;
            counts[n++] = 0;
        }
        if (k < n)
            counts[k]++;
    }
    for (unsigned k = 0; k < n; k++)
        fprintf(stderr, "%s%u %s", k ? ", " : "", counts[k], kinds[k]);
}

static void print_plan(const struct sim *s)
{
    const struct options *o = &s->opt;
    fprintf(stderr, "canary simulate: %u devices (", o->devices);
    print_kinds(s);
    char length[48];
    if (o->duration_s > 0)
        snprintf(length, sizeof length, "for %g s", o->duration_s);
    else
        snprintf(length, sizeof length, "until interrupted");
    fprintf(stderr, ") at %g Hz %s -> %s, seed %" PRIu64 ", %u connections", o->rate_hz, length,
            s->ingest_url, o->seed, s->n_slots);
    if (o->batch > 1)
        fprintf(stderr, ", batches of up to %u", o->batch);
    fprintf(stderr, "\n");
    if (o->scenario == SIM_SCENARIO_NONE)
        return;
    fprintf(stderr, "canary simulate: scenario %s at +%g s for %g s on",
            sim_scenario_name(o->scenario), o->scenario_at_s, o->scenario_length_s);
    unsigned listed = 0;
    for (unsigned d = 0; d < o->devices; d++) {
        const struct sim_device_info *i = sim_fleet_device(&s->fleet, d);
        if (i->in_scenario && listed++ < 20)
            fprintf(stderr, " %s (%s)", i->id, i->name);
    }
    if (listed > 20)
        fprintf(stderr, " and %u more", listed - 20);
    fprintf(stderr, "\n");
    if (o->duration_s > 0 && o->scenario_at_s + o->scenario_length_s > o->duration_s)
        fprintf(stderr, "canary simulate: note: the run ends before the scenario does\n");
}

static void print_progress(const struct sim *s, int64_t now)
{
    const struct stats *st = &s->st;
    fprintf(stderr,
            "canary simulate: t=%" PRId64 "s sent=%" PRIu64 " accepted=%" PRIu64
            " duplicates=%" PRIu64 " rejected=%" PRIu64 " waiting_devices=%u in_flight=%u "
            "backoff=%u late_max=%" PRId64 "ms p99=%.2fms\n",
            now / 1000, st->sent, st->accepted, st->duplicates, st->rejected, s->ready.count,
            s->n_active, s->n_backoff, st->late_max_ms, lat_quantile_ms(&st->latency, 0.99));
}

static uint64_t scheduled_total(const struct sim *s)
{
    uint64_t n = 0;
    for (unsigned d = 0; d < s->opt.devices; d++)
        n += readings_before(s, &s->dev[d], s->end_ms);
    return n;
}

static int print_summary(const struct sim *s, double elapsed_s)
{
    const struct stats *st = &s->st;
    uint64_t due = scheduled_total(s);
    uint64_t answered = st->accepted + st->duplicates + st->rejected;
    uint64_t failed = due > answered ? due - answered : 0;
    printf("simulate: devices=%u sent=%" PRIu64 " accepted=%" PRIu64 " duplicates=%" PRIu64
           " rejected=%" PRIu64 " failed=%" PRIu64 " rate=%.1f/s p50=%.2fms p99=%.2fms",
           s->opt.devices, st->sent, st->accepted, st->duplicates, st->rejected, failed,
           elapsed_s > 0 ? (double)answered / elapsed_s : 0.0, lat_quantile_ms(&st->latency, 0.50),
           lat_quantile_ms(&st->latency, 0.99));
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
                st->server_errors, st->late_max_ms, st->late_1s);
    return failed == 0 && st->rejected == 0 ? 0 : 1;
}

/* ---- the loop ------------------------------------------------------------------------ */

static void begin_stop(struct sim *s, int64_t now, bool by_signal)
{
    s->stopping = true;
    if (now + 1 < s->end_ms)
        s->end_ms = now + 1; /* readings due up to now still go out; none after */
    s->drain_deadline_ms = now + (int64_t)llround(s->opt.drain_s * 1000);
    if (by_signal && !s->opt.quiet)
        fprintf(stderr,
                "canary simulate: stopping; delivering what is queued for up to %g s "
                "(interrupt again to stop now)\n",
                s->opt.drain_s);
}

static bool outstanding(const struct sim *s)
{
    return s->ready.count > 0 || s->n_active > 0 || s->n_backoff > 0 || s->reg_queue.count > 0 ||
           (s->due.count > 0 && s->due.items[0].key < s->end_ms);
}

/* How long the loop may sleep: until the next due reading, retry, batch deadline, or
 * POLL_MAX_MS; 0 when a free slot has work now. */
static int poll_timeout_ms(const struct sim *s, int64_t now)
{
    int64_t wake = now + POLL_MAX_MS;
    bool free_slot = s->n_free > 0;
    if (free_slot && (batch_ready(s, now) || s->reg_queue.count > 0))
        return 0;
    if (s->due.count > 0 && s->due.items[0].key < wake)
        wake = s->due.items[0].key;
    if (!s->stopping && s->end_ms < wake)
        wake = s->end_ms;
    if (free_slot && s->ready.count > 0) {
        unsigned oldest = s->ready.items[s->ready.head];
        int64_t t = s->dev[oldest].ready_ms + s->opt.batch_wait_ms;
        wake = t < wake ? t : wake;
    }
    for (unsigned i = 0; s->n_backoff > 0 && i < s->n_slots; i++) {
        if (s->slots[i].state == SLOT_BACKOFF && s->slots[i].retry_at_ms < wake)
            wake = s->slots[i].retry_at_ms;
    }
    return wake > now ? (int)(wake - now) : 0;
}

static int run(struct sim *s)
{
    int64_t next_progress = PROGRESS_MS, next_truth = TRUTH_REWRITE_MS;
    for (;;) {
        int64_t now = now_offset_ms(s);
        if (stop_signals > 0 && !s->stopping)
            begin_stop(s, now, true);
        if (!s->stopping && now >= s->end_ms)
            begin_stop(s, now, false);
        if (s->stopping && (!outstanding(s) || now >= s->drain_deadline_ms || stop_signals > 1))
            return 0;
        promote_due(s, now);
        if (!fill_slots(s, now)) {
            fprintf(stderr, "canary simulate: out of memory\n");
            return -1;
        }
        int running;
        curl_multi_perform(s->multi, &running);
        collect_done(s);
        now = now_offset_ms(s);
        if (!s->opt.quiet && now >= next_progress) {
            print_progress(s, now);
            next_progress += PROGRESS_MS;
        }
        if (s->opt.truth_path != NULL && now >= next_truth) {
            truth_refresh(s);
            next_truth = now + TRUTH_REWRITE_MS;
        }
        curl_multi_poll(s->multi, NULL, 0, poll_timeout_ms(s, now), NULL);
    }
}

static void install_signals(struct sigaction *old_int, struct sigaction *old_term,
                            struct sigaction *old_pipe)
{
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_stop_signal;
    sigemptyset(&sa.sa_mask);
    sigaction(SIGINT, &sa, old_int);
    sigaction(SIGTERM, &sa, old_term);
    sa.sa_handler = SIG_IGN;
    sigaction(SIGPIPE, &sa, old_pipe);
}

/* Builds the fleet, the HTTP machinery, the schedule and the truth file's header.
 * Returns 0, 1 (run-time failure) or 2 (bad usage). */
static int prepare(struct sim *s)
{
    s->start_wall_ms = clock_wall_ms();
    s->start_mono_ns = clock_mono_ns();
    s->rng = (s->opt.seed * 0x9e3779b97f4a7c15ull) | 1; /* xorshift state must not be 0 */
    int rc = setup_fleet(s);
    if (rc != 0)
        return rc;
    if (setup_http(s) != 0 || setup_schedule(s) != 0) {
        fprintf(stderr, "canary simulate: out of memory\n");
        return 1;
    }
    if (s->opt.truth_path != NULL && truth_write(s) != 0)
        return bad_usage("cannot write --truth %s: %s", s->opt.truth_path, strerror(errno));
    return 0;
}

/* Runs the fleet until the end or a signal, then writes the truth and the summary.
 * Returns the exit status. */
static int run_and_report(struct sim *s)
{
    if (!s->opt.quiet)
        print_plan(s);
    struct sigaction old_int, old_term, old_pipe;
    stop_signals = 0;
    install_signals(&old_int, &old_term, &old_pipe);
    int rc = run(s) != 0 ? 1 : 0;
    double elapsed_s = (double)(clock_mono_ns() - s->start_mono_ns) / 1e9;
    if (s->opt.truth_path != NULL && truth_write(s) != 0) {
        fprintf(stderr, "canary simulate: cannot write %s: %s\n", s->opt.truth_path,
                strerror(errno));
        rc = 1;
    }
    int summary_rc = print_summary(s, elapsed_s);
    sigaction(SIGINT, &old_int, NULL);
    sigaction(SIGTERM, &old_term, NULL);
    sigaction(SIGPIPE, &old_pipe, NULL);
    return rc != 0 ? rc : summary_rc;
}

int cmd_simulate(int argc, char **argv)
{
    struct sim *s = calloc(1, sizeof *s);
    if (s == NULL) {
        fprintf(stderr, "canary simulate: out of memory\n");
        return 1;
    }
    int rc = parse_options(argc, argv, &s->opt);
    if (rc != 0) {
        free(s);
        return rc == 1 ? 0 : rc;
    }
    if (curl_global_init(CURL_GLOBAL_DEFAULT) != 0) {
        fprintf(stderr, "canary simulate: libcurl failed to initialise\n");
        free(s);
        return 1;
    }
    rc = prepare(s);
    if (rc == 0)
        rc = run_and_report(s);
    teardown(s);
    curl_global_cleanup();
    free(s);
    return rc;
}
