/* action.c — parsing and matching automatic-action rules; see action.h. */
#include "decide/action.h"

#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static char *trim(char *s)
{
    while (isspace((unsigned char)*s))
        s++;
    size_t n = strlen(s);
    while (n > 0 && isspace((unsigned char)s[n - 1]))
        s[--n] = '\0';
    return s;
}

int action_rule_parse(const char *text, struct action_rule *out, char *err, size_t errlen)
{
    memset(out, 0, sizeof *out);
    char buf[CONFIG_STR_MAX];
    snprintf(buf, sizeof buf, "%s", text);
    char *t = trim(buf);
    if (*t == '\0')
        return 0;
    char *colon = strchr(t, ':');
    if (colon == NULL) {
        snprintf(err, errlen, "expected 'SEVERITY: command=state, ...', got '%s'", t);
        return -1;
    }
    *colon = '\0';
    char *sev = trim(t);
    if (alert_severity_parse(sev, &out->min_severity) != 0) {
        snprintf(err, errlen, "'%s' is not a severity (info, low, medium, high, critical)", sev);
        return -1;
    }
    char *save = NULL;
    for (char *item = strtok_r(colon + 1, ",", &save); item != NULL;
         item = strtok_r(NULL, ",", &save)) {
        item = trim(item);
        char *eq = strchr(item, '=');
        if (eq == NULL) {
            snprintf(err, errlen, "'%s' is not command=state", item);
            return -1;
        }
        *eq = '\0';
        char *name = trim(item), *arg = trim(eq + 1);
        if (out->n == ACTION_MAX_COMMANDS) {
            snprintf(err, errlen, "at most %d commands per rule", ACTION_MAX_COMMANDS);
            return -1;
        }
        bool numeric = strcmp(name, "interval_s") == 0;
        char *end = NULL;
        double value = numeric ? strtod(arg, &end) : 0;
        if (numeric && (end == arg || *end != '\0'))
            value = -1;
        const char *field = NULL;
        char why[160];
        if (command_check(name, numeric ? "" : arg, value, numeric, why, sizeof why, &field) != 0) {
            snprintf(err, errlen, "%s=%s: %s", name, arg, why);
            return -1;
        }
        snprintf(out->commands[out->n].command, COMMAND_NAME_LEN, "%s", name);
        snprintf(out->commands[out->n].state, COMMAND_STATE_LEN, "%s", numeric ? "" : arg);
        out->commands[out->n].value = value;
        out->n++;
    }
    if (out->n == 0) {
        snprintf(err, errlen, "no command after '%s:'", sev);
        return -1;
    }
    out->set = true;
    return 0;
}

int action_rules_load(const struct canary_config *cfg, struct action_rules *out, char *err,
                      size_t errlen)
{
    memset(out, 0, sizeof *out);
    const struct {
        enum alert_kind kind;
        const char *key;
        const char *text;
    } keys[] = {
        {ALERT_KIND_GAS_LEAK, "gas_leak", cfg->actions.gas_leak},
        {ALERT_KIND_FIRE, "fire", cfg->actions.fire},
        {ALERT_KIND_THRESHOLD, "threshold", cfg->actions.threshold},
        {ALERT_KIND_ANOMALY, "anomaly", cfg->actions.anomaly},
        {ALERT_KIND_RATE, "rate", cfg->actions.rate},
        {ALERT_KIND_SENSOR_FAULT, "sensor_fault", cfg->actions.sensor_fault},
        {ALERT_KIND_OFFLINE, "offline", cfg->actions.offline},
    };
    for (size_t i = 0; i < sizeof keys / sizeof keys[0]; i++) {
        char why[256];
        if (action_rule_parse(keys[i].text, &out->by_kind[keys[i].kind], why, sizeof why) != 0) {
            snprintf(err, errlen, "actions.%s: %s", keys[i].key, why);
            return -1;
        }
    }
    return 0;
}

const struct action_rule *action_rules_match(const struct action_rules *r, enum alert_kind kind,
                                             enum alert_severity severity)
{
    if ((unsigned)kind >= ALERT_KIND_COUNT)
        return NULL;
    const struct action_rule *rule = &r->by_kind[kind];
    return rule->set && severity >= rule->min_severity ? rule : NULL;
}
