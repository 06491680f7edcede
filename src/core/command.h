/* command.h — a command to a device's actuators (buzzer, gas valve, relay) or to the device
 * itself (its reading interval), and its lifecycle: pending -> acked | failed | timed_out.
 *
 * The wire form (docs/MQTT.md) is published to <prefix>/<device>/cmd:
 *   {"id":"c-42","command":"buzzer","state":"on"}      buzzer: on | off
 *   {"id":"c-43","command":"valve","state":"close"}    valve:  open | close
 *   {"id":"c-44","command":"relay","state":"on"}       relay:  on | off
 *   {"id":"c-45","command":"interval_s","value":5}     interval_s: 1 .. 3600 seconds
 * and the device answers on <prefix>/<device>/cmd/ack with {"id":"c-42","status":"ok"} or
 * {"id":"c-42","status":"error","error":"..."}. */
#ifndef CANARY_CORE_COMMAND_H
#define CANARY_CORE_COMMAND_H

#include "core/reading.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define COMMAND_ID_LEN    24
#define COMMAND_NAME_LEN  16
#define COMMAND_STATE_LEN 16
#define COMMAND_ERROR_LEN 160
#define COMMAND_ACTOR_LEN 64
#define COMMAND_JSON_MAX  160 /* bytes command_json() needs at most, NUL included */

enum command_status {
    COMMAND_PENDING = 0, /* published, no answer yet */
    COMMAND_ACKED,       /* the device carried it out */
    COMMAND_FAILED,      /* the device answered with an error, or it could not be sent */
    COMMAND_TIMED_OUT,   /* no answer within mqtt.command_timeout_s */
};

struct device_command {
    uint64_t id; /* the wire id is "c-<id>" */
    char device[READING_ID_BUF];
    char command[COMMAND_NAME_LEN]; /* buzzer | valve | relay | interval_s */
    char state[COMMAND_STATE_LEN];  /* on/off, open/close; "" for interval_s */
    double value;                   /* interval_s: seconds; else 0 */
    uint64_t alert_id;              /* the alert that triggered it; 0 = sent by a person */
    char actor[COMMAND_ACTOR_LEN];  /* who sent it: "canary" for automatic actions */
    int64_t created_ms;
    int64_t updated_ms;
    enum command_status status;
    char error[COMMAND_ERROR_LEN]; /* why it failed or timed out */
};

/* "pending", "acked", "failed", "timed_out". */
const char *command_status_name(enum command_status s);

/* Checks a command and its argument: state for buzzer/valve/relay, value for interval_s.
 * Returns 0, or -1 with a sentence in err and the offending field ("command", "state" or
 * "value") in *field. */
int command_check(const char *command, const char *state, double value, bool has_value, char *err,
                  size_t errlen, const char **field);

/* Writes the wire JSON of a command into buf. Returns its length, or -1 if it does not fit. */
int command_json(const struct device_command *c, char *buf, size_t len);

/* Parses a wire id "c-42" into 42. Returns 0 or -1. */
int command_id_parse(const char *s, uint64_t *out);

#endif
