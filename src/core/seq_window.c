/* seq_window.c — sliding anti-replay window; see seq_window.h. */
#include "core/seq_window.h"

bool seq_window_fresh(const struct seq_window *w, uint64_t seq, unsigned window)
{
    if (!w->started || seq > w->high)
        return true;
    uint64_t back = w->high - seq;
    if (back >= window || back >= SEQ_WINDOW_MAX)
        return false;
    return !(w->seen & (1ULL << back));
}

void seq_window_mark(struct seq_window *w, uint64_t seq)
{
    if (!w->started) {
        w->started = true;
        w->high = seq;
        w->seen = 1;
        return;
    }
    if (seq > w->high) {
        uint64_t shift = seq - w->high;
        w->seen = shift >= SEQ_WINDOW_MAX ? 0 : w->seen << shift;
        w->seen |= 1;
        w->high = seq;
        return;
    }
    uint64_t back = w->high - seq;
    if (back < SEQ_WINDOW_MAX)
        w->seen |= 1ULL << back;
}
