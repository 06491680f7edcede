/* reading.c — names of the reading flags. */
#include "core/reading.h"

const char *reading_flag_name(uint32_t bit)
{
    switch (bit) {
    case FLAG_WARMUP:
        return "warmup";
    case FLAG_WARN:
        return "warn";
    case FLAG_CRITICAL:
        return "critical";
    case FLAG_ANOMALY:
        return "anomaly";
    case FLAG_RATE:
        return "rate";
    case FLAG_FLATLINE:
        return "flatline";
    case FLAG_GAP:
        return "gap";
    case FLAG_LOW:
        return "low";
    case FLAG_MODEL:
        return "model";
    case FLAG_UNSIGNED:
        return "unsigned";
    case FLAG_TAMPER:
        return "tamper";
    case FLAG_QUARANTINED:
        return "quarantined";
    default:
        return NULL;
    }
}
