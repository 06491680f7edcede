/* simulate.c — placeholder; the simulator is being written in this change. */
#include "cli/commands.h"

#include <stdio.h>

int cmd_simulate(int argc, char **argv)
{
    (void)argc;
    (void)argv;
    fprintf(stderr, "canary simulate: not built yet\n");
    return 1;
}
