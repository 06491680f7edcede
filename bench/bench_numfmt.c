/* bench_numfmt.c — what numfmt.h saves against printf, in the same run: ns per number for
 * %.15g (sensor values), %.4g (scores) and int64 (timestamps), and per reading for the live
 * stream's `readings` JSON written as api_stream.c wrote it before (one vsnprintf per value)
 * and as it writes it now. Five alternating rounds; the table gives the median and the
 * ratio. Every round also checks that both ways wrote the same bytes.
 *
 * usage: bench_numfmt [--values N]   (default 1,000,000) */
#include "core/numfmt.h"
#include "core/rng.h"

#include <inttypes.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define ROUNDS 5

static double now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec * 1e9 + (double)ts.tv_nsec;
}

static struct rng rng;

static uint64_t next(void)
{
    return rng_next(&rng);
}

struct reading_like {
    char device[16];
    uint64_t seq;
    int64_t ts_ms, recv_ms;
    double value[3]; /* gas_ppm, temperature_c, humidity_pct */
    float score[3];
};

static const char *const metric[3] = {"gas_ppm", "temperature_c", "humidity_pct"};

/* As api_stream.c's format_reading() did it before numfmt (flags left out: the same in both). */
static size_t reading_printf(char *out, size_t cap, const struct reading_like *r)
{
    int n = snprintf(out, cap,
                     "{\"device\":\"%s\",\"seq\":%" PRIu64 ",\"ts_ms\":%" PRId64
                     ",\"recv_ms\":%" PRId64 ",\"values\":{",
                     r->device, r->seq, r->ts_ms, r->recv_ms);
    size_t len = (size_t)n;
    for (int i = 0; i < 3; i++)
        len += (size_t)snprintf(out + len, cap - len,
                                "%s\"%s\":{\"value\":%.15g,\"score\":%.4g,\"flags\":[]}",
                                i ? "," : "", metric[i], r->value[i], (double)r->score[i]);
    len += (size_t)snprintf(out + len, cap - len, "}}");
    return len;
}

static size_t put(char *out, size_t len, const char *s, size_t n)
{
    memcpy(out + len, s, n);
    return len + n;
}
#define PUT_LIT(lit) len = put(out, len, (lit), sizeof(lit) - 1)

static size_t reading_numfmt(char *out, const struct reading_like *r)
{
    char num[NUMFMT_MAX];
    size_t len = 0;
    PUT_LIT("{\"device\":\"");
    len = put(out, len, r->device, strlen(r->device));
    PUT_LIT("\",\"seq\":");
    len = put(out, len, num, numfmt_u64(num, r->seq));
    PUT_LIT(",\"ts_ms\":");
    len = put(out, len, num, numfmt_i64(num, r->ts_ms));
    PUT_LIT(",\"recv_ms\":");
    len = put(out, len, num, numfmt_i64(num, r->recv_ms));
    PUT_LIT(",\"values\":{");
    for (int i = 0; i < 3; i++) {
        if (i)
            PUT_LIT(",");
        PUT_LIT("\"");
        len = put(out, len, metric[i], strlen(metric[i]));
        PUT_LIT("\":{\"value\":");
        len = put(out, len, num, numfmt_g15(num, r->value[i]));
        PUT_LIT(",\"score\":");
        len = put(out, len, num, numfmt_g4(num, (double)r->score[i]));
        PUT_LIT(",\"flags\":[]}");
    }
    PUT_LIT("}}");
    out[len] = '\0';
    return len;
}

static int cmp(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

static double median(double *v)
{
    qsort(v, ROUNDS, sizeof *v, cmp);
    return v[ROUNDS / 2];
}

int main(int argc, char **argv)
{
    size_t n = 1000000;
    rng_seed_state(&rng, 1);
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--values") == 0 && i + 1 < argc)
            n = strtoull(argv[++i], NULL, 10);
        else {
            fprintf(stderr, "usage: bench_numfmt [--values N]\n");
            return 2;
        }
    }
    struct reading_like *rs = calloc(n, sizeof *rs);
    if (rs == NULL)
        return 1;
    for (size_t i = 0; i < n; i++) {
        struct reading_like *r = &rs[i];
        snprintf(r->device, sizeof r->device, "sim-%04zu", i % 1000);
        r->seq = i / 1000 + 1;
        r->ts_ms = 1763719200000 + (int64_t)i * 5;
        r->recv_ms = r->ts_ms + 3;
        r->value[0] = 380 + (double)(next() % 1000) / 10.0; /* MQ sensor, 0.1 ppm */
        r->value[1] = 18 + (double)(next() % 100) / 10.0;   /* DHT22, 0.1 °C */
        r->value[2] = (double)(30 + next() % 40);           /* DHT11, whole % */
        for (int k = 0; k < 3; k++)
            r->score[k] = (float)(next() % 1000000) / 1e6f;
    }
    double t[8][ROUNDS];
    char a[NUMFMT_MAX + 32], b[1024], c[1024];
    volatile size_t sink = 0;
    for (int round = 0; round < ROUNDS; round++) {
        double t0 = now_ns();
        for (size_t i = 0; i < n; i++)
            sink += (size_t)snprintf(a, sizeof a, "%.15g", rs[i].value[i % 3]);
        double t1 = now_ns();
        for (size_t i = 0; i < n; i++)
            sink += numfmt_g15(a, rs[i].value[i % 3]);
        double t2 = now_ns();
        for (size_t i = 0; i < n; i++)
            sink += (size_t)snprintf(a, sizeof a, "%.4g", (double)rs[i].score[i % 3]);
        double t3 = now_ns();
        for (size_t i = 0; i < n; i++)
            sink += numfmt_g4(a, (double)rs[i].score[i % 3]);
        double t4 = now_ns();
        for (size_t i = 0; i < n; i++)
            sink += (size_t)snprintf(a, sizeof a, "%" PRId64, rs[i].ts_ms);
        double t5 = now_ns();
        for (size_t i = 0; i < n; i++)
            sink += numfmt_i64(a, rs[i].ts_ms);
        double t6 = now_ns();
        for (size_t i = 0; i < n; i++)
            sink += reading_printf(b, sizeof b, &rs[i]);
        double t7 = now_ns();
        for (size_t i = 0; i < n; i++)
            sink += reading_numfmt(c, &rs[i]);
        double t8 = now_ns();
        double d[8] = {t1 - t0, t2 - t1, t3 - t2, t4 - t3, t5 - t4, t6 - t5, t7 - t6, t8 - t7};
        for (int k = 0; k < 8; k++)
            t[k][round] = d[k] / (double)n;
        for (size_t i = round; i < n; i += 997) { /* the same bytes both ways */
            reading_printf(b, sizeof b, &rs[i]);
            reading_numfmt(c, &rs[i]);
            if (strcmp(b, c) != 0) {
                fprintf(stderr, "bench_numfmt: outputs differ:\n  printf %s\n  numfmt %s\n", b, c);
                return 1;
            }
        }
    }
    (void)sink;
    static const char *const what[4] = {"%.15g, a sensor value (0.1 ppm, 0.1 °C, whole %)",
                                        "%.4g, a score (float in [0,1])", "int64, a timestamp (ms)",
                                        "a stream reading, 3 values (JSON, ~200 bytes)"};
    printf("numfmt against printf, %zu values, median of %d alternating rounds (ns per item)\n", n,
           ROUNDS);
    printf("| item | printf (the peer) | numfmt | printf ÷ numfmt |\n|---|---:|---:|---:|\n");
    for (int k = 0; k < 4; k++) {
        double p = median(t[2 * k]), f = median(t[2 * k + 1]);
        printf("| %s | %.1f | %.1f | %.1f× |\n", what[k], p, f, p / f);
    }
    free(rs);
    return 0;
}
