/* robust.c — robust streaming level and scale, and the anomaly score (see detect.h).
 *
 * level: EWMA of the value; scale: EWMA of the absolute residual, which for Gaussian
 * noise is sigma * sqrt(2/pi), hence sigma ~ 1.2533 * scale. Residuals are clipped at
 * CLIP_SIGMAS before they update level and scale (a Huber-style update), so one spike
 * moves neither much. During warm-up the weights are 1/n (a running mean), so the first
 * values converge fast instead of starting from a guess.
 *
 * score = 1 - 2^(-(z / z_half)^2): 0 at z = 0, 0.5 at z = z_half, 0.94 at 2 z_half.
 * A shift that lasts warmup_readings consecutive anomalous values in one direction is a
 * new normal: the level jumps to it and the score falls back, instead of staying high for
 * the hundreds of values a clipped EWMA would need to walk there. */
#include "detect/detect.h"

#include <float.h>
#include <math.h>
#include <stdlib.h>

#define SIGMA_PER_MAD 1.2533141373155003 /* sqrt(pi/2) */
#define CLIP_SIGMAS   3.0

/* The scale as a standard deviation, never below the resolution or the relative floor. */
static double sigma_of(const struct robust_state *s, const struct detect_params *p, double floor)
{
    double sigma = SIGMA_PER_MAD * s->scale;
    double rel = p->min_relative_scale * fabs(s->level);
    return fmax(sigma, fmax(floor, rel));
}

/* x - level, saturated at +/-DBL_MAX: two finite values can differ by more than a double holds,
 * and an infinite residual would turn the level into inf - inf = NaN for good. */
static double residual(double x, double level)
{
    double r = x - level;
    return isinf(r) ? copysign(DBL_MAX, r) : r;
}

double robust_update(struct robust_state *s, const struct detect_params *p, double floor, double x,
                     bool learn, bool *warm)
{
    if (!learn) {
        *warm = s->n <= p->warmup_readings; /* nothing (or too little) learned to judge by */
        if (*warm)
            return 0;
        double z = fabs(residual(x, s->level)) / sigma_of(s, p, floor);
        return 1 - exp2(-(z / p->z_half) * (z / p->z_half));
    }
    s->n++;
    if (s->n == 1) {
        s->level = x;
        s->scale = 0;
        s->run = 0;
        *warm = true;
        return 0;
    }
    double sigma = sigma_of(s, p, floor);
    double r = residual(x, s->level);
    double z = fabs(r) / sigma;
    *warm = s->n <= p->warmup_readings;
    double score = *warm ? 0 : 1 - exp2(-(z / p->z_half) * (z / p->z_half));

    if (!*warm && score >= p->anomaly_threshold) {
        /* An anomaly teaches level and scale nothing: learning from it (even clipped) grows
         * the scale ~14% per value, so a shift would be absorbed by an inflated scale after a
         * handful of values and leave the detector blind. Only a run of warmup_readings
         * anomalies in one direction is a new normal: the level jumps to it, the scale stays. */
        int32_t dir = r > 0 ? 1 : -1;
        s->run = (s->run * dir > 0) ? s->run + dir : dir;
        if ((uint32_t)abs(s->run) >= p->warmup_readings) {
            s->level = x;
            s->run = 0;
        }
        return score;
    }
    s->run = 0;

    double a_level = 1.0 / s->n > p->level_alpha ? 1.0 / s->n : p->level_alpha;
    double a_scale = 1.0 / s->n > p->scale_alpha ? 1.0 / s->n : p->scale_alpha;
    double rc = r;
    if (!*warm) {
        double lim = CLIP_SIGMAS * sigma;
        rc = r > lim ? lim : (r < -lim ? -lim : r);
    }
    s->level += a_level * rc;
    s->scale += a_scale * (fabs(rc) - s->scale);
    return score;
}
