/* test_config.c — unit tests of canaryd's configuration (src/core/config.c): defaults, every
 * key type, per-metric and per-device limit overrides, validation, the file and environment
 * loaders, the rules for secrets, and that the committed example file
 * (etc/canary.conf.example) and docs/CONFIGURATION.md match what the key table generates.
 *
 * Files live in a fresh mkdtemp directory per test, removed afterwards. Tests that set
 * environment variables unset them before they finish. */
#include "core/config.h"
#include "core/error.h"
#include "core/metric.h"

#include <errno.h>
#include <math.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

struct fixture {
    char dir[64];
    struct canary_config cfg;
    char err[1024];
};

static int setup(void **state)
{
    struct fixture *fx = calloc(1, sizeof *fx);
    if (fx == NULL)
        return -1;
    snprintf(fx->dir, sizeof fx->dir, "/tmp/canary-config-XXXXXX");
    if (mkdtemp(fx->dir) == NULL) {
        free(fx);
        return -1;
    }
    config_init(&fx->cfg);
    *state = fx;
    return 0;
}

static int teardown(void **state)
{
    struct fixture *fx = *state;
    config_free(&fx->cfg);
    char cmd[128];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", fx->dir);
    int rc = system(cmd);
    free(fx);
    return rc == 0 ? 0 : -1;
}

/* Writes content to dir/name with the given mode (set with chmod, whatever the umask). The
 * path goes to path[0..len). */
static void make_file(const struct fixture *fx, const char *name, const char *content, mode_t mode,
                      char *path, size_t len)
{
    snprintf(path, len, "%s/%s", fx->dir, name);
    FILE *f = fopen(path, "w");
    assert_non_null(f);
    assert_int_equal(fwrite(content, 1, strlen(content), f), strlen(content));
    assert_int_equal(fclose(f), 0);
    assert_int_equal(chmod(path, mode), 0);
}

/* Returns config_write()'s output as a malloc'ed string. */
static char *written(const struct canary_config *cfg, bool annotate)
{
    char *buf = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&buf, &len);
    assert_non_null(f);
    config_write(cfg, f, annotate);
    assert_int_equal(fclose(f), 0);
    return buf;
}

static char *markdown(void)
{
    char *buf = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&buf, &len);
    assert_non_null(f);
    config_write_markdown(f);
    assert_int_equal(fclose(f), 0);
    return buf;
}

/* Reads a whole file; NULL when it cannot be read. */
static char *slurp(const char *path)
{
    FILE *f = fopen(path, "rb");
    if (f == NULL)
        return NULL;
    char *buf = NULL;
    size_t len = 0, cap = 0;
    char chunk[4096];
    size_t n;
    while ((n = fread(chunk, 1, sizeof chunk, f)) > 0) {
        if (len + n + 1 > cap) {
            cap = (len + n + 1) * 2;
            buf = realloc(buf, cap);
            assert_non_null(buf);
        }
        memcpy(buf + len, chunk, n);
        len += n;
    }
    fclose(f);
    if (buf == NULL) {
        buf = malloc(1);
        assert_non_null(buf);
    }
    buf[len] = '\0';
    return buf;
}

static void expect_set(struct fixture *fx, const char *key, const char *value)
{
    int rc = config_set(&fx->cfg, key, value, CONFIG_SRC_FILE, fx->err, sizeof fx->err);
    if (rc != CANARY_OK)
        fail_msg("%s=%s: rc %d: %s", key, value, rc, fx->err);
}

/* config_set must fail with rc and exactly the message err. */
static void expect_set_error(struct fixture *fx, const char *key, const char *value, int rc,
                             const char *err)
{
    fx->err[0] = '\0';
    int got = config_set(&fx->cfg, key, value, CONFIG_SRC_FILE, fx->err, sizeof fx->err);
    if (got != rc)
        fail_msg("%s=%s: rc %d (want %d): %s", key, value, got, rc, fx->err);
    assert_string_equal(fx->err, err);
}

static void expect_valid(struct fixture *fx)
{
    int rc = config_validate(&fx->cfg, fx->err, sizeof fx->err);
    if (rc != CANARY_OK)
        fail_msg("config_validate: rc %d: %s", rc, fx->err);
}

static void expect_invalid(struct fixture *fx, const char *err)
{
    fx->err[0] = '\0';
    assert_int_equal(config_validate(&fx->cfg, fx->err, sizeof fx->err), CANARY_EINVAL);
    assert_string_equal(fx->err, err);
}

static void assert_limit(double got, double want)
{
    if (isnan(want) ? !isnan(got) : got != want)
        fail_msg("limit: got %.17g, want %.17g", got, want);
}

/* Returns the source directory from CTest's environment, or fails the test. */
static const char *source_dir(void)
{
    const char *dir = getenv("CANARY_SOURCE_DIR");
    if (dir == NULL || dir[0] == '\0')
        fail_msg("CANARY_SOURCE_DIR is not set; run this test through ctest, or set it to the "
                 "repository root");
    return dir;
}

/* ---- defaults ---- */

static void test_defaults(void **state)
{
    struct fixture *fx = *state;
    const struct canary_config *c = &fx->cfg;
    assert_string_equal(c->http.listen, "127.0.0.1:8080");
    assert_int_equal(c->http.threads, 0);
    assert_int_equal(c->http.max_body_bytes, 4194304);
    assert_false(c->http.request_log);
    assert_int_equal(c->ingest.max_batch, 10000);
    assert_int_equal(c->ingest.max_metrics, 32);
    assert_int_equal(c->ingest.max_past_s, 604800);
    assert_int_equal(c->ingest.max_future_s, 300);
    assert_true(c->ingest.strict_fields);
    assert_true(c->ingest.auto_register);
    assert_int_equal(c->ingest.seq_window, 64);
    assert_string_equal(c->store.path, "./var/canary.db");
    assert_string_equal(c->store.synchronous, "full");
    assert_int_equal(c->devices.stale_after_s, 60);
    assert_int_equal(c->devices.offline_after_s, 300);
    assert_true(c->detect.level_alpha == 0.005);
    assert_true(c->detect.anomaly_threshold == 0.5);
    assert_string_equal(c->alerts.anomaly_severity, "low");
    assert_string_equal(c->alerts.offline_severity, "medium");
    assert_string_equal(c->log.level, "info");
    assert_string_equal(c->api.admin_token, "");
    assert_int_equal(c->n_overrides, 0);
    assert_null(c->overrides);
    expect_valid(fx);

    /* config_write shows the same values. */
    char *out = written(c, false);
    const char *lines[] = {"\n[http]\nlisten = 127.0.0.1:8080\n",
                           "\nthreads = 0\n",
                           "\nrequest_log = false\n",
                           "\n[ingest]\nmax_batch = 10000\n",
                           "\nstrict_fields = true\n",
                           "\nmax_past_s = 604800\n",
                           "\n[store]\npath = ./var/canary.db\nsynchronous = full\n",
                           "\nlevel_alpha = 0.005\n",
                           "\nanomaly_threshold = 0.5\n",
                           "\noffline_severity = medium\n",
                           "\n[log]\nlevel = info\n"};
    for (size_t k = 0; k < sizeof lines / sizeof *lines; k++) {
        if (strstr(out, lines[k]) == NULL)
            fail_msg("config_write output lacks '%s':\n%s", lines[k], out);
    }

    /* Every line written sets the key to the value it already has. */
    struct canary_config again;
    config_init(&again);
    char section[64] = "";
    char *save = NULL;
    for (char *line = strtok_r(out, "\n", &save); line != NULL;
         line = strtok_r(NULL, "\n", &save)) {
        if (line[0] == '[') {
            snprintf(section, sizeof section, "%.*s", (int)(strlen(line) - 2), line + 1);
            continue;
        }
        if (line[0] == '#')
            continue; /* secrets are written as comments: nothing to load back */
        char *eq = strstr(line, " = ");
        if (eq == NULL) {
            eq = strstr(line, " =");
            assert_non_null(eq);
            assert_int_equal(eq[2], '\0');
        }
        *eq = '\0';
        const char *value = eq[1] == '=' && eq[2] == ' ' ? eq + 3 : "";
        char key[128];
        snprintf(key, sizeof key, "%s.%s", section, line);
        int rc = config_set(&again, key, value, CONFIG_SRC_FILE, fx->err, sizeof fx->err);
        if (rc != CANARY_OK)
            fail_msg("%s = %s: %s", key, value, fx->err);
    }
    char *out2 = written(&again, false);
    char *out1 = written(c, false);
    assert_string_equal(out1, out2);
    free(out1);
    free(out2);
    config_free(&again);
    free(out);
}

/* ---- config_set by type ---- */

static void test_set_uint(void **state)
{
    struct fixture *fx = *state;
    expect_set(fx, "http.threads", "4");
    assert_int_equal(fx->cfg.http.threads, 4);
    expect_set(fx, "http.threads", "256");
    assert_int_equal(fx->cfg.http.threads, 256);
    expect_set(fx, "http.threads", "0");
    assert_int_equal(fx->cfg.http.threads, 0);
    expect_set(fx, "http.max_body_bytes", "1024");
    assert_int_equal(fx->cfg.http.max_body_bytes, 1024);
    expect_set(fx, "http.max_body_bytes", "1073741824");
    assert_int_equal(fx->cfg.http.max_body_bytes, 1073741824u);

    expect_set_error(fx, "http.threads", "257", CANARY_EINVAL,
                     "http.threads: 257 is outside [0, 256]");
    expect_set_error(fx, "http.max_body_bytes", "1023", CANARY_EINVAL,
                     "http.max_body_bytes: 1023 is outside [1024, 1073741824]");
    expect_set_error(fx, "http.max_body_bytes", "4294967296", CANARY_EINVAL,
                     "http.max_body_bytes: 4294967296 is outside [1024, 1073741824]");
    const char *not_numbers[] = {"-1",  "-0",   "",     "4x",
                                 "1.5", "0x10", "four", "99999999999999999999999"};
    char err[160];
    for (size_t k = 0; k < sizeof not_numbers / sizeof *not_numbers; k++) {
        snprintf(err, sizeof err, "http.threads: '%s' is not a non-negative integer",
                 not_numbers[k]);
        expect_set_error(fx, "http.threads", not_numbers[k], CANARY_EINVAL, err);
    }
    /* A negative number is refused however it is spelt. */
    assert_int_equal(
        config_set(&fx->cfg, "http.threads", " -1", CONFIG_SRC_FILE, fx->err, sizeof fx->err),
        CANARY_EINVAL);
    /* A refused value leaves the old one. */
    assert_int_equal(fx->cfg.http.threads, 0);
    assert_int_equal(fx->cfg.http.max_body_bytes, 1073741824u);
}

static void test_set_double(void **state)
{
    struct fixture *fx = *state;
    expect_set(fx, "detect.level_alpha", "0.5");
    assert_true(fx->cfg.detect.level_alpha == 0.5);
    expect_set(fx, "detect.level_alpha", "1");
    assert_true(fx->cfg.detect.level_alpha == 1.0);
    expect_set(fx, "detect.level_alpha", "1e-4");
    assert_true(fx->cfg.detect.level_alpha == 1e-4);
    expect_set(fx, "detect.z_half", "100");
    assert_true(fx->cfg.detect.z_half == 100.0);

    expect_set_error(fx, "detect.level_alpha", "0", CANARY_EINVAL,
                     "detect.level_alpha: 0 is outside [0.0001, 1]");
    expect_set_error(fx, "detect.level_alpha", "1.5", CANARY_EINVAL,
                     "detect.level_alpha: 1.5 is outside [0.0001, 1]");
    expect_set_error(fx, "detect.gap_factor", "-5", CANARY_EINVAL,
                     "detect.gap_factor: -5 is outside [1.5, 1000]");
    const char *not_numbers[] = {"", "abc", "nan", "NaN", "inf", "-inf", "1e999", "0.5x", "0,5"};
    char err[160];
    for (size_t k = 0; k < sizeof not_numbers / sizeof *not_numbers; k++) {
        snprintf(err, sizeof err, "detect.level_alpha: '%s' is not a finite number",
                 not_numbers[k]);
        expect_set_error(fx, "detect.level_alpha", not_numbers[k], CANARY_EINVAL, err);
    }
    assert_true(fx->cfg.detect.level_alpha == 1e-4);
}

static void test_set_bool(void **state)
{
    struct fixture *fx = *state;
    const char *yes[] = {"true", "yes", "on", "1"};
    const char *no[] = {"false", "no", "off", "0"};
    for (size_t k = 0; k < 4; k++) {
        expect_set(fx, "http.request_log", yes[k]);
        assert_true(fx->cfg.http.request_log);
        expect_set(fx, "http.request_log", no[k]);
        assert_false(fx->cfg.http.request_log);
    }
    expect_set(fx, "ingest.strict_fields", "false");
    assert_false(fx->cfg.ingest.strict_fields);
    expect_set(fx, "ingest.auto_register", "no");
    assert_false(fx->cfg.ingest.auto_register);

    const char *bad[] = {"", "maybe", "2", "y", "truee"};
    char err[160];
    for (size_t k = 0; k < sizeof bad / sizeof *bad; k++) {
        snprintf(err, sizeof err, "http.request_log: '%s' is not a boolean (true or false)",
                 bad[k]);
        expect_set_error(fx, "http.request_log", bad[k], CANARY_EINVAL, err);
    }
    assert_false(fx->cfg.http.request_log);
}

static void test_set_enum(void **state)
{
    struct fixture *fx = *state;
    expect_set(fx, "store.synchronous", "normal");
    assert_string_equal(fx->cfg.store.synchronous, "normal");
    expect_set(fx, "store.synchronous", "full");
    assert_string_equal(fx->cfg.store.synchronous, "full");
    const char *severities[] = {"info", "low", "medium", "high", "critical"};
    for (size_t k = 0; k < 5; k++) {
        expect_set(fx, "alerts.anomaly_severity", severities[k]);
        assert_string_equal(fx->cfg.alerts.anomaly_severity, severities[k]);
        expect_set(fx, "alerts.offline_severity", severities[k]);
        assert_string_equal(fx->cfg.alerts.offline_severity, severities[k]);
    }
    expect_set(fx, "alerts.offline_severity", "off");
    assert_string_equal(fx->cfg.alerts.offline_severity, "off");
    expect_set(fx, "log.level", "debug");
    assert_string_equal(fx->cfg.log.level, "debug");

    const char *bad[] = {"FULL", "ful", "fulll", "", "full|normal", "normal ", "|"};
    char err[160];
    for (size_t k = 0; k < sizeof bad / sizeof *bad; k++) {
        snprintf(err, sizeof err, "store.synchronous: '%s' is not one of full|normal", bad[k]);
        expect_set_error(fx, "store.synchronous", bad[k], CANARY_EINVAL, err);
    }
    expect_set_error(fx, "alerts.anomaly_severity", "off", CANARY_EINVAL,
                     "alerts.anomaly_severity: 'off' is not one of info|low|medium|high|critical");
    expect_set_error(fx, "log.level", "trace", CANARY_EINVAL,
                     "log.level: 'trace' is not one of debug|info|warn|error");
    assert_string_equal(fx->cfg.store.synchronous, "full");
    assert_string_equal(fx->cfg.log.level, "debug");
}

static void test_set_string(void **state)
{
    struct fixture *fx = *state;
    char value[CONFIG_PATH_MAX + 2];
    memset(value, 'a', sizeof value);
    value[CONFIG_STR_MAX - 1] = '\0';
    expect_set(fx, "http.listen", value);
    assert_int_equal(strlen(fx->cfg.http.listen), CONFIG_STR_MAX - 1);
    value[CONFIG_STR_MAX - 1] = 'a';
    value[CONFIG_STR_MAX] = '\0';
    expect_set_error(fx, "http.listen", value, CANARY_ELIMIT,
                     "http.listen: value is longer than 255 bytes");
    assert_int_equal(strlen(fx->cfg.http.listen), CONFIG_STR_MAX - 1);

    memset(value, 'p', sizeof value);
    value[CONFIG_PATH_MAX - 1] = '\0';
    expect_set(fx, "store.path", value);
    assert_int_equal(strlen(fx->cfg.store.path), CONFIG_PATH_MAX - 1);
    value[CONFIG_PATH_MAX - 1] = 'p';
    value[CONFIG_PATH_MAX] = '\0';
    expect_set_error(fx, "store.path", value, CANARY_ELIMIT,
                     "store.path: value is longer than 1023 bytes");
    expect_set(fx, "store.path", "/var/lib/canary/canary.db");
    assert_string_equal(fx->cfg.store.path, "/var/lib/canary/canary.db");
}

static void test_unknown_keys(void **state)
{
    struct fixture *fx = *state;
    expect_set_error(fx, "http.nope", "1", CANARY_EINVAL,
                     "unknown key 'http.nope' (canaryd --help-config lists every key)");
    expect_set_error(fx, "nosuch.listen", "1", CANARY_EINVAL,
                     "unknown key 'nosuch.listen' (canaryd --help-config lists every key)");
    expect_set_error(fx, "http.listen.x", "1", CANARY_EINVAL,
                     "unknown key 'http.listen.x' (canaryd --help-config lists every key)");
    expect_set_error(fx, "HTTP.LISTEN", "1", CANARY_EINVAL,
                     "unknown key 'HTTP.LISTEN' (canaryd --help-config lists every key)");
    /* The companion <key>_file exists for secrets only. */
    expect_set_error(fx, "http.listen_file", "/etc/passwd", CANARY_EINVAL,
                     "unknown key 'http.listen_file' (canaryd --help-config lists every key)");
    expect_set_error(fx, "api.admin_token_file_file", "/x", CANARY_EINVAL,
                     "unknown key 'api.admin_token_file_file' (canaryd --help-config lists every "
                     "key)");
    expect_set_error(fx, "http", "1", CANARY_EINVAL, "'http' is not a key (expected section.key)");
    expect_set_error(fx, "http.", "1", CANARY_EINVAL,
                     "'http.' is not a key (expected section.key)");
    expect_set_error(fx, ".listen", "1", CANARY_EINVAL,
                     "'.listen' is not a key (expected section.key)");
    expect_set_error(fx, "", "1", CANARY_EINVAL, "'' is not a key (expected section.key)");
    assert_string_equal(fx->cfg.http.listen, "127.0.0.1:8080");
}

/* ---- per-metric and per-device limits ---- */

static const struct config_limit_override *find(const struct canary_config *cfg, const char *device,
                                                const char *metric)
{
    for (size_t i = 0; i < cfg->n_overrides; i++) {
        if (strcmp(cfg->overrides[i].device, device) == 0 &&
            strcmp(cfg->overrides[i].metric, metric) == 0)
            return &cfg->overrides[i];
    }
    return NULL;
}

static void test_overrides(void **state)
{
    struct fixture *fx = *state;
    expect_set(fx, "metric.gas_ppm.warn_high", "800");
    const struct config_limit_override *o = find(&fx->cfg, "", "gas_ppm");
    assert_non_null(o);
    assert_int_equal(o->set, 1u << LIMIT_WARN_HIGH);
    assert_limit(o->limits.warn_high, 800);

    expect_set(fx, "device.kitchen-1.gas_ppm.crit_high", "3000");
    o = find(&fx->cfg, "kitchen-1", "gas_ppm");
    assert_non_null(o);
    assert_int_equal(o->set, 1u << LIMIT_CRIT_HIGH);
    assert_limit(o->limits.crit_high, 3000);

    /* Device ids may contain dots: the path is split from the right. */
    expect_set(fx, "device.site.b.floor-2:x.temperature_c.warn_low", "-40.5");
    o = find(&fx->cfg, "site.b.floor-2:x", "temperature_c");
    assert_non_null(o);
    assert_limit(o->limits.warn_low, -40.5);

    /* Every limit, and "off". */
    expect_set(fx, "metric.noise_db.warn_high", "off");
    expect_set(fx, "metric.noise_db.crit_high", "120");
    expect_set(fx, "metric.noise_db.warn_low", "-1e3");
    expect_set(fx, "metric.noise_db.crit_low", "off");
    expect_set(fx, "metric.noise_db.hysteresis", "0");
    expect_set(fx, "metric.noise_db.max_rate_per_min", "off");
    expect_set(fx, "metric.noise_db.flatline_count", "off");
    o = find(&fx->cfg, "", "noise_db");
    assert_non_null(o);
    assert_int_equal(o->set, (1u << LIMIT_FIELD_COUNT) - 1);
    struct metric_limits l;
    config_metric_limits(&fx->cfg, NULL, "noise_db", &l);
    assert_limit(l.warn_high, NAN);
    assert_limit(l.crit_high, 120);
    assert_limit(l.warn_low, -1000);
    assert_limit(l.crit_low, NAN);
    assert_limit(l.hysteresis, 0);
    assert_limit(l.max_rate_per_min, NAN);
    assert_int_equal(l.flatline_count, 0);
    expect_set(fx, "metric.noise_db.flatline_count", "12");
    expect_set(fx, "metric.noise_db.max_rate_per_min", "2.5");
    config_metric_limits(&fx->cfg, NULL, "noise_db", &l);
    assert_int_equal(l.flatline_count, 12);
    assert_limit(l.max_rate_per_min, 2.5);

    /* Setting a limit again replaces it; it does not add an override. */
    size_t n = fx->cfg.n_overrides;
    assert_int_equal(n, 4);
    expect_set(fx, "metric.gas_ppm.warn_high", "900");
    expect_set(fx, "metric.gas_ppm.hysteresis", "10");
    assert_int_equal(fx->cfg.n_overrides, n);
    o = find(&fx->cfg, "", "gas_ppm");
    assert_int_equal(o->set, (1u << LIMIT_WARN_HIGH) | (1u << LIMIT_HYSTERESIS));
    assert_limit(o->limits.warn_high, 900);

    /* Unknown metrics may have limits too. */
    expect_set(fx, "metric.my_widget_rpm.crit_high", "5000");
    config_metric_limits(&fx->cfg, "any", "my_widget_rpm", &l);
    assert_limit(l.crit_high, 5000);
    assert_limit(l.warn_high, NAN);
    assert_int_equal(l.flatline_count, 0);
}

static void test_override_errors(void **state)
{
    struct fixture *fx = *state;
    expect_set_error(fx, "metric.gas_ppm.warn", "1", CANARY_EINVAL,
                     "metric.gas_ppm.warn: unknown limit 'warn' (known: warn_high, crit_high, "
                     "warn_low, crit_low, hysteresis, max_rate_per_min, flatline_count)");
    expect_set_error(fx, "metric.gas_ppm", "1", CANARY_EINVAL,
                     "metric.gas_ppm: unknown limit 'gas_ppm' (known: warn_high, crit_high, "
                     "warn_low, crit_low, hysteresis, max_rate_per_min, flatline_count)");
    const char *bad_paths[] = {
        "metric.Gas.warn_high",
        "metric..warn_high",
        "metric.warn_high",
        "metric.a.b.warn_high",
        "metric.1gas.warn_high",
        "device.gas_ppm.warn_high",
        "device.warn_high",
        "device..gas_ppm.warn_high",
        "device.a/b.gas_ppm.warn_high",
        "device.a b.gas_ppm.warn_high",
        "device.-a.gas_ppm.warn_high",
        "device.kitchen-1.Gas.warn_high",
        "device.kitchen-1..warn_high",
        "device.k#.gas_ppm.warn_high",
    };
    char err[512];
    for (size_t k = 0; k < sizeof bad_paths / sizeof *bad_paths; k++) {
        snprintf(err, sizeof err,
                 "%s: expected metric.<metric>.<limit> or device.<device-id>.<metric>.<limit>",
                 bad_paths[k]);
        expect_set_error(fx, bad_paths[k], "1", CANARY_EINVAL, err);
    }
    /* A device id over the hard ceiling. */
    char key[300];
    snprintf(key, sizeof key, "device.%0*d.gas_ppm.warn_high", READING_MAX_ID_LEN + 1, 0);
    snprintf(err, sizeof err,
             "%s: expected metric.<metric>.<limit> or device.<device-id>.<metric>.<limit>", key);
    expect_set_error(fx, key, "1", CANARY_EINVAL, err);
    snprintf(key, sizeof key, "device.%0*d.gas_ppm.warn_high", READING_MAX_ID_LEN, 0);
    expect_set(fx, key, "1");

    /* Values. */
    const struct {
        const char *key, *value, *err;
    } bad_values[] = {
        {"metric.gas_ppm.warn_high", "abc",
         "metric.gas_ppm.warn_high: 'abc' is not a valid warn_high (a number, or off)"},
        {"metric.gas_ppm.warn_high", "nan",
         "metric.gas_ppm.warn_high: 'nan' is not a valid warn_high (a number, or off)"},
        {"metric.gas_ppm.crit_low", "",
         "metric.gas_ppm.crit_low: '' is not a valid crit_low (a number, or off)"},
        {"metric.gas_ppm.warn_high", "OFF",
         "metric.gas_ppm.warn_high: 'OFF' is not a valid warn_high (a number, or off)"},
        {"metric.gas_ppm.hysteresis", "-1",
         "metric.gas_ppm.hysteresis: '-1' is not a valid hysteresis (a number >= 0, or off)"},
        {"metric.gas_ppm.max_rate_per_min", "-0.5",
         "metric.gas_ppm.max_rate_per_min: '-0.5' is not a valid max_rate_per_min (a number >= "
         "0, or off)"},
        {"metric.gas_ppm.flatline_count", "5.5",
         "metric.gas_ppm.flatline_count: '5.5' is not a valid flatline_count (a number >= 0, or "
         "off)"},
        {"metric.gas_ppm.flatline_count", "-1",
         "metric.gas_ppm.flatline_count: '-1' is not a valid flatline_count (a number >= 0, or "
         "off)"},
        {"metric.gas_ppm.flatline_count", "1e9",
         "metric.gas_ppm.flatline_count: '1e9' is not a valid flatline_count (a number >= 0, or "
         "off)"},
        {"device.k.gas_ppm.crit_high", "1e999",
         "device.k.gas_ppm.crit_high: '1e999' is not a valid crit_high (a number, or off)"},
    };
    for (size_t k = 0; k < sizeof bad_values / sizeof bad_values[0]; k++)
        expect_set_error(fx, bad_values[k].key, bad_values[k].value, CANARY_EINVAL,
                         bad_values[k].err);
    /* Nothing but the valid long-id override was created. */
    assert_int_equal(fx->cfg.n_overrides, 1);
}

static void test_limits_precedence(void **state)
{
    struct fixture *fx = *state;
    const struct metric_info *gas = metric_lookup("gas_ppm");
    assert_non_null(gas);
    struct metric_limits l;
    config_metric_limits(&fx->cfg, "k1", "gas_ppm", &l);
    assert_limit(l.warn_high, gas->limits.warn_high);
    assert_limit(l.crit_high, gas->limits.crit_high);

    /* Device overrides set first: the order of the settings does not matter. */
    expect_set(fx, "device.k1.gas_ppm.crit_high", "3000");
    expect_set(fx, "device.k2.gas_ppm.warn_high", "off");
    expect_set(fx, "metric.gas_ppm.warn_high", "800");
    expect_set(fx, "metric.gas_ppm.crit_high", "4000");
    expect_set(fx, "device.k1.co_ppm.warn_high", "10");

    config_metric_limits(&fx->cfg, NULL, "gas_ppm", &l);
    assert_limit(l.warn_high, 800);
    assert_limit(l.crit_high, 4000);
    assert_limit(l.hysteresis, gas->limits.hysteresis);
    assert_limit(l.max_rate_per_min, gas->limits.max_rate_per_min);
    assert_int_equal(l.flatline_count, gas->limits.flatline_count);

    config_metric_limits(&fx->cfg, "k1", "gas_ppm", &l);
    assert_limit(l.warn_high, 800);
    assert_limit(l.crit_high, 3000);
    config_metric_limits(&fx->cfg, "k2", "gas_ppm", &l);
    assert_limit(l.warn_high, NAN);
    assert_limit(l.crit_high, 4000);
    config_metric_limits(&fx->cfg, "k3", "gas_ppm", &l);
    assert_limit(l.warn_high, 800);
    assert_limit(l.crit_high, 4000);
    /* Device ids are compared whole, not by prefix. */
    config_metric_limits(&fx->cfg, "k1x", "gas_ppm", &l);
    assert_limit(l.crit_high, 4000);

    const struct metric_info *co = metric_lookup("co_ppm");
    config_metric_limits(&fx->cfg, "k1", "co_ppm", &l);
    assert_limit(l.warn_high, 10);
    assert_limit(l.crit_high, co->limits.crit_high);
    config_metric_limits(&fx->cfg, "k2", "co_ppm", &l);
    assert_limit(l.warn_high, co->limits.warn_high);

    /* Unknown metrics without overrides have no limits. */
    config_metric_limits(&fx->cfg, "k1", "my_widget_rpm", &l);
    assert_limit(l.warn_high, NAN);
    assert_limit(l.crit_high, NAN);
    assert_limit(l.warn_low, NAN);
    assert_limit(l.crit_low, NAN);
    assert_limit(l.max_rate_per_min, NAN);
    assert_int_equal(l.flatline_count, 0);
}

/* ---- validation ---- */

static void test_validate(void **state)
{
    struct fixture *fx = *state;
    expect_valid(fx);

    expect_set(fx, "devices.offline_after_s", "60");
    expect_invalid(fx, "devices.offline_after_s (60) must be greater than stale_after_s (60)");
    expect_set(fx, "devices.offline_after_s", "30");
    expect_invalid(fx, "devices.offline_after_s (30) must be greater than stale_after_s (60)");
    expect_set(fx, "devices.offline_after_s", "61");
    expect_valid(fx);

    expect_set(fx, "ingest.max_batch", "1000000");
    expect_invalid(fx, "ingest.max_batch (1000000) must not exceed ingest.max_inflight (200000): "
                       "a full batch could never be admitted");
    expect_set(fx, "ingest.max_inflight", "1000000");
    expect_valid(fx);

    expect_set(fx, "store.path", "");
    expect_invalid(fx, "store.path must not be empty");
    expect_set(fx, "store.path", "x.db");
    expect_valid(fx);
}

static void test_validate_listen(void **state)
{
    struct fixture *fx = *state;
    const char *good[] = {"127.0.0.1:8080", "0.0.0.0:0", "10.1.2.3:65535",
                          "[::1]:8080",     "[::]:443",  "[fe80::1]:1"};
    for (size_t k = 0; k < sizeof good / sizeof *good; k++) {
        expect_set(fx, "http.listen", good[k]);
        expect_valid(fx);
    }
    const char *bad[] = {"localhost:8080",
                         "127.0.0.1",
                         "127.0.0.1:",
                         "127.0.0.1:65536",
                         "127.0.0.1:-1",
                         ":8080",
                         "[::1]",
                         "[::1]8080",
                         "[::1:8080",
                         "[]:80",
                         "1.2.3.4.5:80",
                         "256.0.0.1:80",
                         "127.0.0.1:80x",
                         "",
                         "127.0.0.1:99999999999999999999"};
    char err[400];
    for (size_t k = 0; k < sizeof bad / sizeof *bad; k++) {
        expect_set(fx, "http.listen", bad[k]);
        snprintf(err, sizeof err,
                 "http.listen: '%s' is not an address:port (e.g. 127.0.0.1:8080 or [::1]:8080)",
                 bad[k]);
        expect_invalid(fx, err);
    }

    char host[64];
    unsigned port = 1;
    assert_int_equal(config_parse_listen("[::1]:8080", host, sizeof host, &port), CANARY_OK);
    assert_string_equal(host, "::1");
    assert_int_equal(port, 8080);
    assert_int_equal(config_parse_listen("192.168.1.20:0", host, sizeof host, &port), CANARY_OK);
    assert_string_equal(host, "192.168.1.20");
    assert_int_equal(port, 0);
    /* A host that does not fit the caller's buffer. */
    assert_int_equal(config_parse_listen("192.168.1.20:80", host, 8, &port), CANARY_EINVAL);
}

/* "::1:8080" is itself a valid IPv6 address; the contract asks for [IPv6]:port so that the
 * port is never ambiguous ("fe80::1:8080" could mean fe80::1 port 8080 or fe80::1:8080). */
static void test_listen_unbracketed_ipv6_is_refused(void **state)
{
    struct fixture *fx = *state;
    const char *ambiguous[] = {"::1:8080", "fe80::1:8080", ":::80"};
    char host[64];
    unsigned port;
    for (size_t k = 0; k < sizeof ambiguous / sizeof *ambiguous; k++) {
        int rc = config_parse_listen(ambiguous[k], host, sizeof host, &port);
        if (rc != CANARY_EINVAL)
            fail_msg("'%s' accepted as host '%s' port %u; IPv6 needs brackets", ambiguous[k], host,
                     port);
        expect_set(fx, "http.listen", ambiguous[k]);
        assert_int_equal(config_validate(&fx->cfg, fx->err, sizeof fx->err), CANARY_EINVAL);
    }
}

static void test_validate_limit_order(void **state)
{
    struct fixture *fx = *state;
    /* The catalogue's gas_ppm: warn_high 1000, crit_high 5000. */
    expect_set(fx, "metric.gas_ppm.warn_high", "6000");
    expect_invalid(fx, "gas_ppm: crit_high (5000) is below warn_high (6000)");
    expect_set(fx, "metric.gas_ppm.crit_high", "off");
    expect_valid(fx);
    expect_set(fx, "metric.gas_ppm.crit_high", "6000"); /* equal is fine */
    expect_valid(fx);

    expect_set(fx, "device.kitchen-1.gas_ppm.crit_high", "500");
    expect_invalid(fx, "kitchen-1.gas_ppm: crit_high (500) is below warn_high (6000)");
    expect_set(fx, "device.kitchen-1.gas_ppm.warn_high", "400");
    expect_valid(fx);

    expect_set(fx, "metric.temperature_c.warn_low", "0");
    expect_set(fx, "metric.temperature_c.crit_low", "5");
    expect_invalid(fx, "temperature_c: crit_low (5) is above warn_low (0)");
    expect_set(fx, "metric.temperature_c.crit_low", "-10");
    expect_valid(fx);
    expect_set(fx, "device.freezer.temperature_c.warn_low", "-20");
    expect_invalid(fx, "freezer.temperature_c: crit_low (-10) is above warn_low (-20)");
}

/* ---- files ---- */

static void test_load_file(void **state)
{
    struct fixture *fx = *state;
    char path[128];
    make_file(fx, "canary.conf",
              "# canary test configuration\n"
              "; another comment style\n"
              "\n"
              "[http]\n"
              "listen = 0.0.0.0:9000\n"
              "threads=3\r\n"
              "request_log   =   yes  \n"
              "\n"
              "[ingest]\n"
              "strict_fields = false\n"
              "max_batch = 500\n"
              "[detect]\n"
              "level_alpha = 0.25\n"
              "[alerts]\n"
              "offline_severity = off\n"
              "[metric.gas_ppm]\n"
              "warn_high = 700\n"
              "crit_high = off\n"
              "[device.site.b.kitchen-1.gas_ppm]\n"
              "crit_high = 3000\n"
              "[http]\n"
              "max_connections = 99\n",
              0600, path, sizeof path);
    int rc = config_load_file(&fx->cfg, path, fx->err, sizeof fx->err);
    if (rc != CANARY_OK)
        fail_msg("rc %d: %s", rc, fx->err);
    assert_string_equal(fx->cfg.http.listen, "0.0.0.0:9000");
    assert_int_equal(fx->cfg.http.threads, 3);
    assert_true(fx->cfg.http.request_log);
    assert_int_equal(fx->cfg.http.max_connections, 99);
    assert_false(fx->cfg.ingest.strict_fields);
    assert_int_equal(fx->cfg.ingest.max_batch, 500);
    assert_true(fx->cfg.detect.level_alpha == 0.25);
    assert_string_equal(fx->cfg.alerts.offline_severity, "off");
    struct metric_limits l;
    config_metric_limits(&fx->cfg, "site.b.kitchen-1", "gas_ppm", &l);
    assert_limit(l.warn_high, 700);
    assert_limit(l.crit_high, 3000);
    config_metric_limits(&fx->cfg, "other", "gas_ppm", &l);
    assert_limit(l.warn_high, 700);
    assert_limit(l.crit_high, NAN);
    /* Untouched keys keep their defaults. */
    assert_string_equal(fx->cfg.store.path, "./var/canary.db");
    expect_valid(fx);

    /* An empty file changes nothing. */
    make_file(fx, "empty.conf", "", 0600, path, sizeof path);
    assert_int_equal(config_load_file(&fx->cfg, path, fx->err, sizeof fx->err), CANARY_OK);
    assert_int_equal(fx->cfg.http.threads, 3);
}

static void expect_load_error(struct fixture *fx, const char *content, int rc, const char *msg)
{
    char path[128];
    make_file(fx, "bad.conf", content, 0600, path, sizeof path);
    fx->err[0] = '\0';
    int got = config_load_file(&fx->cfg, path, fx->err, sizeof fx->err);
    if (got != rc)
        fail_msg("rc %d (want %d): %s", got, rc, fx->err);
    char want[1024];
    snprintf(want, sizeof want, "%s: %s", path, msg);
    assert_string_equal(fx->err, want);
}

static void test_load_file_errors(void **state)
{
    struct fixture *fx = *state;
    expect_load_error(fx, "[http]\nlisten = 1.2.3.4:80\nthis is not a key value\n", CANARY_EINVAL,
                      "line 3: syntax error (expected [section] or key = value)");
    expect_load_error(fx, "# c\n\n[http\n", CANARY_EINVAL,
                      "line 3: syntax error (expected [section] or key = value)");
    expect_load_error(fx, "[http]\n# comment\n\nthreads = x\n", CANARY_EINVAL,
                      "line 4: http.threads: 'x' is not a non-negative integer");
    expect_load_error(fx, "threads = 4\n", CANARY_EINVAL,
                      "line 1: key 'threads' outside a [section]");
    expect_load_error(fx, "[http]\nnope = 1\n", CANARY_EINVAL,
                      "line 2: unknown key 'http.nope' (canaryd --help-config lists every key)");
    expect_load_error(fx, "[log]\nlevel = info\n[metric.gas_ppm]\nwarn = 1\n", CANARY_EINVAL,
                      "line 4: metric.gas_ppm.warn: unknown limit 'warn' (known: warn_high, "
                      "crit_high, warn_low, crit_low, hysteresis, max_rate_per_min, "
                      "flatline_count)");
    expect_load_error(fx, "[ingest]\nmax_batch = 0\n", CANARY_EINVAL,
                      "line 2: ingest.max_batch: 0 is outside [1, 1000000]");

    /* A line longer than the reader's buffer is refused, not split in two. */
    char *content = malloc(8192);
    assert_non_null(content);
    int n = snprintf(content, 8192, "[http]\n# fine\nlisten = ");
    memset(content + n, '1', 5000);
    strcpy(content + n + 5000, "\nthreads = 2\n");
    char path[128];
    make_file(fx, "long.conf", content, 0600, path, sizeof path);
    free(content);
    fx->err[0] = '\0';
    assert_int_equal(config_load_file(&fx->cfg, path, fx->err, sizeof fx->err), CANARY_ELIMIT);
    char want[200];
    snprintf(want, sizeof want, "%s: line 3: longer than ", path);
    if (strncmp(fx->err, want, strlen(want)) != 0)
        fail_msg("error '%s', want it to start with '%s'", fx->err, want);
    assert_string_equal(fx->err + strlen(fx->err) - 6, " bytes");
    assert_int_equal(fx->cfg.http.threads, 0);

    /* A missing file. */
    snprintf(path, sizeof path, "%s/missing.conf", fx->dir);
    assert_int_equal(config_load_file(&fx->cfg, path, fx->err, sizeof fx->err), CANARY_EIO);
    snprintf(want, sizeof want, "%s: %s", path, strerror(ENOENT));
    assert_string_equal(fx->err, want);
}

/* The first error in a file is the one to report: a later error (here a key that the broken
 * section header left outside any section) must not hide it. */
static void test_load_file_reports_first_error(void **state)
{
    struct fixture *fx = *state;
    expect_load_error(fx, "# c\n\n[http\nthreads = 1\n", CANARY_EINVAL,
                      "line 3: syntax error (expected [section] or key = value)");
    expect_load_error(fx, "[http]\nthis line is garbage\nthreads = many\n", CANARY_EINVAL,
                      "line 2: syntax error (expected [section] or key = value)");
}

/* Keys indented under their section are common in hand-written files. inih reads an indented
 * line as the continuation of the previous key's value; it must not silently turn
 * "path = a.db" followed by "  synchronous = normal" into path = "synchronous = normal". */
static void test_indented_keys(void **state)
{
    struct fixture *fx = *state;
    char path[128];
    make_file(fx, "indented.conf",
              "[store]\n"
              "    path = a.db\n"
              "    synchronous = normal\n"
              "[http]\n"
              "\tlisten = 0.0.0.0:9000\n"
              "\tthreads = 2\n",
              0600, path, sizeof path);
    int rc = config_load_file(&fx->cfg, path, fx->err, sizeof fx->err);
    if (rc != CANARY_OK)
        return; /* refusing indentation with an error is acceptable */
    if (strcmp(fx->cfg.store.path, "a.db") != 0 ||
        strcmp(fx->cfg.store.synchronous, "normal") != 0 ||
        strcmp(fx->cfg.http.listen, "0.0.0.0:9000") != 0 || fx->cfg.http.threads != 2)
        fail_msg("indented keys loaded without error as store.path='%s', store.synchronous='%s', "
                 "http.listen='%s', http.threads=%u",
                 fx->cfg.store.path, fx->cfg.store.synchronous, fx->cfg.http.listen,
                 fx->cfg.http.threads);
}

/* ---- secrets ---- */

static void test_secret_from_config_file(void **state)
{
    struct fixture *fx = *state;
    char path[128];
    make_file(fx, "shared.conf", "[log]\nlevel = warn\n[api]\nadmin_token = s3cret\n", 0644, path,
              sizeof path);
    fx->err[0] = '\0';
    assert_int_equal(config_load_file(&fx->cfg, path, fx->err, sizeof fx->err), CANARY_EPERM);
    assert_non_null(strstr(fx->err, ": line 4: api.admin_token is a secret and may not come from "
                                    "a file readable by others"));
    assert_non_null(strstr(fx->err, "CANARY_API_ADMIN_TOKEN"));
    assert_null(strstr(fx->err, "s3cret"));
    assert_string_equal(fx->cfg.api.admin_token, "");

    /* Group-readable is shared too. */
    make_file(fx, "group.conf", "[api]\nadmin_token = s3cret\n", 0640, path, sizeof path);
    assert_int_equal(config_load_file(&fx->cfg, path, fx->err, sizeof fx->err), CANARY_EPERM);
    assert_string_equal(fx->cfg.api.admin_token, "");

    make_file(fx, "private.conf", "[api]\nadmin_token = s3cret\n", 0600, path, sizeof path);
    int rc = config_load_file(&fx->cfg, path, fx->err, sizeof fx->err);
    if (rc != CANARY_OK)
        fail_msg("rc %d: %s", rc, fx->err);
    assert_string_equal(fx->cfg.api.admin_token, "s3cret");
    make_file(fx, "owner-only.conf", "[api]\nadmin_token = t0ken\n", 0400, path, sizeof path);
    assert_int_equal(config_load_file(&fx->cfg, path, fx->err, sizeof fx->err), CANARY_OK);
    assert_string_equal(fx->cfg.api.admin_token, "t0ken");
}

static void test_secret_sources(void **state)
{
    struct fixture *fx = *state;
    fx->err[0] = '\0';
    assert_int_equal(config_set(&fx->cfg, "api.admin_token", "flagtok", CONFIG_SRC_FLAG, fx->err,
                                sizeof fx->err),
                     CANARY_EPERM);
    assert_non_null(strstr(fx->err, "api.admin_token is a secret and may not come from the "
                                    "command line"));
    assert_string_equal(fx->cfg.api.admin_token, "");
    assert_int_equal(config_set(&fx->cfg, "api.admin_token", "sharedtok", CONFIG_SRC_FILE_SHARED,
                                fx->err, sizeof fx->err),
                     CANARY_EPERM);
    assert_string_equal(fx->cfg.api.admin_token, "");
    assert_int_equal(
        config_set(&fx->cfg, "api.admin_token", "envtok", CONFIG_SRC_ENV, fx->err, sizeof fx->err),
        CANARY_OK);
    assert_string_equal(fx->cfg.api.admin_token, "envtok");
    assert_int_equal(config_set(&fx->cfg, "api.admin_token", "filetok", CONFIG_SRC_FILE, fx->err,
                                sizeof fx->err),
                     CANARY_OK);
    assert_string_equal(fx->cfg.api.admin_token, "filetok");
}

static void test_secret_from_environment(void **state)
{
    struct fixture *fx = *state;
    assert_int_equal(setenv("CANARY_API_ADMIN_TOKEN", "env-s3cret", 1), 0);
    int rc = config_load_env(&fx->cfg, fx->err, sizeof fx->err);
    unsetenv("CANARY_API_ADMIN_TOKEN");
    if (rc != CANARY_OK)
        fail_msg("rc %d: %s", rc, fx->err);
    assert_string_equal(fx->cfg.api.admin_token, "env-s3cret");

    /* CANARY_API_ADMIN_TOKEN_FILE names a private file. */
    char path[128];
    make_file(fx, "token", "file-s3cret\n", 0600, path, sizeof path);
    assert_int_equal(setenv("CANARY_API_ADMIN_TOKEN_FILE", path, 1), 0);
    rc = config_load_env(&fx->cfg, fx->err, sizeof fx->err);
    if (rc != CANARY_OK) {
        unsetenv("CANARY_API_ADMIN_TOKEN_FILE");
        fail_msg("rc %d: %s", rc, fx->err);
    }
    assert_string_equal(fx->cfg.api.admin_token, "file-s3cret");
    make_file(fx, "token-shared", "x\n", 0644, path, sizeof path);
    assert_int_equal(setenv("CANARY_API_ADMIN_TOKEN_FILE", path, 1), 0);
    rc = config_load_env(&fx->cfg, fx->err, sizeof fx->err);
    unsetenv("CANARY_API_ADMIN_TOKEN_FILE");
    assert_int_equal(rc, CANARY_EPERM);
    assert_int_equal(strncmp(fx->err, "CANARY_API_ADMIN_TOKEN_FILE: ", 29), 0);
    assert_string_equal(fx->cfg.api.admin_token, "file-s3cret");
}

static void test_secret_file_key(void **state)
{
    struct fixture *fx = *state;
    char path[128], err[512];
    make_file(fx, "token", "from-file\r\n\n", 0600, path, sizeof path);
    /* From any source: the file's mode is what protects the secret. */
    const enum config_source sources[] = {CONFIG_SRC_FLAG, CONFIG_SRC_FILE_SHARED, CONFIG_SRC_ENV,
                                          CONFIG_SRC_FILE};
    for (size_t k = 0; k < 4; k++) {
        memset(fx->cfg.api.admin_token, 0, sizeof fx->cfg.api.admin_token);
        int rc =
            config_set(&fx->cfg, "api.admin_token_file", path, sources[k], fx->err, sizeof fx->err);
        if (rc != CANARY_OK)
            fail_msg("source %d: rc %d: %s", (int)sources[k], rc, fx->err);
        assert_string_equal(fx->cfg.api.admin_token, "from-file");
    }

    /* In a shared config file, the key naming a private file is fine. */
    char conf[128];
    make_file(fx, "shared.conf", "", 0644, conf, sizeof conf);
    FILE *f = fopen(conf, "w");
    assert_non_null(f);
    fprintf(f, "[api]\nadmin_token_file = %s\n", path);
    fclose(f);
    memset(fx->cfg.api.admin_token, 0, sizeof fx->cfg.api.admin_token);
    int rc = config_load_file(&fx->cfg, conf, fx->err, sizeof fx->err);
    if (rc != CANARY_OK)
        fail_msg("rc %d: %s", rc, fx->err);
    assert_string_equal(fx->cfg.api.admin_token, "from-file");

    /* A token file others may read is refused, and names the fix. */
    make_file(fx, "token-644", "leaked\n", 0644, path, sizeof path);
    fx->err[0] = '\0';
    assert_int_equal(config_set(&fx->cfg, "api.admin_token_file", path, CONFIG_SRC_FILE, fx->err,
                                sizeof fx->err),
                     CANARY_EPERM);
    snprintf(err, sizeof err, "secret file %s must not be readable by group or others (chmod 600)",
             path);
    assert_string_equal(fx->err, err);
    assert_string_equal(fx->cfg.api.admin_token, "from-file");
    make_file(fx, "token-604", "leaked\n", 0604, path, sizeof path);
    assert_int_equal(config_set(&fx->cfg, "api.admin_token_file", path, CONFIG_SRC_FILE, fx->err,
                                sizeof fx->err),
                     CANARY_EPERM);

    /* A missing token file. */
    snprintf(path, sizeof path, "%s/no-such-token", fx->dir);
    assert_int_equal(config_set(&fx->cfg, "api.admin_token_file", path, CONFIG_SRC_FILE, fx->err,
                                sizeof fx->err),
                     CANARY_EIO);
    assert_non_null(strstr(fx->err, path));

    /* A token longer than the key's buffer. */
    char big[CONFIG_STR_MAX + 2];
    memset(big, 'z', CONFIG_STR_MAX);
    big[CONFIG_STR_MAX] = '\0';
    make_file(fx, "token-big", big, 0600, path, sizeof path);
    assert_int_equal(config_set(&fx->cfg, "api.admin_token_file", path, CONFIG_SRC_FILE, fx->err,
                                sizeof fx->err),
                     CANARY_ELIMIT);
    assert_string_equal(fx->cfg.api.admin_token, "from-file");
}

/* The longest token the key holds (255 bytes) must load from a file written the usual way,
 * with a trailing newline (echo "$TOKEN" > file), as it does from the environment. */
static void test_secret_file_longest_token_with_newline(void **state)
{
    struct fixture *fx = *state;
    char token[CONFIG_STR_MAX + 1];
    memset(token, 't', CONFIG_STR_MAX - 1);
    token[CONFIG_STR_MAX - 1] = '\0';
    assert_int_equal(
        config_set(&fx->cfg, "api.admin_token", token, CONFIG_SRC_ENV, fx->err, sizeof fx->err),
        CANARY_OK);
    memset(fx->cfg.api.admin_token, 0, sizeof fx->cfg.api.admin_token);

    char content[CONFIG_STR_MAX + 2], path[128];
    snprintf(content, sizeof content, "%s\n", token);
    make_file(fx, "token", content, 0600, path, sizeof path);
    int rc = config_set(&fx->cfg, "api.admin_token_file", path, CONFIG_SRC_FILE, fx->err,
                        sizeof fx->err);
    if (rc != CANARY_OK)
        fail_msg("a %zu-byte token with a trailing newline: rc %d: %s", strlen(token), rc, fx->err);
    assert_string_equal(fx->cfg.api.admin_token, token);
}

static void test_secret_never_written(void **state)
{
    struct fixture *fx = *state;
    assert_int_equal(config_set(&fx->cfg, "api.admin_token", "Sup3r-S3cret-Value", CONFIG_SRC_ENV,
                                fx->err, sizeof fx->err),
                     CANARY_OK);
    for (int annotate = 0; annotate < 2; annotate++) {
        char *out = written(&fx->cfg, annotate);
        assert_null(strstr(out, "Sup3r-S3cret-Value"));
        assert_non_null(strstr(out, "\n# admin_token = <set>\n"));

        free(out);
    }
    char *md = markdown();
    assert_null(strstr(md, "Sup3r-S3cret-Value"));
    free(md);
    /* Unset, the annotated file shows the key commented out. */
    struct canary_config defaults;
    config_init(&defaults);
    char *out = written(&defaults, true);
    assert_non_null(strstr(out, "\n# admin_token =\n"));
    free(out);
    config_free(&defaults);
}

/* ---- environment ---- */

static void test_env_overrides(void **state)
{
    struct fixture *fx = *state;
    assert_int_equal(setenv("CANARY_HTTP_LISTEN", "0.0.0.0:9090", 1), 0);
    assert_int_equal(setenv("CANARY_INGEST_STRICT_FIELDS", "false", 1), 0);
    assert_int_equal(setenv("CANARY_DETECT_Z_HALF", "6.5", 1), 0);
    int rc = config_load_env(&fx->cfg, fx->err, sizeof fx->err);
    unsetenv("CANARY_HTTP_LISTEN");
    unsetenv("CANARY_INGEST_STRICT_FIELDS");
    unsetenv("CANARY_DETECT_Z_HALF");
    if (rc != CANARY_OK)
        fail_msg("rc %d: %s", rc, fx->err);
    assert_string_equal(fx->cfg.http.listen, "0.0.0.0:9090");
    assert_false(fx->cfg.ingest.strict_fields);
    assert_true(fx->cfg.detect.z_half == 6.5);
    assert_int_equal(fx->cfg.http.threads, 0);

    assert_int_equal(setenv("CANARY_HTTP_THREADS", "many", 1), 0);
    fx->err[0] = '\0';
    rc = config_load_env(&fx->cfg, fx->err, sizeof fx->err);
    unsetenv("CANARY_HTTP_THREADS");
    assert_int_equal(rc, CANARY_EINVAL);
    assert_string_equal(fx->err,
                        "CANARY_HTTP_THREADS: http.threads: 'many' is not a non-negative integer");
    assert_int_equal(fx->cfg.http.threads, 0);

    /* Without CANARY_ variables nothing changes. */
    struct canary_config before;
    config_init(&before);
    assert_int_equal(config_load_env(&before, fx->err, sizeof fx->err), CANARY_OK);
    char *a = written(&before, false);
    struct canary_config defaults;
    config_init(&defaults);
    char *b = written(&defaults, false);
    assert_string_equal(a, b);
    free(a);
    free(b);
    config_free(&before);
    config_free(&defaults);
}

/* ---- config_write output loads back ---- */

/* Writes cfg (not annotated) to dir/name with mode, loads it into a fresh config. */
static int write_and_load(struct fixture *fx, const struct canary_config *cfg, mode_t mode,
                          struct canary_config *out)
{
    char *text = written(cfg, false);
    char path[128];
    make_file(fx, "written.conf", text, mode, path, sizeof path);
    free(text);
    config_init(out);
    return config_load_file(out, path, fx->err, sizeof fx->err);
}

static void test_write_round_trip_keeps_values(void **state)
{
    struct fixture *fx = *state;
    expect_set(fx, "http.listen", "[::1]:8443");
    expect_set(fx, "http.threads", "7");
    expect_set(fx, "ingest.strict_fields", "false");
    expect_set(fx, "store.synchronous", "normal");
    expect_set(fx, "detect.level_alpha", "0.123456789");
    expect_set(fx, "detect.z_half", "3.14159265358979");
    expect_set(fx, "detect.gap_factor", "7.000001");
    expect_set(fx, "metric.gas_ppm.warn_high", "812.3456789");
    expect_set(fx, "metric.gas_ppm.crit_low", "off");
    expect_set(fx, "device.a.b.temperature_c.max_rate_per_min", "0.3333333333");
    expect_set(fx, "device.a.b.temperature_c.flatline_count", "17");

    struct canary_config back;
    int rc = write_and_load(fx, &fx->cfg, 0600, &back);
    if (rc != CANARY_OK) {
        config_free(&back);
        fail_msg("rc %d: %s", rc, fx->err);
    }
    assert_string_equal(back.http.listen, "[::1]:8443");
    assert_int_equal(back.http.threads, 7);
    assert_false(back.ingest.strict_fields);
    assert_string_equal(back.store.synchronous, "normal");
    assert_int_equal(back.n_overrides, fx->cfg.n_overrides);
    struct metric_limits l;
    config_metric_limits(&back, "a.b", "temperature_c", &l);
    assert_int_equal(l.flatline_count, 17);
    config_metric_limits(&back, NULL, "gas_ppm", &l);
    assert_limit(l.crit_low, NAN);
    /* Numbers survive exactly: a written configuration means what the running one meant. */
    const struct {
        const char *what;
        double got, want;
    } doubles[] = {
        {"detect.level_alpha", back.detect.level_alpha, fx->cfg.detect.level_alpha},
        {"detect.z_half", back.detect.z_half, fx->cfg.detect.z_half},
        {"detect.gap_factor", back.detect.gap_factor, fx->cfg.detect.gap_factor},
        {"metric.gas_ppm.warn_high", l.warn_high, 812.3456789},
    };
    config_metric_limits(&back, "a.b", "temperature_c", &l);
    double rate = l.max_rate_per_min;
    config_free(&back);
    for (size_t k = 0; k < sizeof doubles / sizeof doubles[0]; k++) {
        if (doubles[k].got != doubles[k].want)
            fail_msg("%s: written and read back as %.17g, was %.17g", doubles[k].what,
                     doubles[k].got, doubles[k].want);
    }
    if (rate != 0.3333333333)
        fail_msg("device.a.b.temperature_c.max_rate_per_min: read back as %.17g", rate);
}

/* `canaryd --print-config > canary.conf` under the usual umask makes a 0644 file; with no
 * secret set, loading it must work (it holds no secret). */
static void test_written_defaults_load_from_a_shared_file(void **state)
{
    struct fixture *fx = *state;
    struct canary_config back;
    int rc = write_and_load(fx, &fx->cfg, 0644, &back);
    config_free(&back);
    if (rc != CANARY_OK)
        fail_msg("config_write output of the defaults, mode 0644: rc %d: %s", rc, fx->err);

    /* The annotated form (the example file) loads as well. */
    char *text = written(&fx->cfg, true);
    char path[128];
    make_file(fx, "annotated.conf", text, 0644, path, sizeof path);
    free(text);
    config_init(&back);
    rc = config_load_file(&back, path, fx->err, sizeof fx->err);
    config_free(&back);
    if (rc != CANARY_OK)
        fail_msg("annotated defaults, mode 0644: rc %d: %s", rc, fx->err);
}

/* A secret prints as "<set>"; a written configuration loaded back must not make "<set>" the
 * admin token (a value anyone can guess). */
static void test_written_secret_does_not_become_the_token(void **state)
{
    struct fixture *fx = *state;
    assert_int_equal(config_set(&fx->cfg, "api.admin_token", "real-token", CONFIG_SRC_ENV, fx->err,
                                sizeof fx->err),
                     CANARY_OK);
    for (int annotate = 0; annotate < 2; annotate++) {
        char *text = written(&fx->cfg, annotate);
        char path[128];
        make_file(fx, "written.conf", text, 0600, path, sizeof path);
        free(text);
        struct canary_config back;
        config_init(&back);
        int rc = config_load_file(&back, path, fx->err, sizeof fx->err);
        bool guessable = strcmp(back.api.admin_token, "<set>") == 0;
        config_free(&back);
        if (rc == CANARY_OK && guessable)
            fail_msg("config_write(annotate=%d) output, loaded back, sets the admin token to the "
                     "literal \"<set>\"",
                     annotate);
    }
}

/* ---- generated files in the repository ---- */

static void test_example_file_is_current(void **state)
{
    (void)state;
    char path[1024];
    snprintf(path, sizeof path, "%s/etc/canary.conf.example", source_dir());
    char *file = slurp(path);
    if (file == NULL)
        fail_msg("%s cannot be read (%s); generate it with "
                 "`canaryd --print-config --defaults > etc/canary.conf.example`",
                 path, strerror(errno));
    struct canary_config defaults;
    config_init(&defaults);
    char *want = written(&defaults, true);
    config_free(&defaults);
    char diff[600] = "";
    if (strcmp(file, want) != 0) {
        /* Name the first line that differs. */
        size_t line = 1, i = 0;
        while (file[i] != '\0' && file[i] == want[i]) {
            if (file[i] == '\n')
                line++;
            i++;
        }
        size_t start = i;
        while (start > 0 && want[start - 1] != '\n')
            start--;
        snprintf(diff, sizeof diff, "line %zu: the file has '%.*s', config_write has '%.*s'", line,
                 (int)strcspn(file + start, "\n"), file + start, (int)strcspn(want + start, "\n"),
                 want + start);
    }
    free(want);
    free(file);
    if (diff[0] != '\0')
        fail_msg("%s is out of date at %s; regenerate it with "
                 "`canaryd --print-config --defaults > etc/canary.conf.example`",
                 path, diff);
}

static void test_configuration_doc_is_current(void **state)
{
    (void)state;
    char path[1024];
    snprintf(path, sizeof path, "%s/docs/CONFIGURATION.md", source_dir());
    char *doc = slurp(path);
    if (doc == NULL)
        fail_msg("%s cannot be read (%s); generate it with "
                 "`scripts/gen-config-doc.sh > docs/CONFIGURATION.md`",
                 path, strerror(errno));
    char *md = markdown();
    size_t lines = 0;
    char missing[1024] = "";
    char *save = NULL;
    for (char *line = strtok_r(md, "\n", &save); line != NULL; line = strtok_r(NULL, "\n", &save)) {
        lines++;
        /* The line must appear whole: at a line start and followed by a line end. */
        size_t n = strlen(line);
        bool found = false;
        for (const char *p = strstr(doc, line); p != NULL && !found; p = strstr(p + 1, line))
            found = (p == doc || p[-1] == '\n') && (p[n] == '\n' || p[n] == '\0');
        if (!found) {
            snprintf(missing, sizeof missing, "%s", line);
            break;
        }
    }
    free(md);
    free(doc);
    if (missing[0] != '\0')
        fail_msg("%s lacks the line '%s'; regenerate it with "
                 "`scripts/gen-config-doc.sh > docs/CONFIGURATION.md`",
                 path, missing);
    assert_true(lines > 10);
}

/* Counts the cells of a Markdown table row: '|' separates cells unless escaped as "\|" (in
 * GitHub-flavoured Markdown this holds inside code spans too). */
static size_t table_cells(const char *row)
{
    size_t bars = 0;
    for (const char *p = row; *p; p++) {
        if (*p == '\\' && p[1] != '\0')
            p++;
        else if (*p == '|')
            bars++;
    }
    return bars > 0 ? bars - 1 : 0;
}

static void test_markdown_table_rows(void **state)
{
    (void)state;
    char *md = markdown();
    size_t rows = 0, cells = 4;
    char bad[1024] = "";
    char *save = NULL;
    for (char *line = strtok_r(md, "\n", &save); line != NULL; line = strtok_r(NULL, "\n", &save)) {
        if (line[0] != '|')
            continue;
        rows++;
        cells = table_cells(line);
        if (cells != 4) {
            snprintf(bad, sizeof bad, "%s", line);
            break;
        }
    }
    free(md);
    if (bad[0] != '\0')
        fail_msg("table row with %zu cells instead of 4 (an unescaped '|' splits a cell): %s",
                 cells, bad);
    assert_true(rows > 10);
}

/* config_copy: every list is the copy's own (both configs are freed; ASan sees a double
 * free or a leak), and the copy says what the original says. */
static void test_copy_is_deep(void **state)
{
    struct fixture *fx = *state;
    expect_set(fx, "recipient.alice.sms", "+4915112345678");
    expect_set(fx, "route.gas.steps", "sms:alice");
    expect_set(fx, "notify.twilio_account_sid", "AC0123");
    expect_set(fx, "notify.twilio_from", "+15005550006");
    assert_int_equal(config_set(&fx->cfg, "notify.twilio_auth_token", "secret-token",
                                CONFIG_SRC_ENV, fx->err, sizeof fx->err),
                     CANARY_OK);
    expect_set(fx, "metric.gas_ppm.warn_high", "700");
    struct canary_config copy;
    assert_int_equal(config_copy(&copy, &fx->cfg), CANARY_OK);
    assert_int_equal(copy.n_recipients, 1);
    assert_int_equal(copy.n_routes, 1);
    assert_ptr_not_equal(copy.recipients, fx->cfg.recipients);
    assert_ptr_not_equal(copy.routes, fx->cfg.routes);
    assert_string_equal(copy.recipients[0].sms, "+4915112345678");
    assert_string_equal(copy.routes[0].steps[0].targets[0].recipient, "alice");
    assert_int_equal(copy.n_overrides, fx->cfg.n_overrides);
    assert_true(copy.n_overrides > 0);
    assert_ptr_not_equal(copy.overrides, fx->cfg.overrides);
    assert_int_equal(config_validate(&copy, fx->err, sizeof fx->err), CANARY_OK);
    config_free(&copy);
}

/* The LLM and delivery keys are checked as a set. */
static void test_llm_and_delivery_checks(void **state)
{
    struct fixture *fx = *state;
    expect_set(fx, "llm.provider", "openai");
    expect_invalid(fx, "llm.model must be set when llm.provider is openai");
    expect_set(fx, "llm.model", "gpt-4o-mini");
    expect_valid(fx);
    expect_set(fx, "llm.url", "ftp://example.com");
    expect_invalid(fx, "llm.url: 'ftp://example.com' is not an http:// or https:// URL");
    expect_set(fx, "llm.url", "http://127.0.0.1:8081/v1");
    expect_valid(fx);
    expect_set(fx, "notify.utc_offset", "+25:00");
    expect_invalid(fx, "notify.utc_offset: '+25:00' is not a UTC offset (+01:00, -05:30)");
    expect_set(fx, "notify.utc_offset", "-05:30");
    expect_valid(fx);
    expect_set(fx, "notify.retry_min_s", "700");
    expect_invalid(fx, "notify.retry_min_s (700) must not exceed notify.retry_max_s (600)");
    expect_set(fx, "notify.retry_min_s", "5");
    expect_set(fx, "notify.escalate_after_min", "0.1");
    expect_valid(fx);
    assert_true(fx->cfg.notify.escalate_after_min > 0.09 &&
                fx->cfg.notify.escalate_after_min < 0.11);
    expect_set_error(fx, "notify.escalate_after_min", "0.01", CANARY_EINVAL,
                     "notify.escalate_after_min: 0.01 is outside [0.05, 1440]");
}

int main(void)
{
#define T(f) cmocka_unit_test_setup_teardown(f, setup, teardown)
    const struct CMUnitTest tests[] = {
        T(test_defaults),
        T(test_set_uint),
        T(test_set_double),
        T(test_set_bool),
        T(test_set_enum),
        T(test_set_string),
        T(test_unknown_keys),
        T(test_overrides),
        T(test_override_errors),
        T(test_limits_precedence),
        T(test_validate),
        T(test_validate_listen),
        T(test_listen_unbracketed_ipv6_is_refused),
        T(test_validate_limit_order),
        T(test_load_file),
        T(test_load_file_errors),
        T(test_load_file_reports_first_error),
        T(test_indented_keys),
        T(test_secret_from_config_file),
        T(test_secret_sources),
        T(test_secret_from_environment),
        T(test_secret_file_key),
        T(test_secret_file_longest_token_with_newline),
        T(test_secret_never_written),
        T(test_env_overrides),
        T(test_write_round_trip_keeps_values),
        T(test_written_defaults_load_from_a_shared_file),
        T(test_written_secret_does_not_become_the_token),
        cmocka_unit_test(test_example_file_is_current),
        cmocka_unit_test(test_configuration_doc_is_current),
        cmocka_unit_test(test_markdown_table_rows),
        T(test_copy_is_deep),
        T(test_llm_and_delivery_checks),
    };
#undef T
    return cmocka_run_group_tests(tests, NULL, NULL);
}
