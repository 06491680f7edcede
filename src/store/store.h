/* store.h — durable storage of readings, devices and alerts.
 *
 * One interface, engines behind it: SQLite (store_sqlite.c, the embedded default) now,
 * PostgreSQL later. SQL stays inside the engines; callers see plain structs.
 *
 * Handles. A handle is one database connection and is not thread-safe: canaryd gives its
 * single writer thread one read-write handle and each API thread a read-only one
 * (store_options.read_only). Readers never block the writer (SQLite WAL mode).
 *
 * Writing. store_write() commits one batch — readings, new devices, alert records and
 * alert events — in one transaction: after it returns 0 all of it is durable (it survives
 * kill -9 of canaryd; with synchronous=full also power loss); after it returns an error
 * none of it is stored and the call may be repeated.
 *
 * Layout. Readings live in per-device chunks (chunk.h) indexed by (device, first
 * timestamp), with per-series summaries (latest, min, max) and device state beside them.
 * A commit that holds many readings of a device (heavy load) writes them as a chunk at
 * once; the readings of devices with few in the commit (light load) go to an append-only
 * log, one row per commit and partition of the devices (sequential inserts: an indexed row
 * per reading manages a fraction of that, see bench_peers), which store_compact(), called
 * by the writer, folds into chunks and truncates — each step one transaction, so a crash
 * at any point loses nothing and duplicates nothing. Queries read chunks plus the (small)
 * uncompacted log. */

#ifndef CANARY_STORE_STORE_H
#define CANARY_STORE_STORE_H

#include "core/arena.h"
#include "core/command.h"
#include "core/event.h"
#include "core/reading.h"
#include "core/seq_window.h"
#include "decide/alert.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct store;

struct store_options {
    const char *path;            /* SQLite file (its directory must exist) */
    bool read_only;              /* a reader handle: no writes, no migrations */
    bool synchronous_full;       /* fsync every commit (survives power loss) */
    unsigned busy_timeout_ms;    /* wait for locks this long */
    unsigned chunk_max_readings; /* compaction: readings per chunk */
    int64_t chunk_max_span_ms;   /* compaction: time one chunk may span */
    bool manual_checkpoints;     /* the caller runs store_checkpoint(); commits do not */
};

/* Opens (and for a writer, creates and migrates) the database. Returns 0 and *out, or an
 * error with a message in err. */
int store_open(struct store **out, const struct store_options *opt, char *err, size_t errlen);

/* Closes the handle. NULL is allowed. */
void store_close(struct store *s);

/* The schema version this build writes (for /healthz and the docs). */
int store_schema_version(void);

/* ---------------------------------------------------------------- writing */

struct store_notification;

/* A batch to commit atomically. Every reading is accepted (parsed, verified, not a
 * duplicate) and scored. Devices unknown to the store are created (auto-registration). */
struct store_trust;

struct store_batch {
    const struct reading *const *readings;
    size_t n_readings;
    const struct alert *alerts; /* records to insert or update (by id), in order */
    size_t n_alerts;
    const struct alert_event *events;
    size_t n_events;
    const struct event_record *records; /* security and ingest events to insert */
    size_t n_records;
    const struct device_command *commands; /* commands to insert or update (by id) */
    size_t n_commands;
    const struct store_notification *notifications; /* outbox rows to add (INSERT OR IGNORE
                                                     * on dedupe_key), in the same commit */
    size_t n_notifications;
    const struct store_trust *trust; /* device trust rows to upsert (store_trust_put), in the
                                      * same commit as the readings that moved them */
    const bool *trust_keep;          /* per row: keep the stored reasons (NULL: none) */
    size_t n_trust;
};

/* Commits the batch. Returns 0, CANARY_EINVAL (a notification fails
 * store_notification_check(), or a trust row store_trust_put() would refuse; nothing stored)
 * or CANARY_EIO (nothing stored; safe to retry). */
int store_write(struct store *s, const struct store_batch *b, char *err, size_t errlen);

/* Moves part of the append log into chunks; see the layout note above. One call is one
 * step and one transaction: it folds the log rows of one partition of the devices (the
 * partition of the oldest row) until they hold max_readings readings (0 = all), so a
 * backlog is compacted in short steps between commits. *moved receives the number of
 * readings compacted; 0 means the log is empty. Returns 0 or CANARY_EIO. */
int store_compact(struct store *s, size_t max_readings, size_t *moved, char *err, size_t errlen);

/* Compacts the whole log, step after step, until it is empty (tools, tests, benchmarks:
 * canaryd's writer takes the steps one at a time between commits). */
int store_compact_all(struct store *s, size_t *moved, char *err, size_t errlen);

/* Copies committed pages from the write-ahead log into the database file. A PASSIVE
 * checkpoint (restart = false) never waits for, or blocks, the writer or readers; canaryd
 * runs it on its own thread with its own handle, so a checkpoint never stalls a commit
 * (the writer's handle does not checkpoint by itself: store_options.manual_checkpoints).
 * Under a steady stream of commits the log can still only start over when a checkpoint
 * has caught up completely, so once it grows large a RESTART checkpoint (restart = true)
 * briefly holds new commits, finishes the copy, and lets the next commit reuse the log
 * from its beginning. *wal_pages receives the pages in the log. Returns 0 or CANARY_EIO. */
int store_checkpoint(struct store *s, bool restart, int *wal_pages, char *err, size_t errlen);

/* The number of readings in the log, waiting for compaction. Returns 0 or CANARY_EIO. */
int store_log_backlog(struct store *s, uint64_t *readings, char *err, size_t errlen);

/* Deletes chunks whose newest reading is older than readings_before_ms and resolved
 * alerts (with their events) resolved before alerts_before_ms (0 = skip); with the alerts,
 * finished notifications (delivered, failed, cancelled) last updated before it. Deletes at most
 * max_rows rows per call. *deleted receives the count. Returns 0 or CANARY_EIO. */
int store_purge(struct store *s, int64_t readings_before_ms, int64_t alerts_before_ms,
                size_t max_rows, size_t *deleted, char *err, size_t errlen);

/* ---------------------------------------------------------------- devices */

#define STORE_TEXT_LEN 128

struct store_device {
    char id[READING_ID_BUF];
    char name[STORE_TEXT_LEN];
    char location[STORE_TEXT_LEN];
    char kind[STORE_TEXT_LEN];
    bool registered; /* created through the API, not by its first reading */
    int64_t created_ms;
    int64_t first_seen_ms;    /* 0 = never sent a reading */
    int64_t last_seen_ms;     /* receive time of the newest reading, 0 = never */
    uint64_t readings;        /* readings stored */
    struct seq_window window; /* seqs seen (for duplicate detection across restarts) */
    int64_t max_ts_ms;        /* newest reading timestamp (dedupe of readings without seq) */
};

/* Calls fn for every device, with its state including readings still in the log (this is
 * how workers rebuild their duplicate windows at start). Returns 0 or CANARY_EIO. */
int store_devices_load(struct store *s, void (*fn)(void *arg, const struct store_device *d),
                       void *arg, char *err, size_t errlen);

/* Lists devices ordered by id, after `after` (exclusive, "" for the start), at most limit.
 * Returns the count (>= 0) written to out, or CANARY_EIO. */
int store_devices_list(struct store *s, const char *after, struct store_device *out, size_t limit,
                       char *err, size_t errlen);

/* Fetches one device. Returns 0, CANARY_ENOTFOUND or CANARY_EIO. */
int store_device_get(struct store *s, const char *id, struct store_device *out, char *err,
                     size_t errlen);

/* Creates a registered device (for ingest.auto_register = false). Returns 0,
 * CANARY_ECONFLICT when it exists, or CANARY_EIO. */
int store_device_create(struct store *s, const struct store_device *d, int64_t now_ms, char *err,
                        size_t errlen);

/* Changes name, location and/or kind (NULL = keep). Returns 0, CANARY_ENOTFOUND or
 * CANARY_EIO. */
int store_device_update(struct store *s, const char *id, const char *name, const char *location,
                        const char *kind, char *err, size_t errlen);

/* ---------------------------------------------------------------- device trust
 *
 * Each device's trust as the tamper checks left it (sqlite_trust.c, table device_trust of
 * schema 7; src/tamper/, docs/TAMPER.md), so a quarantine survives a restart. canaryd's
 * writer puts the rows; the API and the pipeline's start read them. A device without a row
 * is trusted. */

#define STORE_TRUST_STATE_LEN   16
#define STORE_TRUST_REASONS_LEN 2048

struct store_trust {
    char device[READING_ID_BUF];
    char state[STORE_TRUST_STATE_LEN];     /* "trusted", "suspect" or "quarantined" */
    double score;                          /* 0..1 */
    int64_t since_ms;                      /* when the state was entered */
    int64_t updated_ms;                    /* when the row was last written */
    char reasons[STORE_TRUST_REASONS_LEN]; /* JSON array of findings (tamper.h), "" = none */
    int64_t released_ms;                   /* last release by a person, 0 = never */
    char released_by[ALERT_ACTOR_LEN];
};

/* Inserts or updates the rows t[0..n) in one transaction. With keep_reasons, an existing
 * row's reasons stay (the caller's copy is stale); released_ms = 0 keeps the row's release.
 * Returns 0, CANARY_EINVAL (a state that is not one of the three, a score outside 0..1:
 * nothing stored) or CANARY_EIO. */
int store_trust_put(struct store *s, const struct store_trust *t, size_t n, bool keep_reasons,
                    char *err, size_t errlen);

/* One device's row. Returns 0, CANARY_ENOTFOUND (no row: trusted) or CANARY_EIO. */
int store_trust_get(struct store *s, const char *device, struct store_trust *out, char *err,
                    size_t errlen);

/* Calls fn for every row that is not trusted (what a restarted canaryd restores), ordered
 * by device. Returns 0 or CANARY_EIO. */
int store_trust_each(struct store *s, void (*fn)(void *arg, const struct store_trust *t), void *arg,
                     char *err, size_t errlen);

/* ---------------------------------------------------------------- readings */

struct store_value {
    const char *metric;
    double value;
    float score;
    uint32_t flags;
};

struct store_reading {
    int64_t ts_ms;
    int64_t recv_ms;
    uint64_t seq;
    bool has_seq;
    uint32_t n_values;
    struct store_value *values;
};

struct store_readings_query {
    const char *device;
    const char *metric; /* only readings with this metric, and only its value; NULL = all */
    int64_t from_ms;    /* inclusive */
    int64_t to_ms;      /* inclusive */
    size_t limit;       /* at most this many readings */
    bool newest_first;  /* order, and which end the limit keeps */
};

struct store_readings_result {
    struct arena arena;         /* owns rows and their values */
    struct store_reading *rows; /* ordered by (ts, seq), ascending or descending */
    size_t n;
    bool more; /* the range holds more than limit readings */
};

/* Readings of a device in a time range. Returns 0 (an unknown device yields 0 rows),
 * or CANARY_EIO / CANARY_ENOMEM. Free the result with store_readings_free(). */
int store_readings(struct store *s, const struct store_readings_query *q,
                   struct store_readings_result *out, char *err, size_t errlen);
void store_readings_free(struct store_readings_result *r);

/* One bucket of a downsampled series. */
struct store_bucket {
    int64_t from_ms, to_ms; /* the bucket's time span */
    uint32_t count;         /* values in it (0: no data, min/max/avg undefined) */
    double min, max, sum;
    uint32_t anomalies; /* values flagged anomalous */
    uint32_t flags;     /* OR of the values' flags */
};

/* Downsamples one metric of a device over [from_ms, to_ms] into n equal buckets (for
 * charts). Whole chunks inside one bucket are taken from their statistics without
 * decoding. Returns 0, or CANARY_EIO / CANARY_ENOMEM. */
int store_downsample(struct store *s, const char *device, const char *metric, int64_t from_ms,
                     int64_t to_ms, struct store_bucket *buckets, size_t n, char *err,
                     size_t errlen);

/* Per-series summary: the latest value and the extremes recorded. */
struct store_series {
    char device[READING_ID_BUF];
    char metric[READING_METRIC_BUF];
    uint64_t count;
    int64_t last_ts_ms;
    double last_value;
    float last_score;
    uint32_t last_flags;
    double max_value;
    int64_t max_ts_ms;
    double min_value;
    int64_t min_ts_ms;
};

/* Summaries of every series of a device (device != NULL) or of all devices, ordered by
 * device and metric; includes readings still in the log. Calls fn per series. Returns 0
 * or CANARY_EIO. */
int store_series_list(struct store *s, const char *device,
                      void (*fn)(void *arg, const struct store_series *ser), void *arg, char *err,
                      size_t errlen);

/* ---------------------------------------------------------------- alerts */

struct store_alert_filter {
    int state;              /* enum alert_state, or -1 for any */
    int severity;           /* minimum enum alert_severity, or -1 */
    int kind;               /* enum alert_kind, or -1 */
    const char *device;     /* NULL = any */
    int64_t from_ms, to_ms; /* opened within; 0 = unbounded */
    uint64_t before_id;     /* pagination: ids below this (0 = from the newest) */
    size_t limit;
};

/* Alerts newest first. Returns the count written to out (>= 0), or CANARY_EIO. */
int store_alerts_list(struct store *s, const struct store_alert_filter *f, struct alert *out,
                      char *err, size_t errlen);

/* One alert. Returns 0, CANARY_ENOTFOUND or CANARY_EIO. */
int store_alert_get(struct store *s, uint64_t id, struct alert *out, char *err, size_t errlen);

/* The events of an alert, oldest first, at most cap. Returns the count or CANARY_EIO. */
int store_alert_events(struct store *s, uint64_t id, struct alert_event *out, size_t cap, char *err,
                       size_t errlen);

/* Alerts a restarted canaryd must keep deciding about: open, acknowledged, and those
 * resolved at or after resolved_since_ms. Returns 0 or CANARY_EIO. */
int store_alerts_live(struct store *s, int64_t resolved_since_ms,
                      void (*fn)(void *arg, const struct alert *a), void *arg, char *err,
                      size_t errlen);

/* The highest alert id ever stored (new ids continue from it). */
int store_alert_max_id(struct store *s, uint64_t *out, char *err, size_t errlen);

/* ---------------------------------------------------------------- events, commands */

struct store_event_filter {
    int category;           /* enum event_category, or -1 for any */
    const char *kind;       /* NULL = any */
    const char *device;     /* NULL = any */
    int64_t from_ms, to_ms; /* 0 = unbounded */
    uint64_t before_id;     /* pagination: ids below this (0 = from the newest) */
    size_t limit;
};

/* Events newest first. Returns the count written to out (>= 0), or CANARY_EIO. */
int store_events_list(struct store *s, const struct store_event_filter *f, struct event_record *out,
                      char *err, size_t errlen);

/* Commands of a device (device != NULL) or of an alert (alert_id != 0), newest first, ids
 * below before_id (0 = from the newest), at most limit. Returns the count or CANARY_EIO. */
int store_commands_list(struct store *s, const char *device, uint64_t alert_id, uint64_t before_id,
                        struct device_command *out, size_t limit, char *err, size_t errlen);

/* One command. Returns 0, CANARY_ENOTFOUND or CANARY_EIO. */
int store_command_get(struct store *s, uint64_t id, struct device_command *out, char *err,
                      size_t errlen);

/* The highest command id ever stored (new ids continue from it). */
int store_command_max_id(struct store *s, uint64_t *out, char *err, size_t errlen);

/* ---------------------------------------------------------------- notification outbox
 *
 * Every notification is written here before it is sent (sqlite_outbox.c). A row moves
 * pending -> sending (claimed by a delivery worker) -> delivered | failed, or back to
 * pending with a later next_attempt_ms (retry); pending rows of an acknowledged alert are
 * cancelled. dedupe_key is unique: adding a row whose key exists changes nothing, so one
 * alert produces one notification per step, recipient and channel however often it is
 * re-evaluated.
 *
 * Delivery is at-least-once: a crash between a provider accepting a message and
 * store_outbox_finish() leaves the row 'sending'; store_outbox_recover() at start puts it
 * back to 'pending' and it is sent again. */

#define STORE_NOTIFY_KEY_LEN     192  /* dedupe_key */
#define STORE_NOTIFY_ADDR_LEN    256  /* phone number, e-mail address or URL */
#define STORE_NOTIFY_PAYLOAD_LEN 4096 /* JSON text */
#define STORE_NOTIFY_ERROR_LEN   256

struct store_notification {
    uint64_t id;                            /* assigned by the store (0 when adding) */
    uint64_t alert_id;                      /* 0 for a test message */
    uint32_t step;                          /* escalation step index */
    char kind[16];                          /* "alert", "escalation", "all_clear", "test" */
    char channel[16];                       /* "sms", "whatsapp", "voice", "webhook", "email" */
    char recipient[STORE_TEXT_LEN];         /* recipient name from the configuration */
    char address[STORE_NOTIFY_ADDR_LEN];    /* where to send it */
    char dedupe_key[STORE_NOTIFY_KEY_LEN];  /* "" = derived: alert/step/recipient/channel/kind */
    char payload[STORE_NOTIFY_PAYLOAD_LEN]; /* JSON: what to send */
    char status[16];         /* "pending", "sending", "delivered", "failed", "cancelled" */
    uint32_t attempts;       /* sends tried so far */
    int64_t next_attempt_ms; /* when a pending row is due */
    int64_t created_ms;
    int64_t updated_ms;
    char provider_id[STORE_TEXT_LEN]; /* the provider's message id once delivered */
    char last_error[STORE_NOTIFY_ERROR_LEN];
};

/* Checks a notification before it is added: kind, channel, non-empty recipient and
 * address, payload and key lengths. Returns 0 or CANARY_EINVAL with a message naming the
 * field. An empty dedupe_key is allowed (the store derives one). */
int store_notification_check(const struct store_notification *n, char *err, size_t errlen);

/* Adds a notification as 'pending' (status, attempts, provider_id and last_error of n are
 * ignored; created_ms and next_attempt_ms are taken from n, 0 = now_ms). Idempotent: when
 * the dedupe key exists nothing changes and *id (if not NULL) receives the existing row's
 * id, *added (if not NULL) false. Returns 0, CANARY_EINVAL or CANARY_EIO. */
int store_outbox_add(struct store *s, const struct store_notification *n, int64_t now_ms,
                     uint64_t *id, bool *added, char *err, size_t errlen);

/* Bits of a claim's channel mask, in the order of the channel names. */
#define STORE_CHANNEL_SMS      (1u << 0)
#define STORE_CHANNEL_WHATSAPP (1u << 1)
#define STORE_CHANNEL_VOICE    (1u << 2)
#define STORE_CHANNEL_WEBHOOK  (1u << 3)
#define STORE_CHANNEL_EMAIL    (1u << 4)

/* Claims up to limit pending rows due at now_ms (next_attempt_ms <= now_ms) of the channels
 * in channel_mask (0 = every channel), oldest due first (then by id): marks them
 * 'sending', counts the attempt, and copies them to out. Returns the count (>= 0) or
 * CANARY_EIO. */
int store_outbox_claim_due(struct store *s, int64_t now_ms, unsigned channel_mask,
                           struct store_notification *out, size_t limit, char *err, size_t errlen);

enum store_outbox_outcome {
    STORE_OUTBOX_DELIVERED = 0, /* the provider accepted it: 'delivered' */
    STORE_OUTBOX_RETRY,         /* try again at next_attempt_ms: back to 'pending' */
    STORE_OUTBOX_FAILED,        /* permanent failure: 'failed' */
    STORE_OUTBOX_CANCELLED,     /* not to be sent after all (acknowledged, rate limit):
                                   'cancelled', with the reason as its error */
};

/* Records the result of sending a claimed ('sending') row. provider_id and error may be
 * NULL. Returns 0, CANARY_ENOTFOUND (no such id), CANARY_ECONFLICT (the row is not
 * 'sending': finished twice, or cancelled meanwhile), CANARY_EINVAL or CANARY_EIO. */
int store_outbox_finish(struct store *s, uint64_t id, enum store_outbox_outcome outcome,
                        int64_t next_attempt_ms, const char *provider_id, const char *error,
                        int64_t now_ms, char *err, size_t errlen);

/* Cancels the pending rows of an alert of the given kind (NULL = every kind): called when
 * the alert is acknowledged, so its escalation stops. Rows already 'sending' finish.
 * *cancelled (if not NULL) receives the count. Returns 0 or CANARY_EIO. */
int store_outbox_cancel_alert(struct store *s, uint64_t alert_id, const char *kind, int64_t now_ms,
                              size_t *cancelled, char *err, size_t errlen);

/* Puts every 'sending' row back to 'pending', due at now_ms: call once at start, before
 * any worker claims (see the at-least-once note above). *recovered (if not NULL) receives
 * the count. Returns 0 or CANARY_EIO. */
int store_outbox_recover(struct store *s, int64_t now_ms, size_t *recovered, char *err,
                         size_t errlen);

/* When the next pending row of the channels in channel_mask (0 = any) is due: *due_ms
 * receives its next_attempt_ms, or INT64_MAX when nothing is pending. A read: it takes no
 * write lock, so idle delivery threads can poll it. Returns 0 or CANARY_EIO. */
int store_outbox_next_due(struct store *s, unsigned channel_mask, int64_t *due_ms, char *err,
                          size_t errlen);

/* How many notifications the recipient was delivered at or after since_ms (per-recipient
 * rate limits). Returns 0 or CANARY_EIO. */
int store_outbox_delivered_since(struct store *s, const char *recipient, int64_t since_ms,
                                 uint64_t *count, char *err, size_t errlen);

struct store_outbox_filter {
    const char *status;  /* NULL = any */
    uint64_t alert_id;   /* 0 = any */
    const char *channel; /* NULL = any */
    uint64_t before_id;  /* pagination: ids below this (0 = from the newest) */
    size_t limit;
};

/* Notifications newest first (by id). Returns the count written to out (>= 0), or
 * CANARY_EIO. */
int store_outbox_list(struct store *s, const struct store_outbox_filter *f,
                      struct store_notification *out, char *err, size_t errlen);

/* One notification. Returns 0, CANARY_ENOTFOUND or CANARY_EIO. */
int store_outbox_get(struct store *s, uint64_t id, struct store_notification *out, char *err,
                     size_t errlen);

/* ---------------------------------------------------------------- statistics */

struct store_stats {
    uint64_t devices;
    uint64_t readings_total; /* ever stored */
    uint64_t log_rows;       /* readings in the log, waiting for compaction */
    uint64_t chunks;
    uint64_t alerts_open;                        /* open + acknowledged */
    uint64_t alerts_by_severity[SEVERITY_COUNT]; /* open + acknowledged */
    uint64_t db_bytes;
};

int store_stats(struct store *s, struct store_stats *out, char *err, size_t errlen);

/* ---------------------------------------------------------------- device credentials */

/* One credential of a device (sqlite_keys.c). The material is never a plaintext secret:
 * an HMAC key sealed under the master key (verify/devkey.h, DEVKEY_SEALED_LEN bytes) or
 * the SHA-256 of a bearer token (32 bytes). A credential is valid at time t when
 * revoked_ms == 0 and (expires_ms == 0 or t < expires_ms). */
enum store_key_kind { STORE_KEY_HMAC = 0, STORE_KEY_TOKEN = 1 };

#define STORE_KEY_MATERIAL_MAX 64

struct store_device_key {
    char device[READING_ID_BUF];
    enum store_key_kind kind;
    uint32_t version; /* 1, 2, ... per device and kind; rotation adds the next */
    uint8_t material[STORE_KEY_MATERIAL_MAX];
    size_t material_len;
    int64_t created_ms;
    int64_t expires_ms; /* 0 = no end; set by a rotation to the end of the overlap */
    int64_t revoked_ms; /* 0 = not revoked */
};

/* "hmac" / "token". */
const char *store_key_kind_name(enum store_key_kind k);

/* The next version for a new credential of (device, kind): 1 + the highest so far.
 * Returns 0 or CANARY_EIO. */
int store_key_next_version(struct store *s, const char *device, enum store_key_kind kind,
                           uint32_t *out, char *err, size_t errlen);

/* Adds a credential (k->version from store_key_next_version) and, when overlap_until_ms is
 * not 0, ends every earlier valid one of that kind at overlap_until_ms (a rotation): one
 * transaction. Returns 0, CANARY_ECONFLICT (that version exists), CANARY_EINVAL or
 * CANARY_EIO. */
int store_key_add(struct store *s, const struct store_device_key *k, int64_t overlap_until_ms,
                  char *err, size_t errlen);

/* Calls fn for every credential (device NULL) or a device's, ordered by device, kind and
 * version. Returns 0 or CANARY_EIO. */
int store_keys_each(struct store *s, const char *device,
                    void (*fn)(void *arg, const struct store_device_key *k), void *arg, char *err,
                    size_t errlen);

/* Revokes every credential of a device that is not yet revoked; *n (may be NULL) counts
 * them. Returns 0 or CANARY_EIO. */
int store_keys_revoke(struct store *s, const char *device, int64_t now_ms, size_t *n, char *err,
                      size_t errlen);

/* ---- Access control: users, API tokens, dashboard sessions, the audit log (sqlite_users.c,
 * schema 6; docs/ACCESS.md). Nothing here sees a plaintext secret: passwords arrive as
 * scrypt strings (access/password.h), tokens and session ids as SHA-256 hashes. ---- */

enum store_role {
    STORE_ROLE_NONE = 0,
    STORE_ROLE_VIEWER = 1,
    STORE_ROLE_OPERATOR = 2,
    STORE_ROLE_ADMIN = 3
};

#define STORE_USER_NAME_BUF   65  /* 1..64 characters */
#define STORE_PASSWORD_BUF    160 /* the scrypt string */
#define STORE_SECRET_HASH_LEN 32  /* SHA-256 */
#define STORE_CSRF_BUF        48  /* base64url of 32 bytes, with NUL */
#define STORE_SOURCE_BUF      64  /* a client address */

/* "admin" / "operator" / "viewer" ("none" for STORE_ROLE_NONE). */
const char *store_role_name(enum store_role r);
/* Parses a role name. Returns 0 or CANARY_EINVAL. */
int store_role_parse(const char *s, enum store_role *out);
/* A user name: 1..64 of letters, digits and . _ @ -, starting with a letter or digit. */
bool store_user_name_valid(const char *s);

struct store_user {
    int64_t id;
    char name[STORE_USER_NAME_BUF];
    enum store_role role;
    char password_hash[STORE_PASSWORD_BUF];
    int64_t created_ms;
    int64_t updated_ms;
    int64_t disabled_ms; /* 0 = enabled */
};

/* Adds a user (u->id is set). Returns 0, CANARY_ECONFLICT (the name is taken),
 * CANARY_EINVAL or CANARY_EIO. */
int store_user_add(struct store *s, struct store_user *u, char *err, size_t errlen);
/* A user by name. Returns 0, CANARY_ENOTFOUND or CANARY_EIO. */
int store_user_get(struct store *s, const char *name, struct store_user *u, char *err,
                   size_t errlen);
/* Every user, by name. Returns 0 or CANARY_EIO. */
int store_users_each(struct store *s, void (*fn)(void *arg, const struct store_user *u), void *arg,
                     char *err, size_t errlen);
/* Counts users (all, and enabled admins). Returns 0 or CANARY_EIO. */
int store_users_count(struct store *s, int64_t *users, int64_t *enabled_admins, char *err,
                      size_t errlen);
/* Writes u's role, password hash, disabled_ms and updated_ms (by id). When revoke_sessions,
 * the user's sessions are deleted in the same transaction (a new password, a disabled user,
 * a lower role). Returns 0, CANARY_ENOTFOUND or CANARY_EIO. */
int store_user_update(struct store *s, const struct store_user *u, bool revoke_sessions, char *err,
                      size_t errlen);
/* Removes a user and their sessions. Returns 0, CANARY_ENOTFOUND or CANARY_EIO. */
int store_user_remove(struct store *s, int64_t id, char *err, size_t errlen);

struct store_api_token {
    int64_t id;
    int64_t user_id;                /* who made it; 0 = the admin token (api.admin_token) */
    char user[STORE_USER_NAME_BUF]; /* that user's name ("" for 0), when read */
    char name[STORE_USER_NAME_BUF]; /* a label ("grafana", "backup-script") */
    enum store_role role;
    uint8_t hash[STORE_SECRET_HASH_LEN];
    int64_t created_ms;
    int64_t expires_ms;   /* 0 = never */
    int64_t revoked_ms;   /* 0 = valid */
    int64_t last_used_ms; /* 0 = never; updated at most once a minute */
};

/* Adds a token (t->id is set). Returns 0, CANARY_ECONFLICT, CANARY_EINVAL or CANARY_EIO. */
int store_token_add(struct store *s, struct store_api_token *t, char *err, size_t errlen);
/* The token with this hash, whatever its state; *user_ok is false when the user who made it
 * was removed or disabled (such a token no longer works). Returns 0, CANARY_ENOTFOUND or
 * CANARY_EIO. */
int store_token_find(struct store *s, const uint8_t hash[STORE_SECRET_HASH_LEN],
                     struct store_api_token *t, bool *user_ok, char *err, size_t errlen);
/* Every token, newest first. Returns 0 or CANARY_EIO. */
int store_tokens_each(struct store *s, void (*fn)(void *arg, const struct store_api_token *t),
                      void *arg, char *err, size_t errlen);
/* Revokes a token. Returns 0, CANARY_ENOTFOUND (no such token, or already revoked: *t
 * tells which when found) or CANARY_EIO. */
int store_token_revoke(struct store *s, int64_t id, int64_t now_ms, char *err, size_t errlen);
/* Sets last_used_ms. Returns 0 or CANARY_EIO. */
int store_token_touch(struct store *s, int64_t id, int64_t now_ms, char *err, size_t errlen);

struct store_session {
    uint8_t id_hash[STORE_SECRET_HASH_LEN]; /* SHA-256 of the cookie's value */
    int64_t user_id;
    char csrf[STORE_CSRF_BUF]; /* the token state-changing requests must echo */
    char source[STORE_SOURCE_BUF];
    int64_t created_ms;
    int64_t expires_ms;
    int64_t last_seen_ms; /* updated at most once a minute */
};

/* Adds a session; expired ones (expires_ms or last_seen before idle_before_ms) are deleted
 * in the same transaction. Returns 0 or CANARY_EIO. */
int store_session_add(struct store *s, const struct store_session *ss, int64_t now_ms,
                      int64_t idle_before_ms, char *err, size_t errlen);
/* A session and its user by hash. Returns 0, CANARY_ENOTFOUND or CANARY_EIO. */
int store_session_find(struct store *s, const uint8_t hash[STORE_SECRET_HASH_LEN],
                       struct store_session *ss, struct store_user *u, char *err, size_t errlen);
int store_session_touch(struct store *s, const uint8_t hash[STORE_SECRET_HASH_LEN], int64_t now_ms,
                        char *err, size_t errlen);
/* Deletes a session (logout). Returns 0 (also when there was none) or CANARY_EIO. */
int store_session_delete(struct store *s, const uint8_t hash[STORE_SECRET_HASH_LEN], char *err,
                         size_t errlen);

#define STORE_AUDIT_ACTION_BUF 160
#define STORE_AUDIT_TARGET_BUF 128
#define STORE_AUDIT_DETAIL_BUF 256

struct store_audit {
    int64_t id;
    int64_t ts_ms;
    char actor[STORE_USER_NAME_BUF + 8]; /* user name, "token:<name>", "admin-token", "-" */
    char role[16];
    char source[STORE_SOURCE_BUF];
    char action[STORE_AUDIT_ACTION_BUF]; /* "POST /api/v1/alerts/7/ack" */
    char target[STORE_AUDIT_TARGET_BUF];
    unsigned status;
    char detail[STORE_AUDIT_DETAIL_BUF];
};

/* Retention of access data: deletes audit rows older than audit_before_ms (0 = none) and
 * sessions that ended (expired) before sessions_before_ms (0 = none), at most max_rows of
 * each per call; *deleted receives the count. Returns 0 or CANARY_EIO. */
int store_purge_access(struct store *s, int64_t audit_before_ms, int64_t sessions_before_ms,
                       size_t max_rows, size_t *deleted, char *err, size_t errlen);

/* Appends an audit row (a->id is set). Returns 0 or CANARY_EIO. */
int store_audit_add(struct store *s, struct store_audit *a, char *err, size_t errlen);
/* Up to limit rows with id < before (0 = from the newest), newest first. Returns 0 or
 * CANARY_EIO; *n counts the rows given to fn. */
int store_audit_each(struct store *s, uint64_t before, size_t limit,
                     void (*fn)(void *arg, const struct store_audit *a), void *arg, size_t *n,
                     char *err, size_t errlen);

#endif
