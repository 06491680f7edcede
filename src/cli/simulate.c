/* simulate.c — `canary simulate`: a simulated fleet (sim_fleet.h) sending its readings, on
 * schedule, as real devices would: to canaryd over HTTP (sim_http.c) or to an MQTT broker
 * (sim_mqtt.c). This file reads the options, runs the loop both transports share, and
 * writes the ground truth and the summary.
 *
 * Promises, whatever the transport:
 *  - every device sends rate_hz readings a second, each at its due time (devices are spread
 *    evenly over the period so the load is smooth), stamped with that due time; seq starts
 *    at the run's start in wall-clock Unix ms and rises by one per reading (sim_sched.c);
 *  - a reading is never dropped while the run lasts: when the receiver is slow or away,
 *    readings wait and go out late with their original ts, and what was not confirmed is
 *    sent again; only what is still unconfirmed when the run ends (after the drain window)
 *    counts as failed;
 *  - the ground-truth CSV, when asked for, is complete whenever the process exits normally,
 *    including after SIGINT/SIGTERM (it is also rewritten atomically every few seconds);
 *  - exit status 0 when nothing failed or was rejected, 1 otherwise, 2 for bad usage.
 *
 * One thread runs everything: the schedule (sim_sched.c) moves devices whose reading is due
 * to a FIFO, the transport takes them from there, and the loop sleeps in the transport's
 * wait() until the next due reading or I/O. */
#include "cli/cli_tls.h"
#include "cli/commands.h"
#include "cli/sim_register.h"
#include "cli/sim_run.h"

#include "core/clock.h"
#include "core/error.h"
#include "core/metric.h"

#include <errno.h>
#include <inttypes.h>
#include <math.h>
#include <signal.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define PROGRESS_MS       10000 /* progress line interval */
#define TRUTH_REWRITE_MS  5000  /* ground-truth rewrite interval */
#define POLL_MAX_MS       100   /* longest sleep: how fast a signal is noticed */
#define MQTT_SHARED_ABOVE 1000  /* devices above which MQTT clients are shared by default */
#define MQTT_SHARED_CONNS 64    /* the default number of shared MQTT clients */

/* The only global: how many SIGINT/SIGTERM have arrived. */
static volatile sig_atomic_t stop_signals;

static void on_stop_signal(int sig)
{
    (void)sig;
    if (stop_signals < 100)
        stop_signals++;
}

/* ---- options ------------------------------------------------------------------------- */

static void usage(FILE *out)
{
    fprintf(out,
            "usage: canary simulate [options]\n"
            "\n"
            "Sends readings from a simulated fleet of sensor devices to canaryd over HTTP\n"
            "(POST <url>/api/v1/ingest, JSON), or to an MQTT broker (--transport mqtt), on\n"
            "schedule, with many requests in flight on kept-alive connections. Devices are\n"
            "kitchens, boiler rooms, garages, workshops, server rooms and warehouses with gas,\n"
            "temperature, humidity, flame, motion, light, CO, vibration and noise sensors; in a\n"
            "clean run no default alert limit is reached.\n"
            "\n"
            "options:\n"
            "  --devices N            devices in the fleet (default 10, at most %u)\n"
            "  --rate R               readings per second per device, fractions allowed\n"
            "                         (default 1, at most %.0f)\n"
            "  --duration S           seconds to run (default 60); 0 runs until SIGINT/SIGTERM\n"
            "  --seed K               seed of the fleet: same seed, same devices and values\n"
            "                         (default 1)\n"
            "  --prefix P             device ids are P-0001, P-0002, ... (default sim)\n"
            "  --scenario NAME        none (default), gas-leak, fire or sensor-fault\n"
            "  --scenario-at S        seconds after the start when it begins (default a third\n"
            "                         of the duration, or 60 when the duration is 0)\n"
            "  --scenario-length S    seconds it lasts (default 120)\n"
            "  --scenario-devices K   devices it affects, chosen from the seed among those with\n"
            "                         the sensors it needs (default 1)\n"
            "  --truth FILE.csv       write the ground truth: device,metric,start_ms,end_ms,kind\n"
            "                         (one row per affected device and metric; Unix ms of the\n"
            "                         first and last affected reading)\n"
            "  --drain S              after the run (or the first SIGINT), seconds to keep\n"
            "                         delivering what is queued or retrying (default 10);\n"
            "                         a second SIGINT stops at once\n"
            "  --quiet                print only the summary line\n"
            "  --speed X              run the simulated clock X times faster than the wall\n"
            "                         clock (default 1; --rate x X at most %.0f): readings\n"
            "                         are stamped with simulated time, --duration, --scenario-at\n"
            "                         and --scenario-length are simulated seconds\n"
            "  --clock-start T        the simulated clock's start: Unix ms, or -S for S\n"
            "                         seconds before now (default now); e.g. --speed 60\n"
            "                         --clock-start -3600 --duration 3600 sends the last hour\n"
            "                         in a minute, ending about now\n"
            "  --transport T          http (default) or mqtt\n"
            "  --sign FILE            sign every reading as a JWS (HS256, kid = device id) with\n"
            "                         the device's key from FILE: lines \"<device> <key>\", as\n"
            "                         `canary device add --keys-out FILE` writes them\n"
            "  --help                 show this help\n"
            "\n"
            "HTTP (--transport http):\n"
            "  --url URL              canaryd's base URL (default http://127.0.0.1:8080)\n"
            "  --ca FILE              CA of an https:// --url (default $CANARY_CA, else the\n"
            "                         system's CA store; canary cert's cert.pem)\n"
            "  --batch B              send up to B due readings per request as a JSON array,\n"
            "                         as a gateway does (default 1: each device its own client;\n"
            "                         at most %u)\n"
            "  --batch-wait MS        with --batch: send a partial batch once its oldest\n"
            "                         reading has waited MS milliseconds (default 100)\n"
            "  --connections C        kept-alive connections, which is also the most requests\n"
            "                         in flight (default min(devices, 64), at most %u)\n"
            "  --register             after a device's first accepted reading, PATCH\n"
            "                         <url>/api/v1/devices/<id> with its name, location, kind\n"
            "\n"
            "MQTT (--transport mqtt):\n"
            "  --register             after a device's first reading is PUBACKed (QoS 0:\n"
            "                         written), PATCH <url>/api/v1/devices/<id> with its name,\n"
            "                         location, kind, from a thread of its own; a 404 (canaryd\n"
            "                         has not stored the reading yet) is retried for %d s\n"
            "  --url URL              with --register only: canaryd's base URL for it (default\n"
            "                         http://127.0.0.1:8080); readings go to the broker\n"
            "  --broker HOST:PORT     the broker (default 127.0.0.1:1883)\n"
            "  --qos Q                QoS of the readings, 0 or 1 (default 1)\n"
            "  --mqtt-connections N   MQTT clients the devices share; 0 = one client per device\n"
            "                         (default 0 up to %d devices, %d above)\n"
            "  --username U           user name for the broker (default none)\n"
            "  --password P           its password (default $CANARY_MQTT_PASSWORD, if set)\n"
            "  --topic-prefix T       topics are T/<device>/up, .../status, .../cmd\n"
            "                         (default canary)\n"
            "\n"
            "Each device's seq starts at the Unix milliseconds of the simulator's start and\n"
            "rises by one per reading, so a restarted simulator never reuses a seq canaryd has\n"
            "stored. HTTP: 503/429 answers are retried after Retry-After, connection errors with\n"
            "backoff, both with the same seq. MQTT: a lost connection is reopened with backoff\n"
            "and what the broker had not acknowledged is published again. Readings are never\n"
            "dropped while the run lasts.\n"
            "\n"
            "The summary line (stdout) counts readings. HTTP: sent, accepted, duplicates (409),\n"
            "rejected (400, 413 and other refusals), failed (never answered by the end), the\n"
            "achieved readings/s and the p50/p99 request latency. MQTT: sent, acked (PUBACK, or\n"
            "written at QoS 0), failed, commands received, readings/s and the p50/p99\n"
            "publish-to-PUBACK latency. With --register, both add registered, register_404\n"
            "(HTTP: 404 answers, registration given up; MQTT: 404 answers, retried) and\n"
            "register_failed (MQTT: refused, given up after %d s, or still waiting at the end).\n"
            "Exit status: 0 when no reading failed or was rejected, 1 otherwise, 2 for bad\n"
            "usage.\n",
            SIM_MAX_DEVICES, SIM_MAX_RATE_HZ, SIM_MAX_RATE_HZ, SIM_MAX_BATCH, SIM_MAX_CONNS,
            SIM_REGISTER_GIVE_UP_MS / 1000, MQTT_SHARED_ABOVE, MQTT_SHARED_CONNS,
            SIM_REGISTER_GIVE_UP_MS / 1000);
}

static int bad_usage(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static int bad_usage(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    fprintf(stderr, "canary simulate: ");
    vfprintf(stderr, fmt, ap);
    fprintf(stderr, "\n(see canary simulate --help)\n");
    va_end(ap);
    return 2;
}

static int parse_double(const char *opt, const char *s, double lo, double hi, bool lo_open,
                        double *out)
{
    char *end;
    errno = 0;
    double v = strtod(s, &end);
    if (*s == '\0' || *end != '\0' || errno != 0 || !isfinite(v) || v < lo || v > hi ||
        (lo_open && v == lo))
        return bad_usage("%s must be a number %s %.15g %s %.15g, got '%s'", opt,
                         lo_open ? "above" : "from", lo, lo_open ? "and at most" : "to", hi, s);
    *out = v;
    return 0;
}

static int parse_unsigned(const char *opt, const char *s, unsigned lo, unsigned hi, unsigned *out)
{
    char *end;
    errno = 0;
    unsigned long long v = strtoull(s, &end, 10);
    if (*s < '0' || *s > '9' || *end != '\0' || errno != 0 || v < lo || v > hi)
        return bad_usage("%s must be a whole number from %u to %u, got '%s'", opt, lo, hi, s);
    *out = (unsigned)v;
    return 0;
}

static int parse_u64(const char *opt, const char *s, uint64_t *out)
{
    char *end;
    errno = 0;
    unsigned long long v = strtoull(s, &end, 10);
    if (*s < '0' || *s > '9' || *end != '\0' || errno != 0)
        return bad_usage("%s must be a whole number from 0 to 2^64-1, got '%s'", opt, s);
    *out = v;
    return 0;
}

static int check_url(const char *url)
{
    size_t n = strlen(url);
    const char *host = strncmp(url, "http://", 7) == 0    ? url + 7
                       : strncmp(url, "https://", 8) == 0 ? url + 8
                                                          : NULL;
    if (host == NULL || *host == '\0' || *host == '/')
        return bad_usage("--url must be an http:// or https:// URL with a host, got '%s'", url);
    if (n > SIM_MAX_URL_LEN)
        return bad_usage("--url is longer than %d bytes", SIM_MAX_URL_LEN);
    for (const char *p = url; *p != '\0'; p++) {
        if ((unsigned char)*p <= ' ' || *p == '?' || *p == '#')
            return bad_usage("--url must be a base URL without spaces, query or fragment, "
                             "got '%s'",
                             url);
    }
    return 0;
}

/* --broker HOST:PORT, [IPv6]:PORT. */
static int parse_broker(struct sim_options *o, const char *val)
{
    const char *colon = strrchr(val, ':'), *host = val;
    size_t hlen = colon != NULL ? (size_t)(colon - val) : 0;
    bool bracketed = hlen >= 2 && val[0] == '[' && val[hlen - 1] == ']';
    if (bracketed) {
        host++;
        hlen -= 2;
    }
    bool ok = colon != NULL && hlen > 0 && hlen <= SIM_HOST_MAX;
    for (size_t i = 0; ok && i < hlen; i++)
        ok = (unsigned char)host[i] > ' ' && host[i] != '/' && host[i] != '[' && host[i] != ']' &&
             (bracketed || host[i] != ':');
    if (!ok)
        return bad_usage("--broker must be HOST:PORT (an IPv6 address in brackets), got '%s'", val);
    memcpy(o->broker_host, host, hlen);
    o->broker_host[hlen] = '\0';
    return parse_unsigned("--broker's port", colon + 1, 1, 65535, &o->broker_port);
}

static int check_topic_prefix(const char *val)
{
    size_t n = strlen(val);
    bool ok = n > 0 && n <= SIM_TOPIC_PREFIX_MAX && val[0] != '/' && val[n - 1] != '/';
    for (const char *p = val; ok && *p != '\0'; p++)
        ok = (unsigned char)*p >= 0x20 && *p != 0x7f && *p != '+' && *p != '#';
    if (!ok)
        return bad_usage("--topic-prefix must be 1 to %d bytes without wildcards (+ #), control "
                         "characters or a leading or trailing '/', got '%s'",
                         SIM_TOPIC_PREFIX_MAX, val);
    return 0;
}

static int set_string(const char **field, const char *val)
{
    *field = val;
    return 0;
}

/* Options that belong to one transport; naming one with the other is a usage error.
 * --register works with both; --url too, but with mqtt only for --register (finish_options). */
static const char *const http_only[] = {"--batch", "--batch-wait", "--connections"};
static const char *const mqtt_only[] = {"--broker",   "--qos",      "--mqtt-connections",
                                        "--username", "--password", "--topic-prefix"};

/* Returns the entry of list equal to name, or NULL. */
static const char *in_list(const char *name, const char *const *list, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        if (!strcmp(name, list[i]))
            return list[i];
    }
    return NULL;
}

/* What parse_options() remembers besides the options themselves. */
struct given {
    const char *http_only; /* an HTTP-only option given, or NULL */
    const char *mqtt_only; /* an MQTT-only option given, or NULL */
    bool mqtt_connections;
    bool url; /* --url given */
};

static int apply_mqtt_option(struct sim_options *o, const char *name, const char *val)
{
    if (!strcmp(name, "--broker"))
        return parse_broker(o, val);
    if (!strcmp(name, "--qos"))
        return parse_unsigned(name, val, 0, 1, &o->qos);
    if (!strcmp(name, "--mqtt-connections"))
        return parse_unsigned(name, val, 0, SIM_MAX_DEVICES, &o->mqtt_connections);
    if (!strcmp(name, "--topic-prefix"))
        return check_topic_prefix(val) != 0 ? 2 : set_string(&o->topic_prefix, val);
    if (*val == '\0' || strlen(val) > 256)
        return bad_usage("%s must be 1 to 256 bytes", name);
    return set_string(!strcmp(name, "--username") ? &o->username : &o->password, val);
}

/* --clock-start: Unix ms (up to a day ahead), or -S: S seconds before now. */
static int parse_clock_start(struct sim_options *o, const char *val)
{
    int64_t now = clock_wall_ms();
    if (val[0] == '-') {
        double back_s;
        int rc = parse_double("--clock-start -S", val + 1, 0, 10 * 365 * 86400.0, false, &back_s);
        if (rc != 0)
            return rc;
        o->clock_start_ms = now - (int64_t)llround(back_s * 1000);
    } else {
        uint64_t ms = 0; /* -O3 cannot see that parse_u64 sets it whenever it returns 0 */
        int rc = parse_u64("--clock-start", val, &ms);
        if (rc != 0)
            return rc;
        if (ms > (uint64_t)(now + 86400000))
            return bad_usage("--clock-start %s is more than a day ahead of the wall clock", val);
        o->clock_start_ms = (int64_t)ms;
    }
    o->clock_start_given = true;
    return 0;
}

/* Applies one option that takes a value. Returns 0 or 2. */
static int apply_option(struct sim_options *o, const char *name, const char *val)
{
    const double max_s = 10 * 365 * 86400.0;
    if (!strncmp(name, "--scenario-", 11))
        o->scenario_opts = true;
    if (in_list(name, mqtt_only, sizeof mqtt_only / sizeof mqtt_only[0]) != NULL)
        return apply_mqtt_option(o, name, val);
    if (!strcmp(name, "--transport")) {
        if (strcmp(val, "http") != 0 && strcmp(val, "mqtt") != 0)
            return bad_usage("--transport must be http or mqtt, got '%s'", val);
        o->transport = !strcmp(val, "mqtt") ? SIM_TRANSPORT_MQTT : SIM_TRANSPORT_HTTP;
        return 0;
    }
    if (!strcmp(name, "--devices"))
        return parse_unsigned(name, val, 1, SIM_MAX_DEVICES, &o->devices);
    if (!strcmp(name, "--rate"))
        return parse_double(name, val, 0, SIM_MAX_RATE_HZ, true, &o->rate_hz);
    if (!strcmp(name, "--duration"))
        return parse_double(name, val, 0, max_s, false, &o->duration_s);
    if (!strcmp(name, "--seed"))
        return parse_u64(name, val, &o->seed);
    if (!strcmp(name, "--url"))
        return check_url(val) != 0 ? 2 : set_string(&o->url, val);
    if (!strcmp(name, "--prefix")) {
        size_t n = strlen(val);
        if (n == 0 || n > SIM_PREFIX_MAX || !device_id_valid(val, n, SIM_PREFIX_MAX))
            return bad_usage("--prefix must be 1 to %d letters, digits or . _ : -, starting "
                             "with a letter or digit, got '%s'",
                             SIM_PREFIX_MAX, val);
        return set_string(&o->prefix, val);
    }
    if (!strcmp(name, "--truth")) {
        if (*val == '\0' || strlen(val) > 4000)
            return bad_usage("--truth needs a file name of 1 to 4000 bytes");
        return set_string(&o->truth_path, val);
    }
    if (!strcmp(name, "--scenario")) {
        if (sim_scenario_parse(val, &o->scenario) != 0)
            return bad_usage("--scenario must be none, gas-leak, fire or sensor-fault, got "
                             "'%s'",
                             val);
        return 0;
    }
    if (!strcmp(name, "--scenario-at"))
        return parse_double(name, val, 0, max_s, false, &o->scenario_at_s);
    if (!strcmp(name, "--scenario-length"))
        return parse_double(name, val, 0, max_s, true, &o->scenario_length_s);
    if (!strcmp(name, "--scenario-devices"))
        return parse_unsigned(name, val, 1, SIM_MAX_DEVICES, &o->scenario_devices);
    if (!strcmp(name, "--batch"))
        return parse_unsigned(name, val, 1, SIM_MAX_BATCH, &o->batch);
    if (!strcmp(name, "--batch-wait")) {
        o->batch_wait_given = true;
        return parse_unsigned(name, val, 0, 60000, &o->batch_wait_ms);
    }
    if (!strcmp(name, "--connections"))
        return parse_unsigned(name, val, 1, SIM_MAX_CONNS, &o->connections);
    if (!strcmp(name, "--sign"))
        return set_string(&o->sign_path, val);
    if (!strcmp(name, "--ca"))
        return set_string(&o->ca, val);
    if (!strcmp(name, "--drain"))
        return parse_double(name, val, 0, 3600, false, &o->drain_s);
    if (!strcmp(name, "--speed"))
        return parse_double(name, val, 0, SIM_MAX_RATE_HZ, true, &o->speed);
    if (!strcmp(name, "--clock-start"))
        return parse_clock_start(o, val);
    return bad_usage("unknown option '%s'", name);
}

static bool takes_value(const char *name)
{
    static const char *const names[] = {
        "--devices",          "--rate",  "--duration",   "--seed",        "--url",
        "--prefix",           "--truth", "--scenario",   "--scenario-at", "--scenario-length",
        "--scenario-devices", "--batch", "--batch-wait", "--connections", "--drain",
        "--transport",        "--sign",  "--speed",      "--clock-start", "--ca"};
    return in_list(name, names, sizeof names / sizeof names[0]) != NULL ||
           in_list(name, mqtt_only, sizeof mqtt_only / sizeof mqtt_only[0]) != NULL;
}

/* Cross-option checks and defaults, after every option is read. */
static int finish_options(struct sim_options *o, const struct given *g)
{
    if (o->transport == SIM_TRANSPORT_MQTT && g->http_only != NULL)
        return bad_usage("%s is for --transport http", g->http_only);
    if (o->transport == SIM_TRANSPORT_HTTP && g->mqtt_only != NULL)
        return bad_usage("%s is for --transport mqtt", g->mqtt_only);
    if (o->transport == SIM_TRANSPORT_MQTT && g->url && !o->register_devices)
        return bad_usage("--url with --transport mqtt only says where --register names the "
                         "devices (readings go to --broker): add --register, or drop --url");
    if (o->scenario == SIM_SCENARIO_NONE && o->scenario_opts)
        return bad_usage("--scenario-at, --scenario-length and --scenario-devices need "
                         "--scenario gas-leak, fire or sensor-fault");
    if (o->sign_path != NULL && o->batch != 1)
        return bad_usage("--sign sends each reading as its own JWS: drop --batch");
    if (o->batch_wait_given && o->batch < 2)
        return bad_usage("--batch-wait needs --batch 2 or more");
    if (o->speed == 0)
        o->speed = 1;
    if (o->rate_hz * o->speed > SIM_MAX_RATE_HZ)
        return bad_usage("--rate %g times --speed %g is above %.0f readings per wall second per "
                         "device (seqs must stay below the wall clock's ms)",
                         o->rate_hz, o->speed, SIM_MAX_RATE_HZ);
    if (o->scenario_at_s < 0)
        o->scenario_at_s = o->duration_s > 0 ? o->duration_s / 3 : 60;
    if (o->scenario != SIM_SCENARIO_NONE && o->duration_s > 0 && o->scenario_at_s >= o->duration_s)
        return bad_usage("--scenario-at %g is not before the end of the run (--duration %g)",
                         o->scenario_at_s, o->duration_s);
    if (o->scenario_devices > o->devices)
        return bad_usage("--scenario-devices %u is more than --devices %u", o->scenario_devices,
                         o->devices);
    if (o->connections == 0)
        o->connections = o->devices < 64 ? o->devices : 64;
    o->ca = cli_tls_ca(o->ca);
    if ((o->transport == SIM_TRANSPORT_HTTP || o->register_devices) &&
        !cli_tls_check_ca("canary simulate", o->ca))
        return 2;
    if (o->password == NULL && o->transport == SIM_TRANSPORT_MQTT) {
        const char *env = getenv("CANARY_MQTT_PASSWORD");
        o->password = env != NULL && *env != '\0' ? env : NULL;
    }
    if (o->password != NULL && o->username == NULL)
        return bad_usage("a password (--password or $CANARY_MQTT_PASSWORD) needs --username");
    if (!g->mqtt_connections)
        o->mqtt_connections = o->devices <= MQTT_SHARED_ABOVE ? 0 : MQTT_SHARED_CONNS;
    if (o->mqtt_connections >= o->devices)
        o->mqtt_connections = 0;
    return 0;
}

/* Returns 0 to run, 1 when --help was printed, 2 for bad usage. Accepts "--opt value" and
 * "--opt=value". */
static int parse_options(int argc, char **argv, struct sim_options *o)
{
    *o = (struct sim_options){.devices = 10,
                              .rate_hz = 1,
                              .duration_s = 60,
                              .seed = 1,
                              .url = "http://127.0.0.1:8080",
                              .scenario_at_s = -1,
                              .scenario_length_s = 120,
                              .scenario_devices = 1,
                              .prefix = "sim",
                              .batch = 1,
                              .batch_wait_ms = 100,
                              .drain_s = 10,
                              .broker_host = "127.0.0.1",
                              .broker_port = 1883,
                              .qos = 1,
                              .topic_prefix = "canary"};
    struct given g = {0};
    for (int i = 1; i < argc; i++) {
        const char *arg = argv[i], *eq = strchr(arg, '=');
        size_t nlen = eq != NULL ? (size_t)(eq - arg) : strlen(arg);
        char name[32];
        snprintf(name, sizeof name, "%.*s", (int)(nlen < 31 ? nlen : 31), arg);
        if (!strcmp(name, "--help") || !strcmp(name, "-h")) {
            usage(stdout);
            return 1;
        }
        const char *h = in_list(name, http_only, sizeof http_only / sizeof http_only[0]);
        const char *m = in_list(name, mqtt_only, sizeof mqtt_only / sizeof mqtt_only[0]);
        g.http_only = h != NULL ? h : g.http_only;
        g.mqtt_only = m != NULL ? m : g.mqtt_only;
        g.mqtt_connections |= !strcmp(name, "--mqtt-connections");
        g.url |= !strcmp(name, "--url");
        if (!strcmp(name, "--register") || !strcmp(name, "--quiet")) {
            if (eq != NULL)
                return bad_usage("%s takes no value", name);
            if (!strcmp(name, "--register"))
                o->register_devices = true;
            else
                o->quiet = true;
            continue;
        }
        if (arg[0] != '-')
            return bad_usage("unexpected argument '%s'", arg);
        if (!takes_value(name) || nlen >= sizeof name)
            return bad_usage("unknown option '%.*s'", (int)nlen, arg);
        const char *val = eq != NULL ? eq + 1 : i + 1 < argc ? argv[++i] : NULL;
        if (val == NULL)
            return bad_usage("%s needs a value", name);
        int rc = apply_option(o, name, val);
        if (rc != 0)
            return rc;
    }
    return finish_options(o, &g);
}

/* ---- ground truth -------------------------------------------------------------------- */

/* Rewrites the truth file atomically (temporary file, then rename). Returns 0 or -1 with
 * errno set. */
static int truth_write(struct sim *s)
{
    size_t n = sim_fleet_truth(&s->fleet, s->truth_rows, s->truth_cap);
    char tmp[4096];
    snprintf(tmp, sizeof tmp, "%s.tmp", s->opt.truth_path);
    FILE *f = fopen(tmp, "w");
    if (f == NULL)
        return -1;
    fprintf(f, "device,metric,start_ms,end_ms,kind\n");
    uint64_t sig = n;
    for (size_t i = 0; i < n && i < s->truth_cap; i++) {
        const struct sim_truth_row *r = &s->truth_rows[i];
        fprintf(f, "%s,%s,%" PRId64 ",%" PRId64 ",%s\n", r->device_id, r->metric, r->start_ms,
                r->end_ms, r->kind);
        sig = sig * 31 + (uint64_t)r->end_ms;
    }
    int err = ferror(f);
    if (fclose(f) != 0 || err != 0 || rename(tmp, s->opt.truth_path) != 0) {
        int saved = errno;
        remove(tmp);
        errno = saved;
        return -1;
    }
    s->truth_signature = sig;
    return 0;
}

/* Rewrites the truth file when it has changed since the last write. */
static void truth_refresh(struct sim *s)
{
    size_t n = sim_fleet_truth(&s->fleet, s->truth_rows, s->truth_cap);
    uint64_t sig = n;
    for (size_t i = 0; i < n && i < s->truth_cap; i++)
        sig = sig * 31 + (uint64_t)s->truth_rows[i].end_ms;
    if (sig != s->truth_signature && truth_write(s) != 0)
        fprintf(stderr, "canary simulate: cannot write %s: %s\n", s->opt.truth_path,
                strerror(errno));
}

/* ---- setup --------------------------------------------------------------------------- */

static int32_t local_utc_offset_s(int64_t wall_ms)
{
    time_t t = (time_t)(wall_ms / 1000);
    struct tm tm;
    if (localtime_r(&t, &tm) == NULL)
        return 0;
    return (int32_t)tm.tm_gmtoff;
}

static int setup_fleet(struct sim *s)
{
    const struct sim_options *o = &s->opt;
    int64_t at_ms = s->clock_start_ms + (int64_t)llround(o->scenario_at_s * 1000);
    struct sim_fleet_config cfg = {
        .seed = o->seed,
        .n_devices = o->devices,
        .prefix = o->prefix,
        .utc_offset_s = local_utc_offset_s(s->clock_start_ms),
        .scenario = o->scenario,
        .scenario_devices = o->scenario == SIM_SCENARIO_NONE ? 0 : o->scenario_devices,
        .scenario_start_ms = at_ms,
        .scenario_end_ms = at_ms + (int64_t)llround(o->scenario_length_s * 1000),
    };
    char err[256];
    int rc = sim_fleet_init(&s->fleet, &cfg, err, sizeof err);
    if (rc == CANARY_EINVAL)
        return bad_usage("%s", err);
    if (rc != 0) {
        fprintf(stderr, "canary simulate: %s\n", err);
        return 1;
    }
    return 0;
}

/* Builds the fleet, the schedule, the transport and the truth file's header.
 * Returns 0, 1 (run-time failure) or 2 (bad usage). */
static int prepare(struct sim *s)
{
    s->start_wall_ms = clock_wall_ms();
    s->start_mono_ns = clock_mono_ns();
    s->clock_start_ms = s->opt.clock_start_given ? s->opt.clock_start_ms : s->start_wall_ms;
    s->rng = (s->opt.seed * 0x9e3779b97f4a7c15ull) | 1; /* xorshift state must not be 0 */
    int rc = setup_fleet(s);
    if (rc != 0)
        return rc;
    s->truth_cap = sim_fleet_truth_max(&s->fleet);
    s->truth_rows = malloc((s->truth_cap + 1) * sizeof *s->truth_rows);
    rc = s->truth_rows == NULL || sim_sched_init(s) != 0 ? -1 : 0;
    /* the transport's teardown runs when its state exists: only ever right before setup */
    if (rc == 0 && (s->tp_state = calloc(1, s->tp->state_size)) != NULL)
        rc = s->tp->setup(s);
    else
        rc = -1;
    if (rc < 0) {
        fprintf(stderr, "canary simulate: out of memory\n");
        return 1;
    }
    if (rc != 0)
        return rc;
    if (s->opt.truth_path != NULL && truth_write(s) != 0)
        return bad_usage("cannot write --truth %s: %s", s->opt.truth_path, strerror(errno));
    return 0;
}

static void teardown(struct sim *s)
{
    if (s->tp_state != NULL)
        s->tp->teardown(s);
    free(s->tp_state);
    sim_sched_free(s);
    free(s->truth_rows);
    sim_fleet_free(&s->fleet);
}

/* ---- reporting ----------------------------------------------------------------------- */

/* Prints "167 kitchen, 166 boiler-room, ..." in order of first appearance. */
static void print_kinds(const struct sim *s)
{
    const char *kinds[16];
    unsigned counts[16], n = 0;
    for (unsigned d = 0; d < s->opt.devices; d++) {
        const char *kind = sim_fleet_device(&s->fleet, d)->kind;
        unsigned k = 0;
        while (k < n && strcmp(kinds[k], kind) != 0)
            k++;
        if (k == n && n < 16) {
            kinds[n] = kind;
            counts[n++] = 0;
        }
        if (k < n)
            counts[k]++;
    }
    for (unsigned k = 0; k < n; k++)
        fprintf(stderr, "%s%u %s", k ? ", " : "", counts[k], kinds[k]);
}

static void print_plan(const struct sim *s)
{
    const struct sim_options *o = &s->opt;
    fprintf(stderr, "canary simulate: %u devices (", o->devices);
    print_kinds(s);
    char length[48], target[SIM_MAX_URL_LEN + SIM_TOPIC_PREFIX_MAX + 64];
    if (o->duration_s > 0)
        snprintf(length, sizeof length, "for %g s", o->duration_s);
    else
        snprintf(length, sizeof length, "until interrupted");
    unsigned conns = s->tp->describe(s, target, sizeof target);
    fprintf(stderr, ") at %g Hz %s -> %s, seed %" PRIu64 ", %u connections", o->rate_hz, length,
            target, o->seed, conns);
    if (o->batch > 1)
        fprintf(stderr, ", batches of up to %u", o->batch);
    fprintf(stderr, "\n");
    /* a simulated clock that outruns the wall clock stamps readings in the future */
    int64_t ahead_s = o->duration_s > 0 ? (s->clock_start_ms - s->start_wall_ms) / 1000 +
                                              (int64_t)(o->duration_s * (1 - 1 / o->speed))
                                        : 0;
    if (o->speed > 1 && ahead_s > 300)
        fprintf(stderr,
                "canary simulate: note: the last readings will be stamped %" PRId64 " s ahead of "
                "the wall clock; canaryd refuses a ts more than ingest.max_future_s (300 s by "
                "default) ahead: start the clock earlier (--clock-start -%g)\n",
                ahead_s, o->duration_s);
    if (o->scenario == SIM_SCENARIO_NONE)
        return;
    fprintf(stderr, "canary simulate: scenario %s at +%g s for %g s on",
            sim_scenario_name(o->scenario), o->scenario_at_s, o->scenario_length_s);
    unsigned listed = 0;
    for (unsigned d = 0; d < o->devices; d++) {
        const struct sim_device_info *i = sim_fleet_device(&s->fleet, d);
        if (i->in_scenario && listed++ < 20)
            fprintf(stderr, " %s (%s%s)", i->id, i->name,
                    i->scenario_source ? "" : ", the same room");
    }
    if (listed > 20)
        fprintf(stderr, " and %u more", listed - 20);
    fprintf(stderr, "\n");
    if (o->duration_s > 0 && o->scenario_at_s + o->scenario_length_s > o->duration_s)
        fprintf(stderr, "canary simulate: note: the run ends before the scenario does\n");
}

/* ---- the loop ------------------------------------------------------------------------ */

static void begin_stop(struct sim *s, int64_t now, bool by_signal)
{
    s->stopping = true;
    if (now + 1 < s->end_ms)
        s->end_ms = now + 1; /* readings due up to now still go out; none after */
    s->drain_deadline_ms = now + (int64_t)llround(s->opt.drain_s * 1000 * s->opt.speed);
    if (by_signal && !s->opt.quiet)
        fprintf(stderr,
                "canary simulate: stopping; delivering what is queued for up to %g s "
                "(interrupt again to stop now)\n",
                s->opt.drain_s);
}

/* How long the loop may sleep: until the next due reading, the end, the transport's next
 * deadline, or POLL_MAX_MS; 0 when the transport has work now. */
static int poll_timeout_ms(const struct sim *s, int64_t now)
{
    int64_t wake = now + POLL_MAX_MS;
    if (s->due.count > 0 && s->due.items[0].key < wake)
        wake = s->due.items[0].key;
    if (!s->stopping && s->end_ms < wake)
        wake = s->end_ms;
    wake = s->tp->next_wake(s, now, wake);
    return wake > now ? (int)ceil((double)(wake - now) / s->opt.speed) : 0; /* wall ms */
}

static int run(struct sim *s)
{
    /* progress and truth on the wall clock's cadence, whatever --speed */
    const int64_t progress_ms = (int64_t)(PROGRESS_MS * s->opt.speed);
    const int64_t truth_ms = (int64_t)(TRUTH_REWRITE_MS * s->opt.speed);
    int64_t next_progress = progress_ms, next_truth = truth_ms;
    for (;;) {
        int64_t now = sim_now_ms(s);
        if (stop_signals > 0 && !s->stopping)
            begin_stop(s, now, true);
        if (!s->stopping && now >= s->end_ms)
            begin_stop(s, now, false);
        if (s->stopping && ((!sim_sched_pending(s) && !s->tp->outstanding(s)) ||
                            now >= s->drain_deadline_ms || stop_signals > 1))
            return 0;
        sim_sched_promote(s, now);
        if (!s->tp->step(s, now)) {
            fprintf(stderr, "canary simulate: out of memory\n");
            return -1;
        }
        now = sim_now_ms(s);
        if (!s->opt.quiet && now >= next_progress) {
            s->tp->progress(s, now);
            next_progress += progress_ms;
        }
        if ((s->opt.truth_path != NULL || s->hooks != NULL) && now >= next_truth) {
            if (s->opt.truth_path != NULL)
                truth_refresh(s);
            if (s->hooks != NULL && s->hooks->truth != NULL)
                s->hooks->truth(s->hooks->ctx, s, false);
            next_truth = now + truth_ms;
        }
        s->tp->wait(s, poll_timeout_ms(s, now));
    }
}

static void install_signals(struct sigaction *old_int, struct sigaction *old_term,
                            struct sigaction *old_pipe)
{
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_stop_signal;
    sigemptyset(&sa.sa_mask);
    sigaction(SIGINT, &sa, old_int);
    sigaction(SIGTERM, &sa, old_term);
    sa.sa_handler = SIG_IGN;
    sigaction(SIGPIPE, &sa, old_pipe);
}

/* Runs the fleet until the end or a signal, then writes the truth and the summary.
 * Returns the exit status. */
static int run_and_report(struct sim *s)
{
    if (!s->opt.quiet)
        print_plan(s);
    struct sigaction old_int, old_term, old_pipe;
    stop_signals = 0;
    install_signals(&old_int, &old_term, &old_pipe);
    int rc = run(s) != 0 ? 1 : 0;
    double elapsed_s = (double)(clock_mono_ns() - s->start_mono_ns) / 1e9;
    int64_t now = sim_now_ms(s);
    if (now + 1 < s->end_ms)
        s->end_ms = now + 1; /* a run cut short counts only what fell due */
    if (s->tp->finish != NULL)
        s->tp->finish(s);
    if (s->opt.truth_path != NULL && truth_write(s) != 0) {
        fprintf(stderr, "canary simulate: cannot write %s: %s\n", s->opt.truth_path,
                strerror(errno));
        rc = 1;
    }
    if (s->hooks != NULL && s->hooks->truth != NULL && s->hooks->truth(s->hooks->ctx, s, true) != 0)
        rc = 1;
    int summary_rc = s->tp->summary(s, elapsed_s, sim_sched_total(s));
    sigaction(SIGINT, &old_int, NULL);
    sigaction(SIGTERM, &old_term, NULL);
    sigaction(SIGPIPE, &old_pipe, NULL);
    return rc != 0 ? rc : summary_rc;
}

int cmd_simulate(int argc, char **argv)
{
    return sim_run_main(argc, argv, NULL);
}

int sim_run_main(int argc, char **argv, const struct sim_hooks *hooks)
{
    struct sim *s = calloc(1, sizeof *s);
    if (s == NULL) {
        fprintf(stderr, "canary simulate: out of memory\n");
        return 1;
    }
    int rc = parse_options(argc, argv, &s->opt);
    if (rc != 0) {
        free(s);
        return rc == 1 ? 0 : rc;
    }
    s->tp = s->opt.transport == SIM_TRANSPORT_MQTT ? &sim_mqtt_transport : &sim_http_transport;
    s->hooks = hooks;
    rc = prepare(s);
    if (rc == 0 && hooks != NULL && hooks->ready != NULL)
        rc = hooks->ready(hooks->ctx, s);
    if (rc == 0)
        rc = run_and_report(s);
    teardown(s);
    free(s);
    return rc;
}
