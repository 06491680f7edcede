/* broker_config.h — the pure parts of `canary broker-config` (broker_config.c): Mosquitto
 * password hashes and ACL text for canary's topic layout (docs/SECURITY.md, "Locking down the
 * broker").
 *
 * Promises: a device id is accepted only if it is safe as a Mosquitto user name (no ':', the
 * password file's separator), as one MQTT topic level (no '/', '+', '#') and as one line of
 * the ACL file (no whitespace or control characters), so no id can add or widen a rule. The
 * hash is exactly what mosquitto_passwd writes for Mosquitto 2.x. No I/O here. */
#ifndef CANARY_CLI_BROKER_CONFIG_H
#define CANARY_CLI_BROKER_CONFIG_H

#include <stdbool.h>
#include <stddef.h>

#define BROKER_ID_MAX        64  /* bytes in a device id or broker user name */
#define BROKER_SALT_LEN      12  /* mosquitto_passwd's salt length */
#define BROKER_HASH_ITER     101 /* mosquitto_passwd's default PBKDF2 iterations */
#define BROKER_HASH_TEXT_MAX 160 /* "$7$101$<16>$<88>" and a NUL fit */

/* Whether id may be a device (or canaryd's) broker user: 1 to max_len (at most
 * BROKER_ID_MAX) bytes of letters, digits, '.', '_' and '-'. canary's device ids may also
 * contain ':', which Mosquitto's password file cannot hold in a user name: refused. */
bool broker_config_id_valid(const char *id, size_t max_len);

/* Mosquitto 2.x password hash of password: "$7$<iterations>$<base64 salt>$<base64
 * PBKDF2-HMAC-SHA512(password, salt, iterations, 64 bytes)>", base64 with padding and no
 * line breaks, as mosquitto_passwd writes it. Returns 0, or CANARY_EINVAL (bad arguments,
 * out too small) / CANARY_ENOMEM. */
int broker_config_hash(const char *password, const unsigned char *salt, size_t salt_len,
                       int iterations, char *out, size_t outlen);

/* What the ACL grants. */
struct broker_acl {
    const char *prefix;       /* mqtt.topic_prefix, e.g. "canary" */
    const char *canaryd_user; /* canaryd's broker user */
    bool ha_discovery;        /* canaryd also publishes Home Assistant discovery */
    const char *ha_prefix;    /* mqtt.ha_prefix, used when ha_discovery */
    size_t max_id_len;        /* longest accepted device id (ingest.max_device_len) */
};

/* The ACL file text for devices[0..n): canaryd reads <prefix>/# and writes <prefix>/+/cmd
 * (and, with Home Assistant discovery, <prefix>/+/state and <ha_prefix>/#); each device
 * writes only <prefix>/<id>/up, status and cmd/ack and reads only <prefix>/<id>/cmd. Users
 * not in the file get nothing. Returns 0 with a malloc'd NUL-terminated text in *out (the
 * caller frees), or CANARY_EINVAL with the offending id in err (invalid id, prefix or user,
 * a device named like canaryd's user, a duplicate), or CANARY_ENOMEM. */
int broker_config_acl(const struct broker_acl *acl, const char *const *devices, size_t n,
                      char **out, char *err, size_t errlen);

#endif
