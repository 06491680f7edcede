/* bench_pipeline.c — the in-process pipeline on one thread: parse -> verify -> dedupe,
 * detect, decide (a shard, exactly the worker's code) -> store (group commits into SQLite
 * and compaction), with the time of every stage.
 *
 * A reading is one message from one device with three metric values (gas_ppm,
 * temperature_c, humidity_pct), as JSON text, parsed one message at a time (the worst case:
 * no batching in the wire format). Readings cycle over --devices devices, one per second of
 * device time each, with sensor-like noise. Commits hold store.commit_max_readings
 * readings (the daemon's default, 20,000); the log is compacted every 10 commits
 * (200,000 rows, what the daemon's 2 s interval compacts at ~100k readings/s).
 *
 * Prints one table; run by bench/run.sh (make bench). */
#include "core/arena.h"
#include "core/clock.h"
#include "core/config.h"
#include "detect/detect.h"
#include "ingest/ingest.h"
#include "pipeline/shard.h"
#include "store/store.h"
#include "verify/verify.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define COMPACT_ROWS 200000 /* compact whenever this many readings were committed */

static uint64_t alert_ids;
static uint64_t transitions;

static uint64_t next_id(void *arg)
{
    (void)arg;
    return ++alert_ids;
}

static void on_transition(void *arg, const struct alert *a, const struct alert_event *ev)
{
    (void)arg;
    (void)a;
    (void)ev;
    transitions++;
}

/* Deterministic noise (xorshift + Box-Muller). */
static uint64_t rng_state = 0x9e3779b97f4a7c15ULL;
static double uniform(void)
{
    rng_state ^= rng_state << 13;
    rng_state ^= rng_state >> 7;
    rng_state ^= rng_state << 17;
    return ((double)(rng_state >> 11) + 0.5) / 9007199254740992.0;
}
static double gauss(void)
{
    return sqrt(-2 * log(uniform())) * cos(2 * M_PI * uniform());
}

struct stage_ns {
    int64_t parse, shard, write, compact;
};

static void usage(void)
{
    fprintf(stderr, "usage: bench_pipeline --db PATH [--readings N] [--devices D] [--commit N] "
                    "[--label TEXT] [--sync full|normal]\n");
    exit(2);
}

int main(int argc, char **argv)
{
    const char *db = NULL, *label = "", *sync = "full";
    long n_readings = 1000000, n_devices = 1000, commit = 20000;
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--db") && i + 1 < argc)
            db = argv[++i];
        else if (!strcmp(argv[i], "--readings") && i + 1 < argc)
            n_readings = atol(argv[++i]);
        else if (!strcmp(argv[i], "--devices") && i + 1 < argc)
            n_devices = atol(argv[++i]);
        else if (!strcmp(argv[i], "--label") && i + 1 < argc)
            label = argv[++i];
        else if (!strcmp(argv[i], "--sync") && i + 1 < argc)
            sync = argv[++i];
        else if (!strcmp(argv[i], "--commit") && i + 1 < argc)
            commit = atol(argv[++i]);
        else
            usage();
    }
    if (db == NULL || commit < 1 || commit > 1000000 || n_readings < commit || n_devices < 1)
        usage();
    char wal[1100], shm[1100];
    snprintf(wal, sizeof wal, "%s-wal", db);
    snprintf(shm, sizeof shm, "%s-shm", db);
    unlink(db);
    unlink(wal);
    unlink(shm);

    struct canary_config cfg;
    config_init(&cfg);
    snprintf(cfg.store.synchronous, sizeof cfg.store.synchronous, "%s", sync);
    struct detect_params dp;
    detect_params_default(&dp);
    struct decide_params kp = {{cfg.alerts.open_after, (int64_t)cfg.alerts.resolve_after_s * 1000,
                                (int64_t)cfg.alerts.reopen_window_s * 1000},
                               SEVERITY_LOW,
                               true,
                               SEVERITY_MEDIUM,
                               true,
                               SEVERITY_HIGH};
    _Atomic uint64_t n_dev = 0;
    struct shard_params sp = {&cfg, &dp, &kp, &n_dev, NULL, NULL};
    struct shard shard;
    shard_init(&shard, &sp, next_id, NULL, on_transition, NULL);

    struct store *st;
    char err[512];
    struct store_options so = {.path = db,
                               .synchronous_full = strcmp(sync, "full") == 0,
                               .busy_timeout_ms = 5000,
                               .chunk_max_readings = cfg.store.chunk_max_readings,
                               .chunk_max_span_ms = (int64_t)cfg.store.chunk_max_span_s * 1000};
    if (store_open(&st, &so, err, sizeof err) != 0) {
        fprintf(stderr, "bench_pipeline: %s\n", err);
        return 1;
    }
    struct ingest_limits lim = {cfg.ingest.max_batch, cfg.ingest.max_metrics,
                                cfg.ingest.max_device_len, cfg.ingest.max_metric_len, true};
    struct verify_policy vp = {(int64_t)cfg.ingest.max_past_s * 1000,
                               (int64_t)cfg.ingest.max_future_s * 1000};

    /* The messages of one commit, generated up front (not timed). */
    char *text = malloc((size_t)commit * 192);
    size_t *off = malloc((commit + 1) * sizeof *off);
    struct ingest_batch *batches = calloc(commit, sizeof *batches);
    const struct reading **ptrs = malloc(commit * sizeof *ptrs);
    int64_t t0 = clock_wall_ms() - (n_readings / n_devices + 10) * 1000;
    struct stage_ns ns = {0, 0, 0, 0};
    uint32_t zero = 0;
    long done = 0;
    int commits = 0;
    int64_t wall0 = clock_mono_ns();
    while (done < n_readings) {
        size_t len = 0;
        for (int i = 0; i < commit; i++) {
            long k = done + i;
            long dev = k % n_devices, step = k / n_devices;
            double hour = fmod((double)step / 3600.0, 24.0);
            off[i] = len;
            len += (size_t)snprintf(
                text + len, 192,
                "{\"device\":\"bench-%04ld\",\"seq\":%ld,\"ts\":%lld,\"values\":{\"gas_ppm\":%.1f,"
                "\"temperature_c\":%.1f,\"humidity_pct\":%.1f}}",
                dev, step + 1, (long long)(t0 + step * 1000), 400 + dev % 200 + 8 * gauss(),
                21 + 2 * sin(hour / 24 * 2 * M_PI) + 0.2 * gauss(), 45 + 1.5 * gauss());
        }
        off[commit] = len;
        int64_t now = clock_wall_ms();

        int64_t a = clock_mono_ns();
        for (int i = 0; i < commit; i++) {
            struct ingest_fatal fatal;
            ingest_batch_init(&batches[i]);
            if (ingest_parse_json(text + off[i], off[i + 1] - off[i], &lim, now, &batches[i],
                                  &fatal) != 0) {
                fprintf(stderr, "bench_pipeline: parse failed: %s\n", fatal.reason);
                return 1;
            }
            verify_batch(&batches[i], &vp, now);
        }
        int64_t b = clock_mono_ns();
        struct shard_counts counts = {0};
        size_t n = 0;
        for (int i = 0; i < commit; i++) {
            shard_process(&shard, &batches[i], &zero, 1, &counts);
            if (batches[i].status[0] == READING_PENDING)
                ptrs[n++] = &batches[i].readings[0];
        }
        int64_t c = clock_mono_ns();
        struct store_batch sb = {.readings = ptrs, .n_readings = n};
        if (n != (size_t)commit || store_write(st, &sb, err, sizeof err) != 0) {
            fprintf(stderr, "bench_pipeline: %zu of %ld stored: %s\n", n, commit, err);
            return 1;
        }
        int64_t d = clock_mono_ns();
        if (++commits % (COMPACT_ROWS / commit + 1) == 0 || done + commit >= n_readings) {
            size_t moved;
            if (store_compact_all(st, &moved, err, sizeof err) != 0) {
                fprintf(stderr, "bench_pipeline: compaction: %s\n", err);
                return 1;
            }
        }
        int64_t e = clock_mono_ns();
        ns.parse += b - a;
        ns.shard += c - b;
        ns.write += d - c;
        ns.compact += e - d;
        for (int i = 0; i < commit; i++)
            ingest_batch_free(&batches[i]);
        done += commit;
    }
    int64_t wall = clock_mono_ns() - wall0;

    /* The detectors alone, on the same kind of values: the part of the shard stage that is
     * statistics rather than bookkeeping. */
    struct series_state s3[3];
    const char *names[3] = {"gas_ppm", "temperature_c", "humidity_pct"};
    for (int k = 0; k < 3; k++) {
        struct metric_limits l;
        config_metric_limits(&cfg, NULL, names[k], &l);
        series_init(&s3[k], metric_info_or_generic(names[k]), &l);
    }
    int64_t a = clock_mono_ns();
    for (long i = 0; i < 1000000; i++) {
        struct metric_value v[3] = {{names[0], 400 + 8 * gauss(), 0, 0},
                                    {names[1], 21 + 0.2 * gauss(), 0, 0},
                                    {names[2], 45 + 1.5 * gauss(), 0, 0}};
        for (int k = 0; k < 3; k++)
            detect_value(&s3[k], &dp, &v[k], t0 + i * 1000);
    }
    int64_t detect_ns = (clock_mono_ns() - a) / 1000000;
    /* That loop also drew 9 Gaussian numbers per reading; time them alone to subtract. */
    a = clock_mono_ns();
    double sink = 0;
    for (long i = 0; i < 1000000; i++)
        for (int k = 0; k < 3; k++)
            sink += gauss();
    int64_t rng_ns = (clock_mono_ns() - a) / 1000000;
    detect_ns -= rng_ns;

    struct store_stats stats;
    store_stats(st, &stats, err, sizeof err);
    double total = (double)(ns.parse + ns.shard + ns.write + ns.compact);
    double per = 1.0 / (double)n_readings;
    printf("\nIn-process pipeline, one thread: %ld readings x 3 metrics, %ld devices, store %s "
           "(synchronous=%s)%s%s\n",
           n_readings, n_devices, db, sync, label[0] ? ", " : "", label);
    printf("| stage | ns/reading | share |\n|---|---:|---:|\n");
    printf("| parse + verify (JSON, one message each) | %.0f | %.0f%% |\n", ns.parse * per,
           100 * ns.parse / total);
    printf("| dedupe + detect + decide (the worker's shard) | %.0f | %.0f%% |\n", ns.shard * per,
           100 * ns.shard / total);
    printf("| - of which the detectors (3 values) | %lld | |\n", (long long)detect_ns);
    printf("| store: group commits (%ld readings each) | %.0f | %.0f%% |\n", commit, ns.write * per,
           100 * ns.write / total);
    printf("| store: compaction into chunks | %.0f | %.0f%% |\n", ns.compact * per,
           100 * ns.compact / total);
    printf("| **total** | **%.0f** | |\n", total * per);
    printf("| **readings/s** | **%.0f** | |\n", (double)n_readings / (total / 1e9));
    printf("(wall time %.2f s incl. generating the JSON; %llu readings stored in %llu chunks, "
           "%.1f MB; %llu alert transitions; sink %g)\n",
           (double)wall / 1e9, (unsigned long long)stats.readings_total,
           (unsigned long long)stats.chunks, (double)stats.db_bytes / 1e6,
           (unsigned long long)transitions, sink > 0 ? 0.0 : 1.0);
    store_close(st);
    shard_free(&shard);
    config_free(&cfg);
    free(text);
    free(off);
    free(batches);
    free(ptrs);
    return stats.readings_total == (uint64_t)n_readings ? 0 : 1;
}
