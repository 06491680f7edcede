/* sim_run.h — what the parts of `canary simulate` share (internal to src/cli/): the options,
 * the schedule of the fleet's readings, the counters every transport keeps, and the interface
 * a transport implements.
 *
 * simulate.c reads the options, builds the fleet and runs the loop; sim_sched.c keeps the
 * schedule; sim_http.c (canaryd's HTTP ingest) and sim_mqtt.c (an MQTT broker) deliver the
 * readings. Everything here runs on one thread, so nothing here locks. (The one other
 * thread, the MQTT transport's --register worker, shares nothing of this: it gets copies
 * through sim_register.h's queue.)
 *
 * The schedule. Device d's reading k falls due at
 *     base_ms + floor((k - base_k) * 1000 / --rate)      (ms after the start)
 * with base_k = 0 and base_ms = d's phase (the devices spread evenly over one period), until
 * a command gives the device a period of its own (sim_sched_set_interval()); from then on
 *     base_ms + (k - base_k) * 1000 * interval_s.
 * A reading is stamped with its due time and carries seq = start_wall_ms + k. A device is in
 * exactly one place: the heap of devices waiting for their next due time (WAITING), the
 * ready FIFO of devices with a reading due (READY), with the transport (BUSY: it popped the
 * device from the FIFO and gives it back with sim_sched_place()), or DONE when its next
 * reading falls due after the end. Readings are made only when a transport takes them
 * (sim_sched_produce()), so a backlog costs no memory: a late reading is the same reading. */
#ifndef CANARY_CLI_SIM_RUN_H
#define CANARY_CLI_SIM_RUN_H

#include "cli/sim_fleet.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define SIM_MAX_RATE_HZ      1000.0 /* keeps seq = start_ms + k below the wall clock */
#define SIM_MAX_BATCH        10000  /* canaryd's default ingest.max_batch */
#define SIM_MAX_CONNS        1024   /* --connections (HTTP) */
#define SIM_MAX_URL_LEN      400
#define SIM_HOST_MAX         255 /* bytes of the --broker host */
#define SIM_TOPIC_PREFIX_MAX 100

enum sim_transport_kind { SIM_TRANSPORT_HTTP, SIM_TRANSPORT_MQTT };

struct sim_options {
    enum sim_transport_kind transport; /* --transport */
    unsigned devices;                  /* --devices */
    double rate_hz;                    /* --rate: readings per second per device */
    double duration_s;                 /* --duration; 0 = until a signal */
    uint64_t seed;                     /* --seed */
    const char *prefix;                /* --prefix */
    enum sim_scenario scenario;
    double scenario_at_s;      /* --scenario-at; < 0 = default */
    double scenario_length_s;  /* --scenario-length */
    unsigned scenario_devices; /* --scenario-devices */
    bool scenario_opts;        /* any --scenario-* option given */
    const char *truth_path;    /* --truth */
    double drain_s;            /* --drain */
    bool quiet;                /* --quiet */
    /* HTTP; --url and --register also for MQTT, where --url is only for --register */
    const char *url;        /* --url: canaryd's base URL */
    unsigned batch;         /* --batch */
    unsigned batch_wait_ms; /* --batch-wait */
    bool batch_wait_given;
    unsigned connections;  /* --connections; 0 = min(devices, 64) */
    bool register_devices; /* --register */
    const char *sign_path; /* --sign FILE: "<device> <key>" lines; readings sent as JWS */
    const char *ca;        /* --ca FILE or $CANARY_CA: CA of an https:// --url (cli_tls.h) */
    /* MQTT */
    char broker_host[SIM_HOST_MAX + 1]; /* --broker HOST:PORT */
    unsigned broker_port;
    unsigned qos;              /* --qos 0 or 1 */
    unsigned mqtt_connections; /* --mqtt-connections; 0 = one client per device */
    const char *username;      /* --username; NULL = none */
    const char *password;      /* --password or $CANARY_MQTT_PASSWORD; NULL = none */
    const char *topic_prefix;  /* --topic-prefix */
    /* the simulated clock (canary attack device's benchmark runs an hour in a minute) */
    double speed;           /* --speed: simulated seconds per wall second; 0 means 1 */
    int64_t clock_start_ms; /* --clock-start: Unix ms of the simulated clock's start */
    bool clock_start_given;
};

enum sim_dev_state { SIM_DEV_WAITING, SIM_DEV_READY, SIM_DEV_BUSY, SIM_DEV_DONE };

/* Where one device is in its schedule. */
struct sim_sched_dev {
    uint64_t next_k;     /* readings produced so far; the next one is reading next_k */
    uint64_t base_k;     /* the reading that falls due at base_ms */
    int64_t base_ms;     /* due offset of reading base_k */
    uint32_t interval_s; /* seconds between readings from base_k on; 0 = --rate */
    int64_t ready_ms;    /* when it joined the ready FIFO */
    uint8_t state;       /* enum sim_dev_state */
};

/* A FIFO of device indexes; each device is in it at most once, so cap = devices suffices. */
struct sim_ring {
    unsigned *items;
    unsigned cap, head, count;
};

/* A binary min-heap of (due offset, device) that knows where each device sits, so that a
 * device can be taken out when its period changes. */
struct sim_heap_item {
    int64_t key;
    unsigned dev;
};

struct sim_heap {
    struct sim_heap_item *items;
    unsigned *pos; /* pos[dev]: index in items, or UINT32_MAX when not in the heap */
    unsigned count;
};

/* Latencies in a log-linear histogram (1/16 relative resolution) of microseconds. */
#define SIM_LAT_BUCKETS (32 + 60 * 16)

struct sim_latency {
    uint64_t n;
    uint64_t buckets[SIM_LAT_BUCKETS];
};

/* What every transport counts the same way. */
struct sim_counts {
    uint64_t sent;       /* readings produced and transmitted at least once */
    uint64_t late_1s;    /* readings sent more than a second after they were due */
    int64_t late_max_ms; /* the latest one */
    struct sim_latency latency;
};

struct sim;

/* What a caller of sim_run_main() may add to a run (canary attack device, attack_device.c).
 * Every function runs on the loop's thread; any may be NULL. */
struct sim_hooks {
    void *ctx;
    /* After the fleet and the transport exist, before the first reading: returns 0 to run,
     * else the exit status (2 for bad usage, with a message printed). */
    int (*ready)(void *ctx, struct sim *s);
    /* Every reading, as it is made and before it is written (seq is its seq): may change its
     * values, never its device, its ts or the number of its values. */
    void (*reading)(void *ctx, struct sim_reading *r, uint64_t seq);
    /* Every few seconds and at the end (final): write the caller's ground truth. Returns 0,
     * or -1 (the run's exit status becomes 1 when final). */
    int (*truth)(void *ctx, const struct sim *s, bool final);
};

/* Runs `canary simulate` with argv (argv[0] the command's name) and the hooks (NULL: none).
 * Returns the exit status. cmd_simulate() is sim_run_main(argc, argv, NULL). */
int sim_run_main(int argc, char **argv, const struct sim_hooks *hooks);

/* What a transport implements. Every function runs on the loop's thread. */
struct sim_transport {
    /* Bytes of the transport's state: simulate.c allocates it zeroed as sim.tp_state before
     * setup() and frees it after teardown(). */
    size_t state_size;
    /* Builds the transport's state once the fleet and the schedule exist. Returns 0, 1 with
     * a message printed, or -1 when out of memory. */
    int (*setup)(struct sim *s);
    /* Hands due readings (the ready FIFO) out and handles what came back. False when out of
     * memory. */
    bool (*step)(struct sim *s, int64_t now);
    /* Sleeps until I/O is possible or timeout_ms passes, and handles what arrived. */
    void (*wait)(struct sim *s, int timeout_ms);
    /* The earliest offset at which the transport has work of its own (a retry, a batch
     * deadline, a reconnection), now when it has work at once, wake when nothing is sooner. */
    int64_t (*next_wake)(const struct sim *s, int64_t now, int64_t wake);
    /* True while the transport holds readings or requests not yet answered. */
    bool (*outstanding)(const struct sim *s);
    /* After the loop, before the summary: a planned goodbye. NULL when there is none. */
    void (*finish)(struct sim *s);
    /* Writes where readings go, for the plan line; returns the number of connections. */
    unsigned (*describe)(const struct sim *s, char *target, size_t len);
    /* Prints a progress line (stderr). */
    void (*progress)(const struct sim *s, int64_t now);
    /* Prints the summary line (stdout) and its details (stderr, unless --quiet); due is the
     * number of readings that fell due. Returns the exit status. */
    int (*summary)(const struct sim *s, double elapsed_s, uint64_t due);
    /* Frees what the transport's state holds (not the state itself); safe after a failed
     * setup. */
    void (*teardown)(struct sim *s);
};

extern const struct sim_transport sim_http_transport;
extern const struct sim_transport sim_mqtt_transport;

/* One run of the simulator. Owned by cmd_simulate(). */
struct sim {
    struct sim_options opt;
    struct sim_fleet fleet;
    struct sim_sched_dev *dev; /* opt.devices entries */
    struct sim_heap due;       /* devices waiting for their next reading's time */
    struct sim_ring ready;     /* devices with a due reading, for the transport to take */
    int64_t start_wall_ms, start_mono_ns;
    int64_t end_ms; /* offset: readings due before it exist */
    bool stopping;
    int64_t drain_deadline_ms;
    uint64_t rng; /* backoff jitter */
    struct sim_counts st;
    const struct sim_transport *tp;
    void *tp_state; /* the transport's own (state_size bytes), built by its setup */
    struct sim_truth_row *truth_rows;
    size_t truth_cap;
    uint64_t truth_signature;      /* of the last truth file written */
    int64_t clock_start_ms;        /* Unix ms of the simulated clock's start: reading ts =
                                    * clock_start_ms + due offset (start_wall_ms unless
                                    * --clock-start) */
    const struct sim_hooks *hooks; /* NULL for a plain canary simulate */
};

/* ---- sim_keys.c (--sign) ---------------------------------------------------------------- */

/* A signed reading's size: base64url of the JSON, the header and the MAC. */
#define SIM_SIGNED_JSON_MAX (SIM_READING_JSON_MAX * 4 / 3 + 256)

/* Reads --sign FILE into *keys (DEVKEY_LEN bytes per fleet device). Returns 0, or 1 with a
 * message on stderr (unreadable file, a malformed line, a device without a key). */
int sim_keys_load(struct sim *s, uint8_t **keys);

/* Writes device d's reading json as a JWS into out. Returns its length, or -1. */
long sim_keys_sign(const struct sim *s, const uint8_t *keys, unsigned d, const char *json,
                   size_t len, char *out, size_t cap);

/* Wipes and frees the keys (NULL is allowed). */
void sim_keys_free(const struct sim *s, uint8_t *keys);

/* ---- sim_sched.c --------------------------------------------------------------------- */

/* Milliseconds of the simulated clock since the start: monotonic wall time times --speed. */
int64_t sim_now_ms(const struct sim *s);

/* Allocates the schedule of opt.devices devices, spreads them over one period and places
 * each. Returns 0 or -1 (out of memory; sim_sched_free() still cleans up). */
int sim_sched_init(struct sim *s);
void sim_sched_free(struct sim *s);

/* Due offset of device d's reading k. */
int64_t sim_sched_due(const struct sim *s, unsigned d, uint64_t k);

/* True when device d's next reading is due at now and before the end. */
bool sim_sched_has_due(const struct sim *s, unsigned d, int64_t now);

/* Puts a device that is not in the heap nor in the FIFO where it belongs: the ready FIFO,
 * the heap, or done. */
void sim_sched_place(struct sim *s, unsigned d, int64_t now);

/* Moves the devices whose next reading has come due from the heap to the ready FIFO. */
void sim_sched_promote(struct sim *s, int64_t now);

/* True while a reading is due and not yet taken, or will fall due before the end. */
bool sim_sched_pending(const struct sim *s);

/* Readings that fall due before the end, over the whole fleet. */
uint64_t sim_sched_total(const struct sim *s);

/* From now on device d sends one reading every interval_s seconds: its next reading falls due
 * one new period after the previous one (at once if that is past). A device waiting in the
 * heap or done is placed again; one in the ready FIFO or with the transport stays there, so
 * a transport takes readings from a device only while sim_sched_has_due(). */
void sim_sched_set_interval(struct sim *s, unsigned d, unsigned interval_s, int64_t now);

/* Makes device d's next reading (with its actuator states when act is not NULL), writes its
 * wire JSON into json[0..len), advances the device and counts it as sent, with its lateness.
 * Returns the length, or CANARY_ELIMIT when len is too small (SIM_READING_JSON_MAX suffices). */
int sim_sched_produce(struct sim *s, unsigned d, int64_t now, const struct sim_actuators *act,
                      char *json, size_t len);

void sim_ring_push(struct sim_ring *r, unsigned v);
unsigned sim_ring_pop(struct sim_ring *r);

/* Adds one latency of ns nanoseconds; the q-quantile in ms (0 when empty). */
void sim_latency_add(struct sim_latency *l, int64_t ns);
double sim_latency_ms(const struct sim_latency *l, double q);

/* Exponential backoff before retry number attempts + 1: 100 ms doubling up to 5 s, with
 * +-20 % jitter so that many clients do not retry in step. */
int64_t sim_backoff_ms(struct sim *s, unsigned attempts);

#endif
