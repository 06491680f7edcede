/* auth.h — is this message really from the device it names? The authenticity half of the
 * verify stage, shared by HTTP and MQTT ingest.
 *
 * A message arrives in one of three ways (ARCHITECTURE.md, "Authenticity"):
 *  - signed: the body is a JWS compact serialization (jws.h), HS256, kid = device id. The
 *    MAC must match one of the kid's valid HMAC keys (during a rotation's overlap, the old
 *    one too) and every reading in the payload must name the kid;
 *  - bearer (HTTP only): "Authorization: Bearer <device token>", plain body; the token must
 *    be one of the valid tokens of the device every reading names;
 *  - unsigned: neither. A device that has any credential must use it (stripping the
 *    signature off a device's message is an attack, not a downgrade), so its unsigned
 *    messages are refused whatever the policy; for devices without credentials,
 *    security.unsigned decides: accept, flag (accept and count, with a security event) or
 *    reject.
 * Refusals carry a code (the API's error code and the security event's kind), an HTTP
 * status (401: no or wrong credential; 403: a credential for another device, or revoked)
 * and a sentence. Freshness is not checked here: the timestamp window is verify.h's, the
 * seq window the owning worker's, and both apply to signed readings too, so a replayed
 * signed message is a duplicate.
 *
 * The keyring. Verification needs the devices' keys in memory: auth_reload() reads every
 * credential from the store, opens the sealed keys with the master key, and publishes the
 * result as an immutable snapshot. Lookups take a read lock only to copy one device's few
 * credentials out (no I/O, no allocation); a reload builds the new snapshot without the
 * lock and takes the write lock only to swap a pointer, so ingest threads never wait on the
 * store. Call auth_reload() after every change to the credentials (the admin API does;
 * canaryd also reloads on SIGHUP). At most 8 credentials per device are kept in memory:
 * revoked and ended ones go first, then the oldest of the same kind.
 * All functions are thread-safe. */
#ifndef CANARY_VERIFY_AUTH_H
#define CANARY_VERIFY_AUTH_H

#include "core/config.h"
#include "ingest/ingest.h"
#include "store/store.h"
#include "verify/devkey.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct auth;

enum auth_unsigned { AUTH_UNSIGNED_ACCEPT = 0, AUTH_UNSIGNED_FLAG, AUTH_UNSIGNED_REJECT };

enum auth_how { AUTH_NONE = 0, AUTH_SIGNED, AUTH_BEARER };

/* What became of one message. code == NULL: it may go on (flagged when it was unsigned and
 * the policy is flag). */
struct auth_verdict {
    enum auth_how how;
    char device[READING_ID_BUF]; /* the authenticated device (kid or token's device), or the
                                    device concerned by a refusal when known */
    uint32_t key_version;        /* the key or token version that matched */
    const char *code;            /* refusal code (static string), NULL when allowed */
    unsigned http_status;        /* 401 or 403 with a code */
    char reason[256];            /* a sentence an operator can act on; never a secret */
    bool flagged;                /* unsigned, accepted under security.unsigned = flag */
};

/* Counters for /api/v1/stats ("security"). */
struct auth_stats {
    uint64_t signed_ok, bearer_ok, unsigned_ok, unsigned_flagged;
    uint64_t rejected;   /* all refusals */
    uint64_t devices;    /* devices with at least one credential in the keyring */
    uint64_t keys;       /* credentials loaded */
    uint64_t unreadable; /* sealed keys that did not open (wrong master key?) */
};

/* Creates the object: the master key from cfg->security.master_key (or, when that is
 * empty, the environment variable CANARY_MASTER_KEY), the unsigned policy. No key is
 * loaded yet. Returns 0, or CANARY_EINVAL with a message (a malformed master key). */
int auth_new(struct auth **out, const struct canary_config *cfg, char *err, size_t errlen);

void auth_free(struct auth *a);

/* True when a master key is configured (device keys can be created and used). */
bool auth_has_master(const struct auth *a);

/* The master key, for sealing a new device key (NULL without one). */
const uint8_t *auth_master(const struct auth *a);

/* Reads every credential from s and publishes the new keyring. Returns 0 or CANARY_EIO
 * (the old keyring stays). */
int auth_reload(struct auth *a, struct store *s, char *err, size_t errlen);

/* True when the body looks like a JWS compact serialization rather than JSON or line
 * protocol: it starts "eyJ" (base64url of '{"', how every JWS header starts) and has a '.'
 * before any space or comma. */
bool auth_looks_like_jws(const char *body, size_t len);

/* Verifies a signed body and decodes its payload into out (cap bytes; len + 1 always
 * suffices: the caller's arena or buffer, so nothing is allocated here), NUL-terminated, with
 * its length in *payload_len; v->how = AUTH_SIGNED. Returns 0, or -1 with v's code. Counts
 * the outcome. */
int auth_open_jws(struct auth *a, const char *body, size_t len, size_t max_payload, int64_t now_ms,
                  char *out, size_t cap, size_t *payload_len, struct auth_verdict *v);

/* Checks the pending readings of a parsed message against how it came (v->how from
 * auth_open_jws, or AUTH_BEARER with the presented token, or AUTH_NONE). Returns 0 when
 * the message may go on (v->flagged under the flag policy), -1 with v's code when the
 * whole message must be refused. Counts the outcome. */
int auth_check_batch(struct auth *a, const struct ingest_batch *b, const char *bearer,
                     size_t bearer_len, int64_t now_ms, struct auth_verdict *v);

/* Token-bucket limit on the security events auth refusals produce (10/s, bursts of 100),
 * for producers without one of their own: true when this event may be stored; *suppressed
 * is how many were refused since the last allowed one (store a "suppressed" event). */
bool auth_event_allow(struct auth *a, int64_t mono_ms, uint64_t *suppressed);

void auth_stats(struct auth *a, struct auth_stats *out);

/* Parses "accept" / "flag" / "reject". Returns 0 or -1. */
int auth_unsigned_parse(const char *s, enum auth_unsigned *out);

#endif
