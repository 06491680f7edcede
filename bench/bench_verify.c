/* bench_verify.c — what authenticity costs per message on one core: a typical reading as
 * plain JSON (parse + keyring lookup) and as a JWS (profile checks, HMAC-SHA256 against the
 * device's key, payload decode, parse, device check), with a keyring of 1,000 devices loaded
 * from a temporary SQLite store. Also the cost of refusing a forged token. Prints a table;
 * numbers are per message, single thread (docs/SECURITY.md records them). */
#include "core/clock.h"
#include "core/config.h"
#include "ingest/ingest.h"
#include "store/store.h"
#include "verify/auth.h"
#include "verify/devkey.h"
#include "verify/jws.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define DEVICES 1000
#define ROUNDS  200000

static const struct ingest_limits limits = {.max_batch = 100,
                                            .max_metrics = 32,
                                            .max_device_len = 64,
                                            .max_metric_len = 64,
                                            .strict_fields = true};

static double run(struct auth *a, const char *body, size_t len, bool expect_ok, size_t *ok)
{
    int64_t t0 = clock_mono_ns();
    *ok = 0;
    for (int i = 0; i < ROUNDS; i++) {
        struct auth_verdict v;
        memset(&v, 0, sizeof v);
        static char buf[4096];
        size_t plen = len;
        const char *json = body;
        if (auth_looks_like_jws(body, len)) {
            if (auth_open_jws(a, body, len, 65536, 1763676000000LL, buf, sizeof buf, &plen, &v) !=
                0)
                continue;
            json = buf;
        }
        struct ingest_batch b;
        ingest_batch_init(&b);
        struct ingest_fatal fatal;
        if (ingest_parse_json(json, plen, &limits, 1763676000000LL, &b, &fatal) == 0 &&
            auth_check_batch(a, &b, NULL, 0, 1763676000000LL, &v) == 0)
            (*ok)++;
        ingest_batch_free(&b);
    }
    (void)expect_ok;
    return (double)(clock_mono_ns() - t0) / ROUNDS / 1000.0;
}

int main(void)
{
    char dir[] = "/tmp/canary-bench-verify-XXXXXX";
    if (mkdtemp(dir) == NULL)
        return 1;
    char path[128], err[256];
    snprintf(path, sizeof path, "%s/b.db", dir);
    struct store_options opt = {.path = path,
                                .busy_timeout_ms = 1000,
                                .chunk_max_readings = 64,
                                .chunk_max_span_ms = 3600000};
    struct store *s;
    if (store_open(&s, &opt, err, sizeof err) != 0) {
        fprintf(stderr, "%s\n", err);
        return 1;
    }
    static struct canary_config cfg;
    snprintf(cfg.security.unsigned_policy, sizeof cfg.security.unsigned_policy, "accept");
    snprintf(cfg.security.master_key, sizeof cfg.security.master_key, "%s",
             "000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f");
    struct auth *a;
    if (auth_new(&a, &cfg, err, sizeof err) != 0)
        return 1;
    uint8_t master[DEVKEY_LEN], key[DEVKEY_LEN], mine[DEVKEY_LEN];
    devkey_master_parse(cfg.security.master_key, master, err, sizeof err);
    for (int d = 0; d < DEVICES; d++) {
        struct store_device_key k;
        memset(&k, 0, sizeof k);
        snprintf(k.device, sizeof k.device, "dev-%04d", d);
        k.kind = STORE_KEY_HMAC;
        k.version = 1;
        devkey_random(key, sizeof key);
        if (d == 500)
            memcpy(mine, key, sizeof key);
        devkey_seal(master, k.device, 1, key, k.material);
        k.material_len = DEVKEY_SEALED_LEN;
        k.created_ms = 1;
        if (store_key_add(s, &k, 0, err, sizeof err) != 0) {
            fprintf(stderr, "%s\n", err);
            return 1;
        }
    }
    int64_t t0 = clock_mono_ns();
    if (auth_reload(a, s, err, sizeof err) != 0)
        return 1;
    double reload_ms = (double)(clock_mono_ns() - t0) / 1e6;

    const char *plain = "{\"device\":\"dev-0500\",\"seq\":1042,\"ts\":1763676000123,\"values\":{"
                        "\"gas_ppm\":412.5,\"temperature_c\":24.1,\"humidity_pct\":45,"
                        "\"flame\":0}}";
    const char *other = "{\"device\":\"new-0001\",\"seq\":1042,\"ts\":1763676000123,\"values\":{"
                        "\"gas_ppm\":412.5,\"temperature_c\":24.1,\"humidity_pct\":45,"
                        "\"flame\":0}}";
    char tok[1024], forged[1024];
    long n = jws_sign_hs256("dev-0500", plain, strlen(plain), mine, DEVKEY_LEN, tok, sizeof tok);
    memcpy(forged, tok, (size_t)n + 1);
    forged[n - 3] = forged[n - 3] == 'A' ? 'B' : 'A';
    size_t ok;
    printf("authenticity per message, one core, keyring of %d devices (reload: %.1f ms)\n", DEVICES,
           reload_ms);
    printf("%-44s %10s %10s\n", "message", "us/msg", "accepted");
    double u = run(a, other, strlen(other), true, &ok);
    printf("%-44s %10.2f %10zu\n", "unsigned JSON, device without key (accept)", u, ok);
    double sg = run(a, tok, (size_t)n, true, &ok);
    printf("%-44s %10.2f %10zu\n", "JWS HS256, valid", sg, ok);
    double f = run(a, forged, (size_t)n, false, &ok);
    printf("%-44s %10.2f %10zu\n", "JWS HS256, forged signature (refused)", f, ok);
    printf("%-44s %10d bytes\n", "JWS body size (the JSON is 127 bytes)", (int)n);
    auth_free(a);
    store_close(s);
    char cmd[200];
    snprintf(cmd, sizeof cmd, "rm -rf %s", dir);
    return system(cmd) == 0 ? 0 : 1;
}
