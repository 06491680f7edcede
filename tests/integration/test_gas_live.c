/* test_gas_live.c — the gas classifier in the real canaryd (docs/GAS.md "In canaryd"): a
 * bundle trained here with this build's `canary train --model gas` is configured as
 * [model.kgas] with dangerous classes "Smoke:fire, Mixture"; a device sending clean-air
 * readings gets a class, its probability and every class's probability stored with each
 * reading and no alert; the same device sending smoke opens one critical fire alert (metric
 * "model:kgas") whose message names the class and its probability, and mixture opens a
 * gas_leak alert (the section's kind); with probabilities = best only the winner is stored;
 * GET /api/v1/models lists the model with its classes, the kind each dangerous class raises
 * and held-out figures; a damaged file, an unknown dangerous class or alert kind refuses the
 * start with a message naming the model; a reload refuses a damaged file and takes a good
 * one.
 *
 * Fixture: tests/fixtures/gas-small.csv is every fourth sample of each class of
 * /work/shared/data/gas/gas_train.csv (the public gas-sensor dataset, MIT licence: columns
 * Serial Number, MQ2..MQ135, Gas; 320 rows per class of NoGas, Perfume, Smoke, Mixture). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include "harness.h"

#include <math.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#define N_INPUTS 7
#define MAX_ROWS 400

static const char *const inputs[N_INPUTS] = {"mq2", "mq3", "mq5", "mq6", "mq7", "mq8", "mq135"};

static char dir[64];
static char model_path[128];
static char csv_path[512];
static int64_t base_ts;

/* The fixture's rows of one class, in file (time) order. */
static size_t class_rows(const char *cls, double rows[][N_INPUTS], size_t cap)
{
    FILE *f = fopen(csv_path, "r");
    assert_non_null(f);
    char line[256];
    size_t n = 0;
    assert_non_null(fgets(line, sizeof line, f)); /* header */
    while (n < cap && fgets(line, sizeof line, f) != NULL) {
        double v[N_INPUTS];
        char name[32];
        int serial;
        if (sscanf(line, "%d,%lf,%lf,%lf,%lf,%lf,%lf,%lf,%31s", &serial, &v[0], &v[1], &v[2], &v[3],
                   &v[4], &v[5], &v[6], name) != 9)
            continue;
        if (strcmp(name, cls) == 0)
            memcpy(rows[n++], v, sizeof v);
    }
    fclose(f);
    return n;
}

static int run(const char *cmd)
{
    int st = system(cmd);
    return WIFEXITED(st) ? WEXITSTATUS(st) : 128;
}

static void train(const char *out)
{
    char cmd[1200];
    snprintf(cmd, sizeof cmd,
             "%s train --model gas --input %s --label-column Gas "
             "--features MQ2,MQ3,MQ5,MQ6,MQ7,MQ8,MQ135 --order-column 'Serial Number' "
             "--window 8 --folds 3 --final train --quiet --out %s > %s/train.txt 2>&1",
             CANARY_CLI_PATH, csv_path, out, dir);
    if (run(cmd) != 0) {
        snprintf(cmd, sizeof cmd, "cat %s/train.txt", dir);
        (void)run(cmd);
        fail_msg("canary train --model gas failed");
    }
}

static int group_setup(void **state)
{
    (void)state;
    const char *src = getenv("CANARY_SOURCE_DIR");
    snprintf(csv_path, sizeof csv_path, "%s/tests/fixtures/gas-small.csv", src ? src : ".");
    snprintf(dir, sizeof dir, "/tmp/canary-gas-live-XXXXXX");
    assert_non_null(mkdtemp(dir));
    snprintf(model_path, sizeof model_path, "%s/kitchen.cgas", dir);
    train(model_path);
    return 0;
}

static int group_teardown(void **state)
{
    (void)state;
    char cmd[128];
    snprintf(cmd, sizeof cmd, "rm -rf %s", dir);
    return system(cmd) == 0 ? 0 : -1;
}

static char path_arg[200];

static int start(void **state)
{
    struct daemon *d = calloc(1, sizeof *d);
    snprintf(path_arg, sizeof path_arg, "model.kgas.path=%s", model_path);
    daemon_init(d, "--set", path_arg, "--set", "model.kgas.devices=kitchen-*", "--set",
                "model.kgas.dangerous=Smoke:fire, Mixture", "--set", "model.kgas.probability=0.9",
                "--set", "model.kgas.consecutive=3", "--set", "alerts.offline_severity=off", NULL);
    daemon_start(d);
    base_ts = now_ms() - 3600000;
    *state = d;
    return 0;
}

/* The same model storing the winner's probability only. */
static int start_best(void **state)
{
    struct daemon *d = calloc(1, sizeof *d);
    snprintf(path_arg, sizeof path_arg, "model.kgas.path=%s", model_path);
    daemon_init(d, "--set", path_arg, "--set", "model.kgas.devices=kitchen-*", "--set",
                "model.kgas.dangerous=Smoke", "--set", "model.kgas.probabilities=best", "--set",
                "alerts.offline_severity=off", NULL);
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

static void send_row(struct daemon *d, const char *device, int i, const double *v)
{
    char body[512];
    int len = snprintf(body, sizeof body, "{\"device\":\"%s\",\"seq\":%d,\"ts\":%lld,\"values\":{",
                       device, i + 1, (long long)(base_ts + (int64_t)i * 1000));
    for (int k = 0; k < N_INPUTS; k++)
        len += snprintf(body + len, sizeof body - (size_t)len, "%s\"%s\":%.1f", k ? "," : "",
                        inputs[k], v[k]);
    snprintf(body + len, sizeof body - (size_t)len, ",\"temperature_c\":21.5}}");
    cJSON *j = NULL;
    long st = http_post_json(d, "/api/v1/ingest", body, &j);
    if (st != 200)
        fail_msg("posting %s: %ld", body, st);
    cJSON_Delete(j);
}

struct alert_wait {
    struct daemon *d;
    const char *device;
    const char *kind; /* the alert kind looked for */
    int found;
    char message[1024];
    char severity[16];
};

static bool gas_alert_open(void *arg)
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
        if (cJSON_IsString(metric) && strcmp(metric->valuestring, "model:kgas") == 0 &&
            cJSON_IsString(kind) && strcmp(kind->valuestring, w->kind) == 0) {
            w->found++;
            cJSON *msg = cJSON_GetObjectItem(a, "message");
            cJSON *sev = cJSON_GetObjectItem(a, "severity");
            assert_true(cJSON_IsString(msg) && cJSON_IsString(sev));
            snprintf(w->message, sizeof w->message, "%s", msg->valuestring);
            snprintf(w->severity, sizeof w->severity, "%s", sev->valuestring);
        }
    }
    cJSON_Delete(j);
    return w->found > 0;
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

/* The stored reading of device at row i: its derived values, the winning class and its
 * probability; with `every`, each class's stored probability (gas_p_kgas_<class>, the
 * classes in the model's order) is checked to be a distribution whose largest is the winner's,
 * else none must be stored. */
static const char *const class_metrics[4] = {"gas_p_kgas_mixture", "gas_p_kgas_nogas",
                                             "gas_p_kgas_perfume", "gas_p_kgas_smoke"};

static void stored_class(struct daemon *d, const char *device, int i, double *cls, double *prob,
                         bool every)
{
    char path[200];
    snprintf(path, sizeof path, "/api/v1/devices/%s/readings?from=%lld&limit=1", device,
             (long long)(base_ts + (int64_t)i * 1000));
    cJSON *j = NULL;
    assert_int_equal(http_get_json(d, path, &j), 200);
    cJSON *r = cJSON_GetArrayItem(cJSON_GetObjectItem(j, "readings"), 0);
    assert_non_null(r);
    cJSON *values = cJSON_GetObjectItem(r, "values");
    *cls = json_number(cJSON_GetObjectItem(values, "gas_class_kgas"), "value");
    *prob = json_number(cJSON_GetObjectItem(values, "gas_prob_kgas"), "value");
    double sum = 0, best = -1;
    int best_k = -1, stored = 0;
    for (int k = 0; k < 4; k++) {
        cJSON *v = cJSON_GetObjectItem(values, class_metrics[k]);
        if (v == NULL)
            continue;
        stored++;
        double p = json_number(v, "value");
        assert_true(p >= 0 && p <= 1);
        sum += p;
        if (p > best)
            best = p, best_k = k;
    }
    if (!every || isnan(*cls)) {
        assert_int_equal(stored, 0);
    } else {
        assert_int_equal(stored, 4);
        assert_true(fabs(sum - 1) < 1e-5);
        assert_true(best_k == (int)*cls);
        assert_true(fabs(best - *prob) < 1e-9);
    }
    cJSON_Delete(j);
}

/* GET /api/v1/devices/<id>/latest: the model's newest prediction with every class's
 * probability (kept in memory, not stored); *cls gets the class name ("" when none). */
static void latest_prediction(struct daemon *d, const char *device, char *cls, size_t len,
                              double *prob)
{
    char path[160];
    snprintf(path, sizeof path, "/api/v1/devices/%s/latest", device);
    cJSON *j = NULL;
    assert_int_equal(http_get_json(d, path, &j), 200);
    cJSON *models = cJSON_GetObjectItem(j, "models");
    assert_true(cJSON_IsObject(models));
    cJSON *m = cJSON_GetObjectItem(models, "kgas");
    cls[0] = '\0';
    *prob = NAN;
    if (m != NULL) {
        assert_string_equal(cJSON_GetObjectItem(m, "type")->valuestring, "gas");
        assert_true(json_number(m, "ts_ms") > 0);
        snprintf(cls, len, "%s", cJSON_GetObjectItem(m, "class")->valuestring);
        *prob = json_number(m, "probability");
        cJSON *all = cJSON_GetObjectItem(m, "probabilities");
        assert_int_equal(cJSON_GetArraySize(all), 4);
        double sum = 0, best = 0;
        cJSON *p;
        cJSON_ArrayForEach(p, all)
        {
            assert_true(p->valuedouble >= 0 && p->valuedouble <= 1);
            sum += p->valuedouble;
            best = p->valuedouble > best ? p->valuedouble : best;
        }
        assert_true(fabs(sum - 1) < 1e-5);
        assert_true(best == *prob);
        assert_true(json_number(all, cls) == *prob);
    }
    cJSON_Delete(j);
}

/* Clean air: classified NoGas, every class's probability stored, no alert. Smoke (a class
 * configured "Smoke:fire"): one fire alert after three readings in a row, naming the class
 * and the probability, and no gas_leak alert. Another device the model does not apply to
 * gets no class. */
static void test_classes_stored_and_alert(void **state)
{
    struct daemon *d = *state;
    static double clean[MAX_ROWS][N_INPUTS], smoke[MAX_ROWS][N_INPUTS];
    size_t n_clean = class_rows("NoGas", clean, MAX_ROWS);
    size_t n_smoke = class_rows("Smoke", smoke, MAX_ROWS);
    assert_true(n_clean >= 40 && n_smoke >= 40);
    int i = 0;
    for (; i < 40; i++) {
        send_row(d, "kitchen-1", i, clean[i]);
        send_row(d, "hall-1", i, clean[i]);
    }
    struct alert_wait w = {d, "kitchen-1", "fire", 0, "", ""};
    assert_false(gas_alert_open(&w));
    double cls, prob;
    stored_class(d, "kitchen-1", i - 1, &cls, &prob, true);
    assert_true(cls == 1); /* classes sorted: Mixture, NoGas, Perfume, Smoke */
    assert_true(prob > 0.5 && prob <= 1);
    char name[32];
    double p;
    latest_prediction(d, "kitchen-1", name, sizeof name, &p);
    assert_string_equal(name, "NoGas");
    assert_true(fabs(p - prob) < 1e-5); /* the stored winner's probability */
    stored_class(d, "hall-1", i - 1, &cls, &prob, true);
    assert_true(isnan(cls) && isnan(prob));
    latest_prediction(d, "hall-1", name, sizeof name, &p);
    assert_string_equal(name, "");
    /* GET /api/v1/latest: the same per device. */
    cJSON *every = NULL;
    assert_int_equal(http_get_json(d, "/api/v1/latest", &every), 200);
    cJSON *dev;
    int with_model = 0;
    cJSON_ArrayForEach(dev, cJSON_GetObjectItem(every, "devices"))
    {
        cJSON *m = cJSON_GetObjectItem(cJSON_GetObjectItem(dev, "models"), "kgas");
        const char *id = cJSON_GetObjectItem(dev, "device")->valuestring;
        if (m != NULL) {
            with_model++;
            assert_string_equal(id, "kitchen-1");
            assert_string_equal(cJSON_GetObjectItem(m, "class")->valuestring, "NoGas");
        }
    }
    assert_int_equal(with_model, 1);
    cJSON_Delete(every);

    for (int k = 0; k < 20; k++, i++)
        send_row(d, "kitchen-1", i, smoke[k]);
    assert_true(wait_until(gas_alert_open, &w, 5000));
    assert_int_equal(w.found, 1);
    assert_string_equal(w.severity, "critical");
    if (strstr(w.message, "Possible fire") == NULL ||
        strstr(w.message, "reads Smoke with probability") == NULL ||
        strstr(w.message, "kgas") == NULL || strstr(w.message, "3 readings in a row") == NULL)
        fail_msg("message: %s", w.message);
    struct alert_wait leak = {d, "kitchen-1", "gas_leak", 0, "", ""};
    assert_false(gas_alert_open(&leak));
    stored_class(d, "kitchen-1", i - 1, &cls, &prob, true);
    assert_true(cls == 3);
    assert_true(prob >= 0.9);
    latest_prediction(d, "kitchen-1", name, sizeof name, &p);
    assert_string_equal(name, "Smoke");
    assert_true(fabs(p - prob) < 1e-5);

    struct alert_wait other = {d, "hall-1", "fire", 0, "", ""};
    assert_false(gas_alert_open(&other));

    /* The explanation (the SMS text) carries the message's class and probability. */
    cJSON *j = NULL;
    assert_int_equal(http_get_json(d, "/api/v1/alerts?device=kitchen-1", &j), 200);
    cJSON *a = cJSON_GetArrayItem(cJSON_GetObjectItem(j, "alerts"), 0);
    assert_non_null(a);
    char path[96];
    snprintf(path, sizeof path, "/api/v1/alerts/%.0f", json_number(a, "id"));
    cJSON_Delete(j);
    struct http_response r;
    assert_int_equal(http_call(d, "GET", path, NULL, NULL, 0, &r), 0);
    assert_int_equal(r.status, 200);
    assert_non_null(strstr(r.body, "Smoke"));
    http_response_free(&r);
}

/* Mixture, a dangerous class without a kind of its own, raises the section's: gas_leak, and
 * no fire alert. */
static void test_class_kinds(void **state)
{
    struct daemon *d = *state;
    static double mix[MAX_ROWS][N_INPUTS];
    size_t n_mix = class_rows("Mixture", mix, MAX_ROWS);
    assert_true(n_mix >= 40);
    for (int i = 0; i < 40; i++)
        send_row(d, "kitchen-2", i, mix[i]);
    struct alert_wait leak = {d, "kitchen-2", "gas_leak", 0, "", ""};
    assert_true(wait_until(gas_alert_open, &leak, 5000));
    assert_int_equal(leak.found, 1);
    if (strstr(leak.message, "Possible gas leak") == NULL ||
        strstr(leak.message, "reads Mixture") == NULL)
        fail_msg("message: %s", leak.message);
    struct alert_wait fire = {d, "kitchen-2", "fire", 0, "", ""};
    assert_false(gas_alert_open(&fire));
    double cls, prob;
    stored_class(d, "kitchen-2", 39, &cls, &prob, true);
    assert_true(cls == 0);
}

/* probabilities = best: the class and the winner's probability only. */
static void test_best_probability_only(void **state)
{
    struct daemon *d = *state;
    static double clean[MAX_ROWS][N_INPUTS];
    assert_true(class_rows("NoGas", clean, MAX_ROWS) >= 20);
    for (int i = 0; i < 20; i++)
        send_row(d, "kitchen-1", i, clean[i]);
    double cls, prob;
    stored_class(d, "kitchen-1", 19, &cls, &prob, false);
    assert_true(cls == 1 && prob > 0.5);
    cJSON *j = NULL;
    assert_int_equal(http_get_json(d, "/api/v1/models", &j), 200);
    cJSON *stored = cJSON_GetObjectItem(model_of(j, "kgas"), "stored_as");
    assert_null(cJSON_GetObjectItem(stored, "probabilities"));
    cJSON_Delete(j);
}

/* GET /api/v1/models: the gas model with its classes, keys and held-out figures. */
static void test_models_listing(void **state)
{
    struct daemon *d = *state;
    cJSON *j = NULL;
    assert_int_equal(http_get_json(d, "/api/v1/models", &j), 200);
    cJSON *m = model_of(j, "kgas");
    assert_non_null(m);
    assert_string_equal(cJSON_GetObjectItem(m, "type")->valuestring, "gas");
    assert_int_equal(cJSON_GetArraySize(cJSON_GetObjectItem(m, "classes")), 4);
    cJSON *danger = cJSON_GetObjectItem(m, "dangerous");
    assert_int_equal(cJSON_GetArraySize(danger), 2);
    assert_string_equal(cJSON_GetArrayItem(danger, 0)->valuestring, "Mixture");
    assert_string_equal(cJSON_GetArrayItem(danger, 1)->valuestring, "Smoke");
    assert_string_equal(cJSON_GetArrayItem(cJSON_GetObjectItem(m, "metrics"), 0)->valuestring,
                        "mq2");
    assert_true(json_number(m, "probability") == 0.9);
    assert_true(json_number(m, "consecutive") == 3);
    assert_true(json_number(m, "window") == 8);
    assert_string_equal(cJSON_GetObjectItem(m, "window_features")->valuestring, "mean");
    assert_string_equal(cJSON_GetObjectItem(m, "alert_kind")->valuestring, "gas_leak");
    cJSON *kinds = cJSON_GetObjectItem(m, "alert_kinds");
    assert_int_equal(cJSON_GetArraySize(kinds), 2);
    assert_string_equal(cJSON_GetObjectItem(kinds, "Smoke")->valuestring, "fire");
    assert_string_equal(cJSON_GetObjectItem(kinds, "Mixture")->valuestring, "gas_leak");
    cJSON *each = cJSON_GetObjectItem(cJSON_GetObjectItem(m, "stored_as"), "probabilities");
    assert_int_equal(cJSON_GetArraySize(each), 4);
    assert_string_equal(cJSON_GetObjectItem(each, "NoGas")->valuestring, "gas_p_kgas_nogas");
    assert_string_equal(json_number(m, "training.rows") > 0 ? "ok" : "no", "ok");
    cJSON *ev = cJSON_GetObjectItem(m, "evaluation");
    assert_true(cJSON_IsObject(ev));
    assert_string_equal(cJSON_GetObjectItem(ev, "split")->valuestring, "time");
    double acc = json_number(ev, "accuracy");
    assert_true(acc > 0.5 && acc <= 1);
    assert_true(json_number(ev, "rows") > 0);
    assert_string_equal(
        cJSON_GetObjectItem(cJSON_GetObjectItem(m, "stored_as"), "class")->valuestring,
        "gas_class_kgas");
    cJSON_Delete(j);
}

/* A damaged file is refused by a reload (nothing changes); a good one is taken. */
static void test_reload(void **state)
{
    struct daemon *d = *state;
    char cmd[1024];
    snprintf(cmd, sizeof cmd, "cp %s %s.good && head -c 500 %s.good > %s.tmp && mv %s.tmp %s",
             model_path, model_path, model_path, model_path, model_path, model_path);
    assert_int_equal(run(cmd), 0);
    cJSON *j = NULL;
    assert_int_equal(http_post_json(d, "/api/v1/models/reload", "", &j), 422);
    const char *msg = cJSON_GetObjectItem(cJSON_GetObjectItem(j, "error"), "message")->valuestring;
    assert_non_null(strstr(msg, "model.kgas"));
    assert_non_null(strstr(msg, "unchanged"));
    cJSON_Delete(j);
    snprintf(cmd, sizeof cmd, "mv %s.good %s", model_path, model_path);
    assert_int_equal(run(cmd), 0);
    assert_int_equal(http_post_json(d, "/api/v1/models/reload", "", &j), 200);
    assert_true(json_number(j, "generation") == 2);
    assert_string_equal(cJSON_GetObjectItem(model_of(j, "kgas"), "type")->valuestring, "gas");
    cJSON_Delete(j);
}

/* canaryd will not start with a gas model it cannot use, and says which and why. */
static void test_refuses_a_bad_model_at_start(void **state)
{
    (void)state;
    char bad[160], cmd[1400], out[200];
    snprintf(bad, sizeof bad, "%s/bad.cgas", dir);
    /* Damaged: one byte flipped in the middle. */
    snprintf(cmd, sizeof cmd,
             "cp %s %s && printf 'X' | dd of=%s bs=1 seek=2000 conv=notrunc 2>/dev/null",
             model_path, bad, bad);
    assert_int_equal(run(cmd), 0);
    struct {
        const char *path, *dangerous, *expect;
        int status; /* 1: the model cannot be used; 2: the configuration is wrong */
    } cases[] = {
        {bad, "Smoke", "damaged", 1},
        {model_path, "Smoke, Fire", "dangerous class 'Fire' is not one of the model's classes", 1},
        {model_path, "Smoke:flood", "'flood' is not an alert kind a gas model raises", 2},
        {model_path, "Smoke, :fire", "':fire' names no class", 1},
    };
    for (size_t c = 0; c < sizeof cases / sizeof cases[0]; c++) {
        snprintf(cmd, sizeof cmd,
                 "%s --listen 127.0.0.1:0 --db %s/x.db --set model.kgas.path=%s "
                 "--set model.kgas.devices='*' --set 'model.kgas.dangerous=%s' > %s/out.txt 2>&1",
                 CANARYD_PATH, dir, cases[c].path, cases[c].dangerous, dir);
        assert_int_equal(run(cmd), cases[c].status);
        snprintf(out, sizeof out, "grep -q 'model.kgas' %s/out.txt", dir);
        assert_int_equal(run(out), 0);
        snprintf(cmd, sizeof cmd, "grep -q \"%s\" %s/out.txt", cases[c].expect, dir);
        if (run(cmd) != 0) {
            snprintf(cmd, sizeof cmd, "cat %s/out.txt", dir);
            (void)run(cmd);
            fail_msg("case %zu: the log does not say '%s'", c, cases[c].expect);
        }
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_classes_stored_and_alert, start, stop),
        cmocka_unit_test_setup_teardown(test_class_kinds, start, stop),
        cmocka_unit_test_setup_teardown(test_best_probability_only, start_best, stop),
        cmocka_unit_test_setup_teardown(test_models_listing, start, stop),
        cmocka_unit_test_setup_teardown(test_reload, start, stop),
        cmocka_unit_test(test_refuses_a_bad_model_at_start),
    };
    return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
