/* main.c — the `canary` command-line tool: dispatches to its subcommands (commands.h). */
#include "cli/commands.h"

#include <stdio.h>
#include <string.h>

struct subcommand {
    const char *name;
    int (*run)(int argc, char **argv);
    const char *summary;
};

static const struct subcommand subcommands[] = {
    {"simulate", cmd_simulate, "send readings from a simulated fleet to canaryd"},
    {"attack", cmd_attack,
     "attack canary: a man in the middle (mitm-mqtt, mitm-http) or a compromised device"},
    {"alerts", cmd_alerts, "show canaryd's alerts, or follow them as they happen"},
    {"train", cmd_train,
     "train an Isolation Forest (CSV or canaryd's store) or, with --model gas, the gas classifier"},
    {"score", cmd_score, "score the rows of a CSV file with a trained model"},
    {"eval", cmd_eval,
     "evaluate a model (Isolation Forest or gas classifier) on labelled data: metrics, plots"},
    {"replay", cmd_replay, "score a CSV file (or a directory) with canaryd's live detectors"},
    {"notify", cmd_notify, "send a test message over an alert channel (notify test)"},
    {"device", cmd_device, "provision devices: add, list, show, rotate-key, revoke"},
    {"user", cmd_user, "who may use the API and dashboard: add, list, passwd, disable, remove"},
    {"token", cmd_token, "API tokens with a role: create, list, revoke"},
    {"broker-config", cmd_broker_config,
     "write a Mosquitto config, password file and ACL: each device only its own topics"},
    {"export", cmd_export, "write readings from canaryd's store as CSV, to label and train on"},
    {"cert", cmd_cert, "make a self-signed TLS certificate and key for canaryd and Mosquitto"},

};

static void usage(FILE *out)
{
    fprintf(out, "usage: canary <command> [options]\n\ncommands:\n");
    for (size_t i = 0; i < sizeof subcommands / sizeof subcommands[0]; i++)
        fprintf(out, "  %-13s %s\n", subcommands[i].name, subcommands[i].summary);
    fprintf(out, "\n`canary <command> --help` describes a command's options.\n");
}

int main(int argc, char **argv)
{
    if (argc < 2) {
        usage(stderr);
        return 2;
    }
    if (!strcmp(argv[1], "--help") || !strcmp(argv[1], "-h") || !strcmp(argv[1], "help")) {
        usage(stdout);
        return 0;
    }
    if (!strcmp(argv[1], "--version")) {
        printf("canary %s\n", CANARY_VERSION);
        return 0;
    }
    for (size_t i = 0; i < sizeof subcommands / sizeof subcommands[0]; i++) {
        if (strcmp(argv[1], subcommands[i].name) == 0)
            return subcommands[i].run(argc - 1, argv + 1);
    }
    fprintf(stderr, "canary: unknown command '%s'\n\n", argv[1]);
    usage(stderr);
    return 2;
}
