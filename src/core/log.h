/* log.h — leveled, one-line-per-event, key=value logging to stderr.
 *
 * A line looks like
 *   ts=2026-11-20T23:59:00.123Z level=warn event=ingest.rejected device=kitchen-1 reason="..."
 * Each line is written with a single write(2), so lines from different threads never
 * interleave. Control characters in the formatted text are replaced by '?', so input
 * quoted into a log line cannot forge a second line. The level is process-wide and is set
 * once by main() before threads start; logging itself is thread-safe. */
#ifndef CANARY_CORE_LOG_H
#define CANARY_CORE_LOG_H

#include <stdbool.h>

enum log_level {
    LOG_LEVEL_DEBUG = 0,
    LOG_LEVEL_INFO = 1,
    LOG_LEVEL_WARN = 2,
    LOG_LEVEL_ERROR = 3,
};

/* Sets the lowest level that is written. Call from main() before starting threads. */
void log_set_level(enum log_level level);

/* Parses "debug", "info", "warn" or "error". Returns 0, or CANARY_EINVAL. */
int log_level_parse(const char *name, enum log_level *out);

const char *log_level_name(enum log_level level);

/* True when lines of this level are written (use it to skip building expensive fields). */
bool log_enabled(enum log_level level);

/* Writes one line: "ts=... level=... event=<event> " followed by the formatted fields. */
void log_write(enum log_level level, const char *event, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

#define log_debug(event, ...)                                                                      \
    do {                                                                                           \
        if (log_enabled(LOG_LEVEL_DEBUG))                                                          \
            log_write(LOG_LEVEL_DEBUG, event, __VA_ARGS__);                                        \
    } while (0)
#define log_info(event, ...)  log_write(LOG_LEVEL_INFO, event, __VA_ARGS__)
#define log_warn(event, ...)  log_write(LOG_LEVEL_WARN, event, __VA_ARGS__)
#define log_error(event, ...) log_write(LOG_LEVEL_ERROR, event, __VA_ARGS__)

#endif
