/* unit_support.h — helpers the cmocka unit tests share: a deterministic PRNG, big test
 * strings, a fixture for the body parsers, fuzz edits, and assertions on parsed batches.
 *
 * Every assertion reports the caller's file and line, not this file's, so a failure points
 * at the test that made it. The PRNG gives the same numbers on every machine and run. */
#ifndef CANARY_TESTS_UNIT_SUPPORT_H
#define CANARY_TESTS_UNIT_SUPPORT_H

#include "ingest/ingest.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* xorshift64*; seed it with any non-zero value. */
struct test_rng {
    uint64_t s;
};

uint64_t test_rng_next(struct test_rng *r);
/* A number in [0, n); n > 0. */
size_t test_rng_below(struct test_rng *r, size_t n);
/* A number in the open interval (0, 1). */
double test_rng_uniform(struct test_rng *r);
/* A standard normal number (Box-Muller). */
double test_rng_gauss(struct test_rng *r);

/* Returns a malloc'ed string: prefix, n copies of unit, suffix. Fails the test on OOM. */
char *test_repeat(const char *prefix, const char *unit, size_t n, const char *suffix);

/* True when s holds only printable ASCII other than '"' and '\\' (what error texts promise). */
bool test_printable(const char *s);

/* Random edit for fuzz loops: replaces, inserts or deletes one byte (inserting c), duplicates
 * a stretch, or (one time in truncate_one_in) cuts the body short. Returns the new length,
 * never more than cap. */
size_t test_fuzz_edit(struct test_rng *r, char *buf, size_t len, size_t cap, char c,
                      unsigned truncate_one_in);

/* What a body parser test holds: the batch, the fatal error, and the limits it parses with. */
struct parse_fixture {
    struct ingest_batch b;
    struct ingest_fatal f;
    struct ingest_limits lim;
};

/* cmocka setup and teardown. Limits: 100 readings, 8 metrics, names of 64 bytes, unknown
 * fields allowed (strict_fields false). */
int parse_fixture_setup(void **state);
int parse_fixture_teardown(void **state);

/* Empties the batch and the fatal error, and returns a malloc'ed copy of body[0..len) with
 * nothing after it, so that the sanitizer build catches a read past the end. */
char *parse_fixture_reset(struct parse_fixture *fx, const char *body, size_t len);

/* Checks what every body parser promises of any outcome rc of a parse with fx->lim at
 * recv_ms: a fatal error is 400 or 413 with a printable reason; otherwise the batch holds 1 to
 * max_batch readings, each either invalid with a printable field and reason, or pending,
 * well-formed, with a timestamp in [0, 2^53) ms (recv_ms when the body had none). Returns the
 * number of pending readings. */
#define assert_parse_outcome(fx, rc, recv_ms)                                                      \
    assert_parse_outcome_at((fx), (rc), (recv_ms), __FILE__, __LINE__)
size_t assert_parse_outcome_at(const struct parse_fixture *fx, int rc, int64_t recv_ms,
                               const char *file, int line);

/* Reading i of the batch is pending (parsed and not rejected). */
#define assert_reading_pending(b, i) assert_reading_pending_at((b), (i), __FILE__, __LINE__)
void assert_reading_pending_at(const struct ingest_batch *b, size_t i, const char *file, int line);

/* Reading i of the batch is invalid with exactly this field and reason. */
#define assert_reading_rejected(b, i, field, reason)                                               \
    assert_reading_rejected_at((b), (i), (field), (reason), __FILE__, __LINE__)
void assert_reading_rejected_at(const struct ingest_batch *b, size_t i, const char *field,
                                const char *reason, const char *file, int line);

/* Value k of a freshly parsed reading has this name and exactly this value (sign of zero
 * included), and no score or flags yet. */
#define assert_parsed_value(r, k, name, want)                                                      \
    assert_parsed_value_at((r), (k), (name), (want), __FILE__, __LINE__)
void assert_parsed_value_at(const struct reading *r, size_t k, const char *name, double want,
                            const char *file, int line);

/* What a parser promises of every reading it passes: a valid device id, 1..max_metrics
 * values with valid, distinct names and finite values. */
#define assert_reading_well_formed(r, lim)                                                         \
    assert_reading_well_formed_at((r), (lim), __FILE__, __LINE__)
void assert_reading_well_formed_at(const struct reading *r, const struct ingest_limits *lim,
                                   const char *file, int line);

#endif
