/* cdev_keyfile.h — reading a device key from a file on a POSIX device.
 *
 * Two formats, both what canary's tools write: the lines "<device> <key>" of
 * `canary device add --keys-out FILE` (the line of the wanted device; the last one wins, so
 * a rotated key appended later replaces the old), or a file holding just the 43-character
 * key. Blank lines and lines starting with '#' are skipped. The file must not be readable by
 * group or others (mode 0600 or stricter), as canaryd demands of its own secret files. */
#ifndef CANARY_KEYFILE_H
#define CANARY_KEYFILE_H

#include <stddef.h>

/* Reads device's key text (43 characters and a NUL) from path into key_text. Returns 0, or
 * -1 with a sentence in err. */
int cdev_keyfile_read(const char *path, const char *device, char key_text[44], char *err,
                      size_t errlen);

#endif
