/* bench_peers.c — canary's own parts against the obvious alternatives, in the same run.
 *
 * 1. Parsing the wire format: canary's parser (src/ingest/ingest_json.c) against cJSON
 *    (what canary used first, and uses for its API) parsing the same messages and walking
 *    the tree into the same fields — single messages and batches of 100.
 * 2. Storing readings: canary's store (store_write in group commits of 20,000, then the
 *    compaction of its log into chunks — both timed)
 *    against the obvious SQLite layout, one row per reading in a table indexed by
 *    (device, ts), with prepared inserts in transactions of the same size, same pragmas
 *    (WAL, synchronous=FULL).
 * Ratios are what to read: the machine is shared and noisy.
 * Usage: bench_peers DIR [--store-only] (DIR holds the databases; tmpfs or disk). */
#include "core/clock.h"
#include "ingest/ingest.h"
#include "store/store.h"

#include <cjson/cJSON.h>
#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define READINGS 1000000
#define DEVICES  1000
#define COMMIT   20000

static const char *const names[3] = {"gas_ppm", "temperature_c", "humidity_pct"};

static size_t message(char *buf, size_t cap, long k, int64_t t0)
{
    long dev = k % DEVICES, step = k / DEVICES;
    return (size_t)snprintf(buf, cap,
                            "{\"device\":\"bench-%04ld\",\"seq\":%ld,\"ts\":%lld,\"values\":{"
                            "\"gas_ppm\":%.1f,\"temperature_c\":%.1f,\"humidity_pct\":%.1f}}",
                            dev, step + 1, (long long)(t0 + step * 1000),
                            400 + (double)(k % 97) / 10, 21 + (double)(k % 13) / 10,
                            45 + (double)(k % 17) / 10);
}

/* cJSON doing the same work as canary's parser: parse, check the shape, copy the fields. */
static int cjson_parse(const char *body, size_t len, struct reading *out, struct metric_value *vals,
                       size_t max_out)
{
    cJSON *root = cJSON_ParseWithLength(body, len);
    if (root == NULL)
        return -1;
    size_t n = 0;
    const cJSON *items = cJSON_IsArray(root) ? root->child : root;
    for (const cJSON *r = items; r != NULL && n < max_out;
         r = cJSON_IsArray(root) ? r->next : NULL) {
        const cJSON *d = cJSON_GetObjectItemCaseSensitive(r, "device");
        const cJSON *s = cJSON_GetObjectItemCaseSensitive(r, "seq");
        const cJSON *t = cJSON_GetObjectItemCaseSensitive(r, "ts");
        const cJSON *v = cJSON_GetObjectItemCaseSensitive(r, "values");
        if (!cJSON_IsString(d) || !cJSON_IsNumber(s) || !cJSON_IsNumber(t) || !cJSON_IsObject(v))
            break;
        out[n].device = d->valuestring;
        out[n].seq = (uint64_t)s->valuedouble;
        out[n].ts_ms = (int64_t)t->valuedouble;
        uint32_t k = 0;
        for (const cJSON *m = v->child; m != NULL && k < 3; m = m->next, k++) {
            vals[n * 3 + k].name = m->string;
            vals[n * 3 + k].value = m->valuedouble;
        }
        out[n].n_values = k;
        n++;
    }
    cJSON_Delete(root);
    return (int)n;
}

static void bench_parse(void)
{
    struct ingest_limits lim = {10000, 32, 64, 64, true};
    int64_t t0 = clock_wall_ms();
    enum { N = 200000 };
    char *text = malloc((size_t)N * 192);
    size_t *off = malloc((N + 1) * sizeof *off);
    size_t len = 0;
    for (long k = 0; k < N; k++) {
        off[k] = len;
        len += message(text + len, 192, k, t0);
    }
    off[N] = len;
    /* Batches of 100: the same messages joined into arrays. */
    char *batches = malloc((size_t)N * 194);
    size_t *boff = malloc((N / 100 + 1) * sizeof *boff);
    size_t blen = 0;
    for (long b = 0; b < N / 100; b++) {
        boff[b] = blen;
        batches[blen++] = '[';
        for (long k = b * 100; k < b * 100 + 100; k++) {
            if (k > b * 100)
                batches[blen++] = ',';
            memcpy(batches + blen, text + off[k], off[k + 1] - off[k]);
            blen += off[k + 1] - off[k];
        }
        batches[blen++] = ']';
    }
    boff[N / 100] = blen;
    static struct reading rs[100];
    static struct metric_value vs[300];
    double ns[2][2]; /* [canary, cjson][single, batch] */
    long sink = 0;
    for (int batch = 0; batch < 2; batch++) {
        long msgs = batch ? N / 100 : N;
        const char *src = batch ? batches : text;
        const size_t *o = batch ? boff : off;
        int64_t a = clock_mono_ns();
        for (long i = 0; i < msgs; i++) {
            struct ingest_batch b;
            struct ingest_fatal f;
            ingest_batch_init(&b);
            if (ingest_parse_json(src + o[i], o[i + 1] - o[i], &lim, t0, &b, &f) == 0)
                sink += (long)b.n;
            ingest_batch_free(&b);
        }
        ns[0][batch] = (double)(clock_mono_ns() - a) / N;
        a = clock_mono_ns();
        for (long i = 0; i < msgs; i++)
            sink += cjson_parse(src + o[i], o[i + 1] - o[i], rs, vs, 100);
        ns[1][batch] = (double)(clock_mono_ns() - a) / N;
    }
    printf("\nParsing the wire format (%d readings, 3 values each; ns per reading)\n", N);
    printf("| messages | canary's parser | cJSON (parse + walk) | canary faster by |\n");
    printf("|---|---:|---:|---:|\n");
    printf("| one reading each | %.0f | %.0f | %.1fx |\n", ns[0][0], ns[1][0], ns[1][0] / ns[0][0]);
    printf("| batches of 100 | %.0f | %.0f | %.1fx |\n", ns[0][1], ns[1][1], ns[1][1] / ns[0][1]);
    if (sink != 4L * N)
        printf("(parsed %ld of %d readings: a parser refused some)\n", sink, 4 * N);
    free(text);
    free(off);
    free(batches);
    free(boff);
}

static double bench_canary_store(const char *path)
{
    struct store_options so = {.path = path,
                               .synchronous_full = true,
                               .busy_timeout_ms = 5000,
                               .chunk_max_readings = 512,
                               .chunk_max_span_ms = 3600000};
    struct store *st;
    char err[512];
    if (store_open(&st, &so, err, sizeof err) != 0) {
        fprintf(stderr, "bench_peers: %s\n", err);
        exit(1);
    }
    static struct reading rs[COMMIT];
    static struct metric_value vals[COMMIT][3];
    static const struct reading *ptrs[COMMIT];
    static char ids[DEVICES][24];
    for (int d = 0; d < DEVICES; d++)
        snprintf(ids[d], sizeof ids[d], "bench-%04d", d);
    int64_t t0 = clock_wall_ms() - READINGS;
    int64_t spent = 0;
    for (long done = 0; done < READINGS; done += COMMIT) {
        for (int i = 0; i < COMMIT; i++) {
            long k = done + i;
            for (int m = 0; m < 3; m++)
                vals[i][m] = (struct metric_value){names[m], 400 + (double)(k % 97), 0.1f, 0};
            rs[i] = (struct reading){ids[k % DEVICES],
                                     (uint64_t)(k / DEVICES + 1),
                                     t0 + k,
                                     t0 + k,
                                     vals[i],
                                     3,
                                     true,
                                     true};
            ptrs[i] = &rs[i];
        }
        struct store_batch b = {.readings = ptrs, .n_readings = COMMIT};
        int64_t a = clock_mono_ns();
        if (store_write(st, &b, err, sizeof err) != 0) {
            fprintf(stderr, "bench_peers: %s\n", err);
            exit(1);
        }
        spent += clock_mono_ns() - a;
    }
    /* Folding the log into chunks is part of storing: it is in the time. */
    size_t moved;
    int64_t a = clock_mono_ns();
    if (store_compact_all(st, &moved, err, sizeof err) != 0) {
        fprintf(stderr, "bench_peers: %s\n", err);
        exit(1);
    }
    spent += clock_mono_ns() - a;
    store_close(st);
    return (double)READINGS / ((double)spent / 1e9);
}

#define SQL(db, q)                                                                                 \
    do {                                                                                           \
        char *e = NULL;                                                                            \
        if (sqlite3_exec(db, q, NULL, NULL, &e) != SQLITE_OK) {                                    \
            fprintf(stderr, "bench_peers: %s: %s\n", q, e);                                        \
            exit(1);                                                                               \
        }                                                                                          \
    } while (0)

/* The obvious layout: one row per reading, indexed for history queries by device and time. */
static double bench_row_per_reading(const char *path)
{
    sqlite3 *db;
    if (sqlite3_open(path, &db) != SQLITE_OK)
        exit(1);
    SQL(db, "PRAGMA journal_mode=WAL; PRAGMA synchronous=FULL; PRAGMA cache_size=-65536");
    SQL(db, "CREATE TABLE readings(device TEXT NOT NULL, ts INTEGER NOT NULL, seq INTEGER,"
            " gas_ppm REAL, temperature_c REAL, humidity_pct REAL, score REAL, flags INTEGER)");
    SQL(db, "CREATE INDEX readings_by_device_time ON readings(device, ts)");
    sqlite3_stmt *st;
    sqlite3_prepare_v2(db, "INSERT INTO readings VALUES(?,?,?,?,?,?,?,?)", -1, &st, NULL);
    static char ids[DEVICES][24];
    for (int d = 0; d < DEVICES; d++)
        snprintf(ids[d], sizeof ids[d], "bench-%04d", d);
    int64_t t0 = clock_wall_ms() - READINGS;
    int64_t a = clock_mono_ns();
    for (long done = 0; done < READINGS; done += COMMIT) {
        SQL(db, "BEGIN");
        for (long k = done; k < done + COMMIT; k++) {
            sqlite3_bind_text(st, 1, ids[k % DEVICES], -1, SQLITE_STATIC);
            sqlite3_bind_int64(st, 2, t0 + k);
            sqlite3_bind_int64(st, 3, k / DEVICES + 1);
            for (int m = 0; m < 3; m++)
                sqlite3_bind_double(st, 4 + m, 400 + (double)(k % 97));
            sqlite3_bind_double(st, 7, 0.1);
            sqlite3_bind_int(st, 8, 0);
            sqlite3_step(st);
            sqlite3_reset(st);
        }
        SQL(db, "COMMIT");
    }
    double rate = (double)READINGS / ((double)(clock_mono_ns() - a) / 1e9);
    sqlite3_finalize(st);
    sqlite3_close(db);
    return rate;
}

static void remove_db(const char *path)
{
    char p[1100];
    unlink(path);
    snprintf(p, sizeof p, "%s-wal", path);
    unlink(p);
    snprintf(p, sizeof p, "%s-shm", path);
    unlink(p);
}

int main(int argc, char **argv)
{
    if (argc < 2 || argc > 3 || (argc == 3 && strcmp(argv[2], "--store-only") != 0)) {
        fprintf(stderr, "usage: bench_peers DIR [--store-only]  (DIR: for the databases)\n");
        return 2;
    }
    if (argc == 2)
        bench_parse();
    char a[1024], b[1024];
    snprintf(a, sizeof a, "%s/peer-canary.db", argv[1]);
    snprintf(b, sizeof b, "%s/peer-rows.db", argv[1]);
    remove_db(a);
    remove_db(b);
    double canary = bench_canary_store(a);
    double rows = bench_row_per_reading(b);
    printf("\nStoring readings in %s (%d readings x 3 values, %d devices, commits of %d)\n",
           argv[1], READINGS, DEVICES, COMMIT);
    printf("| layout | readings/s |\n|---|---:|\n");
    printf("| canary's store (log + compaction into chunks, series summaries) | %.0f |\n", canary);
    printf("| one row per reading, indexed by (device, ts) | %.0f |\n", rows);
    printf("| **canary faster by** | **%.1fx** |\n", canary / rows);
    remove_db(a);
    remove_db(b);
    return 0;
}
