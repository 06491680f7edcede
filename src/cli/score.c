/* score.c — `canary score`: a trained model's anomaly scores for the rows of a CSV file.
 *
 * Promises:
 *  - the features are built as `canary train` built them (ml_common.c), by column name, so
 *    the file's columns may be in any order and hold extra columns; a file that lacks some
 *    of the model's columns is refused with all of them named;
 *  - one output line per data row of the input, in input order: the row number (1-based,
 *    counting data rows, not the header), the timestamp (RFC 3339 UTC) and device when the
 *    file has them, the score (0..1, higher is more anomalous) and anomaly (1 when the score
 *    is at or above the model's threshold). Rows a window model cannot score yet (their
 *    device's window is still filling) have an empty score and anomaly;
 *  - output goes to stdout or to --output (written to a temporary file and renamed, so a
 *    failed run never leaves half a file); the summary goes to stderr;
 *  - exit status 0 on success, 1 when a file or the data is the problem, 2 for bad usage. */
#include "cli/commands.h"
#include "cli/ml_common.h"

#include "core/clock.h"
#include "core/error.h"

#include <errno.h>
#include <inttypes.h>
#include <math.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define CMD "score"

static void usage(FILE *out)
{
    fprintf(out, "usage: canary score --model MODEL.cif --input FILE.csv [--output SCORES.csv] "
                 "[options]\n"
                 "\n"
                 "Scores every row of a CSV file with a model from `canary train` and writes CSV:\n"
                 "\n"
                 "  row,timestamp,device,score,anomaly\n"
                 "  1,2026-11-20T08:00:00.000Z,kitchen-1,0.4213,0\n"
                 "\n"
                 "row counts data rows from 1 (the header is not a row); timestamp (RFC 3339 UTC)\n"
                 "and device appear when the file has those columns; score is in 0..1, higher is\n"
                 "more anomalous; anomaly is 1 when the score is at or above the model's\n"
                 "threshold. The file needs the model's feature columns by name (in any order,\n"
                 "extra columns are ignored). With window features, a device's first rows only\n"
                 "fill its window: their score and anomaly are empty.\n"
                 "\n"
                 "options:\n"
                 "  --model MODEL.cif         the model (required)\n"
                 "  --input FILE.csv          the rows to score (required)\n"
                 "  --output SCORES.csv       where to write (default stdout)\n"
                 "  --timestamp-column NAME   the time of each row (default: the column the\n"
                 "                            model was trained with, else one named timestamp,\n"
                 "                            ts or time)\n"
                 "  --device-column NAME      the device of each row (default: likewise, device\n"
                 "                            or device_id)\n"
                 "  --threads T               threads (default 0: one per CPU)\n"
                 "  --help                    show this help\n"
                 "\n"
                 "A summary (rows scored, rows at or above the threshold) goes to stderr. Exit\n"
                 "status: 0 on success, 1 when a file or the data is the problem, 2 for bad\n"
                 "usage. See docs/MODELS.md.\n");
}

/* Writes the CSV field s, quoted when it holds a comma, a quote or a line break. */
static void put_field(FILE *out, const char *s)
{
    if (strpbrk(s, ",\"\r\n") == NULL) {
        fputs(s, out);
        return;
    }
    fputc('"', out);
    for (; *s; s++) {
        if (*s == '"')
            fputc('"', out);
        fputc(*s, out);
    }
    fputc('"', out);
}

/* Writes every row; returns 0 or the errno of the failed write. */
static int write_scores(FILE *out, const struct dataset *d, const struct ml_model_input *in,
                        const double *score_of_row, double threshold)
{
    fputs("row", out);
    if (d->ts_ms != NULL) {
        fputc(',', out);
        put_field(out, in->timestamp_used);
    }
    if (d->devices != NULL) {
        fputc(',', out);
        put_field(out, in->device_used);
    }
    fputs(",score,anomaly\n", out);
    for (size_t r = 0; r < d->n_rows; r++) {
        fprintf(out, "%zu", r + 1);
        if (d->ts_ms != NULL) {
            char ts[40];
            clock_format_ms(d->ts_ms[r], ts, sizeof ts);
            fprintf(out, ",%s", ts);
        }
        if (d->devices != NULL) {
            fputc(',', out);
            put_field(out, d->devices[r]);
        }
        double s = score_of_row[r];
        if (isnan(s))
            fputs(",,\n", out);
        else
            fprintf(out, ",%.6f,%d\n", s, s >= threshold);
    }
    if (fflush(out) != 0 || ferror(out))
        return errno ? errno : EIO;
    return 0;
}

int cmd_score(int argc, char **argv)
{
    const char *model = NULL, *output = NULL;
    struct ml_model_input in = {0};
    uint32_t threads = 0;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (!strcmp(a, "--help") || !strcmp(a, "-h")) {
            usage(stdout);
            return 0;
        }
        if (i + 1 >= argc)
            return ml_bad_usage(CMD, "%s: unknown option or missing value", a);
        const char *v = argv[++i];
        if (!strcmp(a, "--model")) {
            model = v;
        } else if (!strcmp(a, "--input")) {
            in.path = v;
        } else if (!strcmp(a, "--output")) {
            output = v;
        } else if (!strcmp(a, "--timestamp-column")) {
            in.timestamp_column = v;
        } else if (!strcmp(a, "--device-column")) {
            in.device_column = v;
        } else if (!strcmp(a, "--threads")) {
            if (ml_parse_u32(CMD, a, v, 0, 1024, &threads) != 0)
                return 2;
        } else {
            return ml_bad_usage(CMD, "unknown option: %s", a);
        }
    }
    if (model == NULL || in.path == NULL)
        return ml_bad_usage(CMD, "--model MODEL.cif and --input FILE.csv are required");

    char err[2048] = "";
    struct iforest *f = NULL;
    struct dataset d = {0};
    struct ml_table t = {0};
    double *scores = NULL, *score_of_row = NULL;
    char tmp[4096] = "";
    int exit_code = 1;
    int64_t t0 = clock_mono_ns();

    if (iforest_load(&f, model, err, sizeof err) != 0)
        goto fail;
    if (ml_load_for_model(f, &in, &d, &t, err, sizeof err) != 0)
        goto fail;
    scores = malloc((t.n_rows ? t.n_rows : 1) * sizeof *scores);
    score_of_row = malloc((d.n_rows ? d.n_rows : 1) * sizeof *score_of_row);
    if (scores == NULL || score_of_row == NULL) {
        snprintf(err, sizeof err, "out of memory for %zu scores", d.n_rows);
        goto fail;
    }
    ml_status("scoring %zu rows ...", t.n_rows);
    int rc = t.n_rows ? iforest_score(f, t.x, t.n_rows, threads, scores) : 0;
    ml_status_clear();
    if (rc != 0) {
        snprintf(err, sizeof err, "out of memory scoring %zu rows", t.n_rows);
        goto fail;
    }
    for (size_t r = 0; r < d.n_rows; r++)
        score_of_row[r] = NAN;
    double threshold = iforest_threshold(f);
    size_t flagged = 0;
    for (size_t i = 0; i < t.n_rows; i++) {
        score_of_row[t.source[i]] = scores[i];
        flagged += scores[i] >= threshold;
    }

    FILE *out = stdout;
    if (output != NULL) {
        snprintf(tmp, sizeof tmp, "%s.tmp-%ld", output, (long)getpid());
        if ((out = fopen(tmp, "w")) == NULL) {
            snprintf(err, sizeof err, "%s: %s", output, strerror(errno));
            tmp[0] = '\0';
            goto fail;
        }
    }
    int werr = write_scores(out, &d, &in, score_of_row, threshold);
    if (output != NULL) {
        if (fclose(out) != 0 && werr == 0)
            werr = errno ? errno : EIO;
        if (werr == 0 && rename(tmp, output) != 0)
            werr = errno;
        if (werr == 0)
            tmp[0] = '\0';
    }
    if (werr != 0) {
        snprintf(err, sizeof err, "writing %s: %s", output ? output : "the scores", strerror(werr));
        goto fail;
    }
    char a[32], b[32];
    fprintf(stderr,
            "canary score: %s rows scored in %.2f s, %s at or above the threshold %.4f "
            "(%.2f%%)",
            ml_thousands(t.n_rows, a, sizeof a), ml_seconds_since(t0),
            ml_thousands(flagged, b, sizeof b), threshold,
            t.n_rows ? 100.0 * (double)flagged / (double)t.n_rows : 0.0);
    if (t.n_cold > 0)
        fprintf(stderr, "; %zu rows not scored while windows filled", t.n_cold);
    fprintf(stderr, "%s%s\n", output ? ": " : "", output ? output : "");
    exit_code = 0;
    goto done;
fail:
    ml_status_clear();
    fprintf(stderr, "canary score: %s\n", err[0] ? err : "failed");
done:
    if (tmp[0] != '\0')
        unlink(tmp);
    free(scores);
    free(score_of_row);
    ml_table_free(&t);
    dataset_free(&d);
    iforest_free(f);
    return exit_code;
}
