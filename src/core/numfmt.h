/* numfmt.h — numbers as text, fast, for the hot paths that write JSON (the live stream).
 *
 * Promises: each function writes exactly what the printf conversion it names would write
 * (tests/unit/test_numfmt.c compares them over millions of values), NUL-terminated, and
 * returns the length. The common cases (integers; sensor values with a few decimals; scores)
 * take integer arithmetic instead of printf's exact decimal conversion; anything else is
 * handed to snprintf. `out` must hold NUMFMT_MAX bytes. */
#ifndef CANARY_CORE_NUMFMT_H
#define CANARY_CORE_NUMFMT_H

#include <stddef.h>
#include <stdint.h>

#define NUMFMT_MAX 40

/* "%" PRIu64 and "%" PRId64 */
size_t numfmt_u64(char *out, uint64_t v);
size_t numfmt_i64(char *out, int64_t v);

/* "%.15g" of a finite value (a value that is not finite is written as printf would). */
size_t numfmt_g15(char *out, double v);

/* "%.4g" */
size_t numfmt_g4(char *out, double v);

#endif
