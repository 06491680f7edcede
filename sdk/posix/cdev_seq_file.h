/* cdev_seq_file.h — the seq mark in a file, for devices with a POSIX file system (a
 * Raspberry Pi, a Linux gateway, canary-device-example).
 *
 * The file holds the mark as decimal digits and a newline, nothing else. A save writes
 * "<path>.tmp", fsyncs it, renames it over <path> and fsyncs the directory, so after a crash
 * or power cut at any point the file holds the old mark or the new one, complete (POSIX
 * rename is atomic). A file that is missing means a new device (CDEV_ENOTFOUND); one that
 * holds anything but a valid mark is CDEV_ESTORE, never "start again at 0". */
#ifndef CANARY_SEQ_FILE_H
#define CANARY_SEQ_FILE_H

#include "canary_device.h"

#define CDEV_SEQ_FILE_PATH_MAX 1024

struct cdev_seq_file {
    char path[CDEV_SEQ_FILE_PATH_MAX];
    char tmp[CDEV_SEQ_FILE_PATH_MAX + 8];
    struct cdev_seq_store store; /* hand &store to cdev_seq_start / cdev_device_init */
};

/* Sets f up for path (its directory must exist). Returns CDEV_OK, or CDEV_EARG when the path
 * is empty or too long. */
int cdev_seq_file_init(struct cdev_seq_file *f, const char *path);

/* The hooks themselves (ctx is the struct cdev_seq_file). */
int cdev_seq_file_load(void *ctx, uint64_t *mark);
int cdev_seq_file_save(void *ctx, uint64_t mark);

#endif
