/* eval.c — `canary eval`: how well a model separates labelled anomalies from normal rows;
 * for a gas model (ml/gas.h, recognised by its file's magic), how well it classifies.
 *
 * Scores a labelled CSV file with the model (the features built as in training, by
 * ml_common.c) and prints ROC AUC, PR AUC (average precision) and, at the model's own
 * threshold, precision, recall, F1, the confusion counts and the share of rows flagged;
 * figures as scikit-learn computes them (ml/metrics.h), so they compare with published ones.
 * With --plots it draws the two charts a person looks at first (plot_svg.h): the score
 * distributions of normal and anomalous rows with the threshold, and the ROC curve.
 *
 * Promises:
 *  - labels are 0 (normal) or 1 (anomaly); any other value is refused, naming the row;
 *  - with window features, rows whose device's window is still filling are not scored and
 *    are left out of every figure (the count is printed);
 *  - --format png needs rsvg-convert (Debian: librsvg2-bin); its absence is reported before
 *    any work is done;
 *  - --record writes the ROC AUC, PR AUC, rows and source into the model file (atomically)
 *    and a later eval shows them;
 *  - exit status 0 on success, 1 when a file, the data or a tool is the problem, 2 for bad
 *    usage. */
#include "cli/commands.h"
#include "cli/ml_common.h"
#include "cli/plot_svg.h"

#include "core/clock.h"
#include "core/error.h"
#include "ml/gas.h"
#include "ml/metrics.h"

#include <errno.h>
#include <inttypes.h>
#include <math.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#define CMD            "eval"
#define ROC_MAX_POINTS 600 /* points of the plotted ROC curve (the AUC uses them all) */
#define HIST_BINS      40  /* about this many bins in the score histogram */
#define PNG_ZOOM       "2" /* PNGs at twice the SVG's size: sharp on high-density screens */

static void usage(FILE *out)
{
    fprintf(out,
            "usage: canary eval --model MODEL.cif --input FILE.csv [--label-column NAME]\n"
            "                   [--plots DIR [--format svg|png]] [--record] [options]\n"
            "\n"
            "Scores a labelled CSV file with a model from `canary train` and prints how well\n"
            "the scores separate anomalies (label 1) from normal rows (label 0):\n"
            "  ROC AUC      the chance that a random anomaly scores above a random normal row\n"
            "  PR AUC       average precision: the area under the precision-recall curve,\n"
            "               which rare anomalies make the harder figure\n"
            "and at the model's threshold: precision, recall, F1, the confusion counts (TP,\n"
            "FP, FN, TN) and the share of rows flagged. The figures are computed as\n"
            "scikit-learn computes them.\n"
            "\n"
            "A gas classifier (canary train --model gas) is evaluated by class instead:\n"
            "accuracy, macro precision/recall/F1, the confusion matrix and ROC AUC per class\n"
            "(canary eval --model MODEL.cgas --help; docs/GAS.md).\n"
            "\n"
            "options:\n"
            "  --model MODEL.cif         the model (required)\n"
            "  --input FILE.csv          labelled rows with the model's feature columns\n"
            "                            (required)\n"
            "  --label-column NAME       the labels, 0 or 1 (default label)\n"
            "  --timestamp-column NAME   the time of each row (default: the column the model\n"
            "                            was trained with, else one named timestamp, ts or\n"
            "                            time)\n"
            "  --device-column NAME      the device of each row (default: likewise, device or\n"
            "                            device_id)\n"
            "  --plots DIR               write DIR/scores.svg (score distributions of normal\n"
            "                            and anomalous rows, with the threshold) and\n"
            "                            DIR/roc.svg (the ROC curve); DIR is created if needed\n"
            "  --format svg|png          the plots' format (default svg); png needs\n"
            "                            rsvg-convert (Debian package librsvg2-bin)\n"
            "  --record                  store ROC AUC, PR AUC, rows and file in the model,\n"
            "                            where later evals and canaryd's API show them\n"
            "  --threads T               threads for scoring (default 0: one per CPU)\n"
            "  --help                    show this help\n"
            "\n"
            "Exit status: 0 on success, 1 when a file, the data or a tool is the problem, 2\n"
            "for bad usage. See docs/MODELS.md.\n");
}

struct eval_opts {
    const char *model, *plots, *format;
    bool record;
    uint32_t threads;
    struct ml_model_input in;
};

static int parse_args(int argc, char **argv, struct eval_opts *o, bool *help)
{
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (!strcmp(a, "--help") || !strcmp(a, "-h")) {
            *help = true;
            return 0;
        }
        if (!strcmp(a, "--record")) {
            o->record = true;
            continue;
        }
        if (i + 1 >= argc)
            return ml_bad_usage(CMD, "%s: unknown option or missing value", a);
        const char *v = argv[++i];
        if (!strcmp(a, "--model")) {
            o->model = v;
        } else if (!strcmp(a, "--input")) {
            o->in.path = v;
        } else if (!strcmp(a, "--label-column")) {
            o->in.label_column = v;
        } else if (!strcmp(a, "--timestamp-column")) {
            o->in.timestamp_column = v;
        } else if (!strcmp(a, "--device-column")) {
            o->in.device_column = v;
        } else if (!strcmp(a, "--plots")) {
            o->plots = v;
        } else if (!strcmp(a, "--format")) {
            if (strcmp(v, "svg") != 0 && strcmp(v, "png") != 0)
                return ml_bad_usage(CMD, "--format is svg or png, got '%s'", v);
            o->format = v;
        } else if (!strcmp(a, "--threads")) {
            if (ml_parse_u32(CMD, a, v, 0, 1024, &o->threads) != 0)
                return 2;
        } else {
            return ml_bad_usage(CMD, "unknown option: %s", a);
        }
    }
    if (o->model == NULL || o->in.path == NULL)
        return ml_bad_usage(CMD, "--model MODEL.cif and --input FILE.csv are required");
    if (o->format != NULL && o->plots == NULL)
        return ml_bad_usage(CMD, "--format is for --plots DIR");
    if (o->in.label_column == NULL)
        o->in.label_column = "label";
    return 0;
}

/* The path of an executable named name on $PATH, into buf; false when there is none. */
static bool find_program(const char *name, char *buf, size_t len)
{
    const char *path = getenv("PATH");
    if (path == NULL || *path == '\0')
        path = "/usr/local/bin:/usr/bin:/bin";
    while (*path) {
        size_t n = strcspn(path, ":");
        snprintf(buf, len, "%.*s/%s", (int)n, n ? path : ".", name);
        if (access(buf, X_OK) == 0)
            return true;
        path += n + (path[n] == ':');
    }
    return false;
}

/* Converts svg to png with rsvg-convert (no shell: the paths go to it as they are). */
static int svg_to_png(const char *tool, const char *svg, const char *png, char *err, size_t errlen)
{
    pid_t pid = fork();
    if (pid < 0) {
        snprintf(err, errlen, "cannot start %.900s: %s", tool, strerror(errno));
        return CANARY_EIO;
    }
    if (pid == 0) {
        execl(tool, "rsvg-convert", "--format", "png", "--zoom", PNG_ZOOM, "--output", png, svg,
              (char *)NULL);
        _exit(127);
    }
    int st;
    while (waitpid(pid, &st, 0) < 0) {
        if (errno != EINTR) {
            snprintf(err, errlen, "waiting for %.900s: %s", tool, strerror(errno));
            return CANARY_EIO;
        }
    }
    if (!WIFEXITED(st) || WEXITSTATUS(st) != 0) {
        snprintf(err, errlen, "%.500s could not convert %.600s to %.600s (exit status %d)", tool,
                 svg, png, WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st));
        return CANARY_EIO;
    }
    return 0;
}

/* Writes the chart as DIR/name.svg, or as DIR/name.png through a temporary SVG. The path
 * written goes to written. */
static int save_chart(const struct plot *p, const char *dir, const char *name, const char *png_tool,
                      char *written, size_t wlen, char *err, size_t errlen)
{
    if (png_tool == NULL) {
        snprintf(written, wlen, "%s/%s.svg", dir, name);
        return plot_save(p, written, err, errlen);
    }
    char svg[4096];
    snprintf(svg, sizeof svg, "%s/.%s.%ld.svg", dir, name, (long)getpid());
    snprintf(written, wlen, "%s/%s.png", dir, name);
    int rc = plot_save(p, svg, err, errlen);
    if (rc == 0)
        rc = svg_to_png(png_tool, svg, written, err, errlen);
    unlink(svg);
    return rc;
}

/* Creates dir (one level) unless it exists. */
static int make_dir(const char *dir, char *err, size_t errlen)
{
    struct stat st;
    if (stat(dir, &st) == 0) {
        if (S_ISDIR(st.st_mode))
            return 0;
        snprintf(err, errlen, "--plots %s: not a directory", dir);
        return CANARY_EINVAL;
    }
    if (mkdir(dir, 0777) != 0) {
        snprintf(err, errlen, "--plots %s: %s", dir, strerror(errno));
        return CANARY_EIO;
    }
    return 0;
}

/* What the plots need to know. */
struct eval_result {
    const char *model_name, *data_name;
    size_t n, n_pos;
    double threshold;
    double auc, ap; /* NaN when undefined (one class) */
    struct metrics_binary at;
};

/* The score histogram: normal and anomalous rows as shares of their class, overlaid. */
static int plot_scores(const double *scores, const double *labels, const struct eval_result *r,
                       const char *dir, const char *png_tool, char *written, size_t wlen, char *err,
                       size_t errlen)
{
    double lo = INFINITY, hi = -INFINITY;
    for (size_t i = 0; i < r->n; i++) {
        lo = fmin(lo, scores[i]);
        hi = fmax(hi, scores[i]);
    }
    lo = fmin(lo, r->threshold);
    hi = fmax(hi, r->threshold);
    double edges[160], step;
    size_t n_edges = plot_nice_ticks(lo, hi, HIST_BINS + 1, edges, 160, &step);
    if (n_edges < 2) {
        snprintf(err, errlen, "cannot bin the scores");
        return CANARY_EINVAL;
    }
    size_t bins = n_edges - 1;
    double h_norm[160] = {0}, h_anom[160] = {0};
    for (size_t i = 0; i < r->n; i++) {
        double k = floor((scores[i] - edges[0]) / step);
        size_t b = k < 0 ? 0 : k >= (double)bins ? bins - 1 : (size_t)k;
        if (labels[i] != 0)
            h_anom[b] += 1;
        else
            h_norm[b] += 1;
    }
    size_t n_neg = r->n - r->n_pos;
    for (size_t b = 0; b < bins; b++) {
        h_norm[b] = n_neg ? 100 * h_norm[b] / (double)n_neg : 0;
        h_anom[b] = r->n_pos ? 100 * h_anom[b] / (double)r->n_pos : 0;
    }
    struct plot *p = plot_new(760, 460);
    if (p == NULL)
        return CANARY_ENOMEM;
    char title[512], subtitle[512], label[128], a[32], b[32];
    snprintf(title, sizeof title, "Anomaly scores: %s on %s", r->model_name, r->data_name);
    if (isnan(r->auc))
        snprintf(subtitle, sizeof subtitle,
                 "%s rows, %s labelled anomalous; at the threshold: %.1f%% flagged",
                 ml_thousands(r->n, a, sizeof a), ml_thousands(r->n_pos, b, sizeof b),
                 100.0 * (double)(r->at.tp + r->at.fp) / (double)r->n);
    else
        snprintf(subtitle, sizeof subtitle,
                 "%s rows, %s labelled anomalous \xC2\xB7 ROC AUC %.4f \xC2\xB7 at the threshold:"
                 " precision %.2f, recall %.2f",
                 ml_thousands(r->n, a, sizeof a), ml_thousands(r->n_pos, b, sizeof b), r->auc,
                 r->at.precision, r->at.recall);
    int rc = plot_set_title(p, title, subtitle);
    if (rc == 0)
        rc = plot_set_axis(p, PLOT_X, "anomaly score (higher is more anomalous)", NAN, NAN);
    if (rc == 0)
        rc = plot_set_axis(p, PLOT_Y, "share of the class's rows (%)", NAN, NAN);
    struct plot_style normal = {.color = PLOT_BLUE}, anomalous = {.color = PLOT_VERMILLION},
                      thr = {.color = PLOT_BLACK, .stroke = PLOT_DASHED, .width = 1.5};
    if (rc == 0 && n_neg > 0) {
        snprintf(label, sizeof label, "normal (%s)", ml_thousands(n_neg, a, sizeof a));
        rc = plot_add_histogram(p, label, &normal, edges, h_norm, bins);
    }
    if (rc == 0 && r->n_pos > 0) {
        snprintf(label, sizeof label, "anomalous (%s)", ml_thousands(r->n_pos, a, sizeof a));
        rc = plot_add_histogram(p, label, &anomalous, edges, h_anom, bins);
    }
    if (rc == 0) {
        snprintf(label, sizeof label, "model threshold %.3f", r->threshold);
        rc = plot_add_vline(p, label, &thr, r->threshold);
    }
    if (rc == 0)
        rc = save_chart(p, dir, "scores", png_tool, written, wlen, err, errlen);
    else
        snprintf(err, errlen, "cannot draw the score chart");
    plot_free(p);
    return rc;
}

/* The ROC curve with the chance diagonal and the model's threshold marked on it. */
static int plot_roc(const double *scores, const double *labels, const struct eval_result *r,
                    const char *dir, const char *png_tool, char *written, size_t wlen, char *err,
                    size_t errlen)
{
    struct metrics_curve c = {0};
    int rc = metrics_roc_curve(scores, labels, r->n, ROC_MAX_POINTS, &c, err, errlen);
    if (rc != 0)
        return rc;
    struct plot *p = plot_new(600, 580);
    if (p == NULL) {
        metrics_curve_free(&c);
        return CANARY_ENOMEM;
    }
    char title[512], subtitle[512], label[160], a[32], b[32];
    snprintf(title, sizeof title, "ROC curve: %s on %s", r->model_name, r->data_name);
    snprintf(subtitle, sizeof subtitle, "%s rows, %s labelled anomalous \xC2\xB7 PR AUC %.4f",
             ml_thousands(r->n, a, sizeof a), ml_thousands(r->n_pos, b, sizeof b), r->ap);
    rc = plot_set_title(p, title, subtitle);
    if (rc == 0)
        rc = plot_set_axis(p, PLOT_X, "false positive rate (normal rows flagged)", 0, 1);
    if (rc == 0)
        rc = plot_set_axis(p, PLOT_Y, "true positive rate (anomalies found)", 0, 1);
    plot_set_legend(p, PLOT_LEGEND_BOTTOM_RIGHT);
    struct plot_style chance = {.color = PLOT_GREY, .stroke = PLOT_DASHED, .width = 1.25},
                      curve = {.color = PLOT_BLUE, .width = 2.5, .fill_opacity = 0.08},
                      mark = {.color = PLOT_VERMILLION};
    double diag[2] = {0, 1};
    if (rc == 0)
        rc = plot_add_line(p, "chance (AUC 0.5)", &chance, diag, diag, 2);
    if (rc == 0) {
        snprintf(label, sizeof label, "Isolation Forest (AUC %.4f)", r->auc);
        rc = plot_add_line(p, label, &curve, c.fpr, c.tpr, c.n_points);
    }
    if (rc == 0) {
        snprintf(label, sizeof label, "threshold %.3f: TPR %.3f, FPR %.4f", r->threshold,
                 r->at.recall, r->at.fpr);
        rc = plot_add_marker(p, label, &mark, r->at.fpr, r->at.recall);
    }
    if (rc == 0)
        rc = save_chart(p, dir, "roc", png_tool, written, wlen, err, errlen);
    else
        snprintf(err, errlen, "cannot draw the ROC chart");
    plot_free(p);
    metrics_curve_free(&c);
    return rc;
}

/* Prints what a previous `eval --record` stored in the model, if anything. */
static void print_recorded(const struct iforest_meta *m)
{
    if (isnan(m->eval_roc_auc) && isnan(m->eval_pr_auc))
        return;
    char rows[32];
    printf("recorded    ROC AUC %.4f, PR AUC %.4f on %s (%s rows)\n", m->eval_roc_auc,
           m->eval_pr_auc, m->eval_source[0] ? m->eval_source : "?",
           ml_thousands(m->eval_rows, rows, sizeof rows));
}

/* ---- gas models (ml/gas.h): a classifier's figures -------------------------------------- */

static void usage_gas(FILE *out)
{
    fprintf(out, "usage: canary eval --model MODEL.cgas --input FILE.csv [--plots DIR]\n"
                 "                   [--learner stack|random_forest|logistic_regression|\n"
                 "                    gradient_boosting]\n"
                 "\n"
                 "Classifies every row of a labelled CSV file with a gas model from `canary train\n"
                 "--model gas` (the columns, label, series and order it was trained with) and\n"
                 "prints accuracy, macro precision, recall and F1, per-class figures, the\n"
                 "confusion matrix and one-vs-rest ROC AUC, as scikit-learn computes them. With\n"
                 "--plots DIR it writes DIR/confusion.svg and DIR/roc.svg (one curve per class).\n"
                 "Evaluate on readings later in time than the training data: neighbouring\n"
                 "readings of a series are near-copies, so only later ones measure the model.\n");
}

/* A confusion matrix as a grid of cells shaded by the share of their true class. */
static int plot_confusion(const struct metrics_multiclass *mc, const struct gas_model *m,
                          const char *title, const char *path, char *err, size_t errlen)
{
    const size_t K = mc->n_classes, cell = 72, left = 150, top = 90;
    const size_t w = left + K * cell + 40, h = top + K * cell + 70;
    FILE *f = fopen(path, "w");
    if (!f) {
        snprintf(err, errlen, "%.1000s: %s", path, strerror(errno));
        return CANARY_EIO;
    }
    char esc[512];
    fprintf(f,
            "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<svg xmlns=\"http://www.w3.org/2000/svg\" "
            "width=\"%zu\" height=\"%zu\" viewBox=\"0 0 %zu %zu\" font-family=\"Helvetica, Arial, "
            "sans-serif\">\n<rect width=\"100%%\" height=\"100%%\" fill=\"#ffffff\"/>\n",
            w, h, w, h);
    plot_escape(title, esc, sizeof esc);
    fprintf(f, "<text x=\"16\" y=\"28\" font-size=\"16\" font-weight=\"bold\">%s</text>\n", esc);
    fprintf(f,
            "<text x=\"16\" y=\"50\" font-size=\"12\" fill=\"#555\">rows: true class \xC2\xB7 "
            "columns: predicted \xC2\xB7 accuracy %.4f, macro F1 %.4f</text>\n",
            mc->accuracy, mc->macro_f1);
    for (size_t t = 0; t < K; t++) {
        plot_escape(gas_class_name(m, t), esc, sizeof esc);
        fprintf(f,
                "<text x=\"%zu\" y=\"%zu\" font-size=\"13\" text-anchor=\"end\" "
                "dominant-baseline=\"middle\">%s</text>\n",
                left - 8, top + t * cell + cell / 2, esc);
        fprintf(f, "<text x=\"%zu\" y=\"%zu\" font-size=\"13\" text-anchor=\"middle\">%s</text>\n",
                left + t * cell + cell / 2, top + K * cell + 20, esc);
        for (size_t p = 0; p < K; p++) {
            uint64_t n = mc->confusion[t * K + p];
            double share = mc->support[t] ? (double)n / (double)mc->support[t] : 0;
            /* White to the palette's blue (#0072B2) by the share of the true class. */
            int r = (int)(255 - share * (255 - 0x00)), g = (int)(255 - share * (255 - 0x72)),
                b = (int)(255 - share * (255 - 0xB2));
            fprintf(f,
                    "<rect x=\"%zu\" y=\"%zu\" width=\"%zu\" height=\"%zu\" "
                    "fill=\"#%02x%02x%02x\" stroke=\"#ffffff\"/>\n",
                    left + p * cell, top + t * cell, cell, cell, r, g, b);
            fprintf(f,
                    "<text x=\"%zu\" y=\"%zu\" font-size=\"14\" text-anchor=\"middle\" "
                    "dominant-baseline=\"middle\" fill=\"%s\">%" PRIu64 "</text>\n",
                    left + p * cell + cell / 2, top + t * cell + cell / 2,
                    share > 0.5 ? "#ffffff" : "#222222", n);
        }
    }
    fprintf(f, "</svg>\n");
    if (fclose(f) != 0) {
        snprintf(err, errlen, "%.1000s: %s", path, strerror(errno));
        return CANARY_EIO;
    }
    return 0;
}

/* One-vs-rest ROC curves, one per class. */
static int plot_gas_roc(const double *proba, const int *truth, size_t n, const struct gas_model *m,
                        const double *auc, const char *title, const char *path, char *err,
                        size_t errlen)
{
    const size_t K = gas_n_classes(m);
    double *col = malloc(n * sizeof *col), *lab = malloc(n * sizeof *lab);
    struct plot *p = plot_new(620, 600);
    int rc = col && lab && p ? 0 : CANARY_ENOMEM;
    if (!rc)
        rc = plot_set_title(p, title, "one class against the rest, by its probability");
    if (!rc)
        rc = plot_set_axis(p, PLOT_X, "false positive rate", 0, 1);
    if (!rc)
        rc = plot_set_axis(p, PLOT_Y, "true positive rate", 0, 1);
    if (p)
        plot_set_legend(p, PLOT_LEGEND_BOTTOM_RIGHT);
    struct plot_style chance = {.color = PLOT_GREY, .stroke = PLOT_DASHED, .width = 1.25};
    double diag[2] = {0, 1};
    if (!rc)
        rc = plot_add_line(p, "chance", &chance, diag, diag, 2);
    for (size_t k = 0; !rc && k < K; k++) {
        if (isnan(auc[k]))
            continue;
        for (size_t i = 0; i < n; i++) {
            col[i] = proba[i * K + k];
            lab[i] = truth[i] == (int)k;
        }
        struct metrics_curve c = {0};
        rc = metrics_roc_curve(col, lab, n, ROC_MAX_POINTS, &c, err, errlen);
        if (rc)
            break;
        char label[256];
        snprintf(label, sizeof label, "%s (AUC %.4f)", gas_class_name(m, k), auc[k]);
        struct plot_style st = {.color = (enum plot_color)(k % (PLOT_GREY)), .width = 2};
        rc = plot_add_line(p, label, &st, c.fpr, c.tpr, c.n_points);
        metrics_curve_free(&c);
    }
    if (!rc)
        rc = plot_save(p, path, err, errlen);
    plot_free(p);
    free(col);
    free(lab);
    return rc;
}

static int eval_gas(int argc, char **argv)
{
    const char *model_path = NULL, *input = NULL, *plots = NULL;
    enum gas_learner which = GAS_STACK;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (!strcmp(a, "--help") || !strcmp(a, "-h")) {
            usage_gas(stdout);
            return 0;
        }
        if (i + 1 >= argc)
            return ml_bad_usage(CMD, "%s: unknown option or missing value", a);
        const char *v = argv[++i];
        if (!strcmp(a, "--model")) {
            model_path = v;
        } else if (!strcmp(a, "--input")) {
            input = v;
        } else if (!strcmp(a, "--plots")) {
            plots = v;
        } else if (!strcmp(a, "--learner")) {
            int l = 0;
            while (l < GAS_N_LEARNERS && strcmp(v, gas_learner_name((enum gas_learner)l)))
                l++;
            if (l == GAS_N_LEARNERS)
                return ml_bad_usage(CMD,
                                    "--learner is stack, random_forest, logistic_regression or "
                                    "gradient_boosting, got '%s'",
                                    v);
            which = (enum gas_learner)l;
        } else {
            return ml_bad_usage(CMD, "unknown option for a gas model: %s", a);
        }
    }
    if (!model_path || !input)
        return ml_bad_usage(CMD, "--model MODEL and --input FILE.csv are required");
    char err[2048] = "";
    int exit_code = 1;
    struct gas_model *m = NULL;
    struct gas_table t = {0};
    int *truth = NULL, *pred = NULL;
    double *proba = NULL;
    struct metrics_multiclass mc = {0};
    const char **inputs = NULL;
    if (plots && make_dir(plots, err, sizeof err))
        goto fail;
    if (gas_load(model_path, &m, err, sizeof err))
        goto fail;
    const struct gas_meta *meta = gas_model_meta(m);
    const size_t K = gas_n_classes(m), I = gas_n_inputs(m);
    inputs = malloc(I * sizeof *inputs);
    if (!inputs)
        goto oom;
    for (size_t i = 0; i < I; i++)
        inputs[i] = gas_input_name(m, i);
    struct gas_csv_spec spec = {.label_column = meta->label_column,
                                .inputs = inputs,
                                .n_inputs = I,
                                .series_column =
                                    meta->series_column[0] ? meta->series_column : NULL,
                                .order_column = meta->order_column[0] ? meta->order_column : NULL,
                                .window = gas_model_params(m)->window,
                                .window_stats = gas_model_params(m)->window_stats};
    ml_status("reading %s ...", input);
    int rc = gas_table_load(input, &spec, &t, err, sizeof err);
    ml_status_clear();
    if (rc)
        goto fail;
    truth = malloc(t.n_rows * sizeof *truth);
    pred = malloc(t.n_rows * sizeof *pred);
    proba = malloc(t.n_rows * K * sizeof *proba);
    if (!truth || !pred || !proba)
        goto oom;
    /* The file's classes by name onto the model's. */
    int map[GAS_MAX_CLASSES];
    for (size_t c = 0; c < t.n_classes; c++) {
        map[c] = -1;
        for (size_t k = 0; k < K; k++)
            if (!strcmp(t.class_names[c], gas_class_name(m, k)))
                map[c] = (int)k;
        if (map[c] < 0) {
            snprintf(err, sizeof err, "%s: class '%s' (column '%s') is not one the model knows",
                     input, t.class_names[c], meta->label_column);
            goto fail;
        }
    }
    int64_t t0 = clock_mono_ns();
    for (size_t r = 0; r < t.n_rows; r++) {
        truth[r] = map[t.y[r]];
        pred[r] = gas_predict_row(m, which, t.rows + r * t.row_len, proba + r * K);
    }
    double ns_per_row = (double)(clock_mono_ns() - t0) / (double)t.n_rows;
    if (metrics_multiclass_eval(truth, pred, t.n_rows, K, &mc, err, sizeof err))
        goto fail;
    double auc[GAS_MAX_CLASSES], macro_auc = NAN;
    for (size_t k = 0; k < K; k++) {
        double *col = malloc(t.n_rows * sizeof *col), *lab = malloc(t.n_rows * sizeof *lab);
        auc[k] = NAN;
        if (col && lab) {
            for (size_t r = 0; r < t.n_rows; r++) {
                col[r] = proba[r * K + k];
                lab[r] = truth[r] == (int)k;
            }
            if (metrics_roc_auc(col, lab, t.n_rows, &auc[k], NULL, 0))
                auc[k] = NAN; /* a class absent from the file (or the only one) */
        }
        free(col);
        free(lab);
    }
    (void)metrics_ovr_roc_auc(proba, truth, t.n_rows, K, NULL, &macro_auc, NULL, 0);

    char a[32];
    printf("model       %s: gas classifier, %zu sensors, %zu classes, trained on %s (%s rows)\n",
           model_path, I, K, meta->source, ml_thousands(meta->n_rows, a, sizeof a));
    if (meta->eval_rows)
        printf("            held out at training (%s split, %" PRIu64
               " rows): accuracy %.4f, macro F1 %.4f\n",
               meta->eval_split, meta->eval_rows, meta->eval_accuracy, meta->eval_macro_f1);
    printf("data        %s: %s rows; learner %s, %.2f us per row\n", input,
           ml_thousands(t.n_rows, a, sizeof a), gas_learner_name(which), ns_per_row / 1e3);
    printf("accuracy    %.4f\n", mc.accuracy);
    printf("macro       precision %.4f  recall %.4f  F1 %.4f", mc.macro_precision, mc.macro_recall,
           mc.macro_f1);
    if (!isnan(macro_auc))
        printf("  ROC AUC (one-vs-rest) %.4f", macro_auc);
    printf("\n\n%-16s %9s %9s %9s %9s %9s\n", "class", "precision", "recall", "F1", "ROC AUC",
           "rows");
    for (size_t k = 0; k < K; k++) {
        char aucs[16] = "-";
        if (!isnan(auc[k]))
            snprintf(aucs, sizeof aucs, "%.4f", auc[k]);
        printf("%-16s %9.4f %9.4f %9.4f %9s %9" PRIu64 "\n", gas_class_name(m, k), mc.precision[k],
               mc.recall[k], mc.f1[k], aucs, mc.support[k]);
    }
    printf("\nconfusion (rows: true class, columns: predicted)\n%-16s", "");
    for (size_t k = 0; k < K; k++)
        printf(" %9.9s", gas_class_name(m, k));
    printf("\n");
    for (size_t tk = 0; tk < K; tk++) {
        printf("%-16s", gas_class_name(m, tk));
        for (size_t pk = 0; pk < K; pk++)
            printf(" %9" PRIu64, mc.confusion[tk * K + pk]);
        printf("\n");
    }
    if (plots) {
        char path[4096], title[512];
        snprintf(title, sizeof title, "Confusion matrix: %s on %s", ml_basename(model_path),
                 ml_basename(input));
        snprintf(path, sizeof path, "%s/confusion.svg", plots);
        if (plot_confusion(&mc, m, title, path, err, sizeof err))
            goto fail;
        printf("\nwrote %s\n", path);
        snprintf(title, sizeof title, "ROC curves: %s on %s", ml_basename(model_path),
                 ml_basename(input));
        snprintf(path, sizeof path, "%s/roc.svg", plots);
        if (plot_gas_roc(proba, truth, t.n_rows, m, auc, title, path, err, sizeof err))
            goto fail;
        printf("wrote %s\n", path);
    }
    exit_code = 0;
    goto done;
oom:
    snprintf(err, sizeof err, "out of memory");
fail:
    ml_status_clear();
    fprintf(stderr, "canary eval: %s\n", err[0] ? err : "failed");
done:
    metrics_multiclass_free(&mc);
    gas_free(m);
    gas_table_free(&t);
    free(inputs);
    free(truth);
    free(pred);
    free(proba);
    return exit_code;
}

/* True when the file at path is a gas model (its magic), so eval takes the classifier's path. */
static bool is_gas_model(int argc, char **argv)
{
    for (int i = 1; i + 1 < argc; i++) {
        if (strcmp(argv[i], "--model"))
            continue;
        FILE *f = fopen(argv[i + 1], "rb");
        char magic[8] = {0};
        bool gas = f && fread(magic, 1, 8, f) == 8 && !memcmp(magic, "CANARYGS", 8);
        if (f)
            fclose(f);
        return gas;
    }
    return false;
}

int cmd_eval(int argc, char **argv)
{
    if (is_gas_model(argc, argv))
        return eval_gas(argc, argv);
    struct eval_opts o = {0};
    bool help = false;
    int rc = parse_args(argc, argv, &o, &help);
    if (help) {
        usage(stdout);
        return 0;
    }
    if (rc != 0)
        return rc;

    char err[2048] = "", png_tool[4096];
    bool png = o.format != NULL && strcmp(o.format, "png") == 0;
    if (png && !find_program("rsvg-convert", png_tool, sizeof png_tool)) {
        fprintf(stderr, "canary eval: --format png needs rsvg-convert, which is not on the PATH: "
                        "install it (apt-get install librsvg2-bin) or use --format svg\n");
        return 1;
    }
    struct iforest *f = NULL;
    struct dataset d = {0};
    struct ml_table t = {0};
    double *scores = NULL;
    int exit_code = 1;
    struct stat st;
    if (o.plots != NULL && stat(o.plots, &st) == 0 && !S_ISDIR(st.st_mode)) {
        snprintf(err, sizeof err, "--plots %s: not a directory", o.plots);
        goto fail;
    }

    if (iforest_load(&f, o.model, err, sizeof err) != 0)
        goto fail;
    if (ml_load_for_model(f, &o.in, &d, &t, err, sizeof err) != 0)
        goto fail;
    if (t.n_rows == 0) {
        snprintf(err, sizeof err,
                 "%s: no rows to evaluate (%zu rows, all before their "
                 "device's window of %" PRIu32 " was full)",
                 o.in.path, d.n_rows, iforest_meta_of(f)->window);
        goto fail;
    }
    size_t n_pos = 0;
    for (size_t i = 0; i < t.n_rows; i++) {
        double l = t.labels[i];
        if (l != 0 && l != 1) {
            snprintf(err, sizeof err,
                     "%s: data row %zu: label '%s' must be 0 (normal) or 1 (anomaly), got %g",
                     o.in.path, t.source[i] + 1, o.in.label_column, l);
            goto fail;
        }
        n_pos += l == 1;
    }
    if ((scores = malloc(t.n_rows * sizeof *scores)) == NULL) {
        snprintf(err, sizeof err, "out of memory for %zu scores", t.n_rows);
        goto fail;
    }
    ml_status("scoring %zu rows ...", t.n_rows);
    rc = iforest_score(f, t.x, t.n_rows, o.threads, scores);
    ml_status_clear();
    if (rc != 0) {
        snprintf(err, sizeof err, "out of memory scoring %zu rows", t.n_rows);
        goto fail;
    }

    struct eval_result r = {
        .model_name = ml_basename(o.model),
        .data_name = ml_basename(o.in.path),
        .n = t.n_rows,
        .n_pos = n_pos,
        .threshold = iforest_threshold(f),
        .auc = NAN,
        .ap = NAN,
    };
    char why[512] = "";
    bool both = n_pos > 0 && n_pos < t.n_rows;
    if (both &&
        (metrics_roc_auc(scores, t.labels, t.n_rows, &r.auc, err, sizeof err) != 0 ||
         metrics_average_precision(scores, t.labels, t.n_rows, &r.ap, err, sizeof err) != 0))
        goto fail;
    if (!both)
        snprintf(why, sizeof why, "n/a (every row is labelled %s: needs both classes)",
                 n_pos ? "1" : "0");
    if (metrics_at_threshold(scores, t.labels, t.n_rows, r.threshold, &r.at, err, sizeof err) != 0)
        goto fail;

    ml_print_model(stdout, o.model, f);
    print_recorded(iforest_meta_of(f));
    char a[32], b[32], c[32], e[32];
    printf("data        %s: %s rows, %s labelled anomalous (%.2f%%)\n", o.in.path,
           ml_thousands(t.n_rows, a, sizeof a), ml_thousands(n_pos, b, sizeof b),
           100.0 * (double)n_pos / (double)t.n_rows);
    if (t.n_cold > 0)
        printf("            %s rows left out: their device's window was still filling\n",
               ml_thousands(t.n_cold, a, sizeof a));
    if (both) {
        printf("ROC AUC     %.4f\n", r.auc);
        printf("PR AUC      %.4f (average precision)\n", r.ap);
    } else {
        printf("ROC AUC     %s\n", why);
        printf("PR AUC      %s\n", why);
    }
    printf("at the model's threshold %.4f:\n", r.threshold);
    printf("  precision %.4f   recall %.4f   F1 %.4f\n", r.at.precision, r.at.recall, r.at.f1);
    printf("  TP %s   FP %s   FN %s   TN %s\n", ml_thousands(r.at.tp, a, sizeof a),
           ml_thousands(r.at.fp, b, sizeof b), ml_thousands(r.at.fn, c, sizeof c),
           ml_thousands(r.at.tn, e, sizeof e));
    printf("  anomaly rate %.2f%% of the rows flagged (%.2f%% labelled)\n",
           100.0 * (double)(r.at.tp + r.at.fp) / (double)t.n_rows,
           100.0 * (double)n_pos / (double)t.n_rows);
    fflush(stdout);

    if (o.plots != NULL) {
        char w1[4200], w2[4200];
        if (make_dir(o.plots, err, sizeof err) != 0 ||
            plot_scores(scores, t.labels, &r, o.plots, png ? png_tool : NULL, w1, sizeof w1, err,
                        sizeof err) != 0)
            goto fail;
        if (both) {
            if (plot_roc(scores, t.labels, &r, o.plots, png ? png_tool : NULL, w2, sizeof w2, err,
                         sizeof err) != 0)
                goto fail;
            printf("plots       %s, %s\n", w1, w2);
        } else {
            printf("plots       %s (no ROC curve: it needs both classes)\n", w1);
        }
    }
    if (o.record) {
        if (!both) {
            snprintf(err, sizeof err,
                     "nothing to record: ROC AUC and PR AUC need both normal "
                     "and anomalous rows");
            goto fail;
        }
        struct iforest_meta *m = iforest_meta_mut(f);
        m->eval_roc_auc = r.auc;
        m->eval_pr_auc = r.ap;
        m->eval_rows = t.n_rows;
        snprintf(m->eval_source, sizeof m->eval_source, "%s", o.in.path);
        if (iforest_save(f, o.model, err, sizeof err) != 0)
            goto fail;
        printf("recorded in %s\n", o.model);
    }
    exit_code = 0;
    goto done;
fail:
    ml_status_clear();
    fflush(stdout);
    fprintf(stderr, "canary eval: %s\n", err[0] ? err : "failed");
done:
    free(scores);
    ml_table_free(&t);
    dataset_free(&d);
    iforest_free(f);
    return exit_code;
}
