/* alerts.c — `canary alerts`: canaryd's alerts on a terminal.
 *
 * Lists alerts (newest first) from the REST API, or with --follow keeps watching and
 * prints one line whenever an alert opens, changes severity or state, or resolves — what
 * the demo shows, and what an operator can leave running in a terminal. Only the public
 * API is used (GET /api/v1/alerts), with $CANARY_API_TOKEN once access control is on. */
#include "cli/cli_api.h"
#include "cli/cli_tls.h"
#include "cli/commands.h"

#include <cjson/cJSON.h>
#include <curl/curl.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

static volatile sig_atomic_t stop_requested;

static void on_signal(int sig)
{
    (void)sig;
    stop_requested = 1;
}

static void usage(FILE *out)
{
    fprintf(out,
            "usage: canary alerts [--url URL] [--state open|acknowledged|resolved] "
            "[--limit N] [--follow] [--interval S]\n"
            "\n"
            "Prints canaryd's alerts, newest first. With --follow, keeps watching and prints\n"
            "a line whenever an alert opens, escalates, is acknowledged or resolves, until\n"
            "interrupted.\n"
            "\n"
            "  --url URL       canaryd's base URL (default http://127.0.0.1:8080)\n"
            "  --state STATE   only alerts in this state\n"
            "  --limit N       at most N alerts (default 20, at most 500)\n"
            "  --follow        keep watching\n"
            "  --interval S    seconds between polls with --follow (default 1)\n" CLI_TLS_USAGE);
}

/* GETs path from canaryd (cli/cli_api.h) and returns its JSON answer, or NULL with a
 * message on stderr. With access control on (docs/ACCESS.md) it sends an API token (a
 * viewer's is enough) from $CANARY_API_TOKEN, else the admin token; never from an argument. */
static cJSON *get_json(const char *url, const char *ca, const char *path)
{
    const char *tok = getenv("CANARY_API_TOKEN");
    if (tok == NULL || tok[0] == '\0')
        tok = getenv("CANARY_API_ADMIN_TOKEN");
    long status;
    cJSON *j = cli_api_call("canary alerts", url, tok, ca, "GET", path, NULL, 10, &status);
    if (status == 0) {
        cJSON_Delete(j); /* unreachable: cli_api_call said why */
        return NULL;
    }
    if (status != 200 || j == NULL) {
        const char *m = cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(
            cJSON_GetObjectItemCaseSensitive(j, "error"), "message"));
        fprintf(stderr, "canary alerts: %s%s answered %ld%s%s\n", url, path, status,
                m ? ": " : (j == NULL ? ": the answer is not JSON" : ""), m ? m : "");
        cJSON_Delete(j);
        return NULL;
    }
    return j;
}

static const char *str(const cJSON *o, const char *name)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, name);
    return cJSON_IsString(v) ? v->valuestring : "";
}

static double num(const cJSON *o, const char *name)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, name);
    return cJSON_IsNumber(v) ? v->valuedouble : 0;
}

static void print_alert(const cJSON *a, const char *what)
{
    char when[32] = "";
    time_t t = (time_t)(num(a, "updated_ms") / 1000);
    struct tm tm;
    localtime_r(&t, &tm);
    strftime(when, sizeof when, "%H:%M:%S", &tm);
    printf("%s %-9s #%-5.0f %-8s %-12s %-12s %-14s %s\n", when, what, num(a, "id"),
           str(a, "severity"), str(a, "state"), str(a, "kind"), str(a, "device"),
           str(a, "message"));
    fflush(stdout);
}

/* What --follow last saw of each alert: state and severity, by id. */
struct seen {
    long id;
    char state[16];
    char severity[16];
};

static struct seen *find_seen(struct seen *s, size_t n, long id)
{
    for (size_t i = 0; i < n; i++) {
        if (s[i].id == id)
            return &s[i];
    }
    return NULL;
}

int cmd_alerts(int argc, char **argv)
{
    const char *url = "http://127.0.0.1:8080", *state = NULL, *ca = NULL;
    long limit = 20;
    double interval = 1;
    bool follow = false;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        bool has_value = i + 1 < argc;
        if (!strcmp(a, "--help") || !strcmp(a, "-h")) {
            usage(stdout);
            return 0;
        } else if (!strcmp(a, "--follow")) {
            follow = true;
        } else if (!strcmp(a, "--url") && has_value) {
            url = argv[++i];
        } else if (!strcmp(a, "--ca") && has_value) {
            ca = argv[++i];
        } else if (!strcmp(a, "--state") && has_value) {
            state = argv[++i];
        } else if (!strcmp(a, "--limit") && has_value) {
            char *end;
            limit = strtol(argv[++i], &end, 10);
            if (*end != '\0' || limit < 1 || limit > 500) {
                fprintf(stderr, "canary alerts: --limit takes a number from 1 to 500\n");
                return 2;
            }
        } else if (!strcmp(a, "--interval") && has_value) {
            char *end;
            interval = strtod(argv[++i], &end);
            if (*end != '\0' || !(interval >= 0.1 && interval <= 3600)) {
                fprintf(stderr, "canary alerts: --interval takes seconds from 0.1 to 3600\n");
                return 2;
            }
        } else {
            fprintf(stderr, "canary alerts: unknown option or missing value: %s\n\n", a);
            usage(stderr);
            return 2;
        }
    }
    if (state != NULL && strcmp(state, "open") && strcmp(state, "acknowledged") &&
        strcmp(state, "resolved")) {
        fprintf(stderr, "canary alerts: --state is open, acknowledged or resolved\n");
        return 2;
    }
    ca = cli_tls_ca(ca);
    if (!cli_tls_check_ca("canary alerts", ca))
        return 2;
    char query[1200];
    snprintf(query, sizeof query, "/api/v1/alerts?limit=%ld%s%s", limit, state ? "&state=" : "",
             state ? state : "");
    curl_global_init(CURL_GLOBAL_DEFAULT);
    signal(SIGINT, on_signal);
    signal(SIGTERM, on_signal);
    struct seen *seen = NULL;
    size_t n_seen = 0;
    bool first = true;
    int rc = 0;
    do {
        cJSON *j = get_json(url, ca, query);
        if (j == NULL) {
            rc = 1;
            if (!follow)
                break;
        } else {
            cJSON *list = cJSON_GetObjectItemCaseSensitive(j, "alerts");
            int n = cJSON_GetArraySize(list);
            /* Oldest first, so a follower reads them in the order they happened. */
            for (int k = n - 1; k >= 0; k--) {
                const cJSON *a = cJSON_GetArrayItem(list, k);
                long id = (long)num(a, "id");
                struct seen *s = find_seen(seen, n_seen, id);
                if (!follow) {
                    print_alert(a, "alert");
                    continue;
                }
                const char *what = NULL;
                if (s == NULL) {
                    struct seen *grown = realloc(seen, (n_seen + 1) * sizeof *seen);
                    if (grown == NULL)
                        continue;
                    seen = grown;
                    s = &seen[n_seen++];
                    s->id = id;
                    what = first ? "alert" : "opened";
                } else if (strcmp(s->state, str(a, "state")) != 0) {
                    what = str(a, "state");
                } else if (strcmp(s->severity, str(a, "severity")) != 0) {
                    what = "escalated";
                }
                snprintf(s->state, sizeof s->state, "%s", str(a, "state"));
                snprintf(s->severity, sizeof s->severity, "%s", str(a, "severity"));
                if (what != NULL)
                    print_alert(a, what);
            }
            if (!follow && n == 0)
                printf("no alerts\n");
            cJSON_Delete(j);
            first = false;
            rc = 0;
        }
        for (double waited = 0; follow && !stop_requested && waited < interval; waited += 0.1)
            usleep(100000);
    } while (follow && !stop_requested);
    free(seen);
    curl_global_cleanup();
    return rc;
}
