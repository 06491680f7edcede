/* ingest_text.c — shared text helpers of the parsers; see ingest_text.h. */
#include "ingest/ingest_text.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>

const char *ingest_excerpt(const char *s, size_t n, char *buf, size_t len)
{
    size_t k = 0;
    for (; k < n && k < len - 4 && k < 40; k++)
        buf[k] = (s[k] >= 0x20 && s[k] < 0x7f && s[k] != '"' && s[k] != '\\') ? s[k] : '?';
    if (k < n) {
        memcpy(buf + k, "...", 3);
        k += 3;
    }
    buf[k] = '\0';
    return buf;
}

void ingest_fatal_set(struct ingest_fatal *f, int status, const char *field, const char *fmt, ...)
{
    f->http_status = status;
    snprintf(f->field, sizeof f->field, "%s", field);
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(f->reason, sizeof f->reason, fmt, ap);
    va_end(ap);
}
