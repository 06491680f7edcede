/* sqlite_internal.h — what the SQLite engine's files share: the handle, the dictionaries
 * (device and metric names to ids) and small statement helpers. Not for use outside
 * src/store/. */
#ifndef CANARY_STORE_SQLITE_INTERNAL_H
#define CANARY_STORE_SQLITE_INTERNAL_H

#include "core/strmap.h"
#include "store/chunk.h"
#include "store/store.h"

#include <sqlite3.h>
#include <stdint.h>

/* Prepared statements, created on first use and kept for the handle's life. */
enum stmt_id {
    ST_BEGIN,
    ST_COMMIT,
    ST_ROLLBACK,
    ST_LOG_INSERT,
    ST_DEVICE_INSERT,
    ST_METRIC_INSERT,
    ST_COUNTER_ADD,
    ST_ALERT_UPSERT,
    ST_EVENT_INSERT,
    ST_DEVICE_ID,
    ST_LOG_OLDEST,
    ST_LOG_SELECT,
    ST_LOG_DELETE,
    ST_TAIL_SELECT,
    ST_CHUNK_INSERT,
    ST_CHUNK_UPDATE,
    ST_SERIES_UPSERT,
    ST_DEVICE_WINDOW,
    ST_DEVICE_FOLD,
    ST_RECORD_INSERT,
    ST_COMMAND_UPSERT,
    ST_OUTBOX_INSERT,
    ST_TOKEN_FIND,   /* every API call with a token ... */
    ST_SESSION_FIND, /* ... or a session cookie: prepared once, not per request */
    ST_COUNT
};

/* The columns of an API token row (sqlite_users.c token_row()). */
#define SQ_TOKEN_COLS                                                                              \
    "t.id, t.user_id, coalesce(u.name, ''), t.name, t.role, t.token_hash, t.created_ms,"           \
    " t.expires_ms, t.revoked_ms, t.last_used_ms,"                                                 \
    " t.user_id = 0 OR (u.id IS NOT NULL AND u.disabled_ms = 0)"

/* A device's id in the dictionary (the value stored in struct sqlite_store.devices). */
struct dict_device {
    int64_t id;
};

struct store {
    sqlite3 *db;
    struct store_options opt;
    char path[1024];
    sqlite3_stmt *stmts[ST_COUNT];
    struct strmap device_ids; /* device key -> (intptr_t) id; writer cache */
    struct strmap metric_ids; /* metric name -> (intptr_t) id */
    char **metric_names;      /* id -> name (index = id), reloaded on a miss */
    size_t n_metric_names;
    struct chunk_encoder enc;     /* reused by writes and compaction */
    struct chunk_encoder log_enc; /* the log row being built by a commit */
    int64_t *log_devices;         /* device of each reading in log_enc */
    size_t log_n, log_cap;
    uint8_t *blob; /* scratch for emitted chunks */
    size_t blob_cap;
};

/* Copies text column col of the current row into dst (truncated, NUL-terminated). */
void sq_copy_text(char *dst, size_t len, sqlite3_stmt *st, int col);

/* Writes a batch's event records and command upserts (sqlite_records.c), inside the
 * caller's transaction. Return 0 or CANARY_EIO. */
int sq_write_records(struct store *s, const struct store_batch *b, char *err, size_t errlen);

/* Adds the batch's notifications to the outbox (sqlite_outbox.c), inside the caller's
 * transaction, INSERT OR IGNORE on the dedupe key. Returns 0, CANARY_EINVAL (a bad row:
 * nothing should be committed) or CANARY_EIO. */
int sq_write_notifications(struct store *s, const struct store_batch *b, int64_t now_ms, char *err,
                           size_t errlen);

/* Trust rows (sqlite_trust.c): sq_trust_check() refuses a state that is not one of the three
 * or a score outside 0..1 (CANARY_EINVAL, naming the row); sq_write_trust() upserts them
 * inside the caller's transaction, keep[i] (or keep_all when keep is NULL) keeping a row's
 * stored reasons. Return 0 or an error code. */
int sq_trust_check(const struct store_trust *t, size_t n, char *err, size_t errlen);
int sq_write_trust(struct store *s, const struct store_trust *t, size_t n, const bool *keep,
                   bool keep_all, char *err, size_t errlen);

/* Formats an error into err: "<what>: <sqlite message>". Returns CANARY_EIO. */
int sq_fail(struct store *s, char *err, size_t errlen, const char *what);

/* Returns the cached prepared statement, preparing it on first use (reset and unbound). */
sqlite3_stmt *sq_stmt(struct store *s, enum stmt_id id);

/* Prepares a one-off statement. Returns NULL (with err filled) on failure. */
sqlite3_stmt *sq_prepare(struct store *s, const char *sql, char *err, size_t errlen);

/* Runs SQL without results. Returns 0 or CANARY_EIO. */
int sq_exec(struct store *s, const char *sql, char *err, size_t errlen);

/* Looks up a device's id by key (dictionary first, then the database). Returns 0 with
 * *id, CANARY_ENOTFOUND, or CANARY_EIO. */
int sq_device_id(struct store *s, const char *key, int64_t *id, char *err, size_t errlen);

/* Returns the name of a metric id, reloading the dictionary once on a miss; NULL if the
 * id is unknown (corruption). */
const char *sq_metric_name(struct store *s, uint32_t id);

/* Looks up a metric id by name (dictionary, then database). Returns 0, CANARY_ENOTFOUND
 * or CANARY_EIO. */
int sq_metric_id(struct store *s, const char *name, uint32_t *id, char *err, size_t errlen);

/* Makes sure the scratch blob holds n bytes. Returns 0 or CANARY_ENOMEM. */
int sq_blob_reserve(struct store *s, size_t n);

/* Forgets the device and metric caches (after a rolled-back transaction). */
void sq_drop_caches(struct store *s);

/* ---- The append log: one row per commit and partition (sqlite_log.c) ---- */

/* Devices are spread over LOG_PARTS partitions of the log (device id modulo LOG_PARTS);
 * one compaction step folds one partition, so it touches a fraction of the devices. */
#define LOG_PARTS 16

static inline int sq_log_part(int64_t device_id)
{
    return (int)(device_id % LOG_PARTS);
}

/* Starts a new log row. */
void sq_log_reset(struct store *s);

/* Adds a reading of device_id to the log row being built. Returns 0 or CANARY_ENOMEM. */
int sq_log_add(struct store *s, int64_t device_id, const struct chunk_reading *r);

/* Appends the log row (if it holds readings) to partition part in the current
 * transaction; every reading added must belong to that partition. */
int sq_log_flush(struct store *s, int part, char *err, size_t errlen);

/* Calls fn for every reading of a log row's data. Returns 0, CANARY_EINVAL for a corrupt
 * row, or the first non-zero value fn returned. */
int sq_log_each(const void *blob, size_t len,
                int (*fn)(void *arg, int64_t device_id, const struct chunk_reading *r), void *arg);

/* ---- Folding readings into chunks (sqlite_fold.c) ---- */

/* A reading on its way into a chunk: from the log, or straight from a commit. */
struct staged_reading {
    int64_t order;          /* arrival order (log id, or position in the commit) */
    struct chunk_reading r; /* values in the grouping's arena */
};

struct device_group {
    int64_t device_id;
    struct staged_reading **rows; /* arrival order until folded */
    size_t n, cap;
};

/* Readings grouped by device for one transaction. */
struct grouping {
    struct arena arena;
    struct device_group *groups;
    size_t n_groups, cap_groups;
    int32_t *index; /* device id -> group index + 1 (device ids are dense rowids) */
    size_t index_cap;
};

void grouping_init(struct grouping *g);
void grouping_free(struct grouping *g);

/* Adds a reading of device_id (values copied). Returns 0 or CANARY_ENOMEM. */
int grouping_add(struct grouping *g, int64_t device_id, int64_t order,
                 const struct chunk_reading *r);

/* Folds a device's readings into chunks (extending its newest chunk when merge_tail and the
 * readings continue it), its device row (count, first/last seen, seq window, newest ts)
 * and its series summaries, inside the current transaction. Returns 0 or an error. */
int sq_fold_group(struct store *s, struct device_group *g, bool merge_tail, char *err,
                  size_t errlen);

#endif
