/* ingest_text.h — text helpers the parsers share: quoting untrusted input safely into
 * error messages, and filling a fatal error. Private to src/ingest/. */
#ifndef CANARY_INGEST_TEXT_H
#define CANARY_INGEST_TEXT_H

#include "ingest/ingest.h"

#include <stddef.h>

/* Copies at most 40 bytes of untrusted text s[0..n) into buf (len >= 48) for a message:
 * '?' for anything unprintable or a quote/backslash, "..." when cut. Returns buf. */
const char *ingest_excerpt(const char *s, size_t n, char *buf, size_t len);

/* Fills a fatal error (status, field, printf-style reason). */
void ingest_fatal_set(struct ingest_fatal *f, int status, const char *field, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

#endif
