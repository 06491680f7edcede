/* test_models.c — the live-model plumbing that needs no model file: [model.<name>]
 * configuration (fields, errors, validation, writing back), which devices a model applies
 * to (ids, globs, kind), and the mapping of model scores onto the common anomaly scale. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include "core/config.h"
#include "core/error.h"
#include "models/model_live.h"
#include "models/models.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

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

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_config_fields_and_errors),
        cmocka_unit_test(test_a_model_without_devices_is_refused),
        cmocka_unit_test(test_which_devices_a_model_applies_to),
        cmocka_unit_test(test_score_scale),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
