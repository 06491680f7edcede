/* attack.c — `canary attack`: the attack simulator that proves canary's defences
 * (docs/ATTACK.md). Dispatches to its subcommands: the network attacker (a man in the
 * middle of MQTT or HTTP: mitm_mqtt.c, mitm_http.c) and the compromised device
 * (attack_device.c). Each writes the ground truth of what it did, so that what canaryd
 * rejected or detected can be scored (bench/security.sh). */
#include "cli/commands.h"
#include "cli/mitm.h"

#include <stdio.h>
#include <string.h>

struct attack_sub {
    const char *name;
    int (*run)(int argc, char **argv);
    const char *summary;
};

static const struct attack_sub subs[] = {
    {"mitm-mqtt", attack_mitm_mqtt_main,
     "a man-in-the-middle proxy between MQTT devices and the broker"},
    {"mitm-http", attack_mitm_http_main, "a man-in-the-middle proxy in front of canaryd's HTTP"},
    {"device", attack_device_main, "a compromised device: validly signed readings that lie"},
};

static void usage(FILE *out)
{
    fprintf(out, "usage: canary attack <kind> [options]\n\nkinds:\n");
    for (size_t i = 0; i < sizeof subs / sizeof subs[0]; i++)
        fprintf(out, "  %-10s %s\n", subs[i].name, subs[i].summary);
    fprintf(out, "\n`canary attack <kind> --help` describes its options; docs/ATTACK.md the "
                 "attacks and their ground truth.\n");
}

int cmd_attack(int argc, char **argv)
{
    if (argc < 2) {
        usage(stderr);
        return 2;
    }
    if (!strcmp(argv[1], "--help") || !strcmp(argv[1], "-h") || !strcmp(argv[1], "help")) {
        usage(stdout);
        return 0;
    }
    for (size_t i = 0; i < sizeof subs / sizeof subs[0]; i++)
        if (strcmp(argv[1], subs[i].name) == 0)
            return subs[i].run(argc - 1, argv + 1);
    fprintf(stderr, "canary attack: unknown kind '%s'\n\n", argv[1]);
    usage(stderr);
    return 2;
}
