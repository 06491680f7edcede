/* command.c — device commands: validation, wire form, ids; see command.h. */
#include "core/command.h"

#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

const char *command_status_name(enum command_status s)
{
    switch (s) {
    case COMMAND_PENDING:
        return "pending";
    case COMMAND_ACKED:
        return "acked";
    case COMMAND_FAILED:
        return "failed";
    case COMMAND_TIMED_OUT:
        return "timed_out";
    }
    return "?";
}

struct command_def {
    const char *name;
    const char *states[2]; /* NULL: takes a value instead */
};

static const struct command_def defs[] = {
    {"buzzer", {"on", "off"}},
    {"valve", {"open", "close"}},
    {"relay", {"on", "off"}},
    {"interval_s", {NULL, NULL}},
};

int command_check(const char *command, const char *state, double value, bool has_value, char *err,
                  size_t errlen, const char **field)
{
    const struct command_def *d = NULL;
    for (size_t i = 0; i < sizeof defs / sizeof defs[0]; i++) {
        if (command != NULL && strcmp(defs[i].name, command) == 0)
            d = &defs[i];
    }
    if (d == NULL) {
        *field = "command";
        snprintf(err, errlen, "must be one of buzzer, valve, relay, interval_s");
        return -1;
    }
    if (d->states[0] == NULL) {
        if (!has_value || !(value >= 1 && value <= 3600) || value != (double)(int64_t)value) {
            *field = "value";
            snprintf(err, errlen, "interval_s needs a whole number of seconds in [1, 3600]");
            return -1;
        }
        if (state != NULL && state[0] != '\0') {
            *field = "state";
            snprintf(err, errlen, "interval_s takes a value, not a state");
            return -1;
        }
        return 0;
    }
    if (state == NULL || (strcmp(state, d->states[0]) != 0 && strcmp(state, d->states[1]) != 0)) {
        *field = "state";
        snprintf(err, errlen, "%s takes state \"%s\" or \"%s\"", d->name, d->states[0],
                 d->states[1]);
        return -1;
    }
    if (has_value) {
        *field = "value";
        snprintf(err, errlen, "%s takes a state, not a value", d->name);
        return -1;
    }
    return 0;
}

int command_json(const struct device_command *c, char *buf, size_t len)
{
    int n;
    if (strcmp(c->command, "interval_s") == 0)
        n = snprintf(buf, len,
                     "{\"id\":\"c-%" PRIu64 "\",\"command\":\"interval_s\",\"value\":%lld}", c->id,
                     (long long)c->value);
    else
        n = snprintf(buf, len, "{\"id\":\"c-%" PRIu64 "\",\"command\":\"%s\",\"state\":\"%s\"}",
                     c->id, c->command, c->state);
    return n < 0 || (size_t)n >= len ? -1 : n;
}

int command_id_parse(const char *s, uint64_t *out)
{
    if (s == NULL || s[0] != 'c' || s[1] != '-' || s[2] < '0' || s[2] > '9')
        return -1;
    errno = 0;
    char *end = NULL;
    unsigned long long v = strtoull(s + 2, &end, 10);
    if (errno != 0 || *end != '\0' || v == 0)
        return -1;
    *out = v;
    return 0;
}
