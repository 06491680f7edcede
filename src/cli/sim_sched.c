/* sim_sched.c — the schedule of `canary simulate`: which device has a reading due and when,
 * the making of each reading, and the small containers and counters the transports share
 * (sim_run.h).
 *
 * seq: each device's seq starts at the wall-clock Unix milliseconds when the simulator
 * started and rises by one per reading. canaryd rejects a seq at or below the highest it
 * has stored for the device, so a restarted simulator must start above whatever the last
 * run sent. Reading k of a run is produced no earlier than k ms after that run started
 * (rates are capped at 1000 Hz and a commanded period is at least a second), so its seq,
 * start + k, is at most the wall clock at the moment it was sent, which is below the next
 * run's start, and no device state needs to be saved between runs. */
#include "cli/sim_run.h"

#include "core/clock.h"
#include "core/error.h"

#include <assert.h>
#include <math.h>
#include <stdlib.h>

#define BACKOFF_FIRST_MS 100
#define BACKOFF_MAX_MS   5000
#define NOT_IN_HEAP      UINT32_MAX

/* ---- containers ---------------------------------------------------------------------- */

void sim_ring_push(struct sim_ring *r, unsigned v)
{
    r->items[(r->head + r->count++) % r->cap] = v;
}

unsigned sim_ring_pop(struct sim_ring *r)
{
    unsigned v = r->items[r->head];
    r->head = (r->head + 1) % r->cap;
    r->count--;
    return v;
}

static void heap_set(struct sim_heap *h, unsigned i, struct sim_heap_item it)
{
    h->items[i] = it;
    h->pos[it.dev] = i;
}

static void heap_sift_up(struct sim_heap *h, unsigned i, struct sim_heap_item it)
{
    while (i > 0 && h->items[(i - 1) / 2].key > it.key) {
        heap_set(h, i, h->items[(i - 1) / 2]);
        i = (i - 1) / 2;
    }
    heap_set(h, i, it);
}

static void heap_sift_down(struct sim_heap *h, unsigned i, struct sim_heap_item it)
{
    for (;;) {
        unsigned c = 2 * i + 1;
        if (c >= h->count)
            break;
        if (c + 1 < h->count && h->items[c + 1].key < h->items[c].key)
            c++;
        if (h->items[c].key >= it.key)
            break;
        heap_set(h, i, h->items[c]);
        i = c;
    }
    heap_set(h, i, it);
}

static void heap_push(struct sim_heap *h, int64_t key, unsigned dev)
{
    heap_sift_up(h, h->count++, (struct sim_heap_item){key, dev});
}

/* Takes item i out and returns it. */
static struct sim_heap_item heap_take(struct sim_heap *h, unsigned i)
{
    struct sim_heap_item it = h->items[i], last = h->items[--h->count];
    h->pos[it.dev] = NOT_IN_HEAP;
    if (i < h->count) {
        if (i > 0 && h->items[(i - 1) / 2].key > last.key)
            heap_sift_up(h, i, last);
        else
            heap_sift_down(h, i, last);
    }
    return it;
}

/* ---- latency ------------------------------------------------------------------------- */

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

void sim_latency_add(struct sim_latency *l, int64_t ns)
{
    uint64_t us = ns > 0 ? (uint64_t)ns / 1000 : 0;
    unsigned b = lat_bucket(us);
    l->buckets[b < SIM_LAT_BUCKETS ? b : SIM_LAT_BUCKETS - 1]++;
    l->n++;
}

double sim_latency_ms(const struct sim_latency *l, double q)
{
    if (l->n == 0)
        return 0;
    uint64_t want = (uint64_t)ceil(q * (double)l->n), seen = 0;
    for (unsigned b = 0; b < SIM_LAT_BUCKETS; b++) {
        seen += l->buckets[b];
        if (seen >= want && seen > 0)
            return lat_bucket_mid_ms(b);
    }
    return lat_bucket_mid_ms(SIM_LAT_BUCKETS - 1);
}

/* ---- backoff ------------------------------------------------------------------------- */

static double jitter(struct sim *s)
{
    s->rng ^= s->rng << 13;
    s->rng ^= s->rng >> 7;
    s->rng ^= s->rng << 17;
    return 0.8 + 0.4 * (double)(s->rng >> 11) * 0x1.0p-53;
}

int64_t sim_backoff_ms(struct sim *s, unsigned attempts)
{
    unsigned shift = attempts < 10 ? attempts : 10;
    double ms = fmin(BACKOFF_MAX_MS, (double)BACKOFF_FIRST_MS * (double)(1u << shift));
    return (int64_t)(ms * jitter(s));
}

/* ---- the schedule -------------------------------------------------------------------- */

int64_t sim_now_ms(const struct sim *s)
{
    int64_t ns = clock_mono_ns() - s->start_mono_ns;
    if (s->opt.speed > 0 && s->opt.speed != 1)
        return (int64_t)((double)ns * s->opt.speed / 1e6);
    return ns / 1000000;
}

int64_t sim_sched_due(const struct sim *s, unsigned d, uint64_t k)
{
    const struct sim_sched_dev *ds = &s->dev[d];
    assert(k >= ds->base_k);
    if (ds->interval_s > 0)
        return ds->base_ms + (int64_t)(k - ds->base_k) * 1000 * ds->interval_s;
    return ds->base_ms + (int64_t)floor((double)(k - ds->base_k) * 1000.0 / s->opt.rate_hz);
}

/* Readings of device d that fall due before end (ms offset). Readings before base_k were all
 * produced, hence due before the end. */
static uint64_t readings_before(const struct sim *s, unsigned d, int64_t end)
{
    const struct sim_sched_dev *ds = &s->dev[d];
    if (end <= ds->base_ms)
        return ds->base_k;
    double rate_hz = ds->interval_s > 0 ? 1.0 / ds->interval_s : s->opt.rate_hz;
    uint64_t k = ds->base_k + (uint64_t)((double)(end - ds->base_ms) * rate_hz / 1000.0);
    while (k > ds->base_k && sim_sched_due(s, d, k - 1) >= end)
        k--;
    while (sim_sched_due(s, d, k) < end)
        k++;
    return k;
}

bool sim_sched_has_due(const struct sim *s, unsigned d, int64_t now)
{
    int64_t due = sim_sched_due(s, d, s->dev[d].next_k);
    return due <= now && due < s->end_ms;
}

void sim_sched_place(struct sim *s, unsigned d, int64_t now)
{
    struct sim_sched_dev *ds = &s->dev[d];
    int64_t due = sim_sched_due(s, d, ds->next_k);
    if (due >= s->end_ms) {
        ds->state = SIM_DEV_DONE;
    } else if (due <= now) {
        ds->state = SIM_DEV_READY;
        ds->ready_ms = now;
        sim_ring_push(&s->ready, d);
    } else {
        ds->state = SIM_DEV_WAITING;
        heap_push(&s->due, due, d);
    }
}

void sim_sched_promote(struct sim *s, int64_t now)
{
    while (s->due.count > 0 && s->due.items[0].key <= now) {
        struct sim_heap_item it = heap_take(&s->due, 0);
        sim_sched_place(s, it.dev, now);
    }
}

bool sim_sched_pending(const struct sim *s)
{
    return s->ready.count > 0 || (s->due.count > 0 && s->due.items[0].key < s->end_ms);
}

uint64_t sim_sched_total(const struct sim *s)
{
    uint64_t n = 0;
    for (unsigned d = 0; d < s->opt.devices; d++)
        n += readings_before(s, d, s->end_ms);
    return n;
}

void sim_sched_set_interval(struct sim *s, unsigned d, unsigned interval_s, int64_t now)
{
    struct sim_sched_dev *ds = &s->dev[d];
    int64_t next, period_ms = 1000 * (int64_t)interval_s;
    if (ds->next_k == 0) {
        next = sim_sched_due(s, d, 0); /* nothing sent yet: the first reading keeps its time */
    } else if (ds->next_k > ds->base_k) {
        next = sim_sched_due(s, d, ds->next_k - 1) + period_ms;
    } else {
        /* changed before and nothing sent since: base_ms is one old period after the last */
        assert(ds->interval_s > 0);
        next = ds->base_ms - 1000 * (int64_t)ds->interval_s + period_ms;
    }
    ds->base_k = ds->next_k;
    ds->base_ms = next;
    ds->interval_s = interval_s;
    if (ds->state == SIM_DEV_WAITING)
        heap_take(&s->due, s->due.pos[d]);
    if (ds->state == SIM_DEV_WAITING || ds->state == SIM_DEV_DONE)
        sim_sched_place(s, d, now);
}

int sim_sched_produce(struct sim *s, unsigned d, int64_t now, const struct sim_actuators *act,
                      char *json, size_t len)
{
    struct sim_sched_dev *ds = &s->dev[d];
    int64_t due = sim_sched_due(s, d, ds->next_k);
    struct sim_reading r;
    sim_fleet_reading(&s->fleet, d, s->clock_start_ms + due, &r);
    if (act != NULL)
        sim_reading_add_actuators(&r, act);
    uint64_t seq = (uint64_t)s->start_wall_ms + ds->next_k;
    if (s->hooks != NULL && s->hooks->reading != NULL)
        s->hooks->reading(s->hooks->ctx, &r, seq);
    int n = sim_reading_json(&s->fleet, &r, seq, json, len);
    if (n < 0)
        return n;
    ds->next_k++;
    s->st.sent++;
    int64_t late = now - due;
    if (late > s->st.late_max_ms)
        s->st.late_max_ms = late;
    s->st.late_1s += late > 1000;
    return n;
}

int sim_sched_init(struct sim *s)
{
    unsigned n = s->opt.devices;
    s->dev = calloc(n, sizeof *s->dev);
    s->due.items = malloc(n * sizeof *s->due.items);
    s->due.pos = malloc(n * sizeof *s->due.pos);
    s->ready.items = malloc(n * sizeof *s->ready.items);
    if (s->dev == NULL || s->due.items == NULL || s->due.pos == NULL || s->ready.items == NULL)
        return -1;
    s->ready.cap = n;
    s->end_ms = s->opt.duration_s > 0 ? (int64_t)llround(s->opt.duration_s * 1000) : INT64_MAX;
    double period_ms = 1000.0 / s->opt.rate_hz;
    for (unsigned d = 0; d < n; d++) {
        /* Spread the devices evenly over one period so the load is smooth. */
        s->dev[d].base_ms = (int64_t)floor(period_ms * d / n);
        s->due.pos[d] = NOT_IN_HEAP;
        sim_sched_place(s, d, -1);
    }
    return 0;
}

void sim_sched_free(struct sim *s)
{
    free(s->dev);
    free(s->due.items);
    free(s->due.pos);
    free(s->ready.items);
    s->dev = NULL;
    s->due.items = NULL;
    s->due.pos = NULL;
    s->ready.items = NULL;
}
