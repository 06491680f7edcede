/* clock.h — the two clocks canary uses.
 *
 * Wall time (Unix milliseconds) stamps readings, alerts and rows; it can jump when the
 * system clock is set. Monotonic time measures durations and deadlines and never jumps. */
#ifndef CANARY_CORE_CLOCK_H
#define CANARY_CORE_CLOCK_H

#include <stdint.h>

/* Unix time in milliseconds (CLOCK_REALTIME). */
int64_t clock_wall_ms(void);

/* Monotonic time in nanoseconds since an arbitrary origin (CLOCK_MONOTONIC). */
int64_t clock_mono_ns(void);

/* Monotonic time in milliseconds. */
int64_t clock_mono_ms(void);

/* Formats a Unix millisecond time as RFC 3339 UTC ("2026-11-20T23:59:00.123Z") into buf,
 * which must hold at least 25 bytes. Returns buf. */
char *clock_format_ms(int64_t unix_ms, char *buf, unsigned long len);

#endif
