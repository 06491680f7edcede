/* iforest_io.c — the Isolation Forest model file: iforest_save, iforest_save_buffer,
 * iforest_load, iforest_load_buffer (contract in iforest.h, format in docs/MODEL_FORMAT.md).
 *
 * Version 1, all integers little-endian and fixed-width, floats as their IEEE-754 bits:
 * a fixed 132-byte header (magic "CANARYIF", version, total size, parameters, threshold,
 * the meta's numbers), the meta's strings and the feature names with their lengths, each
 * tree as a node count and its nodes in pre-order (feature u32, value f32), and a CRC-32
 * (zlib's) of every byte before it.
 *
 * Loading trusts nothing: it checks the magic, the version, that the size the header
 * records is the size it has, the CRC, and then every count against the header's limits and
 * the bytes that remain before allocating anything, and every tree's shape (iforest__tree_valid)
 * before compiling it. Each failure names what is wrong. Saving goes through core/file_atomic.h (a
 * temporary file in the target's directory, fsynced, renamed over the target, the directory
 * fsynced), so a crash leaves the old model or the new one, never a mix. */
#include "ml/iforest.h"

#include "core/error.h"
#include "core/file_atomic.h"
#include "ml/iforest_internal.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <limits.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <zlib.h>

#define MODEL_MAGIC       "CANARYIF"
#define MODEL_VERSION     1u
#define MODEL_HEADER_SIZE 132u /* through eval_rows; see docs/MODEL_FORMAT.md */
#define MODEL_NODE_SIZE   8u

/* zlib's CRC-32 of p[0 .. len) continued from crc (0 to start); crc32 takes a uInt length. */
static uint32_t crc_more(uint32_t crc, const uint8_t *p, size_t len)
{
    uLong c = crc;
    while (len > 0) {
        size_t n = len > UINT_MAX ? UINT_MAX : len;
        c = crc32(c, p, (uInt)n);
        p += n;
        len -= n;
    }
    return (uint32_t)c;
}

/* ---- writing ---- */

struct writer {
    uint8_t *p;
};

static void put_u8(struct writer *w, uint8_t v)
{
    *w->p++ = v;
}

static void put_u16(struct writer *w, uint16_t v)
{
    for (int i = 0; i < 2; i++)
        *w->p++ = (uint8_t)(v >> (8 * i));
}

static void put_u32(struct writer *w, uint32_t v)
{
    for (int i = 0; i < 4; i++)
        *w->p++ = (uint8_t)(v >> (8 * i));
}

static void put_u64(struct writer *w, uint64_t v)
{
    for (int i = 0; i < 8; i++)
        *w->p++ = (uint8_t)(v >> (8 * i));
}

static void put_f32(struct writer *w, float v)
{
    uint32_t bits;
    memcpy(&bits, &v, 4);
    put_u32(w, bits);
}

static void put_f64(struct writer *w, double v)
{
    uint64_t bits;
    memcpy(&bits, &v, 8);
    put_u64(w, bits);
}

static void put_bytes(struct writer *w, const void *s, size_t n)
{
    memcpy(w->p, s, n);
    w->p += n;
}

/* A string field: u16 length, then its bytes (no NUL). */
static void put_str16(struct writer *w, const char *s, size_t cap)
{
    size_t n = strnlen(s, cap - 1);
    put_u16(w, (uint16_t)n);
    put_bytes(w, s, n);
}

static size_t str_len(const char *s, size_t cap)
{
    return strnlen(s, cap - 1);
}

int iforest_save_buffer(const struct iforest *f, void **out, size_t *len, char *err, size_t errlen)
{
    const struct iforest_meta *m = &f->meta;
    const uint32_t T = f->params.n_trees;
    const uint64_t total_nodes = f->tree_start[T];
    size_t size = MODEL_HEADER_SIZE;
    size += 2 + str_len(m->source, sizeof m->source);
    size += 2 + str_len(m->features_kind, sizeof m->features_kind);
    size += 2 + str_len(m->eval_source, sizeof m->eval_source);
    for (uint32_t c = 0; c < f->n_cols; c++)
        size += 1 + str_len(f->names[c], IFOREST_NAME_MAX);
    size += (size_t)T * 4 + (size_t)total_nodes * MODEL_NODE_SIZE + 4;

    uint8_t *buf = malloc(size);
    if (buf == NULL) {
        canary_errf(err, errlen, "out of memory for a model of %zu bytes", size);
        return CANARY_ENOMEM;
    }
    struct writer w = {buf};
    put_bytes(&w, MODEL_MAGIC, 8);
    put_u32(&w, MODEL_VERSION);
    put_u64(&w, size);
    put_u32(&w, f->n_cols);
    put_u32(&w, T);
    put_u32(&w, f->params.subsample);
    put_u32(&w, f->params.max_depth);
    put_u32(&w, f->params.threads);
    put_u64(&w, f->params.seed);
    put_f64(&w, f->params.contamination);
    put_f64(&w, f->threshold);
    put_u64(&w, total_nodes);
    put_u64(&w, m->train_rows);
    put_u64(&w, (uint64_t)m->data_from_ms);
    put_u64(&w, (uint64_t)m->data_to_ms);
    put_u64(&w, (uint64_t)m->created_ms);
    put_u32(&w, m->window);
    put_f64(&w, m->eval_roc_auc);
    put_f64(&w, m->eval_pr_auc);
    put_u64(&w, m->eval_rows);
    put_str16(&w, m->source, sizeof m->source);
    put_str16(&w, m->features_kind, sizeof m->features_kind);
    put_str16(&w, m->eval_source, sizeof m->eval_source);
    for (uint32_t c = 0; c < f->n_cols; c++) {
        size_t n = str_len(f->names[c], IFOREST_NAME_MAX);
        put_u8(&w, (uint8_t)n);
        put_bytes(&w, f->names[c], n);
    }
    for (uint32_t t = 0; t < T; t++) {
        put_u32(&w, f->tree_start[t + 1] - f->tree_start[t]);
        for (uint32_t k = f->tree_start[t]; k < f->tree_start[t + 1]; k++) {
            put_u32(&w, f->nodes[k].feature);
            put_f32(&w, f->nodes[k].value);
        }
    }
    uint32_t crc = crc_more(0, buf, (size_t)(w.p - buf));
    put_u32(&w, crc);
    *out = buf;
    *len = size;
    return CANARY_OK;
}

int iforest_save(const struct iforest *f, const char *path, char *err, size_t errlen)
{
    void *buf;
    size_t len;
    if (iforest_save_buffer(f, &buf, &len, err, errlen) != CANARY_OK) {
        char why[160];
        snprintf(why, sizeof why, "%s", err != NULL && errlen > 0 ? err : "out of memory");
        canary_errf(err, errlen, "%s: %s", path, why);
        return CANARY_EIO;
    }
    int rc = file_write_atomic(path, buf, len, 0644, err, errlen);
    free(buf);
    return rc;
}

/* ---- reading ---- */

struct reader {
    const uint8_t *p, *end;
};

static uint32_t get_u32(const uint8_t *p)
{
    return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}

static uint64_t get_u64(const uint8_t *p)
{
    return (uint64_t)get_u32(p) | (uint64_t)get_u32(p + 4) << 32;
}

static size_t left(const struct reader *r)
{
    return (size_t)(r->end - r->p);
}

/* Callers check left() first. */
static uint32_t take_u32(struct reader *r)
{
    uint32_t v = get_u32(r->p);
    r->p += 4;
    return v;
}

static uint64_t take_u64(struct reader *r)
{
    uint64_t v = get_u64(r->p);
    r->p += 8;
    return v;
}

static double take_f64(struct reader *r)
{
    uint64_t bits = take_u64(r);
    double v;
    memcpy(&v, &bits, 8);
    return v;
}

static float take_f32(struct reader *r)
{
    uint32_t bits = take_u32(r);
    float v;
    memcpy(&v, &bits, 4);
    return v;
}

/* Reads a string field of `len_bytes` (1 or 2) length bytes into dst[cap]: at most cap - 1
 * bytes, no NUL inside. */
static int take_str(struct reader *r, size_t len_bytes, char *dst, size_t cap, const char *what,
                    char *err, size_t errlen)
{
    if (left(r) < len_bytes) {
        canary_errf(err, errlen, "inconsistent sizes: %s's length runs past the file", what);
        return CANARY_EINVAL;
    }
    size_t n = r->p[0];
    if (len_bytes == 2)
        n |= (size_t)r->p[1] << 8;
    r->p += len_bytes;
    if (n > cap - 1) {
        canary_errf(err, errlen, "%s is %zu bytes, the limit is %zu", what, n, cap - 1);
        return CANARY_EINVAL;
    }
    if (left(r) < n) {
        canary_errf(err, errlen, "inconsistent sizes: %s (%zu bytes) runs past the file", what, n);
        return CANARY_EINVAL;
    }
    if (memchr(r->p, '\0', n) != NULL) {
        canary_errf(err, errlen, "%s holds a NUL byte", what);
        return CANARY_EINVAL;
    }
    memcpy(dst, r->p, n);
    memset(dst + n, 0, cap - n);
    r->p += n;
    return CANARY_OK;
}

/* The checks before any field is believed: magic, version, size, checksum. */
static int check_envelope(const uint8_t *b, size_t len, char *err, size_t errlen)
{
    size_t magic_len = len < 8 ? len : 8;
    if (memcmp(b, MODEL_MAGIC, magic_len) != 0) {
        canary_errf(err, errlen, "not a canary model file (it does not start with %s)",
                    MODEL_MAGIC);
        return CANARY_EINVAL;
    }
    if (len < 12) {
        canary_errf(err, errlen, "truncated: %zu of at least %u bytes", len, MODEL_HEADER_SIZE + 4);
        return CANARY_EINVAL;
    }
    uint32_t version = get_u32(b + 8);
    if (version > MODEL_VERSION) {
        canary_errf(err, errlen, "format version %" PRIu32 " is newer than this canary (%u)",
                    version, MODEL_VERSION);
        return CANARY_EINVAL;
    }
    if (version == 0) {
        canary_errf(err, errlen, "format version 0 is not valid (corrupt header)");
        return CANARY_EINVAL;
    }
    if (len < MODEL_HEADER_SIZE + 4) {
        canary_errf(err, errlen, "truncated: %zu of at least %u bytes", len, MODEL_HEADER_SIZE + 4);
        return CANARY_EINVAL;
    }
    uint64_t size = get_u64(b + 12);
    uint32_t stored = get_u32(b + len - 4);
    if (size != len) {
        /* Is the size field the only thing wrong? The CRC with the real size in it says. */
        uint8_t real[8];
        for (int i = 0; i < 8; i++)
            real[i] = (uint8_t)((uint64_t)len >> (8 * i));
        uint32_t crc = crc_more(crc_more(crc_more(0, b, 12), real, 8), b + 20, len - 24);
        if (crc == stored)
            canary_errf(err, errlen,
                        "inconsistent sizes: the header says %" PRIu64 " bytes, the model holds "
                        "%zu (its size field is corrupt)",
                        size, len);
        else if (size > len)
            canary_errf(err, errlen, "truncated: %zu of %" PRIu64 " bytes", len, size);
        else
            canary_errf(err, errlen,
                        "%zu bytes where the header says %" PRIu64 " (trailing data or a "
                        "corrupt header)",
                        len, size);
        return CANARY_EINVAL;
    }
    uint32_t computed = crc_more(0, b, len - 4);
    if (stored != computed) {
        canary_errf(err, errlen,
                    "checksum mismatch (stored %08" PRIx32 ", computed %08" PRIx32
                    "): the file is corrupt",
                    stored, computed);
        return CANARY_EINVAL;
    }
    return CANARY_OK;
}

#define FAIL(...)                                                                                  \
    do {                                                                                           \
        canary_errf(err, errlen, __VA_ARGS__);                                                     \
        rc = CANARY_EINVAL;                                                                        \
        goto fail;                                                                                 \
    } while (0)

int iforest_load_buffer(struct iforest **out, const void *buf, size_t len, char *err, size_t errlen)
{
    *out = NULL;
    if (buf == NULL && len > 0) {
        canary_errf(err, errlen, "no model buffer");
        return CANARY_EINVAL;
    }
    const uint8_t *b = buf != NULL ? buf : (const uint8_t *)"";
    int rc = check_envelope(b, len, err, errlen);
    if (rc != CANARY_OK)
        return rc;

    struct iforest *f = NULL;
    struct reader r = {b + 20, b + len - 4}; /* past magic, version, size; before the CRC */
    uint32_t n_cols = take_u32(&r), n_trees = take_u32(&r);
    uint32_t psi = take_u32(&r), depth = take_u32(&r), threads = take_u32(&r);
    uint64_t seed = take_u64(&r);
    double contamination = take_f64(&r), threshold = take_f64(&r);
    uint64_t total_nodes = take_u64(&r);
    if (n_cols < 1 || n_cols > IFOREST_MAX_FEATURES)
        FAIL("%" PRIu32 " features, the limit is 1 to %d", n_cols, IFOREST_MAX_FEATURES);
    if (n_trees < 1 || n_trees > IFOREST_MAX_TREES)
        FAIL("%" PRIu32 " trees, the limit is 1 to %d", n_trees, IFOREST_MAX_TREES);
    if (psi < 2 || psi > IFOREST_MAX_SUBSAMPLE)
        FAIL("subsample %" PRIu32 ", the limit is 2 to %d", psi, IFOREST_MAX_SUBSAMPLE);
    if (depth < 1 || depth > IFOREST_MAX_DEPTH)
        FAIL("height limit %" PRIu32 ", the limit is 1 to %d", depth, IFOREST_MAX_DEPTH);
    if (!(contamination >= 0.0 && contamination <= 0.5))
        FAIL("contamination %g is outside [0, 0.5]", contamination);
    if (isnan(threshold))
        FAIL("the threshold is NaN");
    /* Each tree has at most 2 psi - 1 nodes, and each node takes 8 bytes of what is left. */
    uint64_t max_nodes = (uint64_t)n_trees * (2ull * psi - 1);
    if (total_nodes < n_trees || total_nodes > max_nodes)
        FAIL("inconsistent sizes: %" PRIu64 " nodes in %" PRIu32 " trees of subsample %" PRIu32,
             total_nodes, n_trees, psi);
    if (total_nodes * MODEL_NODE_SIZE + (uint64_t)n_trees * 4 + n_cols > len)
        FAIL("inconsistent sizes: %" PRIu64 " nodes in %" PRIu32 " trees cannot fit in %zu "
             "bytes",
             total_nodes, n_trees, len);

    f = iforest__alloc(n_cols, n_trees);
    if (f == NULL)
        goto nomem;
    f->params = (struct iforest_params){.n_trees = n_trees,
                                        .subsample = psi,
                                        .max_depth = depth,
                                        .seed = seed,
                                        .threads = threads,
                                        .contamination = contamination};
    f->c_psi = iforest_c(psi);
    f->threshold = threshold;
    struct iforest_meta *m = &f->meta;
    m->train_rows = take_u64(&r);
    m->data_from_ms = (int64_t)take_u64(&r);
    m->data_to_ms = (int64_t)take_u64(&r);
    m->created_ms = (int64_t)take_u64(&r);
    m->window = take_u32(&r);
    m->eval_roc_auc = take_f64(&r);
    m->eval_pr_auc = take_f64(&r);
    m->eval_rows = take_u64(&r);
    if ((rc = take_str(&r, 2, m->source, sizeof m->source, "meta source", err, errlen)) ||
        (rc = take_str(&r, 2, m->features_kind, sizeof m->features_kind, "meta features_kind", err,
                       errlen)) ||
        (rc = take_str(&r, 2, m->eval_source, sizeof m->eval_source, "meta eval_source", err,
                       errlen)))
        goto fail;
    for (uint32_t c = 0; c < n_cols; c++) {
        char what[48];
        snprintf(what, sizeof what, "feature name %" PRIu32, c);
        if ((rc = take_str(&r, 1, f->names[c], IFOREST_NAME_MAX, what, err, errlen)))
            goto fail;
        if (f->names[c][0] == '\0')
            FAIL("feature name %" PRIu32 " is empty", c);
    }

    /* Node counts first (each checked against what is left), then the nodes. */
    f->nodes = malloc(total_nodes * sizeof *f->nodes);
    if (f->nodes == NULL)
        goto nomem;
    const double max_path = depth + iforest_c(psi) + 1e-3;
    uint64_t at = 0;
    for (uint32_t t = 0; t < n_trees; t++) {
        if (left(&r) < 4)
            FAIL("inconsistent sizes: the data ends before tree %" PRIu32 " of %" PRIu32, t,
                 n_trees);
        uint32_t n = take_u32(&r);
        if (n < 1 || n > 2 * psi - 1)
            FAIL("inconsistent sizes: tree %" PRIu32 " has %" PRIu32 " nodes, a tree of "
                 "subsample %" PRIu32 " has 1 to %" PRIu32,
                 t, n, psi, 2 * psi - 1);
        if (n > total_nodes - at)
            FAIL("inconsistent sizes: tree %" PRIu32 " goes past the %" PRIu64 " nodes the "
                 "header counts",
                 t, total_nodes);
        if ((uint64_t)n * MODEL_NODE_SIZE > left(&r))
            FAIL("inconsistent sizes: tree %" PRIu32 "'s %" PRIu32 " nodes need %" PRIu64
                 " bytes, %zu are left",
                 t, n, (uint64_t)n * MODEL_NODE_SIZE, left(&r));
        f->tree_start[t] = (uint32_t)at;
        for (uint32_t k = 0; k < n; k++) {
            f->nodes[at + k].feature = take_u32(&r);
            f->nodes[at + k].value = take_f32(&r);
        }
        char why[128];
        if (!iforest__tree_valid(f->nodes + at, n, n_cols, depth, max_path, why, sizeof why))
            FAIL("tree %" PRIu32 " is malformed: %s", t, why);
        at += n;
    }
    f->tree_start[n_trees] = (uint32_t)at;
    if (at != total_nodes)
        FAIL("inconsistent sizes: the trees hold %" PRIu64 " nodes, the header says %" PRIu64, at,
             total_nodes);
    if (left(&r) != 0)
        FAIL("inconsistent sizes: %zu bytes after the last tree", left(&r));
    if (iforest__compile(f) != CANARY_OK)
        goto nomem;
    *out = f;
    return CANARY_OK;

nomem:
    canary_errf(err, errlen, "out of memory loading a model of %zu bytes", len);
    rc = CANARY_ENOMEM;
fail:
    iforest_free(f);
    return rc;
}

int iforest_load(struct iforest **out, const char *path, char *err, size_t errlen)
{
    *out = NULL;
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) {
        canary_errf(err, errlen, "%s: %s", path, strerror(errno));
        return CANARY_EIO;
    }
    struct stat st;
    if (fstat(fd, &st) != 0) {
        canary_errf(err, errlen, "%s: %s", path, strerror(errno));
        close(fd);
        return CANARY_EIO;
    }
    if (!S_ISREG(st.st_mode)) {
        canary_errf(err, errlen, "%s: not a regular file", path);
        close(fd);
        return CANARY_EIO;
    }
    /* Read to the end, whatever fstat said, in case the file changes under us. */
    size_t cap = st.st_size > 0 ? (size_t)st.st_size + 1 : 4096, len = 0;
    uint8_t *buf = malloc(cap);
    if (buf == NULL) {
        close(fd);
        canary_errf(err, errlen, "%s: out of memory for %zu bytes", path, cap);
        return CANARY_ENOMEM;
    }
    for (;;) {
        if (len == cap) {
            uint8_t *more = cap <= SIZE_MAX / 2 ? realloc(buf, cap * 2) : NULL;
            if (more == NULL) {
                free(buf);
                close(fd);
                canary_errf(err, errlen, "%s: out of memory for %zu bytes", path, cap * 2);
                return CANARY_ENOMEM;
            }
            buf = more;
            cap *= 2;
        }
        ssize_t n = read(fd, buf + len, cap - len);
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0) {
            canary_errf(err, errlen, "%s: %s", path, strerror(errno));
            free(buf);
            close(fd);
            return CANARY_EIO;
        }
        if (n == 0)
            break;
        len += (size_t)n;
    }
    close(fd);
    char why[256];
    int rc = iforest_load_buffer(out, buf, len, why, sizeof why);
    free(buf);
    if (rc != CANARY_OK)
        canary_errf(err, errlen, "%s: %s", path, why);
    return rc;
}
