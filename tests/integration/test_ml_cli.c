/* test_ml_cli.c — `canary train`, `canary score` and `canary eval` end to end: this build's
 * canary binary run on real files, as a user runs it.
 *
 * Fixtures (tests/fixtures/): shuttle-2000.csv is the first 2,000 rows of the ODDS shuttle
 * data (/work/shared/data/odds/shuttle.csv: f0..f8, label; 158 anomalies); ml-kitchens.csv
 * is a small synthetic time series (ts in Unix seconds, device, temperature_c, gas_ppm,
 * humidity_pct, label): two kitchens, one row a minute each, with a fire in kitchen-1 and a
 * gas leak in kitchen-2 labelled 1. The store for --from-db is written here through the
 * store API. Every test works in its own temporary directory, removed afterwards. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include "cli_run.h"
#include "harness.h"

#include "core/error.h"
#include "core/reading.h"
#include "store/store.h"

#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

struct fx {
    struct test_dir t;
    char shuttle[512];  /* tests/fixtures/shuttle-2000.csv */
    char kitchens[512]; /* tests/fixtures/ml-kitchens.csv */
};

static int setup(void **state)
{
    struct fx *f = calloc(1, sizeof *f);
    assert_non_null(f);
    test_dir_make(&f->t, "mlcli");
    const char *src = getenv("CANARY_SOURCE_DIR");
    assert_non_null(src);
    snprintf(f->shuttle, sizeof f->shuttle, "%s/tests/fixtures/shuttle-2000.csv", src);
    snprintf(f->kitchens, sizeof f->kitchens, "%s/tests/fixtures/ml-kitchens.csv", src);
    *state = f;
    return 0;
}

static int teardown(void **state)
{
    struct fx *f = *state;
    test_dir_remove(&f->t);
    free(f);
    return 0;
}

#define in_dir(f, name) test_dir_path(&(f)->t, name)

/* Runs `canary <args...>` (NULL-terminated); path_env, when not NULL, replaces $PATH. */
#define run_canary_env(f, path_env, ...)                                                           \
    cli_run((f)->t.dir, (const char *const[]){(path_env) ? path_env_var(path_env) : NULL, NULL},   \
            __VA_ARGS__)
#define run_canary(f, ...) cli_run((f)->t.dir, NULL, __VA_ARGS__, NULL)

/* "PATH=<path>" (one run at a time). */
static const char *path_env_var(const char *path)
{
    static char var[512];
    snprintf(var, sizeof var, "PATH=%s", path);
    return var;
}

/* The number after `key` in text (NAN when absent). */
static double number_after(const char *text, const char *key)
{
    const char *p = strstr(text, key);
    return p ? strtod(p + strlen(key), NULL) : NAN;
}

static size_t count(const char *hay, const char *needle)
{
    size_t n = 0;
    for (const char *p = hay; (p = strstr(p, needle)) != NULL; p += strlen(needle))
        n++;
    return n;
}

/* A well-formed chart: the XML prolog and one <svg> root that closes at the end, balanced
 * groups and texts, the elements a chart of that kind holds, and no NaN or infinity. */
static void check_svg(const char *path, const char *const *must_hold)
{
    size_t len;
    char *svg = file_slurp(path, &len);
    if (svg == NULL)
        fail_msg("%s was not written", path);
    assert_true(strncmp(svg, "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<svg ", 44) == 0);
    assert_true(len > 8 && strcmp(svg + len - 7, "</svg>\n") == 0);
    assert_int_equal(count(svg, "<svg"), 1);
    assert_int_equal(count(svg, "<g"), count(svg, "</g>"));
    assert_int_equal(count(svg, "<text"), count(svg, "</text>"));
    for (const char *const *m = must_hold; *m != NULL; m++)
        expect_contains(svg, *m);
    for (const char *p = svg; *p; p++) {
        /* As printf writes them: after a quote, space, sign, comma or path command, and not
         * the start of a word. */
        bool word = p > svg && strchr("\" -,MLVH", p[-1]) != NULL && !isalpha((unsigned char)p[3]);
        if (word && (strncasecmp(p, "nan", 3) == 0 || strncasecmp(p, "inf", 3) == 0))
            fail_msg("%s holds NaN or inf near: %.40s", path, p > svg + 20 ? p - 20 : svg);
    }
    free(svg);
}

/* ---- raw features on the shuttle slice ------------------------------------------------ */

static void train_shuttle(const struct fx *f, const char *model)
{
    struct cli_run r = run_canary(f, "train", "--model", "iforest", "--input", f->shuttle,
                                  "--contamination", "0.08", "--seed", "7", "--out", model);
    cli_expect_status(&r, 0);
    expect_contains(r.out, "2,000 rows x 9 raw features");
    expect_contains(r.out, "100 trees, psi 256");
    expect_contains(r.out, "threshold");
    expect_contains(r.err, "'label' is left out"); /* the label is never a feature */
    assert_null(strstr(r.err, "trees  ")); /* no progress bar when stderr is not a terminal */
    cli_run_free(&r);
}

static void test_train_score_eval(void **state)
{
    struct fx *f = *state;
    const char *model = in_dir(f, "shuttle.cif");
    train_shuttle(f, model);
    struct stat st;
    assert_int_equal(stat(model, &st), 0);

    /* score: one line per row, row number then score and anomaly. */
    const char *scores = in_dir(f, "scores.csv");
    struct cli_run r =
        run_canary(f, "score", "--model", model, "--input", f->shuttle, "--output", scores);
    cli_expect_status(&r, 0);
    expect_contains(r.err, "2,000 rows scored");
    cli_run_free(&r);
    char *csv = file_slurp(scores, NULL);
    assert_non_null(csv);
    assert_true(strncmp(csv, "row,score,anomaly\n", 18) == 0);
    assert_int_equal(count(csv, "\n"), 2001);
    size_t flagged = 0, lines = 0;
    for (char *line = strchr(csv, '\n') + 1; *line; line = strchr(line, '\n') + 1) {
        long row;
        double s;
        int anomaly;
        assert_int_equal(sscanf(line, "%ld,%lf,%d", &row, &s, &anomaly), 3);
        assert_int_equal(row, (long)++lines);
        assert_true(s > 0 && s <= 1);
        flagged += (size_t)anomaly;
    }
    assert_true(flagged > 100 && flagged < 260); /* contamination 0.08 of 2,000 rows */
    free(csv);

    /* The same to stdout. */
    r = run_canary(f, "score", "--model", model, "--input", f->shuttle);
    cli_expect_status(&r, 0);
    assert_true(strncmp(r.out, "row,score,anomaly\n1,", 20) == 0);
    cli_run_free(&r);

    /* eval: the figures and the plots. */
    const char *plots = in_dir(f, "plots");
    r = run_canary(f, "eval", "--model", model, "--input", f->shuttle, "--plots", plots);
    cli_expect_status(&r, 0);
    double auc = number_after(r.out, "ROC AUC     ");
    double ap = number_after(r.out, "PR AUC      ");
    if (!(auc > 0.9 && auc <= 1) || !(ap > 0.5 && ap <= 1))
        fail_msg("eval printed ROC AUC %g, PR AUC %g:\n%s", auc, ap, r.out);
    expect_contains(r.out, "2,000 rows, 158 labelled anomalous");
    expect_contains(r.out, "precision ");
    expect_contains(r.out, "TP ");
    expect_contains(r.out, "anomaly rate ");
    cli_run_free(&r);
    char p1[256], p2[256];
    snprintf(p1, sizeof p1, "%s/scores.svg", plots);
    snprintf(p2, sizeof p2, "%s/roc.svg", plots);
    check_svg(p1, (const char *const[]){"<title>Anomaly scores: shuttle.cif on shuttle-2000.csv",
                                        ">normal (1,842)</text>", ">anomalous (158)</text>",
                                        "stroke-dasharray", "<rect", "<path", NULL});
    check_svg(p2, (const char *const[]){"<title>ROC curve: shuttle.cif on shuttle-2000.csv",
                                        "Isolation Forest (AUC 0.9", "chance (AUC 0.5)", "<circle",
                                        "false positive rate", NULL});
}

static void test_record(void **state)
{
    struct fx *f = *state;
    const char *model = in_dir(f, "rec.cif");
    train_shuttle(f, model);
    struct cli_run r = run_canary(f, "eval", "--model", model, "--input", f->shuttle);
    cli_expect_status(&r, 0);
    assert_null(strstr(r.out, "recorded"));
    double auc = number_after(r.out, "ROC AUC     ");
    cli_run_free(&r);

    r = run_canary(f, "eval", "--model", model, "--input", f->shuttle, "--record");
    cli_expect_status(&r, 0);
    expect_contains(r.out, "recorded in ");
    cli_run_free(&r);

    /* A later eval shows what was recorded, and the model still scores the same. */
    r = run_canary(f, "eval", "--model", model, "--input", f->shuttle);
    cli_expect_status(&r, 0);
    expect_contains(r.out, "recorded    ROC AUC ");
    expect_contains(r.out, "shuttle-2000.csv (2,000 rows)");
    double recorded = number_after(r.out, "recorded    ROC AUC ");
    assert_true(fabs(recorded - auc) < 1e-4);
    assert_true(fabs(number_after(r.out, "\nROC AUC     ") - auc) < 1e-9);
    cli_run_free(&r);
}

static void test_png(void **state)
{
    struct fx *f = *state;
    const char *model = in_dir(f, "png.cif");
    train_shuttle(f, model);
    /* Without rsvg-convert on the PATH: a clear error before any work, exit 1. */
    struct cli_run r =
        run_canary_env(f, "/nonexistent", "eval", "--model", model, "--input", f->shuttle,
                       "--plots", in_dir(f, "png-none"), "--format", "png", NULL);
    cli_expect_status(&r, 1);
    expect_contains(r.err, "librsvg2-bin");
    expect_contains(r.err, "--format svg");
    cli_run_free(&r);
    struct stat st;
    assert_true(stat(in_dir(f, "png-none"), &st) != 0);

    bool have_tool = access("/usr/bin/rsvg-convert", X_OK) == 0;
    if (!have_tool) {
        fprintf(stderr, "(rsvg-convert is not installed: --format png itself not tried)\n");
        return;
    }
    const char *plots = in_dir(f, "png");
    r = run_canary(f, "eval", "--model", model, "--input", f->shuttle, "--plots", plots, "--format",
                   "png");
    cli_expect_status(&r, 0);
    cli_run_free(&r);
    char path[256];
    snprintf(path, sizeof path, "%s/roc.png", plots);
    size_t len;
    char *png = file_slurp(path, &len);
    assert_non_null(png);
    assert_true(len > 1000 && memcmp(png, "\x89PNG\r\n\x1a\n", 8) == 0);
    free(png);
    snprintf(path, sizeof path, "%s/scores.svg", plots);
    assert_true(stat(path, &st) != 0); /* the temporary SVGs are gone */
}

/* ---- window features on a time series ------------------------------------------------- */

static void test_window_csv(void **state)
{
    struct fx *f = *state;
    const char *model = in_dir(f, "kitchens.cif");
    struct cli_run r =
        run_canary(f, "train", "--model", "iforest", "--input", f->kitchens, "--timestamp-column",
                   "ts", "--device-column", "device", "--window", "16", "--out", model);
    cli_expect_status(&r, 0);
    /* 3 metrics x 7 features + time of day; 15 rows per device fill the window. */
    expect_contains(r.out, "770 rows x 23 window features");
    expect_contains(r.out, "2 devices");
    expect_contains(r.out, "2025-11-20T22:15:00.000Z to 2025-11-21T04:39:07.000Z");
    cli_run_free(&r);

    /* score finds ts and device by itself (the model names them); cold rows are empty. */
    r = run_canary(f, "score", "--model", model, "--input", f->kitchens);
    cli_expect_status(&r, 0);
    assert_true(strncmp(r.out,
                        "row,ts,device,score,anomaly\n"
                        "1,2025-11-20T22:00:00.000Z,kitchen-1,,\n"
                        "2,2025-11-20T22:00:07.000Z,kitchen-2,,\n",
                        104) == 0);
    expect_contains(r.out, "\n31,2025-11-20T22:15:00.000Z,kitchen-1,0.");
    assert_int_equal(count(r.out, "\n"), 801);
    expect_contains(r.err, "30 rows not scored");
    cli_run_free(&r);

    r = run_canary(f, "eval", "--model", model, "--input", f->kitchens, "--plots",
                   in_dir(f, "kplots"));
    cli_expect_status(&r, 0);
    expect_contains(r.out, "30 rows left out");
    expect_contains(r.out, "23 window (window of 16 readings)");
    double auc = number_after(r.out, "ROC AUC     ");
    if (!(auc > 0.9))
        fail_msg("window features: ROC AUC %g\n%s", auc, r.out);
    cli_run_free(&r);

    /* A file whose rows go back in time for a device is refused, naming the row. */
    char *csv = file_slurp(f->kitchens, NULL);
    assert_non_null(csv);
    char *l2 = strchr(csv, '\n') + 1, *l3 = strchr(l2, '\n') + 1, *l4 = strchr(l3, '\n') + 1,
         *l5 = strchr(l4, '\n') + 1;
    FILE *fp = fopen(in_dir(f, "unsorted.csv"), "w");
    assert_non_null(fp);
    fwrite(csv, 1, (size_t)(l2 - csv), fp);
    fwrite(l4, 1, (size_t)(l5 - l4), fp); /* kitchen-1's second row first */
    fwrite(l2, 1, (size_t)(l4 - l2), fp);
    fputs(l5, fp);
    fclose(fp);
    free(csv);
    r = run_canary(f, "train", "--model", "iforest", "--input", in_dir(f, "unsorted.csv"),
                   "--timestamp-column", "ts", "--device-column", "device", "--out",
                   in_dir(f, "unsorted.cif"));
    cli_expect_status(&r, 1);
    expect_contains(r.err, "data row 2 (device 'kitchen-1')");
    expect_contains(r.err, "time order");
    cli_run_free(&r);

    /* Window features need a timestamp column: bad usage. */
    r = run_canary(f, "train", "--model", "iforest", "--input", f->kitchens, "--features", "window",
                   "--out", in_dir(f, "x.cif"));
    cli_expect_status(&r, 2);
    expect_contains(r.err, "--timestamp-column");
    cli_run_free(&r);
}

/* ---- the store -------------------------------------------------------------------------- */

#define DB_T0 1763676000000LL /* 2025-11-20T22:00:00Z */

/* Noise for the synthetic history: a deterministic, roughly normal number (sum of four
 * uniforms from splitmix64 of the inputs), so the same (device, minute, metric) gives the
 * same value in the store and in the CSV export. */
static double noise(int device, int k, int metric)
{
    uint64_t x = ((uint64_t)device << 40) ^ ((uint64_t)k << 8) ^ (uint64_t)metric;
    double sum = 0;
    for (int i = 0; i < 4; i++) {
        x += 0x9E3779B97F4A7C15ULL;
        uint64_t z = x;
        z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ULL;
        z = (z ^ (z >> 27)) * 0x94D049BB133111EBULL;
        z ^= z >> 31;
        sum += (double)(z >> 11) / 9007199254740992.0;
    }
    return (sum - 2) * 1.7; /* mean 0, standard deviation about 1 */
}

static double gas_at(int device, int k)
{
    return 400 + 20 * device + 4 * noise(device, k, 0);
}

static double temperature_at(int device, int k)
{
    return 21 + 0.8 * sin(k / 40.0) + 0.1 * noise(device, k, 1);
}

/* Writes n readings of device number `device` ("kitchen-<device>"), one a minute from
 * minute `from`: gas_ppm and temperature_c, plus noise_db on every third reading (a metric
 * the first model does not use). */
static void write_device(struct store *s, int device, int from, int n)
{
    static const char *const ids[] = {"kitchen-0", "kitchen-1", "kitchen-2"};
    struct reading *r = calloc((size_t)n, sizeof *r);
    struct metric_value *v = calloc((size_t)n * 3, sizeof *v);
    const struct reading **rp = calloc((size_t)n, sizeof *rp);
    assert_true(r && v && rp);
    for (int i = 0; i < n; i++) {
        int k = from + i;
        struct metric_value *mv = &v[i * 3];
        mv[0] = (struct metric_value){.name = "gas_ppm", .value = gas_at(device, k)};
        mv[1] = (struct metric_value){.name = "temperature_c", .value = temperature_at(device, k)};
        mv[2] = (struct metric_value){.name = "noise_db", .value = 40 + noise(device, k, 2)};
        r[i] = (struct reading){.device = ids[device],
                                .seq = (uint64_t)k + 1,
                                .has_seq = true,
                                .has_ts = true,
                                .ts_ms = DB_T0 + (int64_t)k * 60000,
                                .recv_ms = DB_T0 + (int64_t)k * 60000 + 20,
                                .values = mv,
                                .n_values = k % 3 == 0 ? 3 : 2};
        rp[i] = &r[i];
    }
    struct store_batch b = {.readings = rp, .n_readings = (size_t)n};
    char err[256];
    if (store_write(s, &b, err, sizeof err) != 0)
        fail_msg("store_write: %s", err);
    free(r);
    free(v);
    free(rp);
}

static void make_store(const char *path)
{
    struct store_options o = {.path = path, .busy_timeout_ms = 5000};
    struct store *s;
    char err[256];
    if (store_open(&s, &o, err, sizeof err) != 0)
        fail_msg("store_open: %s", err);
    /* Part of the history compacted into chunks, the rest still in the append log. */
    write_device(s, 1, 0, 150);
    write_device(s, 2, 0, 150);
    size_t moved;
    assert_int_equal(store_compact_all(s, &moved, err, sizeof err), 0);
    write_device(s, 1, 150, 50);
    write_device(s, 2, 150, 50);
    store_close(s);
}

static void test_from_db(void **state)
{
    struct fx *f = *state;
    const char *db = in_dir(f, "canary.db");
    make_store(db);

    /* Every device; the metrics both have (noise_db too: every device has it). */
    const char *model = in_dir(f, "db.cif");
    struct cli_run r = run_canary(f, "train", "--model", "iforest", "--from-db", db, "--metric",
                                  "gas_ppm,temperature_c", "--window", "10", "--out", model);
    cli_expect_status(&r, 0);
    /* 200 readings per device; the first 9 fill the windows. */
    expect_contains(r.out, "382 rows x 16 window features");
    expect_contains(r.out, "2 devices");
    expect_contains(r.out, "2025-11-20T22:09:00.000Z to 2025-11-21T01:19:00.000Z");
    cli_run_free(&r);

    /* One device, a time range, the metrics by default (all three it has). */
    r = run_canary(f, "train", "--model", "iforest", "--from-db", db, "--device", "kitchen-2",
                   "--from", "2025-11-20T23:00:00Z", "--to", "1763685000", "--window", "4", "--out",
                   in_dir(f, "db2.cif"));
    cli_expect_status(&r, 0);
    /* 23:00 .. 00:30 is 91 readings; noise_db comes every third reading, so the windows are
     * full once it has 4 values: at the 10th reading of the range. */
    expect_contains(r.out, "82 rows x 23 window features");
    expect_contains(r.out, "x 23 window features, 1 device\n");
    cli_run_free(&r);

    /* One code path for features: the same readings as a CSV file (device by device, as
     * the store gives them, values to the last bit) train the very same forest, so both
     * models score a file identically. */
    FILE *fp = fopen(in_dir(f, "history.csv"), "w");
    assert_non_null(fp);
    fprintf(fp, "timestamp,device,gas_ppm,temperature_c\n");
    for (int d = 1; d <= 2; d++) {
        for (int k = 0; k < 200; k++)
            fprintf(fp, "%lld,kitchen-%d,%.17g,%.17g\n", (long long)(DB_T0 + k * 60000LL), d,
                    gas_at(d, k), temperature_at(d, k));
    }
    fclose(fp);
    const char *csv_model = in_dir(f, "csv.cif");
    r = run_canary(f, "train", "--model", "iforest", "--input", in_dir(f, "history.csv"),
                   "--timestamp-column", "timestamp", "--device-column", "device", "--window", "10",
                   "--out", csv_model);
    cli_expect_status(&r, 0);
    expect_contains(r.out, "382 rows x 16 window features");
    cli_run_free(&r);

    /* A file to score: kitchen-1's first hour with a gas spike, columns in another order. */
    fp = fopen(in_dir(f, "export.csv"), "w");
    assert_non_null(fp);
    fprintf(fp, "device,timestamp,temperature_c,gas_ppm,label\n");
    for (int k = 0; k < 60; k++)
        fprintf(fp, "kitchen-1,%lld,%.3f,%.3f,%d\n", (long long)(DB_T0 + k * 60000LL),
                temperature_at(1, k), k == 50 ? 5000 : gas_at(1, k), k == 50);
    fclose(fp);
    r = run_canary(f, "score", "--model", model, "--input", in_dir(f, "export.csv"));
    cli_expect_status(&r, 0);
    expect_contains(r.out, "row,timestamp,device,score,anomaly\n");
    expect_contains(r.out, "\n51,2025-11-20T22:50:00.000Z,kitchen-1,0.");
    struct cli_run r2 =
        run_canary(f, "score", "--model", csv_model, "--input", in_dir(f, "export.csv"));
    cli_expect_status(&r2, 0);
    assert_string_equal(r.out, r2.out);
    cli_run_free(&r2);
    cli_run_free(&r);

    /* Nothing to learn from: clear messages, exit 1. */
    r = run_canary(f, "train", "--model", "iforest", "--from-db", db, "--metric", "co_ppm", "--out",
                   in_dir(f, "none.cif"));
    cli_expect_status(&r, 1);
    expect_contains(r.err, "no training rows");
    cli_run_free(&r);
    r = run_canary(f, "train", "--model", "iforest", "--from-db", in_dir(f, "missing.db"), "--out",
                   in_dir(f, "none.cif"));
    cli_expect_status(&r, 1);
    expect_contains(r.err, "missing.db");
    cli_run_free(&r);
    /* CSV options do not apply to the store. */
    r = run_canary(f, "train", "--model", "iforest", "--from-db", db, "--columns", "a", "--out",
                   in_dir(f, "none.cif"));
    cli_expect_status(&r, 2);
    cli_run_free(&r);
}

/* ---- errors ----------------------------------------------------------------------------- */

static void write_file(const char *path, const char *text)
{
    FILE *fp = fopen(path, "w");
    assert_non_null(fp);
    fputs(text, fp);
    fclose(fp);
}

static void test_errors(void **state)
{
    struct fx *f = *state;
    const char *model = in_dir(f, "m.cif");
    train_shuttle(f, model);
    struct cli_run r;

    /* A missing input file. */
    r = run_canary(f, "train", "--model", "iforest", "--input", in_dir(f, "nope.csv"), "--out",
                   in_dir(f, "x.cif"));
    cli_expect_status(&r, 1);
    expect_contains(r.err, "nope.csv: No such file");
    cli_run_free(&r);
    r = run_canary(f, "score", "--model", in_dir(f, "nope.cif"), "--input", f->shuttle);
    cli_expect_status(&r, 1);
    expect_contains(r.err, "nope.cif");
    cli_run_free(&r);

    /* Missing columns: all of them named. */
    write_file(in_dir(f, "cols.csv"), "f0,f1,f2,f4,f5,f6,label\n1,2,3,4,5,6,0\n");
    r = run_canary(f, "score", "--model", model, "--input", in_dir(f, "cols.csv"));
    cli_expect_status(&r, 1);
    expect_contains(r.err, "missing 3 of the 9 feature columns: f3, f7, f8");
    cli_run_free(&r);
    r = run_canary(f, "eval", "--model", model, "--input", f->shuttle, "--label-column", "truth");
    cli_expect_status(&r, 1);
    expect_contains(r.err, "no label column 'truth'");
    cli_run_free(&r);

    /* Bad numbers, a bad label. */
    write_file(in_dir(f, "num.csv"), "a,b\n1,2\n3,abc\n");
    r = run_canary(f, "train", "--model", "iforest", "--input", in_dir(f, "num.csv"), "--out",
                   in_dir(f, "x.cif"));
    cli_expect_status(&r, 1);
    expect_contains(r.err, "abc");
    cli_run_free(&r);
    char *shuttle = file_slurp(f->shuttle, NULL);
    assert_non_null(shuttle);
    char *last = strrchr(shuttle, ',');
    last[1] = '7'; /* the last row's label */
    write_file(in_dir(f, "label.csv"), shuttle);
    free(shuttle);
    r = run_canary(f, "eval", "--model", model, "--input", in_dir(f, "label.csv"));
    cli_expect_status(&r, 1);
    expect_contains(r.err, "data row 2000");
    cli_run_free(&r);
    write_file(in_dir(f, "empty.csv"), "");
    r = run_canary(f, "train", "--model", "iforest", "--input", in_dir(f, "empty.csv"), "--out",
                   in_dir(f, "x.cif"));
    cli_expect_status(&r, 1);
    cli_run_free(&r);

    /* A corrupted model (one byte flipped in the middle) and a truncated one. */
    size_t len;
    char *bytes = file_slurp(model, &len);
    assert_non_null(bytes);
    bytes[len / 2] ^= 0x40;
    FILE *fp = fopen(in_dir(f, "bad.cif"), "wb");
    fwrite(bytes, 1, len, fp);
    fclose(fp);
    fp = fopen(in_dir(f, "short.cif"), "wb");
    fwrite(bytes, 1, len / 3, fp);
    fclose(fp);
    free(bytes);
    r = run_canary(f, "score", "--model", in_dir(f, "bad.cif"), "--input", f->shuttle);
    cli_expect_status(&r, 1);
    expect_contains(r.err, "canary score: ");
    expect_contains(r.err, "bad.cif");
    assert_true(r.out[0] == '\0');
    cli_run_free(&r);
    r = run_canary(f, "eval", "--model", in_dir(f, "short.cif"), "--input", f->shuttle);
    cli_expect_status(&r, 1);
    expect_contains(r.err, "short.cif");
    cli_run_free(&r);
    r = run_canary(f, "score", "--model", f->shuttle, "--input", f->shuttle);
    cli_expect_status(&r, 1);
    cli_run_free(&r);

    /* An unwritable output. */
    r = run_canary(f, "train", "--model", "iforest", "--input", f->shuttle, "--out",
                   "/nonexistent-dir/m.cif");
    cli_expect_status(&r, 1);
    expect_contains(r.err, "/nonexistent-dir");
    cli_run_free(&r);
    r = run_canary(f, "score", "--model", model, "--input", f->shuttle, "--output",
                   "/nonexistent-dir/s.csv");
    cli_expect_status(&r, 1);
    cli_run_free(&r);

    /* Bad usage: exit 2 and a pointer to --help. */
    static const char *const bad[][12] = {
        {"train", "--input", "x.csv", "--out", "m.cif"}, /* no --model */
        {"train", "--model", "forest", "--input", "x.csv", "--out", "m.cif"},
        {"train", "--model", "iforest", "--out", "m.cif"},
        {"train", "--model", "iforest", "--input", "x.csv"},
        {"train", "--model", "iforest", "--input", "x.csv", "--from-db", "d", "--out", "m"},
        {"train", "--model", "iforest", "--input", "x.csv", "--out", "m", "--trees", "0"},
        {"train", "--model", "iforest", "--input", "x.csv", "--out", "m", "--contamination", "0.7"},
        {"train", "--model", "iforest", "--input", "x.csv", "--out", "m", "--features", "fft"},
        {"train", "--model", "iforest", "--input", "x.csv", "--out", "m", "--window", "5"},
        {"train", "--model", "iforest", "--input", "x.csv", "--out", "m", "--device", "k"},
        {"train", "--model", "iforest", "--from-db", "d", "--out", "m", "--from", "yesterday"},
        {"train", "--bogus"},
    };
    static const char *const bad2[][12] = {
        {"score", "--input", "x.csv"},
        {"score", "--model", "m.cif"},
        {"score", "--model", "m.cif", "--input", "x.csv", "--threads", "-1"},
        {"eval", "--model", "m.cif", "--input", "x.csv", "--format", "gif", "--plots", "d"},
        {"eval", "--model", "m.cif", "--input", "x.csv", "--format", "png"},
        {"eval", "--model", "m.cif"},
        {"eval", "--model"},
    };
    for (size_t k = 0; k < sizeof bad / sizeof bad[0] + sizeof bad2 / sizeof bad2[0]; k++) {
        const char *const *a =
            k < sizeof bad / sizeof bad[0] ? bad[k] : bad2[k - sizeof bad / sizeof bad[0]];
        r = run_canary_env(f, NULL, a[0], a[1], a[2], a[3], a[4], a[5], a[6], a[7], a[8], a[9],
                           a[10], a[11], NULL);
        if (r.status != 2 || strstr(r.err, "--help") == NULL)
            fail_msg("canary %s %s %s ...: exit %d, wanted 2 and a --help hint; stderr:\n%s", a[0],
                     a[1], a[2] ? a[2] : "", r.status, r.err);
        cli_run_free(&r);
    }
}

static void test_help(void **state)
{
    struct fx *f = *state;
    static const char *const cmds[] = {"train", "score", "eval"};
    for (size_t i = 0; i < 3; i++) {
        struct cli_run r = run_canary(f, cmds[i], "--help");
        cli_expect_status(&r, 0);
        char want[64];
        snprintf(want, sizeof want, "usage: canary %s ", cmds[i]);
        assert_true(strncmp(r.out, want, strlen(want)) == 0);
        expect_contains(r.out, "docs/MODELS.md");
        cli_run_free(&r);
    }
    struct cli_run r = run_canary(f, "--help");
    cli_expect_status(&r, 0);
    expect_contains(r.out, "  train ");
    expect_contains(r.out, "  score ");
    expect_contains(r.out, "  eval ");
    cli_run_free(&r);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_train_score_eval, setup, teardown),
        cmocka_unit_test_setup_teardown(test_record, setup, teardown),
        cmocka_unit_test_setup_teardown(test_png, setup, teardown),
        cmocka_unit_test_setup_teardown(test_window_csv, setup, teardown),
        cmocka_unit_test_setup_teardown(test_from_db, setup, teardown),
        cmocka_unit_test_setup_teardown(test_errors, setup, teardown),
        cmocka_unit_test_setup_teardown(test_help, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
