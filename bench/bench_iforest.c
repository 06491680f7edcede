/* bench_iforest.c — canary's Isolation Forest on the ODDS datasets: accuracy and speed.
 *
 * The canary half of bench/iforest.sh (bench/iforest_sklearn.py is the scikit-learn half,
 * same protocol, same output lines). For each CSV (columns f0..f{d-1},label; label 1 =
 * anomaly), loaded with dataset_load_csv (not timed):
 *   - for threads = 1, then --threads (default 2), for seeds 1..--seeds (default 5):
 *     iforest_train (100 trees, ψ 256, depth from ψ, contamination 0) and iforest_score on
 *     every row, each timed with CLOCK_MONOTONIC, and the ROC AUC of the scores against the
 *     labels (metrics_roc_auc, as scikit-learn's roc_auc_score);
 *   - on the headline dataset (http, else the largest): the streaming path,
 *     iforest_score_row on --latency-rows rows (default 100,000) one at a time: the mean
 *     over an untimed loop, then p50 / p99 / max with each call timed on its own (the cost
 *     of one clock_gettime pair, printed as a comment, is included in those);
 *   - on the same dataset, unless --latency-rows is 0: every batch scoring kernel this CPU
 *     runs (scalar, avx2, avx512; iforest_internal.h), one thread, on the same forest per
 *     seed, the kernels taking turns so that drift of the machine hits them alike.
 * --kernel NAME forces the kernel of the run lines (scalar, avx2 or avx512; default: the one
 * the library chooses, the fastest the CPU runs); each dataset prints the kernel that ran.
 * It checks what it times: every score must be in (0, 1]; a seed must give the same AUC on
 * 1 and on N threads (iforest.h promises identical scores whatever the thread count);
 * iforest_score_row must agree with iforest_score on the same row (to 1e-12); and every
 * kernel must give the same bits. A violation is printed as a WARNING line and makes the
 * exit status 3 (1 for errors: unreadable data, a failed call, a kernel the CPU lacks).
 *
 * Output, one line per measurement, space-separated ('#' lines are comments):
 *   run canary DATASET ROWS DIMS THREADS SEED FIT_MS SCORE_MS AUC
 *   kernel canary DATASET KERNEL FORCED            (FORCED: 1 if --kernel chose it)
 *   latency canary DATASET ROWS_SCORED MEAN_NS P50_NS P99_NS MAX_NS
 *   kernels canary DATASET ROWS KERNEL SEED SCORE_MS
 * Usage: bench_iforest [--seeds N] [--threads N] [--latency-rows N] [--kernel NAME]
 *                      CSV_OR_DIR... */
#include "ml/dataset.h"
#include "ml/iforest.h"
#include "ml/iforest_internal.h" /* to force a scoring kernel */
#include "ml/metrics.h"

#include <dirent.h>
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>

static int failures; /* WARNINGs printed: main's exit status */

/* The batch kernel that --kernel forces, and the one that ran (NULL before the first run). */
struct kernel_choice {
    bool forced;
    enum ifo_kernel kernel;
    const char *ran;
};

static int64_t now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

static int cmp_i64(const void *a, const void *b)
{
    int64_t x = *(const int64_t *)a, y = *(const int64_t *)b;
    return (x > y) - (x < y);
}

static int cmp_str(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

/* The dataset's name: the file name without directory and ".csv". */
static void dataset_name(const char *path, char *out, size_t cap)
{
    const char *base = strrchr(path, '/');
    base = base ? base + 1 : path;
    snprintf(out, cap, "%s", base);
    char *dot = strrchr(out, '.');
    if (dot != NULL && strcmp(dot, ".csv") == 0)
        *dot = '\0';
}

/* Appends the CSV files of arg (a file, or a directory's *.csv in name order) to *paths. */
static int collect(const char *arg, char ***paths, size_t *n)
{
    struct stat st;
    if (stat(arg, &st) != 0) {
        fprintf(stderr, "bench_iforest: %s: no such file or directory\n", arg);
        return -1;
    }
    size_t first = *n;
    if (S_ISDIR(st.st_mode)) {
        DIR *d = opendir(arg);
        if (d == NULL)
            return -1;
        struct dirent *e;
        while ((e = readdir(d)) != NULL) {
            size_t len = strlen(e->d_name);
            if (len < 5 || strcmp(e->d_name + len - 4, ".csv") != 0)
                continue;
            char **grown = realloc(*paths, (*n + 1) * sizeof **paths);
            size_t need = strlen(arg) + len + 2;
            char *p = malloc(need);
            if (grown == NULL || p == NULL) {
                free(p);
                closedir(d);
                return -1;
            }
            *paths = grown;
            snprintf(p, need, "%s/%s", arg, e->d_name);
            (*paths)[(*n)++] = p;
        }
        closedir(d);
        qsort(*paths + first, *n - first, sizeof **paths, cmp_str);
    } else {
        char **grown = realloc(*paths, (*n + 1) * sizeof **paths);
        if (grown == NULL)
            return -1;
        *paths = grown;
        (*paths)[(*n)++] = strdup(arg);
    }
    return 0;
}

/* Checks that every score is a score (finite, in (0, 1]). */
static void check_scores(const char *name, const double *s, size_t n)
{
    for (size_t r = 0; r < n; r++) {
        if (!(s[r] > 0.0 && s[r] <= 1.0)) {
            printf("WARNING %s: row %zu scored %g, outside (0, 1]\n", name, r, s[r]);
            failures++;
            return;
        }
    }
}

/* Forces kc's kernel on f if --kernel asked for one, and records the kernel that runs. */
static int use_kernel(const char *name, struct iforest *f, struct kernel_choice *kc)
{
    if (kc->forced && iforest__set_kernel(f, kc->kernel) != 0) {
        fprintf(stderr, "bench_iforest: %s: kernel %s cannot score this forest on this CPU\n", name,
                iforest__kernel_name(kc->kernel));
        return -1;
    }
    kc->ran = iforest__kernel_name(f->kernel);
    return 0;
}

/* One train + score + AUC for a seed and a thread count into *auc; prints its run line. */
static int run_once(const char *name, const struct dataset *d, unsigned threads, uint64_t seed,
                    struct kernel_choice *kc, double *scores, double *auc_out)
{
    struct iforest_params p;
    iforest_params_default(&p);
    p.n_trees = 100;
    p.subsample = 256;
    p.max_depth = 0;
    p.seed = seed;
    p.threads = threads;
    p.contamination = 0;

    char err[256] = "";
    struct iforest *f = NULL;
    int64_t t0 = now_ns();
    int rc =
        iforest_train(&f, &p, d->x, d->n_rows, d->n_cols, NULL, NULL, NULL, NULL, err, sizeof err);
    int64_t t1 = now_ns();
    if (rc != 0) {
        fprintf(stderr, "bench_iforest: %s: train: %s (%d)\n", name, err, rc);
        return -1;
    }
    if (use_kernel(name, f, kc) != 0) {
        iforest_free(f);
        return -1;
    }
    int64_t t2 = now_ns();
    rc = iforest_score(f, d->x, d->n_rows, threads, scores);
    int64_t t3 = now_ns();
    iforest_free(f);
    if (rc != 0) {
        fprintf(stderr, "bench_iforest: %s: score failed (%d)\n", name, rc);
        return -1;
    }
    check_scores(name, scores, d->n_rows);
    double auc = NAN;
    if (metrics_roc_auc(scores, d->labels, d->n_rows, &auc, err, sizeof err) != 0) {
        fprintf(stderr, "bench_iforest: %s: AUC: %s\n", name, err);
        return -1;
    }
    printf("run canary %s %zu %zu %u %llu %.3f %.3f %.6f\n", name, d->n_rows, d->n_cols, threads,
           (unsigned long long)seed, (double)(t1 - t0) / 1e6, (double)(t3 - t2) / 1e6, auc);
    fflush(stdout);
    *auc_out = auc;
    return 0;
}

/* The streaming path: iforest_score_row over the first n rows, one at a time. */
static int latency(const char *name, const struct dataset *d, size_t n, struct kernel_choice *kc)
{
    struct iforest_params p;
    iforest_params_default(&p);
    p.seed = 1;
    p.threads = 1;
    char err[256] = "";
    struct iforest *f = NULL;
    if (iforest_train(&f, &p, d->x, d->n_rows, d->n_cols, NULL, NULL, NULL, NULL, err,
                      sizeof err) != 0) {
        fprintf(stderr, "bench_iforest: %s: train: %s\n", name, err);
        return -1;
    }
    if (use_kernel(name, f, kc) != 0) {
        iforest_free(f);
        return -1;
    }
    if (n > d->n_rows)
        n = d->n_rows;
    double *batch = malloc(n * sizeof *batch);
    int64_t *ns = malloc(n * sizeof *ns);
    if (batch == NULL || ns == NULL || iforest_score(f, d->x, n, 1, batch) != 0) {
        free(batch);
        free(ns);
        iforest_free(f);
        return -1;
    }

    /* Warm-up (caches, branch predictors), then the mean over an untimed loop. */
    volatile double sink = 0;
    for (size_t r = 0; r < n && r < 10000; r++)
        sink += iforest_score_row(f, dataset_row(d, r));
    int64_t t0 = now_ns();
    for (size_t r = 0; r < n; r++)
        sink += iforest_score_row(f, dataset_row(d, r));
    double mean_ns = (double)(now_ns() - t0) / (double)n;

    /* Each call timed on its own, and checked against the batch score of its row. */
    size_t mismatches = 0, first_bad = 0;
    for (size_t r = 0; r < n; r++) {
        int64_t a = now_ns();
        double s = iforest_score_row(f, dataset_row(d, r));
        ns[r] = now_ns() - a;
        if (!(fabs(s - batch[r]) <= 1e-12) && mismatches++ == 0)
            first_bad = r;
    }
    if (mismatches > 0) {
        printf("WARNING %s: iforest_score_row differs from iforest_score on %zu of %zu rows "
               "(first: row %zu, %.17g vs %.17g)\n",
               name, mismatches, n, first_bad, iforest_score_row(f, dataset_row(d, first_bad)),
               batch[first_bad]);
        failures++;
    }
    int64_t c0 = now_ns(), clock_pair = now_ns() - c0;
    for (int i = 0; i < 1000; i++) {
        c0 = now_ns();
        int64_t c = now_ns() - c0;
        if (c < clock_pair)
            clock_pair = c;
    }
    qsort(ns, n, sizeof *ns, cmp_i64);
    printf("# clock_gettime pair: %lld ns (included in the per-call percentiles)\n",
           (long long)clock_pair);
    printf("latency canary %s %zu %.0f %lld %lld %lld\n", name, n, mean_ns, (long long)ns[n / 2],
           (long long)ns[n * 99 / 100], (long long)ns[n - 1]);
    fflush(stdout);
    (void)sink;
    free(batch);
    free(ns);
    iforest_free(f);
    return 0;
}

/* Every batch kernel this CPU runs, one thread, every row of the dataset: per seed one
 * forest, scored by each kernel in turn; they must give the same bits. */
static int kernels(const char *name, const struct dataset *d, unsigned seeds)
{
    static const enum ifo_kernel all[] = {IFO_KERNEL_SCALAR, IFO_KERNEL_AVX2, IFO_KERNEL_AVX512};
    double *first = malloc(d->n_rows * sizeof *first), *s = malloc(d->n_rows * sizeof *s);
    int rc = first != NULL && s != NULL ? 0 : -1;
    for (unsigned seed = 1; rc == 0 && seed <= seeds; seed++) {
        struct iforest_params p;
        iforest_params_default(&p);
        p.seed = seed;
        p.threads = 1;
        char err[256] = "";
        struct iforest *f = NULL;
        if (iforest_train(&f, &p, d->x, d->n_rows, d->n_cols, NULL, NULL, NULL, NULL, err,
                          sizeof err) != 0) {
            fprintf(stderr, "bench_iforest: %s: train: %s\n", name, err);
            rc = -1;
            break;
        }
        const char *first_name = NULL;
        for (size_t k = 0; rc == 0 && k < sizeof all / sizeof *all; k++) {
            if (iforest__set_kernel(f, all[k]) != 0)
                continue; /* not on this CPU */
            int64_t t0 = now_ns();
            rc = iforest_score(f, d->x, d->n_rows, 1, s);
            int64_t t1 = now_ns();
            if (rc != 0)
                break;
            if (first_name == NULL) {
                memcpy(first, s, d->n_rows * sizeof *s);
                first_name = iforest__kernel_name(all[k]);
            } else if (memcmp(first, s, d->n_rows * sizeof *s) != 0) {
                printf("WARNING %s: seed %u: kernel %s scores differ from kernel %s's\n", name,
                       seed, iforest__kernel_name(all[k]), first_name);
                failures++;
            }
            printf("kernels canary %s %zu %s %u %.3f\n", name, d->n_rows,
                   iforest__kernel_name(all[k]), seed, (double)(t1 - t0) / 1e6);
            fflush(stdout);
        }
        iforest_free(f);
    }
    free(first);
    free(s);
    return rc;
}

static void usage(void)
{
    fprintf(stderr, "usage: bench_iforest [--seeds N] [--threads N] [--latency-rows N] "
                    "[--kernel scalar|avx2|avx512] CSV_OR_DIR...\n");
}

int main(int argc, char **argv)
{
    unsigned seeds = 5, threads = 2;
    size_t latency_rows = 100000;
    struct kernel_choice kc = {0};
    char **paths = NULL;
    size_t n_paths = 0;
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--seeds") == 0 && i + 1 < argc) {
            seeds = (unsigned)strtoul(argv[++i], NULL, 10);
        } else if (strcmp(argv[i], "--threads") == 0 && i + 1 < argc) {
            threads = (unsigned)strtoul(argv[++i], NULL, 10);
        } else if (strcmp(argv[i], "--latency-rows") == 0 && i + 1 < argc) {
            latency_rows = strtoul(argv[++i], NULL, 10);
        } else if (strcmp(argv[i], "--kernel") == 0 && i + 1 < argc) {
            if (!iforest__kernel_parse(argv[++i], &kc.kernel)) {
                fprintf(stderr, "bench_iforest: unknown kernel '%s' (scalar, avx2, avx512)\n",
                        argv[i]);
                return 2;
            }
            kc.forced = true;
        } else if (argv[i][0] == '-') {
            usage();
            return 2;
        } else if (collect(argv[i], &paths, &n_paths) != 0) {
            return 2;
        }
    }
    if (n_paths == 0 || seeds == 0) {
        usage();
        return 2;
    }

    const struct dataset_options opt = {.label_column = "label"};
    struct dataset head = {0}; /* the headline dataset, kept for the latency run */
    char head_name[256] = "";
    int rc = 0;
    for (size_t i = 0; i < n_paths && rc == 0; i++) {
        char name[256], err[512] = "";
        dataset_name(paths[i], name, sizeof name);
        struct dataset d = {0};
        if (dataset_load_csv(&d, paths[i], &opt, err, sizeof err) != 0) {
            fprintf(stderr, "bench_iforest: %s\n", err);
            rc = 1;
            break;
        }
        double *scores = malloc(d.n_rows * sizeof *scores);
        double *auc1 = calloc(seeds + 1, sizeof *auc1);
        if (scores == NULL || auc1 == NULL) {
            free(scores);
            free(auc1);
            dataset_free(&d);
            rc = 1;
            break;
        }
        for (unsigned s = 1; s <= seeds && rc == 0; s++)
            rc = run_once(name, &d, 1, s, &kc, scores, &auc1[s]) != 0;
        for (unsigned s = 1; s <= seeds && rc == 0 && threads > 1; s++) {
            double auc = NAN;
            rc = run_once(name, &d, threads, s, &kc, scores, &auc) != 0;
            if (rc == 0 && auc != auc1[s]) {
                printf("WARNING %s: seed %u: AUC %.17g on %u threads, %.17g on 1\n", name, s, auc,
                       threads, auc1[s]);
                failures++;
            }
        }
        free(scores);
        free(auc1);
        if (rc == 0)
            printf("kernel canary %s %s %d\n", name, kc.ran, kc.forced ? 1 : 0);
        /* Keep http, else the largest so far. */
        int better = head.n_rows == 0 || (strcmp(head_name, "http") != 0 &&
                                          (strcmp(name, "http") == 0 || d.n_rows > head.n_rows));
        if (better) {
            dataset_free(&head);
            head = d;
            snprintf(head_name, sizeof head_name, "%s", name);
        } else {
            dataset_free(&d);
        }
    }
    if (rc == 0 && latency_rows > 0 && head.n_rows > 0 &&
        (latency(head_name, &head, latency_rows, &kc) != 0 ||
         kernels(head_name, &head, seeds) != 0))
        rc = 1;
    dataset_free(&head);
    for (size_t i = 0; i < n_paths; i++)
        free(paths[i]);
    free(paths);
    return rc != 0 ? rc : failures > 0 ? 3 : 0;
}
