/* test_models.c — the live-model plumbing: [model.<name>] configuration (fields, errors,
 * validation, writing back; the gas classifier's dangerous / probability / alert keys),
 * which devices a model applies to (ids, globs, kind), the mapping of model scores onto the
 * common anomaly scale, and a gas classifier live (a small bundle trained here): loaded by
 * its magic, checked against its keys, classifying a device's readings, and its alert
 * opening only after `consecutive` dangerous readings in a row. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include "core/config.h"
#include "core/error.h"
#include "decide/decide.h"
#include "ml/gas.h"
#include "models/model_live.h"
#include "models/models.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static int set(struct canary_config *c, const char *key, const char *value, char *err,
               size_t errlen)
{
    return config_set(c, key, value, CONFIG_SRC_FLAG, err, errlen);
}

static void test_config_fields_and_errors(void **state)
{
    (void)state;
    struct canary_config c;
    config_init(&c);
    char err[512];
    assert_int_equal(c.models.consecutive, 3);
    assert_int_equal(set(&c, "model.boiler-1.path", "/tmp/b.cif", err, sizeof err), 0);
    assert_int_equal(set(&c, "model.boiler-1.devices", "site-a-*, kitchen-1", err, sizeof err), 0);
    assert_int_equal(set(&c, "model.boiler-1.consecutive", "5", err, sizeof err), 0);
    assert_int_equal(set(&c, "model.boiler-1.threshold", "0.62", err, sizeof err), 0);
    assert_int_equal(set(&c, "model.kind_model.path", "/tmp/k.cif", err, sizeof err), 0);
    assert_int_equal(set(&c, "model.kind_model.kind", "boiler", err, sizeof err), 0);
    assert_int_equal(c.n_model_defs, 2);
    assert_string_equal(c.model_defs[0].name, "boiler-1");
    assert_int_equal(c.model_defs[0].consecutive, 5);
    assert_true(c.model_defs[0].threshold == 0.62);
    assert_true(isnan(c.model_defs[1].threshold));
    assert_int_equal(config_validate(&c, err, sizeof err), 0);

    struct {
        const char *key, *value, *expect;
    } bad[] = {
        {"model.a b.path", "x", "expected model.<name>.<field>"},
        {"model..path", "x", "expected model.<name>.<field>"},
        {"model.x.colour", "red", "unknown field 'colour'"},
        {"model.x.consecutive", "0", "whole number from 1 to 1000"},
        {"model.x.consecutive", "3x", "whole number from 1 to 1000"},
        {"model.x.threshold", "1.5", "between 0 and 1"},
        {"model.x.threshold", "nan", "between 0 and 1"},
        {"model.x.path", "", "file path"},
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        err[0] = '\0';
        assert_int_not_equal(set(&c, bad[i].key, bad[i].value, err, sizeof err), 0);
        if (strstr(err, bad[i].expect) == NULL)
            fail_msg("%s=%s: '%s' does not say '%s'", bad[i].key, bad[i].value, err, bad[i].expect);
    }
    /* model.x now exists without a path: validation names it. */
    assert_int_not_equal(config_validate(&c, err, sizeof err), 0);
    assert_non_null(strstr(err, "model.x: no path"));

    /* Written back in file syntax. */
    char *text = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&text, &len);
    config_write(&c, f, false);
    fclose(f);
    assert_non_null(strstr(text, "[model.boiler-1]\npath = /tmp/b.cif\n"
                                 "devices = site-a-*, kitchen-1\nconsecutive = 5\n"));
    assert_non_null(strstr(text, "[model.kind_model]\npath = /tmp/k.cif\nkind = boiler\n"));
    free(text);
    config_free(&c);
}

static void test_a_model_without_devices_is_refused(void **state)
{
    (void)state;
    struct canary_config c;
    config_init(&c);
    char err[512];
    assert_int_equal(set(&c, "model.m.path", "/tmp/m.cif", err, sizeof err), 0);
    assert_int_not_equal(config_validate(&c, err, sizeof err), 0);
    assert_non_null(strstr(err, "applies to no device"));
    config_free(&c);
}

static void test_which_devices_a_model_applies_to(void **state)
{
    (void)state;
    struct model_entry e;
    memset(&e, 0, sizeof e);
    snprintf(e.def.devices, sizeof e.def.devices, " site-a-*,kitchen-1 , lab-?");
    assert_true(model_entry_applies(&e, "site-a-0001", NULL));
    assert_true(model_entry_applies(&e, "kitchen-1", NULL));
    assert_true(model_entry_applies(&e, "lab-7", NULL));
    assert_false(model_entry_applies(&e, "lab-77", NULL));
    assert_false(model_entry_applies(&e, "kitchen-10", NULL));
    assert_false(model_entry_applies(&e, "site-b-0001", "boiler"));
    snprintf(e.def.kind, sizeof e.def.kind, "boiler");
    assert_true(model_entry_applies(&e, "site-b-0001", "boiler"));
    assert_false(model_entry_applies(&e, "site-b-0001", "Boiler"));
    assert_false(model_entry_applies(&e, "site-b-0001", NULL));
    e.def.devices[0] = '\0';
    assert_false(model_entry_applies(&e, "site-a-0001", ""));
    snprintf(e.def.devices, sizeof e.def.devices, "*");
    assert_true(model_entry_applies(&e, "anything.at.all", NULL));
}

static void test_score_scale(void **state)
{
    (void)state;
    /* 0.5 and below: nothing; the threshold lands on the detectors' anomaly threshold. */
    assert_true(model_score_unit(0.3, 0.6, 0.5) == 0);
    assert_true(model_score_unit(0.5, 0.6, 0.5) == 0);
    assert_true(fabs(model_score_unit(0.55, 0.6, 0.5) - 0.25) < 1e-12);
    assert_true(fabs(model_score_unit(0.6, 0.6, 0.5) - 0.5) < 1e-12);
    assert_true(fabs(model_score_unit(0.8, 0.6, 0.5) - 0.75) < 1e-12);
    assert_true(model_score_unit(1.0, 0.6, 0.5) == 1);
    assert_true(model_score_unit(NAN, 0.6, 0.5) == 0);
    /* Monotone over the range. */
    double last = -1;
    for (double s = 0.4; s <= 1.0; s += 0.01) {
        double u = model_score_unit(s, 0.63, 0.7);
        assert_true(u >= last && u >= 0 && u <= 1);
        last = u;
    }
}

static void test_gas_config_keys(void **state)
{
    (void)state;
    struct canary_config c;
    config_init(&c);
    char err[512];
    assert_int_equal(set(&c, "model.kitchen-gas.path", "/tmp/k.cgas", err, sizeof err), 0);
    assert_int_equal(set(&c, "model.kitchen-gas.devices", "kitchen-*", err, sizeof err), 0);
    assert_true(isnan(c.model_defs[0].probability));
    assert_string_equal(c.model_defs[0].alert, "");
    assert_int_equal(
        set(&c, "model.kitchen-gas.dangerous", " Smoke : fire ,Mixture", err, sizeof err), 0);
    assert_int_equal(
        set(&c, "model.kitchen-gas.dangerous", "Smoke:fire, Mixture:gas_leak", err, sizeof err), 0);
    assert_int_equal(set(&c, "model.kitchen-gas.dangerous", "Smoke, Mixture", err, sizeof err), 0);
    assert_int_equal(set(&c, "model.kitchen-gas.probability", "0.85", err, sizeof err), 0);
    assert_int_equal(set(&c, "model.kitchen-gas.alert", "fire", err, sizeof err), 0);
    assert_false(c.model_defs[0].best_probability_only);
    assert_int_equal(set(&c, "model.kitchen-gas.probabilities", "best", err, sizeof err), 0);
    assert_true(c.model_defs[0].best_probability_only);
    assert_string_equal(c.model_defs[0].dangerous, "Smoke, Mixture");
    assert_true(c.model_defs[0].probability == 0.85);
    assert_string_equal(c.model_defs[0].alert, "fire");
    assert_int_equal(set(&c, "model.kitchen-gas.probability", "1", err, sizeof err), 0);
    assert_int_equal(config_validate(&c, err, sizeof err), 0);
    struct {
        const char *key, *value, *expect;
    } bad[] = {
        {"model.kitchen-gas.probability", "0", "above 0 and at most 1"},
        {"model.kitchen-gas.probability", "1.01", "above 0 and at most 1"},
        {"model.kitchen-gas.probability", "high", "above 0 and at most 1"},
        {"model.kitchen-gas.alert", "anomaly", "gas_leak or fire"},
        {"model.kitchen-gas.alert", "", "gas_leak or fire"},
        {"model.kitchen-gas.dangerous", "Smoke:flood", "'flood' is not an alert kind"},
        {"model.kitchen-gas.dangerous", "Smoke:", "'' is not an alert kind"},
        {"model.kitchen-gas.dangerous", "Mixture, Smoke:fire:fire", "'fire:fire' is not"},
        {"model.kitchen-gas.probabilities", "some", "all: every class's probability"},
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        err[0] = '\0';
        assert_int_not_equal(set(&c, bad[i].key, bad[i].value, err, sizeof err), 0);
        if (strstr(err, bad[i].expect) == NULL)
            fail_msg("%s=%s: '%s' does not say '%s'", bad[i].key, bad[i].value, err, bad[i].expect);
    }
    char *text = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&text, &len);
    config_write(&c, f, false);
    fclose(f);
    assert_non_null(strstr(text, "[model.kitchen-gas]\npath = /tmp/k.cgas\ndevices = kitchen-*\n"
                                 "dangerous = Smoke, Mixture\nprobability = 1\nalert = fire\n"
                                 "probabilities = best\n"));
    free(text);
    config_free(&c);
}

/* ---- a gas classifier live ---- */

/* Two sensors whose ratio tells clean air from smoke. */
static void gas_sample(int cls, uint64_t *rng, double *x)
{
    *rng = *rng * 6364136223846793005ULL + 1442695040888963407ULL;
    double n = (double)(*rng >> 11) / 9007199254740992.0 - 0.5;
    x[0] = cls ? 700 + 20 * n : 300 + 20 * n;
    x[1] = cls ? 250 + 20 * n : 450 + 20 * n;
}

/* Trains a small bundle (inputs MQ2, MQ3; classes c0 and c1, clean air and smoke; window 4)
 * to path. */
static void train_gas_named(const char *path, const char *c0, const char *c1)
{
    enum { ROWS = 80, WIN = 4 };
    double x[2 * ROWS * 2], rows[2 * ROWS * 4];
    int y[2 * ROWS];
    uint32_t series[2 * ROWS];
    uint64_t rng = 9;
    for (int r = 0; r < 2 * ROWS; r++) {
        y[r] = r / ROWS;
        series[r] = (uint32_t)y[r];
        gas_sample(y[r], &rng, x + 2 * r);
    }
    char err[256];
    assert_int_equal(
        gas_window_rows(WIN, GAS_WINDOW_MEAN, 2, x, 2 * ROWS, series, rows, err, sizeof err), 0);
    struct gas_params p;
    gas_params_default(&p);
    p.window = WIN;
    p.rf_trees = 5;
    p.gbt_rounds = 10;
    p.lr_rounds = 20;
    p.folds = 3;
    const char *inputs[] = {"MQ2", "MQ3"}, *classes[] = {c0, c1};
    struct gas_model *m;
    if (gas_train(rows, 2 * ROWS, 2, y, 2, inputs, classes, &p, "test_models", &m, NULL, err,
                  sizeof err) != 0)
        fail_msg("train: %s", err);
    if (gas_save(m, path, err, sizeof err) != 0)
        fail_msg("save: %s", err);
    gas_free(m);
}

static void train_gas(const char *path)
{
    train_gas_named(path, "NoGas", "Smoke");
}

struct gas_fixture {
    char dir[64], path[128];
    struct canary_config cfg;
    struct decide_params params;
    struct decide_ctx ctx;
    uint64_t next_id;
    struct alert opened[8];
    size_t n_opened;
};

static uint64_t gas_next_id(void *arg)
{
    return ++((struct gas_fixture *)arg)->next_id;
}

static void gas_emit(void *arg, const struct alert *a, const struct alert_event *ev)
{
    struct gas_fixture *fx = arg;
    if (ev != NULL && ev->action == ALERT_ACTION_OPENED && fx->n_opened < 8)
        fx->opened[fx->n_opened++] = *a;
}

static int gas_setup(void **state)
{
    struct gas_fixture *fx = calloc(1, sizeof *fx);
    snprintf(fx->dir, sizeof fx->dir, "/tmp/test_models_XXXXXX");
    assert_non_null(mkdtemp(fx->dir));
    snprintf(fx->path, sizeof fx->path, "%s/kitchen.cgas", fx->dir);
    train_gas(fx->path);
    config_init(&fx->cfg);
    fx->params.fsm.open_after = 3;
    fx->params.fsm.resolve_after_ms = 60000;
    fx->params.fsm.reopen_window_ms = 300000;
    fx->ctx.params = &fx->params;
    fx->ctx.next_alert_id = gas_next_id;
    fx->ctx.id_arg = fx;
    fx->ctx.emit = gas_emit;
    fx->ctx.emit_arg = fx;
    *state = fx;
    return 0;
}

static int gas_teardown(void **state)
{
    struct gas_fixture *fx = *state;
    config_free(&fx->cfg);
    unlink(fx->path);
    rmdir(fx->dir);
    free(fx);
    return 0;
}

static void gas_configure(struct gas_fixture *fx, const char *dangerous, const char *extra_key,
                          const char *extra_value)
{
    char err[512];
    config_free(&fx->cfg);
    config_init(&fx->cfg);
    assert_int_equal(set(&fx->cfg, "model.Kitchen-gas.path", fx->path, err, sizeof err), 0);
    assert_int_equal(set(&fx->cfg, "model.Kitchen-gas.devices", "kitchen-*", err, sizeof err), 0);
    assert_int_equal(set(&fx->cfg, "model.Kitchen-gas.consecutive", "3", err, sizeof err), 0);
    if (dangerous != NULL)
        assert_int_equal(set(&fx->cfg, "model.Kitchen-gas.dangerous", dangerous, err, sizeof err),
                         0);
    if (extra_key != NULL)
        assert_int_equal(set(&fx->cfg, extra_key, extra_value, err, sizeof err), 0);
}

static void test_gas_model_keys_checked_at_load(void **state)
{
    struct gas_fixture *fx = *state;
    struct model_set *set = NULL;
    char err[1024];
    struct {
        const char *dangerous, *key, *value, *expect;
    } bad[] = {
        {NULL, NULL, NULL, "needs model.Kitchen-gas.dangerous"},
        {"Smoke, Fire", NULL, NULL,
         "dangerous class 'Fire' is not one of the model's classes "
         "(NoGas, Smoke)"},
        {"Smoke", "model.Kitchen-gas.threshold", "0.7", "model.Kitchen-gas.probability"},
        {" , ", NULL, NULL, "dangerous names no class (the model's classes: NoGas, Smoke)"},
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        gas_configure(fx, bad[i].dangerous, bad[i].key, bad[i].value);
        err[0] = '\0';
        assert_int_not_equal(model_set_load(&set, &fx->cfg, 1, err, sizeof err), 0);
        if (strstr(err, bad[i].expect) == NULL || strstr(err, "model.Kitchen-gas") == NULL)
            fail_msg("case %zu: '%s' does not say '%s'", i, err, bad[i].expect);
    }
    /* The gas keys on a file that is not a gas bundle. */
    char other[160];
    snprintf(other, sizeof other, "%s/other.cif", fx->dir);
    FILE *f = fopen(other, "w");
    fputs("CANARYIF not really", f);
    fclose(f);
    gas_configure(fx, "Smoke", "model.Kitchen-gas.path", other);
    assert_int_not_equal(model_set_load(&set, &fx->cfg, 1, err, sizeof err), 0);
    assert_non_null(strstr(err, "apply to gas classifier models"));
    unlink(other);
}

/* Feeds one reading of class cls to the device's models and the verdict to decide_gas, as
 * the worker does. Returns the result. */
static struct model_result gas_step(struct gas_fixture *fx, struct device_models *dm,
                                    struct decide_device *dd, int cls, uint64_t *rng, int64_t ts_ms)
{
    double x[2];
    gas_sample(cls, rng, x);
    struct metric_value v[3] = {
        {"mq2", x[0], 0, 0}, {"temperature_c", 21, 0, 0}, {"mq3", x[1], 0, 0}};
    struct reading r = {.device = "kitchen-1", .ts_ms = ts_ms, .values = v, .n_values = 3};
    struct model_result res[4];
    size_t n = device_models_score(dm, &r, res, 4);
    assert_int_equal(n, 1);
    const struct model_entry *e = res[0].entry;
    struct decide_gas_verdict verdict = {
        e->name,        (enum alert_kind)e->alert_kind,
        res[0].above,   gas_class_name(e->gas, (size_t)res[0].danger_class),
        res[0].score,   e->probability,
        e->consecutive, "mq2 1, mq3 2"};
    assert_int_equal(decide_gas(&fx->ctx, dd, "kitchen-1", &verdict, ts_ms), 0);
    return res[0];
}

static void test_gas_model_live_and_consecutive(void **state)
{
    struct gas_fixture *fx = *state;
    gas_configure(fx, "Smoke", "model.Kitchen-gas.probability", "0.8");
    struct model_set *set = NULL;
    char err[1024];
    if (model_set_load(&set, &fx->cfg, 1, err, sizeof err) != 0)
        fail_msg("load: %s", err);
    const struct model_entry *e = &set->entries[0];
    assert_int_equal(e->type, MODEL_GAS);
    assert_null(e->forest);
    assert_int_equal(e->n_metrics, 2);
    assert_string_equal(e->metrics[0], "mq2");
    assert_string_equal(e->metrics[1], "mq3");
    assert_false(e->dangerous[0]);
    assert_true(e->dangerous[1]);
    assert_true(e->probability == 0.8);
    assert_int_equal(e->consecutive, 3);
    assert_int_equal(e->alert_kind, ALERT_KIND_GAS_LEAK);
    assert_string_equal(e->class_metric, "gas_class_kitchen_gas");
    assert_string_equal(e->prob_metric, "gas_prob_kitchen_gas");
    assert_true(e->all_probabilities);
    assert_string_equal(e->class_prob_metric[0], "gas_p_kitchen_gas_nogas");
    assert_string_equal(e->class_prob_metric[1], "gas_p_kitchen_gas_smoke");

    struct device_models dm = {0};
    assert_int_equal(device_models_bind(&dm, set, "kitchen-1", NULL), 0);
    assert_int_equal(dm.n, 1);
    struct decide_device dd;
    memset(&dd, 0, sizeof dd);
    uint64_t rng = 77;
    int64_t ts = 1763676000000LL;
    /* A reading without the model's inputs is not classified. */
    struct metric_value t = {"temperature_c", 21, 0, 0};
    struct reading r = {.device = "kitchen-1", .ts_ms = ts, .values = &t, .n_values = 1};
    struct model_result res[2];
    assert_int_equal(device_models_score(&dm, &r, res, 2), 0);
    /* Clean air: class NoGas, nothing above, no alert. */
    for (int i = 0; i < 10; i++) {
        struct model_result g = gas_step(fx, &dm, &dd, 0, &rng, ts += 1000);
        assert_int_equal(g.gas_class, 0);
        assert_true(g.gas_prob > 0.5 && g.gas_prob <= 1);
        assert_false(g.above);
        assert_int_equal(g.danger_class, 1);
    }
    assert_int_equal(fx->n_opened, 0);
    /* Smoke: the window's mean needs a few readings to move; the alert opens only on the
     * third reading in a row above the level. */
    int above_run = 0, opened_at = -1, smoke = 0;
    for (int i = 0; i < 12 && opened_at < 0; i++, smoke++) {
        struct model_result g = gas_step(fx, &dm, &dd, 1, &rng, ts += 1000);
        above_run = g.above ? above_run + 1 : 0;
        if (fx->n_opened > 0)
            opened_at = above_run;
        else
            assert_true(above_run < 3);
    }
    assert_int_equal(opened_at, 3);
    assert_int_equal(fx->n_opened, 1);
    const struct alert *a = &fx->opened[0];
    assert_int_equal(a->kind, ALERT_KIND_GAS_LEAK);
    assert_int_equal(a->severity, SEVERITY_CRITICAL);
    assert_string_equal(a->metric, "model:Kitchen-gas");
    assert_non_null(strstr(a->message, "reads Smoke with probability 0."));
    assert_non_null(strstr(a->message, "(level 0.80) for 3 readings in a row"));
    assert_int_equal(atomic_load(&e->scored), 10 + smoke);
    decide_device_free(&dd);
    device_models_free(&dm);
    model_set_release(set);
}

/* Class names become metric names (lower-cased, anything else '_'); when two would clash,
 * or one would be too long, every class is named by its index. A class's own alert kind
 * ("Smoke:fire") overrides the section's. */
static void test_gas_class_metric_names_and_kinds(void **state)
{
    struct gas_fixture *fx = *state;
    struct {
        const char *c0, *c1, *m0, *m1;
    } cases[] = {
        {"Clean Air", "CO-2 leak!", "gas_p_kitchen_gas_clean_air", "gas_p_kitchen_gas_co_2_leak_"},
        {"No Gas", "no-gas", "gas_p_kitchen_gas_0", "gas_p_kitchen_gas_1"},
        {"Air", "a-class-name-far-too-long-to-fit-in-a-metric-name-once-prefixed",
         "gas_p_kitchen_gas_0", "gas_p_kitchen_gas_1"},
    };
    char err[1024];
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        train_gas_named(fx->path, cases[i].c0, cases[i].c1);
        char dangerous[128];
        snprintf(dangerous, sizeof dangerous, "%s:fire", cases[i].c1);
        gas_configure(fx, dangerous, NULL, NULL);
        struct model_set *set = NULL;
        if (model_set_load(&set, &fx->cfg, 1, err, sizeof err) != 0)
            fail_msg("case %zu: load: %s", i, err);
        const struct model_entry *e = &set->entries[0];
        /* Classes are kept sorted by name in the bundle. */
        bool swapped = strcmp(gas_class_name(e->gas, 0), cases[i].c0) != 0;
        assert_string_equal(e->class_prob_metric[swapped], cases[i].m0);
        assert_string_equal(e->class_prob_metric[!swapped], cases[i].m1);
        assert_true(e->dangerous[!swapped] && !e->dangerous[swapped]);
        assert_int_equal(e->class_kind[!swapped], ALERT_KIND_FIRE);
        assert_int_equal(e->alert_kind, ALERT_KIND_GAS_LEAK);
        model_set_release(set);
    }
    train_gas(fx->path);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_config_fields_and_errors),
        cmocka_unit_test(test_a_model_without_devices_is_refused),
        cmocka_unit_test(test_which_devices_a_model_applies_to),
        cmocka_unit_test(test_score_scale),
        cmocka_unit_test(test_gas_config_keys),
        cmocka_unit_test_setup_teardown(test_gas_model_keys_checked_at_load, gas_setup,
                                        gas_teardown),
        cmocka_unit_test_setup_teardown(test_gas_class_metric_names_and_kinds, gas_setup,
                                        gas_teardown),
        cmocka_unit_test_setup_teardown(test_gas_model_live_and_consecutive, gas_setup,
                                        gas_teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
