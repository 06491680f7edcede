/* cdev_keyfile.c — a device's key from a --keys-out file or a bare key file; see
 * cdev_keyfile.h. The key text is checked by the SDK itself (cdev_key_parse) later; here
 * only the file's shape and mode. */
#include "cdev_keyfile.h"

#include "canary_device.h"

#include <stdio.h>
#include <string.h>
#include <sys/stat.h>

int cdev_keyfile_read(const char *path, const char *device, char key_text[44], char *err,
                      size_t errlen)
{
    key_text[0] = '\0';
    if (errlen > 0)
        err[0] = '\0';
    FILE *f = fopen(path, "r");
    if (f == NULL) {
        snprintf(err, errlen, "key file %s: cannot open it", path);
        return -1;
    }
    struct stat st;
    if (fstat(fileno(f), &st) != 0 || (st.st_mode & 077) != 0) {
        snprintf(err, errlen, "key file %s: must not be readable by group or others (chmod 600)",
                 path);
        fclose(f);
        return -1;
    }
    char line[512];
    int lineno = 0, rc = -1;
    while (fgets(line, sizeof line, f) != NULL) {
        lineno++;
        size_t end = strcspn(line, "\r\n");
        while (end > 0 && (line[end - 1] == ' ' || line[end - 1] == '\t'))
            end--; /* trailing blanks */
        line[end] = '\0';
        char *p = line + strspn(line, " \t");
        if (*p == '\0' || *p == '#')
            continue;
        char *sp = strpbrk(p, " \t");
        const char *key = p;
        if (sp != NULL) { /* "<device> <key>" */
            *sp = '\0';
            key = sp + 1 + strspn(sp + 1, " \t");
            if (strcmp(p, device) != 0)
                continue;
        }
        size_t n = strcspn(key, " \t");
        if (n != CDEV_KEY_TEXT_LEN || key[n + strspn(key + n, " \t")] != '\0') {
            snprintf(err, errlen, "key file %s, line %d: a key is 43 base64url characters", path,
                     lineno);
            rc = -1;
            break;
        }
        memcpy(key_text, key, CDEV_KEY_TEXT_LEN);
        key_text[CDEV_KEY_TEXT_LEN] = '\0';
        rc = 0;
    }
    fclose(f);
    cdev_wipe(line, sizeof line);
    if (rc != 0) {
        cdev_wipe(key_text, 44);
        if (err[0] == '\0')
            snprintf(err, errlen, "key file %s: no key for device %s", path, device);
    }
    return rc;
}
