/* sim_fleet.c — device profiles, sensor physics and scenarios of the simulated fleet.
 *
 * How a value is made. Each sensor of a device has a baseline drawn once from its profile's
 * range, a slow drift (an Ornstein-Uhlenbeck process: a random walk pulled back to zero,
 * clamped so that it stays bounded), a day-night cycle where the physics has one (phase from
 * the reading's local time of day), and fast noise (Gaussian, clamped at 3 sigma). The sum
 * is rounded to the sensor's resolution and clamped to the catalogue's plausible range.
 * The bounds chosen below keep every clean value under the default warn thresholds of
 * metric.c; the arithmetic is in the comment above struct profile.
 *
 * Sensors modelled (datasheet behaviour, not every quirk):
 *  - gas_ppm: MQ-4 methane sensor behind a 10-bit ADC, reported to 1 ppm; clean air reads a
 *    few hundred ppm with 1-3 % noise that scales with the signal.
 *  - temperature_c, humidity_pct: DHT11 (1 °C, 1 % steps) or DHT22 (0.1 steps).
 *  - flame: IR flame module, digital 0/1. motion: HC-SR501 PIR, 0/1 while someone is there.
 *  - light_lux: BH1750, 1 lx; daylight through windows plus lamps while occupied.
 *  - co_ppm: MQ-7-like CO sensor, 1 ppm. vibration_mm_s: machine vibration velocity (RMS),
 *    0.01 mm/s. noise_db: sound level, 0.1 dB.
 *
 * Randomness. Every device has two xoshiro256** generators seeded from (seed, device): one
 * for its fixed parameters, one for its reading-to-reading noise. Each reading consumes the
 * same number of draws whatever the scenario, which is what makes an unaffected reading
 * identical to the clean fleet's. Scenario parameters, the profile decks and the choice of
 * the scenario's devices come from streams of their own. */
#include "cli/sim_fleet.h"

#include "core/error.h"
#include "core/metric.h"
#include "core/rng.h"

#include <assert.h>
#include <ctype.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define PI 3.14159265358979323846

/* ---- random numbers ------------------------------------------------------------------ */

enum rng_stream {
    STREAM_PARAMS = 1,   /* a device's fixed parameters */
    STREAM_NOISE = 2,    /* a device's readings */
    STREAM_SCENARIO = 3, /* a device's scenario parameters */
    STREAM_DECK = 4,     /* the profile deck of a block of devices */
    STREAM_PICK = 5,     /* the choice of the scenario's devices */
};

/* Stream `stream` of device (or block) `index` of the fleet `seed` (core/rng.h). */
static void rng_seed(struct rng *r, uint64_t seed, enum rng_stream stream, uint64_t index)
{
    rng_seed_state(r, rng_mix64(seed ^ rng_mix64(((uint64_t)stream << 56) ^ rng_mix64(index + 1))));
}

static double rng_range(struct rng *r, const double range[2])
{
    return range[0] + (range[1] - range[0]) * rng_uniform(r);
}

/* Standard normal clamped to [-3, 3] (Box-Muller; always two draws). The clamp turns "very
 * unlikely" into "never" for the threshold promises of sim_fleet.h. */
static double rng_normal3(struct rng *r)
{
    double u1 = rng_uniform(r), u2 = rng_uniform(r);
    double z = sqrt(-2.0 * log(1.0 - u1)) * cos(2.0 * PI * u2);
    return z < -3.0 ? -3.0 : z > 3.0 ? 3.0 : z;
}

/* ---- profiles ------------------------------------------------------------------------ */

enum sensor_kind {
    SENSOR_GAS,
    SENSOR_CO,
    SENSOR_TEMP,
    SENSOR_HUM,
    SENSOR_FLAME,
    SENSOR_MOTION,
    SENSOR_LIGHT,
    SENSOR_VIBRATION,
    SENSOR_NOISE,
};

static const char *const sensor_metric[] = {
    [SENSOR_GAS] = "gas_ppm",        [SENSOR_CO] = "co_ppm",
    [SENSOR_TEMP] = "temperature_c", [SENSOR_HUM] = "humidity_pct",
    [SENSOR_FLAME] = "flame",        [SENSOR_MOTION] = "motion",
    [SENSOR_LIGHT] = "light_lux",    [SENSOR_VIBRATION] = "vibration_mm_s",
    [SENSOR_NOISE] = "noise_db",
};

/* A kind of room and the sensors a device there carries. Ranges are [low, high] from which
 * each device draws its own value. Worst cases against the warn thresholds:
 *   gas  600 ppm base x 1.12 drift x 1.09 noise = 733 < 1000
 *   co   6 + 1.5 drift + 3 noise = 10.5 < 50
 *   temp 30 base + 3 swing + 1 drift + 0.9 noise = 34.9 < 50 (boiler room, the warmest)
 *   hum  60 base + 6 swing + 4 drift + 1.5 noise = 71.5 < 90
 *   vibration 3.5 x 1.24 + 0.06 = 4.4 < 7.1;  noise 45 + 28 + 3 = 76 < 85 (workshop) */
struct profile {
    const char *kind; /* sent as the device kind by --register */
    const char *room; /* "Boiler room" */
    unsigned n_sensors;
    enum sensor_kind sensors[SIM_MAX_VALUES];
    double gas_ppm[2];      /* clean-air reading of the MQ-4 */
    double temp_c[2];       /* daily mean temperature */
    double temp_swing_c[2]; /* day-night amplitude (peak mid-afternoon) */
    double hum_pct[2];      /* daily mean relative humidity (lowest mid-afternoon) */
    double daylight_lux[2]; /* daylight at noon */
    double lamp_lux;        /* added by lamps while the room is occupied */
    double visits_per_h;    /* occupancy bursts per hour in the daytime (7:00-22:00) */
    double visit_s;         /* mean length of a burst */
    double ambient_db[2];   /* sound level without machines */
    double machine_mm_s[2]; /* vibration of a running machine; 0: no machines */
    double dht22_share;     /* probability of the 0.1-resolution DHT22 over the DHT11 */
};

enum profile_id {
    PROFILE_KITCHEN,
    PROFILE_BOILER_ROOM,
    PROFILE_GARAGE,
    PROFILE_WORKSHOP,
    PROFILE_SERVER_ROOM,
    PROFILE_WAREHOUSE,
    PROFILE_COUNT,
};

/* clang-format off */
static const struct profile profiles[PROFILE_COUNT] = {
    [PROFILE_KITCHEN] = {
        .kind = "kitchen", .room = "Kitchen", .n_sensors = 6,
        .sensors = {SENSOR_GAS, SENSOR_TEMP, SENSOR_HUM, SENSOR_FLAME, SENSOR_MOTION,
                    SENSOR_LIGHT},
        .gas_ppm = {300, 500}, .temp_c = {20, 24}, .temp_swing_c = {1, 2.5},
        .hum_pct = {40, 60}, .daylight_lux = {200, 600}, .lamp_lux = 250,
        .visits_per_h = 4, .visit_s = 90, .dht22_share = 0.5,
    },
    [PROFILE_BOILER_ROOM] = {
        .kind = "boiler-room", .room = "Boiler room", .n_sensors = 5,
        .sensors = {SENSOR_GAS, SENSOR_CO, SENSOR_TEMP, SENSOR_HUM, SENSOR_FLAME},
        .gas_ppm = {400, 600}, .temp_c = {25, 30}, .temp_swing_c = {1, 3},
        .hum_pct = {30, 45}, .visits_per_h = 0.5, .visit_s = 300, .dht22_share = 0.5,
    },
    [PROFILE_GARAGE] = {
        .kind = "garage", .room = "Garage", .n_sensors = 6,
        .sensors = {SENSOR_GAS, SENSOR_CO, SENSOR_TEMP, SENSOR_HUM, SENSOR_MOTION,
                    SENSOR_LIGHT},
        .gas_ppm = {300, 450}, .temp_c = {10, 18}, .temp_swing_c = {2, 3},
        .hum_pct = {50, 60}, .daylight_lux = {50, 200}, .lamp_lux = 300,
        .visits_per_h = 1, .visit_s = 240, .dht22_share = 0.3,
    },
    [PROFILE_WORKSHOP] = {
        .kind = "workshop", .room = "Workshop", .n_sensors = 6,
        .sensors = {SENSOR_TEMP, SENSOR_HUM, SENSOR_VIBRATION, SENSOR_NOISE, SENSOR_FLAME,
                    SENSOR_MOTION},
        .temp_c = {16, 22}, .temp_swing_c = {1.5, 3}, .hum_pct = {35, 55},
        .visits_per_h = 6, .visit_s = 600, .ambient_db = {35, 45},
        .machine_mm_s = {1.5, 3.5}, .dht22_share = 0.3,
    },
    [PROFILE_SERVER_ROOM] = {
        .kind = "server-room", .room = "Server room", .n_sensors = 4,
        .sensors = {SENSOR_TEMP, SENSOR_HUM, SENSOR_NOISE, SENSOR_MOTION},
        .temp_c = {19, 23}, .temp_swing_c = {0.3, 1}, .hum_pct = {40, 50},
        .visits_per_h = 0.3, .visit_s = 600, .ambient_db = {58, 66}, .dht22_share = 1.0,
    },
    [PROFILE_WAREHOUSE] = {
        .kind = "warehouse", .room = "Warehouse", .n_sensors = 5,
        .sensors = {SENSOR_TEMP, SENSOR_HUM, SENSOR_FLAME, SENSOR_MOTION, SENSOR_LIGHT},
        .temp_c = {12, 20}, .temp_swing_c = {2, 3}, .hum_pct = {45, 60},
        .daylight_lux = {1500, 4000}, .lamp_lux = 400, .visits_per_h = 3, .visit_s = 180,
        .dht22_share = 0.5,
    },
};
/* clang-format on */

/* ---- scenario shapes ----------------------------------------------------------------- */

static const double leak_peak_ppm[2] = {8000, 10000}; /* where a leak levels off */
/* A leak fills its room: every other gas sensor at the same location sees it from the same
 * instant, further from the source: a share of the source's excess, reached more slowly. */
static const double leak_room_share[2] = {0.4, 0.7};
static const double leak_room_slower[2] = {2, 4};  /* its rise's time constant, x the source's */
static const double fire_rate_c_min[2] = {10, 20}; /* heating; UL 521 alarms at 8.3/min */
static const double fire_cap_c[2] = {70, 90};      /* where the heating stops */

#define LEAK_RISE_MAX_S    20.0  /* time constant of the rise (shorter for short leaks) */
#define LEAK_DECAY_S       30.0  /* time constant of the air clearing after the leak */
#define FIRE_COOL_S        180.0 /* time constant of the cooling after the fire */
#define FIRE_HUM_SCALE_C   40.0  /* humidity falls by a factor e every 40 °C of heating */
#define FIRE_GAS_PPM_PER_C 12.0  /* combustion gases seen by the MQ-4 ... */
#define FIRE_CO_PPM_PER_C  2.0   /* ... and by the CO sensor */

/* After a scenario, its effect is cut off once it is smaller than the sensor's noise (about
 * three sigma): from then on the device reads exactly what the clean fleet reads, so "the
 * scenario changed this value" and "this reading is in the ground truth" are the same. */
#define LEAK_CUTOFF_PPM 50.0
#define HEAT_CUTOFF_C   1.0

/* ---- devices ------------------------------------------------------------------------- */

struct sensor {
    enum sensor_kind kind;
    const struct metric_info *info; /* catalogue entry: range and limits */
    double step;                    /* quantisation step of this sensor */
    unsigned decimals;              /* digits that print step exactly */
    double base;                    /* undisturbed level in the metric's unit */
    double swing;                   /* day-night amplitude */
    double noise;                   /* noise sigma (relative for gas and vibration) */
    double drift;                   /* current drift (relative for gas) */
    double drift_sd;                /* stationary spread of the drift */
    double drift_max;               /* the drift's clamp */
    double drift_tau_s;             /* how fast the drift forgets */
    bool affected;                  /* the scenario has changed a reading of this sensor */
    int64_t truth_start_ms;         /* with affected: ts of the first affected reading */
    int64_t truth_end_ms;           /* with affected: ts of the last affected reading */
};

struct sim_device {
    struct sim_device_info info;
    char id[SIM_PREFIX_MAX + 16];
    char name[32];
    char location[SIM_PREFIX_MAX + 64];
    char hardware[80];
    const struct profile *profile;
    struct rng noise;   /* reading-to-reading randomness */
    int64_t last_ts_ms; /* ts of the previous reading */
    bool started;       /* a reading has been produced */
    bool occupied;      /* someone is in the room */
    bool machine_on;    /* the workshop machine runs */
    double lamp_lux;    /* profile lamp brightness for this device */
    unsigned n_sensors;
    struct sensor sensors[SIM_MAX_VALUES];
    /* scenario */
    double leak_peak_ppm; /* gas-leak: level the leak approaches */
    double leak_slower;   /* gas-leak: its rise's time constant, x the source's (1 at the source) */
    double fire_rate_c_min; /* fire: heating rate */
    double fire_cap_c;      /* fire: temperature where heating stops */
    int fault_sensor;       /* sensor-fault: index of the frozen sensor; -1 if none */
    bool frozen;            /* sensor-fault: frozen_value holds the stuck value */
    double frozen_value;
};

static void sensor_setup(struct sensor *s, enum sensor_kind kind, const struct profile *p,
                         bool dht22, struct rng *r)
{
    memset(s, 0, sizeof *s);
    s->kind = kind;
    s->info = metric_lookup(sensor_metric[kind]);
    assert(s->info != NULL);
    s->step = 1;
    s->decimals = 0;
    s->drift_tau_s = 1800;
    switch (kind) {
    case SENSOR_GAS:
        s->base = rng_range(r, p->gas_ppm);
        s->noise = 0.01 + 0.02 * rng_uniform(r);
        s->drift_sd = 0.05;
        s->drift_max = 0.12;
        break;
    case SENSOR_CO:
        s->base = 3 + 3 * rng_uniform(r);
        s->noise = 1.0;
        s->drift_sd = 0.5;
        s->drift_max = 1.5;
        break;
    case SENSOR_TEMP:
        s->base = rng_range(r, p->temp_c);
        s->swing = rng_range(r, p->temp_swing_c);
        s->noise = dht22 ? 0.1 : 0.3;
        s->drift_sd = 0.3;
        s->drift_max = 1.0;
        break;
    case SENSOR_HUM:
        s->base = rng_range(r, p->hum_pct);
        s->swing = 2 + 4 * rng_uniform(r);
        s->noise = dht22 ? 0.3 : 0.5;
        s->drift_sd = 1.5;
        s->drift_max = 4.0;
        break;
    case SENSOR_LIGHT:
        s->base = rng_range(r, p->daylight_lux);
        s->noise = 0.02;
        s->drift_sd = 0.15;
        s->drift_max = 0.4;
        s->drift_tau_s = 600; /* clouds */
        break;
    case SENSOR_VIBRATION:
        s->base = rng_range(r, p->machine_mm_s);
        s->noise = 0.08;
        s->step = 0.01;
        s->decimals = 2;
        break;
    case SENSOR_NOISE:
        s->base = rng_range(r, p->ambient_db);
        s->noise = 1.0;
        s->step = 0.1;
        s->decimals = 1;
        break;
    case SENSOR_FLAME:
    case SENSOR_MOTION:
        break;
    }
    if ((kind == SENSOR_TEMP || kind == SENSOR_HUM) && dht22) {
        s->step = 0.1;
        s->decimals = 1;
    }
    s->drift = s->drift_sd * rng_normal3(r); /* start in the stationary distribution */
    if (fabs(s->drift) > s->drift_max)
        s->drift = copysign(s->drift_max, s->drift);
}

static const char *hardware_part(enum sensor_kind k, bool dht22)
{
    switch (k) {
    case SENSOR_GAS:
        return " + MQ-4";
    case SENSOR_CO:
        return " + MQ-7";
    case SENSOR_TEMP:
        return dht22 ? " + DHT22" : " + DHT11";
    case SENSOR_HUM:
        return "";
    case SENSOR_FLAME:
        return " + flame";
    case SENSOR_MOTION:
        return " + PIR";
    case SENSOR_LIGHT:
        return " + BH1750";
    case SENSOR_VIBRATION:
        return " + vibration";
    case SENSOR_NOISE:
        return " + microphone";
    }
    return "";
}

/* The profile of device i: devices come in blocks of PROFILE_COUNT, each block a shuffled
 * deck with one device of every profile; the first block starts with a kitchen, the
 * profile with every sensor a scenario needs. */
static enum profile_id profile_of(uint64_t seed, unsigned i)
{
    unsigned block = i / PROFILE_COUNT, pos = i % PROFILE_COUNT;
    enum profile_id deck[PROFILE_COUNT];
    for (unsigned k = 0; k < PROFILE_COUNT; k++)
        deck[k] = (enum profile_id)k;
    struct rng r;
    rng_seed(&r, seed, STREAM_DECK, block);
    for (unsigned k = PROFILE_COUNT - 1; k > 0; k--) {
        unsigned j = (unsigned)(rng_next(&r) % (k + 1));
        enum profile_id t = deck[k];
        deck[k] = deck[j];
        deck[j] = t;
    }
    if (block == 0) {
        for (unsigned k = 0; k < PROFILE_COUNT; k++) {
            if (deck[k] == PROFILE_KITCHEN) {
                deck[k] = deck[0];
                deck[0] = PROFILE_KITCHEN;
            }
        }
    }
    return deck[pos];
}

static void device_setup(struct sim_fleet *f, unsigned i, unsigned n_same_kind)
{
    struct sim_device *d = &f->devices[i];
    const struct profile *p = &profiles[profile_of(f->cfg.seed, i)];
    struct rng r;
    rng_seed(&r, f->cfg.seed, STREAM_PARAMS, i);
    memset(d, 0, sizeof *d);
    d->profile = p;
    bool dht22 = rng_uniform(&r) < p->dht22_share;
    d->lamp_lux = p->lamp_lux * (0.8 + 0.4 * rng_uniform(&r));
    d->n_sensors = p->n_sensors;
    snprintf(d->hardware, sizeof d->hardware, "ESP32");
    for (unsigned k = 0; k < p->n_sensors; k++) {
        sensor_setup(&d->sensors[k], p->sensors[k], p, dht22, &r);
        size_t used = strlen(d->hardware);
        snprintf(d->hardware + used, sizeof d->hardware - used, "%s",
                 hardware_part(p->sensors[k], dht22));
    }
    rng_seed(&d->noise, f->cfg.seed, STREAM_NOISE, i);
    snprintf(d->id, sizeof d->id, "%s-%04u", f->prefix, i + 1);
    snprintf(d->name, sizeof d->name, "%s %u", p->room, n_same_kind);
    char room_lower[32];
    snprintf(room_lower, sizeof room_lower, "%s", p->room);
    room_lower[0] = (char)tolower((unsigned char)room_lower[0]);
    /* The site is named after the prefix ("site-a" -> "Site A"), so two fleets that run side
     * by side never claim the same place; the default prefix keeps "Site 1", "Site 2", ... */
    char site[SIM_PREFIX_MAX + 16];
    if (strcmp(f->prefix, "sim") == 0) {
        snprintf(site, sizeof site, "Site %u", i / 24 + 1);
    } else {
        size_t n = 0;
        for (const char *c = f->prefix; *c && n + 1 < sizeof site; c++) {
            bool word_start = n == 0 || site[n - 1] == ' ';
            char ch = *c == '-' || *c == '_' ? ' ' : *c;
            site[n++] = word_start ? (char)toupper((unsigned char)ch) : ch;
        }
        site[n] = '\0';
        if (f->cfg.n_devices > 24) {
            size_t used = strlen(site);
            snprintf(site + used, sizeof site - used, " %u", i / 24 + 1);
        }
    }
    snprintf(d->location, sizeof d->location, "%s, %s", site, room_lower);
    d->fault_sensor = -1;
    d->info =
        (struct sim_device_info){d->id, d->name, d->location, p->kind, d->hardware, false, false};
}

static int sensor_index(const struct sim_device *d, enum sensor_kind k)
{
    for (unsigned i = 0; i < d->n_sensors; i++) {
        if (d->sensors[i].kind == k)
            return (int)i;
    }
    return -1;
}

static bool eligible(const struct sim_device *d, enum sim_scenario s)
{
    switch (s) {
    case SIM_SCENARIO_GAS_LEAK:
        return sensor_index(d, SENSOR_GAS) >= 0;
    case SIM_SCENARIO_FIRE:
        return sensor_index(d, SENSOR_FLAME) >= 0 && sensor_index(d, SENSOR_TEMP) >= 0;
    case SIM_SCENARIO_SENSOR_FAULT:
        return sensor_index(d, SENSOR_GAS) >= 0 || sensor_index(d, SENSOR_TEMP) >= 0;
    case SIM_SCENARIO_NONE:
        break;
    }
    return false;
}

static const char *needs(enum sim_scenario s)
{
    switch (s) {
    case SIM_SCENARIO_GAS_LEAK:
        return "a gas sensor (gas_ppm)";
    case SIM_SCENARIO_FIRE:
        return "flame and temperature sensors";
    default:
        return "a gas or temperature sensor";
    }
}

static void scenario_arm(struct sim_fleet *f, struct sim_device *d, unsigned i)
{
    struct rng r;
    rng_seed(&r, f->cfg.seed, STREAM_SCENARIO, i);
    d->info.in_scenario = true;
    d->info.scenario_source = true;
    d->leak_peak_ppm = rng_range(&r, leak_peak_ppm);
    d->leak_slower = 1;
    d->fire_rate_c_min = rng_range(&r, fire_rate_c_min);
    d->fire_cap_c = rng_range(&r, fire_cap_c);
    int gas = sensor_index(d, SENSOR_GAS);
    d->fault_sensor = gas >= 0 ? gas : sensor_index(d, SENSOR_TEMP);
}

/* A sensor fault is most telling on a gas sensor (the default flatline check watches gas,
 * not temperature), so devices with one are picked first. */
static bool preferred(const struct sim_device *d, enum sim_scenario s)
{
    return s != SIM_SCENARIO_SENSOR_FAULT || sensor_index(d, SENSOR_GAS) >= 0;
}

/* Arms count devices drawn from cand[from..to) (partial Fisher-Yates). */
static void pick(struct sim_fleet *f, unsigned *cand, unsigned from, unsigned to, unsigned count,
                 struct rng *r)
{
    for (unsigned k = from; k < from + count; k++) {
        unsigned j = k + (unsigned)(rng_next(r) % (to - k));
        unsigned t = cand[k];
        cand[k] = cand[j];
        cand[j] = t;
        scenario_arm(f, &f->devices[cand[k]], cand[k]);
    }
}

/* A gas leak reaches the room's other gas sensors (leak_room_share, leak_room_slower): each
 * device with a gas sensor at the location of a source (src[0..n_src), the armed devices) is
 * armed too, with its own draws. Returns how many devices were added. */
static unsigned leak_spread(struct sim_fleet *f, const unsigned *src, unsigned n_src)
{
    unsigned added = 0;
    for (unsigned i = 0; i < f->n_devices; i++) {
        struct sim_device *d = &f->devices[i];
        int gas = sensor_index(d, SENSOR_GAS);
        if (d->info.in_scenario || gas < 0)
            continue;
        const struct sim_device *s = NULL;
        for (unsigned k = 0; k < n_src && s == NULL; k++) {
            if (strcmp(f->devices[src[k]].location, d->location) == 0)
                s = &f->devices[src[k]];
        }
        if (s == NULL)
            continue;
        struct rng r;
        rng_seed(&r, f->cfg.seed, STREAM_SCENARIO, i);
        double src_excess = s->leak_peak_ppm - s->sensors[sensor_index(s, SENSOR_GAS)].base;
        d->info.in_scenario = true;
        d->leak_peak_ppm = d->sensors[gas].base + rng_range(&r, leak_room_share) * src_excess;
        d->leak_slower = rng_range(&r, leak_room_slower);
        added++;
    }
    return added;
}

/* Picks cfg.scenario_devices devices among the eligible ones, preferred ones first; a gas
 * leak then reaches the other gas sensors of their rooms (leak_spread). */
static int scenario_pick(struct sim_fleet *f, char *err, size_t errlen)
{
    enum sim_scenario sc = f->cfg.scenario;
    unsigned *cand = malloc(f->n_devices * sizeof *cand), n = 0, n_pref;
    if (cand == NULL)
        return CANARY_ENOMEM;
    for (unsigned i = 0; i < f->n_devices; i++) {
        if (eligible(&f->devices[i], sc) && preferred(&f->devices[i], sc))
            cand[n++] = i;
    }
    n_pref = n;
    for (unsigned i = 0; i < f->n_devices; i++) {
        if (eligible(&f->devices[i], sc) && !preferred(&f->devices[i], sc))
            cand[n++] = i;
    }
    unsigned want = f->cfg.scenario_devices;
    if (want > n) {
        canary_errf(err, errlen,
                    "scenario %s needs %u device%s with %s, but this fleet of %u has %u; raise "
                    "--devices or lower --scenario-devices",
                    sim_scenario_name(sc), want, want == 1 ? "" : "s", needs(sc), f->n_devices, n);
        free(cand);
        return CANARY_EINVAL;
    }
    struct rng r;
    rng_seed(&r, f->cfg.seed, STREAM_PICK, (uint64_t)sc);
    unsigned first = want < n_pref ? want : n_pref;
    pick(f, cand, 0, n_pref, first, &r);
    pick(f, cand, n_pref, n, want - first, &r);
    f->n_affected = want;
    /* the armed devices, cand[0..first) and cand[n_pref..n_pref + want - first), side by side */
    memmove(cand + first, cand + n_pref, (want - first) * sizeof *cand);
    if (sc == SIM_SCENARIO_GAS_LEAK)
        f->n_affected += leak_spread(f, cand, want);
    free(cand);
    return 0;
}

static int check_config(const struct sim_fleet_config *cfg, char *err, size_t errlen)
{
    if (cfg->n_devices < 1 || cfg->n_devices > SIM_MAX_DEVICES) {
        canary_errf(err, errlen, "the fleet must have 1 to %u devices, not %u", SIM_MAX_DEVICES,
                    cfg->n_devices);
        return CANARY_EINVAL;
    }
    const char *prefix = cfg->prefix != NULL ? cfg->prefix : "";
    size_t plen = strlen(prefix);
    if (plen == 0 || plen > SIM_PREFIX_MAX || !device_id_valid(prefix, plen, SIM_PREFIX_MAX)) {
        canary_errf(err, errlen,
                    "device id prefix '%.48s' must be 1 to %d letters, digits or . _ : -, starting "
                    "with a letter or digit",
                    prefix, SIM_PREFIX_MAX);
        return CANARY_EINVAL;
    }
    if (cfg->scenario != SIM_SCENARIO_NONE) {
        if (cfg->scenario_devices < 1) {
            canary_errf(err, errlen, "a scenario must affect at least 1 device");
            return CANARY_EINVAL;
        }
        if (cfg->scenario_end_ms <= cfg->scenario_start_ms) {
            canary_errf(err, errlen, "the scenario must end after it starts");
            return CANARY_EINVAL;
        }
    }
    return 0;
}

int sim_fleet_init(struct sim_fleet *f, const struct sim_fleet_config *cfg, char *err,
                   size_t errlen)
{
    memset(f, 0, sizeof *f);
    int rc = check_config(cfg, err, errlen);
    if (rc != 0)
        return rc;
    f->cfg = *cfg;
    snprintf(f->prefix, sizeof f->prefix, "%s", cfg->prefix);
    f->cfg.prefix = f->prefix;
    f->n_devices = cfg->n_devices;
    f->devices = calloc(f->n_devices, sizeof *f->devices);
    if (f->devices == NULL) {
        canary_errf(err, errlen, "out of memory for %u devices", f->n_devices);
        return CANARY_ENOMEM;
    }
    unsigned same_kind[PROFILE_COUNT] = {0};
    for (unsigned i = 0; i < f->n_devices; i++)
        device_setup(f, i, ++same_kind[profile_of(cfg->seed, i)]);
    if (cfg->scenario != SIM_SCENARIO_NONE && (rc = scenario_pick(f, err, errlen)) != 0) {
        if (rc == CANARY_ENOMEM)
            canary_errf(err, errlen, "out of memory");
        sim_fleet_free(f);
        return rc;
    }
    return 0;
}

void sim_fleet_free(struct sim_fleet *f)
{
    free(f->devices);
    f->devices = NULL;
    f->n_devices = 0;
    f->n_affected = 0;
}

const struct sim_device_info *sim_fleet_device(const struct sim_fleet *f, unsigned i)
{
    assert(i < f->n_devices);
    return &f->devices[i].info;
}

bool sim_fleet_has_metric(const struct sim_fleet *f, unsigned i, const char *metric)
{
    assert(i < f->n_devices);
    const struct sim_device *d = &f->devices[i];
    for (unsigned k = 0; k < d->n_sensors; k++) {
        if (strcmp(d->sensors[k].info->name, metric) == 0)
            return true;
    }
    return false;
}

/* ---- readings ------------------------------------------------------------------------ */

/* What the scenario does to a device at one instant. */
struct effect {
    bool window;     /* the scenario is under way */
    bool flame;      /* fire: the flame sensor sees it */
    double heat_c;   /* fire: degrees above the undisturbed temperature */
    double leak_ppm; /* gas-leak: methane above the undisturbed level */
};

static double leak_at(const struct sim_fleet *f, const struct sim_device *d, int64_t ts_ms)
{
    const struct sim_fleet_config *c = &f->cfg;
    double len_s = (double)(c->scenario_end_ms - c->scenario_start_ms) / 1000.0;
    double tau_s = fmin(LEAK_RISE_MAX_S, fmax(2.0, len_s / 6.0)) * d->leak_slower;
    double excess = d->leak_peak_ppm - d->sensors[sensor_index(d, SENSOR_GAS)].base;
    int64_t t = ts_ms < c->scenario_end_ms ? ts_ms : c->scenario_end_ms;
    double rise = excess * (1.0 - exp(-(double)(t - c->scenario_start_ms) / 1000.0 / tau_s));
    if (ts_ms <= c->scenario_end_ms)
        return rise;
    return rise * exp(-(double)(ts_ms - c->scenario_end_ms) / 1000.0 / LEAK_DECAY_S);
}

static double heat_at(const struct sim_fleet *f, const struct sim_device *d, int64_t ts_ms)
{
    const struct sim_fleet_config *c = &f->cfg;
    double room_c = d->sensors[sensor_index(d, SENSOR_TEMP)].base;
    int64_t t = ts_ms < c->scenario_end_ms ? ts_ms : c->scenario_end_ms;
    double heat = fmin(d->fire_rate_c_min * (double)(t - c->scenario_start_ms) / 60000.0,
                       d->fire_cap_c - room_c);
    if (ts_ms <= c->scenario_end_ms)
        return heat;
    return heat * exp(-(double)(ts_ms - c->scenario_end_ms) / 1000.0 / FIRE_COOL_S);
}

static struct effect effect_at(const struct sim_fleet *f, const struct sim_device *d, int64_t ts_ms)
{
    struct effect e = {false, false, 0, 0};
    if (!d->info.in_scenario || ts_ms < f->cfg.scenario_start_ms)
        return e;
    e.window = ts_ms < f->cfg.scenario_end_ms;
    if (f->cfg.scenario == SIM_SCENARIO_GAS_LEAK) {
        e.leak_ppm = leak_at(f, d, ts_ms);
        if (!e.window && e.leak_ppm < LEAK_CUTOFF_PPM)
            e.leak_ppm = 0;
    }
    if (f->cfg.scenario == SIM_SCENARIO_FIRE) {
        e.flame = e.window;
        e.heat_c = heat_at(f, d, ts_ms);
        if (!e.window && e.heat_c < HEAT_CUTOFF_C)
            e.heat_c = 0;
    }
    return e;
}

/* Does the device's scenario act on sensor k at all? */
static bool touches(const struct sim_fleet *f, const struct sim_device *d, unsigned k)
{
    if (!d->info.in_scenario)
        return false;
    switch (f->cfg.scenario) {
    case SIM_SCENARIO_GAS_LEAK:
        return d->sensors[k].kind == SENSOR_GAS;
    case SIM_SCENARIO_FIRE:
        return d->sensors[k].kind != SENSOR_MOTION && d->sensors[k].kind != SENSOR_LIGHT &&
               d->sensors[k].kind != SENSOR_VIBRATION && d->sensors[k].kind != SENSOR_NOISE;
    case SIM_SCENARIO_SENSOR_FAULT:
        return (int)k == d->fault_sensor;
    case SIM_SCENARIO_NONE:
        break;
    }
    return false;
}

/* Local hour of day in [0, 24). */
static double local_hour(const struct sim_fleet *f, int64_t ts_ms)
{
    const int64_t day_ms = 86400000;
    int64_t local_ms = ts_ms + (int64_t)f->cfg.utc_offset_s * 1000;
    return (double)(((local_ms % day_ms) + day_ms) % day_ms) / 3.6e6;
}

/* +1 at 15:00, -1 at 03:00: indoor temperature lags the sun by a few hours. */
static double day_cycle(double hour)
{
    return sin(2.0 * PI * (hour - 9.0) / 24.0);
}

/* Daylight through a window: 0 at night, 1 at noon. */
static double daylight(double hour)
{
    return hour > 6.0 && hour < 18.0 ? sin(PI * (hour - 6.0) / 12.0) : 0.0;
}

/* Two-state Markov switch over dt_s: turns on at on_per_s, off after mean_on_s on average.
 * Always consumes one draw. */
static bool markov(struct rng *r, bool on, double on_per_s, double mean_on_s, double dt_s)
{
    double u = rng_uniform(r);
    if (on)
        return !(u < 1.0 - exp(-dt_s / mean_on_s));
    return u < 1.0 - exp(-dt_s * on_per_s);
}

static void advance_room(struct sim_device *d, double hour, double dt_s)
{
    const struct profile *p = d->profile;
    bool day = hour >= 7.0 && hour < 22.0;
    double visits_per_s = p->visits_per_h / 3600.0 * (day ? 1.0 : 0.1);
    d->occupied = markov(&d->noise, d->occupied, visits_per_s, p->visit_s, dt_s);
    bool shift = hour >= 8.0 && hour < 18.0;
    double starts_per_s = p->machine_mm_s[1] > 0 && shift ? 1.0 / 900.0 : 0.0;
    d->machine_on =
        markov(&d->noise, d->machine_on, starts_per_s, 1200.0, dt_s) && starts_per_s > 0;
}

/* Ornstein-Uhlenbeck step of the drift over dt_s (exact discretisation); one draw. */
static void drift_step(struct sensor *s, struct rng *r, double dt_s)
{
    double keep = exp(-dt_s / s->drift_tau_s);
    double z = rng_normal3(r);
    s->drift = s->drift * keep + s->drift_sd * sqrt(1.0 - keep * keep) * z;
    if (fabs(s->drift) > s->drift_max)
        s->drift = copysign(s->drift_max, s->drift);
}

/* The undisturbed and the scenario's value of sensor s (before rounding). Consumes the
 * same draws whatever the effect: two normals and one uniform. */
static void sensor_value(struct sim_device *d, struct sensor *s, double hour,
                         const struct effect *e, double *clean, double *actual)
{
    double z = rng_normal3(&d->noise);
    double u = rng_uniform(&d->noise);
    switch (s->kind) {
    case SENSOR_GAS: {
        double level = s->base * (1.0 + s->drift);
        *clean = level * (1.0 + s->noise * z);
        *actual = (level + e->leak_ppm + FIRE_GAS_PPM_PER_C * e->heat_c) * (1.0 + s->noise * z);
        return;
    }
    case SENSOR_CO:
        *clean = s->base + s->drift + s->noise * z;
        *actual = *clean + FIRE_CO_PPM_PER_C * e->heat_c;
        return;
    case SENSOR_TEMP:
        *clean = s->base + s->swing * day_cycle(hour) + s->drift + s->noise * z;
        *actual = *clean + e->heat_c;
        return;
    case SENSOR_HUM:
        *clean = s->base - s->swing * day_cycle(hour) + s->drift + s->noise * z;
        *actual = *clean * exp(-e->heat_c / FIRE_HUM_SCALE_C);
        return;
    case SENSOR_FLAME:
        *clean = 0;
        *actual = e->flame ? 1 : 0;
        return;
    case SENSOR_MOTION:
        /* A PIR retriggers on movement: mostly 1 while someone is there. */
        *clean = *actual = d->occupied && u < 0.8 ? 1 : 0;
        return;
    case SENSOR_LIGHT:
        *clean = s->base * daylight(hour) * (1.0 + s->drift) * (1.0 + s->noise * z) +
                 (d->occupied ? d->lamp_lux : 0.0);
        *actual = *clean;
        return;
    case SENSOR_VIBRATION:
        *clean = (d->machine_on ? s->base : 0.05) * (1.0 + s->noise * z) + 0.02 * u;
        *actual = *clean;
        return;
    case SENSOR_NOISE:
        *clean = s->base + (d->machine_on ? 28.0 : 0.0) + s->noise * z;
        *actual = *clean;
        return;
    }
}

static double quantise(const struct sensor *s, double v)
{
    v = round(v / s->step) * s->step;
    if (v < s->info->min)
        v = s->info->min;
    if (v > s->info->max)
        v = s->info->max;
    return v + 0.0; /* no "-0.0" on the wire */
}

static void truth_note(struct sensor *s, int64_t ts_ms)
{
    if (!s->affected) {
        s->affected = true;
        s->truth_start_ms = ts_ms;
    }
    s->truth_end_ms = ts_ms;
}

/* Sensor-fault: the sensor repeats the value it read at the start of the fault. */
static double fault_value(struct sim_device *d, const struct effect *e, double v)
{
    if (!e->window) {
        d->frozen = false;
        return v;
    }
    if (!d->frozen) {
        d->frozen = true;
        d->frozen_value = v;
    }
    return d->frozen_value;
}

void sim_fleet_reading(struct sim_fleet *f, unsigned device, int64_t ts_ms, struct sim_reading *out)
{
    assert(device < f->n_devices);
    struct sim_device *d = &f->devices[device];
    assert(!d->started || ts_ms >= d->last_ts_ms);
    double dt_s = d->started ? (double)(ts_ms - d->last_ts_ms) / 1000.0 : 0.0;
    d->started = true;
    d->last_ts_ms = ts_ms;
    double hour = local_hour(f, ts_ms);
    struct effect e = effect_at(f, d, ts_ms);
    advance_room(d, hour, dt_s);
    out->device = device;
    out->ts_ms = ts_ms;
    out->n_values = d->n_sensors;
    for (unsigned k = 0; k < d->n_sensors; k++) {
        struct sensor *s = &d->sensors[k];
        drift_step(s, &d->noise, dt_s);
        double clean = 0, actual = 0;
        sensor_value(d, s, hour, &e, &clean, &actual);
        double v = quantise(s, actual);
        if (touches(f, d, k)) {
            if (f->cfg.scenario == SIM_SCENARIO_SENSOR_FAULT)
                v = fault_value(d, &e, v);
            if (e.window || actual != clean)
                truth_note(s, ts_ms);
        }
        out->values[k] = (struct sim_value){s->info->name, v, s->decimals};
    }
}

/* ---- ground truth and wire format ---------------------------------------------------- */

/* printf at buf + *used; false (and nothing counted) when it does not fit. */
static bool append(char *buf, size_t len, size_t *used, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));
static bool append(char *buf, size_t len, size_t *used, const char *fmt, ...)
{
    if (*used >= len)
        return false;
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(buf + *used, len - *used, fmt, ap);
    va_end(ap);
    if (n < 0 || (size_t)n >= len - *used)
        return false;
    *used += (size_t)n;
    return true;
}

size_t sim_fleet_truth_max(const struct sim_fleet *f)
{
    return (size_t)f->n_affected * SIM_MAX_VALUES;
}

size_t sim_fleet_truth(const struct sim_fleet *f, struct sim_truth_row *rows, size_t max)
{
    size_t n = 0;
    for (unsigned i = 0; i < f->n_devices; i++) {
        const struct sim_device *d = &f->devices[i];
        if (!d->info.in_scenario)
            continue;
        for (unsigned k = 0; k < d->n_sensors; k++) {
            const struct sensor *s = &d->sensors[k];
            if (!s->affected)
                continue;
            if (n < max)
                rows[n] = (struct sim_truth_row){i,
                                                 d->id,
                                                 s->info->name,
                                                 s->truth_start_ms,
                                                 s->truth_end_ms,
                                                 sim_scenario_kind(f->cfg.scenario)};
            n++;
        }
    }
    return n;
}

int sim_reading_json(const struct sim_fleet *f, const struct sim_reading *r, uint64_t seq,
                     char *buf, size_t len)
{
    assert(r->device < f->n_devices);
    size_t used = 0;
    bool ok = append(buf, len, &used, "{\"device\":\"%s\",\"seq\":%llu,\"ts\":%lld,\"values\":{",
                     f->devices[r->device].id, (unsigned long long)seq, (long long)r->ts_ms);
    for (unsigned k = 0; ok && k < r->n_values; k++) {
        const struct sim_value *v = &r->values[k];
        ok = append(buf, len, &used, "%s\"%s\":%.*f", k > 0 ? "," : "", v->metric, (int)v->decimals,
                    v->value);
    }
    ok = ok && append(buf, len, &used, "}}");
    return ok ? (int)used : CANARY_ELIMIT;
}

/* ---- actuators ---------------------------------------------------------------------- */

static const char *const actuator_metrics[SIM_MAX_ACTUATORS] = {"buzzer", "valve_open", "relay"};

void sim_actuators_init(struct sim_actuators *a)
{
    for (unsigned i = 0; i < SIM_MAX_ACTUATORS; i++)
        a->state[i] = -1;
}

const char *sim_actuator_metric(enum sim_actuator which)
{
    assert((unsigned)which < SIM_MAX_ACTUATORS);
    return actuator_metrics[which];
}

void sim_reading_add_actuators(struct sim_reading *r, const struct sim_actuators *a)
{
    assert(r->n_values <= SIM_MAX_VALUES);
    for (unsigned i = 0; i < SIM_MAX_ACTUATORS; i++) {
        if (a->state[i] >= 0)
            r->values[r->n_values++] =
                (struct sim_value){actuator_metrics[i], a->state[i] > 0 ? 1.0 : 0.0, 0};
    }
}

/* ---- scenario names ------------------------------------------------------------------ */

static const struct {
    enum sim_scenario scenario;
    const char *name, *kind;
} scenario_names[] = {
    {SIM_SCENARIO_NONE, "none", ""},
    {SIM_SCENARIO_GAS_LEAK, "gas-leak", "gas_leak"},
    {SIM_SCENARIO_FIRE, "fire", "fire"},
    {SIM_SCENARIO_SENSOR_FAULT, "sensor-fault", "sensor_fault"},
};

int sim_scenario_parse(const char *name, enum sim_scenario *out)
{
    for (size_t i = 0; i < sizeof scenario_names / sizeof scenario_names[0]; i++) {
        if (strcmp(name, scenario_names[i].name) == 0) {
            *out = scenario_names[i].scenario;
            return 0;
        }
    }
    return CANARY_EINVAL;
}

const char *sim_scenario_name(enum sim_scenario s)
{
    for (size_t i = 0; i < sizeof scenario_names / sizeof scenario_names[0]; i++) {
        if (scenario_names[i].scenario == s)
            return scenario_names[i].name;
    }
    return "none";
}

const char *sim_scenario_kind(enum sim_scenario s)
{
    for (size_t i = 0; i < sizeof scenario_names / sizeof scenario_names[0]; i++) {
        if (scenario_names[i].scenario == s)
            return scenario_names[i].kind;
    }
    return "";
}
