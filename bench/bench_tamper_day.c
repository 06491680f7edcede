/* bench_tamper_day.c — how many honest devices the tamper checks doubt over a day.
 *
 * The compromised-device benchmark (bench/security_device.sh) runs one simulated hour; an
 * operator runs canaryd for months. This replays the same clean fleet as `canary simulate`
 * makes it (sim_fleet: 336 devices by default, 14 sites of 24, a reading every 5 s of
 * simulated time, the day-night cycles of the site's local time) for HOURS simulated hours
 * through the tamper checks as canaryd wires them: tamper_reading() per device reading, and
 * per (location, metric) the neighbours check (tamper_room_observe, its finding added with
 * tamper.weight_neighbours), with the defaults of [tamper]. Nothing is attacked, so every
 * finding is a false one. It prints, per seed, each device that became suspect or
 * quarantined with the finding that did it, then one table: clean devices quarantined,
 * only suspect, and readings with a doubted value. No daemon, no network: ~30 s a seed for
 * 24 hours on one core.
 *
 * usage: bench_tamper_day [HOURS [SEED ...]]   (default 24 hours, seeds 1 and 2)
 *        environment: DEVICES (336), START_MS (1795240000000: 05:46 UTC, so a day holds a
 *        dusk and a dawn at every site) */
#include "cli/sim_fleet.h"
#include "core/config_tamper.h"
#include "core/reading.h"
#include "tamper/tamper.h"

#include <inttypes.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define MAX_SEEDS 16
#define SPEED     15 /* recv time runs this many times slower than ts, as in the benchmark */

struct room_entry {
    struct tamper_room room;
};

/* The room of (location, metric), created on first use (rooms has room for cap). */
static struct tamper_room *room_of(struct room_entry *rooms, unsigned *n, unsigned cap,
                                   const char *loc, const char *metric)
{
    for (unsigned i = 0; i < *n; i++) {
        if (strcmp(rooms[i].room.location, loc) == 0 && strcmp(rooms[i].room.metric, metric) == 0)
            return &rooms[i].room;
    }
    if (*n == cap)
        return NULL;
    struct tamper_room *r = &rooms[(*n)++].room;
    memset(r, 0, sizeof *r);
    snprintf(r->location, sizeof r->location, "%s", loc);
    snprintf(r->metric, sizeof r->metric, "%s", metric);
    return r;
}

struct day_result {
    unsigned devices, quarantined, suspect_only;
    long readings, doubted;
};

static int run_seed(uint64_t seed, double hours, unsigned n, int64_t start_ms,
                    struct day_result *res)
{
    struct config_tamper p;
    config_tamper_defaults(&p);
    struct sim_fleet f;
    struct sim_fleet_config cfg = {.seed = seed, .n_devices = n, .prefix = "sim"};
    char err[256];
    if (sim_fleet_init(&f, &cfg, err, sizeof err) != 0) {
        fprintf(stderr, "bench_tamper_day: %s\n", err);
        return -1;
    }
    unsigned room_cap = n * SIM_MAX_VALUES;
    struct tamper_device *devs = calloc(n, sizeof *devs);
    struct tamper_series *series = calloc((size_t)n * SIM_MAX_VALUES, sizeof *series);
    struct room_entry *rooms = calloc(room_cap, sizeof *rooms);
    bool *seen_suspect = calloc(n, sizeof *seen_suspect);
    bool *seen_quarantine = calloc(n, sizeof *seen_quarantine);
    bool *series_ready = calloc(n, sizeof *series_ready);
    if (!devs || !series || !rooms || !seen_suspect || !seen_quarantine || !series_ready) {
        fprintf(stderr, "bench_tamper_day: out of memory\n");
        free(devs), free(series), free(rooms), free(seen_suspect), free(seen_quarantine);
        free(series_ready);
        sim_fleet_free(&f);
        return -1;
    }
    unsigned n_rooms = 0;
    for (unsigned d = 0; d < n; d++)
        tamper_device_init(&devs[d]);
    memset(res, 0, sizeof *res);
    res->devices = n;
    long rounds = (long)(720 * hours);
    for (long k = 0; k < rounds; k++) {
        for (unsigned d = 0; d < n; d++) {
            /* devices spread over the 5 s between two rounds, as the simulator sends them */
            int64_t due = (int64_t)floor(5000.0 * d / n) + k * 5000;
            struct sim_reading r;
            sim_fleet_reading(&f, d, start_ms + due, &r);
            struct tamper_series *ser = &series[(size_t)d * SIM_MAX_VALUES];
            if (!series_ready[d]) {
                for (unsigned i = 0; i < r.n_values; i++)
                    tamper_series_init(&ser[i], r.values[i].metric);
                series_ready[d] = true;
            }
            struct metric_value mv[SIM_MAX_VALUES];
            struct tamper_series *sp[SIM_MAX_VALUES];
            for (unsigned i = 0; i < r.n_values; i++) {
                mv[i] = (struct metric_value){r.values[i].metric, r.values[i].value, 0, 0};
                sp[i] = &ser[i];
            }
            const struct sim_device_info *info = sim_fleet_device(&f, d);
            struct reading rd = {.device = info->id,
                                 .seq = 1000 + (uint64_t)k,
                                 .ts_ms = r.ts_ms,
                                 .recv_ms = start_ms + due / SPEED + (int64_t)((d * 7 + k) % 20),
                                 .values = mv,
                                 .n_values = r.n_values,
                                 .has_seq = true,
                                 .has_ts = true};
            struct tamper_outcome out;
            tamper_reading(&p, &devs[d], sp, &rd, &out);
            for (unsigned i = 0; i < r.n_values; i++) {
                if (!tamper_neighbours_compare(mv[i].name))
                    continue;
                struct tamper_room *room =
                    room_of(rooms, &n_rooms, room_cap, info->location, mv[i].name);
                char detail[TAMPER_DETAIL_LEN];
                if (room != NULL && tamper_room_observe(&p, room, info->id, mv[i].value, r.ts_ms,
                                                        detail, sizeof detail)) {
                    struct tamper_outcome o2;
                    tamper_add_evidence(&p, &devs[d], TAMPER_NEIGHBOURS, mv[i].name,
                                        p.weight_neighbours, detail, r.ts_ms, &o2);
                    mv[i].flags |= FLAG_TAMPER;
                }
            }
            res->readings++;
            for (unsigned i = 0; i < r.n_values; i++) {
                if (mv[i].flags & FLAG_TAMPER) {
                    res->doubted++;
                    break;
                }
            }
            const struct tamper_device *td = &devs[d];
            bool newly_q = td->state == TRUST_QUARANTINED && !seen_quarantine[d];
            bool newly_s = td->state == TRUST_SUSPECT && !seen_suspect[d];
            if (newly_q || newly_s) {
                const struct tamper_reason *why = &td->reasons[0];
                printf("seed %" PRIu64 " %s (%s, %s) %s after %.1f h: %s on %s: %s\n", seed,
                       info->id, info->location, info->hardware,
                       newly_q ? "QUARANTINED" : "suspect", (double)k / 720.0,
                       tamper_check_name(why->check), why->metric[0] ? why->metric : "device",
                       why->detail);
            }
            seen_quarantine[d] |= td->state == TRUST_QUARANTINED;
            seen_suspect[d] |= td->state == TRUST_SUSPECT;
        }
    }
    for (unsigned d = 0; d < n; d++) {
        res->quarantined += seen_quarantine[d];
        res->suspect_only += seen_suspect[d] && !seen_quarantine[d];
    }
    free(devs), free(series), free(rooms), free(seen_suspect), free(seen_quarantine);
    free(series_ready);
    sim_fleet_free(&f);
    return 0;
}

int main(int argc, char **argv)
{
    double hours = argc > 1 ? atof(argv[1]) : 24;
    if (!(hours > 0) || hours > 24 * 31) {
        fprintf(stderr, "usage: bench_tamper_day [HOURS (0-744)] [SEED ...]\n");
        return 2;
    }
    uint64_t seeds[MAX_SEEDS] = {1, 2};
    unsigned n_seeds = 2;
    if (argc > 2) {
        n_seeds = 0;
        for (int i = 2; i < argc && n_seeds < MAX_SEEDS; i++) {
            char *end;
            seeds[n_seeds++] = strtoull(argv[i], &end, 10);
            if (*end != '\0') {
                fprintf(stderr, "bench_tamper_day: seed '%s' is not a number\n", argv[i]);
                return 2;
            }
        }
    }
    const char *env_n = getenv("DEVICES"), *env_start = getenv("START_MS");
    unsigned n = env_n ? (unsigned)atoi(env_n) : 336;
    if (n == 0 || n > SIM_MAX_DEVICES) {
        fprintf(stderr, "bench_tamper_day: DEVICES must be 1..%d\n", SIM_MAX_DEVICES);
        return 2;
    }
    int64_t start_ms = env_start ? atoll(env_start) : 1795240000000LL;
    struct day_result res[MAX_SEEDS];
    for (unsigned s = 0; s < n_seeds; s++) {
        if (run_seed(seeds[s], hours, n, start_ms, &res[s]) != 0)
            return 1;
    }
    printf("\n| seed | hours | clean devices | quarantined | only suspect | readings | readings "
           "with a doubted value |\n|---|---|---|---|---|---|---|\n");
    for (unsigned s = 0; s < n_seeds; s++)
        printf("| %" PRIu64 " | %g | %u | %u (%.1f %%) | %u | %ld | %ld |\n", seeds[s], hours,
               res[s].devices, res[s].quarantined, 100.0 * res[s].quarantined / res[s].devices,
               res[s].suspect_only, res[s].readings, res[s].doubted);
    return 0;
}
