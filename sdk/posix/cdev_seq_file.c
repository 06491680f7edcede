/* cdev_seq_file.c — the seq mark in a file, written crash-safely; see cdev_seq_file.h.
 *
 * The same sequence as canary's src/core/file_atomic.c (temporary file, fsync, rename, fsync
 * of the directory), written again here because the SDK must not depend on libcanary: a
 * device links the SDK alone. */
#include "cdev_seq_file.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

int cdev_seq_file_init(struct cdev_seq_file *f, const char *path)
{
    if (f == NULL)
        return CDEV_EARG;
    memset(f, 0, sizeof *f);
    if (path == NULL || path[0] == '\0' || strlen(path) >= sizeof f->path)
        return CDEV_EARG;
    snprintf(f->path, sizeof f->path, "%s", path);
    snprintf(f->tmp, sizeof f->tmp, "%s.tmp", path);
    f->store.load = cdev_seq_file_load;
    f->store.save = cdev_seq_file_save;
    f->store.ctx = f;
    return CDEV_OK;
}

int cdev_seq_file_load(void *ctx, uint64_t *mark)
{
    const struct cdev_seq_file *f = ctx;
    int fd = open(f->path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return errno == ENOENT ? CDEV_ENOTFOUND : CDEV_ESTORE;
    char buf[32];
    size_t n = 0;
    for (;;) {
        ssize_t got = read(fd, buf + n, sizeof buf - n);
        if (got < 0 && errno == EINTR)
            continue;
        if (got < 0) {
            close(fd);
            return CDEV_ESTORE;
        }
        if (got == 0 || (n += (size_t)got) == sizeof buf)
            break;
    }
    close(fd);
    /* 1..16 digits (2^53 has 16), a newline, the end of the file. */
    uint64_t v = 0;
    size_t i = 0;
    for (; i < n && buf[i] >= '0' && buf[i] <= '9' && i < 16; i++)
        v = v * 10 + (uint64_t)(buf[i] - '0');
    if (i == 0 || i + 1 != n || buf[i] != '\n' || v > CDEV_SEQ_MAX)
        return CDEV_ESTORE;
    *mark = v;
    return CDEV_OK;
}

static int write_all(int fd, const char *p, size_t n)
{
    while (n > 0) {
        ssize_t w = write(fd, p, n);
        if (w < 0 && errno == EINTR)
            continue;
        if (w <= 0)
            return -1;
        p += w;
        n -= (size_t)w;
    }
    return 0;
}

/* fsync of the directory holding path, so the rename itself is durable. */
static int sync_dir(const char *path)
{
    char dir[CDEV_SEQ_FILE_PATH_MAX];
    snprintf(dir, sizeof dir, "%s", path);
    char *slash = strrchr(dir, '/');
    if (slash == NULL)
        snprintf(dir, sizeof dir, ".");
    else if (slash == dir)
        dir[1] = '\0';
    else
        *slash = '\0';
    int fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (fd < 0)
        return -1;
    int rc = fsync(fd);
    close(fd);
    return rc;
}

int cdev_seq_file_save(void *ctx, uint64_t mark)
{
    const struct cdev_seq_file *f = ctx;
    char text[32];
    int n = snprintf(text, sizeof text, "%llu\n", (unsigned long long)mark);
    int fd = open(f->tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
    if (fd < 0)
        return CDEV_ESTORE;
    if (write_all(fd, text, (size_t)n) != 0 || fsync(fd) != 0) {
        close(fd);
        unlink(f->tmp);
        return CDEV_ESTORE;
    }
    if (close(fd) != 0 || rename(f->tmp, f->path) != 0) {
        unlink(f->tmp);
        return CDEV_ESTORE;
    }
    return sync_dir(f->path) == 0 ? CDEV_OK : CDEV_ESTORE;
}
