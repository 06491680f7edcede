/* seq_window.h — which seqs of a device have been seen: duplicate and replay detection.
 *
 * The sliding-window idea of IPsec's anti-replay window (RFC 4303, section 3.4.3): remember
 * the highest seq and, in a bitmap, which of the `window` seqs just below it have been
 * seen. A seq above the highest is new; one at most `window` below it is new once; one
 * further below is too old to tell and is refused. With window 0 every seq must be higher
 * than the last. */
#ifndef CANARY_CORE_SEQ_WINDOW_H
#define CANARY_CORE_SEQ_WINDOW_H

#include <stdbool.h>
#include <stdint.h>

#define SEQ_WINDOW_MAX 64

struct seq_window {
    uint64_t high; /* highest seq seen (valid when started) */
    uint64_t seen; /* bit i: seq high - 1 - i was seen (i = 0..63) */
    bool started;
};

/* True when seq has not been seen and is at most `window` (<= 64) below the highest. */
bool seq_window_fresh(const struct seq_window *w, uint64_t seq, unsigned window);

/* True when seq is more than `window` below the highest: too old to tell. */
bool seq_window_too_old(const struct seq_window *w, uint64_t seq, unsigned window);

/* Records seq as seen. */
void seq_window_mark(struct seq_window *w, uint64_t seq);

#endif
