/* test_gas_cli.c — `canary train --model gas` and `canary eval` on a gas model
 * (src/cli/train.c, src/cli/eval.c), called in-process: a labelled CSV in a temporary
 * directory trains a bundle that loads and classifies, eval prints its figures and writes
 * both plots, and bad usage, a missing column, an unknown class and a damaged model file
 * fail with the documented exit status. */
#include "cli/commands.h"
#include "core/error.h"
#include "ml/gas.h"
#include "unit_support.h"

#include <math.h>
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

struct dir {
    char path[64];
    char csv[128], model[128], plots[128], other[128];
};

/* Three classes recorded one after the other, 4 sensors whose ratios tell them apart. */
static void write_csv(const char *path, const char *const *classes, int n_classes, int rows)
{
    FILE *f = fopen(path, "w");
    assert_non_null(f);
    fprintf(f, "Serial Number,MQ2,MQ3,MQ5,MQ7,Gas\n");
    struct test_rng g = {42};
    for (int k = 0; k < n_classes; k++)
        for (int r = 0; r < rows; r++) {
            fprintf(f, "%d", r);
            for (int i = 0; i < 4; i++)
                fprintf(f, ",%.1f",
                        (300 + 40 * i + 70 * ((k + i) % 3)) * (1 + 0.04 * test_rng_gauss(&g)));
            fprintf(f, ",%s\n", classes[k]);
        }
    fclose(f);
}

static int setup(void **state)
{
    struct dir *d = calloc(1, sizeof *d);
    snprintf(d->path, sizeof d->path, "/tmp/test_gas_cli_XXXXXX");
    if (!mkdtemp(d->path))
        return -1;
    snprintf(d->csv, sizeof d->csv, "%s/gas.csv", d->path);
    snprintf(d->model, sizeof d->model, "%s/gas.cgas", d->path);
    snprintf(d->plots, sizeof d->plots, "%s/plots", d->path);
    snprintf(d->other, sizeof d->other, "%s/other.csv", d->path);
    const char *classes[] = {"NoGas", "Smoke", "Perfume"};
    write_csv(d->csv, classes, 3, 100);
    *state = d;
    return 0;
}

static int teardown(void **state)
{
    struct dir *d = *state;
    const char *files[] = {"gas.csv", "gas.cgas", "plots/confusion.svg", "plots/roc.svg",
                           "other.csv"};
    char p[256];
    for (size_t i = 0; i < sizeof files / sizeof *files; i++) {
        snprintf(p, sizeof p, "%s/%s", d->path, files[i]);
        unlink(p);
    }
    rmdir(d->plots);
    rmdir(d->path);
    free(d);
    return 0;
}

static int run(int (*cmd)(int, char **), const char *const *args)
{
    char *argv[32];
    int argc = 0;
    for (; args[argc]; argc++)
        argv[argc] = (char *)args[argc];
    argv[argc] = NULL;
    fflush(stdout);
    return cmd(argc, argv);
}

static void test_train_and_eval(void **state)
{
    struct dir *d = *state;
    const char *train[] = {"train",
                           "--model",
                           "gas",
                           "--input",
                           d->csv,
                           "--label-column",
                           "Gas",
                           "--features",
                           "MQ2,MQ3,MQ5,MQ7",
                           "--order-column",
                           "Serial Number",
                           "--window",
                           "8",
                           "--folds",
                           "3",
                           "--output",
                           d->model,
                           "--quiet",
                           NULL};
    assert_int_equal(run(cmd_train, train), 0);
    struct gas_model *m = NULL;
    char err[256];
    assert_int_equal(gas_load(d->model, &m, err, sizeof err), 0);
    const struct gas_meta *meta = gas_model_meta(m);
    assert_string_equal(meta->label_column, "Gas");
    assert_string_equal(meta->order_column, "Serial Number");
    assert_string_equal(meta->eval_split, "time");
    assert_int_equal(meta->eval_rows, 60); /* 20% of 100 rows of 3 classes */
    assert_true(meta->eval_accuracy > 0.9);
    assert_int_equal(gas_n_classes(m), 3);
    assert_string_equal(gas_class_name(m, 0), "NoGas");
    assert_int_equal(gas_model_params(m)->window, 8);
    gas_free(m);

    const char *eval[] = {"eval", "--model", d->model, "--input",
                          d->csv, "--plots", d->plots, NULL};
    assert_int_equal(run(cmd_eval, eval), 0);
    char p[256];
    struct stat st;
    snprintf(p, sizeof p, "%s/confusion.svg", d->plots);
    assert_int_equal(stat(p, &st), 0);
    assert_true(st.st_size > 500);
    snprintf(p, sizeof p, "%s/roc.svg", d->plots);
    assert_int_equal(stat(p, &st), 0);
    assert_true(st.st_size > 500);
    const char *eval_rf[] = {"eval", "--model",   d->model,        "--input",
                             d->csv, "--learner", "random_forest", NULL};
    assert_int_equal(run(cmd_eval, eval_rf), 0);

    /* A class the model does not know. */
    const char *classes[] = {"NoGas", "Steam"};
    write_csv(d->other, classes, 2, 20);
    const char *eval_other[] = {"eval", "--model", d->model, "--input", d->other, NULL};
    assert_int_equal(run(cmd_eval, eval_other), 1);

    /* A damaged model file. */
    FILE *f = fopen(d->model, "r+b");
    assert_non_null(f);
    fseek(f, 200, SEEK_SET);
    fputc(0x7f, f);
    fclose(f);
    const char *eval_bad[] = {"eval", "--model", d->model, "--input", d->csv, NULL};
    assert_int_equal(run(cmd_eval, eval_bad), 1);
}

static void test_bad_usage(void **state)
{
    struct dir *d = *state;
    const char *no_label[] = {"train",      "--model", "gas",   "--input", d->csv,
                              "--features", "MQ2",     "--out", d->model,  NULL};
    assert_int_equal(run(cmd_train, no_label), 2);
    const char *bad_split[] = {"train",          "--model", "gas",        "--input", d->csv,
                               "--label-column", "Gas",     "--features", "MQ2",     "--split",
                               "sometimes",      "--out",   d->model,     NULL};
    assert_int_equal(run(cmd_train, bad_split), 2);
    const char *missing_col[] = {"train",          "--model", "gas",        "--input",  d->csv,
                                 "--label-column", "Gas",     "--features", "MQ2,MQ99", "--out",
                                 d->model,         "--quiet", NULL};
    assert_int_equal(run(cmd_train, missing_col), 1);
    const char *bad_model[] = {"train", "--model", "svm",    "--input",
                               d->csv,  "--out",   d->model, NULL};
    assert_int_equal(run(cmd_train, bad_model), 2);
    const char *eval_no_input[] = {"eval", "--model", d->model, NULL};
    assert_int_equal(run(cmd_eval, eval_no_input), 2);
    /* Window features: an unknown one, an empty list, a slope over one reading. */
    const char *bad_wf[][2] = {{"8", "median"}, {"8", ""}, {"8", "mean,mean"}, {"1", "slope"}};
    for (size_t i = 0; i < sizeof bad_wf / sizeof bad_wf[0]; i++) {
        const char *args[] = {"train",      "--model",        "gas",        "--input",
                              d->csv,       "--label-column", "Gas",        "--features",
                              "MQ2,MQ3",    "--window",       bad_wf[i][0], "--window-features",
                              bad_wf[i][1], "--out",          d->model,     NULL};
        assert_int_equal(run(cmd_train, args), 2);
    }
}

/* --window-features mean,slope: trained, kept in the bundle, and eval builds the same rows
 * from the file (the model's own window features). */
static void test_window_slope(void **state)
{
    struct dir *d = *state;
    const char *train[] = {"train",
                           "--model",
                           "gas",
                           "--input",
                           d->csv,
                           "--label-column",
                           "Gas",
                           "--features",
                           "MQ2,MQ3,MQ5,MQ7",
                           "--order-column",
                           "Serial Number",
                           "--window",
                           "8",
                           "--window-features",
                           "mean,slope",
                           "--folds",
                           "3",
                           "--output",
                           d->model,
                           "--quiet",
                           NULL};
    assert_int_equal(run(cmd_train, train), 0);
    struct gas_model *m = NULL;
    char err[256];
    assert_int_equal(gas_load(d->model, &m, err, sizeof err), 0);
    assert_int_equal(gas_model_params(m)->window_stats, GAS_WINDOW_ALL);
    assert_int_equal(gas_row_len(m), 3 * 4);
    assert_true(gas_model_meta(m)->eval_accuracy > 0.9);
    gas_free(m);
    const char *eval[] = {"eval", "--model", d->model, "--input", d->csv, NULL};
    assert_int_equal(run(cmd_eval, eval), 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_train_and_eval),
        cmocka_unit_test(test_bad_usage),
        cmocka_unit_test(test_window_slope),
    };
    return cmocka_run_group_tests_name("gas cli", tests, setup, teardown);
}
