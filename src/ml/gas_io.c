/* gas_io.c — the gas classifier's model bundle: gas_save, gas_save_buffer, gas_load,
 * gas_load_buffer (contract in gas.h, format in docs/GAS.md).
 *
 * Version 2, integers little-endian and fixed-width, doubles as their IEEE-754 bits:
 *   "CANARYGS", u32 version, u32 0, u64 total size,
 *   u32 inputs, u32 classes, u32 features, u32 feature kind, u32 window, u32 window features
 *   (GAS_WINDOW_* bits; 0 without a window),
 *   the training parameters (u64 seed, u32 folds, rf trees, rf depth, gbt rounds, gbt depth,
 *   lr rounds, threads; f64 rf subsample, rf colsample, gbt eta, lr lambda, meta C),
 *   the meta (u64 rows, i64 created ms, f64 fit seconds, f64 fit seconds of each base
 *   learner x 3, f64 OOF accuracy x 4),
 *   strings as u16 length + bytes: source, label column, series column, order column,
 *   evaluation split; u64 evaluation rows, f64 evaluation accuracy and macro F1;
 *   strings: the input names, the class names,
 *   f64 mean[features], f64 1/sd[features], f64 meta weights[classes x (3 classes + 1)],
 *   per base learner (random forest, logistic regression, gradient boosting): u64 length
 *   and XGBoost's JSON model, then a CRC-32 (zlib's) of every byte before it.
 *
 * Version 1 (the first release) is version 2 without the window features: it is read with
 * the mean as its window feature when it has a window.
 *
 * Loading trusts nothing: magic, version, the recorded size against the real one and the
 * CRC first, then every count and name before it is used, every number finite, and each
 * booster through gas__compile's checks. Saving is atomic (core/file_atomic.h: temporary file,
 * fsync, rename, fsync of the directory). */
#include "ml/gas_internal.h"

#include "core/error.h"
#include "core/file_atomic.h"
#include "ml/features.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <zlib.h>

#define GAS_MAGIC   "CANARYGS"
#define GAS_VERSION 2u

static uint32_t crc_of(const uint8_t *p, size_t len)
{
    uLong c = crc32(0, Z_NULL, 0);
    while (len > 0) {
        uInt n = len > UINT_MAX ? UINT_MAX : (uInt)len;
        c = crc32(c, p, n);
        p += n;
        len -= n;
    }
    return (uint32_t)c;
}

/* ---- writing ---- */

struct wbuf {
    uint8_t *p;
    size_t len, cap;
    bool oom;
};

static void put(struct wbuf *b, const void *s, size_t n)
{
    if (b->oom)
        return;
    if (b->len + n > b->cap) {
        size_t cap = b->cap ? b->cap : 4096;
        while (cap < b->len + n)
            cap *= 2;
        uint8_t *q = realloc(b->p, cap);
        if (!q) {
            b->oom = true;
            return;
        }
        b->p = q;
        b->cap = cap;
    }
    memcpy(b->p + b->len, s, n);
    b->len += n;
}

static void put_u64(struct wbuf *b, uint64_t v)
{
    uint8_t t[8];
    for (int i = 0; i < 8; i++)
        t[i] = (uint8_t)(v >> (8 * i));
    put(b, t, 8);
}

static void put_u32(struct wbuf *b, uint32_t v)
{
    uint8_t t[4];
    for (int i = 0; i < 4; i++)
        t[i] = (uint8_t)(v >> (8 * i));
    put(b, t, 4);
}

static void put_f64(struct wbuf *b, double v)
{
    uint64_t bits;
    memcpy(&bits, &v, 8);
    put_u64(b, bits);
}

static void put_str(struct wbuf *b, const char *s)
{
    size_t n = strlen(s);
    uint8_t t[2] = {(uint8_t)n, (uint8_t)(n >> 8)};
    put(b, t, 2);
    put(b, s, n);
}

int gas_save_buffer(const struct gas_model *m, void **out, size_t *len, char *err, size_t errlen)
{
    struct wbuf b = {0};
    const struct gas_params *p = &m->params;
    const size_t F = m->n_features, K = m->n_classes;
    put(&b, GAS_MAGIC, 8);
    put_u32(&b, GAS_VERSION);
    put_u32(&b, 0);
    put_u64(&b, 0); /* the total size, patched below */
    put_u32(&b, (uint32_t)m->n_inputs);
    put_u32(&b, (uint32_t)K);
    put_u32(&b, (uint32_t)F);
    put_u32(&b, (uint32_t)p->features);
    put_u32(&b, p->window);
    put_u32(&b, p->window_stats);
    put_u64(&b, p->seed);
    put_u32(&b, p->folds);
    put_u32(&b, p->rf_trees);
    put_u32(&b, p->rf_depth);
    put_u32(&b, p->gbt_rounds);
    put_u32(&b, p->gbt_depth);
    put_u32(&b, p->lr_rounds);
    put_u32(&b, p->threads);
    put_f64(&b, p->rf_subsample);
    put_f64(&b, p->rf_colsample);
    put_f64(&b, p->gbt_eta);
    put_f64(&b, p->lr_lambda);
    put_f64(&b, p->meta_c);
    put_u64(&b, m->meta.n_rows);
    put_u64(&b, (uint64_t)m->meta.created_ms);
    put_f64(&b, m->meta.fit_s);
    for (int l = 0; l < GAS_N_BASE; l++)
        put_f64(&b, m->meta.learner_fit_s[l]);
    for (int l = 0; l < GAS_N_LEARNERS; l++)
        put_f64(&b, m->meta.oof_accuracy[l]);
    put_str(&b, m->meta.source);
    put_str(&b, m->meta.label_column);
    put_str(&b, m->meta.series_column);
    put_str(&b, m->meta.order_column);
    put_str(&b, m->meta.eval_split);
    put_u64(&b, m->meta.eval_rows);
    put_f64(&b, m->meta.eval_accuracy);
    put_f64(&b, m->meta.eval_macro_f1);
    for (size_t i = 0; i < m->n_inputs; i++)
        put_str(&b, m->input_names[i]);
    for (size_t k = 0; k < K; k++)
        put_str(&b, m->class_names[k]);
    for (size_t j = 0; j < F; j++)
        put_f64(&b, m->mean[j]);
    for (size_t j = 0; j < F; j++)
        put_f64(&b, m->inv_sd[j]);
    for (size_t i = 0; i < K * (GAS_N_BASE * K + 1); i++)
        put_f64(&b, m->meta_w[i]);
    for (int l = 0; l < GAS_N_BASE; l++) {
        put_u64(&b, m->json_len[l]);
        put(&b, m->json[l], m->json_len[l]);
    }
    if (!b.oom) {
        uint64_t total = b.len + 4;
        for (int i = 0; i < 8; i++)
            b.p[16 + i] = (uint8_t)(total >> (8 * i));
        put_u32(&b, crc_of(b.p, b.len));
    }
    if (b.oom) {
        free(b.p);
        canary_errf(err, errlen, "out of memory");
        return CANARY_ENOMEM;
    }
    *out = b.p;
    *len = b.len;
    return 0;
}

int gas_save(const struct gas_model *m, const char *path, char *err, size_t errlen)
{
    void *buf;
    size_t len;
    if (gas_save_buffer(m, &buf, &len, err, errlen)) {
        canary_errf(err, errlen, "%s: out of memory", path);
        return CANARY_ENOMEM;
    }
    int rc = file_write_atomic(path, buf, len, 0644, err, errlen);
    free(buf);
    return rc;
}

/* ---- reading ---- */

struct rbuf {
    const uint8_t *p;
    size_t left;
    bool bad;
};

static const uint8_t *take(struct rbuf *r, size_t n)
{
    if (r->bad || n > r->left) {
        r->bad = true;
        return NULL;
    }
    const uint8_t *q = r->p;
    r->p += n;
    r->left -= n;
    return q;
}

static uint64_t get_u64(struct rbuf *r)
{
    const uint8_t *q = take(r, 8);
    uint64_t v = 0;
    for (int i = 0; q && i < 8; i++)
        v |= (uint64_t)q[i] << (8 * i);
    return v;
}

static uint32_t get_u32(struct rbuf *r)
{
    const uint8_t *q = take(r, 4);
    uint32_t v = 0;
    for (int i = 0; q && i < 4; i++)
        v |= (uint32_t)q[i] << (8 * i);
    return v;
}

static double get_f64(struct rbuf *r)
{
    uint64_t bits = get_u64(r);
    double v;
    memcpy(&v, &bits, 8);
    if (!isfinite(v))
        r->bad = true;
    return v;
}

/* A name of 1..cap-1 bytes with no NUL (allow_empty for the source). */
static bool get_str(struct rbuf *r, char *out, size_t cap, bool allow_empty)
{
    const uint8_t *q = take(r, 2);
    size_t n = q ? (size_t)q[0] | (size_t)q[1] << 8 : 0;
    const uint8_t *s = q ? take(r, n) : NULL;
    if (!s || n >= cap || (!n && !allow_empty) || memchr(s, 0, n)) {
        r->bad = true;
        return false;
    }
    memcpy(out, s, n);
    out[n] = '\0';
    return true;
}

static int parse(const uint8_t *buf, size_t len, struct gas_model **out, char *err, size_t errlen)
{
    if (len < 24 + 4 || memcmp(buf, GAS_MAGIC, 8)) {
        canary_errf(err, errlen, "not a canary gas model (no CANARYGS header)");
        return CANARY_EINVAL;
    }
    struct rbuf r = {buf + 8, len - 8, false};
    uint32_t version = get_u32(&r);
    (void)get_u32(&r);
    uint64_t total = get_u64(&r);
    if (version != GAS_VERSION && version != 1) {
        canary_errf(err, errlen, "model format version %u; this canary reads versions 1 to %u",
                    version, GAS_VERSION);
        return CANARY_EINVAL;
    }
    if (total != len) {
        canary_errf(err, errlen,
                    "the model is %zu bytes, its header says %llu (truncated or "
                    "damaged)",
                    len, (unsigned long long)total);
        return CANARY_EINVAL;
    }
    uint32_t crc = (uint32_t)buf[len - 4] | (uint32_t)buf[len - 3] << 8 |
                   (uint32_t)buf[len - 2] << 16 | (uint32_t)buf[len - 1] << 24;
    if (crc != crc_of(buf, len - 4)) {
        canary_errf(err, errlen, "checksum mismatch: the model file is damaged");
        return CANARY_EINVAL;
    }
    r.left -= 4; /* the CRC */
    uint32_t n_inputs = get_u32(&r), K = get_u32(&r), F = get_u32(&r), kind = get_u32(&r);
    uint32_t window = get_u32(&r);
    uint32_t stats = version == 1 ? (window ? GAS_WINDOW_MEAN : 0) : get_u32(&r);
    if (r.bad || n_inputs < 1 || n_inputs > GAS_MAX_INPUTS || K < 2 || K > GAS_MAX_CLASSES ||
        kind > GAS_FEATURES_BOTH || window > FEATURE_WINDOW_MAX ||
        (stats & ~(uint32_t)GAS_WINDOW_ALL) || (window && !stats) || (!window && stats) ||
        ((stats & GAS_WINDOW_SLOPE) && window < 2) ||
        F != gas__n_features((enum gas_features)kind, n_inputs, window, stats)) {
        canary_errf(err, errlen, "bad sizes in the model header");
        return CANARY_EINVAL;
    }
    struct gas_model *m = gas__alloc(n_inputs, K, (enum gas_features)kind, window, stats);
    if (!m)
        return CANARY_ENOMEM;
    int rc = CANARY_EINVAL;
    struct gas_params *p = &m->params;
    p->seed = get_u64(&r);
    p->folds = get_u32(&r);
    p->rf_trees = get_u32(&r);
    p->rf_depth = get_u32(&r);
    p->gbt_rounds = get_u32(&r);
    p->gbt_depth = get_u32(&r);
    p->lr_rounds = get_u32(&r);
    p->threads = get_u32(&r);
    p->rf_subsample = get_f64(&r);
    p->rf_colsample = get_f64(&r);
    p->gbt_eta = get_f64(&r);
    p->lr_lambda = get_f64(&r);
    p->meta_c = get_f64(&r);
    m->meta.n_rows = get_u64(&r);
    m->meta.created_ms = (int64_t)get_u64(&r);
    m->meta.fit_s = get_f64(&r);
    for (int l = 0; l < GAS_N_BASE; l++)
        m->meta.learner_fit_s[l] = get_f64(&r);
    for (int l = 0; l < GAS_N_LEARNERS; l++)
        m->meta.oof_accuracy[l] = get_f64(&r);
    get_str(&r, m->meta.source, sizeof m->meta.source, true);
    get_str(&r, m->meta.label_column, sizeof m->meta.label_column, true);
    get_str(&r, m->meta.series_column, sizeof m->meta.series_column, true);
    get_str(&r, m->meta.order_column, sizeof m->meta.order_column, true);
    get_str(&r, m->meta.eval_split, sizeof m->meta.eval_split, true);
    m->meta.eval_rows = get_u64(&r);
    m->meta.eval_accuracy = get_f64(&r);
    m->meta.eval_macro_f1 = get_f64(&r);
    for (size_t i = 0; i < n_inputs; i++)
        get_str(&r, m->input_names[i], GAS_NAME_MAX, false);
    for (size_t k = 0; k < K; k++)
        get_str(&r, m->class_names[k], GAS_NAME_MAX, false);
    for (size_t j = 0; j < F; j++)
        m->mean[j] = get_f64(&r);
    for (size_t j = 0; j < F; j++)
        m->inv_sd[j] = get_f64(&r);
    for (size_t i = 0; i < (size_t)K * (GAS_N_BASE * K + 1); i++)
        m->meta_w[i] = get_f64(&r);
    if (r.bad) {
        canary_errf(err, errlen, "the model's header, names or weights are damaged");
        goto out;
    }
    for (int l = 0; l < GAS_N_BASE; l++) {
        uint64_t n = get_u64(&r);
        const uint8_t *j = r.bad || n > r.left ? NULL : take(&r, (size_t)n);
        if (!j) {
            canary_errf(err, errlen, "%s: the booster is cut short",
                        gas_learner_name((enum gas_learner)l));
            goto out;
        }
        m->json[l] = malloc((size_t)n + 1);
        if (!m->json[l]) {
            rc = CANARY_ENOMEM;
            goto out;
        }
        memcpy(m->json[l], j, (size_t)n);
        m->json[l][n] = '\0';
        m->json_len[l] = (size_t)n;
        rc = gas__compile(m, (enum gas_learner)l, m->json[l], m->json_len[l], err, errlen);
        if (rc)
            goto out;
        rc = CANARY_EINVAL;
    }
    if (r.left != 0) {
        canary_errf(err, errlen, "%zu unexpected bytes after the boosters", r.left);
        goto out;
    }
    *out = m;
    return 0;
out:
    gas_free(m);
    return rc;
}

int gas_load_buffer(const void *buf, size_t len, struct gas_model **out, char *err, size_t errlen)
{
    *out = NULL;
    return parse(buf, len, out, err, errlen);
}

int gas_load(const char *path, struct gas_model **out, char *err, size_t errlen)
{
    *out = NULL;
    FILE *f = fopen(path, "rb");
    if (!f) {
        canary_errf(err, errlen, "%s: %s", path, strerror(errno));
        return CANARY_EIO;
    }
    size_t cap = 1 << 20, len = 0;
    uint8_t *buf = malloc(cap);
    int rc = 0;
    while (buf) {
        if (len == cap) {
            uint8_t *more = cap < ((size_t)1 << 32) ? realloc(buf, cap * 2) : NULL;
            if (!more) {
                free(buf);
                buf = NULL;
                break;
            }
            buf = more;
            cap *= 2;
        }
        size_t n = fread(buf + len, 1, cap - len, f);
        len += n;
        if (n == 0)
            break;
    }
    if (!buf) {
        fclose(f);
        canary_errf(err, errlen, "%s: out of memory, or the file is over 4 GB", path);
        return CANARY_ENOMEM;
    }
    if (ferror(f)) {
        canary_errf(err, errlen, "%s: %s", path, strerror(errno));
        rc = CANARY_EIO;
    }
    fclose(f);
    if (!rc) {
        char why[256] = "";
        rc = parse(buf, len, out, why, sizeof why);
        if (rc)
            canary_errf(err, errlen, "%s: %s", path, why);
    }
    free(buf);
    return rc;
}
