/* canary_seq.c — a seq counter that never repeats across reboots, with one persistent write
 * per block of seqs; see canary_device.h ("The seq rule").
 *
 * Invariant: every seq handed out is below s->reserved, and s->reserved is what the store
 * holds (the last save that returned CDEV_OK). After a reboot the counter resumes at the
 * stored mark, which is above every seq ever handed out, so none comes back. A crash after
 * a save and before the seqs were used only skips them; a save that fails or is cut short
 * leaves the old mark (the store promises all-or-nothing), and since no seq at or beyond it
 * was handed out, nothing repeats either. */
#include "canary_device.h"

#include <string.h>

int cdev_seq_start(struct cdev_seq *s, const struct cdev_seq_store *store, uint32_t block,
                   uint64_t first_seq)
{
    if (s == NULL)
        return CDEV_EARG;
    memset(s, 0, sizeof *s);
    if (store == NULL || store->load == NULL || store->save == NULL || block == 0)
        return CDEV_EARG;
    uint64_t mark = 0;
    int rc = store->load(store->ctx, &mark);
    if (rc == CDEV_ENOTFOUND)
        mark = first_seq;
    else if (rc != CDEV_OK)
        return CDEV_ESTORE;
    if (mark >= CDEV_SEQ_MAX)
        return CDEV_ESEQ;
    s->store = store;
    s->next = mark;
    s->reserved = mark; /* nothing reserved in this boot yet: the first next() saves */
    s->block = block;
    s->started = true;
    return CDEV_OK;
}

int cdev_seq_next(struct cdev_seq *s, uint64_t *seq)
{
    if (s == NULL || seq == NULL)
        return CDEV_EARG;
    if (!s->started)
        return CDEV_ESEQ;
    if (s->next >= CDEV_SEQ_MAX)
        return CDEV_ESEQ;
    if (s->next >= s->reserved) {
        uint64_t mark = s->next + s->block;
        if (mark > CDEV_SEQ_MAX)
            mark = CDEV_SEQ_MAX;
        if (s->store->save(s->store->ctx, mark) != CDEV_OK)
            return CDEV_ESTORE;
        s->reserved = mark;
    }
    *seq = s->next++;
    return CDEV_OK;
}
