/* seq_window.c — sliding anti-replay window; see seq_window.h. */
#include "core/seq_window.h"

bool seq_window_too_old(const struct seq_window *w, uint64_t seq, unsigned window)
{
    if (window > SEQ_WINDOW_MAX)
        window = SEQ_WINDOW_MAX;
    return w->started && seq < w->high && w->high - seq > window;
}

bool seq_window_fresh(const struct seq_window *w, uint64_t seq, unsigned window)
{
    if (!w->started || seq > w->high)
        return true;
    if (seq == w->high || seq_window_too_old(w, seq, window))
        return false;
    return !(w->seen & (1ULL << (w->high - seq - 1)));
}

void seq_window_mark(struct seq_window *w, uint64_t seq)
{
    if (!w->started) {
        w->started = true;
        w->high = seq;
        w->seen = 0;
        return;
    }
    if (seq > w->high) {
        uint64_t shift = seq - w->high;
        /* The old highest becomes bit shift - 1; older bits move up with it. */
        uint64_t moved = shift >= SEQ_WINDOW_MAX ? 0 : w->seen << shift;
        w->seen = moved | (shift <= SEQ_WINDOW_MAX ? 1ULL << (shift - 1) : 0);
        w->high = seq;
        return;
    }
    uint64_t back = w->high - seq;
    if (back >= 1 && back <= SEQ_WINDOW_MAX)
        w->seen |= 1ULL << (back - 1);
}
