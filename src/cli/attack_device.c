/* attack_device.c — `canary attack device`: a compromised device that holds its key. It runs
 * the simulated fleet exactly as `canary simulate` does (same devices, physics, schedule,
 * senders, --sign keys; sim_run_main() with hooks), and corrupts the readings of the chosen
 * devices in their attack windows as attack_transform.h describes, before they are signed
 * and sent. So every attacked reading is validly signed, fresh and well-formed: only a
 * tamper check on the values can tell.
 *
 * One attack comes from the command line (--kind, --device, ...); more from --plan FILE, one
 * attack per line in the same options. Each device is attacked at most once. The ground
 * truth (--truth FILE) is JSON lines, one per attack, rewritten atomically every few seconds
 * and complete when the run ends (also after SIGINT/SIGTERM).
 *
 * Options the attack does not take go to the simulator, except two renamed because the
 * attack uses their names: the run's length is --run S (the simulator's --duration), and the
 * fleet's --seed stays --seed (the attack's noise has --attack-seed). */
#include "cli/attack_transform.h"
#include "cli/commands.h"
#include "cli/sim_run.h"

#include "core/error.h"
#include "core/file_atomic.h"

#include <errno.h>
#include <inttypes.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define MAX_ATTACKS    1000
#define MAX_SIM_ARGS   256
#define PLAN_LINE_MAX  1024
#define PLAN_TOKENS    32
#define RUN_AFTER_S    60.0 /* default run: until a minute after the last attack ends */
#define TRUTH_LINE_MAX 1024

struct attack_run {
    struct attack_spec specs[MAX_ATTACKS];
    struct attack_state states[MAX_ATTACKS];
    unsigned n;
    bool initialised;    /* states[0..n) were initialised */
    unsigned *by_device; /* fleet index -> attack index + 1 (0: not attacked) */
    /* --real-leak: the room's other gas sensors see a real leak while a replay hides it */
    struct attack_state *leaks; /* n_leaks entries (kind fake-leak: the same rise) */
    unsigned *leak_hidden_by;   /* per leak: the attack index of the replay hiding it */
    unsigned n_leaks;
    unsigned *leak_by_device; /* fleet index -> leak index + 1 */
    const char *truth_path;   /* --truth */
    int64_t clock_start_ms;
};

static int bad_usage(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static int bad_usage(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    fprintf(stderr, "canary attack device: ");
    vfprintf(stderr, fmt, ap);
    fprintf(stderr, "\n(see canary attack device --help)\n");
    va_end(ap);
    return 2;
}

static void usage(FILE *out)
{
    fprintf(out,
            "usage: canary attack device --kind KIND --device ID [attack options]\n"
            "                            [--plan FILE] [--truth FILE] [--run S]\n"
            "                            [canary simulate options]\n"
            "\n"
            "A compromised device that holds its key: runs the simulated fleet as `canary\n"
            "simulate` does (same options: --devices, --rate, --seed, --prefix, --url, --sign,\n"
            "--transport, --speed, --clock-start, ...) and corrupts the chosen device's\n"
            "readings before they are signed and sent. Every reading stays validly signed and\n"
            "fresh; only the values lie.\n"
            "\n"
            "kinds:\n"
            "  spike      value + M on every --every-th reading (default 5), the first included\n"
            "  ramp       value + M * (t - start) / duration: a slow drift away\n"
            "  bias       value + M\n"
            "  scale      value * M (default 1.5)\n"
            "  freeze     the last value before the window, repeated\n"
            "  noise      the last value before the window + M * N(0,1): the signal is gone\n"
            "  replay     the values of an earlier window sent again (every metric unless\n"
            "             --metric): what a device does to hide a leak\n"
            "  fake-leak  gas_ppm rising like a leak towards M ppm (default 8000), which the\n"
            "             room's other devices do not see\n"
            "\n"
            "attack options:\n"
            "  --kind KIND           one of the kinds above (required)\n"
            "  --device ID           the compromised device, one of the fleet's ids (required)\n"
            "  --metric M            the metric to corrupt (default gas_ppm when the device has\n"
            "                        it, else temperature_c; replay: every metric)\n"
            "  --start S             seconds after the (simulated) clock's start (default 60)\n"
            "  --duration S          seconds the attack lasts; 0 = to the end (default 300)\n"
            "  --magnitude M         size in the metric's unit (scale: a factor); default per\n"
            "                        kind and metric, see docs/ATTACK.md\n"
            "  --every N             spike: one outlier every N readings (default 5)\n"
            "  --replay-from S       replay: the replayed window starts S s before --start\n"
            "                        (default: --duration; it loops when shorter)\n"
            "  --attack-seed K       seed of the attack's own noise (default 1)\n"
            "  --real-leak PPM       replay: the room really has a leak; the other devices at\n"
            "                        the attacked one's location with a gas sensor see gas rise\n"
            "                        to PPM in the same window (ground truth kind real-leak)\n"
            "  --plan FILE           more attacks, one per line in the options above ('#'\n"
            "                        comments); each device at most once\n"
            "  --truth FILE          ground truth, one JSON line per attack: device, kind,\n"
            "                        metric, parameters, first and last attacked seq and ts\n"
            "  --run S               seconds the fleet runs (the simulator's --duration;\n"
            "                        default: a minute after the last attack ends)\n"
            "  --help                this help\n"
            "\n"
            "Exit status: the simulator's (0 when every reading was accepted), 1 when the truth\n"
            "cannot be written, 2 for bad usage.\n");
}

/* ---- options ------------------------------------------------------------------------- */

/* Reads one --plan line's tokens into a fresh spec. Returns 0 or 2. */
static int plan_line(struct attack_spec *spec, char *line, const char *path, unsigned lineno)
{
    char *tok[PLAN_TOKENS];
    unsigned n = 0;
    for (char *save = NULL, *t = strtok_r(line, " \t\r\n", &save); t != NULL;
         t = strtok_r(NULL, " \t\r\n", &save)) {
        if (n == PLAN_TOKENS)
            return bad_usage("--plan %s line %u: more than %d words", path, lineno, PLAN_TOKENS);
        tok[n++] = t;
    }
    attack_spec_defaults(spec);
    for (unsigned i = 0; i < n; i++) {
        const char *name = tok[i], *val = NULL;
        char *eq = strchr(tok[i], '=');
        if (eq != NULL) {
            *eq = '\0';
            val = eq + 1;
        } else if (i + 1 < n) {
            val = tok[++i];
        }
        if (!attack_spec_has_option(name))
            return bad_usage("--plan %s line %u: '%s' is not an attack option (--kind, --device, "
                             "--metric, --start, --duration, --magnitude, --every, "
                             "--replay-from, --attack-seed, --real-leak)",
                             path, lineno, name);
        if (val == NULL)
            return bad_usage("--plan %s line %u: %s needs a value", path, lineno, name);
        char err[256];
        if (attack_spec_set(spec, name, val, err, sizeof err) != 0)
            return bad_usage("--plan %s line %u: %s", path, lineno, err);
    }
    char err[256];
    if (attack_spec_check(spec, err, sizeof err) != 0)
        return bad_usage("--plan %s line %u: %s", path, lineno, err);
    return 0;
}

static int read_plan(struct attack_run *ar, const char *path)
{
    FILE *fp = fopen(path, "r");
    if (fp == NULL)
        return bad_usage("--plan %s: %s", path, strerror(errno));
    char line[PLAN_LINE_MAX + 2];
    unsigned lineno = 0;
    int rc = 0;
    while (rc == 0 && fgets(line, sizeof line, fp) != NULL) {
        lineno++;
        size_t len = strlen(line);
        if (len > PLAN_LINE_MAX && line[len - 1] != '\n') {
            rc =
                bad_usage("--plan %s line %u is longer than %d bytes", path, lineno, PLAN_LINE_MAX);
            break;
        }
        char *p = line + strspn(line, " \t\r\n");
        if (*p == '\0' || *p == '#')
            continue;
        if (ar->n == MAX_ATTACKS) {
            rc = bad_usage("--plan %s: more than %d attacks", path, MAX_ATTACKS);
            break;
        }
        rc = plan_line(&ar->specs[ar->n], p, path, lineno);
        if (rc == 0)
            ar->n++;
    }
    if (rc == 0 && ferror(fp))
        rc = bad_usage("--plan %s: read error", path);
    fclose(fp);
    return rc;
}

/* Splits argv into the attack's options and the simulator's (sim_argv, sim_argc). Returns
 * 0 to run, 1 after --help, 2 for bad usage. */
static int parse_args(struct attack_run *ar, int argc, char **argv, char **sim_argv, int *sim_argc,
                      char *run_arg, size_t run_len)
{
    struct attack_spec cli;
    attack_spec_defaults(&cli);
    bool cli_any = false, run_given = false;
    const char *plan = NULL;
    int n = 0;
    sim_argv[n++] = "canary attack device";
    for (int i = 1; i < argc; i++) {
        const char *arg = argv[i], *eq = strchr(arg, '=');
        char name[32];
        size_t nlen = eq != NULL ? (size_t)(eq - arg) : strlen(arg);
        snprintf(name, sizeof name, "%.*s", (int)(nlen < 31 ? nlen : 31), arg);
        if (!strcmp(name, "--help") || !strcmp(name, "-h")) {
            usage(stdout);
            return 1;
        }
        bool ours = attack_spec_has_option(name) || !strcmp(name, "--plan") ||
                    !strcmp(name, "--truth") || !strcmp(name, "--run");
        if (!ours) {
            if (!strcmp(name, "--scenario") || !strncmp(name, "--scenario-", 11))
                return bad_usage("%s: the simulator's scenarios do not mix with an attack", name);
            if (n >= MAX_SIM_ARGS - 4)
                return bad_usage("too many arguments");
            sim_argv[n++] = argv[i];
            continue;
        }
        const char *val = eq != NULL ? eq + 1 : i + 1 < argc ? argv[++i] : NULL;
        if (val == NULL)
            return bad_usage("%s needs a value", name);
        if (!strcmp(name, "--plan")) {
            plan = val;
        } else if (!strcmp(name, "--truth")) {
            if (*val == '\0' || strlen(val) > 4000)
                return bad_usage("--truth needs a file name of 1 to 4000 bytes");
            ar->truth_path = val;
        } else if (!strcmp(name, "--run")) {
            char *end;
            errno = 0;
            double v = strtod(val, &end);
            if (*val == '\0' || *end != '\0' || errno != 0 || !isfinite(v) || v <= 0 ||
                v > ATTACK_MAX_DURATION)
                return bad_usage("--run must be a number of seconds above 0, got '%s'", val);
            snprintf(run_arg, run_len, "%s", val);
            run_given = true;
        } else {
            char err[256];
            if (attack_spec_set(&cli, name, val, err, sizeof err) != 0)
                return bad_usage("%s", err);
            cli_any = true;
        }
    }
    if (cli_any) {
        char err[256];
        if (attack_spec_check(&cli, err, sizeof err) != 0)
            return bad_usage("%s", err);
        ar->specs[ar->n++] = cli;
    }
    if (plan != NULL) {
        int rc = read_plan(ar, plan);
        if (rc != 0)
            return rc;
    }
    if (ar->n == 0)
        return bad_usage("no attack: give --kind and --device (or --plan FILE)");
    double end_s = 0;
    for (unsigned i = 0; i < ar->n; i++) {
        const struct attack_spec *sp = &ar->specs[i];
        for (unsigned j = 0; j < i; j++) {
            if (!strcmp(ar->specs[j].device, sp->device))
                return bad_usage("device %s is attacked twice: one attack per device", sp->device);
        }
        if (sp->duration_s <= 0 && !run_given)
            return bad_usage("an attack without an end (--duration 0 on %s) needs --run S",
                             sp->device);
        end_s = fmax(end_s, sp->start_s + sp->duration_s);
    }
    if (!run_given)
        snprintf(run_arg, run_len, "%.3f", end_s + RUN_AFTER_S);
    sim_argv[n++] = "--duration";
    sim_argv[n++] = run_arg;
    sim_argv[n] = NULL;
    *sim_argc = n;
    return 0;
}

/* ---- hooks --------------------------------------------------------------------------- */

/* --real-leak of attack i (a replay on fleet device d): every other device at d's location
 * with a gas sensor gets the leak, a fake-leak-shaped rise in the same window. Returns 0 or 2. */
static int add_real_leaks(struct attack_run *ar, struct sim *s, unsigned i, unsigned d)
{
    const struct attack_spec *sp = &ar->specs[i];
    const char *room = sim_fleet_device(&s->fleet, d)->location;
    unsigned added = 0;
    for (unsigned e = 0; e < s->fleet.n_devices; e++) {
        const struct sim_device_info *info = sim_fleet_device(&s->fleet, e);
        if (e == d || strcmp(info->location, room) != 0 ||
            !sim_fleet_has_metric(&s->fleet, e, "gas_ppm"))
            continue;
        if (ar->by_device[e] != 0 || ar->leak_by_device[e] != 0)
            return bad_usage("device %s, in the room of %s's --real-leak, is attacked too",
                             info->id, sp->device);
        struct attack_spec leak;
        attack_spec_defaults(&leak);
        leak.kind = ATTACK_FAKE_LEAK;
        leak.kind_set = true;
        snprintf(leak.device, sizeof leak.device, "%s", info->id);
        leak.start_s = sp->start_s;
        leak.duration_s = sp->duration_s;
        leak.magnitude = sp->real_leak_ppm;
        leak.seed = sp->seed * 1000003u + e;
        char err[256];
        if (attack_state_init(&ar->leaks[ar->n_leaks], &leak, true, s->clock_start_ms, err,
                              sizeof err) != 0)
            return bad_usage("--real-leak on %s: %s", sp->device, err);
        ar->leak_hidden_by[ar->n_leaks] = i;
        ar->leak_by_device[e] = ++ar->n_leaks;
        added++;
    }
    if (added == 0)
        return bad_usage("--real-leak on %s: no other device at '%s' has a gas sensor to see it",
                         sp->device, room);
    return 0;
}

static int on_ready(void *ctx, struct sim *s)
{
    struct attack_run *ar = ctx;
    ar->clock_start_ms = s->clock_start_ms;
    ar->by_device = calloc(s->fleet.n_devices, sizeof *ar->by_device);
    ar->leak_by_device = calloc(s->fleet.n_devices, sizeof *ar->leak_by_device);
    ar->leaks = calloc(s->fleet.n_devices, sizeof *ar->leaks);
    ar->leak_hidden_by = calloc(s->fleet.n_devices, sizeof *ar->leak_hidden_by);
    if (ar->by_device == NULL || ar->leak_by_device == NULL || ar->leaks == NULL ||
        ar->leak_hidden_by == NULL) {
        fprintf(stderr, "canary attack device: out of memory\n");
        return 1;
    }
    double run_s = s->opt.duration_s;
    for (unsigned i = 0; i < ar->n; i++) {
        const struct attack_spec *sp = &ar->specs[i];
        unsigned d = 0;
        while (d < s->fleet.n_devices && strcmp(sim_fleet_device(&s->fleet, d)->id, sp->device))
            d++;
        if (d == s->fleet.n_devices)
            return bad_usage("--device %s is not in the fleet (%s-0001 to %s-%04u: see --devices "
                             "and --prefix)",
                             sp->device, s->fleet.prefix, s->fleet.prefix, s->fleet.n_devices);
        bool has_gas = sim_fleet_has_metric(&s->fleet, d, "gas_ppm");
        const char *metric = attack_spec_metric(sp, has_gas);
        if (metric[0] != '\0' && !sim_fleet_has_metric(&s->fleet, d, metric))
            return bad_usage("device %s (%s) has no %s", sp->device,
                             sim_fleet_device(&s->fleet, d)->kind, metric);
        if (run_s > 0 && sp->start_s >= run_s)
            return bad_usage("the attack on %s starts at %g s, after the run ends (--run %g)",
                             sp->device, sp->start_s, run_s);
        char err[256];
        int rc = attack_state_init(&ar->states[i], sp, has_gas, s->clock_start_ms, err, sizeof err);
        ar->initialised = true;
        if (rc == CANARY_EINVAL)
            return bad_usage("%s", err);
        if (rc != 0) {
            fprintf(stderr, "canary attack device: %s\n", err);
            return 1;
        }
        ar->by_device[d] = i + 1;
        if (!s->opt.quiet)
            fprintf(stderr,
                    "canary attack device: %s (%s) %s on %s from +%g s for %g s, magnitude %g\n",
                    sp->device, sim_fleet_device(&s->fleet, d)->name, attack_kind_name(sp->kind),
                    ar->states[i].metric[0] ? ar->states[i].metric : "every metric", sp->start_s,
                    sp->duration_s, ar->states[i].magnitude);
    }
    /* the real leaks last, so that an attack on a device of such a room is refused */
    for (unsigned i = 0; i < ar->n; i++) {
        unsigned d = 0;
        while (d < s->fleet.n_devices && ar->by_device[d] != i + 1)
            d++;
        int rc = ar->specs[i].real_leak_ppm > 0 ? add_real_leaks(ar, s, i, d) : 0;
        if (rc != 0)
            return rc;
    }
    if (ar->n_leaks > 0 && !s->opt.quiet)
        fprintf(stderr,
                "canary attack device: a real leak for %u devices in the rooms of "
                "--real-leak replays\n",
                ar->n_leaks);
    return 0;
}

static void on_reading(void *ctx, struct sim_reading *r, uint64_t seq)
{
    struct attack_run *ar = ctx;
    unsigned a = ar->by_device[r->device], l = ar->leak_by_device[r->device];
    if (a != 0)
        attack_apply(&ar->states[a - 1], r, seq);
    else if (l != 0)
        attack_apply(&ar->leaks[l - 1], r, seq);
}

/* One truth line: what was attacked and how; the first and last attacked reading (null
 * before the first). */
static int truth_line(const struct attack_state *st, const char *hidden_by, char *buf, size_t len)
{
    const struct attack_spec *sp = &st->spec;
    const struct attack_truth *t = &st->truth;
    char end[32], first[96], last[96];
    if (st->end_ms == INT64_MAX)
        snprintf(end, sizeof end, "null");
    else
        snprintf(end, sizeof end, "%" PRId64, st->end_ms);
    if (t->any) {
        snprintf(first, sizeof first, "\"first_seq\":%" PRIu64 ",\"first_ts_ms\":%" PRId64,
                 t->first_seq, t->first_ts_ms);
        snprintf(last, sizeof last, "\"last_seq\":%" PRIu64 ",\"last_ts_ms\":%" PRId64, t->last_seq,
                 t->last_ts_ms);
    } else {
        snprintf(first, sizeof first, "\"first_seq\":null,\"first_ts_ms\":null");
        snprintf(last, sizeof last, "\"last_seq\":null,\"last_ts_ms\":null");
    }
    char obs[112];
    if (t->observable)
        snprintf(obs, sizeof obs,
                 "\"first_observable_seq\":%" PRIu64 ",\"first_observable_ts_ms\":%" PRId64,
                 t->first_observable_seq, t->first_observable_ts_ms);
    else
        snprintf(obs, sizeof obs, "\"first_observable_seq\":null,\"first_observable_ts_ms\":null");
    return snprintf(
        buf, len,
        "{\"device\":\"%s\",\"kind\":\"%s\",\"metric\":\"%s\",\"start_ms\":%" PRId64
        ",\"end_ms\":%s,%s,%s,%s,\"readings\":%" PRIu64 ",\"window_readings\":%" PRIu64
        ",\"magnitude\":%.17g,\"every\":%u,\"replay_from_s\":%.17g,\"real_leak_ppm\":%.17g,"
        "\"seed\":%" PRIu64 "%s%s%s}\n",
        sp->device, hidden_by != NULL ? "real-leak" : attack_kind_name(sp->kind),
        st->metric[0] ? st->metric : "*", st->start_ms, end, first, last, obs, t->readings,
        t->window_readings, st->magnitude, sp->kind == ATTACK_SPIKE ? st->spec.every : 0,
        sp->kind == ATTACK_REPLAY ? (sp->replay_from_s > 0 ? sp->replay_from_s : sp->duration_s)
                                  : 0.0,
        sp->real_leak_ppm, sp->seed, hidden_by != NULL ? ",\"hidden_by\":\"" : "",
        hidden_by != NULL ? hidden_by : "", hidden_by != NULL ? "\"" : "");
}

static int on_truth(void *ctx, const struct sim *s, bool final)
{
    struct attack_run *ar = ctx;
    if (ar->truth_path == NULL || !ar->initialised)
        return 0;
    size_t cap = (size_t)(ar->n + ar->n_leaks) * TRUTH_LINE_MAX + 1, used = 0;
    char *buf = malloc(cap);
    if (buf == NULL)
        return -1;
    for (unsigned i = 0; i < ar->n + ar->n_leaks; i++) {
        int n = i < ar->n ? truth_line(&ar->states[i], NULL, buf + used, cap - used)
                          : truth_line(&ar->leaks[i - ar->n],
                                       ar->specs[ar->leak_hidden_by[i - ar->n]].device, buf + used,
                                       cap - used);
        if (n < 0 || (size_t)n >= cap - used) {
            free(buf);
            return -1;
        }
        used += (size_t)n;
    }
    char err[512];
    int rc = file_write_atomic(ar->truth_path, buf, used, 0644, err, sizeof err);
    free(buf);
    if (rc != 0 && (final || !s->opt.quiet))
        fprintf(stderr, "canary attack device: cannot write --truth: %s\n", err);
    return rc != 0 ? -1 : 0;
}

int attack_device_main(int argc, char **argv)
{
    struct attack_run *ar = calloc(1, sizeof *ar);
    char **sim_argv = calloc(MAX_SIM_ARGS, sizeof *sim_argv);
    if (ar == NULL || sim_argv == NULL) {
        free(ar);
        free(sim_argv);
        fprintf(stderr, "canary attack device: out of memory\n");
        return 1;
    }
    char run_arg[64];
    int sim_argc = 0;
    int rc = parse_args(ar, argc, argv, sim_argv, &sim_argc, run_arg, sizeof run_arg);
    if (rc == 0) {
        const struct sim_hooks hooks = {ar, on_ready, on_reading, on_truth};
        rc = sim_run_main(sim_argc, sim_argv, &hooks);
    } else if (rc == 1) {
        rc = 0;
    }
    for (unsigned i = 0; i < ar->n; i++)
        attack_state_free(&ar->states[i]);
    free(ar->by_device);
    for (unsigned i = 0; i < ar->n_leaks; i++)
        attack_state_free(&ar->leaks[i]);
    free(ar->leaks);
    free(ar->leak_hidden_by);
    free(ar->leak_by_device);
    free(ar);
    free(sim_argv);
    return rc;
}
