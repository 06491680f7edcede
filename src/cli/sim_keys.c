/* sim_keys.c — `canary simulate --sign FILE`: the fleet's device keys, and readings signed
 * as JWS HS256 with kid = device id (verify/jws.h), for both transports (sim_run.h). The
 * file holds "<device> <key>" lines as `canary device add --keys-out` writes them; every
 * device of the fleet must have one. Keys stay in memory only, and are wiped when freed. */
#include "cli/sim_run.h"

#include "verify/devkey.h"
#include "verify/jws.h"

#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int sim_keys_load(struct sim *s, uint8_t **out)
{
    FILE *fp = fopen(s->opt.sign_path, "r");
    if (fp == NULL) {
        fprintf(stderr, "canary simulate: --sign %s: cannot open it\n", s->opt.sign_path);
        return 1;
    }
    unsigned n = s->opt.devices;
    uint8_t *keys = calloc(n, DEVKEY_LEN);
    bool *have = calloc(n, 1);
    int rc = keys == NULL || have == NULL ? 1 : 0;
    char line[512];
    unsigned lineno = 0;
    while (rc == 0 && fgets(line, sizeof line, fp) != NULL) {
        lineno++;
        char id[160], key[160];
        if (line[0] == '#' || sscanf(line, "%159s %159s", id, key) < 1)
            continue;
        uint8_t k[DEVKEY_LEN];
        if (sscanf(line, "%159s %159s", id, key) != 2 || devkey_parse(key, k) != 0) {
            fprintf(stderr,
                    "canary simulate: --sign %s line %u: expected \"<device> <key>\" with the "
                    "43-character key `canary device add` printed\n",
                    s->opt.sign_path, lineno);
            rc = 1;
            break;
        }
        for (unsigned d = 0; d < n; d++) {
            if (strcmp(sim_fleet_device(&s->fleet, d)->id, id) == 0) {
                memcpy(keys + (size_t)d * DEVKEY_LEN, k, DEVKEY_LEN);
                have[d] = true;
            }
        }
    }
    fclose(fp);
    for (unsigned d = 0; rc == 0 && d < n; d++) {
        if (!have[d]) {
            fprintf(stderr, "canary simulate: --sign %s has no key for device %s\n",
                    s->opt.sign_path, sim_fleet_device(&s->fleet, d)->id);
            rc = 1;
        }
    }
    free(have);
    if (rc != 0) {
        if (keys != NULL)
            memset(keys, 0, (size_t)n * DEVKEY_LEN);
        free(keys);
        keys = NULL;
    }
    *out = keys;
    return rc;
}

long sim_keys_sign(const struct sim *s, const uint8_t *keys, unsigned d, const char *json,
                   size_t len, char *out, size_t cap)
{
    return jws_sign_hs256(sim_fleet_device(&s->fleet, d)->id, json, len,
                          keys + (size_t)d * DEVKEY_LEN, DEVKEY_LEN, out, cap);
}

void sim_keys_free(const struct sim *s, uint8_t *keys)
{
    if (keys != NULL)
        memset(keys, 0, (size_t)s->opt.devices * DEVKEY_LEN);
    free(keys);
}
