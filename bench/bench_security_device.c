/* bench_security_device.c — the scorer of bench/security_device.sh: how well canaryd's tamper
 * checks caught `canary attack device`'s compromised devices, from the run's ground truth
 * (--truth, JSON lines) and what canaryd's REST API says afterwards. Prints one table.
 *
 * For each attack (one device, one window), detection is the earliest of:
 *   - an attacked reading (ts in [first_ts, last_ts] of the truth) carrying the flag "tamper"
 *     or "quarantined" on any of its values;
 *   - a security event tamper_suspect or quarantined for the device, a tamper alert opened
 *     for it, or its trust state leaving "trusted" (since_ms), at or after canaryd received
 *     the first attacked reading: placed at the last attacked reading received by then.
 * The delay is that reading's position in the window (0 = the first attacked reading) and
 * its simulated seconds after the first. "Within N readings" means at one of the first N:
 * the strict figure, the headline. Beside it (never instead of it) a second table counts
 * from the first attacked reading whose value differs from what the device would have sent
 * by more than the sensor's resolution (the truth's first_observable_ts_ms), and shows apart
 * the attacks that never changed an observable value.
 * Clean devices (every fleet device without an attack) are flagged when they have a tamper
 * alert, a quarantined event or are quarantined now; their readings are flagged when any
 * value carries "tamper".
 *
 * usage: bench_security_device --url URL --truth FILE --devices N [--prefix P]
 *                              [--within N] [--from MS] [--to MS] [--flag F]
 * --save FILE appends the per-attack and per-clean-device results to FILE (device names
 * prefixed with --label, e.g. "seed2:"), and
 * `bench_security_device summary FILE...` prints one table over several saved rounds.
 * --flag counts another reading flag instead of "tamper" (e.g. "anomaly": what the anomaly
 * detectors alone would have caught). The admin token, when canaryd has one, comes from
 * $CANARY_API_ADMIN_TOKEN.
 *
 * It also writes the benchmark's attack plan (`canary attack device --plan`), from the same
 * fleet the simulator builds (sim_fleet.h):
 *        bench_security_device plan --devices N --seed S --per-kind K --first S --last S
 *                                   --length S
 * K attacks of every kind, each on a device in a room (location) no other attack touches, so
 * every attacked device has clean neighbours; fake leaks on devices with a gas sensor, and
 * every other replay (rounds 1, 3, ...) hides a real leak of 8000 ppm that its room's other
 * gas sensors see (--real-leak; reported apart, those devices count as clean); start
 * times spread evenly from --first to --last (simulated seconds), each --length long. */
#include "cli/attack_transform.h"
#include "cli/sim_fleet.h"

#include <cjson/cJSON.h>
#include <curl/curl.h>

#include <errno.h>
#include <inttypes.h>
#include <math.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define MAX_ATTACKS 1000
#define MAX_DEVICES 20000
#define KINDS       8

static const char *const kind_order[KINDS] = {"spike",  "ramp",  "bias",   "scale",
                                              "freeze", "noise", "replay", "fake-leak"};

struct reading {
    int64_t ts_ms, recv_ms;
    bool tamper, quarantined;
};

struct device {
    char id[80];
    int attack; /* index into attacks, or -1 */
    struct reading *r;
    size_t n, cap;
    int64_t first_signal_ms; /* earliest event / alert / trust change (wall ms), INT64_MAX */
    bool tamper_alert, quarantined_event, quarantined_now, suspect_event;
    char checks[160]; /* the distinct checks of trust.reasons, "drift timing" */
};

struct attack {
    char device[80], kind[32], metric[80];
    int64_t first_ts, last_ts;
    bool any;
    bool observable; /* the truth has a first observable reading (first_observable_ts_ms) */
    int64_t obs_ts;  /* its ts */
    long obs_index;  /* its position in the window; -1: no attacked value ever observable */
    /* results */
    bool detected;
    long index;     /* detection's position in the window */
    double delay_s; /* simulated seconds after the first attacked reading */
    size_t window;  /* readings of the device in the window */
};

struct buf {
    char *data;
    size_t len, cap;
};

static CURL *curl;
static struct curl_slist *headers;
static char base[512];
static const char *detect_flag = "tamper"; /* --flag: the reading flag that counts */

static size_t on_data(char *p, size_t size, size_t n, void *ud)
{
    struct buf *b = ud;
    size_t add = size * n;
    if (b->len + add + 1 > b->cap) {
        size_t cap = (b->len + add + 1) * 2;
        char *d = realloc(b->data, cap);
        if (d == NULL)
            return 0;
        b->data = d;
        b->cap = cap;
    }
    memcpy(b->data + b->len, p, add);
    b->len += add;
    b->data[b->len] = '\0';
    return add;
}

/* GET base + path; returns the parsed JSON (caller frees) or exits on failure. */
static cJSON *get_json_soft(const char *path, bool soft)
{
    char url[2048];
    snprintf(url, sizeof url, "%s%s", base, path);
    struct buf b = {0};
    curl_easy_setopt(curl, CURLOPT_URL, url);
    curl_easy_setopt(curl, CURLOPT_WRITEDATA, &b);
    CURLcode rc = curl_easy_perform(curl);
    long status = 0;
    curl_easy_getinfo(curl, CURLINFO_RESPONSE_CODE, &status);
    if (soft && rc == CURLE_OK && status >= 400 && status < 500) {
        fprintf(stderr, "bench_security_device: GET %s answered %ld: counted as none (%s)\n", url,
                status, b.data ? b.data : "");
        free(b.data);
        return NULL;
    }
    if (rc != CURLE_OK || status != 200) {
        fprintf(stderr, "bench_security_device: GET %s: %s (HTTP %ld) %s\n", url,
                curl_easy_strerror(rc), status, b.data ? b.data : "");
        exit(1);
    }
    cJSON *j = cJSON_Parse(b.data ? b.data : "");
    free(b.data);
    if (j == NULL) {
        fprintf(stderr, "bench_security_device: GET %s: not JSON\n", url);
        exit(1);
    }
    return j;
}

static cJSON *get_json(const char *path)
{
    return get_json_soft(path, false);
}

static double num(const cJSON *o, const char *name)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, name);
    return cJSON_IsNumber(v) ? v->valuedouble : NAN;
}

static const char *str(const cJSON *o, const char *name)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, name);
    return cJSON_IsString(v) ? v->valuestring : "";
}

static bool has_flag(const cJSON *values, const char *flag)
{
    const cJSON *v;
    cJSON_ArrayForEach(v, values)
    {
        const cJSON *f, *flags = cJSON_GetObjectItemCaseSensitive(v, "flags");
        cJSON_ArrayForEach(f, flags)
        {
            if (cJSON_IsString(f) && strcmp(f->valuestring, flag) == 0)
                return true;
        }
    }
    return false;
}

static void load_readings(struct device *d, int64_t from, int64_t to)
{
    int64_t cursor = from;
    for (;;) {
        char path[512];
        snprintf(path, sizeof path,
                 "/api/v1/devices/%s/readings?order=asc&limit=10000&from=%" PRId64 "&to=%" PRId64,
                 d->id, cursor, to);
        cJSON *j = get_json(path);
        const cJSON *r, *list = cJSON_GetObjectItemCaseSensitive(j, "readings");
        int64_t last = cursor;
        cJSON_ArrayForEach(r, list)
        {
            if (d->n == d->cap) {
                d->cap = d->cap ? d->cap * 2 : 1024;
                d->r = realloc(d->r, d->cap * sizeof *d->r);
                if (d->r == NULL)
                    exit(1);
            }
            const cJSON *values = cJSON_GetObjectItemCaseSensitive(r, "values");
            struct reading *x = &d->r[d->n++];
            x->ts_ms = (int64_t)num(r, "ts_ms");
            x->recv_ms = (int64_t)num(r, "recv_ms");
            x->tamper = has_flag(values, detect_flag);
            x->quarantined = has_flag(values, "quarantined");
            last = x->ts_ms;
        }
        bool more = cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(j, "more"));
        cJSON_Delete(j);
        if (!more)
            break;
        cursor = last + 1;
    }
}

static struct device *find_device(struct device *devs, unsigned n, const char *id)
{
    for (unsigned i = 0; i < n; i++) {
        if (strcmp(devs[i].id, id) == 0)
            return &devs[i];
    }
    return NULL;
}

static void note_signal(struct device *d, int64_t ms)
{
    if (ms < d->first_signal_ms)
        d->first_signal_ms = ms;
}

/* Every security event of one kind (paged newest first). */
static void load_events(struct device *devs, unsigned n, const char *kind)
{
    char before[64] = "";
    for (;;) {
        char path[256];
        snprintf(path, sizeof path, "/api/v1/events?category=security&kind=%s&limit=500%s", kind,
                 before);
        cJSON *j = get_json_soft(path, true);
        if (j == NULL)
            return;
        const cJSON *e, *list = cJSON_GetObjectItemCaseSensitive(j, "events");
        cJSON_ArrayForEach(e, list)
        {
            struct device *d = find_device(devs, n, str(e, "device"));
            if (d == NULL)
                continue;
            if (strcmp(kind, "quarantined") == 0)
                d->quarantined_event = true;
            else
                d->suspect_event = true;
            note_signal(d, (int64_t)num(e, "ts_ms"));
        }
        const cJSON *nb = cJSON_GetObjectItemCaseSensitive(j, "next_before");
        bool more = cJSON_IsNumber(nb);
        if (more)
            snprintf(before, sizeof before, "&before=%.0f", nb->valuedouble);
        cJSON_Delete(j);
        if (!more)
            break;
    }
}

static void load_alerts(struct device *devs, unsigned n)
{
    char before[64] = "";
    for (;;) {
        char path[256];
        snprintf(path, sizeof path, "/api/v1/alerts?kind=tamper&limit=500%s", before);
        cJSON *j = get_json_soft(path, true);
        if (j == NULL)
            return;
        const cJSON *a, *list = cJSON_GetObjectItemCaseSensitive(j, "alerts");
        cJSON_ArrayForEach(a, list)
        {
            struct device *d = find_device(devs, n, str(a, "device"));
            if (d == NULL)
                continue;
            d->tamper_alert = true;
            note_signal(d, (int64_t)num(a, "opened_ms"));
        }
        const cJSON *nb = cJSON_GetObjectItemCaseSensitive(j, "next_before");
        bool more = cJSON_IsNumber(nb);
        if (more)
            snprintf(before, sizeof before, "&before=%.0f", nb->valuedouble);
        cJSON_Delete(j);
        if (!more)
            break;
    }
}

/* Appends word to a space-separated list unless it is there already. */
static void add_word(char *list, size_t cap, const char *word)
{
    if (word[0] == '\0')
        return;
    size_t n = strlen(word), used = strlen(list);
    for (const char *p = list; (p = strstr(p, word)) != NULL; p += n) {
        if ((p == list || p[-1] == ' ') && (p[n] == '\0' || p[n] == ' '))
            return;
    }
    if (used + n + 2 <= cap)
        snprintf(list + used, cap - used, "%s%s", used ? " " : "", word);
}

static void load_trust(struct device *d)
{
    char path[256];
    snprintf(path, sizeof path, "/api/v1/devices/%s", d->id);
    cJSON *j = get_json(path);
    const cJSON *trust = cJSON_GetObjectItemCaseSensitive(j, "trust");
    if (cJSON_IsObject(trust)) {
        const char *state = str(trust, "state");
        d->quarantined_now = strcmp(state, "quarantined") == 0;
        double since = num(trust, "since_ms");
        if (state[0] != '\0' && strcmp(state, "trusted") != 0 && !isnan(since))
            note_signal(d, (int64_t)since);
        const cJSON *r, *reasons = cJSON_GetObjectItemCaseSensitive(trust, "reasons");
        cJSON_ArrayForEach(r, reasons)
        {
            add_word(d->checks, sizeof d->checks, str(r, "check"));
        }
    }
    cJSON_Delete(j);
}

static int parse_truth(const char *path, struct attack *attacks, unsigned *n_attacks)
{
    FILE *fp = fopen(path, "r");
    if (fp == NULL) {
        fprintf(stderr, "bench_security_device: --truth %s: %s\n", path, strerror(errno));
        return -1;
    }
    char line[4096];
    unsigned n = 0, lineno = 0;
    while (fgets(line, sizeof line, fp) != NULL) {
        lineno++;
        cJSON *j = cJSON_Parse(line);
        if (j == NULL || n == MAX_ATTACKS) {
            fprintf(stderr, "bench_security_device: %s line %u: not a JSON object\n", path, lineno);
            fclose(fp);
            cJSON_Delete(j);
            return -1;
        }
        struct attack *a = &attacks[n++];
        memset(a, 0, sizeof *a);
        snprintf(a->device, sizeof a->device, "%s", str(j, "device"));
        snprintf(a->kind, sizeof a->kind, "%s", str(j, "kind"));
        snprintf(a->metric, sizeof a->metric, "%s", str(j, "metric"));
        a->any = cJSON_IsNumber(cJSON_GetObjectItemCaseSensitive(j, "first_ts_ms"));
        a->first_ts = (int64_t)num(j, "first_ts_ms");
        a->last_ts = (int64_t)num(j, "last_ts_ms");
        a->observable =
            cJSON_IsNumber(cJSON_GetObjectItemCaseSensitive(j, "first_observable_ts_ms"));
        a->obs_ts = a->observable ? (int64_t)num(j, "first_observable_ts_ms") : 0;
        cJSON_Delete(j);
    }
    fclose(fp);
    *n_attacks = n;
    return 0;
}

static void score_attack(struct attack *a, const struct device *d, unsigned within)
{
    a->index = -1;
    size_t first = 0;
    while (first < d->n && d->r[first].ts_ms < a->first_ts)
        first++;
    size_t end = first;
    while (end < d->n && d->r[end].ts_ms <= a->last_ts)
        end++;
    a->window = end - first;
    a->obs_index = -1;
    for (size_t i = first; a->observable && i < end && a->obs_index < 0; i++) {
        if (d->r[i].ts_ms >= a->obs_ts)
            a->obs_index = (long)(i - first);
    }
    if (!a->any || a->window == 0)
        return;
    long idx = -1;
    for (size_t i = first; i < end && idx < 0; i++) {
        if (d->r[i].tamper || d->r[i].quarantined)
            idx = (long)(i - first);
    }
    if (d->first_signal_ms != INT64_MAX && d->first_signal_ms >= d->r[first].recv_ms) {
        long by_signal = -1;
        for (size_t i = first; i < end && d->r[i].recv_ms <= d->first_signal_ms; i++)
            by_signal = (long)(i - first);
        if (by_signal >= 0 && (idx < 0 || by_signal < idx))
            idx = by_signal;
    }
    if (idx < 0)
        return;
    a->detected = true;
    a->index = idx;
    a->delay_s = (double)(d->r[first + (size_t)idx].ts_ms - a->first_ts) / 1000.0;
    (void)within;
}

/* The real leaks a replay hid (truth kind "real-leak", --real-leak): their devices are clean
 * ones, and a real leak must raise its gas_leak alert and not be doubted as tampering. */
static void report_real_leaks(const struct attack *attacks, unsigned n_attacks, struct device *devs,
                              unsigned n_devices)
{
    unsigned n = 0, alerted = 0, critical = 0, flagged = 0;
    uint64_t readings = 0, doubted = 0;
    char flagged_ids[1024] = "";
    for (unsigned k = 0; k < n_attacks; k++) {
        const struct attack *a = &attacks[k];
        if (strcmp(a->kind, "real-leak") != 0)
            continue;
        struct device *d = find_device(devs, n_devices, a->device);
        if (d == NULL || !a->any)
            continue;
        n++;
        for (size_t i = 0; i < d->n; i++) {
            if (d->r[i].ts_ms >= a->first_ts && d->r[i].ts_ms <= a->last_ts) {
                readings++;
                doubted += d->r[i].tamper;
            }
        }
        char path[256];
        snprintf(path, sizeof path, "/api/v1/alerts?kind=gas_leak&device=%s&limit=100", d->id);
        cJSON *j = get_json_soft(path, true);
        const cJSON *al, *list = j ? cJSON_GetObjectItemCaseSensitive(j, "alerts") : NULL;
        bool any = false, crit = false;
        cJSON_ArrayForEach(al, list)
        {
            any = true;
            crit |= strcmp(str(al, "severity"), "critical") == 0;
        }
        cJSON_Delete(j);
        alerted += any;
        critical += crit;
        bool f = d->tamper_alert || d->quarantined_event || d->quarantined_now;
        flagged += f;
        if (f && strlen(flagged_ids) + strlen(d->id) + 3 < sizeof flagged_ids)
            snprintf(flagged_ids + strlen(flagged_ids), sizeof flagged_ids - strlen(flagged_ids),
                     "%s%s", flagged_ids[0] ? " " : "", d->id);
    }
    if (n == 0)
        return;
    printf("\nReal leaks hidden by a replaying neighbour (--real-leak; these devices count as "
           "clean above):\n\n");
    printf("| devices with a real leak | gas_leak alert | critical | leak readings flagged "
           "\"tamper\" | devices flagged (tamper alert or quarantine) |\n");
    printf("|---|---|---|---|---|\n");
    printf("| %u | %u | %u | %" PRIu64 " of %" PRIu64 " | %u%s%s%s |\n", n, alerted, critical,
           doubted, readings, flagged, flagged_ids[0] ? " (" : "", flagged_ids,
           flagged_ids[0] ? ")" : "");
}

static int cmp_double(const void *x, const void *y)
{
    double a = *(const double *)x, b = *(const double *)y;
    return a < b ? -1 : a > b;
}

static double median(double *v, size_t n)
{
    if (n == 0)
        return NAN;
    qsort(v, n, sizeof *v, cmp_double);
    return n % 2 ? v[n / 2] : (v[n / 2 - 1] + v[n / 2]) / 2;
}

/* ---- the plan ------------------------------------------------------------------------ */

static int write_plan(int argc, char **argv)
{
    unsigned n = 168, per_kind = 4;
    uint64_t seed = 1;
    double first = 900, last = 2700, length = 600;
    const char *prefix = "sim";
    for (int i = 2; i + 1 < argc; i += 2) {
        if (!strcmp(argv[i], "--devices"))
            n = (unsigned)strtoul(argv[i + 1], NULL, 10);
        else if (!strcmp(argv[i], "--seed"))
            seed = strtoull(argv[i + 1], NULL, 10);
        else if (!strcmp(argv[i], "--per-kind"))
            per_kind = (unsigned)strtoul(argv[i + 1], NULL, 10);
        else if (!strcmp(argv[i], "--first"))
            first = strtod(argv[i + 1], NULL);
        else if (!strcmp(argv[i], "--last"))
            last = strtod(argv[i + 1], NULL);
        else if (!strcmp(argv[i], "--length"))
            length = strtod(argv[i + 1], NULL);
        else if (!strcmp(argv[i], "--prefix"))
            prefix = argv[i + 1];
        else {
            fprintf(stderr, "bench_security_device plan: unknown option %s\n", argv[i]);
            return 2;
        }
    }
    struct sim_fleet f;
    struct sim_fleet_config cfg = {.seed = seed, .n_devices = n, .prefix = prefix};
    char err[256];
    if (sim_fleet_init(&f, &cfg, err, sizeof err) != 0) {
        fprintf(stderr, "bench_security_device plan: %s\n", err);
        return 2;
    }
    bool *used_room = calloc(n, 1), *used_dev = calloc(n, 1);
    unsigned total = per_kind * ATTACK_KIND_COUNT, made = 0;
    /* kinds interleaved (spike, ramp, ..., spike, ...) so start times mix the kinds */
    for (unsigned round = 0; round < per_kind; round++) {
        for (int k = 0; k < ATTACK_KIND_COUNT; k++) {
            /* every other replay hides a real leak: its room needs gas sensors */
            bool real_leak = k == ATTACK_REPLAY && round % 2 == 0;
            bool need_gas = k == ATTACK_FAKE_LEAK || real_leak;
            unsigned pick = n;
            /* walk the fleet from a spread-out place so attacks land on every site */
            unsigned from = (unsigned)(((uint64_t)made * 7919u) % n);
            for (unsigned j = 0; j < n && pick == n; j++) {
                unsigned d = (from + j) % n;
                if (used_dev[d] || (need_gas && !sim_fleet_has_metric(&f, d, "gas_ppm")))
                    continue;
                bool room_taken = false;
                for (unsigned o = 0; o < n && !room_taken; o++)
                    room_taken = used_room[o] && !strcmp(sim_fleet_device(&f, o)->location,
                                                         sim_fleet_device(&f, d)->location);
                if (!room_taken)
                    pick = d;
            }
            if (pick == n) {
                fprintf(stderr,
                        "bench_security_device plan: not enough rooms for %u attacks of each "
                        "kind in %u devices\n",
                        per_kind, n);
                free(used_room);
                free(used_dev);
                sim_fleet_free(&f);
                return 2;
            }
            used_dev[pick] = used_room[pick] = true;
            double start = total > 1 ? first + (last - first) * made / (total - 1) : first;
            printf("--kind %s --device %s --start %.0f --duration %.0f --attack-seed %u%s\n",
                   attack_kind_name((enum attack_kind)k), sim_fleet_device(&f, pick)->id, start,
                   length, made + 1, real_leak ? " --real-leak 8000" : "");
            made++;
        }
    }
    free(used_room);
    free(used_dev);
    sim_fleet_free(&f);
    return 0;
}

/* ---- results: printed, saved, summed over rounds ------------------------------------ */

struct result {
    char kind[32], device[80], checks[160];
    bool detected;
    long index;
    double delay_s;
    long obs_index; /* the first observable reading's position in the window; -1: none */
};

struct clean_result {
    char device[80], checks[160];
    bool flagged, suspect;
    uint64_t readings, tamper;
};

/* The second figure, printed beside the strict one and never instead of it: detection counted
 * from the first attacked reading whose value differs from what the device would have sent
 * by more than its sensor's resolution (the truth's first_observable_*). Some attacks change
 * nothing a reading can show for their first readings (a ramp of 0.08 °C a reading on a
 * whole-degree sensor) or ever (a freeze on the degree the sensor was reporting anyway):
 * no check can see them there. Those that never change an observable value are counted
 * apart, with how many were detected at all. A detection before the first observable change
 * counts as within. "Observable within the first `within`": the attacks that changed a value
 * by more than one step within their first `within` readings. The others sent, for all of
 * those readings, what the honest device would have sent to within one step of its sensor:
 * within `within` readings they can be caught only by a pattern (a run of repeats too long
 * for the sensor), never by a value. */
static double print_observable_table(const struct result *res, unsigned n_res, unsigned within)
{
    printf("\nThe same attacks counted from their first OBSERVABLE change (a second figure beside "
           "the strict one above, not instead of it: the first attacked reading with a value "
           "more than one sensor step from what the device would have sent)\n\n");
    printf("| attack | attacks | ever observable | detected within %u of the first observable "
           "change | never observable | never observable, detected at all | observable within "
           "the first %u | strict figure (within %u of the first attacked reading) |\n",
           within, within, within);
    printf("|---|---|---|---|---|---|---|---|\n");
    unsigned tot = 0, tot_obs = 0, tot_in = 0, tot_never = 0, tot_never_det = 0, tot_strict = 0,
             tot_early = 0;
    for (int kk = 0; kk < KINDS; kk++) {
        unsigned n = 0, obs = 0, in = 0, never_det = 0, strict = 0, early = 0;
        for (unsigned k = 0; k < n_res; k++) {
            const struct result *a = &res[k];
            if (strcmp(a->kind, kind_order[kk]) != 0 || a->obs_index < -1)
                continue;
            n++;
            strict += a->detected && a->index < (long)within;
            if (a->obs_index < 0) {
                never_det += a->detected;
                continue;
            }
            obs++;
            early += a->obs_index < (long)within;
            in += a->detected && a->index < a->obs_index + (long)within;
        }
        if (n == 0)
            continue;
        tot += n;
        tot_obs += obs;
        tot_in += in;
        tot_never += n - obs;
        tot_never_det += never_det;
        tot_strict += strict;
        tot_early += early;
        printf("| %s | %u | %u | %u (%.0f %%) | %u | %u | %u (%.0f %%) | %u (%.0f %%) |\n",
               kind_order[kk], n, obs, in, obs ? 100.0 * in / obs : 0.0, n - obs, never_det, early,
               100.0 * early / n, strict, 100.0 * strict / n);
    }
    printf("| **all** | %u | %u | %u (%.1f %%) | %u | %u | %u (%.1f %%) | %u (%.1f %%) |\n", tot,
           tot_obs, tot_in, tot_obs ? 100.0 * tot_in / tot_obs : 0.0, tot - tot_obs, tot_never_det,
           tot_early, tot ? 100.0 * tot_early / tot : 0.0, tot_strict,
           tot ? 100.0 * tot_strict / tot : 0.0);
    return tot_obs ? 100.0 * tot_in / tot_obs : 0.0;
}

static void print_tables(const struct result *res, unsigned n_res, const struct clean_result *cres,
                         unsigned n_clean, unsigned within)
{
    printf("\nCompromised devices (canary attack device): detection within %u readings\n\n",
           within);
    printf("| attack | attacks | detected within %u | detected at all | median delay (readings) "
           "| median delay (s) | missed | checks in trust.reasons |\n",
           within);
    printf("|---|---|---|---|---|---|---|---|\n");
    unsigned tot = 0, tot_within = 0;
    for (int kk = 0; kk < KINDS; kk++) {
        static double idx[MAX_ATTACKS], secs[MAX_ATTACKS];
        size_t nd = 0;
        unsigned n = 0, in_time = 0;
        char missed[1024] = "", checks[256] = "";
        for (unsigned k = 0; k < n_res; k++) {
            const struct result *a = &res[k];
            if (strcmp(a->kind, kind_order[kk]) != 0)
                continue;
            n++;
            char copy[160];
            snprintf(copy, sizeof copy, "%s", a->checks);
            for (char *save = NULL, *w = strtok_r(copy, " ", &save); w != NULL;
                 w = strtok_r(NULL, " ", &save))
                add_word(checks, sizeof checks, w);
            if (a->detected) {
                idx[nd] = (double)a->index;
                secs[nd++] = a->delay_s;
            }
            if (a->detected && a->index < (long)within)
                in_time++;
            else if (strlen(missed) + strlen(a->device) + 2 < sizeof missed)
                snprintf(missed + strlen(missed), sizeof missed - strlen(missed), "%s%s",
                         missed[0] ? " " : "", a->device);
        }
        if (n == 0)
            continue;
        tot += n;
        tot_within += in_time;
        double mi = median(idx, nd), ms = median(secs, nd);
        char mis[32], mss[32];
        snprintf(mis, sizeof mis, isnan(mi) ? "-" : "%.1f", mi);
        snprintf(mss, sizeof mss, isnan(ms) ? "-" : "%.0f", ms);
        printf("| %s | %u | %u (%.0f %%) | %zu | %s | %s | %s | %s |\n", kind_order[kk], n, in_time,
               100.0 * in_time / n, nd, mis, mss, missed[0] ? missed : "-",
               checks[0] ? checks : "-");
    }
    printf("| **all** | %u | %u (%.1f %%) | | | | | |\n", tot, tot_within,
           tot ? 100.0 * tot_within / tot : 0.0);
    double from_observable = print_observable_table(res, n_res, within);

    unsigned flagged = 0, suspect = 0;
    uint64_t clean_readings = 0, clean_tamper = 0;
    char flagged_ids[4096] = "";
    for (unsigned i = 0; i < n_clean; i++) {
        const struct clean_result *c = &cres[i];
        flagged += c->flagged;
        suspect += c->suspect;
        clean_readings += c->readings;
        clean_tamper += c->tamper;
        if (c->flagged &&
            strlen(flagged_ids) + strlen(c->device) + strlen(c->checks) + 16 < sizeof flagged_ids)
            snprintf(flagged_ids + strlen(flagged_ids), sizeof flagged_ids - strlen(flagged_ids),
                     "%s%s (%s)", flagged_ids[0] ? ", " : "", c->device,
                     c->checks[0] ? c->checks : "no reasons");
    }
    printf("\n| clean devices | flagged (tamper alert or quarantine) | only suspected | clean "
           "readings | flagged \"tamper\" |\n");
    printf("|---|---|---|---|---|\n");
    printf("| %u | %u (%.2f %%) | %u | %" PRIu64 " | %" PRIu64 " (%.3f %%) |\n", n_clean, flagged,
           n_clean ? 100.0 * flagged / n_clean : 0.0, suspect, clean_readings, clean_tamper,
           clean_readings ? 100.0 * (double)clean_tamper / (double)clean_readings : 0.0);
    if (flagged_ids[0])
        printf("\nclean devices flagged: %s\n", flagged_ids);
    printf("\ntargets: >= 95 %% of attacks detected within %u readings: from the first attacked "
           "reading %s (%.1f %%), from the first observable change %s (%.1f %%); <= 1 %% of "
           "clean devices flagged: %s\n",
           within, tot && 100.0 * tot_within / tot >= 95 ? "met" : "NOT met",
           tot ? 100.0 * tot_within / tot : 0.0, from_observable >= 95 ? "met" : "NOT met",
           from_observable, n_clean && 100.0 * flagged / n_clean <= 1 ? "met" : "NOT met");
}

/* Appends the results to path, one line each ('-' for no checks):
 *   attack KIND DEVICE DETECTED INDEX DELAY_S CHECKS,... OBS_INDEX (-1: never observable)
 *   clean DEVICE FLAGGED SUSPECT READINGS TAMPER CHECKS,... */
static void commas(char *dst, size_t cap, const char *checks)
{
    snprintf(dst, cap, "%s", checks[0] ? checks : "-");
    for (char *p = dst; *p; p++)
        *p = *p == ' ' ? ',' : *p;
}

static int save_results(const char *path, const char *label, const struct result *res,
                        unsigned n_res, const struct clean_result *cres, unsigned n_clean)
{
    FILE *fp = fopen(path, "a");
    if (fp == NULL) {
        fprintf(stderr, "bench_security_device: --save %s: %s\n", path, strerror(errno));
        return -1;
    }
    char c[160];
    for (unsigned k = 0; k < n_res; k++) {
        commas(c, sizeof c, res[k].checks);
        fprintf(fp, "attack %s %s%s %d %ld %.3f %s %ld\n", res[k].kind, label, res[k].device,
                res[k].detected, res[k].index, res[k].delay_s, c, res[k].obs_index);
    }
    for (unsigned i = 0; i < n_clean; i++) {
        commas(c, sizeof c, cres[i].checks);
        fprintf(fp, "clean %s%s %d %d %" PRIu64 " %" PRIu64 " %s\n", label, cres[i].device,
                cres[i].flagged, cres[i].suspect, cres[i].readings, cres[i].tamper, c);
    }
    return fclose(fp) == 0 ? 0 : -1;
}

/* bench_security_device summary [--within N] FILE...: one table over saved rounds (device
 * names as saved, with their --label: "seed2:sim-0042"). */
static int summary(int argc, char **argv)
{
    static struct result res[MAX_ATTACKS * 4];
    static struct clean_result cres[MAX_DEVICES];
    unsigned n_res = 0, n_clean = 0, within = 10;
    for (int i = 2; i < argc; i++) {
        if (!strcmp(argv[i], "--within") && i + 1 < argc) {
            within = (unsigned)strtoul(argv[++i], NULL, 10);
            continue;
        }
        FILE *fp = fopen(argv[i], "r");
        if (fp == NULL) {
            fprintf(stderr, "bench_security_device summary: %s: %s\n", argv[i], strerror(errno));
            return 1;
        }
        char line[512], kind[32], dev[64], checks[160];
        while (fgets(line, sizeof line, fp) != NULL) {
            int det, fl, su;
            long index, obs = -2; /* -2: a file saved before the observable truth */
            double delay;
            unsigned long long rd, tm;
            if (sscanf(line, "attack %31s %63s %d %ld %lf %159s %ld", kind, dev, &det, &index,
                       &delay, checks, &obs) >= 6 &&
                n_res < sizeof res / sizeof res[0]) {
                struct result *r = &res[n_res++];
                memset(r, 0, sizeof *r);
                snprintf(r->kind, sizeof r->kind, "%s", kind);
                snprintf(r->device, sizeof r->device, "%s", dev);
                r->detected = det != 0;
                r->index = index;
                r->delay_s = delay;
                r->obs_index = obs;
                for (char *p = checks; *p; p++)
                    *p = *p == ',' ? ' ' : *p;
                snprintf(r->checks, sizeof r->checks, "%s", strcmp(checks, "-") ? checks : "");
            } else if (sscanf(line, "clean %63s %d %d %llu %llu %159s", dev, &fl, &su, &rd, &tm,
                              checks) == 6 &&
                       n_clean < MAX_DEVICES) {
                struct clean_result *c = &cres[n_clean++];
                memset(c, 0, sizeof *c);
                snprintf(c->device, sizeof c->device, "%s", dev);
                c->flagged = fl != 0;
                c->suspect = su != 0;
                c->readings = rd;
                c->tamper = tm;
                for (char *p = checks; *p; p++)
                    *p = *p == ',' ? ' ' : *p;
                snprintf(c->checks, sizeof c->checks, "%s", strcmp(checks, "-") ? checks : "");
            }
        }
        fclose(fp);
    }
    printf("\nAll rounds together:\n");
    print_tables(res, n_res, cres, n_clean, within);
    return 0;
}

static void usage(void)
{
    fprintf(stderr, "usage: bench_security_device --url URL --truth FILE --devices N [--prefix P] "
                    "[--within N] [--from MS] [--to MS] [--flag F] [--save FILE [--label L]]\n"
                    "       bench_security_device summary [--within N] FILE...\n"
                    "       bench_security_device plan --devices N --seed S --per-kind K ...\n");
}

int main(int argc, char **argv)
{
    if (argc > 1 && !strcmp(argv[1], "plan"))
        return write_plan(argc, argv);
    if (argc > 1 && !strcmp(argv[1], "summary"))
        return summary(argc, argv);
    const char *save = NULL, *label = "";
    const char *truth = NULL, *prefix = "sim";
    unsigned n_devices = 0, within = 10;
    int64_t from = 0, to = INT64_MAX / 2;
    for (int i = 1; i + 1 < argc; i += 2) {
        if (!strcmp(argv[i], "--url"))
            snprintf(base, sizeof base, "%s", argv[i + 1]);
        else if (!strcmp(argv[i], "--truth"))
            truth = argv[i + 1];
        else if (!strcmp(argv[i], "--devices"))
            n_devices = (unsigned)strtoul(argv[i + 1], NULL, 10);
        else if (!strcmp(argv[i], "--prefix"))
            prefix = argv[i + 1];
        else if (!strcmp(argv[i], "--within"))
            within = (unsigned)strtoul(argv[i + 1], NULL, 10);
        else if (!strcmp(argv[i], "--from"))
            from = strtoll(argv[i + 1], NULL, 10);
        else if (!strcmp(argv[i], "--to"))
            to = strtoll(argv[i + 1], NULL, 10);
        else if (!strcmp(argv[i], "--flag"))
            detect_flag = argv[i + 1];
        else if (!strcmp(argv[i], "--save"))
            save = argv[i + 1];
        else if (!strcmp(argv[i], "--label"))
            label = argv[i + 1];
        else {
            usage();
            return 2;
        }
    }
    if (base[0] == '\0' || truth == NULL || n_devices == 0 || n_devices > MAX_DEVICES ||
        within == 0) {
        usage();
        return 2;
    }
    static struct attack attacks[MAX_ATTACKS];
    unsigned n_attacks = 0;
    if (parse_truth(truth, attacks, &n_attacks) != 0)
        return 1;
    curl_global_init(CURL_GLOBAL_DEFAULT);
    curl = curl_easy_init();
    const char *admin = getenv("CANARY_API_ADMIN_TOKEN");
    if (admin != NULL && *admin != '\0') {
        char auth[600];
        snprintf(auth, sizeof auth, "Authorization: Bearer %.500s", admin);
        headers = curl_slist_append(NULL, auth);
        curl_easy_setopt(curl, CURLOPT_HTTPHEADER, headers);
    }
    curl_easy_setopt(curl, CURLOPT_WRITEFUNCTION, on_data);
    curl_easy_setopt(curl, CURLOPT_TIMEOUT, 60L);

    struct device *devs = calloc(n_devices, sizeof *devs);
    if (devs == NULL)
        return 1;
    for (unsigned i = 0; i < n_devices; i++) {
        snprintf(devs[i].id, sizeof devs[i].id, "%s-%04u", prefix, i + 1);
        devs[i].attack = -1;
        devs[i].first_signal_ms = INT64_MAX;
    }
    for (unsigned k = 0; k < n_attacks; k++) {
        if (strcmp(attacks[k].kind, "real-leak") == 0)
            continue; /* a real event on a clean device, not an attack */
        struct device *d = find_device(devs, n_devices, attacks[k].device);
        if (d == NULL) {
            fprintf(stderr, "bench_security_device: attacked device %s is not in the fleet\n",
                    attacks[k].device);
            return 1;
        }
        d->attack = (int)k;
    }
    for (unsigned i = 0; i < n_devices; i++) {
        load_readings(&devs[i], from, to);
        load_trust(&devs[i]);
    }
    load_events(devs, n_devices, "tamper_suspect");
    load_events(devs, n_devices, "quarantined");
    load_alerts(devs, n_devices);

    for (unsigned k = 0; k < n_attacks; k++) {
        if (strcmp(attacks[k].kind, "real-leak") != 0)
            score_attack(&attacks[k], find_device(devs, n_devices, attacks[k].device), within);
    }

    static struct result res[MAX_ATTACKS];
    static struct clean_result cres[MAX_DEVICES];
    unsigned n_clean = 0, n_res = 0;
    for (unsigned k = 0; k < n_attacks; k++) {
        const struct attack *a = &attacks[k];
        if (strcmp(a->kind, "real-leak") == 0)
            continue;
        const struct device *dev = find_device(devs, n_devices, a->device);
        struct result *r = &res[n_res++];
        *r = (struct result){.detected = a->detected,
                             .index = a->index,
                             .delay_s = a->delay_s,
                             .obs_index = a->obs_index};
        snprintf(r->kind, sizeof r->kind, "%.31s", a->kind);
        snprintf(r->device, sizeof r->device, "%.79s", a->device);
        snprintf(r->checks, sizeof r->checks, "%.159s", dev->checks);
    }
    for (unsigned i = 0; i < n_devices; i++) {
        const struct device *d = &devs[i];
        if (d->attack >= 0)
            continue;
        struct clean_result *c = &cres[n_clean++];
        memset(c, 0, sizeof *c);
        snprintf(c->device, sizeof c->device, "%.79s", d->id);
        snprintf(c->checks, sizeof c->checks, "%.159s", d->checks);
        c->flagged = d->tamper_alert || d->quarantined_event || d->quarantined_now;
        c->suspect = d->suspect_event && !c->flagged;
        c->readings = d->n;
        for (size_t k = 0; k < d->n; k++)
            c->tamper += d->r[k].tamper;
    }
    print_tables(res, n_res, cres, n_clean, within);
    report_real_leaks(attacks, n_attacks, devs, n_devices);
    if (save != NULL && save_results(save, label, res, n_res, cres, n_clean) != 0)
        return 1;
    for (unsigned i = 0; i < n_devices; i++)
        free(devs[i].r);
    free(devs);
    curl_slist_free_all(headers);
    curl_easy_cleanup(curl);
    curl_global_cleanup();
    return 0;
}
