/* test_core.c — unit tests of the small core modules: strict UTF-8 validation (utf8.c), the
 * anti-replay seq window (seq_window.c), the string map (strmap.c), the arena (arena.c), the
 * slotted event counter (time_ring.c), and the metric catalogue with the rules for metric
 * names and device ids (metric.c).
 *
 * Inputs sit in heap buffers of exactly their length, so the sanitizer build catches any read
 * past the end (the UTF-8 validator reads eight bytes at a time). */
#include "core/arena.h"
#include "core/error.h"
#include "core/metric.h"
#include "core/seq_window.h"
#include "core/strmap.h"
#include "core/time_ring.h"
#include "core/utf8.h"

#include <math.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

/* Copies len bytes into a heap buffer of exactly that size. */
static char *exact(const char *s, size_t len)
{
    char *p = malloc(len > 0 ? len : 1);
    assert_non_null(p);
    if (len > 0)
        memcpy(p, s, len);
    return p;
}

/* ---- utf8 ---- */

struct utf8_case {
    const char *bytes;
    size_t len;
    bool valid;
    size_t bad; /* offset of the first byte of the invalid sequence */
};

#define OK(s)                                                                                      \
    {                                                                                              \
        s, sizeof s - 1, true, 0                                                                   \
    }
#define BAD(s, at)                                                                                 \
    {                                                                                              \
        s, sizeof s - 1, false, at                                                                 \
    }

static void test_utf8_table(void **state)
{
    (void)state;
    const struct utf8_case cases[] = {
        OK(""),
        OK("a"),
        OK("\x7f"),
        OK("a\0b"),             /* NUL is valid UTF-8; the body checks refuse it separately */
        OK("\xc2\x80"),         /* U+0080 */
        OK("\xdf\xbf"),         /* U+07FF */
        OK("\xe0\xa0\x80"),     /* U+0800 */
        OK("\xed\x9f\xbf"),     /* U+D7FF, below the surrogates */
        OK("\xee\x80\x80"),     /* U+E000, above them */
        OK("\xef\xbf\xbf"),     /* U+FFFF */
        OK("\xf0\x90\x80\x80"), /* U+10000 */
        OK("\xf4\x8f\xbf\xbf"), /* U+10FFFF, the last code point */
        OK("K\xc3\xbc\x63he \xe2\x82\xac \xf0\x9f\x94\xa5"),
        BAD("\xf4\x90\x80\x80", 0), /* U+110000 */
        BAD("\xf5\x80\x80\x80", 0),
        BAD("\xf7\xbf\xbf\xbf", 0),
        BAD("\xf8\x88\x80\x80\x80", 0), /* 5-byte form */
        BAD("\xfc\x84\x80\x80\x80\x80", 0),
        BAD("\xfe", 0),
        BAD("\xff", 0),
        BAD("\xed\xa0\x80", 0),             /* U+D800 */
        BAD("\xed\xbf\xbf", 0),             /* U+DFFF */
        BAD("\xed\xa0\x80\xed\xb0\x80", 0), /* a surrogate pair, CESU-8 style */
        BAD("\xc0\x80", 0),                 /* overlong NUL */
        BAD("\xc0\xaf", 0),
        BAD("\xc1\xbf", 0),
        BAD("\xe0\x80\x80", 0),
        BAD("\xe0\x9f\xbf", 0),
        BAD("\xf0\x80\x80\x80", 0),
        BAD("\xf0\x8f\xbf\xbf", 0),
        BAD("\xc2", 0), /* truncated */
        BAD("\xe0\xa0", 0),
        BAD("\xf0\x90\x80", 0),
        BAD("ab\xe2\x82", 2),
        BAD("\x80", 0), /* continuation bytes without a lead */
        BAD("a\xbf", 1),
        BAD("\xc2\x41", 0), /* bad continuations */
        BAD("\xc2\xc2\x80", 0),
        BAD("\xe2\x28\xa1", 0),
        BAD("\xe2\x82\x28", 0),
        BAD("\xf0\x90\x28\x80", 0),
        BAD("\xf0\x90\x80\x28", 0),
        BAD("\xf0\x90\x80\xc0", 0),
        BAD("caf\xc3\xa9 \xc3", 6),
        BAD("0123456789\xe2\x82\xac\xe2\x82", 13),
    };
    for (size_t k = 0; k < sizeof cases / sizeof cases[0]; k++) {
        char *p = exact(cases[k].bytes, cases[k].len);
        size_t bad = 9999;
        bool valid = utf8_valid(p, cases[k].len, &bad);
        if (valid != cases[k].valid)
            fail_msg("case %zu: valid %d, want %d", k, valid, cases[k].valid);
        if (!valid && bad != cases[k].bad)
            fail_msg("case %zu: bad offset %zu, want %zu", k, bad, cases[k].bad);
        if (valid)
            assert_int_equal(bad, 9999); /* untouched */
        /* bad_offset may be NULL. */
        assert_int_equal(utf8_valid(p, cases[k].len, NULL), cases[k].valid);
        free(p);
    }
}

static void test_utf8_ascii_fast_path(void **state)
{
    (void)state;
    /* An invalid byte at every offset 0..17 of ASCII strings of several lengths: the
     * eight-byte steps must neither skip it nor report the wrong offset. */
    const size_t lengths[] = {1, 7, 8, 9, 15, 16, 17, 18, 24, 64, 100};
    const unsigned char bad_bytes[] = {0x80, 0xbf, 0xc0, 0xff, 0xc3 /* truncated lead */};
    char buf[128];
    for (size_t l = 0; l < sizeof lengths / sizeof lengths[0]; l++) {
        size_t len = lengths[l];
        for (size_t at = 0; at < 18 && at < len; at++) {
            for (size_t b = 0; b < sizeof bad_bytes; b++) {
                for (size_t i = 0; i < len; i++)
                    buf[i] = (char)('a' + i % 26);
                buf[at] = (char)bad_bytes[b];
                if (bad_bytes[b] == 0xc3 && at + 1 < len)
                    buf[at + 1] = 'x'; /* lead byte followed by ASCII: bad continuation */
                char *p = exact(buf, len);
                size_t off = 9999;
                if (utf8_valid(p, len, &off) || off != at)
                    fail_msg("len %zu, byte 0x%02x at %zu: reported %zu", len, bad_bytes[b], at,
                             off);
                free(p);
            }
        }
        /* All ASCII, and a valid multi-byte character at each offset, pass. */
        for (size_t i = 0; i < len; i++)
            buf[i] = (char)(' ' + i % 95);
        char *p = exact(buf, len);
        assert_true(utf8_valid(p, len, NULL));
        free(p);
        for (size_t at = 0; at + 2 <= len && at < 18; at++) {
            for (size_t i = 0; i < len; i++)
                buf[i] = 'z';
            buf[at] = '\xc3';
            buf[at + 1] = '\xa9';
            p = exact(buf, len);
            if (!utf8_valid(p, len, NULL))
                fail_msg("len %zu: valid U+00E9 at %zu refused", len, at);
            free(p);
        }
    }
    /* The first invalid sequence is reported, not a later one. */
    char *p = exact("abcdefghijklmnop\xff"
                    "qrstuvw\x80",
                    25);
    size_t off = 0;
    assert_false(utf8_valid(p, 25, &off));
    assert_int_equal(off, 16);
    free(p);
}

/* ---- seq_window ---- */

static void test_seq_window_fresh_and_mark(void **state)
{
    (void)state;
    struct seq_window w = {0};
    /* Before anything is marked, every seq is fresh. */
    assert_true(seq_window_fresh(&w, 0, 64));
    assert_true(seq_window_fresh(&w, UINT64_MAX, 0));
    seq_window_mark(&w, 10);
    assert_true(w.started);
    assert_int_equal(w.high, 10);
    assert_false(seq_window_fresh(&w, 10, 64));
    assert_false(seq_window_fresh(&w, 10, 0));
    assert_true(seq_window_fresh(&w, 11, 0));
    assert_true(seq_window_fresh(&w, 1000000, 64));
    assert_true(seq_window_fresh(&w, 9, 64));
    assert_true(seq_window_fresh(&w, 0, 64));
    /* fresh does not mark. */
    assert_true(seq_window_fresh(&w, 9, 64));

    /* Out of order inside the window: accepted once. */
    seq_window_mark(&w, 9);
    assert_false(seq_window_fresh(&w, 9, 64));
    assert_int_equal(w.high, 10);
    assert_true(seq_window_fresh(&w, 8, 64));
    /* Marking a seq again changes nothing. */
    seq_window_mark(&w, 9);
    seq_window_mark(&w, 10);
    assert_int_equal(w.high, 10);
    assert_false(seq_window_fresh(&w, 9, 64));
    assert_true(seq_window_fresh(&w, 8, 64));

    /* Moving up keeps what was seen below. */
    seq_window_mark(&w, 12);
    assert_false(seq_window_fresh(&w, 12, 64));
    assert_true(seq_window_fresh(&w, 11, 64));
    assert_false(seq_window_fresh(&w, 10, 64));
    assert_false(seq_window_fresh(&w, 9, 64));
    assert_true(seq_window_fresh(&w, 8, 64));

    /* seq 0 is a seq like any other. */
    struct seq_window z = {0};
    seq_window_mark(&z, 0);
    assert_false(seq_window_fresh(&z, 0, 64));
    assert_true(seq_window_fresh(&z, 1, 64));
}

static void test_seq_window_zero(void **state)
{
    (void)state;
    struct seq_window w = {0};
    seq_window_mark(&w, 5);
    /* With window 0, every seq must be higher than the last. */
    assert_false(seq_window_fresh(&w, 5, 0));
    assert_false(seq_window_fresh(&w, 4, 0));
    assert_false(seq_window_fresh(&w, 0, 0));
    assert_true(seq_window_fresh(&w, 6, 0));
    seq_window_mark(&w, 7);
    assert_false(seq_window_fresh(&w, 6, 0)); /* skipped, and now too old */
    assert_true(seq_window_fresh(&w, 8, 0));
}

static void test_seq_window_64(void **state)
{
    (void)state;
    struct seq_window w = {0};
    seq_window_mark(&w, 1000);
    for (uint64_t back = 1; back < 64; back++)
        assert_true(seq_window_fresh(&w, 1000 - back, 64));
    for (uint64_t back = 65; back < 200; back++)
        assert_false(seq_window_fresh(&w, 1000 - back, 64));
    /* Fill the window out of order, every seq once. */
    for (int back = 63; back >= 1; back -= 2)
        seq_window_mark(&w, 1000 - (uint64_t)back);
    for (uint64_t back = 1; back < 64; back++)
        assert_int_equal(seq_window_fresh(&w, 1000 - back, 64), back % 2 == 0);
    /* Windows wider than SEQ_WINDOW_MAX act as SEQ_WINDOW_MAX. */
    assert_false(seq_window_fresh(&w, 1000 - 100, 1000));
    assert_true(seq_window_fresh(&w, 1000 - 62, 1000));
}

static void test_seq_window_jumps(void **state)
{
    (void)state;
    /* Shifts of 63, 64 and more. */
    struct seq_window w = {0};
    seq_window_mark(&w, 0);
    seq_window_mark(&w, 63);
    assert_false(seq_window_fresh(&w, 0, 64)); /* seen, 63 below */
    for (uint64_t s = 1; s < 63; s++)
        assert_true(seq_window_fresh(&w, s, 64));

    struct seq_window x = {0};
    seq_window_mark(&x, 0);
    seq_window_mark(&x, 5);
    seq_window_mark(&x, 69); /* shift 64: everything older drops out */
    assert_false(seq_window_fresh(&x, 69, 64));
    assert_false(seq_window_fresh(&x, 5, 64)); /* 64 below: too old or seen */
    assert_false(seq_window_fresh(&x, 0, 64));
    for (uint64_t s = 6; s < 69; s++)
        assert_true(seq_window_fresh(&x, s, 64));

    struct seq_window y = {0};
    seq_window_mark(&y, 100);
    seq_window_mark(&y, 99);
    seq_window_mark(&y, 1000000); /* a big jump */
    assert_false(seq_window_fresh(&y, 1000000, 64));
    assert_true(seq_window_fresh(&y, 999999, 64));
    assert_true(seq_window_fresh(&y, 999999 - 62, 64));
    assert_false(seq_window_fresh(&y, 100, 64));
    assert_false(seq_window_fresh(&y, 99, 64));

    /* The largest jump there is, and the top of the range. */
    struct seq_window t = {0};
    seq_window_mark(&t, 1);
    seq_window_mark(&t, UINT64_MAX);
    assert_int_equal(t.high, UINT64_MAX);
    assert_false(seq_window_fresh(&t, UINT64_MAX, 64));
    assert_true(seq_window_fresh(&t, UINT64_MAX - 1, 64));
    assert_false(seq_window_fresh(&t, 1, 64));
    seq_window_mark(&t, UINT64_MAX - 1);
    assert_false(seq_window_fresh(&t, UINT64_MAX - 1, 64));

    /* A mark far below the window is ignored, and the seq stays refused. */
    struct seq_window u = {0};
    seq_window_mark(&u, 1000);
    seq_window_mark(&u, 10);
    assert_int_equal(u.high, 1000);
    assert_false(seq_window_fresh(&u, 10, 64));
    assert_true(seq_window_fresh(&u, 999, 64));
}

/* seq_window.h: "remember the highest seq and a bitmap of the `window` seqs below it ... one
 * inside the window is new once"; ingest.seq_window: "a seq up to this far below the
 * device's highest is accepted once". So with window w, high - w is still inside. */
static void test_seq_window_depth_matches_window(void **state)
{
    (void)state;
    const unsigned windows[] = {1, 2, 10, 63, 64};
    for (size_t k = 0; k < sizeof windows / sizeof windows[0]; k++) {
        unsigned win = windows[k];
        struct seq_window w = {0};
        seq_window_mark(&w, 1000);
        if (!seq_window_fresh(&w, 1000 - win, win))
            fail_msg("window %u: seq %u below the highest refused; it is inside the window", win,
                     win);
        assert_false(seq_window_fresh(&w, 1000 - win - 1, win));
        seq_window_mark(&w, 1000 - win);
        assert_false(seq_window_fresh(&w, 1000 - win, win));
    }
}

/* ---- strmap ---- */

static void test_strmap_basics(void **state)
{
    (void)state;
    /* FNV-1a 64 reference values. */
    assert_true(strmap_hash("") == 0xcbf29ce484222325ULL);
    assert_true(strmap_hash("a") == 0xaf63dc4c8601ec8cULL);
    assert_true(strmap_hash("foobar") == 0x85944171f73967e8ULL);

    struct strmap m;
    strmap_init(&m);
    assert_null(strmap_get(&m, "x"));
    assert_int_equal(m.count, 0);
    int a = 1, b = 2, c = 3;
    assert_int_equal(strmap_put(&m, "kitchen-1", &a), CANARY_OK);
    assert_int_equal(strmap_put(&m, "kitchen-2", &b), CANARY_OK);
    assert_int_equal(strmap_put(&m, "", &c), CANARY_OK);
    assert_ptr_equal(strmap_get(&m, "kitchen-1"), &a);
    assert_ptr_equal(strmap_get(&m, "kitchen-2"), &b);
    assert_ptr_equal(strmap_get(&m, ""), &c);
    assert_null(strmap_get(&m, "kitchen-3"));
    assert_null(strmap_get(&m, "kitchen-"));
    assert_null(strmap_get(&m, "Kitchen-1"));
    assert_int_equal(m.count, 3);
    /* Replacing keeps the count. */
    assert_int_equal(strmap_put(&m, "kitchen-1", &c), CANARY_OK);
    assert_ptr_equal(strmap_get(&m, "kitchen-1"), &c);
    assert_int_equal(m.count, 3);
    /* Keys are copied. */
    char key[16] = "volatile";
    assert_int_equal(strmap_put(&m, key, &a), CANARY_OK);
    strcpy(key, "changed");
    assert_ptr_equal(strmap_get(&m, "volatile"), &a);
    assert_null(strmap_get(&m, "changed"));
    strmap_free(&m);
    assert_int_equal(m.count, 0);
    assert_null(strmap_get(&m, "kitchen-1"));
    /* A freed map can be used again. */
    assert_int_equal(strmap_put(&m, "again", &b), CANARY_OK);
    assert_ptr_equal(strmap_get(&m, "again"), &b);
    strmap_free(&m);
}

struct visit {
    unsigned char *seen;
    size_t n, calls;
    bool bad;
};

static void on_entry(void *arg, const char *key, void *value)
{
    struct visit *v = arg;
    v->calls++;
    size_t i = (size_t)(uintptr_t)value - 1;
    char want[32];
    snprintf(want, sizeof want, "dev-%zu", i);
    if (i >= v->n || strcmp(key, want) != 0 || v->seen[i])
        v->bad = true;
    else
        v->seen[i] = 1;
}

static void test_strmap_growth(void **state)
{
    (void)state;
    enum { N = 100000 };
    struct strmap m;
    strmap_init(&m);
    char key[32];
    for (size_t i = 0; i < N; i++) {
        snprintf(key, sizeof key, "dev-%zu", i);
        assert_int_equal(strmap_put(&m, key, (void *)(uintptr_t)(i + 1)), CANARY_OK);
    }
    assert_int_equal(m.count, N);
    assert_true((m.cap & (m.cap - 1)) == 0);
    assert_true(m.count * 10 <= m.cap * 7);
    for (size_t i = 0; i < N; i++) {
        snprintf(key, sizeof key, "dev-%zu", i);
        if (strmap_get(&m, key) != (void *)(uintptr_t)(i + 1))
            fail_msg("%s lost after growth", key);
    }
    assert_null(strmap_get(&m, "dev-100000"));
    assert_null(strmap_get(&m, "dev-"));

    struct visit v = {calloc(N, 1), N, 0, false};
    assert_non_null(v.seen);
    strmap_each(&m, on_entry, &v);
    assert_false(v.bad);
    assert_int_equal(v.calls, N);
    for (size_t i = 0; i < N; i++)
        assert_int_equal(v.seen[i], 1);
    free(v.seen);

    /* Replacing every value changes no count. */
    for (size_t i = 0; i < N; i += 7) {
        snprintf(key, sizeof key, "dev-%zu", i);
        assert_int_equal(strmap_put(&m, key, (void *)(uintptr_t)(i + 1)), CANARY_OK);
    }
    assert_int_equal(m.count, N);
    strmap_free(&m);

    /* strmap_each over an empty map calls nothing. */
    struct visit none = {NULL, 0, 0, false};
    strmap_each(&m, on_entry, &none);
    assert_int_equal(none.calls, 0);
}

/* ---- arena ---- */

static void test_arena_alignment(void **state)
{
    (void)state;
    struct arena a;
    arena_init(&a, 256);
    assert_null(a.head);
    enum { N = 2000 };
    unsigned char *ptrs[N];
    size_t sizes[N];
    for (size_t i = 0; i < N; i++) {
        sizes[i] = i % 37 + (i % 101 == 0 ? 3000 : 0);
        ptrs[i] = arena_alloc(&a, sizes[i]);
        assert_non_null(ptrs[i]);
        if ((uintptr_t)ptrs[i] % 16 != 0)
            fail_msg("allocation %zu of %zu bytes at %p", i, sizes[i], (void *)ptrs[i]);
        memset(ptrs[i], (int)(i & 0xff), sizes[i]);
    }
    /* No allocation overlaps another. */
    for (size_t i = 0; i < N; i++) {
        for (size_t k = 0; k < sizes[i]; k++) {
            if (ptrs[i][k] != (unsigned char)(i & 0xff))
                fail_msg("allocation %zu overwritten at byte %zu", i, k);
        }
    }
    unsigned char *z = arena_calloc(&a, 1000);
    assert_non_null(z);
    assert_true((uintptr_t)z % 16 == 0);
    for (size_t k = 0; k < 1000; k++)
        assert_int_equal(z[k], 0);
    arena_free(&a);
    assert_null(a.head);
}

static void test_arena_large_and_reset(void **state)
{
    (void)state;
    struct arena a;
    arena_init(&a, 1024);
    char *small = arena_alloc(&a, 100);
    assert_non_null(small);
    memset(small, 's', 100);
    /* Larger than a block: its own block, the current one stays in use. */
    char *big = arena_alloc(&a, 1 << 20);
    assert_non_null(big);
    assert_true((uintptr_t)big % 16 == 0);
    memset(big, 'b', 1 << 20);
    char *after = arena_alloc(&a, 100);
    assert_non_null(after);
    memset(after, 'a', 100);
    for (size_t k = 0; k < 100; k++)
        assert_int_equal(small[k], 's');
    assert_int_equal(big[(1 << 20) - 1], 'b');
    /* A large first allocation. */
    struct arena b;
    arena_init(&b, 256);
    char *first = arena_alloc(&b, 5000);
    assert_non_null(first);
    memset(first, 1, 5000);
    char *next = arena_alloc(&b, 10);
    assert_non_null(next);
    memset(next, 2, 10);
    assert_int_equal(first[4999], 1);
    arena_free(&b);

    for (int round = 0; round < 3; round++) {
        arena_reset(&a);
        assert_non_null(a.head);
        for (size_t i = 0; i < 500; i++) {
            char *p = arena_alloc(&a, 64);
            assert_non_null(p);
            assert_true((uintptr_t)p % 16 == 0);
            memset(p, round, 64);
        }
        char *huge = arena_alloc(&a, 100000);
        assert_non_null(huge);
        memset(huge, round, 100000);
    }
    arena_free(&a);
    /* Reset of an empty arena, and reuse after free. */
    arena_reset(&a);
    arena_init(&a, 16);
    assert_int_equal(a.block_size, 256);
    assert_non_null(arena_alloc(&a, 1));
    arena_free(&a);
}

static void test_arena_strndup(void **state)
{
    (void)state;
    struct arena a;
    arena_init(&a, 256);
    char *s = arena_strndup(&a, "hello world", 5);
    assert_string_equal(s, "hello");
    assert_true((uintptr_t)s % 16 == 0);
    s = arena_strndup(&a, "", 0);
    assert_string_equal(s, "");
    /* Exactly len bytes are read: the source need not be NUL-terminated. */
    char *src = exact("abc", 3);
    s = arena_strndup(&a, src, 3);
    free(src);
    assert_string_equal(s, "abc");
    /* Embedded NULs are copied as they are. */
    s = arena_strndup(&a, "a\0b", 3);
    assert_memory_equal(s, "a\0b\0", 4);
    char *longer = malloc(5000);
    assert_non_null(longer);
    memset(longer, 'x', 5000);
    s = arena_strndup(&a, longer, 5000);
    free(longer);
    assert_int_equal(strlen(s), 5000);
    arena_free(&a);
}

/* Runs arena_alloc(n) in a child process (a heap overflow there must not take the test
 * program down with it). Returns true when the child saw NULL and exited cleanly. */
static bool huge_alloc_returns_null(size_t n, bool warm)
{
    fflush(NULL);
    pid_t pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        struct arena a;
        arena_init(&a, 1024);
        if (warm && arena_alloc(&a, 16) == NULL)
            _exit(3);
        void *p = arena_alloc(&a, n);
        _exit(p == NULL ? 0 : 1);
    }
    int status;
    assert_int_equal(waitpid(pid, &status, 0), pid);
    return WIFEXITED(status) && WEXITSTATUS(status) == 0;
}

/* arena.h: "Returns n bytes ..., or NULL when out of memory." A request so large that the
 * block header plus n overflows size_t must come back NULL, never as a short block. */
static void test_arena_huge_request_is_refused(void **state)
{
    (void)state;
    const size_t sizes[] = {SIZE_MAX, SIZE_MAX - 14, SIZE_MAX - 15, SIZE_MAX - 20, SIZE_MAX - 40};
    for (size_t k = 0; k < sizeof sizes / sizeof sizes[0]; k++) {
        for (int warm = 0; warm < 2; warm++) {
            if (!huge_alloc_returns_null(sizes[k], warm))
                fail_msg("arena_alloc(SIZE_MAX - %zu) on a%s arena did not return NULL (the "
                         "block size wrapped around)",
                         SIZE_MAX - sizes[k], warm ? " used" : " fresh");
        }
    }
}

/* ---- time_ring ---- */

static void test_time_ring_windows(void **state)
{
    (void)state;
    struct time_ring r;
    time_ring_init(&r, 1000);
    assert_int_equal(time_ring_sum(&r, 100000, 10000, 0), 0);
    time_ring_add(&r, 100500, 3);
    time_ring_add(&r, 100999, 2);
    time_ring_add(&r, 101000, 5);
    /* At 101.5 s: the current slot (101 s) holds 5, the one before 5. */
    assert_int_equal(time_ring_sum(&r, 101500, 1000, 0), 5);
    assert_int_equal(time_ring_sum(&r, 101500, 2000, 0), 10);
    assert_int_equal(time_ring_sum(&r, 101500, 1000, 1), 5);
    assert_int_equal(time_ring_sum(&r, 101500, 2000, 1), 5);
    assert_int_equal(time_ring_sum(&r, 101500, 10000, 1), 5);
    assert_int_equal(time_ring_sum(&r, 101500, 10000, 0), 10);

    /* One event per slot for 30 slots, n = the slot number. */
    struct time_ring s;
    time_ring_init(&s, 100);
    for (int64_t slot = 1; slot <= 30; slot++)
        time_ring_add(&s, slot * 100 + 50, (uint64_t)slot);
    /* Last 10 slots including the current one: 21..30. */
    assert_int_equal(time_ring_sum(&s, 3050, 1000, 0), 255);
    /* Last 10 full slots: 20..29. */
    assert_int_equal(time_ring_sum(&s, 3050, 1000, 1), 245);
    /* Later, with no new events: only what is still inside the window counts. */
    assert_int_equal(time_ring_sum(&s, 3550, 1000, 0), 26 + 27 + 28 + 29 + 30);
    assert_int_equal(time_ring_sum(&s, 5000, 1000, 0), 0);
    /* The widest window allowed, 63 slots. */
    assert_int_equal(time_ring_sum(&s, 3050, 6300, 0), 465);
}

static void test_time_ring_turnover(void **state)
{
    (void)state;
    struct time_ring r;
    time_ring_init(&r, 1000);
    time_ring_add(&r, 0, 7);
    time_ring_add(&r, 500, 1);
    assert_int_equal(time_ring_sum(&r, 999, 1000, 0), 8);
    /* 64 slots later the same slot is reused: its old count is dropped first. */
    time_ring_add(&r, 64000, 1);
    assert_int_equal(time_ring_sum(&r, 64000, 1000, 0), 1);
    assert_int_equal(time_ring_sum(&r, 64000, 63000, 0), 1);
    /* Far in the future, a slot is reset even after many turnovers. */
    time_ring_add(&r, 64000 * 1000 + 10, 2);
    assert_int_equal(time_ring_sum(&r, 64000 * 1000 + 20, 1000, 0), 2);
    assert_int_equal(time_ring_sum(&r, 64000 * 1000 + 20, 63000, 0), 2);
    /* Stale slots outside the window never count. */
    struct time_ring s;
    time_ring_init(&s, 1000);
    time_ring_add(&s, 5000, 9);
    assert_int_equal(time_ring_sum(&s, 200000, 10000, 0), 0);
    assert_int_equal(time_ring_sum(&s, 5500, 1000, 0), 9);
}

struct adder {
    struct time_ring *r;
    int64_t now;
};

static void *add_many(void *arg)
{
    struct adder *a = arg;
    for (int i = 0; i < 100000; i++)
        time_ring_add(a->r, a->now, 1);
    return NULL;
}

static void test_time_ring_threads(void **state)
{
    (void)state;
    struct time_ring r;
    time_ring_init(&r, 1000);
    time_ring_add(&r, 7000, 1); /* the slot is started before the threads race */
    struct adder a = {&r, 7500};
    pthread_t t[4];
    for (int i = 0; i < 4; i++)
        assert_int_equal(pthread_create(&t[i], NULL, add_many, &a), 0);
    for (int i = 0; i < 4; i++)
        assert_int_equal(pthread_join(t[i], NULL), 0);
    assert_int_equal(time_ring_sum(&r, 7999, 1000, 0), 400001);
}

/* ---- metric names, device ids, catalogue ---- */

static void test_metric_name_rules(void **state)
{
    (void)state;
    const struct {
        const char *s;
        size_t len;
        bool ok;
    } cases[] = {
        {"gas_ppm", 7, true},     {"a", 1, true},        {"a1", 2, true},
        {"co2_ppm", 7, true},     {"a_b_c_", 6, true},   {"vibration_mm_s", 14, true},
        {"", 0, false},           {"_gas", 4, false},    {"1gas", 4, false},
        {"Gas", 3, false},        {"gAs", 3, false},     {"gas-ppm", 7, false},
        {"gas.ppm", 7, false},    {"gas ppm", 7, false}, {"gas/ppm", 7, false},
        {"g\xc3\xa1s", 4, false}, {"a\0", 2, false},     {"gas\n", 4, false},
        {"gas+", 4, false},       {"gas#", 4, false},    {"\xff", 1, false},
    };
    for (size_t k = 0; k < sizeof cases / sizeof cases[0]; k++) {
        char *p = exact(cases[k].s, cases[k].len);
        if (metric_name_valid(p, cases[k].len, 64) != cases[k].ok)
            fail_msg("metric name case %zu ('%s'): want %d", k, cases[k].s, cases[k].ok);
        free(p);
    }
    char name[80];
    memset(name, 'm', sizeof name);
    assert_true(metric_name_valid(name, 64, 64));
    assert_false(metric_name_valid(name, 65, 64));
    assert_true(metric_name_valid(name, 1, 1));
    assert_false(metric_name_valid(name, 2, 1));
    /* len counts, not the NUL: a longer string is judged by its first len bytes. */
    assert_true(metric_name_valid("gas_ppm!!", 7, 64));
}

static void test_device_id_rules(void **state)
{
    (void)state;
    const struct {
        const char *s;
        size_t len;
        bool ok;
    } cases[] = {
        {"kitchen-1", 9, true},
        {"A", 1, true},
        {"9lives", 6, true},
        {"a.b_c:d-e", 9, true},
        {"ESP32_a1:b2", 11, true},
        {"x-", 2, true},
        {"", 0, false},
        {"-a", 2, false},
        {".a", 2, false},
        {"_a", 2, false},
        {":a", 2, false},
        {"/", 1, false},
        {"a/b", 3, false},
        {"+", 1, false},
        {"a+b", 3, false},
        {"#", 1, false},
        {"a#", 2, false},
        {" ", 1, false},
        {"a b", 3, false},
        {"a\tb", 3, false},
        {"a\nb", 3, false},
        {"a\x7f", 2, false},
        {"k\xc3\xbc\x63he", 6, false},
        {"a\0b", 3, false},
        {"a\"b", 3, false},
        {"a\\b", 3, false},
        {"a?b", 3, false},
        {"a%2Fb", 5, false},
        {"a*", 2, false},
        {"$SYS", 4, false},
    };
    for (size_t k = 0; k < sizeof cases / sizeof cases[0]; k++) {
        char *p = exact(cases[k].s, cases[k].len);
        if (device_id_valid(p, cases[k].len, 64) != cases[k].ok)
            fail_msg("device id case %zu ('%s'): want %d", k, cases[k].s, cases[k].ok);
        free(p);
    }
    char id[200];
    memset(id, 'd', sizeof id);
    assert_true(device_id_valid(id, 128, 128));
    assert_false(device_id_valid(id, 129, 128));
    assert_true(device_id_valid(id, 64, 64));
    assert_false(device_id_valid(id, 65, 64));
}

static bool off(double v)
{
    return isnan(v);
}

static void test_catalogue(void **state)
{
    (void)state;
    size_t n = metric_catalogue_size();
    assert_true(n >= 8);
    assert_null(metric_catalogue_entry(n));
    assert_null(metric_catalogue_entry(n + 100));
    for (size_t i = 0; i < n; i++) {
        const struct metric_info *m = metric_catalogue_entry(i);
        assert_non_null(m);
        assert_non_null(m->name);
        assert_non_null(m->unit);
        assert_non_null(m->label);
        assert_true(m->label[0] != '\0');
        if (!metric_name_valid(m->name, strlen(m->name), 64))
            fail_msg("catalogue name '%s' is not a valid metric name", m->name);
        assert_ptr_equal(metric_lookup(m->name), m);
        assert_ptr_equal(metric_info_or_generic(m->name), m);
        for (size_t k = 0; k < i; k++)
            assert_string_not_equal(metric_catalogue_entry(k)->name, m->name);
        if (!(isfinite(m->min) && isfinite(m->max) && m->min < m->max))
            fail_msg("%s: range [%g, %g]", m->name, m->min, m->max);
        if (!(m->resolution > 0 && m->resolution <= m->max - m->min))
            fail_msg("%s: resolution %g", m->name, m->resolution);
        if (m->binary)
            assert_true(m->min == 0 && m->max == 1);
        const struct metric_limits *l = &m->limits;
        const double set[] = {l->warn_high, l->crit_high, l->warn_low, l->crit_low};
        for (size_t k = 0; k < 4; k++) {
            if (!off(set[k]) && !(set[k] >= m->min && set[k] <= m->max))
                fail_msg("%s: limit %zu = %g outside the plausible range", m->name, k, set[k]);
        }
        if (!off(l->warn_high) && !off(l->crit_high) && !(l->warn_high < l->crit_high))
            fail_msg("%s: warn_high %g >= crit_high %g", m->name, l->warn_high, l->crit_high);
        if (!off(l->warn_low) && !off(l->crit_low) && !(l->crit_low < l->warn_low))
            fail_msg("%s: crit_low %g >= warn_low %g", m->name, l->crit_low, l->warn_low);
        if (!off(l->warn_low) && !off(l->warn_high))
            assert_true(l->warn_low < l->warn_high);
        assert_true(l->hysteresis >= 0 && isfinite(l->hysteresis));
        assert_true(off(l->max_rate_per_min) || l->max_rate_per_min > 0);
    }
    /* The metrics ARCHITECTURE.md names are all known. */
    const char *named[] = {"gas_ppm", "temperature_c", "humidity_pct",   "flame",
                           "motion",  "light_lux",     "vibration_mm_s", "noise_db"};
    for (size_t k = 0; k < sizeof named / sizeof *named; k++) {
        if (metric_lookup(named[k]) == NULL)
            fail_msg("%s is not in the catalogue", named[k]);
    }
    const struct metric_info *gas = metric_lookup("gas_ppm");
    assert_string_equal(gas->unit, "ppm");
    assert_true(gas->min == 0);
    assert_true(metric_lookup("flame")->binary);
    assert_true(metric_lookup("motion")->binary);
    assert_false(gas->binary);

    /* Unknown metrics. */
    const char *unknown[] = {"", "nope", "GAS_PPM", "gas_ppm ", "gas_pp", "gas_ppmm"};
    for (size_t k = 0; k < sizeof unknown / sizeof *unknown; k++) {
        assert_null(metric_lookup(unknown[k]));
        const struct metric_info *g = metric_info_or_generic(unknown[k]);
        assert_non_null(g);
        assert_string_equal(g->name, "");
        assert_string_equal(g->unit, "");
        assert_true(isinf(g->min) && g->min < 0);
        assert_true(isinf(g->max) && g->max > 0);
        assert_false(g->binary);
        assert_true(off(g->limits.warn_high) && off(g->limits.crit_high));
        assert_true(off(g->limits.warn_low) && off(g->limits.crit_low));
        assert_true(off(g->limits.max_rate_per_min));
        assert_int_equal(g->limits.flatline_count, 0);
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_utf8_table),
        cmocka_unit_test(test_utf8_ascii_fast_path),
        cmocka_unit_test(test_seq_window_fresh_and_mark),
        cmocka_unit_test(test_seq_window_zero),
        cmocka_unit_test(test_seq_window_64),
        cmocka_unit_test(test_seq_window_jumps),
        cmocka_unit_test(test_seq_window_depth_matches_window),
        cmocka_unit_test(test_strmap_basics),
        cmocka_unit_test(test_strmap_growth),
        cmocka_unit_test(test_arena_alignment),
        cmocka_unit_test(test_arena_large_and_reset),
        cmocka_unit_test(test_arena_strndup),
        cmocka_unit_test(test_arena_huge_request_is_refused),
        cmocka_unit_test(test_time_ring_windows),
        cmocka_unit_test(test_time_ring_turnover),
        cmocka_unit_test(test_time_ring_threads),
        cmocka_unit_test(test_metric_name_rules),
        cmocka_unit_test(test_device_id_rules),
        cmocka_unit_test(test_catalogue),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
