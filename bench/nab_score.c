/* nab_score.c — NAB v1.1's scoring: windows, scaled sigmoid, profiles, probationary period,
 * the threshold sweep and the normalisation (contract and sources in nab_score.h). */
#include "nab_score.h"

#include "cli/ml_common.h"
#include "core/error.h"

#include <cjson/cJSON.h>
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ---- JSON ---------------------------------------------------------------------------- */

/* Reads a whole file, NUL-terminated (caller frees), or NULL with a message. */
static char *slurp(const char *path, char *err, size_t errlen)
{
    FILE *f = fopen(path, "rb");
    if (f == NULL) {
        snprintf(err, errlen, "%s: %s", path, strerror(errno));
        return NULL;
    }
    size_t cap = 1 << 16, n = 0;
    char *buf = malloc(cap);
    for (size_t got; buf != NULL && (got = fread(buf + n, 1, cap - n - 1, f)) > 0;) {
        n += got;
        if (n + 1 == cap) {
            char *grown = realloc(buf, cap *= 2);
            if (grown == NULL)
                free(buf);
            buf = grown;
        }
    }
    bool bad = ferror(f);
    fclose(f);
    if (buf == NULL || bad) {
        free(buf);
        snprintf(err, errlen, "%s: %s", path, bad ? "read error" : "out of memory");
        return NULL;
    }
    buf[n] = '\0';
    return buf;
}

static cJSON *parse_json(const char *path, char *err, size_t errlen)
{
    char *text = slurp(path, err, errlen);
    if (text == NULL)
        return NULL;
    cJSON *root = cJSON_Parse(text);
    if (root == NULL) {
        const char *at = cJSON_GetErrorPtr();
        snprintf(err, errlen, "%s: not valid JSON (near byte %ld)", path,
                 at != NULL ? (long)(at - text) : -1L);
    }
    free(text);
    return root;
}

/* A number field of a cost matrix. */
static int weight(const cJSON *m, const char *key, double *out, const char *path,
                  const char *profile, char *err, size_t errlen)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(m, key);
    if (!cJSON_IsNumber(v) || !isfinite(v->valuedouble)) {
        snprintf(err, errlen, "%s: profile '%s': CostMatrix.%s must be a number", path, profile,
                 key);
        return CANARY_EINVAL;
    }
    *out = v->valuedouble;
    return 0;
}

int nab_profiles_load(const char *path, struct nab_profile *out, size_t cap, size_t *n, char *err,
                      size_t errlen)
{
    *n = 0;
    cJSON *root = parse_json(path, err, errlen);
    if (root == NULL)
        return CANARY_EINVAL;
    int rc = 0;
    if (!cJSON_IsObject(root)) {
        snprintf(err, errlen, "%s: want an object of profiles", path);
        rc = CANARY_EINVAL;
    }
    for (const cJSON *p = root->child; rc == 0 && p != NULL; p = p->next) {
        if (*n == cap) {
            snprintf(err, errlen, "%s: more than %zu profiles", path, cap);
            rc = CANARY_ELIMIT;
            break;
        }
        const cJSON *m = cJSON_GetObjectItemCaseSensitive(p, "CostMatrix");
        if (!cJSON_IsObject(m)) {
            snprintf(err, errlen, "%s: profile '%s' has no CostMatrix object", path, p->string);
            rc = CANARY_EINVAL;
            break;
        }
        struct nab_profile *q = &out[*n];
        snprintf(q->name, sizeof q->name, "%s", p->string);
        if ((rc = weight(m, "tpWeight", &q->tp_weight, path, q->name, err, errlen)) != 0 ||
            (rc = weight(m, "fpWeight", &q->fp_weight, path, q->name, err, errlen)) != 0 ||
            (rc = weight(m, "fnWeight", &q->fn_weight, path, q->name, err, errlen)) != 0)
            break;
        (*n)++;
    }
    cJSON_Delete(root);
    return rc;
}

void nab_labels_free(struct nab_labels *l)
{
    for (size_t i = 0; i < l->n_files; i++) {
        free(l->files[i].name);
        free(l->files[i].windows);
    }
    free(l->files);
    memset(l, 0, sizeof *l);
}

static int by_start(const void *a, const void *b)
{
    const struct nab_window *x = a, *y = b;
    return (x->start_ms > y->start_ms) - (x->start_ms < y->start_ms);
}

/* One file's [[start, end], ...]. */
static int load_windows(const char *path, const cJSON *list, struct nab_file_windows *f, char *err,
                        size_t errlen)
{
    if (!cJSON_IsArray(list)) {
        snprintf(err, errlen, "%s: '%s': want an array of [start, end] pairs", path, f->name);
        return CANARY_EINVAL;
    }
    size_t n = (size_t)cJSON_GetArraySize(list);
    f->windows = calloc(n ? n : 1, sizeof *f->windows);
    if (f->windows == NULL)
        return CANARY_ENOMEM;
    for (const cJSON *w = list->child; w != NULL; w = w->next) {
        const cJSON *a = cJSON_GetArrayItem(w, 0), *b = cJSON_GetArrayItem(w, 1);
        struct nab_window *out = &f->windows[f->n];
        if (!cJSON_IsArray(w) || cJSON_GetArraySize(w) != 2 || !cJSON_IsString(a) ||
            !cJSON_IsString(b) || ml_parse_time(a->valuestring, &out->start_ms) != 0 ||
            ml_parse_time(b->valuestring, &out->end_ms) != 0 || out->end_ms < out->start_ms) {
            snprintf(err, errlen,
                     "%s: '%s', window %zu: want [\"start\", \"end\"] times, start <= end", path,
                     f->name, f->n + 1);
            return CANARY_EINVAL;
        }
        f->n++;
    }
    qsort(f->windows, f->n, sizeof *f->windows, by_start);
    return 0;
}

int nab_labels_load(const char *path, struct nab_labels *l, char *err, size_t errlen)
{
    memset(l, 0, sizeof *l);
    cJSON *root = parse_json(path, err, errlen);
    if (root == NULL)
        return CANARY_EINVAL;
    int rc = 0;
    size_t n = cJSON_IsObject(root) ? (size_t)cJSON_GetArraySize(root) : 0;
    if (!cJSON_IsObject(root)) {
        snprintf(err, errlen, "%s: want an object of files", path);
        rc = CANARY_EINVAL;
    } else if ((l->files = calloc(n ? n : 1, sizeof *l->files)) == NULL) {
        rc = CANARY_ENOMEM;
    }
    for (const cJSON *f = rc == 0 ? root->child : NULL; f != NULL && rc == 0; f = f->next) {
        struct nab_file_windows *fw = &l->files[l->n_files];
        if ((fw->name = strdup(f->string)) == NULL) {
            rc = CANARY_ENOMEM;
            break;
        }
        l->n_files++;
        rc = load_windows(path, f, fw, err, errlen);
        l->n_windows += fw->n;
    }
    if (rc == CANARY_ENOMEM)
        snprintf(err, errlen, "%s: out of memory", path);
    cJSON_Delete(root);
    if (rc != 0)
        nab_labels_free(l);
    return rc;
}

const struct nab_file_windows *nab_labels_find(const struct nab_labels *l, const char *name)
{
    for (size_t i = 0; i < l->n_files; i++) {
        if (strcmp(l->files[i].name, name) == 0)
            return &l->files[i];
    }
    return NULL;
}

/* ---- the score of a row ------------------------------------------------------------- */

double nab_scaled_sigmoid(double y)
{
    if (y >= 3.0)
        return -1.0; /* a false positive well past any window (sweeper.py's cut-off) */
    return 2.0 / (1.0 + exp(5.0 * y)) - 1.0;
}

size_t nab_probation_rows(size_t n_rows)
{
    size_t p = (size_t)floor(0.15 * (double)n_rows);
    return p < 750 ? p : 750;
}

void nab_corpus_free(struct nab_corpus *c)
{
    free(c->points);
    memset(c, 0, sizeof *c);
}

int nab_window_rows(const int64_t *ts_ms, size_t n_rows, const struct nab_window *windows,
                    size_t n_windows, size_t *lo, size_t *hi, char *err, size_t errlen)
{
    size_t i = 0; /* rows before i belong to earlier windows or precede them */
    for (size_t w = 0; w < n_windows; w++) {
        if (w > 0 && windows[w].start_ms <= windows[w - 1].end_ms) {
            snprintf(err, errlen, "window %zu overlaps window %zu or comes before it", w + 1, w);
            return CANARY_EINVAL;
        }
        /* The start: the row that carries it, else the first one past it. */
        size_t at = i;
        while (at < n_rows && ts_ms[at] != windows[w].start_ms)
            at++;
        if (at == n_rows) {
            for (at = i; at < n_rows && ts_ms[at] < windows[w].start_ms; at++)
                ;
        }
        if (at == n_rows || ts_ms[at] > windows[w].end_ms) {
            snprintf(err, errlen, "window %zu holds no row of the file", w + 1);
            return CANARY_EINVAL;
        }
        /* The end: the first row from there that carries it, else the last row before the
         * time passes it. */
        size_t end = at;
        while (end < n_rows && ts_ms[end] != windows[w].end_ms)
            end++;
        if (end == n_rows) {
            for (end = at; end + 1 < n_rows && ts_ms[end + 1] <= windows[w].end_ms; end++)
                ;
        }
        lo[w] = at;
        hi[w] = end;
        i = end + 1;
    }
    return 0;
}

int nab_corpus_add(struct nab_corpus *c, const char *name, const int64_t *ts_ms,
                   const double *scores, size_t n_rows, const struct nab_window *windows,
                   size_t n_windows, char *err, size_t errlen)
{
    for (size_t i = 0; i < n_rows; i++) {
        if (!isfinite(scores[i])) {
            snprintf(err, errlen, "%s: row %zu: the anomaly score is not a finite number", name,
                     i + 1);
            return CANARY_EINVAL;
        }
    }
    /* Each window's first and last row. */
    size_t *lo = malloc((n_windows ? n_windows : 1) * sizeof *lo);
    size_t *hi = malloc((n_windows ? n_windows : 1) * sizeof *hi);
    if (lo == NULL || hi == NULL) {
        free(lo);
        free(hi);
        snprintf(err, errlen, "%s: out of memory", name);
        return CANARY_ENOMEM;
    }
    char sub[256];
    int rc = nab_window_rows(ts_ms, n_rows, windows, n_windows, lo, hi, sub, sizeof sub);
    if (rc != 0)
        snprintf(err, errlen, "%s: %s", name, sub);
    size_t first = nab_probation_rows(n_rows);
    size_t need = c->n_points + (n_rows > first ? n_rows - first : 0);
    if (rc == 0 && need > c->cap_points) {
        size_t cap = c->cap_points ? c->cap_points : 4096;
        while (cap < need)
            cap *= 2;
        struct nab_point *grown = realloc(c->points, cap * sizeof *grown);
        if (grown == NULL) {
            snprintf(err, errlen, "%s: out of memory", name);
            rc = CANARY_ENOMEM;
        } else {
            c->points = grown;
            c->cap_points = cap;
        }
    }
    if (rc != 0) {
        free(lo);
        free(hi);
        return rc;
    }
    /* The sweep of sweeper.py's calcSweepScore: walk the rows, knowing the window we are in
     * (w, while lo[w] <= i <= hi[w]) and the last one we left (prev). */
    const double max_tp = nab_scaled_sigmoid(-1.0);
    size_t w = 0;
    long prev = -1;
    for (size_t i = 0; i < n_rows; i++) {
        while (w < n_windows && i > hi[w])
            prev = (long)w++;
        bool inside = w < n_windows && i >= lo[w];
        double unit;
        if (inside) {
            double width = (double)(hi[w] - lo[w] + 1);
            unit = nab_scaled_sigmoid(-(double)(hi[w] - i + 1) / width) / max_tp;
        } else if (prev < 0) {
            unit = nab_scaled_sigmoid(3.0);
        } else {
            /* NAB divides by (width - 1): a one-row window would be a division by zero
             * there; we treat what follows it as far away. */
            double span = (double)(hi[prev] - lo[prev]);
            unit = nab_scaled_sigmoid(span > 0 ? (double)(i - hi[prev]) / span : 3.0);
        }
        if (i < first)
            continue;
        c->points[c->n_points++] = (struct nab_point){
            .score = scores[i],
            .unit = unit,
            .window = inside ? (int32_t)(c->n_windows + w) : -1,
            .file = (uint32_t)c->n_files,
        };
    }
    for (size_t k = 0; k < n_windows; k++)
        c->n_windows_scored += hi[k] >= first;
    c->n_windows += n_windows;
    c->n_files++;
    c->by_score = false;
    free(lo);
    free(hi);
    return 0;
}

/* ---- thresholds --------------------------------------------------------------------- */

int nab_score_at(const struct nab_corpus *c, const struct nab_profile *p, double threshold,
                 struct nab_result *out, struct nab_result *per_file)
{
    /* best[w]: the weight of window w's best detection; NAN while it has none. */
    double *best = malloc((c->n_windows ? c->n_windows : 1) * sizeof *best);
    uint32_t *file_of = malloc((c->n_windows ? c->n_windows : 1) * sizeof *file_of);
    bool *scored = calloc(c->n_windows ? c->n_windows : 1, sizeof *scored);
    if (best == NULL || file_of == NULL || scored == NULL) {
        free(best);
        free(file_of);
        free(scored);
        return CANARY_ENOMEM;
    }
    for (size_t w = 0; w < c->n_windows; w++)
        best[w] = NAN;
    memset(out, 0, sizeof *out);
    out->threshold = threshold;
    if (per_file != NULL) {
        for (size_t f = 0; f < c->n_files; f++)
            per_file[f] = (struct nab_result){.threshold = threshold};
    }
    for (size_t i = 0; i < c->n_points; i++) {
        const struct nab_point *q = &c->points[i];
        bool detected = q->score >= threshold;
        struct nab_result *pf = per_file != NULL ? &per_file[q->file] : NULL;
        struct nab_result *rs[2] = {out, pf};
        if (q->window >= 0) {
            scored[q->window] = true;
            file_of[q->window] = q->file;
            double v = p->tp_weight * q->unit;
            if (detected && (isnan(best[q->window]) || v > best[q->window]))
                best[q->window] = v;
        } else if (detected) {
            out->raw += p->fp_weight * q->unit;
            if (pf != NULL)
                pf->raw += p->fp_weight * q->unit;
        }
        for (int k = 0; k < 2; k++) {
            if (rs[k] == NULL)
                continue;
            if (q->window >= 0)
                *(detected ? &rs[k]->tp : &rs[k]->fn) += 1;
            else
                *(detected ? &rs[k]->fp : &rs[k]->tn) += 1;
        }
    }
    for (size_t w = 0; w < c->n_windows; w++) {
        if (!scored[w])
            continue; /* wholly in a probationary period: NAB leaves it out */
        bool hit = !isnan(best[w]);
        double v = hit ? best[w] : -p->fn_weight;
        struct nab_result *rs[2] = {out, per_file != NULL ? &per_file[file_of[w]] : NULL};
        for (int k = 0; k < 2; k++) {
            if (rs[k] == NULL)
                continue;
            rs[k]->raw += v;
            *(hit ? &rs[k]->windows_detected : &rs[k]->windows_missed) += 1;
        }
    }
    free(best);
    free(file_of);
    free(scored);
    return 0;
}

static int by_score_desc(const void *a, const void *b)
{
    const struct nab_point *x = a, *y = b;
    /* The order among equal scores does not matter: a threshold takes all of them. */
    return (x->score < y->score) - (x->score > y->score);
}

int nab_optimise(struct nab_corpus *c, const struct nab_profile *p, struct nab_result *out)
{
    if (!c->by_score) {
        qsort(c->points, c->n_points, sizeof *c->points, by_score_desc);
        c->by_score = true;
    }
    /* part[w]: window w's term of the sum — -A_FN until detected, then the weight of its
     * best detection so far. As the threshold falls, detections are only ever added, so
     * each row changes the total once: one pass over the sorted rows evaluates every
     * candidate threshold. */
    double *part = malloc((c->n_windows ? c->n_windows : 1) * sizeof *part);
    if (part == NULL)
        return CANARY_ENOMEM;
    for (size_t w = 0; w < c->n_windows; w++)
        part[w] = 0;
    for (size_t i = 0; i < c->n_points; i++) {
        if (c->points[i].window >= 0)
            part[c->points[i].window] = -p->fn_weight;
    }
    double fp = 0, windows = 0;
    for (size_t w = 0; w < c->n_windows; w++)
        windows += part[w];
    double best_threshold = 1.1, best = fp + windows;
    for (size_t i = 0; i < c->n_points;) {
        double t = c->points[i].score;
        bool changed = false;
        for (; i < c->n_points && c->points[i].score == t; i++) {
            const struct nab_point *q = &c->points[i];
            if (q->window < 0) {
                fp += p->fp_weight * q->unit;
            } else if (p->tp_weight * q->unit > part[q->window]) {
                part[q->window] = p->tp_weight * q->unit;
                changed = true;
            }
        }
        if (changed) {
            /* Summed afresh, not updated by differences: no rounding drift over 10^5 steps. */
            windows = 0;
            for (size_t w = 0; w < c->n_windows; w++)
                windows += part[w];
        }
        if (fp + windows > best) {
            best = fp + windows;
            best_threshold = t;
        }
    }
    free(part);
    return nab_score_at(c, p, best_threshold, out, NULL);
}

double nab_null_raw(const struct nab_corpus *c, const struct nab_profile *p)
{
    /* No detection: every window with scored rows is missed. Every row a detection: each
     * such window is caught at its first scored row, and every row outside costs. */
    double none = -p->fn_weight * (double)c->n_windows_scored;
    double all = 0;
    double *first = malloc((c->n_windows ? c->n_windows : 1) * sizeof *first);
    if (first == NULL)
        return none;
    for (size_t w = 0; w < c->n_windows; w++)
        first[w] = NAN;
    for (size_t i = 0; i < c->n_points; i++) {
        const struct nab_point *q = &c->points[i];
        if (q->window < 0)
            all += p->fp_weight * q->unit;
        else if (isnan(first[q->window]) || p->tp_weight * q->unit > first[q->window])
            first[q->window] = p->tp_weight * q->unit;
    }
    for (size_t w = 0; w < c->n_windows; w++)
        all += isnan(first[w]) ? 0 : first[w];
    free(first);
    return all > none ? all : none;
}

double nab_perfect_raw(const struct nab_profile *p, size_t n_windows)
{
    return p->tp_weight * (double)n_windows;
}

double nab_normalised(double raw, double null_raw, double perfect_raw)
{
    return 100.0 * (raw - null_raw) / (perfect_raw - null_raw);
}
