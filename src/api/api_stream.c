/* api_stream.c — GET /api/v1/stream: what canaryd commits, pushed live to dashboards as
 * Server-Sent Events (https://html.spec.whatwg.org/multipage/server-sent-events.html).
 *
 * Promises:
 * - An idle stream costs no CPU. libmicrohttpd polls a callback response that has no data
 *   yet in a busy loop (FACTS.md), so a stream with nothing to send suspends its connection
 *   (MHD_suspend_connection from the content reader) and the commit listener resumes it when
 *   it queues an event. A heartbeat comment every STREAM_HEARTBEAT_S keeps proxies from
 *   closing it and finds clients that went away.
 * - The commit listener (the pipeline's writer thread) never blocks on a client: it formats
 *   each event once, appends it to a bounded ring of recent events and to each client's
 *   bounded buffer, and resumes suspended clients. A client whose buffer is full (it reads
 *   slower than canaryd commits) is dropped: its stream ends, and its EventSource reconnects.
 * - Catch-up: every event has an id "<epoch>-<n>" (epoch: when this canaryd started). A
 *   client reconnecting with Last-Event-ID gets the events it missed from the ring; when they
 *   are no longer there, or it comes from another canaryd run, it gets a `reset` event and
 *   should reload what it shows from the REST API.
 *
 * Events (data is JSON):
 *   hello     {"server_ms","last_id","stale_after_s","offline_after_s"} — first, no id
 *   readings  {"readings":[{"device","seq","ts_ms","recv_ms","values":{"gas_ppm":
 *              {"value","score","flags"}}}]} — the readings of one commit (split when large)
 *   alert     {"alert":{...as GET /api/v1/alerts/<id>},"events":[{"ts_ms","action",
 *              "severity","actor","note"}]} — an alert that changed in a commit
 *   devices   {"devices":[{"device","status","last_seen_ms"}]} — devices whose status
 *              changed: online with a reading after a silence (or the first since canaryd
 *              started), stale and offline after devices.stale_after_s / offline_after_s
 *              without one (checked every second); and devices whose MQTT link changed
 *              (their retained status topic), as {"device","connection":"online"|"offline"|
 *              "sleeping","connection_since_ms"}
 *   reset     {"reason"} — the missed events are gone: reload from the REST API
 *   ended     {"reason"} — the credential the stream was opened with no longer admits it
 *              (session expired or logged out, token revoked, user disabled; a user now
 *              exists where there was none): the stream ends after it, and reconnecting
 *              needs a valid credential. Checked every STREAM_RECHECK_S and at once after a
 *              logout, revocation or change of users through the API.
 *
 * Locking: one mutex (hub.lock) guards the ring, the client list, every client's buffer and
 * the devices' last-heard times. It is held only for memcpy- and lookup-sized work;
 * MHD_suspend/resume_connection are called under it so that a resume can never overtake the suspend
 * it answers. */
#include "api/api.h"

#include "core/clock.h"
#include "core/error.h"
#include "core/log.h"
#include "core/numfmt.h"
#include "core/strmap.h"
#include "mqtt/mqtt.h"

#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define STREAM_RING_EVENTS    1024         /* recent events kept for catch-up */
#define STREAM_RING_BYTES     (512 * 1024) /* ... and at most this many bytes of them */
#define STREAM_CLIENT_BYTES   (768 * 1024) /* a client's unsent bytes; beyond: dropped */
#define STREAM_EVENT_READINGS 200          /* readings per `readings` event */
#define STREAM_HEARTBEAT_S    15
#define STREAM_RETRY_MS       2000 /* the reconnect delay suggested to EventSource */
#define STREAM_RECHECK_S      10   /* how often each client's credential is checked again */
#define STREAM_RECHECK_MAX    4096 /* clients checked per round (the rest in the next) */
/* Without a client, events are still formatted for this long after the last one left, so
 * that a client coming back from a network blip can catch up; then no longer (no cost when
 * nobody watches). */
#define STREAM_CATCHUP_WINDOW_MS (5 * 60 * 1000)

enum seen_status { SEEN_ONLINE, SEEN_STALE, SEEN_OFFLINE };
static const char *const seen_names[] = {"online", "stale", "offline"};

struct seen {
    int64_t last_ms; /* wall time canaryd received its last reading */
    enum seen_status status;
};

/* A growable text buffer. */
struct textbuf {
    char *s;
    size_t len, cap;
};

struct stream_event {
    uint64_t n;
    char *text; /* the whole SSE frame, "id: ...\nevent: ...\ndata: ...\n\n" */
    size_t len;
};

struct stream_client {
    struct stream_client *prev, *next;
    struct stream_hub *hub;
    struct MHD_Connection *conn;
    char *buf; /* unsent bytes: a byte ring of capacity cap */
    size_t cap, head, len;
    bool suspended;           /* its connection is suspended, waiting for data */
    bool dropped;             /* too slow: end the stream */
    bool ended;               /* its credential expired or was revoked: end after what is queued */
    uint64_t serial;          /* unique per client, for the credential check */
    struct api_principal who; /* the credential it was opened with */
};

struct stream_hub {
    pthread_mutex_t lock;
    struct pipeline *pipeline;
    const struct canary_config *cfg;
    int64_t epoch_ms;
    uint64_t next_n; /* the number of the next event */
    struct stream_event ring[STREAM_RING_EVENTS];
    size_t ring_start, ring_n, ring_bytes;
    struct stream_client *clients;
    unsigned n_clients;
    uint64_t next_serial;
    struct api_ctx *api;         /* for the credential check; NULL: not checked (unit tests) */
    bool recheck_now;            /* check every client's credential at the next tick */
    uint64_t ended;              /* streams ended because their credential no longer admits them */
    int64_t last_client_mono_ms; /* when the last client left (or the hub started) */
    bool closing;
    bool listening;
    uint64_t dropped;  /* clients dropped for being slow, since start */
    uint64_t connects; /* clients that connected, since start */
    uint64_t sent;     /* events handed to clients (live and replayed), since start */
    /* Heartbeat thread */
    pthread_t heartbeat;
    pthread_cond_t wake;
    bool stop;
    /* The writer's text buffer (only the listener uses it) */
    struct textbuf scratch;
    /* Device status: id -> struct seen, under lock (updated by the listener, aged by the
     * heartbeat thread) */
    struct strmap seen;
};

/* ---- a growable text buffer for formatting -------------------------------------------- */

static bool tb_reserve(struct textbuf *b, size_t more)
{
    if (b->len + more + 1 <= b->cap)
        return true;
    size_t cap = b->cap ? b->cap : 16384;
    while (cap < b->len + more + 1)
        cap *= 2;
    char *n = realloc(b->s, cap);
    if (n == NULL)
        return false;
    b->s = n;
    b->cap = cap;
    return true;
}

static bool tb_printf(struct textbuf *b, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

static bool tb_printf(struct textbuf *b, const char *fmt, ...)
{
    for (int attempt = 0; attempt < 2; attempt++) {
        va_list ap;
        va_start(ap, fmt);
        size_t room = b->cap - b->len;
        int n = vsnprintf(b->cap ? b->s + b->len : NULL, b->cap ? room : 0, fmt, ap);
        va_end(ap);
        if (n < 0)
            return false;
        if ((size_t)n < room) {
            b->len += (size_t)n;
            return true;
        }
        if (!tb_reserve(b, (size_t)n))
            return false;
    }
    return false;
}

/* Appends n bytes; the hot path of `readings` events (no printf: numfmt.h). */
static bool tb_put(struct textbuf *b, const char *s, size_t n)
{
    if (!tb_reserve(b, n))
        return false;
    memcpy(b->s + b->len, s, n);
    b->len += n;
    b->s[b->len] = '\0';
    return true;
}

#define TB_LIT(b, lit) tb_put((b), (lit), sizeof(lit) - 1)

static bool tb_str(struct textbuf *b, const char *s)
{
    return tb_put(b, s, strlen(s));
}

/* ---- clients' buffers ------------------------------------------------------------------- */

/* Appends to a client's buffer; false when it does not fit (the client is then too slow). */
static bool client_append(struct stream_client *c, const char *data, size_t len)
{
    if (c->len + len > STREAM_CLIENT_BYTES)
        return false;
    if (c->len + len > c->cap) {
        size_t cap = c->cap ? c->cap : 8192;
        while (cap < c->len + len)
            cap *= 2;
        if (cap > STREAM_CLIENT_BYTES)
            cap = STREAM_CLIENT_BYTES;
        char *b = malloc(cap);
        if (b == NULL)
            return false;
        for (size_t i = 0; i < c->len; i++) /* unwrap the old ring */
            b[i] = c->buf[(c->head + i) % c->cap];
        free(c->buf);
        c->buf = b;
        c->cap = cap;
        c->head = 0;
    }
    size_t tail = (c->head + c->len) % c->cap;
    size_t first = len < c->cap - tail ? len : c->cap - tail;
    memcpy(c->buf + tail, data, first);
    memcpy(c->buf, data + first, len - first);
    c->len += len;
    return true;
}

static void client_wake(struct stream_client *c)
{
    if (c->suspended) {
        c->suspended = false;
        MHD_resume_connection(c->conn);
    }
}

/* Under hub.lock: gives every client the frame, dropping those it does not fit. */
static void broadcast(struct stream_hub *h, const char *text, size_t len)
{
    for (struct stream_client *c = h->clients; c != NULL; c = c->next) {
        if (c->dropped || c->ended)
            continue;
        if (!client_append(c, text, len)) {
            c->dropped = true;
            h->dropped++;
            log_info("stream.client_dropped", "reason=slow unsent_bytes=%zu", c->len);
        } else {
            h->sent++;
        }
        client_wake(c);
    }
}

/* Under hub.lock: keeps a frame in the ring (taking ownership of text). */
static void ring_push(struct stream_hub *h, uint64_t n, char *text, size_t len)
{
    while (h->ring_n > 0 &&
           (h->ring_n == STREAM_RING_EVENTS || h->ring_bytes + len > STREAM_RING_BYTES)) {
        struct stream_event *old = &h->ring[h->ring_start];
        h->ring_bytes -= old->len;
        free(old->text);
        h->ring_start = (h->ring_start + 1) % STREAM_RING_EVENTS;
        h->ring_n--;
    }
    if (len > STREAM_RING_BYTES) { /* too big to keep: a reconnecting client gets a reset */
        free(text);
        return;
    }
    struct stream_event *e = &h->ring[(h->ring_start + h->ring_n) % STREAM_RING_EVENTS];
    e->n = n;
    e->text = text;
    e->len = len;
    h->ring_n++;
    h->ring_bytes += len;
}

/* Publishes the JSON in b as one event of the given type, and empties b. */
static void publish(struct stream_hub *h, const char *type, struct textbuf *b)
{
    pthread_mutex_lock(&h->lock);
    uint64_t n = h->next_n++;
    char head[128];
    int hl = snprintf(head, sizeof head,
                      "id: %" PRId64 "-%" PRIu64 "\nevent: %s\ndata: ", h->epoch_ms, n, type);
    size_t len = (size_t)hl + b->len + 2;
    char *text = malloc(len + 1);
    if (text != NULL) {
        memcpy(text, head, (size_t)hl);
        memcpy(text + hl, b->s, b->len);
        memcpy(text + hl + b->len, "\n\n", 3);
        broadcast(h, text, len);
        ring_push(h, n, text, len);
    }
    pthread_mutex_unlock(&h->lock);
    b->len = 0;
}

/* ---- the commit listener ---------------------------------------------------------------- */

/* One reading as the `readings` event's JSON (device ids and metric names are validated at
 * ingest: no character in them needs escaping). Numbers as printf's %.15g and %.4g would
 * write them, through numfmt.h: formatting is most of what a stream client costs the writer
 * thread. */
static bool format_reading(struct stream_hub *h, const struct reading *r, bool first)
{
    struct textbuf *b = &h->scratch;
    char num[NUMFMT_MAX];
    bool ok = (first || TB_LIT(b, ",")) && TB_LIT(b, "{\"device\":\"") && tb_str(b, r->device) &&
              TB_LIT(b, "\",\"seq\":") && tb_put(b, num, numfmt_u64(num, r->seq)) &&
              TB_LIT(b, ",\"ts_ms\":") && tb_put(b, num, numfmt_i64(num, r->ts_ms)) &&
              TB_LIT(b, ",\"recv_ms\":") && tb_put(b, num, numfmt_i64(num, r->recv_ms)) &&
              TB_LIT(b, ",\"values\":{");
    for (uint32_t i = 0; ok && i < r->n_values; i++) {
        const struct metric_value *v = &r->values[i];
        ok = (i == 0 || TB_LIT(b, ",")) && TB_LIT(b, "\"") && tb_str(b, v->name) &&
             TB_LIT(b, "\":{\"value\":") && tb_put(b, num, numfmt_g15(num, v->value)) &&
             TB_LIT(b, ",\"score\":") && tb_put(b, num, numfmt_g4(num, (double)v->score)) &&
             TB_LIT(b, ",\"flags\":[");
        bool any = false;
        for (uint32_t bit = 1; ok && bit != 0 && bit <= v->flags; bit <<= 1) {
            const char *name = (v->flags & bit) ? reading_flag_name(bit) : NULL;
            if (name != NULL) {
                ok = (!any || TB_LIT(b, ",")) && TB_LIT(b, "\"") && tb_str(b, name) &&
                     TB_LIT(b, "\"");
                any = true;
            }
        }
        ok = ok && TB_LIT(b, "]}");
    }
    return ok && TB_LIT(b, "}}");
}

static void publish_readings(struct stream_hub *h, const struct commit_view *c)
{
    for (size_t start = 0; start < c->n_readings; start += STREAM_EVENT_READINGS) {
        size_t end = start + STREAM_EVENT_READINGS;
        if (end > c->n_readings)
            end = c->n_readings;
        h->scratch.len = 0;
        bool ok = tb_printf(&h->scratch, "{\"readings\":[");
        for (size_t i = start; ok && i < end; i++)
            ok = format_reading(h, c->readings[i], i == start);
        if (ok && tb_printf(&h->scratch, "]}"))
            publish(h, "readings", &h->scratch);
        else
            log_warn("stream.format_failed", "reason=out_of_memory");
    }
}

/* One `alert` event per alert that changed in the commit: its last record, and its events. */
static void publish_alerts(struct stream_hub *h, const struct commit_view *c)
{
    for (size_t i = 0; i < c->n_alerts; i++) {
        const struct alert *a = &c->alerts[i];
        bool later = false;
        for (size_t j = i + 1; j < c->n_alerts && !later; j++)
            later = c->alerts[j].id == a->id;
        if (later)
            continue; /* a later record of the same alert is the one to show */
        cJSON *o = cJSON_CreateObject();
        cJSON_AddItemToObject(o, "alert", api_alert_json(a));
        cJSON *evs = cJSON_AddArrayToObject(o, "events");
        for (size_t e = 0; e < c->n_events; e++) {
            const struct alert_event *ev = &c->events[e];
            if (ev->alert_id != a->id)
                continue;
            cJSON *x = cJSON_CreateObject();
            cJSON_AddNumberToObject(x, "ts_ms", (double)ev->ts_ms);
            cJSON_AddStringToObject(x, "action", alert_action_name(ev->action));
            cJSON_AddStringToObject(x, "severity", alert_severity_name(ev->severity));
            cJSON_AddStringToObject(x, "actor", ev->actor);
            cJSON_AddStringToObject(x, "note", ev->note);
            cJSON_AddItemToArray(evs, x);
        }
        char *text = cJSON_PrintUnformatted(o);
        cJSON_Delete(o);
        if (text == NULL)
            continue;
        h->scratch.len = 0;
        if (tb_printf(&h->scratch, "%s", text))
            publish(h, "alert", &h->scratch);
        free(text);
    }
}

/* Under hub.lock: one entry of a `devices` event. */
static void device_entry(struct textbuf *b, const char *device, const struct seen *s)
{
    tb_printf(b, "%s{\"device\":\"%s\",\"status\":\"%s\",\"last_seen_ms\":%" PRId64 "}",
              b->len > 12 ? "," : "", device, seen_names[s->status], s->last_ms);
}

/* Under hub.lock: notes when each device was last heard from (always, so that statuses are
 * right when a client comes), and writes those that came back online into b (when not
 * NULL). */
static void track_devices(struct stream_hub *h, const struct commit_view *c, struct textbuf *b)
{
    for (size_t i = 0; i < c->n_readings; i++) {
        const struct reading *r = c->readings[i];
        struct seen *s = strmap_get(&h->seen, r->device);
        if (s == NULL) {
            s = calloc(1, sizeof *s);
            if (s == NULL || strmap_put(&h->seen, r->device, s) != 0) {
                free(s);
                continue;
            }
            s->status = SEEN_OFFLINE; /* so that its first reading reports it online */
        }
        if (r->recv_ms > s->last_ms)
            s->last_ms = r->recv_ms;
        if (s->status != SEEN_ONLINE) {
            s->status = SEEN_ONLINE;
            if (b != NULL)
                device_entry(b, r->device, s);
        }
    }
}

/* An MQTT link change of the commit as an entry of a `devices` event (the names and fields
 * of GET /api/v1/devices: connection, connection_since_ms). */
static void link_entry(struct textbuf *b, const struct device_link_change *l)
{
    tb_printf(b, "%s{\"device\":\"%s\",\"connection\":\"%s\",\"connection_since_ms\":%" PRId64 "}",
              b->len > 12 ? "," : "", l->device, device_link_name(l->link), l->link_ms);
}

static void on_commit(void *arg, const struct commit_view *c)
{
    struct stream_hub *h = arg;
    h->scratch.len = 0;
    tb_printf(&h->scratch, "{\"devices\":[");
    pthread_mutex_lock(&h->lock);
    bool wanted =
        h->n_clients > 0 || clock_mono_ms() - h->last_client_mono_ms < STREAM_CATCHUP_WINDOW_MS;
    track_devices(h, c, wanted ? &h->scratch : NULL);
    pthread_mutex_unlock(&h->lock);
    for (size_t i = 0; wanted && i < c->n_links; i++)
        link_entry(&h->scratch, &c->links[i]);
    if (!wanted)
        return;
    if (h->scratch.len > 12 && tb_printf(&h->scratch, "]}"))
        publish(h, "devices", &h->scratch);
    if (c->n_readings > 0)
        publish_readings(h, c);
    if (c->n_alerts > 0)
        publish_alerts(h, c);
}

/* ---- heartbeat -------------------------------------------------------------------------- */

struct ageing {
    struct stream_hub *h;
    struct textbuf *b;
    int64_t now;
};

/* strmap_each callback, under hub.lock: a device silent long enough turns stale, then
 * offline (only ever older here: a reading brings it back online). */
static void age_device(void *arg, const char *device, void *value)
{
    struct ageing *a = arg;
    struct seen *s = value;
    int64_t age = a->now - s->last_ms;
    const struct canary_config *cfg = a->h->cfg;
    enum seen_status now = SEEN_ONLINE;
    if (age >= (int64_t)cfg->devices.offline_after_s * 1000)
        now = SEEN_OFFLINE;
    else if (age >= (int64_t)cfg->devices.stale_after_s * 1000)
        now = SEEN_STALE;
    if (now > s->status) {
        s->status = now;
        device_entry(a->b, device, s);
    }
}

/* ---- credential check ---------------------------------------------------------------------- */

struct pending_check {
    uint64_t serial;
    struct api_principal who;
};

/* Called with hub.lock held, returns with it held; drops it while the store is asked. Ends
 * the stream of every client whose credential no longer admits it: an `ended` event, then
 * the end of the stream once that is sent. */
static void recheck_clients(struct stream_hub *h)
{
    if (h->api == NULL || h->n_clients == 0)
        return;
    size_t n = 0, cap = h->n_clients < STREAM_RECHECK_MAX ? h->n_clients : STREAM_RECHECK_MAX;
    struct pending_check *todo = malloc(cap * sizeof *todo);
    if (todo == NULL)
        return; /* next round */
    for (struct stream_client *c = h->clients; c != NULL && n < cap; c = c->next) {
        if (!c->dropped && !c->ended)
            todo[n++] = (struct pending_check){c->serial, c->who};
    }
    pthread_mutex_unlock(&h->lock);
    size_t n_bad = 0;
    char why[160] = "";
    for (size_t i = 0; i < n; i++) {
        char w[160];
        if (!api_access_still_valid(h->api, &todo[i].who, w, sizeof w)) {
            snprintf(why, sizeof why, "%s", w);
            todo[n_bad++] = todo[i]; /* keep the ones to end at the front */
        }
    }
    pthread_mutex_lock(&h->lock);
    for (size_t i = 0; i < n_bad; i++) {
        for (struct stream_client *c = h->clients; c != NULL; c = c->next) {
            if (c->serial != todo[i].serial || c->dropped || c->ended)
                continue;
            char frame[256];
            int len =
                snprintf(frame, sizeof frame, "event: ended\ndata: {\"reason\":\"%s\"}\n\n", why);
            if (!client_append(c, frame, (size_t)len))
                c->dropped = true;
            c->ended = true;
            h->ended++;
            log_info("stream.client_ended", "caller=%s reason=\"%s\"", c->who.name, why);
            client_wake(c);
            break;
        }
    }
    free(todo);
}

void stream_hub_recheck(struct stream_hub *h)
{
    if (h == NULL)
        return;
    pthread_mutex_lock(&h->lock);
    h->recheck_now = true;
    pthread_cond_signal(&h->wake);
    pthread_mutex_unlock(&h->lock);
}

/* Every second: the devices that went stale or offline; every STREAM_HEARTBEAT_S: a comment
 * to every idle client; every STREAM_RECHECK_S (or when asked): the clients' credentials. */
static void *heartbeat_main(void *arg)
{
    struct stream_hub *h = arg;
    static const char ping[] = ": ping\n\n";
    struct textbuf b = {0};
    unsigned ticks = 0;
    pthread_mutex_lock(&h->lock);
    while (!h->stop) {
        struct timespec ts;
        clock_gettime(CLOCK_REALTIME, &ts);
        ts.tv_sec += 1;
        pthread_cond_timedwait(&h->wake, &h->lock, &ts);
        if (h->stop)
            break;
        b.len = 0;
        tb_printf(&b, "{\"devices\":[");
        struct ageing a = {h, &b, clock_wall_ms()};
        strmap_each(&h->seen, age_device, &a);
        bool wanted =
            h->n_clients > 0 || clock_mono_ms() - h->last_client_mono_ms < STREAM_CATCHUP_WINDOW_MS;
        ++ticks;
        if (h->recheck_now || ticks % STREAM_RECHECK_S == 0) {
            h->recheck_now = false;
            recheck_clients(h);
            if (h->stop)
                break;
        }
        if (ticks % STREAM_HEARTBEAT_S == 0) {
            for (struct stream_client *c = h->clients; c != NULL; c = c->next) {
                if (c->len == 0 && !c->dropped && !c->ended &&
                    client_append(c, ping, sizeof ping - 1))
                    client_wake(c);
            }
        }
        if (wanted && b.len > 12 && tb_printf(&b, "]}")) {
            pthread_mutex_unlock(&h->lock);
            publish(h, "devices", &b);
            pthread_mutex_lock(&h->lock);
        }
    }
    pthread_mutex_unlock(&h->lock);
    free(b.s);
    return NULL;
}

/* ---- the hub's life --------------------------------------------------------------------- */

int stream_hub_start(struct stream_hub **out, const struct canary_config *cfg, struct pipeline *p,
                     struct api_ctx *api)
{
    struct stream_hub *h = calloc(1, sizeof *h);
    if (h == NULL)
        return CANARY_ENOMEM;
    pthread_mutex_init(&h->lock, NULL);
    pthread_cond_init(&h->wake, NULL);
    h->pipeline = p;
    h->api = api;
    h->cfg = cfg;
    h->epoch_ms = clock_wall_ms();
    h->next_n = 1;
    h->last_client_mono_ms = clock_mono_ms() - STREAM_CATCHUP_WINDOW_MS;
    strmap_init(&h->seen);
    if (pthread_create(&h->heartbeat, NULL, heartbeat_main, h) != 0) {
        pthread_cond_destroy(&h->wake);
        pthread_mutex_destroy(&h->lock);
        free(h);
        return CANARY_ENOMEM;
    }
    int rc = pipeline_add_listener(p, on_commit, h);
    if (rc != 0) {
        stream_hub_free(h);
        return rc;
    }
    h->listening = true;
    *out = h;
    return CANARY_OK;
}

void stream_hub_close(struct stream_hub *h)
{
    if (h == NULL)
        return;
    if (h->listening) {
        pipeline_remove_listener(h->pipeline, on_commit, h);
        h->listening = false;
    }
    pthread_mutex_lock(&h->lock);
    h->closing = true;
    for (struct stream_client *c = h->clients; c != NULL; c = c->next)
        client_wake(c);
    pthread_mutex_unlock(&h->lock);
}

static void free_seen(void *arg, const char *key, void *value)
{
    (void)arg;
    (void)key;
    free(value);
}

void stream_hub_free(struct stream_hub *h)
{
    if (h == NULL)
        return;
    stream_hub_close(h);
    pthread_mutex_lock(&h->lock);
    h->stop = true;
    pthread_cond_signal(&h->wake);
    pthread_mutex_unlock(&h->lock);
    pthread_join(h->heartbeat, NULL);
    for (size_t i = 0; i < h->ring_n; i++)
        free(h->ring[(h->ring_start + i) % STREAM_RING_EVENTS].text);
    free(h->scratch.s);
    strmap_each(&h->seen, free_seen, NULL);
    strmap_free(&h->seen);
    pthread_cond_destroy(&h->wake);
    pthread_mutex_destroy(&h->lock);
    free(h);
}

void stream_hub_stats(struct stream_hub *h, struct stream_stats *out)
{
    memset(out, 0, sizeof *out);
    if (h == NULL)
        return;
    pthread_mutex_lock(&h->lock);
    out->clients = h->n_clients;
    out->connects = h->connects;
    out->events = h->next_n - 1;
    out->sent = h->sent;
    out->dropped = h->dropped;
    out->ended = h->ended;
    pthread_mutex_unlock(&h->lock);
}

/* ---- one client's stream ---------------------------------------------------------------- */

static ssize_t stream_read(void *cls, uint64_t pos, char *buf, size_t max)
{
    (void)pos;
    struct stream_client *c = cls;
    struct stream_hub *h = c->hub;
    pthread_mutex_lock(&h->lock);
    ssize_t n;
    if (c->dropped) {
        n = MHD_CONTENT_READER_END_WITH_ERROR;
    } else if (c->len > 0) {
        size_t take = c->len < max ? c->len : max;
        size_t first = take < c->cap - c->head ? take : c->cap - c->head;
        memcpy(buf, c->buf + c->head, first);
        memcpy(buf + first, c->buf, take - first);
        c->head = (c->head + take) % c->cap;
        c->len -= take;
        n = (ssize_t)take;
    } else if (h->closing || c->ended) {
        n = MHD_CONTENT_READER_END_OF_STREAM;
    } else {
        c->suspended = true;
        MHD_suspend_connection(c->conn);
        n = 0;
    }
    pthread_mutex_unlock(&h->lock);
    return n;
}

static void stream_free(void *cls)
{
    struct stream_client *c = cls;
    struct stream_hub *h = c->hub;
    pthread_mutex_lock(&h->lock);
    if (c->prev != NULL)
        c->prev->next = c->next;
    else
        h->clients = c->next;
    if (c->next != NULL)
        c->next->prev = c->prev;
    h->n_clients--;
    h->last_client_mono_ms = clock_mono_ms();
    pthread_mutex_unlock(&h->lock);
    free(c->buf);
    free(c);
}

/* Parses "<epoch>-<n>". */
static bool parse_event_id(const char *s, int64_t *epoch, uint64_t *n)
{
    char *end;
    long long e = strtoll(s, &end, 10);
    if (end == s || *end != '-')
        return false;
    const char *rest = end + 1;
    unsigned long long v = strtoull(rest, &end, 10);
    if (end == rest || *end != '\0')
        return false;
    *epoch = e;
    *n = v;
    return true;
}

/* Under hub.lock: what a new client gets first — the retry hint, hello, and the events it
 * missed (or a reset). */
static bool client_greet(struct stream_hub *h, struct stream_client *c, const char *last_id)
{
    char text[512];
    int len =
        snprintf(text, sizeof text,
                 "retry: %d\nevent: hello\ndata: {\"server_ms\":%" PRId64 ",\"last_id\":\"%" PRId64
                 "-%" PRIu64 "\",\"stale_after_s\":%u,\"offline_after_s\":%u}\n\n",
                 STREAM_RETRY_MS, clock_wall_ms(), h->epoch_ms, h->next_n - 1,
                 h->cfg->devices.stale_after_s, h->cfg->devices.offline_after_s);
    if (!client_append(c, text, (size_t)len))
        return false;
    if (last_id == NULL || *last_id == '\0')
        return true;
    int64_t epoch;
    uint64_t n;
    const char *reason = NULL;
    if (!parse_event_id(last_id, &epoch, &n))
        reason = "the Last-Event-ID is not one of this server's";
    else if (epoch != h->epoch_ms)
        reason = "canaryd restarted since that event";
    else if (n >= h->next_n)
        reason = "the Last-Event-ID is in the future";
    else if (n + 1 < h->next_n && (h->ring_n == 0 || h->ring[h->ring_start].n > n + 1))
        reason = "the missed events are no longer kept";
    if (reason == NULL) {
        for (size_t i = 0; i < h->ring_n; i++) {
            const struct stream_event *e = &h->ring[(h->ring_start + i) % STREAM_RING_EVENTS];
            if (e->n > n && !client_append(c, e->text, e->len)) {
                reason = "too many events were missed";
                break;
            }
            h->sent += e->n > n;
        }
    }
    if (reason != NULL) {
        len = snprintf(text, sizeof text, "event: reset\ndata: {\"reason\":\"%s\"}\n\n", reason);
        /* drop whatever catch-up went in: the client reloads everything anyway */
        c->len = 0;
        c->head = 0;
        if (!client_append(c, text, (size_t)len))
            return false;
    }
    return true;
}

enum MHD_Result api_stream(struct request *req)
{
    static const char *const allowed[] = {NULL};
    if (!api_query_check(req, allowed))
        return MHD_YES;
    struct stream_hub *h = req->api->stream;
    if (h == NULL)
        return api_respond_error(req, 503, "overloaded", NULL, "the live stream is not running");
    struct stream_client *c = calloc(1, sizeof *c);
    if (c == NULL)
        return MHD_NO;
    c->hub = h;
    c->conn = req->conn;
    c->who = req->who;
    const char *last_id = MHD_lookup_connection_value(req->conn, MHD_HEADER_KIND, "Last-Event-ID");
    pthread_mutex_lock(&h->lock);
    bool closing = h->closing;
    bool ok = !closing && client_greet(h, c, last_id);
    if (ok) {
        c->next = h->clients;
        if (h->clients != NULL)
            h->clients->prev = c;
        h->clients = c;
        h->n_clients++;
        h->connects++;
        c->serial = ++h->next_serial;
    }
    pthread_mutex_unlock(&h->lock);
    if (!ok) {
        free(c->buf);
        free(c);
        if (closing)
            return api_respond_error(req, 503, "overloaded", NULL, "canaryd is shutting down");
        return MHD_NO;
    }
    struct MHD_Response *resp =
        MHD_create_response_from_callback(MHD_SIZE_UNKNOWN, 16384, stream_read, c, stream_free);
    if (resp == NULL) {
        stream_free(c);
        return MHD_NO;
    }
    MHD_add_response_header(resp, "Content-Type", "text/event-stream; charset=utf-8");
    MHD_add_response_header(resp, "Cache-Control", "no-store");
    MHD_add_response_header(resp, "X-Content-Type-Options", "nosniff");
    MHD_add_response_header(resp, "X-Accel-Buffering", "no"); /* nginx: do not buffer */
    req->status = 200;
    enum MHD_Result r = MHD_queue_response(req->conn, 200, resp);
    MHD_destroy_response(resp);
    return r;
}
