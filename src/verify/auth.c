/* auth.c — message authenticity and the in-memory keyring; see auth.h.
 *
 * The keyring is an immutable snapshot: devices sorted by id, each with up to KR_MAX_CREDS
 * credentials (the newest versions). Readers copy one device's credentials out under a
 * read lock and verify outside it; a reload swaps the snapshot pointer under the write
 * lock and frees the old snapshot after releasing it. Copies of keys on the stack are
 * cleansed after use. */
#include "verify/auth.h"

#include "core/clock.h"
#include "core/error.h"
#include "core/log.h"
#include "core/rate_limit.h"
#include "verify/jws.h"

#include <openssl/crypto.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define KR_MAX_CREDS 8 /* per device: enough for a rotation overlap of HMAC keys and tokens */

struct kr_cred {
    enum store_key_kind kind;
    uint32_t version;
    int64_t expires_ms, revoked_ms;
    bool usable;                /* the sealed key opened (tokens: always) */
    uint8_t secret[DEVKEY_LEN]; /* HMAC key, or the token's SHA-256 */
};

struct kr_device {
    char id[READING_ID_BUF];
    struct kr_cred creds[KR_MAX_CREDS];
    unsigned n;
};

struct kr_snapshot {
    struct kr_device *devices; /* sorted by id */
    size_t n, cap;
    uint64_t keys, unreadable;
};

struct auth {
    enum auth_unsigned policy;
    bool has_master;
    uint8_t master[DEVKEY_LEN];
    pthread_rwlock_t lock; /* guards `snap` (the pointer; the snapshot is immutable) */
    struct kr_snapshot *snap;
    pthread_mutex_t event_lock;
    struct rate_limit events;
    _Atomic uint64_t signed_ok, bearer_ok, unsigned_ok, unsigned_flagged, rejected;
};

int auth_unsigned_parse(const char *s, enum auth_unsigned *out)
{
    if (strcmp(s, "accept") == 0)
        *out = AUTH_UNSIGNED_ACCEPT;
    else if (strcmp(s, "flag") == 0)
        *out = AUTH_UNSIGNED_FLAG;
    else if (strcmp(s, "reject") == 0)
        *out = AUTH_UNSIGNED_REJECT;
    else
        return -1;
    return 0;
}

static void snapshot_free(struct kr_snapshot *s)
{
    if (s == NULL)
        return;
    OPENSSL_cleanse(s->devices, s->cap * sizeof *s->devices);
    free(s->devices);
    free(s);
}

int auth_new(struct auth **out, const struct canary_config *cfg, char *err, size_t errlen)
{
    struct auth *a = calloc(1, sizeof *a);
    if (a == NULL)
        return CANARY_ENOMEM;
    if (auth_unsigned_parse(cfg->security.unsigned_policy, &a->policy) != 0)
        a->policy = AUTH_UNSIGNED_REJECT; /* config validation prevents this; fail closed */
    const char *mk = cfg->security.master_key;
    if (mk[0] == '\0' && getenv("CANARY_MASTER_KEY") != NULL)
        mk = getenv("CANARY_MASTER_KEY");
    if (mk[0] != '\0') {
        int rc = devkey_master_parse(mk, a->master, err, errlen);
        if (rc != 0) {
            free(a);
            return rc;
        }
        a->has_master = true;
    }
    a->snap = calloc(1, sizeof *a->snap);
    if (a->snap == NULL) {
        OPENSSL_cleanse(a->master, sizeof a->master);
        free(a);
        return CANARY_ENOMEM;
    }
    pthread_rwlock_init(&a->lock, NULL);
    pthread_mutex_init(&a->event_lock, NULL);
    rate_limit_init(&a->events, 10.0, 100.0, clock_mono_ms());
    *out = a;
    return CANARY_OK;
}

void auth_free(struct auth *a)
{
    if (a == NULL)
        return;
    snapshot_free(a->snap);
    pthread_rwlock_destroy(&a->lock);
    pthread_mutex_destroy(&a->event_lock);
    OPENSSL_cleanse(a->master, sizeof a->master);
    free(a);
}

bool auth_has_master(const struct auth *a)
{
    return a != NULL && a->has_master;
}

const uint8_t *auth_master(const struct auth *a)
{
    return auth_has_master(a) ? a->master : NULL;
}

/* ---- loading ---------------------------------------------------------------------------- */

struct load_ctx {
    struct auth *a;
    struct kr_snapshot *s;
    int64_t now_ms;
    int rc;
};

static void load_key(void *arg, const struct store_device_key *k)
{
    struct load_ctx *c = arg;
    struct kr_snapshot *s = c->s;
    if (c->rc != 0)
        return;
    /* Rows come ordered by device: a new device starts a new entry. */
    struct kr_device *d = s->n > 0 ? &s->devices[s->n - 1] : NULL;
    if (d == NULL || strcmp(d->id, k->device) != 0) {
        if (s->n == s->cap) {
            size_t cap = s->cap ? s->cap * 2 : 16;
            struct kr_device *grown = calloc(cap, sizeof *grown);
            if (grown == NULL) {
                c->rc = CANARY_ENOMEM;
                return;
            }
            if (s->n > 0)
                memcpy(grown, s->devices, s->n * sizeof *grown);
            OPENSSL_cleanse(s->devices, s->cap * sizeof *s->devices);
            free(s->devices);
            s->devices = grown;
            s->cap = cap;
        }
        d = &s->devices[s->n++];
        memset(d, 0, sizeof *d);
        snprintf(d->id, sizeof d->id, "%s", k->device);
    }
    if (d->n == KR_MAX_CREDS) {
        /* Full (a device rotated many times): drop a revoked or ended credential, else the
         * oldest of the new one's kind (rows come in version order per kind), so a valid key
         * of one kind is never pushed out by many of the other. */
        unsigned victim = KR_MAX_CREDS;
        for (unsigned i = 0; i < d->n && victim == KR_MAX_CREDS; i++)
            if (d->creds[i].revoked_ms != 0 ||
                (d->creds[i].expires_ms != 0 && d->creds[i].expires_ms <= c->now_ms))
                victim = i;
        for (unsigned i = 0; i < d->n && victim == KR_MAX_CREDS; i++)
            if (d->creds[i].kind == k->kind)
                victim = i;
        if (victim == KR_MAX_CREDS)
            victim = 0;
        OPENSSL_cleanse(&d->creds[victim], sizeof d->creds[victim]);
        memmove(&d->creds[victim], &d->creds[victim + 1], (d->n - victim - 1) * sizeof d->creds[0]);
        d->n--;
    }
    struct kr_cred *cr = &d->creds[d->n++];
    memset(cr, 0, sizeof *cr);
    cr->kind = k->kind;
    cr->version = k->version;
    cr->expires_ms = k->expires_ms;
    cr->revoked_ms = k->revoked_ms;
    s->keys++;
    if (k->kind == STORE_KEY_TOKEN) {
        cr->usable = k->material_len == DEVKEY_HASH_LEN;
        if (cr->usable)
            memcpy(cr->secret, k->material, DEVKEY_HASH_LEN);
    } else {
        cr->usable = c->a->has_master && k->material_len == DEVKEY_SEALED_LEN &&
                     devkey_open(c->a->master, k->device, k->version, k->material, cr->secret) == 0;
    }
    if (!cr->usable) {
        s->unreadable++;
        log_error("auth.key_unreadable", "device=%s kind=%s version=%u reason=\"%s\"", k->device,
                  store_key_kind_name(k->kind), k->version,
                  c->a->has_master ? "the sealed key does not open with this master key"
                                   : "security.master_key is not set");
    }
}

int auth_reload(struct auth *a, struct store *s, char *err, size_t errlen)
{
    struct kr_snapshot *snap = calloc(1, sizeof *snap);
    if (snap == NULL)
        return CANARY_ENOMEM;
    struct load_ctx c = {a, snap, clock_wall_ms(), 0};
    int rc = store_keys_each(s, NULL, load_key, &c, err, errlen);
    if (rc == 0 && c.rc != 0) {
        rc = c.rc;
        canary_errf(err, errlen, "out of memory loading the device keys");
    }
    if (rc != 0) {
        snapshot_free(snap);
        return rc;
    }
    pthread_rwlock_wrlock(&a->lock);
    struct kr_snapshot *old = a->snap;
    a->snap = snap;
    pthread_rwlock_unlock(&a->lock);
    snapshot_free(old);
    log_info("auth.keyring_loaded", "devices=%zu credentials=%llu unreadable=%llu", snap->n,
             (unsigned long long)snap->keys, (unsigned long long)snap->unreadable);
    return CANARY_OK;
}

static int cmp_device(const void *key, const void *elem)
{
    return strcmp(key, ((const struct kr_device *)elem)->id);
}

/* Copies a device's credentials into *out. Returns false when it has none. */
static bool lookup(struct auth *a, const char *device, struct kr_device *out)
{
    pthread_rwlock_rdlock(&a->lock);
    const struct kr_device *d =
        a->snap->n > 0 ? bsearch(device, a->snap->devices, a->snap->n, sizeof *d, cmp_device)
                       : NULL;
    if (d != NULL)
        *out = *d;
    pthread_rwlock_unlock(&a->lock);
    return d != NULL;
}

static bool cred_valid(const struct kr_cred *c, int64_t now_ms)
{
    return c->usable && c->revoked_ms == 0 && (c->expires_ms == 0 || now_ms < c->expires_ms);
}

static bool all_revoked(const struct kr_device *d)
{
    for (unsigned i = 0; i < d->n; i++)
        if (d->creds[i].revoked_ms == 0)
            return false;
    return true;
}

/* ---- verdicts --------------------------------------------------------------------------- */

static int refuse(struct auth *a, struct auth_verdict *v, const char *code, unsigned status,
                  const char *fmt, ...) __attribute__((format(printf, 5, 6)));

static int refuse(struct auth *a, struct auth_verdict *v, const char *code, unsigned status,
                  const char *fmt, ...)
{
    v->code = code;
    v->http_status = status;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(v->reason, sizeof v->reason, fmt, ap);
    va_end(ap);
    atomic_fetch_add(&a->rejected, 1);
    return -1;
}

bool auth_looks_like_jws(const char *body, size_t len)
{
    /* A JWS header is a JSON object, '{"', whose base64url starts "eyJ"; a JSON body starts
     * with '{' or '[' and line protocol with a measurement name, which could start "eyJ"
     * only by accident, and then has a space or a comma before any dot. */
    if (len < 5 || memcmp(body, "eyJ", 3) != 0)
        return false;
    size_t scan = len < 700 ? len : 700; /* a header of JWS_MAX_HEADER bytes encodes to 683 */
    const char *dot = memchr(body, '.', scan);
    if (dot == NULL)
        return false;
    size_t head = (size_t)(dot - body);
    return memchr(body, ' ', head) == NULL && memchr(body, ',', head) == NULL;
}

int auth_open_jws(struct auth *a, const char *body, size_t len, size_t max_payload, int64_t now_ms,
                  char *out, size_t cap, size_t *payload_len, struct auth_verdict *v)
{
    memset(v, 0, sizeof *v);
    v->how = AUTH_SIGNED;
    *payload_len = 0;
    struct jws_token t;
    struct jws_limits lim = {.max_payload = max_payload, .require_kid = true};
    char why[200];
    enum jws_error je = jws_parse(body, len, &lim, &t, why, sizeof why);
    if (je != JWS_OK) {
        snprintf(v->device, sizeof v->device, "%s", t.kid);
        return refuse(a, v, jws_error_name(je), je == JWS_ETOO_LARGE ? 413 : 401, "%s", why);
    }
    snprintf(v->device, sizeof v->device, "%s", t.kid);
    struct kr_device d;
    if (!lookup(a, t.kid, &d))
        return refuse(a, v, "unknown_key", 401,
                      "device '%s' has no key: provision it with `canary device add`", t.kid);
    if (all_revoked(&d)) {
        OPENSSL_cleanse(&d, sizeof d);
        return refuse(a, v, "revoked", 403, "the credentials of device '%s' are revoked", t.kid);
    }
    int rc = -1;
    bool expired_match = false;
    for (unsigned i = 0; i < d.n && rc != 0; i++) {
        const struct kr_cred *c = &d.creds[i];
        if (c->kind != STORE_KEY_HMAC || !c->usable || c->revoked_ms != 0)
            continue;
        if (jws_verify_hs256(&t, c->secret, DEVKEY_LEN) != JWS_OK)
            continue;
        if (cred_valid(c, now_ms)) {
            rc = 0;
            v->key_version = c->version;
        } else {
            expired_match = true;
        }
    }
    OPENSSL_cleanse(&d, sizeof d);
    if (rc != 0)
        return expired_match
                   ? refuse(a, v, "expired_key", 401,
                            "signed with a key of device '%s' that was rotated out: use the new "
                            "key",
                            t.kid)
                   : refuse(a, v, "bad_signature", 401,
                            "the signature does not match any valid key of device '%s'", t.kid);
    long n = jws_payload(&t, out, cap);
    if (n < 0 || (size_t)n >= cap)
        return refuse(a, v, "too_large", 413, "the JWS payload does not fit");
    out[n] = '\0';
    *payload_len = (size_t)n;
    return 0;
}

/* True when hash matches a valid token of d (every candidate is compared, in constant
 * time each). */
static bool token_matches(const struct kr_device *d, const uint8_t hash[DEVKEY_HASH_LEN],
                          int64_t now_ms, uint32_t *version)
{
    bool ok = false;
    for (unsigned i = 0; i < d->n; i++) {
        const struct kr_cred *c = &d->creds[i];
        if (c->kind == STORE_KEY_TOKEN && cred_valid(c, now_ms) &&
            CRYPTO_memcmp(c->secret, hash, DEVKEY_HASH_LEN) == 0) {
            ok = true;
            *version = c->version;
        }
    }
    return ok;
}

int auth_check_batch(struct auth *a, const struct ingest_batch *b, const char *bearer,
                     size_t bearer_len, int64_t now_ms, struct auth_verdict *v)
{
    uint8_t hash[DEVKEY_HASH_LEN];
    if (v->how == AUTH_BEARER)
        devkey_token_hash(bearer, bearer_len, hash);
    const char *checked = NULL; /* the device last checked (batches name one, usually) */
    for (size_t i = 0; i < b->n; i++) {
        const char *dev = b->readings[i].device;
        if (b->status[i] != READING_PENDING || dev == NULL)
            continue;
        if (checked != NULL && strcmp(checked, dev) == 0)
            continue;
        if (v->how == AUTH_SIGNED) {
            if (strcmp(dev, v->device) != 0)
                return refuse(a, v, "device_mismatch", 403,
                              "reading %zu names device '%.64s' but is signed by '%s'", i, dev,
                              v->device);
            checked = dev;
            continue;
        }
        struct kr_device d;
        bool has = lookup(a, dev, &d);
        snprintf(v->device, sizeof v->device, "%s", dev);
        if (v->how == AUTH_BEARER) {
            uint32_t version = 0;
            bool ok = has && !all_revoked(&d) && token_matches(&d, hash, now_ms, &version);
            bool revoked = has && all_revoked(&d);
            OPENSSL_cleanse(&d, sizeof d);
            if (!ok)
                return revoked
                           ? refuse(a, v, "revoked", 403,
                                    "the credentials of device '%s' are revoked", dev)
                           : refuse(a, v, "bad_token", 401,
                                    "the bearer token is not a valid token of device '%s'", dev);
            v->key_version = version;
        } else if (has) {
            bool revoked = all_revoked(&d);
            OPENSSL_cleanse(&d, sizeof d);
            if (revoked)
                return refuse(a, v, "revoked", 403, "the credentials of device '%s' are revoked",
                              dev);
            return refuse(a, v, "signature_required", 401,
                          "device '%s' has a key: its readings must be signed (JWS HS256) or "
                          "carry its bearer token",
                          dev);
        } else if (a->policy == AUTH_UNSIGNED_REJECT) {
            return refuse(a, v, "unsigned", 401,
                          "unsigned readings are refused (security.unsigned = reject): "
                          "provision device '%s' with `canary device add`",
                          dev);
        } else if (a->policy == AUTH_UNSIGNED_FLAG) {
            v->flagged = true;
        }
        checked = dev;
    }
    if (v->how == AUTH_SIGNED)
        atomic_fetch_add(&a->signed_ok, 1);
    else if (v->how == AUTH_BEARER)
        atomic_fetch_add(&a->bearer_ok, 1);
    else if (v->flagged)
        atomic_fetch_add(&a->unsigned_flagged, 1);
    else
        atomic_fetch_add(&a->unsigned_ok, 1);
    return 0;
}

bool auth_event_allow(struct auth *a, int64_t mono_ms, uint64_t *suppressed)
{
    pthread_mutex_lock(&a->event_lock);
    bool allow = rate_limit_allow(&a->events, mono_ms);
    *suppressed = allow ? rate_limit_take_suppressed(&a->events) : 0;
    pthread_mutex_unlock(&a->event_lock);
    return allow;
}

void auth_stats(struct auth *a, struct auth_stats *out)
{
    memset(out, 0, sizeof *out);
    if (a == NULL)
        return;
    out->signed_ok = atomic_load(&a->signed_ok);
    out->bearer_ok = atomic_load(&a->bearer_ok);
    out->unsigned_ok = atomic_load(&a->unsigned_ok);
    out->unsigned_flagged = atomic_load(&a->unsigned_flagged);
    out->rejected = atomic_load(&a->rejected);
    pthread_rwlock_rdlock(&a->lock);
    out->devices = a->snap->n;
    out->keys = a->snap->keys;
    out->unreadable = a->snap->unreadable;
    pthread_rwlock_unlock(&a->lock);
}
