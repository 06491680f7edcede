/* neighbours.c — the cross-device tamper check on the writer thread (tamper.h, "neighbours";
 * declarations in pipeline_internal.h).
 *
 * The writer sees every reading of every device before it commits them, so it is where
 * devices at one location can be compared without a lock: workers own devices by hash, not
 * by room. Per (location, metric) a tamper_room keeps each member's level and usual step;
 * a value that moves far while every other member stays flat carries FLAG_TAMPER when it is
 * stored, and the evidence goes to the device's owner worker (MSG_EVIDENCE), which adds it
 * to the device's trust. Locations come from the store's devices table, looked up once per
 * device and again after NEIGHBOURS_REFRESH_MS (a PATCH of the location is seen then; a
 * device without one is asked again after NEIGHBOURS_RETRY_MS).
 * Devices without a location are not compared. Memory: one cache entry per device, one
 * room (about 5.5 KB) per (location, metric) with at least one member. */
#include "pipeline/pipeline_internal.h"

#include "core/error.h"
#include "core/log.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define NEIGHBOURS_REFRESH_MS 60000
#define NEIGHBOURS_RETRY_MS                                                                        \
    5000 /* a device without a location yet (registered after its                                  \
            first reading): asked again sooner */

struct location_entry {
    char location[STORE_TEXT_LEN];
    int64_t fetched_ms;
};

struct neighbours {
    struct strmap locations; /* device id -> struct location_entry * */
    struct strmap rooms;     /* "<location>\x1f<metric>" -> struct tamper_room * */
};

struct neighbours *neighbours_new(void)
{
    struct neighbours *n = calloc(1, sizeof *n);
    if (n != NULL) {
        strmap_init(&n->locations);
        strmap_init(&n->rooms);
    }
    return n;
}

static void free_value(void *arg, const char *key, void *value)
{
    (void)arg;
    (void)key;
    free(value);
}

void neighbours_free(struct neighbours *n)
{
    if (n == NULL)
        return;
    strmap_each(&n->locations, free_value, NULL);
    strmap_each(&n->rooms, free_value, NULL);
    strmap_free(&n->locations);
    strmap_free(&n->rooms);
    free(n);
}

/* The device's location ("" when it has none or the store cannot say). */
static const char *location_of(struct neighbours *n, struct store *s, const char *device,
                               int64_t now_ms)
{
    struct location_entry *e = strmap_get(&n->locations, device);
    if (e != NULL &&
        now_ms - e->fetched_ms < (e->location[0] ? NEIGHBOURS_REFRESH_MS : NEIGHBOURS_RETRY_MS))
        return e->location;
    if (e == NULL) {
        e = calloc(1, sizeof *e);
        if (e == NULL || strmap_put(&n->locations, device, e) != 0) {
            free(e);
            return "";
        }
    }
    struct store_device d;
    char err[256];
    int rc = store_device_get(s, device, &d, err, sizeof err);
    if (rc == 0)
        snprintf(e->location, sizeof e->location, "%s", d.location);
    else if (rc != CANARY_ENOTFOUND)
        log_warn("tamper.location_lookup_failed", "device=%s error=\"%s\"", device, err);
    e->fetched_ms = now_ms;
    return e->location;
}

static struct tamper_room *room_of(struct neighbours *n, const char *location, const char *metric)
{
    char key[STORE_TEXT_LEN + READING_METRIC_BUF + 2];
    snprintf(key, sizeof key, "%s\x1f%s", location, metric);
    struct tamper_room *room = strmap_get(&n->rooms, key);
    if (room != NULL)
        return room;
    room = calloc(1, sizeof *room);
    if (room == NULL || strmap_put(&n->rooms, key, room) != 0) {
        free(room);
        return NULL;
    }
    snprintf(room->location, sizeof room->location, "%s", location);
    snprintf(room->metric, sizeof room->metric, "%s", metric);
    return room;
}

size_t neighbours_observe(struct neighbours *n, const struct config_tamper *p, struct store *s,
                          struct reading *r, int64_t now_ms, struct shard_evidence *out, size_t cap)
{
    if (!p->enabled || n == NULL)
        return 0;
    const char *location = location_of(n, s, r->device, now_ms);
    if (location[0] == '\0')
        return 0;
    size_t found = 0;
    for (uint32_t k = 0; k < r->n_values; k++) {
        struct metric_value *v = &r->values[k];
        if (!tamper_neighbours_compare(v->name))
            continue;
        struct tamper_room *room = room_of(n, location, v->name);
        if (room == NULL)
            continue;
        char detail[TAMPER_DETAIL_LEN];
        if (!tamper_room_observe(p, room, r->device, v->value, r->ts_ms, detail, sizeof detail))
            continue;
        v->flags |= FLAG_TAMPER;
        if (found < cap) {
            struct shard_evidence *e = &out[found++];
            snprintf(e->device, sizeof e->device, "%s", r->device);
            snprintf(e->metric, sizeof e->metric, "%s", v->name);
            snprintf(e->detail, sizeof e->detail, "%s", detail);
            e->ts_ms = r->recv_ms;
        }
    }
    return found;
}
