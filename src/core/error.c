/* error.c — descriptions of the CANARY_E* codes. */
#include "core/error.h"

const char *canary_strerror(int err)
{
    switch (err) {
    case CANARY_OK:
        return "ok";
    case CANARY_EINVAL:
        return "invalid input";
    case CANARY_ENOMEM:
        return "out of memory";
    case CANARY_EIO:
        return "I/O error";
    case CANARY_ELIMIT:
        return "limit exceeded";
    case CANARY_ENOTFOUND:
        return "not found";
    case CANARY_ECONFLICT:
        return "conflict";
    case CANARY_EBUSY:
        return "busy";
    case CANARY_ESTOPPED:
        return "stopped";
    case CANARY_EPERM:
        return "not permitted";
    default:
        return "unknown error";
    }
}
