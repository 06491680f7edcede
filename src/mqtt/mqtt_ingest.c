/* mqtt_ingest.c — from MQTT messages to pipeline jobs, without losing one.
 *
 * On the connection thread (ingest_on_message): classify the topic; a reading message is
 * appended to the journal and queued, and the callback returns — libmosquitto sends the
 * PUBACK after that. If the journal cannot take it (disk full), the callback instead waits
 * until the message is committed, so the acknowledgement still means "safe". When the
 * queue holds QUEUE_MAX_BYTES the callback waits for room: the broker then holds the
 * messages (TCP back-pressure), nothing is dropped.
 *
 * On the flusher thread: up to mqtt.batch_max messages, or whatever waited batch_wait_ms,
 * become one pipeline job: each payload is parsed by the HTTP parser (ingest_parse_json:
 * one reading or an array), every reading must name the device of its topic (else it is
 * rejected and a security event recorded), verify_batch() checks timestamps and ranges,
 * and the parsed batches are merged into one. When the job is committed the journal is
 * released up to its last message. Jobs are released in submission order.
 *
 * Bad input never stops the subscriber: it is counted, logged (rate-limited), and stored
 * as an event (core/event.h) — at most EVENT_RATE per second with bursts of EVENT_BURST;
 * the rest are counted in one "suppressed" event. */
#include "mqtt/mqtt_internal.h"

#include "core/clock.h"
#include "core/error.h"
#include "core/log.h"
#include "ingest/ingest.h"
#include "mqtt/mqtt_topic.h"
#include "verify/auth.h"
#include "verify/device_limit.h"
#include "verify/verify.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define QUEUE_MAX_BYTES (64u << 20)
#define FIFO_CAP        4096
#define TICK_MS         200
#define EVENT_RATE      10.0
#define EVENT_BURST     100.0
#define BUSY_RETRY_MS   2

/* A job of MQTT messages. */
struct mqtt_job {
    struct job job; /* first */
    struct mqtt *m;
    size_t fifo_slot;
    uint64_t last_seqno;
    uint64_t unjournaled;
    bool *replay_watch; /* per reading of job.batch: a duplicate of it is a `replay` event */
};

/* The broker redelivers unacknowledged QoS 1 messages right after canaryd (re)connects; a
 * signed duplicate arriving within this window of the CONNECT is taken for such a
 * redelivery, not recorded as a replay. */
#define REDELIVERY_WINDOW_MS 10000

/* A fire-and-forget job of records. */
struct records_job {
    struct job job;
    struct event_record *records;
    struct device_command *commands;
};

static void sleep_ms(long ms)
{
    struct timespec ts = {ms / 1000, (ms % 1000) * 1000000L};
    nanosleep(&ts, NULL);
}

static void timespec_in(struct timespec *ts, int64_t ms)
{
    clock_gettime(CLOCK_REALTIME, ts);
    ts->tv_sec += ms / 1000;
    ts->tv_nsec += (ms % 1000) * 1000000L;
    if (ts->tv_nsec >= 1000000000L) {
        ts->tv_sec++;
        ts->tv_nsec -= 1000000000L;
    }
}

/* ---- records and events ---------------------------------------------------------------- */

static void records_done(struct job *job)
{
    struct records_job *r = (struct records_job *)job;
    if (job->result != 0)
        log_error("mqtt.records_lost", "events=%zu commands=%zu reason=store_unavailable",
                  job->n_records, job->n_commands);
    free(r->records);
    free(r->commands);
    free(r);
}

void ingest_store_records(struct mqtt *m, const struct event_record *records, size_t n_records,
                          const struct device_command *commands, size_t n_commands)
{
    struct records_job *r = calloc(1, sizeof *r);
    if (r == NULL)
        return;
    if (n_records > 0 && (r->records = malloc(n_records * sizeof *records)) != NULL)
        memcpy(r->records, records, n_records * sizeof *records);
    if (n_commands > 0 && (r->commands = malloc(n_commands * sizeof *commands)) != NULL)
        memcpy(r->commands, commands, n_commands * sizeof *commands);
    r->job.kind = JOB_RECORDS;
    r->job.records = r->records;
    r->job.n_records = r->records != NULL ? n_records : 0;
    r->job.commands = r->commands;
    r->job.n_commands = r->commands != NULL ? n_commands : 0;
    r->job.done = records_done;
    for (int tries = 0;; tries++) {
        int rc = pipeline_submit(m->pipeline, &r->job);
        if (rc == 0)
            return;
        if (rc != CANARY_EBUSY || tries > 1000) {
            log_error("mqtt.records_lost", "events=%zu commands=%zu reason=%s", n_records,
                      n_commands, rc == CANARY_EBUSY ? "overloaded" : "stopping");
            records_done(&r->job);
            return;
        }
        sleep_ms(BUSY_RETRY_MS);
    }
}

void ingest_event(struct mqtt *m, enum event_category cat, const char *kind, const char *device,
                  const char *topic, const char *fmt, ...)
{
    struct event_record ev[2];
    memset(ev, 0, sizeof ev);
    size_t n = 0;
    pthread_mutex_lock(&m->lock);
    int64_t mono = clock_mono_ms();
    bool allow = rate_limit_allow(&m->event_limit, mono);
    uint64_t suppressed = allow ? rate_limit_take_suppressed(&m->event_limit) : 0;
    pthread_mutex_unlock(&m->lock);
    int64_t now = clock_wall_ms();
    if (!allow) {
        atomic_fetch_add(&m->suppressed, 1);
        return;
    }
    if (suppressed > 0) {
        struct event_record *s = &ev[n++];
        s->ts_ms = now;
        s->category = EVENT_INGEST;
        snprintf(s->kind, sizeof s->kind, "suppressed");
        snprintf(s->source, sizeof s->source, "mqtt");
        snprintf(s->detail, sizeof s->detail,
                 "%llu events were not stored individually: more than %.0f a second arrived",
                 (unsigned long long)suppressed, EVENT_RATE);
        s->count = (uint32_t)(suppressed > UINT32_MAX ? UINT32_MAX : suppressed);
    }
    struct event_record *e = &ev[n++];
    e->ts_ms = now;
    e->category = cat;
    e->count = 1;
    snprintf(e->kind, sizeof e->kind, "%s", kind);
    snprintf(e->device, sizeof e->device, "%s", device != NULL ? device : "");
    snprintf(e->source, sizeof e->source, "mqtt %.150s", topic != NULL ? topic : "");
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(e->detail, sizeof e->detail, fmt, ap);
    va_end(ap);
    log_warn("mqtt.event", "category=%s kind=%s device=%s source=\"%s\" detail=\"%s\"",
             event_category_name(cat), e->kind, e->device, e->source, e->detail);
    ingest_store_records(m, ev, n, NULL, 0);
}

/* ---- the connection thread's side ------------------------------------------------------ */

static void device_of(const struct mqtt_topic *t, char *out)
{
    memcpy(out, t->device, t->device_len);
    out[t->device_len] = '\0';
}

static void link_done(struct job *job)
{
    free(job);
}

static void handle_status(struct mqtt *m, const struct mqtt_topic *t, const char *topic,
                          const char *payload, size_t len)
{
    char device[READING_ID_BUF];
    device_of(t, device);
    if (len == 0)
        return; /* a retained status being cleared */
    enum device_link link = LINK_UNKNOWN;
    if (len == 6 && memcmp(payload, "online", 6) == 0)
        link = LINK_ONLINE;
    else if (len == 7 && memcmp(payload, "offline", 7) == 0)
        link = LINK_OFFLINE;
    else if (len == 8 && memcmp(payload, "sleeping", 8) == 0)
        link = LINK_SLEEPING;
    if (link == LINK_UNKNOWN) {
        atomic_fetch_add(&m->rejected, 1);
        ingest_event(m, EVENT_INGEST, "bad_status", device, topic,
                     "a status must be online, offline or sleeping (%zu bytes received)", len);
        return;
    }
    int64_t now = clock_wall_ms();
    mqtt_set_link(m, device, link, now);
    struct job *job = calloc(1, sizeof *job);
    if (job == NULL)
        return;
    job->kind = JOB_DEVICE_LINK;
    snprintf(job->device, sizeof job->device, "%s", device);
    job->link = link;
    job->link_ms = now;
    job->done = link_done;
    if (pipeline_submit(m->pipeline, job) != 0)
        free(job);
}

/* Appends a message to the flusher's queue. Caller holds q_lock. */
static void queue_append(struct mqtt *m, struct pending_msg *msg)
{
    msg->next = NULL;
    if (m->q_tail != NULL)
        m->q_tail->next = msg;
    else
        m->q_head = msg;
    m->q_tail = msg;
    if (m->q_count == 0)
        m->q_oldest_ms = clock_mono_ms();
    m->q_count++;
    m->q_bytes += msg->topic_len + msg->payload_len + sizeof *msg;
}

static void queue_push_msg(struct mqtt *m, struct pending_msg *msg, bool journaled)
{
    pthread_mutex_lock(&m->q_lock);
    while (m->q_bytes > QUEUE_MAX_BYTES && !m->q_stop)
        pthread_cond_wait(&m->q_space, &m->q_lock);
    queue_append(m, msg);
    if (!journaled)
        m->unjournaled_waiting++;
    if (m->q_count == 1 || m->q_count >= m->cfg.mqtt.batch_max || !journaled)
        pthread_cond_signal(&m->q_wake);
    /* Not journaled: acknowledge only once it is committed. */
    while (!journaled && m->unjournaled_waiting > 0 && !m->q_stop)
        pthread_cond_wait(&m->q_space, &m->q_lock);
    pthread_mutex_unlock(&m->q_lock);
}

static struct pending_msg *new_msg(const char *topic, size_t topic_len, const void *payload,
                                   size_t len, uint64_t seqno, int64_t recv_ms)
{
    struct pending_msg *msg = malloc(sizeof *msg + topic_len + len + 2);
    if (msg == NULL)
        return NULL;
    msg->seqno = seqno;
    msg->recv_ms = recv_ms;
    msg->from_journal = false;
    msg->topic_len = topic_len;
    msg->payload_len = len;
    memcpy(msg->data, topic, topic_len);
    msg->data[topic_len] = '\0';
    if (len > 0)
        memcpy(msg->data + topic_len + 1, payload, len);
    msg->data[topic_len + 1 + len] = '\0';
    return msg;
}

static void handle_up(struct mqtt *m, const struct mqtt_topic *t, const char *topic,
                      const void *payload, size_t len, int qos)
{
    atomic_fetch_add(&m->readings_messages, 1);
    if (len > m->cfg.mqtt.max_payload) {
        char device[READING_ID_BUF];
        device_of(t, device);
        atomic_fetch_add(&m->rejected, 1);
        pipeline_count(m->pipeline, PC_BODIES_TOO_LARGE, 1);
        ingest_event(m, EVENT_INGEST, "oversized_payload", device, topic,
                     "a message of %zu bytes is larger than mqtt.max_payload (%u)", len,
                     m->cfg.mqtt.max_payload);
        return;
    }
    int64_t now = clock_wall_ms();
    size_t topic_len = strlen(topic);
    uint64_t seqno = 0;
    int rc = journal_append(m->journal, topic, topic_len, payload, len, now, (unsigned)qos, &seqno);
    if (rc != 0) {
        int64_t mono = clock_mono_ms();
        if (mono - atomic_load(&m->journal_failed_log_ms) > 10000) {
            atomic_store(&m->journal_failed_log_ms, mono);
            log_error("mqtt.journal_failed",
                      "path=%s action=\"acknowledging each message only after it is stored\"",
                      m->cfg.mqtt.journal);
        }
        seqno = 0;
    }
    struct pending_msg *msg = new_msg(topic, topic_len, payload, len, seqno, now);
    while (msg == NULL) { /* out of memory: wait rather than lose an acknowledged message */
        sleep_ms(10);
        msg = new_msg(topic, topic_len, payload, len, seqno, now);
    }
    queue_push_msg(m, msg, rc == 0);
}

void ingest_on_message(struct mqtt *m, const char *topic, const void *payload, size_t len, int qos)
{
    atomic_fetch_add(&m->messages, 1);
    struct mqtt_topic t;
    mqtt_topic_parse(m->cfg.mqtt.topic_prefix,
                     m->cfg.mqtt.ha_discovery ? m->cfg.mqtt.ha_prefix : "", topic,
                     m->cfg.ingest.max_device_len, &t);
    switch (t.kind) {
    case TOPIC_UP:
        handle_up(m, &t, topic, payload, len, qos);
        break;
    case TOPIC_STATUS:
        atomic_fetch_add(&m->status_messages, 1);
        handle_status(m, &t, topic, payload, len);
        break;
    case TOPIC_CMD_ACK: {
        atomic_fetch_add(&m->acks, 1);
        char device[READING_ID_BUF];
        device_of(&t, device);
        commands_on_ack(m, device, payload, len);
        break;
    }
    case TOPIC_HA_STATUS:
        if (len == 6 && memcmp(payload, "online", 6) == 0)
            atomic_store(&m->ha_rediscover_all, true);
        break;
    case TOPIC_INVALID:
        atomic_fetch_add(&m->rejected, 1);
        ingest_event(m, EVENT_INGEST, "bad_topic", "", topic, "%s", t.error);
        break;
    case TOPIC_IGNORED:
        break;
    }
}

/* ---- the flusher ------------------------------------------------------------------------ */

/* Releases finished jobs in submission order. Caller holds q_lock. */
static void advance_fifo(struct mqtt *m)
{
    uint64_t upto = 0;
    while (m->fifo_len > 0 && m->fifo[m->fifo_head].done) {
        if (m->fifo[m->fifo_head].last_seqno > upto)
            upto = m->fifo[m->fifo_head].last_seqno;
        m->fifo_head = (m->fifo_head + 1) % FIFO_CAP;
        m->fifo_len--;
    }
    if (upto > m->released && !m->release_frozen) {
        m->released = upto;
        journal_release(m->journal, upto);
    }
}

static void job_done(struct job *job)
{
    struct mqtt_job *mj = (struct mqtt_job *)job;
    struct mqtt *m = mj->m;
    const struct ingest_batch *b = &job->batch;
    for (size_t i = 0; i < b->n; i++) {
        if (b->status[i] == READING_UNKNOWN_DEVICE) {
            /* A reading reaches the pipeline only if it names its topic's device. */
            char topic[READING_ID_BUF + 80];
            snprintf(topic, sizeof topic, "%s/%s/up", m->cfg.mqtt.topic_prefix,
                     b->readings[i].device);
            ingest_event(m, EVENT_SECURITY, "unknown_device", b->readings[i].device, topic, "%s",
                         b->errors[i].reason ? b->errors[i].reason : "unknown device");
        } else if (b->status[i] == READING_DUPLICATE && mj->replay_watch != NULL &&
                   mj->replay_watch[i]) {
            char topic[READING_ID_BUF + 80];
            snprintf(topic, sizeof topic, "%s/%s/up", m->cfg.mqtt.topic_prefix,
                     b->readings[i].device);
            ingest_event(m, EVENT_SECURITY, "replay", b->readings[i].device, topic,
                         "a signed reading of device '%s' repeats seq %llu: a replayed message, "
                         "or the device re-sending after a reconnect",
                         b->readings[i].device, (unsigned long long)b->readings[i].seq);
        }
    }
    bool stored = true;
    for (size_t i = 0; i < b->n; i++)
        stored = stored && b->status[i] != READING_UNAVAILABLE;
    pthread_mutex_lock(&m->q_lock);
    if (!stored) {
        /* canaryd is stopping and the store refused: the journal keeps these for the next
         * start, so nothing from here on may be released. */
        m->release_frozen = true;
    }
    m->fifo[mj->fifo_slot].done = true;
    advance_fifo(m);
    m->unjournaled_waiting -= mj->unjournaled;
    pthread_cond_broadcast(&m->q_space);
    pthread_mutex_unlock(&m->q_lock);
    ingest_batch_free(&job->batch);
    free(mj);
}

/* Parses one message into tmp (already initialised). Returns false when the whole message
 * was refused (an event was recorded). */
static bool parse_message(struct mqtt *m, const struct pending_msg *msg, struct ingest_batch *tmp,
                          int64_t now, bool *replay_watch)
{
    *replay_watch = false;
    char device[READING_ID_BUF];
    const char *topic = msg->data;
    const char *payload = msg->data + msg->topic_len + 1;
    struct mqtt_topic t;
    mqtt_topic_parse(m->cfg.mqtt.topic_prefix, "", topic, m->cfg.ingest.max_device_len, &t);
    device_of(&t, device);
    const struct canary_config *c = &m->cfg;
    struct ingest_limits lim = {c->ingest.max_batch, c->ingest.max_metrics,
                                c->ingest.max_device_len, c->ingest.max_metric_len,
                                c->ingest.strict_fields};
    struct ingest_fatal fatal;
    /* Authenticity (verify/auth.h): a JWS payload is verified and unwrapped first. */
    struct auth *auth = pipeline_auth(m->pipeline);
    struct auth_verdict verdict;
    memset(&verdict, 0, sizeof verdict);
    size_t payload_len = msg->payload_len;
    if (auth_looks_like_jws(payload, payload_len)) {
        /* The payload lives in the message's arena, with the readings parsed from it: one
         * block holds both. */
        ingest_batch_size_for(tmp, payload_len / 2 * 3 + 2);
        char *unwrapped = arena_alloc(&tmp->arena, payload_len + 1);
        if (auth == NULL || unwrapped == NULL ||
            auth_open_jws(auth, payload, payload_len, c->mqtt.max_payload, now, unwrapped,
                          payload_len + 1, &payload_len, &verdict) != 0) {
            atomic_fetch_add(&m->rejected, 1);
            ingest_event(m, EVENT_SECURITY, auth ? verdict.code : "unknown_key", device, topic,
                         "%s", auth ? verdict.reason : "this canaryd has no keyring");
            return false;
        }
        payload = unwrapped;
    }
    int parsed = ingest_parse_json(payload, payload_len, &lim, msg->recv_ms, tmp, &fatal);
    if (parsed != 0) {
        atomic_fetch_add(&m->rejected, 1);
        pipeline_count(m->pipeline,
                       fatal.http_status == 413 ? PC_BODIES_TOO_LARGE : PC_BODIES_MALFORMED, 1);
        ingest_event(m, EVENT_INGEST, "malformed_payload", device, topic, "%s%s%s", fatal.reason,
                     fatal.field[0] ? " at " : "", fatal.field);
        return false;
    }
    size_t dl = strlen(device);
    for (size_t i = 0; i < tmp->n; i++) {
        const char *rd = tmp->readings[i].device;
        if (tmp->status[i] != READING_PENDING || rd == NULL)
            continue;
        if (strlen(rd) != dl || memcmp(rd, device, dl) != 0) {
            atomic_fetch_add(&m->mismatched, 1);
            ingest_event(m, EVENT_SECURITY, "topic_device_mismatch", device, topic,
                         "a reading from device '%.64s' was published on the topic of '%s'", rd,
                         device);
            ingest_batch_reject(tmp, i, "device",
                                "the reading names device '%.64s' but was published on the "
                                "topic of '%s'",
                                rd, device);
        }
    }
    if (auth != NULL && auth_check_batch(auth, tmp, NULL, 0, now, &verdict) != 0) {
        atomic_fetch_add(&m->rejected, 1);
        ingest_event(m, EVENT_SECURITY, verdict.code, device, topic, "%s", verdict.reason);
        for (size_t i = 0; i < tmp->n; i++)
            if (tmp->status[i] == READING_PENDING)
                ingest_batch_reject(tmp, i, "", "%s", verdict.reason);
        return true; /* parsed, but nothing of it goes on */
    }
    /* A signed message received now, away from a (re)connect, whose seq turns out to be seen
     * already is an attacker's replay or a device re-sending: job_done records it. */
    *replay_watch = verdict.how == AUTH_SIGNED && !msg->from_journal &&
                    msg->recv_ms - atomic_load(&m->connected_wall_ms) > REDELIVERY_WINDOW_MS;
    if (verdict.flagged) {
        ingest_batch_flag_all(tmp, FLAG_UNSIGNED);
        ingest_event(m, EVENT_SECURITY, "unsigned_reading", device, topic,
                     "an unsigned reading of device '%s' was accepted (security.unsigned = flag)",
                     device);
    }
    struct verify_policy policy = {(int64_t)c->ingest.max_past_s * 1000,
                                   (int64_t)c->ingest.max_future_s * 1000};
    verify_batch(tmp, &policy, now);
    uint64_t invalid = 0;
    for (size_t i = 0; i < tmp->n; i++) {
        if (tmp->status[i] != READING_INVALID)
            continue;
        invalid++;
        /* A signed reading outside the timestamp window: a held-back or replayed message. */
        bool stale = verdict.how == AUTH_SIGNED && strcmp(tmp->errors[i].field, "ts") == 0;
        if (stale)
            ingest_event(m, EVENT_SECURITY, "stale", device, topic, "ts %s", tmp->errors[i].reason);
        else if (strcmp(tmp->errors[i].field, "device") != 0 || tmp->readings[i].device == NULL)
            ingest_event(m, EVENT_INGEST, "invalid_reading", device, topic, "%s: %s",
                         tmp->errors[i].field, tmp->errors[i].reason);
    }
    if (invalid)
        pipeline_count(m->pipeline, PC_READINGS_INVALID, invalid);
    /* The per-device rate limit, after authenticity: a forged message costs the device nothing
     * (verify/device_limit.h). Over it, the message is dropped (it was acknowledged). */
    struct device_limit_refusal why;
    if (!device_limit_charge(pipeline_device_limit(m->pipeline), tmp, DEVICE_LIMIT_MQTT,
                             clock_mono_ms(), &why)) {
        ingest_event(m, EVENT_SECURITY, "rate_limited", device, topic,
                     "a message of %zu readings was dropped: more than %g readings a second "
                     "(limits.device_rate, bursts of %g)",
                     why.readings, c->limits.device_rate, c->limits.device_burst);
        for (size_t i = 0; i < tmp->n; i++)
            if (tmp->status[i] == READING_PENDING)
                ingest_batch_reject(tmp, i, "device", "rate limited (limits.device_rate)");
    }
    return true;
}

/* Builds one job from a list of messages and hands it to the pipeline. */
static void submit_messages(struct mqtt *m, struct pending_msg *list, size_t count)
{
    /* Out of memory: wait rather than lose acknowledged messages. */
    struct ingest_batch *tmp = calloc(count, sizeof *tmp);
    bool *watch = calloc(count, sizeof *watch);
    struct mqtt_job *mj = calloc(1, sizeof *mj);
    while (tmp == NULL || watch == NULL || mj == NULL) {
        free(tmp);
        free(watch);
        free(mj);
        sleep_ms(10);
        tmp = calloc(count, sizeof *tmp);
        watch = calloc(count, sizeof *watch);
        mj = calloc(1, sizeof *mj);
    }
    mj->m = m;
    int64_t now = clock_wall_ms();
    size_t total = 0, k = 0;
    for (struct pending_msg *msg = list; msg != NULL; msg = msg->next, k++) {
        ingest_batch_init(&tmp[k]);
        if (msg->seqno > mj->last_seqno)
            mj->last_seqno = msg->seqno;
        mj->unjournaled += msg->seqno == 0;
        if (parse_message(m, msg, &tmp[k], now, &watch[k]))
            total += tmp[k].n;
    }
    struct job *job = &mj->job;
    job->kind = JOB_INGEST;
    job->done = job_done;
    ingest_batch_init(&job->batch);
    while (total > 0 && ingest_batch_reserve(&job->batch, total) != 0)
        sleep_ms(10);
    while (total > 0 &&
           (mj->replay_watch = arena_calloc(&job->batch.arena, total * sizeof(bool))) == NULL)
        sleep_ms(10);
    size_t at = 0;
    for (size_t i = 0; i < count; i++) {
        for (size_t r = 0; r < tmp[i].n && at < total; r++, at++) {
            job->batch.readings[at] = tmp[i].readings[r];
            job->batch.status[at] = tmp[i].status[r];
            job->batch.errors[at] = tmp[i].errors[r];
            mj->replay_watch[at] = watch[i];
        }
        arena_adopt(&job->batch.arena, &tmp[i].arena);
        ingest_batch_free(&tmp[i]);
    }
    job->batch.is_array = true;
    free(tmp);
    free(watch);
    for (struct pending_msg *msg = list; msg != NULL;) {
        struct pending_msg *next = msg->next;
        free(msg);
        msg = next;
    }

    pthread_mutex_lock(&m->q_lock);
    while (m->fifo_len == FIFO_CAP)
        pthread_cond_wait(&m->q_space, &m->q_lock);
    mj->fifo_slot = (m->fifo_head + m->fifo_len) % FIFO_CAP;
    m->fifo[mj->fifo_slot].last_seqno = mj->last_seqno;
    m->fifo[mj->fifo_slot].done = false;
    m->fifo_len++;
    pthread_mutex_unlock(&m->q_lock);

    for (;;) {
        int rc = pipeline_submit(m->pipeline, job);
        if (rc == 0)
            return;
        if (rc == CANARY_ESTOPPED) {
            /* Cannot happen in canaryd (MQTT stops before the pipeline); the journal keeps
             * the messages for the next start. */
            log_error("mqtt.pipeline_stopped", "readings=%zu action=\"left in the journal\"",
                      job->batch.n);
            pthread_mutex_lock(&m->q_lock);
            m->release_frozen = true;
            pthread_mutex_unlock(&m->q_lock);
            job_done(job);
            return;
        }
        sleep_ms(BUSY_RETRY_MS);
    }
}

static void *flusher_main(void *arg)
{
    struct mqtt *m = arg;
    int64_t next_tick = clock_mono_ms() + TICK_MS;
    pthread_mutex_lock(&m->q_lock);
    for (;;) {
        int64_t now = clock_mono_ms();
        bool due = m->q_count >= m->cfg.mqtt.batch_max || m->unjournaled_waiting > 0 ||
                   (m->q_count > 0 && now - m->q_oldest_ms >= (int64_t)m->cfg.mqtt.batch_wait_ms);
        if (m->q_count > 0 && (due || m->q_stop)) {
            size_t take = 0;
            struct pending_msg *head = m->q_head, *last = NULL;
            size_t bytes = 0;
            for (struct pending_msg *p = head; p != NULL && take < m->cfg.mqtt.batch_max;
                 p = p->next) {
                last = p;
                take++;
                bytes += p->topic_len + p->payload_len + sizeof *p;
            }
            m->q_head = last->next;
            if (m->q_head == NULL)
                m->q_tail = NULL;
            last->next = NULL;
            m->q_count -= take;
            m->q_bytes -= bytes;
            m->q_oldest_ms = clock_mono_ms();
            pthread_cond_broadcast(&m->q_space);
            pthread_mutex_unlock(&m->q_lock);
            submit_messages(m, head, take);
            pthread_mutex_lock(&m->q_lock);
        } else if (m->q_stop) {
            break;
        } else {
            int64_t wait = m->q_count > 0
                               ? m->q_oldest_ms + (int64_t)m->cfg.mqtt.batch_wait_ms - now
                               : next_tick - now;
            if (wait > 0) {
                struct timespec ts;
                timespec_in(&ts, wait);
                pthread_cond_timedwait(&m->q_wake, &m->q_lock, &ts);
            }
        }
        if (clock_mono_ms() >= next_tick) {
            pthread_mutex_unlock(&m->q_lock);
            int64_t wall = clock_wall_ms();
            commands_tick(m, wall);
            if (m->cfg.mqtt.ha_discovery)
                ha_tick(m, wall);
            next_tick = clock_mono_ms() + TICK_MS;
            pthread_mutex_lock(&m->q_lock);
        }
    }
    /* Everything is submitted; wait for the last commits. */
    while (m->fifo_len > 0)
        pthread_cond_wait(&m->q_space, &m->q_lock);
    pthread_mutex_unlock(&m->q_lock);
    return NULL;
}

static int replay_one(void *arg, const struct journal_record *r)
{
    struct mqtt *m = arg;
    struct pending_msg *msg =
        new_msg(r->topic, r->topic_len, r->payload, r->payload_len, r->seqno, r->recv_ms);
    if (msg == NULL)
        return CANARY_ENOMEM;
    msg->from_journal = true;
    /* Straight onto the queue: the record is journaled already. Replay reads ahead of the
     * flusher by at most a few jobs. */
    atomic_fetch_add(&m->replayed, 1);
    pthread_mutex_lock(&m->q_lock);
    queue_append(m, msg);
    if (m->q_count >= m->cfg.mqtt.batch_max) {
        pthread_cond_signal(&m->q_wake);
        while (m->q_count >= m->cfg.mqtt.batch_max * 4u)
            pthread_cond_wait(&m->q_space, &m->q_lock);
    }
    pthread_mutex_unlock(&m->q_lock);
    return 0;
}

int ingest_start(struct mqtt *m, char *err, size_t errlen)
{
    rate_limit_init(&m->event_limit, EVENT_RATE, EVENT_BURST, clock_mono_ms());
    m->fifo = calloc(FIFO_CAP, sizeof *m->fifo);
    if (m->fifo == NULL) {
        snprintf(err, errlen, "out of memory");
        return CANARY_ENOMEM;
    }
    if (pthread_create(&m->flusher, NULL, flusher_main, m) != 0) {
        snprintf(err, errlen, "mqtt: cannot start the flusher thread");
        return CANARY_ENOMEM;
    }
    m->flusher_started = true;
    uint64_t last = journal_last_seqno(m->journal);
    if (last == 0)
        return CANARY_OK;
    int64_t t0 = clock_mono_ms();
    int rc = journal_replay(m->journal, replay_one, m, err, errlen);
    if (rc != 0)
        return rc;
    /* Wait until the replayed messages are committed, so that what the broker delivers next
     * comes after them (a device's seqs stay in order). */
    pthread_mutex_lock(&m->q_lock);
    pthread_cond_signal(&m->q_wake);
    while (m->released < last && (m->q_count > 0 || m->fifo_len > 0))
        pthread_cond_wait(&m->q_space, &m->q_lock);
    bool frozen = m->release_frozen;
    pthread_mutex_unlock(&m->q_lock);
    if (!frozen)
        journal_release(m->journal, last);
    log_info("mqtt.journal_replayed", "messages=%llu ms=%lld",
             (unsigned long long)atomic_load(&m->replayed), (long long)(clock_mono_ms() - t0));
    return CANARY_OK;
}

void ingest_stop(struct mqtt *m)
{
    if (!m->flusher_started)
        return;
    pthread_mutex_lock(&m->q_lock);
    m->q_stop = true;
    pthread_cond_broadcast(&m->q_wake);
    pthread_cond_broadcast(&m->q_space);
    pthread_mutex_unlock(&m->q_lock);
    pthread_join(m->flusher, NULL);
    m->flusher_started = false;
}
