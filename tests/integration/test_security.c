/* test_security.c — device identity and message integrity end to end: a real canaryd with
 * security.unsigned = reject, a master key in a 0600 file and an admin token; devices
 * provisioned with the real `canary device` CLI; signed readings (JWS HS256) accepted;
 * altered, wrongly keyed, alg-none, replayed, stripped and unsigned ones refused with the
 * right status and code and stored as security events; bearer tokens; rotation overlap;
 * revocation; `canary simulate --sign`; and no key or token in canaryd's log. */
#include "harness.h"
#include "verify/jws.h"

#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#define ADMIN_TOKEN "test-admin-token-0123456789abcdef"
#define MASTER_KEY  "8d1e0f5c2a7b4e6f9a3c1d2e5f7a8b9c0d1e2f3a4b5c6d7e8f9a0b1c2d3e4f5a"

static char master_file[160], set_master[200];

static int start(void **state)
{
    struct daemon *d = calloc(1, sizeof *d);
    setenv("CANARY_API_ADMIN_TOKEN", ADMIN_TOKEN, 1); /* canaryd's and the CLI's */
    daemon_init(d, "--set", "security.unsigned=reject", "--log-level", "debug", NULL);
    /* The master key from a 0600 file (security.master_key_file). */
    snprintf(master_file, sizeof master_file, "%s/master.key", d->dir);
    int fd = open(master_file, O_WRONLY | O_CREAT | O_TRUNC, 0600);
    assert_true(fd >= 0);
    assert_int_equal(write(fd, MASTER_KEY "\n", strlen(MASTER_KEY) + 1),
                     (ssize_t)strlen(MASTER_KEY) + 1);
    close(fd);
    snprintf(set_master, sizeof set_master, "security.master_key_file=%s", master_file);
    int n = 0;
    while (d->extra[n] != NULL)
        n++;
    d->extra[n] = "--set";
    d->extra[n + 1] = set_master;
    d->extra[n + 2] = NULL;
    daemon_start(d);
    *state = d;
    return 0;
}

static int stop(void **state)
{
    struct daemon *d = *state;
    assert_int_equal(daemon_stop(d, SIGTERM), 0);
    daemon_cleanup(d);
    free(d);
    return 0;
}

/* Runs the canary CLI with args (NULL-terminated); its stdout goes to out (cap bytes).
 * Returns the exit status. */
static int run_cli(char *out, size_t cap, const char *const *args)
{
    int pipefd[2];
    assert_int_equal(pipe(pipefd), 0);
    pid_t pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        dup2(pipefd[1], 1);
        close(pipefd[0]);
        close(pipefd[1]);
        const char *argv[32] = {"canary"};
        int n = 1;
        for (; args[n - 1] != NULL && n < 31; n++)
            argv[n] = args[n - 1];
        argv[n] = NULL;
        execv(CANARY_CLI_PATH, (char *const *)argv);
        _exit(127);
    }
    close(pipefd[1]);
    size_t len = 0;
    ssize_t r;
    while (len + 1 < cap && (r = read(pipefd[0], out + len, cap - 1 - len)) > 0)
        len += (size_t)r;
    out[len] = '\0';
    close(pipefd[0]);
    int status;
    waitpid(pid, &status, 0);
    return WIFEXITED(status) ? WEXITSTATUS(status) : 128;
}

/* `canary device <args...>` against d; the secret printed after "key: " or "token: ". */
static int device_cmd(struct daemon *d, char *secret, size_t cap, const char *a1, const char *a2,
                      const char *a3, const char *a4, const char *a5)
{
    const char *args[] = {"device", a1, a2, "--url", d->base_url, a3, a4, a5, NULL};
    char out[4096];
    int rc = run_cli(out, sizeof out, args);
    if (secret != NULL) {
        secret[0] = '\0';
        const char *k = strstr(out, "key: ");
        const char *t = strstr(out, "token: ");
        const char *p = k != NULL ? k + 5 : t != NULL ? t + 7 : NULL;
        if (p != NULL)
            snprintf(secret, cap, "%.*s", (int)strcspn(p, "\n"), p);
    }
    return rc;
}

static void key_bytes(const char *text, uint8_t key[32])
{
    assert_int_equal(strlen(text), 43);
    assert_int_equal(b64url_decode(text, 43, key, 32), 32);
}

static const char *reading(const char *device, int seq, double gas)
{
    static char buf[256];
    snprintf(buf, sizeof buf,
             "{\"device\":\"%s\",\"seq\":%d,\"ts\":%lld,\"values\":{\"gas_ppm\":%g}}", device, seq,
             (long long)now_ms(), gas);
    return buf;
}

static char *signed_reading(const char *kid, const char *device, int seq, const uint8_t key[32])
{
    static char tok[1024];
    const char *r = reading(device, seq, 410);
    assert_true(jws_sign_hs256(kid, r, strlen(r), key, 32, tok, sizeof tok) > 0);
    return tok;
}

/* POSTs body with content type; returns the status and the error code ("" when none). */
static long post(struct daemon *d, const char *ct, const char *body, const char *bearer, char *code,
                 size_t cap)
{
    char auth[256];
    snprintf(auth, sizeof auth, "Authorization: Bearer %s", bearer ? bearer : "");
    const char *headers[] = {bearer ? auth : NULL, NULL};
    struct http_response r;
    assert_int_equal(
        http_call_with(d, "POST", "/api/v1/ingest", headers, ct, body, strlen(body), &r), 0);
    cJSON *j = cJSON_Parse(r.body ? r.body : "");
    const char *c = j ? json_error_code(j) : NULL;
    snprintf(code, cap, "%s", c ? c : "");
    cJSON_Delete(j);
    long status = r.status;
    http_response_free(&r);
    return status;
}

#define EXPECT(d, ct, body, bearer, want_status, want_code)                                        \
    do {                                                                                           \
        char code_[64];                                                                            \
        long st_ = post(d, ct, body, bearer, code_, sizeof code_);                                 \
        if (st_ != (want_status) || strcmp(code_, want_code) != 0)                                 \
            fail_msg("%s:%d: got %ld %s, want %d %s", __FILE__, __LINE__, st_, code_,              \
                     (int)(want_status), want_code);                                               \
    } while (0)

struct event_wait {
    struct daemon *d;
    const char *kind;
};

static bool event_stored(void *arg)
{
    struct event_wait *w = arg;
    char path[160];
    snprintf(path, sizeof path, "/api/v1/events?category=security&kind=%s", w->kind);
    cJSON *j = NULL;
    long st = http_get_json(w->d, path, &j);
    const cJSON *arr = cJSON_GetObjectItemCaseSensitive(j, "events");
    bool ok = st == 200 && cJSON_GetArraySize(arr) > 0;
    cJSON_Delete(j);
    return ok;
}

static void expect_event(struct daemon *d, const char *kind)
{
    struct event_wait w = {d, kind};
    if (!wait_until(event_stored, &w, 5000))
        fail_msg("no security event of kind %s was stored", kind);
}

static double stat_of(struct daemon *d, const char *path)
{
    cJSON *j;
    assert_int_equal(http_get_json(d, "/api/v1/stats", &j), 200);
    double v = json_number(j, path);
    cJSON_Delete(j);
    return v;
}

static void test_signed_ingest_and_rejections(void **state)
{
    struct daemon *d = *state;
    char secret[128];
    assert_int_equal(
        device_cmd(d, secret, sizeof secret, "add", "kitchen-1", "--name", "Kitchen", NULL), 0);
    uint8_t key[32], wrong[32];
    key_bytes(secret, key);
    memcpy(wrong, key, 32);
    wrong[0] ^= 1;

    /* Signed: accepted, with Content-Type application/jose and detected without. */
    EXPECT(d, "application/jose", signed_reading("kitchen-1", "kitchen-1", 1, key), NULL, 200, "");
    EXPECT(d, "application/json", signed_reading("kitchen-1", "kitchen-1", 2, key), NULL, 200, "");
    assert_true(stat_of(d, "security.signed_accepted") == 2);

    /* Replay of a captured message: a duplicate, recorded as a replay. */
    char captured[1024];
    snprintf(captured, sizeof captured, "%s", signed_reading("kitchen-1", "kitchen-1", 3, key));
    EXPECT(d, "application/jose", captured, NULL, 200, "");
    EXPECT(d, "application/jose", captured, NULL, 409, "duplicate");
    expect_event(d, "replay");

    /* Altered payload under the original signature. */
    char altered[1024];
    snprintf(altered, sizeof altered, "%s", signed_reading("kitchen-1", "kitchen-1", 4, key));
    char *p = strchr(altered, '.') + 8;
    *p = *p == 'A' ? 'B' : 'A';
    EXPECT(d, "application/jose", altered, NULL, 401, "bad_signature");
    /* Wrong key; alg none; another device's reading under this kid; unknown kid. */
    EXPECT(d, "application/jose", signed_reading("kitchen-1", "kitchen-1", 5, wrong), NULL, 401,
           "bad_signature");
    char none[1024];
    const char *hdr = "{\"alg\":\"none\",\"kid\":\"kitchen-1\"}";
    long a = b64url_encode(hdr, strlen(hdr), none, sizeof none);
    none[a] = '.';
    const char *r = reading("kitchen-1", 6, 0);
    long b = b64url_encode(r, strlen(r), none + a + 1, sizeof none - (size_t)a - 1);
    snprintf(none + a + 1 + b, sizeof none - (size_t)(a + 1 + b), ".%s",
             "dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk");
    EXPECT(d, "application/jose", none, NULL, 401, "alg_none");
    EXPECT(d, "application/jose", signed_reading("kitchen-1", "kitchen-2", 7, key), NULL, 403,
           "device_mismatch");
    EXPECT(d, "application/jose", signed_reading("ghost-1", "ghost-1", 1, key), NULL, 401,
           "unknown_key");
    /* Stripped signature (plain JSON from a device with a key); unsigned under reject. */
    EXPECT(d, "application/json", reading("kitchen-1", 8, 0), NULL, 401, "signature_required");
    EXPECT(d, "application/json", reading("plain-1", 1, 0), NULL, 401, "unsigned");
    EXPECT(d, "text/plain", "env,device=plain-1 gas_ppm=1,seq=2i", NULL, 401, "unsigned");
    EXPECT(d, "application/jose", "eyJhbGciOiJIUzI1NiJ9.e30.e30.e30", NULL, 401, "bad_format");
    /* A captured message held back past the timestamp window: stale. */
    char stale[256], stale_tok[1024];
    snprintf(stale, sizeof stale,
             "{\"device\":\"kitchen-1\",\"seq\":9,\"ts\":%lld,\"values\":{\"gas_ppm\":1}}",
             (long long)(now_ms() - 8LL * 24 * 3600 * 1000));
    assert_true(jws_sign_hs256("kitchen-1", stale, strlen(stale), key, 32, stale_tok,
                               sizeof stale_tok) > 0);
    EXPECT(d, "application/jose", stale_tok, NULL, 400, "invalid_field");
    expect_event(d, "stale");

    const char *kinds[] = {"bad_signature",      "alg_none", "device_mismatch", "unknown_key",
                           "signature_required", "unsigned", "bad_format"};
    for (size_t i = 0; i < sizeof kinds / sizeof kinds[0]; i++)
        expect_event(d, kinds[i]);
    assert_true(stat_of(d, "security.rejected") >= 9);
    /* Nothing refused was stored: kitchen-1 has exactly readings 1, 2, 3. */
    assert_true(stat_of(d, "counters.readings_accepted") == 3);
}

static void test_bearer_token(void **state)
{
    struct daemon *d = *state;
    char token[128], other[128];
    assert_int_equal(device_cmd(d, token, sizeof token, "add", "porch-1", "--token", NULL, NULL),
                     0);
    assert_int_equal(device_cmd(d, other, sizeof other, "add", "porch-2", "--token", NULL, NULL),
                     0);
    assert_memory_equal(token, "cnt_", 4);
    EXPECT(d, "application/json", reading("porch-1", 1, 5), token, 200, "");
    EXPECT(d, "text/plain", "env,device=porch-1 gas_ppm=1,seq=2i", token, 200, "");
    EXPECT(d, "application/json", reading("porch-1", 3, 5), other, 401, "bad_token");
    EXPECT(d, "application/json", reading("porch-1", 3, 5), "cnt_guessed", 401, "bad_token");
    EXPECT(d, "application/json", reading("porch-1", 3, 5), NULL, 401, "signature_required");
    expect_event(d, "bad_token");
    assert_true(stat_of(d, "security.bearer_accepted") == 2);
}

static void test_rotation_overlap_and_revoke(void **state)
{
    struct daemon *d = *state;
    char k1[128], k2[128];
    assert_int_equal(device_cmd(d, k1, sizeof k1, "add", "boiler-1", NULL, NULL, NULL), 0);
    uint8_t old_key[32], new_key[32];
    key_bytes(k1, old_key);
    EXPECT(d, "application/jose", signed_reading("boiler-1", "boiler-1", 1, old_key), NULL, 200,
           "");
    assert_int_equal(device_cmd(d, k2, sizeof k2, "rotate-key", "boiler-1", "--overlap", "2", NULL),
                     0);
    key_bytes(k2, new_key);
    assert_string_not_equal(k1, k2);
    /* During the overlap both keys work. */
    EXPECT(d, "application/jose", signed_reading("boiler-1", "boiler-1", 2, old_key), NULL, 200,
           "");
    EXPECT(d, "application/jose", signed_reading("boiler-1", "boiler-1", 3, new_key), NULL, 200,
           "");
    char out[4096];
    const char *show[] = {"device", "show", "boiler-1", "--url", d->base_url, NULL};
    assert_int_equal(run_cli(out, sizeof out, show), 0);
    assert_non_null(strstr(out, "overlap"));
    assert_non_null(strstr(out, "active"));
    assert_null(strstr(out, k1)); /* show never prints a secret */
    assert_null(strstr(out, k2));
    usleep(2200 * 1000);
    EXPECT(d, "application/jose", signed_reading("boiler-1", "boiler-1", 4, old_key), NULL, 401,
           "expired_key");
    EXPECT(d, "application/jose", signed_reading("boiler-1", "boiler-1", 5, new_key), NULL, 200,
           "");
    /* Revocation: nothing from the device is accepted any more. */
    const char *revoke[] = {"device", "revoke", "boiler-1", "--url", d->base_url, NULL};
    assert_int_equal(run_cli(out, sizeof out, revoke), 0);
    assert_non_null(strstr(out, "revoked"));
    EXPECT(d, "application/jose", signed_reading("boiler-1", "boiler-1", 6, new_key), NULL, 403,
           "revoked");
    EXPECT(d, "application/json", reading("boiler-1", 7, 1), NULL, 403, "revoked");
    expect_event(d, "expired_key");
    expect_event(d, "revoked");
    expect_event(d, "key_created");
    expect_event(d, "key_rotated");
    expect_event(d, "credentials_revoked");
}

static void test_admin_endpoints_need_the_token(void **state)
{
    struct daemon *d = *state;
    assert_int_equal(http_post_json(d, "/api/v1/devices", "{\"id\":\"lab-1\"}", NULL), 401);
    const char *headers[] = {"Authorization: Bearer " ADMIN_TOKEN, NULL};
    struct http_response r;
    assert_int_equal(http_call_with(d, "POST", "/api/v1/devices", headers, "application/json",
                                    "{\"id\":\"lab-1\"}", 14, &r),
                     0);
    assert_int_equal(r.status, 201);
    http_response_free(&r);
    assert_int_equal(http_post_json(d, "/api/v1/devices/lab-1/keys", "{}", NULL), 401);
    const char *wrong[] = {"Authorization: Bearer nope", NULL};
    assert_int_equal(http_call_with(d, "POST", "/api/v1/devices/lab-1/keys", wrong,
                                    "application/json", "{}", 2, &r),
                     0);
    assert_int_equal(r.status, 401);
    http_response_free(&r);
    assert_int_equal(http_call_with(d, "POST", "/api/v1/devices/nobody/keys", headers,
                                    "application/json", "{}", 2, &r),
                     0);
    assert_int_equal(r.status, 404);
    http_response_free(&r);
    assert_int_equal(http_call_with(d, "POST", "/api/v1/devices/lab-1/keys", headers,
                                    "application/json", "{\"kind\":\"rsa\"}", 14, &r),
                     0);
    assert_int_equal(r.status, 400);
    http_response_free(&r);
    /* The key is in the 201 answer once; GET lists versions only. */
    assert_int_equal(http_call_with(d, "POST", "/api/v1/devices/lab-1/keys", headers,
                                    "application/json", "{}", 2, &r),
                     0);
    assert_int_equal(r.status, 201);
    cJSON *j = cJSON_Parse(r.body);
    const char *key = cJSON_GetObjectItemCaseSensitive(j, "key")->valuestring;
    assert_int_equal(strlen(key), 43);
    cJSON *list = NULL;
    assert_int_equal(http_get_json(d, "/api/v1/devices/lab-1/keys", &list), 200);
    char *text = cJSON_PrintUnformatted(list);
    assert_null(strstr(text, key));
    assert_non_null(strstr(text, "\"state\":\"active\""));
    free(text);
    cJSON_Delete(list);
    cJSON_Delete(j);
    http_response_free(&r);
}

static void test_simulate_sign(void **state)
{
    struct daemon *d = *state;
    char keys[200];
    snprintf(keys, sizeof keys, "%s/sim.keys", d->dir);
    char secret[128];
    assert_int_equal(
        device_cmd(d, secret, sizeof secret, "add", "sim-0001", "--keys-out", keys, NULL), 0);
    assert_int_equal(
        device_cmd(d, secret, sizeof secret, "add", "sim-0002", "--keys-out", keys, NULL), 0);
    double before = stat_of(d, "security.signed_accepted");
    char out[8192];
    const char *sim[] = {"simulate",   "--devices", "2",       "--rate",  "4",
                         "--duration", "1.5",       "--drain", "5",       "--url",
                         d->base_url,  "--sign",    keys,      "--quiet", NULL};
    assert_int_equal(run_cli(out, sizeof out, sim), 0);
    double after = stat_of(d, "security.signed_accepted");
    assert_true(after - before >= 8);
    /* Unsigned simulation of the same devices is refused. */
    const char *plain[] = {"simulate",   "--devices", "1",       "--rate", "4",
                           "--duration", "0.5",       "--drain", "1",      "--url",
                           d->base_url,  "--quiet",   NULL};
    run_cli(out, sizeof out, plain);
    expect_event(d, "signature_required");
}

/* A canaryd without a master key can give tokens but not keys (409); one without an admin
 * token manages no credentials at all (403). */
static void test_without_master_key_or_admin_token(void **state)
{
    (void)state;
    struct daemon d2;
    daemon_init(&d2, NULL);
    daemon_start(&d2);
    const char *headers[] = {"Authorization: Bearer " ADMIN_TOKEN, NULL};
    struct http_response r;
    assert_int_equal(http_call_with(&d2, "POST", "/api/v1/devices", headers, "application/json",
                                    "{\"id\":\"k-1\"}", 12, &r),
                     0);
    assert_int_equal(r.status, 201);
    http_response_free(&r);
    assert_int_equal(http_call_with(&d2, "POST", "/api/v1/devices/k-1/keys", headers,
                                    "application/json", "{}", 2, &r),
                     0);
    assert_int_equal(r.status, 409);
    assert_non_null(strstr(r.body, "master_key_missing"));
    http_response_free(&r);
    assert_int_equal(http_call_with(&d2, "POST", "/api/v1/devices/k-1/keys", headers,
                                    "application/json", "{\"kind\":\"token\"}", 16, &r),
                     0);
    assert_int_equal(r.status, 201);
    http_response_free(&r);
    /* The default policy (accept) still takes unsigned readings of devices without one. */
    assert_int_equal(http_post_json(&d2, "/api/v1/ingest", reading("free-1", 1, 3), NULL), 200);
    assert_int_equal(daemon_stop(&d2, SIGTERM), 0);
    daemon_cleanup(&d2);

    unsetenv("CANARY_API_ADMIN_TOKEN");
    struct daemon d3;
    daemon_init(&d3, NULL);
    daemon_start(&d3);
    setenv("CANARY_API_ADMIN_TOKEN", ADMIN_TOKEN, 1);
    assert_int_equal(http_post_json(&d3, "/api/v1/devices", "{\"id\":\"k-2\"}", NULL), 201);
    cJSON *j = NULL;
    assert_int_equal(http_post_json(&d3, "/api/v1/devices/k-2/keys", "{}", &j), 403);
    assert_string_equal(json_error_code(j), "admin_token_required");
    cJSON_Delete(j);
    assert_int_equal(http_post_json(&d3, "/api/v1/devices/k-2/revoke", "{}", NULL), 403);
    assert_int_equal(daemon_stop(&d3, SIGTERM), 0);
    daemon_cleanup(&d3);
}

struct flag_wait {
    struct daemon *d;
    const char *device;
    bool want; /* the stored gas_ppm value carries "unsigned" */
};

/* True once the device's newest stored reading exists and its gas_ppm value carries the
 * "unsigned" flag exactly when w->want says so. */
static bool newest_reading_flag_is(void *arg)
{
    struct flag_wait *w = arg;
    char path[160];
    snprintf(path, sizeof path, "/api/v1/devices/%s/readings?limit=1", w->device);
    cJSON *j = NULL;
    if (http_get_json(w->d, path, &j) != 200) {
        cJSON_Delete(j);
        return false;
    }
    const cJSON *r = cJSON_GetArrayItem(cJSON_GetObjectItemCaseSensitive(j, "readings"), 0);
    const cJSON *v =
        cJSON_GetObjectItemCaseSensitive(cJSON_GetObjectItemCaseSensitive(r, "values"), "gas_ppm");
    const cJSON *flags = cJSON_GetObjectItemCaseSensitive(v, "flags");
    bool has = false, any = cJSON_IsArray(flags);
    const cJSON *f;
    cJSON_ArrayForEach(f, flags)
    {
        has |= cJSON_IsString(f) && strcmp(f->valuestring, "unsigned") == 0;
    }
    cJSON_Delete(j);
    return any && has == w->want;
}

/* security.unsigned = flag: an unsigned reading is stored, marked "unsigned" on every value
 * (kept through the detect stage), counted and recorded; a signed one is not marked. */
static void test_unsigned_flag_marks_the_stored_reading(void **state)
{
    (void)state;
    struct daemon d2;
    daemon_init(&d2, "--set", "security.unsigned=flag", "--set", set_master, NULL);
    daemon_start(&d2);
    assert_int_equal(http_post_json(&d2, "/api/v1/ingest", reading("flag-1", 1, 412), NULL), 200);
    struct flag_wait w = {&d2, "flag-1", true};
    if (!wait_until(newest_reading_flag_is, &w, 5000))
        fail_msg("the unsigned reading was not stored with the flag \"unsigned\"");
    expect_event(&d2, "unsigned_reading");
    assert_true(stat_of(&d2, "security.unsigned_flagged") >= 1);

    /* A device with a key: its signed readings are not marked. */
    char key_text[64];
    assert_int_equal(device_cmd(&d2, key_text, sizeof key_text, "add", "flag-2", NULL, NULL, NULL),
                     0);
    uint8_t key[32];
    key_bytes(key_text, key);
    EXPECT(&d2, "application/jose", signed_reading("flag-2", "flag-2", 1, key), NULL, 200, "");
    struct flag_wait w2 = {&d2, "flag-2", false};
    if (!wait_until(newest_reading_flag_is, &w2, 5000))
        fail_msg("the signed reading is missing or marked \"unsigned\"");
    assert_int_equal(daemon_stop(&d2, SIGTERM), 0);
    daemon_cleanup(&d2);
}

/* Last: after every test above, canaryd's log holds no key, token or the master key. */
static void test_no_secret_in_log(void **state)
{
    struct daemon *d = *state;
    char k[128], t[128];
    assert_int_equal(device_cmd(d, k, sizeof k, "add", "log-1", NULL, NULL, NULL), 0);
    assert_int_equal(device_cmd(d, t, sizeof t, "add", "log-2", "--token", NULL, NULL), 0);
    uint8_t key[32];
    key_bytes(k, key);
    EXPECT(d, "application/jose", signed_reading("log-1", "log-1", 1, key), NULL, 200, "");
    EXPECT(d, "application/json", reading("log-2", 1, 1), t, 200, "");
    EXPECT(d, "application/json", reading("log-2", 2, 1), "cnt_wrong", 401, "bad_token");
    FILE *fp = fopen(d->log, "r");
    assert_non_null(fp);
    static char log[1 << 20];
    size_t n = fread(log, 1, sizeof log - 1, fp);
    log[n] = '\0';
    fclose(fp);
    assert_non_null(strstr(log, "api.device_key_created")); /* creations are logged... */
    assert_null(strstr(log, k));                            /* ...without the secret */
    assert_null(strstr(log, t));
    assert_null(strstr(log, MASTER_KEY));
    assert_null(strstr(log, ADMIN_TOKEN));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_signed_ingest_and_rejections),
        cmocka_unit_test(test_bearer_token),
        cmocka_unit_test(test_rotation_overlap_and_revoke),
        cmocka_unit_test(test_admin_endpoints_need_the_token),
        cmocka_unit_test(test_simulate_sign),
        cmocka_unit_test(test_without_master_key_or_admin_token),
        cmocka_unit_test(test_unsigned_flag_marks_the_stored_reading),
        cmocka_unit_test(test_no_secret_in_log),
    };
    return cmocka_run_group_tests(tests, start, stop);
}
