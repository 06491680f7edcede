/* sqlite_open.c — opening the SQLite engine: pragmas, schema migrations, dictionaries.
 *
 * The schema is versioned with PRAGMA user_version; each entry of `migrations` moves the
 * database one version up inside a transaction, so a crash mid-migration leaves the old
 * version intact. Readers never migrate; a reader opening a database newer than this
 * build refuses with a clear message. */
#include "store/sqlite_internal.h"

#include "core/error.h"
#include "core/log.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const char *const migrations[] = {
    /* version 1: the initial schema */
    "CREATE TABLE meta(key TEXT PRIMARY KEY, value INTEGER NOT NULL) WITHOUT ROWID;"
    "INSERT INTO meta VALUES('readings_total', 0);"
    "CREATE TABLE metrics(id INTEGER PRIMARY KEY, name TEXT NOT NULL UNIQUE);"
    "CREATE TABLE devices("
    "  id INTEGER PRIMARY KEY,"
    "  key TEXT NOT NULL UNIQUE,"
    "  name TEXT NOT NULL DEFAULT '',"
    "  location TEXT NOT NULL DEFAULT '',"
    "  kind TEXT NOT NULL DEFAULT '',"
    "  registered INTEGER NOT NULL DEFAULT 0,"
    "  created_ms INTEGER NOT NULL,"
    "  first_seen_ms INTEGER NOT NULL DEFAULT 0,"
    "  last_seen_ms INTEGER NOT NULL DEFAULT 0,"
    "  readings INTEGER NOT NULL DEFAULT 0,"
    "  seq_started INTEGER NOT NULL DEFAULT 0,"
    "  seq_high INTEGER NOT NULL DEFAULT 0,"
    "  seq_seen INTEGER NOT NULL DEFAULT 0,"
    "  max_ts_ms INTEGER NOT NULL DEFAULT 0);"
    /* The append log: a row per commit (sqlite_log.c), no index but the rowid. */
    "CREATE TABLE reading_log("
    "  id INTEGER PRIMARY KEY,"
    "  n INTEGER NOT NULL,"
    "  data BLOB NOT NULL);"
    "CREATE TABLE chunks("
    "  id INTEGER PRIMARY KEY,"
    "  device_id INTEGER NOT NULL,"
    "  t_first INTEGER NOT NULL,"
    "  t_last INTEGER NOT NULL,"
    "  n INTEGER NOT NULL,"
    "  data BLOB NOT NULL,"
    "  stats BLOB NOT NULL);"
    "CREATE INDEX chunks_by_device_time ON chunks(device_id, t_first);"
    "CREATE INDEX chunks_by_last ON chunks(t_last);"
    "CREATE TABLE series("
    "  device_id INTEGER NOT NULL,"
    "  metric_id INTEGER NOT NULL,"
    "  count INTEGER NOT NULL,"
    "  last_ts_ms INTEGER NOT NULL,"
    "  last_value REAL NOT NULL,"
    "  last_score REAL NOT NULL,"
    "  last_flags INTEGER NOT NULL,"
    "  max_value REAL NOT NULL,"
    "  max_ts_ms INTEGER NOT NULL,"
    "  min_value REAL NOT NULL,"
    "  min_ts_ms INTEGER NOT NULL,"
    "  PRIMARY KEY(device_id, metric_id)) WITHOUT ROWID;"
    "CREATE TABLE alerts("
    "  id INTEGER PRIMARY KEY,"
    "  device_id INTEGER NOT NULL,"
    "  metric TEXT NOT NULL,"
    "  kind TEXT NOT NULL,"
    "  severity INTEGER NOT NULL,"
    "  state TEXT NOT NULL,"
    "  opened_ms INTEGER NOT NULL,"
    "  updated_ms INTEGER NOT NULL,"
    "  acknowledged_ms INTEGER NOT NULL DEFAULT 0,"
    "  acknowledged_by TEXT NOT NULL DEFAULT '',"
    "  resolved_ms INTEGER NOT NULL DEFAULT 0,"
    "  resolved_by TEXT NOT NULL DEFAULT '',"
    "  value REAL,"
    "  peak REAL,"
    "  limit_value REAL,"
    "  message TEXT NOT NULL DEFAULT '');"
    "CREATE INDEX alerts_by_state ON alerts(state, id);"
    "CREATE INDEX alerts_by_device ON alerts(device_id, id);"
    "CREATE TABLE alert_events("
    "  id INTEGER PRIMARY KEY,"
    "  alert_id INTEGER NOT NULL,"
    "  ts_ms INTEGER NOT NULL,"
    "  action TEXT NOT NULL,"
    "  severity INTEGER NOT NULL,"
    "  actor TEXT NOT NULL,"
    "  note TEXT NOT NULL DEFAULT '');"
    "CREATE INDEX alert_events_by_alert ON alert_events(alert_id, id);",
    /* 2: security and ingest events; commands sent to devices. */
    "CREATE TABLE events("
    "  id INTEGER PRIMARY KEY,"
    "  ts_ms INTEGER NOT NULL,"
    "  category TEXT NOT NULL,"
    "  kind TEXT NOT NULL,"
    "  device TEXT NOT NULL,"
    "  source TEXT NOT NULL,"
    "  detail TEXT NOT NULL,"
    "  count INTEGER NOT NULL DEFAULT 1);"
    "CREATE INDEX events_by_ts ON events(ts_ms);"
    "CREATE TABLE commands("
    "  id INTEGER PRIMARY KEY,"
    "  device TEXT NOT NULL,"
    "  command TEXT NOT NULL,"
    "  state TEXT NOT NULL,"
    "  value REAL NOT NULL,"
    "  alert_id INTEGER NOT NULL,"
    "  actor TEXT NOT NULL,"
    "  created_ms INTEGER NOT NULL,"
    "  updated_ms INTEGER NOT NULL,"
    "  status TEXT NOT NULL,"
    "  error TEXT NOT NULL);"
    "CREATE INDEX commands_by_device ON commands(device, id);"
    "CREATE INDEX commands_by_alert ON commands(alert_id) WHERE alert_id != 0;",
    /* 3: the log in partitions of devices (sqlite_log.c), compacted one partition per step.
     * Rows written before hold every device; they sit in partition 0 and, being the
     * oldest, are compacted first, so each device's readings still fold in order. */
    "ALTER TABLE reading_log ADD COLUMN part INTEGER NOT NULL DEFAULT 0;"
    "CREATE INDEX reading_log_by_part ON reading_log(part, id);",
    /* 4: the notification outbox (sqlite_outbox.c). dedupe_key makes adding idempotent. */
    "CREATE TABLE notifications("
    "  id INTEGER PRIMARY KEY,"
    "  alert_id INTEGER NOT NULL,"
    "  step INTEGER NOT NULL,"
    "  kind TEXT NOT NULL CHECK(kind IN ('alert','escalation','all_clear','test')),"
    "  channel TEXT NOT NULL CHECK(channel IN ('sms','whatsapp','voice','webhook','email')),"
    "  recipient TEXT NOT NULL,"
    "  address TEXT NOT NULL,"
    "  dedupe_key TEXT NOT NULL UNIQUE,"
    "  payload TEXT NOT NULL,"
    "  status TEXT NOT NULL"
    "    CHECK(status IN ('pending','sending','delivered','failed','cancelled')),"
    "  attempts INTEGER NOT NULL DEFAULT 0,"
    "  next_attempt_ms INTEGER NOT NULL,"
    "  created_ms INTEGER NOT NULL,"
    "  updated_ms INTEGER NOT NULL,"
    "  provider_id TEXT NOT NULL DEFAULT '',"
    "  last_error TEXT NOT NULL DEFAULT '');"
    "CREATE INDEX notifications_due ON notifications(status, next_attempt_ms);"
    "CREATE INDEX notifications_by_alert ON notifications(alert_id, id);",
    /* 5: device credentials (sqlite_keys.c): HMAC keys sealed with AES-256-GCM under the
     * master key, bearer tokens as SHA-256 hashes (verify/devkey.h); never plaintext. */
    "CREATE TABLE device_keys("
    "  id INTEGER PRIMARY KEY,"
    "  device TEXT NOT NULL,"
    "  kind TEXT NOT NULL CHECK(kind IN ('hmac','token')),"
    "  version INTEGER NOT NULL,"
    "  material BLOB NOT NULL,"
    "  created_ms INTEGER NOT NULL,"
    "  expires_ms INTEGER NOT NULL DEFAULT 0,"
    "  revoked_ms INTEGER NOT NULL DEFAULT 0,"
    "  UNIQUE(device, kind, version));",
    /* 6: people and programs that use the API and dashboard (issue 7, access control):
     * users with a role and a slow-KDF password hash, API tokens (SHA-256 of a 256-bit
     * random secret) with their own role, dashboard sessions (SHA-256 of the cookie value),
     * and the audit log of state-changing calls. */
    "CREATE TABLE users("
    "  id INTEGER PRIMARY KEY,"
    "  name TEXT NOT NULL UNIQUE,"
    "  role TEXT NOT NULL CHECK(role IN ('admin','operator','viewer')),"
    "  password_hash TEXT NOT NULL,"
    "  created_ms INTEGER NOT NULL,"
    "  updated_ms INTEGER NOT NULL,"
    "  disabled_ms INTEGER NOT NULL DEFAULT 0);"
    "CREATE TABLE api_tokens("
    "  id INTEGER PRIMARY KEY,"
    "  user_id INTEGER NOT NULL DEFAULT 0,"
    "  name TEXT NOT NULL,"
    "  role TEXT NOT NULL CHECK(role IN ('admin','operator','viewer')),"
    "  token_hash BLOB NOT NULL UNIQUE,"
    "  created_ms INTEGER NOT NULL,"
    "  expires_ms INTEGER NOT NULL DEFAULT 0,"
    "  revoked_ms INTEGER NOT NULL DEFAULT 0,"
    "  last_used_ms INTEGER NOT NULL DEFAULT 0);"
    "CREATE TABLE sessions("
    "  id_hash BLOB PRIMARY KEY,"
    "  user_id INTEGER NOT NULL,"
    "  csrf TEXT NOT NULL,"
    "  source TEXT NOT NULL,"
    "  created_ms INTEGER NOT NULL,"
    "  expires_ms INTEGER NOT NULL,"
    "  last_seen_ms INTEGER NOT NULL) WITHOUT ROWID;"
    "CREATE INDEX sessions_by_user ON sessions(user_id);"
    "CREATE TABLE audit_log("
    "  id INTEGER PRIMARY KEY,"
    "  ts_ms INTEGER NOT NULL,"
    "  actor TEXT NOT NULL,"
    "  role TEXT NOT NULL,"
    "  source TEXT NOT NULL,"
    "  action TEXT NOT NULL,"
    "  target TEXT NOT NULL,"
    "  status INTEGER NOT NULL,"
    "  detail TEXT NOT NULL DEFAULT '');"
    "CREATE INDEX audit_by_ts ON audit_log(ts_ms);",
    /* 7: each device's trust (issue 7, tamper defense): the score the tamper checks keep,
     * quarantine and who released it, so a quarantine survives a restart. */
    "CREATE TABLE device_trust("
    "  device TEXT PRIMARY KEY,"
    "  state TEXT NOT NULL CHECK(state IN ('trusted','suspect','quarantined')),"
    "  score REAL NOT NULL,"
    "  since_ms INTEGER NOT NULL,"
    "  updated_ms INTEGER NOT NULL,"
    "  reasons TEXT NOT NULL DEFAULT '',"
    "  released_ms INTEGER NOT NULL DEFAULT 0,"
    "  released_by TEXT NOT NULL DEFAULT '') WITHOUT ROWID;",
};

#define SCHEMA_VERSION ((int)(sizeof migrations / sizeof migrations[0]))

static const char *const stmt_sql[ST_COUNT] = {
    [ST_BEGIN] = "BEGIN IMMEDIATE",
    [ST_COMMIT] = "COMMIT",
    [ST_ROLLBACK] = "ROLLBACK",
    [ST_LOG_INSERT] = "INSERT INTO reading_log(part, n, data) VALUES(?,?,?)",
    [ST_DEVICE_INSERT] = "INSERT INTO devices(key, created_ms) VALUES(?,?)"
                         " ON CONFLICT(key) DO NOTHING",
    [ST_METRIC_INSERT] = "INSERT INTO metrics(name) VALUES(?)",
    [ST_COUNTER_ADD] = "UPDATE meta SET value = value + ? WHERE key = ?",
    [ST_ALERT_UPSERT] =
        "INSERT INTO alerts(id, device_id, metric, kind, severity, state, opened_ms, updated_ms,"
        " acknowledged_ms, acknowledged_by, resolved_ms, resolved_by, value, peak, limit_value,"
        " message) VALUES(?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?)"
        " ON CONFLICT(id) DO UPDATE SET severity=excluded.severity, state=excluded.state,"
        " updated_ms=excluded.updated_ms, acknowledged_ms=excluded.acknowledged_ms,"
        " acknowledged_by=excluded.acknowledged_by, resolved_ms=excluded.resolved_ms,"
        " resolved_by=excluded.resolved_by, value=excluded.value, peak=excluded.peak,"
        " limit_value=excluded.limit_value, message=excluded.message",
    [ST_EVENT_INSERT] = "INSERT INTO alert_events(alert_id, ts_ms, action, severity, actor, note)"
                        " VALUES(?,?,?,?,?,?)",
    [ST_DEVICE_ID] = "SELECT id FROM devices WHERE key = ?",
    [ST_LOG_OLDEST] = "SELECT part FROM reading_log ORDER BY id LIMIT 1",
    [ST_LOG_SELECT] = "SELECT id, n, data FROM reading_log WHERE part = ? ORDER BY id",
    [ST_LOG_DELETE] = "DELETE FROM reading_log WHERE part = ? AND id <= ?",
    [ST_TAIL_SELECT] = "SELECT id, t_first, t_last, n, data FROM chunks WHERE device_id = ?"
                       " ORDER BY t_first DESC LIMIT 1",
    [ST_CHUNK_INSERT] = "INSERT INTO chunks(device_id, t_first, t_last, n, data, stats)"
                        " VALUES(?1,?2,?3,?4,?5,?6)",
    [ST_CHUNK_UPDATE] = "UPDATE chunks SET t_first=?2, t_last=?3, n=?4, data=?5, stats=?6"
                        " WHERE id=?7 AND device_id=?1",
    [ST_SERIES_UPSERT] =
        "INSERT INTO series(device_id, metric_id, count, last_ts_ms, last_value, last_score,"
        " last_flags, max_value, max_ts_ms, min_value, min_ts_ms) VALUES(?,?,?,?,?,?,?,?,?,?,?)"
        " ON CONFLICT(device_id, metric_id) DO UPDATE SET count = count + excluded.count,"
        " last_value = CASE WHEN excluded.last_ts_ms >= last_ts_ms THEN excluded.last_value"
        "   ELSE last_value END,"
        " last_score = CASE WHEN excluded.last_ts_ms >= last_ts_ms THEN excluded.last_score"
        "   ELSE last_score END,"
        " last_flags = CASE WHEN excluded.last_ts_ms >= last_ts_ms THEN excluded.last_flags"
        "   ELSE last_flags END,"
        " last_ts_ms = max(last_ts_ms, excluded.last_ts_ms),"
        " max_ts_ms = CASE WHEN excluded.max_value > max_value THEN excluded.max_ts_ms"
        "   ELSE max_ts_ms END,"
        " max_value = max(max_value, excluded.max_value),"
        " min_ts_ms = CASE WHEN excluded.min_value < min_value THEN excluded.min_ts_ms"
        "   ELSE min_ts_ms END,"
        " min_value = min(min_value, excluded.min_value)",
    [ST_DEVICE_WINDOW] = "SELECT seq_started, seq_high, seq_seen FROM devices WHERE id = ?",
    [ST_DEVICE_FOLD] = "UPDATE devices SET readings = readings + ?1,"
                       " first_seen_ms = CASE WHEN first_seen_ms = 0 OR first_seen_ms > ?2 THEN ?2"
                       "   ELSE first_seen_ms END,"
                       " last_seen_ms = max(last_seen_ms, ?3), seq_started = ?4, seq_high = ?5,"
                       " seq_seen = ?6, max_ts_ms = max(max_ts_ms, ?7) WHERE id = ?8",
    [ST_RECORD_INSERT] = "INSERT INTO events(ts_ms, category, kind, device, source, detail, count)"
                         " VALUES(?,?,?,?,?,?,?)",
    [ST_COMMAND_UPSERT] =
        "INSERT INTO commands(id, device, command, state, value, alert_id, actor, created_ms,"
        " updated_ms, status, error) VALUES(?,?,?,?,?,?,?,?,?,?,?)"
        " ON CONFLICT(id) DO UPDATE SET updated_ms=excluded.updated_ms, status=excluded.status,"
        " error=excluded.error",
    [ST_TOKEN_FIND] = "SELECT " SQ_TOKEN_COLS " FROM api_tokens t LEFT JOIN users u"
                      " ON u.id = t.user_id WHERE t.token_hash = ?",
    [ST_SESSION_FIND] = "SELECT s.id_hash, s.user_id, s.csrf, s.source, s.created_ms,"
                        " s.expires_ms, s.last_seen_ms,"
                        " u.id, u.name, u.role, u.password_hash, u.created_ms,"
                        " u.updated_ms, u.disabled_ms"
                        " FROM sessions s JOIN users u ON u.id = s.user_id"
                        " WHERE s.id_hash = ?",
    [ST_OUTBOX_INSERT] =
        "INSERT OR IGNORE INTO notifications(alert_id, step, kind, channel, recipient, address,"
        " dedupe_key, payload, status, attempts, next_attempt_ms, created_ms, updated_ms)"
        " VALUES(?,?,?,?,?,?,?,?,'pending',0,?,?,?)",
};

int store_schema_version(void)
{
    return SCHEMA_VERSION;
}

int sq_fail(struct store *s, char *err, size_t errlen, const char *what)
{
    if (err != NULL && errlen > 0)
        snprintf(err, errlen, "%s: %s", what, s->db ? sqlite3_errmsg(s->db) : "no database");
    return CANARY_EIO;
}

sqlite3_stmt *sq_stmt(struct store *s, enum stmt_id id)
{
    if (s->stmts[id] == NULL) {
        if (sqlite3_prepare_v3(s->db, stmt_sql[id], -1, SQLITE_PREPARE_PERSISTENT, &s->stmts[id],
                               NULL) != SQLITE_OK)
            return NULL;
    } else {
        sqlite3_reset(s->stmts[id]);
        sqlite3_clear_bindings(s->stmts[id]);
    }
    return s->stmts[id];
}

sqlite3_stmt *sq_prepare(struct store *s, const char *sql, char *err, size_t errlen)
{
    sqlite3_stmt *st = NULL;
    if (sqlite3_prepare_v2(s->db, sql, -1, &st, NULL) != SQLITE_OK) {
        sq_fail(s, err, errlen, "prepare");
        return NULL;
    }
    return st;
}

int sq_exec(struct store *s, const char *sql, char *err, size_t errlen)
{
    char *msg = NULL;
    if (sqlite3_exec(s->db, sql, NULL, NULL, &msg) != SQLITE_OK) {
        if (err != NULL)
            snprintf(err, errlen, "%s", msg ? msg : "sqlite error");
        sqlite3_free(msg);
        return CANARY_EIO;
    }
    return CANARY_OK;
}

int sq_blob_reserve(struct store *s, size_t n)
{
    if (n <= s->blob_cap)
        return CANARY_OK;
    size_t cap = s->blob_cap ? s->blob_cap : 4096;
    while (cap < n)
        cap *= 2;
    uint8_t *b = realloc(s->blob, cap);
    if (b == NULL)
        return CANARY_ENOMEM;
    s->blob = b;
    s->blob_cap = cap;
    return CANARY_OK;
}

static void free_metric_names(struct store *s)
{
    for (size_t i = 0; i < s->n_metric_names; i++)
        free(s->metric_names[i]);
    free(s->metric_names);
    s->metric_names = NULL;
    s->n_metric_names = 0;
}

void sq_drop_caches(struct store *s)
{
    strmap_free(&s->device_ids);
    strmap_free(&s->metric_ids);
    free_metric_names(s);
}

/* Loads the metric dictionary (id -> name and name -> id). */
static int load_metrics(struct store *s)
{
    free_metric_names(s);
    strmap_free(&s->metric_ids);
    sqlite3_stmt *st = sq_prepare(s, "SELECT id, name FROM metrics ORDER BY id", NULL, 0);
    if (st == NULL)
        return CANARY_EIO;
    int rc;
    while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
        int64_t id = sqlite3_column_int64(st, 0);
        const char *name = (const char *)sqlite3_column_text(st, 1);
        if (id < 0 || id > 1000000 || name == NULL)
            continue;
        if ((size_t)id >= s->n_metric_names) {
            char **grown = realloc(s->metric_names, ((size_t)id + 1) * sizeof *grown);
            if (grown == NULL)
                break;
            memset(grown + s->n_metric_names, 0,
                   ((size_t)id + 1 - s->n_metric_names) * sizeof *grown);
            s->metric_names = grown;
            s->n_metric_names = (size_t)id + 1;
        }
        s->metric_names[id] = strdup(name);
        strmap_put(&s->metric_ids, name, (void *)(intptr_t)id);
    }
    sqlite3_finalize(st);
    return rc == SQLITE_DONE ? CANARY_OK : CANARY_EIO;
}

const char *sq_metric_name(struct store *s, uint32_t id)
{
    if (id >= s->n_metric_names || s->metric_names[id] == NULL) {
        if (load_metrics(s) != 0)
            return NULL;
    }
    return id < s->n_metric_names ? s->metric_names[id] : NULL;
}

int sq_metric_id(struct store *s, const char *name, uint32_t *id, char *err, size_t errlen)
{
    void *v = strmap_get(&s->metric_ids, name);
    if (v == NULL) {
        if (load_metrics(s) != 0)
            return sq_fail(s, err, errlen, "load metrics");
        v = strmap_get(&s->metric_ids, name);
    }
    if (v == NULL)
        return CANARY_ENOTFOUND;
    *id = (uint32_t)(intptr_t)v;
    return CANARY_OK;
}

int sq_device_id(struct store *s, const char *key, int64_t *id, char *err, size_t errlen)
{
    void *v = strmap_get(&s->device_ids, key);
    if (v != NULL) {
        *id = (int64_t)(intptr_t)v;
        return CANARY_OK;
    }
    sqlite3_stmt *st = sq_stmt(s, ST_DEVICE_ID);
    if (st == NULL)
        return sq_fail(s, err, errlen, "prepare device lookup");
    sqlite3_bind_text(st, 1, key, -1, SQLITE_STATIC);
    int rc = sqlite3_step(st);
    if (rc == SQLITE_DONE)
        return CANARY_ENOTFOUND;
    if (rc != SQLITE_ROW)
        return sq_fail(s, err, errlen, "device lookup");
    *id = sqlite3_column_int64(st, 0);
    sqlite3_reset(st);
    if (strmap_put(&s->device_ids, key, (void *)(intptr_t)*id) != 0)
        return CANARY_ENOMEM;
    return CANARY_OK;
}

static int migrate(struct store *s, char *err, size_t errlen)
{
    sqlite3_stmt *st = sq_prepare(s, "PRAGMA user_version", err, errlen);
    if (st == NULL)
        return CANARY_EIO;
    int version = sqlite3_step(st) == SQLITE_ROW ? sqlite3_column_int(st, 0) : -1;
    sqlite3_finalize(st);
    if (version < 0)
        return sq_fail(s, err, errlen, "read schema version");
    if (version > SCHEMA_VERSION) {
        snprintf(err, errlen,
                 "%s has schema version %d, newer than this canary (%d): upgrade canary", s->path,
                 version, SCHEMA_VERSION);
        return CANARY_EINVAL;
    }
    for (int v = version; v < SCHEMA_VERSION; v++) {
        char sql[64];
        if (sq_exec(s, "BEGIN IMMEDIATE", err, errlen) != 0)
            return CANARY_EIO;
        snprintf(sql, sizeof sql, "PRAGMA user_version = %d", v + 1);
        if (sq_exec(s, migrations[v], err, errlen) != 0 || sq_exec(s, sql, err, errlen) != 0) {
            sq_exec(s, "ROLLBACK", NULL, 0);
            return CANARY_EIO;
        }
        if (sq_exec(s, "COMMIT", err, errlen) != 0)
            return CANARY_EIO;
        log_info("store.migrated", "path=%s version=%d", s->path, v + 1);
    }
    return CANARY_OK;
}

int store_open(struct store **out, const struct store_options *opt, char *err, size_t errlen)
{
    struct store *s = calloc(1, sizeof *s);
    if (s == NULL) {
        snprintf(err, errlen, "out of memory");
        return CANARY_ENOMEM;
    }
    s->opt = *opt;
    snprintf(s->path, sizeof s->path, "%s", opt->path);
    s->opt.path = s->path;
    strmap_init(&s->device_ids);
    strmap_init(&s->metric_ids);
    chunk_encoder_init(&s->enc);
    chunk_encoder_init(&s->log_enc);
    int flags = opt->read_only ? SQLITE_OPEN_READONLY : SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE;
    flags |= SQLITE_OPEN_NOMUTEX; /* a handle belongs to one thread */
    if (sqlite3_open_v2(opt->path, &s->db, flags, NULL) != SQLITE_OK) {
        snprintf(err, errlen, "cannot open %s: %s", opt->path,
                 s->db ? sqlite3_errmsg(s->db) : "out of memory");
        store_close(s);
        return CANARY_EIO;
    }
    sqlite3_busy_timeout(s->db, (int)opt->busy_timeout_ms);
    int rc = CANARY_OK;
    if (!opt->read_only) {
        /* The log file is cut back to 64 MB after a checkpoint, so it never keeps the size
         * of its largest burst. */
        char pragmas[320];
        snprintf(pragmas, sizeof pragmas,
                 "PRAGMA journal_mode=WAL; PRAGMA synchronous=%s; PRAGMA foreign_keys=OFF;"
                 "PRAGMA wal_autocheckpoint=%d; PRAGMA journal_size_limit=67108864;"
                 "PRAGMA cache_size=-65536;",
                 opt->synchronous_full ? "FULL" : "NORMAL", opt->manual_checkpoints ? 0 : 10000);

        rc = sq_exec(s, pragmas, err, errlen);
        if (rc == 0)
            rc = migrate(s, err, errlen);
    } else {
        sqlite3_stmt *st = sq_prepare(s, "PRAGMA user_version", err, errlen);
        int version = st != NULL && sqlite3_step(st) == SQLITE_ROW ? sqlite3_column_int(st, 0) : -1;
        sqlite3_finalize(st);
        if (version != SCHEMA_VERSION) {
            snprintf(err, errlen, "%s: schema version %d, expected %d", opt->path, version,
                     SCHEMA_VERSION);
            rc = CANARY_EINVAL;
        }
    }
    if (rc == 0 && load_metrics(s) != 0)
        rc = sq_fail(s, err, errlen, "load metrics");
    if (rc != 0) {
        store_close(s);
        return rc;
    }
    *out = s;
    return CANARY_OK;
}

void store_close(struct store *s)
{
    if (s == NULL)
        return;
    for (int i = 0; i < ST_COUNT; i++)
        sqlite3_finalize(s->stmts[i]);
    if (s->db != NULL)
        sqlite3_close(s->db);
    sq_drop_caches(s);
    chunk_encoder_free(&s->enc);
    chunk_encoder_free(&s->log_enc);
    free(s->log_devices);
    free(s->blob);
    free(s);
}

int store_checkpoint(struct store *s, bool restart, int *wal_pages, char *err, size_t errlen)
{
    int log = 0, done = 0;
    int rc = sqlite3_wal_checkpoint_v2(
        s->db, NULL, restart ? SQLITE_CHECKPOINT_RESTART : SQLITE_CHECKPOINT_PASSIVE, &log, &done);
    if (rc != SQLITE_OK && rc != SQLITE_BUSY)
        return sq_fail(s, err, errlen, "checkpoint");
    *wal_pages = log;
    return CANARY_OK;
}
