/* alert.c — names of alert kinds, severities, states and actions, both ways. */
#include "decide/alert.h"

#include "core/error.h"

#include <string.h>

static const char *const severity_names[] = {"info", "low", "medium", "high", "critical"};
static const char *const kind_names[] = {"threshold", "anomaly", "rate",    "sensor_fault",
                                         "gas_leak",  "fire",    "offline", "tamper"};
static const char *const state_names[] = {"open", "acknowledged", "resolved"};
static const char *const action_names[] = {"none",         "opened",   "escalated", "reopened",
                                           "acknowledged", "resolved", "commented", "updated"};

#define N(a) (sizeof(a) / sizeof((a)[0]))

const char *alert_severity_name(enum alert_severity s)
{
    return (unsigned)s < N(severity_names) ? severity_names[s] : "?";
}

const char *alert_kind_name(enum alert_kind k)
{
    return (unsigned)k < N(kind_names) ? kind_names[k] : "?";
}

const char *alert_state_name(enum alert_state s)
{
    return (unsigned)s < N(state_names) ? state_names[s] : "?";
}

const char *alert_action_name(enum alert_action a)
{
    return (unsigned)a < N(action_names) ? action_names[a] : "?";
}

static int find(const char *const *names, size_t n, const char *s, int *out)
{
    for (size_t i = 0; i < n; i++) {
        if (strcmp(names[i], s) == 0) {
            *out = (int)i;
            return CANARY_OK;
        }
    }
    return CANARY_EINVAL;
}

int alert_severity_parse(const char *s, enum alert_severity *out)
{
    int v;
    int rc = find(severity_names, N(severity_names), s, &v);
    if (rc == 0)
        *out = (enum alert_severity)v;
    return rc;
}

int alert_kind_parse(const char *s, enum alert_kind *out)
{
    int v;
    int rc = find(kind_names, N(kind_names), s, &v);
    if (rc == 0)
        *out = (enum alert_kind)v;
    return rc;
}

int alert_state_parse(const char *s, enum alert_state *out)
{
    int v;
    int rc = find(state_names, N(state_names), s, &v);
    if (rc == 0)
        *out = (enum alert_state)v;
    return rc;
}

int alert_action_parse(const char *s, enum alert_action *out)
{
    int v;
    int rc = find(action_names, N(action_names), s, &v);
    if (rc == 0)
        *out = (enum alert_action)v;
    return rc;
}
