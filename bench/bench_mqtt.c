/* bench_mqtt.c — the load generator and the null subscriber of bench/mqtt.sh.
 *
 * bench_mqtt publish --host H --port P --qos 0|1 --devices N --rate R|max --duration S
 *                    [--connections C] [--window W] [--client raw|libmosquitto]
 *   C connections, one thread each, publish readings in canary's wire format to
 *   canary/<device>/up, devices (bench-00001 ... bench-N) spread round-robin over them:
 *     {"device":"bench-00001","seq":K,"ts":<unix ms at publish>,"values":{...}}
 *   seq rises by one per device per message from the Unix ms at start, so a rerun never
 *   repeats a (device, seq) a store already holds. R messages/s in total (due in 1 ms
 *   steps) or as fast as the broker takes them. At most W messages per connection are
 *   outstanding (QoS 1: not yet PUBACKed), so the generator never buffers without bound;
 *   at QoS 0 a message counts as acknowledged once written to the socket, and a full
 *   socket blocks the writer. Prints one line of key=value: sent, acked, the publish rate
 *   and the acknowledged rate, the wall times (Unix ms) of the start and of the last
 *   publish, and the CPU seconds it used.
 *
 *   The generator must not take the CPU the broker and the subscriber need (two shared
 *   cores). The default client is therefore a minimal MQTT 3.1.1 publisher on a plain
 *   socket (OASIS MQTT 3.1.1: 3.1 CONNECT, 3.2 CONNACK, 3.3 PUBLISH, 3.4 PUBACK,
 *   3.14 DISCONNECT) that writes up to BATCH messages with one send(2) and reads PUBACKs
 *   in bulk: about 1–2 us of CPU per message, where libmosquitto's client, which reads a
 *   packet in three read(2)s and writes each publish at once, took 15–20 us at QoS 1.
 *   --client libmosquitto publishes through libmosquitto (non-threaded mode) instead, to
 *   cross-check counts and rates.
 *
 * bench_mqtt null-sub --host H --port P --qos 0|1 [--expect N] [--timeout S] [--idle S]
 *                     [--protocol 5|3.1.1] [--receive-max M] [--threaded 0|1] [--ready-file F]
 *   The peer canaryd is measured against: subscribes canary/+/up and does nothing but count,
 *   like `mosquitto_sub -t 'canary/+/up' >/dev/null` (the same libmosquitto, protocol and
 *   receive maximum as canaryd's defaults; --threaded 1 also runs libmosquitto in canaryd's
 *   threaded mode). Creates F once subscribed. Exits after N messages, S seconds, or --idle
 *   seconds without a message once messages came. Prints the delivered rate between the
 *   first and the last message and their wall times, the publish-to-delivery lag (arrival
 *   wall time minus the reading's ts, so it carries the same 0–1 ms rounding of ts as
 *   canaryd's ingest_lag_ms), and the CPU seconds it used.
 *
 * Exit status 0 on success, 1 on a connection or protocol failure (with a message on stderr),
 * 2 on bad arguments. */
#include <assert.h>
#include <errno.h>
#include <mosquitto.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#define TOPIC_FILTER  "canary/+/up"
#define LAG_BUCKET_US 50                      /* lag histogram resolution */
#define LAG_BUCKETS   (60 * 1000 * 1000 / 50) /* up to 60 s; the last bucket holds the rest */

static int64_t now_ns(clockid_t clk)
{
    struct timespec ts;
    clock_gettime(clk, &ts);
    return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

static double mono_s(void)
{
    return (double)now_ns(CLOCK_MONOTONIC) / 1e9;
}

static int64_t wall_ms(void)
{
    return now_ns(CLOCK_REALTIME) / 1000000;
}

/* CPU seconds (user + system) this process used so far, all threads. */
static double cpu_s(void)
{
    struct rusage ru;
    if (getrusage(RUSAGE_SELF, &ru) != 0)
        return 0;
    return (double)(ru.ru_utime.tv_sec + ru.ru_stime.tv_sec) +
           (double)(ru.ru_utime.tv_usec + ru.ru_stime.tv_usec) / 1e6;
}

struct options {
    const char *mode;
    const char *host;
    int port;
    int qos;
    long devices;
    double rate; /* messages/s in total; 0: as fast as possible */
    double duration_s;
    int connections;
    int window;
    const char *client; /* publish: "raw" or "libmosquitto" */
    long expect;
    double timeout_s;
    double idle_s;
    int protocol;
    int receive_max;
    bool threaded; /* null-sub: libmosquitto's threaded mode, as canaryd runs it */
    const char *ready_file;
};

static void usage(void)
{
    fprintf(stderr,
            "usage: bench_mqtt publish --host H --port P --qos 0|1 --devices N --rate R|max\n"
            "                  --duration S [--connections C] [--window W] "
            "[--client raw|libmosquitto]\n"
            "       bench_mqtt null-sub --host H --port P --qos 0|1 [--expect N] [--timeout S]\n"
            "                  [--idle S] [--protocol 5|3.1.1] [--receive-max M] "
            "[--threaded 0|1]\n"
            "                  [--ready-file F]\n");
}

/* Parses argv into o. Returns 0, or -1 after printing what is wrong. */
static int parse_args(int argc, char **argv, struct options *o)
{
    *o = (struct options){.host = "127.0.0.1",
                          .port = 1883,
                          .qos = 0,
                          .devices = 1000,
                          .duration_s = 10,
                          .connections = 4,
                          .window = 500,
                          .client = "raw",
                          .timeout_s = 60,
                          .idle_s = 3,
                          .protocol = 5,
                          .receive_max = 1000};
    if (argc < 2)
        return -1;
    o->mode = argv[1];
    for (int i = 2; i < argc; i++) {
        const char *k = argv[i];
        if (i + 1 >= argc) {
            fprintf(stderr, "bench_mqtt: %s needs a value\n", k);
            return -1;
        }
        const char *v = argv[++i];
        char *end = NULL;
        double d = strtod(v, &end);
        bool num = end != v && *end == '\0';
        if (strcmp(k, "--host") == 0) {
            o->host = v;
            continue;
        } else if (strcmp(k, "--client") == 0) {
            if (strcmp(v, "raw") != 0 && strcmp(v, "libmosquitto") != 0) {
                fprintf(stderr, "bench_mqtt: --client: raw or libmosquitto, got \"%s\"\n", v);
                return -1;
            }
            o->client = v;
            continue;
        } else if (strcmp(k, "--ready-file") == 0) {
            o->ready_file = v;
            continue;
        } else if (strcmp(k, "--rate") == 0 && strcmp(v, "max") == 0) {
            o->rate = 0;
            continue;
        } else if (strcmp(k, "--protocol") == 0 && strcmp(v, "3.1.1") == 0) {
            o->protocol = 4;
            continue;
        }
        if (!num || d < 0) {
            fprintf(stderr, "bench_mqtt: %s: expected a non-negative number, got \"%s\"\n", k, v);
            return -1;
        }
        if (strcmp(k, "--port") == 0)
            o->port = (int)d;
        else if (strcmp(k, "--qos") == 0)
            o->qos = (int)d;
        else if (strcmp(k, "--devices") == 0)
            o->devices = (long)d;
        else if (strcmp(k, "--rate") == 0)
            o->rate = d;
        else if (strcmp(k, "--duration") == 0)
            o->duration_s = d;
        else if (strcmp(k, "--connections") == 0)
            o->connections = (int)d;
        else if (strcmp(k, "--window") == 0)
            o->window = (int)d;
        else if (strcmp(k, "--expect") == 0)
            o->expect = (long)d;
        else if (strcmp(k, "--timeout") == 0)
            o->timeout_s = d;
        else if (strcmp(k, "--idle") == 0)
            o->idle_s = d;
        else if (strcmp(k, "--protocol") == 0 && d == 5)
            o->protocol = 5;
        else if (strcmp(k, "--receive-max") == 0)
            o->receive_max = (int)d;
        else if (strcmp(k, "--threaded") == 0 && d <= 1)
            o->threaded = d == 1;
        else {
            fprintf(stderr, "bench_mqtt: unknown option %s %s\n", k, v);
            return -1;
        }
    }
    if (o->qos > 1 || o->devices < 1 || o->connections < 1 || o->window < 1 || o->window > 65535 ||
        o->receive_max < 1 || o->receive_max > 65535 || o->port < 1 || o->port > 65535) {
        fprintf(stderr, "bench_mqtt: qos must be 0 or 1; devices, connections, window, "
                        "receive-max and port must be positive (window, receive-max and port "
                        "at most 65535)\n");
        return -1;
    }
    if (o->connections > o->devices)
        o->connections = (int)o->devices;
    return 0;
}

/* Connects mosq and waits for the CONNACK (non-threaded loop). Returns 0 or -1 with a
 * message on stderr. */
static int connect_and_wait(struct mosquitto *mosq, const struct options *o, bool *connected)
{
    int rc = mosquitto_connect(mosq, o->host, o->port, 30);
    if (rc != MOSQ_ERR_SUCCESS) {
        fprintf(stderr, "bench_mqtt: connect to %s:%d: %s\n", o->host, o->port,
                mosquitto_strerror(rc));
        return -1;
    }
    double give_up = mono_s() + 10;
    while (!*connected) {
        rc = mosquitto_loop(mosq, 100, 1);
        if (rc != MOSQ_ERR_SUCCESS || mono_s() > give_up) {
            fprintf(stderr, "bench_mqtt: no CONNACK from %s:%d: %s\n", o->host, o->port,
                    rc != MOSQ_ERR_SUCCESS ? mosquitto_strerror(rc) : "timed out");
            return -1;
        }
    }
    return 0;
}

/* ---- publish: what both clients share ---------------------------------------------------- */

#define BATCH   64  /* messages per send(2) of the raw client */
#define MSG_MAX 320 /* one PUBLISH packet: header, topic, packet id, payload */

struct pub_conn {
    const struct options *o;
    int index;                  /* this connection's number; it owns devices index + k*C */
    long n_devices;             /* how many devices it owns */
    int64_t seq_base;           /* first seq of every device (Unix ms at start) */
    pthread_barrier_t *start;   /* all connections start publishing together */
    bool failed;                /* connection lost or refused */
    uint64_t sent;              /* messages handed to the socket or to libmosquitto */
    uint64_t acked;             /* QoS 1: PUBACKs; QoS 0: written to the socket */
    double t_start, t_last_pub; /* monotonic seconds */
    double t_last_ack;
    /* --client libmosquitto */
    struct mosquitto *mosq; /* owned */
    bool connected;         /* CONNACK with success seen */
    /* --client raw */
    int fd;           /* owned; -1 when closed */
    uint16_t next_id; /* QoS 1 packet identifier, 1..65535 */
    size_t rx_len;    /* bytes in rx not yet parsed */
    uint8_t rx[4096]; /* PUBACKs as they arrive */
    uint8_t *tx;      /* BATCH * MSG_MAX bytes, owned */
};

/* Formats message m of connection c (devices round-robin over the ones it owns) into
 * topic and payload. Returns the payload's length. */
static int format_reading(const struct pub_conn *c, uint64_t m, char topic[64], char payload[192])
{
    long local = (long)(m % (uint64_t)c->n_devices);
    uint64_t k = m / (uint64_t)c->n_devices;
    long device = c->index + local * c->o->connections + 1;
    snprintf(topic, 64, "canary/bench-%05ld/up", device);
    /* Values move a little so the detectors see sensor-like data, not a flat line. */
    return snprintf(payload, 192,
                    "{\"device\":\"bench-%05ld\",\"seq\":%llu,\"ts\":%lld,\"values\":{"
                    "\"gas_ppm\":%.1f,\"temperature_c\":%.1f}}",
                    device, (unsigned long long)(c->seq_base + (int64_t)k), (long long)wall_ms(),
                    400 + (double)(k % 97) / 10, 21 + (double)((k + (uint64_t)device) % 13) / 10);
}

/* How many messages c may publish now: what the window leaves, and with a rate, what the
 * pace allows (messages are due in 1 ms steps). */
static uint64_t pub_allowed(const struct pub_conn *c, double now, uint64_t cap)
{
    const struct options *o = c->o;
    uint64_t outstanding = c->sent - c->acked;
    uint64_t n = outstanding >= (uint64_t)o->window ? 0 : (uint64_t)o->window - outstanding;
    if (n > cap)
        n = cap;
    if (o->rate > 0) {
        uint64_t due = (uint64_t)((now - c->t_start) * o->rate / o->connections) + 1;
        uint64_t ahead = due > c->sent ? due - c->sent : 0;
        if (ahead < n)
            n = ahead;
    }
    return n;
}

/* ---- publish: the raw client ------------------------------------------------------------- */

/* MQTT's variable-length "remaining length" (MQTT 3.1.1 section 2.2.3). Returns its bytes. */
static size_t put_remaining_length(uint8_t *p, size_t len)
{
    size_t n = 0;
    do {
        uint8_t b = len % 128;
        len /= 128;
        p[n++] = len > 0 ? b | 0x80 : b;
    } while (len > 0);
    return n;
}

static int write_all(int fd, const uint8_t *p, size_t n)
{
    while (n > 0) {
        ssize_t w = send(fd, p, n, MSG_NOSIGNAL);
        if (w < 0 && errno == EINTR)
            continue;
        if (w < 0)
            return -1;
        p += w;
        n -= (size_t)w;
    }
    return 0;
}

/* Appends message m as a PUBLISH packet (section 3.3) to out, which has MSG_MAX bytes of
 * room. Returns the packet's length. */
static size_t put_publish(struct pub_conn *c, uint64_t m, uint8_t *out)
{
    char topic[64], payload[192];
    int plen = format_reading(c, m, topic, payload);
    size_t tlen = strlen(topic), qos = (size_t)c->o->qos;
    size_t n = 0;
    out[n++] = (uint8_t)(0x30 | qos << 1);
    n += put_remaining_length(out + n, 2 + tlen + 2 * qos + (size_t)plen);
    out[n++] = (uint8_t)(tlen >> 8);
    out[n++] = (uint8_t)tlen;
    memcpy(out + n, topic, tlen);
    n += tlen;
    if (qos == 1) {
        out[n++] = (uint8_t)(c->next_id >> 8);
        out[n++] = (uint8_t)c->next_id;
        c->next_id = c->next_id == 65535 ? 1 : c->next_id + 1;
    }
    memcpy(out + n, payload, (size_t)plen);
    n += (size_t)plen;
    assert(n <= MSG_MAX);
    return n;
}

/* Reads what the broker sent, waiting up to wait_ms for it (0: only what is there), and
 * counts the PUBACKs (section 3.4), the only packet a publisher without subscriptions or
 * pings gets. The window (at most 65535 outstanding, identifiers 1..65535) makes
 * identifiers unique among outstanding messages, so counting is enough. Returns 0, 1 when
 * the broker closed the connection, -1 on an error (message printed). */
static int read_acks(struct pub_conn *c, int wait_ms)
{
    if (wait_ms > 0) {
        struct pollfd p = {.fd = c->fd, .events = POLLIN};
        int n = poll(&p, 1, wait_ms);
        if (n <= 0)
            return n == 0 || errno == EINTR ? 0 : -1;
    }
    ssize_t r = recv(c->fd, c->rx + c->rx_len, sizeof c->rx - c->rx_len, MSG_DONTWAIT);
    if (r == 0)
        return 1;
    if (r < 0) {
        if (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR)
            return 0;
        fprintf(stderr, "bench_mqtt: connection %d: %s\n", c->index, strerror(errno));
        return -1;
    }
    c->rx_len += (size_t)r;
    size_t pos = 0;
    uint64_t before = c->acked;
    while (c->rx_len - pos >= 2) {
        if (c->rx[pos] != 0x40 || c->rx[pos + 1] != 2) {
            fprintf(stderr, "bench_mqtt: connection %d: unexpected packet 0x%02x from the broker\n",
                    c->index, c->rx[pos]);
            return -1;
        }
        if (c->rx_len - pos < 4)
            break;
        c->acked++;
        pos += 4;
    }
    memmove(c->rx, c->rx + pos, c->rx_len - pos);
    c->rx_len -= pos;
    if (c->acked != before)
        c->t_last_ack = mono_s();
    return 0;
}

/* Opens c's socket and sends CONNECT (section 3.1: MQTT 3.1.1, clean session, keep-alive
 * 60 s), then waits for a successful CONNACK (3.2). Returns 0, or -1 with a message. */
static int raw_connect(struct pub_conn *c)
{
    const struct options *o = c->o;
    struct addrinfo hints = {.ai_family = AF_UNSPEC, .ai_socktype = SOCK_STREAM}, *res = NULL;
    char port[16];
    snprintf(port, sizeof port, "%d", o->port);
    int rc = getaddrinfo(o->host, port, &hints, &res);
    if (rc != 0) {
        fprintf(stderr, "bench_mqtt: %s: %s\n", o->host, gai_strerror(rc));
        return -1;
    }
    int fd = -1, err = 0;
    for (struct addrinfo *ai = res; ai != NULL && fd < 0; ai = ai->ai_next) {
        fd = socket(ai->ai_family, ai->ai_socktype, ai->ai_protocol);
        if (fd >= 0 && connect(fd, ai->ai_addr, ai->ai_addrlen) != 0) {
            err = errno;
            close(fd);
            fd = -1;
        }
    }
    freeaddrinfo(res);
    if (fd < 0) {
        fprintf(stderr, "bench_mqtt: connect to %s:%d: %s\n", o->host, o->port, strerror(err));
        return -1;
    }
    int one = 1;
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one); /* paced runs: no 40 ms waits */
    c->fd = fd;
    char id[48];
    int idlen = snprintf(id, sizeof id, "bench-pub-%ld-%d", (long)getpid(), c->index);
    static const uint8_t header[10] = {0, 4, 'M', 'Q', 'T', 'T', 4, 0x02, 0, 60};
    uint8_t pkt[96];
    size_t n = 0;
    pkt[n++] = 0x10;
    n += put_remaining_length(pkt + n, sizeof header + 2 + (size_t)idlen);
    memcpy(pkt + n, header, sizeof header);
    n += sizeof header;
    pkt[n++] = 0;
    pkt[n++] = (uint8_t)idlen;
    memcpy(pkt + n, id, (size_t)idlen);
    n += (size_t)idlen;
    if (write_all(fd, pkt, n) != 0) {
        fprintf(stderr, "bench_mqtt: send CONNECT: %s\n", strerror(errno));
        return -1;
    }
    uint8_t ack[4];
    size_t got = 0;
    double give_up = mono_s() + 10;
    while (got < sizeof ack) {
        struct pollfd p = {.fd = fd, .events = POLLIN};
        if (poll(&p, 1, 100) < 0 && errno != EINTR)
            break;
        ssize_t r = recv(fd, ack + got, sizeof ack - got, MSG_DONTWAIT);
        if (r == 0 || (r < 0 && errno != EAGAIN && errno != EINTR) || mono_s() > give_up)
            break;
        got += r > 0 ? (size_t)r : 0;
    }
    if (got < sizeof ack || ack[0] != 0x20 || ack[1] != 2 || ack[3] != 0) {
        fprintf(stderr, "bench_mqtt: no successful CONNACK from %s:%d%s\n", o->host, o->port,
                got == sizeof ack ? " (refused)" : "");
        return -1;
    }
    return 0;
}

static void *raw_thread(void *arg)
{
    struct pub_conn *c = arg;
    const struct options *o = c->o;
    pthread_barrier_wait(c->start);
    if (c->failed)
        return NULL;
    c->t_start = mono_s();
    double stop = c->t_start + o->duration_s;
    for (;;) {
        double now = mono_s();
        if (now >= stop || c->failed)
            break;
        uint64_t n = pub_allowed(c, now, BATCH);
        /* At full speed only whole batches: one send(2) per BATCH messages, not one per
         * PUBACK that trickles in. */
        uint64_t min_batch = (uint64_t)o->window < BATCH ? (uint64_t)o->window : BATCH;
        if (o->rate == 0 && n < min_batch)
            n = 0;
        if (n > 0) {
            size_t len = 0;
            for (uint64_t i = 0; i < n; i++)
                len += put_publish(c, c->sent + i, c->tx + len);
            if (write_all(c->fd, c->tx, len) != 0) {
                fprintf(stderr, "bench_mqtt: connection %d: %s\n", c->index, strerror(errno));
                c->failed = true;
                break;
            }
            c->sent += n;
            c->t_last_pub = now;
            if (o->qos == 0) {
                c->acked = c->sent;
                c->t_last_ack = now;
            }
        } else {
            /* The window is full or the pace says wait: 1 ms, then take what came. */
            struct timespec ms = {0, 1000000};
            nanosleep(&ms, NULL);
        }
        int rc = o->qos == 1 ? read_acks(c, 0) : 0;
        if (rc != 0) {
            fprintf(stderr, "bench_mqtt: connection %d: %s\n", c->index,
                    rc > 0 ? "the broker closed the connection" : "read failed");
            c->failed = true;
        }
    }
    /* Drain: wait up to 30 s for the outstanding PUBACKs, then DISCONNECT (3.14) and wait
     * until the broker closes, which it does after it has read everything sent before. */
    double give_up = mono_s() + 30;
    while (!c->failed && c->acked < c->sent && mono_s() < give_up)
        if (read_acks(c, 50) != 0)
            c->failed = true;
    static const uint8_t disconnect[2] = {0xe0, 0};
    if (!c->failed && write_all(c->fd, disconnect, sizeof disconnect) == 0) {
        give_up = mono_s() + 60;
        while (mono_s() < give_up && read_acks(c, 50) == 0) {
        }
    }
    close(c->fd);
    c->fd = -1;
    return NULL;
}

/* ---- publish: the libmosquitto client ---------------------------------------------------- */

static void on_connect(struct mosquitto *mosq, void *arg, int rc)
{
    bool *connected = arg;
    if (rc == 0)
        *connected = true;
    else
        fprintf(stderr, "bench_mqtt: connection refused: %s\n", mosquitto_connack_string(rc));
}

static void pub_on_connect(struct mosquitto *mosq, void *arg, int rc)
{
    struct pub_conn *c = arg;
    on_connect(mosq, &c->connected, rc);
    c->failed = rc != 0;
}

static void pub_on_publish(struct mosquitto *mosq, void *arg, int mid)
{
    struct pub_conn *c = arg;
    c->acked++;
    c->t_last_ack = mono_s();
}

static void pub_on_disconnect(struct mosquitto *mosq, void *arg, int rc)
{
    struct pub_conn *c = arg;
    if (rc != 0) {
        fprintf(stderr, "bench_mqtt: connection %d lost: %s\n", c->index, mosquitto_strerror(rc));
        c->failed = true;
    }
}

/* libmosquitto in its non-threaded mode, so a publish is written at once, with no hand-off;
 * on_publish counts PUBACKs (QoS 1) or writes (QoS 0). */
static void *mosq_thread(void *arg)
{
    struct pub_conn *c = arg;
    const struct options *o = c->o;
    pthread_barrier_wait(c->start);
    if (c->failed)
        return NULL;
    c->t_start = mono_s();
    double stop = c->t_start + o->duration_s;
    unsigned since_loop = 0;
    for (;;) {
        double now = mono_s();
        if (now >= stop || c->failed)
            break;
        if (pub_allowed(c, now, 1) == 0 || ++since_loop >= 64) {
            since_loop = 0;
            int wait_ms = pub_allowed(c, now, 1) == 0 ? (o->rate > 0 ? 1 : 5) : 0;
            int rc = mosquitto_loop(c->mosq, wait_ms, 1);
            if (rc != MOSQ_ERR_SUCCESS) {
                fprintf(stderr, "bench_mqtt: connection %d: %s\n", c->index,
                        mosquitto_strerror(rc));
                c->failed = true;
            }
            continue;
        }
        char topic[64], payload[192];
        int len = format_reading(c, c->sent, topic, payload);
        int rc = mosquitto_publish(c->mosq, NULL, topic, len, payload, o->qos, false);
        if (rc != MOSQ_ERR_SUCCESS) {
            fprintf(stderr, "bench_mqtt: publish on connection %d: %s\n", c->index,
                    mosquitto_strerror(rc));
            c->failed = true;
            break;
        }
        c->sent++;
        c->t_last_pub = now;
    }
    double give_up = mono_s() + 30;
    while (!c->failed && c->acked < c->sent && mono_s() < give_up)
        if (mosquitto_loop(c->mosq, 50, 1) != MOSQ_ERR_SUCCESS)
            break;
    mosquitto_disconnect(c->mosq);
    mosquitto_loop(c->mosq, 10, 1);
    return NULL;
}

static int mosq_connect(struct pub_conn *c)
{
    c->mosq = mosquitto_new(NULL, true, c);
    if (c->mosq == NULL) {
        fprintf(stderr, "bench_mqtt: mosquitto_new failed\n");
        return -1;
    }
    mosquitto_int_option(c->mosq, MOSQ_OPT_PROTOCOL_VERSION, MQTT_PROTOCOL_V311);
    mosquitto_int_option(c->mosq, MOSQ_OPT_SEND_MAXIMUM, c->o->window);
    mosquitto_connect_callback_set(c->mosq, pub_on_connect);
    mosquitto_publish_callback_set(c->mosq, pub_on_publish);
    mosquitto_disconnect_callback_set(c->mosq, pub_on_disconnect);
    return connect_and_wait(c->mosq, c->o, &c->connected);
}

/* ---- publish: the run ------------------------------------------------------------------- */

static int run_publish(const struct options *o)
{
    int n = o->connections;
    bool raw = strcmp(o->client, "raw") == 0;
    struct pub_conn *conns = calloc((size_t)n, sizeof *conns);
    pthread_t *threads = calloc((size_t)n, sizeof *threads);
    if (conns == NULL || threads == NULL) {
        fprintf(stderr, "bench_mqtt: out of memory\n");
        free(conns);
        free(threads);
        return 1;
    }
    pthread_barrier_t start;
    pthread_barrier_init(&start, NULL, (unsigned)n + 1);
    int64_t seq_base = wall_ms();
    for (int i = 0; i < n; i++) {
        struct pub_conn *c = &conns[i];
        *c = (struct pub_conn){.o = o,
                               .index = i,
                               .n_devices = (o->devices - i + n - 1) / n,
                               .seq_base = seq_base,
                               .start = &start,
                               .fd = -1,
                               .next_id = 1};
        if (raw && (c->tx = malloc(BATCH * MSG_MAX)) == NULL) {
            fprintf(stderr, "bench_mqtt: out of memory\n");
            c->failed = true; /* its thread returns at once; counted as a failure */
            continue;
        }
        if ((raw ? raw_connect(c) : mosq_connect(c)) != 0)
            c->failed = true;
    }
    for (int i = 0; i < n; i++)
        pthread_create(&threads[i], NULL, raw ? raw_thread : mosq_thread, &conns[i]);
    pthread_barrier_wait(&start);
    int64_t start_ms = wall_ms(); /* the publishers start now, to a millisecond */
    double start_mono = mono_s();
    uint64_t sent = 0, acked = 0;
    double t_pub = 0, t_ack = 0;
    int failures = 0;
    for (int i = 0; i < n; i++) {
        pthread_join(threads[i], NULL);
        struct pub_conn *c = &conns[i];
        sent += c->sent;
        acked += c->acked;
        failures += c->failed;
        t_pub = c->t_last_pub > t_pub ? c->t_last_pub : t_pub;
        t_ack = c->t_last_ack > t_ack ? c->t_last_ack : t_ack;
        if (c->mosq != NULL)
            mosquitto_destroy(c->mosq);
        if (c->fd >= 0)
            close(c->fd);
        free(c->tx);
    }
    pthread_barrier_destroy(&start);
    double pub_s = t_pub > start_mono ? t_pub - start_mono : 0;
    double ack_s = t_ack > start_mono ? t_ack - start_mono : 0;
    /* Wall times for the script, which compares them with canaryd's commit times. */
    int64_t end_ms = start_ms + (int64_t)(pub_s * 1000);
    printf("publish client=%s qos=%d connections=%d devices=%ld target_rate=%s%.0f sent=%llu "
           "acked=%llu seconds=%.3f rate=%.0f acked_rate=%.0f failures=%d start_ms=%lld "
           "end_ms=%lld cpu_s=%.2f\n",
           o->client, o->qos, n, o->devices, o->rate > 0 ? "" : "max:", o->rate,
           (unsigned long long)sent, (unsigned long long)acked, pub_s,
           pub_s > 0 ? (double)sent / pub_s : 0, ack_s > 0 ? (double)acked / ack_s : 0, failures,
           (long long)start_ms, (long long)end_ms, cpu_s());
    free(conns);
    free(threads);
    return failures ? 1 : 0;
}

/* ---- null-sub --------------------------------------------------------------------------- */

struct null_sub {
    const struct options *o;
    bool connected;
    bool subscribed;
    bool failed;
    uint64_t received;
    double t_first, t_last; /* monotonic seconds of the first and the last message */
    int64_t first_ms;       /* wall time of the first message */
    uint32_t *lag_hist;     /* LAG_BUCKETS counts of LAG_BUCKET_US each */
    uint64_t lag_count;
    double lag_max_ms;
};

static void sub_on_connect(struct mosquitto *mosq, void *arg, int rc)
{
    struct null_sub *s = arg;
    on_connect(mosq, &s->connected, rc);
    if (rc != 0) {
        s->failed = true;
        return;
    }
    rc = mosquitto_subscribe(mosq, NULL, TOPIC_FILTER, s->o->qos);
    if (rc != MOSQ_ERR_SUCCESS) {
        fprintf(stderr, "bench_mqtt: subscribe: %s\n", mosquitto_strerror(rc));
        s->failed = true;
    }
}

static void sub_on_subscribe(struct mosquitto *mosq, void *arg, int mid, int n, const int *granted)
{
    struct null_sub *s = arg;
    if (n < 1 || granted[0] > 2) {
        fprintf(stderr, "bench_mqtt: the broker refused the subscription to %s\n", TOPIC_FILTER);
        s->failed = true;
        return;
    }
    s->subscribed = true;
}

/* Finds "ts": in a reading and returns its value, or -1. Not a JSON parser: the generator's
 * messages are the only input, and a message without ts simply does not count for lag. */
static int64_t reading_ts_ms(const char *p, size_t len)
{
    static const char key[] = "\"ts\":";
    for (size_t i = 0; i + sizeof key - 1 < len; i++) {
        if (memcmp(p + i, key, sizeof key - 1) != 0)
            continue;
        int64_t v = 0;
        size_t j = i + sizeof key - 1;
        if (j >= len || p[j] < '0' || p[j] > '9')
            return -1;
        for (; j < len && p[j] >= '0' && p[j] <= '9'; j++)
            v = v * 10 + (p[j] - '0');
        return v;
    }
    return -1;
}

static void sub_on_message(struct mosquitto *mosq, void *arg, const struct mosquitto_message *m)
{
    struct null_sub *s = arg;
    double t = mono_s();
    if (s->received++ == 0) {
        s->t_first = t;
        s->first_ms = wall_ms();
    }
    s->t_last = t;
    int64_t ts = reading_ts_ms(m->payload, (size_t)m->payloadlen);
    if (ts < 0)
        return;
    double lag_ms = (double)(now_ns(CLOCK_REALTIME) - ts * 1000000) / 1e6;
    if (lag_ms < 0)
        lag_ms = 0;
    size_t b = (size_t)(lag_ms * 1000 / LAG_BUCKET_US);
    s->lag_hist[b < LAG_BUCKETS ? b : LAG_BUCKETS - 1]++;
    s->lag_count++;
    if (lag_ms > s->lag_max_ms)
        s->lag_max_ms = lag_ms;
}

/* The lag below which a fraction q of the messages arrived (upper edge of its bucket). */
static double lag_quantile_ms(const struct null_sub *s, double q)
{
    uint64_t want = (uint64_t)(q * (double)s->lag_count + 0.5), seen = 0;
    if (want < 1)
        want = 1;
    for (size_t b = 0; b < LAG_BUCKETS; b++) {
        seen += s->lag_hist[b];
        if (seen >= want)
            return (double)(b + 1) * LAG_BUCKET_US / 1000;
    }
    return s->lag_max_ms;
}

static int run_null_sub(const struct options *o)
{
    struct null_sub s = {.o = o, .lag_hist = calloc(LAG_BUCKETS, sizeof(uint32_t))};
    double start, span;
    char id[64];
    snprintf(id, sizeof id, "bench-null-sub-%ld", (long)(now_ns(CLOCK_REALTIME) % 1000000000));
    struct mosquitto *mosq = mosquitto_new(id, true, &s);
    if (mosq == NULL || s.lag_hist == NULL) {
        fprintf(stderr, "bench_mqtt: out of memory\n");
        s.failed = true;
        goto done;
    }
    mosquitto_int_option(mosq, MOSQ_OPT_PROTOCOL_VERSION,
                         o->protocol == 5 ? MQTT_PROTOCOL_V5 : MQTT_PROTOCOL_V311);
    mosquitto_int_option(mosq, MOSQ_OPT_RECEIVE_MAXIMUM, o->receive_max);
    if (o->threaded)
        mosquitto_threaded_set(mosq, true); /* PUBACKs queued, written by the next loop */
    mosquitto_connect_callback_set(mosq, sub_on_connect);
    mosquitto_subscribe_callback_set(mosq, sub_on_subscribe);
    mosquitto_message_callback_set(mosq, sub_on_message);
    start = mono_s();
    if (connect_and_wait(mosq, o, &s.connected) != 0) {
        s.failed = true;
        goto done;
    }
    while (!s.subscribed && !s.failed && mono_s() < start + 10)
        if (mosquitto_loop(mosq, 100, 1) != MOSQ_ERR_SUCCESS)
            s.failed = true;
    if (!s.subscribed) {
        fprintf(stderr, "bench_mqtt: no SUBACK for %s\n", TOPIC_FILTER);
        s.failed = true;
        goto done;
    }
    if (o->ready_file != NULL) {
        FILE *f = fopen(o->ready_file, "w");
        if (f == NULL || fclose(f) != 0) {
            fprintf(stderr, "bench_mqtt: cannot write %s\n", o->ready_file);
            s.failed = true;
            goto done;
        }
    }
    for (;;) {
        int rc = mosquitto_loop(mosq, 100, 1);
        if (rc != MOSQ_ERR_SUCCESS) {
            fprintf(stderr, "bench_mqtt: null-sub: %s\n", mosquitto_strerror(rc));
            s.failed = true;
            break;
        }
        double now = mono_s();
        if (o->expect > 0 && s.received >= (uint64_t)o->expect)
            break;
        if (now > start + o->timeout_s)
            break;
        if (s.received > 0 && now > s.t_last + o->idle_s)
            break;
    }
    mosquitto_disconnect(mosq);
    mosquitto_loop(mosq, 10, 1);
    span = s.t_last - s.t_first;
    printf("null-sub qos=%d protocol=%s threaded=%d received=%llu seconds=%.3f rate=%.0f "
           "lag_p50_ms=%.2f lag_p90_ms=%.2f lag_p99_ms=%.2f lag_max_ms=%.2f first_ms=%lld "
           "last_ms=%lld cpu_s=%.2f\n",
           o->qos, o->protocol == 5 ? "5" : "3.1.1", o->threaded, (unsigned long long)s.received,
           span, span > 0 ? (double)(s.received - 1) / span : 0, lag_quantile_ms(&s, 0.50),
           lag_quantile_ms(&s, 0.90), lag_quantile_ms(&s, 0.99), s.lag_max_ms,
           (long long)s.first_ms, (long long)(s.first_ms + (int64_t)(span * 1000)), cpu_s());
done:
    mosquitto_destroy(mosq); /* NULL is allowed */
    free(s.lag_hist);
    return s.failed ? 1 : 0;
}

int main(int argc, char **argv)
{
    struct options o;
    if (parse_args(argc, argv, &o) != 0) {
        usage();
        return 2;
    }
    mosquitto_lib_init();
    int rc;
    if (strcmp(o.mode, "publish") == 0) {
        rc = run_publish(&o);
    } else if (strcmp(o.mode, "null-sub") == 0) {
        rc = run_null_sub(&o);
    } else {
        usage();
        rc = 2;
    }
    mosquitto_lib_cleanup();
    return rc;
}
