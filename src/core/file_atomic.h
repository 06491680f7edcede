/* file_atomic.h — writing a whole file so that readers see the old content or the new,
 * never a torn mix, and the new content survives a crash once the call returns.
 *
 * The bytes go to a temporary file beside the target (same directory, so the rename is
 * atomic), which is fsynced, renamed over the target, and then the directory is fsynced so
 * the rename itself is durable. On any failure the temporary file is removed and the target
 * is untouched. Used by the model files (Isolation Forest, gas classifier). */
#ifndef CANARY_CORE_FILE_ATOMIC_H
#define CANARY_CORE_FILE_ATOMIC_H

#include <stddef.h>
#include <sys/types.h>

/* Writes buf[0..len) to path with permissions mode. Returns 0, or CANARY_EIO / CANARY_ENOMEM
 * with "<path>: <what failed>: <strerror>" in err. */
int file_write_atomic(const char *path, const void *buf, size_t len, mode_t mode, char *err,
                      size_t errlen);

#endif
