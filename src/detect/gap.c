/* gap.c — gaps in a device's stream of readings (see detect.h).
 *
 * The usual interval is an EWMA of the intervals between readings (by the device's
 * timestamps, so a backlog sent late still shows its real spacing). An interval longer
 * than gap_factor x usual and than gap_min flags the reading and does not teach the
 * EWMA, so one outage does not make the next one look normal. The first three intervals
 * only teach. Three long intervals in a row are a new rhythm, not gaps: the interval is
 * relearned from them. */
#include "detect/detect.h"

#define GAP_ALPHA      0.1
#define GAP_NEW_RHYTHM 3

uint32_t gap_update(struct gap_state *s, const struct detect_params *p, int64_t ts_ms)
{
    if (s->last_ts_ms == 0) {
        s->last_ts_ms = ts_ms;
        return 0;
    }
    int64_t dt = ts_ms - s->last_ts_ms;
    if (dt <= 0)
        return 0; /* out of order: no information about gaps */
    s->last_ts_ms = ts_ms;
    if (s->n >= 3 && (double)dt > p->gap_factor * s->interval_ms && dt > p->gap_min_ms) {
        /* Three long intervals in a row are not gaps but a new rhythm (the device was
         * reconfigured to report less often): learn it instead of flagging forever. */
        if (++s->long_run < GAP_NEW_RHYTHM)
            return FLAG_GAP;
        s->interval_ms = (double)dt;
        s->long_run = 0;
        return 0;
    }
    s->long_run = 0;
    s->n++;
    s->interval_ms =
        s->n == 1 ? (double)dt : s->interval_ms + GAP_ALPHA * ((double)dt - s->interval_ms);
    return 0;
}
