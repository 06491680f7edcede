/* seq_window.h — which seqs of a device have been seen: duplicate and replay detection.
 *
 * The same sliding-window idea as IPsec's anti-replay window (RFC 4303, section 3.4.3):
 * remember the highest seq and a bitmap of the `window` seqs below it. A seq above the
 * highest is new; one inside the window is new once; one below the window is too old to
 * tell and is refused. With window 0 every seq must be higher than the last. */
#ifndef CANARY_CORE_SEQ_WINDOW_H
#define CANARY_CORE_SEQ_WINDOW_H

#include <stdbool.h>
#include <stdint.h>

#define SEQ_WINDOW_MAX 64

struct seq_window {
    uint64_t high; /* highest seq seen (valid when started) */
    uint64_t seen; /* bit i: seq high - i was seen (bit 0 is high itself) */
    bool started;
};

/* True when seq has not been seen and is not older than the window (window <= 64). */
bool seq_window_fresh(const struct seq_window *w, uint64_t seq, unsigned window);

/* Records seq as seen. */
void seq_window_mark(struct seq_window *w, uint64_t seq);

#endif
