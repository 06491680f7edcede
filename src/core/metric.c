/* metric.c — the metric catalogue. Sources of the defaults are in docs/DETECTORS.md:
 * gas levels follow fractions of the lower explosive limit of methane (LEL 50,000 ppm:
 * warn at 2% LEL, critical at 10% LEL, the usual alarm point of fixed gas detectors);
 * CO follows UL 2034 alarm points; the temperature rate limit is the 8.3 °C/min
 * (15 °F/min) rate-of-rise of UL 521 heat detectors; vibration follows ISO 10816-3
 * zone boundaries for medium machines; noise the 85 dB(A) action level. */
#include "core/metric.h"

#include <math.h>
#include <string.h>

#define OFF NAN

static const struct metric_info catalogue[] = {
    {"gas_ppm", "ppm", "Gas", 0, 1e6, 1, false, {1000, 5000, OFF, OFF, 50, 1000, 60}},
    {"co_ppm", "ppm", "Carbon monoxide", 0, 1e5, 1, false, {50, 150, OFF, OFF, 5, 50, 60}},
    {"co2_ppm", "ppm", "Carbon dioxide", 0, 1e6, 1, false, {2000, 5000, OFF, OFF, 100, 1000, 60}},
    {"smoke_ppm", "ppm", "Smoke", 0, 1e6, 1, false, {300, 1000, OFF, OFF, 20, 300, 60}},
    {"temperature_c", "°C", "Temperature", -60, 150, 0.1, false, {50, 65, OFF, OFF, 1, 8.3, 0}},
    {"humidity_pct", "%", "Humidity", 0, 100, 0.1, false, {90, OFF, OFF, OFF, 2, 30, 0}},
    {"pressure_hpa", "hPa", "Pressure", 300, 1100, 0.1, false, {OFF, OFF, OFF, OFF, 1, OFF, 0}},
    {"flame", "", "Flame", 0, 1, 1, true, {OFF, 0.5, OFF, OFF, 0, OFF, 0}},
    {"motion", "", "Motion", 0, 1, 1, true, {OFF, OFF, OFF, OFF, 0, OFF, 0}},
    {"light_lux", "lx", "Light", 0, 200000, 1, false, {OFF, OFF, OFF, OFF, 0, OFF, 0}},
    {"vibration_mm_s",
     "mm/s",
     "Vibration",
     0,
     1000,
     0.01,
     false,
     {7.1, 11.2, OFF, OFF, 0.5, OFF, 60}},
    {"noise_db", "dB", "Noise", 0, 194, 0.1, false, {85, 100, OFF, OFF, 2, OFF, 60}},
    /* Actuator states a device reports back after a command (docs/MQTT.md): 1 = on/open. */
    {"buzzer", "", "Buzzer", 0, 1, 1, true, {OFF, OFF, OFF, OFF, 0, OFF, 0}},
    {"valve_open", "", "Valve open", 0, 1, 1, true, {OFF, OFF, OFF, OFF, 0, OFF, 0}},
    {"relay", "", "Relay", 0, 1, 1, true, {OFF, OFF, OFF, OFF, 0, OFF, 0}},
};

static const struct metric_info generic = {"",       "", "",    -INFINITY,
                                           INFINITY, 0,  false, {OFF, OFF, OFF, OFF, 0, OFF, 0}};

const struct metric_info *metric_lookup(const char *name)
{
    /* Called for every value (verify, new series): compare the first byte before the rest. */
    for (size_t i = 0; i < sizeof catalogue / sizeof catalogue[0]; i++) {
        if (catalogue[i].name[0] == name[0] && strcmp(catalogue[i].name, name) == 0)
            return &catalogue[i];
    }
    return NULL;
}

const struct metric_info *metric_info_or_generic(const char *name)
{
    const struct metric_info *m = metric_lookup(name);
    return m != NULL ? m : &generic;
}

size_t metric_catalogue_size(void)
{
    return sizeof catalogue / sizeof catalogue[0];
}

const struct metric_info *metric_catalogue_entry(size_t i)
{
    return i < metric_catalogue_size() ? &catalogue[i] : NULL;
}

bool metric_name_valid(const char *s, size_t len, size_t max_len)
{
    if (len == 0 || len > max_len || !(s[0] >= 'a' && s[0] <= 'z'))
        return false;
    for (size_t i = 1; i < len; i++) {
        char c = s[i];
        if (!((c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '_'))
            return false;
    }
    return true;
}

bool device_id_valid(const char *s, size_t len, size_t max_len)
{
    if (len == 0 || len > max_len)
        return false;
    for (size_t i = 0; i < len; i++) {
        char c = s[i];
        bool alnum = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9');
        if (i == 0 && !alnum)
            return false;
        if (!alnum && c != '.' && c != '_' && c != ':' && c != '-')
            return false;
    }
    return true;
}
