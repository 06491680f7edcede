/* numfmt.c — numbers as text without printf on the common paths; see numfmt.h.
 *
 * Why it is right. A value v (a double) prints under "%.Pg" as its exact binary value rounded
 * to P significant digits. The fast paths find an integer r and a count of decimals k with
 * r / 10^k the decimal that printf would print, and write it with integer arithmetic:
 * - %.15g: if the double nearest to r / 10^k is v (r < 2^53, k <= 6, 1e-4 <= |v| < 1e9), v lies
 *   within half a unit in its last place of that decimal, far less than half a unit of its
 *   15th significant digit, and the decimal has at most 15 digits: printf prints it.
 * - %.4g: k = 3 - floor(log10 |v|) decimals; if v * 10^k is computed exactly (checked with an
 *   fma), rounding it to an integer half-to-even is what glibc's printf does with the exact
 *   value (it rounds exact ties to even in the default rounding mode).
 * Outside those cases (exponent notation, huge or tiny values, inexact products) snprintf
 * decides. */
#include "core/numfmt.h"

#include <math.h>
#include <stdbool.h>
#include <stdio.h>
#include <string.h>

static const double pow10_table[] = {1e0, 1e1, 1e2, 1e3, 1e4, 1e5, 1e6, 1e7, 1e8};

size_t numfmt_u64(char *out, uint64_t v)
{
    char tmp[24];
    size_t n = 0;
    do {
        tmp[n++] = (char)('0' + v % 10);
        v /= 10;
    } while (v != 0);
    for (size_t i = 0; i < n; i++)
        out[i] = tmp[n - 1 - i];
    out[n] = '\0';
    return n;
}

size_t numfmt_i64(char *out, int64_t v)
{
    if (v >= 0)
        return numfmt_u64(out, (uint64_t)v);
    out[0] = '-';
    return 1 + numfmt_u64(out + 1, (uint64_t)0 - (uint64_t)v);
}

/* Writes [-]r / 10^k with k decimals, then drops trailing zeros and a bare point (%g's
 * style). */
static size_t fixed(char *out, bool negative, uint64_t r, int k)
{
    char digits[24];
    size_t nd = numfmt_u64(digits, r);
    size_t n = 0;
    if (negative)
        out[n++] = '-';
    if ((int)nd <= k) { /* 0.00ddd */
        out[n++] = '0';
        out[n++] = '.';
        for (int i = 0; i < k - (int)nd; i++)
            out[n++] = '0';
        memcpy(out + n, digits, nd);
        n += nd;
    } else {
        size_t whole = nd - (size_t)k;
        memcpy(out + n, digits, whole);
        n += whole;
        if (k > 0) {
            out[n++] = '.';
            memcpy(out + n, digits + whole, (size_t)k);
            n += (size_t)k;
        }
    }
    if (k > 0) {
        while (out[n - 1] == '0')
            n--;
        if (out[n - 1] == '.')
            n--;
    }
    out[n] = '\0';
    return n;
}

static size_t fallback(char *out, const char *fmt, double v)
{
    int n = snprintf(out, NUMFMT_MAX, fmt, v);
    return n > 0 ? (size_t)n : 0;
}

size_t numfmt_g15(char *out, double v)
{
    double a = fabs(v);
    if (v == 0)
        return fixed(out, signbit(v) != 0, 0, 0);
    if (!(a >= 1e-4 && a < 1e9))
        return fallback(out, "%.15g", v);
    for (int k = 0; k <= 6; k++) {
        double r = nearbyint(a * pow10_table[k]);
        if (r / pow10_table[k] == a)
            return fixed(out, v < 0, (uint64_t)r, k);
    }
    return fallback(out, "%.15g", v);
}

size_t numfmt_g4(char *out, double v)
{
    double a = fabs(v);
    if (v == 0)
        return fixed(out, signbit(v) != 0, 0, 0);
    if (!(a >= 1e-4 && a < 1000))
        return fallback(out, "%.4g", v);
    int e = a >= 100     ? 2
            : a >= 10    ? 1
            : a >= 1     ? 0
            : a >= 0.1   ? -1
            : a >= 0.01  ? -2
            : a >= 0.001 ? -3
                         : -4;
    int k = 3 - e;
    double p = pow10_table[k];
    double t = a * p;
    if (fma(a, p, -t) != 0) /* the product is not exact: let printf round */
        return fallback(out, "%.4g", v);
    double r = nearbyint(t); /* half to even, as glibc rounds an exact tie */
    if (r >= 10000) {        /* rounded up into the next decade: one decimal fewer */
        if (k == 0)
            return fallback(out, "%.4g", v);
        r /= 10;
        k--;
    }
    return fixed(out, v < 0, (uint64_t)r, k);
}
