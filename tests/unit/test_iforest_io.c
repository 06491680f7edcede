/* test_iforest_io.c — unit tests of the model file (src/ml/iforest_io.c, format in
 * docs/MODEL_FORMAT.md): round trips, truncation at every length, every single-byte
 * corruption, bad magic and newer versions, corruptions that keep a valid checksum (so the
 * structural checks behind it are reached), fuzzed and random buffers, and file errors.
 *
 * Every buffer handed to iforest_load_buffer sits in a heap block of exactly its length, so
 * the sanitizer build turns any read past the end into a failure. Whatever the input, a load
 * either succeeds with a forest that scores in (0, 1] or fails with a printable message. */
#include "core/error.h"
#include "ml/iforest.h"
#include "unit_support.h"

#include <dirent.h>
#include <math.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <zlib.h>

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#define HEADER_SIZE 132 /* the fixed header; the CRC adds 4 */

/* A small model: 2 features, 3 trees of psi 8, its bytes, and rows to score. */
struct fixture {
    struct iforest *f;
    uint8_t *bytes;
    size_t len;
    double x[40 * 2];
};

static int setup(void **state)
{
    struct fixture *fx = calloc(1, sizeof *fx);
    if (fx == NULL)
        return -1;
    struct test_rng r = {2024};
    for (size_t k = 0; k < 80; k++)
        fx->x[k] = test_rng_gauss(&r);
    fx->x[3] = NAN;
    struct iforest_params p;
    iforest_params_default(&p);
    p.n_trees = 3;
    p.subsample = 8;
    p.threads = 1;
    p.contamination = 0.1;
    struct iforest_meta meta;
    memset(&meta, 0, sizeof meta);
    snprintf(meta.source, sizeof meta.source, "fixture");
    snprintf(meta.features_kind, sizeof meta.features_kind, "raw");
    meta.eval_roc_auc = NAN;
    meta.eval_pr_auc = NAN;
    const char *names[] = {"gas_ppm", "t"};
    char err[256];
    if (iforest_train(&fx->f, &p, fx->x, 40, 2, names, &meta, NULL, NULL, err, sizeof err) !=
        CANARY_OK)
        return -1;
    void *buf;
    if (iforest_save_buffer(fx->f, &buf, &fx->len, err, sizeof err) != CANARY_OK)
        return -1;
    fx->bytes = buf;
    *state = fx;
    return 0;
}

static int teardown(void **state)
{
    struct fixture *fx = *state;
    iforest_free(fx->f);
    free(fx->bytes);
    free(fx);
    return 0;
}

static void put_u32(uint8_t *p, uint32_t v)
{
    for (int i = 0; i < 4; i++)
        p[i] = (uint8_t)(v >> (8 * i));
}

static void put_u64(uint8_t *p, uint64_t v)
{
    for (int i = 0; i < 8; i++)
        p[i] = (uint8_t)(v >> (8 * i));
}

static uint32_t get_u32(const uint8_t *p)
{
    return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}

/* Makes an edited model self-consistent again: the size field and the CRC. */
static void reseal(uint8_t *b, size_t len)
{
    if (len < HEADER_SIZE + 4)
        return;
    put_u64(b + 12, len);
    put_u32(b + len - 4, (uint32_t)crc32(crc32(0L, Z_NULL, 0), b, (uInt)(len - 4)));
}

static uint8_t *copy_of(const uint8_t *src, size_t len)
{
    uint8_t *p = malloc(len > 0 ? len : 1);
    assert_non_null(p);
    if (len > 0)
        memcpy(p, src, len);
    return p;
}

/* Loads b[0 .. len) from an exact-size heap copy. On success checks that the forest scores
 * every fixture row in (0, 1] and saves again; on failure that the message is printable.
 * Returns the load's result; the message goes to err. */
static int try_load(const struct fixture *fx, const uint8_t *b, size_t len, char *err,
                    size_t errlen)
{
    uint8_t *copy = copy_of(b, len);
    struct iforest *f = (struct iforest *)&f;
    err[0] = '\0';
    int rc = iforest_load_buffer(&f, copy, len, err, errlen);
    free(copy);
    if (rc == CANARY_OK) {
        assert_non_null(f);
        size_t nc = iforest_n_features(f);
        assert_true(nc >= 1 && nc <= IFOREST_MAX_FEATURES);
        double *row = malloc(nc * sizeof *row);
        assert_non_null(row);
        for (size_t i = 0; i < 40; i++) {
            for (size_t c = 0; c < nc; c++)
                row[c] = fx->x[(2 * i + c) % 80];
            double s = iforest_score_row(f, row);
            assert_true(s > 0.0 && s <= 1.0);
        }
        free(row);
        void *again;
        size_t again_len;
        assert_int_equal(iforest_save_buffer(f, &again, &again_len, err, errlen), CANARY_OK);
        free(again);
        iforest_free(f);
    } else {
        assert_null(f);
        assert_int_equal(rc, CANARY_EINVAL);
        if (err[0] == '\0' || !test_printable(err))
            fail_msg("load failed (%d) with an empty or unprintable message '%s'", rc, err);
    }
    return rc;
}

/* Expects the load of b to fail with want in the message. */
static void expect_error(const struct fixture *fx, const uint8_t *b, size_t len, const char *want)
{
    char err[256];
    int rc = try_load(fx, b, len, err, sizeof err);
    if (rc == CANARY_OK || strstr(err, want) == NULL)
        fail_msg("rc %d, message '%s', want an error with '%s'", rc, err, want);
}

/* Where the first tree starts: past the header, the meta strings and the names. */
static size_t trees_offset(const uint8_t *b)
{
    size_t off = HEADER_SIZE;
    for (int k = 0; k < 3; k++)
        off += 2 + (size_t)(b[off] | b[off + 1] << 8);
    uint32_t n_cols = get_u32(b + 20);
    for (uint32_t c = 0; c < n_cols; c++)
        off += 1 + (size_t)b[off];
    return off;
}

static void test_round_trip(void **state)
{
    struct fixture *fx = *state;
    char err[256];
    struct iforest *g = NULL;
    assert_int_equal(iforest_load_buffer(&g, fx->bytes, fx->len, err, sizeof err), CANARY_OK);
    for (size_t i = 0; i < 40; i++)
        assert_true(iforest_score_row(g, fx->x + 2 * i) == iforest_score_row(fx->f, fx->x + 2 * i));
    assert_string_equal(iforest_feature_name(g, 0), "gas_ppm");
    assert_string_equal(iforest_meta_of(g)->source, "fixture");
    assert_true(iforest_threshold(g) == iforest_threshold(fx->f));
    void *again;
    size_t len;
    assert_int_equal(iforest_save_buffer(g, &again, &len, err, sizeof err), CANARY_OK);
    assert_int_equal(len, fx->len);
    assert_memory_equal(again, fx->bytes, len);
    assert_memory_equal(fx->bytes, "CANARYIF\x01\x00\x00\x00", 12);
    free(again);
    iforest_free(g);
}

static void test_every_truncation(void **state)
{
    struct fixture *fx = *state;
    char want[64];
    for (size_t len = 0; len < fx->len; len++) {
        if (len < HEADER_SIZE + 4)
            snprintf(want, sizeof want, "truncated: %zu of at least %d bytes", len,
                     HEADER_SIZE + 4);
        else
            snprintf(want, sizeof want, "truncated: %zu of %zu bytes", len, fx->len);
        expect_error(fx, fx->bytes, len, want);
    }
    expect_error(fx, NULL, 0, "truncated: 0 of at least 136 bytes");
}

static void test_every_byte_corruption(void **state)
{
    struct fixture *fx = *state;
    uint8_t *b = copy_of(fx->bytes, fx->len);
    const uint8_t flips[] = {0x01, 0x10, 0x80, 0xff};
    char err[256];
    for (size_t at = 0; at < fx->len; at++) {
        for (size_t k = 0; k < sizeof flips; k++) {
            b[at] ^= flips[k];
            int rc = try_load(fx, b, fx->len, err, sizeof err);
            if (rc == CANARY_OK)
                fail_msg("byte %zu ^ 0x%02x: loaded", at, flips[k]);
            const char *want = at < 8    ? "not a canary model file"
                               : at < 12 ? "format version"
                               : at < 20 ? "" /* the size: truncated, or trailing data */
                                         : "checksum mismatch";
            if (strstr(err, want) == NULL)
                fail_msg("byte %zu ^ 0x%02x: '%s', want '%s'", at, flips[k], err, want);
            b[at] ^= flips[k];
        }
    }
    free(b);
}

static void test_bad_magic(void **state)
{
    struct fixture *fx = *state;
    const uint8_t png[] = "\x89PNG\r\n\x1a\n and then some more bytes";
    expect_error(fx, png, sizeof png, "not a canary model file");
    expect_error(fx, (const uint8_t *)"XYZ", 3, "not a canary model file");
    expect_error(fx, (const uint8_t *)"CANA", 4, "truncated: 4 of at least 136 bytes");
    uint8_t *b = copy_of(fx->bytes, fx->len);
    memcpy(b, "canaryif", 8); /* case matters */
    expect_error(fx, b, fx->len, "not a canary model file");
    free(b);
}

static void test_versions(void **state)
{
    struct fixture *fx = *state;
    uint8_t *b = copy_of(fx->bytes, fx->len);
    put_u32(b + 8, 2);
    reseal(b, fx->len);
    expect_error(fx, b, fx->len, "format version 2 is newer than this canary (1)");
    put_u32(b + 8, 0xffffffffu);
    expect_error(fx, b, fx->len, "format version 4294967295 is newer than this canary (1)");
    put_u32(b + 8, 0);
    reseal(b, fx->len);
    expect_error(fx, b, fx->len, "format version 0 is not valid");
    free(b);
}

static void test_size_field(void **state)
{
    struct fixture *fx = *state;
    uint8_t *b = malloc(fx->len + 10);
    assert_non_null(b);
    memcpy(b, fx->bytes, fx->len);
    memset(b + fx->len, 0, 10);
    /* Bytes after a complete model. */
    expect_error(fx, b, fx->len + 10, "where the header says");
    /* A wrong size field over intact data: named as such, not as a truncation. */
    put_u64(b + 12, fx->len + 1000);
    expect_error(fx, b, fx->len, "the model holds");
    expect_error(fx, b, fx->len, "(its size field is corrupt)");
    free(b);
}

/* A copy of the fixture with one edit, resealed, must fail with want. */
struct edit {
    size_t at; /* offset; SIZE_MAX - k: k bytes from the first tree */
    int width; /* 1, 4 or 8 */
    uint64_t value;
    const char *want;
};

static void test_structural_errors(void **state)
{
    struct fixture *fx = *state;
    const size_t trees = trees_offset(fx->bytes);
    const uint32_t root_nodes = get_u32(fx->bytes + trees);
    const uint64_t nan_bits = 0x7ff8000000000000ull;
    const struct edit edits[] = {
        {20, 4, 0, "0 features, the limit is 1 to 1024"},
        {20, 4, 1025, "1025 features"},
        {20, 4, 3, ""}, /* a third name where the trees are */
        {24, 4, 0, "0 trees, the limit is 1 to 10000"},
        {24, 4, 10001, "10001 trees"},
        {24, 4, 4, "inconsistent sizes: the data ends before tree 3 of 4"},
        {28, 4, 1, "subsample 1, the limit is 2 to 65536"},
        {28, 4, 70000, "subsample 70000"},
        {32, 4, 0, "height limit 0, the limit is 1 to 32"},
        {32, 4, 33, "height limit 33"},
        {32, 4, 1, "below the height limit 1"},
        {48, 8, 0x3fe6666666666666ull /* 0.7 */, "contamination 0.7 is outside [0, 0.5]"},
        {48, 8, nan_bits, "contamination nan"},
        {56, 8, nan_bits, "the threshold is NaN"},
        {64, 8, 2, "inconsistent sizes: 2 nodes in 3 trees"},
        {64, 8, UINT64_MAX, "inconsistent sizes"},
        {64, 8, 45, "inconsistent sizes"},
        {64, 8, 3, "inconsistent sizes"},
        {HEADER_SIZE + 1, 1, 1, "meta source is 263 bytes, the limit is 255"},
        {trees - 2, 1, 64, "feature name 1 is 64 bytes, the limit is 63"},
        {trees - 2, 1, 0, "feature name 1 is empty"},
        {trees, 4, 0, "tree 0 has 0 nodes, a tree of subsample 8 has 1 to 15"},
        {trees, 4, 16, "tree 0 has 16 nodes"},
        {trees, 4, root_nodes + 2, "tree 0"},
        {trees + 4, 4, 7, "tree 0 is malformed: node 0: feature 7 of 2"},
        {trees + 8, 4, 0x7fc00000u,
         "tree 0 is malformed: node 0: threshold nan is not a finite number"},
        {trees + 8, 4, 0x7f800000u, "node 0: threshold inf is not a finite number"},
    };
    for (size_t k = 0; k < sizeof edits / sizeof *edits; k++) {
        const struct edit *e = &edits[k];
        uint8_t *b = copy_of(fx->bytes, fx->len);
        if (e->width == 1)
            b[e->at] = (uint8_t)e->value;
        else if (e->width == 4)
            put_u32(b + e->at, (uint32_t)e->value);
        else
            put_u64(b + e->at, e->value);
        reseal(b, fx->len);
        char err[256];
        int rc = try_load(fx, b, fx->len, err, sizeof err);
        if (rc == CANARY_OK || strstr(err, e->want) == NULL)
            fail_msg("edit %zu (offset %zu = %llu): rc %d '%s', want '%s'", k, e->at,
                     (unsigned long long)e->value, rc, err, e->want);
        free(b);
    }

    /* A root turned into a leaf, with the tree's other nodes after it. */
    uint8_t *b = copy_of(fx->bytes, fx->len);
    put_u32(b + trees + 4, 0xffffffffu);
    put_u32(b + trees + 8, 0x3f800000u); /* 1.0f */
    reseal(b, fx->len);
    expect_error(fx, b, fx->len, "tree 0 is malformed: the tree ends at node 1 of");

    /* A leaf with a negative path length, a name with a NUL. */
    memcpy(b, fx->bytes, fx->len);
    size_t leaf = trees + 4;
    while (get_u32(b + leaf) != 0xffffffffu)
        leaf += 8;
    put_u32(b + leaf + 4, 0xbf800000u); /* -1.0f */
    reseal(b, fx->len);
    expect_error(fx, b, fx->len, "path length -1 outside [0,");
    memcpy(b, fx->bytes, fx->len);
    size_t name0 = trees - (1 + 7) - (1 + 1); /* "gas_ppm", then "t" */
    assert_int_equal(b[name0], 7);
    b[name0 + 3] = '\0';
    reseal(b, fx->len);
    expect_error(fx, b, fx->len, "feature name 0 holds a NUL byte");
    free(b);

    /* Bytes between the last tree and the CRC. */
    b = malloc(fx->len + 8);
    assert_non_null(b);
    memcpy(b, fx->bytes, fx->len - 4);
    memset(b + fx->len - 4, 0, 12);
    reseal(b, fx->len + 8);
    expect_error(fx, b, fx->len + 8, "inconsistent sizes: 8 bytes after the last tree");
    free(b);
}

static void test_fuzz(void **state)
{
    struct fixture *fx = *state;
    struct test_rng r = {0x5eed};
    const size_t cap = fx->len * 2 + 64;
    char *b = malloc(cap);
    char err[256];
    assert_non_null(b);
    size_t loaded = 0, resealed = 0;
    for (int iter = 0; iter < 20000; iter++) {
        memcpy(b, fx->bytes, fx->len);
        size_t len = fx->len;
        size_t edits = 1 + test_rng_below(&r, 4);
        for (size_t k = 0; k < edits; k++) {
            if (test_rng_below(&r, 2) == 0 && len > 0)
                b[test_rng_below(&r, len)] = (char)test_rng_next(&r); /* any byte */
            else
                len = test_fuzz_edit(&r, b, len, cap, (char)test_rng_next(&r), 20);
        }
        /* Half the time make the envelope right again, so the parser behind it is reached. */
        if (iter % 2 == 0 && len >= HEADER_SIZE + 4) {
            memcpy(b, "CANARYIF\x01\x00\x00\x00", 12);
            reseal((uint8_t *)b, len);
            resealed++;
        }
        loaded += try_load(fx, (const uint8_t *)b, len, err, sizeof err) == CANARY_OK;
    }
    free(b);
    /* Some edits hit only the meta or a threshold and load; most do not. */
    assert_true(loaded > 0 && loaded < resealed);
}

static void test_garbage(void **state)
{
    struct fixture *fx = *state;
    struct test_rng r = {42};
    uint8_t *b = malloc(4096);
    char err[256];
    assert_non_null(b);
    for (int iter = 0; iter < 5000; iter++) {
        size_t len = test_rng_below(&r, 4096);
        for (size_t k = 0; k < len; k++)
            b[k] = (uint8_t)test_rng_next(&r);
        if (iter % 2 == 0 && len >= HEADER_SIZE + 4) {
            /* A valid envelope around random contents. */
            memcpy(b, "CANARYIF\x01\x00\x00\x00", 12);
            if (iter % 4 == 0) { /* and plausible counts, to get past them */
                put_u32(b + 20, 1 + (uint32_t)test_rng_below(&r, 4));
                put_u32(b + 24, 1 + (uint32_t)test_rng_below(&r, 4));
                put_u32(b + 28, 2 + (uint32_t)test_rng_below(&r, 30));
                put_u32(b + 32, 1 + (uint32_t)test_rng_below(&r, 6));
                memset(b + 48, 0, 16);
                put_u64(b + 64, 1 + test_rng_below(&r, 20));
                memset(b + HEADER_SIZE, 0, 6);
            }
            reseal(b, len);
        }
        assert_int_not_equal(try_load(fx, b, len, err, sizeof err), CANARY_OK);
    }
    free(b);
}

/* ---- files ---- */

static void test_file_errors(void **state)
{
    struct fixture *fx = *state;
    char dir[] = "/tmp/canary-iforest-io-XXXXXX";
    assert_non_null(mkdtemp(dir));
    char path[256], err[512];
    struct iforest *f = (struct iforest *)&f;

    snprintf(path, sizeof path, "%s/missing.cif", dir);
    assert_int_equal(iforest_load(&f, path, err, sizeof err), CANARY_EIO);
    assert_null(f);
    assert_non_null(strstr(err, path));
    assert_non_null(strstr(err, "No such file or directory"));

    assert_int_equal(iforest_load(&f, dir, err, sizeof err), CANARY_EIO);
    assert_non_null(strstr(err, "not a regular file"));

    snprintf(path, sizeof path, "%s/empty.cif", dir);
    FILE *fp = fopen(path, "w");
    assert_non_null(fp);
    fclose(fp);
    assert_int_equal(iforest_load(&f, path, err, sizeof err), CANARY_EINVAL);
    char want[300];
    snprintf(want, sizeof want, "%s: truncated: 0 of at least 136 bytes", path);
    assert_string_equal(err, want);
    unlink(path);

    if (geteuid() != 0) { /* root reads anything */
        snprintf(path, sizeof path, "%s/locked.cif", dir);
        assert_int_equal(iforest_save(fx->f, path, err, sizeof err), CANARY_OK);
        chmod(path, 0);
        assert_int_equal(iforest_load(&f, path, err, sizeof err), CANARY_EIO);
        assert_non_null(strstr(err, "Permission denied"));
        unlink(path);
    }

    /* Saving where no directory is. */
    snprintf(path, sizeof path, "%s/no/such/dir/model.cif", dir);
    assert_int_equal(iforest_save(fx->f, path, err, sizeof err), CANARY_EIO);
    assert_non_null(strstr(err, path));
    assert_non_null(strstr(err, "cannot create a temporary file"));
    rmdir(dir);
}

static void test_save_replaces_atomically(void **state)
{
    struct fixture *fx = *state;
    char dir[] = "/tmp/canary-iforest-io-XXXXXX";
    assert_non_null(mkdtemp(dir));
    char path[256], err[256];
    snprintf(path, sizeof path, "%s/model.cif", dir);
    FILE *fp = fopen(path, "w");
    assert_non_null(fp);
    fputs("an older model", fp);
    fclose(fp);

    assert_int_equal(iforest_save(fx->f, path, err, sizeof err), CANARY_OK);
    struct stat st;
    assert_int_equal(stat(path, &st), 0);
    assert_int_equal((size_t)st.st_size, fx->len);
    assert_int_equal(st.st_mode & 0777, 0644);
    struct iforest *g = NULL;
    assert_int_equal(iforest_load(&g, path, err, sizeof err), CANARY_OK);
    assert_true(iforest_score_row(g, fx->x) == iforest_score_row(fx->f, fx->x));
    iforest_free(g);

    /* Nothing but the model is left in the directory: no temporary file. */
    DIR *d = opendir(dir);
    assert_non_null(d);
    size_t entries = 0;
    for (struct dirent *e; (e = readdir(d)) != NULL;) {
        if (strcmp(e->d_name, ".") != 0 && strcmp(e->d_name, "..") != 0) {
            assert_string_equal(e->d_name, "model.cif");
            entries++;
        }
    }
    closedir(d);
    assert_int_equal(entries, 1);

    /* A relative path (the current directory is the one to fsync). */
    char cwd[512];
    assert_non_null(getcwd(cwd, sizeof cwd));
    assert_int_equal(chdir(dir), 0);
    assert_int_equal(iforest_save(fx->f, "relative.cif", err, sizeof err), CANARY_OK);
    assert_int_equal(unlink("relative.cif"), 0);
    assert_int_equal(chdir(cwd), 0);

    unlink(path);
    rmdir(dir);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_round_trip),
        cmocka_unit_test(test_every_truncation),
        cmocka_unit_test(test_every_byte_corruption),
        cmocka_unit_test(test_bad_magic),
        cmocka_unit_test(test_versions),
        cmocka_unit_test(test_size_field),
        cmocka_unit_test(test_structural_errors),
        cmocka_unit_test(test_fuzz),
        cmocka_unit_test(test_garbage),
        cmocka_unit_test(test_file_errors),
        cmocka_unit_test(test_save_replaces_atomically),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
