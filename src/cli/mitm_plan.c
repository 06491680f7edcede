/* mitm_plan.c — the attack plan of `canary attack mitm-*` (mitm.h): --attack KIND[:RATE]
 * options, the draw of which attack hits a message, each device's recent messages for
 * replays and token swaps, and the ground-truth file (one JSON line per attacked message,
 * the proxy's counters at the end). History and truth are thread-safe (the HTTP proxy
 * serves each connection on its own thread). */
#include "cli/mitm.h"

#include "core/clock.h"
#include "core/error.h"

#include <cjson/cJSON.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>

int mitm_plan_add(struct mitm_plan *plan, const char *arg, char *err, size_t errlen)
{
    char name[32];
    const char *colon = strchr(arg, ':');
    size_t n = colon != NULL ? (size_t)(colon - arg) : strlen(arg);
    if (n == 0 || n >= sizeof name) {
        canary_errf(err, errlen, "--attack %s: expected KIND[:RATE]", arg);
        return -1;
    }
    memcpy(name, arg, n);
    name[n] = '\0';
    int kind = MITM_NONE;
    for (int k = 0; k < MITM_KIND_COUNT; k++)
        if (strcmp(name, mitm_kind_name(k)) == 0)
            kind = k;
    if (kind == MITM_NONE) {
        canary_errf(err, errlen,
                    "--attack %s: unknown kind '%s' (alter, drop, delay, reorder, replay, "
                    "forge, forge-unsigned, strip%s)",
                    arg, name, plan->http ? ", token-strip, token-swap" : "");
        return -1;
    }
    if (!plan->http && (kind == MITM_TOKEN_STRIP || kind == MITM_TOKEN_SWAP)) {
        canary_errf(err, errlen, "--attack %s: bearer tokens exist only over HTTP (mitm-http)",
                    arg);
        return -1;
    }
    double rate = 0.1;
    if (colon != NULL) {
        char *end;
        errno = 0;
        rate = strtod(colon + 1, &end);
        if (errno != 0 || end == colon + 1 || *end != '\0' || !(rate > 0 && rate <= 1)) {
            canary_errf(err, errlen, "--attack %s: RATE must be a share in (0, 1], got '%s'", arg,
                        colon + 1);
            return -1;
        }
    }
    double sum = plan->rate_sum - plan->rate[kind] + rate;
    if (sum > 1 + 1e-9) {
        canary_errf(err, errlen,
                    "--attack %s: the rates add up to %.3g; at most one attack hits a "
                    "message, so they must add up to 1 or less",
                    arg, sum);
        return -1;
    }
    plan->rate[kind] = rate;
    plan->rate_sum = sum;
    return 0;
}

int mitm_plan_choose(const struct mitm_plan *plan, struct rng *r)
{
    if (plan->rate_sum <= 0)
        return MITM_NONE;
    double u = rng_uniform(r), acc = 0;
    for (int k = 0; k < MITM_KIND_COUNT; k++) {
        acc += plan->rate[k];
        if (plan->rate[k] > 0 && u < acc)
            return k;
    }
    return MITM_NONE;
}

/* ---- history -------------------------------------------------------------------------- */

struct hist_msg {
    char *payload, *where, *aux;
    size_t len;
};

struct hist_dev {
    struct hist_dev *next;
    char device[MITM_MAX_DEVICE + 1];
    uint64_t seen;
    struct hist_msg ring[MITM_HISTORY_KEEP]; /* ring[seen % KEEP] is the next slot */
};

#define HIST_BUCKETS 4096

struct mitm_history {
    pthread_mutex_t lock;
    struct hist_dev *buckets[HIST_BUCKETS];
};

struct mitm_history *mitm_history_new(void)
{
    struct mitm_history *h = calloc(1, sizeof *h);
    if (h != NULL)
        pthread_mutex_init(&h->lock, NULL);
    return h;
}

static void msg_free(struct hist_msg *m)
{
    free(m->payload);
    free(m->where);
    free(m->aux);
    memset(m, 0, sizeof *m);
}

void mitm_history_free(struct mitm_history *h)
{
    if (h == NULL)
        return;
    for (size_t b = 0; b < HIST_BUCKETS; b++) {
        for (struct hist_dev *d = h->buckets[b], *next; d != NULL; d = next) {
            next = d->next;
            for (int i = 0; i < MITM_HISTORY_KEEP; i++)
                msg_free(&d->ring[i]);
            free(d);
        }
    }
    pthread_mutex_destroy(&h->lock);
    free(h);
}

static struct hist_dev *find(struct mitm_history *h, const char *device, bool create)
{
    uint64_t x = 1469598103934665603ull; /* FNV-1a */
    for (const char *p = device; *p; p++)
        x = (x ^ (uint8_t)*p) * 1099511628211ull;
    struct hist_dev **slot = &h->buckets[x % HIST_BUCKETS];
    for (struct hist_dev *d = *slot; d != NULL; d = d->next)
        if (strcmp(d->device, device) == 0)
            return d;
    if (!create)
        return NULL;
    struct hist_dev *d = calloc(1, sizeof *d);
    if (d == NULL)
        return NULL;
    snprintf(d->device, sizeof d->device, "%s", device);
    d->next = *slot;
    *slot = d;
    return d;
}

static char *dup_or_null(const char *s)
{
    return s != NULL ? strdup(s) : NULL;
}

uint64_t mitm_history_add(struct mitm_history *h, const char *device, const char *where,
                          const void *payload, size_t len, const char *aux)
{
    pthread_mutex_lock(&h->lock);
    uint64_t seen = 0;
    struct hist_dev *d = find(h, device, true);
    char *copy = malloc(len + 1);
    if (d != NULL && copy != NULL) {
        memcpy(copy, payload, len);
        copy[len] = '\0';
        struct hist_msg *m = &d->ring[d->seen % MITM_HISTORY_KEEP];
        msg_free(m);
        m->payload = copy;
        m->len = len;
        m->where = dup_or_null(where);
        m->aux = dup_or_null(aux);
        copy = NULL;
        seen = ++d->seen;
    }
    free(copy);
    pthread_mutex_unlock(&h->lock);
    return seen;
}

uint64_t mitm_history_count(struct mitm_history *h, const char *device)
{
    pthread_mutex_lock(&h->lock);
    struct hist_dev *d = find(h, device, false);
    uint64_t n = d != NULL ? d->seen : 0;
    pthread_mutex_unlock(&h->lock);
    return n;
}

long mitm_history_oldest(struct mitm_history *h, const char *device, char **payload, char **where,
                         char **aux)
{
    pthread_mutex_lock(&h->lock);
    long n = -1;
    struct hist_dev *d = find(h, device, false);
    if (d != NULL && d->seen >= 2) {
        /* The oldest kept: KEEP back when the ring is full, else the first. */
        uint64_t idx = d->seen > MITM_HISTORY_KEEP ? d->seen - MITM_HISTORY_KEEP : 0;
        struct hist_msg *m = &d->ring[idx % MITM_HISTORY_KEEP];
        *payload = malloc(m->len + 1);
        *where = dup_or_null(m->where);
        *aux = dup_or_null(m->aux);
        if (*payload != NULL) {
            memcpy(*payload, m->payload, m->len + 1);
            n = (long)m->len;
        }
    }
    pthread_mutex_unlock(&h->lock);
    return n;
}

bool mitm_history_other_aux(struct mitm_history *h, const char *device, const char *prefix,
                            char *out, size_t cap)
{
    pthread_mutex_lock(&h->lock);
    bool found = false;
    size_t plen = strlen(prefix);
    for (size_t b = 0; b < HIST_BUCKETS && !found; b++) {
        for (struct hist_dev *d = h->buckets[b]; d != NULL && !found; d = d->next) {
            if (strcmp(d->device, device) == 0 || d->seen == 0)
                continue;
            const struct hist_msg *m = &d->ring[(d->seen - 1) % MITM_HISTORY_KEEP];
            if (m->aux != NULL) {
                const char *a = strstr(m->aux, prefix);
                if (a != NULL && strlen(a) < cap) {
                    /* up to the end of the line */
                    size_t k = strcspn(a + plen, "\r\n");
                    snprintf(out, cap, "%.*s", (int)(plen + k), a);
                    found = true;
                }
            }
        }
    }
    pthread_mutex_unlock(&h->lock);
    return found;
}

/* ---- truth ---------------------------------------------------------------------------- */

int mitm_truth_open(struct mitm_truth *t, const char *path, const char *transport)
{
    memset(t, 0, sizeof *t);
    t->fp = fopen(path, "w");
    if (t->fp == NULL) {
        fprintf(stderr, "canary attack: --truth %s: %s\n", path, strerror(errno));
        return -1;
    }
    pthread_mutex_init(&t->lock, NULL);
    t->transport = transport;
    return 0;
}

static void write_line(struct mitm_truth *t, cJSON *o)
{
    char *line = cJSON_PrintUnformatted(o);
    if (line != NULL) {
        fputs(line, t->fp);
        fputc('\n', t->fp);
        fflush(t->fp); /* a reader (the benchmark) follows the file while the proxy runs */
        free(line);
    }
}

void mitm_truth_record(struct mitm_truth *t, const char *device, int kind,
                       const struct mitm_change *chg, const char *done, void *extra_cjson)
{
    cJSON *o = extra_cjson != NULL ? extra_cjson : cJSON_CreateObject();
    cJSON *line = cJSON_CreateObject();
    cJSON_AddNumberToObject(line, "t_ms", (double)clock_wall_ms());
    cJSON_AddStringToObject(line, "transport", t->transport);
    cJSON_AddStringToObject(line, "device", device);
    cJSON_AddStringToObject(line, "kind", mitm_kind_name(kind));
    if (chg != NULL && chg->has_seq)
        cJSON_AddNumberToObject(line, "seq", chg->seq);
    cJSON_AddStringToObject(line, "done", done);
    if (chg != NULL && chg->metric[0]) {
        cJSON_AddStringToObject(line, "metric", chg->metric);
        cJSON_AddNumberToObject(line, "from", chg->from);
        cJSON_AddNumberToObject(line, "to", chg->to);
    }
    /* extra members after the common ones */
    while (o->child != NULL) {
        cJSON *item = cJSON_DetachItemViaPointer(o, o->child);
        cJSON_AddItemToObject(line, item->string, item);
    }
    cJSON_Delete(o);
    pthread_mutex_lock(&t->lock);
    if (kind >= 0 && kind < MITM_KIND_COUNT)
        t->attacks[kind]++;
    if (t->fp != NULL)
        write_line(t, line);
    pthread_mutex_unlock(&t->lock);
    cJSON_Delete(line);
}

void mitm_truth_close(struct mitm_truth *t, void *counters_cjson)
{
    if (t->fp == NULL) {
        cJSON_Delete(counters_cjson);
        return;
    }
    cJSON *line = cJSON_CreateObject();
    cJSON_AddNumberToObject(line, "t_ms", (double)clock_wall_ms());
    cJSON_AddStringToObject(line, "transport", t->transport);
    cJSON_AddBoolToObject(line, "summary", true);
    cJSON *a = cJSON_AddObjectToObject(line, "attacks");
    pthread_mutex_lock(&t->lock);
    for (int k = 0; k < MITM_KIND_COUNT; k++)
        cJSON_AddNumberToObject(a, mitm_kind_name(k), (double)t->attacks[k]);
    if (counters_cjson != NULL)
        cJSON_AddItemToObject(line, "counters", counters_cjson);
    write_line(t, line);
    fclose(t->fp);
    t->fp = NULL;
    pthread_mutex_unlock(&t->lock);
    cJSON_Delete(line);
    pthread_mutex_destroy(&t->lock);
}

int mitm_split_hostport(const char *s, char *host, size_t cap, unsigned *port)
{
    const char *colon;
    size_t hlen;
    if (s[0] == '[') {
        const char *close = strchr(s, ']');
        if (close == NULL || close[1] != ':')
            return -1;
        hlen = (size_t)(close - s - 1);
        if (hlen == 0 || hlen >= cap)
            return -1;
        memcpy(host, s + 1, hlen);
        colon = close + 1;
    } else {
        colon = strrchr(s, ':');
        if (colon == NULL)
            return -1;
        hlen = (size_t)(colon - s);
        if (hlen == 0 || hlen >= cap)
            return -1;
        memcpy(host, s, hlen);
    }
    host[hlen] = '\0';
    char *end;
    errno = 0;
    unsigned long p = strtoul(colon + 1, &end, 10);
    if (errno != 0 || end == colon + 1 || *end != '\0' || p > 65535)
        return -1;
    *port = (unsigned)p;
    return 0;
}
