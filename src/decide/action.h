/* action.h — automatic actions: which commands to send a device when one of its alerts
 * opens (actions.* keys). A rule reads "SEVERITY: command=state, command=state", e.g.
 *   actions.gas_leak = critical: buzzer=on, valve=close
 * and applies to alerts of its kind at or above that severity. interval_s takes a number
 * (interval_s=5). Pure: parsing and matching, no I/O. */
#ifndef CANARY_DECIDE_ACTION_H
#define CANARY_DECIDE_ACTION_H

#include "core/command.h"
#include "core/config.h"
#include "decide/alert.h"

#include <stdbool.h>
#include <stddef.h>

#define ACTION_MAX_COMMANDS 4

struct action_rule {
    bool set;
    enum alert_severity min_severity;
    unsigned n;
    struct {
        char command[COMMAND_NAME_LEN];
        char state[COMMAND_STATE_LEN];
        double value;
    } commands[ACTION_MAX_COMMANDS];
};

struct action_rules {
    struct action_rule by_kind[ALERT_KIND_COUNT];
};

/* Parses one rule ("" gives an unset rule). Returns 0, or -1 with a message in err. */
int action_rule_parse(const char *text, struct action_rule *out, char *err, size_t errlen);

/* Parses every actions.* key of cfg. Returns 0, or -1 with "actions.<kind>: ..." in err. */
int action_rules_load(const struct canary_config *cfg, struct action_rules *out, char *err,
                      size_t errlen);

/* The rule for an alert of this kind and severity, or NULL if none applies. */
const struct action_rule *action_rules_match(const struct action_rules *r, enum alert_kind kind,
                                             enum alert_severity severity);

#endif
