/* test_sim_sched.c — the schedule `canary simulate` shares between its transports
 * (src/cli/sim_sched.c): devices spread over one period, due readings leave the heap in time
 * order, the count of readings that fall due, a device's period changed by a command (the
 * heap gives the device up and takes it back at its new time), and the backoff's bounds. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include "cli/sim_run.h"
#include "unit_support.h"

#include <stdlib.h>
#include <string.h>

static struct sim *sched(unsigned devices, double rate_hz, double duration_s)
{
    struct sim *s = calloc(1, sizeof *s);
    assert_non_null(s);
    s->opt.devices = devices;
    s->opt.rate_hz = rate_hz;
    s->opt.duration_s = duration_s;
    s->rng = 12345;
    assert_int_equal(sim_sched_init(s), 0);
    return s;
}

static void sched_free(struct sim *s)
{
    sim_sched_free(s);
    free(s);
}

/* What a transport does with a ready device: takes its due readings, gives it back. */
static unsigned take_ready(struct sim *s, int64_t now)
{
    unsigned d = sim_ring_pop(&s->ready);
    s->dev[d].state = SIM_DEV_BUSY;
    while (sim_sched_has_due(s, d, now))
        s->dev[d].next_k++;
    sim_sched_place(s, d, now);
    return d;
}

static void devices_spread_over_one_period(void **state)
{
    (void)state;
    struct sim *s = sched(4, 1, 10);
    assert_int_equal(s->ready.count, 0);
    for (unsigned d = 0; d < 4; d++) {
        assert_int_equal(s->dev[d].state, SIM_DEV_WAITING);
        assert_int_equal(sim_sched_due(s, d, 0), 250 * d);
        assert_int_equal(sim_sched_due(s, d, 3), 250 * d + 3000);
    }
    sim_sched_promote(s, 0);
    assert_int_equal(s->ready.count, 1);
    assert_int_equal(take_ready(s, 0), 0);
    sim_sched_promote(s, 600);
    assert_int_equal(s->ready.count, 2);
    assert_int_equal(take_ready(s, 600), 1);
    assert_int_equal(take_ready(s, 600), 2);
    assert_int_equal(s->dev[0].next_k, 1);
    /* readings before the end: 10 each, whatever has been taken */
    assert_int_equal(sim_sched_total(s), 40);
    assert_true(sim_sched_pending(s));
    sched_free(s);
}

static void fractional_rates_round_down(void **state)
{
    (void)state;
    struct sim *s = sched(1, 3, 1);
    assert_int_equal(sim_sched_due(s, 0, 1), 333);
    assert_int_equal(sim_sched_due(s, 0, 2), 666);
    assert_int_equal(sim_sched_total(s), 3);
    sched_free(s);
    s = sched(3, 0.5, 9);
    assert_int_equal(sim_sched_due(s, 2, 1), 1333 + 2000);
    /* due at 0, 2, 4, 6, 8 s; 0.666, ..., 8.666 s; 1.333, ..., 7.333 s */
    assert_int_equal(sim_sched_total(s), 5 + 5 + 4);
    sched_free(s);
}

/* A longer period applies from the reading after the last one sent; a shorter one brings the
 * device forward in the heap. */
static void a_commanded_interval_moves_the_next_reading(void **state)
{
    (void)state;
    struct sim *s = sched(2, 1, 100);
    sim_sched_promote(s, 0);
    take_ready(s, 0); /* device 0 sent reading 0, due at 0 */
    sim_sched_set_interval(s, 0, 5, 200);
    assert_int_equal(sim_sched_due(s, 0, 1), 5000);
    assert_int_equal(sim_sched_due(s, 0, 3), 15000);
    sim_sched_promote(s, 4999);
    /* device 1 (phase 500) is due several times by now; device 0 not yet */
    assert_int_equal(s->ready.count, 1);
    assert_int_equal(take_ready(s, 4999), 1);
    sim_sched_promote(s, 5000);
    assert_int_equal(take_ready(s, 5000), 0);
    /* from 3600 s back to 1 s: the heap must give the device up at once */
    sim_sched_set_interval(s, 1, 3600, 5100);
    sim_sched_set_interval(s, 1, 1, 5100);
    sim_sched_promote(s, 5500);
    assert_int_equal(s->ready.count, 1);
    assert_int_equal(take_ready(s, 5500), 1);
    /* readings before the end follow the new periods: device 0 at 0, 5, ..., 95 s; device 1
     * at 0.5, ..., 4.5 s, then 5.5, ..., 99.5 s */
    assert_int_equal(sim_sched_due(s, 1, 6), 6500);
    assert_int_equal(sim_sched_total(s), 20 + 100);
    sched_free(s);
}

/* A device past the end comes back when a shorter period puts a reading before it. */
static void a_shorter_interval_revives_a_done_device(void **state)
{
    (void)state;
    struct sim *s = sched(1, 1, 10);
    sim_sched_promote(s, 0);
    take_ready(s, 0);
    sim_sched_set_interval(s, 0, 3600, 10);
    assert_int_equal(s->dev[0].state, SIM_DEV_DONE);
    assert_false(sim_sched_pending(s));
    sim_sched_set_interval(s, 0, 2, 20);
    assert_int_equal(s->dev[0].state, SIM_DEV_WAITING);
    assert_int_equal(sim_sched_due(s, 0, 1), 2000);
    assert_int_equal(sim_sched_total(s), 5); /* 0, 2, 4, 6, 8 s */
    sched_free(s);
}

/* Many changes of period, in any order: devices still leave the heap in due order, each
 * exactly when due and once. */
static void the_heap_stays_ordered_under_changes(void **state)
{
    (void)state;
    struct sim *s = sched(200, 2, 0);
    struct test_rng rng = {0xfeed};
    int64_t now = 0;
    for (int round = 0; round < 3000; round++) {
        unsigned d = (unsigned)test_rng_below(&rng, 200);
        if (s->dev[d].state != SIM_DEV_READY)
            sim_sched_set_interval(s, d, 1 + (unsigned)test_rng_below(&rng, 5), now);
        now += (int64_t)test_rng_below(&rng, 40);
        sim_sched_promote(s, now);
        for (unsigned i = 0; i < s->due.count; i++) {
            const struct sim_heap_item *it = &s->due.items[i];
            assert_true(it->key > now);
            assert_int_equal(s->due.pos[it->dev], i);
            assert_int_equal(it->key, sim_sched_due(s, it->dev, s->dev[it->dev].next_k));
            if (i > 0)
                assert_true(s->due.items[(i - 1) / 2].key <= it->key);
        }
        assert_int_equal(s->due.count + s->ready.count, 200);
        while (s->ready.count > 0) {
            unsigned r = s->ready.items[s->ready.head];
            assert_true(sim_sched_due(s, r, s->dev[r].next_k) <= now);
            take_ready(s, now);
        }
    }
    sched_free(s);
}

static void backoff_doubles_within_bounds(void **state)
{
    (void)state;
    struct sim *s = sched(1, 1, 1);
    for (unsigned a = 0; a < 20; a++) {
        double base = a < 6 ? 100.0 * (1u << a) : 5000;
        base = base < 5000 ? base : 5000;
        int64_t ms = sim_backoff_ms(s, a);
        assert_true(ms >= (int64_t)(base * 0.8) - 1 && ms <= (int64_t)(base * 1.2) + 1);
    }
    sched_free(s);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(devices_spread_over_one_period),
        cmocka_unit_test(fractional_rates_round_down),
        cmocka_unit_test(a_commanded_interval_moves_the_next_reading),
        cmocka_unit_test(a_shorter_interval_revives_a_done_device),
        cmocka_unit_test(the_heap_stays_ordered_under_changes),
        cmocka_unit_test(backoff_doubles_within_bounds),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
