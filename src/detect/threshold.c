/* threshold.c — warn/critical limits with hysteresis (see detect.h).
 *
 * Each side (high, low) has a level: none, warn or critical. A level is entered when the
 * value reaches its limit and left only when the value is back inside by the hysteresis,
 * so a signal hovering at a limit crosses it once. Leaving critical falls back to warn if
 * the value is still beyond the warn limit (less the hysteresis). */
#include "detect/detect.h"

#include <math.h>

/* Level on the high side for x, given the current level. NAN limits are off. */
static uint8_t high_level(uint8_t cur, double warn, double crit, double h, double x)
{
    if (!isnan(crit) && (x >= crit || (cur == THRESHOLD_CRITICAL && x > crit - h)))
        return THRESHOLD_CRITICAL;
    if (!isnan(warn) && (x >= warn || (cur >= THRESHOLD_WARN && x > warn - h)))
        return THRESHOLD_WARN;
    /* Dropping out of critical with no warn limit configured still honours hysteresis. */
    return THRESHOLD_NONE;
}

uint32_t threshold_update(struct threshold_state *s, const struct metric_limits *l, double x)
{
    double h = l->hysteresis > 0 ? l->hysteresis : 0;
    s->high = high_level(s->high, l->warn_high, l->crit_high, h, x);
    /* The low side is the high side of the negated value. */
    s->low = high_level(s->low, -l->warn_low, -l->crit_low, h, -x);
    uint8_t lvl = s->high >= s->low ? s->high : s->low;
    uint32_t flags = 0;
    if (lvl == THRESHOLD_CRITICAL)
        flags |= FLAG_CRITICAL;
    else if (lvl == THRESHOLD_WARN)
        flags |= FLAG_WARN;
    if (lvl != THRESHOLD_NONE && s->low > s->high)
        flags |= FLAG_LOW;
    return flags;
}
