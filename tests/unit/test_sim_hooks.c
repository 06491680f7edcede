/* test_sim_hooks.c — what `canary attack device` adds to the simulator's schedule
 * (src/cli/sim_sched.c, sim_run.h): the reading hook sees every reading with its seq before
 * it is written and its changes are what goes on the wire; readings are stamped with the
 * simulated clock (clock_start_ms + due offset) while seqs stay on the wall clock's start; and
 * sim_now_ms() runs --speed times faster than the monotonic clock. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include "cli/sim_run.h"
#include "core/clock.h"

#include <cjson/cJSON.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#define WALL_START_MS  1795000000000LL
#define CLOCK_START_MS 1794990000000LL /* the simulated clock starts 10,000 s earlier */

struct seen {
    unsigned calls;
    uint64_t last_seq;
    int64_t last_ts_ms;
};

static void on_reading(void *ctx, struct sim_reading *r, uint64_t seq)
{
    struct seen *s = ctx;
    s->calls++;
    s->last_seq = seq;
    s->last_ts_ms = r->ts_ms;
    r->values[0].value = 4242; /* what an attack would do */
}

static struct sim *make_sim(double rate_hz, double speed)
{
    struct sim *s = calloc(1, sizeof *s);
    assert_non_null(s);
    s->opt.devices = 2;
    s->opt.rate_hz = rate_hz;
    s->opt.duration_s = 100;
    s->opt.speed = speed;
    s->start_wall_ms = WALL_START_MS;
    s->clock_start_ms = CLOCK_START_MS;
    struct sim_fleet_config cfg = {.seed = 3, .n_devices = 2, .prefix = "h"};
    char err[256];
    assert_int_equal(sim_fleet_init(&s->fleet, &cfg, err, sizeof err), 0);
    assert_int_equal(sim_sched_init(s), 0);
    return s;
}

static void free_sim(struct sim *s)
{
    sim_sched_free(s);
    sim_fleet_free(&s->fleet);
    free(s);
}

static double json_num(const cJSON *o, const char *name)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, name);
    assert_true(cJSON_IsNumber(v));
    return v->valuedouble;
}

static void hook_changes_what_is_sent(void **state)
{
    (void)state;
    struct sim *s = make_sim(1, 1);
    struct seen seen = {0};
    const struct sim_hooks hooks = {.ctx = &seen, .reading = on_reading};
    s->hooks = &hooks;
    char json[SIM_READING_JSON_MAX];
    for (unsigned k = 0; k < 3; k++) {
        int n = sim_sched_produce(s, 1, 5000, NULL, json, sizeof json);
        assert_true(n > 0);
        cJSON *j = cJSON_Parse(json);
        assert_non_null(j);
        /* seq on the wall clock's start, ts on the simulated clock */
        assert_true(json_num(j, "seq") == (double)(WALL_START_MS + k));
        double ts = json_num(j, "ts");
        assert_true(ts == (double)(CLOCK_START_MS + sim_sched_due(s, 1, k)));
        assert_int_equal(seen.calls, k + 1);
        assert_int_equal(seen.last_seq, WALL_START_MS + k);
        assert_true((double)seen.last_ts_ms == ts);
        /* the hook's value went on the wire */
        const cJSON *values = cJSON_GetObjectItemCaseSensitive(j, "values");
        assert_non_null(values);
        assert_true(cJSON_IsNumber(values->child));
        assert_true(values->child->valuedouble == 4242);
        cJSON_Delete(j);
    }
    free_sim(s);
}

static void without_hooks_readings_are_the_fleets(void **state)
{
    (void)state;
    struct sim *s = make_sim(1, 1);
    char json[SIM_READING_JSON_MAX];
    assert_true(sim_sched_produce(s, 0, 0, NULL, json, sizeof json) > 0);
    /* the same fleet asked for the same ts says the same */
    struct sim_fleet f;
    struct sim_fleet_config cfg = {.seed = 3, .n_devices = 2, .prefix = "h"};
    char err[256], want[SIM_READING_JSON_MAX];
    assert_int_equal(sim_fleet_init(&f, &cfg, err, sizeof err), 0);
    struct sim_reading r;
    sim_fleet_reading(&f, 0, CLOCK_START_MS + sim_sched_due(s, 0, 0), &r);
    assert_true(sim_reading_json(&f, &r, (uint64_t)WALL_START_MS, want, sizeof want) > 0);
    assert_string_equal(json, want);
    sim_fleet_free(&f);
    free_sim(s);
}

static void the_clock_runs_speed_times_faster(void **state)
{
    (void)state;
    struct sim *s = make_sim(1, 50);
    s->start_mono_ns = clock_mono_ns() - 2000000000LL; /* started 2 s ago */
    int64_t now = sim_now_ms(s);
    assert_true(now >= 100000 && now < 101000); /* 2 s x 50 */
    s->opt.speed = 0; /* unset (a struct sim built without options) means 1 */
    now = sim_now_ms(s);
    assert_true(now >= 2000 && now < 2100);
    free_sim(s);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(hook_changes_what_is_sent),
        cmocka_unit_test(without_hooks_readings_are_the_fleets),
        cmocka_unit_test(the_clock_runs_speed_times_faster),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
