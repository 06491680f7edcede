/* utf8.h — strict UTF-8 validation (RFC 3629).
 *
 * Rejects overlong encodings, surrogates (U+D800..U+DFFF), code points above U+10FFFF and
 * truncated sequences. Every byte of text canary accepts from the network passes here. */
#ifndef CANARY_CORE_UTF8_H
#define CANARY_CORE_UTF8_H

#include <stdbool.h>
#include <stddef.h>

/* Returns true when s[0..len) is valid UTF-8. When it is not and bad_offset is not NULL,
 * *bad_offset is the offset of the first byte of the invalid sequence. */
bool utf8_valid(const char *s, size_t len, size_t *bad_offset);

#endif
