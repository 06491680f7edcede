/* error.h — the error codes every canary module returns.
 *
 * Functions return 0 on success and a negative CANARY_E* value on failure. Where a user
 * needs to know more than the code, the function also fills a caller-given message buffer
 * with a sentence that says what was wrong and where ("reading 3: field 'values.gas_ppm'
 * must be a finite number"). */
#ifndef CANARY_CORE_ERROR_H
#define CANARY_CORE_ERROR_H

enum canary_err {
    CANARY_OK = 0,
    CANARY_EINVAL = -1,    /* invalid input or argument */
    CANARY_ENOMEM = -2,    /* out of memory */
    CANARY_EIO = -3,       /* I/O or storage failure */
    CANARY_ELIMIT = -4,    /* a configured size or count limit was exceeded */
    CANARY_ENOTFOUND = -5, /* no such object */
    CANARY_ECONFLICT = -6, /* duplicate, or not allowed in the object's current state */
    CANARY_EBUSY = -7,     /* back-pressure: the caller should retry later */
    CANARY_ESTOPPED = -8,  /* the component is shutting down */
    CANARY_EPERM = -9,     /* not permitted (authentication, file permissions) */
};

#include <stddef.h>

/* Writes a message into a caller's error buffer (err may be NULL or errlen 0: then
 * nothing), cut to fit. The one helper every module uses to fill its err argument. */
void canary_errf(char *err, size_t errlen, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

#endif
