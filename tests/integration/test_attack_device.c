/* test_attack_device.c — `canary attack device` end to end against a real canaryd with
 * security.unsigned = reject: six devices provisioned with `canary device add`, a freeze (from
 * the command line) and a replay (from --plan) run through ten simulated minutes at 100x;
 * every reading is signed and accepted, the ground truth names the right readings (first and
 * last seq and ts, how many), and what canaryd stored is the attack: the frozen device repeats
 * its last value before the window, the replaying one sends the values of two minutes
 * earlier, reading by reading, on every metric, while outside the windows nothing repeats.
 * Also: bad attacks and bad simulated-clock options are refused with exit status 2 and a
 * message naming the problem. */
#include "harness.h"

#include <fcntl.h>
#include <math.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#define ADMIN_TOKEN "attack-admin-token-0123456789abcdef"
#define MASTER_KEY  "0f1e2d3c4b5a69788796a5b4c3d2e1f00112233445566778899aabbccddeeff0"
#define DEVICES     6
#define PERIOD_MS   2000 /* --rate 0.5 */
#define CLOCK_BACK  600  /* --clock-start -600 --run 600 */

struct fixture {
    struct daemon d;
    char master[160], set_master[200], keys[160], truth[160], plan[160];
};

static int start(void **state)
{
    struct fixture *f = calloc(1, sizeof *f);
    setenv("CANARY_API_ADMIN_TOKEN", ADMIN_TOKEN, 1); /* canaryd's and the CLI's */
    daemon_init(&f->d, "--set", "security.unsigned=reject", NULL);
    snprintf(f->master, sizeof f->master, "%s/master.key", f->d.dir);
    int fd = open(f->master, O_WRONLY | O_CREAT | O_TRUNC, 0600);
    assert_true(fd >= 0);
    assert_int_equal(write(fd, MASTER_KEY "\n", strlen(MASTER_KEY) + 1),
                     (ssize_t)strlen(MASTER_KEY) + 1);
    close(fd);
    snprintf(f->set_master, sizeof f->set_master, "security.master_key_file=%s", f->master);
    int n = 0;
    while (f->d.extra[n] != NULL)
        n++;
    f->d.extra[n] = "--set";
    f->d.extra[n + 1] = f->set_master;
    f->d.extra[n + 2] = NULL;
    daemon_start(&f->d);
    snprintf(f->keys, sizeof f->keys, "%s/keys.txt", f->d.dir);
    snprintf(f->truth, sizeof f->truth, "%s/truth.jsonl", f->d.dir);
    snprintf(f->plan, sizeof f->plan, "%s/plan.txt", f->d.dir);
    *state = f;
    return 0;
}

static int stop(void **state)
{
    struct fixture *f = *state;
    assert_int_equal(daemon_stop(&f->d, SIGTERM), 0);
    daemon_cleanup(&f->d);
    free(f);
    return 0;
}

/* Runs the canary CLI with args (NULL-terminated); stdout and stderr go to out. Returns the
 * exit status. */
static int run_cli(char *out, size_t cap, const char *const *args)
{
    int pipefd[2];
    assert_int_equal(pipe(pipefd), 0);
    pid_t pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        child_dies_with_test();
        dup2(pipefd[1], 1);
        dup2(pipefd[1], 2);
        close(pipefd[0]);
        close(pipefd[1]);
        const char *argv[64] = {"canary"};
        int n = 1;
        for (; args[n - 1] != NULL && n < 63; n++)
            argv[n] = args[n - 1];
        argv[n] = NULL;
        execv(CANARY_CLI_PATH, (char *const *)argv);
        _exit(127);
    }
    close(pipefd[1]);
    size_t len = 0;
    ssize_t r;
    while ((r = read(pipefd[0], out + len, len + 1 < cap ? cap - 1 - len : 0)) > 0)
        len += (size_t)r;
    out[len] = '\0';
    close(pipefd[0]);
    int status;
    waitpid(pid, &status, 0);
    return WIFEXITED(status) ? WEXITSTATUS(status) : 128;
}

static void provision(struct fixture *f)
{
    for (int i = 1; i <= DEVICES; i++) {
        char id[32], out[4096];
        snprintf(id, sizeof id, "sim-%04d", i);
        const char *args[] = {"device",      "add",        id,      "--url",
                              f->d.base_url, "--keys-out", f->keys, NULL};
        assert_int_equal(run_cli(out, sizeof out, args), 0);
    }
}

/* One line of the truth file, parsed. */
static cJSON *truth_of(const char *path, const char *device)
{
    FILE *fp = fopen(path, "r");
    assert_non_null(fp);
    char line[2048];
    cJSON *found = NULL;
    unsigned lines = 0;
    while (fgets(line, sizeof line, fp) != NULL) {
        lines++;
        cJSON *j = cJSON_Parse(line);
        assert_non_null(j);
        const cJSON *dev = cJSON_GetObjectItemCaseSensitive(j, "device");
        if (found == NULL && cJSON_IsString(dev) && strcmp(dev->valuestring, device) == 0)
            found = j;
        else
            cJSON_Delete(j);
    }
    fclose(fp);
    assert_int_equal(lines, 2);
    assert_non_null(found);
    return found;
}

static double field(const cJSON *o, const char *name)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, name);
    assert_true(cJSON_IsNumber(v));
    return v->valuedouble;
}

/* The device's stored readings, oldest first. */
static cJSON *readings_of(struct daemon *d, const char *device)
{
    char path[256];
    snprintf(path, sizeof path, "/api/v1/devices/%s/readings?order=asc&limit=10000&from=-20m",
             device);
    cJSON *j = NULL;
    assert_int_equal(http_get_json(d, path, &j), 200);
    cJSON *list = cJSON_DetachItemFromObjectCaseSensitive(j, "readings");
    cJSON_Delete(j);
    assert_true(cJSON_IsArray(list));
    return list;
}

static double value_at(const cJSON *reading, const char *metric)
{
    const cJSON *values = cJSON_GetObjectItemCaseSensitive(reading, "values");
    const cJSON *m = cJSON_GetObjectItemCaseSensitive(values, metric);
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(m, "value");
    return cJSON_IsNumber(v) ? v->valuedouble : NAN;
}

static const cJSON *reading_at_ts(const cJSON *list, double ts)
{
    const cJSON *r;
    cJSON_ArrayForEach(r, list)
    {
        if (field(r, "ts_ms") == ts)
            return r;
    }
    return NULL;
}

static void freeze_and_replay_end_to_end(void **state)
{
    struct fixture *f = *state;
    provision(f);
    FILE *fp = fopen(f->plan, "w");
    assert_non_null(fp);
    fprintf(fp, "# a replay of the two minutes before\n"
                "--kind replay --device sim-0004 --start 300 --duration 120\n");
    fclose(fp);
    char out[16384];
    const char *args[] = {
        "attack",  "device", "--kind",        "freeze",      "--device", "sim-0001",
        "--start", "200",    "--duration",    "150",         "--plan",   f->plan,
        "--truth", f->truth, "--devices",     "6",           "--rate",   "0.5",
        "--speed", "100",    "--clock-start", "-600",        "--run",    "600",
        "--sign",  f->keys,  "--url",         f->d.base_url, "--quiet",  NULL};
    int rc = run_cli(out, sizeof out, args);
    if (rc != 0)
        fail_msg("canary attack device exited %d:\n%s", rc, out);
    /* every reading signed and accepted: 300 per device */
    assert_non_null(strstr(out, "sent=1800 accepted=1800 duplicates=0 rejected=0 failed=0"));

    /* freeze: gas_ppm (sim-0001 is a kitchen) stuck at its last value before the window */
    cJSON *t = truth_of(f->truth, "sim-0001");
    assert_string_equal(cJSON_GetObjectItemCaseSensitive(t, "kind")->valuestring, "freeze");
    assert_string_equal(cJSON_GetObjectItemCaseSensitive(t, "metric")->valuestring, "gas_ppm");
    double first_ts = field(t, "first_ts_ms"), last_ts = field(t, "last_ts_ms");
    double start = field(t, "start_ms"), end = field(t, "end_ms");
    assert_true(end - start == 150000);
    assert_true(first_ts >= start && first_ts < start + PERIOD_MS);
    assert_true(last_ts < end && last_ts >= end - PERIOD_MS);
    assert_true(field(t, "readings") == 75);
    assert_true(field(t, "last_seq") - field(t, "first_seq") == 74);
    cJSON *list = readings_of(&f->d, "sim-0001");
    assert_int_equal(cJSON_GetArraySize(list), 300);
    const cJSON *before = reading_at_ts(list, first_ts - PERIOD_MS);
    assert_non_null(before);
    double frozen = value_at(before, "gas_ppm");
    unsigned in_window = 0, changes_outside = 0;
    double prev = NAN;
    const cJSON *r;
    cJSON_ArrayForEach(r, list)
    {
        double ts = field(r, "ts_ms"), g = value_at(r, "gas_ppm");
        if (ts >= first_ts && ts <= last_ts) {
            in_window++;
            assert_true(g == frozen);
            if (ts == first_ts)
                assert_true(field(r, "seq") == field(t, "first_seq"));
            if (ts == last_ts)
                assert_true(field(r, "seq") == field(t, "last_seq"));
        } else if (ts > last_ts + PERIOD_MS && !isnan(prev) && g != prev) {
            changes_outside++;
        }
        prev = g;
    }
    assert_int_equal(in_window, 75);
    assert_true(changes_outside > 10); /* after the window the sensor moves again */
    cJSON_Delete(list);
    cJSON_Delete(t);

    /* replay: every metric of each reading in the window is what it sent 120 s before */
    t = truth_of(f->truth, "sim-0004");
    assert_string_equal(cJSON_GetObjectItemCaseSensitive(t, "kind")->valuestring, "replay");
    assert_string_equal(cJSON_GetObjectItemCaseSensitive(t, "metric")->valuestring, "*");
    assert_true(field(t, "replay_from_s") == 120);
    assert_true(field(t, "readings") == 60);
    first_ts = field(t, "first_ts_ms");
    last_ts = field(t, "last_ts_ms");
    list = readings_of(&f->d, "sim-0004");
    unsigned replayed = 0, same_outside = 0, compared_outside = 0;
    cJSON_ArrayForEach(r, list)
    {
        double ts = field(r, "ts_ms");
        const cJSON *src = reading_at_ts(list, ts - 120000);
        if (src == NULL)
            continue;
        const cJSON *vals = cJSON_GetObjectItemCaseSensitive(r, "values"), *m;
        bool all_same = true;
        cJSON_ArrayForEach(m, vals)
        {
            if (value_at(r, m->string) != value_at(src, m->string))
                all_same = false;
        }
        if (ts >= first_ts && ts <= last_ts) {
            assert_true(all_same);
            replayed++;
        } else {
            compared_outside++;
            same_outside += all_same;
        }
    }
    assert_int_equal(replayed, 60);
    assert_true(compared_outside > 100);
    assert_true(same_outside < compared_outside / 10); /* clean readings do not repeat */
    cJSON_Delete(list);
    cJSON_Delete(t);

    /* the other devices were not attacked: not in the truth, all their readings stored */
    list = readings_of(&f->d, "sim-0002");
    assert_int_equal(cJSON_GetArraySize(list), 300);
    cJSON_Delete(list);
}

static void expect_refused(struct fixture *f, const char *const *extra, const char *words)
{
    const char *args[40] = {"attack", "device",      "--devices", "6",
                            "--url",  f->d.base_url, "--truth",   f->truth};
    int n = 8;
    for (int i = 0; extra[i] != NULL; i++)
        args[n++] = extra[i];
    args[n] = NULL;
    char out[8192];
    int rc = run_cli(out, sizeof out, args);
    if (rc != 2 || strstr(out, words) == NULL)
        fail_msg("expected exit 2 and '%s', got %d:\n%s", words, rc, out);
}

static void bad_attacks_are_refused(void **state)
{
    struct fixture *f = *state;
    expect_refused(f, (const char *[]){"--kind", "freeze", "--device", "sim-0042", NULL},
                   "--device sim-0042 is not in the fleet");
    expect_refused(f, (const char *[]){"--kind", "fake-leak", "--device", "sim-0002", NULL},
                   "has no gas_ppm");
    expect_refused(f, (const char *[]){"--kind", "freeze", NULL}, "--device is required");
    /* six devices: every room has one, so a real leak has nobody else to reach */
    expect_refused(f,
                   (const char *[]){"--kind", "replay", "--device", "sim-0001", "--start", "300",
                                    "--duration", "120", "--real-leak", "8000", NULL},
                   "--real-leak on sim-0001: no other device at 'Site 1, kitchen'");
    expect_refused(f,
                   (const char *[]){"--kind", "bias", "--device", "sim-0001", "--start", "700",
                                    "--run", "600", NULL},
                   "after the run ends");
    expect_refused(
        f, (const char *[]){"--kind", "bias", "--device", "sim-0001", "--scenario", "fire", NULL},
        "scenarios do not mix");
    expect_refused(
        f, (const char *[]){"--kind", "spike", "--device", "sim-0001", "--every", "0", NULL},
        "--every must be a whole number from 1");
    expect_refused(
        f, (const char *[]){"--kind", "noise", "--device", "sim-0001", "--duration", "0", NULL},
        "needs --run");
    /* the simulated clock (the simulator's options) */
    expect_refused(
        f, (const char *[]){"--kind", "freeze", "--device", "sim-0001", "--speed", "0", NULL},
        "--speed must be a number above 0");
    expect_refused(f,
                   (const char *[]){"--kind", "freeze", "--device", "sim-0001", "--rate", "10",
                                    "--speed", "200", NULL},
                   "--rate 10 times --speed 200 is above 1000");
    expect_refused(
        f,
        (const char *[]){"--kind", "freeze", "--device", "sim-0001", "--clock-start", "soon", NULL},
        "--clock-start must be a whole number");
    expect_refused(
        f,
        (const char *[]){"--kind", "freeze", "--device", "sim-0001", "--clock-start", "-x", NULL},
        "--clock-start -S must be a number");
    expect_refused(f,
                   (const char *[]){"--kind", "freeze", "--device", "sim-0001", "--clock-start",
                                    "99999999999999", NULL},
                   "more than a day ahead");
    FILE *fp = fopen(f->plan, "w");
    assert_non_null(fp);
    fprintf(fp, "--kind freeze --device sim-0001\n--kind spike --device sim-0002 --every\n");
    fclose(fp);
    expect_refused(f, (const char *[]){"--plan", f->plan, NULL}, "line 2: --every needs a value");
    fp = fopen(f->plan, "w");
    fprintf(fp, "--kind freeze --device sim-0001\n--kind bias --device sim-0001\n");
    fclose(fp);
    expect_refused(f, (const char *[]){"--plan", f->plan, NULL}, "sim-0001 is attacked twice");
    fp = fopen(f->plan, "w");
    fprintf(fp, "--kind freeze --device sim-0001 --devices 3\n");
    fclose(fp);
    expect_refused(f, (const char *[]){"--plan", f->plan, NULL},
                   "'--devices' is not an attack option");
    expect_refused(f, (const char *[]){"--plan", "/nonexistent/plan", NULL},
                   "--plan /nonexistent/plan");
    expect_refused(f, (const char *[]){NULL}, "no attack");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(freeze_and_replay_end_to_end),
        cmocka_unit_test(bad_attacks_are_refused),
    };
    return cmocka_run_group_tests(tests, start, stop);
}
