/* bench_nab.c — canary's streaming detectors on the Numenta Anomaly Benchmark (NAB v1.1).
 *
 * Replays every data file named in NAB's labels (58 files, 365,558 readings) through
 * replay_file() (src/cli/replay.h: the code `canary replay` runs, which is the code canaryd
 * runs per reading), in process, --jobs files at a time, with canaryd's configuration (its
 * defaults, plus any --set). Each file is one device; its `value` column is a metric named
 * "value", which is not in the catalogue: a generic metric, no limits, only the statistical
 * score. The row's score is the anomaly score NAB sees.
 *
 * Then scores the run as NAB does (bench/nab_score.h): per profile, the threshold that
 * maximises the corpus's score, normalised between the null and the perfect detector, and
 * prints it beside the published scoreboard (from ../shared/data/README.md), with the
 * threshold, windows caught and false positives per profile, a breakdown by category for
 * the standard profile, the time taken and the detectors' state size.
 *
 * It writes the run in NAB's own results format so NAB's official scorer can check the
 * figure: <out>/<detector>/<category>/<detector>_<file>.csv with the columns
 * timestamp,value,anomaly_score,label (label 1 inside a window), and
 * <out>/<detector>/<detector>_<profile>_scores.csv as NAB's scoring step writes them
 * (Detector,Profile,File,Threshold,Score,TP,TN,FP,FN,Total_Count and a Totals row).
 *
 * Usage: bench_nab [--data DIR] [--out DIR] [--detector NAME] [--jobs N] [--set KEY=VALUE]...
 *   --data: NAB's root (data/, labels/, config/); default $CANARY_NAB_DIR, else
 *           ../shared/data/nab. --out: default bench/out/nab. Exit status 0, 1 on errors. */
#include "nab_score.h"

#include "cli/ml_common.h"
#include "cli/replay.h"
#include "core/clock.h"
#include "core/config.h"
#include "core/error.h"
#include "detect/detect.h"

#include <errno.h>
#include <limits.h>
#include <math.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

/* The published NAB scoreboard, as ../shared/data/README.md gives it (NAN: not given). */
static const struct {
    const char *name;
    double standard, low_fp, low_fn;
} published[] = {
    {"ARTime", 74.9, 65.1, NAN},           {"Numenta HTM", 70.5, 62.6, NAN},
    {"CAD OSE", 69.9, 67.0, NAN},          {"earthgecko Skyline", 58.2, NAN, NAN},
    {"KNN CAD", 58.0, NAN, NAN},           {"Relative Entropy", 54.6, NAN, NAN},
    {"Random Cut Forest", 51.7, NAN, NAN}, {"Twitter ADVec", 47.1, NAN, NAN},
    {"Windowed Gaussian", 39.6, NAN, NAN}, {"Etsy Skyline", 35.7, NAN, NAN},
};

/* One data file's run. */
struct slot {
    const struct nab_file_windows *labels; /* name and windows */
    size_t n_rows;
    int64_t *ts_ms;          /* n_rows */
    double *score;           /* n_rows */
    size_t *win_lo, *win_hi; /* each window's first and last row */
    int64_t detect_ns;
    int rc;
    char err[1024];
};

struct run {
    const char *data_dir, *out_dir, *detector;
    struct replay_options opt;
    struct slot *slots;
    size_t n;
};

/* mkdir -p of the directory part of path. */
static int make_parents(const char *path)
{
    char buf[PATH_MAX];
    snprintf(buf, sizeof buf, "%s", path);
    for (char *p = buf + 1; *p; p++) {
        if (*p != '/')
            continue;
        *p = '\0';
        if (mkdir(buf, 0755) != 0 && errno != EEXIST)
            return -1;
        *p = '/';
    }
    return 0;
}

/* The shortest %g form of x that reads back as x. */
static void put_double(FILE *out, double x)
{
    char buf[40];
    for (int prec = 15; prec <= 17; prec++) {
        snprintf(buf, sizeof buf, "%.*g", prec, x);
        if (strtod(buf, NULL) == x)
            break;
    }
    fputs(buf, out);
}

/* <out>/<detector>/<category>/<detector>_<file>.csv, as NAB's detectors write them. */
static int write_nab_results(const struct run *run, const struct slot *s,
                             const struct replay_result *r, char *err, size_t errlen)
{
    const char *name = s->labels->name;
    const char *slash = strrchr(name, '/');
    char path[PATH_MAX];
    int len = slash != NULL
                  ? snprintf(path, sizeof path, "%s/%s/%.*s/%s_%s", run->out_dir, run->detector,
                             (int)(slash - name), name, run->detector, slash + 1)
                  : snprintf(path, sizeof path, "%s/%s/%s_%s", run->out_dir, run->detector,
                             run->detector, name);
    if (len < 0 || (size_t)len >= sizeof path || make_parents(path) != 0) {
        snprintf(err, errlen, "%s: cannot create its directory: %s", name, strerror(errno));
        return CANARY_EIO;
    }
    FILE *out = fopen(path, "w");
    if (out == NULL) {
        snprintf(err, errlen, "%.900s: %s", path, strerror(errno));
        return CANARY_EIO;
    }
    fputs("timestamp,value,anomaly_score,label\n", out);
    size_t nw = s->labels->n, k = 0;
    for (size_t i = 0; i < r->data.n_rows; i++) {
        while (k < nw && i > s->win_hi[k])
            k++;
        fprintf(out, "%s,", r->data.devices[i]);
        put_double(out, r->data.x[i]);
        fprintf(out, ",%.9g,%d\n", (double)s->score[i], k < nw && i >= s->win_lo[k]);
    }
    int bad = ferror(out);
    if (fclose(out) != 0 || bad) {
        snprintf(err, errlen, "%.900s: write failed", path);
        return CANARY_EIO;
    }
    return 0;
}

/* One file: replay, keep its timestamps and scores, write its NAB results. */
static void run_file(void *arg, size_t i)
{
    struct run *run = arg;
    struct slot *s = &run->slots[i];
    char path[PATH_MAX];
    snprintf(path, sizeof path, "%s/data/%s", run->data_dir, s->labels->name);
    struct replay_result r;
    char sub[256];
    s->rc = replay_file(&run->opt, path, &r, s->err, sizeof s->err);
    if (s->rc != 0)
        return;
    s->n_rows = r.data.n_rows;
    s->detect_ns = r.detect_ns;
    s->ts_ms = malloc(s->n_rows * sizeof *s->ts_ms);
    s->score = malloc(s->n_rows * sizeof *s->score);
    if (s->ts_ms == NULL || s->score == NULL) {
        snprintf(s->err, sizeof s->err, "%.900s: out of memory", path);
        s->rc = CANARY_ENOMEM;
    } else if ((s->win_lo = calloc(s->labels->n + 1, sizeof *s->win_lo)) == NULL ||
               (s->win_hi = calloc(s->labels->n + 1, sizeof *s->win_hi)) == NULL) {
        snprintf(s->err, sizeof s->err, "%.900s: out of memory", path);
        s->rc = CANARY_ENOMEM;
    } else if ((s->rc = nab_window_rows(r.data.ts_ms, s->n_rows, s->labels->windows, s->labels->n,
                                        s->win_lo, s->win_hi, sub, sizeof sub)) != 0) {
        snprintf(s->err, sizeof s->err, "%s: %s", s->labels->name, sub);
    } else {
        for (size_t k = 0; k < s->n_rows; k++) {
            s->ts_ms[k] = r.data.ts_ms[k];
            /* Every NAB row holds a value in every plausible range: each is scored. */
            s->score[k] = isnan(r.score[k]) ? 0.0 : (double)r.score[k];
        }
        s->rc = write_nab_results(run, s, &r, s->err, sizeof s->err);
    }
    replay_result_free(&r);
}

static int by_name(const void *a, const void *b)
{
    const struct nab_file_windows *x = *(const struct nab_file_windows *const *)a;
    const struct nab_file_windows *y = *(const struct nab_file_windows *const *)b;
    return strcmp(x->name, y->name);
}

/* NAB's <detector>_<profile>_scores.csv for the chosen threshold. */
static int write_nab_scores(const struct run *run, const struct nab_corpus *c,
                            const struct nab_profile *p, const struct nab_result *total)
{
    struct nab_result *pf = calloc(c->n_files ? c->n_files : 1, sizeof *pf);
    if (pf == NULL || nab_score_at(c, p, total->threshold, &(struct nab_result){0}, pf) != 0) {
        free(pf);
        return -1;
    }
    char path[PATH_MAX];
    snprintf(path, sizeof path, "%s/%s/%s_%s_scores.csv", run->out_dir, run->detector,
             run->detector, p->name);
    FILE *out = fopen(path, "w");
    if (out == NULL) {
        free(pf);
        return -1;
    }
    fputs("Detector,Profile,File,Threshold,Score,TP,TN,FP,FN,Total_Count\n", out);
    for (size_t f = 0; f < c->n_files; f++) {
        const struct slot *s = &run->slots[f];
        fprintf(out, "%s,%s,%s,%.9g,%.6f,%zu,%zu,%zu,%zu,%zu\n", run->detector, p->name,
                s->labels->name, total->threshold, pf[f].raw, pf[f].tp, pf[f].tn, pf[f].fp,
                pf[f].fn, s->n_rows);
    }
    size_t rows = 0;
    for (size_t f = 0; f < c->n_files; f++)
        rows += run->slots[f].n_rows;
    fprintf(out, "Totals,,,,%.6f,%zu,%zu,%zu,%zu,%zu\n", total->raw, total->tp, total->tn,
            total->fp, total->fn, rows);
    free(pf);
    return fclose(out) == 0 ? 0 : -1;
}

/* A profile's result at a threshold by category (the directory of each file). */
static void print_categories(const struct run *run, const struct nab_corpus *c,
                             const struct nab_profile *p, double threshold, const char *what)
{
    struct nab_result *pf = calloc(c->n_files ? c->n_files : 1, sizeof *pf);
    if (pf == NULL || nab_score_at(c, p, threshold, &(struct nab_result){0}, pf) != 0) {
        free(pf);
        return;
    }
    printf("\nBy category, profile %s, %s %.6g:\n\n", p->name, what, threshold);
    printf("| category | files | windows caught | FP rows | raw score |\n");
    printf("|---|---:|---:|---:|---:|\n");
    for (size_t f = 0; f < c->n_files;) {
        const char *name = run->slots[f].labels->name;
        size_t cat_len = strcspn(name, "/");
        size_t files = 0, caught = 0, windows = 0, fp = 0;
        double raw = 0;
        for (; f < c->n_files && strncmp(run->slots[f].labels->name, name, cat_len) == 0 &&
               run->slots[f].labels->name[cat_len] == '/';
             f++) {
            files++;
            caught += pf[f].windows_detected;
            windows += pf[f].windows_detected + pf[f].windows_missed;
            fp += pf[f].fp;
            raw += pf[f].raw;
        }
        if (files == 0) { /* a file at the top level: its own line */
            files = 1;
            caught = pf[f].windows_detected;
            windows = pf[f].windows_detected + pf[f].windows_missed;
            fp = pf[f].fp;
            raw = pf[f].raw;
            f++;
        }
        printf("| %.*s | %zu | %zu / %zu | %zu | %.2f |\n", (int)cat_len, name, files, caught,
               windows, fp, raw);
    }
    free(pf);
}

static void print_cell(double v)
{
    if (isnan(v))
        printf(" |");
    else
        printf(" %.1f |", v);
}

int main(int argc, char **argv)
{
    const char *data_dir = getenv("CANARY_NAB_DIR");
    struct run run = {.data_dir = data_dir ? data_dir : "../shared/data/nab",
                      .out_dir = "bench/out/nab",
                      .detector = "canary"};
    unsigned jobs = 0;
    size_t n_sets = 0;
    struct canary_config cfg;
    config_init(&cfg);
    /* The tamper checks only flag values (they never change a score), and the time this
     * bench reports is the detectors' alone: they are off unless --set tamper.enabled=true. */
    cfg.tamper.enabled = false;
    char err[1024];
    for (int i = 1; i < argc; i++) {
        const char *o = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
        if (v == NULL) {
            fprintf(stderr, "bench_nab: %s: unknown option or missing value\n", o);
            return 2;
        }
        i++;
        if (!strcmp(o, "--data")) {
            run.data_dir = v;
        } else if (!strcmp(o, "--out")) {
            run.out_dir = v;
        } else if (!strcmp(o, "--detector")) {
            run.detector = v;
        } else if (!strcmp(o, "--jobs")) {
            jobs = (unsigned)strtoul(v, NULL, 10);
        } else if (!strcmp(o, "--set")) {
            char key[256];
            const char *eq = strchr(v, '=');
            if (eq == NULL || (size_t)(eq - v) >= sizeof key) {
                fprintf(stderr, "bench_nab: --set %s: want KEY=VALUE\n", v);
                return 2;
            }
            memcpy(key, v, (size_t)(eq - v));
            key[eq - v] = '\0';
            if (config_set(&cfg, key, eq + 1, CONFIG_SRC_FLAG, err, sizeof err) != 0) {
                fprintf(stderr, "bench_nab: %s\n", err);
                return 2;
            }
            n_sets++;
        } else {
            fprintf(stderr, "bench_nab: unknown option %s\n", o);
            return 2;
        }
    }
    if (config_validate(&cfg, err, sizeof err) != 0) {
        fprintf(stderr, "bench_nab: invalid configuration: %s\n", err);
        return 2;
    }

    char path[PATH_MAX];
    struct nab_profile profiles[NAB_PROFILES_MAX];
    size_t n_profiles;
    struct nab_labels labels;
    snprintf(path, sizeof path, "%s/config/profiles.json", run.data_dir);
    if (nab_profiles_load(path, profiles, NAB_PROFILES_MAX, &n_profiles, err, sizeof err) != 0) {
        fprintf(stderr, "bench_nab: %s\n", err);
        return 1;
    }
    snprintf(path, sizeof path, "%s/labels/combined_windows.json", run.data_dir);
    if (nab_labels_load(path, &labels, err, sizeof err) != 0) {
        fprintf(stderr, "bench_nab: %s\n", err);
        return 1;
    }

    /* The files, in name order (their order changes nothing but the output's). */
    const struct nab_file_windows **files = calloc(labels.n_files, sizeof *files);
    run.slots = calloc(labels.n_files, sizeof *run.slots);
    if (files == NULL || run.slots == NULL) {
        fprintf(stderr, "bench_nab: out of memory\n");
        return 1;
    }
    for (size_t i = 0; i < labels.n_files; i++)
        files[i] = &labels.files[i];
    qsort(files, labels.n_files, sizeof *files, by_name);
    run.n = labels.n_files;
    for (size_t i = 0; i < run.n; i++)
        run.slots[i].labels = files[i];

    static const char *const value_column[] = {"value"};
    run.opt = (struct replay_options){
        .cfg = &cfg,
        .timestamp_column = "timestamp",
        .value_columns = value_column,
        .n_value_columns = 1,
    };
    int64_t t0 = clock_mono_ns();
    if (replay_parallel(run.n, jobs, run_file, &run) != 0) {
        fprintf(stderr, "bench_nab: cannot start threads\n");
        return 1;
    }
    double wall_s = (double)(clock_mono_ns() - t0) / 1e9;

    int status = 0;
    struct nab_corpus corpus = {0};
    size_t rows = 0;
    int64_t detect_ns = 0;
    for (size_t i = 0; i < run.n; i++) {
        struct slot *s = &run.slots[i];
        if (s->rc == 0)
            s->rc = nab_corpus_add(&corpus, s->labels->name, s->ts_ms, s->score, s->n_rows,
                                   s->labels->windows, s->labels->n, s->err, sizeof s->err);
        if (s->rc != 0) {
            fprintf(stderr, "bench_nab: %s\n", s->err);
            status = 1;
            continue;
        }
        rows += s->n_rows;
        detect_ns += s->detect_ns;
    }
    if (status != 0) {
        fprintf(stderr, "bench_nab: %zu of %zu files failed: no score\n", run.n - corpus.n_files,
                run.n);
        return 1;
    }

    struct nab_result best[NAB_PROFILES_MAX];
    double score[NAB_PROFILES_MAX], null[NAB_PROFILES_MAX], perfect[NAB_PROFILES_MAX];
    for (size_t k = 0; k < n_profiles; k++) {
        if (nab_optimise(&corpus, &profiles[k], &best[k]) != 0) {
            fprintf(stderr, "bench_nab: out of memory scoring\n");
            return 1;
        }
        null[k] = nab_null_raw(&corpus, &profiles[k]);
        perfect[k] = nab_perfect_raw(&profiles[k], labels.n_windows);
        score[k] = nab_normalised(best[k].raw, null[k], perfect[k]);
        if (write_nab_scores(&run, &corpus, &profiles[k], &best[k]) != 0) {
            fprintf(stderr, "bench_nab: cannot write %s/%s/%s_%s_scores.csv\n", run.out_dir,
                    run.detector, run.detector, profiles[k].name);
            status = 1;
        }
    }
    /* The three published columns, by profile name. */
    static const char *const columns[3] = {"standard", "reward_low_FP_rate", "reward_low_FN_rate"};
    double ours[3] = {NAN, NAN, NAN};
    for (int c = 0; c < 3; c++) {
        for (size_t k = 0; k < n_profiles; k++) {
            if (strcmp(profiles[k].name, columns[c]) == 0)
                ours[c] = score[k];
        }
    }

    char a[32];
    printf("NAB v1.1: %zu files, %s readings, %zu windows; detectors: canaryd's, configuration: "
           "its defaults%s\n",
           run.n, ml_thousands(rows, a, sizeof a), labels.n_windows,
           n_sets ? " with the --set keys given" : "");
    long cores = sysconf(_SC_NPROCESSORS_ONLN);
    unsigned threads = jobs ? jobs : (cores > 0 ? (unsigned)cores : 1);
    printf("replay: %.2f s wall on %u thread%s (load, detect, write results); the detectors "
           "alone %.3f us per reading (%.1f ms in all)\n",
           wall_s, threads, threads == 1 ? "" : "s",
           rows ? (double)detect_ns / 1e3 / (double)rows : 0.0, (double)detect_ns / 1e6);
    printf("state: %zu bytes per (device, metric) (struct series_state; its anomaly score, "
           "struct robust_state: %zu), %zu per device (struct gap_state)\n\n",
           sizeof(struct series_state), sizeof(struct robust_state), sizeof(struct gap_state));
    printf("| detector | Standard | Reward low FP | Reward low FN |\n");
    printf("|---|---:|---:|---:|\n");
    printf("| **%s (this run)** |", run.detector);
    for (int c = 0; c < 3; c++)
        print_cell(ours[c]);
    printf("\n");
    for (size_t i = 0; i < sizeof published / sizeof published[0]; i++) {
        printf("| %s |", published[i].name);
        print_cell(published[i].standard);
        print_cell(published[i].low_fp);
        print_cell(published[i].low_fn);
        printf("\n");
    }
    printf("\n| profile | threshold | windows caught | FP rows | raw score | null | perfect |\n");
    printf("|---|---:|---:|---:|---:|---:|---:|\n");
    for (size_t k = 0; k < n_profiles; k++)
        printf("| %s | %.6g | %zu / %zu | %zu | %.2f | %.2f | %.2f |\n", profiles[k].name,
               best[k].threshold, best[k].windows_detected,
               best[k].windows_detected + best[k].windows_missed, best[k].fp, best[k].raw, null[k],
               perfect[k]);
    /* What canaryd's own flag (FLAG_ANOMALY at detect.anomaly_threshold) would score. */
    double live = cfg.detect.anomaly_threshold;
    printf("\nAt canaryd's detect.anomaly_threshold = %g (what FLAG_ANOMALY marks live):\n\n",
           live);
    printf("| profile | score | windows caught | FP rows | raw score |\n");
    printf("|---|---:|---:|---:|---:|\n");
    for (size_t k = 0; k < n_profiles; k++) {
        struct nab_result at;
        if (nab_score_at(&corpus, &profiles[k], live, &at, NULL) != 0)
            continue;
        printf("| %s | %.1f | %zu / %zu | %zu | %.2f |\n", profiles[k].name,
               nab_normalised(at.raw, null[k], perfect[k]), at.windows_detected,
               at.windows_detected + at.windows_missed, at.fp, at.raw);
    }
    for (size_t k = 0; k < n_profiles; k++) {
        if (strcmp(profiles[k].name, "standard") != 0)
            continue;
        print_categories(&run, &corpus, &profiles[k], best[k].threshold, "the optimal threshold");
        print_categories(&run, &corpus, &profiles[k], live, "canaryd's threshold");
    }
    printf("\nNAB results: %s/%s/ (cross-check with NAB's scorer: docs/BENCHMARKS.md#nab)\n",
           run.out_dir, run.detector);

    for (size_t i = 0; i < run.n; i++) {
        free(run.slots[i].ts_ms);
        free(run.slots[i].score);
        free(run.slots[i].win_lo);
        free(run.slots[i].win_hi);
    }
    free(run.slots);
    free(files);
    nab_corpus_free(&corpus);
    nab_labels_free(&labels);
    config_free(&cfg);
    return status;
}
