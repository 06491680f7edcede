/* sim_command.c — parsing a simulated device's commands and writing its acks (sim_command.h).
 *
 * Error sentences echo the offending value so whoever sent the command can see what was
 * wrong, but only its first ECHO_MAX bytes with anything outside printable ASCII shown as
 * '?': the ack stays short and plain whatever arrived. */
#include "cli/sim_command.h"

#include "core/error.h"

#include <cjson/cJSON.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#define ECHO_MAX 32 /* bytes of an offending value echoed in an error sentence */

static const struct {
    const char *command;        /* the "command" field */
    enum sim_actuator actuator; /* what it switches */
    const char *on, *off;       /* the two states it takes */
} actuator_commands[] = {
    {"buzzer", SIM_ACTUATOR_BUZZER, "on", "off"},
    {"valve", SIM_ACTUATOR_VALVE, "open", "close"},
    {"relay", SIM_ACTUATOR_RELAY, "on", "off"},
};

static int fail(char *err, size_t errlen, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static int fail(char *err, size_t errlen, const char *fmt, ...)
{
    char msg[SIM_COMMAND_ERROR_MAX];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    if (errlen > 0)
        snprintf(err, errlen, "%s", msg);
    return CANARY_EINVAL;
}

/* Copies the first ECHO_MAX bytes of s into out (ECHO_MAX + 4 bytes), '?' for anything that
 * is not printable ASCII or is a quote or backslash, "..." when cut. */
static const char *echo(const char *s, char *out)
{
    size_t n = 0;
    for (; s[n] != '\0' && n < ECHO_MAX; n++)
        out[n] = s[n] >= 0x20 && s[n] < 0x7f && s[n] != '"' && s[n] != '\\' ? s[n] : '?';
    strcpy(out + n, s[n] != '\0' ? "..." : "");
    return out;
}

static bool printable_ascii(const char *s)
{
    for (; *s != '\0'; s++) {
        if (*s < 0x20 || *s >= 0x7f)
            return false;
    }
    return true;
}

static int parse_actuator(const cJSON *root, size_t i, struct sim_command *out, char *err,
                          size_t errlen)
{
    const char *name = actuator_commands[i].command, *on = actuator_commands[i].on,
               *off = actuator_commands[i].off;
    const cJSON *state = cJSON_GetObjectItemCaseSensitive(root, "state");
    if (!cJSON_IsString(state))
        return fail(err, errlen, "command '%s' needs a field 'state' of \"%s\" or \"%s\"", name, on,
                    off);
    char shown[ECHO_MAX + 4];
    if (strcmp(state->valuestring, on) != 0 && strcmp(state->valuestring, off) != 0)
        return fail(err, errlen, "state of '%s' must be \"%s\" or \"%s\", got \"%s\"", name, on,
                    off, echo(state->valuestring, shown));
    out->kind = SIM_COMMAND_ACTUATOR;
    out->actuator = actuator_commands[i].actuator;
    out->on = strcmp(state->valuestring, on) == 0;
    return 0;
}

static int parse_interval(const cJSON *root, struct sim_command *out, char *err, size_t errlen)
{
    const cJSON *value = cJSON_GetObjectItemCaseSensitive(root, "value");
    double v = cJSON_IsNumber(value) ? value->valuedouble : NAN;
    if (!isfinite(v) || v != floor(v) || v < SIM_INTERVAL_MIN_S || v > SIM_INTERVAL_MAX_S)
        return fail(err, errlen,
                    "command 'interval_s' needs a field 'value' with a whole number of seconds "
                    "from %d to %d",
                    SIM_INTERVAL_MIN_S, SIM_INTERVAL_MAX_S);
    out->kind = SIM_COMMAND_INTERVAL;
    out->interval_s = (unsigned)v;
    return 0;
}

/* Everything after the id: the command and its argument. */
static int parse_body(const cJSON *root, struct sim_command *out, char *err, size_t errlen)
{
    const cJSON *command = cJSON_GetObjectItemCaseSensitive(root, "command");
    if (!cJSON_IsString(command))
        return fail(err, errlen, "field 'command' must be a string");
    for (size_t i = 0; i < sizeof actuator_commands / sizeof actuator_commands[0]; i++) {
        if (strcmp(command->valuestring, actuator_commands[i].command) == 0)
            return parse_actuator(root, i, out, err, errlen);
    }
    if (strcmp(command->valuestring, "interval_s") == 0)
        return parse_interval(root, out, err, errlen);
    char shown[ECHO_MAX + 4];
    return fail(err, errlen,
                "unknown command \"%s\"; this device takes buzzer, valve, relay and "
                "interval_s",
                echo(command->valuestring, shown));
}

int sim_command_parse(const char *payload, size_t len, struct sim_command *out, char *err,
                      size_t errlen)
{
    memset(out, 0, sizeof *out);
    if (len > SIM_COMMAND_PAYLOAD_MAX)
        return fail(err, errlen, "the command is larger than %d bytes", SIM_COMMAND_PAYLOAD_MAX);
    cJSON *root = cJSON_ParseWithLength(payload, len);
    if (!cJSON_IsObject(root)) {
        cJSON_Delete(root);
        return fail(err, errlen, "the command is not a JSON object");
    }
    const cJSON *id = cJSON_GetObjectItemCaseSensitive(root, "id");
    int rc;
    if (!cJSON_IsString(id) || id->valuestring[0] == '\0' ||
        strlen(id->valuestring) > SIM_COMMAND_ID_MAX || !printable_ascii(id->valuestring)) {
        rc = fail(err, errlen, "field 'id' must be a string of 1 to %d printable ASCII characters",
                  SIM_COMMAND_ID_MAX);
    } else {
        snprintf(out->id, sizeof out->id, "%s", id->valuestring);
        rc = parse_body(root, out, err, errlen);
    }
    cJSON_Delete(root);
    return rc;
}

/* Appends s to buf[*used..len) as the inside of a JSON string. False when it does not fit. */
static bool put_escaped(char *buf, size_t len, size_t *used, const char *s, size_t max)
{
    for (size_t i = 0; s[i] != '\0' && i < max; i++) {
        char esc[8];
        unsigned char c = (unsigned char)s[i];
        int n = c == '"' || c == '\\' ? snprintf(esc, sizeof esc, "\\%c", c)
                : c < 0x20            ? snprintf(esc, sizeof esc, "\\u%04x", c)
                                      : snprintf(esc, sizeof esc, "%c", c);
        if (*used + (size_t)n >= len)
            return false;
        memcpy(buf + *used, esc, (size_t)n);
        *used += (size_t)n;
    }
    buf[*used] = '\0';
    return true;
}

static bool put(char *buf, size_t len, size_t *used, const char *s)
{
    size_t n = strlen(s);
    if (*used + n >= len)
        return false;
    memcpy(buf + *used, s, n + 1);
    *used += n;
    return true;
}

int sim_command_ack(const char *id, const char *error, char *buf, size_t len)
{
    size_t used = 0;
    bool ok = len > 0 && put(buf, len, &used, "{\"id\":\"") &&
              put_escaped(buf, len, &used, id, SIM_COMMAND_ID_MAX) &&
              put(buf, len, &used,
                  error == NULL ? "\",\"status\":\"ok\"}" : "\",\"status\":\"error\",\"error\":\"");
    if (ok && error != NULL)
        ok = put_escaped(buf, len, &used, error, SIM_COMMAND_ERROR_MAX - 1) &&
             put(buf, len, &used, "\"}");
    return ok ? (int)used : CANARY_ELIMIT;
}

void sim_command_apply(const struct sim_command *c, struct sim_actuators *a)
{
    if (c->kind == SIM_COMMAND_ACTUATOR)
        a->state[c->actuator] = c->on ? 1 : 0;
}
