/* sim_mqtt.c — the MQTT transport of `canary simulate`: each simulated device publishes its
 * readings to an MQTT broker, announces itself on a retained status topic, and takes
 * commands (sim_run.h, sim_command.h; the wire contract is in docs/SIMULATOR.md).
 *
 * Topics, with T = --topic-prefix and D the device id:
 *   T/D/up       each reading, exactly sim_reading_json()'s object, QoS --qos, not retained
 *   T/D/status   "online" after connecting, "sleeping" before a planned disconnect, both
 *                retained QoS 1; the client's will is "offline" (retained, QoS 1), which the
 *                broker publishes when the connection dies without a DISCONNECT
 *   T/D/cmd      subscribed at QoS 1: buzzer / valve / relay / interval_s commands
 *   T/D/cmd/ack  the answer to each command, QoS 1, not retained
 * A shared client (--mqtt-connections N) announces every one of its devices, but its will
 * can name only one topic: that of its first device. The other devices of a client that
 * dies keep their last status ("online") until it reconnects.
 *
 * Promises, besides the schedule's (simulate.c):
 *  - a reading counts as acked when its PUBACK arrives (at QoS 0: when it is written to the
 *    socket); sent = readings made, acked + failed = readings that fell due;
 *  - readings are never dropped while the run lasts. Each client keeps a copy of every
 *    reading it published and the broker has not acknowledged; when the connection drops,
 *    the client is rebuilt after a backoff (a clean session: commands published while it is
 *    away are not delivered) and publishes those copies again, in order, before anything
 *    new. A reading whose PUBACK was lost may thus reach the broker twice, with the same
 *    seq; canaryd drops the second as a duplicate;
 *  - a client has at most its in-flight cap of unacknowledged readings (16, or 4 per device
 *    of a shared client, at most 1024); past it, due readings wait and go out late with
 *    their original ts, so memory stays bounded whatever the broker does;
 *  - a device's readings reach the broker in seq order on one connection;
 *  - with --register, a device is queued for registration with canaryd (sim_register.h, on
 *    its own thread, so publishing never waits for HTTP) once its first reading has been
 *    PUBACKed (at QoS 0: written); the run's drain waits for the registrations too.
 *
 * How it works: one thread, one epoll set over every client's socket (mosquitto_socket()),
 * and libmosquitto driven by hand: mosquitto_loop_read() when a socket is readable,
 * mosquitto_loop_write() when it is writable and the client has something queued
 * (mosquitto_want_write()), mosquitto_loop_misc() for keep-alives once a second. Publishing
 * from outside a callback writes straight to the socket; what a callback publishes is
 * written right after the read that ran it. Clients open at most MAX_OPENING at a time, so a
 * fleet of thousands does not overflow the broker's listen backlog. */
#include "cli/sim_command.h"
#include "cli/sim_register.h"
#include "cli/sim_run.h"

#include "core/clock.h"
#include "core/error.h"

#include <errno.h>
#include <inttypes.h>
#include <mosquitto.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/resource.h>
#include <unistd.h>

#define KEEPALIVE_S      60
#define OPEN_TIMEOUT_MS  10000 /* TCP connect + CONNACK */
#define MAX_OPENING      64    /* clients connecting at once */
#define INFLIGHT_MIN     16    /* unacknowledged readings per client, at least */
#define INFLIGHT_PER_DEV 4     /* ... and per device of a shared client */
#define INFLIGHT_MAX     1024  /* ... and at most */
#define FAREWELL_MS      3000  /* longest wait for the "sleeping" PUBACKs and DISCONNECTs */
#define MISC_EVERY_MS    1000
#define PRINTED_ERRORS   5
#define EPOLL_EVENTS     256
#define FDS_PER_CLIENT   3  /* its socket and the socket pair libmosquitto opens */
#define FDS_SPARE        64 /* stdio, the epoll set, the truth file, ... */
#define NONE             UINT32_MAX
#define TOPIC_MAX        (SIM_TOPIC_PREFIX_MAX + SIM_PREFIX_MAX + 32)

enum conn_state {
    CONN_IDLE,    /* waiting for its turn to open */
    CONN_OPENING, /* socket open, no CONNACK yet */
    CONN_UP,      /* connected: publishes */
    CONN_BACKOFF, /* lost or refused; reopens at deadline_ms */
    CONN_CLOSED,  /* said goodbye (or gave up at the end) */
};

/* A reading published and not yet acknowledged, kept to publish again after a reconnect. */
struct pending {
    unsigned dev;
    int mid;                        /* message id on the current client; -1 when not sent on it */
    bool acked;                     /* acknowledged, waiting for the older ones to leave the ring */
    uint16_t len;                   /* bytes of json */
    int64_t sent_ns;                /* last (re)publish, monotonic */
    char json[SIM_SIGNED_JSON_MAX]; /* the reading's JSON, or with --sign its JWS */
};

struct mqtt;

/* One MQTT client and the devices it carries: devices index, index + n_conns, ... */
struct conn {
    struct mqtt *m;
    unsigned index;
    unsigned n_devices;
    struct mosquitto *mosq; /* NULL until opened, and between a loss and the reopening */
    int fd;                 /* the socket registered with epoll, or -1 */
    uint32_t events;        /* the interest registered for it */
    enum conn_state state;
    int64_t deadline_ms; /* OPENING: give up; BACKOFF: reopen */
    unsigned attempts;   /* failed opens in a row */
    bool lost;           /* on_disconnect ran: the library closed the socket */
    bool broken;         /* a publish failed: drop the connection */
    bool in_work;        /* in the work list */
    bool in_backoff;     /* in the backoff list */
    /* readings in flight, oldest first: a ring of pend_cap entries, grown up to pend_max */
    struct pending *pend;
    unsigned pend_cap, pend_head, pend_count, pend_max;
    unsigned control; /* status and ack messages awaiting their PUBACK */
    /* devices with a due reading waiting for room, a FIFO linked through mqtt.next_ready */
    unsigned q_head, q_tail, q_count;
};

struct mqtt_stats {
    uint64_t acked;         /* readings PUBACKed (QoS 1) or written (QoS 0) */
    uint64_t republished;   /* readings published again after a reconnect */
    uint64_t reconnects;    /* connections lost after they were up */
    uint64_t open_failures; /* attempts that never got a CONNACK */
    uint64_t commands, command_errors;
    uint64_t printed_errors;
};

struct mqtt {
    struct sim *s;
    uint8_t *keys; /* --sign: the devices' keys (sim_keys.c), or NULL */
    struct conn *conns;
    unsigned n_conns;
    int epfd;
    bool lib_ready;            /* mosquitto_lib_init() succeeded */
    unsigned *next_ready;      /* per device: the next device in its client's FIFO */
    struct sim_actuators *act; /* per device */
    unsigned *work, n_work;    /* clients with waiting devices and room */
    unsigned *backoff, n_backoff;
    struct sim_ring open_fifo; /* clients waiting to open */
    unsigned n_opening, n_up;
    uint64_t n_pending; /* unacknowledged readings, all clients */
    uint64_t n_queued;  /* devices waiting in the clients' FIFOs */
    uint64_t n_control; /* status and ack messages awaiting their PUBACK */
    bool farewell;      /* the planned stop is under way: nothing reopens */
    int64_t next_misc_ms;
    struct sim_register *reg; /* --register: the registration worker, else NULL */
    uint8_t *reg_queued;      /* per device: handed to reg already */
    struct mqtt_stats st;
};

static struct mqtt *mqtt_of(const struct sim *s)
{
    return s->tp_state;
}

static struct conn *conn_of(struct mqtt *m, unsigned d)
{
    return &m->conns[d % m->n_conns];
}

/* The k-th device of a client. */
static unsigned conn_device(const struct mqtt *m, const struct conn *c, unsigned k)
{
    return c->index + k * m->n_conns;
}

static void topic_of(const struct mqtt *m, unsigned d, const char *leaf, char *out)
{
    snprintf(out, TOPIC_MAX, "%s/%s/%s", m->s->opt.topic_prefix,
             sim_fleet_device(&m->s->fleet, d)->id, leaf);
}

static void say(struct mqtt *m, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void say(struct mqtt *m, const char *fmt, ...)
{
    if (m->s->opt.quiet || m->st.printed_errors >= PRINTED_ERRORS)
        return;
    va_list ap;
    va_start(ap, fmt);
    fprintf(stderr, "canary simulate: ");
    vfprintf(stderr, fmt, ap);
    fprintf(stderr, "\n");
    va_end(ap);
    if (++m->st.printed_errors == PRINTED_ERRORS)
        fprintf(stderr, "canary simulate: (further connection errors are only counted)\n");
}

/* ---- lists --------------------------------------------------------------------------- */

static bool has_room(const struct conn *c)
{
    return c->state == CONN_UP && c->pend_count < c->pend_max;
}

/* Puts a client on the work list when it is up, has room and has devices waiting. */
static void work_add(struct mqtt *m, struct conn *c)
{
    if (!c->in_work && c->q_count > 0 && has_room(c)) {
        c->in_work = true;
        m->work[m->n_work++] = c->index;
    }
}

static void q_push(struct mqtt *m, struct conn *c, unsigned d, bool front)
{
    m->next_ready[d] = NONE;
    if (c->q_count == 0) {
        c->q_head = c->q_tail = d;
    } else if (front) {
        m->next_ready[d] = c->q_head;
        c->q_head = d;
    } else {
        m->next_ready[c->q_tail] = d;
        c->q_tail = d;
    }
    c->q_count++;
    m->n_queued++;
}

static unsigned q_pop(struct mqtt *m, struct conn *c)
{
    unsigned d = c->q_head;
    c->q_head = m->next_ready[d];
    c->q_count--;
    m->n_queued--;
    return d;
}

static struct pending *pend_at(const struct conn *c, unsigned i)
{
    return &c->pend[(c->pend_head + i) % c->pend_cap];
}

/* Makes room for one more pending reading: the ring doubles, up to pend_max. */
static bool pend_grow(struct conn *c)
{
    unsigned cap = c->pend_cap > 0 ? 2 * c->pend_cap : 2;
    cap = cap < c->pend_max ? cap : c->pend_max;
    struct pending *p = malloc(cap * sizeof *p);
    if (p == NULL)
        return false;
    for (unsigned i = 0; i < c->pend_count; i++)
        p[i] = *pend_at(c, i);
    free(c->pend);
    c->pend = p;
    c->pend_cap = cap;
    c->pend_head = 0;
    return true;
}

/* ---- epoll --------------------------------------------------------------------------- */

/* Brings the epoll registration in line with the client's socket and write interest. The
 * library closes a socket it finds dead; the kernel then drops it from the set by itself,
 * and its number may already belong to another client, so a closed socket is forgotten,
 * never deleted from the set. */
static void conn_sync(struct mqtt *m, struct conn *c)
{
    int fd = c->mosq != NULL ? mosquitto_socket(c->mosq) : -1;
    if (fd != c->fd)
        c->fd = -1;
    if (fd < 0)
        return;
    uint32_t want = EPOLLIN | (mosquitto_want_write(c->mosq) ? EPOLLOUT : 0);
    if (c->fd == fd && c->events == want)
        return;
    struct epoll_event ev = {.events = want, .data.ptr = c};
    if (epoll_ctl(m->epfd, c->fd == fd ? EPOLL_CTL_MOD : EPOLL_CTL_ADD, fd, &ev) == 0) {
        c->fd = fd;
        c->events = want;
    } else {
        c->broken = true;
    }
}

/* ---- publishing ---------------------------------------------------------------------- */

static void send_pending(struct mqtt *m, struct conn *c, struct pending *p)
{
    char topic[TOPIC_MAX];
    topic_of(m, p->dev, "up", topic);
    p->sent_ns = clock_mono_ns();
    /* At QoS 0 on_publish may run inside this call, and may retire p: p->mid is set through
     * the pointer before that, and p is not touched afterwards unless the publish failed. */
    int rc = mosquitto_publish(c->mosq, &p->mid, topic, p->len, p->json, (int)m->s->opt.qos, false);
    if (rc != MOSQ_ERR_SUCCESS) {
        p->mid = -1;
        c->broken = true;
    }
}

/* Publishes a status or an ack (QoS 1); the client owns nothing of it afterwards. */
static void publish_control(struct mqtt *m, struct conn *c, unsigned d, const char *leaf,
                            const char *payload, bool retain)
{
    char topic[TOPIC_MAX];
    topic_of(m, d, leaf, topic);
    if (mosquitto_publish(c->mosq, NULL, topic, (int)strlen(payload), payload, 1, retain) !=
        MOSQ_ERR_SUCCESS) {
        c->broken = true;
        return;
    }
    c->control++;
    m->n_control++;
}

/* Makes device d's next reading and publishes it. False when out of memory. */
static bool publish_reading(struct mqtt *m, struct conn *c, unsigned d, int64_t now)
{
    if (c->pend_count == c->pend_cap && !pend_grow(c))
        return false;
    struct pending *p = pend_at(c, c->pend_count);
    int n;
    if (m->keys != NULL) {
        char json[SIM_READING_JSON_MAX];
        n = sim_sched_produce(m->s, d, now, &m->act[d], json, sizeof json);
        n = n < 0 ? -1
                  : (int)sim_keys_sign(m->s, m->keys, d, json, (size_t)n, p->json, sizeof p->json);
    } else {
        n = sim_sched_produce(m->s, d, now, &m->act[d], p->json, sizeof p->json);
    }
    if (n < 0)
        return false;
    p->dev = d;
    p->len = (uint16_t)n;
    p->acked = false;
    p->mid = -1;
    c->pend_count++;
    m->n_pending++;
    send_pending(m, c, p);
    return true;
}

/* Publishes the due readings of the client's waiting devices while it has room. */
static bool serve(struct mqtt *m, struct conn *c, int64_t now)
{
    struct sim *s = m->s;
    while (c->q_count > 0 && has_room(c) && !c->broken) {
        unsigned d = q_pop(m, c);
        while (has_room(c) && !c->broken && sim_sched_has_due(s, d, now)) {
            if (!publish_reading(m, c, d, now))
                return false;
        }
        if (sim_sched_has_due(s, d, now))
            q_push(m, c, d, true); /* no room left: it goes first next time */
        else
            sim_sched_place(s, d, now);
    }
    return true;
}

/* ---- connections --------------------------------------------------------------------- */

static void backoff_add(struct mqtt *m, struct conn *c)
{
    if (!c->in_backoff) {
        c->in_backoff = true;
        m->backoff[m->n_backoff++] = c->index;
    }
}

/* Forgets the client after its connection died or was refused, and schedules the reopening
 * (unless the run is saying goodbye). Its unacknowledged readings stay, to be published
 * again on the next connection. */
static void conn_drop(struct mqtt *m, struct conn *c, int64_t now)
{
    if (c->fd >= 0 && c->mosq != NULL && mosquitto_socket(c->mosq) == c->fd)
        epoll_ctl(m->epfd, EPOLL_CTL_DEL, c->fd, NULL);
    if (c->mosq != NULL)
        mosquitto_destroy(c->mosq);
    c->mosq = NULL;
    c->fd = -1;
    c->lost = c->broken = false;
    m->n_control -= c->control;
    c->control = 0;
    for (unsigned i = 0; i < c->pend_count; i++)
        pend_at(c, i)->mid = -1;
    if (c->state == CONN_OPENING)
        m->n_opening--;
    if (c->state == CONN_UP)
        m->n_up--;
    if (m->farewell) {
        c->state = CONN_CLOSED;
        return;
    }
    c->state = CONN_BACKOFF;
    c->deadline_ms = now + sim_backoff_ms(m->s, c->attempts++);
    backoff_add(m, c);
}

/* After any call into the library for this client: notices a dead connection, and keeps the
 * epoll registration right. */
static void conn_check(struct mqtt *m, struct conn *c)
{
    if (c->mosq == NULL)
        return;
    if (!c->lost && !c->broken)
        conn_sync(m, c);
    if (c->lost || c->broken) {
        if (m->farewell) {
            /* the goodbye's DISCONNECT closed it, or the broker is gone anyway */
        } else if (c->state == CONN_UP) {
            m->st.reconnects++;
            say(m, "connection %u to the broker lost; reconnecting with backoff", c->index + 1);
        } else if (c->state == CONN_OPENING) {
            m->st.open_failures++;
        }
        conn_drop(m, c, sim_now_ms(m->s));
    }
}

static void on_connect(struct mosquitto *mosq, void *obj, int rc)
{
    struct conn *c = obj;
    struct mqtt *m = c->m;
    if (rc != 0) {
        say(m, "broker %s:%u refused the connection: %s", m->s->opt.broker_host,
            m->s->opt.broker_port, mosquitto_connack_string(rc));
        c->broken = true;
        return;
    }
    c->state = CONN_UP;
    c->attempts = 0;
    m->n_opening--;
    m->n_up++;
    for (unsigned k = 0; k < c->n_devices && !c->broken; k++) {
        unsigned d = conn_device(m, c, k);
        char topic[TOPIC_MAX];
        topic_of(m, d, "cmd", topic);
        if (mosquitto_subscribe(mosq, NULL, topic, 1) != MOSQ_ERR_SUCCESS)
            c->broken = true;
        publish_control(m, c, d, "status", "online", true);
    }
    for (unsigned i = 0; i < c->pend_count && !c->broken; i++) {
        struct pending *p = pend_at(c, i);
        if (!p->acked) {
            m->st.republished++;
            send_pending(m, c, p);
        }
    }
    work_add(m, c);
}

static void on_disconnect(struct mosquitto *mosq, void *obj, int rc)
{
    struct conn *c = obj;
    c->lost = true;
    if (rc != 0 && c->state == CONN_OPENING && !c->broken) /* a refusal was told already */
        say(c->m, "cannot connect to the broker %s:%u: %s (retrying with backoff)",
            c->m->s->opt.broker_host, c->m->s->opt.broker_port,
            rc == MOSQ_ERR_ERRNO ? strerror(errno) : mosquitto_strerror(rc));
}

/* A PUBACK (or, at QoS 0, a reading written to the socket). */
static void on_publish(struct mosquitto *mosq, void *obj, int mid)
{
    struct conn *c = obj;
    struct mqtt *m = c->m;
    unsigned i = 0;
    while (i < c->pend_count && (pend_at(c, i)->mid != mid || pend_at(c, i)->acked))
        i++;
    if (i == c->pend_count) {
        if (c->control > 0) {
            c->control--;
            m->n_control--;
        }
        return;
    }
    struct pending *p = pend_at(c, i);
    p->acked = true;
    m->st.acked++;
    m->n_pending--;
    sim_latency_add(&m->s->st.latency, clock_mono_ns() - p->sent_ns);
    if (m->reg != NULL && !m->reg_queued[p->dev]) {
        /* canaryd may not know the device yet (its MQTT ingest is asynchronous): the worker
         * retries the 404 until it does */
        const struct sim_device_info *info = sim_fleet_device(&m->s->fleet, p->dev);
        m->reg_queued[p->dev] = 1;
        sim_register_queue(m->reg, info->id, info->name, info->location, info->kind);
    }
    while (c->pend_count > 0 && pend_at(c, 0)->acked) {
        c->pend_head = (c->pend_head + 1) % c->pend_cap;
        c->pend_count--;
    }
    work_add(m, c);
}

/* The device of topic "<topic prefix>/<device id>/cmd" if the client carries it, else NONE.
 * Device ids are "<prefix>-NNNN" with NNNN = index + 1 (sim_fleet.c). */
static unsigned device_of_topic(const struct mqtt *m, const struct conn *c, const char *topic)
{
    const struct sim *s = m->s;
    size_t tp = strlen(s->opt.topic_prefix), fp = strlen(s->fleet.prefix);
    if (strncmp(topic, s->opt.topic_prefix, tp) != 0 || topic[tp] != '/')
        return NONE;
    const char *id = topic + tp + 1, *slash = strchr(id, '/');
    if (slash == NULL || strcmp(slash, "/cmd") != 0 || strncmp(id, s->fleet.prefix, fp) != 0 ||
        id[fp] != '-')
        return NONE;
    unsigned long n = strtoul(id + fp + 1, NULL, 10);
    if (n < 1 || n > s->opt.devices)
        return NONE;
    unsigned d = (unsigned)(n - 1);
    const char *want = sim_fleet_device(&s->fleet, d)->id;
    if (strlen(want) != (size_t)(slash - id) || strncmp(want, id, (size_t)(slash - id)) != 0 ||
        d % m->n_conns != c->index)
        return NONE;
    return d;
}

/* A command: carried out and answered on <topic prefix>/<device>/cmd/ack. */
static void on_message(struct mosquitto *mosq, void *obj, const struct mosquitto_message *msg)
{
    struct conn *c = obj;
    struct mqtt *m = c->m;
    unsigned d = device_of_topic(m, c, msg->topic);
    if (d == NONE)
        return;
    struct sim_command cmd;
    char err[SIM_COMMAND_ERROR_MAX], ack[SIM_COMMAND_ACK_MAX];
    int rc =
        sim_command_parse(msg->payload != NULL ? msg->payload : "",
                          msg->payloadlen > 0 ? (size_t)msg->payloadlen : 0, &cmd, err, sizeof err);
    m->st.commands++;
    if (rc != 0) {
        m->st.command_errors++;
    } else if (cmd.kind == SIM_COMMAND_INTERVAL) {
        sim_sched_set_interval(m->s, d, cmd.interval_s, sim_now_ms(m->s));
    } else {
        sim_command_apply(&cmd, &m->act[d]);
    }
    if (sim_command_ack(cmd.id, rc != 0 ? err : NULL, ack, sizeof ack) > 0)
        publish_control(m, c, d, "cmd/ack", ack, false);
}

/* Builds a client with its will and options and starts connecting it. */
static void conn_open(struct mqtt *m, struct conn *c, int64_t now)
{
    const struct sim_options *o = &m->s->opt;
    char id[SIM_PREFIX_MAX + 64], will[TOPIC_MAX];
    if (m->n_conns == o->devices)
        snprintf(id, sizeof id, "%s", sim_fleet_device(&m->s->fleet, c->index)->id);
    else
        snprintf(id, sizeof id, "canary-simulate-%s-%u", o->prefix, c->index + 1);
    topic_of(m, c->index, "status", will);
    c->state = CONN_OPENING;
    c->deadline_ms = now + OPEN_TIMEOUT_MS;
    m->n_opening++;
    c->mosq = mosquitto_new(id, true, c);
    if (c->mosq == NULL) {
        c->broken = true;
        return;
    }
    mosquitto_connect_callback_set(c->mosq, on_connect);
    mosquitto_disconnect_callback_set(c->mosq, on_disconnect);
    mosquitto_publish_callback_set(c->mosq, on_publish);
    mosquitto_message_callback_set(c->mosq, on_message);
    /* The library's own cap sits above ours, with room for a status and an ack per device,
     * so that it never holds back a reading we count as sent. */
    unsigned lib_max = c->pend_max + 2 * c->n_devices + 16;
    mosquitto_int_option(c->mosq, MOSQ_OPT_SEND_MAXIMUM, lib_max < 65535 ? (int)lib_max : 65535);
    mosquitto_int_option(c->mosq, MOSQ_OPT_TCP_NODELAY, 1);
    int rc = mosquitto_will_set(c->mosq, will, 7, "offline", 1, true);
    if (rc == MOSQ_ERR_SUCCESS && o->username != NULL)
        rc = mosquitto_username_pw_set(c->mosq, o->username, o->password);
    if (rc == MOSQ_ERR_SUCCESS)
        rc = mosquitto_connect_async(c->mosq, o->broker_host, (int)o->broker_port, KEEPALIVE_S);
    if (rc != MOSQ_ERR_SUCCESS) {
        say(m, "cannot connect to the broker %s:%u: %s (retrying with backoff)", o->broker_host,
            o->broker_port, rc == MOSQ_ERR_ERRNO ? strerror(errno) : mosquitto_strerror(rc));
        c->broken = true;
        return;
    }
    conn_sync(m, c);
}

/* Opens waiting clients, reopens those whose backoff is over, gives up on slow opens. */
static void manage_connections(struct mqtt *m, int64_t now)
{
    unsigned kept = 0;
    for (unsigned i = 0; i < m->n_backoff; i++) {
        struct conn *c = &m->conns[m->backoff[i]];
        if (c->state == CONN_BACKOFF && c->deadline_ms <= now) {
            c->in_backoff = false;
            c->state = CONN_IDLE;
            sim_ring_push(&m->open_fifo, c->index);
        } else if (c->state == CONN_BACKOFF) {
            m->backoff[kept++] = m->backoff[i];
        } else {
            c->in_backoff = false;
        }
    }
    m->n_backoff = kept;
    while (!m->farewell && m->n_opening < MAX_OPENING && m->open_fifo.count > 0) {
        struct conn *c = &m->conns[sim_ring_pop(&m->open_fifo)];
        conn_open(m, c, now);
        if (c->broken) {
            m->st.open_failures++;
            conn_drop(m, c, now);
        }
    }
}

/* Keep-alives, once a second, and opens that take too long. */
static void misc(struct mqtt *m, int64_t now)
{
    if (now < m->next_misc_ms)
        return;
    m->next_misc_ms = now + MISC_EVERY_MS;
    for (unsigned i = 0; i < m->n_conns; i++) {
        struct conn *c = &m->conns[i];
        if (c->mosq == NULL)
            continue;
        if (c->state == CONN_OPENING && now >= c->deadline_ms) {
            say(m, "no answer from the broker %s:%u within %d s (retrying with backoff)",
                m->s->opt.broker_host, m->s->opt.broker_port, OPEN_TIMEOUT_MS / 1000);
            c->broken = true;
        } else {
            mosquitto_loop_misc(c->mosq);
        }
        conn_check(m, c);
    }
}

/* Handles one epoll event of a client. */
static void conn_io(struct mqtt *m, struct conn *c, uint32_t events)
{
    if (c->mosq == NULL || c->fd < 0)
        return; /* closed earlier in this batch */
    if (events & (EPOLLIN | EPOLLERR | EPOLLHUP))
        mosquitto_loop_read(c->mosq, 1);
    if (!c->lost && mosquitto_socket(c->mosq) >= 0 &&
        ((events & EPOLLOUT) || mosquitto_want_write(c->mosq)))
        mosquitto_loop_write(c->mosq, 1);
    conn_check(m, c);
}

/* ---- the transport's interface ------------------------------------------------------- */

static bool mqtt_step(struct sim *s, int64_t now)
{
    struct mqtt *m = mqtt_of(s);
    while (s->ready.count > 0) {
        unsigned d = sim_ring_pop(&s->ready);
        struct conn *c = conn_of(m, d);
        s->dev[d].state = SIM_DEV_BUSY;
        q_push(m, c, d, false);
        work_add(m, c);
    }
    manage_connections(m, now);
    unsigned kept = 0;
    for (unsigned i = 0; i < m->n_work; i++) {
        struct conn *c = &m->conns[m->work[i]];
        if (!serve(m, c, now))
            return false;
        conn_check(m, c);
        if (c->q_count > 0 && has_room(c))
            m->work[kept++] = c->index;
        else
            c->in_work = false;
    }
    m->n_work = kept;
    misc(m, now);
    return true;
}

static void mqtt_wait(struct sim *s, int timeout_ms)
{
    struct mqtt *m = mqtt_of(s);
    struct epoll_event ev[EPOLL_EVENTS];
    int n = epoll_wait(m->epfd, ev, EPOLL_EVENTS, timeout_ms);
    for (int i = 0; i < n; i++)
        conn_io(m, ev[i].data.ptr, ev[i].events);
}

static int64_t mqtt_next_wake(const struct sim *s, int64_t now, int64_t wake)
{
    const struct mqtt *m = mqtt_of(s);
    if (m->n_work > 0 || (m->open_fifo.count > 0 && m->n_opening < MAX_OPENING))
        return now;
    for (unsigned i = 0; i < m->n_backoff; i++) {
        const struct conn *c = &m->conns[m->backoff[i]];
        if (c->deadline_ms < wake)
            wake = c->deadline_ms;
    }
    return m->next_misc_ms < wake ? m->next_misc_ms : wake;
}

static bool mqtt_outstanding(const struct sim *s)
{
    const struct mqtt *m = mqtt_of(s);
    return m->n_pending > 0 || m->n_queued > 0 || (m->reg != NULL && sim_register_busy(m->reg));
}

/* The planned stop: every connected device says "sleeping" (retained), then its client
 * disconnects cleanly, so the broker discards the will and no "offline" is published. */
static void mqtt_finish(struct sim *s)
{
    struct mqtt *m = mqtt_of(s);
    m->farewell = true;
    if (m->reg != NULL)
        sim_register_stop(m->reg); /* the drain is over: what is still waiting has failed */
    for (unsigned i = 0; i < m->n_conns; i++) {
        struct conn *c = &m->conns[i];
        for (unsigned k = 0; c->state == CONN_UP && k < c->n_devices && !c->broken; k++)
            publish_control(m, c, conn_device(m, c, k), "status", "sleeping", true);
        conn_check(m, c);
    }
    int64_t deadline = sim_now_ms(s) + FAREWELL_MS;
    while (m->n_control > 0 && m->n_up > 0 && sim_now_ms(s) < deadline)
        mqtt_wait(s, 20);
    for (unsigned i = 0; i < m->n_conns; i++) {
        struct conn *c = &m->conns[i];
        /* A client still opening never said "online"; it just goes. */
        if (c->state == CONN_OPENING ||
            (c->mosq != NULL && mosquitto_disconnect(c->mosq) != MOSQ_ERR_SUCCESS))
            c->broken = true;
        conn_check(m, c);
    }
    /* What could not be written at once goes out as the sockets drain. */
    while (m->n_up > 0 && sim_now_ms(s) < deadline + 1000)
        mqtt_wait(s, 20);
}

static unsigned mqtt_describe(const struct sim *s, char *target, size_t len)
{
    const struct sim_options *o = &s->opt;
    bool v6 = strchr(o->broker_host, ':') != NULL;
    snprintf(target, len, "mqtt://%s%s%s:%u (%s/<device>/up, QoS %u)", v6 ? "[" : "",
             o->broker_host, v6 ? "]" : "", o->broker_port, o->topic_prefix, o->qos);
    return mqtt_of(s)->n_conns;
}

static void mqtt_progress(const struct sim *s, int64_t now)
{
    const struct mqtt *m = mqtt_of(s);
    fprintf(stderr,
            "canary simulate: t=%" PRId64 "s sent=%" PRIu64 " acked=%" PRIu64 " in_flight=%" PRIu64
            " waiting_devices=%" PRIu64 " connected=%u/%u "
            "reconnects=%" PRIu64 " commands=%" PRIu64 " late_max=%" PRId64 "ms p99=%.2fms\n",
            now / 1000, s->st.sent, m->st.acked, m->n_pending, m->n_queued, m->n_up, m->n_conns,
            m->st.reconnects, m->st.commands, s->st.late_max_ms,
            sim_latency_ms(&s->st.latency, 0.99));
}

static int mqtt_summary(const struct sim *s, double elapsed_s, uint64_t due)
{
    const struct mqtt *m = mqtt_of(s);
    const struct mqtt_stats *st = &m->st;
    uint64_t failed = due > st->acked ? due - st->acked : 0;
    struct sim_register_counts rc = {0};
    if (m->reg != NULL)
        sim_register_counts(m->reg, &rc);
    printf("simulate: transport=mqtt devices=%u sent=%" PRIu64 " acked=%" PRIu64 " failed=%" PRIu64
           " commands=%" PRIu64 " rate=%.1f/s p50=%.2fms p99=%.2fms",
           s->opt.devices, s->st.sent, st->acked, failed, st->commands,
           elapsed_s > 0 ? (double)st->acked / elapsed_s : 0.0,
           sim_latency_ms(&s->st.latency, 0.50), sim_latency_ms(&s->st.latency, 0.99));
    if (m->reg != NULL)
        printf(" registered=%" PRIu64 " register_404=%" PRIu64 " register_failed=%" PRIu64,
               rc.registered, rc.not_found, rc.failed);
    printf("\n");
    fflush(stdout);
    if (!s->opt.quiet)
        fprintf(stderr,
                "canary simulate: %.1f s, %u MQTT clients, %" PRIu64 " reconnects, %" PRIu64
                " failed connection attempts, %" PRIu64 " readings published again, %" PRIu64
                " commands (%" PRIu64 " refused), latest reading %" PRId64
                " ms after its time, %" PRIu64 " more than 1 s late\n",
                elapsed_s, m->n_conns, st->reconnects, st->open_failures, st->republished,
                st->commands, st->command_errors, s->st.late_max_ms, s->st.late_1s);
    if (m->reg != NULL && !s->opt.quiet)
        fprintf(stderr,
                "canary simulate: registration: %" PRIu64 " devices queued, %" PRIu64
                " registered, %" PRIu64 " failed (%" PRIu64 " given up after %d s, %" PRIu64
                " still waiting at the end); %" PRIu64 " PATCH requests, %" PRIu64
                " answered 404 (not yet known) and %" PRIu64 " errors, both retried\n",
                rc.queued, rc.registered, rc.failed, rc.gave_up, SIM_REGISTER_GIVE_UP_MS / 1000,
                rc.abandoned, rc.requests, rc.not_found, rc.errors);
    return failed == 0 ? 0 : 1;
}

/* Raises the soft limit on open files to the hard one, and the hard one too when a client
 * per device needs more (allowed with CAP_SYS_RESOURCE): a client costs FDS_PER_CLIENT.
 * Returns 0, or 1 with a message when the limit stays too low. */
static int raise_nofile(unsigned n_conns)
{
    struct rlimit rl;
    if (getrlimit(RLIMIT_NOFILE, &rl) != 0)
        return 0;
    rlim_t need = (rlim_t)n_conns * FDS_PER_CLIENT + FDS_SPARE;
    if (rl.rlim_max != RLIM_INFINITY && rl.rlim_max < need) {
        struct rlimit more = {need, need};
        if (setrlimit(RLIMIT_NOFILE, &more) == 0)
            return 0;
    }
    if (rl.rlim_cur < rl.rlim_max) {
        rl.rlim_cur = rl.rlim_max;
        setrlimit(RLIMIT_NOFILE, &rl);
        getrlimit(RLIMIT_NOFILE, &rl);
    }
    if (rl.rlim_cur != RLIM_INFINITY && need > rl.rlim_cur) {
        fprintf(stderr,
                "canary simulate: %u MQTT clients need about %llu open files (libmosquitto "
                "keeps a socket pair per client besides its socket), but the limit is %llu; "
                "raise the hard limit (ulimit -Hn, as root) or share clients with "
                "--mqtt-connections\n",
                n_conns, (unsigned long long)need, (unsigned long long)rl.rlim_cur);
        return 1;
    }
    return 0;
}

static int mqtt_setup_state(struct sim *s, struct mqtt *m)
{
    unsigned n = s->opt.mqtt_connections > 0 ? s->opt.mqtt_connections : s->opt.devices;
    m->s = s;
    m->n_conns = n;
    m->conns = calloc(n, sizeof *m->conns);
    m->next_ready = malloc(s->opt.devices * sizeof *m->next_ready);
    m->act = malloc(s->opt.devices * sizeof *m->act);
    m->work = malloc(n * sizeof *m->work);
    m->backoff = malloc(n * sizeof *m->backoff);
    m->open_fifo.items = malloc(n * sizeof *m->open_fifo.items);
    m->open_fifo.cap = n;
    if (m->conns == NULL || m->next_ready == NULL || m->act == NULL || m->work == NULL ||
        m->backoff == NULL || m->open_fifo.items == NULL)
        return -1;
    for (unsigned d = 0; d < s->opt.devices; d++)
        sim_actuators_init(&m->act[d]);
    for (unsigned i = 0; i < n; i++) {
        struct conn *c = &m->conns[i];
        c->m = m;
        c->index = i;
        c->fd = -1;
        c->n_devices = (s->opt.devices - i + n - 1) / n;
        unsigned cap = INFLIGHT_PER_DEV * c->n_devices;
        c->pend_max = cap < INFLIGHT_MIN ? INFLIGHT_MIN : cap > INFLIGHT_MAX ? INFLIGHT_MAX : cap;
        sim_ring_push(&m->open_fifo, i);
    }
    return 0;
}

static int mqtt_setup(struct sim *s)
{
    struct mqtt *m = mqtt_of(s);
    m->epfd = -1;
    if (raise_nofile(s->opt.mqtt_connections > 0 ? s->opt.mqtt_connections : s->opt.devices) != 0)
        return 1;
    if (mosquitto_lib_init() != MOSQ_ERR_SUCCESS) {
        fprintf(stderr, "canary simulate: libmosquitto failed to initialise\n");
        return 1;
    }
    m->lib_ready = true;
    if (s->opt.sign_path != NULL && sim_keys_load(s, &m->keys) != 0)
        return 1;
    m->epfd = epoll_create1(EPOLL_CLOEXEC);
    if (m->epfd < 0) {
        fprintf(stderr, "canary simulate: epoll: %s\n", strerror(errno));
        return 1;
    }
    if (s->opt.register_devices) {
        char err[256];
        m->reg_queued = calloc(s->opt.devices, 1);
        if (m->reg_queued == NULL)
            return -1;
        int rc = sim_register_start(&m->reg, s->opt.url, s->opt.ca, s->opt.quiet, err, sizeof err);
        if (rc == CANARY_ENOMEM)
            return -1;
        if (rc != 0) {
            fprintf(stderr, "canary simulate: %s\n", err);
            return 1;
        }
    }
    return mqtt_setup_state(s, m);
}

static void mqtt_teardown(struct sim *s)
{
    struct mqtt *m = mqtt_of(s);
    sim_register_free(m->reg); /* first: it joins its worker */
    for (unsigned i = 0; m->conns != NULL && i < m->n_conns; i++) {
        struct conn *c = &m->conns[i];
        if (c->mosq != NULL)
            mosquitto_destroy(c->mosq);
        free(c->pend);
    }
    if (m->epfd >= 0)
        close(m->epfd);
    if (m->lib_ready)
        mosquitto_lib_cleanup();
    free(m->conns);
    free(m->next_ready);
    free(m->act);
    free(m->work);
    free(m->backoff);
    free(m->open_fifo.items);
    free(m->reg_queued);
    sim_keys_free(s, m->keys);
}

const struct sim_transport sim_mqtt_transport = {
    .state_size = sizeof(struct mqtt),
    .setup = mqtt_setup,
    .step = mqtt_step,
    .wait = mqtt_wait,
    .next_wake = mqtt_next_wake,
    .outstanding = mqtt_outstanding,
    .finish = mqtt_finish,
    .describe = mqtt_describe,
    .progress = mqtt_progress,
    .summary = mqtt_summary,
    .teardown = mqtt_teardown,
};
