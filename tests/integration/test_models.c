/* test_models.c — Isolation Forest models scored live by the real canaryd: a window model
 * trained here (through the library, as `canary train` does) on a normal gas/temperature
 * stream scores a device's readings, raises their scores and flags ("model") when the
 * pattern changes, and opens one anomaly alert (metric "model:<name>") after
 * model.<name>.consecutive readings at or above its threshold; devices the model does not
 * apply to are not scored; GET /api/v1/models describes it; a reload with a corrupt file
 * changes nothing and says why, a good one (API or SIGHUP) swaps the set; canaryd refuses
 * to start with a model file it cannot use. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include "harness.h"
#include "ml/features.h"
#include "ml/iforest.h"

#include <math.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#define WINDOW     16
#define TRAIN_ROWS 3000

static char model_dir[64];
static char model_path[128];
static int64_t base_ts;

/* A deterministic normal stream: gas about 400 ppm, temperature about 22 °C. */
static double noise(uint64_t *s)
{
    *s = *s * 6364136223846793005ULL + 1442695040888963407ULL;
    return (double)(*s >> 11) / 9007199254740992.0 - 0.5;
}

static void normal_values(uint64_t *rng, double *gas, double *temp)
{
    *gas = 400 + 10 * noise(rng);
    *temp = 22 + 0.6 * noise(rng);
}

/* Trains the window model on the normal stream and saves it to path (threshold from a
 * contamination of 0.5 %). */
static void train_model(const char *path, uint64_t seed)
{
    const char *metrics[2] = {"gas_ppm", "temperature_c"};
    size_t cols = feature_vector_len(2);
    double *x = malloc(TRAIN_ROWS * cols * sizeof *x);
    char names[64][IFOREST_NAME_MAX];
    const char *name_ptrs[64];
    for (size_t i = 0; i < cols; i++) {
        assert_true(feature_column_name(metrics, 2, i, names[i], sizeof names[i]));
        name_ptrs[i] = names[i];
    }
    struct feature_series *g = malloc(feature_series_size(WINDOW));
    struct feature_series *t = malloc(feature_series_size(WINDOW));
    feature_series_init(g, WINDOW);
    feature_series_init(t, WINDOW);
    uint64_t rng = 42;
    size_t rows = 0;
    for (int i = 0; rows < TRAIN_ROWS; i++) {
        int64_t ts = 1763676000000LL + (int64_t)i * 1000;
        double gas, temp;
        normal_values(&rng, &gas, &temp);
        double *row = x + rows * cols;
        feature_series_push(g, ts, gas, row);
        feature_series_push(t, ts, temp, row + FEATURES_PER_SERIES);
        feature_time_of_day(ts, row + 2 * FEATURES_PER_SERIES);
        if (feature_series_warm(g) && feature_series_warm(t))
            rows++;
    }
    struct iforest_params p;
    iforest_params_default(&p);
    p.seed = seed;
    p.contamination = 0.005;
    struct iforest_meta meta;
    memset(&meta, 0, sizeof meta);
    snprintf(meta.source, sizeof meta.source, "test_models synthetic stream");
    snprintf(meta.features_kind, sizeof meta.features_kind, "window");
    meta.window = WINDOW;
    meta.train_rows = TRAIN_ROWS;
    meta.eval_roc_auc = NAN;
    meta.eval_pr_auc = NAN;
    struct iforest *f;
    char err[256];
    int rc =
        iforest_train(&f, &p, x, TRAIN_ROWS, cols, name_ptrs, &meta, NULL, NULL, err, sizeof err);
    if (rc != 0)
        fail_msg("train: %s", err);
    if (iforest_save(f, path, err, sizeof err) != 0)
        fail_msg("save: %s", err);
    iforest_free(f);
    free(g);
    free(t);
    free(x);
}

static int group_setup(void **state)
{
    (void)state;
    snprintf(model_dir, sizeof model_dir, "/tmp/canary-models-XXXXXX");
    assert_non_null(mkdtemp(model_dir));
    snprintf(model_path, sizeof model_path, "%s/gas.cif", model_dir);
    train_model(model_path, 7);
    return 0;
}

static int group_teardown(void **state)
{
    (void)state;
    char cmd[128];
    snprintf(cmd, sizeof cmd, "rm -rf %s", model_dir);
    return system(cmd) == 0 ? 0 : -1;
}

static char path_arg[200];

static int start(void **state)
{
    struct daemon *d = calloc(1, sizeof *d);
    snprintf(path_arg, sizeof path_arg, "model.gas.path=%s", model_path);
    daemon_init(d, "--set", path_arg, "--set", "model.gas.devices=boiler-*, kitchen-9", "--set",
                "model.gas.consecutive=3", "--set", "alerts.offline_severity=off", NULL);
    daemon_start(d);
    base_ts = now_ms() - 3600000;
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

static void reading(struct daemon *d, const char *device, int i, double gas, double temp)
{
    char body[256];
    snprintf(body, sizeof body,
             "{\"device\":\"%s\",\"seq\":%d,\"ts\":%lld,\"values\":{\"gas_ppm\":%.3f,"
             "\"temperature_c\":%.3f}}",
             device, i + 1, (long long)(base_ts + (int64_t)i * 1000), gas, temp);
    cJSON *j = NULL;
    long st = http_post_json(d, "/api/v1/ingest", body, &j);
    if (st != 200)
        fail_msg("posting %s: %ld", body, st);
    cJSON_Delete(j);
}

static cJSON *model_of(cJSON *root, const char *name)
{
    cJSON *m;
    cJSON_ArrayForEach(m, cJSON_GetObjectItem(root, "models"))
    {
        cJSON *n = cJSON_GetObjectItem(m, "name");
        if (cJSON_IsString(n) && strcmp(n->valuestring, name) == 0)
            return m;
    }
    return NULL;
}

struct alert_wait {
    struct daemon *d;
    const char *device;
    int found;
};

static bool model_alert_open(void *arg)
{
    struct alert_wait *w = arg;
    char path[160];
    snprintf(path, sizeof path, "/api/v1/alerts?device=%s", w->device);
    cJSON *j = NULL;
    if (http_get_json(w->d, path, &j) != 200)
        return false;
    w->found = 0;
    cJSON *a;
    cJSON_ArrayForEach(a, cJSON_GetObjectItem(j, "alerts"))
    {
        cJSON *metric = cJSON_GetObjectItem(a, "metric");
        cJSON *kind = cJSON_GetObjectItem(a, "kind");
        if (cJSON_IsString(metric) && strcmp(metric->valuestring, "model:gas") == 0 &&
            cJSON_IsString(kind) && strcmp(kind->valuestring, "anomaly") == 0) {
            w->found++;
            cJSON *msg = cJSON_GetObjectItem(a, "message");
            assert_true(cJSON_IsString(msg));
            assert_non_null(strstr(msg->valuestring, "model gas"));
        }
    }
    cJSON_Delete(j);
    return w->found > 0;
}

static double model_counter(struct daemon *d, const char *path)
{
    cJSON *j = NULL;
    assert_int_equal(http_get_json(d, "/api/v1/models", &j), 200);
    cJSON *m = model_of(j, "gas");
    assert_non_null(m);
    double v = json_number(m, path);
    cJSON_Delete(j);
    return v;
}

/* Normal readings are scored and stay quiet; a changed pattern is scored above the
 * threshold, flagged, and opens one alert after 3 readings in a row. */
static void test_live_scoring_and_alert(void **state)
{
    struct daemon *d = *state;
    uint64_t rng = 99;
    int i = 0;
    for (; i < 60; i++) {
        double gas, temp;
        normal_values(&rng, &gas, &temp);
        reading(d, "boiler-1", i, gas, temp);
        reading(d, "other-1", i, gas, temp); /* not matched by the model's devices */
    }
    /* 60 readings, scored from the 16th (the windows are warm). */
    struct alert_wait w = {d, "boiler-1", 0};
    assert_false(model_alert_open(&w));
    double scored = model_counter(d, "live.readings_scored");
    assert_true(scored >= 60 - WINDOW + 1 - 1 && scored <= 60 - WINDOW + 1);
    assert_true(model_counter(d, "live.readings_above_threshold") <= 2);
    assert_true(model_counter(d, "live.devices") == 1);

    /* The gas level jumps and the temperature drops: within every limit, but not normal. */
    for (int k = 0; k < 6; k++, i++)
        reading(d, "boiler-1", i, 470 + k, 20.5);
    assert_true(wait_until(model_alert_open, &w, 5000));
    assert_int_equal(w.found, 1);

    /* The stored readings carry the model's verdict. */
    char path[200];
    snprintf(path, sizeof path, "/api/v1/devices/boiler-1/readings?from=%lld&limit=1",
             (long long)(base_ts + (int64_t)(i - 1) * 1000));
    cJSON *j = NULL;
    assert_int_equal(http_get_json(d, path, &j), 200);
    cJSON *r = cJSON_GetArrayItem(cJSON_GetObjectItem(j, "readings"), 0);
    assert_non_null(r);
    cJSON *gas = cJSON_GetObjectItem(cJSON_GetObjectItem(r, "values"), "gas_ppm");
    assert_true(json_number(gas, "score") >= 0.5);
    bool flagged = false;
    cJSON *f;
    cJSON_ArrayForEach(f, cJSON_GetObjectItem(gas, "flags"))
    {
        flagged |= cJSON_IsString(f) && strcmp(f->valuestring, "model") == 0;
    }
    assert_true(flagged);
    cJSON_Delete(j);

    /* The unmatched device has no model alert. */
    struct alert_wait other = {d, "other-1", 0};
    assert_false(model_alert_open(&other));
}

/* GET /api/v1/models describes the model as trained and configured. */
static void test_models_listing(void **state)
{
    struct daemon *d = *state;
    cJSON *j = NULL;
    assert_int_equal(http_get_json(d, "/api/v1/models", &j), 200);
    assert_true(json_number(j, "generation") == 1);
    cJSON *m = model_of(j, "gas");
    assert_non_null(m);
    assert_string_equal(cJSON_GetObjectItem(m, "features_kind")->valuestring, "window");
    assert_true(json_number(m, "window") == WINDOW);
    assert_true(json_number(m, "consecutive") == 3);
    assert_true(json_number(m, "parameters.trees") == 100);
    assert_true(json_number(m, "parameters.subsample") == 256);
    assert_true(json_number(m, "training.rows") == TRAIN_ROWS);
    double thr = json_number(m, "threshold");
    assert_true(thr > 0.5 && thr < 1);
    assert_int_equal(cJSON_GetArraySize(cJSON_GetObjectItem(m, "features")),
                     (int)feature_vector_len(2));
    assert_string_equal(cJSON_GetArrayItem(cJSON_GetObjectItem(m, "metrics"), 0)->valuestring,
                        "gas_ppm");
    assert_true(cJSON_IsNull(cJSON_GetObjectItem(m, "evaluation")));
    cJSON_Delete(j);
}

static bool generation_is_3(void *arg)
{
    cJSON *j = NULL;
    if (http_get_json(arg, "/api/v1/models", &j) != 200)
        return false;
    bool ok = json_number(j, "generation") == 3;
    cJSON_Delete(j);
    return ok;
}

/* A corrupt model file: the reload is refused with the reason and nothing changes; a good
 * file reloads through the API and through SIGHUP. */
static void test_reload(void **state)
{
    struct daemon *d = *state;
    char saved[160], cmd[1024];
    snprintf(saved, sizeof saved, "%s.good", model_path);
    snprintf(cmd, sizeof cmd, "cp %s %s && head -c 300 %s > %s.tmp && mv %s.tmp %s", model_path,
             saved, saved, model_path, model_path, model_path);
    assert_int_equal(system(cmd), 0);
    cJSON *j = NULL;
    assert_int_equal(http_post_json(d, "/api/v1/models/reload", "", &j), 422);
    assert_string_equal(json_error_code(j), "reload_failed");
    cJSON *e = cJSON_GetObjectItem(j, "error");
    const char *msg = cJSON_GetObjectItem(e, "message")->valuestring;
    assert_non_null(strstr(msg, "model.gas"));
    assert_non_null(strstr(msg, "unchanged"));
    cJSON_Delete(j);
    assert_int_equal(http_get_json(d, "/api/v1/models", &j), 200);
    assert_true(json_number(j, "generation") == 1);
    assert_true(json_number(j, "reloads.failed") == 1);
    cJSON_Delete(j);

    train_model(model_path, 8); /* a good file again (another seed) */
    assert_int_equal(http_post_json(d, "/api/v1/models/reload", "", &j), 200);
    assert_true(json_number(j, "generation") == 2);
    assert_true(cJSON_IsNull(cJSON_GetObjectItem(cJSON_GetObjectItem(j, "reloads"), "last_error")));
    cJSON_Delete(j);

    /* Readings keep flowing through the swap and are scored by the new set. */
    uint64_t rng = 5;
    for (int i = 0; i < 20; i++) {
        double gas, temp;
        normal_values(&rng, &gas, &temp);
        reading(d, "kitchen-9", i, gas, temp);
    }
    assert_true(model_counter(d, "live.readings_scored") >= 4);

    assert_int_equal(kill(d->pid, SIGHUP), 0);
    assert_true(wait_until(generation_is_3, d, 5000));
}

/* canaryd will not start with a model it was told to use and cannot. */
static void test_refuses_a_bad_model_at_start(void **state)
{
    (void)state;
    char cmd[600];
    snprintf(cmd, sizeof cmd,
             "%s --listen 127.0.0.1:0 --db %s/x.db --set model.m.path=%s/missing.cif "
             "--set model.m.devices='*' > %s/out.txt 2>&1",
             CANARYD_PATH, model_dir, model_dir, model_dir);
    int st = system(cmd);
    assert_true(WIFEXITED(st));
    assert_int_equal(WEXITSTATUS(st), 1);
    char out[160];
    snprintf(out, sizeof out, "grep -q 'model.m' %s/out.txt", model_dir);
    assert_int_equal(system(out), 0);

    /* A model that applies to nothing is a configuration error (exit 2). */
    snprintf(cmd, sizeof cmd, "%s --check-config --set model.m.path=%s > %s/out.txt 2>&1",
             CANARYD_PATH, model_path, model_dir);
    st = system(cmd);
    assert_true(WIFEXITED(st));
    assert_int_equal(WEXITSTATUS(st), 2);
    snprintf(out, sizeof out, "grep -q 'applies to no device' %s/out.txt", model_dir);
    assert_int_equal(system(out), 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_live_scoring_and_alert, start, stop),
        cmocka_unit_test_setup_teardown(test_models_listing, start, stop),
        cmocka_unit_test_setup_teardown(test_reload, start, stop),
        cmocka_unit_test(test_refuses_a_bad_model_at_start),
    };
    return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
