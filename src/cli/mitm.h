/* mitm.h — what the two man-in-the-middle proxies of `canary attack` share (internal to
 * src/cli/): the attack kinds and their rates, the payload tampering (alter a value inside a
 * JWS or a plain reading, strip a signature, forge a reading), each device's recent
 * messages (for replays), and the ground-truth file.
 *
 * mitm_tamper.c transforms payloads and is pure (no I/O, no globals). mitm_plan.c parses
 * --attack, draws which attack hits a message, keeps the history and writes the truth; its
 * functions are thread-safe where they say so (the HTTP proxy runs a thread per
 * connection). mitm_mqtt.c and mitm_http.c are the proxies; attack.c dispatches. */
#ifndef CANARY_CLI_MITM_H
#define CANARY_CLI_MITM_H

#include "core/rng.h"

#include <getopt.h>
#include <pthread.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

/* What a proxy can do to one message. The order is the order of the truth's counters. */
enum mitm_kind {
    MITM_ALTER,          /* change a value; a JWS keeps its old signature */
    MITM_DROP,           /* never deliver it (the sender is told it was) */
    MITM_DELAY,          /* deliver it --delay-ms later */
    MITM_REORDER,        /* hold it and deliver it after the device's next message */
    MITM_REPLAY,         /* deliver it, then deliver an earlier message of the device again */
    MITM_FORGE,          /* deliver it, and inject a reading signed with a made-up key */
    MITM_FORGE_UNSIGNED, /* deliver it, and inject an unsigned reading for the device */
    MITM_STRIP,          /* deliver a JWS's payload as plain JSON, without the signature */
    MITM_TOKEN_STRIP,    /* HTTP: drop the Authorization header */
    MITM_TOKEN_SWAP,     /* HTTP: present another device's bearer token */
    MITM_KIND_COUNT
};

#define MITM_NONE (-1)

/* Forged readings carry the seq they imitate plus this, so they never collide with a real
 * one and can be found in canaryd's store if one was ever accepted. */
#define MITM_FORGE_SEQ_OFFSET 1000000000.0

#define MITM_MAX_PAYLOAD  (256 * 1024) /* largest payload the tampering opens */
#define MITM_MAX_DEVICE   128
#define MITM_HISTORY_KEEP 8 /* messages remembered per device for replays */

/* "alter", "drop", "delay", "reorder", "replay", "forge", "forge-unsigned", "strip",
 * "token-strip", "token-swap". */
const char *mitm_kind_name(int kind);

/* ---- mitm_tamper.c: payloads ------------------------------------------------------------ */

/* What a payload says about itself. */
struct mitm_info {
    bool is_jws;                      /* three dot-separated parts starting "eyJ" */
    bool parsed;                      /* the reading's JSON parsed (its device and seq read) */
    char device[MITM_MAX_DEVICE + 1]; /* the JWS kid, else the reading's "device" ("" if none) */
    bool has_seq;
    double seq;
};

/* What a tampering changed, for the truth. */
struct mitm_change {
    char metric[64]; /* "" when no value changed */
    double from, to;
    double seq; /* the seq of the message sent (a forgery's own) */
    bool has_seq;
};

/* Reads payload[0..len): JWS or not, its device and seq (a batch: its first reading).
 * Never fails; what it cannot read stays empty. */
void mitm_inspect(const char *payload, size_t len, struct mitm_info *info);

/* Writes payload with one value changed into out (NUL-terminated): inside a JWS the
 * payload is decoded, changed, re-encoded as canonical base64url and put back between the
 * original header and signature (so the token still parses, and its MAC no longer
 * matches); a plain reading is changed as JSON. Returns the length, or -1 when there is no
 * numeric value to change, the payload does not parse, or out is too small. */
long mitm_alter(const char *payload, size_t len, char *out, size_t cap, struct mitm_change *chg);

/* Writes a JWS's decoded payload (the reading as plain JSON) into out. -1 when payload is
 * not a JWS or out is too small. */
long mitm_strip(const char *payload, size_t len, char *out, size_t cap);

/* Writes a forged reading modelled on payload: seq + MITM_FORGE_SEQ_OFFSET, ts now_ms, one
 * value changed; signed as a JWS with kid = the device and a random 32-byte key when
 * `sign`, else plain JSON. -1 when payload has no reading to imitate or out is too small. */
long mitm_forge(const char *payload, size_t len, bool sign, int64_t now_ms, char *out, size_t cap,
                struct mitm_change *chg);

/* The value an attacker writes over `value` of `metric`: a gas reading above 1,000 ppm
 * becomes a quiet 400 (hiding a leak), a quiet one a leak (+4,000); a percentage moves by
 * 20 points toward the middle; 0/1 flips; anything else +10. Stays physically plausible. */
double mitm_altered_value(const char *metric, double value);

/* ---- mitm_plan.c: which attack, history, truth ------------------------------------------ */

struct mitm_plan {
    double rate[MITM_KIND_COUNT]; /* share of the eligible messages each kind hits */
    double rate_sum;
    unsigned delay_ms; /* --delay-ms */
    unsigned warmup;   /* --warmup: a device's first N messages pass untouched */
    uint64_t seed;     /* --seed */
    bool http;         /* token kinds allowed */
};

/* ---- mitm_opts.c: the options both proxies take ------------------------------------------ */

struct mitm_opts {
    const char *listen, *upstream, *truth, *port_file;
    bool quiet;
    struct mitm_plan plan;
};

/* The getopt_long entries of the shared options (their short codes are l u a t d w s f q h;
 * a proxy's own options use other letters). */
#define MITM_COMMON_LONGOPTS                                                                       \
    {"listen", required_argument, NULL, 'l'}, {"upstream", required_argument, NULL, 'u'},          \
        {"attack", required_argument, NULL, 'a'}, {"truth", required_argument, NULL, 't'},         \
        {"delay-ms", required_argument, NULL, 'd'}, {"warmup", required_argument, NULL, 'w'},      \
        {"seed", required_argument, NULL, 's'}, {"port-file", required_argument, NULL, 'f'},       \
        {"quiet", no_argument, NULL, 'q'},                                                         \
    {                                                                                              \
        "help", no_argument, NULL, 'h'                                                             \
    }

/* Defaults: delay 2,000 ms, warm-up 2, seed 1; http allows the token attacks. */
void mitm_opts_defaults(struct mitm_opts *o, bool http);

/* Takes one getopt_long result. Returns 1 when it was a shared option (stored), 0 when it is
 * not one (the proxy's own, or 'h'), 2 after printing why its value is refused
 * ("canary attack <who>: ..."). */
int mitm_common_option(struct mitm_opts *o, int opt, const char *arg, const char *who);

/* After the options: --listen, --upstream and --truth given, no operand left (first_operand
 * is getopt's optind). Returns 0, or 2 after printing what is wrong. */
int mitm_common_check(const struct mitm_opts *o, int argc, char **argv, int first_operand,
                      const char *who);

/* A whole decimal number from 0 to max, nothing else. */
bool mitm_parse_uint(const char *s, unsigned long long max, unsigned long long *out);

/* Parses one --attack KIND[:RATE] (RATE in (0, 1], default 0.1) into plan. Returns 0, or -1
 * with a message in err (unknown kind, a token kind over MQTT, bad rate, rates adding up
 * to more than 1). */
int mitm_plan_add(struct mitm_plan *plan, const char *arg, char *err, size_t errlen);

/* Draws the attack for one eligible message: MITM_NONE or a kind, with probability
 * rate[kind] each. Not thread-safe (the caller's rng). */
int mitm_plan_choose(const struct mitm_plan *plan, struct rng *r);

/* A device's recent messages, for replays. Thread-safe. */
struct mitm_history;
struct mitm_history *mitm_history_new(void);
void mitm_history_free(struct mitm_history *h);
/* Remembers a copy of payload (with its topic or path, and an opaque aux string such as
 * the request's Content-Type and Authorization) as the device's latest message. Returns
 * the number of messages seen from the device so far, including this one (0 when out of
 * memory). */
uint64_t mitm_history_add(struct mitm_history *h, const char *device, const char *where,
                          const void *payload, size_t len, const char *aux);
/* How many messages of the device were remembered so far. */
uint64_t mitm_history_count(struct mitm_history *h, const char *device);
/* Copies the device's oldest remembered message (at most MITM_HISTORY_KEEP back) other
 * than its latest into malloc'd *payload, *where and *aux. Returns its length, or -1 when
 * there is none yet. */
long mitm_history_oldest(struct mitm_history *h, const char *device, char **payload, char **where,
                         char **aux);
/* Any remembered aux string of another device than `device` that starts with prefix
 * (a bearer token), copied into out. False when there is none. */
bool mitm_history_other_aux(struct mitm_history *h, const char *device, const char *prefix,
                            char *out, size_t cap);

/* The ground truth: one JSON line per attacked message, and the counters at the end.
 * Thread-safe. */
struct mitm_truth {
    FILE *fp;
    pthread_mutex_t lock;
    const char *transport; /* "mqtt", "http" */
    uint64_t attacks[MITM_KIND_COUNT];
};

/* Opens (truncates) path. Returns 0, or -1 with a message on stderr. */
int mitm_truth_open(struct mitm_truth *t, const char *path, const char *transport);

/* Writes one line: {"t_ms", "transport", "device", "kind", "seq" (when known), "done",
 * and "metric"/"from"/"to" when a value changed, plus extra members (a cJSON object or
 * NULL, consumed)} and counts the kind. */
void mitm_truth_record(struct mitm_truth *t, const char *device, int kind,
                       const struct mitm_change *chg, const char *done, void *extra_cjson);

/* Writes the closing line {"summary":true, "attacks":{kind:n}, "counters":counters
 * (a cJSON object, consumed)} and closes the file. */
void mitm_truth_close(struct mitm_truth *t, void *counters_cjson);

/* Splits "HOST:PORT" ("[v6]:PORT" too) into host and port (0..65535; 0 = any free port for
 * a listener). Returns 0 or -1. */
int mitm_split_hostport(const char *s, char *host, size_t cap, unsigned *port);

/* The subcommands (argv[0] is the subcommand's name); exit status 0, 1 or 2 (usage). */
int attack_mitm_mqtt_main(int argc, char **argv); /* mitm_mqtt.c */
int attack_mitm_http_main(int argc, char **argv); /* mitm_http.c */

#endif
