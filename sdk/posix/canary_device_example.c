/* canary_device_example.c — canary-device-example: a device on a POSIX machine (a Raspberry Pi,
 * a gateway, a test) that sends signed readings to canaryd over HTTP or MQTT with the device
 * SDK. It shows the whole life of a device in one page: key from a file, seq persisted in a
 * file across restarts, wall-clock timestamps, readings built and signed by the SDK, and the
 * transport (transport_http.c, transport_mqtt.c) kept apart from the SDK.
 *
 *   canary device add kitchen-1 --keys-out kitchen-1.keys
 *   canary-device-example --device kitchen-1 --key-file kitchen-1.keys \
 *       --seq-file kitchen-1.seq --http http://127.0.0.1:8080 --count 10 --interval-ms 1000
 *
 * Without --value it simulates a gas, temperature and humidity sensor; with --value NAME=V
 * (repeatable) it sends exactly those values. Exit status: 0 every reading was accepted (HTTP
 * 2xx, or MQTT PUBACK from the broker), 1 canaryd refused one (its answer on stderr), 2 usage,
 * 3 key, seq file or value error, 4 canaryd or the broker unreachable. */
#include "canary_device.h"
#include "cdev_keyfile.h"
#include "cdev_seq_file.h"
#include "transport_http.h"
#include "transport_mqtt.h"

#include <curl/curl.h>
#include <errno.h>
#include <math.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#define MAX_VALUES 16

struct opts {
    const char *device, *key_file, *seq_file;
    const char *http_url;
    const char *mqtt_host;
    int mqtt_port;
    const char *mqtt_user, *mqtt_password_file, *prefix;
    const char *ca_file; /* --ca: TLS to canaryd (https://) or to the broker */
    long count, interval_ms;
    uint32_t block;
    uint64_t first_seq;
    bool no_ts, quiet;
    bool first_seq_clock; /* --first-seq clock */
    const char *names[MAX_VALUES];
    double values[MAX_VALUES];
    int n_values;
};

static volatile sig_atomic_t stop_requested;

static void on_signal(int sig)
{
    (void)sig;
    stop_requested = 1;
}

static void usage(FILE *out)
{
    fprintf(out,
            "usage: canary-device-example --device ID --key-file F --seq-file F\n"
            "                             (--http URL | --mqtt HOST[:PORT]) [options]\n"
            "\n"
            "  --device ID             the device id (as given to canary device add)\n"
            "  --key-file F            its key: a `canary device add --keys-out` file or a file\n"
            "                          holding the 43-character key (mode 0600)\n"
            "  --seq-file F            where the seq mark is kept across restarts\n"
            "  --http URL              send to canaryd's POST URL/api/v1/ingest\n"
            "  --mqtt HOST[:PORT]      publish to <prefix>/ID/up on a broker (port 1883)\n"
            "  --mqtt-user U           broker user (default: none)\n"
            "  --mqtt-password-file F  broker password, first line of F\n"
            "  --topic-prefix P        MQTT topic prefix (default canary)\n"
            "  --ca F                  the CA's PEM file (e.g. the certificate `canary cert`\n"
            "                          made): https:// for --http, TLS to the broker for --mqtt\n"
            "  --count N               readings to send, 0 = until SIGINT/SIGTERM (default 0)\n"
            "  --interval-ms MS        between readings (default 5000)\n"
            "  --value NAME=V          send this metric with this value (repeatable); without\n"
            "                          it: simulated gas_ppm, temperature_c, humidity_pct\n"
            "  --block N               seqs reserved per write of the seq file (default 100)\n"
            "  --first-seq N|clock     a new device's first seq (default 1); \"clock\": the\n"
            "                          wall clock in ms, for a device whose seq file was lost\n"
            "  --no-ts                 send no ts: canaryd stamps the receive time\n"
            "  --quiet                 print only errors\n");
}

/* Parses a whole decimal number in [lo, hi]. */
static bool parse_num(const char *s, long long lo, long long hi, long long *out)
{
    char *end;
    errno = 0;
    long long v = strtoll(s, &end, 10);
    if (errno != 0 || end == s || *end != '\0' || v < lo || v > hi)
        return false;
    *out = v;
    return true;
}

static int parse_opts(int argc, char **argv, struct opts *o)
{
    memset(o, 0, sizeof *o);
    o->prefix = "canary";
    o->interval_ms = 5000;
    o->block = 100;
    o->first_seq = 1;
    o->mqtt_port = 1883;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (!strcmp(a, "--help")) {
            usage(stdout);
            exit(0);
        }
        if (!strcmp(a, "--no-ts")) {
            o->no_ts = true;
            continue;
        }
        if (!strcmp(a, "--quiet")) {
            o->quiet = true;
            continue;
        }
        if (i + 1 >= argc) {
            fprintf(stderr, "canary-device-example: %s needs a value (or is unknown)\n", a);
            return -1;
        }
        const char *v = argv[++i];
        long long n;
        if (!strcmp(a, "--device")) {
            o->device = v;
        } else if (!strcmp(a, "--key-file")) {
            o->key_file = v;
        } else if (!strcmp(a, "--seq-file")) {
            o->seq_file = v;
        } else if (!strcmp(a, "--http")) {
            o->http_url = v;
        } else if (!strcmp(a, "--ca")) {
            if (access(v, R_OK) != 0) {
                fprintf(stderr, "canary-device-example: --ca %s: %s\n", v, strerror(errno));
                return -1;
            }
            o->ca_file = v;
        } else if (!strcmp(a, "--mqtt")) {
            static char host[256];
            snprintf(host, sizeof host, "%s", v);
            char *colon = strrchr(host, ':');
            if (colon != NULL) {
                *colon = '\0';
                if (!parse_num(colon + 1, 1, 65535, &n)) {
                    fprintf(stderr, "canary-device-example: --mqtt %s: bad port\n", v);
                    return -1;
                }
                o->mqtt_port = (int)n;
            }
            o->mqtt_host = host;
        } else if (!strcmp(a, "--mqtt-user")) {
            o->mqtt_user = v;
        } else if (!strcmp(a, "--mqtt-password-file")) {
            o->mqtt_password_file = v;
        } else if (!strcmp(a, "--topic-prefix")) {
            o->prefix = v;
        } else if (!strcmp(a, "--count") && parse_num(v, 0, 1000000000, &n)) {
            o->count = (long)n;
        } else if (!strcmp(a, "--interval-ms") && parse_num(v, 0, 86400000, &n)) {
            o->interval_ms = (long)n;
        } else if (!strcmp(a, "--block") && parse_num(v, 1, 1000000, &n)) {
            o->block = (uint32_t)n;
        } else if (!strcmp(a, "--first-seq") && !strcmp(v, "clock")) {
            o->first_seq_clock = true;
        } else if (!strcmp(a, "--first-seq") && parse_num(v, 0, (long long)CDEV_SEQ_MAX - 1, &n)) {
            o->first_seq = (uint64_t)n;
        } else if (!strcmp(a, "--value") && strchr(v, '=') != NULL && o->n_values < MAX_VALUES) {
            const char *eq = strchr(v, '=');
            char *end;
            static char names[MAX_VALUES][CDEV_MAX_METRIC_LEN + 2];
            snprintf(names[o->n_values], sizeof names[0], "%.*s", (int)(eq - v), v);
            o->names[o->n_values] = names[o->n_values];
            o->values[o->n_values] = strtod(eq + 1, &end);
            if (end == eq + 1 || *end != '\0') {
                fprintf(stderr, "canary-device-example: --value %s: not a number\n", v);
                return -1;
            }
            o->n_values++;
        } else {
            fprintf(stderr, "canary-device-example: bad option or value: %s %s\n", a, v);
            return -1;
        }
    }
    if (o->device == NULL || o->key_file == NULL || o->seq_file == NULL ||
        (o->http_url == NULL) == (o->mqtt_host == NULL)) {
        fprintf(stderr, "canary-device-example: --device, --key-file, --seq-file and one of "
                        "--http or --mqtt are required\n");
        return -1;
    }
    return 0;
}

/* The wall clock in Unix ms (always set on a POSIX machine). */
static int64_t wall_clock_ms(void *ctx)
{
    (void)ctx;
    struct timespec ts;
    if (clock_gettime(CLOCK_REALTIME, &ts) != 0)
        return 0;
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* A pretend sensor board: gas drifting around 410 ppm, temperature and humidity in tenths. */
struct sim {
    double gas_ppm;
    unsigned rng;
};

static double sim_noise(struct sim *s)
{
    s->rng = s->rng * 1103515245u + 12345u;
    return ((double)(s->rng >> 8 & 0xffff) / 65535.0 - 0.5) * 2;
}

/* Fills the reading with the --value metrics or the simulated ones. */
static int add_values(const struct opts *o, struct sim *s, struct cdev_reading *r)
{
    if (o->n_values > 0) {
        for (int i = 0; i < o->n_values; i++) {
            int rc = cdev_reading_add(r, o->names[i], o->values[i]);
            if (rc != CDEV_OK) {
                fprintf(stderr, "canary-device-example: --value %s: %s\n", o->names[i],
                        cdev_error_name(rc));
                return rc;
            }
        }
        return CDEV_OK;
    }
    s->gas_ppm += sim_noise(s) * 2 + (410 - s->gas_ppm) * 0.1;
    int rc = cdev_reading_add_fixed(r, "gas_ppm", (int64_t)lround(s->gas_ppm * 10), 1);
    if (rc == CDEV_OK)
        rc = cdev_reading_add_fixed(r, "temperature_c", 215 + lround(sim_noise(s) * 3), 1);
    if (rc == CDEV_OK)
        rc = cdev_reading_add_fixed(r, "humidity_pct", 450 + lround(sim_noise(s) * 10), 1);
    return rc;
}

static void sleep_ms(long ms)
{
    struct timespec ts = {ms / 1000, (ms % 1000) * 1000000L};
    while (!stop_requested && nanosleep(&ts, &ts) != 0 && errno == EINTR)
        ;
}

static bool read_password(const char *path, char *out, size_t cap)
{
    FILE *f = fopen(path, "r");
    if (f == NULL)
        return false;
    bool ok = fgets(out, (int)cap, f) != NULL;
    fclose(f);
    out[strcspn(out, "\r\n")] = '\0';
    return ok;
}

int main(int argc, char **argv)
{
    struct opts o;
    if (parse_opts(argc, argv, &o) != 0) {
        usage(stderr);
        return 2;
    }
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_signal;
    sigaction(SIGINT, &sa, NULL);
    sigaction(SIGTERM, &sa, NULL);

    char key_text[44], err[512];
    if (cdev_keyfile_read(o.key_file, o.device, key_text, err, sizeof err) != 0) {
        fprintf(stderr, "canary-device-example: %s\n", err);
        return 3;
    }
    if (o.first_seq_clock) /* above any seq a counter below 1,000/s can have reached */
        o.first_seq = (uint64_t)wall_clock_ms(NULL);
    static struct cdev_seq_file seq_file; /* holds two paths: not on the stack */
    struct cdev_device dev;
    int rc = cdev_seq_file_init(&seq_file, o.seq_file);
    if (rc == CDEV_OK)
        rc = cdev_device_init(&dev, o.device, key_text, &seq_file.store, o.block, o.first_seq,
                              o.no_ts ? NULL : wall_clock_ms, NULL);
    cdev_wipe(key_text, sizeof key_text);
    if (rc != CDEV_OK) {
        fprintf(stderr, "canary-device-example: cannot start device %s (seq file %s): %s\n",
                o.device, o.seq_file, cdev_error_name(rc));
        return 3;
    }

    struct cdev_http http;
    struct cdev_mqtt mqtt;
    if (o.http_url != NULL) {
        curl_global_init(CURL_GLOBAL_DEFAULT);
        if (cdev_http_open(&http, o.http_url, o.ca_file) != 0) {
            fprintf(stderr, "canary-device-example: --http %s: bad URL or --ca\n", o.http_url);
            return 2;
        }
    } else {
        char password[256] = "";
        if (o.mqtt_password_file != NULL &&
            !read_password(o.mqtt_password_file, password, sizeof password)) {
            fprintf(stderr, "canary-device-example: cannot read %s\n", o.mqtt_password_file);
            return 3;
        }
        if (cdev_mqtt_open(&mqtt, o.mqtt_host, o.mqtt_port, o.device, o.prefix, o.mqtt_user,
                           o.mqtt_user != NULL ? password : NULL, o.ca_file, 5000, err,
                           sizeof err) != 0) {
            fprintf(stderr, "canary-device-example: %s\n", err);
            cdev_wipe(password, sizeof password);
            return 4;
        }
        cdev_wipe(password, sizeof password);
    }

    struct sim sim = {410, 12345};
    int status = 0;
    for (long i = 0; (o.count == 0 || i < o.count) && !stop_requested; i++) {
        if (i > 0)
            sleep_ms(o.interval_ms);
        if (stop_requested)
            break;
        char json[1024], token[2048], answer[512];
        struct cdev_reading r;
        rc = cdev_device_begin(&dev, &r, json, sizeof json);
        if (rc == CDEV_OK)
            rc = add_values(&o, &sim, &r);
        long n = rc == CDEV_OK ? cdev_device_sign(&dev, &r, token, sizeof token) : rc;
        if (n < 0) {
            fprintf(stderr, "canary-device-example: reading not made: %s\n",
                    cdev_error_name((int)n));
            status = 3;
            break;
        }
        if (o.http_url != NULL) {
            long http_status =
                cdev_http_send(&http, token, (size_t)n, 10000, answer, sizeof answer);
            if (http_status == 0) {
                fprintf(stderr, "canary-device-example: seq %llu: %s unreachable: %s\n",
                        (unsigned long long)r.seq, o.http_url, answer);
                status = 4;
                break;
            }
            if (http_status < 200 || http_status > 299) {
                fprintf(stderr, "canary-device-example: seq %llu refused: HTTP %ld %s\n",
                        (unsigned long long)r.seq, http_status, answer);
                status = 1;
                break;
            }
            if (!o.quiet)
                printf("seq=%llu http=%ld %s\n", (unsigned long long)r.seq, http_status, json);
        } else {
            if (cdev_mqtt_send(&mqtt, token, (size_t)n, 10000, err, sizeof err) != 0) {
                fprintf(stderr, "canary-device-example: seq %llu: %s\n", (unsigned long long)r.seq,
                        err);
                status = 4;
                break;
            }
            if (!o.quiet)
                printf("seq=%llu mqtt=puback %s\n", (unsigned long long)r.seq, json);
        }
        fflush(stdout);
    }
    if (o.http_url != NULL) {
        cdev_http_close(&http);
        curl_global_cleanup();
    } else {
        cdev_mqtt_close(&mqtt);
    }
    cdev_device_clear(&dev);
    return status;
}
