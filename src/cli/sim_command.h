/* sim_command.h — the commands a simulated device takes over MQTT: reading what arrives on
 * <prefix>/<device>/cmd, writing the answer for <prefix>/<device>/cmd/ack, and what a command
 * does to the device's actuators (docs/SIMULATOR.md, "MQTT transport").
 *
 * The wire form (the daemon's side is src/core/command.h):
 *   {"id":"c-42","command":"buzzer","state":"on"}      buzzer: on | off
 *   {"id":"c-43","command":"valve","state":"close"}    valve:  open | close
 *   {"id":"c-44","command":"relay","state":"off"}      relay:  on | off
 *   {"id":"c-45","command":"interval_s","value":5}     seconds between readings, 1 .. 3600
 * answered with {"id":"c-42","status":"ok"} or
 *   {"id":"c-42","status":"error","error":"<a sentence>"}  (id "" when none could be read).
 *
 * Pure library code: no I/O, no globals, no allocation kept after a call returns. */
#ifndef CANARY_CLI_SIM_COMMAND_H
#define CANARY_CLI_SIM_COMMAND_H

#include "cli/sim_fleet.h"

#include <stdbool.h>
#include <stddef.h>

#define SIM_COMMAND_ID_MAX      64   /* bytes of a command id (printable ASCII) */
#define SIM_COMMAND_PAYLOAD_MAX 4096 /* bytes of a command payload */
#define SIM_COMMAND_ERROR_MAX   160  /* bytes of an error sentence, NUL included */
#define SIM_COMMAND_ACK_MAX     512  /* bytes sim_command_ack() needs at most, NUL included */
#define SIM_INTERVAL_MIN_S      1
#define SIM_INTERVAL_MAX_S      3600

enum sim_command_kind {
    SIM_COMMAND_ACTUATOR, /* buzzer, valve or relay: switch it */
    SIM_COMMAND_INTERVAL, /* interval_s: change the reading period */
};

/* A parsed command. */
struct sim_command {
    char id[SIM_COMMAND_ID_MAX + 1]; /* echoed in the ack; "" when none could be read */
    enum sim_command_kind kind;
    enum sim_actuator actuator; /* SIM_COMMAND_ACTUATOR: which one */
    bool on;                    /* SIM_COMMAND_ACTUATOR: on / open */
    unsigned interval_s;        /* SIM_COMMAND_INTERVAL: 1 .. 3600 */
};

/* Parses a command payload of len bytes (not NUL-terminated). Returns 0, or CANARY_EINVAL
 * with a sentence for the ack in err (at most SIM_COMMAND_ERROR_MAX bytes are written): not
 * a JSON object, no usable "id" (a string of 1 to SIM_COMMAND_ID_MAX printable ASCII bytes),
 * an unknown command, a state or value the command does not take. out->id is filled whenever
 * the id could be read, also on error; otherwise it is "". Unknown fields are ignored. */
int sim_command_parse(const char *payload, size_t len, struct sim_command *out, char *err,
                      size_t errlen);

/* Writes the ack of command id: {"id":"<id>","status":"ok"} when error is NULL, else
 * {"id":"<id>","status":"error","error":"<error>"}. id and error are escaped; error is cut to
 * SIM_COMMAND_ERROR_MAX - 1 bytes. Returns the length written (NUL excluded), or
 * CANARY_ELIMIT when buf is too small (SIM_COMMAND_ACK_MAX always suffices for an id and an
 * error from sim_command_parse()). */
int sim_command_ack(const char *id, const char *error, char *buf, size_t len);

/* Applies an actuator command to a device's actuator states; other kinds change nothing. */
void sim_command_apply(const struct sim_command *c, struct sim_actuators *a);

#endif
