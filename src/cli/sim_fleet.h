/* sim_fleet.h — the simulated fleet behind `canary simulate`: who the devices are, what their
 * sensors read, and which readings a scenario changed (the ground truth).
 *
 * Pure library code: no I/O, no threads, no globals. A fleet is a deterministic function of
 * its configuration (the seed included): the same configuration asked for the same
 * timestamps gives the same readings, bit for bit. Devices are independent of one another:
 * asking device 3 for a reading does not change what device 7 says next, so the order in
 * which a sender polls its devices does not matter.
 *
 * Promises about values, for every device and every timestamp:
 *  - every value lies in its metric's plausible range (metric.h) and is a whole multiple of
 *    the sensor's resolution (1 ppm, 1 °C / 1 % for a DHT11, 0.1 for a DHT22, ...);
 *  - in scenario "none", no value reaches a default warn threshold (metric.c), flame is
 *    always 0, and no stuck-sensor run of identical gas values is long enough to trip the
 *    default flatline check;
 *  - a scenario adds its effect on top of the undisturbed signal and draws no random numbers
 *    of its own: a reading the scenario did not affect is exactly what the same fleet without
 *    the scenario would have sent at that timestamp.
 *
 * Every reading carries 3 to SIM_MAX_VALUES sensor metrics, fixed per device by its profile,
 * and after sim_reading_add_actuators() up to SIM_MAX_ACTUATORS actuator states besides. */
#ifndef CANARY_CLI_SIM_FLEET_H
#define CANARY_CLI_SIM_FLEET_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define SIM_MAX_VALUES       6      /* sensor metrics in one reading */
#define SIM_MAX_ACTUATORS    3      /* actuator states a reading may carry besides */
#define SIM_MAX_DEVICES      100000 /* devices in one fleet */
#define SIM_PREFIX_MAX       40     /* bytes in the device id prefix */
#define SIM_READING_JSON_MAX 512    /* bytes sim_reading_json() needs at most, NUL included */

enum sim_scenario {
    SIM_SCENARIO_NONE = 0,
    SIM_SCENARIO_GAS_LEAK,     /* gas_ppm climbs past the critical level, holds, decays */
    SIM_SCENARIO_FIRE,         /* flame 1, temperature rising fast, humidity falling */
    SIM_SCENARIO_SENSOR_FAULT, /* the gas (else temperature) sensor repeats one value */
};

/* Parses a scenario's command-line name: "none", "gas-leak", "fire", "sensor-fault".
 * Returns 0, or CANARY_EINVAL for any other string. */
int sim_scenario_parse(const char *name, enum sim_scenario *out);

/* Returns the command-line name of a scenario ("gas-leak"). Never NULL. */
const char *sim_scenario_name(enum sim_scenario s);

/* Returns the ground-truth kind of a scenario ("gas_leak", "fire", "sensor_fault"; "" for
 * none), the name canary uses for the matching alert kind. Never NULL. */
const char *sim_scenario_kind(enum sim_scenario s);

struct sim_fleet_config {
    uint64_t seed;              /* everything random derives from it */
    unsigned n_devices;         /* 1..SIM_MAX_DEVICES */
    const char *prefix;         /* ids are "<prefix>-0001", ...; copied by sim_fleet_init */
    int32_t utc_offset_s;       /* local time = UTC + this; drives the day-night cycles */
    enum sim_scenario scenario; /* SIM_SCENARIO_NONE for a clean fleet */
    unsigned scenario_devices;  /* devices the scenario affects (>= 1 with a scenario) */
    int64_t scenario_start_ms;  /* Unix ms: first instant of the scenario */
    int64_t scenario_end_ms;    /* Unix ms: the scenario covers [start, end) */
};

/* What a device is, for listings and for registering it with canaryd. */
struct sim_device_info {
    const char *id;       /* "sim-0001": the device field of its readings */
    const char *name;     /* "Kitchen 1" */
    const char *location; /* "Site 1, kitchen" */
    const char *kind;     /* its profile: "kitchen", "boiler-room", "garage", ... */
    const char *hardware; /* "ESP32 + MQ-4 + DHT11 + flame + PIR + BH1750" */
    bool in_scenario;     /* the scenario affects this device ... */
    bool scenario_source; /* ... where it starts (a gas leak also reaches the room's other gas
                             sensors: in_scenario, but not the source) */
};

/* One metric value of a reading. */
struct sim_value {
    const char *metric; /* catalogue name, "gas_ppm" (static storage) */
    double value;       /* a whole multiple of the resolution, within the plausible range */
    unsigned decimals;  /* digits after the point that represent value exactly */
};

/* One reading of one device. */
struct sim_reading {
    unsigned device; /* index into the fleet */
    int64_t ts_ms;   /* measurement time, Unix ms */
    unsigned n_values;
    struct sim_value values[SIM_MAX_VALUES + SIM_MAX_ACTUATORS];
};

/* One row of ground truth: the readings of one (device, metric) that a scenario changed. */
struct sim_truth_row {
    unsigned device;       /* index into the fleet */
    const char *device_id; /* "sim-0003" */
    const char *metric;    /* "gas_ppm" */
    int64_t start_ms;      /* ts of the first affected reading */
    int64_t end_ms;        /* ts of the last affected reading so far */
    const char *kind;      /* sim_scenario_kind() of the scenario */
};

struct sim_device; /* private to sim_fleet.c */

/* A fleet. Fields are read-only for callers; use the functions below. */
struct sim_fleet {
    struct sim_fleet_config cfg;     /* as given, prefix pointing at the copy below */
    char prefix[SIM_PREFIX_MAX + 1]; /* copy of cfg.prefix */
    unsigned n_devices;              /* cfg.n_devices */
    unsigned n_affected;             /* devices the scenario affects (0 for none) */
    struct sim_device *devices;      /* n_devices entries, owned */
};

/* Builds the fleet: assigns every device a profile (kitchen, boiler room, garage, workshop,
 * server room, warehouse), its sensors' baselines, and picks the scenario's devices among
 * those with the sensors it needs (gas-leak: gas_ppm; fire: flame and temperature_c;
 * sensor-fault: any device, those with a gas sensor first, whose gas sensor then freezes;
 * the others' temperature sensor).
 * Profiles come in shuffled decks of one of each, device 1 always being a kitchen, so any
 * fleet of 6 or more devices has every profile and even a single device can run every
 * scenario. Returns 0, or CANARY_EINVAL with a message in err (a bad configuration, or
 * fewer eligible devices than scenario_devices), or CANARY_ENOMEM. On error *f needs no
 * sim_fleet_free(). */
int sim_fleet_init(struct sim_fleet *f, const struct sim_fleet_config *cfg, char *err,
                   size_t errlen);

/* Frees what the fleet owns. Safe on a zeroed or already freed fleet. */
void sim_fleet_free(struct sim_fleet *f);

/* Returns device i's description (i < n_devices); it lives as long as the fleet. */
const struct sim_device_info *sim_fleet_device(const struct sim_fleet *f, unsigned i);

/* True when device i's readings carry the metric ("gas_ppm"). */
bool sim_fleet_has_metric(const struct sim_fleet *f, unsigned i, const char *metric);

/* Produces device i's next reading, measured at ts_ms, and advances that device's state
 * (drift, occupancy, machines, ground truth). Timestamps of one device must not decrease
 * from call to call (asserted). Cannot fail. */
void sim_fleet_reading(struct sim_fleet *f, unsigned device, int64_t ts_ms,
                       struct sim_reading *out);

/* Upper bound of the number of ground-truth rows: SIM_MAX_VALUES per affected device. */
size_t sim_fleet_truth_max(const struct sim_fleet *f);

/* Ground truth of the readings produced so far: one row per (device, metric) the scenario
 * changed, ordered by device and then by the metric's place in the reading. A reading is
 * affected while the scenario is under way (its timestamp in [start, end)) and, afterwards,
 * while the effect it left (heat, gas still in the air) moves the value by more than the
 * sensor's noise. Fills rows[0..max) and returns the number of rows, which may exceed max. */
size_t sim_fleet_truth(const struct sim_fleet *f, struct sim_truth_row *rows, size_t max);

/* Writes r as one wire-format JSON object (ARCHITECTURE.md) with the given seq:
 *   {"device":"sim-0001","seq":42,"ts":1763676000123,"values":{"gas_ppm":412,...}}
 * Values are printed with exactly their resolution's decimals, so a repeated value is a
 * repeated string. Returns the length written (NUL excluded), or CANARY_ELIMIT when buf is
 * too small (SIM_READING_JSON_MAX always suffices). */
int sim_reading_json(const struct sim_fleet *f, const struct sim_reading *r, uint64_t seq,
                     char *buf, size_t len);

/* The actuators a device may drive on command (the MQTT transport's buzzer, valve and relay
 * commands), and the metric each state is reported as: 1 = on/open, 0 = off/closed. */
enum sim_actuator {
    SIM_ACTUATOR_BUZZER = 0, /* "buzzer" */
    SIM_ACTUATOR_VALVE,      /* "valve_open" */
    SIM_ACTUATOR_RELAY,      /* "relay" */
};

/* One device's actuator states; -1 until the first command for that actuator. */
struct sim_actuators {
    int8_t state[SIM_MAX_ACTUATORS];
};

/* Sets every actuator to "never commanded". */
void sim_actuators_init(struct sim_actuators *a);

/* Returns the catalogue metric an actuator's state is reported as ("valve_open"). */
const char *sim_actuator_metric(enum sim_actuator which);

/* Appends to r, after its sensor values and in enum order, the state of each actuator that
 * has been commanded at least once, as a whole 0 or 1. A device never commanded sends exactly
 * what the model made. Cannot fail: r holds room for SIM_MAX_ACTUATORS more values, and
 * sim_reading_json() still fits in SIM_READING_JSON_MAX. Call it at most once per reading. */
void sim_reading_add_actuators(struct sim_reading *r, const struct sim_actuators *a);

#endif
