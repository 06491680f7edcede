/* bench_sdk.c — what the device SDK (sdk/) costs per reading on this machine: building a
 * typical reading (four metrics, as doubles and as fixed-point), signing it (JWS HS256), and
 * the whole cdev_device path (seq, clock, build, sign), beside canary's reference signer on
 * OpenSSL (src/verify/jws.c) for the same bytes. Built twice: bench_sdk (the SDK's own
 * SHA-256) and bench_sdk_mbedtls (CDEV_USE_MBEDTLS, Debian's mbedtls); bench/sdk.sh runs both
 * and adds the code size. Median of 5 runs of ROUNDS each, one thread. */
#include "canary_device.h"
#include "verify/jws.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define ROUNDS 200000
#define RUNS   5

#ifdef CDEV_BENCH_MBEDTLS
#define BACKEND "mbedtls 2.28"
#else
#define BACKEND "built-in"
#endif

static const char key_text[] = "3q2-7wAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA";
static volatile long sink;

static double now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec * 1e9 + (double)ts.tv_nsec;
}

/* The seq store of a device whose flash never fails (a RAM variable). */
static uint64_t ram_mark;
static int ram_load(void *ctx, uint64_t *mark)
{
    (void)ctx;
    *mark = ram_mark;
    return CDEV_OK;
}
static int ram_save(void *ctx, uint64_t mark)
{
    (void)ctx;
    ram_mark = mark;
    return CDEV_OK;
}
static int64_t fixed_clock(void *ctx)
{
    (void)ctx;
    return 1763676000123LL;
}

enum what { BUILD_DOUBLE, BUILD_FIXED, SIGN_SDK, SIGN_OPENSSL, DEVICE };

static char json[256], token[512];
static long json_len;
static uint8_t key[CDEV_KEY_LEN];
static struct cdev_device dev;

static void one(enum what w, uint64_t i)
{
    struct cdev_reading r;
    switch (w) {
    case BUILD_DOUBLE:
        cdev_reading_begin(&r, json, sizeof json, "kitchen-1", i, 1763676000123LL);
        cdev_reading_add(&r, "gas_ppm", 412.5);
        cdev_reading_add(&r, "temperature_c", 24.1);
        cdev_reading_add(&r, "humidity_pct", 55.3);
        cdev_reading_add(&r, "flame", 0);
        sink += cdev_reading_end(&r);
        break;
    case BUILD_FIXED:
        cdev_reading_begin(&r, json, sizeof json, "kitchen-1", i, 1763676000123LL);
        cdev_reading_add_fixed(&r, "gas_ppm", 4125, 1);
        cdev_reading_add_fixed(&r, "temperature_c", 241, 1);
        cdev_reading_add_fixed(&r, "humidity_pct", 553, 1);
        cdev_reading_add_flag(&r, "flame", false);
        sink += cdev_reading_end(&r);
        break;
    case SIGN_SDK:
        sink += cdev_jws_sign("kitchen-1", json, (size_t)json_len, key, token, sizeof token);
        break;
    case SIGN_OPENSSL:
        sink += jws_sign_hs256("kitchen-1", json, (size_t)json_len, key, 32, token, sizeof token);
        break;
    case DEVICE:
        cdev_device_begin(&dev, &r, json, sizeof json);
        cdev_reading_add_fixed(&r, "gas_ppm", 4125, 1);
        cdev_reading_add_fixed(&r, "temperature_c", 241, 1);
        cdev_reading_add_fixed(&r, "humidity_pct", 553, 1);
        cdev_reading_add_flag(&r, "flame", false);
        sink += cdev_device_sign(&dev, &r, token, sizeof token);
        break;
    }
}

static int cmp(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

/* Median over RUNS of the mean time per call, in microseconds. */
static double measure(enum what w)
{
    double runs[RUNS];
    for (int k = 0; k < RUNS; k++) {
        double t0 = now_ns();
        for (uint64_t i = 0; i < ROUNDS; i++)
            one(w, i);
        runs[k] = (now_ns() - t0) / ROUNDS / 1000.0;
    }
    qsort(runs, RUNS, sizeof runs[0], cmp);
    return runs[RUNS / 2];
}

int main(void)
{
    static const struct cdev_seq_store store = {ram_load, ram_save, NULL};
    if (cdev_key_parse(key_text, key) != CDEV_OK ||
        cdev_device_init(&dev, "kitchen-1", key_text, &store, 100, 1, fixed_clock, NULL) != CDEV_OK)
        return 1;
    one(BUILD_DOUBLE, 1042);
    json_len = (long)strlen(json);
    long tn = cdev_jws_sign("kitchen-1", json, (size_t)json_len, key, token, sizeof token);
    printf("device SDK, %s SHA-256: a reading of %ld bytes (%s), a token of %ld bytes\n", BACKEND,
           json_len, json, tn);
    printf("%-58s %10s\n", "operation (one thread, median of 5 x 200,000)", "us/reading");
    double sign_sdk = measure(SIGN_SDK), sign_ossl = measure(SIGN_OPENSSL);
    printf("%-58s %10.3f\n", "build the reading, 4 doubles (snprintf %.15g + strtod)",
           measure(BUILD_DOUBLE));
    printf("%-58s %10.3f\n", "build the reading, 4 fixed-point values (integers only)",
           measure(BUILD_FIXED));
    printf("%-58s %10.3f\n", "sign it: cdev_jws_sign (base64url + HMAC-SHA256)", sign_sdk);
    printf("%-58s %10.3f\n", "  the same with canary's signer on OpenSSL (jws_sign_hs256)",
           sign_ossl);
    printf("%-58s %10.3f\n", "whole device path: seq + clock + build (fixed) + sign",
           measure(DEVICE));
    return sink == 42 ? 2 : 0;
}
