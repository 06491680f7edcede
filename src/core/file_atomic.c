/* file_atomic.c — whole-file writes through a temporary file and a rename; see
 * file_atomic.h. */
#include "core/file_atomic.h"

#include "core/error.h"

#include <errno.h>
#include <fcntl.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

static bool write_all(int fd, const uint8_t *p, size_t n)
{
    while (n > 0) {
        ssize_t w = write(fd, p, n);
        if (w < 0 && errno == EINTR)
            continue;
        if (w <= 0)
            return false;
        p += w;
        n -= (size_t)w;
    }
    return true;
}

/* fsyncs the directory that holds path, so a rename into it is durable. */
static int sync_dir_of(const char *path)
{
    const char *slash = strrchr(path, '/');
    char dir[4096];
    if (slash == NULL) {
        snprintf(dir, sizeof dir, ".");
    } else if (slash == path) {
        snprintf(dir, sizeof dir, "/");
    } else {
        if ((size_t)(slash - path) >= sizeof dir) {
            errno = ENAMETOOLONG;
            return -1;
        }
        memcpy(dir, path, (size_t)(slash - path));
        dir[slash - path] = '\0';
    }
    int fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (fd < 0)
        return -1;
    int rc = fsync(fd);
    close(fd);
    return rc;
}

int file_write_atomic(const char *path, const void *buf, size_t len, mode_t mode, char *err,
                      size_t errlen)
{
    size_t plen = strlen(path);
    char *tmp = malloc(plen + sizeof ".tmp.XXXXXX");
    if (tmp == NULL) {
        canary_errf(err, errlen, "%s: out of memory", path);
        return CANARY_ENOMEM;
    }
    memcpy(tmp, path, plen);
    memcpy(tmp + plen, ".tmp.XXXXXX", sizeof ".tmp.XXXXXX");
    const char *step = "cannot create a temporary file";
    int fd = mkostemp(tmp, O_CLOEXEC);
    if (fd < 0)
        goto fail;
    step = "cannot write";
    if (fchmod(fd, mode) != 0 || !write_all(fd, buf, len))
        goto fail_unlink;
    step = "cannot fsync";
    if (fsync(fd) != 0)
        goto fail_unlink;
    step = "cannot close";
    int rc = close(fd);
    fd = -1;
    if (rc != 0)
        goto fail_unlink;
    step = "cannot rename the temporary file over it";
    if (rename(tmp, path) != 0)
        goto fail_unlink;
    step = "cannot fsync its directory";
    if (sync_dir_of(path) != 0)
        goto fail;
    free(tmp);
    return CANARY_OK;
fail_unlink:;
    int saved = errno;
    if (fd >= 0)
        close(fd);
    unlink(tmp);
    errno = saved;
fail:
    canary_errf(err, errlen, "%s: %s: %s", path, step, strerror(errno));
    free(tmp);
    return CANARY_EIO;
}
