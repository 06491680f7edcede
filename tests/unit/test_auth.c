/* test_auth.c — unit tests of device credentials: sealing keys (src/verify/devkey.c), the
 * device_keys table (src/store/sqlite_keys.c) and the keyring with its verdicts
 * (src/verify/auth.c): signed, bearer and unsigned messages under each policy, rotation
 * overlap, revocation — and that no key or token reaches the database file in clear or a
 * log line. */
#include "core/config.h"
#include "core/error.h"
#include "core/log.h"
#include "ingest/ingest.h"
#include "store/store.h"
#include "unit_support.h"
#include "verify/auth.h"
#include "verify/devkey.h"
#include "verify/jws.h"

#include <fcntl.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#define NOW        1763676000000LL
#define MASTER_HEX "000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f"

static const struct ingest_limits limits = {.max_batch = 100,
                                            .max_metrics = 16,
                                            .max_device_len = 64,
                                            .max_metric_len = 64,
                                            .strict_fields = true};

struct fixture {
    char dir[64];
    char path[128];
    char log_path[160];
    int saved_stderr;
    struct store *s;
    struct auth *a;
    struct canary_config cfg;
    uint8_t master[DEVKEY_LEN];
};

static void open_auth(struct fixture *f, const char *policy)
{
    auth_free(f->a);
    f->a = NULL;
    snprintf(f->cfg.security.unsigned_policy, sizeof f->cfg.security.unsigned_policy, "%s", policy);
    char err[256];
    assert_int_equal(auth_new(&f->a, &f->cfg, err, sizeof err), 0);
    assert_int_equal(auth_reload(f->a, f->s, err, sizeof err), 0);
}

static int setup(void **state)
{
    struct fixture *f = calloc(1, sizeof *f);
    snprintf(f->dir, sizeof f->dir, "/tmp/canary-auth-XXXXXX");
    assert_non_null(mkdtemp(f->dir));
    snprintf(f->path, sizeof f->path, "%s/t.db", f->dir);
    snprintf(f->log_path, sizeof f->log_path, "%s/log", f->dir);
    /* Everything logged during the test goes to a file that is searched for secrets. */
    fflush(stderr);
    f->saved_stderr = dup(2);
    int fd = open(f->log_path, O_WRONLY | O_CREAT | O_TRUNC, 0600);
    assert_true(fd >= 0);
    dup2(fd, 2);
    close(fd);
    log_set_level(LOG_LEVEL_DEBUG);
    struct store_options opt = {.path = f->path,
                                .busy_timeout_ms = 1000,
                                .chunk_max_readings = 64,
                                .chunk_max_span_ms = 3600000};
    char err[256];
    assert_int_equal(store_open(&f->s, &opt, err, sizeof err), 0);
    snprintf(f->cfg.security.master_key, sizeof f->cfg.security.master_key, "%s", MASTER_HEX);
    assert_int_equal(devkey_master_parse(MASTER_HEX, f->master, err, sizeof err), 0);
    open_auth(f, "accept");
    *state = f;
    return 0;
}

static int teardown(void **state)
{
    struct fixture *f = *state;
    auth_free(f->a);
    store_close(f->s);
    dup2(f->saved_stderr, 2);
    close(f->saved_stderr);
    char cmd[200];
    snprintf(cmd, sizeof cmd, "rm -rf %s", f->dir);
    assert_int_equal(system(cmd), 0);
    free(f);
    return 0;
}

/* Reads a whole file (malloc'ed, NUL-terminated); *len its size. */
static char *slurp(const char *path, size_t *len)
{
    FILE *fp = fopen(path, "rb");
    assert_non_null(fp);
    fseek(fp, 0, SEEK_END);
    long n = ftell(fp);
    fseek(fp, 0, SEEK_SET);
    char *buf = malloc((size_t)n + 1);
    assert_non_null(buf);
    assert_int_equal(fread(buf, 1, (size_t)n, fp), (size_t)n);
    buf[n] = '\0';
    fclose(fp);
    *len = (size_t)n;
    return buf;
}

static bool contains(const char *hay, size_t n, const void *needle, size_t m)
{
    for (size_t i = 0; i + m <= n; i++)
        if (memcmp(hay + i, needle, m) == 0)
            return true;
    return false;
}

/* Adds an HMAC key for device (next version); rotation ends the old ones at overlap_until. */
static uint32_t add_hmac(struct fixture *f, const char *device, const uint8_t key[DEVKEY_LEN],
                         int64_t overlap_until)
{
    struct store_device_key k;
    memset(&k, 0, sizeof k);
    snprintf(k.device, sizeof k.device, "%s", device);
    k.kind = STORE_KEY_HMAC;
    char err[256];
    assert_int_equal(store_key_next_version(f->s, device, k.kind, &k.version, err, sizeof err), 0);
    assert_int_equal(devkey_seal(f->master, device, k.version, key, k.material), 0);
    k.material_len = DEVKEY_SEALED_LEN;
    k.created_ms = NOW;
    assert_int_equal(store_key_add(f->s, &k, overlap_until, err, sizeof err), 0);
    assert_int_equal(auth_reload(f->a, f->s, err, sizeof err), 0);
    return k.version;
}

static void add_token(struct fixture *f, const char *device, char token[DEVKEY_TOKEN_LEN + 1])
{
    struct store_device_key k;
    memset(&k, 0, sizeof k);
    snprintf(k.device, sizeof k.device, "%s", device);
    k.kind = STORE_KEY_TOKEN;
    char err[256];
    assert_int_equal(store_key_next_version(f->s, device, k.kind, &k.version, err, sizeof err), 0);
    assert_int_equal(devkey_token_new(token, k.material), 0);
    k.material_len = DEVKEY_HASH_LEN;
    k.created_ms = NOW;
    assert_int_equal(store_key_add(f->s, &k, 0, err, sizeof err), 0);
    assert_int_equal(auth_reload(f->a, f->s, err, sizeof err), 0);
}

static const char *reading_of(const char *device, int seq)
{
    static char buf[256];
    snprintf(buf, sizeof buf,
             "{\"device\":\"%s\",\"seq\":%d,\"ts\":%lld,\"values\":{\"gas_ppm\":412.5}}", device,
             seq, NOW);
    return buf;
}

/* The whole path of a message: unwrap a JWS (when body looks like one), parse, check. */
static const char *verdict(struct fixture *f, const char *body, const char *bearer, int64_t now,
                           struct auth_verdict *v)
{
    memset(v, 0, sizeof *v);
    char *payload = NULL;
    size_t plen = strlen(body);
    const char *json = body;
    if (auth_looks_like_jws(body, strlen(body))) {
        payload = malloc(strlen(body) + 1);
        assert_non_null(payload);
        if (auth_open_jws(f->a, body, strlen(body), 65536, now, payload, strlen(body) + 1, &plen,
                          v) != 0) {
            free(payload);
            return v->code;
        }
        json = payload;
    } else if (bearer != NULL) {
        v->how = AUTH_BEARER;
    }
    struct ingest_batch b;
    ingest_batch_init(&b);
    struct ingest_fatal fatal;
    assert_int_equal(ingest_parse_json(json, plen, &limits, now, &b, &fatal), 0);
    int rc = auth_check_batch(f->a, &b, bearer, bearer ? strlen(bearer) : 0, now, v);
    ingest_batch_free(&b);
    free(payload);
    return rc == 0 ? (v->flagged ? "flagged" : "ok") : v->code;
}

static void sign(const char *kid, const char *payload, const uint8_t key[DEVKEY_LEN], char *out,
                 size_t cap)
{
    assert_true(jws_sign_hs256(kid, payload, strlen(payload), key, DEVKEY_LEN, out, cap) > 0);
}

static void test_master_key_forms(void **state)
{
    (void)state;
    uint8_t k[DEVKEY_LEN], k2[DEVKEY_LEN];
    char err[256];
    assert_int_equal(devkey_master_parse(" " MASTER_HEX "\n", k, err, sizeof err), 0);
    assert_int_equal(k[0], 0);
    assert_int_equal(k[31], 0x1f);
    char b64[DEVKEY_TEXT_LEN];
    devkey_format(k, b64);
    assert_int_equal(devkey_master_parse(b64, k2, err, sizeof err), 0);
    assert_memory_equal(k, k2, DEVKEY_LEN);
    /* Standard base64 with '=' and '+' '/'. */
    assert_int_equal(
        devkey_master_parse("AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=", k2, err, sizeof err),
        0);
    assert_memory_equal(k, k2, DEVKEY_LEN);
    const char *bad[] = {"", "short", MASTER_HEX "00",
                         "zz0102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f",
                         "secret-secret-secret-secret-secret-secret-x"};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        err[0] = '\0';
        assert_int_equal(devkey_master_parse(bad[i], k2, err, sizeof err), CANARY_EINVAL);
        assert_non_null(strstr(err, "32 bytes"));
        if (bad[i][0] != '\0')
            assert_null(strstr(err, bad[i])); /* the message never repeats the text */
    }
}

static void test_seal_open(void **state)
{
    struct fixture *f = *state;
    uint8_t key[DEVKEY_LEN], back[DEVKEY_LEN], sealed[DEVKEY_SEALED_LEN],
        sealed2[DEVKEY_SEALED_LEN];
    assert_int_equal(devkey_random(key, sizeof key), 0);
    assert_int_equal(devkey_seal(f->master, "kitchen-1", 1, key, sealed), 0);
    assert_false(contains((const char *)sealed, sizeof sealed, key, 8));
    assert_int_equal(devkey_open(f->master, "kitchen-1", 1, sealed, back), 0);
    assert_memory_equal(key, back, DEVKEY_LEN);
    /* A fresh nonce each time: the same key seals differently. */
    assert_int_equal(devkey_seal(f->master, "kitchen-1", 1, key, sealed2), 0);
    assert_memory_not_equal(sealed, sealed2, DEVKEY_SEALED_LEN);
    /* Another device's row, another version, a flipped bit, another master: refused. */
    assert_int_equal(devkey_open(f->master, "kitchen-2", 1, sealed, back), CANARY_EPERM);
    assert_int_equal(devkey_open(f->master, "kitchen-1", 2, sealed, back), CANARY_EPERM);
    for (size_t i = 0; i < DEVKEY_SEALED_LEN; i += 7) {
        sealed[i] ^= 0x10;
        assert_int_equal(devkey_open(f->master, "kitchen-1", 1, sealed, back), CANARY_EPERM);
        sealed[i] ^= 0x10;
    }
    uint8_t other[DEVKEY_LEN];
    memcpy(other, f->master, DEVKEY_LEN);
    other[5] ^= 1;
    assert_int_equal(devkey_open(other, "kitchen-1", 1, sealed, back), CANARY_EPERM);
    /* Tokens: "cnt_" + 43 base64url characters, hashed with SHA-256, unique. */
    char t1[DEVKEY_TOKEN_LEN + 1], t2[DEVKEY_TOKEN_LEN + 1];
    uint8_t h1[DEVKEY_HASH_LEN], h2[DEVKEY_HASH_LEN], h[DEVKEY_HASH_LEN];
    assert_int_equal(devkey_token_new(t1, h1), 0);
    assert_int_equal(devkey_token_new(t2, h2), 0);
    assert_int_equal(strlen(t1), DEVKEY_TOKEN_LEN);
    assert_memory_equal(t1, "cnt_", 4);
    assert_string_not_equal(t1, t2);
    devkey_token_hash(t1, strlen(t1), h);
    assert_memory_equal(h, h1, DEVKEY_HASH_LEN);
    char text[DEVKEY_TEXT_LEN];
    devkey_format(key, text);
    assert_int_equal(devkey_parse(text, back), 0);
    assert_memory_equal(key, back, DEVKEY_LEN);
    assert_int_equal(devkey_parse("nope", back), CANARY_EINVAL);
}

static int count_keys;
static struct store_device_key seen_keys[8];
static void collect(void *arg, const struct store_device_key *k)
{
    (void)arg;
    if (count_keys < 8)
        seen_keys[count_keys] = *k;
    count_keys++;
}

static void test_store_versions_rotation_revocation(void **state)
{
    struct fixture *f = *state;
    uint8_t k1[DEVKEY_LEN], k2[DEVKEY_LEN];
    devkey_random(k1, sizeof k1);
    devkey_random(k2, sizeof k2);
    assert_int_equal(add_hmac(f, "kitchen-1", k1, 0), 1);
    assert_int_equal(add_hmac(f, "kitchen-1", k2, NOW + 60000), 2);
    char token[DEVKEY_TOKEN_LEN + 1];
    add_token(f, "kitchen-1", token);
    add_hmac(f, "other", k1, 0);
    char err[256];
    count_keys = 0;
    assert_int_equal(store_keys_each(f->s, "kitchen-1", collect, NULL, err, sizeof err), 0);
    assert_int_equal(count_keys, 3);
    assert_int_equal(seen_keys[0].kind, STORE_KEY_HMAC);
    assert_int_equal(seen_keys[0].version, 1);
    assert_int_equal(seen_keys[0].expires_ms, NOW + 60000); /* ended by the rotation */
    assert_int_equal(seen_keys[1].version, 2);
    assert_int_equal(seen_keys[1].expires_ms, 0);
    assert_int_equal(seen_keys[2].kind, STORE_KEY_TOKEN);
    assert_int_equal(seen_keys[2].material_len, DEVKEY_HASH_LEN);
    /* The same version twice is a conflict. */
    struct store_device_key dup = seen_keys[1];
    assert_int_equal(store_key_add(f->s, &dup, 0, err, sizeof err), CANARY_ECONFLICT);
    size_t n = 0;
    assert_int_equal(store_keys_revoke(f->s, "kitchen-1", NOW + 5, &n, err, sizeof err), 0);
    assert_int_equal(n, 3);
    assert_int_equal(store_keys_revoke(f->s, "kitchen-1", NOW + 6, &n, err, sizeof err), 0);
    assert_int_equal(n, 0);
    count_keys = 0;
    assert_int_equal(store_keys_each(f->s, NULL, collect, NULL, err, sizeof err), 0);
    assert_int_equal(count_keys, 4);
    assert_int_equal(seen_keys[0].revoked_ms, NOW + 5);
    assert_int_equal(seen_keys[3].revoked_ms, 0); /* "other" untouched */
    /* Neither key nor token is in the database file in clear. */
    store_close(f->s);
    f->s = NULL;
    size_t len;
    char *db = slurp(f->path, &len);
    char text[DEVKEY_TEXT_LEN];
    devkey_format(k1, text);
    assert_false(contains(db, len, k1, DEVKEY_LEN));
    assert_false(contains(db, len, k2, DEVKEY_LEN));
    assert_false(contains(db, len, text, strlen(text)));
    assert_false(contains(db, len, token, strlen(token)));
    free(db);
    struct store_options opt = {.path = f->path,
                                .busy_timeout_ms = 1000,
                                .chunk_max_readings = 64,
                                .chunk_max_span_ms = 3600000};
    assert_int_equal(store_open(&f->s, &opt, err, sizeof err), 0);
    assert_int_equal(store_schema_version(), 7);
}

static void test_signed_verdicts(void **state)
{
    struct fixture *f = *state;
    uint8_t key[DEVKEY_LEN], wrong[DEVKEY_LEN];
    devkey_random(key, sizeof key);
    devkey_random(wrong, sizeof wrong);
    add_hmac(f, "kitchen-1", key, 0);
    char tok[1024];
    struct auth_verdict v;
    sign("kitchen-1", reading_of("kitchen-1", 1), key, tok, sizeof tok);
    assert_string_equal(verdict(f, tok, NULL, NOW, &v), "ok");
    assert_int_equal(v.how, AUTH_SIGNED);
    assert_int_equal(v.key_version, 1);
    /* Wrong key; a kid nobody provisioned; a reading naming another device. */
    sign("kitchen-1", reading_of("kitchen-1", 2), wrong, tok, sizeof tok);
    assert_string_equal(verdict(f, tok, NULL, NOW, &v), "bad_signature");
    assert_int_equal(v.http_status, 401);
    sign("nobody", reading_of("nobody", 2), key, tok, sizeof tok);
    assert_string_equal(verdict(f, tok, NULL, NOW, &v), "unknown_key");
    sign("kitchen-1", reading_of("kitchen-2", 2), key, tok, sizeof tok);
    assert_string_equal(verdict(f, tok, NULL, NOW, &v), "device_mismatch");
    assert_int_equal(v.http_status, 403);
    /* An altered payload under the original signature. */
    sign("kitchen-1", reading_of("kitchen-1", 3), key, tok, sizeof tok);
    char *p = strchr(tok, '.') + 5;
    *p = *p == 'A' ? 'B' : 'A';
    assert_string_equal(verdict(f, tok, NULL, NOW, &v), "bad_signature");
    /* alg none, with and without a signature part. */
    char none[1024];
    const char *hdr = "{\"alg\":\"none\",\"kid\":\"kitchen-1\"}";
    long a = b64url_encode(hdr, strlen(hdr), none, sizeof none);
    none[a] = '.';
    long b = b64url_encode(reading_of("kitchen-1", 4), strlen(reading_of("kitchen-1", 4)),
                           none + a + 1, sizeof none - (size_t)a - 1);
    strcpy(none + a + 1 + b, ".");
    assert_string_equal(verdict(f, none, NULL, NOW, &v), "bad_format");
    strcpy(none + a + 1 + b, ".dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk");
    assert_string_equal(verdict(f, none, NULL, NOW, &v), "alg_none");
    /* Stripping the signature: the device has a key, so plain JSON is refused even under
     * the accept policy. */
    assert_string_equal(verdict(f, reading_of("kitchen-1", 5), NULL, NOW, &v),
                        "signature_required");
    assert_int_equal(v.http_status, 401);
    struct auth_stats st;
    auth_stats(f->a, &st);
    assert_int_equal(st.signed_ok, 1);
    assert_true(st.rejected >= 7);
    assert_int_equal(st.devices, 1);
    assert_int_equal(st.unreadable, 0);
}

static void test_unsigned_policies(void **state)
{
    struct fixture *f = *state;
    struct auth_verdict v;
    assert_string_equal(verdict(f, reading_of("plain-1", 1), NULL, NOW, &v), "ok");
    open_auth(f, "flag");
    assert_string_equal(verdict(f, reading_of("plain-1", 1), NULL, NOW, &v), "flagged");
    open_auth(f, "reject");
    assert_string_equal(verdict(f, reading_of("plain-1", 1), NULL, NOW, &v), "unsigned");
    assert_int_equal(v.http_status, 401);
    assert_string_equal(v.device, "plain-1");
    assert_non_null(strstr(v.reason, "canary device add"));
    enum auth_unsigned u;
    assert_int_equal(auth_unsigned_parse("flag", &u), 0);
    assert_int_equal(u, AUTH_UNSIGNED_FLAG);
    assert_int_equal(auth_unsigned_parse("maybe", &u), -1);
}

static void test_bearer_tokens(void **state)
{
    struct fixture *f = *state;
    open_auth(f, "reject");
    char token[DEVKEY_TOKEN_LEN + 1], other[DEVKEY_TOKEN_LEN + 1];
    add_token(f, "porch-1", token);
    add_token(f, "porch-2", other);
    struct auth_verdict v;
    assert_string_equal(verdict(f, reading_of("porch-1", 1), token, NOW, &v), "ok");
    assert_int_equal(v.how, AUTH_BEARER);
    /* porch-2's token for porch-1's reading; a made-up token; a token for nobody. */
    assert_string_equal(verdict(f, reading_of("porch-1", 2), other, NOW, &v), "bad_token");
    assert_string_equal(verdict(f, reading_of("porch-1", 2), "cnt_guess", NOW, &v), "bad_token");
    assert_string_equal(verdict(f, reading_of("porch-3", 2), token, NOW, &v), "bad_token");
    char err[256];
    assert_int_equal(store_keys_revoke(f->s, "porch-1", NOW, NULL, err, sizeof err), 0);
    assert_int_equal(auth_reload(f->a, f->s, err, sizeof err), 0);
    assert_string_equal(verdict(f, reading_of("porch-1", 3), token, NOW, &v), "revoked");
    assert_int_equal(v.http_status, 403);
    assert_string_equal(verdict(f, reading_of("porch-1", 3), NULL, NOW, &v), "revoked");
}

static void test_rotation_overlap_and_revocation(void **state)
{
    struct fixture *f = *state;
    uint8_t old_key[DEVKEY_LEN], new_key[DEVKEY_LEN];
    devkey_random(old_key, sizeof old_key);
    devkey_random(new_key, sizeof new_key);
    add_hmac(f, "kitchen-1", old_key, 0);
    add_hmac(f, "kitchen-1", new_key, NOW + 60000); /* rotate: old valid one more minute */
    char tok[1024];
    struct auth_verdict v;
    sign("kitchen-1", reading_of("kitchen-1", 1), old_key, tok, sizeof tok);
    assert_string_equal(verdict(f, tok, NULL, NOW, &v), "ok");
    assert_int_equal(v.key_version, 1);
    assert_string_equal(verdict(f, tok, NULL, NOW + 60000, &v), "expired_key");
    sign("kitchen-1", reading_of("kitchen-1", 1), new_key, tok, sizeof tok);
    assert_string_equal(verdict(f, tok, NULL, NOW + 60000, &v), "ok");
    assert_int_equal(v.key_version, 2);
    char err[256];
    assert_int_equal(store_keys_revoke(f->s, "kitchen-1", NOW, NULL, err, sizeof err), 0);
    assert_int_equal(auth_reload(f->a, f->s, err, sizeof err), 0);
    assert_string_equal(verdict(f, tok, NULL, NOW, &v), "revoked");
    assert_int_equal(v.http_status, 403);
}

/* With another master key, sealed keys do not open: signed readings are refused (and the
 * device still may not send unsigned ones). */
static void test_wrong_master_key(void **state)
{
    struct fixture *f = *state;
    uint8_t key[DEVKEY_LEN];
    devkey_random(key, sizeof key);
    add_hmac(f, "kitchen-1", key, 0);
    snprintf(f->cfg.security.master_key, sizeof f->cfg.security.master_key, "%s",
             "ff0102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f");
    open_auth(f, "accept");
    struct auth_stats st;
    auth_stats(f->a, &st);
    assert_int_equal(st.unreadable, 1);
    char tok[1024];
    struct auth_verdict v;
    sign("kitchen-1", reading_of("kitchen-1", 1), key, tok, sizeof tok);
    assert_string_equal(verdict(f, tok, NULL, NOW, &v), "bad_signature");
    assert_string_equal(verdict(f, reading_of("kitchen-1", 1), NULL, NOW, &v),
                        "signature_required");
    /* A malformed master key is an error at start. */
    struct auth *a2 = NULL;
    char err[256];
    snprintf(f->cfg.security.master_key, sizeof f->cfg.security.master_key, "%s", "hunter2");
    assert_int_equal(auth_new(&a2, &f->cfg, err, sizeof err), CANARY_EINVAL);
    assert_null(a2);
}

/* A device with more credentials than the keyring keeps per device: its valid key of one kind
 * is not pushed out by many of the other, and the newest token works. */
static void test_many_credentials(void **state)
{
    struct fixture *f = *state;
    uint8_t key[DEVKEY_LEN];
    devkey_random(key, sizeof key);
    add_hmac(f, "busy-1", key, 0);
    char token[DEVKEY_TOKEN_LEN + 1], first[DEVKEY_TOKEN_LEN + 1];
    for (int i = 0; i < 12; i++) {
        add_token(f, "busy-1", token);
        if (i == 0)
            memcpy(first, token, sizeof first);
    }
    char tok[1024];
    struct auth_verdict v;
    sign("busy-1", reading_of("busy-1", 1), key, tok, sizeof tok);
    assert_string_equal(verdict(f, tok, NULL, NOW, &v), "ok");
    assert_string_equal(verdict(f, reading_of("busy-1", 2), token, NOW, &v), "ok");
    assert_int_equal(v.key_version, 12);
    /* The oldest tokens fell out of the keyring (still valid in the store: a keyring limit
     * of KR_MAX_CREDS per device, documented in auth.c). */
    assert_string_equal(verdict(f, reading_of("busy-1", 3), first, NOW, &v), "bad_token");
}

struct stress {
    struct auth *a;
    const char *tok;
    _Atomic int ok, bad;
};

static void *verify_loop(void *arg)
{
    struct stress *st = arg;
    for (int i = 0; i < 20000; i++) {
        struct auth_verdict v;
        size_t plen;
        char buf[1024];
        if (auth_open_jws(st->a, st->tok, strlen(st->tok), 4096, NOW, buf, sizeof buf, &plen, &v) ==
            0)
            st->ok++;
        else
            st->bad++;
    }
    return NULL;
}

/* Readers verify while the keyring is reloaded over and over: every verification succeeds
 * (a reader always sees a whole snapshot) and nothing is used after it is freed (ASan). */
static void test_reload_under_readers(void **state)
{
    struct fixture *f = *state;
    uint8_t key[DEVKEY_LEN];
    devkey_random(key, sizeof key);
    add_hmac(f, "kitchen-1", key, 0);
    for (int i = 0; i < 50; i++) {
        char id[32];
        uint8_t other[DEVKEY_LEN];
        snprintf(id, sizeof id, "filler-%02d", i);
        devkey_random(other, sizeof other);
        add_hmac(f, id, other, 0);
    }
    char tok[1024];
    sign("kitchen-1", reading_of("kitchen-1", 1), key, tok, sizeof tok);
    struct stress st = {.a = f->a, .tok = tok};
    pthread_t th[4];
    for (int i = 0; i < 4; i++)
        assert_int_equal(pthread_create(&th[i], NULL, verify_loop, &st), 0);
    char err[256];
    for (int i = 0; i < 200; i++)
        assert_int_equal(auth_reload(f->a, f->s, err, sizeof err), 0);
    for (int i = 0; i < 4; i++)
        pthread_join(th[i], NULL);
    assert_int_equal(st.ok, 80000);
    assert_int_equal(st.bad, 0);
}

/* Last: every key and token the tests made went through logging paths (reload, refusals at
 * debug level); none may appear in the log. */
static void test_no_secret_in_log(void **state)
{
    struct fixture *f = *state;
    uint8_t key[DEVKEY_LEN];
    devkey_random(key, sizeof key);
    add_hmac(f, "kitchen-1", key, 0);
    char token[DEVKEY_TOKEN_LEN + 1];
    add_token(f, "kitchen-1", token);
    char tok[1024];
    struct auth_verdict v;
    sign("kitchen-1", reading_of("kitchen-1", 1), key, tok, sizeof tok);
    verdict(f, tok, NULL, NOW, &v);
    verdict(f, reading_of("kitchen-1", 2), "cnt_wrong", NOW, &v);
    verdict(f, reading_of("kitchen-1", 2), token, NOW, &v);
    snprintf(f->cfg.security.master_key, sizeof f->cfg.security.master_key, "%s",
             "ff0102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f");
    open_auth(f, "accept"); /* logs the unreadable key */
    fflush(stderr);
    size_t len;
    char *log = slurp(f->log_path, &len);
    assert_non_null(strstr(log, "auth.key_unreadable")); /* logging did happen */
    char text[DEVKEY_TEXT_LEN];
    devkey_format(key, text);
    assert_false(contains(log, len, text, strlen(text)));
    assert_false(contains(log, len, key, DEVKEY_LEN));
    assert_false(contains(log, len, token, strlen(token)));
    assert_false(contains(log, len, MASTER_HEX, strlen(MASTER_HEX)));
    free(log);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_master_key_forms),
        cmocka_unit_test_setup_teardown(test_seal_open, setup, teardown),
        cmocka_unit_test_setup_teardown(test_store_versions_rotation_revocation, setup, teardown),
        cmocka_unit_test_setup_teardown(test_signed_verdicts, setup, teardown),
        cmocka_unit_test_setup_teardown(test_unsigned_policies, setup, teardown),
        cmocka_unit_test_setup_teardown(test_bearer_tokens, setup, teardown),
        cmocka_unit_test_setup_teardown(test_rotation_overlap_and_revocation, setup, teardown),
        cmocka_unit_test_setup_teardown(test_wrong_master_key, setup, teardown),
        cmocka_unit_test_setup_teardown(test_many_credentials, setup, teardown),
        cmocka_unit_test_setup_teardown(test_reload_under_readers, setup, teardown),
        cmocka_unit_test_setup_teardown(test_no_secret_in_log, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
